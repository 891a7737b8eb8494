/*
 * test_bulk.c - calls on many keys (tc_mget, tc_mset, tc_mdel, tc_mfetch with its batch
 * loader, tc_warm, tc_hot_keys) and per-call options (tc_opts_t with tc_set_opts,
 * tc_fetch_opts and the bulk calls: TTL, tags, TC_OPT_NO_L1).
 *
 * The contract under test is the header's: a bulk call answers each key with what the
 * single-key call would have answered, so the reads are compared with tc_get key by key,
 * and the writes are checked where they must land: raw Redis (the stored header decoded),
 * this process's L1 (stats: hits and misses per tier) and a tc-peer process's L1 (which
 * held the old value, proven by an L1 hit, before the write).
 *
 * Loads are counted outside the cache: batch loaders record every key they are given,
 * and across processes both sides INCR one counter key in Redis, so "loaded once in the
 * cluster" is a number, not an inference. Concurrent writers (mset against single-key
 * writes of another process) are judged with an oracle: the tc-peer `seqw` writer records
 * its last completed write per key in a shared file, this process knows its own; the value
 * everyone ends with must be one of the two last writes, and every process must agree.
 */
/* tc-test-labels: integration concurrency */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"
#include "valfmt.h"

#include <criterion/criterion.h>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define S(str)    str, sizeof(str) - 1
#define NOTICE_MS (500u * TC_TEST_SLOW)

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

TestSuite(bulk, .init = setup, .fini = teardown, .timeout = 180);

/* ---- caches ---- */

static void config(tc_config_t *cfg, const char *prefix) {
    tc_test_config(cfg, tc_test_redis_url(redis), prefix, NULL);
    cfg->command_timeout_ms = 2000; /* no fault here: a slow box must not fake one */
    cfg->ttl_jitter = 0;            /* TTLs are checked */
}

/* Open on the channel <key_prefix><suffix>. */
static tc_cache_t *open_cfg(tc_config_t *cfg, const char *suffix) {
    char chan[64];
    snprintf(chan, sizeof chan, "%s%s", cfg->key_prefix, suffix);
    cfg->inval_channel = chan;
    tc_cache_t *c = tc_test_open(cfg);
    cfg->inval_channel = NULL;
    return c;
}

static tc_cache_t *open_cache(const char *prefix) {
    tc_config_t cfg;
    config(&cfg, prefix);
    return open_cfg(&cfg, "inval");
}

/* Another cache deaf to the first one's messages (its own channel). */
static tc_cache_t *open_deaf(const char *prefix) {
    tc_config_t cfg;
    config(&cfg, prefix);
    return open_cfg(&cfg, "deaf");
}

/* L1 off: reads are Redis's answer. */
static tc_cache_t *open_direct(const char *prefix) {
    tc_config_t cfg;
    config(&cfg, prefix);
    cfg.l1_max_bytes = 0;
    return open_cfg(&cfg, "inval");
}

static const char *const PEER_ENV[] = {"TC_PEER_COMMAND_TIMEOUT=2000", NULL};

static tc_test_peer_t *start_peer(const char *prefix) {
    char chan[64];
    snprintf(chan, sizeof chan, "%sinval", prefix);
    return tc_test_peer_start(tc_test_redis_url(redis), prefix, chan, PEER_ENV);
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t st;
    cr_assert_eq(tc_stats(c, &st), 0);
    return st;
}

/* ---- this process's reads ---- */

/* Poll until c reads v (NULL: absent) within NOTICE_MS, then once more (it stays). */
static void wait_value(tc_cache_t *c, const void *k, size_t kl, const char *v,
                       const char *who) {
    tc_test_wait_value(c, k, kl, v, who, NOTICE_MS);
}

/* ---- raw Redis ---- */

static size_t data_key(const char *prefix, char kind, const void *k, size_t kl, char *out) {
    size_t pl = strlen(prefix);
    memcpy(out, prefix, pl);
    out[pl] = kind;
    out[pl + 1] = ':';
    memcpy(out + pl + 2, k, kl);
    return pl + 2 + kl;
}

/* The value Redis stores for k, decoded into buf ("" and 0 when absent or not ours). */
static int raw_value(const char *prefix, const void *k, size_t kl, char *buf, size_t cap) {
    char key[512];
    cr_assert_lt(kl, sizeof key - 64);
    size_t n = data_key(prefix, 'k', k, kl, key);
    redisReply *r = tc_test_redis_cmd(redis, "GET %b", key, n);
    tc__val_t v;
    int found = r->type == REDIS_REPLY_STRING && tc__val_decode(r->str, r->len, &v) == 0 &&
                !(v.flags & TC__VAL_FLAG_ABSENT) && v.len < cap;
    buf[0] = '\0';
    if (found) {
        memcpy(buf, v.data, v.len);
        buf[v.len] = '\0';
    }
    freeReplyObject(r);
    return found;
}

static int raw_exists(const char *prefix, char kind, const void *k, size_t kl) {
    char key[512];
    size_t n = data_key(prefix, kind, k, kl, key);
    redisReply *r = tc_test_redis_cmd(redis, "EXISTS %b", key, n);
    int e = r->integer == 1;
    freeReplyObject(r);
    return e;
}

static long long raw_pttl(const char *prefix, const void *k, size_t kl) {
    char key[512];
    size_t n = data_key(prefix, 'k', k, kl, key);
    redisReply *r = tc_test_redis_cmd(redis, "PTTL %b", key, n);
    long long t = r->integer;
    freeReplyObject(r);
    return t;
}

static void expect_pttl(const char *prefix, const char *k, long long ttl) {
    long long t = raw_pttl(prefix, k, strlen(k));
    /* (ttl - 1 s, ttl]: a slow box may take a while between the write and this read */
    cr_assert(t > ttl - 1000 && t <= ttl, "%s: PTTL %lld, want about %lld", k, t, ttl);
}

static long long counter_get(const char *counter) {
    redisReply *r = tc_test_redis_cmd(redis, "GET %s", counter);
    long long n = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    return n;
}

static long long counter_incr(const char *counter) {
    redisReply *r = tc_test_redis_cmd(redis, "INCR %s", counter);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* ---- peers ---- */

static const char *peer_get(tc_test_peer_t *p, const void *k, size_t kl) {
    char hk[1024];
    tc_test_hex(k, kl, hk);
    return tc_test_peer_cmd(p, "get %s", hk);
}

static int peer_reply_is(const char *reply, const char *v) {
    if (!v)
        return strcmp(reply, "miss") == 0;
    char want[600];
    tc_test_hex(v, strlen(v), want);
    return strncmp(reply, "val ", 4) == 0 && strcmp(reply + 4, want) == 0;
}

static uint64_t peer_stat(tc_test_peer_t *p, const char *name) {
    const char *line = tc_test_peer_cmd(p, "stats");
    uint64_t v = tc_test_stat(line, name);
    cr_assert_neq(v, UINT64_MAX, "no %s in '%s'", name, line);
    return v;
}

static void peer_wait(tc_test_peer_t *p, const void *k, size_t kl, const char *v) {
    uint64_t deadline = tc_test_now_ms() + NOTICE_MS;
    for (;;) {
        const char *r = peer_get(p, k, kl);
        if (peer_reply_is(r, v))
            return;
        cr_assert_lt(tc_test_now_ms(), deadline, "peer: '%.*s' reads '%s', want %s", (int)kl,
                     (const char *)k, r, v ? v : "a miss");
        tc_test_sleep_ms(2);
    }
}

static void peer_hold(tc_test_peer_t *p, const void *k, size_t kl, const char *v) {
    peer_wait(p, k, kl, v);
    uint64_t hits = peer_stat(p, "l1_hits");
    cr_assert(peer_reply_is(peer_get(p, k, kl), v));
    cr_assert_gt(peer_stat(p, "l1_hits"), hits, "'%.*s' is not in the peer's L1", (int)kl,
                 (const char *)k);
}

static void peer_set(tc_test_peer_t *p, const void *k, size_t kl, const char *v) {
    char hk[1024], hv[600];
    tc_test_hex(k, kl, hk);
    tc_test_hex(v, strlen(v), hv);
    cr_assert_str_eq(tc_test_peer_cmd(p, "set %s %s", hk, hv), "ok 0");
}

/* ---- refs ---- */

static int ref_is(const tc_ref_t *ref, const char *v) {
    return ref && tc_ref_size(ref) == strlen(v) && memcmp(tc_ref_data(ref), v, strlen(v)) == 0;
}

static void release_all(tc_ref_t **refs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        tc_ref_release(refs[i]);
        refs[i] = NULL;
    }
}

/* ---- a recording batch loader ---- */

#define REC_MAX 4096

typedef struct rec {
    pthread_mutex_t mu;
    int calls;
    size_t nkeys;
    char keys[REC_MAX][32];
    pthread_t caller;
    int wrong_thread;
    int ret; /* what the loader returns */
    /* per key name: what to do ("v:<value>", "t:<ttl>:<value>", "e:<code>", "" = unset) */
    const char *(*plan)(const char *key);
    const char *counter; /* optional: INCR per key given */
    unsigned sleep_ms;
} rec_t;

static void rec_init(rec_t *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->caller = pthread_self();
}

/* Forget what was recorded (the plan and options stay). */
static void rec_reset(rec_t *r) {
    pthread_mutex_lock(&r->mu);
    r->calls = 0;
    r->nkeys = 0;
    pthread_mutex_unlock(&r->mu);
}

static size_t rec_count(rec_t *r, const char *k) {
    size_t n = 0;
    for (size_t i = 0; i < r->nkeys; i++)
        n += strcmp(r->keys[i], k) == 0;
    return n;
}

