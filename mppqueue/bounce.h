/*
 * bounce — delivery status notifications to a sender (RFC 3464): the
 * failure notice for recipients that failed for good, and the warning for
 * recipients still being tried after delay_warning_time. Either is a
 * multipart/report (report-type=delivery-status) from MAILER-DAEMON with
 * Auto-Submitted: auto-replied (RFC 3834): a text/plain part for people,
 * a message/delivery-status part with a field group per recipient
 * (Final-Recipient, Action, Status, Diagnostic-Code with the relay's
 * reply), and the original header section as text/rfc822-headers (at
 * most BOUNCE_HEADERS_MAX bytes). The MIME boundary is checked against
 * every part, so no content can end a part early.
 *
 * A notice is written into the spool like any accepted message (tmp/,
 * fsync, new/, directory fsync) with the null envelope sender and
 * is_bounce set, so it is never bounced or warned about itself; the
 * caller inserts its row in the transaction that records the attempt.
 */
#ifndef MPP_BOUNCE_H
#define MPP_BOUNCE_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "index.h"
#include "spool.h"

#define BOUNCE_HEADERS_MAX (64 * 1024)
#define BOUNCE_STATUS_MAX 16		/* "5.123.123" and its NUL */

enum bounce_kind {
	BOUNCE_FAILED,		/* given up on: Action: failed */
	BOUNCE_DELAYED		/* still being tried: Action: delayed */
};

/* One recipient to report. */
struct bounce_rcpt {
	const char *addr;
	const char *error;	/* the last reply or reason; "" when none */
	int expired;		/* failed because max_queue_lifetime ran out */
	time_t attempted;	/* when error was met; 0 when not known */
};

/* The message reported on. */
struct bounce_orig {
	const char *id;		/* its queue id */
	int fd;			/* its file, or -1 (no headers then) */
	const char *sender;	/* where the notice goes */
	time_t received_at;
};

/* A published notice and its index row (strings point into it). */
struct bounce {
	char id[SPOOL_ID_MAX];
	char to[512];
	const char *rcpt_list[1];
	struct index_new_msg row;
};

/*
 * The RFC 3463 status of r in a notice of kind: the enhanced code of its
 * SMTP reply when that has the right class, else 5.0.0 for a failure,
 * 4.4.7 for an expiry and 4.0.0 for a delay. out gets BOUNCE_STATUS_MAX.
 */
void bounce_status(const struct bounce_rcpt *r, enum bounce_kind kind,
    char *out);

/*
 * Append the whole notice (header and body, LF line ends) with queue id
 * id to out; headers o->fd cannot give are left out. 0, or -1 (out of
 * memory, or no boundary found).
 */
int bounce_compose(struct buf *out, const struct mpp_config *cfg,
    const char *id, const struct bounce_orig *o, enum bounce_kind kind,
    const struct bounce_rcpt *r, size_t n, time_t now);

/*
 * Write the notice about o to the spool. 0 with b filled, or -1 (nothing
 * left behind).
 */
int bounce_create(const struct spool *sp, const struct mpp_config *cfg,
    const struct bounce_orig *o, enum bounce_kind kind,
    const struct bounce_rcpt *r, size_t n, time_t now, struct bounce *b);

/* Remove a published notice whose row could not be committed. */
void bounce_discard(const struct spool *sp, const struct bounce *b);

#endif
