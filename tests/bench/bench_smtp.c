/*
 * bench_smtp — see bench_smtp.h.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "bench_net.h"
#include "bench_smtp.h"

#define AUTH_MAX 512

/* "AUTH PLAIN" argument: base64 of NUL user NUL password (RFC 4616). */
static int
plain_response(const char *user, const char *password, char *out,
    size_t outsz)
{
	unsigned char raw[AUTH_MAX];
	size_t ul = strlen(user), pl = strlen(password);

	if (ul + pl + 2 > sizeof(raw) || 4 * ((ul + pl + 4) / 3) + 1 > outsz)
		return -1;
	raw[0] = '\0';
	memcpy(raw + 1, user, ul);
	raw[ul + 1] = '\0';
	memcpy(raw + ul + 2, password, pl);
	(void)EVP_EncodeBlock((unsigned char *)out, raw, (int)(ul + pl + 2));
	return 0;
}

int
bench_smtp_login(struct mpp_client *c, const char *host, const char *port,
    const char *helo, const char *user, const char *password, char *err,
    size_t errsz)
{
	char arg[AUTH_MAX * 2];

	if (user != NULL && plain_response(user, password, arg + 6,
	    sizeof(arg) - 6) == -1) {
		(void)snprintf(err, errsz, "user or password too long");
		return -1;
	}
	memcpy(arg, "PLAIN ", 6);
	if (mpp_client_connect(c, host, port) == -1) {
		(void)snprintf(err, errsz, "%s", mpp_client_error(c));
		return -1;
	}
	if (bench_net_expect(c, 220, "greeting", err, errsz) == -1 ||
	    bench_net_step(c, "EHLO", helo, 250, err, errsz) == -1)
		return -1;
	if (user == NULL)
		return 0;
	/* mpp_client traces AUTH's argument: none is set for the bench. */
	return bench_net_step(c, "AUTH", arg, 235, err, errsz);
}

size_t
bench_smtp_envelope(const char *from, const char *rcpt, char *buf,
    size_t bufsz)
{
	int n = snprintf(buf, bufsz, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n"
	    "DATA\r\n", from, rcpt);

	return n < 0 || (size_t)n >= bufsz ? 0 : (size_t)n;
}

int
bench_smtp_envelope_replies(struct mpp_client *c, char *err, size_t errsz)
{
	if (bench_net_expect(c, 250, "MAIL", err, errsz) == -1 ||
	    bench_net_expect(c, 250, "RCPT", err, errsz) == -1)
		return -1;
	return bench_net_expect(c, 354, "DATA", err, errsz);
}

int
bench_smtp_envelope_steps(struct mpp_client *c, const char *from,
    const char *rcpt, char *err, size_t errsz)
{
	char mail[BENCH_SMTP_CMDS_MAX / 2], to[BENCH_SMTP_CMDS_MAX / 2];

	if ((size_t)snprintf(mail, sizeof(mail), "FROM:<%s>", from) >=
	    sizeof(mail) || (size_t)snprintf(to, sizeof(to), "TO:<%s>",
	    rcpt) >= sizeof(to)) {
		(void)snprintf(err, errsz, "address too long");
		return -1;
	}
	if (bench_net_step(c, "MAIL", mail, 250, err, errsz) == -1 ||
	    bench_net_step(c, "RCPT", to, 250, err, errsz) == -1)
		return -1;
	return bench_net_step(c, "DATA", NULL, 354, err, errsz);
}
