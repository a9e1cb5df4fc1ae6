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
#include <stddef.h>
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
#include "relay_health.h"
#include "retry.h"
#include "runner.h"
#include "spare.h"
#include "transport.h"
#include "util.h"

#define CLAIM_BATCH 4
#define CHORE_INTERVAL 60	/* seconds between stale-lease and purge runs */
#define MAX_THREADS 256
#define RECORD_RETRY_MAX 30	/* seconds: longest wait between tries to record */
#define INDEX_WATCH_S 1		/* seconds between looks for a lost index */
#define PURGE_BUDGET_MS 250	/* of purging between looks at signals */
#define OUTAGE_IDS_MAX MAX_THREADS	/* one per thread and outage */

/*
 * One generation of the configuration: the one read at start, then one
 * per SIGHUP that loaded. A delivery thread holds the generation its
 * transport was made from and moves to the newest between messages; the
 * last to let go of one frees it (refs under the runner's lock).
 */
struct cfg_ref {
	struct mpp_config cfg;
	unsigned long gen;
	int refs;
};

/* A delivery thread's result waiting for the group commit. */
struct pending_record {
	const struct index_result *res;
	int full;			/* the file goes next: FULL sync */
	int rc;				/* index_record's answer, once done */
	int done;
	struct pending_record *next;
};

struct runner {
	struct runner_ctx *ctx;
	const struct mpp_config *cfg;	/* the start's: spool_dir, hostname */
	struct cfg_ref *live;		/* the newest (set by the main thread) */
	char host[256];
	long pid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/*
	 * Held around each write transaction of this runner's threads: they
	 * then queue here, woken at once, instead of meeting SQLITE_BUSY and
	 * polling the lock in the busy handler's steps. (With SQLite's own
	 * handler, sleeping 1, 2, 5... ms, more threads were slower, not
	 * faster.) Other processes still meet the busy handler.
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
	int purge_busy;			/* others wrote in the last purge pause */
	struct pending_record *pending;	/* results to commit (lock held) */
	int index_gone;			/* one-shot: a thread had no index */
	char reopen_err[256];		/* the last reopen failure logged */
	/*
	 * The relays' health (lock held), and the messages whose delivery
	 * found them down: those fall due at once when a probe finds them
	 * back. The others wait unclaimed, and are due already.
	 */
	struct relay_health health;
	char outage_id[OUTAGE_IDS_MAX][sizeof(((struct index_claim *)0)->id)];
	size_t noutage;
};

struct worker {
	struct runner *r;
	struct cfg_ref *ref;		/* the generation t was made from */
	const struct mpp_config *cfg;	/* &ref->cfg */
	struct retry_policy policy;	/* from cfg */
	unsigned long refused_gen;	/* a generation t could not be made of */
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

static void worker_nap(struct worker *, long long);

/* Sleep until woken, stopped, or the next message falls due. */
static void
worker_wait(struct worker *w)
{
	long long due = index_next_due(w->ix);
	time_t now = time(NULL);
	long wait = w->cfg->queue_interval;

	if (due >= 0 && due - now < wait)
		wait = due - now > 0 ? (long)(due - now) : 1;
	worker_nap(w, wait * 1000LL);
}

/* Let go of a generation; the last holder frees it. Lock held. */
static void
cfg_unref_locked(struct cfg_ref *c)
{
	if (c != NULL && --c->refs == 0)
		free(c);
}

static void
cfg_unref(struct runner *r, struct cfg_ref *c)
{
	pthread_mutex_lock(&r->lock);
	cfg_unref_locked(c);
	pthread_mutex_unlock(&r->lock);
}

/* The worker works by generation c (whose reference it holds now). */
static void
worker_use(struct worker *w, struct cfg_ref *c)
{
	w->ref = c;
	w->cfg = &c->cfg;
	w->policy.min = c->cfg.retry_min;
	w->policy.max = c->cfg.retry_max;
	w->policy.lifetime = c->cfg.max_queue_lifetime;
}

/*
 * Between messages: a newer configuration (SIGHUP) gets the thread a new
 * transport; the old one is freed here, never during a delivery. One the
 * thread cannot make is logged once; the old one stays.
 */
static void
worker_swap(struct worker *w)
{
	struct runner *r = w->r;
	struct cfg_ref *next;
	struct transport *t;
	char err[1024];

	pthread_mutex_lock(&r->lock);
	next = r->live;
	if (next == w->ref || next->gen == w->refused_gen) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	next->refs++;
	pthread_mutex_unlock(&r->lock);
	if ((t = transport_new(&next->cfg, err, sizeof(err))) == NULL) {
		log_warnx("reload: a delivery thread keeps the transport it "
		    "had: %s", err);
		w->refused_gen = next->gen;
		cfg_unref(r, next);
		return;
	}
	transport_free(w->t);
	w->t = t;
	cfg_unref(r, w->ref);
	worker_use(w, next);
}

static int
relay_down(struct runner *r)
{
	int down;

	pthread_mutex_lock(&r->lock);
	down = r->health.down;
	pthread_mutex_unlock(&r->lock);
	return down;
}

/* A delivery reached no relay: the first of an outage says so. */
static void
health_unreachable(struct worker *w, const char *reason)
{
	struct runner *r = w->r;
	char esc[TRANSPORT_REPLY_MAX * 2];
	int began;

	pthread_mutex_lock(&r->lock);
	began = relay_health_unreachable(&r->health, util_now_ms(), reason);
	pthread_mutex_unlock(&r->lock);
	if (!began)
		return;
	log_escape(esc, sizeof(esc), reason, strlen(reason));
	log_warnx("relay=down transport=%s reason=\"%s\": no message is "
	    "attempted until a probe reaches a relay", w->cfg->transport.text,
	    esc);
}

/* id was deferred by the outage: it falls due when the relays are back. */
static void
health_note_deferred(struct runner *r, const char *id)
{
	pthread_mutex_lock(&r->lock);
	if (r->noutage < OUTAGE_IDS_MAX)
		strlcpy(r->outage_id[r->noutage++], id,
		    sizeof(r->outage_id[0]));
	else
		log_debug("id=%s waits for its retry after the outage", id);
	pthread_mutex_unlock(&r->lock);
}

/* Sleep ms (< 0: until woken, at most queue_interval), woken or stopped. */
static void
worker_nap(struct worker *w, long long ms)
{
	struct runner *r = w->r;
	struct timespec until;
	unsigned long gen;

	if (ms < 0)
		ms = w->cfg->queue_interval * 1000LL;
	transport_idle(w->t);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->lock);
	gen = r->generation;
	while (!r->stopping && gen == r->generation &&
	    pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&r->lock);
}

