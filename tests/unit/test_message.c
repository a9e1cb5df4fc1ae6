/*
 * Unit tests for mppd/message.c, the builder of the stored message.
 *
 * Every case runs with fixed params (queue id 1.M1P1Q1, client 192.0.2.7,
 * host mpp.test, user alice, sender alice@example.org, now 0), and is fed
 * whole, one byte at a time and in 7-byte pieces: the three must give the
 * same verdict, recipients and output. Golden files under
 * tests/unit/golden/message/ hold whole messages: NAME.in is the client's
 * unstuffed text (LF ends), NAME.out the exact stored output. Tests run
 * from the repository root.
 */

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "../../mppd/message.h"

#define GOLDEN_DIR "tests/unit/golden/message"

#define RECEIVED "Received: from [192.0.2.7] (user alice)\n" \
	"\tby mpp.test (mppd) with MPP id 1.M1P1Q1;\n" \
	"\tThu, 1 Jan 1970 00:00:00 +0000\n"
#define ADDED_FROM "From: <alice@example.org>\n"
#define ADDED_DATE "Date: Thu, 1 Jan 1970 00:00:00 +0000\n"
#define ADDED_MSGID "Message-ID: <1.M1P1Q1@mpp.test>\n"
#define ADDED_SENDER "Sender: <alice@example.org>\n"

static void
default_params(struct message_params *p)
{
	p->queue_id = "1.M1P1Q1";
	p->client_addr = "192.0.2.7";
	p->hostname = "mpp.test";
	p->auth_user = "alice";
	p->sender = "alice@example.org";
	p->sender_domain = "example.org";
	p->now = 0;
	p->max_size = 10485760;
	p->max_rcpts = 100;
}

/* What one run of the builder gave. */
struct result {
	enum message_verdict verdict;
	char reason[128];
	struct buf out;		/* spilled output, then the rest */
	struct buf rcpts;	/* "a,b,c" */
	size_t nrcpts;
	unsigned long long size;
	int spills;
	int spill_fail_at;	/* fail the nth spill call (1-based); 0 never */
};

static int
spill_cb(void *ctx, const char *data, size_t len)
{
	struct result *r = ctx;

	r->spills++;
	if (r->spills == r->spill_fail_at)
		return -1;
	assert_true(len >= MESSAGE_SPILL_AT);
	assert_int_equal(buf_append(&r->out, data, len), 0);
	return 0;
}

static void
result_free(struct result *r)
{
	buf_free(&r->out);
	buf_free(&r->rcpts);
}

/*
 * Run text[0..len) through a builder in pieces of step bytes (0: whole),
 * each piece an exact heap copy. use_spill: give the builder a spill hook.
 */
static void
run(const struct message_params *p, const char *text, size_t len,
    size_t step, int bare, int nul, int use_spill, struct result *r)
{
	struct message *m;
	struct buf *rest;
	size_t off = 0, n, i;
	char *piece;
	int fail_at = r->spill_fail_at;

	memset(r, 0, sizeof(*r));
	r->spill_fail_at = fail_at;
	m = message_new(p, use_spill ? spill_cb : NULL, r);
	assert_non_null(m);
	while (off < len) {
		n = step == 0 || step > len - off ? len - off : step;
		piece = malloc(n);
		assert_non_null(piece);
		memcpy(piece, text + off, n);
		assert_int_equal(message_append(m, piece, n), 0);
		free(piece);
		off += n;
	}
	r->verdict = message_finish(m, bare, nul);
	snprintf(r->reason, sizeof(r->reason), "%s", message_reason(m));
	rest = message_output(m);
	assert_int_equal(buf_append(&r->out, rest->data, rest->len), 0);
	r->size = message_size(m);
	r->nrcpts = message_rcpt_count(m);
	for (i = 0; i < r->nrcpts; i++) {
		assert_string_equal(message_rcpt(m, i), message_rcpts(m)[i]);
		if (i > 0)
			assert_int_equal(buf_puts(&r->rcpts, ","), 0);
		assert_int_equal(buf_puts(&r->rcpts, message_rcpt(m, i)), 0);
	}
	assert_null(message_rcpt(m, r->nrcpts));
	assert_int_equal(buf_nul(&r->rcpts), 0);
	message_free(m);
}

/*
 * Run whole, byte by byte and in 7-byte pieces; check the three agree and
 * leave the whole run in *r.
 */
static void
run3(const struct message_params *p, const char *label, const char *text,
    size_t len, int bare, int nul, struct result *r)
{
	static const size_t steps[] = { 1, 7 };
	struct result o;
	size_t i;

	run(p, text, len, 0, bare, nul, 1, r);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		o.spill_fail_at = 0;
		run(p, text, len, steps[i], bare, nul, 1, &o);
		/* A refused message's output is dropped: not compared. */
		if (o.verdict != r->verdict || strcmp(o.reason, r->reason) ||
		    (r->verdict == MSG_OK && (o.out.len != r->out.len ||
		    memcmp(o.out.data, r->out.data, o.out.len) != 0 ||
		    strcmp(o.rcpts.data, r->rcpts.data) != 0))) {
			print_error("%s: pieces of %zu differ from whole "
			    "(verdict %d/%d, reason \"%s\"/\"%s\")\n", label,
			    steps[i], o.verdict, r->verdict, o.reason,
			    r->reason);
			fail();
		}
		result_free(&o);
	}
	if (r->verdict == MSG_OK)
		assert_int_equal(r->size, r->out.len);
}

/* Golden files. */

