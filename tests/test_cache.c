/*
 * test_cache.c - the public API end to end, both tiers, on a private unix-socket Redis.
 *
 * Every test starts its own redis-server and opens caches with their own key prefix and
 * channel. Two handles in one process ("A" and "B") have separate L1s but share L2 and
 * the channel, so B reading what A wrote proves the L2 path (l2_hits), and B reading it
 * again proves the fill (l1_hits). Raw hiredis access checks what really sits in Redis:
 * tiercache stores a key as <prefix>"k:"<key> (src/l2.h).
 *
 * What is pinned here: the tier order and fills, binary keys and empty values, values too
 * big for L1 (served, never kept), tc_get_copy's sizing contract, every bad input's code,
 * refs that outlive deletes/overwrites/close, L1-only mode, TTLs in both tiers (an L1 copy
 * never outlives its L2 key), and foreign strings under the prefix being misses.
 */
/* tc-test-labels: integration */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <pthread.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

TestSuite(cache, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ---- */

static tc_cache_t *open_with(const char *prefix, size_t l1_max_value, size_t max_value) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), prefix, prefix);
    if (l1_max_value)
        cfg.l1_max_value_bytes = l1_max_value;
    if (max_value)
        cfg.max_value_bytes = max_value;
    return tc_test_open(&cfg);
}

