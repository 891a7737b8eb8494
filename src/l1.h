/*
 * l1.h - the in-process tier: a sharded, lock-striped cache bounded in bytes, plus the
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
    uint64_t local_ttl_ms;  /* longest life of an entry no invalidation is sure to reach
                               (l1.c rule 4); 0 = no cap (L1-only caches) */
    int policy;             /* a tc__l1_policy_kind_t (l1_policy.h); 0 = second chance */
} tc__l1_opts_t;

typedef struct tc__l1_counters {
    uint64_t hits, misses, evictions, expirations, rejected, flushes, heals;
    uint64_t entries, bytes, waits, local_entries;
} tc__l1_counters_t;

/* Commit flags. */
enum {
    /* A value read from Redis: refused while L1 is untrusted. */
    TC__COMMIT_FROM_L2 = 1u,
    /* This process wrote it (version from Redis): it supersedes every older version,
     * including other fills in flight. */
    TC__COMMIT_WRITE = 2u,
    /* Redis did not take this value (a write or load while it failed): it replaces
     * whatever is there regardless of versions, unless a flush or heal came since the
     * snapshot. Must be unversioned (version 0): a local entry (rule 4 in l1.c). */
    TC__COMMIT_FORCE = 4u,
    /* An L1-only load: its version is taken here, under the shard lock, and it is kept only
     * if no write or invalidation reached the key since its snapshot (a tc_set between the
     * load's check and its commit would otherwise lose to the older loaded value). */
    TC__COMMIT_LOCAL_LOAD = 8u,
};

/* Versions are Redis microsecond clocks (l2.c): a stored version this far from another
 * cannot come from the same counter and is treated as bogus by every comparison. */
#define TC__VERSION_SKEW_MAX ((uint64_t)1 << 32) /* ~71.6 minutes of microseconds */

/* 1 if an entry holding `older` must give way to a write or invalidation at `newer`:
 * it is older, or so far ahead that no counter produced both (a pinned, bogus version). */
static inline int tc__version_superseded(uint64_t older, uint64_t newer) {
    return older < newer || older - newer > TC__VERSION_SKEW_MAX;
}

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

/* L1-only mode's write: give e the next version of its shard and commit it as a write, in
 * one lock hold (no pending record of its own: fills and loads of the key in flight are
 * superseded through theirs). Takes no reference from the caller. Returns 1 when e's value
 * was kept: as e itself, or copied into the key's entry when nobody else held that one and
 * it had e's size (l1.c rewrite_locked), so the caller must drop e and not ask
 * tc__l1_holds about it. */
int tc__l1_write_local(tc__l1_t *l1, uint64_t h, tc_ref_t *e);

/* tc_fetch's single-flight: what tc__l1_fetch_begin found. */
typedef enum tc__fetch_how {
    TC__FETCH_HIT = 1,  /* f->ref is the pinned L1 entry */
    TC__FETCH_LEAD,     /* the caller must load, then tc__l1_fetch_finish(f->p, ...);
                           f->snap as for pending_begin */
    TC__FETCH_SHARED,   /* another thread loaded: f->status is its result and f->ref
                           (status 0) a pinned reference to its value */
    TC__FETCH_TIMEDOUT, /* f->wait_ms passed while waiting for another's load */
} tc__fetch_how_t;

typedef struct tc__fetch {
    /* in */
    int lookup;       /* look in L1 first (0: the caller holds a stale entry it wants
                         reloaded, go straight to lead-or-wait) */
    uint32_t wait_ms; /* a waiter gives up after this long; 0 = no limit */
    /* out */
    tc_ref_t *ref;
    tc__pending_t *p;
    uint64_t snap;
    int status;
} tc__fetch_t;

/* Lead, wait for the leader, or hit. A waiter takes the leader's result only if no
 * invalidation reached the key between the load's start and the waiter's arrival, and
 * the leader did not mark it private: otherwise the load may predate a write the waiter
 * must see, and the waiter tries again (l1.c rule 5). Returns a tc__fetch_how_t or
 * TC_ENOMEM. */
