/*
 * test_tracking.c - writes by any client reach L1: Redis client tracking over RESP2, in
 * bcast and default mode, for tiercache's own keys and for plain keys.
 *
 * The foreign writer is a raw hiredis connection (what redis-cli, a Python or a Go service
 * would be): it publishes nothing, so only the server's own invalidations can evict. Each
 * test also shows what the same write does without tracking, so it could fail. Covered:
 * SET, DEL and expiry by another client; FLUSHALL (a nil invalidation: flush); the
 * tracking table's own evictions (default mode, tracking-table-max-keys small); the
 * listener reconnecting with a new client id, after which every data connection must
 * redirect its tracking to the new id before L1 keeps anything it reads; and reads racing
 * a steady foreign writer (redis#6867: the read's reply and the invalidation travel on
 * different connections), checked against the writer's completion times.
 */
/* tc-test-labels: integration concurrency */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"
#include "valfmt.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S(str) str, sizeof(str) - 1
/* One message delay, generously: loopback delivers in well under a millisecond. */
#define NOTICE_MS (500u * TC_TEST_SLOW)

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
}

TestSuite(tracking, .init = setup, .fini = teardown, .timeout = 120);

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t st;
    cr_assert_eq(tc_stats(c, &st), 0);
    return st;
}

static tc_cache_t *open_mode(const char *prefix, int tracking, int plain) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), prefix, "t:trk:inval");
    cfg.tracking = tracking;
    cfg.plain_keys = plain;
    cfg.command_timeout_ms = 2000;
    return tc_test_open(&cfg);
}

/* A holds key in L1 (a read is a hit). The write that stored it sends A a notice too,
 * which may arrive after A's first read and evict that copy (the price of tracking: one
 * extra read per write), so read until a hit. */
static void expect_held(tc_cache_t *a, const char *key, const char *val) {
    uint64_t deadline = tc_test_now_ms() + 2000u * TC_TEST_SLOW;
    for (;;) {
        uint64_t hits = stats(a).l1_hits;
        cr_assert_geq(tc_test_wait_get(a, key, strlen(key), val, strlen(val), 2000), 0,
                      "%s never read '%s'", key, val);
        if (stats(a).l1_hits > hits)
            return;
        cr_assert_lt(tc_test_now_ms(), deadline, "%s is never held in L1", key);
        tc_test_sleep_ms(10);
    }
}

/* ---- tiercache's own keys, written around it ---- */

static void foreign_delete_and_expire(int tracking) {
    const char *prefix = tracking ? "t:trk1:" : "t:trk0:";
    tc_cache_t *w = open_mode(prefix, TC_TRACKING_OFF, 0);
    tc_cache_t *a = open_mode(prefix, tracking, 0);
    cr_assert_eq(tc_set(w, S("k"), S("v"), 0), 0);
    expect_held(a, "k", "v");
    tc_test_redis_do(redis, "DEL %sk:k", prefix);
    long took = tc_test_wait_get(a, S("k"), NULL, 0, NOTICE_MS);
    cr_assert_geq(took, 0, "redis-cli DEL: A still serves the deleted value");
    cr_assert_eq(tc_set(w, S("e"), S("v"), 0), 0);
    expect_held(a, "e", "v");
    tc_test_redis_do(redis, "PEXPIRE %sk:e 1", prefix);
    took = tc_test_wait_get(a, S("e"), NULL, 0, NOTICE_MS);
    cr_assert_geq(took, 0, "an expiry by another client: A still serves the value");
    cr_assert_gt(stats(a).inval_tracking, 0);
    tc_close(a);
    tc_close(w);
}

Test(tracking, bcast_sees_foreign_delete_and_expiry) {
    foreign_delete_and_expire(TC_TRACKING_BCAST);
}

Test(tracking, default_sees_foreign_delete_and_expiry) {
    foreign_delete_and_expire(TC_TRACKING_DEFAULT);
}

/* The control: without tracking the same foreign delete goes unseen (the test above can
 * fail). */
