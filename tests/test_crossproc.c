/*
 * test_crossproc.c - invalidation between two real processes sharing one Redis.
 *
 * This process opens a cache; a tc-peer child opens another on the same Redis, prefix
 * and channel. Each side first proves it holds the old value in its own L1 (an l1_hits
 * increase), then the other side writes or deletes, and the first side must serve the
 * new state within 100 ms of the writer's call returning (5x under sanitizers). Polling
 * tc_get is the honest measure: it returns the stale L1 copy until the listener evicted
 * it, then the fresh value from L2.
 */
/* tc-test-labels: integration */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#define PREFIX  "t:xp:"
#define CHANNEL "t:xp:inval"
/* A poll deadline, not a figure: docs/consistency.md allows one message delay, 250 ms on a
 * busy machine (two wake-ups on two shared cores). */
#define BOUND_MS (250u * TC_TEST_SLOW)

static tc_test_redis_t *redis;
static tc_test_peer_t *peer;
static tc_cache_t *cache;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, CHANNEL);
    cache = tc_test_open(&cfg);
    peer = tc_test_peer_start(tc_test_redis_url(redis), PREFIX, CHANNEL, NULL);
}

static void teardown(void) {
    tc_test_peer_stop(peer);
    tc_close(cache);
    tc_test_redis_stop(redis);
    peer = NULL;
    cache = NULL;
    redis = NULL;
}

TestSuite(crossproc, .init = setup, .fini = teardown, .timeout = 120);

/* ---- driving the peer with raw bytes ---- */

static const char *peer_set(const void *k, size_t kl, const void *v, size_t vl) {
    static char hk[1024], hv[1024];
    tc_test_hex(k, kl, hk);
    tc_test_hex(v, vl, hv);
    return tc_test_peer_cmd(peer, "set %s %s", hk, hv);
}

static const char *peer_get(const void *k, size_t kl) {
    static char hk[1024];
    tc_test_hex(k, kl, hk);
    return tc_test_peer_cmd(peer, "get %s", hk);
}

static const char *peer_del(const void *k, size_t kl) {
    static char hk[1024];
    tc_test_hex(k, kl, hk);
    return tc_test_peer_cmd(peer, "del %s", hk);
}

static uint64_t peer_stat(const char *name) {
    const char *line = tc_test_peer_cmd(peer, "stats");
    uint64_t v = tc_test_stat(line, name);
    cr_assert_neq(v, UINT64_MAX, "no %s in '%s'", name, line);
    return v;
}

/* "val HEX" for exactly v (v NULL: "miss"). */
static int peer_reply_is(const char *reply, const void *v, size_t vl) {
    if (!v)
        return strcmp(reply, "miss") == 0;
    char want[1100];
    tc_test_hex(v, vl, want);
    return strncmp(reply, "val ", 4) == 0 && strcmp(reply + 4, want) == 0;
}

/* Poll the peer's get until it serves v; milliseconds taken, or -1 after timeout_ms. */
static long peer_wait(const void *k, size_t kl, const void *v, size_t vl, unsigned timeout_ms) {
    return tc_test_peer_wait_get(peer, k, kl, v, vl, timeout_ms);
}

/* Make this process hold k = v in its L1, proven by a hit. */
static void hold_locally(const void *k, size_t kl, const void *v, size_t vl) {
    cr_assert(tc_test_hold_locally(cache, k, kl, v, vl, 1000u * TC_TEST_SLOW),
              "this process never held the expected value in L1");
}

/* Make the peer hold k = v in its L1, proven by a hit. */
static void hold_in_peer(const void *k, size_t kl, const void *v, size_t vl) {
    cr_assert_geq(peer_wait(k, kl, v, vl, 1000u * TC_TEST_SLOW), 0,
                  "the peer never saw the expected value");
    uint64_t before = peer_stat("l1_hits");
    cr_assert(peer_reply_is(peer_get(k, kl), v, vl));
    cr_assert_gt(peer_stat("l1_hits"), before, "the value is not in the peer's L1");
}

