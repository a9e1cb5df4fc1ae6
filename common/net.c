/*
 * net — see net.h.
 *
 * Names are resolved by getaddrinfo() in a thread of its own: the call
 * cannot be interrupted, and a dead DNS server would otherwise hold the
 * caller for the resolver's own timeouts, past any deadline. When we stop
 * waiting, the lookup runs on; it and we each hold a reference to the
 * request, and whoever lets go last frees it, so abandoning it is safe.
 * A waiter that gets an answer takes the address list out of the request.
 * (getaddrinfo_a() would do the same, but its threads are invisible to
 * ThreadSanitizer and it is glibc's alone.) Literal addresses need no
 * thread. Abandoned lookups are bounded by their callers: a caller waits
 * for one lookup at a time, so it leaves at most one behind per deadline
 * (an auth worker one per auth_timeout, a delivery thread one per
 * delivery_timeout, mppsend one in all), and each ends with the
 * resolver's own timeout.
 *
 * Reads and writes try first and wait only when the socket is not ready;
 * TLS says which readiness it needs (it may read in order to write, and
 * the reverse).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "net.h"
#include "tls_client.h"
#include "util.h"

/* Longest single poll(): a clock jump cannot make a wait endless. */
#define NET_POLL_MAX_MS 60000

/* One lookup, shared by the waiting caller and the resolving thread. */
struct resolve {
	pthread_mutex_t lock;
	pthread_cond_t cv;		/* signalled when done */
	int refs;			/* under lock */
	int done;
	int err;			/* getaddrinfo() result */
	int sys;			/* errno after it, for EAI_SYSTEM */
	struct addrinfo *res;		/* until a waiter takes it */
	char serv[8];
	char host[];
};

long long
net_deadline(long long ms)
{
	return util_now_ms() + ms;
}

int
net_wait(int fd, short events, long long deadline)
{
	struct pollfd p;
	long long left;
	int r;

	for (;;) {
		left = deadline - util_now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		p.fd = fd;
		p.events = events;
		p.revents = 0;
		r = poll(&p, 1, left > NET_POLL_MAX_MS ? NET_POLL_MAX_MS :
		    (int)left);
		if (r > 0)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
	}
}

const char *
net_reason(int err)
{
	const char *s = strerrordesc_np(err);

	return s != NULL ? s : "Unknown error";
}

int
net_is_loopback(const struct sockaddr *sa, socklen_t len)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	const unsigned char *b;

	if (sa->sa_family == AF_INET && len >= sizeof(*sin))
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family != AF_INET6 || len < sizeof(*sin6))
		return 0;
	if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
		return 1;
	b = sin6->sin6_addr.s6_addr;
	return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && b[12] == 127;
}

int
net_text_is_loopback(const char *addr)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	sin.sin_family = AF_INET;
	sin6.sin6_family = AF_INET6;
	if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1)
		return net_is_loopback((struct sockaddr *)&sin, sizeof(sin));
	if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1)
		return net_is_loopback((struct sockaddr *)&sin6, sizeof(sin6));
	return 0;
}

void
net_addr_text(const struct sockaddr *sa, socklen_t salen, char *out,
    size_t outsz)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		strlcpy(out, "?", outsz);
		return;
	}
	util_format(out, outsz, sa->sa_family == AF_INET6 ? "[%s]:%s" :
	    "%s:%s", host, serv);
}

/* ---- resolving ---- */

static void
resolve_hints(struct addrinfo *h, int flags)
{
	memset(h, 0, sizeof(*h));
	h->ai_family = AF_UNSPEC;
	h->ai_socktype = SOCK_STREAM;
	h->ai_flags = AI_NUMERICSERV | flags;
}

static void
resolve_release(struct resolve *r)
{
	int last;

	pthread_mutex_lock(&r->lock);
	last = --r->refs == 0;
	pthread_mutex_unlock(&r->lock);
	if (!last)
		return;
	if (r->res != NULL)
		freeaddrinfo(r->res);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static void *
resolve_main(void *arg)
{
	struct resolve *r = arg;
	struct addrinfo hints, *res = NULL;
	int e, sys;

	resolve_hints(&hints, 0);
	e = getaddrinfo(r->host, r->serv, &hints, &res);
	sys = errno;
	pthread_mutex_lock(&r->lock);
	r->err = e;
	r->sys = sys;
	r->res = e == 0 ? res : NULL;
	r->done = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->lock);
	resolve_release(r);
	return NULL;
}

