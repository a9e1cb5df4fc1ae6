/*
 * mppqueue — the queue runner. Flags and config, privilege drop, the log
 * (a log file is opened by the runner's user, who reopens it on SIGHUP
 * and SIGUSR1), the spool and its reconciliation, then runner_run().
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "index.h"
#include "log.h"
#include "reconcile.h"
#include "runner.h"
#include "spool.h"
#include "util.h"

struct options {
	struct config_cli cli;
	int foreground;
	int oneshot;
	int verbose;
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: mppqueue [-1] [-d] [-v] [-c file] "
	    "[-o key=value]...\n");
	exit(EX_USAGE);
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	while ((ch = getopt(argc, argv, "1c:do:v")) != -1) {
		switch (ch) {
		case '1':
			o->oneshot = 1;
			break;
		case 'd':
			o->foreground = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		default:
			if (config_cli_option(&o->cli, ch, optarg) != 1)
				usage();
		}
	}
	if (optind != argc)
		usage();
}

static void
reconcile(struct spool *sp, const struct mpp_config *cfg)
{
	struct reconcile_stats rs;
	struct index *ix;
	char err[1024];

	if ((ix = index_open(cfg->spool_dir, INDEX_SYNC_NORMAL, err,
	    sizeof(err))) == NULL)
		fatalx(EX_IOERR, "%s", err);
	if (reconcile_spool(sp, ix, cfg->hostname, time(NULL), &rs) == 0 &&
	    (rs.tmp_removed || rs.orphans || rs.leases_released))
		log_info("reconciled spool: tmp_removed=%u orphans=%u "
		    "leases_released=%u", rs.tmp_removed, rs.orphans,
		    rs.leases_released);
	index_close(ix);
}

/*
 * SIGHUP and SIGUSR1 (logrotate's) wait, blocked, for the runner's
 * signalfd: their default action would end a run still starting (a
 * cron run may start just as logs are rotated).
 */
static void
block_early_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	(void)sigprocmask(SIG_BLOCK, &set, NULL);
}

int
main(int argc, char **argv)
{
	static struct mpp_config cfg;
	struct runner_ctx ctx;
	struct options o;
	struct spool sp;
	char err[1024];
	int interactive;

	block_early_signals();
	parse_options(argc, argv, &o);
	interactive = o.foreground || (o.oneshot && isatty(STDERR_FILENO));
	log_init("mppqueue", interactive ? LOG_TO_STDERR : LOG_TO_SYSLOG,
	    o.verbose);
	if (config_cli_load(&cfg, &o.cli, NULL, err, sizeof(err)) == -1)
		fatalx(EX_CONFIG, "%s", err);
	if ((getuid() == 0 || geteuid() == 0) && cfg.user[0] != '\0' &&
	    util_drop_privileges(cfg.user, err, sizeof(err)) == -1)
		fatalx(EX_OSERR, "%s", err);
	if (!interactive && log_use(cfg.log.to, cfg.log.path, 0, err,
	    sizeof(err)) == -1)
		fatalx(EX_CANTCREAT, "%s", err);
	if ((getuid() == 0 || geteuid() == 0) && cfg.user[0] == '\0')
		log_warnx("running as root: user is empty");
	if (spool_open(&sp, cfg.spool_dir, err, sizeof(err)) == -1)
		fatalx(EX_CANTCREAT, "%s", err);
	reconcile(&sp, &cfg);
	if (!o.foreground && !o.oneshot && log_daemon() == -1)
		fatal(EX_OSERR, "daemon");
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = &cfg;
	ctx.sp = &sp;
	ctx.oneshot = o.oneshot;
	if (!o.oneshot)
		log_info("ready: transport %s, concurrency %ld",
		    cfg.transport.text, cfg.concurrency);
	return runner_run(&ctx);
}
