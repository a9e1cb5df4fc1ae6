/*
 * transport_smtp — delivery to one relay over SMTP (transport smtp:HOST:PORT,
 * DESIGN.md "Delivery"; RFC 5321, SIZE from RFC 1870, PIPELINING from RFC
 * 2920, 8BITMIME from RFC 6152).
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
#include "smtp_reply.h"
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

struct smtp {
	char host[SMTP_HOST_MAX];
	char port[8];
	char helo[CONFIG_STR_MAX];	/* the name in EHLO / HELO */
	long long step_ms;		/* bound on each step */
	long long msg_deadline;		/* bound on the whole message, or 0 */
	struct net_conn conn;		/* conn.fd -1: not connected */
	char peer[NET_ADDR_MAX];	/* address connected to, for logs */
	int used;			/* a message was tried on fd */
	int dead;			/* fd failed as a lost connection */
	int pipelining;			/* the server offers PIPELINING */
	int has_size;			/* ... and SIZE */
	int has_8bitmime;		/* ... and 8BITMIME */
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

	return st->msg_deadline != 0 && st->msg_deadline < d ?
	    st->msg_deadline : d;
}

/* Why resolving the relay or connecting to it failed, into why. */
static void
open_failed(struct smtp *st, const struct net_tried *t)
{
	if (t->n > 0)
		set_why(st, "connect to %s: %s", t->addr, net_reason(t->err));
	else if (t->gai != 0)
		set_why(st, "cannot resolve %s: %s", st->host,
		    t->gai == EAI_SYSTEM ? net_reason(t->err) :
		    gai_strerror(t->gai));
	else if (t->err == ETIMEDOUT)
		set_why(st, "timeout resolving %s", st->host);
	else
		set_why(st, "cannot resolve %s: %s", st->host,
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

	if (net_conn_open(&st->conn, st->host, st->port, step_deadline(st),
	    &t) == -1) {
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

/* Take a failed reply as the reason, say QUIT without waiting, close. */
static int
session_refused(struct smtp *st)
{
	set_why(st, "%s", st->rep.text);
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

/* Connect, read the greeting, say hello; 0, or -1 with why. */
static int
session_open(struct smtp *st)
{
	st->pipelining = st->has_size = st->has_8bitmime = 0;
	st->size_max = 0;
	if (conn_open(st) == -1)
		return -1;
	if (conn_reply(st, "greeting") == -1)
		return -1;
	if (st->rep.code != 220)
		return session_refused(st);
	if (session_hello(st) == -1)
		return -1;
	log_debug("relay=%s connected%s%s%s", st->peer,
	    st->pipelining ? " pipelining" : "", st->has_size ? " size" : "",
	    st->has_8bitmime ? " 8bitmime" : "");
	return 0;
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
	if (conn_command(st, "QUIT", "QUIT") == 0)
		conn_drop(st);
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
	st->msg_deadline = 0;
	return status;
}

static enum transport_status
smtp_attempt(struct smtp *st, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n, int kept)
{
	if (!kept && session_open(st) == -1) {
		transport_set_all(r, n, OUTCOME_TEMP, st->why);
		return TRANSPORT_UNREACHABLE;
	}
	if (transaction(st, m, r, n, kept) == ATTEMPT_DONE)
		return TRANSPORT_ANSWERED;
	log_info("id=%s relay=%s kept connection lost (%s), reconnecting",
	    st->id, st->peer, st->why);
	if (session_open(st) == -1) {
		transport_set_all(r, n, OUTCOME_TEMP, st->why);
		return TRANSPORT_UNREACHABLE;
	}
	(void)transaction(st, m, r, n, 0);
	return TRANSPORT_ANSWERED;
}

/* A new session, greeted and answered, then QUIT; the kept one stays. */
static int
smtp_probe(void *state, char *why, size_t whysz)
{
	struct smtp *st = state;
	int rc;

	if (st->conn.fd != -1)
		return 0;		/* a kept connection answered lately */
	st->id = "-";
	st->msg_deadline = util_now_ms() + st->step_ms;
	if ((rc = session_open(st)) == -1)
		strlcpy(why, st->why, whysz);
	else
		session_quit(st);
	st->msg_deadline = 0;
	return rc;
}

/* The first relay of cfg->transport (config gives at least one). */
static void *
smtp_open(const struct mpp_config *cfg, char *err, size_t errsz)
{
	const struct config_hostport *relay = &cfg->transport.relay[0];
	struct smtp *st;
	int n;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	net_conn_init(&st->conn);
	if (cfg->transport.nrelays == 0 || strlcpy(st->host, relay->host,
	    sizeof(st->host)) >= sizeof(st->host)) {
		snprintf(err, errsz, "no SMTP relay");
		free(st);
		return NULL;
	}
	n = snprintf(st->port, sizeof(st->port), "%d", relay->port);
	if (n < 0 || (size_t)n >= sizeof(st->port) ||
	    strlcpy(st->helo, cfg->hostname[0] != '\0' ? cfg->hostname :
	    "localhost", sizeof(st->helo)) >= sizeof(st->helo) ||
	    !addr_ok(st->helo)) {
		/* The name goes into EHLO: it must fit one command line. */
		snprintf(err, errsz, "hostname \"%s\" cannot be used in EHLO",
		    cfg->hostname);
		free(st);
		return NULL;
	}
	st->step_ms = (cfg->delivery_timeout > 0 ? cfg->delivery_timeout :
	    300) * 1000LL;
	return st;
}

static void
smtp_idle(void *state)
{
	session_quit(state);
}

static void
smtp_close(void *state)
{
	if (state == NULL)
		return;
	session_quit(state);
	free(state);
}

const struct transport_ops transport_smtp_ops = {
	.open = smtp_open,
	.deliver = smtp_deliver,
	.probe = smtp_probe,
	.idle = smtp_idle,
	.close = smtp_close,
};
