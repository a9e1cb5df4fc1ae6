/*
 * Unit tests for mppd/text.c, the reader of a message text after 354.
 *
 * One table of cases (input bytes -> unstuffed output, flags, bytes
 * consumed), each run three ways that must agree: the input whole, one byte
 * at a time, and split in two at every position. Inputs are copied into
 * heap buffers of exactly their length so AddressSanitizer catches a read
 * past the end; the consumed count proves bytes after the end marker are
 * left for the next command.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "../../mppd/text.h"

struct text_case {
	const char *label;
	const char *in;
	size_t inlen;		/* 0: strlen(in) */
	const char *out;
	size_t outlen;		/* 0: strlen(out) */
	int done;		/* the end marker is in the input */
	size_t consumed;	/* when done: bytes up to the marker's LF */
	int bare;
	int nul;
};

#define T(l, i, o, d, c, b, n) { l, i, 0, o, 0, d, c, b, n }
#define TN(l, i, il, o, ol, d, c, b, n) { l, i, il, o, ol, d, c, b, n }

static const struct text_case cases[] = {
	T("empty text", ".\r\n", "", 1, 3, 0, 0),
	T("one line", "hello\r\n.\r\n", "hello\n", 1, 10, 0, 0),
	T("two lines", "a\r\nb\r\n.\r\n", "a\nb\n", 1, 9, 0, 0),
	T("empty lines kept", "\r\n\r\nx\r\n.\r\n", "\n\nx\n", 1, 10, 0, 0),
	T("stuffed dot", "..\r\n.\r\n", ".\n", 1, 7, 0, 0),
	T("stuffed dots", "...x\r\n.\r\n", "..x\n", 1, 9, 0, 0),
	T("dot then text: dot dropped", ".x\r\n.\r\n", "x\n", 1, 7, 0, 0),
	T("dot space", ". \r\n.\r\n", " \n", 1, 7, 0, 0),
	T("dot mid-line kept", "a.b\r\n.\r\n", "a.b\n", 1, 8, 0, 0),
	T("dot at end of line kept", "a.\r\n.\r\n", "a.\n", 1, 7, 0, 0),
	T("bytes after the marker are not consumed", "a\r\n.\r\nQUIT\r\n",
	    "a\n", 1, 6, 0, 0),
	T("marker first, then more", ".\r\nNOOP\r\n", "", 1, 3, 0, 0),
	T("no marker yet", "a\r\nb", "a\nb", 0, 0, 0, 0),
	T("line ends at CR, waiting for LF", "a\r", "a", 0, 0, 0, 0),
	T("dot CR at start, waiting", "a\r\n.\r", "a\n", 0, 0, 0, 0),
	T("dot at start, waiting", "a\r\n.", "a\n", 0, 0, 0, 0),
	T("not a marker: dot dot CRLF", "a\r\n..\r\nb\r\n.\r\n",
	    "a\n.\nb\n", 1, 13, 0, 0),
	T("not a marker: space dot", "a\r\n .\r\n.\r\n", "a\n .\n", 1, 10, 0,
	    0),
	T("bare CR in a line", "a\rb\r\n.\r\n", "a\rb\n", 1, 8, 1, 0),
	T("bare CR before CRLF", "a\r\r\n.\r\n", "a\r\n", 1, 7, 1, 0),
	T("bare CR at line start", "\rb\r\n.\r\n", "\rb\n", 1, 7, 1, 0),
	T("bare LF in a line", "a\nb\r\n.\r\n", "a\nb\n", 1, 8, 1, 0),
	T("bare LF only text", "a\nb\n", "a\nb\n", 0, 0, 1, 0),
	T("dot CR not followed by LF", ".\rx\r\n.\r\n", "\rx\n", 1, 8, 1,
	    0),
	T("dot CR CR LF", ".\r\r\n.\r\n", "\r\n", 1, 7, 1, 0),
	T("CR dot CRLF is no marker", "a\r.\r\nb\r\n.\r\n", "a\r.\nb\n", 1,
	    11, 1, 0),
	TN("NUL in a line", "a\0b\r\n.\r\n", 8, "a\0b\n", 4, 1, 8, 0, 1),
	TN("NUL after stuffing dot", ".\0\r\n.\r\n", 7, "\0\n", 2, 1, 7, 0,
	    1),
	TN("NUL after the marker not seen", "a\r\n.\r\n\0", 7, "a\n", 0, 1,
	    6, 0, 0),
	T("8-bit bytes pass", "\xc3\xa9t\xc3\xa9\r\n.\r\n",
	    "\xc3\xa9t\xc3\xa9\n", 1, 10, 0, 0),
	T("header and body", "To: a@b\r\n\r\n..hi\r\n.\r\n",
	    "To: a@b\n\n.hi\n", 1, 20, 0, 0),
	T("marker after a stuffed line", "..\r\n.\r\nX", ".\n", 1, 7, 0, 0),
};

