/*
 * util — small helpers with no better home: dates in mail formats, whole
 * writes, the monotonic clock, bounded formatting, privilege drop. System-like functions return 0 / -1 with errno.
 */
#ifndef MPP_UTIL_H
#define MPP_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* "Thu, 26 Nov 2026 16:40:00 +0000" (RFC 5322 date-time, UTC, C locale). */
void util_mail_date(time_t t, char *out, size_t outsz);
/* "2026-11-26T16:40:00Z" (RFC 3339, UTC). */
void util_rfc3339(time_t t, char *out, size_t outsz);

/* write(2) until all of p is written; retries EINTR. */
int util_write_all(int fd, const void *p, size_t n);

/* Monotonic clock in milliseconds: the one clock deadlines are set on. */
long long util_now_ms(void);

/*
 * snprintf into buf of size bytes; a text cut to fit ends in "..." (it
 * says so rather than ending mid-word); a format error leaves a fixed
 * text. buf is always a string afterwards (size > 0).
 */
void util_format(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* util_format() with a va_list. */
void util_vformat(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * Drop root to user (setgroups, setresgid, setresuid) and verify it cannot
 * be regained. Returns 0, or -1 with a message in err.
 */
int util_drop_privileges(const char *user, char *err, size_t errsz);

/* Look up user's uid/gid; -1 when there is no such user. */
int util_user_ids(const char *user, uid_t *uid, gid_t *gid);

/*
 * Compare n bytes in time that depends only on n: 0 when equal. (libbsd
 * 0.11 in Debian 12 has no timingsafe_bcmp.)
 */
int util_timingsafe_bcmp(const void *a, const void *b, size_t n);

/* Case-insensitive ASCII comparison of two NUL-terminated strings. */
int util_strcaseeq(const char *a, const char *b);

#endif