static int
resolve_init(struct resolve *r)
{
	pthread_condattr_t ca;
	int ok;

	if (pthread_condattr_init(&ca) != 0)
		return -1;
	ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
	    pthread_cond_init(&r->cv, &ca) == 0;
	pthread_condattr_destroy(&ca);
	if (!ok)
		return -1;
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		pthread_cond_destroy(&r->cv);
		return -1;
	}
	return 0;
}

/* Start looking up host; NULL with errno when no thread could start. */
static struct resolve *
resolve_start(const char *host, const char *port)
{
	pthread_attr_t attr;
	pthread_t th;
	struct resolve *r;
	size_t hl = strlen(host);
	int e = EAGAIN;

	if ((r = calloc(1, sizeof(*r) + hl + 1)) == NULL)
		return NULL;
	memcpy(r->host, host, hl + 1);
	if (strlcpy(r->serv, port, sizeof(r->serv)) >= sizeof(r->serv) ||
	    resolve_init(r) == -1) {
		free(r);
		errno = EINVAL;
		return NULL;
	}
	r->refs = 2;
	if (pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		e = pthread_create(&th, &attr, resolve_main, r);
		pthread_attr_destroy(&attr);
	}
	if (e != 0) {
		r->refs = 1;
		resolve_release(r);
		errno = e;
		return NULL;
	}
	return r;
}

/*
 * Wait for the lookup until the deadline. 0 with *res taken out of r;
 * -1 with *gai (and errno) as net_resolve() says.
 */
static int
resolve_wait(struct resolve *r, long long deadline, struct addrinfo **res,
    int *gai)
{
	struct timespec ts;
	int rc = -1, sys = ETIMEDOUT;

	ts.tv_sec = deadline / 1000;
	ts.tv_nsec = (deadline % 1000) * 1000000;
	pthread_mutex_lock(&r->lock);
	while (!r->done)
		if (pthread_cond_timedwait(&r->cv, &r->lock, &ts) == ETIMEDOUT)
			break;
	if (r->done) {
		*gai = r->err;
		sys = r->sys;
		*res = r->res;
		r->res = NULL;
		rc = r->err == 0 ? 0 : -1;
	}
	pthread_mutex_unlock(&r->lock);
	if (rc == -1)
		errno = sys;
	return rc;
}

int
net_resolve(const char *host, const char *port, long long deadline,
    struct addrinfo **res, int *gai)
{
	struct addrinfo hints;
	struct resolve *r;
	int rc;

	*res = NULL;
	*gai = 0;
	resolve_hints(&hints, AI_NUMERICHOST);
	if (getaddrinfo(host, port, &hints, res) == 0)
		return 0;
	*res = NULL;
	if ((r = resolve_start(host, port)) == NULL)
		return -1;
	rc = resolve_wait(r, deadline, res, gai);
	resolve_release(r);
	return rc;
}

/* ---- connecting ---- */

