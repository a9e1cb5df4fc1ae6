/*
 * Unit tests for common/config.c: defaults, every key and its bounds, the
 * file syntax and its error messages (file, line, key), -o overrides, the
 * checked string values (listen, auth, transport, log, paths),
 * config_split_hostport() and config_user_address(). Files are written in
 * a fresh temporary directory per test.
 */

#include <limits.h>
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
#include "log.h"
#include "tmpdir.h"

/* A temporary directory for one test, removed with its files after. */
struct tmp {
	char dir[PATH_MAX - 64];
	char path[PATH_MAX];	/* the config file in it */
};

static int
tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	tmpdir_make(t->dir, sizeof(t->dir), "config");
	snprintf(t->path, sizeof(t->path), "%s/mpp.conf", t->dir);
	*state = t;
	return 0;
}

static int
tmp_teardown(void **state)
{
	struct tmp *t = *state;

	tmpdir_remove(t->dir);
	free(t);
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Fail unless s contains part. */
static void
assert_contains(const char *s, const char *part)
{
	if (strstr(s, part) == NULL) {
		print_error("\"%s\" does not contain \"%s\"\n", s, part);
		fail();
	}
}

/* The keys, as the test knows them. */

struct long_key {
	const char *name;
	size_t offset;
	long def, min, max;
};

#define LK(k, d, lo, hi) { #k, offsetof(struct mpp_config, k), d, lo, hi }

static const struct long_key long_keys[] = {
	LK(idle_timeout, 300, 1, 86400),
	LK(login_timeout, 60, 1, 3600),
	LK(max_message_size, 10485760, 1024, 1073741824),
	LK(max_sessions, 1000, 1, 1000000),
	LK(max_sessions_per_ip, 50, 1, 1000000),
	LK(max_recipients, 1000, 1, 100000),
	LK(queue_interval, 60, 1, 86400),
	LK(retry_min, 60, 1, 86400),
	LK(retry_max, 3600, 1, 604800),
	LK(max_queue_lifetime, 432000, 1, 31536000),
	LK(concurrency, 4, 1, 256),
	LK(lease_time, 600, 10, 86400),
	LK(sent_retention, 604800, 0, 31536000),
	LK(auth_timeout, 10, 1, 300),
	LK(auth_cache_ttl, 0, 0, 86400),
	LK(auth_fail_limit, 10, 0, 1000000),
	LK(auth_fail_window, 300, 1, 86400),
	LK(delivery_timeout, 300, 1, 86400),
	LK(proxy_timeout, 5, 1, 60),
	LK(drain_timeout, 120, 1, 86400),
};

static long
long_field(const struct mpp_config *cfg, const struct long_key *k)
{
	long v;

	memcpy(&v, (const char *)cfg + k->offset, sizeof(v));
	return v;
}

struct str_key {
	const char *name;
	size_t offset;
	const char *def;	/* NULL: the host name */
};

#define SK(k, d) { #k, offsetof(struct mpp_config, k), d }

static const struct str_key str_keys[] = {
	SK(spool_dir, "/var/spool/mpp"),
	SK(listen.text, "0.0.0.0:218"),
	SK(user, "mpp"),
	SK(hostname, NULL),
	SK(sender_domain, NULL),
	SK(auth.text, "file:/etc/mpp/passwd"),
	SK(transport.text, "sendmail:/usr/sbin/sendmail"),
	SK(proxy_listen.text, ""),
	SK(proxy_listen_tls.text, ""),
	SK(log.text, "syslog"),
};

static const char *
str_field(const struct mpp_config *cfg, const struct str_key *k)
{
	return (const char *)cfg + k->offset;
}

/* Defaults. */

static void
test_defaults(void **state)
{
	struct mpp_config cfg;
	char host[256], err[512] = "";
	size_t i;

	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	assert_int_equal(config_load(&cfg, NULL, 0, NULL, 0, err,
	    sizeof(err)), 0);
	for (i = 0; i < sizeof(str_keys) / sizeof(str_keys[0]); i++)
		assert_string_equal(str_field(&cfg, &str_keys[i]),
		    str_keys[i].def != NULL ? str_keys[i].def : host);
	for (i = 0; i < sizeof(long_keys) / sizeof(long_keys[0]); i++)
		if (long_field(&cfg, &long_keys[i]) != long_keys[i].def) {
			print_error("%s is %ld, want %ld\n", long_keys[i].name,
			    long_field(&cfg, &long_keys[i]), long_keys[i].def);
			fail();
		}
	/* config_defaults alone: the same numbers, host name set. */
	memset(&cfg, 0x55, sizeof(cfg));
	config_defaults(&cfg);
	assert_string_equal(cfg.hostname, host);
	for (i = 0; i < sizeof(long_keys) / sizeof(long_keys[0]); i++)
		assert_int_equal(long_field(&cfg, &long_keys[i]),
		    long_keys[i].def);
}

/* Every whole-number key: its bounds and what is not a number. */
static void
test_long_keys(void **state)
{
	static const char *const bad[] = { "", "abc", "5x", "+5", "-5", " 5",
	    "0x10", "1e3", "5.0", "99999999999999999999999" };
	struct mpp_config cfg;
	char val[64], err[512];
	size_t i, j;

	for (i = 0; i < sizeof(long_keys) / sizeof(long_keys[0]); i++) {
		const struct long_key *k = &long_keys[i];

		config_defaults(&cfg);
		snprintf(val, sizeof(val), "%ld", k->min);
		assert_int_equal(config_set(&cfg, k->name, val, err,
		    sizeof(err)), 0);
		assert_int_equal(long_field(&cfg, k), k->min);
		snprintf(val, sizeof(val), "%ld", k->max);
		assert_int_equal(config_set(&cfg, k->name, val, err,
		    sizeof(err)), 0);
		assert_int_equal(long_field(&cfg, k), k->max);
		snprintf(val, sizeof(val), "%ld", k->max + 1);
		err[0] = '\0';
		assert_int_equal(config_set(&cfg, k->name, val, err,
		    sizeof(err)), -1);
		assert_contains(err, k->name);
		assert_contains(err, val);
		assert_int_equal(long_field(&cfg, k), k->max);	/* unchanged */
		if (k->min > 0) {
			snprintf(val, sizeof(val), "%ld", k->min - 1);
			assert_int_equal(config_set(&cfg, k->name, val, err,
			    sizeof(err)), -1);
		}
		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
			if (config_set(&cfg, k->name, bad[j], err,
			    sizeof(err)) != -1) {
				print_error("%s = \"%s\" accepted\n", k->name,
				    bad[j]);
				fail();
			}
	}
}

/* String keys: any text, bounded; the checked ones in their own tests. */
static void
test_string_keys(void **state)
{
	struct mpp_config cfg;
	char err[512], *big;

	config_defaults(&cfg);
	assert_int_equal(config_set(&cfg, "user", "", err, sizeof(err)), 0);
	assert_string_equal(cfg.user, "");
	assert_int_equal(config_set(&cfg, "user", "mail", err, sizeof(err)),
	    0);
	assert_string_equal(cfg.user, "mail");
	assert_int_equal(config_set(&cfg, "hostname", "mx.example.org", err,
	    sizeof(err)), 0);
	assert_string_equal(cfg.hostname, "mx.example.org");
	assert_int_equal(config_set(&cfg, "sender_domain", "example.org", err,
	    sizeof(err)), 0);
	assert_string_equal(cfg.sender_domain, "example.org");
	assert_int_equal(config_set(&cfg, "spool_dir", "/srv/mpp", err,
	    sizeof(err)), 0);
	assert_string_equal(cfg.spool_dir, "/srv/mpp");
	assert_int_equal(config_set(&cfg, "spool_dir", "spool", err,
	    sizeof(err)), -1);
	assert_contains(err, "spool_dir");
	assert_int_equal(config_set(&cfg, "spool_dir", "", err, sizeof(err)),
	    -1);
	assert_string_equal(cfg.spool_dir, "/srv/mpp");
	/* CONFIG_STR_MAX - 1 bytes fit, CONFIG_STR_MAX do not. */
	big = malloc(CONFIG_STR_MAX + 1);
	assert_non_null(big);
	memset(big, 'h', CONFIG_STR_MAX);
	big[CONFIG_STR_MAX] = '\0';
	assert_int_equal(config_set(&cfg, "user", big, err, sizeof(err)),
	    -1);
	assert_contains(err, "user");
	assert_contains(err, "too long");
	big[CONFIG_STR_MAX - 1] = '\0';
	assert_int_equal(config_set(&cfg, "user", big, err, sizeof(err)), 0);
	assert_string_equal(cfg.user, big);
	free(big);
}

static void
test_unknown_key_set(void **state)
{
	struct mpp_config cfg;
	char err[512] = "";

	config_defaults(&cfg);
	assert_int_equal(config_set(&cfg, "bogus", "1", err, sizeof(err)), -1);
	assert_contains(err, "bogus");
	assert_int_equal(config_set(&cfg, "", "1", err, sizeof(err)), -1);
	assert_int_equal(config_set(&cfg, "IDLE_TIMEOUT", "5", err,
	    sizeof(err)), -1);
}

/* Checked values. */

struct value_case {
	const char *key, *value;
	int ok;
};

static const struct value_case value_cases[] = {
	{ "listen", "0.0.0.0:218", 1 },
	{ "listen", "127.0.0.1:2180", 1 },
	{ "listen", "[::1]:218", 1 },
	{ "listen", "[::]:218", 1 },
	{ "listen", "localhost:218", 1 },
	{ "listen", "0.0.0.0:218,[::]:218", 1 },
	{ "listen", "0.0.0.0:218, [::]:218", 1 },
	{ "listen", "", 0 },
	{ "listen", "0.0.0.0", 0 },
	{ "listen", "0.0.0.0:", 0 },
	{ "listen", "0.0.0.0:0", 0 },
	{ "listen", "0.0.0.0:65536", 0 },
	{ "listen", "0.0.0.0:http", 0 },
	{ "listen", ":218", 0 },
	{ "listen", "[::1]", 0 },
	{ "listen", "::1:218", 0 },
	{ "listen", "[::1:218", 0 },
	{ "listen", "0.0.0.0:218,", 0 },
	{ "listen", ",0.0.0.0:218", 0 },
	{ "listen", "0.0.0.0:218,,[::]:218", 0 },
	{ "auth", "file:/etc/mpp/passwd", 1 },
	{ "auth", "pop3:mail.example.org", 1 },
	{ "auth", "pop3:mail.example.org:1110", 1 },
	{ "auth", "pop3:[2001:db8::1]:110", 1 },
	{ "auth", "ftp:ftp.example.org", 1 },
	{ "auth", "ftp:ftp.example.org:2121", 1 },
	{ "auth", "file:/etc/mpp/passwd,pop3:mail.example.org", 1 },
	{ "auth", "", 0 },
	{ "auth", "file:", 0 },
	{ "auth", "file:passwd", 0 },
	{ "auth", "pop3:", 0 },
	{ "auth", "pop3:host:0", 0 },
	{ "auth", "pop3:host:99999", 0 },
	{ "auth", "pop3:2001:db8::1", 0 },
	{ "auth", "ftp:", 0 },
	{ "auth", "ldap:ldap.example.org", 0 },
	{ "auth", "/etc/mpp/passwd", 0 },
	{ "auth", "FILE:/etc/mpp/passwd", 0 },
	{ "transport", "sendmail:/usr/sbin/sendmail", 1 },
	{ "transport", "smtp:127.0.0.1:25", 1 },
	{ "transport", "smtp:[::1]:25", 1 },
	{ "transport", "smtp:mx.example.org:587", 1 },
	{ "transport", "maildir:/var/mail/mpp", 1 },
	{ "transport", "", 0 },
	{ "transport", "smtp:", 0 },
	{ "transport", "smtp:mx.example.org", 0 },
	{ "transport", "smtp:mx.example.org:0", 0 },
	{ "transport", "smtp:::1:25", 0 },
	{ "transport", "sendmail:", 0 },
	{ "transport", "sendmail:sendmail", 0 },
	{ "transport", "maildir:", 0 },
	{ "transport", "maildir:Maildir", 0 },
	{ "transport", "lmtp:/run/lmtp", 0 },
	{ "transport", "/usr/sbin/sendmail", 0 },
	{ "proxy_listen", "", 1 },
	{ "proxy_listen", "127.0.0.1:2181, [::1]:2181", 1 },
	{ "proxy_listen", "127.0.0.1", 0 },
	{ "proxy_listen", "127.0.0.1:2181,", 0 },
	{ "proxy_listen_tls", "0.0.0.0:1218", 1 },
	{ "proxy_listen_tls", "0.0.0.0:0", 0 },
	{ "proxy_trusted", "", 1 },
	{ "proxy_trusted", "127.0.0.1", 1 },
	{ "proxy_trusted", "10.0.0.0/8, 192.0.2.7, 2001:db8::/32, ::1", 1 },
	{ "proxy_trusted", "10.0.0.1/8", 0 },
	{ "proxy_trusted", "10.0.0.0/33", 0 },
	{ "proxy_trusted", "lb.example.org", 0 },
	{ "proxy_trusted", "127.0.0.1,", 0 },
	{ "proxy_trusted", "127.0.0.1 ::1", 0 },
	{ "log", "syslog", 1 },
	{ "log", "stderr", 1 },
	{ "log", "file:/var/log/mpp.log", 1 },
	{ "log", "file:/l", 1 },
	{ "log", "", 0 },
	{ "log", "file:", 0 },
	{ "log", "file:mpp.log", 0 },
	{ "log", "file:/var/log/", 0 },
	{ "log", "Syslog", 0 },
	{ "log", "syslog:local0", 0 },
	{ "log", "/var/log/mpp.log", 0 },
};

/*
 * The text a checked key keeps (its .text for a typed value), or NULL
 * for one that keeps none (proxy_trusted: a list of networks only).
 */
static const char *
checked_field(const struct mpp_config *cfg, const char *key)
{
	char name[64];
	size_t i;

	for (i = 0; i < sizeof(str_keys) / sizeof(str_keys[0]); i++) {
		snprintf(name, sizeof(name), "%s", str_keys[i].name);
		name[strcspn(name, ".")] = '\0';
		if (strcmp(name, key) == 0)
			return str_field(cfg, &str_keys[i]);
	}
	return NULL;
}

static void
test_checked_values(void **state)
{
	static struct mpp_config cfg, was;
	char err[512];
	size_t i;

	for (i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++) {
		const struct value_case *c = &value_cases[i];
		const char *field;
		int rc;

		config_defaults(&cfg);
		field = checked_field(&cfg, c->key);
		memcpy(&was, &cfg, sizeof(cfg));
		err[0] = '\0';
		rc = config_set(&cfg, c->key, c->value, err, sizeof(err));
		if (rc != (c->ok ? 0 : -1)) {
			print_error("%s = \"%s\": %d, want %s (%s)\n", c->key,
			    c->value, rc, c->ok ? "ok" : "error", err);
			fail();
		}
		if (c->ok && field != NULL)
			assert_string_equal(field, c->value);
		if (!c->ok) {
			/* a bad value leaves every field as it was */
			assert_memory_equal(&cfg, &was, sizeof(cfg));
			assert_contains(err, c->key);
		}
	}
}

/*
 * Typed values: each is parsed once, at load, into its field; the
 * programs read the fields (issue: the config parsed once, into types).
 */

struct hp_want {
	const char *host;
	int port;
};

static void
assert_hostport(const struct config_hostport *hp, const struct hp_want *w)
{
	assert_string_equal(hp->host, w->host);
	assert_int_equal(hp->port, w->port);
}

static void
test_listen_parsed(void **state)
{
	static const struct hp_want two[] = { { "0.0.0.0", 218 },
	    { "::", 2180 } };
	struct mpp_config cfg;
	char err[512], list[CONFIG_LISTEN_MAX * 20 + 20];
	size_t i;

	config_defaults(&cfg);
	assert_int_equal(cfg.listen.n, 1);
	assert_hostport(&cfg.listen.addr[0], &two[0]);
	assert_int_equal(cfg.listen_tls.n, 0);
	assert_int_equal(config_set(&cfg, "listen", "0.0.0.0:218 ,\t[::]:2180",
	    err, sizeof(err)), 0);
	assert_int_equal(cfg.listen.n, 2);
	for (i = 0; i < 2; i++)
		assert_hostport(&cfg.listen.addr[i], &two[i]);
	assert_int_equal(config_set(&cfg, "listen_tls", "127.0.0.1:465", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.listen_tls.n, 1);
	assert_int_equal(cfg.listen_tls.addr[0].port, 465);
	assert_int_equal(config_set(&cfg, "listen_tls", "", err, sizeof(err)),
	    0);
	assert_int_equal(cfg.listen_tls.n, 0);
	/* CONFIG_LISTEN_MAX addresses fit; one more is a bad value. */
	list[0] = '\0';
	for (i = 0; i < CONFIG_LISTEN_MAX; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		    "%s127.0.0.%zu:218", i > 0 ? "," : "", i + 1);
	assert_int_equal(config_set(&cfg, "listen", list, err, sizeof(err)),
	    0);
	assert_int_equal(cfg.listen.n, CONFIG_LISTEN_MAX);
	assert_string_equal(cfg.listen.addr[CONFIG_LISTEN_MAX - 1].host,
	    "127.0.0.16");
	strlcat(list, ",127.0.0.17:218", sizeof(list));
	assert_int_equal(config_set(&cfg, "listen", list, err, sizeof(err)),
	    -1);
	assert_contains(err, "listen");
	assert_int_equal(cfg.listen.n, CONFIG_LISTEN_MAX);
}

static void
test_auth_parsed(void **state)
{
	struct mpp_config cfg;
	char err[512], list[CONFIG_AUTH_MAX * 16 + 16];
	size_t i;

	config_defaults(&cfg);
	assert_int_equal(cfg.auth.n, 1);
	assert_int_equal(cfg.auth.b[0].kind, CONFIG_AUTH_file);
	assert_string_equal(cfg.auth.b[0].path, "/etc/mpp/passwd");
	assert_int_equal(config_set(&cfg, "auth", "file:/etc/mpp/passwd, "
	    "pop3:mail.example.org,ftp:[2001:db8::1]:2121 , ftp:ftp.example.org,"
	    "pop3:[::1]:1110", err, sizeof(err)), 0);
	assert_int_equal(cfg.auth.n, 5);
	assert_int_equal(cfg.auth.b[0].kind, CONFIG_AUTH_file);
	assert_string_equal(cfg.auth.b[0].path, "/etc/mpp/passwd");
	assert_int_equal(cfg.auth.b[1].kind, CONFIG_AUTH_pop3);
	assert_hostport(&cfg.auth.b[1].server,
	    &(struct hp_want){ "mail.example.org", 110 });
	assert_string_equal(cfg.auth.b[1].path, "");
	assert_int_equal(cfg.auth.b[2].kind, CONFIG_AUTH_ftp);
	assert_hostport(&cfg.auth.b[2].server,
	    &(struct hp_want){ "2001:db8::1", 2121 });
	assert_int_equal(cfg.auth.b[3].kind, CONFIG_AUTH_ftp);
	assert_hostport(&cfg.auth.b[3].server,
	    &(struct hp_want){ "ftp.example.org", 21 });
	assert_int_equal(cfg.auth.b[4].kind, CONFIG_AUTH_pop3);
	assert_hostport(&cfg.auth.b[4].server,
	    &(struct hp_want){ "::1", 1110 });
	assert_string_equal(config_auth_name(CONFIG_AUTH_pop3), "pop3");
	assert_string_equal(config_auth_name(CONFIG_AUTH_KINDS), "?");
	/* CONFIG_AUTH_MAX backends fit; one more is a bad value. */
	list[0] = '\0';
	for (i = 0; i < CONFIG_AUTH_MAX; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		    "%sftp:h%zu", i > 0 ? "," : "", i);
	assert_int_equal(config_set(&cfg, "auth", list, err, sizeof(err)), 0);
	assert_int_equal(cfg.auth.n, CONFIG_AUTH_MAX);
	strlcat(list, ",ftp:h", sizeof(list));
	assert_int_equal(config_set(&cfg, "auth", list, err, sizeof(err)), -1);
	assert_contains(err, "auth");
	assert_int_equal(cfg.auth.n, CONFIG_AUTH_MAX);
}

static void
test_transport_parsed(void **state)
{
	struct mpp_config cfg;
	char err[512];

	config_defaults(&cfg);
	assert_int_equal(cfg.transport.kind, CONFIG_TRANSPORT_sendmail);
	assert_string_equal(cfg.transport.path, "/usr/sbin/sendmail");
	assert_int_equal(cfg.transport.nrelays, 0);
	assert_int_equal(config_set(&cfg, "transport", "smtp:[::1]:2525", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.transport.kind, CONFIG_TRANSPORT_smtp);
	assert_int_equal(cfg.transport.nrelays, 1);
	assert_hostport(&cfg.transport.relay[0],
	    &(struct hp_want){ "::1", 2525 });
	assert_string_equal(cfg.transport.path, "");
	assert_int_equal(config_set(&cfg, "transport", "maildir:/var/mail/a b",
	    err, sizeof(err)), 0);
	assert_int_equal(cfg.transport.kind, CONFIG_TRANSPORT_maildir);
	assert_string_equal(cfg.transport.path, "/var/mail/a b");
	assert_int_equal(cfg.transport.nrelays, 0);
	assert_string_equal(config_transport_name(CONFIG_TRANSPORT_maildir),
	    "maildir");
	/* A path may hold a comma: it is no list. */
	assert_int_equal(config_set(&cfg, "transport", "maildir:/m/a,b",
	    err, sizeof(err)), 0);
	assert_string_equal(cfg.transport.path, "/m/a,b");
	assert_int_equal(cfg.transport.nrelays, 0);
}

/* smtp: and smtps: take an ordered list of relays. */
static void
test_transport_relays(void **state)
{
	struct mpp_config cfg;
	char err[512], list[CONFIG_STR_MAX];
	size_t i;

	config_defaults(&cfg);
	assert_int_equal(config_set(&cfg, "transport",
	    "smtp:mx1.example:25 ,\t[::1]:2525,10.0.0.1:587", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.transport.kind, CONFIG_TRANSPORT_smtp);
	assert_int_equal(cfg.transport.nrelays, 3);
	assert_hostport(&cfg.transport.relay[0],
	    &(struct hp_want){ "mx1.example", 25 });
	assert_hostport(&cfg.transport.relay[1],
	    &(struct hp_want){ "::1", 2525 });
	assert_hostport(&cfg.transport.relay[2],
	    &(struct hp_want){ "10.0.0.1", 587 });
	/* smtp: needs every port; smtps: defaults to 465 (RFC 8314). */
	assert_int_equal(config_set(&cfg, "transport", "smtp:a:25,b", err,
	    sizeof(err)), -1);
	assert_int_equal(cfg.transport.nrelays, 3);
	assert_int_equal(config_set(&cfg, "transport", "smtp:a,b:25", err,
	    sizeof(err)), -1);
	assert_int_equal(config_set(&cfg, "transport", "smtps:a, b:4650",
	    err, sizeof(err)), 0);
	assert_int_equal(cfg.transport.kind, CONFIG_TRANSPORT_smtps);
	assert_int_equal(cfg.transport.nrelays, 2);
	assert_hostport(&cfg.transport.relay[0], &(struct hp_want){ "a", 465 });
	assert_hostport(&cfg.transport.relay[1],
	    &(struct hp_want){ "b", 4650 });
	assert_string_equal(config_transport_name(CONFIG_TRANSPORT_smtps),
	    "smtps");
	/* Empty items, and one relay more than CONFIG_RELAYS_MAX. */
	assert_int_equal(config_set(&cfg, "transport", "smtp:a:25,,b:25",
	    err, sizeof(err)), -1);
	assert_int_equal(config_set(&cfg, "transport", "smtp:a:25,", err,
	    sizeof(err)), -1);
	strlcpy(list, "smtp:", sizeof(list));
	for (i = 0; i < CONFIG_RELAYS_MAX; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		    "%sh%zu:25", i > 0 ? "," : "", i);
	assert_int_equal(config_set(&cfg, "transport", list, err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.transport.nrelays, CONFIG_RELAYS_MAX);
	assert_hostport(&cfg.transport.relay[CONFIG_RELAYS_MAX - 1],
	    &(struct hp_want){ "h7", 25 });
	strlcat(list, ",h:25", sizeof(list));
	assert_int_equal(config_set(&cfg, "transport", list, err,
	    sizeof(err)), -1);
	assert_contains(err, "transport");
	assert_int_equal(cfg.transport.nrelays, CONFIG_RELAYS_MAX);
}

/* smtp_tls, smtp_tls_ca, smtp_auth_file. */
static void
test_smtp_keys(void **state)
{
	static const char *const modes[] = { "none", "may", "encrypt",
	    "verify" };
	struct mpp_config cfg;
	char err[512];
	size_t i;

	config_defaults(&cfg);
	assert_int_equal(cfg.smtp_tls, CONFIG_SMTP_TLS_MAY);
	assert_string_equal(cfg.smtp_tls_ca, "");
	assert_string_equal(cfg.smtp_auth_file, "");
	for (i = 0; i < 4; i++) {
		assert_int_equal(config_set(&cfg, "smtp_tls", modes[i], err,
		    sizeof(err)), 0);
		assert_int_equal(cfg.smtp_tls, (int)i);
	}
	assert_int_equal(config_set(&cfg, "smtp_tls", "yes", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "bad value \"yes\" for smtp_tls");
	assert_int_equal(cfg.smtp_tls, CONFIG_SMTP_TLS_VERIFY);
	assert_int_equal(config_set(&cfg, "smtp_tls", "", err,
	    sizeof(err)), -1);
	assert_int_equal(config_set(&cfg, "smtp_tls_ca", "ca.pem", err,
	    sizeof(err)), -1);
	assert_int_equal(config_set(&cfg, "smtp_tls_ca", "/etc/ca.pem", err,
	    sizeof(err)), 0);
	assert_string_equal(cfg.smtp_tls_ca, "/etc/ca.pem");
	assert_int_equal(config_set(&cfg, "smtp_auth_file", "relays", err,
	    sizeof(err)), -1);
	assert_int_equal(config_set(&cfg, "smtp_auth_file",
	    "/etc/mpp/relays", err, sizeof(err)), 0);
	assert_string_equal(cfg.smtp_auth_file, "/etc/mpp/relays");
}

/* sendmail:PATH ARG...: fixed arguments split on blanks, bounded. */
static void
test_sendmail_args_parsed(void **state)
{
	static const char *const bad[] = {
		"sendmail:/usr/sbin/sendmail -- -x",
		"sendmail:/usr/sbin/sendmail -C\x01/etc",
		"sendmail:/usr/sbin/sendmail -C\x7f",
		"sendmail: /usr/sbin/sendmail",
		"sendmail:-C /usr/sbin/sendmail",
	};
	struct mpp_config cfg;
	char err[512], v[CONFIG_LINE_MAX], word[CONFIG_SENDMAIL_ARG_MAX + 1];
	size_t i;

	config_defaults(&cfg);
	assert_int_equal(cfg.transport.nargs, 0);
	assert_int_equal(config_set(&cfg, "transport",
	    "sendmail:/usr/sbin/sendmail  -C /etc/postfix-out\t-oi", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.transport.kind, CONFIG_TRANSPORT_sendmail);
	assert_string_equal(cfg.transport.path, "/usr/sbin/sendmail");
	assert_int_equal(cfg.transport.nargs, 3);
	assert_string_equal(cfg.transport.args[0], "-C");
	assert_string_equal(cfg.transport.args[1], "/etc/postfix-out");
	assert_string_equal(cfg.transport.args[2], "-oi");
	assert_string_equal(cfg.transport.text,
	    "sendmail:/usr/sbin/sendmail  -C /etc/postfix-out\t-oi");
	assert_int_equal(config_set(&cfg, "transport", "sendmail:/bin/true",
	    err, sizeof(err)), 0);
	assert_int_equal(cfg.transport.nargs, 0);
	/* A maildir path keeps its blanks: only sendmail takes arguments. */
	assert_int_equal(config_set(&cfg, "transport", "maildir:/m/a b", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.transport.nargs, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_set(&cfg, "transport", bad[i], err,
		    sizeof(err)), -1);
		assert_contains(err, "transport");
	}
	/* At most CONFIG_SENDMAIL_ARGS_MAX words... */
	strlcpy(v, "sendmail:/s", sizeof(v));
	for (i = 0; i < CONFIG_SENDMAIL_ARGS_MAX; i++)
		strlcat(v, " -x", sizeof(v));
	assert_int_equal(config_set(&cfg, "transport", v, err, sizeof(err)),
	    0);
	assert_int_equal(cfg.transport.nargs, CONFIG_SENDMAIL_ARGS_MAX);
	strlcat(v, " -y", sizeof(v));
	assert_int_equal(config_set(&cfg, "transport", v, err, sizeof(err)),
	    -1);
	/* ...of at most CONFIG_SENDMAIL_ARG_MAX - 1 bytes. */
	memset(word, 'a', sizeof(word) - 2);
	word[sizeof(word) - 2] = '\0';
	snprintf(v, sizeof(v), "sendmail:/s %s", word);
	assert_int_equal(config_set(&cfg, "transport", v, err, sizeof(err)),
	    0);
	assert_string_equal(cfg.transport.args[0], word);
	strlcat(v, "a", sizeof(v));
	assert_int_equal(config_set(&cfg, "transport", v, err, sizeof(err)),
	    -1);
	assert_string_equal(cfg.transport.path, "/s");
}

static void
test_flags_parsed(void **state)
{
	static const char *const bad_yesno[] = { "", "Yes", "1", "true",
	    "yes " };
	struct mpp_config cfg;
	char err[512];
	size_t i;

	config_defaults(&cfg);
	assert_int_equal(cfg.require_tls, 0);
	assert_int_equal(cfg.tls_min_version, CONFIG_TLS_1_2);
	assert_int_equal(config_set(&cfg, "require_tls", "yes", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.require_tls, 1);
	for (i = 0; i < sizeof(bad_yesno) / sizeof(bad_yesno[0]); i++) {
		assert_int_equal(config_set(&cfg, "require_tls", bad_yesno[i],
		    err, sizeof(err)), -1);
		assert_contains(err, "require_tls");
		assert_int_equal(cfg.require_tls, 1);
	}
	assert_int_equal(config_set(&cfg, "require_tls", "no", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.require_tls, 0);
	assert_int_equal(config_set(&cfg, "tls_min_version", "1.3", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.tls_min_version, CONFIG_TLS_1_3);
	assert_int_equal(config_set(&cfg, "tls_min_version", "1.1", err,
	    sizeof(err)), -1);
	assert_int_equal(cfg.tls_min_version, CONFIG_TLS_1_3);
}

/* The log key: its destination and path, parsed at load. */
static void
test_log_parsed(void **state)
{
	struct mpp_config cfg;
	char err[512];

	config_defaults(&cfg);
	assert_int_equal(cfg.log.to, LOG_TO_SYSLOG);
	assert_string_equal(cfg.log.path, "");
	assert_int_equal(config_set(&cfg, "log", "file:/var/log/mpp.log", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.log.to, LOG_TO_FILE);
	assert_string_equal(cfg.log.path, "/var/log/mpp.log");
	assert_int_equal(config_set(&cfg, "log", "file:rel", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "bad value \"file:rel\" for log");
	assert_int_equal(cfg.log.to, LOG_TO_FILE);
	assert_string_equal(cfg.log.path, "/var/log/mpp.log");
	assert_int_equal(config_set(&cfg, "log", "stderr", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.log.to, LOG_TO_STDERR);
	assert_string_equal(cfg.log.path, "");
}

/* A bad value changes nothing at all, however far its parse got. */
static void
test_bad_value_changes_nothing(void **state)
{
	static const struct {
		const char *key, *value;
	} bad[] = {
		{ "listen", "127.0.0.1:218,[::1]:0" },
		{ "listen_tls", "127.0.0.1:465,bad" },
		{ "auth", "file:/x,pop3:h,ldap:h" },
		{ "auth", "ftp:h,file:rel" },
		{ "transport", "smtp:h" },
		{ "require_tls", "maybe" },
		{ "tls_min_version", "1.0" },
	};
	struct mpp_config *cfg, *before;
	char err[512];
	size_t i;

	cfg = malloc(sizeof(*cfg));
	before = malloc(sizeof(*before));
	assert_non_null(cfg);
	assert_non_null(before);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(cfg, 0x5a, sizeof(*cfg));
		config_defaults(cfg);
		memcpy(before, cfg, sizeof(*cfg));
		assert_int_equal(config_set(cfg, bad[i].key, bad[i].value, err,
		    sizeof(err)), -1);
		assert_contains(err, bad[i].key);
		assert_memory_equal(cfg, before, sizeof(*cfg));
	}
	free(cfg);
	free(before);
}

/*
 * hostname goes into every Received: and Message-ID:, and is the default
 * sender_domain: an empty one, or one with blanks or control characters,
 * is a bad value (DESIGN.md: "a bad value is a clear error").
 */
static void
test_hostname_checked(void **state)
{
	static const char *const bad[] = { "", "mpp example", "mpp\x01",
	    "mpp\rX-Injected: 1" };
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[512], addr[64];
	size_t i;

	/* Regression: config.c gives hostname (and sender_domain) no check.
	 * Input: "hostname =" in the file. Now: config_load fails
	 * naming file:1 and hostname. It was: accepted; sender_domain falls
	 * back to the empty hostname and config_user_address() makes the
	 * envelope sender "alice@", Received: says "by  (mppd)". */
	write_file(t->path, "hostname =\n");
	if (config_load(&cfg, t->path, 1, NULL, 0, err, sizeof(err)) == 0) {
		assert_int_equal(config_user_address(&cfg, "alice", addr,
		    sizeof(addr)), 0);
		print_error("empty hostname accepted: sender \"%s\"\n", addr);
		fail();
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		config_defaults(&cfg);
		if (config_set(&cfg, "hostname", bad[i], err,
		    sizeof(err)) == 0) {
			print_error("hostname \"%s\" accepted\n", bad[i]);
			fail();
		}
	}
}

/* Files. */

static void
test_file(void **state)
{
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[512] = "";

	write_file(t->path,
	    "# mpp.conf\n"
	    "\n"
	    "spool_dir = /srv/mpp/spool\n"
	    "listen=127.0.0.1:2180\n"
	    "  hostname\t=\tmx.example.org   \n"
	    "idle_timeout = 60   # seconds\n"
	    "max_message_size = 2048\r\n"
	    "auth = pop3:[::1]:110\n"
	    "user =\n"
	    "transport = maildir:/var/mail/x\n"
	    "idle_timeout = 90\n"
	    "concurrency = 8");		/* no final LF */
	assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
	    sizeof(err)), 0);
	assert_string_equal(cfg.spool_dir, "/srv/mpp/spool");
	assert_string_equal(cfg.listen.text, "127.0.0.1:2180");
	assert_string_equal(cfg.hostname, "mx.example.org");
	assert_string_equal(cfg.sender_domain, "mx.example.org");
	assert_int_equal(cfg.idle_timeout, 90);	/* the last one wins */
	assert_int_equal(cfg.max_message_size, 2048);
	assert_string_equal(cfg.auth.text, "pop3:[::1]:110");
	assert_string_equal(cfg.user, "");
	assert_string_equal(cfg.transport.text, "maildir:/var/mail/x");
	assert_int_equal(cfg.concurrency, 8);
	assert_int_equal(cfg.retry_min, 60);	/* untouched: default */
}

static void
test_sender_domain_given(void **state)
{
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[512] = "";

	write_file(t->path, "sender_domain = example.org\n"
	    "hostname = mx.example.org\n");
	assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
	    sizeof(err)), 0);
	assert_string_equal(cfg.sender_domain, "example.org");
	assert_string_equal(cfg.hostname, "mx.example.org");
}

/* Errors name the file, the line and the key. */
struct file_error_case {
	const char *text;
	const char *where;	/* after the path: ":LINE" */
	const char *parts[3];	/* also in the message */
};

static const struct file_error_case file_errors[] = {
	{ "idle_timeout = 5\n\n# c\nbogus_key = 1\n", ":4",
	  { "bogus_key", "unknown", NULL } },
	{ "listen = 0.0.0.0:218\nidle_timeout = soon\n", ":2",
	  { "idle_timeout", "soon", NULL } },
	{ "idle_timeout = 0\n", ":1", { "idle_timeout", "1", "86400" } },
	{ "login_timeout = 60\nlogin_timeout = 7200\n", ":2",
	  { "login_timeout", "7200", "3600" } },
	{ "login_timeout = -1\n", ":1", { "login_timeout", "-1", NULL } },
	{ "\n\nlisten = 0.0.0.0\n", ":3", { "listen", "0.0.0.0", NULL } },
	{ "auth = ldap:x\n", ":1", { "auth", "ldap:x", NULL } },
	{ "transport = smtp:host\n", ":1", { "transport", NULL, NULL } },
	{ "spool_dir = var/spool\n", ":1", { "spool_dir", NULL, NULL } },
	{ "just some words\n", ":1", { "key = value", NULL, NULL } },
	{ "= 5\n", ":1", { "key = value", NULL, NULL } },
	{ "a = 1 = 2\n", ":1", { "a", NULL, NULL } },
	{ "concurrency = 4\n# fine\nconcurrency = 300\n", ":3",
	  { "concurrency", "300", NULL } },
};

static void
test_file_errors(void **state)
{
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[1024], where[PATH_MAX + 16];
	size_t i, j;

	for (i = 0; i < sizeof(file_errors) / sizeof(file_errors[0]); i++) {
		const struct file_error_case *c = &file_errors[i];

		write_file(t->path, c->text);
		err[0] = '\0';
		assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
		    sizeof(err)), -1);
		snprintf(where, sizeof(where), "%s%s:", t->path, c->where);
		assert_contains(err, where);
		for (j = 0; j < 3 && c->parts[j] != NULL; j++)
			assert_contains(err, c->parts[j]);
		assert_null(strchr(err, '\n'));
	}
}

/*
 * The message names file and line, then the key, each once: "FILE:3:
 * unknown key bogus_key", not "FILE:3: key bogus_key: unknown key
 * bogus_key".
 */
static void
test_file_error_names_key_once(void **state)
{
	static const struct {
		const char *line, *msg;
	} cases[] = {
		{ "bogus_key = 1", "unknown key bogus_key" },
		{ "idle_timeout = soon", "bad value \"soon\" for idle_timeout "
		  "(a whole number from 1 to 86400)" },
		{ "listen = 0.0.0.0", "bad value \"0.0.0.0\" for listen" },
	};
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[1024], want[PATH_MAX + 128], text[128];
	char *over[] = { (char[]){ "listen=218" } };
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "user = mpp\n\n%s\n",
		    cases[i].line);
		write_file(t->path, text);
		assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
		    sizeof(err)), -1);
		snprintf(want, sizeof(want), "%s:3: %s", t->path,
		    cases[i].msg);
		assert_string_equal(err, want);
	}
	write_file(t->path, "user = mpp\n");
	assert_int_equal(config_load(&cfg, t->path, 1, over, 1, err,
	    sizeof(err)), -1);
	assert_string_equal(err,
	    "command line (-o 1): bad value \"218\" for listen");
}

static void
test_line_too_long(void **state)
{
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[1024], where[PATH_MAX + 16];
	static const char head[] = "user = mpp\nhostname = ";
	char *text;
	size_t n = CONFIG_LINE_MAX + 100, p = sizeof(head) - 1;

	text = malloc(p + n + 2);
	assert_non_null(text);
	memcpy(text, head, p);
	memset(text + p, 'h', n);
	text[p + n] = '\n';
	text[p + n + 1] = '\0';
	write_file(t->path, text);
	free(text);
	assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
	    sizeof(err)), -1);
	snprintf(where, sizeof(where), "%s:2", t->path);
	assert_contains(err, where);
	assert_contains(err, "too long");
}

