/*
 * bounce — the notice to a sender that recipients failed for good: a
 * plain-text message from MAILER-DAEMON, with the null envelope sender,
 * naming each failed recipient with the last error, followed by the
 * original message's header section. Written into the spool like any
 * accepted message (tmp/, fsync, new/, directory fsync); the caller
 * inserts its row in the same transaction that marks the recipients
 * bounced.
 */
#ifndef MPP_BOUNCE_H
#define MPP_BOUNCE_H

#include <stddef.h>
#include <time.h>

#include "config.h"
#include "index.h"
#include "spool.h"

#define BOUNCE_HEADERS_MAX (64 * 1024)

struct bounce_rcpt {
	const char *addr;
	const char *error;
};

/* A published bounce and its index row (strings point into it). */
struct bounce {
	char id[SPOOL_ID_MAX];
	char to[512];
	const char *rcpt_list[1];
	struct index_new_msg row;
};

/*
 * Write the bounce of message orig_id (its file open at orig_fd) from
 * sender to the spool. 0 with b filled, or -1 (nothing left behind).
 */
int bounce_create(const struct spool *sp, const struct mpp_config *cfg,
    const char *orig_id, int orig_fd, const char *sender,
    const struct bounce_rcpt *failed, size_t nfailed, time_t now,
    struct bounce *b);

/* Remove a published bounce whose row could not be committed. */
void bounce_discard(const struct spool *sp, const struct bounce *b);

#endif
