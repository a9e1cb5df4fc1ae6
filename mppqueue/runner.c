/*
 * runner — see runner.h. Each delivery thread owns its index handle and
 * its transport (SQLite handles and SMTP connections are not shared). The
 * threads sleep on one condition variable; a wake-up bumps a generation
 * counter so none misses it. Every handle is checked to be still the file
 * at spool_dir/index.db (runner_index) before it is used for a claim or a
 * record: one removed or replaced is closed, and nothing is delivered
 * until an index is back.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "bounce.h"
#include "fault.h"
#include "index_queue.h"
#include "log.h"
#include "notice.h"
#include "reconcile.h"
#include "retry.h"
#include "runner.h"
#include "transport.h"
#include "util.h"

#define CLAIM_BATCH 4
#define CHORE_INTERVAL 60	/* seconds between stale-lease and purge runs */
#define MAX_THREADS 256
#define RECORD_RETRY_MAX 30	/* seconds: longest wait between tries to record */
#define INDEX_WATCH_S 1		/* seconds between looks for a lost index */
#define PURGE_BUDGET_MS 250	/* of purging between looks at signals */

struct runner {
	struct runner_ctx *ctx;
	const struct mpp_config *cfg;
	struct retry_policy policy;	/* from cfg */
	char host[256];
	long pid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/*
	 * Held around each write transaction of this runner's threads: they
	 * then queue here, woken at once, instead of meeting SQLITE_BUSY and
	 * the busy handler's sleeps (1, 2, 5... ms) -- which made more
	 * threads slower, not faster. Other processes still meet the busy
	 * handler as usual.
	 */
	pthread_mutex_t write_lock;
	unsigned long generation;	/* bumped by every wake-up */
	int stopping;
	int failed;			/* a thread could not start */
	int running;			/* delivery threads not yet done */
	time_t started;			/* one-shot: retries due by then only */
	/*
	 * The index removed or replaced under the runner (lock held): each
	 * time the first thread to find its handle moved bumps epoch and
	 * notes what the old file left; every thread then closes its handle
	 * and opens the index again once one is back at the path.
	 */
	unsigned epoch;
	struct index_lost lost;
	int away;			/* the loss logged, not yet the return */
	int waiting_logged;		/* index.db back beside old files */
	int index_gone;			/* one-shot: a thread had no index */
	char reopen_err[256];		/* the last reopen failure logged */
};

struct worker {
	struct runner *r;
	struct index *ix;		/* NULL while the index is away */
	unsigned epoch;			/* r->epoch when ix was opened */
	time_t lease_end;		/* of the claim being delivered */
	struct transport *t;
	pthread_t thread;
};

static void
runner_wake(struct runner *r)
{
	pthread_mutex_lock(&r->lock);
	r->generation++;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static int
runner_stopping(struct runner *r)
{
	int s;

	pthread_mutex_lock(&r->lock);
	s = r->stopping;
	pthread_mutex_unlock(&r->lock);
	return s;
}

/* Sleep secs seconds, or less when the runner stops. */
static void
runner_nap(struct runner *r, long secs)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += secs;
	pthread_mutex_lock(&r->lock);
	while (!r->stopping &&
	    pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&r->lock);
}

/* Lock held: the first to find the index moved in this epoch says so. */
static void
index_lost_locked(struct runner *r, unsigned epoch)
{
	char path[PATH_MAX + 16];

	if (epoch != r->epoch)
		return;		/* another thread noted it already */
	r->epoch++;
	r->away = 1;
	r->waiting_logged = 0;
	r->reopen_err[0] = '\0';
	snprintf(path, sizeof(path), "%s/index.db", r->cfg->spool_dir);
	log_warnx("index=%s path=%s: the open index is no longer at its "
	    "path; nothing is delivered until an index is back there",
	    access(path, F_OK) == 0 ? "replaced" : "missing", path);
	index_lost_note(r->cfg->spool_dir, &r->lost);
}

