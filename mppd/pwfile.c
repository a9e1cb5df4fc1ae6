/*
 * pwfile — parsing and atomic rewriting of the password file, the
 * crypt(3) calls (crypt_rn with a per-call work area, so any thread may
 * verify at once), and the cost classes of hashes, which let the file
 * backend make every refusal cost the same (see auth.c).
 */
#include <assert.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "pwfile.h"
#include "sha512crypt.h"
#include "util.h"

_Static_assert(PWFILE_HASH_MAX == CRYPT_OUTPUT_SIZE,
    "PWFILE_HASH_MAX is crypt(3)'s longest output");

int
pwfile_user_valid(const char *user)
{
	size_t i, n = strlen(user);

	if (n == 0 || n > PWFILE_USER_MAX || user[0] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)user[i] <= 0x20 ||
		    (unsigned char)user[i] >= 0x7f || user[i] == ':')
			return 0;
	return 1;
}

static int
entry_fill(struct pwfile_entry *e, const char *line)
{
	const char *colon, *end;

	memset(e, 0, sizeof(*e));
	if ((e->line = strdup(line)) == NULL)
		return -1;
	if (line[0] == '#' || line[0] == '\0' ||
	    (colon = strchr(line, ':')) == NULL)
		return 0;
	end = strchr(colon + 1, ':');
	if (end == NULL)
		end = colon + strlen(colon);
	e->user = strndup(line, (size_t)(colon - line));
	e->hash = strndup(colon + 1, (size_t)(end - colon - 1));
	return e->user != NULL && e->hash != NULL ? 0 : -1;
}

static int
pwfile_push(struct pwfile *pf, const char *line)
{
	struct pwfile_entry *grown;

	grown = reallocarray(pf->e, pf->n + 1, sizeof(*pf->e));
	if (grown == NULL)
		return -1;
	pf->e = grown;
	if (entry_fill(&pf->e[pf->n], line) == -1) {
		free(pf->e[pf->n].line);
		free(pf->e[pf->n].user);
		free(pf->e[pf->n].hash);
		return -1;
	}
	pf->n++;
	return 0;
}

static int
pwfile_read(struct pwfile *pf, FILE *fp, const char *path, char *err,
    size_t errsz)
{
	char line[PWFILE_LINE_MAX];
	size_t len;
	int lineno = 0;

	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		len = strlen(line);
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(fp)) {
			snprintf(err, errsz, "%s:%d: line too long", path,
			    lineno);
			return -1;
		}
		if (pwfile_push(pf, line) == -1) {
			snprintf(err, errsz, "%s: out of memory", path);
			return -1;
		}
	}
	if (ferror(fp)) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
pwfile_load(struct pwfile *pf, const char *path, int missing_ok, char *err,
    size_t errsz)
{
	struct stat st;
	FILE *fp;
	int rc;

	memset(pf, 0, sizeof(*pf));
	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT && missing_ok)
			return 0;
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) == 0 && (st.st_mode & S_IROTH))
		pf->world_readable = 1;
	rc = pwfile_read(pf, fp, path, err, errsz);
	fclose(fp);
	if (rc == -1)
		pwfile_free(pf);
	return rc;
}

/* Index of user's entry, or pf->n when there is none. */
static size_t
pwfile_index(const struct pwfile *pf, const char *user)
{
	size_t i;

	for (i = 0; i < pf->n; i++)
		if (pf->e[i].user != NULL && strcmp(pf->e[i].user, user) == 0)
			break;
	return i;
}

const struct pwfile_entry *
pwfile_find(const struct pwfile *pf, const char *user)
{
	size_t i = pwfile_index(pf, user);

	return i < pf->n ? &pf->e[i] : NULL;
}

int
pwfile_set(struct pwfile *pf, const char *user, const char *hash)
{
	char line[PWFILE_LINE_MAX];
	struct pwfile_entry *old;

	if ((size_t)snprintf(line, sizeof(line), "%s:%s", user, hash) >=
	    sizeof(line))
		return -1;
	if (pwfile_index(pf, user) == pf->n)
		return pwfile_push(pf, line);
	old = &pf->e[pwfile_index(pf, user)];
	free(old->line);
	free(old->user);
	free(old->hash);
	return entry_fill(old, line);
}

int
pwfile_del(struct pwfile *pf, const char *user)
{
	size_t i = pwfile_index(pf, user);
	struct pwfile_entry *e;

	if (i == pf->n)
		return -1;
	e = &pf->e[i];
	free(e->line);
	free(e->user);
	free(e->hash);
	memmove(&pf->e[i], &pf->e[i + 1], (pf->n - i - 1) * sizeof(*e));
	pf->n--;
	return 0;
}

static int
pwfile_write_fd(const struct pwfile *pf, int fd)
{
	size_t i;

	for (i = 0; i < pf->n; i++)
		if (util_write_all(fd, pf->e[i].line,
		    strlen(pf->e[i].line)) == -1 ||
		    util_write_all(fd, "\n", 1) == -1)
			return -1;
	return fsync(fd);
}

/* fsync the directory holding path, so a rename in it is durable. */
static int
sync_parent(const char *path)
{
	char copy[4096];
	int dfd, rc;

	strlcpy(copy, path, sizeof(copy));
	if ((dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY)) == -1)
		return -1;
	rc = fsync(dfd);
	close(dfd);
	return rc;
}

