/*
 * mpp_client — the client side of RFC 1204 (Message Posting Protocol).
 *
 * Owns one connection to a posting server (a struct net_conn, net.h):
 * connecting with a timeout, reading replies with a timeout, sending
 * commands, and sending message text in its wire form (dotstuff.h) as it
 * streams (nothing limits the size of a message: text goes out in chunks
 * as it is written).
 *
 * Two layers, two return conventions:
 *  - primitives (mpp_client_connect, _send_command, _read_reply, _command,
 *    _text_*) return 0 / -1, or a reply code / -1; on -1 the reason is in
 *    mpp_client_error() and the sysexits(3) code it stands for in c->fail;
 *  - steps of a session (mpp_client_open, _login, _post_fd, _post_buf)
 *    return a sysexits(3) code: EX_OK when the step succeeded, otherwise the
 *    code a sendmail-like program should exit with (EX_TEMPFAIL for 451 or a
 *    lost, refused or silent connection, EX_NOPERM for 530, EX_DATAERR for
 *    550, EX_SOFTWARE for another 5xx, EX_PROTOCOL for a reply that makes no
 *    sense), with mpp_client_error() naming the server's reply.
 *
 * TLS (RFC 8314's implicit TLS: MPP inside TLS from the first byte): set
 * c->tls_ctx (see tls_client.h) after mpp_client_init, and mpp_client_connect
 * performs the handshake, verifying the server's certificate for the host
 * name it was given, before a byte of MPP is read or sent. A failed
 * handshake or verification is EX_TEMPFAIL, "TLS: " and the reason in
 * mpp_client_error(); no command (no password) has been sent then.
 *
 * The password never reaches the trace: PASS is traced as "PASS ****".
 * No global state: a load generator may run many struct mpp_client at once.
 */
#ifndef MPP_CLIENT_H
#define MPP_CLIENT_H

#include <stddef.h>
#include <stdio.h>

#include "dotstuff.h"
#include "net.h"

#define MPP_CLIENT_DEFAULT_PORT	"218"	/* RFC 1204 §3.2 */
#define MPP_CLIENT_DEFAULT_TIMEOUT 60	/* seconds */
#define MPP_CLIENT_LINE_MAX	512	/* a reply line kept; longer is cut */
#define MPP_CLIENT_REPLY_LINES	100	/* lines in one (multi-line) reply */
#define MPP_CLIENT_OUT_MAX	16384	/* write buffer */
#define MPP_CLIENT_HOST_MAX	256	/* host part of HOST[:PORT] */
#define MPP_CLIENT_PORT_MAX	8	/* "65535" and its NUL */
#define MPP_CLIENT_ERR_MAX	1024

/* Called with each chunk of message text as read, before conversion. */
typedef void mpp_client_tap_fn(void *arg, const char *buf, size_t len);

struct mpp_client {
	struct net_conn conn;	/* conn.fd -1 when not connected */
	int timeout;		/* seconds: connect, each reply, each write */
	FILE *trace;		/* the dialogue goes here when not NULL */
	int fail;		/* sysexits code of the last failure */
	char peer[MPP_CLIENT_HOST_MAX + 16];	/* "HOST port PORT" */
	struct tls_client_ctx *tls_ctx;	/* not NULL: speak TLS; not owned */

	int code;		/* code of the last reply, 0 if none */
	char reply[MPP_CLIENT_LINE_MAX];	/* its last line, printable */

	char out[MPP_CLIENT_OUT_MAX];	/* bytes to send */
	size_t out_len;
	struct dotstuff text;	/* the text writer's state */
	unsigned long long text_bytes;	/* text bytes sent, after conversion */

	char err[MPP_CLIENT_ERR_MAX];
};

/* Make c an unconnected client with the given timeout (seconds, > 0). */
void mpp_client_init(struct mpp_client *c, int timeout);

