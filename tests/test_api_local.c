/*
 * test_api_local.c - the public API of include/tiercache.h in L1-only mode (redis_url
 * NULL): the data calls, their every bad input, the loader contract of tc_fetch, what a
 * 0-byte or too-small L1 does, and the counters tc_stats reports.
 *
 * The idea: this file only uses tiercache.h, as an application would, so it tests the
 * header's promises and nothing else. Each bad-input case asserts the exact TC_E* code the
 * header documents, and that the out-parameter was reset where the header says so
 * (*ref NULL on failure, *out NULL after a failed tc_open).
 *
 * The race cases run the loader on the test's own thread: a loader that writes or deletes
 * its own key stands in for a write that lands while a load is in flight, so the loaded
 * value must be served but not kept.
 */
/* tc-test-labels: unit */
#include "tiercache.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

static tc_cache_t *open_cfg(const tc_config_t *cfg) {
    tc_cache_t *c = NULL;
    tc_error_t err;
    int rc = tc_open(cfg, &c, &err);
    cr_assert_eq(rc, TC_OK, "tc_open: %s (%s)", tc_err_name(rc), err.msg);
    cr_assert_not_null(c);
    return c;
}

static tc_config_t local_cfg(void) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = NULL;
    cfg.l1_shards = 4;
    return cfg;
}

static tc_cache_t *open_local(void) {
    tc_config_t cfg = local_cfg();
    return open_cfg(&cfg);
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), TC_OK);
    return s;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Assert key holds exactly val (vlen bytes). */
static void assert_value(tc_cache_t *c, const void *key, size_t klen, const void *val,
                         size_t vlen) {
    tc_ref_t *r = (tc_ref_t *)(uintptr_t)1;
    int rc = tc_get(c, key, klen, &r);
    cr_assert_eq(rc, TC_OK, "tc_get: %s", tc_err_name(rc));
    cr_assert_not_null(r);
    cr_assert_eq(tc_ref_size(r), vlen);
    cr_assert(vlen == 0 || memcmp(tc_ref_data(r), val, vlen) == 0, "wrong bytes");
    tc_ref_release(r);
}

static void assert_absent(tc_cache_t *c, const void *key, size_t klen) {
    tc_ref_t *r = (tc_ref_t *)(uintptr_t)1;
    int rc = tc_get(c, key, klen, &r);
    cr_assert_eq(rc, TC_ENOTFOUND, "tc_get: %s", tc_err_name(rc));
    cr_assert_null(r, "*ref must be NULL when tc_get fails");
}

#define S(str) str, (sizeof str - 1) /* a literal's bytes, without the NUL */

/* ---- loaders ---- */

typedef struct load_ctx {
    tc_cache_t *cache;
    const void *val;
    size_t vlen;
    int rc; /* returned by the loader */
    uint64_t ttl;
    atomic_int calls;
    int set_rc, set_rc2; /* tc_load_set_value's results, for the caller to check */
    int wait_for;        /* wait until this many tc_fetch calls wait on us */
    const char *write;   /* if set: tc_set the key to this while loading */
    int write_many;      /* ... through tc_mset instead */
    int del;             /* if set: tc_del the key while loading */
} load_ctx_t;

static int loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    load_ctx_t *x = arg;
    atomic_fetch_add(&x->calls, 1);
    for (int i = 0; x->wait_for && i < 5000; i++) { /* bounded: 5 s */
        tc_stats_t s;
        if (tc_stats(x->cache, &s) == TC_OK && s.singleflight_waits >= (uint64_t)x->wait_for)
            break;
        sleep_ms(1);
    }
    if (x->write && x->write_many) {
        tc_item_t item = {
            .key = key, .klen = klen, .value = x->write, .vlen = strlen(x->write)};
        cr_assert_eq(tc_mset(x->cache, &item, 1, NULL, NULL), TC_OK);
    } else if (x->write) {
        cr_assert_eq(tc_set(x->cache, key, klen, x->write, strlen(x->write), 0), TC_OK);
    }
    if (x->del)
        cr_assert_eq(tc_del(x->cache, key, klen), TC_OK);
    if (x->val)
        x->set_rc = tc_load_set_value(load, x->val, x->vlen);
    if (x->ttl)
        cr_assert_eq(tc_load_set_ttl(load, x->ttl), TC_OK);
    return x->rc;
}

static int fetch(tc_cache_t *c, const void *key, size_t klen, load_ctx_t *x, tc_ref_t **ref) {
    *ref = (tc_ref_t *)(uintptr_t)1;
    int rc = tc_fetch(c, key, klen, loader, x, ref);
    if (rc != TC_OK)
        cr_assert_null(*ref, "*ref must be NULL when tc_fetch fails (%s)", tc_err_name(rc));
    else
        cr_assert_not_null(*ref);
    return rc;
}

/* ---- set / get / get_copy / del ---- */

Test(api, set_get_del_roundtrip) {
    tc_cache_t *c = open_local();
    assert_absent(c, S("user:1"));
    cr_assert_eq(tc_set(c, S("user:1"), S("alice"), 0), TC_OK);
    assert_value(c, S("user:1"), S("alice"));
    cr_assert_eq(tc_set(c, S("user:1"), S("bob!"), 0), TC_OK);
    assert_value(c, S("user:1"), S("bob!"));
    cr_assert_eq(tc_del(c, S("user:1")), TC_OK);
    assert_absent(c, S("user:1"));
    cr_assert_eq(tc_del(c, S("user:1")), TC_OK, "deleting a missing key is not an error");
    cr_assert_eq(tc_del(c, S("never")), TC_OK);
    tc_close(c);
}

