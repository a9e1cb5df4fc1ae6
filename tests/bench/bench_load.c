/*
 * bench_load — see bench_load.h. Threads share only atomic counters and
 * result arrays indexed by message or session number (each slot written by
 * one thread), plus a lock for the first error.
 */
#include <sys/uio.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "bench_load.h"
#include "bench_net.h"
#include "bench_smtp.h"
#include "../../client/mpp_client.h"

struct shared {
	const struct bench_load_cfg *cfg;
	struct bench_load_result *res;
	long long t0;			/* monotonic ns at start */
	long long wall_off;		/* wall clock minus monotonic at t0 */
	long long end;			/* monotonic ns of a duration's end, or 0 */
	atomic_int over;		/* the duration is over */
	atomic_long remaining;		/* messages not given to a session */
	atomic_long next_msg;		/* index of the next message */
	atomic_long next_session;	/* index of the next session's post time */
	atomic_long messages, sessions, failed_sessions, failed_messages;
	pthread_mutex_t lock;		/* first_error */
};

/* Give a session up to want messages; 0 when none are left. */
static long
take(struct shared *sh, long want)
{
	long cur = atomic_load(&sh->remaining), k;

	while (cur > 0) {
		k = cur < want ? cur : want;
		if (atomic_compare_exchange_weak(&sh->remaining, &cur,
		    cur - k))
			return k;
	}
	return 0;
}

/* A session failed; lost messages were given to it and not posted. */
static void
session_failed(struct shared *sh, const char *err, long lost)
{
	atomic_fetch_add(&sh->failed_sessions, 1);
	atomic_fetch_add(&sh->failed_messages, lost);
	pthread_mutex_lock(&sh->lock);
	if (sh->res->first_error[0] == '\0')
		strlcpy(sh->res->first_error, err,
		    sizeof(sh->res->first_error));
	pthread_mutex_unlock(&sh->lock);
}

/* Message idx's due time with a rate (monotonic ns). */
static long long
due_ns(const struct shared *sh, long idx)
{
	return sh->t0 + (long long)((double)idx * 1e9 / sh->cfg->rate);
}

/*
 * The index of the next message, or -1 once a duration is over: with a
 * rate, when the message would be due at or after its end (so exactly
 * rate x duration are posted, however late); without, when it is past.
 */
static long
claim(struct shared *sh)
{
	long idx;
	int past;

	if (atomic_load(&sh->over))
		return -1;
	idx = atomic_fetch_add(&sh->next_msg, 1);
	if (sh->end == 0)
		return idx;
	past = sh->cfg->rate > 0 ? due_ns(sh, idx) >= sh->end :
	    bench_now_ns() >= sh->end;
	if (!past)
		return idx;
	atomic_store(&sh->over, 1);
	atomic_store(&sh->remaining, 0);	/* no new session either */
	return -1;
}

/* With a rate, sleep until message idx is due: its due time; without,
   now (where its response time begins). */
static long long
pace(const struct shared *sh, long idx)
{
	long long due;
	struct timespec ts;

	if (sh->cfg->rate <= 0)
		return bench_now_ns();
	due = due_ns(sh, idx);
	ts.tv_sec = (time_t)(due / 1000000000LL);
	ts.tv_nsec = (long)(due % 1000000000LL);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
	return due;
}

/* The command that opens message idx's text: DATA, or an SMTP envelope
   (already sent when pipelined). */
static int
open_text(struct shared *sh, struct mpp_client *c, int first, char *err,
    size_t errsz)
{
	const struct bench_load_cfg *cfg = sh->cfg;
	char env[BENCH_SMTP_CMDS_MAX];
	struct iovec iov;

	switch (cfg->proto) {
	case BENCH_MPP:
		return bench_net_step(c, "DATA", NULL, 354, err, errsz);
	case BENCH_SMTP:
		return bench_smtp_envelope_steps(c, cfg->mail_from,
		    cfg->msg->rcpt, err, errsz);
	case BENCH_SMTP_PIPELINED:
		if (!first)
			return 0;
		iov.iov_base = env;
		iov.iov_len = bench_smtp_envelope(cfg->mail_from,
		    cfg->msg->rcpt, env, sizeof(env));
		if (bench_net_send_raw(c, &iov, 1, err, errsz) == -1)
			return -1;
		return bench_smtp_envelope_replies(c, err, errsz);
	}
	return -1;
}

