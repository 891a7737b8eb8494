/* tc-test-labels: cluster integration fault concurrency */
/*
 * test_cluster_cache.c - tc_open on redis+cluster:// against a real Redis Cluster (3
 * masters + 1 replica each):
 *   - every operation (single, bulk, fetch with its lock) stores a key, its lock and its
 *     slot's version counter on the key's slot's master, a prefix invalidation scans every
 *     master and removes exactly the keys under it, and {hash tags} keep keys together;
 *   - a write by another process reaches this process's L1 from every shard (one listener,
 *     classic PUBLISH);
 *   - under a writer and a reader judged by an oracle (each value against the writes that
 *     had finished SLACK_MS before the read): a live `redis-cli --cluster reshard`, and a
 *     CLUSTER FAILOVER, show no error and no stale read; a kill -9 of a master fails only
 *     its slots' calls (none slower than the bound), and once the replica is promoted no
 *     read is older than the new master's writes; a change of masters flushes both L1s;
 *   - ?read_from=replicas: single reads are answered by replicas, and L1 keeps what a
 *     replica said replica_keep_ms at most (a write never heard of is read within it);
 *   - what a cluster cannot do yet is refused by name, bad URLs name their fault, and a
 *     cluster down at open is named (require_redis) or survived.
 */
#include "peer.h"
#include "redis_cluster.h"
#include "slot.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tc_test_cluster_t *cl;
static char url[1024];

/* The calling thread's last error message. */
static const char *why(void) {
    static _Thread_local tc_error_t e;
    tc_last_error(&e);
    return e.msg;
}

static void setup(void) {
    cl = tc_test_cluster_start(3, 1);
    snprintf(url, sizeof url, "redis+cluster://%s", tc_test_cluster_seeds(cl));
}

static void teardown(void) {
    tc_test_cluster_stop(cl);
    cl = NULL;
}

TestSuite(cluster_cache, .init = setup, .fini = teardown, .timeout = 240);

static void cluster_config(tc_config_t *cfg, const char *prefix) {
    tc_test_config(cfg, url, prefix, "cc:chan");
    cfg->connect_timeout_ms = 500;
    cfg->command_timeout_ms = 1000;
    cfg->listener_ping_ms = 500;
}

/* The Redis key tiercache stores key under on a cluster: <prefix>"{"<slot name>"}k:"<key>. */
static void data_key(const char *prefix, const char *key, char *out, size_t cap) {
    size_t n;
    const char *name = tc__slot_name(tc__slot_of(key, strlen(key)), &n);
    snprintf(out, cap, "%s{%.*s}k:%s", prefix, (int)n, name, key);
}

/* EXISTS of a Redis key on node i, following nothing: 1, 0, or -1 (an error: MOVED). */
static int raw_exists(int i, const char *rkey) {
    redisContext *c = tc_test_redis_connect(tc_test_cluster_node(cl, i));
    redisReply *r = redisCommand(c, "EXISTS %s", rkey);
    int got = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return got;
}

static void expect_str(tc_cache_t *c, const char *key, const char *want) {
    tc_test_expect_value(c, key, strlen(key), want, "this process");
}

static tc_cache_t *open_cluster_cache(const char *prefix) {
    tc_config_t cfg;
    cluster_config(&cfg, prefix);
    return tc_test_open(&cfg);
}

/* ---- routing ---- */

static int load_value(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)arg;
    (void)key;
    (void)klen;
    return tc_load_set_value(load, "from-source", 11);
}

