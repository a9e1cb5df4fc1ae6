/*
 * reconcile — make spool and index agree again after a crash (DESIGN.md,
 * Durability): old tmp/ files go, files in new/ or cur/ without a row and
 * over an hour old move to orphans/, files in cur/ of messages sent to
 * every recipient go (their runner could not remove them), 'sending' rows
 * whose lease ran out or whose owner process is gone go back to
 * 'deferred'. Run by mppd and mppqueue at start. Each action is logged
 * with the queue id.
 */
#ifndef MPP_RECONCILE_H
#define MPP_RECONCILE_H

#include <stddef.h>
#include <time.h>

#include "index.h"
#include "spool.h"

#define RECONCILE_TMP_AGE (36 * 3600)
#define RECONCILE_ORPHAN_AGE 3600

struct reconcile_stats {
	unsigned tmp_removed;
	unsigned orphans;
	unsigned leases_released;
};

/* hostname: this host, to judge which lease owners can be checked. */
int reconcile_spool(const struct spool *sp, struct index *ix,
    const char *hostname, time_t now, struct reconcile_stats *st);

/*
 * What both daemons do at start: open the index of sp at sync, empty
 * spare/, reconcile (a failure there is logged and the start goes on), log
 * what was done, close it. -1 with err when the index cannot be opened.
 */
int reconcile_at_start(const struct spool *sp, enum index_sync sync,
    const char *hostname, char *err, size_t errsz);

#endif
