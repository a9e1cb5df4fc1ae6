/*
 * rfc5322 — header fields and address lists of an Internet message.
 *
 * Parsers over caller-owned bytes: rfc5322_next_field() splits a header
 * section into fields, rfc5322_parse_addresses() walks an address-list and
 * hands each mailbox's addr-spec, normalised, to a callback,
 * rfc5322_display_text() hands it the display names and comments as a
 * reader sees them, and rfc5322_received_by() looks for a host after the
 * "by" of a trace field.
 *
 * All are pure functions of their input: no allocation, no static state,
 * every read checked against the caller's length (the input is not
 * NUL-terminated); display text is rebuilt in a bounded buffer on the
 * stack. The address parser is a small lexer that drops comments
 * and folding whitespace, under a recursive-descent parser. Lookahead works
 * by copying the cursor, which is only an offset, so there is no token
 * buffer to size and no input that makes the parser allocate or recurse
 * deeply (groups cannot nest, comments nest by counter).
 *
 * Leniency, on purpose: dots in display names (obs-phrase, "John Q. Public"),
 * empty list elements, source routes, a bare local part (has_domain 0) and
 * a group whose closing ';' is missing at the end of the value — all common
 * in real mail and none able to change which mailboxes are named. An
 * addr-spec itself is held to the grammar, and a little more, because it
 * becomes an SMTP recipient: 8-bit bytes, control characters (HT included,
 * even quoted), empty labels or an over-long result are syntax errors, and a
 * domain literal holds only letters, digits, '.', ':' and '-'.
 *
 * The display text and "by" readers lean the other way: they serve to
 * find what a person would read as an address or as this host, so they
 * decode and search more than the grammar allows (encoded words inside
 * quotes, "by" inside comments); a false find costs a Sender: header or a
 * dropped trace line, a missed one a forgery that passes.
 */

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "rfc5322.h"

/* Header fields. */

static int
is_wsp(unsigned char ch)
{
	return ch == ' ' || ch == '\t';
}

/* A field-name byte: printable US-ASCII but the colon (RFC 5322 ftext). */
static int
is_ftext(unsigned char ch)
{
	return ch >= 33 && ch <= 126 && ch != ':';
}

/*
 * Offset of the colon that ends the field name starting at buf[p], with the
 * name's end in *name_end; 0 when the line is not a field (the colon can
 * never be at offset 0, as a name has at least one byte before it).
 */
static size_t
field_colon(const char *buf, size_t len, size_t p, size_t *name_end)
{
	size_t i;

	for (i = p; i < len && is_ftext((unsigned char)buf[i]); i++)
		continue;
	if (i == p)
		return 0;
	*name_end = i;
	while (i < len && is_wsp((unsigned char)buf[i]))
		i++;
	if (i == len || buf[i] != ':')
		return 0;
	return i;
}

/*
 * Offset just past the field whose first line starts at p < len: past the
 * LF of its last line, continuation lines included, or len when the buffer
 * ends inside the field.
 */
static size_t
field_end(const char *buf, size_t len, size_t p)
{
	const char *lf;

	for (;;) {
		lf = memchr(buf + p, '\n', len - p);
		if (lf == NULL)
			return len;
		p = (size_t)(lf - buf) + 1;
		if (p == len || !is_wsp((unsigned char)buf[p]))
			return p;
	}
}

/* Split the next header field off buf[*off..len); see rfc5322.h. */
int
rfc5322_next_field(const char *buf, size_t len, size_t *off,
    struct rfc5322_field *f)
{
	size_t p, colon, name_end, end;

	assert(off != NULL && f != NULL);
	p = *off;
	if (p >= len)
		return 0;
	if (buf[p] == '\n') {
		*off = p + 1;
		return 0;
	}
	if (is_wsp((unsigned char)buf[p]))
		return -1;
	if ((colon = field_colon(buf, len, p, &name_end)) == 0)
		return 0;
	end = field_end(buf, len, p);
	f->name = buf + p;
	f->name_len = name_end - p;
	f->value = buf + colon + 1;
	f->value_len = end - (colon + 1);
	if (buf[end - 1] == '\n')
		f->value_len--;
	f->raw = buf + p;
	f->raw_len = end - p;
	*off = end;
	return 1;
}

