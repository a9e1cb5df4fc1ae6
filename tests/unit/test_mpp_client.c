/*
 * Unit tests for client/mpp_client: server spec parsing, reply parsing and
 * reading, the text writer (CRLF, dot-stuffing; whole and byte by byte),
 * command tracing, and the exit code each server answer leads to. The
 * "server" is the other end of a socketpair, or a loopback listener.
 *
 * TLS: a test PKI made at start (two CAs; certificates for localhost and
 * 127.0.0.1, and for another name), a TLS server in a thread on the other
 * end of the socketpair; verification by name and by address, an unknown
 * CA, a server below TLS 1.2, a server that does not speak TLS or says
 * nothing, large text through non-blocking TLS writes, and a server that
 * hangs up (an error, never SIGPIPE). Nothing is sent before the
 * certificate is verified.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../../client/mpp_client.h"
#include "tls_client.h"

/* A client attached to one end of a socketpair; peer is the other end. */
struct pair {
	struct mpp_client c;
	int peer;
};

static struct pair *
pair_new(int timeout)
{
	struct pair *p = calloc(1, sizeof(*p));
	int sv[2];

	assert_non_null(p);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	mpp_client_init(&p->c, timeout);
	mpp_client_attach(&p->c, sv[0], "test peer");
	p->peer = sv[1];
	return p;
}

static void
pair_free(struct pair *p)
{
	mpp_client_close(&p->c);
	close(p->peer);
	free(p);
}

static void
peer_says(struct pair *p, const char *s)
{
	size_t len = strlen(s);

	assert_int_equal(write(p->peer, s, len), (ssize_t)len);
}

/* Everything the client sent so far (the client must be done sending). */
static char *
peer_reads(struct pair *p, size_t *lenp)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	shutdown(p->peer, SHUT_WR);
	mpp_client_close(&p->c);
	while ((n = read(p->peer, buf + len, cap - len)) > 0) {
		len += (size_t)n;
		if (len == cap) {
			cap *= 2;
			assert_non_null(buf = realloc(buf, cap));
		}
	}
	*lenp = len;
	return buf;
}

/* ---- server spec ---- */

static void
test_parse_server_good(void **state)
{
	static const struct {
		const char *spec, *host, *port;
	} t[] = {
		{ "localhost", "localhost", "218" },
		{ "mail.example.org:2218", "mail.example.org", "2218" },
		{ "192.0.2.7:25", "192.0.2.7", "25" },
		{ "[::1]:2218", "::1", "2218" },
		{ "[::1]", "::1", "218" },
		{ "::1", "::1", "218" },
		{ "2001:db8::7", "2001:db8::7", "218" },
		{ "[2001:db8::7]:65535", "2001:db8::7", "65535" },
		{ "h:1", "h", "1" },
	};
	char host[MPP_CLIENT_HOST_MAX], port[MPP_CLIENT_PORT_MAX], err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(mpp_client_parse_server(t[i].spec, "218",
		    host, sizeof(host), port, sizeof(port), err,
		    sizeof(err)), 0);
		assert_string_equal(host, t[i].host);
		assert_string_equal(port, t[i].port);
	}
}

static void
test_parse_server_bad(void **state)
{
	static const char *bad[] = {
		"", ":218", "host:", "host:0", "host:65536", "host:21a",
		"host:-1", "host:+25", "host:123456", "[::1", "[::1]x",
		"[::1]:", "[]:25", "[]", "[::1]:99999",
	};
	char host[MPP_CLIENT_HOST_MAX], port[MPP_CLIENT_PORT_MAX], err[256];
	char longhost[MPP_CLIENT_HOST_MAX + 10];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(mpp_client_parse_server(bad[i], "218", host,
		    sizeof(host), port, sizeof(port), err, sizeof(err)), -1);
		assert_non_null(strstr(err, "bad server"));
	}
	memset(longhost, 'h', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	assert_int_equal(mpp_client_parse_server(longhost, "218", host,
	    sizeof(host), port, sizeof(port), err, sizeof(err)), -1);
}

/* ---- reply lines ---- */

static void
test_parse_reply(void **state)
{
	static const struct {
		const char *line;
		int code, final;
	} t[] = {
		{ "220 Message Posting Service Ready.", 220, 1 },
		{ "250 Command OK.", 250, 1 },
		{ "250-first of several", 250, 0 },
		{ "354", 354, 1 },
		{ "550 ", 550, 1 },
		{ "25", -1, 0 },
		{ "", -1, 0 },
		{ "abc def", -1, 0 },
		{ "2501 x", -1, 0 },
		{ "600 x", -1, 0 },
		{ "099 x", -1, 0 },
		{ " 250 x", -1, 0 },
		{ "2a0 x", -1, 0 },
	};
	size_t i;
	int final;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		final = -7;
		assert_int_equal(mpp_client_parse_reply(t[i].line,
		    strlen(t[i].line), &final), t[i].code);
		if (t[i].code != -1)
			assert_int_equal(final, t[i].final);
	}
}