/*
 * Split "HOST", "HOST:PORT", "[V6]", "[V6]:PORT" or a bare IPv6 address into
 * host and port; port is defport when not given. 0, or -1 with a reason in
 * err when spec is malformed or a part does not fit its buffer.
 */
int mpp_client_parse_server(const char *spec, const char *defport,
    char *host, size_t hostsz, char *port, size_t portsz,
    char *err, size_t errsz);

/*
 * Parse one reply line (line end removed). Returns its code (100..599) and
 * sets *final (1 when the reply ends with this line: the 4th character is a
 * space or there is none), or -1 when the line does not start with a code.
 */
int mpp_client_parse_reply(const char *line, size_t len, int *final);

/*
 * Resolve host and connect to port, trying each address, all within
 * c->timeout; then, when c->tls_ctx is set, the TLS handshake
 * (mpp_client_start_tls).
 */
int mpp_client_connect(struct mpp_client *c, const char *host,
    const char *port);

/* Use an already connected fd (a socket; made non-blocking). For tests. */
void mpp_client_attach(struct mpp_client *c, int fd, const char *name);

/*
 * TLS handshake on the connected socket with c->tls_ctx, within c->timeout,
 * verifying the certificate for host (a name or an IP literal). 0 / -1;
 * on -1 the connection is closed. mpp_client_connect calls it when
 * c->tls_ctx is set; a test may call it after mpp_client_attach.
 */
int mpp_client_start_tls(struct mpp_client *c, const char *host);

/* Send "VERB ARG" (or "VERB" when arg is NULL). 0 / -1. */
int mpp_client_send_command(struct mpp_client *c, const char *verb,
    const char *arg);

/* Read one reply; its code, or -1. The text is in c->reply. */
int mpp_client_read_reply(struct mpp_client *c);

/* Send a command and read its reply: the reply code, or -1. */
int mpp_client_command(struct mpp_client *c, const char *verb,
    const char *arg);

/* Start a new message text (after 354): reset the text writer. */
void mpp_client_text_begin(struct mpp_client *c);

/*
 * Convert and queue message text: LF -> CRLF, dot-stuffing; a CR alone is
 * sent as it is (DOTSTUFF_CR_TEXT: the server judges it). 0 / -1.
 */
int mpp_client_text_write(struct mpp_client *c, const char *buf, size_t len);

/* End the text: CRLF if the last line lacks one, then "." CRLF. 0 / -1. */
int mpp_client_text_end(struct mpp_client *c);

/* Connect and read the 220 greeting. A sysexits code. */
int mpp_client_open(struct mpp_client *c, const char *host,
    const char *port);

/* USER and PASS. A sysexits code. */
int mpp_client_login(struct mpp_client *c, const char *user,
    const char *password);

/*
 * DATA, the text read from fd to its end, and the final ".". A sysexits
 * code; EX_IOERR when fd could not be read, and then the connection has been
 * closed so that the server drops the unfinished message. tap, when not
 * NULL, sees every chunk read.
 */
int mpp_client_post_fd(struct mpp_client *c, int fd, mpp_client_tap_fn *tap,
    void *tap_arg);

/*
 * As mpp_client_post_fd, the text starting with head[0..hlen) (what the
 * caller put in front, or read ahead of fd), which tap does not see.
 */
int mpp_client_post_head_fd(struct mpp_client *c, const char *head,
    size_t hlen, int fd, mpp_client_tap_fn *tap, void *tap_arg);

/* DATA, the text in buf, and the final ".". A sysexits code. */
int mpp_client_post_buf(struct mpp_client *c, const char *buf, size_t len);

/* Send QUIT and wait for its reply if the connection still works; close. */
void mpp_client_quit(struct mpp_client *c);

/* Close the connection at once (idempotent). */
void mpp_client_close(struct mpp_client *c);

/* Why the last call failed (never NULL). */
const char *mpp_client_error(const struct mpp_client *c);

#endif /* MPP_CLIENT_H */
