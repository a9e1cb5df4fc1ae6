/*
 * store — see store.h. The committer owns its own index handle; SQLite
 * handles are not shared between threads.
 *
 * A text's req is held by at most one writer at a time (busy): the loop
 * hands it over with workq_push() and gets it back in the job's done(),
 * so what a writer touches (fd, chunk) is never touched by the loop
 * meanwhile, and its pieces reach tmp/ID in order. What comes next for
 * the text (the next piece, the final write, its removal) is decided on
 * the loop when the writer gives the req back. Once store_free() has
 * stopped the threads (stopped), that work is done at once in the
 * caller's thread: the loop is gone, and the texts still open end.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "fault.h"
#include "flow.h"
#include "log.h"
#include "spare.h"
#include "store.h"
#include "util.h"

/*
 * Files made ahead in tmp/, empty and open, for texts to be written into
 * (see store_make_ahead), named by spool_made_name().
 */
struct made_file {
	int fd;
	char name[SPOOL_ID_MAX];
};

struct store {
	const struct spool *sp;
	struct workq *writers;
	struct index *ix;		/* NULL while the index is away */
	struct index_lost lost;		/* what the moved one left behind */
	int waiting_logged;		/* index.db back beside old files */
	char reopen_err[256];		/* the last reopen failure logged */
	char path[PATH_MAX + 16];	/* spool_dir/index.db */
	pthread_t committer;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_req *ready;	/* published, waiting for commit */
	int writing;			/* submitted, not yet published */
	int stopping;
	int stopped;			/* no threads: jobs run in the caller */
	long pause_us;			/* flow: the wait before each batch */
	struct made_file made[STORE_MADE_AHEAD];	/* under lock */
	size_t nmade, made_max;
};

/*
 * How long the committer waits for writers still busy before it commits
 * what is ready: the price in latency of sharing one directory fsync and
 * one WAL sync among more messages. With nothing else in flight it does
 * not wait at all.
 */
#define STORE_GATHER_US 2000

/* Seconds between looks at the index's path while no message comes. */
#define STORE_WATCH_S 1

static void
store_done(struct workq_job *job)
{
	struct store_req *r = (struct store_req *)job;

	r->busy = 0;
	r->cb(r);
}

/* Hand r to a writer for run, then done on the loop. */
static void
store_push(struct store *st, struct store_req *r,
    int (*run)(struct workq_job *), void (*done)(struct workq_job *))
{
	r->busy = 1;
	r->job.run = run;
	r->job.done = done;
	if (!st->stopped)
		workq_push(st->writers, &r->job);
	else if (run(&r->job) == WORKQ_DONE)
		r->job.done(&r->job);	/* run may have changed it */
}

/* Writer: the text ends unstored; what it had written goes. */
static void
text_drop(struct store_req *r)
{
	if (r->fd != -1) {
		close(r->fd);
		spool_tmp_discard(r->store->sp, r->tmp);
	}
	r->fd = -1;
	buf_free(&r->pending);
	buf_free(&r->chunk);
	buf_free(&r->data);
	r->result = OUTCOME_TEMP;
}

/* Writer: the write of store_abort(). */
static int
store_discard(struct workq_job *job)
{
	text_drop((struct store_req *)job);
	return WORKQ_DONE;
}

/* A file made ahead, into fd and name; 0 when there is none. */
static int
made_take(struct store *st, int *fd, char *name, size_t namesz)
{
	int got = 0;

	pthread_mutex_lock(&st->lock);
	if (st->nmade > 0) {
		st->nmade--;
		*fd = st->made[st->nmade].fd;
		strlcpy(name, st->made[st->nmade].name, namesz);
		got = 1;
	}
	pthread_mutex_unlock(&st->lock);
	return got;
}

/*
 * The file in tmp/ to write r's text into: a delivered message's file
 * when there is one (spare.h), else one made ahead, else a new tmp/ID.
 */
