/* tc-test-labels: integration fault */
/*
 * test_ring_cache.c - one cache over three standalone redis-servers (a redis_url listing
 * three URLs), end to end: where keys live, what each call does across the servers, what
 * another process sees, and what one dead server costs.
 *
 * Raw hiredis access to each server tells where a key really is: tiercache stores a key
 * as <prefix>"k:"<key>. A key must be on exactly one server, the same one for every
 * process whatever order it lists the servers in, and the share of each server must be
 * about a third. Another process (tc-peer) opened on the same list holds keys in its L1 and
 * must drop them when this one writes, whichever server holds them. Killing one server
 * must leave the other two servers' keys readable and writable, from L1 and from Redis.
 */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES     3
#define S(str)    str, sizeof(str) - 1
#define NOTICE_MS (2000u * TC_TEST_SLOW)

static tc_test_redis_t *redis[NODES];
static char urls[4096];     /* "url0 url1 url2" */
static char rev_urls[4096]; /* the same servers, listed in reverse */

static void setup(void) {
    for (int i = 0; i < NODES; i++)
        redis[i] = tc_test_redis_start(NULL);
    snprintf(urls, sizeof urls, "%s %s %s", tc_test_redis_url(redis[0]),
             tc_test_redis_url(redis[1]), tc_test_redis_url(redis[2]));
    snprintf(rev_urls, sizeof rev_urls, "  %s\t%s\n%s ", tc_test_redis_url(redis[2]),
             tc_test_redis_url(redis[1]), tc_test_redis_url(redis[0]));
}

static void teardown(void) {
    for (int i = 0; i < NODES; i++) {
        tc_test_redis_stop(redis[i]);
        redis[i] = NULL;
    }
}

TestSuite(ring_cache, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ---- */

/* No fault unless the test makes one: a slow box (sanitizers, a loaded CI machine) must
 * not time commands out, nor fire a listener's watchdog (which flushes L1 and would turn
 * the hits these tests count into misses). A killed server is still noticed at once: its
 * socket closes. */
static void calm(tc_config_t *cfg) {
    cfg->command_timeout_ms = 1000;
    cfg->listener_ping_ms = 2000;
}

static tc_cache_t *open_ring(const char *list, const char *prefix) {
    tc_config_t cfg;
    tc_test_config(&cfg, list, prefix, prefix);
    calm(&cfg);
    return tc_test_open(&cfg);
}

static const char *const PEER_ENV[] = {"TC_PEER_COMMAND_TIMEOUT=1000",
                                       "TC_PEER_LISTENER_PING=2000", NULL};

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t st;
    cr_assert_eq(tc_stats(c, &st), 0);
    return st;
}

/* Which server holds <prefix>k:<key>: its index, or -1 (none); fails if several do. */
static int where(const char *prefix, const void *key, size_t klen) {
    char rk[600];
    size_t pl = strlen(prefix);
    memcpy(rk, prefix, pl);
    memcpy(rk + pl, "k:", 2);
    memcpy(rk + pl + 2, key, klen);
    int at = -1;
    for (int i = 0; i < NODES; i++) {
        if (!tc_test_redis_pid(redis[i]))
            continue; /* killed by the test */
        redisReply *r = tc_test_redis_cmd(redis[i], "EXISTS %b", rk, pl + 2 + klen);
        int here = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
        if (here) {
            cr_assert_eq(at, -1, "'%.*s' is on servers %d and %d", (int)klen, (const char *)key,
                         at, i);
            at = i;
        }
    }
    return at;
}

static void key_name(char *out, size_t cap, int i) {
    snprintf(out, cap, "user:%d", i);
}

static void expect(tc_cache_t *c, const char *key, const char *val) {
    tc_test_expect_value(c, key, strlen(key), val, "this process");
}

static int count_key(void *arg, const void *key, size_t klen) {
    (void)key;
    cr_assert_gt(klen, 0);
    ++*(size_t *)arg;
    return 0;
}

/* ---- placement ---- */

/* Every key on exactly one server, about a third on each; a second handle listing the
 * servers in another order (other whitespace too) finds every key where the first put it. */
