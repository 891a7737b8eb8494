/*
 * marks.c - the local copy of the clear and namespace marks (marks.h says when it is
 * trusted). A reader-writer lock guards a uthash table of namespace -> mark; the clear mark
 * and the "current" flag are atomics. Readers are L2 reads (already a network round trip
 * away from the hit path); writers are the listener thread.
 */
#include "marks.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

typedef struct ns_mark {
    UT_hash_handle hh;
    uint64_t version;
    size_t len;
    unsigned char ns[]; /* the namespace with its separator */
} ns_mark_t;

struct tc__marks {
    pthread_rwlock_t lock; /* guards table and count */
    ns_mark_t *table;
    size_t count;
    int sep;
    unsigned depth;
    _Atomic uint64_t clear;
    atomic_int current;
    _Atomic uint64_t gen;
};

tc__marks_t *tc__marks_new(int sep, unsigned depth) {
    tc__marks_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_rwlock_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    m->sep = sep;
    m->depth = depth;
    return m;
}

void tc__marks_free(tc__marks_t *m) {
    if (!m)
        return;
    ns_mark_t *e, *tmp;
    HASH_ITER(hh, m->table, e, tmp) {
        HASH_DEL(m->table, e);
        free(e);
    }
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

int tc__marks_judge(tc__marks_t *m, const void *key, size_t klen, uint64_t *mark) {
    if (!m || !atomic_load_explicit(&m->current, memory_order_acquire))
        return 0;
    uint64_t w = atomic_load_explicit(&m->clear, memory_order_relaxed);
    const unsigned char *k = key;
    if (m->sep >= 0) {
        unsigned seen = 0;
        pthread_rwlock_rdlock(&m->lock);
        for (size_t i = 1; i < klen && seen < m->depth && m->table; i++) {
            if (k[i] != (unsigned char)m->sep)
                continue;
            seen++;
            ns_mark_t *e = NULL;
            HASH_FIND(hh, m->table, k, (unsigned)(i + 1), e);
            if (e && e->version > w)
                w = e->version;
        }
        pthread_rwlock_unlock(&m->lock);
    }
    /* A load or loss that raced us: the answer may be incomplete; ask Redis. */
    if (!atomic_load_explicit(&m->current, memory_order_acquire))
        return 0;
    *mark = w;
    return 1;
}

void tc__marks_note(tc__marks_t *m, const void *ns, size_t nslen, uint64_t version) {
    if (!m)
        return;
    if (!ns) {
        uint64_t cur = atomic_load(&m->clear);
        while (cur < version && !atomic_compare_exchange_weak(&m->clear, &cur, version)) {
        }
        return;
    }
    pthread_rwlock_wrlock(&m->lock);
    ns_mark_t *e = NULL;
    HASH_FIND(hh, m->table, ns, (unsigned)nslen, e);
    if (e) {
        if (version > e->version)
            e->version = version;
    } else if (m->count >= TC__MARKS_MAX || !(e = malloc(sizeof *e + nslen))) {
        atomic_store(&m->current, 0); /* too many to keep (or no memory): ask Redis */
    } else {
        e->version = version;
        e->len = nslen;
        memcpy(e->ns, ns, nslen);
        HASH_ADD_KEYPTR(hh, m->table, e->ns, (unsigned)nslen, e);
        m->count++;
    }
    pthread_rwlock_unlock(&m->lock);
}

uint64_t tc__marks_unknown(tc__marks_t *m) {
    if (!m)
        return 0;
    atomic_store(&m->current, 0);
    return atomic_fetch_add(&m->gen, 1) + 1;
}

uint64_t tc__marks_generation(tc__marks_t *m) {
    return m ? atomic_load(&m->gen) : 0;
}

void tc__marks_loaded(tc__marks_t *m, uint64_t gen) {
    if (!m)
        return;
    pthread_rwlock_rdlock(&m->lock);
    int fits = m->count < TC__MARKS_MAX;
    pthread_rwlock_unlock(&m->lock);
    if (fits && atomic_load(&m->gen) == gen)
        atomic_store_explicit(&m->current, 1, memory_order_release);
}
