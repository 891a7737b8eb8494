/*
 * mfetch.c - tc_mfetch: cache-aside for many keys with one loader call, and the batch
 * loader's view (tc_batch_*).
 *
 * The single-key rules of fetch.c hold key by key; only the round trips are merged:
 *
 *   1. L1: fresh hits answer at once; a cached absence answers TC_ENOTFOUND; a value past
 *      its fresh TTL is kept aside (its version is what a store replaces, and fail-safe may
 *      serve it) and its key is loaded.
 *   2. Lead without waiting: the call becomes the key's single-flight leader in this process
 *      if nobody is (tc__l1_try_lead); keys another thread leads are set aside (8).
 *   3. Redis, one pipelined read of every led key: found -> answered.
 *   4. Locks, one pipelined round trip (lock_ttl_ms > 0): a value stored meanwhile ->
 *      answered; lock taken -> load it under that lease; lock held by another process ->
 *      set aside (7).
 *   5. ONE loader call with every key of 4 (and, without Redis, of 3).
 *   6. One pipelined store: each value is a fill exactly as tc_fetch's (add-if-absent, or
 *      compare-and-set on the stale version; only while the lease holds; tags from the
 *      options), committed to L1 by the same rules; not-found keys are cached as absences
 *      (negative_ttl_ms) or their locks released; each key's waiters get its result.
 *   7. Keys whose lock another process held: wait (once, for all of them, up to
 *      lock_wait_ms) for its FILL publication, read them again in one round trip, and load
 *      what is still missing in a second loader call, without the lock.
 *   8. Keys another thread of this process was loading: only now, after this call's own
 *      loads are published (so two batches never wait on each other), wait for that load
 *      (as tc_fetch waits); if this call ends up leading the key, it runs 3-7 for it.
 *
 * A transport failure of any Redis step means the rest of the call works without Redis
 * (values kept locally, l1.c rule 4), as tc_fetch's "one timeout per call".
 * Not done in a batch: stale-while-revalidate and early refresh (a stale key is simply
 * reloaded in the batch), and load timeouts (the batch loader runs on the caller's
 * thread, for as long as it takes).
 */
#include "cache.h"
#include "ring_cache.h"

#include "clock.h"
#include "errors.h"
#include "fork.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tc_batch {
    const tc_cache_t *c;
    size_t n;
    const tc_buf_t *keys;
    tc_ref_t **values; /* set by tc_batch_set_value (stamped after the loader returns) */
    uint64_t *ttls;
    int *errors; /* 0: unset (not found unless a value is set) */
};

size_t tc_batch_count(const tc_batch_t *b) {
    return b ? b->n : 0;
}

const void *tc_batch_key(const tc_batch_t *b, size_t i, size_t *klen) {
    if (!b || i >= b->n)
        return NULL;
    if (klen)
        *klen = b->keys[i].len;
    return b->keys[i].data;
}

int tc_batch_set_value(tc_batch_t *b, size_t i, const void *value, size_t vlen) {
    if (!b || i >= b->n)
        return TC_EINVAL;
    int rc = tc__check_value(b->c, value, vlen);
    if (rc != TC_OK)
        return rc;
    tc_ref_t *e = tc__cache_entry(b->c, b->keys[i].data, b->keys[i].len, value, vlen);
    if (!e)
        return TC_ENOMEM;
    tc_ref_release(b->values[i]);
    b->values[i] = e;
    b->errors[i] = 0;
    return TC_OK;
}

int tc_batch_set_ttl(tc_batch_t *b, size_t i, uint64_t ttl_ms) {
    if (!b || i >= b->n)
        return TC_EINVAL;
    b->ttls[i] = ttl_ms;
    return TC_OK;
}

int tc_batch_set_error(tc_batch_t *b, size_t i, int code) {
    if (!b || i >= b->n || code >= 0)
        return TC_EINVAL;
    tc_ref_release(b->values[i]);
    b->values[i] = NULL;
    b->errors[i] = code;
    return TC_OK;
}

/* ---- one key of the call ---- */

typedef enum key_state {
    KEY_DONE,   /* refs/codes hold its answer */
    KEY_LED,    /* we lead it: pending p, to be finished */
    KEY_JOINED, /* another thread leads it: step 8 */
    KEY_LOAD,   /* led, to be loaded (step 5) */
    KEY_HELD,   /* led, another process holds its lock (step 7) */
} key_state_t;

