/*
 * mppq — the administrator's window on the queue (docs/mppq.8): list, show,
 * flush, hold, release, delete, requeue, stats. Flags and config, then one
 * command from a table; the SQL lives in common/index_admin.c, this file
 * only parses arguments and formats what the index returns.
 *
 * Root and the owner of the spool may do everything. Anyone else reads
 * the index without changing it, as far as its file modes allow (the
 * spool directory's group: docs/admin.md), and is shown no message text.
 *
 * Exit codes are an interface: 0 done; 1 some queue id was unknown, not
 * valid, or in a state that forbids the change (the other ids are still
 * processed); 64 usage; 74 the index or the spool failed; 77 permission
 * denied; 78 config. Changes are logged where the `log` key says (stderr
 * with -d) with the id.
 */
#include <sys/stat.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "index.h"
#include "index_admin.h"
#include "json.h"
#include "log.h"
#include "spool.h"
#include "util.h"

/* Exit code for an id that could not be acted on. */
#define EX_NOTDONE 1

/* Room for untrusted text made printable by log_escape (4 bytes each). */
#define SAFE_MAX 2048

/* Ids on standard input ("-"): the longest line, and how many. */
#define STDIN_LINE_MAX 1024
#define STDIN_IDS_MAX 1000000

/* Selector values: an address, a login, a duration. */
#define ADDR_MAX 320
#define LOGIN_MAX 64
#define DURATION_MAX (100LL * 366 * 86400)

struct options {
	struct config_cli cli;
	int log_stderr;
};

/* show's parts; none given means all of them. */
#define SHOW_ENVELOPE	0x01
#define SHOW_HEADERS	0x02
#define SHOW_BODY	0x04
#define SHOW_TEXT	(SHOW_HEADERS | SHOW_BODY)

/* A command's arguments after its name. */
struct cmd_args {
	int json;
	int json_lines;
	int prometheus;
	unsigned show;		/* SHOW_* */
	unsigned selectors;	/* the selector options given, one bit each */
	struct index_admin_filter filter;
	long long older, newer;	/* --older-than, --newer-than, seconds */
	int all;		/* ALL */
	int from_stdin;		/* "-": ids one per line on stdin */
	char **ids;
	int nids;
};

struct ctx {
	struct index *ix;
	struct spool sp;
	int have_spool;
	int reader;		/* neither root nor the spool's owner */
	int file_error;		/* a message file could not be removed */
	time_t now;
	const char *node;	/* hostname: whose queue this is */
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: mppq [-d] [-c file] [-o key=value]... command\n"
	    "  list [--json | --json-lines] [selector...]\n"
	    "  show id [--envelope] [--headers] [--body]\n"
	    "  flush [id... | - | ALL] [selector...]\n"
	    "  hold | release | delete | requeue id... | - | ALL | "
	    "selector...\n"
	    "  stats [--json | --prometheus]\n"
	    "selectors: --state state|all, --from addr, --to addr, "
	    "--user login,\n"
	    "  --older-than duration, --newer-than duration "
	    "(30m, 2h, 3d, 1h30m)\n");
	exit(EX_USAGE);
}

