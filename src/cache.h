/*
 * cache.h - the tc_cache_t behind the opaque handle, and the helpers cache.c (get, set,
 * del, lifecycle) shares with fetch.c (tc_fetch and everything about loading).
 */
#ifndef TC_CACHE_H
#define TC_CACHE_H

#include "config.h"
#include "keeper.h"
#include "l1.h"
#include "l2.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "opts.h"
#include "refresh.h"
#include "sentinel.h"

#include <stdatomic.h>
#include <stdint.h>

struct tc_cache {
    tc_config_t cfg; /* validated copy; strings point at the owned copies below */
    char *key_prefix, *channel, *log_key, *track_prefix;
    tc_ttl_rule_t *rules;                 /* owned copies (prefixes too) */
    tc__endpoint_t endpoint;              /* parsed redis_url (zeroed in L1-only mode) */
    unsigned char origin[16];             /* random instance id carried by our messages */
    tc__l1_t *l1;                         /* always present (a 0-byte budget keeps nothing) */
    tc__l2_t *l2;                         /* NULL in L1-only mode */
    tc__listener_t *listener;             /* NULL in L1-only mode */
    tc__sentinel_watch_t *sentinel_watch; /* redis+sentinel://: follows failovers */
    tc__refresh_t *pool;       /* background loads; NULL when no feature needs them */
    tc__keeper_t *keeper;      /* failed lock releases; NULL in L1-only mode */
    tc__marks_t *marks;        /* local copy of the clear/namespace marks; NULL without them */
    struct tc__behind *behind; /* write-behind's flusher (behind.c); NULL without one */
    atomic_uint_fast64_t writes_through, writes_partial, wb_queued, wb_rejected;
    unsigned fork_gen; /* fork.h: calls from a fork child are refused */
    int ext;           /* entries carry freshness metadata (entry.h) */
    int plain_bcast;   /* plain keys tracked by prefix: every key must start with it */
    atomic_uint_fast64_t writer_version; /* the last version a write-through handed the
                                            writer (through.c: versions never go down) */
    atomic_uint_fast64_t l2_hits, l2_misses, loads, load_errors;
    atomic_uint_fast64_t early_refreshes, stale_refreshes, refreshes_dropped, stale_serves,
        failsafe_serves, negative_hits, lock_acquired, lock_waits, lock_timeouts, load_timeouts;
    atomic_uint_fast64_t leases_lost, unlocks_deferred, values_too_big;
    atomic_uint_fast64_t keys_invalidated, batch_loads, swept_local;
    tc__hist_t lat[TC_LAT_COUNT]; /* latency per kind of call (metrics.h) */
    tc__log_t log;
    /* A ring (redis_url lists several servers, ring_cache.c): this handle is a shell, and
     * every call goes to nodes[i], full caches of one server each. NULL otherwise. */
    struct tc__ring *ring;
    tc_cache_t **nodes;
    size_t node_count;
};

/* ring_cache.c: the node holding key on a ring cache. */
tc_cache_t *tc__ring_route(tc_cache_t *c, const void *key, size_t klen);
/* The cache a key's call runs on: c itself, or on a ring the key's node. */
static inline tc_cache_t *tc__route(tc_cache_t *c, const void *key, size_t klen) {
    return c && c->ring ? tc__ring_route(c, key, klen) : c;
}

/* tc_open_size, for one server of several: origin (NULL: none) names it in every log
 * message (ring_cache.c). */
int tc__cache_open(const tc_config_t *cfg, size_t size, const char *origin, tc_cache_t **out,
                   tc_error_t *err);
/* Record a call of kind that started at t0_ns (tc__now_ns clock); t0_ns 0: a call left
 * unsampled, nothing recorded. */
void tc__cache_time(tc_cache_t *c, tc_latency_kind_t kind, uint64_t t0_ns);
/* The start time of a set or delete call (tc_set, tc_del, tc_mset, tc_mdel), or 0 to leave
 * it untimed. With Redis every call is timed; without, a call only touches L1 and is timed
 * one call in TC__HIT_SAMPLE per thread, as hits are: two precise clock reads (about 40 ns
 * here) were a tenth of an L1-only tc_set (tiercache-bench micro's set row: +12-28%). */
uint64_t tc__write_timer(const tc_cache_t *c);
/* L1-only mode: the version of a write (or load) of key, from its shard's counter. */
uint64_t tc__local_version(tc_cache_t *c, const void *key, size_t klen);

