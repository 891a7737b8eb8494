/*
 * l1_inflight.h - one shard's pending records: a key's fill, write or load in flight, and
 * the table that finds them (l1_inflight.c). The rules they enforce are l1.c's; the shard
 * lock guards all of it.
 */
#ifndef TC_L1_INFLIGHT_H
#define TC_L1_INFLIGHT_H

#include "entry.h"
#include "l1.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct tc__pending {
    tc__pending_t *next; /* bucket chain, or the spare list */
    pthread_cond_t done; /* kept across reuse: initialising one costs more than a lookup */
    size_t key_cap;      /* bytes key[] can hold */
    /* ---- from here to h, zero in a new record (l1_inflight.c clears them) ---- */
    uint64_t inval_seq;   /* invalidations (and poisons) seen while this record lived */
    uint64_t poison_seq;  /* inval_seq at the last poison: older snapshots are void */
    uint64_t max_inval;   /* newest invalidation version seen */
    unsigned users;       /* fillers / writers / fetch leader in flight */
    unsigned waiters;     /* tc_fetch callers waiting for the leader */
    int leading;          /* a tc_fetch leader is loading */
    uint64_t results;     /* completed leader loads; waiters wait for it to move */
    uint64_t lead_snap;   /* inval_seq when the current leader started */
    uint64_t result_snap; /* lead_snap of the last completed load */
    int result_private;   /* ... whose value its waiters must not take (rule 5) */
    int result_status;    /* last leader's result */
    tc_ref_t *result;     /* ... and its value (a reference owned by this record) */
    /* ---- the key ---- */
    uint64_t h; /* the key's hash, so ending a fill never rehashes */
    size_t klen;
    unsigned char key[];
};

#define TC__L1_INFLIGHT_BUCKETS 16u
#define TC__L1_INFLIGHT_SPARES  4u

typedef struct tc__l1_inflight {
    tc__pending_t *bucket[TC__L1_INFLIGHT_BUCKETS];
    tc__pending_t *spare; /* released records kept for reuse */
    unsigned spares;
} tc__l1_inflight_t;

/* key's record, or NULL. */
tc__pending_t *tc__l1_inflight_find(const tc__l1_inflight_t *t, uint64_t h, const void *key,
                                    size_t klen);
/* key's record, made (all counts zero) when there is none; NULL on ENOMEM. */
tc__pending_t *tc__l1_inflight_get(tc__l1_inflight_t *t, uint64_t h, const void *key,
                                   size_t klen);
/* Unlink p (no users, waiters or leader left) and recycle or free it; its result, if any,
 * is released. */
void tc__l1_inflight_release(tc__l1_inflight_t *t, tc__pending_t *p);
/* Every record once (take `next` before releasing `p`). */
tc__pending_t *tc__l1_inflight_first(const tc__l1_inflight_t *t);
tc__pending_t *tc__l1_inflight_next(const tc__l1_inflight_t *t, const tc__pending_t *p);
/* Frees the spares; every record has been released. */
void tc__l1_inflight_deinit(tc__l1_inflight_t *t);

#endif
