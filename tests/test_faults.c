/*
 * test_faults.c - what a cache does when Redis dies, freezes, is absent at open, or when
 * someone publishes garbage on the invalidation channel.
 *
 * The promises checked (tiercache.h): no call blocks much longer than the configured
 * timeouts (connect 200 ms + command 100 ms here; we allow 1.5 s, 3 s under sanitizers);
 * tc_get answers from L1 or misses, tc_fetch falls back to its loader, tc_set/tc_del
 * report TC_EUNAVAILABLE or TC_ETIMEDOUT while still updating/evicting the local L1; the
 * breaker opens after repeated failures and closes after the cooldown; a lost listener
 * flushes L1 and comes back; an L1 entry from before or during an outage never hides a
 * value written while this process could not hear invalidations; malformed messages are
 * counted and ignored.
 */
/* tc-test-labels: integration fault */
#include "msg.h"
#include "peer.h"
#include "proxy.h"
#include "redis_server.h"
#include "tiercache.h"
#include "valfmt.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BOUND_MS   (TC_TEST_SLOW == 1 ? 1500u : 3000u)
#define RECOVER_MS (2000u * TC_TEST_SLOW)
#define S(str)     str, sizeof(str) - 1

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ---- */

static tc_cache_t *open_cache(const char *prefix) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), prefix, prefix);
    return tc_test_open(&cfg);
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

/* Run expr, assert it returned within BOUND_MS; evaluates to its result. */
#define TIMED(what, expr)                                                                      \
    __extension__({                                                                            \
        uint64_t t0_ = tc_test_now_ms();                                                       \
        int rc_ = (expr);                                                                      \
        uint64_t took_ = tc_test_now_ms() - t0_;                                               \
        cr_assert_lt(took_, BOUND_MS, "%s took %llu ms (returned %s)", what,                   \
                     (unsigned long long)took_, tc_err_name(rc_));                             \
        rc_;                                                                                   \
    })

static int is_l2_failure(int rc) {
    return rc == TC_EUNAVAILABLE || rc == TC_ETIMEDOUT;
}

typedef struct loader_arg {
    const char *val;
    atomic_int calls;
} loader_arg_t;

static int loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    loader_arg_t *la = arg;
    (void)key;
    (void)klen;
    atomic_fetch_add(&la->calls, 1);
    return tc_load_set_value(load, la->val, strlen(la->val));
}

static int fetch_expect(tc_cache_t *c, const char *key, loader_arg_t *la) {
    tc_ref_t *ref = NULL;
    int rc = tc_fetch(c, key, strlen(key), loader, la, &ref);
    if (rc == 0) {
        cr_assert_eq(tc_ref_size(ref), strlen(la->val));
        cr_assert_eq(memcmp(tc_ref_data(ref), la->val, strlen(la->val)), 0);
    }
    tc_ref_release(ref);
    return rc;
}

static int get_rc(tc_cache_t *c, const char *key) {
    tc_ref_t *ref = NULL;
    int rc = tc_get(c, key, strlen(key), &ref);
    tc_ref_release(ref);
    return rc;
}

static void expect_val(tc_cache_t *c, const char *key, const char *val) {
    cr_assert_geq(tc_test_wait_get(c, key, strlen(key), val, strlen(val), 0), 0,
                  "%s is not '%s'", key, val);
}

/* Retry tc_set until it returns 0 (Redis back, breaker closed) or RECOVER_MS pass. */
static int set_until_ok(tc_cache_t *c, const char *key, const char *val) {
    uint64_t deadline = tc_test_now_ms() + RECOVER_MS;
    int rc;
    while ((rc = tc_set(c, key, strlen(key), val, strlen(val), 0)) != 0 &&
           tc_test_now_ms() < deadline)
        tc_test_sleep_ms(20);
    return rc;
}

/* Redis's clock in microseconds (same host), plus ahead_us: a plausible version. */
static uint64_t version_ahead(uint64_t ahead_us) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u + ahead_us;
}

