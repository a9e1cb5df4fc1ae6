/*
 * mpp_rcpt — a message's recipients and the faults the server refuses it
 * for, from the client's side. See mpp_rcpt.h for why a client cares.
 *
 * The header section is read raw (LF or CRLF line ends, as the caller's
 * input has them) and sent on raw, so that the text on the wire is what it
 * would have been without this module; only the copy that is parsed has
 * its CRLFs turned into LFs, as the server's text reader turns them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "mpp_rcpt.h"

/* rfc5322_parse_addresses callback: copy the one address of an operand. */
struct operand_walk {
	struct mpp_rcpt_list *l;
	const char *operand;
	size_t found;
	int nomem;
};

static int
operand_cb(const char *addr, int has_domain, void *ctx)
{
	struct operand_walk *w = ctx;
	struct mpp_rcpt_addr *grown;
	size_t i;

	w->found++;
	for (i = 0; i < w->l->n; i++)
		if (rfc5322_addr_same(w->l->v[i].addr, addr))
			return 0;
	grown = reallocarray(w->l->v, w->l->n + 1, sizeof(*w->l->v));
	if (grown == NULL) {
		w->nomem = 1;
		return 1;
	}
	w->l->v = grown;
	/* The parser bounds an address by RFC5322_ADDR_MAX: it fits. */
	strlcpy(grown[w->l->n].addr, addr, sizeof(grown[w->l->n].addr));
	grown[w->l->n].operand = w->operand;
	w->l->n++;
	return 0;
}

