/*
 * bench_stats — see bench_stats.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_net.h"
#include "bench_stats.h"
#include "../../mppd/pwfile.h"

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
bench_percentile(double *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	/* nearest rank: the smallest value with at least p % at or below */
	rank = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

long
bench_rss_kib(pid_t pid)
{
	char path[64], line[256];
	FILE *f;
	long kib = -1;

	(void)snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

double
bench_crypt_ms(const char *hash, const char *password, int n, char *err,
    size_t errsz)
{
	long long t0;
	int i;

	t0 = bench_now_ns();
	for (i = 0; i < n; i++) {
		if (pwfile_verify(password, hash) != 1) {
			(void)snprintf(err, errsz, "the password does not "
			    "match the hash, or its method is unknown");
			return -1;
		}
	}
	return (double)(bench_now_ns() - t0) / 1e6 / n;
}

struct crypt_job {
	const char *hash, *password;
	int n;
	double ms;		/* out: per check, -1 on failure */
	char err[128];
};

static void *
crypt_worker(void *arg)
{
	struct crypt_job *j = arg;

	j->ms = bench_crypt_ms(j->hash, j->password, j->n, j->err,
	    sizeof(j->err));
	return NULL;
}

double
bench_crypt_rate(const char *hash, const char *password, int n, int threads,
    double *ms, char *err, size_t errsz)
{
	struct crypt_job *jobs;
	pthread_t *tids;
	long long t0;
	double sum = 0, elapsed;
	int i, started = 0, failed = 0;

	jobs = calloc((size_t)threads, sizeof(*jobs));
	tids = calloc((size_t)threads, sizeof(*tids));
	if (jobs == NULL || tids == NULL) {
		(void)snprintf(err, errsz, "out of memory");
		free(jobs);
		free(tids);
		return -1;
	}
	t0 = bench_now_ns();
	for (i = 0; i < threads; i++) {
		jobs[i].hash = hash;
		jobs[i].password = password;
		jobs[i].n = n;
		if (pthread_create(&tids[i], NULL, crypt_worker, &jobs[i]) != 0)
			break;
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	elapsed = (double)(bench_now_ns() - t0) / 1e9;
	for (i = 0; i < started; i++) {
		if (jobs[i].ms < 0 && !failed++)
			(void)snprintf(err, errsz, "%s", jobs[i].err);
		sum += jobs[i].ms;
	}
	if (started < threads && !failed++)
		(void)snprintf(err, errsz, "cannot start threads");
	free(jobs);
	free(tids);
	if (failed)
		return -1;
	*ms = sum / started;
	return (double)started * n / elapsed;
}