static int
tmp_open(struct store_req *r)
{
	const struct spool *sp = r->store->sp;
	int fd;

	strlcpy(r->tmp, r->id, sizeof(r->tmp));
	if ((fd = spare_take(sp, r->id)) != -1 ||
	    made_take(r->store, &fd, r->tmp, sizeof(r->tmp)))
		return fd;
	return spool_tmp_open(sp, r->id);
}

/*
 * Committer, with nothing else to do: make files for the next texts, so
 * that a lone client's text does not wait for its file's creation (an
 * inode found and a directory entry made: 60 us, and many times that
 * while ext4 without a journal skips inodes freed in the last minutes).
 * Under load the committer is never idle and makes none: the writers
 * then create their files as before. A failure here leaves it to the
 * texts to make their own files and report what fails.
 */
static void
store_make_ahead(struct store *st)
{
	char name[SPOOL_ID_MAX];
	int fd, idle;

	for (;;) {
		pthread_mutex_lock(&st->lock);
		idle = st->nmade < st->made_max && st->ready == NULL &&
		    st->writing == 0 && !st->stopping;
		pthread_mutex_unlock(&st->lock);
		if (!idle)
			return;
		spool_made_name(name, sizeof(name));
		if ((fd = spool_tmp_open(st->sp, name)) == -1)
			return;
		pthread_mutex_lock(&st->lock);
		st->made[st->nmade].fd = fd;
		strlcpy(st->made[st->nmade].name, name,
		    sizeof(st->made[st->nmade].name));
		st->nmade++;
		pthread_mutex_unlock(&st->lock);
	}
}

/* At stop: the files made ahead go. */
static void
made_clear(struct store *st)
{
	while (st->nmade > 0) {
		st->nmade--;
		close(st->made[st->nmade].fd);
		spool_tmp_discard(st->sp, st->made[st->nmade].name);
	}
}

/* Writer: r->chunk into r's file; a failure is noted in chunk_failed. */
static void
chunk_write(struct store_req *r)
{
	if ((r->fd == -1 && (r->fd = tmp_open(r)) == -1) ||
	    util_write_all(r->fd, r->chunk.data, r->chunk.len) == -1) {
		log_warn("id=%s cannot write spool file", r->id);
		r->chunk_failed = 1;
	}
	r->chunk.len = 0;
}

/* The pieces appended meanwhile become the chunk to write next. */
static void
chunk_take_pending(struct store_req *r)
{
	struct buf b = r->chunk;

	r->chunk = r->pending;
	r->pending = b;
}

/* Writer: whether r's text has ended meanwhile (store_submit). */
static int
text_submitted(struct store_req *r)
{
	int yes;

	pthread_mutex_lock(&r->store->lock);
	yes = r->end == STORE_SUBMITTED;
	pthread_mutex_unlock(&r->store->lock);
	return yes;
}

static int store_write(struct workq_job *);

/*
 * Writer: one piece of store_append(), after the ones before. When the
 * text has ended while it was written, the writer goes on with what is
 * left and the publish, rather than hand the text back to the loop only
 * to be given it again: for a long text that arrives at once, that is
 * two thread wake-ups fewer before its 250. Once submitted, the loop
 * touches neither pending nor data again.
 */
static int
store_write_chunk(struct workq_job *job)
{
	struct store_req *r = (struct store_req *)job;

	chunk_write(r);
	if (!text_submitted(r))
		return WORKQ_DONE;
	/* What was appended while this piece was written: no more comes. */
	if (r->pending.len > 0 && !r->chunk_failed) {
		chunk_take_pending(r);
		chunk_write(r);
	}
	if (r->chunk_failed)
		r->failed = 1;
	r->job.done = store_done;
	return store_write(job);
}

static int store_direct(struct store *, struct store_req *);
static void store_next_job(struct workq_job *);

/* Loop: r is back from a writer; give it what comes next. */
static void
store_next(struct store_req *r)
{
	struct store *st = r->store;

	if (r->end == STORE_ABORTED) {
		store_push(st, r, store_discard, store_done);
		return;
	}
	/* Pieces still waiting go first, even once the text has ended:
	   the end can come in while a writer holds the piece before. */
	if (r->pending.len > 0) {
		chunk_take_pending(r);
		store_push(st, r, store_write_chunk, store_next_job);
		return;
	}
	if (r->end == STORE_SUBMITTED) {
		if (!store_direct(st, r))
			store_push(st, r, store_write, store_done);
		return;
	}
	if (r->drained != NULL && !st->stopped)
		r->drained(r);
}