/* ASCII-only case folding: a locale must not change what a header means. */
static unsigned char
ascii_lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch;
}

/* Nonzero when f's name is name, ignoring ASCII case. */
int
rfc5322_field_is(const struct rfc5322_field *f, const char *name)
{
	size_t i;

	assert(f != NULL && name != NULL);
	for (i = 0; i < f->name_len; i++) {
		if (name[i] == '\0' || ascii_lower((unsigned char)f->name[i]) !=
		    ascii_lower((unsigned char)name[i]))
			return 0;
	}
	return name[i] == '\0';
}

int
rfc5322_field_is_resent(const struct rfc5322_field *f)
{
	return f->name_len > 7 && strncasecmp(f->name, "Resent-", 7) == 0;
}

int
rfc5322_field_is_resent_rcpt(const struct rfc5322_field *f)
{
	return rfc5322_field_is(f, "Resent-To") ||
	    rfc5322_field_is(f, "Resent-Cc") ||
	    rfc5322_field_is(f, "Resent-Bcc");
}

void
rfc5322_resent_block(const char *hdr, size_t len,
    struct rfc5322_resent_block *b)
{
	struct rfc5322_field f;
	size_t off = 0, at;
	int in = 0;

	memset(b, 0, sizeof(*b));
	while ((at = off, rfc5322_next_field(hdr, len, &off, &f)) == 1) {
		if (!rfc5322_field_is_resent(&f)) {
			if (in)
				return;
			continue;
		}
		if (!in)
			b->start = at;
		in = 1;
		b->end = off;
		if (rfc5322_field_is_resent_rcpt(&f))
			b->has_rcpt = 1;
	}
}

/* Address lists: the lexer. */

enum tok_type {
	T_END, T_ATOM, T_QSTR, T_DLIT, T_DOT, T_AT, T_LT, T_GT, T_COLON,
	T_SEMI, T_COMMA
};

/* A token; s/len span its text, delimiters of quoted strings included. */
struct tok {
	enum tok_type type;
	const char *s;
	size_t len;
	int has8bit;
};

struct cursor {
	const char *buf;
	size_t len;
	size_t pos;
};

/* RFC 5322 atext; bytes >= 0x80 join atoms so 8-bit display names lex. */
static int
is_atext(unsigned char ch)
{
	static const char punct[] = "!#$%&'*+-/=?^_`{|}~";

	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch >= 0x80)
		return 1;
	return memchr(punct, ch, sizeof(punct) - 1) != NULL;
}

/* Skip the comment opening at c->pos; -1 when it is never closed. */
static int
skip_comment(struct cursor *c)
{
	size_t depth = 0;
	unsigned char ch;

	while (c->pos < c->len) {
		ch = (unsigned char)c->buf[c->pos++];
		if (ch == '\\') {
			if (c->pos == c->len)
				return -1;
			c->pos++;
		} else if (ch == '(')
			depth++;
		else if (ch == ')' && --depth == 0)
			return 0;
	}
	return -1;
}

/*
 * Skip CFWS. Any LF counts as folding: in a field value every LF is
 * followed by whitespace anyway, and elsewhere it separates like a space.
 */
static int
skip_cfws(struct cursor *c)
{
	unsigned char ch;

	while (c->pos < c->len) {
		ch = (unsigned char)c->buf[c->pos];
		if (ch == '(') {
			if (skip_comment(c) == -1)
				return -1;
		} else if (is_wsp(ch) || ch == '\n')
			c->pos++;
		else
			break;
	}
	return 0;
}

/* Take the bytes from c->pos up to end as token t, and move past them. */
static int
take(struct cursor *c, struct tok *t, enum tok_type type, size_t end)
{
	t->type = type;
	t->s = c->buf + c->pos;
	t->len = end - c->pos;
	c->pos = end;
	return 0;
}

/* Lex the quoted string opening at c->pos; its content is checked later. */
static int
lex_quoted(struct cursor *c, struct tok *t)
{
	size_t p = c->pos + 1;
	unsigned char ch;

	t->has8bit = 0;
	while (p < c->len) {
		ch = (unsigned char)c->buf[p++];
		if (ch == '"')
			return take(c, t, T_QSTR, p);
		if (ch == '\\') {
			if (p == c->len)
				return -1;
			ch = (unsigned char)c->buf[p++];
		}
		if (ch >= 0x80)
			t->has8bit = 1;
	}
	return -1;
}

