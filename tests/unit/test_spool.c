/*
 * Unit tests for common/spool.c: the directories it creates and their
 * modes, queue ids, and a message's way tmp/ -> new/ -> cur/ -> gone. Each
 * test gets a fresh temporary directory.
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

#include "spool.h"
#include "tmpdir.h"

struct fixture {
	char base[PATH_MAX / 2];	/* the temporary directory */
	char dir[PATH_MAX / 2 + 16];	/* base/spool: made by spool_open */
	struct spool sp;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];

	assert_non_null(f);
	umask(022);
	tmpdir_make(f->base, sizeof(f->base), "spool");
	snprintf(f->dir, sizeof(f->dir), "%s/spool", f->base);
	if (spool_open(&f->sp, f->dir, err, sizeof(err)) == -1) {
		print_error("spool_open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

/* Remove the temporary directory and all in it. */
static int
teardown(void **state)
{
	struct fixture *f = *state;

	spool_close(&f->sp);
	tmpdir_remove(f->base);
	free(f);
	return 0;
}

static mode_t
mode_of(const char *dir, const char *name, int *is_fifo, int *is_dir)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(lstat(path, &st), 0);
	if (is_fifo != NULL)
		*is_fifo = S_ISFIFO(st.st_mode);
	if (is_dir != NULL)
		*is_dir = S_ISDIR(st.st_mode);
	return st.st_mode & 07777;
}

static int
exists(const struct fixture *f, const char *sub, const char *id)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/%s", f->dir, sub, id);
	return stat(path, &st) == 0;
}

static void
test_open_creates(void **state)
{
	static const char *const subs[] = { "tmp", "new", "cur", "orphans",
	    "spare" };
	struct fixture *f = *state;
	struct spool again;
	char err[512];
	int fifo, dir;
	size_t i;

	assert_int_equal(mode_of(f->base, "spool", NULL, &dir), 0700);
	assert_true(dir);
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		assert_int_equal(mode_of(f->dir, subs[i], &fifo, &dir), 0700);
		assert_true(dir);
	}
	assert_int_equal(mode_of(f->dir, "trigger", &fifo, NULL), 0600);
	assert_true(fifo);
	assert_string_equal(f->sp.dir, f->dir);
	/* Opening an existing spool works too. */
	assert_int_equal(spool_open(&again, f->dir, err, sizeof(err)), 0);
	spool_close(&again);
	spool_close(&again);	/* idempotent */
}