static char *
read_all(const char *path, size_t *len)
{
	FILE *fp;
	char *data;
	long n;

	fp = fopen(path, "rb");
	if (fp == NULL) {
		print_error("cannot open %s (run from the repository root)\n",
		    path);
		fail();
	}
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	data = malloc((size_t)n + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
	data[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return data;
}

static int
is_in_file(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 3 && d->d_name[0] != '.' &&
	    strcmp(d->d_name + n - 3, ".in") == 0;
}

static void
test_golden(void **state)
{
	struct message_params p;
	struct dirent **ents;
	char path[512];
	char *in, *want;
	size_t inlen, wantlen;
	int i, n, bad = 0;

	default_params(&p);
	n = scandir(GOLDEN_DIR, &ents, is_in_file, alphasort);
	if (n < 0) {
		print_error("cannot read %s (run from the repository root)\n",
		    GOLDEN_DIR);
		fail();
	}
	assert_true(n >= 8);
	for (i = 0; i < n; i++) {
		struct result r = { 0 };

		snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR,
		    ents[i]->d_name);
		in = read_all(path, &inlen);
		strcpy(path + strlen(path) - 3, ".out");
		want = read_all(path, &wantlen);
		run3(&p, ents[i]->d_name, in, inlen, 0, 0, &r);
		if (r.verdict != MSG_OK) {
			print_error("%s: verdict %d (%s)\n", ents[i]->d_name,
			    r.verdict, r.reason);
			bad++;
		} else if (r.out.len != wantlen ||
		    memcmp(r.out.data, want, wantlen) != 0) {
			print_error("%s:\n--- got\n%.*s--- want\n%s",
			    ents[i]->d_name, (int)r.out.len, r.out.data,
			    want);
			bad++;
		}
		result_free(&r);
		free(in);
		free(want);
		free(ents[i]);
	}
	free(ents);
	assert_int_equal(bad, 0);
}

/* Recipients. */

struct rcpt_case {
	const char *label;
	const char *text;
	const char *rcpts;	/* as "a,b,c", in order of appearance */
};

static const struct rcpt_case rcpt_cases[] = {
	{ "one To", "To: bob@example.com\n\n", "bob@example.com" },
	{ "To, Cc and Bcc", "To: a@x.example\nCc: b@x.example\n"
	  "Bcc: c@x.example\n\nbody\n", "a@x.example,b@x.example,c@x.example" },
	{ "field names in any case", "tO: a@x.example\ncc: b@x.example\n"
	  "BCC: c@x.example\n\n", "a@x.example,b@x.example,c@x.example" },
	{ "display names and quoted strings",
	  "To: Bob Smith <bob@example.com>, \"Carol, C.\" <carol@example.com>"
	  "\n\n", "bob@example.com,carol@example.com" },
	{ "comments", "To: bob@example.com (Bob), (x) carol@example.com\n\n",
	  "bob@example.com,carol@example.com" },
	{ "group", "To: team: a@x.example, b@y.example;\n\n",
	  "a@x.example,b@y.example" },
	{ "empty group and Bcc", "To: undisclosed-recipients:;\n"
	  "Bcc: x@y.example\n\n", "x@y.example" },
	{ "folded list", "To: a@x.example,\n b@y.example,\n\t<c@z.example>\n"
	  "Subject: s\n\n", "a@x.example,b@y.example,c@z.example" },
	{ "duplicates, the domain's case ignored",
	  "To: a@x.example, a@X.EXAMPLE\nCc: a@x.Example\nBcc: a@x.example\n\n",
	  "a@x.example" },
	{ "local parts that differ in case are two mailboxes",
	  "To: a@x.example, A@x.example\nCc: A@X.example\n\n",
	  "a@x.example,A@x.example" },
	{ "quoted local part with an @, domain case ignored",
	  "To: \"a@b\"@x.example, \"a@b\"@X.example, \"a@B\"@x.example\n\n",
	  "\"a@b\"@x.example,\"a@B\"@x.example" },
	{ "bare local part qualified", "To: bob\n\n", "bob@example.org" },
	{ "bare local part, duplicate of qualified",
	  "To: bob, bob@Example.Org\n\n", "bob@example.org" },
	{ "several To fields", "To: a@x.example\nTo: b@x.example\n\n",
	  "a@x.example,b@x.example" },
	{ "Reply-To, From and Sender are no recipients",
	  "To: a@x.example\nReply-To: r@x.example\n"
	  "From: f@x.example\nSender: t@x.example\n\n", "a@x.example" },
	{ "addresses in the body are not",
	  "To: a@x.example\n\nTo: b@x.example\nCc: c@x.example\n",
	  "a@x.example" },
	{ "after a non-header line: body", "To: a@x.example\nnot a header\n"
	  "Cc: c@x.example\n", "a@x.example" },
	{ "domain literal", "To: bob@[192.0.2.1]\n\n", "bob@[192.0.2.1]" },
	{ "quoted local part", "To: \"john doe\"@example.com\n\n",
	  "\"john doe\"@example.com" },
	{ "route dropped", "To: <@relay.example:bob@example.com>\n\n",
	  "bob@example.com" },
	/* Valid atext; the sendmail transport's "--" makes it safe. Found
	   by fuzz_session (corpus file crash-dash-recipient). */
	{ "leading dash", "To: Bob <bob@example.com>, -carol@example.com\n\n",
	  "bob@example.com,-carol@example.com" },
};

static void
test_recipients(void **state)
{
	struct message_params p;
	size_t i;

	default_params(&p);
	for (i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct result r = { 0 };

		run3(&p, c->label, c->text, strlen(c->text), 0, 0, &r);
		if (r.verdict != MSG_OK || strcmp(r.rcpts.data, c->rcpts)) {
			print_error("%s: verdict %d (%s), rcpts \"%s\", "
			    "want \"%s\"\n", c->label, r.verdict, r.reason,
			    r.rcpts.data, c->rcpts);
			fail();
		}
		result_free(&r);
	}
}

/* The header block. */

/* The header section of out (up to the first empty line or the end). */
static size_t
header_len(const struct buf *out)
{
	size_t i;

	for (i = 0; i + 1 < out->len; i++)
		if (out->data[i] == '\n' && out->data[i + 1] == '\n')
			return i + 1;
	return out->len;
}

/* Count the lines of out's header section equal to line. */
static int
count_header_line(const struct buf *out, const char *line)
{
	size_t hl = header_len(out), n = strlen(line), i = 0;
	int count = 0;

	while (i < hl) {
		if (hl - i >= n && memcmp(out->data + i, line, n) == 0)
			count++;
		while (i < hl && out->data[i] != '\n')
			i++;
		i++;
	}
	return count;
}

/* Does out's header section have a line starting with prefix? */
static int
has_header(const struct buf *out, const char *prefix)
{
	size_t hl = header_len(out), n = strlen(prefix), i = 0;

	while (i < hl) {
		if (hl - i >= n && strncasecmp(out->data + i, prefix, n) == 0)
			return 1;
		while (i < hl && out->data[i] != '\n')
			i++;
		i++;
	}
	return 0;
}

struct added_case {
	const char *label;
	const char *text;
	int from, date, msgid, sender;	/* added by the builder */
};

static const struct added_case added_cases[] = {
	{ "nothing given", "To: b@x.example\n\n", 1, 1, 1, 0 },
	{ "From is the sender", "From: alice@example.org\nTo: b@x.example\n\n",
	  0, 1, 1, 0 },
	{ "From is the sender, display name",
	  "From: Alice <alice@example.org>\nTo: b@x.example\n\n", 0, 1, 1, 0 },
	{ "From is the sender, domain in other case",
	  "From: alice@Example.ORG\nTo: b@x.example\n\n", 0, 1, 1, 0 },
	/* User names are case-sensitive: Alice may be another account. */
	{ "From is the sender's name in other case",
	  "From: Alice@example.org\nTo: b@x.example\n\n", 0, 1, 1, 1 },
	{ "From is someone else", "From: bob@example.org\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	{ "From is the sender and someone else",
	  "From: alice@example.org, bob@example.org\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	/* qualified with sender_domain: the poster's own address */
	{ "From is the poster's bare local part",
	  "From: alice\nTo: b@x.example\n\n", 0, 1, 1, 0 },
	{ "From is another bare local part",
	  "From: bob\nTo: b@x.example\n\n", 0, 1, 1, 1 },
	{ "From is empty", "From:\nTo: b@x.example\n\n", 0, 1, 1, 1 },
	{ "Date given", "Date: Mon, 2 Jan 2006 15:04:05 -0700\n"
	  "To: b@x.example\n\n", 1, 0, 1, 0 },
	{ "Message-ID given", "message-id: <x@y>\nTo: b@x.example\n\n",
	  1, 1, 0, 0 },
	{ "all given", "From: alice@example.org\nDate: x\nMessage-Id: <a@b>\n"
	  "To: b@x.example\n\n", 0, 0, 0, 0 },
	{ "client Sender dropped, From is the sender",
	  "From: alice@example.org\nSender: mallory@evil.example\n"
	  "To: b@x.example\n\n", 0, 1, 1, 0 },
	{ "client Sender dropped, From someone else",
	  "From: bob@example.org\nSender: alice@example.org\n"
	  "To: b@x.example\n\n", 0, 1, 1, 1 },
	/* Display text that shows an address: issue #12, "Sender truth". */
	{ "display name is another address",
	  "From: \"ceo@example.org\" <alice@example.org>\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	{ "comment is another address",
	  "From: alice@example.org (ceo@example.org)\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	{ "display name is the sender's address",
	  "From: \"alice@example.org\" <alice@example.org>\nTo: b@x.example\n\n",
	  0, 1, 1, 0 },
	{ "comment is the sender's address, domain in other case",
	  "From: Alice <alice@example.org> (alice@Example.ORG)\n"
	  "To: b@x.example\n\n", 0, 1, 1, 0 },
	{ "display name is the sender's name in other case",
	  "From: \"ALICE@example.org\" <alice@example.org>\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	{ "display name holds an address among words",
	  "From: \"Alice, for ceo@example.org\" <alice@example.org>\n"
	  "To: b@x.example\n\n", 0, 1, 1, 1 },
	{ "display name holds the sender's address among words",
	  "From: \"Alice alice@example.org\" <alice@example.org>\n"
	  "To: b@x.example\n\n", 0, 1, 1, 1 },
	{ "an at-sign alone counts", "From: \"Alice @ home\" <alice@example.org>"
	  "\nTo: b@x.example\n\n", 0, 1, 1, 1 },
	{ "quoted-pair at-sign",
	  "From: \"ceo\\@example.org\" <alice@example.org>\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	{ "folded display name",
	  "From: \"ceo@\n example.org\"\n <alice@example.org>\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	{ "comment inside the angle brackets",
	  "From: <alice(ceo@example.org)@example.org>\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	{ "nested comment",
	  "From: alice@example.org (Alice (ceo@example.org))\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	{ "group name is another address",
	  "From: \"ceo@example.org\": alice@example.org;\nTo: b@x.example\n\n",
	  0, 1, 1, 1 },
	{ "Q encoded word hides an address",
	  "From: =?utf-8?q?ceo=40example.org?= <alice@example.org>\n"
	  "To: b@x.example\n\n", 0, 1, 1, 1 },
	{ "B encoded word hides an address",
	  "From: =?UTF-8?B?Y2VvQGV4YW1wbGUub3Jn?= <alice@example.org>\n"
	  "To: b@x.example\n\n", 0, 1, 1, 1 },
	{ "adjacent encoded words join",
	  "From: =?utf-8?q?ceo?= =?utf-8?q?=40example.org?= <alice@example.org>\n"
	  "To: b@x.example\n\n", 0, 1, 1, 1 },
	{ "encoded word in a quoted string",
	  "From: \"=?utf-8?q?ceo=40example.org?=\" <alice@example.org>\n"
	  "To: b@x.example\n\n", 0, 1, 1, 1 },
	{ "encoded word in a comment",
	  "From: alice@example.org (=?utf-8?b?Y2VvQGV4YW1wbGUub3Jn?=)\n"
	  "To: b@x.example\n\n", 0, 1, 1, 1 },
	{ "encoded word is the sender's address",
	  "From: =?utf-8?b?YWxpY2VAZXhhbXBsZS5vcmc=?= <alice@example.org>\n"
	  "To: b@x.example\n\n", 0, 1, 1, 0 },
	{ "UTF-7 encoded word cannot be read",
	  "From: =?utf-7?q?ceo+AEA-example.org?= <alice@example.org>\n"
	  "To: b@x.example\n\n", 0, 1, 1, 1 },
	{ "fullwidth at-sign", "From: ceo\xef\xbc\xa0" "example.org "
	  "<alice@example.org>\nTo: b@x.example\n\n", 0, 1, 1, 1 },
	{ "small at-sign", "From: \"ceo\xef\xb9\xab" "example.org\" "
	  "<alice@example.org>\nTo: b@x.example\n\n", 0, 1, 1, 1 },
	{ "encoded display name without an address",
	  "From: =?utf-8?q?Alice_Sm=C3=B8rensen?= <alice@example.org>\n"
	  "To: b@x.example\n\n", 0, 1, 1, 0 },
	{ "8-bit display name without an address",
	  "From: \"Alice Sm\xc3\xb8rensen\" <alice@example.org> (home)\n"
	  "To: b@x.example\n\n", 0, 1, 1, 0 },
	{ "a broken encoded word is text",
	  "From: =?utf-8?b?!!!?= <alice@example.org>\nTo: b@x.example\n\n",
	  0, 1, 1, 0 },
};

static void
test_added_headers(void **state)
{
	struct message_params p;
	size_t i;

	default_params(&p);
	for (i = 0; i < sizeof(added_cases) / sizeof(added_cases[0]); i++) {
		const struct added_case *c = &added_cases[i];
		struct result r = { 0 };

		run3(&p, c->label, c->text, strlen(c->text), 0, 0, &r);
		assert_int_equal(r.verdict, MSG_OK);
		if (r.out.len < strlen(RECEIVED) ||
		    memcmp(r.out.data, RECEIVED, strlen(RECEIVED)) != 0 ||
		    count_header_line(&r.out, "Received:") != 1 ||
		    count_header_line(&r.out, ADDED_FROM) != c->from ||
		    count_header_line(&r.out, ADDED_DATE) != c->date ||
		    count_header_line(&r.out, ADDED_MSGID) != c->msgid ||
		    count_header_line(&r.out, ADDED_SENDER) != c->sender ||
		    count_header_line(&r.out, "Sender:") != c->sender ||
		    has_header(&r.out, "Bcc:") ||
		    !has_header(&r.out, "From:") ||
		    !has_header(&r.out, "Date:") ||
		    !has_header(&r.out, "Message-ID:")) {
			print_error("%s: header block:\n%.*s", c->label,
			    (int)r.out.len, r.out.data);
			fail();
		}
		result_free(&r);
	}
}

/*
 * Two From: fields, one of them someone else: the stored copy must not
 * claim to be from that someone without a Sender: naming the poster (or
 * the text is refused: RFC 5322 allows one From: only). Readers show the
 * first From:, so whichever order, the forgery must not pass silently.
 */
static void
test_two_from_fields(void **state)
{
	static const char *const texts[] = {
		"From: The CEO <ceo@example.org>\nFrom: alice@example.org\n"
		"To: staff@example.org\n\nwire the money\n",
		"from: ceo@example.org\nFROM: Alice <alice@example.org>\n"
		"To: staff@example.org\n\nwire the money\n",
		"From: alice@example.org\nFrom: ceo@example.org\n"
		"To: staff@example.org\n\nwire the money\n",
	};
	struct message_params p;
	size_t i;

	/* Regression: message.c scan_field() overwrites hs->from_is_sender with
	 * each From: field, so only the last one counts. Input: texts[0]
	 * (From: ceo@..., then From: alice@..., posted by alice).
	 * Now: "Sender: <alice@example.org>" added, or MSG_REJECT.
	 * It was: MSG_OK, both From: kept, no Sender: -- the message reads
	 * as from the CEO with nothing naming alice but Received:. */
	default_params(&p);
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct result r = { 0 };

		run3(&p, texts[i], texts[i], strlen(texts[i]), 0, 0, &r);
		if (r.verdict == MSG_OK &&
		    count_header_line(&r.out, ADDED_SENDER) != 1) {
			print_error("case %zu: stored without Sender:\n%.*s",
			    i, (int)r.out.len, r.out.data);
			fail();
		}
		result_free(&r);
	}
}

/*
 * A resent message (RFC 5322 3.6.6): the topmost block of Resent- fields
 * is the client's claim. When it names recipients, they are the only ones;
 * its Resent-From is held to the Sender rule (Resent-Sender: added), a
 * client's Resent-Sender and every Resent-Bcc are dropped, and earlier
 * blocks are history, kept as they are otherwise.
 */
struct resent_case {
	const char *label;
	const char *text;
	const char *rcpts;
	int rsender;		/* our Resent-Sender: added */
	int sender;		/* our Sender: added */
	const char *present;	/* in the output's header section, or NULL */
	const char *absent;	/* nowhere in the output, or NULL */
};

#define ADDED_RSENDER "Resent-Sender: <alice@example.org>\n"

static const struct resent_case resent_cases[] = {
	{ "resent by the poster",
	  "Resent-From: alice@example.org\nResent-Date: x\n"
	  "Resent-To: dave@example.net\nFrom: ceo@example.org\n"
	  "To: staff@example.org\n\nmemo\n", "dave@example.net", 0, 1,
	  "Resent-From: alice@example.org\n", NULL },
	{ "Resent-From names someone else",
	  "Resent-From: ceo@example.org\nResent-Date: x\n"
	  "Resent-To: dave@example.net\nFrom: ceo@example.org\n"
	  "To: staff@example.org\n\n", "dave@example.net", 1, 1, NULL, NULL },
	{ "Resent-From display name is another address",
	  "Resent-From: \"ceo@example.org\" <alice@example.org>\n"
	  "Resent-Date: x\nResent-To: dave@example.net\n"
	  "From: alice@example.org\nTo: staff@example.org\n\n",
	  "dave@example.net", 1, 0, NULL, NULL },
	{ "Resent-From is the poster and someone else",
	  "Resent-From: alice@example.org, ceo@example.org\nResent-Date: x\n"
	  "Resent-To: dave@example.net\nFrom: alice@example.org\n"
	  "To: staff@example.org\n\n", "dave@example.net", 1, 0, NULL, NULL },
	{ "two Resent-From in the block",
	  "Resent-From: alice@example.org\nResent-From: ceo@example.org\n"
	  "Resent-To: dave@example.net\nFrom: alice@example.org\n"
	  "To: staff@example.org\n\n", "dave@example.net", 1, 0, NULL, NULL },
	{ "Resent-Bcc is a recipient and dropped",
	  "Resent-From: alice@example.org\nResent-Date: x\n"
	  "Resent-To: dave@example.net\nResent-Bcc: eve@example.net,\n"
	  " Hidden <frank@example.net>\nFrom: alice@example.org\n"
	  "To: staff@example.org\n\n",
	  "dave@example.net,eve@example.net,frank@example.net", 0, 0,
	  NULL, "Resent-Bcc" },
	{ "Resent-Bcc alone",
	  "Resent-From: alice@example.org\nResent-Date: x\n"
	  "resent-bcc: eve@example.net\nFrom: alice@example.org\n"
	  "To: staff@example.org\n\n", "eve@example.net", 0, 0, NULL,
	  "eve@" },
	{ "client Resent-Sender dropped, Resent-From is the poster",
	  "Resent-From: alice@example.org\nResent-Sender: mallory@evil.example\n"
	  "Resent-To: dave@example.net\nFrom: alice@example.org\n"
	  "To: staff@example.org\n\n", "dave@example.net", 0, 0, NULL,
	  "mallory" },
	{ "client Resent-Sender dropped, Resent-From someone else",
	  "Resent-From: ceo@example.org\nResent-Sender: alice@example.org\n"
	  "Resent-To: dave@example.net\nFrom: alice@example.org\n"
	  "To: staff@example.org\n\n", "dave@example.net", 1, 0, NULL,
	  "Resent-Sender: alice" },
	{ "Resent-From and Resent-Date added to a resend",
	  "Resent-To: dave@example.net\nFrom: alice@example.org\n"
	  "To: staff@example.org\n\n", "dave@example.net", 0, 0,
	  "Resent-To: dave@example.net\nResent-From: <alice@example.org>\n"
	  "Resent-Date: Thu, 1 Jan 1970 00:00:00 +0000\n"
	  "From: alice@example.org\n", NULL },
	{ "Resent-Cc, names in any case",
	  "RESENT-to: a@x.example\nresent-CC: b@x.example\n"
	  "Resent-From: alice@example.org\nResent-Date: x\n"
	  "To: staff@example.org\n\n", "a@x.example,b@x.example", 0, 0,
	  NULL, NULL },
	{ "the block's fields follow one another anywhere",
	  "From: ceo@example.org\nTo: staff@example.org\n"
	  "Resent-From: alice@example.org\nResent-Date: x\n"
	  "Resent-To: dave@example.net\nSubject: s\n\n", "dave@example.net",
	  0, 1, NULL, NULL },
	{ "original Bcc dropped in a resend, not a recipient",
	  "Resent-From: alice@example.org\nResent-Date: x\n"
	  "Resent-To: dave@example.net\nFrom: ceo@example.org\n"
	  "To: staff@example.org\nBcc: secret@example.org\n\n",
	  "dave@example.net", 0, 1, NULL, "secret" },
	{ "earlier blocks are history",
	  "Resent-From: alice@example.org\nResent-Date: x\n"
	  "Resent-To: dave@example.net\n"
	  "Received: from a.example by b.example; x\n"
	  "Resent-From: ceo@example.org\nResent-Date: y\n"
	  "Resent-To: old@example.net\nResent-Sender: boss@example.org\n"
	  "Resent-Bcc: oldbcc@example.net\n"
	  "Received: from c.example by d.example; y\n"
	  "From: ceo@example.org\nTo: staff@example.org\n\n",
	  "dave@example.net", 0, 1,
	  "Received: from a.example by b.example; x\n"
	  "Resent-From: ceo@example.org\nResent-Date: y\n"
	  "Resent-To: old@example.net\n"
	  "Received: from c.example by d.example; y\n", "oldbcc" },
	{ "a history block's bad address is not judged",
	  "Resent-From: alice@example.org\nResent-Date: x\n"
	  "Resent-To: dave@example.net\nReceived: from a by b; x\n"
	  "Resent-From: <<<\nResent-To: <<<\n"
	  "From: alice@example.org\nTo: staff@example.org\n\n",
	  "dave@example.net", 0, 0, "Resent-To: <<<\n", NULL },
	{ "a block without recipients: To, Cc and Bcc count",
	  "Resent-From: ceo@example.org\nResent-Date: x\n"
	  "From: ceo@example.org\nTo: staff@example.org\n"
	  "Bcc: b@x.example\n\n", "staff@example.org,b@x.example", 1, 1,
	  NULL, NULL },
	{ "no Resent-From in a block without recipients: nothing added",
	  "Resent-Date: x\nResent-Message-ID: <r@x>\n"
	  "From: alice@example.org\nTo: staff@example.org\n\n",
	  "staff@example.org", 0, 0, NULL, "Resent-From" },
	{ "only the block's recipients count toward the limit",
	  "Resent-From: alice@example.org\nResent-To: dave@example.net\n"
	  "From: alice@example.org\n"
	  "To: a@x.example, b@x.example, c@x.example, d@x.example\n\n",
	  "dave@example.net", 0, 0, NULL, NULL },
};

static void
test_resent(void **state)
{
	struct message_params p;
	size_t i;

	default_params(&p);
	p.max_rcpts = 3;
	for (i = 0; i < sizeof(resent_cases) / sizeof(resent_cases[0]); i++) {
		const struct resent_case *c = &resent_cases[i];
		struct result r = { 0 };
		size_t hl;

		run3(&p, c->label, c->text, strlen(c->text), 0, 0, &r);
		assert_int_equal(buf_nul(&r.out), 0);
		hl = r.verdict == MSG_OK ? header_len(&r.out) : 0;
		if (r.verdict != MSG_OK || strcmp(r.rcpts.data, c->rcpts) ||
		    count_header_line(&r.out, ADDED_RSENDER) != c->rsender ||
		    count_header_line(&r.out, "Resent-Sender:") != c->rsender ||
		    count_header_line(&r.out, ADDED_SENDER) != c->sender ||
		    count_header_line(&r.out, "Sender:") != c->sender ||
		    count_header_line(&r.out, "Resent-Bcc:") != 0 ||
		    (c->present != NULL && (strstr(r.out.data, c->present) ==
		    NULL || strstr(r.out.data, c->present) >= r.out.data + hl)) ||
		    (c->absent != NULL && strstr(r.out.data, c->absent))) {
			print_error("%s: verdict %d (%s), rcpts \"%s\", want "
			    "\"%s\"; output:\n%.*s", c->label, r.verdict,
			    r.reason, r.rcpts.data, c->rcpts, (int)r.out.len,
			    r.out.data);
			fail();
		}
		result_free(&r);
	}
}

/*
 * A client's Received: that names this host after "by" cannot be genuine:
 * it is dropped, the other trace lines stay in their order.
 */
struct received_case {
	const char *label;
	const char *field;	/* a Received: field, its LF included */
	int kept;
};

static const struct received_case received_cases[] = {
	{ "our format, folded",
	  "Received: from [10.0.0.9] (user ceo)\n"
	  "\tby mpp.test (mppd) with MPP id 9.M9P9Q9;\n"
	  "\tThu, 1 Jan 1970 00:00:00 +0000\n", 0 },
	{ "our format, unfolded",
	  "Received: from [10.0.0.9] (user ceo) by mpp.test (mppd) with MPP "
	  "id 9.M9P9Q9; Thu, 1 Jan 1970 00:00:00 +0000\n", 0 },
	{ "host name in other case", "Received: from x BY MPP.Test; x\n", 0 },
	{ "folded between by and the host",
	  "Received: from x by\n\tmpp.test\n (mppd); x\n", 0 },
	{ "a comment between by and the host, a trailing dot",
	  "Received: from x by (it is) mpp.test. with ESMTP; x\n", 0 },
	{ "a comment right after the host",
	  "Received: from x by mpp.test(Postfix) id 1; x\n", 0 },
	{ "by in a comment", "Received: from x (relayed by mpp.test) by y; x\n",
	  0 },
	{ "by inside quotes", "Received: from \"(\" by mpp.test; x\n", 0 },
	{ "field name in other case", "RECEIVED: from x by mpp.test; x\n", 0 },
	{ "another host", "Received: from mpp.test by relay.example; x\n", 1 },
	{ "a host below ours", "Received: from x by mx.mpp.test; x\n", 1 },
	{ "a host above ours", "Received: from x by mpp.test.example; x\n", 1 },
	{ "by inside a word", "Received: from standby mpp.test by y; x\n", 1 },
	{ "not after by", "Received: from x by y for <u@mpp.test>; x\n", 1 },
};

/* Start sending stderr (the log) to a temporary file; returns the saved fd. */
static int
stderr_capture(FILE **fp)
{
	int saved;

	fflush(stderr);
	assert_non_null(*fp = tmpfile());
	assert_true((saved = dup(STDERR_FILENO)) != -1);
	assert_true(dup2(fileno(*fp), STDERR_FILENO) != -1);
	return saved;
}

/* Restore stderr; the captured text, which the caller frees. */
static char *
stderr_release(FILE *fp, int saved)
{
	char *text;
	long n;

	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) != -1);
	close(saved);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	assert_non_null(text = malloc((size_t)n + 1));
	assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
	text[n] = '\0';
	fclose(fp);
	return text;
}

