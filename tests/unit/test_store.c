/*
 * Unit tests for mppd/store.c: the pieces of a long text reach tmp/ID on
 * the writer threads, in order, never from the thread that runs the event
 * loop (here the test's own); a failed piece fails the text; an aborted
 * text leaves no file; store_free() ends the texts still in flight.
 *
 * The binary is linked with --wrap=write: __wrap_write() counts writes
 * into regular files made by the test's thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../mppd/store.h"
#include "tmpdir.h"
#include "util.h"

ssize_t __real_write(int fd, const void *p, size_t n);
ssize_t __wrap_write(int fd, const void *p, size_t n);

static pthread_t loop_thread;
static int loop_file_writes;	/* by loop_thread, into regular files */

/*
 * A gate for the writers' file writes: closed, a writer waits in write()
 * until it opens, and then fails with ENOSPC when gate_fail was set (that
 * one write only). It
 * lets a test end a text while a writer surely holds its piece.
 */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_closed, gate_fail, gate_held;

static int
gate_pass(void)
{
	int fail = 0;

	pthread_mutex_lock(&gate_lock);
	if (gate_closed) {
		gate_held++;
		pthread_cond_broadcast(&gate_cond);
		while (gate_closed)
			pthread_cond_wait(&gate_cond, &gate_lock);
		fail = gate_fail;	/* once: the write held here */
		gate_fail = 0;
	}
	pthread_mutex_unlock(&gate_lock);
	return fail ? -1 : 0;
}

ssize_t
__wrap_write(int fd, const void *p, size_t n)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if (pthread_equal(pthread_self(), loop_thread))
			loop_file_writes++;
		else if (gate_pass() == -1) {
			errno = ENOSPC;
			return -1;
		}
	}
	return __real_write(fd, p, n);
}

static void
gate_close(int fail)
{
	pthread_mutex_lock(&gate_lock);
	gate_closed = 1;
	gate_fail = fail;
	gate_held = 0;
	pthread_mutex_unlock(&gate_lock);
}

/* Until a writer waits at the closed gate. */
static void
gate_wait_held(void)
{
	pthread_mutex_lock(&gate_lock);
	while (gate_held == 0)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

static void
gate_open(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_closed = 0;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

struct fixture {
	char dir[PATH_MAX / 2];
	char spool[PATH_MAX / 2 + 16];
	struct spool sp;
	struct store *st;
	struct store_req r;
	int done;		/* cb calls */
	int drained;		/* drained calls */
};

static const char *const rcpts[] = { "bob@example.org" };

/* A store that makes nmade files ahead (the tests of tmp/ID: none). */
static int
setup_with(void **state, size_t nmade)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];

	assert_non_null(f);
	tmpdir_make(f->dir, sizeof(f->dir), "store");
	snprintf(f->spool, sizeof(f->spool), "%s/spool", f->dir);
	assert_int_equal(spool_open(&f->sp, f->spool, err, sizeof(err)), 0);
	f->st = store_new(&f->sp, 2, nmade, err, sizeof(err));
	assert_non_null(f->st);
	loop_thread = pthread_self();
	loop_file_writes = 0;
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	return setup_with(state, 0);
}

static int
setup_made(void **state)
{
	return setup_with(state, STORE_MADE_AHEAD);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_free(f->st);
	spool_close(&f->sp);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void
on_done(struct store_req *r)
{
	struct fixture *f = r->arg;

	f->done++;
}

static void
on_drained(struct store_req *r)
{
	struct fixture *f = r->arg;

	f->drained++;
}

/* Run the loop's side until *flag reaches want (or 10 s pass). */
static void
loop_until(struct fixture *f, const int *flag, int want)
{
	struct pollfd pfd = { store_fd(f->st), POLLIN, 0 };
	int i;

	for (i = 0; i < 1000 && *flag < want; i++)
		if (poll(&pfd, 1, 10) == 1)
			store_run_completions(f->st);
	assert_int_equal(*flag, want);
}

/* loop_until(), counting the wake-ups that brought completions. */
static int
loop_wakeups(struct fixture *f, const int *flag, int want)
{
	struct pollfd pfd = { store_fd(f->st), POLLIN, 0 };
	int i, woken = 0;

	for (i = 0; i < 1000 && *flag < want; i++)
		if (poll(&pfd, 1, 10) == 1) {
			woken++;
			store_run_completions(f->st);
		}
	assert_int_equal(*flag, want);
	return woken;
}

static void
text_begin(struct fixture *f, char *id, size_t idsz)
{
	spool_new_id(id, idsz);
	store_begin(f->st, &f->r, id);
	f->r.cb = on_done;
	f->r.drained = on_drained;
	f->r.arg = f;
}

static void
text_submit(struct fixture *f, const char *id, const char *tail,
    unsigned long long size)
{
	assert_int_equal(buf_puts(&f->r.data, tail), 0);
	memset(&f->r.row, 0, sizeof(f->r.row));
	f->r.row.id = id;
	f->r.row.auth_user = "alice";
	f->r.row.sender = "alice@example.org";
	f->r.row.client_addr = "192.0.2.7";
	f->r.row.size = size;
	f->r.row.received_at = 1;
	f->r.row.nrcpts = 1;
	f->r.row.rcpts = rcpts;
	store_submit(&f->r);
}

static int
exists(const struct fixture *f, const char *sub, const char *id)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/%s", f->spool, sub, id);
	return access(path, F_OK) == 0;
}

