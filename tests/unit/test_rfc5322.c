/*
 * Unit tests for common/rfc5322.c: header field splitting and address-list
 * parsing, table-driven, plus golden dumps of whole header sections.
 *
 * Every input is copied into a heap buffer of exactly its length before it
 * is parsed, so under AddressSanitizer any read past len is a test failure;
 * the "prefix" tests also check it semantically, by cutting a longer string
 * where reading one more byte would change the result.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <bsd/string.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfc5322.h"

/* A heap copy of s[0..n) with no byte after it; the caller frees it. */
static char *
dup_exact(const char *s, size_t n)
{
	char *p;

	p = malloc(n ? n : 1);
	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

/* Fail, naming the case, when got[0..gotlen) is not the string want. */
static void
check_mem(const char *label, const char *what, const char *got, size_t gotlen,
    const char *want)
{
	if (gotlen == strlen(want) && memcmp(got, want, gotlen) == 0)
		return;
	print_error("case \"%s\": %s is \"%.*s\", want \"%s\"\n", label, what,
	    (int)gotlen, got, want);
	fail();
}

static void
check_int(const char *label, const char *what, long got, long want)
{
	if (got == want)
		return;
	print_error("case \"%s\": %s is %ld, want %ld\n", label, what, got,
	    want);
	fail();
}

/* Field splitting. */

struct fexp {
	const char *name, *value, *raw;
};

struct field_case {
	const char *label;
	const char *in;
	struct fexp f[4];	/* the fields expected, up to a NULL name */
	int last;		/* what the call after them returns */
	const char *rest;	/* buf + *off after that call */
};

static const struct field_case field_cases[] = {
	{ "two fields, empty line, body",
	  "From: a@b\nTo: c@d\n\nbody\n",
	  { { "From", " a@b", "From: a@b\n" }, { "To", " c@d", "To: c@d\n" } },
	  0, "body\n" },
	{ "folded field",
	  "Subject: one\n two\n\tthree\nX: y\n\n",
	  { { "Subject", " one\n two\n\tthree",
	      "Subject: one\n two\n\tthree\n" },
	    { "X", " y", "X: y\n" } },
	  0, "" },
	{ "last field without LF",
	  "A: 1\nB: 2",
	  { { "A", " 1", "A: 1\n" }, { "B", " 2", "B: 2" } }, 0, "" },
	{ "folded last field without LF",
	  "A: 1\n 2",
	  { { "A", " 1\n 2", "A: 1\n 2" } }, 0, "" },
	{ "whitespace-only continuation line",
	  "A: 1\n \nbody",
	  { { "A", " 1\n ", "A: 1\n \n" } }, 0, "body" },
	{ "non-header line ends the headers",
	  "A: 1\nnot a header\nB: 2\n",
	  { { "A", " 1", "A: 1\n" } }, 0, "not a header\nB: 2\n" },
	{ "non-header line after a folded field",
	  "A: 1\n 2\nbody line\n",
	  { { "A", " 1\n 2", "A: 1\n 2\n" } }, 0, "body line\n" },
	{ "mbox From_ line is not a field",
	  "From a@b Mon Jan  1 00:00:00 2024\nA: 1\n",
	  { { NULL, NULL, NULL } }, 0,
	  "From a@b Mon Jan  1 00:00:00 2024\nA: 1\n" },
	{ "leading continuation (space)",
	  " A: 1\n", { { NULL, NULL, NULL } }, -1, " A: 1\n" },
	{ "leading continuation (tab)",
	  "\tx\nA: 1\n", { { NULL, NULL, NULL } }, -1, "\tx\nA: 1\n" },
	{ "obs whitespace before colon",
	  "Subject \t: hi\n\n",
	  { { "Subject", " hi", "Subject \t: hi\n" } }, 0, "" },
	{ "empty values",
	  "A:\nB:",
	  { { "A", "", "A:\n" }, { "B", "", "B:" } }, 0, "" },
	{ "empty input", "", { { NULL, NULL, NULL } }, 0, "" },
	{ "empty line only", "\nbody", { { NULL, NULL, NULL } }, 0, "body" },
	{ "colon first", ":x\n", { { NULL, NULL, NULL } }, 0, ":x\n" },
	{ "space inside name", "Sub ject: x\n", { { NULL, NULL, NULL } }, 0,
	  "Sub ject: x\n" },
	{ "8-bit in name", "Sub\xe9: x\n", { { NULL, NULL, NULL } }, 0,
	  "Sub\xe9: x\n" },
	{ "name without colon at end", "Subject", { { NULL, NULL, NULL } }, 0,
	  "Subject" },
	{ "name and space at end", "Subject ", { { NULL, NULL, NULL } }, 0,
	  "Subject " },
	{ "colon in value",
	  "A: b:c\n", { { "A", " b:c", "A: b:c\n" } }, 0, "" },
	{ "name with every kind of ftext",
	  "X-Foo_Bar.baz!#~: v\n",
	  { { "X-Foo_Bar.baz!#~", " v", "X-Foo_Bar.baz!#~: v\n" } }, 0, "" },
	{ "CR is not normalised here",
	  "A: 1\r\n\r\nbody",
	  { { "A", " 1\r", "A: 1\r\n" } }, 0, "\r\nbody" },
	{ "8-bit value",
	  "Subject: caf\xc3\xa9\n\n",
	  { { "Subject", " caf\xc3\xa9", "Subject: caf\xc3\xa9\n" } }, 0, "" },
	{ "continuation then empty line then body with fields",
	  "A: 1\n\tx\n\nB: 2\n",
	  { { "A", " 1\n\tx", "A: 1\n\tx\n" } }, 0, "B: 2\n" },
};

static void
run_field_case(const struct field_case *c)
{
	struct rfc5322_field f;
	size_t len = strlen(c->in), off = 0, i;
	char *buf = dup_exact(c->in, len);
	int r;

	for (i = 0; c->f[i].name != NULL; i++) {
		r = rfc5322_next_field(buf, len, &off, &f);
		check_int(c->label, "return", r, 1);
		check_mem(c->label, "name", f.name, f.name_len, c->f[i].name);
		check_mem(c->label, "value", f.value, f.value_len,
		    c->f[i].value);
		check_mem(c->label, "raw", f.raw, f.raw_len, c->f[i].raw);
		check_int(c->label, "offset", (long)off,
		    (long)(f.raw - buf + f.raw_len));
	}
	r = rfc5322_next_field(buf, len, &off, &f);
	check_int(c->label, "last return", r, c->last);
	check_mem(c->label, "rest", buf + off, len - off, c->rest);
	free(buf);
}

static void
test_fields(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(field_cases) / sizeof(field_cases[0]); i++)
		run_field_case(&field_cases[i]);
}

