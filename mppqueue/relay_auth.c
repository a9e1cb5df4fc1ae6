/*
 * relay_auth — the logins of smtp_auth_file. See relay_auth.h.
 *
 * The file is read once per transport (each delivery thread opens its
 * own), through one descriptor whose mode is checked before a byte is
 * read: a password that others could read is refused rather than used.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <bsd/string.h>

#include "relay_auth.h"
#include "util.h"

/* One field of a line: from p, up to a blank or the end. */
static size_t
field_len(const char *p)
{
	return strcspn(p, " \t");
}

static const char *
skip_blanks(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Nonzero when s holds a control byte (a tab only between fields). */
static int
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return 1;
		else if (*s == 0x7f)
			return 1;
	return 0;
}

/* HOST[:PORT] or "*" into e; -1 when malformed. */
static int
parse_host(const char *p, size_t len, struct relay_auth_entry *e)
{
	if (len == 1 && p[0] == '*') {
		strlcpy(e->host, "*", sizeof(e->host));
		e->port = 0;
		return 0;
	}
	return config_split_hostport(p, len, e->host, sizeof(e->host),
	    &e->port, 0);
}

/* Copy a credential of len bytes; -1 when empty or too long. */
static int
take_cred(char *dst, size_t dstsz, const char *p, size_t len)
{
	if (len == 0 || len >= dstsz)
		return -1;
	memcpy(dst, p, len);
	dst[len] = '\0';
	return 0;
}

/*
 * One line that is neither blank nor a comment into e; -1 with the
 * reason (never the password) in why.
 */
static int
parse_line(const char *line, struct relay_auth_entry *e, const char **why)
{
	const char *p = skip_blanks(line), *user;
	size_t n, ulen, plen;

	if (has_control(line)) {
		*why = "control character";
		return -1;
	}
	n = field_len(p);
	if (parse_host(p, n, e) == -1) {
		*why = "bad HOST[:PORT]";
		return -1;
	}
	user = skip_blanks(p + n);
	ulen = field_len(user);
	p = skip_blanks(user + ulen);
	plen = strlen(p);
	while (plen > 0 && (p[plen - 1] == ' ' || p[plen - 1] == '\t'))
		plen--;
	if (ulen == 0 || plen == 0) {
		*why = "expected \"HOST[:PORT] USER PASSWORD\"";
		return -1;
	}
	if (take_cred(e->user, sizeof(e->user), user, ulen) == -1 ||
	    take_cred(e->pass, sizeof(e->pass), p, plen) == -1) {
		*why = "user or password too long";
		return -1;
	}
	return 0;
}

static const struct relay_auth_entry *
find_exact(const struct relay_auth *a, const char *host, int port)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (a->e[i].port == port && strcasecmp(a->e[i].host, host) == 0)
			return &a->e[i];
	return NULL;
}

const struct relay_auth_entry *
relay_auth_find(const struct relay_auth *a, const char *host, int port)
{
	const struct relay_auth_entry *e;

	if (a == NULL)
		return NULL;
	if ((e = find_exact(a, host, port)) != NULL ||
	    (e = find_exact(a, host, 0)) != NULL)
		return e;
	return find_exact(a, "*", 0);
}

/* Add e to a, refusing a second line for the same relay. */
static int
add_entry(struct relay_auth *a, const struct relay_auth_entry *e,
    const char **why)
{
	if (find_exact(a, e->host, e->port) != NULL) {
		*why = "a second line for this relay";
		return -1;
	}
	if (a->n == RELAY_AUTH_ENTRIES_MAX) {
		*why = "too many lines";
		return -1;
	}
	a->e[a->n++] = *e;
	return 0;
}

