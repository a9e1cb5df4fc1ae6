/*
 * Fuzz target for common/config.c: the input is loaded as a config file
 * (through a memfd, so no disk is touched), then each of its lines is
 * given as a -o override, then its first line is split as HOST:PORT.
 *
 * A load that succeeds leaves a sane config: strings NUL-terminated within
 * their arrays, numbers in range, spool_dir absolute, retry_min <=
 * retry_max, every listen address with a host and a port, every auth
 * backend and the transport of a known kind with a path or a server, the
 * log a known destination with a path for a file. A load that fails
 * leaves a one-line message. The split
 * never writes past hostsz and gives a port from 1 to 65535 (or the
 * default).
 */

#include <sys/mman.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ERR_SIZE 200	/* small, so long messages are cut */

static int
str_ok(const char *s)
{
	return memchr(s, '\0', CONFIG_STR_MAX) != NULL;
}

static void
check_hostport(const struct config_hostport *hp)
{
	CHECK(str_ok(hp->host) && hp->host[0] != '\0');
	CHECK(hp->port >= 1 && hp->port <= 65535);
}

/* Every listen address has a host and a port. */
static void
check_listen(const struct config_listen *l, int may_be_empty)
{
	size_t i;

	CHECK(str_ok(l->text));
	CHECK(l->n <= CONFIG_LISTEN_MAX && (l->n > 0 || may_be_empty));
	CHECK((l->n == 0) == (l->text[0] == '\0'));
	for (i = 0; i < l->n; i++)
		check_hostport(&l->addr[i]);
}

/* Each backend of a known kind, with an absolute path or a server. */
static void
check_auth(const struct config_auth *a)
{
	size_t i;

	CHECK(str_ok(a->text));
	CHECK(a->n >= 1 && a->n <= CONFIG_AUTH_MAX);
	for (i = 0; i < a->n; i++) {
		CHECK((size_t)a->b[i].kind < CONFIG_AUTH_KINDS);
		if (a->b[i].kind == CONFIG_AUTH_file)
			CHECK(a->b[i].path[0] == '/' && str_ok(a->b[i].path));
		else
			check_hostport(&a->b[i].server);
	}
}

static void
check_transport(const struct config_transport *t)
{
	CHECK(str_ok(t->text) && str_ok(t->path));
	CHECK((size_t)t->kind < CONFIG_TRANSPORT_KINDS);
	if (t->kind == CONFIG_TRANSPORT_smtp ||
	    t->kind == CONFIG_TRANSPORT_smtps) {
		size_t i;

		CHECK(t->nrelays >= 1 && t->nrelays <= CONFIG_RELAYS_MAX);
		for (i = 0; i < t->nrelays; i++)
			check_hostport(&t->relay[i]);
	} else
		CHECK(t->nrelays == 0 && t->path[0] == '/');
}

static void
check_config(const struct mpp_config *c)
{
	const long *longs[] = { &c->idle_timeout, &c->login_timeout,
	    &c->max_message_size,
	    &c->max_sessions, &c->max_sessions_per_ip, &c->max_recipients,
	    &c->queue_interval, &c->retry_min, &c->retry_max,
	    &c->max_queue_lifetime, &c->concurrency, &c->lease_time,
	    &c->sent_retention, &c->auth_timeout, &c->auth_cache_ttl,
	    &c->auth_fail_limit, &c->auth_fail_window, &c->delivery_timeout };
	size_t i;

	CHECK(str_ok(c->spool_dir) && str_ok(c->user) &&
	    str_ok(c->hostname) && str_ok(c->sender_domain));
	for (i = 0; i < sizeof(longs) / sizeof(longs[0]); i++)
		CHECK(*longs[i] >= 0 && *longs[i] <= 1073741824L);
	CHECK(c->idle_timeout >= 1 && c->max_message_size >= 1024);
	CHECK(c->login_timeout >= 1 && c->login_timeout <= 3600);
	CHECK(c->max_sessions >= 1 && c->max_recipients >= 1);
	CHECK(c->concurrency >= 1 && c->concurrency <= 256);
	CHECK(c->retry_min >= 1 && c->retry_min <= c->retry_max);
	CHECK(c->spool_dir[0] == '/');
	check_listen(&c->listen, 0);
	check_listen(&c->listen_tls, 1);
	check_auth(&c->auth);
	check_transport(&c->transport);
	CHECK(c->require_tls == 0 || c->require_tls == 1);
	CHECK(str_ok(c->log.text) && str_ok(c->log.path));
	CHECK(c->log.to == LOG_TO_SYSLOG || c->log.to == LOG_TO_STDERR ||
	    c->log.to == LOG_TO_FILE);
	CHECK((c->log.to == LOG_TO_FILE) == (c->log.path[0] == '/'));
	CHECK(c->tls_min_version == CONFIG_TLS_1_2 ||
	    c->tls_min_version == CONFIG_TLS_1_3);
}

