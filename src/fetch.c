/*
 * fetch.c - tc_fetch: cache-aside in one call, and everything about loading.
 *
 * A tc_fetch answers from the first of:
 *   1. L1, fresh                    -> the value (maybe scheduling an early refresh: XFetch);
 *   2. L1, in its stale window      -> the stale value at once + one background refresh;
 *   3. L1, past it but within the   -> reload in the foreground; if the loader fails, the
 *      fail-safe age (or backing off)  stale value again (fail-safe), and the key backs off;
 *   4. a cached absence             -> TC_ENOTFOUND, no load;
 *   5. a load, single-flight: one leader per key per process; with Redis, one per cluster.
 *
 * The leader (5): read Redis; on a miss take the key's Redis lock (SET NX PX token). If
 * another process holds it, wait (not poll) for its publication: the lock is marked
 * contended, so the holder's release publishes a FILL message that the listener turns into
 * a wake-up of our pending record; the wait is bounded by the lock's remaining TTL and
 * lock_wait_ms, after which we try again or load ourselves. A dead holder's lock expires.
 * Then run the loader and store: an add-if-absent for a new key, a compare-and-set on the
 * version for a refresh (never overwriting a newer write), nothing at all if an
 * invalidation reached the key during the load (the load may predate the change).
 *
 * Loads run on the caller's thread, except background refreshes and, when load timeouts
 * are configured, every load: then the caller waits on the key's pending record with a
 * deadline (soft: return the stale value; hard: TC_ETIMEDOUT), and the load finishes and
 * caches in the background. Waiters always get the leader's result; when the load failed
 * and a stale value is allowed, that result is the stale value (fail-safe for everyone).
 *
 * Trade-offs are in the README ("Freshness"): stale windows and fail-safe keep values past
 * their TTL in both tiers; background loads need the loader's `arg` to live until close.
 */
#include "cache.h"

#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int rc = tc__check_value(ld->cache, value, vlen);
    if (rc != TC_OK)
        return rc;
    tc_ref_t *e = tc__cache_entry(ld->cache, ld->key, ld->klen, value, vlen);
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

/* One load of one key: who asked, what to store, and how. Runs inline or on the pool. */
typedef struct load_job {
    tc_cache_t *c;
    tc__pending_t *p; /* the key's pending record; this job is its leader */
    uint64_t snap;
    tc_loader_fn loader;
    void *arg;
    tc_ref_t *stale; /* the value being replaced (pinned), or NULL */
    int refresh;     /* background refresh: check Redis first, store by version CAS */
    int locked;      /* we hold the key's Redis lock */
    char token[33];
    size_t klen;
    unsigned char key[];
} load_job_t;

static load_job_t *job_new(tc_cache_t *c, tc__pending_t *p, uint64_t snap, const void *key,
                           size_t klen, tc_loader_fn loader, void *arg, tc_ref_t *stale) {
    load_job_t *j = calloc(1, sizeof *j + klen);
    if (!j)
        return NULL;
    *j = (load_job_t){.c = c, .p = p, .snap = snap, .loader = loader, .arg = arg, .klen = klen};
    memcpy(j->key, key, klen);
    if (stale) {
        tc__entry_pin(stale);
        j->stale = stale;
    }
    return j;
}

static void job_free(load_job_t *j) {
    tc_ref_release(j->stale);
    free(j);
}

/* ---- the stale value: whether it may still be served, and its back-off ---- */

