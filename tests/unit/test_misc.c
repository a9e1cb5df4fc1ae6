/*
 * Unit tests for the small modules: buf, log_escape, util (dates, whole
 * writes, comparisons), iplimit, workq and pwfile.
 */

#include <sys/stat.h>
#include <sys/wait.h>

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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "workq.h"
#include "../../mppd/iplimit.h"
#include "../../mppd/pwfile.h"
#include "tmpdir.h"

/* buf */

static void
test_buf(void **state)
{
	struct buf b = { 0 };
	size_t i;

	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_null(b.data);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	assert_int_equal(buf_puts(&b, "def"), 0);
	assert_int_equal(buf_printf(&b, "-%d-%s", 42, "x"), 0);
	assert_int_equal(b.len, 11);
	assert_memory_equal(b.data, "abcdef-42-x", 11);
	assert_int_equal(buf_nul(&b), 0);
	assert_string_equal(b.data, "abcdef-42-x");
	assert_int_equal(b.len, 11);		/* the NUL is not counted */
	buf_consume(&b, 3);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "def-42-x", 8);
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	/* Growth keeps every byte. */
	for (i = 0; i < 100000; i++)
		assert_int_equal(buf_append(&b, &"0123456789"[i % 10], 1), 0);
	assert_int_equal(b.len, 100000);
	assert_true(b.cap >= b.len);
	for (i = 0; i < 100000; i++)
		assert_int_equal(b.data[i], '0' + (int)(i % 10));
	/* A long printf. */
	buf_consume(&b, b.len);
	assert_int_equal(buf_printf(&b, "%5000d|", 7), 0);
	assert_int_equal(b.len, 5001);
	assert_int_equal(b.data[4999], '7');
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	buf_free(&b);				/* twice is fine */
}

static void
test_buf_overflow(void **state)
{
	struct buf b = { 0 };

	assert_int_equal(buf_append(&b, "x", 1), 0);
	errno = 0;
	assert_int_equal(buf_append(&b, "y", SIZE_MAX - 1), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(b.len, 1);		/* as it was */
	assert_int_equal(b.data[0], 'x');
	buf_free(&b);
}

/* log_escape */

struct esc_case {
	const char *in;
	size_t inlen;		/* 0: strlen(in) */
	size_t dstsz;
	const char *out;
};

static const struct esc_case esc_cases[] = {
	{ "alice", 0, 64, "alice" },
	{ "a b~!", 0, 64, "a b~!" },
	{ "a\"b", 0, 64, "a\\x22b" },
	{ "a\\b", 0, 64, "a\\x5cb" },
	{ "\r\n", 0, 64, "\\x0d\\x0a" },
	{ "\t\x1b[0m", 0, 64, "\\x09\\x1b[0m" },
	{ "\x7f\x80\xff", 0, 64, "\\x7f\\x80\\xff" },
	{ "a\0b", 3, 64, "a\\x00b" },
	{ "abcdef", 3, 64, "abc" },		/* srclen bounds the read */
	{ "abcdef", 0, 4, "abc" },		/* truncated */
	{ "ab\ncd", 0, 6, "ab" },		/* no half escape */
	{ "ab\ncd", 0, 7, "ab\\x0a" },
	{ "\n", 0, 4, "" },
	{ "\n", 0, 5, "\\x0a" },
	{ "x", 0, 1, "" },
	{ "", 0, 8, "" },
};

static void
test_log_escape(void **state)
{
	char dst[80];
	size_t i;

	for (i = 0; i < sizeof(esc_cases) / sizeof(esc_cases[0]); i++) {
		const struct esc_case *c = &esc_cases[i];
		size_t len = c->inlen ? c->inlen : strlen(c->in);

		memset(dst, 'Z', sizeof(dst));
		assert_ptr_equal(log_escape(dst, c->dstsz, c->in, len), dst);
		if (strcmp(dst, c->out) != 0) {
			print_error("case %zu: \"%s\", want \"%s\"\n", i, dst,
			    c->out);
			fail();
		}
		assert_int_equal(dst[c->dstsz], 'Z');	/* no write past */
	}
	/* dstsz 0 writes nothing. */
	dst[0] = 'Z';
	log_escape(dst, 0, "abc", 3);
	assert_int_equal(dst[0], 'Z');
}

/* Every escaped byte is printable, and no escape is ambiguous. */
static void
test_log_escape_all_bytes(void **state)
{
	char src[256], dst[256 * 4 + 1];
	size_t i, n;
	unsigned int v;

	for (i = 0; i < 256; i++)
		src[i] = (char)i;
	log_escape(dst, sizeof(dst), src, 256);
	assert_int_equal(strlen(dst), 256 * 4 - 3 * (95 - 2));
	for (i = 0, n = 0; dst[i] != '\0'; n++) {
		assert_true(dst[i] >= 0x20 && dst[i] < 0x7f && dst[i] != '"');
		if (dst[i] == '\\') {
			assert_int_equal(sscanf(dst + i, "\\x%2x", &v), 1);
			assert_int_equal(v, n);
			i += 4;
		} else {
			assert_int_equal((unsigned char)dst[i], n);
			i++;
		}
	}
	assert_int_equal(n, 256);
}

/* util */

static void
test_mail_date(void **state)
{
	static const struct {
		time_t t;
		const char *mail, *rfc3339;
	} cases[] = {
		{ 0, "Thu, 1 Jan 1970 00:00:00 +0000",
		  "1970-01-01T00:00:00Z" },
		{ 1795711200, "Thu, 26 Nov 2026 16:40:00 +0000",
		  "2026-11-26T16:40:00Z" },
		{ 951782400, "Tue, 29 Feb 2000 00:00:00 +0000",
		  "2000-02-29T00:00:00Z" },
		{ 1234567890, "Fri, 13 Feb 2009 23:31:30 +0000",
		  "2009-02-13T23:31:30Z" },
		{ 4102444799, "Thu, 31 Dec 2099 23:59:59 +0000",
		  "2099-12-31T23:59:59Z" },
	};
	char out[64], small[8];
	const char *tz = getenv("TZ");
	char *saved = tz != NULL ? strdup(tz) : NULL;
	size_t i;

	/* UTC whatever the local zone. */
	setenv("TZ", "America/New_York", 1);
	tzset();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		util_mail_date(cases[i].t, out, sizeof(out));
		assert_string_equal(out, cases[i].mail);
		util_rfc3339(cases[i].t, out, sizeof(out));
		assert_string_equal(out, cases[i].rfc3339);
	}
	util_mail_date(0, small, sizeof(small));
	assert_string_equal(small, "Thu, 1 ");
	if (saved != NULL) {
		setenv("TZ", saved, 1);
		free(saved);
	} else
		unsetenv("TZ");
	tzset();
}