Test(api, caller_keeps_its_buffers) {
    tc_cache_t *c = open_local();
    char key[8] = "key", val[8] = "value";
    cr_assert_eq(tc_set(c, key, 3, val, 5, 0), TC_OK);
    memset(key, 'X', sizeof key);
    memset(val, 'Y', sizeof val);
    assert_value(c, S("key"), S("value"));
    tc_close(c);
}

Test(api, binary_keys_are_distinct) {
    tc_cache_t *c = open_local();
    static const char k_nul1[] = {'a', '\0', 'b'}, k_nul2[] = {'a', '\0', 'c'};
    static const char k_crlf[] = "a\r\nb", k_zero[] = {'\0'}, k_two_nul[] = {'\0', '\0'};
    cr_assert_eq(tc_set(c, k_nul1, 3, S("v1"), 0), TC_OK);
    cr_assert_eq(tc_set(c, k_nul2, 3, S("v2"), 0), TC_OK);
    cr_assert_eq(tc_set(c, k_crlf, 4, S("v3"), 0), TC_OK);
    cr_assert_eq(tc_set(c, k_zero, 1, S("v4"), 0), TC_OK);
    cr_assert_eq(tc_set(c, k_two_nul, 2, S("v5"), 0), TC_OK);
    assert_value(c, k_nul1, 3, S("v1"));
    assert_value(c, k_nul2, 3, S("v2"));
    assert_value(c, k_crlf, 4, S("v3"));
    assert_value(c, k_zero, 1, S("v4"));
    assert_value(c, k_two_nul, 2, S("v5"));
    assert_absent(c, "a", 1);   /* the prefix before the NUL is another key */
    assert_absent(c, "a\r", 2); /* and so is a prefix of the CRLF key */
    static const unsigned char bin_val[] = {0, 1, 2, 255, '\r', '\n', 0};
    cr_assert_eq(tc_set(c, S("bin"), bin_val, sizeof bin_val, 0), TC_OK);
    assert_value(c, S("bin"), bin_val, sizeof bin_val);
    tc_close(c);
}

Test(api, longest_key_and_empty_value) {
    tc_cache_t *c = open_local();
    char *key = malloc(TC_MAX_KEY_LEN + 1);
    cr_assert_not_null(key);
    memset(key, 'k', TC_MAX_KEY_LEN + 1);
    cr_assert_eq(tc_set(c, key, TC_MAX_KEY_LEN, S("long"), 0), TC_OK);
    assert_value(c, key, TC_MAX_KEY_LEN, S("long"));
    key[TC_MAX_KEY_LEN - 1] = 'j';
    assert_absent(c, key, TC_MAX_KEY_LEN);
    free(key);

    cr_assert_eq(tc_set(c, S("empty"), NULL, 0, 0), TC_OK, "NULL with length 0 is empty");
    assert_value(c, S("empty"), "", 0);
    cr_assert_eq(tc_set(c, S("empty2"), "", 0, 0), TC_OK);
    tc_ref_t *r;
    cr_assert_eq(tc_get(c, S("empty2"), &r), TC_OK);
    cr_assert_eq(tc_ref_size(r), 0);
    tc_ref_release(r);
    size_t len = 0;
    cr_assert_eq(tc_get_copy(c, S("empty"), NULL, &len), TC_OK);
    cr_assert_eq(len, 0);
    tc_close(c);
}

Test(api, get_copy_sizes) {
    tc_cache_t *c = open_local();
    cr_assert_eq(tc_set(c, S("k"), S("0123456789"), 0), TC_OK);
    char buf[32];
    memset(buf, '#', sizeof buf);
    size_t len = 4;
    cr_assert_eq(tc_get_copy(c, S("k"), buf, &len), TC_ENOSPC);
    cr_assert_eq(len, 10, "ENOSPC reports the needed size");
    for (size_t i = 0; i < sizeof buf; i++)
        cr_assert_eq(buf[i], '#', "ENOSPC copied something (byte %zu)", i);
    len = 0;
    cr_assert_eq(tc_get_copy(c, S("k"), NULL, &len), TC_ENOSPC, "asking for the size");
    cr_assert_eq(len, 10);
    len = 10;
    cr_assert_eq(tc_get_copy(c, S("k"), buf, &len), TC_OK);
    cr_assert_eq(len, 10);
    cr_assert_eq(memcmp(buf, "0123456789", 10), 0);
    cr_assert_eq(buf[10], '#', "copied past the value");
    len = sizeof buf;
    cr_assert_eq(tc_get_copy(c, S("k"), buf, &len), TC_OK);
    cr_assert_eq(len, 10, "*len becomes the value's size");
    len = sizeof buf;
    cr_assert_eq(tc_get_copy(c, S("missing"), buf, &len), TC_ENOTFOUND);
    tc_close(c);
}

Test(api, ref_outlives_overwrite_delete_and_close) {
    tc_cache_t *c = open_local();
    cr_assert_eq(tc_set(c, S("k"), S("first"), 0), TC_OK);
    tc_ref_t *r;
    cr_assert_eq(tc_get(c, S("k"), &r), TC_OK);
    cr_assert_eq(tc_set(c, S("k"), S("second"), 0), TC_OK);
    cr_assert_eq(memcmp(tc_ref_data(r), "first", 5), 0);
    cr_assert_eq(tc_del(c, S("k")), TC_OK);
    tc_close(c);
    cr_assert_eq(tc_ref_size(r), 5);
    cr_assert_eq(memcmp(tc_ref_data(r), "first", 5), 0);
    tc_ref_release(r);
    tc_ref_release(NULL);
}