/*
 * A byte of a domain literal. RFC 5322 dtext is any printable but "[]\",
 * yet the literal becomes an SMTP address-literal, which in practice is an
 * IPv4 address or a tag and colon-separated hex ("IPv6:2001:db8::1"): the
 * rest ('@', '"', '<'...) would only make the address ambiguous to whoever
 * splits it next.
 */
static int
is_dtext(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '.' || ch == ':' || ch == '-';
}

/*
 * Lex the domain literal opening at c->pos: dtext and folding whitespace,
 * at least one dtext byte (an empty "[]" names no host).
 */
static int
lex_literal(struct cursor *c, struct tok *t)
{
	size_t p = c->pos + 1, n = 0;
	unsigned char ch;

	t->has8bit = 0;
	while (p < c->len) {
		ch = (unsigned char)c->buf[p++];
		if (ch == ']')
			return n == 0 ? -1 : take(c, t, T_DLIT, p);
		if (is_dtext(ch))
			n++;
		else if (!is_wsp(ch) && ch != '\n')
			return -1;
	}
	return -1;
}

static int
lex_atom(struct cursor *c, struct tok *t)
{
	size_t p = c->pos;

	t->has8bit = 0;
	while (p < c->len && is_atext((unsigned char)c->buf[p])) {
		if ((unsigned char)c->buf[p] >= 0x80)
			t->has8bit = 1;
		p++;
	}
	return take(c, t, T_ATOM, p);
}

/* The token type of a one-byte special; -1 for a byte no token starts with. */
static int
special(unsigned char ch)
{
	switch (ch) {
	case '.':
		return T_DOT;
	case '@':
		return T_AT;
	case '<':
		return T_LT;
	case '>':
		return T_GT;
	case ':':
		return T_COLON;
	case ';':
		return T_SEMI;
	case ',':
		return T_COMMA;
	default:
		return -1;
	}
}

/* Read the next token after any CFWS; -1 on a lexical error. */
static int
lex(struct cursor *c, struct tok *t)
{
	unsigned char ch;
	int type;

	if (skip_cfws(c) == -1)
		return -1;
	t->has8bit = 0;
	if (c->pos == c->len)
		return take(c, t, T_END, c->pos);
	ch = (unsigned char)c->buf[c->pos];
	if (ch == '"')
		return lex_quoted(c, t);
	if (ch == '[')
		return lex_literal(c, t);
	if (is_atext(ch))
		return lex_atom(c, t);
	if ((type = special(ch)) == -1)
		return -1;
	return take(c, t, (enum tok_type)type, c->pos + 1);
}

/* The next token, without consuming it. */
static int
peek(const struct cursor *c, struct tok *t)
{
	struct cursor tmp = *c;

	return lex(&tmp, t);
}

/* Consume the next token if of type want: 1 if so, 0 if not, -1 on error. */
static int
accept(struct cursor *c, enum tok_type want)
{
	struct cursor tmp = *c;
	struct tok t;

	if (lex(&tmp, &t) == -1)
		return -1;
	if (t.type != want)
		return 0;
	*c = tmp;
	return 1;
}

/* Consume a token that must have type want. */
static int
expect(struct cursor *c, enum tok_type want)
{
	return accept(c, want) == 1 ? 0 : -1;
}

/* Address lists: the normalised addr-spec. */

struct addr {
	char s[RFC5322_ADDR_MAX + 1];
	size_t len;
	int has_domain;
	const char *local_end;	/* in the value: just past the local part */
};

/* Append n bytes to a, kept NUL-terminated; a NULL a only validates. */
static int
addr_put(struct addr *a, const char *s, size_t n)
{
	if (a == NULL)
		return 0;
	if (n > RFC5322_ADDR_MAX - a->len)
		return -1;
	memcpy(a->s + a->len, s, n);
	a->len += n;
	a->s[a->len] = '\0';
	return 0;
}

/*
 * Append a quoted local part in its quoted form, unfolded. Only bytes an
 * SMTP quoted-string can carry are allowed (RFC 5321 qtextSMTP and
 * quoted-pairSMTP): the address goes on to an MTA as it is.
 */
