/*
 * index_admin — see index_admin.h. These statements run once per mppq
 * invocation, so they are prepared per call (sqlite3_prepare_v2) and
 * finalized at once rather than cached in struct index. The actions are a
 * table: the states in which the change applies, the states in which it
 * is already done, and the statements that make it, each one statement
 * over every message of the batch, so a large batch holds the write lock
 * for as short a time as SQLite allows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "index_admin.h"
#include "index_impl.h"

static const char *const state_names[IA_NSTATES] = {
	"queued", "sending", "deferred", "held", "sent", "failed"
};

const char *
index_admin_state_name(enum index_admin_state s)
{
	return (unsigned)s < IA_NSTATES ? state_names[s] : "?";
}

int
index_admin_state_parse(const char *name)
{
	int i;

	for (i = 0; i < IA_NSTATES; i++)
		if (strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

static sqlite3_stmt *
prepare(struct index *ix, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) != SQLITE_OK) {
		index_set_error(ix, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

static void
set_oom(struct index *ix)
{
	snprintf(ix->errmsg, sizeof(ix->errmsg), "out of memory");
}

/* A copy of text column col in *out (NULL for SQL NULL); -1 when out of
 * memory. */
static int
col_dup(sqlite3_stmt *st, int col, char **out)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	*out = NULL;
	if (t == NULL)
		return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : -1;
	return (*out = strdup((const char *)t)) == NULL ? -1 : 0;
}

void
index_admin_msg_clear(struct index_admin_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].address);
		free(m->rcpts[i].state);
		free(m->rcpts[i].last_error);
	}
	free(m->rcpts);
	free(m->id);
	free(m->state);
	free(m->auth_user);
	free(m->sender);
	free(m->client_addr);
	free(m->last_error);
	free(m->held_from);
	free(m->lease_host);
	memset(m, 0, sizeof(*m));
}

/* The columns read_msg() expects, in its order. */
#define MSG_COLUMNS "id, state, auth_user, sender, client_addr, " \
	"last_error, held_from, lease_host, size, received_at, attempts, " \
	"next_attempt_at, lease_pid, lease_until, done_at, warned_at, " \
	"is_bounce"

static int
read_msg(sqlite3_stmt *st, struct index_admin_msg *m)
{
	char **text[] = { &m->id, &m->state, &m->auth_user, &m->sender,
	    &m->client_addr, &m->last_error, &m->held_from, &m->lease_host };
	long long *num[] = { &m->size, &m->received_at, &m->attempts,
	    &m->next_attempt_at, &m->lease_pid, &m->lease_until,
	    &m->done_at, &m->warned_at };
	int i, n = (int)(sizeof(text) / sizeof(text[0]));

	memset(m, 0, sizeof(*m));
	for (i = 0; i < n; i++)
		if (col_dup(st, i, text[i]) == -1)
			return -1;
	for (i = 0; i < (int)(sizeof(num) / sizeof(num[0])); i++)
		*num[i] = sqlite3_column_int64(st, n + i);
	m->is_bounce = sqlite3_column_int(st, n + i);
	return 0;
}

/* Append the recipient in st's current row to m; -1 out of memory. */
static int
add_rcpt(sqlite3_stmt *st, struct index_admin_msg *m)
{
	struct index_admin_rcpt *r;

	r = reallocarray(m->rcpts, m->nrcpts + 1, sizeof(*r));
	if (r == NULL)
		return -1;
	m->rcpts = r;
	r = &m->rcpts[m->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->bounced = sqlite3_column_int(st, 3);
	if (col_dup(st, 0, &r->address) == -1 ||
	    col_dup(st, 1, &r->state) == -1 ||
	    col_dup(st, 2, &r->last_error) == -1)
		return -1;
	return 0;
}

/* Fill m's recipients with rst, a prepared recipient query. */
static int
read_rcpts(struct index *ix, sqlite3_stmt *rst, struct index_admin_msg *m)
{
	int rc;

	sqlite3_reset(rst);
	sqlite3_bind_text(rst, 1, m->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(rst)) == SQLITE_ROW)
		if (add_rcpt(rst, m) == -1) {
			sqlite3_reset(rst);
			set_oom(ix);
			return -1;
		}
	sqlite3_reset(rst);
	if (rc != SQLITE_DONE) {
		index_set_error(ix, "recipients");
		return -1;
	}
	return 0;
}

