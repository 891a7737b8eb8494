/*
 * test_hostile.c - what the cache does with data it did not write: values, counters and
 * messages that another client (a bug, an operator, an attacker) put under the key prefix
 * or on the channel, a peer configured differently, and arguments at the edge of their
 * range.
 *
 * Anyone who can reach Redis can SET a key under the prefix, SET the version counter
 * <prefix>"v", or PUBLISH on the channel. None of that may make a process serve a value
 * forever, fail every later write, or read a whole 256 MiB string; every process reads
 * what any other wrote the same way, whatever its own configuration; and the defaults
 * must allow a write of the largest value they accept. Each test below sets up the
 * hostile state with a raw hiredis connection (a stored value in tiercache's format from
 * tc__val_encode, a message from tc__msg_encode), then asserts the promise:
 *
 * - Stored versions no counter produced (0, 2^53 and up, far ahead of the clock) are
 *   refused; a version merely ahead (plausible, but hours past any real one) is served,
 *   yet never pins an entry: a write or delete of this or another process replaces it.
 * - A corrupt counter (2^60, not a number, a hash) heals on the next write, which
 *   succeeds with an exact version (counted in counter_heals).
 * - A cached absence reads as absent in a process without negative caching.
 * - An oversized stored value is refused after reading about max_value_bytes, not whole
 *   (measured with Redis's own byte counter), and never opens the breaker.
 * - The defaults store and read back a value of exactly max_value_bytes.
 * - Per-call TTLs of UINT64_MAX are capped at 100 years, not converted out of range.
 * - A message whose version cannot be ordered evicts and is counted malformed; a FILL with
 *   version 0 (the lock holder's "nothing stored") evicts nothing.
 */
/* tc-test-labels: integration fault */
#include "msg.h"
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
#include <time.h>

#define RECOVER_MS (2000u * TC_TEST_SLOW)
#define S(str)     str, sizeof(str) - 1
#define PREFIX     "t:hostile:"
#define MIB        ((size_t)1 << 20)
/* Hours ahead of the clock: further than the 2^32 us (~72 min) two versions of one counter
 * can be apart, closer than the 2^36 us (~19 h) a reader accepts. */
#define AHEAD_US ((uint64_t)2 * 3600 * 1000000)
/* The per-call TTL cap: 100 years in ms (config.h). */
#define CENTURY_MS ((int64_t)100 * 365 * 24 * 3600 * 1000)

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ---- */

static tc_cache_t *open_cache(void) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, PREFIX);
    return tc_test_open(&cfg);
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

static int get_rc(tc_cache_t *c, const char *key) {
    tc_ref_t *ref = NULL;
    int rc = tc_get(c, key, strlen(key), &ref);
    cr_assert(rc == 0 || ref == NULL, "tc_get left a ref behind on %s", tc_err_name(rc));
    tc_ref_release(ref);
    return rc;
}

/* The value served now, without waiting: asserts it is exactly val. */
static void expect_now(tc_cache_t *c, const char *key, const char *val) {
    tc_ref_t *ref = NULL;
    int rc = tc_get(c, key, strlen(key), &ref);
    cr_assert_eq(rc, 0, "tc_get(%s): %s", key, tc_err_name(rc));
    cr_assert(tc_ref_size(ref) == strlen(val) &&
                  memcmp(tc_ref_data(ref), val, strlen(val)) == 0,
              "%s is '%.*s', not '%s'", key, (int)tc_ref_size(ref),
              (const char *)tc_ref_data(ref), val);
    tc_ref_release(ref);
}

static uint64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static redisContext *raw_connect(void) {
    redisContext *rc = tc_test_redis_connect(redis);
    cr_assert_not_null(rc, "no direct connection to the test's Redis");
    return rc;
}

/* Store a tiercache-format value behind every cache's back: no invalidation published. */
static void raw_store(const char *key, uint64_t version, const void *val, size_t len) {
    unsigned char *buf = malloc(TC__VAL_HDR_LEN + len);
    cr_assert_not_null(buf);
    size_t n = tc__val_encode(0, version, 0, val, len, buf);
    redisReply *r = tc_test_redis_cmd(redis, "SET %sk:%s %b", PREFIX, key, buf, n);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "raw SET failed");
    freeReplyObject(r);
    free(buf);
}