Test(cluster_cache, every_operation_and_hash_tag_lands_on_its_slots_master) {
    tc_cache_t *c = open_cluster_cache("cc:");
    int on_master[16] = {0};
    for (int i = 0; i < 60; i++) { /* set, read back (L1), Redis holds it on its master */
        char key[32], val[32], rkey[96];
        snprintf(key, sizeof key, "user:%d", i);
        snprintf(val, sizeof val, "v%d", i);
        cr_assert_eq(tc_set(c, key, strlen(key), val, strlen(val), 0), TC_OK, "%s", why());
        expect_str(c, key, val);
        data_key("cc:", key, rkey, sizeof rkey);
        int m = tc_test_cluster_master_of_slot(cl, tc__slot_of(key, strlen(key)));
        cr_assert_eq(raw_exists(m, rkey), 1, "%s is not on its slot's master", rkey);
        on_master[m]++;
    }
    int masters_used = 0;
    for (int i = 0; i < 16; i++)
        masters_used += on_master[i] > 0;
    cr_assert_eq(masters_used, 3, "60 keys landed on %d masters, not 3", masters_used);

    /* delete, invalidate, fetch (lock + fill: the lock shares the key's slot) */
    cr_assert_eq(tc_del(c, "user:1", 6), TC_OK, "%s", why());
    expect_str(c, "user:1", NULL);
    cr_assert_eq(tc_invalidate(c, "user:2", 6), TC_OK, "%s", why());
    expect_str(c, "user:2", "v2");
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(c, "loaded:1", 8, load_value, NULL, &ref), TC_OK, "%s", why());
    tc_ref_release(ref);
    char rkey[96];
    data_key("cc:", "loaded:1", rkey, sizeof rkey);
    cr_assert_eq(
        raw_exists(tc_test_cluster_master_of_slot(cl, tc__slot_of("loaded:1", 8)), rkey), 1,
        "the fill did not store %s", rkey);

    /* bulk: 300 keys over every slot owner, in the caller's order */
    enum { N = 300 };
    tc_buf_t keys[N], vals[N];
    tc_item_t items[N];
    char kb[N][24], vb[N][24];
    for (int i = 0; i < N; i++) {
        snprintf(kb[i], sizeof kb[i], "bulk:%d", i);
        snprintf(vb[i], sizeof vb[i], "b%d", i);
        keys[i] = (tc_buf_t){kb[i], strlen(kb[i])};
        vals[i] = (tc_buf_t){vb[i], strlen(vb[i])};
        items[i] = (tc_item_t){kb[i], keys[i].len, vb[i], vals[i].len};
    }
    int codes[N];
    cr_assert_eq(tc_mset(c, items, N, NULL, codes), TC_OK, "%s", why());
    for (int i = 0; i < N; i++)
        cr_assert_eq(codes[i], TC_OK, "mset %s: %s", kb[i], tc_err_name(codes[i]));
    tc_cache_t *other = open_cluster_cache("cc:"); /* an empty L1: every read goes to Redis */
    tc_ref_t *refs[N];
    cr_assert_eq(tc_mget(other, keys, N, refs, codes), TC_OK, "%s", why());
    for (int i = 0; i < N; i++) {
        cr_assert_eq(codes[i], TC_OK, "mget %s: %s", kb[i], tc_err_name(codes[i]));
        cr_assert(tc_ref_size(refs[i]) == vals[i].len &&
                      memcmp(tc_ref_data(refs[i]), vb[i], vals[i].len) == 0,
                  "mget %s: another value", kb[i]);
        tc_ref_release(refs[i]);
    }
    cr_assert_eq(tc_mdel(c, keys, N, codes), TC_OK, "%s", why());
    for (int i = 0; i < N; i += 37) /* the other L1 hears of each delete */
        tc_test_wait_value(other, kb[i], strlen(kb[i]), NULL, "another cache",
                           2000u * TC_TEST_SLOW);
    /* a prefix: every master scanned, each key deleted and announced; a key whose name
     * the scan's glob also matches ("x}k:pfx:...") is not under the prefix and stays */
    char pk[50][16];
    for (int i = 0; i < 50; i++) {
        snprintf(pk[i], sizeof pk[i], "pfx:%d", i);
        cr_assert_eq(tc_set(c, pk[i], strlen(pk[i]), "p", 1, 0), TC_OK);
        expect_str(other, pk[i], "p");
    }
    cr_assert_eq(tc_set(c, "x}k:pfx:trap", 12, "stays", 5, 0), TC_OK);
    cr_assert_eq(tc_set(c, "other:1", 7, "stays", 5, 0), TC_OK);
    size_t removed = 0;
    cr_assert_eq(tc_invalidate_prefix(c, "pfx:", 4, &removed), TC_OK, "%s", why());
    cr_assert_eq(removed, 50, "removed %zu keys, not 50", removed);
    for (int i = 0; i < 50; i += 7) /* the other L1 hears of each delete */
        tc_test_wait_value(other, pk[i], strlen(pk[i]), NULL, "another cache",
                           2000u * TC_TEST_SLOW);
    expect_str(other, "x}k:pfx:trap", "stays");
    expect_str(other, "other:1", "stays");

    /* a {hash tag} keeps keys together: same slot, same master */
    cr_assert_eq(tc_set(c, "{u42}:name", 10, "ann", 3, 0), TC_OK);
    cr_assert_eq(tc_set(c, "{u42}:cart", 10, "3 items", 7, 0), TC_OK);
    char a[96], b[96];
    data_key("cc:", "{u42}:name", a, sizeof a);
    data_key("cc:", "{u42}:cart", b, sizeof b);
    int m = tc_test_cluster_master_of_slot(cl, tc__slot_of("u42", 3));
    cr_assert_eq(raw_exists(m, a), 1);
    cr_assert_eq(raw_exists(m, b), 1);
    tc_stats_t st;
    tc_stats(c, &st);
    cr_assert_eq(st.l2_errors, 0, "%llu Redis errors", (unsigned long long)st.l2_errors);
    cr_assert_eq(st.servers, 3, "servers: %llu, not the 3 masters",
                 (unsigned long long)st.servers);
    tc_close(other);
    tc_close(c);
}

