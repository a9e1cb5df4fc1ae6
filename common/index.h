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

#define INDEX_SCHEMA_VERSION 2
#define INDEX_BUSY_TIMEOUT_MS 5000

struct index;

/* The durability wanted from commits: FULL for mppd's accepts. */
enum index_sync { INDEX_SYNC_FULL, INDEX_SYNC_NORMAL };

/*
 * Open spool_dir/index.db, creating (mode 0600) or upgrading the schema.
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

/* Run a statement with no result (maintenance); -1 on error. */
int index_exec(struct index *ix, const char *sql);

/*
 * 1 when id's row is 'sent' and every recipient of it was delivered: its
 * file is no longer needed. 0 when not, or when there is no row; -1 on
 * error.
 */
int index_delivered(struct index *ix, const char *id);

#endif