static sqlite3_stmt *
prepare_rcpts(struct index *ix)
{
	return prepare(ix, "SELECT address, state, last_error, bounced "
	    "FROM recipient WHERE message_id = ?1 ORDER BY seq");
}

/*
 * The next message of query st with its recipients (query rst) into m:
 * 1, 0 at the end, -1 on error (m is then cleared).
 */
static int
fetch_row(struct index *ix, sqlite3_stmt *st, sqlite3_stmt *rst,
    struct index_admin_msg *m)
{
	int rc = sqlite3_step(st);

	memset(m, 0, sizeof(*m));
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW) {
		index_set_error(ix, "list");
		return -1;
	}
	if (read_msg(st, m) == -1) {
		index_admin_msg_clear(m);
		set_oom(ix);
		return -1;
	}
	if (read_rcpts(ix, rst, m) == -1) {
		index_admin_msg_clear(m);
		return -1;
	}
	return 1;
}

/* Hand every message of query st to cb: 0, -1, or cb's nonzero value. */
static int
list_rows(struct index *ix, sqlite3_stmt *st, sqlite3_stmt *rst,
    index_admin_list_cb cb, void *arg)
{
	struct index_admin_msg m;
	int rc;

	while ((rc = fetch_row(ix, st, rst, &m)) == 1) {
		rc = cb(&m, arg);
		index_admin_msg_clear(&m);
		if (rc != 0)
			return rc;
	}
	return rc;
}

/* End a read transaction; a failure here loses nothing. */
static void
read_end(struct index *ix)
{
	(void)sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL);
}

/*
 * What a filter picks, as one WHERE clause for the listing and for a
 * batch, made of the tests of the members that are set only: ?1 state,
 * ?2 from, ?3 to, ?4 user, ?5 received at or before, ?6 received after.
 * One clause with every test and a "?N IS NULL OR" in front of each
 * would read the same, but SQLite plans a statement once for any value,
 * so it could use no index for it and would scan and sort the queue.
 * Written so, a state is a search of message_state_received and the rest
 * reads message_received, both in listing order (oldest first): the
 * listing streams, with no sort. An address matches when equal without
 * regard to ASCII case, or, for "@domain", when it ends with it; it has
 * no index (a suffix in any case), so --from, --to and --user alone read
 * the index in order and test each row.
 */
#define ADDR_MATCH(col, p) \
	"(lower(" col ") = lower(" p ") OR (substr(" p ", 1, 1) = '@' AND " \
	"lower(substr(" col ", -length(" p "))) = lower(" p ")))"
#define FILTER_MAX 1024

static void
filter_where(const struct index_admin_filter *f, char *buf, size_t bufsz)
{
	strlcpy(buf, f->state == NULL ? "state <> 'sent'" :
	    strcmp(f->state, "all") == 0 ? "1" : "state = ?1", bufsz);
	if (f->from != NULL)
		strlcat(buf, " AND " ADDR_MATCH("sender", "?2"), bufsz);
	if (f->to != NULL)
		strlcat(buf, " AND EXISTS (SELECT 1 FROM recipient r WHERE "
		    "r.message_id = message.id AND " ADDR_MATCH("r.address",
		    "?3") ")", bufsz);
	if (f->user != NULL)
		strlcat(buf, " AND auth_user = ?4", bufsz);
	if (f->received_before != 0)
		strlcat(buf, " AND received_at <= ?5", bufsz);
	if (f->received_after != 0)
		strlcat(buf, " AND received_at > ?6", bufsz);
}

_Static_assert(sizeof("state = ?1") + 3 * sizeof(ADDR_MATCH("r.address",
    "?3")) + 200 < FILTER_MAX, "FILTER_MAX holds every test");

/* "SELECT <cols> FROM message WHERE <f's tests> ORDER BY received_at, id"
   prepared, with f's values bound. */
