/*
 * test_l1.c - the in-process tier (src/l1.c) through its internal API: eviction order, byte
 * accounting, expiry, shard spread, the pending/commit race rules, and refs that outlive
 * everything. Also the TTL jitter of cache.c, which decides every L1 expiry.
 *
 * The idea: check each promise against an independent model, not against the code's own
 * arithmetic. Eviction order is checked against the default policy restated on arrays
 * (support/policy_model.c); byte accounting against the entries that model keeps, summed
 * from the allocator's charge of each entry and of the slot table; the race rules against
 * the safety argument at the top of l1.c, one rule per test.
 *
 * A hit marks an entry for a second chance, so order tests probe only keys that are absent
 * (a miss changes nothing) or tell the model of every hit.
 * Everything is single-threaded here; test_l1_threads.c does the concurrent part.
 */
/* tc-test-labels: unit */
#include "alloc.h"
#include "cache.h"
#include "clock.h"
#include "hash.h"
#include "l1.h"
#include "l1_index.h"
#include "policy_model.h"

#include <criterion/criterion.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEED   0x5eed1234abcdULL
#define NO_CAP 0
#define BIG    (64u << 20)

/* ---- helpers ---- */

static tc__l1_t *l1_new_policy(size_t max_bytes, size_t max_entries, size_t max_value,
                               unsigned shards, int policy) {
    tc__l1_opts_t o = {.max_bytes = max_bytes,
                       .max_entries = max_entries,
                       .max_value_bytes = max_value,
                       .shards = shards,
                       .seed = SEED,
                       .policy = policy};
    tc__l1_t *l1 = NULL;
    cr_assert_eq(tc__l1_open(&o, &l1), TC_OK);
    cr_assert_not_null(l1);
    return l1;
}

static tc__l1_t *l1_new(size_t max_bytes, size_t max_entries, size_t max_value,
                        unsigned shards) {
    return l1_new_policy(max_bytes, max_entries, max_value, shards, TC__L1_SECOND_CHANCE);
}

static tc_ref_t *mk(const void *key, size_t klen, const void *val, size_t vlen,
                    uint64_t version, uint64_t expiry) {
    tc_ref_t *e = tc__entry_new(key, klen, val, vlen);
    cr_assert_not_null(e);
    e->version = version;
    tc__entry_set_expiry(e, expiry);
    return e;
}

/* A fill (or write) in flight: registered now, committed later. */
typedef struct fill {
    tc__pending_t *p;
    uint64_t snap, h;
    const char *key;
} fill_t;

static fill_t fill_begin(tc__l1_t *l1, const char *key) {
    fill_t f = {.key = key, .h = tc__l1_hash(l1, key, strlen(key))};
    f.p = tc__l1_pending_begin(l1, f.h, key, strlen(key), &f.snap);
    cr_assert_not_null(f.p);
    return f;
}

static int fill_commit_exp(tc__l1_t *l1, fill_t *f, const char *val, size_t vlen,
                           uint64_t version, uint64_t expiry, unsigned flags) {
    tc_ref_t *e = mk(f->key, strlen(f->key), val, vlen, version, expiry);
    int r = tc__l1_commit(l1, f->p, f->snap, e, flags);
    tc_ref_release(e); /* commit takes its own reference when it keeps e */
    return r;
}

static int fill_commit(tc__l1_t *l1, fill_t *f, const char *val, uint64_t version,
                       unsigned flags) {
    return fill_commit_exp(l1, f, val, strlen(val), version, TC__NO_EXPIRY, flags);
}

static void fill_end(tc__l1_t *l1, fill_t *f) {
    tc__l1_pending_end(l1, f->p);
}

/* One complete insertion: begin, commit, end. */
static int put_exp(tc__l1_t *l1, const char *key, const char *val, size_t vlen,
                   uint64_t version, uint64_t expiry, unsigned flags) {
    fill_t f = fill_begin(l1, key);
    int r = fill_commit_exp(l1, &f, val, vlen, version, expiry, flags);
    fill_end(l1, &f);
    return r;
}

static int put(tc__l1_t *l1, const char *key, const char *val, uint64_t version) {
    return put_exp(l1, key, val, strlen(val), version, TC__NO_EXPIRY, 0);
}

static tc_ref_t *lookup(tc__l1_t *l1, const char *key) {
    tc_ref_t *r = NULL;
    uint64_t h = tc__l1_hash(l1, key, strlen(key));
    int rc = tc__l1_get(l1, h, key, strlen(key), &r);
    cr_assert(rc == TC_OK || rc == TC_ENOTFOUND, "tc__l1_get returned %d", rc);
    cr_assert_eq(rc == TC_OK, r != NULL, "rc %d disagrees with ref %p", rc, (void *)r);
    return r;
}

/* Present? (bumps recency when it is) */
static int has(tc__l1_t *l1, const char *key) {
    tc_ref_t *r = lookup(l1, key);
    tc_ref_release(r);
    return r != NULL;
}

static void assert_holds(tc__l1_t *l1, const char *key, const char *val, uint64_t version) {
    tc_ref_t *r = lookup(l1, key);
    cr_assert_not_null(r, "%s is not in L1", key);
    cr_assert_eq(tc_ref_size(r), strlen(val));
    cr_assert_eq(memcmp(tc_ref_data(r), val, strlen(val)), 0, "%s holds the wrong bytes", key);
    cr_assert_eq(r->version, version, "%s holds version %llu, not %llu", key,
                 (unsigned long long)r->version, (unsigned long long)version);
    tc_ref_release(r);
}

static tc__l1_counters_t counters(tc__l1_t *l1) {
    tc__l1_counters_t c;
    tc__l1_counters(l1, &c);
    return c;
}

static const char *kname(char *buf, size_t cap, int i) {
    snprintf(buf, cap, "k%d", i);
    return buf;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Bytes the index's slot array costs at nb slots (what l1.c adds to entries). */
static size_t table_charge(unsigned nb) {
    return tc__l1_index_charge_of(TC__L1_SECOND_CHANCE, nb);
}

/* ---- lifecycle ---- */

Test(l1_open, shard_count_must_be_a_power_of_two) {
    tc__l1_opts_t o = {.max_bytes = 1024, .max_value_bytes = 1024, .shards = 3};
    tc__l1_t *l1 = (tc__l1_t *)(uintptr_t)1; /* must be overwritten with NULL */
    cr_assert_eq(tc__l1_open(&o, &l1), TC_EINVAL);
    cr_assert_null(l1);
    o.shards = 0; /* means one shard */
    cr_assert_eq(tc__l1_open(&o, &l1), TC_OK);
    cr_assert_eq(put(l1, "a", "1", 0), 1);
    cr_assert(has(l1, "a"));
    tc__l1_close(l1);
    tc__l1_close(NULL);
}

Test(l1_open, fresh_l1_is_empty_and_trusted) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 8);
    tc__l1_counters_t c = counters(l1);
    cr_assert_eq(c.entries, 0);
    cr_assert_eq(c.bytes, 0);
    cr_assert_eq(c.hits + c.misses + c.evictions + c.expirations + c.rejected, 0);
    cr_assert_eq(tc__l1_trusted(l1), 1);
    cr_assert(!has(l1, "nothing"));
    cr_assert_eq(counters(l1).misses, 1);
    tc__l1_close(l1);
}

/* ---- LRU order and eviction ---- */

