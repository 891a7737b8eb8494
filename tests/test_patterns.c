/*
 * test_patterns.c - invalidating many keys at once: tags (tc_set_opts / tc_fetch_opts +
 * tc_invalidate_tag), binary prefixes (tc_invalidate_prefix), namespaces
 * (tc_invalidate_namespace, ns_separator) and the whole cache (tc_clear).
 *
 * Everything is real: a private redis-server, this process's cache, and tc-peer processes
 * with their own L1. A key counts as "held" by a process only after a read of it was an
 * L1 hit there, so an eviction is proven, never assumed. Redis is judged two ways: raw
 * (EXISTS / GET of <key_prefix>"k:"<key>, where tags and prefixes delete for real) and
 * through a cache with L1 disabled (where namespaces and clears hide values lazily, judged
 * by the marks: at once by the calling cache, within one message delay by the others).
 *
 * The races follow the header's definition: a tc-peer writer (`seqw`) writes keys with
 * increasing sequence numbers and records, in a file both processes map, which write it
 * began last and which completed last per key. Before each invalidation the test
 * snapshots the completed writes; after it returns, no read (the calling cache's at once,
 * and for tags and prefixes Redis's; every other cache's after one message delay) may show
 * a sequence at or below the snapshot for a matching key, keys that do not match must keep
 * their newest value, and every write begun after the return must survive to the end.
 * "Another process" is any other cache handle: each keeps its own L1 and its own copy of
 * the namespace and clear marks.
 *
 * Loads in flight: a tc_fetch whose loader is held at a gate runs in a cache on another
 * invalidation channel, so only Redis (the load's lease) can stop its store; the test
 * checks that the lock exists, invalidates, releases the loader and checks that nothing
 * was kept.
 */
/* tc-test-labels: integration concurrency */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"
#include "valfmt.h"

#include <criterion/criterion.h>

#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
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
    redis = NULL;
}

TestSuite(patterns, .init = setup, .fini = teardown, .timeout = 180);

/* ---- caches ---- */

static tc_cache_t *open_cache(const char *prefix, const char *channel) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), prefix, channel);
    cfg.command_timeout_ms = 2000; /* no fault here: a slow box must not fake one */
    return tc_test_open(&cfg);
}

/* A cache with L1 off: every read is Redis's answer (marks included). */
static tc_cache_t *open_direct(const char *prefix, const char *channel) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), prefix, channel);
    cfg.command_timeout_ms = 2000;
    cfg.l1_max_bytes = 0;
    return tc_test_open(&cfg);
}

static tc_cache_t *open_local(void) {
    tc_config_t cfg;
    tc_test_config(&cfg, NULL, "t:local:", "t:local:");
    return tc_test_open(&cfg);
}

static const char *const PEER_ENV[] = {"TC_PEER_COMMAND_TIMEOUT=2000", NULL};

