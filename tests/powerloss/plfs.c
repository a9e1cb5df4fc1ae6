/*
 * plfs — a FUSE file system that simulates a power cut, for the
 * power-loss tests (tests/powerloss/README.md).
 *
 * Every operation goes straight through to a backing directory, so reads,
 * mmap and locks behave as on any file system. Beside it plfs keeps a
 * model of what a disk would hold after a power cut, in the strict POSIX
 * reading:
 *   - a file's data is durable up to its last fsync/fdatasync (or an
 *     O_SYNC/O_DSYNC write); its durable bytes live in a shadow copy,
 *     kept equal to the backing file outside the extents written since;
 *   - a directory's entries (create, rename, link, unlink, mkdir) are
 *     durable as of its last fsync, which records name -> inode.
 * On unmount plfs writes the image: the durable names from the root down,
 * each with its inode's durable content (in torn mode with a random
 * 512-byte-aligned prefix of its unsynced writes applied as well). An
 * inode with durable content but no durable name is lost; a durable name
 * of an inode never synced is an empty file.
 *
 * Writing "freeze" to /.plfs-control is the power cut. A disk without
 * power takes nothing more: from then on every change the model keeps
 * (write, truncate, fallocate, sync, mode, any change of a name) fails
 * with EIO and reaches neither the model nor the backing tree, until the
 * programs still running are killed. Were their changes let through
 * with the syncs ignored, torn mode would apply what they write after a
 * sync (a checkpoint's database pages after its fsync of the WAL, a WAL
 * header after the checkpoint's fsync of the database) without what the
 * sync made durable first: an image no disk holds after a power cut.
 * The test then unmounts and gets the image. Reading the control file
 * gives counters.
 *
 *   plfs MOUNTPOINT -o backing=DIR,image=DIR[,torn][,seed=N] [-f] [FUSE opts]
 *
 * One mutex guards the model and every change to the backing tree, so a
 * sync always sees whole operations.
 */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#define CONTROL_NAME "/.plfs-control"
#define MAX_PENDING 256		/* unsynced extents kept apart; then merged */
#define SECTOR 512
#define MAX_DEPTH 64

enum kind { K_REG, K_DIR, K_FIFO, K_LNK, K_OTHER };

struct extent {
	off_t off, len;
};

struct dent {
	char *name;
	uint32_t node;
};

struct node {
	enum kind kind;
	mode_t mode;
	ino_t ino;		/* its backing inode, while it has one */
	int shadow;		/* durable bytes in shadow/ID, else = backing */
	struct extent *pend;	/* unsynced changes, oldest first */
	size_t npend, cpend;
	struct dent *dents;	/* directory: durable entries */
	size_t ndents;
	char *target;		/* symlink */
	char *emitted;		/* image path once written (hard links) */
};

struct handle {
	int fd;
	uint32_t node;
	int sync_writes;
	int control;
};

