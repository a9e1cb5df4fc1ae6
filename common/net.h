/*
 * net — the TCP client under every program that talks to a server:
 * mppsend's MPP client, the POP3 and FTP password checks, the SMTP
 * transport and the load generator. Name resolution, connecting to each
 * address in turn, waiting for readiness, a buffered connection that reads
 * lines with a bound and writes whole buffers, and TLS on that connection
 * (from the first byte, or after a STARTTLS) through tls_client.h.
 *
 * Every call that may wait takes an absolute deadline in milliseconds on
 * util_now_ms()'s monotonic clock, so no sequence of slow steps (a
 * resolver that hangs, an address that drops SYNs, a server that trickles
 * one byte at a time) outlasts the bound its caller set. Sockets are
 * non-blocking and written with MSG_NOSIGNAL (a peer that goes away is
 * EPIPE, never a SIGPIPE); every wait is a poll() for the time left.
 *
 * One return convention: 0 (or a count) / -1 with errno; ETIMEDOUT when the
 * deadline passed; EPROTO for a TLS error (net_conn_tls_error() says
 * which) or an over-long line. Callers keep their own words above it.
 * No global state; a struct net_conn is used by one thread at a time.
 */
#ifndef MPP_NET_H
#define MPP_NET_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netdb.h>

#define NET_ADDR_MAX	64	/* "[IPv6 address]:port" and its NUL */
#define NET_TRIED_MAX	512	/* the list of failed connects */
#define NET_IN_MAX	4096	/* a connection's receive buffer */

struct tls_client;
struct tls_client_ctx;

/* The deadline ms milliseconds from now. */
long long net_deadline(long long ms);

/*
 * Wait until fd is ready for events (POLLIN, POLLOUT) or the deadline
 * passes (-1, ETIMEDOUT). An error or hangup counts as ready: the next
 * call on fd reports it.
 */
int net_wait(int fd, short events, long long deadline);

/* strerror(3) for err, safe in any thread (never NULL). */
const char *net_reason(int err);

/*
 * Nonzero for an address of 127.0.0.0/8 or ::1 (or ::ffff:127.x.y.z):
 * the one rule of what counts as this machine, for mppd's require_tls
 * and the SMTP transport's AUTH without TLS. The text form takes an
 * address as inet_pton reads it; anything else is not loopback.
 */
int net_is_loopback(const struct sockaddr *sa, socklen_t len);
int net_text_is_loopback(const char *addr);

/* "192.0.2.1:25" or "[2001:db8::1]:25" for an address ("?" if none). */
void net_addr_text(const struct sockaddr *sa, socklen_t salen, char *out,
    size_t outsz);

/*
 * Resolve host (a name, or an IPv4 or IPv6 literal without brackets) and
 * port (a number) to stream addresses of every family, in the resolver's
 * order, by the deadline. A literal is converted at once; a name is looked
 * up in a thread of its own, abandoned (never waited for) when the
 * deadline passes. 0 with *res (free with freeaddrinfo()); or -1 with
 * *gai the getaddrinfo() code when the resolver said no (errno set for
 * EAI_SYSTEM), or *gai 0 and errno ETIMEDOUT, or EAGAIN / ENOMEM when no
 * lookup could be started.
 */
int net_resolve(const char *host, const char *port, long long deadline,
    struct addrinfo **res, int *gai);

/* What opening a connection came to (net_connect, net_conn_open). */
struct net_tried {
	int gai;		/* getaddrinfo() code when resolving failed */
	int n;			/* addresses tried; 0: resolving failed */
	int err;		/* errno of the last failure */
	char addr[NET_ADDR_MAX];	/* the last tried: the one connected */
	char list[NET_TRIED_MAX];	/* "ADDR: reason; ..." that failed */
};

