/*
 * test_singleflight.c - tc_fetch's promise that concurrent misses of one key in one
 * process run the loader once, and that its outcome (value, TC_ENOTFOUND or error)
 * reaches every waiter.
 *
 * 32 threads meet at a barrier and fetch the same missing key; the loader sleeps so that
 * all of them arrive while it runs, and counts its calls atomically. The sleep is scaled
 * up under sanitizers, where starting 32 threads on two loaded cores can take longer
 * than 100 ms: the assertions themselves never depend on timing, only the chance that a
 * straggler arrives after the load finished (it would then hit the cache, still without a
 * second load, or for an error start a new load, which is legitimate and is tolerated
 * only in the error cases below).
 */
/* tc-test-labels: integration concurrency */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define NTHREADS      32
#define LOAD_SLEEP_MS (100u * TC_TEST_SLOW)

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

TestSuite(singleflight, .init = setup, .fini = teardown, .timeout = 120);

typedef struct loader_ctx {
    atomic_int calls;
    int ret;           /* what the loader returns */
    const char *value; /* set when ret == 0 */
} loader_ctx_t;

static int slow_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    loader_ctx_t *lc = arg;
    atomic_fetch_add(&lc->calls, 1);
    tc_test_sleep_ms(LOAD_SLEEP_MS);
    /* The loader must see the caller's exact key bytes. */
    if (klen != 7 || memcmp(key, "sf\0key\n", 7) != 0)
        return -999;
    if (lc->ret == 0 && tc_load_set_value(load, lc->value, strlen(lc->value)) != 0)
        return -998;
    return lc->ret;
}

typedef struct worker {
    pthread_t tid;
    tc_cache_t *cache;
    loader_ctx_t *lc;
    pthread_barrier_t *barrier;
    int rc;
    char got[32];
    size_t got_len;
} worker_t;

static void *worker_main(void *arg) {
    worker_t *w = arg;
    tc_ref_t *ref = NULL;
    pthread_barrier_wait(w->barrier);
    w->rc = tc_fetch(w->cache, "sf\0key\n", 7, slow_loader, w->lc, &ref);
    if (w->rc == 0) {
        w->got_len = tc_ref_size(ref) < sizeof w->got ? tc_ref_size(ref) : sizeof w->got;
        memcpy(w->got, tc_ref_data(ref), w->got_len);
    } else if (ref) {
        w->rc = 12345; /* *ref must be NULL on failure */
    }
    tc_ref_release(ref);
    return NULL;
}

/* Run NTHREADS concurrent fetches of the key; results land in ws. */
static void run_fetches(tc_cache_t *c, loader_ctx_t *lc, worker_t *ws) {
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        ws[i] = (worker_t){.cache = c, .lc = lc, .barrier = &barrier};
        cr_assert_eq(pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(ws[i].tid, NULL);
    pthread_barrier_destroy(&barrier);
}

static tc_cache_t *open_cache(const char *prefix) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), prefix, prefix);
    return tc_test_open(&cfg);
}