static struct {
	char *backing, *image;
	int torn;
	unsigned long long seed;
	int rootfd;
	char shadow[PATH_MAX - 16];	/* room for "/ID" */
	pthread_mutex_t lock;
	struct node **nodes;
	size_t nnodes, cnodes;
	uint64_t *hkeys;	/* ino -> node + 1, open addressing */
	uint32_t *hvals;
	size_t hsize, hused;
	int frozen, scanning;
	unsigned long n_fsync, n_fsyncdir, n_write, n_adopted, n_lost;
	unsigned long n_refused;	/* changes asked for after the cut */
	uint64_t rng;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
die(const char *what)
{
	fprintf(stderr, "plfs: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);

	if (p == NULL)
		die("calloc");
	return p;
}

static uint64_t
rnd(void)
{
	/* xorshift64*: a replayable stream from the seed. */
	g.rng ^= g.rng >> 12;
	g.rng ^= g.rng << 25;
	g.rng ^= g.rng >> 27;
	return g.rng * 2685821657736338717ULL;
}

/* Backing path relative to the root fd: "/a/b" -> "a/b", "/" -> ".". */
static const char *
rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static int
is_control(const char *path)
{
	return strcmp(path, CONTROL_NAME) == 0;
}

/* Lock held: after the cut nothing more reaches the disk (see top). */
static int
cut_off(void)
{
	if (!g.frozen)
		return 0;
	g.n_refused++;
	return -EIO;
}

/* The ino -> node map. */

static size_t
hslot(uint64_t key)
{
	size_t i = (size_t)(key * 11400714819323198485ULL) & (g.hsize - 1);

	while (g.hkeys[i] != 0 && g.hkeys[i] != key + 1)
		i = (i + 1) & (g.hsize - 1);
	return i;
}

static void
hput(ino_t ino, uint32_t node)
{
	size_t i;

	if ((g.hused + 1) * 2 > g.hsize) {
		uint64_t *ok = g.hkeys;
		uint32_t *ov = g.hvals;
		size_t j, osize = g.hsize;

		g.hsize = osize ? osize * 2 : 1024;
		g.hkeys = xcalloc(g.hsize, sizeof(*g.hkeys));
		g.hvals = xcalloc(g.hsize, sizeof(*g.hvals));
		g.hused = 0;
		for (j = 0; j < osize; j++)
			if (ok[j] != 0) {
				i = hslot(ok[j] - 1);
				g.hkeys[i] = ok[j];
				g.hvals[i] = ov[j];
				g.hused++;
			}
		free(ok);
		free(ov);
	}
	i = hslot((uint64_t)ino);
	if (g.hkeys[i] == 0)
		g.hused++;
	g.hkeys[i] = (uint64_t)ino + 1;
	g.hvals[i] = node;
}

static int
hget(ino_t ino, uint32_t *node)
{
	size_t i;

	if (g.hsize == 0)
		return -1;
	i = hslot((uint64_t)ino);
	if (g.hkeys[i] == 0)
		return -1;
	*node = g.hvals[i];
	return 0;
}

/* Nodes. */

static enum kind
kind_of(mode_t m)
{
	if (S_ISREG(m))
		return K_REG;
	if (S_ISDIR(m))
		return K_DIR;
	if (S_ISFIFO(m))
		return K_FIFO;
	if (S_ISLNK(m))
		return K_LNK;
	return K_OTHER;
}

/*
 * A node for a backing inode just made (or found at mount, durable as it
 * is: durable_now). A new one has no durable bytes and no durable entries.
 */
static uint32_t
node_new(const struct stat *st, int durable_now)
{
	struct node *n = xcalloc(1, sizeof(*n));
	uint32_t id;

	if (g.nnodes == g.cnodes) {
		g.cnodes = g.cnodes ? g.cnodes * 2 : 1024;
		g.nodes = realloc(g.nodes, g.cnodes * sizeof(*g.nodes));
		if (g.nodes == NULL)
			die("realloc");
	}
	n->kind = kind_of(st->st_mode);
	n->mode = st->st_mode;
	n->ino = st->st_ino;
	n->shadow = !durable_now;
	id = (uint32_t)g.nnodes;
	g.nodes[g.nnodes++] = n;
	hput(st->st_ino, id);
	return id;
}

/* The node of a backing inode; one plfs never saw is taken as new. */
static uint32_t
node_of(const struct stat *st)
{
	uint32_t id;

	if (hget(st->st_ino, &id) == 0)
		return id;
	if (!g.scanning) {
		g.n_adopted++;
		fprintf(stderr, "plfs: inode %ju appeared outside plfs\n",
		    (uintmax_t)st->st_ino);
	}
	return node_new(st, 0);
}

static void
shadow_path(uint32_t id, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s/%" PRIu32, g.shadow, id);
}

static int
copy_range(int from, int to, off_t off, off_t len)
{
	char buf[65536];
	ssize_t r;

	while (len > 0) {
		r = pread(from, buf, (size_t)(len < (off_t)sizeof(buf) ?
		    len : (off_t)sizeof(buf)), off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? 0 : -1;
		if (pwrite(to, buf, (size_t)r, off) != r)
			return -1;
		off += r;
		len -= r;
	}
	return 0;
}

/* Keep the durable bytes of a node before its backing file changes. */
static int
snapshot(uint32_t id, int fd)
{
	struct node *n = g.nodes[id];
	char path[PATH_MAX];
	struct stat st;
	int sfd;

	if (n->kind != K_REG || n->shadow)
		return 0;
	shadow_path(id, path, sizeof(path));
	if (fstat(fd, &st) == -1 ||
	    (sfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		return -1;
	if (copy_range(fd, sfd, 0, st.st_size) == -1 ||
	    ftruncate(sfd, st.st_size) == -1) {
		close(sfd);
		return -1;
	}
	close(sfd);
	n->shadow = 1;
	return 0;
}

static int
snapshot_path(uint32_t id, const char *relpath)
{
	int fd, rc;

	if (g.nodes[id]->kind != K_REG || g.nodes[id]->shadow)
		return 0;
	if ((fd = openat(g.rootfd, relpath, O_RDONLY | O_NOFOLLOW)) == -1)
		return -1;
	rc = snapshot(id, fd);
	close(fd);
	return rc;
}

/* Record an unsynced change of [off, off + len). */
static void
pend_add(struct node *n, off_t off, off_t len)
{
	off_t lo, hi;
	size_t i;

	if (len <= 0)
		return;
	if (n->npend == MAX_PENDING) {
		lo = n->pend[0].off;
		hi = lo + n->pend[0].len;
		for (i = 1; i < n->npend; i++) {
			if (n->pend[i].off < lo)
				lo = n->pend[i].off;
			if (n->pend[i].off + n->pend[i].len > hi)
				hi = n->pend[i].off + n->pend[i].len;
		}
		n->pend[0].off = lo;
		n->pend[0].len = hi - lo;
		n->npend = 1;
	}
	if (n->npend == n->cpend) {
		n->cpend = n->cpend ? n->cpend * 2 : 8;
		n->pend = realloc(n->pend, n->cpend * sizeof(*n->pend));
		if (n->pend == NULL)
			die("realloc");
	}
	n->pend[n->npend].off = off;
	n->pend[n->npend].len = len;
	n->npend++;
}

/* fsync of a file: its current bytes and size become its durable ones. */
static int
sync_file(uint32_t id, int fd)
{
	struct node *n = g.nodes[id];
	char path[PATH_MAX];
	struct stat st;
	size_t i;
	int sfd;

	if (g.frozen || n->kind != K_REG || !n->shadow)
		return 0;
	shadow_path(id, path, sizeof(path));
	if (fstat(fd, &st) == -1 ||
	    (sfd = open(path, O_WRONLY | O_CREAT, 0600)) == -1)
		return -errno;
	for (i = 0; i < n->npend; i++)
		if (copy_range(fd, sfd, n->pend[i].off, n->pend[i].len) == -1)
			goto fail;
	if (ftruncate(sfd, st.st_size) == -1)
		goto fail;
	close(sfd);
	n->npend = 0;
	return 0;
fail:
	i = (size_t)errno;
	close(sfd);
	return -(int)i;
}

static void
dents_free(struct node *n)
{
	size_t i;

	for (i = 0; i < n->ndents; i++)
		free(n->dents[i].name);
	free(n->dents);
	n->dents = NULL;
	n->ndents = 0;
}

/* fsync of a directory: its current entries become its durable ones. */
static int
sync_dir(uint32_t id, const char *relpath)
{
	struct node *n = g.nodes[id];
	struct dirent *de;
	struct stat st;
	size_t cap = 16;
	DIR *d;
	int fd;

	if (g.frozen)
		return 0;
	if ((fd = openat(g.rootfd, relpath, O_RDONLY | O_DIRECTORY)) == -1)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	dents_free(n);
	n->dents = xcalloc(cap, sizeof(*n->dents));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (n->ndents == cap) {
			cap *= 2;
			n->dents = realloc(n->dents, cap * sizeof(*n->dents));
			if (n->dents == NULL)
				die("realloc");
		}
		if ((n->dents[n->ndents].name = strdup(de->d_name)) == NULL)
			die("strdup");
		n->dents[n->ndents++].node = node_of(&st);
	}
	closedir(d);
	return 0;
}

/* At mount: everything in the backing tree is durable as it is. */
static void
scan_tree(uint32_t id, const char *relpath, int depth)
{
	struct node *n = g.nodes[id];
	char child[PATH_MAX];
	size_t i;

	if (depth > MAX_DEPTH || sync_dir(id, relpath) != 0)
		die(relpath);
	for (i = 0; i < n->ndents; i++) {
		struct node *c = g.nodes[n->dents[i].node];

		snprintf(child, sizeof(child), "%s/%s", relpath,
		    n->dents[i].name);
		if (c->kind == K_LNK) {
			char t[PATH_MAX];
			ssize_t len = readlinkat(g.rootfd, child, t,
			    sizeof(t) - 1);

			t[len < 0 ? 0 : len] = '\0';
			free(c->target);
			if ((c->target = strdup(t)) == NULL)
				die("strdup");
		}
		if (c->kind == K_DIR)
			scan_tree(n->dents[i].node, child, depth + 1);
	}
}

/* Adopt every backing inode at mount, then scan. */
static void
mount_scan(void)
{
	struct stat st;
	size_t i;

	if (fstat(g.rootfd, &st) == -1)
		die(g.backing);
	(void)node_new(&st, 1);
	/* node_of() takes unknown inodes as new; at mount they are durable. */
	g.scanning = 1;
	scan_tree(0, ".", 0);
	g.scanning = 0;
	for (i = 0; i < g.nnodes; i++)
		g.nodes[i]->shadow = 0;
}

/* Handles. */

static struct handle *
fh(const struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static int
lookup(const char *path, struct stat *st, uint32_t *id)
{
	if (fstatat(g.rootfd, rel(path), st, AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	*id = node_of(st);
	return 0;
}

/* A name about to go away: keep its inode's bytes if it was the last. */
static int
before_unname(const char *relpath)
{
	struct stat st;
	uint32_t id;

	if (fstatat(g.rootfd, relpath, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 : -errno;
	id = node_of(&st);
	if (S_ISREG(st.st_mode) && st.st_nlink <= 1 &&
	    snapshot_path(id, relpath) == -1)
		return -errno;
	return 0;
}

/* Operations. */

static void *
pl_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	cfg->hard_remove = 1;
	cfg->direct_io = 0;
	cfg->kernel_cache = 0;
	cfg->auto_cache = 0;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	/* Writes must reach plfs when the program makes them. */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	return NULL;
}

static int
pl_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (is_control(path)) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		return 0;
	}
	if (fi != NULL && fh(fi) != NULL && !fh(fi)->control)
		return fstat(fh(fi)->fd, st) == -1 ? -errno : 0;
	return fstatat(g.rootfd, rel(path), st, AT_SYMLINK_NOFOLLOW) == -1 ?
	    -errno : 0;
}

static int
pl_access(const char *path, int mask)
{
	if (is_control(path))
		return 0;
	return faccessat(g.rootfd, rel(path), mask, AT_SYMLINK_NOFOLLOW) ==
	    -1 ? -errno : 0;
}

static int
pl_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(g.rootfd, rel(path), buf, size - 1);

	if (n == -1)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int
pl_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
    struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if ((fd = openat(g.rootfd, rel(path), O_RDONLY | O_DIRECTORY)) == -1)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		memset(&st, 0, sizeof(st));
		st.st_ino = de->d_ino;
		st.st_mode = (mode_t)(de->d_type << 12);
		if (fill(buf, de->d_name, &st, 0, 0) != 0)
			break;
	}
	closedir(d);
	return 0;
}

/* A new inode under path (mknod, mkdir, symlink, create). */
static int
made(const char *path, const char *target)
{
	struct stat st;
	uint32_t id;

	if (fstatat(g.rootfd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	id = node_new(&st, 0);
	if (target != NULL && (g.nodes[id]->target = strdup(target)) == NULL)
		die("strdup");
	return 0;
}

static int
pl_mknod(const char *path, mode_t mode, dev_t rdev)
{
	int rc;

	if (is_control(path))
		return -EEXIST;
	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) != 0)
		goto out;
	if (S_ISFIFO(mode))
		rc = mkfifoat(g.rootfd, rel(path), mode);
	else
		rc = mknodat(g.rootfd, rel(path), mode, rdev);
	rc = rc == -1 ? -errno : made(path, NULL);
out:
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_mkdir(const char *path, mode_t mode)
{
	int rc;

	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) == 0)
		rc = mkdirat(g.rootfd, rel(path), mode) == -1 ? -errno :
		    made(path, NULL);
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_symlink(const char *target, const char *path)
{
	int rc;

	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) == 0)
		rc = symlinkat(target, g.rootfd, rel(path)) == -1 ? -errno :
		    made(path, target);
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_unlink(const char *path)
{
	int rc;

	if (is_control(path))
		return -EPERM;
	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) == 0 && (rc = before_unname(rel(path))) == 0 &&
	    unlinkat(g.rootfd, rel(path), 0) == -1)
		rc = -errno;
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_rmdir(const char *path)
{
	int rc;

	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) == 0)
		rc = unlinkat(g.rootfd, rel(path), AT_REMOVEDIR) == -1 ?
		    -errno : 0;
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_rename(const char *from, const char *to, unsigned int flags)
{
	int rc = 0;

	if (is_control(from) || is_control(to))
		return -EPERM;
	pthread_mutex_lock(&g.lock);
	rc = cut_off();
	if (rc == 0 && !(flags & RENAME_EXCHANGE))
		rc = before_unname(rel(to));
	if (rc == 0 && renameat2(g.rootfd, rel(from), g.rootfd, rel(to),
	    flags) == -1)
		rc = -errno;
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_link(const char *from, const char *to)
{
	int rc;

	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) == 0)
		rc = linkat(g.rootfd, rel(from), g.rootfd, rel(to), 0) == -1 ?
		    -errno : 0;
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct stat st;
	uint32_t id;
	int rc;

	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) == 0)
		rc = fchmodat(g.rootfd, rel(path), mode, 0) == -1 ? -errno : 0;
	if (rc == 0 && lookup(path, &st, &id) == 0)
		g.nodes[id]->mode = st.st_mode;
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return fchownat(g.rootfd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) ==
	    -1 ? -errno : 0;
}

