/*
 * tls_client — the client's TLS layer over OpenSSL 3. See tls_client.h.
 *
 * OpenSSL's own socket BIO writes with write(2), so a server that hangs up
 * would kill the client with SIGPIPE; a small BIO of ours reads and writes
 * the socket with recv/send and MSG_NOSIGNAL instead. Its method table is
 * made once per process (pthread_once) and never changed after: it is
 * constant data, not state.
 *
 * A TLS connection that meets a system or protocol error is dead: OpenSSL
 * must not be asked to shut it down, so t->dead stops close_notify.
 *
 * The BIO keeps the first bytes the server sent: when a handshake fails
 * because they were no TLS at all but an MPP reply in clear (a plain port,
 * or a server refusing the connection before any handshake), the error
 * quotes that reply rather than OpenSSL's "wrong version number".
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <bsd/string.h>

#include "tls_client.h"
#include "tls_common.h"
#include "util.h"

struct tls_client_ctx {
	SSL_CTX *ssl_ctx;
	int verify;		/* check the chain and the host's name */
};

struct tls_client {
	SSL *ssl;
	int verify;		/* its context's */
	int fd;
	int eof;		/* the socket reached its end */
	int dead;		/* a fatal error: no close_notify */
	char head[80];		/* the first bytes received */
	size_t headlen;
	char err[TLS_CLIENT_ERR_MAX];
};

static pthread_once_t bio_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_method;	/* set once, then only read */

/* OpenSSL's reason for the first error queued, or fallback. */
static const char *
ssl_reason(const char *fallback)
{
	const char *r = ERR_reason_error_string(ERR_peek_error());

	return r != NULL ? r : fallback;
}

/* ---- the socket BIO ---- */

static int
bio_write(BIO *b, const char *buf, size_t len, size_t *written)
{
	struct tls_client *t = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	n = send(t->fd, buf, len, MSG_NOSIGNAL);
	if (n >= 0) {
		*written = (size_t)n;
		return 1;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		BIO_set_retry_write(b);
	return 0;
}

/* Keep the start of what the server sent, for describe_ssl_error. */
static void
keep_head(struct tls_client *t, const char *buf, size_t n)
{
	size_t room = sizeof(t->head) - t->headlen;

	if (n > room)
		n = room;
	memcpy(t->head + t->headlen, buf, n);
	t->headlen += n;
}

static int
bio_read(BIO *b, char *buf, size_t len, size_t *got)
{
	struct tls_client *t = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	n = recv(t->fd, buf, len, 0);
	if (n > 0) {
		*got = (size_t)n;
		keep_head(t, buf, (size_t)n);
		return 1;
	}
	if (n == 0)
		t->eof = 1;
	else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		BIO_set_retry_read(b);
	return 0;
}

static long
bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_client *t = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;	/* nothing is buffered here */
	case BIO_CTRL_EOF:
		return t != NULL && t->eof;
	default:
		return 0;
	}
}

static int
bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void
bio_method_make(void)
{
	BIO_METHOD *m;

	m = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(),
	    "mpp socket");
	if (m == NULL)
		return;
	if (!BIO_meth_set_write_ex(m, bio_write) ||
	    !BIO_meth_set_read_ex(m, bio_read) ||
	    !BIO_meth_set_ctrl(m, bio_ctrl) ||
	    !BIO_meth_set_create(m, bio_create)) {
		BIO_meth_free(m);
		return;
	}
	bio_method = m;
}

/* ---- contexts ---- */

