/*
 * Unit tests for mppqueue/transport_maildir.c: one copy per recipient,
 * each naming only its own recipient, durably in new/ with nothing left
 * in tmp/, and a result per recipient; failures leave no file behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "../../mppqueue/transport.h"

#define TEXT "Received: from [192.0.2.7] (user alice)\n" \
	"To: bob@example.com\nSubject: s\n\nbody\n"

struct fixture {
	char dir[64];		/* the maildir */
	char sub[3][80];	/* its tmp, new, cur */
	int fd;			/* the spool file with TEXT */
	void *md;
};

static int
setup(void **state)
{
	static const char *const names[] = { "tmp", "new", "cur" };
	struct mpp_config cfg;
	struct fixture *fx;
	char err[256], spool[] = "/tmp/mpp-md-spool-XXXXXX";
	char value[CONFIG_STR_MAX];
	size_t i;

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/mpp-md-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	for (i = 0; i < 3; i++)
		snprintf(fx->sub[i], sizeof(fx->sub[i]), "%s/%s", fx->dir,
		    names[i]);
	fx->fd = mkstemp(spool);
	assert_true(fx->fd != -1);
	unlink(spool);
	assert_int_equal(write(fx->fd, TEXT, strlen(TEXT)),
	    (ssize_t)strlen(TEXT));
	config_defaults(&cfg);
	strcpy(cfg.hostname, "mpp.test");
	snprintf(value, sizeof(value), "maildir:%s", fx->dir);
	assert_int_equal(config_set(&cfg, "transport", value, err,
	    sizeof(err)), 0);
	fx->md = transport_maildir_ops.open(&cfg, err, sizeof(err));
	assert_non_null(fx->md);
	*state = fx;
	return 0;
}

/* The files of directory path, read whole, in no order; n set. */
static char **
files_of(const char *path, size_t *n)
{
	char **out = NULL, full[512], buf[4096];
	struct dirent *e;
	DIR *d;
	ssize_t len;
	int fd;

	*n = 0;
	assert_non_null(d = opendir(path));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
		assert_true((fd = open(full, O_RDONLY)) != -1);
		len = read(fd, buf, sizeof(buf) - 1);
		assert_true(len >= 0);
		buf[len] = '\0';
		close(fd);
		out = realloc(out, (*n + 1) * sizeof(*out));
		assert_non_null(out);
		assert_non_null(out[(*n)++] = strdup(buf));
	}
	closedir(d);
	return out;
}

static void
files_free(char **f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(f[i]);
	free(f);
}

static void
remove_dir(const char *path)
{
	char full[512];
	struct dirent *e;
	DIR *d;

	if ((d = opendir(path)) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
			unlink(full);
		}
	closedir(d);
	rmdir(path);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	size_t i;

	transport_maildir_ops.close(fx->md);
	close(fx->fd);
	for (i = 0; i < 3; i++)
		remove_dir(fx->sub[i]);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/*
 * Three recipients, one of them Bcc to the poster's mind: three copies,
 * each with the message and only its own recipient in X-Envelope-To:.
 */
static void
test_copy_per_recipient(void **state)
{
	static const char *const addrs[] = { "bob@example.com",
	    "carol@example.net", "dave@example.com" };
	struct fixture *fx = *state;
	struct transport_msg m = { "1.M1P1Q1", "alice@example.org", fx->fd,
	    (off_t)strlen(TEXT) };
	struct transport_rcpt r[3];
	char want[256], **files;
	size_t i, j, n, found[3] = { 0 };

	memset(r, 0, sizeof(r));
	for (i = 0; i < 3; i++)
		r[i].addr = addrs[i];
	transport_maildir_ops.deliver(fx->md, &m, r, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(r[i].result, OUTCOME_OK);
		assert_non_null(strstr(r[i].reply, "delivered to maildir as "));
		for (j = 0; j < i; j++)
			assert_string_not_equal(r[i].reply, r[j].reply);
	}
	files = files_of(fx->sub[1], &n);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++)
		for (j = 0; j < 3; j++) {
			snprintf(want, sizeof(want), "Return-Path: "
			    "<alice@example.org>\nX-Envelope-To: <%s>\n" TEXT,
			    addrs[j]);
			if (strcmp(files[i], want) == 0)
				found[j]++;
		}
	for (j = 0; j < 3; j++)
		assert_int_equal(found[j], 1);
	files_free(files, n);
	files = files_of(fx->sub[0], &n);
	assert_int_equal(n, 0);
	files_free(files, n);
}

/* A copy that cannot be written: that recipient is deferred, no file. */
static void
test_failure_leaves_nothing(void **state)
{
	struct fixture *fx = *state;
	struct transport_msg m = { "1.M1P1Q1", "alice@example.org", -1, 0 };
	struct transport_rcpt r[2];
	char **files;
	size_t i, n, k;

	memset(r, 0, sizeof(r));
	r[0].addr = "bob@example.com";
	r[1].addr = "carol@example.net";
	/* The spool file unreadable: each copy fails after its creation. */
	transport_maildir_ops.deliver(fx->md, &m, r, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(r[i].result, OUTCOME_TEMP);
		assert_string_equal(r[i].reply, "maildir: Bad file descriptor");
	}
	for (k = 0; k < 2; k++) {
		files = files_of(fx->sub[k], &n);
		assert_int_equal(n, 0);
		files_free(files, n);
	}
	/* tmp/ gone: each copy fails before it exists. */
	assert_int_equal(rmdir(fx->sub[0]), 0);
	m.fd = fx->fd;
	transport_maildir_ops.deliver(fx->md, &m, r, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(r[i].result, OUTCOME_TEMP);
		assert_string_equal(r[i].reply,
		    "maildir: No such file or directory");
	}
	files = files_of(fx->sub[1], &n);
	assert_int_equal(n, 0);
	files_free(files, n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_copy_per_recipient,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_leaves_nothing,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