Test(tracking, off_misses_a_foreign_delete) {
    const char *prefix = "t:trk2:";
    tc_cache_t *a = open_mode(prefix, TC_TRACKING_OFF, 0);
    cr_assert_eq(tc_set(a, S("k"), S("v"), 0), 0);
    expect_held(a, "k", "v");
    tc_test_redis_do(redis, "DEL %sk:k", prefix);
    tc_test_sleep_ms(200);
    cr_assert_geq(tc_test_wait_get(a, S("k"), S("v"), 0), 0, "evicted without tracking?");
    tc_close(a);
}

/* ---- plain keys ---- */

static void plain_keys_follow_foreign_writes(int tracking) {
    tc_cache_t *a = open_mode("user:", tracking, 1);
    tc_test_redis_do(redis, "SET user:1 v1");
    expect_held(a, "user:1", "v1");
    tc_test_redis_do(redis, "SET user:1 v2");
    cr_assert_geq(tc_test_wait_get(a, S("user:1"), S("v2"), NOTICE_MS), 0,
                  "a plain key written by another client kept its old value");
    expect_held(a, "user:1", "v2");
    tc_test_redis_do(redis, "DEL user:1");
    cr_assert_geq(tc_test_wait_get(a, S("user:1"), NULL, 0, NOTICE_MS), 0);
    /* Writes through tiercache are plain too: readable by anyone. */
    cr_assert_eq(tc_set(a, S("user:2"), S("mine"), 0), 0);
    redisContext *rc = tc_test_redis_connect(redis);
    redisReply *r = redisCommand(rc, "GET user:2");
    cr_assert(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "mine") == 0,
              "tc_set did not store a plain value");
    freeReplyObject(r);
    redisFree(rc);
    cr_assert_eq(tc_del(a, S("user:2")), 0);
    cr_assert_geq(tc_test_wait_get(a, S("user:2"), NULL, 0, 0), 0);
    tc_close(a);
}

Test(tracking, plain_keys_bcast) {
    plain_keys_follow_foreign_writes(TC_TRACKING_BCAST);
    tc_cache_t *a = open_mode("user:", TC_TRACKING_BCAST, 1);
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_get(a, S("order:1"), &ref), TC_EINVAL,
                 "a key outside the tracked prefix would never be invalidated");
    tc_error_t e;
    cr_assert(tc_last_error(&e) && strstr(e.msg, "key_prefix"), "%s", e.msg);
    tc_close(a);
}

Test(tracking, plain_keys_default) {
    plain_keys_follow_foreign_writes(TC_TRACKING_DEFAULT);
}

static int plain_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)arg;
    (void)key;
    (void)klen;
    return tc_load_set_value(load, S("loaded"));
}

Test(tracking, plain_keys_fetch_and_config) {
    tc_cache_t *a = open_mode("user:", TC_TRACKING_BCAST, 1);
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(a, S("user:9"), plain_loader, NULL, &ref), 0);
    tc_ref_release(ref);
    redisContext *rc = tc_test_redis_connect(redis);
    redisReply *r = redisCommand(rc, "GET user:9");
    cr_assert(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "loaded") == 0);
    freeReplyObject(r);
    redisFree(rc);
    tc_close(a);
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), "user:", "t:trk:inval");
    cfg.plain_keys = 1;
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &c, &err), TC_ECONFIG, "plain keys without tracking");
    cr_assert(strstr(err.msg, "tracking"), "%s", err.msg);
    cfg.tracking = TC_TRACKING_BCAST;
    cfg.stale_ttl_ms = 1000;
    cr_assert_eq(tc_open(&cfg, &c, &err), TC_ECONFIG, "plain keys with a stale window");
}

/* ---- the server's special notices ---- */

Test(tracking, flushall_flushes_l1) {
    tc_cache_t *a = open_mode("user:", TC_TRACKING_BCAST, 1);
    tc_test_redis_do(redis, "SET user:1 v1");
    expect_held(a, "user:1", "v1");
    uint64_t flushes = stats(a).l1_flushes;
    tc_test_redis_do(redis, "FLUSHALL");
    cr_assert_geq(tc_test_wait_get(a, S("user:1"), NULL, 0, NOTICE_MS), 0);
    /* The counter moves once every shard is swept, possibly just after the miss above. */
    uint64_t until = tc_test_now_ms() + NOTICE_MS;
    while (stats(a).l1_flushes <= flushes && tc_test_now_ms() < until)
        tc_test_sleep_ms(5);
    cr_assert_gt(stats(a).l1_flushes, flushes, "the nil invalidation did not flush L1");
    tc_close(a);
}

