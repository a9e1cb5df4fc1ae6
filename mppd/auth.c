/*
 * auth — backend list and the file backend. A password file is held as a
 * loaded pwfile behind a read-write lock; a reload builds the new one
 * first and swaps it in, so checks never see a half-read file. An unknown
 * user is checked against a dummy hash made with the same method and cost
 * as the file's first entry, so "no such user" costs what "wrong password"
 * costs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <bsd/string.h>

#include "auth.h"
#include "auth_cache.h"
#include "auth_remote.h"
#include "log.h"
#include "pwfile.h"

enum backend_type { AB_FILE, AB_POP3, AB_FTP };

struct backend {
	enum backend_type type;
	char target[CONFIG_STR_MAX];	/* path, or host */
	int port;
	pthread_rwlock_t lock;		/* AB_FILE: guards pf and dummy */
	struct pwfile pf;
	char dummy[256];
};

struct auth {
	const struct mpp_config *cfg;
	size_t n;
	struct backend b[AUTH_MAX_BACKENDS];
	struct auth_cache *cache;	/* remote acceptances (auth_cache_ttl) */
};

/*
 * A hash of a random password made with the method and cost of the file's
 * first entry (crypt(3) with a whole hash as setting reuses its salt and
 * parameters); yescrypt when the file has no entry.
 */
static void
make_dummy(const struct pwfile *pf, char *out, size_t outsz)
{
	unsigned char rnd[16];
	char pw[sizeof(rnd) * 2 + 1];
	const char *like = NULL;
	size_t i;

	for (i = 0; i < pf->n && like == NULL; i++)
		if (pf->e[i].hash != NULL && pf->e[i].hash[0] == '$')
			like = pf->e[i].hash;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0x5a, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
	if (like != NULL && pwfile_crypt(pw, like, out, outsz) == 0)
		return;
	(void)pwfile_hash(pw, "$y$", out, outsz);
}

static int
file_load(struct backend *b, char *err, size_t errsz)
{
	struct pwfile pf, old;
	char dummy[256] = "";

	if (pwfile_load(&pf, b->target, 0, err, errsz) == -1)
		return -1;
	if (pf.world_readable)
		log_warnx("password file %s is readable by others", b->target);
	make_dummy(&pf, dummy, sizeof(dummy));
	pthread_rwlock_wrlock(&b->lock);
	old = b->pf;
	b->pf = pf;
	memcpy(b->dummy, dummy, sizeof(dummy));
	pthread_rwlock_unlock(&b->lock);
	pwfile_free(&old);
	return 0;
}

/* Copy the user's hash (or the dummy) out under the lock. */
static int
file_hash_for(struct backend *b, const char *user, char *hash, size_t hashsz)
{
	const struct pwfile_entry *e;
	int known;

	pthread_rwlock_rdlock(&b->lock);
	e = pwfile_find(&b->pf, user);
	known = e != NULL;
	strlcpy(hash, known ? e->hash : b->dummy, hashsz);
	pthread_rwlock_unlock(&b->lock);
	return known;
}

static enum outcome
file_check(struct backend *b, const char *user, const char *password)
{
	char hash[PWFILE_LINE_MAX];
	int known, ok;

	known = file_hash_for(b, user, hash, sizeof(hash));
	ok = pwfile_verify(password, hash);
	explicit_bzero(hash, sizeof(hash));
	return known && ok ? OUTCOME_OK : OUTCOME_PERM;
}

static int
backend_parse(struct backend *b, const char *s, size_t len)
{
	size_t skip;

	if (len > 5 && strncmp(s, "file:", 5) == 0) {
		b->type = AB_FILE;
		if (len - 5 >= sizeof(b->target))
			return -1;
		memcpy(b->target, s + 5, len - 5);
		b->target[len - 5] = '\0';
		return 0;
	}
	if (len > 5 && strncmp(s, "pop3:", 5) == 0) {
		b->type = AB_POP3;
		skip = 5;
	} else if (len > 4 && strncmp(s, "ftp:", 4) == 0) {
		b->type = AB_FTP;
		skip = 4;
	} else
		return -1;
	return config_split_hostport(s + skip, len - skip, b->target,
	    sizeof(b->target), &b->port, b->type == AB_POP3 ? 110 : 21);
}

static int
auth_parse(struct auth *a, const char *list, char *err, size_t errsz)
{
	const char *p = list, *comma, *e;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		comma = strchr(p, ',');
		e = comma != NULL ? comma : p + strlen(p);
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (a->n == AUTH_MAX_BACKENDS ||
		    backend_parse(&a->b[a->n], p, (size_t)(e - p)) == -1) {
			snprintf(err, errsz, "bad auth backend \"%.*s\"",
			    (int)(e - p), p);
			return -1;
		}
		pthread_rwlock_init(&a->b[a->n].lock, NULL);
		a->n++;
		p = comma != NULL ? comma + 1 : e;
	}
	if (a->n == 0) {
		snprintf(err, errsz, "no auth backend");
		return -1;
	}
	return 0;
}

struct auth *
auth_new(const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct auth *a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	a->cfg = cfg;
	if (auth_parse(a, cfg->auth, err, errsz) == -1 ||
	    auth_reload(a, err, errsz) == -1) {
		auth_free(a);
		return NULL;
	}
	if ((a->cache = auth_cache_new(cfg->auth_cache_ttl)) == NULL) {
		snprintf(err, errsz, "cannot set up the auth cache");
		auth_free(a);
		return NULL;
	}
	return a;
}

int
auth_reload(struct auth *a, char *err, size_t errsz)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (a->b[i].type == AB_FILE &&
		    file_load(&a->b[i], err, errsz) == -1)
			return -1;
	/* auth_cache: a reload is also the way to forget remote answers. */
	auth_cache_clear(a->cache);
	return 0;
}

static enum outcome
backend_check(struct auth *a, struct backend *b, const char *user,
    const char *password, char *why, size_t whysz)
{
	int t = (int)a->cfg->auth_timeout;

	switch (b->type) {
	case AB_FILE:
		snprintf(why, whysz, "file:%s", b->target);
		return file_check(b, user, password);
	case AB_POP3:
		return auth_pop3_check(b->target, b->port, user, password, t,
		    why, whysz);
	case AB_FTP:
		return auth_ftp_check(b->target, b->port, user, password, t,
		    why, whysz);
	}
	return OUTCOME_TEMP;
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
		snprintf(detail, detailsz, "cache");
		return OUTCOME_OK;
	}
	for (i = 0; i < a->n; i++) {
		why[0] = '\0';
		r = backend_check(a, &a->b[i], user, password, why,
		    sizeof(why));
		if (used < detailsz)
			used += (size_t)snprintf(detail + used, detailsz - used,
			    "%s%s=%s", i ? "," : "", why, r == OUTCOME_OK ?
			    "ok" : r == OUTCOME_PERM ? "rejected" : "unavailable");
		if (r == OUTCOME_OK) {
			/* auth_cache: only remote answers are worth keeping. */
			if (a->b[i].type != AB_FILE)
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
		if (a->b[i].type != AB_FILE)
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
	for (i = 0; i < a->n; i++) {
		pwfile_free(&a->b[i].pf);
		pthread_rwlock_destroy(&a->b[i].lock);
	}
	free(a);
}