/*
 * The relays are back after outage_ms: what the outage deferred falls
 * due now, in one statement, and every thread is woken to deliver.
 */
static void
relay_back(struct worker *w, long long outage_ms)
{
	struct runner *r = w->r;
	const char *ids[OUTAGE_IDS_MAX];
	char mine[OUTAGE_IDS_MAX][sizeof(r->outage_id[0])];	/* 16 KiB */
	size_t i, n;
	int due = 0;

	pthread_mutex_lock(&r->lock);
	n = r->noutage;
	for (i = 0; i < n; i++) {
		memcpy(mine[i], r->outage_id[i], sizeof(mine[i]));
		ids[i] = mine[i];
	}
	r->noutage = 0;
	pthread_mutex_unlock(&r->lock);
	if (n > 0) {
		pthread_mutex_lock(&r->write_lock);
		due = index_due_now(w->ix, ids, n, time(NULL));
		pthread_mutex_unlock(&r->write_lock);
		if (due < 0)
			log_warnx("relay=up: the messages the outage deferred "
			    "wait for their retry: %s", index_errmsg(w->ix));
	}
	log_info("relay=up transport=%s outage=%lld.%01llds due_now=%d: "
	    "delivering again", w->cfg->transport.text, outage_ms / 1000,
	    outage_ms % 1000 / 100, due < 0 ? 0 : due);
	runner_wake(r);
}

/* The one probe in flight: a new session with the MTA, no mail. */
static void
relay_probe(struct worker *w)
{
	struct runner *r = w->r;
	char why[TRANSPORT_REPLY_MAX], esc[TRANSPORT_REPLY_MAX * 2];
	long long outage = 0, next;
	enum relay_event ev;
	int ok;

	worker_swap(w);
	transport_idle(w->t);	/* a kept connection proves nothing */
	why[0] = '\0';
	ok = transport_probe(w->t, why, sizeof(why)) == 0;
	pthread_mutex_lock(&r->lock);
	ev = relay_health_probed(&r->health, util_now_ms(), ok, &outage);
	next = r->health.next_probe - util_now_ms();
	pthread_mutex_unlock(&r->lock);
	if (ev == RELAY_EVENT_UP) {
		relay_back(w, outage);
		return;
	}
	log_escape(esc, sizeof(esc), why, strlen(why));
	if (ev == RELAY_EVENT_STEP)
		log_info("relay=down probe=failed reason=\"%s\" "
		    "next_probe=%llds", esc, (next + 999) / 1000);
	else
		log_debug("relay=down probe=failed reason=\"%s\"", esc);
}

