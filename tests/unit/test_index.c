/*
 * Unit tests for common/index.c: opening (schema creation, upgrade from
 * version 1, version check, file modes), the batch insert of accepted
 * messages and index_exists(); an index removed or replaced while open
 * (index_moved, what the old file leaves beside the path); the claim of
 * due messages and the totals kept in table counter
 * (common/index_queue.c). The database
 * lives in a fresh temporary directory per test; a second, plain SQLite
 * handle looks at what was written.
 */

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "index.h"
#include "index_queue.h"
#include "tmpdir.h"

struct fixture {
	char dir[PATH_MAX / 2];
	char db[PATH_MAX / 2 + 16];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	tmpdir_make(f->dir, sizeof(f->dir), "index");
	snprintf(f->db, sizeof(f->db), "%s/index.db", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* The first column of the first row of sql, as an integer. */
static long long
query_int(const char *db, const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	long long v = -1;

	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* The same, as text (into out). */
static void
query_text(const char *db, const char *sql, char *out, size_t outsz)
{
	sqlite3 *h;
	sqlite3_stmt *st;

	out[0] = '\0';
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_text(st, 0) != NULL)
		snprintf(out, outsz, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
}

static struct index *
open_ok(const struct fixture *f)
{
	char err[512] = "";
	struct index *ix = index_open(f->dir, INDEX_SYNC_FULL, err,
	    sizeof(err));

	if (ix == NULL) {
		print_error("index_open: %s\n", err);
		fail();
	}
	return ix;
}

static void
test_open_creates_schema(void **state)
{
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	char mode[32];

	assert_int_equal(query_int(f->db, "PRAGMA user_version"),
	    INDEX_SCHEMA_VERSION);
	assert_int_equal(INDEX_SCHEMA_VERSION, 4);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM "
	    "pragma_table_info('message') WHERE name = 'warned_at'"), 1);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name IN ('message', 'recipient', "
	    "'counter')"), 3);
	query_text(f->db, "PRAGMA journal_mode", mode, sizeof(mode));
	assert_string_equal(mode, "wal");
	index_close(ix);
	index_close(NULL);
}

static void
test_insert_and_exists(void **state)
{
	static const char *const r1[] = { "bob@example.com",
	    "carol@example.com" };
	static const char *const r2[] = { "dave@example.net" };
	const struct index_new_msg m1 = { "1.M1P1Q1", "alice",
	    "alice@example.org", "192.0.2.7", 1234, 1700000000, 0, 2, r1 };
	const struct index_new_msg m2 = { "1.M1P1Q2", "bob", "bob@example.org",
	    "2001:db8::7", 99, 1700000001, 0, 1, r2 };
	const struct index_new_msg *batch[] = { &m1, &m2 };
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	char text[256];

	assert_int_equal(index_exists(ix, "1.M1P1Q1"), 0);
	assert_int_equal(index_insert_batch(ix, batch, 2), 0);
	assert_int_equal(index_exists(ix, "1.M1P1Q1"), 1);
	assert_int_equal(index_exists(ix, "1.M1P1Q2"), 1);
	assert_int_equal(index_exists(ix, "1.M1P1Q3"), 0);
	assert_int_equal(index_exists(ix, "1.m1p1q1"), 0);
	/* What the rows say. */
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM recipient "
	    "WHERE message_id = '1.M1P1Q1'"), 2);
	query_text(f->db, "SELECT address FROM recipient WHERE message_id = "
	    "'1.M1P1Q1' AND seq = 1", text, sizeof(text));
	assert_string_equal(text, "carol@example.com");
	query_text(f->db, "SELECT state FROM message WHERE id = '1.M1P1Q2'",
	    text, sizeof(text));
	assert_string_equal(text, "queued");
	query_text(f->db, "SELECT client_addr FROM message WHERE id = "
	    "'1.M1P1Q2'", text, sizeof(text));
	assert_string_equal(text, "2001:db8::7");
	assert_int_equal(query_int(f->db, "SELECT size FROM message WHERE id "
	    "= '1.M1P1Q1'"), 1234);
	assert_int_equal(query_int(f->db, "SELECT next_attempt_at FROM message"
	    " WHERE id = '1.M1P1Q2'"), 1700000001);
	/* An empty batch is fine. */
	assert_int_equal(index_insert_batch(ix, batch, 0), 0);
	index_close(ix);
}

/* A batch is one transaction: a duplicate id rolls back all of it. */
static void
test_batch_is_atomic(void **state)
{
	static const char *const r[] = { "bob@example.com" };
	const struct index_new_msg m1 = { "1.M1P1Q1", "alice",
	    "alice@example.org", "192.0.2.7", 1, 1, 0, 1, r };
	const struct index_new_msg m2 = { "1.M1P1Q2", "alice",
	    "alice@example.org", "192.0.2.7", 1, 1, 0, 1, r };
	const struct index_new_msg *first[] = { &m1 };
	const struct index_new_msg *second[] = { &m2, &m1 };
	struct fixture *f = *state;
	struct index *ix = open_ok(f);

	assert_int_equal(index_insert_batch(ix, first, 1), 0);
	assert_int_equal(index_insert_batch(ix, second, 2), -1);
	assert_true(strlen(index_errmsg(ix)) > 0);
	assert_int_equal(index_exists(ix, "1.M1P1Q2"), 0);
	/* The handle still works after the failure. */
	assert_int_equal(index_insert_batch(ix, second, 1), 0);
	assert_int_equal(index_exists(ix, "1.M1P1Q2"), 1);
	index_close(ix);
}