int
mpp_rcpt_list_add(struct mpp_rcpt_list *l, const char *operand, char *err,
    size_t errsz)
{
	struct operand_walk w = { l, operand, 0, 0 };
	int rc;

	rc = rfc5322_parse_addresses(operand, strlen(operand), operand_cb, &w);
	if (w.nomem) {
		(void)snprintf(err, errsz, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	if (rc != 0 || w.found == 0) {
		/* Cut to fit is fine: the operand comes first. */
		(void)snprintf(err, errsz, "recipient \"%s\": %s", operand,
		    rc != 0 ? "not an address" : "names no address");
		errno = EINVAL;
		return -1;
	}
	return 0;
}

void
mpp_rcpt_list_free(struct mpp_rcpt_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void
mpp_rcpt_init(struct mpp_rcpt *r)
{
	r->len = r->line_start = r->hdr_end = 0;
	r->done = r->overflow = r->too_large = r->starts_folded = 0;
	r->fields = NULL;
	r->fields_len = 0;
	r->line = 1;
	r->bare_cr_line = r->nul_line = 0;
	r->cr = 0;
	r->text_bytes = 0;
}

void
mpp_rcpt_clear(struct mpp_rcpt *r)
{
	if (r == NULL)
		return;
	free(r->fields);
	mpp_rcpt_init(r);
}

void
mpp_rcpt_scan(struct mpp_rcpt *r, const char *data, size_t len)
{
	size_t i;
	char ch;

	for (i = 0; i < len; i++) {
		ch = data[i];
		/* A CR that ends the text ends its last line: not bare. */
		if (r->cr && ch != '\n' && r->bare_cr_line == 0)
			r->bare_cr_line = r->line;
		if (ch == '\0' && r->nul_line == 0)
			r->nul_line = r->line;
		/* The server counts a CRLF as the one LF it turns it into. */
		if (!(r->cr && ch == '\n'))
			r->text_bytes++;
		if (ch == '\n')
			r->line++;
		r->cr = ch == '\r';
	}
}

/* Bytes in buf[0..n) once each CRLF is an LF. */
static size_t
lf_len(const char *buf, size_t n)
{
	size_t i, crlf = 0;

	for (i = 0; i + 1 < n; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n')
			crlf++;
	return n - crlf;
}

/*
 * The header section ends: its fields are buf[0..end), and the line that
 * decided it ends at decided (the empty line's or the body line's end, or
 * the end of the text). Keep an LF copy of the fields for parsing.
 */
static int
header_done(struct mpp_rcpt *r, size_t end, size_t decided)
{
	size_t i, n = 0;

	r->done = 1;
	r->hdr_end = end;
	r->too_large = lf_len(r->buf, decided) > MPP_RCPT_HEADER_MAX;
	if ((r->fields = malloc(end + 1)) == NULL)
		return -1;
	/* A CR is dropped where it ends a line: before an LF, or where the
	   text ends (the client sends that one as CRLF). */
	for (i = 0; i < end; i++)
		if (r->buf[i] != '\r' ||
		    (i + 1 < end && r->buf[i + 1] != '\n'))
			r->fields[n++] = r->buf[i];
	r->fields_len = n;
	return 0;
}

/*
 * Look at the line buf[start..end) (its LF included, unless the text ended
 * without one) as the server does: an empty line ends the header section,
 * a continuation line goes on (none may come first), a field goes on, and
 * anything else is the body's first line. 1 when the section ended.
 */
static int
header_line(struct mpp_rcpt *r, size_t start, size_t end, int *failed)
{
	const char *line = r->buf + start;
	size_t len = end - start, off = 0;
	struct rfc5322_field f;

	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	*failed = 0;
	if (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
		if (start != 0)
			return 0;
		r->starts_folded = 1;
	} else if (len > 0 && rfc5322_next_field(line, len, &off, &f) == 1)
		return 0;
	*failed = header_done(r, start, end) == -1;
	return 1;
}

/* Go through the bytes buf[from..len) just added. 0, or -1 (ENOMEM). */
static int
take(struct mpp_rcpt *r, size_t from)
{
	const char *lf;
	size_t end;
	int failed;

	mpp_rcpt_scan(r, r->buf + from, r->len - from);
	while (!r->done) {
		lf = memchr(r->buf + from, '\n', r->len - from);
		if (lf == NULL)
			break;
		end = (size_t)(lf - r->buf) + 1;
		from = end;
		if (header_line(r, r->line_start, end, &failed))
			return failed ? -1 : 0;
		r->line_start = end;
	}
	if (!r->done && r->len == sizeof(r->buf)) {
		r->overflow = r->too_large = r->done = 1;
		r->hdr_end = r->len;
	}
	return 0;
}

long
mpp_rcpt_feed(struct mpp_rcpt *r, const char *data, size_t len)
{
	size_t from = r->len, room = sizeof(r->buf) - r->len;

	if (r->done)
		return 0;
	if (len > room)
		len = room;
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	if (take(r, from) == -1) {
		errno = ENOMEM;
		return -1;
	}
	return (long)len;
}

int
mpp_rcpt_eof(struct mpp_rcpt *r)
{
	int failed = 0;

	if (r->done)
		return 0;
	if (r->line_start < r->len &&
	    header_line(r, r->line_start, r->len, &failed))
		return failed ? -1 : 0;
	return header_done(r, r->len, r->len);
}

int
mpp_rcpt_read(struct mpp_rcpt *r, int fd)
{
	ssize_t n;
	size_t from;

	while (!r->done) {
		from = r->len;
		n = read(fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			return mpp_rcpt_eof(r);
		r->len += (size_t)n;
		if (take(r, from) == -1) {
			errno = ENOMEM;
			return -1;
		}
	}
	return 0;
}

/*
 * The field f names recipients in, as the server takes them: To:, Cc:
 * and Bcc:, or for a resend only its resent block's recipient fields.
 * NULL when the server takes none from f.
 */
static const char *
rcpt_field(const struct mpp_rcpt *r, const struct rfc5322_resent_block *b,
    const struct rfc5322_field *f)
{
	static const char *const plain[] = { "To", "Cc", "Bcc" };
	static const char *const resent[] = { "Resent-To", "Resent-Cc",
	    "Resent-Bcc" };
	const char *const *names = b->has_rcpt ? resent : plain;
	size_t at = (size_t)(f->raw - r->fields), i;

	if (b->has_rcpt && (at < b->start || at >= b->end))
		return NULL;
	for (i = 0; i < 3; i++)
		if (rfc5322_field_is(f, names[i]))
			return names[i];
	return NULL;
}

struct match {
	const struct mpp_rcpt_addr *a;
};

static int
match_cb(const char *addr, int has_domain, void *ctx)
{
	const struct match *m = ctx;

	/* An address without a domain has no '@': the same only as another
	   without one. */
	return rfc5322_addr_same(m->a->addr, addr);
}

int
mpp_rcpt_named(const struct mpp_rcpt *r, const struct mpp_rcpt_addr *a,
    const char **field)
{
	struct rfc5322_resent_block b;
	struct rfc5322_field f;
	struct match m = { a };
	size_t off = 0;
	const char *name;

	rfc5322_resent_block(r->fields, r->fields_len, &b);
	while (rfc5322_next_field(r->fields, r->fields_len, &off, &f) == 1) {
		if ((name = rcpt_field(r, &b, &f)) == NULL)
			continue;
		if (rfc5322_parse_addresses(f.value, f.value_len, match_cb,
		    &m) == 1) {
			*field = name;
			return 1;
		}
	}
	return 0;
}

const char *
mpp_rcpt_bcc_name(const struct mpp_rcpt *r)
{
	struct rfc5322_resent_block b;

	rfc5322_resent_block(r->fields, r->fields_len, &b);
	return b.has_rcpt ? "Resent-Bcc" : "Bcc";
}

size_t
mpp_rcpt_bcc_at(const struct mpp_rcpt *r)
{
	struct rfc5322_resent_block b;
	size_t i, lf = 0;

	rfc5322_resent_block(r->fields, r->fields_len, &b);
	if (!b.has_rcpt)
		return 0;
	/* fields is buf with the CRs of CRLF taken out: count them back. */
	for (i = 0; i < r->hdr_end && lf < b.start; i++)
		if (r->buf[i] != '\r' ||
		    (i + 1 < r->hdr_end && r->buf[i + 1] != '\n'))
			lf++;
	return i;
}

long
mpp_rcpt_bcc(const struct mpp_rcpt *r, const struct mpp_rcpt_list *l,
    struct buf *out)
{
	const char *field, *name = mpp_rcpt_bcc_name(r);
	size_t i;
	long n = 0;

	for (i = 0; i < l->n; i++) {
		if (mpp_rcpt_named(r, &l->v[i], &field))
			continue;
		if (buf_printf(out, "%s%s%s", n == 0 ? name : ",\n ",
		    n == 0 ? ": " : "", l->v[i].addr) == -1)
			return -1;
		n++;
	}
	if (n > 0 && buf_puts(out, "\n") == -1)
		return -1;
	return n;
}

/* What the fields hold, as far as the server's verdict goes. */
struct field_scan {
	size_t naddr;		/* in To:, Cc: and Bcc: */
	int nfrom;
	const char *bad;	/* name of a field that does not parse */
	unsigned long bad_line;
};

static int
count_cb(const char *addr, int has_domain, void *ctx)
{
	size_t *n = ctx;

	(*n)++;
	return 0;
}

/* Line number of p in the fields. */
static unsigned long
line_of(const struct mpp_rcpt *r, const char *p)
{
	unsigned long n = 1;
	const char *q;

	for (q = r->fields; q < p; q++)
		n += *q == '\n';
	return n;
}

/*
 * The name of a field whose addresses the server checks (and may refuse
 * the message for): From:, To:, Cc:, Bcc:, and the resent block's
 * Resent-From: and recipient fields. NULL for any other field.
 */
static const char *
checked_field(const struct mpp_rcpt *r, const struct rfc5322_resent_block *b,
    const struct rfc5322_field *f)
{
	static const char *const names[] = { "From", "To", "Cc", "Bcc",
	    "Resent-From", "Resent-To", "Resent-Cc", "Resent-Bcc" };
	size_t at = (size_t)(f->raw - r->fields), i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (rfc5322_field_is(f, names[i]))
			break;
	if (i == sizeof(names) / sizeof(names[0]))
		return NULL;
	if (rfc5322_field_is_resent(f) && (at < b->start || at >= b->end))
		return NULL;	/* an older block's: history */
	return names[i];
}

static void
scan_fields(const struct mpp_rcpt *r, struct field_scan *s)
{
	struct rfc5322_resent_block b;
	struct rfc5322_field f;
	size_t off = 0, dummy = 0;
	const char *name;
	int rc;

	memset(s, 0, sizeof(*s));
	rfc5322_resent_block(r->fields, r->fields_len, &b);
	while (rfc5322_next_field(r->fields, r->fields_len, &off, &f) == 1) {
		if ((name = checked_field(r, &b, &f)) == NULL)
			continue;
		if (strcmp(name, "From") == 0)
			s->nfrom++;
		rc = rfc5322_parse_addresses(f.value, f.value_len, count_cb,
		    rcpt_field(r, &b, &f) != NULL ? &s->naddr : &dummy);
		if (rc != 0 && s->bad == NULL) {
			s->bad = name;
			s->bad_line = line_of(r, f.raw);
		}
	}
}

const char *
mpp_rcpt_refusal(const struct mpp_rcpt *r, size_t nrcpt, char *buf,
    size_t size)
{
	struct field_scan s;

	if (r->too_large)
		(void)snprintf(buf, size, "its header section is over %d "
		    "bytes, more than the server takes", MPP_RCPT_HEADER_MAX);
	else if (r->starts_folded)
		(void)snprintf(buf, size, "its first line starts with a "
		    "blank, as only a continuation of a header field may");
	else {
		scan_fields(r, &s);
		if (s.bad != NULL)
			(void)snprintf(buf, size, "the %s: field on line %lu "
			    "is not a valid address list", s.bad, s.bad_line);
		else if (s.nfrom > 1)
			(void)snprintf(buf, size, "it has more than one From: "
			    "field");
		else if (s.naddr == 0 && nrcpt == 0)
			(void)snprintf(buf, size, "it has no recipient: no "
			    "To:, Cc: or Bcc: field names an address, and no "
			    "recipient was given on the command line");
		else
			return NULL;
	}
	return buf;
}

const char *
mpp_rcpt_explain(const struct mpp_rcpt *r, unsigned long long bytes,
    char *buf, size_t size)
{
	if (r->bare_cr_line != 0)
		(void)snprintf(buf, size, "line %lu of the message holds a "
		    "bare CR (one that does not end the line), which the "
		    "server refuses", r->bare_cr_line);
	else if (r->nul_line != 0)
		(void)snprintf(buf, size, "line %lu of the message holds a "
		    "NUL byte, which the server refuses", r->nul_line);
	else
		(void)snprintf(buf, size, "the server gives no reason: "
		    "perhaps the message (%llu bytes) is larger than it takes "
		    "(its max_message_size), or it names more recipients "
		    "than the server takes", bytes);
	return buf;
}
