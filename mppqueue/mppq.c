/*
 * mppq — the administrator's window on the queue (docs/mppq.8): list, show,
 * flush, hold, release, delete, requeue, stats. Flags and config, then one
 * command from a table; the SQL lives in common/index_admin.c, this file
 * only parses arguments and formats what the index returns.
 *
 * Exit codes are an interface: 0 done; 1 some queue id was unknown, not
 * valid, or in a state that forbids the change (the other ids are still
 * processed); 64 usage; 74 the index or the spool failed; 78 config.
 * Changes are logged (syslog, facility mail; stderr with -d) with the id.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
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

struct options {
	struct config_cli cli;
	int log_stderr;
};

/* A command's arguments after its name. */
struct cmd_args {
	int json;
	int prometheus;
	const char *state;	/* list --state; NULL: all but sent */
	char **ids;
	int nids;
};

struct ctx {
	struct index *ix;
	struct spool sp;
	int have_spool;
	int file_error;		/* a message file could not be removed */
	time_t now;
	const char *node;	/* hostname: whose queue this is */
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: mppq [-d] [-c file] [-o key=value]... command\n"
	    "  list [--json] [--state state|all]\n"
	    "  show id\n"
	    "  flush [id...]\n"
	    "  hold id...\n"
	    "  release id...\n"
	    "  delete id...\n"
	    "  requeue id...\n"
	    "  stats [--json | --prometheus]\n");
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
list_json(struct ctx *c, const struct cmd_args *a)
{
	struct list_totals t = { 0, 0, NULL, c->node };
	struct json j;

	json_init(&j, stdout);
	t.j = &j;
	json_begin_array(&j);
	if (index_admin_list(c->ix, a->state, list_json_one, &t) != 0) {
		say("list: %s", index_errmsg(c->ix));
		return EX_IOERR;
	}
	json_end_array(&j);
	return json_finish(&j) == 0 ? EX_OK : EX_IOERR;
}

static int
cmd_list(struct ctx *c, const struct cmd_args *a)
{
	struct list_totals t = { 0, 0, NULL, NULL };

	if (a->json)
		return list_json(c, a);
	if (index_admin_list(c->ix, a->state, list_human_one, &t) != 0) {
		say("list: %s", index_errmsg(c->ix));
		return EX_IOERR;
	}
	if (t.n == 0)
		printf("%s\n", a->state == NULL ? "Mail queue is empty" :
		    "No messages");
	else
		printf("-- %lld message%s, %lld bytes\n", t.n,
		    t.n == 1 ? "" : "s", t.bytes);
	return EX_OK;
}

/* ---- show ---- */

