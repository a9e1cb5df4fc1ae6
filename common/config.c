/*
 * config — parse "key = value" lines into struct mpp_config. Every key is a
 * row of config_keys[]: a number is checked against the row's bounds, a
 * string by the row's checker, and a value with a syntax of its own
 * (listen, auth, transport, log, yes/no, a TLS version) is parsed by the
 * row's parser into its typed field, here and nowhere else. A new key is a
 * field in struct mpp_config and a row: S() for a string used as it is,
 * L() for a number, V() with a parser for anything else (a list of
 * addresses is V(key, "", parse_listen_opt) and a struct config_listen).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cidr.h"
#include "config.h"
#include "log.h"

enum key_type { KEY_STR, KEY_LONG, KEY_VALUE };

typedef int (*key_check)(const char *value);
/* Fill the field from value; -1 (the field untouched) when malformed. */
typedef int (*key_parse)(const char *value, void *field);

struct config_key {
	const char *name;
	enum key_type type;
	size_t offset;
	const char *def;	/* default as text; NULL: computed */
	long min, max;		/* KEY_LONG bounds */
	key_check check;	/* KEY_STR syntax, may be NULL */
	key_parse parse;	/* KEY_VALUE */
};

static int check_path(const char *);
static int check_path_opt(const char *);
static int check_domain(const char *);
static int parse_listen(const char *, void *);
static int parse_listen_opt(const char *, void *);
static int parse_auth(const char *, void *);
static int parse_transport(const char *, void *);
static int parse_tls_version(const char *, void *);
static int parse_yesno(const char *, void *);
static int parse_log(const char *, void *);
static int parse_cidr_list(const char *, void *);
static int parse_smtp_tls(const char *, void *);

/* Mozilla's "intermediate" profile for TLS 1.2 (TLS 1.3 suites are
   OpenSSL's defaults, all of which the profile allows). */
#define TLS_CIPHERS_INTERMEDIATE "ECDHE-ECDSA-AES128-GCM-SHA256:" \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
    "ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:" \
    "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

#define S(k, d, c) { #k, KEY_STR, offsetof(struct mpp_config, k), d, 0, 0, c, NULL }
#define L(k, d, lo, hi) { #k, KEY_LONG, offsetof(struct mpp_config, k), d, lo, hi, NULL, NULL }
#define V(k, d, p) { #k, KEY_VALUE, offsetof(struct mpp_config, k), d, 0, 0, NULL, p }

static const struct config_key config_keys[] = {
	S(spool_dir, "/var/spool/mpp", check_path),
	V(listen, "0.0.0.0:218", parse_listen),
	S(user, "mpp", NULL),
	S(hostname, NULL, check_domain),
	S(sender_domain, NULL, check_domain),
	V(auth, "file:/etc/mpp/passwd", parse_auth),
	V(transport, "sendmail:/usr/sbin/sendmail", parse_transport),
	V(listen_tls, "", parse_listen_opt),
	S(tls_cert, "", check_path_opt),
	S(tls_key, "", check_path_opt),
	S(tls_ciphers, TLS_CIPHERS_INTERMEDIATE, NULL),
	V(tls_min_version, "1.2", parse_tls_version),
	V(require_tls, "no", parse_yesno),
	V(proxy_listen, "", parse_listen_opt),
	V(proxy_listen_tls, "", parse_listen_opt),
	V(proxy_trusted, "", parse_cidr_list),
	V(log, "syslog", parse_log),
	L(idle_timeout, "300", 1, 86400),
	L(login_timeout, "60", 1, 3600),
	L(max_message_size, "10485760", 1024, 1073741824),
	L(max_sessions, "1000", 1, 1000000),
	L(max_sessions_per_ip, "50", 1, 1000000),
	L(max_recipients, "1000", 1, 100000),
	L(queue_interval, "60", 1, 86400),
	L(retry_min, "60", 1, 86400),
	L(retry_max, "3600", 1, 604800),
	L(max_queue_lifetime, "432000", 1, 31536000),
	L(relay_probe_max, "60", 1, 3600),
	L(concurrency, "4", 1, 256),
	L(lease_time, "600", 10, 86400),
	L(sent_retention, "604800", 0, 31536000),
	L(auth_timeout, "10", 1, 300),
	L(auth_cache_ttl, "0", 0, 86400),
	L(auth_fail_limit, "10", 0, 1000000),
	L(auth_fail_window, "300", 1, 86400),
	L(delivery_timeout, "300", 1, 86400),
	L(proxy_timeout, "5", 1, 60),
	L(drain_timeout, "120", 1, 86400),
	L(delay_warning_time, "0", 0, 31536000),
	V(smtp_tls, "may", parse_smtp_tls),
	S(smtp_tls_ca, "", check_path_opt),
	S(smtp_auth_file, "", check_path_opt),
};