Test(ring_cache, keys_spread_over_the_servers_alike_for_every_process) {
    tc_cache_t *a = open_ring(urls, "t:rc:");
    tc_cache_t *b = open_ring(rev_urls, "t:rc:");
    enum { KEYS = 600 };
    int on[NODES] = {0};
    for (int i = 0; i < KEYS; i++) {
        char k[32];
        key_name(k, sizeof k, i);
        cr_assert_eq(tc_set(a, k, strlen(k), k, strlen(k), 0), 0);
        int at = where("t:rc:", k, strlen(k));
        cr_assert_geq(at, 0, "'%s' is on no server", k);
        on[at]++;
    }
    for (int i = 0; i < NODES; i++)
        cr_assert(on[i] > KEYS / 5 && on[i] < KEYS / 2,
                  "server %d holds %d of %d keys (%d, %d, %d): not about a third", i, on[i],
                  KEYS, on[0], on[1], on[2]);
    for (int i = 0; i < KEYS; i++) {
        char k[32];
        key_name(k, sizeof k, i);
        expect(b, k, k);
    }
    cr_assert_eq(stats(b).l2_hits, KEYS, "b found every key in Redis, where a put it");
    /* Keys with one {hash tag} share a server, as in Redis Cluster. */
    int tag_at = -1;
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof k, "{order:7}:line:%d", i);
        cr_assert_eq(tc_set(a, k, strlen(k), "x", 1, 0), 0);
        int at = where("t:rc:", k, strlen(k));
        cr_assert(tag_at < 0 || at == tag_at, "a hash tag's keys are on servers %d and %d",
                  tag_at, at);
        tag_at = at;
    }
    tc_close(b);
    tc_close(a);
}

Test(ring_cache, budgets_and_stats_add_up_over_the_servers) {
    tc_config_t cfg;
    tc_test_config(&cfg, urls, "t:rb:", "t:rb:");
    calm(&cfg);
    cfg.l1_max_bytes = 3u << 20;
    tc_cache_t *c = tc_test_open(&cfg);
    for (int i = 0; i < 90; i++) {
        char k[32];
        key_name(k, sizeof k, i);
        cr_assert_eq(tc_set(c, k, strlen(k), "v", 1, 0), 0);
        expect(c, k, "v");
    }
    tc_stats_t st = stats(c);
    cr_assert_eq(st.l1_max_bytes, 3u << 20, "the budget is split, not multiplied");
    cr_assert_eq(st.l1_entries, 90);
    cr_assert_eq(st.l1_hits, 90);
    cr_assert_eq(st.inval_published, 90);
    cr_assert_eq(st.listener_connected, 1);
    cr_assert_eq(st.servers, 3);
    cr_assert_eq(st.servers_down, 0);
    tc_latency_t lat;
    cr_assert_eq(tc_latency(c, TC_LAT_SET, &lat), 0);
    cr_assert_eq(lat.count, 90, "every node's set latencies, added up");
    char prom[1 << 16];
    size_t len;
    cr_assert_eq(tc_stats_prometheus(c, NULL, prom, sizeof prom, &len), 0);
    cr_assert_not_null(strstr(prom, "tiercache_l1_entries 90\n"));
    size_t seen = 0;
    cr_assert_eq(tc_hot_keys(c, 1000, count_key, &seen), 90, "every node's keys are listed");
    cr_assert_eq(seen, 90);
    seen = 0;
    cr_assert_eq(tc_hot_keys(c, 50, count_key, &seen), 50, "max holds across the nodes");
    cr_assert_eq(tc_hot_keys(c, 10, NULL, NULL), TC_EINVAL);
    /* A key's length is checked before the key is hashed to find its server. */
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_get(c, "k", (size_t)-1, &ref), TC_EKEYLEN);
    cr_assert_eq(tc_set(c, "k", 0, "v", 1, 0), TC_EKEYLEN);
    cr_assert_eq(tc_del(c, NULL, 1), TC_EINVAL);
    tc_close(c);
    /* One server: 1; L1-only: none. */
    c = open_ring(tc_test_redis_url(redis[0]), "t:rb1:");
    cr_assert_eq(stats(c).servers, 1);
    cr_assert_eq(stats(c).servers_down, 0);
    tc_close(c);
    tc_test_config(&cfg, NULL, "t:rb0:", "t:rb0:");
    c = tc_test_open(&cfg);
    cr_assert_eq(stats(c).servers, 0);
    tc_close(c);
}

