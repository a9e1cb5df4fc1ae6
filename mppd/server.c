/*
 * server — see server.h. A connection (struct conn) lives until its
 * socket is gone AND no job of its session is in flight; a job holds the
 * conn, so a client that disconnects while its message is being committed
 * cannot free memory a worker still writes to.
 *
 * What one connection may hold is bounded: input waiting to be read by
 * the session (CONN_INPUT_HIGH) and replies waiting to be sent
 * (CONN_OUTPUT_HIGH). Past either bound the socket is not read until the
 * session, or the client, has caught up. Time is bounded too: the login
 * (login_timeout from connect), a command line (idle_timeout from its
 * first byte) and silence (idle_timeout).
 *
 * On a PROXY port (proxy_listen) a connection from a trusted balancer
 * waits for its header first (proxy_wait), and only then becomes a conn,
 * with the client address the header gives.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>

#include <openssl/err.h>

#include <bsd/string.h>

#include "auth_gate.h"
#include "cidr.h"
#include "iplimit.h"
#include "log.h"
#include "message.h"
#include "net.h"
#include "proxy_wait.h"
#include "server.h"
#include "session.h"
#include "store.h"
#include "tls.h"
#include "util.h"
#include "workq.h"

#define CONN_INPUT_HIGH (64 * 1024)	/* input held while a job runs */
#define CONN_READ_FULL 4096		/* libevent 2.1's most per read */
#define CONN_OUTPUT_HIGH (4 * 1024)	/* unsent replies: reading stops */
#define CONN_OUTPUT_LOW 1024		/* ... and resumes */
#define SHUTDOWN_GRACE_SEC 30
#define THROTTLE_DELAY_MS 2000		/* a throttled PASS waits this long */
#define ACCEPT_PAUSE_MS 100		/* listeners rest after accept fails */
#define LISTEN_BACKLOG 1024
#define DRAIN_ACCEPT_MAX LISTEN_BACKLOG	/* taken from a backlog at drain */
/*
 * Auth workers: enough for the CPU when checks are local crypt(3) calls;
 * many more when a check may wait up to auth_timeout on a remote server,
 * so a dead backend holds threads, not every other login.
 */
#define AUTH_THREADS_LOCAL 4
#define AUTH_THREADS_REMOTE 32

struct server;

struct conn {
	struct server *srv;
	struct conn *prev, *next;
	struct bufferevent *bev;
	int outfd;			/* -i on a pipe: replies go here */
	struct session *s;
	char addr[64];
	char qid[SESSION_QID_MAX];
	int jobs;			/* auth or store in flight */
	int gone;			/* socket closed */
	int eof;			/* client finished sending */
	int counted;			/* in the per-address table */
	int tls;			/* a TLS listener's connection */
	int tls_up;			/* its handshake is done */
	char id[16];			/* the session's, for log lines */
	struct event *delay;		/* a throttled PASS's answer */
	struct auth_job *auth_wait;	/* its PASS waits for a check slot */
	struct event *login_ev;		/* login_timeout from connect */
	struct event *line_ev;		/* idle_timeout from a line's start */
	int login_late;			/* login_ev fired, PASS 250 not given */
	struct store_req req;		/* the text in progress */
};

struct auth_job {
	struct workq_job job;
	struct conn *c;
	struct auth_gate_ticket ticket;	/* its place at the gate */
	struct auth *auth;
	char user[SESSION_USER_MAX + 1];
	char pass[SESSION_LINE_MAX];
	char detail[512];
	enum outcome result;
};

struct listener {
	struct server *srv;
	int tls;
	int proxy;			/* a PROXY header comes first */
};

struct server {
	struct server_ctx *ctx;
	const struct mpp_config *cfg;
	struct event_base *base;
	struct evconnlistener *lev[SERVER_MAX_LISTEN];
	struct listener lsn[SERVER_MAX_LISTEN];
	size_t nlev;
	unsigned long tls_failures;
	struct event *accept_pause;	/* re-enables listeners after EMFILE */
	time_t accept_warned;
	struct workq *authq;
	struct store *store;
	struct event *auth_ev, *store_ev, *sig_ev[5];
	struct event *drain_ev;		/* drain_timeout after SIGUSR2 */
	struct proxy_wait *waits;	/* PROXY headers awaited */
	struct iplimit *per_ip;
	struct auth_gate *gate;		/* auth_fail_limit */
	struct conn *conns;
	long nsessions;
	unsigned long next_id;
	int stopping;
	int draining;			/* SIGUSR2: no new connections */
	int inetd;
};

static void conn_pump(struct conn *c);
static void conn_close(struct conn *c, const char *reason);
static void conn_release(struct conn *c);
static void conn_timers_free(struct conn *c);
static void server_exit_when_idle(struct server *srv);

/* Session hooks */

/*
 * A reply with nothing queued before it goes to the socket at once: the
 * bufferevent would first ask epoll for room and send it a turn of the
 * loop later, three system calls and a wake-up of the client late. What
 * the socket does not take now (a client that does not read), or an
 * error, is left to the bufferevent, which queues, bounds and reports it
 * as before. TLS writes go through OpenSSL.
 */
