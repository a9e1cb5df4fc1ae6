/*
 * mpp_rcpt — find an address in a message's recipient headers. See
 * mpp_rcpt.h for why a client cares.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "mpp_rcpt.h"

void
mpp_rcpt_init(struct mpp_rcpt *r)
{
	r->len = 0;
	r->complete = 0;
	r->overflow = 0;
}

/* Offset just past the LF that ends the header section, or 0 if none. */
static size_t
header_end(const char *buf, size_t from, size_t len)
{
	size_t i;

	for (i = from; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 1;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 1;
	}
	return 0;
}

void
mpp_rcpt_feed(struct mpp_rcpt *r, const char *buf, size_t len)
{
	size_t room, from, end;

	if (r->complete || r->overflow)
		return;
	room = sizeof(r->hdr) - r->len;
	if (len > room)
		len = room;
	/* the end marker may straddle two chunks: look back two bytes */
	from = r->len > 2 ? r->len - 2 : 0;
	memcpy(r->hdr + r->len, buf, len);
	r->len += len;
	if ((end = header_end(r->hdr, from, r->len)) != 0) {
		r->len = end;
		r->complete = 1;
	} else if (r->len == sizeof(r->hdr))
		r->overflow = 1;
}

/* May ch be part of an address? 8-bit bytes count (UTF-8 addresses). */
static int
addr_char(unsigned char ch)
{
	return isalnum(ch) || ch >= 0x80 ||
	    strchr("!#$%&'*+-/=?^_`{|}~.@", ch) != NULL;
}

/* Does the address a[0..alen) appear, alone, in [p, end)? */
static int
search(const char *p, const char *end, const char *a, size_t alen)
{
	const char *s;

	for (s = p; (size_t)(end - s) >= alen; s++) {
		if (strncasecmp(s, a, alen) != 0)
			continue;
		if ((s == p || !addr_char((unsigned char)s[-1])) &&
		    (s + alen == end || !addr_char((unsigned char)s[alen])))
			return 1;
	}
	return 0;
}

/* Is the field name in [p, colon) To, Cc or Bcc? */
static int
rcpt_field(const char *p, const char *colon)
{
	size_t n;

	while (colon > p && isblank((unsigned char)colon[-1]))
		colon--;
	n = (size_t)(colon - p);
	return (n == 2 && strncasecmp(p, "to", 2) == 0) ||
	    (n == 2 && strncasecmp(p, "cc", 2) == 0) ||
	    (n == 3 && strncasecmp(p, "bcc", 3) == 0);
}

/* The bare address in "Name <addr>" or "addr": start and length. */
static const char *
bare_address(const char *addr, size_t *len)
{
	const char *lt = strchr(addr, '<'), *gt;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL) {
		*len = (size_t)(gt - lt - 1);
		return lt + 1;
	}
	while (isspace((unsigned char)*addr))
		addr++;
	*len = strlen(addr);
	while (*len > 0 && isspace((unsigned char)addr[*len - 1]))
		(*len)--;
	return addr;
}

int
mpp_rcpt_listed(const struct mpp_rcpt *r, const char *addr)
{
	const char *p = r->hdr, *end = r->hdr + r->len, *eol, *colon;
	const char *a;
	size_t alen;
	int in_field = 0;

	a = bare_address(addr, &alen);
	if (alen == 0)
		return 0;
	if (r->overflow)
		return -1;
	for (; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		if (*p == ' ' || *p == '\t') {
			if (in_field && search(p, eol, a, alen))
				return 1;
			continue;
		}
		colon = memchr(p, ':', (size_t)(eol - p));
		in_field = colon != NULL && rcpt_field(p, colon);
		if (in_field && search(colon + 1, eol, a, alen))
			return 1;
	}
	return 0;
}