static tc_test_peer_t *start_peer(const char *prefix, const char *channel) {
    return tc_test_peer_start(tc_test_redis_url(redis), prefix, channel, PEER_ENV);
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

/* c holds k = v in its L1, proven by a hit. */
static void hold_locally(tc_cache_t *c, const void *k, size_t kl, const char *v) {
    cr_assert(tc_test_hold_locally(c, k, kl, v, strlen(v), 2000u * TC_TEST_SLOW),
              "'%.*s' never came to be held in L1 as '%s'", (int)kl, (const char *)k, v);
}

/* ---- raw Redis ---- */

/* <prefix><kind>:<bytes> as one Redis key, into out; its length. */
static size_t redis_key(const char *prefix, char kind, const void *b, size_t bl, char *out) {
    size_t pl = strlen(prefix);
    memcpy(out, prefix, pl);
    out[pl] = kind;
    out[pl + 1] = ':';
    memcpy(out + pl + 2, b, bl);
    return pl + 2 + bl;
}

static int raw_exists(const char *prefix, char kind, const void *b, size_t bl) {
    char *key = malloc(strlen(prefix) + 2 + bl);
    cr_assert_not_null(key);
    size_t n = redis_key(prefix, kind, b, bl, key);
    redisReply *r = tc_test_redis_cmd(redis, "EXISTS %b", key, n);
    int e = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    free(key);
    return e;
}

/* Keys matching a glob (SCAN, so any count). */
static long raw_count(const char *pattern) {
    long n = 0;
    char cursor[32] = "0";
    do {
        redisReply *r =
            tc_test_redis_cmd(redis, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        n += (long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
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

/* Poll the peer until it serves v (NULL: a miss) within NOTICE_MS. */
static void peer_wait(tc_test_peer_t *p, const void *k, size_t kl, const char *v) {
    if (tc_test_peer_wait_get(p, k, kl, v, v ? strlen(v) : 0, NOTICE_MS) < 0)
        cr_assert_fail("peer: '%.*s' reads '%s', want %s%s%s", (int)kl, (const char *)k,
                       peer_get(p, k, kl), v ? "'" : "", v ? v : "a miss", v ? "'" : "");
}

/* The peer holds k = v in its L1 (proven by an l1_hits increase). */
static void peer_hold(tc_test_peer_t *p, const void *k, size_t kl, const char *v) {
    peer_wait(p, k, kl, v);
    uint64_t hits = peer_stat(p, "l1_hits");
    cr_assert(peer_reply_is(peer_get(p, k, kl), v));
    cr_assert_gt(peer_stat(p, "l1_hits"), hits, "'%.*s' is not in the peer's L1", (int)kl,
                 (const char *)k);
}

static const char *peer_setopts(tc_test_peer_t *p, const void *k, size_t kl, const char *v,
                                const void *tag, size_t tl) {
    char hk[1024], hv[600], ht[2100];
    tc_test_hex(k, kl, hk);
    tc_test_hex(v, strlen(v), hv);
    if (!tag)
        return tc_test_peer_cmd(p, "setopts %s %s 0 0", hk, hv);
    tc_test_hex(tag, tl, ht);
    return tc_test_peer_cmd(p, "setopts %s %s 0 0 %s", hk, hv, ht);
}

/* ---- options ---- */

static int set_tagged(tc_cache_t *c, const void *k, size_t kl, const char *v,
                      const tc_buf_t *tags, size_t ntags, uint64_t ttl_ms) {
    tc_opts_t o = TC_OPTS_INIT;
    o.tags = tags;
    o.tags_count = ntags;
    o.ttl_ms = ttl_ms;
    return tc_set_opts(c, k, kl, v, strlen(v), &o);
}

static size_t inv_tag(tc_cache_t *c, const void *t, size_t tl) {
    size_t removed = 12345;
    int rc = tc_invalidate_tag(c, t, tl, &removed);
    cr_assert_eq(rc, 0, "tc_invalidate_tag: %s", tc_err_name(rc));
    return removed;
}

static size_t inv_prefix(tc_cache_t *c, const void *p, size_t pl) {
    size_t removed = 12345;
    int rc = tc_invalidate_prefix(c, p, pl, &removed);
    cr_assert_eq(rc, 0, "tc_invalidate_prefix: %s", tc_err_name(rc));
    return removed;
}

/* ============================== tags ============================== */

#define TPFX "t:tag:"

/* Several tags per key, binary tags (NUL inside, and a tag that is another's prefix),
 * removal from Redis and from every L1, and the removed counts. */
Test(patterns, tag_removes_its_members_from_redis_and_every_l1) {
    tc_cache_t *c = open_cache(TPFX, TPFX "inval");
    tc_test_peer_t *p = start_peer(TPFX, TPFX "inval");
    static const char k5[] = "k\0\r\n5";
    const tc_buf_t A = {"A", 1}, B = {"B", 1}, CX = {"C\0x", 3};
    const tc_buf_t ab[] = {A, B};
    cr_assert_eq(set_tagged(c, S("k1"), "v1", ab, 2, 0), 0);
    cr_assert_eq(set_tagged(c, S("k2"), "v2", &B, 1, 0), 0);
    cr_assert_eq(set_tagged(c, S("k3"), "v3", &CX, 1, 0), 0);
    cr_assert_eq(tc_set(c, S("k4"), S("v4"), 0), 0);
    cr_assert_eq(set_tagged(c, S(k5), "v5", &B, 1, 0), 0);
    struct {
        const char *k;
        size_t kl;
        const char *v;
    } keys[] = {
        {S("k1"), "v1"}, {S("k2"), "v2"}, {S("k3"), "v3"}, {S("k4"), "v4"}, {S(k5), "v5"}};
    for (size_t i = 0; i < 5; i++) {
        hold_locally(c, keys[i].k, keys[i].kl, keys[i].v);
        peer_hold(p, keys[i].k, keys[i].kl, keys[i].v);
    }
    uint64_t inv0 = stats(c).keys_invalidated;

    cr_assert_eq(inv_tag(c, S("A")), 1, "tag A has one member");
    cr_assert_not(raw_exists(TPFX, 'k', S("k1")), "k1 is still in Redis");
    wait_value(c, S("k1"), NULL, "this process");
    peer_wait(p, S("k1"), NULL);
    for (size_t i = 1; i < 5; i++) { /* the others stay, in Redis and in the peer's L1 */
        cr_assert(raw_exists(TPFX, 'k', keys[i].k, keys[i].kl));
        peer_hold(p, keys[i].k, keys[i].kl, keys[i].v);
    }

    /* Binary tags are exact: "C" and "C\0y" are other tags than "C\0x". */
    cr_assert_eq(inv_tag(c, S("C")), 0);
    cr_assert_eq(inv_tag(c, S("C\0y")), 0);
    cr_assert(raw_exists(TPFX, 'k', S("k3")), "a tag sharing bytes with k3's removed it");
    tc_test_expect_value(c, S("k3"), "v3", "this process");

    cr_assert_eq(inv_tag(c, S("B")), 2, "B's live members are k2 and the binary key");
    cr_assert_not(raw_exists(TPFX, 'k', S("k2")));
    cr_assert_not(raw_exists(TPFX, 'k', S(k5)));
    peer_wait(p, S("k2"), NULL);
    peer_wait(p, S(k5), NULL);
    wait_value(c, S(k5), NULL, "this process");
    cr_assert_eq(stats(c).keys_invalidated - inv0, 3, "keys_invalidated counts 1 + 0 + 2");

    /* From the other process: this process's L1 copy goes too. */
    hold_locally(c, S("k3"), "v3");
    char ht[16];
    tc_test_hex("C\0x", 3, ht);
    cr_assert_str_eq(tc_test_peer_cmd(p, "invtag %s", ht), "ok 0 1");
    cr_assert_not(raw_exists(TPFX, 'k', S("k3")));
    wait_value(c, S("k3"), NULL, "this process");
    cr_assert_eq(peer_stat(p, "keys_invalidated"), 1);

    /* Untagged k4 survived all of it, everywhere. */
    hold_locally(c, S("k4"), "v4");
    peer_hold(p, S("k4"), "v4");
    /* Invalidating again removes nothing more. */
    cr_assert_eq(inv_tag(c, S("B")), 0);
    tc_test_peer_stop(p);
    tc_close(c);
}

/* TC_MAX_TAGS tags of TC_MAX_TAG_LEN bytes on one value: each one reaches it. */
Test(patterns, tag_limits_are_accepted) {
    tc_cache_t *c = open_cache(TPFX "lim:", TPFX "lim:inval");
    static char big[TC_MAX_TAGS][TC_MAX_TAG_LEN];
    tc_buf_t tags[TC_MAX_TAGS];
    for (unsigned i = 0; i < TC_MAX_TAGS; i++) {
        memset(big[i], 'a' + (int)(i % 26), sizeof big[i]);
        big[i][0] = (char)i; /* distinct, binary */
        tags[i] = (tc_buf_t){big[i], TC_MAX_TAG_LEN};
    }
    cr_assert_eq(set_tagged(c, S("many"), "v", tags, TC_MAX_TAGS, 0), 0);
    cr_assert_eq(set_tagged(c, S("other"), "w", tags, 1, 0), 0);
    cr_assert_eq(inv_tag(c, big[TC_MAX_TAGS - 1], TC_MAX_TAG_LEN), 1);
    cr_assert_not(raw_exists(TPFX "lim:", 'k', S("many")));
    wait_value(c, S("many"), NULL, "this process");
    tc_test_expect_value(c, S("other"), "w", "this process");
    cr_assert_eq(inv_tag(c, big[0], TC_MAX_TAG_LEN), 1, "'other' is big[0]'s member");
    tc_close(c);
}

/* "A write that carries no tag removes the key from no tag": the stored value is not the
 * tagged one, so the tag skips it; the control (rewritten with the tag) is removed. */
Test(patterns, tag_skips_keys_rewritten_without_it) {
    tc_cache_t *c = open_cache(TPFX "rw:", TPFX "rw:inval");
    tc_cache_t *direct = open_direct(TPFX "rw:", TPFX "rw:inval");
    tc_test_peer_t *p = start_peer(TPFX "rw:", TPFX "rw:inval");
    const tc_buf_t T = {"T", 1}, U = {"U", 1};
    const char *names[] = {"plain", "peer", "other-tag", "del-then-plain", "control"};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(set_tagged(c, names[i], strlen(names[i]), "old", &T, 1, 0), 0);
    cr_assert_eq(tc_set(c, S("plain"), S("new"), 0), 0);
    cr_assert_str_eq(tc_test_peer_cmd(p, "set %s %s", "70656572", "6e6577"), "ok 0");
    cr_assert_eq(set_tagged(c, S("other-tag"), "new", &U, 1, 0), 0);
    cr_assert_eq(tc_del(c, S("del-then-plain")), 0);
    cr_assert_eq(tc_set(c, S("del-then-plain"), S("new"), 0), 0);
    /* The control: rewritten with T, by the other process. */
    cr_assert_str_eq(peer_setopts(p, S("control"), "new", "T", 1), "ok 0");
    for (int i = 0; i < 5; i++)
        peer_hold(p, names[i], strlen(names[i]), "new");

    cr_assert_eq(inv_tag(c, S("T")), 1, "only the control still carries T");
    for (int i = 0; i < 4; i++) {
        tc_test_expect_value(direct, names[i], strlen(names[i]), "new", "Redis");
        wait_value(c, names[i], strlen(names[i]), "new", "this process");
        peer_hold(p, names[i], strlen(names[i]), "new");
    }
    tc_test_expect_value(direct, S("control"), NULL, "Redis");
    peer_wait(p, S("control"), NULL);
    cr_assert_eq(inv_tag(c, S("U")), 1, "U reaches the key rewritten with it");
    tc_test_expect_value(direct, S("other-tag"), NULL, "Redis");
    tc_test_peer_stop(p);
    tc_close(direct);
    tc_close(c);
}

/* Loaded values carry the options' tags (tc_fetch_opts). */
static int load_fixed(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)key;
    (void)klen;
    return tc_load_set_value(load, arg, strlen(arg));
}

Test(patterns, tag_reaches_values_loaded_with_it) {
    tc_cache_t *c = open_cache(TPFX "ld:", TPFX "ld:inval");
    tc_test_peer_t *p = start_peer(TPFX "ld:", TPFX "ld:inval");
    const tc_buf_t T = {"loaded\0tag", 10};
    tc_opts_t o = TC_OPTS_INIT;
    o.tags = &T;
    o.tags_count = 1;
    for (int i = 0; i < 3; i++) {
        char k[8];
        snprintf(k, sizeof k, "f%d", i);
        tc_ref_t *ref = NULL;
        cr_assert_eq(tc_fetch_opts(c, k, strlen(k), load_fixed, (void *)"L", &o, &ref), 0);
        tc_ref_release(ref);
        hold_locally(c, k, strlen(k), "L");
        peer_hold(p, k, strlen(k), "L");
    }
    char ht[32];
    tc_test_hex(T.data, T.len, ht);
    cr_assert_str_eq(tc_test_peer_cmd(p, "invtag %s", ht), "ok 0 3");
    for (int i = 0; i < 3; i++) {
        char k[8];
        snprintf(k, sizeof k, "f%d", i);
        cr_assert_not(raw_exists(TPFX "ld:", 'k', k, strlen(k)));
        wait_value(c, k, strlen(k), NULL, "this process");
        peer_wait(p, k, strlen(k), NULL);
    }
    tc_test_peer_stop(p);
    tc_close(c);
}

/* More members than one step (500) and one pipeline (1000): all removed, nothing else. */
#define BIG_TAG 3000

Test(patterns, tag_with_3000_members_is_fully_removed) {
    tc_cache_t *c = open_cache(TPFX "big:", TPFX "big:inval");
    const tc_buf_t T = {"big", 3};
    for (int i = 0; i < BIG_TAG; i++) {
        char k[16];
        snprintf(k, sizeof k, "tg:%d", i);
        cr_assert_eq(set_tagged(c, k, strlen(k), "v", &T, 1, 0), 0);
    }
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof k, "tu:%d", i);
        cr_assert_eq(tc_set(c, k, strlen(k), "u", 1, 0), 0);
    }
    cr_assert_eq(raw_count(TPFX "big:k:tg:*"), BIG_TAG);
    uint64_t inv0 = stats(c).keys_invalidated;
    cr_assert_eq(inv_tag(c, S("big")), BIG_TAG);
    cr_assert_eq(raw_count(TPFX "big:k:tg:*"), 0, "members left behind in Redis");
    cr_assert_eq(raw_count(TPFX "big:k:tu:*"), 10, "untagged keys were removed");
    cr_assert_eq(stats(c).keys_invalidated - inv0, BIG_TAG);
    for (int i = 0; i < BIG_TAG; i += 250) {
        char k[16];
        snprintf(k, sizeof k, "tg:%d", i);
        wait_value(c, k, strlen(k), NULL, "this process");
    }
    tc_close(c);
}

/* The tag's bookkeeping (<key_prefix>"t:"<tag>, a sorted set) lives as long as a member
 * may: a long-lived member is still reached after short ones expired, and once every
 * member's TTL passed the bookkeeping is gone too. */
Test(patterns, tag_bookkeeping_expires_with_its_members) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), TPFX "exp:", TPFX "exp:inval");
    cfg.command_timeout_ms = 2000;
    cfg.ttl_jitter = 0;
    tc_cache_t *c = tc_test_open(&cfg);
    const tc_buf_t SH = {"short", 5}, LG = {"long", 4};
    for (int i = 0; i < 3; i++) {
        char k[8];
        snprintf(k, sizeof k, "e%d", i);
        cr_assert_eq(set_tagged(c, k, strlen(k), "v", &SH, 1, 300), 0);
    }
    cr_assert_eq(set_tagged(c, S("l1"), "v", &LG, 1, 300), 0);
    cr_assert_eq(set_tagged(c, S("l2"), "v", &LG, 1, 60000), 0);
    redisReply *r = tc_test_redis_cmd(redis, "TYPE %s", TPFX "exp:t:short");
    cr_assert(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "zset") == 0,
              "no sorted set at <key_prefix>t:short (TYPE says %s)", r->str);
    freeReplyObject(r);

    uint64_t deadline = tc_test_now_ms() + 5000u * TC_TEST_SLOW;
    while (raw_exists(TPFX "exp:", 't', S("short"))) {
        cr_assert_lt(tc_test_now_ms(), deadline,
                     "the tag's sorted set outlived all its members' TTLs");
        tc_test_sleep_ms(50);
    }
    cr_assert_not(raw_exists(TPFX "exp:", 'k', S("e0")), "a 300 ms member still exists");
    cr_assert(raw_exists(TPFX "exp:", 't', S("long")), "a tag with a live member expired");
    cr_assert_eq(inv_tag(c, S("long")), 1, "the live member is reached, the expired not");
    cr_assert_not(raw_exists(TPFX "exp:", 'k', S("l2")));
    tc_close(c);
}