static void
test_read_reply(void **state)
{
	struct pair *p = pair_new(5);
	char longline[2000];

	(void)state;
	peer_says(p, "220 Message Posting Service Ready.\r\n");
	assert_int_equal(mpp_client_read_reply(&p->c), 220);
	assert_string_equal(p->c.reply, "220 Message Posting Service Ready.");

	/* LF alone ends a line too */
	peer_says(p, "250 Command OK.\n");
	assert_int_equal(mpp_client_read_reply(&p->c), 250);
	assert_string_equal(p->c.reply, "250 Command OK.");

	/* multi-line: until the line whose 4th character is a space */
	peer_says(p, "250-one\r\nfree text\r\n251 not the end\r\n250 end\r\n");
	assert_int_equal(mpp_client_read_reply(&p->c), 250);
	assert_string_equal(p->c.reply, "250 end");

	/* an over-long line is cut, the rest skipped; the next reply reads */
	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "451 ", 4);
	assert_int_equal(write(p->peer, longline, sizeof(longline)),
	    (ssize_t)sizeof(longline));
	peer_says(p, "\r\n354 next\r\n");
	assert_int_equal(mpp_client_read_reply(&p->c), 451);
	assert_int_equal(strlen(p->c.reply), MPP_CLIENT_LINE_MAX - 1);
	assert_int_equal(mpp_client_read_reply(&p->c), 354);
	assert_string_equal(p->c.reply, "354 next");

	/* control characters and 8-bit bytes never reach a terminal */
	peer_says(p, "550 a\033[2Jb\x01\xff\r\n");
	assert_int_equal(mpp_client_read_reply(&p->c), 550);
	assert_string_equal(p->c.reply, "550 a?[2Jb??");
	pair_free(p);
}

static void
test_read_reply_split(void **state)
{
	const char *r = "250-a\r\n250 Command OK.\r\n";
	struct pair *p = pair_new(5);
	size_t i;

	(void)state;
	/* byte by byte: every byte a separate read */
	for (i = 0; r[i] != '\0'; i++)
		assert_int_equal(write(p->peer, r + i, 1), 1);
	assert_int_equal(mpp_client_read_reply(&p->c), 250);
	assert_string_equal(p->c.reply, "250 Command OK.");
	pair_free(p);
}

static void
test_read_reply_garbage(void **state)
{
	struct pair *p = pair_new(5);

	(void)state;
	peer_says(p, "SSH-2.0-OpenSSH_9.2\r\n");
	assert_int_equal(mpp_client_read_reply(&p->c), -1);
	assert_int_equal(p->c.fail, EX_PROTOCOL);
	assert_non_null(strstr(mpp_client_error(&p->c), "SSH-2.0"));
	assert_int_equal(p->c.conn.fd, -1);	/* out of step: closed */
	pair_free(p);
}

static void
test_read_reply_eof(void **state)
{
	struct pair *p = pair_new(5);

	(void)state;
	peer_says(p, "250 partial");
	shutdown(p->peer, SHUT_WR);
	assert_int_equal(mpp_client_read_reply(&p->c), -1);
	assert_int_equal(p->c.fail, EX_TEMPFAIL);
	assert_non_null(strstr(mpp_client_error(&p->c), "closed"));
	pair_free(p);
}

static void
test_read_reply_timeout(void **state)
{
	struct pair *p = pair_new(1);

	(void)state;
	peer_says(p, "25");	/* half a reply, then silence */
	assert_int_equal(mpp_client_read_reply(&p->c), -1);
	assert_int_equal(p->c.fail, EX_TEMPFAIL);
	assert_non_null(strstr(mpp_client_error(&p->c), "within 1 s"));
	pair_free(p);
}

static void
test_too_many_lines(void **state)
{
	struct pair *p = pair_new(5);
	int i;

	(void)state;
	for (i = 0; i <= MPP_CLIENT_REPLY_LINES; i++)
		peer_says(p, "250-more\r\n");
	assert_int_equal(mpp_client_read_reply(&p->c), -1);
	assert_int_equal(p->c.fail, EX_PROTOCOL);
	pair_free(p);
}

/* ---- the text writer ---- */

struct text_case {
	const char *in;
	size_t inlen;
	const char *out;
	size_t outlen;
};

/* Lengths from sizeof: some cases hold a NUL byte. */
#define TC(i, o) { i, sizeof(i) - 1, o, sizeof(o) - 1 }

static const struct text_case text_cases[] = {
	TC("", ".\r\n"),
	TC("a\n", "a\r\n.\r\n"),
	TC("a", "a\r\n.\r\n"),
	TC("a\r\n", "a\r\n.\r\n"),
	TC(".\n", "..\r\n.\r\n"),
	TC(".", "..\r\n.\r\n"),
	TC("x\n.y\n..z\n", "x\r\n..y\r\n...z\r\n.\r\n"),
	TC(".\r\n.\r\n", "..\r\n..\r\n.\r\n"),
	TC("x.\n", "x.\r\n.\r\n"),
	TC("a\rb\n", "a\rb\r\n.\r\n"),
	TC("\r.\n", "\r.\r\n.\r\n"),
	TC("a\r", "a\r\n.\r\n"),
	TC("a\r\r\n", "a\r\r\n.\r\n"),
	TC("\n\n", "\r\n\r\n.\r\n"),
	TC("\r\n.\r\n", "\r\n..\r\n.\r\n"),
	TC("caf\xc3\xa9 \xff\n", "caf\xc3\xa9 \xff\r\n.\r\n"),
	TC("n\0ul\n", "n\0ul\r\n.\r\n"),
	TC("Subject: x\n\nbody\n.\nend", "Subject: x\r\n\r\nbody\r\n..\r\n"
	    "end\r\n.\r\n"),
};

