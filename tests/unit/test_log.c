/*
 * Unit tests for common/log: the `log` values, a log file's lines (time,
 * host, program[pid], one whole line per call even from many threads and
 * when cut), reopening after a rename, and the files a log may not be (a
 * symbolic link, a FIFO, a missing file with LOG_NOCREATE).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <regex.h>

#include <cmocka.h>

#include "log.h"

struct fixture {
	char dir[64];
	char path[128];
	char spec[160];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_log.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/mpp.log", f->dir);
	snprintf(f->spec, sizeof(f->spec), "file:%s", f->path);
	log_init("test_log", LOG_TO_STDERR, 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	int rc;

	log_init("test_log", LOG_TO_STDERR, 0);
	(void)log_configure("stderr", 0, cmd, sizeof(cmd));
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

/* The whole file at path (freed by the caller). */
static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	rewind(fp);
	assert_non_null(buf = calloc(1, (size_t)n + 1));
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return buf;
}

static int
count_lines(const char *text)
{
	int n = 0;

	for (; *text != '\0'; text++)
		n += *text == '\n';
	return n;
}

static void
test_spec_parse(void **state)
{
	const char *path;
	int to;

	(void)state;
	assert_int_equal(log_spec_parse("syslog", &to, &path), 0);
	assert_int_equal(to, LOG_TO_SYSLOG);
	assert_null(path);
	assert_int_equal(log_spec_parse("stderr", &to, &path), 0);
	assert_int_equal(to, LOG_TO_STDERR);
	assert_int_equal(log_spec_parse("file:/var/log/mpp.log", &to, &path),
	    0);
	assert_int_equal(to, LOG_TO_FILE);
	assert_string_equal(path, "/var/log/mpp.log");
	assert_int_equal(log_spec_parse("file:rel", &to, &path), -1);
	assert_int_equal(log_spec_parse("file:/dir/", &to, &path), -1);
	assert_int_equal(log_spec_parse("file:", &to, &path), -1);
	assert_int_equal(log_spec_parse("SYSLOG", &to, &path), -1);
	assert_int_equal(log_spec_parse("", &to, &path), -1);
}

/* Lines as a syslog daemon writes them: time, host, program[pid]. */
static void
test_file_lines(void **state)
{
	struct fixture *f = *state;
	char err[256], want[64], *text;
	regex_t re;

	assert_int_equal(log_configure(f->spec, 0, err, sizeof(err)), 0);
	assert_int_equal(log_destination(), LOG_TO_FILE);
	log_info("id=%s result=%s", "1.M1P1Q1", "accepted");
	log_warnx("second");
	log_debug("not written: not verbose");
	text = slurp(f->path);
	assert_int_equal(count_lines(text), 2);
	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:"
	    "[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z [^ .]+ test_log\\[[0-9]+\\]: "
	    "id=1\\.M1P1Q1 result=accepted\n", REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regexec(&re, text, 0, NULL, 0), 0);
	regfree(&re);
	snprintf(want, sizeof(want), "test_log[%ld]: second\n",
	    (long)getpid());
	assert_non_null(strstr(text, want));
	free(text);
}

/* A message longer than a line may be is cut, and still ends a line. */
static void
test_long_line_cut(void **state)
{
	struct fixture *f = *state;
	char err[256], *big, *text;

	assert_non_null(big = malloc(10000));
	memset(big, 'x', 9999);
	big[9999] = '\0';
	assert_int_equal(log_configure(f->spec, 0, err, sizeof(err)), 0);
	log_info("%s", big);
	log_info("after");
	text = slurp(f->path);
	assert_int_equal(count_lines(text), 2);
	assert_true(strlen(text) < 9999);
	assert_non_null(strstr(text, "]: after\n"));
	free(text);
	free(big);
}

struct writer {
	int n;
	char tag;
};

static void *
writer_run(void *arg)
{
	struct writer *w = arg;
	char body[301];
	int i;

	memset(body, w->tag, 300);
	body[300] = '\0';
	for (i = 0; i < w->n; i++)
		log_info("%c %d %s", w->tag, i, body);
	return NULL;
}

