/*
 * Fuzz target for mppd/proxy.c, the PROXY protocol header parser. The
 * input is judged as mppd judges it, on every prefix from the first byte
 * on: the verdict must be PROXY_MORE until some prefix settles it, and
 * stay the same (with the same header) on every longer prefix, since mppd
 * consumes bytes while the verdict is PROXY_MORE and then exactly the
 * header. Beyond that it checks the promises of proxy.h for each header:
 * a length within the input and the bounds, addresses that are canonical
 * numeric text of their family, ports and strings in range.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "../../mppd/proxy.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_text(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	CHECK(n < cap);
	while (n-- > 0)
		CHECK(s[n] >= 0x20 && s[n] < 0x7f);
}

/* An address as proxy.h promises: numeric, canonical, of its family. */
static void
check_addr(int family, const char *s)
{
	unsigned char a[16];
	char canon[PROXY_ADDR_MAX];

	CHECK(strnlen(s, PROXY_ADDR_MAX) < PROXY_ADDR_MAX);
	CHECK(inet_pton(family, s, a) == 1);
	CHECK(inet_ntop(family, a, canon, sizeof(canon)) != NULL);
	CHECK(strcmp(canon, s) == 0);
}

static void
check_header(const struct proxy_header *h, enum proxy_status st,
    size_t len)
{
	if (st == PROXY_BAD) {
		CHECK(h->error != NULL);
		return;
	}
	CHECK(h->error == NULL);
	if (st == PROXY_MORE)
		return;
	CHECK(h->len > 0 && h->len <= len && h->len <= PROXY_HEADER_MAX);
	CHECK(h->version == 1 || h->version == 2);
	if (h->version == 1)
		CHECK(h->len <= PROXY_V1_MAX);
	CHECK(h->local == 0 || h->local == 1);
	if (!h->local) {
		CHECK(h->family == AF_INET || h->family == AF_INET6);
		check_addr(h->family, h->src);
		/* dst keeps its own family: a mapped src became IPv4. */
		check_addr(strchr(h->dst, ':') ? AF_INET6 : AF_INET, h->dst);
		CHECK(h->src_port <= 65535 && h->dst_port <= 65535);
	}
	CHECK(h->tls == 0 || h->tls == 1);
	check_text(h->tls_version, sizeof(h->tls_version));
	check_text(h->tls_cipher, sizeof(h->tls_cipher));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_header first, h;
	enum proxy_status settled = PROXY_MORE, st;
	size_t k;

	memset(&first, 0, sizeof(first));
	for (k = 0; k <= size; k++) {
		st = proxy_parse(data, k, &h);
		check_header(&h, st, k);
		if (settled == PROXY_MORE) {
			settled = st;
			first = h;
			continue;
		}
		CHECK(st == settled);
		if (st == PROXY_DONE)
			CHECK(memcmp(&h, &first, sizeof(h)) == 0);
		/* A header is settled within PROXY_HEADER_MAX bytes. */
		if (k > PROXY_HEADER_MAX + 8)
			break;
	}
	if (size > PROXY_HEADER_MAX)
		CHECK(settled != PROXY_MORE);
	return 0;
}
