/* retry — see retry.h. */
#include "retry.h"

long
retry_backoff(const struct retry_policy *p, int attempts, retry_draw_fn draw)
{
	long delay = p->min;
	int i;

	for (i = 1; i < attempts && delay < p->max; i++)
		delay *= 2;
	if (delay > p->max)
		delay = p->max;
	/* Jitter: somewhere in the upper half, never under retry_min. */
	delay = delay / 2 + (long)draw((uint32_t)(delay / 2 + 1));
	return delay < p->min ? p->min : delay;
}

void
retry_judge(const struct retry_policy *p, long long received_at, time_t now,
    enum outcome *outcome, size_t n, struct retry_verdict *v)
{
	size_t i, pending = 0, sent = 0;

	v->last_failed = n;
	for (i = 0; i < n; i++) {
		if (outcome[i] != OUTCOME_OK)
			v->last_failed = i;
		if (outcome[i] == OUTCOME_TEMP)
			pending++;
		else if (outcome[i] == OUTCOME_OK)
			sent++;
	}
	v->expired = pending > 0 && now - received_at >= p->lifetime;
	v->finished = pending == 0 || v->expired;
	v->removes_file = v->finished && sent == n;
	if (v->expired)
		for (i = 0; i < n; i++)
			if (outcome[i] == OUTCOME_TEMP)
				outcome[i] = OUTCOME_PERM;
}
