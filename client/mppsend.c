/*
 * mppsend — post mail to an MPP (RFC 1204) server; also serves mail programs
 * as their sendmail.
 *
 * This file holds only the command line, the settings (~/.mpprc, then the
 * environment, then flags) and the order of a run; the dialogue itself is
 * mpp_client's, and TLS mpp_tls's. Exit codes are sysexits(3), as a mail program expects from
 * sendmail: see mppsend(1).
 *
 * Operands are files to post, one message each, unless mppsend runs in
 * sendmail mode (a sendmail flag was given, the operands follow "--", or the
 * program is called "sendmail"): then they are recipients, which MPP has no
 * use for (the server takes the recipients from the headers), and the
 * message is read from standard input. A recipient operand is never opened
 * as a file, so a mail program can never make mppsend post a stray file.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <bsd/readpassphrase.h>
#include <bsd/string.h>

#include "mpp_client.h"
#include "mpp_rc.h"
#include "mpp_rcpt.h"
#include "mpp_tls.h"

#define DEFAULT_SERVER	"localhost"
#define OPTSTRING	"+:s:u:P:T:vtio:f:F:r:B:N:R:b:"
#define SENDMAIL_FLAGS	"tiofFrBNRb"

/* Long options have no short form: their values are above any char. */
enum { OPT_TLS = 256, OPT_NO_TLS, OPT_CA };

static const struct option long_options[] = {
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "no-tls", no_argument, NULL, OPT_NO_TLS },
	{ "ca", required_argument, NULL, OPT_CA },
	{ NULL, 0, NULL, 0 }
};

/* A sendmail flag that was accepted and has no effect. */
struct ignored {
	char flag;
	const char *arg;
};

struct opts {
	const char *server, *user, *passfile;
	const char *ca;		/* --ca FILE, or NULL */
	int tls;		/* --tls 1, --no-tls 0, neither -1 */
	int timeout;		/* 0: not given */
	int verbose;
	int sendmail_mode;	/* operands are recipients */
	int headers_only;	/* -t */
	struct ignored *ign;
	size_t nign;
	char **args;		/* files, or recipients in sendmail mode */
	int nargs;
};

struct settings {
	char host[MPP_CLIENT_HOST_MAX];
	char port[MPP_CLIENT_PORT_MAX];
	char user[MPP_RC_VALUE_MAX];
	char password[MPP_RC_VALUE_MAX];
	int timeout;
	struct mpp_tls_ctx *tls_ctx;	/* NULL: plain MPP */
};

/* What one run needs; large, so it lives on the heap. */
struct run {
	struct mpp_client client;
	struct mpp_rcpt rcpt;
	const struct opts *o;
	int posted;
};

static void warnx_(const char *, ...) __attribute__((format(printf, 1, 2)));