static int
put_quoted(struct addr *a, const struct tok *t)
{
	size_t i, n;
	unsigned char ch;

	for (i = 0; i < t->len; i += n) {
		ch = (unsigned char)t->s[i];
		n = ch == '\\' ? 2 : 1;
		if (ch == '\n')
			continue;
		if (n == 2)
			ch = (unsigned char)t->s[i + 1];
		if (ch < 32 || ch > 126 || addr_put(a, t->s + i, n) == -1)
			return -1;
	}
	return 0;
}

/* Append a domain literal with its folding whitespace removed. */
static int
put_literal(struct addr *a, const struct tok *t)
{
	size_t i;

	for (i = 0; i < t->len; i++) {
		if (is_wsp((unsigned char)t->s[i]) || t->s[i] == '\n')
			continue;
		if (addr_put(a, t->s + i, 1) == -1)
			return -1;
	}
	return 0;
}

/* Append one word of a local part: a 7-bit atom or a quoted string. */
static int
put_word(struct addr *a, const struct tok *t)
{
	if (t->type == T_ATOM && !t->has8bit)
		return addr_put(a, t->s, t->len);
	if (t->type == T_QSTR)
		return put_quoted(a, t);
	return -1;
}

/* Address lists: the grammar. */

/* local-part = word *("." word), CFWS around each piece (obs-local-part). */
static int
parse_local(struct cursor *c, struct addr *a)
{
	struct tok t;
	int r;

	for (;;) {
		if (lex(c, &t) == -1 || put_word(a, &t) == -1)
			return -1;
		a->local_end = t.s + t.len;
		if ((r = accept(c, T_DOT)) != 1)
			return r;
		if (addr_put(a, ".", 1) == -1)
			return -1;
	}
}

/* domain = atom *("." atom) / domain-literal; a NULL a only validates. */
static int
parse_domain(struct cursor *c, struct addr *a)
{
	struct tok t;
	int r;

	if (lex(c, &t) == -1)
		return -1;
	if (t.type == T_DLIT)
		return put_literal(a, &t);
	for (;;) {
		if (t.type != T_ATOM || t.has8bit ||
		    addr_put(a, t.s, t.len) == -1)
			return -1;
		if ((r = accept(c, T_DOT)) != 1)
			return r;
		if (addr_put(a, ".", 1) == -1 || lex(c, &t) == -1)
			return -1;
	}
}

/* addr-spec = local-part ["@" domain]; no domain is let through, flagged. */
static int
parse_addr_spec(struct cursor *c, struct addr *a)
{
	int r;

	a->len = 0;
	a->s[0] = '\0';
	a->has_domain = 0;
	if (parse_local(c, a) == -1)
		return -1;
	if ((r = accept(c, T_AT)) != 1)
		return r;
	a->has_domain = 1;
	if (addr_put(a, "@", 1) == -1)
		return -1;
	return parse_domain(c, a);
}

/*
 * Skip an obs-route ("@relay1,@relay2:") after '<', if there is one. Source
 * routes are dead (RFC 5321 §4.1.1.3 says to ignore them), so the domains
 * are checked and dropped.
 */
static int
skip_route(struct cursor *c)
{
	struct cursor start = *c;
	struct tok t;
	int seen = 0;

	for (;;) {
		if (lex(c, &t) == -1)
			return -1;
		if (t.type == T_COMMA)
			continue;
		if (t.type == T_COLON && seen)
			return 0;
		if (t.type != T_AT)
			break;
		if (parse_domain(c, NULL) == -1)
			return -1;
		seen = 1;
	}
	if (seen)
		return -1;
	*c = start;
	return 0;
}

/* angle-addr, after its '<': [obs-route] addr-spec ">". */
static int
parse_angle(struct cursor *c, struct addr *a)
{
	if (skip_route(c) == -1 || parse_addr_spec(c, a) == -1)
		return -1;
	return expect(c, T_GT);
}

/*
 * Look past the phrase (words and dots) at c: set *after to the cursor
 * after it, *stop to the type of the token that ends it and *nwords to its
 * length. That token decides what the element is: '<' a name-addr, ':' a
 * group, anything else an addr-spec.
 */
static int
scan_phrase(const struct cursor *c, struct cursor *after,
    enum tok_type *stop, size_t *nwords)
{
	struct cursor tmp = *c;
	struct tok t;

