/*
 * test_l2_threads.c - the Redis tier shared by many threads.
 *
 * Many more threads than pooled connections: every call must get a connection of its own
 * (no reply ever lands in another thread's call), nothing fails for want of a slot, and
 * each thread reads back exactly what it last wrote, with the version its write got.
 * Then the breaker under a crowd: once the cooldown is over, exactly one of many
 * simultaneous callers is let through as the probe; the rest are turned away at once.
 * Assertions run on the main thread; workers only record what they saw.
 */
/* tc-test-labels: integration concurrency */
#include "config.h"
#include "l2.h"
#include "redis_server.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NTHREADS 8
#define NITERS   2000

typedef struct worker {
    tc__l2_t *l2;
    int id;
    int failures; /* calls that did not return 0 */
    int mismatches;
    int version_regressions;
    int rc;                /* crowd test: what the one call returned */
    pthread_barrier_t *go; /* crowd test */
    char first_problem[160];
} worker_t;

static void note(worker_t *w, const char *what, int n) {
    if (!w->first_problem[0])
        snprintf(w->first_problem, sizeof w->first_problem, "thread %d iter %d: %s", w->id, n,
                 what);
}

static void one_iteration(worker_t *w, const char *key, size_t klen, int n, uint64_t *last) {
    char val[64];
    int vlen = snprintf(val, sizeof val, "thread %d\r\nvalue %d", w->id, n);
    val[vlen++] = '\0'; /* binary payload: NUL and CRLF inside */
    uint64_t ver = 0;
    if (tc__l2_set(w->l2, key, klen, val, (size_t)vlen, 60000, &ver) != 0) {
        w->failures++;
        note(w, "set failed", n);
        return;
    }
    if (ver <= *last) {
        w->version_regressions++;
        note(w, "version did not increase", n);
    }
    *last = ver;
    tc__l2_value_t v;
    if (tc__l2_get(w->l2, key, klen, &v) != 0) {
        w->failures++;
        note(w, "get failed", n);
        return;
    }
    if (v.val.len != (size_t)vlen || memcmp(v.val.data, val, (size_t)vlen) != 0 ||
        v.val.version != ver) {
        w->mismatches++;
        note(w, "get returned something else", n);
    }
    tc__l2_value_release(&v);
}

static void *hammer(void *arg) {
    worker_t *w = arg;
    char key[32];
    memcpy(key, "thr\0", 4); /* a NUL inside every key */
    int klen = 4 + snprintf(key + 4, sizeof key - 4, "%d", w->id);
    uint64_t last = 0;
    for (int n = 0; n < NITERS; n++)
        one_iteration(w, key, (size_t)klen, n, &last);
    return NULL;
}

static tc__l2_t *open_l2(tc_test_redis_t *r, tc__endpoint_t *ep, unsigned pool, uint32_t cmd_ms,
                         unsigned threshold, uint32_t cooldown_ms) {
    tc_error_t err = {0};
    cr_assert_eq(tc__endpoint_parse(tc_test_redis_url(r), ep, &err), 0, "%s", err.msg);
    tc__l2_opts_t o = {.endpoint = ep,
                       .key_prefix = "thr:",
                       .channel = "thr:inval",
                       .pool_size = pool,
                       .connect_timeout_ms = 2000,
                       .command_timeout_ms = cmd_ms,
                       .breaker_threshold = threshold,
                       .breaker_cooldown_ms = cooldown_ms};
    tc__l2_t *l2 = NULL;
    cr_assert_eq(tc__l2_open(&o, &l2, &err), 0, "%s", err.msg);
    return l2;
}

Test(l2_threads, eight_threads_share_a_pool_of_two, .timeout = 300) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    tc__endpoint_t ep;
    /* Generous timeout: on a loaded 2-core box under TSan a slot can take a while. */
    tc__l2_t *l2 = open_l2(r, &ep, 2, 10000, 5, 1000);
    worker_t w[NTHREADS];
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker_t){.l2 = l2, .id = i};
        cr_assert_eq(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < NTHREADS; i++) {
        cr_expect_eq(w[i].failures + w[i].mismatches + w[i].version_regressions, 0, "%s",
                     w[i].first_problem);
    }
    tc__l2_counters_t c;
    tc__l2_counters(l2, &c);
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.published, NTHREADS * NITERS);
    tc__l2_close(l2);
    tc__endpoint_deinit(&ep);
    tc_test_redis_stop(r);
}

static void *crowd_call(void *arg) {
    worker_t *w = arg;
    pthread_barrier_wait(w->go);
    w->rc = tc__l2_set(w->l2, "crowd", 5, "v", 1, 60000, NULL);
    return NULL;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(l2_threads, exactly_one_probe_after_cooldown, .timeout = 60) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    tc__endpoint_t ep;
    tc__l2_t *l2 = open_l2(r, &ep, 4, 100, 1, 1000);
    tc_test_redis_pause(r);
    cr_assert_eq(tc__l2_ping(l2, NULL), TC_ETIMEDOUT);
    cr_assert_not(tc__l2_available(l2));
    sleep_ms(1050);
    cr_assert(tc__l2_available(l2));

    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NTHREADS);
    worker_t w[NTHREADS];
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker_t){.l2 = l2, .id = i, .go = &go};
        pthread_create(&t[i], NULL, crowd_call, &w[i]);
    }
    int probes = 0, rejected = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        probes += w[i].rc == TC_ETIMEDOUT;
        rejected += w[i].rc == TC_EUNAVAILABLE;
    }
    pthread_barrier_destroy(&go);
    cr_assert_eq(probes, 1, "exactly one caller may probe");
    cr_assert_eq(rejected, NTHREADS - 1);
    tc__l2_counters_t c;
    tc__l2_counters(l2, &c);
    cr_assert_eq(c.opens, 2, "the failed probe reopens the breaker");

    tc_test_redis_resume(r);
    tc__l2_close(l2);
    tc__endpoint_deinit(&ep);
    tc_test_redis_stop(r);
}