static void
conn_send_now(struct conn *c, const char **data, size_t *len)
{
	ssize_t n;

	if (c->tls || evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		return;
	n = send(bufferevent_getfd(c->bev), *data, *len,
	    MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0) {
		*data += n;
		*len -= (size_t)n;
	}
}

static void
hook_send(void *host, const char *data, size_t len)
{
	struct conn *c = host;

	if (c->gone)
		return;
	if (c->outfd != -1)
		(void)util_write_all(c->outfd, data, len);
	else {
		conn_send_now(c, &data, &len);
		if (len > 0)
			bufferevent_write(c->bev, data, len);
	}
}

static void
throttled_answer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	event_free(c->delay);
	c->delay = NULL;
	c->jobs--;
	session_auth_done(c->s, OUTCOME_PERM);
	conn_pump(c);
}

/* Too many failures from this address: 530 after a delay, unchecked. */
static void
throttle(struct conn *c)
{
	struct timeval tv = { THROTTLE_DELAY_MS / 1000,
	    (THROTTLE_DELAY_MS % 1000) * 1000 };

	log_info("session=%s client=[%s] auth=throttled", c->id, c->addr);
	c->delay = evtimer_new(c->srv->base, throttled_answer, c);
	if (c->delay == NULL) {
		session_auth_done(c->s, OUTCOME_PERM);
		return;
	}
	c->jobs++;
	evtimer_add(c->delay, &tv);
}

static void
auth_job_free(struct auth_job *aj)
{
	explicit_bzero(aj->pass, sizeof(aj->pass));
	free(aj);
}

static int
auth_run(struct workq_job *job)
{
	struct auth_job *aj = (struct auth_job *)job;

	aj->result = auth_check(aj->auth, aj->user, aj->pass, aj->detail,
	    sizeof(aj->detail));
	explicit_bzero(aj->pass, sizeof(aj->pass));
	return WORKQ_DONE;
}

/* Check the password now, or let it wait for a slot, or throttle it. */
static void
auth_admit(struct server *srv, struct auth_job *aj, enum auth_gate_verdict v)
{
	struct conn *c = aj->c;

	switch (v) {
	case AUTH_GATE_RUN:
		workq_push(srv->authq, &aj->job);
		break;
	case AUTH_GATE_WAIT:
		c->auth_wait = aj;
		log_debug("session=%s client=[%s] auth waits for a check from "
		    "this address to end", c->id, c->addr);
		break;
	case AUTH_GATE_THROTTLE:
		auth_job_free(aj);
		c->jobs--;
		throttle(c);
		break;
	}
}

/*
 * A check from addr ended: admit the PASSes waiting there, in order,
 * while the gate lets them. While stopping, no new check starts: they get
 * 451.
 */
static void
auth_wake(struct server *srv, const char *addr)
{
	struct auth_gate_ticket *t;
	enum auth_gate_verdict v;
	struct auth_job *aj;
	struct conn *c;

	while ((t = srv->stopping ? auth_gate_take(srv->gate, addr) :
	    auth_gate_next(srv->gate, addr, (long)time(NULL), &v)) != NULL) {
		aj = t->arg;
		c = aj->c;
		c->auth_wait = NULL;
		if (srv->stopping) {
			auth_job_free(aj);
			c->jobs--;
			session_auth_done(c->s, OUTCOME_TEMP);
		} else
			auth_admit(srv, aj, v);
		conn_pump(c);
	}
}

static void
auth_done(struct workq_job *job)
{
	struct auth_job *aj = (struct auth_job *)job;
	struct conn *c = aj->c;
	struct server *srv = c->srv;
	long fails;

	log_info("session=%s client=[%s] %s", c->id, c->addr,
	    aj->detail);
	fails = auth_gate_done(srv->gate, &aj->ticket, aj->result,
	    (long)time(NULL));
	if (fails > 0)
		log_warnx("client=[%s] %ld authentication failures: PASS from "
		    "this address refused for %lds", c->addr, fails,
		    srv->cfg->auth_fail_window);
	c->jobs--;
	if (aj->result == OUTCOME_OK && c->login_ev != NULL) {
		evtimer_del(c->login_ev);	/* the login is done in time */
		c->login_late = 0;
	}
	session_auth_done(c->s, aj->result);
	auth_wake(srv, c->addr);
	auth_job_free(aj);
	conn_pump(c);
}

static void
hook_auth(void *host, const char *user, const char *password)
{
	struct conn *c = host;
	struct auth_job *aj;

	if ((aj = calloc(1, sizeof(*aj))) == NULL) {
		session_auth_done(c->s, OUTCOME_TEMP);
		return;
	}
	aj->job.run = auth_run;
	aj->job.done = auth_done;
	aj->c = c;
	aj->auth = c->srv->ctx->auth;
	strlcpy(aj->ticket.addr, c->addr, sizeof(aj->ticket.addr));
	aj->ticket.arg = aj;
	strlcpy(aj->user, user, sizeof(aj->user));
	strlcpy(aj->pass, password, sizeof(aj->pass));
	c->jobs++;
	auth_admit(c->srv, aj, auth_gate_admit(c->srv->gate, &aj->ticket,
	    (long)time(NULL)));
}

