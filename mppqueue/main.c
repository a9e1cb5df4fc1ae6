/*
 * mppqueue — the queue runner. Flags and config, privilege drop, the log
 * (a log file is opened by the runner's user, who reopens it on SIGHUP
 * and SIGUSR1), the spool and its reconciliation, then runner_run(),
 * which a daemon's SIGHUP also makes read the config again (the same
 * -c and -o).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "reconcile.h"
#include "relay_auth.h"
#include "runner.h"
#include "spool.h"
#include "transport.h"

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: mppqueue [-1] [-d] [-v] [-c file] "
	    "[-o key=value]...\n");
	exit(EX_USAGE);
}

/*
 * A transport that cannot be opened (a sendmail program missing or not
 * executable by the runner's user) is the configuration's fault: refused
 * at start, not found out by every delivery.
 */
static void
check_transport(const struct mpp_config *cfg)
{
	struct transport *t;
	char err[1024];

	if ((t = transport_new(cfg, err, sizeof(err))) == NULL)
		fatalx(EX_CONFIG, "transport %s: %s", cfg->transport.text, err);
	transport_free(t);
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
	struct daemon_options o;
	struct spool sp;
	char err[1024];
	int oneshot, interactive, rc;

	block_early_signals();
	if (daemon_options_parse(argc, argv, '1', &o) == -1)
		usage();
	oneshot = o.own;		/* -1 */
	interactive = o.foreground || (oneshot && isatty(STDERR_FILENO));
	log_init("mppqueue", interactive ? LOG_TO_STDERR : LOG_TO_SYSLOG,
	    o.verbose);
	if (config_cli_load(&cfg, &o.cli, NULL, err, sizeof(err)) == -1)
		fatalx(EX_CONFIG, "%s", err);
	/* Lines of the start (the root policy's warning) go where the log
	   goes; a log file is opened after the drop, by the runner's user. */
	if (!interactive && log_use(cfg.log.to, cfg.log.path, LOG_EARLY, err,
	    sizeof(err)) == -1)
		fatalx(EX_CANTCREAT, "%s", err);
	daemon_drop_root(&cfg, o.foreground || oneshot);
	/* Read as the runner's user, who must be able to, and no one else. */
	if (relay_auth_check(&cfg, err, sizeof(err)) == -1)
		fatalx(EX_CONFIG, "smtp_auth_file: %s", err);
	if (!interactive && log_use(cfg.log.to, cfg.log.path, 0, err,
	    sizeof(err)) == -1)
		fatalx(EX_CANTCREAT, "%s", err);
	check_transport(&cfg);
	if (spool_open(&sp, cfg.spool_dir, err, sizeof(err)) == -1)
		fatalx(EX_CANTCREAT, "%s", err);
	if (reconcile_at_start(&sp, INDEX_SYNC_NORMAL, cfg.hostname, err,
	    sizeof(err)) == -1)
		fatalx(EX_IOERR, "%s", err);
	if (!o.foreground && !oneshot && log_daemon() == -1)
		fatal(EX_OSERR, "daemon");
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = &cfg;
	ctx.sp = &sp;
	ctx.oneshot = oneshot;
	ctx.cli = oneshot ? NULL : &o.cli;	/* a cron run is short */
	if (!oneshot)
		log_info("ready: transport %s, concurrency %ld",
		    cfg.transport.text, cfg.concurrency);
	rc = runner_run(&ctx);
	spool_close(&sp);
	return rc;
}
