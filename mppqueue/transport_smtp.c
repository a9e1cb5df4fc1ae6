/*
 * transport_smtp — delivery over SMTP to a relay of an ordered list
 * (transport smtp:HOST:PORT[, HOST:PORT...], or smtps: for TLS from the
 * first byte, RFC 8314; DESIGN.md "Delivery"; RFC 5321, SIZE from RFC
 * 1870, PIPELINING from RFC 2920, 8BITMIME from RFC 6152, STARTTLS from
 * RFC 3207, AUTH from RFC 4954).
 *
 * A new connection goes to the relays in their order: one that cannot be
 * reached, does not greet with 220 or refuses EHLO (a 421, a 4xx or 5xx,
 * a timeout) is passed over for the next; the first that answers is used.
 * Then TLS as smtp_tls asks (none, may: STARTTLS when offered, encrypt:
 * TLS or no delivery, verify: the relay's certificate checked against
 * smtp_tls_ca or the system store, its name per RFC 6125), EHLO again
 * inside it with the capabilities before it forgotten, and AUTH (PLAIN,
 * else LOGIN) with the relay's login from smtp_auth_file. A password is
 * only sent inside TLS, or to a loopback address. A relay that answered
 * but failed TLS or AUTH is passed over too; when no relay is left the
 * message waits (OUTCOME_TEMP) with the reason, and the delivery counts
 * as answered: the relay is up, only not usable as configured.
 *
 * One struct smtp per delivery thread, holding at most one connection,
 * kept open between messages and closed (QUIT) by transport_idle(). A
 * message on a kept connection starts with RSET only when the last
 * transaction did not end (a refused DATA); after a finished one the
 * reply to MAIL FROM shows whether the connection still lives. When it
 * turns out dead (write error, EOF, 421) before the end of the text was
 * sent, the message is tried once more on a new connection. After the end
 * of the text nothing is retried at once: the MTA may have taken it, so a
 * later attempt risks a duplicate only, never a loss.
 *
 * I/O is blocking in spirit but done through net.h against deadlines, so
 * that every step (resolving the relay and connecting to its addresses,
 * one reply, one flush of the output buffer) ends within
 * cfg->delivery_timeout, and the whole message too. A relay that goes away
 * is an error, never a SIGPIPE. The message file is streamed in chunks
 * through a fixed output buffer in its wire form (dotstuff.h), so a
 * message of any size costs the same memory.
 *
 * Results per recipient follow the reply to its RCPT, then the reply to
 * the end of DATA for those accepted; a failure of the connection leaves
 * every recipient not yet settled OUTCOME_TEMP with the reason.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netdb.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "dotstuff.h"
#include "log.h"
#include "net.h"
#include "relay_auth.h"
#include "smtp_reply.h"
#include "tls_client.h"
#include "transport.h"
#include "util.h"

#define SMTP_DEFAULT_PORT 25
#define SMTP_HOST_MAX 256
#define SMTP_OUT_MAX 65536		/* commands and message text */
#define SMTP_CHUNK 16384		/* bytes read from the file at once */
#define SMTP_CMD_MAX 512		/* command line with CRLF, §4.5.3.1.4 */
/*
 * Longest address we put into a command: "MAIL FROM:<...> SIZE=n" must
 * fit SMTP_CMD_MAX. (RFC 5321 allows 256 for a path; relays take more.)
 */
#define SMTP_ADDR_MAX 400
#define SMTP_QUIT_MS 5000		/* how long QUIT may wait for 221 */

/* One relay of the list, and its login. */
struct relay {
	char host[SMTP_HOST_MAX];
	char port[8];
	const struct relay_auth_entry *login;	/* NULL: no AUTH */
};

/* What opening a session on one relay came to. */
enum relay_result {
	RELAY_OK,		/* greeted, secured and logged in as asked */
	RELAY_DOWN,		/* no greeting and EHLO answer */
	RELAY_REFUSED		/* answered, but TLS or AUTH failed */
};

struct smtp {
	struct relay relay[CONFIG_RELAYS_MAX];
	size_t nrelays;
	const struct relay *cur;	/* the one connected, or last tried */
	enum config_smtp_tls tls;	/* smtp_tls, at least encrypt: smtps */
	int implicit;			/* smtps: TLS from the first byte */
	struct tls_client_ctx *tls_ctx;	/* NULL with smtp_tls = none */
	struct relay_auth *auth;	/* smtp_auth_file, or NULL */
	char helo[CONFIG_STR_MAX];	/* the name in EHLO / HELO */
	long long step_ms;		/* bound on each step */
	long long msg_deadline;		/* bound on the whole message, or 0 */
	long long relay_deadline;	/* bound on opening one relay, or 0 */
	struct net_conn conn;		/* conn.fd -1: not connected */
	char peer[NET_ADDR_MAX];	/* address connected to, for logs */
	int used;			/* a message was tried on fd */
	int dead;			/* fd failed as a lost connection */
	int pipelining;			/* the server offers PIPELINING */
	int has_size;			/* ... and SIZE */
	int has_8bitmime;		/* ... and 8BITMIME */
	int has_starttls;		/* ... and STARTTLS */
	int has_auth, auth_plain, auth_login;	/* ... and AUTH */
	unsigned long long size_max;	/* its limit, 0 for none */
	size_t answered;		/* recipients with a RCPT reply */
	const char *id;			/* queue id of the message, for logs */
	struct smtp_reply_parser parser;
	struct smtp_reply rep;		/* the last reply read */
	char why[TRANSPORT_REPLY_MAX];	/* why the last step failed */
	size_t out_len;
	char out[SMTP_OUT_MAX];
};

