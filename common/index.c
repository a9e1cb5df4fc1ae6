/*
 * index — opening, schema, and the accept-side statements. The schema text
 * is sql/schema.sql, compiled in (schema_sql.h is generated from it).
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include <bsd/string.h>

#include "index.h"
#include "index_impl.h"
#include "schema_sql.h"
#include "util.h"
#include "migrate-2_sql.h"
#include "migrate-3_sql.h"
#include "migrate-4_sql.h"

const char *
index_errmsg(const struct index *ix)
{
	return ix->errmsg;
}

void
index_set_error(struct index *ix, const char *what)
{
	snprintf(ix->errmsg, sizeof(ix->errmsg), "%s: %s", what,
	    sqlite3_errmsg(ix->db));
}

sqlite3_stmt *
index_stmt(struct index *ix, enum index_stmt_id which, const char *sql)
{
	sqlite3_stmt **slot = &ix->stmts[which];

	if (*slot == NULL &&
	    sqlite3_prepare_v3(ix->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    slot, NULL) != SQLITE_OK) {
		index_set_error(ix, "prepare");
		*slot = NULL;
		return NULL;
	}
	sqlite3_reset(*slot);
	sqlite3_clear_bindings(*slot);
	return *slot;
}

int
index_exec(struct index *ix, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(ix->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(ix->errmsg, sizeof(ix->errmsg), "%s",
		    msg != NULL ? msg : sqlite3_errmsg(ix->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* The value of a pragma that answers one non-negative integer; -1 on error. */
static long long
index_pragma_int(struct index *ix, const char *sql)
{
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int
index_user_version(struct index *ix)
{
	return (int)index_pragma_int(ix, "PRAGMA user_version");
}

long long
index_data_version(struct index *ix)
{
	return index_pragma_int(ix, "PRAGMA data_version");
}

/* migrations[k] takes version k + 1 to k + 2 (sql/migrate-N.sql). */
static const char *const migrations[] = { migrate_2_sql, migrate_3_sql,
    migrate_4_sql };
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
    INDEX_SCHEMA_VERSION - 1, "one migration for each version after 1");

/*
 * Create the schema in a fresh file, or bring an old one up to this
 * program's version, all in one transaction: a failed upgrade leaves the
 * index as it was.
 */
static int
index_schema(struct index *ix)
{
	int v;

	if (index_exec(ix, "BEGIN IMMEDIATE") == -1)
		return -1;
	if ((v = index_user_version(ix)) == -1) {
		index_set_error(ix, "user_version");
		goto fail;
	}
	if (v == 0 && index_exec(ix, schema_sql) == -1)
		goto fail;
	for (; v > 0 && v < INDEX_SCHEMA_VERSION; v++)
		if (index_exec(ix, migrations[v - 1]) == -1)
			goto fail;
	if (v > INDEX_SCHEMA_VERSION) {
		snprintf(ix->errmsg, sizeof(ix->errmsg), "index schema "
		    "version %d is newer than this program's (%d)", v,
		    INDEX_SCHEMA_VERSION);
		goto fail;
	}
	return index_exec(ix, "COMMIT");
fail:
	(void)index_exec(ix, "ROLLBACK");
	return -1;
}

/*
 * SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries,
 * so a writer that finds the lock taken mostly wakes long after it was
 * released: with mppd's committer and mppqueue's threads each committing
 * many times a second, those sleeps were most of posting's p99. A try
 * costs a few system calls; short even steps bound the wait past the
 * release to one step, the timeout unchanged.
 */
#define INDEX_BUSY_STEP_NS (250 * 1000L)

static int
index_busy(void *arg, int tries)
{
	const struct timespec step = { 0, INDEX_BUSY_STEP_NS };
	struct index *ix = arg;

	if (tries == 0)
		ix->busy_since_ms = util_now_ms();
	else if (util_now_ms() - ix->busy_since_ms >= INDEX_BUSY_TIMEOUT_MS)
		return 0;
	nanosleep(&step, NULL);
	return 1;
}

