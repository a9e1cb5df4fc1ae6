/*
 * transport — hands one message to the MTA (DESIGN.md, Delivery). The
 * transport named by the config key (smtp:HOST:PORT, sendmail:PATH,
 * maildir:DIR; parsed by config into cfg->transport) is chosen once; each
 * delivery thread owns one struct transport (an SMTP transport keeps its
 * connection between messages).
 *
 * transport_deliver() blocks, bounded by the delivery timeout, and sets a
 * result per recipient: OUTCOME_OK (the MTA took it), OUTCOME_TEMP (try
 * again later), OUTCOME_PERM (refused for good), with the MTA's reply or
 * the reason in reply[] for the log and the bounce.
 */
#ifndef MPP_TRANSPORT_H
#define MPP_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "outcome.h"

#define TRANSPORT_REPLY_MAX 512

struct transport_msg {
	const char *id;		/* queue id, for log lines */
	const char *sender;	/* envelope sender; "" is the null sender */
	int fd;			/* the stored file, LF line ends, at offset 0 */
	off_t size;		/* its size */
};

struct transport_rcpt {
	const char *addr;
	enum outcome result;			/* set by the transport */
	char reply[TRANSPORT_REPLY_MAX];	/* set by the transport */
};

struct transport;

/* A transport of the kind cfg->transport names; NULL with err. */
struct transport *transport_new(const struct mpp_config *cfg, char *err,
    size_t errsz);

/*
 * What a delivery came to beside the per-recipient results: whether an
 * MTA answered at all. The runner's relay health (no attempts against
 * relays known to be down) is driven by TRANSPORT_UNREACHABLE.
 */
enum transport_status {
	TRANSPORT_ANSWERED,	/* an MTA took part; the results say how */
	TRANSPORT_UNREACHABLE	/* no relay connected and greeted: all TEMP */
};

/* Deliver m to the n recipients r; every r[i].result is set. */
enum transport_status transport_deliver(struct transport *t,
    const struct transport_msg *m, struct transport_rcpt *r, size_t n);

/*
 * One test of the way to the MTA, sending no mail: for SMTP a connection
 * that is greeted and answers EHLO, then QUIT. 0 when it works; -1 with
 * the reason. Transports without a peer to lose always answer 0.
 */
int transport_probe(struct transport *t, char *why, size_t whysz);

/* Close any connection kept open (idle, or shutting down). */
void transport_idle(struct transport *t);

void transport_free(struct transport *t);

/*
 * The transports behind transport_new(); each has the same contract. They
 * are exported for their unit tests. open() reads what it needs of
 * cfg->transport (its path or relays) and the keys it uses; NULL with err.
 */
struct transport_ops {
	void *(*open)(const struct mpp_config *cfg, char *err, size_t errsz);
	enum transport_status (*deliver)(void *state,
	    const struct transport_msg *m, struct transport_rcpt *r,
	    size_t n);
	int (*probe)(void *state, char *why, size_t whysz);	/* or NULL */
	void (*idle)(void *state);
	void (*close)(void *state);
};

/* transport_NAME_ops, in transport_NAME.c, for each of CONFIG_TRANSPORTS. */
#define TRANSPORT_OPS_DECL(name, arg, port) \
	extern const struct transport_ops transport_##name##_ops;
CONFIG_TRANSPORTS(TRANSPORT_OPS_DECL)
#undef TRANSPORT_OPS_DECL

/* Set every recipient to result with the same reply (helper for all). */
void transport_set_all(struct transport_rcpt *r, size_t n,
    enum outcome result, const char *reply);

#endif
