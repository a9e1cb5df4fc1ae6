/*
 * server — mppd's network side: listening sockets, one connection per
 * client on a libevent loop, per-address and global session limits, the
 * idle timeout, signals. It moves bytes between sockets and sessions and
 * runs the sessions' slow work (auth, store) on worker threads, so no
 * client can stall another.
 */
#ifndef MPP_SERVER_H
#define MPP_SERVER_H

#include <stddef.h>

#include "auth.h"
#include "config.h"
#include "spool.h"

#define SERVER_MAX_LISTEN 16

struct tls;

struct server_ctx {
	const struct mpp_config *cfg;
	const char *config_path;	/* for the log on SIGHUP */
	struct spool *spool;
	struct auth *auth;
	struct tls *tls;		/* NULL without listen_tls */
};

struct server_listen {
	int fd;
	int tls;			/* implicit TLS on this socket */
	int proxy;			/* a PROXY header comes first */
};

/*
 * Create, bind and listen on every address of l, appending to fds (*nfds
 * in and out; at most SERVER_MAX_LISTEN), each marked tls or not. -1 with
 * err.
 */
int server_bind(const struct config_listen *l, int tls,
    struct server_listen *fds, size_t *nfds, char *err, size_t errsz);

/* The same for proxy_listen and proxy_listen_tls: sockets marked proxy. */
int server_bind_proxy(const struct config_listen *l, int tls,
    struct server_listen *fds, size_t *nfds, char *err, size_t errsz);

/*
 * Serve until SIGTERM or SIGINT, or until the sessions a SIGUSR2 (drain)
 * let finish are over (or, with inetd set, until the one session on
 * stdin/stdout ends). Returns an exit code.
 */
int server_run(struct server_ctx *ctx, const struct server_listen *fds,
    size_t nfds, int inetd);

#endif
