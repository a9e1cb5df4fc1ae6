/* transport — picks the transport by the prefix of the config value. */
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

struct transport *
transport_new(const struct mpp_config *cfg, char *err, size_t errsz)
{
	static const struct {
		const char *prefix;
		const struct transport_ops *ops;
	} kinds[] = {
		{ "smtp:", &transport_smtp_ops },
		{ "sendmail:", &transport_sendmail_ops },
		{ "maildir:", &transport_maildir_ops },
	};
	struct transport *t;
	size_t i, n;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		n = strlen(kinds[i].prefix);
		if (strncmp(cfg->transport, kinds[i].prefix, n) != 0)
			continue;
		if ((t = calloc(1, sizeof(*t))) == NULL) {
			snprintf(err, errsz, "out of memory");
			return NULL;
		}
		t->ops = kinds[i].ops;
		t->state = t->ops->open(cfg, cfg->transport + n, err, errsz);
		if (t->state == NULL) {
			free(t);
			return NULL;
		}
		return t;
	}
	snprintf(err, errsz, "unknown transport %s", cfg->transport);
	return NULL;
}

void
transport_deliver(struct transport *t, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n)
{
	transport_set_all(r, n, OUTCOME_TEMP, "not attempted");
	t->ops->deliver(t->state, m, r, n);
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
