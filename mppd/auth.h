/*
 * auth — the password check behind PASS: the backends named by the auth
 * key ("file:PATH, pop3:HOST[:PORT], ftp:HOST[:PORT]"), tried in order.
 * The first that accepts wins; if none accepts and any could not answer,
 * the result is OUTCOME_TEMP (451), else OUTCOME_PERM (530).
 * auth_check() blocks (crypt, network) and is safe from many threads at
 * once; auth_reload() may run concurrently with checks.
 */
#ifndef MPP_AUTH_H
#define MPP_AUTH_H

#include <stddef.h>

#include "config.h"
#include "outcome.h"

struct auth;

/* Open the backends of cfg->auth (loading password files); NULL with err. */
struct auth *auth_new(const struct mpp_config *cfg, char *err, size_t errsz);
/* Re-read the password files (SIGHUP); -1 with err, keeping the old. */
int auth_reload(struct auth *a, char *err, size_t errsz);
/*
 * Check user's password. detail receives, for the log, what each backend
 * asked answered, in order: "backend=NAME result=ok|rejected|unavailable"
 * and " reason=\"...\"" when there is more to say, one such group per
 * backend ("backend=file:/etc/mpp/passwd result=rejected
 * backend=pop3:mail:110 result=unavailable reason=\"connection refused\"";
 * "backend=cache result=ok" for a remembered acceptance).
 */
enum outcome auth_check(struct auth *a, const char *user,
    const char *password, char *detail, size_t detailsz);
/* Nonzero when a check may wait on the network (a pop3 or ftp backend). */
int auth_has_remote(const struct auth *a);

void auth_free(struct auth *a);

/*
 * One auth backend, behind auth_new(): a row of config.h's
 * CONFIG_AUTH_BACKENDS, whose ops are auth_NAME_ops, defined in
 * auth_NAME.c (auth_file.c, auth_pop3.c, auth_ftp.c).
 */
struct auth_backend_ops {
	/*
	 * A backend that holds what it checks against (the file): state
	 * for one entry of the auth key, NULL with err; reload (SIGHUP,
	 * may be NULL) re-reads it, -1 with err keeping the old; check
	 * has auth_check()'s contract for one backend (blocking, many
	 * threads at once), why receiving more to say for the log, or ""
	 * (no '"'); close frees the state (NULL is fine).
	 */
	void *(*open)(const struct config_auth_backend *spec,
	    const struct mpp_config *cfg, char *err, size_t errsz);
	int (*reload)(void *state, char *err, size_t errsz);
	enum outcome (*check)(void *state, const char *user,
	    const char *password, char *why, size_t whysz);
	void (*close)(void *state);
	/*
	 * A remote backend instead has only login: the check against the
	 * entry's server within timeout_sec (auth_timeout), with
	 * auth_remote.h's contract. Its acceptances are cached
	 * (auth_cache_ttl).
	 */
	enum outcome (*login)(const char *host, int port, const char *user,
	    const char *password, int timeout_sec, char *why, size_t whysz);
};

#define AUTH_OPS_DECL(name, arg, port) \
	extern const struct auth_backend_ops auth_##name##_ops;
CONFIG_AUTH_BACKENDS(AUTH_OPS_DECL)
#undef AUTH_OPS_DECL

#endif
