/* tls — see tls.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>

#include "log.h"
#include "tls.h"
#include "tls_common.h"

struct tls {
	const struct mpp_config *cfg;
	SSL_CTX *ctx;
};

void
tls_last_error(char *buf, size_t bufsz)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, bufsz, "no OpenSSL error recorded");
	else
		ERR_error_string_n(e, buf, bufsz);
	ERR_clear_error();
}

static void
warn_if_readable(const char *key)
{
	struct stat st;

	if (stat(key, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) &&
	    (st.st_mode & S_IROTH))
		log_warnx("TLS key file %s is readable by others", key);
}

static SSL_CTX *
ctx_build(const struct mpp_config *cfg, char *err, size_t errsz)
{
	char why[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int minv = cfg->tls_min_version == CONFIG_TLS_1_3 ? TLS1_3_VERSION :
	    TLS1_2_VERSION;

	if (ctx == NULL)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (tls_common_settings(ctx, minv) == -1 ||
	    !SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) ||
	    SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	warn_if_readable(cfg->tls_key);
	return ctx;
fail:
	tls_last_error(why, sizeof(why));
	snprintf(err, errsz, "TLS (cert %s, key %s): %s", cfg->tls_cert,
	    cfg->tls_key, why);
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls *
tls_new(const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct tls *t;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	t->cfg = cfg;
	if ((t->ctx = ctx_build(cfg, err, errsz)) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

int
tls_reload(struct tls *t, char *err, size_t errsz)
{
	SSL_CTX *ctx = ctx_build(t->cfg, err, errsz);

	if (ctx == NULL)
		return -1;
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	return 0;
}

SSL *
tls_ssl_new(struct tls *t)
{
	return SSL_new(t->ctx);
}

void
tls_free(struct tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}
