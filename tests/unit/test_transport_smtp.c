/*
 * Unit tests for mppqueue/transport_smtp.c against a fake SMTP server: a
 * thread on a loopback port that answers from a small script, records
 * every command line it reads (and "CONNECT" for each connection), and
 * keeps the message text exactly as it came over the wire. The tests then
 * compare that transcript and the per-recipient results with what
 * DESIGN.md ("Delivery") and RFC 5321 / 1870 / 2920 ask for.
 *
 * The server can check the client's pacing too: "batch" makes it wait for
 * MAIL FROM and every RCPT TO before it answers any (a client that waits
 * for each reply would stall: PIPELINING), "lockstep" notes any command
 * that arrives before the previous one was answered (no PIPELINING).
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"
#include "../../mppqueue/transport.h"
#include "silent_dns.h"

#define HELO_NAME "mpp.test"
#define SENDER "alice@example.org"
#define QUEUED "250 2.0.0 Ok: queued as 4AbC"

enum action {
	ACT_REPLY,		/* send the reply, go on */
	ACT_REPLY_CLOSE,	/* send the reply, close the connection */
	ACT_CLOSE,		/* close the connection without a word */
	ACT_SILENT,		/* never answer, keep the connection */
	ACT_REPLY_STALL		/* send the reply, then read nothing more */
};

/* A scripted answer to the commands that start with prefix. */
struct rule {
	const char *prefix;
	const char *reply;
	enum action action;
	int conn;		/* only on this connection (1-based); 0 any */
};

struct peer_spec {
	const char *greeting;	/* NULL: never greet */
	const char *ehlo;	/* reply to EHLO */
	const char *data_end;	/* reply after the text; NULL: none ever */
	const struct rule *rules;	/* up to a NULL prefix */
	int batch;		/* lines to hold before answering MAIL FROM */
	int lockstep;		/* note commands sent before their turn */
	int close_first_after;	/* close connection 1 after this many texts */
};

struct peer {
	struct peer_spec spec;
	int lfd;
	int port;
	pthread_t thread;
	atomic_int stop;		/* stop accepting; end the connection */
	atomic_llong stop_at;		/* ... once the client has gone, or */
					/* this much later (ms) */
	/* Read by the test only after the thread is joined. */
	char log[16384];
	size_t log_len;
	char *data;		/* every message text, with its final ".\r\n" */
	size_t data_len, data_cap;
	int violations;
	int conns;
};

/* One connection's input buffer. */
struct pconn {
	int fd;
	size_t len;
	char buf[1 << 17];
};

static void
plog(struct peer *p, const char *line)
{
	size_t n = strlen(line);

	assert_true(p->log_len + n + 2 < sizeof(p->log));
	memcpy(p->log + p->log_len, line, n);
	p->log_len += n;
	p->log[p->log_len++] = '\n';
	p->log[p->log_len] = '\0';
}