Test(patterns, tag_bad_input) {
    tc_cache_t *c = open_cache(TPFX "bad:", TPFX "bad:inval");
    static char big[TC_MAX_TAG_LEN + 1];
    memset(big, 't', sizeof big);
    size_t removed = 7;
    cr_assert_eq(tc_invalidate_tag(NULL, S("t"), &removed), TC_EINVAL);
    cr_assert_eq(tc_invalidate_tag(c, NULL, 1, &removed), TC_EINVAL);
    cr_assert_eq(tc_invalidate_tag(c, "t", 0, &removed), TC_EINVAL);
    cr_assert_eq(tc_invalidate_tag(c, big, TC_MAX_TAG_LEN + 1, &removed), TC_EINVAL);
    cr_assert_eq(tc_invalidate_tag(c, big, TC_MAX_TAG_LEN, &removed), 0);
    cr_assert_eq(removed, 0);
    cr_assert_eq(tc_invalidate_tag(c, S("t"), NULL), 0, "removed may be NULL");
    tc_close(c);

    /* Tags live in Redis: an L1-only cache refuses them. */
    tc_cache_t *l = open_local();
    const tc_buf_t T = {"t", 1};
    cr_assert_eq(tc_invalidate_tag(l, S("t"), &removed), TC_EINVAL);
    cr_assert_eq(set_tagged(l, S("k"), "v", &T, 1, 0), TC_EINVAL);
    tc_test_expect_value(l, S("k"), NULL, "a refused write");
    cr_assert_eq(set_tagged(l, S("k"), "v", NULL, 0, 0), 0, "no tags: fine without Redis");
    tc_test_expect_value(l, S("k"), "v", "L1-only");
    tc_close(l);
}

/* Plain keys: no tags, namespaces or clears (they need tiercache's own values). Prefixes
 * delete plain Redis keys, and tracking evicts them everywhere. */