/* ---- invalidation from every shard ---- */

Test(cluster_cache, another_process_write_reaches_l1_from_every_shard) {
    tc_cache_t *c = open_cluster_cache("cc:");
    tc_test_peer_t *peer = tc_test_peer_start(url, "cc:", "cc:chan", NULL);
    /* one key per master: the listener sits on one node, the writes come from all */
    const char *keys[3] = {NULL, NULL, NULL};
    static char names[64][24];
    for (int i = 0, found = 0; i < 64 && found < 3; i++) {
        snprintf(names[i], sizeof names[i], "inv:%d", i);
        int m = tc_test_cluster_master_of_slot(cl, tc__slot_of(names[i], strlen(names[i])));
        int seen = 0;
        for (int j = 0; j < found; j++)
            seen |=
                tc_test_cluster_master_of_slot(cl, tc__slot_of(keys[j], strlen(keys[j]))) == m;
        if (!seen)
            keys[found++] = names[i];
    }
    for (int i = 0; i < 3; i++) {
        cr_assert_not_null(keys[i], "no key for master %d", i);
        size_t klen = strlen(keys[i]);
        cr_assert_eq(tc_set(c, keys[i], klen, "old", 3, 0), TC_OK);
        cr_assert(tc_test_hold_locally(c, keys[i], klen, "old", 3, 3000), "%s: not held in L1",
                  keys[i]);
        char hk[64], hv[16];
        tc_test_hex(keys[i], klen, hk);
        tc_test_hex("new", 3, hv);
        cr_assert_str_eq(tc_test_peer_cmd(peer, "set %s %s", hk, hv), "ok 0");
        tc_test_wait_value(c, keys[i], klen, "new", "this process", 2000u * TC_TEST_SLOW);
    }
    tc_test_peer_stop(peer);
    tc_close(c);
}

/* ---- reads from replicas ---- */

/* Sum of cmdstat_getrange calls over the replicas. */
static long replica_getranges(void) {
    long sum = 0;
    for (int i = 0; i < tc_test_cluster_nodes(cl); i++) {
        if (!tc_test_cluster_master_of(cl, i))
            continue;
        redisReply *r = tc_test_redis_cmd(tc_test_cluster_node(cl, i), "INFO commandstats");
        const char *at = r && r->type == REDIS_REPLY_STRING
                             ? strstr(r->str, "cmdstat_getrange:calls=")
                             : NULL;
        if (at)
            sum += strtol(at + strlen("cmdstat_getrange:calls="), NULL, 10);
        if (r)
            freeReplyObject(r);
    }
    return sum;
}

