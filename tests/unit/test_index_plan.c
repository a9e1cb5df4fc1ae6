/*
 * The index's statements on a large queue: a scaled-down form of the
 * million-message run of make bench. 20,000 messages in every state, then
 * every path of the index module is run (accept, claim, record, bounce,
 * leases, next due, purge, every listing with and without each selector,
 * every action on ids and on selectors, show, stats) with a trace on the
 * connection that catches each statement as SQLite runs it, triggers'
 * included. Each one is then put to EXPLAIN QUERY PLAN: none may scan
 * the message or recipient table. Reading an index from end to end is
 * allowed only for the listings (and the actions' picks) that take every
 * message or only selectors no index serves (--from, --to, --user):
 * there every row is read or tested anyway, and the index gives the
 * listing's order. No statement may sort but the claim (the few rows
 * its two limited searches found), and a listing stopped after its
 * first message must have done a handful of steps, not 20,000: it
 * streams.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "index.h"
#include "index_admin.h"
#include "index_impl.h"
#include "index_queue.h"

#define NMSG 20000
#define T0 1700000000LL
#define NOW 1800000000LL
#define MAX_SQL 256

struct seen {
	char *sql;
	int sorts;		/* SQLITE_STMTSTATUS_SORT, largest seen */
	int last_steps;		/* SQLITE_STMTSTATUS_VM_STEP, last run */
};

static struct seen seen[MAX_SQL];
static int nseen;

static struct seen *
seen_find(const char *sql)
{
	int i;

	for (i = 0; i < nseen; i++)
		if (strcmp(seen[i].sql, sql) == 0)
			return &seen[i];
	assert_true(nseen < MAX_SQL);
	seen[nseen].sql = strdup(sql);
	assert_non_null(seen[nseen].sql);
	return &seen[nseen++];
}

/* Every statement as it starts (trigger bodies as "-- ..." lines), and
   its counters as it ends. */
static int
trace(unsigned type, void *ctx, void *p, void *x)
{
	sqlite3_stmt *st = p;
	struct seen *s;
	const char *sql;

	if (type == SQLITE_TRACE_STMT) {
		sql = x;
		if (strncmp(sql, "--", 2) == 0)
			sql += strspn(sql + 2, " ") + 2;
		(void)seen_find(sql);
	} else if (type == SQLITE_TRACE_PROFILE &&
	    (sql = sqlite3_sql(st)) != NULL) {
		s = seen_find(sql);
		if (sqlite3_stmt_status(st, SQLITE_STMTSTATUS_SORT, 0) > s->sorts)
			s->sorts = sqlite3_stmt_status(st,
			    SQLITE_STMTSTATUS_SORT, 0);
		s->last_steps = sqlite3_stmt_status(st,
		    SQLITE_STMTSTATUS_VM_STEP, 0);
	}
	return 0;
}

struct fixture {
	char dir[64];
	struct index *ix;
};

static void
exec(struct index *ix, const char *sql)
{
	if (index_exec(ix, sql) == -1)
		fail_msg("%s: %s", sql, index_errmsg(ix));
}

