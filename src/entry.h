/*
 * entry.h - one cached value: the unit L1 stores and the tc_ref_t callers hold.
 *
 *   +---------------------------+  one allocation, charged at its real size class
 *   | older, newer        16 B  |  L1's eviction queues (l1_policy.c); no other links: the
 *   |                           |  shard's table points at entries, entries not at it
 *   | version              8 B  |  Redis write version (0 = not from Redis)
 *   | expiry_ms            8 B  |  coarse-monotonic ms; UINT64_MAX = never
 *   | refs                 4 B  |  1 for L1 membership + 1 per tc_ref_t handed out
 *   | vlen (+ 2 flag bits)  4 B |  has-ext, and read-from-Redis (its version is only as
 *   |                           |  trustworthy as whoever wrote the stored value)
 *   | klen                 2 B  |  keys are at most TC_MAX_KEY_LEN (65535) bytes
 *   | lru                  1 B  |  L1's eviction marks (l1_policy.c), under the shard lock
 *   | data[klen + vlen]         |  key bytes, then value bytes, right after the 43-byte head
 *   | [pad to 8, ext      48 B] |  optional freshness block (see below)
 *   +---------------------------+
 *
 * The head is 43 bytes, not a multiple of 8: data starts where the head ends, so a 17-byte
 * key and a 100-byte value fill a 160-byte size class exactly. Nothing is promised about
 * the alignment of a value (it never was: it follows a key of any length).
 *
 * A tc_ref_t is the entry itself: handing one out is a reference-count increment, so a hit
 * neither allocates nor copies. An entry is immutable while anyone but L1 holds it (but
 * for the links, the lru byte and a sliding TTL's expiry, which only L1 changes, under its
 * shard lock with lock-free readers kept out: l1_readers.h; the expiry is an atomic, since
 * fetches read it on entries they hold without the lock); replacing a key inserts a new
 * entry, so readers holding the old one keep a consistent value. Only an entry whose sole
 * reference is L1's may take a new value of its key of the same size in place (an L1-only
 * write, under the shard lock with readers kept out: l1.c rewrite_locked). The last release
 * frees it, whether or not it is still in L1, and it needs no pointer back to the cache, so
 * refs outlive tc_close().
 */
#ifndef TC_ENTRY_H
#define TC_ENTRY_H

#include "tiercache.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct tc_ref {
    tc_ref_t *older, *newer; /* L1's eviction queue links, under the shard lock */
    uint64_t version;
    _Atomic uint64_t expiry_ms; /* tc__entry_expiry: a pinned entry's is read unlocked */
    atomic_uint refs;
    uint32_t vlen_bits; /* value length, TC__ENTRY_HAS_EXT and TC__ENTRY_READ */
    uint16_t klen;
    uint8_t lru; /* L1's eviction policy's marks (l1_policy.c), under the shard lock */
    unsigned char data[];
};

/* Where the key starts: the head's size without the padding sizeof would add. */
#define TC__ENTRY_HEAD offsetof(struct tc_ref, data)

/* Freshness metadata, present only in caches that use stale windows, fail-safe, early
 * refresh, negative caching or sliding TTLs (so the others keep a 43-byte head). It sits
 * after the key and value, 8-byte aligned. Fields a hit may change (sliding, back-off) are
 * atomics: readers look at them outside the shard lock. */
typedef struct tc__entry_ext {
    _Atomic uint64_t fresh_until_ms; /* stale from here on (coarse monotonic ms) */
    _Atomic uint64_t stale_until_ms; /* stale-while-revalidate ends here; fail-safe may
                                        serve until expiry_ms */
    uint64_t slide_cap_ms;           /* sliding TTL never extends past this; 0 = no sliding */
    uint32_t ttl_ms;                 /* the fresh TTL (the sliding step) */
    uint32_t load_ms;                /* how long the value took to load (early refresh) */
    _Atomic uint64_t retry_after_ms; /* fail-safe back-off: no reload before this; 0 = none */
    uint32_t flags;                  /* TC__ENTRY_ABSENT */
    atomic_uint refreshing;          /* a background refresh is queued or running */
} tc__entry_ext_t;

