/*
 * cache.c - the tiers together: open/close, stats, tc_get, tc_set, tc_del, tc_invalidate,
 * and turning Redis replies into L1 entries. Elsewhere: loading (fetch.c, mfetch.c), many
 * keys (bulk.c, patterns.c), write strategies (through.c, behind.c), lifetimes (ttl.c).
 *
 *   tc_get    L1 hit -> done.   Miss -> register a pending fill, GETRANGE from Redis, commit
 *             into L1 unless an invalidation overtook the read (l1.c rule 1).
 *   tc_set    register, run the Redis write+publish script, commit our version into L1.
 *   tc_del    run the delete+publish script, evict locally with that version.
 *
 * Degraded mode: every Redis failure is local to one call. L2 unavailable (breaker open or
 * no connection) makes tc_get a miss and tc_set/tc_del update the local L1 and report
 * TC_EUNAVAILABLE. Such a local value is one Redis and every other process do not have:
 * it lives at most degraded_ttl_ms and goes as soon as Redis answers again (l1.c rule 4),
 * so every process agrees with Redis again within that bound. A write whose outcome is
 * unknown (timeout) evicts the key locally: if Redis applied it, its message will arrive;
 * if not, nothing stale was kept. See l1.c for why L1 never keeps a superseded value, and
 * listener.c for what happens while the invalidation channel is down.
 *
 * fork: every call on a handle opened before a fork answers TC_EFORKED in the child
 * (fork.h); tc_close there releases nothing the parent still uses.
 *
 * Lifetimes (fresh, stale, keep; both clocks) are ttl.c's.
 *
 * The cache owns copies of every configuration string, so the caller's config may die.
 */
#include "cache.h"
#include "ring_cache.h"

#include "behind.h"
#include "clock.h"
#include "errors.h"
#include "fork.h"
#include "l1_policy.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- small helpers ---- */

static int plain_key_tracked(const tc_cache_t *c, const void *key, size_t klen) {
    size_t n = strlen(c->key_prefix);
    return klen >= n && memcmp(key, c->key_prefix, n) == 0;
}

int tc__check_key(const tc_cache_t *c, const void *key, size_t klen) {
    if (!c || !key)
        return tc__note(TC_EINVAL, "%s is NULL", c ? "key" : "cache");
    if (tc__forked_since(c->fork_gen))
        return tc__note(TC_EFORKED, "this cache was opened in the parent process before "
                                    "fork(): open one in this process");
    if (klen == 0 || klen > TC_MAX_KEY_LEN)
        return tc__note(TC_EKEYLEN, "key length %zu is not in 1..%u", klen, TC_MAX_KEY_LEN);
    if (c->plain_bcast && !plain_key_tracked(c, key, klen))
        return tc__note(TC_EINVAL,
                        "plain key outside key_prefix '%s': Redis would not report "
                        "its changes (bcast tracking covers the prefix only)",
                        c->key_prefix);
    return TC_OK;
}

int tc__l2_unreachable(int rc) {
    return rc == TC_EUNAVAILABLE || rc == TC_ETIMEDOUT;
}

void tc__cache_time(tc_cache_t *c, tc_latency_kind_t kind, uint64_t t0_ns) {
    if (t0_ns)
        tc__hist_record(&c->lat[kind], tc__now_ns() - t0_ns);
}

uint64_t tc__write_timer(const tc_cache_t *c) {
    /* A counter of the writes' own: on the hits' counter a regular pattern (a get, then a
     * set) would put every sample on one kind and none on the other. */
    static _Thread_local unsigned writes;
    if (c->l2 || (++writes & (TC__HIT_SAMPLE - 1)) == 0)
        return tc__now_ns();
    return 0;
}

uint64_t tc__local_version(tc_cache_t *c, const void *key, size_t klen) {
    return tc__l1_next_version(c->l1, tc__l1_hash(c->l1, key, klen));
}

