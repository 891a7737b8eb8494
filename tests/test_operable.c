/*
 * test_operable.c - what an operator sees when something is wrong: the real cause in
 * every error, refusals that are counted and logged instead of silent, a log that says
 * what the cache is doing without flooding, latency histograms that move.
 *
 * The causes are real: a port nobody listens on, a socket file that does not exist, a
 * name that does not resolve, a Redis with requirepass (no password, wrong password), a
 * database index Redis refuses, and ACL users missing one command each (+pttl, +ping).
 * Each assertion names the text an operator needs to see (the Redis reply, the errno
 * text), so a generic "could not subscribe" fails it.
 */
/* tc-test-labels: integration fault */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(str) str, sizeof(str) - 1

/* ---- a log callback that keeps what it got ---- */

#define LOG_KEEP 64
typedef struct log_sink {
    pthread_mutex_t mu;
    int n;
    int level[LOG_KEEP];
    char msg[LOG_KEEP][256];
} log_sink_t;

static void sink_fn(void *arg, int level, const char *msg, const void *key, size_t klen) {
    log_sink_t *s = arg;
    (void)key;
    (void)klen;
    pthread_mutex_lock(&s->mu);
    if (s->n < LOG_KEEP) {
        s->level[s->n] = level;
        snprintf(s->msg[s->n], sizeof s->msg[0], "%s", msg);
    }
    s->n++;
    pthread_mutex_unlock(&s->mu);
}

/* 1 if some message at `level` contains `needle`. */
static int sink_has(log_sink_t *s, int level, const char *needle) {
    pthread_mutex_lock(&s->mu);
    int found = 0;
    for (int i = 0; i < s->n && i < LOG_KEEP && !found; i++)
        found = s->level[i] == level && strstr(s->msg[i], needle) != NULL;
    pthread_mutex_unlock(&s->mu);
    return found;
}

static void sink_init(log_sink_t *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t st;
    cr_assert_eq(tc_stats(c, &st), 0);
    return st;
}

/* ---- tc_open names the cause, at once ---- */

static void expect_open_cause(const char *url, const char *cause, uint64_t within_ms) {
    tc_config_t cfg;
    tc_test_config(&cfg, url, "t:op:", "t:op:inval");
    cfg.require_redis = 1;
    cfg.connect_timeout_ms = 300;
    tc_cache_t *c = NULL;
    tc_error_t err = {0};
    uint64_t t0 = tc_test_now_ms();
    int rc = tc_open(&cfg, &c, &err);
    uint64_t took = tc_test_now_ms() - t0;
    cr_assert_lt(rc, 0, "%s: tc_open succeeded", url);
    cr_assert_null(c);
    cr_assert(strstr(err.msg, cause), "%s: the error does not name the cause '%s': %s", url,
              cause, err.msg);
    cr_assert_leq(took, within_ms, "%s: the failure took %llu ms", url,
                  (unsigned long long)took);
}

Test(operable, open_names_each_cause) {
    tc_test_redis_opts_t o = {.password = "s3cret-pw"};
    tc_test_redis_t *r = tc_test_redis_start(&o);
    char url[512];
    const char *sock = tc_test_redis_socket_path(r);
    const uint64_t at_once = 250u * TC_TEST_SLOW; /* well under the 300 ms connect timeout */
    expect_open_cause("redis://127.0.0.1:1", "Connection refused", at_once);
    expect_open_cause("unix:///nonexistent-dir/none.sock", "No such file", at_once);
    /* getaddrinfo's text varies ("Name or service not known", "Temporary failure in name
     * resolution"): the host name and "redis connect" are what must be there. */
    expect_open_cause("redis://no-such-host.invalid:6379", "connect to no-such-host.invalid",
                      2000u * TC_TEST_SLOW);
    snprintf(url, sizeof url, "unix://%s", sock);
    expect_open_cause(url, "NOAUTH", at_once);
    snprintf(url, sizeof url, "unix://%s?password=wrong", sock);
    expect_open_cause(url, "WRONGPASS", at_once);
    snprintf(url, sizeof url, "unix://%s?password=s3cret-pw&db=99", sock);
    expect_open_cause(url, "DB index", at_once);
    tc_test_redis_stop(r);
}

