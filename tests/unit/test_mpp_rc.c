/*
 * Unit tests for client/mpp_rc: rc lines one by one, whole rc files (errors
 * name file and line; a file with a password must be private), timeouts, the
 * TLS keys (tls, ca) and their yes/no parser, and the password file.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../client/mpp_rc.h"
#include "config.h"

static char tmpdir[] = "/tmp/test_mpp_rc.XXXXXX";

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[sizeof(tmpdir) + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write text to a file in the temporary directory; its path in path. */
static void
put_file(char *path, size_t size, const char *name, const char *text,
    mode_t mode)
{
	FILE *f;

	snprintf(path, size, "%s/%s", tmpdir, name);
	unlink(path);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_lines_good(void **state)
{
	struct mpp_rc rc;
	char err[256];

	(void)state;
	mpp_rc_init(&rc);
	assert_int_equal(mpp_rc_parse_line(&rc, "", NULL, err, sizeof(err)),
	    0);
	assert_int_equal(mpp_rc_parse_line(&rc, "   \t", NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(mpp_rc_parse_line(&rc, "  # server = nope", NULL,
	    err, sizeof(err)), 0);
	assert_string_equal(rc.server, "");
	assert_int_equal(mpp_rc_parse_line(&rc, "server = [::1]:2218", NULL,
	    err, sizeof(err)), 0);
	assert_string_equal(rc.server, "[::1]:2218");
	assert_int_equal(mpp_rc_parse_line(&rc, "\tuser=alice  ", NULL, err,
	    sizeof(err)), 0);
	assert_string_equal(rc.user, "alice");
	assert_int_equal(mpp_rc_parse_line(&rc, "timeout = 15", NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(rc.timeout, 15);
	/* # starts a comment anywhere, as in mpp.conf */
	assert_int_equal(mpp_rc_parse_line(&rc, "server = mpp.test # note",
	    NULL, err, sizeof(err)), 0);
	assert_string_equal(rc.server, "mpp.test");
	assert_int_equal(mpp_rc_parse_line(&rc, "password = a#b = c", NULL,
	    err, sizeof(err)), 0);
	assert_string_equal(rc.password, "a");
	assert_int_equal(rc.pw_source, MPP_RC_PW_LITERAL);
	assert_true(rc.holds_password);
	/* whichever of password / password_file comes last is used */
	assert_int_equal(mpp_rc_parse_line(&rc, "password_file = ~/.mpppw",
	    "/home/alice", err, sizeof(err)), 0);
	assert_string_equal(rc.password_file, "/home/alice/.mpppw");
	assert_int_equal(rc.pw_source, MPP_RC_PW_FILE);
	assert_int_equal(mpp_rc_parse_line(&rc, "password_file = rel/pw",
	    "/home/alice", err, sizeof(err)), 0);
	assert_string_equal(rc.password_file, "rel/pw");
	mpp_rc_clear(&rc);
	assert_string_equal(rc.password, "");
}

static void
test_lines_bad(void **state)
{
	static const struct {
		const char *line, *why;
	} t[] = {
		{ "server", "key = value" },
		{ "sever = x", "unknown key \"sever\"" },
		{ "Server = x", "unknown key" },
		{ "= x", "key" },
		{ "user =", "needs a value" },
		{ "user =   ", "needs a value" },
		{ "timeout = 0", "timeout" },
		{ "timeout = 86401", "timeout" },
		{ "timeout = 10s", "timeout" },
		{ "timeout = -5", "timeout" },
		{ "timeout = ", "needs a value" },
		{ "tls = maybe", "tls must be yes or no" },
		{ "tls = true", "tls must be yes or no" },
		{ "tls = ", "needs a value" },
		{ "ca =", "needs a value" },
		{ "TLS = yes", "unknown key" },
	};
	struct mpp_rc rc;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		mpp_rc_init(&rc);
		err[0] = '\0';
		assert_int_equal(mpp_rc_parse_line(&rc, t[i].line, NULL, err,
		    sizeof(err)), -1);
		if (strstr(err, t[i].why) == NULL)
			fail_msg("\"%s\": \"%s\"", t[i].line, err);
	}
}

/*
 * One comment rule for ~/.mpprc and mpp.conf: each value below, written
 * after "server = " in the rc file and after "hostname = " in mpp.conf
 * (as an -o override, which goes through the same line parser as the
 * file), ends up the same in both.
 */
static void
test_comment_rule_of_mpp_conf(void **state)
{
	static const struct {
		const char *value, *want;
	} t[] = {
		{ "mpp.test # note", "mpp.test" },
		{ "mpp.test#note", "mpp.test" },
		{ "mpp.test\t# note # more", "mpp.test" },
		{ "mpp.test", "mpp.test" },
	};
	struct mpp_config cfg;
	struct mpp_rc rc;
	char line[128], err[256], *ov[1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		mpp_rc_init(&rc);
		snprintf(line, sizeof(line), "server = %s", t[i].value);
		assert_int_equal(mpp_rc_parse_line(&rc, line, NULL, err,
		    sizeof(err)), 0);
		assert_string_equal(rc.server, t[i].want);
		snprintf(line, sizeof(line), "hostname = %s", t[i].value);
		ov[0] = line;
		if (config_load(&cfg, NULL, 0, ov, 1, err, sizeof(err)) != 0)
			fail_msg("%s: %s", line, err);
		assert_string_equal(cfg.hostname, t[i].want);
	}
	/* a line holding only a comment is no line in either */
	mpp_rc_init(&rc);
	assert_int_equal(mpp_rc_parse_line(&rc, "  # server = x", NULL, err,
	    sizeof(err)), 0);
	assert_string_equal(rc.server, "");
	/* and a value that is all comment is missing in the rc file */
	assert_int_equal(mpp_rc_parse_line(&rc, "server = # x", NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "needs a value"));
}

static void
test_timeout(void **state)
{
	int v = 0;

	(void)state;
	assert_int_equal(mpp_rc_parse_timeout("1", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(mpp_rc_parse_timeout("86400", &v), 0);
	assert_int_equal(v, 86400);
	assert_int_equal(mpp_rc_parse_timeout("", &v), -1);
	assert_int_equal(mpp_rc_parse_timeout(" 5", &v), -1);
	assert_int_equal(mpp_rc_parse_timeout("99999999999999999999", &v),
	    -1);
}

static void
test_yesno(void **state)
{
	static const struct {
		const char *s;
		int r, v;
	} t[] = {
		{ "yes", 0, 1 }, { "YES", 0, 1 }, { "Yes", 0, 1 }, { "1", 0, 1 },
		{ "no", 0, 0 }, { "NO", 0, 0 }, { "0", 0, 0 },
		{ "", -1, 0 }, { "y", -1, 0 }, { "on", -1, 0 },
		{ "2", -1, 0 }, { " yes", -1, 0 }, { "yes ", -1, 0 },
		{ "01", -1, 0 },
	};
	size_t i;
	int v;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		v = -7;
		if (mpp_rc_parse_yesno(t[i].s, &v) != t[i].r ||
		    (t[i].r == 0 && v != t[i].v) || (t[i].r == -1 && v != -7))
			fail_msg("\"%s\"", t[i].s);
	}
}

static void
test_tls_keys(void **state)
{
	struct mpp_rc rc;
	char err[256];

	(void)state;
	mpp_rc_init(&rc);
	assert_int_equal(rc.tls, -1);
	assert_string_equal(rc.ca, "");
	assert_int_equal(mpp_rc_parse_line(&rc, "tls = yes", NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(rc.tls, 1);
	assert_int_equal(mpp_rc_parse_line(&rc, "tls=no", NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(rc.tls, 0);
	/* a bad value leaves the earlier one */
	assert_int_equal(mpp_rc_parse_line(&rc, "tls = sometimes", NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(rc.tls, 0);
	assert_int_equal(mpp_rc_parse_line(&rc, "ca = ~/certs/mpp-ca.pem",
	    "/home/alice", err, sizeof(err)), 0);
	assert_string_equal(rc.ca, "/home/alice/certs/mpp-ca.pem");
	assert_int_equal(mpp_rc_parse_line(&rc, "ca = /etc/ssl/certs/x.pem",
	    "/home/alice", err, sizeof(err)), 0);
	assert_string_equal(rc.ca, "/etc/ssl/certs/x.pem");
	/* neither key holds a secret: any mode will do */
	assert_false(rc.holds_password);
}

static void
test_load_file(void **state)
{
	struct mpp_rc rc;
	char path[512], err[512];
	int loaded;

	(void)state;
	put_file(path, sizeof(path), "rc1", "# settings\nserver = mpp.example"
	    ":2218\r\nuser = bob\ntls = yes\nca = ~/ca.pem\n\ntimeout=5",
	    0644);
	mpp_rc_init(&rc);
	assert_int_equal(mpp_rc_load(&rc, path, 1, "/home/bob", &loaded, err,
	    sizeof(err)), 0);
	assert_true(loaded);
	assert_int_equal(rc.tls, 1);
	assert_string_equal(rc.ca, "/home/bob/ca.pem");
	assert_string_equal(rc.server, "mpp.example:2218");
	assert_string_equal(rc.user, "bob");
	assert_int_equal(rc.timeout, 5);
	assert_int_equal(rc.pw_source, MPP_RC_PW_NONE);

	/* an error names file and line */
	put_file(path, sizeof(path), "rc2", "user = bob\n# x\ncolour = red\n",
	    0600);
	mpp_rc_init(&rc);
	assert_int_equal(mpp_rc_load(&rc, path, 1, NULL, &loaded, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "rc2:3: unknown key \"colour\""));
	assert_false(loaded);
}

static void
test_load_missing(void **state)
{
	struct mpp_rc rc;
	char path[512], err[512];
	int loaded = 1;

	(void)state;
	snprintf(path, sizeof(path), "%s/absent", tmpdir);
	mpp_rc_init(&rc);
	assert_int_equal(mpp_rc_load(&rc, path, 0, NULL, &loaded, err,
	    sizeof(err)), 0);
	assert_false(loaded);
	assert_int_equal(mpp_rc_load(&rc, path, 1, NULL, &loaded, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "absent"));
	/* a directory is no rc file */
	assert_int_equal(mpp_rc_load(&rc, tmpdir, 0, NULL, &loaded, err,
	    sizeof(err)), -1);
}

static void
test_password_needs_private_file(void **state)
{
	static const mode_t modes[] = { 0644, 0640, 0604, 0660, 0606 };
	struct mpp_rc rc;
	char path[512], err[512];
	size_t i;
	int loaded;

	(void)state;
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		put_file(path, sizeof(path), "rcpw", "password = s3cret\n",
		    modes[i]);
		mpp_rc_init(&rc);
		assert_int_equal(mpp_rc_load(&rc, path, 1, NULL, &loaded, err,
		    sizeof(err)), -1);
		assert_non_null(strstr(err, "chmod 600"));
		assert_null(strstr(err, "s3cret"));
	}
	put_file(path, sizeof(path), "rcpw", "password = s3cret\n", 0600);
	mpp_rc_init(&rc);
	assert_int_equal(mpp_rc_load(&rc, path, 1, NULL, &loaded, err,
	    sizeof(err)), 0);
	assert_string_equal(rc.password, "s3cret");
	put_file(path, sizeof(path), "rcpw", "password = s3cret\n", 0400);
	assert_int_equal(mpp_rc_load(&rc, path, 1, NULL, &loaded, err,
	    sizeof(err)), 0);
	/* without a password, any mode will do */
	put_file(path, sizeof(path), "rcpf", "password_file = /x\n", 0644);
	mpp_rc_init(&rc);
	assert_int_equal(mpp_rc_load(&rc, path, 1, NULL, &loaded, err,
	    sizeof(err)), 0);
}

static void
test_password_file(void **state)
{
	char path[512], err[512], pw[64];
	int loose;

	(void)state;
	put_file(path, sizeof(path), "pw1", "s3cret pw\nsecond line\n", 0600);
	assert_int_equal(mpp_rc_read_password_file(path, pw, sizeof(pw),
	    &loose, err, sizeof(err)), 0);
	assert_string_equal(pw, "s3cret pw");
	assert_false(loose);
	put_file(path, sizeof(path), "pw2", "crlf\r\n", 0644);
	assert_int_equal(mpp_rc_read_password_file(path, pw, sizeof(pw),
	    &loose, err, sizeof(err)), 0);
	assert_string_equal(pw, "crlf");
	assert_true(loose);
	put_file(path, sizeof(path), "pw3", "no newline", 0600);
	assert_int_equal(mpp_rc_read_password_file(path, pw, sizeof(pw),
	    &loose, err, sizeof(err)), 0);
	assert_string_equal(pw, "no newline");
	put_file(path, sizeof(path), "pw4", "\nsecond\n", 0600);
	assert_int_equal(mpp_rc_read_password_file(path, pw, sizeof(pw),
	    &loose, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
	put_file(path, sizeof(path), "pw5", "", 0600);
	assert_int_equal(mpp_rc_read_password_file(path, pw, sizeof(pw),
	    &loose, err, sizeof(err)), -1);
	/* longer than the buffer: refused, not cut */
	put_file(path, sizeof(path), "pw6", "0123456789012345678901234567890123"
	    "45678901234567890123456789012345678901234567890123456789\n", 0600);
	assert_int_equal(mpp_rc_read_password_file(path, pw, sizeof(pw),
	    &loose, err, sizeof(err)), -1);
	snprintf(path, sizeof(path), "%s/none", tmpdir);
	assert_int_equal(mpp_rc_read_password_file(path, pw, sizeof(pw),
	    &loose, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "none"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_good),
		cmocka_unit_test(test_lines_bad),
		cmocka_unit_test(test_comment_rule_of_mpp_conf),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_yesno),
		cmocka_unit_test(test_tls_keys),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_password_needs_private_file),
		cmocka_unit_test(test_password_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
