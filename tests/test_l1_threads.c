/*
 * test_l1_threads.c - the L1 under concurrency: the race logic of l1.c against a model of
 * Redis and its channel, and tc_fetch's single-flight through the public API (L1-only).
 *
 * The stress test plays every part of the system on a few keys and a tiny budget:
 *
 *   "Redis"    a mutex-guarded table of (version, present) per key and one version
 *              counter, so versions totally order the writes as Redis's counter does;
 *   channel    a queue of (key, version) messages; while the listener is "down" new
 *              messages are lost, as pub/sub loses them;
 *   writers    register, write "Redis", commit their version (TC__COMMIT_WRITE), as
 *              tc_set does; remote writers (other processes) only touch "Redis";
 *   deleters   bump the version in "Redis" and invalidate locally, as tc_del does;
 *   fillers    register, read "Redis", commit what they read (TC__COMMIT_FROM_L2);
 *   loaders    tc__l1_fetch_begin/finish with an unversioned value read from "Redis";
 *   readers    tc__l1_get, checking the bytes of every hit against its version;
 *   listener   its own thread: applies messages as they come and now and then loses
 *              its connection: untrusted, flush, (messages lost), re-subscribe, flush,
 *              trusted, as listener.c does.
 *
 * What must hold, from the safety argument of l1.c, is checked two ways. Continuously: each
 * key has a floor, raised once an event that kills older versions has completed (a message
 * applied, a local write or delete returned, the flush after re-subscribing); a hit that
 * began after the floor was raised must not return an older value. And at the end of each
 * short epoch (workers joined, every queued message applied): each key's entry is absent
 * or exactly the latest version in "Redis". Also, no value read from Redis may be kept
 * while the listener is known to be untrusted. Every value encodes its version, so checks
 * read the bytes, not a field the code under test set. Small random yields between
 * reading "Redis" and committing widen the race windows. It runs in about a second, so it
 * also fits under TSan.
 */
/* tc-test-labels: unit concurrency */
#include "clock.h"
#include "l1.h"
#include "l1_policy.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NKEYS         16
#define NWORKERS      3 /* plus the listener: 4 threads */
#define EPOCHS        60
#define OPS_PER_EPOCH 600
#define MAX_ENTRIES   8
#define MAX_BYTES     4096
#define MAXQ          (NWORKERS * OPS_PER_EPOCH + 16)

/* ---- the model of Redis and its channel ---- */

struct msg {
    int key;
    uint64_t version;
};

static struct {
    pthread_mutex_t lock;
    uint64_t next_version;
    uint64_t version[NKEYS]; /* version of the last write or delete */
    int present[NKEYS];
    int down; /* the listener is not subscribed: messages are lost */
    struct msg queue[MAXQ];
    size_t qhead, qtail;
} redis = {.lock = PTHREAD_MUTEX_INITIALIZER};

static tc__l1_t *g_l1;
static atomic_int g_bad_bytes, g_stale_hits, g_untrusted_fills, g_stop;
static atomic_uint_fast64_t g_floor[NKEYS]; /* no hit may return an older version */
static atomic_uint g_trust_seq;             /* odd while the listener is untrusted */
static char g_keys[NKEYS][16];

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Usually nothing, sometimes a yield, now and then a long stall. */
static void maybe_yield(uint64_t *s) {
    uint64_t r = rng(s) % 32;
    for (int i = r < 2 ? 20 : r < 10 ? 1 : 0; i > 0; i--)
        sched_yield();
}

static size_t vlen_of(uint64_t version) {
    return 8 + (size_t)(version * 7919 % 300);
}

static unsigned char byte_of(uint64_t version, size_t i) {
    return (unsigned char)(version * 31 + i);
}

/* An entry of key whose value carries `version` in its first 8 bytes and a pattern after
 * them. */
static tc_ref_t *value_of(const char *key, uint64_t version) {
    size_t n = vlen_of(version);
    tc_ref_t *e = tc__entry_new(key, strlen(key), NULL, n);
    if (!e)
        abort();
    unsigned char *v = tc__entry_value_mut(e);
    memcpy(v, &version, 8);
    for (size_t i = 8; i < n; i++)
        v[i] = byte_of(version, i);
    tc__entry_set_expiry(e, TC__NO_EXPIRY);
    return e;
}

static tc_ref_t *make_value(int k, uint64_t version, uint64_t entry_version) {
    tc_ref_t *e = value_of(g_keys[k], version);
    e->version = entry_version;
    return e;
}

