/* tmpdir — see tmpdir.h. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tmpdir.h"

void
tmpdir_make(char *dir, size_t dirsz, const char *name)
{
	const char *base = getenv("TMPDIR");
	int n;

	n = snprintf(dir, dirsz, "%s/mpp-test-%s.XXXXXX",
	    base != NULL && *base != '\0' ? base : "/tmp", name);
	assert_true(n > 0 && (size_t)n < dirsz);
	assert_non_null(mkdtemp(dir));
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void
tmpdir_remove(const char *dir)
{
	assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}
