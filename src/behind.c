/*
 * behind.c - write-behind: writes reach the cache at once and the source later, through a
 * durable queue in Redis (l2_queue.c) and one flusher in the cluster.
 *
 * Queueing. tc_set_behind is tc_set whose script also appends {op, key, version, value} to
 * the stream <prefix>"wb" in the same atomic step (so a write is never in the cache without
 * being queued, nor queued without being in the cache), unless write_behind_max_queue
 * entries wait already: then nothing happens and the caller hears TC_EFULL.
 *
 * Flushing. Every process that may flush runs this thread; one at a time holds the lease
 * <prefix>"wb:lease" (SET NX PX, extended every lease/3 while it is ours, waking for it
 * whatever write_behind_delay_ms says; a standby tries every lease/4 and just after the
 * lease would expire, so it takes over within a lease of the holder's death, and within
 * lease/4 of a holder's close). The holder:
 *   1. first claims every entry pending in the group: what a previous holder read but
 *      never acknowledged, because it died or lost the lease (XAUTOCLAIM from 0-0,
 *      following its cursor page by page, renewing the lease as it goes; a walk cut short
 *      starts again, and so does one after the lease was lost and taken back, since
 *      another holder may have read entries in between);
 *   2. only then reads new entries (XREADGROUP) every write_behind_delay_ms, or at once
 *      while batches come full; and once a lease claims again whatever has been pending,
 *      untouched, for a lease (a holder deposed between its lease check and its read
 *      leaves such entries behind, after the walk);
 *   3. keeps one entry per key, the newest (by version): an older one still waiting is
 *      acknowledged as coalesced, never written;
 *   4. skips an entry whose key the flusher has already written at a newer version
 *      (<prefix>"wbv:"<key>: a dead letter queued again after a newer write);
 *   5. checks it still holds the lease, then gives the writer up to write_behind_batch
 *      entries, oldest first;
 *   6. acknowledges and deletes the written ones, records their versions; a failed one is
 *      retried after write_behind_retry_ms, doubling up to 10 s, and after
 *      write_behind_attempts failures moves to the dead-letter stream.
 * Order per key: within one holder, a key's writes are written oldest to newest and never
 * an older one after a newer (3, 4); across holders, the next one starts from everything
 * the last one had not acknowledged (1). Two holders at once is what the lease prevents;
 * a holder stalled past its lease (SIGSTOP, a writer call longer than the lease) could
 * overlap its successor, so every write carries its version for the writer to refuse an
 * older one (UPDATE ... WHERE version < ?). Delivery is at least once: a holder that dies
 * after the writer returned but before acknowledging has those entries written again.
 *
 * Stopping (tc_close): the holder drains what is queued for up to write_behind_lease_ms,
 * then releases the lease, so another process takes over at once.
 */
#include "behind.h"

#include "cache.h"
#include "clock.h"
#include "errors.h"
#include "fork.h"
#include "ring_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define WB_RETRY_MAX_MS 10000u
#define NS_PER_MS       1000000u

/* One key waiting to be written: its newest queued write. */
typedef struct slot {
    UT_hash_handle hh;
    tc__wb_entry_t e;
    unsigned attempts;
    uint64_t due_ns; /* not before (a retry's back-off) */
    int last_rc;
} slot_t;

struct tc__behind {
    tc_cache_t *c;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stopping, kick */
    pthread_cond_t cv;
    int stopping, kick;
    char token[48]; /* the lease token and consumer name */
    /* flusher thread only */
    int holder, claimed;
    unsigned takes;         /* times this process took the lease afresh */
    uint64_t sweep_ns;      /* when to claim entries idle for a lease again */
    int64_t holder_left_ms; /* a standby: the holder's lease time left, -1 unknown */
    uint64_t renew_ns, oldest_ns;
    slot_t *slots;
    size_t nslots;
    atomic_uint_fast64_t written, coalesced, retries, dead;
    atomic_int holding;
};

/* ---- the work set ---- */

static void slot_free(slot_t *s) {
    free(s->e.key);
    free(s);
}

static void drop_all(tc__behind_t *b) {
    slot_t *s, *tmp;
    HASH_ITER(hh, b->slots, s, tmp) {
        HASH_DEL(b->slots, s);
        slot_free(s);
    }
    b->nslots = 0;
}

