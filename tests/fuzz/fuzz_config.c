/*
 * Fuzz target for common/config.c: the input is loaded as a config file
 * (through a memfd, so no disk is touched), then each of its lines is
 * given as a -o override, then its first line is split as HOST:PORT.
 *
 * A load that succeeds leaves a sane config: strings NUL-terminated within
 * their arrays, numbers in range, spool_dir absolute, retry_min <=
 * retry_max, every listen item a HOST:PORT with a port, auth and transport
 * of a known kind. A load that fails leaves a one-line message. The split
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
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ERR_SIZE 200	/* small, so long messages are cut */

static int
str_ok(const char *s)
{
	return memchr(s, '\0', CONFIG_STR_MAX) != NULL;
}

/* Each comma-separated item of a listen value splits with a port. */
static void
check_listen(const char *v)
{
	const char *p = v, *comma, *e;
	char host[256];
	int port;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		comma = strchr(p, ',');
		e = comma != NULL ? comma : p + strlen(p);
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		CHECK(config_split_hostport(p, (size_t)(e - p), host,
		    sizeof(host), &port, 0) == 0);
		CHECK(port >= 1 && port <= 65535);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
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

	CHECK(str_ok(c->spool_dir) && str_ok(c->listen) && str_ok(c->user) &&
	    str_ok(c->hostname) && str_ok(c->sender_domain) &&
	    str_ok(c->auth) && str_ok(c->transport));
	for (i = 0; i < sizeof(longs) / sizeof(longs[0]); i++)
		CHECK(*longs[i] >= 0 && *longs[i] <= 1073741824L);
	CHECK(c->idle_timeout >= 1 && c->max_message_size >= 1024);
	CHECK(c->login_timeout >= 1 && c->login_timeout <= 3600);
	CHECK(c->max_sessions >= 1 && c->max_recipients >= 1);
	CHECK(c->concurrency >= 1 && c->concurrency <= 256);
	CHECK(c->retry_min >= 1 && c->retry_min <= c->retry_max);
	CHECK(c->spool_dir[0] == '/');
	check_listen(c->listen);
	CHECK(strncmp(c->auth, "file:", 5) == 0 ||
	    strncmp(c->auth, "pop3:", 5) == 0 ||
	    strncmp(c->auth, "ftp:", 4) == 0);
	CHECK(strncmp(c->transport, "smtp:", 5) == 0 ||
	    strncmp(c->transport, "sendmail:/", 10) == 0 ||
	    strncmp(c->transport, "maildir:/", 9) == 0);
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