Test(l1_lru, evicts_exactly_the_least_recently_used) {
    char b[16];
    tc__l1_t *l1 = l1_new(BIG, 8, BIG, 1);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(put(l1, kname(b, sizeof b, i), "v", 0), 1);
    cr_assert_eq(counters(l1).entries, 8);
    /* Touch the tail (no-op), the head and a middle entry:
     * order becomes k1 k2 k4 k5 k6 k7 k0 k3 (oldest first). */
    cr_assert(has(l1, "k7"));
    cr_assert(has(l1, "k0"));
    cr_assert(has(l1, "k3"));
    for (int i = 8; i < 11; i++)
        cr_assert_eq(put(l1, kname(b, sizeof b, i), "v", 0), 1);
    tc__l1_counters_t c = counters(l1);
    cr_assert_eq(c.entries, 8);
    cr_assert_eq(c.evictions, 3);
    cr_assert(!has(l1, "k1")); /* misses leave the order alone */
    cr_assert(!has(l1, "k2"));
    cr_assert(!has(l1, "k4"));
    /* order: k5 k6 k7 k0 k3 k8 k9 k10; two more inserts push out k5 and k6. */
    cr_assert_eq(put(l1, "k11", "v", 0), 1);
    cr_assert_eq(put(l1, "k12", "v", 0), 1);
    cr_assert(!has(l1, "k5"));
    cr_assert(!has(l1, "k6"));
    static const char *const alive[] = {"k7", "k0", "k3", "k8", "k9", "k10", "k11", "k12"};
    for (size_t i = 0; i < 8; i++)
        cr_assert(has(l1, alive[i]), "%s was evicted out of LRU order", alive[i]);
    cr_assert_eq(counters(l1).evictions, 5);
    tc__l1_close(l1);
}

/* A new value of a resident key keeps the old entry's place and marks it as a hit would
 * (l1_policy.c), whether it comes through a commit (a new entry takes the old one's place)
 * or an L1-only write (the old entry is rewritten in place: l1_writes below). No lookup
 * before the end: a hit would mark a by itself. */
typedef int (*put_fn)(tc__l1_t *l1, const char *key, const char *val);

static void new_value_counts_as_a_hit(put_fn put_value) {
    tc__l1_t *l1 = l1_new(BIG, 3, BIG, 1);
    cr_assert_eq(put_value(l1, "a", "1"), 1);
    cr_assert_eq(put_value(l1, "b", "1"), 1);
    cr_assert_eq(put_value(l1, "c", "1"), 1);
    cr_assert_eq(put_value(l1, "a", "2"), 1); /* still a b c, a marked as by a hit */
    cr_assert_eq(counters(l1).entries, 3);
    cr_assert_eq(counters(l1).evictions, 0, "a new value is not an eviction");
    cr_assert_eq(put_value(l1, "d", "1"), 1); /* a's second chance: c d a, b evicted */
    cr_assert_eq(put_value(l1, "e", "1"), 1); /* d a e */
    cr_assert_eq(put_value(l1, "f", "1"), 1); /* a e f: d goes before a */
    cr_assert(!has(l1, "b"));
    cr_assert(!has(l1, "c"));
    cr_assert(!has(l1, "d"), "d outlived a: the new value of a lost its place or its mark");
    tc_ref_t *a = lookup(l1, "a");
    cr_assert_not_null(a);
    cr_assert_eq(memcmp(tc_ref_data(a), "2", 1), 0, "a holds the wrong bytes");
    tc_ref_release(a);
    cr_assert(has(l1, "e"));
    cr_assert(has(l1, "f"));
    cr_assert_eq(tc__l1_check(l1), 0);
    tc__l1_close(l1);
}

static int put_committed(tc__l1_t *l1, const char *key, const char *val) {
    return put(l1, key, val, 0);
}

Test(l1_lru, replacing_a_key_counts_as_a_hit) {
    new_value_counts_as_a_hit(put_committed);
}

/* The eviction policy on arrays (support/policy_model.c), with the cap l1.c enforces. */
typedef struct lru_model {
    tc_test_model_t q;
    int cap;
    uint64_t evictions;
} lru_model_t;

/* A put: a resident key's new entry takes the old one's place as a hit would (no entry
 * joins, none is evicted); a new key joins young, then the cap evicts, passing over (and
 * renewing) entries marked by a hit. */
static void model_put(lru_model_t *m, int k) {
    if (tc_test_model_pos(&m->q, k) >= 0) {
        tc_test_model_touch(&m->q, k);
        return;
    }
    tc_test_model_append(&m->q, k);
    if (m->q.n > m->cap) {
        tc_test_model_victim(&m->q);
        tc_test_model_cut(&m->q, 0);
        m->evictions++;
    }
}

Test(l1_lru, random_workload_matches_the_reference_policy) {
    char b[16];
    tc__l1_t *l1 = l1_new(BIG, 24, BIG, 1);
    lru_model_t m = {.cap = 24};
    uint64_t s = 88172645463325252ULL;
    for (int op = 0; op < 20000; op++) {
        int k = (int)(rng_next(&s) % 64);
        kname(b, sizeof b, k);
        if (rng_next(&s) % 3 == 0) {
            cr_assert_eq(put(l1, b, "v", 0), 1);
            model_put(&m, k);
        } else {
            int expect = tc_test_model_pos(&m.q, k) >= 0;
            cr_assert_eq(has(l1, b), expect, "op %d: get %s hit=%d, the model says %d", op, b,
                         !expect, expect);
            if (expect)
                tc_test_model_touch(&m.q, k);
        }
        tc__l1_counters_t c = counters(l1);
        cr_assert_eq(c.entries, (uint64_t)m.q.n, "op %d", op);
        cr_assert_eq(c.evictions, m.evictions, "op %d", op);
    }
    cr_assert_eq(tc__l1_check(l1), 0);
    tc__l1_close(l1);
}

Test(l1_lru, entry_cap_is_global_across_shards) {
    char b[16];
    tc__l1_t *l1 = l1_new(BIG, 20, BIG, 8);
    for (int i = 0; i < 2000; i++) {
        put(l1, kname(b, sizeof b, i), "v", 0);
        cr_assert_leq(counters(l1).entries, 20);
    }
    cr_assert_geq(counters(l1).entries, 16, "every shard should hold its share");
    tc__l1_close(l1);
}

Test(l1_lru, fewer_entries_than_shards) {
    char b[16];
    tc__l1_t *l1 = l1_new(BIG, 2, BIG, 4);
    for (int i = 0; i < 200; i++) {
        put(l1, kname(b, sizeof b, i), "v", 0);
        cr_assert_leq(counters(l1).entries, 2);
    }
    tc__l1_close(l1);
}

/* ---- byte accounting ---- */

Test(l1_bytes, allocator_charge) {
    for (size_t n = 1; n < 70000; n += (n < 600 ? 1 : 97)) {
        size_t c = tc__alloc_charge(n);
        cr_assert_geq(c, n, "charge(%zu) = %zu is below the request", n, c);
#ifdef TC_WITH_JEMALLOC
        cr_assert_eq(c, nallocx(n, 0), "charge(%zu) is not jemalloc's size class", n);
#else
        void *p = malloc(n);
        cr_assert_not_null(p);
        cr_assert_geq(c, malloc_usable_size(p), "charge(%zu) below what malloc gave", n);
        free(p);
#endif
    }
    tc_ref_t *e = tc__entry_new("key", 3, "value", 5);
    cr_assert_eq(tc__entry_charge(e), tc__alloc_charge(TC__ENTRY_HEAD + 8));
    tc_ref_release(e);
}

/* The default policy's order (support/policy_model.c) with each key's charge. A put of a
 * resident key is a hit in place (l1_policy.c: the new entry takes the old one's place and
 * mark), so the order is not the order of the puts. */
typedef struct byte_model {
    tc_test_model_t q;
    size_t charge[4096]; /* by key */
} byte_model_t;