/* Error to stderr as "mppq: ..."; the id or text is made printable. */
static void __attribute__((format(printf, 1, 2)))
say(const char *fmt, ...)
{
	va_list ap;

	fputs("mppq: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* s made safe for a terminal in buf; "-" for NULL. */
static const char *
safe(const char *s, char *buf, size_t bufsz)
{
	if (s == NULL)
		return "-";
	return log_escape(buf, bufsz, s, strlen(s));
}

static const char *
rfc3339(long long t, char *buf, size_t bufsz)
{
	util_rfc3339((time_t)t, buf, bufsz);
	return buf;
}

/* The filter of a, its ages made times. */
static struct index_admin_filter
resolve_filter(const struct ctx *c, const struct cmd_args *a)
{
	struct index_admin_filter f = a->filter;

	/* 0 would mean no bound: a time before 1970 is -1. */
	if (a->older >= 0)
		f.received_before = (long long)c->now - a->older > 0 ?
		    (long long)c->now - a->older : -1;
	if (a->newer >= 0)
		f.received_after = (long long)c->now - a->newer > 0 ?
		    (long long)c->now - a->newer : -1;
	return f;
}

/* ---- list ---- */

struct list_totals {
	long long n;
	long long bytes;
	struct json *j;
	const char *node;
};

static void
list_rcpt_line(const struct index_admin_rcpt *r)
{
	char a[SAFE_MAX], e[SAFE_MAX];

	printf("    -> %s", safe(r->address, a, sizeof(a)));
	if (r->state != NULL && strcmp(r->state, "pending") != 0)
		printf(" [%s]", r->state);
	if (r->last_error != NULL)
		printf(" (%s)", safe(r->last_error, e, sizeof(e)));
	putchar('\n');
}

static int
list_human_one(const struct index_admin_msg *m, void *arg)
{
	struct list_totals *t = arg;
	char id[SAFE_MAX], snd[SAFE_MAX], err[SAFE_MAX], when[32];
	size_t i;

	if (t->n++ == 0)
		printf("%-28s %9s %-20s %-8s %5s  %s\n", "ID", "SIZE",
		    "ARRIVAL", "STATE", "TRIES", "SENDER");
	t->bytes += m->size;
	printf("%-28s %9lld %-20s %-8s %5lld  %s\n",
	    safe(m->id, id, sizeof(id)), m->size,
	    rfc3339(m->received_at, when, sizeof(when)), m->state,
	    m->attempts, m->sender != NULL && m->sender[0] == '\0' ? "<>" :
	    safe(m->sender, snd, sizeof(snd)));
	if (m->last_error != NULL)
		printf("    (%s)\n", safe(m->last_error, err, sizeof(err)));
	for (i = 0; i < m->nrcpts; i++)
		list_rcpt_line(&m->rcpts[i]);
	return 0;
}

static void
json_time(struct json *j, const char *key, long long t)
{
	char buf[32];

	json_key(j, key);
	if (t == 0)
		json_null(j);
	else
		json_string(j, rfc3339(t, buf, sizeof(buf)));
}

static void
json_str(struct json *j, const char *key, const char *val)
{
	json_key(j, key);
	json_string(j, val);
}

static void
json_num(struct json *j, const char *key, long long val)
{
	json_key(j, key);
	json_int(j, val);
}

static void
json_rcpts(struct json *j, const struct index_admin_msg *m)
{
	size_t i;

	json_key(j, "recipients");
	json_begin_array(j);
	for (i = 0; i < m->nrcpts; i++)
		json_string(j, m->rcpts[i].address);
	json_end_array(j);
	json_key(j, "rcpt_states");
	json_begin_array(j);
	for (i = 0; i < m->nrcpts; i++) {
		json_begin_object(j);
		json_str(j, "address", m->rcpts[i].address);
		json_str(j, "state", m->rcpts[i].state);
		json_str(j, "last_error", m->rcpts[i].last_error);
		json_key(j, "bounced");
		json_bool(j, m->rcpts[i].bounced);
		json_end_object(j);
	}
	json_end_array(j);
}

static int
list_json_one(const struct index_admin_msg *m, void *arg)
{
	struct json *j = ((struct list_totals *)arg)->j;

	json_begin_object(j);
	json_str(j, "id", m->id);
	json_str(j, "node", ((struct list_totals *)arg)->node);
	json_str(j, "state", m->state);
	json_str(j, "auth_user", m->auth_user);
	json_str(j, "sender", m->sender);
	json_rcpts(j, m);
	json_num(j, "size", m->size);
	json_time(j, "received_at", m->received_at);
	json_num(j, "attempts", m->attempts);
	json_time(j, "next_attempt_at", m->next_attempt_at);
	json_str(j, "last_error", m->last_error);
	json_str(j, "client_addr", m->client_addr);
	json_str(j, "held_from", m->held_from);
	json_key(j, "is_bounce");
	json_bool(j, m->is_bounce);
	json_time(j, "done_at", m->done_at);
	json_end_object(j);
	return 0;
}

static int
list_json(struct ctx *c, const struct index_admin_filter *f)
{
	struct list_totals t = { 0, 0, NULL, c->node };
	struct json j;

	json_init(&j, stdout);
	t.j = &j;
	json_begin_array(&j);
	if (index_admin_list(c->ix, f, list_json_one, &t) != 0) {
		say("list: %s", index_errmsg(c->ix));
		return EX_IOERR;
	}
	json_end_array(&j);
	return json_finish(&j) == 0 ? EX_OK : EX_IOERR;
}

/* One object per line, written as each message is read. */
static int
list_line_one(const struct index_admin_msg *m, void *arg)
{
	struct json *j = ((struct list_totals *)arg)->j;

	list_json_one(m, arg);
	return json_end_line(j) == 0 ? 0 : 1;
}

static int
list_json_lines(struct ctx *c, const struct index_admin_filter *f)
{
	struct list_totals t = { 0, 0, NULL, c->node };
	struct json j;
	int rc;

	json_init_lines(&j, stdout);
	t.j = &j;
	rc = index_admin_list(c->ix, f, list_line_one, &t);
	if (rc == -1) {
		say("list: %s", index_errmsg(c->ix));
		return EX_IOERR;
	}
	return rc == 0 && json_finish(&j) == 0 ? EX_OK : EX_IOERR;
}

static int
cmd_list(struct ctx *c, const struct cmd_args *a)
{
	struct list_totals t = { 0, 0, NULL, NULL };
	struct index_admin_filter f = resolve_filter(c, a);

	if (a->json)
		return list_json(c, &f);
	if (a->json_lines)
		return list_json_lines(c, &f);
	if (index_admin_list(c->ix, &f, list_human_one, &t) != 0) {
		say("list: %s", index_errmsg(c->ix));
		return EX_IOERR;
	}
	if (t.n == 0)
		printf("%s\n", a->selectors == 0 ? "Mail queue is empty" :
		    "No messages");
	else
		printf("-- %lld message%s, %lld bytes\n", t.n,
		    t.n == 1 ? "" : "s", t.bytes);
	return EX_OK;
}

/* ---- show ---- */

static void
show_meta(const struct index_admin_msg *m, const char *node)
{
	char b[SAFE_MAX], t[32];

	printf("id:              %s\n", safe(m->id, b, sizeof(b)));
	printf("node:            %s\n", node);
	printf("state:           %s\n", safe(m->state, b, sizeof(b)));
	if (m->held_from != NULL)
		printf("held_from:       %s\n",
		    safe(m->held_from, b, sizeof(b)));
	printf("auth_user:       %s\n", safe(m->auth_user, b, sizeof(b)));
	printf("sender:          %s\n", m->sender != NULL &&
	    m->sender[0] == '\0' ? "<>" : safe(m->sender, b, sizeof(b)));
	printf("client_addr:     %s\n", safe(m->client_addr, b, sizeof(b)));
	printf("size:            %lld\n", m->size);
	printf("received_at:     %s\n", rfc3339(m->received_at, t, sizeof(t)));
	printf("attempts:        %lld\n", m->attempts);
	printf("next_attempt_at: %s\n",
	    rfc3339(m->next_attempt_at, t, sizeof(t)));
	printf("last_error:      %s\n", safe(m->last_error, b, sizeof(b)));
	printf("is_bounce:       %s\n", m->is_bounce ? "yes" : "no");
	if (m->done_at != 0)
		printf("done_at:         %s\n",
		    rfc3339(m->done_at, t, sizeof(t)));
	if (m->warned_at != 0)
		printf("delay_warned_at: %s\n",
		    rfc3339(m->warned_at, t, sizeof(t)));
	if (m->lease_host != NULL)
		printf("lease:           host %s pid %lld until %s\n",
		    safe(m->lease_host, b, sizeof(b)), m->lease_pid,
		    rfc3339(m->lease_until, t, sizeof(t)));
}

static void
show_rcpts(const struct index_admin_msg *m)
{
	const struct index_admin_rcpt *r;
	char a[SAFE_MAX], e[SAFE_MAX], s[SAFE_MAX];
	size_t i;

	printf("recipients:\n");
	for (i = 0; i < m->nrcpts; i++) {
		r = &m->rcpts[i];
		printf("  %-8s %s", safe(r->state, s, sizeof(s)),
		    safe(r->address, a, sizeof(a)));
		if (r->last_error != NULL)
			printf("  %s", safe(r->last_error, e, sizeof(e)));
		if (r->bounced)
			printf("  (bounced)");
		putchar('\n');
	}
}

/* Write n bytes to stdout; -1 when that failed. */
static int
out(const char *p, size_t n)
{
	return n == 0 || fwrite(p, 1, n, stdout) == n ? 0 : -1;
}

/*
 * Copy the stored text to stdout, or only its header section or only its
 * body (parts). The empty line between them belongs to neither; a text
 * without one is all header.
 */
static int
copy_text(int fd, unsigned parts)
{
	char buf[65536];
	int in_head = 1, at_bol = 1;
	ssize_t n, i;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		i = 0;
		if (in_head && (parts & SHOW_TEXT) != SHOW_TEXT) {
			for (; i < n && !(buf[i] == '\n' && at_bol); i++)
				at_bol = buf[i] == '\n';
			if ((parts & SHOW_HEADERS) && out(buf, (size_t)i) == -1)
				return -1;
			if (i == n)
				continue;
			in_head = 0;
			i++;
		}
		if ((parts & SHOW_BODY) && out(buf + i, (size_t)(n - i)) == -1)
			return -1;
	}
	return n == 0 ? 0 : -1;
}

/* The parts of the message file that were asked for. */
static int
show_text(struct ctx *c, const struct index_admin_msg *m, unsigned parts)
{
	int fd, rc;

	if ((fd = spool_open_msg(&c->sp, m->id)) == -1) {
		if (errno == ENOENT && strcmp(m->state, "sent") == 0) {
			printf("(sent: the message file is no longer kept)\n");
			return EX_OK;
		}
		say("%s: message file: %s", m->id, strerror(errno));
		return EX_IOERR;
	}
	if (parts & SHOW_ENVELOPE)
		printf("\n");
	fflush(stdout);
	rc = copy_text(fd, parts);
	if (rc == -1 && ferror(stdout) == 0)
		say("%s: read: %s", m->id, strerror(errno));
	close(fd);
	return rc == 0 ? EX_OK : EX_IOERR;
}

/* The parts to show; 0 when a reader asked for text. A reader sees the
   envelope only: message text is for root and the spool's owner. */
static unsigned
show_parts(const struct ctx *c, const struct cmd_args *a)
{
	if (!c->reader)
		return a->show != 0 ? a->show : SHOW_ENVELOPE | SHOW_TEXT;
	return a->show & SHOW_TEXT ? 0 : SHOW_ENVELOPE;
}

static int
cmd_show(struct ctx *c, const struct cmd_args *a)
{
	struct index_admin_msg m;
	char b[SAFE_MAX];
	unsigned parts;
	int rc = EX_OK;

	if (!spool_id_valid(a->ids[0])) {
		say("%s: not a valid queue id", safe(a->ids[0], b, sizeof(b)));
		return EX_NOTDONE;
	}
	if ((parts = show_parts(c, a)) == 0) {
		say("%s: only root and the spool's owner may read message "
		    "text", a->ids[0]);
		return EX_NOPERM;
	}
	rc = index_admin_get(c->ix, a->ids[0], &m);
	if (rc == INDEX_ADMIN_ERROR) {
		say("%s: %s", a->ids[0], index_errmsg(c->ix));
		return EX_IOERR;
	}
	if (rc == INDEX_ADMIN_UNKNOWN) {
		say("%s: no such message", a->ids[0]);
		return EX_NOTDONE;
	}
	if (parts & SHOW_ENVELOPE) {
		show_meta(&m, c->node);
		show_rcpts(&m);
	}
	if (c->reader && a->show == 0)
		say("%s: the message text is shown to root and the spool's "
		    "owner only", m.id);
	rc = parts & SHOW_TEXT ? show_text(c, &m, parts) : EX_OK;
	index_admin_msg_clear(&m);
	return rc;
}

/* ---- actions: on ids, on ids from stdin, on ALL or a selection ---- */

struct action {
	const char *name;
	enum index_admin_action what;
	int wake;		/* the runner should look again after it */
};

static const struct action act_flush = { "flush", IA_FLUSH, 1 };
static const struct action act_hold = { "hold", IA_HOLD, 0 };
static const struct action act_release = { "release", IA_RELEASE, 1 };
static const struct action act_delete = { "delete", IA_DELETE, 0 };
static const struct action act_requeue = { "requeue", IA_REQUEUE, 1 };

/* What the walk over a batch's outcome needs and finds. */
struct outcome {
	struct ctx *c;
	const struct action *a;
	int report;		/* say why an id was not acted on */
	int rc;
};

/*
 * After the commit: log each change; a deleted message's file goes now
 * (a crash before leaves an orphan, which reconciliation moves aside).
 */
static int
outcome_one(const char *id, const char *state, enum index_admin_verdict v,
    void *arg)
{
	struct outcome *o = arg;

	if (v == IA_CHANGED) {
		log_info("id=%s action=%s old_state=%s uid=%ld", id,
		    o->a->name, state, (long)getuid());
		if (o->a->what == IA_DELETE &&
		    spool_remove(&o->c->sp, id) == -1 && errno != ENOENT) {
			say("%s: removing the message file: %s", id,
			    strerror(errno));
			log_warn("id=%s action=delete: file not removed", id);
			o->c->file_error = 1;
		}
	} else if (v == IA_UNKNOWN) {
		say("%s: no such message", id);
		o->rc = EX_NOTDONE;
	} else if (v == IA_SKIPPED && o->report) {
		say("%s: cannot %s a message in state %s", id, o->a->name,
		    state);
		o->rc = EX_NOTDONE;
	}
	return 0;
}

/*
 * Read one line of at most STDIN_LINE_MAX bytes into buf (one more for
 * the NUL), trimmed of blanks and CR; the rest of a longer line is
 * skipped. 1 with a line, 0 at the end, -1 for an over-long line.
 */
static int
read_line(FILE *f, char *buf)
{
	int ch, got = 0;
	size_t n = 0, s = 0;

	while ((ch = getc(f)) != EOF && ch != '\n') {
		got = 1;
		/* A NUL would cut the id short: make it a byte no id has. */
		if (n < STDIN_LINE_MAX)
			buf[n] = ch == '\0' ? '?' : (char)ch;
		n++;
	}
	if (!got && ch == EOF)
		return 0;
	if (n > STDIN_LINE_MAX)
		return -1;
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t' ||
	    buf[n - 1] == '\r'))
		n--;
	while (s < n && (buf[s] == ' ' || buf[s] == '\t'))
		s++;
	memmove(buf, buf + s, n - s);
	buf[n - s] = '\0';
	return 1;
}

