/*
 * mpp_tls — the client's TLS layer (OpenSSL): MPP inside TLS from the first
 * byte, as RFC 8314 does for mail submission.
 *
 * A context (struct mpp_tls_ctx) holds what every connection shares: the
 * trusted certificates (a CA file, or the system store), TLS 1.2 as the
 * lowest version, peer verification on. A connection (struct mpp_tls) runs
 * over a connected non-blocking socket and checks that the server's
 * certificate names the host the user asked for: a DNS name against the
 * certificate's names (and sent as SNI), an IP literal against its IP
 * addresses. A handshake whose verification fails is an error, so no byte of
 * MPP (and no password) is ever sent to an unverified server.
 *
 * Nothing here waits: each call does what it can and, when the socket is not
 * ready, returns -1 with errno EAGAIN and *want set to POLLIN or POLLOUT; the
 * caller polls the socket for that and calls again with the same arguments.
 * On any other -1 the reason is in mpp_tls_error() (errno may say more).
 *
 * The socket is written with MSG_NOSIGNAL: a server that hangs up is an
 * error (EPIPE), never a SIGPIPE. The socket itself stays the caller's.
 * No global state: a context may serve many connections, in one thread.
 */
#ifndef CLIENT_MPP_TLS_H
#define CLIENT_MPP_TLS_H

#include <stddef.h>
#include <sys/types.h>

#define MPP_TLS_ERR_MAX	512

struct mpp_tls_ctx;
struct mpp_tls;

/*
 * A context trusting the certificates in cafile (PEM; NULL: the system
 * store). NULL with the reason in err when cafile cannot be used.
 * Free with mpp_tls_ctx_free(), after every connection made from it.
 */
struct mpp_tls_ctx *mpp_tls_ctx_new(const char *cafile, char *err,
    size_t errsz);

/* Free a context (NULL is fine). */
void mpp_tls_ctx_free(struct mpp_tls_ctx *ctx);

/*
 * A connection over the connected socket fd, to be verified as host (a DNS
 * name or an IP literal, without brackets). NULL with the reason in err.
 * Free with mpp_tls_free(); the socket is not closed.
 */
struct mpp_tls *mpp_tls_new(struct mpp_tls_ctx *ctx, int fd,
    const char *host, char *err, size_t errsz);

/* Free a connection (NULL is fine); sends nothing. */
void mpp_tls_free(struct mpp_tls *t);

/* One step of the handshake: 0 when done and verified, or -1 (see top). */
int mpp_tls_handshake(struct mpp_tls *t, short *want);

/* Read: the count (> 0), 0 at the end of the stream, or -1 (see top). */
ssize_t mpp_tls_read(struct mpp_tls *t, void *buf, size_t len, short *want);

/* Write: the count (> 0, maybe less than len), or -1 (see top). */
ssize_t mpp_tls_write(struct mpp_tls *t, const void *buf, size_t len,
    short *want);

/* Send close_notify if the connection still works; never waits. */
void mpp_tls_close_notify(struct mpp_tls *t);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" after the handshake (never NULL). */
const char *mpp_tls_describe(const struct mpp_tls *t, char *buf,
    size_t size);

/* Why the last call failed (never NULL). */
const char *mpp_tls_error(const struct mpp_tls *t);

/* Is host an IPv4 or IPv6 literal (no brackets)? */
int mpp_tls_is_ip_literal(const char *host);

#endif /* CLIENT_MPP_TLS_H */
