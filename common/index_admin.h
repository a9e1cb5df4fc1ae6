/*
 * index_admin — the administrator's statements on the index (mppq): list
 * and show messages with their recipients, make them due, hold, release,
 * delete and requeue them, count them. Part of the index module (it shares
 * struct index). Every change runs in its own BEGIN IMMEDIATE transaction,
 * so it is safe while mppd and runners work; reads run in one deferred
 * transaction, so a listing is one consistent snapshot.
 *
 * The functions that act on one queue id return an enum index_admin_rc;
 * on INDEX_ADMIN_ERROR index_errmsg() tells why. They trust the caller to
 * have checked the id with spool_id_valid().
 */
#ifndef MPP_INDEX_ADMIN_H
#define MPP_INDEX_ADMIN_H

#include <stddef.h>
#include <time.h>

#include "index.h"

/* The message states of sql/schema.sql, in the order stats reports them. */
enum index_admin_state {
	IA_QUEUED, IA_SENDING, IA_DEFERRED, IA_HELD, IA_SENT, IA_FAILED,
	IA_NSTATES
};

#define INDEX_ADMIN_STATE_MAX 16

/* The name of state s ("queued"...). */
const char *index_admin_state_name(enum index_admin_state s);
/* The state called name, or -1 when there is none. */
int index_admin_state_parse(const char *name);

enum index_admin_rc {
	INDEX_ADMIN_ERROR = -1,		/* index error: index_errmsg() */
	INDEX_ADMIN_OK = 0,
	INDEX_ADMIN_UNKNOWN,		/* no message with that id */
	INDEX_ADMIN_BADSTATE		/* its state forbids the change */
};

struct index_admin_rcpt {
	char *address;
	char *state;			/* pending, sent or failed */
	char *last_error;		/* NULL when none */
	int bounced;
};

/* One message row with its recipients; strings are NULL for SQL NULL. */
struct index_admin_msg {
	char *id;
	char *state;
	char *auth_user;
	char *sender;			/* "" for a bounce */
	char *client_addr;
	char *last_error;
	char *held_from;
	char *lease_host;
	long long size;
	long long received_at;
	long long attempts;
	long long next_attempt_at;
	long long lease_pid;		/* 0 when no lease */
	long long lease_until;		/* 0 when no lease */
	long long done_at;		/* 0 while not sent or failed */
	int is_bounce;
	size_t nrcpts;
	struct index_admin_rcpt *rcpts;
};

/* Free what m holds (not m itself) and zero it; NULL is allowed. */
void index_admin_msg_clear(struct index_admin_msg *m);

/*
 * Called once per listed message, oldest first. The message is freed after
 * the call. A nonzero return stops the listing; index_admin_list() then
 * returns that value, so a callback should return a positive one.
 */
typedef int (*index_admin_list_cb)(const struct index_admin_msg *m,
    void *arg);

/*
 * List messages in state (a name from index_admin_state_name), or every
 * one but sent when state is NULL, or every one when it is "all".
 * Returns 0, -1 on an index error, or the callback's nonzero value.
 */
int index_admin_list(struct index *ix, const char *state,
    index_admin_list_cb cb, void *arg);

/* Fill m with message id; the caller clears it. OK or UNKNOWN or ERROR. */
int index_admin_get(struct index *ix, const char *id,
    struct index_admin_msg *m);

/*
 * The actions on one message. Each leaves the message's state at the
 * time of the call in state (INDEX_ADMIN_STATE_MAX bytes) when it exists,
 * so a BADSTATE can be explained.
 *
 * flush: a queued or deferred message is due at now; one sending is left
 *   as it is (OK: it is being attempted); any other state is BADSTATE.
 * hold: queued or deferred -> held, remembering the old state; held stays
 *   held (OK); sending, sent and failed are BADSTATE.
 * release: held -> the state it was held from (queued when unknown), due
 *   at now; any other state is BADSTATE.
 * delete: the row and its recipients go, in any state but sending. The
 *   caller removes the file after this returns OK: a crash between the two
 *   leaves a file without a row, which reconciliation moves to orphans/,
 *   never a row without its file.
 * requeue: failed -> queued, attempts 0, due at now, no last error, and
 *   its failed recipients pending again and not yet bounced.
 */
int index_admin_flush(struct index *ix, const char *id, time_t now,
    char *state);
int index_admin_hold(struct index *ix, const char *id, char *state);
int index_admin_release(struct index *ix, const char *id, time_t now,
    char *state);
int index_admin_delete(struct index *ix, const char *id, char *state);
int index_admin_requeue(struct index *ix, const char *id, time_t now,
    char *state);

/* Make every queued or deferred message due at now; how many, or -1. */
long long index_admin_flush_all(struct index *ix, time_t now);

struct index_admin_stats {
	long long total[INDEX_NTOTALS];	/* see enum index_total */
	long long count[IA_NSTATES];
	long long bytes[IA_NSTATES];	/* sum of size per state */
	long long oldest;		/* received_at of the oldest queued,
					   sending, deferred or held message;
					   0 when there is none */
};

/* Count messages and bytes per state, read the totals. 0 or -1. */
int index_admin_stats(struct index *ix, struct index_admin_stats *st);

#endif