static int
pl_utimens(const char *path, const struct timespec tv[2],
    struct fuse_file_info *fi)
{
	if (is_control(path))
		return 0;
	return utimensat(g.rootfd, rel(path), tv, AT_SYMLINK_NOFOLLOW) == -1 ?
	    -errno : 0;
}

/* Size change on fd (ftruncate), recorded as unsynced. */
static int
resize(uint32_t id, int fd, off_t size)
{
	struct stat st;

	if (fstat(fd, &st) == -1 || snapshot(id, fd) == -1 ||
	    ftruncate(fd, size) == -1)
		return -errno;
	if (size < st.st_size)
		pend_add(g.nodes[id], size, st.st_size - size);
	else
		pend_add(g.nodes[id], st.st_size, size - st.st_size);
	return 0;
}

static int
pl_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct stat st;
	uint32_t id;
	int fd = -1, rc;

	if (is_control(path))
		return 0;
	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) != 0)
		goto out;
	if (fi != NULL && fh(fi) != NULL) {
		rc = resize(fh(fi)->node, fh(fi)->fd, size);
	} else if ((rc = lookup(path, &st, &id)) == 0) {
		if ((fd = openat(g.rootfd, rel(path), O_RDWR | O_NOFOLLOW)) ==
		    -1)
			rc = -errno;
		else
			rc = resize(id, fd, size);
	}
