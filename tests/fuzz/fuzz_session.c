/*
 * Fuzz target for mppd/session.c: raw client bytes into one session.
 *
 * Input: byte 0 picks options (see OPT_*), bytes 1..4 are the chunk sizes
 * (1 + byte) the first run feeds in turn; the rest is what the client
 * sends. The session is run twice over the same bytes:
 *   A. in chunks, with the auth and store hooks answered later (after
 *      session_feed() stops for them), as the daemon does;
 *   B. one byte at a time, with the hooks answered inside the call.
 * Both must give the same replies, consume the same bytes and end in the
 * same state. Run B also checks that each byte gets the replies it should:
 * outside a text exactly one for a consumed LF and none for other bytes;
 * in a text one for the LF that ends it, none before.
 *
 * In both runs: every send is one whole reply line of session.h; 220 comes
 * first and once; nothing is sent after the close hook, which follows 221;
 * session_feed() never takes more than it was given, and takes less only
 * when it waits for a hook, has closed, or a text ended; the hooks come in order (no
 * store, spill or text_abort without a text in progress, no auth outside
 * user_ok); a stored message has recipients within the limit, begins with
 * our Received: header and holds no CR.
 *
 * Auth answers cycle ok / fail (and temporary failure with OPT_AUTH_TEMP);
 * checks use abort() so they hold with NDEBUG too.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "../../mppd/message.h"
#include "../../mppd/session.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define OPT_AUTH_FAIL_FIRST	0x01	/* the cycle starts with a failure */
#define OPT_AUTH_TEMP		0x02	/* cycle ok, fail, temp */
#define OPT_STORE_TEMP		0x04	/* every second store fails (451) */
#define OPT_SMALL_SIZE		0x08	/* max_message_size 1024 */
#define OPT_FEW_RCPTS		0x10	/* max_recipients 2 */
#define OPT_TEXT_BEGIN_FAIL	0x20	/* the second text_begin fails */

#define HEADER_BYTES 5

/*
 * Regression: a text once ended at LF "." CRLF (after a bare LF); only
 * CRLF.CRLF may end it (DESIGN.md), which the check below holds to.
 */

static const char *const reply_lines[] = {
	R220, R221, R250, R354, R451, R500, R501, R503, R530, R550
};
#define NREPLIES (sizeof(reply_lines) / sizeof(reply_lines[0]))

struct fhost {
	struct session *s;
	const struct mpp_config *cfg;
	unsigned opts;
	int later;			/* answer hooks after feed stops */
	struct buf replies;		/* one byte per reply: its index */
	int sends_now;			/* replies during the current feed */
	int closes, auth_calls, store_calls, text_begins, text_aborts;
	int auth_pending, store_pending;
	int text_open;			/* between text_begin and its end */
	struct buf spilled;
};

static enum outcome
auth_answer(const struct fhost *h)
{
	int n = h->auth_calls - 1 + ((h->opts & OPT_AUTH_FAIL_FIRST) ? 1 : 0);

	if (h->opts & OPT_AUTH_TEMP) {
		n %= 3;
		return n == 0 ? OUTCOME_OK : n == 1 ? OUTCOME_PERM :
		    OUTCOME_TEMP;
	}
	return n % 2 == 0 ? OUTCOME_OK : OUTCOME_PERM;
}

static enum outcome
store_answer(const struct fhost *h)
{
	if ((h->opts & OPT_STORE_TEMP) && h->store_calls % 2 == 0)
		return OUTCOME_TEMP;
	return OUTCOME_OK;
}

static void
h_send(void *ctx, const char *data, size_t len)
{
	struct fhost *h = ctx;
	size_t i;
	unsigned char idx;

	CHECK(h->closes == 0);
	for (i = 0; i < NREPLIES; i++)
		if (strlen(reply_lines[i]) == len &&
		    memcmp(reply_lines[i], data, len) == 0)
			break;
	CHECK(i < NREPLIES);
	CHECK((i == 0) == (h->replies.len == 0));	/* 220 first, once */
	idx = (unsigned char)i;
	CHECK(buf_append(&h->replies, &idx, 1) == 0);
	h->sends_now++;
}

