/*
 * Unit tests for mppd/flow.c: when posting is paced, and how much, as a
 * table of backlogs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../mppd/flow.h"

struct pace_case {
	long long queued, sending;
	long pause_us;
};

static void
test_pause_table(void **state)
{
	static const struct pace_case cases[] = {
		/* no runner delivering: full pace, whatever waits */
		{ 0, 0, 0 },
		{ 1000000, 0, 0 },
		{ 1000000, -1, 0 },
		/* a runner delivering, the backlog small */
		{ 0, 4, 0 },
		{ FLOW_BACKLOG_LOW, 16, 0 },
		/* past the low mark: in proportion, then the most */
		{ FLOW_BACKLOG_LOW + 1, 1, FLOW_PAUSE_MAX_US /
		    (FLOW_BACKLOG_HIGH - FLOW_BACKLOG_LOW) },
		{ (FLOW_BACKLOG_LOW + FLOW_BACKLOG_HIGH) / 2, 1,
		    FLOW_PAUSE_MAX_US / 2 },
		{ FLOW_BACKLOG_HIGH - 1, 1, FLOW_PAUSE_MAX_US -
		    FLOW_PAUSE_MAX_US / (FLOW_BACKLOG_HIGH - FLOW_BACKLOG_LOW) },
		{ FLOW_BACKLOG_HIGH, 1, FLOW_PAUSE_MAX_US },
		{ 1000000000LL, 1, FLOW_PAUSE_MAX_US },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("queued %lld sending %lld\n", cases[i].queued,
		    cases[i].sending);
		assert_int_equal(flow_pause_us(cases[i].queued,
		    cases[i].sending), cases[i].pause_us);
	}
}

/* More waiting never shortens the pause. */
static void
test_pause_rises_with_backlog(void **state)
{
	long long q;
	long last = 0, p;

	(void)state;
	for (q = 0; q <= FLOW_BACKLOG_HIGH * 2; q += 7) {
		p = flow_pause_us(q, 1);
		assert_true(p >= last);
		assert_true(p >= 0 && p <= FLOW_PAUSE_MAX_US);
		last = p;
	}
	assert_int_equal(last, FLOW_PAUSE_MAX_US);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pause_table),
		cmocka_unit_test(test_pause_rises_with_backlog),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
