/*
 * config — the one configuration file every program reads (DESIGN.md,
 * "Programs and their interfaces"). Keys are a table: name, type, bounds,
 * default. A bad file is reported once, naming file, line and key; callers
 * exit EX_CONFIG (78).
 */
#ifndef MPP_CONFIG_H
#define MPP_CONFIG_H

#include <stddef.h>

#include "cidr.h"

#define CONFIG_DEFAULT_PATH "/etc/mpp/mpp.conf"
#define CONFIG_STR_MAX 1024
#define CONFIG_LINE_MAX 4096
#define CONFIG_OVERRIDES_MAX 64
#define CONFIG_HOST_MAX 256	/* a host name or address, with its NUL */
#define CONFIG_LISTEN_MAX 16	/* addresses in one listen key */
#define CONFIG_AUTH_MAX 8	/* backends in the auth key */
#define CONFIG_RELAYS_MAX 8	/* relays of a transport */
#define CONFIG_SENDMAIL_ARGS_MAX 16	/* fixed arguments of sendmail:PATH */
#define CONFIG_SENDMAIL_ARG_MAX 256	/* one of them, with its NUL */

/*
 * Every value is parsed once, when the file is loaded, into the typed
 * field below; the programs read fields, never the text. A value with
 * parts (a list, a backend, a transport) keeps the text it was given in
 * .text, for log lines and messages only.
 */

/* HOST:PORT, [V6ADDR]:PORT or (where a default port applies) HOST. */
struct config_hostport {
	char host[CONFIG_HOST_MAX];	/* without brackets */
	int port;
};

/* listen, listen_tls: addresses to bind, in order. */
struct config_listen {
	size_t n;			/* 0: none (listen_tls only) */
	struct config_hostport addr[CONFIG_LISTEN_MAX];
	char text[CONFIG_STR_MAX];
};

/* What follows "NAME:" in a backend or a transport. */
enum config_arg {
	CONFIG_ARG_PATH,	/* an absolute path */
	CONFIG_ARG_HOST,	/* HOST[:PORT], the row's port by default */
	CONFIG_ARG_RELAY	/* HOST:PORT, the port required */
};

/*
 * The auth backends: name (the prefix in the auth key), what follows
 * it, default port. Each row is an enum value CONFIG_AUTH_name here and
 * an entry auth_name_ops in mppd/auth.c's table: a new backend is one
 * row and one file that defines its ops (docs/architecture.md).
 */
#define CONFIG_AUTH_BACKENDS(X) \
	X(file, CONFIG_ARG_PATH, 0) \
	X(pop3, CONFIG_ARG_HOST, 110) \
	X(ftp, CONFIG_ARG_HOST, 21)

/*
 * The transports, likewise: CONFIG_TRANSPORT_name here and
 * transport_name_ops in mppqueue/transport.c's table.
 */
#define CONFIG_TRANSPORTS(X) \
	X(smtp, CONFIG_ARG_RELAY, 0) \
	X(smtps, CONFIG_ARG_HOST, 465) \
	X(sendmail, CONFIG_ARG_PATH, 0) \
	X(maildir, CONFIG_ARG_PATH, 0)

#define CONFIG_KIND(name, arg, port) CONFIG_AUTH_##name,
enum config_auth_kind { CONFIG_AUTH_BACKENDS(CONFIG_KIND) CONFIG_AUTH_KINDS };
#undef CONFIG_KIND
#define CONFIG_KIND(name, arg, port) CONFIG_TRANSPORT_##name,
enum config_transport_kind { CONFIG_TRANSPORTS(CONFIG_KIND) CONFIG_TRANSPORT_KINDS };
#undef CONFIG_KIND

/* One entry of the auth key. */
struct config_auth_backend {
	enum config_auth_kind kind;
	char path[CONFIG_STR_MAX];	/* CONFIG_ARG_PATH */
	struct config_hostport server;	/* CONFIG_ARG_HOST */
};

/* auth: the backends, tried in order. */
struct config_auth {
	size_t n;			/* at least 1 */
	struct config_auth_backend b[CONFIG_AUTH_MAX];
	char text[CONFIG_STR_MAX];
};

/*
 * transport. An SMTP transport (smtp:, smtps:) names its relays in order
 * of preference, "HOST:PORT, HOST:PORT..."; a sendmail transport's fixed
 * arguments, split on blanks (no quoting: an argument cannot hold a
 * blank), go beside its path.
 */
struct config_transport {
	enum config_transport_kind kind;
	char path[CONFIG_STR_MAX];	/* CONFIG_ARG_PATH */
	size_t nargs;			/* sendmail: fixed arguments */
	char args[CONFIG_SENDMAIL_ARGS_MAX][CONFIG_SENDMAIL_ARG_MAX];
	size_t nrelays;			/* CONFIG_ARG_RELAY or _HOST */
	struct config_hostport relay[CONFIG_RELAYS_MAX];
	char text[CONFIG_STR_MAX];
};

enum config_tls_version { CONFIG_TLS_1_2, CONFIG_TLS_1_3 };

/* smtp_tls: what the SMTP transport asks of TLS with its relays. */
enum config_smtp_tls {
	CONFIG_SMTP_TLS_NONE,		/* never STARTTLS */
	CONFIG_SMTP_TLS_MAY,		/* STARTTLS when offered */
	CONFIG_SMTP_TLS_ENCRYPT,	/* TLS or no delivery */
	CONFIG_SMTP_TLS_VERIFY		/* ... with the relay's name verified */
};

/* log: where lines go, as log_use() takes it. */
struct config_log {
	int to;				/* log.h's LOG_TO_SYSLOG, _STDERR, _FILE */
	char path[CONFIG_STR_MAX];	/* LOG_TO_FILE: absolute */
	char text[CONFIG_STR_MAX];
};

struct mpp_config {
	char spool_dir[CONFIG_STR_MAX];
	struct config_listen listen;
	char user[CONFIG_STR_MAX];
	char hostname[CONFIG_STR_MAX];
	char sender_domain[CONFIG_STR_MAX];
	struct config_auth auth;
	struct config_transport transport;
	struct config_listen listen_tls;
	char tls_cert[CONFIG_STR_MAX];
	char tls_key[CONFIG_STR_MAX];
	char tls_ciphers[CONFIG_STR_MAX];
	enum config_tls_version tls_min_version;
	int require_tls;		/* yes: 1, no: 0 */
	struct config_listen proxy_listen;	/* PROXY protocol ports */
	struct config_listen proxy_listen_tls;
	struct cidr_list proxy_trusted;		/* who may send a PROXY header */
	struct config_log log;
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
	long relay_probe_max;
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
	enum config_smtp_tls smtp_tls;
	char smtp_tls_ca[CONFIG_STR_MAX];	/* "": the system store */
	char smtp_auth_file[CONFIG_STR_MAX];	/* "": no AUTH */
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

/* The name of a backend or a transport as the config spells it ("pop3"). */
const char *config_auth_name(enum config_auth_kind kind);
const char *config_transport_name(enum config_transport_kind kind);

/* Envelope address of an authenticated user: USER, or USER@sender_domain. */
int config_user_address(const struct mpp_config *cfg, const char *user,
    char *out, size_t outsz);

#endif
