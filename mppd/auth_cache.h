/*
 * auth_cache — remembers, for auth_cache_ttl seconds, that a user's
 * password was accepted by a remote backend (POP3, FTP), so a busy poster
 * costs one remote login per ttl and keeps posting through a short outage
 * of that server. In memory only; thread-safe.
 *
 * Never holds a password: an entry is a salted hash of user and password
 * under a salt drawn at random for each process. At most max entries; when
 * full, the oldest is forgotten first. A NULL cache, or a ttl of 0, is a
 * cache that never hits.
 */
#ifndef MPP_AUTH_CACHE_H
#define MPP_AUTH_CACHE_H

#include <stddef.h>

#define AUTH_CACHE_MAX 4096

struct auth_cache;

/* auth_cache_new_sized(ttl_sec, AUTH_CACHE_MAX). */
struct auth_cache *auth_cache_new(long ttl_sec);
/*
 * A cache whose entries live ttl_sec seconds (0: off), holding at most
 * max. NULL when out of memory or no random salt could be had; the caller
 * frees it with auth_cache_free().
 */
struct auth_cache *auth_cache_new_sized(long ttl_sec, size_t max);
/* 1 when user with password was put in the cache less than ttl ago. */
int auth_cache_hit(struct auth_cache *c, const char *user,
    const char *password);
/* Remember that user's password was accepted (now). */
void auth_cache_put(struct auth_cache *c, const char *user,
    const char *password);
/* Forget every entry (SIGHUP: after a password change on the server). */
void auth_cache_clear(struct auth_cache *c);
/* Free c (NULL is fine); its entries are wiped first. */
void auth_cache_free(struct auth_cache *c);

#endif
