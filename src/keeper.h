/*
 * keeper.h - a cache's background chores around its cross-process locks: keeping the
 * lease of a long load alive, and releasing a lock whose release failed. See keeper.c.
 */
#ifndef TC_KEEPER_H
#define TC_KEEPER_H

#include "l2.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tc__keeper tc__keeper_t;
typedef struct tc__lease tc__lease_t;

/* Start the thread (it works on l2, which must outlive it). 0, TC_ENOMEM or
 * TC_EINTERNAL. */
int tc__keeper_start(tc__l2_t *l2, tc__keeper_t **out);
/* Stop and join; pending releases are dropped (their locks expire). Every lease must have
 * been let go. NULL is a no-op. */
void tc__keeper_stop(tc__keeper_t *k);

/* Keep key's lock (held with token, ttl_ms long) alive while a load runs: extended every
 * ttl_ms / 3 while it is still ours. Copies key and token. NULL on ENOMEM (the lock then
 * simply expires after ttl_ms, and a longer load loses its lease). */
tc__lease_t *tc__keeper_hold(tc__keeper_t *k, const void *key, size_t klen, const char *token,
                             size_t tlen, uint32_t ttl_ms);
/* Stop extending (the load is over). NULL is a no-op. */
void tc__keeper_let_go(tc__keeper_t *k, tc__lease_t *lease);

/* Release key's lock (held with token) later, retrying until it succeeds or until
 * expires_ns (tc__now_ns clock), when Redis drops the lock by itself. Copies key and token.
 * Returns 0, or TC_ENOSPC when too many are pending (the lock then simply expires). */
int tc__keeper_unlock_later(tc__keeper_t *k, const void *key, size_t klen, const char *token,
                            size_t tlen, uint64_t expires_ns);

/* Delete key everywhere (tc__l2_del: Redis and, by its message, every L1) as soon as Redis
 * answers, retrying until it does. Copies key. 0, TC_ENOMEM or TC_ENOSPC. */
int tc__keeper_delete_later(tc__keeper_t *k, const void *key, size_t klen);

#endif