/* Special characters are data, never SQL. */
static void
test_bound_parameters(void **state)
{
	static const char *const r[] = { "x'); DROP TABLE message; --@e.org" };
	const struct index_new_msg m = { "1.M1P1Q1", "o'brien",
	    "o'brien@example.org", "192.0.2.7", 1, 1, 0, 1, r };
	const struct index_new_msg *batch[] = { &m };
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	char text[256];

	assert_int_equal(index_insert_batch(ix, batch, 1), 0);
	assert_int_equal(index_exists(ix, "1.M1P1Q1"), 1);
	assert_int_equal(index_exists(ix, "' OR '1'='1"), 0);
	query_text(f->db, "SELECT address FROM recipient", text, sizeof(text));
	assert_string_equal(text, r[0]);
	index_close(ix);
}

static void
test_reopen(void **state)
{
	static const char *const r[] = { "bob@example.com" };
	const struct index_new_msg m = { "1.M1P1Q1", "alice",
	    "alice@example.org", "192.0.2.7", 1, 1, 0, 1, r };
	const struct index_new_msg *batch[] = { &m };
	struct fixture *f = *state;
	struct index *ix = open_ok(f), *ix2;

	assert_int_equal(index_insert_batch(ix, batch, 1), 0);
	index_close(ix);
	ix = open_ok(f);
	assert_int_equal(index_exists(ix, "1.M1P1Q1"), 1);
	/* Two handles at once (as two programs would have). */
	ix2 = open_ok(f);
	assert_int_equal(index_exists(ix2, "1.M1P1Q1"), 1);
	index_close(ix2);
	index_close(ix);
	assert_int_equal(query_int(f->db, "PRAGMA user_version"),
	    INDEX_SCHEMA_VERSION);
}

static void
test_newer_version_refused(void **state)
{
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	char err[512] = "", sql[64], want[32];

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    INDEX_SCHEMA_VERSION + 1);
	snprintf(want, sizeof(want), "version %d", INDEX_SCHEMA_VERSION + 1);
	assert_int_equal(index_exec(ix, sql), 0);
	index_close(ix);
	ix = index_open(f->dir, INDEX_SYNC_NORMAL, err, sizeof(err));
	assert_null(ix);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, f->db));
}

static void
test_open_fails(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], err[512] = "";

	snprintf(path, sizeof(path), "%s/no/such/dir", f->dir);
	assert_null(index_open(path, INDEX_SYNC_FULL, err, sizeof(err)));
	assert_non_null(strstr(err, path));
}

static void
test_exec_error(void **state)
{
	struct fixture *f = *state;
	struct index *ix = open_ok(f);

	assert_int_equal(index_exec(ix, "SELECT * FROM no_such_table"), -1);
	assert_non_null(strstr(index_errmsg(ix), "no_such_table"));
	index_close(ix);
}

/* Six messages, received at 100..105; ids 1.M1P1Q0..5. */
static void
insert_six(struct index *ix)
{
	static const char *const r[] = { "bob@example.com" };
	struct index_new_msg m[6];
	const struct index_new_msg *batch[6];
	static char ids[6][24];
	int i;

	for (i = 0; i < 6; i++) {
		snprintf(ids[i], sizeof(ids[i]), "1.M1P1Q%d", i);
		m[i] = (struct index_new_msg){ ids[i], "alice",
		    "alice@example.org", "192.0.2.7", 10, 100 + i, 0, 1, r };
		batch[i] = &m[i];
	}
	assert_int_equal(index_insert_batch(ix, batch, 6), 0);
}

/*
 * Queued messages are due by now, deferred ones by retry_by (a one-shot
 * run's start); the two lists merge oldest due first, up to max.
 */