/* Once the end of the buffer is reached, every further call says so. */
static void
test_fields_at_end(void **state)
{
	static const char in[] = "A: 1\n";
	struct rfc5322_field f;
	size_t off = 0;
	char *buf = dup_exact(in, sizeof(in) - 1);

	(void)state;
	assert_int_equal(rfc5322_next_field(buf, 5, &off, &f), 1);
	assert_int_equal(off, 5);
	assert_int_equal(rfc5322_next_field(buf, 5, &off, &f), 0);
	assert_int_equal(rfc5322_next_field(buf, 5, &off, &f), 0);
	assert_int_equal(off, 5);
	assert_int_equal(rfc5322_next_field(NULL, 0, &off, &f), 0);
	free(buf);
}

/* The value is bytes, not a string: a NUL in it is kept. */
static void
test_fields_nul_in_value(void **state)
{
	static const char in[] = "A: x\0y\nB: z\n";
	struct rfc5322_field f;
	size_t off = 0;
	char *buf = dup_exact(in, sizeof(in) - 1);

	(void)state;
	assert_int_equal(rfc5322_next_field(buf, sizeof(in) - 1, &off, &f), 1);
	assert_int_equal(f.value_len, 4);
	assert_memory_equal(f.value, " x\0y", 4);
	assert_int_equal(rfc5322_next_field(buf, sizeof(in) - 1, &off, &f), 1);
	assert_true(rfc5322_field_is(&f, "b"));
	free(buf);
}

struct prefix_case {
	const char *label;
	const char *in;
	size_t len;		/* parse only in[0..len) */
	int r;
	const char *value;	/* when r == 1 */
	const char *rest;
};

/* A byte past len would change each of these results. */
static const struct prefix_case field_prefix_cases[] = {
	{ "continuation past len", "Subject: hi\n there\n", 12, 1, " hi", "" },
	{ "colon past len", "Subject: hi\n", 7, 0, NULL, "Subject" },
	{ "colon past len after space", "Subject : hi\n", 8, 0, NULL,
	  "Subject " },
	{ "LF past len", "A: b\n", 4, 1, " b", "" },
	{ "name past len", "A: b\nC: d\n", 5, 1, " b", "" },
};

static void
test_fields_prefix(void **state)
{
	const struct prefix_case *c;
	struct rfc5322_field f;
	size_t i, off;
	char *buf;
	int r;

	(void)state;
	for (i = 0; i < sizeof(field_prefix_cases) /
	    sizeof(field_prefix_cases[0]); i++) {
		c = &field_prefix_cases[i];
		buf = dup_exact(c->in, c->len);
		off = 0;
		r = rfc5322_next_field(buf, c->len, &off, &f);
		check_int(c->label, "return", r, c->r);
		if (r == 1)
			check_mem(c->label, "value", f.value, f.value_len,
			    c->value);
		check_mem(c->label, "rest", buf + off, c->len - off, c->rest);
		free(buf);
	}
}

struct is_case {
	const char *field;	/* name_len is strlen(field) - cut */
	size_t cut;
	const char *name;
	int want;
};

static const struct is_case is_cases[] = {
	{ "Subject", 0, "subject", 1 },
	{ "SUBJECT", 0, "Subject", 1 },
	{ "Subj", 0, "Subject", 0 },
	{ "Subjects", 0, "Subject", 0 },
	{ "To", 0, "Cc", 0 },
	{ "ToX", 1, "to", 1 },
	{ "ToX", 1, "tox", 0 },
	{ "[o", 0, "{o", 0 },	/* no case folding outside A-Z */
	{ "Bcc", 0, "", 0 },
};

static void
test_field_is(void **state)
{
	struct rfc5322_field f;
	size_t i;

	(void)state;
	memset(&f, 0, sizeof(f));
	for (i = 0; i < sizeof(is_cases) / sizeof(is_cases[0]); i++) {
		f.name = is_cases[i].field;
		f.name_len = strlen(is_cases[i].field) - is_cases[i].cut;
		check_int(is_cases[i].field, "field_is",
		    rfc5322_field_is(&f, is_cases[i].name) != 0,
		    is_cases[i].want);
	}
}

/* Address lists. */

/* Collects "addr|" per mailbox ("addr#|" when it has no domain). */
struct sink {
	char buf[4096];
	size_t len;
	int calls;
	int stop_at;	/* return stop_val from this call (1-based); 0 never */
	int stop_val;
};

static int
collect(const char *addr, int has_domain, void *ctx)
{
	struct sink *s = ctx;
	int n;

	s->calls++;
	assert_true(strlen(addr) <= RFC5322_ADDR_MAX);
	n = snprintf(s->buf + s->len, sizeof(s->buf) - s->len, "%s%s|", addr,
	    has_domain ? "" : "#");
	assert_true(n > 0 && (size_t)n < sizeof(s->buf) - s->len);
	s->len += (size_t)n;
	return s->calls == s->stop_at ? s->stop_val : 0;
}