Test(patterns, plain_keys_refuse_tags_namespaces_and_clear_but_delete_prefixes) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), "pk:", "t:pk:inval");
    cfg.command_timeout_ms = 2000;
    cfg.plain_keys = 1;
    cfg.tracking = TC_TRACKING_BCAST;
    tc_cache_t *a = tc_test_open(&cfg), *b = tc_test_open(&cfg);
    const tc_buf_t T = {"t", 1};
    size_t removed = 0;
    cr_assert_eq(tc_invalidate_tag(a, S("t"), &removed), TC_EINVAL);
    cr_assert_eq(set_tagged(a, S("pk:x"), "v", &T, 1, 0), TC_EINVAL);
    cr_assert_eq(tc_invalidate_namespace(a, S("pk")), TC_EINVAL);
    cr_assert_eq(tc_clear(a), TC_EINVAL);

    freeReplyObject(tc_test_redis_cmd(redis, "SET pk:p1 a"));
    freeReplyObject(tc_test_redis_cmd(redis, "SET pk:p2 b"));
    freeReplyObject(tc_test_redis_cmd(redis, "SET pk:q1 c"));
    hold_locally(b, S("pk:p1"), "a");
    hold_locally(b, S("pk:p2"), "b");
    hold_locally(b, S("pk:q1"), "c");
    cr_assert_eq(inv_prefix(a, S("pk:p")), 2);
    redisReply *r = tc_test_redis_cmd(redis, "EXISTS pk:p1 pk:p2 pk:q1");
    cr_assert_eq(r->integer, 1, "pk:p1 and pk:p2 must be gone, pk:q1 kept");
    freeReplyObject(r);
    wait_value(b, S("pk:p1"), NULL, "b (tracking)");
    wait_value(b, S("pk:p2"), NULL, "b (tracking)");
    tc_test_expect_value(b, S("pk:q1"), "c", "b");
    tc_close(b);
    tc_close(a);
}

/* ============================== prefixes ============================== */

#define PPFX "t:pfx:"

/* Glob-special prefix bytes are matched literally; NUL bytes too. */
Test(patterns, prefix_removes_matching_keys_from_redis_and_every_l1) {
    tc_cache_t *c = open_cache(PPFX, PPFX "inval");
    tc_cache_t *other = open_cache("t:pfx2:", "t:pfx2:inval"); /* another key_prefix */
    tc_test_peer_t *p = start_peer(PPFX, PPFX "inval");
    static const char P[] = "a*b?c[d]e\\f";
    struct {
        const char *k;
        size_t kl;
        int group; /* 1: starts with P; 2: starts with "n\0a"; 0: neither */
    } keys[] = {
        {S("a*b?c[d]e\\f1"), 1},
        {S("a*b?c[d]e\\f2:x"), 1},
        {S("a*b?c[d]e\\f"), 1},
        {S("aXbZcdef1"), 0},   /* what the unescaped glob a*b?c[d]e\f* matches */
        {S("a*b?cde\\f1"), 0}, /* ... with [ ] left unescaped */
        {S("a*b?c[d]ef1"), 0}, /* ... with \ left unescaped */
        {S("a*b?c[d]e\\"), 0}, /* shorter than the prefix */
        {S("a*b?c[d]e\\g1"), 0},
        {S("zzz"), 0},
        {S("n\0a1"), 2},
        {S("n\0a"), 2},
        {S("n\0b1"), 0},
        {S("n"), 0},
    };
    size_t n = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(tc_set(c, keys[i].k, keys[i].kl, "v", 1, 0), 0);
        hold_locally(c, keys[i].k, keys[i].kl, "v");
        peer_hold(p, keys[i].k, keys[i].kl, "v");
    }
    cr_assert_eq(tc_set(other, S("a*b?c[d]e\\f1"), S("o"), 0), 0);
    uint64_t inv0 = stats(c).keys_invalidated;

    cr_assert_eq(inv_prefix(c, S(P)), 3, "three keys start with the glob-special prefix");
    cr_assert_eq(stats(c).keys_invalidated - inv0, 3);
    for (size_t i = 0; i < n; i++) {
        int gone = keys[i].group == 1;
        cr_assert_eq(raw_exists(PPFX, 'k', keys[i].k, keys[i].kl), !gone, "Redis: key %zu", i);
        wait_value(c, keys[i].k, keys[i].kl, gone ? NULL : "v", "this process");
        peer_wait(p, keys[i].k, keys[i].kl, gone ? NULL : "v");
    }
    tc_test_expect_value(other, S("a*b?c[d]e\\f1"), "o", "another key_prefix");

    /* A binary prefix, from the peer: this process's L1 follows. */
    char hp[16];
    tc_test_hex("n\0a", 3, hp);
    cr_assert_str_eq(tc_test_peer_cmd(p, "invprefix %s", hp), "ok 0 2");
    for (size_t i = 0; i < n; i++) {
        int gone = keys[i].group != 0;
        cr_assert_eq(raw_exists(PPFX, 'k', keys[i].k, keys[i].kl), !gone, "Redis: key %zu", i);
        wait_value(c, keys[i].k, keys[i].kl, gone ? NULL : "v", "this process");
        peer_wait(p, keys[i].k, keys[i].kl, gone ? NULL : "v");
    }
    /* A write after the call survives. */
    cr_assert_eq(tc_set(c, S("a*b?c[d]e\\f1"), S("new"), 0), 0);
    peer_wait(p, S("a*b?c[d]e\\f1"), "new");
    cr_assert_eq(inv_prefix(c, S("nothing-starts-so")), 0);
    tc_test_peer_stop(p);
    tc_close(other);
    tc_close(c);
}

/* More keys than one SCAN step (1000), among others that do not match. */
Test(patterns, prefix_spans_many_scan_steps) {
    tc_cache_t *c = open_cache(PPFX "many:", PPFX "many:inval");
    for (int i = 0; i < 3000; i++) {
        char k[16];
        snprintf(k, sizeof k, "%s:%d", i < 2500 ? "many" : "manz", i);
        cr_assert_eq(tc_set(c, k, strlen(k), "v", 1, 0), 0);
    }
    cr_assert_eq(inv_prefix(c, S("many:")), 2500);
    cr_assert_eq(raw_count(PPFX "many:k:many:*"), 0, "matching keys left in Redis");
    cr_assert_eq(raw_count(PPFX "many:k:manz:*"), 500, "other keys were removed");
    tc_test_expect_value(c, S("manz:2999"), "v", "this process");
    wait_value(c, S("many:0"), NULL, "this process");
    wait_value(c, S("many:2499"), NULL, "this process");
    tc_close(c);
}

Test(patterns, prefix_bad_input_and_l1_only) {
    tc_cache_t *c = open_cache(PPFX "bad:", PPFX "bad:inval");
    static char big[TC_MAX_KEY_LEN + 1];
    memset(big, 'p', sizeof big);
    size_t removed = 7;
    cr_assert_eq(tc_invalidate_prefix(NULL, S("p"), &removed), TC_EINVAL);
    cr_assert_eq(tc_invalidate_prefix(c, NULL, 1, &removed), TC_EINVAL);
    cr_assert_eq(tc_invalidate_prefix(c, "p", 0, &removed), TC_EKEYLEN);
    cr_assert_eq(tc_invalidate_prefix(c, big, TC_MAX_KEY_LEN + 1, &removed), TC_EKEYLEN);
    cr_assert_eq(tc_invalidate_prefix(c, big, TC_MAX_KEY_LEN, &removed), 0);
    cr_assert_eq(removed, 0);
    cr_assert_eq(tc_set(c, S("pa"), S("v"), 0), 0);
    cr_assert_eq(tc_invalidate_prefix(c, S("p"), NULL), 0, "removed may be NULL");
    wait_value(c, S("pa"), NULL, "this process");
    tc_close(c);

    /* L1-only: the prefix acts on this process's L1. */
    tc_cache_t *l = open_local();
    cr_assert_eq(tc_set(l, S("pa:1"), S("v"), 0), 0);
    cr_assert_eq(tc_set(l, S("pa:2"), S("v"), 0), 0);
    cr_assert_eq(tc_set(l, S("pb:1"), S("v"), 0), 0);
    cr_assert_eq(tc_invalidate_prefix(l, S("pa:"), NULL), 0);
    tc_test_expect_value(l, S("pa:1"), NULL, "L1-only");
    tc_test_expect_value(l, S("pa:2"), NULL, "L1-only");
    tc_test_expect_value(l, S("pb:1"), "v", "L1-only");
    cr_assert_eq(tc_invalidate_prefix(l, "p", 0, NULL), TC_EKEYLEN);
    tc_close(l);
}

