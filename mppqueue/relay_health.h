/*
 * relay_health — whether the way to the MTA works, shared by a runner's
 * delivery threads (the caller holds the lock around every call). A
 * delivery that reached no relay marks the relays down; while they are
 * down no message is attempted, and one probe at a time tests the way,
 * after waits of 1 s doubling up to a cap (relay_probe_max). A probe that
 * works marks them up again. No I/O and no clock of its own: the caller
 * passes the time (milliseconds on a monotonic clock) and does the
 * probing and the logging the events call for.
 */
#ifndef MPP_RELAY_HEALTH_H
#define MPP_RELAY_HEALTH_H

#define RELAY_HEALTH_FIRST_MS 1000	/* the wait before the first probe */
#define RELAY_HEALTH_REASON_MAX 512

struct relay_health {
	int down;		/* 1 while the relays are down */
	int probing;		/* a probe is in flight */
	long long since;	/* when they went down */
	long long next_probe;	/* when the next probe may start */
	long long step;		/* the wait that led to next_probe */
	long long max_step;	/* the cap of the wait */
	unsigned long outages;	/* since start, for the caller's logs */
	char reason[RELAY_HEALTH_REASON_MAX];	/* why they went down */
};

/* Relays up, probes capped at max_s seconds (at least 1). */
void relay_health_init(struct relay_health *h, long max_s);

/* A new cap (a reloaded relay_probe_max); the current wait keeps its end. */
void relay_health_set_max(struct relay_health *h, long max_s);

/*
 * A delivery reached no relay at now, for reason. 1 when this begins an
 * outage (the caller logs it, once), 0 when they were down already.
 */
int relay_health_unreachable(struct relay_health *h, long long now,
    const char *reason);

/*
 * May this thread probe at now? 1: yes, it is the one probe in flight
 * (report with relay_health_probed). 0: not now; *wait_ms is how long
 * until the next probe is due, or -1 while another is in flight. -1:
 * the relays are up, there is nothing to probe.
 */
int relay_health_probe_start(struct relay_health *h, long long now,
    long long *wait_ms);

enum relay_event {
	RELAY_EVENT_NONE,	/* the probe failed; the wait is unchanged */
	RELAY_EVENT_STEP,	/* the probe failed; the wait grew */
	RELAY_EVENT_UP		/* the probe worked: the relays are up */
};

/*
 * The result of the probe relay_health_probe_start() allowed, at now:
 * ok, or failed. On RELAY_EVENT_UP *outage_ms is how long they were down.
 */
enum relay_event relay_health_probed(struct relay_health *h, long long now,
    int ok, long long *outage_ms);

/* Probe at once (the transport changed while the relays were down). */
void relay_health_probe_now(struct relay_health *h, long long now);

#endif