	*nwords = 0;
	for (;;) {
		*after = tmp;
		if (lex(&tmp, &t) == -1)
			return -1;
		if (t.type != T_ATOM && t.type != T_QSTR && t.type != T_DOT)
			break;
		(*nwords)++;
	}
	*stop = t.type;
	return 0;
}

/* An element is over when the list goes on or ends. */
static int
expect_end_of_element(const struct cursor *c, int in_group)
{
	struct tok t;

	if (peek(c, &t) == -1)
		return -1;
	if (t.type == T_COMMA || t.type == T_END ||
	    (in_group && t.type == T_SEMI))
		return 0;
	return -1;
}

struct parser {
	struct cursor c;
	rfc5322_addr_cb cb;		/* one of the two is set */
	rfc5322_addr_at_cb at_cb;
	void *ctx;
};

static int parse_list(struct parser *, int);

/*
 * group = display-name ":" [group-list] ";", from the cursor after the
 * display name. Groups do not nest.
 */
static int
parse_group(struct parser *p, int in_group, size_t nwords)
{
	int r;

	if (in_group || nwords == 0 || expect(&p->c, T_COLON) == -1)
		return -1;
	if ((r = parse_list(p, 1)) != 0)
		return r;
	return expect_end_of_element(&p->c, 0);
}

/*
 * One mailbox or group. The callback runs only once the mailbox is known
 * to be complete, so a syntax error never follows a half-parsed address.
 */
static int
parse_element(struct parser *p, int in_group)
{
	struct cursor after;
	struct addr a;
	enum tok_type stop;
	size_t nwords;
	int r;

	if (scan_phrase(&p->c, &after, &stop, &nwords) == -1)
		return -1;
	if (stop == T_COLON) {
		p->c = after;
		return parse_group(p, in_group, nwords);
	}
	if (stop == T_LT) {
		p->c = after;
		r = expect(&p->c, T_LT) == -1 ? -1 : parse_angle(&p->c, &a);
	} else
		r = parse_addr_spec(&p->c, &a);
	if (r == -1 || expect_end_of_element(&p->c, in_group) == -1)
		return -1;
	if (p->at_cb != NULL)
		return p->at_cb(a.s, a.has_domain,
		    (size_t)(a.local_end - p->c.buf), p->ctx);
	return p->cb(a.s, a.has_domain, p->ctx);
}

/*
 * address-list, or a group-list after its ':' (in_group): elements apart
 * by commas, empty ones allowed. A group ends at its ';' or, leniently, at
 * the end of the value.
 */
static int
parse_list(struct parser *p, int in_group)
{
	struct tok t;
	int r;

	for (;;) {
		if (peek(&p->c, &t) == -1)
			return -1;
		if (t.type == T_END)
			return 0;
		if (t.type == T_SEMI && !in_group)
			return -1;
		if (t.type == T_COMMA || t.type == T_SEMI) {
			/* Cannot fail: peek() just lexed the same bytes. */
			(void)lex(&p->c, &t);
			if (t.type == T_SEMI)
				return 0;
			continue;
		}
		if ((r = parse_element(p, in_group)) != 0)
			return r;
	}
}

static int
parse_with(const char *value, size_t len, struct parser *p)
{
	if (len == 0)
		return 0;
	assert(value != NULL);
	p->c.buf = value;
	p->c.len = len;
	p->c.pos = 0;
	return parse_list(p, 0);
}

/* Parse an address-list, calling cb per mailbox; see rfc5322.h. */
int
rfc5322_parse_addresses(const char *value, size_t len, rfc5322_addr_cb cb,
    void *ctx)
{
	struct parser p = { .cb = cb, .ctx = ctx };

	assert(cb != NULL);
	return parse_with(value, len, &p);
}

int
rfc5322_parse_addresses_at(const char *value, size_t len,
    rfc5322_addr_at_cb cb, void *ctx)
{
	struct parser p = { .at_cb = cb, .ctx = ctx };

	assert(cb != NULL);
	return parse_with(value, len, &p);
}

int
rfc5322_addr_same(const char *a, const char *b)
{
	const char *at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');

	if (at_a == NULL || at_b == NULL)
		return at_a == at_b && strcmp(a, b) == 0;
	return at_a - a == at_b - b && memcmp(a, b, (size_t)(at_a - a)) == 0 &&
	    strcasecmp(at_a + 1, at_b + 1) == 0;
}

