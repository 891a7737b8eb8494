/*
 * micro_floor.c - what the key draws allow: micro's "floor" column.
 *
 * micro's cpu-only row says how well the machine scales private work. It does not say what
 * the workload itself allows. Under Zipf 0.99 over a million keys the hottest key takes
 * about 7% of all operations and the ten hottest about 20%, so two threads keep writing the
 * same few cache lines, and each such write waits for the line to come from the other core
 * (125-165 ns on the 2-core machine this was written on, against 40-70 ns between the cores
 * of one server socket). No cache can avoid every such write:
 *
 *   get   tc_get hands out a reference that stays valid until tc_ref_release, even if the
 *         entry is replaced meanwhile, so a hit must pin the entry and the release unpin it:
 *         two atomic writes to a line of the key's own, whatever the index.
 *   set   a new value must be allocated and filled (the old one may still be pinned, so it
 *         cannot be overwritten in place), published in the one place readers look for the
 *         key, and the old one released.
 *
 * The floor does exactly that and nothing else: one 64-byte record per key (reference
 * count, the key, the entry pointer), found by index instead of by hash (no table, no lock,
 * no eviction policy, no budget), on micro's own key draws. Then, so that it is compared
 * at the library's own cost per operation (sharing hurts less the more private work
 * surrounds it), each operation is padded with private arithmetic until one thread takes
 * as long per operation as the library did. What the floor loses from one thread to two
 * is what the skew costs on this machine; a cache that writes more lines per operation
 * (a shard lock, queue neighbours, counters) can only lose more. Read the library's
 * scaling against the floor's, as against cpu-only for the machine.
 *
 * The floor frees a replaced entry at once: its gets pin the record, not the entry, so no
 * reader ever holds one. That is a write fewer than a real cache makes, which keeps it a
 * floor.
 */
#include "micro_floor.h"

#include "micro_run.h"
#include "rng.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FLOOR_KEY_MAX 40 /* micro's keys are 17 bytes */
/* About an L1 entry's head, so that set allocates the library's size class. */
#define FLOOR_ENTRY_HDR   48
#define FLOOR_MAX_THREADS 1024

typedef struct floor_rec {
    atomic_uint refs;
    uint32_t klen;
    _Atomic(unsigned char *) entry;
    unsigned char key[FLOOR_KEY_MAX];
} __attribute__((aligned(64))) floor_rec_t;

struct tcb_floor {
    floor_rec_t *recs;
    uint64_t n;
    const char *keys;
    size_t klen, vlen, entry_bytes;
    unsigned char *value;
    uint32_t *const *rings;
    size_t ring_mask;
};

static unsigned char *entry_new(const tcb_floor_t *f, const void *key) {
    unsigned char *e = malloc(f->entry_bytes);
    if (e) {
        memset(e, 0, FLOOR_ENTRY_HDR);
        memcpy(e + FLOOR_ENTRY_HDR, key, f->klen);
        memcpy(e + FLOOR_ENTRY_HDR + f->klen, f->value, f->vlen);
    }
    return e;
}

void tcb_floor_close(tcb_floor_t *f) {
    if (!f)
        return;
    if (f->recs)
        for (uint64_t i = 0; i < f->n; i++)
            free(atomic_load_explicit(&f->recs[i].entry, memory_order_relaxed));
    free(f->recs);
    free(f->value);
    free(f);
}

tcb_floor_t *tcb_floor_open(uint64_t n, const char *keys, size_t klen, size_t vlen,
                            uint32_t *const *rings, size_t ring_len) {
    if (klen > FLOOR_KEY_MAX || !ring_len || (ring_len & (ring_len - 1)))
        return NULL;
    tcb_floor_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    *f = (tcb_floor_t){.n = n,
                       .keys = keys,
                       .klen = klen,
                       .vlen = vlen,
                       .entry_bytes = FLOOR_ENTRY_HDR + klen + vlen,
                       .rings = rings,
                       .ring_mask = ring_len - 1};
    f->value = malloc(vlen ? vlen : 1);
    f->recs = aligned_alloc(64, (size_t)n * sizeof *f->recs);
    if (!f->value || !f->recs) {
        tcb_floor_close(f);
        return NULL;
    }
    memset(f->value, 'v', vlen);
    memset(f->recs, 0, (size_t)n * sizeof *f->recs);
    for (uint64_t i = 0; i < n; i++) {
        floor_rec_t *r = &f->recs[i];
        r->klen = (uint32_t)klen;
        memcpy(r->key, keys + i * klen, klen);
        unsigned char *e = entry_new(f, r->key);
        if (!e) {
            tcb_floor_close(f);
            return NULL;
        }
        atomic_store_explicit(&r->entry, e, memory_order_relaxed);
    }
    return f;
}

