/*
 * index_queue — the queue runner's and the administrator's statements on
 * the index: claims with a lease, per-recipient results, listing and
 * state changes. Part of the index module (it shares struct index).
 */
#ifndef MPP_INDEX_QUEUE_H
#define MPP_INDEX_QUEUE_H

#include <stddef.h>
#include <time.h>

#include "index.h"

/*
 * 'sending' rows whose lease ended, or whose owner is a process of this
 * host that no longer exists, go back to 'deferred' (due now). Returns
 * how many, or -1.
 */
int index_release_stale_leases(struct index *ix, const char *hostname,
    time_t now);

#endif
