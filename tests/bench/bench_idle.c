/*
 * bench_idle — see bench_idle.h. Each session is a small state machine
 * driven by epoll events: CONNECTING -> GREETING -> USER -> PASS -> IDLE,
 * or DEAD at the first unexpected event.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "bench_idle.h"
#include "bench_net.h"
#include "../../client/mpp_client.h"

#define IN_MAX		120	/* one reply line; MPP replies are short */
#define EVENTS		256
#define TICK_MS		200	/* timeout scan and watcher stop check */
#define CMD_MAX		(MPP_CLIENT_LINE_MAX + 8)

enum idle_state { IS_UNUSED, IS_CONNECTING, IS_GREETING, IS_USER, IS_PASS,
	IS_IDLE, IS_DEAD };

struct idle_sess {
	int fd;
	unsigned char state;
	unsigned char in_len;
	char in[IN_MAX];
	long long start_ns;
};

struct bench_idle {
	struct bench_idle_cfg cfg;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int ep;
	struct idle_sess *s;
	long started, settling;		/* setup bookkeeping */
	atomic_long open, failed, dropped;
	double setup_s;
	pthread_t watcher;
	int watching;
	atomic_int stop;
	pthread_mutex_t lock;		/* first_error */
	char first_error[256];
};

static void note_error(struct bench_idle *, long, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Keep the first error, naming the session. */
static void
note_error(struct bench_idle *bi, long i, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&bi->lock);
	if (bi->first_error[0] == '\0')
		(void)snprintf(bi->first_error, sizeof(bi->first_error),
		    "idle session %ld: %s", i, msg);
	pthread_mutex_unlock(&bi->lock);
}

/* Close session i; it no longer counts as set up or open. */
static void
sess_kill(struct bench_idle *bi, long i)
{
	struct idle_sess *s = &bi->s[i];

	if (s->fd != -1)
		close(s->fd);	/* close also removes it from the epoll set */
	s->fd = -1;
	s->state = IS_DEAD;
}

/* A session in setup failed. */
static void
setup_failed(struct bench_idle *bi, long i)
{
	sess_kill(bi, i);
	atomic_fetch_add(&bi->failed, 1);
	bi->settling--;
}

