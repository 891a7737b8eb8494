/*
 * test_write.c - the write strategies against a real SQLite database file: read-through
 * (tc_get with tc_config_t.loader), write-through (tc_set_through, tc_del_through) and
 * write-behind (tc_set_behind, tc_del_behind, tc_flush, dead letters), across threads, a
 * second process, a paused Redis and a flusher killed with SIGKILL.
 *
 * The source of truth is tests/peer/wb_source.c: the version-guarded, idempotent writer the
 * header recommends, one transaction per batch, and a `history` table in the same
 * transaction recording every write the writer was handed (key, version, applied, pid).
 * History makes the ordering promises checkable after the fact, whichever process wrote:
 * per key, delivered versions never go down and applied versions strictly rise. Every
 * write-behind workload keeps an oracle (the last write of each key whose call returned 0)
 * and, once drained, the table must hold exactly that: every key's newest value, no
 * deleted key, nothing else.
 *
 * The cache side is checked where it lands: Redis itself (the stored value decoded), this
 * process's tc_get, and a second process (tc-peer, or wb-peer: a cache with the same SQLite
 * writer, tests/peer/wb_peer.c) whose L1 held the old value. Faults are real: SIGSTOP on
 * redis-server between the source write and the cache write, an exclusive SQLite
 * transaction from another connection, a flusher process killed mid-drain.
 *
 * Timing bounds scale by TC_TEST_SLOW (sanitizer builds), except the header's own bound on
 * a flusher's takeover, which is a promise in milliseconds.
 */
/* tc-test-labels: integration fault concurrency */
#include "peer.h"
#include "proxy.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#ifndef TC_TEST_WB_PEER_PATH

Test(write, skipped) {
#ifdef cr_skip_test
    cr_skip_test("libsqlite3 was not found: the write-strategy suite needs a real database");
#else /* the ThreadSanitizer runner (tests/tsan) has no skip */
    cr_log_warn("libsqlite3 was not found: the write-strategy suite needs a real database");
#endif
}

#else

#include "valfmt.h"
#include "wb_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PREFIX  "t:wr:"
#define CHANNEL "t:wr:inval"
#define WAIT_MS (3000u * TC_TEST_SLOW) /* longest wait for a message, a flush, a takeover */
#define S(str)  str, sizeof(str) - 1

static tc_test_redis_t *redis;
static char tmpdir[128], dbpath[192];