/* Decode what Redis holds for key (asserts it is a tiercache value). */
static tc__val_t raw_decode(redisContext *rc, const char *key, redisReply **hold) {
    redisReply *r = redisCommand(rc, "GET %sk:%s", PREFIX, key);
    cr_assert(r && r->type == REDIS_REPLY_STRING, "%s is not stored", key);
    tc__val_t v;
    cr_assert_eq(tc__val_decode(r->str, r->len, &v), 0, "%s is not a tiercache value", key);
    *hold = r;
    return v;
}

static uint64_t raw_version(const char *key) {
    redisContext *rc = raw_connect();
    redisReply *r;
    uint64_t v = raw_decode(rc, key, &r).version;
    freeReplyObject(r);
    redisFree(rc);
    return v;
}

static int64_t raw_pttl(redisContext *rc, const char *key) {
    redisReply *r = redisCommand(rc, "PTTL %sk:%s", PREFIX, key);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "PTTL failed");
    int64_t ms = r->integer;
    freeReplyObject(r);
    return ms;
}

/* Run a raw command that must not fail (printf-style, as redisCommand). */
#define RAW(rc, ...)                                                                           \
    do {                                                                                       \
        redisReply *r_ = redisCommand((rc), __VA_ARGS__);                                      \
        cr_assert(r_ && r_->type != REDIS_REPLY_ERROR, "raw command failed: %s",               \
                  r_ ? r_->str : "no reply");                                                  \
        freeReplyObject(r_);                                                                   \
    } while (0)

typedef struct loader_arg {
    const char *val; /* NULL: the key does not exist at the source */
    uint64_t ttl_ms;
    atomic_int calls;
} loader_arg_t;

static int loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    loader_arg_t *la = arg;
    (void)key;
    (void)klen;
    atomic_fetch_add(&la->calls, 1);
    if (!la->val)
        return TC_ENOTFOUND;
    if (la->ttl_ms)
        cr_assert_eq(tc_load_set_ttl(load, la->ttl_ms), 0);
    return tc_load_set_value(load, la->val, strlen(la->val));
}

/* Wait until every message this cache published has come back and been handled, so that
 * counters read next are not moved by a late echo of our own writes. */
static tc_stats_t settle(tc_cache_t *c) {
    uint64_t deadline = tc_test_now_ms() + RECOVER_MS;
    tc_stats_t st = stats(c);
    while (st.inval_applied < st.inval_published && tc_test_now_ms() < deadline) {
        tc_test_sleep_ms(2);
        st = stats(c);
    }
    cr_assert_geq(st.inval_applied, st.inval_published, "our own messages never came back");
    return st;
}

/* ---- 1. stored versions no counter produced ---- */

Test(hostile, version_max_is_refused_not_served) {
    tc_cache_t *a = open_cache(), *b = open_cache();
    raw_store("k", UINT64_MAX, S("pinned"));
    uint64_t refused = stats(a).versions_refused;
    cr_assert_eq(get_rc(a, "k"), TC_ENOTFOUND, "a value with version UINT64_MAX was served");
    cr_assert_gt(stats(a).versions_refused, refused, "the refusal was not counted");
    char buf[16];
    size_t len = sizeof buf;
    cr_assert_eq(tc_get_copy(a, S("k"), buf, &len), TC_ENOTFOUND);

    /* tc_fetch loads instead, and its value replaces the bogus one for everyone. */
    loader_arg_t la = {.val = "loaded"};
    tc_ref_t *ref = NULL;
    int rc = tc_fetch(a, S("k"), loader, &la, &ref);
    cr_assert_eq(rc, 0, "tc_fetch: %s", tc_err_name(rc));
    cr_assert(tc_ref_size(ref) == 6 && memcmp(tc_ref_data(ref), "loaded", 6) == 0,
              "tc_fetch served the stored value instead of loading");
    tc_ref_release(ref);
    cr_assert_eq(atomic_load(&la.calls), 1);
    cr_assert_lt(raw_version("k"), (uint64_t)1 << 53, "the bogus value was not replaced");
    expect_now(b, "k", "loaded");

    cr_assert_eq(tc_set(b, S("k"), S("written"), 0), 0);
    cr_assert_geq(tc_test_wait_get(a, S("k"), S("written"), RECOVER_MS), 0,
                  "A never read B's write");
    tc_close(b);
    tc_close(a);
}