static void
check_err(const char *err)
{
	size_t n = strnlen(err, ERR_SIZE);

	CHECK(n > 0 && n < ERR_SIZE);
	CHECK(memchr(err, '\n', n) == NULL);
}

/* Load data as the file at path; check the outcome. */
static void
load_file(const char *path)
{
	struct mpp_config cfg;
	char err[ERR_SIZE], addr[64];

	memset(err, 0, sizeof(err));
	if (config_load(&cfg, path, 1, NULL, 0, err, sizeof(err)) == 0) {
		check_config(&cfg);
		if (config_user_address(&cfg, "alice", addr, sizeof(addr)) == 0)
			CHECK(strlen(addr) < sizeof(addr));
	} else
		check_err(err);
}

/* Each line (up to CONFIG_OVERRIDES_MAX) as a -o override. */
static void
load_overrides(const uint8_t *data, size_t size)
{
	char *lines[CONFIG_OVERRIDES_MAX];
	struct mpp_config cfg;
	char err[ERR_SIZE];
	size_t n = 0, off = 0, len, i;
	const uint8_t *nl;

	while (off < size && n < CONFIG_OVERRIDES_MAX) {
		nl = memchr(data + off, '\n', size - off);
		len = nl != NULL ? (size_t)(nl - (data + off)) : size - off;
		lines[n] = malloc(len + 1);
		CHECK(lines[n] != NULL);
		memcpy(lines[n], data + off, len);
		lines[n][len] = '\0';
		n++;
		off += len + 1;
	}
	memset(err, 0, sizeof(err));
	if (config_load(&cfg, NULL, 0, lines, n, err, sizeof(err)) == 0)
		check_config(&cfg);
	else
		check_err(err);
	for (i = 0; i < n; i++)
		free(lines[i]);
}

/*
 * The first line as HOST:PORT, into host buffers of a few sizes. It ends
 * at a NUL too: every caller hands over a C string (a config value, an
 * argument), so bytes after a NUL never reach the function.
 */
static void
split_first_line(const uint8_t *data, size_t size)
{
	static const size_t sizes[] = { 1, 2, 8, 64, 300 };
	const uint8_t *nl = memchr(data, '\n', size);
	size_t len = nl != NULL ? (size_t)(nl - data) : size, i;
	const uint8_t *nul = memchr(data, '\0', len);

	if (nul != NULL)
		len = (size_t)(nul - data);
	char *copy, host[300 + 1];
	int port;

	copy = malloc(len > 0 ? len : 1);
	CHECK(copy != NULL);
	memcpy(copy, data, len);	/* exact: ASan sees a read past len */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(host, 'Z', sizeof(host));
		port = -1;
		if (config_split_hostport(copy, len, host, sizes[i], &port,
		    4242) == 0) {
			CHECK(memchr(host, '\0', sizes[i]) != NULL);
			CHECK(strlen(host) > 0);
			CHECK(port == 4242 || (port >= 1 && port <= 65535));
		}
		CHECK(host[sizes[i]] == 'Z');
	}
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];

	if (fd == -1) {
		fd = memfd_create("fuzz_config", MFD_CLOEXEC);
		CHECK(fd != -1);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(size == 0 ||
	    pwrite(fd, data, size, 0) == (ssize_t)size);
	load_file(path);
	load_overrides(data, size);
	split_first_line(data, size);
	return 0;
}
