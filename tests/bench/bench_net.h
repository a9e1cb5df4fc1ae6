/*
 * bench_net — what mppbench needs on top of mpp_client: a whole session
 * step with its expected reply, and message text sent as it is.
 *
 * Return convention: 0 / -1; on -1 a reason is in the caller's err buffer
 * and the connection has been closed (a dialogue out of step is useless).
 */
#ifndef BENCH_NET_H
#define BENCH_NET_H

#include <stddef.h>
#include <sys/uio.h>

#include "../../client/mpp_client.h"

/* Send verb (and arg) and check the reply is want. */
int bench_net_step(struct mpp_client *c, const char *verb, const char *arg,
    int want, char *err, size_t errsz);

/* Read one reply and check it is want. */
int bench_net_expect(struct mpp_client *c, int want, const char *what,
    char *err, size_t errsz);

/*
 * Send iov[0..n) as it is (already CRLF, stuffed and ended), each write
 * within c->timeout. The vector is consumed (its entries are changed).
 */
int bench_net_send_raw(struct mpp_client *c, struct iovec *iov, int n,
    char *err, size_t errsz);

/* Connect, read 220, USER 250, PASS 250. */
int bench_net_login(struct mpp_client *c, const char *host, const char *port,
    const char *user, const char *password, char *err, size_t errsz);

/* QUIT, check 221, close. */
int bench_net_quit(struct mpp_client *c, char *err, size_t errsz);

/* Monotonic clock in nanoseconds. */
long long bench_now_ns(void);

/* Wall clock (CLOCK_REALTIME) in nanoseconds. */
long long bench_wall_ns(void);

#endif /* BENCH_NET_H */
