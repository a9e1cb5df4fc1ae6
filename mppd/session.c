/*
 * session — the protocol core. Commands are read into a bounded line
 * buffer; a line too long is answered 500 once its LF arrives. The command
 * table says where each verb is legal, so the dispatcher answers 500, 501
 * and 503 itself and a handler only acts. Every state change goes through
 * session_set_state(), which logs it at debug level.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <bsd/string.h>

#include "fault.h"
#include "log.h"
#include "message.h"
#include "session.h"
#include "text.h"

struct session {
	const struct session_hooks *hooks;
	void *host;
	const struct mpp_config *cfg;
	char client_addr[64];
	char id[32];
	enum session_state state;
	int waiting;			/* for an auth or store answer */
	int closed;			/* QUIT answered */
	int had_error;			/* a 451 was given: NOOP says 451 */
	char line[SESSION_LINE_MAX];
	size_t line_len;
	int line_overflow;		/* skipping to LF of a long line */
	char user[SESSION_USER_MAX + 1];
	char sender[SESSION_USER_MAX + CONFIG_STR_MAX + 2];
	char qid[SESSION_QID_MAX];
	struct text_reader text;
	struct message *msg;
	const char *pass_refusal;	/* PASS gets 530 unchecked: why */
};

typedef void (*cmd_fn)(struct session *, const char *, size_t);

#define ST(x) (1u << (x))
#define CMD_NOARG 0x1		/* an argument is a 501 */

struct command {
	const char *verb;
	cmd_fn handler;
	unsigned states;	/* where the verb is legal */
	unsigned flags;
};

static void cmd_user(struct session *, const char *, size_t);
static void cmd_pass(struct session *, const char *, size_t);
static void cmd_data(struct session *, const char *, size_t);
static void cmd_noop(struct session *, const char *, size_t);
static void cmd_quit(struct session *, const char *, size_t);

#define ST_ANY (ST(SS_START) | ST(SS_USER_OK) | ST(SS_AUTHED) | \
    ST(SS_ACCEPTED) | ST(SS_SPENT))

static const struct command commands[] = {
	{ "USER", cmd_user, ST(SS_START) | ST(SS_ACCEPTED), 0 },
	{ "PASS", cmd_pass, ST(SS_USER_OK), 0 },
	{ "DATA", cmd_data, ST(SS_AUTHED) | ST(SS_ACCEPTED), CMD_NOARG },
	{ "NOOP", cmd_noop, ST_ANY, CMD_NOARG },
	{ "QUIT", cmd_quit, ST_ANY, 0 },
};

static const char *const state_names[] = {
	"start", "user_ok", "authed", "text", "accepted", "spent"
};

const char *
session_state_name(enum session_state st)
{
	return (unsigned)st < sizeof(state_names) / sizeof(state_names[0]) ?
	    state_names[st] : "?";
}

static void
session_set_state(struct session *s, enum session_state st)
{
	log_debug("session=%s state %s -> %s", s->id,
	    session_state_name(s->state), session_state_name(st));
	s->state = st;
}

static void
reply(struct session *s, const char *text)
{
	s->hooks->send(s->host, text, strlen(text));
}

/* Answer 451 and end the chances of this session. */
static void
reply_451(struct session *s)
{
	s->had_error = 1;
	reply(s, R451);
	session_set_state(s, SS_SPENT);
}

struct session *
session_new(const struct session_hooks *hooks, void *host,
    const struct mpp_config *cfg, const char *client_addr, const char *id)
{
	struct session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->hooks = hooks;
	s->host = host;
	s->cfg = cfg;
	strlcpy(s->client_addr, client_addr, sizeof(s->client_addr));
	strlcpy(s->id, id, sizeof(s->id));
	s->state = SS_START;
	return s;
}

void
session_refuse_pass(struct session *s, const char *why)
{
	s->pass_refusal = why;
}

void
session_start(struct session *s)
{
	reply(s, R220);
}

/* USER argument: 1..64 printable bytes, nothing an address cannot hold. */
static int
user_valid(const char *arg, size_t len)
{
	const char *at;
	size_t i;

	if (len == 0 || len > SESSION_USER_MAX || arg[0] == '-')
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)arg[i] <= 0x20 ||
		    (unsigned char)arg[i] >= 0x7f ||
		    strchr("<>()[]\\,;:\"", arg[i]) != NULL)
			return 0;
	at = memchr(arg, '@', len);
	if (at == NULL)
		return 1;
	return at != arg && at != arg + len - 1 &&
	    memchr(at + 1, '@', (size_t)(arg + len - at - 1)) == NULL;
}

