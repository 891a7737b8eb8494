/*
 * test_replay.c - invalidating without writing (tc_invalidate, and the documented message
 * any program can publish), and catching up after a lost link from the replay log instead
 * of flushing L1.
 *
 * The lost link is real: CLIENT KILL TYPE pubsub ends the listener's connection, and
 * disabling its ACL user keeps it out while another process writes, so the writes are
 * missed for certain. When the user is enabled again the listener subscribes, reads the
 * log, and L1 keeps everything that did not change: the unchanged keys are still hits, the
 * changed ones read their new values. When the log was trimmed past the gap, L1 is flushed
 * and the flush is counted.
 */
/* tc-test-labels: integration fault */
#include "msg.h"
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S(str) str, sizeof(str) - 1

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
}

TestSuite(replay, .init = setup, .fini = teardown, .timeout = 120);

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t st;
    cr_assert_eq(tc_stats(c, &st), 0);
    return st;
}

static tc_cache_t *open_as(const char *user, const char *prefix, unsigned log_len,
                           uint32_t ping_ms) {
    char url[512];
    if (user)
        snprintf(url, sizeof url, "unix://%s?user=%s&password=pw",
                 tc_test_redis_socket_path(redis), user);
    else
        snprintf(url, sizeof url, "%s", tc_test_redis_url(redis));
    tc_config_t cfg;
    tc_test_config(&cfg, url, prefix, prefix);
    cfg.replay_log_len = log_len;
    cfg.listener_ping_ms = ping_ms;
    cfg.command_timeout_ms = 2000;
    return tc_test_open(&cfg);
}

/* ---- tc_invalidate and the wire format ---- */

Test(replay, invalidate_evicts_everywhere_and_leaves_redis_alone) {
    tc_cache_t *a = open_as(NULL, "t:inv:", 10000, 100),
               *b = open_as(NULL, "t:inv:", 10000, 100);
    cr_assert_eq(tc_set(a, S("k"), S("v"), 0), 0);
    cr_assert_geq(tc_test_wait_get(b, S("k"), S("v"), 2000), 0);
    uint64_t hits = stats(b).l1_hits;
    cr_assert_geq(tc_test_wait_get(b, S("k"), S("v"), 0), 0);
    cr_assert_gt(stats(b).l1_hits, hits, "B does not hold k in L1: nothing to evict");
    uint64_t misses = stats(b).l1_misses;
    cr_assert_eq(tc_invalidate(a, S("k")), 0);
    uint64_t deadline = tc_test_now_ms() + 2000;
    for (;;) { /* wait until B's next read misses L1 */
        cr_assert_geq(tc_test_wait_get(b, S("k"), S("v"), 0), 0, "the value in Redis is gone");
        if (stats(b).l1_misses > misses)
            break;
        cr_assert_lt(tc_test_now_ms(), deadline, "B still holds k in L1");
        tc_test_sleep_ms(5);
        misses = stats(b).l1_misses;
    }
    /* L1-only: local eviction, nothing else. */
    tc_config_t cfg;
    tc_test_config(&cfg, NULL, "t:inv:", "t:inv:");
    tc_cache_t *l = tc_test_open(&cfg);
    cr_assert_eq(tc_set(l, S("x"), S("1"), 0), 0);
    cr_assert_eq(tc_invalidate(l, S("x")), 0);
    cr_assert_geq(tc_test_wait_get(l, S("x"), NULL, 0, 0), 0);
    cr_assert_eq(tc_invalidate(l, NULL, 1), TC_EINVAL);
    cr_assert_eq(tc_invalidate(l, S("")), TC_EKEYLEN);
    tc_close(l);
    tc_close(b);
    tc_close(a);
}

/* Another language, or an ops script: the documented op-4 message, published with
 * redis-cli, evicts the key from every process. */
Test(replay, evict_message_published_with_redis_cli) {
    tc_cache_t *a = open_as(NULL, "t:cli:", 10000, 100);
    cr_assert_eq(tc_set(a, S("user:7"), S("v"), 0), 0);
    unsigned char msg[64];
    static const unsigned char origin[16] = {0};
    size_t n = tc__msg_encode(TC__MSG_OP_EVICT, 0, origin, "user:7", 6, msg);
    cr_assert_gt(n, 0u);
    char path[512], cmd[1024];
    snprintf(path, sizeof path, "%s/evict.bin", tc_test_redis_dir(redis));
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(msg, 1, n, f), n);
    fclose(f);
    /* The set's own message first: counted after this point, it would pass for ours. */
    uint64_t deadline = tc_test_now_ms() + 2000;
    while (stats(a).inval_applied == 0 && tc_test_now_ms() < deadline)
        tc_test_sleep_ms(2);
    uint64_t applied = stats(a).inval_applied;
    cr_assert_eq(applied, 1, "the set's own invalidation was not applied");
    snprintf(cmd, sizeof cmd, "redis-cli -s '%s' -x PUBLISH t:cli: < '%s' > /dev/null",
             tc_test_redis_socket_path(redis), path);
    cr_assert_eq(system(cmd), 0, "redis-cli failed");
    deadline = tc_test_now_ms() + 2000;
    while (stats(a).inval_applied == applied && tc_test_now_ms() < deadline)
        tc_test_sleep_ms(2);
    cr_assert_gt(stats(a).inval_applied, applied, "the message was not applied");
    cr_assert_eq(stats(a).inval_malformed, 0);
    uint64_t misses = stats(a).l1_misses;
    cr_assert_geq(tc_test_wait_get(a, S("user:7"), S("v"), 0), 0);
    cr_assert_gt(stats(a).l1_misses, misses, "user:7 was still in L1");
    tc_close(a);
}

/* ---- replay instead of flush ---- */

#define KEPT    50
#define CHANGED 5