/* Default mode keeps a table of tracked keys on the server; past tracking-table-max-keys
 * it forgets some and says so with an invalidation: just evictions, never stale. */
Test(tracking, tracking_table_overflow_only_evicts) {
    tc_test_redis_do(redis, "CONFIG SET tracking-table-max-keys 10");
    tc_cache_t *a = open_mode("user:", TC_TRACKING_DEFAULT, 1);
    for (int i = 0; i < 50; i++)
        tc_test_redis_do(redis, "SET user:%d old", i);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "user:%d", i);
        cr_assert_geq(tc_test_wait_get(a, k, strlen(k), "old", 3, 2000), 0);
    }
    /* the server's overflow notices arrive on the listener's link, after the replies */
    uint64_t t0 = tc_test_now_ms();
    while (stats(a).inval_tracking < 30 && tc_test_now_ms() - t0 < NOTICE_MS)
        tc_test_sleep_ms(5);
    cr_assert_geq(stats(a).inval_tracking, 30, "the table never overflowed");
    for (int i = 0; i < 50; i++)
        tc_test_redis_do(redis, "SET user:%d new", i);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "user:%d", i);
        cr_assert_geq(tc_test_wait_get(a, k, strlen(k), "new", 3, NOTICE_MS), 0,
                      "%s kept its old value", k);
    }
    tc_close(a);
    tc_test_redis_do(redis, "CONFIG SET tracking-table-max-keys 0");
}

/* ---- the redirect target changes ---- */

/* RESP2 gives no notice when the listener (the redirect target) dies. After it comes back
 * with a new client id, a read must be tracked for the new id before L1 keeps it. */
Test(tracking, default_mode_rearms_after_the_listener_reconnects) {
    tc_cache_t *a = open_mode("user:", TC_TRACKING_DEFAULT, 1);
    tc_test_redis_do(redis, "SET user:1 v1");
    expect_held(a, "user:1", "v1");
    uint64_t reconnects = stats(a).listener_reconnects;
    tc_test_redis_do(redis, "CLIENT KILL TYPE pubsub");
    uint64_t deadline = tc_test_now_ms() + 3000u * TC_TEST_SLOW;
    while (stats(a).listener_reconnects == reconnects && tc_test_now_ms() < deadline)
        tc_test_sleep_ms(5);
    cr_assert(tc_test_wait_listener(a, 1, 3000u * TC_TEST_SLOW));
    expect_held(a, "user:1", "v1"); /* read again, on a pooled connection */
    tc_test_redis_do(redis, "SET user:1 v2");
    cr_assert_geq(tc_test_wait_get(a, S("user:1"), S("v2"), NOTICE_MS), 0,
                  "a read after the listener changed ids was tracked for the dead one");
    tc_close(a);
}

/* ---- reads racing a steady foreign writer ---- */

/* The bound a read is held to: a write that returned this long before the read began must
 * be seen. Three spinning readers, the writer and the listener share two cores, so the
 * listener can be descheduled for tens of ms (stress/oracle.h); the writer paces itself so
 * the run lasts several bounds and a deaf L1 is still caught. */
#define RACE_WRITES   3000
#define RACE_BOUND_MS (100u * TC_TEST_SLOW)
#define RACE_PACE_US  100

typedef struct race {
    tc_cache_t *a;
    atomic_int done;
    uint64_t completed_ms[RACE_WRITES]; /* when write i returned (0: not yet) */
    atomic_int last;                    /* highest i completed */
    atomic_int stale;
    char example[128];
} race_t;

