/*
 * Unit tests for client/mpp_rcpt: finding a command-line recipient among the
 * To:, Cc: and Bcc: headers, with the message fed whole and byte by byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../client/mpp_rcpt.h"

static const char msg[] =
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.org>, carol@example.org\r\n"
    "Cc: dave@example.org,\r\n"
    "\tErin <ERIN@Example.org>\r\n"
    "Bcc : frank@example.org\r\n"
    "Reply-To: grace@example.org\r\n"
    "Subject: to: heidi@example.org\r\n"
    "\r\n"
    "To: ivan@example.org\r\n";

static const struct {
	const char *addr;
	int listed;
} cases[] = {
	{ "bob@example.org", 1 },
	{ "carol@example.org", 1 },
	{ "dave@example.org", 1 },
	{ "erin@example.org", 1 },		/* continuation line, case */
	{ "frank@example.org", 1 },		/* blank before the colon */
	{ "Frank F <frank@example.org>", 1 },
	{ "  carol@example.org ", 1 },
	{ "alice@example.org", 0 },		/* From: is no recipient */
	{ "grace@example.org", 0 },
	{ "heidi@example.org", 0 },		/* in Subject: */
	{ "ivan@example.org", 0 },		/* in the body */
	{ "ob@example.org", 0 },		/* part of bob@ */
	{ "bob@example.or", 0 },
	{ "", 0 },
};

static void
check_all(const struct mpp_rcpt *r)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (mpp_rcpt_listed(r, cases[i].addr) != cases[i].listed)
			fail_msg("%s: expected %d", cases[i].addr,
			    cases[i].listed);
}

static void
test_whole(void **state)
{
	struct mpp_rcpt *r = malloc(sizeof(*r));

	(void)state;
	assert_non_null(r);
	mpp_rcpt_init(r);
	mpp_rcpt_feed(r, msg, sizeof(msg) - 1);
	assert_true(r->complete);
	check_all(r);
	free(r);
}

static void
test_byte_by_byte(void **state)
{
	struct mpp_rcpt *r = malloc(sizeof(*r));
	size_t i;

	(void)state;
	assert_non_null(r);
	mpp_rcpt_init(r);
	for (i = 0; i < sizeof(msg) - 1; i++)
		mpp_rcpt_feed(r, msg + i, 1);
	assert_true(r->complete);
	check_all(r);
	free(r);
}

static void
test_lf_and_no_body(void **state)
{
	static const char m[] = "To: x@example.org\nSubject: s";
	struct mpp_rcpt *r = malloc(sizeof(*r));

	(void)state;
	assert_non_null(r);
	mpp_rcpt_init(r);
	mpp_rcpt_feed(r, m, sizeof(m) - 1);
	assert_false(r->complete);	/* the message simply ended */
	assert_int_equal(mpp_rcpt_listed(r, "x@example.org"), 1);
	free(r);
}

static void
test_overflow(void **state)
{
	struct mpp_rcpt *r = malloc(sizeof(*r));
	char line[100];
	size_t i;

	(void)state;
	assert_non_null(r);
	mpp_rcpt_init(r);
	memset(line, 'a', sizeof(line));
	memcpy(line, "X-Long: ", 8);
	line[sizeof(line) - 1] = '\n';
	for (i = 0; i < MPP_RCPT_HEADER_MAX / sizeof(line) + 2; i++)
		mpp_rcpt_feed(r, line, sizeof(line));
	assert_true(r->overflow);
	assert_int_equal(mpp_rcpt_listed(r, "x@example.org"), -1);
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_lf_and_no_body),
		cmocka_unit_test(test_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