/* Acknowledge one id (a coalesced or malformed entry). */
static void ack_one(tc__behind_t *b, const char *id) {
    tc__l2_wb_ack(b->c->l2, &id, 1);
}

/* Merge entries read from the queue: per key, the newest wins (the older is acknowledged,
 * never written). Takes ownership of the entries' buffers. */
static void merge(tc__behind_t *b, tc__wb_entry_t *e, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (e[i].kind == 0) { /* malformed: acknowledge it away */
            ack_one(b, e[i].id);
            continue;
        }
        slot_t *s = NULL;
        HASH_FIND(hh, b->slots, e[i].key, (unsigned)e[i].klen, s);
        if (s && strcmp(s->e.id, e[i].id) == 0) { /* the same entry again */
            free(e[i].key);
            continue;
        }
        if (s && s->e.version >= e[i].version) {
            ack_one(b, e[i].id);
            atomic_fetch_add(&b->coalesced, 1);
            free(e[i].key);
            continue;
        }
        if (s) { /* a newer write of a key already waiting */
            ack_one(b, s->e.id);
            atomic_fetch_add(&b->coalesced, 1);
            HASH_DEL(b->slots, s);
            slot_free(s);
            b->nslots--;
        }
        s = calloc(1, sizeof *s);
        if (!s) { /* unacknowledged: the next claim gets it again */
            free(e[i].key);
            continue;
        }
        s->e = e[i];
        HASH_ADD_KEYPTR(hh, b->slots, s->e.key, (unsigned)s->e.klen, s);
        if (b->nslots++ == 0)
            b->oldest_ns = tc__now_ns();
    }
    free(e); /* the keys moved into slots */
}

/* Read new entries from the queue, or (cursor) a previous holder's pending ones from
 * there on. TC__WB_READ_ERROR when Redis did not answer, else how many. */
#define TC__WB_READ_ERROR ((size_t)-1)
static size_t read_queue(tc__behind_t *b, char *cursor, uint32_t min_idle_ms) {
    tc__wb_entry_t *e = NULL;
    size_t n = 0;
    unsigned batch = b->c->cfg.write_behind_batch;
    if (tc__l2_wb_read(b->c->l2, b->token, cursor, min_idle_ms, batch, &e, &n) != 0)
        return TC__WB_READ_ERROR;
    merge(b, e, n);
    return n;
}

static int hold_lease(tc__behind_t *b);

static int is_stopping(tc__behind_t *b) {
    pthread_mutex_lock(&b->mu);
    int stopping = b->stopping;
    pthread_mutex_unlock(&b->mu);
    return stopping;
}

/* Take over every entry a previous holder read but never acknowledged, walking the
 * group's pending list with XAUTOCLAIM's cursor, a page of write_behind_batch at a time,
 * keeping the lease renewed as it goes. 1 when the walk reached its end; 0 when it must
 * start again next round (Redis did not answer, the lease was lost, tc_close came, or the
 * cursor did not move: what was claimed stays ours and is merged again, never twice). */
static int claim_pending(tc__behind_t *b, uint32_t min_idle_ms) {
    char cursor[TC__WB_ID_MAX] = "0-0", last[TC__WB_ID_MAX];
    unsigned takes = b->takes;
    do {
        memcpy(last, cursor, sizeof last);
        if (read_queue(b, cursor, min_idle_ms) == TC__WB_READ_ERROR) {
            /* Newer writes wait behind this walk, so say why it does not finish (an ACL
             * without +xautoclaim, a Redis older than 6.2, a reply it cannot walk). */
            tc_error_t why = {.code = TC_EREDIS, .msg = "no detail recorded"};
            tc_last_error(&why);
            tc__log(&b->c->log, TC__EV_WRITE, TC_LOG_WARN, NULL, 0,
                    "write-behind: taking over the entries a previous flusher left failed "
                    "(%s: %s); tried again next round, newer writes wait",
                    tc_err_name(why.code), why.msg);
            return 0;
        }
        if (!hold_lease(b) || b->takes != takes || is_stopping(b))
            return 0;
    } while (strcmp(cursor, "0-0") != 0 && strcmp(cursor, last) != 0);
    if (strcmp(cursor, "0-0") != 0)
        tc__log(&b->c->log, TC__EV_WRITE, TC_LOG_WARN, NULL, 0,
                "write-behind: XAUTOCLAIM returned its own cursor %s again: the walk over "
                "a previous flusher's entries starts over next round",
                cursor);
    return strcmp(cursor, "0-0") == 0;
}