static void
show_meta(const struct index_admin_msg *m)
{
	char b[SAFE_MAX], t[32];

	printf("id:              %s\n", safe(m->id, b, sizeof(b)));
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

/* Copy the message file to stdout as it is stored. */
static int
show_text(struct ctx *c, const struct index_admin_msg *m)
{
	char buf[65536];
	ssize_t n;
	int fd;

	if ((fd = spool_open_msg(&c->sp, m->id)) == -1) {
		if (errno == ENOENT && strcmp(m->state, "sent") == 0) {
			printf("(sent: the message file is no longer kept)\n");
			return EX_OK;
		}
		say("%s: message file: %s", m->id, strerror(errno));
		return EX_IOERR;
	}
	printf("\n");
	fflush(stdout);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			break;
	if (n == -1)
		say("%s: read: %s", m->id, strerror(errno));
	close(fd);
	return n == 0 ? EX_OK : EX_IOERR;
}

static int
cmd_show(struct ctx *c, const struct cmd_args *a)
{
	struct index_admin_msg m;
	char b[SAFE_MAX];
	int rc;

	if (!spool_id_valid(a->ids[0])) {
		say("%s: not a valid queue id", safe(a->ids[0], b, sizeof(b)));
		return EX_NOTDONE;
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
	printf("node:            %s\n", c->node);
	show_meta(&m);
	show_rcpts(&m);
	rc = show_text(c, &m);
	index_admin_msg_clear(&m);
	return rc;
}

/* ---- actions on ids ---- */

struct id_action {
	const char *name;
	int (*run)(struct ctx *c, const char *id, char *state);
	int wake;		/* the runner should look again after it */
};

static int
do_flush(struct ctx *c, const char *id, char *state)
{
	return index_admin_flush(c->ix, id, c->now, state);
}

static int
do_hold(struct ctx *c, const char *id, char *state)
{
	return index_admin_hold(c->ix, id, state);
}

static int
do_release(struct ctx *c, const char *id, char *state)
{
	return index_admin_release(c->ix, id, c->now, state);
}

static int
do_requeue(struct ctx *c, const char *id, char *state)
{
	return index_admin_requeue(c->ix, id, c->now, state);
}

/*
 * The row goes first, in its transaction; then the file. A file left by a
 * crash in between is an orphan that reconciliation moves aside.
 */
static int
do_delete(struct ctx *c, const char *id, char *state)
{
	int rc = index_admin_delete(c->ix, id, state);

	if (rc != INDEX_ADMIN_OK)
		return rc;
	if (spool_remove(&c->sp, id) == -1 && errno != ENOENT) {
		say("%s: removing the message file: %s", id, strerror(errno));
		log_warn("id=%s action=delete: file not removed", id);
		c->file_error = 1;
	}
	return INDEX_ADMIN_OK;
}

static const struct id_action act_flush = { "flush", do_flush, 1 };
static const struct id_action act_hold = { "hold", do_hold, 0 };
static const struct id_action act_release = { "release", do_release, 1 };
static const struct id_action act_delete = { "delete", do_delete, 0 };
static const struct id_action act_requeue = { "requeue", do_requeue, 1 };

/* Run action a on one id; the exit code it earns. */
static int
act_on(struct ctx *c, const struct id_action *a, const char *id)
{
	char state[INDEX_ADMIN_STATE_MAX], b[SAFE_MAX];

	if (!spool_id_valid(id)) {
		say("%s: not a valid queue id", safe(id, b, sizeof(b)));
		return EX_NOTDONE;
	}
	switch (a->run(c, id, state)) {
	case INDEX_ADMIN_OK:
		log_info("id=%s action=%s old_state=%s uid=%ld", id, a->name,
		    state, (long)getuid());
		return EX_OK;
	case INDEX_ADMIN_UNKNOWN:
		say("%s: no such message", id);
		return EX_NOTDONE;
	case INDEX_ADMIN_BADSTATE:
		say("%s: cannot %s a message in state %s", id, a->name,
		    state);
		return EX_NOTDONE;
	default:
		say("%s: %s", id, index_errmsg(c->ix));
		return EX_IOERR;
	}
}

/* Every id in turn; an index error stops the rest. */
static int
act_on_ids(struct ctx *c, const struct id_action *a,
    const struct cmd_args *args)
{
	int i, rc, worst = EX_OK, done = 0;

	for (i = 0; i < args->nids; i++) {
		rc = act_on(c, a, args->ids[i]);
		if (rc == EX_OK)
			done++;
		else if (worst != EX_IOERR)
			worst = rc;
		if (rc == EX_IOERR)
			break;
	}
	if (a->wake && done > 0)
		spool_wake(&c->sp);
	return c->file_error ? EX_IOERR : worst;
}

static int
cmd_flush(struct ctx *c, const struct cmd_args *a)
{
	long long n;

	if (a->nids > 0)
		return act_on_ids(c, &act_flush, a);
	if ((n = index_admin_flush_all(c->ix, c->now)) == -1) {
		say("flush: %s", index_errmsg(c->ix));
		return EX_IOERR;
	}
	log_info("action=flush messages=%lld uid=%ld", n, (long)getuid());
	spool_wake(&c->sp);
	return EX_OK;
}

static int
cmd_hold(struct ctx *c, const struct cmd_args *a)
{
	return act_on_ids(c, &act_hold, a);
}

static int
cmd_release(struct ctx *c, const struct cmd_args *a)
{
	return act_on_ids(c, &act_release, a);
}

static int
cmd_delete(struct ctx *c, const struct cmd_args *a)
{
	return act_on_ids(c, &act_delete, a);
}

static int
cmd_requeue(struct ctx *c, const struct cmd_args *a)
{
	return act_on_ids(c, &act_requeue, a);
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
stats_json(const struct index_admin_stats *st, time_t now)
{
	struct json j;
	int s;

	json_init(&j, stdout);
	json_begin_object(&j);
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
		return stats_json(&st, c->now);
	if (a->prometheus)
		stats_prometheus(&st, c->now);
	else
		stats_human(&st, c->now);
	return EX_OK;
}

/* ---- the command table and argument parsing ---- */

#define OPT_JSON	0x01
#define OPT_STATE	0x02
#define OPT_PROM	0x04

enum id_args { IDS_NONE, IDS_ONE, IDS_SOME, IDS_ANY };

struct command {
	const char *name;
	int (*run)(struct ctx *c, const struct cmd_args *a);
	unsigned opts;		/* the --options it takes */
	enum id_args ids;
	int needs_spool;	/* reads, removes files or wakes the runner */
};

static const struct command commands[] = {
	{ "list", cmd_list, OPT_JSON | OPT_STATE, IDS_NONE, 0 },
	{ "show", cmd_show, 0, IDS_ONE, 1 },
	{ "flush", cmd_flush, 0, IDS_ANY, 1 },
	{ "hold", cmd_hold, 0, IDS_SOME, 0 },
	{ "release", cmd_release, 0, IDS_SOME, 1 },
	{ "delete", cmd_delete, 0, IDS_SOME, 1 },
	{ "requeue", cmd_requeue, 0, IDS_SOME, 1 },
	{ "stats", cmd_stats, OPT_JSON | OPT_PROM, IDS_NONE, 0 },
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

/* --state S or --state=S: S must be a state name or "all". */
static int
parse_state(struct cmd_args *a, char **argv, int argc, int *i)
{
	const char *v;

	if (strncmp(argv[*i], "--state=", 8) == 0)
		v = argv[*i] + 8;
	else if (*i + 1 < argc)
		v = argv[++*i];
	else
		return -1;
	if (strcmp(v, "all") != 0 && index_admin_state_parse(v) == -1)
		return -1;
	a->state = v;
	return 0;
}

/* One --option of cmd; -1 when cmd takes no such option. */
static int
parse_opt(const struct command *cmd, struct cmd_args *a, char **argv,
    int argc, int *i)
{
	const char *o = argv[*i];

	if ((cmd->opts & OPT_JSON) && strcmp(o, "--json") == 0)
		a->json = 1;
	else if ((cmd->opts & OPT_PROM) && strcmp(o, "--prometheus") == 0)
		a->prometheus = 1;
	else if ((cmd->opts & OPT_STATE) && (strcmp(o, "--state") == 0 ||
	    strncmp(o, "--state=", 8) == 0))
		return parse_state(a, argv, argc, i);
	else
		return -1;
	return 0;
}

/* Split argv (after the command name) into options and ids. */
static void
parse_cmd_args(const struct command *cmd, int argc, char **argv,
    struct cmd_args *a)
{
	int i;

	memset(a, 0, sizeof(*a));
	a->ids = argv;
	for (i = 0; i < argc; i++) {
		if (argv[i][0] == '-') {
			if (parse_opt(cmd, a, argv, argc, &i) == -1)
				usage();
		} else
			argv[a->nids++] = argv[i];
	}
	if (a->json && a->prometheus)
		usage();
	if ((cmd->ids == IDS_NONE && a->nids != 0) ||
	    (cmd->ids == IDS_ONE && a->nids != 1) ||
	    (cmd->ids == IDS_SOME && a->nids == 0))
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

/*
 * The index first: it fails cleanly when spool_dir does not exist, where
 * spool_open() would create it. At synchronous=FULL: an action is on disk
 * when mppq reports it, and delete removes the file only once the row's
 * removal is durable (else a power cut could bring back a row without
 * its file).
 */
static int
open_ctx(struct ctx *c, const struct mpp_config *cfg, int needs_spool)
{
	char err[1024];

	memset(c, 0, sizeof(*c));
	c->now = time(NULL);
	if ((c->ix = index_open(cfg->spool_dir, INDEX_SYNC_FULL, err,
	    sizeof(err))) == NULL) {
		say("%s", err);
		return -1;
	}
	if (!needs_spool)
		return 0;
	if (spool_open(&c->sp, cfg->spool_dir, err, sizeof(err)) == -1) {
		say("%s", err);
		return -1;
	}
	c->have_spool = 1;
	return 0;
}

static void
close_ctx(struct ctx *c)
{
	if (c->have_spool)
		spool_close(&c->sp);
	index_close(c->ix);
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

	parse_options(argc, argv, &o);
	if ((cmd = find_command(argv[optind])) == NULL)
		usage();
	parse_cmd_args(cmd, argc - optind - 1, argv + optind + 1, &args);
	log_init("mppq", o.log_stderr ? LOG_TO_STDERR : LOG_TO_SYSLOG, 0);
	load_config(&cfg, &o);
	if (open_ctx(&c, &cfg, cmd->needs_spool) == -1) {
		close_ctx(&c);
		return EX_IOERR;
	}
	c.node = cfg.hostname;
	rc = cmd->run(&c, &args);
	close_ctx(&c);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		say("standard output: %s", strerror(errno));
		return EX_IOERR;
	}
	return rc;
}