/* ?read_from=replicas: single reads are answered by replicas (READONLY), and what a replica
 * answered stays in L1 replica_keep_ms at most: a write this process never hears of (made
 * on another channel here; in life, one whose message came before the replica had it) is
 * read within that bound. */
/* 1 once every slot range in node 0's CLUSTER SLOTS names a replica: Redis lists a replica
 * there only once its replication offset has been gossiped. */
static int replicas_listed(void) {
    redisReply *r = tc_test_redis_cmd(tc_test_cluster_node(cl, 0), "CLUSTER SLOTS");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
    for (size_t i = 0; ok && i < r->elements; i++)
        ok = r->element[i]->type == REDIS_REPLY_ARRAY && r->element[i]->elements >= 4;
    if (r)
        freeReplyObject(r);
    return ok;
}

Test(cluster_cache, replica_reads_are_served_and_kept_in_l1_a_bounded_while) {
    for (int i = 0; i < 200 && !replicas_listed(); i++)
        tc_test_sleep_ms(50);
    cr_assert(replicas_listed(), "CLUSTER SLOTS never listed the replicas");
    tc_cache_t *w = open_cluster_cache("cc:");
    char rurl[1200];
    snprintf(rurl, sizeof rurl, "%s?read_from=replicas&replica_keep_ms=300", url);
    tc_config_t cfg;
    cluster_config(&cfg, "cc:");
    cfg.redis_url = rurl;
    tc_cache_t *r = tc_test_open(&cfg);
    long before = replica_getranges();
    char key[16];
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof key, "rr:%d", i);
        cr_assert_eq(tc_set(w, key, strlen(key), "v1", 2, 0), TC_OK);
        tc_test_wait_value(r, key, strlen(key), "v1", "the replica reader",
                           3000u * TC_TEST_SLOW);
    }
    long served = replica_getranges() - before;
    cr_assert_geq(served, 30, "replicas answered %ld reads, not every one", served);

    /* the bound: r holds rr:0 in L1; a write on another channel never reaches its listener */
    cr_assert(tc_test_hold_locally(r, "rr:0", 4, "v1", 2, 3000), "rr:0 not held in L1");
    tc_config_t deaf;
    cluster_config(&deaf, "cc:");
    deaf.inval_channel = "cc:elsewhere";
    tc_cache_t *other = tc_test_open(&deaf);
    cr_assert_eq(tc_set(other, "rr:0", 4, "v2", 2, 0), TC_OK);
    uint64_t t0 = tc_test_now_ms();
    tc_test_wait_value(r, "rr:0", 4, "v2", "the replica reader", 3000u * TC_TEST_SLOW);
    fprintf(stderr,
            "cluster cache, replica reads: %ld of 30 answered by replicas; an unheard write "
            "read after %llu ms (replica_keep_ms 300)\n",
            served, (unsigned long long)(tc_test_now_ms() - t0));
    tc_close(other);
    tc_close(r);
    tc_close(w);
}

/* ---- a live reshard, judged by an oracle ---- */

#define OR_KEYS 64

/* The oracle: for each key, the last OR_HIST writes that finished, with when. A reader
 * judges each value against the newest write that had finished SLACK_MS before its read
 * began: anything older is stale. */
#define OR_HIST 256

typedef struct or_hist {
    pthread_mutex_t mu;
    uint64_t seq[OR_HIST], done_ms[OR_HIST];
    unsigned next;
} or_hist_t;

typedef struct oracle {
    tc_cache_t *writer, *reader;
    atomic_int stop;
    or_hist_t hist[OR_KEYS];
    atomic_uint_fast64_t last[OR_KEYS]; /* newest completed write */
    atomic_uint_fast64_t writes, reads, write_errors, read_errors, stale;
    atomic_uint_fast64_t longest_ms; /* the slowest call */
    /* A fault that may lose acknowledged writes (a master killed): while faulty is set,
     * errors are counted, not problems, and nothing is judged; afterwards only writes
     * finished from judged_from_ms on (the new master's) are demanded. */
    atomic_int faulty;
    atomic_uint_fast64_t judged_from_ms;
    char first_problem[200];
    atomic_int problems;
} oracle_t;