static void
test_timingsafe_bcmp(void **state)
{
	char a[64], b[64];
	size_t i;

	memset(a, 'a', sizeof(a));
	memcpy(b, a, sizeof(b));
	assert_int_equal(util_timingsafe_bcmp(a, b, sizeof(a)), 0);
	assert_int_equal(util_timingsafe_bcmp(a, b, 0), 0);
	assert_int_equal(util_timingsafe_bcmp("x", "y", 0), 0);
	for (i = 0; i < sizeof(a); i++) {
		b[i] ^= 0x80;
		assert_int_not_equal(util_timingsafe_bcmp(a, b, sizeof(a)), 0);
		assert_int_equal(util_timingsafe_bcmp(a, b, i), 0);
		b[i] ^= 0x80;
	}
	b[63] ^= 1;				/* one bit */
	assert_int_not_equal(util_timingsafe_bcmp(a, b, sizeof(a)), 0);
}

static void
test_strcaseeq(void **state)
{
	assert_true(util_strcaseeq("Alice", "aLICE"));
	assert_true(util_strcaseeq("", ""));
	assert_false(util_strcaseeq("alice", "alice2"));
	assert_false(util_strcaseeq("alice", "alicf"));
}

static void
test_write_all(void **state)
{
	int p[2];
	char big[200000], back[200000];
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	memset(big, 'w', sizeof(big));
	big[sizeof(big) - 1] = '!';
	assert_int_equal(pipe(p), 0);
	/* More than a pipe holds: a child writes, we read. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(util_write_all(p[1], big, sizeof(big)) == 0 ? 0 : 1);
	}
	close(p[1]);
	while ((n = read(p[0], back + got, sizeof(back) - got)) > 0)
		got += (size_t)n;
	close(p[0]);
	assert_int_equal(got, sizeof(big));
	assert_memory_equal(back, big, sizeof(big));
	{
		int st;

		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	/* A bad fd is an error. */
	assert_int_equal(util_write_all(-1, "x", 1), -1);
}