/* Parse in[0..len) from an exact-size copy into s; returns the result. */
static int
parse_into(const char *in, size_t len, struct sink *s)
{
	char *buf = dup_exact(in, len);
	int r;

	s->len = 0;
	s->buf[0] = '\0';
	s->calls = 0;
	r = rfc5322_parse_addresses(buf, len, collect, s);
	free(buf);
	return r;
}

struct addr_case {
	const char *in;
	int r;
	const char *out;
};

#define LONG50 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct addr_case addr_cases[] = {
	/* empty lists */
	{ "", 0, "" },
	{ "   ", 0, "" },
	{ " \n\t", 0, "" },
	{ "(just a comment)", 0, "" },
	{ ",", 0, "" },
	{ " , ,, ", 0, "" },
	/* plain addr-specs */
	{ "a@b", 0, "a@b|" },
	{ "john.doe@example.org", 0, "john.doe@example.org|" },
	{ "a@b, c@d", 0, "a@b|c@d|" },
	{ "a@b,\n c@d\n", 0, "a@b|c@d|" },
	{ ",,a@b,,c@d,,", 0, "a@b|c@d|" },
	{ "!#$%&'*+-/=?^_`{}~@example.org", 0,
	  "!#$%&'*+-/=?^_`{}~@example.org|" },
	/* display names */
	{ "John Doe <jd@example.org>", 0, "jd@example.org|" },
	{ "<jd@example.org>", 0, "jd@example.org|" },
	{ "\"Doe, John\" <jd@example.org>, x@y", 0, "jd@example.org|x@y|" },
	{ "John Q. Public <jqp@example.org>", 0, "jqp@example.org|" },
	{ "\"a@b\" <c@d>", 0, "c@d|" },
	{ "=?utf-8?q?Ren=C3=A9?= <r@example.org>", 0, "r@example.org|" },
	{ "\"Ren\xc3\xa9\" <r@example.org>", 0, "r@example.org|" },
	{ "Ren\xc3\xa9 Dupont <r@example.org>", 0, "r@example.org|" },
	{ "(Ren\xc3\xa9) r@example.org", 0, "r@example.org|" },
	{ "\"multi\n line\" <m@x>", 0, "m@x|" },
	/* comments */
	{ "jd@example.org (John Doe)", 0, "jd@example.org|" },
	{ "(c1) jd (c2) @ (c3) example (c4) . (c5) org (c6)", 0,
	  "jd@example.org|" },
	{ "John (the (nested \\) comment)) Doe <a@b>", 0, "a@b|" },
	{ "a@b(no space)", 0, "a@b|" },
	{ "(unterminated a@b", -1, "" },
	{ "(a (b) a@b", -1, "" },
	{ "a@b (x\\", -1, "" },
	{ "a@b)", -1, "" },
	/* quoted local parts */
	{ "\"john doe\"@example.org", 0, "\"john doe\"@example.org|" },
	{ "\"john\\\"q\"@example.org", 0, "\"john\\\"q\"@example.org|" },
	{ "\"a\\\\b\"@x", 0, "\"a\\\\b\"@x|" },
	{ "\"john\n doe\"@example.org", 0, "\"john doe\"@example.org|" },
	{ "\"\"@example.org", 0, "\"\"@example.org|" },
	{ "\"john\".doe@example.org", 0, "\"john\".doe@example.org|" },
	{ "Joe <\"j d\"@x>", 0, "\"j d\"@x|" },
	{ "\"unterminated@example.org", -1, "" },
	{ "\"a\\", -1, "" },
	{ "\"a\tb\"@example.org", -1, "" },
	{ "\"a\\\tb\"@example.org", -1, "" },
	{ "\"a\x01" "b\"@example.org", -1, "" },
	/* 8-bit: fine around an addr-spec, never in it */
	{ "r\xc3\xa9@example.org", -1, "" },
	{ "r@ex\xc3\xa4mple.org", -1, "" },
	{ "\"r\xc3\xa9\"@example.org", -1, "" },
	{ "Ren\xc3\xa9 <r\xc3\xa9@example.org>", -1, "" },
	/* dots */
	{ "john . doe @ example . org", 0, "john.doe@example.org|" },
	{ "john..doe@example.org", -1, "" },
	{ ".john@example.org", -1, "" },
	{ "john.@example.org", -1, "" },
	{ "john@example..org", -1, "" },
	{ "john@example.org.", -1, "" },
	{ "john@.example.org", -1, "" },
	{ "john@", -1, "" },
	{ "@example.org", -1, "" },
	/* domain literals */
	{ "john@[192.0.2.1]", 0, "john@[192.0.2.1]|" },
	{ "john@[ 192.0.2.1 ]", 0, "john@[192.0.2.1]|" },
	{ "john@[IPv6:2001:db8::1]", 0, "john@[IPv6:2001:db8::1]|" },
	{ "Joe <john@[192.0.2.1]>", 0, "john@[192.0.2.1]|" },
	{ "john@[192.0.2.1", -1, "" },
	{ "john@[]", -1, "" },
	{ "john@[ ]", -1, "" },
	{ "john@[1\\.2]", -1, "" },
	{ "john@[a[b]", -1, "" },
	{ "john@[1.2\xc3\xa9]", -1, "" },
	{ "john@[192.0.2.1].org", -1, "" },
	{ "john@[a@b]", -1, "" },	/* found by fuzzing: two '@' */
	{ "john@[a\"b]", -1, "" },
	{ "john@[a<b>]", -1, "" },
	{ "john@[tag:x_y]", -1, "" },
	{ "john@[IPv6:ple)\n :Chris <c@x>]", -1, "" },
	{ "[192.0.2.1]@x", -1, "" },
	{ "a]@b", -1, "" },
	/* no domain */
	{ "bob", 0, "bob#|" },
	{ "bob, alice@x", 0, "bob#|alice@x|" },
	{ "Bob <bob>", 0, "bob#|" },
	{ "\"bob smith\"", 0, "\"bob smith\"#|" },
	{ "John Smith", -1, "" },
	/* groups */
	{ "undisclosed-recipients:;", 0, "" },
	{ "undisclosed-recipients: ;", 0, "" },
	{ "Undisclosed recipients:;", 0, "" },
	{ "undisclosed-recipients:", 0, "" },
	{ "team: a@x, b@y;", 0, "a@x|b@y|" },
	{ "team: a@x, b@y;, c@z", 0, "a@x|b@y|c@z|" },
	{ "team: Ann <a@x>, (c) b@y ;", 0, "a@x|b@y|" },
	{ "team:,,a@x,,;", 0, "a@x|" },
	{ "a@b, team: c@d", 0, "a@b|c@d|" },
	{ "\"the team\": c@d;", 0, "c@d|" },
	{ "a: b: c@d;;", -1, "" },
	{ ":a@b;", -1, "" },
	{ "team: a@x; b@y", -1, "a@x|" },
	{ "a@b;", -1, "" },
	{ "a@b, ;", -1, "a@b|" },
	/* angle-addr, obs route */
	{ "<@relay.example:a@b>", 0, "a@b|" },
	{ "<@r1,@r2:a@b>", 0, "a@b|" },
	{ "Joe <@r1, ,@r2 : a@b>", 0, "a@b|" },
	{ "<@[192.0.2.1]:a@b>", 0, "a@b|" },
	{ "<@r1 a@b>", -1, "" },
	{ "<@:a@b>", -1, "" },
	{ "<@r1:>", -1, "" },
	{ "<,a@b>", -1, "" },
	{ "<a@b", -1, "" },
	{ "Joe <a@b, c@d", -1, "" },
	{ "<>", -1, "" },
	{ "a@b>", -1, "" },
	{ "<a@b>>", -1, "" },
	{ "<<a@b>>", -1, "" },
	{ "Joe <a@b> x", -1, "" },
	/* elements must be apart */
	{ "a@b c@d", -1, "" },
	{ "a@b <c@d>", -1, "" },
	{ "a@b, c@d x", -1, "a@b|" },
	/* bytes no token starts with */
	{ "a@b\\c", -1, "" },
	{ "a\rb@c", -1, "" },
	{ "a@b\x01", -1, "" },
	{ "a@b\x7f", -1, "" },
	/* RFC 5322 appendix A */
	{ "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>", 0,
	  "mary@x.test|jdoe@example.org|one@y.test|" },
	{ "<boss@nil.test>, "
	  "\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>", 0,
	  "boss@nil.test|sysservices@example.net|" },
	{ "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	  0, "c@a.test|joe@where.test|jdoe@one.test|" },
	{ "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", 0,
	  "pete@silly.test|" },
	{ "A Group(Some people)\n"
	  "     :Chris Jones <c@(Chris's host.)public.example>,\n"
	  "         joe@example.org,\n  John <jdoe@one.test> (my dear friend);"
	  " (the end of the group)", 0,
	  "c@public.example|joe@example.org|jdoe@one.test|" },
	{ "(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;", 0,
	  "" },
	{ "Joe Q. Public <john.q.public@example.com>", 0,
	  "john.q.public@example.com|" },
	{ "Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example",
	  0, "mary@example.net|jdoe@test.example|" },
	/* length: 256 bytes is the limit */
	{ LONG50 LONG50 LONG50 LONG50 LONG50 "@bbbbb", 0,
	  LONG50 LONG50 LONG50 LONG50 LONG50 "@bbbbb|" },
	{ LONG50 LONG50 LONG50 LONG50 LONG50 "@bbbbbb", -1, "" },
	{ LONG50 LONG50 LONG50 LONG50 LONG50 "aaaaaa", 0,
	  LONG50 LONG50 LONG50 LONG50 LONG50 "aaaaaa#|" },
	{ LONG50 LONG50 LONG50 LONG50 LONG50 "aaaaaaa", -1, "" },
	{ "\"" LONG50 LONG50 LONG50 LONG50 LONG50 "\"@bbb", 0,
	  "\"" LONG50 LONG50 LONG50 LONG50 LONG50 "\"@bbb|" },
	{ "\"" LONG50 LONG50 LONG50 LONG50 LONG50 "\"@bbbb", -1, "" },
	{ "x@" LONG50 LONG50 LONG50 LONG50 LONG50 ".ccc", 0,
	  "x@" LONG50 LONG50 LONG50 LONG50 LONG50 ".ccc|" },
	{ "x@" LONG50 LONG50 LONG50 LONG50 LONG50 ".cccc", -1, "" },
	{ "x@[" LONG50 LONG50 LONG50 LONG50 LONG50 "cc]", 0,
	  "x@[" LONG50 LONG50 LONG50 LONG50 LONG50 "cc]|" },
	{ "x@[" LONG50 LONG50 LONG50 LONG50 LONG50 "ccc]", -1, "" },
	/* folding and comments do not count towards the limit */
	{ "(" LONG50 LONG50 LONG50 ")" LONG50 LONG50 LONG50 LONG50 LONG50
	  "@b.c (" LONG50 ")", 0, LONG50 LONG50 LONG50 LONG50 LONG50 "@b.c|" },
	/* a route's domains do not either */
	{ "<@" LONG50 LONG50 LONG50 LONG50 LONG50 LONG50 ":a@b>", 0, "a@b|" },
};

