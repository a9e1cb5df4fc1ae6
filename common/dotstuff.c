/*
 * dotstuff — see dotstuff.h.
 *
 * The bytes in the middle of a line, up to the next CR or LF, are found
 * with memchr() and copied at once (this is the SMTP drain's inner loop);
 * only a line end, a CR and the first byte of a line take the slow path,
 * which writes at most 4 bytes for one input byte (a held CR that turns
 * out a line end, then a doubled dot), hence DOTSTUFF_ROOM_MIN.
 */
#include <string.h>

#include "dotstuff.h"

void
dotstuff_init(struct dotstuff *d, enum dotstuff_cr cr_mode)
{
	d->cr_mode = cr_mode;
	d->bol = 1;
	d->cr = 0;
}

/* Write a line end and start a new line: 2. */
static size_t
line_end(struct dotstuff *d, char *out)
{
	out[0] = '\r';
	out[1] = '\n';
	d->bol = 1;
	return 2;
}

/* The held CR, now that the byte after it is not LF: its bytes. */
static size_t
release_cr(struct dotstuff *d, char *out)
{
	d->cr = 0;
	if (d->cr_mode == DOTSTUFF_CR_EOL)
		return line_end(d, out);
	out[0] = '\r';
	d->bol = 0;
	return 1;
}

/* One byte that needs thought (line end, CR, start of a line). */
static size_t
slow_byte(struct dotstuff *d, char c, char *out)
{
	size_t o = 0;

	if (c == '\n') {
		d->cr = 0;
		return line_end(d, out);
	}
	if (d->cr)
		o = release_cr(d, out);
	if (c == '\r') {
		d->cr = 1;
		return o;
	}
	if (d->bol && c == '.')
		out[o++] = '.';
	out[o++] = c;
	d->bol = 0;
	return o;
}

/* How many of p[0..max) come before the first CR or LF. */
static size_t
plain_run(const char *p, size_t max)
{
	const char *lf = memchr(p, '\n', max);
	size_t n = lf != NULL ? (size_t)(lf - p) : max;
	const char *cr = memchr(p, '\r', n);

	return cr != NULL ? (size_t)(cr - p) : n;
}

size_t
dotstuff_put(struct dotstuff *d, const char *in, size_t len, char *out,
    size_t room, size_t *written)
{
	size_t i = 0, o = 0, k;

	while (i < len && room - o >= DOTSTUFF_ROOM_MIN) {
		if (!d->bol && !d->cr) {
			k = plain_run(in + i, len - i < room - o ? len - i :
			    room - o);
			memcpy(out + o, in + i, k);
			i += k;
			o += k;
			if (k > 0)
				continue;
		}
		o += slow_byte(d, in[i++], out + o);
	}
	*written = o;
	return i;
}

size_t
dotstuff_end(struct dotstuff *d, char *out)
{
	size_t o = 0;

	if (d->cr) {
		d->cr = 0;
		o = line_end(d, out);
	}
	if (!d->bol)
		o += line_end(d, out + o);
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}