static void
warnx_(const char *fmt, ...)
{
	va_list ap;

	fputs("mppsend: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int
usage(void)
{
	fputs("usage: mppsend [-itv] [--tls [--ca file] | --no-tls] "
	    "[-s host[:port]] [-u user]\n"
	    "               [-P passfile] [-T seconds] [file ...]\n"
	    "       mppsend [-itv] [--tls [--ca file] | --no-tls] "
	    "[-s host[:port]] [-u user]\n"
	    "               [-P passfile] [-T seconds] [-B type] [-F name] "
	    "[-f addr]\n"
	    "               [-o option] [--] [recipient ...]\n", stderr);
	return EX_USAGE;
}

/* Is the program called "sendmail" (a symlink in place of the MTA)? */
static int
called_sendmail(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	return strcmp(base != NULL ? base + 1 : argv0, "sendmail") == 0;
}

/* Handle one option; EX_OK or EX_USAGE. */
static int
take_option(struct opts *o, int ch, char *arg)
{
	switch (ch) {
	case 's':
		o->server = arg;
		break;
	case 'u':
		o->user = arg;
		break;
	case 'P':
		o->passfile = arg;
		break;
	case 'T':
		if (mpp_rc_parse_timeout(arg, &o->timeout) == -1) {
			warnx_("-T %s: whole seconds from 1 to %d", arg,
			    MPP_RC_TIMEOUT_MAX);
			return EX_USAGE;
		}
		break;
	case 'v':
		o->verbose = 1;
		break;
	case OPT_TLS:
	case OPT_NO_TLS:
		o->tls = ch == OPT_TLS;
		break;
	case OPT_CA:
		o->ca = arg;
		break;
	case 'b':
		if (strcmp(arg, "m") != 0) {
			warnx_("-b%s: only -bm (post a message) is supported",
			    arg);
			return EX_USAGE;
		}
		break;
	default:
		return EX_USAGE;
	}
	return EX_OK;
}

/* Name the option getopt_long stopped at, for an error message. */
static void
bad_option(int ch, char **argv)
{
	const char *what = ch == ':' ? "missing argument to" :
	    "unknown option";
	const struct option *lo;

	for (lo = long_options; lo->name != NULL; lo++)
		if (lo->val == optopt) {
			warnx_("%s --%s", what, lo->name);
			return;
		}
	if (optopt != 0)
		warnx_("%s -%c", what, optopt);
	else			/* an unknown long option */
		warnx_("%s %s", what, argv[optind - 1]);
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	int ch, ex;

	memset(o, 0, sizeof(*o));
	o->tls = -1;
	if ((o->ign = calloc((size_t)argc, sizeof(*o->ign))) == NULL) {
		warnx_("out of memory");
		return EX_OSERR;
	}
	o->sendmail_mode = called_sendmail(argv[0]);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, OPTSTRING, long_options,
	    NULL)) != -1) {
		if (ch == '?' || ch == ':') {
			bad_option(ch, argv);
			return usage();
		}
		if (ch < 256 && strchr(SENDMAIL_FLAGS, ch) != NULL) {
			o->sendmail_mode = 1;
			o->headers_only |= ch == 't';
			o->ign[o->nign].flag = (char)ch;
			o->ign[o->nign++].arg = optarg;
		}
		if ((ch >= 256 || strchr("tiofFrBNR", ch) == NULL) &&
		    (ex = take_option(o, ch, optarg)) != EX_OK)
			return ex == EX_USAGE ? usage() : ex;
	}
	if (optind > 1 && strcmp(argv[optind - 1], "--") == 0)
		o->sendmail_mode = 1;
	o->args = argv + optind;
	o->nargs = argc - optind;
	return EX_OK;
}

/* Why a sendmail flag has no effect on an MPP posting. */
static const char *
ignore_reason(const struct ignored *g)
{
	switch (g->flag) {
	case 't':
		return "MPP always takes the recipients from the To:, Cc: "
		    "and Bcc: headers";
	case 'i':
		return "a line holding a single dot never ends the message";
	case 'o':
		return strcmp(g->arg, "i") == 0 ? "a line holding a single "
		    "dot never ends the message" : "a sendmail option with "
		    "no meaning for MPP";
	case 'F':
		return "the sender's name is what the From: header says";
	case 'B':
		return "the message is sent as it is, 8-bit text included";
	case 'N':
	case 'R':
		return "MPP cannot ask for delivery status notifications";
	case 'b':
		return "posting a message is what mppsend always does";
	}
	return "no meaning for MPP";
}

/* In -v mode: say what was accepted only to be ignored, and why. */
static void
report_ignored(const struct opts *o, const char *user)
{
	const struct ignored *g;
	size_t i;
	int k;

	for (i = 0; i < o->nign; i++) {
		g = &o->ign[i];
		if (g->flag == 'f' || g->flag == 'r')
			warnx_("ignoring -%c %s: the sender is the user who "
			    "logs in, %s", g->flag, g->arg, user);
		else if (g->arg == NULL)
			warnx_("ignoring -%c: %s", g->flag, ignore_reason(g));
		else
			warnx_("ignoring -%c%s%s: %s", g->flag,
			    strchr("oBb", g->flag) != NULL ? "" : " ", g->arg,
			    ignore_reason(g));
	}
	for (k = 0; o->sendmail_mode && k < o->nargs; k++)
		warnx_("ignoring recipient %s: MPP takes the recipients from "
		    "the To:, Cc: and Bcc: headers", o->args[k]);
}

