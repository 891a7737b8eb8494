/*
 * l1_policy.c - which entry of a shard to evict next. A hit never moves an entry under
 * either policy: it writes at most one byte of the entry it has just loaded, so the hit
 * path touches no other entry's cache line. The moving is paid at eviction, which runs
 * on inserts that write anyway. Entries are linked into FIFO queues through their own
 * `older`/`newer` pointers; `lru` (one byte per entry) holds the policy's marks.
 *
 * A new value of a resident key is a hit under either policy: the new entry takes the old
 * one's place in its queue and its marks, and gets the hit's mark
 * (tc__l1_policy_replaced), or the old entry, rewritten in place, keeps them and gets the
 * mark (l1.c rewrite_locked). Moving it to the newest end instead would also write that
 * end, which every insert into the shard writes, and the index would remove and re-probe
 * the key's slot.
 *
 * Second chance (the default)
 * ---------------------------
 *   q[0]:  oldest <-> ... <-> young_oldest <-> ... <-> newest
 *          |---------- old ---------------||----- young ------|   young <= count / 8
 *
 * Entries join the young segment at the newest end; when it is over its share, its oldest
 * member drops into the old part unmarked. A hit on a young entry changes nothing (it is
 * among the newest eighth already); a hit on an old one sets its `referenced` mark. The
 * victim is found at the oldest end: a marked entry loses its mark and goes back to the
 * young end (its second chance), and the first unmarked entry is evicted.
 *
 * That is CLOCK kept in recency order. Exact LRU would move an entry on every hit,
 * writing both neighbours' lines (two cold misses for a hot key whose neighbours in time
 * are cold keys) and the list's ends, under the lock. `tiercache-bench replay` measures
 * the difference against an exact LRU on every trace in ../shared/traces at 1%, 3% and
 * 10% of their keys: at most +0.32 points worse in any run so far (+0.18 in the last), and
 * better than LRU on most rows, as CLOCK often is. The young segment keeps a burst of hits on
 * new keys from marking them.
 *
 * S3-FIFO (Yang et al., SOSP 2023), optional
 * -------------------------------------------
 *   q[0] small FIFO (about 10% of entries)   q[1] main FIFO   ghost: recent small evictions
 *
 * A new key joins small, or main when the ghost remembers it (it was evicted from small
 * recently: the second request came too late for small, so it is not a one-hit wonder).
 * A hit raises the entry's 2-bit frequency (at most 3). Eviction takes from small while
 * small holds at least a tenth of the entries: an entry hit more than once moves to main,
 * any other is evicted and its fingerprint enters the ghost. Otherwise it takes from
 * main, where an entry with a frequency above 0 is requeued at the newest end with one
 * less, and the first at 0 is evicted. Scans and one-hit wonders pass through small
 * without displacing main: the traces README shows 2-12 points fewer misses than LRU on
 * the LIRS and web traces.
 *
 * The ghost is a 4-way set-associative table of 32-bit fingerprints, each with the ghost
 * clock at its insertion; an entry older than `count` insertions is forgotten (the ghost
 * remembers about as many keys as the cache holds, as in the paper). It has as many slots
 * as the index's table and lives and dies with it: 8 bytes a slot, 11-21 bytes per entry,
 * charged to the budget like the table. The second-chance policy has no ghost.
 */
#include "l1_policy.h"

#include "alloc.h"
#include "hash.h"

#include <assert.h>
#include <string.h>

#define LRU_YOUNG      1u /* second chance: in the young segment */
#define LRU_REFERENCED 2u /* second chance: hit since it left the young segment */
#define LRU_MAIN       4u /* S3-FIFO: in the main queue (else small) */
#define LRU_FREQ_SHIFT 3
#define LRU_FREQ_MASK  (3u << LRU_FREQ_SHIFT) /* S3-FIFO: hits, at most 3 */

#define SMALL_SHARE_DIV 10u /* small is evicted from while it holds >= count / 10 */
#define MOVE_TO_MAIN    1u  /* small -> main when freq > this */
#define GHOST_WAYS      4u