static void
test_missing_file(void **state)
{
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[1024] = "", missing[PATH_MAX + 16];

	snprintf(missing, sizeof(missing), "%s/none.conf", t->dir);
	assert_int_equal(config_load(&cfg, missing, 1, NULL, 0, err,
	    sizeof(err)), -1);
	assert_contains(err, missing);
	/* Not named by the user: a missing file means the defaults. */
	assert_int_equal(config_load(&cfg, missing, 0, NULL, 0, err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.idle_timeout, 300);
	/* A directory is no config file, named or not. */
	assert_int_equal(config_load(&cfg, t->dir, 0, NULL, 0, err,
	    sizeof(err)), -1);
}

static void
test_retry_order(void **state)
{
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[1024] = "";

	write_file(t->path, "retry_min = 600\nretry_max = 60\n");
	assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
	    sizeof(err)), -1);
	assert_contains(err, "retry_max");
	write_file(t->path, "retry_min = 600\nretry_max = 600\n");
	assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
	    sizeof(err)), 0);
}

/* A PROXY port needs the balancers it trusts; its TLS form a key. */
static void
test_proxy_needs(void **state)
{
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[1024] = "";

	write_file(t->path, "proxy_listen = 127.0.0.1:2181\n");
	assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
	    sizeof(err)), -1);
	assert_contains(err, "proxy_listen");
	assert_contains(err, "proxy_trusted");
	write_file(t->path, "proxy_listen_tls = 127.0.0.1:2182\n"
	    "proxy_trusted = 127.0.0.1\n");
	assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
	    sizeof(err)), -1);
	assert_contains(err, "proxy_listen_tls");
	assert_contains(err, "tls_cert");
	write_file(t->path, "proxy_listen = 127.0.0.1:2181\n"
	    "proxy_trusted = 127.0.0.1, 10.1.0.0/16\n");
	assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
	    sizeof(err)), 0);
	/* parsed at load into the list the server matches against */
	assert_int_equal(cfg.proxy_trusted.n, 2);
	assert_true(cidr_list_match_text(&cfg.proxy_trusted, "10.1.2.3"));
	assert_false(cidr_list_match_text(&cfg.proxy_trusted, "10.2.0.1"));
	assert_int_equal(cfg.proxy_listen.n, 1);
	assert_int_equal(cfg.proxy_listen.addr[0].port, 2181);
	/* Trusting without a PROXY port is harmless. */
	write_file(t->path, "proxy_trusted = 127.0.0.1\n");
	assert_int_equal(config_load(&cfg, t->path, 1, NULL, 0, err,
	    sizeof(err)), 0);
}

