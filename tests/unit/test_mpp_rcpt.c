/*
 * Unit tests for client/mpp_rcpt: recipient operands, the header section
 * read ahead (fed whole, one byte at a time and in 7-byte pieces), which
 * operands it names, the Bcc: field for the others, and the faults that
 * make the server refuse a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../client/mpp_rcpt.h"

static const char msg[] =
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.org>, carol@example.org\r\n"
    "Cc: dave@example.org,\r\n"
    "\tErin <erin@Example.ORG>\r\n"
    "Bcc : frank@example.org\r\n"
    "Reply-To: grace@example.org\r\n"
    "Subject: to: heidi@example.org\r\n"
    "tO: root\r\n"
    "\r\n"
    "To: ivan@example.org\r\n";

static const struct {
	const char *operand;
	int named;
	const char *field;
} cases[] = {
	{ "bob@example.org", 1, "To" },
	{ "Bob B <bob@EXAMPLE.org>", 1, "To" },	/* domain in any case */
	{ "carol@example.org", 1, "To" },
	{ "dave@example.org", 1, "Cc" },
	{ "erin@example.org", 1, "Cc" },	/* continuation line */
	{ "frank@example.org", 1, "Bcc" },	/* blank before the colon */
	{ "root", 1, "To" },			/* no domain, as cron's */
	{ "  carol@example.org ", 1, "To" },
	{ "Bob@example.org", 0, NULL },		/* local parts exactly */
	{ "root@example.org", 0, NULL },	/* sender_domain unknown */
	{ "alice@example.org", 0, NULL },	/* From: is no recipient */
	{ "grace@example.org", 0, NULL },
	{ "heidi@example.org", 0, NULL },	/* in Subject: */
	{ "ivan@example.org", 0, NULL },	/* in the body */
	{ "ob@example.org", 0, NULL },
	{ "bob@example.or", 0, NULL },
};

static struct mpp_rcpt *
new_rcpt(void)
{
	struct mpp_rcpt *r = malloc(sizeof(*r));

	assert_non_null(r);
	mpp_rcpt_init(r);
	return r;
}

static void
free_rcpt(struct mpp_rcpt *r)
{
	mpp_rcpt_clear(r);
	free(r);
}

/* Feed text in pieces of step bytes (0: whole), then the end. */
static void
feed(struct mpp_rcpt *r, const char *text, size_t len, size_t step)
{
	size_t off = 0, n;
	long took;

	while (off < len && !r->done) {
		n = step == 0 || len - off < step ? len - off : step;
		took = mpp_rcpt_feed(r, text + off, n);
		assert_true(took >= 0);
		off += (size_t)took;
		if ((size_t)took < n)
			break;
	}
	if (!r->done)
		assert_int_equal(mpp_rcpt_eof(r), 0);
	/* what was not taken is the caller's to stream: scan it */
	if (off < len)
		mpp_rcpt_scan(r, text + off, len - off);
}

static void
check_named(size_t step)
{
	struct mpp_rcpt *r = new_rcpt();
	struct mpp_rcpt_list l = { NULL, 0 };
	const char *field;
	char err[256];
	size_t i;

	feed(r, msg, sizeof(msg) - 1, step);
	assert_true(r->done);
	assert_false(r->overflow);
	/* the fields end before the empty line; the read-ahead is raw */
	assert_int_equal(r->hdr_end, strstr(msg, "\r\n\r\n") + 2 - msg);
	assert_memory_equal(r->buf, msg, r->len);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mpp_rcpt_list_free(&l);
		assert_int_equal(mpp_rcpt_list_add(&l, cases[i].operand, err,
		    sizeof(err)), 0);
		assert_int_equal(l.n, 1);
		field = NULL;
		if (mpp_rcpt_named(r, &l.v[0], &field) != cases[i].named)
			fail_msg("%s: expected %d (step %zu)", cases[i].operand,
			    cases[i].named, step);
		if (cases[i].named)
			assert_string_equal(field, cases[i].field);
	}
	mpp_rcpt_list_free(&l);
	free_rcpt(r);
}

