/*
 * index_admin — see index_admin.h. These statements run once per mppq
 * invocation, so they are prepared per call (sqlite3_prepare_v2) and
 * finalized at once rather than cached in struct index. The actions on one
 * message are a table: the states in which the change applies, the states
 * in which it is already done, and the statements that make it.
 */
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
	"next_attempt_at, lease_pid, lease_until, done_at, is_bounce"

static int
read_msg(sqlite3_stmt *st, struct index_admin_msg *m)
{
	char **text[] = { &m->id, &m->state, &m->auth_user, &m->sender,
	    &m->client_addr, &m->last_error, &m->held_from, &m->lease_host };
	long long *num[] = { &m->size, &m->received_at, &m->attempts,
	    &m->next_attempt_at, &m->lease_pid, &m->lease_until,
	    &m->done_at };
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

int
index_admin_list(struct index *ix, const char *state,
    index_admin_list_cb cb, void *arg)
{
	sqlite3_stmt *st = NULL, *rst = NULL;
	int rc = -1;

	if (index_exec(ix, "BEGIN") == -1)
		return -1;
	st = prepare(ix, "SELECT " MSG_COLUMNS " FROM message WHERE CASE "
	    "WHEN ?1 IS NULL THEN state <> 'sent' WHEN ?1 = 'all' THEN 1 "
	    "ELSE state = ?1 END ORDER BY received_at, id");
	if (st == NULL || (rst = prepare_rcpts(ix)) == NULL)
		goto done;
	if (state != NULL)
		sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
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

#define BIT(s) (1u << (s))

/* A change to one message: see index_admin.h for each. */
struct admin_action {
	const char *name;	/* for error messages */
	unsigned applies;	/* states in which sql runs */
	unsigned done;		/* states in which it is already done */
	const char *sql[3];	/* ?1 the id, ?2 now; NULL ends */
};

static const struct admin_action act_flush = {
	"flush", BIT(IA_QUEUED) | BIT(IA_DEFERRED), BIT(IA_SENDING),
	{ "UPDATE message SET next_attempt_at = MIN(next_attempt_at, ?2) "
	  "WHERE id = ?1" },
};

static const struct admin_action act_hold = {
	"hold", BIT(IA_QUEUED) | BIT(IA_DEFERRED), BIT(IA_HELD),
	{ "UPDATE message SET held_from = state, state = 'held' "
	  "WHERE id = ?1" },
};

/* A held_from that is not a state to return to means queued. */
static const struct admin_action act_release = {
	"release", BIT(IA_HELD), 0,
	{ "UPDATE message SET state = CASE WHEN held_from IN ('queued', "
	  "'deferred') THEN held_from ELSE 'queued' END, held_from = NULL, "
	  "next_attempt_at = ?2 WHERE id = ?1" },
};

/* Recipients first, so nothing depends on ON DELETE CASCADE being on. */
static const struct admin_action act_delete = {
	"delete", ~BIT(IA_SENDING), 0,
	{ "DELETE FROM recipient WHERE message_id = ?1",
	  "DELETE FROM message WHERE id = ?1" },
};

static const struct admin_action act_requeue = {
	"requeue", BIT(IA_FAILED), 0,
	{ "UPDATE recipient SET state = 'pending', last_error = NULL, "
	  "bounced = 0 WHERE message_id = ?1 AND state = 'failed'",
	  "UPDATE message SET state = 'queued', attempts = 0, "
	  "next_attempt_at = ?2, last_error = NULL, done_at = NULL, "
	  "held_from = NULL, lease_host = NULL, lease_pid = NULL, "
	  "lease_until = NULL WHERE id = ?1" },
};

/* The state of id into state: OK, UNKNOWN or ERROR. */
static int
read_state(struct index *ix, const char *id, char *state)
{
	sqlite3_stmt *st;
	int rc;

	state[0] = '\0';
	st = prepare(ix, "SELECT state FROM message WHERE id = ?1");
	if (st == NULL)
		return INDEX_ADMIN_ERROR;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		strlcpy(state, (const char *)sqlite3_column_text(st, 0),
		    INDEX_ADMIN_STATE_MAX);
	else if (rc != SQLITE_DONE)
		index_set_error(ix, "read state");
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return INDEX_ADMIN_OK;
	return rc == SQLITE_DONE ? INDEX_ADMIN_UNKNOWN : INDEX_ADMIN_ERROR;
}

/* Run one of an action's statements with id and now bound. */
static int
run_sql(struct index *ix, const char *sql, const char *id, time_t now)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = prepare(ix, sql)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		index_set_error(ix, sql);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Inside the transaction: check the state, then make the change. */
static int
apply(struct index *ix, const struct admin_action *a, const char *id,
    time_t now, char *state)
{
	int rc, s;
	size_t i;

	if ((rc = read_state(ix, id, state)) != INDEX_ADMIN_OK)
		return rc;
	if ((s = index_admin_state_parse(state)) == -1) {
		snprintf(ix->errmsg, sizeof(ix->errmsg), "%s: unknown state "
		    "in the index", a->name);
		return INDEX_ADMIN_ERROR;
	}
	if (a->done & BIT(s))
		return INDEX_ADMIN_OK;
	if (!(a->applies & BIT(s)))
		return INDEX_ADMIN_BADSTATE;
	for (i = 0; i < sizeof(a->sql) / sizeof(a->sql[0]) &&
	    a->sql[i] != NULL; i++)
		if (run_sql(ix, a->sql[i], id, now) == -1)
			return INDEX_ADMIN_ERROR;
	return INDEX_ADMIN_OK;
}

/* One action in its own write transaction. */
static int
run_action(struct index *ix, const struct admin_action *a, const char *id,
    time_t now, char *state)
{
	int rc;

	state[0] = '\0';
	if (index_begin(ix) == -1)
		return INDEX_ADMIN_ERROR;
	rc = apply(ix, a, id, now, state);
	if (rc != INDEX_ADMIN_OK) {
		index_rollback(ix);
		return rc;
	}
	return index_commit(ix) == 0 ? INDEX_ADMIN_OK : INDEX_ADMIN_ERROR;
}

int
index_admin_flush(struct index *ix, const char *id, time_t now,
    char *state)
{
	return run_action(ix, &act_flush, id, now, state);
}

int
index_admin_hold(struct index *ix, const char *id, char *state)
{
	return run_action(ix, &act_hold, id, 0, state);
}

int
index_admin_release(struct index *ix, const char *id, time_t now,
    char *state)
{
	return run_action(ix, &act_release, id, now, state);
}

int
index_admin_delete(struct index *ix, const char *id, char *state)
{
	return run_action(ix, &act_delete, id, 0, state);
}

int
index_admin_requeue(struct index *ix, const char *id, time_t now,
    char *state)
{
	return run_action(ix, &act_requeue, id, now, state);
}

long long
index_admin_flush_all(struct index *ix, time_t now)
{
	sqlite3_stmt *st;
	long long n;
	int rc;

	if (index_begin(ix) == -1)
		return -1;
	st = prepare(ix, "UPDATE message SET next_attempt_at = ?1 WHERE "
	    "state IN ('queued', 'deferred') AND next_attempt_at > ?1");
	if (st == NULL) {
		index_rollback(ix);
		return -1;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		index_set_error(ix, "flush");
	n = sqlite3_changes(ix->db);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		index_rollback(ix);
		return -1;
	}
	return index_commit(ix) == 0 ? n : -1;
}

/* Counts and bytes per state. */
static int
stats_counts(struct index *ix, struct index_admin_stats *out)
{
	sqlite3_stmt *st;
	int rc, s;

	st = prepare(ix, "SELECT state, COUNT(*), COALESCE(SUM(size), 0) "
	    "FROM message GROUP BY state");
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

	st = prepare(ix, "SELECT MIN(received_at) FROM message WHERE state "
	    "IN ('queued', 'sending', 'deferred', 'held')");
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
