/*
 * sha512crypt — SHA-512-crypt on OpenSSL's SHA-512 (see sha512crypt.h).
 *
 * The steps and their letters follow the specification's description
 * (A, B, DP, DS, P, S, C). OpenSSL 3 marks the one-shot SHA512_* calls
 * deprecated in favour of EVP; they stay for this loop because each of
 * the 5,000 rounds hashes under 128 bytes, where EVP's per-digest
 * dispatch costs a sixth of the work.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha512crypt.h"

#define PREFIX "$6$"
#define ROUNDS_TAG "rounds="
#define ROUNDS_DEFAULT 5000
#define ROUNDS_MIN 1000
#define ROUNDS_MAX 999999999UL
#define SALT_MAX 16

static const char b64[] =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

struct setting {
	unsigned long rounds;
	int rounds_given;
	const char *salt;
	size_t salt_len;
};

/* "rounds=N$" in canonical form: digits, no leading zero, in range. */
static int
parse_rounds(const char **sp, struct setting *st)
{
	const char *s = *sp + sizeof(ROUNDS_TAG) - 1;
	unsigned long n = 0;
	size_t digits = 0;

	if (*s == '0')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (++digits > 9)
			return -1;
		n = n * 10 + (unsigned long)(*s - '0');
	}
	if (digits == 0 || *s != '$' || n < ROUNDS_MIN || n > ROUNDS_MAX)
		return -1;
	st->rounds = n;
	st->rounds_given = 1;
	*sp = s + 1;
	return 0;
}

/*
 * A salt character libxcrypt takes: printable ASCII but for its
 * separators. Refusing more would send such hashes to crypt(3), which
 * costs more; the password file's cost classes keep the two apart
 * (sha512crypt_takes()), so that only costs speed, not secrecy.
 */
static int
salt_char(char c)
{
	return c > ' ' && c < 0x7f && strchr("$:;*!\\", c) == NULL;
}

/* After the salt: nothing, or "$" and a hash's characters. */
static int
tail_valid(const char *s)
{
	if (*s == '\0')
		return 1;
	for (s++; *s != '\0'; s++)
		if (strchr(b64, *s) == NULL)
			return 0;
	return 1;
}

static int
parse_setting(const char *setting, struct setting *st)
{
	const char *s;
	size_t n;

	if (strncmp(setting, PREFIX, sizeof(PREFIX) - 1) != 0)
		return -1;
	s = setting + sizeof(PREFIX) - 1;
	st->rounds = ROUNDS_DEFAULT;
	st->rounds_given = 0;
	if (strncmp(s, ROUNDS_TAG, sizeof(ROUNDS_TAG) - 1) == 0 &&
	    parse_rounds(&s, st) == -1)
		return -1;
	for (n = 0; s[n] != '\0' && s[n] != '$'; n++)
		if (n == SALT_MAX || !salt_char(s[n]))
			return -1;
	if (n == 0 || !tail_valid(s + n))
		return -1;
	st->salt = s;
	st->salt_len = n;
	return 0;
}

/* Add len bytes of the 64-byte digest d repeated. */
static void
add_repeated(SHA512_CTX *ctx, const unsigned char *d, size_t len)
{
	for (; len > SHA512_DIGEST_LENGTH; len -= SHA512_DIGEST_LENGTH)
		SHA512_Update(ctx, d, SHA512_DIGEST_LENGTH);
	SHA512_Update(ctx, d, len);
}

/* Fill seq (len bytes) with the digest d repeated. */
static void
fill_repeated(unsigned char *seq, const unsigned char *d, size_t len)
{
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = len - off < SHA512_DIGEST_LENGTH ?
		    len - off : SHA512_DIGEST_LENGTH;
		memcpy(seq + off, d, n);
	}
}

/* Digest A: P, S, then B's bytes and bits of the password's length. */
static void
digest_a(const unsigned char *pw, size_t pl, const struct setting *st,
    unsigned char *a)
{
	unsigned char b[SHA512_DIGEST_LENGTH];
	SHA512_CTX ctx;
	size_t n;

	SHA512_Init(&ctx);
	SHA512_Update(&ctx, pw, pl);
	SHA512_Update(&ctx, st->salt, st->salt_len);
	SHA512_Update(&ctx, pw, pl);
	SHA512_Final(b, &ctx);

	SHA512_Init(&ctx);
	SHA512_Update(&ctx, pw, pl);
	SHA512_Update(&ctx, st->salt, st->salt_len);
	add_repeated(&ctx, b, pl);
	for (n = pl; n > 0; n >>= 1) {
		if (n & 1)
			SHA512_Update(&ctx, b, sizeof(b));
		else
			SHA512_Update(&ctx, pw, pl);
	}
	SHA512_Final(a, &ctx);
	OPENSSL_cleanse(b, sizeof(b));
	OPENSSL_cleanse(&ctx, sizeof(ctx));
}

