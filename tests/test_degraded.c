/*
 * test_degraded.c - what a process keeps while Redis fails, and how fast it agrees with
 * Redis again once Redis is back (docs/consistency.md, l1.c rule 4).
 *
 * A write answered TC_EUNAVAILABLE, or a value loaded while Redis refused it, stays in the
 * process's L1 so the process reads its own data during the outage. Redis and every other
 * process hold something else, so such a local entry must go: at the first answer from
 * Redis (a heal), and in any case within degraded_ttl_ms. The faults are real: CLIENT
 * PAUSE WRITE (the listener stays subscribed, only the data path fails), kill -9 and
 * restart, SIGSTOP.
 *
 * Also here, the fault paths of tc_fetch: one call spends at most one command timeout, and
 * a lock release lost to a fault is retried, so other processes do not wait out the lock.
 */
/* tc-test-labels: integration fault */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"
#include "valfmt.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define S(str) str, sizeof(str) - 1
/* The suites' listener_ping_ms (tc_test_config) is 100: the watchdog bound is 200 ms. */
#define WATCHDOG_BOUND_MS 200u
#define SLACK_MS          (150u * TC_TEST_SLOW)

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
}

TestSuite(degraded, .init = setup, .fini = teardown, .timeout = 120);

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

static tc_cache_t *open_with(const char *prefix, uint64_t degraded_ttl_ms) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), prefix, prefix);
    cfg.degraded_ttl_ms = degraded_ttl_ms;
    return tc_test_open(&cfg);
}

/* What Redis holds for prefix+key, decoded ("" when absent). */
static void redis_value(const char *prefix, const char *key, char *buf, size_t cap) {
    redisReply *r = tc_test_redis_cmd(redis, "GET %sk:%s", prefix, key);
    buf[0] = '\0';
    tc__val_t v;
    if (r->type == REDIS_REPLY_STRING && tc__val_decode(r->str, r->len, &v) == 0 &&
        v.len < cap) {
        memcpy(buf, v.data, v.len);
        buf[v.len] = '\0';
    }
    freeReplyObject(r);
}

static void cache_value(tc_cache_t *c, const char *key, char *buf, size_t cap) {
    size_t len = cap - 1;
    int rc = tc_get_copy(c, key, strlen(key), buf, &len);
    buf[rc == 0 ? len : 0] = '\0';
}

/* Write key = val until tc_set says TC_EUNAVAILABLE: the breaker opened, so this last
 * write never reached Redis and is a local entry. Timed-out attempts write other values
 * (Redis may or may not apply them). */
static void write_until_unavailable(tc_cache_t *c, const char *key, const char *val) {
    uint64_t deadline = tc_test_now_ms() + 3000u * TC_TEST_SLOW;
    for (int i = 0; tc_test_now_ms() < deadline; i++) {
        char attempt[32];
        snprintf(attempt, sizeof attempt, "attempt%d", i);
        if (tc_set(c, key, strlen(key), val, strlen(val), 0) == TC_EUNAVAILABLE)
            return;
        tc_set(c, key, strlen(key), attempt, strlen(attempt), 0);
    }
    cr_assert_fail("tc_set never answered TC_EUNAVAILABLE");
}

/* ---- item 1: a degraded write diverges from Redis ---- */

/* The outage is on the data path only (the listener stays subscribed, so no flush
 * happens): the heal at the first answer from Redis must drop the local entry. The
 * degraded TTL is long on purpose: only the heal can save us. */
Test(degraded, local_write_dropped_at_the_first_answer_after_pause_write) {
    const char *prefix = "t:deg1:";
    tc_cache_t *a = open_with(prefix, 60000), *b = open_with(prefix, 60000);
    cr_assert_eq(tc_set(a, S("k"), S("v1"), 0), 0);
    tc_test_redis_do(redis, "CLIENT PAUSE 10000 WRITE");
    write_until_unavailable(a, "k", "local");
    char got[32];
    cache_value(a, "k", got, sizeof got);
    cr_assert_str_eq(got, "local", "a process reads its own write during the outage");
    cr_assert_eq(stats(a).l1_local_entries, 1);
    tc_test_redis_do(redis, "CLIENT UNPAUSE");
    /* Any answered call heals; tc_get of another key is one. */
    uint64_t deadline = tc_test_now_ms() + 3000u * TC_TEST_SLOW;
    while (stats(a).l2_heals == 0 && tc_test_now_ms() < deadline) {
        tc_ref_t *r = NULL;
        tc_get(a, S("other"), &r);
        tc_ref_release(r);
        tc_test_sleep_ms(20);
    }
    cr_assert_geq(stats(a).l2_heals, 1, "Redis answered but no heal was seen");
    char held[32];
    redis_value(prefix, "k", held, sizeof held);
    cache_value(a, "k", got, sizeof got);
    cr_assert_str_neq(held, "local", "the unavailable write reached Redis");
    cr_assert_str_eq(got, held, "A serves '%s' while Redis holds '%s'", got, held);
    cache_value(b, "k", got, sizeof got);
    cr_assert_str_eq(got, held, "B serves '%s' while Redis holds '%s'", got, held);
    cr_assert_eq(stats(a).l1_local_entries, 0);
    tc_close(b);
    tc_close(a);
}