/* What one try of a message came to. */
enum attempt {
	ATTEMPT_DONE,		/* every result is set */
	ATTEMPT_RETRY		/* a kept connection was dead: try a new one */
};

static void
set_why(struct smtp *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record why a step failed (cut to fit the recipients' reply field). */
static void
set_why(struct smtp *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	util_vformat(st->why, sizeof(st->why), fmt, ap);
	va_end(ap);
}

/* Close the connection without a word (it failed, or QUIT was said). */
static void
conn_drop(struct smtp *st)
{
	net_conn_close(&st->conn);
	st->used = 0;
	st->out_len = 0;
}

/*
 * When the current step must end: its own bound, but never after the
 * message's, so one attempt never outlives the runner's lease on it.
 */
static long long
step_deadline(const struct smtp *st)
{
	long long d = util_now_ms() + st->step_ms;

	if (st->msg_deadline != 0 && st->msg_deadline < d)
		d = st->msg_deadline;
	return st->relay_deadline != 0 && st->relay_deadline < d ?
	    st->relay_deadline : d;
}

/*
 * While relay i of the list is being opened: an equal share of the time
 * left to it and each after it, so a relay whose name or address never
 * answers cannot use up the time of the ones after it. The last gets
 * what is left.
 */
static void
relay_share(struct smtp *st, size_t i)
{
	long long now = util_now_ms(), end = st->msg_deadline != 0 ?
	    st->msg_deadline : now + st->step_ms;

	st->relay_deadline = i + 1 < st->nrelays && end > now ?
	    now + (end - now) / (long long)(st->nrelays - i) : 0;
}

/* Why resolving the relay or connecting to it failed, into why. */
static void
open_failed(struct smtp *st, const struct net_tried *t)
{
	if (t->n > 0)
		set_why(st, "connect to %s: %s", t->addr, net_reason(t->err));
	else if (t->gai != 0)
		set_why(st, "cannot resolve %s: %s", st->cur->host,
		    t->gai == EAI_SYSTEM ? net_reason(t->err) :
		    gai_strerror(t->gai));
	else if (t->err == ETIMEDOUT)
		set_why(st, "timeout resolving %s", st->cur->host);
	else
		set_why(st, "cannot resolve %s: %s", st->cur->host,
		    net_reason(t->err));
}

/*
 * Resolve the relay and connect to its addresses in turn, all within one
 * step; 0 or -1 (why set).
 */
static int
conn_open(struct smtp *st)
{
	struct net_tried t;

	if (net_conn_open(&st->conn, st->cur->host, st->cur->port,
	    step_deadline(st), &t) == -1) {
		open_failed(st, &t);
		return -1;
	}
	strlcpy(st->peer, t.addr, sizeof(st->peer));
	st->used = st->dead = 0;
	st->out_len = 0;
	smtp_reply_init(&st->parser);
	return 0;
}

/* Write the output buffer whole, within one step; 0, or -1 (dropped). */
static int
conn_flush(struct smtp *st, const char *what)
{
	if (net_conn_write(&st->conn, st->out, st->out_len,
	    step_deadline(st)) == 0) {
		st->out_len = 0;
		return 0;
	}
	if (errno == ETIMEDOUT)
		set_why(st, "timeout sending %s", what);
	else {
		set_why(st, "lost connection sending %s: %s", what,
		    net_reason(errno));
		st->dead = 1;
	}
	conn_drop(st);
	return -1;
}

static int
conn_put(struct smtp *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Queue one command line (CRLF added) for the next flush; the buffer is
 * flushed first when it cannot hold one more command. 0, or -1 (dropped).
 */
static int
conn_put(struct smtp *st, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (st->out_len + SMTP_CMD_MAX > sizeof(st->out) &&
	    conn_flush(st, "commands") == -1)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(st->out + st->out_len, SMTP_CMD_MAX - 1, fmt, ap);
	va_end(ap);
	/* Callers check lengths first; a cut command must never be sent. */
	if (n < 0 || n >= SMTP_CMD_MAX - 1) {
		set_why(st, "command too long");
		conn_drop(st);
		return -1;
	}
	st->out_len += (size_t)n;
	st->out[st->out_len++] = '\r';
	st->out[st->out_len++] = '\n';
	return 0;
}

/* Feed the parser what is buffered: 1 a reply, 0 need more, -1 garbled. */
static int
reply_from_buffer(struct smtp *st, const char *what)
{
	enum smtp_reply_status s;
	size_t used;

	s = smtp_reply_feed(&st->parser, st->conn.in + st->conn.in_off,
	    st->conn.in_len - st->conn.in_off, &used, &st->rep);
	st->conn.in_off += used;
	if (s == SMTP_REPLY_MORE)
		return 0;
	if (s == SMTP_REPLY_DONE)
		return 1;
	set_why(st, "garbled reply to %s: %s", what, st->parser.error);
	return -1;
}

/* Read more bytes within deadline: 0, or -1 with why (and maybe dead). */
static int
conn_fill(struct smtp *st, const char *what, long long deadline)
{
	ssize_t n = net_conn_fill(&st->conn, deadline);

	if (n > 0)
		return 0;
	if (n == -1 && errno == ETIMEDOUT) {
		set_why(st, "timeout waiting for reply to %s", what);
		return -1;
	}
	if (n == 0)
		set_why(st, "connection closed waiting for reply to %s", what);
	else
		set_why(st, "lost connection waiting for reply to %s: %s",
		    what, net_reason(errno));
	st->dead = 1;
	return -1;
}

/*
 * Read the next reply into st->rep within one step. 0; or -1 with why set
 * and the connection dropped: timeout, lost connection, garbled reply, or
 * 421 (the server is closing it; then why is its reply).
 */
static int
conn_reply(struct smtp *st, const char *what)
{
	long long deadline = step_deadline(st);
	int r;

	while ((r = reply_from_buffer(st, what)) == 0)
		if (conn_fill(st, what, deadline) == -1) {
			conn_drop(st);
			return -1;
		}
	if (r == -1) {
		conn_drop(st);
		return -1;
	}
	if (st->rep.code == 421) {
		set_why(st, "%s", st->rep.text);
		st->dead = 1;
		conn_drop(st);
		return -1;
	}
	return 0;
}

/* Send one command and read its reply; 0 or -1 as conn_reply(). */
static int
conn_command(struct smtp *st, const char *what, const char *cmd)
{
	if (conn_put(st, "%s", cmd) == -1 || conn_flush(st, what) == -1)
		return -1;
	return conn_reply(st, what);
}

static int session_refused_why(struct smtp *);

/* Take a failed reply as the reason, say QUIT without waiting, close. */
static int
session_refused(struct smtp *st)
{
	set_why(st, "%s", st->rep.text);
	return session_refused_why(st);
}

/* Like session_refused(), the reason already in why. */
static int
session_refused_why(struct smtp *st)
{
	if (conn_put(st, "QUIT") == 0)
		(void)conn_flush(st, "QUIT");
	conn_drop(st);
	return -1;
}

/* EHLO, or HELO when EHLO is refused for good; 0, or -1 (closed). */
static int
session_hello(struct smtp *st)
{
	char cmd[SMTP_CMD_MAX];
	int n;

	n = snprintf(cmd, sizeof(cmd), "EHLO %s", st->helo);
	if (n < 0 || (size_t)n >= sizeof(cmd) - 2) {
		set_why(st, "hostname too long for EHLO");
		conn_drop(st);
		return -1;
	}
	if (conn_command(st, "EHLO", cmd) == -1)
		return -1;
	if (st->rep.code / 100 == 2) {
		st->pipelining = st->rep.has_pipelining;
		st->has_size = st->rep.has_size;
		st->size_max = st->rep.size_max;
		st->has_8bitmime = st->rep.has_8bitmime;
		st->has_starttls = st->rep.has_starttls;
		st->has_auth = st->rep.has_auth;
		st->auth_plain = st->rep.auth_plain;
		st->auth_login = st->rep.auth_login;
		return 0;
	}
	if (st->rep.code / 100 != 5)
		return session_refused(st);
	/* An old server: plain SMTP, no extensions. */
	memcpy(cmd, "HELO", 4);
	if (conn_command(st, "HELO", cmd) == -1)
		return -1;
	return st->rep.code / 100 == 2 ? 0 : session_refused(st);
}

/* Forget what the server offered (a new connection, or TLS began). */
static void
caps_reset(struct smtp *st)
{
	st->pipelining = st->has_size = st->has_8bitmime = 0;
	st->has_starttls = st->has_auth = st->auth_plain = st->auth_login = 0;
	st->size_max = 0;
}

/* TLS on the open connection, verified as smtp_tls says; 0 or -1. */
static int
tls_start(struct smtp *st)
{
	char why[TRANSPORT_REPLY_MAX];

	if (net_conn_start_tls(&st->conn, st->tls_ctx, st->cur->host,
	    step_deadline(st), why, sizeof(why)) == 0)
		return 0;
	set_why(st, "TLS with %s:%s failed: %s", st->cur->host, st->cur->port,
	    errno == ETIMEDOUT ? "timeout" : why);
	conn_drop(st);
	return -1;
}

/* Connect to the current relay, take its greeting, EHLO; 0 or -1. */
static int
relay_greet(struct smtp *st)
{
	caps_reset(st);
	if (conn_open(st) == -1)
		return -1;
	if (st->implicit && tls_start(st) == -1)
		return -1;
	if (conn_reply(st, "greeting") == -1)
		return -1;
	if (st->rep.code != 220)
		return session_refused(st);
	return session_hello(st);
}

/* Refuse the relay for a reason of ours: QUIT, close, -1. */
static int
relay_refuse(struct smtp *st, const char *why)
{
	set_why(st, "relay %s:%s %s", st->cur->host, st->cur->port, why);
	if (conn_put(st, "QUIT") == 0)
		(void)conn_flush(st, "QUIT");
	conn_drop(st);
	return -1;
}

/*
 * STARTTLS as smtp_tls asks, then EHLO again (RFC 3207 §4.2: what was
 * offered in clear is forgotten). 0, or -1 with why (closed).
 */
static int
relay_secure(struct smtp *st)
{
	if (st->conn.tls != NULL || st->tls == CONFIG_SMTP_TLS_NONE)
		return 0;
	if (!st->has_starttls)
		return st->tls == CONFIG_SMTP_TLS_MAY ? 0 :
		    relay_refuse(st, "offers no STARTTLS, and smtp_tls "
		    "requires TLS");
	if (conn_command(st, "STARTTLS", "STARTTLS") == -1)
		return -1;
	if (st->rep.code != 220) {
		if (st->tls == CONFIG_SMTP_TLS_MAY) {
			log_info("id=%s relay=%s:%s STARTTLS refused, going "
			    "on without TLS: %s", st->id, st->cur->host,
			    st->cur->port, st->rep.text);
			return 0;
		}
		set_why(st, "relay %s:%s refused STARTTLS: %s", st->cur->host,
		    st->cur->port, st->rep.text);
		return session_refused_why(st);
	}
	if (tls_start(st) == -1)
		return -1;
	caps_reset(st);
	return session_hello(st);
}

/* Nonzero when the connected peer's address is a loopback one. */
static int
peer_loopback(const struct smtp *st)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(st->conn.fd, (struct sockaddr *)&ss, &len) == -1)
		return 0;
	return net_is_loopback((const struct sockaddr *)&ss, len);
}

/* Send one AUTH line (it holds a secret: wiped after); 0 or -1. */
static int
auth_send(struct smtp *st, const char *line)
{
	int rc = conn_command(st, "AUTH", line);

	explicit_bzero(st->out, sizeof(st->out));
	return rc;
}

/* AUTH LOGIN: the user and the password, each after a 334. */
static int
auth_login(struct smtp *st, const struct relay_auth_entry *e)
{
	char b64[2 * RELAY_AUTH_CRED_MAX + 8];
	int rc;

	if (conn_command(st, "AUTH", "AUTH LOGIN") == -1)
		return -1;
	if (st->rep.code != 334)
		return 0;
	if (relay_auth_base64(e->user, strlen(e->user), b64,
	    sizeof(b64)) == -1 || auth_send(st, b64) == -1)
		return -1;
	if (st->rep.code != 334)
		return 0;
	rc = relay_auth_base64(e->pass, strlen(e->pass), b64, sizeof(b64));
	if (rc == 0)
		rc = auth_send(st, b64);
	explicit_bzero(b64, sizeof(b64));
	return rc;
}

/* AUTH PLAIN with the initial response (RFC 4954 §4). */
static int
auth_plain(struct smtp *st, const struct relay_auth_entry *e)
{
	char line[SMTP_CMD_MAX];
	int rc;

	memcpy(line, "AUTH PLAIN ", 11);
	rc = relay_auth_plain(e, line + 11, sizeof(line) - 13);
	if (rc == 0)
		rc = auth_send(st, line);
	explicit_bzero(line, sizeof(line));
	return rc;
}

/*
 * AUTH with the relay's login, if it has one: only inside TLS or to a
 * loopback address, PLAIN when offered, else LOGIN. Any reply but 235
 * refuses the relay with that reply. 0, or -1 with why (closed).
 */
static int
relay_login(struct smtp *st)
{
	const struct relay_auth_entry *e = st->cur->login;

	if (e == NULL)
		return 0;
	if (!st->has_auth)
		return relay_refuse(st, st->conn.tls != NULL ?
		    "offers no AUTH, and smtp_auth_file has a login for it" :
		    "offers no AUTH without TLS (smtp_tls = none, or no "
		    "STARTTLS), and smtp_auth_file has a login for it");
	if (st->conn.tls == NULL && !peer_loopback(st))
		return relay_refuse(st, "offers AUTH without TLS only: the "
		    "password is not sent in clear");
	if (!st->auth_plain && !st->auth_login)
		return relay_refuse(st, "offers no AUTH mechanism mpp uses "
		    "(PLAIN, LOGIN)");
	if ((st->auth_plain ? auth_plain(st, e) : auth_login(st, e)) == -1)
		return -1;
	if (st->rep.code == 235)
		return 0;
	set_why(st, "AUTH as %s refused by %s:%s: %s", e->user,
	    st->cur->host, st->cur->port, st->rep.text);
	return session_refused_why(st);
}

/* One relay: connect and greet, then TLS and AUTH when full. */
static enum relay_result
relay_open(struct smtp *st, int full)
{
	char tls[96];

	if (relay_greet(st) == -1)
		return RELAY_DOWN;
	if (full && (relay_secure(st) == -1 || relay_login(st) == -1))
		return RELAY_REFUSED;
	log_info("id=%s relay=%s:%s address=%s connected%s%s%s%s", st->id,
	    st->cur->host, st->cur->port, st->peer,
	    st->conn.tls != NULL ? " tls=" : "",
	    net_conn_tls_describe(&st->conn, tls, sizeof(tls)),
	    full && st->cur->login != NULL ? " auth=" : "",
	    full && st->cur->login != NULL ? st->cur->login->user : "");
	return RELAY_OK;
}

/*
 * Add the reason one relay failed to the list of them in all; with more
 * than one relay each is named (a refusal of ours names it already).
 */
static void
why_add(struct smtp *st, enum relay_result res, char *all, size_t allsz)
{
	size_t len = strlen(all);

	if (st->nrelays == 1 || res == RELAY_REFUSED)
		util_format(all + len, allsz - len, "%s%s", len > 0 ? "; " : "",
		    st->why);
	else
		util_format(all + len, allsz - len, "%s%s:%s: %s",
		    len > 0 ? "; " : "", st->cur->host, st->cur->port,
		    st->why);
}

/*
 * A session on the first relay of the list that answers (full: and is
 * secured and logged in as configured). RELAY_OK; or why holds every
 * relay's reason and the result says whether any answered at all.
 */
static enum relay_result
session_open(struct smtp *st, int full)
{
	char all[TRANSPORT_REPLY_MAX] = "";
	enum relay_result res, worst = RELAY_DOWN;
	size_t i;

	for (i = 0; i < st->nrelays; i++) {
		st->cur = &st->relay[i];
		relay_share(st, i);
		res = relay_open(st, full);
		st->relay_deadline = 0;
		if (res == RELAY_OK)
			return RELAY_OK;
		if (res == RELAY_REFUSED)
			worst = RELAY_REFUSED;
		if (st->nrelays > 1)
			log_warnx("id=%s relay=%s:%s passed over: %s", st->id,
			    st->cur->host, st->cur->port, st->why);
		why_add(st, res, all, sizeof(all));
	}
	strlcpy(st->why, all, sizeof(st->why));
	return worst;
}

/* QUIT, a short wait for its reply, close. */
static void
session_quit(struct smtp *st)
{
	long long step = st->step_ms;

	if (st->conn.fd == -1)
		return;
	/* The reply hardly matters; a slow server must not hold us up. */
	if (st->step_ms > SMTP_QUIT_MS)
		st->step_ms = SMTP_QUIT_MS;
	if (conn_command(st, "QUIT", "QUIT") == 0) {
		net_conn_close_notify(&st->conn);
		conn_drop(st);
	}
	st->step_ms = step;
}

/* Nonzero when addr may go into a command: no control bytes, not long. */
static int
addr_ok(const char *addr)
{
	size_t i;

	for (i = 0; addr[i] != '\0'; i++)
		if ((unsigned char)addr[i] < 0x20 || addr[i] == 0x7f ||
		    i >= SMTP_ADDR_MAX)
			return 0;
	return 1;
}

/* A recipient must be a usable address, and not the empty one. */
static int
rcpt_ok(const char *addr)
{
	return addr[0] != '\0' && addr_ok(addr);
}

/* The outcome a reply code means: 2xx done, 5xx refused, the rest later. */
static enum outcome
code_outcome(int code)
{
	if (code / 100 == 2)
		return OUTCOME_OK;
	return code / 100 == 5 ? OUTCOME_PERM : OUTCOME_TEMP;
}

static void
rcpt_set(struct transport_rcpt *r, enum outcome result, const char *reply)
{
	r->result = result;
	strlcpy(r->reply, reply, sizeof(r->reply));
}

/*
 * The connection failed: every recipient not yet settled (no RCPT reply
 * yet, or accepted but the text not yet taken) is tried again later.
 */
static void
fail_rest(struct smtp *st, struct transport_rcpt *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rcpt_ok(r[i].addr) && (i >= st->answered ||
		    r[i].result == OUTCOME_OK))
			rcpt_set(&r[i], OUTCOME_TEMP, st->why);
}

