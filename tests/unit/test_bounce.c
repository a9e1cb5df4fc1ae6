/*
 * Unit tests for mppqueue/bounce.c and notice.c: the RFC 3464 report's
 * structure (multipart/report, its three parts, one boundary that occurs
 * in no part), the delivery-status fields per recipient, the status code
 * taken from a reply or chosen for it, the bounded header part, and when
 * a delay warning is due.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <bsd/string.h>

#include "../../mppqueue/bounce.h"
#include "../../mppqueue/notice.h"

#define NOW 1800000000
#define RECEIVED (NOW - 3600)
#define ID "1800000000.M1P2Q3"

static struct mpp_config cfg;

static int
setup(void **state)
{
	config_defaults(&cfg);
	strlcpy(cfg.hostname, "mpp.test", sizeof(cfg.hostname));
	return 0;
}

/* A file holding text, open for reading; the caller closes it. */
static int
file_with(const char *text)
{
	char path[] = "/tmp/test_bounce.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	return fd;
}

/* The notice for r[0..n) about a message with text orig (NULL: no file). */
static char *
compose(const char *orig, enum bounce_kind kind, const struct bounce_rcpt *r,
    size_t n)
{
	struct bounce_orig o = { "1799996400.M9P9Q9", -1, "alice@example.org",
	    RECEIVED };
	struct buf b = { 0 };

	if (orig != NULL)
		o.fd = file_with(orig);
	assert_int_equal(bounce_compose(&b, &cfg, ID, &o, kind, r, n, NOW), 0);
	if (o.fd != -1)
		close(o.fd);
	assert_int_equal(buf_nul(&b), 0);
	return b.data;
}

/* The boundary of the notice's Content-Type. */
static void
boundary_of(const char *text, char *out, size_t outsz)
{
	const char *p = strstr(text, "\tboundary=\""), *end;

	assert_non_null(p);
	p += strlen("\tboundary=\"");
	assert_non_null(end = strchr(p, '"'));
	assert_true((size_t)(end - p) < outsz);
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
}

static int
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (; (hay = strstr(hay, needle)) != NULL; hay += strlen(needle))
		n++;
	return n;
}

/*
 * The parts of a notice, each from the line after its delimiter to the
 * next delimiter; the closing delimiter ends the text. Returns how many.
 */
static int
split_parts(char *text, char *parts[4])
{
	char bnd[128], delim[140], close_delim[144], *p, *next;
	int n = 0;

	boundary_of(text, bnd, sizeof(bnd));
	snprintf(delim, sizeof(delim), "\n--%s\n", bnd);
	snprintf(close_delim, sizeof(close_delim), "\n--%s--\n", bnd);
	p = strstr(text, close_delim);
	assert_non_null(p);
	assert_string_equal(p + strlen(close_delim), "");
	*p = '\0';
	for (p = strstr(text, delim); p != NULL && n < 4; p = next) {
		*p = '\0';
		p += strlen(delim);
		next = strstr(p, delim);
		parts[n++] = p;
	}
	return n;
}

static const struct bounce_rcpt two_failed[] = {
	{ "bob@example.com", "550 5.1.1 <bob@example.com>: Recipient address "
	    "rejected: User unknown", 0, NOW },
	{ "carol@example.net", "sendmail exit 67", 0, 0 },
};

#define ORIG "Received: from ws (ws [192.0.2.7])\n\tby mpp.test\n" \
	"From: alice@example.org\nTo: bob@example.com\nSubject: hello\n\n" \
	"The body, never quoted.\n"