static void
test_named_whole(void **state)
{
	(void)state;
	check_named(0);
}

static void
test_named_byte_by_byte(void **state)
{
	(void)state;
	check_named(1);
}

static void
test_named_in_7_byte_pieces(void **state)
{
	(void)state;
	check_named(7);
}

static void
test_list_add(void **state)
{
	struct mpp_rcpt_list l = { NULL, 0 };
	char err[256];

	(void)state;
	assert_int_equal(mpp_rcpt_list_add(&l, "Bob <bob@example.org>, "
	    "carol@example.org", err, sizeof(err)), 0);
	assert_int_equal(mpp_rcpt_list_add(&l, "bob@EXAMPLE.ORG", err,
	    sizeof(err)), 0);			/* the same: left out */
	assert_int_equal(mpp_rcpt_list_add(&l, "root", err, sizeof(err)), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].addr, "bob@example.org");
	assert_string_equal(l.v[1].addr, "carol@example.org");
	assert_string_equal(l.v[2].addr, "root");
	assert_string_equal(l.v[2].operand, "root");
	assert_int_equal(mpp_rcpt_list_add(&l, "Bob <bob@", err, sizeof(err)),
	    -1);
	assert_string_equal(err, "recipient \"Bob <bob@\": not an address");
	assert_int_equal(mpp_rcpt_list_add(&l, "team:;", err, sizeof(err)),
	    -1);
	assert_string_equal(err, "recipient \"team:;\": names no address");
	assert_int_equal(mpp_rcpt_list_add(&l, "", err, sizeof(err)), -1);
	assert_int_equal(l.n, 3);
	mpp_rcpt_list_free(&l);
	assert_int_equal(l.n, 0);
	mpp_rcpt_list_free(NULL);
}

static void
test_bcc_field(void **state)
{
	static const char m[] = "To: bob@example.org\nCc: root\n\nhi\n";
	struct mpp_rcpt *r = new_rcpt();
	struct mpp_rcpt_list l = { NULL, 0 };
	struct buf b = { 0 };
	char err[256];

	(void)state;
	feed(r, m, sizeof(m) - 1, 0);
	assert_int_equal(mpp_rcpt_list_add(&l, "bob@example.org, root", err,
	    sizeof(err)), 0);
	assert_int_equal(mpp_rcpt_bcc(r, &l, &b), 0);	/* all named */
	assert_int_equal(b.len, 0);
	assert_int_equal(mpp_rcpt_list_add(&l, "dave@example.org", err,
	    sizeof(err)), 0);
	assert_int_equal(mpp_rcpt_list_add(&l, "Erin <\"erin x\"@example.net>",
	    err, sizeof(err)), 0);
	assert_int_equal(mpp_rcpt_bcc(r, &l, &b), 2);
	assert_int_equal(buf_nul(&b), 0);
	assert_string_equal(b.data,
	    "Bcc: dave@example.org,\n \"erin x\"@example.net\n");
	buf_free(&b);
	mpp_rcpt_list_free(&l);
	free_rcpt(r);
}

/*
 * A resend goes to its resent block's recipients only (as mppd takes
 * them): the original To: no longer names a recipient, and a blind one
 * goes into a Resent-Bcc: put at the top of the block, after the fields
 * above it. CRLF line ends, so the place found in the LF copy of the
 * fields must be mapped back to the raw read-ahead.
 */
