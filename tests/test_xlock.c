/*
 * test_xlock.c - cross-process single-flight: processes sharing one Redis run one load
 * for a missing key between them (lock_ttl_ms), and a lock whose holder died costs the
 * others no more than the lock's expiry.
 *
 * Loads are counted outside every cache: each loader, in this process and in the tc-peer
 * children (their `xfetch` command), INCRs a counter key in Redis over its own connection
 * before it sleeps. A counter of 1 after every caller of four processes has its value is
 * the proof that one load served the cluster; per-process stats (lock_acquired,
 * lock_waits) say who took the lock and who waited for it.
 *
 * Timing: the holder's loader sleeps long enough (scaled under sanitizers) that every
 * process arrives while the lock is held; the bounds on waits are generous (the lock's
 * TTL give or take a few hundred ms) because two shared cores are slow to wake a process.
 */
/* tc-test-labels: integration fault concurrency */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NPEERS    3
#define NTHREADS  8
#define LOAD_MS   (300u * TC_TEST_SLOW)
#define MARGIN_MS (500u * TC_TEST_SLOW)
#define REPLY_MS  (15000 * TC_TEST_SLOW)
#define KEY       "xl\0key"
#define KLEN      6
#define S(str)    str, sizeof(str) - 1

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

TestSuite(xlock, .init = setup, .fini = teardown, .timeout = 180);

/* ---- the counting loader (this process's twin of tc-peer's) ---- */

typedef struct xload {
    const char *counter;
    unsigned sleep_ms;
} xload_t;

static long long counter_cmd(const char *cmd, const char *counter) {
    redisContext *rc = tc_test_redis_connect(redis);
    if (!rc)
        return -1;
    redisReply *r = redisCommand(rc, "%s %s", cmd, counter);
    long long n = -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        n = r->integer;
    else if (r && r->type == REDIS_REPLY_STRING)
        n = strtoll(r->str, NULL, 10);
    else if (r && r->type == REDIS_REPLY_NIL)
        n = 0;
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return n;
}

static long long counter_get(const char *counter) {
    return counter_cmd("GET", counter);
}

static int xloader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    xload_t *xl = arg;
    if (klen != KLEN || memcmp(key, KEY, KLEN) != 0)
        return -999; /* the loader must see the caller's exact key */
    long long n = counter_cmd("INCR", xl->counter);
    if (n < 0)
        return TC_ELOADER;
    tc_test_sleep_ms(xl->sleep_ms);
    char v[64];
    int vlen = snprintf(v, sizeof v, "x-%ld-%lld", (long)getpid(), n);
    return tc_load_set_value(load, v, (size_t)vlen);
}

/* ---- helpers ---- */

static tc_cache_t *open_cache(const char *prefix, uint32_t lock_ttl, uint32_t lock_wait) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), prefix, prefix);
    cfg.lock_ttl_ms = lock_ttl;
    cfg.lock_wait_ms = lock_wait;
    return tc_test_open(&cfg);
}

static tc_test_peer_t *start_peer(const char *prefix, uint32_t lock_ttl, uint32_t lock_wait) {
    char ttl[64], wait[64];
    snprintf(ttl, sizeof ttl, "TC_PEER_LOCK_TTL=%u", lock_ttl);
    snprintf(wait, sizeof wait, "TC_PEER_LOCK_WAIT=%u", lock_wait);
    const char *env[] = {ttl, wait, NULL};
    return tc_test_peer_start(tc_test_redis_url(redis), prefix, prefix, env);
}

