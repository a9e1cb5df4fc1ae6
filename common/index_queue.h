/*
 * index_queue — the queue runner's statements on the index: claims with a
 * lease, per-recipient results, the next due time, released leases and
 * the purge of sent rows (mppq's are in index_admin). Part of the index
 * module (it shares struct index).
 */
#ifndef MPP_INDEX_QUEUE_H
#define MPP_INDEX_QUEUE_H

#include <stddef.h>
#include <time.h>

#include "index.h"
#include "outcome.h"

/*
 * 'sending' rows whose lease ended, or whose owner is a process of this
 * host that no longer exists, go back to 'deferred' (due now). Returns
 * how many, or -1.
 */
int index_release_stale_leases(struct index *ix, const char *hostname,
    time_t now);

#define INDEX_ADDR_MAX 512
#define INDEX_ERROR_MAX 512

/* A message claimed for delivery. */
struct index_claim {
	char id[64];
	char sender[INDEX_ADDR_MAX];
	char auth_user[128];
	long long size;
	long long received_at;
	int attempts;		/* before this one */
	int is_bounce;
	long long warned_at;	/* when its delay warning went; 0: not yet */
};

/*
 * Claim up to max due messages (queued with next_attempt_at <= now, or
 * deferred with next_attempt_at <= retry_by; oldest due first): state
 * 'sending' with a lease to host/pid until now + lease. Returns how many
 * were claimed into out, or -1. A one-shot run passes its start time as
 * retry_by, so it retries nothing it deferred itself: against an MTA that
 * always defers, it ends once the mail that arrived meanwhile is tried.
 */
int index_claim_due(struct index *ix, const char *host, long pid, time_t now,
    time_t retry_by, long lease, struct index_claim *out, size_t max);

/* A recipient still to deliver, or one that failed. */
struct index_rcpt {
	long long seq;
	char addr[INDEX_ADDR_MAX];
	char error[INDEX_ERROR_MAX];
};

/*
 * The recipients of id in state (pending, or failed and not yet reported
 * to the sender when failed_unbounced). *out is malloc'd, caller frees.
 */
int index_rcpts(struct index *ix, const char *id, int failed_unbounced,
    struct index_rcpt **out, size_t *n);

/* The result of one delivery attempt, to record in one transaction. */
struct index_result {
	const char *id;
	const char *host;		/* the claim's owner */
	long pid;
	time_t now;
	size_t n;			/* recipients attempted */
	const long long *seq;
	const enum outcome *outcome;	/* per recipient */
	const char *const *reply;	/* per recipient */
	int finished;			/* no recipient left pending */
	int expired;			/* pending ones fail: lifetime over */
	long long next_attempt_at;	/* when not finished */
	const char *last_error;
	const struct index_new_msg *bounce;	/* NULL: none */
	const struct index_new_msg *warning;	/* delay warning; NULL: none */
};

/* Record r (with its bounce or delay warning, which then marks the
   message warned_at = r->now); -1 on error (nothing recorded). 0 when
   the claim was no longer ours (an administrator changed the message):
   nothing recorded. */
int index_record(struct index *ix, const struct index_result *r);

/*
 * Record n results in one transaction (one sync for all): rc[i] is what
 * index_record would answer for r[i]. Any error takes every result back
 * (each rc[i] -1) and answers -1; else 0.
 */
int index_record_batch(struct index *ix, const struct index_result *const *r,
    size_t n, int *rc);

/*
 * Extend our claim on id to until. 1 when it is still ours, 0 when it is
 * not (it ran out and another runner took it), -1 on error.
 */
int index_renew_lease(struct index *ix, const char *id, const char *host,
    long pid, time_t until);

/* A claimed message goes back unattempted (shutdown): due now. */
int index_unclaim(struct index *ix, const char *id, const char *host,
    long pid, time_t now);

/*
 * The deferred ones among the n messages ids fall due at now, in one
 * statement (what they waited for, the relays, is back). Returns how
 * many changed, or -1. At most INDEX_DUE_NOW_MAX ids.
 */
#define INDEX_DUE_NOW_MAX 1024
int index_due_now(struct index *ix, const char *const *ids, size_t n,
    time_t now);

/* Earliest next_attempt_at of a queued or deferred message; -1 if none,
   -2 on error. */
long long index_next_due(struct index *ix);

/* Rows one purge transaction deletes at most. */
#define INDEX_PURGE_BATCH 200

/*
 * Delete up to max sent rows whose done_at is older than now - retention,
 * oldest first, with their recipients, in one transaction; then call
 * gone(id, ctx) for each (to remove a leftover file: a crash before that
 * leaves a file without a row, which reconciliation sets aside). Returns
 * how many, or -1. A caller purging many calls it again while it returns
 * max, letting other writers in between.
 */
int index_purge_sent(struct index *ix, time_t now, long retention,
    size_t max, void (*gone)(const char *id, void *ctx), void *ctx);

#endif
