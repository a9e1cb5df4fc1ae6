/*
 * Unit tests for common/spare.c: a delivered message's file kept emptied
 * in spare/ and taken back as the next message's tmp/ file; what is never
 * rewritten (a file with another name, one not a plain file); the bound on
 * spare/; the start's clearing. Each test gets a fresh spool.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "spare.h"
#include "spool.h"
#include "tmpdir.h"

struct fixture {
	char base[PATH_MAX / 2];
	char dir[PATH_MAX / 2 + 16];
	struct spool sp;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];

	assert_non_null(f);
	tmpdir_make(f->base, sizeof(f->base), "spare");
	snprintf(f->dir, sizeof(f->dir), "%s/spool", f->base);
	if (spool_open(&f->sp, f->dir, err, sizeof(err)) == -1) {
		print_error("spool_open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	spool_close(&f->sp);
	tmpdir_remove(f->base);
	free(f);
	return 0;
}

/* dirfd/name made holding text; its inode number. */
static ino_t
make_file(int dirfd, const char *name, const char *text)
{
	struct stat st;
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);

	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	return st.st_ino;
}

static int
exists(int dirfd, const char *name, struct stat *st)
{
	struct stat dummy;

	return fstatat(dirfd, name, st ? st : &dummy, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
wait_idle(void)
{
	struct timespec ts = { 0, (SPARE_IDLE_MS + 20) * 1000000L };

	nanosleep(&ts, NULL);
}

static void
test_retire_keeps_the_file_empty(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	ino_t ino = make_file(f->sp.newfd, "1.M1P1Q1", "a delivered text\n");

	assert_int_equal(spare_retire(&f->sp, "1.M1P1Q1"), 0);
	assert_false(exists(f->sp.newfd, "1.M1P1Q1", NULL));
	assert_true(exists(f->sp.sparefd, "1.M1P1Q1", &st));
	assert_int_equal(st.st_ino, ino);
	assert_int_equal(st.st_size, 0);
}

static void
test_retire_from_cur(void **state)
{
	struct fixture *f = *state;

	make_file(f->sp.curfd, "2.M1P1Q1", "deferred once\n");
	assert_int_equal(spare_retire(&f->sp, "2.M1P1Q1"), 0);
	assert_false(exists(f->sp.curfd, "2.M1P1Q1", NULL));
	assert_true(exists(f->sp.sparefd, "2.M1P1Q1", NULL));
}

static void
test_retire_missing(void **state)
{
	struct fixture *f = *state;

	errno = 0;
	assert_int_equal(spare_retire(&f->sp, "3.M1P1Q1"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spare_retire(&f->sp, "../escape"), -1);
	assert_int_equal(errno, EINVAL);
}

/* The next message is written into the retired file, and only its text. */
static void
test_take_reuses_the_inode(void **state)
{
	struct fixture *f = *state;
	char buf[64];
	struct stat st;
	ino_t ino = make_file(f->sp.newfd, "4.M1P1Q1", "a much longer old text\n");
	int fd;
	ssize_t n;

	assert_int_equal(spare_retire(&f->sp, "4.M1P1Q1"), 0);
	fd = spare_take(&f->sp, "5.M1P1Q1");
	assert_true(fd != -1);
	assert_int_equal(write(fd, "new\n", 4), 4);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	assert_int_equal(st.st_ino, ino);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_false(exists(f->sp.sparefd, "4.M1P1Q1", NULL));
	fd = openat(f->sp.tmpfd, "5.M1P1Q1", O_RDONLY);
	assert_true(fd != -1);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "new\n", 4);
}

static void
test_take_from_an_empty_pool(void **state)
{
	struct fixture *f = *state;
	int fd;

	assert_int_equal(spare_take(&f->sp, "6.M1P1Q1"), -1);
	assert_false(exists(f->sp.tmpfd, "6.M1P1Q1", NULL));
	/* looked at again after a while, not at once */
	make_file(f->sp.sparefd, "7.M1P1Q1", "");
	assert_int_equal(spare_take(&f->sp, "8.M1P1Q1"), -1);
	wait_idle();
	fd = spare_take(&f->sp, "8.M1P1Q1");
	assert_true(fd != -1);
	close(fd);
}

/* A file with another name (after a cut, say) keeps its text. */
static void
test_take_skips_a_file_with_another_name(void **state)
{
	struct fixture *f = *state;
	char buf[32];
	int fd;
	ssize_t n;

	make_file(f->sp.curfd, "9.M1P1Q1", "queued text\n");
	assert_int_equal(linkat(f->sp.curfd, "9.M1P1Q1", f->sp.sparefd,
	    "9.M1P1Q1", 0), 0);
	assert_int_equal(spare_take(&f->sp, "10.M1P1Q1"), -1);
	assert_false(exists(f->sp.tmpfd, "10.M1P1Q1", NULL));
	fd = openat(f->sp.curfd, "9.M1P1Q1", O_RDONLY);
	assert_true(fd != -1);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, 12);
	assert_memory_equal(buf, "queued text\n", 12);
}

static void
test_take_skips_what_is_not_a_plain_file(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(symlinkat("/etc/passwd", f->sp.sparefd, "11.M1P1Q1"),
	    0);
	assert_int_equal(mkfifoat(f->sp.sparefd, "12.M1P1Q1", 0600), 0);
	assert_int_equal(spare_take(&f->sp, "13.M1P1Q1"), -1);
	assert_false(exists(f->sp.tmpfd, "13.M1P1Q1", NULL));
	assert_false(exists(f->sp.sparefd, "11.M1P1Q1", NULL));
	assert_false(exists(f->sp.sparefd, "12.M1P1Q1", NULL));
}

/* Past SPARE_MAX names a delivered file is removed instead. */
static void
test_a_full_pool_removes(void **state)
{
	struct fixture *f = *state;
	char name[32];
	int i;

	for (i = 0; i < SPARE_MAX; i++) {
		snprintf(name, sizeof(name), "%d.M2P2Q2", i);
		make_file(f->sp.sparefd, name, "");
	}
	make_file(f->sp.newfd, "14.M1P1Q1", "sent\n");
	assert_int_equal(spare_retire(&f->sp, "14.M1P1Q1"), 0);
	assert_false(exists(f->sp.newfd, "14.M1P1Q1", NULL));
	assert_false(exists(f->sp.sparefd, "14.M1P1Q1", NULL));
	assert_int_equal(spare_clear(&f->sp), SPARE_MAX);
	assert_int_equal(spare_clear(&f->sp), 0);
}

/* Without spare/ (an older spool a reader opened), files are removed. */
static void
test_no_spare_dir(void **state)
{
	struct fixture *f = *state;
	int saved = f->sp.sparefd;

	f->sp.sparefd = -1;
	make_file(f->sp.newfd, "15.M1P1Q1", "sent\n");
	assert_int_equal(spare_retire(&f->sp, "15.M1P1Q1"), 0);
	assert_false(exists(f->sp.newfd, "15.M1P1Q1", NULL));
	assert_int_equal(spare_take(&f->sp, "16.M1P1Q1"), -1);
	assert_int_equal(spare_clear(&f->sp), 0);
	f->sp.sparefd = saved;
	assert_false(exists(f->sp.sparefd, "15.M1P1Q1", NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_retire_keeps_the_file_empty,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_retire_from_cur, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_retire_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_take_reuses_the_inode,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_from_an_empty_pool,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_take_skips_a_file_with_another_name, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_take_skips_what_is_not_a_plain_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_full_pool_removes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_spare_dir, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