/* Start session i's connect. */
static void
sess_start(struct bench_idle *bi, long i)
{
	struct idle_sess *s = &bi->s[i];
	struct epoll_event ev;

	s->start_ns = bench_now_ns();
	s->in_len = 0;
	s->state = IS_CONNECTING;
	bi->settling++;
	s->fd = socket(bi->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (s->fd == -1) {
		note_error(bi, i, "socket: %s", strerror(errno));
		setup_failed(bi, i);
		return;
	}
	if (connect(s->fd, (struct sockaddr *)&bi->addr, bi->addrlen) ==
	    -1 && errno != EINPROGRESS) {
		note_error(bi, i, "connect: %s", strerror(errno));
		setup_failed(bi, i);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
	ev.data.u64 = (uint64_t)i;
	if (epoll_ctl(bi->ep, EPOLL_CTL_ADD, s->fd, &ev) == -1) {
		note_error(bi, i, "epoll_ctl: %s", strerror(errno));
		setup_failed(bi, i);
	}
}

/* Send one command line; it is short, so it goes out whole or not at all. */
static int
sess_send(struct bench_idle *bi, long i, const char *verb, const char *arg)
{
	char line[CMD_MAX];
	int n;
	ssize_t w;

	n = snprintf(line, sizeof(line), "%s %s\r\n", verb, arg);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		note_error(bi, i, "%s: argument too long", verb);
		return -1;
	}
	w = send(bi->s[i].fd, line, (size_t)n, MSG_NOSIGNAL);
	if (w != n) {
		note_error(bi, i, "%s: %s", verb, w == -1 ? strerror(errno) :
		    "short write");
		return -1;
	}
	return 0;
}

/* One complete reply line arrived in setup: check it and go on. */
static int
sess_reply(struct bench_idle *bi, long i, const char *line, size_t len)
{
	static const int want[] = { [IS_GREETING] = 220, [IS_USER] = 250,
	    [IS_PASS] = 250 };
	struct idle_sess *s = &bi->s[i];
	int code, final = 0;

	code = mpp_client_parse_reply(line, len, &final);
	if (code == -1 || s->state < IS_GREETING || s->state > IS_PASS ||
	    code != want[s->state]) {
		note_error(bi, i, "unexpected reply \"%.*s\"", (int)len, line);
		return -1;
	}
	if (!final)
		return 0;
	switch (s->state) {
	case IS_GREETING:
		s->state = IS_USER;
		return sess_send(bi, i, "USER", bi->cfg.user);
	case IS_USER:
		s->state = IS_PASS;
		return sess_send(bi, i, "PASS", bi->cfg.password);
	default:
		s->state = IS_IDLE;
		bi->settling--;
		atomic_fetch_add(&bi->open, 1);
		return 0;
	}
}

/* Read what came and handle each complete line. */
static int
sess_read(struct bench_idle *bi, long i)
{
	struct idle_sess *s = &bi->s[i];
	ssize_t n;
	char *lf;
	size_t len;

	n = read(s->fd, s->in + s->in_len, sizeof(s->in) - s->in_len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		note_error(bi, i, "%s", n == 0 ? "server closed the connection" :
		    strerror(errno));
		return -1;
	}
	s->in_len += (unsigned char)n;
	while ((lf = memchr(s->in, '\n', s->in_len)) != NULL) {
		len = (size_t)(lf - s->in);
		if (len > 0 && s->in[len - 1] == '\r')
			len--;
		if (sess_reply(bi, i, s->in, len) == -1)
			return -1;
		len = (size_t)(lf + 1 - s->in);
		memmove(s->in, lf + 1, s->in_len - len);
		s->in_len -= (unsigned char)len;
		if (s->state == IS_IDLE && s->in_len > 0) {
			note_error(bi, i, "server spoke after PASS");
			return -1;
		}
	}
	if (s->in_len == sizeof(s->in)) {
		note_error(bi, i, "reply line too long");
		return -1;
	}
	return 0;
}

/* An event on a session being set up. */
static void
setup_event(struct bench_idle *bi, long i, uint32_t events)
{
	struct idle_sess *s = &bi->s[i];
	struct epoll_event ev;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (s->state == IS_CONNECTING) {
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
			soerr = errno;
		if (soerr != 0) {
			note_error(bi, i, "connect: %s", strerror(soerr));
			setup_failed(bi, i);
			return;
		}
		s->state = IS_GREETING;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.u64 = (uint64_t)i;
		(void)epoll_ctl(bi->ep, EPOLL_CTL_MOD, s->fd, &ev);
		if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
			return;
	}
	if (sess_read(bi, i) == -1)
		setup_failed(bi, i);
}

/* Fail every session whose setup took longer than the timeout. */
static void
setup_expire(struct bench_idle *bi)
{
	long long limit = bench_now_ns() - (long long)bi->cfg.timeout *
	    1000000000LL;
	long i;

	for (i = 0; i < bi->started; i++) {
		if (bi->s[i].state >= IS_CONNECTING &&
		    bi->s[i].state <= IS_PASS && bi->s[i].start_ns < limit) {
			note_error(bi, i, "no login within %d s",
			    bi->cfg.timeout);
			setup_failed(bi, i);
		}
	}
}

/* Bring every session up (or down), at most cfg.inflight at a time. */
static void
setup_all(struct bench_idle *bi)
{
	struct epoll_event evs[EVENTS];
	long long t0 = bench_now_ns(), last_scan = t0, now;
	int n, k;

	while (bi->started < bi->cfg.count || bi->settling > 0) {
		while (bi->settling < bi->cfg.inflight &&
		    bi->started < bi->cfg.count)
			sess_start(bi, bi->started++);
		n = epoll_wait(bi->ep, evs, EVENTS, TICK_MS);
		for (k = 0; k < n; k++) {
			long i = (long)evs[k].data.u64;

			if (bi->s[i].state >= IS_CONNECTING &&
			    bi->s[i].state <= IS_PASS)
				setup_event(bi, i, evs[k].events);
		}
		now = bench_now_ns();
		if (now - last_scan > TICK_MS * 1000000LL) {
			setup_expire(bi);
			last_scan = now;
		}
	}
	bi->setup_s = (double)(bench_now_ns() - t0) / 1e9;
}

/* Watcher: an idle session that becomes readable was closed or spoken to. */
static void *
watch(void *arg)
{
	struct bench_idle *bi = arg;
	struct epoll_event evs[EVENTS];
	int n, k;

	while (!atomic_load(&bi->stop)) {
		n = epoll_wait(bi->ep, evs, EVENTS, TICK_MS);
		for (k = 0; k < n; k++) {
			long i = (long)evs[k].data.u64;

			if (bi->s[i].state != IS_IDLE)
				continue;
			note_error(bi, i, "dropped by the server while idle");
			sess_kill(bi, i);
			atomic_fetch_sub(&bi->open, 1);
			atomic_fetch_add(&bi->dropped, 1);
		}
	}
	return NULL;
}

/* Resolve host and port to the first address. */
static int
resolve(struct bench_idle *bi, char *err, size_t errsz)
{
	struct addrinfo hints, *res;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(bi->cfg.host, bi->cfg.port, &hints, &res)) != 0) {
		(void)snprintf(err, errsz, "cannot resolve %s: %s",
		    bi->cfg.host, gai_strerror(rc));
		return -1;
	}
	memcpy(&bi->addr, res->ai_addr, res->ai_addrlen);
	bi->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