static void store_cb(struct store_req *r);

/* The writers took what the text had piled up: feed it on. */
static void
store_drained(struct store_req *r)
{
	conn_pump(r->arg);
}

static int
hook_text_begin(void *host, char *qid, size_t qidsz)
{
	struct conn *c = host;

	spool_new_id(c->qid, sizeof(c->qid));
	strlcpy(qid, c->qid, qidsz);
	store_begin(c->srv->store, &c->req, c->qid);
	c->req.cb = store_cb;
	c->req.drained = store_drained;
	c->req.arg = c;
	return 0;
}

/* A long text goes to tmp/ in pieces, written by the store's writers. */
static int
hook_spill(void *host, const char *data, size_t len)
{
	struct conn *c = host;

	return store_append(&c->req, data, len);
}

/* An aborted text is the store's until its file is gone (store_cb). */
static void
hook_text_abort(void *host)
{
	struct conn *c = host;

	if (store_abort(&c->req))
		c->jobs++;
}

static void
store_cb(struct store_req *r)
{
	struct conn *c = r->arg;

	c->jobs--;
	if (r->end != STORE_ABORTED)
		session_store_done(c->s, r->result);
	conn_pump(c);
}

static void
hook_store(void *host, struct message *m)
{
	struct conn *c = host;
	const struct message_params *p = message_params(m);
	struct store_req *r = &c->req;
	struct buf *out = message_output(m);

	r->data = *out;
	memset(out, 0, sizeof(*out));
	memset(&r->row, 0, sizeof(r->row));
	r->row.id = p->queue_id;
	r->row.auth_user = p->auth_user;
	r->row.sender = p->sender;
	r->row.client_addr = p->client_addr;
	r->row.size = message_size(m);
	r->row.received_at = (long long)p->now;
	r->row.nrcpts = message_rcpt_count(m);
	r->row.rcpts = message_rcpts(m);
	c->jobs++;
	store_submit(r);
}

static void
hook_close(void *host)
{
	/* Output is flushed by conn_write; conn_pump sees closed. */
}

static const struct session_hooks conn_hooks = {
	hook_send, hook_auth, hook_text_begin, hook_spill, hook_store,
	hook_text_abort, hook_close
};

/* Connections */

static void
conn_unlink(struct conn *c)
{
	struct server *srv = c->srv;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* The socket is done with: close it; free all once no job holds c. */
static void
conn_close(struct conn *c, const char *reason)
{
	struct server *srv = c->srv;
	struct auth_job *aj;

	if (!c->gone) {
		session_abort(c->s, reason);
		c->gone = 1;
		if ((aj = c->auth_wait) != NULL) {	/* holds no slot */
			auth_gate_cancel(srv->gate, &aj->ticket);
			c->auth_wait = NULL;
			auth_job_free(aj);
			c->jobs--;
		}
		conn_timers_free(c);
		/* A TLS peer is owed a close_notify after a clean end. */
		if (c->bev != NULL && c->tls && c->tls_up)
			(void)SSL_shutdown(bufferevent_openssl_get_ssl(c->bev));
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		c->bev = NULL;
		if (c->counted)
			iplimit_dec(srv->per_ip, c->addr);
		srv->nsessions--;
	}
	if (c->jobs == 0)
		conn_release(c);
}

static void
conn_release(struct conn *c)
{
	struct server *srv = c->srv;

	/* Every way a connection ends ended its text (session_abort). */
	assert(c->req.end != STORE_OPEN);
	conn_unlink(c);
	session_free(c->s);
	free(c);
	if (srv->inetd)
		event_base_loopexit(srv->base, NULL);
	else
		server_exit_when_idle(srv);
}

/*
 * The session waits for a job, or its text for the store's writers to
 * catch up: the client is not to blame for the wait, and no more of its
 * input is fed meanwhile.
 */
static int
conn_held(const struct conn *c)
{
	return session_waiting(c->s) ||
	    store_backlog(&c->req) >= STORE_BACKLOG_MAX;
}

/* Unsent replies past the bound: the session reads no more for now. */
static int
conn_output_full(const struct conn *c)
{
	return c->outfd == -1 && evbuffer_get_length(
	    bufferevent_get_output(c->bev)) > CONN_OUTPUT_HIGH;
}

/*
 * Read the socket only while the input held and the replies unsent are
 * within their bounds. This is done by enabling and disabling EV_READ from
 * our own callbacks rather than with a read watermark: a TLS bufferevent
 * suspended by its watermark can keep decrypted bytes inside OpenSSL that
 * no socket event fetches again, while by the time a callback of ours
 * runs it has taken them all.
 */
static void
conn_flow(struct conn *c)
{
	int want = !c->eof && !conn_output_full(c) &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) <
	    CONN_INPUT_HIGH;
	int reading = (bufferevent_get_enabled(c->bev) & EV_READ) != 0;

	/* Only on a change: enabling again would restart the idle timer. */
	if (want && !reading)
		bufferevent_enable(c->bev, EV_READ);
	else if (!want && reading)
		bufferevent_disable(c->bev, EV_READ);
}