/* ---- peer writes, this process must follow ---- */

static void peer_write_evicts_here(const void *k, size_t kl) {
    cr_assert_str_eq(peer_set(k, kl, "old", 3), "ok 0");
    hold_locally(k, kl, "old", 3);
    cr_assert_str_eq(peer_set(k, kl, "new\0value", 9), "ok 0");
    long took = tc_test_wait_get(cache, k, kl, "new\0value", 9, BOUND_MS);
    cr_assert_geq(took, 0, "this process served the stale value for over %u ms", BOUND_MS);

    hold_locally(k, kl, "new\0value", 9);
    cr_assert_str_eq(peer_del(k, kl), "ok 0");
    took = tc_test_wait_get(cache, k, kl, NULL, 0, BOUND_MS);
    cr_assert_geq(took, 0, "this process served a deleted key for over %u ms", BOUND_MS);
}

/* ---- this process writes, the peer must follow ---- */

static void local_write_evicts_peer(const void *k, size_t kl) {
    cr_assert_eq(tc_set(cache, k, kl, "mine-1", 6, 0), 0);
    hold_in_peer(k, kl, "mine-1", 6);
    cr_assert_eq(tc_set(cache, k, kl, "mine-2", 6, 0), 0);
    long took = peer_wait(k, kl, "mine-2", 6, BOUND_MS);
    cr_assert_geq(took, 0, "the peer served the stale value for over %u ms", BOUND_MS);

    hold_in_peer(k, kl, "mine-2", 6);
    cr_assert_eq(tc_del(cache, k, kl), 0);
    took = peer_wait(k, kl, NULL, 0, BOUND_MS);
    cr_assert_geq(took, 0, "the peer served a deleted key for over %u ms", BOUND_MS);
}

Test(crossproc, peer_set_and_del_evict_this_process) {
    peer_write_evicts_here("user:42", 7);
    tc_stats_t st;
    cr_assert_eq(tc_stats(cache, &st), 0);
    cr_assert_geq(st.inval_applied, 2);
}

Test(crossproc, local_set_and_del_evict_the_peer) {
    local_write_evicts_peer("user:43", 7);
    cr_assert_geq(peer_stat("inval_received"), 2);
    cr_assert_geq(peer_stat("inval_applied"), 2);
}

Test(crossproc, binary_keys_across_processes) {
    static const struct {
        const char *k;
        size_t len;
    } keys[] = {{"bin\0key", 7},
                {"with spaces in it", 17},
                {"crlf\r\n\r\nkey", 11},
                {"\0", 1},
                {"\xff\xfe\x00\x01", 4}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        peer_write_evicts_here(keys[i].k, keys[i].len);
        local_write_evicts_peer(keys[i].k, keys[i].len);
    }
    /* Keys that differ only after a NUL stay distinct across processes. */
    cr_assert_str_eq(peer_set("a\0x", 3, "AX", 2), "ok 0");
    cr_assert_str_eq(peer_set("a\0y", 3, "AY", 2), "ok 0");
    hold_locally("a\0x", 3, "AX", 2);
    hold_locally("a\0y", 3, "AY", 2);
    cr_assert_str_eq(peer_del("a\0x", 3), "ok 0");
    cr_assert_geq(tc_test_wait_get(cache, "a\0x", 3, NULL, 0, BOUND_MS), 0);
    cr_assert_geq(tc_test_wait_get(cache, "a\0y", 3, "AY", 2, 0), 0,
                  "deleting a\\0x evicted a\\0y");
}

Test(crossproc, empty_value_across_processes) {
    cr_assert_str_eq(peer_set("e", 1, "", 0), "ok 0");
    cr_assert_geq(tc_test_wait_get(cache, "e", 1, "", 0, BOUND_MS), 0);
    cr_assert_eq(tc_set(cache, "e2", 2, NULL, 0, 0), 0);
    cr_assert_str_eq(peer_get("e2", 2), "val -");
}
