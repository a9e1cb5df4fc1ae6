/*
 * index_impl — what the index's source files share and nothing else may
 * use: the struct, the cache of prepared statements, step helpers.
 */
#ifndef MPP_INDEX_IMPL_H
#define MPP_INDEX_IMPL_H

#include <sqlite3.h>

#include "index.h"

enum index_stmt_id {
	IX_INSERT_MSG, IX_INSERT_RCPT, IX_EXISTS,
	IX_CLAIM_DUE, IX_CLAIM_SET, IX_RCPTS_PENDING, IX_RCPT_SET,
	IX_MSG_FINISH, IX_MSG_RELEASE, IX_EXPIRED_LEASES, IX_LEASE_CLEAR,
	IX_PURGE_SENT, IX_NEXT_DUE, IX_COUNT, IX_COUNT_ATTEMPT,
	IX_PURGE_RCPTS, IX_PURGE_MSG, IX_FILE_NEED, IX_DUE_NOW, IX_BACKLOG,
	IX_NSTMTS
};

struct index {
	sqlite3 *db;
	sqlite3_stmt *stmts[IX_NSTMTS];
	long long busy_since_ms;	/* the first try of this wait */
	char errmsg[512];
};

/* Wait for another connection's lock in short even steps (index.c). */
void index_busy_install(struct index *ix);

/* The cached statement for which, prepared from sql on first use, reset. */
sqlite3_stmt *index_stmt(struct index *ix, enum index_stmt_id which,
    const char *sql);
int index_step_done(struct index *ix, sqlite3_stmt *st, const char *what);
void index_set_error(struct index *ix, const char *what);
int index_begin(struct index *ix);
/* Insert one new message and its recipients inside an open transaction. */
int index_insert_msg(struct index *ix, const struct index_new_msg *m);
int index_commit(struct index *ix);
/* Add n to total t (table counter), inside a transaction. */
int index_count(struct index *ix, enum index_total t, long long n);
void index_rollback(struct index *ix);

#endif