/* A command line must end within idle_timeout of its first byte. */
static void
conn_line_watch(struct conn *c)
{
	struct timeval tv = { c->srv->cfg->idle_timeout, 0 };
	int armed = evtimer_pending(c->line_ev, NULL) != 0;

	if (session_mid_line(c->s)) {
		if (!armed)
			evtimer_add(c->line_ev, &tv);
	} else if (armed)
		evtimer_del(c->line_ev);
}

/*
 * How much of p[0..len) to feed at once. A command line draws at most one
 * reply, so commands go a line at a time and the output stays within a
 * reply of its bound. A message text draws none before its end, so it goes
 * in whole chunks: session_feed() stops at its end by itself, and the
 * commands behind it come here again, a line at a time.
 */
static size_t
conn_piece(const struct conn *c, const unsigned char *p, size_t len)
{
	const unsigned char *end;

	if (session_get_state(c->s) == SS_TEXT)
		return len;
	end = memchr(p, '\n', len);
	return end != NULL ? (size_t)(end - p) + 1 : len;
}

/* Feed buffered input until the session waits, its replies pile up, or
   the input is all used. */
static void
conn_feed(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t len, used;
	unsigned char *p;

	while (!c->srv->stopping && !conn_held(c) &&
	    !session_closed(c->s) && !conn_output_full(c) &&
	    (len = evbuffer_get_contiguous_space(in)) > 0) {
		p = evbuffer_pullup(in, (ssize_t)len);
		used = session_feed(c->s, (const char *)p,
		    conn_piece(c, p, len));
		evbuffer_drain(in, used);
	}
}

/* Move the connection on after input, a job's answer, or sent output. */
static void
conn_pump(struct conn *c)
{
	if (c->gone) {
		if (c->jobs == 0)
			conn_release(c);
		return;
	}
	if (c->login_late && !session_waiting(c->s)) {
		conn_close(c, "login-timeout");
		return;
	}
	conn_feed(c);
	if (session_closed(c->s)) {
		if (c->outfd != -1 ||
		    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_close(c, "quit");
		return;		/* else conn_write closes once flushed */
	}
	/* With replies piled up, input may be left: conn_write goes on. */
	if (!conn_output_full(c) && !conn_held(c)) {
		if (c->eof) {
			conn_close(c, "disconnect");
			return;
		}
		if (c->srv->stopping) {
			conn_close(c, "shutdown");
			return;
		}
	}
	conn_flow(c);
	conn_line_watch(c);
}

/*
 * libevent 2.1 reads a socket at most EVBUFFER_MAX_READ (4 KiB) at a time
 * and has no call to raise it, so a long text would cost a turn of the
 * loop per 4 KiB. Once the input holds a full read or more during a text,
 * take what else the socket holds now, up to the input's bound, with one
 * recv into the buffer itself. End of file and errors are left for the
 * bufferevent's next read to report. TLS goes through OpenSSL, and -i
 * reads no socket.
 */
static void
conn_read_rest(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t have = evbuffer_get_length(in);
	size_t room;
	struct evbuffer_iovec v;
	ssize_t n;

	if (c->tls || c->outfd != -1 || c->eof || have < CONN_READ_FULL ||
	    have >= CONN_INPUT_HIGH || session_get_state(c->s) != SS_TEXT)
		return;
	room = CONN_INPUT_HIGH - have;
	/* A bufferevent keeps its input's end frozen but while it reads;
	   this is one more of its reads. */
	evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, (ev_ssize_t)room, &v, 1) == 1) {
		/* The space given may be larger than asked. */
		n = recv(bufferevent_getfd(c->bev), v.iov_base,
		    v.iov_len < room ? v.iov_len : room, MSG_DONTWAIT);
		v.iov_len = n > 0 ? (size_t)n : 0;
		(void)evbuffer_commit_space(in, &v, n > 0 ? 1 : 0);
	}
	evbuffer_freeze(in, 0);
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	conn_read_rest(arg);
	conn_pump(arg);
}

/* The output is down to CONN_OUTPUT_LOW (the write watermark). */
static void
conn_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (!session_closed(c->s))
		conn_pump(c);
	else if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_close(c, "quit");
}

/* login_timeout is over and no PASS got 250. */
static void
conn_login_late(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	c->login_late = 1;
	if (!session_waiting(c->s))	/* else its answer decides */
		conn_close(c, "login-timeout");
}

/* A command line did not end within idle_timeout of its first byte. */
static void
conn_line_late(evutil_socket_t fd, short what, void *arg)
{
	conn_close(arg, "line-timeout");
}