/*
 * Nonzero when the stored text holds a byte above 127. A file that cannot
 * be read counts as 8-bit: declaring 8BITMIME for 7-bit text is allowed,
 * and the read of the text itself reports the error.
 */
static int
text_has_8bit(const struct transport_msg *m)
{
	unsigned char chunk[SMTP_CHUNK];
	off_t off = 0;
	ssize_t n, i;

	while (off < m->size) {
		n = pread(m->fd, chunk, sizeof(chunk), off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
		for (i = 0; i < n; i++)
			if (chunk[i] & 0x80)
				return 1;
		off += n;
	}
	return 0;
}

/*
 * Queue MAIL FROM, with SIZE when the server takes it and BODY=8BITMIME
 * when it does and the text needs it. To a server without 8BITMIME 8-bit
 * text goes as it is, as other MTAs send it: refusing it would hold back
 * mail most such servers take.
 */
static int
put_mail(struct smtp *st, const struct transport_msg *m)
{
	const char *body = st->has_8bitmime && text_has_8bit(m) ?
	    " BODY=8BITMIME" : "";

	if (st->has_size)
		return conn_put(st, "MAIL FROM:<%s> SIZE=%lld%s", m->sender,
		    (long long)m->size, body);
	return conn_put(st, "MAIL FROM:<%s>%s", m->sender, body);
}

/* Queue every RCPT TO (pipelining). */
static int
put_all_rcpts(struct smtp *st, const struct transport_rcpt *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rcpt_ok(r[i].addr) &&
		    conn_put(st, "RCPT TO:<%s>", r[i].addr) == -1)
			return -1;
	return 0;
}