static int rec_loader(void *arg, tc_batch_t *b) {
    rec_t *r = arg;
    size_t n = tc_batch_count(b);
    pthread_mutex_lock(&r->mu);
    r->calls++;
    if (!pthread_equal(pthread_self(), r->caller))
        r->wrong_thread++;
    for (size_t i = 0; i < n && r->nkeys < REC_MAX; i++) {
        size_t kl = 0;
        const char *k = tc_batch_key(b, i, &kl);
        snprintf(r->keys[r->nkeys++], sizeof r->keys[0], "%.*s", (int)kl, k);
    }
    pthread_mutex_unlock(&r->mu);
    if (r->sleep_ms)
        tc_test_sleep_ms(r->sleep_ms);
    for (size_t i = 0; i < n; i++) {
        size_t kl = 0;
        const char *k = tc_batch_key(b, i, &kl);
        char key[64], v[96];
        snprintf(key, sizeof key, "%.*s", (int)kl, k);
        if (r->counter)
            counter_incr(r->counter);
        const char *what = r->plan ? r->plan(key) : NULL;
        if (!what) {
            snprintf(v, sizeof v, "L-%s", key);
            tc_batch_set_value(b, i, v, strlen(v));
        } else if (what[0] == 'v') {
            tc_batch_set_value(b, i, what + 2, strlen(what + 2));
        } else if (what[0] == 't') {
            char *end = NULL;
            unsigned long long ttl = strtoull(what + 2, &end, 10);
            tc_batch_set_value(b, i, end + 1, strlen(end + 1));
            tc_batch_set_ttl(b, i, ttl);
        } else if (what[0] == 'e') {
            tc_batch_set_error(b, i, atoi(what + 2));
        }
    }
    return r->ret;
}

static tc_buf_t *bufs_of(const char *const *names, size_t n) {
    tc_buf_t *b = calloc(n, sizeof *b);
    cr_assert_not_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (tc_buf_t){names[i], strlen(names[i])};
    return b;
}

static int load_fixed(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)key;
    (void)klen;
    return tc_load_set_value(load, arg, strlen(arg));
}

/* ============================== mget ============================== */

#define GPFX "t:mget:"

/* L1 hits, Redis hits, misses, duplicates, binary keys, an empty value and bad keys in one
 * call: every result is what tc_get answers for that key. */
Test(bulk, mget_answers_as_tc_get_per_key) {
    tc_cache_t *c = open_cache(GPFX);
    tc_test_peer_t *p = start_peer(GPFX);
    cr_assert_eq(tc_set(c, S("l1a"), S("A"), 0), 0);
    cr_assert_eq(tc_set(c, S("l1b"), S("B"), 0), 0);
    cr_assert_eq(tc_set(c, S("empty"), "", 0, 0), 0);
    peer_set(p, S("r1"), "R1");
    peer_set(p, S("r2"), "R2");
    peer_set(p, S("b\0\r\n"), "BIN");
    static char big[TC_MAX_KEY_LEN + 1];
    memset(big, 'k', sizeof big);
    const tc_buf_t keys[] = {
        {"l1a", 3},
        {"r1", 2},
        {"miss1", 5},
        {"b\0\r\n", 4},
        {"l1b", 3},
        {"empty", 5},
        {"r2", 2},
        {"l1a", 3},
        {"r1", 2},
        {"miss1", 5},
        {"", 0},
        {NULL, 3},
        {big, TC_MAX_KEY_LEN + 1},
        {"miss2", 5},
        {"r1", 2},
        {"b\0\r", 3},
    };
    enum { N = sizeof keys / sizeof keys[0] };
    tc_ref_t *refs[N];
    int codes[N];
    for (size_t i = 0; i < N; i++) {
        refs[i] = (tc_ref_t *)&refs; /* garbage: the call must set every one */
        codes[i] = 12345;
    }
    uint64_t entries = stats(c).l1_entries;
    cr_assert_eq(tc_mget(c, keys, N, refs, codes), 0);
    cr_assert_eq(stats(c).l1_entries, entries + 3, "r1, r2 and the binary key fill L1");
    tc_stats_t s0 = stats(c);
    tc_test_expect_value(c, S("r1"), "R1", "this process");
    tc_test_expect_value(c, S("r2"), "R2", "this process");
    tc_test_expect_value(c, S("b\0\r\n"), "BIN", "this process");
    tc_stats_t s1 = stats(c);
    cr_assert_eq(s1.l1_hits - s0.l1_hits, 3, "what mget read from Redis is not in L1");
    cr_assert_eq(s1.l2_hits + s1.l2_misses, s0.l2_hits + s0.l2_misses);
    for (size_t i = 0; i < N; i++) {
        tc_ref_t *one = NULL;
        int rc = tc_get(c, keys[i].data, keys[i].len, &one);
        cr_assert_eq(codes[i], rc, "key %zu: mget says %s, tc_get %s", i, tc_err_name(codes[i]),
                     tc_err_name(rc));
        if (rc == 0) {
            cr_assert_not_null(refs[i]);
            cr_assert(tc_ref_size(refs[i]) == tc_ref_size(one) &&
                          memcmp(tc_ref_data(refs[i]), tc_ref_data(one), tc_ref_size(one)) == 0,
                      "key %zu: mget's value differs from tc_get's", i);
        } else {
            cr_assert_null(refs[i], "key %zu: a ref without a value", i);
        }
        tc_ref_release(one);
    }
    cr_assert(ref_is(refs[0], "A") && ref_is(refs[1], "R1") && ref_is(refs[3], "BIN") &&
              ref_is(refs[5], "") && ref_is(refs[7], "A") && ref_is(refs[14], "R1"));
    cr_assert_eq(codes[2], TC_ENOTFOUND);
    cr_assert_eq(codes[10], TC_EKEYLEN);
    cr_assert_eq(codes[11], TC_EINVAL);
    cr_assert_eq(codes[12], TC_EKEYLEN);
    cr_assert_eq(codes[15], TC_ENOTFOUND);
    /* The refs outlive an invalidation of what they point to. */
    peer_set(p, S("r1"), "R1-new");
    wait_value(c, S("r1"), "R1-new", "this process");
    cr_assert(ref_is(refs[1], "R1") && ref_is(refs[8], "R1"), "a pinned value changed");
    release_all(refs, N);
    tc_test_peer_stop(p);
    tc_close(c);
}

/* More keys than one pipeline (1000), with misses among them. */
#define MANY 2500

Test(bulk, mget_2500_keys_spans_pipelines) {
    tc_cache_t *w = open_cache(GPFX "many:");
    tc_cache_t *c = open_cache(GPFX "many:");
    for (int i = 0; i < MANY; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "m:%d", i);
        snprintf(v, sizeof v, "v%d", i);
        cr_assert_eq(tc_set(w, k, strlen(k), v, strlen(v), 0), 0);
    }
    size_t n = MANY + MANY / 10;
    tc_buf_t *keys = calloc(n, sizeof *keys);
    char(*names)[16] = calloc(n, sizeof *names);
    tc_ref_t **refs = calloc(n, sizeof *refs);
    int *codes = calloc(n, sizeof *codes);
    cr_assert(keys && names && refs && codes);
    for (size_t i = 0; i < n; i++) { /* every 11th key is missing */
        if (i % 11 == 10)
            snprintf(names[i], sizeof names[i], "none:%zu", i);
        else
            snprintf(names[i], sizeof names[i], "m:%zu", i - i / 11);
        keys[i] = (tc_buf_t){names[i], strlen(names[i])};
    }
    cr_assert_eq(tc_mget(c, keys, n, refs, codes), 0);
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 11 == 10) {
            cr_assert_eq(codes[i], TC_ENOTFOUND, "%s: %s", names[i], tc_err_name(codes[i]));
            cr_assert_null(refs[i]);
            continue;
        }
        char v[16];
        snprintf(v, sizeof v, "v%zu", i - i / 11);
        cr_assert_eq(codes[i], 0, "%s: %s", names[i], tc_err_name(codes[i]));
        cr_assert(ref_is(refs[i], v), "%s: wrong value", names[i]);
        found++;
    }
    cr_assert_eq(stats(c).l1_entries, found, "every value read was kept in L1");
    release_all(refs, n);
    free(keys);
    free(names);
    free(refs);
    free(codes);
    tc_close(c);
    tc_close(w);
}

Test(bulk, mget_bad_input) {
    tc_cache_t *c = open_cache(GPFX "bad:");
    const tc_buf_t k = {"k", 1};
    tc_ref_t *ref = NULL;
    int code = 0;
    cr_assert_eq(tc_mget(NULL, &k, 1, &ref, &code), TC_EINVAL);
    cr_assert_eq(tc_mget(c, NULL, 1, &ref, &code), TC_EINVAL);
    cr_assert_eq(tc_mget(c, &k, 1, NULL, &code), TC_EINVAL);
    cr_assert_eq(tc_mget(c, &k, 1, &ref, NULL), TC_EINVAL);
    cr_assert_eq(tc_mget(c, NULL, 0, NULL, NULL), 0, "n == 0 is a no-op");
    cr_assert_eq(tc_mget(c, &k, 1, &ref, &code), 0);
    cr_assert_eq(code, TC_ENOTFOUND);
    cr_assert_null(ref);
    tc_close(c);
}

/* ============================== mset / mdel ============================== */

#define SPFX "t:mset:"

