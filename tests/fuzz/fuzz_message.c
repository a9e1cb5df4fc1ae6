/*
 * Fuzz target for the text reader and the message builder together
 * (mppd/text.c, mppd/message.c): raw bytes as the client's DATA text.
 *
 * Input: byte 0 picks options (see OPT_*), bytes 1..2 the piece sizes for
 * the chunked run; the rest is the text. When the text has no end marker,
 * "\r\n.\r\n" is fed after it, as a client must send one. Three runs, fed
 * whole, in pieces and one byte at a time (texts up to BYTES_RUN_MAX), must
 * agree on the verdict and, for MSG_OK, on the recipients and every byte of
 * the output.
 *
 * For MSG_OK the output must be a sound message: our Received: header
 * first, no CR or NUL (the reader emits a CR only for a bare one, which
 * refuses the text), LF-ended, its header section made only of whole
 * fields with no Bcc:, Resent-Bcc:, Return-Path:, client Sender: or
 * Resent-Sender:, nor a second Received: that reads "by mpp.test", and
 * From:, Date: and Message-ID: present. Sender: is there when From: is
 * not the poster alone, or when a quoted string or comment in it shows an
 * address other than the poster's, or it holds a look-alike at-sign (a
 * simpler reading than the builder's, which decodes more: it may only ask
 * for Sender: less often). Recipients: 1..max, distinct ignoring case,
 * each with an '@'. MSG_TEMPFAIL only when the spill hook failed; a text
 * over max_size or with a bare CR/LF or NUL is never MSG_OK.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "rfc5322.h"
#include "../../mppd/message.h"
#include "../../mppd/text.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OPT_SMALL_SIZE	0x01	/* max_size 300 */
#define OPT_FEW_RCPTS	0x02	/* max_rcpts 2 */
#define OPT_SPILL_FAIL	0x04	/* the first spill fails */
#define OPT_NO_SPILL	0x08	/* no spill hook: all output in memory */
#define OPT_LOW_SPILL	0x70	/* all three: pad so that output crosses
				   the spill mark (slow: an eighth of runs) */

#define HEADER_BYTES 3

/*
 * Regression: a message with several From: fields once passed without
 * Sender: when only the last named the poster; such a text is now
 * refused, so every stored one has at most one From:.
 */

#define BYTES_RUN_MAX 8192
#define OUR_SENDER "Sender: <alice@example.org>\n"
#define OUR_RSENDER "Resent-Sender: <alice@example.org>\n"

#define RECEIVED "Received: from [192.0.2.7] (user alice)\n" \
	"\tby mpp.test (mppd) with MPP id 1.M1P1Q1;\n" \
	"\tThu, 1 Jan 1970 00:00:00 +0000\n"

struct run {
	struct message *m;
	struct text_reader t;
	struct buf out;			/* spilled, then the rest */
	int spills, spill_fail;
	enum message_verdict verdict;
};

static int
emit(void *ctx, const char *data, size_t len)
{
	struct run *r = ctx;

	CHECK(len > 0);
	CHECK(message_append(r->m, data, len) == 0);
	return 0;
}

static int
spill(void *ctx, const char *data, size_t len)
{
	struct run *r = ctx;

	CHECK(len >= MESSAGE_SPILL_AT);
	r->spills++;
	if (r->spill_fail && r->spills == 1)
		return -1;
	CHECK(buf_append(&r->out, data, len) == 0);
	return 0;
}

/*
 * Feed in[0..len) to the reader in pieces of the sizes steps gives in
 * turn (NULL: whole); long texts in pieces of at least 64 bytes.
 */
static void
feed(struct run *r, const char *in, size_t len, const uint8_t *steps)
{
	size_t off = 0, n, k = 0, least = len > BYTES_RUN_MAX ? 64 : 1;
	long used;

	while (off < len && r->t.pos != TP_DONE) {
		n = steps == NULL ? len - off : least + (size_t)steps[k++ % 2];
		if (n > len - off)
			n = len - off;
		used = text_feed(&r->t, in + off, n, emit, r);
		CHECK(used >= 0 && (size_t)used <= n);
		CHECK((size_t)used == n || r->t.pos == TP_DONE);
		off += (size_t)used;
	}
}

