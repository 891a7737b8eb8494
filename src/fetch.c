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
 * The lock is also the load's lease (scripts.c): every tc_set and tc_del deletes it, and
 * the store succeeds only while the lease holds, releasing it in the same step. So the
 * classic cache-aside race (the loader reads the source; the application updates the
 * source and calls tc_del; the loader stores what it read) ends with nothing stored, in
 * Redis or in any L1, whichever process or thread did what. The superseded value still
 * answers the call that loaded it (that call began before the write) but no waiter.
 * Without the lock (lock_ttl_ms 0) the race is closed only when the delete's message
 * reaches the loading process before its store.
 *
 * One timeout per call: once a Redis step of a load fails in transport (timeout, Redis
 * unreachable), the call does not try Redis again; it loads and keeps the value locally
 * (l1.c rule 4), and a lock release it could not make is left to the keeper (keeper.c).
 *
 * Loads run on the caller's thread, except background refreshes and, when load timeouts
 * are configured, every load: then the caller waits on the key's pending record with a
 * deadline (soft: return the stale value; hard: TC_ETIMEDOUT), and the load (lock wait
 * included) finishes and caches in the background. Threads that join a load wait under
 * the same deadline. Waiters get the leader's result (l1.c rule 5 says when not); when the
 * load failed and a stale value is allowed, that result is the stale value (fail-safe for
 * everyone). A background refresh leads its key only once a pool thread runs it, so no
 * caller ever queues behind the pool, and a per-entry flag keeps it queued once.
 *
 * Trade-offs are in docs/freshness.md: stale windows and fail-safe keep values past
 * their TTL in both tiers; background loads need the loader's `arg` to live until close.
 */
#include "cache.h"
#include "ring_cache.h"

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
/* One tc_fetch: what to load and how (the options are the caller's, for this call only). */
typedef struct fetch_req {
    tc_cache_t *c;
    uint64_t h;
    const void *key;
    size_t klen;
    tc_loader_fn loader;
    void *arg;
    const tc__call_opts_t *opts; /* NULL: none */
} fetch_req_t;

typedef struct load_job {
    tc_cache_t *c;
    tc__pending_t *p; /* the key's pending record; this job is its leader */
    uint64_t snap;
    uint64_t h;
    tc_loader_fn loader;
    void *arg;
    tc_ref_t *stale;       /* the value being replaced (pinned), or NULL */
    int refresh;           /* background refresh: check Redis first, store by version CAS */
    int locked;            /* we hold the key's Redis lock (the lease) */
    uint64_t mark;         /* ... and the newest clear/namespace mark when we took it */
    tc__call_opts_t *opts; /* the caller's ttl, tags, flags (owned copy), or NULL */
    tc__lease_t *lease;    /* the keeper extends it while we load */
    int l2_failed;         /* a Redis step failed in transport: no more Redis this call */
    int visibility;        /* TC__FINISH_PRIVATE once a write superseded the load */
    char token[33];
    size_t klen;
    unsigned char key[];
} load_job_t;

static load_job_t *job_new(tc_cache_t *c, tc__pending_t *p, uint64_t snap, uint64_t h,
                           const fetch_req_t *r, tc_ref_t *stale) {
    load_job_t *j = calloc(1, sizeof *j + r->klen);
    if (!j)
        return NULL;
    *j = (load_job_t){.c = c,
                      .p = p,
                      .snap = snap,
                      .h = h,
                      .loader = r->loader,
                      .arg = r->arg,
                      .klen = r->klen};
    memcpy(j->key, r->key, r->klen);
    if (r->opts && (r->opts->ttl_ms || r->opts->ntags || r->opts->flags)) {
        j->opts = tc__opts_dup(r->opts); /* the job may outlive the call */
        if (!j->opts) {
            free(j);
            return NULL;
        }
    }
    if (stale) {
        tc__entry_pin(stale);
        j->stale = stale;
    }
    return j;
}

static void job_free(load_job_t *j) {
    tc_ref_release(j->stale);
    free(j->opts);
    free(j);
}