static void setup(void) {
    redis = tc_test_redis_start(NULL);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tc-write-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
    snprintf(dbpath, sizeof dbpath, "%s/source.db", tmpdir);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

TestSuite(readthrough, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(through, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(behind, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(crash, .init = setup, .fini = teardown, .timeout = 240);
TestSuite(lifecycle, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the pieces every test uses ---- */

/* Poll cond every 2 ms for up to ms; ok is 1 when it held. */
#define WAIT_UNTIL(ok, cond, ms)                                                               \
    do {                                                                                       \
        uint64_t deadline_ = tc_test_now_ms() + (ms);                                          \
        for (;;) {                                                                             \
            if (cond) {                                                                        \
                (ok) = 1;                                                                      \
                break;                                                                         \
            }                                                                                  \
            if (tc_test_now_ms() >= deadline_) {                                               \
                (ok) = 0;                                                                      \
                break;                                                                         \
            }                                                                                  \
            tc_test_sleep_ms(2);                                                               \
        }                                                                                      \
    } while (0)

/* The flusher moves its counters just after the queue moves (tc_flush may return first):
 * poll this cache's stats into st until cond holds. */
#define WAIT_STATS(c, st, cond)                                                                \
    do {                                                                                       \
        int ok_;                                                                               \
        WAIT_UNTIL(ok_, ((st) = stats(c), (cond)), WAIT_MS);                                   \
        cr_assert(ok_, "the counters never showed %s", #cond);                                 \
    } while (0)

static wb_source_t *source(unsigned busy_ms) {
    char why[512];
    wb_source_t *s = wb_source_open(dbpath, busy_ms, why, sizeof why);
    cr_assert_not_null(s, "source: %s", why);
    return s;
}

/* The suites' cache: private prefix and channel, a generous command timeout (no fault is
 * meant unless the test makes one), the SQLite writer when src is given. */
static void config(tc_config_t *cfg, wb_source_t *src) {
    tc_test_config(cfg, tc_test_redis_url(redis), PREFIX, CHANNEL);
    cfg->command_timeout_ms = 2000;
    cfg->writer = src ? wb_source_writer : NULL;
    cfg->writer_arg = src;
    cfg->write_behind_delay_ms = 5;
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

static redisContext *rconn(void) {
    redisContext *rc = tc_test_redis_connect(redis);
    cr_assert_not_null(rc, "no direct connection to redis");
    return rc;
}

/* What Redis stores for key, decoded: 1 (value NUL-terminated in buf, *version), 0 absent. */
static int redis_value_v(const char *key, char *buf, size_t cap, uint64_t *version) {
    redisContext *rc = rconn();
    redisReply *r = redisCommand(rc, "GET " PREFIX "k:%s", key);
    cr_assert_not_null(r, "GET failed: %s", rc->errstr);
    int found = 0;
    buf[0] = '\0';
    if (r->type == REDIS_REPLY_STRING) {
        tc__val_t v;
        cr_assert_eq(tc__val_decode(r->str, r->len, &v), TC__PARSED, "Redis holds garbage");
        cr_assert_lt(v.len, cap);
        memcpy(buf, v.data, v.len);
        buf[v.len] = '\0';
        if (version)
            *version = v.version;
        found = 1;
    }
    freeReplyObject(r);
    redisFree(rc);
    return found;
}

static int redis_value(const char *key, char *buf, size_t cap) {
    return redis_value_v(key, buf, cap, NULL);
}

/* An integer reply to a command on a key under PREFIX (XLEN, PTTL, EXISTS). */
static long long redis_int(const char *cmd, const char *suffix) {
    redisContext *rc = rconn();
    redisReply *r = redisCommand(rc, "%s " PREFIX "%s", cmd, suffix);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s %s: not an integer", cmd, suffix);
    long long n = r->integer;
    freeReplyObject(r);
    redisFree(rc);
    return n;
}

static long long queued(void) {
    return redis_int("XLEN", "wb");
}

/* Entries of the queue read by a flusher and not yet acknowledged (XPENDING). */
static long long pending(void) {
    redisContext *rc = rconn();
    redisReply *r = redisCommand(rc, "XPENDING " PREFIX "wb tc");
    cr_assert_not_null(r);
    long long n = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                          r->element[0]->type == REDIS_REPLY_INTEGER
                      ? r->element[0]->integer
                      : -1;
    freeReplyObject(r);
    redisFree(rc);
    return n;
}

/* tc_get of key: its code, the value NUL-terminated in buf ("" otherwise). */
static int cache_value(tc_cache_t *c, const char *key, char *buf, size_t cap) {
    size_t len = cap - 1;
    int rc = tc_get_copy(c, key, strlen(key), buf, &len);
    buf[rc == 0 ? len : 0] = '\0';
    return rc;
}

/* The source's row of key: 1 (value NUL-terminated in buf), 0 absent. */
static int src_value(wb_source_t *s, const char *key, char *buf, size_t cap) {
    size_t len = 0;
    int found = wb_source_get(s, key, strlen(key), buf, cap - 1, &len, NULL);
    cr_assert_geq(found, 0, "reading the source failed");
    buf[found ? len : 0] = '\0';
    return found;
}

static void expect_history_ok(wb_source_t *s) {
    char why[512] = "";
    cr_assert_eq(wb_source_check_history(s, why, sizeof why), 0, "%s", why);
}

/* A peer's tc_get of key: 1 (value in buf), 0 miss; anything else fails the test. */
static int peer_value(tc_test_peer_t *p, const char *key, char *buf, size_t cap) {
    char hk[256];
    tc_test_hex(key, strlen(key), hk);
    const char *line = tc_test_peer_cmd(p, "get %s", hk);
    if (strcmp(line, "miss") == 0) {
        buf[0] = '\0';
        return 0;
    }
    size_t len = 0;
    cr_assert(strncmp(line, "val ", 4) == 0 && tc_test_unhex(line + 4, buf, cap - 1, &len) == 0,
              "peer get %s: '%s'", key, line);
    buf[len] = '\0';
    return 1;
}

/* Poll the peer until its tc_get of key answers want (NULL: a miss). 1 when it did. */
static int peer_wait(tc_test_peer_t *p, const char *key, const char *want, unsigned ms) {
    char got[256];
    int ok;
    WAIT_UNTIL(ok,
               peer_value(p, key, got, sizeof got) == (want != NULL) &&
                   (!want || strcmp(got, want) == 0),
               ms);
    return ok;
}

static uint64_t peer_stat(tc_test_peer_t *p, const char *name) {
    const char *line = tc_test_peer_cmd(p, "stats");
    uint64_t v = tc_test_stat(line, name);
    cr_assert_neq(v, UINT64_MAX, "peer stats lack %s: '%s'", name, line);
    return v;
}

static void peer_ok(tc_test_peer_t *p, const char *cmd, const char *key, const char *val) {
    char hk[256], hv[256];
    tc_test_hex(key, strlen(key), hk);
    tc_test_hex(val, val ? strlen(val) : 0, hv);
    const char *line = val ? tc_test_peer_cmd(p, "%s %s %s", cmd, hk, hv)
                           : tc_test_peer_cmd(p, "%s %s", cmd, hk);
    cr_assert_str_eq(line, "ok 0", "peer %s %s: '%s'", cmd, key, line);
}

static tc_test_peer_t *wb_peer(const char *const *env) {
    const char *args[] = {tc_test_redis_url(redis), PREFIX, CHANNEL, dbpath, NULL};
    return tc_test_peer_start_prog(TC_TEST_WB_PEER_PATH, args, env);
}

/* ---- write-behind workloads and their oracle ---- */

#define MAX_KEYS 1024

typedef struct oracle {
    char value[MAX_KEYS][32]; /* the last completed write of key i */
    unsigned char present[MAX_KEYS];
} oracle_t;

typedef struct workload {
    tc_cache_t *c;
    oracle_t *o;
    const char *kp; /* key i is kp followed by i */
    unsigned id, nthreads, nkeys, ops, del_pct, seed;
    int bursts; /* each key written ops/nkeys times in a row, then never again */
    unsigned errors;
    int first_rc;
} workload_t;

/* Thread id owns keys id, id + nthreads, ...: the oracle of a key has one writer. */
static void *workload_thread(void *arg) {
    workload_t *w = arg;
    unsigned seed = w->seed, per = w->nkeys / w->nthreads;
    unsigned burst = w->ops / per ? w->ops / per : 1;
    char key[48], val[32];
    for (unsigned i = 0; i < w->ops; i++) {
        unsigned slot = w->bursts ? i / burst % per : (unsigned)rand_r(&seed) % per;
        unsigned k = w->id + w->nthreads * slot;
        snprintf(key, sizeof key, "%s%u", w->kp, k);
        int del = (unsigned)rand_r(&seed) % 100 < w->del_pct;
        snprintf(val, sizeof val, "t%u-%u", w->id, i);
        int rc = del ? tc_del_behind(w->c, key, strlen(key))
                     : tc_set_behind(w->c, key, strlen(key), val, strlen(val), NULL);
        if (rc != 0) {
            if (w->errors++ == 0)
                w->first_rc = rc;
            continue;
        }
        w->o->present[k] = !del;
        if (!del)
            memcpy(w->o->value[k], val, sizeof val);
    }
    return NULL;
}

/* ops write-behind calls in nthreads threads over keys kp0..kp{nkeys-1}, del_pct percent of
 * them deletes, keys picked at random or (bursts) one after the other; all must work. */
static void run_workload_ex(tc_cache_t *c, oracle_t *o, const char *kp, unsigned nthreads,
                            unsigned nkeys, unsigned ops, unsigned del_pct, int bursts) {
    workload_t w[8];
    pthread_t tid[8];
    cr_assert(nthreads <= 8 && nkeys <= MAX_KEYS && nkeys % nthreads == 0);
    for (unsigned t = 0; t < nthreads; t++) {
        w[t] = (workload_t){.c = c,
                            .o = o,
                            .kp = kp,
                            .id = t,
                            .nthreads = nthreads,
                            .nkeys = nkeys,
                            .ops = ops / nthreads,
                            .del_pct = del_pct,
                            .bursts = bursts,
                            .seed = 977u * t + 13u};
        cr_assert_eq(pthread_create(&tid[t], NULL, workload_thread, &w[t]), 0);
    }
    unsigned errors = 0;
    int first = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(tid[t], NULL);
        if (w[t].errors && !errors)
            first = w[t].first_rc;
        errors += w[t].errors;
    }
    cr_assert_eq(errors, 0, "%u write-behind calls failed (first: %s)", errors,
                 tc_err_name(first));
}

static void run_workload(tc_cache_t *c, oracle_t *o, const char *kp, unsigned nthreads,
                         unsigned nkeys, unsigned ops, unsigned del_pct) {
    run_workload_ex(c, o, kp, nthreads, nkeys, ops, del_pct, 0);
}

/* The source holds exactly the oracle: every present key's last value, and besides them only
 * `others` rows. */
static void expect_source_is(wb_source_t *s, const oracle_t *o, const char *kp, unsigned nkeys,
                             long others) {
    long want = 0;
    char key[48], got[64];
    for (unsigned k = 0; k < nkeys; k++) {
        snprintf(key, sizeof key, "%s%u", kp, k);
        int found = src_value(s, key, got, sizeof got);
        want += o->present[k];
        if (o->present[k])
            cr_assert(found && strcmp(got, o->value[k]) == 0,
                      "source %s: '%s' (%s), the last write was '%s'", key, got,
                      found ? "present" : "absent", o->value[k]);
        else
            cr_assert_not(found, "source %s: '%s', but the key's last write deleted it", key,
                          got);
    }
    cr_assert_eq(wb_source_count(s), want + others, "the source holds rows nobody wrote");
}

/* ========================= read-through ========================= */

typedef struct getter {
    tc_cache_t *c;
    pthread_barrier_t *go;
    int rc;
    char got[32];
} getter_t;

static void *getter_thread(void *arg) {
    getter_t *g = arg;
    pthread_barrier_wait(g->go);
    g->rc = cache_value(g->c, "user:1", g->got, sizeof g->got);
    return NULL;
}

/* A miss in both tiers loads from SQLite once for all concurrent callers and is cached in
 * both tiers; tc_get_copy reads through the same way; a missing row is TC_ENOTFOUND. */
Test(readthrough, loads_once_then_serves_the_cache) {
    wb_source_t *src = source(5000);
    cr_assert_eq(wb_source_put(src, S("user:1"), S("alice"), 1), 0);
    cr_assert_eq(wb_source_put(src, S("user:2"), S("bob"), 1), 0);
    atomic_store(&src->load_ms, 150); /* long enough for every caller to arrive */
    tc_config_t cfg;
    config(&cfg, NULL);
    cfg.loader = wb_source_loader;
    cfg.loader_arg = src;
    tc_cache_t *c = tc_test_open(&cfg);

    enum { T = 8 };
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, T);
    getter_t g[T];
    pthread_t tid[T];
    for (int i = 0; i < T; i++) {
        g[i] = (getter_t){.c = c, .go = &go};
        cr_assert_eq(pthread_create(&tid[i], NULL, getter_thread, &g[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(tid[i], NULL);
        cr_assert_eq(g[i].rc, 0, "caller %d: %s", i, tc_err_name(g[i].rc));
        cr_assert_str_eq(g[i].got, "alice");
    }
    pthread_barrier_destroy(&go);
    cr_assert_eq(atomic_load(&src->loads), 1, "%lu loads for %d concurrent callers",
                 atomic_load(&src->loads), T);
    char buf[64];
    cr_assert(redis_value("user:1", buf, sizeof buf) && strcmp(buf, "alice") == 0,
              "the loaded value is not in Redis: '%s'", buf);

    /* Cached: the source changing behind the cache's back is not seen, nothing reloads. */
    atomic_store(&src->load_ms, 0);
    cr_assert_eq(wb_source_put(src, S("user:1"), S("changed"), 2), 0);
    cr_assert_eq(cache_value(c, "user:1", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "alice");
    cr_assert_eq(atomic_load(&src->loads), 1);

    /* tc_get_copy reads through too, once. */
    for (int i = 0; i < 2; i++) {
        char out[16];
        size_t len = sizeof out;
        cr_assert_eq(tc_get_copy(c, S("user:2"), out, &len), 0);
        cr_assert(len == 3 && memcmp(out, "bob", 3) == 0);
    }
    cr_assert_eq(atomic_load(&src->loads), 2);
    cr_assert(redis_value("user:2", buf, sizeof buf) && strcmp(buf, "bob") == 0);

    /* Not at the source: TC_ENOTFOUND, with the loader asked. */
    cr_assert_eq(cache_value(c, "user:404", buf, sizeof buf), TC_ENOTFOUND);
    cr_assert_eq(atomic_load(&src->loads), 3);
    tc_close(c);
    wb_source_close(src);
}

/* Without a loader tc_get only reads; with one, a key a tier holds is never loaded. */
Test(readthrough, loader_only_for_keys_neither_tier_has) {
    wb_source_t *src = source(5000);
    cr_assert_eq(wb_source_put(src, S("user:1"), S("alice"), 1), 0);
    cr_assert_eq(wb_source_put(src, S("user:5"), S("from-source"), 1), 0);
    tc_config_t cfg;
    config(&cfg, NULL);
    tc_cache_t *plain = tc_test_open(&cfg);
    char buf[64];
    cr_assert_eq(cache_value(plain, "user:1", buf, sizeof buf), TC_ENOTFOUND);
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_get(plain, S("user:1"), &ref), TC_ENOTFOUND);
    cr_assert_null(ref);
    cr_assert_not(redis_value("user:1", buf, sizeof buf), "a plain read stored something");
    tc_close(plain);

    cfg.loader = wb_source_loader;
    cfg.loader_arg = src;
    tc_cache_t *c = tc_test_open(&cfg);
    cr_assert_eq(tc_set(c, S("user:5"), S("cached"), 0), 0);
    cr_assert_eq(cache_value(c, "user:5", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "cached");
    cr_assert_eq(atomic_load(&src->loads), 0, "a cached key was loaded");
    tc_close(c);
    wb_source_close(src);
}

/* ========================= write-through ========================= */

/* What the writer saw: for each call on the test's thread, the version and what Redis
 * held for the key at that moment. */
typedef struct seen {
    unsigned n;
    uint64_t version[8];
    char redis_then[8][32];
    int redis_had[8];
} seen_t;

static void record_hook(void *arg, const tc_write_t *w, size_t n) {
    seen_t *s = arg;
    if (n != 1 || s->n >= 8)
        return;
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)w->klen, (const char *)w->key);
    s->version[s->n] = w->version;
    s->redis_had[s->n] = redis_value(key, s->redis_then[s->n], sizeof s->redis_then[s->n]);
    s->n++;
}

/* The source first (the row is there while Redis still holds the old value), then the cache:
 * this process, Redis and another process's L1 all move to the new value. */
Test(through, source_first_then_every_tier) {
    wb_source_t *src = source(5000);
    seen_t seen = {0};
    src->hook = record_hook;
    src->hook_arg = &seen;
    tc_config_t cfg;
    config(&cfg, src);
    tc_cache_t *c = tc_test_open(&cfg);
    tc_test_peer_t *peer = tc_test_peer_start(tc_test_redis_url(redis), PREFIX, CHANNEL, NULL);
    cr_assert_eq(tc_set(c, S("acct:1"), S("old"), 0), 0);
    cr_assert(peer_wait(peer, "acct:1", "old", WAIT_MS));

    cr_assert_eq(tc_set_through(c, S("acct:1"), S("new"), NULL), 0);
    char buf[64];
    cr_assert_eq(seen.n, 1, "the writer was called %u times", seen.n);
    cr_assert(seen.redis_had[0] && strcmp(seen.redis_then[0], "old") == 0,
              "when the source was written Redis held '%s': the cache went first",
              seen.redis_then[0]);
    uint64_t version = 0;
    size_t len = 0;
    cr_assert_eq(wb_source_get(src, S("acct:1"), buf, sizeof buf, &len, &version), 1);
    cr_assert(len == 3 && memcmp(buf, "new", 3) == 0);
    cr_assert_eq(version, seen.version[0], "the row does not carry the write's version");
    cr_assert(redis_value("acct:1", buf, sizeof buf) && strcmp(buf, "new") == 0, "Redis: '%s'",
              buf);
    cr_assert_eq(cache_value(c, "acct:1", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "new");
    cr_assert(peer_wait(peer, "acct:1", "new", WAIT_MS),
              "the other process kept the old value");

    /* Every later write of the key carries a larger version. */
    cr_assert_eq(tc_set_through(c, S("acct:1"), S("newer"), NULL), 0);
    cr_assert_eq(tc_del_through(c, S("acct:1")), 0);
    cr_assert_eq(seen.n, 3);
    cr_assert(seen.version[0] > 0 && seen.version[1] > seen.version[0] &&
                  seen.version[2] > seen.version[1],
              "versions %llu, %llu, %llu do not grow", (unsigned long long)seen.version[0],
              (unsigned long long)seen.version[1], (unsigned long long)seen.version[2]);
    tc_stats_t st = stats(c);
    cr_assert_eq(st.writes_through, 3);
    cr_assert_eq(st.writes_partial, 0);
    expect_history_ok(src);
    tc_test_peer_stop(peer);
    tc_close(c);
    wb_source_close(src);
}

/* Prime key = "old" in the source, Redis, this L1 and the peer's L1. */
static void prime_old(tc_cache_t *c, wb_source_t *src, tc_test_peer_t *peer, const char *key) {
    cr_assert_eq(wb_source_put(src, key, strlen(key), S("old"), 1), 0);
    cr_assert_eq(tc_set(c, key, strlen(key), S("old"), 0), 0);
    cr_assert(peer_wait(peer, key, "old", WAIT_MS));
}

static void expect_old_everywhere(tc_cache_t *c, wb_source_t *src, tc_test_peer_t *peer,
                                  const char *key, const char *after) {
    char buf[64];
    cr_assert(src_value(src, key, buf, sizeof buf) && strcmp(buf, "old") == 0,
              "%s: the source holds '%s'", after, buf);
    cr_assert(redis_value(key, buf, sizeof buf) && strcmp(buf, "old") == 0,
              "%s: Redis holds '%s'", after, buf);
    cr_assert(cache_value(c, key, buf, sizeof buf) == 0 && strcmp(buf, "old") == 0,
              "%s: this process reads '%s'", after, buf);
    cr_assert(peer_value(peer, key, buf, sizeof buf) && strcmp(buf, "old") == 0,
              "%s: the peer reads '%s'", after, buf);
}

/* A failing writer (its return, or the write's result) is the call's answer, and neither
 * tier changes; the key's lock is given back (the next write-through does not wait). */
Test(through, writer_failure_changes_nothing) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.lock_wait_ms = 5000;
    tc_cache_t *c = tc_test_open(&cfg);
    tc_test_peer_t *peer = tc_test_peer_start(tc_test_redis_url(redis), PREFIX, CHANNEL, NULL);
    prime_old(c, src, peer, "acct:1");

    struct {
        int rc, result, want;
        const char *what;
    } cases[] = {{TC_EUNAVAILABLE, 0, TC_EUNAVAILABLE, "writer returned TC_EUNAVAILABLE"},
                 {0, TC_ETIMEDOUT, TC_ETIMEDOUT, "w->result = TC_ETIMEDOUT"},
                 {7, 0, TC_ELOADER, "writer returned 7"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        atomic_store(&src->fail_rc, cases[i].rc);
        atomic_store(&src->fail_result, cases[i].result);
        atomic_store(&src->fail_calls, 1);
        uint64_t t0 = tc_test_now_ms();
        int rc = tc_set_through(c, S("acct:1"), S("bad"), NULL);
        cr_assert_eq(rc, cases[i].want, "%s: tc_set_through gave %s", cases[i].what,
                     tc_err_name(rc));
        expect_old_everywhere(c, src, peer, "acct:1", cases[i].what);
        atomic_store(&src->fail_calls, 1);
        rc = tc_del_through(c, S("acct:1"));
        cr_assert_eq(rc, cases[i].want, "%s: tc_del_through gave %s", cases[i].what,
                     tc_err_name(rc));
        expect_old_everywhere(c, src, peer, "acct:1", cases[i].what);
        cr_assert_lt(tc_test_now_ms() - t0, 1000u * TC_TEST_SLOW,
                     "%s: a write-through waited for the lock a failed one kept",
                     cases[i].what);
    }
    cr_assert_eq(stats(c).writes_through, 0);

    uint64_t t0 = tc_test_now_ms();
    cr_assert_eq(tc_set_through(c, S("acct:1"), S("good"), NULL), 0);
    cr_assert_lt(tc_test_now_ms() - t0, 1000u * TC_TEST_SLOW,
                 "the next write-through waited: a failed one kept the key's lock");
    char buf[64];
    cr_assert(src_value(src, "acct:1", buf, sizeof buf) && strcmp(buf, "good") == 0);
    cr_assert(peer_wait(peer, "acct:1", "good", WAIT_MS));
    tc_test_peer_stop(peer);
    tc_close(c);
    wb_source_close(src);
}

/* tc_del_through deletes the row and the key in every tier and process. */
Test(through, delete_reaches_source_and_every_cache) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    tc_cache_t *c = tc_test_open(&cfg);
    tc_test_peer_t *peer = tc_test_peer_start(tc_test_redis_url(redis), PREFIX, CHANNEL, NULL);
    cr_assert_eq(tc_set_through(c, S("acct:2"), S("old"), NULL), 0);
    cr_assert(peer_wait(peer, "acct:2", "old", WAIT_MS));

    cr_assert_eq(tc_del_through(c, S("acct:2")), 0);
    char buf[64];
    cr_assert_not(src_value(src, "acct:2", buf, sizeof buf), "the row is still there: '%s'",
                  buf);
    cr_assert_not(redis_value("acct:2", buf, sizeof buf), "Redis still holds '%s'", buf);
    int ok; /* this process at once: through.own_reads_see_the_delete_at_once */
    WAIT_UNTIL(ok, cache_value(c, "acct:2", buf, sizeof buf) == TC_ENOTFOUND, WAIT_MS);
    cr_assert(ok, "this process still reads '%s'", buf);
    cr_assert(peer_wait(peer, "acct:2", NULL, WAIT_MS), "the other process kept the key");
    cr_assert_eq(tc_del_through(c, S("never-was")), 0, "deleting an absent key failed");
    cr_assert_eq(wb_source_history_count(src, 0, 1), 2); /* the set and the first delete */
    expect_history_ok(src);
    tc_test_peer_stop(peer);
    tc_close(c);
    wb_source_close(src);
}

/* Two processes write one key through, at the same time, hundreds of times: after every
 * round the cache (Redis, and each process's L1 once messages land) holds what the source
 * holds, or nothing. */
Test(through, two_processes_on_one_key_agree_with_the_source) {
    wb_source_t *src = source(5000);
    atomic_store(&src->slow_ms, 1); /* a gap between the source write and the cache write */
    tc_config_t cfg;
    config(&cfg, src);
    tc_cache_t *c = tc_test_open(&cfg);
    const char *env[] = {"WBP_SLOW_MS=1", NULL};
    tc_test_peer_t *peer = wb_peer(env);
    const unsigned rounds = 300;
    unsigned cached = 0;
    char hk[64], hv[64], val[32], want[64], got[64];
    tc_test_hex(S("hot"), hk);
    for (unsigned i = 0; i < rounds; i++) {
        snprintf(val, sizeof val, "p%u", i);
        tc_test_hex(val, strlen(val), hv);
        tc_test_peer_send(peer, "st %s %s", hk, hv);
        snprintf(val, sizeof val, "t%u", i);
        if (i % 2) /* start second now and then, so both orders happen */
            tc_test_sleep_ms(1);
        int rc = tc_set_through(c, S("hot"), val, strlen(val), NULL);
        const char *line = tc_test_peer_recv(peer, (int)WAIT_MS);
        cr_assert_eq(rc, 0, "round %u: tc_set_through: %s", i, tc_err_name(rc));
        cr_assert_str_eq(line, "ok 0", "round %u: the peer's write-through: '%s'", i, line);

        cr_assert(src_value(src, "hot", want, sizeof want), "round %u: no row", i);
        cr_assert(want[0] == 'p' || want[0] == 't');
        if (redis_value("hot", got, sizeof got)) {
            cached++;
            cr_assert_str_eq(got, want, "round %u: Redis holds '%s', the source '%s'", i, got,
                             want);
        }
        int ok;
        WAIT_UNTIL(ok,
                   (rc = cache_value(c, "hot", got, sizeof got)) == TC_ENOTFOUND ||
                       (rc == 0 && strcmp(got, want) == 0),
                   WAIT_MS);
        cr_assert(ok, "round %u: this process reads '%s' (%s), the source holds '%s'", i, got,
                  tc_err_name(rc), want);
        WAIT_UNTIL(ok, !peer_value(peer, "hot", got, sizeof got) || strcmp(got, want) == 0,
                   WAIT_MS);
        cr_assert(ok, "round %u: the peer reads '%s', the source holds '%s'", i, got, want);
    }
    cr_log_info("two-process write-through: %u of %u rounds ended with the value cached",
                cached, rounds);
    cr_assert_gt(cached, 0, "no round ever left the value in the cache");
    cr_assert_eq(wb_source_history_count(src, 0, 0), 2 * rounds);
    cr_assert_gt(wb_source_history_count(src, tc_test_peer_pid(peer), 0), 0);
    expect_history_ok(src);
    tc_test_peer_stop(peer);
    tc_close(c);
    wb_source_close(src);
}

/* Another write to the key while the writer runs: the write-through must not store its
 * value over it (the source may be ahead of it): the key is deleted everywhere. */
typedef struct intrude {
    tc_cache_t *c;
    int del; /* tc_del instead of tc_set */
    int rc, done;
} intrude_t;

static void intrude_hook(void *arg, const tc_write_t *w, size_t n) {
    intrude_t *in = arg;
    if (n != 1 || in->done || w->kind != TC_WRITE_SET)
        return;
    in->done = 1;
    in->rc = in->del ? tc_del(in->c, w->key, w->klen)
                     : tc_set(in->c, w->key, w->klen, S("intruder"), 0);
}

Test(through, write_during_writer_deletes_instead_of_storing) {
    wb_source_t *src = source(5000);
    intrude_t in = {0};
    src->hook = intrude_hook;
    src->hook_arg = &in;
    tc_config_t cfg;
    config(&cfg, src);
    tc_cache_t *c = tc_test_open(&cfg);
    in.c = c;
    tc_test_peer_t *peer = tc_test_peer_start(tc_test_redis_url(redis), PREFIX, CHANNEL, NULL);
    for (int del = 0; del < 2; del++) {
        const char *key = del ? "acct:del" : "acct:set";
        in = (intrude_t){.c = c, .del = del};
        prime_old(c, src, peer, key);
        cr_assert_eq(tc_set_through(c, key, strlen(key), S("new"), NULL), 0);
        cr_assert(in.done && in.rc == 0, "the intruding %s did not run (%s)",
                  del ? "tc_del" : "tc_set", tc_err_name(in.rc));
        char buf[64];
        cr_assert(src_value(src, key, buf, sizeof buf) && strcmp(buf, "new") == 0);
        cr_assert_not(redis_value(key, buf, sizeof buf),
                      "%s during the writer: Redis holds '%s', not nothing",
                      del ? "tc_del" : "tc_set", buf);
        int rc, ok; /* this process at once: through.own_reads_see_the_delete_at_once */
        WAIT_UNTIL(ok, (rc = cache_value(c, key, buf, sizeof buf)) == TC_ENOTFOUND, WAIT_MS);
        cr_assert(ok, "this process reads '%s' (%s)", buf, tc_err_name(rc));
        cr_assert(peer_wait(peer, key, NULL, WAIT_MS), "the peer still reads a value");
    }
    tc_test_peer_stop(peer);
    tc_close(c);
    wb_source_close(src);
}

/* This process's own reads see a write-through's delete as soon as the call returns, as
 * after tc_del ("writer({DEL key}), then tc_del"), not one message later. The cache's pub/sub
 * link is silenced by a proxy (cut without a trace, the watchdog far off), so only the call
 * itself can have dropped the old copy from this process's L1. */
Test(through, own_reads_see_the_delete_at_once) {
    tc_test_redis_opts_t ro = {.tcp = 1};
    tc_test_redis_t *tcp = tc_test_redis_start(&ro);
    tc_test_proxy_t *px = tc_test_proxy_start(tc_test_redis_port(tcp));
    cr_assert_not_null(px);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", tc_test_proxy_port(px));
    wb_source_t *src = source(5000);
    intrude_t in = {.done = 1}; /* idle until armed */
    src->hook = intrude_hook;
    src->hook_arg = &in;
    tc_config_t cfg;
    config(&cfg, src);
    cfg.redis_url = url;
    cfg.listener_ping_ms = 5000;
    tc_cache_t *c = tc_test_open(&cfg);
    char buf[64];
    const char *keys[] = {"own:del", "own:set"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(tc_set(c, keys[i], strlen(keys[i]), S("old"), 0), 0);
        cr_assert(cache_value(c, keys[i], buf, sizeof buf) == 0 && strcmp(buf, "old") == 0);
    }
    cr_assert_geq(tc_test_proxy_cut_subscribers(px), 1, "no pub/sub link to cut");

    cr_assert_eq(tc_del_through(c, S("own:del")), 0);
    int rc = cache_value(c, "own:del", buf, sizeof buf);
    cr_expect_eq(rc, TC_ENOTFOUND, "tc_del_through returned, this process still reads '%s'",
                 buf);
    in = (intrude_t){.c = c};
    cr_assert_eq(tc_set_through(c, S("own:set"), S("new"), NULL), 0);
    cr_assert(in.done && in.rc == 0, "the intruding tc_set did not run");
    rc = cache_value(c, "own:set", buf, sizeof buf);
    cr_expect(rc == TC_ENOTFOUND || (rc == 0 && strcmp(buf, "new") == 0),
              "a tc_set came during the writer, the write-through deleted the key, yet this "
              "process reads '%s'",
              buf);
    tc_close(c);
    tc_test_proxy_stop(px);
    tc_test_redis_stop(tcp);
    wb_source_close(src);
}

/* Redis stops answering between the source write and the cache write: TC_EPARTIAL, the
 * source holds the write, nobody serves the old value once Redis is back: the key is
 * deleted everywhere. */
typedef struct pauser {
    int paused;
    uint64_t at_ms;
} pauser_t;

static void pause_hook(void *arg, const tc_write_t *w, size_t n) {
    pauser_t *p = arg;
    (void)w;
    if (n == 1 && !p->paused) {
        tc_test_redis_pause(redis);
        p->paused = 1;
        p->at_ms = tc_test_now_ms();
    }
}

Test(through, redis_lost_after_the_source_write_is_partial) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.command_timeout_ms = 100;
    cfg.lock_ttl_ms = 200; /* the write's lock is gone when the stalled store finally runs */
    tc_cache_t *c = tc_test_open(&cfg);
    tc_test_peer_t *peer = tc_test_peer_start(tc_test_redis_url(redis), PREFIX, CHANNEL, NULL);
    prime_old(c, src, peer, "acct:4");
    pauser_t p = {0};
    src->hook = pause_hook;
    src->hook_arg = &p;

    int rc = tc_set_through(c, S("acct:4"), S("new"), NULL);
    cr_assert(p.paused);
    if (rc != TC_EPARTIAL)
        tc_test_redis_resume(redis);
    cr_assert_eq(rc, TC_EPARTIAL, "tc_set_through: %s", tc_err_name(rc));
    char buf[64];
    cr_assert(src_value(src, "acct:4", buf, sizeof buf) && strcmp(buf, "new") == 0,
              "TC_EPARTIAL, but the source holds '%s'", buf);
    rc = cache_value(c, "acct:4", buf, sizeof buf);
    cr_assert(!(rc == 0 && strcmp(buf, "old") == 0), "this process still serves the old value");
    tc_stats_t st = stats(c);
    cr_assert_eq(st.writes_partial, 1);
    cr_assert_eq(st.writes_through, 1);

    uint64_t since = tc_test_now_ms() - p.at_ms;
    if (since < 700)
        tc_test_sleep_ms((unsigned)(700 - since));
    tc_test_redis_resume(redis);
    int ok;
    WAIT_UNTIL(ok, !redis_value("acct:4", buf, sizeof buf), 5 * WAIT_MS);
    cr_assert(ok, "Redis still holds '%s' after it came back", buf);
    tc_test_sleep_ms(300); /* anything stalled in Redis's buffers has run by now */
    cr_assert_not(redis_value("acct:4", buf, sizeof buf), "Redis holds '%s' again", buf);
    WAIT_UNTIL(ok, cache_value(c, "acct:4", buf, sizeof buf) == TC_ENOTFOUND, WAIT_MS);
    cr_assert(ok, "this process reads '%s'", buf);
    cr_assert(peer_wait(peer, "acct:4", NULL, WAIT_MS), "the peer still reads a value");
    cr_assert(src_value(src, "acct:4", buf, sizeof buf) && strcmp(buf, "new") == 0);
    tc_test_peer_stop(peer);
    tc_close(c);
    wb_source_close(src);
}

/* "version: it grows with every write of a key", and a version-guarded writer (the header's
 * advice) must therefore apply every write-through, also when the cache has no Redis (L1
 * only) or Redis is down (TC_EPARTIAL says the source was written). */
static void version_hook(void *arg, const tc_write_t *w, size_t n) {
    seen_t *s = arg;
    if (n == 1 && s->n < 8)
        s->version[s->n++] = w->version;
}

Test(through, versions_grow_in_l1_only_mode) {
    wb_source_t *src = source(5000);
    seen_t seen = {0};
    src->hook = version_hook;
    src->hook_arg = &seen;
    tc_config_t cfg;
    config(&cfg, src);
    cfg.redis_url = NULL;
    tc_cache_t *l1 = tc_test_open(&cfg);
    const char *vals[] = {"a", "b", "c"};
    char buf[64];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tc_set_through(l1, S("solo"), vals[i], 1, NULL), 0);
        cr_assert_eq(cache_value(l1, "solo", buf, sizeof buf), 0);
        cr_assert_str_eq(buf, vals[i]);
    }
    tc_close(l1);
    cr_assert_eq(seen.n, 3);
    cr_expect(seen.version[1] > seen.version[0] && seen.version[2] > seen.version[1],
              "L1-only write-through: the writer saw versions %llu, %llu, %llu",
              (unsigned long long)seen.version[0], (unsigned long long)seen.version[1],
              (unsigned long long)seen.version[2]);
    cr_assert(src_value(src, "solo", buf, sizeof buf));
    cr_assert_str_eq(buf, "c",
                     "L1-only write-through: the source holds '%s', the cache 'c' (the writer "
                     "saw a version that did not grow)",
                     buf);
    wb_source_close(src);
}

Test(through, versions_grow_with_redis_down) {
    wb_source_t *src = source(5000);
    seen_t seen = {0};
    src->hook = version_hook;
    src->hook_arg = &seen;
    tc_config_t cfg;
    config(&cfg, src);
    cfg.command_timeout_ms = 100;
    tc_cache_t *c = tc_test_open(&cfg);
    char buf[64];
    cr_assert_eq(tc_set_through(c, S("down"), S("first"), NULL), 0);
    tc_test_redis_kill(redis);
    int rc = tc_set_through(c, S("down"), S("second"), NULL);
    cr_assert_eq(rc, TC_EPARTIAL, "Redis down: %s", tc_err_name(rc));
    cr_assert_eq(seen.n, 2);
    cr_expect(seen.version[1] > seen.version[0],
              "Redis down: the writer saw version %llu after %llu",
              (unsigned long long)seen.version[1], (unsigned long long)seen.version[0]);
    cr_assert(src_value(src, "down", buf, sizeof buf));
    cr_assert_str_eq(buf, "second",
                     "TC_EPARTIAL says the source was written, it holds '%s' (the writer saw "
                     "a version that did not grow)",
                     buf);
    tc_test_redis_restart(redis);
    tc_close(c);
    wb_source_close(src);
}

/* A write-through that gives up waiting for the key's lock (lock_wait_ms) still writes the
 * source, so its version must still be newer than the write it waited for: otherwise the
 * version-guarded writer drops it and the source keeps the older value for good. */
typedef struct slow_first {
    seen_t seen;
    atomic_int inside;
} slow_first_t;

static void slow_first_hook(void *arg, const tc_write_t *w, size_t n) {
    slow_first_t *s = arg;
    version_hook(&s->seen, w, n);
    if (n == 1 && w->vlen == 1 && memcmp(w->value, "A", 1) == 0) {
        atomic_store(&s->inside, 1);
        tc_test_sleep_ms(600); /* holds the key's write lock meanwhile */
    }
}

typedef struct through_call {
    tc_cache_t *c;
    const char *val;
    int rc;
} through_call_t;

static void *through_thread(void *arg) {
    through_call_t *t = arg;
    t->rc = tc_set_through(t->c, S("contended"), t->val, strlen(t->val), NULL);
    return NULL;
}

Test(through, lock_wait_exceeded_still_reaches_the_source) {
    wb_source_t *src = source(5000);
    slow_first_t sf = {0};
    src->hook = slow_first_hook;
    src->hook_arg = &sf;
    tc_config_t cfg;
    config(&cfg, src);
    cfg.lock_wait_ms = 100;
    tc_cache_t *c = tc_test_open(&cfg);
    through_call_t a = {.c = c, .val = "A"};
    pthread_t tid;
    cr_assert_eq(pthread_create(&tid, NULL, through_thread, &a), 0);
    int ok;
    WAIT_UNTIL(ok, atomic_load(&sf.inside), WAIT_MS);
    cr_assert(ok, "the first write-through never reached its writer");
    int rc = tc_set_through(c, S("contended"), S("B"), NULL);
    pthread_join(tid, NULL);
    cr_assert_eq(a.rc, 0, "A: %s", tc_err_name(a.rc));
    cr_assert_eq(rc, 0, "B: %s", tc_err_name(rc));
    cr_assert_eq(sf.seen.n, 2);
    cr_expect(sf.seen.version[1] > sf.seen.version[0],
              "B, written after A, reached the writer with version %llu after A's %llu",
              (unsigned long long)sf.seen.version[1], (unsigned long long)sf.seen.version[0]);
    char buf[64];
    cr_assert(src_value(src, "contended", buf, sizeof buf));
    cr_assert_str_eq(buf, "B", "both calls returned 0, B last, yet the source holds '%s'", buf);
    rc = cache_value(c, "contended", buf, sizeof buf);
    cr_assert(rc == TC_ENOTFOUND || (rc == 0 && strcmp(buf, "B") == 0),
              "the cache holds '%s' (%s)", buf, tc_err_name(rc));
    tc_close(c);
    wb_source_close(src);
}

/* ========================= write-behind ========================= */

/* Both tiers, and another process, have the write at once; the source only when the flusher
 * gets to it; tc_flush waits for that. */
Test(behind, cache_at_once_source_later) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    tc_cache_t *c = tc_test_open(&cfg);
    tc_test_peer_t *peer = tc_test_peer_start(tc_test_redis_url(redis), PREFIX, CHANNEL, NULL);
    prime_old(c, src, peer, "item:1");
    prime_old(c, src, peer, "item:2");
    wb_source_gate(src, 1);

    cr_assert_eq(tc_set_behind(c, S("item:1"), S("new"), NULL), 0);
    cr_assert_eq(tc_del_behind(c, S("item:2")), 0);
    char buf[64];
    cr_assert(redis_value("item:1", buf, sizeof buf) && strcmp(buf, "new") == 0);
    cr_assert_not(redis_value("item:2", buf, sizeof buf));
    cr_assert_eq(cache_value(c, "item:1", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "new");
    cr_assert_eq(cache_value(c, "item:2", buf, sizeof buf), TC_ENOTFOUND);
    cr_assert(peer_wait(peer, "item:1", "new", WAIT_MS));
    cr_assert(peer_wait(peer, "item:2", NULL, WAIT_MS));
    int ok;
    WAIT_UNTIL(ok, atomic_load(&src->at_gate) > 0, WAIT_MS);
    cr_assert(ok, "the flusher never called the writer");
    cr_assert(src_value(src, "item:1", buf, sizeof buf) && strcmp(buf, "old") == 0,
              "the source was written before the writer ran");
    cr_assert(src_value(src, "item:2", buf, sizeof buf));
    cr_assert_eq(queued(), 2);
    cr_assert_eq(tc_flush(c, 50), TC_ETIMEDOUT, "tc_flush with the writer stuck");

    wb_source_gate(src, 0);
    cr_assert_eq(tc_flush(c, WAIT_MS), 0);
    cr_assert_eq(queued(), 0);
    cr_assert(src_value(src, "item:1", buf, sizeof buf) && strcmp(buf, "new") == 0);
    cr_assert_not(src_value(src, "item:2", buf, sizeof buf), "the delete did not reach it");
    tc_stats_t st;
    WAIT_STATS(c, st, st.wb_written == 2);
    cr_assert_eq(st.wb_queued, 2);
    cr_assert_eq(st.wb_flusher, 1);
    expect_history_ok(src);
    tc_test_peer_stop(peer);
    tc_close(c);
    wb_source_close(src);
}

/* Writes and deletes from four threads over 64 keys, plus a binary key: once flushed, the
 * source holds exactly each key's last write. */
Test(behind, flush_leaves_the_newest_write_of_every_key) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_batch = 50;
    tc_cache_t *c = tc_test_open(&cfg);
    static oracle_t o;
    run_workload(c, &o, "f:", 4, 64, 2000, 15);
    static const char bkey[] = {'b', 0, '\r', '\n', 'k'};
    static const char bval[] = {0, 1, '\r', '\n', 0, (char)0xff};
    cr_assert_eq(tc_set_behind(c, bkey, sizeof bkey, bval, sizeof bval, NULL), 0);
    cr_assert_eq(tc_set_behind(c, S("empty"), NULL, 0, NULL), 0);

    cr_assert_eq(tc_flush(c, 10 * WAIT_MS), 0);
    cr_assert_eq(queued(), 0);
    char got[64];
    size_t len = 0;
    cr_assert_eq(wb_source_get(src, bkey, sizeof bkey, got, sizeof got, &len, NULL), 1);
    cr_assert(len == sizeof bval && memcmp(got, bval, len) == 0, "binary value mangled");
    cr_assert_eq(wb_source_get(src, S("empty"), got, sizeof got, &len, NULL), 1);
    cr_assert_eq(len, 0);
    expect_source_is(src, &o, "f:", 64, 2);
    tc_stats_t st;
    WAIT_STATS(c, st, st.wb_written + st.wb_coalesced == st.wb_queued);
    cr_assert_eq(st.wb_queued, 2002);
    cr_assert_eq(st.wb_dead + st.wb_rejected + st.wb_retries, 0);
    expect_history_ok(src);
    tc_close(c);
    wb_source_close(src);
}

/* 1000 writes over 10 keys within one flush delay: the writer sees a handful, each key's
 * newest. */
Test(behind, coalesces_writes_of_a_key) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_delay_ms = 500 * TC_TEST_SLOW;
    tc_cache_t *c = tc_test_open(&cfg);
    static oracle_t o;
    run_workload(c, &o, "co:", 1, 10, 1000, 0);
    int ok; /* let the flusher drain at its own pace: tc_flush would hurry it */
    WAIT_UNTIL(ok, queued() == 0, 10 * WAIT_MS);
    cr_assert(ok, "the queue did not drain");
    cr_assert_eq(tc_flush(c, 10 * WAIT_MS), 0);
    expect_source_is(src, &o, "co:", 10, 0);
    tc_stats_t st;
    WAIT_STATS(c, st, st.wb_written + st.wb_coalesced == 1000);
    unsigned long entries = atomic_load(&src->entries);
    cr_log_info("coalescing: 1000 writes over 10 keys reached the writer as %lu", entries);
    cr_assert_leq(entries, 50, "1000 writes over 10 keys reached the writer as %lu", entries);
    cr_assert_gt(st.wb_coalesced, 0);
    cr_assert_eq(st.wb_written, entries);
    expect_history_ok(src);
    tc_close(c);
    wb_source_close(src);
}

/* Redis stops answering (SIGSTOP) while write-behinds are called. A call refused with
 * TC_EUNAVAILABLE (breaker open: nothing was sent) changes nothing anywhere. A call that
 * timed out has an unknown outcome, as any Redis command's: Redis may run it once it
 * resumes. Either way the cache and the queue move together (one script): once Redis is
 * back and the queue drained, the source, Redis and this process's reads agree on every
 * key, and this process never served the value while its outcome was unknown. */
Test(behind, redis_failure_keeps_cache_and_queue_together) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.command_timeout_ms = 100;
    cfg.breaker_threshold = 3;
    cfg.breaker_cooldown_ms = 60000; /* stays open until this test is done with it */
    cfg.write_behind_flusher = 0;    /* the queue keeps what reaches it */
    tc_cache_t *c = tc_test_open(&cfg);
    enum { CALLS = 6 };
    char key[16], buf[64], rbuf[64];
    for (int i = 0; i < CALLS; i++) { /* every key "ok" in the source and the cache */
        snprintf(key, sizeof key, "rf:%d", i);
        cr_assert_eq(wb_source_put(src, key, strlen(key), S("ok"), 1), 0);
        cr_assert_eq(tc_set(c, key, strlen(key), S("ok"), 0), 0);
    }
    long long before = queued();

    tc_test_redis_pause(redis);
    int rcs[CALLS], unavailable = 0;
    for (int i = 0; i < CALLS; i++) { /* even keys: a new value; odd keys: deleted */
        snprintf(key, sizeof key, "rf:%d", i);
        rcs[i] = i % 2 ? tc_del_behind(c, key, strlen(key))
                       : tc_set_behind(c, key, strlen(key), S("stalled"), NULL);
        cr_assert(rcs[i] == TC_ETIMEDOUT || rcs[i] == TC_EUNAVAILABLE, "%s: %s", key,
                  tc_err_name(rcs[i]));
        unavailable += rcs[i] == TC_EUNAVAILABLE;
        int got = cache_value(c, key, buf, sizeof buf);
        cr_expect(got != 0 || strcmp(buf, "ok") != 0,
                  "%s: the call failed (%s) and this process still serves the old value", key,
                  tc_err_name(rcs[i]));
    }
    cr_assert_gt(unavailable, 0, "the breaker never opened: no call was refused unsent");
    tc_test_redis_resume(redis);
    tc_test_sleep_ms(300); /* whatever Redis had buffered has run */
    long long timed_out = CALLS - unavailable;
    cr_expect_leq(queued() - before, timed_out,
                  "%lld writes queued, but only %lld calls reached Redis (the others were "
                  "refused with TC_EUNAVAILABLE)",
                  queued() - before, timed_out);

    cfg.write_behind_flusher = 1;
    cfg.command_timeout_ms = 2000;
    cfg.breaker_cooldown_ms = 1000;
    tc_cache_t *f = tc_test_open(&cfg);
    cr_assert_eq(tc_flush(f, WAIT_MS), 0);
    for (int i = 0; i < CALLS; i++) {
        snprintf(key, sizeof key, "rf:%d", i);
        int in_src = src_value(src, key, buf, sizeof buf);
        int in_redis = redis_value(key, rbuf, sizeof rbuf);
        const char *want_src = in_src ? buf : "(none)",
                   *want_redis = in_redis ? rbuf : "(none)";
        cr_expect(in_src == in_redis && (!in_src || strcmp(buf, rbuf) == 0),
                  "%s (%s): the source holds %s, Redis %s", key, tc_err_name(rcs[i]), want_src,
                  want_redis);
        if (rcs[i] == TC_EUNAVAILABLE)
            cr_expect(in_src && strcmp(buf, "ok") == 0,
                      "%s: refused with TC_EUNAVAILABLE, yet the source holds %s", key,
                      want_src);
        char fresh[64];
        int got = cache_value(f, key, fresh, sizeof fresh);
        cr_expect(got == (in_redis ? 0 : TC_ENOTFOUND) &&
                      (!in_redis || strcmp(fresh, rbuf) == 0),
                  "%s: a fresh cache reads %s (%s), Redis holds %s", key, fresh,
                  tc_err_name(got), want_redis);
    }
    tc_close(f);
    tc_close(c);
    wb_source_close(src);
}

/* write_behind_max_queue writes waiting: the next write-behind is refused with TC_EFULL and
 * leaves no trace (not queued, not cached, the old value still served). */
Test(behind, full_queue_refuses_and_changes_nothing) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_flusher = 0; /* nobody drains: the queue fills */
    cfg.write_behind_max_queue = 5;
    tc_cache_t *c = tc_test_open(&cfg);
    char key[16], val[16], buf[64];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "q%d", i);
        snprintf(val, sizeof val, "v%d", i);
        cr_assert_eq(tc_set_behind(c, key, strlen(key), val, strlen(val), NULL), 0);
    }
    cr_assert_eq(queued(), 5);

    int rc = tc_set_behind(c, S("q5"), S("v5"), NULL);
    cr_assert_eq(rc, TC_EFULL, "a write past the limit: %s", tc_err_name(rc));
    cr_assert_not(redis_value("q5", buf, sizeof buf), "the refused write is in Redis");
    cr_assert_eq(cache_value(c, "q5", buf, sizeof buf), TC_ENOTFOUND);
    rc = tc_set_behind(c, S("q0"), S("changed"), NULL);
    cr_assert_eq(rc, TC_EFULL, "%s", tc_err_name(rc));
    cr_assert(redis_value("q0", buf, sizeof buf) && strcmp(buf, "v0") == 0, "Redis: '%s'", buf);
    cr_assert(cache_value(c, "q0", buf, sizeof buf) == 0 && strcmp(buf, "v0") == 0,
              "this process reads '%s'", buf);
    rc = tc_del_behind(c, S("q1"));
    cr_assert_eq(rc, TC_EFULL, "%s", tc_err_name(rc));
    cr_assert(redis_value("q1", buf, sizeof buf) && strcmp(buf, "v1") == 0, "Redis: '%s'", buf);
    cr_assert(cache_value(c, "q1", buf, sizeof buf) == 0 && strcmp(buf, "v1") == 0);
    cr_assert_eq(queued(), 5, "a refused write was queued");
    tc_stats_t st = stats(c);
    cr_assert_eq(st.wb_queued, 5);
    cr_assert_eq(st.wb_rejected, 3);
    cr_assert_eq(st.wb_flusher, 0);

    uint64_t t0 = tc_test_now_ms();
    cr_assert_eq(tc_flush(c, 200), TC_ETIMEDOUT, "no flusher, yet the queue drained");
    cr_assert_geq(tc_test_now_ms() - t0, 200);
    cr_assert_eq(atomic_load(&src->calls), 0);

    cfg.write_behind_flusher = 1; /* a second cache that flushes: the five, and only them */
    tc_cache_t *f = tc_test_open(&cfg);
    cr_assert_eq(tc_flush(f, WAIT_MS), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "q%d", i);
        snprintf(val, sizeof val, "v%d", i);
        cr_assert(src_value(src, key, buf, sizeof buf) && strcmp(buf, val) == 0,
                  "source %s: '%s'", key, buf);
    }
    cr_assert_eq(wb_source_count(src), 5);
    cr_assert_eq(tc_set_behind(c, S("q5"), S("v5"), NULL), 0, "room again, still refused");
    tc_close(f);
    tc_close(c);
    wb_source_close(src);
}