/* Private arithmetic the compiler cannot drop: the padding. */
static uint64_t pad_work(uint64_t x, unsigned pad) {
    for (unsigned i = 0; i < pad; i++)
        x = tcb_mix64(x);
    return x;
}

static int floor_get(const tcb_floor_t *f, floor_rec_t *r, const char *key) {
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    int found = r->klen == f->klen && memcmp(r->key, key, f->klen) == 0;
    atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel);
    return !found;
}

static int floor_set(const tcb_floor_t *f, floor_rec_t *r, const char *key) {
    unsigned char *e = entry_new(f, key);
    if (!e)
        return 1;
    free(atomic_exchange_explicit(&r->entry, e, memory_order_acq_rel));
    return 0;
}

typedef struct floor_thread {
    tcb_micro_worker_t w; /* first: the timed run's part (micro_run.h) */
    tcb_floor_t *f;
    tcb_floor_op_t op;
    unsigned pad;
    uint64_t sink;
} floor_thread_t;

static void *floor_main(void *arg) {
    floor_thread_t *t = arg;
    tcb_floor_t *f = t->f;
    const uint32_t *ring = f->rings[t->w.tid];
    tcb_micro_start(&t->w);
    uint64_t i = 0, errors = 0, x = t->w.tid + 1;
    while (!tcb_micro_stopped(&t->w)) {
        for (int b = 0; b < 64; b++, i++) {
            uint32_t k = ring[i & f->ring_mask];
            const char *key = f->keys + (size_t)k * f->klen;
            x = pad_work(x ^ k, t->pad);
            if (t->op == TCB_FLOOR_SET || (t->op == TCB_FLOOR_MIX && i % 10 == 9))
                errors += floor_set(f, &f->recs[k], key);
            else
                errors += floor_get(f, &f->recs[k], key);
        }
    }
    t->w.ops = i;
    t->w.errors = errors;
    t->sink = x;
    return NULL;
}

double tcb_floor_run(tcb_floor_t *f, tcb_floor_op_t op, unsigned pad, unsigned nthreads,
                     uint64_t duration_ns) {
    static floor_thread_t ts[FLOOR_MAX_THREADS];
    if (nthreads < 1 || nthreads > FLOOR_MAX_THREADS)
        return 0;
    for (unsigned i = 0; i < nthreads; i++)
        ts[i] = (floor_thread_t){.f = f, .op = op, .pad = pad};
    uint64_t errors = 0; /* only allocation failures: the rate says enough */
    return tcb_micro_run(ts, sizeof ts[0], nthreads, floor_main, duration_ns, &errors);
}

#define CALIBRATE_NS  250000000ull /* per probe; two probes */
#define CALIBRATE_PAD 256u

unsigned tcb_floor_pad_for(tcb_floor_t *f, tcb_floor_op_t op, double target_ns) {
    double bare = 1e9 / tcb_floor_run(f, op, 0, 1, CALIBRATE_NS);
    double padded = 1e9 / tcb_floor_run(f, op, CALIBRATE_PAD, 1, CALIBRATE_NS);
    double per_iteration = (padded - bare) / CALIBRATE_PAD;
    if (!(per_iteration > 0) || !(target_ns > bare))
        return 0;
    double pad = (target_ns - bare) / per_iteration;
    return pad > 1e6 ? 1000000u : (unsigned)(pad + 0.5);
}
