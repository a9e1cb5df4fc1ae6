/*
 * index — the SQLite index of the spool (sql/schema.sql). This module owns
 * the database handle: WAL mode, a busy timeout, statements prepared once
 * with bound parameters, schema versioned with PRAGMA user_version. One
 * struct index per thread; SQLite serialises writers across processes.
 * Functions return 0 / -1 unless they say otherwise; index_errmsg() tells
 * why the last call failed.
 */
#ifndef MPP_INDEX_H
#define MPP_INDEX_H

#include <stddef.h>

#define INDEX_SCHEMA_VERSION 4
#define INDEX_BUSY_TIMEOUT_MS 5000
#define INDEX_OPEN_LOCK_MS 30000	/* longest wait for another opener */
#define INDEX_LOCK_NAME "index.lock"	/* in spool_dir: serialises opens */

struct index;

/* The durability wanted from commits: FULL for mppd's accepts. */
enum index_sync { INDEX_SYNC_FULL, INDEX_SYNC_NORMAL };

/*
 * Open spool_dir/index.db, creating (mode 0600) or upgrading the schema;
 * safe when any number of processes do it at once (spool_dir/index.lock).
 * NULL with a message in err.
 */
struct index *index_open(const char *spool_dir, enum index_sync sync,
    char *err, size_t errsz);
void index_close(struct index *ix);
const char *index_errmsg(const struct index *ix);

/* A freshly accepted message. */
struct index_new_msg {
	const char *id;
	const char *auth_user;
	const char *sender;
	const char *client_addr;
	unsigned long long size;
	long long received_at;
	int is_bounce;
	size_t nrcpts;
	const char *const *rcpts;
};

/* Insert messages (state queued, due now) in one transaction. */
int index_insert_batch(struct index *ix, const struct index_new_msg *const *m,
    size_t n);

/*
 * The messages queued (due, no runner has them) and sending (claimed),
 * from the per-state totals: mppd's committer paces posting by them.
 */
int index_backlog(struct index *ix, long long *queued, long long *sending);

/* 1 when a row with this id exists, 0 when not, -1 on error. */
int index_exists(struct index *ix, const char *id);

/*
 * The totals of table counter, kept since the index was made (or upgraded
 * to schema 2) and never lowered (purges and deletes leave them):
 * messages accepted from clients, bounces made, delivery attempts
 * recorded, and recipients sent, put off (a temporary failure) and failed
 * for good.
 */
enum index_total {
	INDEX_ACCEPTED, INDEX_BOUNCES, INDEX_ATTEMPTS, INDEX_RCPT_SENT,
	INDEX_RCPT_DEFERRED, INDEX_RCPT_FAILED, INDEX_NTOTALS
};

/* The name of total t in table counter ("accepted"...). */
const char *index_total_name(enum index_total t);

/*
 * A read transaction around many lookups (index_exists, index_file_need):
 * one snapshot and one round of SQLite's locks for all of them instead of
 * one each. Nothing may be written inside it. 0 / -1.
 */
int index_read_begin(struct index *ix);
void index_read_end(struct index *ix);

/*
 * Copy what the WAL holds back into index.db as far as no reader needs it
 * (PRAGMA wal_checkpoint(PASSIVE): it waits for no one). 0 / -1.
 */
int index_checkpoint(struct index *ix);
/* Changes when another connection commits (PRAGMA data_version): a
   cheap sign that some other program is writing.  -1 on error. */
long long index_data_version(struct index *ix);

/* Run a statement with no result (maintenance); -1 on error. */
int index_exec(struct index *ix, const char *sql);

/*
 * 1 when spool_dir/index.db is no longer the file ix has open (removed,
 * renamed away or replaced while in use: what ix writes is lost), 0 when
 * it still is, -1 when that cannot be told.
 */
int index_moved(struct index *ix);

/* A file held open while it is compared with what is at its path. */
struct index_held {
	enum { INDEX_HELD_NONE, INDEX_HELD_FILE, INDEX_HELD_UNKNOWN } state;
	int fd;				/* INDEX_HELD_FILE */
	unsigned long long dev, ino;
};

/*
 * What a moved index leaves at its path: its write-ahead log and shared
 * memory (index.db-wal, -shm). SQLite does not remove them when it closes
 * a moved file, and a database opened at the path beside them would read
 * the old one's pages from them. All zero: nothing noted.
 */
struct index_lost {
	struct index_held wal, shm;
	int noted;
	long long noted_at;		/* CLOCK_MONOTONIC seconds */
};

/*
 * Seconds after a note before an index is opened at the path again: each
 * program watching the index notices the loss well within that time (and
 * notes what the old file left) before any of them makes a new -wal.
 */
#define INDEX_LOST_GRACE 10

/*
 * Note (and hold open) the -wal and -shm at spool_dir's index path: call
 * it when index_moved() says 1, before closing the moved handle.
 */
void index_lost_note(const char *spool_dir, struct index_lost *l);

/* Where an index stands after a loss (index_lost_check). */
enum index_return {
	INDEX_RETURN_MISSING,		/* no index.db at the path */
	INDEX_RETURN_BESIDE_OLD,	/* one, but the old -wal or -shm too */
	INDEX_RETURN_SETTLING,		/* one; INDEX_LOST_GRACE not over */
	INDEX_RETURN_READY		/* it may be opened */
};

/*
 * May an index be opened at spool_dir again after l was noted? READY
 * when index.db is there, neither the -wal nor the -shm of l is, and the
 * note is INDEX_LOST_GRACE seconds old. While index.db is missing, the
 * -wal and -shm of l are set aside (the -wal as index.db-wal.lost): they
 * belong to no database.
 */
enum index_return index_lost_check(const char *spool_dir,
    struct index_lost *l);

/* Let go of what l holds (l may be NULL); l is then all clear. */
void index_lost_free(struct index_lost *l);

/* What the index says of the spool file of id; -1 on error. */
enum index_file_need {
	INDEX_FILE_NO_ROW,	/* an orphan, or a commit still in flight */
	INDEX_FILE_NEEDED,	/* its row is not done with it */
	INDEX_FILE_DONE		/* 'sent', every recipient delivered */
};
int index_file_need(struct index *ix, const char *id);

#endif
