/*
 * Unit tests for common/dotstuff, message text to its SMTP / MPP wire form.
 *
 * One table of cases per CR rule (a client's text, where a CR alone is
 * text; stored text, where it ends a line), each run whole, one byte at a
 * time, in 2- and 7-byte pieces, split in two at every position, and with
 * an output buffer of only DOTSTUFF_ROOM_MIN bytes, all of which must give
 * the same bytes. Then megabytes of random text against a plain reference
 * conversion written here byte by byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dotstuff.h"

struct stuff_case {
	const char *in;
	size_t inlen;
	const char *out;
	size_t outlen;
};

/* Lengths from sizeof: some cases hold a NUL byte. */
#define SC(i, o) { i, sizeof(i) - 1, o, sizeof(o) - 1 }

/* Both rules agree on these. */
static const struct stuff_case common_cases[] = {
	SC("", ".\r\n"),
	SC("a\n", "a\r\n.\r\n"),
	SC("a", "a\r\n.\r\n"),
	SC("a\r\n", "a\r\n.\r\n"),
	SC(".\n", "..\r\n.\r\n"),
	SC(".", "..\r\n.\r\n"),
	SC("x\n.y\n..z\n", "x\r\n..y\r\n...z\r\n.\r\n"),
	SC(".\r\n.\r\n", "..\r\n..\r\n.\r\n"),
	SC("x.\n", "x.\r\n.\r\n"),
	SC("a\r", "a\r\n.\r\n"),
	SC("\n\n", "\r\n\r\n.\r\n"),
	SC("\r\n.\r\n", "\r\n..\r\n.\r\n"),
	SC("caf\xc3\xa9 \xff\n", "caf\xc3\xa9 \xff\r\n.\r\n"),
	SC("n\0ul\n", "n\0ul\r\n.\r\n"),
	SC("Subject: x\n\nbody\n.\nend", "Subject: x\r\n\r\nbody\r\n..\r\n"
	    "end\r\n.\r\n"),
	SC("x\n.\r\n.y", "x\r\n..\r\n..y\r\n.\r\n"),
	SC("no final line end", "no final line end\r\n.\r\n"),
};

/* A CR alone is text (a client's text). */
static const struct stuff_case text_cases[] = {
	SC("a\rb\n", "a\rb\r\n.\r\n"),
	SC("\r.\n", "\r.\r\n.\r\n"),
	SC("a\r\r\n", "a\r\r\n.\r\n"),
	SC("a\r\r", "a\r\r\n.\r\n"),
	SC("\r\r\r\n.", "\r\r\r\n..\r\n.\r\n"),
};

/* A CR alone ends the line (stored text). */
static const struct stuff_case eol_cases[] = {
	SC("a\r\nb\rc\n", "a\r\nb\r\nc\r\n.\r\n"),
	SC("\r.\n", "\r\n..\r\n.\r\n"),
	SC("a\r\r\n", "a\r\n\r\n.\r\n"),
	SC("a\r\r", "a\r\n\r\n.\r\n"),
	SC("a\r.b", "a\r\n..b\r\n.\r\n"),
};

/*
 * Convert in, a first piece of first bytes and then pieces of step bytes,
 * into an output buffer of room bytes that is emptied into a growing
 * result whenever it is full.
 */
static char *
convert(enum dotstuff_cr mode, const char *in, size_t inlen, size_t first,
    size_t step, size_t room, size_t *outlen)
{
	struct dotstuff d;
	char *out = malloc(inlen * 4 + 16), *buf = malloc(room);
	size_t off = 0, used = 0, len = 0, n, k, w, piece = first;

	assert_non_null(out);
	assert_non_null(buf);
	dotstuff_init(&d, mode);
	while (off < inlen) {
		n = inlen - off < piece ? inlen - off : piece;
		piece = step;
		while (n > 0) {
			if (room - used < DOTSTUFF_ROOM_MIN) {
				memcpy(out + len, buf, used);
				len += used;
				used = 0;
			}
			k = dotstuff_put(&d, in + off, n, buf + used,
			    room - used, &w);
			assert_true(k > 0);
			assert_true(w <= room - used);
			used += w;
			off += k;
			n -= k;
		}
	}
	memcpy(out + len, buf, used);
	len += used;
	len += dotstuff_end(&d, out + len);
	free(buf);
	*outlen = len;
	return out;
}

static void
check(enum dotstuff_cr mode, const struct stuff_case *c, size_t first,
    size_t step, size_t room, const char *how)
{
	size_t len;
	char *in = malloc(c->inlen + 1), *out;

	/* The input in a buffer of its own length: ASan sees an overread. */
	assert_non_null(in);
	memcpy(in, c->in, c->inlen);
	out = convert(mode, in, c->inlen, first, step, room, &len);
	if (len != c->outlen || memcmp(out, c->out, len) != 0)
		fail_msg("mode %d %s (%zu, then %zu; room %zu): \"%.*s\" "
		    "gave %zu bytes", (int)mode, how, first, step, room,
		    (int)c->inlen, c->in, len);
	free(out);
	free(in);
}

