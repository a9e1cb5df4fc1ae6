/*
 * sha512crypt against the specification's own examples and against
 * libxcrypt's crypt(3) for every shape of password and setting: lengths
 * around the 64-byte digest and 128-byte block edges, every byte value,
 * salts of 1..16 characters, default and explicit rounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mppd/pwfile.h"
#include "../../mppd/sha512crypt.h"

static const char b64[] =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void
expect_like_libxcrypt(const char *pw, const char *setting)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	char out[SHA512CRYPT_OUT_MAX];

	assert_non_null(cd);
	assert_non_null(crypt_rn(pw, setting, cd, sizeof(*cd)));
	assert_int_equal(sha512crypt(pw, setting, out, sizeof(out)), 0);
	if (strcmp(out, cd->output) != 0)
		fail_msg("setting %s, password length %zu:\n  ours %s\n  "
		    "libxcrypt %s", setting, strlen(pw), out, cd->output);
	/* The whole hash as setting gives the hash back. */
	assert_int_equal(sha512crypt(pw, out, out, sizeof(out)), 0);
	assert_string_equal(out, cd->output);
	free(cd);
}

/* Examples published with the SHA-crypt specification. */
static void
test_spec_vectors(void **state)
{
	static const struct {
		const char *setting, *pw, *hash;
	} v[] = {
		{ "$6$saltstring", "Hello world!",
		  "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3u"
		  "BnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1" },
		{ "$6$rounds=10000$saltstringsaltstring", "Hello world!",
		  "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDW"
		  "ra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v." },
		{ "$6$rounds=1400$anotherlongsaltstring",
		  "a very much longer text to encrypt.  This one even stretches "
		  "over morethan one line.",
		  "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o"
		  "/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1" },
	};
	char out[SHA512CRYPT_OUT_MAX];
	size_t i;

	(void)state;
	/* Over-long salts are truncated by the specification; this module
	   leaves them to crypt(3), which must agree. */
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (sha512crypt(v[i].pw, v[i].setting, out, sizeof(out)) == 0)
			assert_string_equal(out, v[i].hash);
		assert_int_equal(sha512crypt(v[i].pw, v[i].hash, out,
		    sizeof(out)), 0);
		assert_string_equal(out, v[i].hash);
		assert_int_equal(pwfile_verify(v[i].pw, v[i].hash), 1);
		assert_int_equal(pwfile_verify("Hello world", v[i].hash), 0);
	}
}

static void
test_password_lengths(void **state)
{
	char pw[300];
	size_t len, i;

	(void)state;
	for (len = 0; len < sizeof(pw); len++) {
		if (len > 20 && len < 60 && len % 7 != 0)
			continue;	/* the edges matter, not every length */
		for (i = 0; i < len; i++)
			pw[i] = (char)('a' + (i * 7 + len) % 26);
		pw[len] = '\0';
		expect_like_libxcrypt(pw, "$6$rounds=1000$abcdefgh");
	}
}

static void
test_every_byte(void **state)
{
	char pw[4];
	int c;

	(void)state;
	for (c = 1; c < 256; c += 3) {
		pw[0] = (char)c;
		pw[1] = 'x';
		pw[2] = (char)(256 - c);
		pw[3] = '\0';
		expect_like_libxcrypt(pw, "$6$rounds=1000$Zz./09");
	}
}

static void
test_salts_and_rounds(void **state)
{
	char setting[64], salt[17];
	size_t len, i;

	(void)state;
	srand(1204);
	for (len = 1; len <= 16; len++) {
		for (i = 0; i < len; i++)
			salt[i] = b64[rand() % 64];
		salt[len] = '\0';
		snprintf(setting, sizeof(setting), "$6$rounds=%d$%s",
		    1000 + rand() % 50, salt);
		expect_like_libxcrypt("correct horse", setting);
	}
	/* Any printable salt character libxcrypt takes, not only base 64. */
	expect_like_libxcrypt("pw", "$6$rounds=1000$a-b_c");
	expect_like_libxcrypt("pw", "$6$rounds=1000$\"#%&'()+,-/<=>?@");
	expect_like_libxcrypt("pw", "$6$rounds=1000$[]^_`{|}~");
	expect_like_libxcrypt("demo", "$6$defaultrounds1");
	expect_like_libxcrypt("demo", "$6$rounds=5000$explicit5000");
	expect_like_libxcrypt("", "$6$rounds=1000$emptypassword");
}

/*
 * Each round is one SHA-512 block when 64 + 2 * password + 16 (the
 * longest salt) bytes fit one with its padding (111 bytes), and the
 * general path otherwise: the lengths on both sides of that edge, and of
 * the edge each shorter salt would have, for every salt length.
 */
static void
test_one_block_edge(void **state)
{
	char setting[64], salt[17], pw[40];
	size_t sl, pl, edge;

	(void)state;
	for (sl = 1; sl <= 16; sl++) {
		memset(salt, 'S', sl);
		salt[sl] = '\0';
		snprintf(setting, sizeof(setting), "$6$rounds=1000$%s", salt);
		edge = (111 - 64 - sl) / 2;
		for (pl = 14; pl <= edge + 2; pl++) {
			memset(pw, 'p', pl);
			pw[pl] = '\0';
			expect_like_libxcrypt(pw, setting);
		}
	}
}

/* Settings this module leaves to crypt(3). */
static void
test_declined(void **state)
{
	static const char *bad[] = {
		"$5$rounds=1000$salt", "$6$", "$6$$", "$6$salt with space", "$6$s;lt", "$6$s*lt",
		"$6$s!lt", "$6$s\\lt", "$6$s\177lt",
		"$6$seventeencharsxxx$", "$6$rounds=999$salt",
		"$6$rounds=01000$salt", "$6$rounds=1000000000$salt",
		"$6$rounds=$salt", "$6$rounds=12x$salt", "$6$s:lt",
		"", "*", "$6$rounds=1000", "$6$salt$hash:x", "$6$salt$h\377",
	};
	char out[SHA512CRYPT_OUT_MAX], big[CRYPT_MAX_PASSPHRASE_SIZE + 1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sha512crypt("pw", bad[i], out, sizeof(out)) != -1)
			fail_msg("took %s", bad[i]);
	assert_int_equal(sha512crypt("pw", "$6$salt", out, 64), -1);
	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(sha512crypt(big, "$6$salt", out, sizeof(out)), -1);
	big[sizeof(big) - 2] = '\0';
	expect_like_libxcrypt(big, "$6$rounds=1000$longest");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_vectors),
		cmocka_unit_test(test_password_lengths),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_salts_and_rounds),
		cmocka_unit_test(test_one_block_edge),
		cmocka_unit_test(test_declined),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
