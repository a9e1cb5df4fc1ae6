/*
 * pwfile — the local password file: one "user:hash" line per user (further
 * ":" fields ignored; "#" lines and blank lines kept as they are by
 * rewrites), hash in crypt(3) format. Loaded whole; rewritten atomically
 * (temporary file, fsync, rename, directory fsync) with mode 0640.
 */
#ifndef MPP_PWFILE_H
#define MPP_PWFILE_H

#include <stddef.h>

#define PWFILE_LINE_MAX 4096
#define PWFILE_USER_MAX 64
/* Longest hash any password can match, with its NUL (crypt(3)'s output). */
#define PWFILE_HASH_MAX 384
/* Longest cost class name kept: longer ones are cut (and may then merge). */
#define PWFILE_CLASS_MAX 64
/* Most cost classes pwfile_classes() picks from one file. */
#define PWFILE_CLASSES_MAX 8

struct pwfile_entry {
	char *user;		/* NULL for a comment or blank line */
	char *hash;
	char *line;		/* the whole line, without LF */
};

struct pwfile {
	struct pwfile_entry *e;
	size_t n;
	int world_readable;	/* the file was readable by others */
};

/* Load path; a missing file is an empty one when missing_ok. */
int pwfile_load(struct pwfile *pf, const char *path, int missing_ok,
    char *err, size_t errsz);
/* The entry for user, or NULL. */
const struct pwfile_entry *pwfile_find(const struct pwfile *pf,
    const char *user);
/* Set (add or replace) user's hash. */
int pwfile_set(struct pwfile *pf, const char *user, const char *hash);
/* Remove user; -1 when there was none. */
int pwfile_del(struct pwfile *pf, const char *user);
/* Write atomically, mode 0640. */
int pwfile_save(const struct pwfile *pf, const char *path, char *err,
    size_t errsz);
void pwfile_free(struct pwfile *pf);

/* A user name fit for the file: 1..64 bytes, no ':', space or control. */
int pwfile_user_valid(const char *user);

/* crypt(3) password with setting (a prefix and salt, or a whole hash). */
int pwfile_crypt(const char *password, const char *setting, char *out,
    size_t outsz);
/* Hash password with a new salt of prefix ("$y$", "$6$", "$2b$"). */
int pwfile_hash(const char *password, const char *prefix, char *out,
    size_t outsz);
/*
 * Compare password with hash in constant time: 1 match, 0 no match.
 * Costs one crypt(3) of hash's method and cost whatever the outcome.
 */
int pwfile_verify(const char *password, const char *hash);

/*
 * The cost class of hash into cls (clssz at least PWFILE_CLASS_MAX; a
 * longer name is cut): what decides how long checking a password against
 * hash takes, namely the method and its cost parameters ("$y$j9T$", "$6$",
 * "$6$rounds=N$", "$2b$12$"; "DES" for traditional DES) and, for "$6$",
 * whether sha512crypt or crypt(3) computes it. Two hashes of one class
 * cost the same to check with one password. 0; -1 when no password can
 * ever match hash (a locked or disabled entry: "!", "*", "!$6$...",
 * empty; an unknown method; longer than PWFILE_HASH_MAX - 1).
 */
int pwfile_hash_class(const char *hash, char *cls, size_t clssz);
/*
 * One entry for each cost class in pf: idx (room for max, at most
 * PWFILE_CLASSES_MAX) receives the index of the first entry of each class,
 * in file order. Returns how many; *more is set to 1 when pf holds further
 * classes that did not fit, else 0.
 */
size_t pwfile_classes(const struct pwfile *pf, size_t *idx, size_t max,
    int *more);

#endif
