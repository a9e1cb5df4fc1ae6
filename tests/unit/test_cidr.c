/*
 * Unit tests for common/cidr.c: the list syntax (good and refused items,
 * the bound on the number of networks) and matching, IPv4, IPv6 and
 * IPv4-mapped IPv6, at and around each prefix boundary.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cidr.h"

static void
test_parse_good(void **state)
{
	struct cidr_list l;
	char err[256];

	assert_int_equal(cidr_list_parse("", &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(cidr_list_parse("  ", &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(cidr_list_parse("127.0.0.1, 10.0.0.0/8,"
	    "\t2001:db8::/32 ,::1, 0.0.0.0/0, ::/0, 192.0.2.128/25", &l, err,
	    sizeof(err)), 0);
	assert_int_equal(l.n, 7);
	assert_int_equal(l.net[0].family, AF_INET);
	assert_int_equal(l.net[0].prefix, 32);
	assert_int_equal(l.net[1].prefix, 8);
	assert_int_equal(l.net[2].family, AF_INET6);
	assert_int_equal(l.net[2].prefix, 32);
	assert_int_equal(l.net[3].prefix, 128);
}

static void
test_parse_bad(void **state)
{
	static const char *const bad[] = {
		"localhost", "127.0.0.1/33", "::1/129", "10.0.0.0/", "10.0.0.0/08",
		"10.0.0.0/-1", "10.0.0.0/8x", "10.0.0.1/8", "2001:db8::1/32",
		"127.1", "0127.0.0.1", "127.0.0.1,", ",127.0.0.1",
		"127.0.0.1,,::1", "[::1]", "127.0.0.1 ::1", "1.2.3.4/24/8",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
	};
	struct cidr_list l;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (cidr_list_parse(bad[i], &l, err, sizeof(err)) != -1)
			fail_msg("\"%s\" was taken", bad[i]);
		assert_true(err[0] != '\0');
	}
}

static void
test_parse_bound(void **state)
{
	char text[CIDR_LIST_MAX * 16 + 32];
	struct cidr_list l;
	char err[256];
	size_t i, n = 0;

	for (i = 0; i < CIDR_LIST_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s10.0.%zu.1",
		    i ? "," : "", i);
	assert_int_equal(cidr_list_parse(text, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, CIDR_LIST_MAX);
	snprintf(text + n, sizeof(text) - n, ",10.1.0.1");
	assert_int_equal(cidr_list_parse(text, &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than"));
}

static void
test_match(void **state)
{
	struct cidr_list l;
	char err[256];

	assert_int_equal(cidr_list_parse("127.0.0.1, 10.0.0.0/8, "
	    "192.0.2.128/25, 198.51.100.0/31, 2001:db8::/33, ::1", &l, err,
	    sizeof(err)), 0);
	assert_true(cidr_list_match_text(&l, "127.0.0.1"));
	assert_false(cidr_list_match_text(&l, "127.0.0.2"));
	assert_true(cidr_list_match_text(&l, "10.255.255.255"));
	assert_false(cidr_list_match_text(&l, "11.0.0.0"));
	assert_false(cidr_list_match_text(&l, "192.0.2.127"));
	assert_true(cidr_list_match_text(&l, "192.0.2.128"));
	assert_true(cidr_list_match_text(&l, "192.0.2.255"));
	assert_true(cidr_list_match_text(&l, "198.51.100.1"));
	assert_false(cidr_list_match_text(&l, "198.51.100.2"));
	assert_true(cidr_list_match_text(&l, "2001:db8:7fff::1"));
	assert_false(cidr_list_match_text(&l, "2001:db8:8000::1"));
	assert_true(cidr_list_match_text(&l, "::1"));
	assert_false(cidr_list_match_text(&l, "::2"));
	/* A mapped IPv4 address is its IPv4 self, never an IPv6 match. */
	assert_true(cidr_list_match_text(&l, "::ffff:10.1.2.3"));
	assert_true(cidr_list_match_text(&l, "::ffff:127.0.0.1"));
	assert_false(cidr_list_match_text(&l, "::ffff:127.0.0.2"));
	assert_false(cidr_list_match_text(&l, "not an address"));
	assert_false(cidr_list_match_text(&l, ""));
}

static void
test_match_all_and_none(void **state)
{
	struct cidr_list l;
	struct in_addr a;
	char err[256];

	assert_int_equal(cidr_list_parse("", &l, err, sizeof(err)), 0);
	assert_false(cidr_list_match_text(&l, "127.0.0.1"));
	assert_int_equal(cidr_list_parse("0.0.0.0/0", &l, err, sizeof(err)),
	    0);
	assert_true(cidr_list_match_text(&l, "203.0.113.9"));
	assert_false(cidr_list_match_text(&l, "::1"));
	inet_pton(AF_INET, "1.2.3.4", &a);
	assert_true(cidr_list_match(&l, AF_INET, &a));
	assert_false(cidr_list_match(&l, AF_UNIX, &a));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_bound),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_match_all_and_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