/* The version a value encodes, or UINT64_MAX when its bytes are inconsistent. */
static uint64_t value_version(const tc_ref_t *r) {
    const unsigned char *v = tc_ref_data(r);
    uint64_t version;
    if (tc_ref_size(r) < 8)
        return UINT64_MAX;
    memcpy(&version, v, 8);
    if (tc_ref_size(r) != vlen_of(version))
        return UINT64_MAX;
    for (size_t i = 8; i < tc_ref_size(r); i++)
        if (v[i] != byte_of(version, i))
            return UINT64_MAX;
    return version;
}

static void raise_floor(int k, uint64_t v) {
    uint64_t cur = atomic_load(&g_floor[k]);
    while (cur < v && !atomic_compare_exchange_weak(&g_floor[k], &cur, v)) {
    }
}

/* A hit on key k that began when its floor was `floor`. */
static void check_hit(const tc_ref_t *r, uint64_t floor) {
    uint64_t v = value_version(r);
    if (v == UINT64_MAX)
        atomic_fetch_add(&g_bad_bytes, 1);
    else if (v < floor)
        atomic_fetch_add(&g_stale_hits, 1);
}

static uint64_t hash_of(int k) {
    return tc__l1_hash(g_l1, g_keys[k], strlen(g_keys[k]));
}

/* A write or delete in "Redis": the next version, and its message (lost while down). */
static uint64_t redis_write_locked(int k, int present) {
    uint64_t v = ++redis.next_version;
    redis.version[k] = v;
    redis.present[k] = present;
    if (!redis.down) {
        redis.queue[redis.qtail].key = k;
        redis.queue[redis.qtail].version = v;
        redis.qtail++;
    }
    return v;
}

static uint64_t redis_write(int k, int present) {
    pthread_mutex_lock(&redis.lock);
    uint64_t v = redis_write_locked(k, present);
    pthread_mutex_unlock(&redis.lock);
    return v;
}

/* Read "Redis" for key k: 1 and *v when present. */
static int redis_read(int k, uint64_t *v) {
    pthread_mutex_lock(&redis.lock);
    int present = redis.present[k];
    *v = redis.version[k];
    pthread_mutex_unlock(&redis.lock);
    return present;
}

/* ---- the listener ---- */

/* Apply one queued message; 0 when the queue was empty. */
static int apply_one(void) {
    pthread_mutex_lock(&redis.lock);
    int have = redis.qhead < redis.qtail;
    struct msg m = have ? redis.queue[redis.qhead++] : (struct msg){0, 0};
    pthread_mutex_unlock(&redis.lock);
    if (have) {
        tc__l1_invalidate(g_l1, hash_of(m.key), g_keys[m.key], strlen(g_keys[m.key]),
                          m.version);
        raise_floor(m.key, m.version);
    }
    return have;
}

/* Versions at the moment of the change: what a flush right after it makes the floor. */
static void set_down(int down, uint64_t *versions) {
    pthread_mutex_lock(&redis.lock);
    redis.down = down;
    if (down)
        redis.qhead = redis.qtail; /* undelivered messages die with the connection */
    memcpy(versions, redis.version, sizeof redis.version);
    pthread_mutex_unlock(&redis.lock);
}

static void lose_connection(uint64_t *s) {
    uint64_t versions[NKEYS];
    tc__l1_set_trusted(g_l1, 0);
    atomic_fetch_add(&g_trust_seq, 1); /* odd: untrusted */
    set_down(1, versions);
    tc__l1_flush(g_l1);
    for (int i = 0; i < 4; i++) /* the outage lasts a while */
        maybe_yield(s);
    set_down(0, versions); /* re-subscribed: messages flow again, then flush, then trust */
    tc__l1_flush(g_l1);
    for (int k = 0; k < NKEYS; k++) /* the flush made up for every lost message */
        raise_floor(k, versions[k]);
    atomic_fetch_add(&g_trust_seq, 1);
    tc__l1_set_trusted(g_l1, 1);
}

static void *listener(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg;
    while (!atomic_load(&g_stop)) {
        uint64_t r = rng(&s) % 400;
        if (r == 0)
            lose_connection(&s);
        else if (r < 100 || !apply_one()) /* messages take a while to arrive */
            sched_yield();
    }
    while (apply_one()) {
    }
    return NULL;
}

/* ---- the workers ---- */