/* Without require_redis the open still succeeds, at once, and the log says why. */
Test(operable, degraded_open_is_quick_and_logged) {
    log_sink_t sink;
    sink_init(&sink);
    tc_config_t cfg;
    tc_test_config(&cfg, "redis://127.0.0.1:1", "t:op:", "t:op:inval");
    cfg.connect_timeout_ms = 1000;
    cfg.log_fn = sink_fn;
    cfg.log_arg = &sink;
    tc_cache_t *c = NULL;
    tc_error_t err;
    uint64_t t0 = tc_test_now_ms();
    cr_assert_eq(tc_open(&cfg, &c, &err), 0, "%s", err.msg);
    uint64_t took = tc_test_now_ms() - t0;
    cr_assert_lt(took, 500u * TC_TEST_SLOW, "a refused connection still waited %llu ms",
                 (unsigned long long)took);
    cr_assert(sink_has(&sink, TC_LOG_WARN, "Connection refused"),
              "the degraded open was not logged with its cause");
    tc_close(c);
}

/* A wrong password never appears in a message, whatever the URL looks like. */
Test(operable, no_message_contains_the_password) {
    log_sink_t sink;
    sink_init(&sink);
    tc_config_t cfg;
    tc_test_config(&cfg, "redis://user:pa/ss#wo?rd@127.0.0.1:1/0", "t:op:", "t:op:inval");
    cfg.log_fn = sink_fn;
    cfg.log_arg = &sink;
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &c, &err), 0, "%s", err.msg);
    tc_set(c, S("k"), S("v"), 0);
    tc_error_t last;
    cr_assert(tc_last_error(&last));
    cr_assert_null(strstr(last.msg, "pa/ss"), "%s", last.msg);
    pthread_mutex_lock(&sink.mu);
    for (int i = 0; i < sink.n && i < LOG_KEEP; i++)
        cr_assert_null(strstr(sink.msg[i], "wo?rd"), "a log line has the password: %s",
                       sink.msg[i]);
    pthread_mutex_unlock(&sink.mu);
    tc_close(c);
}

/* ---- data calls: the cause through tc_last_error ---- */

Test(operable, data_call_failure_names_the_redis_reply) {
    tc_test_redis_opts_t o = {.password = "s3cret-pw"};
    tc_test_redis_t *r = tc_test_redis_start(&o);
    char url[512];
    snprintf(url, sizeof url, "unix://%s", tc_test_redis_socket_path(r)); /* no password */
    tc_config_t cfg;
    tc_test_config(&cfg, url, "t:op:", "t:op:inval");
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &c, &err), 0, "%s", err.msg);
    int rc = tc_set(c, S("k"), S("v"), 0);
    cr_assert_lt(rc, 0);
    tc_error_t last;
    cr_assert_eq(tc_last_error(&last), 1);
    cr_assert_eq(last.code, rc);
    cr_assert(strstr(last.msg, "NOAUTH"), "tc_set failed with %s, detail: %s", tc_err_name(rc),
              last.msg);
    cr_assert_geq(stats(c).permission_errors, 1);
    tc_close(c);
    tc_test_redis_stop(r);
}

/* A user whose ACL lacks the commands in minus ("-cmd", or "-a -b": one rule per word).
 * Each user name is its own ACL user, so a writer and a reader can differ. */
