/*
 * Fuzz target for common/dotstuff.c: convert the input under both CR
 * rules three ways — whole into a large buffer, one byte at a time into a
 * buffer of only DOTSTUFF_ROOM_MIN bytes, and in pieces whose sizes come
 * from the input itself — and check the three agree: the wire form must
 * not depend on how the text was cut.
 *
 * Then the promises of the wire form: every LF follows a CR (and under
 * DOTSTUFF_CR_EOL every CR comes before an LF), the text ends with "."
 * CRLF on a line of its own and no other line is a lone dot, and undoing
 * the stuffing (drop a line's first dot, CRLF to LF) gives back the input
 * with its line ends made LF and a last one added where it was missing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dotstuff.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Convert in, pieces sized by sizes[] in turn (0: all), through room. */
static char *
convert(enum dotstuff_cr mode, const char *in, size_t len,
    const uint8_t *sizes, size_t nsizes, size_t room, size_t *outlen)
{
	struct dotstuff d;
	char *out = malloc(len * 4 + 16), *buf = malloc(room);
	size_t off = 0, used = 0, o = 0, n, k, w, s = 0;

	CHECK(out != NULL && buf != NULL);
	dotstuff_init(&d, mode);
	while (off < len) {
		n = nsizes > 0 ? (size_t)sizes[s++ % nsizes] + 1 : len;
		if (n > len - off)
			n = len - off;
		while (n > 0) {
			if (room - used < DOTSTUFF_ROOM_MIN) {
				memcpy(out + o, buf, used);
				o += used;
				used = 0;
			}
			k = dotstuff_put(&d, in + off, n, buf + used,
			    room - used, &w);
			CHECK(k > 0 && w <= room - used && w <= 4 * k + 2);
			used += w;
			off += k;
			n -= k;
		}
	}
	memcpy(out + o, buf, used);
	o += used;
	o += dotstuff_end(&d, out + o);
	free(buf);
	*outlen = o;
	return out;
}

/* The input as the far end should read it back: LF line ends. */
static char *
expected(enum dotstuff_cr mode, const char *in, size_t len, size_t *outlen)
{
	char *e = malloc(len + 2);
	size_t i, o = 0;

	CHECK(e != NULL);
	for (i = 0; i < len; i++) {
		if (in[i] == '\r' && (i + 1 == len || in[i + 1] == '\n' ||
		    mode == DOTSTUFF_CR_EOL)) {
			if (i + 1 < len && in[i + 1] == '\n')
				i++;
			e[o++] = '\n';
		} else
			e[o++] = in[i];
	}
	if (o > 0 && e[o - 1] != '\n')
		e[o++] = '\n';
	*outlen = o;
	return e;
}

/* Check the wire form and undo it: lines, dots, the end marker. */
static void
check_wire(enum dotstuff_cr mode, const char *in, size_t inlen,
    const char *w, size_t len)
{
	char *back = malloc(len + 1), *want;
	size_t i, o = 0, wantlen;
	int bol = 1;

	CHECK(back != NULL);
	CHECK(len >= 3 && memcmp(w + len - 3, ".\r\n", 3) == 0);
	CHECK(len == 3 || (len >= 5 && memcmp(w + len - 5, "\r\n", 2) == 0));
	for (i = 0; i < len - 3; i++) {
		if (w[i] == '\n')
			CHECK(i > 0 && w[i - 1] == '\r');
		if (w[i] == '\r' && mode == DOTSTUFF_CR_EOL)
			CHECK(i + 1 < len && w[i + 1] == '\n');
		if (bol && w[i] == '.') {
			CHECK(w[i + 1] == '.');
			i++;		/* the added dot goes */
		}
		bol = w[i] == '\n';
		if (w[i] == '\r' && w[i + 1] == '\n')
			continue;	/* CRLF reads back as LF */
		back[o++] = w[i];
	}
	want = expected(mode, in, inlen, &wantlen);
	CHECK(o == wantlen && memcmp(back, want, o) == 0);
	free(want);
	free(back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	size_t len[3], i, nsizes = size < 16 ? size : 16;
	char *out[3];
	int mode;

	for (mode = DOTSTUFF_CR_TEXT; mode <= DOTSTUFF_CR_EOL; mode++) {
		out[0] = convert((enum dotstuff_cr)mode, in, size, NULL, 0,
		    4 * size + 16, &len[0]);
		out[1] = convert((enum dotstuff_cr)mode, in, size,
		    (const uint8_t *)"", 1, DOTSTUFF_ROOM_MIN, &len[1]);
		out[2] = convert((enum dotstuff_cr)mode, in, size, data,
		    nsizes, 64, &len[2]);
		for (i = 1; i < 3; i++)
			CHECK(len[i] == len[0] &&
			    memcmp(out[i], out[0], len[0]) == 0);
		check_wire((enum dotstuff_cr)mode, in, size, out[0], len[0]);
		for (i = 0; i < 3; i++)
			free(out[i]);
	}
	return 0;
}
