/*
 * l1.c - the in-process tier: a sharded, lock-striped cache bounded in bytes, and the
 * pending-fill records that keep it from ever re-inserting a superseded value.
 *
 * Layout
 * ------
 *   key --hash64--> h:  bits 32..(32+log2 shards) pick the shard,
 *                       the low bits pick the home slot, the top byte is the slot's tag,
 *   so the key is hashed once and shard and slot choices use disjoint bits.
 *
 *   shard (own cache line, own mutex)
 *     ix:      the entries (l1_index.c): an open-addressing table of tagged pointers, and
 *              the eviction queues through the entries' own links. A hit finds its entry in
 *              one slot line and one entry line and writes only that entry's reference
 *              count (and its CPU's counters); eviction asks the policy for its victim.
 *     pending: tc__pending_t records, one per key with a fill, write or tc_fetch load in
 *              flight, in a small table of their own (l1_inflight.c).
 *     bytes:   sum of the allocator's charge for every entry; the table's own array is
 *              added to it wherever the budget is checked, and the sum is never above the
 *              shard's share of l1_max_bytes (shares sum to the budget).
 *
 * Hits without the lock (l1_readers.h): a hit enters its shard as a reader, which excludes
 * the shard's writers as the mutex would, and changes nothing but the entry's reference
 * count and its CPU's counters. A hit that would change the shard takes the mutex instead:
 * one that sets the policy's mark (second chance: the first hit since the entry left the
 * young segment or lost its mark to the eviction scan; S3-FIFO: until its count is 3),
 * reclaims an expired entry, or slides an expiry (at most once a millisecond per entry).
 * Every section under the mutex that changes the table, the queues or an entry, or removes
 * one (commit, write, flush, sweep, fetch's lookup; invalidate, evict and heal once they
 * find something to remove) first waits for the shard's readers to leave and keeps new ones
 * out until it unlocks; sections that only touch pending records or read (the waits,
 * counters, hot keys) let readers in. So every
 * hit, locked or not, happens wholly before or wholly after each change of its shard, and
 * the rules below hold for it as they did when every hit took the lock.
 *
 * Lock order: a shard mutex is a leaf. No other lock is taken while holding it, and it is
 * never held across a network call or a user callback. Nothing ever holds two shards. A
 * writer waiting for readers waits for lookups already under way, which hold nothing.
 *
 * Why no stale value outlives an invalidation (the safety argument)
 * -----------------------------------------------------------------
 * Every value in Redis carries a version from one Redis counter, assigned inside the
 * script that also publishes the invalidation (l2.c), so versions totally order writes
 * and every invalidation message says "everything older than v is dead".
 *
 * 1. Fill racing an invalidation. A thread that will read L2 (or write it, or load) first
 *    registers a pending record for the key and takes a snapshot of its invalidation count.
 *    The listener's tc__l1_invalidate(key, v) evicts an older entry (and a read one of
 *    any other version, below) and records v in the pending record (max_inval). The
 *    commit, under the same shard lock, refuses a value whose version is below max_inval;
 *    a value read from Redis after an invalidation arrived since the snapshot must be
 *    exactly max_inval (the announced write's value: a newer one will be announced in turn
 *    and taken on the next read, and one no write announces is a forged version, read
 *    before the write that replaced it); an unversioned value (loader result not stored in
 *    Redis) is refused if any invalidation arrived since its snapshot. Either the message
 *    is applied before the commit (the commit sees it) or after (it evicts the entry):
 *    both orders end without the stale value.
 * 2. Concurrent writers, in one process or several. Each local write commits its value
 *    with its Redis version and refuses to replace an entry with a newer version, and every
 *    process applies every message with version comparison, its own included. Whatever the
 *    interleaving, once the last write's message is applied each L1 holds either the last
 *    version or nothing. In L1-only mode a write takes its version from its shard's counter
 *    and commits in one hold of the shard lock (tc__l1_write_local), so the lock's order is
 *    the versions' order; it needs no pending record of its own, and marks the record of a
 *    fill or load of the key in flight, as any write does. A replaced entry is freed after
 *    the lock is released; an entry nobody else holds is rewritten in place instead
 *    (rewrite_locked), which is the same change seen by no one.
 * 3. Lost messages. The listener flushes L1 when its connection fails (error or PING
 *    watchdog) and again when it has re-subscribed, and while it is not subscribed
 *    (trusted == 0) values read from Redis are not kept. A flush "poisons" every pending
 *    record: a fill that started before the flush can never commit.
 * 4. Entries no message is sure to reach. Two kinds of entry would miss the next change of
 *    their key: a *local* entry (version 0: a value this process wrote or loaded while
 *    Redis refused it, so Redis and every other process hold something else), and any
 *    entry committed while L1 is untrusted (the listener is not subscribed, so the next
 *    write's message is lost). Both live at most local_ttl_ms (the cache sets it to the
 *    watchdog bound) from their commit, whatever their TTL. Local entries are also dropped
 *    as soon as Redis answers again (tc__l1_heal, called by the tier that saw it heal),
 *    and a heal poisons every pending record like a flush, so a local commit whose
 *    operation began before the heal cannot land after its sweep. Each shard counts its
 *    local entries, so a heal with nothing local costs one lock per shard.
 * 5. Joined loads. A tc_fetch that waits for another thread's load takes its result only
 *    if no invalidation reached the key between the load's start (lead_snap) and the
 *    waiter's arrival: otherwise the waiter may have started after a write the load
 *    predates, and it tries again. Invalidations that arrive after the waiter are
 *    concurrent with it (bounded by one message delay, like any read).
 *
 * Versions: whoever holds the credentials can store a value with any version. Entries
 * read from Redis (TC__ENTRY_READ) therefore yield to every message but their own
 * version's (a read entry newer than a message exists only while the listener lags, and
 * costs one miss); entries whose version this process's own script assigned (its writes,
 * its stored loads) yield only to newer versions, so a write followed by reads keeps
 * hitting. A write's own commit replaces an entry unless it is believably newer
 * (tc__version_superseded: ~72 minutes ahead is not), and a write whose commit is refused
 * evicts what is there. So a forged or corrupt version never pins an entry: the next write
 * of the key, from any process, removes it.
 */