/* Store a tiercache-format value straight into Redis: no invalidation is published. Its
 * version, 10 s ahead of the clock, is above any real one so far (those start at Redis's
 * clock in microseconds) and still one a counter could produce. */
static void raw_store(const char *prefix, const char *key, const char *val) {
    unsigned char buf[128];
    size_t n = tc__val_encode(0, version_ahead(10000000u), 0, val, strlen(val), buf);
    redisReply *r = tc_test_redis_cmd(redis, "SET %sk:%s %b", prefix, key, buf, n);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

/* ---- (a) Redis killed ---- */

/* Every kind of call, right after the kill: bounded, with the documented outcomes. */
static void calls_are_bounded_while_down(tc_cache_t *a) {
    int rc = TIMED("tc_get of an L1 key", get_rc(a, "k0"));
    cr_assert(rc == 0 || rc == TC_ENOTFOUND, "tc_get: %s", tc_err_name(rc));
    rc = TIMED("tc_set", tc_set(a, S("k1"), S("down"), 0));
    cr_assert(is_l2_failure(rc), "tc_set with Redis dead: %s", tc_err_name(rc));
    rc = TIMED("tc_del", tc_del(a, S("k2")));
    cr_assert(is_l2_failure(rc), "tc_del with Redis dead: %s", tc_err_name(rc));
    cr_assert_eq(get_rc(a, "k2"), TC_ENOTFOUND, "tc_del must evict locally regardless");
    loader_arg_t la = {.val = "from-loader"};
    rc = TIMED("tc_fetch", fetch_expect(a, "fetched", &la));
    cr_assert_eq(rc, 0, "tc_fetch must fall back to the loader: %s", tc_err_name(rc));
    cr_assert_eq(atomic_load(&la.calls), 1);
    rc = TIMED("tc_get of a missing key", get_rc(a, "nothing"));
    cr_assert_eq(rc, TC_ENOTFOUND, "tc_get: %s", tc_err_name(rc));
}

/* Once the listener has noticed: L1 still serves what is written or loaded locally. */
static void l1_serves_during_outage(tc_cache_t *a) {
    cr_assert(tc_test_wait_listener(a, 0, RECOVER_MS), "the listener did not notice the kill");
    cr_assert_geq(stats(a).l1_flushes, 1, "losing the listener must flush L1");
    int rc = TIMED("tc_set", tc_set(a, S("out"), S("during"), 0));
    cr_assert_eq(rc, TC_EUNAVAILABLE, "tc_set: %s", tc_err_name(rc));
    expect_val(a, "out", "during");
    loader_arg_t la = {.val = "outage-load"};
    cr_assert_eq(fetch_expect(a, "loaded", &la), 0);
    uint64_t hits = stats(a).l1_hits;
    cr_assert_eq(fetch_expect(a, "loaded", &la), 0);
    expect_val(a, "loaded", "outage-load");
    cr_assert_eq(atomic_load(&la.calls), 1, "a value loaded during the outage was not kept");
    cr_assert_geq(stats(a).l1_hits, hits + 2, "L1 hits must keep working during the outage");
}

Test(faults, redis_killed_mid_run) {
    tc_cache_t *a = open_cache("t:kill:"), *b = open_cache("t:kill:");
    for (int i = 0; i < 4; i++) {
        char k[8], v[8];
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v1-%d", i);
        cr_assert_eq(tc_set(a, k, strlen(k), v, strlen(v), 0), 0);
        expect_val(a, k, v);
    }
    cr_assert_eq(stats(a).l1_entries, 4);

    tc_test_redis_kill(redis);
    calls_are_bounded_while_down(a);
    l1_serves_during_outage(a);

    tc_test_redis_restart(redis);
    uint64_t restarted = tc_test_now_ms();
    /* Written behind A's back: no invalidation is ever published for it. */
    raw_store("t:kill:", "out", "raw-v2");
    cr_assert_eq(set_until_ok(b, "k0", "v2"), 0, "B could not write after the restart");
    uint64_t spent = tc_test_now_ms() - restarted;
    cr_assert(
        tc_test_wait_listener(a, 1, spent < RECOVER_MS ? RECOVER_MS - (unsigned)spent : 0),
        "A's listener did not come back within %u ms of the restart", RECOVER_MS);
    tc_stats_t st = stats(a);
    cr_assert_geq(st.listener_reconnects, 1);
    cr_assert_geq(st.l1_flushes, 1);
    long took = tc_test_wait_get(a, S("k0"), S("v2"), 200u * TC_TEST_SLOW);
    cr_assert_geq(took, 0, "A still serves its pre-kill k0 after the restart");
    took = tc_test_wait_get(a, S("out"), S("raw-v2"), 200u * TC_TEST_SLOW);
    cr_assert_geq(took, 0, "A still serves its outage-time L1 copy of 'out'");
    cr_assert_eq(set_until_ok(a, "k3", "v2-3"), 0);
    expect_val(b, "k3", "v2-3");
    tc_close(a);
    tc_close(b);
}

/* A write to a connection Redis closed must not raise SIGPIPE: a program that keeps the
 * default disposition would die of it. Every pooled connection is killed, then a value
 * larger than a socket buffer is written on the dead one (EPIPE at the first or a later
 * send, whichever socket kind the suite uses). */
Test(faults, a_dead_connection_raises_no_sigpipe) {
    void (*was)(int) = signal(SIGPIPE, SIG_DFL);
    tc_cache_t *a = open_cache("t:pipe:");
    cr_assert_eq(tc_set(a, S("k"), S("v"), 0), 0);
    redisReply *r = tc_test_redis_cmd(redis, "CLIENT KILL TYPE normal");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1, "nothing was killed");
    freeReplyObject(r);
    tc_test_sleep_ms(50);
    static char big[4u << 20];
    memset(big, 'x', sizeof big);
    int rc = tc_set(a, "big", 3, big, sizeof big, 0); /* we are still alive to see rc */
    cr_assert(rc == 0 || is_l2_failure(rc), "tc_set: %s", tc_err_name(rc));
    cr_assert_eq(set_until_ok(a, "k", "v2"), 0, "no write got through after the kill");
    tc_close(a);
    signal(SIGPIPE, was);
}

