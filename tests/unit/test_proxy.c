/*
 * Unit tests for mppd/proxy.c, the PROXY protocol header parser. Each case
 * is fed as mppd feeds it: the bytes received so far, whole, one byte at a
 * time and in 7-byte pieces. The verdict must settle at the same byte in
 * each run (the header's last byte, or the first byte that cannot start a
 * valid header), give the same header, and stay once settled as more bytes
 * come. Inputs live in heap buffers of exactly their length, so
 * AddressSanitizer catches any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "../../mppd/proxy.h"

struct want {
	enum proxy_status st;
	size_t at;		/* the prefix length where the verdict settles */
	int local;
	const char *src, *dst;	/* NULL: not checked (local) */
	unsigned sport, dport;
	int tls;
	const char *tls_version;
};

/* Feed in[0..len) in pieces of step bytes (0: whole) until it settles. */
static enum proxy_status
feed(const unsigned char *in, size_t len, size_t step,
    struct proxy_header *h, size_t *settled)
{
	enum proxy_status st = PROXY_MORE;
	size_t have = 0;

	while (st == PROXY_MORE && have < len) {
		have = step == 0 || len - have < step ? len : have + step;
		st = proxy_parse(in, have, h);
	}
	*settled = have;
	return st;
}

static void
check_header(const char *label, const struct proxy_header *h,
    const struct want *w)
{
	if (w->st != PROXY_DONE) {
		assert_non_null(h->error);
		return;
	}
	assert_null(h->error);
	assert_int_equal(h->len, w->at);
	assert_int_equal(h->local, w->local);
	if (w->src != NULL) {
		assert_string_equal(h->src, w->src);
		assert_string_equal(h->dst, w->dst);
		assert_int_equal(h->src_port, w->sport);
		assert_int_equal(h->dst_port, w->dport);
	}
	assert_int_equal(h->tls, w->tls);
	if (w->tls_version != NULL)
		assert_string_equal(h->tls_version, w->tls_version);
	(void)label;
}

/* One case, three ways; then every longer prefix keeps the verdict. */
static void
run_case(const char *label, const void *data, size_t len,
    const struct want *w)
{
	static const size_t steps[] = { 0, 1, 7 };
	unsigned char *in = malloc(len ? len : 1);
	struct proxy_header h, again;
	size_t i, at, k;
	enum proxy_status st;

	assert_non_null(in);
	memcpy(in, data, len);
	for (i = 0; i < 3; i++) {
		st = feed(in, len, steps[i], &h, &at);
		if (st != w->st)
			fail_msg("%s: step %zu: status %d, want %d (%s)", label,
			    steps[i], st, w->st, h.error ? h.error : "");
		if (steps[i] == 1 && at != w->at)
			fail_msg("%s: settled at byte %zu, want %zu", label,
			    at, w->at);
		check_header(label, &h, w);
	}
	for (k = w->at; st != PROXY_MORE && k <= len; k++) {
		assert_int_equal(proxy_parse(in, k, &again), st);
		if (st == PROXY_DONE)
			assert_memory_equal(&again, &h, sizeof(h));
	}
	free(in);
}

#define TAIL "USER alice\r\n"

static void
v1_case(const char *label, const char *line, enum proxy_status st,
    size_t at, const char *src, const char *dst, unsigned sp, unsigned dp)
{
	char buf[512];
	struct want w = { st, at, 0, src, dst, sp, dp, 0, NULL };

	snprintf(buf, sizeof(buf), "%s%s", line, TAIL);
	if (st == PROXY_DONE && at == 0)
		w.at = strlen(line);
	run_case(label, buf, strlen(buf), &w);
}

