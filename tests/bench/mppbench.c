/*
 * mppbench — load generator for MPP (RFC 1204) servers.
 *
 * Runs `-c` sessions at once, each posting up to `-m` messages of `-z`
 * bytes, until `-n` messages have been posted; checks every reply (220,
 * USER 250, PASS 250, DATA 354, 250 after the text, QUIT 221) and prints one
 * line of figures: messages/s, sessions/s, and the p50/p99 latency from the
 * final "." to its 250. With -i it first logs in that many sessions that stay
 * idle (one epoll thread) and keeps them open during the load; with -P it
 * reports the server process's resident memory before and after.
 * `mppbench -x HASH` measures password checks instead, as mppd makes
 * them (-n each in -c threads). With --smtp the sessions speak SMTP to an
 * MTA instead (EHLO, AUTH PLAIN, then MAIL, RCPT, DATA per message; -F
 * the envelope sender), one command at a time, or with --pipelining in
 * groups (RFC 2920): the Postfix+SASL rows of make bench; --no-auth
 * leaves AUTH out, for an MTA that relays for loopback (plain Postfix).
 *
 * With -D the load posts for that many seconds instead of -n messages
 * (-n is then only a bound); with -r it is open-loop: message i is due
 * at i / rate seconds from the start whichever session takes it, and its
 * response time runs from then, so a server that falls behind shows as
 * waiting, not as a lower offered rate. -T writes every message's
 * sequence number (its X-Bench-Seq, also in its Subject), the moments its
 * "." left, its 250 came and its response time began, for matching with
 * what an MTA receives.
 *
 * Exit: 0 when every session and message succeeded, 1 when some failed;
 * sysexits(3) codes otherwise: EX_USAGE for a bad command line, EX_DATAERR
 * when -x finds the password does not match, EX_UNAVAILABLE when the idle
 * sessions could not start, EX_OSERR when threads or descriptors could not
 * be had, EX_CANTCREAT when the -T file could not be written.
 * See tests/bench/ and docs/performance.md for how it is used.
 */
#include <sys/resource.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "bench_idle.h"
#include "bench_load.h"
#include "bench_msg.h"
#include "bench_net.h"
#include "bench_stats.h"
#include "../../client/mpp_client.h"

#define DEFAULT_SERVER	"localhost"
#define DEFAULT_RCPT	"bench@example.net"
#define SPARE_FDS	64
#define SETTLE_NS	1000000000LL	/* after idle setup, before RSS */
#define DURATION_CAP	4000000L	/* -D without -n or -r: at most */

struct opts {
	char host[MPP_CLIENT_HOST_MAX];
	char port[MPP_CLIENT_PORT_MAX];
	const char *user, *password, *rcpt, *times_file, *hash, *from;
	int concurrency, inflight, timeout, json, no_auth;
	enum bench_proto proto;
	long total, per_session, idle, duration;
	size_t size;
	double rate;
	pid_t pid;
};

struct figures {
	struct bench_load_result load;
	int ran_load;
	struct bench_idle_stats idle;
	long rss_before, rss_after;	/* KiB, -1 unknown */
	long long rss_per_session;	/* bytes, -1 unknown */
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mppbench [-s host[:port]] [-u user] [-p password] "
	    "[-c concurrency]\n"
	    "                [-n total] [-m per-session] [-z size] "
	    "[-i idle [-I inflight]]\n"
	    "                [-r rate] [-t timeout] [-R rcpt] [-T times-file] "
	    "[-P pid] [--json]\n"
	    "                [-D seconds] [--smtp [--pipelining] "
	    "[--no-auth] [-F mail-from]]\n"
	    "       mppbench -x hash [-p password] [-n checks] [-c threads] "
	    "[--json]\n");
	exit(EX_USAGE);
}

