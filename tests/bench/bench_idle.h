/*
 * bench_idle — many logged-in sessions that then say nothing.
 *
 * One thread and one epoll set: sessions are connected `inflight` at a time
 * (so the server's listen queue and auth workers are not flooded), each
 * taken through 220, USER 250, PASS 250, every reply checked. Once all are
 * logged in (or failed), a watcher thread keeps listening on them: a session
 * the server closes or speaks on while it should be idle counts as dropped.
 *
 * Memory: about 150 bytes per session on the client side; the caller must
 * allow count + a few file descriptors (RLIMIT_NOFILE).
 */
#ifndef BENCH_IDLE_H
#define BENCH_IDLE_H

#include <stddef.h>

struct bench_idle;

struct bench_idle_cfg {
	const char *host, *port, *user, *password;
	long count;		/* sessions to hold */
	int inflight;		/* sessions being set up at once */
	int timeout;		/* seconds for one session's setup */
};

struct bench_idle_stats {
	long wanted;		/* cfg->count */
	long open;		/* logged in and still open */
	long failed;		/* setup failed */
	long dropped;		/* logged in, then closed by the server */
	double setup_s;		/* time to set all sessions up */
	char first_error[256];
};

/*
 * Set up cfg->count sessions and start watching them. NULL with a reason in
 * err only when nothing could start (memory, epoll, address); failed
 * sessions are counted in the stats, not fatal.
 */
struct bench_idle *bench_idle_open(const struct bench_idle_cfg *cfg,
    char *err, size_t errsz);

/* The counts right now. */
void bench_idle_stats(struct bench_idle *bi, struct bench_idle_stats *st);

/* Stop watching, close every session, free bi (NULL is fine). */
void bench_idle_close(struct bench_idle *bi);

#endif /* BENCH_IDLE_H */
