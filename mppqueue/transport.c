/*
 * transport — the transport the config names, from a table with one row
 * per kind of config.h's CONFIG_TRANSPORTS: its ops are
 * transport_NAME_ops, defined in transport_NAME.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "transport.h"

struct transport {
	const struct transport_ops *ops;
	void *state;
};

#define TRANSPORT_ROW(name, arg, port) &transport_##name##_ops,
static const struct transport_ops *const transports[] = {
	CONFIG_TRANSPORTS(TRANSPORT_ROW)
};
#undef TRANSPORT_ROW

struct transport *
transport_new(const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct transport *t;

	if ((size_t)cfg->transport.kind >= CONFIG_TRANSPORT_KINDS) {
		snprintf(err, errsz, "unknown transport %s",
		    cfg->transport.text);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	t->ops = transports[cfg->transport.kind];
	if ((t->state = t->ops->open(cfg, err, errsz)) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

enum transport_status
transport_deliver(struct transport *t, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n)
{
	transport_set_all(r, n, OUTCOME_TEMP, "not attempted");
	return t->ops->deliver(t->state, m, r, n);
}

int
transport_probe(struct transport *t, char *why, size_t whysz)
{
	if (t->ops->probe == NULL)
		return 0;
	return t->ops->probe(t->state, why, whysz);
}

void
transport_idle(struct transport *t)
{
	if (t->ops->idle != NULL)
		t->ops->idle(t->state);
}

void
transport_free(struct transport *t)
{
	if (t == NULL)
		return;
	t->ops->close(t->state);
	free(t);
}

void
transport_set_all(struct transport_rcpt *r, size_t n, enum outcome result,
    const char *reply)
{
	size_t i;

	for (i = 0; i < n; i++) {
		r[i].result = result;
		strlcpy(r[i].reply, reply, sizeof(r[i].reply));
	}
}