typedef struct dead {
    int kind;
    char key[32], value[32], error[64];
    size_t vlen;
    int value_null;
    uint64_t version;
    unsigned attempts;
} dead_t;

typedef struct dead_list {
    dead_t d[16];
    unsigned n, stop_after;
} dead_list_t;

static int collect_dead(void *arg, const tc_write_t *w, const char *error, unsigned attempts) {
    dead_list_t *l = arg;
    if (l->n < 16) {
        dead_t *d = &l->d[l->n];
        d->kind = w->kind;
        snprintf(d->key, sizeof d->key, "%.*s", (int)w->klen, (const char *)w->key);
        d->value_null = w->value == NULL;
        d->vlen = w->vlen;
        snprintf(d->value, sizeof d->value, "%.*s", (int)w->vlen,
                 w->value ? (const char *)w->value : "");
        snprintf(d->error, sizeof d->error, "%s", error);
        d->version = w->version;
        d->attempts = attempts;
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

/* After write_behind_attempts failures a write is a dead letter: listed with its error and
 * attempts, oldest first; replayed, it is written and leaves the dead-letter stream. */
Test(behind, dead_letters_listed_then_replayed) {
    wb_source_t *src = source(5000);
    wb_source_fail_keys(src, "bad:", TC_ETIMEDOUT);
    cr_assert_eq(wb_source_put(src, S("bad:2"), S("doomed"), 1), 0);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_attempts = 3;
    cfg.write_behind_retry_ms = 10;
    tc_cache_t *c = tc_test_open(&cfg);
    cr_assert_eq(tc_set_behind(c, S("bad:1"), S("x1"), NULL), 0);
    cr_assert_eq(tc_flush(c, WAIT_MS), 0); /* one at a time: their order is known */
    cr_assert_eq(tc_del_behind(c, S("bad:2")), 0);
    cr_assert_eq(tc_set_behind(c, S("ok:1"), S("y"), NULL), 0);
    cr_assert_eq(tc_flush(c, WAIT_MS), 0, "dead-lettered writes still count as waiting");
    char buf[64];
    cr_assert(src_value(src, "ok:1", buf, sizeof buf) && strcmp(buf, "y") == 0);
    cr_assert_not(src_value(src, "bad:1", buf, sizeof buf));
    cr_assert(src_value(src, "bad:2", buf, sizeof buf));
    cr_assert_eq(redis_int("XLEN", "wb:dead"), 2);
    tc_stats_t st;
    WAIT_STATS(c, st, st.wb_dead == 2);
    cr_assert_eq(st.wb_retries, 4, "3 attempts each: 2 retries per write, got %llu",
                 (unsigned long long)st.wb_retries);

    dead_list_t l = {0};
    cr_assert_eq(tc_dead_letters(c, 10, collect_dead, &l), 2);
    cr_assert_eq(l.n, 2);
    uint64_t v1 = 0;
    cr_assert(redis_value_v("bad:1", buf, sizeof buf, &v1));
    cr_assert_eq(l.d[0].kind, TC_WRITE_SET);
    cr_assert_str_eq(l.d[0].key, "bad:1");
    cr_assert(!l.d[0].value_null && l.d[0].vlen == 2 && strcmp(l.d[0].value, "x1") == 0);
    cr_assert_eq(l.d[0].version, v1, "the dead letter's version is not the write's");
    cr_assert_str_eq(l.d[0].error, "TC_ETIMEDOUT");
    cr_assert_eq(l.d[0].attempts, 3);
    cr_assert_eq(l.d[1].kind, TC_WRITE_DEL);
    cr_assert_str_eq(l.d[1].key, "bad:2");
    cr_assert(l.d[1].value_null && l.d[1].vlen == 0);
    cr_assert_gt(l.d[1].version, v1);
    cr_assert_str_eq(l.d[1].error, "TC_ETIMEDOUT");
    cr_assert_eq(l.d[1].attempts, 3);
    l = (dead_list_t){0};
    cr_assert_eq(tc_dead_letters(c, 1, collect_dead, &l), 1, "max 1");
    cr_assert_str_eq(l.d[0].key, "bad:1");
    l = (dead_list_t){.stop_after = 1};
    cr_assert_eq(tc_dead_letters(c, 10, collect_dead, &l), 1, "the callback said stop");
    cr_assert_eq(redis_int("XLEN", "wb:dead"), 2, "listing removed dead letters");

    atomic_store(&src->fail_prefix_on, 0); /* the source is fixed */
    cr_assert_eq(tc_dead_letters_replay(c), 2);
    cr_assert_eq(tc_flush(c, WAIT_MS), 0);
    cr_assert(src_value(src, "bad:1", buf, sizeof buf) && strcmp(buf, "x1") == 0);
    cr_assert_not(src_value(src, "bad:2", buf, sizeof buf), "the replayed delete did not run");
    cr_assert_eq(redis_int("XLEN", "wb:dead"), 0);
    l = (dead_list_t){0};
    cr_assert_eq(tc_dead_letters(c, 10, collect_dead, &l), 0);
    cr_assert_eq(tc_dead_letters_replay(c), 0);
    expect_history_ok(src);
    tc_close(c);
    wb_source_close(src);
}

/* A dead letter replayed after a newer write of its key was written is skipped: with a
 * writer that does NOT check versions, only the flusher's record of versions written stands
 * between the old value and the source. */
Test(behind, replayed_dead_letter_never_overwrites_a_newer_write) {
    wb_source_t *src = source(5000);
    atomic_store(&src->unguarded, 1);
    wb_source_fail_keys(src, "k", TC_EUNAVAILABLE);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_attempts = 2;
    cfg.write_behind_retry_ms = 10;
    tc_cache_t *c = tc_test_open(&cfg);
    cr_assert_eq(tc_set_behind(c, S("k"), S("old"), NULL), 0);
    cr_assert_eq(tc_flush(c, WAIT_MS), 0);
    cr_assert_eq(redis_int("XLEN", "wb:dead"), 1);
    atomic_store(&src->fail_prefix_on, 0);
    cr_assert_eq(tc_set_behind(c, S("k"), S("new"), NULL), 0);
    cr_assert_eq(tc_flush(c, WAIT_MS), 0);
    char buf[64];
    cr_assert(src_value(src, "k", buf, sizeof buf) && strcmp(buf, "new") == 0);
    tc_stats_t st;
    WAIT_STATS(c, st, st.wb_written == 1);
    uint64_t coalesced = st.wb_coalesced;

    cr_assert_eq(tc_dead_letters_replay(c), 1);
    cr_assert_eq(tc_flush(c, WAIT_MS), 0);
    cr_assert(src_value(src, "k", buf, sizeof buf) && strcmp(buf, "new") == 0,
              "the replayed older write overwrote the newer one: the source holds '%s'", buf);
    cr_assert_eq(wb_source_history_count(src, 0, 0), 1, "the stale write reached the writer");
    WAIT_STATS(c, st, st.wb_coalesced == coalesced + 1);
    cr_assert_eq(redis_int("XLEN", "wb:dead"), 0);
    expect_history_ok(src);
    tc_close(c);
    wb_source_close(src);
}

/* The error a dead letter carries: "a tc_err_name or \"writer returned N\"" (header). */
Test(behind, dead_letter_error_names_the_writers_error) {
    wb_source_t *src = source(5000);
    wb_source_fail_keys(src, "bad:", 0);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_attempts = 1;
    tc_cache_t *c = tc_test_open(&cfg);
    struct {
        const char *key;
        int result, rc;
        const char *want;
    } cases[] = {{"bad:a", TC_ETIMEDOUT, 0, "TC_ETIMEDOUT"},
                 {"bad:b", TC_EUNAVAILABLE, TC_EUNAVAILABLE, "TC_EUNAVAILABLE"},
                 {"bad:c", -1000, 0, "writer returned -1000"},
                 {"bad:d", 0, -1000, "writer returned -1000"},
                 {"bad:e", 0, 5, "writer returned 5"}};
    size_t n = sizeof cases / sizeof *cases;
    for (size_t i = 0; i < n; i++) {
        atomic_store(&src->fail_result, cases[i].result);
        atomic_store(&src->fail_rc, cases[i].rc);
        cr_assert_eq(tc_set_behind(c, cases[i].key, strlen(cases[i].key), S("v"), NULL), 0);
        cr_assert_eq(tc_flush(c, WAIT_MS), 0);
    }
    dead_list_t l = {0};
    cr_assert_eq(tc_dead_letters(c, 16, collect_dead, &l), (long)n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(l.d[i].key, cases[i].key);
        cr_assert_eq(l.d[i].attempts, 1);
        cr_expect(strcmp(l.d[i].error, cases[i].want) == 0,
                  "%s (result %d, writer returned %d): dead letter error '%s', expected '%s'",
                  cases[i].key, cases[i].result, cases[i].rc, l.d[i].error, cases[i].want);
    }
    tc_close(c);
    wb_source_close(src);
}

/* The database is locked by another connection for a while (an exclusive transaction), then
 * a writer fails whole batches for a few calls: retried with back-off, nothing lost. */
Test(behind, writer_failing_for_a_while_loses_nothing) {
    wb_source_t *src = source(20); /* BEGIN gives up after 20 ms of a locked database */
    sqlite3 *blocker = NULL;
    cr_assert_eq(sqlite3_open(dbpath, &blocker), SQLITE_OK);
    sqlite3_busy_timeout(blocker, 5000);
    cr_assert_eq(sqlite3_exec(blocker, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_attempts = 50;
    cfg.write_behind_retry_ms = 20;
    tc_cache_t *c = tc_test_open(&cfg);
    static oracle_t o;
    run_workload(c, &o, "lk:", 2, 20, 200, 20);
    int ok;
    WAIT_UNTIL(ok, stats(c).wb_retries >= 3, WAIT_MS);
    cr_assert(ok, "the writer was not retried while the database was locked");
    cr_assert_eq(wb_source_count(src), 0, "something was written through the lock");
    cr_assert_eq(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    cr_assert_eq(tc_flush(c, 10 * WAIT_MS), 0);
    expect_source_is(src, &o, "lk:", 20, 0);

    uint64_t retries = stats(c).wb_retries;
    atomic_store(&src->fail_rc, TC_EUNAVAILABLE);
    atomic_store(&src->fail_calls, 4);
    run_workload(c, &o, "lk:", 2, 20, 200, 20);
    cr_assert_eq(tc_flush(c, 10 * WAIT_MS), 0);
    cr_assert_eq(atomic_load(&src->fail_calls), 0);
    expect_source_is(src, &o, "lk:", 20, 0);
    tc_stats_t st = stats(c);
    cr_assert_geq(st.wb_retries, retries + 4);
    cr_assert_eq(st.wb_dead, 0);
    cr_assert_eq(redis_int("XLEN", "wb:dead"), 0);
    expect_history_ok(src);
    tc_close(c);
    wb_source_close(src);
}

/* ========================= a flusher that dies ========================= */

/* The flusher's lease in these tests. Under a sanitizer a loaded 2-CPU machine can starve
 * a holder for longer than a third of a second lease, and then the standby takes over
 * before the scenario begins: the lease grows with the slowdown. */
#define LEASE_MS (TC_TEST_SLOW > 1 ? 2500u : 1000u)

static void wait_peer_holds_lease(tc_test_peer_t *peer) {
    int ok;
    WAIT_UNTIL(ok, peer_stat(peer, "wb_flusher") == 1, WAIT_MS);
    cr_assert(ok, "the peer never took the flusher lease");
}

/* ms until c holds the flusher lease, polling every millisecond; -1 after limit_ms. */
static long wait_takeover(tc_cache_t *c, uint64_t since_ms, unsigned limit_ms) {
    for (;;) {
        uint64_t now = tc_test_now_ms();
        if (stats(c).wb_flusher == 1)
            return (long)(now - since_ms);
        if (now - since_ms > limit_ms)
            return -1;
        tc_test_sleep_ms(1);
    }
}

/* A byte in a file under tmpdir that a wb-peer's writer keeps at its state (wb_source.h). */
static unsigned char *state_file(const char *name, char *env, size_t cap) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "%s", path);
    cr_assert_eq(write(fd, "I", 1), 1);
    unsigned char *p = mmap(NULL, 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    cr_assert_neq(p, MAP_FAILED);
    snprintf(env, cap, "WBP_STATE=%s", path);
    return p;
}

static int state_is(const unsigned char *s, unsigned char want) {
    return __atomic_load_n(s, __ATOMIC_ACQUIRE) == want;
}

/* The headline. Ten thousand writes are queued (each key written in a burst, then never
 * again, so a lost write is a key whose source row is wrong). The flusher holding the lease
 * is killed inside its writer's transaction (that batch never reached the database); a
 * second process takes over within the lease and is killed in turn after its commit but
 * before acknowledging (that batch must be written again: at least once); this process
 * takes over last and drains. The source must then hold exactly every key's newest write,
 * no key's history having gone backwards, each process having written part of it. */
Test(crash, flusher_killed_mid_drain_loses_nothing) {
    char lease_env[64], env1[320], env2[320];
    snprintf(lease_env, sizeof lease_env, "WB_PEER_WRITE_BEHIND_LEASE=%u", LEASE_MS);
    unsigned char *s1 = state_file("state1", env1, sizeof env1);
    unsigned char *s2 = state_file("state2", env2, sizeof env2);
    const char *e1[] = {lease_env,
                        "WB_PEER_WRITE_BEHIND_BATCH=20",
                        "WB_PEER_WRITE_BEHIND_DELAY=1000",
                        "WBP_PRECOMMIT_MS=30",
                        env1,
                        NULL};
    const char *e2[] = {lease_env,
                        "WB_PEER_WRITE_BEHIND_BATCH=20",
                        "WB_PEER_WRITE_BEHIND_DELAY=5",
                        "WBP_SLOW_MS=300", /* long enough to be seen in 'A' and killed */
                        env2,
                        NULL};
    tc_test_peer_t *first = wb_peer(e1);
    wait_peer_holds_lease(first);
    tc_test_peer_t *second = wb_peer(e2);
    pid_t pid1 = tc_test_peer_pid(first), pid2 = tc_test_peer_pid(second);

    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_lease_ms = LEASE_MS;
    cfg.write_behind_batch = 200;
    cfg.write_behind_flusher = 0; /* only queue, until both peers are dead */
    tc_cache_t *c = tc_test_open(&cfg);
    cr_assert_eq(peer_stat(second, "wb_flusher"), 0, "two flushers hold the lease");

    static oracle_t o;
    run_workload_ex(c, &o, "c:", 2, 1000, 10000, 10, 1);
    long long waiting = queued();
    cr_assert_geq(waiting, 2000, "only %lld writes were still queued", waiting);

    int ok;
    WAIT_UNTIL(ok, peer_stat(first, "wb_written") > 0, WAIT_MS);
    cr_assert(ok, "the first flusher wrote nothing (first: %s; second: %s)",
              tc_test_peer_cmd(first, "stats"), tc_test_peer_cmd(second, "stats"));
    WAIT_UNTIL(ok, state_is(s1, 'B'), WAIT_MS);
    cr_assert(ok, "the first flusher never was inside its writer again");
    uint64_t t1 = tc_test_now_ms();
    tc_test_peer_kill(first);
    WAIT_UNTIL(ok, peer_stat(second, "wb_flusher") == 1, 5 * LEASE_MS * TC_TEST_SLOW);
    cr_assert(ok, "the second process never took over");
    long took1 = (long)(tc_test_now_ms() - t1);
    long long pending_at_takeover = pending();

    WAIT_UNTIL(ok, state_is(s2, 'A'), WAIT_MS);
    cr_assert(ok,
              "the second flusher never committed a batch (%lld entries pending in the group: "
              "%lld at the takeover; its writer: '%c'; %s)",
              pending(), pending_at_takeover, *s2, tc_test_peer_cmd(second, "stats"));
    uint64_t t2 = tc_test_now_ms();
    tc_test_peer_kill(second);
    long long left = queued();
    cr_assert_gt(left, 0, "nothing left for the last flusher");
    cfg.write_behind_flusher = 1;
    tc_cache_t *f = tc_test_open(&cfg);
    long took2 = wait_takeover(f, t2, 5 * LEASE_MS * TC_TEST_SLOW);
    cr_assert_geq(took2, 0, "this process never took over");
    cr_log_info("crash: %lld queued, first killed in its transaction, second took over after "
                "%ld ms and was killed after a commit with %lld queued; taken over after %ld "
                "ms (lease %u ms)",
                waiting, took1, left, took2, LEASE_MS);
    cr_assert_eq(tc_flush(f, 20 * WAIT_MS), 0);
    cr_assert_eq(queued(), 0);
    cr_assert_eq(redis_int("XLEN", "wb:dead"), 0);
    expect_source_is(src, &o, "c:", 1000, 0);
    expect_history_ok(src);
    cr_assert_gt(wb_source_history_count(src, pid1, 1), 0, "the first flusher wrote nothing");
    cr_assert_gt(wb_source_history_count(src, pid2, 1), 0, "the second flusher wrote nothing");
    cr_assert_gt(wb_source_history_count(src, getpid(), 1), 0, "this process wrote nothing");
    cr_assert_gt(wb_source_redelivered(src, pid2, getpid()), 0,
                 "the batch the second flusher wrote but never acknowledged was not replayed");
    tc_test_peer_stop(first);
    tc_test_peer_stop(second);
    tc_close(f);
    tc_close(c);
    wb_source_close(src);
}

/* Calls of SET so far (INFO commandstats): in this test only a standby flusher's attempt to
 * take the lease (SET NX PX) sends one. -1 when the line is missing. */
static long long set_calls(redisContext *rc) {
    redisReply *r = redisCommand(rc, "INFO commandstats");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    const char *p = strstr(r->str, "cmdstat_set:calls=");
    long long n = p ? atoll(p + strlen("cmdstat_set:calls=")) : -1;
    freeReplyObject(r);
    return n;
}

static long long lease_pttl(redisContext *rc) {
    redisReply *r = redisCommand(rc, "PTTL " PREFIX "wb:lease");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* "another takes over within write_behind_lease_ms of its death" (header), measured at the
 * worst moment: the holder is killed right after it renewed its lease, shortly after the
 * standby last tried to take it (so the standby's next try is as late as it can be). */
Test(crash, takeover_within_lease_ms_of_death) {
    const unsigned lease = 2000;
    char lease_env[64];
    snprintf(lease_env, sizeof lease_env, "WB_PEER_WRITE_BEHIND_LEASE=%u", lease);
    const char *env[] = {lease_env, "WB_PEER_WRITE_BEHIND_DELAY=5", NULL};
    tc_test_peer_t *peer = wb_peer(env);
    wait_peer_holds_lease(peer);
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_lease_ms = lease;
    tc_cache_t *c = tc_test_open(&cfg);

    /* Watch the lease's TTL (a jump up: the holder renewed) and the standby's attempts; kill
     * at a renewal that came shortly after an attempt, or at any renewal after a while. */
    redisContext *rc = rconn();
    uint64_t start = tc_test_now_ms(), tried_at = 0, now = 0;
    long long sets = set_calls(rc), pttl = lease_pttl(rc), last_pttl = pttl;
    int renewed = 0;
    while ((now = tc_test_now_ms()) < start + 6 * lease) {
        long long s = sets >= 0 ? set_calls(rc) : -1;
        if (s > sets)
            tried_at = now; /* the standby just tried */
        sets = s;
        pttl = lease_pttl(rc);
        renewed = last_pttl > 0 && pttl > last_pttl + 5;
        last_pttl = pttl;
        if (renewed &&
            (sets < 0 || now - start > 3 * lease || (tried_at && now - tried_at < lease / 12)))
            break;
    }
    cr_assert(renewed, "the holder never renewed its lease");
    uint64_t t_kill = tc_test_now_ms();
    tc_test_peer_kill(peer);
    redisFree(rc);
    long took = wait_takeover(c, t_kill, 3 * lease);
    cr_assert_geq(took, 0, "nobody took over");
    cr_log_info("takeover %ld ms after the holder died with %lld ms left on a %u ms lease "
                "(standby tried %llu ms before)",
                took, pttl, lease, (unsigned long long)(tried_at ? t_kill - tried_at : 0));
    cr_assert_leq(took, (long)lease + 50 * TC_TEST_SLOW,
                  "the lease was taken over %ld ms after the holder died (lease %u ms)", took,
                  lease);
    tc_test_peer_stop(peer);
    tc_close(c);
    wb_source_close(src);
}

/* A holder that closes drains what is queued (several batches, its writer slow) and gives
 * the lease up: another process takes over without waiting for it to expire. */
Test(crash, close_drains_and_hands_the_lease_over) {
    const unsigned lease = 2000;
    char lease_env[64];
    snprintf(lease_env, sizeof lease_env, "WB_PEER_WRITE_BEHIND_LEASE=%u", lease);
    const char *env[] = {lease_env, "WB_PEER_WRITE_BEHIND_BATCH=10", "WBP_PRECOMMIT_MS=100",
                         NULL};
    tc_test_peer_t *peer = wb_peer(env);
    wait_peer_holds_lease(peer);
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_lease_ms = lease;
    tc_cache_t *c = tc_test_open(&cfg);
    char key[16], val[16];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "h%d", i);
        snprintf(val, sizeof val, "v%d", i);
        peer_ok(peer, "sb", key, val);
    }
    long long waiting = queued();
    cr_assert_geq(waiting, 20, "only %lld writes queued: nothing much to drain", waiting);
    pid_t pid = tc_test_peer_pid(peer);

    tc_test_peer_stop(peer); /* quit: tc_close */
    uint64_t t_exit = tc_test_now_ms();
    redisContext *rc = rconn();
    redisReply *r = redisCommand(rc, "GET " PREFIX "wb:lease");
    cr_assert_not_null(r);
    int left = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    redisFree(rc);
    cr_assert(!left || stats(c).wb_flusher == 1, "the closed process left its lease behind");
    long took = wait_takeover(c, t_exit, 3 * lease);
    cr_assert_geq(took, 0, "nobody took over");
    cr_assert_lt(took, (long)lease / 2, "took over after %ld ms: the lease was not given up",
                 took);
    cr_assert_eq(queued(), 0, "the closing holder did not drain");
    cr_assert_eq(wb_source_count(src), 50);
    cr_assert_eq(wb_source_history_count(src, pid, 1), 50,
                 "the closing holder left part of the queue to another process");
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "h%d", i);
        snprintf(val, sizeof val, "v%d", i);
        char buf[32];
        cr_assert(src_value(src, key, buf, sizeof buf) && strcmp(buf, val) == 0);
    }
    tc_close(c);
    wb_source_close(src);
}

/* A holder whose write_behind_delay_ms is longer than its lease still renews the lease in
 * time (it wakes for the renewal, not only for the batch): the lease never changes hands
 * while the holder lives, and the batch is written once the delay has passed. */
Test(crash, long_delay_keeps_the_lease) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_lease_ms = LEASE_MS; /* scaled: a starved holder is not a dead one */
    cfg.write_behind_delay_ms = 3 * LEASE_MS;
    tc_cache_t *a = tc_test_open(&cfg);
    int ok;
    WAIT_UNTIL(ok, stats(a).wb_flusher == 1, WAIT_MS);
    cr_assert(ok, "the first cache never held the lease");
    tc_cache_t *b = tc_test_open(&cfg);
    cr_assert_eq(tc_set_behind(a, S("ld:1"), S("v"), NULL), 0);
    uint64_t until = tc_test_now_ms() + 2 * LEASE_MS; /* two leases, before the delay ends */
    while (tc_test_now_ms() < until) {
        tc_stats_t sa = stats(a), sb = stats(b);
        cr_assert(sa.wb_flusher == 1 && sb.wb_flusher == 0,
                  "the lease changed hands while its holder lived (holder %llu, standby %llu)",
                  (unsigned long long)sa.wb_flusher, (unsigned long long)sb.wb_flusher);
        tc_test_sleep_ms(50);
    }
    /* wb_written moves after the writer returned and the batch was acknowledged */
    WAIT_UNTIL(ok, stats(a).wb_written == 1, 4000u * TC_TEST_SLOW);
    cr_assert(ok, "the holder never wrote the queued write (wb_written %llu)",
              (unsigned long long)stats(a).wb_written);
    char buf[16];
    cr_assert(src_value(src, "ld:1", buf, sizeof buf) && strcmp(buf, "v") == 0,
              "the source does not hold the queued write");
    cr_assert_eq(stats(b).wb_written, 0, "the standby wrote too");
    tc_close(b);
    tc_close(a);
    wb_source_close(src);
}

/* Entries read into the group by a reader that never acknowledged them, after the holder's
 * takeover walk had passed (a holder deposed between its lease check and its read, or a
 * read whose reply was lost on a dead link): the holder's periodic sweep claims what has
 * been idle for a lease and writes it. Without the sweep they stay pending forever and
 * tc_flush never returns 0. */
Test(crash, entries_stranded_after_the_walk_are_written) {
    tc_test_redis_opts_t ro = {.tcp = 1};
    tc_test_redis_t *tcp = tc_test_redis_start(&ro);
    tc_test_proxy_t *px = tc_test_proxy_start(tc_test_redis_port(tcp));
    cr_assert_not_null(px);
    char direct[64], proxied[64];
    snprintf(direct, sizeof direct, "redis://127.0.0.1:%d", tc_test_redis_port(tcp));
    snprintf(proxied, sizeof proxied, "redis://127.0.0.1:%d", tc_test_proxy_port(px));
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.redis_url = proxied;
    cfg.write_behind_lease_ms = 2000;
    tc_cache_t *f = tc_test_open(&cfg); /* the holder, behind the proxy */
    cfg.redis_url = direct;
    cfg.write_behind_flusher = 0;
    tc_cache_t *q = tc_test_open(&cfg); /* only queues */
    int ok;
    WAIT_UNTIL(ok, stats(f).wb_flusher == 1, WAIT_MS);
    cr_assert(ok, "the holder never took the lease");
    cr_assert_eq(tc_set_behind(q, S("st:0"), S("first"), NULL), 0);
    cr_assert_eq(tc_flush(f, WAIT_MS), 0, "the holder's walk and first write did not end");

    tc_test_proxy_cut_all(px); /* the holder hears nothing while another reader takes all */
    char key[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(key, sizeof key, "st:%d", i);
        cr_assert_eq(tc_set_behind(q, key, strlen(key), S("stranded"), NULL), 0);
    }
    redisContext *rc = tc_test_redis_connect(tcp);
    cr_assert_not_null(rc);
    redisReply *r =
        redisCommand(rc, "XREADGROUP GROUP tc ghost COUNT 100 STREAMS " PREFIX "wb >");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1, "the ghost read nothing");
    freeReplyObject(r);
    redisFree(rc);
    tc_test_sleep_ms(300);
    tc_test_proxy_heal(px); /* within the holder's lease: it never lost it */

    cr_assert_eq(tc_flush(f, 4 * cfg.write_behind_lease_ms * TC_TEST_SLOW), 0,
                 "entries read by a reader that vanished were never written");
    char buf[32];
    for (int i = 1; i <= 5; i++) {
        snprintf(key, sizeof key, "st:%d", i);
        cr_expect(src_value(src, key, buf, sizeof buf) && strcmp(buf, "stranded") == 0,
                  "%s never reached the source", key);
    }
    tc_close(q);
    tc_close(f);
    tc_test_proxy_stop(px);
    tc_test_redis_stop(tcp);
    wb_source_close(src);
}

