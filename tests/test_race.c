/*
 * test_race.c - three processes hammering eight hot keys must converge on Redis's value.
 *
 * Two tc-peer processes and this one each run 4 threads of random writes and reads on
 * keys k0..k7 for about 3 s (this process also mixes in tc_fetch and tc_del, so fills
 * from loaders and deletes race the writes too). Every written value is unique, so any
 * stale L1 copy is visible. After every writer has stopped and 200 ms have passed for the
 * last invalidations to land, each process's own tc_get of each key must equal what Redis
 * holds (read raw with hiredis and decoded with tc__val_decode), and so must a fresh
 * L2-only handle (l1_max_bytes 0).
 *
 * Timeouts are generous here (5 s commands) on purpose: a write that fails with Redis
 * unavailable legitimately leaves the writer's L1 ahead of Redis, which would make the
 * final comparison meaningless. Every process reports its failed writes, and the test
 * insists there were none, so a mismatch always means a lost or misordered invalidation.
 */
/* tc-test-labels: integration concurrency */
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
#include <unistd.h>

#define PREFIX   "t:race:"
#define CHANNEL  "t:race:inval"
#define NKEYS    8
#define NTHREADS 4
#define SECONDS  3

static tc_test_redis_t *redis;
static tc_test_peer_t *peers[2];

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_peer_stop(peers[0]);
    tc_test_peer_stop(peers[1]);
    tc_test_redis_stop(redis);
}

TestSuite(race, .init = setup, .fini = teardown, .timeout = 300);

static const char *const peer_env[] = {"TC_PEER_COMMAND_TIMEOUT=5s",
                                       "TC_PEER_CONNECT_TIMEOUT=2s", "TC_PEER_LISTENER_PING=1s",
                                       NULL};

static void race_config(tc_config_t *cfg) {
    tc_test_config(cfg, tc_test_redis_url(redis), PREFIX, CHANNEL);
    cfg->command_timeout_ms = 5000;
    cfg->connect_timeout_ms = 2000;
    cfg->listener_ping_ms = 1000;
}

/* ---- this process's stress threads ---- */

typedef struct stress {
    pthread_t tid;
    tc_cache_t *cache;
    unsigned id, seed;
    uint64_t deadline_ms;
    uint64_t writes, reads, errors, counter;
} stress_t;

static int stress_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    stress_t *st = arg;
    char val[64];
    (void)key;
    (void)klen;
    int n = snprintf(val, sizeof val, "%ld-L%u-%llu", (long)getpid(), st->id,
                     (unsigned long long)st->counter++);
    return tc_load_set_value(load, val, (size_t)n);
}

static void stress_one(stress_t *st) {
    char key[8], val[64];
    int klen = snprintf(key, sizeof key, "k%u", (unsigned)rand_r(&st->seed) % NKEYS);
    unsigned dice = (unsigned)rand_r(&st->seed) % 100;
    tc_ref_t *ref = NULL;
    if (dice < 45) {
        int vlen = snprintf(val, sizeof val, "%ld-%u-%llu", (long)getpid(), st->id,
                            (unsigned long long)st->counter++);
        st->errors += tc_set(st->cache, key, (size_t)klen, val, (size_t)vlen, 0) != 0;
        st->writes++;
    } else if (dice < 50) {
        st->errors += tc_del(st->cache, key, (size_t)klen) != 0;
        st->writes++;
    } else if (dice < 60) {
        st->errors += tc_fetch(st->cache, key, (size_t)klen, stress_loader, st, &ref) != 0;
        st->reads++;
    } else {
        int rc = tc_get(st->cache, key, (size_t)klen, &ref);
        st->errors += rc != 0 && rc != TC_ENOTFOUND;
        st->reads++;
    }
    tc_ref_release(ref);
}

static void *stress_main(void *arg) {
    stress_t *st = arg;
    while (tc_test_now_ms() < st->deadline_ms)
        stress_one(st);
    return NULL;
}

/* ---- the truth in Redis ---- */

/* Redis's value for key: 1 (out and len filled) when present, 0 when absent. */
static int redis_value(redisContext *rc, const char *key, char *out, size_t *len) {
    redisReply *r = redisCommand(rc, "GET %sk:%s", PREFIX, key);
    cr_assert_not_null(r);
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return 0;
    }
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    tc__val_t v;
    cr_assert_eq(tc__val_decode(r->str, (size_t)r->len, &v), 0, "%s is not in tiercache format",
                 key);
    cr_assert_lt(v.len, 64);
    memcpy(out, v.data, v.len);
    *len = v.len;
    freeReplyObject(r);
    return 1;
}

static void check_local(tc_cache_t *c, const char *who, const char *key, int present,
                        const char *val, size_t len) {
    char buf[64];
    size_t got = sizeof buf;
    int rc = tc_get_copy(c, key, strlen(key), buf, &got);
    if (!present) {
        cr_assert_eq(rc, TC_ENOTFOUND, "%s: %s is deleted in Redis but served (%s)", who, key,
                     tc_err_name(rc));
        return;
    }
    cr_assert_eq(rc, 0, "%s: %s: %s", who, key, tc_err_name(rc));
    cr_assert(got == len && memcmp(buf, val, len) == 0, "%s: %s is '%.*s', Redis has '%.*s'",
              who, key, (int)got, buf, (int)len, val);
}