#define TC__NO_EXPIRY     UINT64_MAX
#define TC__ENTRY_HAS_EXT 0x80000000u
/* The value (and version) came from a read of Redis, not from this process's own script:
 * anyone with the credentials may have forged it, so it yields to every other version
 * (l1.c). Values are below 2^29 bytes: the two top bits are free. */
#define TC__ENTRY_READ      0x40000000u
#define TC__ENTRY_VLEN_MASK 0x3FFFFFFFu
#define TC__ENTRY_ABSENT    1u /* a cached "not found" (negative caching) */

static inline size_t tc__entry_klen(const tc_ref_t *e) {
    return e->klen;
}
static inline const unsigned char *tc__entry_key(const tc_ref_t *e) {
    return e->data;
}
static inline size_t tc__entry_vlen(const tc_ref_t *e) {
    return e->vlen_bits & TC__ENTRY_VLEN_MASK;
}
/* The freshness block's offset from the start of the entry (8-byte aligned there: the
 * allocation itself is). */
static inline size_t tc__entry_ext_offset(size_t klen, size_t vlen) {
    return (TC__ENTRY_HEAD + klen + vlen + 7u) & ~(size_t)7u;
}
static inline size_t tc__entry_alloc_size_ext(size_t klen, size_t vlen, int ext) {
    return ext ? tc__entry_ext_offset(klen, vlen) + sizeof(tc__entry_ext_t)
               : TC__ENTRY_HEAD + klen + vlen;
}
static inline size_t tc__entry_alloc_size(size_t klen, size_t vlen) {
    return tc__entry_alloc_size_ext(klen, vlen, 0);
}
/* The bytes e was allocated with (head, key, value, freshness block); a rewrite in place
 * keeps them (l1.c rewrite_locked). */
static inline size_t tc__entry_size(const tc_ref_t *e) {
    return tc__entry_alloc_size_ext(e->klen, tc__entry_vlen(e),
                                    (e->vlen_bits & TC__ENTRY_HAS_EXT) != 0);
}
/* The freshness block, or NULL for a plain entry. */
static inline tc__entry_ext_t *tc__entry_ext(const tc_ref_t *e) {
    if (!(e->vlen_bits & TC__ENTRY_HAS_EXT))
        return NULL;
    return (tc__entry_ext_t *)(void *)((unsigned char *)(uintptr_t)e +
                                       tc__entry_ext_offset(e->klen, tc__entry_vlen(e)));
}

/* New standalone entry (refs = 1) holding copies of key and value; value may be NULL to
 * leave the bytes for the caller to fill through tc__entry_value_mut(). NULL on ENOMEM. */
tc_ref_t *tc__entry_new(const void *key, size_t klen, const void *value, size_t vlen);
/* The same with a zeroed freshness block when ext is nonzero. */
tc_ref_t *tc__entry_new_ext(const void *key, size_t klen, const void *value, size_t vlen,
                            int ext);
static inline unsigned char *tc__entry_value_mut(tc_ref_t *e) {
    return e->data + e->klen;
}
/* e's L1 expiry (coarse monotonic ms). An atomic, though only L1 writes it once e is
 * published (a sliding hit, or a write rewriting an entry nobody holds, under the shard
 * lock with readers excluded), because a fetch reads it on an entry it holds, outside the
 * lock (fail-safe: may the last value still be served?). Relaxed: it publishes nothing
 * else. */
static inline uint64_t tc__entry_expiry(const tc_ref_t *e) {
    return atomic_load_explicit(&e->expiry_ms, memory_order_relaxed);
}
static inline void tc__entry_set_expiry(tc_ref_t *e, uint64_t ms) {
    atomic_store_explicit(&e->expiry_ms, ms, memory_order_relaxed);
}
/* Bytes the allocator charges for e. */
size_t tc__entry_charge(const tc_ref_t *e);
/* Add a reference (caller already holds one, or holds the lock guarding L1's). */
static inline void tc__entry_pin(tc_ref_t *e) {
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

#endif
