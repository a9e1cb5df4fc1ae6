/*
 * Unit tests for mppqueue/smtp_reply.c: the incremental SMTP reply parser.
 * Table-driven; every case is fed whole, one byte at a time, and in chunks
 * of three bytes, and the three runs must give the same replies, the same
 * final status and the same error. Inputs live in heap buffers of exactly
 * their length, so AddressSanitizer catches any read past the end.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../mppqueue/smtp_reply.h"

#define MAX_REPLIES 4

struct rexp {
	int code;		/* 0 ends the list */
	int lines;
	const char *text;
	int has_size;
	unsigned long long size_max;
	int has_pipelining;
	int truncated;
};

struct reply_case {
	const char *label;
	const char *in;
	size_t len;		/* 0: strlen(in) */
	struct rexp r[MAX_REPLIES];
	enum smtp_reply_status last;	/* after the replies: MORE or ERROR */
	const char *error;		/* parser's text when ERROR */
};

static const struct reply_case cases[] = {
	{ "greeting", "220 mx.example ESMTP ready\r\n",
	  0, { { 220, 1, "220 mx.example ESMTP ready", 0, 0, 0, 0 } },
	  SMTP_REPLY_MORE, NULL },
	{ "bare code", "250\r\n",
	  0, { { 250, 1, "250", 0, 0, 0, 0 } }, SMTP_REPLY_MORE, NULL },
	{ "bare LF line end", "250 ok\n",
	  0, { { 250, 1, "250 ok", 0, 0, 0, 0 } }, SMTP_REPLY_MORE, NULL },
	{ "EHLO with SIZE and PIPELINING",
	  "250-mx.example Hello\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
	  "250 PIPELINING\r\n",
	  0, { { 250, 4, "250-mx.example Hello 250-SIZE 10240000 "
	      "250-8BITMIME 250 PIPELINING", 1, 10240000, 1, 0 } },
	  SMTP_REPLY_MORE, NULL },
	{ "EHLO keywords in lower case, SIZE without a limit",
	  "250-mx\r\n250-size\r\n250 pipelining\r\n",
	  0, { { 250, 3, "250-mx 250-size 250 pipelining", 1, 0, 1, 0 } },
	  SMTP_REPLY_MORE, NULL },
	{ "SIZE with a bad limit means none",
	  "250-mx\r\n250 SIZE 12ab\r\n",
	  0, { { 250, 2, "250-mx 250 SIZE 12ab", 1, 0, 0, 0 } },
	  SMTP_REPLY_MORE, NULL },
	{ "SIZE over the range saturates",
	  "250-mx\r\n250 SIZE 99999999999999999999999\r\n",
	  0, { { 250, 2, "250-mx 250 SIZE 99999999999999999999999", 1,
	      ULLONG_MAX, 0, 0 } }, SMTP_REPLY_MORE, NULL },
	{ "keywords only as whole words",
	  "250-mx\r\n250-SIZEX 5\r\n250-PIPELININGX\r\n250 X-SIZE 5\r\n",
	  0, { { 250, 4, "250-mx 250-SIZEX 5 250-PIPELININGX 250 X-SIZE 5",
	      0, 0, 0, 0 } }, SMTP_REPLY_MORE, NULL },
	{ "first line is the greeting, not a keyword",
	  "250-SIZE 100\r\n250 PIPELINING\r\n",
	  0, { { 250, 2, "250-SIZE 100 250 PIPELINING", 0, 0, 1, 0 } },
	  SMTP_REPLY_MORE, NULL },
	{ "two replies in one buffer (pipelining)",
	  "250 2.1.0 Ok\r\n550-5.1.1 no such user\r\n550 5.1.1 really\r\n"
	  "451 4.3.0 later\r\n",
	  0, { { 250, 1, "250 2.1.0 Ok", 0, 0, 0, 0 },
	       { 550, 2, "550-5.1.1 no such user 550 5.1.1 really", 0, 0, 0,
		 0 },
	       { 451, 1, "451 4.3.0 later", 0, 0, 0, 0 } },
	  SMTP_REPLY_MORE, NULL },
	{ "reply not finished", "250-first\r\n250",
	  0, { { 0 } }, SMTP_REPLY_MORE, NULL },
	{ "empty continuation text", "250-\r\n250 x\r\n",
	  0, { { 250, 2, "250- 250 x", 0, 0, 0, 0 } }, SMTP_REPLY_MORE, NULL },
	{ "control and 8-bit bytes made printable", "550 a\tb\x01\xff\"\\\r\n",
	  0, { { 550, 1, "550 a?b??\"\\", 0, 0, 0, 0 } }, SMTP_REPLY_MORE,
	  NULL },
	{ "CR inside a line", "250 a\rb\r\n",
	  0, { { 250, 1, "250 a?b", 0, 0, 0, 0 } }, SMTP_REPLY_MORE, NULL },
	{ "NUL inside a line", "250 a\0b\r\n", 10,
	  { { 250, 1, "250 a?b", 0, 0, 0, 0 } }, SMTP_REPLY_MORE, NULL },
	{ "421", "421 4.4.2 mx closing connection\r\n",
	  0, { { 421, 1, "421 4.4.2 mx closing connection", 0, 0, 0, 0 } },
	  SMTP_REPLY_MORE, NULL },
	{ "codes differ between lines", "250-a\r\n251 b\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "reply codes differ between lines" },
	{ "a good reply, then garbage", "250 ok\r\nhello\r\n",
	  0, { { 250, 1, "250 ok", 0, 0, 0, 0 } }, SMTP_REPLY_ERROR,
	  "malformed reply line" },
	{ "letters for a code", "abc def\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "malformed reply line" },
	{ "first digit 1", "150 x\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "malformed reply line" },
	{ "first digit 6", "650 x\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "malformed reply line" },
	{ "letter in the code", "2x0 x\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "malformed reply line" },
	{ "two-digit code", "25\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "malformed reply line" },
	{ "empty line", "\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "malformed reply line" },
	{ "no separator after the code", "250x\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "malformed reply line" },
	{ "four-digit code", "2500 x\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "malformed reply line" },
	{ "tab after the code", "250\tx\r\n",
	  0, { { 0 } }, SMTP_REPLY_ERROR, "malformed reply line" },
};

/* What one run over an input produced. */
struct run {
	struct smtp_reply got[MAX_REPLIES];
	int n;
	enum smtp_reply_status last;
	const char *error;
	size_t taken;		/* bytes the parser took in all */
};

/* A heap copy of s[0..n) with no byte after it; the caller frees it. */
static char *
dup_exact(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

/*
 * Feed buf[0..len) in pieces of step bytes (step 0: whole); a piece left
 * over after a reply is fed again. After an error, one more call must give
 * the error again.
 */
static void
run_feed(const char *buf, size_t len, size_t step, struct run *out)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t off = 0, end, used;
	enum smtp_reply_status st = SMTP_REPLY_MORE;

	memset(out, 0, sizeof(*out));
	smtp_reply_init(&p);
	while (off < len) {
		end = step == 0 || len - off < step ? len : off + step;
		st = smtp_reply_feed(&p, buf + off, end - off, &used, &r);
		assert_true(used <= end - off);
		/* Need more: every byte offered was taken. */
		if (st == SMTP_REPLY_MORE)
			assert_int_equal(used, end - off);
		off += used;
		out->taken += used;
		if (st == SMTP_REPLY_ERROR)
			break;
		if (st == SMTP_REPLY_DONE) {
			assert_true(out->n < MAX_REPLIES);
			out->got[out->n++] = r;
			st = SMTP_REPLY_MORE;
		}
	}
	out->last = st;
	out->error = p.error;
	if (st == SMTP_REPLY_ERROR) {
		assert_int_equal(smtp_reply_feed(&p, "250 x\r\n", 7, &used, &r),
		    SMTP_REPLY_ERROR);
		assert_int_equal(used, 0);
	}
}

static void
check_reply(const char *label, const char *how, int k,
    const struct smtp_reply *got, const struct rexp *want)
{
	if (got->code == want->code && got->lines == want->lines &&
	    strcmp(got->text, want->text) == 0 &&
	    got->text_len == strlen(got->text) &&
	    got->has_size == want->has_size &&
	    got->size_max == want->size_max &&
	    got->has_pipelining == want->has_pipelining &&
	    got->truncated == want->truncated)
		return;
	print_error("case \"%s\" (%s), reply %d: got %d/%d \"%s\" size %d/%llu "
	    "pipe %d trunc %d; want %d/%d \"%s\" size %d/%llu pipe %d trunc "
	    "%d\n", label, how, k, got->code, got->lines, got->text,
	    got->has_size, got->size_max, got->has_pipelining, got->truncated,
	    want->code, want->lines, want->text, want->has_size,
	    want->size_max, want->has_pipelining, want->truncated);
	fail();
}

/* Run one case whole, byte by byte and in threes; check every run. */
static void
check_case(const struct reply_case *c, const char *in, size_t len)
{
	static const struct {
		size_t step;
		const char *name;
	} ways[] = { { 0, "whole" }, { 1, "byte by byte" }, { 3, "threes" } };
	struct run run;
	char *buf = dup_exact(in, len);
	size_t w;
	int k, want_n;

	for (want_n = 0; want_n < MAX_REPLIES && c->r[want_n].code != 0;)
		want_n++;
	for (w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
		run_feed(buf, len, ways[w].step, &run);
		if (run.n != want_n || run.last != c->last) {
			print_error("case \"%s\" (%s): %d replies, status %d "
			    "(%s); want %d, %d\n", c->label, ways[w].name,
			    run.n, run.last, run.error ? run.error : "-",
			    want_n, c->last);
			fail();
		}
		for (k = 0; k < want_n; k++)
			check_reply(c->label, ways[w].name, k, &run.got[k],
			    &c->r[k]);
		if (c->last == SMTP_REPLY_ERROR)
			assert_string_equal(run.error, c->error);
		else {
			assert_null(run.error);
			assert_int_equal(run.taken, len);
		}
	}
	free(buf);
}

static void
test_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i], cases[i].in,
		    cases[i].len ? cases[i].len : strlen(cases[i].in));
}

/* Built inputs: lengths at the limits, which a table cannot spell. */

/* A line "CODE<sep>" padded with 'a' to total bytes, then eol. */
static size_t
put_line(char *p, const char *head, size_t total, const char *eol)
{
	size_t h = strlen(head), e = strlen(eol);

	assert_true(total >= h + e);
	memcpy(p, head, h);
	memset(p + h, 'a', total - h - e);
	memcpy(p + total - e, eol, e);
	return total;
}

static void
check_built(const char *label, const char *in, size_t len, int ok,
    const char *error)
{
	struct reply_case c;
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t used;

	memset(&c, 0, sizeof(c));
	c.label = label;
	if (!ok) {
		c.last = SMTP_REPLY_ERROR;
		c.error = error;
		check_case(&c, in, len);
		return;
	}
	/* The expected text depends on the input: take it from one run. */
	smtp_reply_init(&p);
	assert_int_equal(smtp_reply_feed(&p, in, len, &used, &r),
	    SMTP_REPLY_DONE);
	assert_int_equal(used, len);
	c.last = SMTP_REPLY_MORE;
	c.r[0].code = r.code;
	c.r[0].lines = r.lines;
	c.r[0].text = r.text;
	c.r[0].truncated = r.truncated;
	check_case(&c, in, len);
}

static void
test_line_limit(void **state)
{
	char buf[1200];

	(void)state;
	check_built("512 bytes with CRLF", buf,
	    put_line(buf, "250 ", 512, "\r\n"), 1, NULL);
	check_built("513 bytes with CRLF", buf,
	    put_line(buf, "250 ", 513, "\r\n"), 0, "reply line too long");
	check_built("512 bytes with LF", buf,
	    put_line(buf, "250 ", 512, "\n"), 1, NULL);
	check_built("513 bytes with LF", buf,
	    put_line(buf, "250 ", 513, "\n"), 0, "reply line too long");
	/* No line end at all: the error comes as soon as it is certain. */
	check_built("1100 bytes, no line end", buf,
	    put_line(buf, "250 ", 1100, ""), 0, "reply line too long");
}

/* n lines of the same code, the last one final. */
static size_t
put_lines(char *buf, int n, size_t each)
{
	size_t off = 0;
	int i;

	for (i = 0; i < n; i++)
		off += put_line(buf + off, i + 1 < n ? "250-" : "250 ", each,
		    "\r\n");
	return off;
}

static void
test_line_count(void **state)
{
	char *buf = malloc(200 * 512);
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t len, used;

	(void)state;
	assert_non_null(buf);
	len = put_lines(buf, 100, 10);
	smtp_reply_init(&p);
	assert_int_equal(smtp_reply_feed(&p, buf, len, &used, &r),
	    SMTP_REPLY_DONE);
	assert_int_equal(r.lines, 100);
	check_built("100 lines", buf, len, 1, NULL);
	check_built("101 lines", buf, put_lines(buf, 101, 10), 0,
	    "too many reply lines");
	free(buf);
}

static void
test_truncated_text(void **state)
{
	char buf[20 * 200];
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t len, used;

	(void)state;
	len = put_lines(buf, 20, 200);
	smtp_reply_init(&p);
	assert_int_equal(smtp_reply_feed(&p, buf, len, &used, &r),
	    SMTP_REPLY_DONE);
	assert_int_equal(r.lines, 20);
	assert_true(r.truncated);
	assert_int_equal(r.text_len, SMTP_REPLY_TEXT_MAX - 1);
	assert_int_equal(strlen(r.text), r.text_len);
	assert_memory_equal(r.text, "250-aaaa", 8);
	check_built("text cut", buf, len, 1, NULL);
}

/* One whole reply from in, into r. */
static void
feed_one(const char *in, struct smtp_reply *r)
{
	struct smtp_reply_parser p;
	size_t used;

	smtp_reply_init(&p);
	assert_int_equal(smtp_reply_feed(&p, in, strlen(in), &used, r),
	    SMTP_REPLY_DONE);
}

/* STARTTLS and AUTH with its mechanisms (RFC 3207, RFC 4954). */
static void
test_tls_auth_keywords(void **state)
{
	struct smtp_reply r;

	(void)state;
	feed_one("250-mx\r\n250-starttls\r\n250 AUTH CRAM-MD5 login PLAIN\r\n",
	    &r);
	assert_true(r.has_starttls && r.has_auth && r.auth_plain &&
	    r.auth_login);
	/* The old form "AUTH=", and mechanisms only as whole words. */
	feed_one("250-mx\r\n250-AUTH=LOGIN\r\n250 8BITMIME\r\n", &r);
	assert_true(r.has_auth && r.auth_login);
	assert_false(r.auth_plain || r.has_starttls);
	feed_one("250-mx\r\n250-AUTH PLAINX XLOGIN\r\n250 STARTTLSX\r\n", &r);
	assert_true(r.has_auth);
	assert_false(r.auth_plain || r.auth_login || r.has_starttls);
	feed_one("250-mx\r\n250 AUTH\r\n", &r);
	assert_true(r.has_auth);
	assert_false(r.auth_plain || r.auth_login);
	/* On the first line it is the server's name, no keyword. */
	feed_one("250 STARTTLS AUTH PLAIN\r\n", &r);
	assert_false(r.has_starttls || r.has_auth || r.auth_plain);
	feed_one("250-mx\r\n250 AUTHX PLAIN\r\n", &r);
	assert_false(r.has_auth || r.auth_plain);
}

/* The parser is reusable after a reply: the next one starts clean. */
static void
test_state_reset(void **state)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t used;
	const char *ehlo = "250-mx\r\n250-SIZE 5\r\n250 PIPELINING\r\n";

	(void)state;
	smtp_reply_init(&p);
	assert_int_equal(smtp_reply_feed(&p, ehlo, strlen(ehlo), &used, &r),
	    SMTP_REPLY_DONE);
	assert_true(r.has_size && r.has_pipelining);
	assert_int_equal(smtp_reply_feed(&p, "250 ok\r\n", 8, &used, &r),
	    SMTP_REPLY_DONE);
	assert_false(r.has_size || r.has_pipelining);
	assert_int_equal(r.lines, 1);
	assert_string_equal(r.text, "250 ok");
	/* Zero bytes: nothing changes. */
	assert_int_equal(smtp_reply_feed(&p, "", 0, &used, &r),
	    SMTP_REPLY_MORE);
	assert_int_equal(used, 0);
}

/* One whole reply from in; whether it offered 8BITMIME. */
static int
offers_8bitmime(const char *in)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t used;

	smtp_reply_init(&p);
	assert_int_equal(smtp_reply_feed(&p, in, strlen(in), &used, &r),
	    SMTP_REPLY_DONE);
	assert_int_equal(used, strlen(in));
	return r.has_8bitmime;
}

static void
test_8bitmime(void **state)
{
	(void)state;
	assert_true(offers_8bitmime("250-mx\r\n250-8BITMIME\r\n"
	    "250 PIPELINING\r\n"));
	assert_true(offers_8bitmime("250-mx\r\n250 8bitmime\r\n"));
	assert_false(offers_8bitmime("250-mx\r\n250-8BITMIMEX\r\n"
	    "250 X-8BITMIME\r\n"));
	/* The first line names the server; it is no keyword. */
	assert_false(offers_8bitmime("250-8BITMIME\r\n250 SIZE\r\n"));
	assert_false(offers_8bitmime("250 mx\r\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_line_count),
		cmocka_unit_test(test_truncated_text),
		cmocka_unit_test(test_state_reset),
		cmocka_unit_test(test_tls_auth_keywords),
		cmocka_unit_test(test_8bitmime),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