static tc_cache_t *open_cache(const char *prefix) {
    return open_with(prefix, 0, 0);
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

static void expect_val(tc_cache_t *c, const void *key, size_t klen, const void *val,
                       size_t vlen) {
    tc_ref_t *ref = NULL;
    int rc = tc_get(c, key, klen, &ref);
    cr_assert_eq(rc, 0, "tc_get: %s", tc_err_name(rc));
    cr_assert_not_null(ref);
    cr_assert_eq(tc_ref_size(ref), vlen, "size %zu, expected %zu", tc_ref_size(ref), vlen);
    cr_assert(vlen == 0 || memcmp(tc_ref_data(ref), val, vlen) == 0, "value bytes differ");
    tc_ref_release(ref);
}

static void expect_miss(tc_cache_t *c, const void *key, size_t klen) {
    tc_ref_t *ref = (tc_ref_t *)&ref; /* must be reset to NULL */
    int rc = tc_get(c, key, klen, &ref);
    cr_assert_eq(rc, TC_ENOTFOUND, "tc_get: %s, expected a miss", tc_err_name(rc));
    cr_assert_null(ref);
}

static void set_ok(tc_cache_t *c, const void *key, size_t klen, const void *val, size_t vlen,
                   uint64_t ttl) {
    int rc = tc_set(c, key, klen, val, vlen, ttl);
    cr_assert_eq(rc, 0, "tc_set: %s", tc_err_name(rc));
}

#define S(str) str, sizeof(str) - 1

/* Raw Redis: does <prefix>k:<key> exist? */
static long long raw_exists(const char *prefix, const void *key, size_t klen) {
    char rk[512];
    size_t pl = strlen(prefix);
    memcpy(rk, prefix, pl);
    memcpy(rk + pl, "k:", 2);
    memcpy(rk + pl + 2, key, klen);
    redisReply *r = tc_test_redis_cmd(redis, "EXISTS %b", rk, pl + 2 + klen);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static void raw_set(const char *prefix, const char *key, const void *val, size_t vlen) {
    redisReply *r = tc_test_redis_cmd(redis, "SET %sk:%s %b", prefix, key, val, vlen);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

/* A loader: returns the value in arg, counts calls. */
typedef struct loader_arg {
    const char *val;
    size_t vlen;
    uint64_t ttl_ms;
    int ret; /* returned after (not) setting the value */
    int set_value;
    atomic_int calls;
} loader_arg_t;

static int loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    loader_arg_t *la = arg;
    (void)key;
    (void)klen;
    atomic_fetch_add(&la->calls, 1);
    if (la->set_value) {
        int rc = tc_load_set_value(load, la->val, la->vlen);
        if (rc != 0)
            return rc;
    }
    if (la->ttl_ms)
        cr_assert_eq(tc_load_set_ttl(load, la->ttl_ms), 0);
    return la->ret;
}

/* ---- the two tiers ---- */

Test(cache, set_get_del_through_both_tiers) {
    tc_cache_t *a = open_cache("t:rt:"), *b = open_cache("t:rt:");
    set_ok(a, S("user:1"), S("alice"), 0);
    cr_assert_eq(raw_exists("t:rt:", S("user:1")), 1, "tc_set did not reach Redis");

    expect_val(a, S("user:1"), S("alice"));
    cr_assert_eq(stats(a).l1_hits, 1, "the writer's own L1 should hold the value");

    expect_val(b, S("user:1"), S("alice"));
    tc_stats_t sb = stats(b);
    cr_assert_eq(sb.l2_hits, 1, "B's first read must come from L2");
    cr_assert_eq(sb.l1_hits, 0);
    expect_val(b, S("user:1"), S("alice"));
    sb = stats(b);
    cr_assert_eq(sb.l1_hits, 1, "B's second read must be an L1 hit (filled from L2)");
    cr_assert_eq(sb.l2_hits, 1);
    cr_assert_eq(sb.l1_entries, 1);

    cr_assert_eq(tc_del(a, S("user:1")), 0);
    expect_miss(a, S("user:1"));
    cr_assert_eq(raw_exists("t:rt:", S("user:1")), 0, "tc_del did not reach Redis");
    cr_assert_geq(tc_test_wait_get(b, S("user:1"), NULL, 0, 1000u * TC_TEST_SLOW), 0,
                  "B still serves a deleted key");
    expect_miss(a, S("never-set"));
    cr_assert_eq(tc_del(a, S("never-set")), 0, "deleting an absent key is not an error");
    tc_close(a);
    tc_close(b);
}

Test(cache, overwrite_evicts_other_handles_l1) {
    tc_cache_t *a = open_cache("t:ow:"), *b = open_cache("t:ow:");
    set_ok(a, S("k"), S("v1"), 0);
    expect_val(b, S("k"), S("v1"));
    expect_val(b, S("k"), S("v1"));
    cr_assert_eq(stats(b).l1_hits, 1, "B must hold v1 in L1 before the overwrite");
    set_ok(a, S("k"), S("v2-longer"), 0);
    cr_assert_geq(tc_test_wait_get(b, S("k"), S("v2-longer"), 1000u * TC_TEST_SLOW), 0,
                  "B kept serving v1 after A wrote v2");
    cr_assert_geq(stats(b).inval_applied, 1);
    cr_assert_geq(stats(a).inval_published, 2);
    tc_close(a);
    tc_close(b);
}

Test(cache, fetch_is_cache_aside) {
    tc_cache_t *a = open_cache("t:fe:"), *b = open_cache("t:fe:");
    loader_arg_t la = {.val = "loaded", .vlen = 6, .set_value = 1};
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(a, S("f"), loader, &la, &ref), 0);
    cr_assert_eq(tc_ref_size(ref), 6);
    cr_assert_eq(memcmp(tc_ref_data(ref), "loaded", 6), 0);
    tc_ref_release(ref);
    cr_assert_eq(atomic_load(&la.calls), 1);
    cr_assert_eq(raw_exists("t:fe:", S("f")), 1, "a loaded value must be stored in L2");

    cr_assert_eq(tc_fetch(a, S("f"), loader, &la, &ref), 0);
    tc_ref_release(ref);
    cr_assert_eq(atomic_load(&la.calls), 1, "second fetch must not call the loader");
    cr_assert_geq(stats(a).l1_hits, 1);

    loader_arg_t lb = {.val = "other", .vlen = 5, .set_value = 1};
    cr_assert_eq(tc_fetch(b, S("f"), loader, &lb, &ref), 0);
    cr_assert_eq(memcmp(tc_ref_data(ref), "loaded", 6), 0, "B must see A's loaded value");
    tc_ref_release(ref);
    cr_assert_eq(atomic_load(&lb.calls), 0, "B found the value in L2: no load");
    cr_assert_eq(stats(b).l2_hits, 1);

    set_ok(a, S("pre"), S("written"), 0);
    cr_assert_eq(tc_fetch(b, S("pre"), loader, &lb, &ref), 0);
    cr_assert_eq(memcmp(tc_ref_data(ref), "written", 7), 0);
    tc_ref_release(ref);
    cr_assert_eq(atomic_load(&lb.calls), 0);
    tc_close(a);
    tc_close(b);
}

Test(cache, fetch_loader_ttl_and_errors) {
    tc_cache_t *a = open_cache("t:fl:");
    loader_arg_t la = {.val = "short", .vlen = 5, .set_value = 1, .ttl_ms = 300};
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(a, S("t"), loader, &la, &ref), 0);
    tc_ref_release(ref);
    tc_test_sleep_ms(600);
    cr_assert_eq(tc_fetch(a, S("t"), loader, &la, &ref), 0);
    tc_ref_release(ref);
    cr_assert_eq(atomic_load(&la.calls), 2, "the loader's 300 ms TTL was not applied");

    loader_arg_t none = {.ret = 0};
    ref = (tc_ref_t *)&ref;
    cr_assert_eq(tc_fetch(a, S("x"), loader, &none, &ref), TC_ELOADER,
                 "0 without a value is TC_ELOADER");
    cr_assert_null(ref);
    loader_arg_t pos = {.ret = 7};
    cr_assert_eq(tc_fetch(a, S("x"), loader, &pos, &ref), TC_ELOADER,
                 "a positive return is TC_ELOADER");
    loader_arg_t nf = {.ret = TC_ENOTFOUND};
    cr_assert_eq(tc_fetch(a, S("x"), loader, &nf, &ref), TC_ENOTFOUND);
    loader_arg_t neg = {.ret = -4242, .set_value = 1, .val = "ignored", .vlen = 7};
    cr_assert_eq(tc_fetch(a, S("x"), loader, &neg, &ref), -4242,
                 "a negative loader error is returned as-is");
    expect_miss(a, S("x"));
    cr_assert_eq(raw_exists("t:fl:", S("x")), 0, "nothing is cached on loader failure");
    cr_assert_geq(stats(a).load_errors, 3);
    tc_close(a);
}