static sqlite3_stmt *
prepare_filtered(struct index *ix, const char *cols,
    const struct index_admin_filter *f)
{
	char where[FILTER_MAX], sql[FILTER_MAX + 256];
	const char *text[] = { f->state, f->from, f->to, f->user };
	sqlite3_stmt *st;
	int i;

	filter_where(f, where, sizeof(where));
	snprintf(sql, sizeof(sql), "%s FROM message WHERE %s ORDER BY "
	    "received_at, id", cols, where);
	if ((st = prepare(ix, sql)) == NULL)
		return NULL;
	for (i = 0; i < 4; i++)
		if (text[i] != NULL && (i > 0 || strcmp(text[i], "all") != 0))
			sqlite3_bind_text(st, i + 1, text[i], -1, SQLITE_STATIC);
	if (f->received_before != 0)
		sqlite3_bind_int64(st, 5, f->received_before);
	if (f->received_after != 0)
		sqlite3_bind_int64(st, 6, f->received_after);
	return st;
}

int
index_admin_list(struct index *ix, const struct index_admin_filter *f,
    index_admin_list_cb cb, void *arg)
{
	static const struct index_admin_filter none;
	sqlite3_stmt *st = NULL, *rst = NULL;
	int rc = -1;

	if (index_exec(ix, "BEGIN") == -1)
		return -1;
	st = prepare_filtered(ix, "SELECT " MSG_COLUMNS, f != NULL ? f : &none);
	if (st == NULL || (rst = prepare_rcpts(ix)) == NULL)
		goto done;
	rc = list_rows(ix, st, rst, cb, arg);
done:
	sqlite3_finalize(st);
	sqlite3_finalize(rst);
	read_end(ix);
	return rc;
}

int
index_admin_get(struct index *ix, const char *id, struct index_admin_msg *m)
{
	sqlite3_stmt *st = NULL, *rst = NULL;
	int rc = INDEX_ADMIN_ERROR;

	memset(m, 0, sizeof(*m));
	if (index_exec(ix, "BEGIN") == -1)
		return INDEX_ADMIN_ERROR;
	st = prepare(ix, "SELECT " MSG_COLUMNS " FROM message WHERE id = ?1");
	if (st == NULL || (rst = prepare_rcpts(ix)) == NULL)
		goto done;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	switch (fetch_row(ix, st, rst, m)) {
	case 0:
		rc = INDEX_ADMIN_UNKNOWN;
		break;
	case 1:
		rc = INDEX_ADMIN_OK;
		break;
	}
done:
	sqlite3_finalize(st);
	sqlite3_finalize(rst);
	read_end(ix);
	return rc;
}

/* ---- opening without write access ---- */

static int
user_version(struct index *ix, int *v)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = prepare(ix, "PRAGMA user_version")) == NULL)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	else
		index_set_error(ix, "user_version");
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* The index must be this program's version: a reader cannot upgrade. */
static int
check_version(struct index *ix)
{
	int v;

	if (user_version(ix, &v) == -1)
		return -1;
	if (v == INDEX_SCHEMA_VERSION)
		return 0;
	snprintf(ix->errmsg, sizeof(ix->errmsg), v < INDEX_SCHEMA_VERSION ?
	    "index schema version %d is older than this program's (%d): it "
	    "is upgraded when the daemons start" : "index schema version %d "
	    "is newer than this program's (%d)", v, INDEX_SCHEMA_VERSION);
	return -1;
}