static size_t
count_lines_with(const char *text, const char *needle)
{
	const char *line = text, *nl;
	size_t n = 0;

	for (; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line) - 1;
		if (memmem(line, (size_t)(nl - line), needle,
		    strlen(needle)) != NULL)
			n++;
	}
	return n;
}

static void
test_forged_received(void **state)
{
	static const char head[] = "Received: from a.example by b.example; 1\n";
	static const char tail[] = "Received: from c.example by d.example; 2\n"
	    "To: b@x.example\n\nbody\n";
	struct message_params p;
	char text[1024], want[1024], *log;
	size_t i, dropped = 0;
	FILE *fp;
	int saved;

	default_params(&p);
	saved = stderr_capture(&fp);
	for (i = 0; i < sizeof(received_cases) / sizeof(received_cases[0]);
	    i++) {
		const struct received_case *c = &received_cases[i];
		struct result r = { 0 };

		snprintf(text, sizeof(text), "%s%s%s", head, c->field, tail);
		snprintf(want, sizeof(want), RECEIVED "%s%s"
		    "Received: from c.example by d.example; 2\nTo: ", head,
		    c->kept ? c->field : "");
		run3(&p, c->label, text, strlen(text), 0, 0, &r);
		assert_int_equal(r.verdict, MSG_OK);
		if (r.out.len < strlen(want) ||
		    memcmp(r.out.data, want, strlen(want)) != 0) {
			stderr_release(fp, saved);
			print_error("%s: output:\n%.*s--- want it to begin:\n"
			    "%s\n", c->label, (int)r.out.len, r.out.data, want);
			fail();
		}
		dropped += !c->kept;
		result_free(&r);
	}
	/* One log line per drop (run3 runs each case three times), with the
	   queue id, the client's text escaped onto that one line. */
	log = stderr_release(fp, saved);
	assert_int_equal(count_lines_with(log, "id=1.M1P1Q1 dropped=Received "
	    "reason=\"names this host after by\" value=\" from [10.0.0.9] "
	    "(user ceo)\\x0a\\x09by mpp.test (mppd)"), 3);
	assert_int_equal(count_lines_with(log, "id=1.M1P1Q1 dropped=Received "
	    "reason="), 3 * dropped);
	assert_int_equal(count_lines_with(log, "mpp["), 3 * dropped);
	free(log);
}