#define PIECE (100 * 1024)
#define NPIECES 5

#define TOTAL (NPIECES * PIECE + 4)	/* the pieces, then "end\n" */

/* NPIECES pieces of distinct bytes, appended at once: a writer holds the
   first, the rest wait, counted as backlog. */
static void
append_pieces(struct fixture *f)
{
	char *piece;
	int i;

	assert_non_null(piece = malloc(PIECE));
	for (i = 0; i < NPIECES; i++) {
		memset(piece, 'a' + i, PIECE);
		assert_int_equal(store_append(&f->r, piece, PIECE), 0);
	}
	free(piece);
	assert_true(f->r.busy);
	assert_true(store_backlog(&f->r) >= (NPIECES - 1) * PIECE);
}

/* new/ID holds the pieces in order, then "end\n". */
static void
check_pieces_stored(const struct fixture *f, const char *id)
{
	char path[PATH_MAX], *back;
	size_t i;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/new/%s", f->spool, id);
	assert_non_null(fp = fopen(path, "r"));
	assert_non_null(back = malloc(TOTAL + 1));
	assert_int_equal(fread(back, 1, TOTAL + 1, fp), TOTAL);
	fclose(fp);
	for (i = 0; i < NPIECES * PIECE; i++)
		if (back[i] != 'a' + (int)(i / PIECE))
			fail_msg("byte %zu is '%c'", i, back[i]);
	assert_memory_equal(back + NPIECES * PIECE, "end\n", 4);
	free(back);
}

/* The pieces are written on the writers, in order. */
static void
test_pieces_on_writers(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], path[PATH_MAX];
	FILE *fp;

	/* The wrap sees this thread's writes into a file. */
	snprintf(path, sizeof(path), "%s/probe", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(util_write_all(fileno(fp), "x", 1), 0);
	fclose(fp);
	assert_int_equal(loop_file_writes, 1);
	loop_file_writes = 0;
	text_begin(f, id, sizeof(id));
	append_pieces(f);
	loop_until(f, &f->drained, 1);
	assert_int_equal(store_backlog(&f->r), 0);
	text_submit(f, id, "end\n", TOTAL);
	loop_until(f, &f->done, 1);
	assert_int_equal(f->r.result, OUTCOME_OK);
	assert_int_equal(f->r.end, STORE_SUBMITTED);
	/* Not one file write on the loop's thread. */
	assert_int_equal(loop_file_writes, 0);
	check_pieces_stored(f, id);
	assert_false(exists(f, "tmp", id));
}

/*
 * The text ends while a writer holds its first piece and the others still
 * wait: every piece is written, in order, before the end.
 */
static void
test_end_while_pieces_wait(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX];

	text_begin(f, id, sizeof(id));
	append_pieces(f);
	text_submit(f, id, "end\n", TOTAL);
	loop_until(f, &f->done, 1);
	assert_int_equal(f->r.result, OUTCOME_OK);
	check_pieces_stored(f, id);
	assert_int_equal(f->drained, 0);
}

/*
 * The text ends while a writer is still writing its only piece: that
 * writer goes on to the rest and the publish, and the loop hears of the
 * text once, at its end, not also when the piece is written.
 */
