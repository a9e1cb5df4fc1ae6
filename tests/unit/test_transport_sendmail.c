/*
 * Unit tests for mppqueue/transport_sendmail.c, with small shell scripts
 * as the program: the program checked at open; the argument vector (the
 * fixed arguments, then -i -f SENDER -- RCPT...); the child's state (no
 * signal blocked or ignored, stdout /dev/null, no other fd inherited);
 * stderr in the reply, on one line and bounded, with a program that
 * writes far more than a pipe holds; and a timeout that ends the child's
 * whole process group, a grandchild that ignores SIGTERM included.
 */
#include <dirent.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <bsd/string.h>

#include "config.h"
#include "tmpdir.h"
#include "../../mppqueue/transport.h"

#define TEXT "To: bob@example.com\nSubject: s\n\nbody\n"
#define STRAY_FD 77		/* open, not close-on-exec, in the parent */

struct fixture {
	char dir[256];
	char script[300];
	char out[300];		/* what the script writes */
	int fd;			/* the message */
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char path[300];

	assert_non_null(fx);
	tmpdir_make(fx->dir, sizeof(fx->dir), "sendmail");
	snprintf(fx->script, sizeof(fx->script), "%s/sendmail", fx->dir);
	snprintf(fx->out, sizeof(fx->out), "%s/out", fx->dir);
	snprintf(path, sizeof(path), "%s/msg", fx->dir);
	fx->fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fx->fd != -1);
	assert_int_equal(write(fx->fd, TEXT, strlen(TEXT)),
	    (ssize_t)strlen(TEXT));
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	close(fx->fd);
	tmpdir_remove(fx->dir);
	free(fx);
	return 0;
}

/* The script: "#!/bin/sh\n" and body, executable. */
static void
write_script(const struct fixture *fx, const char *body, mode_t mode)
{
	FILE *f = fopen(fx->script, "w");

	assert_non_null(f);
	fprintf(f, "#!/bin/sh\nOUT='%s'\n%s", fx->out, body);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(fx->script, mode), 0);
}

/* A transport for "sendmail:SCRIPT" + extra; NULL with err. */
static void *
open_with(const struct fixture *fx, const char *extra, long timeout,
    char *err, size_t errsz)
{
	struct mpp_config cfg;
	char v[CONFIG_STR_MAX];

	config_defaults(&cfg);
	cfg.delivery_timeout = timeout;
	snprintf(v, sizeof(v), "sendmail:%s%s", fx->script, extra);
	assert_int_equal(config_set(&cfg, "transport", v, err, errsz), 0);
	return transport_sendmail_ops.open(&cfg, err, errsz);
}

/* One delivery to rcpts (NULL-ended); r[] filled. */
static void
deliver(const struct fixture *fx, void *t, const char *const *rcpts,
    struct transport_rcpt *r, size_t *n)
{
	struct transport_msg m = { "Q1", "alice@example.org", fx->fd,
	    (off_t)strlen(TEXT) };

	for (*n = 0; rcpts[*n] != NULL; (*n)++)
		r[*n].addr = rcpts[*n];
	(void)lseek(fx->fd, 0, SEEK_END);	/* the transport rewinds */
	assert_int_equal(transport_sendmail_ops.deliver(t, &m, r, *n),
	    TRANSPORT_ANSWERED);
}