/* ---- bulk calls: grouped by server, answered in the caller's order ---- */

typedef struct batch_arg {
    atomic_int calls;
    atomic_int keys;
} batch_arg_t;

/* Loads "L:<key>", except keys ending in '9': not found at the source. */
static int batch_loader(void *arg, tc_batch_t *batch) {
    batch_arg_t *ba = arg;
    atomic_fetch_add(&ba->calls, 1);
    for (size_t i = 0; i < tc_batch_count(batch); i++) {
        size_t kl;
        const char *k = tc_batch_key(batch, i, &kl);
        atomic_fetch_add(&ba->keys, 1);
        if (k[kl - 1] == '9') {
            cr_assert_eq(tc_batch_set_error(batch, i, TC_ENOTFOUND), 0);
            continue;
        }
        char v[64];
        int n = snprintf(v, sizeof v, "L:%.*s", (int)kl, k);
        cr_assert_eq(tc_batch_set_value(batch, i, v, (size_t)n), 0);
    }
    return 0;
}

Test(ring_cache, bulk_calls_answer_every_key_in_order) {
    tc_cache_t *c = open_ring(urls, "t:rk:");
    enum { N = 60 };
    char names[N][32];
    tc_buf_t keys[N];
    tc_item_t items[N];
    for (int i = 0; i < N; i++) {
        key_name(names[i], sizeof names[i], i);
        keys[i] = (tc_buf_t){names[i], strlen(names[i])};
        items[i] = (tc_item_t){names[i], strlen(names[i]), names[i], strlen(names[i])};
    }
    int codes[N];
    cr_assert_eq(tc_mset(c, items, N / 2, NULL, codes), 0); /* the first half */
    int on[NODES] = {0};
    for (int i = 0; i < N / 2; i++) {
        cr_assert_eq(codes[i], 0);
        on[where("t:rk:", names[i], strlen(names[i]))]++;
    }
    for (int i = 0; i < NODES; i++)
        cr_assert_gt(on[i], 0, "tc_mset wrote nothing to server %d", i);
    tc_ref_t *refs[N];
    cr_assert_eq(tc_mget(c, keys, N, refs, codes), 0);
    for (int i = 0; i < N; i++) {
        if (i < N / 2) {
            cr_assert_eq(codes[i], 0, "key %d: %s", i, tc_err_name(codes[i]));
            cr_assert_eq(tc_ref_size(refs[i]), strlen(names[i]));
            cr_assert_eq(memcmp(tc_ref_data(refs[i]), names[i], strlen(names[i])), 0,
                         "key %d has another key's value", i);
        } else {
            cr_assert_eq(codes[i], TC_ENOTFOUND);
            cr_assert_null(refs[i]);
        }
        tc_ref_release(refs[i]);
    }
    /* mfetch: the stored half from the cache, the rest from the loader, once per server
     * at most, every key where it belongs. */
    batch_arg_t ba = {0};
    cr_assert_eq(tc_mfetch(c, keys, N, batch_loader, &ba, NULL, refs, codes), 0);
    cr_assert_leq(atomic_load(&ba.calls), NODES);
    cr_assert_eq(atomic_load(&ba.keys), N / 2, "only the missing half is loaded");
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, i < N / 2 ? "%.31s" : "L:%.31s", names[i]);
        if (i >= N / 2 && names[i][strlen(names[i]) - 1] == '9') {
            cr_assert_eq(codes[i], TC_ENOTFOUND, "key %d", i);
            continue;
        }
        cr_assert_eq(codes[i], 0, "key %d: %s", i, tc_err_name(codes[i]));
        cr_assert_eq(tc_ref_size(refs[i]), strlen(want));
        cr_assert_eq(memcmp(tc_ref_data(refs[i]), want, strlen(want)), 0, "key %d", i);
        tc_ref_release(refs[i]);
        if (i >= N / 2)
            cr_assert_geq(where("t:rk:", names[i], strlen(names[i])), 0);
    }
    /* mdel: everything gone from every server; codes NULL allowed. */
    cr_assert_eq(tc_mdel(c, keys, N, NULL), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(where("t:rk:", names[i], strlen(names[i])), -1, "key %d survived", i);
    /* warm: loads through mfetch on each server, tags accepted (the servers keep them). */
    size_t warmed = 0;
    tc_buf_t tag = {"W", 1};
    tc_opts_t wo;
    tc_opts_init(&wo);
    wo.tags = &tag;
    wo.tags_count = 1;
    cr_assert_eq(tc_warm(c, keys, N, batch_loader, &ba, &wo, &warmed), 0);
    cr_assert_eq(warmed, N - N / 10, "every key but the not-found ones");
    size_t removed = 0;
    cr_assert_eq(tc_invalidate_tag(c, S("W"), &removed), 0);
    cr_assert_eq(removed, N - N / 10, "what tc_warm loaded carries its tag on every server");
    /* Whole-call refusals keep their code; bad keys get theirs in codes. */
    cr_assert_eq(tc_mget(c, keys, N, refs, NULL), TC_EINVAL);
    cr_assert_eq(tc_mfetch(c, keys, N, NULL, NULL, NULL, refs, codes), TC_EINVAL);
    tc_opts_t bad;
    tc_opts_init(&bad);
    bad.flags = 0x80000000u; /* unknown */
    cr_assert_eq(tc_mset(c, items, N, &bad, codes), TC_EINVAL);
    tc_buf_t odd[2] = {{NULL, 3}, {"user:1", 6}};
    cr_assert_eq(tc_mdel(c, odd, 2, codes), TC_EINVAL);
    cr_assert_eq(codes[0], TC_EINVAL);
    cr_assert_eq(codes[1], 0);
    tc_close(c);
}