/* The Received: header names no recipient, even a Bcc one. */
static void
test_received_names_no_recipient(void **state)
{
	static const char text[] = "To: bob@example.com\n"
	    "Bcc: secret@example.net\n\nhi\n";
	struct message_params p;
	struct result r = { 0 };

	default_params(&p);
	run3(&p, "received", text, strlen(text), 0, 0, &r);
	assert_int_equal(r.verdict, MSG_OK);
	assert_int_equal(buf_nul(&r.out), 0);
	assert_null(strstr(r.out.data, "secret"));
	assert_memory_equal(r.out.data, RECEIVED, strlen(RECEIVED));
	assert_string_equal(r.rcpts.data, "bob@example.com,secret@example.net");
	result_free(&r);
}

/* The builder copies every string of its params. */
static void
test_params_copied(void **state)
{
	char qid[] = "9.M9P9Q9", user[] = "carol";
	struct message_params p;
	const struct message_params *got;
	struct message *m;

	default_params(&p);
	p.queue_id = qid;
	p.auth_user = user;
	m = message_new(&p, NULL, NULL);
	assert_non_null(m);
	memset(qid, 'x', sizeof(qid) - 1);
	memset(user, 'x', sizeof(user) - 1);
	got = message_params(m);
	assert_string_equal(got->queue_id, "9.M9P9Q9");
	assert_string_equal(got->auth_user, "carol");
	assert_string_equal(got->sender, "alice@example.org");
	assert_string_equal(got->sender_domain, "example.org");
	assert_string_equal(got->hostname, "mpp.test");
	assert_string_equal(got->client_addr, "192.0.2.7");
	assert_int_equal(got->max_rcpts, 100);
	assert_string_equal(message_reason(m), "");
	message_free(m);
	message_free(NULL);
}