static void
test_end_while_piece_held(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], *piece;

	assert_non_null(piece = malloc(PIECE));
	memset(piece, 'a', PIECE);
	gate_close(0);
	text_begin(f, id, sizeof(id));
	assert_int_equal(store_append(&f->r, piece, PIECE), 0);
	gate_wait_held();
	assert_int_equal(store_append(&f->r, piece, PIECE), 0);
	text_submit(f, id, "end\n", 2 * PIECE + 4);
	gate_open();
	assert_int_equal(loop_wakeups(f, &f->done, 1), 1);
	assert_int_equal(f->r.result, OUTCOME_OK);
	assert_int_equal(f->drained, 0);
	assert_false(exists(f, "tmp", id));
	assert_true(exists(f, "new", id));
	free(piece);
}

/* The same, with the piece's write failing (a full disk): the text fails,
   and its file in tmp/ goes. */
static void
test_piece_fails_after_end(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], piece[4096];

	memset(piece, 'b', sizeof(piece));
	gate_close(1);
	text_begin(f, id, sizeof(id));
	assert_int_equal(store_append(&f->r, piece, sizeof(piece)), 0);
	gate_wait_held();
	text_submit(f, id, "end\n", sizeof(piece) + 4);
	gate_open();
	loop_until(f, &f->done, 1);
	assert_int_equal(f->r.result, OUTCOME_TEMP);
	assert_false(exists(f, "tmp", id));
	assert_false(exists(f, "new", id));
}

/* The same req serves the next text of the session. */
static void
test_next_text(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], id2[SPOOL_ID_MAX];
	char piece[1000];

	memset(piece, 'x', sizeof(piece));
	text_begin(f, id, sizeof(id));
	assert_int_equal(store_append(&f->r, piece, sizeof(piece)), 0);
	text_submit(f, id, "", sizeof(piece));
	loop_until(f, &f->done, 1);
	assert_int_equal(f->r.result, OUTCOME_OK);
	text_begin(f, id2, sizeof(id2));
	text_submit(f, id2, "short\n", 6);
	loop_until(f, &f->done, 2);
	assert_int_equal(f->r.result, OUTCOME_OK);
	assert_true(exists(f, "new", id) && exists(f, "new", id2));
	assert_int_equal(loop_file_writes, 0);
}

/* A piece that cannot be written fails the text: no file, no row. */
static void
test_piece_fails(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], path[PATH_MAX];
	int fd;

	text_begin(f, id, sizeof(id));
	/* tmp/ID taken already: the writer's O_EXCL create fails. */
	snprintf(path, sizeof(path), "%s/tmp/%s", f->spool, id);
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) != -1);
	close(fd);
	assert_int_equal(store_append(&f->r, "abc", 3), 0);
	loop_until(f, &f->drained, 1);
	assert_int_equal(store_append(&f->r, "def", 3), -1);
	text_submit(f, id, "end\n", 10);
	loop_until(f, &f->done, 1);
	assert_int_equal(f->r.result, OUTCOME_TEMP);
	assert_false(exists(f, "new", id));
	unlink(path);
}

/*
 * A lone text, all in memory, is written by the committer itself; when
 * its file cannot be made (tmp/ID taken), it fails alone: 451's outcome,
 * nothing in new/, and the next text is stored.
 */
static void
test_lone_text_fails(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], id2[SPOOL_ID_MAX], path[PATH_MAX];
	int fd;

	text_begin(f, id, sizeof(id));
	snprintf(path, sizeof(path), "%s/tmp/%s", f->spool, id);
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) != -1);
	close(fd);
	text_submit(f, id, "lone\n", 5);
	loop_until(f, &f->done, 1);
	assert_int_equal(f->r.result, OUTCOME_TEMP);
	assert_false(exists(f, "new", id));
	assert_true(exists(f, "tmp", id));	/* not its to remove */
	unlink(path);
	text_begin(f, id2, sizeof(id2));
	text_submit(f, id2, "next\n", 5);
	loop_until(f, &f->done, 2);
	assert_int_equal(f->r.result, OUTCOME_OK);
	assert_true(exists(f, "new", id2));
	assert_int_equal(loop_file_writes, 0);
}