static void
check_resend(size_t step)
{
	static const char m[] = "Received: from x by y; Mon, 1 Jan 2029\r\n"
	    "Resent-From: alice@example.org\r\n"
	    "Resent-To: bob@example.org\r\n"
	    "From: carol@example.org\r\n"
	    "To: dave@example.org\r\n"
	    "Resent-To: old@example.org\r\n"	/* an older block: history */
	    "\r\nhi\r\n";
	struct mpp_rcpt *r = new_rcpt();
	struct mpp_rcpt_list l = { NULL, 0 };
	struct buf b = { 0 };
	const char *field;
	char err[256];
	size_t at;

	feed(r, m, sizeof(m) - 1, step);
	assert_true(r->done);
	assert_int_equal(mpp_rcpt_list_add(&l, "bob@example.org", err,
	    sizeof(err)), 0);
	assert_int_equal(mpp_rcpt_list_add(&l, "dave@example.org", err,
	    sizeof(err)), 0);
	assert_int_equal(mpp_rcpt_list_add(&l, "old@example.org", err,
	    sizeof(err)), 0);
	assert_int_equal(mpp_rcpt_named(r, &l.v[0], &field), 1);
	assert_string_equal(field, "Resent-To");
	assert_int_equal(mpp_rcpt_named(r, &l.v[1], &field), 0);
	assert_int_equal(mpp_rcpt_named(r, &l.v[2], &field), 0);
	assert_string_equal(mpp_rcpt_bcc_name(r), "Resent-Bcc");
	at = mpp_rcpt_bcc_at(r);
	assert_int_equal(at, strstr(m, "Resent-From:") - m);
	assert_int_equal(mpp_rcpt_bcc(r, &l, &b), 2);
	assert_int_equal(buf_nul(&b), 0);
	assert_string_equal(b.data,
	    "Resent-Bcc: dave@example.org,\n old@example.org\n");
	assert_null(mpp_rcpt_refusal(r, l.n, err, sizeof(err)));
	buf_free(&b);
	mpp_rcpt_list_free(&l);
	free_rcpt(r);
}

static void
test_resend(void **state)
{
	(void)state;
	check_resend(0);
	check_resend(1);
	check_resend(7);
}

/* A resent block without recipients is no resend: Bcc: at the top. */
static void
test_resent_block_without_rcpts(void **state)
{
	static const char m[] = "Resent-Date: Mon, 1 Jan 2029\n"
	    "To: bob@example.org\n\nhi\n";
	struct mpp_rcpt *r = new_rcpt();
	struct mpp_rcpt_list l = { NULL, 0 };
	const char *field;
	char err[256];

	(void)state;
	feed(r, m, sizeof(m) - 1, 0);
	assert_int_equal(mpp_rcpt_list_add(&l, "bob@example.org", err,
	    sizeof(err)), 0);
	assert_int_equal(mpp_rcpt_named(r, &l.v[0], &field), 1);
	assert_string_equal(field, "To");
	assert_string_equal(mpp_rcpt_bcc_name(r), "Bcc");
	assert_int_equal(mpp_rcpt_bcc_at(r), 0);
	mpp_rcpt_list_free(&l);
	free_rcpt(r);
}

/* Where the header section ends, for the ways it may end. */
static void
test_header_ends(void **state)
{
	static const struct {
		const char *text;
		size_t hdr_end;
		const char *named;	/* an address in it */
	} t[] = {
		{ "To: a@x\n\nbody\n", 8, "a@x" },
		{ "To: a@x\r\n\r\nbody\r\n", 9, "a@x" },
		/* a line that is no field starts the body */
		{ "To: a@x\nnot a field\nTo: b@x\n", 8, "a@x" },
		{ "To: a@x\nFrom x\n", 8, "a@x" },
		/* the text ends in the header section */
		{ "To: a@x", 7, "a@x" },
		{ "To: a@x\r", 8, "a@x" },
		{ "To: a@x\n", 8, "a@x" },
		{ "hello\n", 0, NULL },
		{ "", 0, NULL },
	};
	struct mpp_rcpt_list l = { NULL, 0 };
	struct mpp_rcpt *r;
	const char *field;
	char err[256];
	size_t i, step;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (step = 0; step <= 7; step += 7) {
			r = new_rcpt();
			feed(r, t[i].text, strlen(t[i].text), step);
			assert_true(r->done);
			if (r->hdr_end != t[i].hdr_end)
				fail_msg("\"%s\": ends at %zu", t[i].text,
				    r->hdr_end);
			if (t[i].named != NULL) {
				mpp_rcpt_list_free(&l);
				assert_int_equal(mpp_rcpt_list_add(&l,
				    t[i].named, err, sizeof(err)), 0);
				assert_int_equal(mpp_rcpt_named(r, &l.v[0],
				    &field), 1);
			}
			free_rcpt(r);
		}
	}
	mpp_rcpt_list_free(&l);
}