static void
test_claim_due(void **state)
{
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	struct index_claim c[8];

	insert_six(ix);
	/* Q0, Q1 queued (due 100, 101); Q2 deferred due 150; Q3 deferred
	   due exactly 200; Q4 deferred due 201; Q5 held. */
	assert_int_equal(index_exec(ix, "UPDATE message SET state = "
	    "'deferred', next_attempt_at = 150 WHERE id = '1.M1P1Q2'"), 0);
	assert_int_equal(index_exec(ix, "UPDATE message SET state = "
	    "'deferred', next_attempt_at = 200 WHERE id = '1.M1P1Q3'"), 0);
	assert_int_equal(index_exec(ix, "UPDATE message SET state = "
	    "'deferred', next_attempt_at = 201 WHERE id = '1.M1P1Q4'"), 0);
	assert_int_equal(index_exec(ix, "UPDATE message SET state = 'held' "
	    "WHERE id = '1.M1P1Q5'"), 0);

	/* max 3 across both states: Q0 (100), Q1 (101), Q2 (150). */
	assert_int_equal(index_claim_due(ix, "h", 7, 300, 200, 60, c, 3), 3);
	assert_string_equal(c[0].id, "1.M1P1Q0");
	assert_string_equal(c[1].id, "1.M1P1Q1");
	assert_string_equal(c[2].id, "1.M1P1Q2");
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM message WHERE "
	    "state = 'sending' AND lease_host = 'h' AND lease_pid = 7 AND "
	    "lease_until = 360"), 3);
	/* Then Q3 (due at retry_by); Q4 is due by now but not by retry_by. */
	assert_int_equal(index_claim_due(ix, "h", 7, 300, 200, 60, c, 8), 1);
	assert_string_equal(c[0].id, "1.M1P1Q3");
	assert_int_equal(index_claim_due(ix, "h", 7, 300, 200, 60, c, 8), 0);
	/* A daemon (retry_by = now) takes it. */
	assert_int_equal(index_claim_due(ix, "h", 7, 300, 300, 60, c, 8), 1);
	assert_string_equal(c[0].id, "1.M1P1Q4");
	index_close(ix);
}

/* A queued message not yet due by now stays, whatever retry_by says. */
static void
test_claim_not_due(void **state)
{
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	struct index_claim c[8];

	insert_six(ix);
	assert_int_equal(index_claim_due(ix, "h", 7, 99, 1000, 60, c, 8), 0);
	assert_int_equal(index_claim_due(ix, "h", 7, 102, 0, 60, c, 8), 3);
	index_close(ix);
}

/*
 * index_due_now: the deferred ones among the ids, due later, fall due;
 * others (queued, held, due already, not named) are left as they are.
 */
static void
test_due_now(void **state)
{
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	const char *ids[] = { "1.M1P1Q0", "1.M1P1Q1", "1.M1P1Q2", "1.M1P1Q3",
	    "1.M1P1Q5", "no\"such\\id" };
	const char *bad[] = { "1.M1P1Q1\n" };

	insert_six(ix);
	/* Q0 queued; Q1, Q2, Q4 deferred later; Q3 deferred, due at 200
	   already; Q5 held. Q4 is not named. */
	assert_int_equal(index_exec(ix, "UPDATE message SET state = "
	    "'deferred', next_attempt_at = 900 WHERE id IN ('1.M1P1Q1', "
	    "'1.M1P1Q2', '1.M1P1Q4')"), 0);
	assert_int_equal(index_exec(ix, "UPDATE message SET state = "
	    "'deferred', next_attempt_at = 200 WHERE id = '1.M1P1Q3'"), 0);
	assert_int_equal(index_exec(ix, "UPDATE message SET state = 'held', "
	    "next_attempt_at = 900 WHERE id = '1.M1P1Q5'"), 0);
	assert_int_equal(index_due_now(ix, ids, 6, 300), 2);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM message WHERE "
	    "next_attempt_at = 300 AND id IN ('1.M1P1Q1', '1.M1P1Q2')"), 2);
	assert_int_equal(query_int(f->db, "SELECT next_attempt_at FROM "
	    "message WHERE id = '1.M1P1Q4'"), 900);
	assert_int_equal(query_int(f->db, "SELECT next_attempt_at FROM "
	    "message WHERE id = '1.M1P1Q3'"), 200);
	assert_int_equal(query_int(f->db, "SELECT next_attempt_at FROM "
	    "message WHERE id = '1.M1P1Q5'"), 900);
	assert_int_equal(query_int(f->db, "SELECT next_attempt_at FROM "
	    "message WHERE id = '1.M1P1Q0'"), 100);
	/* Nothing named, nothing done; an id no queue id can be, refused. */
	assert_int_equal(index_due_now(ix, ids, 0, 400), 0);
	assert_int_equal(index_due_now(ix, bad, 1, 400), -1);
	assert_int_equal(index_due_now(ix, ids, INDEX_DUE_NOW_MAX + 1, 400),
	    -1);
	index_close(ix);
}

/* Run sql (a whole script) on the database at path with a plain handle. */
static void
plain_exec(const char *db, const char *sql)
{
	sqlite3 *h;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		print_error("%s\n", msg);
		fail();
	}
	sqlite3_close(h);
}

