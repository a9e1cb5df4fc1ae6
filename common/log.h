/*
 * log — the one logging module: syslog (facility mail) for daemons, stderr
 * in the foreground. Lines are key=value where they describe an event
 * ("id=... user=alice result=accepted"). Thread-safe: each line is formatted
 * whole, then written with one call.
 */
#ifndef MPP_LOG_H
#define MPP_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define LOG_TO_SYSLOG 0
#define LOG_TO_STDERR 1

/* Start logging as progname; to is LOG_TO_SYSLOG or LOG_TO_STDERR. */
void log_init(const char *progname, int to, int verbose);
/* Change verbosity (nonzero: log_debug lines are written). */
void log_set_verbose(int verbose);

/* Error with strerror(errno) appended. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Error without errno. */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log, then exit(code): the sysexits code that fits the failure. */
void fatal(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
void fatalx(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/*
 * Copy untrusted text into dst (size dstsz, always NUL-terminated) so that it
 * is safe in a log line: printable ASCII other than backslash and '"' is kept,
 * everything else becomes \xNN; at most srclen bytes are read. Returns dst.
 */
char *log_escape(char *dst, size_t dstsz, const char *src, size_t srclen);

#endif
