/*
 * tls_client — the client side of TLS (OpenSSL) for every program that
 * connects to a server: mppsend's MPP inside TLS from the first byte (RFC
 * 8314's implicit TLS), and whatever net.h starts TLS on, from the first
 * byte or after a STARTTLS.
 *
 * A context (struct tls_client_ctx) holds what every connection shares: the
 * trusted certificates (a CA file, or the system store), the settings of
 * tls_common.h (TLS 1.2 as the lowest version, no compression, no
 * renegotiation), peer verification on unless the context was made
 * unverified (the SMTP transport's opportunistic modes only). A connection
 * (struct tls_client) runs over a connected non-blocking socket and checks
 * that the server's certificate names the host the user asked for: a DNS
 * name against the certificate's names (and sent as SNI), an IP literal
 * against its IP addresses. A handshake whose verification fails is an
 * error, so no byte of MPP (and no password) is ever sent to an unverified
 * server.
 *
 * Nothing here waits: each call does what it can and, when the socket is not
 * ready, returns -1 with errno EAGAIN and *want set to POLLIN or POLLOUT; the
 * caller polls the socket for that and calls again with the same arguments.
 * On any other -1 the reason is in tls_client_error() (errno may say more).
 *
 * The socket is written with MSG_NOSIGNAL: a server that hangs up is an
 * error (EPIPE), never a SIGPIPE. The socket itself stays the caller's.
 * No global state: a context may serve many connections, in one thread.
 */
#ifndef MPP_TLS_CLIENT_H
#define MPP_TLS_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#define TLS_CLIENT_ERR_MAX	512

struct tls_client_ctx;
struct tls_client;

/*
 * A context trusting the certificates in cafile (PEM; NULL: the system
 * store). NULL with the reason in err when cafile cannot be used.
 * Free with tls_client_ctx_free(), after every connection made from it.
 */
struct tls_client_ctx *tls_client_ctx_new(const char *cafile, char *err,
    size_t errsz);

/*
 * A context that encrypts but checks no certificate, neither its chain
 * nor its names (the SMTP transport's smtp_tls may and encrypt, as RFC
 * 7672 §1.3's opportunistic TLS does). The server's name still goes out
 * as SNI. Only tls_client_ctx_new() stops an unverified server.
 */
struct tls_client_ctx *tls_client_ctx_new_unverified(char *err,
    size_t errsz);

/* Free a context (NULL is fine). */
void tls_client_ctx_free(struct tls_client_ctx *ctx);

/*
 * A connection over the connected socket fd, to be verified as host (a DNS
 * name or an IP literal, without brackets). NULL with the reason in err.
 * Free with tls_client_free(); the socket is not closed.
 */
struct tls_client *tls_client_new(struct tls_client_ctx *ctx, int fd,
    const char *host, char *err, size_t errsz);

/* Free a connection (NULL is fine); sends nothing. */
void tls_client_free(struct tls_client *t);

/* One step of the handshake: 0 when done and verified, or -1 (see top). */
int tls_client_handshake(struct tls_client *t, short *want);

/* Read: the count (> 0), 0 at the end of the stream, or -1 (see top). */
ssize_t tls_client_read(struct tls_client *t, void *buf, size_t len, short *want);

/* Write: the count (> 0, maybe less than len), or -1 (see top). */
ssize_t tls_client_write(struct tls_client *t, const void *buf, size_t len,
    short *want);

/* Send close_notify if the connection still works; never waits. */
void tls_client_close_notify(struct tls_client *t);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" after the handshake (never NULL). */
const char *tls_client_describe(const struct tls_client *t, char *buf,
    size_t size);

/* Why the last call failed (never NULL). */
const char *tls_client_error(const struct tls_client *t);

/* Is host an IPv4 or IPv6 literal (no brackets)? */
int tls_client_is_ip_literal(const char *host);

#endif /* MPP_TLS_CLIENT_H */
