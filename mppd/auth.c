/*
 * auth — backend list and the file backend. A password file is held as a
 * loaded pwfile behind a read-write lock; a reload builds the new one
 * first and swaps it in, so checks never see a half-read file.
 *
 * No user enumeration by timing. Checks differ a hundredfold in cost
 * from one method and cost parameter to another (bcrypt at cost 12 some
 * 200 ms, sha512-crypt 1 ms), and a file may mix them and hold locked
 * entries. So a refused PASS checks the password once against a hash of
 * every cost class in the file (pwfile_hash_class), the user's own check
 * counting for its class: an unknown user, a locked entry and a wrong
 * password under any method do the very same work, and take the same
 * time however loaded the machine is, with nothing to calibrate. (A
 * refusal padded by sleeping to a measured cost would not follow the
 * load, which slows the hashing but not the sleep.) The hashes that stand
 * for the classes are entries of the file, checked by pwfile_verify()
 * like the user's own, so each costs what its class costs, on the same
 * code path. A right password is answered after the user's own check
 * alone: it tells no one anything they did not know. The price is that a
 * refusal costs the sum of the classes, not the dearest: the same for a
 * file of one method, at most PWFILE_CLASSES_MAX checks, and it is paid
 * by wrong passwords only, which auth_fail_limit bounds per address.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "auth.h"
#include "auth_cache.h"
#include "auth_net.h"
#include "auth_remote.h"
#include "log.h"
#include "pwfile.h"

enum backend_type { AB_FILE, AB_POP3, AB_FTP };

struct backend {
	enum backend_type type;
	char target[CONFIG_STR_MAX];	/* path, or host */
	int port;
	char name[CONFIG_STR_MAX + 16];	/* for the log: "file:PATH", ... */
	pthread_rwlock_t lock;		/* AB_FILE: guards what follows */
	struct pwfile pf;
	size_t nclass;			/* cost classes in pf */
	size_t rep[PWFILE_CLASSES_MAX];	/* an entry of each class */
	char cls[PWFILE_CLASSES_MAX][PWFILE_CLASS_MAX];	/* and its name */
};

struct auth {
	const struct mpp_config *cfg;
	size_t n;
	struct backend b[AUTH_MAX_BACKENDS];
	struct auth_cache *cache;	/* remote acceptances (auth_cache_ttl) */
};

static int
file_load(struct backend *b, char *err, size_t errsz)
{
	struct pwfile pf, old;
	size_t rep[PWFILE_CLASSES_MAX], n, i;
	char cls[PWFILE_CLASSES_MAX][PWFILE_CLASS_MAX];
	int more;

	if (pwfile_load(&pf, b->target, 0, err, errsz) == -1)
		return -1;
	if (pf.world_readable)
		log_warnx("password file %s is readable by others", b->target);
	n = pwfile_classes(&pf, rep, PWFILE_CLASSES_MAX, &more);
	if (more)
		log_warnx("password file %s mixes more than %d kinds of hash: "
		    "a wrong password takes longer for users of the later "
		    "kinds than for unknown users; rehash them", b->target,
		    PWFILE_CLASSES_MAX);
	for (i = 0; i < n; i++)
		(void)pwfile_hash_class(pf.e[rep[i]].hash, cls[i],
		    sizeof(cls[i]));
	pthread_rwlock_wrlock(&b->lock);
	old = b->pf;
	b->pf = pf;
	b->nclass = n;
	memcpy(b->rep, rep, sizeof(rep));
	memcpy(b->cls, cls, sizeof(cls));
	pthread_rwlock_unlock(&b->lock);
	pwfile_free(&old);
	return 0;
}

/* What one check of the file does, copied out from under the lock. */
struct file_work {
	int known;			/* own holds a hash a password can match */
	char own[PWFILE_HASH_MAX];	/* the user's */
	size_t n;
	char other[PWFILE_CLASSES_MAX][PWFILE_HASH_MAX];	/* see the top */
};

static void
file_work_get(struct backend *b, const char *user, struct file_work *w)
{
	const struct pwfile_entry *e;
	char cls[PWFILE_CLASS_MAX] = "";
	size_t i;

	w->known = 0;
	w->n = 0;
	pthread_rwlock_rdlock(&b->lock);
	e = pwfile_find(&b->pf, user);
	if (e != NULL && pwfile_hash_class(e->hash, cls, sizeof(cls)) == 0) {
		w->known = 1;
		strlcpy(w->own, e->hash, sizeof(w->own));
	}
	for (i = 0; i < b->nclass; i++)
		if (!w->known || strcmp(b->cls[i], cls) != 0)
			strlcpy(w->other[w->n++], b->pf.e[b->rep[i]].hash,
			    sizeof(w->other[0]));
	pthread_rwlock_unlock(&b->lock);
}

static enum outcome
file_check(struct backend *b, const char *user, const char *password)
{
	struct file_work w;
	size_t i;
	int ok;

	file_work_get(b, user, &w);
	ok = w.known && pwfile_verify(password, w.own);
	/* A refusal: the rest of the classes (see the top of the file). */
	for (i = 0; !ok && i < w.n; i++)
		(void)pwfile_verify(password, w.other[i]);
	explicit_bzero(&w, sizeof(w));
	return ok ? OUTCOME_OK : OUTCOME_PERM;
}

static int
backend_parse_spec(struct backend *b, const char *s, size_t len)
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

/* Parse one entry of the auth list and name the backend for the log. */
static int
backend_parse(struct backend *b, const char *s, size_t len)
{
	if (backend_parse_spec(b, s, len) == -1)
		return -1;
	if (b->type == AB_FILE) {
		/* name has room for "file:" and any target. */
		strlcpy(b->name, "file:", sizeof(b->name));
		strlcat(b->name, b->target, sizeof(b->name));
	} else
		auth_net_name(b->name, sizeof(b->name),
		    b->type == AB_POP3 ? "pop3" : "ftp", b->target, b->port);
	return 0;
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
		r = backend_check(a, &a->b[i], user, password, why,
		    sizeof(why));
		detail_add(detail, detailsz, &used, a->b[i].name, r, why);
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