/* ---- whole-cache calls reach every server ---- */

static int set_tagged(tc_cache_t *c, const char *k, const char *tag) {
    tc_buf_t t = {tag, strlen(tag)};
    tc_opts_t o;
    tc_opts_init(&o);
    o.tags = &t;
    o.tags_count = 1;
    return tc_set_opts(c, k, strlen(k), "v", 1, &o);
}

/* The peer reads k as absent within a message delay. A namespace bump or a clear hides
 * values by a mark, which another process learns from the channel: until the message
 * arrives it may still serve the hidden value (marks.h: one message delay is the bound). */
static void peer_sees_miss(tc_test_peer_t *p, const char *k, const char *what) {
    cr_assert_geq(tc_test_peer_wait_get(p, k, strlen(k), NULL, 0, NOTICE_MS), 0,
                  "the peer still reads %s after %s", k, what);
}

Test(ring_cache, tags_prefixes_namespaces_and_clear_reach_every_server) {
    tc_cache_t *c = open_ring(urls, "t:rw:");
    tc_test_peer_t *p = tc_test_peer_start(urls, "t:rw:", "t:rw:", PEER_ENV);
    enum { N = 30 };
    int on[NODES] = {0};
    for (int i = 0; i < N; i++) {
        char k[32];
        snprintf(k, sizeof k, "tagged:%d", i);
        cr_assert_eq(set_tagged(c, k, "T"), 0);
        on[where("t:rw:", k, strlen(k))]++;
        snprintf(k, sizeof k, "pfx:%d", i);
        cr_assert_eq(tc_set(c, k, strlen(k), "v", 1, 0), 0);
        snprintf(k, sizeof k, "ns:%d", i);
        cr_assert_eq(tc_set(c, k, strlen(k), "v", 1, 0), 0);
    }
    for (int i = 0; i < NODES; i++)
        cr_assert_gt(on[i], 0, "no tagged key on server %d", i);
    size_t removed = 0;
    cr_assert_eq(tc_invalidate_tag(c, S("T"), &removed), 0);
    cr_assert_eq(removed, N, "every server's members of the tag");
    cr_assert_eq(tc_invalidate_prefix(c, S("pfx:"), &removed), 0);
    cr_assert_eq(removed, N);
    cr_assert_eq(tc_invalidate_namespace(c, S("ns")), 0);
    for (int i = 0; i < N; i++) {
        char k[32];
        snprintf(k, sizeof k, "tagged:%d", i);
        cr_assert_eq(where("t:rw:", k, strlen(k)), -1);
        tc_test_expect_value(c, k, strlen(k), NULL, "this process");
        char hk[80];
        tc_test_hex(k, strlen(k), hk); /* deleted in Redis: absent for every process at once */
        cr_assert_str_eq(tc_test_peer_cmd(p, "get %s", hk), "miss", "the peer reads %s", k);
        snprintf(k, sizeof k, "pfx:%d", i);
        cr_assert_eq(where("t:rw:", k, strlen(k)), -1);
        tc_test_hex(k, strlen(k), hk);
        cr_assert_str_eq(tc_test_peer_cmd(p, "get %s", hk), "miss", "the peer reads %s", k);
        snprintf(k, sizeof k, "ns:%d", i);
        tc_test_expect_value(c, k, strlen(k), NULL, "this process (namespace)");
        peer_sees_miss(p, k, "the namespace bump");
    }
    /* clear: every server's keys read absent, here and in the peer. */
    for (int i = 0; i < N; i++) {
        char k[32];
        key_name(k, sizeof k, i);
        cr_assert_eq(tc_set(c, k, strlen(k), "v", 1, 0), 0);
    }
    cr_assert_eq(tc_clear(c), 0);
    for (int i = 0; i < N; i++) {
        char k[32];
        key_name(k, sizeof k, i);
        tc_test_expect_value(c, k, strlen(k), NULL, "this process (clear)");
        peer_sees_miss(p, k, "the clear");
    }
    /* Argument refusals come back once, not per server. */
    cr_assert_eq(tc_invalidate_tag(c, NULL, 1, &removed), TC_EINVAL);
    cr_assert_eq(tc_invalidate_prefix(c, "", 0, &removed), TC_EKEYLEN);
    cr_assert_eq(tc_invalidate_namespace(c, S("ns:")), TC_EINVAL);
    tc_test_peer_stop(p);
    tc_close(c);
}