/* ============================== namespaces ============================== */

#define NPFX "t:ns:"

Test(patterns, namespace_hides_its_keys_in_every_process) {
    tc_cache_t *c = open_cache(NPFX, NPFX "inval");
    tc_cache_t *direct = open_direct(NPFX, NPFX "inval");
    tc_test_peer_t *p = start_peer(NPFX, NPFX "inval");
    struct {
        const char *k, *v;
        int in_ns;
    } keys[] = {{"user:42:a", "a", 1},  {"user:42:b:c", "bc", 1}, {"user:42:f", "f", 1},
                {"user:420:x", "x", 0}, {"user:4", "4", 0},       {"user:42", "42", 0},
                {"user:43:a", "43a", 0}};
    size_t n = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(tc_set(c, keys[i].k, strlen(keys[i].k), keys[i].v, strlen(keys[i].v), 0),
                     0);
        hold_locally(c, keys[i].k, strlen(keys[i].k), keys[i].v);
        peer_hold(p, keys[i].k, strlen(keys[i].k), keys[i].v);
    }
    uint64_t swept = stats(c).inval_swept, peer_swept = peer_stat(p, "inval_swept");
    uint64_t hidden = stats(direct).values_hidden;

    cr_assert_eq(tc_invalidate_namespace(c, S("user:42")), 0);
    for (size_t i = 0; i < n; i++) /* the calling process: at once */
        tc_test_expect_value(c, keys[i].k, strlen(keys[i].k), keys[i].in_ns ? NULL : keys[i].v,
                             "this process, at the return");
    tc_test_peer_t *fresh = start_peer(NPFX, NPFX "inval"); /* opened after: no L1 copy */
    for (size_t i = 0; i < n; i++) { /* the others: within one message delay */
        const char *k = keys[i].k, *want = keys[i].in_ns ? NULL : keys[i].v;
        wait_value(direct, k, strlen(k), want, "another cache, reading Redis");
        peer_wait(p, k, strlen(k), want);
        peer_wait(fresh, k, strlen(k), want);
    }
    cr_assert_geq(stats(direct).values_hidden - hidden, 3, "values_hidden did not move");
    cr_assert_geq(peer_stat(fresh, "values_hidden"), 3);
    cr_assert_geq(stats(c).inval_swept - swept, 3, "this process swept its 3 entries");
    cr_assert_geq(peer_stat(p, "inval_swept") - peer_swept, 3, "the peer swept its 3");

    /* Written after the bump: visible everywhere, from either process. */
    cr_assert_eq(tc_set(c, S("user:42:a"), S("new-a"), 0), 0);
    cr_assert_str_eq(tc_test_peer_cmd(p, "set %s %s", "757365723a34323a623a63", "6e6577"),
                     "ok 0"); /* user:42:b:c = new */
    wait_value(direct, S("user:42:a"), "new-a", "another cache, reading Redis");
    wait_value(direct, S("user:42:b:c"), "new", "another cache, reading Redis");
    wait_value(c, S("user:42:b:c"), "new", "this process");
    peer_wait(p, S("user:42:a"), "new-a");
    cr_assert(peer_reply_is(peer_get(fresh, S("user:42:a")), "new-a"));
    /* A fetch after the bump loads: the hidden value is no hit. */
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(c, S("user:42:f"), load_fixed, (void *)"loaded", &ref), 0);
    cr_assert(tc_ref_size(ref) == 6 && memcmp(tc_ref_data(ref), "loaded", 6) == 0,
              "tc_fetch served the value the namespace bump hid");
    tc_ref_release(ref);
    tc_test_peer_stop(fresh);
    tc_test_peer_stop(p);
    tc_close(direct);
    tc_close(c);
}

/* A key is in each namespace its separators delimit (up to four). */
Test(patterns, namespace_nesting) {
    tc_cache_t *c = open_cache(NPFX "nest:", NPFX "nest:inval");
    tc_cache_t *direct = open_direct(NPFX "nest:", NPFX "nest:inval");
    const char *keys[] = {"a:b:c", "a:b", "a:x", "a:b:c:d:e", "ab:c", "a", "a:b:c:dd"};
    size_t n = sizeof keys / sizeof keys[0];
    struct {
        const char *ns;
        const char *hidden; /* one char per key: 1 = hidden by this bump */
    } bumps[] = {
        {"a", "1111001"}, {"a:b", "1001001"}, {"a:b:c:d", "0001000"}, {"a:b:c", "0001001"}};
    for (size_t b = 0; b < sizeof bumps / sizeof bumps[0]; b++) {
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(tc_set(c, keys[i], strlen(keys[i]), "v", 1, 0), 0);
            hold_locally(c, keys[i], strlen(keys[i]), "v");
        }
        cr_assert_eq(tc_invalidate_namespace(c, bumps[b].ns, strlen(bumps[b].ns)), 0);
        for (size_t i = 0; i < n; i++) {
            const char *want = bumps[b].hidden[i] == '1' ? NULL : "v";
            char who[64];
            snprintf(who, sizeof who, "after bumping '%s', another cache", bumps[b].ns);
            wait_value(direct, keys[i], strlen(keys[i]), want, who);
            snprintf(who, sizeof who, "after bumping '%s', the bumping cache", bumps[b].ns);
            tc_test_expect_value(c, keys[i], strlen(keys[i]), want, who);
        }
    }
    tc_close(direct);
    tc_close(c);

    /* Another separator. */
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), NPFX "sl:", NPFX "sl:inval");
    cfg.command_timeout_ms = 2000;
    cfg.ns_separator = '/';
    tc_cache_t *s = tc_test_open(&cfg);
    cr_assert_eq(tc_set(s, S("u/1/x"), S("v"), 0), 0);
    cr_assert_eq(tc_set(s, S("u:1:x"), S("v"), 0), 0);
    cr_assert_eq(tc_invalidate_namespace(s, S("u/1")), 0);
    wait_value(s, S("u/1/x"), NULL, "'/' separator");
    tc_test_expect_value(s, S("u:1:x"), "v", "':' is no separator here");
    cr_assert_eq(tc_invalidate_namespace(s, S("u/1/")), TC_EINVAL);
    tc_close(s);
}

/* The calling cache's reads miss what a bump or clear hid as soon as the call returns, even
 * straight from Redis (L1 off); another cache's reads within one message delay. */
Test(patterns, namespace_and_clear_reads_miss_at_once_here_and_soon_elsewhere) {
    tc_cache_t *c = open_direct(NPFX "mk:", NPFX "mk:inval");
    tc_cache_t *other = open_direct(NPFX "mk:", NPFX "mk:inval");
    for (int round = 0; round < 20; round++) {
        char k[16];
        snprintf(k, sizeof k, "ns%d:k", round);
        cr_assert_eq(tc_set(c, k, strlen(k), "v", 1, 0), 0);
        cr_assert_eq(tc_set(c, S("other"), S("v"), 0), 0);
        tc_test_expect_value(other, k, strlen(k), "v", "the other cache, before");
        cr_assert_eq(tc_invalidate_namespace(c, k, 3 + (round >= 10)), 0);
        tc_test_expect_value(c, k, strlen(k), NULL, "the calling cache, at the return");
        tc_test_expect_value(c, S("other"), "v", "the calling cache, outside the namespace");
        wait_value(other, k, strlen(k), NULL, "another cache, a message delay later");
        cr_assert_eq(tc_clear(c), 0);
        tc_test_expect_value(c, S("other"), NULL, "the calling cache, at the clear's return");
        wait_value(other, S("other"), NULL, "another cache, a message delay after the clear");
        cr_assert_eq(tc_set(other, S("other"), S("w"), 0), 0);
        tc_test_expect_value(c, S("other"), "w", "written after the clear");
    }
    tc_close(other);
    tc_close(c);
}

