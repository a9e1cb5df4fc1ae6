/*
 * Unit tests for the cost classes of password hashes (mppd/pwfile.c:
 * pwfile_hash_class, pwfile_classes) and for what the file backend of
 * mppd/auth.c does with them: every refused PASS, whoever the user, does
 * the same work. That work is measured here as the checking thread's CPU
 * time, which the load of the machine does not change (wall-clock time
 * through the real daemon is test_security.py's part).
 */
#include <sys/stat.h>

#include <crypt.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "../../mppd/auth.h"
#include "../../mppd/pwfile.h"

#define HASH_6 "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U" \
	"0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"
#define TAIL_53 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"

struct class_case {
	const char *hash;
	const char *cls;	/* NULL: no password can match it */
};

static const struct class_case class_cases[] = {
	{ "$y$j9T$abcdefghijklmnop$xyzxyzxyz", "$y$j9T$" },
	{ "$y$jC5$abcdefgh$xyz", "$y$jC5$" },
	{ "$gy$j9T$abc$def", "$gy$j9T$" },
	{ HASH_6, "$6$" },
	{ "$6$saltsalt", "$6$" },
	{ "$6$rounds=10000$saltsalt$abc", "$6$rounds=10000$" },
	/* Settings sha512crypt leaves to crypt(3): a class of their own. */
	{ "$6$rounds=05000$saltsalt$abc", "$6$rounds=05000$ crypt(3)" },
	{ "$6$saltsaltsaltsaltsalt$abc", "$6$ crypt(3)" },
	{ "$2b$12$" TAIL_53, "$2b$12$" },
	{ "$2b$08$" TAIL_53, "$2b$08$" },
	{ "$2y$10$" TAIL_53, "$2y$10$" },
	{ "$5$rounds=6000$salt$hash", "$5$rounds=6000$" },
	{ "$1$salt$hash", "$1$" },
	{ "$7$CU..../....saltsalt$hash", "$7$CU..../...." },
	{ "_J9..abcd0123456789a", "_J9.." },
	{ "ab0123456789a", "DES" },
	/* Locked, disabled, unknown. */
	{ "!", NULL },
	{ "*", NULL },
	{ "", NULL },
	{ "!$6$saltsalt$abc", NULL },
	{ "!!", NULL },
	{ "*LK*", NULL },
	{ "x", NULL },
	{ "$nosuch$salt$hash", NULL },
};

static void
test_hash_class(void **state)
{
	char cls[PWFILE_CLASS_MAX];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(class_cases) / sizeof(class_cases[0]); i++) {
		const struct class_case *c = &class_cases[i];

		strcpy(cls, "untouched");
		rc = pwfile_hash_class(c->hash, cls, sizeof(cls));
		if (c->cls == NULL ? rc != -1 :
		    rc != 0 || strcmp(cls, c->cls) != 0) {
			print_error("\"%s\": %d \"%s\", want %s\n", c->hash, rc,
			    cls, c->cls != NULL ? c->cls : "-1");
			fail();
		}
	}
}

/* Too long to be any crypt(3) output, or a class name too long to keep. */
static void
test_hash_class_bounds(void **state)
{
	char hash[PWFILE_HASH_MAX + 8], cls[PWFILE_CLASS_MAX];
	size_t n;

	(void)state;
	strcpy(hash, "$6$saltsalt$");
	n = strlen(hash);
	memset(hash + n, 'a', PWFILE_HASH_MAX - 1 - n);
	hash[PWFILE_HASH_MAX - 1] = '\0';
	assert_int_equal(pwfile_hash_class(hash, cls, sizeof(cls)), 0);
	hash[PWFILE_HASH_MAX - 1] = 'a';
	hash[PWFILE_HASH_MAX] = '\0';
	assert_int_equal(pwfile_hash_class(hash, cls, sizeof(cls)), -1);
	/* Yescrypt parameters longer than a class name: cut, with a NUL. */
	strcpy(hash, "$y$j");
	memset(hash + 4, '.', 100);
	strcpy(hash + 104, "$salt$hash");
	assert_int_equal(pwfile_hash_class(hash, cls, sizeof(cls)), 0);
	assert_int_equal(strlen(cls), PWFILE_CLASS_MAX - 1);
	assert_memory_equal(cls, hash, PWFILE_CLASS_MAX - 1);
	/* A cut never loses the code path's mark. */
	strcpy(hash, "$6$rounds=");
	memset(hash + 10, '1', 80);
	strcpy(hash + 90, "$salt$hash");
	assert_int_equal(pwfile_hash_class(hash, cls, sizeof(cls)), 0);
	assert_non_null(strstr(cls, " crypt(3)"));
}

