/*
 * bulk.c - many keys per call: tc_mget, tc_mset, tc_mdel, tc_warm and tc_hot_keys (the
 * batch loader's tc_mfetch lives in mfetch.c).
 *
 * A bulk call is its single-key calls with the round trips merged: every key goes through
 * the same pending record, the same commit rules (l1.c) and, in Redis, the same script as
 * alone (l2_many.c pipelines them); without Redis a tc_mset item is written as a tc_set
 * is (tc__set_local). So nothing about coherence is new here: a key of a
 * tc_mget races an invalidation exactly as a tc_get would, and each write of a tc_mset is
 * ordered against any other write of its key by its own version. What is new is only the
 * cost: one round trip per TC__L2_PIPE_MAX keys instead of one per key.
 */
#include "cache.h"
#include "ring_cache.h"

#include "clock.h"
#include "errors.h"
#include "fork.h"

#include <stdlib.h>
#include <string.h>

/* Checks shared by the bulk calls. 0, or a whole-call error. */
static int check_bulk(const tc_cache_t *c, const void *a, const void *b, size_t n) {
    if (!c)
        return tc__note(TC_EINVAL, "cache is NULL");
    if (tc__forked_since(c->fork_gen))
        return tc__note(TC_EFORKED, "this cache was opened in the parent process before "
                                    "fork(): open one in this process");
    if (n > 0 && (!a || !b))
        return tc__note(TC_EINVAL, "a key or result array is NULL with n = %zu", n);
    return TC_OK;
}

/* ---- tc_mget ---- */

/* Keys [0, n) that missed L1: read them from Redis in one round trip per chunk, commit
 * under their pending records, answer refs/codes. */
static void mget_from_l2(tc_cache_t *c, const tc_buf_t *keys, const size_t *miss, size_t m,
                         tc_ref_t **refs, int *codes) {
    tc_buf_t *mk = malloc(m * sizeof *mk);
    tc__l2_value_t *v = malloc(m * sizeof *v);
    int *rcs = malloc(m * sizeof *rcs);
    tc__pending_t **p = calloc(m, sizeof *p);
    uint64_t *snap = malloc(m * sizeof *snap);
    if (!mk || !v || !rcs || !p || !snap) {
        for (size_t j = 0; j < m; j++)
            codes[miss[j]] = TC_ENOMEM;
        goto out;
    }
    for (size_t j = 0; j < m; j++) {
        const tc_buf_t *k = &keys[miss[j]];
        mk[j] = *k;
        p[j] = tc__l1_pending_begin(c->l1, tc__l1_hash(c->l1, k->data, k->len), k->data, k->len,
                                    &snap[j]);
    }
    tc__l2_get_many(c->l2, mk, m, v, rcs);
    for (size_t j = 0; j < m; j++) {
        size_t i = miss[j];
        int rc = tc__take_l2(c, p[j], snap[j], mk[j].data, mk[j].len, rcs[j], &v[j], &refs[i]);
        codes[i] = rc == TC_EUNAVAILABLE || rc == TC__ABSENT ? TC_ENOTFOUND : rc;
        if (p[j])
            tc__l1_pending_end(c->l1, p[j]);
    }
out:
    free(mk);
    free(v);
    free(rcs);
    free(p);
    free(snap);
}