static oracle_t *running; /* the oracle of the test's act() */

static void note_call(oracle_t *o, uint64_t t0) {
    uint64_t took = tc_test_now_ms() - t0, was = atomic_load(&o->longest_ms);
    while (took > was && !atomic_compare_exchange_weak(&o->longest_ms, &was, took))
        ;
}

static void or_done(oracle_t *o, int i, uint64_t seq) {
    or_hist_t *h = &o->hist[i];
    pthread_mutex_lock(&h->mu);
    h->seq[h->next % OR_HIST] = seq;
    h->done_ms[h->next % OR_HIST] = tc_test_now_ms();
    h->next++;
    pthread_mutex_unlock(&h->mu);
    atomic_store(&o->last[i], seq);
}

/* The newest write of key i finished by ms (0: none known). */
static uint64_t or_due(oracle_t *o, int i, uint64_t ms) {
    or_hist_t *h = &o->hist[i];
    uint64_t due = 0;
    pthread_mutex_lock(&h->mu);
    unsigned n = h->next < OR_HIST ? h->next : OR_HIST;
    uint64_t from = atomic_load(&o->judged_from_ms);
    for (unsigned j = 0; j < n; j++)
        if (h->done_ms[j] <= ms && h->done_ms[j] >= from && h->seq[j] > due)
            due = h->seq[j];
    pthread_mutex_unlock(&h->mu);
    return due;
}

static void or_key(int i, char *out, size_t cap) {
    snprintf(out, cap, "or:%d", i);
}

static void note_problem(oracle_t *o, const char *what, const char *key, long long n) {
    if (atomic_fetch_add(&o->problems, 1) == 0)
        snprintf(o->first_problem, sizeof o->first_problem, "%s %s: %lld", what, key, n);
}

static void *or_write(void *arg) {
    oracle_t *o = arg;
    for (uint64_t n = 1; !atomic_load(&o->stop); n++) {
        int i = (int)(n % OR_KEYS);
        char key[24], val[24];
        or_key(i, key, sizeof key);
        snprintf(val, sizeof val, "%llu", (unsigned long long)n);
        uint64_t t0 = tc_test_now_ms();
        int rc = tc_set(o->writer, key, strlen(key), val, strlen(val), 0);
        note_call(o, t0);
        if (rc != TC_OK) {
            atomic_fetch_add(&o->write_errors, 1);
            if (!atomic_load(&o->faulty))
                note_problem(o, "tc_set", key, rc);
            continue;
        }
        or_done(o, i, n);
        atomic_fetch_add(&o->writes, 1);
    }
    return NULL;
}

/* A value older than the newest write finished SLACK_MS before the read began is stale:
 * the slack is the message delay the guarantee allows, generous for a loaded machine. */
#define SLACK_MS (500u * TC_TEST_SLOW)

static void *or_read(void *arg) {
    oracle_t *o = arg;
    for (uint64_t n = 0; !atomic_load(&o->stop); n++) {
        int i = (int)(n * 7 % OR_KEYS);
        char key[24];
        or_key(i, key, sizeof key);
        uint64_t started = tc_test_now_ms();
        int faulty = atomic_load(&o->faulty);
        uint64_t must = started > SLACK_MS && !faulty ? or_due(o, i, started - SLACK_MS) : 0;
        tc_ref_t *ref = NULL;
        int rc = tc_get(o->reader, key, strlen(key), &ref);
        note_call(o, started);
        if (rc == TC_ENOTFOUND && must == 0)
            continue;
        if (rc != TC_OK) {
            atomic_fetch_add(&o->read_errors, 1);
            if (!faulty)
                note_problem(o, "tc_get", key, rc);
            continue;
        }
        char buf[32];
        size_t len = tc_ref_size(ref) < sizeof buf - 1 ? tc_ref_size(ref) : sizeof buf - 1;
        memcpy(buf, tc_ref_data(ref), len);
        buf[len] = '\0';
        tc_ref_release(ref);
        atomic_fetch_add(&o->reads, 1);
        if (strtoull(buf, NULL, 10) < must) {
            atomic_fetch_add(&o->stale, 1);
            note_problem(o, "stale read (versions behind)", key,
                         (long long)(must - strtoull(buf, NULL, 10)));
        }
    }
    return NULL;
}

