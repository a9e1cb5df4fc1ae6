/*
 * auth_gate — see auth_gate.h. Failures and slots are counted per address
 * by iplimit; the waiting tickets of every address share one queue,
 * oldest first.
 */
#include <stdlib.h>
#include <string.h>

#include "auth_gate.h"
#include "iplimit.h"

struct auth_gate {
	long limit, window;
	struct iplimit *fails;		/* failures in the window */
	struct iplimit *running;	/* checks in flight */
	struct auth_gate_ticket *head;	/* waiting, oldest first */
};

struct auth_gate *
auth_gate_new(long limit, long window)
{
	struct auth_gate *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->limit = limit;
	g->window = window;
	g->fails = iplimit_new();
	g->running = iplimit_new();
	if (g->fails == NULL || g->running == NULL) {
		auth_gate_free(g);
		return NULL;
	}
	return g;
}

static enum auth_gate_verdict
judge(struct auth_gate *g, const char *addr, long now)
{
	long fails;

	if (g->limit <= 0)
		return AUTH_GATE_RUN;
	fails = iplimit_failures(g->fails, addr, now, g->window);
	if (fails >= g->limit)
		return AUTH_GATE_THROTTLE;
	if (fails + iplimit_get(g->running, addr) >= g->limit)
		return AUTH_GATE_WAIT;
	return AUTH_GATE_RUN;
}

static void
take_slot(struct auth_gate *g, struct auth_gate_ticket *t)
{
	t->slot = g->limit > 0 && iplimit_inc(g->running, t->addr) > 0;
}

static void
enqueue(struct auth_gate *g, struct auth_gate_ticket *t)
{
	struct auth_gate_ticket **pp = &g->head;

	while (*pp != NULL)
		pp = &(*pp)->next;
	t->next = NULL;
	t->waiting = 1;
	*pp = t;
}

void
auth_gate_cancel(struct auth_gate *g, struct auth_gate_ticket *t)
{
	struct auth_gate_ticket **pp = &g->head;

	while (*pp != NULL && *pp != t)
		pp = &(*pp)->next;
	if (*pp != NULL)
		*pp = t->next;
	t->next = NULL;
	t->waiting = 0;
}

enum auth_gate_verdict
auth_gate_admit(struct auth_gate *g, struct auth_gate_ticket *t, long now)
{
	enum auth_gate_verdict v = judge(g, t->addr, now);

	t->slot = t->waiting = 0;
	if (v == AUTH_GATE_RUN)
		take_slot(g, t);
	else if (v == AUTH_GATE_WAIT)
		enqueue(g, t);
	return v;
}

long
auth_gate_done(struct auth_gate *g, struct auth_gate_ticket *t,
    enum outcome result, long now)
{
	long n;

	if (t->slot)
		iplimit_dec(g->running, t->addr);
	t->slot = 0;
	if (result != OUTCOME_PERM)
		return 0;
	n = iplimit_fail(g->fails, t->addr, now, g->window);
	return g->limit > 0 && n == g->limit ? n : 0;
}

struct auth_gate_ticket *
auth_gate_take(struct auth_gate *g, const char *addr)
{
	struct auth_gate_ticket *t;

	for (t = g->head; t != NULL; t = t->next)
		if (strcmp(t->addr, addr) == 0) {
			auth_gate_cancel(g, t);
			return t;
		}
	return NULL;
}

struct auth_gate_ticket *
auth_gate_next(struct auth_gate *g, const char *addr, long now,
    enum auth_gate_verdict *v)
{
	struct auth_gate_ticket *t;

	for (t = g->head; t != NULL; t = t->next)
		if (strcmp(t->addr, addr) == 0)
			break;
	if (t == NULL || (*v = judge(g, addr, now)) == AUTH_GATE_WAIT)
		return NULL;
	auth_gate_cancel(g, t);
	if (*v == AUTH_GATE_RUN)
		take_slot(g, t);
	return t;
}

void
auth_gate_free(struct auth_gate *g)
{
	if (g == NULL)
		return;
	iplimit_free(g->fails);
	iplimit_free(g->running);
	free(g);
}