/* Lock held: may an index be opened at the path? Logs a wait once. */
static int
index_back_locked(struct runner *r)
{
	enum index_return back = index_lost_check(r->cfg->spool_dir,
	    &r->lost);

	if (back == INDEX_RETURN_BESIDE_OLD && r->away &&
	    !r->waiting_logged) {
		r->waiting_logged = 1;
		log_warnx("index=waiting path=%s/index.db: index.db-wal and "
		    "index.db-shm are the old file's; the new index is "
		    "opened once they are removed", r->cfg->spool_dir);
	}
	return back == INDEX_RETURN_READY;
}

/* Open the index that is back; NULL (logged once per error) if unusable. */
static struct index *
index_reopen(struct runner *r, unsigned *epoch)
{
	struct index *ix;
	char err[sizeof(r->reopen_err)];

	ix = index_open(r->cfg->spool_dir, INDEX_SYNC_NORMAL, err, sizeof(err));
	pthread_mutex_lock(&r->lock);
	if (ix == NULL) {
		if (strcmp(err, r->reopen_err) != 0)
			log_warnx("index=unusable %s", err);
		strlcpy(r->reopen_err, err, sizeof(r->reopen_err));
	} else {
		*epoch = r->epoch;
		index_lost_free(&r->lost);
		if (r->away)
			log_info("index=reopened path=%s/index.db: delivering "
			    "again", r->cfg->spool_dir);
		r->away = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return ix;
}

/*
 * A thread's index, still the file at spool_dir/index.db: one removed or
 * replaced is closed (what it records would be lost) and NULL returned
 * until an index is back at the path.
 */
static struct index *
runner_index(struct runner *r, struct index **ixp, unsigned *epoch)
{
	int back;

	if (*ixp != NULL && index_moved(*ixp) == 1) {
		pthread_mutex_lock(&r->lock);
		index_lost_locked(r, *epoch);
		pthread_mutex_unlock(&r->lock);
		index_close(*ixp);
		*ixp = NULL;
		runner_wake(r);		/* the others look at theirs */
	}
	if (*ixp != NULL)
		return *ixp;
	pthread_mutex_lock(&r->lock);
	back = index_back_locked(r);
	pthread_mutex_unlock(&r->lock);
	if (back)
		*ixp = index_reopen(r, epoch);
	return *ixp;
}

/* Sleep until woken, stopped, or the next message falls due. */
static void
worker_wait(struct worker *w)
{
	struct runner *r = w->r;
	long long due = index_next_due(w->ix);
	time_t now = time(NULL);
	long wait = r->cfg->queue_interval;
	struct timespec until;
	unsigned long gen;

	if (due >= 0 && due - now < wait)
		wait = due - now > 0 ? (long)(due - now) : 1;
	transport_idle(w->t);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait;
	pthread_mutex_lock(&r->lock);
	gen = r->generation;
	while (!r->stopping && gen == r->generation &&
	    pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&r->lock);
}

/* The outcome of one attempt, gathered for index_record(). */
struct attempt {
	struct index_claim *c;
	struct index_rcpt *rc;
	struct transport_rcpt *tr;
	size_t n;
	long long *seq;
	enum outcome *outcome;
	const char **reply;
	struct retry_verdict v;
};

static void
log_attempt(const struct attempt *a)
{
	char reply[TRANSPORT_REPLY_MAX * 2];
	size_t i;

	for (i = 0; i < a->n; i++) {
		log_escape(reply, sizeof(reply), a->tr[i].reply,
		    strlen(a->tr[i].reply));
		log_info("id=%s to=<%s> attempt=%d result=%s reply=\"%s\"",
		    a->c->id, a->tr[i].addr, a->c->attempts + 1,
		    a->tr[i].result == OUTCOME_OK ? "sent" :
		    a->tr[i].result == OUTCOME_PERM ? "failed" :
		    a->v.expired ? "failed-expired" : "deferred", reply);
	}
}

/* Failed recipients not yet reported: earlier ones and this attempt's. */
static int
collect_failed(struct worker *w, struct attempt *a, struct bounce_rcpt **out,
    size_t *nout, struct index_rcpt **earlier)
{
	size_t i, nearlier = 0, k = 0;

	if (index_rcpts(w->ix, a->c->id, 1, earlier, &nearlier) == -1)
		return -1;
	*out = calloc(nearlier + a->n + 1, sizeof(**out));
	if (*out == NULL)
		return -1;
	for (i = 0; i < nearlier; i++) {
		(*out)[k].addr = (*earlier)[i].addr;
		(*out)[k++].error = (*earlier)[i].error;
	}
	for (i = 0; i < a->n; i++)
		if (a->outcome[i] == OUTCOME_PERM) {	/* expired ones too */
			(*out)[k].addr = a->tr[i].addr;
			(*out)[k].error = a->tr[i].reply;
			(*out)[k].expired = a->tr[i].result == OUTCOME_TEMP;
			(*out)[k++].attempted = time(NULL);
		}
	*nout = k;
	return 0;
}

/* A finished message from a real sender with failures gets a bounce. */
static int
maybe_bounce(struct worker *w, struct attempt *a, int fd, struct bounce *b)
{
	struct bounce_orig o = { a->c->id, fd, a->c->sender,
	    (time_t)a->c->received_at };
	struct bounce_rcpt *failed = NULL;
	struct index_rcpt *earlier = NULL;
	size_t nfailed = 0;
	int made = 0;

	if (!a->v.finished || a->c->is_bounce || a->c->sender[0] == '\0')
		return 0;
	if (collect_failed(w, a, &failed, &nfailed, &earlier) == 0 &&
	    nfailed > 0) {
		if (bounce_create(w->r->ctx->sp, w->r->cfg, &o, BOUNCE_FAILED,
		    failed, nfailed, time(NULL), b) == 0) {
			log_info("id=%s bounce=%s to=<%s> failed=%zu", a->c->id,
			    b->id, a->c->sender, nfailed);
			made = 1;
		} else
			log_warn("id=%s cannot write bounce", a->c->id);
	}
	free(failed);
	free(earlier);
	return made;
}

/* The transport's answers as the index records them, and the verdict. */
static void
attempt_judge(struct worker *w, struct attempt *a)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		a->seq[i] = a->rc[i].seq;
		a->outcome[i] = a->tr[i].result;
		a->reply[i] = a->tr[i].reply;
	}
	retry_judge(&w->r->policy, a->c->received_at, time(NULL), a->outcome,
	    a->n, &a->v);
}