/* ---- ttl.c: how long a value lives ----
 * Fresh, then stale-while-revalidate, and in both tiers until keep (fresh + the larger of
 * the stale window and the fail-safe age). */
typedef struct tc__ttl_plan {
    uint64_t fresh_ms, stale_ms, keep_ms;
} tc__ttl_plan_t;

/* ttl_ms (0 = default) with the configured jitter applied; at least 1 ms. */
uint64_t tc__effective_ttl_ms(const tc_cache_t *c, uint64_t ttl_ms);
/* The plan for key: ttl_ms, else a matching TTL rule, else the default; jitter applied. */
void tc__plan_ttl(const tc_cache_t *c, const void *key, size_t klen, uint64_t ttl_ms,
                  tc__ttl_plan_t *plan);
/* Stamp e's expiry and freshness from plan, starting now. */
void tc__stamp(const tc_cache_t *c, tc_ref_t *e, const tc__ttl_plan_t *plan, uint32_t load_ms);
/* The L2 header metadata for a value stamped with plan (flags: TC__VAL_FLAG_ABSENT or 0). */
void tc__l2_meta_for(const tc_cache_t *c, const tc__ttl_plan_t *plan, unsigned flags,
                     uint32_t load_ms, tc__l2_meta_t *meta);
/* An entry for a value read from Redis; its L1 life never exceeds the key's PTTL. */
tc_ref_t *tc__entry_from_l2(const tc_cache_t *c, const void *key, size_t klen,
                            const tc__l2_value_t *v);

/* ---- cache.c ---- */
/* A new entry for this cache (with a freshness block when the cache uses one). */
tc_ref_t *tc__cache_entry(const tc_cache_t *c, const void *key, size_t klen, const void *value,
                          size_t vlen);
/* tc__read_through's result besides 0 and TC_E* codes: a cached absence. */
enum { TC__ABSENT = 1 };
/* Read key from Redis under pending record p and commit it into L1. Returns 0 (*out set),
 * TC__ABSENT (a cached absence: committed, nothing returned), TC_ENOTFOUND, TC_ETOOBIG
 * (stored value over max_value_bytes, not read) or an L2 error. */
int tc__read_through(tc_cache_t *c, tc__pending_t *p, uint64_t snap, const void *key,
                     size_t klen, tc_ref_t **out);
/* What tc__read_through does with tc__l2_get's result (rc, *v: consumed). p NULL: keep
 * nothing in L1. */
int tc__take_l2(tc_cache_t *c, tc__pending_t *p, uint64_t snap, const void *key, size_t klen,
                int rc, tc__l2_value_t *v, tc_ref_t **out);
/* 1 if e is a cached absence. */
int tc__entry_absent(const tc_ref_t *e);
/* Argument checks shared by the data calls: TC_EINVAL / TC_EKEYLEN / TC_ETOOBIG or 0. */
int tc__check_key(const tc_cache_t *c, const void *key, size_t klen);
int tc__check_value(const tc_cache_t *c, const void *value, size_t vlen);
/* 1 when an L2 error says Redis could not be reached or did not answer in time (a
 * transport failure: the rest of the call should not try Redis again). */
int tc__l2_unreachable(int rc);
uint64_t tc__rand64(void);
/* Whether this cache can keep tags (they live in Redis, with tiercache's value header). */
int tc__tags_ok(const tc_cache_t *c);
/* tc_fetch's body, arguments checked (o NULL: no options). */
int tc__fetch(tc_cache_t *c, const void *key, size_t klen, tc_loader_fn loader, void *arg,
              const tc__call_opts_t *o, tc_ref_t **ref);
/* The write of tc_set without Redis (L1 kept, keys not plain): versioned and kept in one
 * hold of the key's shard lock (tc__l1_write_local), with no pending record; an entry nobody
 * holds takes the value in place. Key and value already checked. TC_OK or TC_ENOMEM. */
int tc__set_local(tc_cache_t *c, const void *key, size_t klen, const void *value, size_t vlen,
                  uint64_t ttl_ms);
/* tc_set's body, for one key, with validated options. */
int tc__set(tc_cache_t *c, const void *key, size_t klen, const void *value, size_t vlen,
            const tc__call_opts_t *o);
/* tc_del's body, the key checked: Redis (published), then this process's L1 at once. */
int tc__del(tc_cache_t *c, const void *key, size_t klen);

#endif
