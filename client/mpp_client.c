/*
 * mpp_client — one MPP (RFC 1204) client connection: connect, replies,
 * commands, message text. See mpp_client.h for the contract.
 *
 * All I/O goes through net.h against a deadline, so no server can hold the
 * client longer than its timeout for resolving and connecting, per reply or
 * per write: a server that trickles one byte a second still hits it.
 *
 * A primitive that fails on the connection (I/O error, end of stream,
 * timeout, a line that is not a reply) closes it: the dialogue is out of step
 * and nothing more can be said on it.
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include <bsd/string.h>

#include "mpp_client.h"
#include "tls_client.h"
#include "util.h"

#define QUIT_TIMEOUT	10	/* seconds; QUIT is a courtesy, not a need */
#define READ_CHUNK	16384	/* message text read at a time */

static void set_err(struct mpp_client *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void trace(struct mpp_client *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Format into c->err; a message cut to fit still says enough. */
static void
set_err(struct mpp_client *c, int fail, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	util_vformat(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	c->fail = fail;
}

/* Put "what: " in front of the current error. */
static void
err_prefix(struct mpp_client *c, const char *what)
{
	char old[sizeof(c->err)];

	strlcpy(old, c->err, sizeof(old));
	set_err(c, c->fail, "%s: %s", what, old);
}

static void
trace(struct mpp_client *c, const char *fmt, ...)
{
	va_list ap;

	if (c->trace == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(c->trace, fmt, ap);
	va_end(ap);
	fputc('\n', c->trace);
	fflush(c->trace);
}

/* Copy len bytes of server text into dst, control and 8-bit bytes as '?'. */
static void
sanitize(char *dst, size_t size, const char *src, size_t len)
{
	size_t i;

	if (len >= size)
		len = size - 1;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)src[i];

		dst[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	dst[len] = '\0';
}

static long long
deadline_of(const struct mpp_client *c)
{
	return net_deadline((long long)c->timeout * 1000);
}

void
mpp_client_init(struct mpp_client *c, int timeout)
{
	memset(c, 0, sizeof(*c));
	net_conn_init(&c->conn);
	c->timeout = timeout > 0 ? timeout : MPP_CLIENT_DEFAULT_TIMEOUT;
	dotstuff_init(&c->text, DOTSTUFF_CR_TEXT);
}

void
mpp_client_close(struct mpp_client *c)
{
	net_conn_close(&c->conn);
	c->out_len = 0;
}

const char *
mpp_client_error(const struct mpp_client *c)
{
	return c->err[0] != '\0' ? c->err : "no error";
}

/* Check a port: decimal 1..65535, nothing else. */
static int
port_ok(const char *p)
{
	size_t i;
	long v = 0;

	for (i = 0; p[i] != '\0'; i++) {
		if (!isdigit((unsigned char)p[i]) || i >= 5)
			return 0;
		v = v * 10 + (p[i] - '0');
	}
	return i > 0 && v >= 1 && v <= 65535;
}

/* Find where the host ends and the port begins in spec; -1 if malformed. */
static int
split_server(const char *spec, const char **h, size_t *hlen, const char **p)
{
	const char *colon, *close;

	*p = NULL;
	if (spec[0] == '[') {
		if ((close = strchr(spec, ']')) == NULL)
			return -1;
		*h = spec + 1;
		*hlen = (size_t)(close - *h);
		if (close[1] == ':')
			*p = close + 2;
		else if (close[1] != '\0')
			return -1;
		return 0;
	}
	*h = spec;
	colon = strchr(spec, ':');
	if (colon != NULL && strchr(colon + 1, ':') == NULL) {
		*hlen = (size_t)(colon - spec);
		*p = colon + 1;
	} else
		*hlen = strlen(spec);	/* a bare IPv6 address has no port */
	return 0;
}

int
mpp_client_parse_server(const char *spec, const char *defport,
    char *host, size_t hostsz, char *port, size_t portsz,
    char *err, size_t errsz)
{
	const char *h, *p;
	size_t hlen;
	const char *why = NULL;

	if (split_server(spec, &h, &hlen, &p) == -1)
		why = "expected HOST, HOST:PORT, [ADDRESS] or [ADDRESS]:PORT";
	else if (hlen == 0)
		why = "no host";
	else if (hlen >= hostsz)
		why = "host name too long";
	else if (p == NULL)
		p = defport;
	if (why == NULL && !port_ok(p))
		why = "port must be a number from 1 to 65535";
	if (why == NULL && strlcpy(port, p, portsz) >= portsz)
		why = "port too long";
	if (why != NULL) {
		/* Cut to fit is fine: the message names the bad spec. */
		(void)snprintf(err, errsz, "bad server \"%s\": %s", spec, why);
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return 0;
}

int
mpp_client_parse_reply(const char *line, size_t len, int *final)
{
	if (len < 3 || line[0] < '1' || line[0] > '5' ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	*final = len == 3 || line[3] == ' ';
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

/* The resolver said no, or gave no answer in time: record why. */
static int
resolve_failed(struct mpp_client *c, const char *host,
    const struct net_tried *t)
{
	if (t->gai != 0)
		set_err(c, t->gai == EAI_AGAIN ? EX_TEMPFAIL : EX_NOHOST,
		    "cannot resolve %s: %s", host, t->gai == EAI_SYSTEM ?
		    net_reason(t->err) : gai_strerror(t->gai));
	else if (t->err == ETIMEDOUT)
		set_err(c, EX_TEMPFAIL, "cannot resolve %s: no answer within "
		    "%d s", host, c->timeout);
	else
		set_err(c, EX_TEMPFAIL, "cannot resolve %s: %s", host,
		    net_reason(t->err));
	return -1;
}

int
mpp_client_connect(struct mpp_client *c, const char *host, const char *port)
{
	struct net_tried t;

	mpp_client_close(c);
	/* A peer name cut short only shortens messages. */
	(void)snprintf(c->peer, sizeof(c->peer), "%s port %s", host, port);
	if (net_conn_open(&c->conn, host, port, deadline_of(c), &t) == -1) {
		if (t.n == 0)
			return resolve_failed(c, host, &t);
		set_err(c, EX_TEMPFAIL, "cannot connect to %s (%s)", c->peer,
		    t.list[0] != '\0' ? t.list : net_reason(t.err));
		return -1;
	}
	trace(c, "connected to %s", c->peer);
	if (c->tls_ctx != NULL)
		return mpp_client_start_tls(c, host);
	return 0;
}

void
mpp_client_attach(struct mpp_client *c, int fd, const char *name)
{
	mpp_client_close(c);
	net_conn_attach(&c->conn, fd);
	strlcpy(c->peer, name, sizeof(c->peer));
}

/* A failed handshake: record why, with the server's name, and close. */
static int
tls_failed(struct mpp_client *c, const char *why)
{
	set_err(c, EX_TEMPFAIL, "TLS: %s (%s)", why, c->peer);
	mpp_client_close(c);
	return -1;
}

int
mpp_client_start_tls(struct mpp_client *c, const char *host)
{
	char why[TLS_CLIENT_ERR_MAX];

	if (c->conn.fd == -1 || c->tls_ctx == NULL)
		return tls_failed(c, c->conn.fd == -1 ? "not connected" :
		    "no TLS context");
	if (net_conn_start_tls(&c->conn, c->tls_ctx, host, deadline_of(c),
	    why, sizeof(why)) == -1) {
		if (errno == ETIMEDOUT)
			util_format(why, sizeof(why), "no handshake within "
			    "%d s", c->timeout);
		return tls_failed(c, why);
	}
	trace(c, "TLS %s, certificate verified for %s",
	    net_conn_tls_describe(&c->conn, why, sizeof(why)), host);
	return 0;
}

/* A failure on the connection: record it and close (see the top). */
static int
conn_failed(struct mpp_client *c, int fail, const char *what, int err)
{
	if (err == ETIMEDOUT)
		set_err(c, fail, "%s %s within %d s", c->peer, what,
		    c->timeout);
	else
		set_err(c, fail, "%s: %s", c->peer, net_reason(err));
	mpp_client_close(c);
	return -1;
}

/* A TLS error (EPROTO), or a system one: record, close. */
static int
io_failed(struct mpp_client *c, int err)
{
	if (c->conn.tls != NULL && err == EPROTO) {
		set_err(c, EX_TEMPFAIL, "%s: TLS: %s", c->peer,
		    net_conn_tls_error(&c->conn));
		mpp_client_close(c);
		return -1;
	}
	return conn_failed(c, EX_TEMPFAIL, "", err);
}

/* Send everything buffered. 0 / -1. */
static int
flush_out(struct mpp_client *c)
{
	if (c->conn.fd == -1) {
		set_err(c, EX_TEMPFAIL, "not connected");
		return -1;
	}
	if (net_conn_write(&c->conn, c->out, c->out_len, deadline_of(c)) ==
	    -1) {
		if (errno == ETIMEDOUT)
			return conn_failed(c, EX_TEMPFAIL, "took no data",
			    errno);
		return io_failed(c, errno);
	}
	c->out_len = 0;
	return 0;
}

/* Queue bytes for sending, flushing whenever the buffer fills. */
static int
out_put(struct mpp_client *c, const char *buf, size_t len)
{
	size_t n;

	while (len > 0) {
		if (c->out_len == sizeof(c->out) && flush_out(c) == -1)
			return -1;
		n = sizeof(c->out) - c->out_len;
		if (n > len)
			n = len;
		memcpy(c->out + c->out_len, buf, n);
		c->out_len += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/*
 * Read one line into line (NUL-terminated, CRLF or LF removed). A line too
 * long for the buffer is cut and the rest skipped up to its LF.
 */
static int
read_line(struct mpp_client *c, char *line, size_t size, size_t *lenp,
    long long deadline)
{
	if (c->conn.fd == -1) {
		set_err(c, EX_TEMPFAIL, "not connected");
		return -1;
	}
	if (net_conn_read_line(&c->conn, line, size, lenp, NET_LONG_CUT,
	    deadline) == 0)
		return 0;
	if (c->conn.eof) {
		set_err(c, EX_TEMPFAIL, "%s closed the connection", c->peer);
		mpp_client_close(c);
		return -1;
	}
	if (errno == ETIMEDOUT)
		return conn_failed(c, EX_TEMPFAIL, "sent no reply", errno);
	return io_failed(c, errno);
}

int
mpp_client_read_reply(struct mpp_client *c)
{
	char line[MPP_CLIENT_LINE_MAX];
	long long deadline = deadline_of(c);
	size_t len;
	int n, k, code = -1, final;

	c->code = 0;
	c->reply[0] = '\0';
	for (n = 0; n < MPP_CLIENT_REPLY_LINES; n++) {
		if (read_line(c, line, sizeof(line), &len, deadline) == -1)
			return -1;
		sanitize(c->reply, sizeof(c->reply), line, len);
		trace(c, "<- %s", c->reply);
		final = 0;
		k = mpp_client_parse_reply(line, len, &final);
		if (n == 0 && k == -1) {
			set_err(c, EX_PROTOCOL, "%s sent a line that is not "
			    "an MPP reply: \"%s\"", c->peer, c->reply);
			mpp_client_close(c);
			return -1;
		}
		if (n == 0)
			code = k;
		if (final && k == code) {
			c->code = code;
			return code;
		}
	}
	set_err(c, EX_PROTOCOL, "%s sent a reply of more than %d lines",
	    c->peer, MPP_CLIENT_REPLY_LINES);
	mpp_client_close(c);
	return -1;
}

int
mpp_client_send_command(struct mpp_client *c, const char *verb,
    const char *arg)
{
	/* A line break in an argument would smuggle in another command. */
	if (arg != NULL && strpbrk(arg, "\r\n") != NULL) {
		set_err(c, EX_USAGE, "the argument of %s holds a line break",
		    verb);
		return -1;
	}
	if (strcasecmp(verb, "PASS") == 0)
		trace(c, "-> %s ****", verb);
	else
		trace(c, "-> %s%s%s", verb, arg ? " " : "", arg ? arg : "");
	if (out_put(c, verb, strlen(verb)) == -1 ||
	    (arg != NULL && (out_put(c, " ", 1) == -1 ||
	    out_put(c, arg, strlen(arg)) == -1)) ||
	    out_put(c, "\r\n", 2) == -1)
		return -1;
	return flush_out(c);
}

int
mpp_client_command(struct mpp_client *c, const char *verb, const char *arg)
{
	if (mpp_client_send_command(c, verb, arg) == -1)
		return -1;
	return mpp_client_read_reply(c);
}

void
mpp_client_text_begin(struct mpp_client *c)
{
	dotstuff_init(&c->text, DOTSTUFF_CR_TEXT);
	c->text_bytes = 0;
}

int
mpp_client_text_write(struct mpp_client *c, const char *buf, size_t len)
{
	size_t n, w;

	while (len > 0) {
		if (sizeof(c->out) - c->out_len < DOTSTUFF_ROOM_MIN &&
		    flush_out(c) == -1)
			return -1;
		n = dotstuff_put(&c->text, buf, len, c->out + c->out_len,
		    sizeof(c->out) - c->out_len, &w);
		c->out_len += w;
		c->text_bytes += w;
		buf += n;
		len -= n;
	}
	return 0;
}

int
mpp_client_text_end(struct mpp_client *c)
{
	size_t w;

	if (sizeof(c->out) - c->out_len < DOTSTUFF_END_MAX &&
	    flush_out(c) == -1)
		return -1;
	w = dotstuff_end(&c->text, c->out + c->out_len);
	c->out_len += w;
	c->text_bytes += w - 3;		/* not the final ".\r\n" */
	trace(c, "-> (%llu bytes of message text)", c->text_bytes);
	trace(c, "-> .");
	return flush_out(c);
}

/* The sysexits code for an unwanted reply, with a message naming it. */
static int
reply_status(struct mpp_client *c, const char *what)
{
	int ex;

	switch (c->code) {
	case 451:
		ex = EX_TEMPFAIL;
		break;
	case 530:
		ex = EX_NOPERM;
		break;
	case 550:
		ex = EX_DATAERR;
		break;
	default:
		ex = c->code >= 500 ? EX_SOFTWARE : EX_PROTOCOL;
		break;
	}
	set_err(c, ex, "%s: %s replied \"%s\"", what, c->peer, c->reply);
	return ex;
}

/* Read a reply and check it is want: a sysexits code. */
static int
expect(struct mpp_client *c, int want, const char *what)
{
	int code = mpp_client_read_reply(c);

	if (code == -1) {
		err_prefix(c, what);
		return c->fail;
	}
	return code == want ? EX_OK : reply_status(c, what);
}

/* Send a command, read its reply and check it is want. */
static int
command_expect(struct mpp_client *c, const char *verb, const char *arg,
    int want, const char *what)
{
	if (mpp_client_send_command(c, verb, arg) == -1) {
		err_prefix(c, what);
		return c->fail;
	}
	return expect(c, want, what);
}

int
mpp_client_open(struct mpp_client *c, const char *host, const char *port)
{
	if (mpp_client_connect(c, host, port) == -1)
		return c->fail;
	return expect(c, 220, "greeting");
}

int
mpp_client_login(struct mpp_client *c, const char *user,
    const char *password)
{
	char what[64];
	int ex;

	/* A long user name cut in a message is still recognisable. */
	(void)snprintf(what, sizeof(what), "USER %s", user);
	if ((ex = command_expect(c, "USER", user, 250, what)) != EX_OK)
		return ex;
	(void)snprintf(what, sizeof(what), "PASS for %s", user);
	return command_expect(c, "PASS", password, 250, what);
}

/* DATA and its 354: a sysexits code. */
static int
start_text(struct mpp_client *c)
{
	int ex = command_expect(c, "DATA", NULL, 354, "DATA");

	if (ex == EX_OK)
		mpp_client_text_begin(c);
	return ex;
}

/* End the text and read the verdict on it. */
static int
finish_text(struct mpp_client *c)
{
	if (mpp_client_text_end(c) == -1) {
		err_prefix(c, "message text");
		return c->fail;
	}
	return expect(c, 250, "message text");
}

int
mpp_client_post_fd(struct mpp_client *c, int fd, mpp_client_tap_fn *tap,
    void *tap_arg)
{
	return mpp_client_post_head_fd(c, NULL, 0, fd, tap, tap_arg);
}

int
mpp_client_post_head_fd(struct mpp_client *c, const char *head, size_t hlen,
    int fd, mpp_client_tap_fn *tap, void *tap_arg)
{
	char buf[READ_CHUNK];
	ssize_t n;
	int ex;

	if ((ex = start_text(c)) != EX_OK)
		return ex;
	if (hlen > 0 && mpp_client_text_write(c, head, hlen) == -1) {
		err_prefix(c, "message text");
		return c->fail;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			/* Without the final dot the server stores nothing. */
			set_err(c, EX_IOERR, "read: %s", net_reason(errno));
			mpp_client_close(c);
			return EX_IOERR;
		}
		if (n == 0)
			break;
		if (tap != NULL)
			tap(tap_arg, buf, (size_t)n);
		if (mpp_client_text_write(c, buf, (size_t)n) == -1) {
			err_prefix(c, "message text");
			return c->fail;
		}
	}
	return finish_text(c);
}

int
mpp_client_post_buf(struct mpp_client *c, const char *buf, size_t len)
{
	int ex;

	if ((ex = start_text(c)) != EX_OK)
		return ex;
	if (mpp_client_text_write(c, buf, len) == -1) {
		err_prefix(c, "message text");
		return c->fail;
	}
	return finish_text(c);
}

void
mpp_client_quit(struct mpp_client *c)
{
	char err[sizeof(c->err)];
	int fail = c->fail, timeout = c->timeout;

	/* Keep the error that led here: QUIT must not overwrite it. */
	strlcpy(err, c->err, sizeof(err));
	if (c->conn.fd != -1) {
		c->timeout = timeout < QUIT_TIMEOUT ? timeout : QUIT_TIMEOUT;
		if (mpp_client_send_command(c, "QUIT", NULL) == 0 &&
		    mpp_client_read_reply(c) != -1)
			net_conn_close_notify(&c->conn);
		c->timeout = timeout;
	}
	mpp_client_close(c);
	strlcpy(c->err, err, sizeof(c->err));
	c->fail = fail;
}