static void
run(const struct message_params *p, unsigned opts, const char *in,
    size_t len, const uint8_t *steps, struct run *r)
{
	static const char end[] = "\r\n.\r\n";
	static const uint8_t one[2] = { 0, 0 };
	struct buf *rest;

	memset(r, 0, sizeof(*r));
	r->spill_fail = (opts & OPT_SPILL_FAIL) != 0;
	r->m = message_new(p, (opts & OPT_NO_SPILL) ? NULL : spill, r);
	CHECK(r->m != NULL);
	text_init(&r->t);
	feed(r, in, len, steps);
	if (r->t.pos != TP_DONE)
		feed(r, end, sizeof(end) - 1, steps == NULL ? NULL : one);
	CHECK(r->t.pos == TP_DONE);
	r->verdict = message_finish(r->m, r->t.bare_crlf, r->t.nul);
	CHECK(r->verdict == MSG_OK || r->verdict == MSG_REJECT ||
	    r->verdict == MSG_TEMPFAIL);
	rest = message_output(r->m);
	CHECK(buf_append(&r->out, rest->data, rest->len) == 0);
}

/* Counts the addresses of a From: field, and those that are the sender. */
struct from_count {
	int n, sender;
};

static int
from_addr(const char *addr, int has_domain, void *ctx)
{
	struct from_count *fc = ctx;

	fc->n++;
	/* The local part exact, the domain in any case. */
	fc->sender += has_domain && strncmp(addr, "alice@", 6) == 0 &&
	    strcasecmp(addr + 6, "example.org") == 0;
	return 0;
}

/*
 * Does the quoted string or comment content c[0..n) show an address other
 * than the poster's? Content the builder would unquote, unfold or decode
 * first (a backslash, an LF, "=?") is not judged here.
 */
static int
content_shows_other(const char *c, size_t n)
{
	while (n > 0 && (*c == ' ' || *c == '\t')) {
		c++;
		n--;
	}
	while (n > 0 && (c[n - 1] == ' ' || c[n - 1] == '\t'))
		n--;
	if (memchr(c, '\\', n) || memchr(c, '\n', n) || memmem(c, n, "=?", 2) ||
	    memchr(c, '@', n) == NULL)
		return 0;
	return !(n == 17 && strncmp(c, "alice@", 6) == 0 &&
	    strncasecmp(c + 6, "example.org", 11) == 0);
}

/* A From: value whose display text claims another address, read simply. */
static int
from_shows_other(const char *v, size_t len)
{
	size_t i, start, depth;

	if (memmem(v, len, "\xef\xbc\xa0", 3) || memmem(v, len, "\xef\xb9\xab", 3))
		return 1;
	for (i = 0; i < len; i++) {
		if (v[i] == '"') {
			for (start = ++i; i < len && v[i] != '"'; i++)
				i += v[i] == '\\';
		} else if (v[i] == '(') {
			for (start = ++i, depth = 1; i < len; i++) {
				if (v[i] == '\\')
					i++;
				else if (v[i] == '(')
					depth++;
				else if (v[i] == ')' && --depth == 0)
					break;
			}
		} else
			continue;
		if (content_shows_other(v + start, (i < len ? i : len) - start))
			return 1;
	}
	return 0;
}

/* Does a Received: value read "by mpp.test" (one space or tab between)? */
static int
names_us(const char *v, size_t len)
{
	size_t i;

	for (i = 0; i + 11 <= len; i++)
		if (strncasecmp(v + i, "by", 2) == 0 &&
		    (v[i + 2] == ' ' || v[i + 2] == '\t') &&
		    strncasecmp(v + i + 3, "mpp.test", 8) == 0 &&
		    (i == 0 || strchr(" \t\n(;", v[i - 1]) != NULL) &&
		    (i + 11 == len || strchr(" \t\n(;", v[i + 11]) != NULL))
			return 1;
	return 0;
}

