/*
 * l1_inflight.c - the table of one shard's pending records.
 *
 * Every write, fill and load registers a record for its key before it goes to Redis or
 * the loader and drops it when done (l1.c: the safety argument), so on a write-heavy
 * workload records are made and dropped at the rate of writes, almost always with no
 * other record in the shard. The table is built for that: 16 bucket heads inline in the
 * shard (no table to allocate for the first record or free after the last, as a general
 * hash table would), chains through the records, and up to four released records kept
 * for reuse with their condition variable initialised, so a write allocates no record and
 * initialises no condition variable. Records are few (one per key in flight: at most
 * the threads using the shard), so a chain is short.
 *
 *   bucket = bits 16..19 of the key's hash (the shard took bits 32 and up; the slot table
 *            uses them too only in shards of 2^17 slots or more, which costs nothing:
 *            any fixed bits of a well-mixed hash spread the keys)
 */
#include "l1_inflight.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPARE_KEY_CAP 64u /* keys up to this long reuse a spare record */

static unsigned bucket_of(uint64_t h) {
    return (unsigned)(h >> 16) & (TC__L1_INFLIGHT_BUCKETS - 1u);
}

/* Zero every per-use field: from inval_seq up to the key. */
static void clear_record(tc__pending_t *p) {
    memset(&p->inval_seq, 0, offsetof(tc__pending_t, h) - offsetof(tc__pending_t, inval_seq));
}

tc__pending_t *tc__l1_inflight_find(const tc__l1_inflight_t *t, uint64_t h, const void *key,
                                    size_t klen) {
    for (tc__pending_t *p = t->bucket[bucket_of(h)]; p; p = p->next)
        if (p->h == h && p->klen == klen && memcmp(p->key, key, klen) == 0)
            return p;
    return NULL;
}

static tc__pending_t *new_record(size_t key_cap) {
    tc__pending_t *p = calloc(1, sizeof *p + key_cap);
    if (!p)
        return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* timed waits use tc__now_ns */
    int rc = pthread_cond_init(&p->done, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        free(p);
        return NULL;
    }
    p->key_cap = key_cap;
    return p;
}

tc__pending_t *tc__l1_inflight_get(tc__l1_inflight_t *t, uint64_t h, const void *key,
                                   size_t klen) {
    tc__pending_t *p = tc__l1_inflight_find(t, h, key, klen);
    if (p)
        return p;
    if (klen <= SPARE_KEY_CAP && t->spare) {
        p = t->spare;
        t->spare = p->next;
        t->spares--;
    } else {
        p = new_record(klen <= SPARE_KEY_CAP ? SPARE_KEY_CAP : klen);
        if (!p)
            return NULL;
    }
    clear_record(p);
    p->h = h;
    p->klen = klen;
    memcpy(p->key, key, klen);
    unsigned b = bucket_of(h);
    p->next = t->bucket[b];
    t->bucket[b] = p;
    return p;
}

void tc__l1_inflight_release(tc__l1_inflight_t *t, tc__pending_t *p) {
    tc__pending_t **at = &t->bucket[bucket_of(p->h)];
    while (*at != p) /* present: the walk ends on it */
        at = &(*at)->next;
    *at = p->next;
    if (p->result) {
        tc_ref_release(p->result);
        p->result = NULL;
    }
    if (p->key_cap == SPARE_KEY_CAP && t->spares < TC__L1_INFLIGHT_SPARES) {
        p->next = t->spare; /* nobody waits on done: users, waiters and leader are gone */
        t->spare = p;
        t->spares++;
        return;
    }
    pthread_cond_destroy(&p->done);
    free(p);
}

tc__pending_t *tc__l1_inflight_first(const tc__l1_inflight_t *t) {
    for (unsigned b = 0; b < TC__L1_INFLIGHT_BUCKETS; b++)
        if (t->bucket[b])
            return t->bucket[b];
    return NULL;
}

tc__pending_t *tc__l1_inflight_next(const tc__l1_inflight_t *t, const tc__pending_t *p) {
    if (p->next)
        return p->next;
    for (unsigned b = bucket_of(p->h) + 1; b < TC__L1_INFLIGHT_BUCKETS; b++)
        if (t->bucket[b])
            return t->bucket[b];
    return NULL;
}

void tc__l1_inflight_deinit(tc__l1_inflight_t *t) {
    while (t->spare) {
        tc__pending_t *p = t->spare;
        t->spare = p->next;
        pthread_cond_destroy(&p->done);
        free(p);
    }
    t->spares = 0;
}