/* A USER name the session let through: 1..64 bytes, no space or control. */
static void
check_user(const char *user)
{
	size_t i, n = strlen(user);

	CHECK(n > 0 && n <= SESSION_USER_MAX && user[0] != '-');
	for (i = 0; i < n; i++)
		CHECK((unsigned char)user[i] > 0x20 &&
		    (unsigned char)user[i] < 0x7f);
}

static void
h_auth(void *ctx, const char *user, const char *password)
{
	struct fhost *h = ctx;
	size_t i, n = strlen(password);

	CHECK(!h->auth_pending && !h->store_pending && !h->text_open);
	CHECK(session_get_state(h->s) == SS_USER_OK);
	check_user(user);
	CHECK(n > 0 && n < SESSION_LINE_MAX);
	for (i = 0; i < n; i++)
		CHECK((unsigned char)password[i] >= 0x20 &&
		    password[i] != 0x7f);
	h->auth_calls++;
	if (h->later)
		h->auth_pending = 1;
	else
		session_auth_done(h->s, auth_answer(h));
}

static int
h_text_begin(void *ctx, char *qid, size_t qidsz)
{
	struct fhost *h = ctx;
	int n;

	CHECK(!h->text_open && !h->auth_pending && !h->store_pending);
	CHECK(session_get_state(h->s) == SS_AUTHED ||
	    session_get_state(h->s) == SS_ACCEPTED);
	h->text_begins++;
	if ((h->opts & OPT_TEXT_BEGIN_FAIL) && h->text_begins == 2)
		return -1;
	n = snprintf(qid, qidsz, "1.M1P1Q%d", h->text_begins);
	CHECK(n > 0 && (size_t)n < qidsz);
	h->text_open = 1;
	buf_free(&h->spilled);
	return 0;
}

static int
h_spill(void *ctx, const char *data, size_t len)
{
	struct fhost *h = ctx;

	CHECK(h->text_open && !h->store_pending);
	CHECK(len >= MESSAGE_SPILL_AT);
	return buf_append(&h->spilled, data, len);
}

/* A stored message: recipients within bounds, our trace first, no CR. */
static void
check_stored(struct fhost *h, struct message *m)
{
	static const char trace[] = "Received: from [192.0.2.7] (user ";
	struct buf *rest = message_output(m);
	size_t i, n = message_rcpt_count(m);
	const char *first;

	CHECK(n >= 1 && n <= (size_t)h->cfg->max_recipients);
	for (i = 0; i < n; i++) {
		const char *r = message_rcpt(m, i);

		CHECK(r != NULL && strlen(r) < MESSAGE_ADDR_MAX);
		CHECK(strchr(r, '@') != NULL && strpbrk(r, "\r\n") == NULL);
		/* A leading '-' is valid here: the sendmail transport's
		   "--" keeps it off the option list (DESIGN.md). */
	}
	CHECK(message_size(m) == h->spilled.len + rest->len);
	first = h->spilled.len > 0 ? h->spilled.data : rest->data;
	CHECK(message_size(m) > sizeof(trace));
	CHECK(memcmp(first, trace, sizeof(trace) - 1) == 0);
	CHECK(h->spilled.len == 0 ||
	    memchr(h->spilled.data, '\r', h->spilled.len) == NULL);
	CHECK(rest->len == 0 || memchr(rest->data, '\r', rest->len) == NULL);
}

static void
h_store(void *ctx, struct message *m)
{
	struct fhost *h = ctx;

	CHECK(h->text_open && !h->auth_pending && !h->store_pending);
	CHECK(session_get_state(h->s) == SS_TEXT);
	check_stored(h, m);
	h->text_open = 0;
	h->store_calls++;
	if (h->later)
		h->store_pending = 1;
	else
		session_store_done(h->s, store_answer(h));
}