/*
 * Stage the ids on stdin, one per line; blank lines are left out. An exit
 * code: EX_OK (*rc says whether a line was bad), EX_USAGE for too many
 * ids, EX_IOERR.
 */
static int
add_stdin_ids(struct ctx *c, struct index_admin_batch *b, int *rc)
{
	char line[STDIN_LINE_MAX + 1], safebuf[SAFE_MAX];
	unsigned long lineno = 0, n = 0;
	int r;

	while ((r = read_line(stdin, line)) != 0) {
		lineno++;
		if (r == -1) {
			say("standard input, line %lu: longer than %d bytes",
			    lineno, STDIN_LINE_MAX);
			*rc = EX_NOTDONE;
		} else if (line[0] == '\0')
			continue;
		else if (!spool_id_valid(line)) {
			say("standard input, line %lu: %s: not a valid queue "
			    "id", lineno, safe(line, safebuf, sizeof(safebuf)));
			*rc = EX_NOTDONE;
		} else if (++n > STDIN_IDS_MAX) {
			say("standard input: more than %d ids", STDIN_IDS_MAX);
			return EX_USAGE;
		} else if (index_admin_batch_add(b, line) == -1) {
			say("%s", index_errmsg(c->ix));
			return EX_IOERR;
		}
	}
	if (ferror(stdin)) {
		say("standard input: %s", strerror(errno));
		return EX_IOERR;
	}
	return EX_OK;
}

