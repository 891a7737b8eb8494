/*
 * l1_index.c - one shard's entries: a table of tagged pointers to find them, and the
 * eviction policy's queues through the entries themselves (l1_policy.c).
 *
 * The table
 * ---------
 *   slot (8 bytes):  | tag 8 | dist 8 | entry pointer 48 |      0 = empty
 *
 * Open addressing with linear probing: a key's home slot is its hash's low bits, and it
 * sits in the first free slot from there, `dist` slots on. The tag is the hash's top
 * byte, so a probe dereferences an entry (a cache miss on a cold key) only when the tag
 * matches: a hit costs the slot's cache line and the entry's, where a chained table costs
 * a bucket, a chain pointer per step and the entry. Eight bytes per slot at a load of
 * 3/8..3/4 (from a doubling up to the next) is 11-21 bytes per entry. The table shrinks
 * only when the shard empties, so after mass invalidations a shard pays for the slots its
 * peak needed (charged, so the budget still holds).
 *
 * Deletion closes the hole from the rest of its run (a later slot whose probe passed
 * through the hole moves into it, Knuth's algorithm R), so there are no tombstones and a
 * lookup stops at the first empty slot. dist gives each slot's home without rehashing
 * its key (a cache miss on the entry). Growth doubles the table and re-hashes every key (the
 * hash is not stored: 4 more bytes in every entry would cost more than rehashing as the table
 * grows). An entry whose probe would run past 255 slots is not indexed (the seeded hash
 * makes that a matter of chance, and the shard then serves the value without keeping it).
 *
 * Pointers above 2^48 do not fit: no x86-64 or AArch64 Linux process gets one from malloc
 * without asking for a 5-level address space; a tagged heap (Arm MTE, HWASan) does, and then
 * no entry is kept: every read is a miss. Such an entry is served, never lost.
 *
 * A new value of a resident key takes the old entry's slot as it is (same key, same
 * hash, same run): only the pointer bits change, and nothing is probed or shifted.
 *
 * Which entry to evict is the policy's business (l1_policy.c): the index tells it of
 * every add, replacement and removal, and it links the entries into its queues.
 */
#include "l1_index.h"

#include "alloc.h"
#include "hash.h"

#include <assert.h>
#include <string.h>

#define SLOT_PTR_MASK   ((UINT64_C(1) << 48) - 1)
#define SLOT_DIST_SHIFT 48
#define SLOT_TAG_SHIFT  56
#define SLOT_DIST_MAX   255u
#define INITIAL_SLOTS   8u

static uint64_t slot_pack(const tc_ref_t *e, unsigned dist, uint64_t h) {
    return (uint64_t)(uintptr_t)e | ((uint64_t)dist << SLOT_DIST_SHIFT) |
           (h >> SLOT_TAG_SHIFT << SLOT_TAG_SHIFT);
}
static tc_ref_t *slot_entry(uint64_t slot) {
    return (tc_ref_t *)(uintptr_t)(slot & SLOT_PTR_MASK);
}
static unsigned slot_dist(uint64_t slot) {
    return (unsigned)(slot >> SLOT_DIST_SHIFT) & 0xffu;
}

static uint64_t entry_hash(const tc__l1_index_t *ix, const tc_ref_t *e) {
    return tc__hash64(tc__entry_key(e), tc__entry_klen(e), ix->seed);
}

static void publish(tc__l1_index_t *ix) {
    atomic_store_explicit(&ix->pub_slots, ix->slots, memory_order_relaxed);
    atomic_store_explicit(&ix->pub_mask, ix->mask, memory_order_relaxed);
}

void tc__l1_index_init(tc__l1_index_t *ix, uint64_t seed, tc__l1_policy_kind_t policy) {
    memset(ix, 0, sizeof *ix);
    ix->seed = seed;
    tc__l1_policy_init(&ix->pol, policy, seed);
    atomic_init(&ix->pub_slots, NULL);
    atomic_init(&ix->pub_mask, 0);
}

static void free_table(tc__l1_index_t *ix) {
    if (ix->slots)
        tc__free(ix->slots, (ix->mask + 1) * sizeof *ix->slots);
    (void)tc__l1_policy_resize(&ix->pol, 0); /* freeing cannot fail */
    ix->slots = NULL;
    ix->mask = 0;
    publish(ix);
}

void tc__l1_index_deinit(tc__l1_index_t *ix) {
    assert(ix->count == 0);
    free_table(ix);
}

/* ---- the table ---- */