#include "l1.h"

#include "alloc.h"
#include "clock.h"
#include "hash.h"
#include "l1_index.h"
#include "l1_inflight.h"
#include "l1_readers.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* What a write of a resident key writes shares the first cache line (on x86-64 glibc,
 * whose mutex is 40 bytes): the lock, the readers' flag, the byte count and the L1-only
 * version counter. Spread over three lines as they were, a write whose shard another thread
 * wrote last moved three lines between cores instead of one. A lock-free hit only reads this
 * line (the flag) and the next (the index's table and mask, l1_index.h); it counts itself in
 * its CPU's counters (l1_readers.h). */
typedef struct tc__shard {
    pthread_mutex_t lock;
    atomic_int excl; /* readers excluded: a writer holds the shard (l1_readers.h) */
    size_t bytes;    /* the entries' charges; the table's is added on demand */
    atomic_uint_fast64_t next_version; /* L1-only mode's versions (tc__l1_next_version) */
    tc__l1_index_t ix;                 /* the entries: table + eviction queues (l1_index.c) */
    tc__l1_inflight_t pending;         /* the records of keys in flight (l1_inflight.c) */
    size_t budget, max_count;
    size_t local_count; /* entries with version 0 (rule 4) */
    /* Counted under the lock; lock-free hits and misses are the readers' (l1_readers.h). */
    uint64_t hits, misses, evictions, expirations, rejected, waits;
} __attribute__((aligned(64))) tc__shard_t;

struct tc__l1 {
    tc__shard_t *shards;
    tc__l1_readers_t readers; /* lock-free hits (l1_readers.h) */
    unsigned mask;
    size_t max_value_bytes;
    uint64_t seed;
    uint64_t local_ttl_ms;
    atomic_int trusted;
    atomic_uint_fast64_t flushes, heals;
};

/* ---- helpers (all *_locked run with s->lock held) ---- */

/* A shard's mutex orders its writers and everything about keys in flight; a section that
 * changes the table, the queues, an entry's policy byte or expiry, or removes an entry,
 * also excludes lock-free readers (shard_exclude after shard_lock). shard_unlock ends
 * either kind. */
static void shard_lock(tc__shard_t *s) {
    pthread_mutex_lock(&s->lock);
}

static void shard_exclude(tc__l1_t *l1, tc__shard_t *s) {
    tc__l1_readers_exclude(&l1->readers, (unsigned)(s - l1->shards), &s->excl, &s->hits);
}

static void shard_lock_excl(tc__l1_t *l1, tc__shard_t *s) {
    shard_lock(s);
    shard_exclude(l1, s);
}

static void shard_unlock(tc__shard_t *s) {
    tc__l1_readers_admit(&s->excl);
    pthread_mutex_unlock(&s->lock);
}

static tc__shard_t *shard_of(const tc__l1_t *l1, uint64_t h) {
    return &l1->shards[(uint32_t)(h >> 32) & l1->mask];
}

static size_t table_charge_locked(const tc__shard_t *s) {
    return tc__l1_index_charge(&s->ix);
}

/* Start fetching key's slot while we go for the lock: on a cold key it is the first of the
 * hit's cache misses, and a miss taken inside the lock is paid by every thread waiting on
 * it. */
static void prefetch_slot(const tc__shard_t *s, uint64_t h) {
    tc__l1_index_prefetch(&s->ix, h);
}

static void entry_unref(tc_ref_t *e) {
    tc_ref_release(e);
}

/* Byte and local-entry accounting: what an entry adds when it is indexed (count_in) it
 * takes back, exactly, when it leaves (count_out). */
static void count_in_locked(tc__shard_t *s, const tc_ref_t *e) {
    s->bytes += tc__entry_charge(e);
    if (e->version == 0)
        s->local_count++;
}

static void count_out_locked(tc__shard_t *s, const tc_ref_t *e) {
    assert(s->bytes >= tc__entry_charge(e));
    assert(e->version != 0 || s->local_count > 0);
    s->bytes -= tc__entry_charge(e);
    if (e->version == 0)
        s->local_count--;
}

/* Unlink e from the table; L1's reference passes to the caller, who drops it once the lock
 * is released (freeing a value is no work for the lock's critical section). */
static void detach_locked(tc__shard_t *s, tc_ref_t *e) {
    assert(s->ix.count > 0);
    assert(atomic_load_explicit(&e->refs, memory_order_relaxed) >= 1);
    tc__l1_index_remove(&s->ix, e);
    count_out_locked(s, e);
    assert(s->ix.count > 0 || s->local_count == 0);
}

/* Unlink e from the table and drop L1's reference. */
static void remove_locked(tc__shard_t *s, tc_ref_t *e) {
    detach_locked(s, e);
    entry_unref(e);
}

static size_t shard_used_locked(const tc__shard_t *s) {
    return s->bytes + table_charge_locked(s);
}

/* Evict the policy's victims until the shard is within budget; `keep` is never evicted. */
static void evict_locked(tc__shard_t *s, tc_ref_t *keep, uint64_t now) {
    while (shard_used_locked(s) > s->budget || (s->max_count && s->ix.count > s->max_count)) {
        tc_ref_t *victim = tc__l1_index_victim(&s->ix, keep);
        if (!victim)
            break;
        if (tc__entry_expiry(victim) <= now)
            s->expirations++;
        else
            s->evictions++;
        remove_locked(s, victim);
    }
}

static tc__pending_t *pending_find_locked(tc__shard_t *s, uint64_t h, const void *key,
                                          size_t klen) {
    return tc__l1_inflight_find(&s->pending, h, key, klen);
}

static tc__pending_t *pending_get_locked(tc__shard_t *s, uint64_t h, const void *key,
                                         size_t klen) {
    return tc__l1_inflight_get(&s->pending, h, key, klen);
}

static void pending_maybe_free_locked(tc__shard_t *s, tc__pending_t *p) {
    if (p->users || p->waiters || p->leading)
        return;
    tc__l1_inflight_release(&s->pending, p);
}

static void pending_poison_locked(tc__pending_t *p) {
    p->inval_seq++;
    p->poison_seq = p->inval_seq;
    pthread_cond_broadcast(&p->done); /* a lock waiter must look at Redis again */
}

static void pending_poison_all_locked(tc__shard_t *s) {
    for (tc__pending_t *p = tc__l1_inflight_first(&s->pending); p;
         p = tc__l1_inflight_next(&s->pending, p))
        pending_poison_locked(p);
}

/* ---- lifecycle ---- */

int tc__l1_open(const tc__l1_opts_t *opts, tc__l1_t **out) {
    *out = NULL;
    unsigned n = opts->shards ? opts->shards : 1;
    if (n & (n - 1))
        return TC_EINVAL;
    tc__l1_t *l1 = calloc(1, sizeof *l1);
    if (!l1)
        return TC_ENOMEM;
    if (posix_memalign((void **)&l1->shards, 64, n * sizeof(tc__shard_t)) != 0) {
        free(l1);
        return TC_ENOMEM;
    }
    memset(l1->shards, 0, n * sizeof(tc__shard_t));
    l1->mask = n - 1;
    l1->seed = opts->seed;
    if (tc__l1_readers_init(&l1->readers, n) != TC_OK) {
        free(l1->shards);
        free(l1);
        return TC_ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        tc__l1_index_init(&l1->shards[i].ix, opts->seed, opts->policy);
        atomic_init(&l1->shards[i].excl, 0);
    }
    l1->max_value_bytes = opts->max_value_bytes;
    l1->local_ttl_ms = opts->local_ttl_ms;
    atomic_init(&l1->trusted, 1);
    atomic_init(&l1->flushes, 0);
    atomic_init(&l1->heals, 0);
    /* Adaptive: a shard lock is held for a lookup and a few pointer writes, but that can
     * include a DRAM miss (~170 ns); a thread that finds it taken should spin that long,
     * not sleep in the kernel (a futex round trip costs microseconds: the profile of two
     * threads on a Zipf workload spent most of its excess there). */
    pthread_mutexattr_t spin_then_sleep;
    pthread_mutexattr_init(&spin_then_sleep);
    pthread_mutexattr_settype(&spin_then_sleep, PTHREAD_MUTEX_ADAPTIVE_NP);
    for (unsigned i = 0; i < n; i++) {
        tc__shard_t *s = &l1->shards[i];
        pthread_mutex_init(&s->lock, &spin_then_sleep);
        /* Shares of the budget sum exactly to the configured totals. */
        s->budget = opts->max_bytes / n + (i < opts->max_bytes % n ? 1 : 0);
        if (opts->max_entries) {
            s->max_count = opts->max_entries / n + (i < opts->max_entries % n ? 1 : 0);
            if (!s->max_count) /* fewer entries than shards: this shard keeps nothing */
                s->budget = 0;
        }
    }
    pthread_mutexattr_destroy(&spin_then_sleep);
    *out = l1;
    return TC_OK;
}

void tc__l1_close(tc__l1_t *l1) {
    if (!l1)
        return;
    for (unsigned i = 0; i <= l1->mask; i++) {
        tc__shard_t *s = &l1->shards[i];
        for (tc_ref_t *e; (e = tc__l1_index_first(&s->ix)) != NULL;)
            remove_locked(s, e);
        assert(s->ix.count == 0 && s->local_count == 0 && s->bytes == 0);
        tc__l1_index_deinit(&s->ix);
        for (tc__pending_t *p = tc__l1_inflight_first(&s->pending), *next; p; p = next) {
            next = tc__l1_inflight_next(&s->pending, p); /* none remain once calls return */
            p->users = p->waiters = 0;
            p->leading = 0;
            pending_maybe_free_locked(s, p);
        }
        tc__l1_inflight_deinit(&s->pending);
        pthread_mutex_destroy(&s->lock);
    }
    tc__l1_readers_deinit(&l1->readers);
    free(l1->shards);
    free(l1);
}

uint64_t tc__l1_hash(const tc__l1_t *l1, const void *key, size_t klen) {
    return tc__hash64(key, klen, l1->seed);
}

/* ---- the hit path ---- */

/* Sliding expiration: a hit moves the entry's fresh, stale and hard ends forward by the time
 * since it was last stored or extended, never past its cap. Entries without a cap (every
 * plain entry) are untouched. */
static uint64_t slide_target(const tc__entry_ext_t *x, uint64_t now) {
    return now + x->ttl_ms < x->slide_cap_ms ? now + x->ttl_ms : x->slide_cap_ms;
}

/* Whether a hit at now would move e's ends (a lock-free hit must not: it takes the lock).
 * At most once per millisecond for an entry that is hit continuously. */
static int slide_due(const tc_ref_t *e, uint64_t now) {
    const tc__entry_ext_t *x = tc__entry_ext(e);
    return x && x->slide_cap_ms &&
           slide_target(x, now) >
               atomic_load_explicit(&x->fresh_until_ms, memory_order_relaxed);
}

static void slide_locked(tc_ref_t *e, uint64_t now) {
    if (!slide_due(e, now))
        return;
    tc__entry_ext_t *x = tc__entry_ext(e);
    uint64_t fresh = atomic_load_explicit(&x->fresh_until_ms, memory_order_relaxed);
    uint64_t target = slide_target(x, now);
    uint64_t delta = target - fresh;
    uint64_t stale = atomic_load_explicit(&x->stale_until_ms, memory_order_relaxed);
    atomic_store_explicit(&x->fresh_until_ms, target, memory_order_relaxed);
    atomic_store_explicit(&x->stale_until_ms, stale + delta, memory_order_relaxed);
    /* bounded: delta never moves fresh past the cap */
    tc__entry_set_expiry(e, tc__entry_expiry(e) + delta);
}

/* Find a live entry; an expired one is reclaimed on the spot. Counts the hit or miss. */
static tc_ref_t *lookup_locked(tc__shard_t *s, uint64_t h, const void *key, size_t klen,
                               uint64_t now) {
    tc_ref_t *e = tc__l1_index_find(&s->ix, h, key, klen);
    if (e && tc__entry_expiry(e) <= now) {
        s->expirations++;
        remove_locked(s, e);
        e = NULL;
    }
    if (!e) {
        s->misses++;
        return NULL;
    }
    s->hits++;
    tc__l1_index_touch(&s->ix, e);
    slide_locked(e, now);
    tc__entry_pin(e);
    return e;
}

/* What a lock-free lookup found (read_unlocked). */
typedef enum tc__read {
    TC__READ_HIT,    /* a live entry, pinned, whose hit writes nothing of the shard's */
    TC__READ_MISS,   /* no entry for the key */
    TC__READ_LOCKED, /* the locked lookup must answer: a writer holds the shard, or the
                        entry expired, slides, or wants its policy mark */
} tc__read_t;

/* A lookup inside the shard as a reader (l1_readers.h): it writes only the entry's pin
 * and this CPU's counters. Whatever would change the shard is left to lookup_locked. A
 * miss is counted only if count_miss (a fetch's miss goes on to the locked lookup, which
 * counts it). */
static tc__read_t read_unlocked(tc__l1_t *l1, tc__shard_t *s, uint64_t h, const void *key,
                                size_t klen, uint64_t now, int count_miss, tc_ref_t **ref) {
    unsigned cpu = tc__l1_readers_cpu();
    _Atomic tc__l1_word_t *word =
        tc__l1_readers_word(&l1->readers, cpu, (unsigned)(s - l1->shards));
    if (!tc__l1_read_enter(word, &s->excl))
        return TC__READ_LOCKED;
    tc__read_t how = TC__READ_LOCKED;
    tc_ref_t *e = tc__l1_index_find(&s->ix, h, key, klen);
    if (!e) {
        how = TC__READ_MISS;
    } else if (tc__entry_expiry(e) > now && !tc__l1_index_touch_writes(&s->ix, e) &&
               !slide_due(e, now)) {
        tc__entry_pin(e);
        how = TC__READ_HIT;
    }
    tc__l1_read_leave(word, how == TC__READ_HIT); /* counts the hit */
    if (how == TC__READ_MISS && count_miss)
        tc__l1_readers_count_miss(&l1->readers, cpu);
    *ref = how == TC__READ_HIT ? e : NULL;
    return how;
}

int tc__l1_get(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, tc_ref_t **ref) {
    tc__shard_t *s = shard_of(l1, h);
    prefetch_slot(s, h);
    uint64_t now = tc__now_ms();
    tc_ref_t *e = NULL;
    tc__read_t how = read_unlocked(l1, s, h, key, klen, now, 1, &e);
    if (how == TC__READ_LOCKED) {
        shard_lock_excl(l1, s);
        e = lookup_locked(s, h, key, klen, now);
        shard_unlock(s);
    }
    *ref = e;
    return e ? TC_OK : TC_ENOTFOUND;
}

/* ---- pending records ---- */

tc__pending_t *tc__l1_pending_begin(tc__l1_t *l1, uint64_t h, const void *key, size_t klen,
                                    uint64_t *snap) {
    tc__shard_t *s = shard_of(l1, h);
    shard_lock(s);
    tc__pending_t *p = pending_get_locked(s, h, key, klen);
    if (p) {
        p->users++;
        *snap = p->inval_seq;
    }
    shard_unlock(s);
    return p;
}

void tc__l1_pending_end(tc__l1_t *l1, tc__pending_t *p) {
    tc__shard_t *s = shard_of(l1, p->h);
    shard_lock(s);
    assert(p->users > 0); /* every begin has its one end */
    p->users--;
    pending_maybe_free_locked(s, p);
    shard_unlock(s);
}

int tc__l1_pending_invalidated(tc__l1_t *l1, tc__pending_t *p, uint64_t snap) {
    tc__shard_t *s = shard_of(l1, p->h);
    shard_lock(s);
    int r = p->inval_seq != snap;
    shard_unlock(s);
    return r;
}

/* Whether e may become the key's L1 value (rule 1 of the safety argument). */
static int commit_allowed_locked(const tc__pending_t *p, uint64_t snap, const tc_ref_t *e,
                                 unsigned flags, int trusted) {
    if ((flags & TC__COMMIT_FROM_L2) && !trusted)
        return 0;
    if (snap < p->poison_seq) /* a flush or heal happened meanwhile */
        return 0;
    if (flags & TC__COMMIT_FORCE)
        return 1;
    if (e->version == 0 && !(flags & TC__COMMIT_WRITE))
        return p->inval_seq == snap;
    if (p->inval_seq != snap && (flags & TC__COMMIT_FROM_L2)) /* rule 1: a read value */
        return e->version == p->max_inval;
    return p->max_inval <= e->version;
}

/* Rule 4: an entry no invalidation is sure to reach lives at most local_ttl_ms. The
 * caller still owns e alone, so its expiry may change. */
static void cap_unheard_life(const tc__l1_t *l1, tc_ref_t *e, int trusted, uint64_t now) {
    if (!l1->local_ttl_ms || (e->version != 0 && trusted))
        return;
    uint64_t cap = now + l1->local_ttl_ms;
    if (tc__entry_expiry(e) > cap)
        tc__entry_set_expiry(e, cap);
}

/* Whether e could be kept if every other entry were evicted. The table never shrinks
 * while it holds entries, so the charge it will have once e is added stays whatever we
 * evict: deciding up front keeps an unkeepable value from evicting others for nothing. */
static int fits_beside_locked(const tc__l1_t *l1, const tc__shard_t *s, const tc_ref_t *e,
                              size_t table_charge) {
    if (tc__entry_vlen(e) > l1->max_value_bytes || s->budget == 0)
        return 0;
    return tc__entry_charge(e) + table_charge <= s->budget;
}

static int fits_locked(const tc__l1_t *l1, const tc__shard_t *s, const tc_ref_t *e) {
    return fits_beside_locked(l1, s, e, tc__l1_index_charge_after_add(&s->ix));
}

/* A new value of a resident key takes the old entry's slot and its place in the eviction
 * queue (tc__l1_index_replace): nothing is probed or shifted, and the queue's newest end,
 * which every insert into the shard writes, is left alone. Returns 0, with nothing
 * changed, when e could not be kept even alone beside the table, or not indexed (the
 * caller's general path then removes old and decides). L1's reference to old passes to
 * the caller. */
static int replace_locked(const tc__l1_t *l1, tc__shard_t *s, uint64_t h, tc_ref_t *old,
                          tc_ref_t *e, uint64_t now) {
    if (!fits_beside_locked(l1, s, e, table_charge_locked(s)) || /* the table stays */
        tc__l1_index_replace(&s->ix, h, old, e) != TC__IX_ADDED)
        return 0;
    tc__entry_pin(e);
    count_out_locked(s, old);
    count_in_locked(s, e);
    evict_locked(s, e, now); /* e may be bigger than old */
    return 1;
}

/* A write of a resident key whose entry nobody else holds rewrites that entry in place:
 * the new value, version, expiry and freshness block are copied over the old ones, and
 * the entry keeps its slot, its place in the eviction queue and its marks (a new value is
 * a hit, as in tc__l1_index_replace). Replacing it would write the slot and the two queue
 * neighbours' links besides: for a key of the cold tail, two more cache misses inside the
 * lock, and for a hot key two more lines taken from whichever core wrote it last
 * (tiercache-bench micro's set row ran about 1.7 times as fast, at one thread and at two,
 * rewriting in place). Only when nobody else can see the change:
 *   - refs is 1, L1's own reference. Under the shard lock with readers excluded no
 *     reference can be taken, and the acquire load orders every earlier holder's reads
 *     before our writes (their release is an acq_rel decrement);
 *   - e needs exactly old's bytes, so the allocation, its charge and the sized free that
 *     ends it (jemalloc's sdallocx wants at least the size first asked for) stay valid. A
 *     value of another length, even of the same size class, gets a new entry.
 * Returns 1 when old now holds e's value (the caller still drops e), 0 with nothing
 * changed. */
static int rewrite_locked(const tc__l1_t *l1, tc__shard_t *s, tc_ref_t *old,
                          const tc_ref_t *e) {
    size_t klen = tc__entry_klen(e), size = tc__entry_size(e);
    if (atomic_load_explicit(&old->refs, memory_order_acquire) != 1 ||
        size != tc__entry_size(old) || tc__entry_vlen(e) > l1->max_value_bytes)
        return 0;
    /* The charge stays (so the shard's bytes do); only the local count may change. */
    if (old->version == 0)
        s->local_count--;
    memcpy(old->data + klen, e->data + klen, size - TC__ENTRY_HEAD - klen);
    old->version = e->version;
    old->vlen_bits = e->vlen_bits;
    tc__entry_set_expiry(old, tc__entry_expiry(e));
    if (old->version == 0)
        s->local_count++;
    tc__l1_index_touch(&s->ix, old);
    return 1;
}

/* A write supersedes the fills of its key in flight (p may be NULL: none). */
static void note_write_locked(tc__pending_t *p, const tc_ref_t *e) {
    if (!p)
        return;
    p->inval_seq++;
    if (e->version > p->max_inval)
        p->max_inval = e->version;
}

/* How a commit may keep its value. A commit's caller may hand e out, or ask later whether
 * L1 still holds it (tc__l1_holds), so only an L1-only write, whose caller drops e at
 * once, lets the old entry be rewritten with e's value instead (rewrite_locked). */
typedef enum install_how {
    INSTALL_ENTRY,      /* e itself becomes the key's entry */
    INSTALL_OR_REWRITE, /* ... or an old entry nobody else holds takes e's value */
} install_how_t;

/* Make e the key's entry (or, as `how` allows, its value the old entry's) if allowed and
 * not older than what is there (the end of a commit). Returns 1 when the value was
 * kept. */
static int install_locked(tc__l1_t *l1, tc__shard_t *s, uint64_t h, tc_ref_t *e, int allowed,
                          unsigned flags, int trusted, uint64_t now, tc_ref_t **replaced,
                          install_how_t how);

int tc__l1_commit(tc__l1_t *l1, tc__pending_t *p, uint64_t snap, tc_ref_t *e, unsigned flags) {
    uint64_t h = p->h;
    uint64_t now = tc__now_ms();
    tc__shard_t *s = shard_of(l1, h);

    shard_lock_excl(l1, s);
    int trusted = atomic_load(&l1->trusted);
    int allowed;
    if (flags & TC__COMMIT_LOCAL_LOAD) { /* versioned after every write the lock ordered */
        e->version = tc__l1_next_version(l1, h);
        allowed = p->inval_seq == snap && snap >= p->poison_seq;
    } else {
        allowed = commit_allowed_locked(p, snap, e, flags, trusted);
    }
    if (flags & TC__COMMIT_WRITE) /* our write supersedes older fills in flight */
        note_write_locked(p, e);
    if (allowed && (flags & TC__COMMIT_FORCE))
        pending_poison_locked(p); /* fills that began before a local write are older */
    tc_ref_t *replaced = NULL;
    int inserted =
        install_locked(l1, s, h, e, allowed, flags, trusted, now, &replaced, INSTALL_ENTRY);
    shard_unlock(s);
    if (replaced)
        entry_unref(replaced);
    return inserted;
}

int tc__l1_write_local(tc__l1_t *l1, uint64_t h, tc_ref_t *e) {
    uint64_t now = tc__now_ms();
    tc__shard_t *s = shard_of(l1, h);

    shard_lock_excl(l1, s);
    /* Taken under the lock, so versions order the shard's writes as the lock does: a
     * delete whose version came first is older, whenever its invalidation lands. */
    e->version = tc__l1_next_version(l1, h);
    tc__pending_t *p = pending_find_locked(s, h, tc__entry_key(e), tc__entry_klen(e));
    int allowed = !p || p->max_inval <= e->version; /* no snapshot: only a newer version */
    note_write_locked(p, e);
    tc_ref_t *replaced = NULL;
    int inserted =
        install_locked(l1, s, h, e, allowed, TC__COMMIT_WRITE, atomic_load(&l1->trusted), now,
                       &replaced, INSTALL_OR_REWRITE);
    shard_unlock(s);
    if (replaced)
        entry_unref(replaced);
    return inserted;
}

static int install_locked(tc__l1_t *l1, tc__shard_t *s, uint64_t h, tc_ref_t *e, int allowed,
                          unsigned flags, int trusted, uint64_t now, tc_ref_t **replaced,
                          install_how_t how) {
    size_t klen = tc__entry_klen(e);
    int inserted = 0;
    tc_ref_t *old = tc__l1_index_find(&s->ix, h, tc__entry_key(e), klen);
    if (allowed && old && !(flags & TC__COMMIT_FORCE) && old->version != 0 &&
        !tc__version_superseded(old->version, e->version))
        allowed = 0; /* L1 already holds this write or a newer one */
    if (!allowed) {
        s->rejected++;
    } else {
        cap_unheard_life(l1, e, trusted, now);
        if (old && how == INSTALL_OR_REWRITE && rewrite_locked(l1, s, old, e))
            return 1;
        if (old && replace_locked(l1, s, h, old, e, now)) {
            *replaced = old;
            return 1;
        }
        int prior = TC__L1_NO_PRIOR; /* a new value of a resident key keeps its standing */
        if (old) {
            prior = old->lru;
            detach_locked(s, old);
            *replaced = old;
        }
        if (fits_locked(l1, s, e)) {
            tc__entry_pin(e);
            if (tc__l1_index_add(&s->ix, h, e, prior) == TC__IX_ADDED) {
                count_in_locked(s, e);
                /* fits_locked foresaw the table's growth, but not a doubling forced by a
                 * long probe run: check again before evicting anyone for e, and if e
                 * cannot stay, bring the others back within the budget without it. */
                if (tc__entry_charge(e) + table_charge_locked(s) > s->budget) {
                    remove_locked(s, e);
                    evict_locked(s, NULL, now);
                } else {
                    evict_locked(s, e, now);
                    inserted = 1;
                }
            } else {
                entry_unref(e); /* not indexable (no memory): serve it, do not keep it */
            }
        }
    }
    return inserted;
}

/* ---- single-flight ---- */

/* Wait on p->done until the leader's load completes or the deadline (0: none) passes.
 * Returns 1 when it completed. */
static int wait_result_locked(tc__shard_t *s, tc__pending_t *p, uint64_t seen,
                              uint64_t deadline_ns) {
    struct timespec ts;
    if (deadline_ns)
        ts = tc__timespec_ns(deadline_ns);
    int timed_out = 0;
    while (p->results == seen && !timed_out) {
        if (deadline_ns)
            timed_out = pthread_cond_timedwait(&p->done, &s->lock, &ts) == ETIMEDOUT;
        else
            pthread_cond_wait(&p->done, &s->lock);
    }
    return p->results != seen;
}

static void lead_locked(tc__pending_t *p, tc__fetch_t *f) {
    p->leading = 1;
    p->users++;
    p->lead_snap = p->inval_seq;
    f->snap = p->inval_seq;
    f->p = p;
}

int tc__l1_fetch_begin(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, tc__fetch_t *f) {
    tc__shard_t *s = shard_of(l1, h);
    if (f->lookup)
        prefetch_slot(s, h);
    f->ref = NULL;
    f->p = NULL;
    if (f->lookup &&
        read_unlocked(l1, s, h, key, klen, tc__now_ms(), 0, &f->ref) == TC__READ_HIT)
        return TC__FETCH_HIT;
    uint64_t deadline_ns = 0;
    shard_lock(s);
    for (;;) {
        if (f->lookup)
            shard_exclude(l1, s); /* the lookup may reclaim an expired entry or mark one */
        tc_ref_t *e = f->lookup ? lookup_locked(s, h, key, klen, tc__now_ms()) : NULL;
        if (e) {
            shard_unlock(s);
            f->ref = e;
            return TC__FETCH_HIT;
        }
        tc__pending_t *p = pending_get_locked(s, h, key, klen);
        if (!p) {
            shard_unlock(s);
            return TC_ENOMEM;
        }
        if (!p->leading) {
            lead_locked(p, f);
            shard_unlock(s);
            return TC__FETCH_LEAD;
        }
        uint64_t joined = p->inval_seq;
        p->waiters++;
        s->waits++;
        if (f->wait_ms && !deadline_ns)
            deadline_ns = tc__now_ns() + (uint64_t)f->wait_ms * 1000000u;
        tc__l1_readers_admit(&s->excl); /* the wait and what follows change no entry */
        int done = wait_result_locked(s, p, p->results, deadline_ns);
        /* Rule 5: a load that an invalidation overtook before we arrived is not ours. */
        int usable = done && !p->result_private && p->result_snap == joined;
        if (usable) {
            f->status = p->result_status;
            if (p->result_status == TC_OK && p->result) {
                tc__entry_pin(p->result);
                f->ref = p->result;
            }
        }
        assert(p->waiters > 0);
        p->waiters--;
        pending_maybe_free_locked(s, p);
        if (usable || !done) {
            shard_unlock(s);
            return usable ? TC__FETCH_SHARED : TC__FETCH_TIMEDOUT;
        }
    }
}

void tc__l1_fetch_finish(tc__l1_t *l1, tc__pending_t *p, int status, tc_ref_t *value,
                         int visibility) {
    tc__shard_t *s = shard_of(l1, p->h);
    shard_lock(s);
    tc_ref_t *previous = p->result;
    p->result = NULL;
    if (status == TC_OK && value) {
        tc__entry_pin(value);
        p->result = value;
    }
    p->result_status = status;
    p->result_snap = p->lead_snap;
    p->result_private = visibility == TC__FINISH_PRIVATE;
    p->results++;
    p->leading = 0;
    assert(p->users > 0); /* every begin has its one end */
    p->users--;
    pthread_cond_broadcast(&p->done);
    pending_maybe_free_locked(s, p);
    shard_unlock(s);
    tc_ref_release(previous);
}

tc__pending_t *tc__l1_try_lead(tc__l1_t *l1, uint64_t h, const void *key, size_t klen,
                               uint64_t *snap) {
    tc__shard_t *s = shard_of(l1, h);
    shard_lock(s);
    tc__pending_t *p = pending_get_locked(s, h, key, klen);
    if (p && p->leading) {
        p = NULL; /* a load is in flight: it will refresh the key */
    } else if (p) {
        tc__fetch_t f;
        lead_locked(p, &f);
        *snap = f.snap;
    }
    shard_unlock(s);
    return p;
}

uint64_t tc__l1_pending_seq(tc__l1_t *l1, tc__pending_t *p) {
    tc__shard_t *s = shard_of(l1, p->h);
    shard_lock(s);
    uint64_t seq = p->inval_seq;
    shard_unlock(s);
    return seq;
}

uint64_t tc__l1_fetch_results(tc__l1_t *l1, tc__pending_t *p) {
    tc__shard_t *s = shard_of(l1, p->h);
    shard_lock(s);
    uint64_t r = p->results;
    p->waiters++; /* keeps p alive until tc__l1_fetch_await */
    shard_unlock(s);
    return r;
}

int tc__l1_fetch_await(tc__l1_t *l1, tc__pending_t *p, uint64_t seen, uint64_t deadline_ns,
                       int *status, tc_ref_t **ref) {
    tc__shard_t *s = shard_of(l1, p->h);
    *ref = NULL;
    shard_lock(s);
    int done = wait_result_locked(s, p, seen, deadline_ns);
    if (done) {
        *status = p->result_status;
        if (p->result_status == TC_OK && p->result) {
            tc__entry_pin(p->result);
            *ref = p->result;
        }
    }
    assert(p->waiters > 0);
    p->waiters--;
    pending_maybe_free_locked(s, p);
    shard_unlock(s);
    return done;
}

int tc__l1_wait_inval(tc__l1_t *l1, tc__pending_t *p, uint64_t snap, uint64_t deadline_ns) {
    tc__shard_t *s = shard_of(l1, p->h);
    struct timespec ts;
    ts = tc__timespec_ns(deadline_ns);
    shard_lock(s);
    int timed_out = 0;
    while (p->inval_seq == snap && !timed_out)
        timed_out = pthread_cond_timedwait(&p->done, &s->lock, &ts) == ETIMEDOUT;
    int woken = p->inval_seq != snap;
    shard_unlock(s);
    return woken;
}

/* ---- invalidation ---- */

/* Does a message at `version` end e? An entry from this process's own script yields to
 * newer versions only; one read from Redis yields to every other version (its version may
 * be forged: see the essay). */
static int stale_for(const tc_ref_t *e, uint64_t version) {
    if (e->vlen_bits & TC__ENTRY_READ)
        return e->version != version;
    return e->version < version;
}

int tc__l1_invalidate(tc__l1_t *l1, uint64_t h, const void *key, size_t klen,
                      uint64_t version) {
    tc__shard_t *s = shard_of(l1, h);
    int applied = 0;
    shard_lock(s);
    tc_ref_t *e = tc__l1_index_find(&s->ix, h, key, klen); /* readers change nothing */
    if (e && version && stale_for(e, version)) {
        shard_exclude(l1, s); /* most messages name keys this L1 does not hold */
        remove_locked(s, e);
        applied = 1;
    }
    tc__pending_t *p = pending_find_locked(s, h, key, klen);
    if (p) {
        p->inval_seq++;
        if (version > p->max_inval)
            p->max_inval = version;
        applied = 1;
        pthread_cond_broadcast(&p->done); /* a cross-process lock waiter may be waiting */
    }
    shard_unlock(s);
    return applied;
}

void tc__l1_evict(tc__l1_t *l1, uint64_t h, const void *key, size_t klen) {
    tc__shard_t *s = shard_of(l1, h);
    shard_lock(s);
    tc_ref_t *e = tc__l1_index_find(&s->ix, h, key, klen);
    if (e) {
        shard_exclude(l1, s);
        remove_locked(s, e);
    }
    tc__pending_t *p = pending_find_locked(s, h, key, klen);
    if (p)
        pending_poison_locked(p);
    shard_unlock(s);
}

int tc__l1_holds(tc__l1_t *l1, uint64_t h, const void *key, size_t klen, const tc_ref_t *e) {
    tc__shard_t *s = shard_of(l1, h);
    shard_lock(s);
    tc_ref_t *cur = tc__l1_index_find(&s->ix, h, key, klen);
    shard_unlock(s);
    return cur == e;
}

size_t tc__l1_flush(tc__l1_t *l1) {
    size_t dropped = 0;
    for (unsigned i = 0; i <= l1->mask; i++) {
        tc__shard_t *s = &l1->shards[i];
        shard_lock_excl(l1, s);
        dropped += s->ix.count;
        for (tc_ref_t *e; (e = tc__l1_index_first(&s->ix)) != NULL;)
            remove_locked(s, e);
        pending_poison_all_locked(s);
        shard_unlock(s);
    }
    atomic_fetch_add(&l1->flushes, 1);
    return dropped;
}

static int has_prefix(const unsigned char *key, size_t klen, const void *prefix, size_t plen) {
    return klen >= plen && (plen == 0 || memcmp(key, prefix, plen) == 0);
}

size_t tc__l1_sweep(tc__l1_t *l1, const void *prefix, size_t plen, uint64_t version) {
    size_t dropped = 0;
    for (unsigned i = 0; i <= l1->mask; i++) {
        tc__shard_t *s = &l1->shards[i];
        shard_lock_excl(l1, s);
        for (tc_ref_t *e = tc__l1_index_first(&s->ix), *next; e; e = next) {
            next = tc__l1_index_next(&s->ix, e);
            if (has_prefix(tc__entry_key(e), tc__entry_klen(e), prefix, plen) &&
                (e->version == 0 || stale_for(e, version))) {
                remove_locked(s, e);
                dropped++;
            }
        }
        for (tc__pending_t *p = tc__l1_inflight_first(&s->pending); p;
             p = tc__l1_inflight_next(&s->pending, p)) {
            if (!has_prefix(p->key, p->klen, prefix, plen))
                continue;
            p->inval_seq++;
            if (version > p->max_inval)
                p->max_inval = version;
            pthread_cond_broadcast(&p->done);
        }
        shard_unlock(s);
    }
    return dropped;
}

/* Append one shard's keys, newest first, to *buf. Returns the keys added, or -1. */
static long shard_keys_locked(const tc__shard_t *s, size_t max, unsigned char **buf,
                              size_t *len, size_t *cap) {
    long n = 0;
    for (tc_ref_t *e = tc__l1_policy_newest(&s->ix.pol); e && (size_t)n < max;
         e = tc__l1_policy_older(&s->ix.pol, e)) {
        size_t klen = tc__entry_klen(e);
        size_t need = sizeof klen + klen;
        if (*cap - *len < need) {
            size_t ncap = (*cap ? *cap * 2 : 4096) + need;
            unsigned char *nb = realloc(*buf, ncap);
            if (!nb)
                return -1;
            *buf = nb;
            *cap = ncap;
        }
        memcpy(*buf + *len, &klen, sizeof klen);
        memcpy(*buf + *len + sizeof klen, tc__entry_key(e), klen);
        *len += need;
        n++;
    }
    return n;
}

long tc__l1_hot_keys(tc__l1_t *l1, size_t max, unsigned char **out, size_t *out_len) {
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    long total = 0;
    /* Keys spread evenly over shards: an equal share of each keeps the newest overall. */
    size_t share = max / (l1->mask + 1u) + 1u;
    for (unsigned i = 0; i <= l1->mask && (size_t)total < max; i++) {
        tc__shard_t *s = &l1->shards[i];
        size_t want = max - (size_t)total < share ? max - (size_t)total : share;
        shard_lock(s);
        long n = shard_keys_locked(s, want, &buf, &len, &cap);
        shard_unlock(s);
        if (n < 0) {
            free(buf);
            return -1;
        }
        total += n;
    }
    *out = buf;
    *out_len = len;
    return total;
}

void tc__l1_poison_pending(tc__l1_t *l1) {
    for (unsigned i = 0; i <= l1->mask; i++) {
        tc__shard_t *s = &l1->shards[i];
        shard_lock(s);
        pending_poison_all_locked(s);
        shard_unlock(s);
    }
}

size_t tc__l1_heal(tc__l1_t *l1) {
    size_t dropped = 0;
    for (unsigned i = 0; i <= l1->mask; i++) {
        tc__shard_t *s = &l1->shards[i];
        shard_lock(s);
        if (s->local_count) /* it removes entries */
            shard_exclude(l1, s);
        pending_poison_all_locked(s);
        dropped += s->local_count;
        for (tc_ref_t *e = s->local_count ? tc__l1_index_first(&s->ix) : NULL, *next; e;
             e = next) {
            next = tc__l1_index_next(&s->ix, e);
            if (e->version == 0)
                remove_locked(s, e);
        }
        shard_unlock(s);
    }
    atomic_fetch_add(&l1->heals, 1);
    return dropped;
}

void tc__l1_set_trusted(tc__l1_t *l1, int trusted) {
    atomic_store(&l1->trusted, trusted);
}

int tc__l1_trusted(const tc__l1_t *l1) {
    return atomic_load(&l1->trusted);
}

unsigned tc__l1_shards(const tc__l1_t *l1) {
    return l1->mask + 1;
}

int tc__l1_check(tc__l1_t *l1) {
    int rc = 0;
    for (unsigned i = 0; i <= l1->mask && rc == 0; i++) {
        tc__shard_t *s = &l1->shards[i];
        shard_lock(s);
        rc = tc__l1_index_check(&s->ix);
        shard_unlock(s);
    }
    return rc;
}

uint64_t tc__l1_next_version(tc__l1_t *l1, uint64_t h) {
    return atomic_fetch_add_explicit(&shard_of(l1, h)->next_version, 1, memory_order_relaxed) +
           1;
}

size_t tc__l1_table_slots(tc__l1_t *l1, uint64_t h) {
    tc__shard_t *s = shard_of(l1, h);
    shard_lock(s);
    size_t n = tc__l1_index_slots(&s->ix);
    shard_unlock(s);
    return n;
}

void tc__l1_counters(tc__l1_t *l1, tc__l1_counters_t *out) {
    memset(out, 0, sizeof *out);
    out->misses = tc__l1_readers_misses(&l1->readers);
    for (unsigned i = 0; i <= l1->mask; i++) {
        tc__shard_t *s = &l1->shards[i];
        shard_lock(s);
        out->hits += s->hits + tc__l1_readers_shard_hits(&l1->readers, i);
        out->misses += s->misses;
        out->evictions += s->evictions;
        out->expirations += s->expirations;
        out->rejected += s->rejected;
        out->waits += s->waits;
        out->entries += s->ix.count;
        out->local_entries += s->local_count;
        out->bytes += shard_used_locked(s);
        shard_unlock(s);
    }
    out->flushes = atomic_load(&l1->flushes);
    out->heals = atomic_load(&l1->heals);
}
