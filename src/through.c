/*
 * through.c - write-through: the source first, then the cache (tc_set_through,
 * tc_del_through).
 *
 * Two write-throughs of one key from two processes would otherwise interleave as
 * "A writes the source, B writes the source, B writes the cache, A writes the cache", and the
 * cache would hold A's value while the source holds B's, for the key's whole TTL. So the
 * sequence runs under the key's Redis lock, the same lock a load takes as its lease, with
 * two differences (scripts.c, WLOCK): a write-through takes the lock over from a load
 * (voiding the load's lease, as any write does), and waits for another write-through's
 * lock (tokens starting 'w'). The value is then stored only while the lock is still ours
 * (PUT_LEASED): a tc_set or tc_del of the key in the meantime means the source may no
 * longer hold our value, and the key is deleted everywhere instead, so the next read loads
 * the source. Without the lock (Redis unreachable, or the wait exceeded lock_wait_ms) the
 * cache step is always a delete: never wrong, at the price of one miss. Every cache step
 * that deletes is tc_del's, so this process's own next read misses at once, whether or not
 * its pub/sub link is up.
 *
 * The writer sees each write's version (tc_write_t.version) so it can refuse an older one.
 * Under the lock it is the version Redis minted for the key; without it, this machine's
 * clock in microseconds (the unit Redis mints in); either way raised above every version
 * this process handed before. So one process's write-throughs reach the writer with
 * growing versions, and one that starts after another process's lock was taken carries a
 * higher version as long as the machines' clocks agree to better than that gap.
 * (plain_keys caches have no writer: tc_open refuses the pair.)
 *
 * A cache step that fails after the source was written is the one outcome that needs care:
 * this process drops its copy, the keeper deletes the key everywhere as soon as Redis
 * answers, and the caller hears TC_EPARTIAL (the source holds the write; other processes
 * may serve the old value until then, within the degraded bound, since they cannot reach
 * Redis either, or the keeper's delete reaches them).
 */
#include "cache.h"
#include "ring_cache.h"

#include "clock.h"
#include "errors.h"
#include "fork.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define WT_WAIT_MIN_MS 1u
#define WT_WAIT_MAX_MS 50u

/* The write lock, waiting for another write-through's up to lock_wait_ms. 1 taken
 * (*version: the writer's), 0 proceed without it. */
static int write_lock(tc_cache_t *c, const void *key, size_t klen, const char *token,
                      uint32_t ttl_ms, uint64_t *version) {
    uint64_t deadline = tc__now_ns() + (uint64_t)c->cfg.lock_wait_ms * 1000000u;
    uint32_t wait = WT_WAIT_MIN_MS;
    for (;;) {
        int64_t pttl = 0;
        int rc = tc__l2_wlock(c->l2, key, klen, token, strlen(token), ttl_ms, &pttl, version);
        if (rc == TC__L2_DONE)
            return 1;
        if (rc != TC__L2_LOCK_HELD || tc__now_ns() >= deadline)
            return 0;
        tc__sleep_ms(pttl > 0 && (uint64_t)pttl < wait ? (uint32_t)pttl : wait);
        wait = wait * 2 > WT_WAIT_MAX_MS ? WT_WAIT_MAX_MS : wait * 2;
    }
}

/* The writer's answer as a code: its return, else the write's result. */
static int call_writer(tc_cache_t *c, tc_write_t *w) {
    int rc = c->cfg.writer(c->cfg.writer_arg, w, 1);
    if (rc == 0)
        rc = w->result;
    return rc > 0 ? TC_ELOADER : rc;
}

/* Store the written value while our lock holds, committing it to L1 like tc_set. */
static int store_leased(tc_cache_t *c, const tc_write_t *w, const char *token,
                        const tc__call_opts_t *o) {
    tc__ttl_plan_t plan;
    tc__plan_ttl(c, w->key, w->klen, o->ttl_ms, &plan);
    uint64_t h = tc__l1_hash(c->l1, w->key, w->klen);
    tc_ref_t *e = tc__cache_entry(c, w->key, w->klen, w->value, w->vlen);
    uint64_t snap;
    tc__pending_t *p = e ? tc__l1_pending_begin(c->l1, h, w->key, w->klen, &snap) : NULL;
    if (!p) {
        tc_ref_release(e);
        return TC_ENOMEM;
    }
    tc__stamp(c, e, &plan, 0);
    tc__l2_write_t lw = {.key = w->key,
                         .klen = w->klen,
                         .value = w->value,
                         .vlen = w->vlen,
                         .ttl_ms = plan.keep_ms,
                         .lease = token,
                         .lease_len = strlen(token),
                         .tags = o->tags,
                         .ntags = o->ntags};
    tc__l2_meta_for(c, &plan, 0, 0, &lw.meta);
    int rc = tc__l2_put_leased(c->l2, &lw, &e->version);
    if (rc == TC__L2_DONE) {
        if ((o->flags & TC_OPT_NO_L1) || !tc__l1_commit(c->l1, p, snap, e, TC__COMMIT_WRITE))
            tc__l1_invalidate(c->l1, h, w->key, w->klen, e->version); /* not kept: drop older */
        rc = TC_OK;
    }
    tc__l1_pending_end(c->l1, p);
    tc_ref_release(e);
    if (rc == TC__L2_LEASE_LOST) /* a write came: the source may be ahead of it */
        rc = tc__del(c, w->key, w->klen);
    return rc;
}