/* An index as version 1 made it, with one message in it. */
static void
make_v1(const char *db)
{
	FILE *fp = fopen("tests/unit/golden/index/schema-v1.sql", "r");
	static char sql[8192];
	size_t n;

	assert_non_null(fp);
	n = fread(sql, 1, sizeof(sql) - 1, fp);
	fclose(fp);
	assert_true(n > 0 && n < sizeof(sql) - 1);
	sql[n] = '\0';
	plain_exec(db, sql);
	plain_exec(db, "INSERT INTO message (id, auth_user, sender, size, "
	    "client_addr, received_at, next_attempt_at) VALUES ('1.M1P1Q9', "
	    "'alice', 'alice@example.org', 5, '192.0.2.7', 1, 1); INSERT INTO "
	    "recipient (message_id, seq, address) VALUES ('1.M1P1Q9', 0, "
	    "'bob@example.com')");
}

/* Every table's and index's SQL, in name order, joined. */
static void
schema_text(const char *db, char *out, size_t outsz)
{
	char sql[] = "SELECT group_concat(sql, ';') FROM (SELECT sql FROM "
	    "sqlite_master WHERE sql IS NOT NULL ORDER BY name)";

	query_text(db, sql, out, outsz);
}

/*
 * A version 1 index is brought up to this version on open, rows kept, and
 * ends with the very schema a fresh index has.
 */
static void
test_upgrade_from_v1(void **state)
{
	struct fixture *f = *state;
	struct index *ix;
	char fresh_db[PATH_MAX], fresh[4096], upgraded[4096];

	make_v1(f->db);
	assert_int_equal(query_int(f->db, "PRAGMA user_version"), 1);
	ix = open_ok(f);
	assert_int_equal(index_exists(ix, "1.M1P1Q9"), 1);
	index_close(ix);
	assert_int_equal(query_int(f->db, "PRAGMA user_version"),
	    INDEX_SCHEMA_VERSION);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM recipient"), 1);
	/* The per-state totals start from the rows there were. */
	assert_int_equal(query_int(f->db, "SELECT n FROM state_total WHERE "
	    "state = 'queued'"), 1);
	assert_int_equal(query_int(f->db, "SELECT bytes FROM state_total "
	    "WHERE state = 'queued'"), 5);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM state_total"),
	    6);

	snprintf(fresh_db, sizeof(fresh_db), "%s/fresh", f->dir);
	assert_int_equal(mkdir(fresh_db, 0700), 0);
	ix = index_open(fresh_db, INDEX_SYNC_NORMAL, fresh, sizeof(fresh));
	assert_non_null(ix);
	index_close(ix);
	strcat(fresh_db, "/index.db");
	schema_text(fresh_db, fresh, sizeof(fresh));
	schema_text(f->db, upgraded, sizeof(upgraded));
	assert_true(strlen(fresh) > 100);
	assert_string_equal(upgraded, fresh);
}

/* An upgrade that fails leaves the index as it was, and says why. */
static void
test_failed_upgrade_changes_nothing(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";

	make_v1(f->db);
	/* In the way of version 2's new table. */
	plain_exec(f->db, "CREATE TABLE counter (x)");
	assert_null(index_open(f->dir, INDEX_SYNC_FULL, err, sizeof(err)));
	assert_non_null(strstr(err, "counter"));
	assert_int_equal(query_int(f->db, "PRAGMA user_version"), 1);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM message"), 1);
}

static long long
total(const struct fixture *f, const char *name)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT coalesce((SELECT value FROM "
	    "counter WHERE name = '%s'), 0)", name);
	return query_int(f->db, sql);
}

/* Accepted messages and bounces are counted with their rows, or not. */
static void
test_totals_on_insert(void **state)
{
	static const char *const r[] = { "bob@example.com" };
	const struct index_new_msg m1 = { "1.M1P1Q1", "alice",
	    "alice@example.org", "192.0.2.7", 1, 1, 0, 1, r };
	const struct index_new_msg m2 = { "1.M1P1Q2", "", "", "", 1, 1, 1, 1,
	    r };
	const struct index_new_msg *both[] = { &m1, &m2 };
	struct fixture *f = *state;
	struct index *ix = open_ok(f);

	assert_int_equal(index_insert_batch(ix, both, 2), 0);
	assert_int_equal(total(f, "accepted"), 1);
	assert_int_equal(total(f, "bounces"), 1);
	/* A failed batch (a duplicate id) counts nothing. */
	assert_int_equal(index_insert_batch(ix, both, 1), -1);
	assert_int_equal(total(f, "accepted"), 1);
	index_close(ix);
}

static void
gone_ignored(const char *id, void *ctx)
{
	(void)id;
	(void)ctx;
}