static void
h_text_abort(void *ctx)
{
	struct fhost *h = ctx;

	CHECK(h->text_open);
	h->text_open = 0;
	h->text_aborts++;
	buf_free(&h->spilled);
}

static void
h_close(void *ctx)
{
	struct fhost *h = ctx;

	CHECK(h->closes == 0);
	CHECK(h->replies.len > 0 &&
	    h->replies.data[h->replies.len - 1] == 1);	/* after 221 */
	h->closes++;
}

static const struct session_hooks hooks = {
	h_send, h_auth, h_text_begin, h_spill, h_store, h_text_abort, h_close
};

/* Answer what the session waits for; 0 when it waits for nothing. */
static int
complete(struct fhost *h)
{
	if (h->auth_pending) {
		CHECK(session_waiting(h->s));
		h->auth_pending = 0;
		session_auth_done(h->s, auth_answer(h));
		return 1;
	}
	if (h->store_pending) {
		CHECK(session_waiting(h->s));
		h->store_pending = 0;
		session_store_done(h->s, store_answer(h));
		return 1;
	}
	CHECK(!session_waiting(h->s));
	return 0;
}

/* What a run leaves, for comparing the two. */
struct result {
	struct buf replies;
	size_t consumed;
	enum session_state state;
	int closed, text_aborts, store_calls;
};

static void
host_start(struct fhost *h, const struct mpp_config *cfg, unsigned opts,
    int later)
{
	memset(h, 0, sizeof(*h));
	h->cfg = cfg;
	h->opts = opts;
	h->later = later;
	h->s = session_new(&hooks, h, cfg, "192.0.2.7", "fuzz");
	CHECK(h->s != NULL);
	session_start(h->s);
	CHECK(h->replies.len == 1);
}

/* End the connection as the daemon does at EOF, and keep the result. */
static void
host_end(struct fhost *h, size_t consumed, struct result *r)
{
	int open_text = h->text_open && !session_closed(h->s);

	r->consumed = consumed;
	r->state = session_get_state(h->s);
	r->closed = session_closed(h->s);
	session_abort(h->s, "eof");
	CHECK(session_closed(h->s));
	if (open_text)
		CHECK(h->text_aborts > 0 && !h->text_open);
	r->text_aborts = h->text_aborts;
	r->store_calls = h->store_calls;
	r->replies = h->replies;
	CHECK(session_feed(h->s, "NOOP\r\n", 6) == 0);
	session_free(h->s);
	buf_free(&h->spilled);
}

/* Run A: chunks of the given sizes, hooks answered later. */
static void
run_chunks(const struct mpp_config *cfg, unsigned opts, const uint8_t *sizes,
    const char *in, size_t len, struct result *r)
{
	struct fhost h;
	size_t off = 0, n, used, k = 0;

	host_start(&h, cfg, opts, 1);
	while (off < len && !session_closed(h.s)) {
		n = 1 + (size_t)sizes[k++ % 4];
		if (n > len - off)
			n = len - off;
		used = session_feed(h.s, in + off, n);
		CHECK(used <= n);
		off += used;
		if (used < n && session_waiting(h.s))
			CHECK(complete(&h) == 1);
		else if (used < n && !session_closed(h.s))
			CHECK(used > 0 &&
			    session_get_state(h.s) != SS_TEXT);	/* its end */
	}
	while (!session_closed(h.s) && complete(&h))
		continue;
	host_end(&h, off, r);
}

