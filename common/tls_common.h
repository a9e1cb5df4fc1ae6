/*
 * tls_common — the settings every TLS context of ours shares, the server's
 * (mppd/tls.c) and the client's (tls_client.c), so that both ends are held
 * to one policy: TLS 1.2 as the lowest version (RFC 8996 retired 1.0 and
 * 1.1), no compression (CRIME), no renegotiation.
 */
#ifndef MPP_TLS_COMMON_H
#define MPP_TLS_COMMON_H

#include <openssl/ssl.h>

/*
 * Apply the shared settings to ctx, with min_version (TLS1_2_VERSION or
 * higher; lower is raised to it) as the lowest version. 0, or -1 with
 * OpenSSL's reason queued.
 */
int tls_common_settings(SSL_CTX *ctx, int min_version);

#endif