/*
 * Between tries to record: keep the claim while it lasts, then wait
 * delay seconds. 1 to try again, 0 when the claim went to another
 * runner, -1 to give up (stopping, or the claim ran out).
 */
static int
record_wait(struct worker *w, const char *id, long delay)
{
	struct runner *r = w->r;
	time_t now = time(NULL);
	int renewed;

	if (w->lease_end - now <= delay) {
		pthread_mutex_lock(&r->write_lock);
		renewed = index_renew_lease(w->ix, id, r->host, r->pid,
		    now + r->cfg->lease_time);
		pthread_mutex_unlock(&r->write_lock);
		if (renewed == 0)
			return 0;
		if (renewed == 1)
			w->lease_end = now + r->cfg->lease_time;
	}
	if (runner_stopping(r) || now + delay >= w->lease_end)
		return -1;
	log_info("id=%s trying again in %ld s to record the attempt", id,
	    delay);
	runner_nap(r, delay);
	return 1;
}

/*
 * index_record at synchronous=FULL when the file is removed next: at
 * NORMAL a power cut may lose the commit while the unlink survives (any
 * later fsync of cur/ carries it), which would leave a row pointing at
 * nothing. Other results may be lost: the attempt is made again.
 */
static int
record_durably(struct worker *w, const struct index_result *res, int full)
{
	int rc;

	if (full && index_exec(w->ix, "PRAGMA synchronous=FULL") == -1)
		return -1;
	rc = index_record(w->ix, res);
	if (full && index_exec(w->ix, "PRAGMA synchronous=NORMAL") == -1)
		log_warnx("cannot return to synchronous=NORMAL: %s",
		    index_errmsg(w->ix));
	return rc;
}

/*
 * Record res. While the index refuses the commit (a full disk, a lock
 * held too long) try again, waiting 1, 2, 4... up to RECORD_RETRY_MAX
 * seconds, for as long as the claim is ours. 1 when recorded, 0 when the
 * claim is not ours, -1 when not recorded: the file then stays, and the
 * message is tried again (at least once, never zero times). full: the
 * file goes next, so the commit must be synchronous=FULL.
 */