Test(patterns, namespace_bad_input_and_l1_only) {
    tc_cache_t *c = open_cache(NPFX "bad:", NPFX "bad:inval");
    static char big[TC_MAX_KEY_LEN + 1];
    memset(big, 'n', sizeof big);
    cr_assert_eq(tc_invalidate_namespace(NULL, S("user")), TC_EINVAL);
    cr_assert_eq(tc_invalidate_namespace(c, NULL, 4), TC_EINVAL);
    cr_assert_eq(tc_invalidate_namespace(c, "user", 0), TC_EINVAL);
    cr_assert_eq(tc_invalidate_namespace(c, S("user:42:")), TC_EINVAL,
                 "a namespace ending in the separator");
    /* TC_EKEYLEN: the namespace and its separator over TC_MAX_KEY_LEN. */
    cr_assert_eq(tc_invalidate_namespace(c, big, TC_MAX_KEY_LEN + 1), TC_EKEYLEN);
    cr_assert_eq(tc_invalidate_namespace(c, big, TC_MAX_KEY_LEN), TC_EKEYLEN);
    cr_assert_eq(tc_invalidate_namespace(c, big, TC_MAX_KEY_LEN - 1), 0);
    /* Nested at most TC_MAX_NS_DEPTH deep (separators after the first byte). */
    cr_assert_eq(tc_invalidate_namespace(c, S("a:b:c:d")), 0);
    cr_assert_eq(tc_invalidate_namespace(c, S("a:b:c:d:e")), TC_EINVAL);
    cr_assert_eq(tc_invalidate_namespace(c, S(":b:c:d")), 0, "a leading ':' is not counted");
    tc_close(c);

    /* No separator configured: no namespaces. */
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), NPFX "none:", NPFX "none:inval");
    cfg.command_timeout_ms = 2000;
    cfg.ns_separator = -1;
    tc_cache_t *none = tc_test_open(&cfg);
    cr_assert_eq(tc_set(none, S("user:1:a"), S("v"), 0), 0);
    cr_assert_eq(tc_invalidate_namespace(none, S("user")), TC_EINVAL);
    tc_test_expect_value(none, S("user:1:a"), "v", "no namespaces");
    tc_close(none);

    /* L1-only: the bump acts on this process's L1. */
    tc_cache_t *l = open_local();
    cr_assert_eq(tc_set(l, S("n:1"), S("v"), 0), 0);
    cr_assert_eq(tc_set(l, S("n:2:x"), S("v"), 0), 0);
    cr_assert_eq(tc_set(l, S("nn:1"), S("v"), 0), 0);
    cr_assert_eq(tc_invalidate_namespace(l, S("n")), 0);
    tc_test_expect_value(l, S("n:1"), NULL, "L1-only");
    tc_test_expect_value(l, S("n:2:x"), NULL, "L1-only");
    tc_test_expect_value(l, S("nn:1"), "v", "L1-only");
    cr_assert_eq(tc_set(l, S("n:1"), S("w"), 0), 0);
    tc_test_expect_value(l, S("n:1"), "w", "L1-only, written after");
    tc_close(l);
}

/* ============================== clear ============================== */

#define CPFX "t:clr:"

Test(patterns, clear_hides_everything_in_every_process) {
    tc_cache_t *c = open_cache(CPFX, CPFX "inval");
    tc_cache_t *direct = open_direct(CPFX, CPFX "inval");
    tc_cache_t *other = open_direct("t:clr2:", "t:clr2:inval"); /* another key_prefix */
    tc_test_peer_t *p = start_peer(CPFX, CPFX "inval");
    static const char bin[] = "b\0in";
    const char *keys[] = {"x", "user:1:a", "a*b", bin};
    size_t lens[] = {1, 8, 3, 4};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(tc_set(c, keys[i], lens[i], "v", 1, 0), 0);
        hold_locally(c, keys[i], lens[i], "v");
        peer_hold(p, keys[i], lens[i], "v");
    }
    cr_assert_eq(tc_set(other, S("x"), S("o"), 0), 0);
    uint64_t swept = stats(c).inval_swept, peer_swept = peer_stat(p, "inval_swept");

    cr_assert_eq(tc_clear(c), 0);
    for (size_t i = 0; i < 4; i++) /* the calling process: at once */
        tc_test_expect_value(c, keys[i], lens[i], NULL, "this process, at the return");
    tc_test_peer_t *fresh = start_peer(CPFX, CPFX "inval"); /* opened after: no L1 copy */
    for (size_t i = 0; i < 4; i++) { /* the others: within one message delay */
        wait_value(direct, keys[i], lens[i], NULL, "another cache, reading Redis");
        peer_wait(p, keys[i], lens[i], NULL);
        peer_wait(fresh, keys[i], lens[i], NULL);
    }
    cr_assert_geq(peer_stat(fresh, "values_hidden"), 4);
    cr_assert_geq(stats(c).inval_swept - swept, 4, "this process dropped its entries");
    cr_assert_geq(peer_stat(p, "inval_swept") - peer_swept, 4, "the peer dropped its own");
    tc_test_expect_value(other, S("x"), "o", "another key_prefix");

    /* Written after: visible everywhere. */
    cr_assert_eq(tc_set(c, S("x"), S("after"), 0), 0);
    cr_assert_str_eq(tc_test_peer_cmd(p, "set %s %s", "6200696e", "6d65"), "ok 0");
    wait_value(direct, S("x"), "after", "another cache, reading Redis");
    wait_value(direct, S(bin), "me", "another cache, reading Redis");
    wait_value(c, S(bin), "me", "this process");
    peer_wait(p, S("x"), "after");
    cr_assert(peer_reply_is(peer_get(fresh, S("x")), "after"));
    /* The peer clears: this process follows. */
    hold_locally(c, S("x"), "after");
    cr_assert_str_eq(tc_test_peer_cmd(p, "clear"), "ok 0");
    wait_value(c, S("x"), NULL, "this process, after the peer's clear");
    tc_test_peer_stop(fresh);
    tc_test_peer_stop(p);
    tc_close(other);
    tc_close(direct);
    tc_close(c);
}

Test(patterns, clear_l1_only_and_bad_input) {
    cr_assert_eq(tc_clear(NULL), TC_EINVAL);
    tc_cache_t *l = open_local();
    for (int i = 0; i < 20; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        cr_assert_eq(tc_set(l, k, strlen(k), "v", 1, 0), 0);
    }
    cr_assert_eq(stats(l).l1_entries, 20);
    cr_assert_eq(tc_clear(l), 0);
    cr_assert_eq(stats(l).l1_entries, 0, "L1-only clear left entries");
    tc_test_expect_value(l, S("k3"), NULL, "L1-only");
    cr_assert_eq(tc_set(l, S("k3"), S("w"), 0), 0);
    tc_test_expect_value(l, S("k3"), "w", "L1-only, written after");
    tc_close(l);
}

/* ============================== forks ============================== */

Test(patterns, calls_in_a_fork_child_return_eforked) {
    tc_cache_t *c = open_cache("t:fork:", "t:fork:inval");
    pid_t pid = fork();
    if (pid == 0) {
        size_t removed = 0;
        int bad = 0;
        bad |= tc_invalidate_tag(c, S("t"), &removed) != TC_EFORKED;
        bad |= tc_invalidate_prefix(c, S("p"), &removed) != TC_EFORKED;
        bad |= tc_invalidate_namespace(c, S("n")) != TC_EFORKED;
        bad |= tc_clear(c) != TC_EFORKED;
        _exit(bad);
    }
    cr_assert_gt(pid, 0);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "a pattern call in the fork child did not return TC_EFORKED");
    tc_close(c);
}