/* The faults the header section shows, and the line numbers given. */
static void
test_refusal(void **state)
{
	static const struct {
		const char *text;
		size_t nrcpt;
		const char *why;	/* NULL: none */
	} t[] = {
		{ "To: a@x\n\nhi\n", 0, NULL },
		{ "Subject: s\n\nhi\n", 1, NULL },	/* an operand */
		{ "hi\n", 1, NULL },
		{ "Subject: s\n\nhi\n", 0, "it has no recipient: no To:, Cc: "
		    "or Bcc: field names an address, and no recipient was "
		    "given on the command line" },
		{ "To: undisclosed-recipients:;\n\n", 0, "it has no "
		    "recipient" },
		{ "", 0, "it has no recipient" },
		{ " folded\nTo: a@x\n\n", 1, "its first line starts with a "
		    "blank" },
		{ "\tTo: a@x\n", 1, "its first line starts with a blank" },
		{ "Subject: s\nCc: a@x,\n <b@\n\n", 1, "the Cc: field on line "
		    "2 is not a valid address list" },
		{ "Subject: s\r\nX: y\r\nFROM: <<\r\n\r\n", 1, "the From: "
		    "field on line 3 is not a valid address list" },
		{ "From: a@x\nTo: b@x\nFrom: c@x\n\n", 0, "it has more than "
		    "one From: field" },
	};
	struct mpp_rcpt *r;
	char why[256];
	const char *got;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		r = new_rcpt();
		feed(r, t[i].text, strlen(t[i].text), 1);
		got = mpp_rcpt_refusal(r, t[i].nrcpt, why, sizeof(why));
		if (t[i].why == NULL && got != NULL)
			fail_msg("\"%s\": refused: %s", t[i].text, got);
		if (t[i].why != NULL && (got == NULL ||
		    strncmp(got, t[i].why, strlen(t[i].why)) != 0))
			fail_msg("\"%s\": %s", t[i].text, got ? got : "NULL");
		free_rcpt(r);
	}
}

/* A header section of n LF-counted bytes, each line "X: y" + line end. */
static char *
big_header(size_t lines, const char *eol, size_t *len)
{
	size_t el = strlen(eol), i, off = 0;
	char *t = malloc(lines * (4 + el) + 64);

	assert_non_null(t);
	off += (size_t)sprintf(t, "To: a@x%s", eol);
	for (i = 0; i < lines; i++)
		off += (size_t)sprintf(t + off, "X: y%s", eol);
	off += (size_t)sprintf(t + off, "%sbody%s", eol, eol);
	*len = off;
	return t;
}

static void
test_header_size(void **state)
{
	/* LF-counted: 8 + 5 * lines + 1, against MPP_RCPT_HEADER_MAX */
	size_t fits = (MPP_RCPT_HEADER_MAX - 9) / 5, len;
	struct mpp_rcpt *r;
	char why[256], *t;

	(void)state;
	/* just fits with LF, and with CRLF though raw it is larger */
	t = big_header(fits, "\r\n", &len);
	assert_true(len > MPP_RCPT_HEADER_MAX);
	r = new_rcpt();
	feed(r, t, len, 4096);
	assert_null(mpp_rcpt_refusal(r, 0, why, sizeof(why)));
	free_rcpt(r);
	free(t);
	/* one line more is over */
	t = big_header(fits + 1, "\n", &len);
	r = new_rcpt();
	feed(r, t, len, 4096);
	assert_non_null(mpp_rcpt_refusal(r, 0, why, sizeof(why)));
	assert_non_null(strstr(why, "header section is over 1048576 bytes"));
	free_rcpt(r);
	free(t);
	/* never ending, in CRLF lines: the read-ahead fills, then stops */
	t = big_header(MPP_RCPT_READ_MAX / 6 + 10, "\r\n", &len);
	r = new_rcpt();
	feed(r, t, len, 65536);
	assert_true(r->overflow);
	assert_int_equal(r->len, MPP_RCPT_READ_MAX);
	assert_int_equal(mpp_rcpt_feed(r, "x", 1), 0);
	assert_non_null(mpp_rcpt_refusal(r, 1, why, sizeof(why)));
	free_rcpt(r);
	free(t);
}

