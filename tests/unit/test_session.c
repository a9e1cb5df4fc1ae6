/*
 * Unit tests for mppd/session.c, the MPP state machine.
 *
 * A fake host implements the hooks: it records every reply, answers the
 * auth and store hooks from a script (either inside the hook or later,
 * when session_feed() stops for it, as the daemon does), and keeps what
 * was spilled and stored. Every scenario is run five ways that must give
 * the same replies: hooks answered inside the call or later, crossed with
 * the input fed whole, one byte at a time, or in 7-byte pieces.
 *
 * The state-table test walks every cell of DESIGN.md's table: a prefix
 * brings the session to a state, one command line follows, and the reply
 * and the new state are checked.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "config.h"
#include "../../mppd/message.h"
#include "../../mppd/session.h"

#define QID "1.M1P1Q1"

/* The fake host. */

struct host {
	struct session *s;
	struct buf out;			/* every reply, in order */
	int after_close;		/* bytes sent after close: a bug */
	int later;			/* answer hooks later, not inside */
	const char *auth_script;	/* per call: o ok, p perm, t temp */
	const char *store_script;	/* the same for store */
	int text_begin_fail;		/* fail this text_begin (1-based) */
	int auth_calls, store_calls, text_begins, text_aborts, closes;
	int auth_pending, store_pending;
	char auth_user[128];
	char auth_pass[SESSION_LINE_MAX];
	struct buf spilled;		/* of the text in progress */
	int spills;
	struct buf stored;		/* the last stored message */
	char stored_rcpts[1024];
};

static enum outcome
script_result(const char *script, int call)
{
	char c;

	assert_non_null(script);
	assert_true((size_t)call <= strlen(script));
	c = script[call - 1];
	return c == 'o' ? OUTCOME_OK : c == 'p' ? OUTCOME_PERM : OUTCOME_TEMP;
}

static void
h_send(void *ctx, const char *data, size_t len)
{
	struct host *h = ctx;

	if (h->closes > 0)
		h->after_close += (int)len;
	assert_int_equal(buf_append(&h->out, data, len), 0);
}

static void
h_auth(void *ctx, const char *user, const char *password)
{
	struct host *h = ctx;

	assert_int_equal(h->auth_pending, 0);
	h->auth_calls++;
	snprintf(h->auth_user, sizeof(h->auth_user), "%s", user);
	snprintf(h->auth_pass, sizeof(h->auth_pass), "%s", password);
	if (h->later)
		h->auth_pending = 1;
	else
		session_auth_done(h->s, script_result(h->auth_script,
		    h->auth_calls));
}

static int
h_text_begin(void *ctx, char *qid, size_t qidsz)
{
	struct host *h = ctx;

	h->text_begins++;
	if (h->text_begins == h->text_begin_fail)
		return -1;
	snprintf(qid, qidsz, "%s", QID);
	buf_free(&h->spilled);
	return 0;
}

static int
h_spill(void *ctx, const char *data, size_t len)
{
	struct host *h = ctx;

	h->spills++;
	return buf_append(&h->spilled, data, len);
}

static void
h_store(void *ctx, struct message *m)
{
	struct host *h = ctx;
	struct buf *rest = message_output(m);
	size_t i, o = 0;

	assert_int_equal(h->store_pending, 0);
	h->store_calls++;
	buf_free(&h->stored);
	assert_int_equal(buf_append(&h->stored, h->spilled.data,
	    h->spilled.len), 0);
	assert_int_equal(buf_append(&h->stored, rest->data, rest->len), 0);
	assert_int_equal(message_size(m), h->stored.len);
	h->stored_rcpts[0] = '\0';
	for (i = 0; i < message_rcpt_count(m); i++)
		o += (size_t)snprintf(h->stored_rcpts + o,
		    sizeof(h->stored_rcpts) - o, "%s%s", i ? "," : "",
		    message_rcpt(m, i));
	if (h->later)
		h->store_pending = 1;
	else
		session_store_done(h->s, script_result(h->store_script,
		    h->store_calls));
}

static void
h_text_abort(void *ctx)
{
	struct host *h = ctx;

	h->text_aborts++;
	buf_free(&h->spilled);
}

static void
h_close(void *ctx)
{
	struct host *h = ctx;

	h->closes++;
}

static const struct session_hooks hooks = {
	h_send, h_auth, h_text_begin, h_spill, h_store, h_text_abort, h_close
};

static struct mpp_config cfg;

/* Present when built with a sanitizer; its reports must stay visible. */
void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

/*
 * The session logs a line per event to fd 2. Unless MPP_TEST_LOG is set,
 * send those to /dev/null, but keep cmocka's messages (stdio's stderr) and
 * any sanitizer report on the real stderr.
 */