/* ============================== loads in flight ============================== */

typedef struct gate {
    sem_t read_done, release;
} gate_t;

static int gated_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    gate_t *g = arg;
    (void)key;
    (void)klen;
    sem_post(&g->read_done);
    sem_wait(&g->release); /* the invalidation runs meanwhile */
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

typedef enum inv_kind { INV_TAG, INV_PREFIX, INV_NS, INV_CLEAR } inv_kind_t;

static const char *const KIND_NAME[] = {"tag", "prefix", "namespace", "clear"};

/* A load of "lf:key" holds the lock in a cache deaf to the invalidation's messages; the
 * invalidation (prefix "lf:", namespace "lf", clear) comes; then the load finishes. Its
 * caller gets the value; nothing keeps it. */
static void load_in_flight(inv_kind_t kind, const char *prefix) {
    char chan[64];
    snprintf(chan, sizeof chan, "%sdeaf", prefix);
    tc_cache_t *deaf = open_cache(prefix, chan);
    snprintf(chan, sizeof chan, "%sinval", prefix);
    tc_cache_t *c = open_cache(prefix, chan);
    tc_cache_t *direct = open_direct(prefix, chan);
    gate_t g;
    sem_init(&g.read_done, 0, 0);
    sem_init(&g.release, 0, 0);
    fetch_call_t call = {.c = deaf, .key = "lf:key", .gate = &g};
    pthread_t t;
    pthread_create(&t, NULL, fetch_thread, &call);
    sem_wait(&g.read_done);
    cr_assert(raw_exists(prefix, 'l', S("lf:key")), "the load holds no lock: nothing to test");
    int rc = kind == INV_PREFIX ? tc_invalidate_prefix(c, S("lf:"), NULL)
             : kind == INV_NS   ? tc_invalidate_namespace(c, S("lf"))
                                : tc_clear(c);
    cr_assert_eq(rc, 0, "%s: %s", KIND_NAME[kind], tc_err_name(rc));
    sem_post(&g.release);
    pthread_join(t, NULL);
    cr_assert_eq(call.rc, 0, "the loading call: %s", tc_err_name(call.rc));
    cr_assert_str_eq(call.got, "loaded-before", "the loading call began before: it gets it");
    if (kind == INV_PREFIX)
        cr_assert_not(raw_exists(prefix, 'k', S("lf:key")),
                      "Redis holds what a load read before the prefix invalidation");
    tc_test_expect_value(direct, S("lf:key"), NULL, "Redis (read through a cache)");
    tc_test_expect_value(deaf, S("lf:key"), NULL, "the loading process");
    tc_close(direct);
    tc_close(c);
    tc_close(deaf);
    sem_destroy(&g.read_done);
    sem_destroy(&g.release);
}

Test(patterns, prefix_voids_a_load_in_flight) {
    load_in_flight(INV_PREFIX, "t:lfp:");
}

Test(patterns, namespace_voids_a_load_in_flight) {
    load_in_flight(INV_NS, "t:lfn:");
}

Test(patterns, clear_voids_a_load_in_flight) {
    load_in_flight(INV_CLEAR, "t:lfc:");
}

/* ============================== races ============================== */

/* The oracle file tc-peer's `seqw` shares with the test (layout in tests/peer/tc_peer.c). */
enum { SEQW_STOP = 0, SEQW_BEGUN = 1, SEQW_WRITES = 2, SEQW_ERRORS = 3, SEQW_DONE = 8 };

#define RACE_N      16 /* matching keys, and as many that do not match */
#define RACE_ROUNDS 4

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

typedef struct race {
    inv_kind_t kind;
    unsigned nm, no; /* matching keys "m:<i>", others "mx:<i>" */
    uint64_t before[2 * RACE_N];
    /* Writes completed a message delay before the call: what a key that does not match
     * must not go below right after the return (a later write may still be on its way
     * to this process's listener: the healthy bound is one message delay). */
    uint64_t settled[2 * RACE_N];
    int just_returned; /* judging reads made right after the return */
    long violations;
    char example[768];
} race_t;

static void race_key(const race_t *r, unsigned i, char *k) {
    if (i < r->nm)
        sprintf(k, "m:%u", i);
    else
        sprintf(k, "mx:%u", i - r->nm);
}

/* Judge one read of key i (rc, seq) against the snapshot taken before the call. */
static void race_judge(race_t *r, unsigned i, int rc, uint64_t seq, const char *who) {
    int match = i < r->nm;
    uint64_t floor = !match && r->just_returned ? r->settled[i] : r->before[i];
    const char *bad = NULL;
    if (match && rc == 0 && seq <= floor)
        bad = "a write completed before the invalidation is still served";
    else if (!match && floor > 0 && rc != 0)
        bad = "a key that does not match is gone";
    else if (!match && rc == 0 && seq < floor)
        bad = "a key that does not match went back in time";
    if (!bad)
        return;
    /* The first violation of each reader: whether Redis itself still held the value tells
     * a failed deletion from a failed L1 eviction. */
    if (r->violations++ == 0 || !strstr(r->example, who)) {
        char k[32];
        race_key(r, i, k);
        size_t used = strlen(r->example);
        snprintf(r->example + used, sizeof r->example - used,
                 "%s%s: %s reads %s (rc %s, seq %llu; completed before the call: %llu)",
                 used ? "; and " : "", bad, who, k, tc_err_name(rc), (unsigned long long)seq,
                 (unsigned long long)floor);
    }
}

static int read_seq(tc_cache_t *c, const char *k, uint64_t *seq) {
    char buf[64];
    int rc = tc_test_get_str(c, k, strlen(k), buf, sizeof buf);
    *seq = rc == 0 ? strtoull(buf, NULL, 10) : 0;
    return rc;
}

static void race_check_all(race_t *r, tc_cache_t *c, const char *who) {
    for (unsigned i = 0; i < r->nm + r->no; i++) {
        char k[32];
        uint64_t seq;
        race_key(r, i, k);
        int rc = read_seq(c, k, &seq);
        race_judge(r, i, rc, seq, who);
    }
}

static int race_invalidate(tc_cache_t *c, inv_kind_t kind, size_t *removed) {
    switch (kind) {
    case INV_TAG:
        return tc_invalidate_tag(c, S("race\0tag"), removed);
    case INV_PREFIX:
        return tc_invalidate_prefix(c, S("m:"), removed);
    case INV_NS:
        return tc_invalidate_namespace(c, S("m"));
    default:
        return tc_clear(c);
    }
}

/* The writer writes while the test invalidates RACE_ROUNDS times; judged per round, then
 * every key's last write (begun after the last return) must be what everyone reads. */
