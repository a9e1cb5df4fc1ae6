/*
 * message — header section handling for a posted message. The header
 * section is complete at its first empty line, or at the first line that is
 * neither a field nor a continuation (that line begins the body). Then the
 * output header block is built once, and the body streams after it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

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

struct from_check {
	const char *sender;
	int count;
	int matches;
};

static int
from_cb(const char *addr, int has_domain, void *ctx)
{
	struct from_check *fc = ctx;

	fc->count++;
	if (has_domain && rfc5322_addr_same(addr, fc->sender))
		fc->matches++;
	return 0;
}

struct header_scan {
	int has_from, has_date, has_msgid;
	int from_is_sender;
};

/* Look at one field: gather recipients, check From:. -1 if unparseable. */
static int
scan_field(struct message *m, const struct rfc5322_field *f,
    struct header_scan *hs)
{
	struct from_check fc = { m->p.sender, 0, 0 };

	if (rfc5322_field_is(f, "To") || rfc5322_field_is(f, "Cc") ||
	    rfc5322_field_is(f, "Bcc"))
		return rfc5322_parse_addresses(f->value, f->value_len,
		    rcpt_cb, m) == -1 ? -1 : 0;
	if (rfc5322_field_is(f, "From")) {
		/* RFC 5322 allows one From:; a second could show readers
		   another author than the one Sender: is judged against. */
		if (hs->has_from) {
			message_refuse(m, "more than one From: field");
			return 0;
		}
		if (rfc5322_parse_addresses(f->value, f->value_len, from_cb,
		    &fc) != 0)
			return -1;
		hs->has_from = 1;
		hs->from_is_sender = fc.count == 1 && fc.matches == 1;
	} else if (rfc5322_field_is(f, "Date"))
		hs->has_date = 1;
	else if (rfc5322_field_is(f, "Message-ID"))
		hs->has_msgid = 1;
	return 0;
}

/* Fields the client may not set: Bcc: is secret, Sender: is ours. */
static int
field_dropped(const struct rfc5322_field *f)
{
	return rfc5322_field_is(f, "Bcc") || rfc5322_field_is(f, "Sender") ||
	    rfc5322_field_is(f, "Return-Path");
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
	if (hs->has_from && !hs->from_is_sender)
		rc |= buf_printf(&b, "Sender: <%s>\n", m->p.sender);
	if (rc != 0)
		message_fail(m, "out of memory");
	else
		out_add(m, b.data, b.len);
	buf_free(&b);
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
	int rc;

	while ((rc = rfc5322_next_field(m->hdr.data, end, &off, &f)) == 1)
		if (scan_field(m, &f, &hs) == -1) {
			message_refuse(m, "unparseable address header");
			return;
		} else if (m->phase == PH_DISCARD)
			return;
	if (rc == -1 || off != end) {
		message_refuse(m, "unparseable header section");
		return;
	}
	if (m->phase == PH_DISCARD)
		return;
	add_trace(m);
	off = 0;
	while (rfc5322_next_field(m->hdr.data, end, &off, &f) == 1)
		if (!field_dropped(&f))
			out_add(m, f.raw, f.raw_len);
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
