/*
 * auth_net — deadline-bounded TCP client for the remote password checks.
 *
 * Everything here measures against one absolute deadline on the monotonic
 * clock, so no sequence of slow steps (a resolver that hangs, an address
 * that drops SYNs, a server that trickles one byte at a time) can make a
 * check outlast its timeout. Sockets are non-blocking and every wait is a
 * poll() for the time that is left.
 *
 * Names are resolved by getaddrinfo() in a thread of its own: the call
 * cannot be interrupted, and a dead DNS server would otherwise hold the
 * worker for the resolver's own timeouts. When we stop waiting, the lookup
 * runs on; it and we each hold a reference to the request, and whoever
 * lets go last frees it, so abandoning it is safe. (getaddrinfo_a() would
 * do the same, but its threads are invisible to ThreadSanitizer and it is
 * glibc's alone.) Numeric addresses need no thread. Abandoned lookups
 * are bounded by the auth worker pool: each worker starts at most one per
 * auth_timeout, and each ends with the resolver's own timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth_net.h"

/* One lookup, shared by the waiting check and the resolving thread. */
struct resolve {
	pthread_mutex_t lock;
	pthread_cond_t cv;		/* signalled when done */
	int refs;			/* under lock */
	int done;
	int err;			/* getaddrinfo() result */
	struct addrinfo *res;
	char serv[8];
	char host[];
};

long long
auth_net_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
auth_net_clean(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

/*
 * Wait until fd is ready for events or the deadline passes (-1, ETIMEDOUT).
 * An error or hangup counts as ready: the next call on fd reports it.
 */
static int
wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	long long left;
	int r;

	for (;;) {
		left = deadline - auth_net_now();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
	}
}

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
	if (errno != EINPROGRESS)
		goto fail;
	if (wait_fd(fd, POLLOUT, until) == -1)
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

/*
 * Try each address in turn. Each but the last gets an equal share of the
 * time left, so an address that drops packets cannot use up the time of
 * the ones after it. errno is the last address's error.
 */
static int
connect_list(const struct addrinfo *res, long long deadline)
{
	const struct addrinfo *ai;
	long long now;
	int fd, left = 0;

	for (ai = res; ai != NULL; ai = ai->ai_next)
		left++;
	for (ai = res; ai != NULL; ai = ai->ai_next, left--) {
		now = auth_net_now();
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		fd = connect_one(ai, now + (deadline - now) / left);
		if (fd != -1)
			return fd;
	}
	return -1;
}

void
auth_net_why(const struct auth_net *n, int err, char *why, size_t whysz)
{
	char eb[128];

	switch (err) {
	case ETIMEDOUT:
		snprintf(why, whysz, "timeout after %ds", n->timeout_sec);
		break;
	case EPROTO:
		snprintf(why, whysz, "protocol error: reply line too long "
		    "or holds a NUL");
		break;
	case ECONNRESET:
	case EPIPE:
		snprintf(why, whysz, "connection closed by server");
		break;
	case ECONNREFUSED:
		snprintf(why, whysz, "connection refused");
		break;
	default:
		snprintf(why, whysz, "%s", strerror_r(err, eb, sizeof(eb)));
		break;
	}
}

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
	int e;

	resolve_hints(&hints, 0);
	e = getaddrinfo(r->host, r->serv, &hints, &res);
	pthread_mutex_lock(&r->lock);
	r->err = e;
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

/* Start looking up host; NULL when no thread could be started. */
static struct resolve *
resolve_start(const char *host, int port)
{
	pthread_attr_t attr;
	pthread_t th;
	struct resolve *r;
	size_t hl = strlen(host);
	int started;

	if ((r = calloc(1, sizeof(*r) + hl + 1)) == NULL)
		return NULL;
	memcpy(r->host, host, hl + 1);
	snprintf(r->serv, sizeof(r->serv), "%d", port & 0xffff);
	r->refs = 2;
	if (resolve_init(r) == -1) {
		free(r);
		return NULL;
	}
	if (pthread_attr_init(&attr) != 0)
		started = 0;
	else {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&th, &attr, resolve_main, r) == 0;
		pthread_attr_destroy(&attr);
	}
	if (!started) {
		r->refs = 1;
		resolve_release(r);
		return NULL;
	}
	return r;
}

/*
 * Wait for the lookup until the deadline: its getaddrinfo() code, or
 * EAI_AGAIN with *timedout set. *res stays valid while we hold r.
 */
static int
resolve_wait(struct resolve *r, long long deadline, struct addrinfo **res,
    int *timedout)
{
	struct timespec ts;
	int e;

	ts.tv_sec = deadline / 1000;
	ts.tv_nsec = (deadline % 1000) * 1000000;
	pthread_mutex_lock(&r->lock);
	while (!r->done)
		if (pthread_cond_timedwait(&r->cv, &r->lock, &ts) == ETIMEDOUT)
			break;
	*timedout = !r->done;
	e = r->done ? r->err : EAI_AGAIN;
	*res = r->res;
	pthread_mutex_unlock(&r->lock);
	return e;
}

/*
 * Resolve host, then connect: a numeric address at once, a name through
 * a resolving thread. n->fd is set; -1 with why on failure.
 */
