/*
 * Unit tests for common/reconcile on a spool larger than one of its read
 * transactions (LOOKUPS_PER_TXN files) and in no particular order: every
 * old file without a row goes to orphans/, the left-behind file of a sent
 * message goes, a young file without a row stays (a commit may be in
 * flight), and every file with a row stays where it is.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "index.h"
#include "reconcile.h"
#include "spool.h"

#define NROWS 9000
#define NORPHANS 25
#define NSENT 7

struct fixture {
	char dir[64];
	struct spool sp;
	struct index *ix;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_reconcile.XXXXXX");
	if (mkdtemp(f->dir) == NULL || spool_open(&f->sp, f->dir, err,
	    sizeof(err)) == -1 || (f->ix = index_open(f->dir,
	    INDEX_SYNC_NORMAL, err, sizeof(err))) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	index_close(f->ix);
	spool_close(&f->sp);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	free(f);
	return system(cmd) == 0 ? 0 : -1;
}

/* An empty file dfd/name, its mtime age seconds ago. */
static void
make_file(int dfd, const char *name, time_t age)
{
	struct timespec ts[2];
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);

	assert_true(fd >= 0);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) - age;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

static int
exists(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, 0) == 0;
}

/* Ids whose order as names is unlike their order of insertion. */
static void
id_of(int i, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%d.M%06dP1Q%d", 1700000000 + (i * 7919) % NROWS,
	    i, i);
}

static void
test_large_spool(void **state)
{
	static const char *const rcpt[] = { "bob@example.com" };
	struct fixture *f = *state;
	struct index_new_msg m[100];
	const struct index_new_msg *p[100];
	struct reconcile_stats st;
	char ids[100][64], id[64], sql[256];
	int i, k;

	for (i = 0; i < NROWS; i += 100) {
		for (k = 0; k < 100; k++) {
			id_of(i + k, ids[k], sizeof(ids[k]));
			m[k] = (struct index_new_msg){ ids[k], "alice",
			    "alice@example.org", "192.0.2.7", 0, 1, 0, 1, rcpt };
			p[k] = &m[k];
			make_file((i + k) % 3 ? f->sp.curfd : f->sp.newfd,
			    ids[k], 7200);
		}
		assert_int_equal(index_insert_batch(f->ix, p, 100), 0);
	}
	/* Sent to everyone, its file left in cur/ by a failed unlink. */
	for (i = 1; i <= NSENT * 3; i += 3) {
		id_of(i, id, sizeof(id));
		snprintf(sql, sizeof(sql), "UPDATE message SET state = 'sent' "
		    "WHERE id = '%s'; UPDATE recipient SET state = 'sent' WHERE "
		    "message_id = '%s'", id, id);
		assert_int_equal(index_exec(f->ix, sql), 0);
	}
	for (i = 0; i < NORPHANS; i++) {
		snprintf(id, sizeof(id), "1600000000.M%06dP9Q%d", i, i);
		make_file(i % 2 ? f->sp.curfd : f->sp.newfd, id, 7200);
	}
	make_file(f->sp.newfd, "1600000001.M1P9Q999", 10);	/* young */
	assert_int_equal(reconcile_spool(&f->sp, f->ix, "h", time(NULL), &st),
	    0);
	assert_int_equal(st.orphans, NORPHANS);
	for (i = 0; i < NORPHANS; i++) {
		snprintf(id, sizeof(id), "1600000000.M%06dP9Q%d", i, i);
		assert_true(exists(f->sp.orphfd, id));
	}
	assert_true(exists(f->sp.newfd, "1600000001.M1P9Q999"));
	for (i = 0; i < NROWS; i++) {
		id_of(i, id, sizeof(id));
		k = i % 3 == 1 && i <= NSENT * 3;	/* sent: removed */
		assert_int_equal(exists(i % 3 ? f->sp.curfd : f->sp.newfd, id),
		    !k);
	}
}

/* Nothing to look at (under UBSan: no sort of an empty list). */
static void
test_empty_spool(void **state)
{
	struct fixture *f = *state;
	struct reconcile_stats st;

	assert_int_equal(reconcile_spool(&f->sp, f->ix, "h", time(NULL), &st),
	    0);
	assert_int_equal(st.orphans, 0);
	assert_int_equal(st.tmp_removed, 0);
}

/* A pid no process has: a child's, once it is reaped. */
static long
dead_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return (long)pid;
}

/*
 * tmp/: a file made ahead by a process gone goes at once; one of a live
 * process (this one), a name that only looks like one, and a text's file
 * of a process gone stay until they are 36 hours old.
 */
static void
test_made_files(void **state)
{
	struct fixture *f = *state;
	struct reconcile_stats st;
	char gone[64], live[64], text[64];
	long pid = dead_pid();

	snprintf(gone, sizeof(gone), "1700000000.M000001P%ldQ1"
	    SPOOL_MADE_SUFFIX, pid);
	snprintf(live, sizeof(live), "1700000000.M000002P%ldQ2"
	    SPOOL_MADE_SUFFIX, (long)getpid());
	snprintf(text, sizeof(text), "1700000000.M000003P%ldQ3", pid);
	make_file(f->sp.tmpfd, gone, 10);
	make_file(f->sp.tmpfd, live, 10);
	make_file(f->sp.tmpfd, text, 10);
	make_file(f->sp.tmpfd, "odd" SPOOL_MADE_SUFFIX, 10);
	assert_int_equal(reconcile_spool(&f->sp, f->ix, "h", time(NULL), &st),
	    0);
	assert_int_equal(st.tmp_removed, 1);
	assert_false(exists(f->sp.tmpfd, gone));
	assert_true(exists(f->sp.tmpfd, live));
	assert_true(exists(f->sp.tmpfd, text));
	assert_true(exists(f->sp.tmpfd, "odd" SPOOL_MADE_SUFFIX));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_spool, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_large_spool, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_made_files, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