/* ---- keys and values ---- */

/* A value with CRLF and a NUL in it, distinct per i. Returns its length. */
static size_t binval(char *out, size_t i) {
    int n = snprintf(out, 32, "value-%zu\r\n", i);
    out[n] = '\0';
    return (size_t)n + 1;
}

Test(cache, binary_keys) {
    tc_cache_t *a = open_cache("t:bk:"), *b = open_cache("t:bk:");
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    struct {
        const void *k;
        size_t len;
    } keys[] = {
        {S("a\0b")}, {S("a\0c")}, {S("a")},          {S(" sp ace ")}, {S("crlf\r\nkey\r\n")},
        {S("\0")},   {S("\r\n")}, {all, sizeof all}, {S("\0\0\0\0")}, {S("*3\r\n$3\r\nSET")}};
    size_t n = sizeof keys / sizeof keys[0];
    char val[32];
    for (size_t i = 0; i < n; i++)
        set_ok(a, keys[i].k, keys[i].len, val, binval(val, i), 0);
    for (size_t i = 0; i < n; i++) {
        size_t vlen = binval(val, i);
        expect_val(a, keys[i].k, keys[i].len, val, vlen);
        expect_val(b, keys[i].k, keys[i].len, val, vlen);
        expect_val(b, keys[i].k, keys[i].len, val, vlen);
    }
    cr_assert_eq(stats(b).l2_hits, n, "every binary key must be distinct in L2");
    cr_assert_eq(stats(b).l1_hits, n);

    cr_assert_eq(tc_del(a, "a\0b", 3), 0);
    expect_miss(a, "a\0b", 3);
    cr_assert_geq(tc_test_wait_get(b, "a\0b", 3, NULL, 0, 1000u * TC_TEST_SLOW), 0);
    expect_val(b, "a\0c", 3, val, binval(val, 1));
    expect_val(a, "a\0c", 3, val, binval(val, 1));
    expect_val(b, "a", 1, val, binval(val, 2));
    tc_close(a);
    tc_close(b);
}