/* ---- the lease ---- */

/* Hold the lease: extend it when ours (renewing every lease/3), else try to take it.
 * 1 held; 0 not (or Redis did not answer: no decision, nothing written this round). */
static int hold_lease(tc__behind_t *b) {
    tc_cache_t *c = b->c;
    uint64_t now = tc__now_ns();
    uint32_t lease = c->cfg.write_behind_lease_ms;
    if (b->holder && now < b->renew_ns)
        return 1;
    b->holder_left_ms = -1;
    int rc = tc__l2_wb_lease(c->l2, b->token, lease, 1, NULL); /* ours still? */
    int taken = 0;
    if (rc == 0) {
        rc = tc__l2_wb_lease(c->l2, b->token, lease, 0, &b->holder_left_ms); /* free? */
        taken = rc == 1;
    }
    if (rc < 0)
        return 0;
    if (taken && b->holder) { /* lost and taken again: another may have held it between */
        drop_all(b);
        b->claimed = 0;
    }
    if (taken)
        b->takes++;
    if (rc == 1) {
        if (!b->holder)
            tc__log(&c->log, TC__EV_WRITE, TC_LOG_INFO, NULL, 0,
                    "write-behind: this process holds the flusher lease");
        b->holder = 1;
        b->renew_ns = now + (uint64_t)lease / 3 * NS_PER_MS;
    } else if (b->holder) { /* lost: the next holder starts from what we did not ack */
        drop_all(b);
        b->claimed = 0;
        b->holder = 0;
        tc__log(&c->log, TC__EV_WRITE, TC_LOG_WARN, NULL, 0,
                "write-behind: this process lost the flusher lease; another takes over");
    }
    if (!b->holder)
        b->claimed = 0;
    atomic_store(&b->holding, b->holder);
    return b->holder;
}

/* ---- writing a batch ---- */

static int by_id(const void *a, const void *bb) {
    const slot_t *x = *(const slot_t *const *)a, *y = *(const slot_t *const *)bb;
    unsigned long long xm = strtoull(x->e.id, NULL, 10), ym = strtoull(y->e.id, NULL, 10);
    if (xm != ym)
        return xm < ym ? -1 : 1;
    const char *xs = strchr(x->e.id, '-'), *ys = strchr(y->e.id, '-');
    unsigned long long xq = xs ? strtoull(xs + 1, NULL, 10) : 0;
    unsigned long long yq = ys ? strtoull(ys + 1, NULL, 10) : 0;
    return xq < yq ? -1 : xq > yq;
}

/* Up to batch slots that are due, oldest first, into out. Returns how many. */
static size_t due_slots(tc__behind_t *b, slot_t **out, size_t max, uint64_t now) {
    size_t n = 0;
    slot_t *s, *tmp;
    HASH_ITER(hh, b->slots, s, tmp) {
        if (s->due_ns <= now)
            out[n++] = s;
    }
    qsort(out, n, sizeof *out, by_id);
    return n < max ? n : max;
}

static void forget(tc__behind_t *b, slot_t *s) {
    HASH_DEL(b->slots, s);
    slot_free(s);
    b->nslots--;
}

/* Entries whose key was already written at a version at least theirs: drop them. */
static size_t skip_written(tc__behind_t *b, slot_t **s, size_t n) {
    const tc__wb_entry_t **e = malloc(n * sizeof *e);
    uint64_t *done = malloc(n * sizeof *done);
    size_t m = 0;
    if (e && done) {
        for (size_t i = 0; i < n; i++)
            e[i] = &s[i]->e;
        if (tc__l2_wb_written(b->c->l2, e, n, done) != 0)
            memset(done, 0, n * sizeof *done);
    }
    for (size_t i = 0; i < n; i++) {
        if (e && done && done[i] >= s[i]->e.version) {
            ack_one(b, s[i]->e.id);
            atomic_fetch_add(&b->coalesced, 1);
            forget(b, s[i]);
        } else {
            s[m++] = s[i];
        }
    }
    free(e);
    free(done);
    return m;
}

/* The writer failed slot s (rc: its return or the write's result, nonzero): retry later,
 * or bury it. */
