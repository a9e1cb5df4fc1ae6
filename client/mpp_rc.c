/*
 * mpp_rc — reading ~/.mpprc and the password file. See mpp_rc.h.
 *
 * Both files may hold a password, so they are read through a stdio buffer
 * of our own, wiped after use, and their permissions are checked on the
 * open descriptor (not the path, which could change in between).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/string.h>

#include "config.h"
#include "mpp_rc.h"

static void set_err(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Format an error; one cut to fit still names file and line first. */
static void
set_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	if (n < 0 && errsz > 0)
		strlcpy(err, "error message could not be formatted", errsz);
}

void
mpp_rc_init(struct mpp_rc *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->pw_source = MPP_RC_PW_NONE;
	rc->tls = -1;
}

void
mpp_rc_clear(struct mpp_rc *rc)
{
	explicit_bzero(rc->password, sizeof(rc->password));
}

int
mpp_rc_parse_timeout(const char *s, int *out)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > MPP_RC_TIMEOUT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

int
mpp_rc_parse_yesno(const char *s, int *out)
{
	if (strcasecmp(s, "yes") == 0 || strcmp(s, "1") == 0)
		*out = 1;
	else if (strcasecmp(s, "no") == 0 || strcmp(s, "0") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

/* Trim blanks from both ends of [*s, *e). */
static void
trim(const char **s, const char **e)
{
	while (*s < *e && isblank((unsigned char)**s))
		(*s)++;
	while (*e > *s && isblank((unsigned char)(*e)[-1]))
		(*e)--;
}

/* Copy value into dst, expanding a leading "~/" when home is given. */
static int
copy_path(char *dst, size_t size, const char *value, const char *home)
{
	int n;

	if (home == NULL || strncmp(value, "~/", 2) != 0)
		return strlcpy(dst, value, size) < size ? 0 : -1;
	n = snprintf(dst, size, "%s/%s", home, value + 2);
	return n >= 0 && (size_t)n < size ? 0 : -1;
}

/* Store value under key; -1 with a reason when key or value is bad. */
static int
set_key(struct mpp_rc *rc, const char *key, const char *value,
    const char *home, char *err, size_t errsz)
{
	int r = 0;

	if (strcmp(key, "server") == 0)
		r = strlcpy(rc->server, value, sizeof(rc->server)) <
		    sizeof(rc->server) ? 0 : -1;
	else if (strcmp(key, "user") == 0)
		r = strlcpy(rc->user, value, sizeof(rc->user)) <
		    sizeof(rc->user) ? 0 : -1;
	else if (strcmp(key, "password") == 0) {
		r = strlcpy(rc->password, value, sizeof(rc->password)) <
		    sizeof(rc->password) ? 0 : -1;
		rc->holds_password = 1;
		rc->pw_source = MPP_RC_PW_LITERAL;
	} else if (strcmp(key, "password_file") == 0) {
		r = copy_path(rc->password_file, sizeof(rc->password_file),
		    value, home);
		rc->pw_source = MPP_RC_PW_FILE;
	} else if (strcmp(key, "ca") == 0) {
		r = copy_path(rc->ca, sizeof(rc->ca), value, home);
	} else if (strcmp(key, "tls") == 0) {
		if (mpp_rc_parse_yesno(value, &rc->tls) == -1) {
			set_err(err, errsz, "tls must be yes or no");
			return -1;
		}
	} else if (strcmp(key, "timeout") == 0) {
		if (mpp_rc_parse_timeout(value, &rc->timeout) == -1) {
			set_err(err, errsz, "timeout must be whole seconds "
			    "from 1 to %d", MPP_RC_TIMEOUT_MAX);
			return -1;
		}
	} else {
		set_err(err, errsz, "unknown key \"%s\"", key);
		return -1;
	}
	if (r == -1)
		set_err(err, errsz, "value of %s too long", key);
	return r;
}

int
mpp_rc_parse_line(struct mpp_rc *rc, const char *line, const char *home,
    char *err, size_t errsz)
{
	char key[32], value[MPP_RC_VALUE_MAX];
	const char *ks = line, *ke, *vs, *ve = line + config_comment_at(line);
	int r;

	trim(&ks, &ve);
	if (ks == ve)
		return 0;
	if ((vs = memchr(ks, '=', (size_t)(ve - ks))) == NULL) {
		set_err(err, errsz, "expected \"key = value\"");
		return -1;
	}
	ke = vs++;
	trim(&ks, &ke);
	trim(&vs, &ve);
	if (ks == ke || (size_t)(ke - ks) >= sizeof(key)) {
		set_err(err, errsz, "missing or overlong key");
		return -1;
	}
	memcpy(key, ks, (size_t)(ke - ks));
	key[ke - ks] = '\0';
	if (vs == ve || (size_t)(ve - vs) >= sizeof(value)) {
		set_err(err, errsz, "%s needs a value (at most %zu bytes)",
		    key, sizeof(value) - 1);
		return -1;
	}
	memcpy(value, vs, (size_t)(ve - vs));
	value[ve - vs] = '\0';
	r = set_key(rc, key, value, home, err, errsz);
	explicit_bzero(value, sizeof(value));
	return r;
}

/* Read lines from f into rc; -1 with "path:line: reason". */
static int
parse_stream(struct mpp_rc *rc, FILE *f, const char *path, const char *home,
    char *err, size_t errsz)
{
	char line[MPP_RC_LINE_MAX], why[256];
	size_t len;
	int lineno = 0, r = 0;

	while (r == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		len = strlen(line);
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(f)) {
			set_err(err, errsz, "%s:%d: line longer than %d bytes",
			    path, lineno, MPP_RC_LINE_MAX - 2);
			r = -1;
			break;
		}
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if ((r = mpp_rc_parse_line(rc, line, home, why,
		    sizeof(why))) == -1)
			set_err(err, errsz, "%s:%d: %s", path, lineno, why);
	}
	explicit_bzero(line, sizeof(line));
	if (r == 0 && ferror(f)) {
		set_err(err, errsz, "%s: %s", path, strerror(errno));
		r = -1;
	}
	return r;
}

/* A file with a password must be its reader's own and private. */
static int
check_private(int fd, const char *path, char *err, size_t errsz)
{
	struct stat st;

	if (fstat(fd, &st) == -1) {
		set_err(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_uid != getuid()) {
		set_err(err, errsz, "%s holds a password but belongs to "
		    "another user", path);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		set_err(err, errsz, "%s holds a password but others may "
		    "read it (mode %04o): chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* Open path for reading as a stdio stream over a caller's buffer. */
static FILE *
open_private(const char *path, char *iobuf, size_t size, int *errp)
{
	struct stat st;
	FILE *f;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		*errp = errno;
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		*errp = errno;
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		*errp = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		close(fd);
		return NULL;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		*errp = errno;
		close(fd);
		return NULL;
	}
	setvbuf(f, iobuf, _IOFBF, size);
	return f;
}

int
mpp_rc_load(struct mpp_rc *rc, const char *path, int must_exist,
    const char *home, int *loaded, char *err, size_t errsz)
{
	char iobuf[BUFSIZ];
	FILE *f;
	int r, e = 0;

	*loaded = 0;
	if ((f = open_private(path, iobuf, sizeof(iobuf), &e)) == NULL) {
		if (e == ENOENT && !must_exist)
			return 0;
		set_err(err, errsz, "%s: %s", path, strerror(e));
		return -1;
	}
	r = parse_stream(rc, f, path, home, err, errsz);
	if (r == 0 && rc->holds_password)
		r = check_private(fileno(f), path, err, errsz);
	fclose(f);
	explicit_bzero(iobuf, sizeof(iobuf));
	*loaded = r == 0;
	return r;
}

/* The first line of f without its line end into buf; -1 if none fits. */
static int
first_line(FILE *f, char *buf, size_t size)
{
	size_t len;

	if (fgets(buf, (int)size, f) == NULL)
		return -1;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (!feof(f))
		return -1;
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return len > 0 ? 0 : -1;
}

int
mpp_rc_read_password_file(const char *path, char *buf, size_t size,
    int *loose, char *err, size_t errsz)
{
	char iobuf[BUFSIZ];
	struct stat st;
	FILE *f;
	int r, e = 0;

	*loose = 0;
	if ((f = open_private(path, iobuf, sizeof(iobuf), &e)) == NULL) {
		set_err(err, errsz, "password file %s: %s", path,
		    strerror(e));
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
		*loose = 1;
	if ((r = first_line(f, buf, size)) == -1) {
		explicit_bzero(buf, size);
		set_err(err, errsz, "password file %s: %s", path,
		    ferror(f) ? strerror(errno) :
		    "first line empty or too long");
	}
	fclose(f);
	explicit_bzero(iobuf, sizeof(iobuf));
	return r;
}
