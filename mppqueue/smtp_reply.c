/*
 * smtp_reply — incremental SMTP reply parser (see smtp_reply.h). Bytes are
 * gathered into one line buffer; each finished line is checked, its text
 * appended to the reply, and read as an EHLO keyword. Nothing here blocks,
 * allocates or logs.
 */
#include <assert.h>
#include <limits.h>
#include <string.h>

#include "smtp_reply.h"

/* How a checked line ends the reply or continues it. */
enum line_kind {
	LINE_BAD = -1,
	LINE_LAST = 0,
	LINE_MORE = 1
};

static void
reply_reset(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

void
smtp_reply_init(struct smtp_reply_parser *p)
{
	reply_reset(&p->cur);
	p->len = 0;
	p->error = NULL;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/*
 * Check "CODE[-| ]text" of len bytes (line end removed) and store its code
 * in *code.
 */
static enum line_kind
line_check(const char *s, size_t len, int *code)
{
	if (len < 3 || s[0] < '2' || s[0] > '5' || !is_digit(s[1]) ||
	    !is_digit(s[2]))
		return LINE_BAD;
	*code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (len == 3 || s[3] == ' ')
		return LINE_LAST;
	return s[3] == '-' ? LINE_MORE : LINE_BAD;
}

/* Append s[0..len) to the joined text, made printable, cut when full. */
static void
text_put(struct smtp_reply *r, const char *s, size_t len)
{
	size_t room, i;
	unsigned char c;

	room = sizeof(r->text) - 1 - r->text_len;
	if (len > room) {
		len = room;
		r->truncated = 1;
	}
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		r->text[r->text_len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	r->text[r->text_len] = '\0';
}

/* Append one line's text, after a space unless it is the first line. */
static void
text_append(struct smtp_reply *r, const char *s, size_t len)
{
	if (r->lines > 0)
		text_put(r, " ", 1);
	text_put(r, s, len);
}

/* Nonzero when s[0..len) starts with the keyword kw, then ends or a space. */
static int
keyword_is(const char *s, size_t len, const char *kw)
{
	size_t n = strlen(kw), i;

	if (len < n || (len > n && s[n] != ' '))
		return 0;
	for (i = 0; i < n; i++)
		if (lower((unsigned char)s[i]) != lower((unsigned char)kw[i]))
			return 0;
	return 1;
}

/*
 * The SIZE parameter (RFC 1870 §4): decimal digits after the keyword; none,
 * or anything else, means no limit was given. A value past the range
 * saturates: a limit that large limits nothing.
 */
static unsigned long long
size_param(const char *s, size_t len)
{
	unsigned long long v = 0;
	size_t i = 0;
	unsigned d;

	while (i < len && s[i] == ' ')
		i++;
	if (i == len)
		return 0;
	for (; i < len; i++) {
		if (!is_digit(s[i]))
			return 0;
		d = (unsigned)(s[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return ULLONG_MAX;
		v = v * 10 + d;
	}
	return v;
}

/* The mechanisms after AUTH (or "AUTH="): words separated by spaces. */
static void
auth_mechanisms(struct smtp_reply *r, const char *s, size_t len)
{
	size_t i = 0, n;

	r->has_auth = 1;
	while (i < len) {
		while (i < len && (s[i] == ' ' || (i == 0 && s[i] == '=')))
			i++;
		for (n = 0; i + n < len && s[i + n] != ' '; n++)
			;
		if (keyword_is(s + i, n, "PLAIN"))
			r->auth_plain = 1;
		else if (keyword_is(s + i, n, "LOGIN"))
			r->auth_login = 1;
		i += n;
	}
}

/* Read the text of a line after the first as an EHLO keyword line. */
static void
ehlo_keyword(struct smtp_reply *r, const char *s, size_t len)
{
	if (keyword_is(s, len, "SIZE")) {
		r->has_size = 1;
		r->size_max = size_param(s + 4, len - 4);
	} else if (keyword_is(s, len, "PIPELINING"))
		r->has_pipelining = 1;
	else if (keyword_is(s, len, "8BITMIME"))
		r->has_8bitmime = 1;
	else if (keyword_is(s, len, "STARTTLS"))
		r->has_starttls = 1;
	else if (keyword_is(s, len, "AUTH") || (len > 4 &&
	    keyword_is(s, 4, "AUTH") && s[4] == '='))
		auth_mechanisms(r, s + 4, len - 4);
}

static enum smtp_reply_status
parse_error(struct smtp_reply_parser *p, const char *why)
{
	p->error = why;
	return SMTP_REPLY_ERROR;
}

/* A whole line is in p->line (LF removed): add it to the reply. */
static enum smtp_reply_status
line_done(struct smtp_reply_parser *p, struct smtp_reply *out)
{
	struct smtp_reply *r = &p->cur;
	enum line_kind kind;
	size_t len = p->len;
	int code = 0;

	if (len > 0 && p->line[len - 1] == '\r')
		len--;
	p->len = 0;
	if ((kind = line_check(p->line, len, &code)) == LINE_BAD)
		return parse_error(p, "malformed reply line");
	if (r->lines > 0 && code != r->code)
		return parse_error(p, "reply codes differ between lines");
	if (kind == LINE_MORE && r->lines + 1 >= SMTP_REPLY_LINES_MAX)
		return parse_error(p, "too many reply lines");
	if (r->lines > 0 && len > 4)
		ehlo_keyword(r, p->line + 4, len - 4);
	text_append(r, p->line, len);
	r->code = code;
	r->lines++;
	if (kind == LINE_MORE)
		return SMTP_REPLY_MORE;
	*out = *r;
	reply_reset(r);
	return SMTP_REPLY_DONE;
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply_parser *p, const char *buf, size_t len,
    size_t *used, struct smtp_reply *out)
{
	enum smtp_reply_status st;
	size_t i;

	assert(p != NULL && used != NULL && out != NULL);
	*used = 0;
	if (p->error != NULL)
		return SMTP_REPLY_ERROR;
	for (i = 0; i < len; i++) {
		if (buf[i] != '\n') {
			/* The LF still to come makes one byte more. */
			if (p->len + 1 >= SMTP_REPLY_LINE_MAX)
				return parse_error(p, "reply line too long");
			p->line[p->len++] = buf[i];
			continue;
		}
		if ((st = line_done(p, out)) != SMTP_REPLY_MORE) {
			*used = i + 1;
			return st;
		}
	}
	*used = len;
	return SMTP_REPLY_MORE;
}