static void failed(tc__behind_t *b, slot_t *s, int rc, uint64_t now) {
    tc_cache_t *c = b->c;
    s->attempts++;
    s->last_rc = rc;
    if (s->attempts < c->cfg.write_behind_attempts) {
        uint64_t wait = (uint64_t)c->cfg.write_behind_retry_ms << (s->attempts - 1);
        if (wait > WB_RETRY_MAX_MS || s->attempts > 16)
            wait = WB_RETRY_MAX_MS;
        s->due_ns = now + wait * NS_PER_MS;
        atomic_fetch_add(&b->retries, 1);
        return;
    }
    char why[64]; /* the header's promise: a tc_err_name, or "writer returned N" */
    if (rc < 0 && strcmp(tc_err_name(rc), "TC_E?") != 0)
        snprintf(why, sizeof why, "%s", tc_err_name(rc));
    else
        snprintf(why, sizeof why, "writer returned %d", rc);
    if (tc__l2_wb_bury(c->l2, &s->e, why, s->attempts) != 0) {
        s->due_ns = now + (uint64_t)WB_RETRY_MAX_MS * NS_PER_MS; /* try to bury it later */
        return;
    }
    atomic_fetch_add(&b->dead, 1);
    tc__log(&c->log, TC__EV_WRITE, TC_LOG_ERROR, s->e.key, s->e.klen,
            "write-behind: a write failed %u times (%s): moved to the dead-letter stream",
            s->attempts, why);
    forget(b, s);
}

/* Give the writer n slots; acknowledge, record or retry each. */
static void write_batch(tc__behind_t *b, slot_t **s, size_t n) {
    tc_cache_t *c = b->c;
    tc_write_t *w = calloc(n, sizeof *w);
    const char **ids = malloc(n * sizeof *ids);
    const tc__wb_entry_t **done = malloc(n * sizeof *done);
    if (!w || !ids || !done) {
        free(w);
        free(ids);
        free(done);
        return;
    }
    for (size_t i = 0; i < n; i++)
        w[i] = (tc_write_t){.kind = s[i]->e.kind,
                            .key = s[i]->e.key,
                            .klen = s[i]->e.klen,
                            .value = s[i]->e.kind == TC_WRITE_SET ? s[i]->e.value : NULL,
                            .vlen = s[i]->e.vlen,
                            .version = s[i]->e.version};
    int rc = c->cfg.writer(c->cfg.writer_arg, w, n);
    uint64_t now = tc__now_ns();
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        int r = rc != 0 ? rc : w[i].result; /* as the writer said it: the dead letter
                                                names it */
        if (r == 0) {
            ids[ok] = s[i]->e.id;
            done[ok++] = &s[i]->e;
        } else {
            failed(b, s[i], r, now);
        }
    }
    if (ok > 0) {
        tc__l2_wb_mark_written(c->l2, done, ok);
        tc__l2_wb_ack(c->l2, ids, ok); /* a failure here: written again by a claim */
        atomic_fetch_add(&b->written, ok);
        for (size_t i = 0; i < n; i++) /* forget the written ones */
            if (w[i].result == 0 && rc == 0)
                forget(b, s[i]);
    }
    free(w);
    free(ids);
    free(done);
}