static void op_get(int k) {
    tc_ref_t *r;
    uint64_t floor = atomic_load(&g_floor[k]);
    if (tc__l1_get(g_l1, hash_of(k), g_keys[k], strlen(g_keys[k]), &r) == TC_OK) {
        check_hit(r, floor);
        tc_ref_release(r);
    }
}

static tc__pending_t *begin(int k, uint64_t *snap) {
    tc__pending_t *p =
        tc__l1_pending_begin(g_l1, hash_of(k), g_keys[k], strlen(g_keys[k]), snap);
    if (!p)
        abort();
    return p;
}

static void op_write(int k, uint64_t *s) {
    uint64_t snap;
    tc__pending_t *p = begin(k, &snap);
    uint64_t v = redis_write(k, 1);
    maybe_yield(s);
    tc_ref_t *e = make_value(k, v, v);
    if (!tc__l1_commit(g_l1, p, snap, e, TC__COMMIT_WRITE)) /* as tc_set: drop older */
        tc__l1_invalidate(g_l1, hash_of(k), g_keys[k], strlen(g_keys[k]), v);
    tc_ref_release(e);
    tc__l1_pending_end(g_l1, p);
    raise_floor(k, v); /* read-your-writes: nothing older is visible from now on */
}

static void op_delete(int k) {
    uint64_t v = redis_write(k, 0);
    tc__l1_invalidate(g_l1, hash_of(k), g_keys[k], strlen(g_keys[k]), v);
    raise_floor(k, v);
}

static void op_fill(int k, uint64_t *s) {
    uint64_t snap, v;
    tc__pending_t *p = begin(k, &snap);
    if (redis_read(k, &v)) {
        maybe_yield(s);
        tc_ref_t *e = make_value(k, v, v);
        unsigned seq = atomic_load(&g_trust_seq);
        int kept = tc__l1_commit(g_l1, p, snap, e, TC__COMMIT_FROM_L2);
        if (kept && (seq & 1) && seq == atomic_load(&g_trust_seq))
            atomic_fetch_add(&g_untrusted_fills, 1); /* kept while surely untrusted */
        tc_ref_release(e);
    }
    tc__l1_pending_end(g_l1, p);
}

/* tc_fetch's path with an unversioned value (a loader in L1-only mode). */
static void op_fetch(int k, uint64_t *s) {
    uint64_t v;
    uint64_t floor = atomic_load(&g_floor[k]);
    tc__fetch_t f = {.lookup = 1};
    int how = tc__l1_fetch_begin(g_l1, hash_of(k), g_keys[k], strlen(g_keys[k]), &f);
    tc_ref_t *r = f.ref;
    if (how == TC__FETCH_LEAD) {
        if (!redis_read(k, &v)) {
            tc__l1_fetch_finish(g_l1, f.p, TC_ENOTFOUND, NULL, TC__FINISH_SHARED);
            return;
        }
        maybe_yield(s);
        tc_ref_t *e = make_value(k, v, 0);
        tc__l1_commit(g_l1, f.p, f.snap, e, 0);
        tc__l1_fetch_finish(g_l1, f.p, TC_OK, e, TC__FINISH_SHARED);
        r = e; /* the leader's own reference */
    }
    if (r) { /* a load's result may predate the floor; only an L1 hit may not */
        check_hit(r, how == TC__FETCH_HIT ? floor : 0);
        tc_ref_release(r);
    }
}

static void *worker(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
    for (int i = 0; i < OPS_PER_EPOCH; i++) {
        int k = (int)(rng(&s) % NKEYS);
        unsigned dice = (unsigned)(rng(&s) % 100);
        if (dice < 35)
            op_get(k);
        else if (dice < 55)
            op_fill(k, &s);
        else if (dice < 67)
            op_write(k, &s);
        else if (dice < 75)
            redis_write(k, 1); /* another process's write */
        else if (dice < 87)
            op_fetch(k, &s);
        else if (dice < 93)
            op_delete(k);
        else if (dice < 95)
            tc__l1_evict(g_l1, hash_of(k), g_keys[k], strlen(g_keys[k]));
        else
            op_get((k + 1) % NKEYS);
    }
    return NULL;
}