static void byte_model_put(byte_model_t *m, int k, size_t charge) {
    if (tc_test_model_pos(&m->q, k) >= 0)
        tc_test_model_touch(&m->q, k);
    else
        tc_test_model_append(&m->q, k);
    m->charge[k] = charge;
}

/* Evict the policy's victims, never `keep` (the key just put), until the rest plus the
 * table fit; returns the entry bytes. */
static size_t byte_model_fit(byte_model_t *m, size_t budget, size_t table, int keep) {
    for (;;) {
        size_t sum = 0;
        for (int i = 0; i < m->q.n; i++)
            sum += m->charge[m->q.key[i]];
        if (sum + table <= budget)
            return sum;
        int v = tc_test_model_victim(&m->q) == keep ? 1 : 0; /* keep's newer neighbour */
        cr_assert_lt(v, m->q.n, "the model has nothing left to evict");
        tc_test_model_cut(&m->q, v);
    }
}

static unsigned buckets_of(tc__l1_t *l1, const char *key) {
    return (unsigned)tc__l1_table_slots(l1, tc__l1_hash(l1, key, strlen(key)));
}

Test(l1_bytes, random_sizes_stay_exact_and_within_budget) {
    const size_t budget = 64 * 1024;
    static byte_model_t m;
    static char val[5001];
    char b[16];
    memset(val, 'x', sizeof val);
    tc__l1_t *l1 = l1_new(budget, NO_CAP, BIG, 1);
    uint64_t s = 0x243f6a8885a308d3ULL;
    int next_key = 0;
    for (int op = 0; op < 1500; op++) {
        int k = (m.q.n > 0 && rng_next(&s) % 4 == 0) ? m.q.key[rng_next(&s) % (uint64_t)m.q.n]
                                                     : next_key++;
        size_t vlen = (size_t)(rng_next(&s) % 5001);
        kname(b, sizeof b, k);
        cr_assert_eq(put_exp(l1, b, val, vlen, 0, TC__NO_EXPIRY, 0), 1, "op %d", op);
        byte_model_put(&m, k, tc__alloc_charge(tc__entry_alloc_size(strlen(b), vlen)));
        unsigned nb = buckets_of(l1, b);
        size_t sum = byte_model_fit(&m, budget, table_charge(nb), k);
        tc__l1_counters_t c = counters(l1);
        cr_assert_leq(c.bytes, budget, "op %d: %llu bytes over a %zu budget", op,
                      (unsigned long long)c.bytes, budget);
        cr_assert_eq(c.bytes, sum + table_charge(nb),
                     "op %d: accounting drifted: %llu vs %zu + %zu (nb %u, n %d, entries %llu)",
                     op, (unsigned long long)c.bytes, sum, table_charge(nb), nb, m.q.n,
                     (unsigned long long)c.entries);
        cr_assert_eq(c.entries, (uint64_t)m.q.n, "op %d: not the entries the policy keeps", op);
    }
    for (int i = 0; i < m.q.n; i++)
        cr_assert(has(l1, kname(b, sizeof b, m.q.key[i])), "%s should be kept", b);
    tc__l1_flush(l1);
    cr_assert_eq(counters(l1).bytes, 0, "an empty L1 still charges bytes");
    tc__l1_close(l1);
}

/* S3-FIFO's ghost is charged with the table: under random sizes, hits and replacements the
 * charge is exactly the entries' plus the table's and ghost's, and never over budget. */
Test(l1_bytes, s3fifo_stays_exact_and_within_budget) {
    const size_t budget = 64 * 1024;
    static char val[3001];
    char b[16];
    memset(val, 'x', sizeof val);
    tc__l1_t *l1 = l1_new_policy(budget, NO_CAP, BIG, 1, TC__L1_S3FIFO);
    uint64_t s = 0x13198a2e03707344ULL;
    for (int op = 0; op < 3000; op++) {
        int k = (int)(rng_next(&s) % 400);
        kname(b, sizeof b, k);
        if (rng_next(&s) % 2)
            has(l1, b);
        else
            cr_assert_eq(
                put_exp(l1, b, val, (size_t)(rng_next(&s) % 3001), 0, TC__NO_EXPIRY, 0), 1,
                "op %d", op);
        size_t sum = 0, n = 0;
        for (int j = 0; j < 400; j++) {
            tc_ref_t *r = lookup(l1, kname(b, sizeof b, j));
            if (r) {
                sum += tc__entry_charge(r);
                n++;
            }
            tc_ref_release(r);
        }
        tc__l1_counters_t c = counters(l1);
        unsigned nb = buckets_of(l1, "k0");
        cr_assert_leq(c.bytes, budget, "op %d: %llu bytes over a %zu budget", op,
                      (unsigned long long)c.bytes, budget);
        cr_assert_eq(c.entries, n, "op %d", op);
        cr_assert_eq(c.bytes, sum + tc__l1_index_charge_of(TC__L1_S3FIFO, nb),
                     "op %d: accounting drifted", op);
        cr_assert_eq(tc__l1_check(l1), 0, "op %d", op);
    }
    tc__l1_flush(l1);
    cr_assert_eq(counters(l1).bytes, 0, "an empty L1 still charges bytes");
    tc__l1_close(l1);
}

/* Keys whose hashes share their low 10 bits make one probe run: past 255 slots the table
 * doubles or the key is refused. Neither may leave the shard over its budget (a refused key
 * must not leave a grown table behind; a doubling the key cannot fit beside must evict
 * others, not only the key). */
Test(l1_bytes, long_probe_runs_never_break_the_budget) {
    const size_t budget = 21000;
    static char big[13000];
    tc__l1_t *l1 = l1_new(budget, NO_CAP, BIG, 1);
    char k[32];
    int found = 0, refused = 0, big_kept = 0;
    for (long n = 0; found < 320; n++) {
        snprintf(k, sizeof k, "c%ld", n);
        uint64_t h = tc__l1_hash(l1, k, strlen(k));
        if ((h & 1023) != 0)
            continue;
        found++;
        /* 300 small keys overflow the run; then large ones, which fit alone but not beside
         * a doubled table */
        if (found <= 300) {
            refused += !put(l1, k, "v", 0);
        } else {
            big_kept += put_exp(l1, k, big, sizeof big, 0, TC__NO_EXPIRY, 0);
            put(l1, k, "v", 0);
        }
        tc__l1_counters_t c = counters(l1);
        cr_assert_leq(c.bytes, budget, "key %d: %llu bytes over a %zu budget", found,
                      (unsigned long long)c.bytes, budget);
        cr_assert_eq(tc__l1_check(l1), 0, "key %d", found);
    }
    cr_assert_gt(refused, 0, "setup: no key was ever refused");
    tc__l1_close(l1);
}

Test(l1_bytes, total_never_exceeds_the_budget_across_shards) {
    const size_t budget = 20000;
    static char val[5001];
    char b[16];
    tc__l1_t *l1 = l1_new(budget, NO_CAP, BIG, 8);
    uint64_t s = 12345;
    int kept = 0;
    for (int i = 0; i < 3000; i++) {
        size_t vlen = (size_t)(rng_next(&s) % 5001);
        kept += put_exp(l1, kname(b, sizeof b, i), val, vlen, 0, TC__NO_EXPIRY, 0);
        tc__l1_counters_t c = counters(l1);
        cr_assert_leq(c.bytes, budget, "insert %d: %llu bytes", i, (unsigned long long)c.bytes);
    }
    cr_assert_gt(kept, 0);
    /* Every entry present is paid for. */
    size_t sum = 0, n = 0;
    for (int i = 0; i < 3000; i++) {
        tc_ref_t *r = lookup(l1, kname(b, sizeof b, i));
        if (r) {
            sum += tc__entry_charge(r);
            n++;
        }
        tc_ref_release(r);
    }
    tc__l1_counters_t c = counters(l1);
    cr_assert_eq(c.entries, n);
    cr_assert_geq(c.bytes, sum);
    tc__l1_close(l1);
}