Test(cache, empty_value) {
    tc_cache_t *a = open_cache("t:ev:"), *b = open_cache("t:ev:");
    set_ok(a, S("e"), "", 0, 0);
    set_ok(a, S("e2"), NULL, 0, 0);
    expect_val(a, S("e"), NULL, 0);
    expect_val(a, S("e2"), NULL, 0);
    expect_val(b, S("e"), NULL, 0);
    expect_val(b, S("e2"), NULL, 0);
    size_t len = 0;
    cr_assert_eq(tc_get_copy(b, S("e"), NULL, &len), 0, "an empty value fits in 0 bytes");
    cr_assert_eq(len, 0);
    tc_close(a);
    tc_close(b);
}

Test(cache, value_over_l1_max_is_served_not_kept) {
    tc_cache_t *a = open_with("t:lv:", 1024, 0), *b = open_with("t:lv:", 1024, 0);
    static char big[4096];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    set_ok(a, S("big"), big, sizeof big, 0);
    cr_assert_eq(stats(a).l1_entries, 0, "a value over l1_max_value_bytes was kept");
    expect_val(a, S("big"), big, sizeof big);
    expect_val(a, S("big"), big, sizeof big);
    tc_stats_t sa = stats(a);
    cr_assert_eq(sa.l1_hits, 0);
    cr_assert_eq(sa.l2_hits, 2, "both reads must be served from L2");
    cr_assert_eq(sa.l1_entries, 0);
    expect_val(b, S("big"), big, sizeof big);
    expect_val(b, S("big"), big, sizeof big);
    cr_assert_eq(stats(b).l1_entries, 0);
    cr_assert_eq(stats(b).l1_hits, 0);

    loader_arg_t la = {.val = big, .vlen = 2048, .set_value = 1};
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(b, S("bigload"), loader, &la, &ref), 0);
    cr_assert_eq(tc_ref_size(ref), 2048);
    tc_ref_release(ref);
    cr_assert_eq(tc_fetch(b, S("bigload"), loader, &la, &ref), 0);
    tc_ref_release(ref);
    cr_assert_eq(atomic_load(&la.calls), 1, "the big loaded value must still be in L2");
    cr_assert_eq(stats(b).l1_entries, 0);

    set_ok(a, S("small"), big, 1024, 0);
    cr_assert_eq(stats(a).l1_entries, 1, "a value of exactly l1_max_value_bytes is kept");
    tc_close(a);
    tc_close(b);
}

Test(cache, get_copy) {
    tc_cache_t *a = open_cache("t:gc:");
    set_ok(a, S("c"), S("hello world"), 0);
    char buf[64];
    size_t len = sizeof buf;
    cr_assert_eq(tc_get_copy(a, S("c"), buf, &len), 0);
    cr_assert_eq(len, 11);
    cr_assert_eq(memcmp(buf, "hello world", 11), 0);

    memset(buf, 'x', sizeof buf);
    len = 5;
    cr_assert_eq(tc_get_copy(a, S("c"), buf, &len), TC_ENOSPC);
    cr_assert_eq(len, 11, "TC_ENOSPC must report the needed size");
    cr_assert_eq(buf[0], 'x', "nothing may be copied on TC_ENOSPC");
    len = 0;
    cr_assert_eq(tc_get_copy(a, S("c"), NULL, &len), TC_ENOSPC);
    cr_assert_eq(len, 11);
    len = 11;
    cr_assert_eq(tc_get_copy(a, S("c"), buf, &len), 0, "an exact fit is enough");

    len = sizeof buf;
    cr_assert_eq(tc_get_copy(a, S("missing"), buf, &len), TC_ENOTFOUND);
    len = sizeof buf;
    cr_assert_eq(tc_get_copy(NULL, S("c"), buf, &len), TC_EINVAL);
    cr_assert_eq(tc_get_copy(a, NULL, 1, buf, &len), TC_EINVAL);
    cr_assert_eq(tc_get_copy(a, S("c"), buf, NULL), TC_EINVAL);
    cr_assert_eq(tc_get_copy(a, "c", 0, buf, &len), TC_EKEYLEN);
    len = sizeof buf;
    cr_assert_eq(tc_get_copy(a, S("c"), NULL, &len), TC_EINVAL,
                 "buf NULL is only allowed with *len 0");
    tc_close(a);
}

