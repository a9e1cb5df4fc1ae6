/*
 * auth_remote — the pop3 and ftp backends ("pop3:HOST[:PORT]",
 * "ftp:HOST[:PORT]") as auth backends: the server and the timeout, handed
 * to the check of auth_pop3.c or auth_ftp.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include <bsd/string.h>

#include "auth.h"
#include "auth_remote.h"

struct remote {
	char host[CONFIG_HOST_MAX];
	int port;
	int timeout;			/* auth_timeout, seconds */
};

static void *
remote_open(const struct config_auth_backend *spec,
    const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct remote *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	strlcpy(r->host, spec->server.host, sizeof(r->host));
	r->port = spec->server.port;
	r->timeout = (int)cfg->auth_timeout;
	return r;
}

static void
remote_close(void *state)
{
	free(state);
}

static enum outcome
pop3_check(void *state, const char *user, const char *password, char *why,
    size_t whysz)
{
	const struct remote *r = state;

	return auth_pop3_check(r->host, r->port, user, password, r->timeout,
	    why, whysz);
}

static enum outcome
ftp_check(void *state, const char *user, const char *password, char *why,
    size_t whysz)
{
	const struct remote *r = state;

	return auth_ftp_check(r->host, r->port, user, password, r->timeout,
	    why, whysz);
}

const struct auth_backend_ops auth_pop3_ops = {
	.open = remote_open,
	.check = pop3_check,
	.close = remote_close,
	.remote = 1,
};

const struct auth_backend_ops auth_ftp_ops = {
	.open = remote_open,
	.check = ftp_check,
	.close = remote_close,
	.remote = 1,
};
