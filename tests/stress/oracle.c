/*
 * oracle.c - the shared write record of the coherence stress test (see oracle.h for the
 * model and the staleness rule).
 *
 * File layout (every field an atomic where more than one process touches it):
 *
 *   +---------------------------+ 0
 *   | hdr: magic, bytes, shape, |
 *   | phase, ready, quiet,      |
 *   | run_start_ns, fault log   |
 *   +---------------------------+ ORACLE_HDR_BYTES
 *   | ring 0                    |   own key k            -> ring k
 *   | ring 1 ...                |   hot key j, writer w  -> own_total + j * writers + w
 *   |                           |   cold key c           -> own_total + hot * writers + c
 *   +---------------------------+
 *   key indexes: own (writer-major), then hot, then cold (writer-major; c counts from the
 *   first cold key)
 *   ring: head, source, rec[TC_ORACLE_RING]; rec: lock, seq, start, end,
 *         state (outcome | op << 8 | -rc << 16)
 *
 * Seqlock protocol (Boehm, "Can seqlocks get along with programming language memory
 * models?"): the writer makes lock odd, fences, stores the fields relaxed, then makes lock
 * even with release; a reader loads lock with acquire, the fields relaxed, fences with
 * acquire, and trusts the copy only if lock was even and unchanged. A record whose lock
 * stays odd (a writer descheduled mid-update) is skipped after a bounded wait: it is then
 * the newest record of its ring, and skipping it can only hide staleness, never invent it.
 */
#include "oracle.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ORACLE_MAGIC      0x74636f7261636c65ull /* "tcoracle" */
#define ORACLE_HDR_BYTES  (256u * 1024u)
#define ORACLE_READ_TRIES 10000 /* seqlock retries before a record is skipped */
#define ORACLE_PAD_MIN    48u
#define ORACLE_PAD_SPAN   160u
#define STATE_OP_SHIFT    8u /* state: outcome | op << 8 | -rc << 16 */
#define STATE_RC_SHIFT    16u
#define STATE_MASK        0xffu

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the oracle needs lock-free 64-bit atomics");

typedef struct tc_oracle_rec {
    _Atomic uint64_t lock;
    _Atomic uint64_t seq, start_ns, end_ns, state;
} tc_oracle_rec_t;

typedef struct tc_oracle_ring {
    _Atomic uint64_t head;
    _Atomic uint64_t source;
    tc_oracle_rec_t rec[TC_ORACLE_RING];
} tc_oracle_ring_t;

typedef struct tc_oracle_fault {
    _Atomic uint64_t kind, start_ns, end_ns;
} tc_oracle_fault_t;

typedef struct tc_oracle_hdr {
    _Atomic uint64_t magic;
    uint64_t bytes;
    tc_oracle_shape_t shape;
    _Atomic uint32_t phase, ready, quiet, nfaults;
    _Atomic uint64_t run_start_ns; /* when the phase became RUN: the timeline's zero */
    tc_oracle_fault_t faults[TC_ORACLE_MAX_FAULTS];
} tc_oracle_hdr_t;

_Static_assert(sizeof(tc_oracle_hdr_t) <= ORACLE_HDR_BYTES, "oracle header too large");

struct tc_oracle {
    tc_oracle_hdr_t *hdr;
    tc_oracle_ring_t *rings;
    size_t bytes;
    unsigned writers, own_total, cold_first, nkeys;
};

/* A record as one consistent copy. */
typedef struct rec_copy {
    uint64_t seq, start_ns, end_ns;
    tc_oracle_outcome_t outcome;
    tc_oracle_op_t op;
    int rc;
} rec_copy_t;

static const char *const fault_names[] = {
#define TC__FAULT_NAME(id, name) name,
    TC_ORACLE_FAULTS(TC__FAULT_NAME)
#undef TC__FAULT_NAME
};

const char *tc_fault_name(int kind) {
    return kind >= 0 && kind < TC_FAULT_COUNT ? fault_names[kind] : "none";
}

