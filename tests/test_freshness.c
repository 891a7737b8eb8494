/*
 * test_freshness.c - the freshness options of tiercache.h, each against its promise:
 * stale-while-revalidate, fail-safe with back-off, XFetch early refresh, negative caching,
 * soft and hard load timeouts, per-prefix TTL rules and sliding expiration.
 *
 * One loader drives them all: every call yields a new generation ("gen-1", "gen-2"...),
 * so a test sees which load produced what it was served, and it counts its calls and
 * notes whether it ran on the test's own thread (a caller that waited on a load) or on a
 * background thread (a refresh). Loads are counted by the loader itself, never trusted
 * from the library's stats alone.
 *
 * Timing: jitter is 0, TTLs are a few hundred ms and every duration scales with
 * TC_TEST_SLOW. Expiry checks sleep past the deadline plus a margin and read once; where
 * a bound is asserted (a stale answer "at once", a timeout "within its bound") the margin
 * is a few hundred ms against a loader that sleeps far longer, so only a call that really
 * waited on the load can fail it. Sliding expiration is never polled with tc_get, since
 * every hit would extend the life being measured.
 */
/* tc-test-labels: integration concurrency */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define MS(x)     ((uint64_t)(x)*TC_TEST_SLOW)
#define MARGIN_MS MS(300)

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

TestSuite(freshness, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the source of truth behind every cache in this file ---- */

typedef struct src {
    atomic_int calls;     /* loader calls */
    atomic_int done;      /* loader calls that have returned */
    atomic_int on_caller; /* calls that ran on `caller`, the test's own thread */
    atomic_uint sleep_ms; /* how long a load takes */
    atomic_int ret;       /* 0: produce "gen-<call number>"; otherwise return this */
    pthread_t caller;     /* set before the first fetch, read-only afterwards */
} src_t;

static void src_init(src_t *s) {
    memset(s, 0, sizeof *s);
    s->caller = pthread_self();
}

static int src_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    src_t *s = arg;
    (void)key;
    (void)klen;
    int n = atomic_fetch_add(&s->calls, 1) + 1;
    if (pthread_equal(pthread_self(), s->caller))
        atomic_fetch_add(&s->on_caller, 1);
    unsigned ms = atomic_load(&s->sleep_ms);
    if (ms)
        tc_test_sleep_ms(ms);
    int ret = atomic_load(&s->ret);
    if (ret == 0) {
        char v[32];
        int vlen = snprintf(v, sizeof v, "gen-%d", n);
        ret = tc_load_set_value(load, v, (size_t)vlen);
    }
    atomic_fetch_add(&s->done, 1);
    return ret;
}

/* Wait until every load started has returned (it may still run in the background after a
 * timeout; the loader's arg must outlive it). */
static void src_quiesce(src_t *s) {
    uint64_t deadline = tc_test_now_ms() + MS(10000);
    while (atomic_load(&s->done) < atomic_load(&s->calls)) {
        cr_assert_lt(tc_test_now_ms(), deadline, "a load never finished");
        tc_test_sleep_ms(5);
    }
    tc_test_sleep_ms(20); /* let the library store what it returned */
}

/* ---- reading ---- */

typedef struct got {
    int rc;
    int stale;
    char val[64];
    uint64_t ms; /* how long the call took */
} got_t;

static got_t take(int rc, tc_ref_t *ref, uint64_t t0) {
    got_t g = {.rc = rc, .ms = tc_test_now_ms() - t0};
    if (rc == 0) {
        size_t n = tc_ref_size(ref) < sizeof g.val - 1 ? tc_ref_size(ref) : sizeof g.val - 1;
        memcpy(g.val, tc_ref_data(ref), n);
        g.stale = tc_ref_stale(ref);
    } else {
        cr_assert_null(ref, "*ref must be NULL when the call returns %s", tc_err_name(rc));
    }
    tc_ref_release(ref);
    return g;
}

static got_t fetch(tc_cache_t *c, const char *key, src_t *s) {
    tc_ref_t *ref = NULL;
    uint64_t t0 = tc_test_now_ms();
    int rc = tc_fetch(c, key, strlen(key), src_loader, s, &ref);
    return take(rc, ref, t0);
}

static got_t get(tc_cache_t *c, const char *key) {
    tc_ref_t *ref = NULL;
    uint64_t t0 = tc_test_now_ms();
    int rc = tc_get(c, key, strlen(key), &ref);
    return take(rc, ref, t0);
}

#define expect_val(g, want, want_stale)                                                        \
    do {                                                                                       \
        got_t g_ = (g);                                                                        \
        cr_assert_eq(g_.rc, 0, "expected '%s', got %s", want, tc_err_name(g_.rc));             \
        cr_assert_str_eq(g_.val, want);                                                        \
        cr_assert_eq(g_.stale, want_stale, "'%s' is %s", want, g_.stale ? "stale" : "fresh");  \
    } while (0)

