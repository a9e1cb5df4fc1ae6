/*
 * Differential fuzz target for mppd/sha512crypt.c: the input is a setting,
 * a NUL, then a password. Whenever sha512crypt takes the setting, its
 * output must be libxcrypt's crypt(3) output, byte for byte, and hashing
 * again with that output as setting must give it back. Settings it
 * declines are crypt(3)'s business. Either way pwfile_verify must give
 * the answer a check through crypt(3) alone gives. Rounds above ROUNDS_CAP are cut to
 * keep each run short: the count is a loop bound, not a parser input.
 */
#include <crypt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mppd/pwfile.h"
#include "../../mppd/sha512crypt.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ROUNDS_CAP 1100

static int
rounds_too_many(const char *setting)
{
	const char *r = strstr(setting, "rounds=");

	return r != NULL && strtoul(r + 7, NULL, 10) > ROUNDS_CAP;
}

/* The check as it was before the fast path: crypt(3) only. */
static int
crypt_only_verify(struct crypt_data *cd, const char *pw, const char *hash)
{
	return crypt_rn(pw, hash, cd, sizeof(*cd)) != NULL &&
	    cd->output[0] != '*' && strcmp(cd->output, hash) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct crypt_data cd;
	char out[SHA512CRYPT_OUT_MAX], again[SHA512CRYPT_OUT_MAX];
	char *buf, *setting, *pw;
	size_t slen;

	if (size > 1024 || (buf = malloc(size + 2)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = '\0';
	setting = buf;
	slen = strlen(setting);
	pw = slen < size ? buf + slen + 1 : buf + size + 1;
	if (!rounds_too_many(setting) &&
	    sha512crypt(pw, setting, out, sizeof(out)) == 0) {
		CHECK(crypt_rn(pw, setting, &cd, sizeof(cd)) != NULL);
		CHECK(strcmp(out, cd.output) == 0);
		CHECK(sha512crypt(pw, out, again, sizeof(again)) == 0);
		CHECK(strcmp(out, again) == 0);
		CHECK(pwfile_verify(pw, out) == 1);
		CHECK(crypt_only_verify(&cd, pw, out));
	}
	/* Only "$6$": other methods' costs (bcrypt's "$2b$31$") would hang. */
	if (strncmp(setting, "$6$", 3) == 0 && !rounds_too_many(setting))
		CHECK(pwfile_verify(pw, setting) ==
		    crypt_only_verify(&cd, pw, setting));
	free(buf);
	return 0;
}