static atomic_int flushes_logged;

static void count_cluster_flush(void *arg, int level, const char *msg, const void *key,
                                size_t klen) {
    (void)arg;
    (void)level;
    (void)key;
    (void)klen;
    if (strstr(msg, "Redis Cluster: the masters changed") && strstr(msg, "L1 flushed"))
        atomic_fetch_add(&flushes_logged, 1);
}

/* A writer and a reader (each its own cache, so the reader's L1 learns of writes only by
 * message) around act(); every read judged by the oracle, every call's error counted. */
static void under_oracle(const char *what, void (*act)(void), int flushes) {
    oracle_t *o = calloc(1, sizeof *o);
    for (int i = 0; i < OR_KEYS; i++)
        pthread_mutex_init(&o->hist[i].mu, NULL);
    tc_config_t cfg;
    cluster_config(&cfg, "cc:");
    cfg.log_fn = count_cluster_flush;
    o->writer = tc_test_open(&cfg);
    o->reader = tc_test_open(&cfg);
    pthread_t w, r;
    cr_assert_eq(pthread_create(&w, NULL, or_write, o), 0);
    while (atomic_load(&o->writes) < 2 * OR_KEYS)
        tc_test_sleep_ms(10);
    cr_assert_eq(pthread_create(&r, NULL, or_read, o), 0);
    uint64_t t0 = tc_test_now_ms();
    running = o;
    act();
    uint64_t took = tc_test_now_ms() - t0;
    tc_test_sleep_ms(300);
    atomic_store(&o->stop, 1);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    tc_stats_t ws, rs;
    tc_stats(o->writer, &ws);
    tc_stats(o->reader, &rs);
    fprintf(stderr,
            "cluster cache, %s (%llu ms): %llu writes, %llu reads, %llu write errors, %llu "
            "read errors, %llu stale, slowest call %llu ms; %llu redirects, %llu retries, %llu "
            "map reads, %llu failovers seen (writer and reader)\n",
            what, (unsigned long long)took, (unsigned long long)atomic_load(&o->writes),
            (unsigned long long)atomic_load(&o->reads),
            (unsigned long long)atomic_load(&o->write_errors),
            (unsigned long long)atomic_load(&o->read_errors),
            (unsigned long long)atomic_load(&o->stale),
            (unsigned long long)atomic_load(&o->longest_ms),
            (unsigned long long)(ws.cluster_redirects + rs.cluster_redirects),
            (unsigned long long)(ws.cluster_retries + rs.cluster_retries),
            (unsigned long long)(ws.cluster_map_reads + rs.cluster_map_reads),
            (unsigned long long)(ws.cluster_failovers + rs.cluster_failovers));
    cr_assert_eq(atomic_load(&o->problems), 0, "%s", o->first_problem);
    cr_assert_gt(atomic_load(&o->reads), 100, "the reader hardly ran");
    /* A hung call shows as one far past its bound (connect + command timeout, 1.5 s). */
    cr_assert_lt(atomic_load(&o->longest_ms), 5000u * TC_TEST_SLOW, "a call took %llu ms",
                 (unsigned long long)atomic_load(&o->longest_ms));
    cr_assert_gt(ws.cluster_redirects + rs.cluster_redirects + ws.cluster_failovers, 0,
                 "%s and the caches never noticed", what);
    if (flushes) /* the masters changed: both caches flushed L1, and said so */
        cr_assert_geq(atomic_load(&flushes_logged), 2, "%d L1 flushes logged, not 2",
                      atomic_load(&flushes_logged));
    for (int i = 0; i < OR_KEYS; i++) { /* afterwards every key reads its last write */
        char key[24], val[24];
        or_key(i, key, sizeof key);
        snprintf(val, sizeof val, "%llu", (unsigned long long)atomic_load(&o->last[i]));
        tc_test_wait_value(o->reader, key, strlen(key), val, "the reader",
                           2000u * TC_TEST_SLOW);
    }
    tc_close(o->writer);
    tc_close(o->reader);
    free(o);
}