static void
test_failed_report_structure(void **state)
{
	char *text = compose(ORIG, BOUNCE_FAILED, two_failed, 2), *p[4];
	char bnd[128];

	boundary_of(text, bnd, sizeof(bnd));
	assert_non_null(strstr(text, "From: Mail Delivery System "
	    "<MAILER-DAEMON@mpp.test>\n"));
	assert_non_null(strstr(text, "To: <alice@example.org>\n"));
	assert_non_null(strstr(text, "Subject: Undelivered Mail Returned to "
	    "Sender\n"));
	assert_non_null(strstr(text, "Auto-Submitted: auto-replied\n"));
	assert_non_null(strstr(text, "MIME-Version: 1.0\nContent-Type: "
	    "multipart/report; report-type=delivery-status;\n\tboundary=\""));
	assert_non_null(strstr(text, "Message-ID: <" ID "@mpp.test>\n"));
	assert_null(strstr(text, "Content-Transfer-Encoding"));
	/* The boundary: one delimiter per part and the closing one. */
	assert_int_equal(count(text, bnd), 5);	/* with the header's */
	assert_int_equal(split_parts(text, p), 3);
	assert_true(starts(p[0], "Content-Description: Notification\n"
	    "Content-Type: text/plain; charset=utf-8\n\nThis is the mail "
	    "system at host mpp.test.\n"));
	assert_non_null(strstr(p[0], "<bob@example.com>: 550 5.1.1"));
	assert_non_null(strstr(p[0], "<carol@example.net>: sendmail exit 67"));
	assert_non_null(strstr(p[1], "Content-Type: message/delivery-status\n\n"
	    "Reporting-MTA: dns; mpp.test\nX-Mpp-Queue-ID: 1799996400.M9P9Q9\n"
	    "Arrival-Date: "));
	assert_non_null(strstr(p[1], "\n\nFinal-Recipient: rfc822; "
	    "bob@example.com\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: "
	    "smtp; 550 5.1.1 <bob@example.com>: Recipient address rejected: "
	    "User unknown\nLast-Attempt-Date: "));
	assert_non_null(strstr(p[1], "\n\nFinal-Recipient: rfc822; "
	    "carol@example.net\nAction: failed\nStatus: 5.0.0\n"
	    "Diagnostic-Code: X-Unix; sendmail exit 67\n"));
	assert_null(strstr(p[1], "Will-Retry-Until"));
	assert_string_equal(p[2], "Content-Description: Undelivered message "
	    "headers\nContent-Type: text/rfc822-headers\n\n"
	    "Received: from ws (ws [192.0.2.7])\n\tby mpp.test\n"
	    "From: alice@example.org\nTo: bob@example.com\nSubject: hello\n");
	free(text);
}

static void
test_delay_warning_structure(void **state)
{
	static const struct bounce_rcpt late[] = {
		{ "dave@example.com", "451 4.3.2 Deferred by the test's "
		    "Postfix", 0, NOW },
		{ "erin@example.com", "timeout waiting for reply to RCPT TO",
		    0, NOW },
	};
	char *text = compose(ORIG, BOUNCE_DELAYED, late, 2), *p[4];

	assert_non_null(strstr(text, "Subject: Delayed Mail (still being "
	    "retried)\n"));
	assert_int_equal(split_parts(text, p), 3);
	assert_non_null(strstr(p[0], "warning only"));
	assert_non_null(strstr(p[1], "Final-Recipient: rfc822; "
	    "dave@example.com\nAction: delayed\nStatus: 4.3.2\n"
	    "Diagnostic-Code: smtp; 451 4.3.2 Deferred"));
	assert_non_null(strstr(p[1], "Final-Recipient: rfc822; "
	    "erin@example.com\nAction: delayed\nStatus: 4.0.0\n"
	    "Diagnostic-Code: X-Unix; timeout waiting"));
	assert_int_equal(count(p[1], "Will-Retry-Until: "), 2);
	assert_null(strstr(p[1], "Action: failed"));
	assert_non_null(strstr(p[2], "text/rfc822-headers\n\nReceived: "));
	free(text);
}

