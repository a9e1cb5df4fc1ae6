/*
 * Unit tests for the remote password checks: mppd/auth_net.c (line
 * reading, limits, deadlines), the POP3 and FTP dialogues of
 * mppd/auth_pop3.c and mppd/auth_ftp.c against scripted loopback servers
 * (the cases a real server will not produce on demand: silence, trickled
 * bytes, garbage, odd reply codes, multi-line FTP replies), and
 * mppd/auth_cache.c, and the log text of mppd/auth.c's auth_check() for
 * the backends it asked. The integration tests run the same code against
 * real Dovecot and FTP servers.
 */
#include <sys/socket.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "../../mppd/auth.h"
#include "../../mppd/auth_cache.h"
#include "../../mppd/auth_net.h"
#include "../../mppd/auth_remote.h"
#include "../../mppd/pwfile.h"
#include "util.h"

/* Slack allowed over a deadline: scheduling, not waiting. */
#define SLACK_MS 250

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* write(), but a peer that went away is no SIGPIPE. */
static ssize_t
put(int fd, const char *s, size_t len)
{
	return send(fd, s, len, MSG_NOSIGNAL);
}

/* ---- auth_net line reading over a socketpair ---- */

struct pair {
	struct auth_net n;
	int peer;
};

static void
pair_open(struct pair *p, int timeout_sec)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	auth_net_attach(&p->n, sv[0], timeout_sec);
	p->peer = sv[1];
}

static void
pair_close(struct pair *p)
{
	auth_net_close(&p->n);
	close(p->peer);
}

static void
peer_says(struct pair *p, const char *s, size_t len)
{
	assert_int_equal(write(p->peer, s, len), (ssize_t)len);
}

static void
test_read_lines(void **state)
{
	struct pair p;
	char line[AUTH_NET_LINE_MAX];
	static const char in[] = "+OK one\r\nbare lf\n\r\nlast\r\n";

	(void)state;
	pair_open(&p, 2);
	peer_says(&p, in, sizeof(in) - 1);
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), 0);
	assert_string_equal(line, "+OK one");
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), 0);
	assert_string_equal(line, "bare lf");
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), 0);
	assert_string_equal(line, "");
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), 0);
	assert_string_equal(line, "last");
	pair_close(&p);
}

/* The longest legal line (512 bytes with CRLF) passes; one more fails. */
static void
test_read_line_limit(void **state)
{
	struct pair p;
	char line[AUTH_NET_LINE_MAX], big[AUTH_NET_LINE_MAX + 8];

	(void)state;
	pair_open(&p, 2);
	memset(big, 'x', sizeof(big));
	memcpy(big + AUTH_NET_LINE_MAX - 2, "\r\n", 2);
	peer_says(&p, big, AUTH_NET_LINE_MAX);
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), 0);
	assert_int_equal(strlen(line), AUTH_NET_LINE_MAX - 2);
	memset(big, 'y', sizeof(big));
	memcpy(big + AUTH_NET_LINE_MAX - 1, "\r\n", 2);
	peer_says(&p, big, AUTH_NET_LINE_MAX + 1);
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), -1);
	assert_int_equal(errno, EPROTO);
	pair_close(&p);
}

static void
test_read_line_nul(void **state)
{
	struct pair p;
	char line[AUTH_NET_LINE_MAX];

	(void)state;
	pair_open(&p, 2);
	peer_says(&p, "+OK a\0b\r\n", 9);
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), -1);
	assert_int_equal(errno, EPROTO);
	pair_close(&p);
}

static void
test_read_line_eof(void **state)
{
	struct pair p;
	char line[AUTH_NET_LINE_MAX];

	(void)state;
	pair_open(&p, 2);
	peer_says(&p, "+OK no end", 10);
	shutdown(p.peer, SHUT_WR);
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), -1);
	assert_int_equal(errno, ECONNRESET);
	pair_close(&p);
}

static void
test_read_line_silence(void **state)
{
	struct pair p;
	char line[AUTH_NET_LINE_MAX];
	long long t0;

	(void)state;
	pair_open(&p, 1);
	t0 = util_now_ms();
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(util_now_ms() - t0 >= 990);
	assert_true(util_now_ms() - t0 < 1000 + SLACK_MS);
	pair_close(&p);
}