static void
say(int fd, const char *s)
{
	(void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/*
 * Nonzero while a connection may go on: the client is given a moment
 * after the test stops the server to have its last command read.
 */
static int
running(struct peer *p)
{
	return !atomic_load(&p->stop) ||
	    util_now_ms() < atomic_load(&p->stop_at);
}

/*
 * Read more into c within ms (-1: until stopped). 1 read, 0 nothing in
 * time (or stopped), -1 closed.
 */
static int
pconn_fill(struct peer *p, struct pconn *c, int ms)
{
	long long deadline = util_now_ms() + ms;
	struct pollfd pfd;
	ssize_t n;

	while (running(p)) {
		if (ms >= 0 && util_now_ms() >= deadline)
			return 0;
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if (c->len == sizeof(c->buf))
			return -1;
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
		return 1;
	}
	return 0;
}

/* The next line without its CRLF; 0 when the client went or we stop. */
static int
pconn_line(struct peer *p, struct pconn *c, char *line, size_t sz)
{
	char *nl;
	size_t n;

	while ((nl = memchr(c->buf, '\n', c->len)) == NULL)
		if (pconn_fill(p, c, -1) != 1)
			return 0;
	n = (size_t)(nl - c->buf);
	assert_true(n < sz);
	memcpy(line, c->buf, n);
	line[n > 0 && line[n - 1] == '\r' ? n - 1 : n] = '\0';
	memmove(c->buf, nl + 1, c->len - n - 1);
	c->len -= n + 1;
	return 1;
}

static size_t
count_lines(const struct pconn *c)
{
	size_t i, k = 0;

	for (i = 0; i < c->len; i++)
		k += c->buf[i] == '\n';
	return k;
}

/* Nonzero when k more lines arrive within ms. */
static int
wait_lines(struct peer *p, struct pconn *c, size_t k, int ms)
{
	long long deadline = util_now_ms() + ms, left;

	while (count_lines(c) < k) {
		if ((left = deadline - util_now_ms()) <= 0 ||
		    pconn_fill(p, c, (int)left) != 1)
			return 0;
	}
	return 1;
}

/* Keep the connection open, answering nothing, until it closes. */
static void
hold(struct peer *p, struct pconn *c)
{
	while (pconn_fill(p, c, -1) == 1)
		c->len = 0;
}

static void
data_add(struct peer *p, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (p->data_len + n > p->data_cap) {
		p->data_cap = (p->data_len + n) * 2;
		p->data = realloc(p->data, p->data_cap);
		assert_non_null(p->data);
	}
	memcpy(p->data + p->data_len, s, n);
	p->data_len += n;
}

/* Offset just past the ".\r\n" that ends text t, or 0 while none. */
static size_t
text_end(const char *t, size_t n)
{
	const char *e;

	if (n == 0)
		return 0;
	if (n >= 3 && memcmp(t, ".\r\n", 3) == 0)
		return 3;
	e = memmem(t, n, "\r\n.\r\n", 5);
	return e == NULL ? 0 : (size_t)(e - t) + 5;
}

/* Read one message text into p->data; 0 when the client went. */
static int
read_text(struct peer *p, struct pconn *c)
{
	size_t start = p->data_len, end, extra;

	for (;;) {
		data_add(p, c->buf, c->len);
		c->len = 0;
		if ((end = text_end(p->data + start, p->data_len - start))) {
			extra = p->data_len - start - end;
			if (extra > 0)
				memcpy(c->buf, p->data + start + end, extra);
			c->len = extra;
			p->data_len -= extra;
			return 1;
		}
		if (pconn_fill(p, c, -1) != 1)
			return 0;
	}
}

static int
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const struct rule *
find_rule(const struct peer *p, const char *line, int conn)
{
	const struct rule *r;

	for (r = p->spec.rules; r != NULL && r->prefix != NULL; r++)
		if (starts(line, r->prefix) &&
		    (r->conn == 0 || r->conn == conn))
			return r;
	return NULL;
}

/* After 354: the text, then the reply to it. 0 ends the connection. */
static int
take_text(struct peer *p, struct pconn *c, int conn, int *texts)
{
	if (!read_text(p, c))
		return 0;
	if (p->spec.data_end == NULL) {
		hold(p, c);
		return 0;
	}
	say(c->fd, p->spec.data_end);
	++*texts;
	return !(conn == 1 && *texts == p->spec.close_first_after);
}

/* Answer one command; 0 ends the connection. */
static int
answer(struct peer *p, struct pconn *c, const char *line, int conn,
    int *texts)
{
	const struct rule *r = find_rule(p, line, conn);

	if (r != NULL) {
		if (r->action == ACT_CLOSE)
			return 0;
		if (r->action == ACT_SILENT) {
			hold(p, c);
			return 0;
		}
		say(c->fd, r->reply);
		if (r->action == ACT_REPLY_STALL) {
			while (!atomic_load(&p->stop))
				usleep(10000);
			return 0;
		}
		if (r->action == ACT_REPLY_CLOSE)
			return 0;
		if (starts(line, "DATA") && starts(r->reply, "354"))
			return take_text(p, c, conn, texts);
		return 1;
	}
	if (starts(line, "EHLO "))
		say(c->fd, p->spec.ehlo);
	else if (starts(line, "HELO "))
		say(c->fd, "250 fake.example\r\n");
	else if (starts(line, "MAIL FROM:") || starts(line, "RCPT TO:") ||
	    strcmp(line, "RSET") == 0)
		say(c->fd, "250 2.0.0 Ok\r\n");
	else if (strcmp(line, "QUIT") == 0) {
		say(c->fd, "221 2.0.0 Bye\r\n");
		return 0;
	} else if (strcmp(line, "DATA") == 0) {
		say(c->fd, "354 End data with <CR><LF>.<CR><LF>\r\n");
		return take_text(p, c, conn, texts);
	} else
		say(c->fd, "502 5.5.2 Error: command not recognized\r\n");
	return 1;
}

/* Note a command sent before the one before it was answered. */
static void
check_pacing(struct peer *p, struct pconn *c, const char *line)
{
	if (p->spec.lockstep && (c->len > 0 || pconn_fill(p, c, 100) == 1))
		p->violations++;
	if (p->spec.batch > 0 && starts(line, "MAIL FROM:") &&
	    !wait_lines(p, c, (size_t)p->spec.batch - 1, 2000))
		p->violations++;
}

static void
serve(struct peer *p, int fd, int conn)
{
	struct pconn *c = calloc(1, sizeof(*c));
	char line[1024];
	int texts = 0;

	assert_non_null(c);
	c->fd = fd;
	if (p->spec.greeting == NULL)
		hold(p, c);
	else {
		say(fd, p->spec.greeting);
		while (pconn_line(p, c, line, sizeof(line))) {
			plog(p, line);
			check_pacing(p, c, line);
			if (!answer(p, c, line, conn, &texts))
				break;
		}
	}
	free(c);
}

static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	struct pollfd pfd;
	int fd;

	while (!atomic_load(&p->stop)) {
		pfd.fd = p->lfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if ((fd = accept(p->lfd, NULL, NULL)) == -1)
			continue;
		p->conns++;
		plog(p, "CONNECT");
		serve(p, fd, p->conns);
		close(fd);
	}
	return NULL;
}

/* A listening socket on 127.0.0.1; its port in *port. */
static int
listen_loopback(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, on = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* The same on ::1; -1 when this host has no IPv6 loopback. */
static int
listen_loopback6(int *port)
{
	struct sockaddr_in6 sin6;
	socklen_t len = sizeof(sin6);
	int fd;

	if ((fd = socket(AF_INET6, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	if (bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == -1 ||
	    listen(fd, 8) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin6, &len) == -1) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin6.sin6_port);
	return fd;
}

static const char EHLO_ALL[] = "250-fake.example\r\n250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";
static const char EHLO_PLAIN[] = "250-fake.example\r\n250 8BITMIME\r\n";
static const char GREETING[] = "220 fake.example ESMTP\r\n";

/* A server on lfd (listening, its port given), or a new one on 127.0.0.1. */
static struct peer *
peer_start_on(const struct peer_spec *spec, int lfd, int port)
{
	struct peer *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->spec = *spec;
	p->lfd = lfd;
	p->port = port;
	if (lfd == -1)
		p->lfd = listen_loopback(&p->port);
	atomic_init(&p->stop, 0);
	atomic_init(&p->stop_at, 0);
	assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
	return p;
}

static struct peer *
peer_start(const struct peer_spec *spec)
{
	return peer_start_on(spec, -1, 0);
}

/* Stop the server; its transcript may be read from now on. */
static void
peer_stop(struct peer *p)
{
	atomic_store(&p->stop_at, util_now_ms() + 2000);
	atomic_store(&p->stop, 1);
	pthread_join(p->thread, NULL);
	close(p->lfd);
}

static void
peer_free(struct peer *p)
{
	free(p->data);
	free(p);
}

/* The client side. */

/* A transport to arg ("HOST:PORT") with a step timeout in seconds. */
static void *
client_open_arg(const char *arg, long timeout)
{
	struct mpp_config cfg;
	char err[256], value[CONFIG_STR_MAX];
	void *t;

	config_defaults(&cfg);
	strcpy(cfg.hostname, HELO_NAME);
	cfg.delivery_timeout = timeout;
	snprintf(value, sizeof(value), "smtp:%s", arg);
	assert_int_equal(config_set(&cfg, "transport", value, err,
	    sizeof(err)), 0);
	t = transport_smtp_ops.open(&cfg, err, sizeof(err));
	if (t == NULL)
		print_error("open: %s\n", err);
	assert_non_null(t);
	return t;
}

static void *
client_open(int port, long timeout)
{
	char arg[64];

	snprintf(arg, sizeof(arg), "127.0.0.1:%d", port);
	return client_open_arg(arg, timeout);
}

/* An unlinked file holding text; the caller closes it. */
static int
msg_file(const char *text, size_t len)
{
	char path[] = "/tmp/test_transport_smtp.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(util_write_all(fd, text, len), 0);
	return fd;
}

/* Deliver text from sender to the NULL-ended addrs; results into r. */
static void
deliver_len(void *t, const char *sender, const char *text, size_t len,
    const char *const *addrs, struct transport_rcpt *r)
{
	struct transport_msg m;
	size_t n;

	for (n = 0; addrs[n] != NULL; n++) {
		memset(&r[n], 0, sizeof(r[n]));
		r[n].addr = addrs[n];
		r[n].result = OUTCOME_OK;	/* the transport must set it */
		strcpy(r[n].reply, "unset");
	}
	m.id = "TESTID";
	m.sender = sender;
	m.fd = msg_file(text, len);
	m.size = (off_t)len;
	transport_smtp_ops.deliver(t, &m, r, n);
	close(m.fd);
}

static void
deliver(void *t, const char *sender, const char *text,
    const char *const *addrs, struct transport_rcpt *r)
{
	deliver_len(t, sender, text, strlen(text), addrs, r);
}

static void
check_rcpt(const struct transport_rcpt *r, enum outcome want,
    const char *reply)
{
	if (r->result == want && strcmp(r->reply, reply) == 0)
		return;
	print_error("%s: got %d \"%s\", want %d \"%s\"\n", r->addr,
	    r->result, r->reply, want, reply);
	fail();
}

/* Like check_rcpt(), the reply only by its start. */
static void
check_rcpt_prefix(const struct transport_rcpt *r, enum outcome want,
    const char *prefix)
{
	if (r->result == want && starts(r->reply, prefix))
		return;
	print_error("%s: got %d \"%s\", want %d \"%s...\"\n", r->addr,
	    r->result, r->reply, want, prefix);
	fail();
}

/* Close the client (QUIT), stop the server, compare the transcript. */
static void
finish(void *t, struct peer *p, const char *want_log)
{
	transport_smtp_ops.close(t);
	peer_stop(p);
	assert_string_equal(p->log, want_log);
	assert_int_equal(p->violations, 0);
}

static const char TEXT[] = "Subject: hi\n\nHello.\n";
static const char TEXT_WIRE[] = "Subject: hi\r\n\r\nHello.\r\n.\r\n";
static const char *const TWO[] = { "a@example.com", "b@example.com", NULL };
static const char *const THREE[] = { "a@example.com", "b@example.com",
    "c@example.com", NULL };

/* The cases. */

static void
test_pipelining_size(void **state)
{
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 3,
	    0, 0 };
	struct transport_rcpt r[2];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	check_rcpt(&r[1], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\n"
	    "DATA\nQUIT\n");
	assert_int_equal(p->data_len, strlen(TEXT_WIRE));
	assert_memory_equal(p->data, TEXT_WIRE, p->data_len);
	peer_free(p);
}

static void
test_lockstep(void **state)
{
	struct peer_spec spec = { GREETING, EHLO_PLAIN, QUEUED "\r\n", NULL,
	    0, 1, 0 };
	struct transport_rcpt r[2];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	check_rcpt(&r[1], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nMAIL FROM:<" SENDER ">\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\n"
	    "DATA\nQUIT\n");
	peer_free(p);
}

static void
test_helo_fallback(void **state)
{
	static const struct rule rules[] = {
		{ "EHLO", "502 5.5.2 Error: command not recognized\r\n",
		  ACT_REPLY, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", rules,
	    0, 1, 0 };
	struct transport_rcpt r[1];
	const char *one[] = { "a@example.com", NULL };
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, one, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nHELO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER ">\nRCPT TO:<a@example.com>\nDATA\nQUIT\n");
	peer_free(p);
}

static void
test_null_sender(void **state)
{
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 2,
	    0, 0 };
	struct transport_rcpt r[1];
	const char *one[] = { "a@example.com", NULL };
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, "", TEXT, one, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nMAIL FROM:<> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nDATA\nQUIT\n");
	peer_free(p);
}

/* One message through one server; the text as the server got it. */
static void
wire_text(const char *text, size_t len, const char *want, size_t want_len)
{
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct transport_rcpt r[1];
	const char *one[] = { "a@example.com", NULL };
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	deliver_len(t, SENDER, text, len, one, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	transport_smtp_ops.close(t);
	peer_stop(p);
	assert_int_equal(p->data_len, want_len);
	assert_memory_equal(p->data, want, want_len);
	peer_free(p);
}

static void
test_dot_stuffing(void **state)
{
	static const struct {
		const char *in, *wire;
	} cases[] = {
		{ "Subject: x\n\n.hidden\n..two\nmid.dle\n.\nend\n",
		  "Subject: x\r\n\r\n..hidden\r\n...two\r\nmid.dle\r\n..\r\n"
		  "end\r\n.\r\n" },
		{ "no final line end", "no final line end\r\n.\r\n" },
		{ ".", "..\r\n.\r\n" },
		{ "", ".\r\n" },
		{ "\n", "\r\n.\r\n" },
		{ "a\r\nb\rc\n", "a\r\nb\r\nc\r\n.\r\n" },
		{ "x\n.\r\n.y", "x\r\n..\r\n..y\r\n.\r\n" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		wire_text(cases[i].in, strlen(cases[i].in), cases[i].wire,
		    strlen(cases[i].wire));
}

/*
 * A message of several megabytes whose lines of varying length start with
 * dots now and then, so line ends and dots fall on every boundary of the
 * file chunks and of the output buffer; the expected wire form is built
 * line by line, independently of the transport's byte loop.
 */
static void
test_large_text(void **state)
{
	size_t cap = 4 << 20, len = 0, wlen = 0, k, n;
	char *text = malloc(cap), *wire = malloc(cap * 2 + 8);

	(void)state;
	assert_non_null(text);
	assert_non_null(wire);
	for (k = 0; len + 200 < cap; k++) {
		n = k * 7919 % 150;
		if (k % 3 == 0)
			wire[wlen++] = '.';
		memset(text + len, k % 3 == 0 ? '.' : 'x', n + 1);
		memset(wire + wlen, k % 3 == 0 ? '.' : 'x', n + 1);
		len += n + 1;
		wlen += n + 1;
		text[len++] = '\n';
		wire[wlen++] = '\r';
		wire[wlen++] = '\n';
	}
	memcpy(wire + wlen, ".\r\n", 3);
	wire_text(text, len, wire, wlen + 3);
	free(text);
	free(wire);
}

/*
 * Deliver text of len bytes to one recipient over a server with EHLO reply
 * ehlo; compare its MAIL FROM line with want_mail.
 */
static void
mail_from_for(const char *ehlo, const char *text, size_t len,
    const char *want_mail)
{
	struct peer_spec spec = { GREETING, ehlo, QUEUED "\r\n", NULL, 0, 0,
	    0 };
	static const char *const ONE[] = { "a@example.com", NULL };
	struct transport_rcpt r[1];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);
	char want[512];

	deliver_len(t, SENDER, text, len, ONE, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	snprintf(want, sizeof(want), "CONNECT\nEHLO " HELO_NAME "\n%s\n"
	    "RCPT TO:<a@example.com>\nDATA\nQUIT\n", want_mail);
	finish(t, p, want);
	peer_free(p);
}

/* RFC 6152: BODY=8BITMIME when the server offers it and the text needs it. */
static void
test_8bitmime(void **state)
{
	size_t len = 40000;
	char *text = malloc(len), mail[128];

	(void)state;
	assert_non_null(text);
	memset(text, 'x', len);
	text[len - 1] = '\n';
	snprintf(mail, sizeof(mail), "MAIL FROM:<" SENDER "> SIZE=%zu", len);
	mail_from_for(EHLO_ALL, text, len, mail);
	/* The 8-bit byte past the first chunk read from the file. */
	text[len - 2] = (char)0xe9;
	snprintf(mail, sizeof(mail), "MAIL FROM:<" SENDER "> SIZE=%zu "
	    "BODY=8BITMIME", len);
	mail_from_for(EHLO_ALL, text, len, mail);
	mail_from_for(EHLO_PLAIN, text, len,
	    "MAIL FROM:<" SENDER "> BODY=8BITMIME");
	/* Not offered: no parameter the server would refuse. */
	snprintf(mail, sizeof(mail), "MAIL FROM:<" SENDER "> SIZE=%zu", len);
	mail_from_for("250-fake.example\r\n250 SIZE\r\n", text, len, mail);
	free(text);
}

/* RCPT replies 2xx / 4xx / 5xx, with and without pipelining. */
static void
rcpt_mix(int pipelining)
{
	static const struct rule rules[] = {
		{ "RCPT TO:<b@", "450 4.2.0 <b@example.com>: greylisted\r\n",
		  ACT_REPLY, 0 },
		{ "RCPT TO:<c@", "550-5.1.1 <c@example.com>: no such user\r\n"
		  "550 5.1.1 here\r\n", ACT_REPLY, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, pipelining ? EHLO_ALL :
	    EHLO_PLAIN, QUEUED "\r\n", rules, pipelining ? 4 : 0,
	    !pipelining, 0 };
	struct transport_rcpt r[3];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	deliver(t, SENDER, TEXT, THREE, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	check_rcpt(&r[1], OUTCOME_TEMP, "450 4.2.0 <b@example.com>: "
	    "greylisted");
	check_rcpt(&r[2], OUTCOME_PERM, "550-5.1.1 <c@example.com>: no such "
	    "user 550 5.1.1 here");
	finish(t, p, pipelining ?
	    "CONNECT\nEHLO " HELO_NAME "\nMAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\n"
	    "RCPT TO:<c@example.com>\nDATA\nQUIT\n" :
	    "CONNECT\nEHLO " HELO_NAME "\nMAIL FROM:<" SENDER ">\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\n"
	    "RCPT TO:<c@example.com>\nDATA\nQUIT\n");
	peer_free(p);
}

static void
test_rcpt_mix(void **state)
{
	(void)state;
	rcpt_mix(1);
	rcpt_mix(0);
}

/* No recipient accepted: no DATA, the transaction is reset. */
static void
test_no_rcpt_accepted(void **state)
{
	static const struct rule rules[] = {
		{ "RCPT TO:<a@", "451 4.3.0 later\r\n", ACT_REPLY, 0 },
		{ "RCPT TO:<b@", "550 5.1.1 unknown\r\n", ACT_REPLY, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", rules, 3,
	    0, 0 };
	struct transport_rcpt r[2];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	check_rcpt(&r[0], OUTCOME_TEMP, "451 4.3.0 later");
	check_rcpt(&r[1], OUTCOME_PERM, "550 5.1.1 unknown");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nRSET\nQUIT\n");
	assert_int_equal(p->data_len, 0);
	peer_free(p);
}

/*
 * MAIL FROM refused: every recipient gets the reply; the RCPT replies that
 * follow in a pipeline are read and do not change that. The connection
 * stays usable for the next message.
 */
static void
mail_refused(const char *reply, enum outcome want)
{
	const struct rule rules[] = {
		{ "MAIL FROM:<bad@", reply, ACT_REPLY, 0 },
		{ "RCPT TO:<a@", "503 5.5.1 Error: need MAIL command\r\n",
		  ACT_REPLY, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", rules, 3,
	    0, 0 };
	struct transport_rcpt r[2];
	const char *other[] = { "c@example.com", "d@example.com", NULL };
	char want_reply[128];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	strcpy(want_reply, reply);
	want_reply[strcspn(want_reply, "\r")] = '\0';
	deliver(t, "bad@example.org", TEXT, TWO, r);
	check_rcpt(&r[0], want, want_reply);
	check_rcpt(&r[1], want, want_reply);
	deliver(t, SENDER, TEXT, other, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	check_rcpt(&r[1], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<bad@example.org> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nRSET\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<c@example.com>\nRCPT TO:<d@example.com>\nDATA\n"
	    "QUIT\n");
	peer_free(p);
}

static void
test_mail_from_refused(void **state)
{
	(void)state;
	mail_refused("451 4.3.0 try later\r\n", OUTCOME_TEMP);
	mail_refused("553 5.7.1 <bad@example.org>: sender rejected\r\n",
	    OUTCOME_PERM);
}

/* The reply to the end of DATA settles the accepted recipients only. */
static void
data_end_reply(const char *reply, enum outcome want)
{
	static const struct rule rules[] = {
		{ "RCPT TO:<b@", "550 5.1.1 unknown\r\n", ACT_REPLY, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_ALL, reply, rules, 0, 0, 0 };
	struct transport_rcpt r[3];
	char want_reply[128];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	strcpy(want_reply, reply);
	want_reply[strcspn(want_reply, "\r")] = '\0';
	deliver(t, SENDER, TEXT, THREE, r);
	check_rcpt(&r[0], want, want_reply);
	check_rcpt(&r[1], OUTCOME_PERM, "550 5.1.1 unknown");
	check_rcpt(&r[2], want, want_reply);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\n"
	    "RCPT TO:<c@example.com>\nDATA\nQUIT\n");
	peer_free(p);
}

static void
test_data_end_refused(void **state)
{
	(void)state;
	data_end_reply("452 4.3.1 Insufficient system storage\r\n",
	    OUTCOME_TEMP);
	data_end_reply("554 5.7.1 Message rejected: spam\r\n", OUTCOME_PERM);
}

static void
test_data_command_refused(void **state)
{
	static const struct rule rules[] = {
		{ "DATA", "554 5.5.1 Error: no valid recipients\r\n", ACT_REPLY,
		  0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", rules, 0,
	    0, 0 };
	struct transport_rcpt r[2];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	check_rcpt(&r[0], OUTCOME_PERM, "554 5.5.1 Error: no valid recipients");
	check_rcpt(&r[1], OUTCOME_PERM, "554 5.5.1 Error: no valid recipients");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\nQUIT\n");
	assert_int_equal(p->data_len, 0);
	peer_free(p);
}

/* A server that never greets: the greeting step times out. */
static void
test_timeout_greeting(void **state)
{
	struct peer_spec spec = { NULL, EHLO_ALL, QUEUED "\r\n", NULL, 0, 0,
	    0 };
	struct transport_rcpt r[2];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 1);
	long long t0 = util_now_ms(), took;

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	took = util_now_ms() - t0;
	assert_true(took >= 900 && took < 3000);
	check_rcpt(&r[0], OUTCOME_TEMP,
	    "timeout waiting for reply to greeting");
	check_rcpt(&r[1], OUTCOME_TEMP,
	    "timeout waiting for reply to greeting");
	finish(t, p, "CONNECT\n");
	peer_free(p);
}

/* Silent after the text: the message is not known to be taken. */
static void
test_timeout_data_end(void **state)
{
	struct peer_spec spec = { GREETING, EHLO_ALL, NULL, NULL, 0, 0, 0 };
	struct transport_rcpt r[2];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 1);
	long long t0 = util_now_ms(), took;

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	took = util_now_ms() - t0;
	assert_true(took >= 900 && took < 3000);
	check_rcpt(&r[0], OUTCOME_TEMP,
	    "timeout waiting for reply to end of DATA");
	check_rcpt(&r[1], OUTCOME_TEMP,
	    "timeout waiting for reply to end of DATA");
	/* No retry after the text was sent, and no QUIT on a dead line. */
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\n");
	peer_free(p);
}

/* Silent after RCPT: a timeout in a middle step. */
static void
test_timeout_rcpt(void **state)
{
	static const struct rule rules[] = {
		{ "RCPT TO:<b@", NULL, ACT_SILENT, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_PLAIN, QUEUED "\r\n", rules,
	    0, 1, 0 };
	struct transport_rcpt r[3];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 1);

	(void)state;
	deliver(t, SENDER, TEXT, THREE, r);
	check_rcpt(&r[0], OUTCOME_TEMP, "timeout waiting for reply to RCPT TO");
	check_rcpt(&r[1], OUTCOME_TEMP, "timeout waiting for reply to RCPT TO");
	check_rcpt(&r[2], OUTCOME_TEMP, "timeout waiting for reply to RCPT TO");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nMAIL FROM:<" SENDER ">\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\n");
	peer_free(p);
}

/*
 * The server takes DATA, then reads no more: once the socket buffers are
 * full, writing the text times out.
 */
static void
test_timeout_text_write(void **state)
{
	static const struct rule rules[] = {
		{ "DATA", "354 go ahead\r\n", ACT_REPLY_STALL, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_PLAIN, QUEUED "\r\n", rules,
	    0, 0, 0 };
	struct transport_rcpt r[1];
	const char *one[] = { "a@example.com", NULL };
	size_t len = 64 << 20, i;
	char *big = malloc(len);
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 1);
	long long t0, took;

	(void)state;
	assert_non_null(big);
	memset(big, 'z', len);
	for (i = 99; i < len; i += 100)
		big[i] = '\n';
	t0 = util_now_ms();
	deliver_len(t, SENDER, big, len, one, r);
	took = util_now_ms() - t0;
	assert_true(took >= 900 && took < 5000);
	check_rcpt(&r[0], OUTCOME_TEMP, "timeout sending message text");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER ">\nRCPT TO:<a@example.com>\nDATA\n");
	free(big);
	peer_free(p);
}

static void
test_connection_refused(void **state)
{
	struct transport_rcpt r[2];
	char want[128];
	void *t;
	int port, fd;

	(void)state;
	fd = listen_loopback(&port);
	close(fd);
	t = client_open(port, 5);
	deliver(t, SENDER, TEXT, TWO, r);
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%d: Connection "
	    "refused", port);
	check_rcpt(&r[0], OUTCOME_TEMP, want);
	check_rcpt(&r[1], OUTCOME_TEMP, want);
	transport_smtp_ops.close(t);
}

/* Two messages on one connection, RSET between them. */
static void
test_reuse(void **state)
{
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct transport_rcpt r[2];
	const char *one[] = { "c@example.com", NULL };
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	deliver(t, SENDER, "x\n", one, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\n"
	    "MAIL FROM:<" SENDER "> SIZE=2\nRCPT TO:<c@example.com>\n"
	    "DATA\nQUIT\n");
	assert_int_equal(p->data_len, strlen(TEXT_WIRE) + 6);
	assert_memory_equal(p->data + strlen(TEXT_WIRE), "x\r\n.\r\n", 6);
	peer_free(p);
}

/* After idle, the next message opens a new connection. */
static void
test_idle_quit(void **state)
{
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct transport_rcpt r[2];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	transport_smtp_ops.idle(t);
	transport_smtp_ops.idle(t);
	deliver(t, SENDER, TEXT, TWO, r);
	check_rcpt(&r[1], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\nQUIT\n"
	    "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\nQUIT\n");
	peer_free(p);
}

static const char SECOND_ON_NEW[] = "CONNECT\nEHLO " HELO_NAME "\n"
    "MAIL FROM:<" SENDER "> SIZE=2\nRCPT TO:<c@example.com>\nDATA\nQUIT\n";

/* The server closed the kept connection: reconnect, send once. */
static void
test_reconnect_after_close(void **state)
{
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 1 };
	struct transport_rcpt r[2];
	const char *one[] = { "c@example.com", NULL };
	char want[1024];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	deliver(t, SENDER, "x\n", one, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	snprintf(want, sizeof(want), "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\n%s",
	    SECOND_ON_NEW);
	finish(t, p, want);
	assert_int_equal(p->data_len, strlen(TEXT_WIRE) + 6);
	peer_free(p);
}

/* The kept connection answers RSET with 421: reconnect. */
static void
test_reconnect_after_421(void **state)
{
	static const struct rule rules[] = {
		{ "RCPT TO:<c@", "421 4.4.2 fake.example Error: timeout "
		  "exceeded\r\n", ACT_REPLY_CLOSE, 1 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", rules, 0,
	    0, 0 };
	struct transport_rcpt r[2];
	const char *one[] = { "c@example.com", NULL };
	char want[1024];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	deliver(t, SENDER, "x\n", one, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	snprintf(want, sizeof(want), "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\n"
	    "MAIL FROM:<" SENDER "> SIZE=2\nRCPT TO:<c@example.com>\n%s",
	    SECOND_ON_NEW);
	finish(t, p, want);
	peer_free(p);
}

/* Reconnect only once: a second failure is the message's result. */
static void
test_reconnect_once(void **state)
{
	static const struct rule rules[] = {
		{ "RCPT TO:<c@", "421 4.4.2 going away\r\n", ACT_REPLY_CLOSE,
		  1 },
		{ "MAIL FROM", "421 4.3.2 shutting down\r\n", ACT_REPLY_CLOSE,
		  2 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", rules, 0,
	    0, 0 };
	struct transport_rcpt r[2];
	const char *one[] = { "c@example.com", NULL };
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	deliver(t, SENDER, "x\n", one, r);
	check_rcpt(&r[0], OUTCOME_TEMP, "421 4.3.2 shutting down");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\n"
	    "MAIL FROM:<" SENDER "> SIZE=2\nRCPT TO:<c@example.com>\n"
	    "CONNECT\nEHLO " HELO_NAME "\nMAIL FROM:<" SENDER "> SIZE=2\n");
	peer_free(p);
}

/* 421 in the middle of a fresh session: all TEMP, no retry. */
static void
test_421_rcpt(void **state)
{
	static const struct rule rules[] = {
		{ "RCPT TO:<b@", "421 4.7.0 too many errors\r\n",
		  ACT_REPLY_CLOSE, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_PLAIN, QUEUED "\r\n", rules,
	    0, 1, 0 };
	struct transport_rcpt r[3];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, THREE, r);
	check_rcpt(&r[0], OUTCOME_TEMP, "421 4.7.0 too many errors");
	check_rcpt(&r[1], OUTCOME_TEMP, "421 4.7.0 too many errors");
	check_rcpt(&r[2], OUTCOME_TEMP, "421 4.7.0 too many errors");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nMAIL FROM:<" SENDER ">\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\n");
	peer_free(p);
}

static void
test_garbled(void **state)
{
	struct peer_spec spec = { GREETING, "hello there\r\n", QUEUED "\r\n",
	    NULL, 0, 0, 0 };
	struct transport_rcpt r[1];
	const char *one[] = { "a@example.com", NULL };
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, one, r);
	check_rcpt(&r[0], OUTCOME_TEMP,
	    "garbled reply to EHLO: malformed reply line");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n");
	peer_free(p);
}

static void
test_greeting_refused(void **state)
{
	struct peer_spec spec = { "554 5.3.2 no service here\r\n", EHLO_ALL,
	    QUEUED "\r\n", NULL, 0, 0, 0 };
	struct transport_rcpt r[1];
	const char *one[] = { "a@example.com", NULL };
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, one, r);
	check_rcpt(&r[0], OUTCOME_TEMP, "554 5.3.2 no service here");
	finish(t, p, "CONNECT\nQUIT\n");
	peer_free(p);
}

/* The server offers SIZE 100: a larger message is not even offered. */
static void
test_size_limit(void **state)
{
	struct peer_spec spec = { GREETING, "250-fake\r\n250 SIZE 100\r\n",
	    QUEUED "\r\n", NULL, 0, 0, 0 };
	struct transport_rcpt r[2];
	char big[201];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	memset(big, 'x', 199);
	big[199] = '\n';
	big[200] = '\0';
	deliver(t, SENDER, big, TWO, r);
	check_rcpt(&r[0], OUTCOME_PERM, "message size 200 exceeds the relay's "
	    "limit of 100 bytes");
	check_rcpt(&r[1], OUTCOME_PERM, "message size 200 exceeds the relay's "
	    "limit of 100 bytes");
	deliver(t, SENDER, "small\n", TWO, r);
	check_rcpt(&r[1], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=6\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\nQUIT\n");
	peer_free(p);
}

/*
 * An address that would smuggle a command, or the empty one, is refused,
 * never sent; so is such a sender, before any command.
 */
static void
test_bad_address(void **state)
{
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct transport_rcpt r[3];
	const char *addrs[] = { "x@example.com>\r\nRCPT TO:<y@example.com",
	    "", "a@example.com", NULL };
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, addrs, r);
	check_rcpt(&r[0], OUTCOME_PERM, "invalid recipient address");
	check_rcpt(&r[1], OUTCOME_PERM, "invalid recipient address");
	check_rcpt(&r[2], OUTCOME_OK, QUEUED);
	deliver(t, "evil\r\nRSET", TEXT, addrs + 2, r);
	check_rcpt(&r[0], OUTCOME_PERM, "invalid sender address");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\nRCPT TO:<a@example.com>\n"
	    "DATA\nQUIT\n");
	peer_free(p);
}

/*
 * The server takes DATA, then drops the connection while a large text is
 * being written: the write fails (EPIPE or ECONNRESET), and the process
 * must live on (no SIGPIPE) with the recipients deferred.
 */
static void
test_peer_drops_during_text(void **state)
{
	static const struct rule rules[] = {
		{ "DATA", "354 go ahead\r\n", ACT_REPLY_CLOSE, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", rules, 0,
	    0, 0 };
	struct transport_rcpt r[1];
	const char *one[] = { "a@example.com", NULL };
	size_t len = 8 << 20, i;
	char *big = malloc(len);
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	assert_non_null(big);
	memset(big, 'y', len);
	for (i = 70; i < len; i += 71)
		big[i] = '\n';
	signal(SIGPIPE, SIG_DFL);
	deliver_len(t, SENDER, big, len, one, r);
	check_rcpt_prefix(&r[0], OUTCOME_TEMP, "lost connection sending "
	    "message text: ");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=8388608\nRCPT TO:<a@example.com>\n"
	    "DATA\n");
	free(big);
	peer_free(p);
}

/* A reply DATA cannot get: the server is not trusted with the text. */
static void
test_data_unexpected_reply(void **state)
{
	static const struct rule rules[] = {
		{ "DATA", "250 2.0.0 sure\r\n", ACT_REPLY, 0 },
		{ NULL, NULL, ACT_REPLY, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", rules, 0,
	    0, 0 };
	struct transport_rcpt r[2];
	struct peer *p = peer_start(&spec);
	void *t = client_open(p->port, 5);

	(void)state;
	deliver(t, SENDER, TEXT, TWO, r);
	check_rcpt(&r[0], OUTCOME_TEMP, "unexpected reply to DATA: 250 2.0.0 "
	    "sure");
	check_rcpt(&r[1], OUTCOME_TEMP, "unexpected reply to DATA: 250 2.0.0 "
	    "sure");
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\n"
	    "RCPT TO:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\n");
	peer_free(p);
}

/* An IPv6 literal in brackets, delivered to and refused by ::1. */
static void
test_ipv6_literal(void **state)
{
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct transport_rcpt r[1];
	const char *one[] = { "a@example.com", NULL };
	char arg[64], want[96];
	struct peer *p;
	void *t;
	int fd, port = 0;

	(void)state;
	if ((fd = listen_loopback6(&port)) == -1)
		skip();
	p = peer_start_on(&spec, fd, port);
	snprintf(arg, sizeof(arg), "[::1]:%d", port);
	t = client_open_arg(arg, 5);
	deliver(t, SENDER, TEXT, one, r);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\nRCPT TO:<a@example.com>\n"
	    "DATA\nQUIT\n");
	peer_free(p);

	/* The port is free again: now nobody listens there. */
	t = client_open_arg(arg, 5);
	deliver(t, SENDER, TEXT, one, r);
	snprintf(want, sizeof(want), "connect to [::1]:%d: Connection "
	    "refused", port);
	check_rcpt(&r[0], OUTCOME_TEMP, want);
	transport_smtp_ops.close(t);
}

/*
 * In the silent DNS child: a list of two names neither of which resolves
 * ends within delivery_timeout in all, each with its reason; one whose
 * first name hangs still gets to the second relay, a loopback address,
 * in its share of the time.
 */
static int
silent_dns_list(struct mpp_config *cfg, struct transport_msg *m)
{
	struct peer_spec good = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct transport_rcpt r = { .addr = "a@example.com" };
	char err[256], arg[128];
	long long t0, took;
	struct peer *p;
	void *t;

	if (config_set(cfg, "transport", "smtp:relay.example:25, "
	    "relay2.example:25", err, sizeof(err)) == -1 ||
	    (t = transport_smtp_ops.open(cfg, err, sizeof(err))) == NULL)
		return 4;
	t0 = util_now_ms();
	transport_smtp_ops.deliver(t, m, &r, 1);
	took = util_now_ms() - t0;
	transport_smtp_ops.close(t);
	fprintf(stderr, "silent DNS, two relays: %lld ms, \"%s\"\n", took,
	    r.reply);
	if (r.result != OUTCOME_TEMP || strcmp(r.reply, "relay.example:25: "
	    "timeout resolving relay.example; relay2.example:25: timeout "
	    "resolving relay2.example") != 0)
		return 5;
	if (took < 900 || took >= 2000)
		return 6;
	p = peer_start(&good);
	snprintf(arg, sizeof(arg), "smtp:relay.example:25,127.0.0.1:%d",
	    p->port);
	if (config_set(cfg, "transport", arg, err, sizeof(err)) == -1 ||
	    (t = transport_smtp_ops.open(cfg, err, sizeof(err))) == NULL)
		return 7;
	t0 = util_now_ms();
	transport_smtp_ops.deliver(t, m, &r, 1);
	took = util_now_ms() - t0;
	transport_smtp_ops.close(t);
	peer_stop(p);
	peer_free(p);
	fprintf(stderr, "silent DNS, then a relay: %lld ms, %d \"%s\"\n",
	    took, r.result, r.reply);
	if (r.result != OUTCOME_OK || took < 400 || took >= 1000)
		return 8;
	return 0;
}

/*
 * The child of test_silent_dns: deliver through a relay whose name no DNS
 * server answers for; cmocka's checks stay with the parent, so this says
 * what it found in its exit code (SILENT_DNS_SKIP: no namespaces).
 */
static int
silent_dns_child(void)
{
	static const char text[] = "Subject: x\n\nx\n";
	struct mpp_config cfg;
	struct transport_msg m;
	struct transport_rcpt r = { .addr = "a@example.com" };
	char err[256], path[] = "/tmp/test_transport_smtp.XXXXXX";
	long long t0, took;
	void *t;
	int sock;

	if (silent_dns(&sock) == -1)
		return SILENT_DNS_SKIP;
	config_defaults(&cfg);
	strcpy(cfg.hostname, HELO_NAME);
	cfg.delivery_timeout = 1;
	if (config_set(&cfg, "transport", "smtp:relay.example:25", err,
	    sizeof(err)) == -1 ||
	    (t = transport_smtp_ops.open(&cfg, err, sizeof(err))) == NULL ||
	    (m.fd = mkstemp(path)) == -1)
		return 1;
	unlink(path);
	if (util_write_all(m.fd, text, sizeof(text) - 1) == -1)
		return 1;
	m.id = "TESTID";
	m.sender = SENDER;
	m.size = (off_t)sizeof(text) - 1;
	t0 = util_now_ms();
	transport_smtp_ops.deliver(t, &m, &r, 1);
	took = util_now_ms() - t0;
	fprintf(stderr, "silent DNS: %lld ms, %d \"%s\"\n", took, r.result,
	    r.reply);
	transport_smtp_ops.close(t);
	if (r.result != OUTCOME_TEMP ||
	    strcmp(r.reply, "timeout resolving relay.example") != 0)
		return 2;
	if (took < 900 || took >= 2000)
		return 3;
	return silent_dns_list(&cfg, &m);
}

/*
 * A relay name whose DNS server never answers: the attempt ends within
 * delivery_timeout (the resolver's own retries would take 15 s), the
 * message deferred with the reason.
 */
static void
test_silent_dns(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	if ((pid = fork()) == 0)
		_exit(silent_dns_child());
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == SILENT_DNS_SKIP)
		skip();
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Relay lists, smtp_tls and AUTH. */

static const char EHLO_AUTH[] = "250-fake.example\r\n250-PIPELINING\r\n"
    "250-AUTH LOGIN PLAIN\r\n250 8BITMIME\r\n";
static const char EHLO_LOGIN[] = "250-fake.example\r\n250-AUTH=LOGIN\r\n"
    "250 8BITMIME\r\n";
/* base64 of "\0alice\0alice-secret", "alice", "alice-secret" */
#define PLAIN_RESPONSE "AGFsaWNlAGFsaWNlLXNlY3JldA=="
#define LOGIN_USER "YWxpY2U="
#define LOGIN_PASS "YWxpY2Utc2VjcmV0"

/* A transport with smtp_tls and, when login is not NULL, a login file. */
static void *
client_open_with(const char *arg, const char *tls, const char *login,
    char *err, size_t errsz)
{
	struct mpp_config cfg;
	char value[CONFIG_STR_MAX], path[] = "/tmp/test_transport_smtp.XXXXXX";
	void *t;
	int fd = -1;

	config_defaults(&cfg);
	strcpy(cfg.hostname, HELO_NAME);
	cfg.delivery_timeout = 5;
	snprintf(value, sizeof(value), "smtp:%s", arg);
	assert_int_equal(config_set(&cfg, "transport", value, err, errsz), 0);
	assert_int_equal(config_set(&cfg, "smtp_tls", tls, err, errsz), 0);
	if (login != NULL) {
		assert_true((fd = mkstemp(path)) >= 0);
		assert_int_equal(util_write_all(fd, login, strlen(login)), 0);
		strcpy(cfg.smtp_auth_file, path);
	}
	t = transport_smtp_ops.open(&cfg, err, errsz);
	if (fd != -1) {
		close(fd);
		unlink(path);
	}
	return t;
}

static void *
client_open_tls(int port, const char *tls, const char *login)
{
	char arg[64], err[512];
	void *t;

	snprintf(arg, sizeof(arg), "127.0.0.1:%d", port);
	if ((t = client_open_with(arg, tls, login, err, sizeof(err))) == NULL)
		print_error("open: %s\n", err);
	assert_non_null(t);
	return t;
}

/* deliver(), and the status the transport gave. */
static enum transport_status
deliver_status(void *t, const char *const *addrs, struct transport_rcpt *r)
{
	struct transport_msg m;
	enum transport_status st;
	size_t n;

	for (n = 0; addrs[n] != NULL; n++) {
		memset(&r[n], 0, sizeof(r[n]));
		r[n].addr = addrs[n];
		r[n].result = OUTCOME_OK;
	}
	m.id = "TESTID";
	m.sender = SENDER;
	m.fd = msg_file(TEXT, strlen(TEXT));
	m.size = (off_t)strlen(TEXT);
	st = transport_smtp_ops.deliver(t, &m, r, n);
	close(m.fd);
	return st;
}

static const char *const ONE[] = { "a@example.com", NULL };

/*
 * The list in order: a relay greeting 421, one refusing EHLO (4xx) and a
 * closed port are passed over; the first that answers takes the message
 * and the one after it is never asked.
 */
static void
test_relay_failover(void **state)
{
	struct peer_spec busy = { "421 4.3.2 busy\r\n", EHLO_ALL, QUEUED "\r\n",
	    NULL, 0, 0, 0 };
	struct peer_spec cold = { GREETING, "454 4.7.0 not now\r\n",
	    QUEUED "\r\n", NULL, 0, 0, 0 };
	struct peer_spec good = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct peer *p1 = peer_start(&busy), *p2 = peer_start(&cold);
	struct peer *p3 = peer_start(&good), *p4 = peer_start(&good);
	struct transport_rcpt r[1];
	char arg[256], err[512];
	int closed, fd;
	void *t;

	(void)state;
	fd = listen_loopback(&closed);
	close(fd);
	snprintf(arg, sizeof(arg), "127.0.0.1:%d, 127.0.0.1:%d,127.0.0.1:%d,"
	    "127.0.0.1:%d,127.0.0.1:%d", p1->port, closed, p2->port, p3->port,
	    p4->port);
	assert_non_null(t = client_open_with(arg, "may", NULL, err,
	    sizeof(err)));
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	/* The kept connection serves the next message: no new tries. */
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	transport_smtp_ops.close(t);
	peer_stop(p1);
	peer_stop(p2);
	peer_stop(p3);
	peer_stop(p4);
	assert_string_equal(p1->log, "CONNECT\n");
	assert_string_equal(p2->log, "CONNECT\nEHLO " HELO_NAME "\nQUIT\n");
	assert_string_equal(p3->log, "CONNECT\nEHLO " HELO_NAME "\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\nRCPT TO:<a@example.com>\nDATA\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\nRCPT TO:<a@example.com>\nDATA\n"
	    "QUIT\n");
	assert_string_equal(p4->log, "");
	peer_free(p1);
	peer_free(p2);
	peer_free(p3);
	peer_free(p4);
}

/*
 * No relay of the list greets: UNREACHABLE, with each relay's reason; the
 * probe tests the list the same way and says the same.
 */
static void
test_relay_all_down(void **state)
{
	struct peer_spec busy = { "421 4.3.2 busy\r\n", EHLO_ALL, QUEUED "\r\n",
	    NULL, 0, 0, 0 };
	struct peer_spec good = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct peer *p1 = peer_start(&busy), *p2;
	struct transport_rcpt r[1];
	char arg[256], err[512], want[512], why[512];
	int closed, fd;
	void *t;

	(void)state;
	fd = listen_loopback(&closed);
	close(fd);
	snprintf(arg, sizeof(arg), "127.0.0.1:%d,127.0.0.1:%d", p1->port,
	    closed);
	assert_non_null(t = client_open_with(arg, "may", NULL, err,
	    sizeof(err)));
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_UNREACHABLE);
	snprintf(want, sizeof(want), "127.0.0.1:%d: 421 4.3.2 busy; "
	    "127.0.0.1:%d: connect to 127.0.0.1:%d: Connection refused",
	    p1->port, closed, closed);
	check_rcpt(&r[0], OUTCOME_TEMP, want);
	assert_int_equal(transport_smtp_ops.probe(t, why, sizeof(why)), -1);
	assert_string_equal(why, want);
	transport_smtp_ops.close(t);

	/* The probe: the first relay that greets and answers EHLO. */
	p2 = peer_start(&good);
	snprintf(arg, sizeof(arg), "127.0.0.1:%d,127.0.0.1:%d", p1->port,
	    p2->port);
	assert_non_null(t = client_open_with(arg, "encrypt", NULL, err,
	    sizeof(err)));
	assert_int_equal(transport_smtp_ops.probe(t, why, sizeof(why)), 0);
	transport_smtp_ops.close(t);
	peer_stop(p1);
	peer_stop(p2);
	assert_string_equal(p1->log, "CONNECT\nCONNECT\nCONNECT\n");
	assert_string_equal(p2->log, "CONNECT\nEHLO " HELO_NAME "\nQUIT\n");
	peer_free(p1);
	peer_free(p2);
}

/*
 * encrypt and verify need STARTTLS: a relay that offers none gets no
 * envelope; the message waits with the reason, and the relay counts as
 * answered (it is up, only not usable).
 */
static void
test_tls_required(void **state)
{
	static const char *const modes[] = { "encrypt", "verify" };
	struct peer_spec spec = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct transport_rcpt r[1];
	char want[256];
	struct peer *p;
	size_t i;
	void *t;

	(void)state;
	for (i = 0; i < 2; i++) {
		p = peer_start(&spec);
		t = client_open_tls(p->port, modes[i], NULL);
		assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
		snprintf(want, sizeof(want), "relay 127.0.0.1:%d offers no "
		    "STARTTLS, and smtp_tls requires TLS", p->port);
		check_rcpt(&r[0], OUTCOME_TEMP, want);
		finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nQUIT\n");
		peer_free(p);
	}
}

/* STARTTLS refused: encrypt defers, may goes on in clear. */
static void
test_starttls_refused(void **state)
{
	static const struct rule rules[] = {
		{ "STARTTLS", "454 4.7.0 TLS not available\r\n", ACT_REPLY, 0 },
		{ NULL, NULL, 0, 0 }
	};
	struct peer_spec spec = { GREETING, "250-fake\r\n250-STARTTLS\r\n"
	    "250 SIZE\r\n", QUEUED "\r\n", rules, 0, 0, 0 };
	struct transport_rcpt r[1];
	char want[256];
	struct peer *p = peer_start(&spec);
	void *t = client_open_tls(p->port, "encrypt", NULL);

	(void)state;
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	snprintf(want, sizeof(want), "relay 127.0.0.1:%d refused STARTTLS: "
	    "454 4.7.0 TLS not available", p->port);
	check_rcpt(&r[0], OUTCOME_TEMP, want);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nSTARTTLS\nQUIT\n");
	peer_free(p);

	p = peer_start(&spec);
	t = client_open_tls(p->port, "may", NULL);
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nSTARTTLS\n"
	    "MAIL FROM:<" SENDER "> SIZE=20\nRCPT TO:<a@example.com>\nDATA\n"
	    "QUIT\n");
	peer_free(p);
}

/*
 * A relay that answers STARTTLS with 220 but speaks no TLS: the handshake
 * fails, the message waits, and nothing more goes in clear.
 */
static void
test_tls_handshake_fails(void **state)
{
	static const struct rule rules[] = {
		{ "STARTTLS", "220 2.0.0 go ahead\r\n", ACT_REPLY, 0 },
		{ NULL, NULL, 0, 0 }
	};
	struct peer_spec spec = { GREETING, "250-fake\r\n250 STARTTLS\r\n",
	    QUEUED "\r\n", rules, 0, 0, 0 };
	struct transport_rcpt r[1];
	char want[256];
	struct peer *p = peer_start(&spec);
	void *t = client_open_tls(p->port, "may", NULL);

	(void)state;
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	snprintf(want, sizeof(want), "TLS with 127.0.0.1:%d failed: ",
	    p->port);
	check_rcpt_prefix(&r[0], OUTCOME_TEMP, want);
	transport_smtp_ops.close(t);
	peer_stop(p);
	/* The fake took the ClientHello for a (garbled) command line, or
	   none at all: no envelope, no QUIT in clear. */
	assert_null(strstr(p->log, "MAIL"));
	assert_null(strstr(p->log, "QUIT"));
	assert_true(starts(p->log, "CONNECT\nEHLO " HELO_NAME "\nSTARTTLS\n"));
	peer_free(p);
}

/* AUTH PLAIN to a loopback relay in clear, when offered beside LOGIN. */
static void
test_auth_plain(void **state)
{
	static const struct rule rules[] = {
		{ "AUTH PLAIN " PLAIN_RESPONSE, "235 2.7.0 ok\r\n", ACT_REPLY, 0 },
		{ NULL, NULL, 0, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_AUTH, QUEUED "\r\n", rules, 0,
	    0, 0 };
	struct transport_rcpt r[1];
	struct peer *p = peer_start(&spec);
	void *t = client_open_tls(p->port, "none",
	    "# a comment\nother.example bob x\n* alice alice-secret\n");

	(void)state;
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "AUTH PLAIN " PLAIN_RESPONSE "\n"
	    "MAIL FROM:<" SENDER ">\nRCPT TO:<a@example.com>\nDATA\nQUIT\n");
	peer_free(p);
}

/* AUTH LOGIN (the old "AUTH=" form offered): user, then password. */
static void
test_auth_login(void **state)
{
	static const struct rule rules[] = {
		{ "AUTH LOGIN", "334 VXNlcm5hbWU6\r\n", ACT_REPLY, 0 },
		{ LOGIN_USER, "334 UGFzc3dvcmQ6\r\n", ACT_REPLY, 0 },
		{ LOGIN_PASS, "235 2.7.0 ok\r\n", ACT_REPLY, 0 },
		{ NULL, NULL, 0, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_LOGIN, QUEUED "\r\n", rules,
	    0, 0, 0 };
	struct transport_rcpt r[1];
	char login[128];
	struct peer *p = peer_start(&spec);
	void *t;

	(void)state;
	snprintf(login, sizeof(login), "127.0.0.1:%d alice alice-secret\n",
	    p->port);
	t = client_open_tls(p->port, "may", login);
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	check_rcpt(&r[0], OUTCOME_OK, QUEUED);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nAUTH LOGIN\n" LOGIN_USER
	    "\n" LOGIN_PASS "\nMAIL FROM:<" SENDER ">\n"
	    "RCPT TO:<a@example.com>\nDATA\nQUIT\n");
	peer_free(p);
}

/*
 * A 535 (or any refusal of AUTH) defers the message with the relay's
 * reply; a relay that offers no AUTH when a login is set, or only
 * mechanisms mpp does not use, gets no envelope either.
 */
static void
test_auth_refused(void **state)
{
	static const struct rule rules[] = {
		{ "AUTH PLAIN", "535 5.7.8 Error: authentication failed\r\n",
		    ACT_REPLY, 0 },
		{ NULL, NULL, 0, 0 }
	};
	struct peer_spec spec = { GREETING, EHLO_AUTH, QUEUED "\r\n", rules, 0,
	    0, 0 };
	struct peer_spec noauth = { GREETING, EHLO_ALL, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct peer_spec cram = { GREETING, "250-fake\r\n250 AUTH CRAM-MD5\r\n",
	    QUEUED "\r\n", NULL, 0, 0, 0 };
	struct transport_rcpt r[1];
	char want[256];
	struct peer *p = peer_start(&spec);
	void *t = client_open_tls(p->port, "may", "* alice alice-secret\n");

	(void)state;
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	snprintf(want, sizeof(want), "AUTH as alice refused by 127.0.0.1:%d: "
	    "535 5.7.8 Error: authentication failed", p->port);
	check_rcpt(&r[0], OUTCOME_TEMP, want);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\n"
	    "AUTH PLAIN " PLAIN_RESPONSE "\nQUIT\n");
	peer_free(p);

	p = peer_start(&noauth);
	t = client_open_tls(p->port, "may", "* alice alice-secret\n");
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	snprintf(want, sizeof(want), "relay 127.0.0.1:%d offers no AUTH "
	    "without TLS", p->port);
	check_rcpt_prefix(&r[0], OUTCOME_TEMP, want);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nQUIT\n");
	peer_free(p);

	p = peer_start(&cram);
	t = client_open_tls(p->port, "may", "* alice alice-secret\n");
	assert_int_equal(deliver_status(t, ONE, r), TRANSPORT_ANSWERED);
	snprintf(want, sizeof(want), "relay 127.0.0.1:%d offers no AUTH "
	    "mechanism mpp uses (PLAIN, LOGIN)", p->port);
	check_rcpt(&r[0], OUTCOME_TEMP, want);
	finish(t, p, "CONNECT\nEHLO " HELO_NAME "\nQUIT\n");
	peer_free(p);
}

/* A bad login file is refused by open(), naming file and line. */
static void
test_auth_file_refused(void **state)
{
	char err[512];

	(void)state;
	assert_null(client_open_with("127.0.0.1:25", "may", "* alice\n", err,
	    sizeof(err)));
	assert_non_null(strstr(err, ":1: expected \"HOST[:PORT] USER "
	    "PASSWORD\""));
}

/* Add addr (dotted quad) to lo in this network namespace, as lo:1. */
static int
lo_add(const char *addr)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), rc;

	if (fd == -1)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo:1");
	sin->sin_family = AF_INET;
	rc = inet_pton(AF_INET, addr, &sin->sin_addr) == 1 &&
	    ioctl(fd, SIOCSIFADDR, &ifr) == 0 ? 0 : -1;
	close(fd);
	return rc;
}

