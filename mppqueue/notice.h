/*
 * notice — whether and when a sender hears about a message that is still
 * being tried: the delay warning (delay_warning_time seconds after it was
 * received; 0 turns it off). One per message, never for a notice or a
 * message with the null sender: the index records when it went
 * (warned_at), in the transaction that records the attempt that made it.
 */
#ifndef MPP_NOTICE_H
#define MPP_NOTICE_H

#include <stddef.h>
#include <time.h>

#include "bounce.h"
#include "config.h"
#include "index_queue.h"
#include "transport.h"

/* Is a delay warning due for c after an attempt (finished: none left)? */
int notice_delay_due(const struct mpp_config *cfg,
    const struct index_claim *c, int finished, time_t now);

/*
 * If one is due, write the delay warning for c's recipients that r (n of
 * them, the attempt's results) left to try again, its file open at fd.
 * 1 with out filled (the caller records out->row with the attempt, or
 * discards it), 0 when none is due, -1 when it could not be written
 * (logged; the next attempt tries again).
 */
int notice_delay(const struct spool *sp, const struct mpp_config *cfg,
    const struct index_claim *c, int fd, const struct transport_rcpt *r,
    size_t n, int finished, time_t now, struct bounce *out);

#endif
