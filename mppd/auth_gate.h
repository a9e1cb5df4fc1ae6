/*
 * auth_gate — auth_fail_limit and auth_fail_window, apart from the
 * connections that ask: how many passwords one client address may have
 * tried. The limit bounds the checks that may fail, not only the
 * failures already seen: a check in flight holds a slot of its address,
 * so however many connections send PASS at once, at most auth_fail_limit
 * passwords from one address are tried in a window. A PASS with no slot
 * free waits, in order, for one (a check that succeeds gives its slot
 * back uncounted); once the failures alone reach the limit, it is
 * throttled. A PASS waits only while a check from its address is in
 * flight, whose end wakes it. No I/O and no clock: the host passes now.
 */
#ifndef MPP_AUTH_GATE_H
#define MPP_AUTH_GATE_H

#include "outcome.h"

#define AUTH_GATE_ADDR_MAX 64

enum auth_gate_verdict {
	AUTH_GATE_RUN,		/* check it now: a slot is taken for it */
	AUTH_GATE_WAIT,		/* queued: auth_gate_next() gives it back */
	AUTH_GATE_THROTTLE	/* refuse it, unchecked */
};

/* One PASS at the gate; the host sets addr and arg, the gate the rest. */
struct auth_gate_ticket {
	char addr[AUTH_GATE_ADDR_MAX];
	void *arg;			/* the host's */
	struct auth_gate_ticket *next;	/* in the queue */
	int waiting;			/* in the queue */
	int slot;			/* holds a slot of its address */
};

struct auth_gate;

/* A gate for limit failures per window seconds (limit 0: no limit). */
struct auth_gate *auth_gate_new(long limit, long window);

/* A PASS from t->addr at now: its verdict. */
enum auth_gate_verdict auth_gate_admit(struct auth_gate *g,
    struct auth_gate_ticket *t, long now);

/*
 * t's check ended with result at now: its slot is given back and a
 * refusal counted. Returns the failures of its address in the window
 * when this refusal brought them to the limit (for the log), else 0.
 */
long auth_gate_done(struct auth_gate *g, struct auth_gate_ticket *t,
    enum outcome result, long now);

/*
 * The first ticket waiting from addr if it may go on at now, taken out of
 * the queue with its verdict in *v (AUTH_GATE_RUN, its slot taken, or
 * AUTH_GATE_THROTTLE); NULL while it must still wait, or none waits.
 */
struct auth_gate_ticket *auth_gate_next(struct auth_gate *g,
    const char *addr, long now, enum auth_gate_verdict *v);

/* The first ticket waiting from addr, taken out unjudged; or NULL. */
struct auth_gate_ticket *auth_gate_take(struct auth_gate *g,
    const char *addr);

/* Take a waiting t out of the queue (its connection is gone). */
void auth_gate_cancel(struct auth_gate *g, struct auth_gate_ticket *t);

void auth_gate_free(struct auth_gate *g);

#endif