/* The value of an environment variable; an empty one counts as unset. */
static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The home directory: $HOME, else the password database. */
static const char *
home_dir(void)
{
	const struct passwd *pw;

	if (env("HOME") != NULL)
		return env("HOME");
	pw = getpwuid(getuid());
	return pw != NULL ? pw->pw_dir : NULL;
}

/* Read $MPP_RC, else ~/.mpprc if there is one. */
static int
load_rc(struct mpp_rc *rc, const char *home)
{
	char path[4096], err[MPP_CLIENT_ERR_MAX];
	const char *explicit = env("MPP_RC");
	int loaded, n;

	mpp_rc_init(rc);
	if (explicit == NULL && home == NULL)
		return EX_OK;
	if (explicit != NULL)
		n = snprintf(path, sizeof(path), "%s", explicit);
	else
		n = snprintf(path, sizeof(path), "%s/.mpprc", home);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		warnx_("path of the rc file too long");
		return EX_CONFIG;
	}
	if (mpp_rc_load(rc, path, explicit != NULL, home, &loaded, err,
	    sizeof(err)) == -1) {
		warnx_("%s", err);
		return EX_CONFIG;
	}
	return EX_OK;
}

/* Copy src into a settings field; EX_USAGE naming what when too long. */
static int
put(char *dst, size_t size, const char *src, const char *what)
{
	if (strlcpy(dst, src, size) < size)
		return EX_OK;
	warnx_("%s too long", what);
	return EX_USAGE;
}

/* A user name must not break the command line it goes on. */
static int
check_user(const char *user)
{
	const unsigned char *p = (const unsigned char *)user;

	if (*p == '\0') {
		warnx_("empty user name");
		return EX_USAGE;
	}
	for (; *p != '\0'; p++) {
		if (iscntrl(*p) || *p == ' ') {
			warnx_("user name holds a space or control character");
			return EX_USAGE;
		}
	}
	return EX_OK;
}

static int
settle_user(const struct opts *o, const struct mpp_rc *rc, struct settings *s)
{
	const char *user = o->user;
	const struct passwd *pw;
	int ex;

	if (user == NULL)
		user = env("MPP_USER");
	if (user == NULL && rc->user[0] != '\0')
		user = rc->user;
	if (user == NULL && (pw = getpwuid(getuid())) != NULL)
		user = pw->pw_name;
	if (user == NULL) {
		warnx_("cannot tell who you are: give -u USER");
		return EX_CONFIG;
	}
	if ((ex = put(s->user, sizeof(s->user), user, "user name")) != EX_OK)
		return ex;
	return check_user(s->user);
}

static int
settle_server(const struct opts *o, const struct mpp_rc *rc,
    struct settings *s)
{
	const char *spec = o->server;
	char err[MPP_CLIENT_ERR_MAX];

	if (spec == NULL)
		spec = env("MPP_SERVER");
	if (spec == NULL && rc->server[0] != '\0')
		spec = rc->server;
	if (spec == NULL)
		spec = DEFAULT_SERVER;
	if (mpp_client_parse_server(spec, MPP_CLIENT_DEFAULT_PORT, s->host,
	    sizeof(s->host), s->port, sizeof(s->port), err,
	    sizeof(err)) == -1) {
		warnx_("%s", err);
		return EX_USAGE;
	}
	return EX_OK;
}

/*
 * TLS: --tls or --no-tls, else $MPP_TLS, else the rc file; off by default.
 * The trusted certificates are loaded now, so a bad CA file is reported
 * before anyone is asked for a password.
 */