/* ---- another process ---- */

/* The peer holds a key of each server in its L1; this process's writes reach it through
 * that server's channel, each within a message delay. */
Test(ring_cache, writes_reach_another_process_through_each_servers_channel) {
    tc_cache_t *c = open_ring(urls, "t:rp:");
    tc_test_peer_t *p = tc_test_peer_start(rev_urls, "t:rp:", "t:rp:", PEER_ENV);
    char picked[NODES][32] = {{0}};
    for (int i = 0, found = 0; found < NODES; i++) {
        cr_assert_lt(i, 200, "no key found for some server");
        char k[32];
        key_name(k, sizeof k, i);
        cr_assert_eq(tc_set(c, k, strlen(k), "old", 3, 0), 0);
        int at = where("t:rp:", k, strlen(k));
        if (!picked[at][0]) {
            snprintf(picked[at], sizeof picked[at], "%s", k);
            found++;
        }
    }
    for (int s = 0; s < NODES; s++) { /* held: a read, then a hit (tried until so) */
        char hk[80];
        tc_test_hex(picked[s], strlen(picked[s]), hk);
        uint64_t t0 = tc_test_now_ms();
        for (;;) {
            cr_assert_str_eq(tc_test_peer_cmd(p, "get %s", hk), "val 6f6c64");
            uint64_t hits = tc_test_stat(tc_test_peer_cmd(p, "stats"), "l1_hits");
            cr_assert_str_eq(tc_test_peer_cmd(p, "get %s", hk), "val 6f6c64");
            if (tc_test_stat(tc_test_peer_cmd(p, "stats"), "l1_hits") > hits)
                break;
            cr_assert_lt(tc_test_now_ms() - t0, NOTICE_MS, "the peer does not hold %s in L1",
                         picked[s]);
            tc_test_sleep_ms(5);
        }
    }
    for (int s = 0; s < NODES; s++) {
        cr_assert_eq(tc_set(c, picked[s], strlen(picked[s]), "new", 3, 0), 0);
        cr_assert_geq(
            tc_test_peer_wait_get(p, picked[s], strlen(picked[s]), "new", 3, NOTICE_MS), 0,
            "the peer still serves the old %s (server %d)", picked[s], s);
    }
    tc_test_peer_stop(p);
    tc_close(c);
}

/* ---- one dead server ---- */

/* Kill one server: its keys fail (writes fail; reads at most serve the copy its L1 kept
 * within the degraded bound), the other servers' keys are still served from L1 and still
 * written; after a restart its keys work again. */