/* Collects the emitted spans. */
static int
collect(void *ctx, const char *data, size_t len)
{
	struct buf *b = ctx;

	assert_true(len > 0);
	assert_int_equal(buf_append(b, data, len), 0);
	return 0;
}

static char *
dup_exact(const char *s, size_t n)
{
	char *p = malloc(n > 0 ? n : 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

static size_t
case_inlen(const struct text_case *c)
{
	return c->inlen ? c->inlen : strlen(c->in);
}

static size_t
case_outlen(const struct text_case *c)
{
	return c->outlen ? c->outlen : strlen(c->out);
}

/* Check the result of one run against the case. */
static void
check_run(const struct text_case *c, const char *how,
    const struct text_reader *t, const struct buf *out, size_t consumed)
{
	size_t inlen = case_inlen(c), outlen = case_outlen(c);
	int ok = 1;

	if (out->len != outlen ||
	    (outlen > 0 && memcmp(out->data, c->out, outlen) != 0)) {
		print_error("%s (%s): output differs (%zu bytes, want %zu)\n",
		    c->label, how, out->len, outlen);
		ok = 0;
	}
	if ((t->pos == TP_DONE) != c->done) {
		print_error("%s (%s): done is %d, want %d\n", c->label, how,
		    t->pos == TP_DONE, c->done);
		ok = 0;
	}
	if (consumed != (c->done ? c->consumed : inlen)) {
		print_error("%s (%s): consumed %zu, want %zu\n", c->label,
		    how, consumed, c->done ? c->consumed : inlen);
		ok = 0;
	}
	if (t->bare_crlf != c->bare || t->nul != c->nul) {
		print_error("%s (%s): bare %d nul %d, want %d %d\n", c->label,
		    how, t->bare_crlf, t->nul, c->bare, c->nul);
		ok = 0;
	}
	if (t->bytes != out->len) {
		print_error("%s (%s): bytes %llu, emitted %zu\n", c->label,
		    how, t->bytes, out->len);
		ok = 0;
	}
	if (!ok)
		fail();
}

/*
 * Feed in[0..len) as the pieces [0,cut1) [cut1,cut2) ... a host would: a
 * piece is fed until the reader stops (done); each call gets its own exact
 * heap copy. step 0 means whole, else pieces of step bytes; cut (when
 * nonzero and step 0) splits once there.
 */
static size_t
feed_pieces(struct text_reader *t, struct buf *out, const char *in,
    size_t len, size_t step, size_t cut)
{
	size_t off = 0, n;
	long r;
	char *piece;

	while (off < len && t->pos != TP_DONE) {
		if (step > 0)
			n = step;
		else if (cut > 0 && off < cut)
			n = cut - off;
		else
			n = len - off;
		if (n > len - off)
			n = len - off;
		piece = dup_exact(in + off, n);
		r = text_feed(t, piece, n, collect, out);
		free(piece);
		assert_true(r >= 0 && (size_t)r <= n);
		if ((size_t)r < n)
			assert_int_equal(t->pos, TP_DONE);
		off += (size_t)r;
	}
	return off;
}

static void
test_whole(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct text_reader t;
		struct buf out = { 0 };
		size_t n;

		text_init(&t);
		n = feed_pieces(&t, &out, cases[i].in, case_inlen(&cases[i]),
		    0, 0);
		check_run(&cases[i], "whole", &t, &out, n);
		buf_free(&out);
	}
}

static void
test_byte_at_a_time(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct text_reader t;
		struct buf out = { 0 };
		size_t n;

		text_init(&t);
		n = feed_pieces(&t, &out, cases[i].in, case_inlen(&cases[i]),
		    1, 0);
		check_run(&cases[i], "byte at a time", &t, &out, n);
		buf_free(&out);
	}
}

static void
test_split_everywhere(void **state)
{
	size_t i, cut;
	char how[64];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (cut = 1; cut < case_inlen(&cases[i]); cut++) {
			struct text_reader t;
			struct buf out = { 0 };
			size_t n;

			text_init(&t);
			n = feed_pieces(&t, &out, cases[i].in,
			    case_inlen(&cases[i]), 0, cut);
			snprintf(how, sizeof(how), "split at %zu", cut);
			check_run(&cases[i], how, &t, &out, n);
			buf_free(&out);
		}
	}
}