static int
settle_tls(const struct opts *o, const struct mpp_rc *rc, struct settings *s)
{
	char err[MPP_CLIENT_ERR_MAX];
	const char *v, *ca;
	int tls = o->tls;

	if (tls == -1 && (v = env("MPP_TLS")) != NULL &&
	    mpp_rc_parse_yesno(v, &tls) == -1) {
		warnx_("$MPP_TLS must be yes or no (or 1 or 0)");
		return EX_USAGE;
	}
	if (tls == -1)
		tls = rc->tls == 1;
	if (o->ca != NULL && !tls) {
		warnx_("--ca names the certificates that TLS trusts: "
		    "give --tls too");
		return EX_USAGE;
	}
	if (!tls)
		return EX_OK;
	ca = o->ca != NULL ? o->ca : rc->ca[0] != '\0' ? rc->ca : NULL;
	if ((s->tls_ctx = mpp_tls_ctx_new(ca, err, sizeof(err))) == NULL) {
		warnx_("%s", err);
		return o->ca != NULL ? EX_NOINPUT : ca != NULL ? EX_CONFIG :
		    EX_OSERR;
	}
	return EX_OK;
}

/* Read the password from a file; from_flag picks the exit code. */
static int
password_from_file(const char *path, struct settings *s, int from_flag)
{
	char err[MPP_CLIENT_ERR_MAX];
	int loose;

	if (mpp_rc_read_password_file(path, s->password, sizeof(s->password),
	    &loose, err, sizeof(err)) == -1) {
		warnx_("%s", err);
		return from_flag ? EX_NOINPUT : EX_CONFIG;
	}
	if (loose)
		warnx_("warning: others may read password file %s: "
		    "chmod 600 it", path);
	return EX_OK;
}

/* Ask on the terminal, without echo. */
static int
password_from_prompt(struct settings *s)
{
	char prompt[MPP_RC_VALUE_MAX + MPP_CLIENT_HOST_MAX + 32];
	int n;

	n = snprintf(prompt, sizeof(prompt), "MPP password for %s at %s: ",
	    s->user, s->host);
	if (n < 0 || (size_t)n >= sizeof(prompt))
		strlcpy(prompt, "MPP password: ", sizeof(prompt));
	if (readpassphrase(prompt, s->password, sizeof(s->password),
	    RPP_REQUIRE_TTY) == NULL) {
		warnx_("no password given and no terminal to ask for one: "
		    "use -P, $MPP_PASSWORD or ~/.mpprc");
		return EX_CONFIG;
	}
	if (s->password[0] == '\0') {
		warnx_("empty password");
		return EX_USAGE;
	}
	return EX_OK;
}

static int
settle_password(const struct opts *o, const struct mpp_rc *rc,
    struct settings *s)
{
	const char *pw;

	if (o->passfile != NULL)
		return password_from_file(o->passfile, s, 1);
	if ((pw = env("MPP_PASSWORD")) != NULL) {
		if (strpbrk(pw, "\r\n") != NULL) {
			warnx_("$MPP_PASSWORD holds a line break");
			return EX_USAGE;
		}
		return put(s->password, sizeof(s->password), pw, "password");
	}
	if (rc->pw_source == MPP_RC_PW_LITERAL)
		return put(s->password, sizeof(s->password), rc->password,
		    "password");
	if (rc->pw_source == MPP_RC_PW_FILE)
		return password_from_file(rc->password_file, s, 0);
	return password_from_prompt(s);
}

/* Settings: ~/.mpprc, then the environment, then flags. */
static int
settle(const struct opts *o, const struct mpp_rc *rc, struct settings *s)
{
	int ex;

	s->timeout = o->timeout ? o->timeout : rc->timeout ? rc->timeout :
	    MPP_CLIENT_DEFAULT_TIMEOUT;
	if ((ex = settle_server(o, rc, s)) != EX_OK ||
	    (ex = settle_user(o, rc, s)) != EX_OK ||
	    (ex = settle_tls(o, rc, s)) != EX_OK)
		return ex;
	if (o->verbose)
		report_ignored(o, s->user);
	return settle_password(o, rc, s);
}

/* Before connecting, make sure every file can be read. */
static int
check_files(const struct opts *o)
{
	struct stat st;
	int i, fd, stdin_seen = 0;

	for (i = 0; !o->sendmail_mode && i < o->nargs; i++) {
		if (strcmp(o->args[i], "-") == 0) {
			if (stdin_seen++) {
				warnx_("standard input (-) named twice");
				return EX_USAGE;
			}
			continue;
		}
		if ((fd = open(o->args[i], O_RDONLY | O_CLOEXEC)) == -1 ||
		    fstat(fd, &st) == -1 || S_ISDIR(st.st_mode)) {
			warnx_("%s: %s", o->args[i], fd == -1 ?
			    strerror(errno) : "is a directory");
			if (fd != -1)
				close(fd);
			return EX_NOINPUT;
		}
		close(fd);
	}
	return EX_OK;
}

