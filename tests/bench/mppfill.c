/*
 * mppfill — fills a spool fast with messages as mppd and mppqueue leave
 * them, for the large-queue runs of make bench (docs/performance.md).
 *
 * Each message goes through mppd's own code: a queue id from
 * spool_new_id(), the text through the message module as a client's
 * posting would (Received:, Date:, Message-ID: and the rest added, the
 * recipients found), the file made in tmp/ with spool_tmp_open(), its row
 * with index_insert_batch(), 500 to a transaction as mppd's committer
 * batches them. Then, as mppqueue would after a delivery attempt, each
 * batch is claimed with index_claim_due() and recorded with
 * index_record(): -s deferred (the default) records a 451 and a next
 * attempt -a seconds away, the file in cur/; -s sent records a 250, and
 * no file is left (the runner removes it; here none is made, as making
 * and removing a million files would leave ext4 without a journal
 * scanning its freed inodes at every create: docs/performance.md);
 * -s queued leaves the messages as mppd left them, files in new/.
 *
 * What it leaves out is the cost of durability, not its result: no file
 * is fsync'ed on its own and the index is written at synchronous=NORMAL;
 * one syncfs() at the end puts everything on disk. Files and rows are
 * what mppd and mppqueue would have made.
 *
 *   mppfill -d SPOOL_DIR -n COUNT [-s deferred|sent|queued] [-z SIZE]
 *           [-a SECONDS] [-u USER] [-j]
 *
 * It claims what it made as a runner would, so it refuses a spool that
 * already holds due messages (they would be claimed first): fill, then
 * post. Prints how many were made and how fast (-j: one JSON object).
 * Exit 0, EX_USAGE for a bad command line, EX_DATAERR for a spool with
 * due messages, EX_IOERR when the spool or the index failed, EX_SOFTWARE
 * when a message was refused by the message module.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "index.h"
#include "index_queue.h"
#include "../../mppd/message.h"
#include "outcome.h"
#include "spool.h"
#include "util.h"

#define BATCH 500
#define HOST "mppfill"
#define RCPT "bench@example.net"
#define DEFER_REPLY "451 4.3.0 queue filled for the benchmark"
#define MAX_COUNT 100000000L

enum fill_state { FILL_DEFERRED, FILL_SENT, FILL_QUEUED };

struct opts {
	const char *spool_dir, *user;
	long count, after;
	size_t size;
	enum fill_state state;
	int json;
};

struct fill {
	const struct opts *o;
	struct spool sp;
	struct index *ix;
	char *text;			/* the client's text, LF line ends */
	size_t text_len;
	char sender[256];
	long made;
};

static void
usage(void)
{
	fprintf(stderr, "usage: mppfill -d spool_dir -n count "
	    "[-s deferred|sent|queued] [-z size] [-a seconds] [-u user] "
	    "[-j]\n");
	exit(EX_USAGE);
}

