/*
 * smtp_reply — an incremental parser of SMTP replies (RFC 5321 §4.2), with
 * no I/O: the SMTP transport feeds it the bytes it reads, the unit tests
 * and the fuzz target feed it whole inputs or one byte at a time, and all
 * three get the same answers.
 *
 * A reply is one or more lines "CODE-text" ending with a line "CODE text"
 * (or a bare "CODE"); every line must carry the same three-digit code, the
 * first digit 2 to 5. A line is at most SMTP_REPLY_LINE_MAX bytes with its
 * line end (CRLF; a bare LF is accepted too), a reply at most
 * SMTP_REPLY_LINES_MAX lines. Anything else is a protocol error, which is
 * final for the parser: the caller drops the connection.
 *
 * The text kept is every line whole (code included), joined with one
 * space, line ends removed and any byte outside printable ASCII replaced by
 * '?', so it can go into a log line, the index or a bounce as it is. It is
 * cut at SMTP_REPLY_TEXT_MAX - 1 bytes (truncated is then set).
 *
 * The lines after the first are also read as EHLO keywords (RFC 5321
 * §4.1.1.1): SIZE [limit] (RFC 1870), PIPELINING (RFC 2920), 8BITMIME,
 * STARTTLS (RFC 3207) and AUTH with its mechanisms (RFC 4954; the old
 * "AUTH=" form too), of which PLAIN and LOGIN are noted. They mean
 * something only in a 250 reply to EHLO; that is the caller's to judge.
 */
#ifndef MPP_SMTP_REPLY_H
#define MPP_SMTP_REPLY_H

#include <stddef.h>

#define SMTP_REPLY_LINE_MAX 512		/* bytes in a line, line end included */
#define SMTP_REPLY_LINES_MAX 100	/* lines in one reply */
#define SMTP_REPLY_TEXT_MAX 1024	/* joined text kept, NUL included */

/* What smtp_reply_feed() found. */
enum smtp_reply_status {
	SMTP_REPLY_ERROR = -1,	/* protocol error; parser->error says which */
	SMTP_REPLY_MORE = 0,	/* every byte taken, the reply not complete */
	SMTP_REPLY_DONE = 1	/* a whole reply is in *out */
};

struct smtp_reply {
	int code;			/* 200..599 */
	int lines;			/* 1..SMTP_REPLY_LINES_MAX */
	char text[SMTP_REPLY_TEXT_MAX];	/* see above; NUL-terminated */
	size_t text_len;		/* strlen(text) */
	int truncated;			/* text was cut */
	int has_size;			/* EHLO keyword SIZE seen */
	unsigned long long size_max;	/* its limit; 0 when none was given */
	int has_pipelining;		/* EHLO keyword PIPELINING seen */
	int has_8bitmime;		/* EHLO keyword 8BITMIME seen */
	int has_starttls;		/* EHLO keyword STARTTLS seen */
	int has_auth;			/* EHLO keyword AUTH seen, ... */
	int auth_plain;			/* ... naming PLAIN */
	int auth_login;			/* ... naming LOGIN */
};

struct smtp_reply_parser {
	struct smtp_reply cur;		/* the reply being read */
	char line[SMTP_REPLY_LINE_MAX];	/* the line being read, no LF */
	size_t len;			/* bytes in line */
	const char *error;		/* static text once SMTP_REPLY_ERROR */
};

/* Make p ready for the first byte of a reply. */
void smtp_reply_init(struct smtp_reply_parser *p);

/*
 * Take bytes from buf[0..len) up to the end of one reply. *used is set to
 * the number of bytes taken: all of them unless DONE, when the rest belongs
 * to the replies that follow (pipelining) and is to be fed again. On DONE
 * the reply is copied to *out and p is ready for the next one. After ERROR
 * every further call returns ERROR again.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply_parser *p,
    const char *buf, size_t len, size_t *used, struct smtp_reply *out);

#endif
