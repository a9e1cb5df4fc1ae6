/*
 * Unit test for index_open() run by many processes at once on a spool
 * whose index does not exist yet, as systemd starts mppd and mppqueue
 * together on a fresh machine: every one of them must open the index
 * (SQLite answers SQLITE_BUSY without waiting while another connection
 * switches a new database to WAL mode, so a plain open can fail).
 */

#include <sys/stat.h>
#include <sys/wait.h>

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

#include "index.h"
#include "tmpdir.h"

#define OPENERS 8		/* processes opening one fresh index at once */
#define ROUNDS 25		/* fresh spools, each opened by OPENERS */

/* A child: wait for the start signal, open the index, exit 0 if it opened. */
static void
opener(const char *dir, int start_fd, int n)
{
	char err[512], c;
	struct index *ix;

	if (read(start_fd, &c, 1) != 0)	/* EOF: the parent let go */
		_exit(2);
	ix = index_open(dir, n % 2 ? INDEX_SYNC_FULL : INDEX_SYNC_NORMAL,
	    err, sizeof(err));
	if (ix == NULL) {
		fprintf(stderr, "opener %d: %s\n", n, err);
		_exit(1);
	}
	index_close(ix);
	_exit(0);
}

/* Start OPENERS children on dir at the same instant; how many failed. */
static int
open_together(const char *dir)
{
	int gate[2], i, status, failed = 0;
	pid_t pids[OPENERS];

	assert_int_equal(pipe(gate), 0);
	for (i = 0; i < OPENERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(gate[1]);
			opener(dir, gate[0], i);
		}
	}
	close(gate[0]);
	close(gate[1]);
	for (i = 0; i < OPENERS; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	return failed;
}

static void
test_concurrent_first_open(void **state)
{
	char top[PATH_MAX / 2], dir[PATH_MAX];
	int round, failed = 0;

	tmpdir_make(top, sizeof(top), "index-open");
	for (round = 0; round < ROUNDS; round++) {
		snprintf(dir, sizeof(dir), "%s/%d", top, round);
		assert_int_equal(mkdir(dir, 0700), 0);
		failed += open_together(dir);
	}
	tmpdir_remove(top);
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_first_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