static void
quiet_log(void)
{
	FILE *fp;
	int keep, null;

	if (getenv("MPP_TEST_LOG") != NULL)
		return;
	if ((keep = dup(STDERR_FILENO)) == -1)
		return;
	if ((fp = fdopen(keep, "w")) == NULL ||
	    (null = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1) {
		if (fp != NULL)
			fclose(fp);
		else
			close(keep);
		return;
	}
	setvbuf(fp, NULL, _IONBF, 0);
	if (__sanitizer_set_report_fd != NULL)
		__sanitizer_set_report_fd((void *)(intptr_t)keep);
	fflush(stderr);
	dup2(null, STDERR_FILENO);
	close(null);
	stderr = fp;
}

static int
setup_cfg(void **state)
{
	config_defaults(&cfg);
	snprintf(cfg.hostname, sizeof(cfg.hostname), "mpp.test");
	snprintf(cfg.sender_domain, sizeof(cfg.sender_domain), "example.org");
	return 0;
}

static void
host_init(struct host *h, const struct mpp_config *c)
{
	memset(h, 0, sizeof(*h));
	h->s = session_new(&hooks, h, c, "192.0.2.7", "t1");
	assert_non_null(h->s);
	session_start(h->s);
}

static void
host_free(struct host *h)
{
	session_free(h->s);
	buf_free(&h->out);
	buf_free(&h->spilled);
	buf_free(&h->stored);
}

/* Answer a pending hook, as the daemon does when the work is done. */
static int
host_complete(struct host *h)
{
	if (h->auth_pending) {
		assert_true(session_waiting(h->s));
		h->auth_pending = 0;
		session_auth_done(h->s, script_result(h->auth_script,
		    h->auth_calls));
		return 1;
	}
	if (h->store_pending) {
		assert_true(session_waiting(h->s));
		h->store_pending = 0;
		session_store_done(h->s, script_result(h->store_script,
		    h->store_calls));
		return 1;
	}
	return 0;
}

/*
 * Feed in[0..len) as a daemon would, in pieces of step bytes (0: whole),
 * each an exact heap copy; when the session stops short, answer what it
 * waits for and feed the rest. Returns the bytes consumed (less than len
 * only when the session closed).
 */
static size_t
host_feed(struct host *h, const char *in, size_t len, size_t step)
{
	size_t off = 0, n, used;
	char *piece;

	while (off < len && !session_closed(h->s)) {
		n = step == 0 || step > len - off ? len - off : step;
		piece = malloc(n);
		assert_non_null(piece);
		memcpy(piece, in + off, n);
		used = session_feed(h->s, piece, n);
		free(piece);
		assert_true(used <= n);
		off += used;
		/* Short: a wait, a close, or the end of a text. */
		if (used < n && session_waiting(h->s))
			assert_int_equal(host_complete(h), 1);
		else if (used < n && !session_closed(h->s))
			assert_true(used > 0 &&
			    session_get_state(h->s) != SS_TEXT);
	}
	while (!session_closed(h->s) && host_complete(h))
		continue;
	return off;
}

/* A scenario run in the five ways. */

struct run_opts {
	const char *auth, *store;
	int text_begin_fail;
	const struct mpp_config *cfg;
};

struct outcome_rec {
	struct buf out;
	enum session_state state;
	int closed, auth_calls, store_calls, text_aborts, closes;
	size_t consumed;
};

static void
run_one(const struct run_opts *o, const char *in, size_t len, int later,
    size_t step, struct outcome_rec *r, struct host *keep)
{
	struct host h;

	host_init(&h, o->cfg != NULL ? o->cfg : &cfg);
	h.later = later;
	h.auth_script = o->auth != NULL ? o->auth : "";
	h.store_script = o->store != NULL ? o->store : "";
	h.text_begin_fail = o->text_begin_fail;
	r->consumed = host_feed(&h, in, len, step);
	assert_int_equal(h.after_close, 0);
	memset(&r->out, 0, sizeof(r->out));
	assert_int_equal(buf_append(&r->out, h.out.data, h.out.len), 0);
	assert_int_equal(buf_nul(&r->out), 0);
	r->state = session_get_state(h.s);
	r->closed = session_closed(h.s);
	r->auth_calls = h.auth_calls;
	r->store_calls = h.store_calls;
	r->text_aborts = h.text_aborts;
	r->closes = h.closes;
	if (keep != NULL)
		*keep = h;
	else
		host_free(&h);
}

/*
 * Run in[0..len) five ways; fail unless each gives want (the replies after
 * the greeting). The first run's record is left in *r, and its host in
 * *keep when keep is not NULL (the caller frees it).
 */
static void
run_all(const char *label, const struct run_opts *o, const char *in,
    size_t len, const char *want, struct outcome_rec *r, struct host *keep)
{
	static const struct { int later; size_t step; } ways[] = {
		{ 0, 0 }, { 0, 1 }, { 1, 0 }, { 1, 1 }, { 1, 7 },
	};
	struct outcome_rec x;
	size_t i;

	for (i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
		run_one(o, in, len, ways[i].later, ways[i].step,
		    i == 0 ? r : &x, i == 0 ? keep : NULL);
		if (i == 0)
			continue;
		if (strcmp(x.out.data, r->out.data) != 0 ||
		    x.state != r->state || x.closed != r->closed ||
		    x.consumed != r->consumed ||
		    x.text_aborts != r->text_aborts) {
			print_error("%s: way %zu (later %d, step %zu) differs:"
			    "\n--- got\n%s--- first\n%s", label, i,
			    ways[i].later, ways[i].step, x.out.data,
			    r->out.data);
			fail();
		}
		buf_free(&x.out);
	}
	if (strncmp(r->out.data, R220, strlen(R220)) != 0 ||
	    strcmp(r->out.data + strlen(R220), want) != 0) {
		print_error("%s: replies\n--- got\n%s--- want\n" R220 "%s",
		    label, r->out.data, want);
		fail();
	}
}

/* The state table. */

enum prefix {
	P_START, P_USER_OK, P_AUTHED, P_TEXT, P_ACCEPTED, P_SPENT_530,
	P_SPENT_AUTH451, P_SPENT_550, P_SPENT_STORE451, P_SPENT_DATA451,
	P_START_AFTER_501
};

#define MSG_OK_TEXT "To: bob@example.com\r\n\r\nhi\r\n.\r\n"
#define MSG_NO_RCPT "Subject: none\r\n\r\nhi\r\n.\r\n"

static const struct {
	const char *in, *replies, *auth, *store;
	int text_begin_fail;
	enum session_state state;
} prefixes[] = {
	[P_START] = { "", "", "", "", 0, SS_START },
	[P_USER_OK] = { "USER alice\r\n", R250, "", "", 0, SS_USER_OK },
	[P_AUTHED] = { "USER alice\r\nPASS secret\r\n", R250 R250, "o", "", 0,
	    SS_AUTHED },
	[P_TEXT] = { "USER alice\r\nPASS secret\r\nDATA\r\n", R250 R250 R354,
	    "o", "", 0, SS_TEXT },
	[P_ACCEPTED] = { "USER alice\r\nPASS secret\r\nDATA\r\n" MSG_OK_TEXT,
	    R250 R250 R354 R250, "o", "o", 0, SS_ACCEPTED },
	[P_SPENT_530] = { "USER alice\r\nPASS wrong\r\n", R250 R530, "p", "", 0,
	    SS_SPENT },
	[P_SPENT_AUTH451] = { "USER alice\r\nPASS secret\r\n", R250 R451, "t",
	    "", 0, SS_SPENT },
	[P_SPENT_550] = { "USER alice\r\nPASS secret\r\nDATA\r\n" MSG_NO_RCPT,
	    R250 R250 R354 R550, "o", "", 0, SS_SPENT },
	[P_SPENT_STORE451] = { "USER alice\r\nPASS secret\r\nDATA\r\n"
	    MSG_OK_TEXT, R250 R250 R354 R451, "o", "t", 0, SS_SPENT },
	[P_SPENT_DATA451] = { "USER alice\r\nPASS secret\r\nDATA\r\n",
	    R250 R250 R451, "o", "", 1, SS_SPENT },
	[P_START_AFTER_501] = { "USER alice\r\nPASS secret\r\nDATA\r\n"
	    MSG_OK_TEXT "USER\r\n", R250 R250 R354 R250 R501, "o", "o", 0,
	    SS_START },
};

struct cell {
	enum prefix from;
	const char *cmd;
	const char *auth;	/* more auth answers, after the prefix's */
	const char *store;
	const char *reply;	/* "" for none (text) */
	enum session_state to;
	int closed;
};

static const struct cell cells[] = {
	/* start */
	{ P_START, "USER alice\r\n", "", "", R250, SS_USER_OK, 0 },
	{ P_START, "user alice\r\n", "", "", R250, SS_USER_OK, 0 },
	{ P_START, "UsEr alice@example.org\r\n", "", "", R250, SS_USER_OK, 0 },
	{ P_START, "USER\r\n", "", "", R501, SS_START, 0 },
	{ P_START, "USER \r\n", "", "", R501, SS_START, 0 },
	{ P_START, "USER a b\r\n", "", "", R501, SS_START, 0 },
	{ P_START, "PASS secret\r\n", "", "", R503, SS_START, 0 },
	{ P_START, "DATA\r\n", "", "", R503, SS_START, 0 },
	{ P_START, "NOOP\r\n", "", "", R250, SS_START, 0 },
	{ P_START, "NOOP x\r\n", "", "", R501, SS_START, 0 },
	{ P_START, "QUIT\r\n", "", "", R221, SS_START, 1 },
	{ P_START, "HELO x\r\n", "", "", R500, SS_START, 0 },
	{ P_START, "\r\n", "", "", R500, SS_START, 0 },
	{ P_START, "USERX alice\r\n", "", "", R500, SS_START, 0 },
	{ P_START_AFTER_501, "USER bob\r\n", "", "", R250, SS_USER_OK, 0 },
	{ P_START_AFTER_501, "PASS x\r\n", "", "", R503, SS_START, 0 },
	/* user_ok */
	{ P_USER_OK, "USER bob\r\n", "", "", R503, SS_USER_OK, 0 },
	{ P_USER_OK, "PASS secret\r\n", "o", "", R250, SS_AUTHED, 0 },
	{ P_USER_OK, "pass secret\r\n", "o", "", R250, SS_AUTHED, 0 },
	{ P_USER_OK, "PASS\r\n", "", "", R501, SS_USER_OK, 0 },
	{ P_USER_OK, "PASS \r\n", "", "", R501, SS_USER_OK, 0 },
	{ P_USER_OK, "PASS wrong\r\n", "p", "", R530, SS_SPENT, 0 },
	{ P_USER_OK, "PASS secret\r\n", "t", "", R451, SS_SPENT, 0 },
	{ P_USER_OK, "DATA\r\n", "", "", R503, SS_USER_OK, 0 },
	{ P_USER_OK, "NOOP\r\n", "", "", R250, SS_USER_OK, 0 },
	{ P_USER_OK, "QUIT\r\n", "", "", R221, SS_USER_OK, 1 },
	{ P_USER_OK, "BOGUS\r\n", "", "", R500, SS_USER_OK, 0 },
	/* authed */
	{ P_AUTHED, "USER bob\r\n", "", "", R503, SS_AUTHED, 0 },
	{ P_AUTHED, "PASS secret\r\n", "", "", R503, SS_AUTHED, 0 },
	{ P_AUTHED, "DATA\r\n", "", "", R354, SS_TEXT, 0 },
	{ P_AUTHED, "data\r\n", "", "", R354, SS_TEXT, 0 },
	{ P_AUTHED, "DATA x\r\n", "", "", R501, SS_AUTHED, 0 },
	{ P_AUTHED, "DATA \r\n", "", "", R354, SS_TEXT, 0 },
	{ P_AUTHED, "NOOP\r\n", "", "", R250, SS_AUTHED, 0 },
	{ P_AUTHED, "NOOP x\r\n", "", "", R501, SS_AUTHED, 0 },
	{ P_AUTHED, "QUIT\r\n", "", "", R221, SS_AUTHED, 1 },
	{ P_AUTHED, "XYZZY\r\n", "", "", R500, SS_AUTHED, 0 },
	{ P_SPENT_DATA451, "NOOP\r\n", "", "", R451, SS_SPENT, 0 },
	/* text: commands are text */
	{ P_TEXT, "USER bob\r\n", "", "", "", SS_TEXT, 0 },
	{ P_TEXT, "QUIT\r\n", "", "", "", SS_TEXT, 0 },
	{ P_TEXT, "NOOP\r\n", "", "", "", SS_TEXT, 0 },
	{ P_TEXT, MSG_OK_TEXT, "", "o", R250, SS_ACCEPTED, 0 },
	{ P_TEXT, MSG_OK_TEXT, "", "t", R451, SS_SPENT, 0 },
	{ P_TEXT, MSG_NO_RCPT, "", "", R550, SS_SPENT, 0 },
	{ P_TEXT, ".\r\n", "", "", R550, SS_SPENT, 0 },
	/* accepted */
	{ P_ACCEPTED, "USER bob\r\n", "", "", R250, SS_USER_OK, 0 },
	{ P_ACCEPTED, "USER\r\n", "", "", R501, SS_START, 0 },
	{ P_ACCEPTED, "USER -bob\r\n", "", "", R501, SS_START, 0 },
	{ P_ACCEPTED, "PASS secret\r\n", "", "", R503, SS_ACCEPTED, 0 },
	{ P_ACCEPTED, "DATA\r\n", "", "", R354, SS_TEXT, 0 },
	{ P_ACCEPTED, "DATA x\r\n", "", "", R501, SS_ACCEPTED, 0 },
	{ P_ACCEPTED, "NOOP\r\n", "", "", R250, SS_ACCEPTED, 0 },
	{ P_ACCEPTED, "QUIT\r\n", "", "", R221, SS_ACCEPTED, 1 },
	{ P_ACCEPTED, "FOO\r\n", "", "", R500, SS_ACCEPTED, 0 },
	/* spent, by 530 */
	{ P_SPENT_530, "USER alice\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_530, "PASS secret\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_530, "DATA\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_530, "NOOP\r\n", "", "", R250, SS_SPENT, 0 },
	{ P_SPENT_530, "QUIT\r\n", "", "", R221, SS_SPENT, 1 },
	{ P_SPENT_530, "FOO\r\n", "", "", R500, SS_SPENT, 0 },
	/* spent, by a 451 from auth: NOOP says 451 from now on */
	{ P_SPENT_AUTH451, "USER alice\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_AUTH451, "PASS secret\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_AUTH451, "DATA\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_AUTH451, "NOOP\r\n", "", "", R451, SS_SPENT, 0 },
	{ P_SPENT_AUTH451, "NOOP x\r\n", "", "", R501, SS_SPENT, 0 },
	{ P_SPENT_AUTH451, "QUIT\r\n", "", "", R221, SS_SPENT, 1 },
	/* spent, by 550 */
	{ P_SPENT_550, "USER alice\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_550, "PASS secret\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_550, "DATA\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_550, "NOOP\r\n", "", "", R250, SS_SPENT, 0 },
	{ P_SPENT_550, "QUIT\r\n", "", "", R221, SS_SPENT, 1 },
	/* spent, by a 451 from store */
	{ P_SPENT_STORE451, "DATA\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_STORE451, "USER alice\r\n", "", "", R503, SS_SPENT, 0 },
	{ P_SPENT_STORE451, "NOOP\r\n", "", "", R451, SS_SPENT, 0 },
	{ P_SPENT_STORE451, "QUIT\r\n", "", "", R221, SS_SPENT, 1 },
	/* QUIT, whatever follows the verb */
	{ P_START, "QUIT now\r\n", "", "", R221, SS_START, 1 },
	{ P_AUTHED, "quit\r\n", "", "", R221, SS_AUTHED, 1 },
};

static void
test_state_table(void **state)
{
	char in[1024], auth[16], store[16], want[512], label[256];
	size_t i;

	for (i = 0; i < sizeof(cells) / sizeof(cells[0]); i++) {
		const struct cell *c = &cells[i];
		struct run_opts o = { auth, store, 0, NULL };
		struct outcome_rec r;

		snprintf(in, sizeof(in), "%s%s", prefixes[c->from].in, c->cmd);
		snprintf(auth, sizeof(auth), "%s%s", prefixes[c->from].auth,
		    c->auth);
		snprintf(store, sizeof(store), "%s%s", prefixes[c->from].store,
		    c->store);
		o.text_begin_fail = prefixes[c->from].text_begin_fail;
		snprintf(want, sizeof(want), "%s%s", prefixes[c->from].replies,
		    c->reply);
		snprintf(label, sizeof(label), "cell %zu (%s, \"%.*s\")", i,
		    session_state_name(prefixes[c->from].state),
		    (int)strcspn(c->cmd, "\r"), c->cmd);
		run_all(label, &o, in, strlen(in), want, &r, NULL);
		if (r.state != c->to || r.closed != c->closed ||
		    r.closes != c->closed) {
			print_error("%s: state %s closed %d, want %s %d\n",
			    label, session_state_name(r.state), r.closed,
			    session_state_name(c->to), c->closed);
			fail();
		}
		assert_int_equal(r.consumed, strlen(in));
		buf_free(&r.out);
	}
}

/* Each prefix leaves the session in the state it is named for. */
static void
test_prefix_states(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		struct run_opts o = { prefixes[i].auth, prefixes[i].store,
		    prefixes[i].text_begin_fail, NULL };
		struct outcome_rec r;

		run_all("prefix", &o, prefixes[i].in, strlen(prefixes[i].in),
		    prefixes[i].replies, &r, NULL);
		assert_int_equal(r.state, prefixes[i].state);
		buf_free(&r.out);
	}
}

/* USER arguments. */

#define A16 "aaaaaaaaaaaaaaaa"

static void
test_user_syntax(void **state)
{
	static const struct { const char *arg; const char *reply; } cases[] = {
		{ "alice", R250 },
		{ "alice@example.org", R250 },
		{ "a.b-c_d+e", R250 },
		{ A16 A16 A16 A16, R250 },		/* 64 bytes */
		{ A16 A16 A16 A16 "a", R501 },	/* 65 */
		{ "", R501 },
		{ "a b", R501 },
		{ "a\tb", R501 },
		{ "-alice", R501 },
		{ "<alice>", R501 },
		{ "alice@", R501 },
		{ "@example.org", R501 },
		{ "a@b@c", R501 },
		{ "al\x01ice", R501 },
		{ "al\x7fice", R501 },
		{ "\xc3\xa9lise", R501 },
		{ "a,b", R501 },
		{ "a;b", R501 },
		{ "a:b", R501 },
		{ "\"alice\"", R501 },
	};
	char in[256], want[128];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run_opts o = { "", "", 0, NULL };
		struct outcome_rec r;

		snprintf(in, sizeof(in), "USER %s\r\n", cases[i].arg);
		snprintf(want, sizeof(want), "%s", cases[i].reply);
		run_all(cases[i].arg, &o, in, strlen(in), want, &r, NULL);
		assert_int_equal(r.state, strcmp(cases[i].reply, R250) == 0 ?
		    SS_USER_OK : SS_START);
		buf_free(&r.out);
	}
}

/* PASS hands the user and the whole argument to the auth hook. */
static void
test_pass_to_auth(void **state)
{
	static const struct { const char *line, *pass, *reply; } cases[] = {
		{ "PASS secret\r\n", "secret", R250 },
		{ "PASS my secret pw\r\n", "my secret pw", R250 },
		{ "PASS p\xc3\xa4ss\r\n", "p\xc3\xa4ss", R250 },
		{ "PASS a\x01" "b\r\n", NULL, R501 },
		{ "PASS a\x7f" "b\r\n", NULL, R501 },
		{ "PASS a\tb\r\n", NULL, R501 },
	};
	char in[256], want[128];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run_opts o = { "o", "", 0, NULL };
		struct outcome_rec r;
		struct host h;

		snprintf(in, sizeof(in), "USER bob\r\n%s", cases[i].line);
		snprintf(want, sizeof(want), R250 "%s", cases[i].reply);
		run_all(cases[i].line, &o, in, strlen(in), want, &r, &h);
		if (cases[i].pass != NULL) {
			assert_int_equal(h.auth_calls, 1);
			assert_string_equal(h.auth_user, "bob");
			assert_string_equal(h.auth_pass, cases[i].pass);
		} else
			assert_int_equal(h.auth_calls, 0);
		host_free(&h);
		buf_free(&r.out);
	}
}

/* After a stored message, USER names the next poster, who must PASS. */
static void
test_second_user(void **state)
{
	static const char in[] = "USER alice\r\nPASS a\r\nDATA\r\n" MSG_OK_TEXT
	    "USER bob\r\nPASS b\r\nDATA\r\n" MSG_OK_TEXT "QUIT\r\n";
	struct run_opts o = { "oo", "oo", 0, NULL };
	struct outcome_rec r;
	struct host h;

	run_all("second user", &o, in, sizeof(in) - 1, R250 R250 R354 R250
	    R250 R250 R354 R250 R221, &r, &h);
	assert_string_equal(h.auth_user, "bob");
	assert_int_equal(h.store_calls, 2);
	assert_int_equal(buf_nul(&h.stored), 0);
	assert_non_null(strstr(h.stored.data, "(user bob)"));
	assert_non_null(strstr(h.stored.data, "From: <bob@example.org>\n"));
	host_free(&h);
	buf_free(&r.out);
}

/* The line limit. */

/* "PASS " + password + CRLF, total bytes long. */
static char *
pass_line(size_t total)
{
	char *s = malloc(total + 1);

	assert_non_null(s);
	memcpy(s, "PASS ", 5);
	memset(s + 5, 'p', total - 7);
	memcpy(s + total - 2, "\r\n", 3);
	return s;
}

static void
test_line_limit(void **state)
{
	struct buf in = { 0 };
	struct run_opts o = { "o", "", 0, NULL };
	struct outcome_rec r;
	struct host h;
	char *l512 = pass_line(SESSION_LINE_MAX);
	char *l513 = pass_line(SESSION_LINE_MAX + 1);
	char *l5000 = pass_line(5000);

	/* 513 bytes: 500, no auth, still user_ok; then in step again. */
	buf_puts(&in, "USER alice\r\n");
	buf_puts(&in, l513);
	buf_puts(&in, l5000);
	buf_puts(&in, "NOOP\r\n");
	buf_puts(&in, l512);
	buf_puts(&in, "NOOP\r\n");
	run_all("line limit", &o, in.data, in.len,
	    R250 R500 R500 R250 R250 R250, &r, &h);
	assert_int_equal(h.auth_calls, 1);
	assert_int_equal(strlen(h.auth_pass), SESSION_LINE_MAX - 7);
	assert_int_equal(r.state, SS_AUTHED);
	host_free(&h);
	buf_free(&r.out);
	buf_free(&in);
	free(l512);
	free(l513);
	free(l5000);
}

/* A line ended by LF alone counts the same; 512 bytes with LF is fine. */
static void
test_line_limit_lf(void **state)
{
	struct buf in = { 0 };
	struct run_opts o = { "o", "", 0, NULL };
	struct outcome_rec r;
	char *l;

	l = pass_line(SESSION_LINE_MAX + 1);	/* 511 + CRLF */
	memcpy(l + SESSION_LINE_MAX - 1, "\n", 2);	/* 511 + LF */
	buf_puts(&in, "USER alice\n");
	buf_puts(&in, l);
	buf_puts(&in, "NOOP\n");
	run_all("LF only", &o, in.data, in.len, R250 R250 R250, &r, NULL);
	assert_int_equal(r.state, SS_AUTHED);
	buf_free(&r.out);
	buf_free(&in);
	free(l);
}

/* An over-long line in every state outside text is a 500 that keeps it. */
static void
test_long_line_keeps_state(void **state)
{
	char *l = pass_line(600);
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		struct run_opts o = { prefixes[i].auth, prefixes[i].store,
		    prefixes[i].text_begin_fail, NULL };
		struct outcome_rec r;
		struct buf in = { 0 }, want = { 0 };

		if (prefixes[i].state == SS_TEXT)
			continue;
		buf_puts(&in, prefixes[i].in);
		buf_puts(&in, l);
		buf_puts(&want, prefixes[i].replies);
		buf_puts(&want, R500);
		buf_nul(&want);
		run_all("long line", &o, in.data, in.len, want.data, &r, NULL);
		assert_int_equal(r.state, prefixes[i].state);
		buf_free(&r.out);
		buf_free(&in);
		buf_free(&want);
	}
	free(l);
}

/* Pipelining and asynchronous answers. */

static void
test_pipelined(void **state)
{
	static const char in[] = "USER alice\r\nPASS secret\r\nNOOP\r\n"
	    "DATA\r\nTo: bob@example.com, carol@example.com\r\n"
	    "Subject: hi\r\n\r\n..dots\r\n.\r\nNOOP\r\nQUIT\r\nNOOP\r\n";
	struct run_opts o = { "o", "o", 0, NULL };
	struct outcome_rec r;
	struct host h;

	run_all("pipelined", &o, in, sizeof(in) - 1,
	    R250 R250 R250 R354 R250 R250 R221, &r, &h);
	/* Nothing after QUIT is consumed. */
	assert_int_equal(r.consumed, sizeof(in) - 1 - strlen("NOOP\r\n"));
	assert_true(r.closed);
	assert_int_equal(h.closes, 1);
	assert_string_equal(h.stored_rcpts,
	    "bob@example.com,carol@example.com");
	assert_int_equal(buf_nul(&h.stored), 0);
	assert_non_null(strstr(h.stored.data, "\n\n.dots\n"));
	assert_non_null(strstr(h.stored.data, "Received: from [192.0.2.7] "
	    "(user alice)\n\tby mpp.test (mppd) with MPP id " QID ";\n"));
	assert_non_null(strstr(h.stored.data, "From: <alice@example.org>\n"));
	host_free(&h);
	buf_free(&r.out);
}

/* While auth is out, input is not consumed; the answer releases it. */
static void
test_async_auth(void **state)
{
	static const char in[] = "USER alice\r\nPASS secret\r\nDATA\r\n";
	struct host h;
	size_t n;

	host_init(&h, &cfg);
	h.later = 1;
	h.auth_script = "o";
	n = session_feed(h.s, in, sizeof(in) - 1);
	assert_int_equal(n, strlen("USER alice\r\nPASS secret\r\n"));
	assert_true(session_waiting(h.s));
	assert_int_equal(h.auth_calls, 1);
	assert_int_equal(session_get_state(h.s), SS_USER_OK);
	assert_int_equal(buf_nul(&h.out), 0);
	assert_string_equal(h.out.data, R220 R250);
	/* Meanwhile more input: none of it is taken. */
	assert_int_equal(session_feed(h.s, in + n, sizeof(in) - 1 - n), 0);
	assert_int_equal(session_feed(h.s, "NOOP\r\n", 6), 0);
	assert_string_equal(h.out.data, R220 R250);
	h.auth_pending = 0;
	session_auth_done(h.s, OUTCOME_OK);
	assert_false(session_waiting(h.s));
	assert_int_equal(session_get_state(h.s), SS_AUTHED);
	assert_int_equal(session_feed(h.s, in + n, sizeof(in) - 1 - n),
	    sizeof(in) - 1 - n);
	assert_int_equal(buf_nul(&h.out), 0);
	assert_string_equal(h.out.data, R220 R250 R250 R354);
	assert_int_equal(session_get_state(h.s), SS_TEXT);
	host_free(&h);
}

/* The same for store: what follows the end marker waits. */
static void
test_async_store(void **state)
{
	static const char head[] = "USER alice\r\nPASS secret\r\nDATA\r\n"
	    MSG_OK_TEXT;
	static const char in[] = "USER alice\r\nPASS secret\r\nDATA\r\n"
	    MSG_OK_TEXT "QUIT\r\n";
	struct host h;
	size_t n;

	host_init(&h, &cfg);
	h.auth_script = "o";
	h.store_script = "o";
	n = session_feed(h.s, in, strlen("USER alice\r\nPASS secret\r\n"
	    "DATA\r\n"));
	h.later = 1;
	n += session_feed(h.s, in + n, sizeof(in) - 1 - n);
	assert_int_equal(n, sizeof(head) - 1);
	assert_true(session_waiting(h.s));
	assert_int_equal(h.store_calls, 1);
	assert_int_equal(session_get_state(h.s), SS_TEXT);
	assert_int_equal(session_feed(h.s, in + n, sizeof(in) - 1 - n), 0);
	h.store_pending = 0;
	session_store_done(h.s, OUTCOME_OK);
	assert_int_equal(session_get_state(h.s), SS_ACCEPTED);
	assert_int_equal(session_feed(h.s, in + n, sizeof(in) - 1 - n),
	    sizeof(in) - 1 - n);
	assert_true(session_closed(h.s));
	assert_int_equal(buf_nul(&h.out), 0);
	assert_string_equal(h.out.data, R220 R250 R250 R354 R250 R221);
	assert_int_equal(h.text_aborts, 0);
	host_free(&h);
}

/*
 * session_mid_line: from a command line's first byte to its LF (the host
 * times that), an over-long one included; never inside a message text.
 */
static void
test_mid_line(void **state)
{
	static const char in[] = "USER alice\r\nPASS secret\r\nDATA\r\n";
	char longline[SESSION_LINE_MAX + 10];
	struct host h;

	host_init(&h, &cfg);
	h.auth_script = "o";
	h.store_script = "o";
	assert_false(session_mid_line(h.s));
	assert_int_equal(session_feed(h.s, "NO", 2), 2);
	assert_true(session_mid_line(h.s));
	assert_int_equal(session_feed(h.s, "OP\r", 3), 3);
	assert_true(session_mid_line(h.s));
	assert_int_equal(session_feed(h.s, "\n", 1), 1);
	assert_false(session_mid_line(h.s));
	memset(longline, 'x', sizeof(longline));
	assert_int_equal(session_feed(h.s, longline, sizeof(longline)),
	    sizeof(longline));
	assert_true(session_mid_line(h.s));	/* skipping to its LF */
	assert_int_equal(session_feed(h.s, "\n", 1), 1);
	assert_false(session_mid_line(h.s));
	assert_int_equal(buf_nul(&h.out), 0);
	assert_string_equal(h.out.data, R220 R250 R500);
	assert_int_equal(host_feed(&h, in, sizeof(in) - 1, 0), sizeof(in) - 1);
	assert_int_equal(session_get_state(h.s), SS_TEXT);
	assert_int_equal(session_feed(h.s, "To: bob@example.com\r\n\r\npart",
	    27), 27);
	assert_false(session_mid_line(h.s));	/* text, not a command */
	/* The text's end stops the call; the command behind it is fed next. */
	assert_int_equal(session_feed(h.s, "\r\n.\r\nNOO", 8), 5);
	assert_int_equal(session_get_state(h.s), SS_ACCEPTED);
	assert_false(session_mid_line(h.s));
	assert_int_equal(session_feed(h.s, "NOO", 3), 3);
	assert_true(session_mid_line(h.s));
	assert_int_equal(session_feed(h.s, "P\r\nQUI", 6), 6);
	assert_true(session_mid_line(h.s));
	assert_int_equal(session_feed(h.s, "T\r\n", 3), 3);
	assert_true(session_closed(h.s));
	assert_false(session_mid_line(h.s));
	host_free(&h);
}

/* QUIT: 221, the close hook, and nothing more is read. */
static void
test_quit_closes(void **state)
{
	struct host h;

	host_init(&h, &cfg);
	assert_int_equal(session_feed(h.s, "QUIT\r\nNOOP\r\n", 12), 6);
	assert_true(session_closed(h.s));
	assert_int_equal(h.closes, 1);
	assert_int_equal(session_feed(h.s, "NOOP\r\n", 6), 0);
	assert_int_equal(buf_nul(&h.out), 0);
	assert_string_equal(h.out.data, R220 R221);
	/* An abort after QUIT changes nothing. */
	session_abort(h.s, "eof");
	assert_int_equal(h.text_aborts, 0);
	host_free(&h);
}

/* Text. */

static void
test_abort_during_text(void **state)
{
	static const char in[] = "USER alice\r\nPASS secret\r\nDATA\r\n"
	    "To: bob@example.com\r\n\r\npart";
	struct host h;

	host_init(&h, &cfg);
	h.auth_script = "o";
	assert_int_equal(host_feed(&h, in, sizeof(in) - 1, 0), sizeof(in) - 1);
	assert_int_equal(session_get_state(h.s), SS_TEXT);
	session_abort(h.s, "idle timeout");
	assert_int_equal(h.text_aborts, 1);
	assert_int_equal(h.store_calls, 0);
	assert_true(session_closed(h.s));
	assert_int_equal(session_feed(h.s, "\r\n.\r\n", 5), 0);
	assert_int_equal(h.store_calls, 0);
	host_free(&h);
}

/* Outside text, an abort drops nothing. */
static void
test_abort_elsewhere(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		struct host h;

		if (prefixes[i].state == SS_TEXT)
			continue;
		host_init(&h, &cfg);
		h.auth_script = prefixes[i].auth;
		h.store_script = prefixes[i].store;
		h.text_begin_fail = prefixes[i].text_begin_fail;
		host_feed(&h, prefixes[i].in, strlen(prefixes[i].in), 0);
		session_abort(h.s, "eof");
		assert_true(session_closed(h.s));
		/* A refused text was aborted once, when it was refused. */
		assert_int_equal(h.text_aborts, i == P_SPENT_550 ? 1 : 0);
		host_free(&h);
	}
}

