/*
 * proxy — the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer sends before the client's first
 * byte. It does no I/O: proxy_parse() judges the bytes received so far
 * from the start of the connection. The host reads until the verdict is
 * no longer PROXY_MORE; it may consume every byte while the verdict is
 * PROXY_MORE (they all belong to the header), and exactly h->len bytes
 * once it is PROXY_DONE, so what follows (the client's MPP or TLS bytes)
 * stays in the socket. The verdict on a prefix never changes as bytes are
 * added: once it is PROXY_DONE or PROXY_BAD it stays so, with the same
 * header.
 */
#ifndef MPP_PROXY_H
#define MPP_PROXY_H

#include <stddef.h>

#define PROXY_V1_MAX 107	/* a v1 line with its CRLF (the spec's bound) */
#define PROXY_V2_LEN_MAX 2048	/* the v2 length field: addresses and TLVs */
#define PROXY_HEADER_MAX (16 + PROXY_V2_LEN_MAX)	/* bytes a host buffers */
#define PROXY_ADDR_MAX 46	/* numeric IPv6 text with its NUL */

enum proxy_status {
	PROXY_MORE,		/* a valid start: every byte so far is header */
	PROXY_DONE,		/* a whole valid header of h->len bytes */
	PROXY_BAD		/* not a valid header: h->error says why */
};

struct proxy_header {
	size_t len;		/* bytes of the header (PROXY_DONE) */
	int version;		/* 1 or 2, once the signature is seen */
	/*
	 * The header gives no client: v2 LOCAL (the balancer's own
	 * connection, a health check), v1 UNKNOWN, or a v2 family or
	 * transport other than TCP over IPv4/IPv6. The host uses the
	 * socket's own addresses, as if there were no header.
	 */
	int local;
	int family;		/* AF_INET or AF_INET6 unless local */
	char src[PROXY_ADDR_MAX];	/* the client, numeric */
	char dst[PROXY_ADDR_MAX];	/* the address it connected to */
	unsigned src_port, dst_port;
	int tls;		/* v2 PP2_TYPE_SSL: the client used TLS */
	int tls_verified;	/* ... and its certificate was verified */
	char tls_version[32];	/* PP2_SUBTYPE_SSL_VERSION, printable */
	char tls_cipher[64];	/* PP2_SUBTYPE_SSL_CIPHER, printable */
	const char *error;	/* a static text (PROXY_BAD) */
};

/*
 * Judge data[0..len), the first bytes of a connection, and fill h. Bytes
 * past the header are not looked at. Any length may be passed; a header
 * cannot be longer than PROXY_HEADER_MAX.
 */
enum proxy_status proxy_parse(const unsigned char *data, size_t len,
    struct proxy_header *h);

#endif