/* A positive number with an optional k/K or m/M (binary) suffix. */
static int
parse_num(const char *s, long max, long *out)
{
	char *end;
	long v, mul = 1;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	if (errno != 0 || end == s || *end != '\0' || v < 0 ||
	    v > max / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static long
num_opt(const char *s, long min, long max, const char *what)
{
	long v;

	if (parse_num(s, max, &v) == -1 || v < min) {
		fprintf(stderr, "mppbench: bad %s \"%s\" (%ld to %ld)\n",
		    what, s, min, max);
		exit(EX_USAGE);
	}
	return v;
}

/* What follows from the options given: bounds, defaults, the server. */
static void
finish_opts(struct opts *o, const char *server, int pipelining,
    int total_given)
{
	char err[256];

	/* A duration's bound: what its rate can post, or a generous one. */
	if (o->duration > 0 && !total_given)
		o->total = o->rate > 0 ? (long)(o->rate * (double)o->duration)
		    + 1 : DURATION_CAP;
	if (pipelining)
		o->proto = BENCH_SMTP_PIPELINED;
	if (o->from == NULL)
		o->from = "bench@bench.example";
	if (strlen(o->from) > 256 || strlen(o->rcpt) > 255) {
		fprintf(stderr, "mppbench: address too long\n");
		exit(EX_USAGE);
	}
	if (mpp_client_parse_server(server, o->proto != BENCH_MPP ? "25" :
	    MPP_CLIENT_DEFAULT_PORT, o->host,
	    sizeof(o->host), o->port, sizeof(o->port), err, sizeof(err)) ==
	    -1) {
		fprintf(stderr, "mppbench: %s\n", err);
		exit(EX_USAGE);
	}
	if (o->no_auth) {
		o->user = o->password = NULL;
		return;
	}
	if (o->password == NULL) {
		fprintf(stderr, "mppbench: no password (-p or MPP_PASSWORD)\n");
		exit(EX_USAGE);
	}
	if (o->hash == NULL && o->user == NULL) {
		fprintf(stderr, "mppbench: no user (-u)\n");
		exit(EX_USAGE);
	}
}

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "smtp", no_argument, NULL, 'S' },
		{ "pipelining", no_argument, NULL, 'L' },
		{ "no-auth", no_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 }
	};
	const char *server = DEFAULT_SERVER;
	int ch, pipelining = 0, total_given = 0;

	memset(o, 0, sizeof(*o));
	o->concurrency = 1;
	o->total = 100;
	o->per_session = 1;
	o->size = 1024;
	o->inflight = 64;
	o->timeout = 60;
	o->rcpt = DEFAULT_RCPT;
	o->user = getenv("USER");
	o->password = getenv("MPP_PASSWORD");
	while ((ch = getopt_long(argc, argv, "s:u:p:c:n:m:z:i:I:r:t:R:T:P:x:F:D:j",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 's': server = optarg; break;
		case 'u': o->user = optarg; break;
		case 'p': o->password = optarg; break;
		case 'c': o->concurrency = (int)num_opt(optarg, 1, 4096,
		    "concurrency"); break;
		case 'n': o->total = num_opt(optarg, 0, 100000000, "total");
			total_given = 1;
			break;
		case 'D': o->duration = num_opt(optarg, 1, 86400, "duration");
			break;
		case 'A': o->no_auth = 1; break;
		case 'm': o->per_session = num_opt(optarg, 1, 100000000,
		    "messages per session"); break;
		case 'z': o->size = (size_t)num_opt(optarg, 1, 1024L * 1024 *
		    1024, "size"); break;
		case 'i': o->idle = num_opt(optarg, 0, 1000000, "idle");
			break;
		case 'I': o->inflight = (int)num_opt(optarg, 1, 10000,
		    "inflight"); break;
		case 'r': o->rate = (double)num_opt(optarg, 0, 10000000,
		    "rate"); break;
		case 't': o->timeout = (int)num_opt(optarg, 1, 86400,
		    "timeout"); break;
		case 'R': o->rcpt = optarg; break;
		case 'T': o->times_file = optarg; break;
		case 'P': o->pid = (pid_t)num_opt(optarg, 1, 1L << 30,
		    "pid"); break;
		case 'x': o->hash = optarg; break;
		case 'j': o->json = 1; break;
		case 'S': o->proto = BENCH_SMTP; break;
		case 'L': pipelining = 1; break;
		case 'F': o->from = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || (pipelining && o->proto != BENCH_SMTP) ||
	    (o->from != NULL && o->proto != BENCH_SMTP) ||
	    (o->no_auth && o->proto != BENCH_SMTP))
		usage();
	finish_opts(o, server, pipelining, total_given);
}

/* Allow want descriptors: raise the soft limit, and the hard one if we may. */
static int
raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max < want) {
		struct rlimit hard = { want, want };

		if (setrlimit(RLIMIT_NOFILE, &hard) == 0)
			return 0;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur < want) {
		fprintf(stderr, "mppbench: %llu file descriptors needed, "
		    "only %llu allowed\n", (unsigned long long)want,
		    (unsigned long long)rl.rlim_cur);
		return -1;
	}
	return 0;
}

/*
 * -x: the cost of one password check, n checks in each of -c threads: the
 * mean time of one check, and how many checks a second all threads made.
 */
static int
hash_time(const struct opts *o)
{
	char err[256];
	int n = o->total > 0 ? (int)o->total : 1;
	double ms, rate;

	rate = bench_crypt_rate(o->hash, o->password, n, o->concurrency, &ms,
	    err, sizeof(err));
	if (rate < 0) {
		fprintf(stderr, "mppbench: crypt: %s\n", err);
		return EX_DATAERR;
	}
	if (o->json)
		printf("{\"checks\": %d, \"threads\": %d, \"hash_ms\": %.4f, "
		    "\"checks_per_s\": %.2f}\n", n, o->concurrency, ms, rate);
	else
		printf("checks=%d threads=%d hash_ms=%.4f checks/s=%.2f\n", n,
		    o->concurrency, ms, rate);
	return EX_OK;
}