static long
num(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

static void
parse(int argc, char **argv, struct opts *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	o->size = 1024;
	o->after = 86400;
	o->user = "alice";
	while ((ch = getopt(argc, argv, "d:n:s:z:a:u:j")) != -1) {
		switch (ch) {
		case 'd': o->spool_dir = optarg; break;
		case 'n': o->count = num(optarg, 0, MAX_COUNT); break;
		case 'z': o->size = (size_t)num(optarg, 64, 1L << 24); break;
		case 'a': o->after = num(optarg, 0, 1L << 30); break;
		case 'u': o->user = optarg; break;
		case 'j': o->json = 1; break;
		case 's':
			if (strcmp(optarg, "deferred") == 0)
				o->state = FILL_DEFERRED;
			else if (strcmp(optarg, "sent") == 0)
				o->state = FILL_SENT;
			else if (strcmp(optarg, "queued") == 0)
				o->state = FILL_QUEUED;
			else
				usage();
			break;
		default: usage();
		}
	}
	if (optind != argc || o->spool_dir == NULL || strlen(o->user) > 64)
		usage();
}

/* A client's text of about size bytes: To:, Subject:, a padded body. */
static int
make_text(struct fill *f)
{
	static const char head[] = "To: <" RCPT ">\nSubject: mppfill\n\n";
	size_t n = f->o->size > sizeof(head) ? f->o->size : sizeof(head) + 2;
	size_t i, at = sizeof(head) - 1;

	if ((f->text = malloc(n)) == NULL)
		return -1;
	memcpy(f->text, head, at);
	for (i = at; i < n; i++)
		f->text[i] = (i - at) % 73 == 72 ? '\n' : 'a' + (i % 26);
	f->text[n - 1] = '\n';
	f->text_len = n;
	return 0;
}

struct spill {
	const struct spool *sp;
	const char *id;
	int fd;
	int none;		/* no file: a sent message's is gone */
};

/* As mppd's hook_spill: the file is made when output first comes. */
static int
spill(void *ctx, const char *data, size_t len)
{
	struct spill *s = ctx;

	if (s->none)
		return 0;
	if (s->fd == -1 && (s->fd = spool_tmp_open(s->sp, s->id)) == -1)
		return -1;
	return util_write_all(s->fd, data, len);
}

/*
 * One message through the message module into tmp/ID; its row in *row
 * (strings in m, which the caller frees). The file is moved to new/ by
 * the caller. 0, -1 on a spool error, -2 when the text was refused.
 */
static int
make_one(struct fill *f, char *id, struct message **mp,
    struct index_new_msg *row)
{
	struct message_params p = { id, "127.0.0.1", "mpp.bench.example",
	    f->o->user, f->sender, "bench.example", time(NULL),
	    10485760ULL, 1000 };
	struct spill s = { &f->sp, id, -1, f->o->state == FILL_SENT };
	struct message *m;
	struct buf *out;

	spool_new_id(id, SPOOL_ID_MAX);
	if ((m = message_new(&p, spill, &s)) == NULL)
		return -1;
	*mp = m;
	(void)message_append(m, f->text, f->text_len);
	if (message_finish(m, 0, 0) != MSG_OK) {
		fprintf(stderr, "mppfill: refused: %s\n", message_reason(m));
		return -2;
	}
	out = message_output(m);
	if (spill(&s, out->data, out->len) == -1 || (!s.none &&
	    close(s.fd) == -1))
		return -1;
	memset(row, 0, sizeof(*row));
	row->id = message_params(m)->queue_id;
	row->auth_user = message_params(m)->auth_user;
	row->sender = message_params(m)->sender;
	row->client_addr = message_params(m)->client_addr;
	row->size = message_size(m);
	row->received_at = (long long)message_params(m)->now;
	row->nrcpts = message_rcpt_count(m);
	row->rcpts = message_rcpts(m);
	return 0;
}

/* The runner's record of one attempt on claim c. */
static int
record(struct fill *f, const struct index_claim *c, int sent)
{
	long long seq = 0;
	enum outcome outcome = sent ? OUTCOME_OK : OUTCOME_TEMP;
	const char *reply = sent ? "250 2.0.0 Ok" : DEFER_REPLY;
	time_t now = time(NULL);
	struct index_result r = { c->id, HOST, (long)getpid(), now, 1, &seq,
	    &outcome, &reply, sent, 0, (long long)now + f->o->after,
	    sent ? NULL : DEFER_REPLY, NULL, NULL };

	return index_record(f->ix, &r) == 1 ? 0 : -1;
}

/* Claim what this batch made and record an attempt on each, files
   moved to cur/ or removed as the runner does. */
static int
attempt_batch(struct fill *f, size_t n)
{
	struct index_claim c[BATCH];
	int i, got;
	time_t now = time(NULL);

	/* retry_by 0: only the queued ones, never a deferred one. */
	got = index_claim_due(f->ix, HOST, (long)getpid(), now, 0, 600, c, n);
	if (got != (int)n) {
		fprintf(stderr, "mppfill: claimed %d of %zu: %s\n", got, n,
		    got < 0 ? index_errmsg(f->ix) : "others were due");
		return -1;
	}
	for (i = 0; i < got; i++) {
		if (f->o->state == FILL_DEFERRED && renameat(f->sp.newfd,
		    c[i].id, f->sp.curfd, c[i].id) == -1)
			return -1;
		if (record(f, &c[i], f->o->state == FILL_SENT) == -1) {
			fprintf(stderr, "mppfill: record: %s\n",
			    index_errmsg(f->ix));
			return -1;
		}
	}
	return 0;
}

/* n messages: files, rows in one transaction, then their attempts. */
static int
fill_batch(struct fill *f, size_t n)
{
	struct message *m[BATCH] = { NULL };
	struct index_new_msg rows[BATCH];
	const struct index_new_msg *p[BATCH];
	char ids[BATCH][SPOOL_ID_MAX];
	size_t i;
	int rc = EX_IOERR, k;

	for (i = 0; i < n; i++) {
		if ((k = make_one(f, ids[i], &m[i], &rows[i])) != 0) {
			rc = k == -2 ? EX_SOFTWARE : EX_IOERR;
			goto done;
		}
		if (f->o->state != FILL_SENT && renameat(f->sp.tmpfd, ids[i],
		    f->sp.newfd, ids[i]) == -1)
			goto done;
		p[i] = &rows[i];
	}
	if (index_insert_batch(f->ix, p, n) == -1) {
		fprintf(stderr, "mppfill: insert: %s\n", index_errmsg(f->ix));
		goto done;
	}
	if (f->o->state != FILL_QUEUED && attempt_batch(f, n) == -1)
		goto done;
	f->made += (long)n;
	rc = EX_OK;
done:
	for (i = 0; i < n; i++)
		message_free(m[i]);
	return rc;
}

static int
fill_all(struct fill *f)
{
	long left;
	int rc = EX_OK;

	for (left = f->o->count; left > 0 && rc == EX_OK; left -= BATCH)
		rc = fill_batch(f, (size_t)(left < BATCH ? left : BATCH));
	if (rc == EX_IOERR)
		fprintf(stderr, "mppfill: %s: %s\n", f->o->spool_dir,
		    strerror(errno));
	return rc;
}

static void
report(const struct fill *f, double s)
{
	static const char *const names[] = { "deferred", "sent", "queued" };

	if (f->o->json)
		printf("{\"messages\": %ld, \"state\": \"%s\", \"seconds\": "
		    "%.3f, \"per_s\": %.1f}\n", f->made, names[f->o->state], s,
		    s > 0 ? f->made / s : 0.0);
	else
		printf("%ld messages %s in %.1f s (%.0f/s)\n", f->made,
		    names[f->o->state], s, s > 0 ? f->made / s : 0.0);
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct fill f;
	char err[512];
	long long t0, due;
	int rc;

	parse(argc, argv, &o);
	memset(&f, 0, sizeof(f));
	f.o = &o;
	snprintf(f.sender, sizeof(f.sender), "%s@bench.example", o.user);
	if (spool_open(&f.sp, o.spool_dir, err, sizeof(err)) == -1 ||
	    (f.ix = index_open(o.spool_dir, INDEX_SYNC_NORMAL, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "mppfill: %s\n", err);
		spool_close(&f.sp);
		return EX_IOERR;
	}
	if (make_text(&f) == -1) {
		fprintf(stderr, "mppfill: out of memory\n");
		rc = EX_OSERR;
		goto done;
	}
	due = index_next_due(f.ix);
	if (o.state != FILL_QUEUED && (due == -2 || (due >= 0 &&
	    due <= (long long)time(NULL)))) {
		fprintf(stderr, "mppfill: %s\n", due == -2 ? index_errmsg(f.ix) :
		    "the spool has due messages: fill it before posting");
		rc = due == -2 ? EX_IOERR : EX_DATAERR;
		goto done;
	}
	t0 = util_now_ms();
	rc = fill_all(&f);
	if (rc == EX_OK && (index_exec(f.ix, "PRAGMA wal_checkpoint(TRUNCATE)")
	    == -1 || syncfs(f.sp.dirfd) == -1)) {
		fprintf(stderr, "mppfill: sync: %s\n", strerror(errno));
		rc = EX_IOERR;
	}
	if (rc == EX_OK)
		report(&f, (double)(util_now_ms() - t0) / 1000.0);
done:
	free(f.text);
	index_close(f.ix);
	spool_close(&f.sp);
	return rc;
}