/* One round as holder. Returns 1 when it did work (go again at once). */
static int round_as_holder(tc__behind_t *b, int urgent) {
    tc_cache_t *c = b->c;
    uint64_t lease_ns = (uint64_t)c->cfg.write_behind_lease_ms * NS_PER_MS;
    if (!b->claimed) {
        if (!(b->claimed = claim_pending(b, 0)))
            return 0; /* a previous holder's entries go first: new ones wait for the walk */
        b->sweep_ns = tc__now_ns() + lease_ns;
    } else if (tc__now_ns() >= b->sweep_ns) {
        /* Entries nobody has touched for a lease: read by a holder deposed between its
         * lease check and its read (SIGSTOP), after this one's walk had passed; only this
         * sweep would ever write them. Ours in back-off come back too, merged as the same
         * entry. A failed sweep is tried again at the next one. */
        claim_pending(b, c->cfg.write_behind_lease_ms);
        b->sweep_ns = tc__now_ns() + lease_ns;
    }
    size_t got = read_queue(b, NULL, 0);
    if (got == TC__WB_READ_ERROR)
        got = 0;
    uint64_t now = tc__now_ns();
    size_t batch = c->cfg.write_behind_batch;
    int ready =
        b->nslots >= batch || urgent ||
        (b->nslots && now - b->oldest_ns >= (uint64_t)c->cfg.write_behind_delay_ms * NS_PER_MS);
    if (!ready)
        return got > 0;
    slot_t **s = malloc(b->nslots * sizeof *s);
    if (!s)
        return 0;
    size_t n = due_slots(b, s, batch, now);
    n = n ? skip_written(b, s, n) : 0;
    if (n > 0 && hold_lease(b)) { /* never write without the lease */
        b->renew_ns = 0;          /* ... checked just now: renew it before the writer */
        if (hold_lease(b))
            write_batch(b, s, n);
    }
    free(s);
    if (b->nslots == 0)
        b->oldest_ns = 0;
    else if (b->oldest_ns == 0 ||
             now - b->oldest_ns > (uint64_t)c->cfg.write_behind_delay_ms * NS_PER_MS)
        b->oldest_ns = now;
    return n > 0 || got >= batch;
}

/* A standby tries every lease/4 (a holder that closed released the lease: taken over
 * within lease/4), and again just after the holder's lease would expire: once it died
 * (renewing every lease/3 while it lived) the lease is taken within a few milliseconds of
 * its expiry, hence within write_behind_lease_ms of the death. */
static uint64_t standby_wait_ms(const tc__behind_t *b) {
    uint64_t poll = b->c->cfg.write_behind_lease_ms / 4;
    if (b->holder_left_ms >= 0 && (uint64_t)b->holder_left_ms < poll)
        return (uint64_t)b->holder_left_ms + 1;
    return poll;
}

/* A holder waits write_behind_delay_ms for a batch to fill, but wakes in time to renew
 * its lease: a delay longer than a third of the lease would otherwise let it expire. */
static uint64_t holder_wait_ms(const tc__behind_t *b) {
    uint64_t wait = b->c->cfg.write_behind_delay_ms, now = tc__now_ns();
    uint64_t to_renew = b->renew_ns > now ? (b->renew_ns - now) / NS_PER_MS + 1 : 1;
    return wait < to_renew ? wait : to_renew;
}

static void *flusher_main(void *arg) {
    tc__behind_t *b = arg;
    tc_cache_t *c = b->c;
    uint64_t drain_until = 0;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        int stopping = b->stopping, urgent = b->kick || stopping;
        b->kick = 0;
        pthread_mutex_unlock(&b->mu);
        if (stopping && !drain_until)
            drain_until = tc__now_ns() + (uint64_t)c->cfg.write_behind_lease_ms * NS_PER_MS;
        int busy = 0;
        b->holder_left_ms = -1; /* unknown until hold_lease asks */
        if (tc__l2_available(c->l2) && hold_lease(b))
            busy = round_as_holder(b, urgent);
        if (stopping &&
            (!b->holder || (!busy && b->nslots == 0) || tc__now_ns() >= drain_until))
            break;
        if (busy)
            continue;
        uint64_t wait_ms = b->holder ? holder_wait_ms(b) : standby_wait_ms(b);
        if (stopping)
            wait_ms = 5;
        uint64_t deadline = tc__now_ns() + wait_ms * NS_PER_MS;
        struct timespec ts = tc__timespec_ns(deadline);
        pthread_mutex_lock(&b->mu);
        if (!b->kick && !b->stopping)
            pthread_cond_timedwait(&b->cv, &b->mu, &ts);
        pthread_mutex_unlock(&b->mu);
    }
    if (b->holder)
        tc__l2_wb_release(c->l2, b->token);
    b->holder = 0;
    atomic_store(&b->holding, 0);
    drop_all(b); /* unacknowledged: the next holder claims them */
    return NULL;
}

/* ---- lifecycle ---- */

int tc__behind_start(tc_cache_t *c, tc__behind_t **out) {
    *out = NULL;
    tc__behind_t *b = calloc(1, sizeof *b);
    if (!b)
        return TC_ENOMEM;
    b->c = c;
    snprintf(b->token, sizeof b->token, "f%016llx%016llx", (unsigned long long)tc__rand64(),
             (unsigned long long)tc__rand64());
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&b->mu, NULL);
    if (pthread_create(&b->thread, NULL, flusher_main, b) != 0) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return TC_EINTERNAL;
    }
    *out = b;
    return TC_OK;
}