/* Refusals. */

struct refuse_case {
	const char *label;
	const char *text;
	size_t len;		/* 0: strlen(text) */
	unsigned long long max_size;	/* 0: default */
	size_t max_rcpts;	/* 0: default */
	int bare, nul;
	enum message_verdict verdict;
	const char *reason;	/* a substring of message_reason() */
};

static const struct refuse_case refuse_cases[] = {
	{ "empty text", "", 0, 0, 0, 0, 0, MSG_REJECT, "no recipient" },
	{ "no recipient field", "From: alice@example.org\nSubject: x\n\nhi\n",
	  0, 0, 0, 0, 0, MSG_REJECT, "no recipient" },
	{ "empty To", "To:\n\nhi\n", 0, 0, 0, 0, 0, MSG_REJECT,
	  "no recipient" },
	{ "only an empty group", "To: undisclosed-recipients:;\n\n", 0, 0, 0,
	  0, 0, MSG_REJECT, "no recipient" },
	{ "body only", "hello there\nTo: a@b.example\n", 0, 0, 0, 0, 0,
	  MSG_REJECT, "no recipient" },
	{ "too many", "To: a@x.example, b@x.example, c@x.example\n\n", 0, 0, 2,
	  0, 0, MSG_REJECT, "too many recipients" },
	{ "too many over fields", "To: a@x.example\nCc: b@x.example\n"
	  "Bcc: c@x.example\n\n", 0, 0, 2, 0, 0, MSG_REJECT,
	  "too many recipients" },
	{ "unparseable To", "To: <<<\n\n", 0, 0, 0, 0, 0, MSG_REJECT,
	  "unparseable" },
	{ "unparseable Cc", "To: a@x.example\nCc: a@\n\n", 0, 0, 0, 0, 0,
	  MSG_REJECT, "unparseable" },
	{ "unparseable Bcc", "To: a@x.example\nBcc: \"open\n\n", 0, 0, 0, 0,
	  0, MSG_REJECT, "unparseable" },
	{ "unparseable From", "From: <alice@example.org\nTo: a@x.example\n\n",
	  0, 0, 0, 0, 0, MSG_REJECT, "unparseable" },
	{ "8-bit address", "To: b\xc3\xb6@x.example\n\n", 0, 0, 0, 0, 0,
	  MSG_REJECT, "unparseable" },
	{ "leading continuation line", " folded\nTo: a@x.example\n\n", 0, 0,
	  0, 0, 0, MSG_REJECT, "continuation" },
	{ "leading tab continuation", "\tx\nTo: a@x.example\n\n", 0, 0, 0, 0,
	  0, MSG_REJECT, "continuation" },
	{ "bare CR or LF", "To: a@x.example\n\nhi\n", 0, 0, 0, 1, 0,
	  MSG_REJECT, "bare CR or LF" },
	{ "NUL", "To: a@x.example\n\nh\0i\n", 21, 0, 0, 0, 1,
	  MSG_REJECT, "NUL" },
	{ "too large", "To: a@x.example\n\n"
	  "0123456789012345678901234567890123456789\n", 0, 40, 0, 0, 0,
	  MSG_REJECT, "too large" },
	{ "too large in the header", "To: a@x.example\nSubject: "
	  "0123456789012345678901234567890123456789\n\n", 0, 30, 0, 0, 0,
	  MSG_REJECT, "too large" },
	{ "one byte over", "To: a@x.example\n\n12345\n", 0, 22, 0, 0, 0,
	  MSG_REJECT, "too large" },
	{ "exactly the limit", "To: a@x.example\n\n12345\n", 0, 23, 0, 0, 0,
	  MSG_OK, "" },
	{ "unparseable Resent-To in the block", "Resent-From: alice@example.org"
	  "\nResent-To: <<<\nTo: a@x.example\n\n", 0, 0, 0, 0, 0, MSG_REJECT,
	  "unparseable" },
	{ "unparseable Resent-From in the block", "Resent-From: <alice\n"
	  "Resent-To: d@x.example\nTo: a@x.example\n\n", 0, 0, 0, 0, 0,
	  MSG_REJECT, "unparseable" },
	{ "unparseable To in a resend", "Resent-To: d@x.example\n"
	  "To: <<<\n\n", 0, 0, 0, 0, 0, MSG_REJECT, "unparseable" },
	{ "a resend to an empty group", "Resent-To: undisclosed:;\n"
	  "To: a@x.example\n\n", 0, 0, 0, 0, 0, MSG_REJECT, "no recipient" },
	{ "too many over Resent fields", "Resent-To: a@x.example\n"
	  "Resent-Cc: b@x.example\nResent-Bcc: c@x.example\nTo: d@x.example"
	  "\n\n", 0, 0, 2, 0, 0, MSG_REJECT, "too many recipients" },
	{ "duplicates do not count", "To: a@x.example, a@x.EXAMPLE\n"
	  "Cc: a@X.example\n\n", 0, 0, 1, 0, 0, MSG_OK, "" },
};