/* Store key with a version hours ahead, and have A read it into its L1 (asserted: the
 * tests that follow are about an entry A holds, not one it would re-read anyway). */
static void pin_ahead_in_l1(tc_cache_t *a, const char *key, uint64_t ahead_us) {
    raw_store(key, wall_us() + ahead_us, S("pinned"));
    expect_now(a, key, "pinned");
    tc_stats_t before = stats(a);
    expect_now(a, key, "pinned");
    tc_stats_t after = stats(a);
    cr_assert_eq(after.l2_hits, before.l2_hits, "A did not keep the value in L1");
    cr_assert_eq(after.l1_hits, before.l1_hits + 1);
}

static void pin_in_l1(tc_cache_t *a, const char *key) {
    pin_ahead_in_l1(a, key, AHEAD_US);
}

Test(hostile, version_ahead_replaced_by_own_set) {
    tc_cache_t *a = open_cache();
    pin_in_l1(a, "own-set");
    cr_assert_eq(tc_set(a, S("own-set"), S("fresh"), 0), 0);
    expect_now(a, "own-set", "fresh");
    tc_test_sleep_ms(50u * TC_TEST_SLOW); /* our own message changes nothing */
    expect_now(a, "own-set", "fresh");
    cr_assert_lt(raw_version("own-set"), wall_us() + AHEAD_US / 2);
    tc_close(a);
}

Test(hostile, version_ahead_evicted_by_peer_set) {
    tc_cache_t *a = open_cache(), *b = open_cache();
    pin_in_l1(a, "peer-set");
    cr_assert_eq(tc_set(b, S("peer-set"), S("from-b"), 0), 0);
    cr_assert_geq(tc_test_wait_get(a, S("peer-set"), S("from-b"), RECOVER_MS), 0,
                  "A keeps serving its far-ahead copy after B's write");
    tc_close(b);
    tc_close(a);
}

Test(hostile, version_ahead_evicted_by_own_del) {
    tc_cache_t *a = open_cache();
    pin_in_l1(a, "own-del");
    cr_assert_eq(tc_del(a, S("own-del")), 0);
    cr_assert_eq(get_rc(a, "own-del"), TC_ENOTFOUND, "A still serves what it deleted");
    tc_close(a);
}

Test(hostile, version_ahead_evicted_by_peer_del) {
    tc_cache_t *a = open_cache(), *b = open_cache();
    pin_in_l1(a, "peer-del");
    cr_assert_eq(tc_del(b, S("peer-del")), 0);
    cr_assert_geq(tc_test_wait_get(a, S("peer-del"), NULL, 0, RECOVER_MS), 0,
                  "A keeps serving its far-ahead copy after B's delete");
    tc_close(b);
    tc_close(a);
}

/* Ahead by less than two versions of one counter can be apart (30 min < ~72 min): still
 * no pin. The writer's own write replaces it, and another process's write evicts it. */
#define NEAR_AHEAD_US ((uint64_t)30 * 60 * 1000000)

Test(hostile, version_near_ahead_replaced_by_own_and_peer_writes) {
    tc_cache_t *a = open_cache(), *b = open_cache();
    pin_ahead_in_l1(a, "near", NEAR_AHEAD_US);
    cr_assert_eq(tc_set(a, S("near"), S("own"), 0), 0);
    expect_now(a, "near", "own");
    pin_ahead_in_l1(a, "near2", NEAR_AHEAD_US);
    cr_assert_eq(tc_set(b, S("near2"), S("from-b"), 0), 0);
    cr_assert_geq(tc_test_wait_get(a, S("near2"), S("from-b"), RECOVER_MS), 0,
                  "A keeps serving its near-ahead copy after B's write");
    tc_close(b);
    tc_close(a);
}

typedef struct racer {
    tc_cache_t *c;
    const char *key;
    int set;
} racer_t;

static void *race_call(void *arg) {
    racer_t *r = arg;
    tc_ref_t *ref = NULL;
    if (r->set)
        cr_assert_eq(tc_set(r->c, r->key, strlen(r->key), S("new"), 0), 0);
    else
        tc_get(r->c, r->key, strlen(r->key), &ref);
    tc_ref_release(ref);
    return NULL;
}

