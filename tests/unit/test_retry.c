/*
 * Unit tests for mppqueue/retry.c: the backoff before each attempt and
 * the verdict on one attempt's answers, as tables of cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../mppqueue/retry.h"

/* The draws at either end of the jitter, and one that records n. */
static uint32_t
draw_low(uint32_t n)
{
	return 0;
}

static uint32_t
draw_high(uint32_t n)
{
	return n - 1;
}

static uint32_t last_n;

static uint32_t
draw_note(uint32_t n)
{
	last_n = n;
	return n / 2;
}

struct backoff_case {
	long min, max;
	int attempts;		/* made before the one waited for */
	long low, high;		/* the wait at either end of the jitter */
};

static const struct backoff_case backoff_cases[] = {
	/* retry_min 60, retry_max 3600: 60, 120, 240, ... up to 3600. */
	{ 60, 3600, 1, 60, 60 },	/* 30..60, never under 60 */
	{ 60, 3600, 2, 60, 120 },
	{ 60, 3600, 3, 120, 240 },
	{ 60, 3600, 4, 240, 480 },
	{ 60, 3600, 6, 960, 1920 },
	{ 60, 3600, 7, 1800, 3600 },	/* 3840 capped at 3600 */
	{ 60, 3600, 8, 1800, 3600 },
	{ 60, 3600, 1000, 1800, 3600 },	/* no overflow however many */
	{ 60, 3600, 0, 60, 60 },	/* the first attempt's own */
	/* retry_min == retry_max: every wait is that. */
	{ 600, 600, 1, 600, 600 },
	{ 600, 600, 50, 600, 600 },
	{ 1, 7, 3, 2, 4 },
	/* An odd cap: its halves round down. */
	{ 1, 7, 4, 3, 6 },
	{ 1, 1, 9, 1, 1 },
};

static void
test_backoff(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(backoff_cases) / sizeof(backoff_cases[0]);
	    i++) {
		const struct backoff_case *c = &backoff_cases[i];
		struct retry_policy p = { c->min, c->max, 432000 };
		long lo = retry_backoff(&p, c->attempts, draw_low);
		long hi = retry_backoff(&p, c->attempts, draw_high);

		if (lo != c->low || hi != c->high) {
			print_error("min %ld max %ld attempts %d: %ld..%ld, "
			    "want %ld..%ld\n", c->min, c->max, c->attempts,
			    lo, hi, c->low, c->high);
			fail();
		}
	}
}

/* The jitter spans the upper half: the draw is over delay/2 + 1 values. */
static void
test_backoff_draw(void **state)
{
	struct retry_policy p = { 60, 3600, 432000 };

	assert_int_equal(retry_backoff(&p, 4, draw_note), 240 + 120);
	assert_int_equal(last_n, 241);
	assert_int_equal(retry_backoff(&p, 9, draw_note), 1800 + 900);
	assert_int_equal(last_n, 1801);
}

#define OK OUTCOME_OK
#define TEMP OUTCOME_TEMP
#define PERM OUTCOME_PERM
#define MAXR 4

struct judge_case {
	const char *name;
	long long age;			/* now - received_at */
	size_t n;
	enum outcome in[MAXR], out[MAXR];
	int finished, expired, removes_file;
	size_t last_failed;
};

static const struct judge_case judge_cases[] = {
	{ "all sent", 10, 2, { OK, OK }, { OK, OK }, 1, 0, 1, 2 },
	{ "one deferred", 10, 2, { OK, TEMP }, { OK, TEMP }, 0, 0, 0, 1 },
	{ "one failed", 10, 2, { PERM, OK }, { PERM, OK }, 1, 0, 0, 0 },
	{ "failed and deferred", 10, 3, { PERM, TEMP, OK },
	  { PERM, TEMP, OK }, 0, 0, 0, 1 },
	{ "all failed", 10, 2, { PERM, PERM }, { PERM, PERM }, 1, 0, 0, 1 },
	/* At the lifetime's end a pending one fails for good. */
	{ "expired", 100, 3, { TEMP, OK, TEMP }, { PERM, OK, PERM }, 1, 1, 0,
	  2 },
	{ "a second before the end", 99, 1, { TEMP }, { TEMP }, 0, 0, 0, 0 },
	{ "at the end", 100, 1, { TEMP }, { PERM }, 1, 1, 0, 0 },
	{ "lifetime over, none pending", 1000, 2, { OK, PERM }, { OK, PERM },
	  1, 0, 0, 1 },
	{ "lifetime over, all sent", 1000, 1, { OK }, { OK }, 1, 0, 1, 1 },
	{ "no recipients", 10, 0, { OK }, { OK }, 1, 0, 1, 0 },
};

static void
test_judge(void **state)
{
	struct retry_policy p = { 60, 3600, 100 };
	size_t i;

	for (i = 0; i < sizeof(judge_cases) / sizeof(judge_cases[0]); i++) {
		const struct judge_case *c = &judge_cases[i];
		enum outcome o[MAXR];
		struct retry_verdict v;

		memcpy(o, c->in, sizeof(o));
		memset(&v, 0x55, sizeof(v));
		retry_judge(&p, 1000, (time_t)(1000 + c->age), o, c->n, &v);
		if (memcmp(o, c->out, c->n * sizeof(o[0])) != 0 ||
		    v.finished != c->finished || v.expired != c->expired ||
		    v.removes_file != c->removes_file ||
		    v.last_failed != c->last_failed) {
			print_error("%s: finished %d expired %d removes_file %d "
			    "last_failed %zu\n", c->name, v.finished,
			    v.expired, v.removes_file, v.last_failed);
			fail();
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_backoff_draw),
		cmocka_unit_test(test_judge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