Test(bulk, mset_writes_every_item_and_evicts_every_copy) {
    tc_cache_t *c = open_cache(SPFX);
    tc_test_peer_t *p = start_peer(SPFX);
    enum { N = 10 };
    char names[N][16], vals[N][16];
    tc_item_t items[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "m%d", i);
        size_t kl = strlen(names[i]);
        if (i == 3) /* a binary key: "m\0" "3" */
            memcpy(names[i],
                   "m\0"
                   "3",
                   kl = 3);
        snprintf(vals[i], sizeof vals[i], "new%d", i);
        peer_set(p, names[i], kl, "old");
        peer_hold(p, names[i], kl, "old");
        items[i] = (tc_item_t){names[i], kl, vals[i], strlen(vals[i])};
    }
    const tc_buf_t T = {"mset-tag", 8};
    tc_opts_t o = TC_OPTS_INIT;
    o.tags = &T;
    o.tags_count = 1;
    int codes[N];
    memset(codes, 0x7f, sizeof codes);
    cr_assert_eq(tc_mset(c, items, N, &o, codes), 0);
    for (int i = 0; i < N; i++) {
        char got[64];
        cr_assert_eq(codes[i], 0, "item %d: %s", i, tc_err_name(codes[i]));
        cr_assert(raw_value(SPFX, items[i].key, items[i].klen, got, sizeof got) &&
                      strcmp(got, vals[i]) == 0,
                  "Redis holds '%s' for item %d", got, i);
        peer_wait(p, items[i].key, items[i].klen, vals[i]);
        uint64_t hits = stats(c).l1_hits;
        tc_test_expect_value(c, items[i].key, items[i].klen, vals[i], "this process");
        cr_assert_gt(stats(c).l1_hits, hits, "item %d: the writer does not hold it", i);
    }
    /* The same key twice in one call: everyone agrees on one of the two. */
    const tc_item_t twice[] = {{"d", 1, "1", 1}, {"d", 1, "2", 1}};
    cr_assert_eq(tc_mset(c, twice, 2, NULL, NULL), 0);
    char held[64];
    cr_assert(raw_value(SPFX, "d", 1, held, sizeof held));
    cr_assert(strcmp(held, "1") == 0 || strcmp(held, "2") == 0);
    wait_value(c, S("d"), held, "this process");
    peer_wait(p, S("d"), held);
    /* The options' tag reached every item. */
    size_t removed = 0;
    cr_assert_eq(tc_invalidate_tag(c, T.data, T.len, &removed), 0);
    cr_assert_eq(removed, N);
    for (int i = 0; i < N; i++)
        peer_wait(p, items[i].key, items[i].klen, NULL);
    tc_test_peer_stop(p);
    tc_close(c);
}

Test(bulk, mset_per_item_codes) {
    tc_config_t cfg;
    config(&cfg, SPFX "codes:");
    cfg.max_value_bytes = 1024;
    tc_cache_t *c = open_cfg(&cfg, "inval");
    tc_cache_t *direct = open_direct(SPFX "codes:");
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
    tc_test_expect_value(direct, S("good0"), "v0", "Redis");
    tc_test_expect_value(direct, S("good5"), "v5", "Redis");
    tc_test_expect_value(direct, S("empty"), "", "Redis");
    tc_test_expect_value(direct, S("big"), NULL, "Redis");
    tc_test_expect_value(direct, S("nullval"), NULL, "Redis");
    cr_assert_eq(tc_mset(c, items, N, NULL, NULL), TC_EKEYLEN, "codes may be NULL");
    /* Whole-call errors. */
    const tc_item_t one = {"badopts", 7, "v", 1};
    tc_opts_t bad = TC_OPTS_INIT;
    bad.size = 0;
    cr_assert_eq(tc_mset(c, &one, 1, &bad, NULL), TC_EINVAL);
    tc_test_expect_value(direct, S("badopts"), NULL, "Redis, after a refused call");
    cr_assert_eq(tc_mset(NULL, &one, 1, NULL, NULL), TC_EINVAL);
    cr_assert_eq(tc_mset(c, NULL, 1, NULL, NULL), TC_EINVAL);
    cr_assert_eq(tc_mset(c, NULL, 0, NULL, NULL), 0, "n == 0 is a no-op");
    tc_close(direct);
    tc_close(c);
}

/* 2500 items: more than one pipeline. */
Test(bulk, mset_2500_items) {
    tc_cache_t *c = open_cache(SPFX "many:");
    tc_cache_t *direct = open_direct(SPFX "many:");
    tc_item_t *items = calloc(MANY, sizeof *items);
    char(*names)[16] = calloc(MANY, sizeof *names);
    int *codes = calloc(MANY, sizeof *codes);
    cr_assert(items && names && codes);
    for (int i = 0; i < MANY; i++) {
        snprintf(names[i], sizeof names[i], "s:%d", i);
        items[i] = (tc_item_t){names[i], strlen(names[i]), names[i], strlen(names[i])};
    }
    cr_assert_eq(tc_mset(c, items, MANY, NULL, codes), 0);
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(codes[i], 0);
    for (int i = 0; i < MANY; i += 7)
        tc_test_expect_value(direct, names[i], strlen(names[i]), names[i], "Redis");
    tc_test_expect_value(direct, names[MANY - 1], strlen(names[MANY - 1]), names[MANY - 1],
                         "Redis");
    free(items);
    free(names);
    free(codes);
    tc_close(direct);
    tc_close(c);
}

Test(bulk, mdel_deletes_everywhere) {
    tc_cache_t *c = open_cache(SPFX "del:");
    tc_test_peer_t *p = start_peer(SPFX "del:");
    const tc_buf_t keys[] = {{"d0", 2},
                             {"d\0"
                              "1",
                              3},
                             {"d2", 2},
                             {"never", 5},
                             {"d0", 2}};
    enum { N = sizeof keys / sizeof keys[0] };
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(tc_set(c, keys[i].data, keys[i].len, "v", 1, 0), 0);
        peer_hold(p, keys[i].data, keys[i].len, "v");
    }
    cr_assert_eq(tc_set(c, S("kept"), S("v"), 0), 0);
    int codes[N];
    memset(codes, 0x7f, sizeof codes);
    cr_assert_eq(tc_mdel(c, keys, N, codes), 0);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(codes[i], 0, "key %zu: %s", i, tc_err_name(codes[i]));
        cr_assert_not(raw_exists(SPFX "del:", 'k', keys[i].data, keys[i].len));
        tc_test_expect_value(c, keys[i].data, keys[i].len, NULL, "this process");
        peer_wait(p, keys[i].data, keys[i].len, NULL);
    }
    tc_test_expect_value(c, S("kept"), "v", "this process");
    const tc_buf_t bad[] = {{"kept", 4}, {"", 0}, {"never", 5}};
    int bc[3];
    cr_assert_eq(tc_mdel(c, bad, 3, bc), TC_EKEYLEN, "the first failing code");
    cr_assert(bc[0] == 0 && bc[1] == TC_EKEYLEN && bc[2] == 0);
    cr_assert_not(raw_exists(SPFX "del:", 'k', S("kept")));
    cr_assert_eq(tc_mdel(c, bad, 3, NULL), TC_EKEYLEN, "codes may be NULL");
    cr_assert_eq(tc_mdel(NULL, keys, 1, NULL), TC_EINVAL);
    cr_assert_eq(tc_mdel(c, NULL, 1, NULL), TC_EINVAL);
    cr_assert_eq(tc_mdel(c, NULL, 0, NULL), 0);
    tc_test_peer_stop(p);
    tc_close(c);
}

/* tc_mdel is tc_del per key: a load in flight (in a process deaf to this one's messages)
 * does not store what it read. */
typedef struct gate {
    sem_t read_done, release;
} gate_t;

static int gated_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    gate_t *g = arg;
    (void)key;
    (void)klen;
    sem_post(&g->read_done);
    sem_wait(&g->release);
    return tc_load_set_value(load, S("loaded-before"));
}

typedef struct fetch_call {
    tc_cache_t *c;
    const char *key;
    gate_t *gate;
    int rc;
    char got[32];
} fetch_call_t;

static void *fetch_thread(void *arg) {
    fetch_call_t *f = arg;
    tc_ref_t *ref = NULL;
    f->rc = tc_fetch(f->c, f->key, strlen(f->key), gated_loader, f->gate, &ref);
    if (f->rc == 0) {
        size_t n = tc_ref_size(ref) < sizeof f->got - 1 ? tc_ref_size(ref) : sizeof f->got - 1;
        memcpy(f->got, tc_ref_data(ref), n);
        f->got[n] = '\0';
    }
    tc_ref_release(ref);
    return NULL;
}

Test(bulk, mdel_voids_a_load_in_flight) {
    tc_cache_t *deaf = open_deaf(SPFX "lf:");
    tc_cache_t *c = open_cache(SPFX "lf:");
    gate_t g;
    sem_init(&g.read_done, 0, 0);
    sem_init(&g.release, 0, 0);
    fetch_call_t call = {.c = deaf, .key = "lf", .gate = &g};
    pthread_t t;
    pthread_create(&t, NULL, fetch_thread, &call);
    sem_wait(&g.read_done);
    cr_assert(raw_exists(SPFX "lf:", 'l', S("lf")), "the load holds no lock");
    const tc_buf_t keys[] = {{"other", 5}, {"lf", 2}};
    cr_assert_eq(tc_mdel(c, keys, 2, NULL), 0);
    sem_post(&g.release);
    pthread_join(t, NULL);
    cr_assert_eq(call.rc, 0);
    cr_assert_str_eq(call.got, "loaded-before");
    cr_assert_not(raw_exists(SPFX "lf:", 'k', S("lf")), "the overtaken load was stored");
    tc_test_expect_value(deaf, S("lf"), NULL, "the loading process");
    sem_destroy(&g.read_done);
    sem_destroy(&g.release);
    tc_close(c);
    tc_close(deaf);
}

/* ---- mset racing another process's single-key writes ---- */

/* The oracle file tc-peer's `seqw` shares with the test (layout in tests/peer/tc_peer.c). */
enum { SEQW_STOP = 0, SEQW_BEGUN = 1, SEQW_WRITES = 2, SEQW_ERRORS = 3, SEQW_DONE = 8 };

static uint64_t ld(const uint64_t *w, size_t i) {
    return __atomic_load_n(&w[i], __ATOMIC_ACQUIRE);
}

