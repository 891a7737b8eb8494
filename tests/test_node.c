/* tc-test-labels: integration fault */
/*
 * test_node.c - one Redis server's pool and breaker (src/node.c) on their own, against a
 * real redis-server: work runs on a connection set up once and reused; a refused set-up
 * is an answer (the breaker stays closed); consecutive transport failures open the
 * breaker, which then refuses without touching the network, and one probe after the
 * cool-down closes it again with a heal; no free connection in time is a timeout.
 */
#include "conn.h"
#include "endpoint.h"
#include "errors.h"
#include "node.h"
#include "redis_server.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static tc_test_redis_t *redis;
static tc__endpoint_t ep;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
    tc_error_t err;
    cr_assert_eq(tc__endpoint_parse(tc_test_redis_url(redis), &ep, &err), 0, "%s", err.msg);
}

static void teardown(void) {
    tc__endpoint_deinit(&ep);
    tc_test_redis_stop(redis);
}

TestSuite(node, .init = setup, .fini = teardown, .timeout = 60);

typedef struct counts {
    atomic_int setups, works, fresh, heals;
    int setup_rc; /* what the set-up hook answers */
} counts_t;

static int count_setup(void *arg, redisContext *c, tc_error_t *err) {
    counts_t *k = arg;
    (void)c;
    atomic_fetch_add(&k->setups, 1);
    if (k->setup_rc)
        return tc__fail(err, k->setup_rc, "redis SCRIPT LOAD refused: NOPERM test");
    return 0;
}

static void count_heal(void *arg) {
    atomic_fetch_add(&((counts_t *)arg)->heals, 1);
}

/* PING on the borrowed connection. */
static int ping(void *arg, int slot, int fresh, redisContext *c) {
    counts_t *k = arg;
    (void)slot;
    atomic_fetch_add(&k->works, 1);
    atomic_fetch_add(&k->fresh, fresh);
    redisReply *r = tc__conn_command_argv(c, 1, (const char *[]){"PING"}, (size_t[]){4});
    if (!r)
        return tc__conn_error_code(c, errno);
    freeReplyObject(r);
    return 0;
}

static tc__node_t *open_node(counts_t *k, unsigned pool, unsigned threshold, uint32_t cool) {
    tc__node_opts_t o = {.endpoint = &ep,
                         .connect_timeout_ms = 200,
                         .command_timeout_ms = 200,
                         .pool_size = pool,
                         .breaker_threshold = threshold,
                         .breaker_cooldown_ms = cool,
                         .on_heal = count_heal,
                         .heal_arg = k,
                         .setup = count_setup,
                         .setup_arg = k};
    tc__node_t *n = NULL;
    tc_error_t err;
    cr_assert_eq(tc__node_open(&o, &n, &err), 0, "%s", err.msg);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(node, a_connection_is_set_up_once_and_reused) {
    counts_t k = {0};
    tc__node_t *n = open_node(&k, 2, 3, 100);
    tc_error_t err;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(tc__node_run(n, ping, &k, &err), 0, "%s", err.msg);
    cr_assert_eq(atomic_load(&k.works), 10);
    cr_assert_eq(atomic_load(&k.setups), 1, "one caller at a time needs one connection");
    cr_assert_eq(atomic_load(&k.fresh), 1);
    tc__node_counters_t c;
    tc__node_counters(n, &c);
    cr_assert_eq(c.breaker_state, 0);
    tc__node_close(n);
}

Test(node, a_refused_set_up_is_an_answer_not_a_failure) {
    counts_t k = {.setup_rc = TC_EREDIS};
    tc__node_t *n = open_node(&k, 1, 2, 100);
    tc_error_t err;
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(tc__node_run(n, ping, &k, &err), TC_EREDIS);
        cr_assert(strstr(err.msg, "NOPERM"), "%s", err.msg);
    }
    tc__node_counters_t c;
    tc__node_counters(n, &c);
    cr_assert_eq(c.breaker_state, 0, "a refusal opened the breaker");
    cr_assert_eq(c.permission_errors, 5);
    cr_assert_eq(atomic_load(&k.works), 0, "work ran on a connection that was not set up");
    tc__node_close(n);
}

Test(node, failures_open_the_breaker_and_a_probe_closes_it) {
    counts_t k = {0};
    tc__node_t *n = open_node(&k, 2, 3, 300);
    tc_error_t err;
    cr_assert_eq(tc__node_run(n, ping, &k, &err), 0, "%s", err.msg);
    tc_test_redis_kill(redis);
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        rc = tc__node_run(n, ping, &k, &err);
        cr_assert(rc == TC_EUNAVAILABLE || rc == TC_ETIMEDOUT, "%s", tc_err_name(rc));
    }
    tc__node_counters_t c;
    tc__node_counters(n, &c);
    cr_assert_eq(c.breaker_state, 1, "three failures did not open it");
    cr_assert_eq(c.opens, 1);
    cr_assert_eq(tc__node_available(n), 0);
    int works = atomic_load(&k.works), setups = atomic_load(&k.setups);
    cr_assert_eq(tc__node_run(n, ping, &k, &err), TC_EUNAVAILABLE);
    cr_assert(strstr(err.msg, "circuit breaker open"), "%s", err.msg);
    cr_assert_eq(atomic_load(&k.works) + atomic_load(&k.setups), works + setups,
                 "an open breaker still went to the network");
    tc_test_redis_restart(redis);
    sleep_ms(350); /* the cool-down */
    cr_assert_eq(tc__node_available(n), 1);
    cr_assert_eq(tc__node_run(n, ping, &k, &err), 0, "the probe: %s", err.msg);
    tc__node_counters(n, &c);
    cr_assert_eq(c.breaker_state, 0, "the probe did not close it");
    cr_assert_eq(atomic_load(&k.heals), 1, "the first answer after the failures is a heal");
    tc__node_close(n);
}

/* Work that holds its connection until told to let go. */
typedef struct hold {
    counts_t k;
    atomic_int holding, release;
    tc__node_t *n;
} hold_t;

static int hold_work(void *arg, int slot, int fresh, redisContext *c) {
    hold_t *h = arg;
    (void)slot, (void)fresh, (void)c;
    atomic_store(&h->holding, 1);
    while (!atomic_load(&h->release))
        sleep_ms(1);
    return 0;
}

static void *hold_thread(void *arg) {
    hold_t *h = arg;
    tc_error_t err;
    return (void *)(intptr_t)tc__node_run(h->n, hold_work, h, &err);
}

Test(node, no_free_connection_in_time_is_a_timeout) {
    static hold_t h;
    h.n = open_node(&h.k, 1, 3, 100);
    pthread_t t;
    pthread_create(&t, NULL, hold_thread, &h);
    while (!atomic_load(&h.holding))
        sleep_ms(1);
    tc_error_t err;
    cr_assert_eq(tc__node_run(h.n, ping, &h.k, &err), TC_ETIMEDOUT);
    cr_assert(strstr(err.msg, "no pool connection free"), "%s", err.msg);
    atomic_store(&h.release, 1);
    void *rc;
    pthread_join(t, &rc);
    cr_assert_eq((intptr_t)rc, 0);
    tc__node_counters_t c;
    tc__node_counters(h.n, &c);
    cr_assert_eq(c.timeouts, 1);
    cr_assert_eq(c.breaker_state, 0, "waiting for a slot is not a Redis failure");
    tc__node_close(h.n);
}