Test(l1_bytes, oversized_values_are_refused_not_failed) {
    static char val[8192];
    tc__l1_t *l1 = l1_new(4096, NO_CAP, 100, 1);
    cr_assert_eq(put_exp(l1, "big", val, 101, 0, TC__NO_EXPIRY, 0), 0, "over max_value");
    cr_assert_eq(put_exp(l1, "max", val, 100, 0, TC__NO_EXPIRY, 0), 1, "at max_value");
    tc__l1_close(l1);

    l1 = l1_new(4096, NO_CAP, BIG, 1);
    cr_assert_eq(put_exp(l1, "k", val, 10, 0, TC__NO_EXPIRY, 0), 1);
    cr_assert_eq(put_exp(l1, "k", val, 5000, 0, TC__NO_EXPIRY, 0), 0, "over the budget");
    cr_assert(!has(l1, "k"), "the replaced value must not survive its replacement");
    tc__l1_counters_t c = counters(l1);
    cr_assert_eq(c.entries, 0);
    cr_assert_eq(c.bytes, 0);
    tc__l1_close(l1);

    l1 = l1_new(0, NO_CAP, BIG, 4); /* a zero budget keeps nothing */
    cr_assert_eq(put(l1, "k", "v", 0), 0);
    cr_assert(!has(l1, "k"));
    cr_assert_eq(counters(l1).bytes, 0);
    tc__l1_close(l1);
}

/* An entry that cannot be kept once the table's own arrays are counted must leave the
 * other entries alone: refusing it is right, wiping the shard for it is not. */
Test(l1_bytes, unkeepable_entry_does_not_evict_others) {
    static char val[8192];
    size_t vlen = 6000;
    size_t c = tc__alloc_charge(tc__entry_alloc_size(3, vlen));
    size_t budget = c + table_charge(8) - 1; /* < c + the smallest table */
    tc__l1_t *l1 = l1_new(budget, NO_CAP, BIG, 1);
    cr_assert_eq(put(l1, "a", "small", 0), 1);
    cr_assert_eq(put(l1, "b", "small", 0), 1);
    int kept = put_exp(l1, "big", val, vlen, 0, TC__NO_EXPIRY, 0);
    tc__l1_counters_t k = counters(l1);
    tc__l1_close(l1); /* before asserting, so a failure leaks nothing */
    cr_assert_eq(kept, 0);
    cr_assert_leq(k.bytes, budget);
    cr_assert_eq(k.entries, 2, "a value that cannot be kept evicted %llu others",
                 (unsigned long long)(2 - k.entries));
}

/* The same when the entry would fit beside the current table, but inserting it makes
 * the table double and the larger table leaves no room for it. */
Test(l1_bytes, unkeepable_after_table_growth_does_not_evict_others) {
    static char val[16384];
    char b[16];
    size_t vlen = 7000;
    size_t c = tc__alloc_charge(tc__entry_alloc_size(3, vlen));
    size_t t64 = table_charge(64), t128 = table_charge(128);
    size_t budget = c + t64 + (t128 - t64) / 2; /* fits beside 64 slots, not beside 128 */
    tc__l1_t *l1 = l1_new(budget, NO_CAP, BIG, 1);
    int small = 0;
    for (int i = 0; i < 48; i++) /* 48 entries: 64 slots at load 3/4; one more doubles */
        small += put(l1, kname(b, sizeof b, i), "s", 0);
    tc__l1_counters_t before = counters(l1);
    unsigned nb = buckets_of(l1, "k47");
    int kept = put_exp(l1, "big", val, vlen, 0, TC__NO_EXPIRY, 0);
    tc__l1_counters_t after = counters(l1);
    tc__l1_close(l1);
    cr_assert_eq(small, 48);
    cr_assert_eq(before.entries, 48, "setup: the 48 small entries must all fit");
    cr_assert_eq(nb, 64, "setup: the table should still have 64 slots");
    cr_assert_leq(after.bytes, budget);
    cr_assert_eq(kept, 0, "it cannot fit beside a 128-slot table");
    cr_assert_eq(after.entries, 48, "a value that was not kept evicted %llu others",
                 (unsigned long long)(48 - after.entries));
}

/* ---- counting ---- */

/* Hits without the lock are counted in the readers' words (l1_readers.h), marks and
 * reclaims under the lock in the shard: the sum is every hit and miss exactly once, and a
 * writer taking the shard (which may move the words' hits into the shard's count) changes
 * nothing in it. */
Test(l1_counting, every_hit_and_miss_counted_once_locked_or_not) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 4);
    cr_assert_eq(put(l1, "a", "1", 7), 1);
    cr_assert_eq(put(l1, "b", "2", 8), 1);
    for (int i = 0; i < 100; i++) {
        cr_assert(has(l1, "a"));
        cr_assert(has(l1, i % 2 ? "b" : "a"));
        cr_assert(!has(l1, "absent"));
        if (i % 10 == 0)
            cr_assert_eq(put(l1, "c", "3", 9 + (uint64_t)i), 1); /* a writer in the shard */
    }
    tc__l1_counters_t c = counters(l1);
    cr_assert_eq(c.hits, 200, "%llu hits counted, not 200", (unsigned long long)c.hits);
    cr_assert_eq(c.misses, 100, "%llu misses counted, not 100", (unsigned long long)c.misses);
    tc__l1_close(l1);
}

/* ---- expiry ---- */

Test(l1_expiry, expired_entry_is_never_returned) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    uint64_t now = tc__now_ms();
    put_exp(l1, "past", "v", 1, 0, now - 1, 0);
    put_exp(l1, "now", "v", 1, 0, now, 0);
    cr_assert(!has(l1, "past"));
    cr_assert(!has(l1, "now"), "expiry_ms is the first instant the entry is dead");
    tc__l1_counters_t c = counters(l1);
    cr_assert_eq(c.expirations, 2);
    cr_assert_eq(c.hits, 0);
    cr_assert_eq(c.entries, 0, "an expired entry found on lookup is reclaimed");
    cr_assert_eq(c.bytes, 0);
    tc__l1_close(l1);
}

Test(l1_expiry, entry_dies_after_its_ttl) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    cr_assert_eq(put_exp(l1, "short", "v", 1, 0, tc__now_ms() + 50, 0), 1);
    cr_assert_eq(put_exp(l1, "long", "v", 1, 0, tc__now_ms() + 600000, 0), 1);
    cr_assert_eq(counters(l1).entries, 2);
    sleep_ms(100);
    cr_assert(!has(l1, "short"));
    cr_assert(has(l1, "long"));
    cr_assert_eq(counters(l1).expirations, 1);
    tc__l1_close(l1);
}

Test(l1_expiry, expired_victims_count_as_expirations) {
    tc__l1_t *l1 = l1_new(BIG, 2, BIG, 1);
    put_exp(l1, "a", "v", 1, 0, tc__now_ms() + 20, 0);
    put(l1, "b", "v", 0);
    sleep_ms(60);
    put(l1, "c", "v", 0); /* pushes out a, already dead */
    tc__l1_counters_t c = counters(l1);
    cr_assert_eq(c.expirations, 1);
    cr_assert_eq(c.evictions, 0);
    put(l1, "d", "v", 0); /* pushes out b, alive */
    cr_assert_eq(counters(l1).evictions, 1);
    tc__l1_close(l1);
}