static int
record_result(struct worker *w, const struct index_result *res, int full)
{
	struct runner *r = w->r;
	long delay = 1;
	int rc;

	for (;;) {
		if (index_moved(w->ix) == 1)
			break;
		pthread_mutex_lock(&r->write_lock);
		rc = record_durably(w, res, full);
		pthread_mutex_unlock(&r->write_lock);
		if (rc == 1 && index_moved(w->ix) == 1)
			break;		/* recorded into a lost file */
		if (rc == 1 && delay > 1)
			log_info("id=%s attempt recorded", res->id);
		if (rc != -1)
			return rc;
		log_warnx("id=%s cannot record the attempt: %s", res->id,
		    index_errmsg(w->ix));
		if ((rc = record_wait(w, res->id, delay)) != 1) {
			if (rc == -1)
				log_warnx("id=%s attempt not recorded: the "
				    "file stays, to be tried again", res->id);
			return rc;
		}
		delay = delay * 2 > RECORD_RETRY_MAX ? RECORD_RETRY_MAX :
		    delay * 2;
	}
	log_warnx("id=%s attempt not recorded: the index is no longer at its "
	    "path; the file stays", res->id);
	return -1;
}

/* Judge, log and record one attempt; index_record()'s 1, 0 or -1. */
static int
attempt_record(struct worker *w, struct attempt *a, int fd)
{
	struct runner *r = w->r;
	struct index_result res;
	struct bounce b, warning;
	int bounced, warned, rc;

	attempt_judge(w, a);
	log_attempt(a);
	bounced = maybe_bounce(w, a, fd, &b);
	warned = notice_delay(r->ctx->sp, r->cfg, a->c, fd, a->tr, a->n,
	    a->v.finished, time(NULL), &warning) == 1;
	memset(&res, 0, sizeof(res));
	res.id = a->c->id;
	res.host = r->host;
	res.pid = r->pid;
	res.now = time(NULL);
	res.n = a->n;
	res.seq = a->seq;
	res.outcome = a->outcome;
	res.reply = a->reply;
	res.finished = a->v.finished;
	res.expired = a->v.expired;
	res.next_attempt_at = (long long)res.now + retry_backoff(&r->policy,
	    a->c->attempts + 1, arc4random_uniform);
	res.last_error = a->v.last_failed < a->n ?
	    a->tr[a->v.last_failed].reply : NULL;
	res.bounce = bounced ? &b.row : NULL;
	res.warning = warned ? &warning.row : NULL;
	/* Every recipient done and sent: the file goes (failed ones stay). */
	rc = record_result(w, &res, a->v.removes_file);
	if (rc != 1 && bounced)
		bounce_discard(r->ctx->sp, &b);
	if (rc != 1 && warned)
		bounce_discard(r->ctx->sp, &warning);
	if (rc == 1 && warned)
		spool_wake(r->ctx->sp);
	if (rc == 0)
		log_warnx("id=%s changed during delivery; result not recorded",
		    a->c->id);
	else if (rc == 1 && a->v.finished && bounced)
		spool_wake(r->ctx->sp);
	return rc;
}

static int
attempt_alloc(struct attempt *a, size_t n)
{
	a->n = n;
	a->tr = calloc(n + 1, sizeof(*a->tr));
	a->seq = calloc(n + 1, sizeof(*a->seq));
	a->outcome = calloc(n + 1, sizeof(*a->outcome));
	a->reply = calloc(n + 1, sizeof(*a->reply));
	return a->tr && a->seq && a->outcome && a->reply ? 0 : -1;
}

static void
attempt_free(struct attempt *a)
{
	free(a->rc);
	free(a->tr);
	free(a->seq);
	free(a->outcome);
	free(a->reply);
}

/* Remove the file of a message whose verdict says so. */
static void
cleanup_sent(struct worker *w, const struct attempt *a)
{
	if (spool_remove(w->r->ctx->sp, a->c->id) == -1 && errno != ENOENT)
		log_warn("id=%s cannot remove sent file (the next start "
		    "will)", a->c->id);
}

