/*
 * test_leases.c - loads that a write overtakes: the cache-aside race, closed by leases,
 * and joined loads that must not hand a superseded value to a late arrival.
 *
 * The cache-aside race (Facebook's memcache paper, NSDI 2013): a loader reads the source;
 * the application then updates the source and calls tc_del (or tc_set); the loader's value
 * is stored afterwards and lives until its TTL, in Redis and in the loader's L1. tiercache
 * closes it with the load's lock as a lease: every write deletes the lease, and a store
 * whose lease is gone is refused (fetch.c, scripts.c). The deterministic tests put the
 * writer on another invalidation channel, so the loading process never hears the delete:
 * only the lease can stop the store. The stress test races loads against source updates
 * plus deletes or writes from another cache and from another thread, a thousand times,
 * and checks every outcome against the source.
 *
 * Joined loads (l1.c rule 5): a tc_fetch that starts after a write has been applied, and
 * joins a load begun before it, must not receive that load's (older) value.
 */
/* tc-test-labels: integration concurrency */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"
#include "valfmt.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "t:lease:"
#define S(str) str, sizeof(str) - 1

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
}

TestSuite(leases, .init = setup, .fini = teardown, .timeout = 120);

static tc_cache_t *open_on(const char *channel) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, channel);
    cfg.command_timeout_ms = 2000; /* no fault here: a slow CI box must not fake one */
    return tc_test_open(&cfg);
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

/* What Redis holds for key, decoded into buf ("" when absent). */
static void redis_value(const char *key, char *buf, size_t cap) {
    redisReply *r = tc_test_redis_cmd(redis, "GET " PREFIX "k:%s", key);
    buf[0] = '\0';
    tc__val_t v;
    if (r->type == REDIS_REPLY_STRING && tc__val_decode(r->str, r->len, &v) == 0 &&
        v.len < cap) {
        memcpy(buf, v.data, v.len);
        buf[v.len] = '\0';
    }
    freeReplyObject(r);
}

/* tc_get into buf ("" on a miss). */
static void cache_value(tc_cache_t *c, const char *key, char *buf, size_t cap) {
    size_t len = cap - 1;
    int rc = tc_get_copy(c, key, strlen(key), buf, &len);
    cr_assert(rc == 0 || rc == TC_ENOTFOUND, "tc_get: %s", tc_err_name(rc));
    buf[rc == 0 ? len : 0] = '\0';
}

/* ---- a loader that reads "the source" and then waits to be released ---- */

typedef struct gated_source {
    char value[32]; /* the source's current value (guarded by mu) */
    pthread_mutex_t mu;
    sem_t read_done, release;
    atomic_int calls;
    int gated; /* the first load waits on `release` after reading */
} gated_source_t;

static void source_init(gated_source_t *s, const char *value) {
    memset(s, 0, sizeof *s);
    snprintf(s->value, sizeof s->value, "%s", value);
    pthread_mutex_init(&s->mu, NULL);
    sem_init(&s->read_done, 0, 0);
    sem_init(&s->release, 0, 0);
    s->gated = 1;
}

static void source_set(gated_source_t *s, const char *value) {
    pthread_mutex_lock(&s->mu);
    snprintf(s->value, sizeof s->value, "%s", value);
    pthread_mutex_unlock(&s->mu);
}

static int gated_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    gated_source_t *s = arg;
    (void)key;
    (void)klen;
    char read[32];
    pthread_mutex_lock(&s->mu);
    memcpy(read, s->value, sizeof read);
    pthread_mutex_unlock(&s->mu);
    if (atomic_fetch_add(&s->calls, 1) == 0 && s->gated) {
        sem_post(&s->read_done);
        sem_wait(&s->release); /* the application updates the source meanwhile */
    }
    return tc_load_set_value(load, read, strlen(read));
}

typedef struct fetch_call {
    tc_cache_t *c;
    const char *key;
    gated_source_t *src;
    int rc;
    char got[32];
} fetch_call_t;

static void *fetch_thread(void *arg) {
    fetch_call_t *f = arg;
    tc_ref_t *ref = NULL;
    f->rc = tc_fetch(f->c, f->key, strlen(f->key), gated_loader, f->src, &ref);
    f->got[0] = '\0';
    if (f->rc == 0) {
        size_t n = tc_ref_size(ref) < sizeof f->got - 1 ? tc_ref_size(ref) : sizeof f->got - 1;
        memcpy(f->got, tc_ref_data(ref), n);
        f->got[n] = '\0';
    }
    tc_ref_release(ref);
    return NULL;
}

/* ---- the cache-aside race, deterministic ---- */

/* The loader of A reads v1; a process deaf to A's channel updates the source and runs the
 * write; then A's load finishes. Nothing may keep v1. */