/* NMSG messages, 1 to 3 recipients, from four senders and two users. */
static void
fill(struct index *ix)
{
	static const char *const rcpts[] = { "bob@example.com",
	    "carol@example.net", "dave@example.org" };
	static const char *const senders[] = { "alice@one.example",
	    "bert@two.example", "cleo@three.example", "" };
	struct index_new_msg m[500];
	const struct index_new_msg *p[500];
	char ids[500][64];
	int i, k;

	for (i = 0; i < NMSG; i += 500) {
		for (k = 0; k < 500; k++) {
			snprintf(ids[k], sizeof(ids[k]), "%lld.M%06dP1Q%d",
			    T0 + i + k, k, i + k);
			m[k] = (struct index_new_msg){ ids[k],
			    (i + k) % 2 ? "alice" : "bert", senders[(i + k) % 4],
			    "192.0.2.7", 1000, T0 + i + k, (i + k) % 4 == 3,
			    (size_t)(1 + (i + k) % 3), rcpts };
			p[k] = &m[k];
		}
		assert_int_equal(index_insert_batch(ix, p, 500), 0);
	}
	/* The states a runner and an administrator leave. */
	exec(ix, "UPDATE message SET state = 'deferred', attempts = 1, "
	    "next_attempt_at = 1900000000 WHERE rowid % 10 IN (1, 2, 3, 4)");
	exec(ix, "UPDATE message SET state = 'sent', done_at = received_at "
	    "WHERE rowid % 10 IN (5, 6)");
	exec(ix, "UPDATE recipient SET state = 'sent' WHERE message_id IN "
	    "(SELECT id FROM message WHERE state = 'sent')");
	exec(ix, "UPDATE message SET state = 'failed', done_at = received_at "
	    "WHERE rowid % 10 = 7");
	exec(ix, "UPDATE recipient SET state = 'failed' WHERE message_id IN "
	    "(SELECT id FROM message WHERE state = 'failed')");
	exec(ix, "UPDATE message SET held_from = state, state = 'held' "
	    "WHERE rowid % 10 = 8");
	exec(ix, "UPDATE message SET state = 'sending', lease_host = 'h', "
	    "lease_pid = 1, lease_until = 1 WHERE rowid % 100 = 9");
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_index_plan.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	if ((f->ix = index_open(f->dir, INDEX_SYNC_NORMAL, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	fill(f->ix);
	nseen = 0;
	sqlite3_trace_v2(f->ix->db, SQLITE_TRACE_STMT | SQLITE_TRACE_PROFILE,
	    trace, NULL);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	int i;

	index_close(f->ix);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	for (i = 0; i < nseen; i++)
		free(seen[i].sql);
	nseen = 0;
	free(f);
	return 0;
}

static void
gone_ignored(const char *id, void *ctx)
{
	(void)id;
	(void)ctx;
}

/* The runner's and mppd's paths. */
static void
run_queue_paths(struct index *ix)
{
	static const char *const one[] = { "zed@example.com" };
	const struct index_new_msg bounce = { "1800000000.M1P2Q1", "", "",
	    "127.0.0.1", 300, NOW, 1, 1, one };
	const struct index_new_msg *batch[] = { &bounce };
	struct index_claim c[4];
	struct index_rcpt *r;
	struct index_result res;
	long long seq[3] = { 0, 1, 2 };
	enum outcome outcome[3] = { OUTCOME_OK, OUTCOME_TEMP, OUTCOME_PERM };
	const char *reply[3] = { "250 ok", "451 later", "550 no" };
	size_t n;
	int k;

	assert_int_equal(index_release_stale_leases(ix, "h", NOW), NMSG / 100);
	assert_true(index_next_due(ix) > 0);
	assert_int_equal(index_claim_due(ix, "h", 2, NOW, NOW, 600, c, 4), 4);
	for (k = 0; k < 4; k++) {
		assert_int_equal(index_rcpts(ix, c[k].id, 0, &r, &n), 0);
		free(r);
		assert_int_equal(index_rcpts(ix, c[k].id, 1, &r, &n), 0);
		free(r);
		assert_int_equal(index_renew_lease(ix, c[k].id, "h", 2,
		    NOW + 900), 1);
	}
	memset(&res, 0, sizeof(res));
	res.host = "h";
	res.pid = 2;
	res.now = NOW;
	res.seq = seq;
	res.outcome = outcome;
	res.reply = reply;
	res.next_attempt_at = NOW + 60;
	res.id = c[0].id;
	res.n = 1;
	assert_int_equal(index_record(ix, &res), 1);	/* deferred */
	res.id = c[1].id;
	res.finished = res.expired = 1;
	res.bounce = &bounce;
	assert_int_equal(index_record(ix, &res), 1);	/* expired, bounced */
	assert_int_equal(index_unclaim(ix, c[2].id, "h", 2, NOW), 0);
	assert_int_equal(index_exists(ix, c[3].id), 1);
	assert_true(index_file_need(ix, c[3].id) >= 0);
	assert_int_equal(index_insert_batch(ix, batch, 0), 0);
	assert_int_equal(index_purge_sent(ix, NOW, 0, INDEX_PURGE_BATCH,
	    gone_ignored, NULL), INDEX_PURGE_BATCH);
}

static int
count_cb(const struct index_admin_msg *m, void *arg)
{
	(void)m;
	(*(long *)arg)++;
	return 0;
}

static int
first_only(const struct index_admin_msg *m, void *arg)
{
	(void)m;
	(void)arg;
	return 1;
}

static int
each_cb(const char *id, const char *old_state, enum index_admin_verdict v,
    void *arg)
{
	(void)id;
	(void)old_state;
	(void)v;
	(void)arg;
	return 0;
}

/* Every combination of the selectors, for listings and for actions. */
static struct index_admin_filter
filter_n(unsigned bits, const char *state)
{
	struct index_admin_filter f = { 0 };

	f.state = state;
	if (bits & 1)
		f.from = "@TWO.example";
	if (bits & 2)
		f.to = "carol@example.net";
	if (bits & 4)
		f.user = "alice";
	if (bits & 8)
		f.received_before = T0 + NMSG / 2;
	if (bits & 16)
		f.received_after = T0 + NMSG / 4;
	return f;
}

static const char *const states[] = { NULL, "all", "queued", "sending",
    "deferred", "held", "sent", "failed" };

static void
run_admin_paths(struct index *ix)
{
	struct index_admin_batch *b;
	struct index_admin_filter f;
	struct index_admin_stats st;
	struct index_admin_msg m;
	long long count[IA_NVERDICTS];
	unsigned bits, s, a;
	long n = 0;

	for (s = 0; s < sizeof(states) / sizeof(states[0]); s++)
		for (bits = 0; bits < 32; bits++) {
			f = filter_n(bits, states[s]);
			/* A sort would come before the first row. */
			assert_true(index_admin_list(ix, &f, first_only, NULL)
			    >= 0);
		}
	f = filter_n(0, "all");
	assert_int_equal(index_admin_list(ix, &f, count_cb, &n), 0);
	assert_true(n > NMSG / 2);
	assert_int_equal(index_admin_stats(ix, &st), 0);
	assert_int_equal(index_admin_get(ix, "1700000001.M000001P1Q1", &m),
	    INDEX_ADMIN_OK);
	index_admin_msg_clear(&m);
	for (a = 0; a < IA_NACTIONS; a++) {
		assert_non_null(b = index_admin_batch_new(ix));
		assert_int_equal(index_admin_batch_add(b,
		    "1700000003.M000003P1Q3"), 0);
		assert_int_equal(index_admin_batch_run(b, a, NULL, NOW, count),
		    0);
		index_admin_batch_free(b);
		for (bits = 0; bits < 32; bits += 31) {
			f = filter_n(bits, states[a % 3]);
			assert_non_null(b = index_admin_batch_new(ix));
			assert_int_equal(index_admin_batch_run(b, a, &f, NOW,
			    count), 0);
			assert_int_equal(index_admin_batch_each(b, each_cb,
			    NULL), 0);
			index_admin_batch_free(b);
		}
	}
}

/* Statements that are no query on the index's tables. */
static int
not_a_query(const char *sql)
{
	static const char *const skip[] = { "BEGIN", "COMMIT", "ROLLBACK",
	    "PRAGMA", "CREATE TEMP", "DELETE FROM temp.", "TRIGGER " };
	size_t i;

	for (i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (strncmp(sql, skip[i], strlen(skip[i])) == 0)
			return 1;
	/* A trigger's body: checked on its own in the test. */
	return strstr(sql, "OLD.") != NULL || strstr(sql, "NEW.") != NULL;
}

/* A listing (or an action's pick) that reads messages in listing order. */
static int
is_listing(const char *sql)
{
	return strstr(sql, "ORDER BY received_at, id") != NULL;
}

/* Listings allowed to read an index whole: no state, no age. */
static int
may_read_whole_index(const char *sql)
{
	return is_listing(sql) && strstr(sql, "state = ?1") == NULL &&
	    strstr(sql, "received_at <= ?5") == NULL &&
	    strstr(sql, "received_at > ?6") == NULL;
}

/* A plan line that reads the message or recipient table (as themselves
   or by the statements' aliases m and r) from end to end. */
static int
scans_queue(const char *detail)
{
	static const char *const names[] = { "message", "recipient", "m",
	    "r" };
	size_t i, n;

	if (strncmp(detail, "SCAN ", 5) != 0)
		return 0;
	detail += 5;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		n = strlen(names[i]);
		if (strncmp(detail, names[i], n) == 0 &&
		    (detail[n] == '\0' || detail[n] == ' '))
			return 1;
	}
	return 0;
}

/* EXPLAIN QUERY PLAN of sql: each detail line checked; the count of
   whole-index reads. */
static int
check_plan(struct index *ix, const char *sql)
{
	char eqp[4096];
	sqlite3_stmt *st;
	const char *d;
	int whole = 0;

	snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", sql);
	if (sqlite3_prepare_v2(ix->db, eqp, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(ix->db));
	if (getenv("INDEX_PLAN_SHOW") != NULL)
		printf("%s\n", sql);
	while (sqlite3_step(st) == SQLITE_ROW) {
		d = (const char *)sqlite3_column_text(st, 3);
		if (getenv("INDEX_PLAN_SHOW") != NULL)
			printf("    %s\n", d);
		if (scans_queue(d)) {
			if (strstr(d, " USING ") == NULL)
				fail_msg("full table scan: %s\n  in %s", d,
				    sql);
			if (!may_read_whole_index(sql))
				fail_msg("whole index read: %s\n  in %s", d,
				    sql);
			whole++;
		}
		/* The claim sorts the few rows its two limited searches
		   found; nothing else may sort. */
		if (strstr(d, "TEMP B-TREE") != NULL &&
		    strstr(sql, "UNION ALL") == NULL)
			fail_msg("sorts: %s\n  in %s", d, sql);
	}
	sqlite3_finalize(st);
	return whole;
}

static void
test_every_statement_uses_an_index(void **state)
{
	struct fixture *f = *state;
	int i, queries = 0, listings = 0;

	run_queue_paths(f->ix);
	run_admin_paths(f->ix);
	sqlite3_trace_v2(f->ix->db, 0, NULL, NULL);
	for (i = 0; i < nseen; i++) {
		if (not_a_query(seen[i].sql))
			continue;
		queries++;
		listings += is_listing(seen[i].sql);
		(void)check_plan(f->ix, seen[i].sql);
		if (is_listing(seen[i].sql) && seen[i].sorts != 0)
			fail_msg("listing sorted: %s", seen[i].sql);
	}
	/* Every path ran: the queue's statements, the listings of each
	   state crossed with the selectors, the actions' statements. */
	assert_true(queries > 100);
	assert_true(listings >= 3 * 32);
	/* The triggers' statements (traced by name only). */
	(void)check_plan(f->ix, "UPDATE state_total SET n = n + 1, bytes = "
	    "bytes + 1 WHERE state = 'queued'");
}

/* A listing hands out its first message before reading the rest. */
static void
test_listing_streams(void **state)
{
	struct fixture *f = *state;
	struct index_admin_filter all = { .state = "all" };
	struct index_admin_filter deferred = { .state = "deferred" };
	const struct index_admin_filter *fs[] = { NULL, &all, &deferred };
	size_t k;
	int i, found;

	for (k = 0; k < sizeof(fs) / sizeof(fs[0]); k++) {
		assert_int_equal(index_admin_list(f->ix, fs[k], first_only,
		    NULL), 1);
		found = 0;
		for (i = 0; i < nseen; i++)
			if (strncmp(seen[i].sql, "SELECT id, state", 16) == 0 &&
			    is_listing(seen[i].sql)) {
				found = 1;
				/* 20,000 rows read would be 100,000s of
				   steps; one row is some dozens. */
				assert_true(seen[i].last_steps < 500);
			}
		assert_true(found);
		for (i = 0; i < nseen; i++)
			free(seen[i].sql);
		nseen = 0;
	}
}

/* The per-state totals the triggers keep are those a count finds. */
static void
test_state_totals_match(void **state)
{
	struct fixture *f = *state;
	struct index_admin_stats st;
	sqlite3_stmt *q;
	int s;

	run_queue_paths(f->ix);
	run_admin_paths(f->ix);
	assert_int_equal(index_admin_stats(f->ix, &st), 0);
	assert_int_equal(sqlite3_prepare_v2(f->ix->db, "SELECT state, "
	    "count(*), sum(size) FROM message GROUP BY state", -1, &q, NULL),
	    SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW) {
		s = index_admin_state_parse((const char *)
		    sqlite3_column_text(q, 0));
		assert_true(s >= 0);
		assert_int_equal(st.count[s], sqlite3_column_int64(q, 1));
		assert_int_equal(st.bytes[s], sqlite3_column_int64(q, 2));
		st.count[s] = -1;
	}
	sqlite3_finalize(q);
	for (s = 0; s < IA_NSTATES; s++)
		assert_true(st.count[s] == -1 || st.count[s] == 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_every_statement_uses_an_index),
		T(test_listing_streams),
		T(test_state_totals_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