uint64_t tc_oracle_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- layout ---- */

static size_t shape_rings(const tc_oracle_shape_t *s) {
    size_t writers = (size_t)s->procs * s->threads;
    return writers * (s->own_keys + s->hot_keys + s->cold_keys);
}

static size_t shape_bytes(const tc_oracle_shape_t *s) {
    return ORACLE_HDR_BYTES + shape_rings(s) * sizeof(tc_oracle_ring_t);
}

static void derive(tc_oracle_t *o) {
    const tc_oracle_shape_t *s = &o->hdr->shape;
    o->rings = (tc_oracle_ring_t *)((char *)o->hdr + ORACLE_HDR_BYTES);
    o->writers = s->procs * s->threads;
    o->own_total = o->writers * s->own_keys;
    o->cold_first = o->own_total + s->hot_keys;
    o->nkeys = o->cold_first + o->writers * s->cold_keys;
}

static tc_oracle_ring_t *ring_of(const tc_oracle_t *o, unsigned key, unsigned writer) {
    size_t hot_rings = (size_t)o->hdr->shape.hot_keys * o->writers;
    if (key < o->own_total)
        return &o->rings[key];
    if (key >= o->cold_first)
        return &o->rings[o->own_total + hot_rings + (key - o->cold_first)];
    return &o->rings[o->own_total + (size_t)(key - o->own_total) * o->writers + writer];
}

static tc_oracle_t *map_file(int fd, size_t bytes) {
    tc_oracle_t *o = calloc(1, sizeof *o);
    void *m = o ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (m == MAP_FAILED) {
        fprintf(stderr, "oracle: mmap: %s\n", strerror(errno));
        free(o);
        return NULL;
    }
    o->hdr = m;
    o->bytes = bytes;
    return o;
}