/*
 * The text of message idx and its 250 (opened by open_text); its latency
 * and response time (from due, monotonic) in ms. Pipelined with more to
 * come, the next envelope goes out behind the text, and its replies are
 * read after the 250.
 */
static int
post_one(struct shared *sh, struct mpp_client *c, long idx, long long due,
    int first, int more, double ms[2], char *err, size_t errsz)
{
	static char dot[] = ".\r\n";
	const struct bench_load_cfg *cfg = sh->cfg;
	const struct bench_msg *m = cfg->msg;
	struct bench_load_result *res = sh->res;
	char head[BENCH_MSG_HEAD_MAX], env[BENCH_SMTP_CMDS_MAX];
	int pipe_next = more && cfg->proto == BENCH_SMTP_PIPELINED;
	struct iovec iov[4];
	long long t, ok;

	if (open_text(sh, c, first, err, errsz) == -1)
		return -1;
	iov[0].iov_base = head;
	iov[0].iov_len = bench_msg_head(m, cfg->first_seq +
	    (unsigned long)idx, head, sizeof(head));
	iov[1].iov_base = m->body;
	iov[1].iov_len = m->body_len;
	iov[2].iov_base = dot;
	iov[2].iov_len = sizeof(dot) - 1;
	iov[3].iov_base = env;
	iov[3].iov_len = pipe_next ? bench_smtp_envelope(cfg->mail_from,
	    m->rcpt, env, sizeof(env)) : 0;
	if (bench_net_send_raw(c, iov, 4, err, errsz) == -1)
		return -1;
	t = bench_now_ns();
	res->sent_wall_ns[idx] = t + sh->wall_off;
	if (bench_net_expect(c, 250, "message text", err, errsz) == -1)
		return -1;
	ok = bench_now_ns();
	res->ok_wall_ns[idx] = ok + sh->wall_off;
	res->due_wall_ns[idx] = due + sh->wall_off;
	ms[0] = (double)(ok - t) / 1e6;
	ms[1] = (double)(ok - due) / 1e6;
	return pipe_next ? bench_smtp_envelope_replies(c, err, errsz) : 0;
}

static int
login(struct shared *sh, struct mpp_client *c, char *err, size_t errsz)
{
	const struct bench_load_cfg *cfg = sh->cfg;

	if (cfg->proto == BENCH_MPP)
		return bench_net_login(c, cfg->host, cfg->port, cfg->user,
		    cfg->password, err, errsz);
	return bench_smtp_login(c, cfg->host, cfg->port, cfg->helo, cfg->user,
	    cfg->password, err, errsz);
}

/*
 * One session posting up to k messages (fewer when a duration ends it).
 * Pipelined, the next message is claimed before this one's text goes
 * out, so that its envelope is sent only for a message that will be.
 */
static void
run_session(struct shared *sh, struct mpp_client *c, long k)
{
	char err[BENCH_ERR_MAX];
	long long start = bench_now_ns(), due;
	long j, idx, next, n;
	int ahead = sh->cfg->proto == BENCH_SMTP_PIPELINED;
	double ms[2];

	if ((idx = claim(sh)) == -1)
		return;
	if (login(sh, c, err, sizeof(err)) == -1) {
		session_failed(sh, err, k);
		return;
	}
	for (j = 0; j < k && idx != -1; j++) {
		due = pace(sh, idx);
		next = j + 1 < k && ahead ? claim(sh) : -1;
		if (post_one(sh, c, idx, due, j == 0, next != -1, ms, err,
		    sizeof(err)) == -1) {
			session_failed(sh, err, k - j);
			return;
		}
		n = atomic_fetch_add(&sh->messages, 1);
		sh->res->lat_ms[n] = ms[0];
		sh->res->resp_ms[n] = ms[1];
		if (j == 0)
			sh->res->post_ms[atomic_fetch_add(&sh->next_session,
			    1)] = (double)(bench_now_ns() - start) / 1e6;
		if (!ahead)
			next = j + 1 < k ? claim(sh) : -1;
		idx = next;
	}
	if (bench_net_quit(c, err, sizeof(err)) == -1) {
		session_failed(sh, err, 0);
		return;
	}
	atomic_fetch_add(&sh->sessions, 1);
}

