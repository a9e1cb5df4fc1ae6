/*
 * log — formatting and writing of log lines. The destination is chosen at
 * start (log_init, then log_configure once the configuration is read); the
 * only mutable state is that choice, the verbosity and, for a log file, its
 * descriptor, which log_reopen() points at a new file with dup3(2): the
 * number never changes, so threads writing at that moment need no lock.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"

#define LOG_LINE_MAX 2048
#define LOG_HOST_MAX 64
/* Room for the time stamp, host, program name and pid before a message. */
#define LOG_PREFIX_MAX (48 + LOG_HOST_MAX + 64)

static int log_to = LOG_TO_STDERR;
static int log_verbose;
static const char *log_progname = "mpp";
static int log_fd = -1;			/* the log file, LOG_TO_FILE */
static int log_create = 1;		/* log_reopen() may create it */
static int log_warned;			/* the syslog warning was given */
static char log_path[LOG_PATH_MAX];
static char log_host[LOG_HOST_MAX];

void
log_init(const char *progname, int to, int verbose)
{
	log_progname = progname;
	log_to = to;
	log_verbose = verbose;
	if (to == LOG_TO_SYSLOG)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_verbose(int verbose)
{
	log_verbose = verbose;
}

int
log_destination(void)
{
	return log_to;
}

int
log_spec_parse(const char *spec, int *to, const char **path)
{
	size_t n;

	*path = NULL;
	if (strcmp(spec, "syslog") == 0)
		*to = LOG_TO_SYSLOG;
	else if (strcmp(spec, "stderr") == 0)
		*to = LOG_TO_STDERR;
	else if (strncmp(spec, "file:", 5) == 0 && spec[5] == '/' &&
	    (n = strlen(spec + 5)) < LOG_PATH_MAX && spec[5 + n - 1] != '/') {
		*to = LOG_TO_FILE;
		*path = spec + 5;
	} else
		return -1;
	return 0;
}

int
log_syslog_check(char *why, size_t whysz)
{
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };
	struct sockaddr_un sa;
	size_t i;
	int fd, rc = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strlcpy(sa.sun_path, _PATH_LOG, sizeof(sa.sun_path));
	/* As syslog(3) does: a datagram socket, else a stream one. */
	for (i = 0; i < sizeof(types) / sizeof(types[0]) && rc == -1; i++) {
		if ((fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0)) == -1)
			break;
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (rc == -1 && errno != EPROTOTYPE)
			break;
	}
	if (rc == -1)
		snprintf(why, whysz, "%s: %s", _PATH_LOG, strerror(errno));
	return rc;
}

/*
 * Open a log file for appending. O_NOFOLLOW and the regular-file check
 * keep a program from writing its lines through a link someone else
 * planted; O_NONBLOCK keeps a FIFO from hanging the open. The descriptor
 * is kept above standard error, which daemon(3) replaces.
 */
