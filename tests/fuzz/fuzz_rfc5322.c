/*
 * Fuzz target for common/rfc5322.c: split the input into header fields,
 * parse every field value as an address list, then the whole input as one.
 *
 * Beyond "does not crash" (ASan catches reads past the input, which
 * libFuzzer hands over in an exact-size buffer), it checks the promises of
 * rfc5322.h: fields lie inside the input and follow each other, and every
 * address is a short NUL-terminated string fit to be an SMTP recipient.
 * Checks use abort() rather than assert() so that they hold in a build
 * with NDEBUG too.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfc5322.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_ctx {
	int calls;
	int stop_at;	/* stop the parse at this call (1-based); 0 never */
};

/*
 * An address holds no NUL, CR, LF or 8-bit byte, no space outside a quoted
 * string, whose quotes are balanced; has_domain says whether an '@' stands
 * outside the quotes.
 */
static void
check_address(const char *addr, int has_domain)
{
	size_t n, i;
	int quoted = 0, at = 0;
	unsigned char ch;

	n = strnlen(addr, RFC5322_ADDR_MAX + 1);
	CHECK(n > 0 && n <= RFC5322_ADDR_MAX);
	for (i = 0; i < n; i++) {
		ch = (unsigned char)addr[i];
		CHECK(ch >= 32 && ch < 127);
		if (quoted && ch == '\\') {
			CHECK(i + 1 < n);
			i++;
		} else if (ch == '"')
			quoted = !quoted;
		else if (!quoted) {
			CHECK(ch != ' ');
			at += ch == '@';
		}
	}
	CHECK(!quoted);
	CHECK(has_domain ? at == 1 : at == 0);
}

static int
on_address(const char *addr, int has_domain, void *arg)
{
	struct fuzz_ctx *ctx = arg;

	check_address(addr, has_domain);
	ctx->calls++;
	return ctx->calls == ctx->stop_at ? 42 : 0;
}

/*
 * Parse buf as an address list, once to the end and once stopping at a
 * callback, and check the two runs agree.
 */
static void
fuzz_addresses(const char *buf, size_t len, int stop_at)
{
	struct fuzz_ctx all = { 0, 0 }, part = { 0, stop_at };
	int r, r2;

	r = rfc5322_parse_addresses(buf, len, on_address, &all);
	CHECK(r == 0 || r == -1);
	if (stop_at == 0)
		return;
	r2 = rfc5322_parse_addresses(buf, len, on_address, &part);
	if (all.calls >= stop_at) {
		CHECK(r2 == 42 && part.calls == stop_at);
	} else
		CHECK(r2 == r && part.calls == all.calls);
}

/* Check f, returned for the field at prev, against the input and *off. */
static void
check_field(const char *buf, size_t len, size_t prev, size_t off,
    const struct rfc5322_field *f)
{
	const char *end = buf + len;

	CHECK(f->raw == buf + prev && f->name == f->raw);
	CHECK(off > prev && off == prev + f->raw_len && off <= len);
	CHECK(f->name_len > 0 && f->name_len < f->raw_len);
	CHECK(f->value > f->name + f->name_len && f->value[-1] == ':');
	CHECK(f->value + f->value_len <= f->raw + f->raw_len);
	CHECK(f->value + f->value_len <= end);
	CHECK(off == len || buf[off - 1] == '\n');
	CHECK(memchr(f->name, ':', f->name_len) == NULL);
	CHECK(rfc5322_field_is(f, "") == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct rfc5322_field f;
	size_t off = 0, prev;
	int r, stop_at;

	stop_at = size > 0 ? data[0] % 4 : 0;
	for (;;) {
		prev = off;
		r = rfc5322_next_field(buf, size, &off, &f);
		if (r != 1)
			break;
		check_field(buf, size, prev, off, &f);
		fuzz_addresses(f.value, f.value_len, stop_at);
	}
	if (r == -1)
		CHECK(off == prev && (buf[off] == ' ' || buf[off] == '\t'));
	else {
		CHECK(r == 0);
		CHECK(off == prev || (off == prev + 1 && buf[prev] == '\n'));
	}
	fuzz_addresses(buf, size, stop_at);
	return 0;
}