/* One attempt's results: an attempt, and each recipient by its outcome. */
static void
test_totals_on_record(void **state)
{
	static const char *const r[] = { "a@x.example", "b@x.example",
	    "c@x.example" };
	const struct index_new_msg m = { "1.M1P1Q1", "alice",
	    "alice@example.org", "192.0.2.7", 1, 100, 0, 3, r };
	const struct index_new_msg *one[] = { &m };
	static const long long seq[] = { 0, 1, 2 };
	static const enum outcome outcome[] = { OUTCOME_OK, OUTCOME_TEMP,
	    OUTCOME_PERM };
	static const char *const reply[] = { "250 ok", "451 later", "550 no" };
	struct index_result res = { "1.M1P1Q1", "h", 7, 200, 3, seq, outcome,
	    reply, 0, 0, 300, "451 later", NULL, NULL };
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	struct index_claim c[1];

	assert_int_equal(index_insert_batch(ix, one, 1), 0);
	assert_int_equal(index_claim_due(ix, "h", 7, 200, 200, 60, c, 1), 1);
	assert_int_equal(index_record(ix, &res), 1);
	assert_int_equal(total(f, "attempts"), 1);
	assert_int_equal(total(f, "rcpt_sent"), 1);
	assert_int_equal(total(f, "rcpt_deferred"), 1);
	assert_int_equal(total(f, "rcpt_failed"), 1);
	/* The lifetime ends at the next attempt: b fails for good too. */
	assert_int_equal(index_claim_due(ix, "h", 7, 300, 300, 60, c, 1), 1);
	res.now = 300;
	res.n = 1;
	res.seq = seq + 1;
	res.outcome = outcome + 1;
	res.reply = reply + 1;
	res.finished = 1;
	res.expired = 1;
	assert_int_equal(index_record(ix, &res), 1);
	assert_int_equal(total(f, "attempts"), 2);
	assert_int_equal(total(f, "rcpt_deferred"), 1);	/* not again */
	assert_int_equal(total(f, "rcpt_failed"), 2);
	/* Not our claim any more: nothing recorded, nothing counted. */
	assert_int_equal(index_record(ix, &res), 0);
	assert_int_equal(total(f, "attempts"), 2);
	/* Purging the sent row leaves the totals. */
	assert_int_equal(index_purge_sent(ix, 1000000, 1, 10,
	    gone_ignored, NULL), 1);
	assert_int_equal(total(f, "rcpt_sent"), 1);
	index_close(ix);
}

struct purged {
	char ids[500][64];
	int n;
	const char *db;
	long long rows_then;	/* rows in the index at the first call */
};

static void
note_purged(const char *id, void *ctx)
{
	struct purged *p = ctx;

	/* Called after the commit: another connection sees the rows gone. */
	if (p->n == 0)
		p->rows_then = query_int(p->db, "SELECT count(*) FROM message");
	snprintf(p->ids[p->n++ % 500], sizeof(p->ids[0]), "%s", id);
}

/*
 * The purge takes at most max rows a call, oldest done first, with their
 * recipients, and names them only once they are committed; rows not sent,
 * or sent too recently, stay.
 */
static void
test_purge_in_batches(void **state)
{
	static const char *const r[] = { "bob@example.com", "eve@example.com" };
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	struct index_new_msg m[450];
	const struct index_new_msg *p[450];
	char ids[450][64], sql[256];
	struct purged got = { .db = f->db };
	int i, k;

	for (i = 0; i < 450; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%d.M1P1Q%d", 1000 + i, i);
		m[i] = (struct index_new_msg){ ids[i], "alice",
		    "alice@example.org", "192.0.2.7", 10, 1000 + i, 0, 2, r };
		p[i] = &m[i];
	}
	assert_int_equal(index_insert_batch(ix, p, 450), 0);
	/* Done in reverse order of arrival; the last 20 too late; ten not
	   sent at all. */
	assert_int_equal(index_exec(ix, "UPDATE message SET state = 'sent', "
	    "done_at = 5000 - received_at"), 0);
	assert_int_equal(index_exec(ix, "UPDATE message SET done_at = 9000 "
	    "WHERE received_at >= 1430"), 0);
	assert_int_equal(index_exec(ix, "UPDATE message SET state = 'failed' "
	    "WHERE received_at < 1010"), 0);
	for (k = 0; k < 3; k++) {
		got.n = 0;
		assert_int_equal(index_purge_sent(ix, 8000, 10, 200,
		    note_purged, &got), k < 2 ? 200 : 20);
		assert_int_equal(got.n, k < 2 ? 200 : 20);
		assert_int_equal(got.rows_then, 450 - 200 * k - got.n);
		/* The oldest done first: the latest received. */
		assert_string_equal(got.ids[0], ids[1429 - 1000 - 200 * k]);
	}
	got.n = 0;
	assert_int_equal(index_purge_sent(ix, 8000, 10, 200, note_purged,
	    &got), 0);
	assert_int_equal(got.n, 0);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM message"), 30);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM recipient WHERE "
	    "message_id NOT IN (SELECT id FROM message)");
	assert_int_equal(query_int(f->db, sql), 0);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM recipient"),
	    60);
	assert_int_equal(query_int(f->db, "SELECT n FROM state_total WHERE "
	    "state = 'sent'"), 20);
	assert_int_equal(index_purge_sent(ix, 8000, 10, 0, note_purged, &got),
	    0);
	index_close(ix);
}

/* spool_dir/index.db + suffix, into buf. */
static const char *
file_in(const struct fixture *f, const char *suffix, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s%s", f->db, suffix);
	return buf;
}

