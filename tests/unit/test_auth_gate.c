/*
 * Unit tests for mppd/auth_gate.c: auth_fail_limit's slots, waits and
 * throttling as sequences of steps, each with what it must answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../mppd/auth_gate.h"

enum op {
	ADMIT,		/* ticket t from addr at now: verdict want */
	DONE,		/* t's check ends with result: returns want */
	NEXT,		/* next waiter from addr at now: t (-1 none), verdict */
	TAKE,		/* first waiter from addr, unjudged: t (-1 none) */
	CANCEL,		/* t leaves the queue */
	END
};

struct step {
	enum op op;
	int t;
	const char *addr;
	long now;
	int arg;	/* ADMIT, NEXT: verdict; DONE: result; */
	long want;	/* DONE: failures returned; NEXT, TAKE: ticket */
};

#define A "192.0.2.1"
#define B "192.0.2.2"
#define RUN AUTH_GATE_RUN
#define WAIT AUTH_GATE_WAIT
#define THR AUTH_GATE_THROTTLE

struct scenario {
	const char *name;
	long limit, window;
	struct step steps[24];
};

static const struct scenario scenarios[] = {
	{ "no limit: every PASS runs, failures or not", 0, 300, {
	    { ADMIT, 0, A, 0, RUN, 0 }, { ADMIT, 1, A, 0, RUN, 0 },
	    { ADMIT, 2, A, 0, RUN, 0 }, { DONE, 0, A, 1, OUTCOME_PERM, 0 },
	    { DONE, 1, A, 1, OUTCOME_PERM, 0 },
	    { DONE, 2, A, 1, OUTCOME_PERM, 0 },
	    { ADMIT, 3, A, 2, RUN, 0 }, { END, 0, NULL, 0, 0, 0 } } },
	{ "checks in flight hold slots; the next waits", 2, 300, {
	    { ADMIT, 0, A, 0, RUN, 0 }, { ADMIT, 1, A, 0, RUN, 0 },
	    { ADMIT, 2, A, 0, WAIT, 0 }, { ADMIT, 3, A, 0, WAIT, 0 },
	    /* Another address has slots of its own. */
	    { ADMIT, 4, B, 0, RUN, 0 },
	    { NEXT, -1, A, 0, 0, -1 },
	    /* A success gives its slot back uncounted: the oldest goes. */
	    { DONE, 0, A, 1, OUTCOME_OK, 0 },
	    { NEXT, 2, A, 1, RUN, 2 }, { NEXT, -1, A, 1, 0, -1 },
	    /* A failure is counted: with it and one in flight, 3 waits. */
	    { DONE, 1, A, 2, OUTCOME_PERM, 0 },
	    { NEXT, -1, A, 2, 0, -1 },
	    /* The second failure reaches the limit: 3 is throttled. */
	    { DONE, 2, A, 3, OUTCOME_PERM, 2 },
	    { NEXT, 3, A, 3, THR, 3 },
	    { ADMIT, 5, A, 4, THR, 0 }, { END, 0, NULL, 0, 0, 0 } } },
	{ "the window ends: PASS runs again", 1, 60, {
	    { ADMIT, 0, A, 100, RUN, 0 },
	    { DONE, 0, A, 100, OUTCOME_PERM, 1 },
	    { ADMIT, 1, A, 160, THR, 0 }, { ADMIT, 2, A, 161, RUN, 0 },
	    { DONE, 2, A, 162, OUTCOME_TEMP, 0 },
	    { ADMIT, 3, A, 162, RUN, 0 }, { END, 0, NULL, 0, 0, 0 } } },
	{ "a temporary failure is no failure", 1, 300, {
	    { ADMIT, 0, A, 0, RUN, 0 }, { ADMIT, 1, A, 0, WAIT, 0 },
	    { DONE, 0, A, 0, OUTCOME_TEMP, 0 },
	    { NEXT, 1, A, 0, RUN, 1 }, { END, 0, NULL, 0, 0, 0 } } },
	{ "waiters of one address in order; a cancelled one is gone", 1, 300, {
	    { ADMIT, 0, A, 0, RUN, 0 }, { ADMIT, 1, A, 0, WAIT, 0 },
	    { ADMIT, 2, B, 0, RUN, 0 }, { ADMIT, 3, B, 0, WAIT, 0 },
	    { ADMIT, 4, A, 0, WAIT, 0 }, { CANCEL, 1, A, 0, 0, 0 },
	    { DONE, 0, A, 0, OUTCOME_OK, 0 },
	    { NEXT, 4, A, 0, RUN, 4 }, { NEXT, -1, B, 0, 0, -1 },
	    { TAKE, 3, B, 0, 0, 3 }, { TAKE, -1, B, 0, 0, -1 },
	    { NEXT, -1, A, 0, 0, -1 }, { END, 0, NULL, 0, 0, 0 } } },
};