/*
 * The child of test_auth_not_in_clear: in a network namespace of its own
 * with 192.0.2.25 on lo, a relay there that offers AUTH in clear only.
 * The exit code says what happened (SILENT_DNS_SKIP: no namespaces).
 */
static int
remote_clear_child(void)
{
	struct peer_spec spec = { GREETING, EHLO_AUTH, QUEUED "\r\n", NULL, 0,
	    0, 0 };
	struct sockaddr_in sin;
	struct transport_rcpt r[1];
	socklen_t len = sizeof(sin);
	char arg[64], err[512];
	struct peer *p;
	void *t;
	int fd, on = 1;

	if (unshare(CLONE_NEWNET) == -1 || silent_dns_lo_up() == -1 ||
	    lo_add("192.0.2.25") == -1)
		return SILENT_DNS_SKIP;
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.25", &sin.sin_addr);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 8) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		return 1;
	p = peer_start_on(&spec, fd, ntohs(sin.sin_port));
	snprintf(arg, sizeof(arg), "192.0.2.25:%d", p->port);
	if ((t = client_open_with(arg, "may", "* alice alice-secret\n", err,
	    sizeof(err))) == NULL)
		return 1;
	if (deliver_status(t, ONE, r) != TRANSPORT_ANSWERED)
		return 2;
	transport_smtp_ops.close(t);
	peer_stop(p);
	fprintf(stderr, "remote relay: %d \"%s\"; log:\n%s", r[0].result,
	    r[0].reply, p->log);
	snprintf(err, sizeof(err), "relay %s offers AUTH without TLS only: "
	    "the password is not sent in clear", arg);
	if (r[0].result != OUTCOME_TEMP || strcmp(r[0].reply, err) != 0)
		return 3;
	return strcmp(p->log, "CONNECT\nEHLO " HELO_NAME "\nQUIT\n") == 0 ?
	    0 : 4;
}