out:
	pthread_mutex_unlock(&g.lock);
	if (fd != -1)
		close(fd);
	return rc;
}

static int
open_handle(const char *path, int flags, mode_t mode, int creating,
    struct fuse_file_info *fi)
{
	struct handle *h = xcalloc(1, sizeof(*h));
	int bflags = (flags & ~(O_APPEND | O_DIRECT | O_CREAT | O_EXCL |
	    O_TRUNC | O_NOCTTY | O_ACCMODE)) | O_RDWR;
	struct stat st;
	int rc;

	h->sync_writes = (flags & (O_SYNC | O_DSYNC)) != 0;
	if (creating && fstatat(g.rootfd, rel(path), &st,
	    AT_SYMLINK_NOFOLLOW) == 0) {
		if (flags & O_EXCL) {
			rc = -EEXIST;
			goto fail;
		}
		creating = 0;
	}
	if (creating) {
		h->fd = openat(g.rootfd, rel(path), bflags | O_CREAT | O_EXCL,
		    mode);
		if (h->fd == -1 || fstat(h->fd, &st) == -1) {
			rc = -errno;
			goto fail;
		}
		h->node = node_new(&st, 0);
	} else {
		h->fd = openat(g.rootfd, rel(path), bflags);
		if (h->fd == -1 && errno == EACCES)
			h->fd = openat(g.rootfd, rel(path), (bflags &
			    ~O_ACCMODE) | O_RDONLY);
		if (h->fd == -1 || fstat(h->fd, &st) == -1) {
			rc = -errno;
			goto fail;
		}
		h->node = node_of(&st);
		if ((flags & O_TRUNC) && st.st_size > 0 &&
		    (rc = resize(h->node, h->fd, 0)) != 0)
			goto fail;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
fail:
	if (h->fd > 0)
		close(h->fd);
	free(h);
	return rc;
}

static int
pl_open(const char *path, struct fuse_file_info *fi)
{
	int rc;

	if (is_control(path)) {
		struct handle *h = xcalloc(1, sizeof(*h));

		h->control = 1;
		h->fd = -1;
		fi->fh = (uint64_t)(uintptr_t)h;
		fi->direct_io = 1;
		return 0;
	}
	pthread_mutex_lock(&g.lock);
	if ((fi->flags & O_TRUNC) && (rc = cut_off()) != 0)
		goto out;
	rc = open_handle(path, fi->flags, 0, 0, fi);
out:
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int rc;

	if (is_control(path))
		return pl_open(path, fi);
	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) == 0)
		rc = open_handle(path, fi->flags, mode, 1, fi);
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
control_read(char *buf, size_t size, off_t off)
{
	char text[512];
	int n;

	pthread_mutex_lock(&g.lock);
	n = snprintf(text, sizeof(text), "frozen=%d fsync=%lu fsyncdir=%lu "
	    "writes=%lu inodes=%zu adopted=%lu refused=%lu\n", g.frozen,
	    g.n_fsync, g.n_fsyncdir, g.n_write, g.nnodes, g.n_adopted,
	    g.n_refused);
	pthread_mutex_unlock(&g.lock);
	if (off >= n)
		return 0;
	if ((size_t)(n - off) < size)
		size = (size_t)(n - off);
	memcpy(buf, text + off, size);
	return (int)size;
}

