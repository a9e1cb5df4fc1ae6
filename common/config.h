/*
 * config — the one configuration file every program reads (DESIGN.md,
 * "Programs and their interfaces"). Keys are a table: name, type, bounds,
 * default. A bad file is reported once, naming file, line and key; callers
 * exit EX_CONFIG (78).
 */
#ifndef MPP_CONFIG_H
#define MPP_CONFIG_H

#include <stddef.h>

#define CONFIG_DEFAULT_PATH "/etc/mpp/mpp.conf"
#define CONFIG_STR_MAX 1024
#define CONFIG_LINE_MAX 4096
#define CONFIG_OVERRIDES_MAX 64

struct mpp_config {
	char spool_dir[CONFIG_STR_MAX];
	char listen[CONFIG_STR_MAX];
	char user[CONFIG_STR_MAX];
	char hostname[CONFIG_STR_MAX];
	char sender_domain[CONFIG_STR_MAX];
	char auth[CONFIG_STR_MAX];
	char transport[CONFIG_STR_MAX];
	char listen_tls[CONFIG_STR_MAX];
	char tls_cert[CONFIG_STR_MAX];
	char tls_key[CONFIG_STR_MAX];
	char tls_ciphers[CONFIG_STR_MAX];
	char tls_min_version[CONFIG_STR_MAX];
	char require_tls[CONFIG_STR_MAX];
	char proxy_listen[CONFIG_STR_MAX];
	char proxy_listen_tls[CONFIG_STR_MAX];
	char proxy_trusted[CONFIG_STR_MAX];
	char log[CONFIG_STR_MAX];
	long idle_timeout;
	long login_timeout;
	long max_message_size;
	long max_sessions;
	long max_sessions_per_ip;
	long max_recipients;
	long queue_interval;
	long retry_min;
	long retry_max;
	long max_queue_lifetime;
	long concurrency;
	long lease_time;
	long sent_retention;
	long auth_timeout;
	long auth_cache_ttl;
	long auth_fail_limit;
	long auth_fail_window;
	long delivery_timeout;
	long proxy_timeout;
	long drain_timeout;
	long delay_warning_time;
};

/*
 * Which file to read: arg (-c) when not NULL, else $MPP_CONFIG, else the
 * default. *explicit is set when the file was named (then it must exist).
 */
const char *config_path(const char *arg, int *explicit_path);

/* The -c FILE and -o key=value options every program takes. */
struct config_cli {
	const char *path;		/* -c, or NULL */
	char *overrides[CONFIG_OVERRIDES_MAX];
	size_t noverrides;
};

/* Take getopt's ch/arg if it is -c or -o: 1 taken, 0 not one of them,
   -1 too many -o. */
int config_cli_option(struct config_cli *cli, int ch, char *arg);

/*
 * Load the configuration the way every program does: -c, else
 * $MPP_CONFIG, else the default file (which alone may be missing), then
 * the -o overrides. *used (may be NULL) receives the file's path. -1 with
 * err naming file, line and key.
 */
int config_cli_load(struct mpp_config *cfg, const struct config_cli *cli,
    const char **used, char *err, size_t errsz);

/* Fill cfg with every key's default. */
void config_defaults(struct mpp_config *cfg);

/*
 * Load defaults, then path (a missing file is an error only when
 * must_exist), then each "key=value" of overrides in order. On error returns
 * -1 with a one-line message in err naming file, line and key.
 */
int config_load(struct mpp_config *cfg, const char *path, int must_exist,
    char *const *overrides, size_t noverrides, char *err, size_t errsz);

/*
 * Length of a config line without its comment: '#' starts one wherever it
 * appears. The rule of mpp.conf, and of mppsend's ~/.mpprc too.
 */
size_t config_comment_at(const char *line);

/* Set one key from its text value; -1 with a message in err (no location). */
int config_set(struct mpp_config *cfg, const char *key, const char *value,
    char *err, size_t errsz);

/*
 * Parse "HOST:PORT", "[V6ADDR]:PORT", "HOST" (port = default_port) into
 * host (brackets removed) and port. Returns 0, or -1 when malformed.
 */
int config_split_hostport(const char *s, size_t len, char *host,
    size_t hostsz, int *port, int default_port);

/* Envelope address of an authenticated user: USER, or USER@sender_domain. */
int config_user_address(const struct mpp_config *cfg, const char *user,
    char *out, size_t outsz);

#endif
