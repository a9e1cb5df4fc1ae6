/*
 * auth_net — deadline-bounded TCP client for the remote password checks.
 *
 * Everything here measures against one absolute deadline on the monotonic
 * clock, so no sequence of slow steps (a resolver that hangs, an address
 * that drops SYNs, a server that trickles one byte at a time) can make a
 * check outlast its timeout. Sockets are non-blocking and every wait is a
 * poll() for the time that is left.
 *
 * Name resolution uses getaddrinfo_a(): plain getaddrinfo() cannot be
 * interrupted and a dead DNS server would hold the worker for the
 * resolver's own timeouts. A request we stop waiting for keeps running in
 * the resolver's thread; it and we each hold a reference, and whoever lets
 * go last frees it, so abandoning it is safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth_net.h"

/* One asynchronous lookup, shared with the resolver's notification. */
struct resolve {
	atomic_int refs;
	struct gaicb cb;
	struct addrinfo hints;
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

static void
resolve_release(struct resolve *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	if (r->cb.ar_result != NULL)
		freeaddrinfo(r->cb.ar_result);
	free(r);
}

/* Runs in the resolver's thread once the lookup is over. */
static void
resolve_done(union sigval sv)
{
	resolve_release(sv.sival_ptr);
}

static struct resolve *
resolve_start(const char *host, int port)
{
	struct gaicb *list[1];
	struct sigevent sev;
	struct resolve *r;
	size_t hl = strlen(host);

	if ((r = calloc(1, sizeof(*r) + hl + 1)) == NULL)
		return NULL;
	memcpy(r->host, host, hl + 1);
	snprintf(r->serv, sizeof(r->serv), "%d", port & 0xffff);
	r->hints.ai_family = AF_UNSPEC;
	r->hints.ai_socktype = SOCK_STREAM;
	r->hints.ai_flags = AI_NUMERICSERV;
	r->cb.ar_name = r->host;
	r->cb.ar_service = r->serv;
	r->cb.ar_request = &r->hints;
	atomic_init(&r->refs, 2);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = resolve_done;
	sev.sigev_value.sival_ptr = r;
	list[0] = &r->cb;
	if (getaddrinfo_a(GAI_NOWAIT, list, 1, &sev) != 0) {
		free(r);
		return NULL;
	}
	return r;
}

/* Wait for the lookup until the deadline; its gai error code. */
static int
resolve_wait(struct resolve *r, long long deadline)
{
	const struct gaicb *list[1] = { &r->cb };
	struct timespec ts;
	long long left;
	int e;

	while ((e = gai_error(&r->cb)) == EAI_INPROGRESS) {
		if ((left = deadline - auth_net_now()) <= 0)
			return EAI_AGAIN;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		(void)gai_suspend(list, 1, &ts);
	}
	return e;
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

int
auth_net_open(struct auth_net *n, const char *host, int port,
    int timeout_sec, char *why, size_t whysz)
{
	struct resolve *r;
	int e;

	n->fd = -1;
	n->len = 0;
	n->timeout_sec = timeout_sec;
	n->deadline = auth_net_now() + (long long)timeout_sec * 1000;
	if ((r = resolve_start(host, port)) == NULL) {
		snprintf(why, whysz, "cannot start name lookup");
		return -1;
	}
	e = resolve_wait(r, n->deadline);
	if (e == EAI_AGAIN && auth_net_now() >= n->deadline)
		snprintf(why, whysz, "timeout after %ds resolving host",
		    timeout_sec);
	else if (e != 0)
		snprintf(why, whysz, "cannot resolve host");
	else if ((n->fd = connect_list(r->cb.ar_result, n->deadline)) == -1)
		auth_net_why(n, errno, why, whysz);
	resolve_release(r);
	return n->fd == -1 ? -1 : 0;
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
auth_net_say(char *why, size_t whysz, const char *proto, const char *host,
    int port, const char *reason)
{
	int v6 = strchr(host, ':') != NULL, len;

	len = snprintf(why, whysz, "%s:%s%s%s:%d %s", proto, v6 ? "[" : "",
	    host, v6 ? "]" : "", port, reason);
	/* A log text cut short says so rather than ending mid-word. */
	if (len >= 0 && (size_t)len >= whysz && whysz > 4)
		memcpy(why + whysz - 4, "...", 4);
}

void
auth_net_close(struct auth_net *n)
{
	if (n->fd != -1)
		close(n->fd);
	n->fd = -1;
	n->len = 0;
}
