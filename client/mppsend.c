/*
 * mppsend — post mail to an MPP (RFC 1204) server; also serves mail programs
 * as their sendmail.
 *
 * This file holds only the command line, the settings (~/.mpprc, then the
 * environment, then flags) and the order of a run; the dialogue itself is
 * mpp_client's, and TLS tls_client's. Exit codes are sysexits(3), as a
 * mail program expects from sendmail: see mppsend(1).
 *
 * Operands are recipients, as sendmail's are, whatever the program is
 * called: a file to post is named only with -l, so a mail program can never
 * make mppsend post a stray file. The server takes the recipients from the
 * To:, Cc: and Bcc: fields, so each message's header section is read before
 * it is posted (mpp_rcpt), and the operand recipients it does not name go
 * in front of the text as a Bcc: field, which the server removes. What the
 * header section tells about the server's verdict (no recipient at all,
 * say) is said before connecting.
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

#include "buf.h"
#include "mpp_client.h"
#include "mpp_rc.h"
#include "mpp_rcpt.h"
#include "tls_client.h"

#define DEFAULT_SERVER	"localhost"
#define OPTSTRING	"+:s:u:P:T:vl:tio:f:F:r:B:N:R:b:"
#define SENDMAIL_FLAGS	"tiofFrBNRb"	/* accepted, of no effect */

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
	struct ignored *ign;
	size_t nign;
	const char **files;	/* -l, in order ("-": standard input) */
	int nfiles;		/* 0: one message, from standard input */
	char **rcpts;		/* the operands */
	int nrcpts;
};

struct settings {
	char host[MPP_CLIENT_HOST_MAX];
	char port[MPP_CLIENT_PORT_MAX];
	char user[MPP_RC_VALUE_MAX];
	char password[MPP_RC_VALUE_MAX];
	int timeout;
	struct tls_client_ctx *tls_ctx;	/* NULL: plain MPP */
};

/* What one run needs; large, so it lives on the heap. */
struct run {
	struct mpp_client client;
	struct mpp_rcpt rcpt;		/* the file being posted */
	struct mpp_rcpt *in;		/* standard input, read ahead */
	struct mpp_rcpt_list list;	/* the operands' addresses */
	struct buf head;		/* Bcc: field, then the read-ahead */
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
	    "               [-P passfile] [-T seconds] [-l file]... "
	    "[-B type] [-bm] [-F name]\n"
	    "               [-f addr] [-N dsn] [-o option] [-R ret] "
	    "[-r addr] [--]\n"
	    "               [recipient ...]\n", stderr);
	return EX_USAGE;
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
	case 'l':
		o->files[o->nfiles++] = arg;
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
	if ((o->ign = calloc((size_t)argc, sizeof(*o->ign))) == NULL ||
	    (o->files = calloc((size_t)argc, sizeof(*o->files))) == NULL) {
		warnx_("out of memory");
		return EX_OSERR;
	}
	opterr = 0;
	while ((ch = getopt_long(argc, argv, OPTSTRING, long_options,
	    NULL)) != -1) {
		if (ch == '?' || ch == ':') {
			bad_option(ch, argv);
			return usage();
		}
		if (ch < 256 && strchr(SENDMAIL_FLAGS, ch) != NULL) {
			o->ign[o->nign].flag = (char)ch;
			o->ign[o->nign++].arg = optarg;
		}
		if ((ch >= 256 || strchr("tiofFrBNR", ch) == NULL) &&
		    (ex = take_option(o, ch, optarg)) != EX_OK)
			return ex == EX_USAGE ? usage() : ex;
	}
	o->rcpts = argv + optind;
	o->nrcpts = argc - optind;
	return EX_OK;
}