typedef struct mkey {
    key_state_t state;
    uint64_t h;
    tc__pending_t *p;
    uint64_t snap;
    tc_ref_t *stale; /* pinned: the value a store replaces, or NULL */
    int locked;
    uint64_t mark;
    char token[33];
    int visibility;
} mkey_t;

typedef struct mcall {
    tc_cache_t *c;
    const tc_buf_t *keys;
    mkey_t *k;
    tc_ref_t **refs;
    int *codes;
    tc_batch_loader_fn loader;
    void *arg;
    const tc__call_opts_t *o;
    int l2_failed;
} mcall_t;

static int redis_ok(const mcall_t *m) {
    return m->c->l2 && !m->l2_failed;
}

static void note_l2(mcall_t *m, int rc) {
    if (tc__l2_unreachable(rc))
        m->l2_failed = 1;
}

/* Answer led key i with status and value (consumed) and end our leadership. */
static void answer(mcall_t *m, size_t i, int status, tc_ref_t *value) {
    mkey_t *k = &m->k[i];
    tc_cache_t *c = m->c;
    if (status != TC_OK && status != TC_ENOTFOUND && k->stale && c->cfg.failsafe_max_stale_ms &&
        tc__now_ms() < tc__entry_expiry(k->stale)) { /* fail-safe: the last value */
        tc_ref_release(value);
        tc__entry_pin(k->stale);
        value = k->stale;
        status = TC_OK;
        tc__count(&c->failsafe_serves);
    }
    if (k->p)
        tc__l1_fetch_finish(c->l1, k->p, status, value, k->visibility);
    k->p = NULL;
    m->codes[i] = status;
    m->refs[i] = status == TC_OK ? value : NULL;
    if (status != TC_OK)
        tc_ref_release(value);
    k->state = KEY_DONE;
}

/* A value read from Redis (rc, *v consumed) for led key i: answered, or to load. */
static void take_read(mcall_t *m, size_t i, int rc, tc__l2_value_t *v) {
    mkey_t *k = &m->k[i];
    tc_ref_t *e = NULL;
    const tc_buf_t *key = &m->keys[i];
    rc = tc__take_l2(m->c, k->p, k->snap, key->data, key->len, rc, v, &e);
    if (rc == TC_OK && (!k->stale || !tc_ref_stale(e)))
        return answer(m, i, TC_OK, e);
    tc_ref_release(e);
    if (rc == TC__ABSENT)
        return answer(m, i, TC_ENOTFOUND, NULL);
    if (rc == TC_ENOMEM || rc == TC_ETOOBIG)
        return answer(m, i, rc, NULL);
    note_l2(m, rc);
    k->state = KEY_LOAD;
}

/* Step 3 for keys in state `from`: one pipelined read. */
static void read_redis(mcall_t *m, const size_t *idx, size_t n) {
    tc_buf_t *keys = calloc(n, sizeof *keys);
    tc__l2_value_t *v = malloc(n * sizeof *v);
    int *rcs = malloc(n * sizeof *rcs);
    if (!keys || !v || !rcs) {
        for (size_t j = 0; j < n; j++)
            m->k[idx[j]].state = KEY_LOAD;
    } else {
        for (size_t j = 0; j < n; j++)
            keys[j] = m->keys[idx[j]];
        tc__l2_get_many(m->c->l2, keys, n, v, rcs);
        for (size_t j = 0; j < n; j++)
            take_read(m, idx[j], rcs[j], &v[j]);
    }
    free(keys);
    free(v);
    free(rcs);
}