/* Run B: one byte at a time, hooks answered at once; replies per byte. */
static void
run_bytes(const struct mpp_config *cfg, unsigned opts, const char *in,
    size_t len, struct result *r)
{
	struct fhost h;
	enum session_state before, after;
	size_t off, used, text_start = 0;

	host_start(&h, cfg, opts, 0);
	for (off = 0; off < len && !session_closed(h.s); off++) {
		before = session_get_state(h.s);
		if (before != SS_TEXT)
			text_start = off + 1;	/* if this byte starts one */
		h.sends_now = 0;
		used = session_feed(h.s, in + off, 1);
		CHECK(used == 1);	/* hooks answered at once: no wait */
		CHECK(!session_waiting(h.s));
		after = session_get_state(h.s);
		if (before != SS_TEXT)
			CHECK(h.sends_now == (in[off] == '\n'));
		else if (after != SS_TEXT) {
			CHECK(h.sends_now == 1 && in[off] == '\n');
			/* Only CRLF.CRLF ends a text (or "." CRLF first). */
			CHECK((off + 1 - text_start == 3 &&
				    memcmp(in + text_start, ".\r\n", 3) == 0) ||
				    (off + 1 - text_start >= 5 &&
				    memcmp(in + off - 4, "\r\n.\r\n", 5) == 0));
		} else
			CHECK(h.sends_now == 0);
	}
	host_end(&h, off, r);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char *args[256];
	static char quiet[] = "-close_fd_mask=2";
	int i;

	/*
	 * The session logs a line per event to stderr, millions under
	 * libFuzzer. Close the target's stderr (libFuzzer and the
	 * sanitizers keep theirs) unless -close_fd_mask was given: to see
	 * a failed CHECK's message when replaying a crash, give
	 * -close_fd_mask=0 (or use build/fuzz-replay/fuzz_session).
	 */
	for (i = 1; i < *argc; i++)
		if (strncmp((*argv)[i], "-close_fd_mask", 14) == 0)
			return 0;
	if (*argc + 2 > (int)(sizeof(args) / sizeof(args[0])))
		return 0;
	args[0] = (*argv)[0];
	args[1] = quiet;
	for (i = 1; i < *argc; i++)
		args[i + 1] = (*argv)[i];
	args[*argc + 1] = NULL;
	*argc += 1;
	*argv = args;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mpp_config base;
	static int have_base;
	static const uint8_t no_sizes[4] = { 0, 0, 0, 0 };
	struct mpp_config cfg;
	struct result a, b;
	const uint8_t *sizes = no_sizes;
	const char *in = "";
	size_t len = 0;
	unsigned opts = 0;
	char *copy;

	if (!have_base) {
		config_defaults(&base);
		snprintf(base.hostname, sizeof(base.hostname), "mpp.test");
		snprintf(base.sender_domain, sizeof(base.sender_domain),
		    "example.org");
		have_base = 1;
	}
	if (size > 0)
		opts = data[0];
	if (size >= HEADER_BYTES) {
		sizes = data + 1;
		in = (const char *)data + HEADER_BYTES;
		len = size - HEADER_BYTES;
	}
	cfg = base;
	if (opts & OPT_SMALL_SIZE)
		cfg.max_message_size = 1024;
	if (opts & OPT_FEW_RCPTS)
		cfg.max_recipients = 2;

	/* An exact copy, so ASan sees a read past the client's bytes. */
	copy = malloc(len > 0 ? len : 1);
	CHECK(copy != NULL);
	memcpy(copy, in, len);
	run_chunks(&cfg, opts, sizes, copy, len, &a);
	run_bytes(&cfg, opts, copy, len, &b);
	free(copy);

	CHECK(a.replies.len == b.replies.len);
	CHECK(memcmp(a.replies.data, b.replies.data, a.replies.len) == 0);
	CHECK(a.consumed == b.consumed);
	CHECK(a.state == b.state && a.closed == b.closed);
	CHECK(a.text_aborts == b.text_aborts && a.store_calls == b.store_calls);
	CHECK(a.consumed == len || a.closed);
	buf_free(&a.replies);
	buf_free(&b.replies);
	return 0;
}