/* The status from the reply's enhanced code when its class fits. */
static void
test_status_codes(void **state)
{
	static const struct {
		const char *error;
		enum bounce_kind kind;
		int expired;
		const char *want;
	} cases[] = {
		{ "550 5.1.1 no such user", BOUNCE_FAILED, 0, "5.1.1" },
		{ "550-5.7.1 first line 550 5.7.1 second", BOUNCE_FAILED, 0,
		    "5.7.1" },
		{ "552 5.3.4", BOUNCE_FAILED, 0, "5.3.4" },
		{ "554 5.123.456 long ones", BOUNCE_FAILED, 0, "5.123.456" },
		{ "550 no enhanced code", BOUNCE_FAILED, 0, "5.0.0" },
		{ "550 4.1.1 wrong class", BOUNCE_FAILED, 0, "5.0.0" },
		{ "550 5.1.1234 too many digits", BOUNCE_FAILED, 0, "5.0.0" },
		{ "550 5.1.1x glued", BOUNCE_FAILED, 0, "5.0.0" },
		{ "550 5.1", BOUNCE_FAILED, 0, "5.0.0" },
		{ "sendmail exit 67", BOUNCE_FAILED, 0, "5.0.0" },
		{ "", BOUNCE_FAILED, 0, "5.0.0" },
		/* An expired recipient: the last deferral's code, or 4.4.7. */
		{ "452 4.2.2 mailbox full", BOUNCE_FAILED, 1, "4.2.2" },
		{ "451 try later", BOUNCE_FAILED, 1, "4.4.7" },
		{ "connection refused", BOUNCE_FAILED, 1, "4.4.7" },
		{ "sendmail exit 75", BOUNCE_FAILED, 1, "4.4.7" },
		{ "451 4.3.2 deferred", BOUNCE_DELAYED, 0, "4.3.2" },
		{ "451 5.3.2 wrong class", BOUNCE_DELAYED, 0, "4.0.0" },
		{ "sendmail timed out after 300s", BOUNCE_DELAYED, 0, "4.0.0" },
		{ "4512 4.3.2 not a code", BOUNCE_DELAYED, 0, "4.0.0" },
	};
	char got[BOUNCE_STATUS_MAX];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bounce_rcpt r = { "x@example.com", cases[i].error,
		    cases[i].expired, 0 };

		bounce_status(&r, cases[i].kind, got);
		if (strcmp(got, cases[i].want) != 0) {
			print_error("\"%s\": %s, want %s\n", cases[i].error,
			    got, cases[i].want);
			fail();
		}
	}
}

/* Expired recipients: Action failed, a 4.x.x status, the reason said. */
static void
test_expired_recipient(void **state)
{
	static const struct bounce_rcpt r[] = {
		{ "frank@example.com", "connect to relay: Connection refused",
		    1, NOW },
	};
	char *text = compose(ORIG, BOUNCE_FAILED, r, 1);

	assert_non_null(strstr(text, "Final-Recipient: rfc822; "
	    "frank@example.com\nAction: failed\nStatus: 4.4.7\n"
	    "Diagnostic-Code: X-Unix; connect to relay: Connection refused\n"));
	assert_non_null(strstr(text, "<frank@example.com>: the message was "
	    "too old"));
	free(text);
}

/* A boundary that occurs in the content is never used. */
static void
test_boundary_not_in_content(void **state)
{
	char bnd[128], *text, *p[4];

	text = compose("Subject: =_mpp-report-" ID "\nX-Also: "
	    "=_mpp-report-" ID "-1\n\nbody\n", BOUNCE_FAILED, two_failed, 1);
	boundary_of(text, bnd, sizeof(bnd));
	assert_string_equal(bnd, "=_mpp-report-" ID "-2");
	assert_int_equal(split_parts(text, p), 3);
	assert_non_null(strstr(p[2], "Subject: =_mpp-report-" ID "\n"));
	free(text);
}