int tc_mget(tc_cache_t *c, const tc_buf_t *keys, size_t n, tc_ref_t **refs, int *codes) {
    if (c && c->ring)
        return tc__ring_mget(c, keys, n, refs, codes);
    int rc = check_bulk(c, keys, refs, n);
    if (rc == TC_OK && n > 0 && !codes)
        rc = tc__note(TC_EINVAL, "codes is NULL");
    if (rc != TC_OK || n == 0)
        return rc;
    size_t *miss = malloc(n * sizeof *miss), m = 0;
    if (!miss)
        return TC_ENOMEM;
    uint64_t t0 = tc__now_ns();
    for (size_t i = 0; i < n; i++) {
        refs[i] = NULL;
        codes[i] = tc__check_key(c, keys[i].data, keys[i].len);
        if (codes[i] != TC_OK)
            continue;
        uint64_t h = tc__l1_hash(c->l1, keys[i].data, keys[i].len);
        if (tc__l1_get(c->l1, h, keys[i].data, keys[i].len, &refs[i]) == TC_OK) {
            if (tc__entry_absent(refs[i])) { /* a cached absence */
                tc__count(&c->negative_hits);
                tc_ref_release(refs[i]);
                refs[i] = NULL;
                codes[i] = TC_ENOTFOUND;
            }
            continue;
        }
        codes[i] = TC_ENOTFOUND;
        if (c->l2)
            miss[m++] = i;
    }
    if (m > 0) {
        mget_from_l2(c, keys, miss, m, refs, codes);
        tc__cache_time(c, TC_LAT_GET_MISS, t0);
    }
    for (size_t i = 0; i < n; i++)
        if (codes[i] != TC_OK && refs[i]) {
            tc_ref_release(refs[i]);
            refs[i] = NULL;
        }
    free(miss);
    return TC_OK;
}

/* ---- tc_mset ---- */

/* One item of a tc_mset: its entry and pending record. */
typedef struct mset_item {
    tc_ref_t *e;
    tc__pending_t *p;
    uint64_t snap, h;
} mset_item_t;

/* Commit item j's write after Redis answered rc (as tc_set does). */
static void mset_commit(tc_cache_t *c, const tc_item_t *it, mset_item_t *m, int rc,
                        const tc__call_opts_t *o) {
    unsigned flags = rc == TC_EUNAVAILABLE ? TC__COMMIT_FORCE : TC__COMMIT_WRITE;
    int keep = !(o->flags & TC_OPT_NO_L1) && !c->cfg.plain_keys;
    if ((rc == TC_OK || rc == TC_EUNAVAILABLE) && keep) {
        if (!tc__l1_commit(c->l1, m->p, m->snap, m->e, flags) && rc == TC_OK)
            tc__l1_invalidate(c->l1, m->h, it->key, it->klen, m->e->version);
    } else if (rc == TC_OK && !c->cfg.plain_keys) {
        tc__l1_invalidate(c->l1, m->h, it->key, it->klen, m->e->version);
    } else {
        tc__l1_evict(c->l1, m->h, it->key, it->klen);
    }
}

static int mset_check(tc_cache_t *c, const tc_item_t *items, size_t n, const tc_opts_t *opts,
                      tc__call_opts_t *o) {
    int rc = check_bulk(c, items, items, n);
    if (rc == TC_OK)
        rc = tc__opts_import(opts, tc__tags_ok(c), o);
    return rc;
}

/* Without Redis: each item as tc_set writes it, timed as one call. */
static int mset_local(tc_cache_t *c, const tc_item_t *items, size_t n, const tc__call_opts_t *o,
                      int *codes) {
    uint64_t t0 = tc__write_timer(c);
    int rc = TC_OK;
    for (size_t i = 0; i < n; i++) {
        const tc_item_t *it = &items[i];
        int item_rc = tc__check_key(c, it->key, it->klen);
        if (item_rc == TC_OK)
            item_rc = tc__check_value(c, it->value, it->vlen);
        if (item_rc == TC_OK)
            item_rc = tc__set_local(c, it->key, it->klen, it->value, it->vlen, o->ttl_ms);
        if (codes)
            codes[i] = item_rc;
        if (item_rc != TC_OK && rc == TC_OK)
            rc = item_rc;
    }
    tc__cache_time(c, TC_LAT_SET, t0);
    return rc;
}