static tc_cache_t *open_as(tc_test_redis_t *r, const char *user, const char *minus,
                           log_sink_t *sink) {
    redisContext *rc = tc_test_redis_connect(r);
    cr_assert_not_null(rc);
    const char *argv[16] = {"ACL", "SETUSER", user, "reset", "on", ">pw", "~*", "&*", "+@all"};
    int argc = 9;
    char rules[128];
    snprintf(rules, sizeof rules, "%s", minus);
    for (char *save = NULL, *w = strtok_r(rules, " ", &save); w && argc < 16;
         w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    redisReply *rep = redisCommandArgv(rc, argc, argv, NULL);
    cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "ACL SETUSER failed");
    freeReplyObject(rep);
    redisFree(rc);
    char url[512];
    snprintf(url, sizeof url, "unix://%s?user=%s&password=pw", tc_test_redis_socket_path(r),
             user);
    tc_config_t cfg;
    tc_test_config(&cfg, url, "t:op:", "t:op:inval");
    cfg.log_fn = sink_fn;
    cfg.log_arg = sink;
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &c, &err), 0, "%s", err.msg);
    return c;
}

static tc_cache_t *open_as_limited(tc_test_redis_t *r, const char *minus, log_sink_t *sink) {
    return open_as(r, "limited", minus, sink);
}

/* Reads take a value's life from its header, with Redis's clock from a TIME that rides
 * along about once a second (src/l2_clock.h): without +pttl they still keep L1 copies. */
Test(operable, without_pttl_permission_reads_keep_l1_copies) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    log_sink_t sink;
    sink_init(&sink);
    tc_cache_t *c = open_as_limited(r, "-pttl", &sink);
    cr_assert_eq(tc_set(c, S("k"), S("v"), 0), 0);
    tc_cache_t *other = open_as_limited(r, "-pttl", &sink);
    /* An unsubscribed cache keeps nothing it reads (l1.c rule 3): wait for the listener. */
    cr_assert(tc_test_wait_listener(other, 1, 2000u * TC_TEST_SLOW));
    for (int i = 0; i < 2; i++) {
        tc_ref_t *ref = NULL;
        int rc = tc_get(other, S("k"), &ref);
        tc_ref_release(ref);
        cr_assert_eq(rc, TC_OK, "tc_get %d without +pttl: %s", i, tc_err_name(rc));
    }
    tc_stats_t st = stats(other);
    cr_assert_eq(st.l2_hits, 1);
    cr_assert_eq(st.l1_hits, 1, "the value read from Redis was not kept in L1");
    cr_assert_eq(st.permission_errors, 0);
    tc_close(other);
    tc_close(c);
    tc_test_redis_stop(r);
}

/* Without +time (a read-only user: writes need TIME in their scripts) a read asks PTTL
 * instead, says so once, and still keeps its copy. */
Test(operable, without_time_permission_reads_ask_pttl) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    log_sink_t sink;
    sink_init(&sink);
    tc_cache_t *c = open_as(r, "writer", "-ping", &sink);
    cr_assert_eq(tc_set(c, S("k"), S("v"), 0), 0);
    cr_assert_eq(tc_set(c, S("k2"), S("v2"), 0), 0);
    tc_cache_t *other = open_as(r, "reader", "-time", &sink);
    cr_assert(tc_test_wait_listener(other, 1, 2000u * TC_TEST_SLOW));
    const char *keys[] = {"k", "k", "k2", "k2"};
    for (int i = 0; i < 4; i++) {
        tc_ref_t *ref = NULL;
        int rc = tc_get(other, keys[i], strlen(keys[i]), &ref);
        tc_ref_release(ref);
        cr_assert_eq(rc, TC_OK, "tc_get %d without +time: %s", i, tc_err_name(rc));
    }
    tc_stats_t st = stats(other);
    cr_assert_eq(st.l1_hits, 2, "values were not kept in L1 without +time");
    cr_assert(sink_has(&sink, TC_LOG_WARN, "TIME"), "the refusal of TIME was not logged");
    tc_close(other);
    tc_close(c);
    tc_test_redis_stop(r);
}

