/*
 * Fuzz target for mppqueue/bounce.c: the input's first line is a
 * recipient's last reply (an SMTP reply or any reason), the rest the
 * stored message whose header section the report quotes. For a failure
 * notice, an expiry and a delay warning it checks what bounce.h promises
 * whatever the bytes: the boundary occurs only as the three delimiters,
 * the closing one and the Content-Type parameter (so no content ends a
 * part early); the quoted header section stays within BOUNCE_HEADERS_MAX;
 * the Status is a well-formed RFC 3463 code of the right class.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../mppqueue/bounce.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
count(const char *hay, size_t len, const char *needle)
{
	size_t n = 0, k = strlen(needle);
	const char *p = hay, *end = hay + len;

	while ((p = memmem(p, (size_t)(end - p), needle, k)) != NULL) {
		n++;
		p += k;
	}
	return n;
}

static void
check_status(const char *s, int cls)
{
	size_t i, dots = 0, run = 0;

	CHECK(s[0] == '0' + cls && s[1] == '.');
	for (i = 1; s[i] != '\0'; i++) {
		if (s[i] == '.') {
			CHECK(i == 1 || run > 0);
			dots++;
			run = 0;
		} else {
			CHECK(s[i] >= '0' && s[i] <= '9');
			CHECK(++run <= 3);
		}
	}
	CHECK(dots == 2 && run > 0);
}

static void
check_report(const struct buf *b)
{
	const char *p = memmem(b->data, b->len, "\tboundary=\"", 11), *q, *h;
	char bnd[256], delim[300];
	size_t n;

	CHECK(p != NULL);
	p += 11;
	CHECK((q = memchr(p, '"', b->len - (size_t)(p - b->data))) != NULL);
	n = (size_t)(q - p);
	CHECK(n > 0 && n < sizeof(bnd));
	memcpy(bnd, p, n);
	bnd[n] = '\0';
	CHECK(count(b->data, b->len, bnd) == 5);
	snprintf(delim, sizeof(delim), "\n--%s\n", bnd);
	CHECK(count(b->data, b->len, delim) == 3);
	snprintf(delim, sizeof(delim), "\n--%s--\n", bnd);
	CHECK(b->len > strlen(delim) && memcmp(b->data + b->len -
	    strlen(delim), delim, strlen(delim)) == 0);
	/* The header part: after its own header, up to the closing delimiter. */
	h = memmem(b->data, b->len, "text/rfc822-headers\n", 20);
	CHECK(h != NULL);
	CHECK((size_t)(b->data + b->len - h) <= BOUNCE_HEADERS_MAX + 400);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mpp_config cfg;
	static const enum bounce_kind kinds[3] = { BOUNCE_FAILED,
	    BOUNCE_FAILED, BOUNCE_DELAYED };
	const uint8_t *nl = memchr(data, '\n', size);
	size_t elen = nl != NULL ? (size_t)(nl - data) : size;
	char error[512], status[BOUNCE_STATUS_MAX];
	struct bounce_orig o = { "1800000000.M1P1Q1", -1, "alice@example.org",
	    1800000000 };
	struct bounce_rcpt r = { "bob@example.com", error, 0, 1800000100 };
	int k;

	if (cfg.hostname[0] == '\0') {
		config_defaults(&cfg);
		snprintf(cfg.hostname, sizeof(cfg.hostname), "mpp.test");
	}
	if (elen >= sizeof(error))
		elen = sizeof(error) - 1;
	memcpy(error, data, elen);
	error[elen] = '\0';
	if ((o.fd = memfd_create("fuzz_bounce", 0)) == -1)
		return 0;
	if (nl != NULL && write(o.fd, nl + 1, size - (size_t)(nl + 1 -
	    data)) == -1)
		abort();
	for (k = 0; k < 3; k++) {
		struct buf b = { 0 };

		r.expired = k == 1;
		bounce_status(&r, kinds[k], status);
		check_status(status, kinds[k] == BOUNCE_DELAYED || r.expired ?
		    4 : 5);
		CHECK(bounce_compose(&b, &cfg, "1800000200.M2P2Q2", &o,
		    kinds[k], &r, 1, 1800000200) == 0);
		check_report(&b);
		buf_free(&b);
	}
	close(o.fd);
	return 0;
}
