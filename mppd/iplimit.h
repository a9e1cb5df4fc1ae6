/*
 * iplimit — a count per client address: concurrent sessions or checks in
 * flight (inc/dec), or authentication failures within a window
 * (fail/failures). A small
 * chained hash table; an entry disappears when its count returns to zero
 * or its window is over, so the table holds only live addresses.
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

/*
 * One more failure from addr at now; the count restarts when the last
 * window (window seconds from its first failure) is over. Returns the
 * count in the current window, or -1 on ENOMEM.
 */
long iplimit_fail(struct iplimit *t, const char *addr, long now,
    long window);
/* The failures of addr in its current window at now (0 once it is over). */
long iplimit_failures(struct iplimit *t, const char *addr, long now,
    long window);
void iplimit_free(struct iplimit *t);

#endif
