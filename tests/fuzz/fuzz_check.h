/*
 * fuzz_check — the fuzz targets' assertion: unlike assert(3) it stays in
 * every build (NDEBUG or not) and names the property that failed before
 * aborting, which libFuzzer reports as a crash with the input saved.
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x) do {							\
	if (!(x)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #x);					\
		abort();						\
	}								\
} while (0)

#endif