static uint64_t ext_load(_Atomic uint64_t *v) {
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* May a failed reload be answered with e? (fail-safe on, and e within its hard life) */
static int failsafe_allows(const tc_cache_t *c, const tc_ref_t *e) {
    return e && c->cfg.failsafe_max_stale_ms && tc__entry_ext(e) && !tc__entry_absent(e) &&
           tc__now_ms() < e->expiry_ms;
}

static void back_off(const tc_cache_t *c, tc_ref_t *e) {
    tc__entry_ext_t *x = e ? tc__entry_ext(e) : NULL;
    if (x)
        atomic_store_explicit(&x->retry_after_ms, tc__now_ms() + c->cfg.failsafe_backoff_ms,
                              memory_order_relaxed);
}

static int backing_off(const tc_ref_t *e, uint64_t now) {
    tc__entry_ext_t *x = tc__entry_ext(e);
    return x && now < ext_load(&x->retry_after_ms);
}

/* ---- storing a loaded value ---- */

/* Store e (loaded, stamped) in L2 and L1. Returns the entry to hand out: e, or Redis's
 * newer value when a concurrent writer got there first. */
static tc_ref_t *store_loaded(load_job_t *j, tc_ref_t *e, const tc__ttl_plan_t *plan,
                              unsigned flags) {
    tc_cache_t *c = j->c;
    if (tc__l1_pending_invalidated(c->l1, j->p, j->snap))
        return e; /* the source changed while we loaded: serve it, cache nothing */
    if (c->l2) {
        tc__l2_meta_t meta;
        const tc__entry_ext_t *x = tc__entry_ext(e);
        tc__l2_meta_for(c, plan, flags, x ? x->load_ms : 0, &meta);
        tc__l2_value_t theirs;
        const void *data = tc_ref_data(e);
        size_t len = tc_ref_size(e);
        /* Replacing a known (stale) version: compare-and-set on it, and publish, since
         * other processes hold that version. A new key: add only if still absent. */
        int rc = j->stale ? tc__l2_replace(c->l2, j->key, j->klen, data, len, plan->keep_ms,
                                           &meta, j->stale->version, &e->version, &theirs)
                          : tc__l2_add_meta(c->l2, j->key, j->klen, data, len, plan->keep_ms,
                                            &meta, &e->version, &theirs);
        if (rc == 1) {
            tc_ref_t *newer = tc__entry_from_l2(c, j->key, j->klen, &theirs);
            tc__l2_value_release(&theirs);
            if (!newer)
                return e; /* ENOMEM copying theirs: serve ours, keep nothing */
            tc_ref_release(e);
            tc__l1_commit(c->l1, j->p, j->snap, newer, TC__COMMIT_FROM_L2);
            return newer;
        }
        if (rc != TC_OK) { /* Redis unavailable: keep it locally, unversioned */
            e->version = 0;
            tc__l1_commit(c->l1, j->p, j->snap, e, j->stale ? TC__COMMIT_FORCE : 0);
            return e;
        }
    } else {
        /* L1-only: a local version, so a refresh can replace a tc_set value. Safe: a set
         * during the load was seen by pending_invalidated above. */
        e->version = atomic_fetch_add(&c->local_version, 1) + 1;
    }
    tc__l1_commit(c->l1, j->p, j->snap, e, j->stale && c->l2 ? TC__COMMIT_WRITE : 0);
    return e;
}

/* A loader's TC_ENOTFOUND, remembered for negative_ttl_ms in both tiers. */
static void store_absence(load_job_t *j) {
    tc_cache_t *c = j->c;
    tc_ref_t *e = tc__cache_entry(c, j->key, j->klen, NULL, 0);
    if (!e)
        return;
    tc__ttl_plan_t plan = {c->cfg.negative_ttl_ms, 0, c->cfg.negative_ttl_ms};
    tc__stamp(c, e, &plan, 0);
    tc__entry_ext(e)->flags |= TC__ENTRY_ABSENT;
    tc_ref_release(store_loaded(j, e, &plan, TC__VAL_FLAG_ABSENT));
}

/* Run the loader and store its result. Returns its status; *out (status 0) is pinned. */
static int run_loader(load_job_t *j, tc_ref_t **out) {
    tc_cache_t *c = j->c;
    tc_load_t ld = {.cache = c, .key = j->key, .klen = j->klen};
    tc__count(&c->loads);
    uint64_t t0 = tc__now_ns();
    int rc = j->loader(j->arg, j->key, j->klen, &ld);
    uint64_t took_ms = (tc__now_ns() - t0) / 1000000u + 1;
    if (rc == TC_OK && !ld.value)
        rc = TC_ELOADER;
    if (rc > 0)
        rc = TC_ELOADER;
    if (rc != TC_OK) {
        tc_ref_release(ld.value);
        if (rc == TC_ENOTFOUND && c->cfg.negative_ttl_ms)
            store_absence(j);
        else if (rc != TC_ENOTFOUND)
            tc__count(&c->load_errors);
        return rc;
    }
    tc__ttl_plan_t plan;
    tc__plan_ttl(c, j->key, j->klen, ld.ttl_ms, &plan);
    tc__stamp(c, ld.value, &plan, took_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)took_ms);
    *out = store_loaded(j, ld.value, &plan, 0);
    return TC_OK;
}