static void
test_v1_good(void **state)
{
	v1_case("tcp4", "PROXY TCP4 192.0.2.7 198.51.100.1 56324 218\r\n",
	    PROXY_DONE, 0, "192.0.2.7", "198.51.100.1", 56324, 218);
	v1_case("tcp6, upper case, compressed",
	    "PROXY TCP6 2001:DB8::1 2001:db8:0:0::2 1 65535\r\n",
	    PROXY_DONE, 0, "2001:db8::1", "2001:db8::2", 1, 65535);
	v1_case("tcp6 carrying a mapped IPv4 client",
	    "PROXY TCP6 ::ffff:192.0.2.9 ::1 0 218\r\n",
	    PROXY_DONE, 0, "192.0.2.9", "::1", 0, 218);
	v1_case("ports 0", "PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n",
	    PROXY_DONE, 0, "0.0.0.0", "255.255.255.255", 0, 0);
}

static void
v1_local(const char *label, const char *line)
{
	char buf[512];
	struct want w = { PROXY_DONE, strlen(line), 1, NULL, NULL, 0, 0, 0,
	    NULL };

	snprintf(buf, sizeof(buf), "%s%s", line, TAIL);
	run_case(label, buf, strlen(buf), &w);
}

static void
test_v1_unknown(void **state)
{
	struct want w = { PROXY_DONE, PROXY_V1_MAX, 1, NULL, NULL, 0, 0, 0,
	    NULL };
	char line[PROXY_V1_MAX + 16];

	v1_local("unknown, short", "PROXY UNKNOWN\r\n");
	v1_local("unknown with addresses", "PROXY UNKNOWN 192.0.2.7 "
	    "198.51.100.1 56324 218 ignored\r\n");
	/* The longest line the spec allows: 107 bytes with its CRLF. */
	memset(line, 'f', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + PROXY_V1_MAX - 2, "\r\n", 2);
	run_case("107 bytes", line, PROXY_V1_MAX, &w);
}

static void
test_v1_bad(void **state)
{
	char line[PROXY_V1_MAX + 16];
	struct want w = { PROXY_BAD, PROXY_V1_MAX, 0, NULL, NULL, 0, 0, 0,
	    NULL };

	/* Refused at the first byte that cannot belong to a header. */
	v1_case("an MPP client", "", PROXY_BAD, 1, NULL, NULL, 0, 0);
	v1_case("lower case", "proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", PROXY_BAD,
	    1, NULL, NULL, 0, 0);
	v1_case("PROXX", "PROXX TCP4\r\n", PROXY_BAD, 5, NULL, NULL, 0, 0);
	v1_case("no space", "PROXYTCP4\r\n", PROXY_BAD, 6, NULL, NULL, 0, 0);
	v1_case("control byte", "PROXY TCP4 1.2.3.4\t1.2.3.4 1 2\r\n",
	    PROXY_BAD, 19, NULL, NULL, 0, 0);
	v1_case("CR alone", "PROXY TCP4 1.2.3.4\r1.2.3.4 1 2\r\n", PROXY_BAD,
	    20, NULL, NULL, 0, 0);
	v1_case("LF alone", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", PROXY_BAD,
	    31, NULL, NULL, 0, 0);
	/* Refused at the CRLF, where the line is parsed. */
	v1_case("TCP5", "PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", PROXY_BAD,
	    32, NULL, NULL, 0, 0);
	v1_case("five fields", "PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", PROXY_BAD,
	    30, NULL, NULL, 0, 0);
	v1_case("seven fields", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",
	    PROXY_BAD, 34, NULL, NULL, 0, 0);
	v1_case("two spaces", "PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n",
	    PROXY_BAD, 33, NULL, NULL, 0, 0);
	v1_case("trailing space", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n",
	    PROXY_BAD, 33, NULL, NULL, 0, 0);
	v1_case("leading zero in address",
	    "PROXY TCP4 1.2.3.04 1.2.3.4 1 2\r\n", PROXY_BAD, 33, NULL, NULL,
	    0, 0);
	v1_case("short IPv4 form", "PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n",
	    PROXY_BAD, 30, NULL, NULL, 0, 0);
	v1_case("IPv6 in TCP4", "PROXY TCP4 ::1 1.2.3.4 1 2\r\n", PROXY_BAD,
	    28, NULL, NULL, 0, 0);
	v1_case("IPv4 in TCP6", "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", PROXY_BAD,
	    28, NULL, NULL, 0, 0);
	v1_case("port 65536", "PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
	    PROXY_BAD, 36, NULL, NULL, 0, 0);
	v1_case("port with leading zero", "PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
	    PROXY_BAD, 33, NULL, NULL, 0, 0);
	v1_case("port with sign", "PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
	    PROXY_BAD, 33, NULL, NULL, 0, 0);
	v1_case("PROXY alone", "PROXY\r\n", PROXY_BAD, 6, NULL, NULL, 0, 0);
	v1_case("unknown glued", "PROXY UNKNOWNX\r\n", PROXY_BAD, 16, NULL,
	    NULL, 0, 0);
	/* No CRLF within the 107 bytes a line may have. */
	memset(line, 'f', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + PROXY_V1_MAX - 1, "\r\n", 2);
	run_case("108 bytes", line, PROXY_V1_MAX + 1, &w);
	run_case("no CRLF at all", line, sizeof(line), &w);
}

