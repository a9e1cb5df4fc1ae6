/*
 * cidr — a list of IPv4 and IPv6 networks ("192.0.2.7", "10.0.0.0/8",
 * "2001:db8::/32", "::1") parsed once from config text, and the test
 * whether an address falls in one of them. Fixed size, no allocation; an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches as its IPv4 self.
 */
#ifndef MPP_CIDR_H
#define MPP_CIDR_H

#include <stddef.h>

#define CIDR_LIST_MAX 64	/* networks in one list */

struct cidr {
	int family;			/* AF_INET or AF_INET6 */
	unsigned char addr[16];		/* network byte order, host bits 0 */
	unsigned prefix;		/* 0..32 or 0..128 */
};

struct cidr_list {
	size_t n;
	struct cidr net[CIDR_LIST_MAX];
};

/*
 * Parse a comma-separated list (blanks around items ignored; an empty
 * text is an empty list). An address without /N is one host; a network
 * with host bits set is refused, as a likely typo. 0, or -1 with err.
 */
int cidr_list_parse(const char *text, struct cidr_list *out, char *err,
    size_t errsz);

/*
 * Nonzero when addr (family AF_INET: a struct in_addr; AF_INET6: a
 * struct in6_addr) is in one of the list's networks.
 */
int cidr_list_match(const struct cidr_list *l, int family, const void *addr);

/* The same for a numeric address in text; 0 for text that is none. */
int cidr_list_match_text(const struct cidr_list *l, const char *addr);

#endif