/* ---- bad input ---- */

Test(api, bad_input_get) {
    tc_cache_t *c = open_local();
    tc_ref_t *r = (tc_ref_t *)(uintptr_t)1;
    cr_assert_eq(tc_get(NULL, S("k"), &r), TC_EINVAL);
    cr_assert_null(r);
    r = (tc_ref_t *)(uintptr_t)1;
    cr_assert_eq(tc_get(c, NULL, 1, &r), TC_EINVAL);
    cr_assert_null(r);
    cr_assert_eq(tc_get(c, S("k"), NULL), TC_EINVAL);
    cr_assert_eq(tc_get(c, "k", 0, &r), TC_EKEYLEN);
    cr_assert_null(r);
    static char big[TC_MAX_KEY_LEN + 1];
    cr_assert_eq(tc_get(c, big, sizeof big, &r), TC_EKEYLEN);
    cr_assert_eq(tc_get(c, big, SIZE_MAX, &r), TC_EKEYLEN);
    tc_close(c);
}

Test(api, bad_input_get_copy) {
    tc_cache_t *c = open_local();
    cr_assert_eq(tc_set(c, S("k"), S("v"), 0), TC_OK);
    char buf[8];
    size_t len = sizeof buf;
    cr_assert_eq(tc_get_copy(NULL, S("k"), buf, &len), TC_EINVAL);
    cr_assert_eq(tc_get_copy(c, NULL, 1, buf, &len), TC_EINVAL);
    cr_assert_eq(tc_get_copy(c, S("k"), buf, NULL), TC_EINVAL);
    len = sizeof buf;
    cr_assert_eq(tc_get_copy(c, S("k"), NULL, &len), TC_EINVAL, "NULL buf with room");
    len = sizeof buf;
    cr_assert_eq(tc_get_copy(c, "k", 0, buf, &len), TC_EKEYLEN);
    static char big[TC_MAX_KEY_LEN + 1];
    cr_assert_eq(tc_get_copy(c, big, sizeof big, buf, &len), TC_EKEYLEN);
    tc_close(c);
}

Test(api, bad_input_set_del) {
    tc_config_t cfg = local_cfg();
    cfg.max_value_bytes = 1000;
    tc_cache_t *c = open_cfg(&cfg);
    static char val[1001], big[TC_MAX_KEY_LEN + 1];
    cr_assert_eq(tc_set(NULL, S("k"), S("v"), 0), TC_EINVAL);
    cr_assert_eq(tc_set(c, NULL, 1, S("v"), 0), TC_EINVAL);
    cr_assert_eq(tc_set(c, "k", 0, S("v"), 0), TC_EKEYLEN);
    cr_assert_eq(tc_set(c, big, sizeof big, S("v"), 0), TC_EKEYLEN);
    cr_assert_eq(tc_set(c, S("k"), NULL, 1, 0), TC_EINVAL, "value NULL with vlen > 0");
    cr_assert_eq(tc_set(c, S("k"), val, 1001, 0), TC_ETOOBIG);
    cr_assert_eq(tc_set(c, S("k"), val, SIZE_MAX, 0), TC_ETOOBIG);
    assert_absent(c, S("k"));
    cr_assert_eq(tc_set(c, S("k"), val, 1000, 0), TC_OK, "exactly max_value_bytes");
    cr_assert_eq(tc_set(c, S("k"), val, 1001, 0), TC_ETOOBIG);
    assert_value(c, S("k"), val, 1000); /* a refused write changes nothing */
    cr_assert_eq(tc_del(NULL, S("k")), TC_EINVAL);
    cr_assert_eq(tc_del(c, NULL, 1), TC_EINVAL);
    cr_assert_eq(tc_del(c, "k", 0), TC_EKEYLEN);
    cr_assert_eq(tc_del(c, big, sizeof big), TC_EKEYLEN);
    assert_value(c, S("k"), val, 1000);
    tc_close(c);
}

Test(api, bad_input_fetch_and_loader_helpers) {
    tc_cache_t *c = open_local();
    load_ctx_t x = {.cache = c, .val = "v", .vlen = 1};
    tc_ref_t *r = (tc_ref_t *)(uintptr_t)1;
    cr_assert_eq(tc_fetch(NULL, S("k"), loader, &x, &r), TC_EINVAL);
    cr_assert_null(r);
    cr_assert_eq(tc_fetch(c, NULL, 1, loader, &x, &r), TC_EINVAL);
    cr_assert_eq(tc_fetch(c, S("k"), NULL, &x, &r), TC_EINVAL, "loader NULL");
    cr_assert_null(r);
    cr_assert_eq(tc_fetch(c, S("k"), loader, &x, NULL), TC_EINVAL);
    cr_assert_eq(tc_fetch(c, "k", 0, loader, &x, &r), TC_EKEYLEN);
    static char big[TC_MAX_KEY_LEN + 1];
    cr_assert_eq(tc_fetch(c, big, sizeof big, loader, &x, &r), TC_EKEYLEN);
    cr_assert_eq(atomic_load(&x.calls), 0, "the loader ran for a bad call");
    cr_assert_eq(tc_load_set_value(NULL, "v", 1), TC_EINVAL);
    cr_assert_eq(tc_load_set_ttl(NULL, 5), TC_EINVAL);
    tc_stats_t s;
    cr_assert_eq(tc_stats(NULL, &s), TC_EINVAL);
    cr_assert_eq(tc_stats(c, NULL), TC_EINVAL);
    tc_close(c);
    tc_close(NULL);
}