static void
conn_timers_free(struct conn *c)
{
	if (c->login_ev != NULL)
		event_free(c->login_ev);
	if (c->line_ev != NULL)
		event_free(c->line_ev);
	c->login_ev = c->line_ev = NULL;
}

/* Why a handshake failed: the last OpenSSL error that names a reason. */
static void
tls_bev_error(struct bufferevent *bev, short what, char *why, size_t whysz)
{
	unsigned long e, best = 0;

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (ERR_GET_REASON(e) != 0 && ERR_GET_LIB(e) != 0)
			best = e;
	if (best != 0)
		ERR_error_string_n(best, why, whysz);
	else
		snprintf(why, whysz, "%s", what & BEV_EVENT_TIMEOUT ?
		    "timeout" : what & BEV_EVENT_EOF ? "connection closed" :
		    "not a TLS client");
}

/* A TLS connection's handshake ended, well or not. */
static int
conn_tls_event(struct conn *c, short what)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	char why[256];

	if (what & BEV_EVENT_CONNECTED) {
		c->tls_up = 1;
		log_info("session=%s client=[%s] tls=%s cipher=%s", c->id, c->addr,
		    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
		return 1;
	}
	if (!c->tls_up && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF |
	    BEV_EVENT_TIMEOUT))) {
		c->srv->tls_failures++;
		tls_bev_error(c->bev, what, why, sizeof(why));
		log_info("session=%s client=[%s] tls handshake failed: %s "
		    "(%lu so far)", c->id, c->addr, why, c->srv->tls_failures);
		conn_close(c, "tls-handshake");
		return 1;
	}
	return 0;
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (c->tls && conn_tls_event(c, what))
		return;
	if (what & BEV_EVENT_TIMEOUT) {
		if (conn_held(c)) {	/* we are slow, not them */
			bufferevent_enable(bev, EV_WRITE);
			conn_flow(c);
			return;
		}
		conn_close(c, "idle-timeout");
	} else if (what & BEV_EVENT_EOF) {
		c->eof = 1;
		conn_pump(c);
	} else if (what & BEV_EVENT_ERROR)
		conn_close(c, "error");
}

static struct bufferevent *
conn_bev(struct server *srv, int fd, int tls)
{
	struct bufferevent *bev;
	SSL *ssl;

	if (!tls)
		return bufferevent_socket_new(srv->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if ((ssl = tls_ssl_new(srv->ctx->tls)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* A client that closes without close_notify is just gone. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* A connection on fd (taken only on success) from addr; NULL on ENOMEM. */
static struct conn *
conn_new(struct server *srv, int fd, int outfd, const char *addr, int tls)
{
	struct timeval tv = { srv->cfg->idle_timeout, 0 };
	struct timeval login = { srv->cfg->login_timeout, 0 };
	char id[32];
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->srv = srv;
	c->outfd = outfd;
	strlcpy(c->addr, addr, sizeof(c->addr));
	snprintf(id, sizeof(id), "%lx", ++srv->next_id);
	strlcpy(c->id, id, sizeof(c->id));
	c->tls = tls;
	/* The socket last: if anything fails, fd is still the caller's. */
	if ((c->s = session_new(&conn_hooks, c, srv->cfg, addr, id)) == NULL ||
	    (c->login_ev = evtimer_new(srv->base, conn_login_late,
	    c)) == NULL ||
	    (c->line_ev = evtimer_new(srv->base, conn_line_late, c)) == NULL ||
	    (c->bev = conn_bev(srv, fd, tls)) == NULL)
		goto fail;
	bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_OUTPUT_LOW, 0);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	evtimer_add(c->login_ev, &login);
	c->next = srv->conns;
	if (c->next != NULL)
		c->next->prev = c;
	srv->conns = c;
	srv->nsessions++;
	log_info("session=%s client=[%s] connect", id, addr);
	return c;
fail:
	conn_timers_free(c);
	session_free(c->s);
	free(c);
	return NULL;
}

static void
sockaddr_text(const struct sockaddr *sa, char *out, size_t outsz)
{
	if (getnameinfo(sa, sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in), out,
	    (socklen_t)outsz, NULL, 0, NI_NUMERICHOST) != 0)
		strlcpy(out, "unknown", outsz);
	/* An IPv4 client on a dual-stack socket: show it as IPv4. */
	if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, ':') == NULL)
		memmove(out, out + 7, strlen(out + 7) + 1);
}

/* The connection arrived on a loopback address of ours. */
static int
local_is_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return 0;
	return net_is_loopback((struct sockaddr *)&ss, sl);
}

/*
 * Over a limit: answer 451 at once and close, never leave it hanging. On
 * a TLS port a clear-text reply would be garbage to the client (and an
 * unauthenticated one): close only.
 */