static void key_name(char *buf, size_t cap, const char *kind, int i) {
    snprintf(buf, cap, "%s%d", kind, i);
}

/* A's listener is killed and kept out (its ACL user disabled) while B writes; then let back
 * in. Returns A's stats from just before the kill. */
static tc_stats_t miss_writes_while_out(tc_cache_t *a, tc_cache_t *b, int writes) {
    tc_stats_t before = stats(a);
    tc_test_redis_do(redis, "ACL SETUSER %s off", "a");
    tc_test_redis_do(redis, "CLIENT KILL TYPE %s", "pubsub");
    cr_assert(tc_test_wait_listener(a, 0, 2000), "A never noticed the killed link");
    for (int i = 0; i < writes; i++) {
        char k[32], v[32];
        key_name(k, sizeof k, "changed", i % CHANGED);
        snprintf(v, sizeof v, "new%d", i);
        cr_assert_eq(tc_set(b, k, strlen(k), v, strlen(v), 0), 0);
    }
    tc_test_redis_do(redis, "ACL SETUSER %s on", "a");
    cr_assert(tc_test_wait_listener(a, 1, 3000), "A's listener did not come back");
    return before;
}

static void fill_a(tc_cache_t *a, tc_cache_t *b) {
    for (int i = 0; i < KEPT; i++) {
        char k[32];
        key_name(k, sizeof k, "kept", i);
        cr_assert_eq(tc_set(b, k, strlen(k), "same", 4, 0), 0);
        cr_assert_geq(tc_test_wait_get(a, k, strlen(k), "same", 4, 2000), 0);
    }
    for (int i = 0; i < CHANGED; i++) {
        char k[32];
        key_name(k, sizeof k, "changed", i);
        cr_assert_eq(tc_set(b, k, strlen(k), "old", 3, 0), 0);
        cr_assert_geq(tc_test_wait_get(a, k, strlen(k), "old", 3, 2000), 0);
    }
}

Test(replay, lost_link_replays_instead_of_flushing) {
    tc_test_redis_do(redis, "ACL SETUSER %s on >pw ~* &* +@all", "a");
    /* A long watchdog period: A may stay out a while without its grace running out. */
    tc_cache_t *a = open_as("a", "t:rep:", 10000, 1000);
    tc_cache_t *b = open_as(NULL, "t:rep:", 10000, 100);
    fill_a(a, b);
    tc_stats_t before = miss_writes_while_out(a, b, CHANGED);
    tc_stats_t after = stats(a);
    cr_assert_eq(after.l1_flushes, before.l1_flushes, "L1 was flushed");
    cr_assert_geq(after.listener_replays, before.listener_replays + 1);
    cr_assert_geq(after.inval_replayed, before.inval_replayed + CHANGED,
                  "%llu invalidations replayed",
                  (unsigned long long)(after.inval_replayed - before.inval_replayed));
    for (int i = 0; i < CHANGED; i++) { /* what changed: the new value, never the old */
        char k[32], v[32];
        key_name(k, sizeof k, "changed", i);
        snprintf(v, sizeof v, "new%d", i);
        cr_assert_geq(tc_test_wait_get(a, k, strlen(k), v, strlen(v), 0), 0,
                      "%s is stale after the replay", k);
    }
    uint64_t l2 = stats(a).l2_hits + stats(a).l2_misses;
    for (int i = 0; i < KEPT; i++) { /* what did not change: still L1 hits */
        char k[32];
        key_name(k, sizeof k, "kept", i);
        cr_assert_geq(tc_test_wait_get(a, k, strlen(k), "same", 4, 0), 0);
    }
    cr_assert_eq(stats(a).l2_hits + stats(a).l2_misses, l2,
                 "kept keys went to Redis: L1 lost them");
    tc_close(b);
    tc_close(a);
}

/* The log is trimmed past the gap (B keeps a short one and writes more than it holds):
 * the missed invalidations are gone, so L1 is flushed, and the flush is counted. */
Test(replay, log_trimmed_past_the_gap_flushes) {
    tc_test_redis_do(redis, "ACL SETUSER %s on >pw ~* &* +@all", "a");
    tc_cache_t *a = open_as("a", "t:trim:", 10000, 1000);
    tc_cache_t *b = open_as(NULL, "t:trim:", 10, 100);
    fill_a(a, b);
    tc_stats_t before = miss_writes_while_out(a, b, 600);
    tc_stats_t after = stats(a);
    cr_assert_geq(after.replay_log_gaps, before.replay_log_gaps + 1, "no gap was seen");
    cr_assert_geq(after.l1_flushes, before.l1_flushes + 1, "the gap did not flush L1");
    for (int i = 0; i < CHANGED; i++) {
        char k[32], v[32];
        key_name(k, sizeof k, "changed", i);
        snprintf(v, sizeof v, "new%d", 600 - CHANGED + i);
        cr_assert_geq(tc_test_wait_get(a, k, strlen(k), v, strlen(v), 0), 0,
                      "%s is stale after the flush", k);
    }
    tc_close(b);
    tc_close(a);
}

/* Without a log (replay_log_len 0) a lost link flushes, as before. */
Test(replay, no_log_flushes) {
    tc_test_redis_do(redis, "ACL SETUSER %s on >pw ~* &* +@all", "a");
    tc_cache_t *a = open_as("a", "t:nolog:", 0, 1000);
    tc_cache_t *b = open_as(NULL, "t:nolog:", 0, 100);
    fill_a(a, b);
    tc_stats_t before = miss_writes_while_out(a, b, CHANGED);
    tc_stats_t after = stats(a);
    cr_assert_geq(after.l1_flushes, before.l1_flushes + 1);
    cr_assert_eq(after.listener_replays, 0);
    tc_close(b);
    tc_close(a);
}