/* No call after the outage at all: the degraded TTL alone ends the divergence. */
Test(degraded, local_write_expires_within_degraded_ttl_without_any_call) {
    const char *prefix = "t:deg2:";
    const unsigned ttl = 300;
    tc_cache_t *a = open_with(prefix, ttl);
    cr_assert_eq(tc_set(a, S("k"), S("v1"), 0), 0);
    tc_test_redis_do(redis, "CLIENT PAUSE 10000 WRITE");
    write_until_unavailable(a, "k", "local");
    uint64_t written = tc_test_now_ms();
    tc_test_redis_do(redis, "CLIENT UNPAUSE");
    char got[32];
    do {
        cache_value(a, "k", got, sizeof got); /* an L1 hit until the entry expires */
        tc_test_sleep_ms(10);
    } while (strcmp(got, "local") == 0 && tc_test_now_ms() - written < ttl + SLACK_MS + 2000);
    uint64_t took = tc_test_now_ms() - written;
    cr_assert_str_neq(got, "local", "the local write outlived degraded_ttl_ms");
    cr_assert_leq(took, ttl + SLACK_MS, "the local write lived %llu ms (degraded_ttl %u)",
                  (unsigned long long)took, ttl);
    tc_close(a);
}

/* Values loaded while L2 was unavailable are local entries too. */
static int fixed_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)key;
    (void)klen;
    return tc_load_set_value(load, arg, strlen(arg));
}

static char loaded_locally[] = "loaded-locally", loaded_in_outage[] = "loaded-in-outage",
            from_loader[] = "from-loader";

Test(degraded, value_loaded_while_redis_refused_is_dropped_at_heal) {
    const char *prefix = "t:deg3:";
    tc_cache_t *a = open_with(prefix, 60000), *b = open_with(prefix, 60000);
    cr_assert_eq(tc_set(b, S("k"), S("in-redis"), 0), 0);
    tc_test_redis_do(redis, "CLIENT PAUSE 10000 WRITE");
    write_until_unavailable(a, "warm-up", "x"); /* open A's breaker */
    tc_ref_t *ref = NULL;
    /* A's L1 does not hold k: the fetch goes to Redis, which the breaker skips. */
    cr_assert_eq(tc_fetch(a, S("k"), fixed_loader, loaded_locally, &ref), 0);
    cr_assert_eq(tc_ref_size(ref), strlen("loaded-locally"));
    tc_ref_release(ref);
    cr_assert_geq(stats(a).l1_local_entries, 1);
    tc_test_redis_do(redis, "CLIENT UNPAUSE");
    uint64_t deadline = tc_test_now_ms() + 3000u * TC_TEST_SLOW;
    while (stats(a).l2_heals == 0 && tc_test_now_ms() < deadline) {
        tc_ref_t *r = NULL;
        tc_get(a, S("other"), &r);
        tc_ref_release(r);
        tc_test_sleep_ms(20);
    }
    char got[32];
    cache_value(a, "k", got, sizeof got);
    cr_assert_str_eq(got, "in-redis", "A serves '%s' after Redis healed", got);
    tc_close(b);
    tc_close(a);
}

/* ---- item 2: the bound after a restart ---- */

/* A loads k while Redis is down (late in a long outage, so its listener's back-off has
 * grown); Redis restarts; B writes k. From the moment B's write returns, A may serve its
 * loaded value for at most the documented bound. */
