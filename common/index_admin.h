/*
 * index_admin — the administrator's statements on the index (mppq): list
 * and show messages with their recipients, pick them by state, sender,
 * recipient, login and age, make them due, hold, release, delete and
 * requeue them, count them. Part of the index module (it shares struct
 * index). An action on any number of messages is one BEGIN IMMEDIATE
 * transaction, so it is safe while mppd and runners work and is done
 * whole or not at all; reads run in one deferred transaction, so a
 * listing is one consistent snapshot.
 *
 * Memory does not grow with the queue: listings hand out one message at
 * a time, and the messages an action picks are kept in temporary tables
 * of the connection (SQLite spills them to a file when they grow).
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

/*
 * Open spool_dir/index.db only to read it, for a user who may read the
 * index but not change it (mppq for a member of the spool's group). It
 * creates nothing, takes no open lock and never upgrades the schema: an
 * index of another version is an error. The -wal and -shm files must
 * exist (the daemons keep them). NULL with a message in err; errno is
 * EACCES when permission was denied.
 */
struct index *index_admin_open_readonly(const char *spool_dir, char *err,
    size_t errsz);

/*
 * Which messages a listing or an action picks; every member that is set
 * must match (AND). NULL or 0 leaves a member out.
 *
 * state: a state name, "all", or NULL for every state but sent.
 * from, to: an address, compared without regard to ASCII case, or
 *   "@domain" for every address at that domain; from may be "" for the
 *   null sender of a bounce. to matches when any recipient does.
 * user: the login given to USER, exactly.
 * received_before: received at or before this time (--older-than).
 * received_after: received after this time (--newer-than).
 */
struct index_admin_filter {
	const char *state;
	const char *from;
	const char *to;
	const char *user;
	long long received_before;
	long long received_after;
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
 * List the messages f picks (NULL: every one but sent), oldest first.
 * Returns 0, -1 on an index error, or the callback's nonzero value.
 */
int index_admin_list(struct index *ix, const struct index_admin_filter *f,
    index_admin_list_cb cb, void *arg);

enum index_admin_rc {
	INDEX_ADMIN_ERROR = -1,		/* index error: index_errmsg() */
	INDEX_ADMIN_OK = 0,
	INDEX_ADMIN_UNKNOWN		/* no message with that id */
};

/*
 * Fill m with message id (checked by the caller with spool_id_valid());
 * the caller clears it. OK, UNKNOWN or ERROR.
 */
int index_admin_get(struct index *ix, const char *id,
    struct index_admin_msg *m);

/*
 * The actions, each on the messages of a batch whose state allows it:
 *
 * flush: queued or deferred -> due at now (an earlier due time is kept);
 *   sending is left as it is (unchanged: it is being attempted).
 * hold: queued or deferred -> held, remembering the old state; held is
 *   unchanged.
 * release: held -> the state it was held from (queued when unknown), due
 *   at now.
 * delete: the row and its recipients go, in any state but sending. The
 *   caller removes the files afterwards (index_admin_batch_each): a crash
 *   between the two leaves a file without a row, which reconciliation
 *   moves to orphans/, never a row without its file.
 * requeue: failed -> queued, attempts 0, due at now, no last error, and
 *   its failed recipients pending again and not yet bounced.
 */
enum index_admin_action {
	IA_FLUSH, IA_HOLD, IA_RELEASE, IA_DELETE, IA_REQUEUE, IA_NACTIONS
};

/* What an action made of one message of its batch. */
enum index_admin_verdict {
	IA_SKIPPED,			/* its state does not allow it */
	IA_CHANGED,
	IA_UNCHANGED,			/* already so (see each action) */
	IA_UNKNOWN,			/* no such message (added ids only) */
	IA_NVERDICTS
};

struct index_admin_batch;

/*
 * A batch of messages for one action on ix: the ids added to it, or what
 * a filter picks. One batch per connection at a time. NULL on an index
 * error (index_errmsg()).
 */
struct index_admin_batch *index_admin_batch_new(struct index *ix);
/* Free b and empty its tables; NULL is allowed. */
void index_admin_batch_free(struct index_admin_batch *b);

/*
 * Add one queue id (checked by the caller with spool_id_valid()); an id
 * added twice counts once. Nothing is locked: ids may be read from a slow
 * pipe. 0, or -1 on an index error.
 */
int index_admin_batch_add(struct index_admin_batch *b, const char *id);

/*
 * Run action a in one transaction on the ids added to b, or, when f is
 * not NULL, on the messages f picks (then no id may have been added).
 * count[v] receives how many messages got verdict v. 0, or -1 on an index
 * error: then nothing was changed.
 */
int index_admin_batch_run(struct index_admin_batch *b,
    enum index_admin_action a, const struct index_admin_filter *f,
    time_t now, long long count[IA_NVERDICTS]);

/*
 * After a run: each message of the batch in order (the order ids were
 * added, or oldest first), with its state before the action (NULL when
 * unknown) and its verdict. A nonzero return of cb stops the walk and is
 * returned; else 0, or -1 on an index error.
 */
typedef int (*index_admin_each_cb)(const char *id, const char *old_state,
    enum index_admin_verdict v, void *arg);
int index_admin_batch_each(struct index_admin_batch *b,
    index_admin_each_cb cb, void *arg);

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