/* ---- opening ---- */

static void base_config(tc_config_t *cfg, const char *prefix, int with_redis) {
    tc_test_config(cfg, with_redis ? tc_test_redis_url(redis) : NULL, prefix, prefix);
    cfg->ttl_jitter = 0;
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

static void sleep_until(uint64_t t) {
    uint64_t now = tc_test_now_ms();
    if (now < t)
        tc_test_sleep_ms((unsigned)(t - now));
}

/* ---- stale-while-revalidate ---- */

typedef struct reader {
    pthread_t tid;
    tc_cache_t *cache;
    src_t *src;
    int reads, bad;
    uint64_t max_ms;
    got_t last_bad;
} reader_t;

/* Ten stale reads, 10 ms apart, each of which must be "gen-1", stale and quick. */
static void *stale_reader(void *arg) {
    reader_t *r = arg;
    for (int i = 0; i < 10; i++, r->reads++) {
        got_t g = fetch(r->cache, "swr", r->src);
        if (g.ms > r->max_ms)
            r->max_ms = g.ms;
        if (g.rc != 0 || strcmp(g.val, "gen-1") != 0 || !g.stale) {
            r->bad++;
            r->last_bad = g;
        }
        tc_test_sleep_ms(10);
    }
    return NULL;
}

Test(freshness, stale_while_revalidate_answers_at_once_and_refreshes_once) {
    const uint64_t ttl = MS(300), refresh_ms = MS(800);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:swr:", 1);
    cfg.default_ttl_ms = ttl;
    cfg.stale_ttl_ms = MS(5000);
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    expect_val(fetch(c, "swr", &s), "gen-1", 0);
    tc_test_sleep_ms((unsigned)(ttl + MS(50)));

    atomic_store(&s.sleep_ms, (unsigned)refresh_ms);
    got_t g = fetch(c, "swr", &s);
    expect_val(g, "gen-1", 1);
    cr_assert_lt(g.ms, refresh_ms / 2, "the stale read took %llu ms: it waited on the load",
                 (unsigned long long)g.ms);

    reader_t rs[8];
    for (int i = 0; i < 8; i++) {
        rs[i] = (reader_t){.cache = c, .src = &s};
        cr_assert_eq(pthread_create(&rs[i].tid, NULL, stale_reader, &rs[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(rs[i].tid, NULL);
        cr_assert_eq(rs[i].bad, 0, "reader %d: %s '%s' stale=%d while the refresh ran", i,
                     tc_err_name(rs[i].last_bad.rc), rs[i].last_bad.val, rs[i].last_bad.stale);
        cr_assert_lt(rs[i].max_ms, refresh_ms / 2, "reader %d waited %llu ms", i,
                     (unsigned long long)rs[i].max_ms);
    }

    uint64_t deadline = tc_test_now_ms() + refresh_ms + MS(3000);
    while (strcmp((g = fetch(c, "swr", &s)).val, "gen-2") != 0) {
        cr_assert_lt(tc_test_now_ms(), deadline, "the background refresh never landed");
        tc_test_sleep_ms(10);
    }
    expect_val(g, "gen-2", 0);
    cr_assert_eq(atomic_load(&s.calls), 2, "%d loads: the stale window must run exactly one",
                 atomic_load(&s.calls));
    cr_assert_eq(atomic_load(&s.on_caller), 1, "the refresh ran on a caller's thread");
    tc_stats_t st = stats(c);
    cr_assert_eq(st.stale_refreshes, 1);
    cr_assert_geq(st.stale_serves, 81, "%llu stale serves counted for 81 stale answers",
                  (unsigned long long)st.stale_serves);
    src_quiesce(&s);
    tc_close(c);
}

Test(freshness, tc_get_serves_the_stale_window_but_never_refreshes) {
    const uint64_t ttl = MS(200), stale = MS(600);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:get:", 1);
    cfg.default_ttl_ms = ttl;
    cfg.stale_ttl_ms = stale;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    expect_val(fetch(c, "k", &s), "gen-1", 0);
    uint64_t stored = tc_test_now_ms();
    tc_test_sleep_ms((unsigned)(ttl + MS(50)));
    expect_val(get(c, "k"), "gen-1", 1);
    char buf[16];
    size_t len = sizeof buf;
    cr_assert_eq(tc_get_copy(c, "k", 1, buf, &len), 0, "tc_get_copy in the stale window");
    cr_assert_eq(len, 5);
    tc_test_sleep_ms((unsigned)MS(100));
    cr_assert_eq(atomic_load(&s.calls), 1, "tc_get must never start a load");
    cr_assert_eq(stats(c).stale_refreshes, 0);

    sleep_until(stored + ttl + stale + MS(100));
    long took = tc_test_wait_get(c, "k", 1, NULL, 0, (unsigned)MARGIN_MS);
    cr_assert_geq(took, 0, "the value outlived its stale window");
    expect_val(fetch(c, "k", &s), "gen-2", 0);
    cr_assert_eq(atomic_load(&s.on_caller), 2, "past the window the caller loads itself");
    tc_close(c);
}

/* A stale window per TTL rule: "hot:" keys get one, others (stale_ttl_ms 0) do not. */
Test(freshness, ttl_rule_gives_its_keys_a_stale_window) {
    const uint64_t ttl = MS(200);
    const tc_ttl_rule_t rules[] = {
        {.prefix = "hot:", .prefix_len = 4, .ttl_ms = ttl, .stale_ttl_ms = MS(5000)}};
    tc_config_t cfg;
    base_config(&cfg, "t:fr:rs:", 0);
    cfg.default_ttl_ms = ttl;
    cfg.ttl_rules = rules;
    cfg.ttl_rules_count = 1;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t hot, cold;
    src_init(&hot);
    src_init(&cold);
    expect_val(fetch(c, "hot:k", &hot), "gen-1", 0);
    expect_val(fetch(c, "cold:k", &cold), "gen-1", 0);
    tc_test_sleep_ms((unsigned)(ttl + MS(50)));
    atomic_store(&hot.sleep_ms, (unsigned)MS(500));
    got_t g = fetch(c, "hot:k", &hot);
    expect_val(g, "gen-1", 1);
    cr_assert_lt(g.ms, MS(250), "the stale read waited %llu ms", (unsigned long long)g.ms);
    expect_val(fetch(c, "cold:k", &cold), "gen-2", 0);
    cr_assert_eq(atomic_load(&cold.on_caller), 2, "a key without a stale window loads inline");
    src_quiesce(&hot);
    tc_close(c);
}

/* ---- fail-safe ---- */

Test(freshness, failsafe_serves_last_value_until_max_stale_with_backoff) {
    const uint64_t ttl = MS(200), max_stale = MS(1500), backoff = MS(300);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:fs:", 1);
    cfg.default_ttl_ms = ttl;
    cfg.failsafe_max_stale_ms = max_stale;
    cfg.failsafe_backoff_ms = (uint32_t)backoff;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    expect_val(fetch(c, "k", &s), "gen-1", 0);
    uint64_t stored = tc_test_now_ms(); /* the value's clock started before this */
    tc_test_sleep_ms((unsigned)(ttl + MS(30)));

    atomic_store(&s.ret, -4242);
    uint64_t failing = tc_test_now_ms();
    int served = 0;
    while (tc_test_now_ms() < stored + ttl + max_stale - MS(200)) {
        got_t g = fetch(c, "k", &s);
        cr_assert_eq(g.rc, 0, "read %d inside max stale: %s", served, tc_err_name(g.rc));
        cr_assert_str_eq(g.val, "gen-1");
        cr_assert_eq(g.stale, 1, "a fail-safe answer must be marked stale");
        served++;
        tc_test_sleep_ms(20);
    }
    uint64_t elapsed = tc_test_now_ms() - failing;
    int failed = atomic_load(&s.calls) - 1;
    cr_assert_geq(failed, 1, "the expired key was never reloaded");
    cr_assert_leq((uint64_t)failed, 2 + elapsed / backoff,
                  "%d failing loads in %llu ms with a %llu ms back-off", failed,
                  (unsigned long long)elapsed, (unsigned long long)backoff);
    tc_stats_t st = stats(c);
    cr_assert_geq(st.failsafe_serves, (uint64_t)served, "%llu fail-safe serves for %d",
                  (unsigned long long)st.failsafe_serves, served);
    cr_assert_geq(st.load_errors, (uint64_t)failed);

    sleep_until(stored + ttl + max_stale + MS(100));
    got_t g = fetch(c, "k", &s);
    cr_assert_eq(g.rc, -4242, "past max stale the loader's error is due, got %s",
                 tc_err_name(g.rc));

    atomic_store(&s.ret, 0);
    uint64_t deadline = tc_test_now_ms() + backoff + MS(2000);
    while ((g = fetch(c, "k", &s)).rc != 0) {
        cr_assert_lt(tc_test_now_ms(), deadline, "no recovery once the loader works: %s",
                     tc_err_name(g.rc));
        tc_test_sleep_ms(20);
    }
    cr_assert_eq(g.stale, 0);
    cr_assert_str_neq(g.val, "gen-1", "a recovered load must replace the old value");
    src_quiesce(&s);
    tc_close(c);
}

/* ---- XFetch early refresh ---- */

Test(freshness, early_refresh_keeps_a_hot_key_fresh_without_caller_loads) {
    const uint64_t ttl = MS(1000);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:xf:", 1);
    cfg.default_ttl_ms = ttl;
    /* beta 2 rather than the paper's 1: the refresh then starts well before expiry even
     * when a loaded machine stretches the 1 ms between reads, so a caller never meets an
     * expired key by bad luck. */
    cfg.early_refresh_beta = 2.0;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    /* A load long enough that waiting on one cannot pass for a descheduled reader on a
     * busy machine. */
    const uint64_t load_ms = MS(250);
    atomic_store(&s.sleep_ms, (unsigned)load_ms);
    expect_val(fetch(c, "hot", &s), "gen-1", 0); /* warm-up: the one load a caller runs */

    uint64_t end = tc_test_now_ms() + 3 * ttl, slowest = 0;
    int reads = 0;
    while (tc_test_now_ms() < end) {
        got_t g = fetch(c, "hot", &s);
        if (g.ms > slowest)
            slowest = g.ms;
        cr_assert_eq(g.rc, 0, "read %d: %s", reads, tc_err_name(g.rc));
        cr_assert_eq(g.stale, 0, "read %d got a stale '%s'", reads, g.val);
        cr_assert_eq(atomic_load(&s.on_caller), 1,
                     "read %d ran the loader on the caller's thread ('%s', %llu ms)", reads,
                     g.val, (unsigned long long)g.ms);
        reads++;
        tc_test_sleep_ms(1);
    }
    tc_stats_t st = stats(c);
    cr_assert_gt(st.early_refreshes, 0, "no early refresh in %d reads", reads);
    cr_assert_gt(st.loads, 1);
    cr_assert_geq(atomic_load(&s.calls), 3, "a key read for 3 TTLs needs >= 2 refreshes");
    /* No caller waits on a load: a reader may wait for the refresh's own commit (our
     * refresh's invalidation can reach the listener before its value reaches L1, and the
     * old value must go at once), which costs a round trip, never a load's time. */
    cr_assert_lt(slowest, load_ms, "a read took %llu ms: it waited on a load",
                 (unsigned long long)slowest);
    src_quiesce(&s);
    tc_close(c);
}

/* ---- negative caching ---- */

Test(freshness, negative_result_is_cached_in_both_tiers_until_its_ttl) {
    const uint64_t neg = MS(400);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:neg:", 1);
    cfg.negative_ttl_ms = neg;
    tc_cache_t *a = tc_test_open(&cfg), *b = tc_test_open(&cfg);
    src_t sa, sb;
    src_init(&sa);
    src_init(&sb);
    atomic_store(&sa.ret, TC_ENOTFOUND);
    atomic_store(&sb.ret, TC_ENOTFOUND);

    cr_assert_eq(fetch(a, "gone", &sa).rc, TC_ENOTFOUND);
    uint64_t stored = tc_test_now_ms();
    cr_assert_eq(fetch(a, "gone", &sa).rc, TC_ENOTFOUND);
    cr_assert_eq(atomic_load(&sa.calls), 1, "a cached absence must not call the loader");
    cr_assert_geq(stats(a).negative_hits, 1);
    cr_assert_eq(get(a, "gone").rc, TC_ENOTFOUND, "an absence is not a value for tc_get");

    cr_assert_eq(fetch(b, "gone", &sb).rc, TC_ENOTFOUND);
    cr_assert_eq(atomic_load(&sb.calls), 0, "the absence must be shared through L2");
    cr_assert_geq(stats(b).negative_hits, 1);

    sleep_until(stored + neg + MS(150));
    atomic_store(&sa.ret, 0);
    expect_val(fetch(a, "gone", &sa), "gen-2", 0);
    cr_assert_eq(atomic_load(&sa.calls), 2, "after negative_ttl_ms the loader runs again");
    expect_val(fetch(b, "gone", &sb), "gen-2", 0);
    cr_assert_eq(atomic_load(&sb.calls), 0);
    tc_close(b);
    tc_close(a);
}

Test(freshness, negative_cache_in_l1_only_mode_yields_to_writes) {
    tc_config_t cfg;
    base_config(&cfg, "t:fr:negl1:", 0);
    cfg.negative_ttl_ms = MS(60000);
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    atomic_store(&s.ret, TC_ENOTFOUND);
    cr_assert_eq(fetch(c, "k", &s).rc, TC_ENOTFOUND);
    cr_assert_eq(fetch(c, "k", &s).rc, TC_ENOTFOUND);
    cr_assert_eq(atomic_load(&s.calls), 1);
    cr_assert_geq(stats(c).negative_hits, 1);

    cr_assert_eq(tc_set(c, "k", 1, "written", 7, 0), 0);
    expect_val(fetch(c, "k", &s), "written", 0);
    cr_assert_eq(atomic_load(&s.calls), 1, "a write must replace the cached absence");
    cr_assert_eq(tc_del(c, "k", 1), 0);
    cr_assert_eq(fetch(c, "k", &s).rc, TC_ENOTFOUND);
    cr_assert_eq(atomic_load(&s.calls), 2, "after a delete the loader decides again");
    tc_close(c);
}

/* ---- load timeouts ---- */

Test(freshness, soft_timeout_returns_the_stale_value_and_loads_on) {
    const uint64_t ttl = MS(200), soft = MS(100), slow = MS(1000);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:soft:", 1);
    cfg.default_ttl_ms = ttl;
    cfg.failsafe_max_stale_ms = MS(10000);
    cfg.load_soft_timeout_ms = (uint32_t)soft;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    expect_val(fetch(c, "k", &s), "gen-1", 0);
    tc_test_sleep_ms((unsigned)(ttl + MS(50)));

    atomic_store(&s.sleep_ms, (unsigned)slow);
    got_t g = fetch(c, "k", &s);
    expect_val(g, "gen-1", 1);
    cr_assert_lt(g.ms, soft + MARGIN_MS, "the soft timeout (%llu ms) answered after %llu ms",
                 (unsigned long long)soft, (unsigned long long)g.ms);
    cr_assert_geq(stats(c).load_timeouts, 1);

    uint64_t deadline = tc_test_now_ms() + slow + MS(3000);
    while ((g = fetch(c, "k", &s)).rc != 0 || strcmp(g.val, "gen-2") != 0) {
        cr_assert_eq(g.rc, 0, "while the slow load runs: %s", tc_err_name(g.rc));
        cr_assert_lt(tc_test_now_ms(), deadline, "the slow load never landed");
        tc_test_sleep_ms(20);
    }
    cr_assert_eq(g.stale, 0);
    cr_assert_eq(atomic_load(&s.calls), 2, "waiting readers must join the running load");
    src_quiesce(&s);
    tc_close(c);
}

Test(freshness, hard_timeout_returns_etimedout_and_the_load_still_caches) {
    const uint64_t hard = MS(200), slow = MS(2000);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:hard:", 1);
    cfg.load_hard_timeout_ms = (uint32_t)hard;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    atomic_store(&s.sleep_ms, (unsigned)slow);
    got_t g = fetch(c, "k", &s);
    cr_assert_eq(g.rc, TC_ETIMEDOUT, "got %s", tc_err_name(g.rc));
    cr_assert_geq(g.ms + 20, hard, "timed out after %llu ms, before the hard timeout",
                  (unsigned long long)g.ms);
    cr_assert_lt(g.ms, hard + MARGIN_MS, "the hard timeout (%llu ms) answered after %llu ms",
                 (unsigned long long)hard, (unsigned long long)g.ms);
    cr_assert_geq(stats(c).load_timeouts, 1);
    long took = tc_test_wait_get(c, "k", 1, "gen-1", 5, (unsigned)(slow + MS(2000)));
    cr_assert_geq(took, 0, "the timed-out load did not finish and cache in the background");
    cr_assert_eq(atomic_load(&s.calls), 1);
    src_quiesce(&s);
    tc_close(c);
}

/* With nothing stale to serve, the soft timeout has nothing to offer: the hard one rules. */
Test(freshness, soft_timeout_without_a_stale_value_waits_for_the_hard_one) {
    const uint64_t soft = MS(100), hard = MS(400), slow = MS(2000);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:sh:", 0);
    cfg.load_soft_timeout_ms = (uint32_t)soft;
    cfg.load_hard_timeout_ms = (uint32_t)hard;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    atomic_store(&s.sleep_ms, (unsigned)slow);
    got_t g = fetch(c, "k", &s);
    cr_assert_eq(g.rc, TC_ETIMEDOUT, "got %s", tc_err_name(g.rc));
    cr_assert_geq(g.ms + 20, hard, "gave up after %llu ms, at the soft timeout",
                  (unsigned long long)g.ms);
    cr_assert_lt(g.ms, hard + MARGIN_MS);
    src_quiesce(&s);
    tc_close(c);
}

/* ---- per-prefix TTL rules ---- */

static void set_str(tc_cache_t *c, const char *key, uint64_t ttl) {
    cr_assert_eq(tc_set(c, key, strlen(key), "v", 1, ttl), 0, "tc_set %s", key);
}

Test(freshness, ttl_rules_pick_the_ttl_by_prefix) {
    const uint64_t day = 86400000, short_ttl = MS(200);
    const tc_ttl_rule_t rules[] = {
        {.prefix = "session:", .prefix_len = 8, .ttl_ms = day},
        {.prefix = "search:", .prefix_len = 7, .ttl_ms = short_ttl},
        {.prefix = "search:long", .prefix_len = 11, .ttl_ms = day}, /* shadowed */
    };
    tc_config_t cfg;
    base_config(&cfg, "t:fr:rules:", 0);
    cfg.default_ttl_ms = 60000;
    cfg.ttl_rules = rules;
    cfg.ttl_rules_count = 3;
    tc_cache_t *c = tc_test_open(&cfg);
    uint64_t t0 = tc_test_now_ms();
    set_str(c, "search:q", 0);
    set_str(c, "search:longterm", 0);
    set_str(c, "search:explicit", 60000);
    set_str(c, "session:s", 0);
    set_str(c, "plain", 0);
    src_t s;
    src_init(&s);
    expect_val(fetch(c, "search:f", &s), "gen-1", 0);

    long took = tc_test_wait_get(c, "search:q", 8, NULL, 0, (unsigned)(short_ttl + MARGIN_MS));
    cr_assert_geq(took, 0, "a 'search:' key outlived its rule's TTL");
    cr_assert_geq(tc_test_now_ms() - t0 + 20, short_ttl, "'search:q' expired early");
    sleep_until(t0 + short_ttl + MS(100));
    cr_assert_eq(get(c, "search:longterm").rc, TC_ENOTFOUND, "the first matching rule wins");
    expect_val(get(c, "search:explicit"), "v", 0);
    expect_val(get(c, "session:s"), "v", 0);
    expect_val(get(c, "plain"), "v", 0);
    expect_val(fetch(c, "search:f", &s), "gen-2", 0);
    cr_assert_eq(atomic_load(&s.calls), 2, "a loaded 'search:' value follows the rule too");
    tc_close(c);
}

/* ---- sliding expiration ---- */

Test(freshness, sliding_ttl_lives_while_read_and_dies_when_left_alone) {
    const uint64_t ttl = MS(300);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:slide:", 0);
    cfg.default_ttl_ms = ttl;
    cfg.sliding_ttl = 1;
    tc_cache_t *c = tc_test_open(&cfg);
    set_str(c, "k", 0);
    set_str(c, "idle", 0);
    for (int i = 0; i < 10; i++) {
        tc_test_sleep_ms((unsigned)MS(100));
        cr_assert_eq(get(c, "k").rc, 0, "read %d after %d00 ms: slid away", i, i + 1);
    }
    cr_assert_eq(get(c, "idle").rc, TC_ENOTFOUND, "an unread key must not slide");
    tc_test_sleep_ms((unsigned)(ttl + MS(150)));
    cr_assert_eq(get(c, "k").rc, TC_ENOTFOUND, "still there %llu ms after the last read",
                 (unsigned long long)(ttl + MS(150)));
    tc_close(c);
}

Test(freshness, sliding_max_caps_the_life_of_a_key_read_all_the_time) {
    const uint64_t ttl = MS(300), cap = MS(600);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:slmax:", 0);
    cfg.default_ttl_ms = ttl;
    cfg.sliding_ttl = 1;
    cfg.sliding_max_ms = cap;
    tc_cache_t *c = tc_test_open(&cfg);
    uint64_t before = tc_test_now_ms();
    set_str(c, "k", 0);
    uint64_t after = tc_test_now_ms(), gone = 0;
    while (!gone && tc_test_now_ms() < after + cap + MARGIN_MS) {
        uint64_t t = tc_test_now_ms();
        if (get(c, "k").rc == TC_ENOTFOUND)
            gone = t;
        tc_test_sleep_ms(20);
    }
    cr_assert_gt(gone, 0, "a key read every 20 ms outlived sliding_max_ms");
    cr_assert_geq(gone - before + 20, cap, "gone after %llu ms, before sliding_max_ms",
                  (unsigned long long)(gone - before));
    tc_close(c);
}

/* ---- refreshes across processes (two handles on one Redis stand for two processes:
 * each has its own L1, pending records and refresh pool) ---- */

Test(freshness, stale_refresh_runs_once_per_cluster) {
    const uint64_t ttl = MS(300), slow = MS(600);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:swr2:", 1);
    cfg.default_ttl_ms = ttl;
    cfg.stale_ttl_ms = MS(10000);
    tc_cache_t *a = tc_test_open(&cfg);
    tc_cache_t *b = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    expect_val(fetch(a, "k", &s), "gen-1", 0);
    expect_val(fetch(b, "k", &s), "gen-1", 0); /* from L2: no load */
    cr_assert_eq(atomic_load(&s.calls), 1);
    tc_test_sleep_ms((unsigned)(ttl + MS(50)));

    atomic_store(&s.sleep_ms, (unsigned)slow);
    expect_val(fetch(a, "k", &s), "gen-1", 1); /* a's refresh takes the cluster lock */
    uint64_t until = tc_test_now_ms() + MS(2000);
    while (atomic_load(&s.calls) < 2) {
        cr_assert_lt(tc_test_now_ms(), until, "a's refresh never started");
        tc_test_sleep_ms(5);
    }
    expect_val(fetch(b, "k", &s), "gen-1", 1); /* b's refresh finds the lock held */

    got_t ga, gb;
    uint64_t deadline = tc_test_now_ms() + slow + MS(3000);
    do {
        cr_assert_lt(tc_test_now_ms(), deadline, "the refreshed value never reached both");
        tc_test_sleep_ms(20);
        ga = fetch(a, "k", &s);
        gb = fetch(b, "k", &s);
    } while (strcmp(ga.val, "gen-2") != 0 || strcmp(gb.val, "gen-2") != 0);
    cr_assert_eq(ga.stale, 0);
    cr_assert_eq(gb.stale, 0);
    cr_assert_eq(atomic_load(&s.calls), 2, "one refresh for the cluster, not one per process");
    src_quiesce(&s);
    tc_close(a);
    tc_close(b);
}

Test(freshness, early_refresh_works_in_processes_that_did_not_load) {
    const uint64_t ttl = MS(600);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:xf2:", 1);
    cfg.default_ttl_ms = ttl;
    cfg.early_refresh_beta = 4.0;
    tc_cache_t *a = tc_test_open(&cfg);
    tc_cache_t *b = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    atomic_store(&s.sleep_ms, (unsigned)MS(60));
    expect_val(fetch(a, "k", &s), "gen-1", 0);
    tc_close(a); /* only b reads from now on; it never ran the loader */
    uint64_t end = tc_test_now_ms() + 3 * ttl;
    while (tc_test_now_ms() < end) {
        got_t g = fetch(b, "k", &s);
        cr_assert_eq(g.rc, 0);
        tc_test_sleep_ms(2);
    }
    src_quiesce(&s);
    tc_stats_t st;
    cr_assert_eq(tc_stats(b, &st), 0);
    cr_assert_gt(st.early_refreshes, 0,
                 "the load time travels in the L2 header, so b refreshes early too");
    cr_assert_eq(atomic_load(&s.on_caller), 1,
                 "b never waited on a load of its own: it refreshed before every expiry");
    tc_close(b);
}

Test(freshness, early_refresh_stays_bounded_at_high_read_rates) {
    const uint64_t ttl = MS(400);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:xf3:", 0);
    cfg.default_ttl_ms = ttl;
    cfg.early_refresh_beta = 1.0;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    atomic_store(&s.sleep_ms, (unsigned)MS(50)); /* load time comparable to the TTL */
    expect_val(fetch(c, "k", &s), "gen-1", 0);
    uint64_t t0 = tc_test_now_ms(), end = t0 + 5 * ttl;
    while (tc_test_now_ms() < end) /* as fast as it goes: the worst case for XFetch */
        cr_assert_eq(fetch(c, "k", &s).rc, 0);
    src_quiesce(&s);
    uint64_t periods = (tc_test_now_ms() - t0) / ttl + 1;
    int loads = atomic_load(&s.calls) - 1;
    cr_assert_gt(loads, 0, "no early refresh at all");
    /* Refreshes happen only in the last quarter of the TTL: at most ~4/3 per period. */
    cr_assert_leq((uint64_t)loads, periods * 4 / 3 + 2, "%d refreshes in %llu TTL periods",
                  loads, (unsigned long long)periods);
    tc_close(c);
}

/* The background queue is bounded: refreshes beyond it are dropped and counted, and the
 * readers still get their stale values at once. */
Test(freshness, refreshes_beyond_the_queue_are_dropped_and_counted) {
    const uint64_t ttl = MS(200);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:drop:", 0);
    cfg.default_ttl_ms = ttl;
    cfg.stale_ttl_ms = MS(10000);
    cfg.refresh_threads = 1;
    cfg.refresh_queue = 1;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    const char *keys[] = {"d0", "d1", "d2", "d3", "d4", "d5"};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(fetch(c, keys[i], &s).rc, 0);
    tc_test_sleep_ms((unsigned)(ttl + MS(50)));

    atomic_store(&s.sleep_ms, (unsigned)MS(500)); /* the one worker stays busy */
    for (int i = 0; i < 6; i++) {
        got_t g = fetch(c, keys[i], &s);
        cr_assert_eq(g.rc, 0);
        cr_assert_eq(g.stale, 1, "%s must be answered stale at once", keys[i]);
        cr_assert_lt(g.ms, MS(500), "%s waited on a refresh", keys[i]);
    }
    tc_stats_t st = stats(c);
    /* One refresh runs, one waits in the queue, the other four do not fit. */
    cr_assert_geq(st.refreshes_dropped, 3, "dropped %llu",
                  (unsigned long long)st.refreshes_dropped);
    cr_assert_leq(st.stale_refreshes + st.refreshes_dropped, 6);
    src_quiesce(&s);
    tc_close(c);
}

/* ---- timeouts bound every caller, not only the first (issue: freshness timing) ---- */

typedef struct joiner {
    pthread_t tid;
    tc_cache_t *cache;
    src_t *src;
    got_t g;
} joiner_t;

static void *join_fetch(void *arg) {
    joiner_t *j = arg;
    j->g = fetch(j->cache, "k", j->src);
    return NULL;
}

/* Three callers join the first one's slow load: each answers at the hard timeout. */
Test(freshness, hard_timeout_bounds_every_caller_that_joins_a_load) {
    const uint64_t hard = MS(150), slow = MS(600);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:join:", 1);
    cfg.load_hard_timeout_ms = (uint32_t)hard;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t s;
    src_init(&s);
    atomic_store(&s.sleep_ms, (unsigned)slow);
    joiner_t j[4];
    for (int i = 0; i < 4; i++) {
        j[i] = (joiner_t){.cache = c, .src = &s};
        pthread_create(&j[i].tid, NULL, join_fetch, &j[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(j[i].tid, NULL);
        cr_assert_eq(j[i].g.rc, TC_ETIMEDOUT, "caller %d: %s", i, tc_err_name(j[i].g.rc));
        cr_assert_lt(j[i].g.ms, hard + MARGIN_MS, "caller %d waited %llu ms (hard %llu)", i,
                     (unsigned long long)j[i].g.ms, (unsigned long long)hard);
    }
    cr_assert_eq(atomic_load(&s.calls), 1, "the joined callers must not load themselves");
    src_quiesce(&s);
    tc_close(c);
}

/* Another process holds the key's lock with a slow load: the hard timeout still rules. */
Test(freshness, hard_timeout_bounds_a_wait_on_another_process_lock) {
    const uint64_t hard = MS(150);
    const char *prefix = "t:fr:xl:";
    tc_config_t cfg;
    base_config(&cfg, prefix, 1);
    cfg.load_hard_timeout_ms = (uint32_t)hard;
    tc_cache_t *c = tc_test_open(&cfg);
    tc_test_peer_t *holder = tc_test_peer_start(tc_test_redis_url(redis), prefix, prefix, NULL);
    char hk[8];
    tc_test_hex("k", 1, hk);
    tc_test_peer_send(holder, "xfetch %s 1 %u", hk, (unsigned)MS(1500));
    redisContext *rc = tc_test_redis_connect(redis);
    cr_assert_not_null(rc);
    uint64_t deadline = tc_test_now_ms() + MS(2000);
    long long held = 0;
    while (!held && tc_test_now_ms() < deadline) { /* until the peer holds the lock */
        redisReply *r = redisCommand(rc, "EXISTS %sl:k", prefix);
        held = r ? r->integer : 0;
        freeReplyObject(r);
        tc_test_sleep_ms(2);
    }
    redisFree(rc);
    cr_assert(held, "the peer never took the lock");
    src_t s;
    src_init(&s);
    got_t g = fetch(c, "k", &s);
    cr_assert_eq(g.rc, TC_ETIMEDOUT, "got %s", tc_err_name(g.rc));
    cr_assert_lt(g.ms, hard + MARGIN_MS, "waited %llu ms on the other process (hard %llu)",
                 (unsigned long long)g.ms, (unsigned long long)hard);
    tc_test_peer_recv(holder, 10000);
    tc_test_peer_stop(holder);
    src_quiesce(&s);
    tc_close(c);
}

/* A refresh queued behind a busy pool does not lead its key yet: a caller that misses
 * meanwhile loads at once instead of waiting for the queue. */
Test(freshness, a_caller_never_waits_behind_queued_refreshes) {
    const uint64_t ttl = MS(200), slow = MS(1500);
    tc_config_t cfg;
    base_config(&cfg, "t:fr:queue:", 1);
    cfg.default_ttl_ms = ttl;
    cfg.stale_ttl_ms = MS(10000);
    cfg.refresh_threads = 1;
    tc_cache_t *c = tc_test_open(&cfg);
    src_t busy, victim;
    src_init(&busy);
    src_init(&victim);
    cr_assert_eq(fetch(c, "busy", &busy).rc, 0);
    cr_assert_eq(fetch(c, "victim", &victim).rc, 0);
    tc_test_sleep_ms((unsigned)(ttl + MS(50)));
    atomic_store(&busy.sleep_ms, (unsigned)slow); /* its refresh holds the only worker */
    cr_assert_eq(fetch(c, "busy", &busy).stale, 1);
    cr_assert_eq(fetch(c, "victim", &victim).stale, 1); /* queued behind it */
    cr_assert_eq(tc_del(c, "victim", 6), 0);
    got_t g = fetch(c, "victim", &victim);
    expect_val(g, "gen-2", 0);
    cr_assert_lt(g.ms, MARGIN_MS, "the caller waited %llu ms behind the refresh queue",
                 (unsigned long long)g.ms);
    src_quiesce(&busy);
    src_quiesce(&victim);
    tc_close(c);
}
