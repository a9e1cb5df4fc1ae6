/*
 * proxy_wait — see proxy_wait.h. The socket is peeked and the parser
 * judges everything received so far from the first byte; while the
 * verdict is PROXY_MORE every byte seen belongs to the header and is
 * consumed (so a level-triggered read event does not fire again for
 * bytes already judged), and once it is PROXY_DONE exactly the header's
 * remaining bytes are. One event per connection serves both readability
 * and the deadline, re-armed with the time left, so bytes that trickle
 * in never extend it.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "proxy_wait.h"
#include "util.h"

struct waiting {
	struct proxy_wait *w;
	struct waiting *prev, *next;
	struct event *ev;
	int fd;
	int tls;
	char peer[64];
	long long deadline_ms;
	size_t have;			/* header bytes consumed */
	unsigned char buf[PROXY_HEADER_MAX];
};

struct proxy_wait {
	struct event_base *base;
	long timeout_sec;
	proxy_wait_fn fn;
	void *arg;
	struct waiting *list;
	long n;
};

static void waiting_read(evutil_socket_t fd, short what, void *arg);

struct proxy_wait *
proxy_wait_new(struct event_base *base, long timeout_sec, proxy_wait_fn fn,
    void *arg)
{
	struct proxy_wait *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->base = base;
	w->timeout_sec = timeout_sec;
	w->fn = fn;
	w->arg = arg;
	return w;
}

/* Unlink and free x; its socket is closed unless taken (x->fd == -1). */
static void
waiting_free(struct waiting *x)
{
	struct proxy_wait *w = x->w;

	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		w->list = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	w->n--;
	if (x->ev != NULL)
		event_free(x->ev);
	if (x->fd != -1)
		close(x->fd);
	free(x);
}

static void
waiting_fail(struct waiting *x, const char *why)
{
	struct proxy_wait *w = x->w;

	log_warnx("client=[%s] proxy=refused reason=\"%s\"", x->peer, why);
	waiting_free(x);
	w->fn(w->arg, -1, 0, NULL, NULL);
}

static void
waiting_done(struct waiting *x, const struct proxy_header *h)
{
	struct proxy_wait *w = x->w;
	int fd = x->fd, tls = x->tls;
	char peer[sizeof(x->peer)];

	strlcpy(peer, x->peer, sizeof(peer));
	x->fd = -1;
	waiting_free(x);
	w->fn(w->arg, fd, tls, peer, h);
}

/* Wait for more, with what is left of the time. */
static void
waiting_arm(struct waiting *x)
{
	long long left = x->deadline_ms - util_now_ms();
	struct timeval tv;

	if (left <= 0) {
		waiting_fail(x, "timeout");
		return;
	}
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	event_add(x->ev, &tv);
}

int
proxy_wait_add(struct proxy_wait *w, int fd, int tls, const char *peer)
{
	struct waiting *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return -1;
	if ((x->ev = event_new(w->base, fd, EV_READ, waiting_read,
	    x)) == NULL) {
		free(x);
		return -1;
	}
	x->w = w;
	x->fd = fd;
	x->tls = tls;
	strlcpy(x->peer, peer, sizeof(x->peer));
	x->deadline_ms = util_now_ms() + w->timeout_sec * 1000;
	x->next = w->list;
	if (x->next != NULL)
		x->next->prev = x;
	w->list = x;
	w->n++;
	waiting_arm(x);
	return 0;
}

/* How many of n peeked bytes to consume for verdict st. */
static ssize_t
to_take(enum proxy_status st, const struct proxy_header *h, size_t have,
    ssize_t n)
{
	if (st == PROXY_MORE)
		return n;
	if (st == PROXY_DONE)
		return (ssize_t)(h->len - have);
	return 0;
}

static void
waiting_read(evutil_socket_t fd, short what, void *arg)
{
	struct waiting *x = arg;
	struct proxy_header h;
	enum proxy_status st;
	ssize_t n, take;

	if (what & EV_TIMEOUT) {
		waiting_fail(x, "timeout");
		return;
	}
	assert(x->have < sizeof(x->buf));	/* else parse said BAD */
	n = recv(fd, x->buf + x->have, sizeof(x->buf) - x->have, MSG_PEEK);
	if (n <= 0) {
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			waiting_arm(x);
		else
			waiting_fail(x, n == 0 ? "closed before the header" :
			    strerror(errno));
		return;
	}
	st = proxy_parse(x->buf, x->have + (size_t)n, &h);
	take = to_take(st, &h, x->have, n);
	if (take > 0 && recv(fd, x->buf + x->have, (size_t)take, 0) != take) {
		waiting_fail(x, "short read");
		return;
	}
	x->have += (size_t)take;
	if (st == PROXY_MORE)
		waiting_arm(x);
	else if (st == PROXY_BAD)
		waiting_fail(x, h.error);
	else
		waiting_done(x, &h);
}

long
proxy_wait_count(const struct proxy_wait *w)
{
	return w->n;
}

void
proxy_wait_drop_all(struct proxy_wait *w)
{
	while (w->list != NULL)
		waiting_free(w->list);
}

void
proxy_wait_free(struct proxy_wait *w)
{
	if (w == NULL)
		return;
	proxy_wait_drop_all(w);
	free(w);
}
