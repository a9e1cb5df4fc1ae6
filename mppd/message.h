/*
 * message — turns the unstuffed text of one posting into the message that
 * is stored: the header section is held until it ends, checked and parsed
 * (recipients from To/Cc/Bcc, or from the topmost resent block's
 * Resent-To/Cc/Bcc when it names any), Bcc:, Resent-Bcc:, any client
 * Sender: or Resent-Sender:, Return-Path: and any client Received: naming
 * this host after "by" dropped, and Received:, plus Date:, Message-ID:,
 * From:, Sender: and their Resent- forms where needed, added. The body
 * then passes through. Output is buffered; past a threshold it is handed to
 * the spill hook so large messages never sit whole in memory. No I/O of
 * its own but a log line for each Received: dropped.
 */
#ifndef MPP_MESSAGE_H
#define MPP_MESSAGE_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

#define MESSAGE_HEADER_MAX (1024 * 1024)	/* whole header section */
#define MESSAGE_SPILL_AT (64 * 1024)		/* buffered output */
#define MESSAGE_ADDR_MAX 512			/* a recipient, qualified */

struct message_params {
	const char *queue_id;
	const char *client_addr;	/* numeric, no brackets */
	const char *hostname;
	const char *auth_user;		/* login name as given to USER */
	const char *sender;		/* envelope sender address */
	const char *sender_domain;	/* qualifies a bare local part */
	time_t now;
	unsigned long long max_size;	/* of the client's text */
	size_t max_rcpts;
};

enum message_verdict {
	MSG_OK,		/* store it */
	MSG_REJECT,	/* 550: refused for good */
	MSG_TEMPFAIL	/* 451: could not be processed now */
};

/* Receives buffered output in order; -1 makes the message MSG_TEMPFAIL. */
typedef int (*message_spill_fn)(void *ctx, const char *data, size_t len);

struct message;

/* New builder; NULL on ENOMEM. Copies every string of p. */
struct message *message_new(const struct message_params *p,
    message_spill_fn spill, void *ctx);

/* Add unstuffed text (LF line ends). Always 0: errors are kept for finish. */
int message_append(struct message *m, const char *data, size_t len);

/*
 * The text has ended. text_bytes: what the client sent, bare_crlf and nul:
 * as the text reader saw them. Decides the verdict; for MSG_OK the rest of
 * the output is in message_output() and the recipients are known.
 */
enum message_verdict message_finish(struct message *m, int bare_crlf,
    int nul);

/* Why the message was refused or failed, for the log; "" when it was not. */
const char *message_reason(const struct message *m);

/* Output not yet spilled; the caller may take it (buf_free it later). */
struct buf *message_output(struct message *m);
/* Total bytes of output, spilled or not. */
unsigned long long message_size(const struct message *m);
/* Recipients after finish; array owned by m. */
size_t message_rcpt_count(const struct message *m);
const char *message_rcpt(const struct message *m, size_t i);
const char *const *message_rcpts(const struct message *m);
/* The params as copied. */
const struct message_params *message_params(const struct message *m);

void message_free(struct message *m);

#endif