static void reshard_1000_slots(void) {
    int from = tc_test_cluster_master_of_slot(cl, 0);
    int to = tc_test_cluster_master_of_slot(cl, 16383);
    cr_assert_eq(tc_test_cluster_reshard(cl, from, to, 1000), 0, "redis-cli reshard failed");
}

Test(cluster_cache, a_live_reshard_shows_callers_no_error_and_no_stale_read) {
    under_oracle("reshard of 1000 slots", reshard_1000_slots, 0);
}

/* CLUSTER FAILOVER on the replica of slot 0's master: the operator's way to move a master
 * (upgrades, rebalancing), no write lost. */
static void manual_failover(void) {
    int master = tc_test_cluster_master_of_slot(cl, 0), replica = -1;
    int port = tc_test_redis_port(tc_test_cluster_node(cl, master));
    for (int i = 0; i < tc_test_cluster_nodes(cl) && replica < 0; i++)
        if (tc_test_cluster_master_of(cl, i) == port)
            replica = i;
    cr_assert_geq(replica, 0, "slot 0's master has no replica");
    tc_test_redis_do(tc_test_cluster_node(cl, replica), "CLUSTER FAILOVER");
    for (int i = 0; i < 200 && tc_test_cluster_master_of_slot(cl, 0) != replica; i++)
        tc_test_sleep_ms(50);
    cr_assert_eq(tc_test_cluster_master_of_slot(cl, 0), replica, "the replica never took over");
    tc_test_sleep_ms(1000); /* both caches run on the new master for a while */
}

Test(cluster_cache, a_manual_failover_shows_callers_no_error_and_no_stale_read) {
    under_oracle("CLUSTER FAILOVER", manual_failover, 1);
}

/* kill -9 of slot 0's master: its slots fail (at once: nothing waits for a map that still
 * names the dead node) until the cluster promotes the replica; writes it acknowledged may
 * be lost (asynchronous replication), so once the new master serves, only the writes it
 * acknowledged are demanded, and no read may be older than those. */
static void kill_master(void) {
    int master = tc_test_cluster_master_of_slot(cl, 0);
    atomic_store(&running->judged_from_ms, UINT64_MAX);
    atomic_store(&running->faulty, 1);
    tc_test_redis_kill(tc_test_cluster_node(cl, master));
    uint64_t killed = tc_test_now_ms();
    for (int i = 0; i < 600 && tc_test_cluster_master_of_slot(cl, 0) == master; i++)
        tc_test_sleep_ms(50);
    cr_assert_neq(tc_test_cluster_master_of_slot(cl, 0), master, "no replica was promoted");
    uint64_t promoted = tc_test_now_ms();
    fprintf(stderr, "cluster cache: slot 0's replica promoted %llu ms after kill -9\n",
            (unsigned long long)(promoted - killed));
    atomic_store(&running->judged_from_ms, promoted);
    tc_test_sleep_ms(SLACK_MS);
    atomic_store(&running->faulty, 0); /* from here every call must succeed */
    tc_test_sleep_ms(1500);
}

Test(cluster_cache, a_killed_master_under_load_no_read_older_than_the_new_masters_writes) {
    under_oracle("kill -9 of a master", kill_master, 1);
}

/* ---- what a cluster refuses, by name ---- */