/* The P sequence (pl bytes) and the S sequence (salt length bytes). */
static void
sequences(const unsigned char *pw, size_t pl, const struct setting *st,
    const unsigned char *a, unsigned char *p_seq, unsigned char *s_seq)
{
	unsigned char d[SHA512_DIGEST_LENGTH];
	SHA512_CTX ctx;
	size_t i;

	SHA512_Init(&ctx);
	for (i = 0; i < pl; i++)
		SHA512_Update(&ctx, pw, pl);
	SHA512_Final(d, &ctx);
	fill_repeated(p_seq, d, pl);

	SHA512_Init(&ctx);
	for (i = 0; i < 16u + a[0]; i++)
		SHA512_Update(&ctx, st->salt, st->salt_len);
	SHA512_Final(d, &ctx);
	memcpy(s_seq, d, st->salt_len);
	OPENSSL_cleanse(d, sizeof(d));
	OPENSSL_cleanse(&ctx, sizeof(ctx));
}

/* The rounds, one context each: c holds A on entry and C on return. */
static void
rounds_any(unsigned char *c, const unsigned char *p_seq, size_t pl,
    const unsigned char *s_seq, size_t sl, unsigned long n)
{
	SHA512_CTX ctx;
	unsigned long i;

	for (i = 0; i < n; i++) {
		SHA512_Init(&ctx);
		if (i & 1)
			SHA512_Update(&ctx, p_seq, pl);
		else
			SHA512_Update(&ctx, c, SHA512_DIGEST_LENGTH);
		if (i % 3 != 0)
			SHA512_Update(&ctx, s_seq, sl);
		if (i % 7 != 0)
			SHA512_Update(&ctx, p_seq, pl);
		if (i & 1)
			SHA512_Update(&ctx, c, SHA512_DIGEST_LENGTH);
		else
			SHA512_Update(&ctx, p_seq, pl);
		SHA512_Final(c, &ctx);
	}
	OPENSSL_cleanse(&ctx, sizeof(ctx));
}

/*
 * A round's input is C and the sequences in one of eight layouts (round
 * odd or even, a multiple of 3 or not, of 7 or not). When the longest
 * fits one SHA-512 block with its padding (64 + 2 * password + salt <= 111
 * bytes: passwords of up to 15 bytes), each layout is laid out once,
 * padded, and a round is a copy of C into its place and one compression:
 * SHA512_Update and SHA512_Final cost a fifth of the check in copies and
 * padding.
 */
#define BLOCK 128
#define BLOCK_DATA_MAX (BLOCK - 1 - 16)

struct layout {
	unsigned char block[BLOCK];
	size_t c_at;		/* where C goes */
};

static void
store_be64(unsigned char *o, SHA_LONG64 v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
	memcpy(o, &v, sizeof(v));
#else
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		o[i] = (unsigned char)v;
#endif
}

static void
layout_make(struct layout *l, int odd, int s_on, int p_on,
    const unsigned char *p_seq, size_t pl, const unsigned char *s_seq,
    size_t sl)
{
	unsigned char *b = l->block;
	size_t len = 0;

	memset(b, 0, BLOCK);
	if (odd) {
		memcpy(b, p_seq, pl);
		len = pl;
	} else
		len = SHA512_DIGEST_LENGTH;	/* C, copied in each round */
	if (s_on) {
		memcpy(b + len, s_seq, sl);
		len += sl;
	}
	if (p_on) {
		memcpy(b + len, p_seq, pl);
		len += pl;
	}
	if (odd) {
		l->c_at = len;
		len += SHA512_DIGEST_LENGTH;
	} else {
		l->c_at = 0;
		memcpy(b + len, p_seq, pl);
		len += pl;
	}
	b[len] = 0x80;
	store_be64(b + BLOCK - 8, (SHA_LONG64)len * 8);
}

/*
 * Decided by the password's length alone, as if every salt were the
 * longest: the password file's cost classes do not tell salt lengths
 * apart, and a refused PASS must cost the same whichever hash of a class
 * it is checked against (auth_file.c), so the path may depend only on
 * what the client sent.
 */