static uint64_t *oracle_map(const char *path, size_t words) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)(words * sizeof(uint64_t))), 0);
    uint64_t *w = mmap(NULL, words * sizeof *w, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    cr_assert_neq(w, MAP_FAILED);
    return w;
}

/* This process writes keys with tc_mset ("A<round>") while the peer writes some of them one
 * by one ("<seq>"), in epochs: in each, both write, this process stops, the peer writes
 * some more, and stops. Then the value of each key must be one of the two last writes
 * (never an overwritten one), and this process's L1 and every reader of Redis must agree
 * on it; at the end the peer too. The contested keys come first in a call of 1000 items:
 * Redis interleaves the peer's writes with the long pipeline, so the peer's newer write
 * of a key often reaches this process's listener before the bulk call commits its older
 * one to L1 (a commit that must then give way). */
#define RACE_KEYS   10   /* contested */
#define RACE_BATCH  1000 /* items per tc_mset */
#define RACE_EPOCHS 10

typedef struct mrace {
    char names[RACE_BATCH][16];
    char vals[RACE_BATCH][16];
    tc_item_t items[RACE_BATCH];
    int codes[RACE_BATCH];
    int round, epoch;
} mrace_t;

static void race_epoch(tc_cache_t *c, tc_cache_t *direct, tc_test_peer_t *p, uint64_t *w,
                       const char *path, mrace_t *m) {
    __atomic_store_n(&w[SEQW_STOP], 0, __ATOMIC_RELEASE);
    uint64_t w0 = ld(w, SEQW_WRITES);
    tc_test_peer_send(p, "seqw %d 0 6d6b3a - - %s", RACE_KEYS, path);
    uint64_t start = tc_test_now_ms(), deadline = start + 20000u * TC_TEST_SLOW;
    int r0 = m->round;
    while (m->round < r0 + 5 || ld(w, SEQW_WRITES) < w0 + 5u * RACE_KEYS) {
        cr_assert_lt(tc_test_now_ms(), deadline, "the writers made no progress");
        ++m->round;
        for (int i = 0; i < RACE_BATCH; i++) {
            snprintf(m->vals[i], sizeof m->vals[i], "A%d", m->round);
            m->items[i] =
                (tc_item_t){m->names[i], strlen(m->names[i]), m->vals[i], strlen(m->vals[i])};
        }
        int rc = tc_mset(c, m->items, RACE_BATCH, NULL, m->codes);
        cr_assert_eq(rc, 0, "round %d: %s", m->round, tc_err_name(rc));
    }
    /* Odd epochs: the peer writes last; even ones: it stops at once (often ours last). */
    uint64_t more = ld(w, SEQW_WRITES) + (m->epoch % 2 ? RACE_KEYS : 0);
    while (ld(w, SEQW_WRITES) < more) {
        cr_assert_lt(tc_test_now_ms(), deadline, "the writer stalled");
        sched_yield();
    }
    __atomic_store_n(&w[SEQW_STOP], 1, __ATOMIC_RELEASE);
    const char *done = tc_test_peer_recv(p, 10000 * TC_TEST_SLOW);
    unsigned long long writes = 0, errors = 0;
    cr_assert_eq(sscanf(done, "seqw %llu %llu", &writes, &errors), 2, "writer: '%s'", done);
    cr_assert_eq(errors, 0, "the writer had failed writes: outcomes unknown");
    for (int i = 0; i < RACE_BATCH; i += i < RACE_KEYS ? 1 : 97) {
        char held[64], theirs[32] = "(none)";
        if (i < RACE_KEYS)
            snprintf(theirs, sizeof theirs, "%llu",
                     (unsigned long long)ld(w, SEQW_DONE + (size_t)i));
        const char *k = m->names[i];
        cr_assert(raw_value(SPFX "race:", k, strlen(k), held, sizeof held));
        cr_assert(strcmp(held, m->vals[i]) == 0 || strcmp(held, theirs) == 0,
                  "%s: Redis holds '%s', an overwritten write (the last ones: '%s', '%s')", k,
                  held, m->vals[i], theirs);
        tc_test_expect_value(direct, k, strlen(k), held, "a reader of Redis");
        wait_value(c, k, strlen(k), held, "this process's L1");
    }
}

Test(bulk, mset_races_single_key_writes_of_another_process) {
    tc_cache_t *c = open_cache(SPFX "race:");
    tc_cache_t *direct = open_direct(SPFX "race:");
    tc_test_peer_t *p = start_peer(SPFX "race:");
    char path[512];
    snprintf(path, sizeof path, "%s/seqw-mset.bin", tc_test_redis_dir(redis));
    uint64_t *w = oracle_map(path, SEQW_DONE + RACE_KEYS);
    mrace_t *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    for (int i = 0; i < RACE_BATCH; i++)
        snprintf(m->names[i], sizeof m->names[i], i < RACE_KEYS ? "mk:%d" : "mf:%d", i);
    for (m->epoch = 0; m->epoch < RACE_EPOCHS; m->epoch++)
        race_epoch(c, direct, p, w, path, m);
    int ours = 0;
    for (int i = 0; i < RACE_KEYS; i++) {
        char held[64];
        cr_assert(raw_value(SPFX "race:", m->names[i], strlen(m->names[i]), held, sizeof held));
        ours += strcmp(held, m->vals[i]) == 0;
        peer_wait(p, m->names[i], strlen(m->names[i]), held);
    }
    cr_log_info("mset race: %d rounds of %d items, %llu single writes; mset last on %d of %d",
                m->round, RACE_BATCH, (unsigned long long)ld(w, SEQW_WRITES), ours, RACE_KEYS);
    munmap(w, (SEQW_DONE + RACE_KEYS) * sizeof *w);
    free(m);
    tc_test_peer_stop(p);
    tc_close(direct);
    tc_close(c);
}

/* ============================== mfetch ============================== */

#define FPFX "t:mfetch:"

static const char *plan_mixed(const char *key) {
    if (strcmp(key, "k7") == 0)
        return "t:20000:L-k7"; /* the loader's TTL wins over the options' */
    if (strcmp(key, "k8") == 0)
        return ""; /* left unset: not found at the source */
    if (strcmp(key, "k9") == 0)
        return "e:-12"; /* TC_ELOADER */
    return NULL;
}

/* k0-k2 in this process's L1, k3-k5 only in Redis, k6-k9 nowhere: one loader call, with
 * exactly k6-k9, each once (k6 and k0 are asked twice). */
Test(bulk, mfetch_loads_exactly_the_missing_keys_once) {
    tc_cache_t *c = open_cache(FPFX);
    tc_test_peer_t *p = start_peer(FPFX);
    for (int i = 0; i < 3; i++) {
        char k[8], v[8];
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "C%d", i);
        cr_assert_eq(tc_set(c, k, strlen(k), v, strlen(v), 0), 0);
    }
    for (int i = 3; i < 6; i++) {
        char k[8], v[8];
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "P%d", i);
        peer_set(p, k, strlen(k), v);
    }
    static const char *const names[] = {"k0", "k1", "k2", "k3", "k4", "k5",
                                        "k6", "k7", "k8", "k9", "k6", "k0"};
    enum { N = sizeof names / sizeof names[0] };
    tc_buf_t *keys = bufs_of(names, N);
    rec_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    rec_init(r);
    r->plan = plan_mixed;
    const tc_buf_t T = {"mf\0tag", 6};
    tc_opts_t o = TC_OPTS_INIT;
    o.ttl_ms = 7000;
    o.tags = &T;
    o.tags_count = 1;
    tc_ref_t *refs[N];
    int codes[N];
    uint64_t batches = stats(c).batch_loads;
    cr_assert_eq(tc_mfetch(c, keys, N, rec_loader, r, &o, refs, codes), 0);
    cr_assert_eq(r->calls, 1, "the loader was called %d times", r->calls);
    cr_assert_eq(r->wrong_thread, 0, "the loader ran on another thread");
    cr_assert_eq(r->nkeys, 4, "the loader got %zu keys", r->nkeys);
    for (int i = 6; i < 10; i++)
        cr_assert_eq(rec_count(r, names[i]), 1, "%s given %zu times", names[i],
                     rec_count(r, names[i]));
    cr_assert_eq(stats(c).batch_loads - batches, 1);
    static const char *const want[] = {"C0",   "C1",   "C2", "P3", "P4",   "P5",
                                       "L-k6", "L-k7", NULL, NULL, "L-k6", "C0"};
    for (int i = 0; i < N; i++) {
        int wc = want[i] ? 0 : i == 8 ? TC_ENOTFOUND : TC_ELOADER;
        cr_assert_eq(codes[i], wc, "%s: %s, want %s", names[i], tc_err_name(codes[i]),
                     tc_err_name(wc));
        if (want[i])
            cr_assert(ref_is(refs[i], want[i]), "%s: wrong value", names[i]);
        else
            cr_assert_null(refs[i]);
    }
    release_all(refs, N);
    /* Stored: the loaded values, with their TTLs; not the absent or failed keys. */
    char held[64];
    cr_assert(raw_value(FPFX, S("k6"), held, sizeof held) && strcmp(held, "L-k6") == 0);
    cr_assert(raw_value(FPFX, S("k7"), held, sizeof held) && strcmp(held, "L-k7") == 0);
    expect_pttl(FPFX, "k6", 7000);
    expect_pttl(FPFX, "k7", 20000);
    cr_assert_not(raw_exists(FPFX, 'k', S("k8")), "an absence was cached (negative_ttl 0)");
    cr_assert_not(raw_exists(FPFX, 'k', S("k9")), "a failed key was cached");
    peer_wait(p, S("k6"), "L-k6");
    /* Again: only what is still missing is loaded. */
    rec_reset(r);
    cr_assert_eq(tc_mfetch(c, keys, N, rec_loader, r, NULL, refs, codes), 0);
    cr_assert_eq(r->calls, 1);
    cr_assert(r->nkeys == 2 && rec_count(r, "k8") == 1 && rec_count(r, "k9") == 1,
              "the second call loaded %zu keys", r->nkeys);
    release_all(refs, N);
    /* With the lock off the Redis read alone keeps Redis's values from the loader. */
    tc_config_t cfg;
    config(&cfg, FPFX);
    cfg.lock_ttl_ms = 0;
    tc_cache_t *nolock = open_cfg(&cfg, "inval");
    static const char *const more[] = {"k3", "k4", "k6", "k10"};
    tc_buf_t *mk = bufs_of(more, 4);
    rec_reset(r);
    cr_assert_eq(tc_mfetch(nolock, mk, 4, rec_loader, r, NULL, refs, codes), 0);
    cr_assert(r->calls == 1 && r->nkeys == 1 && rec_count(r, "k10") == 1,
              "without the lock the loader got %zu keys", r->nkeys);
    cr_assert(ref_is(refs[0], "P3") && ref_is(refs[1], "P4") && ref_is(refs[2], "L-k6") &&
              ref_is(refs[3], "L-k10"));
    release_all(refs, 4);
    tc_close(nolock);
    /* The options' tag reached what the first call stored (k6, k7), and nothing else. */
    size_t removed = 0;
    cr_assert_eq(tc_invalidate_tag(c, T.data, T.len, &removed), 0);
    cr_assert_eq(removed, 2, "the tag removed %zu keys", removed);
    cr_assert_not(raw_exists(FPFX, 'k', S("k6")));
    cr_assert_not(raw_exists(FPFX, 'k', S("k7")));
    cr_assert(raw_exists(FPFX, 'k', S("k10")) && raw_exists(FPFX, 'k', S("k3")));
    peer_wait(p, S("k6"), NULL);
    free(mk);
    free(r);
    free(keys);
    tc_test_peer_stop(p);
    tc_close(c);
}