/* A refresh first looks in Redis: another process may have refreshed the key already. */
static int fresher_in_l2(load_job_t *j, tc_ref_t **out) {
    tc_cache_t *c = j->c;
    if (!c->l2)
        return 0;
    tc_ref_t *e = NULL;
    int rc = tc__read_through(c, j->p, j->snap, j->key, j->klen, &e);
    if (rc != TC_OK)
        return rc == TC__ABSENT;
    if (j->stale && e->version > j->stale->version && !tc_ref_stale(e)) {
        *out = e;
        return 1;
    }
    tc_ref_release(e);
    return 0;
}

/* Finish the job: publish the result to waiters (the stale value when a failure is
 * answered by fail-safe), release the lock, free the job. Returns the caller's status and
 * sets *out (pinned) accordingly; value is consumed. */
static int finish_job(load_job_t *j, int status, tc_ref_t *value, tc_ref_t **out) {
    tc_cache_t *c = j->c;
    if (j->locked)
        tc__l2_unlock(c->l2, j->key, j->klen, j->token, strlen(j->token));
    if (status != TC_OK && status != TC_ENOTFOUND && failsafe_allows(c, j->stale)) {
        back_off(c, j->stale);
        tc__entry_pin(j->stale);
        value = j->stale;
        status = TC_OK;
    } else if (status != TC_OK && j->stale) {
        back_off(c, j->stale); /* SWR refresh failed: do not hammer the source */
    }
    tc__l1_fetch_finish(c->l1, j->p, status, value);
    if (out)
        *out = value;
    else
        tc_ref_release(value);
    job_free(j);
    return status;
}

static void make_token(load_job_t *j) {
    uint64_t r = tc__rand64(), r2 = tc__rand64();
    snprintf(j->token, sizeof j->token, "%016llx%016llx", (unsigned long long)r,
             (unsigned long long)r2);
}

/* A background refresh loads only if it can take the key's Redis lock, and the lock step
 * itself returns the value when another process has stored a newer one meanwhile. When
 * the lock is held elsewhere, that process is refreshing the key and its write will reach
 * us as an invalidation: keep serving the stale copy, and do not ask again before its lock
 * could have ended. So a stale key is refreshed once per cluster. Returns 1 (*out set:
 * serve it), or 0 to load. */
static int refreshed_elsewhere(load_job_t *j, tc_ref_t **out) {
    tc_cache_t *c = j->c;
    if (!c->l2 || !c->cfg.lock_ttl_ms || !j->stale)
        return 0;
    make_token(j);
    int64_t pttl = 0;
    tc__l2_value_t theirs;
    int rc = tc__l2_lock(c->l2, j->key, j->klen, j->token, strlen(j->token), c->cfg.lock_ttl_ms,
                         &j->stale->version, &pttl, &theirs);
    if (rc == TC_OK) {
        j->locked = 1;
        return 0;
    }
    if (rc == 2) { /* a newer value is already in Redis */
        tc_ref_t *e = tc__entry_from_l2(c, j->key, j->klen, &theirs);
        tc__l2_value_release(&theirs);
        if (e) {
            tc__l1_commit(c->l1, j->p, j->snap, e, TC__COMMIT_FROM_L2);
            *out = e;
            return 1;
        }
        return 0;
    }
    if (rc != 1)
        return 0; /* Redis trouble: load without the lock */
    tc__entry_ext_t *x = tc__entry_ext(j->stale);
    if (x) {
        uint64_t wait = pttl > 0 ? (uint64_t)pttl : c->cfg.failsafe_backoff_ms;
        atomic_store_explicit(&x->retry_after_ms, tc__now_ms() + wait, memory_order_relaxed);
    }
    tc__entry_pin(j->stale);
    *out = j->stale;
    return 1;
}

