/*
 * spare — the files of delivered messages, kept emptied in spool_dir/spare/
 * for mppd to write the next messages into, instead of freeing an inode
 * for each message delivered and finding another for each one accepted.
 * On ext4 without a journal the second costs a walk past every inode of
 * the group freed in the last minutes, and a gateway frees one a message
 * (docs/performance.md, "The steady state").
 *
 * A name in spare/ is trusted only within one run: a rename is two
 * directory changes and a power cut may keep either alone, so after a cut
 * a name in spare/ may share its file with one in new/ or cur/. The
 * reconciliation at start removes every name there (spare_clear), which
 * leaves a file that has another name in place, and spare_take() rewrites
 * only a file that has no other name (st_nlink 1).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "spare.h"
#include "util.h"

/* A spool's pool as this process sees it (spool_open makes one). */
struct spare_state {
	/* the runner's view of its size, shared by its threads */
	pthread_mutex_t count_lock;
	unsigned known;		/* names seen at the last count */
	unsigned added;		/* retired since */
	long long counted_ms;	/* 0: never counted */
	/* mppd's names to try, read from spare/ a batch at a time */
	pthread_mutex_t names_lock;
	char names[SPARE_BATCH][SPOOL_ID_MAX];
	unsigned n;
	long long next_look_ms;
};

struct spare_state *
spare_state_new(void)
{
	struct spare_state *ss = calloc(1, sizeof(*ss));

	if (ss == NULL)
		return NULL;
	pthread_mutex_init(&ss->count_lock, NULL);
	pthread_mutex_init(&ss->names_lock, NULL);
	return ss;
}

void
spare_state_free(struct spare_state *ss)
{
	if (ss == NULL)
		return;
	pthread_mutex_destroy(&ss->count_lock);
	pthread_mutex_destroy(&ss->names_lock);
	free(ss);
}

/* Calls fn for each spare's name, at most max; the number seen. */
static unsigned
each_spare(const struct spool *sp, unsigned max,
    void (*fn)(const struct spool *, const char *, void *), void *ctx)
{
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	if ((d = spool_dir_open(sp->sparefd)) == NULL)
		return 0;
	while (n < max && (de = readdir(d)) != NULL) {
		if (!spool_id_valid(de->d_name))
			continue;
		n++;
		if (fn != NULL)
			fn(sp, de->d_name, ctx);
	}
	closedir(d);
	return n;
}

/* Counted at first, then again once full, at most every RECOUNT_MS. */
static int
pool_has_room(const struct spool *sp)
{
	struct spare_state *ss = sp->spare;
	long long now = util_now_ms();
	int room;

	pthread_mutex_lock(&ss->count_lock);
	if (ss->counted_ms == 0 || (ss->known + ss->added >= SPARE_MAX &&
	    now - ss->counted_ms >= SPARE_RECOUNT_MS)) {
		ss->known = each_spare(sp, SPARE_MAX, NULL, NULL);
		ss->added = 0;
		ss->counted_ms = now;
	}
	room = ss->known + ss->added < SPARE_MAX;
	if (room)
		ss->added++;
	pthread_mutex_unlock(&ss->count_lock);
	return room;
}

/* ID's file moved from new/ (where a first attempt leaves it) or cur/. */
static int
move_to_spare(const struct spool *sp, const char *id)
{
	if (renameat(sp->newfd, id, sp->sparefd, id) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	return renameat(sp->curfd, id, sp->sparefd, id);
}

int
spare_retire(const struct spool *sp, const char *id)
{
	int fd;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (sp->sparefd == -1 || sp->spare == NULL || !pool_has_room(sp))
		return spool_remove(sp, id);
	if (move_to_spare(sp, id) == -1)
		return errno == ENOENT ? -1 : spool_remove(sp, id);
	/* The message's text goes with it: a spare holds no mail. */
	fd = openat(sp->sparefd, id, O_WRONLY | O_TRUNC | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return unlinkat(sp->sparefd, id, 0);
	close(fd);
	return 0;
}

static void
remove_spare(const struct spool *sp, const char *name, void *ctx)
{
	unsigned *removed = ctx;

	if (unlinkat(sp->sparefd, name, 0) == 0)
		(*removed)++;
}

unsigned
spare_clear(const struct spool *sp)
{
	unsigned removed = 0;

	if (sp->sparefd != -1)
		(void)each_spare(sp, UINT_MAX, remove_spare, &removed);
	return removed;
}

static void
keep_name(const struct spool *sp, const char *name, void *ctx)
{
	struct spare_state *ss = sp->spare;

	(void)ctx;
	strlcpy(ss->names[ss->n++], name, SPOOL_ID_MAX);
}

/* The next name to try into name; 0 when there is none just now. */
static int
next_name(const struct spool *sp, char *name)
{
	struct spare_state *ss = sp->spare;
	long long now;
	int got = 0;

	pthread_mutex_lock(&ss->names_lock);
	if (ss->n == 0 && (now = util_now_ms()) >= ss->next_look_ms) {
		(void)each_spare(sp, SPARE_BATCH, keep_name, NULL);
		/* An empty pool is read again only after a while: a
		   directory read per message would cost more than it saves. */
		if (ss->n == 0)
			ss->next_look_ms = now + SPARE_IDLE_MS;
	}
	if (ss->n > 0) {
		strlcpy(name, ss->names[--ss->n], SPOOL_ID_MAX);
		got = 1;
	}
	pthread_mutex_unlock(&ss->names_lock);
	return got;
}

/*
 * A file mppd may rewrite: a plain file of its own with no other name,
 * then emptied (looked at before: another name's text must stay).
 */
static int
rewritable(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1 || st.st_uid != geteuid())
		return 0;
	if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) == -1)
		return 0;
	return st.st_size == 0 || ftruncate(fd, 0) == 0;
}

int
spare_take(const struct spool *sp, const char *id)
{
	char name[SPOOL_ID_MAX];
	int fd;

	if (sp->sparefd == -1 || sp->spare == NULL)
		return -1;
	while (next_name(sp, name)) {
		if (renameat(sp->sparefd, name, sp->tmpfd, id) == -1)
			continue;	/* another mppd took it, or a start cleared it */
		fd = openat(sp->tmpfd, id, O_WRONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
		if (fd != -1 && rewritable(fd))
			return fd;
		if (fd != -1)
			close(fd);
		(void)unlinkat(sp->tmpfd, id, 0);
	}
	return -1;
}
