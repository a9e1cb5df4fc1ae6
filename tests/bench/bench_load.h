/*
 * bench_load — posting load: `concurrency` threads, each running sessions
 * one after another (connect, 220, USER, PASS, then per message DATA 354,
 * text, 250, and QUIT 221; or the SMTP dialogue of bench_smtp.h) until
 * `total` messages have been posted, each session posting at most
 * `per_session`. Every reply is checked; a session
 * that gets an unexpected reply is counted as failed, with its messages, and
 * its thread goes on with the next session.
 *
 * Latency of a message: from the moment its final "." has been handed to
 * the kernel to the moment its 250 has been read. Response time of a
 * message: from the moment it was due (with a rate: t0 + index / rate,
 * however late its thread came to it, so an open-loop client's waiting
 * is counted) or, without a rate, the moment its first command (DATA,
 * MAIL) was sent, to its 250. Post time of a session: from the start of
 * its connect to the 250 of its first message.
 *
 * With a duration the load ends when it is over, not at `total` (which
 * is then only the most messages that may be posted): no message due
 * (with a rate) or begun (without) after the end is posted, sessions
 * end with QUIT, and the messages they were given and did not reach are
 * not counted as failed.
 */
#ifndef BENCH_LOAD_H
#define BENCH_LOAD_H

#include <stddef.h>
#include <stdio.h>

#include "bench_msg.h"

#define BENCH_ERR_MAX	512

/* What the sessions speak: MPP, or SMTP with AUTH (bench_smtp.h). */
enum bench_proto { BENCH_MPP, BENCH_SMTP, BENCH_SMTP_PIPELINED };

struct bench_load_cfg {
	/* SMTP without a user: no AUTH (an MTA that relays for loopback) */
	const char *host, *port, *user, *password;
	enum bench_proto proto;
	const char *helo, *mail_from;	/* SMTP only */
	int concurrency;
	long total;		/* messages */
	long per_session;	/* messages in one session */
	double rate;		/* messages/s over all threads; 0: as fast as possible */
	double duration;	/* seconds to post for; 0: until total */
	int timeout;		/* seconds per reply or write */
	const struct bench_msg *msg;
	unsigned long first_seq;	/* sequence number of the first message */
};

struct bench_load_result {
	long messages;		/* accepted with 250 */
	long sessions;		/* ended with 221 */
	long failed_sessions;
	long failed_messages;	/* not posted, or refused */
	double elapsed_s;
	double *lat_ms;		/* messages entries, unsorted; owned */
	double *resp_ms;	/* messages entries, unsorted; owned */
	double *post_ms;	/* one per session that posted; owned */
	long npost;
	long long *sent_wall_ns;	/* by message index (seq - first_seq):
					   wall clock when its "." left, 0 if
					   it never did; owned. The wall clock
					   of these three is the monotonic
					   clock from the wall clock at t0 */
	long long *ok_wall_ns;		/* by index: when its 250 came, 0 if
					   none did; owned */
	long long *due_wall_ns;		/* by index: where its response time
					   began (see above); owned */
	char first_error[BENCH_ERR_MAX];
};

/* Run the load. 0, or -1 when it could not start (threads, memory). */
int bench_load_run(const struct bench_load_cfg *cfg,
    struct bench_load_result *res);

/* Free what res owns. */
void bench_load_free(struct bench_load_result *res);

#endif /* BENCH_LOAD_H */