/* Without +pttl and +time, the read has no way to know its key's life. It used to work
 * while L1 silently kept nothing. Now the read fails, says why, and is counted and logged. */
Test(operable, missing_pttl_permission_is_an_error_not_a_silent_miss) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    log_sink_t sink;
    sink_init(&sink);
    tc_cache_t *c = open_as(r, "writer", "-ping", &sink);
    cr_assert(tc_test_wait_listener(c, 1, 2000u * TC_TEST_SLOW));
    cr_assert_eq(tc_set(c, S("k"), S("v"), 0), 0);
    tc_cache_t *other = open_as(r, "reader", "-pttl -time", &sink);
    tc_ref_t *ref = NULL;
    int rc = tc_get(other, S("k"), &ref);
    tc_ref_release(ref);
    cr_assert_eq(rc, TC_EREDIS, "tc_get without +pttl: %s", tc_err_name(rc));
    tc_error_t last;
    cr_assert(tc_last_error(&last));
    cr_assert(strstr(last.msg, "NOPERM") && strstr(last.msg, "pttl"), "%s", last.msg);
    cr_assert_geq(stats(other).permission_errors, 1);
    cr_assert(sink_has(&sink, TC_LOG_ERROR, "NOPERM"), "the refusal was not logged");
    tc_close(other);
    tc_close(c);
    tc_test_redis_stop(r);
}

/* Without +ping, the listener's watchdog PING is refused: that is an answer, the link is
 * alive. It used to be taken for a dead link, flushing L1 over and over. */
Test(operable, missing_ping_permission_does_not_flap_the_listener) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    log_sink_t sink;
    sink_init(&sink);
    tc_cache_t *c = open_as_limited(r, "-ping", &sink);
    cr_assert(tc_test_wait_listener(c, 1, 2000u * TC_TEST_SLOW));
    tc_stats_t before = stats(c);
    tc_test_sleep_ms(1000); /* ten watchdog periods (listener_ping_ms = 100) */
    tc_stats_t after = stats(c);
    cr_assert_eq(after.listener_reconnects, before.listener_reconnects,
                 "the listener reconnected %llu times",
                 (unsigned long long)(after.listener_reconnects - before.listener_reconnects));
    cr_assert_eq(after.l1_flushes, before.l1_flushes, "L1 was flushed");
    cr_assert_eq(after.listener_connected, 1);
    cr_assert_geq(after.permission_errors, 1, "the refused PING was not counted");
    cr_assert(sink_has(&sink, TC_LOG_ERROR, "ping"), "the refusal was not logged");
    tc_close(c);
    tc_test_redis_stop(r);
}

/* ---- the log: events, levels, rate limits ---- */

/* Breaker open, then closed again: both logged, with the cause. */
Test(operable, breaker_transitions_are_logged) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    log_sink_t sink;
    sink_init(&sink);
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(r), "t:op:", "t:op:inval");
    cfg.log_fn = sink_fn;
    cfg.log_arg = &sink;
    cfg.log_level = TC_LOG_INFO;
    tc_cache_t *c = tc_test_open(&cfg);
    tc_test_redis_kill(r);
    for (int i = 0; i < 10; i++)
        tc_set(c, S("k"), S("v"), 0);
    cr_assert(sink_has(&sink, TC_LOG_WARN, "circuit breaker open"), "no breaker message");
    tc_test_redis_restart(r);
    uint64_t deadline = tc_test_now_ms() + 3000u * TC_TEST_SLOW;
    while (tc_set(c, S("k"), S("v"), 0) != 0 && tc_test_now_ms() < deadline)
        tc_test_sleep_ms(20);
    cr_assert(sink_has(&sink, TC_LOG_INFO, "breaker closed"), "no recovery message");
    cr_assert(tc_test_wait_listener(c, 1, 3000u * TC_TEST_SLOW));
    cr_assert(sink_has(&sink, TC_LOG_WARN, "lost its link"), "no listener-loss message");
    tc_close(c);
    tc_test_redis_stop(r);
}