/* A peer that sends one byte every 50 ms and never a line end. */
static void *
trickler(void *arg)
{
	int fd = *(int *)arg, i;

	for (i = 0; i < 60; i++) {
		if (put(fd, "x", 1) != 1)
			break;
		sleep_ms(50);
	}
	return NULL;
}

static void
test_read_line_trickle(void **state)
{
	struct pair p;
	pthread_t th;
	char line[AUTH_NET_LINE_MAX];
	long long t0;

	(void)state;
	pair_open(&p, 1);
	assert_int_equal(pthread_create(&th, NULL, trickler, &p.peer), 0);
	t0 = util_now_ms();
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(util_now_ms() - t0 < 1000 + SLACK_MS);
	auth_net_close(&p.n);
	pthread_join(th, NULL);
	close(p.peer);
}

/* Bytes arriving one by one still make the right lines. */
static void
test_read_line_byte_by_byte(void **state)
{
	struct pair p;
	char line[AUTH_NET_LINE_MAX];
	static const char in[] = "230-first\r\n230 last\r\n";
	size_t i;

	(void)state;
	pair_open(&p, 2);
	for (i = 0; i < sizeof(in) - 1; i++)
		peer_says(&p, in + i, 1);
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), 0);
	assert_string_equal(line, "230-first");
	assert_int_equal(auth_net_read_line(&p.n, line, sizeof(line)), 0);
	assert_string_equal(line, "230 last");
	pair_close(&p);
}

static void
test_command_format(void **state)
{
	struct pair p;
	char got[64];
	ssize_t n;

	(void)state;
	pair_open(&p, 2);
	assert_int_equal(auth_net_command(&p.n, "USER", "alice"), 0);
	assert_int_equal(auth_net_command(&p.n, "QUIT", NULL), 0);
	n = read(p.peer, got, sizeof(got) - 1);
	assert_true(n > 0);
	got[n] = '\0';
	assert_string_equal(got, "USER alice\r\nQUIT\r\n");
	pair_close(&p);
}

static void
test_name(void **state)
{
	char name[64], tiny[16];

	(void)state;
	auth_net_name(name, sizeof(name), "pop3", "127.0.0.1", 110);
	assert_string_equal(name, "pop3:127.0.0.1:110");
	auth_net_name(name, sizeof(name), "ftp", "::1", 21);
	assert_string_equal(name, "ftp:[::1]:21");
	auth_net_name(tiny, sizeof(tiny), "pop3", "mail.example.org", 110);
	assert_string_equal(tiny, "pop3:mail.ex...");
}

/* ---- scripted servers on a loopback port ---- */

/*
 * Script steps: "S<text>" sends text; "R" reads one line (kept in got);
 * "H" holds the connection open, saying nothing, until the client goes;
 * "C" closes it at once.
 * After the script, lines are read (and kept) until the client closes.
 */
struct fake {
	int lfd;
	int port;
	pthread_t th;
	const char *const *script;
	char got[4096];
	int accepted;
};

static int
fake_read_line(int fd, char *out, size_t outsz)
{
	size_t n = 0;
	char c;

	while (read(fd, &c, 1) == 1) {
		if (c == '\n') {
			out[n] = '\0';
			if (n > 0 && out[n - 1] == '\r')
				out[n - 1] = '\0';
			return 0;
		}
		if (n + 1 < outsz)
			out[n++] = c;
	}
	return -1;
}

static void
fake_keep(struct fake *f, const char *line)
{
	size_t used = strlen(f->got);

	snprintf(f->got + used, sizeof(f->got) - used, "%s\n", line);
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	struct timeval tv = { 5, 0 };
	const char *const *s;
	char line[1024];
	int fd;

	if ((fd = accept(f->lfd, NULL, NULL)) == -1)
		return NULL;
	f->accepted = 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (s = f->script; *s != NULL; s++) {
		if ((*s)[0] == 'S')
			(void)put(fd, *s + 1, strlen(*s + 1));
		else if ((*s)[0] == 'R' && fake_read_line(fd, line,
		    sizeof(line)) == 0)
			fake_keep(f, line);
		else if ((*s)[0] == 'H')
			while (read(fd, line, sizeof(line)) > 0)
				;
		else if ((*s)[0] == 'C')
			break;
	}
	if (*s != NULL) {
		close(fd);
		return NULL;
	}
	while (fake_read_line(fd, line, sizeof(line)) == 0) {
		fake_keep(f, line);
		if (strcmp(line, "QUIT") == 0)
			(void)put(fd, "+OK bye\r\n", 9);
	}
	close(fd);
	return NULL;
}