/* Connect to one address, waiting until until; fd, or -1 with errno. */
static int
connect_one(const struct addrinfo *ai, long long until)
{
	socklen_t sl = sizeof(int);
	int fd, soerr = 0, saved;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	/* EINTR: the connection goes on in the background, as EINPROGRESS */
	if (errno != EINPROGRESS && errno != EINTR)
		goto fail;
	if (net_wait(fd, POLLOUT, until) == -1)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		goto fail;
	if (soerr == 0)
		return fd;
	errno = soerr;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* Note a failed address in tried->list (a cut list names the first). */
static void
tried_note(struct net_tried *t)
{
	size_t len = strlen(t->list);

	util_format(t->list + len, sizeof(t->list) - len, "%s%s: %s",
	    len > 0 ? "; " : "", t->addr, net_reason(t->err));
}

int
net_connect(const struct addrinfo *res, long long deadline,
    struct net_tried *tried)
{
	const struct addrinfo *ai;
	long long now;
	int fd, left = 0;

	for (ai = res; ai != NULL; ai = ai->ai_next)
		left++;
	for (ai = res; ai != NULL; ai = ai->ai_next, left--) {
		net_addr_text(ai->ai_addr, ai->ai_addrlen, tried->addr,
		    sizeof(tried->addr));
		tried->n++;
		now = util_now_ms();
		if (now >= deadline) {
			/* Resolving took the time: say so of this address. */
			tried->err = ETIMEDOUT;
			tried_note(tried);
			break;
		}
		fd = connect_one(ai, now + (deadline - now) / left);
		if (fd != -1)
			return fd;
		tried->err = errno;
		tried_note(tried);
	}
	errno = tried->err != 0 ? tried->err : EADDRNOTAVAIL;
	return -1;
}

/* ---- the connection ---- */

void
net_conn_init(struct net_conn *c)
{
	c->fd = -1;
	c->eof = 0;
	c->tls = NULL;
	c->in_off = c->in_len = 0;
}

void
net_conn_attach(struct net_conn *c, int fd)
{
	int fl;

	net_conn_close(c);
	/* Waits are poll()s; a blocking send could outlast the deadline. */
	if ((fl = fcntl(fd, F_GETFL)) != -1)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	c->fd = fd;
}

int
net_conn_open(struct net_conn *c, const char *host, const char *port,
    long long deadline, struct net_tried *tried)
{
	struct addrinfo *res;
	int fd, saved;

	net_conn_close(c);
	memset(tried, 0, sizeof(*tried));
	if (net_resolve(host, port, deadline, &res, &tried->gai) == -1) {
		tried->err = errno;
		return -1;
	}
	fd = net_connect(res, deadline, tried);
	saved = errno;
	freeaddrinfo(res);
	if (fd == -1) {
		errno = saved;
		return -1;
	}
	c->fd = fd;
	return 0;
}

void
net_conn_close(struct net_conn *c)
{
	tls_client_free(c->tls);
	c->tls = NULL;
	if (c->fd != -1)
		close(c->fd);
	net_conn_init(c);
}

/* Read some bytes: the count, 0 at the end, or -1 (EAGAIN: *want). */
static ssize_t
conn_recv(struct net_conn *c, char *buf, size_t len, short *want)
{
	ssize_t n;

	if (c->tls != NULL)
		return tls_client_read(c->tls, buf, len, want);
	*want = POLLIN;
	n = recv(c->fd, buf, len, 0);
	if (n == -1 && errno == EWOULDBLOCK)
		errno = EAGAIN;
	return n;
}

/* Write some bytes: the count, or -1 (EAGAIN: wait for *want). */
static ssize_t
conn_send(struct net_conn *c, const char *buf, size_t len, short *want)
{
	ssize_t n;

	if (c->tls != NULL)
		return tls_client_write(c->tls, buf, len, want);
	*want = POLLOUT;
	n = send(c->fd, buf, len, MSG_NOSIGNAL);
	if (n == -1 && errno == EWOULDBLOCK)
		errno = EAGAIN;
	return n;
}

ssize_t
net_conn_fill(struct net_conn *c, long long deadline)
{
	ssize_t n;
	short want = POLLIN;

	if (c->fd == -1) {
		errno = ENOTCONN;
		return -1;
	}
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len == sizeof(c->in)) {
		errno = ENOBUFS;
		return -1;
	}
	for (;;) {
		n = conn_recv(c, c->in + c->in_len, sizeof(c->in) - c->in_len,
		    &want);
		if (n > 0) {
			c->in_len += (size_t)n;
			return n;
		}
		if (n == 0) {
			c->eof = 1;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || net_wait(c->fd, want, deadline) == -1)
			return -1;
	}
}

/*
 * Take bytes up to the next LF out of the buffer into line[*len..]:
 * 1 when the LF was found, 0 when more is needed. *cut when bytes did
 * not fit.
 */
static int
line_take(struct net_conn *c, char *line, size_t size, size_t *len,
    int *cut)
{
	const char *p = c->in + c->in_off;
	size_t avail = c->in_len - c->in_off, n, room;
	const char *lf = memchr(p, '\n', avail);

	n = lf != NULL ? (size_t)(lf - p) : avail;
	room = size - 1 - *len;
	if (n > room) {
		*cut = 1;
		memcpy(line + *len, p, room);
		*len += room;
	} else {
		memcpy(line + *len, p, n);
		*len += n;
	}
	c->in_off += lf != NULL ? n + 1 : n;
	return lf != NULL;
}