/* ---- TTL jitter (cache.c) ---- */

static tc_cache_t *open_local(double jitter, uint64_t default_ttl) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.ttl_jitter = jitter;
    cfg.default_ttl_ms = default_ttl;
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &c, &err), TC_OK, "%s", err.msg);
    return c;
}

static void check_jitter(double j, uint64_t ttl) {
    tc_cache_t *c = open_local(j, 60000);
    const int draws = 100000;
    const uint64_t lo = (uint64_t)((double)ttl * (1.0 - j));
    const uint64_t hi = (uint64_t)((double)ttl * (1.0 + j));
    const uint64_t slack = (hi - lo) / 100; /* 1% of the range */
    uint64_t mn = UINT64_MAX, mx = 0;
    unsigned bins[10] = {0};
    for (int i = 0; i < draws; i++) {
        uint64_t t = tc__effective_ttl_ms(c, ttl);
        cr_assert(t >= lo && t <= hi, "ttl %llu outside %llu..%llu", (unsigned long long)t,
                  (unsigned long long)lo, (unsigned long long)hi);
        mn = t < mn ? t : mn;
        mx = t > mx ? t : mx;
        size_t bin = (size_t)((t - lo) * 10 / (hi - lo + 1));
        bins[bin]++;
    }
    cr_assert_leq(mn, lo + slack, "min %llu: jitter does not reach the low bound",
                  (unsigned long long)mn);
    cr_assert_geq(mx, hi - slack, "max %llu: jitter does not reach the high bound",
                  (unsigned long long)mx);
    for (int i = 0; i < 10; i++) /* 10000 expected per bin, sd ~95: 5% is > 5 sd */
        cr_assert(bins[i] > draws / 10 * 95 / 100 && bins[i] < draws / 10 * 105 / 100,
                  "bin %d has %u draws: not uniform", i, bins[i]);
    tc_close(c);
}

Test(ttl, jitter_stays_in_bounds_and_spreads) {
    check_jitter(0.10, 10000);
    check_jitter(0.50, 2000);
}

Test(ttl, zero_jitter_is_exact_and_zero_ttl_is_default) {
    tc_cache_t *c = open_local(0.0, 12345);
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(tc__effective_ttl_ms(c, 777), 777);
        cr_assert_eq(tc__effective_ttl_ms(c, 0), 12345);
    }
    tc_close(c);
    c = open_local(0.2, 10000);
    for (int i = 0; i < 10000; i++) {
        uint64_t t = tc__effective_ttl_ms(c, 0);
        cr_assert(t >= 8000 && t <= 12000, "default ttl jittered to %llu",
                  (unsigned long long)t);
        cr_assert_geq(tc__effective_ttl_ms(c, 1), 1, "a 1 ms ttl jittered to 0");
    }
    tc_close(c);
}

/* ---- shard spread ---- */

static unsigned shard_bits(uint64_t h, unsigned mask) {
    return (uint32_t)(h >> 32) & mask;
}

static void check_spread(uint64_t seed) {
    enum { NKEYS = 1000000, NSH = 64 };
    tc__l1_opts_t o = {.max_bytes = 0, .max_value_bytes = 0, .shards = NSH, .seed = seed};
    tc__l1_t *l1;
    cr_assert_eq(tc__l1_open(&o, &l1), TC_OK);
    static unsigned shard[NSH], cell[NSH][NSH], low3[8];
    memset(shard, 0, sizeof shard);
    memset(cell, 0, sizeof cell);
    memset(low3, 0, sizeof low3);
    char key[32];
    for (int i = 0; i < NKEYS; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        uint64_t h = tc__l1_hash(l1, key, (size_t)n);
        cr_assert_eq(h, tc__hash64(key, (size_t)n, seed));
        unsigned s = shard_bits(h, NSH - 1);
        shard[s]++;
        cell[s][h & (NSH - 1)]++;
        if (s == 0)
            low3[h & 7]++;
    }
    const double mean = (double)NKEYS / NSH;
    for (int s = 0; s < NSH; s++)
        cr_assert(shard[s] > mean * 0.95 && shard[s] < mean * 1.05,
                  "seed %llx: shard %d got %u keys, mean %.0f", (unsigned long long)seed, s,
                  shard[s], mean);
    /* Shard 0's ~15.6k keys over the low 3 bucket bits: 1953 each, 10% is ~4.7 sd. */
    for (int b = 0; b < 8; b++)
        cr_assert(low3[b] > shard[0] / 8 * 0.9 && low3[b] < shard[0] / 8 * 1.1,
                  "seed %llx: bucket bits %d got %u of shard 0's %u keys",
                  (unsigned long long)seed, b, low3[b], shard[0]);
    /* Independence of shard bits and the low 6 bucket bits: chi-square over the 4096
     * (shard, bucket) cells against uniform; dof 4095, sd ~90.5: bound at mean + 6 sd. */
    double chi2 = 0, e = (double)NKEYS / (NSH * NSH);
    for (int s = 0; s < NSH; s++)
        for (int b = 0; b < NSH; b++)
            chi2 += (cell[s][b] - e) * (cell[s][b] - e) / e;
    cr_assert_lt(chi2, 4095 + 6 * 90.5, "seed %llx: chi2 %.0f: bucket bits follow shard bits",
                 (unsigned long long)seed, chi2);
    tc__l1_close(l1);
}

Test(l1_shards, sequential_keys_spread_evenly, .timeout = 120) {
    check_spread(SEED);
    check_spread(0);
    check_spread(0xffffffffffffffffULL);
}

/* The shard really is (h >> 32) & mask: with one entry per shard, two keys this formula
 * puts together displace each other, and a key it puts elsewhere survives. */
Test(l1_shards, shard_is_taken_from_the_high_word) {
    enum { NSH = 64 };
    tc__l1_t *l1 = l1_new(BIG, NSH, BIG, NSH);
    char a[32], b[32], other[32];
    int found = 0;
    for (int i = 0; found < 8 && i < 100000; i++) {
        snprintf(a, sizeof a, "a%d", i);
        unsigned sa = shard_bits(tc__l1_hash(l1, a, strlen(a)), NSH - 1);
        int j = 0, jo = -1, jb = -1;
        for (; (jb < 0 || jo < 0) && j < 100000; j++) {
            snprintf(b, sizeof b, "b%d.%d", i, j);
            unsigned sb = shard_bits(tc__l1_hash(l1, b, strlen(b)), NSH - 1);
            if (sb == sa && jb < 0)
                jb = j;
            else if (sb != sa && jo < 0)
                jo = j;
        }
        snprintf(b, sizeof b, "b%d.%d", i, jb);
        snprintf(other, sizeof other, "b%d.%d", i, jo);
        tc__l1_flush(l1);
        cr_assert_eq(put(l1, a, "v", 0), 1);
        cr_assert_eq(put(l1, other, "v", 0), 1);
        cr_assert_eq(put(l1, b, "v", 0), 1);
        cr_assert(!has(l1, a), "%s and %s should share a one-entry shard", a, b);
        cr_assert(has(l1, other), "%s should be in another shard than %s", other, b);
        cr_assert(has(l1, b));
        found++;
    }
    cr_assert_eq(found, 8);
    tc__l1_close(l1);
}

/* ---- pending / commit rules (the safety argument of l1.c) ---- */