static void
refuse(int fd, int tls, const char *addr, const char *why)
{
	char junk[4096];
	int i;

	if (!tls)
		(void)!send(fd, R451, sizeof(R451) - 1,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
	/*
	 * A TLS client has often sent its hello already; closing with that
	 * unread would reset the connection instead of ending it. Send the
	 * FIN first and discard what has arrived (a bounded amount: this runs
	 * on the loop every session shares), so the client mostly sees an
	 * end. Bytes arriving later still draw a reset; either way the
	 * client learns the connection is gone.
	 */
	(void)shutdown(fd, SHUT_WR);
	for (i = 0; i < 4; i++)
		if (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
			break;
	close(fd);
	log_info("client=[%s] refused=%s", addr, why);
}

/*
 * A client at addr on fd: its session starts, or a per-address limit
 * refuses it. clear: a password sent now would cross a network in clear
 * (what require_tls forbids).
 */
static struct conn *
conn_admit(struct server *srv, int fd, int tls, const char *addr, int clear)
{
	struct conn *c;

	if (iplimit_get(srv->per_ip, addr) >= srv->cfg->max_sessions_per_ip) {
		refuse(fd, tls, addr, "max_sessions_per_ip");
		return NULL;
	}
	if ((c = conn_new(srv, fd, -1, addr, tls)) == NULL) {
		refuse(fd, tls, addr, "out-of-memory");
		return NULL;
	}
	c->counted = iplimit_inc(srv->per_ip, addr) > 0;
	if (clear && srv->cfg->require_tls)
		session_refuse_pass(c->s, "require_tls: password sent in clear "
		    "on a non-loopback address");
	session_start(c->s);
	return c;
}

/*
 * A PROXY header is in (h NULL: a wait failed): the connection becomes a
 * session of the client it names, or for LOCAL and UNKNOWN of the
 * balancer itself. A password crosses a network in clear unless both hops
 * are TLS or loopback: the client's to the balancer (as the header says)
 * and the balancer's to us.
 */
static void
on_proxy_header(void *arg, int fd, int tls, const char *peer,
    const struct proxy_header *h)
{
	struct server *srv = arg;
	struct conn *c;
	int clear;

	if (h == NULL) {
		server_exit_when_idle(srv);
		return;
	}
	clear = (!tls && !local_is_loopback(fd)) ||
	    (!h->local && !h->tls && !net_text_is_loopback(h->dst));
	if ((c = conn_admit(srv, fd, tls, h->local ? peer : h->src,
	    clear)) == NULL) {
		server_exit_when_idle(srv);
		return;
	}
	log_info("session=%s proxy=v%d via=[%s]%s%s%s", c->id, h->version,
	    peer, h->local ? " command=local" : "", h->tls ? " client_tls=" :
	    "", h->tls ? (h->tls_version[0] ? h->tls_version : "yes") : "");
}

/* Only a trusted balancer may speak for someone else. */
static int
proxy_trusted(const struct server *srv, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return cidr_list_match(&srv->cfg->proxy_trusted, AF_INET,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr);
	if (sa->sa_family == AF_INET6)
		return cidr_list_match(&srv->cfg->proxy_trusted, AF_INET6,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
	return 0;
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct listener *lsn = arg;
	struct server *srv = lsn->srv;
	char addr[64];

	sockaddr_text(sa, addr, sizeof(addr));
	if (lsn->proxy && !proxy_trusted(srv, sa)) {
		close(fd);
		log_warnx("client=[%s] proxy=refused reason=\"not in "
		    "proxy_trusted\"", addr);
		return;
	}
	if (srv->nsessions + proxy_wait_count(srv->waits) >=
	    srv->cfg->max_sessions) {
		refuse(fd, lsn->tls, addr, "max_sessions");
		return;
	}
	if (lsn->proxy) {
		if (proxy_wait_add(srv->waits, fd, lsn->tls, addr) == -1)
			refuse(fd, lsn->tls, addr, "out-of-memory");
	} else
		(void)conn_admit(srv, fd, lsn->tls, addr, !lsn->tls &&
		    !local_is_loopback(fd));
}

/*
 * accept() failed (out of descriptors, most likely): without a pause the
 * listener would be readable again at once and spin. Rest them all for a
 * moment; connections wait in the kernel's backlog meanwhile.
 */
static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	struct listener *lsn = arg;
	struct server *srv = lsn->srv;
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	int err = EVUTIL_SOCKET_ERROR();
	size_t i;

	if (time(NULL) - srv->accept_warned >= 10) {
		errno = err;
		log_warn("accept failed, pausing new connections");
		srv->accept_warned = time(NULL);
	}
	for (i = 0; i < srv->nlev; i++)
		evconnlistener_disable(srv->lev[i]);
	evtimer_add(srv->accept_pause, &tv);
}

static void
on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	size_t i;

	if (srv->stopping || srv->draining)
		return;
	for (i = 0; i < srv->nlev; i++)
		evconnlistener_enable(srv->lev[i]);
}

/* Events of the loop itself */

static void
on_auth_done(evutil_socket_t fd, short what, void *arg)
{
	workq_run_completions(arg);
}

static void
on_store_done(evutil_socket_t fd, short what, void *arg)
{
	store_run_completions(arg);
}

/* Draining or stopping, with nothing left to wait for: exit the loop. */
static void
server_exit_when_idle(struct server *srv)
{
	if ((srv->stopping || srv->draining) && srv->nsessions == 0 &&
	    srv->conns == NULL && proxy_wait_count(srv->waits) == 0)
		event_base_loopexit(srv->base, NULL);
}

static void
listeners_close(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlev; i++)
		evconnlistener_free(srv->lev[i]);
	srv->nlev = 0;
}