/* Step 4: take the locks of keys to load; answered, held, or loaded under a lease. */
static void take_locks(mcall_t *m, const size_t *idx, size_t n) {
    tc_cache_t *c = m->c;
    tc__l2_lock_req_t *r = calloc(n, sizeof *r);
    int *rcs = malloc(n * sizeof *rcs);
    if (!r || !rcs) {
        free(r);
        free(rcs);
        return; /* load them without the lock */
    }
    for (size_t j = 0; j < n; j++) {
        mkey_t *k = &m->k[idx[j]];
        snprintf(k->token, sizeof k->token, "%016llx%016llx", (unsigned long long)tc__rand64(),
                 (unsigned long long)tc__rand64());
        r[j] = (tc__l2_lock_req_t){.key = m->keys[idx[j]].data,
                                   .klen = m->keys[idx[j]].len,
                                   .token = k->token,
                                   .tlen = strlen(k->token),
                                   .skip_version = k->stale ? &k->stale->version : NULL};
    }
    tc__l2_lock_many(c->l2, r, n, c->cfg.lock_ttl_ms, rcs);
    for (size_t j = 0; j < n; j++) {
        size_t i = idx[j];
        mkey_t *k = &m->k[i];
        switch (rcs[j]) {
        case TC__L2_DONE:
            tc__count(&c->lock_acquired);
            k->locked = 1;
            k->mark = r[j].mark;
            break;
        case TC__L2_EXISTS:
            take_read(m, i, TC_OK, &r[j].existing);
            break;
        case TC__L2_LOCK_HELD:
            k->state = KEY_HELD;
            break;
        case TC_ETOOBIG:
            answer(m, i, TC_ETOOBIG, NULL);
            break;
        default:
            note_l2(m, rcs[j]); /* load without the lock */
        }
        tc__l2_value_release(&r[j].existing);
    }
    free(r);
    free(rcs);
}

/* Release the locks of keys whose load stores nothing. */
static void release_locks(mcall_t *m, const size_t *idx, size_t n) {
    tc__l2_lock_req_t *r = calloc(n, sizeof *r);
    int *rcs = malloc(n * sizeof *rcs);
    size_t q = 0;
    for (size_t j = 0; r && rcs && j < n; j++) {
        mkey_t *k = &m->k[idx[j]];
        if (!k->locked)
            continue;
        k->locked = 0;
        r[q++] = (tc__l2_lock_req_t){.key = m->keys[idx[j]].data,
                                     .klen = m->keys[idx[j]].len,
                                     .token = k->token,
                                     .tlen = strlen(k->token)};
    }
    if (q > 0 && redis_ok(m))
        tc__l2_unlock_many(m->c->l2, r, q, rcs); /* else they expire (lock_ttl_ms) */
    free(r);
    free(rcs);
}

/* Step 6 for one key: how its fill came back. Returns the entry to answer with. */
static tc_ref_t *stored(mcall_t *m, size_t i, tc_ref_t *e, int rc, uint64_t version,
                        tc__l2_value_t *theirs) {
    mkey_t *k = &m->k[i];
    tc_cache_t *c = m->c;
    const tc_buf_t *key = &m->keys[i];
    switch (rc) {
    case TC__L2_DONE:
        e->version = version;
        tc__l1_commit(c->l1, k->p, k->snap, e, k->stale ? TC__COMMIT_WRITE : 0);
        return e;
    case TC__L2_EXISTS: {
        tc_ref_t *newer = tc__entry_from_l2(c, key->data, key->len, theirs);
        tc__l2_value_release(theirs);
        if (!newer)
            return e;
        tc_ref_release(e);
        tc__l1_commit(c->l1, k->p, k->snap, newer, TC__COMMIT_FROM_L2);
        return newer;
    }
    case TC__L2_LEASE_LOST:
    case TC__L2_GONE:
        tc__count(&c->leases_lost);
        k->visibility = TC__FINISH_PRIVATE;
        return e;
    case TC_ETOOBIG:
        tc__count(&c->values_too_big);
        k->visibility = TC__FINISH_PRIVATE;
        return e;
    default: /* Redis failed: keep it here only (l1.c rule 4) */
        note_l2(m, rc);
        e->version = 0;
        tc__l1_commit(c->l1, k->p, k->snap, e, k->stale ? TC__COMMIT_FORCE : 0);
        return e;
    }
}

