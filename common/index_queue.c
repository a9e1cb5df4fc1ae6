/*
 * index_queue — see index_queue.h. A lease names host and pid, so a
 * runner's restart on the same host can tell a live claim from a dead one
 * without waiting for the lease to run out.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_impl.h"
#include "index_queue.h"
#include "spool.h"

static int
owner_gone(const char *host, long long pid, const char *hostname)
{
	if (host == NULL || strcmp(host, hostname) != 0 || pid <= 0)
		return 0;
	return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* Move one claim back to deferred, due now. */
static int
lease_clear(struct index *ix, const char *id, time_t now)
{
	sqlite3_stmt *st = index_stmt(ix, IX_LEASE_CLEAR, "UPDATE message "
	    "SET state = 'deferred', lease_host = NULL, lease_pid = NULL, "
	    "lease_until = NULL, next_attempt_at = ?2 "
	    "WHERE id = ?1 AND state = 'sending'");

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	return index_step_done(ix, st, "lease clear");
}

int
index_release_stale_leases(struct index *ix, const char *hostname,
    time_t now)
{
	sqlite3_stmt *st;
	int rc, n = 0;

	if (index_begin(ix) == -1)
		return -1;
	st = index_stmt(ix, IX_EXPIRED_LEASES, "SELECT id, lease_host, "
	    "lease_pid, lease_until FROM message WHERE state = 'sending'");
	if (st == NULL)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *host = (const char *)sqlite3_column_text(st, 1);
		long long pid = sqlite3_column_int64(st, 2);
		long long until = sqlite3_column_int64(st, 3);

		if (until >= (long long)now && !owner_gone(host, pid, hostname))
			continue;
		if (lease_clear(ix, id, now) == -1)
			goto fail;
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		index_set_error(ix, "lease scan");
		goto fail;
	}
	return index_commit(ix) == 0 ? n : -1;
fail:
	index_rollback(ix);
	return -1;
}

static void
copy_col(sqlite3_stmt *st, int col, char *dst, size_t dstsz)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, dstsz, "%s", t != NULL ? (const char *)t : "");
}

/* Read up to max due ids (with their fields) into out. */
static int
claim_select(struct index *ix, time_t now, time_t retry_by,
    struct index_claim *out, size_t max)
{
	sqlite3_stmt *st;
	size_t n = 0;
	int rc;

	/*
	 * One ordered, limited scan of the (state, next_attempt_at) index per
	 * state, merged: "state IN (...) ORDER BY next_attempt_at" would sort
	 * every due row on each claim, quadratic over a large queue.
	 */
	st = index_stmt(ix, IX_CLAIM_DUE, "SELECT * FROM ("
	    "SELECT id, sender, auth_user, size, received_at, attempts, "
	    "is_bounce, next_attempt_at, warned_at FROM message WHERE state = "
	    "'queued' AND next_attempt_at <= ?1 ORDER BY next_attempt_at "
	    "LIMIT ?2) UNION ALL SELECT * FROM ("
	    "SELECT id, sender, auth_user, size, received_at, attempts, "
	    "is_bounce, next_attempt_at, warned_at FROM message WHERE state = "
	    "'deferred' "
	    "AND next_attempt_at <= ?3 ORDER BY next_attempt_at LIMIT ?2) "
	    "ORDER BY 8 LIMIT ?2");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)retry_by);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max) {
		struct index_claim *c = &out[n++];

		copy_col(st, 0, c->id, sizeof(c->id));
		copy_col(st, 1, c->sender, sizeof(c->sender));
		copy_col(st, 2, c->auth_user, sizeof(c->auth_user));
		c->size = sqlite3_column_int64(st, 3);
		c->received_at = sqlite3_column_int64(st, 4);
		c->attempts = sqlite3_column_int(st, 5);
		c->is_bounce = sqlite3_column_int(st, 6);
		c->warned_at = sqlite3_column_int64(st, 8);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		index_set_error(ix, "claim select");
		return -1;
	}
	return (int)n;
}

int
index_claim_due(struct index *ix, const char *host, long pid, time_t now,
    time_t retry_by, long lease, struct index_claim *out, size_t max)
{
	sqlite3_stmt *st;
	int i, n;

	if (index_begin(ix) == -1)
		return -1;
	if ((n = claim_select(ix, now, retry_by, out, max)) <= 0) {
		index_rollback(ix);
		return n;
	}
	for (i = 0; i < n; i++) {
		st = index_stmt(ix, IX_CLAIM_SET, "UPDATE message SET "
		    "state = 'sending', lease_host = ?2, lease_pid = ?3, "
		    "lease_until = ?4 WHERE id = ?1");
		if (st == NULL)
			goto fail;
		sqlite3_bind_text(st, 1, out[i].id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, pid);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)(now + lease));
		if (index_step_done(ix, st, "claim") == -1)
			goto fail;
	}
	return index_commit(ix) == 0 ? n : -1;
