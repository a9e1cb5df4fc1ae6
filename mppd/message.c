/*
 * message — header section handling for a posted message. The header
 * section is complete at its first empty line, or at the first line that is
 * neither a field nor a continuation (that line begins the body). Then it
 * is read twice -- once to find the resent block, once to gather
 * recipients and judge the authors -- the output header block is built
 * once, and the body streams after it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "log.h"
#include "message.h"
#include "rfc5322.h"
#include "util.h"

enum phase { PH_HEADERS, PH_BODY, PH_DISCARD };

struct message {
	struct message_params p;
	char *strings;			/* one allocation for p's strings */
	enum phase phase;
	struct buf hdr;			/* header section so far */
	size_t line_start;		/* in hdr: start of the open line */
	struct buf out;			/* output not yet spilled */
	unsigned long long text_bytes;	/* client text seen */
	unsigned long long out_bytes;	/* all output */
	message_spill_fn spill;
	void *spill_ctx;
	char **rcpts;
	size_t nrcpts;
	int reject;			/* refused for good */
	int tempfail;			/* could not process */
	const char *reason;
};

static char *
dup_strings(struct message_params *dst, const struct message_params *src)
{
	const char **fields[] = { &dst->queue_id, &dst->client_addr,
	    &dst->hostname, &dst->auth_user, &dst->sender,
	    &dst->sender_domain };
	size_t i, total = 0, n;
	char *block, *p;

	*dst = *src;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		total += strlen(*fields[i]) + 1;
	if ((block = malloc(total)) == NULL)
		return NULL;
	for (p = block, i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		n = strlen(*fields[i]) + 1;
		memcpy(p, *fields[i], n);
		*fields[i] = p;
		p += n;
	}
	return block;
}

struct message *
message_new(const struct message_params *p, message_spill_fn spill,
    void *ctx)
{
	struct message *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	if ((m->strings = dup_strings(&m->p, p)) == NULL) {
		free(m);
		return NULL;
	}
	m->spill = spill;
	m->spill_ctx = ctx;
	m->reason = "";
	return m;
}

static void
message_refuse(struct message *m, const char *why)
{
	if (!m->reject && !m->tempfail) {
		m->reject = 1;
		m->reason = why;
	}
	m->phase = PH_DISCARD;
}

static void
message_fail(struct message *m, const char *why)
{
	if (!m->reject && !m->tempfail) {
		m->tempfail = 1;
		m->reason = why;
	}
	m->phase = PH_DISCARD;
}

/* Add to the output, spilling when the buffer is large. */
static void
out_add(struct message *m, const char *data, size_t len)
{
	if (m->phase == PH_DISCARD)
		return;
	if (buf_append(&m->out, data, len) == -1) {
		message_fail(m, "out of memory");
		return;
	}
	m->out_bytes += len;
	if (m->out.len >= MESSAGE_SPILL_AT && m->spill != NULL) {
		if (m->spill(m->spill_ctx, m->out.data, m->out.len) == -1) {
			message_fail(m, "cannot write spool file");
			return;
		}
		m->out.len = 0;
	}
}

/*
 * Add a recipient unless it is already there. 0, or 1 when the message
 * was refused or failed on the way (the reason is recorded).
 */
static int
rcpt_add(struct message *m, const char *addr, int has_domain)
{
	char full[MESSAGE_ADDR_MAX];
	char **grown;
	size_t i;

	if (has_domain)
		strlcpy(full, addr, sizeof(full));
	else if ((size_t)snprintf(full, sizeof(full), "%s@%s", addr,
	    m->p.sender_domain) >= sizeof(full)) {
		message_refuse(m, "recipient address too long");
		return 1;
	}
	for (i = 0; i < m->nrcpts; i++)
		if (rfc5322_addr_same(m->rcpts[i], full))
			return 0;
	if (m->nrcpts >= m->p.max_rcpts) {
		message_refuse(m, "too many recipients");
		return 1;
	}
	grown = reallocarray(m->rcpts, m->nrcpts + 1, sizeof(*m->rcpts));
	if (grown == NULL || (m->rcpts = grown,
	    (m->rcpts[m->nrcpts] = strdup(full)) == NULL)) {
		message_fail(m, "out of memory");
		return 1;
	}
	m->nrcpts++;
	return 0;
}

