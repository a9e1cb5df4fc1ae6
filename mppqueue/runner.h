/*
 * runner — the queue runner: `concurrency` delivery threads that claim due
 * messages in the index (with a lease, so several runners never send one
 * message at once), hand them to the transport, and record per-recipient
 * results, retry times (retry.h decides them) and bounces. The main thread waits for wake-ups
 * (the trigger FIFO written by mppd and mppq), signals, and runs the
 * periodic chores (stale leases, purge of old sent rows). A daemon keeps
 * the relays' health (no message attempted while they are down; one
 * probe tests them) and reads the configuration again on SIGHUP.
 */
#ifndef MPP_RUNNER_H
#define MPP_RUNNER_H

#include "config.h"
#include "spool.h"

struct runner_ctx {
	const struct mpp_config *cfg;
	struct spool *sp;
	int oneshot;		/* -1: deliver what is due, then return */
	const struct config_cli *cli;	/* read again on SIGHUP; NULL: not */
};

/* Run until SIGTERM/SIGINT (or, one-shot, until nothing is due).
   Returns a sysexits code. */
int runner_run(struct runner_ctx *ctx);

#endif
