/*
 * Unit tests for common/net: waiting, resolving (a literal at once, a name
 * through the lookup thread, and a name whose DNS server never answers,
 * which must end at the deadline), connecting to each address in turn
 * (a refused one, one that drops SYNs and gets only its share of the
 * time), reading lines with either policy for an over-long one, whole
 * writes and vectors, and TLS refusing clear text received before it.
 *
 * The silent DNS server: a child process in a network and mount namespace
 * of its own binds UDP 127.0.0.1:53, answers nothing, and has a private
 * /etc/resolv.conf naming it. Without the right to make namespaces (not
 * root) that test is skipped.
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "net.h"
#include "silent_dns.h"
#include "tls_client.h"
#include "util.h"

/* Slack allowed over a deadline: scheduling, not waiting. */
#define SLACK_MS 300

static int
listen_loopback(int *port, int backlog)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A connection whose other end is peer. */
static void
pair_open(struct net_conn *c, int *peer)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	net_conn_init(c);
	net_conn_attach(c, sv[0]);
	*peer = sv[1];
}

static void
say(int fd, const char *s, size_t len)
{
	assert_int_equal(write(fd, s, len), (ssize_t)len);
}

/* ---- waiting ---- */

static void
test_wait(void **state)
{
	long long t0;
	int peer, sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	peer = sv[1];
	t0 = util_now_ms();
	assert_int_equal(net_wait(sv[0], POLLIN, net_deadline(200)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(util_now_ms() - t0 >= 190);
	assert_true(util_now_ms() - t0 < 200 + SLACK_MS);
	say(peer, "x", 1);
	assert_int_equal(net_wait(sv[0], POLLIN, net_deadline(1000)), 0);
	assert_int_equal(net_wait(sv[0], POLLOUT, net_deadline(1000)), 0);
	/* A deadline already past: no wait at all. */
	assert_int_equal(net_wait(sv[0], POLLIN, util_now_ms() - 1), -1);
	assert_int_equal(errno, ETIMEDOUT);
	close(sv[0]);
	close(peer);
}

static void
test_reason(void **state)
{
	(void)state;
	assert_string_equal(net_reason(ECONNREFUSED), "Connection refused");
	assert_non_null(net_reason(123456));
}

/* ---- resolving ---- */

static void
test_resolve_literals(void **state)
{
	struct addrinfo *res;
	char text[NET_ADDR_MAX];
	int gai;

	(void)state;
	assert_int_equal(net_resolve("127.0.0.1", "25", net_deadline(1000),
	    &res, &gai), 0);
	net_addr_text(res->ai_addr, res->ai_addrlen, text, sizeof(text));
	assert_string_equal(text, "127.0.0.1:25");
	assert_null(res->ai_next);
	freeaddrinfo(res);
	assert_int_equal(net_resolve("2001:db8::7", "587", net_deadline(1000),
	    &res, &gai), 0);
	net_addr_text(res->ai_addr, res->ai_addrlen, text, sizeof(text));
	assert_string_equal(text, "[2001:db8::7]:587");
	freeaddrinfo(res);
	/* A literal needs no time: even a deadline in the past is met. */
	assert_int_equal(net_resolve("192.0.2.1", "25", util_now_ms() - 1,
	    &res, &gai), 0);
	freeaddrinfo(res);
}

/* A name goes through the lookup thread; localhost is in /etc/hosts. */
static void
test_resolve_name(void **state)
{
	struct addrinfo *res, *ai;
	char text[NET_ADDR_MAX];
	int gai, found = 0;

	(void)state;
	assert_int_equal(net_resolve("localhost", "218", net_deadline(5000),
	    &res, &gai), 0);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		net_addr_text(ai->ai_addr, ai->ai_addrlen, text, sizeof(text));
		found |= strcmp(text, "127.0.0.1:218") == 0 ||
		    strcmp(text, "[::1]:218") == 0;
	}
	assert_true(found);
	freeaddrinfo(res);
	assert_int_equal(net_resolve("no-such-host.invalid", "25",
	    net_deadline(5000), &res, &gai), -1);
	assert_null(res);
	assert_int_not_equal(gai, 0);
}

#define CHILD_OK 0

static void
test_resolve_silent_dns(void **state)
{
	struct addrinfo *res;
	long long t0, took;
	pid_t pid;
	int st, sock, gai, code = CHILD_OK;

	(void)state;
	if ((pid = fork()) == 0) {
		if (silent_dns(&sock) == -1)
			_exit(SILENT_DNS_SKIP);
		t0 = util_now_ms();
		if (net_resolve("relay.example", "25", net_deadline(1000),
		    &res, &gai) != -1)
			code = 1;
		else if (errno != ETIMEDOUT || gai != 0)
			code = 2;
		took = util_now_ms() - t0;
		if (took < 990 || took >= 1000 + SLACK_MS)
			code = 3;
		_exit(code);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == SILENT_DNS_SKIP)
		skip();
	assert_int_equal(WEXITSTATUS(st), CHILD_OK);
}

/* ---- connecting ---- */

/* An address list of loopback ports, in order. */
static struct addrinfo *
loopback_list(const int *ports, size_t n)
{
	struct addrinfo *head = NULL, **tail = &head, *ai;
	struct sockaddr_in *sin;
	size_t i;

	for (i = 0; i < n; i++) {
		ai = calloc(1, sizeof(*ai) + sizeof(*sin));
		assert_non_null(ai);
		sin = (struct sockaddr_in *)(ai + 1);
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)ports[i]);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ai->ai_family = AF_INET;
		ai->ai_socktype = SOCK_STREAM;
		ai->ai_addr = (struct sockaddr *)sin;
		ai->ai_addrlen = sizeof(*sin);
		*tail = ai;
		tail = &ai->ai_next;
	}
	return head;
}