#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

const char *
config_path(const char *arg, int *explicit_path)
{
	const char *env;

	*explicit_path = 1;
	if (arg != NULL)
		return arg;
	env = getenv("MPP_CONFIG");
	if (env != NULL && *env != '\0')
		return env;
	*explicit_path = 0;
	return CONFIG_DEFAULT_PATH;
}

static const struct config_key *
config_find(const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

static int
parse_long(const char *s, long *out)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
key_assign(struct mpp_config *cfg, const struct config_key *k,
    const char *value, char *err, size_t errsz)
{
	char *field = (char *)cfg + k->offset;
	long v;

	if (k->type == KEY_LONG) {
		if (parse_long(value, &v) == -1 || v < k->min || v > k->max) {
			snprintf(err, errsz, "bad value \"%s\" for %s "
			    "(a whole number from %ld to %ld)", value,
			    k->name, k->min, k->max);
			return -1;
		}
		memcpy(field, &v, sizeof(v));
		return 0;
	}
	if (strlen(value) >= CONFIG_STR_MAX) {
		snprintf(err, errsz, "value of %s is too long", k->name);
		return -1;
	}
	if ((k->type == KEY_STR && k->check != NULL && k->check(value) == -1) ||
	    (k->type == KEY_VALUE && k->parse(value, field) == -1)) {
		snprintf(err, errsz, "bad value \"%s\" for %s", value,
		    k->name);
		return -1;
	}
	if (k->type == KEY_STR)
		strlcpy(field, value, CONFIG_STR_MAX);
	return 0;
}

int
config_set(struct mpp_config *cfg, const char *key, const char *value,
    char *err, size_t errsz)
{
	const struct config_key *k = config_find(key);

	if (k == NULL) {
		snprintf(err, errsz, "unknown key %s", key);
		return -1;
	}
	return key_assign(cfg, k, value, err, errsz);
}

int
config_cli_option(struct config_cli *cli, int ch, char *arg)
{
	if (ch == 'c') {
		cli->path = arg;
		return 1;
	}
	if (ch != 'o')
		return 0;
	if (cli->noverrides == CONFIG_OVERRIDES_MAX)
		return -1;
	cli->overrides[cli->noverrides++] = arg;
	return 1;
}

int
config_cli_load(struct mpp_config *cfg, const struct config_cli *cli,
    const char **used, char *err, size_t errsz)
{
	int explicit_path;
	const char *path = config_path(cli->path, &explicit_path);

	if (used != NULL)
		*used = path;
	return config_load(cfg, path, explicit_path, cli->overrides,
	    cli->noverrides, err, errsz);
}

void
config_defaults(struct mpp_config *cfg)
{
	char err[256];
	char host[256];
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < NKEYS; i++)
		if (config_keys[i].def != NULL)
			(void)key_assign(cfg, &config_keys[i],
			    config_keys[i].def, err, sizeof(err));
	if (gethostname(host, sizeof(host)) == -1)
		strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	strlcpy(cfg->hostname, host, sizeof(cfg->hostname));
}

/* Trim leading and trailing blanks in place; returns the new start. */
static char *
trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

/* Split "key = value" (or "key=value"); -1 when there is no '='. */
static int
split_kv(char *line, char **key, char **value)
{
	char *eq = strchr(line, '=');

	if (eq == NULL)
		return -1;
	*eq = '\0';
	*key = trim(line);
	*value = trim(eq + 1);
	return **key == '\0' ? -1 : 0;
}

size_t
config_comment_at(const char *line)
{
	return strcspn(line, "#");
}