Test(cache, bad_inputs) {
    tc_cache_t *a = open_with("t:bi:", 0, 4096);
    static char key[TC_MAX_KEY_LEN + 1];
    memset(key, 'K', sizeof key);
    key[7] = '\0';
    tc_ref_t *ref = (tc_ref_t *)&ref;
    loader_arg_t la = {.val = "v", .vlen = 1, .set_value = 1};

    cr_assert_eq(tc_get(NULL, S("k"), &ref), TC_EINVAL);
    cr_assert_null(ref, "*ref must be NULL on failure");
    ref = (tc_ref_t *)&ref;
    cr_assert_eq(tc_get(a, NULL, 1, &ref), TC_EINVAL);
    cr_assert_null(ref);
    cr_assert_eq(tc_get(a, S("k"), NULL), TC_EINVAL);
    ref = (tc_ref_t *)&ref;
    cr_assert_eq(tc_get(a, "k", 0, &ref), TC_EKEYLEN);
    cr_assert_null(ref);
    cr_assert_eq(tc_get(a, key, TC_MAX_KEY_LEN + 1, &ref), TC_EKEYLEN);

    cr_assert_eq(tc_set(NULL, S("k"), S("v"), 0), TC_EINVAL);
    cr_assert_eq(tc_set(a, NULL, 1, S("v"), 0), TC_EINVAL);
    cr_assert_eq(tc_set(a, "k", 0, S("v"), 0), TC_EKEYLEN);
    cr_assert_eq(tc_set(a, key, TC_MAX_KEY_LEN + 1, S("v"), 0), TC_EKEYLEN);
    cr_assert_eq(tc_set(a, S("k"), NULL, 3, 0), TC_EINVAL);
    static char big[4097];
    cr_assert_eq(tc_set(a, S("k"), big, sizeof big, 0), TC_ETOOBIG);
    expect_miss(a, S("k"));
    set_ok(a, S("k"), big, 4096, 0);

    cr_assert_eq(tc_del(NULL, S("k")), TC_EINVAL);
    cr_assert_eq(tc_del(a, NULL, 1), TC_EINVAL);
    cr_assert_eq(tc_del(a, "k", 0), TC_EKEYLEN);
    cr_assert_eq(tc_del(a, key, TC_MAX_KEY_LEN + 1), TC_EKEYLEN);

    ref = (tc_ref_t *)&ref;
    cr_assert_eq(tc_fetch(NULL, S("f"), loader, &la, &ref), TC_EINVAL);
    cr_assert_null(ref);
    cr_assert_eq(tc_fetch(a, NULL, 1, loader, &la, &ref), TC_EINVAL);
    cr_assert_eq(tc_fetch(a, S("f"), NULL, &la, &ref), TC_EINVAL);
    cr_assert_eq(tc_fetch(a, S("f"), loader, &la, NULL), TC_EINVAL);
    cr_assert_eq(tc_fetch(a, "f", 0, loader, &la, &ref), TC_EKEYLEN);
    cr_assert_eq(tc_fetch(a, key, TC_MAX_KEY_LEN + 1, loader, &la, &ref), TC_EKEYLEN);
    cr_assert_eq(atomic_load(&la.calls), 0, "no loader call for a rejected request");
    loader_arg_t huge = {.val = big, .vlen = sizeof big, .set_value = 1};
    cr_assert_eq(tc_fetch(a, S("f"), loader, &huge, &ref), TC_ETOOBIG,
                 "tc_load_set_value must refuse a value over max_value_bytes");
    loader_arg_t nul = {.val = NULL, .vlen = 3, .set_value = 1};
    cr_assert_eq(tc_fetch(a, S("f"), loader, &nul, &ref), TC_EINVAL);
    cr_assert_null(ref);
    cr_assert_eq(tc_load_set_value(NULL, "v", 1), TC_EINVAL);
    cr_assert_eq(tc_load_set_ttl(NULL, 1), TC_EINVAL);

    tc_stats_t st;
    cr_assert_eq(tc_stats(NULL, &st), TC_EINVAL);
    cr_assert_eq(tc_stats(a, NULL), TC_EINVAL);
    tc_close(NULL);
    tc_ref_release(NULL);

    /* The longest key is accepted end to end, through L2 and the channel. */
    set_ok(a, key, TC_MAX_KEY_LEN, S("long"), 0);
    expect_val(a, key, TC_MAX_KEY_LEN, S("long"));
    tc_cache_t *b = open_cache("t:bi:");
    expect_val(b, key, TC_MAX_KEY_LEN, S("long"));
    set_ok(a, key, TC_MAX_KEY_LEN, S("longer"), 0);
    cr_assert_geq(tc_test_wait_get(b, key, TC_MAX_KEY_LEN, S("longer"), 1000u * TC_TEST_SLOW),
                  0);
    tc_close(b);
    tc_close(a);
}