static void
test_refusals(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(refuse_cases) / sizeof(refuse_cases[0]); i++) {
		const struct refuse_case *c = &refuse_cases[i];
		struct message_params p;
		struct result r = { 0 };

		default_params(&p);
		if (c->max_size)
			p.max_size = c->max_size;
		if (c->max_rcpts)
			p.max_rcpts = c->max_rcpts;
		run3(&p, c->label, c->text, c->len ? c->len : strlen(c->text),
		    c->bare, c->nul, &r);
		if (r.verdict != c->verdict ||
		    strstr(r.reason, c->reason) == NULL ||
		    (c->verdict == MSG_OK) != (r.reason[0] == '\0')) {
			print_error("%s: verdict %d reason \"%s\", want %d "
			    "\"%s\"\n", c->label, r.verdict, r.reason,
			    c->verdict, c->reason);
			fail();
		}
		result_free(&r);
	}
}

/*
 * Too large and unparseable at once: refused however the text is cut,
 * though the reason (the first problem met) may differ. Found by
 * fuzz_message (corpus file crash-reason-order).
 */
static void
test_two_reasons(void **state)
{
	static const char text[] = "To: <<<\n\n"
	    "0123456789012345678901234567890123456789\n";
	static const size_t steps[] = { 0, 1, 7, 9 };
	struct message_params p;
	size_t i;

	default_params(&p);
	p.max_size = 12;
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct result r = { 0 };

		run(&p, text, sizeof(text) - 1, steps[i], 0, 0, 1, &r);
		assert_int_equal(r.verdict, MSG_REJECT);
		assert_true(strstr(r.reason, "too large") != NULL ||
		    strstr(r.reason, "unparseable") != NULL);
		result_free(&r);
	}
}

