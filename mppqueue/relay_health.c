/*
 * relay_health — see relay_health.h. The state is two flags and a
 * schedule; every transition is one of the four calls below.
 */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include <bsd/string.h>

#include "relay_health.h"

static long long
cap_of(long max_s)
{
	return (max_s < 1 ? 1 : (long long)max_s) * 1000;
}

void
relay_health_init(struct relay_health *h, long max_s)
{
	memset(h, 0, sizeof(*h));
	h->max_step = cap_of(max_s);
}

void
relay_health_set_max(struct relay_health *h, long max_s)
{
	h->max_step = cap_of(max_s);
	if (h->step > h->max_step)
		h->step = h->max_step;
}

int
relay_health_unreachable(struct relay_health *h, long long now,
    const char *reason)
{
	if (h->down)
		return 0;
	h->down = 1;
	h->probing = 0;
	h->since = now;
	h->step = RELAY_HEALTH_FIRST_MS < h->max_step ?
	    RELAY_HEALTH_FIRST_MS : h->max_step;
	h->next_probe = now + h->step;
	h->outages++;
	strlcpy(h->reason, reason != NULL ? reason : "", sizeof(h->reason));
	return 1;
}

int
relay_health_probe_start(struct relay_health *h, long long now,
    long long *wait_ms)
{
	if (!h->down)
		return -1;
	if (h->probing) {
		*wait_ms = -1;
		return 0;
	}
	if (now < h->next_probe) {
		*wait_ms = h->next_probe - now;
		return 0;
	}
	h->probing = 1;
	return 1;
}

enum relay_event
relay_health_probed(struct relay_health *h, long long now, int ok,
    long long *outage_ms)
{
	long long step;

	assert(h->down && h->probing);
	h->probing = 0;
	if (ok) {
		h->down = 0;
		*outage_ms = now - h->since;
		return RELAY_EVENT_UP;
	}
	step = h->step * 2 < h->max_step ? h->step * 2 : h->max_step;
	h->next_probe = now + step;
	if (step == h->step)
		return RELAY_EVENT_NONE;
	h->step = step;
	return RELAY_EVENT_STEP;
}

void
relay_health_probe_now(struct relay_health *h, long long now)
{
	if (h->down && h->next_probe > now)
		h->next_probe = now;
}
