/*
 * reconcile — directory scans with fstatat() on the spool's handles, and
 * the lease check through the index.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index_queue.h"
#include "log.h"
#include "reconcile.h"
#include "spare.h"

static int
file_age(int dfd, const char *name, time_t now, time_t *age)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISREG(st.st_mode))
		return -1;
	*age = now - st.st_mtime;
	return 0;
}

/*
 * An empty file an mppd made ahead and never used (SPOOL_MADE_SUFFIX):
 * its maker is gone when no process has its pid. Only one host uses a
 * spool (its index is SQLite in WAL mode), so the pid is this host's.
 */
static int
made_by_gone(const char *name)
{
	long pid = spool_made_maker(name);

	return pid > 0 && kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

static void
clean_tmp(const struct spool *sp, time_t now, struct reconcile_stats *st)
{
	struct dirent *de;
	time_t age;
	DIR *d;

	if ((d = spool_dir_open(sp->tmpfd)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    file_age(sp->tmpfd, de->d_name, now, &age) == -1 ||
		    (age <= RECONCILE_TMP_AGE && !made_by_gone(de->d_name)))
			continue;
		if (unlinkat(sp->tmpfd, de->d_name, 0) == 0) {
			log_info("id=%s removed stale tmp file", de->d_name);
			st->tmp_removed++;
		}
	}
	closedir(d);
}

/*
 * A runner removes a sent message's file after recording it; if that
 * unlink failed, or a power cut undid it, the file would stay beside its
 * 'sent' row until the row is purged (sent_retention later). A message
 * sent at its first attempt goes from new/, the others from cur/.
 */
static void
remove_sent(int dfd, const char *name)
{
	if (unlinkat(dfd, name, 0) == 0)
		log_info("id=%s removed the file of a sent message", name);
	else
		log_warn("id=%s cannot remove the file of a sent message",
		    name);
}

/*
 * The lookups of a directory go in read transactions of this many files:
 * one each cost SQLite's locking twice per file, most of the time of a
 * start on a large spool; a transaction over all of a million files would
 * hold back the WAL's checkpoints for as long.
 */
#define LOOKUPS_PER_TXN 4096

/*
 * One file of new/ or cur/: sent and left behind, or an orphan. One
 * lookup a file, whatever its age: a start on a large spool is mostly
 * these.
 */
static void
check_file(const struct spool *sp, int dfd, const char *sub,
    const char *name, struct index *ix, time_t now,
    struct reconcile_stats *st)
{
	time_t age;
	int need;

	if (name[0] == '.' || file_age(dfd, name, now, &age) == -1 ||
	    (need = index_file_need(ix, name)) == -1)
		return;
	if (need == INDEX_FILE_DONE) {
		remove_sent(dfd, name);
		return;
	}
	if (need != INDEX_FILE_NO_ROW || age <= RECONCILE_ORPHAN_AGE)
		return;
	if (spool_to_orphans(sp, dfd, name) == 0) {
		log_warnx("id=%s file in %s/ has no index row: moved to "
		    "orphans/", name, sub);
		st->orphans++;
	}
}

/* A directory's names in one block, with their offsets (sorted). */
struct names {
	char *buf;
	size_t len, cap;
	size_t *off;
	size_t n, ncap;
};

static int
names_add(struct names *nm, const char *name)
{
	size_t k = strlen(name) + 1;
	void *p;

	if (nm->len + k > nm->cap) {
		if ((p = realloc(nm->buf, (nm->cap + k) * 2)) == NULL)
			return -1;
		nm->buf = p;
		nm->cap = (nm->cap + k) * 2;
	}
	if (nm->n == nm->ncap) {
		if ((p = reallocarray(nm->off, nm->ncap * 2 + 64,
		    sizeof(*nm->off))) == NULL)
			return -1;
		nm->off = p;
		nm->ncap = nm->ncap * 2 + 64;
	}
	memcpy(nm->buf + nm->len, name, k);
	nm->off[nm->n++] = nm->len;
	nm->len += k;
	return 0;
}

static int
names_cmp(const void *a, const void *b, void *buf)
{
	return strcmp((char *)buf + *(const size_t *)a,
	    (char *)buf + *(const size_t *)b);
}

static void
names_free(struct names *nm)
{
	free(nm->buf);
	free(nm->off);
	memset(nm, 0, sizeof(*nm));
}

/*
 * Every name of the directory but dot files, in name order; -1 (names
 * freed) when out of memory or the directory cannot be read.
 */
static int
names_read(int dfd, struct names *nm)
{
	struct dirent *de;
	DIR *d;

	memset(nm, 0, sizeof(*nm));
	if ((d = spool_dir_open(dfd)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && names_add(nm, de->d_name) == -1) {
			closedir(d);
			names_free(nm);
			return -1;
		}
	closedir(d);
	if (nm->n > 1)
		qsort_r(nm->off, nm->n, sizeof(*nm->off), names_cmp, nm->buf);
	return 0;
}

/*
 * In name order, which is the order of the queue ids in the index and,
 * nearly, of the rows and the inodes: on a spool of a million files the
 * lookups then read each page of the index once instead of at random
 * (readdir gives hash order), for the price of the names in memory
 * (under 80 bytes each) while it runs.
 */
static void
find_orphans(const struct spool *sp, int dfd, const char *sub,
    struct index *ix, time_t now, struct reconcile_stats *st)
{
	struct names nm;
	size_t i;
	int txn = 0;

	if (names_read(dfd, &nm) == -1) {
		log_warn("cannot read %s/ to reconcile it", sub);
		return;
	}
	for (i = 0; i < nm.n; i++) {
		if (txn && i % LOOKUPS_PER_TXN == 0) {
			index_read_end(ix);
			txn = 0;
		}
		if (!txn)
			txn = index_read_begin(ix) == 0;
		check_file(sp, dfd, sub, nm.buf + nm.off[i], ix, now, st);
	}
	if (txn)
		index_read_end(ix);
	names_free(&nm);
}

int
reconcile_spool(const struct spool *sp, struct index *ix,
    const char *hostname, time_t now, struct reconcile_stats *st)
{
	int n;

	memset(st, 0, sizeof(*st));
	clean_tmp(sp, now, st);
	find_orphans(sp, sp->newfd, "new", ix, now, st);
	find_orphans(sp, sp->curfd, "cur", ix, now, st);
	if ((n = index_release_stale_leases(ix, hostname, now)) < 0) {
		log_warnx("lease check failed: %s", index_errmsg(ix));
		return -1;
	}
	st->leases_released = (unsigned)n;
	return 0;
}

int
reconcile_at_start(const struct spool *sp, enum index_sync sync,
    const char *hostname, char *err, size_t errsz)
{
	struct reconcile_stats rs;
	struct index *ix;

	if ((ix = index_open(sp->dir, sync, err, errsz)) == NULL)
		return -1;
	(void)spare_clear(sp);	/* names of an earlier run: see spare.c */
	if (reconcile_spool(sp, ix, hostname, time(NULL), &rs) == 0 &&
	    (rs.tmp_removed || rs.orphans || rs.leases_released))
		log_info("reconciled spool: tmp_removed=%u orphans=%u "
		    "leases_released=%u", rs.tmp_removed, rs.orphans,
		    rs.leases_released);
	index_close(ix);
	return 0;
}