static void race_writer_vs(inv_kind_t kind, const char *prefix) {
    race_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    r->kind = kind;
    r->nm = RACE_N;
    r->no = kind == INV_CLEAR ? 0 : RACE_N;
    unsigned nk = r->nm + r->no;
    char chan[64], path[512];
    snprintf(chan, sizeof chan, "%sinval", prefix);
    snprintf(path, sizeof path, "%s/seqw-%s.bin", tc_test_redis_dir(redis), KIND_NAME[kind]);
    uint64_t *w = oracle_map(path, SEQW_DONE + nk);
    tc_cache_t *c = open_cache(prefix, chan);
    tc_cache_t *direct = open_direct(prefix, chan);
    tc_test_peer_t *p = start_peer(prefix, chan);
    char htag[32];
    tc_test_hex("race\0tag", 8, htag);
    tc_test_peer_send(p, "seqw %u %u 6d3a 6d783a %s %s", r->nm, r->no,
                      kind == INV_TAG ? htag : "-", path);
    uint64_t deadline = tc_test_now_ms() + 10000u * TC_TEST_SLOW;
    while (ld(w, SEQW_WRITES) < 2u * nk) { /* every key written twice */
        cr_assert_lt(tc_test_now_ms(), deadline, "the writer does not write");
        tc_test_sleep_ms(5);
    }
    size_t removed_total = 0;
    uint64_t last_begun = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        race_check_all(r, c, "warm-up"); /* fill this process's L1 */
        r->violations = 0;               /* warm-up judged against stale snapshots */
        r->example[0] = '\0';
        for (unsigned i = 0; i < nk; i++)
            r->settled[i] = ld(w, SEQW_DONE + i);
        tc_test_sleep_ms(NOTICE_MS);
        for (unsigned i = 0; i < nk; i++)
            r->before[i] = ld(w, SEQW_DONE + i);
        size_t removed = 0;
        int rc = race_invalidate(c, kind, &removed);
        cr_assert_eq(rc, 0, "round %d: %s", round, tc_err_name(rc));
        last_begun = ld(w, SEQW_BEGUN);
        removed_total += removed;
        /* At the return: the calling cache (L1 and reads), and for tags and prefixes Redis
         * itself (deleted: any reader of Redis). */
        r->just_returned = 1;
        race_check_all(r, c, "the calling cache, right after the return");
        if (kind == INV_TAG || kind == INV_PREFIX)
            race_check_all(r, direct, "Redis, right after the return");
        r->just_returned = 0;
        cr_assert_eq(r->violations, 0, "round %d (%s): %ld bad reads, e.g. %s", round,
                     KIND_NAME[kind], r->violations, r->example);
        /* Within one message delay: every other cache's reads too. */
        tc_test_sleep_ms(NOTICE_MS);
        race_check_all(r, direct, "another cache's reads of Redis, a message delay later");
        race_check_all(r, c, "the calling cache, a message delay later");
        /* A cache opened after the call: its copy of the marks comes from Redis. */
        tc_cache_t *late = open_direct(prefix, chan);
        race_check_all(r, late, "a cache opened after the return");
        tc_close(late);
        cr_assert_eq(r->violations, 0, "round %d (%s): %ld bad reads, e.g. %s", round,
                     KIND_NAME[kind], r->violations, r->example);
        tc_test_sleep_ms(20);
    }
    if (kind == INV_TAG || kind == INV_PREFIX)
        cr_assert_gt(removed_total, 0, "no round removed anything: the race proved nothing");
    /* Let every key get a write begun after the last return, then stop the writer. */
    deadline = tc_test_now_ms() + 10000u * TC_TEST_SLOW;
    while (ld(w, SEQW_BEGUN) <= last_begun + 2u * nk) {
        cr_assert_lt(tc_test_now_ms(), deadline, "the writer stalled");
        tc_test_sleep_ms(5);
    }
    __atomic_store_n(&w[SEQW_STOP], 1, __ATOMIC_RELEASE);
    const char *done = tc_test_peer_recv(p, 10000 * TC_TEST_SLOW);
    unsigned long long writes = 0, errors = 0;
    cr_assert_eq(sscanf(done, "seqw %llu %llu", &writes, &errors), 2, "writer: '%s'", done);
    cr_assert_eq(errors, 0, "the writer had failed writes: outcomes unknown");
    for (unsigned i = 0; i < nk; i++) {
        char k[32], v[32];
        race_key(r, i, k);
        uint64_t last = ld(w, SEQW_DONE + i);
        cr_assert_gt(last, last_begun, "key %s has no write begun after the last return", k);
        snprintf(v, sizeof v, "%llu", (unsigned long long)last);
        tc_test_expect_value(direct, k, strlen(k), v, "Redis, at the end: a write begun after");
        wait_value(c, k, strlen(k), v, "this process, at the end");
        peer_wait(p, k, strlen(k), v);
    }
    tc_test_peer_stop(p);
    tc_close(direct);
    tc_close(c);
    munmap(w, (SEQW_DONE + nk) * sizeof *w);
    free(r);
}

/* A write landing during the call, made deterministic: a newer value stored behind the
 * cache's back (its version above the call's start, re-tagged when tag is set), with no
 * message. The steps rightly leave it in Redis; the calling cache must not go on serving
 * the copy it held from before the call. */
static void store_newer_unannounced(const char *prefix, const char *k, const char *val,
                                    const char *tag) {
    redisReply *t = tc_test_redis_cmd(redis, "TIME");
    cr_assert(t && t->type == REDIS_REPLY_ARRAY && t->elements == 2);
    uint64_t v = strtoull(t->element[0]->str, NULL, 10) * 1000000u +
                 strtoull(t->element[1]->str, NULL, 10) + 10000000u; /* 10 s ahead */
    freeReplyObject(t);
    unsigned char buf[128];
    size_t n = tc__val_encode(0, v, 0, val, strlen(val), buf);
    char key[128];
    size_t kl = redis_key(prefix, 'k', k, strlen(k), key);
    tc_test_redis_do(redis, "SET %b %b PX 60000", key, kl, buf, n);
    if (tag) {
        size_t tkl = redis_key(prefix, 't', tag, strlen(tag), key);
        tc_test_redis_do(redis, "ZADD %b %llu %s", key, tkl, (unsigned long long)v, k);
    }
}

Test(patterns, tag_caller_drops_keys_rewritten_during_the_call) {
    tc_cache_t *c = open_cache("t:rwt:", "t:rwt:inval");
    tc_buf_t tag = {"rwt", 3};
    cr_assert_eq(set_tagged(c, S("rw:a"), "old", &tag, 1, 0), 0);
    hold_locally(c, S("rw:a"), "old");
    store_newer_unannounced("t:rwt:", "rw:a", "new", "rwt");
    size_t removed = 99;
    cr_assert_eq(tc_invalidate_tag(c, "rwt", 3, &removed), 0);
    cr_assert_eq(removed, 0, "the re-tagged key was deleted: it was written after the start");
    tc_test_expect_value(c, S("rw:a"), "new", "the calling cache, right after the return");
    tc_close(c);
}

Test(patterns, prefix_caller_drops_keys_rewritten_during_the_call) {
    tc_cache_t *c = open_cache("t:rwp:", "t:rwp:inval");
    cr_assert_eq(tc_set(c, S("rw:a"), S("old"), 0), 0);
    hold_locally(c, S("rw:a"), "old");
    store_newer_unannounced("t:rwp:", "rw:a", "new", NULL);
    size_t removed = 99;
    cr_assert_eq(tc_invalidate_prefix(c, S("rw:"), &removed), 0);
    cr_assert_eq(removed, 0, "the key was deleted: it was written after the start");
    tc_test_expect_value(c, S("rw:a"), "new", "the calling cache, right after the return");
    tc_close(c);
}

Test(patterns, tag_races_a_writer) {
    race_writer_vs(INV_TAG, "t:rt:");
}

Test(patterns, prefix_races_a_writer) {
    race_writer_vs(INV_PREFIX, "t:rp:");
}

Test(patterns, namespace_races_a_writer) {
    race_writer_vs(INV_NS, "t:rn:");
}

Test(patterns, clear_races_a_writer) {
    race_writer_vs(INV_CLEAR, "t:rc:");
}