struct bench_idle *
bench_idle_open(const struct bench_idle_cfg *cfg, char *err, size_t errsz)
{
	struct bench_idle *bi;
	long i;

	if ((bi = calloc(1, sizeof(*bi))) == NULL)
		goto nomem;
	bi->cfg = *cfg;
	if (bi->cfg.inflight < 1)
		bi->cfg.inflight = 1;
	bi->ep = -1;
	pthread_mutex_init(&bi->lock, NULL);
	if ((bi->s = calloc((size_t)cfg->count, sizeof(*bi->s))) == NULL)
		goto nomem;
	for (i = 0; i < cfg->count; i++)
		bi->s[i].fd = -1;
	if (resolve(bi, err, errsz) == -1)
		goto fail;
	if ((bi->ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		(void)snprintf(err, errsz, "epoll_create1: %s",
		    strerror(errno));
		goto fail;
	}
	setup_all(bi);
	if (pthread_create(&bi->watcher, NULL, watch, bi) == 0)
		bi->watching = 1;
	return bi;
nomem:
	(void)snprintf(err, errsz, "out of memory");
fail:
	bench_idle_close(bi);
	return NULL;
}

void
bench_idle_stats(struct bench_idle *bi, struct bench_idle_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->wanted = bi->cfg.count;
	st->open = atomic_load(&bi->open);
	st->failed = atomic_load(&bi->failed);
	st->dropped = atomic_load(&bi->dropped);
	st->setup_s = bi->setup_s;
	pthread_mutex_lock(&bi->lock);
	strlcpy(st->first_error, bi->first_error, sizeof(st->first_error));
	pthread_mutex_unlock(&bi->lock);
}

void
bench_idle_close(struct bench_idle *bi)
{
	long i;

	if (bi == NULL)
		return;
	if (bi->watching) {
		atomic_store(&bi->stop, 1);
		pthread_join(bi->watcher, NULL);
	}
	for (i = 0; bi->s != NULL && i < bi->cfg.count; i++)
		if (bi->s[i].fd != -1)
			close(bi->s[i].fd);
	if (bi->ep != -1)
		close(bi->ep);
	pthread_mutex_destroy(&bi->lock);
	free(bi->s);
	free(bi);
}
