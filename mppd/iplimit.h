/*
 * iplimit — a count per client address (concurrent sessions). A small
 * chained hash table; an entry disappears when its count returns to zero,
 * so the table holds at most one entry per connected address.
 */
#ifndef MPP_IPLIMIT_H
#define MPP_IPLIMIT_H

struct iplimit;

struct iplimit *iplimit_new(void);
/* Add one for addr; returns the new count, or -1 on ENOMEM. */
long iplimit_inc(struct iplimit *t, const char *addr);
/* Take one away (never below zero). */
void iplimit_dec(struct iplimit *t, const char *addr);
long iplimit_get(const struct iplimit *t, const char *addr);
void iplimit_free(struct iplimit *t);

#endif