/* Feeding nothing does nothing. */
static void
test_empty_feed(void **state)
{
	struct text_reader t;
	struct buf out = { 0 };

	text_init(&t);
	assert_int_equal(text_feed(&t, "", 0, collect, &out), 0);
	assert_int_equal(t.pos, TP_BOL);
	assert_int_equal(out.len, 0);
}

/* Plain text is emitted in spans, not byte by byte. */
static int
count_calls(void *ctx, const char *data, size_t len)
{
	(*(int *)ctx)++;
	return 0;
}

static void
test_spans(void **state)
{
	static const char in[] = "abcdefghij klmnop\r\nqrstu\r\n.\r\n";
	struct text_reader t;
	int calls = 0;

	text_init(&t);
	assert_int_equal(text_feed(&t, in, sizeof(in) - 1, count_calls,
	    &calls), (long)sizeof(in) - 1);
	assert_int_equal(t.pos, TP_DONE);
	/* "abc...nop", "\n", "qrstu", "\n" */
	assert_true(calls <= 4);
}

/* emit returning -1 stops the reader: text_feed returns -1. */
static int
refuse(void *ctx, const char *data, size_t len)
{
	return -1;
}

static void
test_emit_stops(void **state)
{
	static const char *const ins[] = { "abc\r\n.\r\n", "\r\n.\r\n",
	    "a\rb\r\n.\r\n", ".\rx" };
	size_t i;

	for (i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
		struct text_reader t;

		text_init(&t);
		assert_int_equal(text_feed(&t, ins[i], strlen(ins[i]), refuse,
		    NULL), -1);
	}
}

/*
 * Only CRLF.CRLF ends the text (DESIGN.md, "Text"). A bare LF followed by
 * ".\r\n" must not: the client's next line would otherwise be read as a
 * command (the desync behind "SMTP smuggling").
 */
static void
test_bare_lf_dot_is_no_marker(void **state)
{
	static const char in[] = "a\n.\r\nb\r\n.\r\n";
	struct text_reader t;
	struct buf out = { 0 };
	long n;

	/* Regression: text.c treats LF "." CRLF as the end marker: a bare LF
	 * moves the reader to TP_BOL, so "a\n.\r\n" ends the text after 5
	 * bytes and "b\r\n" is then read as a command. Now: the text
	 * runs on to the real CRLF.CRLF (11 bytes), bare_crlf set. The
	 * text is refused 550 either way (bare LF), but the stream is out
	 * of step with what the client meant. */
	text_init(&t);
	n = text_feed(&t, in, sizeof(in) - 1, collect, &out);
	assert_int_equal(t.bare_crlf, 1);
	assert_int_equal(n, (long)sizeof(in) - 1);
	assert_int_equal(t.pos, TP_DONE);
	buf_free(&out);
}

/*
 * A CR, LF or NUL at every place of lines long enough to span several of
 * the sixteen-byte blocks text.c tests at once: each is found where it is,
 * whether first, last or in the middle of a block, and the bytes around it
 * are kept whole.
 */
static void
test_special_byte_everywhere(void **state)
{
	static const char special[] = { '\r', '\n', '\0' };
	char in[96], want[96];
	size_t k, s, len;

	for (s = 0; s < sizeof(special); s++) {
		for (k = 0; k < 48; k++) {
			struct text_reader t;
			struct buf out = { 0 };
			char *piece;
			long n;

			memset(in, 'a', 48);
			in[k] = special[s];
			memcpy(in + 48, "\r\n.\r\n", 5);
			len = 53;
			memcpy(want, in, 48);
			want[48] = '\n';
			piece = dup_exact(in, len);
			text_init(&t);
			n = text_feed(&t, piece, len, collect, &out);
			free(piece);
			assert_int_equal(n, (long)len);
			assert_int_equal(t.pos, TP_DONE);
			assert_int_equal(out.len, 49);
			assert_memory_equal(out.data, want, 49);
			assert_int_equal(t.bare_crlf, special[s] != '\0');
			assert_int_equal(t.nul, special[s] == '\0');
			buf_free(&out);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_empty_feed),
		cmocka_unit_test(test_spans),
		cmocka_unit_test(test_emit_stops),
		cmocka_unit_test(test_bare_lf_dot_is_no_marker),
		cmocka_unit_test(test_special_byte_everywhere),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