/* Load cafile into ctx; -1 with a reason naming it. */
static int
load_ca(SSL_CTX *ctx, const char *cafile, char *err, size_t errsz)
{
	int fd;

	/* OpenSSL's errors for a missing file are obscure: look first. */
	if ((fd = open(cafile, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		util_format(err, errsz, "CA file %s: %s", cafile,
		    strerror(errno));
		return -1;
	}
	close(fd);
	ERR_clear_error();
	if (SSL_CTX_load_verify_file(ctx, cafile) != 1) {
		util_format(err, errsz, "CA file %s: %s", cafile,
		    ssl_reason("no certificate in it"));
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* A context, verifying or not; see the two constructors. */
static struct tls_client_ctx *
ctx_new(const char *cafile, int verify, char *err, size_t errsz)
{
	struct tls_client_ctx *ctx;

	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		util_format(err, errsz, "out of memory");
		return NULL;
	}
	ctx->verify = verify;
	ERR_clear_error();
	if ((ctx->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    tls_common_settings(ctx->ssl_ctx, TLS1_2_VERSION) == -1) {
		util_format(err, errsz, "TLS: %s", ssl_reason("cannot start"));
		goto fail;
	}
	SSL_CTX_set_verify(ctx->ssl_ctx, verify ? SSL_VERIFY_PEER :
	    SSL_VERIFY_NONE, NULL);
	/*
	 * MPP replies say where they end; a server that closes without
	 * close_notify only ends the dialogue (the caller sees EOF).
	 */
	SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!verify)
		;		/* nothing to trust: no store to load */
	else if (cafile != NULL) {
		if (load_ca(ctx->ssl_ctx, cafile, err, errsz) == -1)
			goto fail;
	} else if (SSL_CTX_set_default_verify_paths(ctx->ssl_ctx) != 1) {
		util_format(err, errsz, "TLS: cannot load the system's trusted "
		    "certificates: %s", ssl_reason("unknown error"));
		goto fail;
	}
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	tls_client_ctx_free(ctx);
	return NULL;
}

struct tls_client_ctx *
tls_client_ctx_new(const char *cafile, char *err, size_t errsz)
{
	return ctx_new(cafile, 1, err, errsz);
}

struct tls_client_ctx *
tls_client_ctx_new_unverified(char *err, size_t errsz)
{
	return ctx_new(NULL, 0, err, errsz);
}

void
tls_client_ctx_free(struct tls_client_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

/* ---- connections ---- */

int
tls_client_is_ip_literal(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1;
}

/*
 * Tell OpenSSL which name (and SNI) or address the certificate must hold;
 * without verification only the SNI, which an IP literal never is.
 */
static int
expect_host(SSL *ssl, const char *host, int verify)
{
	char sni[256];		/* a DNS name has at most 253 bytes */

	if (tls_client_is_ip_literal(host))
		return !verify || X509_VERIFY_PARAM_set1_ip_asc(
		    SSL_get0_param(ssl), host) == 1 ? 0 : -1;
	/* The SNI macro takes a non-const pointer. */
	if (strlcpy(sni, host, sizeof(sni)) >= sizeof(sni))
		return -1;
	if (SSL_set_tlsext_host_name(ssl, sni) != 1)
		return -1;
	if (!verify)
		return 0;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

struct tls_client *
tls_client_new(struct tls_client_ctx *ctx, int fd, const char *host, char *err,
    size_t errsz)
{
	struct tls_client *t;
	BIO *bio;

	if (pthread_once(&bio_once, bio_method_make) != 0 ||
	    bio_method == NULL) {
		util_format(err, errsz, "TLS: cannot make a socket BIO");
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		util_format(err, errsz, "out of memory");
		return NULL;
	}
	t->fd = fd;
	t->verify = ctx->verify;
	ERR_clear_error();
	if ((t->ssl = SSL_new(ctx->ssl_ctx)) == NULL ||
	    (bio = BIO_new(bio_method)) == NULL) {
		util_format(err, errsz, "TLS: %s", ssl_reason("out of memory"));
		goto fail;
	}
	BIO_set_data(bio, t);
	SSL_set_bio(t->ssl, bio, bio);	/* the SSL owns the BIO now */
	if (expect_host(t->ssl, host, t->verify) == -1) {
		util_format(err, errsz, "TLS: cannot check the certificate for "
		    "\"%s\": %s", host, ssl_reason("bad host name"));
		goto fail;
	}
	ERR_clear_error();
	return t;
fail:
	ERR_clear_error();
	tls_client_free(t);
	return NULL;
}

void
tls_client_free(struct tls_client *t)
{
	if (t == NULL)
		return;
	SSL_free(t->ssl);
	free(t);
}

/*
 * Did the server send an MPP reply in clear ("220 ...", "451 ...")? Then
 * put its first line, printable, into line.
 */
static int
clear_reply(struct tls_client *t, char *line, size_t size)
{
	const unsigned char *h = (const unsigned char *)t->head;
	size_t i;
	ssize_t n;

	/* OpenSSL read a record header: the rest of the line is waiting. */
	n = recv(t->fd, t->head + t->headlen, sizeof(t->head) - t->headlen,
	    MSG_DONTWAIT);
	if (n > 0)
		t->headlen += (size_t)n;
	if (t->headlen < 4 || !isdigit(h[0]) || !isdigit(h[1]) ||
	    !isdigit(h[2]) || (h[3] != ' ' && h[3] != '-'))
		return 0;
	for (i = 0; i + 1 < size && i < t->headlen && h[i] != '\r' &&
	    h[i] != '\n'; i++)
		line[i] = h[i] >= 0x20 && h[i] < 0x7f ? (char)h[i] : '?';
	line[i] = '\0';
	return 1;
}

/* Why an SSL error happened, into t->err. */
static void
describe_ssl_error(struct tls_client *t)
{
	char line[sizeof(t->head) + 1];
	long vr = SSL_get_verify_result(t->ssl);

	unsigned long e = ERR_peek_error();

	if (t->verify && vr != X509_V_OK)
		util_format(t->err, sizeof(t->err), "certificate verify failed: "
		    "%s", X509_verify_cert_error_string(vr));
	else if (!SSL_is_init_finished(t->ssl) &&
	    clear_reply(t, line, sizeof(line)))
		util_format(t->err, sizeof(t->err), "the server answered without "
		    "TLS: \"%s\"", line);
	else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER)
		/* What a plain MPP greeting looks like to TLS. */
		util_format(t->err, sizeof(t->err), "%s: not a TLS port?",
		    ssl_reason("wrong version number"));
	else
		util_format(t->err, sizeof(t->err), "%s",
		    ssl_reason("protocol error"));
}

/* Map a failed SSL call's result r to -1 with errno, *want and t->err. */
static int
step_failed(struct tls_client *t, int r, short *want)
{
	int saved = errno;

	switch (SSL_get_error(t->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		*want = POLLIN;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		*want = POLLOUT;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		util_format(t->err, sizeof(t->err), "connection closed");
		errno = ECONNRESET;
		break;
	case SSL_ERROR_SYSCALL:
		t->dead = 1;
		errno = saved != 0 ? saved : ECONNRESET;
		if (saved == 0)
			util_format(t->err, sizeof(t->err), "connection closed");
		else if (saved == ECONNRESET || saved == EPIPE)
			util_format(t->err, sizeof(t->err),
			    "connection closed (%s)",
			    strerror(saved));
		else
			util_format(t->err, sizeof(t->err), "%s", strerror(saved));
		break;
	default:
		t->dead = 1;
		describe_ssl_error(t);
		errno = EPROTO;
		break;
	}
	ERR_clear_error();
	return -1;
}

int
tls_client_handshake(struct tls_client *t, short *want)
{
	int r;

	ERR_clear_error();
	errno = 0;
	if ((r = SSL_connect(t->ssl)) == 1)
		return 0;
	return step_failed(t, r, want);
}

ssize_t
tls_client_read(struct tls_client *t, void *buf, size_t len, short *want)
{
	size_t got = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	if ((r = SSL_read_ex(t->ssl, buf, len, &got)) == 1)
		return (ssize_t)got;
	if (SSL_get_error(t->ssl, r) == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return 0;
	}
	return step_failed(t, r, want);
}

ssize_t
tls_client_write(struct tls_client *t, const void *buf, size_t len, short *want)
{
	size_t done = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	if ((r = SSL_write_ex(t->ssl, buf, len, &done)) == 1)
		return (ssize_t)done;
	return step_failed(t, r, want);
}

void
tls_client_close_notify(struct tls_client *t)
{
	if (t == NULL || t->dead || !SSL_is_init_finished(t->ssl))
		return;
	ERR_clear_error();
	(void)SSL_shutdown(t->ssl);	/* one try: QUIT is already done */
	ERR_clear_error();
}

const char *
tls_client_describe(const struct tls_client *t, char *buf, size_t size)
{
	/* Only names OpenSSL knows; cut to fit is fine. */
	(void)snprintf(buf, size, "%s %s", SSL_get_version(t->ssl),
	    SSL_get_cipher_name(t->ssl));
	return buf;
}

const char *
tls_client_error(const struct tls_client *t)
{
	return t->err[0] != '\0' ? t->err : "no error";
}
