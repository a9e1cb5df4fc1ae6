/*
 * store — see store.h. The committer owns its own index handle; SQLite
 * handles are not shared between threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "store.h"
#include "util.h"

struct store {
	const struct spool *sp;
	struct workq *writers;
	struct index *ix;
	pthread_t committer;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_req *ready;	/* published, waiting for commit */
	int writing;			/* submitted, not yet published */
	int stopping;
};

/*
 * How long the committer waits for writers still busy before it commits
 * what is ready: the price in latency of sharing one directory fsync and
 * one WAL sync among more messages. With nothing else in flight it does
 * not wait at all.
 */
#define STORE_GATHER_US 2000

static void
store_done(struct workq_job *job)
{
	struct store_req *r = (struct store_req *)job;

	r->cb(r);
}

/* Worker: write and publish; then hand the request to the committer. */
static int
store_write(struct workq_job *job)
{
	struct store_req *r = (struct store_req *)job;
	struct store *st = r->store;

	if (r->fd == -1 && (r->fd = spool_tmp_open(st->sp, r->id)) == -1)
		goto fail;
	if (util_write_all(r->fd, r->data.data, r->data.len) == -1) {
		close(r->fd);
		spool_tmp_discard(st->sp, r->id);
		goto fail;
	}
	buf_free(&r->data);
	if (spool_publish(st->sp, r->fd, r->id) == -1)
		goto fail;
	r->fd = -1;
	pthread_mutex_lock(&st->lock);
	r->next = st->ready;
	st->ready = r;
	st->writing--;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return WORKQ_FORWARDED;
fail:
	log_warn("id=%s cannot write spool file", r->id);
	pthread_mutex_lock(&st->lock);
	st->writing--;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
	r->fd = -1;
	buf_free(&r->data);
	r->result = OUTCOME_TEMP;
	return WORKQ_DONE;
}

/* A commit failed: keep the files whose rows exist anyway, drop others. */
static void
store_undo(struct store *st, struct store_req **reqs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (index_exists(st->ix, reqs[i]->id) == 1) {
			reqs[i]->result = OUTCOME_OK;
			continue;
		}
		reqs[i]->result = OUTCOME_TEMP;
		if (spool_remove(st->sp, reqs[i]->id) == -1)
			log_warn("id=%s cannot remove uncommitted file",
			    reqs[i]->id);
	}
}

static void
store_commit(struct store *st, struct store_req **reqs, size_t n)
{
	const struct index_new_msg *rows[STORE_BATCH_MAX];
	size_t i;

	for (i = 0; i < n; i++)
		rows[i] = &reqs[i]->row;
	if (spool_sync_new(st->sp) == -1) {
		log_warn("fsync of new/ failed");
		store_undo(st, reqs, n);
	} else if (index_insert_batch(st->ix, rows, n) == -1) {
		log_warnx("index commit of %zu messages failed: %s", n,
		    index_errmsg(st->ix));
		store_undo(st, reqs, n);
	} else {
		FAULT_POINT("after-commit");
		for (i = 0; i < n; i++)
			reqs[i]->result = OUTCOME_OK;
	}
	spool_wake(st->sp);
	for (i = 0; i < n; i++)
		workq_finish(st->writers, &reqs[i]->job);
}

/* Lock held: let writers in flight join this batch, a little while. */
static void
gather(struct store *st)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += STORE_GATHER_US * 1000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (st->writing > 0 && !st->stopping &&
	    pthread_cond_timedwait(&st->cond, &st->lock, &until) == 0)
		;
}

/* Take up to STORE_BATCH_MAX ready requests, oldest first; 0 at stop. */
static size_t
store_take(struct store *st, struct store_req **reqs)
{
	struct store_req *r, *keep = NULL;
	size_t n = 0, total = 0;

	pthread_mutex_lock(&st->lock);
	while (st->ready == NULL && !st->stopping)
		pthread_cond_wait(&st->cond, &st->lock);
	gather(st);
	for (r = st->ready; r != NULL; r = r->next)
		total++;
	/* The list is newest first: skip the newest beyond the batch. */
	for (r = st->ready; r != NULL && total > STORE_BATCH_MAX; total--) {
		keep = r;
		r = r->next;
	}
	for (; r != NULL; r = r->next)
		reqs[n++] = r;
	if (keep != NULL)
		keep->next = NULL;
	else
		st->ready = NULL;
	pthread_mutex_unlock(&st->lock);
	return n;
}

static void *
committer(void *arg)
{
	struct store *st = arg;
	struct store_req *reqs[STORE_BATCH_MAX];
	size_t n;

	while ((n = store_take(st, reqs)) > 0)
		store_commit(st, reqs, n);
	return NULL;
}

struct store *
store_new(const struct spool *sp, int nworkers, char *err, size_t errsz)
{
	struct store *st;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	st->sp = sp;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	if ((st->ix = index_open(sp->dir, INDEX_SYNC_FULL, err, errsz)) ==
	    NULL)
		goto fail;
	if ((st->writers = workq_new(nworkers)) == NULL ||
	    pthread_create(&st->committer, NULL, committer, st) != 0) {
		snprintf(err, errsz, "cannot start store threads");
		workq_free(st->writers);
		goto fail;
	}
	return st;
fail:
	index_close(st->ix);
	free(st);
	return NULL;
}

int
store_fd(const struct store *st)
{
	return workq_fd(st->writers);
}

void
store_run_completions(struct store *st)
{
	workq_run_completions(st->writers);
}

void
store_submit(struct store *st, struct store_req *r)
{
	r->store = st;
	r->job.run = store_write;
	r->job.done = store_done;
	r->result = OUTCOME_TEMP;
	pthread_mutex_lock(&st->lock);
	st->writing++;
	pthread_mutex_unlock(&st->lock);
	workq_push(st->writers, &r->job);
}

void
store_free(struct store *st)
{
	if (st == NULL)
		return;
	/* Writers first: their output feeds the committer. */
	workq_stop(st->writers);
	pthread_mutex_lock(&st->lock);
	st->stopping = 1;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->committer, NULL);
	workq_free(st->writers);
	index_close(st->ix);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}
