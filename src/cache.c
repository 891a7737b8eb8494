/*
 * cache.c - the tiers together: the public data calls, open/close and stats.
 *
 *   tc_get    L1 hit -> done.   Miss -> register a pending fill, GET+PTTL from Redis, commit
 *             into L1 unless an invalidation overtook the read (l1.c rule 1).
 *   tc_set    register, run the Redis write+publish script, commit our version into L1.
 *   tc_del    run the delete+publish script, evict locally with that version.
 *   tc_fetch  single-flight leader: Redis, else the loader; a loaded value is stored in Redis
 *             only if the key is still absent (a concurrent writer's newer value wins) and
 *             only if no invalidation reached the key during the load (the load may predate
 *             the change that caused it); waiters get the leader's result.
 *
 * Degraded mode: every Redis failure is local to one call. L2 unavailable (breaker open or
 * no connection) makes tc_get a miss, tc_fetch use the loader, and tc_set/tc_del update
 * the local L1 and report TC_EUNAVAILABLE. A write whose outcome is unknown (timeout)
 * evicts the key locally: if Redis applied it, its message will arrive; if not, nothing
 * stale was kept. See l1.c for why L1 never keeps a superseded value, and listener.c for
 * what happens while the invalidation channel is down.
 *
 * The cache owns copies of every configuration string, so the caller's config may die.
 */
#include "cache.h"

#include "clock.h"
#include "errors.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- small helpers ---- */

static int check_key(const tc_cache_t *c, const void *key, size_t klen) {
    if (!c || !key)
        return TC_EINVAL;
    if (klen == 0 || klen > TC_MAX_KEY_LEN)
        return TC_EKEYLEN;
    return TC_OK;
}

static uint64_t rand64(void) {
    static _Thread_local uint64_t state;
    if (state == 0) {
        if (getrandom(&state, sizeof state, GRND_NONBLOCK) != (ssize_t)sizeof state)
            state = tc__now_ns() ^ (uint64_t)(uintptr_t)&state;
        state |= 1;
    }
    /* xorshift64*: plenty for jitter, and per-thread so it never contends. */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}

uint64_t tc__effective_ttl_ms(const tc_cache_t *c, uint64_t ttl_ms) {
    if (ttl_ms == 0)
        ttl_ms = c->cfg.default_ttl_ms;
    double j = c->cfg.ttl_jitter;
    if (j <= 0)
        return ttl_ms;
    double u = (double)(rand64() >> 11) / 9007199254740992.0; /* [0, 1) */
    double scaled = (double)ttl_ms * (1.0 + j * (2.0 * u - 1.0));
    return scaled < 1.0 ? 1 : (uint64_t)scaled;
}

static uint64_t expiry_after(uint64_t ttl_ms) {
    uint64_t now = tc__now_ms();
    return ttl_ms >= TC__NO_EXPIRY - now ? TC__NO_EXPIRY : now + ttl_ms;
}