static void
test_addresses(void **state)
{
	const struct addr_case *c;
	struct sink s;
	size_t i;
	int r;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		c = &addr_cases[i];
		r = parse_into(c->in, strlen(c->in), &s);
		check_int(c->in, "return", r, c->r);
		check_mem(c->in, "addresses", s.buf, s.len, c->out);
	}
}

/* NUL is a byte like any other to the parser, and no token starts with it. */
static void
test_addresses_nul(void **state)
{
	struct sink s;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(parse_into("a@b\0c", 5, &s), -1);
	assert_int_equal(parse_into("(x\0y) a@b", 9, &s), 0);
	assert_string_equal(s.buf, "a@b|");
	assert_int_equal(parse_into("\"x\0y\" <a@b>", 11, &s), 0);
	assert_string_equal(s.buf, "a@b|");
	assert_int_equal(parse_into("\"x\0y\"@b", 7, &s), -1);
}

/* A byte past len would change each of these results. */
static const struct prefix_case addr_prefix_cases[] = {
	{ "domain cut", "a@example.org", 9, 0, "a@example|", NULL },
	{ "after domain cut", "a@example.org, c@d", 13, 0, "a@example.org|",
	  NULL },
	{ "quote cut", "\"ab\"@x", 3, -1, "", NULL },
	{ "quoted pair cut", "\"a\\\"\"@b", 3, -1, "", NULL },
	{ "comment cut", "(ab)a@b", 3, -1, "", NULL },
	{ "comment pair cut", "(a\\)) a@b", 3, -1, "", NULL },
	{ "angle cut", "<a@b>", 4, -1, "", NULL },
	{ "literal cut", "a@[1.2.3.4]", 10, -1, "", NULL },
	{ "group end cut", "team:;x", 5, 0, "", NULL },
	{ "local part cut", "ab@c", 1, 0, "a#|", NULL },
	{ "dot cut", "a.b@c", 2, -1, "", NULL },
};