static void
server_stop(struct server *srv)
{
	struct conn *c, *next;
	struct timeval grace = { SHUTDOWN_GRACE_SEC, 0 };

	if (srv->stopping)
		return;
	srv->stopping = 1;
	log_info("shutting down");
	listeners_close(srv);
	proxy_wait_drop_all(srv->waits);
	for (c = srv->conns; c != NULL; c = next) {
		next = c->next;
		if (!session_waiting(c->s))
			conn_close(c, "shutdown");
	}
	if (srv->conns == NULL)
		event_base_loopexit(srv->base, NULL);
	else
		event_base_loopexit(srv->base, &grace);
}

static void
on_drain_late(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	log_warnx("drain_timeout over with %ld session(s) left: stopping",
	    srv->nsessions);
	server_stop(srv);
}

/*
 * A drain closes the listeners, but the connections in their backlogs
 * are complete already (a balancer has placed its clients with us):
 * take them first, or the close would reset them unserved.
 */
static void
listeners_take_backlog(struct server *srv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	size_t i, n;
	int fd;

	for (i = 0; i < srv->nlev; i++)
		for (n = 0; n < DRAIN_ACCEPT_MAX; n++) {
			sl = sizeof(ss);
			fd = accept4(evconnlistener_get_fd(srv->lev[i]),
			    (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK |
			    SOCK_CLOEXEC);
			if (fd == -1)
				break;
			on_accept(srv->lev[i], fd, (struct sockaddr *)&ss,
			    (int)sl, &srv->lsn[i]);
		}
}

/*
 * SIGUSR2: leave the pool without cutting a message. The listeners close
 * (a balancer's health check fails, new connections go elsewhere); the
 * sessions and the PROXY headers already accepted go on to their end;
 * then the loop exits. drain_timeout bounds the wait.
 */
static void
server_drain(struct server *srv)
{
	struct timeval tv = { srv->cfg->drain_timeout, 0 };

	if (srv->stopping || srv->draining)
		return;
	srv->draining = 1;
	log_info("draining: %ld session(s) to finish, no new connections",
	    srv->nsessions + proxy_wait_count(srv->waits));
	listeners_take_backlog(srv);
	listeners_close(srv);
	if ((srv->drain_ev = evtimer_new(srv->base, on_drain_late,
	    srv)) != NULL)
		evtimer_add(srv->drain_ev, &tv);
	server_exit_when_idle(srv);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	char err[512];

	/* Both reopen the log file for logrotate; SIGHUP reloads as well. */
	if (log_reopen_signal(sig) && sig != SIGHUP)
		return;
	if (sig == SIGHUP) {
		if (auth_reload(srv->ctx->auth, err, sizeof(err)) == -1)
			log_warnx("reload failed, keeping the old password "
			    "data: %s", err);
		else
			log_info("password data reloaded");
		if (srv->ctx->tls != NULL) {
			if (tls_reload(srv->ctx->tls, err, sizeof(err)) == -1)
				log_warnx("TLS reload failed, keeping the old "
				    "certificate: %s", err);
			else
				log_info("TLS certificate reloaded");
		}
		return;
	}
	if (sig == SIGUSR2)
		server_drain(srv);
	else
		server_stop(srv);
}

static int
server_setup(struct server *srv, const struct server_listen *fds,
    size_t nfds)
{
	const int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2 };
	char err[512];
	size_t i;

	srv->base = event_base_new();
	srv->per_ip = iplimit_new();
	srv->gate = auth_gate_new(srv->cfg->auth_fail_limit,
	    srv->cfg->auth_fail_window);
	srv->authq = workq_new(auth_has_remote(srv->ctx->auth) ?
	    AUTH_THREADS_REMOTE : AUTH_THREADS_LOCAL);
	srv->store = store_new(srv->ctx->spool, 8, STORE_MADE_AHEAD, err,
	    sizeof(err));
	if (srv->base != NULL)
		srv->waits = proxy_wait_new(srv->base, srv->cfg->proxy_timeout,
		    on_proxy_header, srv);
	if (srv->base == NULL || srv->per_ip == NULL || srv->gate == NULL ||
	    srv->authq == NULL || srv->waits == NULL || srv->store == NULL) {
		log_warnx("cannot start: %s", srv->store == NULL ? err :
		    "out of resources");
		return -1;
	}
	srv->accept_pause = evtimer_new(srv->base, on_accept_resume, srv);
	srv->auth_ev = event_new(srv->base, workq_fd(srv->authq),
	    EV_READ | EV_PERSIST, on_auth_done, srv->authq);
	srv->store_ev = event_new(srv->base, store_fd(srv->store),
	    EV_READ | EV_PERSIST, on_store_done, srv->store);
	event_add(srv->auth_ev, NULL);
	event_add(srv->store_ev, NULL);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		srv->sig_ev[i] = evsignal_new(srv->base, sigs[i], on_signal,
		    srv);
		event_add(srv->sig_ev[i], NULL);
	}
	for (i = 0; i < nfds; i++) {
		srv->lsn[i].srv = srv;
		srv->lsn[i].tls = fds[i].tls;
		srv->lsn[i].proxy = fds[i].proxy;
		srv->lev[i] = evconnlistener_new(srv->base, on_accept,
		    &srv->lsn[i], LEV_OPT_CLOSE_ON_FREE, -1, fds[i].fd);
		if (srv->lev[i] == NULL)
			return -1;
		evconnlistener_set_error_cb(srv->lev[i], on_accept_error);
		srv->nlev++;
	}
	return 0;
}