static int
rcpt_cb(const char *addr, int has_domain, void *ctx)
{
	return rcpt_add(ctx, addr, has_domain);
}

/* For an address list that is checked but names no recipient. */
static int
check_cb(const char *addr, int has_domain, void *ctx)
{
	return 0;
}

/*
 * What a From: or the resent block's Resent-From: says about its author:
 * how many mailboxes, how many are the poster's, and whether display text
 * in it shows another address.
 */
struct author {
	const char *sender;
	const char *domain;	/* sender_domain, for an address without one */
	int count, matches, other;
};

static int
author_cb(const char *addr, int has_domain, void *ctx)
{
	struct author *a = ctx;
	char full[MESSAGE_ADDR_MAX];

	a->count++;
	/* Judged as it is stored: qualified with sender_domain. */
	if (!has_domain && (size_t)snprintf(full, sizeof(full), "%s@%s", addr,
	    a->domain) < sizeof(full))
		addr = full;
	if (rfc5322_addr_same(addr, a->sender))
		a->matches++;
	return 0;
}

/*
 * A display name or comment that holds an at-sign shows an address to a
 * reader; unless it is, whole, the poster's own, it is a claim the
 * envelope does not back. Text that could not be read faithfully (too
 * long, a charset hiding ASCII) counts as such a claim.
 */
static int
author_text_cb(const char *text, size_t len, int exact, void *ctx)
{
	struct author *a = ctx;

	if (exact && !rfc5322_has_at_sign(text, len))
		return 0;
	if (!exact || strlen(text) != len ||
	    !rfc5322_addr_same(text, a->sender))
		a->other = 1;
	return 0;
}

/* Add field f's mailboxes and display text to *a; -1 if unparseable. */
static int
author_add(struct author *a, const struct rfc5322_field *f)
{
	if (rfc5322_parse_addresses(f->value, f->value_len, author_cb, a) != 0)
		return -1;
	(void)rfc5322_display_text(f->value, f->value_len, author_text_cb, a);
	return 0;
}

/* The author is the poster alone, and says nothing else. */
static int
author_is_sender(const struct author *a)
{
	return a->count == 1 && a->matches == 1 && !a->other;
}

static const char *const rcpt_fields[] = { "To", "Cc", "Bcc", NULL };
/*
 * Fields the client may not set: Bcc: and Resent-Bcc: are secret, Sender:
 * and Resent-Sender: are ours (in an older resent block too, which the
 * server cannot vouch for either), and so is Return-Path:.
 */
static const char *const dropped_fields[] = { "Bcc", "Sender",
    "Return-Path", "Resent-Bcc", "Resent-Sender", NULL };

/* Is f one of the fields in the NULL-ended list names? */
static int
field_in(const struct rfc5322_field *f, const char *const *names)
{
	for (; *names != NULL; names++)
		if (rfc5322_field_is(f, *names))
			return 1;
	return 0;
}

struct header_scan {
	int has_from, has_date, has_msgid;
	int has_rfrom, has_rdate;
	struct author from, rfrom;
	struct rfc5322_resent_block blk;
};

static int
in_block(const struct message *m, const struct header_scan *hs,
    const struct rfc5322_field *f)
{
	size_t at = (size_t)(f->raw - m->hdr.data);

	return at >= hs->blk.start && at < hs->blk.end;
}

/*
 * An address list that may name recipients: those of the resent block
 * when the message is resent, else To:, Cc: and Bcc:. Others are checked
 * only (a resend's To: is the original's; an older block's are history
 * and not checked at all). -1 if unparseable.
 */
static int
scan_rcpt_field(struct message *m, const struct rfc5322_field *f,
    const struct header_scan *hs, int resent)
{
	int take = resent ? in_block(m, hs, f) : !hs->blk.has_rcpt;

	if (resent && !take)
		return 0;
	return rfc5322_parse_addresses(f->value, f->value_len,
	    take ? rcpt_cb : check_cb, m) == -1 ? -1 : 0;
}