/* ========================= lifecycle and bad input ========================= */

/* tc_close of a cache with writes queued (more than one batch, the writer held back until
 * the close begins): the source is complete when tc_close returns. */
Test(lifecycle, close_drains_the_queue) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, src);
    cfg.write_behind_batch = 50;
    tc_cache_t *c = tc_test_open(&cfg);
    wb_source_gate(src, 1);
    static oracle_t o;
    run_workload(c, &o, "cl:", 2, 200, 2000, 10);
    int ok;
    WAIT_UNTIL(ok, atomic_load(&src->at_gate) > 0, WAIT_MS);
    cr_assert(ok, "the flusher never called the writer");
    cr_assert_eq(wb_source_count(src), 0);
    long long waiting = queued();
    cr_assert_gt(waiting, 150, "only %lld writes queued: nothing much to drain", waiting);
    wb_source_gate(src, 0);
    tc_close(c);
    cr_assert_eq(queued(), 0, "tc_close returned with writes still queued");
    expect_source_is(src, &o, "cl:", 200, 0);
    expect_history_ok(src);
    wb_source_close(src);
}

static void expect_all_refused(tc_cache_t *c, const void *key, size_t klen, const void *val,
                               size_t vlen, const tc_opts_t *opts, int want, const char *what) {
    int rc;
    if (!opts) {
        rc = tc_del_through(c, key, klen);
        cr_assert_eq(rc, want, "%s: tc_del_through gave %s", what, tc_err_name(rc));
        rc = tc_del_behind(c, key, klen);
        cr_assert_eq(rc, want, "%s: tc_del_behind gave %s", what, tc_err_name(rc));
    }
    rc = tc_set_through(c, key, klen, val, vlen, opts);
    cr_assert_eq(rc, want, "%s: tc_set_through gave %s", what, tc_err_name(rc));
    rc = tc_set_behind(c, key, klen, val, vlen, opts);
    cr_assert_eq(rc, want, "%s: tc_set_behind gave %s", what, tc_err_name(rc));
}

