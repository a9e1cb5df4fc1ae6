/*
 * auth_remote — what the remote backends ("pop3:HOST[:PORT]",
 * "ftp:HOST[:PORT]") keep of their entry of the auth key: the server, with
 * the kind's default port already filled in by config, and auth_timeout.
 */
#include <stdio.h>
#include <stdlib.h>

#include <bsd/string.h>

#include "auth_remote.h"

void *
auth_remote_open(const struct config_auth_backend *spec,
    const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct auth_remote *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	strlcpy(r->host, spec->server.host, sizeof(r->host));
	r->port = spec->server.port;
	r->timeout = (int)cfg->auth_timeout;
	return r;
}

void
auth_remote_close(void *state)
{
	free(state);
}