/* ---- tc_open ---- */

static void expect_open_fails(const tc_config_t *cfg, int code, const char *field) {
    tc_cache_t *c = (tc_cache_t *)(uintptr_t)1;
    tc_error_t err = {.code = 0, .msg = ""};
    int rc = tc_open(cfg, &c, &err);
    cr_assert_eq(rc, code, "%s: got %s", field, tc_err_name(rc));
    cr_assert_null(c, "%s: *out must be NULL after a failed tc_open", field);
    cr_assert_eq(err.code, code);
    cr_assert(strstr(err.msg, field) != NULL, "message '%s' does not name '%s'", err.msg,
              field);
    c = (tc_cache_t *)(uintptr_t)1;
    cr_assert_eq(tc_open(cfg, &c, NULL), code, "%s: err NULL changed the result", field);
    cr_assert_null(c);
}

Test(api, open_bad_arguments_and_configs) {
    tc_config_t cfg;
    tc_cache_t *c = (tc_cache_t *)(uintptr_t)1;
    tc_error_t err = {.code = 0, .msg = ""};
    cr_assert_eq(tc_open(NULL, &c, &err), TC_EINVAL);
    cr_assert_null(c);
    cr_assert_eq(err.code, TC_EINVAL);
    cr_assert_neq(err.msg[0], '\0', "no message for cfg NULL");
    tc_config_init(&cfg);
    cr_assert_eq(tc_open(&cfg, NULL, &err), TC_EINVAL);

    tc_config_init(&cfg);
    cfg.l1_shards = 3;
    expect_open_fails(&cfg, TC_ECONFIG, "l1_shards");
    tc_config_init(&cfg);
    cfg.ttl_jitter = 0.51;
    expect_open_fails(&cfg, TC_ECONFIG, "ttl_jitter");
    tc_config_init(&cfg);
    cfg.ttl_jitter = -0.1;
    expect_open_fails(&cfg, TC_ECONFIG, "ttl_jitter");
    tc_config_init(&cfg);
    cfg.default_ttl_ms = 0;
    expect_open_fails(&cfg, TC_ECONFIG, "default_ttl_ms");
    tc_config_init(&cfg);
    cfg.max_value_bytes = 0;
    expect_open_fails(&cfg, TC_ECONFIG, "max_value_bytes");
    tc_config_init(&cfg);
    cfg.max_value_bytes = (size_t)512 << 20;
    expect_open_fails(&cfg, TC_ECONFIG, "max_value_bytes");
    tc_config_init(&cfg);
    cfg.key_prefix = NULL;
    expect_open_fails(&cfg, TC_ECONFIG, "key_prefix");
    tc_config_init(&cfg);
    cfg.inval_channel = "";
    expect_open_fails(&cfg, TC_ECONFIG, "inval_channel");
    tc_config_init(&cfg);
    cfg.redis_url = "http://localhost:6379";
    expect_open_fails(&cfg, TC_ECONFIG, "redis_url");
}

Test(api, open_copies_config_strings) {
    tc_config_t cfg = local_cfg();
    char prefix[8] = "pfx:";
    cfg.key_prefix = prefix;
    tc_cache_t *c = open_cfg(&cfg);
    memset(prefix, 0, sizeof prefix); /* the caller's string may die after tc_open */
    cr_assert_eq(tc_set(c, S("k"), S("v"), 0), TC_OK);
    assert_value(c, S("k"), S("v"));
    tc_close(c);
}

/* ---- fetch ---- */

Test(api, fetch_loads_once_then_hits) {
    tc_cache_t *c = open_local();
    load_ctx_t x = {.cache = c, .val = "loaded", .vlen = 6};
    tc_ref_t *r;
    cr_assert_eq(fetch(c, S("k"), &x, &r), TC_OK);
    cr_assert_eq(tc_ref_size(r), 6);
    cr_assert_eq(memcmp(tc_ref_data(r), "loaded", 6), 0);
    tc_ref_release(r);
    cr_assert_eq(x.set_rc, TC_OK);
    cr_assert_eq(fetch(c, S("k"), &x, &r), TC_OK);
    tc_ref_release(r);
    cr_assert_eq(atomic_load(&x.calls), 1, "the second fetch should hit L1");
    assert_value(c, S("k"), S("loaded")); /* it is a plain L1 entry now */
    tc_stats_t s = stats(c);
    cr_assert_eq(s.loads, 1);
    cr_assert_eq(s.load_errors, 0);
    tc_close(c);
}

