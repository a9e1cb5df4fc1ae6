/*
 * spare — delivered messages' files kept, emptied, in spool_dir/spare/ and
 * reused by mppd for the next messages, so that a steady gateway frees and
 * allocates no inode per message (spare.c says why, and what makes it safe
 * across a power cut).
 */
#ifndef MPP_SPARE_H
#define MPP_SPARE_H

#include "spool.h"

#define SPARE_MAX 4096		/* names in spare/ beyond which files go */
#define SPARE_RECOUNT_MS 250	/* the runner counts spare/ at most this often */
#define SPARE_BATCH 64		/* names mppd reads from spare/ at a time */
#define SPARE_IDLE_MS 100	/* an empty spare/ is looked at again after */

/*
 * The runner, for a message whose file is no longer needed: new/ID or
 * cur/ID moved into spare/ and emptied, or removed when spare/ is full or
 * missing. 0, or -1 with errno (ENOENT: in neither directory).
 */
int spare_retire(const struct spool *sp, const char *id);

/*
 * mppd: tmp/ID made from a spare file, emptied and open for writing, as
 * spool_tmp_open() would make it; -1 when none is to be had (the caller
 * then creates the file).
 */
int spare_take(const struct spool *sp, const char *id);

/* At start: every name in spare/ removed; how many. */
unsigned spare_clear(const struct spool *sp);

/* What spool_open() keeps of a spool's spares for this process. */
struct spare_state *spare_state_new(void);
void spare_state_free(struct spare_state *ss);

#endif
