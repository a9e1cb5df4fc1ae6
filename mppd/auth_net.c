/*
 * auth_net — the remote password checks on net.h's connection.
 *
 * Everything here measures against one absolute deadline, so no sequence
 * of slow steps (a resolver that hangs, an address that drops SYNs, a
 * server that trickles one byte at a time) can make a check outlast its
 * timeout. Names are resolved in a thread of net's, abandoned at the
 * deadline (see net.c): abandoned lookups are bounded by the auth worker
 * pool, each worker leaving at most one per auth_timeout behind.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth_net.h"
#include "util.h"

int
auth_net_clean(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

void
auth_net_why(const struct auth_net *n, int err, char *why, size_t whysz)
{
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
		snprintf(why, whysz, "%s", net_reason(err));
		break;
	}
}

/* Why net_conn_open failed, as the checks say it. */
static void
open_why(const struct auth_net *n, const struct net_tried *t, char *why,
    size_t whysz)
{
	if (t->n > 0)
		auth_net_why(n, t->err, why, whysz);
	else if (t->gai != 0)
		snprintf(why, whysz, "cannot resolve host");
	else if (t->err == ETIMEDOUT)
		snprintf(why, whysz, "timeout after %ds resolving host",
		    n->timeout_sec);
	else
		snprintf(why, whysz, "cannot start name lookup");
}

/* A fresh check on no connection yet: the deadline starts now. */
static void
start(struct auth_net *n, int timeout_sec)
{
	net_conn_init(&n->conn);
	n->timeout_sec = timeout_sec;
	n->deadline = net_deadline((long long)timeout_sec * 1000);
}

int
auth_net_open(struct auth_net *n, const char *host, int port,
    int timeout_sec, char *why, size_t whysz)
{
	struct net_tried t;
	char serv[8];

	start(n, timeout_sec);
	snprintf(serv, sizeof(serv), "%d", port & 0xffff);
	if (net_conn_open(&n->conn, host, serv, n->deadline, &t) == 0)
		return 0;
	open_why(n, &t, why, whysz);
	return -1;
}

void
auth_net_attach(struct auth_net *n, int fd, int timeout_sec)
{
	start(n, timeout_sec);
	net_conn_attach(&n->conn, fd);
}

void
auth_net_shorten(struct auth_net *n, long long ms)
{
	long long until = net_deadline(ms);

	if (until < n->deadline)
		n->deadline = until;
}

int
auth_net_read_line(struct auth_net *n, char *line, size_t linesz)
{
	size_t len;

	if (linesz > AUTH_NET_LINE_MAX)
		linesz = AUTH_NET_LINE_MAX;
	if (net_conn_read_line(&n->conn, line, linesz, &len, NET_LONG_FAIL,
	    n->deadline) == -1)
		return -1;
	if (memchr(line, '\0', len) != NULL) {
		errno = EPROTO;
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
	r = net_conn_write(&n->conn, cmd, (size_t)len, n->deadline);
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
	int v6 = strchr(host, ':') != NULL;

	/* A log text cut short says so rather than ending mid-word. */
	util_format(out, outsz, "%s:%s%s%s:%d", proto, v6 ? "[" : "",
	    host, v6 ? "]" : "", port);
}

void
auth_net_close(struct auth_net *n)
{
	net_conn_close(&n->conn);
}