/* ---- (b) Redis frozen (SIGSTOP) ---- */

static void breaker_opens_while_paused(tc_cache_t *a) {
    for (int i = 0; i < 8; i++) {
        int rc = TIMED("tc_set while paused", tc_set(a, S("p"), S("frozen"), 0));
        cr_assert(is_l2_failure(rc), "tc_set while paused: %s", tc_err_name(rc));
    }
    tc_stats_t st = stats(a);
    cr_assert_geq(st.breaker_opens, 1, "8 failed calls did not open the breaker");
    cr_assert_eq(st.breaker_state, 1, "breaker_state %d while Redis is frozen",
                 st.breaker_state);
    cr_assert_geq(st.l2_timeouts, 1, "a frozen Redis must show up as timeouts");

    int rc = TIMED("tc_get while paused", get_rc(a, "missing"));
    cr_assert(rc == TC_ENOTFOUND || rc == TC_ETIMEDOUT, "tc_get: %s", tc_err_name(rc));
    loader_arg_t la = {.val = "paused-load"};
    rc = TIMED("tc_fetch while paused", fetch_expect(a, "f", &la));
    cr_assert_eq(rc, 0, "tc_fetch must fall back to the loader: %s", tc_err_name(rc));
    rc = TIMED("tc_del while paused", tc_del(a, S("k")));
    cr_assert(is_l2_failure(rc), "tc_del while paused: %s", tc_err_name(rc));
    cr_assert_eq(get_rc(a, "k"), TC_ENOTFOUND, "tc_del must evict locally regardless");
    cr_assert(tc_test_wait_listener(a, 0, 1000u * TC_TEST_SLOW),
              "the listener watchdog did not notice the frozen Redis");
}