/*
 * Display text. What a reader sees beside the addresses is rebuilt in a
 * bounded buffer: first the raw bytes with quoting and folding undone
 * (text_put), then, in place, the encoded words decoded (words_decode).
 * Decoding never makes text longer, so it needs no second buffer.
 */

struct text {
	char s[RFC5322_TEXT_MAX + 1];
	size_t len;
	int inexact;
};

static void
text_put(struct text *t, char ch)
{
	if (t == NULL)
		return;
	if (t->len < RFC5322_TEXT_MAX)
		t->s[t->len++] = ch;
	else if (!is_wsp((unsigned char)ch))
		t->inexact = 1;		/* whitespace at the end is trimmed */
}

/* One encoded word, "=?charset?E?encoded-text?=". */
struct eword {
	const char *charset, *data;
	size_t charset_len, data_len, len;	/* len: the whole word */
	char enc;				/* 'b' or 'q' */
};

/*
 * A byte that can be part of a charset or of encoded text: printable
 * ASCII but '?' (RFC 2047 section 2). A "word" with other bytes is not
 * one a reader decodes; it shows as it is, and so it is searched as it
 * is: decoding "=?\xef\xb9\xab?q?x?=" would hide the small commercial
 * at in its charset from the at-sign check.
 */
static int
is_eword_byte(unsigned char ch)
{
	return ch > ' ' && ch < 0x7f && ch != '?';
}

/* Span of is_eword_byte bytes in s[i..len) from i; the index after them. */
static size_t
eword_span(const char *s, size_t len, size_t i)
{
	while (i < len && is_eword_byte((unsigned char)s[i]))
		i++;
	return i;
}

/* Is s[0..len) the start of an encoded word? Fills *w when it is. */
static int
eword_parse(const char *s, size_t len, struct eword *w)
{
	size_t i, cs_end;

	if (len < 2 || s[0] != '=' || s[1] != '?')
		return 0;
	cs_end = eword_span(s, len, 2);
	if (cs_end == 2 || len - cs_end < 3 || s[cs_end] != '?' ||
	    s[cs_end + 2] != '?')
		return 0;
	w->enc = (char)ascii_lower((unsigned char)s[cs_end + 1]);
	if (w->enc != 'b' && w->enc != 'q')
		return 0;
	i = eword_span(s, len, cs_end + 3);
	if (len - i < 2 || s[i] != '?' || s[i + 1] != '=')
		return 0;
	w->charset = s + 2;
	w->charset_len = cs_end - 2;
	w->data = s + cs_end + 3;
	w->data_len = i - (cs_end + 3);
	w->len = i + 2;
	return 1;
}

static int
b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Base64 without line breaks; '=' only as padding at the end. */
static int
b64_valid(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && b64_value((unsigned char)s[i]) >= 0)
		i++;
	while (i < n && s[i] == '=')
		i++;
	return i == n;
}

/* Decode valid base64 s[0..n) to out; out may be s or before it. */
static size_t
b64_decode(const char *s, size_t n, char *out)
{
	unsigned acc = 0, bits = 0;
	size_t i, o = 0;
	int v;

	for (i = 0; i < n && (v = b64_value((unsigned char)s[i])) >= 0; i++) {
		acc = ((acc << 6) | (unsigned)v) & 0xfffu;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xffu);
		}
	}
	return o;
}

