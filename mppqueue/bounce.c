/* bounce — composing and publishing the notice; see bounce.h. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "bounce.h"
#include "buf.h"
#include "util.h"

/* The original header section: up to its empty line, bounded. */
static int
read_headers(int fd, struct buf *out)
{
	char chunk[8192], *end;
	ssize_t n = 0;
	off_t off = 0;

	while (out->len < BOUNCE_HEADERS_MAX &&
	    (n = pread(fd, chunk, sizeof(chunk), off)) > 0) {
		off += n;
		if (buf_append(out, chunk, (size_t)n) == -1)
			return -1;
		if (buf_nul(out) == -1)
			return -1;
		if ((end = strstr(out->data, "\n\n")) != NULL) {
			out->len = (size_t)(end - out->data) + 1;
			return 0;
		}
	}
	if (out->len > BOUNCE_HEADERS_MAX)
		out->len = BOUNCE_HEADERS_MAX;
	return n < 0 ? -1 : 0;
}

static int
compose(struct buf *b, const struct mpp_config *cfg, const char *id,
    const char *orig_id, const char *sender,
    const struct bounce_rcpt *failed, size_t nfailed, time_t now)
{
	char date[64];
	size_t i;
	int rc = 0;

	util_mail_date(now, date, sizeof(date));
	rc |= buf_printf(b, "Received: by %s (mppqueue) id %s;\n\t%s\n"
	    "From: Mail Delivery System <MAILER-DAEMON@%s>\n"
	    "To: <%s>\nSubject: Undelivered Mail Returned to Sender\n"
	    "Date: %s\nMessage-ID: <%s@%s>\nAuto-Submitted: auto-replied\n"
	    "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n",
	    cfg->hostname, id, date, cfg->hostname, sender, date, id,
	    cfg->hostname);
	rc |= buf_printf(b, "This is the mail system at %s.\n\n"
	    "Your message (queue id %s) could not be delivered to the\n"
	    "following recipients. The mail system gave up on them:\n\n",
	    cfg->hostname, orig_id);
	for (i = 0; i < nfailed; i++)
		rc |= buf_printf(b, "<%s>: %s\n", failed[i].addr,
		    failed[i].error[0] ? failed[i].error : "failed");
	rc |= buf_puts(b, "\n--- The header of your message follows ---\n\n");
	return rc == 0 ? 0 : -1;
}

static int
publish(const struct spool *sp, const char *id, const struct buf *text)
{
	int fd = spool_tmp_open(sp, id);

	if (fd == -1)
		return -1;
	if (util_write_all(fd, text->data, text->len) == -1) {
		close(fd);
		spool_tmp_discard(sp, id);
		return -1;
	}
	if (spool_publish(sp, fd, id) == -1)
		return -1;
	if (spool_sync_new(sp) == -1) {
		(void)spool_remove(sp, id);
		return -1;
	}
	return 0;
}

int
bounce_create(const struct spool *sp, const struct mpp_config *cfg,
    const char *orig_id, int orig_fd, const char *sender,
    const struct bounce_rcpt *failed, size_t nfailed, time_t now,
    struct bounce *b)
{
	struct buf text = { 0 }, hdr = { 0 };
	int rc = -1;

	memset(b, 0, sizeof(*b));
	spool_new_id(b->id, sizeof(b->id));
	if (strlcpy(b->to, sender, sizeof(b->to)) >= sizeof(b->to))
		return -1;
	if (compose(&text, cfg, b->id, orig_id, sender, failed, nfailed,
	    now) == -1 || (orig_fd != -1 && read_headers(orig_fd, &hdr) == 0 &&
	    buf_append(&text, hdr.data, hdr.len) == -1))
		goto out;
	if (publish(sp, b->id, &text) == -1)
		goto out;
	b->rcpt_list[0] = b->to;
	b->row.id = b->id;
	b->row.auth_user = "";
	b->row.sender = "";
	b->row.client_addr = "local";
	b->row.size = text.len;
	b->row.received_at = (long long)now;
	b->row.is_bounce = 1;
	b->row.nrcpts = 1;
	b->row.rcpts = b->rcpt_list;
	rc = 0;
out:
	buf_free(&text);
	buf_free(&hdr);
	return rc;
}

void
bounce_discard(const struct spool *sp, const struct bounce *b)
{
	(void)spool_remove(sp, b->id);
}
