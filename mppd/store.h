/*
 * store — the durable acceptance of messages (DESIGN.md, Durability).
 * Worker threads write each message into tmp/, fsync it and rename it into
 * new/, many at once; one committer thread then takes every message ready
 * so far, fsyncs new/ once and inserts all their index rows in one
 * transaction (group commit). Only after that commit is a request's result
 * OUTCOME_OK. If the commit fails, the files of rows that did not commit
 * are removed, so nothing half-stored remains. Before each batch, after
 * each commit and once a second, the committer checks that the index is
 * still the file at spool_dir/index.db: one removed or replaced gets no
 * commit and no OUTCOME_OK until an index is back (see mppd(8)).
 *
 * A text longer than the session holds in memory reaches tmp/ID in
 * pieces (store_append) before it is submitted; those writes are the
 * writers' too, one piece of a text at a time and in order.
 */
#ifndef MPP_STORE_H
#define MPP_STORE_H

#include "buf.h"
#include "index.h"
#include "outcome.h"
#include "spool.h"
#include "workq.h"

#define STORE_BATCH_MAX 512

struct store;

/* Where a text is: a zeroed req is STORE_IDLE, as after its end. */
enum store_end { STORE_IDLE, STORE_OPEN, STORE_SUBMITTED, STORE_ABORTED };

/*
 * One text, from store_begin() to its end: the host fills id (by
 * store_begin), data, row, cb, arg and drained; the rest is the store's.
 */
struct store_req {
	struct workq_job job;		/* the store's */
	struct store *store;		/* the store's */
	struct store_req *next;		/* the store's */
	char id[SPOOL_ID_MAX];
	int fd;				/* the store's: the file in tmp/ once made */
	char tmp[SPOOL_ID_MAX];		/* the store's: its name there */
	struct buf data;		/* the rest of the output; freed */
	struct index_new_msg row;	/* strings owned by the caller */
	enum outcome result;		/* set before cb */
	void (*cb)(struct store_req *);	/* on the event loop's thread */
	/* An append was written (room for more); on the loop's thread,
	   only while the text is open. May be NULL. */
	void (*drained)(struct store_req *);
	void *arg;
	enum store_end end;		/* the store's */
	struct buf pending;		/* the store's: appended, not yet taken */
	struct buf chunk;		/* the store's: being appended */
	int busy;			/* the store's: a writer holds the req */
	int failed;			/* the store's: an append failed */
	int chunk_failed;		/* the store's: set by the writer */
	int direct;			/* the store's: the committer writes it */
};

/* Files kept made ahead in tmp/ for the next texts, at most (store.c). */
#define STORE_MADE_AHEAD 2

/*
 * Start nworkers writers and the committer on sp (which must outlive the
 * store), which keeps nmade files made ahead (up to STORE_MADE_AHEAD).
 * NULL with err.
 */
struct store *store_new(const struct spool *sp, int nworkers, size_t nmade,
    char *err, size_t errsz);
/* Completions fd for the event loop, and the call to make on it. */
int store_fd(const struct store *st);
void store_run_completions(struct store *st);

/* Start a text to be stored as id: nothing is written yet. */
void store_begin(struct store *st, struct store_req *r, const char *id);
/*
 * Output of the text too long to hold: a copy goes to tmp/ID, written by
 * a writer thread after what was appended before (the event loop writes
 * no file). -1 when an earlier append failed, or out of memory: the text
 * fails.
 */
int store_append(struct store_req *r, const char *data, size_t len);
/* Appended bytes no writer has taken yet: the host stops feeding the
   text while there are STORE_BACKLOG_MAX or more. */
size_t store_backlog(const struct store_req *r);
#define STORE_BACKLOG_MAX (64 * 1024)
/*
 * The text is complete: write r->data after what was appended, publish
 * and commit (row, cb, arg set). r->cb gets the result.
 */
void store_submit(struct store_req *r);
/*
 * The text is dropped: what was written is removed, by a writer. 0 when
 * the store is done with r at once; 1 when r->cb follows (r->end is then
 * STORE_ABORTED and r->result OUTCOME_TEMP).
 */
int store_abort(struct store_req *r);
/* Finish queued work, stop the threads, free. */
void store_free(struct store *st);

#endif