static void
list_free(struct addrinfo *ai)
{
	struct addrinfo *next;

	for (; ai != NULL; ai = next) {
		next = ai->ai_next;
		free(ai);
	}
}

/* A refused address, then one that listens: the second is connected. */
static void
test_connect_each_address(void **state)
{
	struct net_tried t;
	struct addrinfo *list;
	char want[NET_ADDR_MAX + 32];
	int ports[2], lfd, dead, fd;

	(void)state;
	dead = listen_loopback(&ports[0], 4);
	close(dead);
	lfd = listen_loopback(&ports[1], 4);
	list = loopback_list(ports, 2);
	memset(&t, 0, sizeof(t));
	fd = net_connect(list, net_deadline(2000), &t);
	assert_true(fd >= 0);
	assert_int_equal(t.n, 2);
	snprintf(want, sizeof(want), "127.0.0.1:%d", ports[1]);
	assert_string_equal(t.addr, want);
	snprintf(want, sizeof(want), "127.0.0.1:%d: Connection refused",
	    ports[0]);
	assert_string_equal(t.list, want);
	close(fd);
	/* Nothing listens at all: the last error, every address listed. */
	close(lfd);
	memset(&t, 0, sizeof(t));
	assert_int_equal(net_connect(list, net_deadline(2000), &t), -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.err, ECONNREFUSED);
	assert_non_null(strstr(t.list, "; "));
	/* No time left (resolving took it): the first address says so. */
	memset(&t, 0, sizeof(t));
	assert_int_equal(net_connect(list, util_now_ms() - 1, &t), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_int_equal(t.n, 1);
	snprintf(want, sizeof(want), "127.0.0.1:%d: Connection timed out",
	    ports[0]);
	assert_string_equal(t.list, want);
	list_free(list);
}

/*
 * An address that drops SYNs (a listener whose queue is full) gets only
 * its share of the time; the one after it is still reached in time.
 */
static void
test_connect_share(void **state)
{
	struct net_tried t;
	struct addrinfo *list;
	struct sockaddr_in sin;
	long long t0, took;
	int ports[2], full, lfd, fill[4], fd, i;

	(void)state;
	full = listen_loopback(&ports[0], 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)ports[0]);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Fill the accept queue; later SYNs are dropped. */
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	lfd = listen_loopback(&ports[1], 4);
	list = loopback_list(ports, 2);
	memset(&t, 0, sizeof(t));
	t0 = util_now_ms();
	fd = net_connect(list, net_deadline(1000), &t);
	took = util_now_ms() - t0;
	assert_true(fd >= 0);
	assert_int_equal(t.n, 2);
	assert_true(took >= 450 && took < 500 + SLACK_MS);
	assert_non_null(strstr(t.list, "Connection timed out"));
	close(fd);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
	close(full);
	list_free(list);
}

