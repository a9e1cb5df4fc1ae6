/*
 * spool — the maildir-style message store (DESIGN.md, "Spool and index"):
 * tmp/ being written, new/ accepted, cur/ seen by a runner, orphans/ files
 * found without an index row, spare/ delivered files kept for reuse (spare.h). The file name is the queue id. This module
 * owns the directory handles and the durable publish step; every function
 * returns 0 / -1 with errno unless it says otherwise.
 */
#ifndef MPP_SPOOL_H
#define MPP_SPOOL_H

#include <dirent.h>
#include <limits.h>
#include <stddef.h>

#define SPOOL_ID_MAX 64

struct spare_state;		/* spare.c */

struct spool {
	char dir[PATH_MAX];
	int dirfd, tmpfd, newfd, curfd, orphfd, sparefd;
	struct spare_state *spare;
};

/*
 * Open the spool at dir, creating it and its subdirectories (mode 0700)
 * when missing. -1 with a message in err.
 */
int spool_open(struct spool *sp, const char *dir, char *err, size_t errsz);
void spool_close(struct spool *sp);

/*
 * One of the spool's directories (its handle, such as sp->tmpfd) to read
 * from the start; an open of its own, so threads and handles share no
 * offset. closedir() it.
 */
DIR *spool_dir_open(int dirfd);

/* A new unique queue id (maildir style); thread-safe. */
void spool_new_id(char *id, size_t idsz);

/*
 * Files made in tmp/ ahead of the texts that will be written into them
 * (mppd/store.c) are named by a fresh id and this suffix: the maker's pid
 * is in the name, so that a start can remove those of a process gone.
 */
#define SPOOL_MADE_SUFFIX ".ready"
void spool_made_name(char *name, size_t namesz);
/* The pid in such a name; 0 when name is no made file's. */
long spool_made_maker(const char *name);

/* Create tmp/ID exclusively for writing; returns the fd or -1. */
int spool_tmp_open(const struct spool *sp, const char *id);

/*
 * The durable part of accepting a message: fsync fd, close it, rename
 * tmp/ID to new/ID. The caller fsyncs new/ (spool_sync_new) before it
 * commits the index row, once for any number of messages. fd is closed
 * whatever happens; on failure tmp/ID is removed.
 */
int spool_publish(const struct spool *sp, int fd, const char *id);
/* The same for a file written under another name in tmp/. */
int spool_publish_as(const struct spool *sp, int fd, const char *tmpname,
    const char *id);
int spool_sync_new(const struct spool *sp);

/* Remove tmp/ID (a message that will not be stored). */
void spool_tmp_discard(const struct spool *sp, const char *id);

/* Path of ID in new/ or cur/; -1 (ENOENT) when in neither. */
int spool_find(const struct spool *sp, const char *id, char *path,
    size_t pathsz);
/* Open ID for reading from new/ or cur/. */
int spool_open_msg(const struct spool *sp, const char *id);
/*
 * Move new/ID to cur/ID (done when a runner first sees it), durably: the
 * name in cur/ is on disk before the one in new/ is removed.
 */
int spool_to_cur(const struct spool *sp, const char *id);
/* Move ID from fromfd (new/ or cur/) to orphans/, durably likewise. */
int spool_to_orphans(const struct spool *sp, int fromfd, const char *id);
/* Remove ID from new/ or cur/. */
int spool_remove(const struct spool *sp, const char *id);

/*
 * Wake the queue runners: one byte into the FIFO spool_dir/trigger, if a
 * runner has it open. Never blocks; failures are ignored (the runner's
 * periodic scan is the fallback).
 */
void spool_wake(const struct spool *sp);

/* A queue id must be a plain file name made by spool_new_id's alphabet. */
int spool_id_valid(const char *id);

#endif
