/*
 * workq — one mutex guards both lists; an eventfd carries "completions
 * waiting" to the owner's event loop without it ever blocking.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "workq.h"

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct workq_job *head, *tail;	/* pending jobs, FIFO */
	struct workq_job *done;		/* completed, LIFO */
	int stopping;
	int efd;
	int nthreads;
	pthread_t *threads;
};

static struct workq_job *
next_job(struct workq *q)
{
	struct workq_job *job;

	pthread_mutex_lock(&q->lock);
	while (q->head == NULL && !q->stopping)
		pthread_cond_wait(&q->cond, &q->lock);
	job = q->head;
	if (job != NULL) {
		q->head = job->next;
		if (q->head == NULL)
			q->tail = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	return job;
}

static void *
worker(void *arg)
{
	struct workq *q = arg;
	struct workq_job *job;

	while ((job = next_job(q)) != NULL)
		if (job->run(job) == WORKQ_DONE)
			workq_finish(q, job);
	return NULL;
}

struct workq *
workq_new(int nthreads)
{
	struct workq *q;
	int i;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->threads = calloc((size_t)nthreads, sizeof(*q->threads));
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->threads == NULL || q->efd == -1)
		goto fail;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&q->threads[i], NULL, worker, q) != 0)
			break;
		q->nthreads++;
	}
	if (q->nthreads == nthreads)
		return q;
	workq_free(q);
	errno = EAGAIN;
	return NULL;
fail:
	if (q->efd != -1)
		close(q->efd);
	free(q->threads);
	free(q);
	return NULL;
}

void
workq_push(struct workq *q, struct workq_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void
workq_finish(struct workq *q, struct workq_job *job)
{
	uint64_t one = 1;

	pthread_mutex_lock(&q->lock);
	job->next = q->done;
	q->done = job;
	pthread_mutex_unlock(&q->lock);
	(void)!write(q->efd, &one, sizeof(one));
}

int
workq_fd(const struct workq *q)
{
	return q->efd;
}

void
workq_run_completions(struct workq *q)
{
	struct workq_job *list, *next, *rev = NULL;
	uint64_t n;

	(void)!read(q->efd, &n, sizeof(n));
	pthread_mutex_lock(&q->lock);
	list = q->done;
	q->done = NULL;
	pthread_mutex_unlock(&q->lock);
	for (; list != NULL; list = next) {	/* back to arrival order */
		next = list->next;
		list->next = rev;
		rev = list;
	}
	for (; rev != NULL; rev = next) {
		next = rev->next;
		rev->done(rev);
	}
}

void
workq_stop(struct workq *q)
{
	int i;

	pthread_mutex_lock(&q->lock);
	q->stopping = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	q->nthreads = 0;
}

void
workq_free(struct workq *q)
{
	if (q == NULL)
		return;
	workq_stop(q);
	workq_run_completions(q);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	close(q->efd);
	free(q->threads);
	free(q);
}