Test(degraded, value_loaded_during_outage_bounded_after_restart) {
    const char *prefix = "t:deg4:";
    tc_cache_t *a = open_with(prefix, 0), *b = open_with(prefix, 0);
    tc_test_redis_kill(redis);
    cr_assert(tc_test_wait_listener(a, 0, 2000u * TC_TEST_SLOW));
    /* An outage long enough for a reconnect back-off to grow past the bound: with the old
     * 50 ms..2 s back-off, the attempts came 750 and 1550 ms after the loss, so A stayed
     * deaf for most of a second after this restart. */
    tc_test_sleep_ms(800);
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(a, S("k"), fixed_loader, loaded_in_outage, &ref), 0);
    tc_ref_release(ref);
    tc_test_redis_restart(redis);
    int rc;
    uint64_t deadline = tc_test_now_ms() + 3000u * TC_TEST_SLOW;
    while ((rc = tc_set(b, S("k"), S("new"), 0)) != 0 && tc_test_now_ms() < deadline)
        tc_test_sleep_ms(5);
    cr_assert_eq(rc, 0, "B could not write after the restart");
    uint64_t written = tc_test_now_ms();
    long took = tc_test_wait_get(a, S("k"), S("new"), 2000);
    cr_assert_geq(took, 0, "A never served B's write");
    cr_assert_leq((uint64_t)(tc_test_now_ms() - written), WATCHDOG_BOUND_MS + SLACK_MS,
                  "A served its outage value %ld ms after B's write returned (bound %u ms)",
                  took, WATCHDOG_BOUND_MS);
    tc_close(b);
    tc_close(a);
}

/* ---- item 10: one timeout per call, lost unlocks ---- */

/* Redis frozen: a cold tc_fetch spends one command timeout (its read), not three (read,
 * lock, store), and still answers from the loader. */
Test(degraded, cold_fetch_during_a_fault_spends_one_timeout) {
    const char *prefix = "t:deg5:";
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), prefix, prefix);
    cfg.command_timeout_ms = 300;
    cfg.breaker_threshold = 100; /* the breaker must not be what saves the call */
    tc_cache_t *a = tc_test_open(&cfg);
    tc_test_redis_pause(redis);
    uint64_t before = stats(a).l2_timeouts;
    tc_ref_t *ref = NULL;
    int rc = tc_fetch(a, S("cold"), fixed_loader, from_loader, &ref);
    tc_ref_release(ref);
    uint64_t spent = stats(a).l2_timeouts - before;
    tc_test_redis_resume(redis);
    cr_assert_eq(rc, 0, "tc_fetch: %s", tc_err_name(rc));
    cr_assert_eq(spent, 1, "one cold tc_fetch spent %llu command timeouts",
                 (unsigned long long)spent);
    tc_close(a);
}

typedef struct gate {
    sem_t loading, release;
} gate_t;

static int gated_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    gate_t *g = arg;
    (void)key;
    (void)klen;
    sem_post(&g->loading);
    sem_wait(&g->release);
    return tc_load_set_value(load, S("held"));
}

typedef struct held_fetch {
    tc_cache_t *c;
    gate_t *g;
} held_fetch_t;

static void *held_fetch_thread(void *arg) {
    held_fetch_t *h = arg;
    tc_ref_t *ref = NULL;
    tc_fetch(h->c, S("locked"), gated_loader, h->g, &ref);
    tc_ref_release(ref);
    return NULL;
}

static int counting_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)key;
    (void)klen;
    atomic_fetch_add((atomic_int *)arg, 1);
    return tc_load_set_value(load, S("b-loaded"));
}

/* A holds k's cross-process lock while loading; its store and release are lost to CLIENT
 * PAUSE WRITE. Once Redis is writable again, B's tc_fetch of k must not wait out the
 * lock's TTL (5 s): the keeper releases it. */
Test(degraded, lock_release_lost_to_a_fault_is_retried) {
    const char *prefix = "t:deg6:";
    tc_cache_t *a = open_with(prefix, 0), *b = open_with(prefix, 0);
    gate_t g;
    sem_init(&g.loading, 0, 0);
    sem_init(&g.release, 0, 0);
    held_fetch_t h = {a, &g};
    pthread_t t;
    pthread_create(&t, NULL, held_fetch_thread, &h);
    sem_wait(&g.loading); /* A holds the lock now */
    tc_test_redis_do(redis, "CLIENT PAUSE 400 WRITE");
    sem_post(&g.release);
    pthread_join(t, NULL); /* A's store timed out; its release could not be sent */
    cr_assert_geq(stats(a).unlocks_deferred, 1, "the failed release was not handed over");
    tc_test_sleep_ms(500); /* the pause is over */
    atomic_int calls = 0;
    uint64_t t0 = tc_test_now_ms();
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(b, S("locked"), counting_loader, &calls, &ref), 0);
    tc_ref_release(ref);
    uint64_t took = tc_test_now_ms() - t0;
    cr_assert_lt(took, 1000u * TC_TEST_SLOW,
                 "B waited %llu ms for a lock whose holder had finished",
                 (unsigned long long)took);
    tc_close(b);
    tc_close(a);
}