Test(api, fetch_loader_outcomes) {
    tc_cache_t *c = open_local();
    tc_ref_t *r;
    load_ctx_t notfound = {.cache = c, .rc = TC_ENOTFOUND};
    cr_assert_eq(fetch(c, S("a"), &notfound, &r), TC_ENOTFOUND);
    load_ctx_t novalue = {.cache = c, .rc = 0};
    cr_assert_eq(fetch(c, S("b"), &novalue, &r), TC_ELOADER, "0 without a value");
    load_ctx_t positive = {.cache = c, .val = "v", .vlen = 1, .rc = 7};
    cr_assert_eq(fetch(c, S("c"), &positive, &r), TC_ELOADER, "positive return");
    load_ctx_t failed = {.cache = c, .val = "v", .vlen = 1, .rc = TC_ETIMEDOUT};
    cr_assert_eq(fetch(c, S("d"), &failed, &r), TC_ETIMEDOUT, "errors pass through");
    assert_absent(c, S("a"));
    assert_absent(c, S("b"));
    assert_absent(c, S("c"));
    assert_absent(c, S("d")); /* a value set before a failure is not cached */
    tc_stats_t s = stats(c);
    cr_assert_eq(s.loads, 4);
    cr_assert_eq(s.load_errors, 3, "ENOTFOUND is an answer, the other three are failures");
    cr_assert_eq(s.l1_entries, 0);
    /* A failure is not remembered: the next fetch loads again. */
    load_ctx_t ok = {.cache = c, .val = "v", .vlen = 1};
    cr_assert_eq(fetch(c, S("d"), &ok, &r), TC_OK);
    tc_ref_release(r);
    tc_close(c);
}

Test(api, loader_set_value_checks_and_replaces) {
    tc_config_t cfg = local_cfg();
    cfg.max_value_bytes = 100;
    tc_cache_t *c = open_cfg(&cfg);
    static char big[101];
    tc_ref_t *r;
    load_ctx_t toobig = {.cache = c, .val = big, .vlen = 101};
    cr_assert_eq(fetch(c, S("a"), &toobig, &r), TC_ELOADER, "no value was set");
    cr_assert_eq(toobig.set_rc, TC_ETOOBIG);
    load_ctx_t nullval = {.cache = c, .val = NULL, .vlen = 5};
    cr_assert_eq(fetch(c, S("b"), &nullval, &r), TC_ELOADER);
    tc_close(c);
}

static int loader_twice(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)key;
    (void)klen;
    int *rcs = arg;
    rcs[0] = tc_load_set_value(load, "first", 5);
    rcs[1] = tc_load_set_value(load, NULL, 3);
    rcs[2] = tc_load_set_value(load, "second!", 7);
    rcs[3] = tc_load_set_value(load, NULL, 0); /* empty is a value too */
    rcs[4] = tc_load_set_value(load, "third", 5);
    return 0;
}

Test(api, loader_may_replace_its_value) {
    tc_cache_t *c = open_local();
    int rcs[5];
    tc_ref_t *r;
    cr_assert_eq(tc_fetch(c, S("k"), loader_twice, rcs, &r), TC_OK);
    cr_assert_eq(rcs[0], TC_OK);
    cr_assert_eq(rcs[1], TC_EINVAL);
    cr_assert_eq(rcs[2], TC_OK);
    cr_assert_eq(rcs[3], TC_OK);
    cr_assert_eq(rcs[4], TC_OK);
    cr_assert_eq(tc_ref_size(r), 5);
    cr_assert_eq(memcmp(tc_ref_data(r), "third", 5), 0);
    tc_ref_release(r);
    tc_close(c);
}

Test(api, fetch_ttl_from_loader) {
    tc_cache_t *c = open_local();
    load_ctx_t x = {.cache = c, .val = "v", .vlen = 1, .ttl = 40};
    tc_ref_t *r;
    cr_assert_eq(fetch(c, S("k"), &x, &r), TC_OK);
    tc_ref_release(r);
    sleep_ms(150);
    cr_assert_eq(fetch(c, S("k"), &x, &r), TC_OK);
    tc_ref_release(r);
    cr_assert_eq(atomic_load(&x.calls), 2, "the loader's 40 ms TTL was not applied");
    cr_assert_geq(stats(c).l1_expirations, 1);
    tc_close(c);
}

/* A write during the load makes the loaded value stale: serve it, keep the write. */
Test(api, write_during_load_wins) {
    tc_cache_t *c = open_local();
    load_ctx_t x = {.cache = c, .val = "loaded", .vlen = 6, .write = "written"};
    tc_ref_t *r;
    cr_assert_eq(fetch(c, S("k"), &x, &r), TC_OK);
    tc_ref_release(r);
    assert_value(c, S("k"), S("written"));
    load_ctx_t y = {.cache = c, .val = "loaded", .vlen = 6, .del = 1};
    cr_assert_eq(fetch(c, S("j"), &y, &r), TC_OK);
    cr_assert_eq(memcmp(tc_ref_data(r), "loaded", 6), 0, "the loader's value is served");
    tc_ref_release(r);
    assert_absent(c, S("j")); /* ... but a delete during the load means it is not kept */
    load_ctx_t z = {
        .cache = c, .val = "loaded", .vlen = 6, .write = "written", .write_many = 1};
    cr_assert_eq(fetch(c, S("m"), &z, &r), TC_OK);
    tc_ref_release(r);
    assert_value(c, S("m"), S("written")); /* tc_mset supersedes the load as tc_set does */
    tc_close(c);
}

/* Without Redis tc_mset writes each item as tc_set would (src/bulk.c mset_local): each bad
 * item gets its own code, the first one is the call's, and the good ones are kept. */
