/*
 * auth — the backend list: each entry of cfg->auth opened through its
 * row of backends[] (one per kind of config.h's CONFIG_AUTH_BACKENDS),
 * asked in order, and the cache of remote acceptances in front of them.
 * What a backend does, and how the file backend keeps refusals alike in
 * cost, is in its own file (auth_file.c, auth_pop3.c, auth_ftp.c). A
 * remote backend is only its login: the server and the timeout of each of
 * its entries are kept here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "auth.h"
#include "auth_cache.h"
#include "auth_net.h"

#define AUTH_ROW(name, arg, port) &auth_##name##_ops,
static const struct auth_backend_ops *const backends[] = {
	CONFIG_AUTH_BACKENDS(AUTH_ROW)
};
#undef AUTH_ROW

struct backend {
	const struct auth_backend_ops *ops;
	void *state;			/* a local backend's */
	struct config_hostport server;	/* a remote one's */
	int timeout;			/* auth_timeout, seconds */
	char name[CONFIG_STR_MAX + 16];	/* for the log: "file:PATH", ... */
};

struct auth {
	size_t n;
	struct backend b[CONFIG_AUTH_MAX];
	struct auth_cache *cache;	/* remote acceptances (auth_cache_ttl) */
};

/* The log's name of a backend: "file:PATH", "pop3:HOST:PORT". */
static void
backend_name(char *out, size_t outsz, const struct config_auth_backend *spec)
{
	const char *kind = config_auth_name(spec->kind);

	if (spec->path[0] != '\0')
		snprintf(out, outsz, "%s:%s", kind, spec->path);
	else
		auth_net_name(out, outsz, kind, spec->server.host,
		    spec->server.port);
}

static int
backend_open(struct backend *b, const struct config_auth_backend *spec,
    const struct mpp_config *cfg, char *err, size_t errsz)
{
	if ((size_t)spec->kind >= CONFIG_AUTH_KINDS) {
		snprintf(err, errsz, "unknown auth backend");
		return -1;
	}
	b->ops = backends[spec->kind];
	backend_name(b->name, sizeof(b->name), spec);
	if (b->ops->login != NULL) {
		b->server = spec->server;
		b->timeout = (int)cfg->auth_timeout;
		return 0;
	}
	b->state = b->ops->open(spec, cfg, err, errsz);
	return b->state != NULL ? 0 : -1;
}

/* One backend's answer; why as the ops say. */
static enum outcome
backend_check(const struct backend *b, const char *user,
    const char *password, char *why, size_t whysz)
{
	if (b->ops->login != NULL)
		return b->ops->login(b->server.host, b->server.port, user,
		    password, b->timeout, why, whysz);
	return b->ops->check(b->state, user, password, why, whysz);
}

struct auth *
auth_new(const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct auth *a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (cfg->auth.n == 0) {
		snprintf(err, errsz, "no auth backend");
		goto fail;
	}
	for (a->n = 0; a->n < cfg->auth.n && a->n < CONFIG_AUTH_MAX; a->n++)
		if (backend_open(&a->b[a->n], &cfg->auth.b[a->n], cfg, err,
		    errsz) == -1)
			goto fail;
	if ((a->cache = auth_cache_new(cfg->auth_cache_ttl)) == NULL) {
		snprintf(err, errsz, "cannot set up the auth cache");
		goto fail;
	}
	return a;
fail:
	auth_free(a);
	return NULL;
}

int
auth_reload(struct auth *a, char *err, size_t errsz)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (a->b[i].ops->reload != NULL &&
		    a->b[i].ops->reload(a->b[i].state, err, errsz) == -1)
			return -1;
	/* auth_cache: a reload is also the way to forget remote answers. */
	auth_cache_clear(a->cache);
	return 0;
}

/*
 * Add one backend's answer to detail, "backend=NAME result=RESULT" and
 * " reason=\"WHY\"" when there is more to say (why holds no '"': server
 * text in it is log_escape()d). *used counts what detail holds; "..."
 * marks a detail cut short.
 */
static void
detail_add(char *detail, size_t detailsz, size_t *used, const char *name,
    enum outcome r, const char *why)
{
	const char *result = r == OUTCOME_OK ? "ok" :
	    r == OUTCOME_PERM ? "rejected" : "unavailable";
	int n;

	if (*used >= detailsz)
		return;
	n = snprintf(detail + *used, detailsz - *used,
	    "%sbackend=%s result=%s%s%s%s", *used > 0 ? " " : "", name,
	    result, why[0] != '\0' ? " reason=\"" : "", why,
	    why[0] != '\0' ? "\"" : "");
	if (n >= 0 && (size_t)n < detailsz - *used) {
		*used += (size_t)n;
		return;
	}
	if (detailsz > 4)
		memcpy(detail + detailsz - 4, "...", 4);
	*used = detailsz;
}

enum outcome
auth_check(struct auth *a, const char *user, const char *password,
    char *detail, size_t detailsz)
{
	char why[256];
	size_t i, used = 0;
	int any_temp = 0;
	enum outcome r;

	detail[0] = '\0';
	/* auth_cache: a remote acceptance within auth_cache_ttl stands. */
	if (auth_cache_hit(a->cache, user, password)) {
		detail_add(detail, detailsz, &used, "cache", OUTCOME_OK, "");
		return OUTCOME_OK;
	}
	for (i = 0; i < a->n; i++) {
		why[0] = '\0';
		r = backend_check(&a->b[i], user, password, why, sizeof(why));
		detail_add(detail, detailsz, &used, a->b[i].name, r, why);
		if (r == OUTCOME_OK) {
			/* auth_cache: only remote answers are worth keeping. */
			if (a->b[i].ops->login != NULL)
				auth_cache_put(a->cache, user, password);
			return OUTCOME_OK;
		}
		if (r == OUTCOME_TEMP)
			any_temp = 1;
	}
	return any_temp ? OUTCOME_TEMP : OUTCOME_PERM;
}

int
auth_has_remote(const struct auth *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (a->b[i].ops->login != NULL)
			return 1;
	return 0;
}

void
auth_free(struct auth *a)
{
	size_t i;

	if (a == NULL)
		return;
	auth_cache_free(a->cache);
	for (i = 0; i < a->n; i++)
		if (a->b[i].ops != NULL && a->b[i].ops->close != NULL)
			a->b[i].ops->close(a->b[i].state);
	free(a);
}