static void
server_teardown(struct server *srv)
{
	struct conn *c, *next;
	size_t i;

	/* Close the connections first, which ends their texts in the store;
	   one a job still holds is freed by that job's completion, run as
	   the workers stop. With stopping set, a session takes no new
	   command. */
	srv->stopping = 1;
	for (c = srv->conns; c != NULL; c = next) {
		next = c->next;
		if (c->delay != NULL) {
			event_free(c->delay);
			c->delay = NULL;
			c->jobs--;
		}
		conn_close(c, "shutdown");
	}
	workq_free(srv->authq);
	store_free(srv->store);
	proxy_wait_free(srv->waits);
	listeners_close(srv);
	for (i = 0; i < sizeof(srv->sig_ev) / sizeof(srv->sig_ev[0]); i++)
		if (srv->sig_ev[i] != NULL)
			event_free(srv->sig_ev[i]);
	if (srv->drain_ev != NULL)
		event_free(srv->drain_ev);
	if (srv->auth_ev != NULL)
		event_free(srv->auth_ev);
	if (srv->store_ev != NULL)
		event_free(srv->store_ev);
	if (srv->accept_pause != NULL)
		event_free(srv->accept_pause);
	iplimit_free(srv->per_ip);
	auth_gate_free(srv->gate);
	if (srv->base != NULL)
		event_base_free(srv->base);
}

/* inetd mode: one session on stdin (and stdout, if stdin is no socket). */
static int
server_inetd(struct server *srv)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[64] = "local";
	struct conn *c;
	struct stat st;
	int outfd = -1;

	if (getpeername(STDIN_FILENO, (struct sockaddr *)&ss, &sl) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
		sockaddr_text((struct sockaddr *)&ss, addr, sizeof(addr));
	if (fstat(STDIN_FILENO, &st) == 0 && !S_ISSOCK(st.st_mode))
		outfd = STDOUT_FILENO;
	evutil_make_socket_nonblocking(STDIN_FILENO);
	if ((c = conn_new(srv, STDIN_FILENO, outfd, addr, 0)) == NULL)
		return -1;
	session_start(c->s);
	return 0;
}

int
server_run(struct server_ctx *ctx, const struct server_listen *fds,
    size_t nfds, int inetd)
{
	struct server srv;
	int rc = 0;

	memset(&srv, 0, sizeof(srv));
	srv.ctx = ctx;
	srv.cfg = ctx->cfg;
	srv.inetd = inetd;
	signal(SIGPIPE, SIG_IGN);
	if (server_setup(&srv, inetd ? NULL : fds, inetd ? 0 : nfds) == -1 ||
	    (inetd && server_inetd(&srv) == -1))
		rc = 1;
	else {
		if (!inetd)
			log_info("ready");
		event_base_dispatch(srv.base);
	}
	server_teardown(&srv);
	return rc;
}

/* Binding */

static int
bind_one(const char *host, int port, char *err, size_t errsz)
{
	struct addrinfo hints, *res;
	char portstr[8];
	int fd, on = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		snprintf(err, errsz, "listen %s:%d: %s", host, port,
		    gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (res->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		snprintf(err, errsz, "listen %s:%d: %s", host, port,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

int
server_bind(const struct config_listen *l, int tls, struct server_listen *fds,
    size_t *nfds, char *err, size_t errsz)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (*nfds == SERVER_MAX_LISTEN) {
			snprintf(err, errsz, "more than %d listening addresses",
			    SERVER_MAX_LISTEN);
			return -1;
		}
		fds[*nfds].tls = tls;
		fds[*nfds].proxy = 0;
		if ((fds[*nfds].fd = bind_one(l->addr[i].host, l->addr[i].port,
		    err, errsz)) == -1)
			return -1;
		(*nfds)++;
	}
	return 0;
}

int
server_bind_proxy(const struct config_listen *l, int tls,
    struct server_listen *fds, size_t *nfds, char *err, size_t errsz)
{
	size_t first = *nfds;

	if (server_bind(l, tls, fds, nfds, err, errsz) == -1)
		return -1;
	while (first < *nfds)
		fds[first++].proxy = 1;
	return 0;
}