static int
open_log_file(const char *path, int create, char *err, size_t errsz)
{
	struct stat st;
	int fd, up;

	fd = open(path, O_WRONLY | O_APPEND | O_NOCTTY | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC | (create ? O_CREAT : 0), 0640);
	if (fd == -1) {
		snprintf(err, errsz, "log file %s: %s", path, errno == ELOOP ?
		    "is a symbolic link" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "log file %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (fd <= STDERR_FILENO) {
		up = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
		close(fd);
		if ((fd = up) == -1)
			snprintf(err, errsz, "log file %s: %s", path,
			    strerror(errno));
	}
	return fd;
}

/* The short host name, as syslog daemons write it. */
static void
set_host(void)
{
	if (gethostname(log_host, sizeof(log_host)) == -1)
		strlcpy(log_host, "localhost", sizeof(log_host));
	log_host[sizeof(log_host) - 1] = '\0';
	log_host[strcspn(log_host, ".")] = '\0';
}

/* Leave the current destination for to (not a file). */
static void
switch_to(int to)
{
	if (log_to == to)
		return;
	if (log_to == LOG_TO_SYSLOG)
		closelog();
	if (log_fd != -1) {
		close(log_fd);
		log_fd = -1;
	}
	log_to = to;
	if (to == LOG_TO_SYSLOG)
		openlog(log_progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static int
use_file(const char *path, int create, char *err, size_t errsz)
{
	int fd;

	if (log_to == LOG_TO_FILE && strcmp(path, log_path) == 0)
		return 0;
	if ((fd = open_log_file(path, create, err, errsz)) == -1)
		return -1;
	switch_to(LOG_TO_STDERR);
	set_host();
	strlcpy(log_path, path, sizeof(log_path));
	log_fd = fd;
	log_create = create;
	log_to = LOG_TO_FILE;
	return 0;
}

/* A container or chroot without a syslog daemon would lose every line
   without a word: say so once, where the administrator looks. */
static void
warn_syslog(void)
{
	char why[256];

	if (log_warned || log_syslog_check(why, sizeof(why)) == 0)
		return;
	log_warned = 1;
	fprintf(stderr, "%s: warning: %s: lines logged to syslog are lost; "
	    "set log = file:PATH or log = stderr in mpp.conf\n", log_progname,
	    why);
}

int
log_configure(const char *spec, int flags, char *err, size_t errsz)
{
	const char *path;
	int to;

	if (log_spec_parse(spec, &to, &path) == -1) {
		snprintf(err, errsz, "log: bad value \"%s\"", spec);
		return -1;
	}
	return log_use(to, path, flags, err, errsz);
}

int
log_use(int to, const char *path, int flags, char *err, size_t errsz)
{
	if (to == LOG_TO_FILE && !(flags & LOG_EARLY))
		return use_file(path, !(flags & LOG_NOCREATE), err, errsz);
	switch_to(to == LOG_TO_FILE ? LOG_TO_STDERR : to);
	if (to == LOG_TO_SYSLOG && !(flags & LOG_QUIET))
		warn_syslog();
	return 0;
}

int
log_reopen(void)
{
	char err[LOG_PATH_MAX + 64];
	int fd, saved;

	if (log_to != LOG_TO_FILE)
		return 0;
	if ((fd = open_log_file(log_path, log_create, err,
	    sizeof(err))) == -1) {
		log_warnx("%s; still writing to the old one", err);
		return -1;
	}
	if (dup3(fd, log_fd, O_CLOEXEC) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		log_warn("log file %s: cannot reopen", log_path);
		return -1;
	}
	close(fd);
	log_info("log file reopened");
	return 0;
}

int
log_reopen_signal(int sig)
{
	if (sig != SIGHUP && sig != SIGUSR1)
		return 0;
	(void)log_reopen();
	return 1;
}

int
log_daemon(void)
{
	int keep = log_to == LOG_TO_STDERR, fd;

	if (daemon(0, keep) == -1)
		return -1;
	if (!keep)
		return 0;
	if ((fd = open("/dev/null", O_RDWR)) == -1)
		return -1;
	if (dup2(fd, STDIN_FILENO) == -1 || dup2(fd, STDOUT_FILENO) == -1) {
		if (fd > STDERR_FILENO)
			close(fd);
		return -1;
	}
	if (fd > STDERR_FILENO)
		close(fd);
	return 0;
}

/* Write one finished line: one write(2) so threads never interleave. */
static void
log_emit(int prio, const char *msg)
{
	char line[LOG_PREFIX_MAX + LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	int n, fd;

	if (log_to == LOG_TO_SYSLOG) {
		syslog(prio, "%s", msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* A file gets a syslog daemon's line: time, host, program[pid]. */
	n = snprintf(line, sizeof(line) - 1,
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ%s%s %s[%ld]: %s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
	    log_to == LOG_TO_FILE ? " " : "",
	    log_to == LOG_TO_FILE ? log_host : "", log_progname,
	    (long)getpid(), msg);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;	/* cut, but still one line */
	line[n++] = '\n';
	fd = log_to == LOG_TO_FILE ? log_fd : STDERR_FILENO;
	while (write(fd, line, (size_t)n) == -1 && errno == EINTR)
		;
}

static void log_vemit(int, const char *, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

static void
log_vemit(int prio, const char *errstr, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	size_t len;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (errstr != NULL) {
		len = strlen(msg);
		snprintf(msg + len, sizeof(msg) - len, ": %s", errstr);
	}
	log_emit(prio, msg);
	/* A fatal error before daemonising must reach the administrator's
	   terminal too, not only syslog or the log file. */
	if (prio == LOG_CRIT && log_to != LOG_TO_STDERR)
		fprintf(stderr, "%s: %s\n", log_progname, msg);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	char errbuf[128];
	const char *err = strerror_r(errno, errbuf, sizeof(errbuf));

	va_start(ap, fmt);
	log_vemit(LOG_ERR, err, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_ERR, NULL, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	log_vemit(LOG_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

void
fatal(int code, const char *fmt, ...)
{
	va_list ap;
	char errbuf[128];
	const char *err = strerror_r(errno, errbuf, sizeof(errbuf));

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, err, fmt, ap);
	va_end(ap);
	exit(code);
}

void
fatalx(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, NULL, fmt, ap);
	va_end(ap);
	exit(code);
}

char *
log_escape(char *dst, size_t dstsz, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;
	unsigned char c;

	if (dstsz == 0)
		return dst;
	for (i = 0; i < srclen; i++) {
		c = (unsigned char)src[i];
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
			if (o + 1 >= dstsz)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dstsz)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}
