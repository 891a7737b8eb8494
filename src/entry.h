/*
 * entry.h - one cached value: the unit L1 stores and the tc_ref_t callers hold.
 *
 *   +---------------------------+  one allocation, charged at its real size class
 *   | UT_hash_handle hh   56 B  |  bucket chain + uthash's insertion-order list, which
 *   |                           |  L1 reuses as its LRU list (no extra links)
 *   | refs                 4 B  |  1 for L1 membership + 1 per tc_ref_t handed out
 *   | vlen                 4 B  |
 *   | expiry_ms            8 B  |  coarse-monotonic ms; UINT64_MAX = never
 *   | version              8 B  |  Redis write version (0 = not from Redis)
 *   | data[klen + vlen]         |  key bytes, then value bytes (hh.key points here)
 *   +---------------------------+
 *
 * A tc_ref_t is the entry itself: handing one out is a reference-count increment, so a hit
 * neither allocates nor copies. An entry is immutable once built; replacing a key inserts
 * a new entry, so readers holding the old one keep a consistent value. The last release
 * frees it, whether or not it is still in L1, and it needs no pointer back to the cache,
 * so refs outlive tc_close().
 */
#ifndef TC_ENTRY_H
#define TC_ENTRY_H

#include "tiercache.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

struct tc_ref {
    UT_hash_handle hh;
    atomic_uint refs;
    uint32_t vlen;
    uint64_t expiry_ms;
    uint64_t version;
    unsigned char data[];
};

#define TC__NO_EXPIRY UINT64_MAX

static inline size_t tc__entry_klen(const tc_ref_t *e) {
    return e->hh.keylen;
}
static inline const unsigned char *tc__entry_key(const tc_ref_t *e) {
    return e->data;
}
static inline size_t tc__entry_alloc_size(size_t klen, size_t vlen) {
    return sizeof(struct tc_ref) + klen + vlen;
}

/* New standalone entry (refs = 1) holding copies of key and value; value may be NULL to
 * leave the bytes for the caller to fill through tc__entry_value_mut(). NULL on ENOMEM. */
tc_ref_t *tc__entry_new(const void *key, size_t klen, const void *value, size_t vlen);
static inline unsigned char *tc__entry_value_mut(tc_ref_t *e) {
    return e->data + e->hh.keylen;
}
/* Bytes the allocator charges for e. */
size_t tc__entry_charge(const tc_ref_t *e);
/* Add a reference (caller already holds one, or holds the lock guarding L1's). */
static inline void tc__entry_pin(tc_ref_t *e) {
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

#endif
