/*
 * tmpdir — the unit tests' temporary directories: one made fresh under
 * $TMPDIR (else /tmp) for a test, and removed with all it holds after.
 * Either fails the running test when it cannot do its part.
 */
#ifndef MPP_TEST_TMPDIR_H
#define MPP_TEST_TMPDIR_H

#include <stddef.h>

/* Make $TMPDIR/mpp-test-NAME.XXXXXX into dir (dirsz bytes). */
void tmpdir_make(char *dir, size_t dirsz, const char *name);

/* Remove dir and everything below it. */
void tmpdir_remove(const char *dir);

#endif