static void *race_writer(void *arg) {
    race_t *r = arg;
    redisContext *rc = tc_test_redis_connect(redis);
    for (int i = 1; i < RACE_WRITES; i++) {
        redisReply *rep = redisCommand(rc, "SET user:race %d", i);
        freeReplyObject(rep);
        __atomic_store_n(&r->completed_ms[i], tc_test_now_ms(), __ATOMIC_RELEASE);
        atomic_store(&r->last, i);
        usleep(RACE_PACE_US);
    }
    redisFree(rc);
    atomic_store(&r->done, 1);
    return NULL;
}

/* The newest write that completed before t. */
static int completed_before(race_t *r, uint64_t t) {
    int last = atomic_load(&r->last);
    while (last > 0 && __atomic_load_n(&r->completed_ms[last], __ATOMIC_ACQUIRE) >= t)
        last--;
    return last;
}

static void *race_reader(void *arg) {
    race_t *r = arg;
    while (!atomic_load(&r->done)) {
        uint64_t t0 = tc_test_now_ms();
        char buf[32];
        size_t len = sizeof buf - 1;
        if (tc_get_copy(r->a, S("user:race"), buf, &len) != 0)
            continue;
        buf[len] = '\0';
        int got = atoi(buf);
        int floor = t0 > RACE_BOUND_MS ? completed_before(r, t0 - RACE_BOUND_MS) : 0;
        if (got < floor && atomic_fetch_add(&r->stale, 1) == 0)
            snprintf(r->example, sizeof r->example,
                     "read %d; write %d had returned %u ms "
                     "before the read began",
                     got, floor, RACE_BOUND_MS);
    }
    return NULL;
}

static void reads_race_a_foreign_writer(int tracking) {
    race_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    tc_test_redis_do(redis, "SET user:race 0");
    r->a = open_mode("user:", tracking, 1);
    pthread_t w, rd[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&rd[i], NULL, race_reader, r);
    pthread_create(&w, NULL, race_writer, r);
    pthread_join(w, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(rd[i], NULL);
    cr_assert_eq(atomic_load(&r->stale), 0, "%d stale reads, e.g. %s", atomic_load(&r->stale),
                 r->example);
    char want[16];
    snprintf(want, sizeof want, "%d", RACE_WRITES - 1);
    cr_assert_geq(tc_test_wait_get(r->a, S("user:race"), want, strlen(want), NOTICE_MS), 0,
                  "after the writer stopped, L1 kept an older value");
    tc_close(r->a);
    free(r);
}

Test(tracking, reads_race_a_foreign_writer_bcast) {
    reads_race_a_foreign_writer(TC_TRACKING_BCAST);
}

Test(tracking, reads_race_a_foreign_writer_default) {
    reads_race_a_foreign_writer(TC_TRACKING_DEFAULT);
}

/* The minimal ACL docs/consistency.md ("Any writer") documents for plain keys with bcast
 * tracking. */
Test(tracking, plain_keys_minimal_acl) {
    tc_test_redis_do(
        redis, "ACL SETUSER plain on >pw ~user:* &t:trk:inval &__redis__:invalidate +getrange "
               "+pttl +set +del +ping +subscribe +client|id +client|tracking");
    char url[512];
    snprintf(url, sizeof url, "unix://%s?user=plain&password=pw",
             tc_test_redis_socket_path(redis));
    tc_config_t cfg;
    tc_test_config(&cfg, url, "user:", "t:trk:inval");
    cfg.tracking = TC_TRACKING_BCAST;
    cfg.plain_keys = 1;
    cfg.require_redis = 1;
    tc_cache_t *a = tc_test_open(&cfg);
    cr_assert_eq(tc_set(a, S("user:1"), S("v1"), 0), 0);
    expect_held(a, "user:1", "v1");
    tc_test_redis_do(redis, "SET user:1 v2");
    cr_assert_geq(tc_test_wait_get(a, S("user:1"), S("v2"), NOTICE_MS), 0);
    cr_assert_eq(tc_del(a, S("user:1")), 0);
    tc_stats_t st = stats(a);
    cr_assert_eq(st.permission_errors, 0, "something the mode needs was refused");
    cr_assert_eq(st.l2_errors, 0);
    tc_close(a);
}
