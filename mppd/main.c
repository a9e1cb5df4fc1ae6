/*
 * mppd — the posting daemon. Flags and config, then binding, privilege
 * drop, the log (a log file is opened by the daemon's user, who reopens
 * it on SIGHUP and SIGUSR1), the spool and its reconciliation, then
 * server_run().
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "reconcile.h"
#include "server.h"
#include "spool.h"
#include "tls.h"

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: mppd [-d] [-i] [-v] [-c file] "
	    "[-o key=value]...\n");
	exit(EX_USAGE);
}

/*
 * Each session is one descriptor (two while its text is spilled); the
 * default soft limit (often 1024) would cap max_sessions silently. Raise
 * the limit to what the config needs, as far as the system lets us.
 */
static void
raise_fd_limit(const struct mpp_config *cfg)
{
	rlim_t want = (rlim_t)cfg->max_sessions * 2 + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want) {
		struct rlimit hard = { want, want };

		if (setrlimit(RLIMIT_NOFILE, &hard) == 0)	/* root may */
			return;
		want = rl.rlim_max;
	}
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    want < (rlim_t)cfg->max_sessions * 2 + 64)
		log_warnx("only %llu file descriptors: fewer sessions than "
		    "max_sessions (%ld) may be served", (unsigned long long)want,
		    cfg->max_sessions);
}

/* -i serves a connected socket (inetd, systemd) or a pipe (tests). */
static int
stdin_usable(void)
{
	struct stat st;

	return fstat(STDIN_FILENO, &st) == 0 &&
	    (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode));
}

static void
on_early_signal(int sig)
{
	(void)sig;
}

/*
 * SIGHUP and SIGUSR1 (logrotate's) are the event loop's once it runs;
 * until then their default action would end a daemon still starting.
 */
static void
catch_early_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_early_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGUSR1, &sa, NULL);
}

/*
 * Lines go where the `log` key says unless -d keeps them on stderr. In
 * inetd mode standard error may be the client's socket: no warning
 * there, and until a log file is open lines stay with syslog.
 */
static void
start_log(const struct mpp_config *cfg, const struct daemon_options *o,
    int flags)
{
	char err[LOG_PATH_MAX + 64];
	struct stat st;
	int sock = o->own /* -i */ && fstat(STDERR_FILENO, &st) == 0 &&
	    S_ISSOCK(st.st_mode);

	if (o->foreground || (sock && (flags & LOG_EARLY)))
		return;
	if (sock)
		flags |= LOG_QUIET;
	if (log_use(cfg->log.to, cfg->log.path, flags, err, sizeof(err)) == -1)
		fatalx(EX_CANTCREAT, "%s", err);
}

/*
 * A text longer than a few KiB passes through buffers of 64 to 256 KiB
 * that are freed at its end. With glibc's defaults such a free gives
 * the pages back (the heap is trimmed past 128 KiB of free space at its
 * top, and a first 128 KiB allocation is a mapping of its own), and the
 * next long text faults every page in again: 34 faults a 100 KiB
 * message. Keeping up to MPPD_HEAP_KEEP free at the top, and buffers
 * up to MPPD_HEAP_MMAP_MIN in the heap, costs at most that much memory
 * once many long texts were in flight together.
 */
#define MPPD_HEAP_KEEP (8 * 1024 * 1024)
#define MPPD_HEAP_MMAP_MIN (1024 * 1024)

/* A tuning, not a need: an allocator that refuses it (a sanitizer's,
   valgrind's) is left as it is. */
static void
keep_heap(void)
{
	(void)mallopt(M_MMAP_THRESHOLD, MPPD_HEAP_MMAP_MIN);
	(void)mallopt(M_TRIM_THRESHOLD, MPPD_HEAP_KEEP);
}

static void
open_spool(struct spool *sp, const struct mpp_config *cfg)
{
	char err[1024];

	if (spool_open(sp, cfg->spool_dir, err, sizeof(err)) == -1 ||
	    reconcile_at_start(sp, INDEX_SYNC_FULL, cfg->hostname, err,
	    sizeof(err)) == -1)
		fatalx(EX_CANTCREAT, "%s", err);
}

int
main(int argc, char **argv)
{
	static struct mpp_config cfg;
	struct server_ctx ctx;
	struct daemon_options o;
	struct spool sp;
	const char *path;
	char err[1024];
	struct server_listen fds[SERVER_MAX_LISTEN];
	int inetd, rc;
	size_t nfds = 0;

	catch_early_signals();
	if (daemon_options_parse(argc, argv, 'i', &o) == -1)
		usage();
	inetd = o.own;			/* -i */
	log_init("mppd", o.foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG,
	    o.verbose);
	if (config_cli_load(&cfg, &o.cli, &path, err, sizeof(err)) == -1)
		fatalx(EX_CONFIG, "%s", err);
	start_log(&cfg, &o, LOG_EARLY);
	raise_fd_limit(&cfg);
	keep_heap();
	if (inetd && !stdin_usable())
		fatalx(EX_USAGE, "-i: standard input must be a socket or a pipe");
	if (!inetd && (server_bind(&cfg.listen, 0, fds, &nfds, err,
	    sizeof(err)) == -1 || server_bind(&cfg.listen_tls, 1, fds, &nfds,
	    err, sizeof(err)) == -1 || server_bind_proxy(&cfg.proxy_listen, 0,
	    fds, &nfds, err, sizeof(err)) == -1 ||
	    server_bind_proxy(&cfg.proxy_listen_tls, 1, fds, &nfds, err,
	    sizeof(err)) == -1))
		fatalx(EX_UNAVAILABLE, "%s", err);
	/* Everything that can fail happens before the fork, so a failed
	   start is an exit status, not only a line in syslog. No thread may
	   exist before daemon(). */
	memset(&ctx, 0, sizeof(ctx));
	/* The key may be readable by root only: load it before the drop. */
	if ((cfg.listen_tls.n > 0 || cfg.proxy_listen_tls.n > 0) && !inetd &&
	    (ctx.tls = tls_new(&cfg, err, sizeof(err))) == NULL)
		fatalx(EX_CONFIG, "%s", err);
	daemon_drop_root(&cfg, o.foreground || inetd);
	start_log(&cfg, &o, 0);
	open_spool(&sp, &cfg);
	ctx.cfg = &cfg;
	ctx.config_path = path;
	ctx.spool = &sp;
	if ((ctx.auth = auth_new(&cfg, err, sizeof(err))) == NULL)
		fatalx(EX_CONFIG, "auth: %s", err);
	if (!o.foreground && !inetd && log_daemon() == -1)
		fatal(EX_OSERR, "daemon");
	rc = server_run(&ctx, fds, nfds, inetd);
	auth_free(ctx.auth);
	tls_free(ctx.tls);
	spool_close(&sp);
	return rc == 0 ? EX_OK : EX_SOFTWARE;
}
