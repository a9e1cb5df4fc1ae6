/*
 * Unit tests for common/index_admin: a fresh index in a temporary directory
 * for each test, filled with index_insert_batch() and put into the states a
 * runner would leave, then each admin function checked against the rows:
 * listings and their filters, actions on ids and on filters (verdicts,
 * counts, one transaction), the read-only open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include <cmocka.h>

#include "index.h"
#include "index_admin.h"
#include "index_impl.h"
#include "util.h"

#define T0 1700000000LL		/* received_at of the first message */
#define NOW 1800000000LL	/* "now" for the actions */

struct fixture {
	char dir[64];
	struct index *ix;
};

/* Three messages: m1 (1 rcpt), m2 (2 rcpts), m3 (1 rcpt), queued. */
static void
fill(struct index *ix)
{
	static const char *const r1[] = { "bob@example.com" };
	static const char *const r2[] = { "carol@example.net",
	    "dave@example.net" };
	static const char *const r3[] = { "erin@example.com" };
	const struct index_new_msg m[] = {
		{ "1700000000.M1P1Q1", "alice", "alice@example.org",
		    "192.0.2.7", 100, T0, 0, 1, r1 },
		{ "1700000001.M1P1Q2", "alice", "alice@example.org",
		    "192.0.2.7", 200, T0 + 1, 0, 2, r2 },
		{ "1700000002.M1P1Q3", "bounce", "", "127.0.0.1", 400, T0 + 2,
		    1, 1, r3 },
	};
	const struct index_new_msg *p[] = { &m[0], &m[1], &m[2] };

	assert_int_equal(index_insert_batch(ix, p, 3), 0);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_index_admin.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	if ((f->ix = index_open(f->dir, INDEX_SYNC_NORMAL, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	fill(f->ix);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	int rc;

	index_close(f->ix);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

/* Run sql (fixed text, no parameters) on the index. */
static void
exec(struct index *ix, const char *sql)
{
	if (index_exec(ix, sql) != 0)
		fail_msg("%s: %s", sql, index_errmsg(ix));
}

/* One integer from a query with one text parameter. */
static long long
query_int(struct index *ix, const char *sql, const char *arg)
{
	sqlite3_stmt *st;
	long long v;

	assert_int_equal(sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void
get_ok(struct index *ix, const char *id, struct index_admin_msg *m)
{
	assert_int_equal(index_admin_get(ix, id, m), INDEX_ADMIN_OK);
}

/* Every message, sent ones too. */
static const struct index_admin_filter all = { .state = "all" };

struct seen_one {
	char state[INDEX_ADMIN_STATE_MAX];
	enum index_admin_verdict v;
	int n;
};

static int
seen_one(const char *id, const char *state, enum index_admin_verdict v,
    void *arg)
{
	struct seen_one *s = arg;

	(void)id;
	snprintf(s->state, sizeof(s->state), "%s", state != NULL ? state : "");
	s->v = v;
	s->n++;
	return 0;
}

/* Action a on the one message id, in a batch of its own: the verdict,
   and the state before the action in st. */
static enum index_admin_verdict
one(struct index *ix, enum index_admin_action a, const char *id,
    long long now, char *st)
{
	struct index_admin_batch *b = index_admin_batch_new(ix);
	long long count[IA_NVERDICTS];
	struct seen_one s = { "", IA_NVERDICTS, 0 };

	assert_non_null(b);
	assert_int_equal(index_admin_batch_add(b, id), 0);
	assert_int_equal(index_admin_batch_run(b, a, NULL, (time_t)now,
	    count), 0);
	assert_int_equal(index_admin_batch_each(b, seen_one, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(count[s.v], 1);
	index_admin_batch_free(b);
	strcpy(st, s.state);
	return s.v;
}

/* Action a on what f picks (NULL: all but sent), with the counts wanted. */
static void
run_all(struct index *ix, enum index_admin_action a,
    const struct index_admin_filter *f, long long now, long long changed,
    long long unchanged, long long skipped)
{
	static const struct index_admin_filter none;
	struct index_admin_batch *b = index_admin_batch_new(ix);
	long long count[IA_NVERDICTS];

	assert_non_null(b);
	assert_int_equal(index_admin_batch_run(b, a, f != NULL ? f : &none,
	    (time_t)now, count), 0);
	assert_int_equal(count[IA_CHANGED], changed);
	assert_int_equal(count[IA_UNCHANGED], unchanged);
	assert_int_equal(count[IA_SKIPPED], skipped);
	assert_int_equal(count[IA_UNKNOWN], 0);
	index_admin_batch_free(b);
}

/* ---- list ---- */

struct seen {
	int n;
	char ids[8][64];
	int stop_after;
};

static int
collect(const struct index_admin_msg *m, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n < 8);
	snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", m->id);
	s->n++;
	return s->stop_after != 0 && s->n == s->stop_after ? 7 : 0;
}

static void
test_list_default(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };

	exec(f->ix, "UPDATE message SET state = 'sent' "
	    "WHERE id = '1700000001.M1P1Q2'");
	assert_int_equal(index_admin_list(f->ix, NULL, collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.ids[0], "1700000000.M1P1Q1");
	assert_string_equal(s.ids[1], "1700000002.M1P1Q3");
}

static void
test_list_state_and_all(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };

	exec(f->ix, "UPDATE message SET state = 'sent' "
	    "WHERE id = '1700000001.M1P1Q2'");
	assert_int_equal(index_admin_list(f->ix, &(struct index_admin_filter){ .state = "sent" },
	    collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ids[0], "1700000001.M1P1Q2");
	memset(&s, 0, sizeof(s));
	assert_int_equal(index_admin_list(f->ix, &all, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.ids[1], "1700000001.M1P1Q2");
	memset(&s, 0, sizeof(s));
	assert_int_equal(index_admin_list(f->ix, &(struct index_admin_filter){ .state = "held" },
	    collect, &s), 0);
	assert_int_equal(s.n, 0);
}

static void
test_list_stop(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };

	s.stop_after = 1;
	assert_int_equal(index_admin_list(f->ix, NULL, collect, &s), 7);
	assert_int_equal(s.n, 1);
}

static int
check_rcpts(const struct index_admin_msg *m, void *arg)
{
	int *n = arg;

	if (strcmp(m->id, "1700000001.M1P1Q2") == 0) {
		assert_int_equal(m->nrcpts, 2);
		assert_string_equal(m->rcpts[0].address, "carol@example.net");
		assert_string_equal(m->rcpts[1].address, "dave@example.net");
		assert_string_equal(m->rcpts[1].state, "pending");
		assert_null(m->rcpts[1].last_error);
	} else
		assert_int_equal(m->nrcpts, 1);
	(*n)++;
	return 0;
}

static void
test_list_rcpts(void **state)
{
	struct fixture *f = *state;
	int n = 0;

	assert_int_equal(index_admin_list(f->ix, &all, check_rcpts, &n), 0);
	assert_int_equal(n, 3);
}

/* ---- get ---- */

static void
test_get(void **state)
{
	struct fixture *f = *state;
	struct index_admin_msg m;

	get_ok(f->ix, "1700000002.M1P1Q3", &m);
	assert_string_equal(m.id, "1700000002.M1P1Q3");
	assert_string_equal(m.state, "queued");
	assert_string_equal(m.auth_user, "bounce");
	assert_string_equal(m.sender, "");
	assert_string_equal(m.client_addr, "127.0.0.1");
	assert_null(m.last_error);
	assert_null(m.held_from);
	assert_null(m.lease_host);
	assert_int_equal(m.size, 400);
	assert_int_equal(m.received_at, T0 + 2);
	assert_int_equal(m.next_attempt_at, T0 + 2);
	assert_int_equal(m.attempts, 0);
	assert_int_equal(m.done_at, 0);
	assert_int_equal(m.is_bounce, 1);
	assert_int_equal(m.nrcpts, 1);
	assert_string_equal(m.rcpts[0].address, "erin@example.com");
	index_admin_msg_clear(&m);
	assert_null(m.id);
	index_admin_msg_clear(NULL);
}

static void
test_get_unknown(void **state)
{
	struct fixture *f = *state;
	struct index_admin_msg m;

	assert_int_equal(index_admin_get(f->ix, "1.M1P1Q9", &m),
	    INDEX_ADMIN_UNKNOWN);
	index_admin_msg_clear(&m);
}

/* ---- flush ---- */

static void
test_flush_one(void **state)
{
	struct fixture *f = *state;
	char st[INDEX_ADMIN_STATE_MAX];
	const char *id = "1700000000.M1P1Q1";

	exec(f->ix, "UPDATE message SET state = 'deferred', "
	    "next_attempt_at = 1900000000 WHERE id = '1700000000.M1P1Q1'");
	assert_int_equal(one(f->ix, IA_FLUSH, id, NOW, st), IA_CHANGED);
	assert_string_equal(st, "deferred");
	assert_int_equal(query_int(f->ix, "SELECT next_attempt_at FROM "
	    "message WHERE id = ?1", id), NOW);
	/* Already due earlier: left as it is. */
	assert_int_equal(one(f->ix, IA_FLUSH, "1700000001.M1P1Q2", NOW, st),
	    IA_CHANGED);
	assert_int_equal(query_int(f->ix, "SELECT next_attempt_at FROM "
	    "message WHERE id = ?1", "1700000001.M1P1Q2"), T0 + 1);
}

static void
test_flush_states(void **state)
{
	struct fixture *f = *state;
	char st[INDEX_ADMIN_STATE_MAX];

	exec(f->ix, "UPDATE message SET state = 'sending', "
	    "next_attempt_at = 1900000000 WHERE id = '1700000000.M1P1Q1'");
	exec(f->ix, "UPDATE message SET state = 'held' "
	    "WHERE id = '1700000001.M1P1Q2'");
	assert_int_equal(one(f->ix, IA_FLUSH, "1700000000.M1P1Q1", NOW, st),
	    IA_UNCHANGED);
	assert_string_equal(st, "sending");
	assert_int_equal(query_int(f->ix, "SELECT next_attempt_at FROM "
	    "message WHERE id = ?1", "1700000000.M1P1Q1"), 1900000000);
	assert_int_equal(one(f->ix, IA_FLUSH, "1700000001.M1P1Q2", NOW, st),
	    IA_SKIPPED);
	assert_string_equal(st, "held");
	assert_int_equal(one(f->ix, IA_FLUSH, "9.M9P9Q9", NOW, st),
	    IA_UNKNOWN);
	assert_string_equal(st, "");
}

static void
test_flush_all(void **state)
{
	struct fixture *f = *state;

	exec(f->ix, "UPDATE message SET next_attempt_at = 1900000000");
	exec(f->ix, "UPDATE message SET state = 'deferred' "
	    "WHERE id = '1700000001.M1P1Q2'");
	exec(f->ix, "UPDATE message SET state = 'held' "
	    "WHERE id = '1700000002.M1P1Q3'");
	run_all(f->ix, IA_FLUSH, NULL, NOW, 2, 0, 1);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE next_attempt_at = ?1", "1800000000"), 2);
	assert_int_equal(query_int(f->ix, "SELECT next_attempt_at FROM "
	    "message WHERE id = ?1", "1700000002.M1P1Q3"), 1900000000);
}

/* ---- hold and release ---- */

static void
test_hold_release(void **state)
{
	struct fixture *f = *state;
	struct index_admin_msg m;
	char st[INDEX_ADMIN_STATE_MAX];
	const char *id = "1700000001.M1P1Q2";

	exec(f->ix, "UPDATE message SET state = 'deferred', "
	    "next_attempt_at = 1900000000 WHERE id = '1700000001.M1P1Q2'");
	assert_int_equal(one(f->ix, IA_HOLD, id, 0, st), IA_CHANGED);
	assert_string_equal(st, "deferred");
	get_ok(f->ix, id, &m);
	assert_string_equal(m.state, "held");
	assert_string_equal(m.held_from, "deferred");
	index_admin_msg_clear(&m);
	/* Holding again changes nothing. */
	assert_int_equal(one(f->ix, IA_HOLD, id, 0, st), IA_UNCHANGED);
	assert_string_equal(st, "held");
	assert_int_equal(one(f->ix, IA_RELEASE, id, NOW, st), IA_CHANGED);
	assert_string_equal(st, "held");
	get_ok(f->ix, id, &m);
	assert_string_equal(m.state, "deferred");
	assert_null(m.held_from);
	assert_int_equal(m.next_attempt_at, NOW);
	index_admin_msg_clear(&m);
	assert_int_equal(one(f->ix, IA_RELEASE, id, NOW, st), IA_SKIPPED);
	assert_string_equal(st, "deferred");
}

static void
test_hold_queued(void **state)
{
	struct fixture *f = *state;
	struct index_admin_msg m;
	char st[INDEX_ADMIN_STATE_MAX];
	const char *id = "1700000000.M1P1Q1";

	assert_int_equal(one(f->ix, IA_HOLD, id, 0, st), IA_CHANGED);
	get_ok(f->ix, id, &m);
	assert_string_equal(m.held_from, "queued");
	index_admin_msg_clear(&m);
	assert_int_equal(one(f->ix, IA_RELEASE, id, NOW, st), IA_CHANGED);
	get_ok(f->ix, id, &m);
	assert_string_equal(m.state, "queued");
	index_admin_msg_clear(&m);
}

static void
test_hold_refused(void **state)
{
	struct fixture *f = *state;
	char st[INDEX_ADMIN_STATE_MAX];
	static const char *const refused[] = { "sending", "sent", "failed" };
	char sql[128];
	size_t i;

	for (i = 0; i < 3; i++) {
		snprintf(sql, sizeof(sql), "UPDATE message SET state = '%s' "
		    "WHERE id = '1700000000.M1P1Q1'", refused[i]);
		exec(f->ix, sql);
		assert_int_equal(one(f->ix, IA_HOLD, "1700000000.M1P1Q1", 0,
		    st), IA_SKIPPED);
		assert_string_equal(st, refused[i]);
	}
	assert_int_equal(one(f->ix, IA_HOLD, "9.M9P9Q9", 0, st), IA_UNKNOWN);
	assert_int_equal(one(f->ix, IA_RELEASE, "9.M9P9Q9", NOW, st),
	    IA_UNKNOWN);
}

/* A held_from that is missing or odd releases to queued. */
static void
test_release_without_held_from(void **state)
{
	struct fixture *f = *state;
	struct index_admin_msg m;
	char st[INDEX_ADMIN_STATE_MAX];

	exec(f->ix, "UPDATE message SET state = 'held', held_from = NULL "
	    "WHERE id = '1700000000.M1P1Q1'");
	exec(f->ix, "UPDATE message SET state = 'held', held_from = 'sending' "
	    "WHERE id = '1700000001.M1P1Q2'");
	assert_int_equal(one(f->ix, IA_RELEASE, "1700000000.M1P1Q1", NOW,
	    st), IA_CHANGED);
	assert_int_equal(one(f->ix, IA_RELEASE, "1700000001.M1P1Q2", NOW,
	    st), IA_CHANGED);
	get_ok(f->ix, "1700000000.M1P1Q1", &m);
	assert_string_equal(m.state, "queued");
	index_admin_msg_clear(&m);
	get_ok(f->ix, "1700000001.M1P1Q2", &m);
	assert_string_equal(m.state, "queued");
	index_admin_msg_clear(&m);
}

/* ---- delete ---- */

static void
test_delete(void **state)
{
	struct fixture *f = *state;
	char st[INDEX_ADMIN_STATE_MAX];
	const char *id = "1700000001.M1P1Q2";

	exec(f->ix, "UPDATE message SET state = 'failed' "
	    "WHERE id = '1700000001.M1P1Q2'");
	assert_int_equal(one(f->ix, IA_DELETE, id, 0, st), IA_CHANGED);
	assert_string_equal(st, "failed");
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE id = ?1", id), 0);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM recipient "
	    "WHERE message_id = ?1", id), 0);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM recipient "
	    "WHERE message_id <> ?1", id), 2);
	assert_int_equal(one(f->ix, IA_DELETE, id, 0, st), IA_UNKNOWN);
}

static void
test_delete_sending(void **state)
{
	struct fixture *f = *state;
	char st[INDEX_ADMIN_STATE_MAX];
	const char *id = "1700000000.M1P1Q1";

	exec(f->ix, "UPDATE message SET state = 'sending' "
	    "WHERE id = '1700000000.M1P1Q1'");
	assert_int_equal(one(f->ix, IA_DELETE, id, 0, st), IA_SKIPPED);
	assert_string_equal(st, "sending");
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE id = ?1", id), 1);
}

/* ---- requeue ---- */

static void
test_requeue(void **state)
{
	struct fixture *f = *state;
	struct index_admin_msg m;
	char st[INDEX_ADMIN_STATE_MAX];
	const char *id = "1700000001.M1P1Q2";

	exec(f->ix, "UPDATE message SET state = 'failed', attempts = 7, "
	    "last_error = '550 no', done_at = 1750000000, "
	    "next_attempt_at = 1750000000 WHERE id = '1700000001.M1P1Q2'");
	exec(f->ix, "UPDATE recipient SET state = 'sent' WHERE "
	    "message_id = '1700000001.M1P1Q2' AND seq = 0");
	exec(f->ix, "UPDATE recipient SET state = 'failed', last_error = "
	    "'550 no such user', bounced = 1 WHERE "
	    "message_id = '1700000001.M1P1Q2' AND seq = 1");
	assert_int_equal(one(f->ix, IA_REQUEUE, id, NOW, st), IA_CHANGED);
	assert_string_equal(st, "failed");
	get_ok(f->ix, id, &m);
	assert_string_equal(m.state, "queued");
	assert_int_equal(m.attempts, 0);
	assert_int_equal(m.next_attempt_at, NOW);
	assert_null(m.last_error);
	assert_int_equal(m.done_at, 0);
	assert_string_equal(m.rcpts[0].state, "sent");
	assert_string_equal(m.rcpts[1].state, "pending");
	assert_null(m.rcpts[1].last_error);
	assert_int_equal(m.rcpts[1].bounced, 0);
	index_admin_msg_clear(&m);
	assert_int_equal(one(f->ix, IA_REQUEUE, id, NOW, st), IA_SKIPPED);
	assert_string_equal(st, "queued");
	assert_int_equal(one(f->ix, IA_REQUEUE, "9.M9P9Q9", NOW, st),
	    IA_UNKNOWN);
}

/* ---- stats ---- */

static void
test_stats(void **state)
{
	struct fixture *f = *state;
	struct index_admin_stats s;

	exec(f->ix, "UPDATE message SET state = 'sent' "
	    "WHERE id = '1700000000.M1P1Q1'");
	exec(f->ix, "UPDATE message SET state = 'held' "
	    "WHERE id = '1700000002.M1P1Q3'");
	assert_int_equal(index_admin_stats(f->ix, &s), 0);
	assert_int_equal(s.count[IA_QUEUED], 1);
	assert_int_equal(s.count[IA_SENT], 1);
	assert_int_equal(s.count[IA_HELD], 1);
	assert_int_equal(s.count[IA_FAILED], 0);
	assert_int_equal(s.bytes[IA_QUEUED], 200);
	assert_int_equal(s.bytes[IA_HELD], 400);
	assert_int_equal(s.bytes[IA_SENT], 100);
	assert_int_equal(s.oldest, T0 + 1);
	exec(f->ix, "UPDATE message SET state = 'failed'");
	assert_int_equal(index_admin_stats(f->ix, &s), 0);
	assert_int_equal(s.count[IA_FAILED], 3);
	assert_int_equal(s.oldest, 0);
}

static void
test_state_names(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < IA_NSTATES; i++)
		assert_int_equal(index_admin_state_parse(
		    index_admin_state_name(i)), i);
	assert_int_equal(index_admin_state_parse("all"), -1);
	assert_int_equal(index_admin_state_parse("Queued"), -1);
	assert_int_equal(index_admin_state_parse(""), -1);
}

/* A second connection, in its own thread, holds the write lock a while. */
struct locker {
	const char *dir;
	int ready[2];		/* pipe: a byte once the lock is held */
};

static void *
locker_run(void *arg)
{
	struct locker *l = arg;
	struct index *ix;
	char err[256];

	if ((ix = index_open(l->dir, INDEX_SYNC_NORMAL, err,
	    sizeof(err))) == NULL || index_begin(ix) == -1) {
		(void)!write(l->ready[1], "e", 1);
		index_close(ix);
		return NULL;
	}
	(void)!write(l->ready[1], "x", 1);
	usleep(300 * 1000);
	(void)index_commit(ix);
	index_close(ix);
	return NULL;
}

/* A change made while another writer holds the lock waits, then works. */
static void
test_busy_waits(void **state)
{
	struct fixture *f = *state;
	struct locker l = { f->dir, { -1, -1 } };
	char st[INDEX_ADMIN_STATE_MAX], c;
	pthread_t t;
	long long t0;

	assert_int_equal(pipe(l.ready), 0);
	assert_int_equal(pthread_create(&t, NULL, locker_run, &l), 0);
	assert_int_equal(read(l.ready[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	t0 = util_now_ms();
	assert_int_equal(one(f->ix, IA_HOLD, "1700000000.M1P1Q1", 0, st),
	    IA_CHANGED);
	assert_true(util_now_ms() - t0 >= 100);
	pthread_join(t, NULL);
	close(l.ready[0]);
	close(l.ready[1]);
}

/* ---- filters ---- */

/* The ids f picks, in order, as "1 2 3" (the Q number of each). */
static const char *
picked(struct index *ix, const struct index_admin_filter *f)
{
	static char out[64];
	struct seen s = { 0 };
	int i;

	assert_int_equal(index_admin_list(ix, f, collect, &s), 0);
	out[0] = '\0';
	for (i = 0; i < s.n; i++) {
		if (i > 0)
			strcat(out, " ");
		strcat(out, strrchr(s.ids[i], 'Q') + 1);
	}
	return out;
}

static void
test_filters(void **state)
{
	struct fixture *f = *state;
	struct {
		struct index_admin_filter f;
		const char *want;
	} cases[] = {
		{ { .from = "alice@example.org" }, "1 2" },
		{ { .from = "ALICE@Example.ORG" }, "1 2" },
		{ { .from = "@EXAMPLE.org" }, "1 2" },
		{ { .from = "@ample.org" }, "" },	/* a whole domain only */
		{ { .from = "" }, "3" },		/* the null sender */
		{ { .from = "bob@example.com" }, "" },
		{ { .to = "dave@example.net" }, "2" },
		{ { .to = "@example.com" }, "1 3" },
		{ { .to = "@example" }, "" },
		{ { .user = "alice" }, "1 2" },
		{ { .user = "Alice" }, "" },
		{ { .received_before = T0 + 1 }, "1 2" },
		{ { .received_after = T0 }, "2 3" },
		{ { .received_before = T0 + 1, .received_after = T0 }, "2" },
		{ { .user = "alice", .to = "@example.com" }, "1" },
		{ { .state = "held" }, "" },
		{ { .state = "queued", .from = "" }, "3" },
		{ { 0 }, "1 2 3" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (strcmp(picked(f->ix, &cases[i].f), cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i,
			    picked(f->ix, &cases[i].f), cases[i].want);
	/* Without a state, sent messages are left out; "all" has them. */
	exec(f->ix, "UPDATE message SET state = 'sent' "
	    "WHERE id = '1700000002.M1P1Q3'");
	assert_string_equal(picked(f->ix, &(struct index_admin_filter){
	    .to = "@example.com" }), "1");
	assert_string_equal(picked(f->ix, &(struct index_admin_filter){
	    .to = "@example.com", .state = "all" }), "1 3");
}

/* ---- batches ---- */

/* Each message of a batch, as "Q:verdict:state" words. */
static int
walk(const char *id, const char *state, enum index_admin_verdict v,
    void *arg)
{
	char *out = arg, w[64];

	snprintf(w, sizeof(w), "%s%s:%d:%s", out[0] ? " " : "",
	    strrchr(id, 'Q') + 1, (int)v, state != NULL ? state : "-");
	strcat(out, w);
	return 0;
}

static void
test_batch_ids(void **state)
{
	struct fixture *f = *state;
	struct index_admin_batch *b;
	long long count[IA_NVERDICTS];
	char out[256] = "";

	exec(f->ix, "UPDATE message SET state = 'sending' "
	    "WHERE id = '1700000001.M1P1Q2'");
	assert_non_null(b = index_admin_batch_new(f->ix));
	assert_int_equal(index_admin_batch_add(b, "1700000002.M1P1Q3"), 0);
	assert_int_equal(index_admin_batch_add(b, "9.M9P9Q9"), 0);
	assert_int_equal(index_admin_batch_add(b, "1700000001.M1P1Q2"), 0);
	assert_int_equal(index_admin_batch_add(b, "1700000000.M1P1Q1"), 0);
	assert_int_equal(index_admin_batch_add(b, "1700000002.M1P1Q3"), 0);
	assert_int_equal(index_admin_batch_run(b, IA_DELETE, NULL, NOW,
	    count), 0);
	assert_int_equal(count[IA_CHANGED], 2);
	assert_int_equal(count[IA_UNKNOWN], 1);
	assert_int_equal(count[IA_SKIPPED], 1);
	assert_int_equal(count[IA_UNCHANGED], 0);
	/* In the order given, each id once, with the state it had. */
	assert_int_equal(index_admin_batch_each(b, walk, out), 0);
	assert_string_equal(out, "3:1:queued 9:3:- 2:0:sending 1:1:queued");
	index_admin_batch_free(b);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE id <> ?1", "1700000001.M1P1Q2"), 0);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM recipient "
	    "WHERE message_id <> ?1", "1700000001.M1P1Q2"), 0);
	/* A new batch starts empty. */
	assert_non_null(b = index_admin_batch_new(f->ix));
	assert_int_equal(index_admin_batch_run(b, IA_HOLD, NULL, NOW, count),
	    0);
	assert_int_equal(count[IA_CHANGED] + count[IA_SKIPPED] +
	    count[IA_UNKNOWN], 0);
	index_admin_batch_free(b);
	index_admin_batch_free(NULL);
}

static void
test_batch_filter(void **state)
{
	struct fixture *f = *state;
	char st[INDEX_ADMIN_STATE_MAX];

	run_all(f->ix, IA_HOLD, &(struct index_admin_filter){
	    .to = "@example.net" }, NOW, 1, 0, 0);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE state = ?1", "held"), 1);
	assert_int_equal(one(f->ix, IA_HOLD, "1700000001.M1P1Q2", 0, st),
	    IA_UNCHANGED);
	run_all(f->ix, IA_HOLD, NULL, NOW, 2, 1, 0);
	run_all(f->ix, IA_RELEASE, &(struct index_admin_filter){
	    .from = "" }, NOW, 1, 0, 0);
	run_all(f->ix, IA_REQUEUE, NULL, NOW, 0, 0, 3);
	run_all(f->ix, IA_DELETE, &(struct index_admin_filter){
	    .state = "held" }, NOW, 2, 0, 0);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE id <> ?1", "1700000002.M1P1Q3"), 0);
}

static void
test_batch_ids_and_filter_refused(void **state)
{
	struct fixture *f = *state;
	static const struct index_admin_filter none;
	struct index_admin_batch *b;
	long long count[IA_NVERDICTS];

	assert_non_null(b = index_admin_batch_new(f->ix));
	assert_int_equal(index_admin_batch_add(b, "1700000000.M1P1Q1"), 0);
	assert_int_equal(index_admin_batch_run(b, IA_DELETE, &none, NOW,
	    count), -1);
	assert_non_null(strstr(index_errmsg(f->ix), "not both"));
	index_admin_batch_free(b);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE id <> ?1", ""), 3);
}

/* A failure part way through changes nothing: one transaction. */
static void
test_batch_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	static const struct index_admin_filter none;
	struct index_admin_batch *b;
	long long count[IA_NVERDICTS];
	char out[256] = "";

	exec(f->ix, "CREATE TRIGGER boom BEFORE DELETE ON message WHEN "
	    "old.id = '1700000002.M1P1Q3' BEGIN SELECT RAISE(ABORT, 'boom'); "
	    "END");
	assert_non_null(b = index_admin_batch_new(f->ix));
	assert_int_equal(index_admin_batch_run(b, IA_DELETE, &none, NOW,
	    count), -1);
	assert_non_null(strstr(index_errmsg(f->ix), "boom"));
	assert_int_equal(index_admin_batch_each(b, walk, out), 0);
	assert_string_equal(out, "");
	index_admin_batch_free(b);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE id <> ?1", ""), 3);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM recipient "
	    "WHERE message_id <> ?1", ""), 4);
}

/* Many messages: every one in the counts, one statement per step. */
static void
test_batch_many(void **state)
{
	struct fixture *f = *state;
	static const char *const r[] = { "x@example.com" };
	struct index_new_msg m[500];
	const struct index_new_msg *p[500];
	char ids[500][32];
	int i, k;

	for (k = 0; k < 20; k++) {
		for (i = 0; i < 500; i++) {
			snprintf(ids[i], sizeof(ids[i]), "1.M%dP1Q%d", k, i);
			m[i] = (struct index_new_msg){ ids[i], "bulk",
			    "bulk@example.org", "192.0.2.9", 10, T0 + 10, 0, 1,
			    r };
			p[i] = &m[i];
		}
		assert_int_equal(index_insert_batch(f->ix, p, 500), 0);
	}
	run_all(f->ix, IA_HOLD, &(struct index_admin_filter){
	    .user = "bulk" }, NOW, 10000, 0, 0);
	run_all(f->ix, IA_DELETE, &(struct index_admin_filter){
	    .state = "held", .from = "BULK@example.org" }, NOW, 10000, 0, 0);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE id <> ?1", ""), 3);
}

/* ---- read-only open ---- */

static void
test_open_readonly(void **state)
{
	struct fixture *f = *state;
	struct index *ro;
	struct seen s = { 0 };
	char err[512], path[128];

	assert_non_null(ro = index_admin_open_readonly(f->dir, err,
	    sizeof(err)));
	assert_int_equal(index_admin_list(ro, NULL, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(index_exec(ro, "DELETE FROM message"), -1);
	index_close(ro);
	assert_int_equal(query_int(f->ix, "SELECT COUNT(*) FROM message "
	    "WHERE id <> ?1", ""), 3);
	/* The daemons' connections keep -wal and -shm for such readers. */
	index_close(f->ix);
	snprintf(path, sizeof(path), "%s/index.db-shm", f->dir);
	assert_int_equal(access(path, F_OK), 0);
	f->ix = index_open(f->dir, INDEX_SYNC_NORMAL, err, sizeof(err));
	assert_non_null(f->ix);
	/* Another schema version is not read. */
	exec(f->ix, "PRAGMA user_version = 1");
	assert_null(index_admin_open_readonly(f->dir, err, sizeof(err)));
	assert_non_null(strstr(err, "older"));
	exec(f->ix, "PRAGMA user_version = 99");
	assert_null(index_admin_open_readonly(f->dir, err, sizeof(err)));
	assert_non_null(strstr(err, "newer"));
	snprintf(path, sizeof(path), "PRAGMA user_version = %d",
	    INDEX_SCHEMA_VERSION);
	exec(f->ix, path);
	assert_null(index_admin_open_readonly("/nonexistent/spool", err,
	    sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/spool/index.db"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_list_default),
		T(test_list_state_and_all),
		T(test_list_stop),
		T(test_list_rcpts),
		T(test_get),
		T(test_get_unknown),
		T(test_flush_one),
		T(test_flush_states),
		T(test_flush_all),
		T(test_hold_release),
		T(test_hold_queued),
		T(test_hold_refused),
		T(test_release_without_held_from),
		T(test_delete),
		T(test_delete_sending),
		T(test_requeue),
		T(test_stats),
		T(test_busy_waits),
		T(test_filters),
		T(test_batch_ids),
		T(test_batch_filter),
		T(test_batch_ids_and_filter_refused),
		T(test_batch_all_or_nothing),
		T(test_batch_many),
		T(test_open_readonly),
		cmocka_unit_test(test_state_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