static void
test_now_ms(void **state)
{
	long long a = util_now_ms(), b = util_now_ms();

	assert_true(a > 0);
	assert_true(b >= a);
}

/* iplimit */

static void
test_iplimit(void **state)
{
	struct iplimit *t = iplimit_new();
	char addr[64];
	int i;

	assert_non_null(t);
	assert_int_equal(iplimit_get(t, "192.0.2.7"), 0);
	assert_int_equal(iplimit_inc(t, "192.0.2.7"), 1);
	assert_int_equal(iplimit_inc(t, "192.0.2.7"), 2);
	assert_int_equal(iplimit_inc(t, "2001:db8::7"), 1);
	assert_int_equal(iplimit_get(t, "192.0.2.7"), 2);
	assert_int_equal(iplimit_get(t, "192.0.2.70"), 0);
	iplimit_dec(t, "192.0.2.7");
	assert_int_equal(iplimit_get(t, "192.0.2.7"), 1);
	iplimit_dec(t, "192.0.2.7");
	assert_int_equal(iplimit_get(t, "192.0.2.7"), 0);
	iplimit_dec(t, "192.0.2.7");		/* never below zero */
	assert_int_equal(iplimit_get(t, "192.0.2.7"), 0);
	assert_int_equal(iplimit_inc(t, "192.0.2.7"), 1);
	iplimit_dec(t, "198.51.100.1");		/* unknown: no-op */
	/* Many addresses, so buckets hold chains. */
	for (i = 0; i < 20000; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		assert_int_equal(iplimit_inc(t, addr), 1);
		assert_int_equal(iplimit_inc(t, addr), 2);
	}
	for (i = 0; i < 20000; i += 2) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		iplimit_dec(t, addr);
		iplimit_dec(t, addr);
	}
	for (i = 0; i < 20000; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		assert_int_equal(iplimit_get(t, addr), i % 2 ? 2 : 0);
	}
	assert_int_equal(iplimit_get(t, "2001:db8::7"), 1);
	iplimit_free(t);
	iplimit_free(NULL);
}

/* Failures within a window: counted from its first one, over after it. */
static void
test_iplimit_failures(void **state)
{
	struct iplimit *t = iplimit_new();

	assert_non_null(t);
	assert_int_equal(iplimit_failures(t, "192.0.2.7", 1000, 60), 0);
	assert_int_equal(iplimit_fail(t, "192.0.2.7", 1000, 60), 1);
	assert_int_equal(iplimit_fail(t, "192.0.2.7", 1030, 60), 2);
	assert_int_equal(iplimit_fail(t, "2001:db8::7", 1030, 60), 1);
	assert_int_equal(iplimit_failures(t, "192.0.2.7", 1060, 60), 2);
	assert_int_equal(iplimit_failures(t, "192.0.2.70", 1060, 60), 0);
	/* The window began at 1000: over at 1061, whatever came later. */
	assert_int_equal(iplimit_failures(t, "192.0.2.7", 1061, 60), 0);
	assert_int_equal(iplimit_fail(t, "192.0.2.7", 1062, 60), 1);
	assert_int_equal(iplimit_failures(t, "192.0.2.7", 1100, 60), 1);
	assert_int_equal(iplimit_failures(t, "2001:db8::7", 1090, 60), 1);
	iplimit_free(t);
}

/* workq */

#define NJOBS 100

struct job {
	struct workq_job base;	/* first: a workq_job * is a job * */
	int n;
	long result;
	pthread_t ran_on;
	int ran, done;
};

static pthread_t owner;
static int completions;

static int
job_run(struct workq_job *wj)
{
	struct job *j = (struct job *)wj;
	long s = 0;
	int i;

	for (i = 0; i <= j->n * 1000; i++)
		s += i;
	j->result = s;
	j->ran_on = pthread_self();
	j->ran++;
	return WORKQ_DONE;
}

static void
job_done(struct workq_job *wj)
{
	struct job *j = (struct job *)wj;

	assert_true(pthread_equal(pthread_self(), owner));
	j->done++;
	completions++;
}