static void
tap_rcpt(void *arg, const char *buf, size_t len)
{
	mpp_rcpt_feed(arg, buf, len);
}

/* Warn about recipient operands that the message's headers do not list. */
static void
warn_unlisted(const struct run *r)
{
	int k, listed;

	for (k = 0; k < r->o->nargs; k++) {
		listed = mpp_rcpt_listed(&r->rcpt, r->o->args[k]);
		if (listed == 0)
			warnx_("warning: %s is not in the To:, Cc: or Bcc: "
			    "header and gets no copy: MPP takes the "
			    "recipients from the headers", r->o->args[k]);
		else if (listed == -1 && r->o->verbose)
			warnx_("headers too long to check that %s is in "
			    "them", r->o->args[k]);
	}
}

/* Post one message from name (NULL or "-": standard input). */
static int
post_one(struct run *r, const char *name)
{
	int check = r->o->sendmail_mode && !r->o->headers_only &&
	    r->o->nargs > 0;
	int fd = STDIN_FILENO, ex;

	if (name != NULL && strcmp(name, "-") != 0 &&
	    (fd = open(name, O_RDONLY | O_CLOEXEC)) == -1) {
		warnx_("%s: %s", name, strerror(errno));
		return EX_NOINPUT;
	}
	mpp_rcpt_init(&r->rcpt);
	ex = mpp_client_post_fd(&r->client, fd, check ? tap_rcpt : NULL,
	    &r->rcpt);
	if (fd != STDIN_FILENO)
		close(fd);
	if (ex == EX_OK && check)
		warn_unlisted(r);
	if (ex != EX_OK && name != NULL)
		warnx_("%s: not posted: %s", name,
		    mpp_client_error(&r->client));
	else if (ex != EX_OK)
		warnx_("message not posted: %s", mpp_client_error(&r->client));
	return ex;
}

/* Post every message in one session. */
static int
post_all(struct run *r, const struct settings *s)
{
	const struct opts *o = r->o;
	int files = o->sendmail_mode ? 0 : o->nargs;
	int i, ex;

	if ((ex = mpp_client_open(&r->client, s->host, s->port)) != EX_OK ||
	    (ex = mpp_client_login(&r->client, s->user, s->password)) !=
	    EX_OK) {
		warnx_("%s", mpp_client_error(&r->client));
		return ex;
	}
	for (i = 0; i < (files > 0 ? files : 1) && ex == EX_OK; i++) {
		if ((ex = post_one(r, files > 0 ? o->args[i] : NULL)) ==
		    EX_OK)
			r->posted++;
	}
	if (ex != EX_OK && files > 1)
		warnx_("%d of %d messages posted before this failure; the "
		    "others were not", r->posted, files);
	return ex;
}

static int
run(const struct opts *o, const struct settings *s)
{
	struct run *r;
	int ex;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		warnx_("out of memory");
		return EX_OSERR;
	}
	r->o = o;
	mpp_client_init(&r->client, s->timeout);
	r->client.trace = o->verbose ? stderr : NULL;
	r->client.tls_ctx = s->tls_ctx;
	ex = post_all(r, s);
	mpp_client_quit(&r->client);
	free(r);
	return ex;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct mpp_rc rc;
	struct settings s;
	int ex;

	memset(&s, 0, sizeof(s));
	mpp_rc_init(&rc);
	if ((ex = parse_args(argc, argv, &o)) == EX_OK &&
	    (ex = check_files(&o)) == EX_OK &&
	    (ex = load_rc(&rc, home_dir())) == EX_OK &&
	    (ex = settle(&o, &rc, &s)) == EX_OK)
		ex = run(&o, &s);
	mpp_rc_clear(&rc);
	mpp_tls_ctx_free(s.tls_ctx);
	explicit_bzero(s.password, sizeof(s.password));
	free(o.ign);
	return ex;
}