/* ---- version 2 ---- */

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* A v2 header: signature, ver_cmd, fam, then body (n bytes); total. */
static size_t
v2(unsigned char *out, int ver_cmd, int fam, const void *body, size_t n)
{
	memcpy(out, sig, 12);
	out[12] = (unsigned char)ver_cmd;
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(n >> 8);
	out[15] = (unsigned char)n;
	if (n > 0)
		memcpy(out + 16, body, n);
	return 16 + n;
}

/* 192.0.2.7:56324 -> 198.51.100.1:218 */
static const unsigned char tcp4[12] = {
	192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x00, 0xda
};

static void
v2_case(const char *label, int ver_cmd, int fam, const void *body,
    size_t n, const struct want *w)
{
	unsigned char buf[PROXY_HEADER_MAX + 64];
	size_t len = v2(buf, ver_cmd, fam, body, n);

	memcpy(buf + len, TAIL, strlen(TAIL));
	run_case(label, buf, len + strlen(TAIL), w);
}

static void
test_v2_proxy(void **state)
{
	unsigned char b6[36] = { 0x20, 0x01, 0x0d, 0xb8 };
	struct want w = { PROXY_DONE, 28, 0, "192.0.2.7", "198.51.100.1",
	    56324, 218, 0, NULL };
	unsigned char b[64];

	v2_case("tcp4", 0x21, 0x11, tcp4, sizeof(tcp4), &w);
	/* 2001:db8::1 port 1 -> ::1 port 218 */
	b6[15] = 1;
	b6[31] = 1;
	b6[33] = 1;
	b6[35] = 218;
	w = (struct want){ PROXY_DONE, 52, 0, "2001:db8::1", "::1", 1, 218,
	    0, NULL };
	v2_case("tcp6", 0x21, 0x21, b6, sizeof(b6), &w);
	/* Unknown TLVs (NOOP, a custom type) are skipped. */
	memcpy(b, tcp4, 12);
	memcpy(b + 12, "\x04\x00\x02xy\xe0\x00\x00", 8);
	w = (struct want){ PROXY_DONE, 36, 0, "192.0.2.7", "198.51.100.1",
	    56324, 218, 0, NULL };
	v2_case("tcp4 with TLVs", 0x21, 0x11, b, 20, &w);
}

static void
test_v2_local(void **state)
{
	unsigned char unix_block[216] = { 0 };
	struct want w = { PROXY_DONE, 16, 1, NULL, NULL, 0, 0, 0, NULL };

	v2_case("local", 0x20, 0x00, NULL, 0, &w);
	/* LOCAL's block is skipped whatever it holds (the spec). */
	w.at = 28;
	v2_case("local with addresses", 0x20, 0x11, tcp4, sizeof(tcp4), &w);
	v2_case("local, junk block", 0x20, 0x11, "\x01\x02\x03\x04\x05\x06"
	    "\x07\x08\x09\x0a\x0b\x0c", 12, &w);
	/* Families we do not serve fall back to the socket's addresses. */
	w.at = 16;
	v2_case("proxy, unspec", 0x21, 0x00, NULL, 0, &w);
	w.at = 28;
	v2_case("proxy, udp4", 0x21, 0x12, tcp4, sizeof(tcp4), &w);
	w.at = 16 + 216;
	v2_case("proxy, unix stream", 0x21, 0x31, unix_block, 216, &w);
}