/*
 * For every message whose "." was sent: "seq sent ok due", wall-clock ns
 * of its "." leaving, of its 250 (0 if none came) and of the start of its
 * response time.
 */
static int
write_times(const struct opts *o, const struct bench_load_result *r,
    unsigned long first_seq)
{
	FILE *f;
	long i;

	if ((f = fopen(o->times_file, "w")) == NULL) {
		fprintf(stderr, "mppbench: %s: %s\n", o->times_file,
		    strerror(errno));
		return -1;
	}
	for (i = 0; i < o->total; i++)
		if (r->sent_wall_ns[i] != 0)
			fprintf(f, "%lu %lld %lld %lld\n", first_seq +
			    (unsigned long)i, r->sent_wall_ns[i],
			    r->ok_wall_ns[i], r->due_wall_ns[i]);
	if (fclose(f) == EOF) {
		fprintf(stderr, "mppbench: %s: %s\n", o->times_file,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void
sleep_ns(long long ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000LL),
	    (long)(ns % 1000000000LL) };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Open the idle sessions, and measure the server's memory around it. */
static struct bench_idle *
idle_start(const struct opts *o, struct figures *fg)
{
	struct bench_idle_cfg ic = { o->host, o->port, o->user, o->password,
	    o->idle, o->inflight, o->timeout };
	struct bench_idle *bi;
	char err[256];

	fg->rss_before = o->pid ? bench_rss_kib(o->pid) : -1;
	if ((bi = bench_idle_open(&ic, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mppbench: idle sessions: %s\n", err);
		return NULL;
	}
	sleep_ns(SETTLE_NS);
	fg->rss_after = o->pid ? bench_rss_kib(o->pid) : -1;
	bench_idle_stats(bi, &fg->idle);
	if (fg->rss_before >= 0 && fg->rss_after >= 0 && fg->idle.open > 0)
		fg->rss_per_session = (fg->rss_after - fg->rss_before) *
		    1024LL / fg->idle.open;
	else
		fg->rss_per_session = -1;
	return bi;
}

static void
print_text(const struct opts *o, struct figures *fg)
{
	struct bench_load_result *r = &fg->load;
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;

	if (fg->ran_load)
		printf("messages=%ld/%ld sessions=%ld failed_sessions=%ld "
		    "elapsed=%.3fs msgs/s=%.1f sessions/s=%.1f "
		    "latency_p50=%.2fms latency_p99=%.2fms "
		    "resp_p50=%.2fms resp_p99=%.2fms "
		    "post_p50=%.2fms post_p99=%.2fms",
		    r->messages, o->total, r->sessions, r->failed_sessions,
		    r->elapsed_s, r->messages / el, r->sessions / el,
		    bench_percentile(r->lat_ms, (size_t)r->messages, 50),
		    bench_percentile(r->lat_ms, (size_t)r->messages, 99),
		    bench_percentile(r->resp_ms, (size_t)r->messages, 50),
		    bench_percentile(r->resp_ms, (size_t)r->messages, 99),
		    bench_percentile(r->post_ms, (size_t)r->npost, 50),
		    bench_percentile(r->post_ms, (size_t)r->npost, 99));
	if (o->idle > 0)
		printf("%sidle_open=%ld/%ld idle_failed=%ld idle_dropped=%ld "
		    "idle_setup=%.2fs rss_before=%ldKiB rss_after=%ldKiB "
		    "rss_per_session=%lldB", fg->ran_load ? " " : "",
		    fg->idle.open, fg->idle.wanted, fg->idle.failed,
		    fg->idle.dropped, fg->idle.setup_s, fg->rss_before,
		    fg->rss_after, fg->rss_per_session);
	printf("\n");
	if (fg->ran_load && r->first_error[0] != '\0')
		fprintf(stderr, "mppbench: first error: %s\n",
		    r->first_error);
	if (o->idle > 0 && fg->idle.first_error[0] != '\0')
		fprintf(stderr, "mppbench: first idle error: %s\n",
		    fg->idle.first_error);
}

/* A JSON string: the characters an error text may hold, escaped. */
static void
json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void
print_json(const struct opts *o, struct figures *fg)
{
	struct bench_load_result *r = &fg->load;
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;

	printf("{\"concurrency\": %d, \"total\": %ld, \"per_session\": %ld, "
	    "\"size\": %zu, \"rate\": %.1f, \"duration\": %ld",
	    o->concurrency, o->total, o->per_session, o->size, o->rate,
	    o->duration);
	if (fg->ran_load) {
		printf(", \"messages\": %ld, \"sessions\": %ld, "
		    "\"failed_sessions\": %ld, \"failed_messages\": %ld, "
		    "\"elapsed_s\": %.4f, \"msgs_per_s\": %.2f, "
		    "\"sessions_per_s\": %.2f",
		    r->messages, r->sessions, r->failed_sessions,
		    r->failed_messages, r->elapsed_s, r->messages / el,
		    r->sessions / el);
		printf(", \"latency_p50_ms\": %.3f, \"latency_p99_ms\": %.3f",
		    bench_percentile(r->lat_ms, (size_t)r->messages, 50),
		    bench_percentile(r->lat_ms, (size_t)r->messages, 99));
		printf(", \"resp_p50_ms\": %.3f, \"resp_p99_ms\": %.3f",
		    bench_percentile(r->resp_ms, (size_t)r->messages, 50),
		    bench_percentile(r->resp_ms, (size_t)r->messages, 99));
		printf(", \"post_p50_ms\": %.3f, \"post_p99_ms\": %.3f",
		    bench_percentile(r->post_ms, (size_t)r->npost, 50),
		    bench_percentile(r->post_ms, (size_t)r->npost, 99));
		printf(", \"first_error\": ");
		json_str(r->first_error);
	}
	if (o->idle > 0) {
		printf(", \"idle\": %ld, \"idle_open\": %ld, "
		    "\"idle_failed\": %ld, \"idle_dropped\": %ld, "
		    "\"idle_setup_s\": %.3f, \"rss_before_kib\": %ld, "
		    "\"rss_after_kib\": %ld, \"rss_per_session_bytes\": %lld, "
		    "\"idle_first_error\": ", o->idle, fg->idle.open,
		    fg->idle.failed, fg->idle.dropped, fg->idle.setup_s,
		    fg->rss_before, fg->rss_after, fg->rss_per_session);
		json_str(fg->idle.first_error);
	}
	printf("}\n");
}

/* The run: idle sessions (if any), the load (if any), figures. */
static int
run(const struct opts *o)
{
	struct figures fg;
	struct bench_msg msg;
	struct bench_idle *bi = NULL;
	struct bench_load_cfg lc;
	char run_id[32];
	int rc = EX_OK;

	memset(&fg, 0, sizeof(fg));
	(void)snprintf(run_id, sizeof(run_id), "%lx.%ld",
	    (unsigned long)time(NULL), (long)getpid());
	if (bench_msg_init(&msg, o->size, o->rcpt, run_id) == -1) {
		fprintf(stderr, "mppbench: message: %s\n", strerror(errno));
		return EX_USAGE;
	}
	if (o->idle > 0 && (bi = idle_start(o, &fg)) == NULL) {
		bench_msg_free(&msg);
		return EX_UNAVAILABLE;
	}
	if (o->total > 0) {
		memset(&lc, 0, sizeof(lc));
		lc.host = o->host;
		lc.port = o->port;
		lc.user = o->user;
		lc.password = o->password;
		lc.proto = o->proto;
		lc.helo = "client.bench.example";
		lc.mail_from = o->from;
		lc.concurrency = o->concurrency;
		lc.total = o->total;
		lc.per_session = o->per_session;
		lc.rate = o->rate;
		lc.duration = (double)o->duration;
		lc.timeout = o->timeout;
		lc.msg = &msg;
		lc.first_seq = 1;
		if (bench_load_run(&lc, &fg.load) == -1) {
			fprintf(stderr, "mppbench: load: %s\n",
			    strerror(errno));
			bench_idle_close(bi);
			bench_msg_free(&msg);
			return EX_OSERR;
		}
		fg.ran_load = 1;
		if (o->times_file != NULL && write_times(o, &fg.load, 1) == -1)
			rc = EX_CANTCREAT;
	}
	if (bi != NULL) {
		long long per = fg.rss_per_session;

		bench_idle_stats(bi, &fg.idle);	/* drops during the load */
		fg.rss_per_session = per;
		bench_idle_close(bi);
	}
	if (o->json)
		print_json(o, &fg);
	else
		print_text(o, &fg);
	/* With a duration, fewer than -n messages is no failure. */
	if (rc == EX_OK && ((fg.ran_load && (fg.load.failed_sessions > 0 ||
	    (o->duration == 0 && fg.load.messages < o->total))) ||
	    (o->idle > 0 && fg.idle.open < o->idle)))
		rc = 1;
	bench_load_free(&fg.load);
	bench_msg_free(&msg);
	return rc;
}

int
main(int argc, char **argv)
{
	struct opts o;

	parse_opts(argc, argv, &o);
	if (o.hash != NULL)
		return hash_time(&o);
	if (raise_nofile((rlim_t)o.concurrency + (rlim_t)o.idle +
	    SPARE_FDS) == -1)
		return EX_OSERR;
	return run(&o);
}
