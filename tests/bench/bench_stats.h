/*
 * bench_stats — small measurements for mppbench: percentiles of a sample,
 * the resident memory of a process, the cost of one password check.
 */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The p-th percentile (0..100, nearest rank) of v[0..n); sorts v in place.
 * 0 when n is 0.
 */
double bench_percentile(double *v, size_t n, double p);

/* VmRSS of process pid in KiB, or -1 (no such process, no /proc). */
long bench_rss_kib(pid_t pid);

/*
 * Check password against a hash n times with mppd's own check
 * (pwfile_verify: crypt(3), or sha512crypt for "$6$"); the mean
 * milliseconds of one check, or -1 with a reason in err (unknown method,
 * wrong password).
 */
double bench_crypt_ms(const char *hash, const char *password, int n,
    char *err, size_t errsz);

/*
 * The same from `threads` threads at once, n checks each: the checks a
 * second all threads made together (what the machine can hash right now),
 * and in *ms the mean milliseconds of one check. -1 with a reason in err.
 */
double bench_crypt_rate(const char *hash, const char *password, int n,
    int threads, double *ms, char *err, size_t errsz);

#endif /* BENCH_STATS_H */
