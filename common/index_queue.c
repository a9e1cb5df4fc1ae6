/*
 * index_queue — see index_queue.h. A lease names host and pid, so a
 * runner's restart on the same host can tell a live claim from a dead one
 * without waiting for the lease to run out.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "index_impl.h"
#include "index_queue.h"

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