/* Step 6: store every loaded value (and cached absence) in one round trip, answer all. */
static void store_all(mcall_t *m, const size_t *idx, size_t n, tc_ref_t **vals,
                      const tc__ttl_plan_t *plans) {
    tc_cache_t *c = m->c;
    tc__l2_write_t *w = calloc(n, sizeof *w);
    uint64_t *versions = calloc(n, sizeof *versions);
    tc__l2_value_t *theirs = calloc(n, sizeof *theirs);
    int *rcs = malloc(n * sizeof *rcs);
    size_t *wi = malloc(n * sizeof *wi), q = 0;
    for (size_t j = 0; w && versions && theirs && rcs && wi && j < n; j++) {
        mkey_t *k = &m->k[idx[j]];
        if (!vals[j] || tc__l1_pending_invalidated(c->l1, k->p, k->snap))
            continue; /* nothing to store, or the source changed during the load */
        if (!redis_ok(m)) {
            /* L1-only: a local version taken by the commit, as tc_fetch's */
            tc__l1_commit(c->l1, k->p, k->snap, vals[j],
                          !c->l2     ? TC__COMMIT_LOCAL_LOAD
                          : k->stale ? TC__COMMIT_FORCE
                                     : 0);
            continue;
        }
        const tc__entry_ext_t *x = tc__entry_ext(vals[j]);
        w[q] = (tc__l2_write_t){.key = m->keys[idx[j]].data,
                                .klen = m->keys[idx[j]].len,
                                .value = tc_ref_data(vals[j]),
                                .vlen = tc_ref_size(vals[j]),
                                .ttl_ms = plans[j].keep_ms,
                                .lease = k->locked ? k->token : NULL,
                                .lease_len = k->locked ? strlen(k->token) : 0,
                                .expected_version = k->stale ? &k->stale->version : NULL,
                                .tags = m->o->tags,
                                .ntags = m->o->ntags,
                                .check_mark = k->locked,
                                .seen_mark = k->mark};
        tc__l2_meta_for(c, &plans[j], tc__entry_absent(vals[j]) ? TC__VAL_FLAG_ABSENT : 0,
                        x ? x->load_ms : 0, &w[q].meta);
        wi[q++] = j;
    }
    if (q > 0)
        tc__l2_fill_many(c->l2, w, q, versions, theirs, rcs);
    for (size_t t = 0; t < q; t++) {
        size_t j = wi[t];
        if (m->k[idx[j]].locked && (rcs[t] >= 0 || rcs[t] == TC_ETOOBIG))
            m->k[idx[j]].locked = 0; /* the script released the lease (or it was gone) */
        vals[j] = stored(m, idx[j], vals[j], rcs[t], versions[t], &theirs[t]);
    }
    free(w);
    free(versions);
    free(theirs);
    free(rcs);
    free(wi);
}

/* The loader's answer for key i as an entry to store (value or cached absence), stamped;
 * NULL with *status when nothing is stored. */
static tc_ref_t *loaded_entry(mcall_t *m, tc_batch_t *b, size_t j, size_t i, uint32_t took_ms,
                              tc__ttl_plan_t *plan, int *status) {
    tc_cache_t *c = m->c;
    const tc_buf_t *key = &m->keys[i];
    tc_ref_t *e = b->values[j];
    b->values[j] = NULL;
    if (e) {
        tc__plan_ttl(c, key->data, key->len, b->ttls[j] ? b->ttls[j] : m->o->ttl_ms, plan);
        tc__stamp(c, e, plan, took_ms);
        *status = TC_OK;
        return e;
    }
    *status = b->errors[j] ? b->errors[j] : TC_ENOTFOUND;
    if (*status != TC_ENOTFOUND) {
        tc__count(&c->load_errors);
        return NULL;
    }
    if (!c->cfg.negative_ttl_ms)
        return NULL;
    e = tc__cache_entry(c, key->data, key->len, NULL, 0);
    if (!e)
        return NULL;
    *plan = (tc__ttl_plan_t){c->cfg.negative_ttl_ms, 0, c->cfg.negative_ttl_ms};
    tc__stamp(c, e, plan, 0);
    tc__entry_ext(e)->flags |= TC__ENTRY_ABSENT;
    return e;
}