static void
test_addresses_prefix(void **state)
{
	const struct prefix_case *c;
	struct sink s;
	size_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (i = 0; i < sizeof(addr_prefix_cases) /
	    sizeof(addr_prefix_cases[0]); i++) {
		c = &addr_prefix_cases[i];
		check_int(c->label, "return", parse_into(c->in, c->len, &s),
		    c->r);
		check_mem(c->label, "addresses", s.buf, s.len, c->value);
	}
}

struct stop_case {
	const char *in;
	int stop_at, stop_val;
	int r, calls;
};

static const struct stop_case stop_cases[] = {
	{ "a@b, c@d, e@f", 2, 7, 7, 2 },
	{ "a@b, c@d, e@f", 1, -5, -5, 1 },
	{ "a@b, c@d, e@f", 3, 1, 1, 3 },
	{ "a@b, c@d, e@f", 4, 1, 0, 3 },
	{ "g: a@b, c@d; e@f", 1, 9, 9, 1 },	/* stops before the error */
	{ "a@b, <<<", 1, 3, 3, 1 },
};

static void
test_callback_stop(void **state)
{
	const struct stop_case *c;
	struct sink s;
	size_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (i = 0; i < sizeof(stop_cases) / sizeof(stop_cases[0]); i++) {
		c = &stop_cases[i];
		s.stop_at = c->stop_at;
		s.stop_val = c->stop_val;
		check_int(c->in, "return", parse_into(c->in, strlen(c->in), &s),
		    c->r);
		check_int(c->in, "calls", s.calls, c->calls);
	}
}

/* Golden dumps: a whole header section, as the posting daemon reads it. */

struct golden {
	const char *in;
	const char *out;
};

static const struct golden goldens[] = {
	{
	"Return-Path: <ignored@example.org>\n"
	"From: =?UTF-8?Q?Andr=C3=A9?= <andre@example.org>\n"
	"To: Bob <bob@example.net>, \"Carol, C.\" <carol@example.net>,\n"
	"\tdave@example.com (Dave)\n"
	"Cc: team: erin@example.org, frank;, undisclosed-recipients:;\n"
	"Bcc: <@relay.example:grace@[192.0.2.7]>\n"
	"Subject: Lunch?\n"
	"\n"
	"See you at noon.\n",
	"field Return-Path\n"
	"field From\n  andre@example.org\n"
	"field To\n  bob@example.net\n  carol@example.net\n"
	"  dave@example.com\n"
	"field Cc\n  erin@example.org\n  frank (no domain)\n"
	"field Bcc\n  grace@[192.0.2.7]\n"
	"field Subject\n"
	"end 0 body \"See you at noon.\\n\"\n"
	},
	{
	"To: a@b,\n c@d x\n"
	"Cc: \"broken@example.org\n"
	"Subject: no blank line before the body\n"
	"This line has no colon.\n",
	"field To\n  a@b\n  error -1\n"
	"field Cc\n  error -1\n"
	"field Subject\n"
	"end 0 body \"This line has no colon.\\n\"\n"
	},
	{
	" folded: first\n",
	"end -1 body \" folded: first\\n\"\n"
	},
};

/* Append a printf-formatted line to out. */
static void __attribute__((format(printf, 3, 4)))
out_add(char *out, size_t size, const char *fmt, ...)
{
	size_t used = strlen(out);
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out + used, size - used, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < size - used);
}

struct dump {
	char *out;
	size_t size;
};

static int
dump_addr(const char *addr, int has_domain, void *ctx)
{
	struct dump *d = ctx;

	out_add(d->out, d->size, "  %s%s\n", addr,
	    has_domain ? "" : " (no domain)");
	return 0;
}

static int
is_address_field(const struct rfc5322_field *f)
{
	return rfc5322_field_is(f, "from") || rfc5322_field_is(f, "to") ||
	    rfc5322_field_is(f, "cc") || rfc5322_field_is(f, "bcc");
}

/* Dump the fields of buf and the addresses in its address fields. */
static void
dump_headers(const char *buf, size_t len, char *out, size_t size)
{
	struct dump d = { out, size };
	struct rfc5322_field f;
	size_t off = 0, i;
	int r;

	out[0] = '\0';
	while ((r = rfc5322_next_field(buf, len, &off, &f)) == 1) {
		out_add(out, size, "field %.*s\n", (int)f.name_len, f.name);
		if (is_address_field(&f) && rfc5322_parse_addresses(f.value,
		    f.value_len, dump_addr, &d) == -1)
			out_add(out, size, "  error -1\n");
	}
	out_add(out, size, "end %d body \"", r);
	for (i = off; i < len; i++) {
		if (buf[i] == '\n')
			out_add(out, size, "\\n");
		else
			out_add(out, size, "%c", buf[i]);
	}
	out_add(out, size, "\"\n");
}