/* Stage the ids of the command line; a malformed one is reported. */
static int
add_arg_ids(struct ctx *c, struct index_admin_batch *b,
    const struct cmd_args *a, int *rc)
{
	char buf[SAFE_MAX];
	int i;

	for (i = 0; i < a->nids; i++) {
		if (!spool_id_valid(a->ids[i])) {
			say("%s: not a valid queue id",
			    safe(a->ids[i], buf, sizeof(buf)));
			*rc = EX_NOTDONE;
		} else if (index_admin_batch_add(b, a->ids[i]) == -1) {
			say("%s", index_errmsg(c->ix));
			return EX_IOERR;
		}
	}
	return a->from_stdin ? add_stdin_ids(c, b, rc) : EX_OK;
}

/* A bulk action says what it did: "hold: 3 changed, ...". */
static void
summary(const struct action *a, const long long count[IA_NVERDICTS])
{
	printf("%s: %lld changed, %lld unchanged, %lld skipped, %lld unknown\n",
	    a->name, count[IA_CHANGED], count[IA_UNCHANGED],
	    count[IA_SKIPPED], count[IA_UNKNOWN]);
	log_info("action=%s changed=%lld unchanged=%lld skipped=%lld "
	    "unknown=%lld uid=%ld", a->name, count[IA_CHANGED],
	    count[IA_UNCHANGED], count[IA_SKIPPED], count[IA_UNKNOWN],
	    (long)getuid());
}

