/*
 * session — one MPP conversation (RFC 1204 as DESIGN.md implements it):
 * the state table, the command table, reply texts and limits. It does no
 * I/O: session_feed() takes the client's bytes and the host's hooks carry
 * replies out and the slow work (password checks, durable storage) to
 * wherever it runs; the host answers with session_auth_done() and
 * session_store_done(). The daemon, the unit tests and the fuzz target all
 * drive this same code.
 */
#ifndef MPP_SESSION_H
#define MPP_SESSION_H

#include <stddef.h>

#include "config.h"
#include "outcome.h"

#define SESSION_LINE_MAX 512	/* a command line with its CRLF */
#define SESSION_USER_MAX 64	/* bytes of a USER argument */
#define SESSION_QID_MAX 64	/* a queue id with its NUL */

enum session_state {
	SS_START,	/* fresh session, or after USER 501 */
	SS_USER_OK,	/* after USER 250 */
	SS_AUTHED,	/* after PASS 250 */
	SS_TEXT,	/* after DATA 354: reading the message text */
	SS_ACCEPTED,	/* after the text got 250 */
	SS_SPENT	/* after 530, or any 451 or 550 */
};

#define R220 "220 Message Posting Service Ready.\r\n"
#define R221 "221 Closing Connection.\r\n"
#define R250 "250 Command OK.\r\n"
#define R354 "354 Enter mail, end with <CRLF>.<CRLF>\r\n"
#define R451 "451 Local error encountered.\r\n"
#define R500 "500 Command unrecognized.\r\n"
#define R501 "501 Argument syntax error.\r\n"
#define R503 "503 Illegal command sequence.\r\n"
#define R530 "530 Authentication Failure.\r\n"
#define R550 "550 Error.\r\n"

struct message;

struct session_hooks {
	/* Send bytes to the client. */
	void (*send)(void *host, const char *data, size_t len);
	/* Check the password; the host answers with session_auth_done().
	   The strings live only for this call. */
	void (*auth)(void *host, const char *user, const char *password);
	/* A text begins: write a new queue id into qid; -1 answers 451. */
	int (*text_begin)(void *host, char *qid, size_t qidsz);
	/* Write output of the text in progress that no longer fits in
	   memory; -1 makes the text fail with 451. */
	int (*spill)(void *host, const char *data, size_t len);
	/* Store the finished message durably; the host answers with
	   session_store_done(). m stays the session's. */
	void (*store)(void *host, struct message *m);
	/* The text in progress was refused or failed: drop what was
	   spilled. */
	void (*text_abort)(void *host);
	/* QUIT was answered: flush the output, then close. */
	void (*close)(void *host);
};

struct session;

/*
 * New session for a client at client_addr (numeric, no brackets); id is a
 * short tag for log lines. cfg must outlive the session. NULL on ENOMEM.
 */
struct session *session_new(const struct session_hooks *hooks, void *host,
    const struct mpp_config *cfg, const char *client_addr, const char *id);

/*
 * PASS on this connection is answered 530 without a check, logging why
 * (require_tls: a password must not cross this network in clear).
 */
void session_refuse_pass(struct session *s, const char *why);

/* Send the greeting. */
void session_start(struct session *s);

/*
 * Consume client input. Returns how many bytes were used: all of them,
 * unless the session now waits for a hook's answer, was closed, or a
 * message text ended; the host keeps the rest and feeds it again (after
 * the answer). So a text's reply and the replies to the commands behind
 * it never come from one call, however much input the call is given.
 */
size_t session_feed(struct session *s, const char *data, size_t len);

/* Answers to the auth and store hooks. */
void session_auth_done(struct session *s, enum outcome result);
void session_store_done(struct session *s, enum outcome result);

/* The client's connection is gone: log why, drop any unfinished text. */
void session_abort(struct session *s, const char *reason);

int session_waiting(const struct session *s);
int session_closed(const struct session *s);
/*
 * Nonzero while a command line has begun and its LF has not come yet (the
 * host bounds how long that may last); never in the message text.
 */
int session_mid_line(const struct session *s);
enum session_state session_get_state(const struct session *s);
const char *session_state_name(enum session_state st);

/* Frees the session and any message in progress (NULL is fine). */
void session_free(struct session *s);

#endif