struct index *
index_admin_open_readonly(const char *spool_dir, char *err, size_t errsz)
{
	struct index *ix;
	char path[4096];
	int sys;

	if ((size_t)snprintf(path, sizeof(path), "%s/index.db", spool_dir) >=
	    sizeof(path)) {
		snprintf(err, errsz, "spool_dir too long");
		return NULL;
	}
	if ((ix = calloc(1, sizeof(*ix))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (sqlite3_open_v2(path, &ix->db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK) {
		index_busy_install(ix);
		if (check_version(ix) == 0)
			return ix;
	} else
		index_set_error(ix, "open");
	sys = ix->db != NULL ? sqlite3_system_errno(ix->db) : 0;
	snprintf(err, errsz, "%s: %s", path, ix->errmsg);
	index_close(ix);
	errno = sys;
	return NULL;
}

/* ---- batches ---- */

#define BIT(s) (1u << (s))
#define ALL_STATES (BIT(IA_NSTATES) - 1)

/* The messages of a batch the action changes. */
#define PICKED "(SELECT id FROM temp.admin_sel WHERE verdict = 1)"

/* An action: see index_admin.h for each. */
struct admin_action {
	unsigned applies;	/* states it changes */
	unsigned done;		/* states in which it is already done */
	const char *sql[3];	/* on PICKED, ?1 now; NULL ends */
};

static const struct admin_action actions[IA_NACTIONS] = {
	[IA_FLUSH] = { BIT(IA_QUEUED) | BIT(IA_DEFERRED), BIT(IA_SENDING),
	    { "UPDATE message SET next_attempt_at = MIN(next_attempt_at, ?1) "
	      "WHERE id IN " PICKED } },
	[IA_HOLD] = { BIT(IA_QUEUED) | BIT(IA_DEFERRED), BIT(IA_HELD),
	    { "UPDATE message SET held_from = state, state = 'held' "
	      "WHERE id IN " PICKED } },
	/* A held_from that is not a state to return to means queued. */
	[IA_RELEASE] = { BIT(IA_HELD), 0,
	    { "UPDATE message SET state = CASE WHEN held_from IN ('queued', "
	      "'deferred') THEN held_from ELSE 'queued' END, held_from = NULL, "
	      "next_attempt_at = ?1 WHERE id IN " PICKED } },
	/* Recipients first, so nothing depends on ON DELETE CASCADE. */
	[IA_DELETE] = { ALL_STATES & ~BIT(IA_SENDING), 0,
	    { "DELETE FROM recipient WHERE message_id IN " PICKED,
	      "DELETE FROM message WHERE id IN " PICKED } },
	[IA_REQUEUE] = { BIT(IA_FAILED), 0,
	    { "UPDATE recipient SET state = 'pending', last_error = NULL, "
	      "bounced = 0 WHERE state = 'failed' AND message_id IN " PICKED,
	      "UPDATE message SET state = 'queued', attempts = 0, "
	      "next_attempt_at = ?1, last_error = NULL, done_at = NULL, "
	      "held_from = NULL, lease_host = NULL, lease_pid = NULL, "
	      "lease_until = NULL WHERE id IN " PICKED } },
};

/*
 * The ids added (admin_want, in order) and the messages a run picked
 * with their state before it and their verdict (admin_sel): temporary
 * tables, private to the connection and outside the index file.
 */
struct index_admin_batch {
	struct index *ix;
	sqlite3_stmt *add;
	int staging;		/* a transaction on the temp tables is open */
	int added;
};

static const char batch_tables[] =
    "CREATE TEMP TABLE IF NOT EXISTS admin_want (seq INTEGER PRIMARY KEY, "
    "id TEXT NOT NULL UNIQUE);"
    "CREATE TEMP TABLE IF NOT EXISTS admin_sel (seq INTEGER PRIMARY KEY, "
    "id TEXT NOT NULL UNIQUE, state TEXT, verdict INTEGER NOT NULL "
    "DEFAULT 0);"
    "DELETE FROM temp.admin_want; DELETE FROM temp.admin_sel;";

struct index_admin_batch *
index_admin_batch_new(struct index *ix)
{
	struct index_admin_batch *b;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		set_oom(ix);
		return NULL;
	}
	b->ix = ix;
	if (index_exec(ix, batch_tables) == -1 || (b->add = prepare(ix,
	    "INSERT OR IGNORE INTO temp.admin_want (id) VALUES (?1)")) ==
	    NULL) {
		free(b);
		return NULL;
	}
	return b;
}

void
index_admin_batch_free(struct index_admin_batch *b)
{
	if (b == NULL)
		return;
	sqlite3_finalize(b->add);
	if (b->staging)
		index_rollback(b->ix);
	(void)sqlite3_exec(b->ix->db, "DELETE FROM temp.admin_want; "
	    "DELETE FROM temp.admin_sel", NULL, NULL, NULL);
	free(b);
}

/*
 * The adds share one transaction, which touches only the temporary
 * tables: it takes no lock on the index, so a slow producer on a pipe
 * holds up no writer.
 */
int
index_admin_batch_add(struct index_admin_batch *b, const char *id)
{
	if (!b->staging) {
		if (index_exec(b->ix, "BEGIN") == -1)
			return -1;
		b->staging = 1;
	}
	sqlite3_bind_text(b->add, 1, id, -1, SQLITE_TRANSIENT);
	if (index_step_done(b->ix, b->add, "add id") == -1)
		return -1;
	b->added = 1;
	return 0;
}

/* ",queued,deferred,": the states of mask, for the verdict statement. */
static void
state_list(unsigned mask, char *buf, size_t bufsz)
{
	int s;

	strlcpy(buf, ",", bufsz);
	for (s = 0; s < IA_NSTATES; s++)
		if (mask & BIT(s)) {
			strlcat(buf, state_names[s], bufsz);
			strlcat(buf, ",", bufsz);
		}
}

/* Fill admin_sel: what f picks, oldest first, or the ids added. */
static int
pick(struct index *ix, const struct index_admin_filter *f)
{
	sqlite3_stmt *st;
	int rc;

	if (index_exec(ix, "DELETE FROM temp.admin_sel") == -1)
		return -1;
	if (f == NULL)
		return index_exec(ix, "INSERT INTO temp.admin_sel (seq, id, "
		    "state) SELECT w.seq, w.id, m.state FROM temp.admin_want w "
		    "LEFT JOIN message m ON m.id = w.id ORDER BY w.seq");
	st = prepare_filtered(ix, "INSERT INTO temp.admin_sel (id, state) "
	    "SELECT id, state", f);
	if (st == NULL)
		return -1;
	rc = index_step_done(ix, st, "select");
	sqlite3_finalize(st);
	return rc;
}

/* Each picked message's verdict, from the action's states. */
static int
judge(struct index *ix, const struct admin_action *a)
{
	char applies[128], done[128];
	sqlite3_stmt *st;
	int rc;

	st = prepare(ix, "UPDATE temp.admin_sel SET verdict = CASE WHEN "
	    "state IS NULL THEN 3 WHEN instr(?1, ',' || state || ',') > 0 "
	    "THEN 1 WHEN instr(?2, ',' || state || ',') > 0 THEN 2 ELSE 0 END");
	if (st == NULL)
		return -1;
	state_list(a->applies, applies, sizeof(applies));
	state_list(a->done, done, sizeof(done));
	sqlite3_bind_text(st, 1, applies, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, done, -1, SQLITE_STATIC);
	rc = index_step_done(ix, st, "verdict");
	sqlite3_finalize(st);
	return rc;
}

_Static_assert(IA_SKIPPED == 0 && IA_CHANGED == 1 && IA_UNCHANGED == 2 &&
    IA_UNKNOWN == 3, "judge() writes the verdicts as numbers");

/* Run one of an action's statements with now bound. */
static int
run_sql(struct index *ix, const char *sql, time_t now)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = prepare(ix, sql)) == NULL)
		return -1;
	if (sqlite3_bind_parameter_count(st) >= 1)
		sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	rc = index_step_done(ix, st, sql);
	sqlite3_finalize(st);
	return rc;
}