static char *
slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_program_checked_at_open(void **state)
{
	struct fixture *fx = *state;
	char err[512];
	void *t;

	assert_null(open_with(fx, "", 5, err, sizeof(err)));
	assert_non_null(strstr(err, fx->script));
	assert_non_null(strstr(err, "No such file"));
	write_script(fx, "exit 0\n", 0644);
	assert_null(open_with(fx, "", 5, err, sizeof(err)));
	if (geteuid() != 0 || access(fx->script, X_OK) == -1)
		assert_non_null(strstr(err, "not executable"));
	assert_int_equal(chmod(fx->script, 0755), 0);
	assert_non_null(t = open_with(fx, "", 5, err, sizeof(err)));
	transport_sendmail_ops.close(t);
	snprintf(fx->script, sizeof(fx->script), "%s", fx->dir);
	assert_null(open_with(fx, "", 5, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
}

static void
test_argv_and_child_state(void **state)
{
	static const char *const rcpts[] = { "bob@example.com", "-oQ/tmp",
	    NULL };
	struct fixture *fx = *state;
	struct transport_rcpt r[4];
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	sigset_t usr1, was;
	char err[512], want[1024];
	void *t;
	size_t n;

	write_script(fx, "for a in \"$0\" \"$@\"; do echo \"arg=$a\"; done >$OUT\n"
	    /* by the shell, which blocks signals while it waits; signals
	       32 and 33 are the C library's own, which no program can give
	       back their default through it (one ignored by whoever started
	       the test stays so), so they are left out */
	    "while read -r k v; do case $k in SigBlk:) "
	    "printf '%s\\t%s\\n' $k $v;; SigIgn:) printf '%s\\t%016x\\n' "
	    "$k $((0x$v & ~0x180000000));; esac; done </proc/$$/status "
	    ">>$OUT\n"
	    "echo \"fd1=$(readlink /proc/$$/fd/1)\" >>$OUT\n"
	    "[ -e /proc/$$/fd/77 ] && echo stray >>$OUT\n"
	    "cat >>$OUT\n", 0755);
	assert_non_null(t = open_with(fx, " -C /etc/postfix-out\t-oi", 5, err,
	    sizeof(err)));
	assert_int_equal(dup2(fx->fd, STRAY_FD), STRAY_FD);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	assert_int_equal(sigprocmask(SIG_BLOCK, &usr1, &was), 0);
	assert_int_equal(sigaction(SIGHUP, &ign, &old), 0);
	deliver(fx, t, rcpts, r, &n);
	(void)sigprocmask(SIG_SETMASK, &was, NULL);
	(void)sigaction(SIGHUP, &old, NULL);
	close(STRAY_FD);
	assert_int_equal(r[0].result, OUTCOME_OK);
	assert_int_equal(r[1].result, OUTCOME_OK);
	assert_string_equal(r[0].reply, "sendmail exit 0");
	snprintf(want, sizeof(want), "arg=%s\narg=-C\narg=/etc/postfix-out\n"
	    "arg=-oi\narg=-i\narg=-f\narg=alice@example.org\narg=--\n"
	    "arg=bob@example.com\narg=-oQ/tmp\n"
	    "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
	    "fd1=/dev/null\n" TEXT, fx->script);
	assert_string_equal(slurp(fx->out), want);
	transport_sendmail_ops.close(t);
}

static void
test_stderr_in_reply(void **state)
{
	static const char *const rcpts[] = { "bob@example.com", NULL };
	struct fixture *fx = *state;
	struct transport_rcpt r[2];
	char err[512];
	void *t;
	size_t n;

	write_script(fx, "printf 'postdrop: fatal: open file\\t/etc/postfix/"
	    "main.cf:\\r\\n No such\\001file \\303\\251\\n\\n' >&2\nexit 75\n",
	    0755);
	assert_non_null(t = open_with(fx, "", 5, err, sizeof(err)));
	deliver(fx, t, rcpts, r, &n);
	assert_int_equal(r[0].result, OUTCOME_TEMP);
	assert_string_equal(r[0].reply, "sendmail exit 75: postdrop: fatal: "
	    "open file /etc/postfix/main.cf: No such?file ??");
	/* A permanent exit keeps its stderr as well (for the bounce). */
	write_script(fx, "echo 'no such user' >&2; exit 67\n", 0755);
	deliver(fx, t, rcpts, r, &n);
	assert_int_equal(r[0].result, OUTCOME_PERM);
	assert_string_equal(r[0].reply, "sendmail exit 67: no such user");
	transport_sendmail_ops.close(t);
}

/* 100 KiB on stderr (more than a pipe holds), then exit 0: read, cut. */
static void
test_much_stderr(void **state)
{
	static const char *const rcpts[] = { "bob@example.com", NULL };
	struct fixture *fx = *state;
	struct transport_rcpt r[2];
	char err[512];
	time_t t0;
	void *t;
	size_t n, i;

	write_script(fx, "head -c 102400 /dev/zero | tr '\\0' x >&2\n"
	    "echo done >$OUT\n", 0755);
	assert_non_null(t = open_with(fx, "", 5, err, sizeof(err)));
	t0 = time(NULL);
	deliver(fx, t, rcpts, r, &n);
	assert_true(time(NULL) - t0 < 5);
	assert_int_equal(r[0].result, OUTCOME_OK);
	assert_string_equal(slurp(fx->out), "done\n");
	assert_int_equal(strncmp(r[0].reply, "sendmail exit 0: xxx", 20), 0);
	assert_int_equal(strlen(r[0].reply), TRANSPORT_REPLY_MAX - 1);
	for (i = strlen("sendmail exit 0: "); r[0].reply[i] != '\0'; i++)
		assert_int_equal(r[0].reply[i], 'x');
	transport_sendmail_ops.close(t);
}

/* Processes whose command line holds marker, zombies aside. */
static int
count_marked(const char *marker)
{
	char path[300], buf[4096];
	struct dirent *e;
	DIR *d = opendir("/proc");
	int n = 0, fd;
	ssize_t k, i;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		if ((fd = open(path, O_RDONLY)) == -1)
			continue;
		k = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		for (i = 0; i < k; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[k > 0 ? k : 0] = '\0';
		if (strstr(buf, marker) != NULL)
			n++;
	}
	closedir(d);
	return n;
}

/* The child hangs, its grandchild too, both deaf to SIGTERM. */
static void
test_timeout_ends_the_group(void **state)
{
	struct fixture *fx = *state;
	struct transport_rcpt r[2];
	const char *rcpts[2] = { NULL, NULL };
	char err[512], marker[64];
	void *t;
	size_t n;
	int i;

	snprintf(marker, sizeof(marker), "hang-%ld@example.com",
	    (long)getpid());
	rcpts[0] = marker;
	write_script(fx, "trap '' TERM\n"
	    "(while :; do sleep 1; done) &\n"
	    "echo started >$OUT\necho 'still waiting' >&2\n"
	    "while :; do sleep 1; done\n", 0755);
	assert_non_null(t = open_with(fx, "", 1, err, sizeof(err)));
	deliver(fx, t, rcpts, r, &n);
	assert_int_equal(r[0].result, OUTCOME_TEMP);
	assert_string_equal(r[0].reply,
	    "sendmail timed out after 1s: still waiting");
	assert_string_equal(slurp(fx->out), "started\n");
	/* The grandchild, killed, is reaped by whoever adopted it. */
	for (i = 0; i < 100 && count_marked(marker) > 0; i++)
		usleep(20 * 1000);
	assert_int_equal(count_marked(marker), 0);
	transport_sendmail_ops.close(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_program_checked_at_open,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_argv_and_child_state,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr_in_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_much_stderr, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout_ends_the_group,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