/* Read every line of fp into a; -1 with err naming path:line. */
static int
read_lines(FILE *fp, const char *path, struct relay_auth *a, char *err,
    size_t errsz)
{
	char line[RELAY_AUTH_LINE_MAX + 1];
	struct relay_auth_entry e;
	const char *why = NULL, *p;
	int lineno = 0, rc = 0;

	while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp))
			why = "line too long";
		else {
			line[strcspn(line, "\r\n")] = '\0';
			p = skip_blanks(line);
			if (*p == '\0' || *p == '#')
				continue;
			memset(&e, 0, sizeof(e));
			if (parse_line(p, &e, &why) == 0)
				(void)add_entry(a, &e, &why);
		}
		if (why != NULL) {
			util_format(err, errsz, "%s:%d: %s", path, lineno, why);
			rc = -1;
		}
	}
	explicit_bzero(line, sizeof(line));
	explicit_bzero(&e, sizeof(e));
	if (rc == 0 && ferror(fp)) {
		util_format(err, errsz, "%s: read error", path);
		rc = -1;
	}
	return rc;
}

/* Open path for reading, refused when its group or others have access. */
static FILE *
open_private(const char *path, char *err, size_t errsz)
{
	struct stat st;
	FILE *fp;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		util_format(err, errsz, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		util_format(err, errsz, "%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		util_format(err, errsz, "%s holds passwords and is open to %s "
		    "(mode %04o): make it 0600", path, st.st_mode & S_IRWXO ?
		    "others" : "its group", (unsigned)(st.st_mode & 07777));
		close(fd);
		return NULL;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		util_format(err, errsz, "%s: %s", path, strerror(errno));
		close(fd);
	}
	return fp;
}

int
relay_auth_load(const char *path, struct relay_auth **out, char *err,
    size_t errsz)
{
	struct relay_auth *a;
	FILE *fp;
	int rc;

	*out = NULL;
	if ((fp = open_private(path, err, errsz)) == NULL)
		return -1;
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->e = calloc(RELAY_AUTH_ENTRIES_MAX, sizeof(*a->e))) == NULL) {
		util_format(err, errsz, "out of memory");
		free(a);
		fclose(fp);
		return -1;
	}
	rc = read_lines(fp, path, a, err, errsz);
	fclose(fp);
	if (rc == -1) {
		relay_auth_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

void
relay_auth_free(struct relay_auth *a)
{
	if (a == NULL)
		return;
	if (a->e != NULL) {
		explicit_bzero(a->e, RELAY_AUTH_ENTRIES_MAX * sizeof(*a->e));
		free(a->e);
	}
	free(a);
}

int
relay_auth_check(const struct mpp_config *cfg, char *err, size_t errsz)
{
	struct relay_auth *a;

	if ((cfg->transport.kind != CONFIG_TRANSPORT_smtp &&
	    cfg->transport.kind != CONFIG_TRANSPORT_smtps) ||
	    cfg->smtp_auth_file[0] == '\0')
		return 0;
	if (relay_auth_load(cfg->smtp_auth_file, &a, err, errsz) == -1)
		return -1;
	relay_auth_free(a);
	return 0;
}

int
relay_auth_base64(const char *s, size_t n, char *out, size_t outsz)
{
	/* EVP_EncodeBlock writes 4 bytes per 3, and a NUL. */
	if (n > (outsz - 1) / 4 * 3 || n > 3 * 1024)
		return -1;
	(void)EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s,
	    (int)n);
	return 0;
}

int
relay_auth_plain(const struct relay_auth_entry *e, char *out, size_t outsz)
{
	char raw[2 * RELAY_AUTH_CRED_MAX + 2];
	size_t ulen = strlen(e->user), plen = strlen(e->pass);
	int rc;

	raw[0] = '\0';
	memcpy(raw + 1, e->user, ulen);
	raw[1 + ulen] = '\0';
	memcpy(raw + 2 + ulen, e->pass, plen);
	rc = relay_auth_base64(raw, 2 + ulen + plen, out, outsz);
	explicit_bzero(raw, sizeof(raw));
	return rc;
}