tc_ref_t *tc__l1_index_find(const tc__l1_index_t *ix, uint64_t h, const void *key,
                            size_t klen) {
    if (!ix->slots)
        return NULL;
    uint64_t tag = h >> SLOT_TAG_SHIFT;
    size_t i = (size_t)h & ix->mask;
    for (unsigned d = 0; d <= SLOT_DIST_MAX; d++, i = (i + 1) & ix->mask) {
        uint64_t slot = ix->slots[i];
        if (!slot)
            return NULL;
        if ((slot >> SLOT_TAG_SHIFT) == tag) {
            tc_ref_t *e = slot_entry(slot);
            if (e->klen == klen && memcmp(e->data, key, klen) == 0)
                return e;
        }
    }
    return NULL;
}

/* Put e in the first free slot from its home. 0, or -1 when that is too far. */
static int place(uint64_t *slots, size_t mask, uint64_t h, const tc_ref_t *e) {
    size_t i = (size_t)h & mask;
    for (unsigned d = 0; d <= SLOT_DIST_MAX; d++, i = (i + 1) & mask) {
        if (!slots[i]) {
            slots[i] = slot_pack(e, d, h);
            return 0;
        }
    }
    return -1;
}

/* Move to a table of nslots slots holding every entry and the new one, e (hash h). On
 * any failure nothing changes: the old table stays, and so does what the shard pays. */
static tc__l1_index_add_result_t resize(tc__l1_index_t *ix, size_t nslots, const tc_ref_t *e,
                                        uint64_t h) {
    uint64_t *ns = tc__alloc(nslots * sizeof *ns);
    if (!ns)
        return TC__IX_NO_MEMORY;
    memset(ns, 0, nslots * sizeof *ns);
    int placed = place(ns, nslots - 1, h, e) == 0;
    for (size_t i = 0; placed && ix->slots && i <= ix->mask; i++) {
        tc_ref_t *old = slot_entry(ix->slots[i]);
        placed = !old || place(ns, nslots - 1, entry_hash(ix, old), old) == 0;
    }
    if (!placed) {
        tc__free(ns, nslots * sizeof *ns);
        return TC__IX_UNINDEXABLE;
    }
    if (tc__l1_policy_resize(&ix->pol, nslots) != 0) {
        tc__free(ns, nslots * sizeof *ns);
        return TC__IX_NO_MEMORY;
    }
    if (ix->slots)
        tc__free(ix->slots, (ix->mask + 1) * sizeof *ix->slots);
    ix->slots = ns;
    ix->mask = nslots - 1;
    publish(ix);
    return TC__IX_ADDED;
}

static size_t slots_for(const tc__l1_index_t *ix, size_t entries) {
    size_t n = ix->slots ? ix->mask + 1 : INITIAL_SLOTS;
    while (entries * 4 > n * 3) /* load at most 3/4 */
        n *= 2;
    return n;
}

/* Whether the slot at `pos`, whose home is `home`, may move back into the hole at `hole`:
 * yes unless its home lies cyclically in (hole, pos]. */
static int may_fill(size_t hole, size_t home, size_t pos) {
    if (hole <= pos)
        return home <= hole || home > pos;
    return home <= hole && home > pos;
}

static void remove_slot(tc__l1_index_t *ix, const tc_ref_t *e) {
    uint64_t h = entry_hash(ix, e);
    size_t hole = (size_t)h & ix->mask;
    while (slot_entry(ix->slots[hole]) != e) /* present: the walk ends on it */
        hole = (hole + 1) & ix->mask;
    /* Close the hole from the rest of its run (Knuth's algorithm R): a slot whose probe
     * passed through the hole moves into it, and its own place becomes the hole. */
    for (size_t pos = (hole + 1) & ix->mask; ix->slots[pos]; pos = (pos + 1) & ix->mask) {
        uint64_t slot = ix->slots[pos];
        size_t home = (pos - slot_dist(slot)) & ix->mask;
        if (may_fill(hole, home, pos)) {
            ix->slots[hole] = (slot & ~(UINT64_C(0xff) << SLOT_DIST_SHIFT)) |
                              ((uint64_t)((hole - home) & ix->mask) << SLOT_DIST_SHIFT);
            hole = pos;
        }
    }
    ix->slots[hole] = 0;
}

/* ---- the index ---- */