static int
listen_any(int *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static struct fake *
fake_start(const char *const *script)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->script = script;
	f->lfd = listen_any(&f->port);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
	return f;
}

static void
fake_end(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
	free(f);
}

struct case_ {
	const char *name;
	const char *const *script;
	const char *user, *pass;
	enum outcome want;
	const char *why;		/* expected why ("": nothing to add) */
	const char *sent;		/* expected lines the server got, or NULL */
};

static void
run_cases(int ftp, const struct case_ *cs, size_t n)
{
	char why[256];
	struct fake *f;
	enum outcome r;
	size_t i;

	for (i = 0; i < n; i++) {
		f = fake_start(cs[i].script);
		r = ftp ? auth_ftp_check("127.0.0.1", f->port, cs[i].user,
		    cs[i].pass, 2, why, sizeof(why)) :
		    auth_pop3_check("127.0.0.1", f->port, cs[i].user,
		    cs[i].pass, 2, why, sizeof(why));
		pthread_join(f->th, NULL);
		print_message("case %s: %d %s\n", cs[i].name, r, why);
		assert_int_equal(r, cs[i].want);
		assert_string_equal(why, cs[i].why);
		/* The password never reaches why, whatever happened. */
		assert_null(strstr(why, cs[i].pass));
		if (cs[i].sent != NULL)
			assert_string_equal(f->got, cs[i].sent);
		close(f->lfd);
		free(f);
	}
}

static const char *const pop3_ok[] = { "S+OK POP3 ready\r\n", "R",
	"S+OK\r\n", "R", "S+OK Logged in.\r\n", "R", "S+OK bye\r\n", NULL };
static const char *const pop3_bad_pass[] = { "S+OK ready\r\n", "R",
	"S+OK\r\n", "R", "S-ERR [AUTH] Authentication failed.\r\n", "R",
	"S+OK bye\r\n", NULL };
static const char *const pop3_bad_user[] = { "S+OK ready\r\n", "R",
	"S-ERR no such user\r\n", NULL };
static const char *const pop3_err_greeting[] = { "S-ERR go away\r\n",
	NULL };
static const char *const pop3_garbled_greeting[] = { "SHTTP/1.0 200\r\n",
	NULL };
static const char *const pop3_garbled_pass[] = { "S+OK ready\r\n", "R",
	"S+OK\r\n", "R", "S+OKAY\r\n", NULL };
static const char *const pop3_sys_temp[] = { "S+OK ready\r\n", "R",
	"S+OK\r\n", "R", "S-ERR [SYS/TEMP] try later\r\n", NULL };
static const char *const pop3_in_use[] = { "S+OK ready\r\n", "R",
	"S+OK\r\n", "R", "S-ERR [IN-USE] locked\r\n", NULL };
static const char *const pop3_close[] = { "S+OK ready\r\n", "R", "C",
	NULL };
static const char *const pop3_echo[] = { "S+OK ready\r\n", "R",
	"S+OK\r\n", "R", "Ssecret-pw\r\n", NULL };
static const char *const pop3_bare_ok[] = { "S+OK\n", "R", "S+OK\n", "R",
	"S+OK\n", NULL };

static void
test_pop3_dialogues(void **state)
{
	static const struct case_ cs[] = {
		{ "ok", pop3_ok, "alice", "secret-pw", OUTCOME_OK,
		  "", "USER alice\nPASS secret-pw\nQUIT\n" },
		{ "bare", pop3_bare_ok, "alice", "secret-pw", OUTCOME_OK,
		  "", NULL },
		{ "bad pass", pop3_bad_pass, "alice", "secret-pw",
		  OUTCOME_PERM, "", NULL },
		{ "bad user", pop3_bad_user, "bob", "secret-pw", OUTCOME_PERM,
		  "at USER: -ERR no such user", "USER bob\nQUIT\n" },
		{ "err greeting", pop3_err_greeting, "a", "secret-pw",
		  OUTCOME_TEMP,
		  "protocol error: unexpected greeting: -ERR go away",
		  "QUIT\n" },
		{ "garbled greeting", pop3_garbled_greeting, "a", "secret-pw",
		  OUTCOME_TEMP, "protocol error: garbled reply", NULL },
		{ "garbled pass", pop3_garbled_pass, "a", "secret-pw",
		  OUTCOME_TEMP, "protocol error: garbled reply", NULL },
		{ "sys/temp", pop3_sys_temp, "a", "secret-pw", OUTCOME_TEMP,
		  "temporary failure at PASS", NULL },
		{ "in-use", pop3_in_use, "a", "secret-pw", OUTCOME_OK,
		  "maildrop busy", NULL },
		{ "closed", pop3_close, "a", "secret-pw", OUTCOME_TEMP,
		  "connection closed by server", NULL },
		{ "echo", pop3_echo, "a", "secret-pw", OUTCOME_TEMP,
		  "protocol error: garbled reply", NULL },
	};

	(void)state;
	run_cases(0, cs, sizeof(cs) / sizeof(cs[0]));
}