int tc_mset(tc_cache_t *c, const tc_item_t *items, size_t n, const tc_opts_t *opts,
            int *codes) {
    if (c && c->ring)
        return tc__ring_mset(c, items, n, opts, codes);
    tc__call_opts_t o;
    int rc = mset_check(c, items, n, opts, &o);
    if (rc != TC_OK || n == 0)
        return rc;
    if (!c->l2 && !(o.flags & TC_OPT_NO_L1) && !c->cfg.plain_keys)
        return mset_local(c, items, n, &o, codes);
    int *own = codes ? NULL : malloc(n * sizeof *own);
    int *rcs = codes ? codes : own;
    mset_item_t *m = calloc(n, sizeof *m);
    tc__l2_write_t *w = calloc(n, sizeof *w);
    uint64_t *versions = calloc(n, sizeof *versions);
    if (!rcs || !m || !w || !versions) {
        free(own);
        free(m);
        free(w);
        free(versions);
        return TC_ENOMEM;
    }
    uint64_t t0 = tc__write_timer(c);
    for (size_t i = 0; i < n; i++) {
        const tc_item_t *it = &items[i];
        rcs[i] = tc__check_key(c, it->key, it->klen);
        if (rcs[i] == TC_OK)
            rcs[i] = tc__check_value(c, it->value, it->vlen);
        if (rcs[i] != TC_OK)
            continue;
        tc__ttl_plan_t plan;
        tc__plan_ttl(c, it->key, it->klen, o.ttl_ms, &plan);
        m[i].h = tc__l1_hash(c->l1, it->key, it->klen);
        m[i].e = tc__cache_entry(c, it->key, it->klen, it->value, it->vlen);
        if (m[i].e)
            m[i].p = tc__l1_pending_begin(c->l1, m[i].h, it->key, it->klen, &m[i].snap);
        if (!m[i].e || !m[i].p) {
            rcs[i] = TC_ENOMEM;
            continue;
        }
        tc__stamp(c, m[i].e, &plan, 0);
        w[i] = (tc__l2_write_t){.key = it->key,
                                .klen = it->klen,
                                .value = it->value,
                                .vlen = it->vlen,
                                .ttl_ms = plan.keep_ms,
                                .tags = o.tags,
                                .ntags = o.ntags};
        tc__l2_meta_for(c, &plan, 0, 0, &w[i].meta);
    }
    /* Only the items that passed their checks go to Redis. */
    size_t k = 0;
    size_t *idx = malloc(n * sizeof *idx);
    tc__l2_write_t *wk = malloc(n * sizeof *wk);
    int *rk = malloc(n * sizeof *rk);
    uint64_t *vk = malloc(n * sizeof *vk);
    if (idx && wk && rk && vk) {
        for (size_t i = 0; i < n; i++)
            if (rcs[i] == TC_OK) {
                idx[k] = i;
                wk[k++] = w[i];
            }
        if (c->l2 && k > 0) {
            tc__l2_put_many(c->l2, wk, k, vk, rk);
        } else {
            for (size_t j = 0; j < k; j++) {
                rk[j] = TC_OK;
                vk[j] = tc__local_version(c, wk[j].key, wk[j].klen);
            }
        }
        for (size_t j = 0; j < k; j++) {
            rcs[idx[j]] = rk[j];
            versions[idx[j]] = vk[j];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            if (rcs[i] == TC_OK)
                rcs[i] = TC_ENOMEM;
    }
    rc = TC_OK;
    for (size_t i = 0; i < n; i++) {
        if (m[i].p) {
            if (rcs[i] == TC_OK)
                m[i].e->version = versions[i];
            if (rcs[i] == TC_OK || rcs[i] == TC_EUNAVAILABLE || c->l2)
                mset_commit(c, &items[i], &m[i], rcs[i], &o);
            tc__l1_pending_end(c->l1, m[i].p);
        }
        tc_ref_release(m[i].e);
        if (rcs[i] != TC_OK && rc == TC_OK)
            rc = rcs[i];
    }
    tc__cache_time(c, TC_LAT_SET, t0);
    free(idx);
    free(wk);
    free(rk);
    free(vk);
    free(own);
    free(m);
    free(w);
    free(versions);
    return rc;
}

/* ---- tc_mdel ---- */

int tc_mdel(tc_cache_t *c, const tc_buf_t *keys, size_t n, int *codes) {
    if (c && c->ring)
        return tc__ring_mdel(c, keys, n, codes);
    int rc = check_bulk(c, keys, keys, n);
    if (rc != TC_OK || n == 0)
        return rc;
    int *own = codes ? NULL : malloc(n * sizeof *own);
    int *rcs = codes ? codes : own;
    uint64_t *versions = calloc(n, sizeof *versions);
    if (!rcs || !versions) {
        free(own);
        free(versions);
        return TC_ENOMEM;
    }
    uint64_t t0 = tc__write_timer(c);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        rcs[i] = tc__check_key(c, keys[i].data, keys[i].len);
        bad |= rcs[i] != TC_OK;
    }
    if (c->l2 && !bad) {
        tc__l2_del_many(c->l2, keys, n, versions, rcs);
    } else if (c->l2) { /* some keys are refused: send only the others */
        for (size_t i = 0; i < n; i++)
            if (rcs[i] == TC_OK)
                tc__l2_del_many(c->l2, &keys[i], 1, &versions[i], &rcs[i]);
    } else {
        for (size_t i = 0; i < n; i++)
            versions[i] = rcs[i] == TC_OK ? tc__local_version(c, keys[i].data, keys[i].len) : 0;
    }
    rc = TC_OK;
    for (size_t i = 0; i < n; i++) {
        if (tc__check_key(c, keys[i].data, keys[i].len) != TC_OK) {
            if (rc == TC_OK)
                rc = rcs[i];
            continue;
        }
        uint64_t h = tc__l1_hash(c->l1, keys[i].data, keys[i].len);
        if (rcs[i] == TC_OK && versions[i])
            tc__l1_invalidate(c->l1, h, keys[i].data, keys[i].len, versions[i]);
        else
            tc__l1_evict(c->l1, h, keys[i].data, keys[i].len);
        if (rcs[i] != TC_OK && rc == TC_OK)
            rc = rcs[i];
    }
    tc__cache_time(c, TC_LAT_DEL, t0);
    free(own);
    free(versions);
    return rc;
}