/* The header section of the output is whole fields, as they should be. */
static void
check_header(const char *out, size_t len)
{
	struct rfc5322_field f;
	size_t hlen, off = 0;
	int from = 0, date = 0, msgid = 0, received = 0, sender = 0, other = 0;
	int rsender = 0;
	int rc;
	const char *sep = NULL;
	size_t i;

	for (i = 0; i + 1 < len; i++)
		if (out[i] == '\n' && out[i + 1] == '\n') {
			sep = out + i + 1;
			break;
		}
	hlen = sep != NULL ? (size_t)(sep - out) : len;
	while ((rc = rfc5322_next_field(out, hlen, &off, &f)) == 1) {
		CHECK(f.raw[f.raw_len - 1] == '\n');
		CHECK(!rfc5322_field_is(&f, "Bcc"));
		CHECK(!rfc5322_field_is(&f, "Resent-Bcc"));
		CHECK(!rfc5322_field_is(&f, "Return-Path"));
		if (rfc5322_field_is(&f, "Received") && received > 0)
			CHECK(!names_us(f.value, f.value_len));
		from += rfc5322_field_is(&f, "From");
		date += rfc5322_field_is(&f, "Date");
		msgid += rfc5322_field_is(&f, "Message-ID");
		if (rfc5322_field_is(&f, "Sender")) {
			CHECK(f.raw_len == sizeof(OUR_SENDER) - 1 &&
			    memcmp(f.raw, OUR_SENDER, f.raw_len) == 0);
			sender++;
		}
		if (rfc5322_field_is(&f, "Resent-Sender")) {
			CHECK(f.raw_len == sizeof(OUR_RSENDER) - 1 &&
			    memcmp(f.raw, OUR_RSENDER, f.raw_len) == 0);
			rsender++;
		}
		if (rfc5322_field_is(&f, "From")) {
			struct from_count fc = { 0, 0 };

			/* The builder parsed it before: it parses. */
			CHECK(rfc5322_parse_addresses(f.value, f.value_len,
			    from_addr, &fc) == 0);
			other += fc.n != 1 || fc.sender != 1 ||
			    from_shows_other(f.value, f.value_len);
		}
		/* Counted last: the check above skips our own, the first. */
		received += rfc5322_field_is(&f, "Received");
	}
	CHECK(sender <= 1 && rsender <= 1);
	/* A From: that is not the poster alone needs our Sender:. */
	CHECK(from == 1);
	if (other > 0)
		CHECK(sender == 1);
	CHECK(rc == 0 && off == hlen);		/* nothing but fields */
	CHECK(date >= 1 && msgid >= 1 && received >= 1);
}

static void
check_ok(const struct run *r, const struct message_params *p)
{
	size_t i, j, n = message_rcpt_count(r->m);

	CHECK(!r->t.bare_crlf && !r->t.nul);
	CHECK(r->t.bytes <= p->max_size);
	CHECK(message_size(r->m) == r->out.len);
	CHECK(r->out.len >= sizeof(RECEIVED) - 1);
	CHECK(memcmp(r->out.data, RECEIVED, sizeof(RECEIVED) - 1) == 0);
	CHECK(memchr(r->out.data, '\r', r->out.len) == NULL);
	CHECK(memchr(r->out.data, '\0', r->out.len) == NULL);
	CHECK(r->out.data[r->out.len - 1] == '\n');
	check_header(r->out.data, r->out.len);
	CHECK(n >= 1 && n <= p->max_rcpts);
	for (i = 0; i < n; i++) {
		const char *a = message_rcpt(r->m, i);

		CHECK(a != NULL && strlen(a) < MESSAGE_ADDR_MAX);
		CHECK(strchr(a, '@') != NULL);
		CHECK(strpbrk(a, "\r\n") == NULL);
		for (j = 0; j < i; j++)
			CHECK(!rfc5322_addr_same(a, message_rcpt(r->m, j)));
	}
}