static const char *const ftp_ok[] = {
	"S120 wait a moment\r\n",
	"S220-Welcome.\r\n220-Second line.\r\n  220 indented, not the end\r\n"
	    "220 Ready.\r\n",
	"R", "S331-Password\r\n331-required\r\n331 for alice.\r\n",
	"R", "S230-Welcome\r\n230 is not over: 230-\r\nsome text\r\n"
	    "530 not the end either\r\n230 Login successful.\r\n",
	"R", "S221 Goodbye.\r\n", NULL };
static const char *const ftp_no_pass[] = { "S220 ready\r\n", "R",
	"S230 no password needed\r\n", NULL };
static const char *const ftp_bad_pass[] = { "S220 ready\r\n", "R",
	"S331 pw\r\n", "R", "S530 Login incorrect.\r\n", NULL };
static const char *const ftp_account[] = { "S220 ready\r\n", "R",
	"S331 pw\r\n", "R", "S332 Need account for login.\r\n", NULL };
static const char *const ftp_421_greeting[] = {
	"S421 Too many users\r\n", NULL };
static const char *const ftp_421_user[] = { "S220 ready\r\n", "R",
	"S421 Timeout\r\n", NULL };
static const char *const ftp_550_user[] = { "S220 ready\r\n", "R",
	"S550 no\r\n", NULL };
static const char *const ftp_garbled[] = { "S220 ready\r\n", "R",
	"Sok, go on\r\n", NULL };
static const char *const ftp_202[] = { "S220 ready\r\n", "R",
	"S331 pw\r\n", "R", "S202 whatever\r\n", NULL };
static const char *const ftp_unfinished[] = { "S220 ready\r\n", "R",
	"S331-pw\r\n", "H", NULL };
static const char *const ftp_bad_code[] = { "S220 ready\r\n", "R",
	"S631 pw\r\n", NULL };

static void
test_ftp_dialogues(void **state)
{
	static const struct case_ cs[] = {
		{ "ok", ftp_ok, "alice", "secret-pw", OUTCOME_OK, "",
		  "USER alice\nPASS secret-pw\nQUIT\n" },
		{ "no pass", ftp_no_pass, "alice", "secret-pw", OUTCOME_OK,
		  "no password asked", "USER alice\nQUIT\n" },
		{ "bad pass", ftp_bad_pass, "alice", "secret-pw",
		  OUTCOME_PERM, "", NULL },
		{ "account", ftp_account, "alice", "secret-pw", OUTCOME_PERM,
		  "account required", NULL },
		{ "421 greeting", ftp_421_greeting, "alice", "secret-pw",
		  OUTCOME_TEMP, "service not available: 421 Too many users",
		  NULL },
		{ "421 user", ftp_421_user, "alice", "secret-pw",
		  OUTCOME_TEMP, "temporary failure at USER: 421 Timeout", NULL },
		{ "550 user", ftp_550_user, "alice", "secret-pw",
		  OUTCOME_PERM, "at USER: 550 no", NULL },
		{ "garbled", ftp_garbled, "alice", "secret-pw", OUTCOME_TEMP,
		  "protocol error: garbled reply", NULL },
		{ "202", ftp_202, "alice", "secret-pw", OUTCOME_TEMP,
		  "protocol error: unexpected reply 202 at PASS", NULL },
		{ "unfinished", ftp_unfinished, "alice", "secret-pw",
		  OUTCOME_TEMP, "timeout after 2s", NULL },
		{ "bad code", ftp_bad_code, "alice", "secret-pw",
		  OUTCOME_TEMP, "protocol error: garbled reply", NULL },
	};

	(void)state;
	run_cases(1, cs, sizeof(cs) / sizeof(cs[0]));
}