Test(api, mset_without_redis_answers_each_item) {
    tc_config_t cfg = local_cfg();
    cfg.max_value_bytes = 1024;
    tc_cache_t *c = open_cfg(&cfg);
    static char big[2000];
    memset(big, 'b', sizeof big);
    const tc_item_t items[] = {
        {"good0", 5, "v0", 2}, {"", 0, "x", 1},         {"big", 3, big, sizeof big},
        {NULL, 3, "x", 1},     {"nullval", 7, NULL, 5}, {"good5", 5, "v5", 2},
        {"empty", 5, NULL, 0},
    };
    enum { N = sizeof items / sizeof items[0] };
    const int want[N] = {0, TC_EKEYLEN, TC_ETOOBIG, TC_EINVAL, TC_EINVAL, 0, 0};
    int codes[N];
    cr_assert_eq(tc_mset(c, items, N, NULL, codes), TC_EKEYLEN, "the first failing code");
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(codes[i], want[i], "item %zu: %s, want %s", i, tc_err_name(codes[i]),
                     tc_err_name(want[i]));
    assert_value(c, S("good0"), S("v0"));
    assert_value(c, S("good5"), S("v5"));
    assert_value(c, S("empty"), "", 0);
    assert_absent(c, S("big"));
    assert_absent(c, S("nullval"));
    cr_assert_eq(tc_mset(c, items, N, NULL, NULL), TC_EKEYLEN, "codes may be NULL");
    tc_close(c);
}

/* Without Redis a write of the same size reuses the key's entry when no caller holds it
 * (l1.c rewrite_locked), through tc_set and tc_mset alike; a held one is never changed. A
 * reference is the entry itself, so the pointers show which happened. */
Test(api, same_size_writes_reuse_an_entry_nobody_holds) {
    tc_cache_t *c = open_local();
    tc_ref_t *r1, *r2, *r3, *r4;
    cr_assert_eq(tc_set(c, S("k"), S("first"), 0), TC_OK);
    cr_assert_eq(tc_get(c, S("k"), &r1), TC_OK);
    tc_ref_release(r1);
    cr_assert_eq(tc_set(c, S("k"), S("other"), 0), TC_OK);
    cr_assert_eq(tc_get(c, S("k"), &r2), TC_OK);
    cr_assert_eq(r2, r1, "tc_set replaced an entry nobody held");
    cr_assert_eq(memcmp(tc_ref_data(r2), "other", 5), 0);
    /* r2 is held now. */
    tc_item_t item = {.key = "k", .klen = 1, .value = "third", .vlen = 5};
    cr_assert_eq(tc_mset(c, &item, 1, NULL, NULL), TC_OK);
    cr_assert_eq(tc_get(c, S("k"), &r3), TC_OK);
    cr_assert_neq(r3, r2, "tc_mset rewrote an entry a caller holds");
    cr_assert_eq(memcmp(tc_ref_data(r2), "other", 5), 0, "a held value changed");
    cr_assert_eq(memcmp(tc_ref_data(r3), "third", 5), 0);
    tc_ref_release(r2);
    tc_ref_release(r3);
    item.value = "forth";
    cr_assert_eq(tc_mset(c, &item, 1, NULL, NULL), TC_OK);
    cr_assert_eq(tc_get(c, S("k"), &r4), TC_OK);
    cr_assert_eq(r4, r3, "tc_mset replaced an entry nobody held");
    cr_assert_eq(memcmp(tc_ref_data(r4), "forth", 5), 0);
    tc_ref_release(r4);
    tc_close(c);
}

/* ---- TTL and expiry ---- */

Test(api, set_ttl_expires) {
    tc_cache_t *c = open_local();
    cr_assert_eq(tc_set(c, S("short"), S("v"), 50), TC_OK);
    cr_assert_eq(tc_set(c, S("long"), S("v"), 600000), TC_OK);
    sleep_ms(150); /* 50 ms + 10% jitter + clock tick, with room to spare */
    assert_absent(c, S("short"));
    assert_value(c, S("long"), S("v"));
    cr_assert_eq(stats(c).l1_expirations, 1);
    tc_close(c);
}

/* ---- small or zero L1 ---- */

static void *fetch_thread(void *arg) {
    load_ctx_t *x = arg;
    tc_ref_t *r = NULL;
    intptr_t ok = tc_fetch(x->cache, S("hot"), loader, x, &r) == TC_OK && r &&
                  tc_ref_size(r) == x->vlen && memcmp(tc_ref_data(r), x->val, x->vlen) == 0;
    tc_ref_release(r);
    return (void *)ok;
}

Test(api, zero_budget_keeps_nothing_but_fetch_works) {
    tc_config_t cfg = local_cfg();
    cfg.l1_max_bytes = 0;
    tc_cache_t *c = open_cfg(&cfg);
    cr_assert_eq(tc_set(c, S("k"), S("v"), 0), TC_OK);
    assert_absent(c, S("k"));
    load_ctx_t x = {.cache = c, .val = "value", .vlen = 5};
    tc_ref_t *r;
    cr_assert_eq(fetch(c, S("k"), &x, &r), TC_OK);
    cr_assert_eq(memcmp(tc_ref_data(r), "value", 5), 0);
    tc_ref_release(r);
    cr_assert_eq(fetch(c, S("k"), &x, &r), TC_OK);
    tc_ref_release(r);
    cr_assert_eq(atomic_load(&x.calls), 2, "nothing is kept, so each fetch loads");
    tc_stats_t s = stats(c);
    cr_assert_eq(s.l1_entries, 0);
    cr_assert_eq(s.l1_bytes, 0);
    cr_assert_eq(s.l1_max_bytes, 0);

    /* Concurrent misses still share one load. */
    enum { N = 8 };
    load_ctx_t y = {.cache = c, .val = "shared", .vlen = 6, .wait_for = N - 1};
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, fetch_thread, &y), 0);
    int good = 0;
    for (int i = 0; i < N; i++) {
        void *ok;
        pthread_join(t[i], &ok);
        good += ok != NULL;
    }
    cr_assert_eq(good, N, "every caller gets the shared value");
    cr_assert_eq(atomic_load(&y.calls), 1, "single-flight without an L1 budget");
    cr_assert_eq(stats(c).singleflight_waits, N - 1);
    tc_close(c);
}