/*
 * AUTH is never sent in clear to a relay that is not on loopback: the
 * message waits, the password never leaves.
 */
static void
test_auth_not_in_clear(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	if ((pid = fork()) == 0)
		_exit(remote_clear_child());
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == SILENT_DNS_SKIP)
		skip();
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void
test_open_arg(void **state)
{
	struct mpp_config cfg;
	char err[256];
	void *t;

	(void)state;
	config_defaults(&cfg);
	/* A relay that is not HOST:PORT never gets this far: config
	   refuses it, and an SMTP transport without a relay is refused. */
	assert_int_equal(config_set(&cfg, "transport", "smtp:host:port", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "bad value \"smtp:host:port\" for "
	    "transport");
	assert_int_equal(cfg.transport.nrelays, 0);
	t = transport_smtp_ops.open(&cfg, err, sizeof(err));
	assert_null(t);
	assert_string_equal(err, "no SMTP relay");
	assert_int_equal(config_set(&cfg, "transport", "smtp:[::1]:2525", err,
	    sizeof(err)), 0);
	t = transport_smtp_ops.open(&cfg, err, sizeof(err));
	assert_non_null(t);
	transport_smtp_ops.close(t);
	transport_smtp_ops.close(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelining_size),
		cmocka_unit_test(test_lockstep),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_null_sender),
		cmocka_unit_test(test_dot_stuffing),
		cmocka_unit_test(test_large_text),
		cmocka_unit_test(test_8bitmime),
		cmocka_unit_test(test_rcpt_mix),
		cmocka_unit_test(test_no_rcpt_accepted),
		cmocka_unit_test(test_mail_from_refused),
		cmocka_unit_test(test_data_end_refused),
		cmocka_unit_test(test_data_command_refused),
		cmocka_unit_test(test_timeout_greeting),
		cmocka_unit_test(test_timeout_data_end),
		cmocka_unit_test(test_timeout_rcpt),
		cmocka_unit_test(test_timeout_text_write),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_idle_quit),
		cmocka_unit_test(test_reconnect_after_close),
		cmocka_unit_test(test_reconnect_after_421),
		cmocka_unit_test(test_reconnect_once),
		cmocka_unit_test(test_421_rcpt),
		cmocka_unit_test(test_garbled),
		cmocka_unit_test(test_greeting_refused),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_bad_address),
		cmocka_unit_test(test_peer_drops_during_text),
		cmocka_unit_test(test_data_unexpected_reply),
		cmocka_unit_test(test_ipv6_literal),
		cmocka_unit_test(test_relay_failover),
		cmocka_unit_test(test_relay_all_down),
		cmocka_unit_test(test_tls_required),
		cmocka_unit_test(test_starttls_refused),
		cmocka_unit_test(test_tls_handshake_fails),
		cmocka_unit_test(test_auth_plain),
		cmocka_unit_test(test_auth_login),
		cmocka_unit_test(test_auth_refused),
		cmocka_unit_test(test_auth_file_refused),
		cmocka_unit_test(test_auth_not_in_clear),
		cmocka_unit_test(test_open_arg),
		cmocka_unit_test(test_silent_dns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