static void
add(struct pwfile *pf, const char *user, const char *hash)
{
	assert_int_equal(pwfile_set(pf, user, hash), 0);
}

static void
test_classes(void **state)
{
	struct pwfile pf = { 0 };
	size_t idx[PWFILE_CLASSES_MAX], n;
	int more;

	(void)state;
	assert_int_equal(pwfile_classes(&pf, idx, PWFILE_CLASSES_MAX, &more),
	    0);
	assert_int_equal(more, 0);
	add(&pf, "locked", "!");				/* 0 */
	add(&pf, "yes1", "$y$j9T$abcdefgh$xyz");		/* 1 */
	add(&pf, "sha", HASH_6);				/* 2 */
	add(&pf, "star", "*");					/* 3 */
	add(&pf, "yes2", "$y$j9T$zyxwvuts$abc");		/* 4: as 1 */
	add(&pf, "bf8", "$2b$08$" TAIL_53);			/* 5 */
	add(&pf, "bf12", "$2b$12$" TAIL_53);			/* 6 */
	add(&pf, "empty", "");					/* 7 */
	add(&pf, "sha2", "$6$othersalt$abc");			/* 8: as 2 */
	add(&pf, "dis", "!$2b$08$" TAIL_53);			/* 9 */
	n = pwfile_classes(&pf, idx, PWFILE_CLASSES_MAX, &more);
	assert_int_equal(n, 4);
	assert_int_equal(more, 0);
	assert_int_equal(idx[0], 1);
	assert_int_equal(idx[1], 2);
	assert_int_equal(idx[2], 5);
	assert_int_equal(idx[3], 6);
	/* Room for two: the first two, and word that there were more. */
	n = pwfile_classes(&pf, idx, 2, &more);
	assert_int_equal(n, 2);
	assert_int_equal(more, 1);
	assert_int_equal(idx[0], 1);
	assert_int_equal(idx[1], 2);
	/* Only locked entries: no class at all. */
	pwfile_free(&pf);
	add(&pf, "a", "!");
	add(&pf, "b", "*");
	assert_int_equal(pwfile_classes(&pf, idx, PWFILE_CLASSES_MAX, &more),
	    0);
	pwfile_free(&pf);
}

/* ---- the file backend ---- */

struct fixture {
	char dir[64];
	char path[96];
	struct mpp_config cfg;
	struct auth *auth;
};

/* A hash of password made with crypt_gensalt(prefix, count). */
static void
make_hash(const char *prefix, unsigned long count, const char *password,
    char *out, size_t outsz)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	assert_non_null(crypt_gensalt_rn(prefix, count, NULL, 0, setting,
	    sizeof(setting)));
	assert_int_equal(pwfile_crypt(password, setting, out, outsz), 0);
}

/*
 * The mixed file of the timing test: yescrypt, sha512-crypt (the fast
 * path), bcrypt at cost 7, and a locked entry.
 */