/* Step 5 and 6: one loader call for keys idx[0..n), store, answer. */
static void load_and_store(mcall_t *m, const size_t *idx, size_t n) {
    tc_cache_t *c = m->c;
    tc_buf_t *keys = malloc(n * sizeof *keys);
    tc_ref_t **values = calloc(n, sizeof *values);
    uint64_t *ttls = calloc(n, sizeof *ttls);
    int *errors = calloc(n, sizeof *errors), *status = malloc(n * sizeof *status);
    tc_ref_t **vals = calloc(n, sizeof *vals);
    tc__ttl_plan_t *plans = calloc(n, sizeof *plans);
    if (!keys || !values || !ttls || !errors || !status || !vals || !plans) {
        release_locks(m, idx, n);
        for (size_t j = 0; j < n; j++)
            answer(m, idx[j], TC_ENOMEM, NULL);
        goto out;
    }
    for (size_t j = 0; j < n; j++)
        keys[j] = m->keys[idx[j]];
    tc_batch_t b = {c, n, keys, values, ttls, errors};
    tc__count(&c->batch_loads);
    atomic_fetch_add_explicit(&c->loads, n, memory_order_relaxed);
    uint64_t t0 = tc__now_ns();
    int rc = m->loader(m->arg, &b);
    uint64_t took = (tc__now_ns() - t0) / 1000000u + 1;
    if (rc > 0)
        rc = TC_ELOADER;
    for (size_t j = 0; j < n; j++) {
        if (rc != TC_OK) { /* the whole batch failed: nothing is cached */
            tc_ref_release(values[j]);
            values[j] = NULL;
            status[j] = rc;
            tc__count(&c->load_errors);
            continue;
        }
        vals[j] =
            loaded_entry(m, &b, j, idx[j], took > UINT32_MAX ? UINT32_MAX : (uint32_t)took,
                         &plans[j], &status[j]);
    }
    store_all(m, idx, n, vals, plans);
    release_locks(m, idx, n); /* those whose store did not run (failures, not found) */
    for (size_t j = 0; j < n; j++) {
        int absent = vals[j] && tc__entry_absent(vals[j]);
        if (absent) {
            tc_ref_release(vals[j]);
            vals[j] = NULL;
        }
        answer(m, idx[j], status[j], vals[j]);
    }
out:
    free(keys);
    free(values);
    free(ttls);
    free(errors);
    free(status);
    free(vals);
    free(plans);
}

/* Indexes of keys in state s, into idx. Returns how many. */
static size_t collect(const mcall_t *m, size_t n, key_state_t s, size_t *idx) {
    size_t q = 0;
    for (size_t i = 0; i < n; i++)
        if (m->k[i].state == s)
            idx[q++] = i;
    return q;
}

/* Step 7: wait for the holders' publications, read again, load the rest lock-free. */
static void settle_held(mcall_t *m, size_t n, size_t *idx) {
    tc_cache_t *c = m->c;
    size_t q = collect(m, n, KEY_HELD, idx);
    if (q == 0)
        return;
    tc__count(&c->lock_waits);
    uint64_t deadline = tc__now_ns() + (uint64_t)c->cfg.lock_wait_ms * 1000000u;
    for (size_t j = 0; j < q; j++)
        tc__l1_wait_inval(c->l1, m->k[idx[j]].p, m->k[idx[j]].snap, deadline);
    for (size_t j = 0; j < q; j++) /* a fresh snapshot: the wake-up was expected */
        m->k[idx[j]].snap = tc__l1_pending_seq(c->l1, m->k[idx[j]].p);
    if (redis_ok(m))
        read_redis(m, idx, q);
    else
        for (size_t j = 0; j < q; j++)
            m->k[idx[j]].state = KEY_LOAD;
    q = collect(m, n, KEY_LOAD, idx);
    if (q > 0)
        load_and_store(m, idx, q);
}

/* Steps 3-7 for every key in state KEY_LED. */
static void load_led(mcall_t *m, size_t n, size_t *idx) {
    size_t q = collect(m, n, KEY_LED, idx);
    if (q == 0)
        return;
    if (redis_ok(m))
        read_redis(m, idx, q);
    else
        for (size_t j = 0; j < q; j++)
            m->k[idx[j]].state = KEY_LOAD;
    q = collect(m, n, KEY_LOAD, idx);
    if (q > 0 && redis_ok(m) && m->c->cfg.lock_ttl_ms)
        take_locks(m, idx, q);
    q = collect(m, n, KEY_LOAD, idx);
    if (q > 0)
        load_and_store(m, idx, q);
    settle_held(m, n, idx);
}

/* Step 8: keys another thread was loading. */
static void join_others(mcall_t *m, size_t n, size_t *idx) {
    tc_cache_t *c = m->c;
    for (size_t i = 0; i < n; i++) {
        mkey_t *k = &m->k[i];
        if (k->state != KEY_JOINED)
            continue;
        const tc_buf_t *key = &m->keys[i];
        tc__fetch_t f = {.lookup = !(m->o->flags & TC_OPT_NO_L1),
                         .wait_ms = c->cfg.load_hard_timeout_ms};
        int how = tc__l1_fetch_begin(c->l1, k->h, key->data, key->len, &f);
        if (how == TC__FETCH_HIT || how == TC__FETCH_SHARED) {
            int st = how == TC__FETCH_HIT ? TC_OK : f.status;
            if (st == TC_OK && f.ref && tc__entry_absent(f.ref)) {
                tc_ref_release(f.ref);
                f.ref = NULL;
                st = TC_ENOTFOUND;
            }
            m->codes[i] = st;
            m->refs[i] = st == TC_OK ? f.ref : NULL;
            if (st != TC_OK)
                tc_ref_release(f.ref);
            k->state = KEY_DONE;
        } else if (how == TC__FETCH_LEAD) {
            k->p = f.p;
            k->snap = f.snap;
            k->state = KEY_LED;
            load_led(m, n, idx);
        } else {
            m->codes[i] = how == TC__FETCH_TIMEDOUT ? TC_ETIMEDOUT : how;
            k->state = KEY_DONE;
        }
    }
}