/* The lock is no longer ours to keep (released, lost, or handed to the keeper). */
static void lock_gone(load_job_t *j) {
    j->locked = 0;
    tc__keeper_let_go(j->c->keeper, j->lease);
    j->lease = NULL;
}

/* A Redis step of this job failed: in transport, the call gives up on Redis. */
static void note_l2_error(load_job_t *j, int rc) {
    if (tc__l2_unreachable(rc))
        j->l2_failed = 1;
}

/* ---- the stale value: whether it may still be served, and its back-off ---- */

static uint64_t ext_load(_Atomic uint64_t *v) {
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* May a failed reload be answered with e? (fail-safe on, and e within its hard life) */
static int failsafe_allows(const tc_cache_t *c, const tc_ref_t *e) {
    return e && c->cfg.failsafe_max_stale_ms && tc__entry_ext(e) && !tc__entry_absent(e) &&
           tc__now_ms() < tc__entry_expiry(e);
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

/* Keep e (loaded, stamped) in L1 only: Redis did not take it (l1.c rule 4). */
static tc_ref_t *keep_local(load_job_t *j, tc_ref_t *e) {
    e->version = 0;
    tc__l1_commit(j->c->l1, j->p, j->snap, e, j->stale ? TC__COMMIT_FORCE : 0);
    return e;
}

/* Redis holds a newer value than our load: commit and hand out that one. Consumes theirs;
 * returns e when theirs cannot be copied (ENOMEM: serve ours, keep nothing). */
static tc_ref_t *take_theirs(load_job_t *j, tc_ref_t *e, tc__l2_value_t *theirs) {
    tc_cache_t *c = j->c;
    tc_ref_t *newer = tc__entry_from_l2(c, j->key, j->klen, theirs);
    tc__l2_value_release(theirs);
    if (!newer)
        return e;
    tc_ref_release(e);
    tc__l1_commit(c->l1, j->p, j->snap, newer, TC__COMMIT_FROM_L2);
    return newer;
}

/* Store e (loaded, stamped) in L2 and L1. Returns the entry to hand out: e, or Redis's
 * newer value when a concurrent writer got there first. */
static tc_ref_t *store_loaded(load_job_t *j, tc_ref_t *e, const tc__ttl_plan_t *plan,
                              unsigned flags) {
    tc_cache_t *c = j->c;
    if (tc__l1_pending_invalidated(c->l1, j->p, j->snap))
        return e; /* the source changed while we loaded: serve it, cache nothing */
    if (!c->l2) {
        /* L1-only: a local version, so a refresh can replace a tc_set value. Taken under
         * the shard lock by the commit, which refuses it if a tc_set or tc_del came since
         * the snapshot (also between the check above and the commit). */
        tc__l1_commit(c->l1, j->p, j->snap, e, TC__COMMIT_LOCAL_LOAD);
        return e;
    }
    if (j->l2_failed)
        return keep_local(j, e);
    const tc__entry_ext_t *x = tc__entry_ext(e);
    /* Replacing a known (stale) version: compare-and-set on it, and publish, since other
     * processes hold that version. A new key: add only if still absent. */
    tc__l2_write_t w = {.key = j->key,
                        .klen = j->klen,
                        .value = tc_ref_data(e),
                        .vlen = tc_ref_size(e),
                        .ttl_ms = plan->keep_ms,
                        .lease = j->locked ? j->token : NULL,
                        .lease_len = j->locked ? strlen(j->token) : 0,
                        .expected_version = j->stale ? &j->stale->version : NULL,
                        .tags = j->opts ? j->opts->tags : NULL,
                        .ntags = j->opts ? j->opts->ntags : 0,
                        .check_mark = j->locked,
                        .seen_mark = j->mark};
    tc__l2_meta_for(c, plan, flags, x ? x->load_ms : 0, &w.meta);
    tc__l2_value_t theirs;
    uint64_t version = 0;
    int rc = tc__l2_fill(c->l2, &w, &version, &theirs);
    if (j->locked && (rc >= 0 || rc == TC_ETOOBIG))
        lock_gone(j); /* the script ran: it released the lease (or it was gone) */
    switch (rc) {
    case TC__L2_DONE:
        e->version = version;
        tc__l1_commit(c->l1, j->p, j->snap, e, j->stale ? TC__COMMIT_WRITE : 0);
        return e;
    case TC__L2_EXISTS:
        return take_theirs(j, e, &theirs);
    case TC__L2_LEASE_LOST:
    case TC__L2_GONE:
        /* A write or delete came after our miss: what we loaded may predate it. */
        tc__count(&c->leases_lost);
        j->visibility = TC__FINISH_PRIVATE;
        return e;
    case TC_ETOOBIG: /* a value too long to read is in the way: serve ours, keep nothing */
        tc__count(&c->values_too_big);
        j->visibility = TC__FINISH_PRIVATE;
        return e;
    default:
        note_l2_error(j, rc);
        return keep_local(j, e);
    }
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
    uint64_t ttl = ld.ttl_ms ? ld.ttl_ms : j->opts ? j->opts->ttl_ms : 0;
    tc__plan_ttl(c, j->key, j->klen, ttl, &plan);
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
    if (rc != TC_OK) {
        note_l2_error(j, rc);
        return rc == TC__ABSENT;
    }
    if (j->stale && e->version > j->stale->version && !tc_ref_stale(e)) {
        *out = e;
        return 1;
    }
    tc_ref_release(e);
    return 0;
}

/* Release our lock now, or have the keeper do it when Redis answers again. */
static void release_lock(load_job_t *j) {
    tc_cache_t *c = j->c;
    size_t tlen = strlen(j->token);
    int rc =
        j->l2_failed ? TC_EUNAVAILABLE : tc__l2_unlock(c->l2, j->key, j->klen, j->token, tlen);
    /* Extended up to now, the lock lives at most lock_ttl_ms more. */
    uint64_t expires_ns = tc__now_ns() + (uint64_t)c->cfg.lock_ttl_ms * 1000000u;
    if (rc != TC_OK && tc__keeper_unlock_later(c->keeper, j->key, j->klen, j->token, tlen,
                                               expires_ns) == TC_OK) {
        tc__count(&c->unlocks_deferred);
        tc__log(&c->log, TC__EV_UNLOCK, TC_LOG_WARN, j->key, j->klen,
                "a load's lock release failed (%s): retried in the background",
                tc_err_name(rc));
    }
    lock_gone(j);
}

/* A background refresh is over (ran, failed or was dropped): it may be queued again. */
static void refresh_done(load_job_t *j) {
    tc__entry_ext_t *x = j->stale ? tc__entry_ext(j->stale) : NULL;
    if (x)
        atomic_store_explicit(&x->refreshing, 0, memory_order_relaxed);
}

/* Finish the job: publish the result to waiters (the stale value when a failure is
 * answered by fail-safe), release the lock, free the job. Returns the caller's status and
 * sets *out (pinned) accordingly; value is consumed. */
static int finish_job(load_job_t *j, int status, tc_ref_t *value, tc_ref_t **out) {
    tc_cache_t *c = j->c;
    if (j->locked)
        release_lock(j);
    if (status != TC_OK && status != TC_ENOTFOUND && failsafe_allows(c, j->stale)) {
        back_off(c, j->stale);
        tc__entry_pin(j->stale);
        value = j->stale;
        status = TC_OK;
    } else if (status != TC_OK && j->stale) {
        back_off(c, j->stale); /* SWR refresh failed: do not hammer the source */
    }
    if (j->refresh)
        refresh_done(j);
    tc__l1_fetch_finish(c->l1, j->p, status, value, j->visibility);
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

static void took_lock(load_job_t *j) {
    tc_cache_t *c = j->c;
    j->locked = 1;
    j->lease = tc__keeper_hold(c->keeper, j->key, j->klen, j->token, strlen(j->token),
                               c->cfg.lock_ttl_ms);
}

/* A background refresh loads only if it can take the key's Redis lock, and the lock step
 * itself returns the value when another process has stored a newer one meanwhile. When
 * the lock is held elsewhere, that process is refreshing the key and its write will reach
 * us as an invalidation: keep serving the stale copy, and do not ask again before its lock
 * could have ended. So a stale key is refreshed once per cluster. Returns 1 (*out set:
 * serve it), or 0 to load. */
static int refreshed_elsewhere(load_job_t *j, tc_ref_t **out) {
    tc_cache_t *c = j->c;
    if (!c->l2 || !c->cfg.lock_ttl_ms || !j->stale || j->l2_failed)
        return 0;
    make_token(j);
    int64_t pttl = 0;
    tc__l2_value_t theirs;
    int rc = tc__l2_lock(c->l2, j->key, j->klen, j->token, strlen(j->token), c->cfg.lock_ttl_ms,
                         &j->stale->version, &pttl, &j->mark, &theirs);
    switch (rc) {
    case TC__L2_DONE:
        took_lock(j);
        return 0;
    case TC__L2_EXISTS: { /* a newer value is already in Redis */
        tc_ref_t *e = tc__entry_from_l2(c, j->key, j->klen, &theirs);
        tc__l2_value_release(&theirs);
        if (!e)
            return 0;
        tc__l1_commit(c->l1, j->p, j->snap, e, TC__COMMIT_FROM_L2);
        *out = e;
        return 1;
    }
    case TC__L2_LOCK_HELD:
        break;
    default:
        note_l2_error(j, rc);
        return 0; /* Redis trouble: load without the lock */
    }
    tc__entry_ext_t *x = tc__entry_ext(j->stale);
    if (x) {
        uint64_t wait = pttl > 0 ? (uint64_t)pttl : c->cfg.failsafe_backoff_ms;
        atomic_store_explicit(&x->retry_after_ms, tc__now_ms() + wait, memory_order_relaxed);
    }
    tc__entry_pin(j->stale);
    *out = j->stale;
    return 1;
}

/* ---- the cross-process lock ---- */

typedef enum lock_outcome {
    LOCK_TAKEN,         /* we hold the key's lock (lease): load */
    LOCK_SKIPPED,       /* load without it: Redis trouble, or waited long enough */
    LOCK_FOUND_VALUE,   /* a value appeared in Redis: *out */
    LOCK_FOUND_ABSENT,  /* a cached absence appeared */
    LOCK_FOUND_TOO_BIG, /* a stored value too long to read is there */
} lock_outcome_t;

/* Commit a value found in Redis during the lock step and hand it out. Consumes v. */
static lock_outcome_t from_l2(load_job_t *j, tc__l2_value_t *v, tc_ref_t **out) {
    tc_cache_t *c = j->c;
    int absent = (v->val.flags & TC__VAL_FLAG_ABSENT) != 0;
    tc_ref_t *e = tc__entry_from_l2(c, j->key, j->klen, v);
    tc__l2_value_release(v);
    if (!e)
        return LOCK_SKIPPED;
    tc__l1_commit(c->l1, j->p, j->snap, e, TC__COMMIT_FROM_L2);
    if (absent) {
        tc_ref_release(e);
        return LOCK_FOUND_ABSENT;
    }
    *out = e;
    return LOCK_FOUND_VALUE;
}

/* After waiting for another holder: is the value there now? */
static int reread(load_job_t *j, tc_ref_t **out, lock_outcome_t *outcome) {
    int rc = tc__read_through(j->c, j->p, j->snap, j->key, j->klen, out);
    if (rc == TC_OK || rc == TC__ABSENT || rc == TC_ETOOBIG) {
        *outcome = rc == TC_OK        ? LOCK_FOUND_VALUE
                   : rc == TC_ETOOBIG ? LOCK_FOUND_TOO_BIG
                                      : LOCK_FOUND_ABSENT;
        return 1;
    }
    note_l2_error(j, rc);
    *outcome = LOCK_SKIPPED;
    return j->l2_failed;
}

/* Take key's Redis lock, or wait for its holder's value. */
static lock_outcome_t lock_or_wait(load_job_t *j, tc_ref_t **out) {
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
                        j->stale ? &j->stale->version : NULL, &pttl, &j->mark, &theirs);
        switch (rc) {
        case TC__L2_DONE:
            tc__count(&c->lock_acquired);
            took_lock(j);
            return LOCK_TAKEN;
        case TC__L2_EXISTS: /* stored since our read: no load needed */
            return from_l2(j, &theirs, out);
        case TC_ETOOBIG:
            tc__count(&c->values_too_big);
            return LOCK_FOUND_TOO_BIG;
        case TC__L2_LOCK_HELD:
            break;
        default:
            note_l2_error(j, rc);
            return LOCK_SKIPPED;
        }
        if (!waited++)
            tc__count(&c->lock_waits);
        uint64_t now = tc__now_ns();
        if (now >= deadline) {
            tc__count(&c->lock_timeouts);
            return LOCK_SKIPPED;
        }
        /* Woken by the holder's FILL (or any write of the key), else when its lock expires. */
        uint64_t until = now + (uint64_t)(pttl > 0 ? pttl : 10) * 1000000u + 2000000u;
        tc__l1_wait_inval(c->l1, j->p, seq, until < deadline ? until : deadline);
        lock_outcome_t outcome;
        if (reread(j, out, &outcome))
            return outcome;
    }
}

static int should_lock(const load_job_t *j) {
    const tc_cache_t *c = j->c;
    return c->l2 && c->cfg.lock_ttl_ms && !j->l2_failed && tc__l2_available(c->l2);
}

/* The job's whole load (after the leader's Redis read). */
static int do_load(load_job_t *j, tc_ref_t **out) {
    tc_ref_t *value = NULL;
    int status;
    if (j->refresh && !j->c->cfg.lock_ttl_ms && fresher_in_l2(j, &value))
        return finish_job(j, value ? TC_OK : TC_ENOTFOUND, value, out);
    if (j->refresh && refreshed_elsewhere(j, &value))
        return finish_job(j, TC_OK, value, out);
    if (!j->refresh && should_lock(j)) {
        switch (lock_or_wait(j, &value)) {
        case LOCK_FOUND_VALUE:
            return finish_job(j, TC_OK, value, out);
        case LOCK_FOUND_ABSENT:
            return finish_job(j, TC_ENOTFOUND, NULL, out);
        case LOCK_FOUND_TOO_BIG:
            return finish_job(j, TC_ETOOBIG, NULL, out);
        case LOCK_TAKEN:
        case LOCK_SKIPPED:
            break;
        }
    }
    status = run_loader(j, &value);
    return finish_job(j, status, value, out);
}

static void job_run(void *arg) {
    do_load(arg, NULL);
}

static void job_cancel(void *arg) {
    finish_job(arg, TC_EUNAVAILABLE, NULL, NULL);
}

/* ---- background refresh (stale-while-revalidate, XFetch) ---- */

/* On a pool thread: lead the key now (not at queue time, so no caller waits behind the
 * queue), unless its stale copy was replaced meanwhile or a load is already running. */
static void refresh_run(void *arg) {
    load_job_t *j = arg;
    tc__l1_t *l1 = j->c->l1;
    if (tc__l1_holds(l1, j->h, j->key, j->klen, j->stale))
        j->p = tc__l1_try_lead(l1, j->h, j->key, j->klen, &j->snap);
    if (!j->p) {
        refresh_done(j);
        job_free(j);
        return;
    }
    do_load(j, NULL);
}

static void refresh_cancel(void *arg) {
    load_job_t *j = arg;
    refresh_done(j);
    job_free(j);
}

static void start_refresh(const fetch_req_t *r, tc_ref_t *current,
                          atomic_uint_fast64_t *counter) {
    tc_cache_t *c = r->c;
    tc__entry_ext_t *x = tc__entry_ext(current);
    if (!c->pool || !x || atomic_load_explicit(&x->refreshing, memory_order_relaxed) ||
        atomic_exchange(&x->refreshing, 1))
        return; /* no pool, or a refresh of this copy is already queued or running */
    load_job_t *j = job_new(c, NULL, 0, r->h, r, current);
    if (!j) {
        atomic_store(&x->refreshing, 0);
        return;
    }
    j->refresh = 1;
    if (tc__refresh_submit(c->pool, refresh_run, refresh_cancel, j) != TC_OK) {
        tc__count(&c->refreshes_dropped);
        tc__log(&c->log, TC__EV_REFRESH_DROPPED, TC_LOG_WARN, r->key, r->klen,
                "background refresh dropped: the queue (refresh_queue = %u) is full; the "
                "stale value keeps being served",
                c->cfg.refresh_queue);
        refresh_cancel(j);
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

/* ---- the leader ---- */

/* Load as leader of p. stale: the value being replaced (fail-safe), or NULL. */
static int lead(const fetch_req_t *r, tc__pending_t *p, uint64_t snap, tc_ref_t *stale,
                tc_ref_t **out) {
    tc_cache_t *c = r->c;
    const void *key = r->key;
    size_t klen = r->klen;
    load_job_t *j = job_new(c, p, snap, r->h, r, stale);
    if (!j) {
        tc__l1_fetch_finish(c->l1, p, TC_ENOMEM, NULL, TC__FINISH_SHARED);
        return TC_ENOMEM;
    }
    if (c->l2) {
        tc_ref_t *e = NULL;
        int rc = tc__read_through(c, p, snap, key, klen, &e);
        if (rc == TC_OK && (!stale || !tc_ref_stale(e)))
            return finish_job(j, TC_OK, e, out);
        tc_ref_release(e);
        if (rc == TC__ABSENT)
            return finish_job(j, TC_ENOTFOUND, NULL, out);
        if (rc == TC_ENOMEM || rc == TC_ETOOBIG)
            return finish_job(j, rc, NULL, out);
        note_l2_error(j, rc);
    }
    uint32_t soft = stale ? c->cfg.load_soft_timeout_ms : 0;
    uint32_t hard = c->cfg.load_hard_timeout_ms;
    if (!c->pool || (!soft && !hard))
        return do_load(j, out);

    /* Timeouts: the lock wait and the load run on the pool; we wait on p like any waiter. */
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

/* How long a caller waits for a load another thread runs: the timeout it would have
 * given its own load (soft when it has a stale value to fall back on, else hard). */
static uint32_t join_wait_ms(const tc_cache_t *c, const tc_ref_t *stale) {
    if (stale && c->cfg.load_soft_timeout_ms)
        return c->cfg.load_soft_timeout_ms;
    return c->cfg.load_hard_timeout_ms;
}

/* Answer from a stale entry in the fail-safe region, or reload it in the foreground. */
static int reload(const fetch_req_t *r, tc_ref_t *stale, tc_ref_t **ref) {
    tc_cache_t *c = r->c;
    tc__fetch_t f = {.lookup = 0, .wait_ms = join_wait_ms(c, stale)};
    int status = TC_OK;
    tc_ref_t *value = NULL;
    int how = tc__l1_fetch_begin(c->l1, r->h, r->key, r->klen, &f);
    if (how == TC__FETCH_LEAD) {
        status = lead(r, f.p, f.snap, stale, &value);
    } else if (how == TC__FETCH_SHARED) {
        status = f.status;
        value = f.ref;
    } else if (how == TC__FETCH_TIMEDOUT) {
        tc__count(&c->load_timeouts);
        status = TC_ETIMEDOUT;
    } else {
        status = how; /* ENOMEM */
    }
    if (status == TC_OK && value == stale)
        tc__count(&c->failsafe_serves);
    int soft_fallback = how == TC__FETCH_TIMEDOUT && c->cfg.load_soft_timeout_ms;
    if (status != TC_OK && status != TC_ENOTFOUND &&
        (soft_fallback || failsafe_allows(c, stale))) {
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
static int serve_hit(const fetch_req_t *r, tc_ref_t *e, tc_ref_t **ref) {
    tc_cache_t *c = r->c;
    tc__entry_ext_t *x = tc__entry_ext(e);
    if (x->flags & TC__ENTRY_ABSENT) {
        tc__count(&c->negative_hits);
        tc_ref_release(e);
        return TC_ENOTFOUND;
    }
    uint64_t now = tc__now_ms();
    uint64_t fresh = ext_load(&x->fresh_until_ms);
    if (now < fresh) {
        if (c->cfg.early_refresh_beta > 0 && !backing_off(e, now) &&
            xfetch_due(c, x, now, fresh))
            start_refresh(r, e, &c->early_refreshes);
        *ref = e;
        return TC_OK;
    }
    if (now < ext_load(&x->stale_until_ms)) {
        tc__count(&c->stale_serves);
        if (!backing_off(e, now))
            start_refresh(r, e, &c->stale_refreshes);
        *ref = e;
        return TC_OK;
    }
    if (backing_off(e, now) && failsafe_allows(c, e)) {
        tc__count(&c->failsafe_serves);
        *ref = e;
        return TC_OK;
    }
    return reload(r, e, ref);
}

int tc__fetch(tc_cache_t *c, const void *key, size_t klen, tc_loader_fn loader, void *arg,
              const tc__call_opts_t *o, tc_ref_t **ref) {
    fetch_req_t r = {.c = c,
                     .h = tc__l1_hash(c->l1, key, klen),
                     .key = key,
                     .klen = klen,
                     .loader = loader,
                     .arg = arg,
                     .opts = o};
    int skip_l1 = o && (o->flags & TC_OPT_NO_L1);
    tc__fetch_t f = {.lookup = !skip_l1, .wait_ms = join_wait_ms(c, NULL)};
    tc_ref_t *e = NULL;
    uint64_t t0 = tc__sample_hit() ? tc__now_ns() : 0;
    int how = tc__l1_fetch_begin(c->l1, r.h, key, klen, &f);
    if (how == TC__FETCH_HIT && t0)
        tc__cache_time(c, TC_LAT_GET_HIT, t0);
    else if (how != TC__FETCH_HIT && !t0)
        t0 = tc__now_ns(); /* a load's time is dominated by the load: start here */
    switch (how) {
    case TC__FETCH_HIT:
        if (!tc__entry_ext(f.ref)) {
            *ref = f.ref;
            return TC_OK;
        }
        return serve_hit(&r, f.ref, ref);
    case TC__FETCH_SHARED:
        tc__cache_time(c, TC_LAT_FETCH_LOAD, t0);
        if (f.status == TC_OK && !f.ref)
            return TC_EINTERNAL;
        if (f.status == TC_OK && tc_ref_stale(f.ref))
            tc__count(&c->failsafe_serves);
        *ref = f.ref;
        return f.status;
    case TC__FETCH_TIMEDOUT:
        tc__cache_time(c, TC_LAT_FETCH_LOAD, t0);
        tc__count(&c->load_timeouts);
        return TC_ETIMEDOUT;
    case TC__FETCH_LEAD: {
        int status = lead(&r, f.p, f.snap, NULL, &e);
        tc__cache_time(c, TC_LAT_FETCH_LOAD, t0);
        if (skip_l1) /* keep nothing of this load here */
            tc__l1_evict(c->l1, r.h, key, klen);
        *ref = status == TC_OK ? e : NULL;
        if (status != TC_OK)
            tc_ref_release(e);
        return status;
    }
    default:
        return how; /* TC_ENOMEM */
    }
}

int tc_fetch(tc_cache_t *c, const void *key, size_t klen, tc_loader_fn loader, void *arg,
             tc_ref_t **ref) {
    c = tc__route(c, key, klen);
    if (!ref)
        return TC_EINVAL;
    *ref = NULL;
    int rc = tc__check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    if (!loader)
        return TC_EINVAL;
    return tc__fetch(c, key, klen, loader, arg, NULL, ref);
}

int tc_fetch_opts(tc_cache_t *c, const void *key, size_t klen, tc_loader_fn loader, void *arg,
                  const tc_opts_t *opts, tc_ref_t **ref) {
    c = tc__route(c, key, klen);
    if (!ref)
        return TC_EINVAL;
    *ref = NULL;
    int rc = tc__check_key(c, key, klen);
    if (rc != TC_OK)
        return rc;
    if (!loader)
        return TC_EINVAL;
    tc__call_opts_t o;
    if ((rc = tc__opts_import(opts, tc__tags_ok(c), &o)) != TC_OK)
        return rc;
    return tc__fetch(c, key, klen, loader, arg, &o, ref);
}