static int
mode_of(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return -1;
	return (int)(st.st_mode & 07777);
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void
insert_one(struct index *ix, const char *id)
{
	static const char *const r[] = { "bob@example.com" };
	const struct index_new_msg m = { id, "alice", "alice@example.org",
	    "192.0.2.7", 1, 1, 0, 1, r };
	const struct index_new_msg *batch[] = { &m };

	assert_int_equal(index_insert_batch(ix, batch, 1), 0);
}

/* SQLite would make index.db 0644 (less the umask), and -wal and -shm
   like it; the spool's promise is 0600. */
static void
test_files_private(void **state)
{
	struct fixture *f = *state;
	mode_t old = umask(022);
	char wal[PATH_MAX], shm[PATH_MAX];
	struct index *ix = open_ok(f);

	insert_one(ix, "1.M1P1Q1");
	assert_int_equal(mode_of(f->db), 0600);
	assert_int_equal(mode_of(file_in(f, "-wal", wal, sizeof(wal))), 0600);
	assert_int_equal(mode_of(file_in(f, "-shm", shm, sizeof(shm))), 0600);
	index_close(ix);
	/* One an older version made is tightened, files beside it too. */
	assert_int_equal(chmod(f->db, 0644), 0);
	ix = open_ok(f);
	assert_int_equal(chmod(wal, 0666), 0);
	index_close(ix);
	ix = open_ok(f);
	assert_int_equal(mode_of(f->db), 0600);
	assert_int_equal(mode_of(wal), 0600);
	assert_int_equal(mode_of(shm), 0600);
	assert_int_equal(index_exists(ix, "1.M1P1Q1"), 1);
	index_close(ix);
	umask(old);
}

/* Another index, made in a directory of its own, holding message id. */
static void
other_index(const struct fixture *f, const char *id, char *path,
    size_t pathsz)
{
	struct fixture g;
	struct index *ix;

	assert_true((size_t)snprintf(g.dir, sizeof(g.dir), "%.*s/other",
	    (int)(sizeof(g.dir) - 7), f->dir) < sizeof(g.dir));
	assert_int_equal(mkdir(g.dir, 0700), 0);
	snprintf(g.db, sizeof(g.db), "%s/index.db", g.dir);
	ix = open_ok(&g);
	insert_one(ix, id);
	index_close(ix);	/* the last handle: one file, no -wal */
	snprintf(path, pathsz, "%s", g.db);
}

static void
test_moved(void **state)
{
	struct fixture *f = *state;
	char away[PATH_MAX], other[PATH_MAX];
	struct index *ix = open_ok(f);

	insert_one(ix, "1.M1P1Q1");
	assert_int_equal(index_moved(ix), 0);
	file_in(f, ".away", away, sizeof(away));
	assert_int_equal(rename(f->db, away), 0);
	assert_int_equal(index_moved(ix), 1);
	assert_int_equal(rename(away, f->db), 0);
	assert_int_equal(index_moved(ix), 0);
	other_index(f, "2.M1P1Q1", other, sizeof(other));
	assert_int_equal(rename(other, f->db), 0);
	assert_int_equal(index_moved(ix), 1);
	assert_int_equal(unlink(f->db), 0);
	assert_int_equal(index_moved(ix), 1);
	index_close(ix);
}

/* Removed: the old -wal and -shm belong to no database; they are set
   aside, so a new index at the path does not read them. */
static void
test_lost_missing(void **state)
{
	struct fixture *f = *state;
	struct index_lost l;
	char wal[PATH_MAX], shm[PATH_MAX], lost[PATH_MAX];
	struct index *ix = open_ok(f);

	memset(&l, 0, sizeof(l));
	insert_one(ix, "1.M1P1Q1");
	assert_int_equal(unlink(f->db), 0);
	assert_int_equal(index_moved(ix), 1);
	index_lost_note(f->dir, &l);
	index_close(ix);
	/* SQLite leaves them when it closes a moved file. */
	assert_true(exists(file_in(f, "-wal", wal, sizeof(wal))));
	assert_true(exists(file_in(f, "-shm", shm, sizeof(shm))));
	assert_int_equal(index_lost_check(f->dir, &l), INDEX_RETURN_MISSING);
	assert_false(exists(wal));
	assert_false(exists(shm));
	assert_true(exists(file_in(f, "-wal.lost", lost, sizeof(lost))));
	/* An index back at the path: ready once the grace is over. */
	ix = open_ok(f);
	assert_int_equal(index_exists(ix, "1.M1P1Q1"), 0);
	insert_one(ix, "1.M1P1Q2");
	assert_int_equal(index_lost_check(f->dir, &l), INDEX_RETURN_SETTLING);
	l.noted_at -= INDEX_LOST_GRACE;
	assert_int_equal(index_lost_check(f->dir, &l), INDEX_RETURN_READY);
	/* The new index's own files are never taken for the old ones. */
	assert_true(exists(wal));
	assert_true(exists(shm));
	assert_int_equal(index_exists(ix, "1.M1P1Q2"), 1);
	index_close(ix);
	index_lost_free(&l);
	index_lost_free(NULL);
}

/* Replaced: the index at the path is another's, but the -wal and -shm
   beside it are still the old file's; it is not ready until they go. */
static void
test_lost_replaced(void **state)
{
	struct fixture *f = *state;
	struct index_lost l;
	char wal[PATH_MAX], shm[PATH_MAX], other[PATH_MAX];
	struct index *ix = open_ok(f);
	int fd;

	memset(&l, 0, sizeof(l));
	insert_one(ix, "1.M1P1Q1");
	other_index(f, "2.M1P1Q1", other, sizeof(other));
	assert_int_equal(rename(other, f->db), 0);
	assert_int_equal(index_moved(ix), 1);
	index_lost_note(f->dir, &l);
	index_close(ix);
	l.noted_at -= INDEX_LOST_GRACE;
	assert_int_equal(index_lost_check(f->dir, &l),
	    INDEX_RETURN_BESIDE_OLD);
	assert_true(exists(file_in(f, "-wal", wal, sizeof(wal))));
	assert_true(exists(file_in(f, "-shm", shm, sizeof(shm))));
	assert_int_equal(unlink(wal), 0);
	assert_int_equal(index_lost_check(f->dir, &l),
	    INDEX_RETURN_BESIDE_OLD);
	assert_int_equal(unlink(shm), 0);
	/* A new file made at a noted path after that is not the old one
	   (the note holds the old ones open: no inode number is reused). */
	assert_true((fd = open(shm, O_CREAT | O_WRONLY, 0600)) != -1);
	close(fd);
	assert_int_equal(index_lost_check(f->dir, &l), INDEX_RETURN_READY);
	assert_int_equal(unlink(shm), 0);
	ix = open_ok(f);
	assert_int_equal(index_exists(ix, "2.M1P1Q1"), 1);
	assert_int_equal(index_exists(ix, "1.M1P1Q1"), 0);
	index_close(ix);
	index_lost_free(&l);
}

/* Nothing noted: ready as soon as there is an index at the path. */
static void
test_lost_nothing_noted(void **state)
{
	struct fixture *f = *state;
	struct index_lost l;
	struct index *ix;

	memset(&l, 0, sizeof(l));
	assert_int_equal(index_lost_check(f->dir, &l), INDEX_RETURN_MISSING);
	ix = open_ok(f);
	assert_int_equal(index_lost_check(f->dir, &l), INDEX_RETURN_READY);
	index_close(ix);
}

/* The backlog mppd paces posting by: queued and claimed, as they move. */
static void
test_backlog(void **state)
{
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	struct index_claim c[2];
	long long queued = -1, sending = -1;

	assert_int_equal(index_backlog(ix, &queued, &sending), 0);
	assert_true(queued == 0 && sending == 0);
	insert_one(ix, "1.M1P1Q1");
	insert_one(ix, "1.M1P1Q2");
	insert_one(ix, "1.M1P1Q3");
	assert_int_equal(index_backlog(ix, &queued, &sending), 0);
	assert_true(queued == 3 && sending == 0);
	assert_int_equal(index_claim_due(ix, "h", 7, 200, 200, 60, c, 2), 2);
	assert_int_equal(index_backlog(ix, &queued, &sending), 0);
	assert_true(queued == 1 && sending == 2);
	index_close(ix);
}

/* Only a message sent to every recipient no longer needs its file. */
static void
test_delivered(void **state)
{
	static const long long seq[] = { 0 };
	static const enum outcome sent[] = { OUTCOME_OK },
	    failed[] = { OUTCOME_PERM };
	static const char *const reply[] = { "250 ok" };
	struct index_result res = { "1.M1P1Q1", "h", 7, 200, 1, seq, sent,
	    reply, 1, 0, 300, NULL, NULL, NULL };
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	struct index_claim c[2];

	insert_one(ix, "1.M1P1Q1");
	insert_one(ix, "1.M1P1Q2");
	assert_int_equal(index_file_need(ix, "1.M1P1Q1"), INDEX_FILE_NEEDED);
	assert_int_equal(index_claim_due(ix, "h", 7, 200, 200, 60, c, 2), 2);
	assert_int_equal(index_record(ix, &res), 1);
	assert_int_equal(index_file_need(ix, "1.M1P1Q1"), INDEX_FILE_DONE);
	res.id = "1.M1P1Q2";
	res.outcome = failed;
	assert_int_equal(index_record(ix, &res), 1);
	assert_int_equal(index_file_need(ix, "1.M1P1Q2"), INDEX_FILE_NEEDED);
	assert_int_equal(index_file_need(ix, "9.M9P9Q9"), INDEX_FILE_NO_ROW);
	index_close(ix);
}

/*
 * Results of several deliveries in one commit: each answers as alone
 * (a claim not ours records nothing of its own and spoils no other);
 * an error in any takes every one back.
 */
static void
test_record_batch(void **state)
{
	static const long long seq[] = { 0 };
	static const enum outcome sent[] = { OUTCOME_OK };
	static const char *const reply[] = { "250 ok" };
	struct index_result a = { "1.M1P1Q1", "h", 7, 200, 1, seq, sent,
	    reply, 1, 0, 300, NULL, NULL, NULL }, b = a, c = a;
	const struct index_new_msg clash = { "1.M1P1Q1", "alice",
	    "alice@example.org", "192.0.2.7", 1, 1, 0, 0, NULL };
	const struct index_result *batch[] = { &a, &b, &c };
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	struct index_claim cl[2];
	int rc[3];

	insert_one(ix, "1.M1P1Q1");
	insert_one(ix, "1.M1P1Q2");
	insert_one(ix, "1.M1P1Q3");
	assert_int_equal(index_claim_due(ix, "h", 7, 200, 200, 60, cl, 2), 2);
	b.id = "1.M1P1Q3";			/* not claimed */
	c.id = "1.M1P1Q2";
	/* A warning whose id is taken fails the whole batch. */
	c.warning = &clash;
	assert_int_equal(index_record_batch(ix, batch, 3, rc), -1);
	assert_int_equal(rc[0], -1);
	assert_int_equal(rc[1], -1);
	assert_int_equal(rc[2], -1);
	assert_int_equal(total(f, "attempts"), 0);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM message "
	    "WHERE state = 'sending'"), 2);
	c.warning = NULL;
	assert_int_equal(index_record_batch(ix, batch, 3, rc), 0);
	assert_int_equal(rc[0], 1);
	assert_int_equal(rc[1], 0);
	assert_int_equal(rc[2], 1);
	assert_int_equal(index_file_need(ix, "1.M1P1Q1"), INDEX_FILE_DONE);
	assert_int_equal(index_file_need(ix, "1.M1P1Q2"), INDEX_FILE_DONE);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM message "
	    "WHERE id = '1.M1P1Q3' AND state = 'queued' AND attempts = 0"), 1);
	assert_int_equal(total(f, "attempts"), 2);
	index_close(ix);
}