static void
test_v2_tls(void **state)
{
	/* PP2_TYPE_SSL: client SSL, verify 0, then VERSION and CIPHER. */
	static const unsigned char ssl[] = {
		0x20, 0x00, 0x1c, 0x01, 0, 0, 0, 0,
		0x21, 0x00, 0x07, 'T', 'L', 'S', 'v', '1', '.', '3',
		0x23, 0x00, 0x0a, 'T', 'L', 'S', '_', 'A', 'E', 'S', '_', 0x01,
		'X'
	};
	struct want w = { PROXY_DONE, 28 + sizeof(ssl), 0, "192.0.2.7",
	    "198.51.100.1", 56324, 218, 1, "TLSv1.3" };
	unsigned char body[64], b[128];
	struct proxy_header h;
	size_t n;

	memcpy(body, tcp4, 12);
	memcpy(body + 12, ssl, sizeof(ssl));
	v2_case("ssl", 0x21, 0x11, body, 12 + sizeof(ssl), &w);
	n = v2(b, 0x21, 0x11, body, 12 + sizeof(ssl));
	assert_int_equal(proxy_parse(b, n, &h), PROXY_DONE);
	assert_string_equal(h.tls_cipher, "TLS_AES_?X");	/* printable */
	assert_int_equal(h.tls_verified, 0);	/* no client certificate */
	/* An SSL TLV without the SSL flag: not TLS. */
	b[28 + 3] = 0x00;
	assert_int_equal(proxy_parse(b, n, &h), PROXY_DONE);
	assert_int_equal(h.tls, 0);
	/* A certificate given and verified. */
	b[28 + 3] = 0x01 | 0x02;
	assert_int_equal(proxy_parse(b, n, &h), PROXY_DONE);
	assert_int_equal(h.tls_verified, 1);
	b[28 + 7] = 1;		/* verify: nonzero, it failed */
	assert_int_equal(proxy_parse(b, n, &h), PROXY_DONE);
	assert_int_equal(h.tls_verified, 0);
}

static void
test_v2_crc(void **state)
{
	/* tcp4 with a CRC32C TLV, checksum computed independently. */
	static const unsigned char good[] =
	    "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x21\x11\x00\x13"
	    "\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00\xda\x03\x00\x04"
	    "\xfe\x8c\x2d\x3b";
	struct want w = { PROXY_DONE, 35, 0, "192.0.2.7", "198.51.100.1",
	    56324, 218, 0, NULL };
	unsigned char b[64];

	run_case("crc32c", good, 35, &w);
	memcpy(b, good, 35);
	b[34] ^= 1;
	w = (struct want){ PROXY_BAD, 35, 0, NULL, NULL, 0, 0, 0, NULL };
	run_case("crc32c wrong", b, 35, &w);
	memcpy(b, good, 35);
	b[19] = 8;	/* the client address changed, checksum not */
	run_case("crc32c over a changed address", b, 35, &w);
}

