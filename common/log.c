/*
 * log — formatting and writing of log lines. The destination is chosen once
 * at start; the only mutable state is that choice and the verbosity.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 2048

static int log_to = LOG_TO_STDERR;
static int log_verbose;
static const char *log_progname = "mpp";

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

/* Write one finished line: one write(2) so threads never interleave. */
static void
log_emit(int prio, const char *msg)
{
	char line[LOG_LINE_MAX + 64];
	struct timespec ts;
	struct tm tm;
	int n;

	if (log_to == LOG_TO_SYSLOG) {
		syslog(prio, "%s", msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_progname,
	    (long)getpid(), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	(void)!write(STDERR_FILENO, line, (size_t)n);
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
	   terminal too, not only syslog. */
	if (prio == LOG_CRIT && log_to == LOG_TO_SYSLOG)
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
