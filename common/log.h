/*
 * log — the one logging module: syslog (facility mail), standard error, or
 * a file of the administrator's choosing (the `log` key of mpp.conf). Lines
 * are key=value where they describe an event ("id=... user=alice
 * result=accepted"). Thread-safe: each line is formatted whole, then
 * written with one call; a log file is opened O_APPEND, so several threads
 * and several programs may share it without mixing their lines.
 */
#ifndef MPP_LOG_H
#define MPP_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define LOG_TO_SYSLOG 0
#define LOG_TO_STDERR 1
#define LOG_TO_FILE 2

/* Longest PATH of a "file:PATH" value. */
#define LOG_PATH_MAX 1024

/* Start logging as progname; to is LOG_TO_SYSLOG or LOG_TO_STDERR. */
void log_init(const char *progname, int to, int verbose);
/* Change verbosity (nonzero: log_debug lines are written). */
void log_set_verbose(int verbose);
/* Where lines go now: LOG_TO_SYSLOG, LOG_TO_STDERR or LOG_TO_FILE. */
int log_destination(void);

/*
 * Parse a value of the `log` key: "syslog", "stderr" or "file:PATH" with
 * PATH absolute and shorter than LOG_PATH_MAX. Sets *to and, for a file,
 * *path to PATH inside spec (else NULL). 0, or -1 when malformed.
 */
int log_spec_parse(const char *spec, int *to, const char **path);

/* Flags of log_configure(). */
#define LOG_EARLY	0x01	/* before the privilege drop: no file yet */
#define LOG_NOCREATE	0x02	/* a missing log file is an error */
#define LOG_QUIET	0x04	/* no warning on stderr about syslog */

/*
 * Send lines to `to` (LOG_TO_SYSLOG, LOG_TO_STDERR, or LOG_TO_FILE with
 * path). syslog: opened, with a
 * warning on stderr when nothing listens on /dev/log. A file is opened by
 * the calling user, so the daemons call this after dropping privileges
 * (with LOG_EARLY before it, lines go to stderr until then): O_APPEND,
 * created mode 0640 unless LOG_NOCREATE; a symbolic link or anything but
 * a regular file is refused. Asking for the current destination again
 * changes nothing. 0, or -1 with err (the destination is then unchanged).
 */
int log_use(int to, const char *path, int flags, char *err, size_t errsz);

/* log_use() for a `log` value, spec; -1 with err when it is malformed. */
int log_configure(const char *spec, int flags, char *err, size_t errsz);

/*
 * Open the log file again by its name, for logrotate: lines after the call
 * go to the file now at the path, created if missing. Call it from the
 * main loop, never from a signal handler. Without a log file it does
 * nothing. On failure the old file is kept and a line in it says why.
 * Returns 0 or -1.
 */
int log_reopen(void);

/* If sig reopens the log (SIGHUP, SIGUSR1), log_reopen() and return 1;
   0 for any other signal. */
int log_reopen_signal(int sig);

/*
 * 0 when a syslog daemon listens on /dev/log; -1 with the reason in why
 * (whysz bytes) when lines sent to syslog would be lost.
 */
int log_syslog_check(char *why, size_t whysz);

/*
 * daemon(3) for the daemons: chdir to /, leave the terminal; standard
 * input and output go to /dev/null, and so does standard error unless
 * lines are logged there. 0, or -1 with errno.
 */
int log_daemon(void);

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