int
net_conn_read_line(struct net_conn *c, char *line, size_t size,
    size_t *lenp, enum net_long policy, long long deadline)
{
	size_t len = 0;
	int cut = 0;
	ssize_t n;

	if (util_now_ms() >= deadline) {
		errno = ETIMEDOUT;
		return -1;
	}
	while (!line_take(c, line, size, &len, &cut)) {
		if (cut && policy == NET_LONG_FAIL) {
			errno = EPROTO;
			return -1;
		}
		if ((n = net_conn_fill(c, deadline)) <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			return -1;
		}
	}
	if (cut && policy == NET_LONG_FAIL) {
		errno = EPROTO;
		return -1;
	}
	if (!cut && len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	*lenp = len;
	return 0;
}

int
net_conn_write(struct net_conn *c, const void *buf, size_t len,
    long long deadline)
{
	const char *p = buf;
	ssize_t n;
	short want = POLLOUT;

	if (c->fd == -1) {
		errno = ENOTCONN;
		return -1;
	}
	while (len > 0) {
		n = conn_send(c, p, len, &want);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != EAGAIN)
			return -1;
		if (net_wait(c->fd, want, deadline) == -1)
			return -1;
	}
	return 0;
}

/* Drop sent bytes from the front of the vector; the new start index. */
static int
iov_advance(struct iovec *iov, int i, int n, size_t sent)
{
	while (i < n && sent >= iov[i].iov_len) {
		sent -= iov[i].iov_len;
		i++;
	}
	if (i < n) {
		iov[i].iov_base = (char *)iov[i].iov_base + sent;
		iov[i].iov_len -= sent;
	}
	return i;
}

int
net_conn_writev(struct net_conn *c, struct iovec *iov, int n,
    long long deadline)
{
	struct msghdr mh;
	ssize_t k;
	int i;

	if (c->fd == -1 || c->tls != NULL) {
		/* TLS takes one buffer at a time. */
		for (i = 0; i < n; i++)
			if (net_conn_write(c, iov[i].iov_base, iov[i].iov_len,
			    deadline) == -1)
				return -1;
		return 0;
	}
	for (i = iov_advance(iov, 0, n, 0); i < n;) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov + i;
		mh.msg_iovlen = (size_t)(n - i);
		k = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (k == -1 && errno == EINTR)
			continue;
		if (k == -1 && (errno != EAGAIN && errno != EWOULDBLOCK))
			return -1;
		if (k == -1 && net_wait(c->fd, POLLOUT, deadline) == -1)
			return -1;
		if (k > 0)
			i = iov_advance(iov, i, n, (size_t)k);
	}
	return 0;
}

/* ---- TLS ---- */

int
net_conn_start_tls(struct net_conn *c, struct tls_client_ctx *ctx,
    const char *host, long long deadline, char *why, size_t whysz)
{
	short want;

	if (c->fd == -1 || c->tls != NULL || c->in_off < c->in_len) {
		util_format(why, whysz, "%s", c->fd == -1 ? "not connected" :
		    c->tls != NULL ? "TLS already on" :
		    "clear text received before the handshake");
		errno = c->fd == -1 ? ENOTCONN : EPROTO;
		return -1;
	}
	if ((c->tls = tls_client_new(ctx, c->fd, host, why, whysz)) == NULL) {
		errno = EPROTO;
		return -1;
	}
	while (tls_client_handshake(c->tls, &want) == -1) {
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			util_format(why, whysz, "%s", tls_client_error(c->tls));
			errno = EPROTO;
			return -1;
		}
		if (net_wait(c->fd, want, deadline) == -1) {
			util_format(why, whysz, "%s", net_reason(errno));
			return -1;
		}
	}
	return 0;
}

const char *
net_conn_tls_error(const struct net_conn *c)
{
	return c->tls != NULL ? tls_client_error(c->tls) : NULL;
}

const char *
net_conn_tls_describe(const struct net_conn *c, char *buf, size_t size)
{
	if (c->tls == NULL) {
		if (size > 0)
			buf[0] = '\0';
		return buf;
	}
	return tls_client_describe(c->tls, buf, size);
}

void
net_conn_close_notify(struct net_conn *c)
{
	tls_client_close_notify(c->tls);
}