static void
test_open_refused_and_unresolvable(void **state)
{
	struct net_conn c;
	struct net_tried t;
	char port[8];
	int lfd, p;

	(void)state;
	lfd = listen_loopback(&p, 4);
	close(lfd);
	snprintf(port, sizeof(port), "%d", p);
	net_conn_init(&c);
	assert_int_equal(net_conn_open(&c, "127.0.0.1", port,
	    net_deadline(2000), &t), -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_int_equal(t.n, 1);
	assert_int_equal(c.fd, -1);
	assert_int_equal(net_conn_open(&c, "no-such-host.invalid", "25",
	    net_deadline(5000), &t), -1);
	assert_int_equal(t.n, 0);
	assert_int_not_equal(t.gai, 0);
	net_conn_close(&c);
}

/* ---- lines ---- */

static void
test_read_line_cut(void **state)
{
	struct net_conn c;
	char line[8], big[64];
	size_t len;
	int peer;

	(void)state;
	pair_open(&c, &peer);
	memset(big, 'x', sizeof(big));
	say(peer, big, sizeof(big));
	say(peer, "\r\nnext\r\nbare\n\r\n", 15);
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_CUT, net_deadline(1000)), 0);
	assert_int_equal(len, 7);
	assert_string_equal(line, "xxxxxxx");
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_CUT, net_deadline(1000)), 0);
	assert_string_equal(line, "next");
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_CUT, net_deadline(1000)), 0);
	assert_string_equal(line, "bare");
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_CUT, net_deadline(1000)), 0);
	assert_int_equal(len, 0);
	/* The end of the stream before a line end. */
	say(peer, "half", 4);
	shutdown(peer, SHUT_WR);
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_CUT, net_deadline(1000)), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_true(c.eof);
	net_conn_close(&c);
	close(peer);
}

/* Longer than the buffer: EPROTO at once, not after waiting for the LF. */
static void
test_read_line_fail(void **state)
{
	struct net_conn c;
	char line[8];
	size_t len;
	int peer;

	(void)state;
	pair_open(&c, &peer);
	say(peer, "1234567\n", 8);	/* 7 bytes: the most that fit */
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_FAIL, net_deadline(1000)), 0);
	assert_string_equal(line, "1234567");
	say(peer, "12345678", 8);	/* no LF: no wait for one */
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_FAIL, net_deadline(5000)), -1);
	assert_int_equal(errno, EPROTO);
	net_conn_close(&c);
	close(peer);
}

/* A line waiting is not returned once the deadline has passed. */
static void
test_read_line_deadline(void **state)
{
	struct net_conn c;
	char line[16];
	size_t len;
	int peer;

	(void)state;
	pair_open(&c, &peer);
	say(peer, "a\r\nb\r\n", 6);
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_CUT, net_deadline(1000)), 0);
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_CUT, util_now_ms() - 1), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_CUT, net_deadline(1000)), 0);
	assert_string_equal(line, "b");
	net_conn_close(&c);
	close(peer);
}

/* ---- writing ---- */

struct drain {
	int fd;
	size_t len;
};

static void *
drain_main(void *arg)
{
	struct drain *d = arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(d->fd, buf, sizeof(buf))) > 0)
		d->len += (size_t)n;
	return NULL;
}

static void
test_write_all_and_vector(void **state)
{
	const size_t len = 8 << 20;
	struct net_conn c;
	struct drain d = { -1, 0 };
	struct iovec iov[3];
	pthread_t th;
	char *big = calloc(1, len);

	(void)state;
	assert_non_null(big);
	pair_open(&c, &d.fd);
	assert_int_equal(pthread_create(&th, NULL, drain_main, &d), 0);
	assert_int_equal(net_conn_write(&c, big, len, net_deadline(10000)),
	    0);
	iov[0].iov_base = big;
	iov[0].iov_len = 0;
	iov[1].iov_base = big;
	iov[1].iov_len = len / 2;
	iov[2].iov_base = big;
	iov[2].iov_len = len / 2 + 1;
	assert_int_equal(net_conn_writev(&c, iov, 3, net_deadline(10000)), 0);
	net_conn_close(&c);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(d.len, 2 * len + 1);
	close(d.fd);
	free(big);
}