/* -o overrides. */

static void
test_overrides(void **state)
{
	struct tmp *t = *state;
	struct mpp_config cfg;
	char err[1024] = "";
	/* config_load takes char *const *, as argv gives them. */
	char *ok[] = { (char[]){ "idle_timeout=30" },
	    (char[]){ " listen = [::1]:2180 " },
	    (char[]){ "idle_timeout = 45" },
	    (char[]){ "sender_domain=example.net" } };
	char *bad_value[] = { (char[]){ "idle_timeout=30" },
	    (char[]){ "idle_timeout=never" } };
	char *bad_key[] = { (char[]){ "nosuchkey=1" } };
	char *no_eq[] = { (char[]){ "user=x" }, (char[]){ "user" } };

	write_file(t->path, "idle_timeout = 10\nlisten = 0.0.0.0:218\n");
	assert_int_equal(config_load(&cfg, t->path, 1, ok, 4, err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.idle_timeout, 45);
	assert_string_equal(cfg.listen.text, "[::1]:2180");
	assert_string_equal(cfg.sender_domain, "example.net");

	assert_int_equal(config_load(&cfg, t->path, 1, bad_value, 2, err,
	    sizeof(err)), -1);
	assert_contains(err, "-o 2");
	assert_contains(err, "idle_timeout");
	assert_contains(err, "never");
	assert_int_equal(config_load(&cfg, NULL, 0, bad_key, 1, err,
	    sizeof(err)), -1);
	assert_contains(err, "-o 1");
	assert_contains(err, "nosuchkey");
	assert_int_equal(config_load(&cfg, NULL, 0, no_eq, 2, err,
	    sizeof(err)), -1);
	assert_contains(err, "-o 2");
	/* An override can make the file's retry bounds consistent. */
	{
		char *fix[] = { (char[]){ "retry_max=7200" } };

		write_file(t->path, "retry_min = 5000\n");
		assert_int_equal(config_load(&cfg, t->path, 1, fix, 1, err,
		    sizeof(err)), 0);
		assert_int_equal(cfg.retry_max, 7200);
	}
}

/* config_path: -c, then $MPP_CONFIG, then the default. */
static void
test_config_path(void **state)
{
	int explicit_path = -1;

	unsetenv("MPP_CONFIG");
	assert_string_equal(config_path("/x/y.conf", &explicit_path),
	    "/x/y.conf");
	assert_int_equal(explicit_path, 1);
	assert_string_equal(config_path(NULL, &explicit_path),
	    CONFIG_DEFAULT_PATH);
	assert_int_equal(explicit_path, 0);
	setenv("MPP_CONFIG", "/env/mpp.conf", 1);
	assert_string_equal(config_path(NULL, &explicit_path),
	    "/env/mpp.conf");
	assert_int_equal(explicit_path, 1);
	assert_string_equal(config_path("/x/y.conf", &explicit_path),
	    "/x/y.conf");
	setenv("MPP_CONFIG", "", 1);
	assert_string_equal(config_path(NULL, &explicit_path),
	    CONFIG_DEFAULT_PATH);
	assert_int_equal(explicit_path, 0);
	unsetenv("MPP_CONFIG");
}

/* config_split_hostport. */

struct hp_case {
	const char *in;
	size_t len;		/* 0: strlen(in) */
	int rc;
	const char *host;
	int port;
};

static const struct hp_case hp_cases[] = {
	{ "192.0.2.1:218", 0, 0, "192.0.2.1", 218 },
	{ "mx.example.org:25", 0, 0, "mx.example.org", 25 },
	{ "localhost", 0, 0, "localhost", 9999 },
	{ "[::1]:218", 0, 0, "::1", 218 },
	{ "[2001:db8::1]:1", 0, 0, "2001:db8::1", 1 },
	{ "[2001:db8::1]", 0, 0, "2001:db8::1", 9999 },
	{ "[::ffff:192.0.2.1]:65535", 0, 0, "::ffff:192.0.2.1", 65535 },
	{ "host:00025", 0, 0, "host", 25 },
	{ "host:218junk", 8, 0, "host", 218 },	/* only len bytes */
	{ "[::1]:218x", 9, 0, "::1", 218 },
	{ "", 0, -1, NULL, 0 },
	{ ":218", 0, -1, NULL, 0 },
	{ "host:", 0, -1, NULL, 0 },
	{ "host:0", 0, -1, NULL, 0 },
	{ "host:65536", 0, -1, NULL, 0 },
	{ "host:99999999", 0, -1, NULL, 0 },
	{ "host:-1", 0, -1, NULL, 0 },
	{ "host:+1", 0, -1, NULL, 0 },
	{ "host: 25", 0, -1, NULL, 0 },
	{ "host:25 ", 0, -1, NULL, 0 },
	{ "host:2x5", 0, -1, NULL, 0 },
	{ "host:smtp", 0, -1, NULL, 0 },
	{ "host:25:26", 0, -1, NULL, 0 },
	{ "::1", 0, -1, NULL, 0 },
	{ "::1:218", 0, -1, NULL, 0 },
	{ "2001:db8::1", 0, -1, NULL, 0 },
	{ "[::1", 0, -1, NULL, 0 },
	{ "[", 0, -1, NULL, 0 },
	{ "[]", 0, -1, NULL, 0 },
	{ "[]:218", 0, -1, NULL, 0 },
	{ "[::1]:", 0, -1, NULL, 0 },
	{ "[::1]218", 0, -1, NULL, 0 },
	{ "[::1]x:218", 0, -1, NULL, 0 },
	{ "[::1]:0", 0, -1, NULL, 0 },
	{ "[::1]:65536", 0, -1, NULL, 0 },
};

static void
test_split_hostport(void **state)
{
	char host[64];
	size_t i;

	for (i = 0; i < sizeof(hp_cases) / sizeof(hp_cases[0]); i++) {
		const struct hp_case *c = &hp_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		char *copy = malloc(len + 1);
		int port = -1, rc;

		/* An exact copy: no byte past len may be read. */
		assert_non_null(copy);
		memcpy(copy, c->in, len);
		strcpy(host, "unset");
		rc = config_split_hostport(copy, len, host, sizeof(host),
		    &port, 9999);
		free(copy);
		if (rc != c->rc || (rc == 0 && (strcmp(host, c->host) != 0 ||
		    port != c->port))) {
			print_error("\"%.*s\": rc %d host \"%s\" port %d, want "
			    "%d \"%s\" %d\n", (int)len, c->in, rc, host, port,
			    c->rc, c->host != NULL ? c->host : "", c->port);
			fail();
		}
	}
}

/* The host must fit hostsz with its NUL. */
static void
test_split_hostport_small(void **state)
{
	char host[8];
	int port;

	assert_int_equal(config_split_hostport("1234567:25", 10, host,
	    sizeof(host), &port, 0), 0);
	assert_string_equal(host, "1234567");
	assert_int_equal(config_split_hostport("12345678:25", 11, host,
	    sizeof(host), &port, 0), -1);
	assert_int_equal(config_split_hostport("[1:2:3:4]:25", 12, host,
	    sizeof(host), &port, 0), 0);
	assert_string_equal(host, "1:2:3:4");
	assert_int_equal(config_split_hostport("[1:2:3:45]:25", 13, host,
	    sizeof(host), &port, 0), -1);
}

static void
test_user_address(void **state)
{
	struct mpp_config cfg;
	char out[64];

	config_defaults(&cfg);
	snprintf(cfg.sender_domain, sizeof(cfg.sender_domain), "example.org");
	assert_int_equal(config_user_address(&cfg, "alice", out, sizeof(out)),
	    0);
	assert_string_equal(out, "alice@example.org");
	assert_int_equal(config_user_address(&cfg, "bob@other.example", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "bob@other.example");
	/* Exactly fits (17 bytes and NUL), then one byte short. */
	assert_int_equal(config_user_address(&cfg, "alice", out, 18), 0);
	assert_int_equal(config_user_address(&cfg, "alice", out, 17), -1);
	assert_int_equal(config_user_address(&cfg, "bob@x.example", out, 13),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_long_keys),
		cmocka_unit_test(test_string_keys),
		cmocka_unit_test(test_unknown_key_set),
		cmocka_unit_test(test_checked_values),
		cmocka_unit_test(test_listen_parsed),
		cmocka_unit_test(test_auth_parsed),
		cmocka_unit_test(test_transport_parsed),
		cmocka_unit_test(test_transport_relays),
		cmocka_unit_test(test_smtp_keys),
		cmocka_unit_test(test_sendmail_args_parsed),
		cmocka_unit_test(test_flags_parsed),
		cmocka_unit_test(test_log_parsed),
		cmocka_unit_test(test_bad_value_changes_nothing),
		cmocka_unit_test_setup_teardown(test_file, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_sender_domain_given,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_error_names_key_once,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_line_too_long, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_proxy_needs, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_retry_order, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_overrides, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(test_hostname_checked,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test(test_config_path),
		cmocka_unit_test(test_split_hostport),
		cmocka_unit_test(test_split_hostport_small),
		cmocka_unit_test(test_user_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