/* A flapping event cannot flood the log: at most 5 of a kind per window. */
Test(operable, log_is_rate_limited_per_kind) {
    log_sink_t sink;
    sink_init(&sink);
    tc_config_t cfg;
    tc_test_config(&cfg, "redis://127.0.0.1:1", "t:op:", "t:op:inval");
    cfg.log_fn = sink_fn;
    cfg.log_arg = &sink;
    cfg.breaker_threshold = 1;
    cfg.breaker_cooldown_ms = 1; /* every call probes, fails and reopens */
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &c, &err), 0, "%s", err.msg);
    for (int i = 0; i < 200; i++) {
        tc_set(c, S("k"), S("v"), 0);
        tc_test_sleep_ms(2);
    }
    int breaker = 0;
    pthread_mutex_lock(&sink.mu);
    for (int i = 0; i < sink.n && i < LOG_KEEP; i++)
        breaker += strstr(sink.msg[i], "circuit breaker open") != NULL;
    pthread_mutex_unlock(&sink.mu);
    cr_assert_geq(stats(c).breaker_opens, 20, "the breaker did not flap: nothing tested");
    cr_assert_leq(breaker, 5, "%d breaker messages in one window", breaker);
    cr_assert_geq(breaker, 1);
    tc_close(c);
}

/* TIERCACHE_LOG picks the level (and, without a callback, stderr). */
Test(operable, log_level_from_the_environment) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    setenv("TCOPLOG_LOG", "info", 1);
    cr_assert_eq(tc_config_from_env(&cfg, "TCOPLOG_", NULL), 0);
    cr_assert_eq(cfg.log_level, TC_LOG_INFO);
    tc_error_t err;
    setenv("TCOPLOG_LOG", "loud", 1);
    cr_assert_eq(tc_config_from_env(&cfg, "TCOPLOG_", &err), TC_ECONFIG);
    cr_assert(strstr(err.msg, "TCOPLOG_LOG"), "%s", err.msg);
    unsetenv("TCOPLOG_LOG");
}

/* ---- latency histograms move with the calls they measure ---- */

Test(operable, latency_histograms_count_calls) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(r), "t:op:", "t:op:inval");
    tc_cache_t *a = tc_test_open(&cfg), *b = tc_test_open(&cfg);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(tc_set(a, S("k"), S("v"), 0), 0);
    cr_assert_eq(tc_del(a, S("k")), 0);
    tc_ref_t *ref = NULL;
    tc_get(b, S("absent"), &ref);
    for (int i = 0; i < 640; i++) { /* L1 hits are sampled 1 in 64 */
        tc_set(b, S("hot"), S("v"), 0);
        tc_get(b, S("hot"), &ref);
        tc_ref_release(ref);
    }
    tc_latency_t set, del, miss, hit;
    cr_assert_eq(tc_latency(a, TC_LAT_SET, &set), 0);
    cr_assert_eq(tc_latency(a, TC_LAT_DEL, &del), 0);
    cr_assert_eq(tc_latency(b, TC_LAT_GET_MISS, &miss), 0);
    cr_assert_eq(tc_latency(b, TC_LAT_GET_HIT, &hit), 0);
    cr_assert_eq(set.count, 10);
    cr_assert_eq(del.count, 1);
    cr_assert_geq(miss.count, 1);
    cr_assert_geq(hit.count, 5, "%llu sampled hits of 640", (unsigned long long)hit.count);
    uint64_t sum = 0;
    for (int i = 0; i < TC_LATENCY_BUCKETS; i++)
        sum += set.buckets[i];
    cr_assert_eq(sum, set.count, "buckets do not add up to the count");
    cr_assert_gt(set.sum_ns, 0);
    tc_latency_t inval;
    uint64_t deadline = tc_test_now_ms() + 2000;
    do {
        cr_assert_eq(tc_latency(b, TC_LAT_INVAL, &inval), 0);
    } while (inval.count == 0 && tc_test_now_ms() < deadline);
    cr_assert_gt(inval.count, 0, "no write-to-eviction time was measured");
    cr_assert_eq(tc_latency(a, TC_LAT_COUNT, &inval), TC_EINVAL);
    tc_close(b);
    tc_close(a);
    tc_test_redis_stop(r);
}