static void run_epoch(int epoch) {
    pthread_t t[NWORKERS + 1];
    atomic_store(&g_stop, 0);
    redis.qhead = redis.qtail = 0; /* every thread is joined: no one else touches it */
    cr_assert_eq(pthread_create(&t[NWORKERS], NULL, listener, (void *)(uintptr_t)(epoch + 7)),
                 0);
    for (int i = 0; i < NWORKERS; i++)
        cr_assert_eq(
            pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(epoch * NWORKERS + i + 1)),
            0);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&g_stop, 1);
    pthread_join(t[NWORKERS], NULL);
}

/* Each key absent or exactly Redis's latest version; returns how many are present. */
static uint64_t check_latest(int epoch, uint64_t *charged) {
    uint64_t present = 0;
    for (int k = 0; k < NKEYS; k++) {
        tc_ref_t *r;
        if (tc__l1_get(g_l1, hash_of(k), g_keys[k], strlen(g_keys[k]), &r) != TC_OK)
            continue;
        present++;
        *charged += tc__entry_charge(r);
        uint64_t v = value_version(r);
        tc_ref_release(r);
        cr_assert(redis.present[k] && v == redis.version[k],
                  "epoch %d: %s: L1 holds version %llu, Redis %s version %llu", epoch,
                  g_keys[k], (unsigned long long)v,
                  redis.present[k] ? "holds" : "deleted it at",
                  (unsigned long long)redis.version[k]);
    }
    return present;
}

/* The race workload against one eviction policy (l1_policy.c): both must keep every rule. */
static void race_logic(int policy) {
    tc__l1_opts_t o = {.max_bytes = MAX_BYTES,
                       .max_entries = MAX_ENTRIES,
                       .max_value_bytes = 1 << 20,
                       .shards = 2,
                       .seed = 99,
                       .policy = policy};
    cr_assert_eq(tc__l1_open(&o, &g_l1), TC_OK);
    for (int k = 0; k < NKEYS; k++)
        snprintf(g_keys[k], sizeof g_keys[k], "key%d", k);
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        run_epoch(epoch);
        cr_assert_eq(atomic_load(&g_bad_bytes), 0, "a reader saw torn or freed bytes");
        cr_assert_eq(atomic_load(&g_stale_hits), 0,
                     "epoch %d: a hit returned a version older than a completed "
                     "invalidation, write or re-subscription",
                     epoch);
        cr_assert_eq(atomic_load(&g_untrusted_fills), 0,
                     "epoch %d: a value from Redis was kept while L1 was untrusted", epoch);
        tc__l1_counters_t c;
        tc__l1_counters(g_l1, &c);
        cr_assert_leq(c.entries, MAX_ENTRIES);
        cr_assert_leq(c.bytes, MAX_BYTES);
        uint64_t charged = 0;
        cr_assert_eq(check_latest(epoch, &charged), c.entries);
        cr_assert_geq(c.bytes, charged);
    }
    tc__l1_counters_t c;
    tc__l1_counters(g_l1, &c);
    cr_assert_gt(c.hits, 0, "the workload never hit: the test would prove nothing");
    cr_assert_gt(c.rejected, 0, "no fill was ever refused: the races did not happen");
    cr_assert_gt(c.flushes, 0);
    tc__l1_flush(g_l1);
    tc__l1_counters(g_l1, &c);
    cr_assert_eq(c.entries, 0);
    cr_assert_eq(c.bytes, 0);
    cr_assert_eq(tc__l1_check(g_l1), 0, "table, queues and counts disagree");
    tc__l1_close(g_l1);
}

Test(l1_threads, race_logic_keeps_only_the_latest_version, .timeout = 60) {
    race_logic(TC__L1_SECOND_CHANCE);
}

Test(l1_threads, race_logic_keeps_only_the_latest_version_s3fifo, .timeout = 60) {
    race_logic(TC__L1_S3FIFO);
}

/* ---- lock-free hits against everything that changes a shard ---- */

/* Readers hit without the shard lock (l1_readers.h) while one writer replaces values of
 * random sizes (the budget evicts), removes keys one by one and by prefix (a sweep), and
 * empties the shard (its table is freed and made again): every hit must be a whole value
 * of the key asked for. What would break
 * without the writers' exclusion is a reader inside a table or an entry being changed or
 * freed: ASan sees the use after free, ThreadSanitizer the race, and the bytes check the
 * rest. */
#define LF_KEYS    48
#define LF_READERS 2
#define LF_WRITES  60000

static char g_lf_keys[LF_KEYS][16];
static atomic_int g_lf_wrong;
static atomic_uint_fast64_t g_lf_hits;

static uint64_t lf_hash(int k) {
    return tc__l1_hash(g_l1, g_lf_keys[k], strlen(g_lf_keys[k]));
}