static int
hex_value(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = ascii_lower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/*
 * Decode RFC 2047 Q text s[0..n) to out (s or before it): "_" is a space,
 * "=XX" a byte; an '=' without two hex digits is kept, as readers keep it.
 */
static size_t
q_decode(const char *s, size_t n, char *out)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '_')
			out[o++] = ' ';
		else if (s[i] == '=' && n - i > 2 &&
		    (hi = hex_value((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hex_value((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else
			out[o++] = s[i];
	}
	return o;
}

/*
 * A charset that writes ASCII otherwise than as ASCII bytes: its decoded
 * bytes cannot be searched for '@'. Compared as a prefix, ignoring case,
 * so "UTF-16BE" and "utf-7*en" (RFC 2231 language) are caught.
 */
static int
charset_opaque(const char *cs, size_t n)
{
	static const char *const opaque[] = { "utf-7", "utf7", "utf-16",
	    "utf16", "utf-32", "utf32", "ucs-2", "ucs2", "ucs-4", "ucs4",
	    "unicode" };
	size_t i, k, m;

	for (i = 0; i < sizeof(opaque) / sizeof(opaque[0]); i++) {
		m = strlen(opaque[i]);
		for (k = 0; k < m && k < n; k++)
			if (ascii_lower((unsigned char)cs[k]) !=
			    (unsigned char)opaque[i][k])
				break;
		if (k == m)
			return 1;
	}
	return 0;
}

/*
 * Decode the encoded words of t in place. A word that does not decode
 * (bad base64) stays as it is; whitespace between two words goes, as
 * RFC 2047 section 6.2 says. Readers decode words even inside a longer
 * word or a quoted string, so this does too.
 */
static void
words_decode(struct text *t)
{
	size_t r = 0, w = 0, after = SIZE_MAX;	/* after: end of last word */
	struct eword ew;
	char ch;

	while (r < t->len) {
		if (eword_parse(t->s + r, t->len - r, &ew) &&
		    (ew.enc == 'q' || b64_valid(ew.data, ew.data_len))) {
			/* Before decoding: the output may cover the charset. */
			if (charset_opaque(ew.charset, ew.charset_len))
				t->inexact = 1;
			if (after != SIZE_MAX)
				w = after;
			w += ew.enc == 'q' ? q_decode(ew.data, ew.data_len,
			    t->s + w) : b64_decode(ew.data, ew.data_len,
			    t->s + w);
			r += ew.len;
			after = w;
			continue;
		}
		ch = t->s[r++];
		if (!is_wsp((unsigned char)ch))
			after = SIZE_MAX;
		t->s[w++] = ch;
	}
	t->len = w;
}

/* Hand the finished piece t to cb (unless empty) and empty t. */
static int
text_emit(struct text *t, rfc5322_text_cb cb, void *ctx)
{
	size_t start = 0, end;
	int r = 0;

	words_decode(t);
	end = t->len;
	while (start < end && is_wsp((unsigned char)t->s[start]))
		start++;
	while (end > start && is_wsp((unsigned char)t->s[end - 1]))
		end--;
	t->s[end] = '\0';
	if (end > start)
		r = cb(t->s + start, end - start, !t->inexact, ctx);
	t->len = 0;
	t->inexact = 0;
	return r;
}

/*
 * The quoted string opening at v[p]: its content, unquoted and unfolded,
 * into t (NULL: skipped). Returns the offset after it (len if unclosed).
 */
static size_t
take_quoted(const char *v, size_t len, size_t p, struct text *t)
{
	for (p++; p < len && v[p] != '"'; p++) {
		if (v[p] == '\\' && p + 1 < len)
			p++;
		if (v[p] != '\n')
			text_put(t, v[p]);
	}
	return p < len ? p + 1 : len;
}

/*
 * The comment opening at v[p]: its content (nested comments with their
 * parentheses) into t, unquoted and unfolded. The offset after it.
 */
static size_t
take_comment(const char *v, size_t len, size_t p, struct text *t)
{
	size_t depth = 1;

	for (p++; p < len; p++) {
		if (v[p] == '\\' && p + 1 < len)
			p++;
		else if (v[p] == '(')
			depth++;
		else if (v[p] == ')' && --depth == 0)
			return p + 1;
		if (v[p] != '\n')
			text_put(t, v[p]);
	}
	return len;
}

/*
 * One byte of the list outside quotes and comments. A display name ends
 * at '<', a group name at ':'; what ends at ',' or ';' (or the end of the
 * value) was an addr-spec, or nothing, and is thrown away. *angle: inside
 * an angle-addr, where nothing but comments is display text.
 */
static int
list_byte(char ch, int *angle, struct text *name, rfc5322_text_cb cb,
    void *ctx)
{
	if (*angle) {
		*angle = ch != '>';
		return 0;
	}
	switch (ch) {
	case '<':
		*angle = 1;
		/* FALLTHROUGH */
	case ':':
		return text_emit(name, cb, ctx);
	case ',':
	case ';':
		name->len = 0;
		name->inexact = 0;
		return 0;
	case '\n':
		return 0;
	default:
		text_put(name, ch);
		return 0;
	}
}

/* Walk the display text of an address list; see rfc5322.h. */
int
rfc5322_display_text(const char *value, size_t len, rfc5322_text_cb cb,
    void *ctx)
{
	struct text name, comment;
	size_t p = 0;
	int angle = 0, r = 0;

	assert(cb != NULL && (value != NULL || len == 0));
	name.len = comment.len = 0;
	name.inexact = comment.inexact = 0;
	while (p < len && r == 0) {
		if (value[p] == '(') {
			p = take_comment(value, len, p, &comment);
			r = text_emit(&comment, cb, ctx);
			if (!angle)
				text_put(&name, ' ');
		} else if (value[p] == '"')
			p = take_quoted(value, len, p, angle ? NULL : &name);
		else
			r = list_byte(value[p++], &angle, &name, cb, ctx);
	}
	return r;
}

int
rfc5322_has_at_sign(const char *text, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (text[i] == '@')
			return 1;
		/* U+FF20 FULLWIDTH and U+FE6B SMALL COMMERCIAL AT */
		if ((unsigned char)text[i] == 0xef && len - i >= 3 &&
		    (((unsigned char)text[i + 1] == 0xbc &&
		    (unsigned char)text[i + 2] == 0xa0) ||
		    ((unsigned char)text[i + 1] == 0xb9 &&
		    (unsigned char)text[i + 2] == 0xab)))
			return 1;
	}
	return 0;
}

/* Received: "by". */

/* A byte of a host name, or of a word "by" could be the end of. */
static int
is_word_byte(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
	    ch >= 0x80;
}

/* Does v[p..len) start with host, a trailing dot allowed, then no more? */
static int
host_at(const char *v, size_t len, size_t p, const char *host, size_t hl)
{
	size_t i;

	if (len - p < hl)
		return 0;
	for (i = 0; i < hl; i++)
		if (ascii_lower((unsigned char)v[p + i]) !=
		    ascii_lower((unsigned char)host[i]))
			return 0;
	p += hl;
	if (p < len && v[p] == '.')
		p++;
	return p == len || !is_word_byte((unsigned char)v[p]);
}

/* What may stand between "by" and its host, besides comments. */
static int
is_by_gap(unsigned char ch)
{
	return is_wsp(ch) || ch == '\n' || ch == '"' || ch == '[' || ch == '<';
}

/* Is there a word "by" at v[i], not part of a longer word? */
static int
by_at(const char *v, size_t len, size_t i)
{
	return len - i >= 2 && ascii_lower((unsigned char)v[i]) == 'b' &&
	    ascii_lower((unsigned char)v[i + 1]) == 'y' &&
	    (i == 0 || !is_word_byte((unsigned char)v[i - 1])) &&
	    (len - i == 2 || !is_word_byte((unsigned char)v[i + 2]));
}

/*
 * One pass, so that no input costs more than linear time (a rescan from
 * every "by" would be quadratic in a field of nested comments). A "by"
 * seen at comment depth d waits, as bit d of pending, for the next other
 * byte at that depth: the host must start there. Comments it meets on
 * the way are skipped (their own "by"s wait at their depth); the comment
 * that holds it ending first cancels it. Depths past 63 are skipped whole.
 */
int
rfc5322_received_by(const char *value, size_t len, const char *host)
{
	uint64_t pending = 0, bit;
	size_t i, hl, depth = 0;
	unsigned char ch;

	assert(host != NULL && (value != NULL || len == 0));
	if ((hl = strlen(host)) == 0)
		return 0;
	for (i = 0; i < len; i++) {
		ch = (unsigned char)value[i];
		bit = depth < 64 ? (uint64_t)1 << depth : 0;
		if (is_by_gap(ch))
			continue;
		if (ch == '(' || ch == ')') {
			if (ch == '(')
				depth++;
			else if (depth > 0) {
				pending &= ~bit;
				depth--;
			}
			continue;
		}
		if (pending & bit) {
			pending &= ~bit;
			if (host_at(value, len, i, host, hl))
				return 1;
		}
		if (by_at(value, len, i)) {
			pending |= bit;
			i++;
		} else if (ch == '\\')
			i++;		/* a quoted pair is one byte */
	}
	return 0;
}
