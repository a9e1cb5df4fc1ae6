/*
 * auth_net — the POP3 and FTP password checks' view of a connection
 * (net.h): one absolute deadline for the whole check, set by
 * auth_net_open(), so a server that answers slowly, trickles bytes or
 * never answers costs at most the timeout of the check in total; CRLF
 * lines of bounded length; whole commands; the reasons the checks log.
 *
 * System-like convention: 0 / -1 with errno. ETIMEDOUT: the deadline
 * passed; EPROTO: a line over AUTH_NET_LINE_MAX or with a NUL;
 * ECONNRESET: the server closed the connection.
 */
#ifndef MPP_AUTH_NET_H
#define MPP_AUTH_NET_H

#include <stddef.h>

#include "net.h"

/* Longest reply line we accept, CRLF included (POP3 allows 512). */
#define AUTH_NET_LINE_MAX 512

struct auth_net {
	struct net_conn conn;
	long long deadline;		/* util_now_ms() clock */
	int timeout_sec;		/* for the "timeout after Ns" text */
};

/*
 * Nonzero when s may be sent as a command argument: no CR, LF (a NUL
 * cannot occur inside a C string, it ends it).
 */
int auth_net_clean(const char *s);

/*
 * Start a check: the deadline is now + timeout_sec. Resolve host
 * (any family), then connect to each address in turn. On failure returns
 * -1 with a short reason in why ("cannot resolve host", "connection
 * refused", "timeout after 10s") and n->conn.fd == -1.
 */
int auth_net_open(struct auth_net *n, const char *host, int port,
    int timeout_sec, char *why, size_t whysz);

/* Use an already connected socket (tests); the deadline starts now. */
void auth_net_attach(struct auth_net *n, int fd, int timeout_sec);

/*
 * Read one line into line (terminator removed; a bare LF also ends it).
 * linesz should be at least AUTH_NET_LINE_MAX. 0, or -1 with errno.
 */
int auth_net_read_line(struct auth_net *n, char *line, size_t linesz);

/* Send "verb arg\r\n" (arg may be NULL) whole. 0, or -1 with errno. */
int auth_net_command(struct auth_net *n, const char *verb, const char *arg);

/*
 * Shorten the deadline to at most ms from now (for the QUIT at the end,
 * whose answer is not worth waiting long for).
 */
void auth_net_shorten(struct auth_net *n, long long ms);

/* A short reason for the errno left by a failed read or write. */
void auth_net_why(const struct auth_net *n, int err, char *why,
    size_t whysz);

/*
 * A backend's name for the log, "pop3:HOST:PORT", an IPv6 host in
 * brackets; marked with "..." when outsz cut it short.
 */
void auth_net_name(char *out, size_t outsz, const char *proto,
    const char *host, int port);

/* Close the socket; safe to call twice. */
void auth_net_close(struct auth_net *n);

#endif