/* The job's whole load (after the leader's Redis read and lock). */
static int do_load(load_job_t *j, tc_ref_t **out) {
    tc_ref_t *value = NULL;
    int status;
    if (j->refresh && !j->c->cfg.lock_ttl_ms && fresher_in_l2(j, &value)) {
        status = value ? TC_OK : TC_ENOTFOUND;
    } else if (j->refresh && refreshed_elsewhere(j, &value)) {
        status = TC_OK;
    } else {
        status = run_loader(j, &value);
    }
    return finish_job(j, status, value, out);
}

static void job_run(void *arg) {
    do_load(arg, NULL);
}

static void job_cancel(void *arg) {
    finish_job(arg, TC_EUNAVAILABLE, NULL, NULL);
}

/* ---- background refresh (stale-while-revalidate, XFetch) ---- */

static void start_refresh(tc_cache_t *c, uint64_t h, const void *key, size_t klen,
                          tc_loader_fn loader, void *arg, tc_ref_t *current,
                          atomic_uint_fast64_t *counter) {
    if (!c->pool)
        return;
    uint64_t snap;
    tc__pending_t *p = tc__l1_try_lead(c->l1, h, key, klen, &snap);
    if (!p)
        return; /* a load is already in flight */
    load_job_t *j = job_new(c, p, snap, key, klen, loader, arg, current);
    if (!j) {
        tc__l1_fetch_finish(c->l1, p, TC_ENOMEM, NULL);
        return;
    }
    j->refresh = 1;
    if (tc__refresh_submit(c->pool, job_run, job_cancel, j) != TC_OK) {
        tc__count(&c->refreshes_dropped);
        finish_job(j, TC_ENOSPC, NULL, NULL);
        return;
    }
    tc__count(counter);
}

/* XFetch: refresh when now - load_time * beta * ln(u) passes the fresh end, u in (0,1]. */
static int xfetch_due(const tc_cache_t *c, const tc__entry_ext_t *x, uint64_t now,
                      uint64_t fresh) {
    double window = (double)x->load_ms * c->cfg.early_refresh_beta;
    double left = (double)(fresh - now);
    if (x->load_ms == 0 || left > window * 40.0) /* e^-40: never, skip the log */
        return 0;
    /* At millions of hits per second a per-hit probability fires as soon as it is not
     * negligible, i.e. ~ln(rate * load) * load * beta before expiry, which for a short TTL
     * is right after the last refresh. Never refresh in the first 3/4 of the TTL. */
    if (left * 4.0 > (double)x->ttl_ms)
        return 0;
    double u = (double)((tc__rand64() >> 11) + 1) / 9007199254740992.0;
    return left <= -window * log(u);
}

/* ---- the cross-process lock ---- */

enum { LOCK_HELD = 2, LOCK_NONE = 3 };

/* Commit a value found in Redis during the lock step and hand it out (TC__ABSENT for a
 * cached absence). Consumes v. */
static int from_l2(load_job_t *j, tc__l2_value_t *v, tc_ref_t **out) {
    tc_cache_t *c = j->c;
    int absent = (v->val.flags & TC__VAL_FLAG_ABSENT) != 0;
    tc_ref_t *e = tc__entry_from_l2(c, j->key, j->klen, v);
    tc__l2_value_release(v);
    if (!e)
        return LOCK_NONE;
    tc__l1_commit(c->l1, j->p, j->snap, e, TC__COMMIT_FROM_L2);
    if (absent) {
        tc_ref_release(e);
        return TC__ABSENT;
    }
    *out = e;
    return TC_OK;
}

/* Take key's Redis lock, or wait for its holder's value. Returns LOCK_HELD, LOCK_NONE (load
 * without it: Redis trouble or waited long enough), 0 (*out: the value appeared) or
 * TC__ABSENT. */
