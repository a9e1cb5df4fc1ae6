/*
 * relay_auth — the SMTP transport's logins (smtp_auth_file, mpp.conf(5)):
 * one "HOST[:PORT] USER PASSWORD" line per relay, "*" for every relay
 * without a line of its own, '#' comments and blank lines. The password is
 * the rest of the line (inner blanks kept). A line is at most
 * RELAY_AUTH_LINE_MAX bytes, a user or password RELAY_AUTH_CRED_MAX; a
 * bad line is refused, naming file and line.
 *
 * The file holds passwords: one that its group or others may read or write
 * is refused (the runner exits 78 at start). What is loaded is wiped from
 * memory when freed; nothing here logs a password.
 *
 * Also the encodings of RFC 4616 PLAIN and of LOGIN, pure functions
 * (which peer may get a password without TLS is net_is_loopback's).
 */
#ifndef MPP_RELAY_AUTH_H
#define MPP_RELAY_AUTH_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

#define RELAY_AUTH_LINE_MAX 1024	/* bytes of a line, with its LF */
#define RELAY_AUTH_CRED_MAX 128		/* bytes of a user or a password */
#define RELAY_AUTH_ENTRIES_MAX 1024	/* lines that name a relay */

struct relay_auth_entry {
	char host[CONFIG_HOST_MAX];	/* "*": any relay */
	int port;			/* 0: any port */
	char user[RELAY_AUTH_CRED_MAX + 1];
	char pass[RELAY_AUTH_CRED_MAX + 1];
};

struct relay_auth {
	size_t n;
	struct relay_auth_entry *e;
};

/*
 * Read path into *out (free with relay_auth_free()). -1 with err naming
 * the file, and the line when one is bad.
 */
int relay_auth_load(const char *path, struct relay_auth **out, char *err,
    size_t errsz);

/*
 * The login for relay host:port: its HOST:PORT line, else its HOST line,
 * else the "*" line; NULL for none. a may be NULL (no file).
 */
const struct relay_auth_entry *relay_auth_find(const struct relay_auth *a,
    const char *host, int port);

/* Wipe and free (NULL is fine). */
void relay_auth_free(struct relay_auth *a);

/*
 * The start-up check of mppqueue: for an SMTP transport with
 * smtp_auth_file set, the file loads. 0, or -1 with err.
 */
int relay_auth_check(const struct mpp_config *cfg, char *err, size_t errsz);


/*
 * Base64 of s[0..n) into out (NUL-terminated). 0, or -1 when out is too
 * small.
 */
int relay_auth_base64(const char *s, size_t n, char *out, size_t outsz);

/* The PLAIN response (RFC 4616): base64 of NUL user NUL password. */
int relay_auth_plain(const struct relay_auth_entry *e, char *out,
    size_t outsz);

#endif