static void
run_free(struct run *r)
{
	message_free(r->m);
	buf_free(&r->out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t one[2] = { 0, 0 };
	struct message_params p = { "1.M1P1Q1", "192.0.2.7", "mpp.test",
	    "alice", "alice@example.org", "example.org", 0, 10485760, 100 };
	const uint8_t *steps = one;
	struct run whole, pieces, bytes;
	struct buf text = { 0 };
	unsigned opts = size > 0 ? data[0] : 0;
	char *copy;
	size_t i;

	if (size >= HEADER_BYTES) {
		steps = data + 1;
		data += HEADER_BYTES;
		size -= HEADER_BYTES;
	} else
		size = 0;
	if (opts & OPT_SMALL_SIZE)
		p.max_size = 300;
	if (opts & OPT_FEW_RCPTS)
		p.max_rcpts = 2;
	/* Pad the body so the output crosses the spill mark. */
	CHECK(buf_append(&text, data, size) == 0);
	if ((opts & OPT_LOW_SPILL) == OPT_LOW_SPILL)
		for (i = 0; i < MESSAGE_SPILL_AT / 64 + 1; i++)
			CHECK(buf_puts(&text, "padding padding padding "
			    "padding padding padding padding\r\n") == 0);
	/* An exact copy, so ASan sees a read past the text. */
	copy = malloc(text.len > 0 ? text.len : 1);
	CHECK(copy != NULL);
	if (text.len > 0)
		memcpy(copy, text.data, text.len);
	run(&p, opts, copy, text.len, NULL, &whole);
	run(&p, opts, copy, text.len, steps, &pieces);
	/* Byte at a time only for short texts: the padded ones are slow. */
	run(&p, opts, copy, text.len, text.len <= BYTES_RUN_MAX ? one : steps,
	    &bytes);
	free(copy);
	buf_free(&text);

	if (whole.verdict == MSG_TEMPFAIL)
		CHECK((opts & OPT_SPILL_FAIL) && !(opts & OPT_NO_SPILL) &&
		    whole.spills >= 1);
	if (whole.t.bare_crlf || whole.t.nul || whole.t.bytes > p.max_size)
		CHECK(whole.verdict != MSG_OK);
	if (whole.verdict == MSG_OK)
		check_ok(&whole, &p);

	/*
	 * The way the text was cut changes nothing but, for a refused text,
	 * the reason: the first problem met, which may be the size or the
	 * header syntax depending on where a piece ended (the log's
	 * business only).
	 */
	CHECK(pieces.verdict == whole.verdict);
	CHECK(bytes.verdict == whole.verdict);
	CHECK(pieces.t.bytes == whole.t.bytes);
	CHECK(bytes.t.bytes == whole.t.bytes);
	CHECK(pieces.t.bare_crlf == whole.t.bare_crlf &&
	    bytes.t.nul == whole.t.nul);
	if (whole.verdict == MSG_OK) {
		const struct run *o[2] = { &pieces, &bytes };

		for (i = 0; i < 2; i++) {
			CHECK(o[i]->out.len == whole.out.len);
			CHECK(memcmp(o[i]->out.data, whole.out.data,
			    whole.out.len) == 0);
			CHECK(message_rcpt_count(o[i]->m) ==
			    message_rcpt_count(whole.m));
		}
		for (i = 0; i < message_rcpt_count(whole.m); i++) {
			CHECK(strcmp(message_rcpt(pieces.m, i),
			    message_rcpt(whole.m, i)) == 0);
			CHECK(strcmp(message_rcpt(bytes.m, i),
			    message_rcpt(whole.m, i)) == 0);
		}
	}
	run_free(&whole);
	run_free(&pieces);
	run_free(&bytes);
	return 0;
}
