/*
 * retry — the queue's retry and expiry decisions, apart from the runner
 * that acts on them (DESIGN.md, Delivery): when the next attempt is due,
 * and what one attempt's answers make of the message. Pure functions of
 * the config's bounds, the clock and the answers, so that a table of
 * cases tests them; the random part of the backoff is drawn by the
 * caller's function.
 */
#ifndef MPP_RETRY_H
#define MPP_RETRY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "outcome.h"

struct retry_policy {
	long min;		/* retry_min: the shortest wait, seconds */
	long max;		/* retry_max: the longest, before jitter */
	long lifetime;		/* max_queue_lifetime: then pending ones fail */
};

/* A uniform draw from 0 to n - 1 (arc4random_uniform; a fixed one in tests). */
typedef uint32_t (*retry_draw_fn)(uint32_t n);

/*
 * Seconds to wait before attempt number attempts + 1: retry_min doubled
 * per attempt made, up to retry_max, then jittered into its upper half
 * by draw, never under retry_min.
 */
long retry_backoff(const struct retry_policy *p, int attempts,
    retry_draw_fn draw);

/* What one attempt's answers make of the message. */
struct retry_verdict {
	int finished;		/* no recipient left pending */
	int expired;		/* the lifetime is over: pending ones fail */
	int removes_file;	/* finished with every recipient sent */
	size_t last_failed;	/* the last recipient not sent, or n if none */
};

/*
 * Judge the outcomes of n recipients of a message received at
 * received_at, at now. When the lifetime is over, a recipient still
 * OUTCOME_TEMP becomes OUTCOME_PERM in outcome[] (it fails, and is
 * bounced); the rest are left as they are.
 */
void retry_judge(const struct retry_policy *p, long long received_at,
    time_t now, enum outcome *outcome, size_t n, struct retry_verdict *v);

#endif