/* An aborted text's file goes, whether a writer held it or not. */
static void
test_abort(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], id2[SPOOL_ID_MAX], id3[SPOOL_ID_MAX];
	char piece[4096];

	memset(piece, 'y', sizeof(piece));
	/* Nothing written: done with at once. */
	text_begin(f, id, sizeof(id));
	assert_int_equal(store_abort(&f->r), 0);
	assert_int_equal(store_abort(&f->r), 0);
	assert_int_equal(store_backlog(&f->r), 0);
	/* Held by a writer: removed once it gives the req back. */
	text_begin(f, id2, sizeof(id2));
	assert_int_equal(store_append(&f->r, piece, sizeof(piece)), 0);
	assert_int_equal(store_append(&f->r, piece, sizeof(piece)), 0);
	assert_int_equal(store_abort(&f->r), 1);
	assert_int_equal(store_append(&f->r, piece, sizeof(piece)), -1);
	loop_until(f, &f->done, 1);
	assert_int_equal(f->r.end, STORE_ABORTED);
	assert_int_equal(f->drained, 0);
	assert_false(exists(f, "tmp", id2));
	/* Written, then aborted while idle. */
	text_begin(f, id3, sizeof(id3));
	assert_int_equal(store_append(&f->r, piece, sizeof(piece)), 0);
	loop_until(f, &f->drained, 1);
	assert_true(exists(f, "tmp", id3));
	assert_int_equal(store_abort(&f->r), 1);
	loop_until(f, &f->done, 2);
	assert_false(exists(f, "tmp", id3));
	assert_int_equal(store_abort(&f->r), 0);
	assert_int_equal(loop_file_writes, 0);
}

/* {inode} of the files made ahead in tmp/; how many in *n. */
static void
made_files(const struct fixture *f, ino_t *ino, size_t max, size_t *n)
{
	char path[PATH_MAX];
	struct dirent *de;
	struct stat sb;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tmp", f->spool);
	assert_non_null(d = opendir(path));
	*n = 0;
	while ((de = readdir(d)) != NULL) {
		if (spool_made_maker(de->d_name) != (long)getpid())
			continue;
		snprintf(path, sizeof(path), "%s/tmp/%s", f->spool,
		    de->d_name);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_size, 0);
		assert_true(*n < max);
		ino[(*n)++] = sb.st_ino;
	}
	closedir(d);
}

static void
wait_made(const struct fixture *f, ino_t *ino, size_t *n)
{
	int i;

	for (i = 0; i < 500; i++) {
		made_files(f, ino, STORE_MADE_AHEAD, n);
		if (*n == STORE_MADE_AHEAD)
			return;
		usleep(10000);
	}
	fail_msg("the files made ahead did not come");
}

/*
 * Idle, the store makes files ahead; a text is written into one of them
 * and published under its own id, one is made in its place, and a stop
 * removes them.
 */
static void
test_made_ahead(void **state)
{
	struct fixture *f = *state;
	ino_t before[STORE_MADE_AHEAD], after[STORE_MADE_AHEAD];
	char id[SPOOL_ID_MAX], path[PATH_MAX];
	struct stat sb;
	size_t n, i, kept = 0;

	wait_made(f, before, &n);
	text_begin(f, id, sizeof(id));
	text_submit(f, id, "one text\n", 9);
	loop_until(f, &f->done, 1);
	assert_int_equal(f->r.result, OUTCOME_OK);
	snprintf(path, sizeof(path), "%s/new/%s", f->spool, id);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 9);
	assert_true(sb.st_ino == before[0] || sb.st_ino == before[1]);
	assert_false(exists(f, "tmp", id));
	wait_made(f, after, &n);
	for (i = 0; i < n; i++)
		kept += after[i] == before[0] || after[i] == before[1];
	assert_int_equal(kept, 1);
	store_free(f->st);
	f->st = NULL;
	made_files(f, after, STORE_MADE_AHEAD, &n);
	assert_int_equal(n, 0);
}

/* store_free() with a text in flight: its cb still comes, nothing leaks. */
static void
test_free_in_flight(void **state)
{
	struct fixture *f = *state;
	char id[SPOOL_ID_MAX], piece[PIECE];
	size_t i;

	memset(piece, 'z', sizeof(piece));
	text_begin(f, id, sizeof(id));
	for (i = 0; i < 4; i++)
		assert_int_equal(store_append(&f->r, piece, sizeof(piece)), 0);
	text_submit(f, id, "end\n", 4 * PIECE + 4);
	store_free(f->st);
	f->st = NULL;
	assert_int_equal(f->done, 1);
	/* Stopped: what was not yet committed is not stored. */
	if (f->r.result != OUTCOME_OK)
		assert_false(exists(f, "tmp", id) || exists(f, "new", id));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pieces_on_writers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_end_while_pieces_wait, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_end_while_piece_held, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_piece_fails_after_end, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_next_text, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_piece_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lone_text_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_made_ahead, setup_made,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_in_flight, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
