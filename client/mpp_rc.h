/*
 * mpp_rc — the client's settings file (~/.mpprc) and password file.
 *
 * The rc file holds `key = value` lines; `#` starts a comment wherever it
 * appears, as in mpp.conf (config_comment_at), and blank lines are ignored;
 * a password holding `#` belongs in the password file. Keys: server, user, password_file,
 * password, timeout, tls (yes or no), ca (a file of trusted certificates for
 * TLS). Surrounding blanks of key and value are dropped. A later line wins
 * over an earlier one; of password and password_file, whichever comes last
 * is the one used. An unknown key, a line without `=`, an empty value, a bad
 * timeout or a tls that is neither yes nor no is an error naming the file and
 * line.
 *
 * A file that holds a password is refused unless only its owner can read or
 * write it (mode 0600 or 0400) and the owner is the user running the program.
 *
 * Functions return 0 / -1; on -1 the reason is in err (cut to fit).
 * Buffers that held a password are wiped before they are released.
 */
#ifndef MPP_RC_H
#define MPP_RC_H

#include <stddef.h>

#define MPP_RC_LINE_MAX		2048	/* bytes in one rc line with its LF */
#define MPP_RC_VALUE_MAX	1024	/* bytes in one value with its NUL */
#define MPP_RC_TIMEOUT_MAX	86400	/* seconds */

enum mpp_rc_pw {
	MPP_RC_PW_NONE,		/* neither key given */
	MPP_RC_PW_LITERAL,	/* password = ... came last */
	MPP_RC_PW_FILE		/* password_file = ... came last */
};

struct mpp_rc {
	char server[MPP_RC_VALUE_MAX];		/* "" when not set */
	char user[MPP_RC_VALUE_MAX];
	char password[MPP_RC_VALUE_MAX];
	char password_file[MPP_RC_VALUE_MAX];	/* ~/ already expanded */
	int timeout;				/* 0 when not set */
	int tls;				/* 1 yes, 0 no, -1 not set */
	char ca[MPP_RC_VALUE_MAX];		/* ~/ expanded; "" not set */
	int holds_password;			/* a password key was seen */
	enum mpp_rc_pw pw_source;
};

/* Empty settings. */
void mpp_rc_init(struct mpp_rc *rc);

/* Wipe the password held in rc. */
void mpp_rc_clear(struct mpp_rc *rc);

/*
 * Apply one line (its line end removed) to rc; blank and comment lines do
 * nothing. home expands a leading "~/" in password_file (NULL: no expansion).
 */
int mpp_rc_parse_line(struct mpp_rc *rc, const char *line, const char *home,
    char *err, size_t errsz);

/*
 * Read the rc file at path into rc. A missing file is not an error unless
 * must_exist; *loaded says whether one was read. err names path and line.
 */
int mpp_rc_load(struct mpp_rc *rc, const char *path, int must_exist,
    const char *home, int *loaded, char *err, size_t errsz);

/* Parse a timeout: whole seconds, 1 to MPP_RC_TIMEOUT_MAX. */
int mpp_rc_parse_timeout(const char *s, int *out);

/* Parse a switch: "yes" or "1" gives 1, "no" or "0" gives 0 (any case). */
int mpp_rc_parse_yesno(const char *s, int *out);

/*
 * Read the password from the first line of the file at path (its line end
 * removed). An empty first line is an error. *loose is set when anyone but
 * the owner may read the file, so the caller can warn.
 */
int mpp_rc_read_password_file(const char *path, char *buf, size_t size,
    int *loose, char *err, size_t errsz);

#endif /* MPP_RC_H */
