/*
 * Unit tests for mppqueue/relay_health.c: the relays' state and the
 * probe schedule, as scripts of events at given times, each step with
 * what it must answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../mppqueue/relay_health.h"

enum op {
	OP_END,
	OP_UNREACHABLE,	/* a delivery reached no relay: want = its return */
	OP_START,	/* relay_health_probe_start: want, and wait (ms) */
	OP_FAIL,	/* relay_health_probed, failed: want = the event */
	OP_OK,		/* relay_health_probed, worked: wait = the outage */
	OP_NOW,		/* relay_health_probe_now */
	OP_MAX		/* relay_health_set_max: wait = the new cap, s */
};

struct step {
	enum op op;
	long long at;		/* ms */
	int want;
	long long wait;
};

struct script {
	const char *name;
	long max_s;
	struct step steps[24];
};

#define S RELAY_EVENT_STEP
#define N RELAY_EVENT_NONE
#define U RELAY_EVENT_UP

static const struct script scripts[] = {
	{ "up: nothing to probe", 60, {
		{ OP_START, 0, -1, 0 },
		{ OP_START, 500000, -1, 0 },
	} },
	{ "1 s doubling to 60 s", 60, {
		{ OP_UNREACHABLE, 10000, 1, 0 },
		{ OP_START, 10000, 0, 1000 },
		{ OP_START, 10999, 0, 1 },
		{ OP_START, 11000, 1, 0 },
		{ OP_FAIL, 11000, S, 0 },	/* next wait 2 s */
		{ OP_START, 12999, 0, 1 },
		{ OP_START, 13000, 1, 0 },
		{ OP_FAIL, 13000, S, 0 },	/* 4 s */
		{ OP_START, 17000, 1, 0 },
		{ OP_FAIL, 17000, S, 0 },	/* 8 s */
		{ OP_START, 25000, 1, 0 },
		{ OP_FAIL, 25000, S, 0 },	/* 16 s */
		{ OP_START, 41000, 1, 0 },
		{ OP_FAIL, 41000, S, 0 },	/* 32 s */
		{ OP_START, 73000, 1, 0 },
		{ OP_FAIL, 73000, S, 0 },	/* 60 s, the cap */
		{ OP_START, 132999, 0, 1 },
		{ OP_START, 133000, 1, 0 },
		{ OP_FAIL, 133000, N, 0 },	/* 60 s again: no new step */
		{ OP_START, 193000, 1, 0 },
		{ OP_OK, 193500, U, 183500 },
		{ OP_START, 193500, -1, 0 },
	} },
	{ "one probe in flight at a time", 60, {
		{ OP_UNREACHABLE, 0, 1, 0 },
		{ OP_START, 1000, 1, 0 },
		{ OP_START, 1000, 0, -1 },	/* the others wait */
		{ OP_START, 90000, 0, -1 },	/* however long it takes */
		{ OP_FAIL, 90000, S, 0 },
		{ OP_START, 91999, 0, 1 },	/* waits from the probe's end */
		{ OP_START, 92000, 1, 0 },
	} },
	{ "down once per outage", 60, {
		{ OP_UNREACHABLE, 0, 1, 0 },
		{ OP_UNREACHABLE, 10, 0, 0 },	/* other threads' deliveries */
		{ OP_UNREACHABLE, 900, 0, 0 },
		{ OP_START, 999, 0, 1 },	/* the schedule kept its start */
		{ OP_START, 1000, 1, 0 },
		{ OP_UNREACHABLE, 1200, 0, 0 },	/* during the probe */
		{ OP_OK, 1500, U, 1500 },
		{ OP_UNREACHABLE, 5000, 1, 0 },	/* a new outage, from 1 s */
		{ OP_START, 5999, 0, 1 },
		{ OP_START, 6000, 1, 0 },
		{ OP_FAIL, 6000, S, 0 },
		{ OP_START, 7999, 0, 1 },
	} },
	{ "a small cap", 2, {
		{ OP_UNREACHABLE, 0, 1, 0 },
		{ OP_START, 1000, 1, 0 },
		{ OP_FAIL, 1000, S, 0 },	/* 2 s: the cap */
		{ OP_START, 3000, 1, 0 },
		{ OP_FAIL, 3000, N, 0 },
		{ OP_START, 4999, 0, 1 },
		{ OP_START, 5000, 1, 0 },
		{ OP_OK, 5000, U, 5000 },
	} },
	{ "a cap of 1 s: never a step", 1, {
		{ OP_UNREACHABLE, 0, 1, 0 },
		{ OP_START, 1000, 1, 0 },
		{ OP_FAIL, 1000, N, 0 },
		{ OP_START, 1999, 0, 1 },
		{ OP_START, 2000, 1, 0 },
	} },
	{ "a cap under 1 s is 1 s", 0, {
		{ OP_UNREACHABLE, 0, 1, 0 },
		{ OP_START, 999, 0, 1 },
		{ OP_START, 1000, 1, 0 },
		{ OP_FAIL, 1000, N, 0 },
		{ OP_START, 2000, 1, 0 },
	} },
	{ "a new cap lowers the next wait, not the current one", 60, {
		{ OP_UNREACHABLE, 0, 1, 0 },
		{ OP_START, 1000, 1, 0 },
		{ OP_FAIL, 1000, S, 0 },	/* 2 */
		{ OP_START, 3000, 1, 0 },
		{ OP_FAIL, 3000, S, 0 },	/* 4 */
		{ OP_START, 7000, 1, 0 },
		{ OP_FAIL, 7000, S, 0 },	/* 8: due at 15 s */
		{ OP_MAX, 8000, 0, 3 },
		{ OP_START, 14999, 0, 1 },
		{ OP_START, 15000, 1, 0 },
		{ OP_FAIL, 15000, N, 0 },	/* 3 s from now on */
		{ OP_START, 17999, 0, 1 },
		{ OP_START, 18000, 1, 0 },
	} },
	{ "probe now: a changed transport", 60, {
		{ OP_NOW, 0, 0, 0 },		/* up: no effect */
		{ OP_START, 0, -1, 0 },
		{ OP_UNREACHABLE, 0, 1, 0 },
		{ OP_START, 1000, 1, 0 },
		{ OP_FAIL, 1000, S, 0 },
		{ OP_NOW, 1500, 0, 0 },
		{ OP_START, 1500, 1, 0 },
		{ OP_NOW, 1600, 0, 0 },		/* in flight: still one */
		{ OP_START, 1600, 0, -1 },
		{ OP_OK, 1700, U, 1700 },
	} },
};

