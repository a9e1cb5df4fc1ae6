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

struct store_req {
	struct workq_job job;		/* the store's */
	struct store *store;		/* the store's */
	struct store_req *next;		/* the store's */
	char id[SPOOL_ID_MAX];
	int fd;				/* tmp/ID if already open, or -1 */
	struct buf data;		/* output not yet written; freed */
	struct index_new_msg row;	/* strings owned by the caller */
	enum outcome result;		/* set before cb */
	void (*cb)(struct store_req *);	/* on the event loop's thread */
	void *arg;
};

/*
 * Start nworkers writers and the committer on sp (which must outlive the
 * store). NULL with err.
 */
struct store *store_new(const struct spool *sp, int nworkers, char *err,
    size_t errsz);
/* Completions fd for the event loop, and the call to make on it. */
int store_fd(const struct store *st);
void store_run_completions(struct store *st);
/* Queue r (its fields id, fd, data, row, cb, arg set). */
void store_submit(struct store *st, struct store_req *r);
/* Finish queued work, stop the threads, free. */
void store_free(struct store *st);

#endif