/* Refused texts: 550, text_abort, and the session stays in step. */
static void
test_text_refused(void **state)
{
#define NUL_TEXT "To: bob@example.com\r\n\r\nh\0i\r\n.\r\n"
	static const struct {
		const char *label, *text;
		size_t len;
	} cases[] = {
		{ "no recipient", "Subject: x\r\n\r\nhi\r\n.\r\n", 0 },
		{ "bare LF", "To: bob@example.com\r\n\r\nhi\nthere\r\n.\r\n",
		  0 },
		{ "bare CR", "To: bob@example.com\r\n\r\nhi\rthere\r\n.\r\n",
		  0 },
		{ "NUL", NUL_TEXT, sizeof(NUL_TEXT) - 1 },
		{ "unparseable To", "To: <<\r\n\r\nhi\r\n.\r\n", 0 },
		{ "leading continuation",
		  " x\r\nTo: bob@example.com\r\n\r\n.\r\n", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run_opts o = { "o", "o", 0, NULL };
		struct outcome_rec r;
		struct host h;
		struct buf in = { 0 };

		buf_puts(&in, "USER alice\r\nPASS secret\r\nDATA\r\n");
		buf_append(&in, cases[i].text, cases[i].len ? cases[i].len :
		    strlen(cases[i].text));
		buf_puts(&in, "NOOP\r\nDATA\r\n");
		run_all(cases[i].label, &o, in.data, in.len,
		    R250 R250 R354 R550 R250 R503, &r, &h);
		assert_int_equal(h.store_calls, 0);
		assert_int_equal(h.text_aborts, 1);
		assert_int_equal(r.state, SS_SPENT);
		host_free(&h);
		buf_free(&r.out);
		buf_free(&in);
	}
}

/* Over max_message_size: the rest is read and dropped, then 550. */
static void
test_text_too_large(void **state)
{
	struct mpp_config small = cfg;
	struct run_opts o = { "o", "o", 0, &small };
	struct outcome_rec r;
	struct host h;
	struct buf in = { 0 };
	size_t i;

	small.max_message_size = 1024;
	buf_puts(&in, "USER alice\r\nPASS secret\r\nDATA\r\n"
	    "To: bob@example.com\r\n\r\n");
	for (i = 0; i < 100; i++)
		buf_puts(&in, "0123456789012345678901234567890123456789\r\n");
	buf_puts(&in, ".\r\nNOOP\r\n");
	run_all("too large", &o, in.data, in.len, R250 R250 R354 R550 R250, &r,
	    &h);
	assert_int_equal(h.store_calls, 0);
	assert_int_equal(h.text_aborts, 1);
	host_free(&h);
	buf_free(&r.out);
	buf_free(&in);
}

/* A large text is spilled; spilled and kept output make the message. */
static void
test_text_spilled(void **state)
{
	struct run_opts o = { "o", "o", 0, NULL };
	struct outcome_rec r;
	struct host h;
	struct buf in = { 0 };
	size_t i, lines = 3000;
	char line[80];

	buf_puts(&in, "USER alice\r\nPASS secret\r\nDATA\r\n"
	    "To: bob@example.com\r\nDate: x\r\nMessage-ID: <m@x>\r\n\r\n");
	for (i = 0; i < lines; i++) {
		snprintf(line, sizeof(line), "%s%06zu-----------------------"
		    "-------------------------------\r\n", i % 7 ? "" : ".", i);
		buf_puts(&in, line);
	}
	buf_puts(&in, ".\r\nQUIT\r\n");
	run_all("spilled", &o, in.data, in.len, R250 R250 R354 R250 R221, &r,
	    &h);
	assert_true(h.spills >= 2);
	assert_int_equal(buf_nul(&h.stored), 0);
	/* Unstuffed, LF ends, every line there once, in order. */
	{
		const char *p = h.stored.data;

		for (i = 0; i < lines; i++) {
			snprintf(line, sizeof(line), "\n%06zu-------------"
			    "-----------------------------------------\n", i);
			p = strstr(p, line);
			assert_non_null(p);
			p++;
		}
	}
	assert_null(strchr(h.stored.data, '\r'));
	host_free(&h);
	buf_free(&r.out);
	buf_free(&in);
}

/* A text_begin failure is a 451; message_new is not reached. */
static void
test_data_451(void **state)
{
	struct run_opts o = { "o", "", 1, NULL };
	struct outcome_rec r;
	static const char in[] = "USER alice\r\nPASS secret\r\nDATA\r\n"
	    "To: bob@example.com\r\n.\r\nNOOP\r\n";

	/* The text that follows is read as commands: 500s, then 451. */
	run_all("data 451", &o, in, sizeof(in) - 1,
	    R250 R250 R451 R500 R500 R451, &r, NULL);
	assert_int_equal(r.state, SS_SPENT);
	buf_free(&r.out);
}

static void
test_state_names(void **state)
{
	assert_string_equal(session_state_name(SS_START), "start");
	assert_string_equal(session_state_name(SS_USER_OK), "user_ok");
	assert_string_equal(session_state_name(SS_AUTHED), "authed");
	assert_string_equal(session_state_name(SS_TEXT), "text");
	assert_string_equal(session_state_name(SS_ACCEPTED), "accepted");
	assert_string_equal(session_state_name(SS_SPENT), "spent");
	assert_string_equal(session_state_name((enum session_state)99), "?");
	session_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_states),
		cmocka_unit_test(test_state_table),
		cmocka_unit_test(test_user_syntax),
		cmocka_unit_test(test_pass_to_auth),
		cmocka_unit_test(test_second_user),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_line_limit_lf),
		cmocka_unit_test(test_long_line_keeps_state),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_async_auth),
		cmocka_unit_test(test_async_store),
		cmocka_unit_test(test_quit_closes),
		cmocka_unit_test(test_abort_during_text),
		cmocka_unit_test(test_abort_elsewhere),
		cmocka_unit_test(test_text_refused),
		cmocka_unit_test(test_text_too_large),
		cmocka_unit_test(test_text_spilled),
		cmocka_unit_test(test_data_451),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_mid_line),
	};

	quiet_log();
	return cmocka_run_group_tests(tests, setup_cfg, NULL);
}