static void *lf_reader(void *arg) {
    uint64_t seed = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    while (!atomic_load(&g_stop)) {
        int k = (int)(rng(&seed) % LF_KEYS);
        tc_ref_t *r = NULL;
        if (tc__l1_get(g_l1, lf_hash(k), g_lf_keys[k], strlen(g_lf_keys[k]), &r) != TC_OK)
            continue;
        uint64_t v = value_version(r);
        if (v == UINT64_MAX || v % LF_KEYS != (uint64_t)k)
            atomic_fetch_add(&g_lf_wrong, 1);
        atomic_fetch_add(&g_lf_hits, 1);
        tc_ref_release(r);
    }
    return NULL;
}

static void lock_free_hits(unsigned shards, tc__l1_policy_kind_t policy) {
    tc__l1_opts_t o = {.max_bytes = 6000,
                       .max_value_bytes = 1 << 20,
                       .shards = shards,
                       .seed = 7,
                       .policy = policy};
    cr_assert_eq(tc__l1_open(&o, &g_l1), TC_OK);
    for (int k = 0; k < LF_KEYS; k++)
        snprintf(g_lf_keys[k], sizeof g_lf_keys[k], "key%d", k);
    atomic_store(&g_stop, 0);
    atomic_store(&g_lf_wrong, 0);
    atomic_store(&g_lf_hits, 0);
    pthread_t t[LF_READERS];
    for (uintptr_t i = 0; i < LF_READERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, lf_reader, (void *)(i + 1)), 0);
    uint64_t seed = 12345, version = 0;
    for (int i = 0; i < LF_WRITES; i++) {
        int k = (int)(rng(&seed) % LF_KEYS);
        uint64_t r = rng(&seed) % 100;
        if (r < 85) {
            version += LF_KEYS - version % LF_KEYS + (uint64_t)k; /* version % LF_KEYS == k */
            tc_ref_t *e = value_of(g_lf_keys[k], version);
            if (!tc__l1_write_local(g_l1, lf_hash(k), e)) /* as tc_set does */
                tc__l1_invalidate(g_l1, lf_hash(k), g_lf_keys[k], strlen(g_lf_keys[k]),
                                  e->version);
            tc_ref_release(e);
        } else if (r < 97) {
            tc__l1_evict(g_l1, lf_hash(k), g_lf_keys[k], strlen(g_lf_keys[k]));
        } else if (r < 99) {
            tc__l1_sweep(g_l1, "key1", 4, UINT64_MAX); /* key1, key10..key19 */
        } else {
            tc__l1_flush(g_l1);
        }
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < LF_READERS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&g_lf_wrong), 0, "a hit returned another key's or torn bytes");
    cr_assert_gt(atomic_load(&g_lf_hits), 0, "the readers never hit: the test proves nothing");
    tc__l1_counters_t c;
    tc__l1_counters(g_l1, &c);
    cr_assert_gt(c.evictions, 0, "the budget never evicted");
    cr_assert_eq(tc__l1_check(g_l1), 0, "table, queues and counts disagree");
    tc__l1_flush(g_l1);
    tc__l1_close(g_l1);
}

Test(l1_threads, lock_free_hits_meet_only_whole_values, .timeout = 60) {
    lock_free_hits(1, TC__L1_SECOND_CHANCE);
}

Test(l1_threads, lock_free_hits_meet_only_whole_values_s3fifo_4_shards, .timeout = 60) {
    lock_free_hits(4, TC__L1_S3FIFO);
}

/* ---- single-flight through the public API ---- */

#define NFETCH 16

typedef struct sf {
    tc_cache_t *cache;
    atomic_int calls;
    int rc;              /* what the loader returns */
    uint64_t base_waits; /* singleflight_waits before this round */
    pthread_barrier_t start;
    int got[NFETCH];  /* each caller's result */
    int same[NFETCH]; /* and whether its bytes were the loaded ones */
} sf_t;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Sleeps 50 ms, then (bounded) until every other caller is waiting on it, so a lost
 * single-flight shows up as extra calls, never as a lucky timing. */
static int slow_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)key;
    (void)klen;
    sf_t *x = arg;
    atomic_fetch_add(&x->calls, 1);
    sleep_ms(50);
    for (int i = 0; i < 5000; i++) {
        tc_stats_t s;
        if (tc_stats(x->cache, &s) == TC_OK &&
            s.singleflight_waits >= x->base_waits + NFETCH - 1)
            break;
        sleep_ms(1);
    }
    if (x->rc == TC_OK)
        return tc_load_set_value(load, "the value", 9);
    return x->rc;
}