/* A reads a far-ahead value while B overwrites it; B's message reaches A before A's fill
 * commits (Redis is frozen while both calls are sent). A must not keep what it read. */
Test(hostile, fill_racing_a_write_never_keeps_a_forged_version) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, PREFIX);
    cfg.command_timeout_ms = 2000;
    cfg.listener_ping_ms = 2000; /* the freeze must not look like a dead link */
    tc_cache_t *a = tc_test_open(&cfg), *b = tc_test_open(&cfg);
    int kept = 0;
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "race%d", i);
        raw_store(key, wall_us() + AHEAD_US, S("pinned"));
        racer_t ra = {a, key, 0}, rb = {b, key, 1};
        pthread_t ta, tb;
        tc_test_redis_pause(redis);
        pthread_create(&ta, NULL, race_call, &ra);
        tc_test_sleep_ms(5);
        pthread_create(&tb, NULL, race_call, &rb);
        tc_test_sleep_ms(5);
        tc_test_redis_resume(redis);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        if (tc_test_wait_get(a, key, strlen(key), S("new"), 1000u * TC_TEST_SLOW) < 0)
            kept++;
    }
    cr_assert_eq(kept, 0, "A kept a forged version over B's write in %d of 10 races", kept);
    tc_close(b);
    tc_close(a);
}

/* ---- 2. a corrupt version counter ---- */

/* Write key twice after the counter was corrupted; both writes succeed with distinct,
 * exact versions, readable by a peer, and the heal is counted once. */
static void writes_heal_counter(tc_cache_t *a, tc_cache_t *b, const char *what) {
    uint64_t heals = stats(a).counter_heals;
    int rc = tc_set(a, S("w"), S("first"), 0);
    cr_assert_eq(rc, 0, "tc_set after the counter became %s: %s", what, tc_err_name(rc));
    uint64_t v1 = raw_version("w");
    rc = tc_set(a, S("w"), S("second"), 0);
    cr_assert_eq(rc, 0, "second tc_set after the counter became %s: %s", what, tc_err_name(rc));
    uint64_t v2 = raw_version("w");
    cr_assert_gt(v2, v1, "counter %s: consecutive writes got versions %llu then %llu", what,
                 (unsigned long long)v1, (unsigned long long)v2);
    cr_assert_lt(v2, (uint64_t)1 << 53, "counter %s: version %llu is past 2^53", what,
                 (unsigned long long)v2);
    cr_assert_eq(stats(a).counter_heals, heals + 1, "counter %s: heals %llu -> %llu", what,
                 (unsigned long long)heals, (unsigned long long)stats(a).counter_heals);
    cr_assert_geq(tc_test_wait_get(b, S("w"), S("second"), RECOVER_MS), 0,
                  "counter %s: B does not read A's second write", what);
    cr_assert_eq(tc_del(a, S("w")), 0, "counter %s: tc_del after the heal", what);
}

Test(hostile, counter_past_2pow53_heals) {
    tc_cache_t *a = open_cache(), *b = open_cache();
    redisContext *rc = raw_connect();
    RAW(rc, "SET %sv %s", PREFIX, "1152921504606846976"); /* 2^60 */
    writes_heal_counter(a, b, "2^60");
    redisFree(rc);
    tc_close(b);
    tc_close(a);
}

Test(hostile, counter_not_a_number_heals) {
    tc_cache_t *a = open_cache(), *b = open_cache();
    redisContext *rc = raw_connect();
    RAW(rc, "SET %sv %s", PREFIX, "abc");
    writes_heal_counter(a, b, "'abc'");
    RAW(rc, "SET %sv %s", PREFIX, "1.5");
    writes_heal_counter(a, b, "'1.5'");
    /* A delete heals it as well. */
    RAW(rc, "SET %sv %s", PREFIX, "abc");
    uint64_t heals = stats(a).counter_heals;
    cr_assert_eq(tc_del(a, S("gone")), 0, "tc_del with a corrupt counter");
    cr_assert_eq(stats(a).counter_heals, heals + 1);
    redisFree(rc);
    tc_close(b);
    tc_close(a);
}