int
pwfile_save(const struct pwfile *pf, const char *path, char *err,
    size_t errsz)
{
	char tmp[4096];
	struct stat old;
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path,
	    (long)getpid()) >= sizeof(tmp)) {
		snprintf(err, errsz, "%s: path too long", path);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd == -1)
		goto fail;
	/* A rewrite keeps the file's owner and group (root:mpp, say), so the
	   daemon can still read it after root changed a password. */
	if (stat(path, &old) == 0 && fchown(fd, old.st_uid, old.st_gid) == -1 &&
	    errno != EPERM) {
		close(fd);
		goto fail;
	}
	if (fchmod(fd, 0640) == -1 || pwfile_write_fd(pf, fd) == -1) {
		close(fd);
		goto fail;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1 ||
	    sync_parent(path) == -1)
		goto fail;
	return 0;
fail:
	snprintf(err, errsz, "%s: %s", path, strerror(errno));
	unlink(tmp);
	return -1;
}

void
pwfile_free(struct pwfile *pf)
{
	size_t i;

	for (i = 0; i < pf->n; i++) {
		free(pf->e[i].line);
		free(pf->e[i].user);
		if (pf->e[i].hash != NULL)
			explicit_bzero(pf->e[i].hash, strlen(pf->e[i].hash));
		free(pf->e[i].hash);
	}
	free(pf->e);
	memset(pf, 0, sizeof(*pf));
}

int
pwfile_crypt(const char *password, const char *setting, char *out,
    size_t outsz)
{
	struct crypt_data *cd;
	int rc = -1;

	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	if (crypt_rn(password, setting, cd, sizeof(*cd)) != NULL &&
	    cd->output[0] != '*' &&
	    strlcpy(out, cd->output, outsz) < outsz)
		rc = 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

int
pwfile_hash(const char *password, const char *prefix, char *out,
    size_t outsz)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	if (crypt_gensalt_rn(prefix, 0, NULL, 0, setting,
	    sizeof(setting)) == NULL)
		return -1;
	return pwfile_crypt(password, setting, out, outsz);
}

int
pwfile_verify(const char *password, const char *hash)
{
	struct crypt_data *cd;
	char fast[SHA512CRYPT_OUT_MAX];
	size_t n = strlen(hash);
	int ok = 0;

	if (sha512crypt(password, hash, fast, sizeof(fast)) == 0) {
		ok = strlen(fast) == n &&
		    util_timingsafe_bcmp(fast, hash, n) == 0;
		explicit_bzero(fast, sizeof(fast));
		return ok;
	}
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return 0;
	if (crypt_rn(password, hash, cd, sizeof(*cd)) != NULL &&
	    cd->output[0] != '*' && strlen(cd->output) == n &&
	    util_timingsafe_bcmp(cd->output, hash, n) == 0)
		ok = 1;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/*
 * Bytes at the start of hash that name its method and cost: all before
 * the salt. "$id$[params$]salt$hash" keeps up to the "$" before the salt
 * ("$id$salt", a bare setting, up to its last "$"); bcrypt's salt and hash
 * follow "$2b$NN$" with no "$" between them, and scrypt's salt its 11
 * parameter characters; traditional DES has no "$" and no cost to name.
 */
static size_t
class_len(const char *hash)
{
	const char *last = NULL, *prev = NULL, *p;
	size_t n = strlen(hash), dollars = 0;

	if (hash[0] == '_')			/* BSDI: "_" and 4 of count */
		return n < 5 ? n : 5;
	if (hash[0] != '$')
		return 0;
	if (hash[1] == '2' && hash[2] != '\0' && hash[3] == '$')
		return n < 7 ? n : 7;
	if (strncmp(hash, "$7$", 3) == 0)
		return n < 14 ? n : 14;
	for (p = hash; *p != '\0'; p++)
		if (*p == '$') {
			prev = last;
			last = p;
			dollars++;
		}
	return (size_t)((dollars >= 3 ? prev : last) - hash) + 1;
}

int
pwfile_hash_class(const char *hash, char *cls, size_t clssz)
{
	const char *how = "";
	size_t n, room;
	int st;

	assert(clssz >= PWFILE_CLASS_MAX);
	if (hash[0] == '\0' || strlen(hash) >= PWFILE_HASH_MAX)
		return -1;
	st = crypt_checksalt(hash);
	if (st != CRYPT_SALT_OK && st != CRYPT_SALT_METHOD_LEGACY &&
	    st != CRYPT_SALT_TOO_CHEAP)
		return -1;
	if ((n = class_len(hash)) == 0) {
		snprintf(cls, clssz, "DES");
		return 0;
	}
	if (strncmp(hash, "$6$", 3) == 0 && !sha512crypt_takes(hash))
		how = " crypt(3)";
	/* Cut the parameters, never the code path's mark. */
	room = clssz - 1 - strlen(how);
	snprintf(cls, clssz, "%.*s%s", (int)(n < room ? n : room), hash, how);
	return 0;
}

size_t
pwfile_classes(const struct pwfile *pf, size_t *idx, size_t max, int *more)
{
	char seen[PWFILE_CLASSES_MAX][PWFILE_CLASS_MAX], cls[PWFILE_CLASS_MAX];
	size_t i, j, n = 0;

	assert(max <= PWFILE_CLASSES_MAX);
	*more = 0;
	for (i = 0; i < pf->n; i++) {
		if (pf->e[i].user == NULL ||
		    pwfile_hash_class(pf->e[i].hash, cls, sizeof(cls)) == -1)
			continue;
		for (j = 0; j < n && strcmp(seen[j], cls) != 0; j++)
			;
		if (j < n)
			continue;
		if (n == max) {
			*more = 1;
			continue;
		}
		strlcpy(seen[n], cls, sizeof(seen[n]));
		idx[n++] = i;
	}
	return n;
}