Test(faults, redis_paused) {
    tc_cache_t *a = open_cache("t:stop:");
    cr_assert_eq(tc_set(a, S("k"), S("before"), 0), 0);
    tc_test_redis_pause(redis);
    breaker_opens_while_paused(a);
    tc_test_redis_resume(redis);

    cr_assert_eq(set_until_ok(a, "p", "after"), 0, "no successful write after SIGCONT");
    cr_assert_eq(stats(a).breaker_state, 0, "the breaker must close after a success");
    cr_assert(tc_test_wait_listener(a, 1, RECOVER_MS), "the listener did not come back");
    cr_assert_geq(stats(a).listener_reconnects, 1);
    /* Replies to commands that timed out must never be matched to later commands. */
    tc_cache_t *b = open_cache("t:stop:");
    for (int i = 0; i < 20; i++) {
        char k[8], v[16];
        snprintf(k, sizeof k, "s%d", i);
        snprintf(v, sizeof v, "val-%d", i);
        cr_assert_eq(tc_set(a, k, strlen(k), v, strlen(v), 0), 0);
        expect_val(b, k, v);
        expect_val(a, k, v);
    }
    expect_val(b, "p", "after");
    tc_close(b);
    tc_close(a);
}

/* ---- (c) Redis absent at open ---- */

static void open_fails_with_require_redis(const char *url) {
    tc_config_t cfg;
    tc_cache_t *c = (tc_cache_t *)&cfg;
    tc_test_config(&cfg, url, "t:abs:", "t:abs:");
    cfg.require_redis = 1;
    int rc = TIMED("tc_open require_redis", tc_open(&cfg, &c, NULL));
    cr_assert_eq(rc, TC_EUNAVAILABLE, "require_redis with Redis down: %s", tc_err_name(rc));
    cr_assert_null(c);
}

Test(faults, redis_absent_at_open) {
    tc_test_redis_kill(redis);
    const char *url = tc_test_redis_url(redis);
    open_fails_with_require_redis(url);

    tc_config_t cfg;
    tc_cache_t *a = NULL;
    tc_test_config(&cfg, url, "t:abs:", "t:abs:");
    int rc = TIMED("tc_open degraded", tc_open(&cfg, &a, NULL));
    cr_assert_eq(rc, 0, "a degraded open must succeed: %s", tc_err_name(rc));
    rc = TIMED("tc_set", tc_set(a, S("k"), S("local"), 0));
    cr_assert_eq(rc, TC_EUNAVAILABLE, "tc_set: %s", tc_err_name(rc));
    expect_val(a, "k", "local");
    cr_assert_eq(TIMED("tc_get", get_rc(a, "missing")), TC_ENOTFOUND);
    loader_arg_t la = {.val = "degraded-load"};
    cr_assert_eq(TIMED("tc_fetch", fetch_expect(a, "f", &la)), 0);
    cr_assert_eq(stats(a).listener_connected, 0);

    tc_test_redis_restart(redis);
    cr_assert_eq(set_until_ok(a, "k", "shared"), 0, "the degraded cache never reached Redis");
    cr_assert(tc_test_wait_listener(a, 1, RECOVER_MS), "the listener never subscribed");
    tc_cache_t *b = open_cache("t:abs:");
    expect_val(b, "k", "shared");
    cr_assert_eq(tc_set(b, S("k"), S("from-b"), 0), 0);
    cr_assert_geq(tc_test_wait_get(a, S("k"), S("from-b"), 1000u * TC_TEST_SLOW), 0,
                  "the recovered cache does not receive invalidations");
    tc_close(b);
    tc_close(a);
}

Test(faults, require_redis_on_closed_tcp_port) {
    tc_test_redis_opts_t o = {.tcp = 1};
    tc_test_redis_t *tcp = tc_test_redis_start(&o);
    char url[256];
    snprintf(url, sizeof url, "%s", tc_test_redis_url(tcp));
    tc_test_redis_stop(tcp);
    open_fails_with_require_redis(url);
}