static unsigned freq_of(const tc_ref_t *e) {
    return (e->lru & LRU_FREQ_MASK) >> LRU_FREQ_SHIFT;
}
static void set_freq(tc_ref_t *e, unsigned f) {
    e->lru = (uint8_t)((e->lru & ~LRU_FREQ_MASK) | (f << LRU_FREQ_SHIFT));
}

static tc__l1_queue_t *queue_of(tc__l1_policy_t *p, const tc_ref_t *e) {
    return &p->q[(e->lru & LRU_MAIN) ? 1 : 0];
}

void tc__l1_policy_init(tc__l1_policy_t *p, tc__l1_policy_kind_t kind, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->seed = seed;
}

/* ---- queues ---- */

static void queue_push(tc__l1_queue_t *q, tc_ref_t *e) {
    e->older = q->newest;
    e->newer = NULL;
    if (q->newest)
        q->newest->newer = e;
    else
        q->oldest = e;
    q->newest = e;
    q->count++;
}

static void queue_cut(tc__l1_queue_t *q, tc_ref_t *e) {
    if (e->older)
        e->older->newer = e->newer;
    else
        q->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        q->newest = e->older;
    e->older = e->newer = NULL;
    q->count--;
}

/* ---- second chance ---- */

/* Append e as the newest, young; then keep the segment within its share. */
static void push_young(tc__l1_policy_t *p, tc_ref_t *e, size_t count) {
    queue_push(&p->q[0], e);
    e->lru |= LRU_YOUNG;
    p->young++;
    if (!p->young_oldest)
        p->young_oldest = e;
    while (p->young > count >> TC__L1_YOUNG_SHIFT) {
        tc_ref_t *y = p->young_oldest;
        y->lru &= (uint8_t)~LRU_YOUNG; /* unmarked: it must be hit again to stay */
        p->young_oldest = y->newer;
        p->young--;
    }
    assert(p->young || !p->young_oldest);
}

static void cut_second_chance(tc__l1_policy_t *p, tc_ref_t *e) {
    if (e->lru & LRU_YOUNG) {
        p->young--;
        if (p->young_oldest == e)
            p->young_oldest = e->newer; /* young too, or NULL: the segment ends at newest */
    }
    queue_cut(&p->q[0], e);
}

static tc_ref_t *second_chance_victim(tc__l1_policy_t *p, const tc_ref_t *keep, size_t count) {
    /* Ends: each step clears one mark, and no hit sets one while the shard lock is held. */
    while (p->q[0].oldest && (p->q[0].oldest->lru & LRU_REFERENCED)) {
        tc_ref_t *e = p->q[0].oldest;
        cut_second_chance(p, e);
        e->lru = 0;
        push_young(p, e, count);
    }
    tc_ref_t *v = p->q[0].oldest;
    return v && v == keep ? keep->newer : v; /* renewed entries after keep are unmarked */
}

/* ---- S3-FIFO's ghost ---- */

static uint64_t ghost_mix(uint64_t h) {
    return tc__hash_fmix64(h ^ 0x5bd1e9955bd1e995ULL); /* bits unrelated to slot and shard */
}

/* The bucket (GHOST_WAYS slots) of mixed hash g; each slot is fingerprint | stamp << 32. */
static uint64_t *ghost_bucket(const tc__l1_policy_t *p, uint64_t g) {
    size_t buckets = (p->ghost_mask + 1) / GHOST_WAYS;
    return &p->ghost[((size_t)(g >> 32) & (buckets - 1)) * GHOST_WAYS];
}

static uint32_t ghost_fp(uint64_t g) {
    return (uint32_t)g | 1u; /* never 0: 0 is an empty slot */
}

/* Forget and report whether key hash h was evicted from small within the last `count`
 * ghost insertions. */