tc__l1_index_add_result_t tc__l1_index_add(tc__l1_index_t *ix, uint64_t h, tc_ref_t *e,
                                           int prior) {
    if ((uint64_t)(uintptr_t)e > SLOT_PTR_MASK)
        return TC__IX_UNINDEXABLE;
    size_t want = slots_for(ix, ix->count + 1);
    tc__l1_index_add_result_t r = TC__IX_UNINDEXABLE;
    if (!ix->slots || want != ix->mask + 1) /* grow (or make) the table, e included */
        r = resize(ix, want, e, h);
    /* Growth can fail where the current table still has room (a run too long at the new
     * size is chance): then e goes there, and the next add tries to grow again. */
    if (r != TC__IX_ADDED && ix->slots && ix->count + 2 <= ix->mask + 1 && /* keep a hole */
        place(ix->slots, ix->mask, h, e) == 0)
        r = TC__IX_ADDED;
    /* A run this long at this load is chance (or a hash aimed at us): one doubling spreads
     * it unless the table is already sparse. */
    if (r != TC__IX_ADDED && ix->slots && ix->count * 8 >= ix->mask + 1)
        r = resize(ix, (ix->mask + 1) * 2, e, h);
    if (r != TC__IX_ADDED)
        return r; /* the table is as it was: nothing added, nothing more to pay */
    ix->count++;
    tc__l1_policy_added(&ix->pol, e, h, ix->count, prior);
    return TC__IX_ADDED;
}

tc__l1_index_add_result_t tc__l1_index_replace(tc__l1_index_t *ix, uint64_t h, tc_ref_t *old,
                                               tc_ref_t *e) {
    if ((uint64_t)(uintptr_t)e > SLOT_PTR_MASK)
        return TC__IX_UNINDEXABLE;
    size_t i = (size_t)h & ix->mask;
    while (slot_entry(ix->slots[i]) != old) /* present: the walk ends on it */
        i = (i + 1) & ix->mask;
    ix->slots[i] = (ix->slots[i] & ~SLOT_PTR_MASK) | (uint64_t)(uintptr_t)e;
    tc__l1_policy_replaced(&ix->pol, old, e);
    return TC__IX_ADDED;
}

void tc__l1_index_remove(tc__l1_index_t *ix, tc_ref_t *e) {
    assert(ix->count > 0);
    remove_slot(ix, e);
    tc__l1_policy_removed(&ix->pol, e);
    ix->count--;
    if (!ix->count)
        free_table(ix);
}

int tc__l1_index_touch_writes(const tc__l1_index_t *ix, const tc_ref_t *e) {
    return tc__l1_policy_touch_writes(&ix->pol, e);
}

void tc__l1_index_touch(tc__l1_index_t *ix, tc_ref_t *e) {
    tc__l1_policy_touch(&ix->pol, e);
}

tc_ref_t *tc__l1_index_victim(tc__l1_index_t *ix, const tc_ref_t *keep) {
    return tc__l1_policy_victim(&ix->pol, keep, ix->count);
}

void tc__l1_index_prefetch(const tc__l1_index_t *ix, uint64_t h) {
    uint64_t *slots = atomic_load_explicit(&ix->pub_slots, memory_order_relaxed);
    if (slots)
        __builtin_prefetch(
            &slots[(size_t)h & atomic_load_explicit(&ix->pub_mask, memory_order_relaxed)]);
}

/* ---- what it costs ---- */

size_t tc__l1_index_charge_of(tc__l1_policy_kind_t policy, size_t slots) {
    return tc__alloc_charge(slots * sizeof(uint64_t)) + tc__l1_policy_charge_of(policy, slots);
}

size_t tc__l1_index_charge(const tc__l1_index_t *ix) {
    return ix->slots ? tc__l1_index_charge_of(ix->pol.kind, ix->mask + 1) : 0;
}

size_t tc__l1_index_charge_after_add(const tc__l1_index_t *ix) {
    return tc__l1_index_charge_of(ix->pol.kind, slots_for(ix, ix->count + 1));
}

size_t tc__l1_index_slots(const tc__l1_index_t *ix) {
    return ix->slots ? ix->mask + 1 : 0;
}

int tc__l1_index_check(const tc__l1_index_t *ix) {
    size_t occupied = 0;
    for (size_t i = 0; ix->slots && i <= ix->mask; i++) {
        tc_ref_t *e = slot_entry(ix->slots[i]);
        if (!e)
            continue;
        occupied++;
        if (tc__l1_index_find(ix, entry_hash(ix, e), e->data, e->klen) != e)
            return -1; /* a slot its own key's lookup does not reach */
    }
    if (occupied != ix->count)
        return -2;
    size_t listed = 0;
    for (const tc_ref_t *e = tc__l1_policy_first(&ix->pol); e;
         e = tc__l1_policy_next(&ix->pol, e)) {
        if (tc__l1_index_find(ix, entry_hash(ix, e), e->data, e->klen) != e)
            return -3; /* queued but not indexed */
        listed++;
    }
    if (listed != ix->count)
        return -4;
    return tc__l1_policy_check(&ix->pol, ix->count);
}