/* Feed in to the writer in chunks of step bytes; return what it sent. */
static char *
convert(const char *in, size_t inlen, size_t step, size_t *outlen)
{
	struct pair *p = pair_new(5);
	size_t off, n;
	char *out;

	mpp_client_text_begin(&p->c);
	for (off = 0; off < inlen; off += n) {
		n = inlen - off < step ? inlen - off : step;
		assert_int_equal(mpp_client_text_write(&p->c, in + off, n), 0);
	}
	assert_int_equal(mpp_client_text_end(&p->c), 0);
	out = peer_reads(p, outlen);
	pair_free(p);
	return out;
}

static void
test_text_cases(void **state)
{
	static const size_t steps[] = { SIZE_MAX, 1, 2, 3 };
	const struct text_case *t;
	size_t i, s, outlen;
	char *out;

	(void)state;
	for (i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
		t = &text_cases[i];
		for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			out = convert(t->in, t->inlen, steps[s], &outlen);
			if (outlen != t->outlen ||
			    memcmp(out, t->out, outlen) != 0)
				fail_msg("case %zu step %zu: got %zu bytes",
				    i, steps[s], outlen);
			free(out);
		}
	}
}

/* The straightforward conversion, to check the writer on large input. */
static char *
reference(const char *in, size_t len, size_t *outlen)
{
	char *out = malloc(len * 3 + 8), *o = out;
	size_t i;
	int bol = 1;

	assert_non_null(out);
	for (i = 0; i < len; i++) {
		if (in[i] == '\n') {
			*o++ = '\r';
			*o++ = '\n';
			bol = 1;
			continue;
		}
		if (bol && in[i] == '.')
			*o++ = '.';
		*o++ = in[i];
		bol = 0;
	}
	if (!bol) {
		*o++ = '\r';
		*o++ = '\n';
	}
	memcpy(o, ".\r\n", 3);
	*outlen = (size_t)(o + 3 - out);
	return out;
}

struct drain {
	int fd;
	char *buf;
	size_t len, cap;
};

static void *
drain_main(void *arg)
{
	struct drain *d = arg;
	ssize_t n;

	while ((n = read(d->fd, d->buf + d->len, d->cap - d->len)) > 0)
		d->len += (size_t)n;
	return NULL;
}

/* Megabytes through the writer while a thread reads the other end. */
static void
test_text_large(void **state)
{
	const size_t len = 3 * 1024 * 1024 + 17;
	struct pair *p = pair_new(10);
	struct drain d = { p->peer, NULL, 0, len * 3 + 8 };
	char *in = malloc(len), *want;
	size_t i, wantlen, off, n;
	pthread_t th;
	unsigned seed = 7;

	(void)state;
	assert_non_null(in);
	assert_non_null(d.buf = malloc(d.cap));
	/* LF-only lines of random length, many starting with dots */
	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		in[i] = (seed >> 16) % 13 == 0 ? '\n' :
		    (seed >> 16) % 5 == 0 ? '.' : (char)('a' + (seed >> 20) % 26);
	}
	assert_int_equal(pthread_create(&th, NULL, drain_main, &d), 0);
	mpp_client_text_begin(&p->c);
	for (off = 0; off < len; off += n) {
		n = len - off < 4093 ? len - off : 4093;
		assert_int_equal(mpp_client_text_write(&p->c, in + off, n), 0);
	}
	assert_int_equal(mpp_client_text_end(&p->c), 0);
	mpp_client_close(&p->c);
	assert_int_equal(pthread_join(th, NULL), 0);
	want = reference(in, len, &wantlen);
	assert_int_equal(d.len, wantlen);
	assert_memory_equal(d.buf, want, wantlen);
	assert_int_equal(p->c.text_bytes, wantlen - 3);
	free(want);
	free(d.buf);
	free(in);
	pair_free(p);
}

/* ---- commands ---- */

static void
test_command_trace_masks_password(void **state)
{
	struct pair *p = pair_new(5);
	char *trace = NULL, *sent;
	size_t tracelen = 0, sentlen;
	FILE *tf = open_memstream(&trace, &tracelen);

	(void)state;
	assert_non_null(tf);
	p->c.trace = tf;
	peer_says(p, "250 Command OK.\r\n250 Command OK.\r\n");
	assert_int_equal(mpp_client_command(&p->c, "USER", "alice"), 250);
	assert_int_equal(mpp_client_command(&p->c, "PASS", "s3cret pw"), 250);
	fclose(tf);
	assert_non_null(strstr(trace, "-> USER alice\n"));
	assert_non_null(strstr(trace, "-> PASS ****\n"));
	assert_null(strstr(trace, "s3cret"));
	assert_non_null(strstr(trace, "<- 250 Command OK.\n"));
	sent = peer_reads(p, &sentlen);
	assert_int_equal(sentlen, strlen("USER alice\r\nPASS s3cret pw\r\n"));
	assert_memory_equal(sent, "USER alice\r\nPASS s3cret pw\r\n", sentlen);
	free(sent);
	free(trace);
	pair_free(p);
}

static void
test_command_refuses_line_break(void **state)
{
	struct pair *p = pair_new(5);
	char *sent;
	size_t sentlen;

	(void)state;
	assert_int_equal(mpp_client_send_command(&p->c, "USER",
	    "bob\r\nDATA"), -1);
	assert_int_equal(p->c.fail, EX_USAGE);
	sent = peer_reads(p, &sentlen);
	assert_int_equal(sentlen, 0);
	free(sent);
	pair_free(p);
}