static int
config_line(struct mpp_config *cfg, char *line, const char *where,
    char *err, size_t errsz)
{
	char *key, *value, msg[512];

	line[config_comment_at(line)] = '\0';
	line = trim(line);
	if (*line == '\0')
		return 0;
	if (split_kv(line, &key, &value) == -1) {
		snprintf(err, errsz, "%s: expected \"key = value\"", where);
		return -1;
	}
	if (config_set(cfg, key, value, msg, sizeof(msg)) == -1) {
		snprintf(err, errsz, "%s: %s", where, msg);
		return -1;
	}
	return 0;
}

/*
 * Whoever can change the config file decides what the programs run, as
 * which user, and where mail goes: say so when that is more than root and
 * the user reading it (still root, for mppd before it drops privileges).
 */
static void
config_check_perms(FILE *fp, const char *path)
{
	struct stat st;

	if (fstat(fileno(fp), &st) == -1)
		return;
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		log_warnx("config file %s is writable by %s", path,
		    st.st_mode & S_IWOTH ? "others" : "its group");
	else if (st.st_uid != 0 && st.st_uid != geteuid())
		log_warnx("config file %s is owned by uid %ld, who can change "
		    "it", path, (long)st.st_uid);
}

static int
config_read_file(struct mpp_config *cfg, const char *path, int must_exist,
    char *err, size_t errsz)
{
	char line[CONFIG_LINE_MAX], where[CONFIG_STR_MAX + 32];
	FILE *fp;
	int lineno = 0, rc = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		if (errno == ENOENT && !must_exist)
			return 0;
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	config_check_perms(fp, path);
	while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(err, errsz, "%s: line too long", where);
			rc = -1;
		} else
			rc = config_line(cfg, line, where, err, errsz);
	}
	if (rc == 0 && ferror(fp)) {
		snprintf(err, errsz, "%s: read error", path);
		rc = -1;
	}
	fclose(fp);
	return rc;
}

