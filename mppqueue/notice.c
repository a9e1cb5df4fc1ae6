/* notice — the delay warning's policy; see notice.h. */
#include <stdlib.h>

#include "log.h"
#include "notice.h"

int
notice_delay_due(const struct mpp_config *cfg, const struct index_claim *c,
    int finished, time_t now)
{
	if (cfg->delay_warning_time == 0 || finished || c->is_bounce ||
	    c->sender[0] == '\0' || c->warned_at != 0)
		return 0;
	return (long long)now - c->received_at >= cfg->delay_warning_time;
}

int
notice_delay(const struct spool *sp, const struct mpp_config *cfg,
    const struct index_claim *c, int fd, const struct transport_rcpt *r,
    size_t n, int finished, time_t now, struct bounce *out)
{
	struct bounce_orig o = { c->id, fd, c->sender, (time_t)c->received_at };
	struct bounce_rcpt *late;
	size_t i, k = 0;
	int rc = -1;

	if (!notice_delay_due(cfg, c, finished, now))
		return 0;
	if ((late = calloc(n + 1, sizeof(*late))) == NULL)
		goto fail;
	for (i = 0; i < n; i++)
		if (r[i].result == OUTCOME_TEMP) {
			late[k].addr = r[i].addr;
			late[k].error = r[i].reply;
			late[k++].attempted = now;
		}
	if (k == 0) {
		free(late);
		return 0;
	}
	if (bounce_create(sp, cfg, &o, BOUNCE_DELAYED, late, k, now, out) == 0) {
		log_info("id=%s delay_warning=%s to=<%s> delayed=%zu", c->id,
		    out->id, c->sender, k);
		rc = 1;
	}
fail:
	if (rc == -1)
		log_warn("id=%s cannot write the delay warning", c->id);
	free(late);
	return rc;
}