/* A peer that reads nothing: the write ends at its deadline. */
static void
test_write_timeout(void **state)
{
	const size_t len = 64 << 20;
	struct net_conn c;
	char *big = calloc(1, len);
	long long t0;
	int peer;

	(void)state;
	assert_non_null(big);
	pair_open(&c, &peer);
	t0 = util_now_ms();
	assert_int_equal(net_conn_write(&c, big, len, net_deadline(300)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(util_now_ms() - t0 < 300 + SLACK_MS);
	/* A peer gone: EPIPE, and no SIGPIPE kills the test. */
	close(peer);
	assert_int_equal(net_conn_write(&c, "x", 1, net_deadline(300)), -1);
	assert_true(errno == EPIPE || errno == ECONNRESET);
	net_conn_close(&c);
	free(big);
}

/* ---- TLS ---- */

/* Clear text already buffered when TLS starts is refused (STARTTLS). */
static void
test_tls_refuses_buffered_clear_text(void **state)
{
	struct tls_client_ctx *ctx;
	struct net_conn c;
	char err[256], why[256], line[64];
	size_t len;
	int peer;

	(void)state;
	assert_non_null(ctx = tls_client_ctx_new(NULL, err, sizeof(err)));
	pair_open(&c, &peer);
	say(peer, "220 ready\r\n250 injected\r\n", 25);
	assert_int_equal(net_conn_read_line(&c, line, sizeof(line), &len,
	    NET_LONG_CUT, net_deadline(1000)), 0);
	assert_true(c.in_off < c.in_len);
	assert_int_equal(net_conn_start_tls(&c, ctx, "relay.example",
	    net_deadline(1000), why, sizeof(why)), -1);
	assert_int_equal(errno, EPROTO);
	assert_string_equal(why, "clear text received before the handshake");
	assert_null(c.tls);
	assert_null(net_conn_tls_error(&c));
	net_conn_close(&c);
	close(peer);
	/* Not connected at all. */
	assert_int_equal(net_conn_start_tls(&c, ctx, "relay.example",
	    net_deadline(1000), why, sizeof(why)), -1);
	assert_int_equal(errno, ENOTCONN);
	tls_client_ctx_free(ctx);
}

/* A server that never answers the handshake: ETIMEDOUT at the deadline. */
static void
test_tls_handshake_timeout(void **state)
{
	struct tls_client_ctx *ctx;
	struct net_conn c;
	char err[256], why[256];
	long long t0;
	int peer;

	(void)state;
	assert_non_null(ctx = tls_client_ctx_new(NULL, err, sizeof(err)));
	pair_open(&c, &peer);
	t0 = util_now_ms();
	assert_int_equal(net_conn_start_tls(&c, ctx, "relay.example",
	    net_deadline(300), why, sizeof(why)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(util_now_ms() - t0 < 300 + SLACK_MS);
	net_conn_close(&c);
	close(peer);
	tls_client_ctx_free(ctx);
}

static int
loopback4(const char *a)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, a, &sin.sin_addr), 1);
	return net_is_loopback((struct sockaddr *)&sin, sizeof(sin));
}

static int
loopback6(const char *a)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, a, &sin6.sin6_addr), 1);
	return net_is_loopback((struct sockaddr *)&sin6, sizeof(sin6));
}

static void
test_loopback(void **state)
{
	struct sockaddr_in sin;

	(void)state;
	assert_true(loopback4("127.0.0.1"));
	assert_true(loopback4("127.255.0.9"));
	assert_false(loopback4("128.0.0.1"));
	assert_false(loopback4("126.255.255.255"));
	assert_false(loopback4("10.0.0.1"));
	assert_false(loopback4("192.0.2.25"));
	assert_false(loopback4("0.0.0.0"));
	assert_true(loopback6("::1"));
	assert_true(loopback6("::ffff:127.0.0.2"));
	assert_false(loopback6("::ffff:192.0.2.1"));
	assert_false(loopback6("::2"));
	assert_false(loopback6("fe80::1"));
	assert_false(loopback6("::"));
	/* A short length is no address. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_false(net_is_loopback((struct sockaddr *)&sin, 4));
	sin.sin_family = AF_UNIX;
	assert_false(net_is_loopback((struct sockaddr *)&sin,
	    sizeof(sin)));
}

/* The text form: what a PROXY header or a listen key carries. */
static void
test_text_loopback(void **state)
{
	(void)state;
	assert_true(net_text_is_loopback("127.0.0.1"));
	assert_true(net_text_is_loopback("127.1.2.3"));
	assert_true(net_text_is_loopback("::1"));
	assert_true(net_text_is_loopback("::ffff:127.0.0.1"));
	assert_false(net_text_is_loopback("127.0.0.1.example"));
	assert_false(net_text_is_loopback("127."));
	assert_false(net_text_is_loopback("1270.0.0.1"));
	assert_false(net_text_is_loopback("192.0.2.1"));
	assert_false(net_text_is_loopback("::2"));
	assert_false(net_text_is_loopback(""));
	assert_false(net_text_is_loopback("localhost"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait),
		cmocka_unit_test(test_reason),
		cmocka_unit_test(test_resolve_literals),
		cmocka_unit_test(test_resolve_name),
		cmocka_unit_test(test_resolve_silent_dns),
		cmocka_unit_test(test_connect_each_address),
		cmocka_unit_test(test_connect_share),
		cmocka_unit_test(test_open_refused_and_unresolvable),
		cmocka_unit_test(test_read_line_cut),
		cmocka_unit_test(test_read_line_fail),
		cmocka_unit_test(test_read_line_deadline),
		cmocka_unit_test(test_write_all_and_vector),
		cmocka_unit_test(test_write_timeout),
		cmocka_unit_test(test_tls_refuses_buffered_clear_text),
		cmocka_unit_test(test_tls_handshake_timeout),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_text_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
