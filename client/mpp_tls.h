/*
 * mpp_tls — the names mppsend.c knows the client's TLS context by. The
 * context is tls_client's (common/tls_client.h); these three names map onto
 * it until mppsend.c calls tls_client directly, and then this file goes.
 */
#ifndef CLIENT_MPP_TLS_H
#define CLIENT_MPP_TLS_H

#include "tls_client.h"

#define mpp_tls_ctx tls_client_ctx
#define mpp_tls_ctx_new tls_client_ctx_new
#define mpp_tls_ctx_free tls_client_ctx_free

#endif /* CLIENT_MPP_TLS_H */