static void overtaken_load(int delete) {
    tc_cache_t *a = open_on(PREFIX "chan-a");
    tc_test_peer_t *b =
        tc_test_peer_start(tc_test_redis_url(redis), PREFIX, PREFIX "chan-b", NULL);
    gated_source_t src;
    source_init(&src, "v1");
    fetch_call_t call = {.c = a, .key = "k", .src = &src};
    pthread_t t;
    pthread_create(&t, NULL, fetch_thread, &call);
    sem_wait(&src.read_done); /* the loader holds v1 */
    source_set(&src, "v2");
    char hexk[8], hexv[8];
    tc_test_hex("k", 1, hexk);
    tc_test_hex("v2", 2, hexv);
    const char *r = delete ? tc_test_peer_cmd(b, "del %s", hexk)
                           : tc_test_peer_cmd(b, "set %s %s", hexk, hexv);
    cr_assert_str_eq(r, "ok 0", "the writer failed: %s", r);
    sem_post(&src.release);
    pthread_join(t, NULL);

    cr_assert_eq(call.rc, 0);
    cr_assert_str_eq(call.got, "v1", "the loading call itself began before the write");
    char held[32];
    redis_value("k", held, sizeof held);
    cr_assert_str_eq(held, delete ? "" : "v2", "Redis holds '%s' after the overtaken load",
                     held);
    cache_value(a, "k", held, sizeof held);
    cr_assert_str_eq(held, delete ? "" : "v2", "the loading process serves '%s'", held);
    cr_assert_eq(stats(a).leases_lost, 1);
    tc_test_peer_stop(b);
    tc_close(a);
}

Test(leases, delete_during_a_load_voids_its_store) {
    overtaken_load(1);
}

Test(leases, write_during_a_load_voids_its_store) {
    overtaken_load(0);
}

/* ---- the cache-aside race, many times, across caches and threads ---- */

#define RACE_ROUNDS 1000

typedef struct race {
    tc_cache_t *loader_cache, *writer_cache;
    char key[24];
    char old_value[24], new_value[24];
    char source[24];
    pthread_mutex_t mu;
    unsigned seed;
    int use_set;
} race_t;

static int race_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    race_t *r = arg;
    (void)key;
    (void)klen;
    char read[24];
    pthread_mutex_lock(&r->mu);
    memcpy(read, r->source, sizeof read);
    pthread_mutex_unlock(&r->mu);
    tc_test_sleep_ms((unsigned)(rand_r(&r->seed) % 3)); /* let the writer overtake, or not */
    return tc_load_set_value(load, read, strlen(read));
}

static void *race_reader(void *arg) {
    race_t *r = arg;
    tc_ref_t *ref = NULL;
    tc_fetch(r->loader_cache, r->key, strlen(r->key), race_loader, r, &ref);
    tc_ref_release(ref);
    return NULL;
}

static void *race_writer(void *arg) {
    race_t *r = arg;
    tc_test_sleep_ms((unsigned)(rand_r(&r->seed) % 3));
    pthread_mutex_lock(&r->mu);
    memcpy(r->source, r->new_value, sizeof r->source); /* the source first ... */
    pthread_mutex_unlock(&r->mu);
    int rc = r->use_set ? tc_set(r->writer_cache, r->key, strlen(r->key), r->new_value,
                                 strlen(r->new_value), 0)
                        : tc_del(r->writer_cache, r->key, strlen(r->key)); /* ... then us */
    cr_assert_eq(rc, 0, "writer: %s", tc_err_name(rc));
    return NULL;
}

/* After the race: Redis, and the loading cache when it can hear the writer, hold the new
 * value or nothing. (A writer on another channel is deaf to A by construction: a store that
 * landed before its write is then legitimately still in A's L1; only Redis is checked.) */
static int race_outcome_stale(race_t *r) {
    char held[32];
    redis_value(r->key, held, sizeof held);
    if (strcmp(held, r->old_value) == 0)
        return 1;
    if (r->writer_cache != r->loader_cache)
        return 0;
    cache_value(r->loader_cache, r->key, held, sizeof held);
    return strcmp(held, r->old_value) == 0;
}

