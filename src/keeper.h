/*
 * keeper.h - a cache's background chores that must outlive the call that created them.
 * Today one: releasing a cross-process lock whose release failed. See keeper.c.
 */
#ifndef TC_KEEPER_H
#define TC_KEEPER_H

#include "l2.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tc__keeper tc__keeper_t;

/* Start the thread (it works on l2, which must outlive it). 0, TC_ENOMEM or
 * TC_EINTERNAL. */
int tc__keeper_start(tc__l2_t *l2, tc__keeper_t **out);
/* Stop and join; chores still pending are dropped (their locks expire). NULL is a no-op. */
void tc__keeper_stop(tc__keeper_t *k);
/* Release key's lock (held with token) later, retrying until it succeeds or until
 * expires_ns (tc__now_ns clock), when Redis drops the lock by itself. Copies key and token.
 * Returns 0, or TC_ENOSPC when too many are pending (the lock then simply expires). */
int tc__keeper_unlock_later(tc__keeper_t *k, const void *key, size_t klen, const char *token,
                            size_t tlen, uint64_t expires_ns);

#endif