Test(l1_rules, a_invalidation_version_bounds_fills) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    fill_t f = fill_begin(l1, "k");
    cr_assert(!tc__l1_pending_invalidated(l1, f.p, f.snap));
    cr_assert_eq(tc__l1_invalidate(l1, f.h, "k", 1, 5), 1, "the pending fill was marked");
    cr_assert(tc__l1_pending_invalidated(l1, f.p, f.snap));
    uint64_t rej = counters(l1).rejected;
    cr_assert_eq(fill_commit(l1, &f, "v4", 4, TC__COMMIT_FROM_L2), 0, "v4 is older than 5");
    cr_assert_eq(counters(l1).rejected, rej + 1);
    cr_assert(!has(l1, "k"));
    /* Newer than the announced write: its own message is still to come (or, for a forged
     * version, never comes): not kept, the next read takes it. */
    cr_assert_eq(fill_commit(l1, &f, "v6", 6, TC__COMMIT_FROM_L2), 0, "v6 was not announced");
    cr_assert(!has(l1, "k"));
    cr_assert_eq(fill_commit(l1, &f, "v5", 5, TC__COMMIT_FROM_L2), 1,
                 "v5 is the announced one");
    assert_holds(l1, "k", "v5", 5);
    fill_end(l1, &f);
    /* A fill that began after the invalidation: any version from 5 on. */
    fill_t later = fill_begin(l1, "k");
    cr_assert_eq(fill_commit(l1, &later, "v6", 6, TC__COMMIT_FROM_L2), 1);
    assert_holds(l1, "k", "v6", 6);
    fill_end(l1, &later);
    tc__l1_close(l1);
}

Test(l1_rules, b_unversioned_fill_refused_after_any_invalidation) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    fill_t early = fill_begin(l1, "k");
    fill_t other = fill_begin(l1, "other"); /* same shard, another key */
    tc__l1_invalidate(l1, other.h, "other", 5, 1);
    fill_t late = fill_begin(l1, "k");
    cr_assert_eq(fill_commit(l1, &early, "v0", 0, 0), 1, "another key's invalidation");
    tc__l1_invalidate(l1, early.h, "k", 1, 1);
    cr_assert(!has(l1, "k"), "invalidate(1) drops the unversioned entry");
    cr_assert_eq(fill_commit(l1, &late, "v0", 0, 0), 0, "invalidated since its snapshot");
    fill_t after = fill_begin(l1, "k");
    cr_assert_eq(fill_commit(l1, &after, "v0b", 0, 0), 1, "snapshot taken after it");
    assert_holds(l1, "k", "v0b", 0);
    fill_end(l1, &early);
    fill_end(l1, &other);
    fill_end(l1, &late);
    fill_end(l1, &after);
    tc__l1_close(l1);
}

Test(l1_rules, c_flush_poisons_fills_in_flight) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 4);
    cr_assert_eq(put(l1, "x", "old", 1), 1);
    fill_t f = fill_begin(l1, "k");
    fill_t g = fill_begin(l1, "j");
    tc__l1_flush(l1);
    tc__l1_counters_t c = counters(l1);
    cr_assert_eq(c.flushes, 1);
    cr_assert_eq(c.entries, 0);
    cr_assert_eq(c.bytes, 0);
    cr_assert_eq(fill_commit(l1, &f, "v", 1000, TC__COMMIT_FROM_L2), 0);
    cr_assert_eq(fill_commit(l1, &f, "v", 1000, 0), 0);
    cr_assert_eq(fill_commit(l1, &f, "v", 0, 0), 0);
    cr_assert_eq(fill_commit(l1, &g, "v", 1000, TC__COMMIT_WRITE), 0);
    fill_t after = fill_begin(l1, "k"); /* shares the record f still holds */
    cr_assert_eq(fill_commit(l1, &after, "new", 3, TC__COMMIT_FROM_L2), 1);
    assert_holds(l1, "k", "new", 3);
    fill_end(l1, &f);
    fill_end(l1, &g);
    fill_end(l1, &after);
    fill_t fresh = fill_begin(l1, "j"); /* a new record */
    cr_assert_eq(fill_commit(l1, &fresh, "nj", 0, 0), 1);
    fill_end(l1, &fresh);
    tc__l1_close(l1);
}

Test(l1_rules, d_untrusted_refuses_values_from_l2) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    tc__l1_set_trusted(l1, 0);
    cr_assert_eq(tc__l1_trusted(l1), 0);
    fill_t f = fill_begin(l1, "k");
    cr_assert_eq(fill_commit(l1, &f, "l2", 5, TC__COMMIT_FROM_L2), 0);
    cr_assert(!has(l1, "k"));
    cr_assert_eq(fill_commit(l1, &f, "local", 0, 0), 1, "a loader's value is still kept");
    fill_end(l1, &f);
    tc__l1_set_trusted(l1, 1);
    cr_assert_eq(tc__l1_trusted(l1), 1);
    f = fill_begin(l1, "k");
    cr_assert_eq(fill_commit(l1, &f, "l2", 5, TC__COMMIT_FROM_L2), 1);
    assert_holds(l1, "k", "l2", 5);
    fill_end(l1, &f);
    tc__l1_close(l1);
}

Test(l1_rules, e_older_version_never_replaces_newer) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    cr_assert_eq(put(l1, "k", "v7", 7), 1);
    uint64_t rej = counters(l1).rejected;
    cr_assert_eq(put_exp(l1, "k", "v6", 2, 6, TC__NO_EXPIRY, TC__COMMIT_FROM_L2), 0);
    cr_assert_eq(put_exp(l1, "k", "v6", 2, 6, TC__NO_EXPIRY, TC__COMMIT_WRITE), 0);
    cr_assert_eq(put(l1, "k", "v7b", 7), 0, "the same version is already held");
    cr_assert_eq(put(l1, "k", "v0", 0), 0, "an unversioned value over a versioned one");
    cr_assert_eq(counters(l1).rejected, rej + 4);
    assert_holds(l1, "k", "v7", 7);
    cr_assert_eq(put(l1, "k", "v8", 8), 1);
    assert_holds(l1, "k", "v8", 8);
    tc__l1_close(l1);
}

Test(l1_rules, f_invalidate_compares_versions) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    /* An entry whose version this process's script assigned: ordered by version. */
    put(l1, "k", "v7", 7);
    uint64_t h = tc__l1_hash(l1, "k", 1);
    cr_assert_eq(tc__l1_invalidate(l1, h, "k", 1, 6), 0, "an older message keeps v7");
    cr_assert_eq(tc__l1_invalidate(l1, h, "k", 1, 7), 0, "its own write's message keeps v7");
    assert_holds(l1, "k", "v7", 7);
    cr_assert_eq(tc__l1_invalidate(l1, h, "k", 1, 8), 1);
    cr_assert(!has(l1, "k"));
    /* An entry read from Redis: its version may be forged, any other version evicts it. */
    fill_t f = fill_begin(l1, "k");
    tc_ref_t *e = mk("k", 1, "r7", 2, 7, TC__NO_EXPIRY);
    e->vlen_bits |= TC__ENTRY_READ;
    cr_assert_eq(tc__l1_commit(l1, f.p, f.snap, e, TC__COMMIT_FROM_L2), 1);
    tc_ref_release(e);
    fill_end(l1, &f);
    cr_assert_eq(tc__l1_invalidate(l1, h, "k", 1, 7), 0, "its own version keeps it");
    assert_holds(l1, "k", "r7", 7);
    cr_assert_eq(tc__l1_invalidate(l1, h, "k", 1, 6), 1,
                 "any other version evicts a read entry: a lagging listener costs a miss, a "
                 "forged version is never pinned");
    cr_assert(!has(l1, "k"));
    cr_assert_eq(counters(l1).entries, 0);
    cr_assert_eq(counters(l1).bytes, 0);
    cr_assert_eq(tc__l1_invalidate(l1, h, "k", 1, 9), 0, "nothing left to invalidate");
    tc__l1_close(l1);
}