/*
 * Every action: stage the ids (or take the selection), make the change in
 * one transaction, then walk the outcome. Ids are read whole before the
 * transaction, so a slow pipe never holds the index locked.
 */
static int
act(struct ctx *c, const struct action *a, const struct cmd_args *args)
{
	struct index_admin_filter f = resolve_filter(c, args);
	struct outcome o = { c, a, 0, EX_OK };
	struct index_admin_batch *b;
	long long count[IA_NVERDICTS];
	int bulk = args->nids == 0 && !args->from_stdin, rc;

	o.report = !bulk;
	if ((b = index_admin_batch_new(c->ix)) == NULL) {
		say("%s: %s", a->name, index_errmsg(c->ix));
		return EX_IOERR;
	}
	if (!bulk && (rc = add_arg_ids(c, b, args, &o.rc)) != EX_OK) {
		index_admin_batch_free(b);
		return rc;
	}
	if (index_admin_batch_run(b, a->what, bulk ? &f : NULL, c->now,
	    count) == -1) {
		say("%s: %s", a->name, index_errmsg(c->ix));
		index_admin_batch_free(b);
		return EX_IOERR;
	}
	if (index_admin_batch_each(b, outcome_one, &o) == -1) {
		say("%s: %s", a->name, index_errmsg(c->ix));
		o.rc = EX_IOERR;
	}
	index_admin_batch_free(b);
	if (!o.report || args->from_stdin)
		summary(a, count);
	if (a->wake && count[IA_CHANGED] > 0)
		spool_wake(&c->sp);
	return c->file_error ? EX_IOERR : o.rc;
}

static int
cmd_flush(struct ctx *c, const struct cmd_args *a)
{
	return act(c, &act_flush, a);
}

static int
cmd_hold(struct ctx *c, const struct cmd_args *a)
{
	return act(c, &act_hold, a);
}

static int
cmd_release(struct ctx *c, const struct cmd_args *a)
{
	return act(c, &act_release, a);
}

static int
cmd_delete(struct ctx *c, const struct cmd_args *a)
{
	return act(c, &act_delete, a);
}

static int
cmd_requeue(struct ctx *c, const struct cmd_args *a)
{
	return act(c, &act_requeue, a);
}

/* ---- stats ---- */

/* Messages not yet sent hold bytes in the spool; sent ones only a row. */
static long long
stats_bytes(const struct index_admin_stats *st)
{
	long long sum = 0;
	int s;

	for (s = 0; s < IA_NSTATES; s++)
		if (s != IA_SENT)
			sum += st->bytes[s];
	return sum;
}

static long long
stats_age(const struct index_admin_stats *st, time_t now)
{
	if (st->oldest == 0 || st->oldest > (long long)now)
		return 0;
	return (long long)now - st->oldest;
}

static int
stats_json(const struct index_admin_stats *st, time_t now, const char *node)
{
	struct json j;
	int s;

	json_init(&j, stdout);
	json_begin_object(&j);
	json_str(&j, "node", node);
	for (s = 0; s < IA_NSTATES; s++)
		json_num(&j, index_admin_state_name(s), st->count[s]);
	json_num(&j, "oldest_age", stats_age(st, now));
	json_num(&j, "bytes", stats_bytes(st));
	json_key(&j, "totals");
	json_begin_object(&j);
	for (s = 0; s < INDEX_NTOTALS; s++)
		json_num(&j, index_total_name(s), st->total[s]);
	json_end_object(&j);
	json_end_object(&j);
	return json_finish(&j) == 0 ? EX_OK : EX_IOERR;
}

static void
prom_head_typed(const char *name, const char *help, const char *type)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
prom_head(const char *name, const char *help)
{
	prom_head_typed(name, help, "gauge");
}

/* The totals, as counters: they only grow, whatever is purged. */
static void
stats_prometheus_totals(const struct index_admin_stats *st)
{
	static const struct {
		const char *label;
		enum index_total t;
	} result[] = { { "sent", INDEX_RCPT_SENT },
	    { "deferred", INDEX_RCPT_DEFERRED },
	    { "failed", INDEX_RCPT_FAILED } };
	size_t k;

	prom_head_typed("mpp_messages_accepted_total",
	    "Messages accepted from clients since the index was made "
	    "(or upgraded to schema 2).",
	    "counter");
	printf("mpp_messages_accepted_total %lld\n", st->total[INDEX_ACCEPTED]);
	prom_head_typed("mpp_bounces_total",
	    "Bounces made for recipients that failed for good.", "counter");
	printf("mpp_bounces_total %lld\n", st->total[INDEX_BOUNCES]);
	prom_head_typed("mpp_delivery_attempts_total",
	    "Delivery attempts recorded, retries included.", "counter");
	printf("mpp_delivery_attempts_total %lld\n", st->total[INDEX_ATTEMPTS]);
	prom_head_typed("mpp_recipients_total", "Recipients by the result of "
	    "an attempt: sent, deferred (temporary failure), failed (for "
	    "good, the lifetime's end included).", "counter");
	for (k = 0; k < sizeof(result) / sizeof(result[0]); k++)
		printf("mpp_recipients_total{result=\"%s\"} %lld\n",
		    result[k].label, st->total[result[k].t]);
}