static uint64_t peer_stat(tc_test_peer_t *p, const char *name) {
    const char *line = tc_test_peer_cmd(p, "stats");
    uint64_t v = tc_test_stat(line, name);
    cr_assert_neq(v, UINT64_MAX, "no %s in '%s'", name, line);
    return v;
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

/* Parse "xdone OK ERR VALHEX FIRSTRC" into its parts; fails the test on another reply. */
static void parse_xdone(const char *line, unsigned *ok, unsigned *err, char *val, size_t cap,
                        int *firstrc) {
    char hexval[256];
    cr_assert_eq(sscanf(line, "xdone %u %u %255s %d", ok, err, hexval, firstrc), 4,
                 "unexpected xfetch reply '%s'", line);
    size_t len = 0;
    cr_assert_eq(tc_test_unhex(hexval, val, cap - 1, &len), 0, "bad value in '%s'", line);
    val[len] = '\0';
}

typedef struct caller {
    pthread_t tid;
    tc_cache_t *cache;
    xload_t *xl;
    pthread_barrier_t *barrier;
    int rc;
    char val[64];
} caller_t;

static void *caller_main(void *arg) {
    caller_t *w = arg;
    tc_ref_t *ref = NULL;
    pthread_barrier_wait(w->barrier);
    w->rc = tc_fetch(w->cache, KEY, KLEN, xloader, w->xl, &ref);
    if (w->rc == 0) {
        size_t n = tc_ref_size(ref) < sizeof w->val - 1 ? tc_ref_size(ref) : sizeof w->val - 1;
        memcpy(w->val, tc_ref_data(ref), n);
        w->val[n] = '\0';
    }
    tc_ref_release(ref);
    return NULL;
}

/* ---- 4 processes x 8 threads, one load ---- */

Test(xlock, one_load_for_four_processes_of_eight_threads) {
    const char *prefix = "t:xl1:", *counter = "xlcount:1";
    tc_cache_t *c = open_cache(prefix, 5000, 5000);
    tc_test_peer_t *peers[NPEERS];
    for (int i = 0; i < NPEERS; i++)
        peers[i] = start_peer(prefix, 5000, 5000);

    char hk[32];
    tc_test_hex(KEY, KLEN, hk);
    for (int i = 0; i < NPEERS; i++) /* released together: the peers start on receipt */
        tc_test_peer_send(peers[i], "xfetch %s %d %u %s", hk, NTHREADS, LOAD_MS, counter);
    xload_t xl = {.counter = counter, .sleep_ms = LOAD_MS};
    caller_t ws[NTHREADS];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        ws[i] = (caller_t){.cache = c, .xl = &xl, .barrier = &barrier};
        cr_assert_eq(pthread_create(&ws[i].tid, NULL, caller_main, &ws[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(ws[i].tid, NULL);
    pthread_barrier_destroy(&barrier);

    unsigned ok[NPEERS], err[NPEERS];
    int firstrc[NPEERS];
    char val[NPEERS][128];
    for (int i = 0; i < NPEERS; i++)
        parse_xdone(tc_test_peer_recv(peers[i], REPLY_MS), &ok[i], &err[i], val[i],
                    sizeof val[i], &firstrc[i]);
    cr_assert_eq(counter_get(counter), 1, "the loader ran %lld times across 4 processes",
                 counter_get(counter));
    for (int i = 0; i < NTHREADS; i++) {
        cr_assert_eq(ws[i].rc, 0, "local thread %d: %s", i, tc_err_name(ws[i].rc));
        cr_assert_str_eq(ws[i].val, ws[0].val, "local threads got different values");
    }
    for (int i = 0; i < NPEERS; i++) {
        cr_assert_eq(err[i], 0, "peer %d: %u callers failed or disagreed (first rc %s)", i,
                     err[i], tc_err_name(firstrc[i]));
        cr_assert_eq(ok[i], NTHREADS, "peer %d: %u callers succeeded", i, ok[i]);
        cr_assert_str_eq(val[i], ws[0].val, "peer %d got '%s', this process '%s'", i, val[i],
                         ws[0].val);
    }

    tc_stats_t st = stats(c);
    uint64_t acquired = st.lock_acquired, waits = st.lock_waits;
    for (int i = 0; i < NPEERS; i++) {
        acquired += peer_stat(peers[i], "lock_acquired");
        waits += peer_stat(peers[i], "lock_waits");
    }
    cr_assert_eq(acquired, 1, "%llu cross-process locks were taken for one load",
                 (unsigned long long)acquired);
    cr_assert_geq(waits, 1, "no process waited on another's load");
    for (int i = 0; i < NPEERS; i++)
        tc_test_peer_stop(peers[i]);
    tc_close(c);
}

/* ---- the holder dies: the lock's expiry frees the others ---- */

/* Wait until the counter reads want (the peer's loader has started, lock held). */
static void wait_counter(const char *counter, long long want) {
    uint64_t deadline = tc_test_now_ms() + 5000u * TC_TEST_SLOW;
    while (counter_get(counter) != want) {
        cr_assert_lt(tc_test_now_ms(), deadline, "the peer's loader never ran (counter %lld)",
                     counter_get(counter));
        tc_test_sleep_ms(2);
    }
}

Test(xlock, killed_holder_frees_the_key_at_lock_expiry) {
    const char *prefix = "t:xl2:", *counter = "xlcount:2";
    const uint32_t lock_ttl = 1000u * TC_TEST_SLOW, lock_wait = 5000u * TC_TEST_SLOW;
    tc_cache_t *c = open_cache(prefix, lock_ttl, lock_wait);
    tc_test_peer_t *holder = start_peer(prefix, lock_ttl, lock_wait);

    char hk[32];
    tc_test_hex(KEY, KLEN, hk);
    uint64_t sent = tc_test_now_ms();
    tc_test_peer_send(holder, "xfetch %s 1 60000 %s", hk, counter);
    wait_counter(counter, 1); /* the lock is taken before the loader runs */
    tc_test_peer_kill(holder);

    xload_t xl = {.counter = counter, .sleep_ms = 0};
    tc_ref_t *ref = NULL;
    uint64_t t0 = tc_test_now_ms();
    int rc = tc_fetch(c, KEY, KLEN, xloader, &xl, &ref);
    uint64_t done = tc_test_now_ms();
    cr_assert_eq(rc, 0, "fetch after the holder died: %s", tc_err_name(rc));
    char want[64];
    int wlen = snprintf(want, sizeof want, "x-%ld-2", (long)getpid());
    cr_assert(tc_ref_size(ref) == (size_t)wlen && memcmp(tc_ref_data(ref), want, wlen) == 0,
              "expected this process's load '%s', got %zu bytes", want, tc_ref_size(ref));
    tc_ref_release(ref);
    cr_assert_eq(counter_get(counter), 2, "the survivor must have loaded exactly once");
    /* The lock was taken after `sent`, so it cannot expire before sent + lock_ttl. */
    cr_assert_geq(done - sent + 100, lock_ttl,
                  "loaded %llu ms after the holder started, before its lock (%u ms) expired",
                  (unsigned long long)(done - sent), lock_ttl);
    cr_assert_lt(done - t0, lock_wait + MARGIN_MS, "the survivor waited %llu ms (lock_wait %u)",
                 (unsigned long long)(done - t0), lock_wait);
    tc_stats_t st = stats(c);
    cr_assert_geq(st.lock_waits, 1, "the survivor never waited on the dead holder's lock");
    cr_assert_eq(st.loads, 1);

    /* The survivor's value is now everyone's: a second fetch loads nothing. */
    cr_assert_eq(tc_fetch(c, KEY, KLEN, xloader, &xl, &ref), 0);
    tc_ref_release(ref);
    cr_assert_eq(counter_get(counter), 2);
    tc_test_peer_stop(holder);
    tc_close(c);
}

/* ---- a live but slow holder: lock_wait_ms bounds the wait ---- */

Test(xlock, lock_wait_bounds_the_wait_on_a_slow_holder) {
    const char *prefix = "t:xl3:", *counter = "xlcount:3";
    const uint32_t lock_ttl = 10000u * TC_TEST_SLOW, lock_wait = 500u * TC_TEST_SLOW;
    const unsigned holder_ms = 3000u * TC_TEST_SLOW;
    tc_cache_t *c = open_cache(prefix, lock_ttl, lock_wait);
    tc_test_peer_t *holder = start_peer(prefix, lock_ttl, lock_wait);

    char hk[32];
    tc_test_hex(KEY, KLEN, hk);
    tc_test_peer_send(holder, "xfetch %s 1 %u %s", hk, holder_ms, counter);
    wait_counter(counter, 1);

    xload_t xl = {.counter = counter, .sleep_ms = 0};
    tc_ref_t *ref = NULL;
    uint64_t t0 = tc_test_now_ms();
    int rc = tc_fetch(c, KEY, KLEN, xloader, &xl, &ref);
    uint64_t took = tc_test_now_ms() - t0;
    cr_assert_eq(rc, 0, "fetch behind a slow holder: %s", tc_err_name(rc));
    tc_ref_release(ref);
    cr_assert_geq(took + 100, lock_wait, "gave up after %llu ms, lock_wait is %u",
                  (unsigned long long)took, lock_wait);
    cr_assert_lt(took, lock_wait + MARGIN_MS, "waited %llu ms, lock_wait is %u",
                 (unsigned long long)took, lock_wait);
    cr_assert_eq(counter_get(counter), 2, "after lock_wait the waiter loads itself");
    tc_stats_t st = stats(c);
    cr_assert_geq(st.lock_waits, 1);
    cr_assert_geq(st.lock_timeouts, 1, "giving up on the lock must be counted");

    unsigned ok, err;
    int firstrc;
    char val[128];
    parse_xdone(tc_test_peer_recv(holder, REPLY_MS), &ok, &err, val, sizeof val, &firstrc);
    cr_assert_eq(ok, 1, "the slow holder's own caller failed: %s", tc_err_name(firstrc));
    cr_assert_eq(peer_stat(holder, "lock_acquired"), 1);
    tc_test_peer_stop(holder);
    tc_close(c);
}

/* ---- lock_ttl_ms 0 turns the lock off: every process loads for itself ---- */

Test(xlock, lock_off_means_no_cluster_lock) {
    const char *prefix = "t:xl4:", *counter = "xlcount:4";
    tc_cache_t *c = open_cache(prefix, 0, 5000);
    tc_test_peer_t *peer = start_peer(prefix, 0, 5000);
    char hk[32];
    tc_test_hex(KEY, KLEN, hk);
    tc_test_peer_send(peer, "xfetch %s 1 %u %s", hk, LOAD_MS * 2, counter);
    wait_counter(counter, 1);
    xload_t xl = {.counter = counter, .sleep_ms = 0};
    tc_ref_t *ref = NULL;
    uint64_t t0 = tc_test_now_ms();
    cr_assert_eq(tc_fetch(c, KEY, KLEN, xloader, &xl, &ref), 0);
    tc_ref_release(ref);
    cr_assert_lt(tc_test_now_ms() - t0, LOAD_MS, "with the lock off nobody waits");
    cr_assert_eq(counter_get(counter), 2);
    unsigned ok, err;
    int firstrc;
    char val[128];
    parse_xdone(tc_test_peer_recv(peer, REPLY_MS), &ok, &err, val, sizeof val, &firstrc);
    cr_assert_eq(ok, 1, "peer: %s", tc_err_name(firstrc));
    tc_stats_t st = stats(c);
    cr_assert_eq(st.lock_acquired + peer_stat(peer, "lock_acquired"), 0);
    cr_assert_eq(st.lock_waits + peer_stat(peer, "lock_waits"), 0);
    tc_test_peer_stop(peer);
    tc_close(c);
}
