/* daemon — see daemon.h. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

int
daemon_options_parse(int argc, char **argv, char own_flag,
    struct daemon_options *o)
{
	char opts[] = "c:do:vX";
	int ch;

	memset(o, 0, sizeof(*o));
	opts[sizeof(opts) - 2] = own_flag;
	while ((ch = getopt(argc, argv, opts)) != -1) {
		if (ch == own_flag)
			o->own = 1;
		else if (ch == 'd')
			o->foreground = 1;
		else if (ch == 'v')
			o->verbose = 1;
		else if (config_cli_option(&o->cli, ch, optarg) != 1)
			return -1;
	}
	return optind == argc ? 0 : -1;
}

void
daemon_drop_root(const struct mpp_config *cfg, int attached)
{
	char err[512];

	if (getuid() != 0 && geteuid() != 0)
		return;
	if (cfg->user[0] == '\0') {
		if (!attached)
			fatalx(EX_CONFIG, "refusing to run as root: set user "
			    "(or run in the foreground with -d)");
		log_warnx("running as root: user is empty");
		return;
	}
	if (util_drop_privileges(cfg->user, err, sizeof(err)) == -1)
		fatalx(EX_OSERR, "%s", err);
}