/* Nothing is sent, or even connected, for a user or password with CR/LF. */
static void
test_illegal_characters(void **state)
{
	static const char *const bad[][2] = {
		{ "alice\r\nDELE 1", "pw" }, { "alice", "pw\nQUIT" },
		{ "alice\r", "pw" }, { "alice", "\n" },
	};
	struct pollfd p;
	char why[128];
	int lfd, port;
	size_t i;

	(void)state;
	lfd = listen_any(&port);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(auth_pop3_check("127.0.0.1", port, bad[i][0],
		    bad[i][1], 2, why, sizeof(why)), OUTCOME_PERM);
		assert_non_null(strstr(why, "illegal character"));
		assert_int_equal(auth_ftp_check("127.0.0.1", port, bad[i][0],
		    bad[i][1], 2, why, sizeof(why)), OUTCOME_PERM);
		assert_non_null(strstr(why, "illegal character"));
	}
	p.fd = lfd;
	p.events = POLLIN;
	assert_int_equal(poll(&p, 1, 0), 0);	/* no connection came */
	close(lfd);
}

static void
test_ftp_anonymous_refused(void **state)
{
	char why[128];

	(void)state;
	assert_int_equal(auth_ftp_check("127.0.0.1", 1, "Anonymous",
	    "me@example.org", 2, why, sizeof(why)), OUTCOME_PERM);
	assert_string_equal(why, "anonymous login");
	assert_int_equal(auth_ftp_check("127.0.0.1", 1, "ftp", "x", 2, why,
	    sizeof(why)), OUTCOME_PERM);
}

/*
 * A server whose kernel completes the handshake but which never answers:
 * the check gives up within its timeout, for both protocols.
 */
static void
test_silent_server(void **state)
{
	char why[128];
	long long t0;
	int lfd, port;

	(void)state;
	lfd = listen_any(&port);	/* never accept()ed */
	t0 = util_now_ms();
	assert_int_equal(auth_pop3_check("127.0.0.1", port, "alice", "pw", 1,
	    why, sizeof(why)), OUTCOME_TEMP);
	assert_true(util_now_ms() - t0 < 1000 + SLACK_MS);
	assert_non_null(strstr(why, "timeout after 1s"));
	t0 = util_now_ms();
	assert_int_equal(auth_ftp_check("127.0.0.1", port, "alice", "pw", 1,
	    why, sizeof(why)), OUTCOME_TEMP);
	assert_true(util_now_ms() - t0 < 1000 + SLACK_MS);
	assert_non_null(strstr(why, "timeout after 1s"));
	close(lfd);
}

/* A greeting, then silence after PASS: still within the one deadline. */
static void
test_silent_after_pass(void **state)
{
	static const char *const script[] = { "S+OK ready\r\n", "R",
		"S+OK\r\n", "R", "H", NULL };
	struct fake *f = fake_start(script);
	char why[128];
	long long t0 = util_now_ms();

	(void)state;
	assert_int_equal(auth_pop3_check("127.0.0.1", f->port, "alice", "pw",
	    1, why, sizeof(why)), OUTCOME_TEMP);
	assert_true(util_now_ms() - t0 < 1000 + SLACK_MS);
	assert_non_null(strstr(why, "timeout after 1s"));
	fake_end(f);
}

/* A server whose multi-line greeting never ends. */
static void *
ftp_flooder(void *arg)
{
	int lfd = *(int *)arg, fd, i;
	char buf[64];

	if ((fd = accept(lfd, NULL, NULL)) == -1)
		return NULL;
	(void)put(fd, "220-hello\r\n", 11);
	for (i = 0; i < 1000; i++)
		if (put(fd, "220-more\r\n", 10) != 10)
			break;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return NULL;
}

static void
test_ftp_endless_reply(void **state)
{
	pthread_t th;
	char why[128];
	long long t0;
	int lfd, port;

	(void)state;
	lfd = listen_any(&port);
	assert_int_equal(pthread_create(&th, NULL, ftp_flooder, &lfd), 0);
	t0 = util_now_ms();
	assert_int_equal(auth_ftp_check("127.0.0.1", port, "alice", "pw", 2,
	    why, sizeof(why)), OUTCOME_TEMP);
	assert_true(util_now_ms() - t0 < 2000 + SLACK_MS);
	assert_non_null(strstr(why, "protocol error: endless multi-line"));
	pthread_join(th, NULL);
	close(lfd);
}