static void
test_golden(void **state)
{
	char out[4096], *buf;
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(goldens) / sizeof(goldens[0]); i++) {
		len = strlen(goldens[i].in);
		buf = dup_exact(goldens[i].in, len);
		dump_headers(buf, len, out, sizeof(out));
		if (strcmp(out, goldens[i].out) != 0) {
			print_error("golden %zu:\n--- got\n%s--- want\n%s", i,
			    out, goldens[i].out);
			fail();
		}
		free(buf);
	}
}

static void
test_addr_same(void **state)
{
	(void)state;
	assert_true(rfc5322_addr_same("a@x.example", "a@x.example"));
	assert_true(rfc5322_addr_same("a@x.example", "a@X.EXAMPLE"));
	assert_false(rfc5322_addr_same("a@x.example", "A@x.example"));
	assert_false(rfc5322_addr_same("a@x.example", "ab@x.example"));
	assert_false(rfc5322_addr_same("ab@x.example", "a@bx.example"));
	assert_false(rfc5322_addr_same("a@x.example", "a@x.example.org"));
	/* The last @ starts the domain: a quoted local part may hold one. */
	assert_true(rfc5322_addr_same("\"a@b\"@x.example",
	    "\"a@b\"@X.example"));
	assert_false(rfc5322_addr_same("\"a@b\"@x.example",
	    "\"a@B\"@x.example"));
	/* Without a domain only the same bytes are the same. */
	assert_true(rfc5322_addr_same("bob", "bob"));
	assert_false(rfc5322_addr_same("bob", "Bob"));
	assert_false(rfc5322_addr_same("bob", "bob@x.example"));
	assert_false(rfc5322_addr_same("bob@x.example", "bob"));
}

/* Display text. */

/* Collects "piece|" per piece, "piece~|" when it is not exact. */
struct text_sink {
	char buf[4096];
	size_t len;
	int calls, stop_at;
};

static int
text_cb(const char *text, size_t len, int exact, void *ctx)
{
	struct text_sink *s = ctx;

	assert_int_equal(text[len], '\0');
	assert_true(s->len + len + 3 < sizeof(s->buf));
	memcpy(s->buf + s->len, text, len);
	s->len += len;
	if (!exact)
		s->buf[s->len++] = '~';
	s->buf[s->len++] = '|';
	s->buf[s->len] = '\0';
	return ++s->calls == s->stop_at ? 5 : 0;
}

static int
text_into(const char *in, size_t len, struct text_sink *s)
{
	char *copy = dup_exact(in, len);
	int r;

	s->len = 0;
	s->calls = 0;
	s->buf[0] = '\0';
	r = rfc5322_display_text(copy, len, text_cb, s);
	free(copy);
	return r;
}

struct text_case {
	const char *in;
	const char *out;
};

static const struct text_case text_cases[] = {
	{ "alice@example.org", "" },
	{ "<alice@example.org>", "" },
	{ "Alice <alice@example.org>", "Alice|" },
	{ "  Alice   Smith  <a@b>", "Alice   Smith|" },
	{ "\"ceo@example.org\" <a@b>", "ceo@example.org|" },
	{ "a@b (ceo@example.org)", "ceo@example.org|" },
	{ "(one) a@b (two), (three) c@d", "one|two|three|" },
	{ "<a(in the angle)@b>", "in the angle|" },
	{ "x (a (nested) b) <a@b>", "a (nested) b|x|" },
	{ "\"q\\\"uo\\\\te\\@d\" <a@b>", "q\"uo\\te@d|" },
	{ "(c\\) \\( \\@) a@b", "c) ( @|" },
	{ "\"fold\n ed\"\n <a@b>", "fold ed|" },
	{ "(fold\n\ted) a@b", "fold\ted|" },
	{ "A. B. \"C\" <a@b>", "A. B. C|" },
	{ "\"<a@b>\" <c@d>", "<a@b>|" },
	{ "\"a,b;c:d\" <e@f>", "a,b;c:d|" },
	{ "team: a@b, \"n\" <c@d>;, e@f", "team|n|" },
	{ "\"ceo@x\": a@b;", "ceo@x|" },
	{ "\"quoted\"@local.example", "" },
	{ "<\"ceo@x\"@local.example>", "" },
	{ "a@[192.0.2.1] (lit)", "lit|" },
	{ "\"\" <a@b>, () c@d", "" },
	/* RFC 2047 */
	{ "=?utf-8?q?ceo=40example.org?= <a@b>", "ceo@example.org|" },
	{ "=?UTF-8?Q?a_b=3D=3f?= <a@b>", "a b=?|" },
	{ "=?utf-8?b?Y2VvQGV4YW1wbGUub3Jn?= <a@b>", "ceo@example.org|" },
	{ "=?utf-8?B?YQ==?= <a@b>", "a|" },
	{ "=?utf-8?b?YWI?= <a@b>", "ab|" },
	{ "=?utf-8?q?a?= =?utf-8?q?b?=\n =?utf-8?q?c?= d <a@b>", "abc d|" },
	{ "=?utf-8?q?a?= x =?utf-8?q?b?= <a@b>", "a x b|" },
	{ "x=?utf-8?q?=40?=y <a@b>", "x@y|" },
	{ "\"=?utf-8?q?ceo=40x?=\" <a@b>", "ceo@x|" },
	{ "a@b (=?iso-8859-1?q?ceo=40x?=)", "ceo@x|" },
	{ "=?utf-8*en?q?ceo=40x?= <a@b>", "ceo@x|" },
	{ "=?utf-8?q?a=4?= <a@b>", "a=4|" },
	{ "=?utf-8?q?a=zz?= <a@b>", "a=zz|" },
	{ "=?utf-8?b?!!!?= <a@b>", "=?utf-8?b?!!!?=|" },
	{ "=?utf-8?b?YQ=a?= <a@b>", "=?utf-8?b?YQ=a?=|" },
	{ "=?utf-8?x?a?= <a@b>", "=?utf-8?x?a?=|" },
	{ "=??q?a?= <a@b>", "=??q?a?=|" },
	{ "=?utf-8?q?a <a@b>", "=?utf-8?q?a|" },
	{ "=?utf-8?q?a?x <a@b>", "=?utf-8?q?a?x|" },
	{ "=?utf-8?q?_a_?= <a@b>", "a|" },
	{ "=?utf-7?q?ceo+AEA-x?= <a@b>", "ceo+AEA-x~|" },
	{ "=?UTF-16BE?q?x?= <a@b>", "x~|" },
	{ "=?ucs-4?q?a?= <a@b>", "a~|" },
	{ "=?unicode-1-1-utf-7?q?a?= <a@b>", "a~|" },
	{ "=?utf-8?q?ok?= <a@b> (=?utf-7?q?x?=)", "ok|x~|" },
	/* bytes beyond ASCII: not an encoded word, shown as they are */
	{ "=?\xef\xb9\xab-8?q?ceo?= <a@b>", "=?\xef\xb9\xab-8?q?ceo?=|" },
	{ "=?utf-8?q?a\xc3\xa9?= <a@b>", "=?utf-8?q?a\xc3\xa9?=|" },
	/* not meant for invalid lists, but safe on them */
	{ "\"unclosed <a@b>", "" },
	{ "(unclosed <a@b>", "unclosed <a@b>|" },
	{ "x\\", "" },
	{ "> a <b@c>", "> a|" },
};