static void
test_open_fails(void **state)
{
	struct fixture *f = *state;
	struct spool sp;
	char path[PATH_MAX], err[512] = "";
	int fd;

	/* The spool's place is taken by a file. */
	snprintf(path, sizeof(path), "%s/file", f->base);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(spool_open(&sp, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	/* Its parent does not exist. */
	snprintf(path, sizeof(path), "%s/no/such/spool", f->base);
	assert_int_equal(spool_open(&sp, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_ids_unique(void **state)
{
	enum { N = 10000 };
	char **ids = calloc(N, sizeof(*ids));
	size_t i;

	assert_non_null(ids);
	for (i = 0; i < N; i++) {
		ids[i] = malloc(SPOOL_ID_MAX);
		assert_non_null(ids[i]);
		spool_new_id(ids[i], SPOOL_ID_MAX);
		assert_true(strlen(ids[i]) < SPOOL_ID_MAX);
		if (!spool_id_valid(ids[i])) {
			print_error("new id \"%s\" is not valid\n", ids[i]);
			fail();
		}
	}
	qsort(ids, N, sizeof(*ids), cmp_str);
	for (i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0) {
			print_error("id \"%s\" made twice\n", ids[i]);
			fail();
		}
	for (i = 0; i < N; i++)
		free(ids[i]);
	free(ids);
}

static void
test_id_valid(void **state)
{
	static const struct { const char *id; int ok; } cases[] = {
		{ "1.M1P1Q1", 1 },
		{ "1764175200.M123456P4242Q17", 1 },
		{ "", 0 },
		{ ".", 0 },
		{ "..", 0 },
		{ "../x", 0 },
		{ "a/b", 0 },
		{ "/etc/passwd", 0 },
		{ ".1M1P1Q1", 0 },
		{ "1.M1P1Q1 ", 0 },
		{ "1.M1P1Q1\n", 0 },
		{ "1.m1p1q1", 0 },
		{ "-1.M1P1Q1", 0 },
		{ "index.db", 0 },
		{ "trigger", 0 },
	};
	char longid[SPOOL_ID_MAX + 1];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (spool_id_valid(cases[i].id) != cases[i].ok) {
			print_error("spool_id_valid(\"%s\") is %d\n",
			    cases[i].id, !cases[i].ok);
			fail();
		}
	memset(longid, '1', sizeof(longid));
	longid[SPOOL_ID_MAX - 1] = '\0';		/* 63 bytes */
	assert_true(spool_id_valid(longid));
	longid[SPOOL_ID_MAX - 1] = '1';
	longid[SPOOL_ID_MAX] = '\0';			/* 64 bytes */
	assert_false(spool_id_valid(longid));
}

static void
write_msg(int fd, const char *text)
{
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

static void
test_tmp_exclusive(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX];
	int fd, fd2;

	spool_new_id(id, sizeof(id));
	fd = spool_tmp_open(&f->sp, id);
	assert_true(fd >= 0);
	assert_int_equal(mode_of(f->dir, "tmp", NULL, NULL), 0700);
	errno = 0;
	fd2 = spool_tmp_open(&f->sp, id);
	assert_int_equal(fd2, -1);
	assert_int_equal(errno, EEXIST);
	close(fd);
	assert_true(exists(f, "tmp", id));
	spool_tmp_discard(&f->sp, id);
	assert_false(exists(f, "tmp", id));
	spool_tmp_discard(&f->sp, id);		/* gone already: fine */
}

static void
test_life_of_a_message(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], path[PATH_MAX], want[PATH_MAX], buf[64];
	struct stat st;
	int fd;
	ssize_t n;

	spool_new_id(id, sizeof(id));
	fd = spool_tmp_open(&f->sp, id);
	assert_true(fd >= 0);
	write_msg(fd, "Subject: x\n\nhello\n");
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	errno = 0;
	assert_int_equal(spool_find(&f->sp, id, path, sizeof(path)), -1);
	assert_int_equal(errno, ENOENT);

	assert_int_equal(spool_publish(&f->sp, fd, id), 0);
	assert_int_equal(spool_sync_new(&f->sp), 0);
	assert_false(exists(f, "tmp", id));
	assert_true(exists(f, "new", id));
	assert_int_equal(spool_find(&f->sp, id, path, sizeof(path)), 0);
	snprintf(want, sizeof(want), "%s/new/%s", f->dir, id);
	assert_string_equal(path, want);

	fd = spool_open_msg(&f->sp, id);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	assert_int_equal(n, 18);
	assert_memory_equal(buf, "Subject: x\n\nhello\n", 18);
	close(fd);

	assert_int_equal(spool_to_cur(&f->sp, id), 0);
	assert_false(exists(f, "new", id));
	assert_true(exists(f, "cur", id));
	assert_int_equal(spool_to_cur(&f->sp, id), 0);	/* moved already */
	assert_int_equal(spool_find(&f->sp, id, path, sizeof(path)), 0);
	snprintf(want, sizeof(want), "%s/cur/%s", f->dir, id);
	assert_string_equal(path, want);
	fd = spool_open_msg(&f->sp, id);
	assert_true(fd >= 0);
	close(fd);

	assert_int_equal(spool_remove(&f->sp, id), 0);
	assert_false(exists(f, "cur", id));
	errno = 0;
	assert_int_equal(spool_remove(&f->sp, id), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_open_msg(&f->sp, id), -1);
	assert_int_equal(spool_find(&f->sp, id, path, sizeof(path)), -1);
}

/* A message still in new/ can be removed too. */
static void
test_remove_from_new(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX];
	int fd;

	spool_new_id(id, sizeof(id));
	fd = spool_tmp_open(&f->sp, id);
	assert_true(fd >= 0);
	assert_int_equal(spool_publish(&f->sp, fd, id), 0);
	assert_int_equal(spool_remove(&f->sp, id), 0);
	assert_false(exists(f, "new", id));
}

/* Publishing what is not in tmp/ fails, and closes the fd anyway. */
static void
test_publish_fails(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/elsewhere", f->base);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(spool_publish(&f->sp, fd, "1.M2P2Q2"), -1);
	assert_int_equal(fcntl(fd, F_GETFD), -1);	/* closed */
	assert_false(exists(f, "new", "1.M2P2Q2"));
	unlink(path);
}

/* A file written under another name in tmp/ is published under the id. */
static void
test_publish_as(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX];
	int fd;

	spool_new_id(id, sizeof(id));
	fd = spool_tmp_open(&f->sp, "made.ready");
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x\n", 2), 2);
	assert_int_equal(spool_publish_as(&f->sp, fd, "made.ready", id), 0);
	assert_true(exists(f, "new", id));
	assert_false(exists(f, "tmp", "made.ready"));
	assert_false(exists(f, "tmp", id));
	/* A failed rename removes the name in tmp/. */
	fd = spool_tmp_open(&f->sp, "other.ready");
	assert_true(fd >= 0);
	assert_int_equal(spool_publish_as(&f->sp, fd, "other.ready",
	    "no/such"), -1);
	assert_false(exists(f, "tmp", "other.ready"));
}

/* A made file's name carries its maker's pid; other names none. */
static void
test_made_names(void **state)
{
	static const char *const not_made[] = { "1.M2P3Q4", ".ready",
	    "1.M2P3Q4.ready.x", "x.ready", "1.M2PQ4.ready", "1.M2P3.ready",
	    "1.M2P3x4.ready", "1.M2P99999999999999Q4.ready" };
	char name[SPOOL_ID_MAX];
	size_t i;

	(void)state;
	spool_made_name(name, sizeof(name));
	assert_int_equal(spool_made_maker(name), (long)getpid());
	assert_int_equal(spool_made_maker("1700000000.M000001P42Q7.ready"), 42);
	for (i = 0; i < sizeof(not_made) / sizeof(not_made[0]); i++)
		assert_int_equal(spool_made_maker(not_made[i]), 0);
}

/* Ids that are not ids never reach the file system. */
static void
test_bad_ids_refused(void **state)
{
	static const char *const bad[] = { "../tmp/x", "a/b", "", ".." };
	struct fixture *f = *state;
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(spool_find(&f->sp, bad[i], path,
		    sizeof(path)), -1);
		assert_int_equal(errno, EINVAL);
		errno = 0;
		assert_int_equal(spool_open_msg(&f->sp, bad[i]), -1);
		assert_int_equal(errno, EINVAL);
	}
}

/* find reports a path that does not fit. */
static void
test_find_small_buffer(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], path[16];
	int fd;

	spool_new_id(id, sizeof(id));
	fd = spool_tmp_open(&f->sp, id);
	assert_true(fd >= 0);
	assert_int_equal(spool_publish(&f->sp, fd, id), 0);
	errno = 0;
	assert_int_equal(spool_find(&f->sp, id, path, sizeof(path)), -1);
	assert_int_equal(errno, ENAMETOOLONG);
}

/* Wake: no runner, nothing happens (and nothing blocks); a runner sees it. */
static void
test_wake(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], c = 0;
	int fd;

	spool_wake(&f->sp);
	snprintf(path, sizeof(path), "%s/trigger", f->dir);
	fd = open(path, O_RDONLY | O_NONBLOCK);
	assert_true(fd >= 0);
	spool_wake(&f->sp);
	assert_int_equal(read(fd, &c, 1), 1);
	assert_int_equal(c, '!');
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_fails, setup,
		    teardown),
		cmocka_unit_test(test_ids_unique),
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test_setup_teardown(test_tmp_exclusive, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_life_of_a_message, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_remove_from_new, setup,
		    teardown),
		cmocka_unit_test(test_made_names),
		cmocka_unit_test_setup_teardown(test_publish_as, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_publish_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_ids_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_find_small_buffer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wake, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