/* ---- tc_warm / tc_hot_keys ---- */

#define WARM_CHUNK 1000u

int tc_warm(tc_cache_t *c, const tc_buf_t *keys, size_t n, tc_batch_loader_fn loader, void *arg,
            const tc_opts_t *opts, size_t *warmed) {
    if (warmed)
        *warmed = 0;
    int rc = check_bulk(c, keys, keys, n);
    tc__call_opts_t o;
    if (rc == TC_OK)
        rc = tc__opts_import(opts, tc__tags_ok(c), &o);
    if (rc != TC_OK || n == 0)
        return rc;
    size_t chunk = n < WARM_CHUNK ? n : WARM_CHUNK, got = 0;
    tc_ref_t **refs = malloc(chunk * sizeof *refs);
    int *codes = malloc(chunk * sizeof *codes);
    if (!refs || !codes) {
        free(refs);
        free(codes);
        return TC_ENOMEM;
    }
    for (size_t from = 0; from < n; from += chunk) {
        size_t m = n - from < chunk ? n - from : chunk;
        int r = loader ? tc_mfetch(c, keys + from, m, loader, arg, opts, refs, codes)
                       : tc_mget(c, keys + from, m, refs, codes);
        if (r != TC_OK) {
            rc = r;
            break;
        }
        for (size_t i = 0; i < m; i++) {
            got += codes[i] == TC_OK;
            tc_ref_release(refs[i]);
        }
    }
    free(refs);
    free(codes);
    if (warmed)
        *warmed = got;
    return rc;
}

long tc_hot_keys(tc_cache_t *c, size_t max, tc_key_fn fn, void *arg) {
    if (!c || !fn)
        return tc__note(TC_EINVAL, "%s is NULL", c ? "fn" : "cache");
    if (c->ring)
        return tc__ring_hot_keys(c, max, fn, arg);
    if (tc__forked_since(c->fork_gen))
        return TC_EFORKED;
    unsigned char *buf = NULL;
    size_t len = 0;
    long n = tc__l1_hot_keys(c->l1, max, &buf, &len);
    if (n < 0)
        return TC_ENOMEM;
    long given = 0;
    for (size_t at = 0; at < len;) {
        size_t klen;
        memcpy(&klen, buf + at, sizeof klen);
        given++;
        if (fn(arg, buf + at + sizeof klen, klen))
            break;
        at += sizeof klen + klen;
    }
    free(buf);
    return given;
}