static void
test_display_text(void **state)
{
	struct text_sink s;
	size_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
		check_int(text_cases[i].in, "return", text_into(text_cases[i].in,
		    strlen(text_cases[i].in), &s), 0);
		check_mem(text_cases[i].in, "pieces", s.buf, s.len,
		    text_cases[i].out);
	}
}

/* A decoded NUL stays in the text, counted by len. */
static void
test_display_text_nul(void **state)
{
	static const char in[] = "=?utf-8?q?a=00b?= <a@b>";
	struct text_sink s;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(text_into(in, sizeof(in) - 1, &s), 0);
	assert_int_equal(s.len, 4);
	assert_memory_equal(s.buf, "a\0b|", 4);
}

/* RFC5322_TEXT_MAX bytes are exact, one more is cut and flagged. */
static void
test_display_text_long(void **state)
{
	char in[RFC5322_TEXT_MAX + 32];
	struct text_sink s;
	size_t n;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (n = RFC5322_TEXT_MAX; n <= RFC5322_TEXT_MAX + 1; n++) {
		in[0] = '"';
		memset(in + 1, 'x', n);
		memcpy(in + 1 + n, "\" <a@b>", 7);
		assert_int_equal(text_into(in, n + 8, &s), 0);
		assert_int_equal(s.len, RFC5322_TEXT_MAX + 1 +
		    (n > RFC5322_TEXT_MAX));
		assert_int_equal(s.buf[RFC5322_TEXT_MAX],
		    n > RFC5322_TEXT_MAX ? '~' : '|');
	}
}

/* The walk stops at a nonzero callback, and reads nothing past len. */
static void
test_display_text_stop_and_prefix(void **state)
{
	static const char in[] = "(a) (b) \"c\" <d@e>";
	struct text_sink s;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	assert_int_equal(text_into(in, sizeof(in) - 1, &s), 5);
	assert_string_equal(s.buf, "a|b|");
	s.stop_at = 0;
	/* Cut inside the comment: it is unclosed, and still a piece. */
	assert_int_equal(text_into(in, 6, &s), 0);
	assert_string_equal(s.buf, "a|b|");
	/* Cut before the '<': the name never ends. */
	assert_int_equal(text_into(in, 12, &s), 0);
	assert_string_equal(s.buf, "a|b|");
	assert_int_equal(text_into(in, 13, &s), 0);
	assert_string_equal(s.buf, "a|b|c|");
	assert_int_equal(text_into("", 0, &s), 0);
	assert_string_equal(s.buf, "");
}

static void
test_has_at_sign(void **state)
{
	(void)state;
	assert_true(rfc5322_has_at_sign("a@b", 3));
	assert_true(rfc5322_has_at_sign("@", 1));
	assert_false(rfc5322_has_at_sign("a@b", 1));
	assert_false(rfc5322_has_at_sign("alice", 5));
	assert_false(rfc5322_has_at_sign("", 0));
	assert_true(rfc5322_has_at_sign("a\xef\xbc\xa0" "b", 5));
	assert_true(rfc5322_has_at_sign("a\xef\xb9\xab", 4));
	/* a sequence cut short, and its neighbours, are no at-sign */
	assert_false(rfc5322_has_at_sign("a\xef\xbc", 3));
	assert_false(rfc5322_has_at_sign("a\xef\xbc\xa0", 3));
	assert_false(rfc5322_has_at_sign("\xef\xbc\xa1\xef\xb9\xac", 6));
	assert_true(rfc5322_has_at_sign("\0@", 2));
}

struct by_case {
	const char *value;
	int want;
};