/* Log messages, kept for a look (the listener threads write them). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];

static void keep_log(void *arg, int level, const char *msg, const void *key, size_t klen) {
    (void)arg, (void)level, (void)key, (void)klen;
    pthread_mutex_lock(&log_mu);
    size_t at = strlen(log_text);
    snprintf(log_text + at, sizeof log_text - at, "%s\n", msg);
    pthread_mutex_unlock(&log_mu);
}

static int logged(const char *needle) {
    pthread_mutex_lock(&log_mu);
    int found = strstr(log_text, needle) != NULL;
    pthread_mutex_unlock(&log_mu);
    return found;
}

Test(ring_cache, a_dead_server_costs_only_its_own_keys) {
    tc_config_t cfg;
    tc_test_config(&cfg, urls, "t:rd:", "t:rd:");
    calm(&cfg);
    cfg.log_fn = keep_log;
    cfg.log_level = TC_LOG_WARN;
    tc_cache_t *c = tc_test_open(&cfg);
    enum { N = 60 };
    int on[N];
    for (int i = 0; i < N; i++) {
        char k[32];
        key_name(k, sizeof k, i);
        cr_assert_eq(tc_set(c, k, strlen(k), "v1", 2, 0), 0);
        on[i] = where("t:rd:", k, strlen(k));
        cr_assert(tc_test_hold_locally(c, k, strlen(k), "v1", 2, NOTICE_MS));
    }
    const int dead = 1;
    tc_test_redis_kill(redis[dead]);
    /* The dead server's listener notices within its watchdog bound and flushes. */
    uint64_t t0 = tc_test_now_ms();
    while (stats(c).listener_connected)
        cr_assert_lt(tc_test_now_ms() - t0, NOTICE_MS, "no listener noticed the dead server");
    /* The operator is told which server: every message of a server's cache names it. */
    char who[600];
    snprintf(who, sizeof who, "server unix:%s/0: ", tc_test_redis_socket_path(redis[dead]));
    t0 = tc_test_now_ms();
    while (!logged(who))
        cr_assert_lt(tc_test_now_ms() - t0, NOTICE_MS, "no message names %s:\n%s", who,
                     log_text);
    cr_assert_eq(stats(c).servers_down, 1, "one server of three is down");
    tc_stats_t before = stats(c);
    int others = 0;
    for (int i = 0; i < N; i++) {
        char k[32];
        key_name(k, sizeof k, i);
        tc_ref_t *ref = NULL;
        int rc = tc_get(c, k, strlen(k), &ref);
        tc_ref_release(ref);
        if (on[i] == dead) {
            /* Its copy may still be served within the degraded bound (its last value,
             * nothing else); writes fail. */
            if (rc == 0)
                expect(c, k, "v1");
            cr_assert_lt(tc_set(c, k, strlen(k), "v2", 2, 0), 0, "%s (dead server) written", k);
            continue;
        }
        others++;
        cr_assert_eq(rc, 0, "%s (server %d) failed with server %d dead: %s", k, on[i], dead,
                     tc_err_name(rc));
        cr_assert_eq(tc_set(c, k, strlen(k), "v2", 2, 0), 0, "%s (server %d)", k, on[i]);
        expect(c, k, "v2");
    }
    cr_assert_gt(others, 0);
    cr_assert_geq(stats(c).l1_hits - before.l1_hits, (uint64_t)others,
                  "the live servers' keys were not kept in L1");
    /* A bulk write: the live servers' keys written, the dead one's fail key by key, and
     * the call returns the first failure in the caller's order. */
    char names[N][32];
    tc_item_t items[N];
    int codes[N], first = 0;
    for (int i = 0; i < N; i++) {
        key_name(names[i], sizeof names[i], i);
        items[i] = (tc_item_t){names[i], strlen(names[i]), "v4", 2};
    }
    int rc = tc_mset(c, items, N, NULL, codes);
    for (int i = 0; i < N; i++) {
        if (on[i] == dead) {
            cr_assert_lt(codes[i], 0, "%s (dead server) written", names[i]);
            if (!first)
                first = codes[i];
        } else {
            cr_assert_eq(codes[i], 0, "%s (server %d): %s", names[i], on[i],
                         tc_err_name(codes[i]));
            expect(c, names[i], "v4");
        }
    }
    cr_assert_eq(rc, first, "tc_mset returns the first failing key's code");
    cr_assert_geq(stats(c).l2_errors, 1);
    tc_test_redis_restart(redis[dead]);
    t0 = tc_test_now_ms();
    while (!stats(c).listener_connected)
        cr_assert_lt(tc_test_now_ms() - t0, 5000u * TC_TEST_SLOW, "no resubscription");
    for (int i = 0; i < N; i++) {
        if (on[i] != dead)
            continue;
        char k[32];
        key_name(k, sizeof k, i);
        t0 = tc_test_now_ms();
        while (tc_set(c, k, strlen(k), "v3", 2, 0) != 0) {
            cr_assert_lt(tc_test_now_ms() - t0, 5000u * TC_TEST_SLOW, "%s never writable", k);
            tc_test_sleep_ms(20);
        }
        expect(c, k, "v3");
        cr_assert_eq(where("t:rd:", k, strlen(k)), dead, "%s moved off its server", k);
    }
    cr_assert_eq(stats(c).servers_down, 0, "the restarted server still counts as down");
    tc_close(c);
}