static int lock_or_wait(load_job_t *j, tc_ref_t **out) {
    tc_cache_t *c = j->c;
    make_token(j);
    uint64_t deadline = tc__now_ns() + (uint64_t)c->cfg.lock_wait_ms * 1000000u;
    int waited = 0;
    for (;;) {
        uint64_t seq = tc__l1_pending_seq(c->l1, j->p);
        int64_t pttl = 0;
        tc__l2_value_t theirs;
        int rc =
            tc__l2_lock(c->l2, j->key, j->klen, j->token, strlen(j->token), c->cfg.lock_ttl_ms,
                        j->stale ? &j->stale->version : NULL, &pttl, &theirs);
        if (rc == TC_OK) {
            tc__count(&c->lock_acquired);
            j->locked = 1;
            return LOCK_HELD;
        }
        if (rc == 2) /* stored since our read: no load needed */
            return from_l2(j, &theirs, out);
        if (rc != 1)
            return LOCK_NONE;
        if (!waited++)
            tc__count(&c->lock_waits);
        uint64_t now = tc__now_ns();
        if (now >= deadline) {
            tc__count(&c->lock_timeouts);
            return LOCK_NONE;
        }
        /* Woken by the holder's FILL (or any write of the key), else when its lock expires. */
        uint64_t until = now + (uint64_t)(pttl > 0 ? pttl : 10) * 1000000u + 2000000u;
        tc__l1_wait_inval(c->l1, j->p, seq, until < deadline ? until : deadline);
        rc = tc__read_through(c, j->p, j->snap, j->key, j->klen, out);
        if (rc == TC_OK || rc == TC__ABSENT)
            return rc;
    }
}

/* ---- the leader ---- */

/* Load as leader of p. stale: the value being replaced (fail-safe), or NULL. */
static int lead(tc_cache_t *c, tc__pending_t *p, uint64_t snap, const void *key, size_t klen,
                tc_loader_fn loader, void *arg, tc_ref_t *stale, tc_ref_t **out) {
    load_job_t *j = job_new(c, p, snap, key, klen, loader, arg, stale);
    if (!j) {
        tc__l1_fetch_finish(c->l1, p, TC_ENOMEM, NULL);
        return TC_ENOMEM;
    }
    if (c->l2) {
        tc_ref_t *e = NULL;
        int rc = tc__read_through(c, p, snap, key, klen, &e);
        if (rc == TC_OK && (!stale || !tc_ref_stale(e)))
            return finish_job(j, TC_OK, e, out);
        tc_ref_release(e);
        if (rc == TC__ABSENT || rc == TC_ENOMEM)
            return finish_job(j, rc == TC__ABSENT ? TC_ENOTFOUND : rc, NULL, out);
        if (c->cfg.lock_ttl_ms && tc__l2_available(c->l2)) {
            e = NULL;
            rc = lock_or_wait(j, &e);
            if (rc == TC_OK || rc == TC__ABSENT)
                return finish_job(j, rc == TC__ABSENT ? TC_ENOTFOUND : TC_OK, e, out);
        }
    }
    uint32_t soft = stale ? c->cfg.load_soft_timeout_ms : 0;
    uint32_t hard = c->cfg.load_hard_timeout_ms;
    if (!c->pool || (!soft && !hard))
        return do_load(j, out);

    /* Timeouts: the load runs on the pool; we wait on p like any waiter. */
    uint64_t seen = tc__l1_fetch_results(c->l1, p);
    if (tc__refresh_submit(c->pool, job_run, job_cancel, j) != TC_OK)
        do_load(j, NULL); /* pool full: load here; the wait below returns at once */
    uint32_t limit = soft ? soft : hard;
    int status = TC_ETIMEDOUT;
    tc_ref_t *value = NULL;
    if (tc__l1_fetch_await(c->l1, p, seen, tc__now_ns() + (uint64_t)limit * 1000000u, &status,
                           &value)) {
        *out = value;
        return status;
    }
    tc__count(&c->load_timeouts);
    if (soft && stale) {
        tc__entry_pin(stale);
        *out = stale;
        return TC_OK;
    }
    return TC_ETIMEDOUT;
}

