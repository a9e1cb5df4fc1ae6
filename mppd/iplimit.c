/* iplimit — FNV-1a over the address text picks the bucket. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iplimit.h"

#define IPLIMIT_BUCKETS 4096

#define IPLIMIT_SWEEP_AT 8192	/* entries before expired ones are swept */

struct ip_entry {
	struct ip_entry *next;
	long count;
	long since;		/* fail: start of the window */
	char addr[];
};

struct iplimit {
	struct ip_entry *b[IPLIMIT_BUCKETS];
	size_t n;
};

static size_t
bucket(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % IPLIMIT_BUCKETS;
}

struct iplimit *
iplimit_new(void)
{
	return calloc(1, sizeof(struct iplimit));
}

static struct ip_entry **
find(struct iplimit *t, const char *addr)
{
	struct ip_entry **pp = &t->b[bucket(addr)];

	while (*pp != NULL && strcmp((*pp)->addr, addr) != 0)
		pp = &(*pp)->next;
	return pp;
}

long
iplimit_inc(struct iplimit *t, const char *addr)
{
	struct ip_entry **pp = find(t, addr), *e;
	size_t n;

	if (*pp == NULL) {
		n = strlen(addr) + 1;
		if ((e = calloc(1, sizeof(*e) + n)) == NULL)
			return -1;
		memcpy(e->addr, addr, n);
		*pp = e;
		t->n++;
	}
	return ++(*pp)->count;
}

void
iplimit_dec(struct iplimit *t, const char *addr)
{
	struct ip_entry **pp = find(t, addr), *e = *pp;

	if (e == NULL)
		return;
	if (--e->count <= 0) {
		*pp = e->next;
		free(e);
		t->n--;
	}
}

/* Drop every failure entry whose window is over. */
static void
sweep(struct iplimit *t, long now, long window)
{
	struct ip_entry **pp, *e;
	size_t i;

	for (i = 0; i < IPLIMIT_BUCKETS; i++)
		for (pp = &t->b[i]; (e = *pp) != NULL;) {
			if (now - e->since > window) {
				*pp = e->next;
				free(e);
				t->n--;
			} else
				pp = &e->next;
		}
}

long
iplimit_fail(struct iplimit *t, const char *addr, long now, long window)
{
	struct ip_entry **pp;

	if (t->n >= IPLIMIT_SWEEP_AT)
		sweep(t, now, window);
	pp = find(t, addr);
	if (*pp != NULL && now - (*pp)->since > window) {
		(*pp)->count = 0;
		(*pp)->since = now;
	}
	if (iplimit_inc(t, addr) == -1)
		return -1;
	pp = find(t, addr);
	if ((*pp)->count == 1)
		(*pp)->since = now;
	return (*pp)->count;
}

long
iplimit_failures(struct iplimit *t, const char *addr, long now, long window)
{
	struct ip_entry **pp = find(t, addr), *e = *pp;

	if (e == NULL)
		return 0;
	if (now - e->since > window) {
		*pp = e->next;
		free(e);
		t->n--;
		return 0;
	}
	return e->count;
}

long
iplimit_get(const struct iplimit *t, const char *addr)
{
	struct ip_entry **pp = find((struct iplimit *)(uintptr_t)t, addr);

	return *pp != NULL ? (*pp)->count : 0;
}

void
iplimit_free(struct iplimit *t)
{
	struct ip_entry *e, *next;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < IPLIMIT_BUCKETS; i++)
		for (e = t->b[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(t);
}
