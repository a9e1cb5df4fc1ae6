/*
 * transport_sendmail — the message on the stdin of
 * execv(PATH, {"sendmail", ARG..., "-i", "-f", SENDER, "--", RCPT...}),
 * ARG being the fixed arguments of the config (config.h). No shell; "--"
 * ends the options, so a recipient starting with "-" stays a recipient.
 * Exit 0 is done; the temporary sysexits (and a signal or a timeout)
 * retry; any other exit fails every recipient.
 *
 * The program is checked when the transport is opened (mppqueue opens
 * one at start and refuses a missing one). Each run is a process group
 * of its own: a timeout ends the whole group (SIGTERM, a grace of
 * SENDMAIL_GRACE_MS, SIGKILL), so a postdrop or a delivery process left
 * by the child goes with it. The child's stderr comes back through a
 * pipe: its first SENDMAIL_ERR_KEEP bytes, on one line, follow the exit
 * status in the reply (and so in last_error, the log and the bounce);
 * the rest is read and dropped, so the child never blocks on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "transport.h"
#include "util.h"

#define SENDMAIL_ERR_KEEP 1024		/* bytes of stderr kept */
#define SENDMAIL_GRACE_MS 2000		/* SIGTERM to SIGKILL */
#define SENDMAIL_NAP_MS 10		/* polling, where no pidfd */
#define SENDMAIL_FIXED_ARGV 6		/* "sendmail" -i -f S -- NULL */

struct sendmail {
	char path[CONFIG_STR_MAX];
	size_t nargs;
	char args[CONFIG_SENDMAIL_ARGS_MAX][CONFIG_SENDMAIL_ARG_MAX];
	long timeout;
};

/* One run of the program, seen from the parent. */
struct run {
	pid_t pid;
	int pidfd;			/* -1: none (polling instead) */
	int errfd;			/* read end of its stderr; -1 at EOF */
	char err[SENDMAIL_ERR_KEEP + 1];
	size_t errlen;
};

/* The program must be a regular file this user may execute. */
static int
program_ok(const char *path, char *err, size_t errsz)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		snprintf(err, errsz, "sendmail program %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "sendmail program %s: not a regular file",
		    path);
		return -1;
	}
	if (access(path, X_OK) == -1) {
		snprintf(err, errsz, "sendmail program %s: not executable: %s",
		    path, strerror(errno));
		return -1;
	}
	return 0;
}

/* cfg->transport.path is absolute: config allows no other. */
static void *
sendmail_open(const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct sendmail *s;
	size_t i;

	if (program_ok(cfg->transport.path, err, errsz) == -1)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	strlcpy(s->path, cfg->transport.path, sizeof(s->path));
	s->nargs = cfg->transport.nargs;
	for (i = 0; i < s->nargs; i++)
		strlcpy(s->args[i], cfg->transport.args[i], sizeof(s->args[i]));
	s->timeout = cfg->delivery_timeout;
	return s;
}

/* Temporary per sendmail's convention (and Postfix's sys_exits table). */
static int
exit_is_temporary(int code)
{
	switch (code) {
	case EX_TEMPFAIL:
	case EX_OSERR:
	case EX_OSFILE:
	case EX_CANTCREAT:
	case EX_IOERR:
	case EX_SOFTWARE:
	case EX_CONFIG:
		return 1;
	}
	return 0;
}

/* The argument vector, built before fork(): the child may not malloc. */
static const char **
make_argv(const struct sendmail *s, const struct transport_msg *m,
    const struct transport_rcpt *r, size_t n)
{
	const char **argv;
	size_t i, k = 0;

	argv = calloc(SENDMAIL_FIXED_ARGV + s->nargs + n, sizeof(*argv));
	if (argv == NULL)
		return NULL;
	argv[k++] = "sendmail";
	for (i = 0; i < s->nargs; i++)
		argv[k++] = s->args[i];
	argv[k++] = "-i";
	argv[k++] = "-f";
	argv[k++] = m->sender;
	argv[k++] = "--";
	for (i = 0; i < n; i++)
		argv[k++] = r[i].addr;
	argv[k] = NULL;
	return argv;
}