/* A recipient longer than MESSAGE_ADDR_MAX once qualified is refused. */
static void
test_long_qualified_recipient(void **state)
{
	char domain[400], text[512];
	struct message_params p;
	struct result r = { 0 };

	memset(domain, 'd', sizeof(domain) - 1);
	domain[sizeof(domain) - 1] = '\0';
	memcpy(domain + 100, ".example", 8);
	default_params(&p);
	p.sender_domain = domain;
	snprintf(text, sizeof(text), "To: %0200d\n\n", 7);
	run3(&p, "long", text, strlen(text), 0, 0, &r);
	assert_int_equal(r.verdict, MSG_REJECT);
	assert_non_null(strstr(r.reason, "too long"));
	result_free(&r);
}

/*
 * The header section may be up to MESSAGE_HEADER_MAX, not over: fields of
 * MESSAGE_HEADER_MAX - 1 bytes (the empty line makes it the limit) pass,
 * MESSAGE_HEADER_MAX + 1 do not.
 */
static void
test_header_max(void **state)
{
	static const char head[] = "To: a@x.example\nX-Pad: ";
	static const size_t fields[] = { MESSAGE_HEADER_MAX - 1,
	    MESSAGE_HEADER_MAX + 1 };
	struct message_params p;
	size_t i, pad, len;
	char *text;

	default_params(&p);
	text = malloc(MESSAGE_HEADER_MAX + 16);
	assert_non_null(text);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		struct result r = { 0 };

		/* head, pad, LF: fields[i] bytes; then LF, "hi", LF */
		pad = fields[i] - (sizeof(head) - 1) - 1;
		memcpy(text, head, sizeof(head) - 1);
		memset(text + sizeof(head) - 1, 'p', pad);
		memcpy(text + sizeof(head) - 1 + pad, "\n\nhi\n", 5);
		len = fields[i] + 4;
		run(&p, text, len, i == 0 ? 0 : 1000, 0, 0, 1, &r);
		if (i == 0)
			assert_int_equal(r.verdict, MSG_OK);
		else {
			assert_int_equal(r.verdict, MSG_REJECT);
			assert_non_null(strstr(r.reason, "header section"));
		}
		result_free(&r);
	}
	/* A header line with no end at all is refused too. */
	{
		struct result r = { 0 };

		memset(text, 'a', MESSAGE_HEADER_MAX + 1);
		memcpy(text, "X-Long: ", 8);
		run(&p, text, MESSAGE_HEADER_MAX + 1, 4096, 0, 0, 1, &r);
		assert_int_equal(r.verdict, MSG_REJECT);
		assert_non_null(strstr(r.reason, "header section"));
		result_free(&r);
	}
	free(text);
}