Test(hostile, counter_of_wrong_type_heals) {
    tc_cache_t *a = open_cache(), *b = open_cache();
    redisContext *rc = raw_connect();
    RAW(rc, "HSET %sv field 1", PREFIX);
    writes_heal_counter(a, b, "a hash");
    redisReply *r = redisCommand(rc, "TYPE %sv", PREFIX);
    cr_assert(r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "string") == 0,
              "the counter was not reset to a number");
    freeReplyObject(r);
    redisFree(rc);
    tc_close(b);
    tc_close(a);
}

/* ---- 3. a cached absence read by a process without negative caching ---- */

/* Decision recorded here: a plain process honours another's cached absence (it answers
 * TC_ENOTFOUND without calling its loader, as the writer would), and it never reads the
 * marker as a 0-byte value. */
Test(hostile, absence_reads_as_absent_everywhere) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, PREFIX);
    cfg.negative_ttl_ms = 60000;
    tc_cache_t *n = tc_test_open(&cfg);
    loader_arg_t none = {.val = NULL};
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(n, S("ghost"), loader, &none, &ref), TC_ENOTFOUND);
    cr_assert_null(ref);
    redisContext *rc = raw_connect();
    redisReply *hold;
    tc__val_t v = raw_decode(rc, "ghost", &hold);
    cr_assert(v.flags & TC__VAL_FLAG_ABSENT, "N did not store an absence marker");
    cr_assert_eq(v.len, 0);
    freeReplyObject(hold);
    redisFree(rc);

    tc_cache_t *p = open_cache();
    tc_stats_t s0 = stats(p);
    cr_assert_eq(get_rc(p, "ghost"), TC_ENOTFOUND,
                 "a plain process read an absence as a value");
    tc_stats_t s1 = stats(p);
    cr_assert_eq(s1.l2_hits + s1.l2_misses, s0.l2_hits + s0.l2_misses + 1,
                 "the first read did not go to Redis");
    cr_assert_eq(get_rc(p, "ghost"), TC_ENOTFOUND, "the second read (from L1) found a value");
    tc_stats_t s2 = stats(p);
    cr_assert_eq(s2.l2_hits + s2.l2_misses, s1.l2_hits + s1.l2_misses,
                 "the second read did not come from L1");
    char buf[8];
    size_t len = sizeof buf;
    cr_assert_eq(tc_get_copy(p, S("ghost"), buf, &len), TC_ENOTFOUND);

    loader_arg_t counting = {.val = "loaded"};
    int frc = tc_fetch(p, S("ghost"), loader, &counting, &ref);
    cr_assert_eq(frc, TC_ENOTFOUND, "tc_fetch on a plain process: %s%s", tc_err_name(frc),
                 frc == 0 && tc_ref_size(ref) == 0 ? " with a 0-byte value" : "");
    cr_assert_null(ref);
    cr_assert_eq(atomic_load(&counting.calls), 0, "the absence was not honoured");

    /* Without L1 the answer comes from Redis every time: the same. */
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, PREFIX);
    cfg.l1_max_bytes = 0;
    tc_cache_t *q = tc_test_open(&cfg);
    cr_assert_eq(get_rc(q, "ghost"), TC_ENOTFOUND);
    frc = tc_fetch(q, S("ghost"), loader, &counting, &ref);
    cr_assert_eq(frc, TC_ENOTFOUND, "tc_fetch without L1: %s", tc_err_name(frc));
    cr_assert_eq(atomic_load(&counting.calls), 0);
    tc_close(q);
    tc_close(p);
    tc_close(n);
}

/* ---- 4. an oversized stored value ---- */

static uint64_t net_output_bytes(redisContext *rc) {
    redisReply *r = redisCommand(rc, "INFO stats");
    cr_assert(r && r->type == REDIS_REPLY_STRING, "INFO stats failed");
    const char *f = strstr(r->str, "total_net_output_bytes:");
    cr_assert_not_null(f, "INFO stats has no total_net_output_bytes");
    uint64_t n = strtoull(f + strlen("total_net_output_bytes:"), NULL, 10);
    freeReplyObject(r);
    return n;
}