int
config_load(struct mpp_config *cfg, const char *path, int must_exist,
    char *const *overrides, size_t noverrides, char *err, size_t errsz)
{
	char line[CONFIG_LINE_MAX], where[64];
	size_t i;

	config_defaults(cfg);
	if (path != NULL &&
	    config_read_file(cfg, path, must_exist, err, errsz) == -1)
		return -1;
	for (i = 0; i < noverrides; i++) {
		if (strlcpy(line, overrides[i], sizeof(line)) >= sizeof(line)) {
			snprintf(err, errsz, "-o %zu: too long", i + 1);
			return -1;
		}
		snprintf(where, sizeof(where), "command line (-o %zu)", i + 1);
		if (config_line(cfg, line, where, err, errsz) == -1)
			return -1;
	}
	if (cfg->sender_domain[0] == '\0')
		strlcpy(cfg->sender_domain, cfg->hostname, CONFIG_STR_MAX);
	if ((cfg->listen_tls.n > 0 || cfg->proxy_listen_tls.n > 0) &&
	    (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0')) {
		snprintf(err, errsz, "%s: key %s: needs tls_cert and tls_key",
		    path != NULL ? path : "config", cfg->listen_tls.n > 0 ?
		    "listen_tls" : "proxy_listen_tls");
		return -1;
	}
	/* A PROXY port that trusts no one would refuse every connection. */
	if ((cfg->proxy_listen.n > 0 || cfg->proxy_listen_tls.n > 0) &&
	    cfg->proxy_trusted.n == 0) {
		snprintf(err, errsz, "%s: key %s: needs proxy_trusted (the "
		    "balancers' addresses)", path != NULL ? path : "config",
		    cfg->proxy_listen.n > 0 ? "proxy_listen" :
		    "proxy_listen_tls");
		return -1;
	}
	/* A claim must outlast the longest attempt, or another runner could
	   take the message while it is still being sent. */
	if (cfg->lease_time <= cfg->delivery_timeout) {
		snprintf(err, errsz, "%s: key lease_time: must be longer than "
		    "delivery_timeout (%ld s)", path != NULL ? path : "config",
		    cfg->delivery_timeout);
		return -1;
	}
	if (cfg->retry_max < cfg->retry_min) {
		snprintf(err, errsz, "%s: key retry_max: smaller than "
		    "retry_min", path != NULL ? path : "config");
		return -1;
	}
	return 0;
}

int
config_split_hostport(const char *s, size_t len, char *host, size_t hostsz,
    int *port, int default_port)
{
	const char *hend, *pstart = NULL, *end = s + len;
	long p;
	char pbuf[8], *pe;

	if (len == 0)
		return -1;
	if (*s == '[') {
		hend = memchr(s, ']', len);
		if (hend == NULL || hend == s + 1)
			return -1;
		if (hend + 1 < end && hend[1] != ':')
			return -1;
		pstart = hend + 1 < end ? hend + 2 : NULL;
		s++;
	} else {
		hend = memchr(s, ':', len);
		if (hend != NULL && memchr(hend + 1, ':', (size_t)(end - hend - 1)))
			return -1;	/* bare IPv6 needs brackets */
		if (hend != NULL)
			pstart = hend + 1;
		else
			hend = end;
	}
	if (hend == s || (size_t)(hend - s) >= hostsz)
		return -1;
	memcpy(host, s, (size_t)(hend - s));
	host[hend - s] = '\0';
	*port = default_port;
	if (pstart == NULL)
		return 0;
	if (pstart >= end || (size_t)(end - pstart) >= sizeof(pbuf))
		return -1;
	memcpy(pbuf, pstart, (size_t)(end - pstart));
	pbuf[end - pstart] = '\0';
	if (!isdigit((unsigned char)pbuf[0]))
		return -1;
	p = strtol(pbuf, &pe, 10);
	if (*pe != '\0' || p < 1 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

/* A comma-separated list: each item blank-trimmed, none empty. */
struct item {
	const char *s;
	size_t len;
};

static int
split_list(const char *list, struct item *items, size_t max, size_t *n)
{
	const char *p = list, *comma, *e;

	for (*n = 0;; p = comma + 1) {
		while (*p == ' ' || *p == '\t')
			p++;
		comma = strchr(p, ',');
		e = comma != NULL ? comma : p + strlen(p);
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == p || *n == max)
			return -1;
		items[*n].s = p;
		items[(*n)++].len = (size_t)(e - p);
		if (comma == NULL)
			return 0;
	}
}

/* HOST:PORT with the port given, or with default_port when it is not 0. */
static int
parse_hostport(const char *s, size_t len, struct config_hostport *hp,
    int default_port)
{
	if (config_split_hostport(s, len, hp->host, sizeof(hp->host),
	    &hp->port, default_port) == -1)
		return -1;
	return hp->port == 0 ? -1 : 0;
}

static int
parse_listen(const char *v, void *field)
{
	struct config_listen l;
	struct item items[CONFIG_LISTEN_MAX];
	size_t i;

	memset(&l, 0, sizeof(l));
	if (split_list(v, items, CONFIG_LISTEN_MAX, &l.n) == -1)
		return -1;
	for (i = 0; i < l.n; i++)
		if (parse_hostport(items[i].s, items[i].len, &l.addr[i], 0) ==
		    -1)
			return -1;
	strlcpy(l.text, v, sizeof(l.text));
	memcpy(field, &l, sizeof(l));
	return 0;
}

static int
parse_listen_opt(const char *v, void *field)
{
	struct config_listen none;

	if (v[0] != '\0')
		return parse_listen(v, field);
	memset(&none, 0, sizeof(none));
	memcpy(field, &none, sizeof(none));
	return 0;
}

/* A row of CONFIG_AUTH_BACKENDS or CONFIG_TRANSPORTS. */
struct scheme {
	const char *name;
	enum config_arg arg;
	int port;
};

#define SCHEME_ROW(name, arg, port) { #name, arg, port },
static const struct scheme auth_schemes[] = {
	CONFIG_AUTH_BACKENDS(SCHEME_ROW)
};
static const struct scheme transport_schemes[] = {
	CONFIG_TRANSPORTS(SCHEME_ROW)
};
#undef SCHEME_ROW

/* What "NAME:ARG" (s, len) names, and its argument parsed. */
struct target {
	size_t kind;			/* the row's index */
	char path[CONFIG_STR_MAX];
	struct config_hostport hp;
};

static int
parse_target(const struct scheme *rows, size_t nrows, const char *s,
    size_t len, struct target *t)
{
	const char *colon = memchr(s, ':', len), *arg;
	size_t alen;

	if (colon == NULL)
		return -1;
	arg = colon + 1;
	alen = len - (size_t)(arg - s);
	for (t->kind = 0; t->kind < nrows; t->kind++)
		if (strlen(rows[t->kind].name) == (size_t)(colon - s) &&
		    memcmp(rows[t->kind].name, s, (size_t)(colon - s)) == 0)
			break;
	if (t->kind == nrows)
		return -1;
	switch (rows[t->kind].arg) {
	case CONFIG_ARG_PATH:
		if (alen == 0 || arg[0] != '/' || alen >= sizeof(t->path))
			return -1;
		memcpy(t->path, arg, alen);
		t->path[alen] = '\0';
		return 0;
	case CONFIG_ARG_HOST:
		return parse_hostport(arg, alen, &t->hp, rows[t->kind].port);
	case CONFIG_ARG_RELAY:
		return parse_hostport(arg, alen, &t->hp, 0);
	}
	return -1;
}

static int
parse_auth(const char *v, void *field)
{
	struct config_auth *a;
	struct item items[CONFIG_AUTH_MAX];
	struct target t;
	size_t i;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -1;
	if (split_list(v, items, CONFIG_AUTH_MAX, &a->n) == -1)
		goto fail;
	for (i = 0; i < a->n; i++) {
		memset(&t, 0, sizeof(t));
		if (parse_target(auth_schemes, CONFIG_AUTH_KINDS, items[i].s,
		    items[i].len, &t) == -1)
			goto fail;
		a->b[i].kind = (enum config_auth_kind)t.kind;
		memcpy(a->b[i].path, t.path, sizeof(t.path));
		a->b[i].server = t.hp;
	}
	strlcpy(a->text, v, sizeof(a->text));
	memcpy(field, a, sizeof(*a));
	free(a);
	return 0;
fail:
	free(a);
	return -1;
}

/*
 * The relays of "NAME:HOST:PORT, HOST:PORT...", each with the row's port
 * when it has one: the first through parse_target(), the rest here.
 */
static int
parse_relays(const char *v, const struct target *t,
    struct config_transport *tr)
{
	struct item items[CONFIG_RELAYS_MAX];
	size_t i;

	if (split_list(v, items, CONFIG_RELAYS_MAX, &tr->nrelays) == -1)
		return -1;
	tr->relay[0] = t->hp;
	for (i = 1; i < tr->nrelays; i++)
		if (parse_hostport(items[i].s, items[i].len, &tr->relay[i],
		    transport_schemes[t->kind].port) == -1)
			return -1;
	return 0;
}

/* Does v name a transport whose argument is a path (which may hold a ,)? */
static int
transport_takes_path(const char *v)
{
	size_t n = strcspn(v, ":"), i;

	for (i = 0; i < CONFIG_TRANSPORT_KINDS; i++)
		if (strlen(transport_schemes[i].name) == n &&
		    memcmp(transport_schemes[i].name, v, n) == 0)
			return transport_schemes[i].arg == CONFIG_ARG_PATH;
	return 1;
}

/*
 * "sendmail:PATH ARG...": tr->path held all of it; it keeps PATH, and
 * the words after it go to tr->args. Words are split on blanks and
 * nothing else (no shell, no quotes). A "--" is refused: it would turn
 * the "-i -f SENDER" that follow into recipients; so is a control
 * character, which no command line needs.
 */
static int
split_sendmail_args(struct config_transport *tr)
{
	char *p, *w;
	size_t len;

	for (p = tr->path; *p != '\0'; p++)
		if ((*p > 0 && *p < ' ' && *p != '\t') || *p == 0x7f)
			return -1;
	p = tr->path + strcspn(tr->path, " \t");
	if (*p == '\0')
		return 0;
	*p++ = '\0';
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			return 0;
		w = p;
		len = strcspn(w, " \t");
		p += len;
		if (tr->nargs == CONFIG_SENDMAIL_ARGS_MAX ||
		    len >= CONFIG_SENDMAIL_ARG_MAX ||
		    (len == 2 && memcmp(w, "--", 2) == 0))
			return -1;
		memcpy(tr->args[tr->nargs], w, len);
		tr->args[tr->nargs++][len] = '\0';
	}
}

static int
parse_transport(const char *v, void *field)
{
	struct config_transport *tr;
	struct target t;
	size_t len = transport_takes_path(v) ? strlen(v) : strcspn(v, ",");

	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	memset(&t, 0, sizeof(t));
	if (parse_target(transport_schemes, CONFIG_TRANSPORT_KINDS, v, len,
	    &t) == -1 || (tr = calloc(1, sizeof(*tr))) == NULL)
		return -1;
	tr->kind = (enum config_transport_kind)t.kind;
	memcpy(tr->path, t.path, sizeof(t.path));
	if (tr->kind == CONFIG_TRANSPORT_sendmail &&
	    split_sendmail_args(tr) == -1) {
		free(tr);
		return -1;
	}
	if (transport_schemes[t.kind].arg != CONFIG_ARG_PATH &&
	    parse_relays(v, &t, tr) == -1) {
		free(tr);
		return -1;
	}
	strlcpy(tr->text, v, sizeof(tr->text));
	memcpy(field, tr, sizeof(*tr));
	free(tr);
	return 0;
}

const char *
config_auth_name(enum config_auth_kind kind)
{
	return (size_t)kind < CONFIG_AUTH_KINDS ? auth_schemes[kind].name :
	    "?";
}

const char *
config_transport_name(enum config_transport_kind kind)
{
	return (size_t)kind < CONFIG_TRANSPORT_KINDS ?
	    transport_schemes[kind].name : "?";
}

static int
check_path(const char *v)
{
	return v[0] == '/' ? 0 : -1;
}

static int
check_path_opt(const char *v)
{
	return v[0] == '\0' ? 0 : check_path(v);
}

static int
parse_tls_version(const char *v, void *field)
{
	enum config_tls_version ver;

	if (strcmp(v, "1.2") == 0)
		ver = CONFIG_TLS_1_2;
	else if (strcmp(v, "1.3") == 0)
		ver = CONFIG_TLS_1_3;
	else
		return -1;
	memcpy(field, &ver, sizeof(ver));
	return 0;
}

/* A DNS name (letters, digits, '-', '.', '_'), as it goes into headers
   and SMTP commands. */
static int
check_domain(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > 253 || v[0] == '.' || v[0] == '-' ||
	    strstr(v, "..") != NULL)
		return -1;
	return strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789-._") == n ? 0 : -1;
}

