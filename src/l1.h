/*
 * l1.h - the in-process tier: a sharded, lock-striped LRU bounded in bytes, plus the
 * per-key "pending" records that make fills safe against invalidations and give tc_fetch
 * its single-flight. See l1.c for the layout and the safety argument.
 */
#ifndef TC_L1_H
#define TC_L1_H

#include "entry.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tc__l1 tc__l1_t;
typedef struct tc__pending tc__pending_t;

typedef struct tc__l1_opts {
    size_t max_bytes;       /* 0: nothing is ever kept (pending records still work) */
    size_t max_entries;     /* 0: no cap */
    size_t max_value_bytes; /* larger values are never kept */
    unsigned shards;        /* power of two, >= 1 */
    uint64_t seed;          /* hash seed */
} tc__l1_opts_t;

typedef struct tc__l1_counters {
    uint64_t hits, misses, evictions, expirations, rejected, flushes;
    uint64_t entries, bytes, waits;
} tc__l1_counters_t;

/* Commit flags. */
#define TC__COMMIT_FROM_L2 1u /* value read from Redis: refused while L1 is untrusted */
#define TC__COMMIT_WRITE                                                                       \
    2u /* this process wrote it (version from Redis): it supersedes                            \
          every older version, including other fills in flight */
#define TC__COMMIT_FORCE                                                                       \
    4u /* replace whatever is there regardless of versions (a local                            \
          write while Redis is unavailable) */

int tc__l1_open(const tc__l1_opts_t *opts, tc__l1_t **out);
void tc__l1_close(tc__l1_t *l1);

uint64_t tc__l1_hash(const tc__l1_t *l1, const void *key, size_t klen);

/* The hit path. 0 and a pinned *ref, or TC_ENOTFOUND (absent or expired). */
int tc__l1_get(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, tc_ref_t **ref);

/* Register an in-flight fill or write of key; returns the record (NULL on ENOMEM) and the
 * invalidation count at this moment in *snap. Pair with tc__l1_pending_end. */
tc__pending_t *tc__l1_pending_begin(tc__l1_t *l1, uint64_t h, const void *key, size_t klen,
                                    uint64_t *snap);
void tc__l1_pending_end(tc__l1_t *l1, tc__pending_t *p);
/* True if an invalidation (or flush) reached key since snap was taken. */
int tc__l1_pending_invalidated(tc__l1_t *l1, tc__pending_t *p, uint64_t snap);

/* Insert e (its version and expiry already set) unless the rules in l1.c refuse it.
 * Takes no reference from the caller: on insert L1 adds its own. Returns 1 if inserted. */
int tc__l1_commit(tc__l1_t *l1, tc__pending_t *p, uint64_t snap, tc_ref_t *e, unsigned flags);

/* tc_fetch's single-flight. Returns:
 *  TC__FETCH_HIT    *ref is the pinned L1 entry;
 *  TC__FETCH_LEAD   the caller must load, then call tc__l1_fetch_finish(*p, ...);
 *                   *snap as for pending_begin;
 *  TC__FETCH_SHARED another thread loaded: *status is its result and *ref (when status
 *                   is 0) a pinned reference to its value.
 *  TC_ENOMEM. */
#define TC__FETCH_HIT    1
#define TC__FETCH_LEAD   2
#define TC__FETCH_SHARED 3
int tc__l1_fetch_begin(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, tc_ref_t **ref,
                       tc__pending_t **p, uint64_t *snap, int *status);
/* As tc__l1_fetch_begin; lookup 0 skips L1 (the caller holds a stale entry it wants
 * reloaded) and goes straight to lead-or-wait. */
int tc__l1_fetch_begin2(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, int lookup,
                        tc_ref_t **ref, tc__pending_t **p, uint64_t *snap, int *status);
/* Become key's leader if nobody leads (background refresh). NULL when a load is already in
 * flight (or ENOMEM). End with tc__l1_fetch_finish. */
tc__pending_t *tc__l1_try_lead(tc__l1_t *l1, uint64_t h, const void *key, size_t klen,
                               uint64_t *snap);
/* p's invalidation count now (a snapshot for tc__l1_wait_inval). */
uint64_t tc__l1_pending_seq(tc__l1_t *l1, tc__pending_t *p);
/* The leader's completion count, registering the caller as a waiter: pair with exactly one
 * tc__l1_fetch_await (used when the load runs on another thread). */
uint64_t tc__l1_fetch_results(tc__l1_t *l1, tc__pending_t *p);
/* Wait until a load completes after `seen` or deadline_ns (tc__now_ns clock). Returns 1
 * with *status and *ref (pinned when status is 0), or 0 on timeout. */
int tc__l1_fetch_await(tc__l1_t *l1, tc__pending_t *p, uint64_t seen, uint64_t deadline_ns,
                       int *status, tc_ref_t **ref);
/* Wait until an invalidation (or FILL message) reaches key after snap, or deadline_ns.
 * Returns 1 if woken by one. The caller must hold p (a pending_begin or leader reference). */
int tc__l1_wait_inval(tc__l1_t *l1, tc__pending_t *p, uint64_t snap, uint64_t deadline_ns);

/* Publish the leader's result (status, and value when status is 0) to its waiters and end
 * the leader's pending record. Takes no reference from the caller. */
void tc__l1_fetch_finish(tc__l1_t *l1, tc__pending_t *p, int status, tc_ref_t *value);

/* Evict key if its version is older than `version`, and mark in-flight fills of key.
 * Returns 1 if an entry was evicted or a pending fill marked. */
int tc__l1_invalidate(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, uint64_t version);

/* Evict key whatever its version and poison its in-flight fills: used when a local write
 * or delete failed and its effect on Redis is unknown. */
void tc__l1_evict(tc__l1_t *l1, uint64_t h, const void *key, size_t klen);

/* Drop every entry and poison every in-flight fill. */
void tc__l1_flush(tc__l1_t *l1);

/* Whether values read from Redis may be kept (the listener is subscribed). */
void tc__l1_set_trusted(tc__l1_t *l1, int trusted);
int tc__l1_trusted(const tc__l1_t *l1);

void tc__l1_counters(tc__l1_t *l1, tc__l1_counters_t *out);

#endif