static void
stats_prometheus(const struct index_admin_stats *st, time_t now)
{
	int s;

	prom_head("mpp_queue_messages",
	    "Messages in the queue index by state.");
	for (s = 0; s < IA_NSTATES; s++)
		printf("mpp_queue_messages{state=\"%s\"} %lld\n",
		    index_admin_state_name(s), st->count[s]);
	prom_head("mpp_queue_bytes",
	    "Bytes of message files in the spool by state.");
	for (s = 0; s < IA_NSTATES; s++)
		if (s != IA_SENT)
			printf("mpp_queue_bytes{state=\"%s\"} %lld\n",
			    index_admin_state_name(s), st->bytes[s]);
	prom_head("mpp_queue_oldest_age_seconds",
	    "Age of the oldest message waiting for delivery.");
	printf("mpp_queue_oldest_age_seconds %lld\n", stats_age(st, now));
	stats_prometheus_totals(st);
}

static void
stats_human(const struct index_admin_stats *st, time_t now)
{
	int s;

	for (s = 0; s < IA_NSTATES; s++)
		printf("%-11s %lld\n", index_admin_state_name(s),
		    st->count[s]);
	printf("%-11s %lld\n", "oldest_age", stats_age(st, now));
	printf("%-11s %lld\n", "bytes", stats_bytes(st));
	printf("totals since the index was made:\n");
	for (s = 0; s < INDEX_NTOTALS; s++)
		printf("%-13s %lld\n", index_total_name(s),
		    st->total[s]);
}

static int
cmd_stats(struct ctx *c, const struct cmd_args *a)
{
	struct index_admin_stats st;

	if (index_admin_stats(c->ix, &st) == -1) {
		say("stats: %s", index_errmsg(c->ix));
		return EX_IOERR;
	}
	if (a->json)
		return stats_json(&st, c->now, c->node);
	if (a->prometheus)
		stats_prometheus(&st, c->now);
	else
		stats_human(&st, c->now);
	return EX_OK;
}

/* ---- the command table and argument parsing ---- */

#define OPT_JSON	0x01
#define OPT_PROM	0x02
#define OPT_SELECT	0x04	/* the selectors */
#define OPT_SHOW	0x08	/* --envelope, --headers, --body */
#define OPT_JSONL	0x10

enum id_args { IDS_NONE, IDS_ONE, IDS_BULK, IDS_ANY };

struct command {
	const char *name;
	int (*run)(struct ctx *c, const struct cmd_args *a);
	unsigned opts;		/* the --options it takes */
	enum id_args ids;	/* BULK: ids, "-", ALL or selectors; ANY: or
				   nothing, which is ALL */
	int changes;		/* root and the spool's owner only */
	int needs_spool;	/* reads, removes files or wakes the runner */
};

static const struct command commands[] = {
	{ "list", cmd_list, OPT_JSON | OPT_JSONL | OPT_SELECT, IDS_NONE, 0,
	    0 },
	{ "show", cmd_show, OPT_SHOW, IDS_ONE, 0, 1 },
	{ "flush", cmd_flush, OPT_SELECT, IDS_ANY, 1, 1 },
	{ "hold", cmd_hold, OPT_SELECT, IDS_BULK, 1, 0 },
	{ "release", cmd_release, OPT_SELECT, IDS_BULK, 1, 1 },
	{ "delete", cmd_delete, OPT_SELECT, IDS_BULK, 1, 1 },
	{ "requeue", cmd_requeue, OPT_SELECT, IDS_BULK, 1, 1 },
	{ "stats", cmd_stats, OPT_JSON | OPT_PROM, IDS_NONE, 0, 0 },
};

static const struct command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/*
 * "30m", "2h", "3d", "1w", "1h30m", or plain seconds: numbers each with
 * a unit (s, m, h, d, w; none after the last means seconds). Up to
 * DURATION_MAX. -1 when malformed.
 */
static int
parse_duration(const char *s, long long *out)
{
	static const char units[] = "smhdw";
	static const long long secs[] = { 1, 60, 3600, 86400, 604800 };
	const char *u;
	long long n, total = 0;

	if (*s == '\0' || strlen(s) > 32)
		return -1;
	while (*s != '\0') {
		if (*s < '0' || *s > '9')
			return -1;
		for (n = 0; *s >= '0' && *s <= '9'; s++)
			if ((n = n * 10 + (*s - '0')) > DURATION_MAX)
				return -1;
		if (*s == '\0')
			u = units;
		else if ((u = strchr(units, *s++)) == NULL || *u == '\0')
			return -1;
		if ((total += n * secs[u - units]) > DURATION_MAX)
			return -1;
	}
	*out = total;
	return 0;
}

/* Printable ASCII without blanks, 1 to max bytes. */
static int
plain_word(const char *v, size_t max)
{
	size_t n = strlen(v), i;

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return 0;
	return 1;
}

/* A bare address (no angle brackets) or "@domain"; "<>" (the null
   sender) when nullok. */
static int
set_addr(const char **dst, const char *v, int nullok)
{
	if (nullok && strcmp(v, "<>") == 0) {
		*dst = "";
		return 0;
	}
	if (!plain_word(v, ADDR_MAX) || strpbrk(v, "<>") != NULL ||
	    strcmp(v, "@") == 0 || (v[0] == '@' && strchr(v + 1, '@') != NULL))
		return -1;
	*dst = v;
	return 0;
}

