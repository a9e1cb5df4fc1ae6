/*
 * auth_remote — the remote backends' checks: a password checked against an
 * existing POP3 (RFC 1939, auth_pop3.c) or FTP (RFC 959, auth_ftp.c)
 * server, as RFC 1204 §3.4 suggests; each is the login of its backend's
 * ops (auth.h). Each call is blocking and
 * runs on an auth worker thread, never on the event loop: it resolves host,
 * connects (each address in turn), logs in with USER/PASS, and ends with
 * QUIT. Every step is bounded by timeout_sec in total.
 *
 * Result: OUTCOME_OK accepted; OUTCOME_PERM the server rejected the
 * password; OUTCOME_TEMP the check could not be made (unresolvable,
 * refused, timed out, protocol error). why receives a short reason for the
 * log, never the password; it is left empty when the outcome says it all
 * (the password accepted, or rejected by the server's plain "no").
 *
 * user and password must hold no CR, LF or NUL (the session refuses them
 * with 501); the functions check again and return OUTCOME_PERM if they do.
 */
#ifndef MPP_AUTH_REMOTE_H
#define MPP_AUTH_REMOTE_H

#include <stddef.h>

#include "outcome.h"

enum outcome auth_pop3_check(const char *host, int port, const char *user,
    const char *password, int timeout_sec, char *why, size_t whysz);

enum outcome auth_ftp_check(const char *host, int port, const char *user,
    const char *password, int timeout_sec, char *why, size_t whysz);

#endif