Test(cache, bad_open) {
    tc_config_t cfg;
    tc_cache_t *c = (tc_cache_t *)&cfg;
    tc_error_t err = {0};
    tc_test_config(&cfg, tc_test_redis_url(redis), "t:bo:", "t:bo:");
    cr_assert_eq(tc_open(NULL, &c, &err), TC_EINVAL);
    cr_assert_null(c);
    cr_assert_eq(tc_open(&cfg, NULL, &err), TC_EINVAL);
    cfg.l1_shards = 3;
    c = (tc_cache_t *)&cfg;
    cr_assert_eq(tc_open(&cfg, &c, &err), TC_ECONFIG);
    cr_assert_null(c);
    cr_assert_not_null(strstr(err.msg, "l1_shards"), "message '%s' must name the field",
                       err.msg);
    tc_test_config(&cfg, "http://nope", "t:bo:", "t:bo:");
    cr_assert_eq(tc_open(&cfg, &c, NULL), TC_ECONFIG);
}

/* ---- references ---- */

Test(cache, refs_outlive_delete_overwrite_and_close) {
    tc_cache_t *a = open_cache("t:rf:"), *b = open_cache("t:rf:");
    tc_ref_t *r1 = NULL, *r2 = NULL, *rb = NULL;
    set_ok(a, S("k"), S("one"), 0);
    cr_assert_eq(tc_get(a, S("k"), &r1), 0);
    cr_assert_eq(tc_get(b, S("k"), &rb), 0);
    cr_assert_eq(tc_del(a, S("k")), 0);
    cr_assert_eq(tc_ref_size(r1), 3);
    cr_assert_eq(memcmp(tc_ref_data(r1), "one", 3), 0, "a ref changed after delete");
    set_ok(a, S("k"), S("two"), 0);
    cr_assert_eq(tc_get(a, S("k"), &r2), 0);
    cr_assert_eq(memcmp(tc_ref_data(r2), "two", 3), 0);
    set_ok(a, S("k"), S("three"), 0);
    cr_assert_geq(tc_test_wait_get(b, S("k"), S("three"), 1000u * TC_TEST_SLOW), 0);
    cr_assert_eq(memcmp(tc_ref_data(r1), "one", 3), 0);
    cr_assert_eq(memcmp(tc_ref_data(r2), "two", 3), 0, "a ref changed after overwrite");
    cr_assert_eq(memcmp(tc_ref_data(rb), "one", 3), 0, "an invalidated ref changed");
    tc_close(a);
    tc_close(b);
    cr_assert_eq(tc_ref_size(r2), 3);
    cr_assert_eq(memcmp(tc_ref_data(r1), "one", 3), 0, "a ref changed after tc_close");
    cr_assert_eq(memcmp(tc_ref_data(r2), "two", 3), 0);
    cr_assert_eq(memcmp(tc_ref_data(rb), "one", 3), 0);
    tc_ref_release(r1);
    tc_ref_release(r2);
    tc_ref_release(rb);
}

/* ---- L1-only ---- */

