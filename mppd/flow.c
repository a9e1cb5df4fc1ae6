/*
 * flow — pacing posting to delivery. When posting outruns the runner,
 * every message accepted beyond the runner's rate only lengthens the
 * queue, and takes from the runner the CPU and disk it would deliver
 * with: the queue then grows without bound and every message waits
 * longer for its MTA. Pausing the committer between batches (never
 * refusing) lets the backlog settle where posting matches delivery.
 * Only while a runner is delivering: with none running, or with the
 * relays down (the runner claims nothing), posting keeps its full pace,
 * as mppd's promise to post while the MTA is away wants. Postfix's
 * in_flow_delay does the like.
 */
#include "flow.h"

long
flow_pause_us(long long queued, long long sending)
{
	long long over = queued - FLOW_BACKLOG_LOW;

	if (sending <= 0 || over <= 0)
		return 0;
	if (queued >= FLOW_BACKLOG_HIGH)
		return FLOW_PAUSE_MAX_US;
	return (long)(FLOW_PAUSE_MAX_US * over /
	    (FLOW_BACKLOG_HIGH - FLOW_BACKLOG_LOW));
}