int tc__l1_fetch_begin(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, tc__fetch_t *f);
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
 * the leader's pending record. Takes no reference from the caller. With TC__FINISH_PRIVATE
 * the value goes to the leader's own caller only: waiters load again (the leader learned
 * that a write superseded its load, e.g. its lease was voided). */
enum { TC__FINISH_SHARED = 0, TC__FINISH_PRIVATE = 1 };
void tc__l1_fetch_finish(tc__l1_t *l1, tc__pending_t *p, int status, tc_ref_t *value,
                         int visibility);

/* Evict key unless it holds exactly `version`, and mark in-flight fills of key (waking its
 * lock waiters). Version 0 evicts nothing: a FILL
 * message for a key with no stored value only wakes waiters. Returns 1 if an entry was
 * evicted or a pending fill marked. */
int tc__l1_invalidate(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, uint64_t version);

/* Evict key whatever its version and poison its in-flight fills: used when a local write
 * or delete failed and its effect on Redis is unknown. */
void tc__l1_evict(tc__l1_t *l1, uint64_t h, const void *key, size_t klen);

/* 1 if L1 holds exactly entry e for key (a queued refresh checks that its stale copy is
 * still the one served before loading). */
int tc__l1_holds(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, const tc_ref_t *e);

/* A namespace bump or a clear at `version` (prefix NULL/0 bytes: every key): drop every
 * entry whose key starts with prefix and that the version supersedes (as a message for
 * its key would), and mark the in-flight fills of such keys like tc__l1_invalidate. One
 * pass over every shard, one shard lock at a time. Returns the entries dropped. */
size_t tc__l1_sweep(tc__l1_t *l1, const void *prefix, size_t plen, uint64_t version);

/* Copy the keys of up to max entries, most recently used first within each shard (shards
 * in turn), into one buffer: *out (free it) holds for each key a size_t length then the
 * bytes, unaligned. Returns the number of keys, or -1 (ENOMEM). */
long tc__l1_hot_keys(tc__l1_t *l1, size_t max, unsigned char **out, size_t *out_len);

/* Poison every in-flight fill (keep the entries): a lost link whose missed invalidations
 * a replay will apply. */
void tc__l1_poison_pending(tc__l1_t *l1);

/* Drop every entry and poison every in-flight fill. Returns the entries dropped. */
size_t tc__l1_flush(tc__l1_t *l1);

/* Redis answered again after failing: drop every local entry (rule 4) and poison every
 * in-flight fill, so nothing this process kept or loaded without Redis outlives the
 * outage. Cheap when there is nothing local: one lock per shard. */
size_t tc__l1_heal(tc__l1_t *l1); /* returns the local entries dropped */

/* Whether values read from Redis may be kept (the listener is subscribed). */
void tc__l1_set_trusted(tc__l1_t *l1, int trusted);
int tc__l1_trusted(const tc__l1_t *l1);

void tc__l1_counters(tc__l1_t *l1, tc__l1_counters_t *out);
/* How many shards (fixed at open). */
unsigned tc__l1_shards(const tc__l1_t *l1);
/* 0 when every shard's table, recency list and counts agree (l1_index.c), else the
 * first shard's negative code. Takes each shard's lock in turn; for tests. */
int tc__l1_check(tc__l1_t *l1);
/* L1-only mode's versions: the next from the counter of key hash h's shard. A key lives
 * in one shard, and versions are only ever compared between writes of one key, so one
 * counter per shard orders them as one per cache would, without every writer of the
 * cache incrementing the same cache line. */
uint64_t tc__l1_next_version(tc__l1_t *l1, uint64_t h);
/* Slots in the table of the shard that h maps to (tests check the byte accounting). */
size_t tc__l1_table_slots(tc__l1_t *l1, uint64_t h);

#endif