/* Why a sendmail flag has no effect on an MPP posting. */
static const char *
ignore_reason(const struct ignored *g)
{
	switch (g->flag) {
	case 't':
		return "the recipients are those of the To:, Cc: and Bcc: "
		    "fields and those given on the command line, with or "
		    "without -t (as with Postfix)";
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
	if ((s->tls_ctx = tls_client_ctx_new(ca, err, sizeof(err))) == NULL) {
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

/* How messages are named in what mppsend says. */
static const char *
label(const char *name)
{
	return name == NULL || strcmp(name, "-") == 0 ? "message" : name;
}

/* The operands' addresses; a malformed one is bad usage. */
static int
take_recipients(struct run *r)
{
	char err[MPP_CLIENT_ERR_MAX];
	int k, ex;

	for (k = 0; k < r->o->nrcpts; k++) {
		if (mpp_rcpt_list_add(&r->list, r->o->rcpts[k], err,
		    sizeof(err)) == -1) {
			ex = errno == ENOMEM ? EX_OSERR : EX_USAGE;
			warnx_("%s", err);
			return ex;
		}
	}
	return EX_OK;
}

/*
 * Read a message's header section from fd into m, and refuse the message
 * when the header section shows that the server would.
 */
static int
prepare(struct run *r, struct mpp_rcpt *m, int fd, const char *name)
{
	char why[MPP_CLIENT_ERR_MAX];
	int saved;

	mpp_rcpt_clear(m);
	if (mpp_rcpt_read(m, fd) == -1) {
		saved = errno;
		warnx_("%s: %s", label(name), strerror(saved));
		return saved == ENOMEM ? EX_OSERR : EX_IOERR;
	}
	if (mpp_rcpt_refusal(m, r->list.n, why, sizeof(why)) != NULL) {
		warnx_("%s not posted: %s", label(name), why);
		return EX_DATAERR;
	}
	return EX_OK;
}

/* Open a message file; a directory is no message. -1 when not. */
static int
open_message(const char *name)
{
	struct stat st;
	int fd, saved;

	if ((fd = open(name, O_RDONLY | O_CLOEXEC)) == -1)
		goto fail;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	warnx_("%s: %s", name, strerror(saved));
	if (fd != -1)
		close(fd);
	return -1;
}

/* Before connecting, make sure every file can be read and posted. */
static int
check_files(struct run *r)
{
	const struct opts *o = r->o;
	int i, fd, ex, stdin_seen = 0;

	for (i = 0; i < o->nfiles; i++) {
		if (strcmp(o->files[i], "-") == 0) {
			if (stdin_seen++) {
				warnx_("standard input (-l -) named twice");
				return EX_USAGE;
			}
			continue;
		}
		if ((fd = open_message(o->files[i])) == -1)
			return EX_NOINPUT;
		ex = prepare(r, &r->rcpt, fd, o->files[i]);
		close(fd);
		if (ex != EX_OK)
			return ex;
	}
	return EX_OK;
}

/* In -v mode: say what becomes of each recipient operand. */
static void
report_recipients(const struct run *r, const struct mpp_rcpt *m)
{
	const struct mpp_rcpt_addr *a;
	const char *field;
	size_t i;

	for (i = 0; i < r->list.n; i++) {
		a = &r->list.v[i];
		if (mpp_rcpt_named(m, a, &field))
			warnx_("recipient %s: named in the %s: field, which "
			    "the server takes it from", a->addr, field);
		else
			warnx_("recipient %s: named only on the command "
			    "line, so added in a %s: field (the server "
			    "delivers to it and removes the field)", a->addr,
			    mpp_rcpt_bcc_name(m));
	}
}

/*
 * What goes in front of the rest of fd: the read-ahead with the blind
 * recipients' field put in (at the top, or atop a resend's block).
 */
static int
compose(struct run *r, const struct mpp_rcpt *m)
{
	size_t at = mpp_rcpt_bcc_at(m);

	buf_free(&r->head);
	if (buf_append(&r->head, m->buf, at) == -1 ||
	    mpp_rcpt_bcc(m, &r->list, &r->head) == -1 ||
	    buf_append(&r->head, m->buf + at, m->len - at) == -1) {
		warnx_("out of memory");
		return EX_OSERR;
	}
	if (r->o->verbose)
		report_recipients(r, m);
	return EX_OK;
}

static void
tap_scan(void *arg, const char *buf, size_t len)
{
	mpp_rcpt_scan(arg, buf, len);
}

/* Post one message, its header section in m already read from fd. */
static int
post_one(struct run *r, struct mpp_rcpt *m, int fd, const char *name)
{
	char why[MPP_CLIENT_ERR_MAX];
	unsigned long long added;
	int ex;

	if ((ex = compose(r, m)) != EX_OK)
		return ex;
	added = r->head.len - m->len;
	ex = mpp_client_post_head_fd(&r->client, r->head.data, r->head.len,
	    fd, tap_scan, m);
	if (ex == EX_OK)
		return EX_OK;
	if (ex == EX_DATAERR && r->client.code == 550)
		warnx_("%s not posted: %s: %s", label(name),
		    mpp_client_error(&r->client), mpp_rcpt_explain(m,
		    m->text_bytes + added, why, sizeof(why)));
	else
		warnx_("%s not posted: %s", label(name),
		    mpp_client_error(&r->client));
	return ex;
}

/* Post the file name (or standard input, read ahead into r->in). */
static int
post_file(struct run *r, const char *name)
{
	int fd, ex;

	if (name == NULL || strcmp(name, "-") == 0)
		return post_one(r, r->in, STDIN_FILENO, name);
	if ((fd = open_message(name)) == -1)
		return EX_NOINPUT;
	if ((ex = prepare(r, &r->rcpt, fd, name)) == EX_OK)
		ex = post_one(r, &r->rcpt, fd, name);
	close(fd);
	return ex;
}

/* Post every message in one session. */
static int
post_all(struct run *r, const struct settings *s)
{
	const struct opts *o = r->o;
	int i, ex;

	if ((ex = mpp_client_open(&r->client, s->host, s->port)) != EX_OK ||
	    (ex = mpp_client_login(&r->client, s->user, s->password)) !=
	    EX_OK) {
		warnx_("%s", mpp_client_error(&r->client));
		return ex;
	}
	for (i = 0; i < (o->nfiles > 0 ? o->nfiles : 1) && ex == EX_OK; i++) {
		if ((ex = post_file(r, o->nfiles > 0 ? o->files[i] : NULL)) ==
		    EX_OK)
			r->posted++;
	}
	if (ex != EX_OK && o->nfiles > 1)
		warnx_("%d of %d messages posted before this failure; the "
		    "others were not", r->posted, o->nfiles);
	return ex;
}

/* Does standard input hold a message to post? */
static int
reads_stdin(const struct opts *o)
{
	int i;

	for (i = 0; i < o->nfiles; i++)
		if (strcmp(o->files[i], "-") == 0)
			return 1;
	return o->nfiles == 0;
}

static int
run(struct run *r, const struct settings *s)
{
	int ex;

	if (reads_stdin(r->o)) {
		if ((r->in = malloc(sizeof(*r->in))) == NULL) {
			warnx_("out of memory");
			return EX_OSERR;
		}
		mpp_rcpt_init(r->in);
		if ((ex = prepare(r, r->in, STDIN_FILENO, NULL)) != EX_OK)
			return ex;
	}
	mpp_client_init(&r->client, s->timeout);
	r->client.trace = r->o->verbose ? stderr : NULL;
	r->client.tls_ctx = s->tls_ctx;
	ex = post_all(r, s);
	mpp_client_quit(&r->client);
	return ex;
}

static void
run_free(struct run *r)
{
	if (r == NULL)
		return;
	mpp_rcpt_clear(&r->rcpt);
	mpp_rcpt_clear(r->in);
	free(r->in);
	mpp_rcpt_list_free(&r->list);
	buf_free(&r->head);
	free(r);
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct mpp_rc rc;
	struct settings s;
	struct run *r;
	int ex;

	memset(&s, 0, sizeof(s));
	mpp_rc_init(&rc);
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		warnx_("out of memory");
		return EX_OSERR;
	}
	mpp_rcpt_init(&r->rcpt);
	r->o = &o;
	if ((ex = parse_args(argc, argv, &o)) == EX_OK &&
	    (ex = take_recipients(r)) == EX_OK &&
	    (ex = check_files(r)) == EX_OK &&
	    (ex = load_rc(&rc, home_dir())) == EX_OK &&
	    (ex = settle(&o, &rc, &s)) == EX_OK)
		ex = run(r, &s);
	run_free(r);
	mpp_rc_clear(&rc);
	tls_client_ctx_free(s.tls_ctx);
	explicit_bzero(s.password, sizeof(s.password));
	free(o.ign);
	free(o.files);
	return ex;
}