/* Loop: a piece is written (or failed: the text fails). */
static void
store_next_job(struct workq_job *job)
{
	struct store_req *r = (struct store_req *)job;

	r->busy = 0;
	if (r->chunk_failed) {
		r->failed = 1;
		r->pending.len = 0;
	}
	store_next(r);
}

/*
 * Write the rest of r's text into its file and publish it into new/; -1
 * when it failed (logged) or is dropped, the file then gone.
 */
static int
text_publish(struct store_req *r)
{
	struct store *st = r->store;

	buf_free(&r->pending);
	buf_free(&r->chunk);
	if (r->failed || st->stopped)
		goto drop;
	if (r->fd == -1 && (r->fd = tmp_open(r)) == -1)
		goto fail;
	if (util_write_all(r->fd, r->data.data, r->data.len) == -1) {
		close(r->fd);
		spool_tmp_discard(st->sp, r->tmp);
		goto fail;
	}
	buf_free(&r->data);
	if (spool_publish_as(st->sp, r->fd, r->tmp, r->id) == -1)
		goto fail;
	r->fd = -1;
	return 0;
fail:
	log_warn("id=%s cannot write spool file", r->id);
	r->fd = -1;
drop:
	/* A failed append was logged when it failed. */
	text_drop(r);
	return -1;
}

/* Writer: write the rest and publish; then hand the request to the
   committer. */
static int
store_write(struct workq_job *job)
{
	struct store_req *r = (struct store_req *)job;
	struct store *st = r->store;
	int ok = text_publish(r) == 0;

	pthread_mutex_lock(&st->lock);
	if (ok) {
		r->next = st->ready;
		st->ready = r;
	}
	st->writing--;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return ok ? WORKQ_FORWARDED : WORKQ_DONE;
}

/*
 * Loop: a text all in memory (nothing spilled) while nothing else is in
 * flight goes straight to the committer, which writes it itself: a lone
 * client's text then wakes one thread, not two (a writer, then the
 * committer). With other texts about, it goes to a writer as any other,
 * so that their files' fsyncs run side by side. 1 when taken.
 */
static int
store_direct(struct store *st, struct store_req *r)
{
	int take;

	if (st->stopped || r->fd != -1 || r->failed)
		return 0;
	pthread_mutex_lock(&st->lock);
	take = st->ready == NULL && st->writing == 1 && !st->stopping;
	if (take) {
		r->busy = 1;
		r->direct = 1;
		r->job.done = store_done;
		r->next = NULL;
		st->ready = r;
		st->writing--;
		pthread_cond_signal(&st->cond);
	}
	pthread_mutex_unlock(&st->lock);
	return take;
}

/*
 * Committer: write and publish the batch's direct texts; the others are
 * published already. A failed one leaves the batch with its answer.
 */
static size_t
publish_direct(struct store *st, struct store_req **reqs, size_t n)
{
	size_t i, kept = 0;

	for (i = 0; i < n; i++) {
		if (reqs[i]->direct) {
			reqs[i]->direct = 0;
			if (text_publish(reqs[i]) == -1) {
				workq_finish(st->writers, &reqs[i]->job);
				continue;
			}
		}
		reqs[kept++] = reqs[i];
	}
	return kept;
}

/*
 * A commit failed, or there is no index: keep the files whose rows exist
 * anyway, drop the others.
 */
static void
store_undo(struct store *st, struct store_req **reqs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (st->ix != NULL && index_exists(st->ix, reqs[i]->id) == 1) {
			reqs[i]->result = OUTCOME_OK;
			continue;
		}
		reqs[i]->result = OUTCOME_TEMP;
		if (spool_remove(st->sp, reqs[i]->id) == -1)
			log_warn("id=%s cannot remove uncommitted file",
			    reqs[i]->id);
	}
}