/*
 * MAIL FROM was refused: every recipient gets that reply. With pipelining
 * the RCPT replies are still on their way and are read to stay in step.
 */
static int
mail_refused(struct smtp *st, struct transport_rcpt *r, size_t n)
{
	enum outcome o = st->rep.code / 100 == 5 ? OUTCOME_PERM :
	    OUTCOME_TEMP;
	char reply[TRANSPORT_REPLY_MAX];
	size_t i;

	strlcpy(reply, st->rep.text, sizeof(reply));
	for (i = 0; i < n; i++)
		if (rcpt_ok(r[i].addr))
			rcpt_set(&r[i], o, reply);
	st->answered = n;
	for (i = 0; st->pipelining && i < n; i++)
		if (rcpt_ok(r[i].addr) && conn_reply(st, "RCPT TO") == -1)
			return -1;
	return 0;
}

/*
 * The envelope: MAIL FROM, then one RCPT TO per valid recipient, all in
 * one write with pipelining, else one command at a time. Each recipient's
 * RCPT reply settles it, an accepted one for now (OUTCOME_OK until the
 * text is taken). *accepted counts those. 0, or -1 when the connection
 * failed (why set, dropped).
 */
static int
envelope(struct smtp *st, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n, size_t *accepted)
{
	size_t i;

	*accepted = 0;
	st->answered = 0;
	if (put_mail(st, m) == -1 ||
	    (st->pipelining && put_all_rcpts(st, r, n) == -1) ||
	    conn_flush(st, "MAIL FROM") == -1 ||
	    conn_reply(st, "MAIL FROM") == -1)
		return -1;
	if (st->rep.code / 100 != 2)
		return mail_refused(st, r, n);
	for (i = 0; i < n; i++, st->answered = i) {
		if (!rcpt_ok(r[i].addr))
			continue;
		if (!st->pipelining &&
		    (conn_put(st, "RCPT TO:<%s>", r[i].addr) == -1 ||
		    conn_flush(st, "RCPT TO") == -1))
			return -1;
		if (conn_reply(st, "RCPT TO") == -1)
			return -1;
		rcpt_set(&r[i], code_outcome(st->rep.code), st->rep.text);
		if (r[i].result == OUTCOME_OK)
			(*accepted)++;
	}
	st->answered = n;
	return 0;
}