/* The batch API inside a loader: range checks, size limit, replacing a value. */
typedef struct api_probe {
    int oor_value, oor_ttl, oor_error, error_zero, error_positive, too_big, replaced;
    size_t max;
} api_probe_t;

static int api_loader(void *arg, tc_batch_t *b) {
    api_probe_t *a = arg;
    size_t n = tc_batch_count(b);
    char *big = calloc(1, a->max + 1);
    a->oor_value = tc_batch_set_value(b, n, "x", 1);
    a->oor_ttl = tc_batch_set_ttl(b, n, 1000);
    a->oor_error = tc_batch_set_error(b, n, TC_ELOADER);
    a->error_zero = tc_batch_set_error(b, 0, 0);
    a->error_positive = tc_batch_set_error(b, 0, 5);
    a->too_big = big ? tc_batch_set_value(b, 0, big, a->max + 1) : 0;
    free(big);
    tc_batch_set_value(b, 0, S("first"));
    a->replaced = tc_batch_set_value(b, 0, S("final"));
    return 0;
}

Test(bulk, mfetch_batch_api_checks_its_arguments) {
    tc_config_t cfg;
    config(&cfg, FPFX "api:");
    cfg.max_value_bytes = 4096;
    tc_cache_t *c = open_cfg(&cfg, "inval");
    api_probe_t a = {.max = 4096};
    const tc_buf_t k = {"api", 3};
    tc_ref_t *ref = NULL;
    int code = 0;
    cr_assert_eq(tc_mfetch(c, &k, 1, api_loader, &a, NULL, &ref, &code), 0);
    cr_assert_eq(a.oor_value, TC_EINVAL);
    cr_assert_eq(a.oor_ttl, TC_EINVAL);
    cr_assert_eq(a.oor_error, TC_EINVAL);
    cr_assert_eq(a.error_zero, TC_EINVAL, "0 is no failure code");
    cr_assert_eq(a.error_positive, TC_EINVAL);
    cr_assert_eq(a.too_big, TC_ETOOBIG);
    cr_assert_eq(a.replaced, 0);
    cr_assert_eq(code, 0);
    cr_assert(ref_is(ref, "final"), "the second tc_batch_set_value did not replace the first");
    tc_ref_release(ref);
    tc_close(c);
}

static const char *plan_partial(const char *key) {
    return strcmp(key, "x") == 0 ? "v:set-before-failing" : NULL;
}

/* A loader that fails answers every key it was given with its code and caches nothing,
 * not even as an absence. Keys that hit are still answered. */
Test(bulk, mfetch_loader_error_answers_its_keys_and_caches_nothing) {
    tc_config_t cfg;
    config(&cfg, FPFX "err:");
    cfg.negative_ttl_ms = 60000;
    tc_cache_t *c = open_cfg(&cfg, "inval");
    cr_assert_eq(tc_set(c, S("h"), S("hit"), 0), 0);
    static const char *const names[] = {"x", "h", "y"};
    tc_buf_t *keys = bufs_of(names, 3);
    rec_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    rec_init(r);
    r->plan = plan_partial;
    r->ret = TC_EPROTO;
    for (int attempt = 0; attempt < 2; attempt++) {
        rec_reset(r);
        tc_ref_t *refs[3];
        int codes[3];
        cr_assert_eq(tc_mfetch(c, keys, 3, rec_loader, r, NULL, refs, codes), 0);
        cr_assert_eq(r->calls, 1, "attempt %d: the failed keys were not loaded again", attempt);
        cr_assert_eq(r->nkeys, 2);
        cr_assert_eq(codes[0], TC_EPROTO, "x: %s", tc_err_name(codes[0]));
        cr_assert_eq(codes[2], TC_EPROTO, "y: %s", tc_err_name(codes[2]));
        cr_assert_null(refs[0]);
        cr_assert_null(refs[2]);
        cr_assert_eq(codes[1], 0);
        cr_assert(ref_is(refs[1], "hit"));
        release_all(refs, 3);
        cr_assert_not(raw_exists(FPFX "err:", 'k', S("x")), "a failed batch stored a value");
        cr_assert_not(raw_exists(FPFX "err:", 'k', S("y")), "a failed batch stored absence");
        tc_test_expect_value(c, S("x"), NULL, "this process");
    }
    free(r);
    free(keys);
    tc_close(c);
}

static const char *plan_absent(const char *key) {
    return strcmp(key, "nf") == 0 ? "e:-1" : ""; /* TC_ENOTFOUND, or left unset */
}

/* With negative_ttl_ms, keys the source lacks are cached as absences in both tiers. */
Test(bulk, mfetch_negative_caching) {
    tc_config_t cfg;
    config(&cfg, FPFX "neg:");
    cfg.negative_ttl_ms = 2000;
    tc_cache_t *c = open_cfg(&cfg, "inval");
    tc_test_peer_t *p = start_peer(FPFX "neg:");
    static const char *const names[] = {"absent", "nf"};
    tc_buf_t *keys = bufs_of(names, 2);
    rec_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    rec_init(r);
    r->plan = plan_absent;
    tc_ref_t *refs[2];
    int codes[2];
    cr_assert_eq(tc_mfetch(c, keys, 2, rec_loader, r, NULL, refs, codes), 0);
    cr_assert(codes[0] == TC_ENOTFOUND && codes[1] == TC_ENOTFOUND);
    cr_assert_eq(r->calls, 1);
    uint64_t neg = stats(c).negative_hits;
    cr_assert_eq(tc_mfetch(c, keys, 2, rec_loader, r, NULL, refs, codes), 0);
    cr_assert(codes[0] == TC_ENOTFOUND && codes[1] == TC_ENOTFOUND);
    cr_assert_eq(r->calls, 1, "a cached absence was loaded again");
    cr_assert_eq(stats(c).negative_hits - neg, 2);
    /* Another process sees the absence in Redis: its tc_fetch does not load either. */
    char hk[16];
    tc_test_hex("absent", 6, hk);
    cr_assert_str_eq(tc_test_peer_cmd(p, "xfetch %s 1 0 t:neg:count", hk), "xdone 0 1 - -1");
    cr_assert_eq(counter_get("t:neg:count"), 0, "the peer loaded a cached absence");
    /* Past the negative TTL, both are loaded again. */
    uint64_t deadline = tc_test_now_ms() + 10000u * TC_TEST_SLOW;
    while (rec_count(r, "absent") < 2 || rec_count(r, "nf") < 2) {
        cr_assert_lt(tc_test_now_ms(), deadline, "the absences never expired");
        tc_test_sleep_ms(100);
        cr_assert_eq(tc_mfetch(c, keys, 2, rec_loader, r, NULL, refs, codes), 0);
        cr_assert(codes[0] == TC_ENOTFOUND && codes[1] == TC_ENOTFOUND);
    }
    free(r);
    free(keys);
    tc_test_peer_stop(p);
    tc_close(c);
}

/* ---- single-flight across threads: mfetch and fetch callers, overlapping keys ---- */

#define SF_KEYS    60
#define SF_BATCHES 6
#define SF_SINGLES 2

typedef struct sf {
    tc_cache_t *c;
    atomic_int loads[SF_KEYS];
    pthread_barrier_t go;
    atomic_int bad;
    char example[160];
} sf_t;

typedef struct sf_thread {
    sf_t *sf;
    int id;
} sf_thread_t;

static int sf_index(const void *k, size_t kl) {
    char buf[16];
    snprintf(buf, sizeof buf, "%.*s", (int)kl, (const char *)k);
    return atoi(buf + 3); /* "sf:<i>" */
}

static int sf_batch_loader(void *arg, tc_batch_t *b) {
    sf_t *sf = arg;
    tc_test_sleep_ms(30 * TC_TEST_SLOW); /* long enough for every caller to arrive */
    for (size_t i = 0; i < tc_batch_count(b); i++) {
        size_t kl = 0;
        const void *k = tc_batch_key(b, i, &kl);
        int idx = sf_index(k, kl);
        char v[32];
        snprintf(v, sizeof v, "sf-%d-%d", idx, atomic_fetch_add(&sf->loads[idx], 1) + 1);
        tc_batch_set_value(b, i, v, strlen(v));
    }
    return 0;
}