Test(l1_rules, g_evict_ignores_versions_and_poisons_fills) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    put(l1, "k", "v100", 100);
    fill_t f = fill_begin(l1, "k");
    tc__l1_evict(l1, f.h, "k", 1);
    cr_assert(!has(l1, "k"));
    cr_assert_eq(fill_commit(l1, &f, "v200", 200, TC__COMMIT_FROM_L2), 0);
    cr_assert_eq(fill_commit(l1, &f, "v0", 0, 0), 0);
    cr_assert(!has(l1, "k"));
    fill_t g = fill_begin(l1, "k");
    cr_assert_eq(fill_commit(l1, &g, "v201", 201, TC__COMMIT_FROM_L2), 1);
    fill_end(l1, &g);
    fill_end(l1, &f);
    tc__l1_evict(l1, tc__l1_hash(l1, "absent", 6), "absent", 6); /* harmless */
    tc__l1_close(l1);
}

Test(l1_rules, h_write_supersedes_older_fills_in_flight) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, 4, 1); /* values over 4 bytes are not kept */
    fill_t reader = fill_begin(l1, "k");
    fill_t loader = fill_begin(l1, "k");
    fill_t writer = fill_begin(l1, "k");
    /* The write itself is not kept (too big), yet it still bars older fills. */
    cr_assert_eq(fill_commit(l1, &writer, "write10", 10, TC__COMMIT_WRITE), 0);
    cr_assert_eq(fill_commit(l1, &reader, "r9", 9, TC__COMMIT_FROM_L2), 0);
    cr_assert_eq(fill_commit(l1, &loader, "l0", 0, 0), 0);
    cr_assert(!has(l1, "k"));
    cr_assert_eq(fill_commit(l1, &reader, "r10", 10, TC__COMMIT_FROM_L2), 1);
    assert_holds(l1, "k", "r10", 10);
    fill_t w2 = fill_begin(l1, "k");
    tc__l1_invalidate(l1, w2.h, "k", 1, 12);
    cr_assert_eq(fill_commit(l1, &w2, "w11", 11, TC__COMMIT_WRITE), 0, "12 superseded it");
    cr_assert_eq(fill_commit(l1, &w2, "w12", 12, TC__COMMIT_WRITE), 1);
    assert_holds(l1, "k", "w12", 12);
    fill_end(l1, &reader);
    fill_end(l1, &loader);
    fill_end(l1, &writer);
    fill_end(l1, &w2);
    tc__l1_close(l1);
}

Test(l1_rules, i_force_replaces_whatever_is_there_unless_flushed) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    fill_t f = fill_begin(l1, "k");
    cr_assert_eq(put(l1, "k", "v100", 100), 1);
    fill_t later = fill_begin(l1, "k"); /* began before the force */
    cr_assert_eq(fill_commit(l1, &f, "forced", 0, TC__COMMIT_FORCE), 1, "replaces v100");
    assert_holds(l1, "k", "forced", 0);
    /* A fill that began before the forced write is older than it, whatever its version. */
    cr_assert_eq(fill_commit(l1, &later, "stale", 1000, TC__COMMIT_FROM_L2), 0);
    assert_holds(l1, "k", "forced", 0);
    /* A flush (or heal) after the snapshot: Redis may have moved on, even a local write
     * must not land (rule 4). */
    fill_t g = fill_begin(l1, "k");
    tc__l1_flush(l1);
    cr_assert_eq(fill_commit(l1, &g, "late", 0, TC__COMMIT_FORCE), 0);
    cr_assert(!has(l1, "k"));
    fill_t h = fill_begin(l1, "k");
    tc__l1_heal(l1);
    cr_assert_eq(fill_commit(l1, &h, "late", 0, TC__COMMIT_FORCE), 0);
    fill_end(l1, &h);
    fill_end(l1, &g);
    fill_end(l1, &later);
    fill_end(l1, &f);
    tc__l1_close(l1);
}

/* A new value that takes the old entry's place keeps the count of local entries exact
 * (rule 4): versioned to local and back, and a heal then finds and drops the local one. */
Test(l1_rules, a_replacement_keeps_the_local_count) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    cr_assert_eq(put(l1, "k", "v5", 5), 1);
    cr_assert_eq(put(l1, "j", "v7", 7), 1);
    cr_assert_eq(counters(l1).local_entries, 0);
    cr_assert_eq(put_exp(l1, "k", "local", 5, 0, TC__NO_EXPIRY, TC__COMMIT_FORCE), 1);
    cr_assert_eq(counters(l1).local_entries, 1, "a local value replaced v5 uncounted");
    cr_assert_eq(put_exp(l1, "k", "v9", 2, 9, TC__NO_EXPIRY, TC__COMMIT_WRITE), 1);
    cr_assert_eq(counters(l1).local_entries, 0, "v9 replaced the local value, still counted");
    cr_assert_eq(put_exp(l1, "k", "local", 5, 0, TC__NO_EXPIRY, TC__COMMIT_FORCE), 1);
    cr_assert_eq(counters(l1).entries, 2);
    tc__l1_heal(l1);
    cr_assert(!has(l1, "k"), "the heal skipped the local value");
    assert_holds(l1, "j", "v7", 7);
    cr_assert_eq(counters(l1).local_entries, 0);
    cr_assert_eq(tc__l1_check(l1), 0);
    tc__l1_close(l1);
}

Test(l1_rules, pending_records_are_per_key_and_freed) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    for (int round = 0; round < 3; round++) {
        fill_t f = fill_begin(l1, "k");
        tc__l1_invalidate(l1, f.h, "k", 1, 50);
        fill_end(l1, &f);
    }
    /* No record survives its last user: a new one starts clean (max_inval 0). */
    fill_t f = fill_begin(l1, "k");
    cr_assert_eq(fill_commit(l1, &f, "v1", 1, TC__COMMIT_FROM_L2), 1);
    fill_end(l1, &f);
    tc__l1_close(l1);
}

/* ---- L1-only writes ---- */

/* As tc_set does without Redis: the version comes from the shard, the caller drops e. */
static int write_local(tc__l1_t *l1, const char *key, const void *val, size_t vlen) {
    tc_ref_t *e = mk(key, strlen(key), val, vlen, 0, TC__NO_EXPIRY);
    int r = tc__l1_write_local(l1, tc__l1_hash(l1, key, strlen(key)), e);
    tc_ref_release(e);
    return r;
}

/* A write of a resident key whose entry only L1 holds, of the same size, rewrites that
 * entry (l1.c rewrite_locked); one that anyone else holds, or of another size, gets a new
 * entry, and what a holder reads never changes. */