static int
file_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char y[PWFILE_HASH_MAX], s6[PWFILE_HASH_MAX], bf[PWFILE_HASH_MAX];
	char err[256], value[PATH_MAX + 8];
	FILE *fp;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_pwfile.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/passwd", f->dir);
	make_hash("$y$", 0, "y-secret", y, sizeof(y));
	make_hash("$6$", 0, "s6-secret", s6, sizeof(s6));
	make_hash("$2b$", 7, "bf-secret", bf, sizeof(bf));
	assert_non_null(fp = fopen(f->path, "w"));
	fprintf(fp, "# mixed\nyuser:%s\nsuser:%s\nlocked:!\nbuser:%s\n"
	    "star:*\n", y, s6, bf);
	assert_int_equal(fchmod(fileno(fp), 0600), 0);
	assert_int_equal(fclose(fp), 0);
	config_defaults(&f->cfg);
	snprintf(value, sizeof(value), "file:%s", f->path);
	assert_int_equal(config_set(&f->cfg, "auth", value, err, sizeof(err)),
	    0);
	f->auth = auth_new(&f->cfg, err, sizeof(err));
	assert_non_null(f->auth);
	*state = f;
	return 0;
}

static int
file_teardown(void **state)
{
	struct fixture *f = *state;

	auth_free(f->auth);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
test_file_outcomes(void **state)
{
	struct fixture *f = *state;
	char detail[512];

	assert_int_equal(auth_check(f->auth, "yuser", "y-secret", detail,
	    sizeof(detail)), OUTCOME_OK);
	assert_int_equal(auth_check(f->auth, "suser", "s6-secret", detail,
	    sizeof(detail)), OUTCOME_OK);
	assert_int_equal(auth_check(f->auth, "buser", "bf-secret", detail,
	    sizeof(detail)), OUTCOME_OK);
	/* Another user's password is no key, nor is a locked entry's text. */
	assert_int_equal(auth_check(f->auth, "yuser", "s6-secret", detail,
	    sizeof(detail)), OUTCOME_PERM);
	assert_int_equal(auth_check(f->auth, "nobody", "y-secret", detail,
	    sizeof(detail)), OUTCOME_PERM);
	assert_int_equal(auth_check(f->auth, "locked", "!", detail,
	    sizeof(detail)), OUTCOME_PERM);
	assert_int_equal(auth_check(f->auth, "star", "*", detail,
	    sizeof(detail)), OUTCOME_PERM);
	assert_int_equal(auth_check(f->auth, "locked", "", detail,
	    sizeof(detail)), OUTCOME_PERM);
}

/* CPU seconds this thread spent on one refused check of user. */
static double
refusal_cpu(struct auth *a, const char *user)
{
	struct timespec t0, t1;
	char detail[512];

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	assert_int_equal(auth_check(a, user, "wrong-password", detail,
	    sizeof(detail)), OUTCOME_PERM);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	return (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/*
 * Every refusal does the same work: the least CPU time of 5 tries per
 * kind of user agrees within 50 %. Before the cost classes, a locked
 * entry cost nothing, a sha512-crypt user 1/20 of a yescrypt one, and
 * an unknown user what the file's first entry cost. The margin is wide
 * because a thread's CPU time varies on a shared machine: a fresh root
 * building at the same time measured 1.17 between equal refusals.
 */
static void
test_file_refusals_cost_alike(void **state)
{
	static const char *const users[] = { "nobody", "locked", "star",
		"yuser", "suser", "buser" };
	struct fixture *f = *state;
	double least[6], lo = 1e9, hi = 0, t;
	size_t i, j;

	for (i = 0; i < 6; i++)
		least[i] = 1e9;
	for (j = 0; j < 5; j++)
		for (i = 0; i < 6; i++) {
			t = refusal_cpu(f->auth, users[i]);
			if (t < least[i])
				least[i] = t;
		}
	for (i = 0; i < 6; i++) {
		print_message("%-8s %.2f ms\n", users[i], least[i] * 1e3);
		lo = least[i] < lo ? least[i] : lo;
		hi = least[i] > hi ? least[i] : hi;
	}
	assert_true(hi / lo < 1.5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_class),
		cmocka_unit_test(test_hash_class_bounds),
		cmocka_unit_test(test_classes),
		cmocka_unit_test_setup_teardown(test_file_outcomes, file_setup,
		    file_teardown),
		cmocka_unit_test_setup_teardown(test_file_refusals_cost_alike,
		    file_setup, file_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