void
index_busy_install(struct index *ix)
{
	sqlite3_busy_handler(ix->db, index_busy, ix);
}

static int
index_pragmas(struct index *ix, enum index_sync sync)
{
	int persist = 1;

	/* Keep index.db-wal and -shm when the last connection closes: a
	   reader that may not write in the spool (mppq for the spool's
	   group) cannot create them, and SQLite needs them to read. */
	(void)sqlite3_file_control(ix->db, "main", SQLITE_FCNTL_PERSIST_WAL,
	    &persist);
	index_busy_install(ix);
	if (index_exec(ix, "PRAGMA journal_mode=WAL") == -1 ||
	    index_exec(ix, "PRAGMA foreign_keys=ON") == -1)
		return -1;
	return index_exec(ix, sync == INDEX_SYNC_FULL ?
	    "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

/*
 * The lock file that makes opening the index one process at a time. Made
 * by root (mppq, or a daemon before it drops privileges), it is given to
 * the spool directory's owner, who must be able to take it too.
 */
static int
index_lock_file(const char *spool_dir, char *err, size_t errsz)
{
	char path[4096];
	struct stat dir;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", spool_dir,
	    INDEX_LOCK_NAME) >= sizeof(path)) {
		snprintf(err, errsz, "spool_dir too long");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (geteuid() == 0 && stat(spool_dir, &dir) == 0 &&
	    fchown(fd, dir.st_uid, dir.st_gid) == -1) {
		snprintf(err, errsz, "%s: chown: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Take the open lock, waiting up to INDEX_OPEN_LOCK_MS for another
 * opener. Returns the descriptor that holds it, or -1 with err set.
 */
static int
index_lock(const char *spool_dir, char *err, size_t errsz)
{
	const struct timespec pause = { 0, 10 * 1000 * 1000 };
	int fd, waited;

	if ((fd = index_lock_file(spool_dir, err, errsz)) == -1)
		return -1;
	for (waited = 0; flock(fd, LOCK_EX | LOCK_NB) == -1; waited += 10) {
		if ((errno != EWOULDBLOCK && errno != EINTR) ||
		    waited >= INDEX_OPEN_LOCK_MS) {
			snprintf(err, errsz, "%s/%s: %s", spool_dir,
			    INDEX_LOCK_NAME, errno == EWOULDBLOCK ?
			    "held by another program for too long" :
			    strerror(errno));
			close(fd);
			return -1;
		}
		nanosleep(&pause, NULL);
	}
	return fd;
}

/*
 * Take off the index files' mode bits beyond mode (an older version made
 * them 0644). Failures are left to sqlite3_open_v2() to report.
 */
static void
index_tighten(const char *path, mode_t mode)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	char p[4096 + 8];
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) &&
		    (st.st_mode & 0777 & ~mode) != 0)
			(void)chmod(p, st.st_mode & mode);
	}
}

/*
 * A new index.db is readable by the spool directory's group when the
 * directory is (mode 0640, else 0600), and belongs to the directory's
 * owner when root makes it; SQLite gives -wal and -shm the same mode and
 * owner. With the set-group-ID bit on the directory (make install sets
 * it) the files get its group: mppq reads the queue for that group.
 * Files an older version made looser than that are tightened.
 * Only a file this call made is opened and closed here: closing any
 * descriptor of a file drops every POSIX lock the process holds on it,
 * those of SQLite's other handles too.
 */
static int
index_create_file(const char *spool_dir, const char *path, char *err,
    size_t errsz)
{
	struct stat dir;
	mode_t mode;
	int fd;

	if (stat(spool_dir, &dir) == -1) {
		snprintf(err, errsz, "%s: %s", spool_dir, strerror(errno));
		return -1;
	}
	mode = (dir.st_mode & S_IRGRP) ? 0640 : 0600;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    mode);
	if (fd == -1) {
		if (errno == EEXIST) {
			index_tighten(path, mode);
			return 0;
		}
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1 || (geteuid() == 0 &&
	    fchown(fd, dir.st_uid, dir.st_gid) == -1)) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Open path and make it ready: pragmas, schema. NULL with err set. */