tc_oracle_t *tc_oracle_create(const char *path, const tc_oracle_shape_t *shape) {
    size_t bytes = shape_bytes(shape);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) {
        fprintf(stderr, "oracle: create %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    tc_oracle_t *o = map_file(fd, bytes);
    close(fd);
    if (!o)
        return NULL;
    o->hdr->bytes = bytes;
    o->hdr->shape = *shape;
    derive(o);
    atomic_store_explicit(&o->hdr->magic, ORACLE_MAGIC, memory_order_release);
    return o;
}

tc_oracle_t *tc_oracle_attach(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || (size_t)st.st_size < ORACLE_HDR_BYTES) {
        fprintf(stderr, "oracle: attach %s: %s\n", path, fd < 0 ? strerror(errno) : "short");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    tc_oracle_t *o = map_file(fd, (size_t)st.st_size);
    close(fd);
    if (!o)
        return NULL;
    if (atomic_load_explicit(&o->hdr->magic, memory_order_acquire) != ORACLE_MAGIC ||
        o->hdr->bytes != o->bytes || shape_bytes(&o->hdr->shape) != o->bytes) {
        fprintf(stderr, "oracle: %s is not an oracle file\n", path);
        tc_oracle_detach(o);
        return NULL;
    }
    derive(o);
    return o;
}

void tc_oracle_detach(tc_oracle_t *o) {
    if (!o)
        return;
    munmap(o->hdr, o->bytes);
    free(o);
}

const tc_oracle_shape_t *tc_oracle_shape(const tc_oracle_t *o) {
    return &o->hdr->shape;
}

unsigned tc_oracle_nkeys(const tc_oracle_t *o) {
    return o->nkeys;
}

unsigned tc_oracle_writers(const tc_oracle_t *o) {
    return o->writers;
}

tc_oracle_key_kind_t tc_oracle_key_kind(const tc_oracle_t *o, unsigned key) {
    if (key < o->own_total)
        return TC_KEY_OWN;
    return key < o->cold_first ? TC_KEY_HOT : TC_KEY_COLD;
}

unsigned tc_oracle_own_key(const tc_oracle_t *o, unsigned writer, unsigned i) {
    return writer * o->hdr->shape.own_keys + i;
}

unsigned tc_oracle_hot_key(const tc_oracle_t *o, unsigned j) {
    return o->own_total + j;
}

unsigned tc_oracle_cold_key(const tc_oracle_t *o, unsigned writer, unsigned i) {
    return o->cold_first + writer * o->hdr->shape.cold_keys + i;
}

unsigned tc_oracle_key_owner(const tc_oracle_t *o, unsigned key) {
    if (key >= o->cold_first)
        return (key - o->cold_first) / o->hdr->shape.cold_keys;
    return key / o->hdr->shape.own_keys;
}

size_t tc_oracle_key_name(const tc_oracle_t *o, unsigned key, char out[TC_ORACLE_NAME_MAX]) {
    unsigned own = o->hdr->shape.own_keys, cold = o->hdr->shape.cold_keys;
    int n;
    if (key < o->own_total)
        n = snprintf(out, TC_ORACLE_NAME_MAX, "own:%u.%u", key / own, key % own);
    else if (key < o->cold_first)
        n = snprintf(out, TC_ORACLE_NAME_MAX, "hot:%u", key - o->own_total);
    else
        n = snprintf(out, TC_ORACLE_NAME_MAX, "cold:%u.%u", (key - o->cold_first) / cold,
                     (key - o->cold_first) % cold);
    return n > 0 ? (size_t)n : 0;
}

int tc_oracle_key_index(const tc_oracle_t *o, const void *name, size_t len) {
    char buf[TC_ORACLE_NAME_MAX], want[TC_ORACLE_NAME_MAX];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, name, len);
    buf[len] = '\0';
    unsigned a = 0, b = 0, key = 0;
    if (sscanf(buf, "own:%u.%u", &a, &b) == 2 && a < o->writers && b < o->hdr->shape.own_keys)
        key = tc_oracle_own_key(o, a, b);
    else if (sscanf(buf, "hot:%u", &a) == 1 && a < o->hdr->shape.hot_keys)
        key = tc_oracle_hot_key(o, a);
    else if (sscanf(buf, "cold:%u.%u", &a, &b) == 2 && a < o->writers &&
             b < o->hdr->shape.cold_keys)
        key = tc_oracle_cold_key(o, a, b);
    else
        return -1;
    /* Round trip, so "own:01.2" or trailing bytes are refused. */
    return tc_oracle_key_name(o, key, want) == len && memcmp(want, buf, len) == 0 ? (int)key
                                                                                  : -1;
}

/* ---- records ---- */

static void rec_store(tc_oracle_rec_t *r, const rec_copy_t *c) {
    uint64_t l = atomic_load_explicit(&r->lock, memory_order_relaxed);
    atomic_store_explicit(&r->lock, l + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&r->seq, c->seq, memory_order_relaxed);
    atomic_store_explicit(&r->start_ns, c->start_ns, memory_order_relaxed);
    atomic_store_explicit(&r->end_ns, c->end_ns, memory_order_relaxed);
    uint64_t st = (uint64_t)c->outcome | (uint64_t)c->op << STATE_OP_SHIFT |
                  (uint64_t)(c->rc < 0 ? -c->rc : 0) << STATE_RC_SHIFT;
    atomic_store_explicit(&r->state, st, memory_order_relaxed);
    atomic_store_explicit(&r->lock, l + 2, memory_order_release);
}

