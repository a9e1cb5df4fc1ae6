/*
 * transport_sendmail — the message on the stdin of
 * execv(PATH, {"sendmail", "-i", "-f", SENDER, "--", RCPT...}). No shell;
 * "--" ends the options, so a recipient starting with "-" stays a
 * recipient. Exit 0 is done; the temporary sysexits (and a signal or a
 * timeout) retry; any other exit fails every recipient.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "transport.h"

struct sendmail {
	char path[CONFIG_STR_MAX];
	long timeout;
};

/* cfg->transport.path is absolute: config allows no other. */
static void *
sendmail_open(const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct sendmail *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	strlcpy(s->path, cfg->transport.path, sizeof(s->path));
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

static void __attribute__((noreturn))
child(const struct sendmail *s, const struct transport_msg *m,
    const struct transport_rcpt *r, size_t n)
{
	const char **argv = calloc(n + 6, sizeof(*argv));
	size_t i, k = 0;

	if (argv == NULL || lseek(m->fd, 0, SEEK_SET) == -1 ||
	    dup2(m->fd, STDIN_FILENO) == -1)
		_exit(EX_OSERR);
	argv[k++] = "sendmail";
	argv[k++] = "-i";
	argv[k++] = "-f";
	argv[k++] = m->sender;
	argv[k++] = "--";
	for (i = 0; i < n; i++)
		argv[k++] = r[i].addr;
	argv[k] = NULL;
	execv(s->path, (char *const *)(uintptr_t)argv);
	_exit(EX_OSERR);
}

/* Wait for pid until the deadline; kill it past that. */
static int
wait_deadline(pid_t pid, long timeout, int *timed_out)
{
	struct timespec nap = { 0, 10 * 1000 * 1000 };
	time_t end = time(NULL) + timeout;
	int status;
	pid_t w;

	*timed_out = 0;
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return status;
		if (w == -1 && errno != EINTR)
			return -1;
		if (time(NULL) >= end) {
			*timed_out = 1;
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			return status;
		}
		nanosleep(&nap, NULL);
	}
}

static enum transport_status
sendmail_deliver(void *state, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n)
{
	struct sendmail *s = state;
	char reply[TRANSPORT_REPLY_MAX];
	int status, timed_out;
	pid_t pid;

	if ((pid = fork()) == -1) {
		snprintf(reply, sizeof(reply), "fork: %s", strerror(errno));
		transport_set_all(r, n, OUTCOME_TEMP, reply);
		return TRANSPORT_ANSWERED;
	}
	if (pid == 0)
		child(s, m, r, n);
	status = wait_deadline(pid, s->timeout, &timed_out);
	if (timed_out) {
		snprintf(reply, sizeof(reply), "sendmail timed out after %lds",
		    s->timeout);
		transport_set_all(r, n, OUTCOME_TEMP, reply);
	} else if (status == -1 || !WIFEXITED(status)) {
		snprintf(reply, sizeof(reply), "sendmail killed by signal %d",
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		transport_set_all(r, n, OUTCOME_TEMP, reply);
	} else if (WEXITSTATUS(status) == 0)
		transport_set_all(r, n, OUTCOME_OK, "sendmail exit 0");
	else {
		snprintf(reply, sizeof(reply), "sendmail exit %d",
		    WEXITSTATUS(status));
		transport_set_all(r, n, exit_is_temporary(WEXITSTATUS(status)) ?
		    OUTCOME_TEMP : OUTCOME_PERM, reply);
	}
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