/* Addresses and networks (cidr.h); the empty list too. */
static int
parse_cidr_list(const char *v, void *field)
{
	struct cidr_list l;
	char err[128];

	if (cidr_list_parse(v, &l, err, sizeof(err)) == -1)
		return -1;
	memcpy(field, &l, sizeof(l));
	return 0;
}

/* syslog, stderr or file:PATH (log_spec_parse()). */
static int
parse_log(const char *v, void *field)
{
	struct config_log l;
	const char *path;

	memset(&l, 0, sizeof(l));
	if (log_spec_parse(v, &l.to, &path) == -1)
		return -1;
	if (path != NULL)
		strlcpy(l.path, path, sizeof(l.path));
	strlcpy(l.text, v, sizeof(l.text));
	memcpy(field, &l, sizeof(l));
	return 0;
}

/* none, may, encrypt or verify. */
static int
parse_smtp_tls(const char *v, void *field)
{
	static const char *const names[] = { "none", "may", "encrypt",
	    "verify" };
	enum config_smtp_tls mode;

	for (mode = CONFIG_SMTP_TLS_NONE; mode <= CONFIG_SMTP_TLS_VERIFY;
	    mode++)
		if (strcmp(v, names[mode]) == 0) {
			memcpy(field, &mode, sizeof(mode));
			return 0;
		}
	return -1;
}

static int
parse_yesno(const char *v, void *field)
{
	int yes;

	if (strcmp(v, "yes") == 0)
		yes = 1;
	else if (strcmp(v, "no") == 0)
		yes = 0;
	else
		return -1;
	memcpy(field, &yes, sizeof(yes));
	return 0;
}

int
config_user_address(const struct mpp_config *cfg, const char *user,
    char *out, size_t outsz)
{
	int n;

	if (strchr(user, '@') != NULL)
		n = snprintf(out, outsz, "%s", user);
	else
		n = snprintf(out, outsz, "%s@%s", user, cfg->sender_domain);
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}