/*
 * index.db was removed or replaced while open: what goes into the old
 * file is lost. Stop using it, and answer 451 until an index is back.
 */
static void
store_lose_index(struct store *st)
{
	struct stat sb;
	int missing;

	missing = stat(st->path, &sb) == -1 && errno == ENOENT;
	log_warnx("index=%s path=%s: the open index is no longer at its "
	    "path; posts are refused (451) until an index is back there",
	    missing ? "missing" : "replaced", st->path);
	index_lost_note(st->sp->dir, &st->lost);
	index_close(st->ix);
	st->ix = NULL;
	st->waiting_logged = 0;
	st->reopen_err[0] = '\0';
}

/* Open the index that is back at its path, once the old one's are gone. */
static void
store_find_index(struct store *st)
{
	char err[sizeof(st->reopen_err)];
	enum index_return back = index_lost_check(st->sp->dir, &st->lost);

	if (back != INDEX_RETURN_READY) {
		if (!st->waiting_logged && back == INDEX_RETURN_BESIDE_OLD) {
			st->waiting_logged = 1;
			log_warnx("index=waiting path=%s: index.db-wal and "
			    "index.db-shm are the old file's; the new index is "
			    "opened once they are removed", st->path);
		}
		return;
	}
	if ((st->ix = index_open(st->sp->dir, INDEX_SYNC_FULL, err,
	    sizeof(err))) == NULL) {
		if (strcmp(err, st->reopen_err) != 0)
			log_warnx("index=unusable %s", err);
		strlcpy(st->reopen_err, err, sizeof(st->reopen_err));
		return;
	}
	index_lost_free(&st->lost);
	log_info("index=reopened path=%s: posts are accepted again",
	    st->path);
}

/* Before each batch and every STORE_WATCH_S: is the index still ours? */
static void
store_watch(struct store *st)
{
	if (st->ix != NULL && index_moved(st->ix) == 1)
		store_lose_index(st);
	if (st->ix == NULL)
		store_find_index(st);
}