/* A consistent copy of r: 1, or 0 when its writer kept it busy too long. */
static int rec_load(const tc_oracle_rec_t *r, rec_copy_t *c) {
    for (int i = 0; i < ORACLE_READ_TRIES; i++) {
        uint64_t l1 = atomic_load_explicit(&r->lock, memory_order_acquire);
        if (l1 & 1u) {
            sched_yield();
            continue;
        }
        c->seq = atomic_load_explicit(&r->seq, memory_order_relaxed);
        c->start_ns = atomic_load_explicit(&r->start_ns, memory_order_relaxed);
        c->end_ns = atomic_load_explicit(&r->end_ns, memory_order_relaxed);
        uint64_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&r->lock, memory_order_relaxed) == l1) {
            c->outcome = (tc_oracle_outcome_t)(st & STATE_MASK);
            c->op = (tc_oracle_op_t)(st >> STATE_OP_SHIFT & STATE_MASK);
            c->rc = -(int)(st >> STATE_RC_SHIFT & STATE_MASK);
            return 1;
        }
    }
    return 0;
}

uint64_t tc_oracle_write_begin(tc_oracle_t *o, unsigned key, unsigned writer,
                               tc_oracle_op_t op) {
    tc_oracle_ring_t *ring = ring_of(o, key, writer);
    uint64_t seq = atomic_load_explicit(&ring->head, memory_order_relaxed) + 1;
    rec_copy_t c = {
        .seq = seq, .start_ns = tc_oracle_now_ns(), .outcome = TC_OUT_PENDING, .op = op};
    rec_store(&ring->rec[seq % TC_ORACLE_RING], &c);
    atomic_store_explicit(&ring->head, seq, memory_order_release);
    if (key < o->own_total && op == TC_OP_SET)
        atomic_store_explicit(&ring->source, seq, memory_order_release);
    return seq;
}

void tc_oracle_write_end(tc_oracle_t *o, unsigned key, unsigned writer, uint64_t seq,
                         tc_oracle_outcome_t outcome, int rc) {
    uint64_t end = tc_oracle_now_ns();
    tc_oracle_rec_t *r = &ring_of(o, key, writer)->rec[seq % TC_ORACLE_RING];
    rec_copy_t c;
    if (!rec_load(r, &c) || c.seq != seq)
        abort(); /* only this writer stores this slot: cannot happen */
    c.end_ns = end;
    c.outcome = outcome;
    c.rc = rc;
    rec_store(r, &c);
}

uint64_t tc_oracle_source(const tc_oracle_t *o, unsigned key) {
    return atomic_load_explicit(&ring_of(o, key, 0)->source, memory_order_acquire);
}

/* ---- values ---- */

static size_t value_len(unsigned writer, uint64_t seq) {
    return ORACLE_PAD_MIN + (size_t)((seq * 37u + writer * 11u) % ORACLE_PAD_SPAN);
}

static char pad_char(uint64_t seq, size_t i) {
    return (char)('a' + (seq * 7u + i) % 26u);
}

size_t tc_oracle_value(const tc_oracle_t *o, unsigned key, unsigned writer, uint64_t seq,
                       char out[TC_ORACLE_VALUE_MAX]) {
    char name[TC_ORACLE_NAME_MAX];
    tc_oracle_key_name(o, key, name);
    int n = snprintf(out, TC_ORACLE_VALUE_MAX, "%s|w%u|n%" PRIu64 "|", name, writer, seq);
    size_t len = value_len(writer, seq);
    for (size_t i = (size_t)n; i < len; i++)
        out[i] = pad_char(seq, i);
    return len;
}

int tc_oracle_parse(const tc_oracle_t *o, unsigned key, const void *data, size_t len,
                    unsigned *writer, uint64_t *seq) {
    char buf[TC_ORACLE_VALUE_MAX + 1], want[TC_ORACLE_VALUE_MAX];
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, data, len);
    buf[len] = '\0';
    const char *bar = memchr(buf, '|', len);
    unsigned w;
    uint64_t s;
    if (!bar || sscanf(bar, "|w%u|n%" SCNu64 "|", &w, &s) != 2 || w >= o->writers)
        return -1;
    /* Everything, name and padding included, must be exactly what that write stored. */
    if (tc_oracle_value(o, key, w, s, want) != len || memcmp(want, buf, len) != 0)
        return -1;
    *writer = w;
    *seq = s;
    return 0;
}

