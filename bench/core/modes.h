/*
 * modes.h - the two ways of reading the same data that `compare` puts side by side.
 *
 *   redis-only  the cache-aside every service starts with, on hiredis directly: GET; on
 *               a miss load from the source and SET with the TTL. Writes are a SET.
 *               One connection per thread, keys <run prefix>ro:<key>.
 *   tiercache   tc_fetch (L1, then L2, then the source through a loader); writes are
 *               tc_set, which also publishes the invalidation. One shared tc_cache_t,
 *               keys <run prefix>tc:k:<key> (the library adds "k:").
 *
 * Preloading writes every key of the universe to Redis before a run, pipelined, so the
 * comparison starts from the steady state a long-running service sees. tiercache's keys
 * are written in its own stored format (src/valfmt.h) because going through tc_set one
 * round trip at a time would take a minute for a million keys; tcb_tc_check_preload()
 * reads one back through the public API so a format change fails loudly, not silently.
 */
#ifndef TCB_MODES_H
#define TCB_MODES_H

#include "bench.h"
#include "runner.h"
#include "tiercache.h"

typedef struct tcb_ro {
    const tcb_endpoint_t *ep;
    char prefix[96]; /* "<run prefix>ro:" */
    uint64_t ttl_ms;
    const tcb_source_t *src;
} tcb_ro_t;

typedef struct tcb_tcm {
    tc_cache_t *cache;
    const tcb_source_t *src;
    uint64_t ttl_ms;
} tcb_tcm_t;

extern const tcb_mode_ops_t tcb_mode_redis_only;
extern const tcb_mode_ops_t tcb_mode_tiercache;

/* Key universe: ids[i] when ids is non-NULL, else i. */
typedef struct tcb_keyset {
    const uint64_t *ids;
    uint64_t n;
} tcb_keyset_t;

/* Preload every key. 0 or -1 (message printed). */
int tcb_preload_redis_only(const tcb_opts_t *o, redisContext *c, const tcb_ro_t *ro,
                           const tcb_keyset_t *ks);
int tcb_preload_tiercache(const tcb_opts_t *o, redisContext *c, const char *tc_prefix,
                          const tcb_source_t *src, const tcb_keyset_t *ks);
/* Read the first key back through tc_get: 0, or -1 (message printed). */
int tcb_tc_check_preload(tc_cache_t *cache, const tcb_source_t *src, const tcb_keyset_t *ks);

/* The tiercache handle a run uses: L1 capacity, the run's own key prefix and channel.
 * 0 or -1 (message printed). */
int tcb_tc_open(const tcb_env_t *env, const tcb_opts_t *o, const char *tc_prefix,
                uint64_t l1_entries, uint64_t l1_bytes, tc_cache_t **out);

/* The loader tc_fetch calls: waits the source latency and returns the value. arg is a
 * const tcb_source_t *. */
int tcb_loader(void *arg, const void *key, size_t klen, tc_load_t *load);

#endif