/*
 * In the child, async-signal-safe calls only: a group of its own; the
 * signal mask and dispositions of a fresh process (the runner's threads
 * block signals, and an ignored signal stays ignored across exec); stdin
 * the message, stdout /dev/null, stderr the pipe, nothing else open.
 */
static void __attribute__((noreturn))
child(const char *path, const char **argv, int msgfd, int errfd)
{
	struct sigaction dfl;
	sigset_t none;
	int in, out, err, sig;

	(void)setpgid(0, 0);
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);	/* EINVAL for some */
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	/* Above 2 first, so that no dup2() below overwrites a source. */
	if ((in = fcntl(msgfd, F_DUPFD, 3)) == -1 ||
	    (err = fcntl(errfd, F_DUPFD, 3)) == -1 ||
	    (out = open("/dev/null", O_WRONLY)) == -1 ||
	    (out = fcntl(out, F_DUPFD, 3)) == -1 ||
	    dup2(in, STDIN_FILENO) == -1 || dup2(out, STDOUT_FILENO) == -1 ||
	    dup2(err, STDERR_FILENO) == -1)
		_exit(EX_OSERR);
	(void)close_range(3, ~0U, 0);
	execv(path, (char *const *)(uintptr_t)argv);
	_exit(EX_OSERR);
}

/* Keep the first SENDMAIL_ERR_KEEP bytes; drop the rest. */
static void
keep_err(struct run *c, const char *b, size_t n)
{
	size_t room = SENDMAIL_ERR_KEEP - c->errlen;

	if (n > room)
		n = room;
	memcpy(c->err + c->errlen, b, n);
	c->errlen += n;
}

/* Read what the pipe holds; closes it at EOF (or on an error). */
static void
drain_err(struct run *c)
{
	char b[4096];
	ssize_t k;

	while (c->errfd != -1) {
		k = read(c->errfd, b, sizeof(b));
		if (k > 0)
			keep_err(c, b, (size_t)k);
		else if (k == -1 && errno == EINTR)
			continue;
		else if (k == -1 && errno == EAGAIN)
			return;
		else {
			close(c->errfd);
			c->errfd = -1;
		}
	}
}

/* 1 when the child has ended, without reaping it (its pid, and so its
   group's id, stay taken until waitpid()). */
static int
child_ended(const struct run *c)
{
	siginfo_t info;

	memset(&info, 0, sizeof(info));
	if (waitid(P_PID, (id_t)c->pid, &info, WEXITED | WNOHANG | WNOWAIT) ==
	    -1)
		return errno != EINTR;
	return info.si_pid != 0;
}

/* Wait up to ms for stderr or the child's end, reading stderr; 1 when it
   has ended. */
static int
wait_some(struct run *c, long long ms)
{
	struct pollfd p[2];
	nfds_t n = 0;

	if (c->errfd != -1)
		p[n++] = (struct pollfd){ .fd = c->errfd, .events = POLLIN };
	if (c->pidfd != -1)
		p[n++] = (struct pollfd){ .fd = c->pidfd, .events = POLLIN };
	else if (ms > SENDMAIL_NAP_MS)
		ms = SENDMAIL_NAP_MS;
	if (ms < 0)
		ms = 0;
	if (poll(p, n, (int)ms) > 0 && c->errfd != -1 && p[0].revents != 0)
		drain_err(c);
	return child_ended(c);
}

/* The child until it ends or ms have passed; 1 when it has ended. */
static int
wait_until(struct run *c, long long ms)
{
	long long end = util_now_ms() + ms;

	for (;;) {
		if (wait_some(c, end - util_now_ms()))
			return 1;
		if (util_now_ms() >= end)
			return 0;
	}
}

/* Past the deadline: the whole group goes, the child is reaped. */
static void
kill_group(struct run *c)
{
	(void)kill(-c->pid, SIGTERM);
	(void)wait_until(c, SENDMAIL_GRACE_MS);
	/* Whatever of the group outlived the grace (or ignores SIGTERM);
	   the unreaped child keeps the group's id from reuse. */
	(void)kill(-c->pid, SIGKILL);
}

/* Reap the child: its wait status, or -1. */
static int
reap(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return status;
}