/* One selector's value into a; -1 when it is malformed. */
static int
set_selector(struct cmd_args *a, int which, const char *v)
{
	switch (which) {
	case 0:
		if (strcmp(v, "all") != 0 && index_admin_state_parse(v) == -1)
			return -1;
		a->filter.state = v;
		return 0;
	case 1:
		return set_addr(&a->filter.from, v, 1);
	case 2:
		return set_addr(&a->filter.to, v, 0);
	case 3:
		if (!plain_word(v, LOGIN_MAX))
			return -1;
		a->filter.user = v;
		return 0;
	case 4:
		return parse_duration(v, &a->older);
	default:
		return parse_duration(v, &a->newer);
	}
}

static const char *const selectors[] = {
	"--state", "--from", "--to", "--user", "--older-than", "--newer-than"
};

/* The selector named by o ("--to" or "--to=..."), or -1; *v its value. */
static int
find_selector(const char *o, const char **v)
{
	size_t i, n;

	for (i = 0; i < sizeof(selectors) / sizeof(selectors[0]); i++) {
		n = strlen(selectors[i]);
		if (strncmp(o, selectors[i], n) != 0)
			continue;
		if (o[n] == '=') {
			*v = o + n + 1;
			return (int)i;
		}
		if (o[n] == '\0') {
			*v = NULL;
			return (int)i;
		}
	}
	return -1;
}

/* A selector and its value (in o or the next argument); once each. */
static int
parse_selector(struct cmd_args *a, char **argv, int argc, int *i)
{
	const char *v;
	int which = find_selector(argv[*i], &v);

	if (which == -1 || (a->selectors & (1u << which)))
		return -1;
	if (v == NULL) {
		if (*i + 1 >= argc)
			return -1;
		v = argv[++*i];
	}
	a->selectors |= 1u << which;
	return set_selector(a, which, v);
}

static const struct {
	const char *name;
	unsigned opt;		/* the OPT_ a command must take */
	unsigned show;
} flags[] = {
	{ "--json", OPT_JSON, 0 }, { "--json-lines", OPT_JSONL, 0 },
	{ "--prometheus", OPT_PROM, 0 }, { "--envelope", OPT_SHOW, SHOW_ENVELOPE },
	{ "--headers", OPT_SHOW, SHOW_HEADERS }, { "--body", OPT_SHOW, SHOW_BODY },
};

/* One --option of cmd; -1 when cmd takes no such option. */
static int
parse_opt(const struct command *cmd, struct cmd_args *a, char **argv,
    int argc, int *i)
{
	const char *o = argv[*i];
	size_t k;

	for (k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
		if (strcmp(o, flags[k].name) != 0)
			continue;
		if (!(cmd->opts & flags[k].opt))
			return -1;
		a->json |= flags[k].opt == OPT_JSON;
		a->json_lines |= flags[k].opt == OPT_JSONL;
		a->prometheus |= flags[k].opt == OPT_PROM;
		a->show |= flags[k].show;
		return 0;
	}
	if (!(cmd->opts & OPT_SELECT))
		return -1;
	return parse_selector(a, argv, argc, i);
}

/* Ids, "-" and ALL as cmd allows them; -1 for a bad mix. */
static int
check_ids(const struct command *cmd, const struct cmd_args *a)
{
	int named = a->nids > 0 || a->from_stdin;

	if (a->json + a->json_lines + a->prometheus > 1)
		return -1;
	switch (cmd->ids) {
	case IDS_NONE:
		return named || a->all ? -1 : 0;
	case IDS_ONE:
		return a->nids == 1 && !a->from_stdin && !a->all ? 0 : -1;
	case IDS_BULK:
		if (!named && !a->all && a->selectors == 0)
			return -1;
		/* FALLTHROUGH */
	default:
		return named && (a->all || a->selectors != 0) ? -1 : 0;
	}
}

/* Split argv (after the command name) into options and ids. */
static void
parse_cmd_args(const struct command *cmd, int argc, char **argv,
    struct cmd_args *a)
{
	int i;

	memset(a, 0, sizeof(*a));
	a->older = a->newer = -1;
	a->ids = argv;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0 && cmd->ids >= IDS_BULK &&
		    !a->from_stdin)
			a->from_stdin = 1;
		else if (strcmp(argv[i], "ALL") == 0 && cmd->ids >= IDS_BULK)
			a->all = 1;
		else if (argv[i][0] == '-') {
			if (parse_opt(cmd, a, argv, argc, &i) == -1)
				usage();
		} else
			argv[a->nids++] = argv[i];
	}
	if (check_ids(cmd, a) == -1)
		usage();
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	/* "+": stop at the command, whose own options follow it. */
	while ((ch = getopt(argc, argv, "+c:do:")) != -1) {
		if (ch == 'd')
			o->log_stderr = 1;
		else if (config_cli_option(&o->cli, ch, optarg) != 1)
			usage();
	}
	if (optind >= argc)
		usage();
}

static void
load_config(struct mpp_config *cfg, const struct options *o)
{
	char err[1024];

	if (config_cli_load(cfg, &o->cli, NULL, err, sizeof(err)) == -1) {
		say("%s", err);
		exit(EX_CONFIG);
	}
}

/* ---- who may do what, and main ---- */

/* Who owns the spool, and which group may read it (NULL: none). */
struct spool_owner {
	char user[64];
	char group[64];
	int group_reads;
};