Test(lifecycle, bad_input_is_refused_and_writes_nothing) {
    wb_source_t *src = source(5000);
    tc_config_t cfg;
    config(&cfg, NULL);
    tc_cache_t *none = tc_test_open(&cfg);
    expect_all_refused(none, S("k"), S("v"), NULL, TC_EINVAL, "no writer");
    tc_close(none);

    config(&cfg, src);
    cfg.redis_url = NULL;
    tc_cache_t *l1 = tc_test_open(&cfg);
    cr_assert_eq(tc_set_behind(l1, S("k"), S("v"), NULL), TC_EINVAL, "L1-only write-behind");
    cr_assert_eq(tc_del_behind(l1, S("k")), TC_EINVAL, "L1-only write-behind");
    char buf[64];
    cr_assert_eq(cache_value(l1, "k", buf, sizeof buf), TC_ENOTFOUND);
    tc_close(l1);

    config(&cfg, src);
    cfg.max_value_bytes = 1024;
    tc_cache_t *c = tc_test_open(&cfg);
    expect_all_refused(NULL, S("k"), S("v"), NULL, TC_EINVAL, "NULL cache");
    expect_all_refused(c, NULL, 1, S("v"), NULL, TC_EINVAL, "NULL key");
    expect_all_refused(c, "k", 0, S("v"), NULL, TC_EKEYLEN, "empty key");
    static char huge[TC_MAX_KEY_LEN + 1];
    memset(huge, 'k', sizeof huge);
    expect_all_refused(c, huge, sizeof huge, S("v"), NULL, TC_EKEYLEN, "key too long");
    tc_opts_t o = TC_OPTS_INIT;
    expect_all_refused(c, S("k"), NULL, 3, &o, TC_EINVAL, "NULL value of 3 bytes");
    static char big[2048];
    expect_all_refused(c, S("k"), big, sizeof big, &o, TC_ETOOBIG, "value over max");
    o.size = 0;
    expect_all_refused(c, S("k"), S("v"), &o, TC_EINVAL, "opts.size 0");
    o = (tc_opts_t)TC_OPTS_INIT;
    o.flags = 0x80;
    expect_all_refused(c, S("k"), S("v"), &o, TC_EINVAL, "unknown opts flag");
    cr_assert_eq(tc_flush(NULL, 10), TC_EINVAL);
    dead_list_t l = {0};
    cr_assert_eq(tc_dead_letters(NULL, 10, collect_dead, &l), TC_EINVAL);
    cr_assert_eq(tc_dead_letters(c, 10, NULL, NULL), TC_EINVAL);
    cr_assert_eq(tc_dead_letters_replay(NULL), TC_EINVAL);
    cr_assert_eq(atomic_load(&src->calls), 0, "a refused call reached the writer");
    cr_assert_eq(queued(), 0, "a refused call was queued");
    cr_assert_not(redis_value("k", buf, sizeof buf), "a refused call was cached");
    cr_assert_eq(wb_source_count(src), 0);
    tc_stats_t st = stats(c);
    cr_assert_eq(st.wb_queued + st.wb_rejected + st.writes_through, 0);
    tc_close(c);

    tc_cache_t *x = NULL;
    for (int i = 0; i < 5; i++) {
        config(&cfg, src);
        const char *what = "";
        switch (i) {
        case 0:
            cfg.write_behind_batch = 0, what = "write_behind_batch 0";
            break;
        case 1:
            cfg.write_behind_lease_ms = 50, what = "write_behind_lease_ms 50";
            break;
        case 2:
            cfg.write_behind_attempts = 0, what = "write_behind_attempts 0";
            break;
        case 3:
            cfg.write_behind_max_queue = 0, what = "write_behind_max_queue 0";
            break;
        default:
            cfg.write_behind_delay_ms = 0, what = "write_behind_delay_ms 0";
            break;
        }
        tc_error_t err = {0};
        int rc = tc_open(&cfg, &x, &err);
        cr_assert_eq(rc, TC_ECONFIG, "%s: tc_open gave %s", what, tc_err_name(rc));
        cr_assert_null(x);
    }
    wb_source_close(src);
}

#endif