static void
test_refused_and_unresolvable(void **state)
{
	char why[128];
	int lfd, port;

	(void)state;
	lfd = listen_any(&port);
	close(lfd);		/* nothing listens on port now */
	assert_int_equal(auth_pop3_check("127.0.0.1", port, "alice", "pw", 2,
	    why, sizeof(why)), OUTCOME_TEMP);
	assert_non_null(strstr(why, "connection refused"));
	assert_int_equal(auth_ftp_check("no-such-host.invalid", 21, "alice",
	    "pw", 2, why, sizeof(why)), OUTCOME_TEMP);
	assert_string_equal(why, "cannot resolve host");
}

/* IPv6 literal, when the host has ::1. */
static void
test_ipv6_literal(void **state)
{
	static const char *const script[] = { "S+OK ready\r\n", "R",
		"S+OK\r\n", "R", "S+OK\r\n", NULL };
	struct sockaddr_in6 sin6;
	socklen_t sl = sizeof(sin6);
	struct fake f;
	char why[128];
	int fd;

	(void)state;
	memset(&f, 0, sizeof(f));
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	if ((fd = socket(AF_INET6, SOCK_STREAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == -1) {
		if (fd != -1)
			close(fd);
		skip();
	}
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin6, &sl), 0);
	f.lfd = fd;
	f.port = ntohs(sin6.sin6_port);
	f.script = script;
	assert_int_equal(pthread_create(&f.th, NULL, fake_main, &f), 0);
	assert_int_equal(auth_pop3_check("::1", f.port, "alice", "pw", 2, why,
	    sizeof(why)), OUTCOME_OK);
	pthread_join(f.th, NULL);
	close(fd);
	assert_string_equal(why, "");
}

/* ---- auth_check: what the log says of each backend asked ---- */

/* An auth over list ("FILE" stands for a password file of alice's). */
static struct auth *
auth_over(struct mpp_config *cfg, const char *list, long cache_ttl,
    char *path, size_t pathsz)
{
	char hash[PWFILE_HASH_MAX], err[256], value[CONFIG_STR_MAX];
	struct auth *a;
	const char *f;
	FILE *fp;
	int fd;

	snprintf(path, pathsz, "/tmp/test_auth_remote.XXXXXX");
	assert_true((fd = mkstemp(path)) != -1);
	assert_int_equal(pwfile_hash("secret", "$6$", hash, sizeof(hash)), 0);
	assert_non_null(fp = fdopen(fd, "w"));
	fprintf(fp, "alice:%s\n", hash);
	assert_int_equal(fclose(fp), 0);
	config_defaults(cfg);
	cfg->auth_timeout = 2;
	cfg->auth_cache_ttl = cache_ttl;
	f = strstr(list, "FILE");
	snprintf(value, sizeof(value), "%.*s%s%s%s",
	    f != NULL ? (int)(f - list) : (int)strlen(list), list,
	    f != NULL ? "file:" : "", f != NULL ? path : "",
	    f != NULL ? f + 4 : "");
	assert_int_equal(config_set(cfg, "auth", value, err, sizeof(err)), 0);
	a = auth_new(cfg, err, sizeof(err));
	assert_non_null(a);
	return a;
}

static void
test_detail_file_and_down(void **state)
{
	struct mpp_config cfg;
	char path[64], list[128], want[512], detail[512];
	struct auth *a;
	int lfd, port;

	(void)state;
	lfd = listen_any(&port);
	close(lfd);		/* nothing listens on port now */
	snprintf(list, sizeof(list), "FILE, pop3:127.0.0.1:%d", port);
	a = auth_over(&cfg, list, 0, path, sizeof(path));
	assert_int_equal(auth_check(a, "alice", "wrong", detail,
	    sizeof(detail)), OUTCOME_TEMP);
	snprintf(want, sizeof(want), "backend=file:%s result=rejected "
	    "backend=pop3:127.0.0.1:%d result=unavailable "
	    "reason=\"connection refused\"", path, port);
	assert_string_equal(detail, want);
	/* The first that accepts decides; those after it are not asked. */
	assert_int_equal(auth_check(a, "alice", "secret", detail,
	    sizeof(detail)), OUTCOME_OK);
	snprintf(want, sizeof(want), "backend=file:%s result=ok", path);
	assert_string_equal(detail, want);
	/* Cut short: says so. */
	assert_int_equal(auth_check(a, "alice", "wrong", detail, 40),
	    OUTCOME_TEMP);
	assert_int_equal(strlen(detail), 39);
	assert_string_equal(detail + 36, "...");
	auth_free(a);
	unlink(path);
}