static void
spool_owner(const struct stat *st, struct spool_owner *o)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char buf[4096];

	memset(o, 0, sizeof(*o));
	if (getpwuid_r(st->st_uid, &pw, buf, sizeof(buf), &pwp) == 0 &&
	    pwp != NULL)
		snprintf(o->user, sizeof(o->user), "%s", pw.pw_name);
	else
		snprintf(o->user, sizeof(o->user), "uid %ld",
		    (long)st->st_uid);
	if (getgrgid_r(st->st_gid, &gr, buf, sizeof(buf), &grp) == 0 &&
	    grp != NULL)
		snprintf(o->group, sizeof(o->group), "%s", gr.gr_name);
	else
		snprintf(o->group, sizeof(o->group), "gid %ld",
		    (long)st->st_gid);
	o->group_reads = (st->st_mode & (S_IRGRP | S_IXGRP)) ==
	    (S_IRGRP | S_IXGRP);
}

/* Why a reader may not do this: said on stderr. */
static int
refuse(const char *spool_dir, const struct command *cmd, const char *why)
{
	struct spool_owner o;
	struct stat st;

	if (stat(spool_dir, &st) == -1)
		memset(&st, 0, sizeof(st));
	spool_owner(&st, &o);
	if (cmd->changes)
		say("%s: only root and the spool's owner (%s) may change the "
		    "queue", cmd->name, o.user);
	else if (o.group_reads)
		say("%s: %s: root, %s and the members of group %s may read "
		    "the queue", spool_dir, why, o.user, o.group);
	else
		say("%s: %s: only root and %s may read the queue", spool_dir,
		    why, o.user);
	return EX_NOPERM;
}

/*
 * Root and the spool's owner open the index to change it (and the spool
 * as the command needs); anyone else only reads it, if its modes allow.
 * The index first: it fails cleanly when spool_dir does not exist, where
 * spool_open() would create it. At synchronous=FULL: an action is on disk
 * when mppq reports it, and delete removes the file only once the row's
 * removal is durable (else a power cut could bring back a row without
 * its file).
 */
static int
open_ctx(struct ctx *c, const struct mpp_config *cfg,
    const struct command *cmd)
{
	char err[1024];
	struct stat st;

	if (stat(cfg->spool_dir, &st) == -1) {
		say("%s: %s", cfg->spool_dir, strerror(errno));
		return EX_IOERR;
	}
	c->reader = geteuid() != 0 && geteuid() != st.st_uid;
	if (c->reader && cmd->changes)
		return refuse(cfg->spool_dir, cmd, NULL);
	if (c->reader)
		c->ix = index_admin_open_readonly(cfg->spool_dir, err,
		    sizeof(err));
	else
		c->ix = index_open(cfg->spool_dir, INDEX_SYNC_FULL, err,
		    sizeof(err));
	if (c->ix == NULL) {
		if (c->reader && errno == EACCES)
			return refuse(cfg->spool_dir, cmd, strerror(EACCES));
		say("%s", err);
		return EX_IOERR;
	}
	if (c->reader || !cmd->needs_spool)
		return EX_OK;
	if (spool_open(&c->sp, cfg->spool_dir, err, sizeof(err)) == -1) {
		say("%s", err);
		return EX_IOERR;
	}
	c->have_spool = 1;
	return EX_OK;
}

static void
close_ctx(struct ctx *c)
{
	if (c->have_spool)
		spool_close(&c->sp);
	index_close(c->ix);
}

/*
 * Changes are logged where the `log` key says; a log file is only
 * appended to, never made (by root, it would shut the daemons out of
 * it). When it cannot be opened the lines go to stderr.
 */
static void
start_log(const struct mpp_config *cfg, const struct options *o,
    const struct command *cmd)
{
	char err[LOG_PATH_MAX + 64];

	if (o->log_stderr || !cmd->changes)
		return;
	if (log_use(cfg->log.to, cfg->log.path, LOG_NOCREATE, err,
	    sizeof(err)) == -1) {
		say("%s; logging to standard error", err);
		(void)log_use(LOG_TO_STDERR, NULL, 0, err, sizeof(err));
	}
}

/*
 * One thread writes stdout, so stdio need not lock it for each of the
 * dozens of calls a listed message makes; and a listing of a large queue
 * goes into a pipe or file 64 KiB at a time rather than 4 KiB.
 */
static void
quick_stdout(void)
{
	static char buf[64 * 1024];

	__fsetlocking(stdout, FSETLOCKING_BYCALLER);
	if (!isatty(STDOUT_FILENO))
		(void)setvbuf(stdout, buf, _IOFBF, sizeof(buf));
}

int
main(int argc, char **argv)
{
	static struct mpp_config cfg;
	const struct command *cmd;
	struct cmd_args args;
	struct options o;
	struct ctx c;
	int rc;

	quick_stdout();
	parse_options(argc, argv, &o);
	if ((cmd = find_command(argv[optind])) == NULL)
		usage();
	parse_cmd_args(cmd, argc - optind - 1, argv + optind + 1, &args);
	log_init("mppq", o.log_stderr ? LOG_TO_STDERR : LOG_TO_SYSLOG, 0);
	load_config(&cfg, &o);
	memset(&c, 0, sizeof(c));
	c.now = time(NULL);
	if ((rc = open_ctx(&c, &cfg, cmd)) != EX_OK) {
		close_ctx(&c);
		return rc;
	}
	c.node = cfg.hostname;
	start_log(&cfg, &o, cmd);
	rc = cmd->run(&c, &args);
	close_ctx(&c);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		say("standard output: %s", strerror(errno));
		return EX_IOERR;
	}
	return rc;
}