/* ---- the minimal ACL of docs/operations.md is enough ---- */

static int fixed_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)arg;
    (void)key;
    (void)klen;
    return tc_load_set_value(load, S("loaded"));
}

/* Exactly the ACL docs/operations.md ("Redis ACL") documents: every call works, nothing is
 * refused. */
Test(operable, minimal_acl_from_the_readme_is_enough) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    redisContext *rc = tc_test_redis_connect(r);
    cr_assert_not_null(rc);
    redisReply *rep = redisCommand(
        rc, "ACL SETUSER app on >pw ~tc:* &tc:inval +getrange +pttl +mget +evalsha +eval "
            "+script|load +ping +subscribe +get +set +del +publish +time +strlen +append "
            "+pexpire +xadd +xrange +xrevrange +zadd +zrange +zrangebyscore +zrandmember "
            "+zrem +scan");
    cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "ACL SETUSER failed");
    freeReplyObject(rep);
    redisFree(rc);
    char url[512];
    snprintf(url, sizeof url, "unix://%s?user=app&password=pw", tc_test_redis_socket_path(r));
    tc_config_t cfg;
    tc_test_config(&cfg, url, "tc:", "tc:inval");
    cfg.require_redis = 1;
    cfg.lock_ttl_ms = 300; /* a load long enough to need its lease extended */
    tc_cache_t *a = tc_test_open(&cfg), *b = tc_test_open(&cfg);
    cr_assert_eq(tc_set(a, S("k"), S("v"), 0), 0);
    cr_assert_geq(tc_test_wait_get(b, S("k"), S("v"), 2000), 0);
    cr_assert_eq(tc_del(a, S("k")), 0);
    cr_assert_geq(tc_test_wait_get(b, S("k"), NULL, 0, 2000), 0);
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_fetch(a, S("loaded"), fixed_loader, NULL, &ref), 0);
    tc_ref_release(ref);
    cr_assert_geq(tc_test_wait_get(b, S("loaded"), S("loaded"), 2000), 0);
    /* Every other call: tags, prefix, namespace, clear, bulk. */
    tc_buf_t tag = {"t", 1};
    tc_opts_t o = TC_OPTS_INIT;
    o.tags = &tag;
    o.tags_count = 1;
    cr_assert_eq(tc_set_opts(a, S("ns:x"), S("v"), &o), 0);
    size_t removed = 0;
    cr_assert_eq(tc_invalidate_tag(a, "t", 1, &removed), 0);
    cr_assert_eq(removed, 1u);
    cr_assert_eq(tc_invalidate_prefix(a, "ns:", 3, &removed), 0);
    cr_assert_eq(tc_invalidate_namespace(a, "ns", 2), 0);
    tc_item_t items[2] = {{"m1", 2, "1", 1}, {"m2", 2, "2", 1}};
    cr_assert_eq(tc_mset(a, items, 2, &o, NULL), 0);
    tc_buf_t keys[2] = {{"m1", 2}, {"m2", 2}};
    tc_ref_t *refs[2];
    int codes[2];
    cr_assert_eq(tc_mget(b, keys, 2, refs, codes), 0);
    cr_assert(codes[0] == 0 && codes[1] == 0);
    tc_ref_release(refs[0]);
    tc_ref_release(refs[1]);
    cr_assert_eq(tc_mdel(a, keys, 2, NULL), 0);
    cr_assert_eq(tc_clear(a), 0);
    tc_stats_t sa = stats(a), sb = stats(b);
    cr_assert_eq(sa.permission_errors + sb.permission_errors, 0, "something was refused");
    cr_assert_eq(sa.l2_errors + sb.l2_errors, 0);
    cr_assert_eq(sa.listener_connected, 1);
    tc_close(b);
    tc_close(a);
    tc_test_redis_stop(r);
}

