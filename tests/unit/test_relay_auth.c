/*
 * Unit tests for mppqueue/relay_auth.c: the smtp_auth_file syntax (the
 * lines taken, every bad line refused with file:line), the mode rule, the
 * lookup order (HOST:PORT, HOST, "*"), the loopback rule and the PLAIN
 * and base64 encodings.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <bsd/string.h>

#include "config.h"
#include "../../mppqueue/relay_auth.h"
#include "tmpdir.h"

static char dir[512];

static int
setup(void **state)
{
	(void)state;
	tmpdir_make(dir, sizeof(dir), "relay_auth");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	tmpdir_remove(dir);
	return 0;
}

/* Write text to dir/name with mode; its path in path. */
static void
write_file(const char *name, const char *text, mode_t mode, char *path,
    size_t pathsz)
{
	FILE *fp;

	snprintf(path, pathsz, "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
assert_contains(const char *s, const char *part)
{
	if (strstr(s, part) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", s, part);
}

static void
test_lines_and_lookup(void **state)
{
	static const char text[] =
	    "# logins for the relays\n"
	    "\n"
	    "   \t\n"
	    "mx1.example:587 alice pass with  spaces  \n"
	    "MX1.example\tbob\tb0b#not-a-comment\r\n"
	    "[2001:db8::1]:25 carol c\n"
	    "  # an indented comment\n"
	    "* dave d\n";
	struct relay_auth *a;
	const struct relay_auth_entry *e;
	char path[1024], err[1024];

	(void)state;
	write_file("ok", text, 0600, path, sizeof(path));
	assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)), 0);
	assert_int_equal(a->n, 4);
	/* HOST:PORT first, then HOST (any port, any case), then "*". */
	assert_non_null(e = relay_auth_find(a, "mx1.example", 587));
	assert_string_equal(e->user, "alice");
	assert_string_equal(e->pass, "pass with  spaces");
	assert_non_null(e = relay_auth_find(a, "mx1.EXAMPLE", 25));
	assert_string_equal(e->user, "bob");
	assert_string_equal(e->pass, "b0b#not-a-comment");
	assert_non_null(e = relay_auth_find(a, "2001:db8::1", 25));
	assert_string_equal(e->user, "carol");
	assert_non_null(e = relay_auth_find(a, "2001:db8::1", 26));
	assert_string_equal(e->user, "dave");
	assert_non_null(e = relay_auth_find(a, "other.example", 25));
	assert_string_equal(e->user, "dave");
	relay_auth_free(a);

	/* Without a "*" line a relay without its own has none. */
	write_file("nostar", "mx1.example:587 alice a\n", 0400, path,
	    sizeof(path));
	assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)), 0);
	assert_null(relay_auth_find(a, "mx1.example", 25));
	assert_null(relay_auth_find(a, "mx2.example", 587));
	relay_auth_free(a);
	assert_null(relay_auth_find(NULL, "mx1.example", 25));
	relay_auth_free(NULL);

	/* An empty file is no error: no relay has a login. */
	write_file("empty", "", 0600, path, sizeof(path));
	assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)), 0);
	assert_int_equal(a->n, 0);
	relay_auth_free(a);
}