/* One pass over the batch, no GROUP BY: a large batch is not sorted. */
static int
count_verdicts(struct index *ix, long long count[IA_NVERDICTS])
{
	sqlite3_stmt *st;
	int rc, v;

	memset(count, 0, sizeof(count[0]) * IA_NVERDICTS);
	st = prepare(ix, "SELECT total(verdict = 0), total(verdict = 1), "
	    "total(verdict = 2), total(verdict = 3) FROM temp.admin_sel");
	if (st == NULL)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		for (v = 0; v < IA_NVERDICTS; v++)
			count[v] = sqlite3_column_int64(st, v);
	else
		index_set_error(ix, "count");
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

_Static_assert(IA_NVERDICTS == 4, "count_verdicts() counts four verdicts");

int
index_admin_batch_run(struct index_admin_batch *b,
    enum index_admin_action a, const struct index_admin_filter *f,
    time_t now, long long count[IA_NVERDICTS])
{
	const struct admin_action *act = &actions[a];
	struct index *ix = b->ix;
	size_t i;

	if (f != NULL && b->added) {
		snprintf(ix->errmsg, sizeof(ix->errmsg), "a batch takes ids "
		    "or a filter, not both");
		return -1;
	}
	if (b->staging) {
		b->staging = 0;
		if (index_commit(ix) == -1)
			return -1;
	}
	if (index_begin(ix) == -1)
		return -1;
	if (pick(ix, f) == -1 || judge(ix, act) == -1)
		goto fail;
	for (i = 0; i < sizeof(act->sql) / sizeof(act->sql[0]) &&
	    act->sql[i] != NULL; i++)
		if (run_sql(ix, act->sql[i], now) == -1)
			goto fail;
	if (count_verdicts(ix, count) == -1)
		goto fail;
	return index_commit(ix);
fail:
	index_rollback(ix);
	return -1;
}

int
index_admin_batch_each(struct index_admin_batch *b, index_admin_each_cb cb,
    void *arg)
{
	sqlite3_stmt *st;
	int rc = SQLITE_DONE, stop = 0, v;

	st = prepare(b->ix, "SELECT id, state, verdict FROM temp.admin_sel "
	    "ORDER BY seq");
	if (st == NULL)
		return -1;
	while (stop == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = sqlite3_column_int(st, 2);
		stop = cb((const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    v >= 0 && v < IA_NVERDICTS ? (enum index_admin_verdict)v :
		    IA_SKIPPED, arg);
	}
	if (stop == 0 && rc != SQLITE_DONE) {
		index_set_error(b->ix, "batch");
		stop = -1;
	}
	sqlite3_finalize(st);
	return stop;
}

/* Counts and bytes per state, as the triggers of state_total keep them. */
static int
stats_counts(struct index *ix, struct index_admin_stats *out)
{
	sqlite3_stmt *st;
	int rc, s;

	st = prepare(ix, "SELECT state, n, bytes FROM state_total");
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		s = index_admin_state_parse(
		    (const char *)sqlite3_column_text(st, 0));
		if (s == -1)
			continue;	/* the schema's CHECK forbids it */
		out->count[s] = sqlite3_column_int64(st, 1);
		out->bytes[s] = sqlite3_column_int64(st, 2);
	}
	if (rc != SQLITE_DONE)
		index_set_error(ix, "stats");
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The totals; a name this program does not know is left out. */
static int
stats_totals(struct index *ix, struct index_admin_stats *out)
{
	sqlite3_stmt *st;
	const char *name;
	int rc, t;

	st = prepare(ix, "SELECT name, value FROM counter");
	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		name = (const char *)sqlite3_column_text(st, 0);
		for (t = 0; name != NULL && t < INDEX_NTOTALS; t++)
			if (strcmp(name, index_total_name(t)) == 0)
				out->total[t] = sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE)
		index_set_error(ix, "stats totals");
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* received_at of the oldest message still waiting to go. */
static int
stats_oldest(struct index *ix, struct index_admin_stats *out)
{
	sqlite3_stmt *st;
	int rc;

	/* One MIN per state, each the first entry of its part of
	   message_state_received: "state IN (...)" would read them all. */
	st = prepare(ix, "SELECT MIN(m) FROM (SELECT MIN(received_at) AS m "
	    "FROM message WHERE state = 'queued' UNION ALL SELECT "
	    "MIN(received_at) FROM message WHERE state = 'sending' UNION ALL "
	    "SELECT MIN(received_at) FROM message WHERE state = 'deferred' "
	    "UNION ALL SELECT MIN(received_at) FROM message WHERE state = "
	    "'held')");
	if (st == NULL)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		out->oldest = sqlite3_column_int64(st, 0);	/* NULL: 0 */
	else
		index_set_error(ix, "stats oldest");
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

int
index_admin_stats(struct index *ix, struct index_admin_stats *st)
{
	int rc;

	memset(st, 0, sizeof(*st));
	if (index_exec(ix, "BEGIN") == -1)
		return -1;
	rc = stats_counts(ix, st) == 0 && stats_oldest(ix, st) == 0 &&
	    stats_totals(ix, st) == 0 ? 0 : -1;
	read_end(ix);
	return rc;
}