static void
deliver_one(struct worker *w, struct index_claim *c)
{
	struct spool *sp = w->r->ctx->sp;
	struct attempt a;
	struct transport_msg m;
	size_t i, n = 0;
	int fd, rc;

	memset(&a, 0, sizeof(a));
	a.c = c;
	if (index_rcpts(w->ix, c->id, 0, &a.rc, &n) == -1 ||
	    attempt_alloc(&a, n) == -1) {
		log_warnx("id=%s cannot read recipients: %s", c->id,
		    index_errmsg(w->ix));
		attempt_free(&a);
		return;		/* the lease runs out; tried again later */
	}
	for (i = 0; i < n; i++)
		a.tr[i].addr = a.rc[i].addr;
	(void)spool_to_cur(sp, c->id);
	if ((fd = spool_open_msg(sp, c->id)) == -1) {
		log_warn("id=%s cannot open spool file", c->id);
		transport_set_all(a.tr, n, OUTCOME_TEMP, "spool file missing");
	} else {
		m.id = c->id;
		m.sender = c->sender;
		m.fd = fd;
		m.size = (off_t)c->size;
		(void)transport_deliver(w->t, &m, a.tr, n);
		FAULT_POINT("after-mta-accept");
	}
	/* The file goes only once the result is committed: a sent message
	   whose record failed is sent again, never lost. */
	rc = attempt_record(w, &a, fd);
	if (fd != -1)
		close(fd);
	if (rc == 1 && a.v.removes_file)	/* else the row still needs it */
		cleanup_sent(w, &a);
	attempt_free(&a);
}

/*
 * A batch is claimed under one lease, but its last message starts only
 * after the others: renew the claim when less than one whole attempt
 * (delivery_timeout) is left of it. 0 when it is still ours.
 */
static int
keep_claim(struct worker *w, const struct index_claim *c, time_t claimed)
{
	const struct mpp_config *cfg = w->r->cfg;
	time_t now = time(NULL);
	int renewed;

	w->lease_end = claimed + cfg->lease_time;
	if (w->lease_end - now > cfg->delivery_timeout)
		return 0;
	pthread_mutex_lock(&w->r->write_lock);
	renewed = index_renew_lease(w->ix, c->id, w->r->host, w->r->pid,
	    now + cfg->lease_time);
	pthread_mutex_unlock(&w->r->write_lock);
	if (renewed == 1) {
		w->lease_end = now + cfg->lease_time;
		return 0;
	}
	log_warnx("id=%s claim lost before delivery; left to its new owner",
	    c->id);
	return -1;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct runner *r = w->r;
	struct index_claim claims[CLAIM_BATCH];
	time_t claimed;
	int i, n;

	while (!runner_stopping(r)) {
		if (runner_index(r, &w->ix, &w->epoch) == NULL) {
			if (r->ctx->oneshot) {
				pthread_mutex_lock(&r->lock);
				r->index_gone = 1;
				pthread_mutex_unlock(&r->lock);
				break;
			}
			runner_nap(r, INDEX_WATCH_S);
			continue;
		}
		claimed = time(NULL);
		pthread_mutex_lock(&r->write_lock);
		n = index_claim_due(w->ix, r->host, r->pid, claimed,
		    r->ctx->oneshot ? r->started : claimed,
		    r->cfg->lease_time, claims, CLAIM_BATCH);
		pthread_mutex_unlock(&r->write_lock);
		if (n < 0)
			log_warnx("claim failed: %s", index_errmsg(w->ix));
		if (n <= 0) {
			if (r->ctx->oneshot)
				break;
			worker_wait(w);
			continue;
		}
		for (i = 0; i < n; i++) {
			if (index_moved(w->ix) == 1)
				break;	/* claims in a lost index */
			if (runner_stopping(r)) {
				pthread_mutex_lock(&r->write_lock);
				(void)index_unclaim(w->ix, claims[i].id,
				    r->host, r->pid, time(NULL));
				pthread_mutex_unlock(&r->write_lock);
				continue;
			}
			if (keep_claim(w, &claims[i], claimed) == 0)
				deliver_one(w, &claims[i]);
		}
	}
	pthread_mutex_lock(&r->lock);
	r->running--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/*
 * Every thread's index and transport are opened before the first thread
 * runs: a delivery that removes or replaces the index must not leave a
 * later thread opening a new file beside the old one's -wal.
 */
static int
worker_prepare(struct runner *r, struct worker *w)
{
	char err[1024];

	w->r = r;
	if ((w->ix = index_open(r->cfg->spool_dir, INDEX_SYNC_NORMAL, err,
	    sizeof(err))) == NULL ||
	    (w->t = transport_new(r->cfg, err, sizeof(err))) == NULL) {
		log_warnx("cannot start a delivery thread: %s", err);
		index_close(w->ix);
		w->ix = NULL;
		return -1;
	}
	return 0;
}

static int
worker_start(struct runner *r, struct worker *w)
{
	pthread_mutex_lock(&r->lock);
	r->running++;
	pthread_mutex_unlock(&r->lock);
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		log_warnx("cannot start a delivery thread");
		pthread_mutex_lock(&r->lock);
		r->running--;
		pthread_mutex_unlock(&r->lock);
		return -1;
	}
	return 0;
}

