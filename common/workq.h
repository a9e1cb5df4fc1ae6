/*
 * workq — a pool of threads for work that must not run on an event loop
 * (password hashing, fsync). A job's run() executes on a worker; its done()
 * executes later on the owner's thread, when the owner calls
 * workq_run_completions() after workq_fd() turns readable. run() may
 * instead forward the job elsewhere (returning WORKQ_FORWARDED); whoever
 * holds it then calls workq_finish() from any thread.
 */
#ifndef MPP_WORKQ_H
#define MPP_WORKQ_H

#define WORKQ_DONE 0
#define WORKQ_FORWARDED 1

struct workq_job {
	int (*run)(struct workq_job *);		/* on a worker thread */
	void (*done)(struct workq_job *);	/* on the owner's thread */
	struct workq_job *next;			/* the queue's */
};

struct workq;

/* Start nthreads workers; NULL on failure (errno set). */
struct workq *workq_new(int nthreads);
/* Queue a job; never fails. */
void workq_push(struct workq *q, struct workq_job *job);
/* Queue a finished job's done() for the owner; any thread. */
void workq_finish(struct workq *q, struct workq_job *job);
/* An fd that is readable while completions wait. */
int workq_fd(const struct workq *q);
/* Run the done() of every completed job; owner's thread. */
void workq_run_completions(struct workq *q);
/* Finish queued jobs and stop the workers (idempotent). */
void workq_stop(struct workq *q);
/* workq_stop, then run completions and free. NULL is fine. */
void workq_free(struct workq *q);

#endif