/* Wait (poll, no sleep) until workq_fd is readable, run the completions. */
static void
drain(struct workq *q, int want)
{
	struct pollfd pfd;

	while (completions < want) {
		pfd.fd = workq_fd(q);
		pfd.events = POLLIN;
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		workq_run_completions(q);
	}
}

static void
test_workq(void **state)
{
	struct job *jobs = calloc(NJOBS, sizeof(*jobs));
	struct workq *q = workq_new(4);
	int i, on_owner = 0;
	long want;

	assert_non_null(jobs);
	assert_non_null(q);
	owner = pthread_self();
	completions = 0;
	for (i = 0; i < NJOBS; i++) {
		jobs[i].base.run = job_run;
		jobs[i].base.done = job_done;
		jobs[i].n = i;
		workq_push(q, &jobs[i].base);
	}
	drain(q, NJOBS);
	assert_int_equal(completions, NJOBS);
	for (i = 0; i < NJOBS; i++) {
		want = (long)i * 1000 * ((long)i * 1000 + 1) / 2;
		assert_int_equal(jobs[i].ran, 1);
		assert_int_equal(jobs[i].done, 1);
		assert_int_equal(jobs[i].result, want);
		on_owner += pthread_equal(jobs[i].ran_on, owner) != 0;
	}
	assert_int_equal(on_owner, 0);		/* all ran on workers */
	/*
	 * Once the workers are stopped (every wake-up written) and the
	 * completions run, the fd is quiet and nothing runs twice.
	 */
	workq_stop(q);
	workq_run_completions(q);
	assert_int_equal(completions, NJOBS);
	{
		struct pollfd pfd = { workq_fd(q), POLLIN, 0 };

		assert_int_equal(poll(&pfd, 1, 0), 0);
	}
	workq_free(q);
	workq_free(NULL);
	free(jobs);
}

/* A forwarded job completes when its holder calls workq_finish. */
static struct workq_job *forwarded;

static int
job_forward(struct workq_job *wj)
{
	forwarded = wj;
	return WORKQ_FORWARDED;
}

static void
test_workq_forwarded(void **state)
{
	struct job j = { 0 };
	struct workq *q = workq_new(2);

	assert_non_null(q);
	owner = pthread_self();
	completions = 0;
	forwarded = NULL;
	j.base.run = job_forward;
	j.base.done = job_done;
	workq_push(q, &j.base);
	workq_stop(q);			/* the queued job has run */
	assert_ptr_equal(forwarded, &j.base);
	workq_run_completions(q);
	assert_int_equal(completions, 0);
	workq_finish(q, forwarded);
	drain(q, 1);
	assert_int_equal(j.done, 1);
	workq_stop(q);			/* idempotent */
	workq_free(q);
}

/* Jobs queued before free are finished, and their done() runs. */
static void
test_workq_free_finishes(void **state)
{
	struct job jobs[20];
	struct workq *q = workq_new(3);
	int i;

	memset(jobs, 0, sizeof(jobs));
	assert_non_null(q);
	owner = pthread_self();
	completions = 0;
	for (i = 0; i < 20; i++) {
		jobs[i].base.run = job_run;
		jobs[i].base.done = job_done;
		jobs[i].n = 10;
		workq_push(q, &jobs[i].base);
	}
	workq_free(q);
	assert_int_equal(completions, 20);
}

/* pwfile */

#define A16 "aaaaaaaaaaaaaaaa"

struct pwdir {
	char dir[PATH_MAX / 2];
	char path[PATH_MAX / 2 + 16];
};

static int
pw_setup(void **state)
{
	struct pwdir *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	umask(022);
	tmpdir_make(d->dir, sizeof(d->dir), "pw");
	snprintf(d->path, sizeof(d->path), "%s/passwd", d->dir);
	*state = d;
	return 0;
}

static int
pw_teardown(void **state)
{
	struct pwdir *d = *state;

	tmpdir_remove(d->dir);
	free(d);
	return 0;
}

static void
write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *
slurp(const char *path)
{
	static char text[8192];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	assert_true(n >= 0);
	text[n] = '\0';
	close(fd);
	return text;
}