/* Many threads at once: every line whole, none lost. */
static void
test_threads_whole_lines(void **state)
{
	struct fixture *f = *state;
	struct writer w[4] = { { 500, 'a' }, { 500, 'b' }, { 500, 'c' },
	    { 500, 'd' } };
	pthread_t t[4];
	char err[256], *text, *line, *save;
	int i, n = 0;

	assert_int_equal(log_configure(f->spec, 0, err, sizeof(err)), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer_run,
		    &w[i]), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	text = slurp(f->path);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save), n++) {
		char *msg = strstr(line, "]: ");
		size_t k;

		assert_non_null(msg);
		msg += 3;
		for (k = strlen(msg) - 300; k < strlen(msg); k++)
			assert_int_equal(msg[k], msg[0]);
	}
	assert_int_equal(n, 2000);
	free(text);
}

/* After logrotate's rename, lines go to the file now at the path. */
static void
test_reopen_after_rename(void **state)
{
	struct fixture *f = *state;
	char err[256], old[160], *text;

	assert_int_equal(log_configure(f->spec, 0, err, sizeof(err)), 0);
	log_info("before");
	snprintf(old, sizeof(old), "%s.1", f->path);
	assert_int_equal(rename(f->path, old), 0);
	log_info("still old");
	assert_int_equal(log_reopen_signal(SIGUSR1), 1);
	log_info("after");
	text = slurp(old);
	assert_non_null(strstr(text, "before"));
	assert_non_null(strstr(text, "still old"));
	assert_null(strstr(text, "after"));
	free(text);
	text = slurp(f->path);
	assert_non_null(strstr(text, "log file reopened"));
	assert_non_null(strstr(text, "after"));
	assert_null(strstr(text, "before"));
	free(text);
	/* SIGHUP reopens too; other signals are not for the log. */
	assert_int_equal(log_reopen_signal(SIGHUP), 1);
	assert_int_equal(log_reopen_signal(SIGTERM), 0);
}

/* A reopen that fails keeps the old file, and says so there. */
static void
test_reopen_failure_keeps_old(void **state)
{
	struct fixture *f = *state;
	char err[256], *text;

	assert_int_equal(log_configure(f->spec, 0, err, sizeof(err)), 0);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(mkdir(f->path, 0700), 0);	/* in the way */
	assert_int_equal(log_reopen(), -1);
	log_info("kept");
	assert_int_equal(rmdir(f->path), 0);
	assert_int_equal(log_reopen(), 0);
	log_info("new");
	text = slurp(f->path);
	assert_null(strstr(text, "kept"));
	assert_non_null(strstr(text, "new"));
	free(text);
}

static void
test_refused_files(void **state)
{
	struct fixture *f = *state;
	char err[256], target[160], spec[200];

	/* A symbolic link is not followed. */
	snprintf(target, sizeof(target), "%s/target", f->dir);
	assert_int_equal(close(creat(target, 0600)), 0);
	assert_int_equal(symlink(target, f->path), 0);
	assert_int_equal(log_configure(f->spec, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(log_destination(), LOG_TO_STDERR);
	assert_int_equal(unlink(f->path), 0);
	/* Nor is a FIFO opened (it would block). */
	assert_int_equal(mkfifo(f->path, 0600), 0);
	assert_int_equal(log_configure(f->spec, 0, err, sizeof(err)), -1);
	assert_int_equal(unlink(f->path), 0);
	/* LOG_NOCREATE: a missing file is an error, and none is made. */
	assert_int_equal(log_configure(f->spec, LOG_NOCREATE, err,
	    sizeof(err)), -1);
	assert_int_equal(access(f->path, F_OK), -1);
	/* LOG_EARLY: stderr until the file is opened later. */
	assert_int_equal(log_configure(f->spec, LOG_EARLY, err, sizeof(err)),
	    0);
	assert_int_equal(log_destination(), LOG_TO_STDERR);
	assert_int_equal(access(f->path, F_OK), -1);
	snprintf(spec, sizeof(spec), "bogus");
	assert_int_equal(log_configure(spec, 0, err, sizeof(err)), -1);
}

/* A new file is made 0640, less the umask. */
static void
test_created_mode(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct stat st;
	mode_t old = umask(022);

	assert_int_equal(log_configure(f->spec, 0, err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_parse),
		T(test_file_lines),
		T(test_long_line_cut),
		T(test_threads_whole_lines),
		T(test_reopen_after_rename),
		T(test_reopen_failure_keeps_old),
		T(test_refused_files),
		T(test_created_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
