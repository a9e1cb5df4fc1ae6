/*
 * auth_pop3 — the pop3 backend ("pop3:HOST[:PORT]", auth_pop3_ops): check
 * a password by logging in to a POP3 server (RFC 1939) with USER and PASS,
 * then QUIT, as RFC 1204 §3.4 suggests.
 *
 * An -ERR to USER or PASS is a rejection, with two exceptions from the
 * extended response codes (RFC 2449, RFC 3206), which servers such as
 * Dovecot send: [SYS/TEMP] says the server could not check the password
 * now (temporary), and [IN-USE] or [LOGIN-DELAY] after PASS say the
 * password was right but the maildrop cannot be opened at the moment —
 * for us, who never open it, an acceptance. Anything else the server says
 * that is not +OK or -ERR is a protocol error, i.e. temporary.
 *
 * Server text is quoted in why only for the greeting and the answer to
 * USER, before the password has been sent, so no echo of it can ever
 * reach the log.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "auth_net.h"
#include "auth_remote.h"
#include "log.h"

enum pop3_reply { POP3_OK, POP3_ERR, POP3_BAD };

/* Classify a status line: "+OK", "-ERR", optionally followed by text. */
static enum pop3_reply
pop3_classify(const char *line)
{
	if (strncmp(line, "+OK", 3) == 0 &&
	    (line[3] == '\0' || line[3] == ' '))
		return POP3_OK;
	if (strncmp(line, "-ERR", 4) == 0 &&
	    (line[4] == '\0' || line[4] == ' '))
		return POP3_ERR;
	return POP3_BAD;
}

/* Does an -ERR line carry the response code code ("[SYS/TEMP]")? */
static int
pop3_has_code(const char *line, const char *code)
{
	return line[4] == ' ' && strncmp(line + 5, code, strlen(code)) == 0;
}

/*
 * Read one status line into line. -1 with why set when it could not be
 * read or is neither +OK nor -ERR.
 */
static int
pop3_reply(struct auth_net *n, char *line, size_t linesz,
    enum pop3_reply *kind, char *why, size_t whysz)
{
	if (auth_net_read_line(n, line, linesz) == -1) {
		auth_net_why(n, errno, why, whysz);
		return -1;
	}
	if ((*kind = pop3_classify(line)) == POP3_BAD) {
		snprintf(why, whysz, "protocol error: garbled reply");
		return -1;
	}
	return 0;
}

/* "what: <escaped server line>" for the log. */
static void
pop3_quote(char *why, size_t whysz, const char *what, const char *line)
{
	char esc[128];

	log_escape(esc, sizeof(esc), line, strlen(line));
	snprintf(why, whysz, "%s: %s", what, esc);
}

static enum outcome
pop3_greeting(struct auth_net *n, char *why, size_t whysz)
{
	char line[AUTH_NET_LINE_MAX];
	enum pop3_reply k;

	if (pop3_reply(n, line, sizeof(line), &k, why, whysz) == -1)
		return OUTCOME_TEMP;
	if (k != POP3_OK) {
		pop3_quote(why, whysz, "protocol error: unexpected greeting",
		    line);
		return OUTCOME_TEMP;
	}
	return OUTCOME_OK;
}

static enum outcome
pop3_user(struct auth_net *n, const char *user, char *why, size_t whysz)
{
	char line[AUTH_NET_LINE_MAX];
	enum pop3_reply k;

	if (auth_net_command(n, "USER", user) == -1) {
		auth_net_why(n, errno, why, whysz);
		return OUTCOME_TEMP;
	}
	if (pop3_reply(n, line, sizeof(line), &k, why, whysz) == -1)
		return OUTCOME_TEMP;
	if (k == POP3_OK)
		return OUTCOME_OK;
	if (pop3_has_code(line, "[SYS/TEMP]")) {
		pop3_quote(why, whysz, "temporary failure at USER", line);
		return OUTCOME_TEMP;
	}
	pop3_quote(why, whysz, "at USER", line);
	return OUTCOME_PERM;
}

static enum outcome
pop3_pass(struct auth_net *n, const char *password, char *why,
    size_t whysz)
{
	char line[AUTH_NET_LINE_MAX];
	enum pop3_reply k;

	if (auth_net_command(n, "PASS", password) == -1) {
		auth_net_why(n, errno, why, whysz);
		return OUTCOME_TEMP;
	}
	if (pop3_reply(n, line, sizeof(line), &k, why, whysz) == -1)
		return OUTCOME_TEMP;
	if (k == POP3_OK)
		return OUTCOME_OK;
	if (pop3_has_code(line, "[IN-USE]") ||
	    pop3_has_code(line, "[LOGIN-DELAY]")) {
		snprintf(why, whysz, "maildrop busy");
		return OUTCOME_OK;
	}
	if (pop3_has_code(line, "[SYS/TEMP]")) {
		snprintf(why, whysz, "temporary failure at PASS");
		return OUTCOME_TEMP;
	}
	return OUTCOME_PERM;
}

/* Say goodbye; the answer is read for politeness, briefly, not checked. */
static void
pop3_quit(struct auth_net *n)
{
	char line[AUTH_NET_LINE_MAX];

	auth_net_shorten(n, 500);
	if (auth_net_command(n, "QUIT", NULL) == 0)
		(void)auth_net_read_line(n, line, sizeof(line));
}

enum outcome
auth_pop3_check(const char *host, int port, const char *user,
    const char *password, int timeout_sec, char *why, size_t whysz)
{
	struct auth_net n;
	enum outcome r;

	why[0] = '\0';
	if (!auth_net_clean(user) || !auth_net_clean(password)) {
		snprintf(why, whysz, "illegal character");
		return OUTCOME_PERM;
	}
	if (auth_net_open(&n, host, port, timeout_sec, why, whysz) == -1)
		return OUTCOME_TEMP;
	r = pop3_greeting(&n, why, whysz);
	if (r == OUTCOME_OK)
		r = pop3_user(&n, user, why, whysz);
	if (r == OUTCOME_OK)
		r = pop3_pass(&n, password, why, whysz);
	pop3_quit(&n);
	auth_net_close(&n);
	return r;
}

const struct auth_backend_ops auth_pop3_ops = { .login = auth_pop3_check };