static void
purge_gone(const char *id, void *ctx)
{
	struct spool *sp = ctx;

	(void)spool_remove(sp, id);
}

static void
pause_ms(long long ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * Sent rows past retention, INDEX_PURGE_BATCH at a time: each batch is
 * one short transaction (a few ms), followed by a pause four times as long,
 * so that mppd's commits and the delivery threads get the index, and the
 * CPU, in between (a single transaction over a million rows would hold
 * the write lock for many seconds, beyond mppd's busy timeout). That
 * still purges several thousand rows a second, more than a queue sends. At most PURGE_BUDGET_MS per
 * call unless all: 1 when rows may be left, 0 when done, -1 on error.
 */
static int
purge_sent(struct runner *r, struct index *ix, time_t now, int all,
    long *purged)
{
	long long t0 = util_now_ms(), t, took;
	int n;

	for (;;) {
		t = util_now_ms();
		n = index_purge_sent(ix, now, r->cfg->sent_retention,
		    INDEX_PURGE_BATCH, purge_gone, r->ctx->sp);
		if (n < 0)
			return -1;
		*purged += n;
		if (n < INDEX_PURGE_BATCH)
			return 0;
		/* The batch's pages leave the WAL here, not in the commit
		   of whichever mppd post next finds it over
		   wal_autocheckpoint: the purge pays for its own writes. */
		(void)index_checkpoint(ix);
		took = util_now_ms() - t;
		if (!all && util_now_ms() - t0 + took > PURGE_BUDGET_MS)
			return 1;
		pause_ms(took > 0 ? 4 * took : 4);
	}
}

/*
 * Periodic: claims of crashed runners, and sent rows past retention.
 * 1 when a purge is not finished (call again soon), else 0.
 */
static int
chores(struct runner *r, struct index *ix, int all)
{
	time_t now = time(NULL);
	long purged = 0;
	int n, more;

	if (ix == NULL)
		return 0;	/* the index is away */
	if ((n = index_release_stale_leases(ix, r->host, now)) > 0) {
		log_info("released %d stale claims", n);
		runner_wake(r);
	}
	more = purge_sent(r, ix, now, all, &purged);
	if (purged > 0)
		log_info("purged %ld sent messages", purged);
	if (more < 0)
		log_warnx("purge failed: %s", index_errmsg(ix));
	return more == 1;
}

static int
open_trigger(const struct spool *sp)
{
	/* O_RDWR keeps a writer open, so the FIFO never reads as EOF. */
	return openat(sp->dirfd, "trigger", O_RDWR | O_NONBLOCK | O_CLOEXEC);
}

/*
 * Main thread of a daemon: signals, the trigger, chores; and a look at
 * the index every second, so that a removed or replaced one is noticed
 * while the delivery threads are idle.
 */
static void
runner_loop(struct runner *r, int sigfd, struct index **ixp,
    unsigned *epoch)
{
	struct pollfd pfd[2];
	struct signalfd_siginfo si;
	time_t last_chores = 0;
	char drain[256];
	int more = 0;

	pfd[0].fd = sigfd;
	pfd[0].events = POLLIN;
	pfd[1].fd = open_trigger(r->ctx->sp);
	pfd[1].events = POLLIN;
	if (pfd[1].fd == -1)
		log_warn("trigger FIFO; new mail waits for the periodic scan");
	for (;;) {
		(void)runner_index(r, ixp, epoch);
		if (more || time(NULL) - last_chores >= CHORE_INTERVAL) {
			more = chores(r, *ixp, 0);
			last_chores = time(NULL);
		}
		if (poll(pfd, 2, more ? 0 : 1000) <= 0)
			continue;
		if ((pfd[1].revents & POLLIN) &&
		    read(pfd[1].fd, drain, sizeof(drain)) > 0)
			runner_wake(r);
		if ((pfd[0].revents & POLLIN) &&
		    read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si) &&
		    !log_reopen_signal((int)si.ssi_signo))
			break;
	}
	if (pfd[1].fd != -1)
		close(pfd[1].fd);
}

/* One-shot: wait for the threads to run dry, or a signal to stop them. */
static void
oneshot_wait(struct runner *r, int sigfd)
{
	struct pollfd pfd = { sigfd, POLLIN, 0 };
	struct signalfd_siginfo si;
	int running;

	for (;;) {
		pthread_mutex_lock(&r->lock);
		running = r->running;
		pthread_mutex_unlock(&r->lock);
		if (running == 0)
			return;
		if (poll(&pfd, 1, 100) == 1 &&
		    read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si) &&
		    !log_reopen_signal((int)si.ssi_signo)) {
			log_info("stopping: finishing deliveries in flight");
			pthread_mutex_lock(&r->lock);
			r->stopping = 1;
			pthread_cond_broadcast(&r->cond);
			pthread_mutex_unlock(&r->lock);
			return;
		}
	}
}