static int
pl_read(const char *path, char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	ssize_t n;

	if (fh(fi)->control)
		return control_read(buf, size, off);
	n = pread(fh(fi)->fd, buf, size, off);
	return n == -1 ? -errno : (int)n;
}

static int
control_write(const char *buf, size_t size)
{
	if (size >= 6 && memcmp(buf, "freeze", 6) == 0) {
		pthread_mutex_lock(&g.lock);
		g.frozen = 1;
		pthread_mutex_unlock(&g.lock);
		fprintf(stderr, "plfs: power cut (model frozen)\n");
		return (int)size;
	}
	return -EINVAL;
}

static int
pl_write(const char *path, const char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct handle *h = fh(fi);
	ssize_t n;
	int rc;

	if (h->control)
		return control_write(buf, size);
	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) != 0)
		goto out;
	if (snapshot(h->node, h->fd) == -1) {
		rc = -errno;
		goto out;
	}
	if ((n = pwrite(h->fd, buf, size, off)) == -1) {
		rc = -errno;
		goto out;
	}
	g.n_write++;
	pend_add(g.nodes[h->node], off, n);
	rc = (int)n;
	if (h->sync_writes) {
		int s = sync_file(h->node, h->fd);

		if (s != 0)
			rc = s;
	}
out:
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_fallocate(const char *path, int mode, off_t off, off_t len,
    struct fuse_file_info *fi)
{
	struct handle *h = fh(fi);
	int rc = 0;