static void count(atomic_uint_fast64_t *counter) {
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* An entry for a value read from Redis; its L1 life never exceeds the key's PTTL. */
static tc_ref_t *entry_from_l2(const tc_cache_t *c, const void *key, size_t klen,
                               const tc__l2_value_t *v) {
    tc_ref_t *e = tc__entry_new(key, klen, v->val.data, v->val.len);
    if (!e)
        return NULL;
    e->version = v->val.version;
    if (v->pttl_ms >= 0)
        e->expiry_ms = expiry_after((uint64_t)v->pttl_ms);
    else
        e->expiry_ms = expiry_after(tc__effective_ttl_ms(c, 0));
    return e;
}

/* Read key from Redis into a new entry, committing it into L1 under pending record p.
 * Returns 0 (*out set), TC_ENOTFOUND, or an L2 error. */
static int read_through(tc_cache_t *c, tc__pending_t *p, uint64_t snap, const void *key,
                        size_t klen, tc_ref_t **out) {
    tc__l2_value_t v;
    int rc = tc__l2_get(c->l2, key, klen, &v);
    if (rc == TC_ENOTFOUND || rc == TC_EPROTO) { /* EPROTO: not ours, never served */
        count(&c->l2_misses);
        return TC_ENOTFOUND;
    }
    if (rc != TC_OK)
        return rc;
    count(&c->l2_hits);
    tc_ref_t *e = entry_from_l2(c, key, klen, &v);
    int vanished = v.pttl_ms == -2;
    tc__l2_value_release(&v);
    if (!e)
        return TC_ENOMEM;
    if (!vanished) /* deleted between GET and PTTL: serve what we read, keep nothing */
        tc__l1_commit(c->l1, p, snap, e, TC__COMMIT_FROM_L2);
    *out = e;
    return TC_OK;
}

/* ---- tc_get ---- */

int tc_get(tc_cache_t *c, const void *key, size_t klen, tc_ref_t **ref) {
    if (!ref)
        return TC_EINVAL;
    *ref = NULL;
    int rc = check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    if (tc__l1_get(c->l1, h, key, klen, ref) == TC_OK)
        return TC_OK;
    if (!c->l2)
        return TC_ENOTFOUND;
    uint64_t snap;
    tc__pending_t *p = tc__l1_pending_begin(c->l1, h, key, klen, &snap);
    if (!p)
        return TC_ENOMEM;
    rc = read_through(c, p, snap, key, klen, ref);
    tc__l1_pending_end(c->l1, p);
    return rc == TC_EUNAVAILABLE ? TC_ENOTFOUND : rc;
}

int tc_get_copy(tc_cache_t *c, const void *key, size_t klen, void *buf, size_t *len) {
    if (!len || (!buf && *len > 0))
        return TC_EINVAL;
    tc_ref_t *ref;
    int rc = tc_get(c, key, klen, &ref);
    if (rc != TC_OK)
        return rc;
    size_t need = tc_ref_size(ref);
    if (*len < need) {
        *len = need;
        tc_ref_release(ref);
        return TC_ENOSPC;
    }
    if (need)
        memcpy(buf, tc_ref_data(ref), need);
    *len = need;
    tc_ref_release(ref);
    return TC_OK;
}

/* ---- tc_set / tc_del ---- */

static int check_value(const tc_cache_t *c, const void *value, size_t vlen) {
    if (!value && vlen > 0)
        return TC_EINVAL;
    if (vlen > c->cfg.max_value_bytes)
        return TC_ETOOBIG;
    return TC_OK;
}

int tc_set(tc_cache_t *c, const void *key, size_t klen, const void *value, size_t vlen,
           uint64_t ttl_ms) {
    int rc = check_key(c, key, klen);
    if (rc == TC_OK)
        rc = check_value(c, value, vlen);
    if (rc != TC_OK)
        return rc;
    uint64_t ttl = tc__effective_ttl_ms(c, ttl_ms);
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    tc_ref_t *e = tc__entry_new(key, klen, value, vlen);
    if (!e)
        return TC_ENOMEM;
    e->expiry_ms = expiry_after(ttl);
    uint64_t snap;
    tc__pending_t *p = tc__l1_pending_begin(c->l1, h, key, klen, &snap);
    if (!p) {
        tc_ref_release(e);
        return TC_ENOMEM;
    }
    unsigned flags = TC__COMMIT_WRITE;
    if (c->l2) {
        rc = tc__l2_set(c->l2, key, klen, value, vlen, ttl, &e->version);
        if (rc == TC_EUNAVAILABLE)
            flags = TC__COMMIT_FORCE; /* Redis never saw it: L1 holds the caller's write */
    } else {
        e->version = atomic_fetch_add(&c->local_version, 1) + 1;
    }
    if (rc == TC_OK || rc == TC_EUNAVAILABLE) {
        if (!tc__l1_commit(c->l1, p, snap, e, flags) && rc == TC_OK)
            tc__l1_invalidate(c->l1, h, key, klen, e->version); /* not kept: drop older */
    } else {
        tc__l1_evict(c->l1, h, key, klen);
    }
    tc__l1_pending_end(c->l1, p);
    tc_ref_release(e);
    return rc;
}

int tc_del(tc_cache_t *c, const void *key, size_t klen) {
    int rc = check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    uint64_t version;
    if (c->l2)
        rc = tc__l2_del(c->l2, key, klen, &version);
    else
        version = atomic_fetch_add(&c->local_version, 1) + 1;
    if (rc == TC_OK)
        tc__l1_invalidate(c->l1, h, key, klen, version);
    else
        tc__l1_evict(c->l1, h, key, klen);
    return rc;
}

/* ---- tc_fetch ---- */

struct tc_load {
    const tc_cache_t *cache;
    const void *key;
    size_t klen;
    tc_ref_t *value;
    uint64_t ttl_ms;
};

int tc_load_set_value(tc_load_t *ld, const void *value, size_t vlen) {
    if (!ld)
        return TC_EINVAL;
    int rc = check_value(ld->cache, value, vlen);
    if (rc != TC_OK)
        return rc;
    tc_ref_t *e = tc__entry_new(ld->key, ld->klen, value, vlen);
    if (!e)
        return TC_ENOMEM;
    tc_ref_release(ld->value);
    ld->value = e;
    return TC_OK;
}

int tc_load_set_ttl(tc_load_t *ld, uint64_t ttl_ms) {
    if (!ld)
        return TC_EINVAL;
    ld->ttl_ms = ttl_ms;
    return TC_OK;
}

/* Store a freshly loaded value in both tiers. Returns the entry to hand out: the loaded
 * one, or Redis's if a concurrent writer got there first. */
static tc_ref_t *store_loaded(tc_cache_t *c, tc__pending_t *p, uint64_t snap, tc_ref_t *e,
                              uint64_t ttl) {
    e->expiry_ms = expiry_after(ttl);
    if (tc__l1_pending_invalidated(c->l1, p, snap))
        return e; /* the source changed while we loaded: serve it, cache nothing */
    if (c->l2) {
        tc__l2_value_t existing;
        const void *key = tc__entry_key(e);
        size_t klen = tc__entry_klen(e);
        int rc = tc__l2_add(c->l2, key, klen, tc_ref_data(e), tc_ref_size(e), ttl, &e->version,
                            &existing);
        if (rc == 1) {
            tc_ref_t *theirs = entry_from_l2(c, key, klen, &existing);
            tc__l2_value_release(&existing);
            if (theirs) {
                tc_ref_release(e);
                tc__l1_commit(c->l1, p, snap, theirs, TC__COMMIT_FROM_L2);
                return theirs;
            }
            return e; /* ENOMEM copying theirs: serve ours, keep nothing */
        }
        if (rc != TC_OK)
            e->version = 0; /* Redis unavailable: keep it locally, unversioned */
    }
    tc__l1_commit(c->l1, p, snap, e, 0);
    return e;
}

/* The single-flight leader's work: L2, else the loader. */
static int lead_load(tc_cache_t *c, tc__pending_t *p, uint64_t snap, const void *key,
                     size_t klen, tc_loader_fn loader, void *arg, tc_ref_t **out) {
    if (c->l2) {
        int rc = read_through(c, p, snap, key, klen, out);
        if (rc == TC_OK || rc == TC_ENOMEM)
            return rc;
        /* Missing, or L2 failing: the source of truth decides. */
    }
    tc_load_t ld = {.cache = c, .key = key, .klen = klen};
    count(&c->loads);
    int rc = loader(arg, key, klen, &ld);
    if (rc == TC_OK && !ld.value)
        rc = TC_ELOADER;
    if (rc > 0)
        rc = TC_ELOADER;
    if (rc != TC_OK) {
        if (rc != TC_ENOTFOUND)
            count(&c->load_errors);
        tc_ref_release(ld.value);
        return rc;
    }
    *out = store_loaded(c, p, snap, ld.value, tc__effective_ttl_ms(c, ld.ttl_ms));
    return TC_OK;
}

int tc_fetch(tc_cache_t *c, const void *key, size_t klen, tc_loader_fn loader, void *arg,
             tc_ref_t **ref) {
    if (!ref)
        return TC_EINVAL;
    *ref = NULL;
    int rc = check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    if (!loader)
        return TC_EINVAL;
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    tc__pending_t *p;
    uint64_t snap = 0;
    int status = TC_OK;
    int how = tc__l1_fetch_begin(c->l1, h, key, klen, ref, &p, &snap, &status);
    switch (how) {
    case TC__FETCH_HIT:
        return TC_OK;
    case TC__FETCH_SHARED:
        if (status == TC_OK && !*ref)
            return TC_EINTERNAL;
        return status;
    case TC__FETCH_LEAD:
        break;
    default:
        return how; /* TC_ENOMEM */
    }
    tc_ref_t *value = NULL;
    status = lead_load(c, p, snap, key, klen, loader, arg, &value);
    tc__l1_fetch_finish(c->l1, p, status, value);
    *ref = status == TC_OK ? value : NULL;
    return status;
}

/* ---- lifecycle ---- */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void free_cache(tc_cache_t *c) {
    tc__listener_stop(c->listener);
    tc__l2_close(c->l2);
    tc__l1_close(c->l1);
    tc__endpoint_deinit(&c->endpoint);
    free(c->key_prefix);
    free(c->channel);
    free(c);
}

static int open_l1(tc_cache_t *c) {
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = tc__now_ns() ^ (uint64_t)(uintptr_t)c;
    tc__l1_opts_t o = {
        .max_bytes = c->cfg.l1_max_bytes,
        .max_entries = c->cfg.l1_max_entries,
        .max_value_bytes = c->cfg.l1_max_value_bytes,
        .shards = c->cfg.l1_shards ? c->cfg.l1_shards : tc__default_shards(),
        .seed = seed,
    };
    return tc__l1_open(&o, &c->l1);
}

static int open_redis(tc_cache_t *c, const char *url, tc_error_t *err) {
    int rc = tc__endpoint_parse(url, &c->endpoint, err);
    if (rc != TC_OK)
        return rc;
    if (getrandom(c->origin, sizeof c->origin, GRND_NONBLOCK) != (ssize_t)sizeof c->origin) {
        uint64_t t = tc__now_ns();
        memcpy(c->origin, &t, sizeof t);
        memcpy(c->origin + 8, &c, sizeof c < 8 ? sizeof c : 8);
    }
    tc__l2_opts_t lo = {
        .endpoint = &c->endpoint,
        .key_prefix = c->key_prefix,
        .channel = c->channel,
        .pool_size = c->cfg.pool_size,
        .connect_timeout_ms = c->cfg.connect_timeout_ms,
        .command_timeout_ms = c->cfg.command_timeout_ms,
        .breaker_threshold = c->cfg.breaker_threshold,
        .breaker_cooldown_ms = c->cfg.breaker_cooldown_ms,
    };
    memcpy(lo.origin, c->origin, sizeof lo.origin);
    rc = tc__l2_open(&lo, &c->l2, err);
    if (rc != TC_OK)
        return rc;
    tc__listener_opts_t so = {
        .endpoint = &c->endpoint,
        .channel = c->channel,
        .connect_timeout_ms = c->cfg.connect_timeout_ms,
        .ping_ms = c->cfg.listener_ping_ms,
        .l1 = c->l1,
        .hook = c->cfg.inval_hook,
        .hook_arg = c->cfg.inval_hook_arg,
    };
    rc = tc__listener_start(&so, &c->listener);
    if (rc != TC_OK)
        return tc__fail(err, rc, "could not start the invalidation listener thread");
    int subscribed = tc__listener_wait_subscribed(c->listener, c->cfg.connect_timeout_ms);
    if (c->cfg.require_redis) {
        if (!subscribed)
            return tc__fail(err, TC_EUNAVAILABLE,
                            "require_redis: could not subscribe to '%s' within %u ms",
                            c->channel, (unsigned)c->cfg.connect_timeout_ms);
        rc = tc__l2_ping(c->l2, err);
        if (rc != TC_OK)
            return rc;
    }
    return TC_OK;
}

int tc_open(const tc_config_t *cfg, tc_cache_t **out, tc_error_t *err) {
    tc__error_clear(err);
    if (out)
        *out = NULL;
    if (!cfg || !out)
        return tc__fail(err, TC_EINVAL, "tc_open: cfg and out must not be NULL");
    int rc = tc__config_validate(cfg, err);
    if (rc != TC_OK)
        return rc;
    tc_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return tc__fail(err, TC_ENOMEM, "tc_open: out of memory");
    c->cfg = *cfg;
    c->key_prefix = dup_str(cfg->key_prefix);
    c->channel = dup_str(cfg->inval_channel);
    c->cfg.key_prefix = c->key_prefix;
    c->cfg.inval_channel = c->channel;
    c->cfg.redis_url = NULL; /* parsed into c->endpoint; the caller's string may die */
    if (!c->key_prefix || !c->channel) {
        free_cache(c);
        return tc__fail(err, TC_ENOMEM, "tc_open: out of memory");
    }
    rc = open_l1(c);
    if (rc != TC_OK) {
        free_cache(c);
        return tc__fail(err, rc, "tc_open: could not create L1 (%s)", tc_strerror(rc));
    }
    if (cfg->redis_url) {
        rc = open_redis(c, cfg->redis_url, err);
        if (rc != TC_OK) {
            free_cache(c);
            return rc;
        }
    }
    *out = c;
    return TC_OK;
}

void tc_close(tc_cache_t *c) {
    if (c)
        free_cache(c);
}

/* ---- stats ---- */

static uint64_t load_counter(const atomic_uint_fast64_t *counter) {
    return atomic_load_explicit(counter, memory_order_relaxed);
}

int tc_stats(tc_cache_t *c, tc_stats_t *out) {
    if (!c || !out)
        return TC_EINVAL;
    memset(out, 0, sizeof *out);
    tc__l1_counters_t l1;
    tc__l1_counters(c->l1, &l1);
    out->l1_hits = l1.hits;
    out->l1_misses = l1.misses;
    out->l1_entries = l1.entries;
    out->l1_bytes = l1.bytes;
    out->l1_max_bytes = c->cfg.l1_max_bytes;
    out->l1_evictions = l1.evictions;
    out->l1_expirations = l1.expirations;
    out->l1_fills_rejected = l1.rejected;
    out->l1_flushes = l1.flushes;
    out->singleflight_waits = l1.waits;
    out->l2_hits = load_counter(&c->l2_hits);
    out->l2_misses = load_counter(&c->l2_misses);
    out->loads = load_counter(&c->loads);
    out->load_errors = load_counter(&c->load_errors);
    if (c->l2) {
        tc__l2_counters_t l2;
        tc__l2_counters(c->l2, &l2);
        out->l2_errors = l2.errors;
        out->l2_timeouts = l2.timeouts;
        out->breaker_opens = l2.opens;
        out->breaker_state = l2.breaker_state;
        out->inval_published = l2.published;
    }
    if (c->listener) {
        tc__listener_counters_t ls;
        tc__listener_counters(c->listener, &ls);
        out->inval_received = ls.received;
        out->inval_applied = ls.applied;
        out->inval_malformed = ls.malformed;
        out->listener_reconnects = ls.reconnects;
        out->listener_connected = ls.connected;
    }
    return TC_OK;
}
