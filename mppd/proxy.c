/*
 * proxy — see proxy.h. A prefix is judged by rules that each look at one
 * byte and the one before it (the v1 line) or at fixed offsets (the v2
 * header), so the verdict on a longer prefix can only stay PROXY_MORE or
 * settle; the full parse runs once the whole header is in.
 *
 * Addresses are given back in canonical text (inet_ntop of what was
 * parsed), an IPv4-mapped IPv6 address as IPv4: the client address keys
 * the per-address limits, and two spellings of one address must not count
 * as two clients.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <bsd/string.h>

#include "proxy.h"

static const unsigned char v2sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
static const char v1sig[] = "PROXY ";

#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_TCP4 0x11
#define V2_TCP6 0x21
#define PP2_TYPE_CRC32C 0x03
#define PP2_TYPE_SSL 0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CIPHER 0x23
#define PP2_CLIENT_SSL 0x01
#define PP2_CLIENT_CERT_CONN 0x02
#define PP2_CLIENT_CERT_SESS 0x04
#define V1_TOKENS 6		/* PROXY TCP4 src dst sport dport */

static const unsigned char v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static enum proxy_status
bad(struct proxy_header *h, const char *why)
{
	h->error = why;
	return PROXY_BAD;
}

/* Canonical text of a binary address; a mapped IPv4 one as IPv4. */
static void
addr_text(int family, const unsigned char *a, char *out, int *fam_out)
{
	if (family == AF_INET6 && memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
		family = AF_INET;
		a += sizeof(v4mapped);
	}
	if (inet_ntop(family, a, out, PROXY_ADDR_MAX) == NULL)
		strlcpy(out, "?", PROXY_ADDR_MAX);
	*fam_out = family;
}

/* ---- version 1 ---- */

/*
 * A v1 prefix without its CRLF: the signature so far, printable bytes, a
 * CR only last, and no more than the line may hold.
 */
static enum proxy_status
v1_prefix(const unsigned char *d, size_t len, struct proxy_header *h)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (i < sizeof(v1sig) - 1 && d[i] != (unsigned char)v1sig[i])
			return bad(h, "not a PROXY header");
		if (d[i] == '\r' && i + 1 == len)
			break;
		if (d[i] < 0x20 || d[i] > 0x7e)
			return bad(h, "v1: control byte in the line");
	}
	if (len >= PROXY_V1_MAX)
		return bad(h, "v1: no CRLF within 107 bytes");
	return PROXY_MORE;
}

/* Split line at single spaces into at most max tokens; -1 on "  ". */
static int
v1_split(char *line, char **tok, int max)
{
	int n = 0;
	char *p = line, *sp;

	while (n < max) {
		tok[n++] = p;
		if ((sp = strchr(p, ' ')) == NULL)
			return n;
		*sp = '\0';
		p = sp + 1;
		if (*p == ' ' || *p == '\0')
			return -1;
	}
	return -1;		/* more tokens than max */
}