static void
cmd_user(struct session *s, const char *arg, size_t len)
{
	if (!user_valid(arg, len)) {
		reply(s, R501);
		session_set_state(s, SS_START);
		return;
	}
	memcpy(s->user, arg, len);
	s->user[len] = '\0';
	if (config_user_address(s->cfg, s->user, s->sender,
	    sizeof(s->sender)) == -1) {
		reply_451(s);
		return;
	}
	reply(s, R250);
	session_set_state(s, SS_USER_OK);
}

static int
pass_valid(const char *arg, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)arg[i] < 0x20 || arg[i] == 0x7f)
			return 0;
	return 1;
}

static void
cmd_pass(struct session *s, const char *arg, size_t len)
{
	char pass[SESSION_LINE_MAX];

	if (!pass_valid(arg, len)) {
		reply(s, R501);
		return;
	}
	if (s->pass_refusal != NULL) {
		log_info("session=%s client=[%s] auth=refused reason=\"%s\"",
		    s->id, s->client_addr, s->pass_refusal);
		reply(s, R530);
		session_set_state(s, SS_SPENT);
		return;
	}
	memcpy(pass, arg, len);
	pass[len] = '\0';
	s->waiting = 1;
	s->hooks->auth(s->host, s->user, pass);
	explicit_bzero(pass, sizeof(pass));
}

void
session_auth_done(struct session *s, enum outcome result)
{
	char user[SESSION_USER_MAX * 4 + 1];

	assert(s->waiting && s->state == SS_USER_OK);
	s->waiting = 0;
	log_escape(user, sizeof(user), s->user, strlen(s->user));
	log_info("session=%s client=[%s] user=%s auth=%s", s->id,
	    s->client_addr, user, result == OUTCOME_OK ? "ok" :
	    result == OUTCOME_PERM ? "failed" : "tempfail");
	switch (result) {
	case OUTCOME_OK:
		reply(s, R250);
		session_set_state(s, SS_AUTHED);
		break;
	case OUTCOME_PERM:
		reply(s, R530);
		session_set_state(s, SS_SPENT);
		break;
	case OUTCOME_TEMP:
		reply_451(s);
		break;
	}
}

static int
text_emit(void *ctx, const char *data, size_t len)
{
	struct session *s = ctx;

	return message_append(s->msg, data, len);
}

static void
cmd_data(struct session *s, const char *arg, size_t len)
{
	struct message_params p;

	if (s->hooks->text_begin(s->host, s->qid, sizeof(s->qid)) == -1) {
		reply_451(s);
		return;
	}
	p.queue_id = s->qid;
	p.client_addr = s->client_addr;
	p.hostname = s->cfg->hostname;
	p.auth_user = s->user;
	p.sender = s->sender;
	p.sender_domain = s->cfg->sender_domain;
	p.now = time(NULL);
	p.max_size = (unsigned long long)s->cfg->max_message_size;
	p.max_rcpts = (size_t)s->cfg->max_recipients;
	if ((s->msg = message_new(&p, s->hooks->spill, s->host)) == NULL) {
		s->hooks->text_abort(s->host);
		reply_451(s);
		return;
	}
	text_init(&s->text);
	reply(s, R354);
	session_set_state(s, SS_TEXT);
}

static void
cmd_noop(struct session *s, const char *arg, size_t len)
{
	reply(s, s->had_error ? R451 : R250);
}

static void
cmd_quit(struct session *s, const char *arg, size_t len)
{
	reply(s, R221);
	s->closed = 1;
	log_info("session=%s client=[%s] end=quit", s->id, s->client_addr);
	s->hooks->close(s->host);
}

static const struct command *
command_find(const char *verb, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strlen(commands[i].verb) == len &&
		    strncasecmp(commands[i].verb, verb, len) == 0)
			return &commands[i];
	return NULL;
}

/* One command line, without its line end. */
static void
session_command(struct session *s, const char *line, size_t len)
{
	const struct command *c;
	const char *sp = memchr(line, ' ', len);
	size_t vlen = sp != NULL ? (size_t)(sp - line) : len;
	const char *arg = sp != NULL ? sp + 1 : line + len;
	size_t alen = len - (size_t)(arg - line);

	if ((c = command_find(line, vlen)) == NULL) {
		reply(s, R500);
		return;
	}
	if (!(c->states & ST(s->state))) {
		reply(s, R503);
		return;
	}
	if (c->flags & CMD_NOARG) {
		while (alen > 0 && arg[alen - 1] == ' ')
			alen--;
		if (alen > 0) {
			reply(s, R501);
			return;
		}
	}
	c->handler(s, arg, alen);
}