static void
test_v2_bad(void **state)
{
	struct want w = { PROXY_BAD, 0, 0, NULL, NULL, 0, 0, 0, NULL };
	unsigned char b[PROXY_HEADER_MAX + 64];
	static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00 };
	size_t n;

	w.at = 6;	/* the signature's sixth byte */
	n = v2(b, 0x21, 0x11, tcp4, 12);
	b[5] = 'x';
	run_case("signature", b, n, &w);
	w.at = 1;
	run_case("a TLS client hello", hello, sizeof(hello), &w);
	w.at = 13;
	v2_case("version 1", 0x11, 0x11, tcp4, 12, &w);
	v2_case("version 3", 0x31, 0x11, tcp4, 12, &w);
	v2_case("command 2", 0x22, 0x11, tcp4, 12, &w);
	v2_case("command 15", 0x2f, 0x11, tcp4, 12, &w);
	w.at = 14;
	v2_case("family 4", 0x21, 0x41, tcp4, 12, &w);
	v2_case("transport 3", 0x21, 0x13, tcp4, 12, &w);
	w.at = 24;
	v2_case("tcp4, 8 address bytes", 0x21, 0x11, tcp4, 8, &w);
	w.at = 16 + 35;
	v2_case("tcp6, 35 address bytes", 0x21, 0x21, b, 35, &w);
	/* The length field is judged as soon as it is in. */
	w.at = 16;
	n = v2(b, 0x21, 0x11, NULL, 0);
	b[14] = (PROXY_V2_LEN_MAX + 1) >> 8;
	b[15] = (PROXY_V2_LEN_MAX + 1) & 0xff;
	run_case("length over the bound", b, n, &w);
	b[14] = b[15] = 0xff;
	run_case("length 65535", b, n, &w);
}

static void
test_v2_bad_tlv(void **state)
{
	struct want w = { PROXY_BAD, 0, 0, NULL, NULL, 0, 0, 0, NULL };
	unsigned char b[64];

	memcpy(b, tcp4, 12);
	memcpy(b + 12, "\x04\x00\x05xy", 5);	/* value overruns */
	w.at = 16 + 17;
	v2_case("TLV overrun", 0x21, 0x11, b, 17, &w);
	memcpy(b + 12, "\x04\x00", 2);		/* 2 bytes: no TLV */
	w.at = 16 + 14;
	v2_case("TLV cut", 0x21, 0x11, b, 14, &w);
	memcpy(b + 12, "\x20\x00\x04\x01\x00\x00\x00", 7);  /* SSL < 5 */
	w.at = 16 + 19;
	v2_case("SSL TLV short", 0x21, 0x11, b, 19, &w);
	memcpy(b + 12, "\x20\x00\x07\x01\x00\x00\x00\x00\x21\x00", 10);
	w.at = 16 + 22;
	v2_case("SSL sub-TLV cut", 0x21, 0x11, b, 22, &w);
	memcpy(b + 12, "\x03\x00\x02\x00\x00", 5);	/* CRC not 4 bytes */
	w.at = 16 + 17;
	v2_case("CRC32C of 2 bytes", 0x21, 0x11, b, 17, &w);
}

/* The largest header the bound allows is taken, and nothing after it. */
static void
test_v2_largest(void **state)
{
	unsigned char *b = calloc(1, PROXY_HEADER_MAX + 4);
	struct want w = { PROXY_DONE, PROXY_HEADER_MAX, 0, "192.0.2.7",
	    "198.51.100.1", 56324, 218, 0, NULL };
	size_t pad = PROXY_V2_LEN_MAX - 12 - 3;

	assert_non_null(b);
	memcpy(b, sig, 12);
	b[12] = 0x21;
	b[13] = 0x11;
	b[14] = PROXY_V2_LEN_MAX >> 8;
	b[15] = PROXY_V2_LEN_MAX & 0xff;
	memcpy(b + 16, tcp4, 12);
	b[28] = 0x04;			/* one NOOP TLV fills the rest */
	b[29] = (unsigned char)(pad >> 8);
	b[30] = (unsigned char)pad;
	memcpy(b + PROXY_HEADER_MAX, "\r\n\r\n", 4);
	run_case("largest", b, PROXY_HEADER_MAX + 4, &w);
	free(b);
}

static void
test_empty(void **state)
{
	struct proxy_header h;

	assert_int_equal(proxy_parse((const unsigned char *)"", 0, &h),
	    PROXY_MORE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_good),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_v2_proxy),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v2_tls),
		cmocka_unit_test(test_v2_crc),
		cmocka_unit_test(test_v2_bad),
		cmocka_unit_test(test_v2_bad_tlv),
		cmocka_unit_test(test_v2_largest),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