typedef struct sf_arg {
    sf_t *x;
    int i;
    const char *key;
} sf_arg_t;

static void *sf_thread(void *arg) {
    sf_arg_t *a = arg;
    tc_ref_t *r = (tc_ref_t *)(uintptr_t)1;
    pthread_barrier_wait(&a->x->start);
    a->x->got[a->i] = tc_fetch(a->x->cache, a->key, strlen(a->key), slow_loader, a->x, &r);
    if (a->x->got[a->i] != TC_OK) {
        a->x->same[a->i] = r == NULL; /* *ref is NULL whenever the return is not 0 */
        return NULL;
    }
    a->x->same[a->i] = r != NULL && r != (tc_ref_t *)(uintptr_t)1 && tc_ref_size(r) == 9 &&
                       memcmp(tc_ref_data(r), "the value", 9) == 0;
    if (r != (tc_ref_t *)(uintptr_t)1)
        tc_ref_release(r);
    return NULL;
}

static void run_fetchers(sf_t *x, const char *key) {
    pthread_t t[NFETCH];
    sf_arg_t a[NFETCH];
    tc_stats_t s;
    cr_assert_eq(tc_stats(x->cache, &s), TC_OK);
    x->base_waits = s.singleflight_waits;
    pthread_barrier_init(&x->start, NULL, NFETCH);
    for (int i = 0; i < NFETCH; i++) {
        a[i] = (sf_arg_t){x, i, key};
        cr_assert_eq(pthread_create(&t[i], NULL, sf_thread, &a[i]), 0);
    }
    for (int i = 0; i < NFETCH; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&x->start);
}

static tc_cache_t *open_local(void) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.l1_shards = 4;
    tc_cache_t *c = NULL;
    cr_assert_eq(tc_open(&cfg, &c, NULL), TC_OK);
    return c;
}

Test(l1_threads, fetch_single_flight_one_load, .timeout = 60) {
    static sf_t x;
    x.cache = open_local();
    x.rc = TC_OK;
    run_fetchers(&x, "hot");
    cr_assert_eq(atomic_load(&x.calls), 1, "16 concurrent misses ran the loader %d times",
                 atomic_load(&x.calls));
    for (int i = 0; i < NFETCH; i++) {
        cr_assert_eq(x.got[i], TC_OK, "caller %d got %s", i, tc_err_name(x.got[i]));
        cr_assert(x.same[i], "caller %d got other bytes", i);
    }
    tc_stats_t s;
    tc_stats(x.cache, &s);
    cr_assert_eq(s.loads, 1);
    cr_assert_eq(s.singleflight_waits, NFETCH - 1);
    run_fetchers(&x, "hot"); /* now every call hits */
    cr_assert_eq(atomic_load(&x.calls), 1);
    for (int i = 0; i < NFETCH; i++)
        cr_assert(x.got[i] == TC_OK && x.same[i]);
    tc_close(x.cache);
}

Test(l1_threads, fetch_single_flight_error_reaches_everyone, .timeout = 60) {
    static sf_t x;
    x.cache = open_local();
    x.rc = TC_ETIMEDOUT;
    run_fetchers(&x, "failing");
    cr_assert_eq(atomic_load(&x.calls), 1);
    for (int i = 0; i < NFETCH; i++) {
        cr_assert_eq(x.got[i], TC_ETIMEDOUT, "caller %d got %s", i, tc_err_name(x.got[i]));
        cr_assert(x.same[i], "caller %d got a ref with an error", i);
    }
    tc_stats_t s;
    tc_stats(x.cache, &s);
    cr_assert_eq(s.load_errors, 1);
    cr_assert_eq(s.l1_entries, 0, "a failed load cached something");
    tc_ref_t *r;
    cr_assert_eq(tc_get(x.cache, "failing", 7, &r), TC_ENOTFOUND);
    /* The failure is not remembered: the next round loads again, and succeeds. */
    x.rc = TC_OK;
    run_fetchers(&x, "failing");
    cr_assert_eq(atomic_load(&x.calls), 2);
    for (int i = 0; i < NFETCH; i++)
        cr_assert(x.got[i] == TC_OK && x.same[i], "caller %d", i);
    tc_close(x.cache);
}