	if (h == NULL || h->control)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&g.lock);
	if ((rc = cut_off()) == 0) {
		if (snapshot(h->node, h->fd) == -1 ||
		    fallocate(h->fd, mode, off, len) == -1)
			rc = -errno;
		else
			pend_add(g.nodes[h->node], off, len);
	}
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_statfs(const char *path, struct statvfs *sv)
{
	return fstatvfs(g.rootfd, sv) == -1 ? -errno : 0;
}

static int
pl_flush(const char *path, struct fuse_file_info *fi)
{
	return 0;
}

static int
pl_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = fh(fi);

	if (h->fd != -1)
		close(h->fd);
	free(h);
	return 0;
}

static int
pl_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = fh(fi);
	int rc;

	if (h->control)
		return 0;
	pthread_mutex_lock(&g.lock);
	g.n_fsync++;
	if ((rc = cut_off()) == 0)
		rc = sync_file(h->node, h->fd);
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int
pl_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct stat st;
	uint32_t id;
	int rc;

	pthread_mutex_lock(&g.lock);
	g.n_fsyncdir++;
	if ((rc = cut_off()) == 0 && (rc = lookup(path, &st, &id)) == 0)
		rc = sync_dir(id, rel(path));
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static const struct fuse_operations ops = {
	.init = pl_init,
	.getattr = pl_getattr,
	.access = pl_access,
	.readlink = pl_readlink,
	.readdir = pl_readdir,
	.mknod = pl_mknod,
	.mkdir = pl_mkdir,
	.symlink = pl_symlink,
	.unlink = pl_unlink,
	.rmdir = pl_rmdir,
	.rename = pl_rename,
	.link = pl_link,
	.chmod = pl_chmod,
	.chown = pl_chown,
	.truncate = pl_truncate,
	.utimens = pl_utimens,
	.open = pl_open,
	.create = pl_create,
	.read = pl_read,
	.write = pl_write,
	.fallocate = pl_fallocate,
	.statfs = pl_statfs,
	.flush = pl_flush,
	.release = pl_release,
	.fsync = pl_fsync,
	.fsyncdir = pl_fsyncdir,
};

/* The image. */

struct livemap {
	ino_t *ino;
	char **path;
	size_t n, cap;
};

