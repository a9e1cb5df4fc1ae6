/* iplimit — FNV-1a over the address text picks the bucket. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iplimit.h"

#define IPLIMIT_BUCKETS 4096

struct ip_entry {
	struct ip_entry *next;
	long count;
	char addr[];
};

struct iplimit {
	struct ip_entry *b[IPLIMIT_BUCKETS];
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
	}
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