static int ghost_take(tc__l1_policy_t *p, uint64_t h, size_t count) {
    if (!p->ghost)
        return 0;
    uint64_t g = ghost_mix(h);
    uint64_t *b = ghost_bucket(p, g);
    for (unsigned i = 0; i < GHOST_WAYS; i++) {
        if ((uint32_t)b[i] == ghost_fp(g)) {
            uint32_t age = p->ghost_clock - (uint32_t)(b[i] >> 32);
            b[i] = 0;
            return age < count;
        }
    }
    return 0;
}

static void ghost_put(tc__l1_policy_t *p, const tc_ref_t *e) {
    if (!p->ghost)
        return;
    uint64_t g = ghost_mix(tc__hash64(tc__entry_key(e), tc__entry_klen(e), p->seed));
    uint64_t *b = ghost_bucket(p, g);
    unsigned pick = 0;
    uint32_t oldest_age = 0;
    for (unsigned i = 0; i < GHOST_WAYS; i++) { /* an empty slot, else the oldest */
        uint32_t age = b[i] ? p->ghost_clock - (uint32_t)(b[i] >> 32) : UINT32_MAX;
        if (age >= oldest_age) {
            oldest_age = age;
            pick = i;
        }
    }
    b[pick] = ghost_fp(g) | ((uint64_t)p->ghost_clock << 32);
    p->ghost_clock++;
}

/* ---- S3-FIFO ---- */

static tc_ref_t *s3fifo_victim(tc__l1_policy_t *p, const tc_ref_t *keep, size_t count) {
    tc__l1_queue_t *small = &p->q[0], *main = &p->q[1];
    for (;;) {
        /* Counts without keep, which stays whichever queue it is in. */
        size_t small_n = small->count - (keep && !(keep->lru & LRU_MAIN));
        size_t main_n = main->count - (keep && (keep->lru & LRU_MAIN));
        if (!small_n && !main_n)
            return NULL;
        int from_small = small_n && (small_n * SMALL_SHARE_DIV >= count || !main_n);
        tc__l1_queue_t *q = from_small ? small : main;
        tc_ref_t *t = q->oldest;
        unsigned f = freq_of(t);
        if (from_small && f > MOVE_TO_MAIN) { /* hit more than once: keep it in main */
            queue_cut(small, t);
            t->lru = LRU_MAIN;
            queue_push(main, t);
        } else if (!from_small && f > 0) { /* main: once more around, one hit spent */
            queue_cut(main, t);
            set_freq(t, f - 1);
            queue_push(main, t);
        } else if (t == keep) { /* not this one (a new value in its old place, or just
                                   added): to the back of its queue, unchanged */
            queue_cut(q, t);
            queue_push(q, t);
        } else {
            if (from_small)
                ghost_put(p, t);
            return t;
        }
    }
}

/* ---- the policy ---- */

int tc__l1_policy_resize(tc__l1_policy_t *p, size_t slots) {
    if (p->kind != TC__L1_S3FIFO)
        return 0;
    uint64_t *ghost = NULL;
    if (slots) {
        ghost = tc__alloc(slots * sizeof *ghost);
        if (!ghost)
            return -1;
        memset(ghost, 0, slots * sizeof *ghost); /* a new table forgets the old ghosts */
    }
    if (p->ghost)
        tc__free(p->ghost, (p->ghost_mask + 1) * sizeof *p->ghost);
    p->ghost = ghost;
    p->ghost_mask = slots ? slots - 1 : 0;
    return 0;
}

size_t tc__l1_policy_charge_of(tc__l1_policy_kind_t kind, size_t slots) {
    return kind == TC__L1_S3FIFO ? tc__alloc_charge(slots * sizeof(uint64_t)) : 0;
}

void tc__l1_policy_added(tc__l1_policy_t *p, tc_ref_t *e, uint64_t h, size_t count, int prior) {
    e->lru = 0;
    if (p->kind == TC__L1_SECOND_CHANCE) {
        push_young(p, e, count);           /* as a hit on the old entry would have: recent */
    } else if (prior != TC__L1_NO_PRIOR) { /* its queue, and one more access */
        unsigned f = ((unsigned)prior & LRU_FREQ_MASK) >> LRU_FREQ_SHIFT;
        e->lru = (uint8_t)((unsigned)prior & LRU_MAIN);
        set_freq(e, f < 3 ? f + 1 : 3);
        queue_push(queue_of(p, e), e);
    } else if (ghost_take(p, h, count)) {
        e->lru = LRU_MAIN;
        queue_push(&p->q[1], e);
    } else {
        queue_push(&p->q[0], e);
    }
}

