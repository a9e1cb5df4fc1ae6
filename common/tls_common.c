/* tls_common — see tls_common.h. */
#include "tls_common.h"

int
tls_common_settings(SSL_CTX *ctx, int min_version)
{
	if (min_version < TLS1_2_VERSION)
		min_version = TLS1_2_VERSION;
	if (!SSL_CTX_set_min_proto_version(ctx, min_version))
		return -1;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	return 0;
}