/* The version handed to the writer: the one Redis minted under the lock, or without the
 * lock (no Redis, Redis down, the wait exceeded) this machine's clock in microseconds, the
 * unit Redis mints in; either way above every version this process handed before, so a
 * writer that refuses older versions never refuses a later write-through of this process
 * (a clock ahead of Redis's would otherwise hand a lock-less write a version above the
 * next locked one). */
static uint64_t writer_version(tc_cache_t *c, uint64_t minted) {
    uint64_t last = atomic_load(&c->writer_version), v;
    do {
        v = minted ? minted : tc__wall_us();
        if (v <= last)
            v = last + 1;
    } while (!atomic_compare_exchange_weak(&c->writer_version, &last, v));
    return v;
}

/* L1-only: the cache is this process's L1. */
static int cache_local(tc_cache_t *c, const tc_write_t *w, const tc__call_opts_t *o) {
    if (w->kind == TC_WRITE_SET)
        return tc__set(c, w->key, w->klen, w->value, w->vlen, o);
    tc__l1_evict(c->l1, tc__l1_hash(c->l1, w->key, w->klen), w->key, w->klen);
    return TC_OK;
}

static int write_through(tc_cache_t *c, tc_write_t *w, const tc__call_opts_t *o) {
    if (!c->cfg.writer)
        return tc__note(TC_EINVAL, "write-through needs tc_config_t.writer");
    char token[40];
    snprintf(token, sizeof token, "w%016llx%016llx", (unsigned long long)tc__rand64(),
             (unsigned long long)tc__rand64());
    uint32_t ttl = c->cfg.lock_ttl_ms ? c->cfg.lock_ttl_ms : 5000;
    int locked = c->l2 && write_lock(c, w->key, w->klen, token, ttl, &w->version);
    w->version = writer_version(c, locked ? w->version : 0);
    tc__lease_t *lease =
        locked ? tc__keeper_hold(c->keeper, w->key, w->klen, token, strlen(token), ttl) : NULL;
    int rc = call_writer(c, w);
    tc__keeper_let_go(c->keeper, lease);
    if (rc != TC_OK) { /* the source refused: the cache is untouched */
        if (locked)
            tc__l2_unlock(c->l2, w->key, w->klen, token, strlen(token));
        return rc;
    }
    tc__count(&c->writes_through);
    if (!c->l2)
        return cache_local(c, w, o);
    if (w->kind == TC_WRITE_SET && locked)
        rc = store_leased(c, w, token, o);
    else /* a delete, or no lock to order us: delete everywhere (the DEL script frees our
          * lock), this process's L1 at once; the next read loads the source */
        rc = tc__del(c, w->key, w->klen);
    if (rc >= 0)
        return TC_OK;
    /* The source holds the write, Redis does not know: drop ours, delete it everywhere
     * as soon as Redis answers. */
    tc__l1_evict(c->l1, tc__l1_hash(c->l1, w->key, w->klen), w->key, w->klen);
    tc__keeper_delete_later(c->keeper, w->key, w->klen);
    tc__count(&c->writes_partial);
    tc__log(&c->log, TC__EV_WRITE, TC_LOG_WARN, w->key, w->klen,
            "write-through: the source was written but Redis was not (%s): the key is "
            "deleted everywhere as soon as Redis answers",
            tc_err_name(rc));
    return tc__note(TC_EPARTIAL,
                    "write-through: the source was written, the cache step "
                    "failed (%s): deletion retried in the background",
                    tc_err_name(rc));
}

int tc_set_through(tc_cache_t *c, const void *key, size_t klen, const void *value, size_t vlen,
                   const tc_opts_t *opts) {
    c = tc__route(c, key, klen);
    int rc = tc__check_key(c, key, klen);
    if (rc == TC_OK)
        rc = tc__check_value(c, value, vlen);
    tc__call_opts_t o;
    if (rc == TC_OK)
        rc = tc__opts_import(opts, tc__tags_ok(c), &o);
    if (rc != TC_OK)
        return rc;
    tc_write_t w = {.kind = TC_WRITE_SET,
                    .key = key,
                    .klen = klen,
                    .value = vlen ? value : "",
                    .vlen = vlen};
    return write_through(c, &w, &o);
}

int tc_del_through(tc_cache_t *c, const void *key, size_t klen) {
    c = tc__route(c, key, klen);
    int rc = tc__check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    tc__call_opts_t o = {0};
    tc_write_t w = {.kind = TC_WRITE_DEL, .key = key, .klen = klen};
    return write_through(c, &w, &o);
}
