/*
 * l1_policy.h - which entry of a shard to evict next (l1_policy.c): the default second
 * chance in recency order, or S3-FIFO. The shard lock (l1.c) guards all of it.
 */
#ifndef TC_L1_POLICY_H
#define TC_L1_POLICY_H

#include "entry.h"

#include <stddef.h>
#include <stdint.h>

typedef enum tc__l1_policy_kind {
    TC__L1_SECOND_CHANCE = 0, /* the default: CLOCK kept in recency order */
    TC__L1_S3FIFO = 1,        /* small and main FIFOs and a ghost of recent evictions */
} tc__l1_policy_kind_t;

/* The young segment holds at most count >> TC__L1_YOUNG_SHIFT entries (second chance). */
#define TC__L1_YOUNG_SHIFT 3

typedef struct tc__l1_queue {
    tc_ref_t *oldest, *newest;
    size_t count;
} tc__l1_queue_t;

typedef struct tc__l1_policy {
    tc__l1_policy_kind_t kind;
    /* Second chance: q[0] is the recency list. S3-FIFO: q[0] small, q[1] main. */
    tc__l1_queue_t q[2];
    tc_ref_t *young_oldest; /* second chance: first entry of the young segment, or NULL */
    size_t young;           /* ... and its size */
    uint64_t *ghost;        /* S3-FIFO: fingerprints of keys evicted from small */
    size_t ghost_mask;      /* ghost slots - 1 */
    uint32_t ghost_clock;   /* ghost insertions so far (stamps age entries out) */
    uint64_t seed;          /* the shard's hash seed (a victim's fingerprint) */
} tc__l1_policy_t;

void tc__l1_policy_init(tc__l1_policy_t *p, tc__l1_policy_kind_t kind, uint64_t seed);
/* The table now has `slots` slots (0: freed): size the policy's own memory with it.
 * 0, or -1 when that memory could not be allocated (nothing changed). */
int tc__l1_policy_resize(tc__l1_policy_t *p, size_t slots);
/* Bytes the policy's own memory costs beside a table of `slots` slots. */
size_t tc__l1_policy_charge_of(tc__l1_policy_kind_t kind, size_t slots);

/* No entry of the key was resident before this one. */
#define TC__L1_NO_PRIOR (-1)

/* e (hash h) joined the shard, which now holds `count` entries. prior: the lru byte of
 * the entry of the same key that e replaces (a write of a resident key: an access that
 * keeps the key's standing), or TC__L1_NO_PRIOR. */
void tc__l1_policy_added(tc__l1_policy_t *p, tc_ref_t *e, uint64_t h, size_t count, int prior);
/* e takes the place of old, an entry of the same key (a write of a resident key): its
 * position in its queue and its marks, plus one access as a hit would give it. Writes old's
 * two neighbours (a queue's end pointer instead where old was at that end). old leaves
 * unlinked. */
void tc__l1_policy_replaced(tc__l1_policy_t *p, tc_ref_t *old, tc_ref_t *e);
/* e leaves the shard (eviction, invalidation, a new value that could not take its place). */
void tc__l1_policy_removed(tc__l1_policy_t *p, tc_ref_t *e);
/* Whether a hit on e would write its policy byte (a lock-free hit, which must not write
 * it, then takes the shard lock: l1_readers.h). Reads only e's byte. */
int tc__l1_policy_touch_writes(const tc__l1_policy_t *p, const tc_ref_t *e);
/* A hit on e: writes at most e's own policy byte. Moves nothing. */
void tc__l1_policy_touch(tc__l1_policy_t *p, tc_ref_t *e);
/* The entry to evict next from a shard of `count` entries, never `keep` (NULL when
 * nothing else is left). May reorder entries (second chances) on the way. */
tc_ref_t *tc__l1_policy_victim(tc__l1_policy_t *p, const tc_ref_t *keep, size_t count);

/* Every entry once, the next victims first (S3-FIFO: small, then main; for sweeps: take
 * `next` before removing `e`). */
tc_ref_t *tc__l1_policy_first(const tc__l1_policy_t *p);
tc_ref_t *tc__l1_policy_next(const tc__l1_policy_t *p, const tc_ref_t *e);
/* Every entry once, the most valuable to keep first (warming lists hot keys with it). */
tc_ref_t *tc__l1_policy_newest(const tc__l1_policy_t *p);
tc_ref_t *tc__l1_policy_older(const tc__l1_policy_t *p, const tc_ref_t *e);

/* 0 when the queues, marks and counts agree with `count` entries; else a negative code. */
int tc__l1_policy_check(const tc__l1_policy_t *p, size_t count);

#endif