static void
run_scenario(const struct scenario *sc)
{
	struct auth_gate_ticket t[8];
	struct auth_gate *g = auth_gate_new(sc->limit, sc->window);
	struct auth_gate_ticket *got;
	enum auth_gate_verdict v;
	const struct step *st;
	size_t i;
	long n;

	assert_non_null(g);
	memset(t, 0, sizeof(t));
	for (i = 0; i < 8; i++)
		t[i].arg = &t[i];
	for (i = 0; sc->steps[i].op != END; i++) {
		st = &sc->steps[i];
		switch (st->op) {
		case ADMIT:
			snprintf(t[st->t].addr, sizeof(t[st->t].addr), "%s",
			    st->addr);
			v = auth_gate_admit(g, &t[st->t], st->now);
			if ((int)v != st->arg)
				goto fail;
			break;
		case DONE:
			n = auth_gate_done(g, &t[st->t],
			    (enum outcome)st->arg, st->now);
			if (n != st->want)
				goto fail;
			break;
		case NEXT:
		case TAKE:
			got = st->op == NEXT ? auth_gate_next(g, st->addr,
			    st->now, &v) : auth_gate_take(g, st->addr);
			if ((got == NULL) != (st->want == -1) ||
			    (got != NULL && (got != &t[st->want] ||
			    got->waiting || (st->op == NEXT &&
			    (int)v != st->arg))))
				goto fail;
			break;
		case CANCEL:
			auth_gate_cancel(g, &t[st->t]);
			break;
		case END:
			break;
		}
	}
	auth_gate_free(g);
	return;
fail:
	print_error("%s: step %zu is not as expected\n", sc->name, i + 1);
	auth_gate_free(g);
	fail();
}

static void
test_scenarios(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		run_scenario(&scenarios[i]);
}

/* A ticket given back twice, or cancelled when not waiting, is harmless. */
static void
test_idempotent(void **state)
{
	struct auth_gate *g = auth_gate_new(1, 300);
	struct auth_gate_ticket a, b;

	assert_non_null(g);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	strcpy(a.addr, A);
	strcpy(b.addr, A);
	assert_int_equal(auth_gate_admit(g, &a, 0), AUTH_GATE_RUN);
	assert_int_equal(auth_gate_done(g, &a, OUTCOME_OK, 0), 0);
	assert_int_equal(auth_gate_done(g, &a, OUTCOME_OK, 0), 0);
	auth_gate_cancel(g, &a);
	assert_int_equal(auth_gate_admit(g, &b, 0), AUTH_GATE_RUN);
	assert_int_equal(auth_gate_admit(g, &a, 0), AUTH_GATE_WAIT);
	auth_gate_cancel(g, &a);
	assert_int_equal(a.waiting, 0);
	assert_null(auth_gate_take(g, A));
	auth_gate_free(g);
	auth_gate_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenarios),
		cmocka_unit_test(test_idempotent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