/*
 * The captured stderr as one line: blanks and line ends become single
 * spaces, other control characters and non-ASCII bytes '?', no blank at
 * either end (it goes into last_error, a log line and JSON).
 */
static void
err_line(const struct run *c, char *out, size_t outsz)
{
	size_t i, k = 0;
	unsigned char ch;

	for (i = 0; i < c->errlen && k + 1 < outsz; i++) {
		ch = (unsigned char)c->err[i];
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
			if (k > 0 && out[k - 1] != ' ')
				out[k++] = ' ';
		} else
			out[k++] = ch < ' ' || ch >= 0x7f ? '?' : (char)ch;
	}
	while (k > 0 && out[k - 1] == ' ')
		k--;
	out[k] = '\0';
}

/* Status to result: r[] set, the reply naming the cause and stderr. */
static void
set_result(struct transport_rcpt *r, size_t n, const struct run *c,
    int status, int timed_out, long timeout)
{
	char what[128], line[SENDMAIL_ERR_KEEP + 1], reply[TRANSPORT_REPLY_MAX];
	enum outcome res = OUTCOME_TEMP;

	if (timed_out)
		snprintf(what, sizeof(what), "sendmail timed out after %lds",
		    timeout);
	else if (status == -1 || !WIFEXITED(status))
		snprintf(what, sizeof(what), "sendmail killed by signal %d",
		    status != -1 && WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	else {
		snprintf(what, sizeof(what), "sendmail exit %d",
		    WEXITSTATUS(status));
		res = WEXITSTATUS(status) == 0 ? OUTCOME_OK :
		    exit_is_temporary(WEXITSTATUS(status)) ? OUTCOME_TEMP :
		    OUTCOME_PERM;
	}
	err_line(c, line, sizeof(line));
	/* Cut to the reply's size: the start of stderr says most. */
	strlcpy(reply, what, sizeof(reply));
	if (line[0] != '\0') {
		strlcat(reply, ": ", sizeof(reply));
		strlcat(reply, line, sizeof(reply));
	}
	transport_set_all(r, n, res, reply);
}

/* fork() and the pipe; the child never returns. 0, or -1 with errno. */
static int
start(struct run *c, const char *path, const char **argv, int msgfd)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if ((c->pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (c->pid == 0)
		child(path, argv, msgfd, p[1]);
	/* Here as well as in the child: whichever runs first, the group
	   exists before kill_group() could need it (EACCES once the child
	   has exec'd: it did its own). */
	(void)setpgid(c->pid, c->pid);
	close(p[1]);
	c->errfd = p[0];
	(void)fcntl(c->errfd, F_SETFL, O_NONBLOCK);
	c->pidfd = pidfd_open(c->pid, 0);
	return 0;
}

static enum transport_status
sendmail_deliver(void *state, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n)
{
	struct sendmail *s = state;
	struct run c = { .pid = -1, .pidfd = -1, .errfd = -1 };
	char reply[TRANSPORT_REPLY_MAX];
	const char **argv;
	int status, timed_out;

	if ((argv = make_argv(s, m, r, n)) == NULL ||
	    lseek(m->fd, 0, SEEK_SET) == -1 ||
	    start(&c, s->path, argv, m->fd) == -1) {
		snprintf(reply, sizeof(reply), "cannot run sendmail: %s",
		    strerror(errno));
		transport_set_all(r, n, OUTCOME_TEMP, reply);
		free(argv);
		return TRANSPORT_ANSWERED;
	}
	free(argv);
	timed_out = !wait_until(&c, (long long)s->timeout * 1000);
	if (timed_out)
		kill_group(&c);
	drain_err(&c);			/* what is left of it, not waiting */
	status = reap(c.pid);
	set_result(r, n, &c, status, timed_out, s->timeout);
	if (c.errfd != -1)
		close(c.errfd);
	if (c.pidfd != -1)
		close(c.pidfd);
	return TRANSPORT_ANSWERED;
}

static void
sendmail_close(void *state)
{
	free(state);
}

const struct transport_ops transport_sendmail_ops = {
	.open = sendmail_open,
	.deliver = sendmail_deliver,
	.close = sendmail_close,
};