static long long raw_exists(const char *prefix) {
    redisReply *r = tc_test_redis_cmd(redis, "EXISTS %sk:%b", prefix, "sf\0key\n", (size_t)7);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

Test(singleflight, one_load_for_32_concurrent_misses) {
    tc_cache_t *c = open_cache("t:sf1:");
    loader_ctx_t lc = {.ret = 0, .value = "the-one-value"};
    worker_t ws[NTHREADS];
    run_fetches(c, &lc, ws);
    cr_assert_eq(atomic_load(&lc.calls), 1, "the loader ran %d times", atomic_load(&lc.calls));
    for (int i = 0; i < NTHREADS; i++) {
        cr_assert_eq(ws[i].rc, 0, "thread %d: %s", i, tc_err_name(ws[i].rc));
        cr_assert_eq(ws[i].got_len, 13);
        cr_assert_eq(memcmp(ws[i].got, "the-one-value", 13), 0, "thread %d got other bytes", i);
    }
    tc_stats_t st;
    cr_assert_eq(tc_stats(c, &st), 0);
    cr_assert_eq(st.loads, 1);
    cr_assert_geq(st.singleflight_waits, 1, "nobody waited on the load");
    cr_assert_eq(raw_exists("t:sf1:"), 1, "the loaded value must be stored in L2");
    tc_close(c);
}

Test(singleflight, loader_error_reaches_every_waiter_and_is_not_cached) {
    tc_cache_t *c = open_cache("t:sf2:");
    loader_ctx_t lc = {.ret = -1234};
    worker_t ws[NTHREADS];
    run_fetches(c, &lc, ws);
    int calls = atomic_load(&lc.calls);
    cr_assert(calls >= 1 && calls <= NTHREADS / 4, "%d loader calls for one burst of misses",
              calls);
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(ws[i].rc, -1234, "thread %d: got %d, not the loader's error", i, ws[i].rc);
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_get(c, "sf\0key\n", 7, &ref), TC_ENOTFOUND, "a failed load was cached");
    cr_assert_eq(raw_exists("t:sf2:"), 0);

    lc.ret = 0;
    lc.value = "recovered";
    cr_assert_eq(tc_fetch(c, "sf\0key\n", 7, slow_loader, &lc, &ref), 0);
    cr_assert_eq(atomic_load(&lc.calls), calls + 1, "the next fetch must call the loader");
    cr_assert_eq(memcmp(tc_ref_data(ref), "recovered", 9), 0);
    tc_ref_release(ref);
    tc_stats_t st;
    cr_assert_eq(tc_stats(c, &st), 0);
    cr_assert_geq(st.load_errors, 1);
    tc_close(c);
}

Test(singleflight, positive_loader_return_is_eloader_for_all) {
    tc_cache_t *c = open_cache("t:sf3:");
    loader_ctx_t lc = {.ret = 3};
    worker_t ws[NTHREADS];
    run_fetches(c, &lc, ws);
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(ws[i].rc, TC_ELOADER, "thread %d: got %d", i, ws[i].rc);
    cr_assert_eq(raw_exists("t:sf3:"), 0);
    tc_close(c);
}

Test(singleflight, loader_notfound_reaches_every_waiter) {
    tc_cache_t *c = open_cache("t:sf4:");
    loader_ctx_t lc = {.ret = TC_ENOTFOUND};
    worker_t ws[NTHREADS];
    run_fetches(c, &lc, ws);
    int calls = atomic_load(&lc.calls);
    cr_assert(calls >= 1 && calls <= NTHREADS / 4, "%d loader calls", calls);
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(ws[i].rc, TC_ENOTFOUND, "thread %d: got %s", i, tc_err_name(ws[i].rc));
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_get(c, "sf\0key\n", 7, &ref), TC_ENOTFOUND);
    cr_assert_eq(raw_exists("t:sf4:"), 0);
    tc_close(c);
}

/* Distinct keys do not share a flight: each runs its own loader, concurrently. */
static int key_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    atomic_fetch_add((atomic_int *)arg, 1);
    tc_test_sleep_ms(20);
    return tc_load_set_value(load, key, klen);
}

typedef struct kworker {
    pthread_t tid;
    tc_cache_t *cache;
    atomic_int *calls;
    char key[8];
    int rc, same;
} kworker_t;

static void *kworker_main(void *arg) {
    kworker_t *w = arg;
    tc_ref_t *ref = NULL;
    w->rc = tc_fetch(w->cache, w->key, strlen(w->key), key_loader, w->calls, &ref);
    w->same = w->rc == 0 && tc_ref_size(ref) == strlen(w->key) &&
              memcmp(tc_ref_data(ref), w->key, strlen(w->key)) == 0;
    tc_ref_release(ref);
    return NULL;
}

Test(singleflight, distinct_keys_load_independently) {
    tc_cache_t *c = open_cache("t:sf5:");
    atomic_int calls = 0;
    kworker_t ws[8];
    for (int i = 0; i < 8; i++) {
        ws[i] = (kworker_t){.cache = c, .calls = &calls};
        snprintf(ws[i].key, sizeof ws[i].key, "key%d", i);
        cr_assert_eq(pthread_create(&ws[i].tid, NULL, kworker_main, &ws[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(ws[i].tid, NULL);
        cr_assert_eq(ws[i].rc, 0);
        cr_assert(ws[i].same, "key%d got another key's value", i);
    }
    cr_assert_eq(atomic_load(&calls), 8);
    tc_close(c);
}
