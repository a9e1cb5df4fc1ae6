/*
 * Fuzz target for mppqueue/smtp_reply.c: parse the input as a stream of
 * SMTP replies three times — whole, one byte at a time, and in pieces whose
 * sizes come from the input itself — and check the runs agree reply for
 * reply, as the transport depends on: a reply must not change with the way
 * the network happens to cut the bytes.
 *
 * Beyond that it checks the promises of smtp_reply.h for every reply: a
 * code from 200 to 599, 1 to SMTP_REPLY_LINES_MAX lines, a NUL-terminated
 * printable text of text_len bytes that starts with the code. Checks use
 * abort() so that they hold with NDEBUG too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mppqueue/smtp_reply.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a run saw: a running digest of its replies, and how it ended. */
struct run {
	unsigned long long digest;
	size_t replies;
	size_t taken;
	enum smtp_reply_status last;
	const char *error;
};

static void
check_reply(const struct smtp_reply *r)
{
	size_t i;

	CHECK(r->code >= 200 && r->code <= 599);
	CHECK(r->lines >= 1 && r->lines <= SMTP_REPLY_LINES_MAX);
	CHECK(r->text_len < SMTP_REPLY_TEXT_MAX);
	CHECK(r->text[r->text_len] == '\0');
	CHECK(r->text_len >= 3);
	CHECK((r->text[0] - '0') * 100 + (r->text[1] - '0') * 10 +
	    (r->text[2] - '0') == r->code);
	for (i = 0; i < r->text_len; i++)
		CHECK(r->text[i] >= 0x20 && r->text[i] < 0x7f);
	CHECK(r->has_size || r->size_max == 0);
	CHECK(r->has_size == 0 || r->has_size == 1);
	CHECK(r->has_pipelining == 0 || r->has_pipelining == 1);
}

/* Fold everything a reply says into d (FNV-1a). */
static unsigned long long
digest(unsigned long long d, const struct smtp_reply *r)
{
	const unsigned char *p = (const unsigned char *)r->text;
	unsigned long long v[6];
	size_t i;

	v[0] = (unsigned long long)r->code;
	v[1] = (unsigned long long)r->lines;
	v[2] = (unsigned long long)r->truncated;
	v[3] = (unsigned long long)r->has_size;
	v[4] = r->size_max;
	v[5] = (unsigned long long)r->has_pipelining;
	for (i = 0; i < 6; i++)
		d = (d ^ v[i]) * 1099511628211ULL;
	for (i = 0; i < r->text_len; i++)
		d = (d ^ p[i]) * 1099511628211ULL;
	return d;
}

/*
 * Feed data in pieces: piece sizes are taken in turn from sizes[] (a zero
 * means the rest), cycling; nsizes 0 feeds it whole.
 */
static void
run_feed(const uint8_t *data, size_t size, const uint8_t *sizes,
    size_t nsizes, struct run *out)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t off = 0, piece, used, k = 0;
	enum smtp_reply_status st = SMTP_REPLY_MORE;

	memset(out, 0, sizeof(*out));
	out->digest = 14695981039346656037ULL;
	smtp_reply_init(&p);
	while (off < size) {
		piece = nsizes ? sizes[k++ % nsizes] : 0;
		if (piece == 0 || piece > size - off)
			piece = size - off;
		st = smtp_reply_feed(&p, (const char *)data + off, piece,
		    &used, &r);
		CHECK(used <= piece);
		CHECK(st != SMTP_REPLY_MORE || used == piece);
		off += used;
		out->taken += used;
		if (st == SMTP_REPLY_ERROR)
			break;
		if (st == SMTP_REPLY_DONE) {
			CHECK(used > 0);
			check_reply(&r);
			out->digest = digest(out->digest, &r);
			out->replies++;
			st = SMTP_REPLY_MORE;
		}
	}
	out->last = st;
	out->error = p.error;
	CHECK((st == SMTP_REPLY_ERROR) == (p.error != NULL));
}

static void
same(const struct run *a, const struct run *b)
{
	CHECK(a->digest == b->digest);
	CHECK(a->replies == b->replies);
	CHECK(a->last == b->last);
	CHECK(a->error == b->error);
	if (a->last != SMTP_REPLY_ERROR)
		CHECK(a->taken == b->taken);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t one = 1;
	struct run whole, bytes, pieces;

	run_feed(data, size, NULL, 0, &whole);
	if (whole.last != SMTP_REPLY_ERROR)
		CHECK(whole.taken == size);
	run_feed(data, size, &one, 1, &bytes);
	same(&whole, &bytes);
	/* The first bytes, as sizes, also cut the stream at odd places. */
	run_feed(data, size, data, size < 8 ? size : 8, &pieces);
	same(&whole, &pieces);
	return 0;
}