void tc__behind_stop(tc__behind_t *b) {
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void tc__behind_kick(tc__behind_t *b) {
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->kick = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void tc__behind_counters(tc__behind_t *b, tc_stats_t *out) {
    if (!b)
        return;
    out->wb_written = atomic_load(&b->written);
    out->wb_coalesced = atomic_load(&b->coalesced);
    out->wb_retries = atomic_load(&b->retries);
    out->wb_dead = atomic_load(&b->dead);
    out->wb_flusher = (uint64_t)atomic_load(&b->holding);
}

/* ---- the calls ---- */

static int check_behind(tc_cache_t *c) {
    if (!c->cfg.writer)
        return tc__note(TC_EINVAL, "write-behind needs tc_config_t.writer");
    if (!c->l2)
        return tc__note(TC_EINVAL, "write-behind queues in Redis: this cache has none");
    if (c->endpoint.cluster_seeds)
        return tc__note(TC_EINVAL, "write-behind is not available with redis+cluster:// yet "
                                   "(its queue is one key, in one slot)");
    return TC_OK;
}

/* A queued write's cache side: as tc_set's (local entry committed under its pending). */
static int set_behind(tc_cache_t *c, const void *key, size_t klen, const void *value,
                      size_t vlen, const tc__call_opts_t *o) {
    tc__ttl_plan_t plan;
    tc__plan_ttl(c, key, klen, o->ttl_ms, &plan);
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    tc_ref_t *e = tc__cache_entry(c, key, klen, value, vlen);
    uint64_t snap;
    tc__pending_t *p = e ? tc__l1_pending_begin(c->l1, h, key, klen, &snap) : NULL;
    if (!p) {
        tc_ref_release(e);
        return TC_ENOMEM;
    }
    tc__stamp(c, e, &plan, 0);
    tc__l2_write_t w = {.key = key,
                        .klen = klen,
                        .value = value,
                        .vlen = vlen,
                        .ttl_ms = plan.keep_ms,
                        .tags = o->tags,
                        .ntags = o->ntags};
    tc__l2_meta_for(c, &plan, 0, 0, &w.meta);
    int rc = tc__l2_put_queued(c->l2, &w, c->cfg.write_behind_max_queue, &e->version);
    if (rc == TC__L2_DONE) {
        rc = TC_OK;
        tc__count(&c->wb_queued);
        if ((o->flags & TC_OPT_NO_L1) || !tc__l1_commit(c->l1, p, snap, e, TC__COMMIT_WRITE))
            tc__l1_invalidate(c->l1, h, key, klen, e->version);
    } else if (rc == TC_EFULL) {
        tc__count(&c->wb_rejected);
        tc__note(TC_EFULL, "write-behind: %u writes wait in the queue (write_behind_max_queue)",
                 c->cfg.write_behind_max_queue);
    } else { /* unknown outcome: drop ours; the message follows if Redis applied it */
        tc__l1_evict(c->l1, h, key, klen);
    }
    tc__l1_pending_end(c->l1, p);
    tc_ref_release(e);
    return rc;
}

int tc_set_behind(tc_cache_t *c, const void *key, size_t klen, const void *value, size_t vlen,
                  const tc_opts_t *opts) {
    c = tc__route(c, key, klen);
    int rc = tc__check_key(c, key, klen);
    if (rc == TC_OK)
        rc = tc__check_value(c, value, vlen);
    if (rc == TC_OK)
        rc = check_behind(c);
    tc__call_opts_t o;
    if (rc == TC_OK)
        rc = tc__opts_import(opts, tc__tags_ok(c), &o);
    if (rc != TC_OK)
        return rc;
    uint64_t t0 = tc__now_ns();
    rc = set_behind(c, key, klen, vlen ? value : "", vlen, &o);
    tc__cache_time(c, TC_LAT_SET, t0);
    return rc;
}

int tc_del_behind(tc_cache_t *c, const void *key, size_t klen) {
    c = tc__route(c, key, klen);
    int rc = tc__check_key(c, key, klen);
    if (rc == TC_OK)
        rc = check_behind(c);
    if (rc != TC_OK)
        return rc;
    uint64_t t0 = tc__now_ns(), version = 0;
    uint64_t h = tc__l1_hash(c->l1, key, klen);
    rc = tc__l2_del_queued(c->l2, key, klen, c->cfg.write_behind_max_queue, &version);
    if (rc == TC__L2_DONE) {
        rc = TC_OK;
        tc__count(&c->wb_queued);
        tc__l1_invalidate(c->l1, h, key, klen, version);
    } else if (rc == TC_EFULL) {
        tc__count(&c->wb_rejected);
    } else {
        tc__l1_evict(c->l1, h, key, klen);
    }
    tc__cache_time(c, TC_LAT_DEL, t0);
    return rc;
}

int tc_flush(tc_cache_t *c, uint32_t timeout_ms) {
    if (!c)
        return TC_EINVAL;
    if (c->ring)
        return tc__ring_flush(c, timeout_ms);
    if (tc__forked_since(c->fork_gen))
        return TC_EFORKED;
    if (!c->l2)
        return TC_OK;
    uint64_t deadline = tc__now_ns() + (uint64_t)timeout_ms * NS_PER_MS;
    for (;;) {
        uint64_t len = 0;
        int rc = tc__l2_wb_len(c->l2, &len);
        if (rc != TC_OK || len == 0)
            return rc;
        if (tc__now_ns() >= deadline)
            return tc__note(TC_ETIMEDOUT, "tc_flush: %llu writes still queued after %u ms",
                            (unsigned long long)len, (unsigned)timeout_ms);
        tc__behind_kick(c->behind);
        tc__sleep_ms(2);
    }
}

/* ---- dead letters ---- */

#define DEAD_PAGE 100u

long tc_dead_letters(tc_cache_t *c, size_t max, tc_dead_fn fn, void *arg) {
    if (!c || !fn)
        return TC_EINVAL;
    if (c->ring)
        return tc__ring_dead_letters(c, max, fn, arg);
    if (tc__forked_since(c->fork_gen))
        return TC_EFORKED;
    if (!c->l2)
        return 0;
    char after[48] = "";
    long given = 0;
    int stop = 0;
    while (!stop && (size_t)given < max) {
        tc__wb_entry_t *e = NULL;
        size_t n = 0;
        char *errors[DEAD_PAGE] = {0};
        size_t want = max - (size_t)given < DEAD_PAGE ? max - (size_t)given : DEAD_PAGE;
        int rc = tc__l2_wb_dead_range(c->l2, after, want, &e, &n, errors);
        if (rc != TC_OK)
            return rc;
        for (size_t i = 0; i < n; i++) {
            if (!stop && e[i].kind) {
                tc_write_t w = {.kind = e[i].kind,
                                .key = e[i].key,
                                .klen = e[i].klen,
                                .value = e[i].kind == TC_WRITE_SET ? e[i].value : NULL,
                                .vlen = e[i].vlen,
                                .version = e[i].version};
                given++;
                stop = fn(arg, &w, errors[i] ? errors[i] : "", e[i].attempts) != 0;
            }
            snprintf(after, sizeof after, "%s", e[i].id);
            free(errors[i]);
        }
        tc__l2_wb_entries_free(e, n);
        if (n < want)
            break;
    }
    return given;
}

long tc_dead_letters_replay(tc_cache_t *c) {
    if (!c)
        return TC_EINVAL;
    if (c->ring)
        return tc__ring_dead_letters_replay(c);
    if (tc__forked_since(c->fork_gen))
        return TC_EFORKED;
    if (!c->l2)
        return 0;
    long queued = 0;
    for (;;) {
        tc__wb_entry_t *e = NULL;
        size_t n = 0;
        int rc = tc__l2_wb_dead_range(c->l2, "", DEAD_PAGE, &e, &n, NULL);
        if (rc != TC_OK)
            return rc;
        long before = queued;
        for (size_t i = 0; i < n && rc == TC_OK; i++) {
            rc = e[i].kind ? tc__l2_wb_requeue(c->l2, &e[i]) : TC_OK;
            queued += rc == TC_OK && e[i].kind;
        }
        tc__l2_wb_entries_free(e, n);
        if (rc != TC_OK)
            return rc;
        if (n < DEAD_PAGE || queued == before) /* the rest is unreadable: left in place */
            break;
    }
    tc__behind_kick(c->behind);
    return queued;
}