/* The resent block's Resent-From: and Resent-Date:. -1 if unparseable. */
static int
scan_resent_field(struct message *m, const struct rfc5322_field *f,
    struct header_scan *hs)
{
	if (!in_block(m, hs, f))
		return 0;
	if (rfc5322_field_is(f, "Resent-Date"))
		hs->has_rdate = 1;
	if (!rfc5322_field_is(f, "Resent-From"))
		return 0;
	hs->has_rfrom = 1;
	return author_add(&hs->rfrom, f);
}

/* Look at one field: gather recipients, check From:. -1 if unparseable. */
static int
scan_field(struct message *m, const struct rfc5322_field *f,
    struct header_scan *hs)
{
	if (field_in(f, rcpt_fields))
		return scan_rcpt_field(m, f, hs, 0);
	if (rfc5322_field_is_resent_rcpt(f))
		return scan_rcpt_field(m, f, hs, 1);
	if (rfc5322_field_is_resent(f))
		return scan_resent_field(m, f, hs);
	if (rfc5322_field_is(f, "From")) {
		/* RFC 5322 allows one From:; a second could show readers
		   another author than the one Sender: is judged against. */
		if (hs->has_from) {
			message_refuse(m, "more than one From: field");
			return 0;
		}
		hs->has_from = 1;
		return author_add(&hs->from, f);
	} else if (rfc5322_field_is(f, "Date"))
		hs->has_date = 1;
	else if (rfc5322_field_is(f, "Message-ID"))
		hs->has_msgid = 1;
	return 0;
}

/*
 * A Received: naming this host after "by" says this host took the message
 * in. For this posting that is our own line; a client's copy of an older
 * one (mail that passed here, posted again) cannot be told from a forgery
 * in the same format, so it goes, and the log says so.
 */
static int
received_forged(const struct message *m, const struct rfc5322_field *f)
{
	char text[256];

	if (!rfc5322_field_is(f, "Received") ||
	    !rfc5322_received_by(f->value, f->value_len, m->p.hostname))
		return 0;
	log_escape(text, sizeof(text), f->value, f->value_len);
	log_info("id=%s dropped=Received reason=\"names this host after by\" "
	    "value=\"%s\"", m->p.queue_id, text);
	return 1;
}

static int
field_dropped(const struct message *m, const struct rfc5322_field *f)
{
	return field_in(f, dropped_fields) || received_forged(m, f);
}

/*
 * Fields whose addresses without a domain get sender_domain in the stored
 * copy, as the recipients taken from them do (Postfix's
 * append_at_myorigin): a reader, and a reply, see the address the mail
 * went to. Sender: and Resent-Sender: are the server's; Bcc: and
 * Resent-Bcc: are dropped. Resent- fields only in the resent block: an
 * older block is another host's history.
 */
static const char *const qualified_fields[] = { "From", "Reply-To", "To",
    "Cc", "Resent-From", "Resent-Reply-To", "Resent-To", "Resent-Cc", NULL };

struct qualify {
	const char *domain;
	const char *value;
	struct buf *out;
	size_t done;		/* value bytes already in out */
	int added;
};

#define QUALIFY_NOMEM 2		/* a callback's "stop": out of memory */

static int
qualify_cb(const char *addr, int has_domain, size_t local_end, void *ctx)
{
	struct qualify *q = ctx;

	if (has_domain)
		return 0;
	if (buf_append(q->out, q->value + q->done, local_end - q->done) ==
	    -1 || buf_printf(q->out, "@%s", q->domain) == -1)
		return QUALIFY_NOMEM;
	q->done = local_end;
	q->added++;
	return 0;
}

/*
 * Emit client field f, with sender_domain after each local part that has
 * no domain when f is one of qualified_fields; a value that is no address
 * list (Reply-To: is not checked) goes out as it came.
 */
static void
emit_field(struct message *m, const struct header_scan *hs,
    const struct rfc5322_field *f)
{
	size_t head = (size_t)(f->value - f->raw);
	struct buf b = { 0 };
	struct qualify q = { m->p.sender_domain, f->value, &b, 0, 0 };
	int rc;

	if (!field_in(f, qualified_fields) ||
	    (rfc5322_field_is_resent(f) && !in_block(m, hs, f))) {
		out_add(m, f->raw, f->raw_len);
		return;
	}
	rc = rfc5322_parse_addresses_at(f->value, f->value_len, qualify_cb,
	    &q);
	if (rc == 0 && q.added > 0 &&
	    buf_append(&b, f->value + q.done, f->raw_len - head - q.done) == 0) {
		out_add(m, f->raw, head);
		out_add(m, b.data, b.len);
	} else if (rc == QUALIFY_NOMEM || (rc == 0 && q.added > 0))
		message_fail(m, "out of memory");
	else
		out_add(m, f->raw, f->raw_len);
	buf_free(&b);
}