/* ---- the check ---- */

int tc_oracle_outcome(const tc_oracle_t *o, unsigned key, unsigned writer, uint64_t seq,
                      int *rc) {
    const tc_oracle_ring_t *ring = ring_of(o, key, writer);
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    rec_copy_t c;
    if (seq == 0 || seq > head || seq + TC_ORACLE_RING <= head ||
        !rec_load(&ring->rec[seq % TC_ORACLE_RING], &c) || c.seq != seq)
        return 0;
    *rc = c.rc;
    return (int)c.outcome;
}

/* The ok records of ring that started after after_ns and ended before cutoff_ns: the
 * oldest and the newest of them. 0 when there is none. */
static int superseding(const tc_oracle_ring_t *ring, uint64_t after_ns, uint64_t cutoff_ns,
                       rec_copy_t *oldest, rec_copy_t *newest) {
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    int found = 0;
    for (uint64_t seq = head; seq > 0 && seq + TC_ORACLE_RING > head; seq--) {
        rec_copy_t c;
        if (!rec_load(&ring->rec[seq % TC_ORACLE_RING], &c))
            continue;
        if (c.seq != seq || c.start_ns <= after_ns)
            break; /* overwritten, or this and all older ones began before X ended */
        if (c.outcome != TC_OUT_OK || c.end_ns >= cutoff_ns)
            continue;
        if (!found)
            *newest = c;
        *oldest = c;
        found = 1;
    }
    return found;
}

static tc_oracle_write_t as_write(unsigned writer, const rec_copy_t *c) {
    return (tc_oracle_write_t){
        .writer = writer, .seq = c->seq, .end_ns = c->end_ns, .op = c->op};
}

static tc_oracle_result_t judge_value_record(const tc_oracle_t *o, unsigned key,
                                             unsigned writer, uint64_t seq, rec_copy_t *x) {
    if (tc_oracle_key_kind(o, key) != TC_KEY_HOT && writer != tc_oracle_key_owner(o, key))
        return TC_READ_IMPOSSIBLE;
    const tc_oracle_ring_t *ring = ring_of(o, key, writer);
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    if (seq == 0 || seq > head)
        return TC_READ_IMPOSSIBLE;
    if (seq + TC_ORACLE_RING <= head || !rec_load(&ring->rec[seq % TC_ORACLE_RING], x) ||
        x->seq != seq)
        return TC_READ_UNJUDGED;
    if (x->op != TC_OP_SET)
        return TC_READ_IMPOSSIBLE;
    return TC_READ_FRESH;
}

tc_oracle_result_t tc_oracle_check(const tc_oracle_t *o, unsigned key, unsigned writer,
                                   uint64_t seq, uint64_t t_read_ns, uint64_t bound_ns,
                                   tc_oracle_verdict_t *v) {
    memset(v, 0, sizeof *v);
    rec_copy_t x;
    v->result = judge_value_record(o, key, writer, seq, &x);
    if (v->result != TC_READ_FRESH)
        return v->result;
    /* Pending: the newest write there is. Maybe: Redis may have applied it at any time. */
    if (x.outcome != TC_OUT_OK || t_read_ns <= bound_ns)
        return TC_READ_FRESH;
    v->value_end_ns = x.end_ns;
    uint64_t cutoff = t_read_ns - bound_ns;
    unsigned first = writer, last = writer;
    if (tc_oracle_key_kind(o, key) == TC_KEY_HOT) {
        first = 0;
        last = o->writers - 1;
    }
    for (unsigned w = first; w <= last; w++) {
        rec_copy_t oldest, newest;
        if (!superseding(ring_of(o, key, w), x.end_ns, cutoff, &oldest, &newest))
            continue;
        if (v->result != TC_READ_STALE || oldest.end_ns < v->first.end_ns)
            v->first = as_write(w, &oldest);
        if (v->result != TC_READ_STALE || newest.end_ns > v->newest.end_ns)
            v->newest = as_write(w, &newest);
        v->result = TC_READ_STALE;
    }
    return v->result;
}