Test(cache, l1_only_mode) {
    tc_config_t cfg;
    tc_test_config(&cfg, NULL, "t:l1:", "t:l1:");
    tc_cache_t *a = tc_test_open(&cfg);
    expect_miss(a, S("k"));
    set_ok(a, S("k"), S("v"), 0);
    expect_val(a, S("k"), S("v"));
    set_ok(a, S("k"), S("v2"), 0);
    expect_val(a, S("k"), S("v2"));
    cr_assert_eq(tc_del(a, S("k")), 0);
    expect_miss(a, S("k"));
    loader_arg_t la = {.val = "lv", .vlen = 2, .set_value = 1};
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(a, S("f"), loader, &la, &ref), 0);
    tc_ref_release(ref);
    cr_assert_eq(tc_fetch(a, S("f"), loader, &la, &ref), 0);
    cr_assert_eq(memcmp(tc_ref_data(ref), "lv", 2), 0);
    tc_ref_release(ref);
    cr_assert_eq(atomic_load(&la.calls), 1);
    set_ok(a, S("ttl"), S("x"), 200);
    tc_test_sleep_ms(500);
    expect_miss(a, S("ttl"));
    tc_stats_t st = stats(a);
    cr_assert_eq(st.listener_connected, 0);
    cr_assert_eq(st.l2_hits + st.l2_misses + st.l2_errors, 0, "L1-only must not touch L2");
    cr_assert_eq(st.l1_entries, 1);
    tc_close(a);
}

/* ---- TTL ---- */

Test(cache, ttl_expires_in_both_tiers) {
    tc_cache_t *a = open_cache("t:tt:"), *b = open_cache("t:tt:");
    set_ok(a, S("t"), S("soon"), 300);
    expect_val(a, S("t"), S("soon"));
    expect_val(b, S("t"), S("soon"));
    tc_test_sleep_ms(600);
    expect_miss(a, S("t"));
    expect_miss(b, S("t"));
    cr_assert_eq(raw_exists("t:tt:", S("t")), 0, "the L2 key outlived its TTL");
    tc_close(a);
    tc_close(b);
}

Test(cache, l1_fill_never_outlives_l2_key) {
    tc_cache_t *a = open_cache("t:tf:"), *b = open_cache("t:tf:");
    set_ok(a, S("t"), S("fill"), 400);
    expect_val(b, S("t"), S("fill"));
    expect_val(b, S("t"), S("fill"));
    cr_assert_eq(stats(b).l1_hits, 1, "B must hold the value in L1");
    tc_test_sleep_ms(800);
    expect_miss(b, S("t"));
    tc_close(a);
    tc_close(b);
}

/* Read k (tc_get, or tc_mget when bulk) and say whether L1 answered: 1 L1 hit, 0 miss. */
static int read_from_l1(tc_cache_t *c, const char *k, int bulk) {
    uint64_t before = stats(c).l1_hits;
    tc_ref_t *ref = NULL;
    if (bulk) {
        tc_buf_t key = {k, strlen(k)};
        int code = 0;
        cr_assert_eq(tc_mget(c, &key, 1, &ref, &code), 0);
    } else {
        tc_get(c, k, strlen(k), &ref);
    }
    tc_ref_release(ref);
    return stats(c).l1_hits > before;
}

/* The read takes its key's life from the value's header (src/l2_clock.h), not PTTL. Without
 * tracking or a message at expiry, only that life ends the copy: B must never answer from
 * L1 once Redis has dropped the key (checked before each read), and must hold the value
 * until shortly before. Both read paths: the single key and the bulk pipeline. */
static void check_copy_ends_with_key(const char *prefix, int bulk) {
    tc_cache_t *a = open_cache(prefix), *b = open_cache(prefix);
    for (int round = 0; round < 3; round++) {
        char k[16];
        snprintf(k, sizeof k, "t%d", round);
        set_ok(a, k, strlen(k), S("x"), 300 + 100 * (uint64_t)round);
        read_from_l1(b, k, bulk);
        cr_assert(read_from_l1(b, k, bulk), "%s: B did not keep the value in L1", k);
        int held_late = 0;
        for (int i = 0; i < 400; i++) {
            long long there = raw_exists(prefix, k, strlen(k));
            int hit = read_from_l1(b, k, bulk);
            cr_assert(!(hit && !there), "%s: B answered from L1 after Redis dropped the key",
                      k);
            if (!there)
                break;
            held_late |= hit;
            tc_test_sleep_ms(5);
        }
        cr_assert_eq(raw_exists(prefix, k, strlen(k)), 0, "%s never expired", k);
        cr_assert(held_late, "%s: the L1 copy was never used", k);
    }
    tc_close(a);
    tc_close(b);
}