static void
test_pwfile_round_trip(void **state)
{
	struct pwdir *d = *state;
	struct pwfile pf;
	const struct pwfile_entry *e;
	char err[512] = "";
	struct stat st;

	/* Missing: an empty file when missing_ok, else an error. */
	assert_int_equal(pwfile_load(&pf, d->path, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, d->path));
	assert_int_equal(pwfile_load(&pf, d->path, 1, err, sizeof(err)), 0);
	assert_int_equal(pf.n, 0);
	assert_null(pwfile_find(&pf, "alice"));

	assert_int_equal(pwfile_set(&pf, "alice", "$6$salt$hashA"), 0);
	assert_int_equal(pwfile_set(&pf, "bob", "$6$salt$hashB"), 0);
	assert_int_equal(pwfile_set(&pf, "carol", "$6$salt$hashC"), 0);
	assert_int_equal(pwfile_set(&pf, "alice", "$6$salt$hashA2"), 0);
	assert_int_equal(pwfile_del(&pf, "bob"), 0);
	assert_int_equal(pwfile_del(&pf, "bob"), -1);
	assert_int_equal(pwfile_save(&pf, d->path, err, sizeof(err)), 0);
	pwfile_free(&pf);

	assert_int_equal(stat(d->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_string_equal(slurp(d->path),
	    "alice:$6$salt$hashA2\ncarol:$6$salt$hashC\n");

	assert_int_equal(pwfile_load(&pf, d->path, 0, err, sizeof(err)), 0);
	assert_int_equal(pf.world_readable, 0);
	e = pwfile_find(&pf, "alice");
	assert_non_null(e);
	assert_string_equal(e->user, "alice");
	assert_string_equal(e->hash, "$6$salt$hashA2");
	assert_null(pwfile_find(&pf, "bob"));
	assert_null(pwfile_find(&pf, "Alice"));	/* names are exact */
	assert_non_null(pwfile_find(&pf, "carol"));
	pwfile_free(&pf);
	pwfile_free(&pf);			/* freed twice: fine */
}

/* Comments, blank lines and extra fields survive a rewrite. */
static void
test_pwfile_keeps_lines(void **state)
{
	static const char text[] = "# mpp users\n"
	    "alice:$6$a$A:1000:Alice Liddell\n"
	    "\n"
	    "# the next is bob\n"
	    "bob:$6$b$B\n"
	    "not a user line\n";
	struct pwdir *d = *state;
	struct pwfile pf;
	const struct pwfile_entry *e;
	char err[512] = "";
	struct stat st;

	write_text(d->path, text, 0644);
	assert_int_equal(pwfile_load(&pf, d->path, 0, err, sizeof(err)), 0);
	assert_int_equal(pf.world_readable, 1);
	e = pwfile_find(&pf, "alice");
	assert_non_null(e);
	assert_string_equal(e->hash, "$6$a$A");
	assert_string_equal(e->line, "alice:$6$a$A:1000:Alice Liddell");
	assert_null(pwfile_find(&pf, "not a user line"));
	assert_int_equal(pwfile_set(&pf, "bob", "$6$b$B2"), 0);
	assert_int_equal(pwfile_set(&pf, "dave", "$6$d$D"), 0);
	assert_int_equal(pwfile_save(&pf, d->path, err, sizeof(err)), 0);
	pwfile_free(&pf);
	assert_string_equal(slurp(d->path), "# mpp users\n"
	    "alice:$6$a$A:1000:Alice Liddell\n"
	    "\n"
	    "# the next is bob\n"
	    "bob:$6$b$B2\n"
	    "not a user line\n"
	    "dave:$6$d$D\n");
	/* The rewrite is 0640 though the old file was 0644. */
	assert_int_equal(stat(d->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
}

static void
test_pwfile_errors(void **state)
{
	struct pwdir *d = *state;
	struct pwfile pf;
	char err[512] = "", *text;
	char path[PATH_MAX];

	text = malloc(PWFILE_LINE_MAX + 64);
	assert_non_null(text);
	strcpy(text, "alice:x\nbob:");
	memset(text + 12, 'h', PWFILE_LINE_MAX);
	strcpy(text + 12 + PWFILE_LINE_MAX, "\n");
	write_text(d->path, text, 0600);
	free(text);
	assert_int_equal(pwfile_load(&pf, d->path, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2:"));
	assert_int_equal(pf.n, 0);
	/* Saving where the directory does not exist. */
	memset(&pf, 0, sizeof(pf));
	snprintf(path, sizeof(path), "%s/no/passwd", d->dir);
	assert_int_equal(pwfile_save(&pf, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
}

static void
test_pwfile_user_valid(void **state)
{
	static const struct { const char *user; int ok; } cases[] = {
		{ "alice", 1 },
		{ "alice@example.org", 1 },
		{ "a.b_c-d", 1 },
		{ A16 A16 A16 A16, 1 },		/* 64 */
		{ A16 A16 A16 A16 "a", 0 },	/* 65 */
		{ "", 0 },
		{ "a:b", 0 },
		{ "a b", 0 },
		{ "a\tb", 0 },
		{ "a\nb", 0 },
		{ "-a", 0 },
		{ "\xc3\xa9", 0 },
		{ "a\x7f", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (pwfile_user_valid(cases[i].user) != cases[i].ok) {
			print_error("pwfile_user_valid(\"%s\") != %d\n",
			    cases[i].user, cases[i].ok);
			fail();
		}
}

static void
test_pwfile_hash_verify(void **state)
{
	static const char *const prefixes[] = { "$y$", "$6$", "$2b$" };
	char hash[256], hash2[256], again[256];
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		assert_int_equal(pwfile_hash("correct horse", prefixes[i], hash,
		    sizeof(hash)), 0);
		assert_memory_equal(hash, prefixes[i], strlen(prefixes[i]));
		assert_int_equal(pwfile_verify("correct horse", hash), 1);
		assert_int_equal(pwfile_verify("correct horsE", hash), 0);
		assert_int_equal(pwfile_verify("", hash), 0);
		/* A new salt each time. */
		assert_int_equal(pwfile_hash("correct horse", prefixes[i],
		    hash2, sizeof(hash2)), 0);
		assert_string_not_equal(hash, hash2);
		assert_int_equal(pwfile_verify("correct horse", hash2), 1);
		/* crypt with the whole hash as setting gives the hash. */
		assert_int_equal(pwfile_crypt("correct horse", hash, again,
		    sizeof(again)), 0);
		assert_string_equal(again, hash);
		/* Too small an output buffer is an error. */
		assert_int_equal(pwfile_hash("x", prefixes[i], hash, 8), -1);
	}
	/* Known vector: openssl passwd -6 -salt saltsalt secret */
	assert_int_equal(pwfile_verify("secret", "$6$saltsalt$"
	    "TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT"
	    "0Y77vwPZN.Pq.H91p5hVO1"), 1);
	assert_int_equal(pwfile_verify("Secret", "$6$saltsalt$"
	    "TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT"
	    "0Y77vwPZN.Pq.H91p5hVO1"), 0);
	/* Not hashes at all: never a match. */
	assert_int_equal(pwfile_verify("", ""), 0);
	assert_int_equal(pwfile_verify("x", "x"), 0);
	assert_int_equal(pwfile_verify("*", "*"), 0);
	assert_int_equal(pwfile_verify("secret", "!"), 0);
	assert_int_equal(pwfile_verify("secret", "$6$saltsalt$"), 0);
	assert_int_equal(pwfile_hash("x", "$nosuch$", hash, sizeof(hash)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_buf_overflow),
		cmocka_unit_test(test_log_escape),
		cmocka_unit_test(test_log_escape_all_bytes),
		cmocka_unit_test(test_mail_date),
		cmocka_unit_test(test_timingsafe_bcmp),
		cmocka_unit_test(test_strcaseeq),
		cmocka_unit_test(test_write_all),
		cmocka_unit_test(test_now_ms),
		cmocka_unit_test(test_iplimit),
		cmocka_unit_test(test_iplimit_failures),
		cmocka_unit_test(test_workq),
		cmocka_unit_test(test_workq_forwarded),
		cmocka_unit_test(test_workq_free_finishes),
		cmocka_unit_test_setup_teardown(test_pwfile_round_trip,
		    pw_setup, pw_teardown),
		cmocka_unit_test_setup_teardown(test_pwfile_keeps_lines,
		    pw_setup, pw_teardown),
		cmocka_unit_test_setup_teardown(test_pwfile_errors, pw_setup,
		    pw_teardown),
		cmocka_unit_test(test_pwfile_user_valid),
		cmocka_unit_test(test_pwfile_hash_verify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