static int
resolve_connect(struct auth_net *n, const char *host, int port, char *why,
    size_t whysz)
{
	struct addrinfo hints, *res;
	struct resolve *r;
	char serv[8];
	int e, timedout = 0;

	snprintf(serv, sizeof(serv), "%d", port & 0xffff);
	resolve_hints(&hints, AI_NUMERICHOST);
	if (getaddrinfo(host, serv, &hints, &res) == 0) {
		if ((n->fd = connect_list(res, n->deadline)) == -1)
			auth_net_why(n, errno, why, whysz);
		freeaddrinfo(res);
		return n->fd == -1 ? -1 : 0;
	}
	if ((r = resolve_start(host, port)) == NULL) {
		snprintf(why, whysz, "cannot start name lookup");
		return -1;
	}
	e = resolve_wait(r, n->deadline, &res, &timedout);
	if (timedout)
		snprintf(why, whysz, "timeout after %ds resolving host",
		    n->timeout_sec);
	else if (e != 0)
		snprintf(why, whysz, "cannot resolve host");
	else if ((n->fd = connect_list(res, n->deadline)) == -1)
		auth_net_why(n, errno, why, whysz);
	resolve_release(r);
	return n->fd == -1 ? -1 : 0;
}

int
auth_net_open(struct auth_net *n, const char *host, int port,
    int timeout_sec, char *why, size_t whysz)
{
	n->fd = -1;
	n->len = 0;
	n->timeout_sec = timeout_sec;
	n->deadline = auth_net_now() + (long long)timeout_sec * 1000;
	return resolve_connect(n, host, port, why, whysz);
}

void
auth_net_attach(struct auth_net *n, int fd, int timeout_sec)
{
	int fl;

	/* Waits are poll()s; a blocking send could outlast the deadline. */
	if ((fl = fcntl(fd, F_GETFL)) != -1)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	n->fd = fd;
	n->len = 0;
	n->timeout_sec = timeout_sec;
	n->deadline = auth_net_now() + (long long)timeout_sec * 1000;
}

void
auth_net_shorten(struct auth_net *n, long long ms)
{
	long long until = auth_net_now() + ms;

	if (until < n->deadline)
		n->deadline = until;
}

/* Receive more bytes into buf; -1 with errno (ECONNRESET at EOF). */
static int
fill(struct auth_net *n)
{
	ssize_t r;

	for (;;) {
		if (wait_fd(n->fd, POLLIN, n->deadline) == -1)
			return -1;
		r = recv(n->fd, n->buf + n->len, sizeof(n->buf) - n->len, 0);
		if (r > 0) {
			n->len += (size_t)r;
			return 0;
		}
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
	}
}

int
auth_net_read_line(struct auth_net *n, char *line, size_t linesz)
{
	char *lf;
	size_t ll, used;

	if (auth_net_now() >= n->deadline) {
		errno = ETIMEDOUT;
		return -1;
	}
	while ((lf = memchr(n->buf, '\n', n->len)) == NULL) {
		if (n->len == sizeof(n->buf)) {
			errno = EPROTO;
			return -1;
		}
		if (fill(n) == -1)
			return -1;
	}
	used = (size_t)(lf - n->buf) + 1;
	ll = used - 1;
	if (ll > 0 && n->buf[ll - 1] == '\r')
		ll--;
	if (ll >= linesz || memchr(n->buf, '\0', ll) != NULL) {
		errno = EPROTO;
		return -1;
	}
	memcpy(line, n->buf, ll);
	line[ll] = '\0';
	memmove(n->buf, n->buf + used, n->len - used);
	n->len -= used;
	return 0;
}

static int
write_all(struct auth_net *n, const char *p, size_t len)
{
	ssize_t w;

	while (len > 0) {
		if (wait_fd(n->fd, POLLOUT, n->deadline) == -1)
			return -1;
		w = send(n->fd, p, len, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			len -= (size_t)w;
		} else if (w == -1 && errno != EINTR && errno != EAGAIN &&
		    errno != EWOULDBLOCK)
			return -1;
	}
	return 0;
}

int
auth_net_command(struct auth_net *n, const char *verb, const char *arg)
{
	char cmd[1024];
	int len, r, saved;

	len = snprintf(cmd, sizeof(cmd), "%s%s%s\r\n", verb,
	    arg != NULL ? " " : "", arg != NULL ? arg : "");
	if (len < 0 || (size_t)len >= sizeof(cmd)) {
		explicit_bzero(cmd, sizeof(cmd));
		errno = EMSGSIZE;
		return -1;
	}
	r = write_all(n, cmd, (size_t)len);
	saved = errno;
	/* The PASS line holds the password: leave no copy on the stack. */
	explicit_bzero(cmd, sizeof(cmd));
	errno = saved;
	return r;
}

void
auth_net_name(char *out, size_t outsz, const char *proto, const char *host,
    int port)
{
	int v6 = strchr(host, ':') != NULL, len;

	len = snprintf(out, outsz, "%s:%s%s%s:%d", proto, v6 ? "[" : "",
	    host, v6 ? "]" : "", port);
	/* A log text cut short says so rather than ending mid-word. */
	if (len >= 0 && (size_t)len >= outsz && outsz > 4)
		memcpy(out + outsz - 4, "...", 4);
}

void
auth_net_close(struct auth_net *n)
{
	if (n->fd != -1)
		close(n->fd);
	n->fd = -1;
	n->len = 0;
}