Test(leases, overtaken_loads_never_stick_across_caches_and_threads) {
    tc_cache_t *a = open_on(PREFIX "race-a");
    tc_cache_t *deaf = open_on(PREFIX "race-deaf"); /* hears none of A's messages */
    int stale = 0;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        race_t r = {.loader_cache = a, .seed = (unsigned)i * 2654435761u + 1};
        /* Writer: another cache deaf to A (only the lease protects), or A itself from
         * another thread (the message and the lease both do). */
        r.writer_cache = (i % 2) ? deaf : a;
        r.use_set = (i % 4) >= 2;
        pthread_mutex_init(&r.mu, NULL);
        snprintf(r.key, sizeof r.key, "race%d", i);
        snprintf(r.old_value, sizeof r.old_value, "old%d", i);
        snprintf(r.new_value, sizeof r.new_value, "new%d", i);
        memcpy(r.source, r.old_value, sizeof r.source);
        pthread_t tr, tw;
        pthread_create(&tr, NULL, race_reader, &r);
        pthread_create(&tw, NULL, race_writer, &r);
        pthread_join(tr, NULL);
        pthread_join(tw, NULL);
        stale += race_outcome_stale(&r);
        pthread_mutex_destroy(&r.mu);
    }
    cr_assert_eq(stale, 0, "%d of %d rounds kept a value older than the source", stale,
                 RACE_ROUNDS);
    cr_assert_gt(stats(a).leases_lost, 0, "no round raced: the test proved nothing");
    tc_close(deaf);
    tc_close(a);
}

/* ---- joined loads (l1.c rule 5) ---- */

/* Wait until c has applied `count` more messages than `base`. */
static void wait_applied(tc_cache_t *c, uint64_t base, uint64_t count) {
    uint64_t deadline = tc_test_now_ms() + 2000u * TC_TEST_SLOW;
    while (stats(c).inval_applied < base + count && tc_test_now_ms() < deadline)
        tc_test_sleep_ms(1);
    cr_assert_geq(stats(c).inval_applied, base + count, "the write's message never arrived");
}

static void wait_waiting(tc_cache_t *c, uint64_t base) {
    uint64_t deadline = tc_test_now_ms() + 2000u * TC_TEST_SLOW;
    while (stats(c).singleflight_waits <= base && tc_test_now_ms() < deadline)
        tc_test_sleep_ms(1);
    cr_assert_gt(stats(c).singleflight_waits, base, "the second caller never joined");
}

/* A load of k begins (and reads v-old); another cache writes k (or deletes it) and A
 * applies its message; only then does a second thread of A call tc_fetch and join the
 * load. It must get what the write left, never the load's older value. */
static void late_joiner(int delete) {
    tc_cache_t *a = open_on(PREFIX "join");
    tc_cache_t *b = open_on(PREFIX "join");
    for (int round = 0; round < 20; round++) {
        char key[16], newer[16];
        snprintf(key, sizeof key, "j%d", round);
        snprintf(newer, sizeof newer, "new%d", round);
        gated_source_t src;
        source_init(&src, "old");
        fetch_call_t leader = {.c = a, .key = key, .src = &src};
        fetch_call_t joiner = {.c = a, .key = key, .src = &src};
        pthread_t tl, tj;
        pthread_create(&tl, NULL, fetch_thread, &leader);
        sem_wait(&src.read_done);
        source_set(&src, newer);
        uint64_t applied = stats(a).inval_applied;
        int rc = delete ? tc_del(b, key, strlen(key))
                        : tc_set(b, key, strlen(key), newer, strlen(newer), 0);
        cr_assert_eq(rc, 0);
        wait_applied(a, applied, 1);
        uint64_t waits = stats(a).singleflight_waits;
        pthread_create(&tj, NULL, fetch_thread, &joiner);
        wait_waiting(a, waits);
        sem_post(&src.release);
        pthread_join(tl, NULL);
        pthread_join(tj, NULL);
        cr_assert_eq(joiner.rc, 0, "round %d: %s", round, tc_err_name(joiner.rc));
        cr_assert_str_eq(joiner.got, newer,
                         "round %d: a caller that arrived after the write got '%s'", round,
                         joiner.got);
    }
    tc_close(b);
    tc_close(a);
}

Test(leases, late_joiner_never_gets_a_load_a_write_overtook) {
    late_joiner(0);
}

Test(leases, late_joiner_after_a_delete_loads_again) {
    late_joiner(1);
}

/* ---- a load longer than the lock's TTL keeps its lease ---- */

static int slow_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)key;
    (void)klen;
    tc_test_sleep_ms(*(const unsigned *)arg);
    return tc_load_set_value(load, S("slow-value"));
}

/* The keeper extends the lock while the load runs, so a slow source is still cached; a
 * write during the load still voids the lease. */
Test(leases, load_longer_than_lock_ttl_keeps_its_lease) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, PREFIX "long");
    cfg.command_timeout_ms = 2000;
    cfg.lock_ttl_ms = 300;
    tc_cache_t *a = tc_test_open(&cfg);
    unsigned load_ms = 1000;
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(a, S("long"), slow_loader, &load_ms, &ref), 0);
    tc_ref_release(ref);
    char held[32];
    redis_value("long", held, sizeof held);
    cr_assert_str_eq(held, "slow-value", "a load 3x longer than lock_ttl_ms was not stored");
    cr_assert_eq(stats(a).leases_lost, 0);
    tc_close(a);
}