/*
 * Connect to the addresses of res in turn until one answers, by the
 * deadline; each but the last gets an equal share of the time left, so an
 * address that drops packets cannot use up the time of the ones after it.
 * The connected non-blocking socket, or -1 with errno (the last address's
 * error, or ETIMEDOUT). tried (not NULL) is filled in either way.
 */
int net_connect(const struct addrinfo *res, long long deadline,
    struct net_tried *tried);

/* One buffered connection, plain or TLS. */
struct net_conn {
	int fd;			/* -1: not connected */
	int eof;		/* the peer ended its stream */
	struct tls_client *tls;	/* TLS on fd once started; owned */
	size_t in_off, in_len;	/* in[in_off..in_len): not yet consumed */
	char in[NET_IN_MAX];
};

/* What net_conn_read_line does with a line longer than its buffer. */
enum net_long {
	NET_LONG_CUT,		/* keep what fits, skip the rest to the LF */
	NET_LONG_FAIL		/* fail with EPROTO at once */
};

/* An unconnected connection. */
void net_conn_init(struct net_conn *c);

/* Take over fd, a connected socket (made non-blocking); for tests too. */
void net_conn_attach(struct net_conn *c, int fd);

/*
 * Resolve host, connect to its addresses (net_resolve, net_connect), all by
 * the deadline. 0, or -1 with errno; tried says how far it came.
 */
int net_conn_open(struct net_conn *c, const char *host, const char *port,
    long long deadline, struct net_tried *tried);

/* Free TLS, close the socket, drop what is buffered; safe to repeat. */
void net_conn_close(struct net_conn *c);

/*
 * Receive what the peer sent (at least a byte) behind what is buffered,
 * waiting until the deadline: the count, 0 at the end of the stream (eof
 * set), or -1 with errno. The unconsumed bytes move to the front first;
 * a full buffer is -1 with ENOBUFS.
 */
ssize_t net_conn_fill(struct net_conn *c, long long deadline);

/*
 * Read one line into line (size > 1 bytes, NUL-terminated, its CRLF or LF
 * removed, any byte kept, *lenp its length). A line of more than size - 1
 * bytes before its LF is cut and the rest skipped (NET_LONG_CUT), or is
 * EPROTO (NET_LONG_FAIL). 0, or -1 with errno: ECONNRESET when the stream
 * ended first (eof set), ETIMEDOUT once the deadline has passed, even with
 * a line waiting.
 */
int net_conn_read_line(struct net_conn *c, char *line, size_t size,
    size_t *lenp, enum net_long policy, long long deadline);

/* Send len bytes whole by the deadline. 0, or -1 with errno. */
int net_conn_write(struct net_conn *c, const void *buf, size_t len,
    long long deadline);

/*
 * Send iov[0..n) whole by the deadline, in one sendmsg() where the socket
 * takes it. The entries are consumed (changed). 0, or -1 with errno.
 */
int net_conn_writev(struct net_conn *c, struct iovec *iov, int n,
    long long deadline);

/*
 * Start TLS with ctx on the open connection (just connected for implicit
 * TLS, or after the server's yes to STARTTLS) and complete the handshake
 * by the deadline, verifying the certificate for host (a name, also sent
 * as SNI, or an IP literal). Bytes received but not consumed before it are
 * refused (EPROTO): they came in clear and are no part of the TLS stream.
 * 0, or -1 with errno (ETIMEDOUT, or EPROTO) and the reason in why; the
 * connection is of no more use then.
 */
int net_conn_start_tls(struct net_conn *c, struct tls_client_ctx *ctx,
    const char *host, long long deadline, char *why, size_t whysz);

/* Why the last TLS call failed (EPROTO), or NULL when TLS is not on. */
const char *net_conn_tls_error(const struct net_conn *c);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" into buf, or "" without TLS. */
const char *net_conn_tls_describe(const struct net_conn *c, char *buf,
    size_t size);

/* Send TLS's close_notify if TLS is up; never waits. */
void net_conn_close_notify(struct net_conn *c);

#endif /* MPP_NET_H */