/* The header part is bounded, whole lines only; no file, no headers. */
static void
test_header_part_bounded(void **state)
{
	struct buf big = { 0 };
	char *text, *p[4];
	size_t i;

	for (i = 0; big.len <= BOUNCE_HEADERS_MAX + 1000; i++)
		assert_int_equal(buf_printf(&big, "X-Filler-%zu: %s\n", i,
		    "0123456789012345678901234567890123456789"), 0);
	assert_int_equal(buf_puts(&big, "\nbody\n"), 0);
	assert_int_equal(buf_nul(&big), 0);
	text = compose(big.data, BOUNCE_FAILED, two_failed, 1);
	assert_int_equal(split_parts(text, p), 3);
	p[2] = strstr(p[2], "\n\n") + 2;
	assert_true(strlen(p[2]) <= BOUNCE_HEADERS_MAX);
	assert_true(strlen(p[2]) > BOUNCE_HEADERS_MAX - 100);
	assert_true(starts(p[2], "X-Filler-0: "));
	assert_int_equal(p[2][strlen(p[2]) - 1], '\n');
	assert_non_null(strstr(p[2] + strlen(p[2]) - 60, ": 0123456789"));
	assert_null(strstr(p[2], "body"));
	free(text);
	buf_free(&big);

	text = compose(NULL, BOUNCE_FAILED, two_failed, 1);
	assert_int_equal(split_parts(text, p), 3);
	assert_string_equal(p[2], "Content-Description: Undelivered message "
	    "headers\nContent-Type: text/rfc822-headers\n\n");
	free(text);
}

/* 8-bit header bytes are declared, in the part and at the top. */
static void
test_8bit_declared(void **state)
{
	char *text = compose("Subject: Gr\xc3\xbc\xc3\x9f" "e\n\nbody\n",
	    BOUNCE_FAILED, two_failed, 1), *p[4];

	assert_non_null(strstr(text, "\"\nContent-Transfer-Encoding: 8bit\n"));
	assert_int_equal(split_parts(text, p), 3);
	assert_null(strstr(p[0], "Content-Transfer-Encoding"));
	assert_non_null(strstr(p[2], "text/rfc822-headers\n"
	    "Content-Transfer-Encoding: 8bit\n\n"));
	free(text);
}

/* A delay warning: once, after delay_warning_time, for real senders. */
static void
test_delay_due(void **state)
{
	struct index_claim c;

	memset(&c, 0, sizeof(c));
	strlcpy(c.sender, "alice@example.org", sizeof(c.sender));
	c.received_at = RECEIVED;
	cfg.delay_warning_time = 0;
	assert_false(notice_delay_due(&cfg, &c, 0, NOW));	/* off */
	cfg.delay_warning_time = 3600;
	assert_true(notice_delay_due(&cfg, &c, 0, NOW));
	assert_false(notice_delay_due(&cfg, &c, 0, NOW - 1));	/* too soon */
	assert_false(notice_delay_due(&cfg, &c, 1, NOW));	/* finished */
	c.warned_at = NOW - 10;
	assert_false(notice_delay_due(&cfg, &c, 0, NOW));	/* sent once */
	c.warned_at = 0;
	c.is_bounce = 1;
	assert_false(notice_delay_due(&cfg, &c, 0, NOW));	/* a notice */
	c.is_bounce = 0;
	c.sender[0] = '\0';
	assert_false(notice_delay_due(&cfg, &c, 0, NOW));	/* null sender */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_failed_report_structure, setup),
		cmocka_unit_test_setup(test_delay_warning_structure, setup),
		cmocka_unit_test_setup(test_status_codes, setup),
		cmocka_unit_test_setup(test_expired_recipient, setup),
		cmocka_unit_test_setup(test_boundary_not_in_content, setup),
		cmocka_unit_test_setup(test_header_part_bounded, setup),
		cmocka_unit_test_setup(test_8bit_declared, setup),
		cmocka_unit_test_setup(test_delay_due, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