Test(api, value_over_l1_max_value_is_served_not_kept) {
    tc_config_t cfg = local_cfg();
    cfg.l1_max_value_bytes = 100;
    tc_cache_t *c = open_cfg(&cfg);
    static char val[101];
    memset(val, 'v', sizeof val);
    cr_assert_eq(tc_set(c, S("k"), val, 100, 0), TC_OK);
    assert_value(c, S("k"), val, 100);
    cr_assert_eq(tc_set(c, S("k"), val, 101, 0), TC_OK);
    assert_absent(c, S("k")); /* and the older, smaller value is gone too */
    load_ctx_t x = {.cache = c, .val = val, .vlen = 101};
    tc_ref_t *r;
    cr_assert_eq(fetch(c, S("j"), &x, &r), TC_OK);
    cr_assert_eq(tc_ref_size(r), 101);
    tc_ref_release(r);
    cr_assert_eq(fetch(c, S("j"), &x, &r), TC_OK);
    tc_ref_release(r);
    cr_assert_eq(atomic_load(&x.calls), 2);
    tc_close(c);
}

/* ---- stats ---- */

Test(api, stats_counters_move) {
    tc_config_t cfg = local_cfg();
    cfg.l1_shards = 1;
    cfg.l1_max_entries = 4;
    tc_cache_t *c = open_cfg(&cfg);
    tc_stats_t s = stats(c);
    cr_assert_eq(s.l1_hits + s.l1_misses + s.loads + s.load_errors + s.l1_evictions, 0);
    cr_assert_eq(s.l1_max_bytes, cfg.l1_max_bytes);
    cr_assert_eq(s.listener_connected, 0);
    cr_assert_eq(s.inval_published, 0, "L1-only mode publishes nothing");

    assert_absent(c, S("a")); /* miss */
    cr_assert_eq(tc_set(c, S("a"), S("1"), 0), TC_OK);
    assert_value(c, S("a"), S("1")); /* hit */
    assert_value(c, S("a"), S("1")); /* hit */
    s = stats(c);
    cr_assert_eq(s.l1_misses, 1);
    cr_assert_eq(s.l1_hits, 2);
    cr_assert_eq(s.l1_entries, 1);
    cr_assert_gt(s.l1_bytes, 0);

    load_ctx_t x = {.cache = c, .val = "L", .vlen = 1};
    tc_ref_t *r;
    cr_assert_eq(fetch(c, S("b"), &x, &r), TC_OK); /* miss + load */
    tc_ref_release(r);
    cr_assert_eq(fetch(c, S("b"), &x, &r), TC_OK); /* hit */
    tc_ref_release(r);
    load_ctx_t bad = {.cache = c, .rc = TC_EINTERNAL};
    cr_assert_eq(fetch(c, S("e"), &bad, &r), TC_EINTERNAL); /* miss + load error */
    s = stats(c);
    cr_assert_eq(s.l1_misses, 3);
    cr_assert_eq(s.l1_hits, 3);
    cr_assert_eq(s.loads, 2);
    cr_assert_eq(s.load_errors, 1);
    cr_assert_eq(s.l1_evictions, 0);

    for (int i = 0; i < 6; i++) {
        char k[16];
        snprintf(k, sizeof k, "x%d", i);
        cr_assert_eq(tc_set(c, k, strlen(k), S("v"), 0), TC_OK);
    }
    s = stats(c);
    cr_assert_eq(s.l1_entries, 4);
    cr_assert_eq(s.l1_evictions, 4, "a, b and x0, x1 were pushed out");
    uint64_t bytes = s.l1_bytes;
    cr_assert_eq(tc_del(c, S("x5")), TC_OK);
    s = stats(c);
    cr_assert_eq(s.l1_entries, 3);
    cr_assert_lt(s.l1_bytes, bytes);
    cr_assert_eq(s.l1_evictions, 4, "a delete is not an eviction");
    tc_close(c);
}

/* The default shard count keeps every shard an LRU worth the name: at least 64 entries
 * each (l1_max_entries, or l1_max_bytes at 1 KiB an entry), at most 16 per CPU; an explicit
 * l1_shards is taken as given. Without the rule a 300-entry cache got 16 shards per CPU
 * of fewer than 10 entries, and missed up to 2 points more than one LRU (bench replay). */
/* Without Redis a set or delete only touches L1 and is timed as a hit is, one call in 64 on
 * each thread, on a counter of its own: 640 of each are exactly 10 samples (timed every
 * time they would be 640), and a get hit after every set still gets its own 10 (on the
 * hits' counter every 64th call would be a set, and no hit would be timed). */