static void
test_detail_remote(void **state)
{
	struct mpp_config cfg;
	char path[64], list[128], want[512], detail[512];
	struct auth *a;
	struct fake *f;

	(void)state;
	/* A plain rejection needs no reason. */
	f = fake_start(pop3_bad_pass);
	snprintf(list, sizeof(list), "pop3:127.0.0.1:%d", f->port);
	a = auth_over(&cfg, list, 0, path, sizeof(path));
	assert_int_equal(auth_check(a, "carol", "wrong", detail,
	    sizeof(detail)), OUTCOME_PERM);
	snprintf(want, sizeof(want), "backend=pop3:127.0.0.1:%d "
	    "result=rejected", f->port);
	fake_end(f);
	assert_string_equal(detail, want);
	auth_free(a);
	unlink(path);
	/* An acceptance, then the same from the cache. */
	f = fake_start(ftp_ok);
	snprintf(list, sizeof(list), "ftp:127.0.0.1:%d", f->port);
	a = auth_over(&cfg, list, 60, path, sizeof(path));
	assert_int_equal(auth_check(a, "carol", "secret-pw", detail,
	    sizeof(detail)), OUTCOME_OK);
	snprintf(want, sizeof(want), "backend=ftp:127.0.0.1:%d result=ok",
	    f->port);
	fake_end(f);
	assert_string_equal(detail, want);
	assert_int_equal(auth_check(a, "carol", "secret-pw", detail,
	    sizeof(detail)), OUTCOME_OK);
	assert_string_equal(detail, "backend=cache result=ok");
	auth_free(a);
	unlink(path);
	/* Server text quoted in the reason; an IPv6 host in brackets. */
	f = fake_start(pop3_bad_user);
	snprintf(list, sizeof(list), "pop3:127.0.0.1:%d, pop3:[::1]:1",
	    f->port);
	a = auth_over(&cfg, list, 0, path, sizeof(path));
	assert_int_equal(auth_check(a, "bob", "pw", detail, sizeof(detail)),
	    OUTCOME_TEMP);
	snprintf(want, sizeof(want), "backend=pop3:127.0.0.1:%d "
	    "result=rejected reason=\"at USER: -ERR no such user\" "
	    "backend=pop3:[::1]:1 result=unavailable reason=\"", f->port);
	fake_end(f);
	assert_memory_equal(detail, want, strlen(want));
	auth_free(a);
	unlink(path);
}

/* ---- auth_cache ---- */

static void
test_cache_hit_and_miss(void **state)
{
	struct auth_cache *c = auth_cache_new(60);

	(void)state;
	assert_non_null(c);
	assert_false(auth_cache_hit(c, "alice", "secret"));
	auth_cache_put(c, "alice", "secret");
	assert_true(auth_cache_hit(c, "alice", "secret"));
	assert_false(auth_cache_hit(c, "alice", "Secret"));
	assert_false(auth_cache_hit(c, "alice", "secret "));
	assert_false(auth_cache_hit(c, "bob", "secret"));
	/* user and password do not run into each other */
	auth_cache_put(c, "ab", "c");
	assert_false(auth_cache_hit(c, "a", "bc"));
	assert_false(auth_cache_hit(c, "abc", ""));
	assert_true(auth_cache_hit(c, "ab", "c"));
	auth_cache_clear(c);
	assert_false(auth_cache_hit(c, "ab", "c"));
	assert_false(auth_cache_hit(c, "alice", "secret"));
	auth_cache_put(c, "alice", "secret");
	assert_true(auth_cache_hit(c, "alice", "secret"));
	auth_cache_free(c);
}

static void
test_cache_expiry(void **state)
{
	struct auth_cache *c = auth_cache_new(1);

	(void)state;
	assert_non_null(c);
	auth_cache_put(c, "alice", "secret");
	assert_true(auth_cache_hit(c, "alice", "secret"));
	sleep_ms(1100);
	assert_false(auth_cache_hit(c, "alice", "secret"));
	auth_cache_put(c, "alice", "secret");
	assert_true(auth_cache_hit(c, "alice", "secret"));
	auth_cache_free(c);
}

