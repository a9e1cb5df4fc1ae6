/*
 * transport_maildir — local delivery into one maildir (DIR/tmp, new,
 * cur): one copy per recipient, with Return-Path: naming the envelope
 * sender and X-Envelope-To: that recipient alone, written to tmp/,
 * fsync'ed and renamed into new/. For the quick start and for tests that
 * need no MTA.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "buf.h"
#include "spool.h"
#include "transport.h"
#include "util.h"

struct maildir {
	int tmpfd, newfd;
	char host[CONFIG_STR_MAX];
};

static int
subdir(const char *dir, const char *name)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    sizeof(path) || (mkdir(path, 0700) == -1 && errno != EEXIST))
		return -1;
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void *
maildir_open(const struct mpp_config *cfg, char *err, size_t errsz)
{
	const char *dir = cfg->transport.path;
	struct maildir *md;
	int curfd;

	if ((md = calloc(1, sizeof(*md))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	strlcpy(md->host, cfg->hostname, sizeof(md->host));
	if ((mkdir(dir, 0700) == -1 && errno != EEXIST) ||
	    (md->tmpfd = subdir(dir, "tmp")) == -1 ||
	    (md->newfd = subdir(dir, "new")) == -1 ||
	    (curfd = subdir(dir, "cur")) == -1) {
		snprintf(err, errsz, "maildir %s: %s", dir, strerror(errno));
		free(md);
		return NULL;
	}
	close(curfd);
	return md;
}

/* The envelope lines of the copy for recipient rcpt. */
static int
write_envelope(int fd, const struct transport_msg *m, const char *rcpt)
{
	struct buf b = { 0 };
	int rc = buf_printf(&b, "Return-Path: <%s>\nX-Envelope-To: <%s>\n",
	    m->sender, rcpt);

	if (rc == 0)
		rc = util_write_all(fd, b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
copy_file(int out, int in)
{
	char chunk[65536];
	ssize_t n;
	off_t off = 0;

	while ((n = pread(in, chunk, sizeof(chunk), off)) > 0) {
		if (util_write_all(out, chunk, (size_t)n) == -1)
			return -1;
		off += n;
	}
	return n == 0 ? 0 : -1;
}

/* Write one copy of m for recipient r, durably, and set r's result. */
static void
deliver_one(struct maildir *md, const struct transport_msg *m,
    struct transport_rcpt *r)
{
	char name[SPOOL_ID_MAX + CONFIG_STR_MAX];
	int fd, rc, created = 0;

	spool_new_id(name, SPOOL_ID_MAX);
	strlcat(name, ".", sizeof(name));
	strlcat(name, md->host, sizeof(name));
	fd = openat(md->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	if (fd == -1)
		goto fail;
	created = 1;
	if (write_envelope(fd, m, r->addr) == -1 ||
	    copy_file(fd, m->fd) == -1 || fsync(fd) == -1)
		goto fail;
	rc = close(fd);
	fd = -1;
	if (rc == -1 || renameat(md->tmpfd, name, md->newfd, name) == -1 ||
	    fsync(md->newfd) == -1)
		goto fail;
	r->result = OUTCOME_OK;
	snprintf(r->reply, sizeof(r->reply), "delivered to maildir as %.400s",
	    name);
	return;
fail:
	r->result = OUTCOME_TEMP;
	snprintf(r->reply, sizeof(r->reply), "maildir: %s", strerror(errno));
	if (fd != -1)
		close(fd);
	if (created)
		(void)unlinkat(md->tmpfd, name, 0);
}

/*
 * One copy per recipient, each naming only its own: a single copy naming
 * them all would show every reader of the maildir the Bcc recipients.
 */
static enum transport_status
maildir_deliver(void *state, const struct transport_msg *m,
    struct transport_rcpt *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		deliver_one(state, m, &r[i]);
	return TRANSPORT_ANSWERED;
}

static void
maildir_close(void *state)
{
	struct maildir *md = state;

	close(md->tmpfd);
	close(md->newfd);
	free(md);
}

const struct transport_ops transport_maildir_ops = {
	.open = maildir_open,
	.deliver = maildir_deliver,
	.close = maildir_close,
};