/*
 * A delay warning is inserted with the attempt that made it and marks the
 * message warned_at, which the next claim reads; a claim not ours any
 * more records neither.
 */
static void
test_warning_recorded_once(void **state)
{
	static const char *const to[] = { "alice@example.org" };
	const struct index_new_msg warn = { "2.M1P1Q1", "", "", "local", 10,
	    200, 1, 1, to }, warn2 = { "2.M1P1Q2", "", "", "local", 10, 300,
	    1, 1, to };
	static const long long seq[] = { 0 };
	static const enum outcome later[] = { OUTCOME_TEMP };
	static const char *const reply[] = { "451 4.3.2 later" };
	struct index_result res = { "1.M1P1Q1", "h", 7, 200, 1, seq, later,
	    reply, 0, 0, 201, "451 4.3.2 later", NULL, &warn };
	struct fixture *f = *state;
	struct index *ix = open_ok(f);
	struct index_claim c[2];

	insert_one(ix, "1.M1P1Q1");
	assert_int_equal(index_claim_due(ix, "h", 7, 200, 200, 60, c, 2), 1);
	assert_int_equal(c[0].warned_at, 0);
	assert_int_equal(index_record(ix, &res), 1);
	assert_int_equal(query_int(f->db, "SELECT warned_at FROM message "
	    "WHERE id = '1.M1P1Q1'"), 200);
	assert_int_equal(query_int(f->db, "SELECT is_bounce FROM message "
	    "WHERE id = '2.M1P1Q1'"), 1);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM recipient "
	    "WHERE message_id = '2.M1P1Q1'"), 1);
	assert_int_equal(total(f, "bounces"), 0);
	/* The next claim knows; a later record without one keeps it. */
	assert_int_equal(index_claim_due(ix, "h", 7, 300, 300, 60, c, 2), 2);
	assert_string_equal(c[1].id, "1.M1P1Q1");
	assert_int_equal(c[1].warned_at, 200);
	assert_int_equal(c[0].warned_at, 0);	/* the warning itself */
	res.now = 300;
	res.warning = NULL;
	assert_int_equal(index_record(ix, &res), 1);
	assert_int_equal(query_int(f->db, "SELECT warned_at FROM message "
	    "WHERE id = '1.M1P1Q1'"), 200);
	/* Not our claim: no row, no mark. */
	res.warning = &warn2;
	assert_int_equal(index_record(ix, &res), 0);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM message"), 2);
	index_close(ix);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_schema,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_insert_and_exists, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_batch_is_atomic, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bound_parameters, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_version_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_exec_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_purge_in_batches, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_claim_due, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_claim_not_due, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_due_now, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_v1, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_failed_upgrade_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_totals_on_insert, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_warning_recorded_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_totals_on_record, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_files_private, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lost_replaced, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lost_nothing_noted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_record_batch, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_backlog, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delivered, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