/* ---- phases and faults ---- */

tc_oracle_phase_t tc_oracle_phase(const tc_oracle_t *o) {
    return (tc_oracle_phase_t)atomic_load_explicit(&o->hdr->phase, memory_order_acquire);
}

void tc_oracle_set_phase(tc_oracle_t *o, tc_oracle_phase_t ph) {
    if (ph == TC_PHASE_RUN)
        atomic_store_explicit(&o->hdr->run_start_ns, tc_oracle_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&o->hdr->phase, (uint32_t)ph, memory_order_release);
}

double tc_oracle_run_ms(const tc_oracle_t *o, uint64_t t_ns) {
    uint64_t t0 = atomic_load_explicit(&o->hdr->run_start_ns, memory_order_relaxed);
    return t_ns >= t0 ? (double)(t_ns - t0) / 1e6 : -(double)(t0 - t_ns) / 1e6;
}

void tc_oracle_report_ready(tc_oracle_t *o) {
    atomic_fetch_add(&o->hdr->ready, 1);
}

void tc_oracle_report_quiet(tc_oracle_t *o) {
    atomic_fetch_add(&o->hdr->quiet, 1);
}

unsigned tc_oracle_ready(const tc_oracle_t *o) {
    return atomic_load(&o->hdr->ready);
}

unsigned tc_oracle_quiet(const tc_oracle_t *o) {
    return atomic_load(&o->hdr->quiet);
}

int tc_oracle_fault_begin(tc_oracle_t *o, tc_fault_kind_t kind) {
    uint32_t i = atomic_load_explicit(&o->hdr->nfaults, memory_order_relaxed);
    if (i >= TC_ORACLE_MAX_FAULTS)
        return -1;
    tc_oracle_fault_t *f = &o->hdr->faults[i];
    atomic_store_explicit(&f->kind, (uint64_t)kind, memory_order_relaxed);
    atomic_store_explicit(&f->start_ns, tc_oracle_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&f->end_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&o->hdr->nfaults, i + 1, memory_order_release);
    return (int)i;
}

void tc_oracle_fault_end(tc_oracle_t *o, int idx) {
    if (idx >= 0)
        atomic_store_explicit(&o->hdr->faults[idx].end_ns, tc_oracle_now_ns(),
                              memory_order_release);
}

int tc_oracle_fault_at(const tc_oracle_t *o, uint64_t t_ns, int *kind, uint64_t *start_ns,
                       uint64_t *end_ns) {
    uint32_t n = atomic_load_explicit(&o->hdr->nfaults, memory_order_acquire);
    for (uint32_t i = n; i > 0; i--) {
        const tc_oracle_fault_t *f = &o->hdr->faults[i - 1];
        uint64_t start = atomic_load_explicit(&f->start_ns, memory_order_relaxed);
        if (start > t_ns)
            continue;
        *kind = (int)atomic_load_explicit(&f->kind, memory_order_relaxed);
        *start_ns = start;
        *end_ns = atomic_load_explicit(&f->end_ns, memory_order_acquire);
        return 1;
    }
    return 0;
}

int tc_oracle_fault_recent(const tc_oracle_t *o, uint64_t tail_ns, uint64_t *since_end_ns) {
    uint32_t n = atomic_load_explicit(&o->hdr->nfaults, memory_order_acquire);
    if (n == 0)
        return -1;
    const tc_oracle_fault_t *f = &o->hdr->faults[n - 1];
    uint64_t end = atomic_load_explicit(&f->end_ns, memory_order_acquire);
    uint64_t now = tc_oracle_now_ns();
    if (end != 0 && now - end > tail_ns)
        return -1;
    *since_end_ns = end == 0 ? 0 : now > end ? now - end : 1;
    return (int)atomic_load_explicit(&f->kind, memory_order_relaxed);
}