void tc__l1_policy_removed(tc__l1_policy_t *p, tc_ref_t *e) {
    if (p->kind == TC__L1_SECOND_CHANCE)
        cut_second_chance(p, e);
    else
        queue_cut(queue_of(p, e), e);
    /* Removals may leave the young segment over its share (after a mass invalidation, even
     * the whole list): the next add's demotions bring it back. It only bounds a shortcut. */
}

void tc__l1_policy_replaced(tc__l1_policy_t *p, tc_ref_t *old, tc_ref_t *e) {
    tc__l1_queue_t *q = queue_of(p, old);
    e->lru = old->lru;
    e->older = old->older;
    e->newer = old->newer;
    if (e->older)
        e->older->newer = e;
    else
        q->oldest = e;
    if (e->newer)
        e->newer->older = e;
    else
        q->newest = e;
    old->older = old->newer = NULL;
    if (p->young_oldest == old)
        p->young_oldest = e;
    tc__l1_policy_touch(p, e);
}

int tc__l1_policy_touch_writes(const tc__l1_policy_t *p, const tc_ref_t *e) {
    if (p->kind == TC__L1_SECOND_CHANCE)
        return !(e->lru & (LRU_YOUNG | LRU_REFERENCED));
    return freq_of(e) < 3;
}

void tc__l1_policy_touch(tc__l1_policy_t *p, tc_ref_t *e) {
    if (p->kind == TC__L1_SECOND_CHANCE) {
        if (!(e->lru & (LRU_YOUNG | LRU_REFERENCED)))
            e->lru |= LRU_REFERENCED;
    } else if (freq_of(e) < 3) {
        set_freq(e, freq_of(e) + 1);
    }
}

tc_ref_t *tc__l1_policy_victim(tc__l1_policy_t *p, const tc_ref_t *keep, size_t count) {
    return p->kind == TC__L1_SECOND_CHANCE ? second_chance_victim(p, keep, count)
                                           : s3fifo_victim(p, keep, count);
}

/* ---- walking every entry ---- */

tc_ref_t *tc__l1_policy_first(const tc__l1_policy_t *p) {
    return p->q[0].oldest ? p->q[0].oldest : p->q[1].oldest;
}

tc_ref_t *tc__l1_policy_next(const tc__l1_policy_t *p, const tc_ref_t *e) {
    if (e->newer)
        return e->newer;
    return (e->lru & LRU_MAIN) ? NULL : p->q[1].oldest;
}

tc_ref_t *tc__l1_policy_newest(const tc__l1_policy_t *p) {
    return p->q[1].newest ? p->q[1].newest : p->q[0].newest;
}

tc_ref_t *tc__l1_policy_older(const tc__l1_policy_t *p, const tc_ref_t *e) {
    if (e->older)
        return e->older;
    return (e->lru & LRU_MAIN) ? p->q[0].newest : NULL;
}

int tc__l1_policy_check(const tc__l1_policy_t *p, size_t count) {
    size_t young = 0;
    for (unsigned i = 0; i < 2; i++) {
        size_t n = 0;
        for (const tc_ref_t *e = p->q[i].oldest; e; e = e->newer, n++) {
            if (e->newer ? e->newer->older != e : p->q[i].newest != e)
                return -10; /* links disagree */
            if (((e->lru & LRU_MAIN) != 0) != (i == 1))
                return -11; /* in the other queue */
            if ((e->lru & LRU_YOUNG) && (e->lru & LRU_REFERENCED))
                return -12;
            young += (e->lru & LRU_YOUNG) != 0;
        }
        if (n != p->q[i].count)
            return -13;
    }
    if (p->q[0].count + p->q[1].count != count || young != p->young)
        return -14;
    return 0;
}