/* Step 1 and 2 for key i. */
static void start_key(mcall_t *m, size_t i) {
    tc_cache_t *c = m->c;
    mkey_t *k = &m->k[i];
    const tc_buf_t *key = &m->keys[i];
    k->h = tc__l1_hash(c->l1, key->data, key->len);
    tc_ref_t *e = NULL;
    if (!(m->o->flags & TC_OPT_NO_L1) &&
        tc__l1_get(c->l1, k->h, key->data, key->len, &e) == TC_OK) {
        if (tc__entry_absent(e)) {
            tc__count(&c->negative_hits);
            tc_ref_release(e);
            m->codes[i] = TC_ENOTFOUND;
            k->state = KEY_DONE;
            return;
        }
        if (!tc_ref_stale(e)) {
            m->refs[i] = e;
            m->codes[i] = TC_OK;
            k->state = KEY_DONE;
            return;
        }
        k->stale = e; /* past its fresh TTL: reload, replacing this version */
    }
    k->p = tc__l1_try_lead(c->l1, k->h, key->data, key->len, &k->snap);
    k->state = k->p ? KEY_LED : KEY_JOINED;
}

static int mfetch_check(tc_cache_t *c, const tc_buf_t *keys, size_t n,
                        tc_batch_loader_fn loader, tc_ref_t **refs, int *codes) {
    if (!c)
        return tc__note(TC_EINVAL, "cache is NULL");
    if (tc__forked_since(c->fork_gen))
        return tc__note(TC_EFORKED, "this cache was opened in the parent process before "
                                    "fork(): open one in this process");
    if (!loader)
        return tc__note(TC_EINVAL, "loader is NULL");
    if (n > 0 && (!keys || !refs || !codes))
        return tc__note(TC_EINVAL, "keys, refs or codes is NULL with n = %zu", n);
    return TC_OK;
}

int tc_mfetch(tc_cache_t *c, const tc_buf_t *keys, size_t n, tc_batch_loader_fn loader,
              void *arg, const tc_opts_t *opts, tc_ref_t **refs, int *codes) {
    if (c && c->ring)
        return tc__ring_mfetch(c, keys, n, loader, arg, opts, refs, codes);
    int rc = mfetch_check(c, keys, n, loader, refs, codes);
    tc__call_opts_t o;
    if (rc == TC_OK)
        rc = tc__opts_import(opts, tc__tags_ok(c), &o);
    if (rc != TC_OK || n == 0)
        return rc;
    mkey_t *k = calloc(n, sizeof *k);
    size_t *idx = malloc(n * sizeof *idx);
    if (!k || !idx) {
        free(k);
        free(idx);
        return TC_ENOMEM;
    }
    mcall_t m = {.c = c,
                 .keys = keys,
                 .k = k,
                 .refs = refs,
                 .codes = codes,
                 .loader = loader,
                 .arg = arg,
                 .o = &o};
    uint64_t t0 = tc__now_ns();
    int loaded = 0;
    for (size_t i = 0; i < n; i++) {
        refs[i] = NULL;
        codes[i] = tc__check_key(c, keys[i].data, keys[i].len);
        k[i].state = KEY_DONE;
        if (codes[i] == TC_OK)
            start_key(&m, i);
        loaded |= k[i].state != KEY_DONE;
    }
    load_led(&m, n, idx);
    join_others(&m, n, idx);
    for (size_t i = 0; i < n; i++) {
        tc_ref_release(k[i].stale);
        if ((o.flags & TC_OPT_NO_L1) && codes[i] == TC_OK) /* keep nothing here */
            tc__l1_evict(c->l1, k[i].h, keys[i].data, keys[i].len);
    }
    if (loaded)
        tc__cache_time(c, TC_LAT_FETCH_LOAD, t0);
    free(k);
    free(idx);
    return TC_OK;
}