/* Read command bytes up to and including one LF. */
static size_t
feed_command(struct session *s, const char *data, size_t len)
{
	const char *nl = memchr(data, '\n', len);
	size_t n = nl != NULL ? (size_t)(nl - data) + 1 : len;

	if (s->line_overflow || s->line_len + n > SESSION_LINE_MAX)
		s->line_overflow = 1;
	else {
		memcpy(s->line + s->line_len, data, n);
		s->line_len += n;
	}
	if (nl == NULL)
		return n;
	if (s->line_overflow)
		reply(s, R500);
	else {
		size_t l = s->line_len - 1;		/* drop LF */

		if (l > 0 && s->line[l - 1] == '\r')
			l--;
		session_command(s, s->line, l);
	}
	s->line_len = 0;
	s->line_overflow = 0;
	explicit_bzero(s->line, sizeof(s->line));
	return n;
}

static void
log_message(struct session *s, const char *result, const char *reason)
{
	char user[SESSION_USER_MAX * 4 + 1];

	log_escape(user, sizeof(user), s->user, strlen(s->user));
	log_info("id=%s session=%s client=[%s] user=%s result=%s size=%llu "
	    "rcpts=%zu%s%s%s", s->qid, s->id, s->client_addr, user, result,
	    message_size(s->msg), message_rcpt_count(s->msg),
	    *reason ? " reason=\"" : "", reason, *reason ? "\"" : "");
}

/* The end marker was read: judge the message and store or refuse it. */
static void
text_done(struct session *s)
{
	switch (message_finish(s->msg, s->text.bare_crlf, s->text.nul)) {
	case MSG_OK:
		s->waiting = 1;
		s->hooks->store(s->host, s->msg);
		return;
	case MSG_REJECT:
		log_message(s, "rejected", message_reason(s->msg));
		s->hooks->text_abort(s->host);
		reply(s, R550);
		session_set_state(s, SS_SPENT);
		break;
	case MSG_TEMPFAIL:
		log_message(s, "tempfail", message_reason(s->msg));
		s->hooks->text_abort(s->host);
		reply_451(s);
		break;
	}
	message_free(s->msg);
	s->msg = NULL;
}

void
session_store_done(struct session *s, enum outcome result)
{
	assert(s->waiting && s->state == SS_TEXT && s->msg != NULL);
	s->waiting = 0;
	if (result == OUTCOME_OK) {
		FAULT_POINT("before-250");
		log_message(s, "accepted", "");
		reply(s, R250);
		session_set_state(s, SS_ACCEPTED);
	} else {
		log_message(s, "tempfail", "could not store");
		reply_451(s);
	}
	message_free(s->msg);
	s->msg = NULL;
}

static size_t
feed_text(struct session *s, const char *data, size_t len)
{
	long n = text_feed(&s->text, data, len, text_emit, s);

	assert(n >= 0);		/* text_emit never stops the reader */
	if (s->text.pos == TP_DONE)
		text_done(s);
	return (size_t)n;
}

size_t
session_feed(struct session *s, const char *data, size_t len)
{
	size_t used = 0;

	while (used < len && !s->waiting && !s->closed) {
		if (s->state == SS_TEXT) {
			/* All of it, or up to the text's end: stop there. */
			used += feed_text(s, data + used, len - used);
			break;
		}
		used += feed_command(s, data + used, len - used);
	}
	return used;
}

void
session_abort(struct session *s, const char *reason)
{
	if (s->closed)
		return;
	s->closed = 1;
	if (s->state == SS_TEXT && s->msg != NULL && !s->waiting) {
		log_info("id=%s session=%s client=[%s] result=abandoned "
		    "reason=\"%s\"", s->qid, s->id, s->client_addr, reason);
		s->hooks->text_abort(s->host);
	}
	log_info("session=%s client=[%s] end=%s", s->id, s->client_addr,
	    reason);
}

int
session_waiting(const struct session *s)
{
	return s->waiting;
}

int
session_closed(const struct session *s)
{
	return s->closed;
}

int
session_mid_line(const struct session *s)
{
	return s->state != SS_TEXT && !s->closed &&
	    (s->line_len > 0 || s->line_overflow);
}

enum session_state
session_get_state(const struct session *s)
{
	return s->state;
}

void
session_free(struct session *s)
{
	if (s == NULL)
		return;
	message_free(s->msg);
	explicit_bzero(s, sizeof(*s));
	free(s);
}
