/*
 * mpppasswd — manage mppd's local password file: add, passwd, del, list,
 * check. Passwords come from a no-echo prompt, or with -s from one line of
 * stdin; they are never echoed or logged. Changes are written atomically
 * under a lock file, so two runs at once cannot lose each other's change.
 *
 * Exit codes: 0 done (check: right password); 1 check: wrong password or
 * no such user; 64 usage; 65 add: user exists, or a bad name or empty
 * password; 67 passwd/del: no such user; 70 hashing failed; 74 the file
 * cannot be read or written.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sysexits.h>
#include <unistd.h>

#include <bsd/readpassphrase.h>

#include "pwfile.h"

#define DEFAULT_FILE "/etc/mpp/passwd"
#define PASS_MAX 256

struct opts {
	const char *file;
	const char *method;	/* crypt prefix */
	int from_stdin;
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: mpppasswd [-f file] [-m yescrypt|sha512|bcrypt] "
	    "[-s] add|passwd|del|check user\n"
	    "       mpppasswd [-f file] list\n");
	exit(EX_USAGE);
}

static const char *
method_prefix(const char *name)
{
	if (strcmp(name, "yescrypt") == 0)
		return "$y$";
	if (strcmp(name, "sha512") == 0)
		return "$6$";
	if (strcmp(name, "bcrypt") == 0)
		return "$2b$";
	fprintf(stderr, "mpppasswd: unknown method %s\n", name);
	exit(EX_USAGE);
}

/* One line from stdin, without its line end. */
static int
read_stdin_line(char *buf, size_t sz)
{
	size_t n;

	if (fgets(buf, (int)sz, stdin) == NULL)
		return -1;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(stdin))
		return -1;		/* longer than we take */
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

static int
read_password(const struct opts *o, const char *prompt, int confirm,
    char *buf, size_t sz)
{
	char again[PASS_MAX];
	int rc = 0;

	if (o->from_stdin)
		return read_stdin_line(buf, sz);
	if (readpassphrase(prompt, buf, sz, RPP_REQUIRE_TTY) == NULL)
		return -1;
	if (!confirm)
		return 0;
	if (readpassphrase("Again: ", again, sizeof(again),
	    RPP_REQUIRE_TTY) == NULL || strcmp(again, buf) != 0) {
		fprintf(stderr, "mpppasswd: passwords do not match\n");
		rc = -1;
	}
	explicit_bzero(again, sizeof(again));
	return rc;
}

/* Hold FILE.lock for the rest of the run. */
static void
lock_file(const char *file)
{
	char path[4096];
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s.lock", file) >=
	    sizeof(path) ||
	    (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1 ||
	    flock(fd, LOCK_EX) == -1) {
		fprintf(stderr, "mpppasswd: cannot lock %s\n", file);
		exit(EX_IOERR);
	}
}

static void
load(struct pwfile *pf, const char *file, int missing_ok)
{
	char err[1024];

	if (pwfile_load(pf, file, missing_ok, err, sizeof(err)) == -1) {
		fprintf(stderr, "mpppasswd: %s\n", err);
		exit(EX_IOERR);
	}
	if (pf->world_readable)
		fprintf(stderr, "mpppasswd: warning: %s is readable by "
		    "others\n", file);
}

static int
set_password(const struct opts *o, const char *user, int adding)
{
	char pw[PASS_MAX], hash[512], err[1024];
	struct pwfile pf;
	int known, rc = EX_OK;

	lock_file(o->file);
	load(&pf, o->file, adding);
	known = pwfile_find(&pf, user) != NULL;
	if (adding && known) {
		fprintf(stderr, "mpppasswd: %s exists (use passwd)\n", user);
		rc = EX_DATAERR;
	} else if (!adding && !known) {
		fprintf(stderr, "mpppasswd: no such user: %s\n", user);
		rc = EX_NOUSER;
	} else if (read_password(o, "Password: ", 1, pw, sizeof(pw)) == -1 ||
	    pw[0] == '\0') {
		fprintf(stderr, "mpppasswd: no password given\n");
		rc = EX_DATAERR;
	} else if (pwfile_hash(pw, o->method, hash, sizeof(hash)) == -1 ||
	    pwfile_set(&pf, user, hash) == -1) {
		fprintf(stderr, "mpppasswd: cannot hash the password\n");
		rc = EX_SOFTWARE;
	} else if (pwfile_save(&pf, o->file, err, sizeof(err)) == -1) {
		fprintf(stderr, "mpppasswd: %s\n", err);
		rc = EX_IOERR;
	}
	explicit_bzero(pw, sizeof(pw));
	pwfile_free(&pf);
	return rc;
}

static int
del_user(const struct opts *o, const char *user)
{
	struct pwfile pf;
	char err[1024];
	int rc = EX_OK;

	lock_file(o->file);
	load(&pf, o->file, 0);
	if (pwfile_del(&pf, user) == -1) {
		fprintf(stderr, "mpppasswd: no such user: %s\n", user);
		rc = EX_NOUSER;
	} else if (pwfile_save(&pf, o->file, err, sizeof(err)) == -1) {
		fprintf(stderr, "mpppasswd: %s\n", err);
		rc = EX_IOERR;
	}
	pwfile_free(&pf);
	return rc;
}

static int
list_users(const struct opts *o)
{
	struct pwfile pf;
	size_t i;

	load(&pf, o->file, 1);
	for (i = 0; i < pf.n; i++)
		if (pf.e[i].user != NULL)
			printf("%s\n", pf.e[i].user);
	pwfile_free(&pf);
	return EX_OK;
}

static int
check_user(const struct opts *o, const char *user)
{
	const struct pwfile_entry *e;
	char pw[PASS_MAX];
	struct pwfile pf;
	int ok;

	load(&pf, o->file, 0);
	if (read_password(o, "Password: ", 0, pw, sizeof(pw)) == -1) {
		pwfile_free(&pf);
		return 1;
	}
	e = pwfile_find(&pf, user);
	ok = e != NULL && pwfile_verify(pw, e->hash);
	explicit_bzero(pw, sizeof(pw));
	pwfile_free(&pf);
	return ok ? EX_OK : 1;
}

int
main(int argc, char **argv)
{
	struct opts o = { DEFAULT_FILE, "$y$", 0 };
	const char *cmd, *user;
	int ch;

	while ((ch = getopt(argc, argv, "f:m:s")) != -1) {
		switch (ch) {
		case 'f':
			o.file = optarg;
			break;
		case 'm':
			o.method = method_prefix(optarg);
			break;
		case 's':
			o.from_stdin = 1;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	cmd = argv[optind++];
	if (strcmp(cmd, "list") == 0)
		return optind == argc ? list_users(&o) : (usage(), 0);
	if (optind + 1 != argc)
		usage();
	user = argv[optind];
	if (!pwfile_user_valid(user)) {
		fprintf(stderr, "mpppasswd: bad user name\n");
		return EX_DATAERR;
	}
	if (strcmp(cmd, "add") == 0)
		return set_password(&o, user, 1);
	if (strcmp(cmd, "passwd") == 0)
		return set_password(&o, user, 0);
	if (strcmp(cmd, "del") == 0)
		return del_user(&o, user);
	if (strcmp(cmd, "check") == 0)
		return check_user(&o, user);
	usage();
}
