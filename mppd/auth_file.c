/*
 * auth_file — the password file backend ("file:PATH"). The file is held
 * as a loaded pwfile behind a read-write lock; a reload builds the new one
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
#include "log.h"
#include "pwfile.h"

struct file_backend {
	char path[CONFIG_STR_MAX];
	pthread_rwlock_t lock;		/* guards what follows */
	struct pwfile pf;
	size_t nclass;			/* cost classes in pf */
	size_t rep[PWFILE_CLASSES_MAX];	/* an entry of each class */
	char cls[PWFILE_CLASSES_MAX][PWFILE_CLASS_MAX];	/* and its name */
};

static int
file_reload(void *state, char *err, size_t errsz)
{
	struct file_backend *b = state;
	struct pwfile pf, old;
	size_t rep[PWFILE_CLASSES_MAX], n, i;
	char cls[PWFILE_CLASSES_MAX][PWFILE_CLASS_MAX];
	int more;

	if (pwfile_load(&pf, b->path, 0, err, errsz) == -1)
		return -1;
	if (pf.world_readable)
		log_warnx("password file %s is readable by others", b->path);
	n = pwfile_classes(&pf, rep, PWFILE_CLASSES_MAX, &more);
	if (more)
		log_warnx("password file %s mixes more than %d kinds of hash: "
		    "a wrong password takes longer for users of the later "
		    "kinds than for unknown users; rehash them", b->path,
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

static void
file_close(void *state)
{
	struct file_backend *b = state;

	if (b == NULL)
		return;
	pwfile_free(&b->pf);
	pthread_rwlock_destroy(&b->lock);
	free(b);
}

static void *
file_open(const struct config_auth_backend *spec,
    const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct file_backend *b;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	strlcpy(b->path, spec->path, sizeof(b->path));
	pthread_rwlock_init(&b->lock, NULL);
	if (file_reload(b, err, errsz) == -1) {
		file_close(b);
		return NULL;
	}
	return b;
}

/* What one check of the file does, copied out from under the lock. */
struct file_work {
	int known;			/* own holds a hash a password can match */
	char own[PWFILE_HASH_MAX];	/* the user's */
	size_t n;
	char other[PWFILE_CLASSES_MAX][PWFILE_HASH_MAX];	/* see the top */
};

static void
file_work_get(struct file_backend *b, const char *user, struct file_work *w)
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
file_check(void *state, const char *user, const char *password, char *why,
    size_t whysz)
{
	struct file_work w;
	size_t i;
	int ok;

	file_work_get(state, user, &w);
	ok = w.known && pwfile_verify(password, w.own);
	/* A refusal: the rest of the classes (see the top of the file). */
	for (i = 0; !ok && i < w.n; i++)
		(void)pwfile_verify(password, w.other[i]);
	explicit_bzero(&w, sizeof(w));
	return ok ? OUTCOME_OK : OUTCOME_PERM;
}

const struct auth_backend_ops auth_file_ops = {
	.open = file_open,
	.reload = file_reload,
	.check = file_check,
	.close = file_close,
};