/* Where each backing inode still is, for nodes whose bytes are there. */
static void
live_scan(struct livemap *lm, const char *relpath, int depth)
{
	struct dirent *de;
	struct stat st;
	char child[PATH_MAX];
	DIR *d;
	int fd;

	if (depth > MAX_DEPTH ||
	    (fd = openat(g.rootfd, relpath, O_RDONLY | O_DIRECTORY)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(child, sizeof(child), "%s/%s", relpath, de->d_name);
		if (fstatat(g.rootfd, child, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (S_ISDIR(st.st_mode)) {
			live_scan(lm, child, depth + 1);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (lm->n == lm->cap) {
			lm->cap = lm->cap ? lm->cap * 2 : 256;
			lm->ino = realloc(lm->ino, lm->cap * sizeof(*lm->ino));
			lm->path = realloc(lm->path, lm->cap *
			    sizeof(*lm->path));
			if (lm->ino == NULL || lm->path == NULL)
				die("realloc");
		}
		lm->ino[lm->n] = st.st_ino;
		if ((lm->path[lm->n++] = strdup(child)) == NULL)
			die("strdup");
	}
	closedir(d);
}

static int
live_open(const struct livemap *lm, ino_t ino)
{
	size_t i;

	for (i = 0; i < lm->n; i++)
		if (lm->ino[i] == ino)
			return openat(g.rootfd, lm->path[i], O_RDONLY);
	return -1;
}

/*
 * Torn mode: the unsynced writes, oldest first, cut into 512-byte-aligned
 * pieces; a random number of the first pieces reached the disk.
 */
static uint64_t
apply_torn(const struct node *n, int live, int out, uint64_t *totalp)
{
	uint64_t total = 0, k, applied;
	size_t i;
	off_t p, end, stop;

	for (i = 0; i < n->npend; i++)
		total += (uint64_t)((n->pend[i].off + n->pend[i].len +
		    SECTOR - 1) / SECTOR - n->pend[i].off / SECTOR);
	k = total ? rnd() % (total + 1) : 0;
	*totalp = total;
	applied = k;
	for (i = 0; i < n->npend && k > 0; i++) {
		p = n->pend[i].off;
		end = p + n->pend[i].len;
		while (p < end && k > 0) {
			stop = (p / SECTOR + 1) * SECTOR;
			if (stop > end)
				stop = end;
			if (copy_range(live, out, p, stop - p) == -1)
				return applied - k;
			p = stop;
			k--;
		}
	}
	return applied;
}

/* What the cut did to a file with unsynced changes, for post-mortems. */
static void
report_unsynced(const struct node *n, const char *ipath, off_t durable,
    int torn, uint64_t applied, uint64_t total)
{
	size_t i;

	fprintf(stderr, "plfs: cut: %s: %jd bytes durable, %zu unsynced "
	    "extents", ipath, (intmax_t)durable, n->npend);
	for (i = 0; i < n->npend && i < 8; i++)
		fprintf(stderr, " %jd+%jd", (intmax_t)n->pend[i].off,
		    (intmax_t)n->pend[i].len);
	if (torn)
		fprintf(stderr, "; torn: %" PRIu64 " of %" PRIu64 " pieces",
		    applied, total);
	fputc('\n', stderr);
}

static int
emit_file(struct node *n, uint32_t id, int dfd, const char *name,
    const char *ipath, const struct livemap *lm)
{
	char spath[PATH_MAX];
	struct stat st;
	uint64_t applied = 0, total = 0;
	int out, src, live;

	st.st_size = 0;
	if (n->emitted != NULL)
		return linkat(AT_FDCWD, n->emitted, dfd, name, 0);
	if ((out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, n->mode &
	    07777)) == -1)
		return -1;
	shadow_path(id, spath, sizeof(spath));
	live = live_open(lm, n->ino);
	src = n->shadow ? open(spath, O_RDONLY) : live;
	if (!n->shadow && live == -1) {
		g.n_lost++;
		fprintf(stderr, "plfs: bytes of %s lost in plfs\n", ipath);
	}
	if (src != -1 && fstat(src, &st) == 0) {
		if (copy_range(src, out, 0, st.st_size) == -1 ||
		    ftruncate(out, st.st_size) == -1)
			die(ipath);
	}
	if (g.torn && n->shadow && live != -1)
		applied = apply_torn(n, live, out, &total);
	if (n->npend > 0)
		report_unsynced(n, ipath, src != -1 ? st.st_size : 0, g.torn,
		    applied, total);
	if (src != -1 && src != live)
		close(src);
	if (live != -1)
		close(live);
	(void)fchmod(out, n->mode & 07777);
	close(out);
	if ((n->emitted = strdup(ipath)) == NULL)
		die("strdup");
	return 0;
}

static void
emit_dir(uint32_t id, const char *ipath, const struct livemap *lm,
    int depth, unsigned char *seen)
{
	struct node *d = g.nodes[id];
	char child[PATH_MAX];
	size_t i;
	int dfd;

	if (depth > MAX_DEPTH || (dfd = open(ipath, O_RDONLY |
	    O_DIRECTORY)) == -1)
		die(ipath);
	for (i = 0; i < d->ndents; i++) {
		uint32_t cid = d->dents[i].node;
		struct node *c = g.nodes[cid];
		const char *name = d->dents[i].name;
		int rc = 0;

		snprintf(child, sizeof(child), "%s/%s", ipath, name);
		switch (c->kind) {
		case K_DIR:
			if (seen[cid]) {
				fprintf(stderr, "plfs: %s: directory durable "
				    "under two names; kept the first\n", child);
				break;
			}
			seen[cid] = 1;
			if ((rc = mkdirat(dfd, name, c->mode & 07777)) == 0)
				emit_dir(cid, child, lm, depth + 1, seen);
			break;
		case K_REG:
			rc = emit_file(c, cid, dfd, name, child, lm);
			break;
		case K_FIFO:
			rc = mkfifoat(dfd, name, c->mode & 07777);
			break;
		case K_LNK:
			rc = symlinkat(c->target ? c->target : "", dfd, name);
			break;
		default:
			break;
		}
		if (rc == -1)
			die(child);
	}
	close(dfd);
}

static void
write_image(void)
{
	struct livemap lm = { 0 };
	unsigned char *seen = xcalloc(g.nnodes, 1);
	size_t i;

	g.frozen = 1;
	live_scan(&lm, ".", 0);
	if (mkdir(g.image, 0700) == -1 && errno != EEXIST)
		die(g.image);
	seen[0] = 1;
	emit_dir(0, g.image, &lm, 0, seen);
	for (i = 0; i < lm.n; i++)
		free(lm.path[i]);
	free(lm.path);
	free(lm.ino);
	free(seen);
	fprintf(stderr, "plfs: image written to %s (%zu inodes, %lu fsync, "
	    "%lu fsyncdir, %lu lost, %lu changes refused after the cut)\n",
	    g.image, g.nnodes, g.n_fsync, g.n_fsyncdir, g.n_lost,
	    g.n_refused);
}

static void
remove_shadow(void)
{
	struct dirent *de;
	DIR *d = opendir(g.shadow);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	(void)rmdir(g.shadow);
}

/* Options. */

struct opts {
	char *backing, *image, *seed;
	int torn;
};

#define OPT(t, p) { t, offsetof(struct opts, p), 1 }
static const struct fuse_opt opt_spec[] = {
	OPT("backing=%s", backing),
	OPT("image=%s", image),
	OPT("seed=%s", seed),
	OPT("torn", torn),
	FUSE_OPT_END
};

int
main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct opts o = { 0 };
	int rc;

	if (fuse_opt_parse(&args, &o, opt_spec, NULL) == -1)
		return 1;
	if (o.backing == NULL || o.image == NULL) {
		fprintf(stderr, "usage: plfs MOUNTPOINT -o backing=DIR,"
		    "image=DIR[,torn][,seed=N] [-f]\n");
		return 2;
	}
	g.backing = o.backing;
	if (o.image[0] != '/') {
		fprintf(stderr, "plfs: image must be an absolute path\n");
		return 2;
	}
	g.image = o.image;
	g.torn = o.torn;
	g.seed = o.seed ? strtoull(o.seed, NULL, 0) : 1;
	g.rng = g.seed * 2 + 1;
	if ((g.rootfd = open(g.backing, O_RDONLY | O_DIRECTORY)) == -1)
		die(g.backing);
	if (access(g.image, F_OK) == 0) {
		errno = EEXIST;
		die(g.image);
	}
	if ((size_t)snprintf(g.shadow, sizeof(g.shadow), "%s.shadow",
	    g.image) >= sizeof(g.shadow) || mkdir(g.shadow, 0700) == -1)
		die(g.shadow);
	mount_scan();
	rc = fuse_main(args.argc, args.argv, &ops, NULL);
	write_image();
	remove_shadow();
	fuse_opt_free_args(&args);
	return rc;
}
