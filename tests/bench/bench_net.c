/*
 * bench_net — see bench_net.h. Commands and replies go through mpp_client;
 * only the message text takes its own path (net_conn_writev over prepared
 * buffers), so that the load generator spends its CPU on the dialogue and
 * not on converting text the server is meant to be measured on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench_net.h"

int
bench_net_expect(struct mpp_client *c, int want, const char *what,
    char *err, size_t errsz)
{
	int code = mpp_client_read_reply(c);

	if (code == -1) {
		(void)snprintf(err, errsz, "%s: %s", what,
		    mpp_client_error(c));
		return -1;
	}
	if (code != want) {
		(void)snprintf(err, errsz, "%s: expected %d, got \"%s\"",
		    what, want, c->reply);
		mpp_client_close(c);
		return -1;
	}
	return 0;
}

int
bench_net_step(struct mpp_client *c, const char *verb, const char *arg,
    int want, char *err, size_t errsz)
{
	if (mpp_client_send_command(c, verb, arg) == -1) {
		(void)snprintf(err, errsz, "%s: %s", verb,
		    mpp_client_error(c));
		mpp_client_close(c);
		return -1;
	}
	return bench_net_expect(c, want, verb, err, errsz);
}

int
bench_net_send_raw(struct mpp_client *c, struct iovec *iov, int n,
    char *err, size_t errsz)
{
	if (net_conn_writev(&c->conn, iov, n,
	    net_deadline((long long)c->timeout * 1000)) == 0)
		return 0;
	(void)snprintf(err, errsz, "message text: %s: %s", c->peer,
	    errno == ETIMEDOUT ? "took no data in time" : net_reason(errno));
	mpp_client_close(c);
	return -1;
}

int
bench_net_login(struct mpp_client *c, const char *host, const char *port,
    const char *user, const char *password, char *err, size_t errsz)
{
	if (mpp_client_connect(c, host, port) == -1) {
		(void)snprintf(err, errsz, "%s", mpp_client_error(c));
		return -1;
	}
	if (bench_net_expect(c, 220, "greeting", err, errsz) == -1 ||
	    bench_net_step(c, "USER", user, 250, err, errsz) == -1 ||
	    bench_net_step(c, "PASS", password, 250, err, errsz) == -1)
		return -1;
	return 0;
}

int
bench_net_quit(struct mpp_client *c, char *err, size_t errsz)
{
	if (bench_net_step(c, "QUIT", NULL, 221, err, errsz) == -1)
		return -1;
	mpp_client_close(c);
	return 0;
}

long long
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long long
bench_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