static int sf_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    sf_t *sf = arg;
    tc_test_sleep_ms(30 * TC_TEST_SLOW);
    int idx = sf_index(key, klen);
    char v[32];
    snprintf(v, sizeof v, "sf-%d-%d", idx, atomic_fetch_add(&sf->loads[idx], 1) + 1);
    return tc_load_set_value(load, v, strlen(v));
}

static void sf_check(sf_t *sf, int idx, int rc, const tc_ref_t *ref, const char *who) {
    char want[32];
    snprintf(want, sizeof want, "sf-%d-1", idx);
    if (rc == 0 && ref_is(ref, want))
        return;
    if (atomic_fetch_add(&sf->bad, 1) == 0)
        snprintf(sf->example, sizeof sf->example, "%s: sf:%d got %s '%.*s'", who, idx,
                 tc_err_name(rc), ref ? (int)tc_ref_size(ref) : 0,
                 ref ? (const char *)tc_ref_data(ref) : "");
}

static void *sf_main(void *arg) {
    sf_thread_t *t = arg;
    sf_t *sf = t->sf;
    char names[30][16];
    tc_buf_t keys[30];
    pthread_barrier_wait(&sf->go);
    if (t->id < SF_BATCHES) { /* 30 keys from 6 * id: each overlaps its neighbours */
        for (int j = 0; j < 30; j++) {
            snprintf(names[j], sizeof names[j], "sf:%d", (6 * t->id + j) % SF_KEYS);
            keys[j] = (tc_buf_t){names[j], strlen(names[j])};
        }
        tc_ref_t *refs[30];
        int codes[30];
        int rc = tc_mfetch(sf->c, keys, 30, sf_batch_loader, sf, NULL, refs, codes);
        for (int j = 0; j < 30; j++) {
            sf_check(sf, (6 * t->id + j) % SF_KEYS, rc == 0 ? codes[j] : rc,
                     rc == 0 ? refs[j] : NULL, "mfetch");
            if (rc == 0)
                tc_ref_release(refs[j]);
        }
    } else { /* single-key fetches across the same keys */
        for (int j = 0; j < 20; j++) {
            int idx = (7 * t->id + 3 * j) % SF_KEYS;
            char k[16];
            snprintf(k, sizeof k, "sf:%d", idx);
            tc_ref_t *ref = NULL;
            int rc = tc_fetch(sf->c, k, strlen(k), sf_loader, sf, &ref);
            sf_check(sf, idx, rc, ref, "fetch");
            tc_ref_release(ref);
        }
    }
    return NULL;
}

Test(bulk, mfetch_single_flight_across_threads) {
    sf_t *sf = calloc(1, sizeof *sf);
    cr_assert_not_null(sf);
    sf->c = open_cache(FPFX "sf:");
    enum { T = SF_BATCHES + SF_SINGLES };
    pthread_barrier_init(&sf->go, NULL, T);
    pthread_t tid[T];
    sf_thread_t args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (sf_thread_t){sf, i};
        pthread_create(&tid[i], NULL, sf_main, &args[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < SF_KEYS; i++)
        cr_assert_eq(atomic_load(&sf->loads[i]), 1, "sf:%d was loaded %d times", i,
                     atomic_load(&sf->loads[i]));
    cr_assert_eq(atomic_load(&sf->bad), 0, "%d callers got another value, e.g. %s",
                 atomic_load(&sf->bad), sf->example);
    tc_stats_t st = stats(sf->c);
    cr_assert(st.batch_loads >= 1 && st.batch_loads <= SF_BATCHES, "batch_loads %llu",
              (unsigned long long)st.batch_loads);
    pthread_barrier_destroy(&sf->go);
    tc_close(sf->c);
    free(sf);
}

/* ---- single-flight across processes ---- */

static void wait_lock(const char *prefix, const char *key) {
    uint64_t deadline = tc_test_now_ms() + 5000u * TC_TEST_SLOW;
    while (!raw_exists(prefix, 'l', key, strlen(key))) {
        cr_assert_lt(tc_test_now_ms(), deadline, "the peer never took the lock of %s", key);
        tc_test_sleep_ms(2);
    }
}

static int count_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)key;
    (void)klen;
    counter_incr(arg);
    return tc_load_set_value(load, S("this-process"));
}

Test(bulk, mfetch_single_flight_across_processes) {
    tc_cache_t *c = open_cache(FPFX "xp:");
    tc_test_peer_t *p = start_peer(FPFX "xp:");
    char hk[16];
    unsigned sleep_ms = 600 * TC_TEST_SLOW;
    /* The peer's tc_fetch loads "xk" slowly; this process's mfetch must wait for it. */
    tc_test_hex("xk", 2, hk);
    tc_test_peer_send(p, "xfetch %s 1 %u t:xp:count", hk, sleep_ms);
    wait_lock(FPFX "xp:", "xk");
    static const char *const names[] = {"xk", "own"};
    tc_buf_t *keys = bufs_of(names, 2);
    rec_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    rec_init(r);
    r->counter = "t:xp:count";
    tc_ref_t *refs[2];
    int codes[2];
    cr_assert_eq(tc_mfetch(c, keys, 2, rec_loader, r, NULL, refs, codes), 0);
    const char *done = tc_test_peer_recv(p, 20000 * TC_TEST_SLOW);
    char valhex[128];
    cr_assert_eq(sscanf(done, "xdone 1 0 %127s 0", valhex), 1, "peer: '%s'", done);
    char peer_val[64];
    size_t pvl = 0;
    cr_assert_eq(tc_test_unhex(valhex, peer_val, sizeof peer_val - 1, &pvl), 0);
    peer_val[pvl] = '\0';
    cr_assert_eq(rec_count(r, "xk"), 0, "this process loaded the key the peer was loading");
    cr_assert_eq(rec_count(r, "own"), 1);
    cr_assert_eq(counter_get("t:xp:count"), 2, "xk once (the peer), own once (here)");
    cr_assert_eq(codes[0], 0, "xk: %s", tc_err_name(codes[0]));
    cr_assert(ref_is(refs[0], peer_val), "this process got another value than the peer's");
    release_all(refs, 2);

    /* The other way round: the peer's mfetch loads "yk" slowly; a tc_fetch here waits. */
    tc_test_hex("yk", 2, hk);
    tc_test_peer_send(p, "mfetch %u t:xp:count2 %s", sleep_ms, hk);
    wait_lock(FPFX "xp:", "yk");
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(c, S("yk"), count_loader, (void *)"t:xp:count2", &ref), 0);
    done = tc_test_peer_recv(p, 20000 * TC_TEST_SLOW);
    cr_assert_eq(sscanf(done, "mfetch 0 v:%127s", valhex), 1, "peer: '%s'", done);
    cr_assert_eq(tc_test_unhex(valhex, peer_val, sizeof peer_val - 1, &pvl), 0);
    peer_val[pvl] = '\0';
    cr_assert_eq(counter_get("t:xp:count2"), 1, "yk was loaded by both processes");
    cr_assert(ref_is(ref, peer_val), "this process got another value than the peer's");
    tc_ref_release(ref);
    free(r);
    free(keys);
    tc_test_peer_stop(p);
    tc_close(c);
}

Test(bulk, mfetch_bad_input) {
    tc_cache_t *c = open_cache(FPFX "bad:");
    rec_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    rec_init(r);
    const tc_buf_t k[] = {{"a", 1}, {"", 0}, {"b", 1}};
    tc_ref_t *refs[3];
    int codes[3];
    tc_opts_t bad = TC_OPTS_INIT;
    bad.size = 0;
    cr_assert_eq(tc_mfetch(NULL, k, 3, rec_loader, r, NULL, refs, codes), TC_EINVAL);
    cr_assert_eq(tc_mfetch(c, NULL, 3, rec_loader, r, NULL, refs, codes), TC_EINVAL);
    cr_assert_eq(tc_mfetch(c, k, 3, rec_loader, r, NULL, NULL, codes), TC_EINVAL);
    cr_assert_eq(tc_mfetch(c, k, 3, rec_loader, r, NULL, refs, NULL), TC_EINVAL);
    cr_assert_eq(tc_mfetch(c, k, 3, rec_loader, r, &bad, refs, codes), TC_EINVAL);
    cr_assert_eq(tc_mfetch(c, NULL, 0, rec_loader, r, NULL, NULL, NULL), 0);
    cr_assert_eq(r->calls, 0, "a refused call ran the loader");
    /* A bad key is answered alone; the loader never sees it. */
    cr_assert_eq(tc_mfetch(c, k, 3, rec_loader, r, NULL, refs, codes), 0);
    cr_assert_eq(codes[1], TC_EKEYLEN);
    cr_assert_null(refs[1]);
    cr_assert(codes[0] == 0 && ref_is(refs[0], "L-a") && codes[2] == 0 &&
              ref_is(refs[2], "L-b"));
    cr_assert(r->nkeys == 2 && rec_count(r, "") == 0);
    release_all(refs, 3);
    free(r);
    tc_close(c);
}

/* ============================== warm and hot keys ============================== */

#define WPFX "t:warm:"

