/*
 * l1_index.h - one shard's entries: a table to find them (l1_index.c) and the eviction
 * policy's queues (l1_policy.c). The shard lock (l1.c) guards all of it; nothing here locks.
 */
#ifndef TC_L1_INDEX_H
#define TC_L1_INDEX_H

#include "entry.h"
#include "l1_policy.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What every hit reads comes first and changes only when the table is resized; what
 * writes change (count, the policy's queue ends) follows, though on x86-64 the count and
 * the first queue end still share the hit's line (an insert or removal, not a
 * replacement, then moves it). */
typedef struct tc__l1_index {
    uint64_t *slots; /* tagged entry pointers (l1_index.c); NULL while empty */
    size_t mask;     /* slot count - 1 */
    /* The slot array and mask as last published, read without the lock to prefetch a
     * lookup's slot (a stale pair only wastes the prefetch). */
    _Atomic(uint64_t *) pub_slots;
    atomic_size_t pub_mask;
    uint64_t seed;       /* the shard's hash seed: a key's slot is found from its hash */
    size_t count;        /* entries held */
    tc__l1_policy_t pol; /* the eviction policy's queues (l1_policy.c) */
} tc__l1_index_t;

/* Why an entry could not be indexed (the shard then serves it without keeping it). */
typedef enum tc__l1_index_add_result {
    TC__IX_ADDED = 0,
    TC__IX_NO_MEMORY = -1,   /* the table could not grow */
    TC__IX_UNINDEXABLE = -2, /* a pointer above 2^48, or a probe run past its limit */
} tc__l1_index_add_result_t;

void tc__l1_index_init(tc__l1_index_t *ix, uint64_t seed, tc__l1_policy_kind_t policy);
/* Frees the table; the caller has removed every entry first. */
void tc__l1_index_deinit(tc__l1_index_t *ix);

/* The entry for key (h = tc__hash64(key, klen, seed)), or NULL. Changes nothing. */
tc_ref_t *tc__l1_index_find(const tc__l1_index_t *ix, uint64_t h, const void *key, size_t klen);
/* Add e (no entry for its key may be present). prior: the policy byte (lru) of the entry
 * e replaces, which was just removed, or TC__L1_NO_PRIOR. */
tc__l1_index_add_result_t tc__l1_index_add(tc__l1_index_t *ix, uint64_t h, tc_ref_t *e,
                                           int prior);
/* e takes the place of old, a present entry of the same key (hash h): its slot and its
 * place in the policy's queues (tc__l1_policy_replaced). Nothing is probed or moved. */
tc__l1_index_add_result_t tc__l1_index_replace(tc__l1_index_t *ix, uint64_t h, tc_ref_t *old,
                                               tc_ref_t *e);
/* Remove e, which is present. The table is freed with the last entry. */
void tc__l1_index_remove(tc__l1_index_t *ix, tc_ref_t *e);
/* Whether a hit on e would write its policy mark (tc__l1_policy_touch_writes). */
int tc__l1_index_touch_writes(const tc__l1_index_t *ix, const tc_ref_t *e);
/* A hit on e: the policy's mark in e's own byte. Moves nothing. */
void tc__l1_index_touch(tc__l1_index_t *ix, tc_ref_t *e);
/* The entry to evict next, never keep; NULL when no other is left. */
tc_ref_t *tc__l1_index_victim(tc__l1_index_t *ix, const tc_ref_t *keep);
/* Every entry once, the next victims first (S3-FIFO: small, then main): take the next
 * before removing one. */
static inline tc_ref_t *tc__l1_index_first(const tc__l1_index_t *ix) {
    return tc__l1_policy_first(&ix->pol);
}
static inline tc_ref_t *tc__l1_index_next(const tc__l1_index_t *ix, const tc_ref_t *e) {
    return tc__l1_policy_next(&ix->pol, e);
}
/* Start loading key's slot into the cache; safe without the lock. */
void tc__l1_index_prefetch(const tc__l1_index_t *ix, uint64_t h);

/* Bytes the allocator charges for a table of n slots (with the policy's memory beside
 * it), for the current table, and for the table after one more entry is added. */
size_t tc__l1_index_charge_of(tc__l1_policy_kind_t policy, size_t slots);
size_t tc__l1_index_charge(const tc__l1_index_t *ix);
size_t tc__l1_index_charge_after_add(const tc__l1_index_t *ix);
size_t tc__l1_index_slots(const tc__l1_index_t *ix);
/* 0 when table, list and counts agree; a negative code naming the first disagreement. */
int tc__l1_index_check(const tc__l1_index_t *ix);

#endif