/* Spilling. */

/* A message whose body is n lines of 64 bytes; the caller frees it. */
static char *
big_text(size_t lines, size_t *len)
{
	static const char head[] = "From: alice@example.org\n"
	    "To: bob@example.com\nDate: x\nMessage-ID: <m@x>\n\n";
	char *t, *p;
	size_t i;

	*len = sizeof(head) - 1 + lines * 64;
	t = malloc(*len);
	assert_non_null(t);
	memcpy(t, head, sizeof(head) - 1);
	p = t + sizeof(head) - 1;
	for (i = 0; i < lines; i++, p += 64) {
		char num[24];

		snprintf(num, sizeof(num), "%08zu", i % 100000000);
		memset(p, '-', 63);
		memcpy(p, num, 8);
		p[63] = '\n';
	}
	return t;
}

static void
test_spill(void **state)
{
	static const char head[] = RECEIVED "From: alice@example.org\n"
	    "To: bob@example.com\nDate: x\nMessage-ID: <m@x>\n\n";
	struct message_params p;
	struct result spilled = { 0 }, whole = { 0 };
	size_t len, body;
	char *text;

	default_params(&p);
	text = big_text(5000, &len);		/* 320000 bytes of body */
	body = 5000 * 64;
	run3(&p, "spill", text, len, 0, 0, &spilled);
	run(&p, text, len, 0, 0, 0, 0, &whole);	/* no hook: all in memory */
	assert_int_equal(spilled.verdict, MSG_OK);
	assert_true(spilled.spills >= 1);
	assert_int_equal(whole.spills, 0);
	/* Spilled output followed by the rest is the message, exactly. */
	assert_int_equal(spilled.out.len, sizeof(head) - 1 + body);
	assert_memory_equal(spilled.out.data, head, sizeof(head) - 1);
	assert_memory_equal(spilled.out.data + sizeof(head) - 1,
	    text + len - body, body);
	assert_int_equal(whole.out.len, spilled.out.len);
	assert_memory_equal(whole.out.data, spilled.out.data, whole.out.len);
	assert_int_equal(spilled.size, spilled.out.len);
	result_free(&spilled);
	/* Fed in lines, the output is spilled every MESSAGE_SPILL_AT. */
	run(&p, text, len, 64, 0, 0, 1, &spilled);
	assert_int_equal(spilled.spills,
	    (int)((sizeof(head) - 1 + body) / MESSAGE_SPILL_AT));
	assert_int_equal(spilled.out.len, whole.out.len);
	assert_memory_equal(whole.out.data, spilled.out.data, whole.out.len);
	result_free(&spilled);
	result_free(&whole);
	free(text);
}

/* Under the threshold, nothing is spilled. */
static void
test_no_spill_when_small(void **state)
{
	struct message_params p;
	struct result r = { 0 };
	size_t len;
	char *text;

	default_params(&p);
	text = big_text(100, &len);
	run(&p, text, len, 0, 0, 0, 1, &r);
	assert_int_equal(r.verdict, MSG_OK);
	assert_int_equal(r.spills, 0);
	result_free(&r);
	free(text);
}

static void
test_spill_failure(void **state)
{
	struct message_params p;
	size_t len, fail_at;
	char *text;

	default_params(&p);
	text = big_text(5000, &len);
	for (fail_at = 1; fail_at <= 3; fail_at++) {
		struct result r = { 0 };

		r.spill_fail_at = (int)fail_at;
		run(&p, text, len, fail_at == 2 ? 1 : 4096, 0, 0, 1, &r);
		assert_int_equal(r.verdict, MSG_TEMPFAIL);
		assert_non_null(strstr(r.reason, "spool"));
		assert_int_equal(r.spills, (int)fail_at);
		result_free(&r);
	}
	free(text);
}

/* A refused message is not spilled further and stays refused. */
static void
test_refused_stays_refused(void **state)
{
	struct message_params p;
	struct result r = { 0 };
	size_t len;
	char *text;

	default_params(&p);
	p.max_size = 70000;
	text = big_text(5000, &len);
	run(&p, text, len, 0, 0, 0, 1, &r);
	assert_int_equal(r.verdict, MSG_REJECT);
	assert_non_null(strstr(r.reason, "too large"));
	assert_true(r.spills <= 1);
	result_free(&r);
	/* Bare CR reported with a spill failure: the first reason wins. */
	p.max_size = 10485760;
	r.spill_fail_at = 1;
	run(&p, text, len, 0, 1, 0, 1, &r);
	assert_int_equal(r.verdict, MSG_TEMPFAIL);
	result_free(&r);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_recipients),
		cmocka_unit_test(test_added_headers),
		cmocka_unit_test(test_two_from_fields),
		cmocka_unit_test(test_resent),
		cmocka_unit_test(test_forged_received),
		cmocka_unit_test(test_received_names_no_recipient),
		cmocka_unit_test(test_params_copied),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_two_reasons),
		cmocka_unit_test(test_long_qualified_recipient),
		cmocka_unit_test(test_header_max),
		cmocka_unit_test(test_spill),
		cmocka_unit_test(test_no_spill_when_small),
		cmocka_unit_test(test_spill_failure),
		cmocka_unit_test(test_refused_stays_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