Test(hostile, oversized_value_refused_unread) {
    size_t big = 4 * MIB;
    char *payload = malloc(big);
    cr_assert_not_null(payload);
    memset(payload, 'x', big);
    tc_cache_t *a = open_cache();
    cr_assert_eq(tc_set(a, S("small"), S("ok"), 0), 0);
    settle(a);
    raw_store("big", wall_us(), payload, big);
    free(payload);

    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, PREFIX);
    cfg.max_value_bytes = MIB;
    tc_cache_t *c = tc_test_open(&cfg);
    redisContext *rc = raw_connect();
    uint64_t before = net_output_bytes(rc);
    int grc = get_rc(c, "big");
    uint64_t sent = net_output_bytes(rc) - before;
    cr_assert_eq(grc, TC_ETOOBIG, "tc_get of a 4 MiB value, limit 1 MiB: %s", tc_err_name(grc));
    cr_assert_lt(sent, 2 * MIB, "Redis sent %llu bytes for one refused read of 4 MiB",
                 (unsigned long long)sent);
    cr_assert_geq(stats(c).values_too_big, 1);

    loader_arg_t la = {.val = "loaded"};
    tc_ref_t *ref = NULL;
    int frc = tc_fetch(c, S("big"), loader, &la, &ref);
    cr_assert_eq(frc, TC_ETOOBIG, "tc_fetch: %s", tc_err_name(frc));
    cr_assert_null(ref);
    cr_assert_eq(atomic_load(&la.calls), 0, "the loader ran over a stored value");

    /* Twice the breaker threshold more: refusals are not failures of Redis. */
    for (unsigned i = 0; i < 2 * cfg.breaker_threshold; i++)
        cr_assert_eq(get_rc(c, "big"), TC_ETOOBIG);
    tc_stats_t st = stats(c);
    cr_assert_eq(st.breaker_state, 0, "breaker state %d after refusals", st.breaker_state);
    cr_assert_eq(st.breaker_opens, 0);
    cr_assert_geq(st.values_too_big, 2 + 2 * (uint64_t)cfg.breaker_threshold);
    expect_now(c, "small", "ok");
    redisFree(rc);
    tc_close(c);
    tc_close(a);
}

/* ---- 5. the defaults agree with each other ---- */

Test(hostile, default_max_value_round_trips) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = tc_test_redis_url(redis);
    cfg.key_prefix = PREFIX;
    cfg.inval_channel = PREFIX;
    tc_cache_t *a = tc_test_open(&cfg);
    size_t n = cfg.max_value_bytes;
    unsigned char *val = malloc(n);
    cr_assert_not_null(val);
    for (size_t i = 0; i < n; i++)
        val[i] = (unsigned char)(i * 2654435761u >> 13);
    int rc = tc_set(a, S("max"), val, n, 0);
    cr_assert_eq(rc, 0, "tc_set of max_value_bytes (%zu) with the defaults: %s", n,
                 tc_err_name(rc));
    tc_ref_t *ref = NULL;
    rc = tc_get(a, S("max"), &ref);
    cr_assert_eq(rc, 0, "tc_get of max_value_bytes with the defaults: %s", tc_err_name(rc));
    cr_assert_eq(tc_ref_size(ref), n);
    cr_assert_eq(memcmp(tc_ref_data(ref), val, n), 0, "the value came back different");
    tc_ref_release(ref);
    tc_stats_t st = stats(a);
    cr_assert_eq(st.breaker_opens, 0);
    cr_assert_eq(st.l2_timeouts, 0);
    free(val);
    tc_close(a);
}

/* ---- 6. per-call TTLs at the top of their range ---- */

static void expect_century(redisContext *rc, const char *key) {
    int64_t pttl = raw_pttl(rc, key);
    cr_assert(pttl > CENTURY_MS / 10 * 8 && pttl < CENTURY_MS / 10 * 12,
              "%s: PTTL %lld ms, not about 100 years", key, (long long)pttl);
}