Test(l1_writes, an_entry_nobody_holds_is_rewritten_in_place_and_no_other) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    cr_assert_eq(write_local(l1, "k", "value-1", 7), 1);
    tc_ref_t *r1 = lookup(l1, "k");
    uint64_t v1 = r1->version;
    tc_ref_release(r1);
    uint64_t bytes = counters(l1).bytes;

    cr_assert_eq(write_local(l1, "k", "value-2", 7), 1);
    tc_ref_t *r2 = lookup(l1, "k");
    cr_assert_eq(r2, r1, "an entry nobody held was replaced, not rewritten");
    cr_assert_eq(memcmp(tc_ref_data(r2), "value-2", 7), 0);
    cr_assert_gt(r2->version, v1, "the rewrite kept the old version");
    cr_assert_eq(counters(l1).bytes, bytes, "a rewrite moved the byte count");

    /* r2 is held: the next write must leave it alone. */
    cr_assert_eq(write_local(l1, "k", "value-3", 7), 1);
    tc_ref_t *r3 = lookup(l1, "k");
    cr_assert_neq(r3, r2, "an entry a caller holds was rewritten");
    cr_assert_eq(memcmp(tc_ref_data(r2), "value-2", 7), 0, "a held value changed");
    cr_assert_eq(memcmp(tc_ref_data(r3), "value-3", 7), 0);
    tc_ref_release(r2);
    tc_ref_release(r3);

    /* A value of another length gets a new entry, even one of the same size class (the
     * sized free that ends an entry must see the size it was made with), and the byte
     * count follows each entry's charge. */
    static char big[300];
    memset(big, 'b', sizeof big);
    const struct {
        const void *val;
        size_t len;
    } next[] = {{"val-4", 5}, {big, sizeof big}, {"value-5", 7}};
    tc_ref_t *prev = lookup(l1, "k");
    size_t charge = tc__entry_charge(prev);
    tc_ref_release(prev);
    for (size_t i = 0; i < sizeof next / sizeof next[0]; i++) {
        cr_assert_eq(write_local(l1, "k", next[i].val, next[i].len), 1);
        tc_ref_t *r = lookup(l1, "k");
        cr_assert_neq(r, prev, "%zu bytes were written over an entry of another size",
                      next[i].len);
        cr_assert_eq(tc_ref_size(r), next[i].len);
        cr_assert_eq(memcmp(tc_ref_data(r), next[i].val, next[i].len), 0);
        bytes = bytes - charge + tc__entry_charge(r);
        charge = tc__entry_charge(r);
        cr_assert_eq(counters(l1).bytes, bytes, "the byte count lost an entry's charge");
        prev = r;
        tc_ref_release(r);
    }
    cr_assert_eq(counters(l1).entries, 1);
    cr_assert_eq(tc__l1_check(l1), 0, "table, queues and counts disagree");
    tc__l1_close(l1);
}

/* A rewrite takes the new value's expiry and freshness block, as a new entry would. */
Test(l1_writes, a_rewrite_takes_the_new_expiry_and_freshness_block) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 1);
    uint64_t h = tc__l1_hash(l1, "k", 1), now = tc__now_ms();
    tc_ref_t *first = NULL;
    for (uint64_t round = 0; round < 2; round++) {
        tc_ref_t *e = tc__entry_new_ext("k", 1, round ? "v2" : "v1", 2, 1);
        cr_assert_not_null(e);
        tc__entry_set_expiry(e, now + 100000 + round * 1000);
        tc__entry_ext_t *x = tc__entry_ext(e);
        atomic_store(&x->fresh_until_ms, now + 50000 + round * 1000);
        atomic_store(&x->stale_until_ms, now + 60000 + round * 1000);
        x->ttl_ms = (uint32_t)(1000 + round);
        x->load_ms = (uint32_t)(7 + round);
        x->flags = (uint32_t)round; /* TC__ENTRY_ABSENT in the second */
        cr_assert_eq(tc__l1_write_local(l1, h, e), 1);
        tc_ref_release(e);
        if (!round) {
            first = lookup(l1, "k");
            tc_ref_release(first);
        }
    }
    tc_ref_t *r = lookup(l1, "k");
    cr_assert_eq(r, first, "the second write was not rewritten in place");
    cr_assert_eq(memcmp(tc_ref_data(r), "v2", 2), 0);
    cr_assert_eq(tc__entry_expiry(r), now + 101000, "the rewrite kept the old expiry");
    const tc__entry_ext_t *x = tc__entry_ext(r);
    cr_assert_not_null(x);
    cr_assert_eq(atomic_load(&x->fresh_until_ms), now + 51000);
    cr_assert_eq(atomic_load(&x->stale_until_ms), now + 61000);
    cr_assert_eq(x->ttl_ms, 1001);
    cr_assert_eq(x->load_ms, 8);
    cr_assert_eq(x->flags, TC__ENTRY_ABSENT);
    tc_ref_release(r);
    cr_assert_eq(tc__l1_check(l1), 0);
    tc__l1_close(l1);
}

static int put_written(tc__l1_t *l1, const char *key, const char *val) {
    return write_local(l1, key, val, strlen(val));
}

/* Every write here is of the same size and held by nobody, so each new value of a is a
 * rewrite. */
Test(l1_writes, a_rewrite_counts_as_a_hit) {
    new_value_counts_as_a_hit(put_written);
}

/* ---- refs ---- */

Test(l1_refs, ref_outlives_eviction_invalidation_and_close) {
    static char val[3000];
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (char)(i * 7);
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 2);
    put_exp(l1, "a", val, sizeof val, 1, TC__NO_EXPIRY, 0);
    put_exp(l1, "b", val, sizeof val, 1, TC__NO_EXPIRY, 0);
    put_exp(l1, "c", val, 10, 1, TC__NO_EXPIRY, 0);
    tc_ref_t *ra = lookup(l1, "a"), *rb = lookup(l1, "b"), *rc = lookup(l1, "c");
    tc_ref_t *rc2 = lookup(l1, "c");
    cr_assert(ra && rb && rc && rc2);
    cr_assert_eq(rc, rc2, "a hit is zero-copy: both refs are the entry");
    tc__l1_evict(l1, tc__l1_hash(l1, "a", 1), "a", 1);
    tc__l1_invalidate(l1, tc__l1_hash(l1, "b", 1), "b", 1, 2);
    cr_assert_eq(put_exp(l1, "c", "new", 3, 2, TC__NO_EXPIRY, TC__COMMIT_FORCE), 1);
    tc_ref_release(rc2);
    tc__l1_close(l1);
    cr_assert_eq(tc_ref_size(ra), sizeof val);
    cr_assert_eq(memcmp(tc_ref_data(ra), val, sizeof val), 0);
    cr_assert_eq(memcmp(tc_ref_data(rb), val, sizeof val), 0);
    cr_assert_eq(tc_ref_size(rc), 10);
    cr_assert_eq(memcmp(tc_ref_data(rc), val, 10), 0, "replacement changed a held value");
    tc_ref_release(ra);
    tc_ref_release(rb);
    tc_ref_release(rc);
    tc_ref_release(NULL);
}

Test(l1_refs, empty_value_and_binary_keys) {
    tc__l1_t *l1 = l1_new(BIG, NO_CAP, BIG, 4);
    static const char k1[] = {'a', 0, 'b'}, k2[] = {'a', 0, 'c'}, k3[] = {'a'};
    const char *keys[] = {k1, k2, k3};
    size_t lens[] = {3, 3, 1};
    for (int i = 0; i < 3; i++) {
        uint64_t snap, h = tc__l1_hash(l1, keys[i], lens[i]);
        tc__pending_t *p = tc__l1_pending_begin(l1, h, keys[i], lens[i], &snap);
        tc_ref_t *e = mk(keys[i], lens[i], "xyz", (size_t)i, 0, TC__NO_EXPIRY);
        cr_assert_eq(tc__l1_commit(l1, p, snap, e, 0), 1);
        tc_ref_release(e);
        tc__l1_pending_end(l1, p);
    }
    for (int i = 0; i < 3; i++) {
        tc_ref_t *r;
        uint64_t h = tc__l1_hash(l1, keys[i], lens[i]);
        cr_assert_eq(tc__l1_get(l1, h, keys[i], lens[i], &r), TC_OK);
        cr_assert_eq(tc_ref_size(r), (size_t)i, "key %d found another key's value", i);
        cr_assert_not_null(tc_ref_data(r));
        tc_ref_release(r);
    }
    tc__l1_close(l1);
}