fail:
	index_rollback(ix);
	return -1;
}

int
index_rcpts(struct index *ix, const char *id, int failed_unbounced,
    struct index_rcpt **out, size_t *n)
{
	struct index_rcpt *v = NULL, *grown;
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	st = index_stmt(ix, IX_RCPTS_PENDING, "SELECT seq, address, "
	    "last_error FROM recipient WHERE message_id = ?1 AND "
	    "(( ?2 = 0 AND state = 'pending') OR "
	    "(?2 = 1 AND state = 'failed' AND bounced = 0)) ORDER BY seq");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, failed_unbounced);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((grown = reallocarray(v, *n + 1, sizeof(*v))) == NULL)
			break;
		v = grown;
		v[*n].seq = sqlite3_column_int64(st, 0);
		copy_col(st, 1, v[*n].addr, sizeof(v[*n].addr));
		copy_col(st, 2, v[*n].error, sizeof(v[*n].error));
		(*n)++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		index_set_error(ix, "recipients");
		free(v);
		*n = 0;
		return -1;
	}
	*out = v;
	return 0;
}

static const char *
rcpt_state(enum outcome outcome)
{
	return outcome == OUTCOME_OK ? "sent" : outcome == OUTCOME_PERM ?
	    "failed" : "pending";
}

/*
 * Count one attempt and its recipients by outcome (tally: sent, deferred,
 * failed) in one statement: it runs for every message delivered.
 */
static int
count_attempt(struct index *ix, const long long tally[3])
{
	static const enum index_total rcpt[3] = { INDEX_RCPT_SENT,
	    INDEX_RCPT_DEFERRED, INDEX_RCPT_FAILED };
	sqlite3_stmt *st;
	int i;

	st = index_stmt(ix, IX_COUNT_ATTEMPT, "INSERT INTO counter (name, "
	    "value) VALUES (?1, 1), (?2, ?3), (?4, ?5), (?6, ?7) ON CONFLICT "
	    "(name) DO UPDATE SET value = value + excluded.value");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, index_total_name(INDEX_ATTEMPTS), -1,
	    SQLITE_STATIC);
	for (i = 0; i < 3; i++) {
		sqlite3_bind_text(st, 2 * i + 2, index_total_name(rcpt[i]), -1,
		    SQLITE_STATIC);
		sqlite3_bind_int64(st, 2 * i + 3, tally[i]);
	}
	return index_step_done(ix, st, "count attempt");
}

static int
record_rcpts(struct index *ix, const struct index_result *r)
{
	long long tally[3] = { 0, 0, 0 };
	sqlite3_stmt *st;
	size_t i;

	for (i = 0; i < r->n; i++) {
		/* At the lifetime's end a pending one fails, and is counted
		   so by record_finish(): not as deferred as well. */
		if (r->outcome[i] != OUTCOME_TEMP || !r->expired)
			tally[r->outcome[i] == OUTCOME_OK ? 0 :
			    r->outcome[i] == OUTCOME_PERM ? 2 : 1]++;
		st = index_stmt(ix, IX_RCPT_SET, "UPDATE recipient SET "
		    "state = ?3, last_error = ?4 WHERE message_id = ?1 AND "
		    "seq = ?2");
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, r->seq[i]);
		sqlite3_bind_text(st, 3, rcpt_state(r->outcome[i]), -1,
		    SQLITE_STATIC);
		sqlite3_bind_text(st, 4, r->reply[i], -1, SQLITE_STATIC);
		if (index_step_done(ix, st, "recipient result") == -1)
			return -1;
	}
	return count_attempt(ix, tally);
}

/* Final states: expired pending ones fail; failed ones get bounced. */
static int
record_finish(struct index *ix, const struct index_result *r)
{
	sqlite3_stmt *st;
	int rc;

	if (r->expired) {
		if (sqlite3_prepare_v2(ix->db, "UPDATE recipient SET state = "
		    "'failed' WHERE message_id = ?1 AND state = 'pending'", -1,
		    &st, NULL) != SQLITE_OK)
			return index_set_error(ix, "expire"), -1;
		sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
		rc = index_step_done(ix, st, "expire");
		sqlite3_finalize(st);
		if (rc == -1 || index_count(ix, INDEX_RCPT_FAILED,
		    sqlite3_changes(ix->db)) == -1)
			return -1;
	}
	if (r->bounce == NULL)
		return 0;
	if (index_insert_msg(ix, r->bounce) == -1 ||
	    index_count(ix, INDEX_BOUNCES, 1) == -1)
		return -1;
	if (sqlite3_prepare_v2(ix->db, "UPDATE recipient SET bounced = 1 "
	    "WHERE message_id = ?1 AND state = 'failed'", -1, &st, NULL) !=
	    SQLITE_OK)
		return index_set_error(ix, "bounced"), -1;
	sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	rc = index_step_done(ix, st, "bounced");
	sqlite3_finalize(st);
	return rc;
}

