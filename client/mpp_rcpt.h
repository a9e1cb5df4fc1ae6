/*
 * mpp_rcpt — is an address among a message's To:, Cc: and Bcc: headers?
 *
 * An MPP server takes the recipients from those headers, so a recipient a
 * mail program names only on the command line (git send-email --bcc, say)
 * would silently get nothing. This module keeps the header section of the
 * message as it streams past (at most MPP_RCPT_HEADER_MAX bytes) so that the
 * caller can warn about such a recipient.
 *
 * The check is a careful text search, not an address parser: the address must
 * appear in one of those fields (continuation lines included), ignoring case,
 * and not as part of a longer address. It only decides whether to warn.
 */
#ifndef MPP_RCPT_H
#define MPP_RCPT_H

#include <stddef.h>

#define MPP_RCPT_HEADER_MAX	65536

struct mpp_rcpt {
	char hdr[MPP_RCPT_HEADER_MAX];
	size_t len;
	int complete;		/* the empty line after the headers was seen */
	int overflow;		/* the headers did not fit */
};

/* Forget any message seen before. */
void mpp_rcpt_init(struct mpp_rcpt *r);

/* Take the next chunk of the message (LF or CRLF line ends). */
void mpp_rcpt_feed(struct mpp_rcpt *r, const char *buf, size_t len);

/*
 * 1 when addr (a bare address, or "Name <address>") appears in To:, Cc: or
 * Bcc:, 0 when it does not, -1 when the headers were too long to tell.
 */
int mpp_rcpt_listed(const struct mpp_rcpt *r, const char *addr);

#endif /* MPP_RCPT_H */