static void
add_trace(struct message *m)
{
	char date[64];
	struct buf b = { 0 };

	util_mail_date(m->p.now, date, sizeof(date));
	if (buf_printf(&b, "Received: from [%s] (user %s)\n\tby %s (mppd) "
	    "with MPP id %s;\n\t%s\n", m->p.client_addr, m->p.auth_user,
	    m->p.hostname, m->p.queue_id, date) == -1)
		message_fail(m, "out of memory");
	else
		out_add(m, b.data, b.len);
	buf_free(&b);
}

/*
 * The end of the resent block: a resend says who resent it and when
 * (RFC 5322 requires both), and a Resent-From: that names someone else
 * gets the poster's Resent-Sender:, as From: gets Sender:.
 */
static void
add_resent(struct message *m, const struct header_scan *hs)
{
	char date[64];
	struct buf b = { 0 };
	int rc = 0;

	if (hs->blk.has_rcpt && !hs->has_rfrom)
		rc |= buf_printf(&b, "Resent-From: <%s>\n", m->p.sender);
	if (hs->blk.has_rcpt && !hs->has_rdate) {
		util_mail_date(m->p.now, date, sizeof(date));
		rc |= buf_printf(&b, "Resent-Date: %s\n", date);
	}
	if (hs->has_rfrom && !author_is_sender(&hs->rfrom))
		rc |= buf_printf(&b, "Resent-Sender: <%s>\n", m->p.sender);
	if (rc != 0)
		message_fail(m, "out of memory");
	else
		out_add(m, b.data, b.len);
	buf_free(&b);
}

static void
add_missing(struct message *m, const struct header_scan *hs)
{
	char date[64];
	struct buf b = { 0 };
	int rc = 0;

	if (!hs->has_from)
		rc |= buf_printf(&b, "From: <%s>\n", m->p.sender);
	if (!hs->has_date) {
		util_mail_date(m->p.now, date, sizeof(date));
		rc |= buf_printf(&b, "Date: %s\n", date);
	}
	if (!hs->has_msgid)
		rc |= buf_printf(&b, "Message-ID: <%s@%s>\n", m->p.queue_id,
		    m->p.hostname);
	if (hs->has_from && !author_is_sender(&hs->from))
		rc |= buf_printf(&b, "Sender: <%s>\n", m->p.sender);
	if (rc != 0)
		message_fail(m, "out of memory");
	else
		out_add(m, b.data, b.len);
	buf_free(&b);
}

/* Parse the header section hdr[0..end) into *hs; 0, or -1 when refused. */
static int
headers_scan(struct message *m, size_t end, struct header_scan *hs)
{
	struct rfc5322_field f;
	size_t off = 0;
	int rc;

	hs->from.sender = hs->rfrom.sender = m->p.sender;
	hs->from.domain = hs->rfrom.domain = m->p.sender_domain;
	rfc5322_resent_block(m->hdr.data, end, &hs->blk);
	while ((rc = rfc5322_next_field(m->hdr.data, end, &off, &f)) == 1)
		if (scan_field(m, &f, hs) == -1) {
			message_refuse(m, "unparseable address header");
			return -1;
		} else if (m->phase == PH_DISCARD)
			return -1;
	if (rc == -1 || off != end) {
		message_refuse(m, "unparseable header section");
		return -1;
	}
	return m->phase == PH_DISCARD ? -1 : 0;
}

/*
 * The header section (hdr[0..end)) is complete: parse it and emit the
 * output header block. body_sep: the empty line that ended it was read.
 */