static int
record_message(struct index *ix, const struct index_result *r)
{
	sqlite3_stmt *st;

	st = index_stmt(ix, IX_MSG_FINISH, "UPDATE message SET "
	    "state = CASE WHEN ?4 = 0 THEN 'deferred' WHEN EXISTS (SELECT 1 "
	    "FROM recipient WHERE message_id = ?1 AND state = 'sent') THEN "
	    "'sent' ELSE 'failed' END, attempts = attempts + 1, "
	    "next_attempt_at = ?5, last_error = ?6, done_at = CASE WHEN ?4 "
	    "THEN ?7 END, warned_at = CASE WHEN ?8 THEN ?7 ELSE warned_at END, "
	    "lease_host = NULL, lease_pid = NULL, lease_until = NULL "
	    "WHERE id = ?1 AND state = 'sending' AND lease_host = ?2 AND "
	    "lease_pid = ?3");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->pid);
	sqlite3_bind_int(st, 4, r->finished);
	sqlite3_bind_int64(st, 5, r->next_attempt_at);
	if (r->last_error != NULL)
		sqlite3_bind_text(st, 6, r->last_error, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)r->now);
	sqlite3_bind_int(st, 8, r->warning != NULL);
	if (index_step_done(ix, st, "message result") == -1)
		return -1;
	return sqlite3_changes(ix->db) == 1 ? 1 : 0;
}

/*
 * One result inside the open transaction, under a savepoint so that a
 * claim found not ours takes back its own changes and no other's.
 */
static int
record_one(struct index *ix, const struct index_result *r)
{
	int mine;

	if (index_exec(ix, "SAVEPOINT result") == -1)
		return -1;
	if (record_rcpts(ix, r) == -1 ||
	    (r->finished && record_finish(ix, r) == -1) ||
	    (r->warning != NULL && index_insert_msg(ix, r->warning) == -1))
		return -1;	/* the caller rolls everything back */
	/* The message row last: its CASE reads the recipients' states. */
	if ((mine = record_message(ix, r)) == -1)
		return -1;
	if (mine == 0 && index_exec(ix, "ROLLBACK TO result") == -1)
		return -1;
	if (index_exec(ix, "RELEASE result") == -1)
		return -1;
	return mine;
}

int
index_record_batch(struct index *ix, const struct index_result *const *r,
    size_t n, int *rc)
{
	size_t i;

	for (i = 0; i < n; i++)
		rc[i] = -1;
	if (index_begin(ix) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if ((rc[i] = record_one(ix, r[i])) == -1)
			goto fail;
	if (index_commit(ix) == 0)
		return 0;
fail:
	index_rollback(ix);
	for (i = 0; i < n; i++)
		rc[i] = -1;
	return -1;
}

int
index_record(struct index *ix, const struct index_result *r)
{
	int rc;

	(void)index_record_batch(ix, &r, 1, &rc);
	return rc;
}

int
index_renew_lease(struct index *ix, const char *id, const char *host,
    long pid, time_t until)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(ix->db, "UPDATE message SET lease_until = ?4 "
	    "WHERE id = ?1 AND state = 'sending' AND lease_host = ?2 AND "
	    "lease_pid = ?3", -1, &st, NULL) != SQLITE_OK) {
		index_set_error(ix, "renew");
		return -1;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, pid);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)until);
	if (index_step_done(ix, st, "renew") == -1) {
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return sqlite3_changes(ix->db) == 1 ? 1 : 0;
}

int
index_unclaim(struct index *ix, const char *id, const char *host, long pid,
    time_t now)
{
	sqlite3_stmt *st;

	st = index_stmt(ix, IX_MSG_RELEASE, "UPDATE message SET state = "
	    "CASE WHEN attempts = 0 THEN 'queued' ELSE 'deferred' END, "
	    "next_attempt_at = ?4, lease_host = NULL, lease_pid = NULL, "
	    "lease_until = NULL WHERE id = ?1 AND state = 'sending' AND "
	    "lease_host = ?2 AND lease_pid = ?3");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, pid);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	return index_step_done(ix, st, "unclaim");
}

