/*
 * auth_ftp — the ftp backend ("ftp:HOST[:PORT]", auth_ftp_ops): check a
 * password by logging in to an FTP server (RFC 959) with USER and PASS,
 * then QUIT, as RFC 1204 §3.4 suggests.
 *
 * Replies are three-digit codes, possibly multi-line ("230-..." lines up
 * to the line that starts "230 "); only the code decides. 230 is the one
 * acceptance (after USER it means the server wants no password for this
 * user). 4xx, 421 included, means try later; a 5xx or 332 (an account is
 * also required, which we cannot give) is a rejection; any other code is
 * a protocol error, so temporary. Server text is quoted in why only from
 * the greeting and the reply to USER, before the password was sent.
 *
 * The names "anonymous" and "ftp" are refused before connecting: on a
 * server that offers anonymous FTP they log in with any password at all
 * (RFC 1635), which would let anyone post as them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "auth_net.h"
#include "auth_remote.h"
#include "log.h"
#include "util.h"

/* Lines in one multi-line reply before we call the server broken. */
#define FTP_REPLY_LINES_MAX 256

/* Is line "ddd" alone or followed by ' ' or '-'? Its code, or -1. */
static int
ftp_code(const char *line)
{
	if (line[0] < '1' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9')
		return -1;
	if (line[3] != '\0' && line[3] != ' ' && line[3] != '-')
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

/* Does line end a multi-line reply with this code ("230 ..." or "230")? */
static int
ftp_last_line(const char *line, const char *first)
{
	return strncmp(line, first, 3) == 0 &&
	    (line[3] == ' ' || line[3] == '\0');
}

/*
 * Read one whole reply; its code, or -1 with why set. first receives the
 * reply's first line (for the log, before credentials only).
 */
static int
ftp_reply(struct auth_net *n, char *first, size_t firstsz, char *why,
    size_t whysz)
{
	char line[AUTH_NET_LINE_MAX];
	int code, i;

	if (auth_net_read_line(n, first, firstsz) == -1)
		goto neterr;
	if ((code = ftp_code(first)) == -1) {
		snprintf(why, whysz, "protocol error: garbled reply");
		return -1;
	}
	if (first[3] != '-')
		return code;
	for (i = 0; i < FTP_REPLY_LINES_MAX; i++) {
		if (auth_net_read_line(n, line, sizeof(line)) == -1)
			goto neterr;
		if (ftp_last_line(line, first))
			return code;
	}
	snprintf(why, whysz, "protocol error: endless multi-line reply");
	return -1;
neterr:
	auth_net_why(n, errno, why, whysz);
	return -1;
}

/* "what: <escaped server line>" for the log. */
static void
ftp_quote(char *why, size_t whysz, const char *what, const char *line)
{
	char esc[128];

	log_escape(esc, sizeof(esc), line, strlen(line));
	snprintf(why, whysz, "%s: %s", what, esc);
}

/* Wait for 220, skipping 1xx ("120 ready in 5 minutes"). */
static enum outcome
ftp_greeting(struct auth_net *n, char *why, size_t whysz)
{
	char line[AUTH_NET_LINE_MAX];
	int code;

	do {
		if ((code = ftp_reply(n, line, sizeof(line), why, whysz)) == -1)
			return OUTCOME_TEMP;
	} while (code < 200);
	if (code == 220)
		return OUTCOME_OK;
	ftp_quote(why, whysz, code == 421 ? "service not available" :
	    "protocol error: unexpected greeting", line);
	return OUTCOME_TEMP;
}

/* Send one command and read its reply code; -1 with why set. */
static int
ftp_command(struct auth_net *n, const char *verb, const char *arg,
    char *line, size_t linesz, char *why, size_t whysz)
{
	if (auth_net_command(n, verb, arg) == -1) {
		auth_net_why(n, errno, why, whysz);
		return -1;
	}
	return ftp_reply(n, line, linesz, why, whysz);
}

/*
 * The outcome of a reply other than 230 or 331 after USER or PASS, with
 * why. line, the reply to USER (NULL after PASS), is quoted in why, its
 * code with it; after PASS only the code is named, and a plain 530 needs
 * no words at all.
 */
static enum outcome
ftp_refusal(int code, const char *verb, const char *line, char *why,
    size_t whysz)
{
	const char *what, *sp;
	enum outcome r;
	char esc[128];

	if (code == 332) {
		what = "account required";
		r = OUTCOME_PERM;
	} else if (code >= 400 && code < 500) {
		what = "temporary failure";
		r = OUTCOME_TEMP;
	} else if (code >= 500) {
		what = "";
		r = OUTCOME_PERM;
	} else {
		what = "protocol error: unexpected reply";
		r = OUTCOME_TEMP;
	}
	sp = what[0] != '\0' ? " " : "";
	if (line != NULL) {
		log_escape(esc, sizeof(esc), line, strlen(line));
		snprintf(why, whysz, "%s%sat %s: %s", what, sp, verb, esc);
	} else if (code == 530)
		why[0] = '\0';
	else if (code == 332)
		snprintf(why, whysz, "%s", what);
	else
		snprintf(why, whysz, "%s%s%d at %s", what, sp, code, verb);
	return r;
}

static enum outcome
ftp_login(struct auth_net *n, const char *user, const char *password,
    char *why, size_t whysz)
{
	char line[AUTH_NET_LINE_MAX];
	int code;

	code = ftp_command(n, "USER", user, line, sizeof(line), why, whysz);
	if (code == -1)
		return OUTCOME_TEMP;
	if (code == 230) {
		snprintf(why, whysz, "no password asked");
		return OUTCOME_OK;
	}
	if (code != 331)
		return ftp_refusal(code, "USER", line, why, whysz);
	code = ftp_command(n, "PASS", password, line, sizeof(line), why,
	    whysz);
	if (code == -1)
		return OUTCOME_TEMP;
	if (code == 230)
		return OUTCOME_OK;
	return ftp_refusal(code, "PASS", NULL, why, whysz);
}

/* Say goodbye; the answer is read for politeness, briefly, not checked. */
static void
ftp_quit(struct auth_net *n)
{
	char line[AUTH_NET_LINE_MAX];

	auth_net_shorten(n, 500);
	if (auth_net_command(n, "QUIT", NULL) == 0)
		(void)auth_net_read_line(n, line, sizeof(line));
}

/* Refused without asking the server; why set. */
static int
ftp_refuse_early(const char *user, const char *password, const char **why)
{
	if (!auth_net_clean(user) || !auth_net_clean(password)) {
		*why = "illegal character";
		return 1;
	}
	if (util_strcaseeq(user, "anonymous") || util_strcaseeq(user, "ftp")) {
		*why = "anonymous login";
		return 1;
	}
	return 0;
}

enum outcome
auth_ftp_check(const char *host, int port, const char *user,
    const char *password, int timeout_sec, char *why, size_t whysz)
{
	struct auth_net n;
	const char *early;
	enum outcome r;

	why[0] = '\0';
	if (ftp_refuse_early(user, password, &early)) {
		snprintf(why, whysz, "%s", early);
		return OUTCOME_PERM;
	}
	if (auth_net_open(&n, host, port, timeout_sec, why, whysz) == -1)
		return OUTCOME_TEMP;
	r = ftp_greeting(&n, why, whysz);
	if (r == OUTCOME_OK)
		r = ftp_login(&n, user, password, why, whysz);
	ftp_quit(&n);
	auth_net_close(&n);
	return r;
}

const struct auth_backend_ops auth_ftp_ops = { .login = auth_ftp_check };