/* ---- session steps: the exit code each answer leads to ---- */

static void
test_login_outcomes(void **state)
{
	static const struct {
		const char *replies;
		int ex;
		const char *msg;
	} t[] = {
		{ "250 Command OK.\r\n250 Command OK.\r\n", EX_OK, NULL },
		{ "250 Command OK.\r\n530 Authentication Failure.\r\n",
		    EX_NOPERM, "530 Authentication Failure." },
		{ "250 Command OK.\r\n451 Local error encountered.\r\n",
		    EX_TEMPFAIL, "451 Local error encountered." },
		{ "451 Local error encountered.\r\n", EX_TEMPFAIL, "USER" },
		{ "501 Argument syntax error.\r\n", EX_SOFTWARE,
		    "501 Argument syntax error." },
		{ "250 Command OK.\r\n503 Illegal command sequence.\r\n",
		    EX_SOFTWARE, "503" },
		{ "250 Command OK.\r\n354 what?\r\n", EX_PROTOCOL, "354" },
		{ "250 Command OK.\r\n", EX_TEMPFAIL, "closed" },
	};
	struct pair *p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		p = pair_new(5);
		peer_says(p, t[i].replies);
		shutdown(p->peer, SHUT_WR);
		assert_int_equal(mpp_client_login(&p->c, "alice", "pw"),
		    t[i].ex);
		if (t[i].msg != NULL &&
		    strstr(mpp_client_error(&p->c), t[i].msg) == NULL)
			fail_msg("case %zu: \"%s\"", i,
			    mpp_client_error(&p->c));
		pair_free(p);
	}
}

static void
test_post_outcomes(void **state)
{
	static const struct {
		const char *replies;
		int ex;
		const char *msg;
	} t[] = {
		{ "354 Enter mail, end with <CRLF>.<CRLF>\r\n250 Command OK.\r\n",
		    EX_OK, NULL },
		{ "354 go\r\n550 Error.\r\n", EX_DATAERR, "550 Error." },
		{ "354 go\r\n451 Local error encountered.\r\n", EX_TEMPFAIL,
		    "451" },
		{ "451 Local error encountered.\r\n", EX_TEMPFAIL, "DATA" },
		{ "503 Illegal command sequence.\r\n", EX_SOFTWARE, "503" },
		{ "250 Command OK.\r\n", EX_PROTOCOL, "250" },
		{ "354 go\r\n", EX_TEMPFAIL, "closed" },
	};
	struct pair *p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		p = pair_new(5);
		peer_says(p, t[i].replies);
		shutdown(p->peer, SHUT_WR);
		assert_int_equal(mpp_client_post_buf(&p->c, "To: a@b\n\nhi\n",
		    12), t[i].ex);
		if (t[i].msg != NULL &&
		    strstr(mpp_client_error(&p->c), t[i].msg) == NULL)
			fail_msg("case %zu: \"%s\"", i,
			    mpp_client_error(&p->c));
		pair_free(p);
	}
}

static void
test_post_fd_read_error(void **state)
{
	struct pair *p = pair_new(5);
	char *sent;
	size_t len;
	int fd;

	(void)state;
	fd = open(".", O_RDONLY);	/* read(2) on a directory: EISDIR */
	assert_true(fd >= 0);
	peer_says(p, "354 go\r\n");
	assert_int_equal(mpp_client_post_fd(&p->c, fd, NULL, NULL), EX_IOERR);
	assert_int_equal(p->c.conn.fd, -1);	/* closed: no final dot */
	close(fd);
	sent = peer_reads(p, &len);
	assert_int_equal(len, 6);
	assert_memory_equal(sent, "DATA\r\n", 6);
	free(sent);
	pair_free(p);
}

static void
test_quit_keeps_error(void **state)
{
	struct pair *p = pair_new(5);

	(void)state;
	peer_says(p, "530 Authentication Failure.\r\n221 Closing Connection."
	    "\r\n");
	assert_int_equal(mpp_client_command(&p->c, "PASS", "x"), 530);
	strcpy(p->c.err, "kept");
	p->c.fail = EX_NOPERM;
	mpp_client_quit(&p->c);
	assert_string_equal(mpp_client_error(&p->c), "kept");
	assert_int_equal(p->c.fail, EX_NOPERM);
	assert_int_equal(p->c.conn.fd, -1);
	pair_free(p);
}

/* ---- connecting ---- */