static struct index *
index_open_locked(const char *path, enum index_sync sync, char *err,
    size_t errsz)
{
	struct index *ix;

	if ((ix = calloc(1, sizeof(*ix))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (sqlite3_open_v2(path, &ix->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errsz, "%s: %s", path, ix->db != NULL ?
		    sqlite3_errmsg(ix->db) : "cannot open");
		index_close(ix);
		return NULL;
	}
	if (index_pragmas(ix, sync) == -1 || index_schema(ix) == -1) {
		snprintf(err, errsz, "%s: %s", path, ix->errmsg);
		index_close(ix);
		return NULL;
	}
	return ix;
}

/*
 * Opening is serialised across processes by a lock file: while one
 * connection switches a new database to WAL mode or creates the schema,
 * SQLite answers the others SQLITE_BUSY at once, without its busy
 * handler (waiting there could deadlock), so programs started together
 * on a fresh spool would fail. Statements after the open need no lock.
 */
struct index *
index_open(const char *spool_dir, enum index_sync sync, char *err,
    size_t errsz)
{
	struct index *ix;
	char path[4096];
	int lock;

	if ((size_t)snprintf(path, sizeof(path), "%s/index.db", spool_dir) >=
	    sizeof(path)) {
		snprintf(err, errsz, "spool_dir too long");
		return NULL;
	}
	if ((lock = index_lock(spool_dir, err, errsz)) == -1)
		return NULL;
	ix = index_create_file(spool_dir, path, err, errsz) == -1 ? NULL :
	    index_open_locked(path, sync, err, errsz);
	close(lock);
	return ix;
}

void
index_close(struct index *ix)
{
	size_t i;

	if (ix == NULL)
		return;
	for (i = 0; i < IX_NSTMTS; i++)
		sqlite3_finalize(ix->stmts[i]);
	sqlite3_close(ix->db);
	free(ix);
}

/* Step a statement that returns no row. */
int
index_step_done(struct index *ix, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		index_set_error(ix, what);
		return -1;
	}
	return 0;
}

int
index_insert_msg(struct index *ix, const struct index_new_msg *m)
{
	sqlite3_stmt *st;
	size_t i;

	st = index_stmt(ix, IX_INSERT_MSG, "INSERT INTO message (id, "
	    "auth_user, sender, size, client_addr, received_at, "
	    "next_attempt_at, is_bounce) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, "
	    "?7)");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, m->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->auth_user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, m->sender, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)m->size);
	sqlite3_bind_text(st, 5, m->client_addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, m->received_at);
	sqlite3_bind_int(st, 7, m->is_bounce);
	if (index_step_done(ix, st, "insert message") == -1)
		return -1;
	for (i = 0; i < m->nrcpts; i++) {
		st = index_stmt(ix, IX_INSERT_RCPT, "INSERT INTO recipient "
		    "(message_id, seq, address) VALUES (?1, ?2, ?3)");
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, m->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_text(st, 3, m->rcpts[i], -1, SQLITE_STATIC);
		if (index_step_done(ix, st, "insert recipient") == -1)
			return -1;
	}
	return 0;
}

static const char *const total_names[INDEX_NTOTALS] = {
	"accepted", "bounces", "attempts", "rcpt_sent", "rcpt_deferred",
	"rcpt_failed"
};

const char *
index_total_name(enum index_total t)
{
	return total_names[t];
}

int
index_count(struct index *ix, enum index_total t, long long n)
{
	sqlite3_stmt *st;

	if (n == 0)
		return 0;
	st = index_stmt(ix, IX_COUNT, "INSERT INTO counter (name, value) "
	    "VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = value + "
	    "excluded.value");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, total_names[t], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, n);
	return index_step_done(ix, st, "count");
}

int
index_begin(struct index *ix)
{
	return index_exec(ix, "BEGIN IMMEDIATE");
}