static void check_peer(int i, const char *key, int present, const char *val, size_t len) {
    char hk[32], hv[140], want[150];
    tc_test_hex(key, strlen(key), hk);
    const char *reply = tc_test_peer_cmd(peers[i], "get %s", hk);
    if (present) {
        tc_test_hex(val, len, hv);
        snprintf(want, sizeof want, "val %s", hv);
    } else {
        snprintf(want, sizeof want, "miss");
    }
    cr_assert_str_eq(reply, want, "peer %d: %s differs from Redis", i, key);
}

static void parse_done(int i, const char *reply, uint64_t *writes) {
    unsigned long long w = 0, r = 0, e = 0;
    cr_assert_eq(sscanf(reply, "done %llu %llu %llu", &w, &r, &e), 3, "peer %d: '%s'", i,
                 reply);
    cr_assert_gt(w, 0, "peer %d wrote nothing", i);
    cr_assert_gt(r, 0, "peer %d read nothing", i);
    cr_assert_eq(e, 0, "peer %d: %llu writes failed", i, e);
    *writes = w;
}

/* Every listener has applied every message the burst published (each process hears all
 * three processes' writes, its own included), or a generous deadline passed (a lost link
 * flushes instead, and the checks below judge that): a listener that fell behind during
 * the burst is still working through its backlog, and the checks must not race it. */
static void drain_messages(tc_cache_t *c) {
    uint64_t deadline = tc_test_now_ms() + 10000u * TC_TEST_SLOW;
    for (;;) {
        tc_stats_t s;
        cr_assert_eq(tc_stats(c, &s), 0);
        uint64_t published = s.inval_published, least = s.inval_applied;
        for (int i = 0; i < 2; i++) {
            const char *line = tc_test_peer_cmd(peers[i], "stats");
            published += tc_test_stat(line, "inval_published");
            uint64_t got = tc_test_stat(line, "inval_applied");
            least = got < least ? got : least;
        }
        if (least >= published || tc_test_now_ms() > deadline)
            return;
        tc_test_sleep_ms(20);
    }
}

Test(race, three_processes_converge_on_redis) {
    tc_config_t cfg;
    race_config(&cfg);
    tc_cache_t *c = tc_test_open(&cfg);
    for (int i = 0; i < 2; i++)
        peers[i] = tc_test_peer_start(tc_test_redis_url(redis), PREFIX, CHANNEL, peer_env);

    for (int i = 0; i < 2; i++)
        tc_test_peer_send(peers[i], "stress %d %d %d %d", SECONDS, NKEYS, NTHREADS, 17 + i);
    stress_t st[NTHREADS];
    uint64_t deadline = tc_test_now_ms() + SECONDS * 1000u;
    for (unsigned i = 0; i < NTHREADS; i++) {
        st[i] = (stress_t){.cache = c, .id = i, .seed = 1000 + i, .deadline_ms = deadline};
        cr_assert_eq(pthread_create(&st[i].tid, NULL, stress_main, &st[i]), 0);
    }
    uint64_t mine = 0, errors = 0, theirs[2];
    for (unsigned i = 0; i < NTHREADS; i++) {
        pthread_join(st[i].tid, NULL);
        mine += st[i].writes;
        errors += st[i].errors;
    }
    for (int i = 0; i < 2; i++)
        parse_done(i, tc_test_peer_recv(peers[i], (SECONDS + 60) * 1000), &theirs[i]);
    cr_assert_gt(mine, 0);
    cr_assert_eq(errors, 0, "%llu calls failed in this process", (unsigned long long)errors);

    drain_messages(c);

    tc_config_t l2cfg;
    race_config(&l2cfg);
    l2cfg.l1_max_bytes = 0;
    tc_cache_t *l2only = tc_test_open(&l2cfg);
    redisContext *rc = tc_test_redis_connect(redis);
    cr_assert_not_null(rc);
    for (int k = 0; k < NKEYS; k++) {
        char key[8], val[64];
        size_t len = 0;
        snprintf(key, sizeof key, "k%d", k);
        int present = redis_value(rc, key, val, &len);
        check_local(l2only, "L2-only handle", key, present, val, len);
        check_local(c, "this process", key, present, val, len);
        check_peer(0, key, present, val, len);
        check_peer(1, key, present, val, len);
    }
    redisFree(rc);

    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    cr_assert_gt(s.inval_applied, 0, "this process applied no invalidation at all");
    const char *line = tc_test_peer_cmd(peers[0], "stats");
    cr_assert_gt(tc_test_stat(line, "inval_applied"), 0);
    cr_log_info("writes: here %llu, peers %llu + %llu", (unsigned long long)mine,
                (unsigned long long)theirs[0], (unsigned long long)theirs[1]);
    tc_close(l2only);
    tc_close(c);
}
