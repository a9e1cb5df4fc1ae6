/*
 * auth_cache — positive cache of remote password checks.
 *
 * The key of an entry is SHA-256-crypt ("$5$rounds=1000$SALT$", crypt(5))
 * of "<length of user>:<user><password>": the length prefix keeps
 * ("ab", "c") and ("a", "bc") apart. Why this hash: it is a standard
 * salted construction on SHA-256 and comes with libxcrypt, which the
 * password file already needs, so no other crypto library is linked. 1000
 * rounds is its minimum and costs about half a millisecond, nothing next
 * to a network login, while still making each guess against a memory dump
 * cost a thousand SHA-256 runs. The salt comes from getrandom() when the
 * cache is made and lives only in this process's memory, so an entry can
 * be checked by nobody without it and is worthless after a restart. A
 * deliberately slow hash (yescrypt, as for the password file) would make
 * every hit cost what a local check costs, for no gain: the entries never
 * leave memory.
 *
 * Entries are a ring: a new entry overwrites the oldest. A lookup scans
 * all of them, which for a few thousand 43-byte keys is microseconds.
 * Hashing happens outside the lock; only the scan holds it.
 */
#include <crypt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "auth_cache.h"
#include "util.h"

/* The hash part of a SHA-256-crypt string: 43 characters. */
#define KEY_LEN 43
#define SALT_BYTES 12
#define PHRASE_MAX 1100

struct cache_entry {
	char key[KEY_LEN];
	int used;
	long long expires;		/* monotonic milliseconds */
};

struct auth_cache {
	pthread_mutex_t lock;
	long long ttl_ms;
	size_t max;
	size_t next;			/* ring slot the next put takes */
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct cache_entry e[];
};

struct auth_cache *
auth_cache_new(long ttl_sec)
{
	return auth_cache_new_sized(ttl_sec, AUTH_CACHE_MAX);
}

struct auth_cache *
auth_cache_new_sized(long ttl_sec, size_t max)
{
	unsigned char rnd[SALT_BYTES];
	struct auth_cache *c;

	if (max == 0)
		max = 1;
	if (max > (SIZE_MAX - sizeof(*c)) / sizeof(c->e[0]))
		return NULL;
	if ((c = calloc(1, sizeof(*c) + max * sizeof(c->e[0]))) == NULL)
		return NULL;
	c->ttl_ms = ttl_sec > 0 ? ttl_sec * 1000LL : 0;
	c->max = max;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) ||
	    crypt_gensalt_rn("$5$", 1000, (const char *)rnd, sizeof(rnd),
	    c->setting, sizeof(c->setting)) == NULL) {
		explicit_bzero(rnd, sizeof(rnd));
		free(c);
		return NULL;
	}
	explicit_bzero(rnd, sizeof(rnd));
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

/* The entry key for user and password; -1 when it cannot be made. */
static int
make_key(const struct auth_cache *c, const char *user, const char *password,
    char key[KEY_LEN])
{
	char phrase[PHRASE_MAX];
	struct crypt_data *cd;
	const char *h, *dollar;
	int len, r = -1;

	len = snprintf(phrase, sizeof(phrase), "%zu:%s%s", strlen(user), user,
	    password);
	if (len < 0 || (size_t)len >= sizeof(phrase))
		goto out;
	/* Heap, not stack: struct crypt_data is some 32 KiB. */
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		goto out;
	h = crypt_rn(phrase, c->setting, cd, sizeof(*cd));
	if (h != NULL && h[0] == '$' && (dollar = strrchr(h, '$')) != NULL &&
	    strlen(dollar + 1) == KEY_LEN) {
		memcpy(key, dollar + 1, KEY_LEN);
		r = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
out:
	explicit_bzero(phrase, sizeof(phrase));
	return r;
}

/* The live entry with key, or NULL. Called with the lock held. */
static struct cache_entry *
find(struct auth_cache *c, const char key[KEY_LEN], long long now)
{
	size_t i;

	for (i = 0; i < c->max; i++)
		if (c->e[i].used && c->e[i].expires > now &&
		    memcmp(c->e[i].key, key, KEY_LEN) == 0)
			return &c->e[i];
	return NULL;
}

int
auth_cache_hit(struct auth_cache *c, const char *user, const char *password)
{
	char key[KEY_LEN];
	int hit;

	if (c == NULL || c->ttl_ms == 0 ||
	    make_key(c, user, password, key) == -1)
		return 0;
	pthread_mutex_lock(&c->lock);
	hit = find(c, key, util_now_ms()) != NULL;
	pthread_mutex_unlock(&c->lock);
	return hit;
}

void
auth_cache_put(struct auth_cache *c, const char *user, const char *password)
{
	struct cache_entry *e;
	char key[KEY_LEN];
	long long now;

	if (c == NULL || c->ttl_ms == 0 ||
	    make_key(c, user, password, key) == -1)
		return;
	pthread_mutex_lock(&c->lock);
	now = util_now_ms();
	/* A renewed entry moves to the young end of the ring. */
	if ((e = find(c, key, now)) != NULL)
		e->used = 0;
	e = &c->e[c->next];
	memcpy(e->key, key, KEY_LEN);
	e->used = 1;
	e->expires = now + c->ttl_ms;
	c->next = (c->next + 1) % c->max;
	pthread_mutex_unlock(&c->lock);
}

void
auth_cache_clear(struct auth_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	explicit_bzero(c->e, c->max * sizeof(c->e[0]));
	c->next = 0;
	pthread_mutex_unlock(&c->lock);
}

void
auth_cache_free(struct auth_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->lock);
	explicit_bzero(c->e, c->max * sizeof(c->e[0]));
	explicit_bzero(c->setting, sizeof(c->setting));
	free(c);
}