/* A dead seed will do: the refusals come before any Redis call. */
Test(cluster_url, features_a_cluster_lacks_are_refused_by_name) {
    tc_test_redis_opts_t ro = {.tcp = 1};
    tc_test_redis_t *gone = tc_test_redis_start(&ro);
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d", tc_test_redis_port(gone));
    tc_test_redis_stop(gone);
    tc_config_t cfg;
    cluster_config(&cfg, "cc:");
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &c, &err), TC_OK, "%s", err.msg);
    size_t n = 0;
    cr_assert_eq(tc_invalidate_tag(c, "t", 1, &n), TC_EINVAL);
    cr_assert(strstr(why(), "cluster"), "%s", why());
    cr_assert_eq(tc_invalidate_namespace(c, "user", 4), TC_EINVAL);
    cr_assert(strstr(why(), "redis+cluster://"), "%s", why());
    cr_assert_eq(tc_clear(c), TC_EINVAL);
    cr_assert(strstr(why(), "redis+cluster://"), "%s", why());
    tc_buf_t tag = {"t", 1};
    tc_opts_t o = TC_OPTS_INIT;
    o.tags = &tag;
    o.tags_count = 1;
    cr_assert_eq(tc_set_opts(c, "k", 1, "v", 1, &o), TC_EINVAL);
    cr_assert(strstr(why(), "cluster"), "%s", why());
    tc_close(c);

    cluster_config(&cfg, "cc:{x}");
    cr_assert_eq(tc_open(&cfg, &c, &err), TC_ECONFIG);
    cr_assert(strstr(err.msg, "hash tag"), "%s", err.msg);
    cluster_config(&cfg, "cc:");
    cfg.tracking = TC_TRACKING_BCAST;
    cr_assert_eq(tc_open(&cfg, &c, &err), TC_ECONFIG);
    cr_assert(strstr(err.msg, "tracking"), "%s", err.msg);
}

/* URLs: checked at open, with the cause named; no cluster needed. */
Test(cluster_url, malformed_cluster_urls_are_refused_with_the_cause) {
    static const struct {
        const char *url, *cause;
    } bad[] = {
        {"redis+cluster://", "at least one host"},
        {"redis+cluster://h:1/2", "no database or fragment"},
        {"redis+cluster://h:1?x=1", "unknown query parameter"},
        {"redis+cluster://h:1?read_from=nowhere", "not master or replicas"},
        {"redis+cluster://h:1?read_from=replicas&replica_keep_ms=0", "replica_keep_ms"},
        {"redis+cluster://h:1#frag", "no database or fragment"},
        {"redis+cluster://h:1,,h:2", "empty cluster node"},
        {"redis+cluster://h:99999", "port"},
        {"redis://a:1 redis+cluster://b:2", "give it alone"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tc_config_t cfg;
        tc_test_config(&cfg, bad[i].url, "cc:", "cc:chan");
        tc_cache_t *c = NULL;
        tc_error_t err;
        cr_assert_eq(tc_open(&cfg, &c, &err), TC_ECONFIG, "%s opened", bad[i].url);
        cr_assert(strstr(err.msg, bad[i].cause), "%s: '%s' does not say '%s'", bad[i].url,
                  err.msg, bad[i].cause);
    }
}

/* No seed answers at open: with require_redis the cause is named; without, the cache opens
 * degraded and a call fails fast with the same cause instead of waiting for a map. */
Test(cluster_url, a_cluster_down_at_open_is_named_or_survived) {
    tc_test_redis_opts_t ro = {.tcp = 1};
    tc_test_redis_t *gone = tc_test_redis_start(&ro);
    int port = tc_test_redis_port(gone);
    tc_test_redis_stop(gone);
    char dead[128];
    snprintf(dead, sizeof dead, "redis+cluster://127.0.0.1:%d", port);
    tc_config_t cfg;
    tc_test_config(&cfg, dead, "cc:", "cc:chan");
    cfg.require_redis = 1;
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &c, &err), TC_EUNAVAILABLE);
    cr_assert(strstr(err.msg, "no cluster node has answered") && strstr(err.msg, "refused"),
              "%s", err.msg);
    cfg.require_redis = 0;
    cr_assert_eq(tc_open(&cfg, &c, &err), TC_OK, "%s", err.msg);
    uint64_t t0 = tc_test_now_ms();
    tc_ref_t *ref = NULL;
    int rc = tc_get(c, "k", 1, &ref);
    cr_assert(rc == TC_EUNAVAILABLE || rc == TC_ENOTFOUND, "tc_get: %s", tc_err_name(rc));
    cr_assert_lt(tc_test_now_ms() - t0, 2000u * TC_TEST_SLOW, "a call waited for a map");
    tc_close(c);
}