Test(cache, l1_copy_ends_when_its_key_expires) {
    check_copy_ends_with_key("t:te:", 0);
}

Test(cache, l1_copy_ends_when_its_key_expires_bulk) {
    check_copy_ends_with_key("t:tb:", 1);
}

/* ---- foreign data ---- */

Test(cache, foreign_values_under_prefix_are_misses) {
    tc_cache_t *a = open_cache("t:fv:");
    unsigned char wrong_magic[40], wrong_format[40];
    memset(wrong_magic, 0x41, sizeof wrong_magic);
    memset(wrong_format, 0, sizeof wrong_format);
    wrong_format[0] = 0xC7;
    wrong_format[1] = 9;
    raw_set("t:fv:", "plain", "hello", 5);
    raw_set("t:fv:", "empty", "", 0);
    raw_set("t:fv:", "magic", wrong_magic, sizeof wrong_magic);
    raw_set("t:fv:", "format", wrong_format, sizeof wrong_format);
    raw_set("t:fv:", "short", "\xC7\x01\x00", 3);
    const char *names[] = {"plain", "empty", "magic", "format", "short"};
    for (size_t i = 0; i < 5; i++) {
        expect_miss(a, names[i], strlen(names[i]));
        char buf[64];
        size_t len = sizeof buf;
        cr_assert_eq(tc_get_copy(a, names[i], strlen(names[i]), buf, &len), TC_ENOTFOUND);
    }
    cr_assert_eq(stats(a).l1_entries, 0, "a foreign value was kept in L1");
    set_ok(a, S("plain"), S("mine"), 0);
    expect_val(a, S("plain"), S("mine"));
    tc_close(a);
}

/* ---- the invalidation hook ---- */

typedef struct hook_log {
    pthread_mutex_t mu;
    int calls;
    size_t klen;
    unsigned char key[16];
} hook_log_t;

static void record_hook(void *arg, const void *key, size_t klen) {
    hook_log_t *log = arg;
    pthread_mutex_lock(&log->mu);
    log->calls++;
    log->klen = klen;
    memcpy(log->key, key, klen < sizeof log->key ? klen : sizeof log->key);
    pthread_mutex_unlock(&log->mu);
}

Test(cache, inval_hook_sees_every_applied_invalidation_with_its_binary_key) {
    hook_log_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), "t:hook:", "t:hook:inval");
    cfg.inval_hook = record_hook;
    cfg.inval_hook_arg = &log;
    tc_cache_t *watcher = tc_test_open(&cfg);
    cfg.inval_hook = NULL;
    tc_cache_t *writer = tc_test_open(&cfg);
    static const char key[] = {'h', 0, '\r', '\n'};
    cr_assert_eq(tc_set(writer, key, sizeof key, "v", 1, 0), 0);
    cr_assert_eq(tc_del(writer, key, sizeof key), 0);
    uint64_t deadline = tc_test_now_ms() + 2000u * TC_TEST_SLOW;
    for (;;) {
        pthread_mutex_lock(&log.mu);
        int calls = log.calls;
        pthread_mutex_unlock(&log.mu);
        if (calls >= 2)
            break;
        cr_assert_lt(tc_test_now_ms(), deadline, "hook called %d times, want 2", calls);
        tc_test_sleep_ms(5);
    }
    tc_close(watcher); /* joins the listener: log is stable from here */
    tc_close(writer);
    cr_assert_eq(log.calls, 2, "one call per applied message (set, del)");
    cr_assert_eq(log.klen, sizeof key);
    cr_assert_eq(memcmp(log.key, key, sizeof key), 0, "the binary key reaches the hook intact");
}
