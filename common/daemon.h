/*
 * daemon — what mppd and mppqueue do alike at start: the options both take
 * (-c FILE, -o key=value, -d, -v, and one flag of the program's own) and
 * the one root policy. The reconciliation both run at start is
 * reconcile_at_start() (reconcile.h).
 */
#ifndef MPP_DAEMON_H
#define MPP_DAEMON_H

#include "config.h"

struct daemon_options {
	struct config_cli cli;
	int foreground;		/* -d: stay attached, log to stderr */
	int verbose;		/* -v: debug lines too */
	int own;		/* the program's own flag was given */
};

/*
 * Parse argv into o: the common options and own_flag (mppd 'i',
 * mppqueue '1'); no operands. 0, or -1 for a usage error.
 */
int daemon_options_parse(int argc, char **argv, char own_flag,
    struct daemon_options *o);

/*
 * The root policy. Started as root, change to cfg->user (fatal,
 * EX_OSERR, when that fails). With user empty, a daemon that would
 * detach refuses to run (fatal, EX_CONFIG); one that stays attached
 * (attached nonzero: -d, mppd -i, mppqueue -1) keeps root and warns.
 * Not started as root: nothing to do.
 */
void daemon_drop_root(const struct mpp_config *cfg, int attached);

#endif