Test(bulk, warm_fills_l1_from_redis) {
    tc_cache_t *w = open_cache(WPFX);
    enum { PRESENT = 1200, MISSING = 5, N = PRESENT + MISSING };
    tc_buf_t *keys = calloc(N, sizeof *keys);
    char(*names)[16] = calloc(N, sizeof *names);
    cr_assert(keys && names);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], i < PRESENT ? "w:%d" : "nx:%d", i);
        keys[i] = (tc_buf_t){names[i], strlen(names[i])};
        if (i < PRESENT)
            cr_assert_eq(tc_set(w, names[i], strlen(names[i]), names[i], strlen(names[i]), 0),
                         0);
    }
    tc_cache_t *c = open_cache(WPFX);
    cr_assert_eq(stats(c).l1_entries, 0);
    size_t warmed = 12345;
    cr_assert_eq(tc_warm(c, keys, N, NULL, NULL, NULL, &warmed), 0);
    cr_assert_eq(warmed, PRESENT);
    tc_stats_t s0 = stats(c);
    cr_assert_eq(s0.l1_entries, PRESENT);
    for (int i = 0; i < PRESENT; i++)
        tc_test_expect_value(c, names[i], strlen(names[i]), names[i], "warmed");
    tc_stats_t s1 = stats(c);
    cr_assert_eq(s1.l1_hits - s0.l1_hits, PRESENT, "warmed keys were not L1 hits");
    cr_assert_eq(s1.l2_hits + s1.l2_misses, s0.l2_hits + s0.l2_misses);
    tc_test_expect_value(c, names[PRESENT], strlen(names[PRESENT]), NULL, "a key Redis lacked");
    cr_assert_eq(tc_warm(c, NULL, 0, NULL, NULL, NULL, NULL), 0, "n == 0 is a no-op");
    cr_assert_eq(tc_warm(NULL, keys, 1, NULL, NULL, NULL, NULL), TC_EINVAL);
    cr_assert_eq(tc_warm(c, NULL, 1, NULL, NULL, NULL, NULL), TC_EINVAL);
    free(keys);
    free(names);
    tc_close(c);
    tc_close(w);
}

static const char *plan_warm(const char *key) {
    return strcmp(key, "q:4") == 0 ? "" : NULL; /* the source lacks q:4 */
}

Test(bulk, warm_with_a_loader_loads_and_stores_what_redis_lacks) {
    tc_cache_t *w = open_cache(WPFX "ld:");
    tc_test_peer_t *p = start_peer(WPFX "ld:");
    static const char *const names[] = {"p:0", "q:0", "p:1", "q:1", "p:2",
                                        "q:2", "p:3", "q:3", "p:4", "q:4"};
    for (int i = 0; i < 10; i += 2)
        cr_assert_eq(tc_set(w, names[i], 3, "P", 1, 0), 0);
    tc_cache_t *c = open_cache(WPFX "ld:");
    tc_buf_t *keys = bufs_of(names, 10);
    rec_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    rec_init(r);
    r->plan = plan_warm;
    const tc_buf_t T = {"warm-tag", 8};
    tc_opts_t o = TC_OPTS_INIT;
    o.tags = &T;
    o.tags_count = 1;
    size_t warmed = 0;
    uint64_t batches = stats(c).batch_loads;
    cr_assert_eq(tc_warm(c, keys, 10, rec_loader, r, &o, &warmed), 0);
    cr_assert_eq(warmed, 9, "9 keys are in L1 now (q:4 is nowhere)");
    cr_assert_eq(stats(c).l1_entries, 9);
    cr_assert_eq(r->calls, 1);
    cr_assert_eq(r->nkeys, 5, "the loader got %zu keys", r->nkeys);
    for (int i = 1; i < 10; i += 2)
        cr_assert_eq(rec_count(r, names[i]), 1, "%s", names[i]);
    cr_assert_eq(stats(c).batch_loads - batches, 1);
    for (int i = 1; i < 9; i += 2) {
        char held[32], want[32];
        snprintf(want, sizeof want, "L-%s", names[i]);
        cr_assert(raw_value(WPFX "ld:", names[i], 3, held, sizeof held) &&
                      strcmp(held, want) == 0,
                  "%s: Redis holds '%s'", names[i], held);
        peer_wait(p, names[i], 3, want);
    }
    size_t removed = 0;
    cr_assert_eq(tc_invalidate_tag(c, T.data, T.len, &removed), 0);
    cr_assert_eq(removed, 4, "the loaded keys carry the options' tag, the others not");
    tc_test_expect_value(c, S("p:0"), "P", "this process");
    free(r);
    free(keys);
    tc_test_peer_stop(p);
    tc_close(c);
    tc_close(w);
}

typedef struct seen {
    size_t n, stop_after;
    char keys[256][16];
    size_t lens[256];
} seen_t;

static int collect(void *arg, const void *key, size_t klen) {
    seen_t *s = arg;
    if (s->n < 256 && klen < sizeof s->keys[0]) {
        memcpy(s->keys[s->n], key, klen);
        s->lens[s->n] = klen;
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static size_t seen_count(const seen_t *s, const void *k, size_t kl) {
    size_t n = 0;
    for (size_t i = 0; i < s->n && i < 256; i++)
        n += s->lens[i] == kl && memcmp(s->keys[i], k, kl) == 0;
    return n;
}

static void hot_name(int i, char *k, size_t *kl) {
    snprintf(k, 16, "h%d", i);
    *kl = strlen(k);
    if (i % 10 == 0)
        k[(*kl)++] = '\0'; /* binary keys too */
}

Test(bulk, hot_keys_lists_what_l1_holds) {
    tc_cache_t *c = open_cache(WPFX "hot:");
    enum { N = 50 };
    for (int i = 0; i < N; i++) {
        char k[16];
        size_t kl;
        hot_name(i, k, &kl);
        cr_assert_eq(tc_set(c, k, kl, "v", 1, 0), 0);
    }
    cr_assert_eq(stats(c).l1_entries, N);
    seen_t *s = calloc(1, sizeof *s);
    cr_assert_not_null(s);
    cr_assert_eq(tc_hot_keys(c, 1000, collect, s), N);
    cr_assert_eq(s->n, N);
    for (int i = 0; i < N; i++) {
        char k[16];
        size_t kl;
        hot_name(i, k, &kl);
        cr_assert_eq(seen_count(s, k, kl), 1, "key %d listed %zu times", i,
                     seen_count(s, k, kl));
    }
    memset(s, 0, sizeof *s);
    cr_assert_eq(tc_hot_keys(c, 10, collect, s), 10, "max is not respected");
    cr_assert_eq(s->n, 10);
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(seen_count(s, s->keys[i], s->lens[i]), 1, "a key listed twice");
    memset(s, 0, sizeof *s);
    s->stop_after = 3;
    cr_assert_eq(tc_hot_keys(c, 1000, collect, s), 3, "fn asked to stop after 3");
    cr_assert_eq(s->n, 3);
    memset(s, 0, sizeof *s);
    cr_assert_eq(tc_hot_keys(c, 0, collect, s), 0);
    cr_assert_eq(s->n, 0);
    /* Deleted keys are no longer listed. */
    for (int i = 0; i < 5; i++) {
        char k[16];
        size_t kl;
        hot_name(i, k, &kl);
        cr_assert_eq(tc_del(c, k, kl), 0);
    }
    memset(s, 0, sizeof *s);
    cr_assert_eq(tc_hot_keys(c, 1000, collect, s), N - 5);
    for (int i = 0; i < 5; i++) {
        char k[16];
        size_t kl;
        hot_name(i, k, &kl);
        cr_assert_eq(seen_count(s, k, kl), 0, "deleted key %d listed", i);
    }
    /* The list warms another cache. */
    tc_buf_t keys[N];
    for (size_t i = 0; i < s->n; i++)
        keys[i] = (tc_buf_t){s->keys[i], s->lens[i]};
    tc_cache_t *d = open_cache(WPFX "hot:");
    size_t warmed = 0;
    cr_assert_eq(tc_warm(d, keys, s->n, NULL, NULL, NULL, &warmed), 0);
    cr_assert_eq(warmed, N - 5);
    cr_assert_eq(stats(d).l1_entries, N - 5);
    cr_assert_eq(tc_hot_keys(NULL, 10, collect, s), TC_EINVAL);
    cr_assert_eq(tc_hot_keys(c, 10, NULL, s), TC_EINVAL);
    free(s);
    tc_close(d);
    tc_close(c);
}

/* ============================== options ============================== */

#define OPFX "t:opts:"

Test(bulk, opts_init_and_validation) {
    tc_opts_t o;
    memset(&o, 0x5a, sizeof o);
    tc_opts_init(&o);
    cr_assert(o.size == sizeof(tc_opts_t) && o.ttl_ms == 0 && o.tags == NULL &&
              o.tags_count == 0 && o.flags == 0);
    tc_opts_init(NULL);
    tc_cache_t *c = open_cache(OPFX "v:");
    tc_cache_t *direct = open_direct(OPFX "v:");
    static char longtag[TC_MAX_TAG_LEN + 1];
    memset(longtag, 't', sizeof longtag);
    tc_buf_t many[TC_MAX_TAGS + 1];
    for (unsigned i = 0; i <= TC_MAX_TAGS; i++)
        many[i] = (tc_buf_t){longtag, i + 1};
    const tc_buf_t null_tag = {NULL, 3}, empty_tag = {"", 0},
                   long_tag = {longtag, TC_MAX_TAG_LEN + 1};
    tc_opts_t bad[7];
    for (int i = 0; i < 7; i++)
        tc_opts_init(&bad[i]);
    bad[0].size = 0;
    bad[1].size = sizeof(size_t); /* smaller than the first tc_opts_t */
    bad[2].tags = many, bad[2].tags_count = TC_MAX_TAGS + 1;
    bad[3].tags = &null_tag, bad[3].tags_count = 1;
    bad[4].tags = &empty_tag, bad[4].tags_count = 1;
    bad[5].tags = &long_tag, bad[5].tags_count = 1;
    bad[6].tags = NULL, bad[6].tags_count = 0; /* fine: the control */
    rec_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    rec_init(r);
    for (int i = 0; i < 7; i++) {
        int want = i < 6 ? TC_EINVAL : 0;
        char k[16];
        snprintf(k, sizeof k, "bad%d", i);
        cr_assert_eq(tc_set_opts(c, k, strlen(k), "v", 1, &bad[i]), want, "opts %d", i);
        tc_test_expect_value(direct, k, strlen(k), i < 6 ? NULL : "v", "after tc_set_opts");
        snprintf(k, sizeof k, "fbad%d", i);
        tc_ref_t *ref = NULL;
        cr_assert_eq(tc_fetch_opts(c, k, strlen(k), load_fixed, (void *)"L", &bad[i], &ref),
                     want, "fetch opts %d", i);
        tc_ref_release(ref);
        tc_test_expect_value(direct, k, strlen(k), i < 6 ? NULL : "L", "after tc_fetch_opts");
        snprintf(k, sizeof k, "mbad%d", i);
        const tc_item_t item = {k, strlen(k), "v", 1};
        cr_assert_eq(tc_mset(c, &item, 1, &bad[i], NULL), want, "mset opts %d", i);
        snprintf(k, sizeof k, "mfbad%d", i);
        const tc_buf_t key = {k, strlen(k)};
        int code = 0;
        cr_assert_eq(tc_mfetch(c, &key, 1, rec_loader, r, &bad[i], &ref, &code), want,
                     "mfetch opts %d", i);
        tc_ref_release(i < 6 ? NULL : ref);
        size_t warmed = 0;
        cr_assert_eq(tc_warm(c, &key, 1, rec_loader, r, &bad[i], &warmed), want, "warm opts %d",
                     i);
    }
    cr_assert_eq(r->calls, 1, "a refused call ran its loader"); /* the control's mfetch */
    cr_assert_eq(tc_set_opts(c, S("nullopts"), S("v"), NULL), 0, "NULL opts: defaults");
    cr_assert_eq(tc_set_opts(NULL, S("k"), S("v"), NULL), TC_EINVAL);
    cr_assert_eq(tc_set_opts(c, "", 0, S("v"), NULL), TC_EKEYLEN);
    cr_assert_eq(tc_set_opts(c, S("k"), NULL, 1, NULL), TC_EINVAL);
    free(r);
    tc_close(direct);
    tc_close(c);
}

static int load_with_ttl(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)arg;
    (void)key;
    (void)klen;
    tc_load_set_ttl(load, 20000);
    return tc_load_set_value(load, S("L"));
}

Test(bulk, opts_ttl) {
    tc_config_t cfg;
    config(&cfg, OPFX "ttl:");
    cfg.default_ttl_ms = 60000;
    const tc_ttl_rule_t rule = {"r:", 2, 9000, 0};
    cfg.ttl_rules = &rule;
    cfg.ttl_rules_count = 1;
    tc_cache_t *c = open_cfg(&cfg, "inval");
    tc_opts_t o = TC_OPTS_INIT;
    o.ttl_ms = 5000;
    cr_assert_eq(tc_set_opts(c, S("a"), S("v"), &o), 0);
    expect_pttl(OPFX "ttl:", "a", 5000);
    cr_assert_eq(tc_set_opts(c, S("r:y"), S("v"), &o), 0);
    expect_pttl(OPFX "ttl:", "r:y", 5000); /* the call's TTL wins over the rule */
    tc_opts_t zero = TC_OPTS_INIT;
    cr_assert_eq(tc_set_opts(c, S("b"), S("v"), &zero), 0);
    expect_pttl(OPFX "ttl:", "b", 60000);
    cr_assert_eq(tc_set_opts(c, S("r:x"), S("v"), &zero), 0);
    expect_pttl(OPFX "ttl:", "r:x", 9000);
    o.ttl_ms = 7000;
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch_opts(c, S("f1"), load_fixed, (void *)"L", &o, &ref), 0);
    tc_ref_release(ref);
    expect_pttl(OPFX "ttl:", "f1", 7000);
    cr_assert_eq(tc_fetch_opts(c, S("f2"), load_with_ttl, NULL, &o, &ref), 0);
    tc_ref_release(ref);
    expect_pttl(OPFX "ttl:", "f2", 20000); /* the loader's TTL wins */
    o.ttl_ms = 3000;
    const tc_item_t items[] = {{"m1", 2, "v", 1}, {"m2", 2, "v", 1}};
    cr_assert_eq(tc_mset(c, items, 2, &o, NULL), 0);
    expect_pttl(OPFX "ttl:", "m1", 3000);
    expect_pttl(OPFX "ttl:", "m2", 3000);
    tc_close(c);
}