static void
test_bad_lines(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
		{ "* a b\nmx.example alice\n", ":2: expected \"HOST[:PORT] USER "
		    "PASSWORD\"" },
		{ "mx.example\n", ":1: expected" },
		{ "mx.example:0 a b\n", ":1: bad HOST[:PORT]" },
		{ "mx.example:99999 a b\n", ":1: bad HOST[:PORT]" },
		{ "::1 a b\n", ":1: bad HOST[:PORT]" },
		{ "[::1 a b\n", ":1: bad HOST[:PORT]" },
		{ "mx:25 a b\nmx:25 c d\n", ":2: a second line for this relay" },
		{ "* a b\n*\tc d\n", ":2: a second line" },
		{ "mx a b\001c\n", ":1: control character" },
		{ "mx a\177 b\n", ":1: control character" },
	};
	char path[1024], err[1024], want[1200], text[4096];
	struct relay_auth *a = (struct relay_auth *)1;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file("bad", bad[i].text, 0600, path, sizeof(path));
		assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)),
		    -1);
		assert_null(a);
		snprintf(want, sizeof(want), "%s%s", path, bad[i].why);
		assert_contains(err, want);
	}
	/* A user or a password over RELAY_AUTH_CRED_MAX bytes. */
	snprintf(text, sizeof(text), "mx u %0*d\n", RELAY_AUTH_CRED_MAX + 1, 0);
	write_file("long", text, 0600, path, sizeof(path));
	assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)), -1);
	assert_contains(err, ":1: user or password too long");
	snprintf(text, sizeof(text), "mx u %0*d\n", RELAY_AUTH_CRED_MAX, 0);
	write_file("long", text, 0600, path, sizeof(path));
	assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)), 0);
	assert_int_equal(strlen(a->e[0].pass), RELAY_AUTH_CRED_MAX);
	relay_auth_free(a);
	/* A line over RELAY_AUTH_LINE_MAX bytes, even a comment. */
	memset(text, 'x', sizeof(text));
	memcpy(text, "* a b\n#", 7);
	text[RELAY_AUTH_LINE_MAX + 10] = '\n';
	text[RELAY_AUTH_LINE_MAX + 11] = '\0';
	write_file("long", text, 0600, path, sizeof(path));
	assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: line too long", path);
	assert_string_equal(err, want);
	/* The reason never quotes the line (it may hold a password). */
	write_file("bad", "mx.example:x sEcReT1 sEcReT2\n", 0600, path,
	    sizeof(path));
	assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)), -1);
	assert_null(strstr(err, "sEcReT"));
}

static void
test_mode_refused(void **state)
{
	static const struct {
		mode_t mode;
		const char *who;
	} open_to[] = {
		{ 0640, "its group" }, { 0620, "its group" },
		{ 0604, "others" }, { 0602, "others" }, { 0644, "others" },
	};
	struct relay_auth *a;
	char path[1024], err[1024], want[1200];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(open_to) / sizeof(open_to[0]); i++) {
		write_file("mode", "* a b\n", open_to[i].mode, path,
		    sizeof(path));
		assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)),
		    -1);
		snprintf(want, sizeof(want), "%s holds passwords and is open "
		    "to %s (mode %04o): make it 0600", path, open_to[i].who,
		    (unsigned)open_to[i].mode);
		assert_string_equal(err, want);
	}
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(relay_auth_load(path, &a, err, sizeof(err)), -1);
	assert_contains(err, "No such file");
	assert_int_equal(relay_auth_load(dir, &a, err, sizeof(err)), -1);
	assert_contains(err, "not a regular file");
}

/* relay_auth_check: only for an SMTP transport with the key set. */
static void
test_check(void **state)
{
	struct mpp_config cfg;
	char path[1024], err[1024];

	(void)state;
	config_defaults(&cfg);
	write_file("check", "* a b\n", 0644, path, sizeof(path));
	strlcpy(cfg.smtp_auth_file, path, sizeof(cfg.smtp_auth_file));
	assert_int_equal(relay_auth_check(&cfg, err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "transport", "smtps:mx.example",
	    err, sizeof(err)), 0);
	assert_int_equal(relay_auth_check(&cfg, err, sizeof(err)), -1);
	assert_contains(err, "open to others");
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(relay_auth_check(&cfg, err, sizeof(err)), 0);
	cfg.smtp_auth_file[0] = '\0';
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(relay_auth_check(&cfg, err, sizeof(err)), 0);
}

static void
test_encodings(void **state)
{
	struct relay_auth_entry e;
	char out[64];

	(void)state;
	memset(&e, 0, sizeof(e));
	strcpy(e.user, "alice");
	strcpy(e.pass, "alice-secret");
	assert_int_equal(relay_auth_plain(&e, out, sizeof(out)), 0);
	/* base64("\0alice\0alice-secret"), as RFC 4616 §4 builds it. */
	assert_string_equal(out, "AGFsaWNlAGFsaWNlLXNlY3JldA==");
	assert_int_equal(relay_auth_base64("alice", 5, out, sizeof(out)), 0);
	assert_string_equal(out, "YWxpY2U=");
	assert_int_equal(relay_auth_base64("", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* Exactly enough room, and one byte less. */
	assert_int_equal(relay_auth_base64("abcdef", 6, out, 9), 0);
	assert_string_equal(out, "YWJjZGVm");
	assert_int_equal(relay_auth_base64("abcdefg", 7, out, 12), -1);
	assert_int_equal(relay_auth_base64("abcdefg", 7, out, 13), 0);
	assert_string_equal(out, "YWJjZGVmZw==");
	assert_int_equal(relay_auth_plain(&e, out, 20), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_and_lookup),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_mode_refused),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_encodings),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