/* ids as one JSON array of strings for json_each(); NULL if too long. */
static char *
ids_json(const char *const *ids, size_t n)
{
	size_t i, len = 3, k = 0;
	const char *p;
	char *out;

	for (i = 0; i < n; i++)
		len += 2 * strlen(ids[i]) + 3;
	if ((out = malloc(len)) == NULL)
		return NULL;
	out[k++] = '[';
	for (i = 0; i < n; i++) {
		if (i > 0)
			out[k++] = ',';
		out[k++] = '"';
		for (p = ids[i]; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20) {
				free(out);	/* never in a queue id */
				return NULL;
			}
			if (*p == '"' || *p == '\\')
				out[k++] = '\\';
			out[k++] = *p;
		}
		out[k++] = '"';
	}
	out[k++] = ']';
	out[k] = '\0';
	return out;
}

int
index_due_now(struct index *ix, const char *const *ids, size_t n,
    time_t now)
{
	sqlite3_stmt *st;
	char *json;
	int rc;

	if (n == 0)
		return 0;
	if (n > INDEX_DUE_NOW_MAX || (json = ids_json(ids, n)) == NULL) {
		snprintf(ix->errmsg, sizeof(ix->errmsg), "due now: bad ids");
		return -1;
	}
	st = index_stmt(ix, IX_DUE_NOW, "UPDATE message SET next_attempt_at "
	    "= ?1 WHERE state = 'deferred' AND next_attempt_at > ?1 AND id "
	    "IN (SELECT value FROM json_each(?2))");
	if (st == NULL) {
		free(json);
		return -1;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	sqlite3_bind_text(st, 2, json, -1, SQLITE_STATIC);
	rc = index_step_done(ix, st, "due now");
	sqlite3_clear_bindings(st);
	free(json);
	return rc == -1 ? -1 : sqlite3_changes(ix->db);
}

long long
index_next_due(struct index *ix)
{
	sqlite3_stmt *st;
	long long v = -1;
	int rc;

	st = index_stmt(ix, IX_NEXT_DUE, "SELECT MIN(m) FROM ("
	    "SELECT MIN(next_attempt_at) AS m FROM message WHERE state = "
	    "'queued' UNION ALL SELECT MIN(next_attempt_at) FROM message "
	    "WHERE state = 'deferred')");
	if (st == NULL)
		return -2;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		index_set_error(ix, "next due");
		return -2;
	}
	return v;
}

/* Delete one purged message and its recipients. */
static int
purge_one(struct index *ix, const char *id)
{
	sqlite3_stmt *st;

	st = index_stmt(ix, IX_PURGE_RCPTS, "DELETE FROM recipient WHERE "
	    "message_id = ?1");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (index_step_done(ix, st, "purge recipients") == -1)
		return -1;
	st = index_stmt(ix, IX_PURGE_MSG, "DELETE FROM message WHERE id = ?1 "
	    "AND state = 'sent'");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return index_step_done(ix, st, "purge");
}

/* Up to max purgeable ids, oldest first, into ids (max slots). */
static int
purge_select(struct index *ix, time_t cutoff, char (*ids)[SPOOL_ID_MAX],
    size_t max)
{
	sqlite3_stmt *st;
	size_t n = 0;
	int rc;

	/* Named: the planner would take message_due for "state = 'sent'"
	   and sort every sent row, purgeable or not, on each batch. */
	st = index_stmt(ix, IX_PURGE_SENT, "SELECT id FROM message INDEXED BY "
	    "message_sent_done WHERE state = 'sent' AND done_at < ?1 ORDER BY "
	    "done_at LIMIT ?2");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)cutoff);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
		copy_col(st, 0, ids[n++], SPOOL_ID_MAX);
	sqlite3_reset(st);
	if (n < max && rc != SQLITE_DONE) {
		index_set_error(ix, "purge scan");
		return -1;
	}
	return (int)n;
}

int
index_purge_sent(struct index *ix, time_t now, long retention, size_t max,
    void (*gone)(const char *id, void *ctx), void *ctx)
{
	char (*ids)[SPOOL_ID_MAX];
	int i, n;

	if (max == 0)
		return 0;
	if ((ids = calloc(max, sizeof(*ids))) == NULL) {
		snprintf(ix->errmsg, sizeof(ix->errmsg), "out of memory");
		return -1;
	}
	if (index_begin(ix) == -1) {
		free(ids);
		return -1;
	}
	if ((n = purge_select(ix, now - retention, ids, max)) == -1)
		goto fail;
	for (i = 0; i < n; i++)
		if (purge_one(ix, ids[i]) == -1)
			goto fail;
	if (index_commit(ix) == -1) {
		free(ids);
		return -1;
	}
	for (i = 0; i < n; i++)
		gone(ids[i], ctx);
	free(ids);
	return n;
fail:
	index_rollback(ix);
	free(ids);
	return -1;
}