/* Give every accepted recipient the outcome of the reply in st->rep. */
static void
settle_accepted(struct smtp *st, struct transport_rcpt *r, size_t n)
{
	enum outcome o = code_outcome(st->rep.code);
	size_t i;

	for (i = 0; i < n; i++)
		if (rcpt_ok(r[i].addr) && r[i].result == OUTCOME_OK)
			rcpt_set(&r[i], o, st->rep.text);
}

/* Make room for need more bytes of text; 0, or -1 (dropped). */
static int
text_room(struct smtp *st, size_t need)
{
	if (st->out_len + need <= sizeof(st->out))
		return 0;
	return conn_flush(st, "message text");
}

/*
 * Convert one chunk of the stored file into the output buffer: LF (and,
 * should one be there, a CR alone or CRLF) becomes CRLF, and a line
 * starting with '.' gets one more (RFC 5321 §4.5.2).
 */
static int
text_chunk(struct smtp *st, struct dotstuff *sf, const char *p, size_t len)
{
	size_t n, w;

	while (len > 0) {
		if (text_room(st, DOTSTUFF_ROOM_MIN) == -1)
			return -1;
		n = dotstuff_put(sf, p, len, st->out + st->out_len,
		    sizeof(st->out) - st->out_len, &w);
		st->out_len += w;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Stream the message file, then the final ".". 0; -1 when the connection
 * failed (why set, dropped); -2 when the file could not be read (the
 * connection is dropped too: a DATA cannot be taken back otherwise).
 */
static int
send_text(struct smtp *st, const struct transport_msg *m)
{
	struct dotstuff sf;
	char chunk[SMTP_CHUNK];
	off_t off = 0;
	ssize_t n;

	dotstuff_init(&sf, DOTSTUFF_CR_EOL);
	for (;;) {
		n = pread(m->fd, chunk, sizeof(chunk), off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			set_why(st, "cannot read message file: %s",
			    net_reason(errno));
			conn_drop(st);
			return -2;
		}
		if (n == 0)
			break;
		if (text_chunk(st, &sf, chunk, (size_t)n) == -1)
			return -1;
		off += n;
	}
	if (text_room(st, DOTSTUFF_END_MAX) == -1)
		return -1;
	st->out_len += dotstuff_end(&sf, st->out + st->out_len);
	return conn_flush(st, "message text");
}

/*
 * DATA, the text, and the reply that settles the accepted recipients.
 * 0 when done; -1 when the connection failed before the text was whole
 * (may be retried); -2 when it failed later, or on a local error (results
 * left to the caller's fail_rest()).
 */
static int
data(struct smtp *st, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n)
{
	int rc;

	if (conn_command(st, "DATA", "DATA") == -1)
		return -1;
	if (st->rep.code / 100 == 4 || st->rep.code / 100 == 5) {
		settle_accepted(st, r, n);
		return 0;
	}
	if (st->rep.code != 354) {
		/* Not a reply DATA can get: this server cannot be trusted. */
		set_why(st, "unexpected reply to DATA: %s", st->rep.text);
		conn_drop(st);
		return -2;
	}
	if ((rc = send_text(st, m)) != 0)
		return rc;
	if (conn_reply(st, "end of DATA") == -1)
		return -2;
	/* Any reply to the end of the text ends the transaction (RFC 5321
	   §4.1.1.4): the next message needs no RSET; MAIL's reply will show
	   whether the connection still lives. */
	st->used = 0;
	settle_accepted(st, r, n);
	return 0;
}

/*
 * Start the results of a try: valid recipients wait ("not attempted"),
 * ones that cannot be put into a command are refused for good.
 */
static void
results_start(struct transport_rcpt *r, size_t n)
{
	size_t i;

	transport_set_all(r, n, OUTCOME_TEMP, "not attempted");
	for (i = 0; i < n; i++)
		if (!rcpt_ok(r[i].addr))
			rcpt_set(&r[i], OUTCOME_PERM,
			    "invalid recipient address");
}

/*
 * Settle the results of what cannot be sent at all: a bad sender, a
 * message over the server's SIZE limit. 1 when so (results set), else 0.
 */
static int
refuse_early(struct smtp *st, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n)
{
	char why[TRANSPORT_REPLY_MAX];
	size_t i;
	int len;

	if (!addr_ok(m->sender)) {
		transport_set_all(r, n, OUTCOME_PERM, "invalid sender address");
		return 1;
	}
	if (!st->has_size || st->size_max == 0 ||
	    (unsigned long long)m->size <= st->size_max)
		return 0;
	len = snprintf(why, sizeof(why), "message size %lld exceeds the "
	    "relay's limit of %llu bytes", (long long)m->size, st->size_max);
	if (len < 0 || (size_t)len >= sizeof(why))
		strlcpy(why, "message too large for the relay", sizeof(why));
	for (i = 0; i < n; i++)
		if (rcpt_ok(r[i].addr))
			rcpt_set(&r[i], OUTCOME_PERM, why);
	return 1;
}

/* The connection failed: retry on a new one, or give the reason. */
static enum attempt
lost(struct smtp *st, int may_retry, struct transport_rcpt *r, size_t n)
{
	if (may_retry && st->dead)
		return ATTEMPT_RETRY;
	fail_rest(st, r, n);
	return ATTEMPT_DONE;
}

/*
 * One try of the message on the open connection; may_retry when it is a
 * kept one that may turn out dead.
 */
static enum attempt
transaction(struct smtp *st, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n, int may_retry)
{
	size_t accepted;
	int rc;

	results_start(r, n);
	st->answered = 0;
	if (refuse_early(st, m, r, n))
		return ATTEMPT_DONE;
	if (st->used && conn_command(st, "RSET", "RSET") == -1)
		return lost(st, may_retry, r, n);
	if (st->used && st->rep.code / 100 != 2) {
		set_why(st, "%s", st->rep.text);
		st->dead = 1;
		conn_drop(st);
		return lost(st, may_retry, r, n);
	}
	st->used = 1;
	if (envelope(st, m, r, n, &accepted) == -1)
		return lost(st, may_retry, r, n);
	if (accepted == 0) {
		/*
		 * Nobody to send to: no DATA; RSET ends the transaction now,
		 * so the next message needs none.
		 */
		if (st->conn.fd != -1 && conn_command(st, "RSET", "RSET") == 0 &&
		    st->rep.code / 100 == 2)
			st->used = 0;
		return ATTEMPT_DONE;
	}
	if ((rc = data(st, m, r, n)) == -1)
		return lost(st, may_retry, r, n);
	if (rc == -2)
		fail_rest(st, r, n);
	return ATTEMPT_DONE;
}

static enum transport_status smtp_attempt(struct smtp *,
    const struct transport_msg *, struct transport_rcpt *, size_t, int);

/* One message, within delivery_timeout in all (see step_deadline). */
static enum transport_status
smtp_deliver(void *state, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n)
{
	struct smtp *st = state;
	int kept = st->conn.fd != -1;
	enum transport_status status;

	st->id = m->id != NULL ? m->id : "-";
	st->msg_deadline = util_now_ms() + st->step_ms;
	status = smtp_attempt(st, m, r, n, kept);
	if (status == TRANSPORT_ANSWERED && st->conn.fd != -1)
		log_info("id=%s relay=%s:%s address=%s%s", st->id,
		    st->cur->host, st->cur->port, st->peer,
		    st->conn.tls != NULL ? " tls" : "");
	st->msg_deadline = 0;
	return status;
}

/* The results and status of a session that could not be opened. */
static enum transport_status
not_opened(struct smtp *st, enum relay_result res, struct transport_rcpt *r,
    size_t n)
{
	transport_set_all(r, n, OUTCOME_TEMP, st->why);
	log_warnx("id=%s no relay usable: %s", st->id, st->why);
	return res == RELAY_DOWN ? TRANSPORT_UNREACHABLE : TRANSPORT_ANSWERED;
}

static enum transport_status
smtp_attempt(struct smtp *st, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n, int kept)
{
	enum relay_result res;

	if (!kept && (res = session_open(st, 1)) != RELAY_OK)
		return not_opened(st, res, r, n);
	if (transaction(st, m, r, n, kept) == ATTEMPT_DONE)
		return TRANSPORT_ANSWERED;
	log_info("id=%s relay=%s kept connection lost (%s), reconnecting",
	    st->id, st->peer, st->why);
	if ((res = session_open(st, 1)) != RELAY_OK)
		return not_opened(st, res, r, n);
	(void)transaction(st, m, r, n, 0);
	return TRANSPORT_ANSWERED;
}

/*
 * A new session, greeted and answered, then QUIT; the kept one stays.
 * The relays are tried as a delivery tries them, without TLS or AUTH
 * beyond smtps's (which a greeting needs): whether one is up.
 */
static int
smtp_probe(void *state, char *why, size_t whysz)
{
	struct smtp *st = state;
	int rc = 0;

	if (st->conn.fd != -1)
		return 0;		/* a kept connection answered lately */
	st->id = "-";
	st->msg_deadline = util_now_ms() + st->step_ms;
	if (session_open(st, 0) != RELAY_OK) {
		strlcpy(why, st->why, whysz);
		rc = -1;
	} else
		session_quit(st);
	st->msg_deadline = 0;
	return rc;
}

/* cfg's relays into st, with their logins; -1 with err. */
static int
open_relays(struct smtp *st, const struct mpp_config *cfg, char *err,
    size_t errsz)
{
	const struct config_hostport *hp;
	struct relay *rl;
	size_t i;
	int n;

	if (cfg->transport.nrelays == 0 ||
	    cfg->transport.nrelays > CONFIG_RELAYS_MAX) {
		util_format(err, errsz, "no SMTP relay");
		return -1;
	}
	if (cfg->smtp_auth_file[0] != '\0' && relay_auth_load(
	    cfg->smtp_auth_file, &st->auth, err, errsz) == -1)
		return -1;
	for (i = 0; i < cfg->transport.nrelays; i++) {
		hp = &cfg->transport.relay[i];
		rl = &st->relay[i];
		n = snprintf(rl->port, sizeof(rl->port), "%d", hp->port);
		if (strlcpy(rl->host, hp->host, sizeof(rl->host)) >=
		    sizeof(rl->host) || n < 0 || (size_t)n >= sizeof(rl->port)) {
			util_format(err, errsz, "bad SMTP relay %s", hp->host);
			return -1;
		}
		rl->login = relay_auth_find(st->auth, hp->host, hp->port);
	}
	st->nrelays = cfg->transport.nrelays;
	st->cur = &st->relay[0];
	return 0;
}

/* The TLS context smtp_tls asks for (smtps: at least encrypt). */
static int
open_tls(struct smtp *st, const struct mpp_config *cfg, char *err,
    size_t errsz)
{
	char why[512];

	st->implicit = cfg->transport.kind == CONFIG_TRANSPORT_smtps;
	st->tls = cfg->smtp_tls;
	if (st->implicit && st->tls < CONFIG_SMTP_TLS_ENCRYPT)
		st->tls = CONFIG_SMTP_TLS_ENCRYPT;
	if (st->tls == CONFIG_SMTP_TLS_NONE)
		return 0;
	if (st->tls == CONFIG_SMTP_TLS_VERIFY)
		st->tls_ctx = tls_client_ctx_new(cfg->smtp_tls_ca[0] != '\0' ?
		    cfg->smtp_tls_ca : NULL, why, sizeof(why));
	else
		st->tls_ctx = tls_client_ctx_new_unverified(why, sizeof(why));
	if (st->tls_ctx == NULL) {
		util_format(err, errsz, "smtp_tls: %s", why);
		return -1;
	}
	return 0;
}

static void smtp_close(void *state);

/* The relays of cfg->transport (config gives at least one). */
static void *
smtp_open(const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct smtp *st;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	net_conn_init(&st->conn);
	if (open_relays(st, cfg, err, errsz) == -1 ||
	    open_tls(st, cfg, err, errsz) == -1)
		goto fail;
	if (strlcpy(st->helo, cfg->hostname[0] != '\0' ? cfg->hostname :
	    "localhost", sizeof(st->helo)) >= sizeof(st->helo) ||
	    !addr_ok(st->helo)) {
		/* The name goes into EHLO: it must fit one command line. */
		snprintf(err, errsz, "hostname \"%s\" cannot be used in EHLO",
		    cfg->hostname);
		goto fail;
	}
	st->step_ms = (cfg->delivery_timeout > 0 ? cfg->delivery_timeout :
	    300) * 1000LL;
	return st;
fail:
	smtp_close(st);
	return NULL;
}

static void
smtp_idle(void *state)
{
	session_quit(state);
}

static void
smtp_close(void *state)
{
	struct smtp *st = state;

	if (st == NULL)
		return;
	session_quit(st);
	tls_client_ctx_free(st->tls_ctx);
	relay_auth_free(st->auth);
	free(st);
}

const struct transport_ops transport_smtp_ops = {
	.open = smtp_open,
	.deliver = smtp_deliver,
	.probe = smtp_probe,
	.idle = smtp_idle,
	.close = smtp_close,
};

/* smtps: the same transport; open() reads the kind. */
const struct transport_ops transport_smtps_ops = {
	.open = smtp_open,
	.deliver = smtp_deliver,
	.probe = smtp_probe,
	.idle = smtp_idle,
	.close = smtp_close,
};