/* ---- (d) malformed invalidations ---- */

static void publish(redisContext *rc, const char *channel, const void *msg, size_t len) {
    redisReply *r = redisCommand(rc, "PUBLISH %s %b", channel, msg, len);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "PUBLISH failed");
    freeReplyObject(r);
}

/* Wait until the listener has finished with the messages: counters grow only after a
 * message is handled, but inval_received may grow before it is. */
static tc_stats_t wait_handled(tc_cache_t *c, uint64_t malformed, uint64_t applied) {
    uint64_t deadline = tc_test_now_ms() + RECOVER_MS;
    tc_stats_t st = stats(c);
    while ((st.inval_malformed < malformed || st.inval_applied < applied) &&
           tc_test_now_ms() < deadline) {
        tc_test_sleep_ms(5);
        st = stats(c);
    }
    return st;
}

/* Publish the bad messages; returns how many. */
static int publish_garbage(redisContext *rc, const char *channel) {
    static const unsigned char origin[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
    static unsigned char good[64], bad_op[64], bad_magic[64];
    static unsigned char too_long[TC__MSG_FIXED_LEN + TC_MAX_KEY_LEN + 1];
    size_t n = tc__msg_encode(TC__MSG_OP_WRITE, 1u << 30, origin, "victim", 6, good);
    cr_assert_gt(n, 0);
    memcpy(bad_op, good, n);
    bad_op[1] = 9;
    memcpy(bad_magic, good, n);
    bad_magic[0] = 0x00;
    memcpy(too_long, good, TC__MSG_FIXED_LEN);
    memset(too_long + TC__MSG_FIXED_LEN, 'x', TC_MAX_KEY_LEN + 1);
    const struct {
        const void *p;
        size_t len;
    } msgs[] = {
        {"hello world", 11},         /* not ours at all */
        {"", 0},                     /* empty */
        {good, 10},                  /* truncated header */
        {good, TC__MSG_FIXED_LEN},   /* header without a key */
        {bad_op, n},                 /* unknown op */
        {bad_magic, n},              /* wrong magic */
        {too_long, sizeof too_long}, /* key over TC_MAX_KEY_LEN */
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++)
        publish(rc, channel, msgs[i].p, msgs[i].len);
    return (int)(sizeof msgs / sizeof msgs[0]);
}

Test(faults, malformed_invalidations_are_ignored) {
    tc_cache_t *a = open_cache("t:mal:");
    cr_assert_eq(tc_set(a, S("victim"), S("kept"), 0), 0);
    expect_val(a, "victim", "kept");
    /* Our own publication lands first, or the wait below could count it for the delete's. */
    uint64_t until = tc_test_now_ms() + 2000u * TC_TEST_SLOW;
    while (stats(a).inval_applied < 1 && tc_test_now_ms() < until)
        tc_test_sleep_ms(5);
    cr_assert_geq(stats(a).inval_applied, 1, "our own write's message never came back");
    tc_stats_t base = stats(a);

    redisContext *rc = tc_test_redis_connect(redis);
    cr_assert_not_null(rc);
    int bad = publish_garbage(rc, "t:mal:");
    /* Versions are never below Redis's clock in microseconds (l2.c): 10 s ahead of it is
     * newer than anything a real write produced. */
    static const unsigned char origin[16] = {1, 2, 3};
    unsigned char m[64];
    size_t n =
        tc__msg_encode(TC__MSG_OP_WRITE, version_ahead(10000000u), origin, "other", 5, m);
    publish(rc, "t:mal:", m, n);
    tc_stats_t st =
        wait_handled(a, base.inval_malformed + (uint64_t)bad, base.inval_applied + 1);
    cr_assert_eq(st.inval_malformed - base.inval_malformed, (uint64_t)bad,
                 "%llu of %d bad messages were counted as malformed",
                 (unsigned long long)(st.inval_malformed - base.inval_malformed), bad);
    cr_assert_geq(st.inval_applied, base.inval_applied + 1,
                  "the valid message was not applied");
    cr_assert_geq(st.inval_received, base.inval_received + (uint64_t)bad + 1);
    cr_assert_eq(st.listener_connected, 1, "garbage must not cost the subscription");
    expect_val(a, "victim", "kept");
    st = stats(a);
    cr_assert_eq(st.l2_hits, base.l2_hits, "the victim left L1");
    cr_assert_eq(st.l1_entries, base.l1_entries);

    /* The listener still works: a valid delete for the victim evicts it. */
    n = tc__msg_encode(TC__MSG_OP_DELETE, (uint64_t)1 << 62, origin, "victim", 6, m);
    publish(rc, "t:mal:", m, n);
    redisFree(rc);
    wait_handled(a, 0, st.inval_applied + 1);
    expect_val(a, "victim", "kept"); /* from L2 now: Redis still has it */
    st = stats(a);
    cr_assert_eq(st.l2_hits, base.l2_hits + 1,
                 "a valid delete did not evict (l2_hits %llu -> %llu, l1_hits %llu, applied "
                 "%llu, received %llu, malformed %llu)",
                 (unsigned long long)base.l2_hits, (unsigned long long)st.l2_hits,
                 (unsigned long long)st.l1_hits, (unsigned long long)st.inval_applied,
                 (unsigned long long)st.inval_received, (unsigned long long)st.inval_malformed);
    tc_close(a);
}

/* A big message that takes longer than listener_ping_ms to arrive is a live link, not a
 * dead one: every byte read counts as traffic for the watchdog. (A message longer than a
 * key is malformed, but anyone may publish one.) Through a proxy limited to 2 MiB/s, a
 * 1 MiB message takes half a second: five watchdog periods. */
Test(faults, slow_big_message_is_not_a_dead_link) {
    tc_test_redis_opts_t o = {.tcp = 1};
    tc_test_redis_t *r = tc_test_redis_start(&o);
    tc_test_proxy_t *px = tc_test_proxy_start(tc_test_redis_port(r));
    cr_assert_not_null(px);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", tc_test_proxy_port(px));
    tc_config_t cfg;
    tc_test_config(&cfg, url, "t:big:", "t:big:inval");
    cfg.command_timeout_ms = 5000;
    tc_cache_t *a = tc_test_open(&cfg);
    cr_assert_eq(tc_set(a, S("kept"), S("v"), 0), 0);
    tc_test_sleep_ms(50); /* our own message first */
    tc_stats_t before = stats(a);
    const size_t big = (size_t)1 << 20;
    char *msg = malloc(big);
    cr_assert_not_null(msg);
    memset(msg, 'x', big);
    tc_test_proxy_throttle(px, 2u << 20);
    redisContext *rc = tc_test_redis_connect(r);
    cr_assert_not_null(rc);
    redisReply *rep = redisCommand(rc, "PUBLISH t:big:inval %b", msg, big);
    cr_assert(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1);
    freeReplyObject(rep);
    redisFree(rc);
    free(msg);
    uint64_t deadline = tc_test_now_ms() + 10000u * TC_TEST_SLOW;
    while (stats(a).inval_malformed == before.inval_malformed && tc_test_now_ms() < deadline)
        tc_test_sleep_ms(20);
    tc_test_proxy_throttle(px, 0);
    tc_stats_t after = stats(a);
    cr_assert_eq(after.inval_malformed, before.inval_malformed + 1,
                 "the big message never arrived whole");
    cr_assert_eq(after.listener_reconnects, before.listener_reconnects,
                 "the watchdog took a slow message for a dead link");
    cr_assert_eq(after.l1_flushes, before.l1_flushes, "L1 was flushed");
    expect_val(a, "kept", "v");
    tc_close(a);
    tc_test_proxy_stop(px);
    tc_test_redis_stop(r);
}