/* TC_OPT_NO_L1: writes and loads keep nothing in this process's L1; reads skip it. */
Test(bulk, opt_no_l1) {
    tc_cache_t *c = open_cache(OPFX "nol1:");
    tc_cache_t *deaf = open_deaf(OPFX "nol1:");
    tc_opts_t o = TC_OPTS_INIT;
    o.flags = TC_OPT_NO_L1;
    /* A write replaces this process's copy but keeps nothing. */
    cr_assert_eq(tc_set(c, S("k"), S("old"), 0), 0);
    uint64_t entries = stats(c).l1_entries;
    cr_assert_eq(tc_set_opts(c, S("k"), S("new"), &o), 0);
    cr_assert_eq(tc_set_opts(c, S("fresh"), S("v"), &o), 0);
    cr_assert_leq(stats(c).l1_entries, entries, "a NO_L1 write was kept in L1");
    tc_stats_t s0 = stats(c);
    tc_test_expect_value(c, S("k"), "new", "after a NO_L1 write");
    tc_test_expect_value(c, S("fresh"), "v", "after a NO_L1 write");
    tc_stats_t s1 = stats(c);
    cr_assert_eq(s1.l1_hits, s0.l1_hits, "a NO_L1 write was served from L1");
    cr_assert_eq(s1.l2_hits - s0.l2_hits, 2);
    /* mset and loads too. */
    entries = stats(c).l1_entries;
    const tc_item_t items[] = {{"m1", 2, "v", 1}, {"m2", 2, "v", 1}};
    cr_assert_eq(tc_mset(c, items, 2, &o, NULL), 0);
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch_opts(c, S("f"), load_fixed, (void *)"L", &o, &ref), 0);
    cr_assert(ref_is(ref, "L"));
    tc_ref_release(ref);
    rec_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    rec_init(r);
    const tc_buf_t mk[] = {{"mf1", 3}, {"mf2", 3}};
    tc_ref_t *refs[2];
    int codes[2];
    cr_assert_eq(tc_mfetch(c, mk, 2, rec_loader, r, &o, refs, codes), 0);
    cr_assert(codes[0] == 0 && ref_is(refs[0], "L-mf1"));
    release_all(refs, 2);
    cr_assert_eq(stats(c).l1_entries, entries, "NO_L1 mset / fetch / mfetch kept values");
    cr_assert(raw_exists(OPFX "nol1:", 'k', S("f")) && raw_exists(OPFX "nol1:", 'k', S("mf2")),
              "NO_L1 loads are still stored in Redis");
    /* Reads skip L1: this process holds "s" = v1 while Redis has v2 (written by a cache
     * whose messages this one does not hear). */
    cr_assert_eq(tc_set(c, S("s"), S("v1"), 0), 0);
    cr_assert_eq(tc_set(deaf, S("s"), S("v2"), 0), 0);
    tc_test_expect_value(c, S("s"), "v1", "L1 (the setup)");
    cr_assert_eq(tc_fetch_opts(c, S("s"), load_fixed, (void *)"never", &o, &ref), 0);
    cr_assert(ref_is(ref, "v2"), "a NO_L1 fetch was answered from L1");
    tc_ref_release(ref);
    const tc_buf_t sk = {"s", 1};
    rec_reset(r);
    cr_assert_eq(tc_mfetch(c, &sk, 1, rec_loader, r, &o, refs, codes), 0);
    cr_assert(codes[0] == 0 && ref_is(refs[0], "v2"), "a NO_L1 mfetch was answered from L1");
    cr_assert_eq(r->calls, 0);
    release_all(refs, 1);
    free(r);
    tc_close(deaf);
    tc_close(c);
}

/* ============================== forks ============================== */

static int nop_batch(void *arg, tc_batch_t *b) {
    (void)arg;
    (void)b;
    return 0;
}

static int nop_key(void *arg, const void *key, size_t klen) {
    (void)arg;
    (void)key;
    (void)klen;
    return 0;
}

Test(bulk, calls_in_a_fork_child_return_eforked) {
    tc_cache_t *c = open_cache("t:bfork:");
    cr_assert_eq(tc_set(c, S("k"), S("v"), 0), 0);
    pid_t pid = fork();
    if (pid == 0) {
        const tc_buf_t k = {"k", 1};
        const tc_item_t item = {"k", 1, "v", 1};
        tc_ref_t *ref = NULL;
        int code = 0, bad = 0;
        size_t warmed = 0;
        bad |= tc_mget(c, &k, 1, &ref, &code) != TC_EFORKED;
        bad |= tc_mset(c, &item, 1, NULL, NULL) != TC_EFORKED;
        bad |= tc_mdel(c, &k, 1, NULL) != TC_EFORKED;
        bad |= tc_mfetch(c, &k, 1, nop_batch, NULL, NULL, &ref, &code) != TC_EFORKED;
        bad |= tc_warm(c, &k, 1, nop_batch, NULL, NULL, &warmed) != TC_EFORKED;
        bad |= tc_hot_keys(c, 10, nop_key, NULL) != TC_EFORKED;
        bad |= tc_set_opts(c, S("k"), S("v"), NULL) != TC_EFORKED;
        bad |= tc_fetch_opts(c, S("k"), load_fixed, (void *)"x", NULL, &ref) != TC_EFORKED;
        _exit(bad);
    }
    cr_assert_gt(pid, 0);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "a bulk call in the fork child did not return TC_EFORKED");
    tc_close(c);
}