/* A v1 port: decimal 0..65535, no leading zero. */
static int
v1_port(const char *s, unsigned *out)
{
	unsigned long v = 0;
	size_t i, n = strlen(s);

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* A v1 address of family: IPv4 only in its canonical dotted form. */
static int
v1_addr(int family, const char *s, char *out, int *fam_out)
{
	unsigned char a[16];
	char canon[PROXY_ADDR_MAX];

	if (inet_pton(family, s, a) != 1)
		return -1;
	if (family == AF_INET && (inet_ntop(AF_INET, a, canon,
	    sizeof(canon)) == NULL || strcmp(canon, s) != 0))
		return -1;
	addr_text(family, a, out, fam_out);
	return 0;
}

/* The whole v1 line, CRLF excluded, of n bytes. */
static enum proxy_status
v1_line(const unsigned char *d, size_t n, struct proxy_header *h)
{
	char line[PROXY_V1_MAX + 1], *tok[V1_TOKENS];
	int family, ntok, f2;

	memcpy(line, d, n);
	line[n] = '\0';
	h->len = n + 2;
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0 &&
	    (line[13] == '\0' || line[13] == ' ')) {
		h->local = 1;	/* the rest is to be ignored (the spec) */
		return PROXY_DONE;
	}
	if ((ntok = v1_split(line, tok, V1_TOKENS)) != V1_TOKENS)
		return bad(h, "v1: not six fields");
	if (strcmp(tok[1], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(tok[1], "TCP6") == 0)
		family = AF_INET6;
	else
		return bad(h, "v1: unknown protocol");
	if (v1_addr(family, tok[2], h->src, &h->family) == -1 ||
	    v1_addr(family, tok[3], h->dst, &f2) == -1)
		return bad(h, "v1: bad address");
	if (v1_port(tok[4], &h->src_port) == -1 ||
	    v1_port(tok[5], &h->dst_port) == -1)
		return bad(h, "v1: bad port");
	return PROXY_DONE;
}

static enum proxy_status
v1_parse(const unsigned char *d, size_t len, struct proxy_header *h)
{
	const unsigned char *lf;
	size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;

	h->version = 1;
	lf = memchr(d, '\n', scan);
	if (lf == NULL)
		return v1_prefix(d, scan, h);
	/* The bytes before the LF first: the verdict of a shorter prefix. */
	if (v1_prefix(d, (size_t)(lf - d), h) == PROXY_BAD)
		return PROXY_BAD;
	if (lf == d || lf[-1] != '\r')
		return bad(h, "v1: LF without CR");
	return v1_line(d, (size_t)(lf - d) - 1, h);
}

/* ---- version 2 ---- */

static uint32_t
crc32c(const unsigned char *d, size_t len, size_t skip)
{
	uint32_t crc = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < len; i++) {
		/* The checksum's own four bytes count as zeros. */
		crc ^= i >= skip && i < skip + 4 ? 0 : d[i];
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

static unsigned
be16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* A TLV value as printable text (anything else becomes '?'). */
static void
tlv_text(const unsigned char *v, size_t n, char *out, size_t outsz)
{
	size_t i;

	if (n >= outsz)
		n = outsz - 1;
	for (i = 0; i < n; i++)
		out[i] = v[i] >= 0x20 && v[i] < 0x7f ? (char)v[i] : '?';
	out[n] = '\0';
}

/*
 * Walk the TLVs in d[0..n): each must fit. For each, fn gets its type,
 * value and length; -1 from fn or a TLV that overruns is -1.
 */
static int
tlv_walk(const unsigned char *d, size_t n,
    int (*fn)(int, const unsigned char *, size_t, void *), void *arg)
{
	size_t off = 0, vlen;

	while (off < n) {
		if (n - off < 3)
			return -1;
		vlen = be16(d + off + 1);
		if (vlen > n - off - 3)
			return -1;
		if (fn(d[off], d + off + 3, vlen, arg) == -1)
			return -1;
		off += 3 + vlen;
	}
	return 0;
}

static int
ssl_sub(int type, const unsigned char *v, size_t n, void *arg)
{
	struct proxy_header *h = arg;

	if (type == PP2_SUBTYPE_SSL_VERSION)
		tlv_text(v, n, h->tls_version, sizeof(h->tls_version));
	else if (type == PP2_SUBTYPE_SSL_CIPHER)
		tlv_text(v, n, h->tls_cipher, sizeof(h->tls_cipher));
	return 0;
}

struct v2_walk {
	struct proxy_header *h;
	const unsigned char *hdr;	/* the whole header, for the CRC */
	const char *error;
};

static int
v2_tlv(int type, const unsigned char *v, size_t n, void *arg)
{
	struct v2_walk *w = arg;
	struct proxy_header *h = w->h;

	if (type == PP2_TYPE_CRC32C) {
		if (n != 4 || crc32c(w->hdr, h->len, (size_t)(v - w->hdr)) !=
		    be32(v)) {
			w->error = "v2: CRC32C mismatch";
			return -1;
		}
	} else if (type == PP2_TYPE_SSL) {
		if (n < 5 || tlv_walk(v + 5, n - 5, ssl_sub, h) == -1) {
			w->error = "v2: bad SSL TLV";
			return -1;
		}
		h->tls = (v[0] & PP2_CLIENT_SSL) != 0;
		h->tls_verified = (v[0] & (PP2_CLIENT_CERT_CONN |
		    PP2_CLIENT_CERT_SESS)) != 0 && be32(v + 1) == 0;
	}
	return 0;
}

/* The address block of TCP over IPv4 or IPv6, then the TLVs. */
static enum proxy_status
v2_addresses(const unsigned char *d, struct proxy_header *h)
{
	size_t alen = d[13] == V2_TCP4 ? 12 : 36, blen = h->len - 16;
	size_t asz = alen == 12 ? 4 : 16;
	const unsigned char *a = d + 16;
	struct v2_walk w = { h, d, "v2: bad TLV" };
	int f2;

	if (blen < alen)
		return bad(h, "v2: address block too short");
	addr_text(asz == 4 ? AF_INET : AF_INET6, a, h->src, &h->family);
	addr_text(asz == 4 ? AF_INET : AF_INET6, a + asz, h->dst, &f2);
	h->src_port = be16(a + 2 * asz);
	h->dst_port = be16(a + 2 * asz + 2);
	if (tlv_walk(a + alen, blen - alen, v2_tlv, &w) == -1)
		return bad(h, w.error);
	return PROXY_DONE;
}

static enum proxy_status
v2_parse(const unsigned char *d, size_t len, struct proxy_header *h)
{
	size_t n = len < sizeof(v2sig) ? len : sizeof(v2sig);
	unsigned fam, proto;

	if (memcmp(d, v2sig, n) != 0)
		return bad(h, "not a PROXY header");
	h->version = 2;
	if (len >= 13 && ((d[12] >> 4) != 2 || (d[12] & 0xf) > V2_CMD_PROXY))
		return bad(h, "v2: bad version or command");
	if (len >= 14) {
		fam = d[13] >> 4;
		proto = d[13] & 0xf;
		if (fam > 3 || proto > 2)
			return bad(h, "v2: bad address family or transport");
	}
	if (len < 16)
		return PROXY_MORE;
	if (be16(d + 14) > PROXY_V2_LEN_MAX)
		return bad(h, "v2: header too long");
	h->len = 16 + be16(d + 14);
	if (len < h->len)
		return PROXY_MORE;
	/* LOCAL, and families we do not serve, fall back to the socket's
	   addresses; the block, TLVs included, is skipped (the spec). */
	if ((d[12] & 0xf) == V2_CMD_LOCAL ||
	    (d[13] != V2_TCP4 && d[13] != V2_TCP6)) {
		h->local = 1;
		return PROXY_DONE;
	}
	return v2_addresses(d, h);
}

enum proxy_status
proxy_parse(const unsigned char *data, size_t len, struct proxy_header *h)
{
	memset(h, 0, sizeof(*h));
	if (len == 0)
		return PROXY_MORE;
	if (data[0] == v1sig[0])
		return v1_parse(data, len, h);
	if (data[0] == v2sig[0])
		return v2_parse(data, len, h);
	return bad(h, "not a PROXY header");
}