Test(api, l1_only_writes_are_timed_one_in_64) {
    tc_cache_t *c = open_local();
    tc_latency_t set, del, hit;
    for (int i = 0; i < 640; i++) {
        cr_assert_eq(tc_set(c, S("k"), S("v"), 0), 0);
        tc_ref_t *ref = NULL;
        cr_assert_eq(tc_get(c, S("k"), &ref), 0);
        tc_ref_release(ref);
    }
    cr_assert_eq(tc_latency(c, TC_LAT_SET, &set), 0);
    cr_assert_eq(tc_latency(c, TC_LAT_GET_HIT, &hit), 0);
    for (int i = 0; i < 640; i++)
        cr_assert_eq(tc_del(c, S("k")), 0);
    cr_assert_eq(tc_latency(c, TC_LAT_DEL, &del), 0);
    cr_assert_eq(set.count, 10, "%llu of 640 L1-only sets timed",
                 (unsigned long long)set.count);
    cr_assert_eq(hit.count, 10, "%llu of 640 hits timed", (unsigned long long)hit.count);
    cr_assert_eq(del.count, 10, "%llu of 640 L1-only deletes timed",
                 (unsigned long long)del.count);
    uint64_t sum = 0;
    for (int i = 0; i < TC_LATENCY_BUCKETS; i++)
        sum += set.buckets[i];
    cr_assert_eq(sum, 10, "buckets do not add up to the samples");
    tc_item_t item = {.key = "k", .klen = 1, .value = "v", .vlen = 1};
    int code;
    for (int i = 0; i < 64; i++) /* 64 calls on the same counter: one sample */
        cr_assert_eq(tc_mset(c, &item, 1, NULL, &code), 0);
    cr_assert_eq(tc_latency(c, TC_LAT_SET, &set), 0);
    cr_assert_eq(set.count, 11, "%llu: tc_mset is sampled as tc_set is",
                 (unsigned long long)set.count);
    tc_close(c);
}

Test(api, default_shards_keep_entries_per_shard) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned cpu_default = 16;
    while (cpu_default < 16u * (unsigned)(ncpu < 1 ? 1 : ncpu) && cpu_default < 1024)
        cpu_default <<= 1;
    struct {
        size_t max_bytes, max_entries, max_value;
        unsigned shards, want;
    } cases[] = {
        {64u << 20, 0, 1u << 20, 0, cpu_default < 32 ? cpu_default : 32}, /* 64 MiB: 65536 */
        {64u << 20, 300, 1024, 0, 4},   /* 300 entries: 4 shards of 75 */
        {64u << 20, 64, 1024, 0, 1},    /* one shard's worth */
        {64u << 20, 63, 1024, 0, 1},    /* fewer: still one */
        {256u << 10, 0, 1024, 0, 4},    /* 256 KiB = 256 nominal entries */
        {64u << 20, 300, 1024, 16, 16}, /* explicit: as given */
        {4u << 20, 0, 1u << 20, 0, 2},  /* large values: 2 MiB per shard */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tc_config_t cfg = local_cfg();
        cfg.l1_max_bytes = cases[i].max_bytes;
        cfg.l1_max_entries = cases[i].max_entries;
        cfg.l1_max_value_bytes = cases[i].max_value;
        cfg.l1_shards = cases[i].shards;
        tc_cache_t *c = open_cfg(&cfg);
        unsigned want =
            cases[i].want > cpu_default && !cases[i].shards ? cpu_default : cases[i].want;
        cr_expect_eq(stats(c).l1_shards, want, "case %zu: %llu shards, expected %u", i,
                     (unsigned long long)stats(c).l1_shards, want);
        tc_close(c);
    }
}

/* l1_policy: S3-FIFO keeps keys read again and again through a scan of keys read once
 * (the default policy does not), through the public API, chosen in config or by the
 * environment. */
static int hot_after_scan(tc_cache_t *c) {
    char k[32];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 50; i++) {
            snprintf(k, sizeof k, "hot%d", i);
            cr_assert_eq(tc_set(c, k, strlen(k), "v", 1, 0), TC_OK);
            tc_ref_t *r = NULL;
            cr_assert_eq(tc_get(c, k, strlen(k), &r), TC_OK);
            tc_ref_release(r);
        }
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof k, "scan%d", i);
        cr_assert_eq(tc_set(c, k, strlen(k), "v", 1, 0), TC_OK);
    }
    int alive = 0;
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "hot%d", i);
        tc_ref_t *r = NULL;
        alive += tc_get(c, k, strlen(k), &r) == TC_OK;
        tc_ref_release(r);
    }
    return alive;
}

Test(api, l1_policy_s3fifo_resists_a_scan) {
    tc_config_t cfg = local_cfg();
    cfg.l1_shards = 1;
    cfg.l1_max_entries = 200;
    tc_cache_t *c = open_cfg(&cfg);
    int plain = hot_after_scan(c);
    tc_close(c);
    cfg.l1_policy = TC_L1_POLICY_S3FIFO;
    c = open_cfg(&cfg);
    int s3 = hot_after_scan(c);
    tc_stats_t st = stats(c);
    tc_close(c);
    cr_assert_eq(plain, 0, "setup: the default policy kept %d hot keys", plain);
    cr_assert_geq(s3, 45, "S3-FIFO kept only %d of 50 hot keys", s3);
    cr_assert_leq(st.l1_entries, 200);

    setenv("TCAPI_L1_POLICY", "s3fifo", 1);
    tc_config_t env = local_cfg();
    tc_error_t err;
    cr_assert_eq(tc_config_from_env(&env, "TCAPI_", &err), TC_OK, "%s", err.msg);
    unsetenv("TCAPI_L1_POLICY");
    env.l1_shards = 1;
    env.l1_max_entries = 200;
    c = open_cfg(&env);
    s3 = hot_after_scan(c);
    tc_close(c);
    cr_assert_geq(s3, 45, "TCAPI_L1_POLICY=s3fifo was not applied (%d kept)", s3);
}
