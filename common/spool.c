/*
 * spool — directory handles are opened once so every later operation is an
 * *at() call relative to them, immune to a changed working directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "fault.h"
#include "spare.h"
#include "spool.h"

/* *made is set when the directory had to be created. */
static int
open_subdir(int dirfd, const char *name, int *made)
{
	if (mkdirat(dirfd, name, 0700) == 0)
		*made = 1;
	else if (errno != EEXIST)
		return -1;
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/*
 * A name made in a directory is durable only once the directory is
 * fsync'ed: without this a power cut after the first 250 could take new/
 * (or the whole spool) with it.
 */
static int
sync_parent_of(const char *dir)
{
	char parent[PATH_MAX];
	char *slash;
	int fd, rc;

	if (strlcpy(parent, dir, sizeof(parent)) >= sizeof(parent)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	while ((slash = strrchr(parent, '/')) != NULL && slash[1] == '\0' &&
	    slash != parent)
		*slash = '\0';		/* trailing slashes */
	if ((slash = strrchr(parent, '/')) == NULL)
		strlcpy(parent, ".", sizeof(parent));
	else
		slash[slash == parent ? 1 : 0] = '\0';
	if ((fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
spool_open(struct spool *sp, const char *dir, char *err, size_t errsz)
{
	int *fds[] = { &sp->tmpfd, &sp->newfd, &sp->curfd, &sp->orphfd,
	    &sp->sparefd };
	const char *names[] = { "tmp", "new", "cur", "orphans", "spare" };
	size_t i;
	int made_root = 0, made = 0;

	memset(sp, 0, sizeof(*sp));
	sp->dirfd = sp->tmpfd = sp->newfd = sp->curfd = sp->orphfd =
	    sp->sparefd = -1;
	if (strlcpy(sp->dir, dir, sizeof(sp->dir)) >= sizeof(sp->dir)) {
		snprintf(err, errsz, "spool_dir too long");
		return -1;
	}
	if (mkdir(dir, 0700) == 0)
		made_root = 1;
	else if (errno != EEXIST)
		goto fail;
	if ((sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if ((*fds[i] = open_subdir(sp->dirfd, names[i], &made)) == -1)
			goto fail;
	if (mkfifoat(sp->dirfd, "trigger", 0600) == 0)
		made = 1;
	else if (errno != EEXIST)
		goto fail;
	if ((made && fsync(sp->dirfd) == -1) ||
	    (made_root && sync_parent_of(dir) == -1))
		goto fail;
	if (faccessat(sp->dirfd, "tmp", W_OK, AT_EACCESS) == -1 ||
	    faccessat(sp->dirfd, ".", W_OK, AT_EACCESS) == -1)
		goto fail;
	if ((sp->spare = spare_state_new()) == NULL)
		goto fail;
	return 0;
fail:
	snprintf(err, errsz, "spool %s: %s", dir, strerror(errno));
	spool_close(sp);
	return -1;
}

void
spool_close(struct spool *sp)
{
	int *fds[] = { &sp->dirfd, &sp->tmpfd, &sp->newfd, &sp->curfd,
	    &sp->orphfd, &sp->sparefd };
	size_t i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] != -1) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	spare_state_free(sp->spare);
	sp->spare = NULL;
}

DIR *
spool_dir_open(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;

	if (fd == -1)
		return NULL;
	if ((d = fdopendir(fd)) == NULL)
		close(fd);
	return d;
}

void
spool_new_id(char *id, size_t idsz)
{
	static atomic_uint counter;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	snprintf(id, idsz, "%lld.M%06ldP%ldQ%u", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(),
	    atomic_fetch_add(&counter, 1) + 1);
}

void
spool_made_name(char *name, size_t namesz)
{
	char id[SPOOL_ID_MAX];

	spool_new_id(id, sizeof(id));
	(void)snprintf(name, namesz, "%.*s" SPOOL_MADE_SUFFIX,
	    (int)(SPOOL_ID_MAX - sizeof(SPOOL_MADE_SUFFIX)), id);
}

long
spool_made_maker(const char *name)
{
	size_t n = strlen(name), sn = sizeof(SPOOL_MADE_SUFFIX) - 1;
	char id[SPOOL_ID_MAX];
	const char *p;
	long pid = 0;

	if (n <= sn || n - sn >= sizeof(id) ||
	    strcmp(name + n - sn, SPOOL_MADE_SUFFIX) != 0)
		return 0;
	memcpy(id, name, n - sn);
	id[n - sn] = '\0';
	if (!spool_id_valid(id) || (p = strchr(id, 'P')) == NULL)
		return 0;
	for (p++; *p >= '0' && *p <= '9' && pid < 100000000; p++)
		pid = pid * 10 + (*p - '0');
	return *p == 'Q' ? pid : 0;
}

int
spool_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n >= SPOOL_ID_MAX || id[0] == '.')
		return 0;
	return strspn(id, "0123456789.MPQ") == n;
}

int
spool_tmp_open(const struct spool *sp, const char *id)
{
	return openat(sp->tmpfd, id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
}

int
spool_publish(const struct spool *sp, int fd, const char *id)
{
	return spool_publish_as(sp, fd, id, id);
}

int
spool_publish_as(const struct spool *sp, int fd, const char *tmpname,
    const char *id)
{
	int saved;

	FAULT_POINT("after-tmp-write");
	if (fsync(fd) == -1) {
		saved = errno;
		close(fd);
		goto fail;
	}
	FAULT_POINT("after-fsync");
	if (close(fd) == -1) {
		saved = errno;
		goto fail;
	}
	if (renameat(sp->tmpfd, tmpname, sp->newfd, id) == -1) {
		saved = errno;
		goto fail;
	}
	FAULT_POINT("after-rename");
	return 0;
fail:
	unlinkat(sp->tmpfd, tmpname, 0);
	errno = saved;
	return -1;
}

int
spool_sync_new(const struct spool *sp)
{
	return fsync(sp->newfd);
}

void
spool_tmp_discard(const struct spool *sp, const char *id)
{
	(void)unlinkat(sp->tmpfd, id, 0);
}

int
spool_find(const struct spool *sp, const char *id, char *path,
    size_t pathsz)
{
	struct stat st;
	const char *sub;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (fstatat(sp->curfd, id, &st, 0) == 0)
		sub = "cur";
	else if (fstatat(sp->newfd, id, &st, 0) == 0)
		sub = "new";
	else
		return -1;
	if ((size_t)snprintf(path, pathsz, "%s/%s/%s", sp->dir, sub, id) >=
	    pathsz) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
spool_open_msg(const struct spool *sp, const char *id)
{
	int fd;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	fd = openat(sp->curfd, id, O_RDONLY | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		fd = openat(sp->newfd, id, O_RDONLY | O_CLOEXEC);
	return fd;
}

/*
 * Not a rename: that is two directory updates, and the removal from the
 * old directory may reach the disk first (mppd fsyncs new/ at every
 * commit) while the new name does not, which would lose the file in a
 * power cut. So the new name is made durable before the old one goes. A
 * cut in between leaves two names of one file; the next move removes the
 * old. -1 with ENOENT when fromfd has no such file.
 */
static int
move_durably(int fromfd, int tofd, const char *id)
{
	if (linkat(fromfd, id, tofd, id, 0) == -1 && errno != EEXIST)
		return -1;
	if (fsync(tofd) == -1)
		return -1;
	if (unlinkat(fromfd, id, 0) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

int
spool_to_cur(const struct spool *sp, const char *id)
{
	if (move_durably(sp->newfd, sp->curfd, id) == -1)
		return errno == ENOENT ? 0 : -1;	/* already moved */
	return 0;
}

int
spool_to_orphans(const struct spool *sp, int fromfd, const char *id)
{
	return move_durably(fromfd, sp->orphfd, id);
}

int
spool_remove(const struct spool *sp, const char *id)
{
	if (unlinkat(sp->curfd, id, 0) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	return unlinkat(sp->newfd, id, 0);
}

void
spool_wake(const struct spool *sp)
{
	int fd = openat(sp->dirfd, "trigger", O_WRONLY | O_NONBLOCK |
	    O_CLOEXEC);

	if (fd == -1)
		return;		/* ENXIO: no runner listens */
	(void)!write(fd, "!", 1);
	close(fd);
}