static int
block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	signal(SIGPIPE, SIG_IGN);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	return signalfd(-1, set, SFD_CLOEXEC);
}

int
runner_run(struct runner_ctx *ctx)
{
	static struct worker workers[MAX_THREADS];
	struct runner r;
	struct index *ix;
	char err[1024];
	sigset_t set;
	unsigned epoch = 0;
	int i, prepared, started = 0, sigfd;
	int n = ctx->cfg->concurrency < MAX_THREADS ?
	    (int)ctx->cfg->concurrency : MAX_THREADS;

	memset(&r, 0, sizeof(r));
	r.ctx = ctx;
	r.cfg = ctx->cfg;
	r.policy.min = ctx->cfg->retry_min;
	r.policy.max = ctx->cfg->retry_max;
	r.policy.lifetime = ctx->cfg->max_queue_lifetime;
	r.pid = (long)getpid();
	r.started = time(NULL);
	strlcpy(r.host, ctx->cfg->hostname, sizeof(r.host));
	pthread_mutex_init(&r.lock, NULL);
	pthread_mutex_init(&r.write_lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	if ((ix = index_open(ctx->cfg->spool_dir, INDEX_SYNC_NORMAL, err,
	    sizeof(err))) == NULL) {
		log_warnx("%s", err);
		return EX_IOERR;
	}
	sigfd = block_signals(&set);
	if (!ctx->oneshot)
		(void)chores(&r, ix, 0);
	for (prepared = 0; prepared < n; prepared++)
		if (worker_prepare(&r, &workers[prepared]) == -1)
			break;
	for (i = 0; i < prepared; i++) {
		if (worker_start(&r, &workers[i]) == -1)
			break;
		started++;
	}
	if (started < n) {
		pthread_mutex_lock(&r.lock);
		r.stopping = 1;
		pthread_mutex_unlock(&r.lock);
	} else if (!ctx->oneshot)
		runner_loop(&r, sigfd, &ix, &epoch);
	else
		oneshot_wait(&r, sigfd);
	pthread_mutex_lock(&r.lock);
	r.stopping = r.stopping || !ctx->oneshot || started < n;
	pthread_cond_broadcast(&r.cond);
	pthread_mutex_unlock(&r.lock);
	for (i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);
	if (ctx->oneshot)		/* a cron-only site purges too */
		(void)chores(&r, runner_index(&r, &ix, &epoch), 1);
	for (i = 0; i < prepared; i++) {
		transport_free(workers[i].t);
		index_close(workers[i].ix);
	}
	index_close(ix);
	index_lost_free(&r.lost);
	close(sigfd);
	if (started < n)
		return EX_SOFTWARE;
	return r.index_gone ? EX_IOERR : EX_OK;
}
