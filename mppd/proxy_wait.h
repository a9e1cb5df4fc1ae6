/*
 * proxy_wait — connections accepted on a PROXY port (proxy_listen) whose
 * header has not come yet: the state before a session. Each socket is
 * read on the event loop until proxy_parse() settles, within a deadline
 * from accept. Only the header's bytes are consumed: the rest (MPP
 * commands, or a TLS hello on proxy_listen_tls) stays in the socket for
 * the session. A bad, late or missing header closes the connection
 * without a byte sent, and is logged with the balancer's address.
 */
#ifndef MPP_PROXY_WAIT_H
#define MPP_PROXY_WAIT_H

#include <event2/event.h>

#include "proxy.h"

struct proxy_wait;

/*
 * A wait ended. With a header (h not NULL) fd is the callee's, and peer
 * and tls are what proxy_wait_add() was given; after a failure h is NULL
 * and fd -1 (already closed). h and peer live only for the call.
 */
typedef void (*proxy_wait_fn)(void *arg, int fd, int tls, const char *peer,
    const struct proxy_header *h);

/* Waits on base, each bounded by timeout_sec; NULL on ENOMEM. */
struct proxy_wait *proxy_wait_new(struct event_base *base, long timeout_sec,
    proxy_wait_fn fn, void *arg);

/*
 * Wait for fd's header (peer: the balancer, for the log). 0, or -1 on
 * ENOMEM with fd still the caller's.
 */
int proxy_wait_add(struct proxy_wait *w, int fd, int tls, const char *peer);

/* Connections still waiting. */
long proxy_wait_count(const struct proxy_wait *w);

/* Close every waiting connection, without calling back. */
void proxy_wait_drop_all(struct proxy_wait *w);

/* Drop all and free (NULL is fine). */
void proxy_wait_free(struct proxy_wait *w);

#endif