/* ---- tc_fetch ---- */

/* Answer from a stale entry in the fail-safe region, or reload it in the foreground. */
static int reload(tc_cache_t *c, uint64_t h, const void *key, size_t klen, tc_loader_fn loader,
                  void *arg, tc_ref_t *stale, tc_ref_t **ref) {
    tc__pending_t *p;
    uint64_t snap = 0;
    int status = TC_OK;
    tc_ref_t *value = NULL;
    int how = tc__l1_fetch_begin2(c->l1, h, key, klen, 0, &value, &p, &snap, &status);
    if (how == TC__FETCH_LEAD)
        status = lead(c, p, snap, key, klen, loader, arg, stale, &value);
    else if (how != TC__FETCH_SHARED)
        status = how; /* ENOMEM */
    if (status == TC_OK && value == stale)
        tc__count(&c->failsafe_serves);
    if (status != TC_OK && status != TC_ENOTFOUND && failsafe_allows(c, stale)) {
        tc__count(&c->failsafe_serves); /* our wait timed out or the leader's job failed */
        tc_ref_release(value);
        tc__entry_pin(stale);
        value = stale;
        status = TC_OK;
    }
    tc_ref_release(stale);
    *ref = status == TC_OK ? value : NULL;
    if (status != TC_OK)
        tc_ref_release(value);
    return status;
}

/* A hit on an entry with freshness metadata. Consumes e. */
static int serve_hit(tc_cache_t *c, uint64_t h, const void *key, size_t klen,
                     tc_loader_fn loader, void *arg, tc_ref_t *e, tc_ref_t **ref) {
    tc__entry_ext_t *x = tc__entry_ext(e);
    if (x->flags & TC__ENTRY_ABSENT) {
        tc__count(&c->negative_hits);
        tc_ref_release(e);
        return TC_ENOTFOUND;
    }
    uint64_t now = tc__now_ms();
    uint64_t fresh = ext_load(&x->fresh_until_ms);
    if (now < fresh) {
        if (c->cfg.early_refresh_beta > 0 && xfetch_due(c, x, now, fresh))
            start_refresh(c, h, key, klen, loader, arg, e, &c->early_refreshes);
        *ref = e;
        return TC_OK;
    }
    if (now < ext_load(&x->stale_until_ms)) {
        tc__count(&c->stale_serves);
        if (!backing_off(e, now))
            start_refresh(c, h, key, klen, loader, arg, e, &c->stale_refreshes);
        *ref = e;
        return TC_OK;
    }
    if (backing_off(e, now) && failsafe_allows(c, e)) {
        tc__count(&c->failsafe_serves);
        *ref = e;
        return TC_OK;
    }
    return reload(c, h, key, klen, loader, arg, e, ref);
}

int tc_fetch(tc_cache_t *c, const void *key, size_t klen, tc_loader_fn loader, void *arg,
             tc_ref_t **ref) {
    if (!ref)
        return TC_EINVAL;
    *ref = NULL;
    int rc = tc__check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    if (!loader)
        return TC_EINVAL;
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    tc__pending_t *p;
    uint64_t snap = 0;
    int status = TC_OK;
    tc_ref_t *e = NULL;
    int how = tc__l1_fetch_begin(c->l1, h, key, klen, &e, &p, &snap, &status);
    switch (how) {
    case TC__FETCH_HIT:
        if (!tc__entry_ext(e)) {
            *ref = e;
            return TC_OK;
        }
        return serve_hit(c, h, key, klen, loader, arg, e, ref);
    case TC__FETCH_SHARED:
        if (status == TC_OK && !e)
            return TC_EINTERNAL;
        if (status == TC_OK && tc_ref_stale(e))
            tc__count(&c->failsafe_serves);
        *ref = e;
        return status;
    case TC__FETCH_LEAD:
        status = lead(c, p, snap, key, klen, loader, arg, NULL, &e);
        *ref = status == TC_OK ? e : NULL;
        if (status != TC_OK)
            tc_ref_release(e);
        return status;
    default:
        return how; /* TC_ENOMEM */
    }
}