/* Run one step; 0 when it answered as the script says. */
static int
run_step(struct relay_health *h, const struct step *s, char *why,
    size_t whysz)
{
	long long wait = -2, outage = -2;
	int got = 0;

	switch (s->op) {
	case OP_UNREACHABLE:
		got = relay_health_unreachable(h, s->at, "connect refused");
		break;
	case OP_START:
		got = relay_health_probe_start(h, s->at, &wait);
		if (got == 0 && wait != s->wait) {
			snprintf(why, whysz, "wait %lld, not %lld", wait,
			    s->wait);
			return -1;
		}
		break;
	case OP_FAIL:
	case OP_OK:
		got = (int)relay_health_probed(h, s->at, s->op == OP_OK,
		    &outage);
		if (s->op == OP_OK && outage != s->wait) {
			snprintf(why, whysz, "outage %lld, not %lld", outage,
			    s->wait);
			return -1;
		}
		break;
	case OP_NOW:
		relay_health_probe_now(h, s->at);
		break;
	case OP_MAX:
		relay_health_set_max(h, (long)s->wait);
		break;
	case OP_END:
		break;
	}
	if (got != s->want) {
		snprintf(why, whysz, "answered %d, not %d", got, s->want);
		return -1;
	}
	return 0;
}

static void
test_scripts(void **state)
{
	size_t i, k;
	char why[128];

	(void)state;
	for (i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
		struct relay_health h;

		relay_health_init(&h, scripts[i].max_s);
		for (k = 0; scripts[i].steps[k].op != OP_END; k++)
			if (run_step(&h, &scripts[i].steps[k], why,
			    sizeof(why)) == -1) {
				print_error("%s: step %zu at %lld ms: %s\n",
				    scripts[i].name, k,
				    scripts[i].steps[k].at, why);
				fail();
			}
	}
}

/* The reason of an outage is its first delivery's, kept whole or cut. */
static void
test_reason(void **state)
{
	struct relay_health h;
	char longer[RELAY_HEALTH_REASON_MAX * 2];

	(void)state;
	relay_health_init(&h, 60);
	assert_int_equal(relay_health_unreachable(&h, 0, "first"), 1);
	assert_int_equal(relay_health_unreachable(&h, 1, "second"), 0);
	assert_string_equal(h.reason, "first");
	assert_int_equal(h.outages, 1);
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	relay_health_init(&h, 60);
	assert_int_equal(relay_health_unreachable(&h, 0, longer), 1);
	assert_int_equal(strlen(h.reason), RELAY_HEALTH_REASON_MAX - 1);
	relay_health_init(&h, 60);
	assert_int_equal(relay_health_unreachable(&h, 0, NULL), 1);
	assert_string_equal(h.reason, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
