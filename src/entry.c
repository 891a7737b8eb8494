/*
 * entry.c - building and releasing entries, and the public tc_ref_* accessors.
 *
 * An entry is one allocation (see entry.h) freed by whoever drops the last reference: L1
 * when it evicts an unpinned entry, or the caller's tc_ref_release() when a reader still
 * held it. The release is a single atomic decrement, so it never needs the shard lock
 * and may run on any thread, even after tc_close().
 */
#include "entry.h"

#include "alloc.h"
#include "clock.h"

#include <string.h>

tc_ref_t *tc__entry_new_ext(const void *key, size_t klen, const void *value, size_t vlen,
                            int ext) {
    size_t size = tc__entry_alloc_size_ext(klen, vlen, ext);
    tc_ref_t *e = tc__alloc(size);
    if (!e)
        return NULL;
    memset(e, 0, TC__ENTRY_HEAD); /* not sizeof: the head's padding is the key's bytes */
    atomic_init(&e->refs, 1);
    e->vlen_bits = (uint32_t)vlen | (ext ? TC__ENTRY_HAS_EXT : 0);
    atomic_init(&e->expiry_ms, TC__NO_EXPIRY);
    memcpy(e->data, key, klen);
    if (value && vlen)
        memcpy(e->data + klen, value, vlen);
    e->klen = (uint16_t)klen;
    tc__entry_ext_t *x = tc__entry_ext(e);
    if (x) {
        memset(x, 0, sizeof *x);
        atomic_init(&x->fresh_until_ms, TC__NO_EXPIRY);
        atomic_init(&x->stale_until_ms, TC__NO_EXPIRY);
        atomic_init(&x->retry_after_ms, 0);
    }
    return e;
}

tc_ref_t *tc__entry_new(const void *key, size_t klen, const void *value, size_t vlen) {
    return tc__entry_new_ext(key, klen, value, vlen, 0);
}

size_t tc__entry_charge(const tc_ref_t *e) {
    return tc__alloc_charge(tc__entry_size(e));
}

const void *tc_ref_data(const tc_ref_t *ref) {
    return ref->data + ref->klen;
}

size_t tc_ref_size(const tc_ref_t *ref) {
    return tc__entry_vlen(ref);
}

int tc_ref_stale(const tc_ref_t *ref) {
    const tc__entry_ext_t *x = tc__entry_ext(ref);
    return x && tc__now_ms() >= atomic_load_explicit(&x->fresh_until_ms, memory_order_relaxed);
}

void tc_ref_release(tc_ref_t *ref) {
    if (!ref)
        return;
    /* acq_rel: every reader's use of the bytes happens-before the free below. */
    if (atomic_fetch_sub_explicit(&ref->refs, 1, memory_order_acq_rel) == 1)
        tc__free(ref, tc__entry_size(ref));
}
