/*
 * bench_smtp — the SMTP side of mppbench (--smtp): the dialogue an
 * authenticated submission client has with an MTA, for the Postfix+SASL
 * rows of make bench. A session is connect, 220, EHLO 250, AUTH PLAIN
 * with its initial response 235 (left out with no user: an MTA that
 * relays for loopback, the plain Postfix rows); a message is MAIL 250,
 * RCPT 250, DATA 354, the text, 250; QUIT 221 ends it. Replies go
 * through mpp_client (multi-line ones included), text through
 * bench_net_send_raw.
 *
 * Pipelined (RFC 2920): MAIL, RCPT and DATA go out in one write and their
 * replies are read after, and the end of one text is written together
 * with the next message's MAIL, RCPT and DATA, so that an MTA offering
 * PIPELINING is not held to one command per round trip. AUTH is sent on
 * its own (RFC 4954 lets nothing follow it before its 235).
 *
 * Return convention of bench_net.h: 0 / -1 with a reason in err.
 */
#ifndef BENCH_SMTP_H
#define BENCH_SMTP_H

#include <stddef.h>
#include <sys/uio.h>

#include "../../client/mpp_client.h"

#define BENCH_SMTP_CMDS_MAX 1200	/* MAIL, RCPT and DATA lines */

/* Connect, 220, EHLO helo, AUTH PLAIN user/password, 235 (no AUTH when
   user is NULL). */
int bench_smtp_login(struct mpp_client *c, const char *host, const char *port,
    const char *helo, const char *user, const char *password, char *err,
    size_t errsz);

/* "MAIL FROM:<from>\r\nRCPT TO:<rcpt>\r\nDATA\r\n" into buf; its length,
   0 when it does not fit. */
size_t bench_smtp_envelope(const char *from, const char *rcpt, char *buf,
    size_t bufsz);

/* Read the replies to an envelope sent whole: 250, 250, 354. */
int bench_smtp_envelope_replies(struct mpp_client *c, char *err,
    size_t errsz);

/* Send the envelope, one command and its reply at a time. */
int bench_smtp_envelope_steps(struct mpp_client *c, const char *from,
    const char *rcpt, char *err, size_t errsz);

#endif /* BENCH_SMTP_H */