static void *
worker(void *arg)
{
	struct shared *sh = arg;
	struct mpp_client c;
	long k;

	mpp_client_init(&c, sh->cfg->timeout);
	while ((k = take(sh, sh->cfg->per_session)) > 0)
		run_session(sh, &c, k);
	mpp_client_close(&c);
	return NULL;
}

/* Allocate the result arrays for total messages. */
static int
result_alloc(struct bench_load_result *res, long total)
{
	size_t n = (size_t)total;

	memset(res, 0, sizeof(*res));
	/* Large arrays are mapped, not touched: a duration's generous
	   bound costs only the pages its messages fill. */
	res->lat_ms = calloc(n, sizeof(*res->lat_ms));
	res->resp_ms = calloc(n, sizeof(*res->resp_ms));
	res->post_ms = calloc(n, sizeof(*res->post_ms));
	res->sent_wall_ns = calloc(n, sizeof(*res->sent_wall_ns));
	res->ok_wall_ns = calloc(n, sizeof(*res->ok_wall_ns));
	res->due_wall_ns = calloc(n, sizeof(*res->due_wall_ns));
	if (res->lat_ms == NULL || res->resp_ms == NULL ||
	    res->post_ms == NULL || res->sent_wall_ns == NULL ||
	    res->ok_wall_ns == NULL || res->due_wall_ns == NULL) {
		bench_load_free(res);
		return -1;
	}
	return 0;
}

int
bench_load_run(const struct bench_load_cfg *cfg,
    struct bench_load_result *res)
{
	struct shared sh;
	pthread_t *tids;
	int i, started = 0, rc = 0;

	if (cfg->total <= 0 || cfg->concurrency <= 0 ||
	    cfg->per_session <= 0) {
		errno = EINVAL;
		return -1;
	}
	if (result_alloc(res, cfg->total) == -1)
		return -1;
	if ((tids = calloc((size_t)cfg->concurrency, sizeof(*tids))) == NULL) {
		bench_load_free(res);
		return -1;
	}
	memset(&sh, 0, sizeof(sh));
	sh.cfg = cfg;
	sh.res = res;
	atomic_init(&sh.remaining, cfg->total);
	pthread_mutex_init(&sh.lock, NULL);
	sh.t0 = bench_now_ns();
	sh.wall_off = bench_wall_ns() - sh.t0;
	if (cfg->duration > 0)
		sh.end = sh.t0 + (long long)(cfg->duration * 1e9);
	for (i = 0; i < cfg->concurrency; i++) {
		if ((errno = pthread_create(&tids[i], NULL, worker, &sh)) != 0) {
			rc = -1;
			atomic_store(&sh.remaining, 0);	/* stop the others */
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	res->elapsed_s = (double)(bench_now_ns() - sh.t0) / 1e9;
	res->messages = atomic_load(&sh.messages);
	res->sessions = atomic_load(&sh.sessions);
	res->failed_sessions = atomic_load(&sh.failed_sessions);
	res->failed_messages = atomic_load(&sh.failed_messages);
	res->npost = atomic_load(&sh.next_session);
	pthread_mutex_destroy(&sh.lock);
	free(tids);
	if (rc == -1)
		bench_load_free(res);
	return rc;
}

void
bench_load_free(struct bench_load_result *res)
{
	free(res->lat_ms);
	free(res->resp_ms);
	free(res->post_ms);
	free(res->sent_wall_ns);
	free(res->ok_wall_ns);
	free(res->due_wall_ns);
	res->lat_ms = res->resp_ms = res->post_ms = NULL;
	res->sent_wall_ns = res->ok_wall_ns = res->due_wall_ns = NULL;
}