/*
 * While the relays are down nothing is claimed: one thread at a time
 * probes when the schedule says, the others sleep until the relays are
 * back. 0 when they are up (claim), 1 after a probe or a nap.
 */
static int
relay_gate(struct worker *w)
{
	struct runner *r = w->r;
	long long wait = -1;
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = relay_health_probe_start(&r->health, util_now_ms(), &wait);
	pthread_mutex_unlock(&r->lock);
	if (rc == -1)
		return 0;
	if (rc == 1)
		relay_probe(w);
	else
		worker_nap(w, wait);
	return 1;
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
		if (bounce_create(w->r->ctx->sp, w->cfg, &o, BOUNCE_FAILED,
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
	retry_judge(&w->policy, a->c->received_at, time(NULL), a->outcome,
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
		    now + w->cfg->lease_time);
		pthread_mutex_unlock(&r->write_lock);
		if (renewed == 0)
			return 0;
		if (renewed == 1)
			w->lease_end = now + w->cfg->lease_time;
	}
	if (runner_stopping(r) || now + delay >= w->lease_end)
		return -1;
	log_info("id=%s trying again in %ld s to record the attempt", id,
	    delay);
	runner_nap(r, delay);
	return 1;
}

/*
 * The batch at synchronous=FULL when a file is removed after it: at
 * NORMAL a power cut may lose the commit while the unlink survives (any
 * later fsync of cur/ carries it), which would leave a row pointing at
 * nothing. Other results may be lost: the attempt is made again. Each
 * result's rc and done are set (write_lock held: its waiter reads them
 * once it holds the lock in turn).
 */
static void
record_batch(struct worker *w, struct pending_record *batch)
{
	const struct index_result *res[MAX_THREADS];
	int rc[MAX_THREADS], full = 0;
	struct pending_record *p;
	size_t n = 0, i;

	for (p = batch; p != NULL && n < MAX_THREADS; p = p->next) {
		res[n++] = p->res;
		full |= p->full;
	}
	if (full && index_exec(w->ix, "PRAGMA synchronous=FULL") == -1) {
		for (i = 0; i < n; i++)
			rc[i] = -1;
	} else
		(void)index_record_batch(w->ix, res, n, rc);
	if (full && index_exec(w->ix, "PRAGMA synchronous=NORMAL") == -1)
		log_warnx("cannot return to synchronous=NORMAL: %s",
		    index_errmsg(w->ix));
	for (i = 0, p = batch; i < n; i++, p = p->next) {
		p->rc = rc[i];
		p->done = 1;
	}
}

/*
 * Group commit of the delivery threads' results: each thread puts its
 * result on r->pending and takes write_lock; whichever gets it first
 * commits every result waiting by then in one transaction, one sync for
 * all, and the others find theirs done when their turn comes (while one
 * batch syncs, the next gathers). index_record's 1, 0 or -1.
 */
static int
record_grouped(struct worker *w, const struct index_result *res, int full)
{
	struct runner *r = w->r;
	struct pending_record me = { res, full, -1, 0, NULL }, *batch;

	pthread_mutex_lock(&r->lock);
	me.next = r->pending;
	r->pending = &me;
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_lock(&r->write_lock);
	pthread_mutex_lock(&r->lock);
	batch = me.done ? NULL : r->pending;
	if (batch != NULL)
		r->pending = NULL;
	pthread_mutex_unlock(&r->lock);
	if (batch != NULL)
		record_batch(w, batch);
	pthread_mutex_unlock(&r->write_lock);
	return me.rc;
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
	long delay = 1;
	int rc;

	for (;;) {
		if (index_moved(w->ix) == 1)
			break;
		rc = record_grouped(w, res, full);
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
	warned = notice_delay(r->ctx->sp, w->cfg, a->c, fd, a->tr, a->n,
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
	res.next_attempt_at = (long long)res.now + retry_backoff(&w->policy,
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

/* Retire the file of a message whose verdict says so (spare.h). */
static void
cleanup_sent(struct worker *w, const struct attempt *a)
{
	if (spare_retire(w->r->ctx->sp, a->c->id) == -1 && errno != ENOENT)
		log_warn("id=%s cannot remove sent file (the next start "
		    "will)", a->c->id);
}

/*
 * A message the row still needs after its attempt (deferred, or with a
 * recipient failed) goes from new/ to cur/, where the seen ones live.
 * Only then: a message sent at its first attempt, as nearly all are,
 * goes straight from new/, without the move's fsync of cur/ (one sync
 * in each delivery's two before). Where it stays in new/, the next
 * attempt finds it there as well.
 */
static void
keep_seen(struct worker *w, const char *id)
{
	if (spool_to_cur(w->r->ctx->sp, id) == -1)
		log_warn("id=%s cannot move the file to cur/ (it stays in "
		    "new/)", id);
}

static void
deliver_one(struct worker *w, struct index_claim *c)
{
	struct spool *sp = w->r->ctx->sp;
	struct attempt a;
	struct transport_msg m;
	enum transport_status status = TRANSPORT_ANSWERED;
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
	if ((fd = spool_open_msg(sp, c->id)) == -1) {
		log_warn("id=%s cannot open spool file", c->id);
		transport_set_all(a.tr, n, OUTCOME_TEMP, "spool file missing");
	} else {
		m.id = c->id;
		m.sender = c->sender;
		m.fd = fd;
		m.size = (off_t)c->size;
		status = transport_deliver(w->t, &m, a.tr, n);
		FAULT_POINT("after-mta-accept");
	}
	/* Marked before the record, so that the other threads stop now. */
	if (status == TRANSPORT_UNREACHABLE && !w->r->ctx->oneshot)
		health_unreachable(w, n > 0 ? a.tr[0].reply : "");
	/* The file goes only once the result is committed: a sent message
	   whose record failed is sent again, never lost. */
	rc = attempt_record(w, &a, fd);
	if (fd != -1)
		close(fd);
	if (rc == 1 && a.v.removes_file)	/* else the row still needs it */
		cleanup_sent(w, &a);
	else if (rc == 1)
		keep_seen(w, c->id);
	if (rc == 1 && !a.v.finished && status == TRANSPORT_UNREACHABLE &&
	    !w->r->ctx->oneshot)
		health_note_deferred(w->r, c->id);
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
	const struct mpp_config *cfg = w->cfg;
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
		worker_swap(w);
		if (!r->ctx->oneshot && relay_gate(w))
			continue;	/* the relays are down */
		claimed = time(NULL);
		pthread_mutex_lock(&r->write_lock);
		n = index_claim_due(w->ix, r->host, r->pid, claimed,
		    r->ctx->oneshot ? r->started : claimed,
		    w->cfg->lease_time, claims, CLAIM_BATCH);
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
			/* Put back unattempted: not one attempt is
			   counted against relays known to be down. */
			if (runner_stopping(r) || relay_down(r)) {
				pthread_mutex_lock(&r->write_lock);
				(void)index_unclaim(w->ix, claims[i].id,
				    r->host, r->pid, time(NULL));
				pthread_mutex_unlock(&r->write_lock);
				continue;
			}
			worker_swap(w);
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
	    (w->t = transport_new(&r->live->cfg, err, sizeof(err))) == NULL) {
		log_warnx("cannot start a delivery thread: %s", err);
		index_close(w->ix);
		w->ix = NULL;
		return -1;
	}
	r->live->refs++;	/* no thread runs yet */
	worker_use(w, r->live);
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
 * The pause after a purge batch that took took ms: as long again while
 * nobody else writes the index (a purge on a quiet queue goes at half
 * speed), sixteen times as long once some other connection committed
 * during the last pause (mppd's acceptances, the delivery threads'
 * records): the purge then takes about a seventeenth of the write lock
 * and of a CPU, and still several thousand rows a second.
 */
#define PURGE_PAUSE_QUIET 1
#define PURGE_PAUSE_BUSY 16

/*
 * Sent rows past retention, INDEX_PURGE_BATCH at a time: each batch is
 * one short transaction (a few ms) followed by a pause (see above), so
 * that the other writers get the index in between (one transaction over
 * a million rows would hold the write lock for many seconds, beyond
 * mppd's busy timeout). At most PURGE_BUDGET_MS per call unless all:
 * 1 when rows may be left, 0 when done, -1 on error.
 */
static int
purge_sent(struct runner *r, struct index *ix, time_t now, int all,
    long *purged)
{
	long long t0 = util_now_ms(), t, took, v;
	int n;

	for (;;) {
		t = util_now_ms();
		n = index_purge_sent(ix, now, r->live->cfg.sent_retention,
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
		v = index_data_version(ix);
		pause_ms((took > 0 ? took : 1) * (r->purge_busy ?
		    PURGE_PAUSE_BUSY : PURGE_PAUSE_QUIET));
		r->purge_busy = v != -1 && index_data_version(ix) != v;
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

/*
 * The keys a reload cannot change: the threads, the spool, the lease
 * owner's name, the user and the log were set up at start with them.
 */
static const struct {
	const char *key;
	size_t off;
} reload_fixed[] = {
	{ "spool_dir", offsetof(struct mpp_config, spool_dir) },
	{ "user", offsetof(struct mpp_config, user) },
	{ "hostname", offsetof(struct mpp_config, hostname) },
};

#define FIXED_SIZE(k) (sizeof(((struct mpp_config *)0)->k) == CONFIG_STR_MAX)
_Static_assert(FIXED_SIZE(spool_dir) && FIXED_SIZE(user) &&
    FIXED_SIZE(hostname), "reload_fixed[] keys are CONFIG_STR_MAX strings");
#undef FIXED_SIZE

/* A fixed key changed in next: logged, and set back to old's value. */
static void
reload_keep_fixed(const struct mpp_config *old, struct mpp_config *next)
{
	size_t i;

	for (i = 0; i < sizeof(reload_fixed) / sizeof(reload_fixed[0]); i++) {
		const char *was = (const char *)old + reload_fixed[i].off;
		char *now = (char *)next + reload_fixed[i].off;

		if (strcmp(was, now) == 0)
			continue;
		log_warnx("reload: %s changed; ignored until mppqueue is "
		    "restarted", reload_fixed[i].key);
		memcpy(now, was, CONFIG_STR_MAX);
	}
	if (old->concurrency != next->concurrency)
		log_warnx("reload: concurrency changed; ignored until "
		    "mppqueue is restarted");
	next->concurrency = old->concurrency;
	if (old->log.to != next->log.to ||
	    strcmp(old->log.path, next->log.path) != 0)
		log_warnx("reload: log changed; ignored until mppqueue is "
		    "restarted");
	next->log = old->log;
}

/*
 * SIGHUP: read the configuration again. One that does not load, or whose
 * transport cannot be made, is logged and the one in use kept; else it
 * becomes the newest generation, which each delivery thread takes up
 * between two messages.
 */
static void
runner_reload(struct runner *r)
{
	struct cfg_ref *next, *old = r->live;
	struct transport *t;
	const char *path = NULL;
	char err[1024];
	int moved;

	if ((next = calloc(1, sizeof(*next))) == NULL) {
		log_warn("reload");
		return;
	}
	if (config_cli_load(&next->cfg, r->ctx->cli, &path, err,
	    sizeof(err)) == -1 ||
	    (t = transport_new(&next->cfg, err, sizeof(err))) == NULL) {
		log_warnx("reload=failed %s; the configuration in use is kept",
		    err);
		free(next);
		return;
	}
	transport_free(t);
	reload_keep_fixed(&old->cfg, &next->cfg);
	moved = strcmp(old->cfg.transport.text, next->cfg.transport.text);
	next->refs = 1;
	pthread_mutex_lock(&r->lock);
	next->gen = old->gen + 1;
	r->live = next;
	relay_health_set_max(&r->health, next->cfg.relay_probe_max);
	if (moved != 0)		/* the new relays are tried at once */
		relay_health_probe_now(&r->health, util_now_ms());
	cfg_unref_locked(old);
	pthread_mutex_unlock(&r->lock);
	log_info("reload=done config=%s transport %s", path != NULL ? path :
	    "-", next->cfg.transport.text);
	runner_wake(r);
}

/* A signal read from the signalfd: 0 to go on, -1 to stop. */
static int
runner_signal(struct runner *r, int sig)
{
	if (!log_reopen_signal(sig))
		return -1;
	if (sig == SIGHUP && r->ctx->cli != NULL)
		runner_reload(r);
	return 0;
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
		    runner_signal(r, (int)si.ssi_signo) == -1)
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
	if ((r.live = calloc(1, sizeof(*r.live))) == NULL) {
		log_warn("runner");
		return EX_OSERR;
	}
	r.live->cfg = *ctx->cfg;
	r.live->refs = 1;
	relay_health_init(&r.health, ctx->cfg->relay_probe_max);
	r.pid = (long)getpid();
	r.started = time(NULL);
	strlcpy(r.host, ctx->cfg->hostname, sizeof(r.host));
	pthread_mutex_init(&r.lock, NULL);
	pthread_mutex_init(&r.write_lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	if ((ix = index_open(ctx->cfg->spool_dir, INDEX_SYNC_NORMAL, err,
	    sizeof(err))) == NULL) {
		log_warnx("%s", err);
		free(r.live);
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
		cfg_unref(&r, workers[i].ref);
	}
	cfg_unref(&r, r.live);
	index_close(ix);
	index_lost_free(&r.lost);
	close(sigfd);
	if (started < n)
		return EX_SOFTWARE;
	return r.index_gone ? EX_IOERR : EX_OK;
}
