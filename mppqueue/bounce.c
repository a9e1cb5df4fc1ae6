/*
 * bounce — composing and publishing delivery status notifications; see
 * bounce.h. The notice is built as three parts first, so that the
 * boundary can be chosen once every byte it must not occur in is known.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "bounce.h"
#include "util.h"

#define BOUNDARY_TRIES 100

/* The class (2 to 5) of a text that is an SMTP reply, else 0. */
static int
smtp_class(const char *s)
{
	if (s == NULL || s[0] < '2' || s[0] > '5' ||
	    !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
		return 0;
	return s[3] == ' ' || s[3] == '-' || s[3] == '\0' ? s[0] - '0' : 0;
}

/* Length of 1 to 3 digits at s, else 0. */
static size_t
digits(const char *s)
{
	size_t n = 0;

	while (n < 4 && isdigit((unsigned char)s[n]))
		n++;
	return n >= 1 && n <= 3 ? n : 0;
}

/*
 * The enhanced status code (RFC 2034) after an SMTP reply's code, when
 * its class is cls: "550 5.1.1 text" gives 5.1.1. 0 found, -1 not.
 */
static int
enhanced_code(const char *reply, int cls, char *out)
{
	const char *p = reply + 4, *start;
	size_t a, b;

	if (smtp_class(reply) == 0 || reply[3] == '\0' || *p - '0' != cls ||
	    p[1] != '.')
		return -1;
	start = p;
	p += 2;
	if ((a = digits(p)) == 0 || p[a] != '.')
		return -1;
	p += a + 1;
	if ((b = digits(p)) == 0 || (p[b] != ' ' && p[b] != '\0'))
		return -1;
	p += b;
	memcpy(out, start, (size_t)(p - start));
	out[p - start] = '\0';
	return 0;
}

void
bounce_status(const struct bounce_rcpt *r, enum bounce_kind kind, char *out)
{
	int cls = kind == BOUNCE_DELAYED || r->expired ? 4 : 5;

	if (r->error != NULL && enhanced_code(r->error, cls, out) == 0)
		return;
	strlcpy(out, kind == BOUNCE_DELAYED ? "4.0.0" : r->expired ?
	    "4.4.7" : "5.0.0", BOUNCE_STATUS_MAX);
}

/* The original header section: up to its empty line, whole lines, bounded. */
static int
read_headers(int fd, struct buf *out)
{
	char chunk[8192], *end;
	size_t want;
	ssize_t n;
	off_t off = 0;

	while (out->len < BOUNCE_HEADERS_MAX) {
		want = BOUNCE_HEADERS_MAX - out->len;
		if ((n = pread(fd, chunk, want < sizeof(chunk) ? want :
		    sizeof(chunk), off)) < 0)
			return -1;
		if (n == 0)
			break;
		off += n;
		if (buf_append(out, chunk, (size_t)n) == -1 || buf_nul(out) == -1)
			return -1;
		if (out->data[0] == '\n') {
			out->len = 0;	/* no header section at all */
			return 0;
		}
		if ((end = strstr(out->data, "\n\n")) != NULL) {
			out->len = (size_t)(end - out->data) + 1;
			return 0;
		}
	}
	if (out->len == BOUNCE_HEADERS_MAX &&
	    (end = memrchr(out->data, '\n', out->len)) != NULL)
		out->len = (size_t)(end - out->data) + 1;
	if (out->len > 0 && out->data[out->len - 1] != '\n')
		return buf_puts(out, "\n");
	return 0;
}

static int
human_part(struct buf *b, const struct mpp_config *cfg,
    const struct bounce_orig *o, enum bounce_kind kind,
    const struct bounce_rcpt *r, size_t n)
{
	char until[64];
	size_t i;
	int rc;

	rc = buf_printf(b, "This is the mail system at host %s.\n\n",
	    cfg->hostname);
	if (kind == BOUNCE_DELAYED) {
		util_mail_date((time_t)(o->received_at +
		    cfg->max_queue_lifetime), until, sizeof(until));
		rc |= buf_printf(b, "This is a warning only: you need not send "
		    "your message again.\n\nYour message (queue id %s) has not "
		    "yet been delivered to the\nrecipients below. The mail "
		    "system keeps trying until\n%s.\n\n", o->id, until);
	} else
		rc |= buf_printf(b, "Your message (queue id %s) could not be "
		    "delivered to the\nrecipients below. The mail system gave "
		    "up on them.\n\n", o->id);
	for (i = 0; i < n; i++)
		rc |= buf_printf(b, "<%s>: %s%s\n", r[i].addr, r[i].expired ?
		    "the message was too old; last attempt: " : "",
		    r[i].error != NULL && r[i].error[0] != '\0' ? r[i].error :
		    "no reason given");
	rc |= buf_puts(b, "\nThe delivery status of each recipient and the "
	    "header of your message\nfollow.\n");
	return rc == 0 ? 0 : -1;
}

/* One recipient's field group of the message/delivery-status part. */
static int
rcpt_fields(struct buf *b, const struct mpp_config *cfg,
    const struct bounce_orig *o, enum bounce_kind kind,
    const struct bounce_rcpt *r)
{
	char status[BOUNCE_STATUS_MAX], date[64];
	int rc;

	bounce_status(r, kind, status);
	rc = buf_printf(b, "\nFinal-Recipient: rfc822; %s\nAction: %s\n"
	    "Status: %s\n", r->addr, kind == BOUNCE_DELAYED ? "delayed" :
	    "failed", status);
	if (r->error != NULL && r->error[0] != '\0')
		rc |= buf_printf(b, "Diagnostic-Code: %s; %s\n",
		    smtp_class(r->error) != 0 ? "smtp" : "X-Unix", r->error);
	if (r->attempted != 0) {
		util_mail_date(r->attempted, date, sizeof(date));
		rc |= buf_printf(b, "Last-Attempt-Date: %s\n", date);
	}
	if (kind == BOUNCE_DELAYED) {
		util_mail_date((time_t)(o->received_at +
		    cfg->max_queue_lifetime), date, sizeof(date));
		rc |= buf_printf(b, "Will-Retry-Until: %s\n", date);
	}
	return rc == 0 ? 0 : -1;
}

static int
status_part(struct buf *b, const struct mpp_config *cfg,
    const struct bounce_orig *o, enum bounce_kind kind,
    const struct bounce_rcpt *r, size_t n)
{
	char arrived[64];
	size_t i;

	util_mail_date((time_t)o->received_at, arrived, sizeof(arrived));
	if (buf_printf(b, "Reporting-MTA: dns; %s\nX-Mpp-Queue-ID: %s\n"
	    "Arrival-Date: %s\n", cfg->hostname, o->id, arrived) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (rcpt_fields(b, cfg, o, kind, &r[i]) == -1)
			return -1;
	return 0;
}

static int
has_8bit(const struct buf *part)
{
	size_t k;

	for (k = 0; k < part->len; k++)
		if ((unsigned char)part->data[k] >= 0x80)
			return 1;
	return 0;
}

/* A boundary that occurs in no part; -1 when every try does. */
static int
pick_boundary(const char *id, const struct buf *parts, size_t nparts,
    char *out, size_t outsz)
{
	size_t i;
	int t;

	for (t = 0; t < BOUNDARY_TRIES; t++) {
		if (t == 0)
			snprintf(out, outsz, "=_mpp-report-%s", id);
		else
			snprintf(out, outsz, "=_mpp-report-%s-%d", id, t);
		for (i = 0; i < nparts; i++)
			if (parts[i].len > 0 && memmem(parts[i].data,
			    parts[i].len, out, strlen(out)) != NULL)
				break;
		if (i == nparts)
			return 0;
	}
	return -1;
}

static int
top_header(struct buf *b, const struct mpp_config *cfg, const char *id,
    const struct bounce_orig *o, enum bounce_kind kind, const char *bnd,
    int eightbit, time_t now)
{
	char date[64];

	util_mail_date(now, date, sizeof(date));
	return buf_printf(b, "Received: by %s (mppqueue) id %s;\n\t%s\n"
	    "From: Mail Delivery System <MAILER-DAEMON@%s>\nTo: <%s>\n"
	    "Subject: %s\nDate: %s\nMessage-ID: <%s@%s>\n"
	    "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\n"
	    "\tboundary=\"%s\"\n%s\nThis is a MIME-encapsulated message.\n\n",
	    cfg->hostname, id, date, cfg->hostname, o->sender,
	    kind == BOUNCE_DELAYED ? "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender", date, id, cfg->hostname,
	    bnd, eightbit ? "Content-Transfer-Encoding: 8bit\n" : "");
}

/*
 * The three parts, each with its own header, joined by the boundary. A
 * part with 8-bit bytes (an address or header in UTF-8) says so.
 */
static int
assemble(struct buf *out, const struct buf parts[3], const char *bnd,
    enum bounce_kind kind)
{
	const char *head[3] = {
		"Content-Description: Notification\n"
		    "Content-Type: text/plain; charset=utf-8\n",
		"Content-Description: Delivery report\n"
		    "Content-Type: message/delivery-status\n",
		kind == BOUNCE_DELAYED ? "Content-Description: Message headers\n"
		    "Content-Type: text/rfc822-headers\n" :
		    "Content-Description: Undelivered message headers\n"
		    "Content-Type: text/rfc822-headers\n"
	};
	int i, rc = 0;

	for (i = 0; i < 3; i++) {
		rc |= buf_printf(out, "--%s\n%s%s\n", bnd, head[i],
		    has_8bit(&parts[i]) ?
		    "Content-Transfer-Encoding: 8bit\n" : "");
		rc |= buf_append(out, parts[i].data, parts[i].len);
		rc |= buf_puts(out, "\n");
	}
	rc |= buf_printf(out, "--%s--\n", bnd);
	return rc == 0 ? 0 : -1;
}

int
bounce_compose(struct buf *out, const struct mpp_config *cfg,
    const char *id, const struct bounce_orig *o, enum bounce_kind kind,
    const struct bounce_rcpt *r, size_t n, time_t now)
{
	struct buf parts[3] = { { 0 }, { 0 }, { 0 } };
	char bnd[SPOOL_ID_MAX + 32];
	int rc = -1;

	/* Headers that cannot be read are left out: the notice matters more. */
	if (o->fd != -1 && read_headers(o->fd, &parts[2]) == -1)
		parts[2].len = 0;
	if (human_part(&parts[0], cfg, o, kind, r, n) == -1 ||
	    status_part(&parts[1], cfg, o, kind, r, n) == -1 ||
	    pick_boundary(id, parts, 3, bnd, sizeof(bnd)) == -1)
		goto fail;
	if (top_header(out, cfg, id, o, kind, bnd, has_8bit(&parts[0]) ||
	    has_8bit(&parts[1]) || has_8bit(&parts[2]), now) == -1 ||
	    assemble(out, parts, bnd, kind) == -1)
		goto fail;
	rc = 0;
fail:
	buf_free(&parts[0]);
	buf_free(&parts[1]);
	buf_free(&parts[2]);
	return rc;
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
    const struct bounce_orig *o, enum bounce_kind kind,
    const struct bounce_rcpt *r, size_t n, time_t now, struct bounce *b)
{
	struct buf text = { 0 };
	int rc = -1;

	memset(b, 0, sizeof(*b));
	spool_new_id(b->id, sizeof(b->id));
	if (strlcpy(b->to, o->sender, sizeof(b->to)) >= sizeof(b->to))
		return -1;
	if (bounce_compose(&text, cfg, b->id, o, kind, r, n, now) == -1 ||
	    publish(sp, b->id, &text) == -1)
		goto fail;
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
fail:
	buf_free(&text);
	return rc;
}

void
bounce_discard(const struct spool *sp, const struct bounce *b)
{
	(void)spool_remove(sp, b->id);
}