/* The write strategies' writer for the ACL test: keeps a count, fails key "bad". */
typedef struct acl_writer {
    atomic_int written;
} acl_writer_t;

static int acl_writer(void *arg, tc_write_t *w, size_t n) {
    acl_writer_t *x = arg;
    for (size_t i = 0; i < n; i++) {
        if (w[i].klen == 3 && memcmp(w[i].key, "bad", 3) == 0)
            w[i].result = TC_ELOADER;
        else
            atomic_fetch_add(&x->written, 1);
    }
    return 0;
}

static int count_dead(void *arg, const tc_write_t *w, const char *error, unsigned attempts) {
    (void)w;
    (void)error;
    (void)attempts;
    ++*(int *)arg;
    return 0;
}

/* The default mode's ACL plus the write-behind additions docs/operations.md and
 * docs/write-strategies.md list: write-through, write-behind, its flusher, tc_flush, dead
 * letters and their replay all work, nothing is refused. */
Test(operable, minimal_acl_with_the_write_strategies_is_enough) {
    tc_test_redis_t *r = tc_test_redis_start(NULL);
    redisContext *rc = tc_test_redis_connect(r);
    cr_assert_not_null(rc);
    redisReply *rep = redisCommand(
        rc, "ACL SETUSER app on >pw ~tc:* &tc:inval +getrange +pttl +mget +evalsha +eval "
            "+script|load +ping +subscribe +get +set +del +publish +time +strlen +append "
            "+pexpire +xadd +xrange +xrevrange +zadd +zrange +zrangebyscore +zrandmember "
            "+zrem +scan +xlen +xreadgroup +xautoclaim +xack +xdel +xgroup|create");
    cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "ACL SETUSER failed");
    freeReplyObject(rep);
    redisFree(rc);
    char url[512];
    snprintf(url, sizeof url, "unix://%s?user=app&password=pw", tc_test_redis_socket_path(r));
    acl_writer_t x = {0};
    tc_config_t cfg;
    tc_test_config(&cfg, url, "tc:", "tc:inval");
    cfg.require_redis = 1;
    cfg.writer = acl_writer;
    cfg.writer_arg = &x;
    cfg.write_behind_delay_ms = 5;
    cfg.write_behind_attempts = 1;
    tc_cache_t *a = tc_test_open(&cfg);
    cr_assert_eq(tc_set_through(a, S("t1"), S("v"), NULL), 0);
    cr_assert_eq(tc_del_through(a, S("t1")), 0);
    cr_assert_eq(tc_set_behind(a, S("b1"), S("v"), NULL), 0);
    cr_assert_eq(tc_del_behind(a, S("b2")), 0);
    cr_assert_eq(tc_set_behind(a, S("bad"), S("v"), NULL), 0);
    cr_assert_eq(tc_flush(a, 5000 * TC_TEST_SLOW), 0);
    int dead = 0;
    cr_assert_eq(tc_dead_letters(a, 10, count_dead, &dead), 1);
    cr_assert_eq(dead, 1);
    cr_assert_eq(tc_dead_letters_replay(a), 1);
    cr_assert_eq(tc_flush(a, 5000 * TC_TEST_SLOW), 0);
    cr_assert_eq(atomic_load(&x.written), 4,
                 "through set, through del, behind set, behind del");
    tc_stats_t s = stats(a);
    cr_assert_eq(s.permission_errors, 0, "something was refused");
    cr_assert_eq(s.l2_errors, 0);
    tc_close(a);
    tc_test_redis_stop(r);
}