static int
rounds_fit_one_block(size_t pl)
{
	return SHA512_DIGEST_LENGTH + 2 * pl + SALT_MAX <= BLOCK_DATA_MAX;
}

static void
rounds_one_block(unsigned char *c, const unsigned char *p_seq, size_t pl,
    const unsigned char *s_seq, size_t sl, unsigned long n)
{
	struct layout lay[8];
	SHA_LONG64 iv[8];
	SHA512_CTX ctx;
	struct layout *l;
	unsigned long i;
	unsigned m3 = 0, m7 = 0;	/* i % 3 and i % 7 */
	int k, j;

	for (k = 0; k < 8; k++)
		layout_make(&lay[k], k & 1, (k >> 1) & 1, (k >> 2) & 1,
		    p_seq, pl, s_seq, sl);
	SHA512_Init(&ctx);
	memcpy(iv, ctx.h, sizeof(iv));
	for (i = 0; i < n; i++) {
		l = &lay[(i & 1) | (m3 != 0) << 1 | (m7 != 0) << 2];
		memcpy(l->block + l->c_at, c, SHA512_DIGEST_LENGTH);
		memcpy(ctx.h, iv, sizeof(iv));
		SHA512_Transform(&ctx, l->block);
		for (j = 0; j < 8; j++)
			store_be64(c + 8 * j, ctx.h[j]);
		m3 = m3 == 2 ? 0 : m3 + 1;
		m7 = m7 == 6 ? 0 : m7 + 1;
	}
	OPENSSL_cleanse(lay, sizeof(lay));
	OPENSSL_cleanse(&ctx, sizeof(ctx));
}

static void
rounds(unsigned char *c, const unsigned char *p_seq, size_t pl,
    const unsigned char *s_seq, size_t sl, unsigned long n)
{
	if (rounds_fit_one_block(pl))
		rounds_one_block(c, p_seq, pl, s_seq, sl, n);
	else
		rounds_any(c, p_seq, pl, s_seq, sl, n);
}

static char *
b64_24(char *o, unsigned b2, unsigned b1, unsigned b0, int chars)
{
	uint32_t w = (uint32_t)(b2 << 16 | b1 << 8 | b0);

	while (chars-- > 0) {
		*o++ = b64[w & 0x3f];
		w >>= 6;
	}
	return o;
}

/* C's 64 bytes in the specification's order, 86 characters. */
static char *
encode(char *o, const unsigned char *c)
{
	int i, j, k, m;

	/* Groups of three bytes 21 apart, rotating (0,21,42), (22,43,1)... */
	for (i = 0; i < 21; i++) {
		j = i * 22 % 63;
		k = (j + 21) % 63;
		m = (j + 42) % 63;
		o = b64_24(o, c[j], c[k], c[m], 4);
	}
	return b64_24(o, 0, 0, c[63], 2);
}

int
sha512crypt_takes(const char *setting)
{
	struct setting st;

	return parse_setting(setting, &st) == 0;
}

int
sha512crypt(const char *password, const char *setting, char *out,
    size_t outsz)
{
	unsigned char c[SHA512_DIGEST_LENGTH];
	unsigned char s_seq[SALT_MAX];
	unsigned char *p_seq;
	struct setting st;
	size_t pl = strlen(password);
	char *o;
	int n;

	if (outsz < SHA512CRYPT_OUT_MAX || pl >= CRYPT_MAX_PASSPHRASE_SIZE ||
	    parse_setting(setting, &st) == -1)
		return -1;
	/* One byte more, so an empty password still gets a buffer. */
	if ((p_seq = malloc(pl + 1)) == NULL)
		return -1;
	digest_a((const unsigned char *)password, pl, &st, c);
	sequences((const unsigned char *)password, pl, &st, c, p_seq, s_seq);
	rounds(c, p_seq, pl, s_seq, st.salt_len, st.rounds);

	if (st.rounds_given)
		n = snprintf(out, outsz, PREFIX ROUNDS_TAG "%lu$%.*s$",
		    st.rounds, (int)st.salt_len, st.salt);
	else
		n = snprintf(out, outsz, PREFIX "%.*s$", (int)st.salt_len,
		    st.salt);
	o = encode(out + n, c);
	*o = '\0';
	OPENSSL_cleanse(p_seq, pl + 1);
	free(p_seq);
	OPENSSL_cleanse(s_seq, sizeof(s_seq));
	OPENSSL_cleanse(c, sizeof(c));
	return 0;
}