static int
listener(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
test_connect_and_greeting(void **state)
{
	struct mpp_client c;
	char port[16];
	int lfd, afd, p;

	(void)state;
	lfd = listener(&p);
	snprintf(port, sizeof(port), "%d", p);
	mpp_client_init(&c, 5);
	assert_int_equal(mpp_client_connect(&c, "127.0.0.1", port), 0);
	assert_true((afd = accept(lfd, NULL, NULL)) >= 0);
	assert_int_equal(write(afd, "220 Message Posting Service Ready.\r\n",
	    36), 36);
	assert_int_equal(mpp_client_read_reply(&c), 220);
	mpp_client_close(&c);
	close(afd);
	close(lfd);
}

static void
test_connect_refused(void **state)
{
	struct mpp_client c;
	char port[16];
	int lfd, p;

	(void)state;
	lfd = listener(&p);
	close(lfd);		/* nobody listens there now */
	snprintf(port, sizeof(port), "%d", p);
	mpp_client_init(&c, 5);
	assert_int_equal(mpp_client_open(&c, "127.0.0.1", port), EX_TEMPFAIL);
	assert_non_null(strstr(mpp_client_error(&c), "refused"));
	assert_non_null(strstr(mpp_client_error(&c), "127.0.0.1"));
}

static void
test_connect_unresolvable(void **state)
{
	struct mpp_client c;
	int ex;

	(void)state;
	mpp_client_init(&c, 5);
	ex = mpp_client_open(&c, "no-such-host.invalid", "218");
	assert_true(ex == EX_NOHOST || ex == EX_TEMPFAIL);
	assert_non_null(strstr(mpp_client_error(&c), "no-such-host.invalid"));
}

/* ---- TLS ---- */

#define GREETING "220 Message Posting Service Ready.\r\n"

static char pkidir[] = "/tmp/test_mpp_client.XXXXXX";

/* File names in pkidir. */
static char ca_pem[256], other_ca_pem[256], garbage_pem[256];

/* Server credentials: [0] localhost + 127.0.0.1 by the CA; [1] the same
 * names by the other CA; [2] mail.example.org by the CA. */
static X509 *srv_cert[3];
static EVP_PKEY *srv_key[3];

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	assert_non_null(ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value));
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/*
 * A certificate for key named cn, signed by issuer with ikey (both NULL:
 * self-signed, a CA). san: subjectAltName, or NULL.
 */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
    const char *san, long serial)
{
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name), 1);
	add_ext(x, issuer != NULL ? issuer : x, NID_basic_constraints,
	    issuer != NULL ? "critical,CA:FALSE" : "critical,CA:TRUE");
	add_ext(x, issuer != NULL ? issuer : x, NID_key_usage, issuer !=
	    NULL ? "critical,digitalSignature" :
	    "critical,keyCertSign,cRLSign");
	add_ext(x, issuer != NULL ? issuer : x, NID_subject_key_identifier,
	    "hash");
	if (san != NULL)
		add_ext(x, issuer, NID_subject_alt_name, san);
	assert_true(X509_sign(x, ikey != NULL ? ikey : key, EVP_sha256()) >
	    0);
	return x;
}