static void
store_commit(struct store *st, struct store_req **reqs, size_t n)
{
	const struct index_new_msg *rows[STORE_BATCH_MAX];
	size_t i;

	for (i = 0; i < n; i++)
		rows[i] = &reqs[i]->row;
	if (st->ix == NULL) {
		store_undo(st, reqs, n);
	} else if (spool_sync_new(st->sp) == -1) {
		log_warn("fsync of new/ failed");
		store_undo(st, reqs, n);
	} else if (index_insert_batch(st->ix, rows, n) == -1) {
		log_warnx("index commit of %zu messages failed: %s", n,
		    index_errmsg(st->ix));
		store_undo(st, reqs, n);
	} else if (index_moved(st->ix) == 1) {
		/* Committed, but into a file that is gone: no 250 for it. */
		log_warnx("index commit of %zu messages went to a lost index",
		    n);
		store_lose_index(st);
		store_undo(st, reqs, n);
	} else {
		FAULT_POINT("after-commit");
		for (i = 0; i < n; i++)
			reqs[i]->result = OUTCOME_OK;
	}
	/* The answers first: the runner's wake-up is no part of a 250. */
	for (i = 0; i < n; i++)
		workq_finish(st->writers, &reqs[i]->job);
	spool_wake(st->sp);
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

/*
 * Take up to STORE_BATCH_MAX ready requests, oldest first, waiting up to
 * STORE_WATCH_S for one; 0 when none came, with *stop set at stop.
 */
static size_t
store_take(struct store *st, struct store_req **reqs, int *stop)
{
	struct store_req *r, *keep = NULL;
	size_t n = 0, total = 0;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += STORE_WATCH_S;
	pthread_mutex_lock(&st->lock);
	while (st->ready == NULL && !st->stopping &&
	    pthread_cond_timedwait(&st->cond, &st->lock, &until) != ETIMEDOUT)
		;
	if (st->ready == NULL) {
		*stop = st->stopping;
		pthread_mutex_unlock(&st->lock);
		return 0;
	}
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

/*
 * After a batch: the pause before the next one (flow.c), from the
 * backlog the index now holds; a change between paced and not is logged.
 */
static void
store_pace(struct store *st)
{
	long long queued, sending;
	long was = st->pause_us;

	if (st->ix == NULL || index_backlog(st->ix, &queued, &sending) == -1) {
		st->pause_us = 0;
		return;
	}
	st->pause_us = flow_pause_us(queued, sending);
	if (was == 0 && st->pause_us > 0)
		log_info("flow=paced queued=%lld sending=%lld: posting waits up "
		    "to %ld ms a batch while the runner catches up", queued,
		    sending, FLOW_PAUSE_MAX_US / 1000);
	else if (was > 0 && st->pause_us == 0)
		log_info("flow=full queued=%lld sending=%lld: posting at full "
		    "pace again", queued, sending);
}

static void
store_pause(const struct store *st)
{
	struct timespec ts = { 0, st->pause_us * 1000L };

	if (st->pause_us > 0)		/* at most FLOW_PAUSE_MAX_US */
		nanosleep(&ts, NULL);
}

static void *
committer(void *arg)
{
	struct store *st = arg;
	struct store_req *reqs[STORE_BATCH_MAX];
	size_t n;
	int stop = 0;

	store_make_ahead(st);
	while (!stop) {
		n = store_take(st, reqs, &stop);
		store_watch(st);
		n = publish_direct(st, reqs, n);
		if (n > 0) {
			store_commit(st, reqs, n);
			store_pace(st);
			store_pause(st);
		}
		store_make_ahead(st);
	}
	return NULL;
}

struct store *
store_new(const struct spool *sp, int nworkers, size_t nmade, char *err,
    size_t errsz)
{
	struct store *st;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	st->sp = sp;
	st->made_max = nmade < STORE_MADE_AHEAD ? nmade : STORE_MADE_AHEAD;
	snprintf(st->path, sizeof(st->path), "%s/index.db", sp->dir);
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
store_begin(struct store *st, struct store_req *r, const char *id)
{
	assert(!r->busy);	/* the last text is over */
	r->store = st;
	strlcpy(r->id, id, sizeof(r->id));
	r->tmp[0] = '\0';
	r->fd = -1;
	r->end = STORE_OPEN;
	r->busy = r->failed = r->chunk_failed = r->direct = 0;
	r->result = OUTCOME_TEMP;
}

int
store_append(struct store_req *r, const char *data, size_t len)
{
	if (r->end != STORE_OPEN || r->failed ||
	    buf_append(&r->pending, data, len) == -1)
		return -1;
	if (!r->busy)
		store_next(r);
	return 0;
}

size_t
store_backlog(const struct store_req *r)
{
	return r->end == STORE_OPEN ? r->pending.len : 0;
}

void
store_submit(struct store_req *r)
{
	struct store *st = r->store;

	assert(r->end == STORE_OPEN);
	r->result = OUTCOME_TEMP;
	/* Under the lock: a writer holding a piece reads it (text_submitted). */
	pthread_mutex_lock(&st->lock);
	r->end = STORE_SUBMITTED;
	st->writing++;
	pthread_mutex_unlock(&st->lock);
	if (!r->busy)
		store_next(r);
}

int
store_abort(struct store_req *r)
{
	if (r->end != STORE_OPEN)
		return 0;
	r->result = OUTCOME_TEMP;
	if (!r->busy && r->fd == -1) {
		buf_free(&r->pending);
		buf_free(&r->chunk);
		buf_free(&r->data);
		r->end = STORE_IDLE;
		return 0;
	}
	pthread_mutex_lock(&r->store->lock);
	r->end = STORE_ABORTED;
	pthread_mutex_unlock(&r->store->lock);
	if (!r->busy)
		store_next(r);
	return 1;
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
	made_clear(st);
	/* Completions may give texts more work: it is done right here. */
	st->stopped = 1;
	workq_free(st->writers);
	index_close(st->ix);
	index_lost_free(&st->lost);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}
