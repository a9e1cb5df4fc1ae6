/*
 * flow — the pace of posting while the runner falls behind: how long
 * mppd's committer waits between batches, from the queue's backlog.
 */
#ifndef MPP_FLOW_H
#define MPP_FLOW_H

/* Messages queued and due beyond which posting is paced ... */
#define FLOW_BACKLOG_LOW 500
/* ... up to FLOW_PAUSE_MAX_US a batch at this many and more. */
#define FLOW_BACKLOG_HIGH 2500
#define FLOW_PAUSE_MAX_US 30000L

/*
 * Microseconds to wait before the next batch, given the messages queued
 * (due, not yet claimed) and sending (claimed by a runner): 0 unless a
 * runner is delivering and the backlog is past FLOW_BACKLOG_LOW, then
 * rising in proportion to FLOW_PAUSE_MAX_US at FLOW_BACKLOG_HIGH.
 */
long flow_pause_us(long long queued, long long sending);

#endif