static const struct by_case by_cases[] = {
	{ " from [10.0.0.9] (user ceo)\n\tby mpp.test (mppd) with MPP id 1;\n"
	  "\tThu, 1 Jan 1970 00:00:00 +0000", 1 },
	{ " from x by mpp.test", 1 },
	{ "by mpp.test", 1 },
	{ " from x BY MPP.TEST; x", 1 },
	{ " from x By Mpp.Test.; x", 1 },
	{ " from x by\n mpp.test", 1 },
	{ " from x by\n\t\n mpp.test", 1 },
	{ " from x by (c (nested)) (d)\n mpp.test id 1", 1 },
	{ " from x by(c)mpp.test(d); x", 1 },
	{ " from x by \"mpp.test\"", 1 },
	{ " from x by [mpp.test]", 1 },
	{ " from x by <mpp.test>", 1 },
	{ " from x (by mpp.test) by y", 1 },
	{ " from \"(\" by mpp.test", 1 },
	{ " from \" by mpp.test", 1 },
	{ " from x by y; by mpp.test", 1 },
	{ " from x;by mpp.test", 1 },
	{ " from x by (unclosed by mpp.test", 1 },
	{ " from x by mpp.test, y", 1 },
	{ " from mpp.test by relay.example", 0 },
	{ " from x by mx.mpp.test", 0 },
	{ " from x by mpp.test.example", 0 },
	{ " from x by mpp.test-2", 0 },
	{ " from x by mpp.test_2", 0 },
	{ " from x by mpp.test..", 0 },
	{ " from x by mpp.tes", 0 },
	{ " from x by mpp", 0 },
	{ " from x standby mpp.test", 0 },
	{ " from x.by mpp.test", 0 },
	{ " from x-by mpp.test", 0 },
	{ " from x \xc3" "by mpp.test", 0 },
	{ " from x bympp.test", 0 },
	{ " from x by", 0 },
	{ " from x b", 0 },
	{ " from x by (unclosed mpp.test", 0 },
	{ " for <u@mpp.test>", 0 },
	{ " from x (relayed by) mpp.test", 0 },
	{ " from x (a (by mpp.test) b) by y", 1 },
	{ " from x by (a (b) c) (by y) mpp.test", 1 },
	{ " from x by \\mpp.test", 0 },
	{ " from x (a\\) by mpp.test) by y", 1 },
	{ " from x by; mpp.test", 0 },
	{ "", 0 },
};

static void
test_received_by(void **state)
{
	size_t i, n;
	char *copy;

	(void)state;
	for (i = 0; i < sizeof(by_cases) / sizeof(by_cases[0]); i++) {
		n = strlen(by_cases[i].value);
		copy = dup_exact(by_cases[i].value, n);
		check_int(by_cases[i].value, "received_by",
		    rfc5322_received_by(copy, n, "mpp.test") != 0,
		    by_cases[i].want);
		free(copy);
	}
	/* The host as configured may have capitals; nothing past len. */
	assert_true(rfc5322_received_by("by mpp.test", 11, "MPP.Test"));
	assert_false(rfc5322_received_by("by mpp.test", 10, "mpp.test"));
	assert_true(rfc5322_received_by("by mpp.testx", 11, "mpp.test"));
	assert_false(rfc5322_received_by("by mpp.test", 11, ""));
	assert_false(rfc5322_received_by(NULL, 0, "mpp.test"));
	/* Past 63 levels of comments nothing is looked at; around them, as
	   usual. */
	{
		char deep[256];

		memset(deep, '(', 70);
		strcpy(deep + 70, "by mpp.test");
		n = strlen(deep);
		assert_false(rfc5322_received_by(deep, n, "mpp.test"));
		memset(deep, '(', 63);
		strcpy(deep + 63, "by mpp.test");
		n = strlen(deep);
		assert_true(rfc5322_received_by(deep, n, "mpp.test"));
		memset(deep, 'x', 200);
		memcpy(deep, "by ", 3);
		memset(deep + 3, '(', 70);
		memset(deep + 73, ')', 70);
		strcpy(deep + 143, " mpp.test");
		n = strlen(deep);
		assert_true(rfc5322_received_by(deep, n, "mpp.test"));
	}
}

/* Where each local part ends, for every shape an address takes. */
struct at_seen {
	char text[512];		/* "addr|has_domain|value up to the offset;" */
	const char *value;
};

static int
at_cb(const char *addr, int has_domain, size_t local_end, void *ctx)
{
	struct at_seen *a = ctx;
	char piece[256];

	snprintf(piece, sizeof(piece), "%s|%d|%.*s;", addr, has_domain,
	    (int)local_end, a->value);
	strlcat(a->text, piece, sizeof(a->text));
	return 0;
}

static void
test_parse_addresses_at(void **state)
{
	static const struct {
		const char *value, *want;
	} cases[] = {
		{ "root", "root|0|root;" },
		{ "root (Cron Daemon)", "root|0|root;" },
		{ " Bob <bob>, carol@x.example",
		  "bob|0| Bob <bob;carol@x.example|1| Bob <bob>, carol;" },
		{ "\"john doe\" (home)", "\"john doe\"|0|\"john doe\";" },
		{ "a.b.c , team: d, e@y.example;",
		  "a.b.c|0|a.b.c;d|0|a.b.c , team: d;"
		  "e@y.example|1|a.b.c , team: d, e;" },
		{ "<@relay.example:f>", "f|0|<@relay.example:f;" },
		{ "g (x) . h", "g.h|0|g (x) . h;" },
	};
	struct at_seen a;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&a, 0, sizeof(a));
		a.value = cases[i].value;
		assert_int_equal(rfc5322_parse_addresses_at(cases[i].value,
		    strlen(cases[i].value), at_cb, &a), 0);
		if (strcmp(a.text, cases[i].want) != 0)
			fail_msg("%s: got %s, want %s", cases[i].value, a.text,
			    cases[i].want);
	}
	memset(&a, 0, sizeof(a));
	a.value = "bad <";
	assert_int_equal(rfc5322_parse_addresses_at("bad <", 5, at_cb, &a),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_parse_addresses_at),
		cmocka_unit_test(test_fields_at_end),
		cmocka_unit_test(test_fields_nul_in_value),
		cmocka_unit_test(test_fields_prefix),
		cmocka_unit_test(test_field_is),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_addresses_nul),
		cmocka_unit_test(test_addresses_prefix),
		cmocka_unit_test(test_callback_stop),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_addr_same),
		cmocka_unit_test(test_display_text),
		cmocka_unit_test(test_display_text_nul),
		cmocka_unit_test(test_display_text_long),
		cmocka_unit_test(test_display_text_stop_and_prefix),
		cmocka_unit_test(test_has_at_sign),
		cmocka_unit_test(test_received_by),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