static void
write_pem(char *path, size_t size, const char *name, X509 *x)
{
	FILE *f;

	snprintf(path, size, "%s/%s", pkidir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
}

static int
pki_setup(void **state)
{
	EVP_PKEY *ca_key, *other_key;
	X509 *ca, *other;
	FILE *f;
	int i;

	(void)state;
	if (mkdtemp(pkidir) == NULL)
		return -1;
	ca_key = EVP_EC_gen("P-256");
	other_key = EVP_EC_gen("P-256");
	for (i = 0; i < 3; i++)
		srv_key[i] = EVP_EC_gen("P-256");
	if (ca_key == NULL || other_key == NULL || srv_key[0] == NULL ||
	    srv_key[1] == NULL || srv_key[2] == NULL)
		return -1;
	ca = make_cert(ca_key, "mpp test CA", NULL, NULL, NULL, 1);
	other = make_cert(other_key, "another test CA", NULL, NULL, NULL, 2);
	srv_cert[0] = make_cert(srv_key[0], "localhost", ca, ca_key,
	    "DNS:localhost,IP:127.0.0.1", 10);
	srv_cert[1] = make_cert(srv_key[1], "localhost", other, other_key,
	    "DNS:localhost,IP:127.0.0.1", 11);
	srv_cert[2] = make_cert(srv_key[2], "mail.example.org", ca, ca_key,
	    "DNS:mail.example.org", 12);
	write_pem(ca_pem, sizeof(ca_pem), "ca.pem", ca);
	write_pem(other_ca_pem, sizeof(other_ca_pem), "other.pem", other);
	snprintf(garbage_pem, sizeof(garbage_pem), "%s/garbage.pem", pkidir);
	if ((f = fopen(garbage_pem, "w")) == NULL)
		return -1;
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n", f);
	fclose(f);
	X509_free(ca);
	X509_free(other);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	return 0;
}

static int
pki_teardown(void **state)
{
	char cmd[sizeof(pkidir) + 16];
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		X509_free(srv_cert[i]);
		EVP_PKEY_free(srv_key[i]);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pkidir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A TLS server on the peer end of a pair, in a thread. */
struct tls_server {
	int fd;
	int cred;		/* which srv_cert / srv_key */
	int max_version;	/* 0, or the highest version it speaks */
	const char *says;	/* sent once the handshake is done */
	int hang_up;		/* then close the socket at once */
	int handshake_ok;
	char *got;		/* what the client sent, decrypted */
	size_t gotlen, gotcap;
	pthread_t th;
};

/*
 * The server thread; no cmocka asserts here (they belong to the test's
 * thread): a broken setup aborts. Its OpenSSL writes with write(2), so
 * SIGPIPE is blocked in this thread only; the client's thread keeps it, to
 * show the client never raises it.
 */
static void *
tls_server_main(void *arg)
{
	struct tls_server *ts = arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	sigset_t pipe;
	SSL *ssl;
	size_t n;
	char *more;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	if (ctx == NULL)
		abort();
	if (ts->max_version != 0) {
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
		SSL_CTX_set_max_proto_version(ctx, ts->max_version);
	}
	if (SSL_CTX_use_certificate(ctx, srv_cert[ts->cred]) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, srv_key[ts->cred]) != 1 ||
	    (ssl = SSL_new(ctx)) == NULL)
		abort();
	SSL_set_fd(ssl, ts->fd);
	if (SSL_accept(ssl) == 1) {
		ts->handshake_ok = 1;
		if (ts->says != NULL)
			(void)SSL_write(ssl, ts->says, (int)strlen(ts->says));
		if (ts->hang_up) {
			close(ts->fd);
			ts->fd = -1;
		}
		while (ts->fd != -1 && SSL_read_ex(ssl, ts->got + ts->gotlen,
		    ts->gotcap - ts->gotlen, &n) == 1) {
			ts->gotlen += n;
			if (ts->gotlen == ts->gotcap) {
				if ((more = realloc(ts->got, ts->gotcap * 2)) ==
				    NULL)
					abort();
				ts->got = more;
				ts->gotcap *= 2;
			}
		}
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

/* A client on a socketpair with a TLS server thread on the other end. */
static struct pair *
tls_pair(struct tls_server *ts, struct tls_client_ctx *ctx, int timeout)
{
	struct pair *p = pair_new(timeout);

	ts->fd = p->peer;
	ts->gotcap = 1 << 16;
	assert_non_null(ts->got = malloc(ts->gotcap));
	assert_int_equal(pthread_create(&ts->th, NULL, tls_server_main, ts),
	    0);
	p->c.tls_ctx = ctx;
	return p;
}

/* Close the client, wait for the server thread, free the pair. */
static void
tls_pair_done(struct pair *p, struct tls_server *ts)
{
	mpp_client_close(&p->c);
	assert_int_equal(pthread_join(ts->th, NULL), 0);
	if (ts->fd == -1)
		p->peer = socket(AF_UNIX, SOCK_STREAM, 0);	/* closed */
	pair_free(p);
}

static struct tls_client_ctx *
ctx_for(const char *cafile)
{
	struct tls_client_ctx *ctx;
	char err[TLS_CLIENT_ERR_MAX];

	ctx = tls_client_ctx_new(cafile, err, sizeof(err));
	if (ctx == NULL)
		fail_msg("tls_client_ctx_new(%s): %s", cafile, err);
	return ctx;
}

static void
test_tls_ip_literal(void **state)
{
	static const struct {
		const char *host;
		int ip;
	} t[] = {
		{ "127.0.0.1", 1 }, { "192.0.2.7", 1 }, { "::1", 1 },
		{ "2001:db8::7", 1 }, { "::ffff:192.0.2.1", 1 },
		{ "localhost", 0 }, { "mpp.example.org", 0 }, { "127.1", 0 },
		{ "[::1]", 0 }, { "", 0 }, { "192.0.2.7.example.org", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (tls_client_is_ip_literal(t[i].host) != t[i].ip)
			fail_msg("\"%s\"", t[i].host);
}

static void
test_tls_ctx_errors(void **state)
{
	char err[TLS_CLIENT_ERR_MAX], missing[300];
	struct tls_client_ctx *ctx;

	(void)state;
	snprintf(missing, sizeof(missing), "%s/absent.pem", pkidir);
	assert_null(tls_client_ctx_new(missing, err, sizeof(err)));
	assert_non_null(strstr(err, "absent.pem"));
	assert_non_null(strstr(err, "No such file"));
	assert_null(tls_client_ctx_new(garbage_pem, err, sizeof(err)));
	assert_non_null(strstr(err, "garbage.pem"));
	assert_null(tls_client_ctx_new(pkidir, err, sizeof(err)));
	/* the system store */
	assert_non_null(ctx = tls_client_ctx_new(NULL, err, sizeof(err)));
	tls_client_ctx_free(ctx);
	tls_client_ctx_free(NULL);
}

/* A whole dialogue inside TLS, verified by name and by address. */
static void
test_tls_dialogue(void **state)
{
	static const char *hosts[] = { "localhost", "127.0.0.1" };
	static const char sent[] = "USER alice\r\nPASS s3cret\r\nDATA\r\n"
	    "To: b@example.org\r\n\r\n..hi\r\n.\r\nQUIT\r\n";
	struct tls_client_ctx *ctx = ctx_for(ca_pem);
	struct tls_server ts;
	char *trace = NULL;
	size_t tracelen = 0, i;
	struct pair *p;
	FILE *tf;

	(void)state;
	for (i = 0; i < 2; i++) {
		memset(&ts, 0, sizeof(ts));
		ts.says = GREETING "250 Command OK.\r\n250 Command OK.\r\n"
		    "354 go\r\n250 Command OK.\r\n221 Closing Connection.\r\n";
		p = tls_pair(&ts, ctx, 5);
		assert_non_null(tf = open_memstream(&trace, &tracelen));
		p->c.trace = tf;
		assert_int_equal(mpp_client_start_tls(&p->c, hosts[i]), 0);
		assert_non_null(p->c.conn.tls);
		assert_int_equal(mpp_client_read_reply(&p->c), 220);
		assert_int_equal(mpp_client_login(&p->c, "alice", "s3cret"),
		    EX_OK);
		assert_int_equal(mpp_client_post_buf(&p->c,
		    "To: b@example.org\n\n.hi\n", 23), EX_OK);
		mpp_client_quit(&p->c);
		assert_null(p->c.conn.tls);
		fclose(tf);
		tls_pair_done(p, &ts);
		assert_true(ts.handshake_ok);
		assert_int_equal(ts.gotlen, strlen(sent));
		assert_memory_equal(ts.got, sent, ts.gotlen);
		assert_non_null(strstr(trace, "certificate verified for"));
		assert_non_null(strstr(trace, "TLSv1.3"));
		assert_null(strstr(trace, "s3cret"));
		free(ts.got);
		free(trace);
		trace = NULL;
	}
	tls_client_ctx_free(ctx);
}

/* Verification failures: nothing is sent, EX_TEMPFAIL, the reason. */
static void
test_tls_verify_failures(void **state)
{
	static const struct {
		const char *cafile_is;	/* "ca", "other" */
		int cred;
		const char *host;
		const char *why;
	} t[] = {
		{ "other", 0, "localhost",
		    "certificate verify failed: unable to get local issuer "
		    "certificate" },
		{ "ca", 1, "localhost",
		    "certificate verify failed: unable to get local issuer "
		    "certificate" },
		{ "ca", 2, "localhost",
		    "certificate verify failed: hostname mismatch" },
		{ "ca", 0, "mail.example.org",
		    "certificate verify failed: hostname mismatch" },
		{ "ca", 0, "local",
		    "certificate verify failed: hostname mismatch" },
		{ "ca", 0, "127.0.0.2",
		    "certificate verify failed: IP address mismatch" },
		{ "ca", 2, "192.0.2.1",
		    "certificate verify failed: IP address mismatch" },
		{ "ca", 0, "::1",
		    "certificate verify failed: IP address mismatch" },
	};
	struct tls_client_ctx *ca = ctx_for(ca_pem), *other = ctx_for(other_ca_pem);
	struct tls_server ts;
	struct pair *p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&ts, 0, sizeof(ts));
		ts.cred = t[i].cred;
		ts.says = GREETING;
		p = tls_pair(&ts, strcmp(t[i].cafile_is, "ca") == 0 ? ca :
		    other, 5);
		assert_int_equal(mpp_client_start_tls(&p->c, t[i].host), -1);
		assert_int_equal(p->c.fail, EX_TEMPFAIL);
		assert_int_equal(p->c.conn.fd, -1);
		assert_null(p->c.conn.tls);
		if (strncmp(mpp_client_error(&p->c), "TLS: ", 5) != 0 ||
		    strstr(mpp_client_error(&p->c), t[i].why) == NULL)
			fail_msg("case %zu: \"%s\"", i,
			    mpp_client_error(&p->c));
		/* mpp_client_open refuses the same way: nothing read */
		assert_int_equal(mpp_client_send_command(&p->c, "PASS", "x"),
		    -1);
		tls_pair_done(p, &ts);
		assert_false(ts.handshake_ok);
		assert_int_equal(ts.gotlen, 0);
		free(ts.got);
	}
	tls_client_ctx_free(ca);
	tls_client_ctx_free(other);
}

/* A server that offers no more than TLS 1.1 is refused. */
static void
test_tls_old_version_refused(void **state)
{
	struct tls_client_ctx *ctx = ctx_for(ca_pem);
	struct tls_server ts;
	struct pair *p;

	(void)state;
	memset(&ts, 0, sizeof(ts));
	ts.max_version = TLS1_1_VERSION;
	ts.says = GREETING;
	p = tls_pair(&ts, ctx, 5);
	assert_int_equal(mpp_client_start_tls(&p->c, "localhost"), -1);
	assert_int_equal(p->c.fail, EX_TEMPFAIL);
	assert_non_null(strstr(mpp_client_error(&p->c), "TLS: "));
	tls_pair_done(p, &ts);
	assert_false(ts.handshake_ok);
	assert_int_equal(ts.gotlen, 0);
	free(ts.got);
	tls_client_ctx_free(ctx);
}

/* A plain MPP server, and a silent one: a clear error, within the time. */
static void
test_tls_not_tls(void **state)
{
	struct tls_client_ctx *ctx = ctx_for(ca_pem);
	struct pair *p;
	time_t t0;

	(void)state;
	p = pair_new(5);
	p->c.tls_ctx = ctx;
	peer_says(p, GREETING);
	assert_int_equal(mpp_client_start_tls(&p->c, "localhost"), -1);
	assert_int_equal(p->c.fail, EX_TEMPFAIL);
	assert_string_equal(mpp_client_error(&p->c), "TLS: the server answered "
	    "without TLS: \"220 Message Posting Service Ready.\" (test peer)");
	pair_free(p);

	/* a refusal in clear, control characters made harmless */
	p = pair_new(5);
	p->c.tls_ctx = ctx;
	peer_says(p, "451 Local\033[2J error encountered.\r\n");
	assert_int_equal(mpp_client_start_tls(&p->c, "localhost"), -1);
	assert_non_null(strstr(mpp_client_error(&p->c), "without TLS: \"451 "
	    "Local?[2J error encountered.\""));
	pair_free(p);

	/* some other protocol */
	p = pair_new(5);
	p->c.tls_ctx = ctx;
	peer_says(p, "SSH-2.0-OpenSSH_9.2\r\n");
	assert_int_equal(mpp_client_start_tls(&p->c, "localhost"), -1);
	assert_int_equal(p->c.fail, EX_TEMPFAIL);
	assert_non_null(strstr(mpp_client_error(&p->c), "not a TLS port"));
	pair_free(p);

	p = pair_new(1);
	p->c.tls_ctx = ctx;
	t0 = time(NULL);
	assert_int_equal(mpp_client_start_tls(&p->c, "localhost"), -1);
	assert_true(time(NULL) - t0 <= 3);
	assert_int_equal(p->c.fail, EX_TEMPFAIL);
	assert_non_null(strstr(mpp_client_error(&p->c),
	    "no handshake within 1 s"));
	pair_free(p);

	/* the server hangs up at once */
	p = pair_new(5);
	p->c.tls_ctx = ctx;
	close(p->peer);
	p->peer = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(mpp_client_start_tls(&p->c, "localhost"), -1);
	assert_int_equal(p->c.fail, EX_TEMPFAIL);
	assert_non_null(strstr(mpp_client_error(&p->c), "TLS: "));
	pair_free(p);
	tls_client_ctx_free(ctx);
}

/* Megabytes of text through non-blocking TLS writes arrive intact. */
static void
test_tls_large_text(void **state)
{
	const size_t len = 2 * 1024 * 1024 + 5;
	struct tls_client_ctx *ctx = ctx_for(ca_pem);
	struct tls_server ts;
	struct pair *p;
	char *in = malloc(len), *want;
	size_t i, wantlen;

	(void)state;
	assert_non_null(in);
	for (i = 0; i < len; i++)
		in[i] = i % 61 == 60 ? '\n' : i % 61 == 0 ? '.' :
		    (char)('a' + i % 26);
	memset(&ts, 0, sizeof(ts));
	ts.says = GREETING "354 go\r\n250 Command OK.\r\n";
	p = tls_pair(&ts, ctx, 10);
	assert_int_equal(mpp_client_start_tls(&p->c, "localhost"), 0);
	assert_int_equal(mpp_client_read_reply(&p->c), 220);
	assert_int_equal(mpp_client_post_buf(&p->c, in, len), EX_OK);
	tls_pair_done(p, &ts);
	want = reference(in, len, &wantlen);
	assert_int_equal(ts.gotlen, wantlen + 6);
	assert_memory_equal(ts.got, "DATA\r\n", 6);
	assert_memory_equal(ts.got + 6, want, wantlen);
	free(want);
	free(in);
	free(ts.got);
	tls_client_ctx_free(ctx);
}

/* The server goes away: a temporary failure, and no SIGPIPE kills us. */
static void
test_tls_server_hangs_up(void **state)
{
	const size_t len = 4 * 1024 * 1024;
	struct tls_client_ctx *ctx = ctx_for(ca_pem);
	struct tls_server ts;
	struct pair *p;
	char *in = malloc(len);

	(void)state;
	assert_non_null(in);
	memset(in, 'x', len);
	memset(&ts, 0, sizeof(ts));
	ts.says = GREETING "354 go\r\n";
	ts.hang_up = 1;
	p = tls_pair(&ts, ctx, 5);
	assert_int_equal(mpp_client_start_tls(&p->c, "localhost"), 0);
	assert_int_equal(mpp_client_read_reply(&p->c), 220);
	assert_int_equal(mpp_client_post_buf(&p->c, in, len), EX_TEMPFAIL);
	assert_int_equal(p->c.conn.fd, -1);
	tls_pair_done(p, &ts);
	free(ts.got);

	/* hang up after the greeting: the next reply meets the end */
	memset(&ts, 0, sizeof(ts));
	ts.says = GREETING;
	ts.hang_up = 1;
	p = tls_pair(&ts, ctx, 5);
	assert_int_equal(mpp_client_start_tls(&p->c, "localhost"), 0);
	assert_int_equal(mpp_client_read_reply(&p->c), 220);
	assert_int_equal(mpp_client_read_reply(&p->c), -1);
	assert_int_equal(p->c.fail, EX_TEMPFAIL);
	assert_non_null(strstr(mpp_client_error(&p->c), "closed"));
	tls_pair_done(p, &ts);
	free(ts.got);
	free(in);
	tls_client_ctx_free(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_server_good),
		cmocka_unit_test(test_parse_server_bad),
		cmocka_unit_test(test_parse_reply),
		cmocka_unit_test(test_read_reply),
		cmocka_unit_test(test_read_reply_split),
		cmocka_unit_test(test_read_reply_garbage),
		cmocka_unit_test(test_read_reply_eof),
		cmocka_unit_test(test_read_reply_timeout),
		cmocka_unit_test(test_too_many_lines),
		cmocka_unit_test(test_text_cases),
		cmocka_unit_test(test_text_large),
		cmocka_unit_test(test_command_trace_masks_password),
		cmocka_unit_test(test_command_refuses_line_break),
		cmocka_unit_test(test_login_outcomes),
		cmocka_unit_test(test_post_outcomes),
		cmocka_unit_test(test_post_fd_read_error),
		cmocka_unit_test(test_quit_keeps_error),
		cmocka_unit_test(test_connect_and_greeting),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_unresolvable),
		cmocka_unit_test(test_tls_ip_literal),
		cmocka_unit_test(test_tls_ctx_errors),
		cmocka_unit_test(test_tls_dialogue),
		cmocka_unit_test(test_tls_verify_failures),
		cmocka_unit_test(test_tls_old_version_refused),
		cmocka_unit_test(test_tls_not_tls),
		cmocka_unit_test(test_tls_large_text),
		cmocka_unit_test(test_tls_server_hangs_up),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