int
index_commit(struct index *ix)
{
	if (index_exec(ix, "COMMIT") == 0)
		return 0;
	(void)sqlite3_exec(ix->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int
index_checkpoint(struct index *ix)
{
	return index_exec(ix, "PRAGMA wal_checkpoint(PASSIVE)");
}

int
index_read_begin(struct index *ix)
{
	return index_exec(ix, "BEGIN");
}

void
index_read_end(struct index *ix)
{
	(void)sqlite3_exec(ix->db, "COMMIT", NULL, NULL, NULL);
}

void
index_rollback(struct index *ix)
{
	(void)sqlite3_exec(ix->db, "ROLLBACK", NULL, NULL, NULL);
}

int
index_insert_batch(struct index *ix, const struct index_new_msg *const *m,
    size_t n)
{
	long long bounces = 0;
	size_t i;

	if (index_begin(ix) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (index_insert_msg(ix, m[i]) == -1)
			goto fail;
		bounces += m[i]->is_bounce != 0;
	}
	if (index_count(ix, INDEX_ACCEPTED, (long long)n - bounces) == -1 ||
	    index_count(ix, INDEX_BOUNCES, bounces) == -1)
		goto fail;
	return index_commit(ix);
fail:
	index_rollback(ix);
	return -1;
}

int
index_backlog(struct index *ix, long long *queued, long long *sending)
{
	sqlite3_stmt *st;

	st = index_stmt(ix, IX_BACKLOG, "SELECT (SELECT n FROM state_total "
	    "WHERE state = 'queued'), (SELECT n FROM state_total WHERE state "
	    "= 'sending')");
	if (st == NULL)
		return -1;
	if (sqlite3_step(st) != SQLITE_ROW) {
		index_set_error(ix, "backlog");
		sqlite3_reset(st);
		return -1;
	}
	*queued = sqlite3_column_int64(st, 0);
	*sending = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return 0;
}

int
index_exists(struct index *ix, const char *id)
{
	sqlite3_stmt *st;
	int rc;

	st = index_stmt(ix, IX_EXISTS, "SELECT 1 FROM message WHERE id = ?1");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	index_set_error(ix, "exists");
	return -1;
}

int
index_moved(struct index *ix)
{
	int moved = 0;

	if (sqlite3_file_control(ix->db, "main", SQLITE_FCNTL_HAS_MOVED,
	    &moved) != SQLITE_OK) {
		index_set_error(ix, "has moved");
		return -1;
	}
	return moved != 0;
}

static int
companion_path(const char *spool_dir, const char *suffix, char *path,
    size_t pathsz)
{
	return (size_t)snprintf(path, pathsz, "%s/index.db%s", spool_dir,
	    suffix) < pathsz ? 0 : -1;
}

/*
 * Hold the file at spool_dir's index path + suffix open, so that its
 * inode number cannot be given to a new file while we compare (some file
 * systems reuse a freed one at once). Closing it drops the POSIX locks
 * this process holds on it: harmless, since only handles on the lost
 * index can be using it, and whatever they write is lost anyway.
 */
static void
companion_hold(const char *spool_dir, const char *suffix,
    struct index_held *h)
{
	char path[4096];
	struct stat st;

	h->state = INDEX_HELD_UNKNOWN;
	if (companion_path(spool_dir, suffix, path, sizeof(path)) == -1)
		return;
	if ((h->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		if (errno == ENOENT)
			h->state = INDEX_HELD_NONE;
		return;
	}
	if (fstat(h->fd, &st) == -1) {
		close(h->fd);
		return;
	}
	h->dev = st.st_dev;
	h->ino = st.st_ino;
	h->state = INDEX_HELD_FILE;
}

static void
companion_let_go(struct index_held *h)
{
	if (h->state == INDEX_HELD_FILE)
		close(h->fd);
	h->state = INDEX_HELD_NONE;
}

static long long
monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec;
}

void
index_lost_note(const char *spool_dir, struct index_lost *l)
{
	index_lost_free(l);
	companion_hold(spool_dir, "-wal", &l->wal);
	companion_hold(spool_dir, "-shm", &l->shm);
	l->noted = 1;
	l->noted_at = monotonic_s();
}

void
index_lost_free(struct index_lost *l)
{
	if (l == NULL)
		return;
	companion_let_go(&l->wal);
	companion_let_go(&l->shm);
	l->noted = 0;
}

/* 1 when path is the held file (or may be: it could not be looked at). */
static int
companion_same(const char *path, const struct index_held *h)
{
	struct stat st;

	if (h->state == INDEX_HELD_NONE)
		return 0;
	if (stat(path, &st) == -1)
		return errno != ENOENT;
	return h->state == INDEX_HELD_UNKNOWN ||
	    (st.st_dev == h->dev && st.st_ino == h->ino);
}

/* Forget a held file once it has left the path: any file there is new. */
static int
companion_gone(const char *spool_dir, const char *suffix,
    struct index_held *h)
{
	char path[4096];

	if (companion_path(spool_dir, suffix, path, sizeof(path)) == -1)
		return 0;
	if (companion_same(path, h))
		return 0;
	companion_let_go(h);
	return 1;
}

/*
 * index.db is gone, so what the note found beside it belongs to no
 * database: set it aside, or a new index made at the path would read the
 * old one's pages from it. The -wal (the old file's last commits) is kept
 * as index.db-wal.lost; the -shm only mirrors it.
 */
static void
companions_drop(const char *spool_dir, struct index_lost *l)
{
	char path[4096], lost[4096 + 8];

	if (l->wal.state == INDEX_HELD_FILE &&
	    companion_path(spool_dir, "-wal", path, sizeof(path)) == 0 &&
	    companion_path(spool_dir, "-wal.lost", lost, sizeof(lost)) == 0 &&
	    companion_same(path, &l->wal))
		(void)rename(path, lost);
	if (l->shm.state == INDEX_HELD_FILE &&
	    companion_path(spool_dir, "-shm", path, sizeof(path)) == 0 &&
	    companion_same(path, &l->shm))
		(void)unlink(path);
}

enum index_return
index_lost_check(const char *spool_dir, struct index_lost *l)
{
	char path[4096];
	struct stat st;
	int wal, shm;

	if (companion_path(spool_dir, "", path, sizeof(path)) == -1)
		return INDEX_RETURN_MISSING;
	if (stat(path, &st) == -1) {
		if (errno == ENOENT)
			companions_drop(spool_dir, l);
		(void)companion_gone(spool_dir, "-wal", &l->wal);
		(void)companion_gone(spool_dir, "-shm", &l->shm);
		return INDEX_RETURN_MISSING;
	}
	if (!S_ISREG(st.st_mode))
		return INDEX_RETURN_MISSING;
	wal = companion_gone(spool_dir, "-wal", &l->wal);
	shm = companion_gone(spool_dir, "-shm", &l->shm);
	if (!wal || !shm)
		return INDEX_RETURN_BESIDE_OLD;
	if (l->noted && monotonic_s() - l->noted_at < INDEX_LOST_GRACE)
		return INDEX_RETURN_SETTLING;
	return INDEX_RETURN_READY;
}

/* Cached: reconciliation asks this of every file in new/ and cur/. */
int
index_file_need(struct index *ix, const char *id)
{
	sqlite3_stmt *st;
	int rc, v = INDEX_FILE_NO_ROW;

	st = index_stmt(ix, IX_FILE_NEED, "SELECT state = 'sent' AND NOT "
	    "EXISTS (SELECT 1 FROM recipient WHERE message_id = ?1 AND state "
	    "<> 'sent') FROM message WHERE id = ?1");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0) != 0 ? INDEX_FILE_DONE :
		    INDEX_FILE_NEEDED;
	else if (rc != SQLITE_DONE) {
		index_set_error(ix, "file need");
		v = -1;
	}
	sqlite3_reset(st);
	return v;
}