/* ---- bad lists ---- */

static int open_code(const char *list, char *msg, size_t cap) {
    tc_config_t cfg;
    tc_test_config(&cfg, list, "t:rx:", "t:rx:");
    tc_cache_t *c = NULL;
    tc_error_t err = {0};
    int rc = tc_open(&cfg, &c, &err);
    snprintf(msg, cap, "%s", err.msg);
    if (c)
        tc_close(c);
    return rc;
}

Test(ring_cache, bad_lists_are_refused_naming_the_server) {
    char msg[256], list[8192];
    const char *u0 = tc_test_redis_url(redis[0]);
    snprintf(list, sizeof list, "%s %s", u0, u0);
    cr_assert_eq(open_code(list, msg, sizeof msg), TC_ECONFIG);
    cr_assert_not_null(strstr(msg, "servers 1 and 2 are the same server"), "%s", msg);
    /* Credentials are not identity: the same address with two passwords is one server. */
    cr_assert_eq(
        open_code("redis://:a@127.0.0.1:7000 redis://:b@127.0.0.1:7000/0", msg, sizeof msg),
        TC_ECONFIG);
    cr_assert_not_null(strstr(msg, "same server"), "%s", msg);
    snprintf(list, sizeof list, "%s redis://127.0.0.1:99999", u0);
    cr_assert_eq(open_code(list, msg, sizeof msg), TC_ECONFIG);
    cr_assert_not_null(strstr(msg, "server 2 of the list"), "%s", msg);
    size_t at = 0;
    for (int i = 0; i < 65; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "redis://127.0.0.1:%d ", 7000 + i);
    cr_assert_eq(open_code(list, msg, sizeof msg), TC_ECONFIG);
    cr_assert_not_null(strstr(msg, "more than 64 servers"), "%s", msg);
    /* Sentinel groups are told apart by their sentinels (sorted), not by a master name
     * that many groups share. */
    cr_assert_eq(open_code("redis+sentinel://127.0.0.1:7001,127.0.0.1:7002/mymaster "
                           "redis+sentinel://127.0.0.1:7002,127.0.0.1:7001/mymaster",
                           msg, sizeof msg),
                 TC_ECONFIG);
    cr_assert_not_null(strstr(msg, "same server"), "%s", msg);
    /* A space inside one URL (a password) does not make a list, and no piece of it is
     * quoted: it is one URL, opened degraded here (AUTH is refused). */
    int rc = open_code("redis://:se cret@127.0.0.1:1", msg, sizeof msg);
    cr_assert_neq(rc, TC_ECONFIG, "a password with a space was split: %s", msg);
    cr_assert_null(strstr(msg, "cret"), "%s", msg);
    /* require_redis applies per server, and names the one that failed. */
    tc_config_t cfg;
    snprintf(list, sizeof list, "%s unix:///nonexistent/tc-ring.sock", u0);
    tc_test_config(&cfg, list, "t:rx:", "t:rx:");
    cfg.require_redis = 1;
    tc_cache_t *c = NULL;
    tc_error_t err = {0};
    cr_assert_lt(tc_open(&cfg, &c, &err), 0);
    cr_assert_null(c);
    cr_assert_not_null(strstr(err.msg, "server 2 of 2"), "%s", err.msg);
}
