/*
 * cidr — see cidr.h. Items are parsed with inet_pton, which takes only
 * strict dotted quads for IPv4 (no octal or short forms), so the list
 * means what an administrator reads in it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"

#define CIDR_ITEM_MAX 64	/* longest item text: an IPv6 address and /128 */

static const unsigned char v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* The prefix after '/': 0..max, decimal, no sign or leading zero. */
static int
parse_prefix(const char *s, unsigned max, unsigned *out)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1] != '\0'))
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < 0 || (unsigned long)v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Nonzero when a bit past prefix is set in addr of len bytes. */
static int
host_bits_set(const unsigned char *addr, size_t len, unsigned prefix)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned keep = prefix >= (i + 1) * 8 ? 8 :
		    prefix > i * 8 ? prefix - (unsigned)i * 8 : 0;
		unsigned char mask = (unsigned char)~(0xff00u >> keep);

		if (addr[i] & mask)
			return 1;
	}
	return 0;
}

static int
parse_item(const char *s, size_t len, struct cidr *c, char *err,
    size_t errsz)
{
	char text[CIDR_ITEM_MAX], *slash;
	unsigned max;

	if (len == 0 || len >= sizeof(text)) {
		snprintf(err, errsz, len == 0 ? "empty item" : "item too long");
		return -1;
	}
	memcpy(text, s, len);
	text[len] = '\0';
	if ((slash = strchr(text, '/')) != NULL)
		*slash = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, text, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, text, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		snprintf(err, errsz, "\"%s\" is not a numeric address", text);
		return -1;
	}
	c->prefix = max;
	if (slash != NULL && parse_prefix(slash + 1, max, &c->prefix) == -1) {
		snprintf(err, errsz, "bad prefix length \"/%s\"", slash + 1);
		return -1;
	}
	if (host_bits_set(c->addr, max / 8, c->prefix)) {
		snprintf(err, errsz, "%s/%u has host bits set", text,
		    c->prefix);
		return -1;
	}
	return 0;
}

int
cidr_list_parse(const char *text, struct cidr_list *out, char *err,
    size_t errsz)
{
	const char *p = text, *comma, *e;

	memset(out, 0, sizeof(*out));
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		comma = strchr(p, ',');
		e = comma != NULL ? comma : p + strlen(p);
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (comma == NULL && e == p && out->n == 0)
			return 0;	/* an empty list */
		if (out->n == CIDR_LIST_MAX) {
			snprintf(err, errsz, "more than %d networks",
			    CIDR_LIST_MAX);
			return -1;
		}
		if (parse_item(p, (size_t)(e - p), &out->net[out->n], err,
		    errsz) == -1)
			return -1;
		out->n++;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

/* The first prefix bits of a and b are the same. */
static int
prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;
	unsigned char mask;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff00u >> rest);
	return (a[whole] & mask) == (b[whole] & mask);
}

int
cidr_list_match(const struct cidr_list *l, int family, const void *addr)
{
	const unsigned char *a = addr;
	size_t i;

	if (family == AF_INET6 && memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
		family = AF_INET;
		a += sizeof(v4mapped);
	}
	if (family != AF_INET && family != AF_INET6)
		return 0;
	for (i = 0; i < l->n; i++)
		if (l->net[i].family == family &&
		    prefix_equal(l->net[i].addr, a, l->net[i].prefix))
			return 1;
	return 0;
}

int
cidr_list_match_text(const struct cidr_list *l, const char *addr)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, addr, a) == 1)
		return cidr_list_match(l, AF_INET, a);
	if (inet_pton(AF_INET6, addr, a) == 1)
		return cidr_list_match(l, AF_INET6, a);
	return 0;
}