uint64_t tc__rand64(void) {
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

tc_ref_t *tc__cache_entry(const tc_cache_t *c, const void *key, size_t klen, const void *value,
                          size_t vlen) {
    return tc__entry_new_ext(key, klen, value, vlen, c->ext);
}

int tc__entry_absent(const tc_ref_t *e) {
    const tc__entry_ext_t *x = tc__entry_ext(e);
    return x && (x->flags & TC__ENTRY_ABSENT);
}

int tc__take_l2(tc_cache_t *c, tc__pending_t *p, uint64_t snap, const void *key, size_t klen,
                int rc, tc__l2_value_t *v, tc_ref_t **out) {
    if (rc == TC_ENOTFOUND || rc == TC_EPROTO) { /* EPROTO: not ours, never served */
        tc__count(&c->l2_misses);
        return TC_ENOTFOUND;
    }
    if (rc == TC_ETOOBIG)
        tc__count(&c->values_too_big);
    if (rc != TC_OK)
        return rc;
    tc__count(&c->l2_hits);
    int absent = (v->val.flags & TC__VAL_FLAG_ABSENT) != 0;
    tc_ref_t *e = tc__entry_from_l2(c, key, klen, v);
    int vanished = v->pttl_ms == TC__L2_LIFE_NOTHING;
    tc__l2_value_release(v);
    if (!e)
        return TC_ENOMEM;
    if (!vanished && p) /* deleted between GET and PTTL, or its life unknown: serve what
                           we read, keep nothing */
        tc__l1_commit(c->l1, p, snap, e, TC__COMMIT_FROM_L2);
    if (absent) {
        tc__count(&c->negative_hits);
        tc_ref_release(e);
        return TC__ABSENT;
    }
    *out = e;
    return TC_OK;
}

int tc__read_through(tc_cache_t *c, tc__pending_t *p, uint64_t snap, const void *key,
                     size_t klen, tc_ref_t **out) {
    tc__l2_value_t v;
    int rc = tc__l2_get(c->l2, key, klen, &v);
    return tc__take_l2(c, p, snap, key, klen, rc, &v, out);
}

/* ---- tc_get ---- */

int tc_get(tc_cache_t *c, const void *key, size_t klen, tc_ref_t **ref) {
    c = tc__route(c, key, klen);
    if (!ref)
        return TC_EINVAL;
    *ref = NULL;
    int rc = tc__check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    if (c->cfg.loader) /* read-through: a miss loads, as tc_fetch */
        return tc__fetch(c, key, klen, c->cfg.loader, c->cfg.loader_arg, NULL, ref);
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    uint64_t t0 = tc__sample_hit() ? tc__now_ns() : 0;
    if (tc__l1_get(c->l1, h, key, klen, ref) == TC_OK) {
        tc__cache_time(c, TC_LAT_GET_HIT, t0); /* t0 0: not sampled */
        if (!tc__entry_absent(*ref))
            return TC_OK;
        tc__count(&c->negative_hits);
        tc_ref_release(*ref);
        *ref = NULL;
        return TC_ENOTFOUND;
    }
    if (!c->l2)
        return TC_ENOTFOUND;
    t0 = tc__now_ns();
    uint64_t snap;
    tc__pending_t *p = tc__l1_pending_begin(c->l1, h, key, klen, &snap);
    if (!p)
        return TC_ENOMEM;
    rc = tc__read_through(c, p, snap, key, klen, ref);
    tc__l1_pending_end(c->l1, p);
    tc__cache_time(c, TC_LAT_GET_MISS, t0);
    return rc == TC_EUNAVAILABLE || rc == TC__ABSENT ? TC_ENOTFOUND : rc;
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

int tc__check_value(const tc_cache_t *c, const void *value, size_t vlen) {
    if (!value && vlen > 0)
        return tc__note(TC_EINVAL, "value is NULL with a length of %zu", vlen);
    if (vlen > c->cfg.max_value_bytes)
        return tc__note(TC_ETOOBIG, "a value of %zu bytes is over max_value_bytes (%zu)", vlen,
                        c->cfg.max_value_bytes);
    return TC_OK;
}

/* A plain key: a plain SET; this process's copy goes (the next read takes what Redis
 * holds: no version could order it against another client's write). */
static int plain_set(tc_cache_t *c, const void *key, size_t klen, const void *value,
                     size_t vlen, uint64_t ttl_ms) {
    tc__ttl_plan_t plan;
    tc__plan_ttl(c, key, klen, ttl_ms, &plan);
    int rc = tc__l2_plain_set(c->l2, key, klen, value, vlen, plan.keep_ms);
    tc__l1_evict(c->l1, tc__l1_hash(c->l1, key, klen), key, klen);
    return rc;
}

int tc__tags_ok(const tc_cache_t *c) { /* a ring's shell: its servers keep them */
    return (c->l2 || c->ring) && !c->cfg.plain_keys && !c->endpoint.cluster_seeds;
}

int tc__set_local(tc_cache_t *c, const void *key, size_t klen, const void *value, size_t vlen,
                  uint64_t ttl_ms) {
    tc__ttl_plan_t plan;
    tc__plan_ttl(c, key, klen, ttl_ms, &plan);
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    tc_ref_t *e = tc__cache_entry(c, key, klen, value, vlen);
    if (!e)
        return TC_ENOMEM;
    tc__stamp(c, e, &plan, 0);
    if (!tc__l1_write_local(c->l1, h, e)) /* not kept (too big?): drop older copies */
        tc__l1_invalidate(c->l1, h, key, klen, e->version);
    tc_ref_release(e);
    return TC_OK;
}

int tc__set(tc_cache_t *c, const void *key, size_t klen, const void *value, size_t vlen,
            const tc__call_opts_t *o) {
    uint64_t t0 = tc__write_timer(c);
    int rc;
    if (c->cfg.plain_keys) {
        rc = plain_set(c, key, klen, value, vlen, o->ttl_ms);
        tc__cache_time(c, TC_LAT_SET, t0);
        return rc;
    }
    if (!c->l2 && !(o->flags & TC_OPT_NO_L1)) {
        rc = tc__set_local(c, key, klen, value, vlen, o->ttl_ms);
        tc__cache_time(c, TC_LAT_SET, t0);
        return rc;
    }
    tc__ttl_plan_t plan;
    tc__plan_ttl(c, key, klen, o->ttl_ms, &plan);
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    tc_ref_t *e = tc__cache_entry(c, key, klen, value, vlen);
    if (!e)
        return TC_ENOMEM;
    tc__stamp(c, e, &plan, 0);
    uint64_t snap;
    tc__pending_t *p = tc__l1_pending_begin(c->l1, h, key, klen, &snap);
    if (!p) {
        tc_ref_release(e);
        return TC_ENOMEM;
    }
    unsigned flags = TC__COMMIT_WRITE;
    rc = TC_OK;
    if (c->l2) {
        tc__l2_write_t w = {.key = key,
                            .klen = klen,
                            .value = value,
                            .vlen = vlen,
                            .ttl_ms = plan.keep_ms,
                            .tags = o->tags,
                            .ntags = o->ntags};
        tc__l2_meta_for(c, &plan, 0, 0, &w.meta);
        rc = tc__l2_put(c->l2, &w, &e->version);
        if (rc == TC_EUNAVAILABLE) /* Redis never saw it: a local entry (l1.c rule 4) */
            flags = TC__COMMIT_FORCE;
    } else {
        e->version = tc__l1_next_version(c->l1, h);
    }
    int keep = !(o->flags & TC_OPT_NO_L1);
    if ((rc == TC_OK || rc == TC_EUNAVAILABLE) && keep) {
        if (!tc__l1_commit(c->l1, p, snap, e, flags) && rc == TC_OK)
            tc__l1_invalidate(c->l1, h, key, klen, e->version); /* not kept: drop older */
    } else if (rc == TC_OK) {
        tc__l1_invalidate(c->l1, h, key, klen, e->version); /* not kept here: drop older */
    } else {
        tc__l1_evict(c->l1, h, key, klen);
    }
    tc__l1_pending_end(c->l1, p);
    tc_ref_release(e);
    tc__cache_time(c, TC_LAT_SET, t0);
    return rc;
}

int tc_set_opts(tc_cache_t *c, const void *key, size_t klen, const void *value, size_t vlen,
                const tc_opts_t *opts) {
    c = tc__route(c, key, klen);
    int rc = tc__check_key(c, key, klen);
    if (rc == TC_OK)
        rc = tc__check_value(c, value, vlen);
    tc__call_opts_t o;
    if (rc == TC_OK)
        rc = tc__opts_import(opts, tc__tags_ok(c), &o);
    return rc == TC_OK ? tc__set(c, key, klen, value, vlen, &o) : rc;
}

int tc_set(tc_cache_t *c, const void *key, size_t klen, const void *value, size_t vlen,
           uint64_t ttl_ms) {
    c = tc__route(c, key, klen);
    int rc = tc__check_key(c, key, klen);
    if (rc == TC_OK)
        rc = tc__check_value(c, value, vlen);
    tc__call_opts_t o = {.ttl_ms = ttl_ms};
    return rc == TC_OK ? tc__set(c, key, klen, value, vlen, &o) : rc;
}

int tc_del(tc_cache_t *c, const void *key, size_t klen) {
    c = tc__route(c, key, klen);
    int rc = tc__check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    uint64_t t0 = tc__write_timer(c);
    rc = tc__del(c, key, klen);
    tc__cache_time(c, TC_LAT_DEL, t0);
    return rc;
}

int tc__del(tc_cache_t *c, const void *key, size_t klen) {
    int rc = TC_OK;
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    uint64_t version = 0;
    if (c->l2 && c->cfg.plain_keys)
        rc = tc__l2_plain_del(c->l2, key, klen);
    else if (c->l2)
        rc = tc__l2_del(c->l2, key, klen, &version);
    else
        version = tc__l1_next_version(c->l1, h);
    if (rc == TC_OK && version)
        tc__l1_invalidate(c->l1, h, key, klen, version);
    else
        tc__l1_evict(c->l1, h, key, klen);
    return rc;
}

/* ---- tc_invalidate ---- */

int tc_invalidate(tc_cache_t *c, const void *key, size_t klen) {
    c = tc__route(c, key, klen);
    int rc = tc__check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    tc__l1_evict(c->l1, tc__l1_hash(c->l1, key, klen), key, klen);
    return c->l2 ? tc__l2_evict(c->l2, key, klen) : TC_OK;
}

/* ---- lifecycle ---- */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void free_rules(tc_cache_t *c) {
    for (size_t i = 0; c->rules && i < c->cfg.ttl_rules_count; i++)
        free((void *)(uintptr_t)c->rules[i].prefix);
    free(c->rules);
}

static void free_cache(tc_cache_t *c) {
    tc__behind_stop(c->behind); /* first: it drains the queue through L2 and the writer */
    tc__refresh_close(c->pool); /* its tasks use L1, L2 and the loaders */
    tc__keeper_stop(c->keeper);
    tc__sentinel_watch_stop(c->sentinel_watch); /* its callback uses the listener and L2 */
    tc__listener_stop(c->listener);
    tc__l2_close(c->l2);
    tc__marks_free(c->marks);
    tc__l1_close(c->l1);
    tc__log_deinit(&c->log);
    tc__endpoint_deinit(&c->endpoint);
    free(c->key_prefix);
    free(c->channel);
    free(c->log_key);
    free(c->track_prefix);
    free_rules(c);
    free(c);
}

static int copy_rules(tc_cache_t *c, const tc_config_t *cfg) {
    c->cfg.ttl_rules = NULL;
    if (!cfg->ttl_rules_count)
        return TC_OK;
    c->rules = calloc(cfg->ttl_rules_count, sizeof *c->rules);
    if (!c->rules) {
        c->cfg.ttl_rules_count = 0;
        return TC_ENOMEM;
    }
    for (size_t i = 0; i < cfg->ttl_rules_count; i++) {
        c->rules[i] = cfg->ttl_rules[i];
        void *prefix = malloc(cfg->ttl_rules[i].prefix_len);
        c->rules[i].prefix = prefix;
        if (!prefix)
            return TC_ENOMEM;
        memcpy(prefix, cfg->ttl_rules[i].prefix, cfg->ttl_rules[i].prefix_len);
    }
    c->cfg.ttl_rules = c->rules;
    return TC_OK;
}

/* Which freshness machinery this configuration needs. */
static void plan_features(tc_cache_t *c) {
    const tc_config_t *f = &c->cfg;
    int rule_stale = 0;
    for (size_t i = 0; i < f->ttl_rules_count; i++)
        rule_stale |= c->rules[i].stale_ttl_ms != 0;
    c->ext = f->stale_ttl_ms || f->failsafe_max_stale_ms || f->early_refresh_beta > 0 ||
             f->negative_ttl_ms || f->sliding_ttl || rule_stale;
}

/* Sentinel announced a failover: every pooled connection may reach the demoted master,
 * which takes writes until Sentinel converts it (and then drops them in its resync), so
 * they all go; the listener connects again, finds the new server and flushes L1. */
static void on_master_switch(void *arg, const tc__sentinel_addr_t *now) {
    tc_cache_t *c = arg;
    tc__log(&c->log, TC__EV_LISTENER, TC_LOG_WARN, NULL, 0,
            "Sentinel: '%s' failed over to %s:%d: Redis connections dropped, the listener "
            "reconnects",
            c->endpoint.master_name, now->host, now->port);
    tc__l2_reset(c->l2);
    tc__listener_rebind(c->listener);
}

static int needs_pool(const tc_cache_t *c) {
    const tc_config_t *f = &c->cfg;
    return c->ext || f->load_soft_timeout_ms || f->load_hard_timeout_ms;
}

/* The CPU-based default, halved while a shard would be too thin to do its job:
 *  - a shard is an LRU of its own, and one that holds a handful of entries ranks them
 *    badly: replaying ../shared/traces at 32 shards missed up to 2.1 points more than one
 *    exact LRU (lirs-2pools at 298 entries, 9 per shard), and every row over 1 point had
 *    fewer than 20 entries per shard; at SHARD_MIN_ENTRIES per shard every row is within
 *    1 point (bench/README.md "Trace replay"). The entries are l1_max_entries, or when
 *    the bytes bind first, the budget at an assumed SHARD_NOMINAL_ENTRY_BYTES each (an
 *    overestimate for small values, so it errs towards fewer, fuller shards);
 *  - a large value must fit one shard to be kept at all: two of l1_max_value_bytes.
 * A small L1 gives up some lock striping for it; l1_shards overrides. */
#define SHARD_MIN_ENTRIES         64u
#define SHARD_NOMINAL_ENTRY_BYTES 1024u
static unsigned default_shards(const tc_config_t *cfg) {
    uint64_t entries = cfg->l1_max_bytes / SHARD_NOMINAL_ENTRY_BYTES;
    if (cfg->l1_max_entries && cfg->l1_max_entries < entries)
        entries = cfg->l1_max_entries;
    unsigned n = tc__default_shards();
    while (n > 1 && (cfg->l1_max_bytes / n < 2 * cfg->l1_max_value_bytes ||
                     entries / n < SHARD_MIN_ENTRIES))
        n >>= 1;
    return n;
}

/* degraded_ttl_ms, or the watchdog bound; 0 (no cap) without Redis: nothing to miss. */
static uint64_t degraded_ttl(const tc_config_t *cfg) {
    if (!cfg->redis_url)
        return 0;
    return cfg->degraded_ttl_ms ? cfg->degraded_ttl_ms : 2 * (uint64_t)cfg->listener_ping_ms;
}

static int open_l1(tc_cache_t *c, const tc_config_t *cfg) {
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = tc__now_ns() ^ (uint64_t)(uintptr_t)c;
    tc__l1_opts_t o = {
        .max_bytes = c->cfg.l1_max_bytes,
        .max_entries = c->cfg.l1_max_entries,
        .max_value_bytes = c->cfg.l1_max_value_bytes,
        .shards = c->cfg.l1_shards ? c->cfg.l1_shards : default_shards(&c->cfg),
        .seed = seed,
        .local_ttl_ms = degraded_ttl(cfg),
        .policy =
            c->cfg.l1_policy == TC_L1_POLICY_S3FIFO ? TC__L1_S3FIFO : TC__L1_SECOND_CHANCE,
    };
    return tc__l1_open(&o, &c->l1);
}

/* Default tracking: the data connections redirect their reads' tracking to this id. */
static void on_tracking_id(void *arg, uint64_t client_id) {
    tc_cache_t *c = arg;
    tc__l2_set_tracking_target(c->l2, client_id);
}

/* Redis answered after failing: what this process kept without it must go (l1.c rule 4). */
static void on_l2_heal(void *arg) {
    tc_cache_t *c = arg;
    size_t dropped = tc__l1_heal(c->l1);
    if (dropped)
        tc__log(&c->log, TC__EV_HEAL, TC_LOG_INFO, NULL, 0,
                "Redis answered again: %zu entries kept while it failed dropped", dropped);
}

/* Subscribed (again): reload the local copy of the marks before L1 is trusted. A failure
 * leaves it unknown: reads then ask Redis for their marks. */
static void on_subscribed(void *arg) {
    tc_cache_t *c = arg;
    tc__l2_load_marks(c->l2);
}

/* Redis Cluster: a map read found other masters. A failover may have lost writes that L1
 * holds (replication is asynchronous), and messages the old master published as it died
 * may never arrive: L1 is not to be trusted, as after a lost link. */
static void on_masters_changed(void *arg) {
    tc_cache_t *c = arg;
    size_t dropped = tc__l1_flush(c->l1);
    tc__log(&c->log, TC__EV_CLUSTER, TC_LOG_WARN, NULL, 0,
            "Redis Cluster: the masters changed (a failover, or a master added or removed): "
            "L1 flushed (%zu entries)",
            dropped);
}

static int open_redis(tc_cache_t *c, const char *url, tc_error_t *err) {
    int rc = tc__endpoint_parse(url, &c->endpoint, err);
    if (rc != TC_OK)
        return rc;
    int cluster = c->endpoint.cluster_seeds != NULL;
    if (cluster) /* the replay log and the marks are single keys: not on a cluster yet */
        c->cfg.replay_log_len = 0;
    if (!c->cfg.plain_keys && !cluster &&
        !(c->marks = tc__marks_new(c->cfg.ns_separator, TC_MAX_NS_DEPTH)))
        return tc__fail(err, TC_ENOMEM, "out of memory");
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
        .max_value_bytes = c->cfg.max_value_bytes,
        .on_heal = on_l2_heal,
        .heal_arg = c,
        .log = &c->log,
        .replay_log_len = c->cfg.replay_log_len,
        .plain = c->cfg.plain_keys,
        .ns_sep = c->cfg.ns_separator,
        .marks = c->marks,
        .tracking = c->cfg.tracking,
        .header_ttl = !c->ext && !cluster, /* one clock per master: PTTL on a cluster */
        .cluster_watch_ms = c->cfg.listener_ping_ms,
        .on_masters_changed = on_masters_changed,
        .masters_arg = c,
    };
    memcpy(lo.origin, c->origin, sizeof lo.origin);
    rc = tc__l2_open(&lo, &c->l2, err);
    if (rc != TC_OK)
        return rc;
    rc = tc__keeper_start(c->l2, &c->keeper);
    if (rc != TC_OK)
        return tc__fail(err, rc, "could not start the keeper thread");
    /* One round trip first: a failure here is definitive and says why (refused, DNS,
     * WRONGPASS, NOPERM, invalid DB...), at once rather than after a timeout. */
    tc_error_t why = {0};
    int reachable = tc__l2_ping(c->l2, &why) == TC_OK;
    if (!reachable && c->cfg.require_redis)
        return tc__fail(err, why.code ? why.code : TC_EUNAVAILABLE, "require_redis: %s",
                        why.msg);
    if (!reachable)
        tc__log(&c->log, TC__EV_OPEN, TC_LOG_WARN, NULL, 0,
                "Redis unreachable at open (%s): running degraded (L1 and loaders only), "
                "retrying in the background",
                why.msg);
    tc__listener_opts_t so = {
        .endpoint = &c->endpoint,
        .channel = c->channel,
        .connect_timeout_ms = c->cfg.connect_timeout_ms,
        .command_timeout_ms = c->cfg.command_timeout_ms,
        .ping_ms = c->cfg.listener_ping_ms,
        /* Redis's own notices are not in the log: with tracking, a lost link flushes. */
        .log_key = c->cfg.replay_log_len && !c->cfg.tracking ? c->log_key : NULL,
        .tracking = c->cfg.tracking,
        .track_prefix = c->track_prefix,
        .track_prefix_len = strlen(c->track_prefix),
        .track_strip_len = c->cfg.plain_keys ? 0 : strlen(c->track_prefix),
        .on_client_id = on_tracking_id,
        .client_id_arg = c,
        .l1 = c->l1,
        .inval_latency = &c->lat[TC_LAT_INVAL],
        .hook = c->cfg.inval_hook,
        .hook_arg = c->cfg.inval_hook_arg,
        .log = &c->log,
        .marks = c->marks,
        .on_subscribed = c->marks ? on_subscribed : NULL,
        .subscribed_arg = c,
    };
    rc = tc__listener_start(&so, &c->listener);
    if (rc != TC_OK)
        return tc__fail(err, rc, "could not start the invalidation listener thread");
    if (c->endpoint.sentinels) {
        tc__sentinel_opts_t wo = tc__sentinel_opts_of(&c->endpoint, c->cfg.connect_timeout_ms,
                                                      c->cfg.command_timeout_ms);
        wo.log = &c->log;
        if ((rc = tc__sentinel_watch_start(&wo, on_master_switch, c, &c->sentinel_watch)) != 0)
            return tc__fail(err, rc, "could not start the Sentinel watch thread");
    }
    if (c->cfg.writer && c->cfg.write_behind_flusher && !cluster &&
        (rc = tc__behind_start(c, &c->behind)) != TC_OK)
        return tc__fail(err, rc, "could not start the write-behind flusher thread");
    if (!reachable) /* no need to wait for a subscription that cannot happen */
        return TC_OK;
    if (tc__listener_wait_subscribed(c->listener, c->cfg.connect_timeout_ms))
        return TC_OK;
    if (!tc__listener_cause(c->listener, &why))
        tc__fail(&why, TC_EUNAVAILABLE, "no confirmation within %u ms",
                 (unsigned)c->cfg.connect_timeout_ms);
    if (c->cfg.require_redis)
        return tc__fail(err, TC_EUNAVAILABLE, "require_redis: could not subscribe to '%s': %s",
                        c->channel, why.msg);
    tc__log(&c->log, TC__EV_OPEN, TC_LOG_WARN, NULL, 0,
            "could not subscribe to '%s' at open (%s): L1 keeps nothing read from Redis "
            "until the listener is subscribed",
            c->channel, why.msg);
    return TC_OK;
}

int tc_open_size(const tc_config_t *caller_cfg, size_t size, tc_cache_t **out,
                 tc_error_t *err) {
    return tc__cache_open(caller_cfg, size, NULL, out, err);
}

int tc__cache_open(const tc_config_t *caller_cfg, size_t size, const char *origin,
                   tc_cache_t **out, tc_error_t *err) {
    tc__error_clear(err);
    if (out)
        *out = NULL;
    if (!caller_cfg || !out)
        return tc__fail(err, TC_EINVAL, "tc_open: cfg and out must not be NULL");
    tc_config_t full;
    int rc = tc__config_import(&full, caller_cfg, size, err);
    if (rc != TC_OK)
        return rc;
    const tc_config_t *cfg = &full;
    rc = tc__config_validate(cfg, err);
    if (rc != TC_OK)
        return rc;
    if (tc__endpoint_is_list(cfg->redis_url))
        return tc__ring_cache_open(cfg, out, err);
    tc_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return tc__fail(err, TC_ENOMEM, "tc_open: out of memory");
    c->cfg = *cfg;
    c->fork_gen = tc__fork_watch();
    tc__log_init(&c->log, cfg->log_fn, cfg->log_arg, cfg->log_level);
    tc__log_set_origin(&c->log, origin);
    c->key_prefix = dup_str(cfg->key_prefix);
    c->channel = dup_str(cfg->inval_channel);
    size_t plen = c->key_prefix ? strlen(c->key_prefix) : 0;
    c->log_key = c->key_prefix ? malloc(plen + 4) : NULL;
    if (c->log_key) {
        memcpy(c->log_key, c->key_prefix, plen);
        memcpy(c->log_key + plen, "log", 4);
    }
    /* What Redis tracks for us: tiercache's data keys <prefix>"k:", or, for plain keys, the
     * prefix itself. */
    c->track_prefix = c->key_prefix ? malloc(plen + 3) : NULL;
    if (c->track_prefix) {
        memcpy(c->track_prefix, c->key_prefix, plen);
        memcpy(c->track_prefix + plen, cfg->plain_keys ? "" : "k:", cfg->plain_keys ? 1 : 3);
    }
    c->cfg.key_prefix = c->key_prefix;
    c->cfg.inval_channel = c->channel;
    c->cfg.redis_url = NULL; /* parsed into c->endpoint; the caller's string may die */
    if (!c->key_prefix || !c->channel || !c->log_key || !c->track_prefix ||
        copy_rules(c, cfg) != TC_OK) {
        free_cache(c);
        return tc__fail(err, TC_ENOMEM, "tc_open: out of memory");
    }
    plan_features(c);
    if (c->cfg.plain_keys) { /* no lock script, no lease: plain keys have no header */
        c->cfg.lock_ttl_ms = 0;
        c->plain_bcast = c->cfg.tracking == TC_TRACKING_BCAST;
    }
    if (needs_pool(c)) {
        rc = tc__refresh_open(cfg->refresh_threads, cfg->refresh_queue, &c->pool);
        if (rc != TC_OK) {
            free_cache(c);
            return tc__fail(err, rc, "tc_open: could not start %u refresh threads",
                            cfg->refresh_threads);
        }
    }
    rc = open_l1(c, cfg);
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

int(tc_open)(const tc_config_t *cfg, tc_cache_t **out, tc_error_t *err) {
    return tc_open_size(cfg, TC__CONFIG_V1_SIZE, out, err);
}

void tc_close(tc_cache_t *c) {
    if (!c)
        return;
    /* In a fork child the threads are the parent's and the locks may have been held at
     * fork time: touch nothing (the memory is the child's copy, reclaimed at exit or exec;
     * the sockets are close-on-exec). */
    if (tc__forked_since(c->fork_gen))
        return;
    if (c->ring) {
        tc__ring_cache_close(c);
        return;
    }
    free_cache(c);
}

/* ---- stats ---- */

static uint64_t load_counter(const atomic_uint_fast64_t *counter) {
    return atomic_load_explicit(counter, memory_order_relaxed);
}

static void stats_full(tc_cache_t *c, tc_stats_t *out);

int tc_stats_size(tc_cache_t *c, tc_stats_t *caller_out, size_t size) {
    if (!c || !caller_out || size < TC__STATS_V1_SIZE)
        return TC_EINVAL;
    if (tc__forked_since(c->fork_gen))
        return TC_EFORKED;
    tc_stats_t full;
    if (c->ring) {
        int rc = tc__ring_stats(c, &full);
        if (rc != TC_OK)
            return rc;
    } else {
        stats_full(c, &full);
    }
    memcpy(caller_out, &full, size < sizeof full ? size : sizeof full);
    if (size > sizeof full) /* a newer header: what this library does not know reads 0 */
        memset((char *)caller_out + sizeof full, 0, size - sizeof full);
    return TC_OK;
}

int tc_latency(tc_cache_t *c, int kind, tc_latency_t *out) {
    if (!c || !out || kind < 0 || kind >= TC_LAT_COUNT)
        return TC_EINVAL;
    if (tc__forked_since(c->fork_gen))
        return TC_EFORKED;
    if (c->ring)
        return tc__ring_latency(c, kind, out);
    tc__hist_snapshot(&c->lat[kind], out);
    return TC_OK;
}

int(tc_stats)(tc_cache_t *c, tc_stats_t *out) {
    return tc_stats_size(c, out, TC__STATS_V1_SIZE);
}

static void stats_full(tc_cache_t *c, tc_stats_t *out) {
    memset(out, 0, sizeof *out);
    tc__l1_counters_t l1;
    tc__l1_counters(c->l1, &l1);
    out->l1_hits = l1.hits;
    out->l1_misses = l1.misses;
    out->l1_entries = l1.entries;
    out->l1_bytes = l1.bytes;
    out->l1_max_bytes = c->cfg.l1_max_bytes;
    out->l1_shards = tc__l1_shards(c->l1);
    out->master_switches = tc__sentinel_watch_switches(c->sentinel_watch);
    out->l1_evictions = l1.evictions;
    out->l1_expirations = l1.expirations;
    out->l1_fills_rejected = l1.rejected;
    out->l1_flushes = l1.flushes;
    out->l1_local_entries = l1.local_entries;
    out->singleflight_waits = l1.waits;
    out->l2_hits = load_counter(&c->l2_hits);
    out->l2_misses = load_counter(&c->l2_misses);
    out->loads = load_counter(&c->loads);
    out->load_errors = load_counter(&c->load_errors);
    out->early_refreshes = load_counter(&c->early_refreshes);
    out->stale_refreshes = load_counter(&c->stale_refreshes);
    out->refreshes_dropped = load_counter(&c->refreshes_dropped);
    out->stale_serves = load_counter(&c->stale_serves);
    out->failsafe_serves = load_counter(&c->failsafe_serves);
    out->negative_hits = load_counter(&c->negative_hits);
    out->lock_acquired = load_counter(&c->lock_acquired);
    out->lock_waits = load_counter(&c->lock_waits);
    out->lock_timeouts = load_counter(&c->lock_timeouts);
    out->load_timeouts = load_counter(&c->load_timeouts);
    out->leases_lost = load_counter(&c->leases_lost);
    out->unlocks_deferred = load_counter(&c->unlocks_deferred);
    out->values_too_big = load_counter(&c->values_too_big);
    out->keys_invalidated = load_counter(&c->keys_invalidated);
    out->batch_loads = load_counter(&c->batch_loads);
    out->writes_through = load_counter(&c->writes_through);
    out->writes_partial = load_counter(&c->writes_partial);
    out->wb_queued = load_counter(&c->wb_queued);
    out->wb_rejected = load_counter(&c->wb_rejected);
    tc__behind_counters(c->behind, out);
    out->inval_swept = load_counter(&c->swept_local);
    if (c->l2) {
        tc__l2_counters_t l2;
        tc__l2_counters(c->l2, &l2);
        out->l2_errors = l2.errors;
        out->l2_timeouts = l2.timeouts;
        out->breaker_opens = l2.opens;
        out->breaker_state = l2.breaker_state;
        out->inval_published = l2.published;
        out->l2_heals = l2.heals;
        out->permission_errors += l2.permission_errors;
        out->versions_refused = l2.refused;
        out->counter_heals = l2.healed_counters;
        out->values_hidden = l2.hidden;
        out->cluster_redirects = l2.cluster_redirects;
        out->cluster_retries = l2.cluster_retries;
        out->cluster_map_reads = l2.cluster_map_reads;
        out->cluster_failovers = l2.cluster_failovers;
        out->servers = l2.cluster ? l2.masters : 1;
        out->servers_down = l2.cluster ? l2.masters_down : out->breaker_state == 1;
    }
    if (c->listener) {
        tc__listener_counters_t ls;
        tc__listener_counters(c->listener, &ls);
        out->inval_received = ls.received;
        out->inval_applied = ls.applied;
        out->inval_malformed = ls.malformed;
        out->listener_reconnects = ls.reconnects;
        out->listener_connected = ls.connected;
        out->permission_errors += ls.permission_errors;
        out->listener_replays = ls.replays;
        out->inval_replayed = ls.replayed;
        out->replay_log_gaps = ls.log_gaps;
        out->inval_tracking = ls.tracked;
        out->inval_swept += ls.swept;
    }
    /* one server, or a cluster's masters (a ring adds its servers' up: ring_cache.c); with
     * the listener unsubscribed no key is kept, whichever server holds it */
    if (c->l2 && !out->listener_connected)
        out->servers_down = out->servers;
}
