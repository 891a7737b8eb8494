/*
 * ttl.c - how long a value lives, in both tiers and on both clocks.
 *
 * A value is fresh for its TTL (the call's, else the key's rule, else default_ttl_ms,
 * jittered so keys written together do not expire together), then stale (served by
 * stale-while-revalidate, and by fail-safe after a failed reload) until
 * keep = fresh + the larger of the stale window and the fail-safe age. Redis keeps the
 * value exactly `keep` (PX), and the value's header carries the end of its fresh period in
 * unix milliseconds, so every process agrees when it stops being fresh.
 *
 * Two clocks: L1 expiries are on this host's coarse monotonic clock (no system call on the
 * hit path); what crosses processes (the header's fresh end) is wall-clock time. A value
 * read from Redis lives in L1 at most its key's remaining PTTL, so an L1 copy never
 * outlives the Redis key; its fresh end is moved from the writer's wall clock to ours.
 */
#include "cache.h"

#include "clock.h"

#include <string.h>
#include <time.h>

uint64_t tc__effective_ttl_ms(const tc_cache_t *c, uint64_t ttl_ms) {
    if (ttl_ms == 0)
        ttl_ms = c->cfg.default_ttl_ms;
    double j = c->cfg.ttl_jitter;
    if (j <= 0)
        return ttl_ms;
    double u = (double)(tc__rand64() >> 11) / 9007199254740992.0; /* [0, 1) */
    double scaled = (double)ttl_ms * (1.0 + j * (2.0 * u - 1.0));
    return scaled < 1.0 ? 1 : (uint64_t)scaled;
}

static const tc_ttl_rule_t *rule_for(const tc_cache_t *c, const void *key, size_t klen) {
    for (size_t i = 0; i < c->cfg.ttl_rules_count; i++) {
        const tc_ttl_rule_t *r = &c->rules[i];
        if (r->prefix_len <= klen && memcmp(r->prefix, key, r->prefix_len) == 0)
            return r;
    }
    return NULL;
}

static uint64_t max_u64(uint64_t a, uint64_t b) {
    return a > b ? a : b;
}

static uint64_t add_sat(uint64_t a, uint64_t b) {
    return a > TC__NO_EXPIRY - b ? TC__NO_EXPIRY : a + b;
}

void tc__plan_ttl(const tc_cache_t *c, const void *key, size_t klen, uint64_t ttl_ms,
                  tc__ttl_plan_t *plan) {
    const tc_ttl_rule_t *rule = c->cfg.ttl_rules_count ? rule_for(c, key, klen) : NULL;
    if (!ttl_ms && rule)
        ttl_ms = rule->ttl_ms;
    if (ttl_ms > TC__MAX_TTL_MS) /* as the configuration: a per-call TTL is capped there */
        ttl_ms = TC__MAX_TTL_MS;
    plan->fresh_ms = tc__effective_ttl_ms(c, ttl_ms);
    plan->stale_ms = rule && rule->stale_ttl_ms ? rule->stale_ttl_ms : c->cfg.stale_ttl_ms;
    plan->keep_ms =
        add_sat(plan->fresh_ms, max_u64(plan->stale_ms, c->cfg.failsafe_max_stale_ms));
}

void tc__stamp(const tc_cache_t *c, tc_ref_t *e, const tc__ttl_plan_t *plan, uint32_t load_ms) {
    uint64_t now = tc__now_ms();
    tc__entry_set_expiry(e, add_sat(now, plan->keep_ms));
    tc__entry_ext_t *x = tc__entry_ext(e);
    if (!x)
        return;
    uint64_t fresh = add_sat(now, plan->fresh_ms);
    atomic_store_explicit(&x->fresh_until_ms, fresh, memory_order_relaxed);
    atomic_store_explicit(&x->stale_until_ms, add_sat(fresh, plan->stale_ms),
                          memory_order_relaxed);
    x->ttl_ms = plan->fresh_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)plan->fresh_ms;
    x->load_ms = load_ms;
    x->slide_cap_ms = c->cfg.sliding_ttl ? add_sat(now, c->cfg.sliding_max_ms) : 0;
}

void tc__l2_meta_for(const tc_cache_t *c, const tc__ttl_plan_t *plan, unsigned flags,
                     uint32_t load_ms, tc__l2_meta_t *meta) {
    meta->flags = flags;
    meta->load_ms = load_ms;
    /* Only caches with stale windows need the fresh end; 0 means "fresh until PTTL". */
    meta->logical_expiry_ms = c->ext ? add_sat(tc__wall_ms(), plan->fresh_ms) : 0;
}

tc_ref_t *tc__entry_from_l2(const tc_cache_t *c, const void *key, size_t klen,
                            const tc__l2_value_t *v) {
    /* A peer with freshness features may have stored an absence or a fresh end: this
     * entry carries them even when this cache uses none, so every process reads the same
     * value the same way (an absence is never a 0-byte value). */
    int ext = c->ext || (v->val.flags & TC__VAL_FLAG_ABSENT) || v->val.logical_expiry_ms;
    tc_ref_t *e = tc__entry_new_ext(key, klen, v->val.data, v->val.len, ext);
    if (!e)
        return NULL;
    e->version = v->val.version;
    e->vlen_bits |= TC__ENTRY_READ;
    tc__ttl_plan_t plan;
    tc__plan_ttl(c, key, klen, 0, &plan);
    uint64_t now = tc__now_ms();
    uint64_t expiry = add_sat(now, v->pttl_ms >= 0 ? (uint64_t)v->pttl_ms : plan.keep_ms);
    tc__entry_set_expiry(e, expiry);
    tc__entry_ext_t *x = tc__entry_ext(e);
    if (!x)
        return e;
    uint64_t fresh = expiry;
    if (v->val.logical_expiry_ms) { /* the writer's fresh end, moved onto our clock */
        uint64_t wall = tc__wall_ms();
        fresh = v->val.logical_expiry_ms > wall ? add_sat(now, v->val.logical_expiry_ms - wall)
                                                : now;
        if (fresh > expiry)
            fresh = expiry;
    }
    uint64_t stale = add_sat(fresh, plan.stale_ms);
    atomic_store_explicit(&x->fresh_until_ms, fresh, memory_order_relaxed);
    atomic_store_explicit(&x->stale_until_ms, stale < expiry ? stale : expiry,
                          memory_order_relaxed);
    x->ttl_ms = plan.fresh_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)plan.fresh_ms;
    x->slide_cap_ms = c->cfg.sliding_ttl ? add_sat(now, c->cfg.sliding_max_ms) : 0;
    x->load_ms = tc__val_load_ms(v->val.load_class);
    if (v->val.flags & TC__VAL_FLAG_ABSENT)
        x->flags |= TC__ENTRY_ABSENT;
    return e;
}