Test(hostile, ttl_max_is_capped) {
    enum { KEYS = 200 };
    tc_cache_t *a = open_cache();
    for (int i = 0; i < KEYS; i++) {
        char k[16];
        snprintf(k, sizeof k, "ttl%d", i);
        int rc = tc_set(a, k, strlen(k), k, strlen(k), UINT64_MAX);
        cr_assert_eq(rc, 0, "tc_set(%s, ttl UINT64_MAX): %s", k, tc_err_name(rc));
    }
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, PREFIX);
    cfg.l1_max_bytes = 0;
    tc_cache_t *l2only = tc_test_open(&cfg);
    redisContext *rc = raw_connect();
    for (int i = 0; i < KEYS; i++) {
        char k[16];
        snprintf(k, sizeof k, "ttl%d", i);
        expect_now(l2only, k, k);
        expect_century(rc, k);
    }

    loader_arg_t la = {.val = "loaded", .ttl_ms = UINT64_MAX};
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "load%d", i);
        tc_ref_t *ref = NULL;
        int frc = tc_fetch(a, k, strlen(k), loader, &la, &ref);
        cr_assert_eq(frc, 0, "tc_fetch(%s) with tc_load_set_ttl(UINT64_MAX): %s", k,
                     tc_err_name(frc));
        tc_ref_release(ref);
        expect_now(l2only, k, "loaded");
        expect_century(rc, k);
    }
    redisFree(rc);
    tc_close(l2only);
    tc_close(a);
}

/* ---- 7. messages whose version cannot be ordered ---- */

static void publish(unsigned op, uint64_t version, const char *key) {
    static const unsigned char origin[16] = {0xee, 1, 2, 3};
    unsigned char m[64];
    size_t n = tc__msg_encode(op, version, origin, key, strlen(key), m);
    cr_assert_gt(n, 0);
    redisContext *rc = raw_connect();
    redisReply *r = redisCommand(rc, "PUBLISH %s %b", PREFIX, m, n);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1, "PUBLISH reached nobody");
    freeReplyObject(r);
    redisFree(rc);
}

/* Publish one message about "victim" (held in A's L1) and return A's stats once it has
 * been handled. */
static tc_stats_t publish_handled(tc_cache_t *a, unsigned op, uint64_t version,
                                  tc_stats_t *base) {
    cr_assert_eq(tc_set(a, S("victim"), S("kept"), 0), 0);
    expect_now(a, "victim", "kept");
    *base = settle(a);
    cr_assert_eq(base->l1_entries, 1);
    publish(op, version, "victim");
    uint64_t deadline = tc_test_now_ms() + RECOVER_MS;
    tc_stats_t st = stats(a);
    while (st.inval_received <= base->inval_received ||
           st.inval_applied + st.inval_malformed <=
               base->inval_applied + base->inval_malformed) {
        cr_assert_lt(tc_test_now_ms(), deadline, "the message was never handled");
        tc_test_sleep_ms(2);
        st = stats(a);
    }
    cr_assert_eq(st.listener_connected, 1, "a hostile message cost the subscription");
    cr_assert_eq(st.l1_flushes, base->l1_flushes, "a hostile message flushed L1");
    return st;
}

static void expect_evicted_and_malformed(uint64_t version, unsigned op, const char *what) {
    tc_cache_t *a = open_cache();
    tc_stats_t base, st = publish_handled(a, op, version, &base);
    cr_assert_eq(st.l1_entries, 0, "%s did not evict the entry", what);
    cr_assert_eq(st.inval_malformed, base.inval_malformed + 1, "%s was not counted malformed",
                 what);
    expect_now(a, "victim", "kept"); /* Redis still has it */
    cr_assert_eq(stats(a).l2_hits, base.l2_hits + 1);
    tc_close(a);
}

Test(hostile, message_version_2pow62_evicts) {
    expect_evicted_and_malformed((uint64_t)1 << 62, TC__MSG_OP_WRITE, "a write at 2^62");
}

Test(hostile, message_delete_version_max_evicts) {
    expect_evicted_and_malformed(UINT64_MAX, TC__MSG_OP_DELETE, "a delete at UINT64_MAX");
}

Test(hostile, message_write_version_0_evicts) {
    expect_evicted_and_malformed(0, TC__MSG_OP_WRITE, "a write at version 0");
}

Test(hostile, fill_version_0_keeps_entry) {
    tc_cache_t *a = open_cache();
    tc_stats_t base, st = publish_handled(a, TC__MSG_OP_FILL, 0, &base);
    cr_assert_eq(st.l1_entries, 1, "a FILL with version 0 evicted the entry");
    cr_assert_eq(st.inval_malformed, base.inval_malformed, "a FILL at 0 counted malformed");
    expect_now(a, "victim", "kept");
    cr_assert_eq(stats(a).l2_hits, base.l2_hits, "the entry was read again from Redis");
    tc_close(a);
}