/* Every way of cutting the input must give the same bytes. */
static void
run_cases(enum dotstuff_cr mode, const struct stuff_case *cs, size_t n)
{
	static const size_t steps[] = { SIZE_MAX, 1, 2, 7 };
	size_t i, s, cut;

	for (i = 0; i < n; i++) {
		for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			check(mode, &cs[i], steps[s], steps[s], 4096, "pieces");
			check(mode, &cs[i], steps[s], steps[s],
			    DOTSTUFF_ROOM_MIN, "small room");
		}
		for (cut = 1; cut < cs[i].inlen; cut++)
			check(mode, &cs[i], cut, SIZE_MAX, 4096, "split");
	}
}

static void
test_common_cases(void **state)
{
	size_t n = sizeof(common_cases) / sizeof(common_cases[0]);

	(void)state;
	run_cases(DOTSTUFF_CR_TEXT, common_cases, n);
	run_cases(DOTSTUFF_CR_EOL, common_cases, n);
}

static void
test_cr_text(void **state)
{
	(void)state;
	run_cases(DOTSTUFF_CR_TEXT, text_cases,
	    sizeof(text_cases) / sizeof(text_cases[0]));
}

static void
test_cr_eol(void **state)
{
	(void)state;
	run_cases(DOTSTUFF_CR_EOL, eol_cases,
	    sizeof(eol_cases) / sizeof(eol_cases[0]));
}

/* The plain conversion, byte by byte with a look ahead, for large input. */
static char *
reference(enum dotstuff_cr mode, const char *in, size_t len, size_t *outlen)
{
	char *out = malloc(len * 4 + 8), *o = out;
	size_t i;
	int bol = 1;

	assert_non_null(out);
	for (i = 0; i < len; i++) {
		if (in[i] == '\n' || (in[i] == '\r' && (i + 1 == len ||
		    in[i + 1] == '\n' || mode == DOTSTUFF_CR_EOL))) {
			if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
				i++;
			*o++ = '\r';
			*o++ = '\n';
			bol = 1;
			continue;
		}
		if (bol && in[i] == '.')
			*o++ = '.';
		*o++ = in[i];
		bol = 0;
	}
	if (!bol) {
		*o++ = '\r';
		*o++ = '\n';
	}
	memcpy(o, ".\r\n", 3);
	*outlen = (size_t)(o + 3 - out);
	return out;
}

/* Random text of lines, dots and CRs, in pieces of random size. */
static void
test_large_random(void **state)
{
	const size_t len = 2 * 1024 * 1024 + 13;
	static const char alphabet[] = "\n\r..abc";
	char *in = malloc(len), *got, *want;
	unsigned seed = 11;
	size_t i, glen, wlen, step;
	int mode;

	(void)state;
	assert_non_null(in);
	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		in[i] = (seed >> 16) % 3 == 0 ?
		    alphabet[(seed >> 20) % (sizeof(alphabet) - 1)] :
		    (char)('d' + (seed >> 18) % 20);
	}
	for (mode = DOTSTUFF_CR_TEXT; mode <= DOTSTUFF_CR_EOL; mode++) {
		/* Pieces of an odd size, and the whole at once. */
		step = mode == DOTSTUFF_CR_TEXT ? 4093 : len;
		got = convert((enum dotstuff_cr)mode, in, len, step, step,
		    16384, &glen);
		want = reference((enum dotstuff_cr)mode, in, len, &wlen);
		assert_int_equal(glen, wlen);
		assert_memory_equal(got, want, wlen);
		free(got);
		free(want);
	}
	/* One byte at a time, the slowest way, over a smaller part. */
	got = convert(DOTSTUFF_CR_EOL, in, 65536, 1, 1, DOTSTUFF_ROOM_MIN,
	    &glen);
	want = reference(DOTSTUFF_CR_EOL, in, 65536, &wlen);
	assert_int_equal(glen, wlen);
	assert_memory_equal(got, want, wlen);
	free(got);
	free(want);
	free(in);
}

/* Too little room: nothing consumed, nothing written. */
static void
test_no_room(void **state)
{
	struct dotstuff d;
	char out[DOTSTUFF_ROOM_MIN];
	size_t w = 99;

	(void)state;
	dotstuff_init(&d, DOTSTUFF_CR_TEXT);
	assert_int_equal(dotstuff_put(&d, "abc", 3, out,
	    DOTSTUFF_ROOM_MIN - 1, &w), 0);
	assert_int_equal(w, 0);
	assert_int_equal(dotstuff_put(&d, "abc", 3, out, DOTSTUFF_ROOM_MIN,
	    &w), 1);
	assert_int_equal(w, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_cases),
		cmocka_unit_test(test_cr_text),
		cmocka_unit_test(test_cr_eol),
		cmocka_unit_test(test_large_random),
		cmocka_unit_test(test_no_room),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