static void
test_scan_and_explain(void **state)
{
	static const struct {
		const char *text;
		size_t len;
		const char *why;
	} t[] = {
		{ "To: a@x\n\nok\r\nok\n", 16, "the server gives no reason: "
		    "perhaps the message (15 bytes) is larger" },
		{ "To: a@x\n\nok\nbare\rcr\n", 20, "line 4 of the message "
		    "holds a bare CR" },
		{ "To: a@x\r\r\n\r\n", 12, "line 1 of the message holds a "
		    "bare CR" },
		{ "To: a@x\n\nlast CR\r", 17, "the server gives no reason" },
		{ "To: a@x\n\n\nnul \0 x\n", 18, "line 4 of the message holds "
		    "a NUL byte" },
	};
	struct mpp_rcpt *r;
	char why[256];
	size_t i, step;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (step = 0; step <= 1; step++) {
			r = new_rcpt();
			feed(r, t[i].text, t[i].len, step);
			mpp_rcpt_explain(r, r->text_bytes, why, sizeof(why));
			if (strncmp(why, t[i].why, strlen(t[i].why)) != 0)
				fail_msg("%zu: %s", i, why);
			free_rcpt(r);
		}
	}
}

/* Reading from a descriptor stops once the header section has ended. */
static void
test_read_fd(void **state)
{
	static const char m[] = "To: a@x\r\nSubject: s\r\n\r\nbody\r\n";
	struct mpp_rcpt *r = new_rcpt();
	char rest[64];
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], m, 12), 12);	/* in two writes */
	assert_int_equal(write(p[1], m + 12, sizeof(m) - 13),
	    (ssize_t)sizeof(m) - 13);
	assert_int_equal(write(p[1], "more\n", 5), 5);
	close(p[1]);
	assert_int_equal(mpp_rcpt_read(r, p[0]), 0);
	assert_true(r->done);
	assert_int_equal(r->hdr_end, 21);
	assert_true(r->len >= 23 && r->len <= sizeof(m) - 1 + 5);
	assert_memory_equal(r->buf, m, r->len < sizeof(m) - 1 ? r->len :
	    sizeof(m) - 1);
	/* what was not read ahead is still in the pipe */
	assert_int_equal(read(p[0], rest, sizeof(rest)),
	    (ssize_t)(sizeof(m) - 1 + 5 - r->len));
	close(p[0]);
	free_rcpt(r);
	/* an empty input is a header section that ends at once */
	r = new_rcpt();
	assert_int_equal(pipe(p), 0);
	close(p[1]);
	assert_int_equal(mpp_rcpt_read(r, p[0]), 0);
	assert_true(r->done);
	assert_int_equal(r->len, 0);
	close(p[0]);
	free_rcpt(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_named_whole),
		cmocka_unit_test(test_named_byte_by_byte),
		cmocka_unit_test(test_named_in_7_byte_pieces),
		cmocka_unit_test(test_list_add),
		cmocka_unit_test(test_bcc_field),
		cmocka_unit_test(test_resend),
		cmocka_unit_test(test_resent_block_without_rcpts),
		cmocka_unit_test(test_header_ends),
		cmocka_unit_test(test_refusal),
		cmocka_unit_test(test_header_size),
		cmocka_unit_test(test_scan_and_explain),
		cmocka_unit_test(test_read_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