static void
test_cache_eviction(void **state)
{
	struct auth_cache *c = auth_cache_new_sized(60, 4);
	char u[16];
	int i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < 5; i++) {
		snprintf(u, sizeof(u), "user%d", i);
		auth_cache_put(c, u, "pw");
	}
	assert_false(auth_cache_hit(c, "user0", "pw"));
	for (i = 1; i < 5; i++) {
		snprintf(u, sizeof(u), "user%d", i);
		assert_true(auth_cache_hit(c, u, "pw"));
	}
	/* Renewing user1 makes it the youngest: user2 goes next. */
	auth_cache_put(c, "user1", "pw");
	auth_cache_put(c, "user5", "pw");
	assert_true(auth_cache_hit(c, "user1", "pw"));
	assert_false(auth_cache_hit(c, "user2", "pw"));
	assert_true(auth_cache_hit(c, "user5", "pw"));
	auth_cache_free(c);
}

static void
test_cache_off(void **state)
{
	struct auth_cache *c = auth_cache_new(0);

	(void)state;
	assert_non_null(c);
	auth_cache_put(c, "alice", "secret");
	assert_false(auth_cache_hit(c, "alice", "secret"));
	auth_cache_free(c);
	auth_cache_put(NULL, "alice", "secret");
	assert_false(auth_cache_hit(NULL, "alice", "secret"));
	auth_cache_free(NULL);
}

/* The default size holds AUTH_CACHE_MAX entries. */
static void
test_cache_full_size(void **state)
{
	struct auth_cache *c = auth_cache_new(60);
	char u[16];
	int i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i <= AUTH_CACHE_MAX; i++) {
		snprintf(u, sizeof(u), "u%d", i);
		auth_cache_put(c, u, "pw");
	}
	assert_false(auth_cache_hit(c, "u0", "pw"));
	assert_true(auth_cache_hit(c, "u1", "pw"));
	snprintf(u, sizeof(u), "u%d", AUTH_CACHE_MAX);
	assert_true(auth_cache_hit(c, u, "pw"));
	auth_cache_free(c);
}

struct cache_worker {
	struct auth_cache *c;
	int id;
	int misses;
};

static void *
cache_worker(void *arg)
{
	struct cache_worker *w = arg;
	char u[32];
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(u, sizeof(u), "w%d-%d", w->id, i);
		auth_cache_put(w->c, u, "pw");
		if (!auth_cache_hit(w->c, u, "pw"))
			w->misses++;
	}
	return NULL;
}

static void
test_cache_threads(void **state)
{
	struct cache_worker w[4];
	pthread_t th[4];
	int i;

	(void)state;
	w[0].c = auth_cache_new(60);
	assert_non_null(w[0].c);
	for (i = 0; i < 4; i++) {
		w[i].c = w[0].c;
		w[i].id = i;
		w[i].misses = 0;
		assert_int_equal(pthread_create(&th[i], NULL, cache_worker,
		    &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].misses, 0);
	}
	auth_cache_free(w[0].c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_lines),
		cmocka_unit_test(test_read_line_limit),
		cmocka_unit_test(test_read_line_nul),
		cmocka_unit_test(test_read_line_eof),
		cmocka_unit_test(test_read_line_silence),
		cmocka_unit_test(test_read_line_trickle),
		cmocka_unit_test(test_read_line_byte_by_byte),
		cmocka_unit_test(test_command_format),
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_pop3_dialogues),
		cmocka_unit_test(test_ftp_dialogues),
		cmocka_unit_test(test_illegal_characters),
		cmocka_unit_test(test_ftp_anonymous_refused),
		cmocka_unit_test(test_silent_server),
		cmocka_unit_test(test_silent_after_pass),
		cmocka_unit_test(test_ftp_endless_reply),
		cmocka_unit_test(test_refused_and_unresolvable),
		cmocka_unit_test(test_ipv6_literal),
		cmocka_unit_test(test_detail_file_and_down),
		cmocka_unit_test(test_detail_remote),
		cmocka_unit_test(test_cache_hit_and_miss),
		cmocka_unit_test(test_cache_expiry),
		cmocka_unit_test(test_cache_eviction),
		cmocka_unit_test(test_cache_off),
		cmocka_unit_test(test_cache_full_size),
		cmocka_unit_test(test_cache_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