static void
headers_done(struct message *m, size_t end, int body_sep)
{
	struct header_scan hs = { 0 };
	struct rfc5322_field f;
	size_t off = 0;

	if (headers_scan(m, end, &hs) == -1)
		return;
	add_trace(m);
	while (rfc5322_next_field(m->hdr.data, end, &off, &f) == 1) {
		if (!field_dropped(m, &f))
			emit_field(m, &hs, &f);
		if (hs.blk.end > 0 && off == hs.blk.end)
			add_resent(m, &hs);
	}
	add_missing(m, &hs);
	if (body_sep)
		out_add(m, "\n", 1);
	if (m->phase != PH_DISCARD)
		m->phase = PH_BODY;
}

/* Classify the line hdr[start..hdr.len), which ends in LF. */
static void
header_line(struct message *m, size_t start)
{
	const char *line = m->hdr.data + start;
	size_t len = m->hdr.len - start, off = 0, rest;
	struct rfc5322_field f;

	if (len == 1) {				/* the empty line */
		headers_done(m, start, 1);
		buf_consume(&m->hdr, start + 1);
	} else if (line[0] == ' ' || line[0] == '\t') {
		if (start == 0)
			message_refuse(m, "header section begins with "
			    "a continuation line");
		return;
	} else if (rfc5322_next_field(line, len, &off, &f) != 1) {
		headers_done(m, start, 0);	/* a body line: keep it */
		if (m->phase == PH_BODY)
			out_add(m, "\n", 1);
		buf_consume(&m->hdr, start);
	} else
		return;
	/* What is left in hdr is body text. */
	rest = m->hdr.len;
	if (m->phase == PH_BODY && rest > 0)
		out_add(m, m->hdr.data, rest);
	buf_free(&m->hdr);
}

/* Feed header-phase text, line by line. */
static void
headers_feed(struct message *m, const char *data, size_t len)
{
	const char *nl;
	size_t n;

	while (len > 0 && m->phase == PH_HEADERS) {
		nl = memchr(data, '\n', len);
		n = nl != NULL ? (size_t)(nl - data) + 1 : len;
		if (m->hdr.len + n > MESSAGE_HEADER_MAX) {
			message_refuse(m, "header section too large");
			return;
		}
		if (buf_append(&m->hdr, data, n) == -1) {
			message_fail(m, "out of memory");
			return;
		}
		data += n;
		len -= n;
		if (nl != NULL) {
			header_line(m, m->line_start);
			m->line_start = m->hdr.len;
		}
	}
	if (len > 0 && m->phase == PH_BODY)
		out_add(m, data, len);
}

int
message_append(struct message *m, const char *data, size_t len)
{
	m->text_bytes += len;
	if (m->text_bytes > m->p.max_size) {
		message_refuse(m, "message too large");
		return 0;
	}
	if (m->phase == PH_HEADERS)
		headers_feed(m, data, len);
	else if (m->phase == PH_BODY)
		out_add(m, data, len);
	return 0;
}

enum message_verdict
message_finish(struct message *m, int bare_crlf, int nul)
{
	if (bare_crlf)
		message_refuse(m, "bare CR or LF in text");
	if (nul)
		message_refuse(m, "NUL in text");
	if (m->phase == PH_HEADERS) {
		/* Text ended inside the header section (or was empty). */
		headers_done(m, m->hdr.len, 0);
		buf_free(&m->hdr);
	}
	if (!m->reject && !m->tempfail && m->nrcpts == 0)
		message_refuse(m, "no recipient");
	if (m->tempfail)
		return MSG_TEMPFAIL;
	return m->reject ? MSG_REJECT : MSG_OK;
}

const char *
message_reason(const struct message *m)
{
	return m->reason;
}

struct buf *
message_output(struct message *m)
{
	return &m->out;
}

unsigned long long
message_size(const struct message *m)
{
	return m->out_bytes;
}

size_t
message_rcpt_count(const struct message *m)
{
	return m->nrcpts;
}

const char *
message_rcpt(const struct message *m, size_t i)
{
	return i < m->nrcpts ? m->rcpts[i] : NULL;
}

const char *const *
message_rcpts(const struct message *m)
{
	return (const char *const *)m->rcpts;
}

const struct message_params *
message_params(const struct message *m)
{
	return &m->p;
}

void
message_free(struct message *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	buf_free(&m->hdr);
	buf_free(&m->out);
	free(m->strings);
	free(m);
}
