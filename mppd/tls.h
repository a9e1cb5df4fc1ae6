/*
 * tls — the server's TLS context for listen_tls (implicit TLS from the
 * first byte, as RFC 8314 recommends for submission). Certificate and key
 * are loaded at start and again on SIGHUP; a reload builds a new context
 * and swaps it in, so a bad new key never takes the service down and
 * sessions already running keep theirs (each SSL holds a reference).
 * Used from the event loop's thread only.
 */
#ifndef MPP_TLS_H
#define MPP_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

struct tls;

/* Load cfg's certificate and key; NULL with err. */
struct tls *tls_new(const struct mpp_config *cfg, char *err, size_t errsz);
/* Re-read certificate and key; -1 with err (the old context stays). */
int tls_reload(struct tls *t, char *err, size_t errsz);
/* A new server-side SSL for one connection, or NULL. */
SSL *tls_ssl_new(struct tls *t);
/* The oldest queued OpenSSL error as text (for log lines). */
void tls_last_error(char *buf, size_t bufsz);
void tls_free(struct tls *t);

#endif
