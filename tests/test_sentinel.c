/* tc-test-labels: sentinel integration fault concurrency */
/*
 * test_sentinel.c - master discovery through Sentinel (src/sentinel.c) against a real
 * set-up (a master, a replica, three sentinels: tests/support/redis_sentinel.c): the
 * master is found and confirmed by its own ROLE; a dead sentinel is skipped; a forced
 * failover (SENTINEL FAILOVER) and a master killed with SIGKILL are both announced by
 * +switch-master, which parses to the new master, and discovery then finds the promoted
 * replica (recovery time printed); unknown names, unreachable sentinels and hostile
 * messages are refused with their cause. A cache opened on redis+sentinel:// follows the
 * master through a failover: its writes reach the promoted replica, another cache's
 * listener finds it too and flushes its L1 (the promotion may have lost writes) instead of
 * replaying, and reads the new value. Sentinels with a password of their own (requirepass)
 * are reached with ?sentinel_password=: without it the open fails naming NOAUTH and the
 * watch says it cannot subscribe; with it a failover is heard.
 */
#include "endpoint.h"
#include "errors.h"
#include "peer.h"
#include "redis_sentinel.h"
#include "sentinel.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static tc_test_sentinel_t *st;

static void setup(void) {
    st = tc_test_sentinel_start();
}

static void teardown(void) {
    tc_test_sentinel_stop(st);
    st = NULL;
}

TestSuite(sentinel, .init = setup, .fini = teardown, .timeout = 120);

static tc__sentinel_opts_t opts(const char *list, const char *name) {
    tc__sentinel_opts_t o = {.sentinels = list,
                             .master_name = name,
                             .connect_timeout_ms = 300,
                             .command_timeout_ms = 500};
    return o;
}

static int find(const char *list, const char *name, tc__sentinel_addr_t *a, tc_error_t *err) {
    tc__sentinel_opts_t o = opts(list, name);
    return tc__sentinel_find_master(&o, a, err);
}

Test(sentinel, finds_the_master_confirmed_by_its_role) {
    tc__sentinel_addr_t a;
    tc_error_t err;
    cr_assert_eq(find(tc_test_sentinel_addrs(st), TC_TEST_SENTINEL_MASTER, &a, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(a.port, tc_test_redis_port(tc_test_sentinel_master(st)));
    cr_assert_str_eq(a.host, "127.0.0.1");
}

Test(sentinel, a_dead_sentinel_is_skipped_and_named) {
    tc_test_redis_kill(tc_test_sentinel_node(st, 0));
    tc__sentinel_addr_t a;
    tc_error_t err;
    cr_assert_eq(find(tc_test_sentinel_addrs(st), TC_TEST_SENTINEL_MASTER, &a, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(a.port, tc_test_redis_port(tc_test_sentinel_master(st)));
    char one[64];
    snprintf(one, sizeof one, "127.0.0.1:%d", tc_test_redis_port(tc_test_sentinel_node(st, 0)));
    int rc = find(one, TC_TEST_SENTINEL_MASTER, &a, &err);
    cr_assert_eq(rc, TC_EUNAVAILABLE, "%s", tc_err_name(rc));
    cr_assert(strstr(err.msg, one), "the dead sentinel is not named: %s", err.msg);
}

Test(sentinel, unknown_names_and_bad_lists_are_refused_with_a_cause) {
    tc__sentinel_addr_t a;
    tc_error_t err;
    int rc = find(tc_test_sentinel_addrs(st), "nosuchmaster", &a, &err);
    cr_assert_eq(rc, TC_ENOTFOUND, "%s: %s", tc_err_name(rc), err.msg);
    cr_assert(strstr(err.msg, "nosuchmaster"), "%s", err.msg);
    cr_assert_eq(find("", "m", &a, &err), TC_ECONFIG);
    cr_assert_eq(find("127.0.0.1", "m", &a, &err), TC_ECONFIG);
    cr_assert_eq(find("127.0.0.1:0", "m", &a, &err), TC_ECONFIG);
    cr_assert_eq(find("127.0.0.1:1x", "m", &a, &err), TC_ECONFIG);
    cr_assert_eq(find(tc_test_sentinel_addrs(st), "", &a, &err), TC_ECONFIG);
    cr_assert_eq(find(tc_test_sentinel_addrs(st), "two words", &a, &err), TC_ECONFIG);
    cr_assert_eq(find(NULL, "m", &a, &err), TC_EINVAL);
    /* A server that is no sentinel answers with an error: said, and not taken. */
    char data[64];
    snprintf(data, sizeof data, "127.0.0.1:%d",
             tc_test_redis_port(tc_test_sentinel_master(st)));
    rc = find(data, TC_TEST_SENTINEL_MASTER, &a, &err);
    cr_assert_eq(rc, TC_EUNAVAILABLE, "%s", tc_err_name(rc));
    cr_assert(strstr(err.msg, data), "%s", err.msg);
}

Test(sentinel, switch_messages_parse_only_when_whole) {
    tc__sentinel_addr_t a;
    const char *ok = "tcmaster 127.0.0.1 6379 10.0.0.2 6380";
    cr_assert_eq(tc__sentinel_parse_switch(ok, strlen(ok), "tcmaster", &a), 0);
    cr_assert(a.port == 6380 && strcmp(a.host, "10.0.0.2") == 0);
    static const char *const bad[] = {"other 127.0.0.1 6379 10.0.0.2 6380",
                                      "tcmaster 127.0.0.1 6379 10.0.0.2",
                                      "tcmaster 127.0.0.1 6379 10.0.0.2 0",
                                      "tcmaster 127.0.0.1 6379 10.0.0.2 65536",
                                      "tcmaster 127.0.0.1 6379 10.0.0.2 63x",
                                      "tcmaster a b c d e",
                                      ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(tc__sentinel_parse_switch(bad[i], strlen(bad[i]), "tcmaster", &a), -1,
                     "%s", bad[i]);
    cr_assert_eq(tc__sentinel_parse_switch("tcmaster a 1\0 b 2", 17, "tcmaster", &a), -1);
    cr_assert_eq(tc__sentinel_parse_switch(NULL, 0, "tcmaster", &a), -1);
}

/* SENTINEL FAILOVER on sentinel 0: promote the replica now, with the master alive. */
static void force_failover(void) {
    redisContext *c = tc_test_redis_connect(tc_test_sentinel_node(st, 0));
    redisReply *r = redisCommand(c, "SENTINEL FAILOVER %s", TC_TEST_SENTINEL_MASTER);
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "SENTINEL FAILOVER: %s",
              r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    freeReplyObject(r);
    redisFree(c);
}

/* Until some sentinel has a client subscribed to +switch-master (a cache's watch: it must
 * be listening before a failover is forced, or the switch it should hear comes first). */
static void wait_watch_subscribed(void) {
    uint64_t t0 = tc_test_now_ms();
    for (;;) {
        for (int i = 0; i < 3; i++) {
            redisContext *c = tc_test_redis_connect(tc_test_sentinel_node(st, i));
            redisReply *r = c ? redisCommand(c, "CLIENT LIST") : NULL;
            int subscribed = 0; /* a line with " sub=N", N > 0 */
            for (const char *p = r && r->type == REDIS_REPLY_STRING ? r->str : "";
                 (p = strstr(p, " sub=")) != NULL; p += 5)
                subscribed |= atoi(p + 5) > 0;
            freeReplyObject(r);
            if (c)
                redisFree(c);
            if (subscribed)
                return;
        }
        cr_assert_lt(tc_test_now_ms() - t0, 5000u * TC_TEST_SLOW,
                     "no sentinel has a +switch-master subscriber");
        tc_test_sleep_ms(20);
    }
}

/* Subscribe to +switch-master on sentinel i (a connection the caller reads from). */
static redisContext *watch_switch(int i) {
    redisContext *c = tc_test_redis_connect(tc_test_sentinel_node(st, i));
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "SUBSCRIBE +switch-master");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    struct timeval tv = {20, 0};
    redisSetTimeout(c, tv);
    return c;
}

/* Wait for the announcement and check it names the replica; then discovery must find it. */
static void expect_promoted(redisContext *watch, uint64_t since, const char *how) {
    void *raw = NULL;
    cr_assert_eq(redisGetReply(watch, &raw), REDIS_OK, "%s: no +switch-master in 20 s", how);
    redisReply *m = raw;
    cr_assert(m->type == REDIS_REPLY_ARRAY && m->elements == 3);
    tc__sentinel_addr_t sw;
    cr_assert_eq(tc__sentinel_parse_switch(m->element[2]->str, m->element[2]->len,
                                           TC_TEST_SENTINEL_MASTER, &sw),
                 0, "%s", m->element[2]->str);
    int replica = tc_test_redis_port(tc_test_sentinel_replica(st));
    cr_assert_eq(sw.port, replica, "%s: announced %d, the replica is %d", how, sw.port,
                 replica);
    freeReplyObject(m);
    uint64_t announced = tc_test_now_ms();
    tc__sentinel_addr_t a = {{0}, 0};
    tc_error_t err;
    int rc = -1;
    while (tc_test_now_ms() - announced < 10000 &&
           (rc = find(tc_test_sentinel_addrs(st), TC_TEST_SENTINEL_MASTER, &a, &err)) != 0)
        usleep(50000);
    cr_assert_eq(rc, 0, "%s: %s", how, err.msg);
    cr_assert_eq(a.port, replica, "%s: discovery found %d", how, a.port);
    fprintf(stderr, "sentinel %s: announced after %llu ms, discovered after %llu ms\n", how,
            (unsigned long long)(announced - since),
            (unsigned long long)(tc_test_now_ms() - since));
}

Test(sentinel, a_forced_failover_is_announced_and_discovered) {
    redisContext *watch = watch_switch(1);
    uint64_t t0 = tc_test_now_ms();
    force_failover();
    expect_promoted(watch, t0, "SENTINEL FAILOVER");
    redisFree(watch);
}

Test(sentinel, a_killed_master_is_replaced_and_discovered) {
    redisContext *watch = watch_switch(2);
    uint64_t t0 = tc_test_now_ms();
    tc_test_redis_kill(tc_test_sentinel_master(st));
    expect_promoted(watch, t0, "kill -9 of the master");
    redisFree(watch);
}

#define S(x) x, (sizeof(x) - 1)

static tc_cache_t *open_sentinel_cache(uint32_t ping_ms) {
    char url[256];
    snprintf(url, sizeof url, "redis+sentinel://%s/%s", tc_test_sentinel_addrs(st),
             TC_TEST_SENTINEL_MASTER);
    tc_config_t cfg;
    tc_test_config(&cfg, url, "t:sen:", "t:sen:inval");
    cfg.connect_timeout_ms = 300;
    cfg.command_timeout_ms = 500;
    cfg.breaker_cooldown_ms = 200;
    cfg.listener_ping_ms = ping_ms;
    tc_cache_t *c = tc_test_open(&cfg);
    cr_assert(tc_test_wait_listener(c, 1, 5000), "the listener never subscribed");
    return c;
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

Test(sentinel, a_cache_follows_the_master_through_a_failover) {
    /* B's watchdog bound (2 x 5 s) outlasts the failover, so only the change of server
     * can be what flushes its L1: a replay would keep it. */
    tc_cache_t *a = open_sentinel_cache(100), *b = open_sentinel_cache(5000);
    cr_assert_eq(tc_set(a, S("k"), S("v1"), 60000), 0);
    cr_assert_geq(tc_test_wait_get(b, S("k"), S("v1"), 2000), 0);
    cr_assert_geq(tc_test_wait_get(b, S("k"), S("v1"), 2000), 0);
    cr_assert_geq(stats(b).l1_hits, 1, "B did not keep v1 in L1");
    /* v1 and its log entry reach the replica first: then a replay on the promoted replica
     * would succeed, and only the change of server can be what flushes B's L1. */
    redisContext *m = tc_test_redis_connect(tc_test_sentinel_master(st));
    redisReply *w = redisCommand(m, "WAIT 1 5000");
    cr_assert(w && w->type == REDIS_REPLY_INTEGER && w->integer == 1, "the replica lags");
    freeReplyObject(w);
    redisFree(m);
    uint64_t flushes = stats(b).l1_flushes, t0 = tc_test_now_ms();
    tc_test_redis_kill(tc_test_sentinel_master(st));
    int rc = -1;
    while (tc_test_now_ms() - t0 < 20000 && (rc = tc_set(a, S("k"), S("v2"), 60000)) != 0)
        usleep(50000);
    cr_assert_eq(rc, 0, "A's writes never reached a master again: %s", tc_err_name(rc));
    uint64_t written = tc_test_now_ms();
    cr_assert_geq(tc_test_wait_get(b, S("k"), S("v2"), 10000), 0, "B never read v2");
    fprintf(stderr,
            "sentinel cache: writes failed for %llu ms after kill -9 of the master; B read the "
            "new value %llu ms after it was written\n",
            (unsigned long long)(written - t0),
            (unsigned long long)(tc_test_now_ms() - written));
    cr_assert_gt(stats(b).l1_flushes, flushes,
                 "B's listener reached the new master without flushing L1");
    char direct[64];
    snprintf(direct, sizeof direct, "127.0.0.1:%d",
             tc_test_redis_port(tc_test_sentinel_replica(st)));
    redisContext *c = tc_test_redis_connect(tc_test_sentinel_replica(st));
    redisReply *r = redisCommand(c, "ROLE");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && strcmp(r->element[0]->str, "master") == 0,
              "%s is not the master", direct);
    freeReplyObject(r);
    redisFree(c);
    tc_close(b);
    tc_close(a);
}

/* What the cache logged about the failover. */
typedef struct switch_log {
    pthread_mutex_t mu;
    int seen;
} switch_log_t;

static void on_log(void *arg, int level, const char *msg, const void *key, size_t klen) {
    switch_log_t *l = arg;
    (void)level;
    (void)key;
    (void)klen;
    if (strstr(msg, "failed over to")) {
        pthread_mutex_lock(&l->mu);
        l->seen = 1;
        pthread_mutex_unlock(&l->mu);
    }
}

static int switch_seen(switch_log_t *l) {
    pthread_mutex_lock(&l->mu);
    int seen = l->seen;
    pthread_mutex_unlock(&l->mu);
    return seen;
}

/* Once the cache's watch is subscribed, force a failover and wait until the cache logs it
 * followed: the milliseconds from the failover to that. */
static uint64_t failover_heard(switch_log_t *log) {
    wait_watch_subscribed();
    uint64_t t0 = tc_test_now_ms();
    force_failover();
    while (!switch_seen(log) && tc_test_now_ms() - t0 < 15000u * TC_TEST_SLOW)
        usleep(20000);
    cr_assert(switch_seen(log), "the cache never heard of the failover (is its watch "
                                "subscribed, its sentinel password right?)");
    return tc_test_now_ms() - t0;
}

/* SENTINEL FAILOVER demotes a live master, which keeps taking writes until Sentinel
 * converts it (about 8 s later) and then drops them in its resync. The cache follows
 * +switch-master: once it has logged the switch, every write it acknowledges is on the
 * promoted master. */
Test(sentinel, a_cache_follows_a_forced_failover) {
    char url[256];
    snprintf(url, sizeof url, "redis+sentinel://%s/%s", tc_test_sentinel_addrs(st),
             TC_TEST_SENTINEL_MASTER);
    switch_log_t log = {PTHREAD_MUTEX_INITIALIZER, 0};
    tc_config_t cfg;
    tc_test_config(&cfg, url, "t:sen:", "t:sen:inval");
    cfg.connect_timeout_ms = 300;
    cfg.command_timeout_ms = 500;
    cfg.log_fn = on_log;
    cfg.log_arg = &log;
    tc_cache_t *a = tc_test_open(&cfg);
    cr_assert_eq(tc_set(a, S("k"), S("v1"), 60000), 0);
    uint64_t t0 = tc_test_now_ms(), heard = t0 + failover_heard(&log);
    redisContext *c = tc_test_redis_connect(tc_test_sentinel_replica(st));
    int acked = 0;
    for (int i = 0; i < 20; i++) {
        char val[16];
        int n = snprintf(val, sizeof val, "v2-%d", i);
        if (tc_set(a, S("k"), val, (size_t)n, 60000) != 0) {
            usleep(50000);
            continue;
        }
        acked++;
        redisReply *r = redisCommand(c, "GETRANGE t:sen:k:k 20 -1");
        cr_assert(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, val) == 0,
                  "write %d was acknowledged but is not on the promoted master", i);
        freeReplyObject(r);
    }
    redisFree(c);
    cr_assert_gt(acked, 0, "no write succeeded after the failover");
    tc_stats_t sst;
    cr_assert_eq(tc_stats(a, &sst), 0);
    cr_assert_eq(sst.master_switches, 1);
    fprintf(stderr,
            "sentinel cache: forced failover heard after %llu ms; %d of 20 writes after it "
            "acknowledged, all on the promoted master\n",
            (unsigned long long)(heard - t0), acked);
    tc_close(a);
}

Test(sentinel, a_sentinel_url_with_an_unknown_name_fails_to_open_with_the_cause) {
    char url[256];
    snprintf(url, sizeof url, "redis+sentinel://%s/nosuchmaster", tc_test_sentinel_addrs(st));
    tc_config_t cfg;
    tc_test_config(&cfg, url, "t:sen:", "t:sen:inval");
    tc_cache_t *c = NULL;
    tc_error_t err;
    int rc = tc_open(&cfg, &c, &err);
    if (rc == 0) { /* a degraded open: the cause is in the first call's error */
        cr_assert_neq(tc_set(c, S("k"), S("v"), 0), 0);
        cr_assert(tc_last_error(&err));
        tc_close(c);
    }
    cr_assert(strstr(err.msg, "nosuchmaster"), "%s", err.msg);
}

/* A connection that reaches a replica (a demoted master) is dropped on READONLY, and the
 * call says why, instead of failing as a plain refusal on the same connection for good. */
Test(sentinel, a_write_answered_readonly_drops_its_connection_and_says_so) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(tc_test_sentinel_replica(st)),
                   "t:ro:", "t:ro:inval");
    cfg.breaker_threshold = 100; /* every call reaches Redis */
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &c, &err), 0, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        int rc = tc_set(c, S("k"), S("v"), 0);
        cr_assert_eq(rc, TC_EUNAVAILABLE, "write %d to a replica: %s", i, tc_err_name(rc));
        cr_assert(tc_last_error(&err));
        cr_assert(strstr(err.msg, "READONLY") && strstr(err.msg, "replica"), "%s", err.msg);
    }
    tc_close(c);
}

/* ---- sentinels with a password of their own ---- */

#define SENTINEL_PW "s3nt!n@l pw" /* needs percent-escapes in a URL */

/* Whether the watch said no sentinel took its subscription, naming the refusal. */
static atomic_int watch_refused;

static void keep_watch_log(void *arg, int level, const char *msg, const void *key,
                           size_t klen) {
    (void)arg, (void)level, (void)key, (void)klen;
    if (strstr(msg, "Sentinel watch: no sentinel took") &&
        (strstr(msg, "NOAUTH") || strstr(msg, "uthentication")))
        atomic_store(&watch_refused, 1);
}

static int watch_said(void) {
    return atomic_load(&watch_refused);
}

static void setup_auth(void) {
    st = tc_test_sentinel_start_auth(SENTINEL_PW);
}

TestSuite(sentinel_auth, .init = setup_auth, .fini = teardown, .timeout = 120);

/* Sentinels that require a password (requirepass, as managed set-ups have) are reached with
 * ?sentinel_password=: the master is found, and the watch's subscription is accepted, so a
 * forced failover is heard; without it the open fails naming the refusal. */
Test(sentinel_auth, a_cache_reaches_sentinels_that_require_a_password) {
    char url[512];
    /* Without the sentinels' password: refused, and the message names why. */
    snprintf(url, sizeof url, "redis+sentinel://%s/%s", tc_test_sentinel_addrs(st),
             TC_TEST_SENTINEL_MASTER);
    tc_config_t cfg;
    tc_test_config(&cfg, url, "t:sena:", "t:sena:inval");
    cfg.connect_timeout_ms = 300;
    cfg.command_timeout_ms = 500;
    cfg.require_redis = 1;
    tc_cache_t *c = NULL;
    tc_error_t err = {0};
    cr_assert_neq(tc_open(&cfg, &c, &err), 0, "sentinels with a password let us in without");
    cr_assert(strstr(err.msg, "NOAUTH") || strstr(err.msg, "uthentication"), "%s", err.msg);
    /* A wrong one: refused, and the message does not quote it. */
    char wrong[600];
    snprintf(wrong, sizeof wrong, "%s?sentinel_password=wr0ngS3cret", url);
    cfg.redis_url = wrong;
    cr_assert_neq(tc_open(&cfg, &c, &err), 0, "a wrong sentinel password let us in");
    cr_assert(strstr(err.msg, "WRONGPASS") || strstr(err.msg, "invalid"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "wr0ngS3cret"), "a message quotes the password: %s",
                   err.msg);
    cfg.redis_url = url;
    /* Opened degraded instead, the watch says it cannot subscribe, and why. */
    cfg.require_redis = 0;
    cfg.log_fn = keep_watch_log;
    cfg.log_arg = NULL;
    cr_assert_eq(tc_open(&cfg, &c, &err), 0, "%s", err.msg);
    uint64_t w0 = tc_test_now_ms();
    while (!watch_said() && tc_test_now_ms() - w0 < 10000u * TC_TEST_SLOW)
        usleep(20000);
    cr_assert(watch_said(), "the watch never said its subscription was refused");
    tc_close(c);

    /* With it (percent-escaped in the query): found, and failovers are heard. */
    snprintf(url, sizeof url, "redis+sentinel://%s/%s?sentinel_password=s3nt%%21n%%40l%%20pw",
             tc_test_sentinel_addrs(st), TC_TEST_SENTINEL_MASTER);
    switch_log_t log = {PTHREAD_MUTEX_INITIALIZER, 0};
    tc_test_config(&cfg, url, "t:sena:", "t:sena:inval");
    cfg.connect_timeout_ms = 300;
    cfg.command_timeout_ms = 500;
    cfg.require_redis = 1;
    cfg.log_fn = on_log;
    cfg.log_arg = &log;
    c = tc_test_open(&cfg);
    cr_assert_eq(tc_set(c, S("k"), S("v1"), 60000), 0);
    tc_test_expect_value(c, S("k"), "v1", "this process");
    failover_heard(&log);
    tc_stats_t sst;
    cr_assert_eq(tc_stats(c, &sst), 0);
    cr_assert_eq(sst.master_switches, 1);
    tc_close(c);
}

/* The query's parameters are checked like the rest of the URL. */
Test(sentinel_url, sentinel_credentials_in_the_url_are_checked) {
    static const char *const bad[] = {
        "redis+sentinel://127.0.0.1:1/m?sentinel_user=u",       /* user without password */
        "redis+sentinel://127.0.0.1:1/m?sentinel_password=",    /* empty */
        "redis+sentinel://127.0.0.1:1/m?password=x",            /* not a sentinel parameter */
        "redis+sentinel://127.0.0.1:1/m?sentinel_password=a%0", /* bad escape */
        "redis+sentinel://127.0.0.1:1/m?sentinel_password=a&sentinel_password=b", /* twice */
        "redis+sentinel://127.0.0.1:1/m#frag",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tc_config_t cfg;
        tc_test_config(&cfg, bad[i], "t:sena:", "t:sena:inval");
        tc_cache_t *c = NULL;
        tc_error_t err = {0};
        cr_assert_eq(tc_open(&cfg, &c, &err), TC_ECONFIG, "accepted: %s", bad[i]);
        cr_assert_null(c);
        cr_assert(strncmp(err.msg, "redis_url: ", 11) == 0, "%s", err.msg);
    }
    /* An '@' in the query is not the userinfo's; a database and credentials go together. */
    tc__endpoint_t ep;
    tc_error_t err = {0};
    cr_assert_eq(tc__endpoint_parse("redis+sentinel://u:p@127.0.0.1:5,127.0.0.1:6/m/2"
                                    "?sentinel_user=su&sentinel_password=a@b",
                                    &ep, &err),
                 0, "%s", err.msg);
    cr_assert_str_eq(ep.user, "u");
    cr_assert_str_eq(ep.password, "p");
    cr_assert_str_eq(ep.sentinel_user, "su");
    cr_assert_str_eq(ep.sentinel_password, "a@b");
    cr_assert_eq(ep.db, 2);
    cr_assert_str_eq(ep.master_name, "m");
    tc__endpoint_deinit(&ep);
    /* A '?' (or '@') in the master's password is still the userinfo's, as before queries. */
    cr_assert_eq(tc__endpoint_parse("redis+sentinel://u:p?w@x@127.0.0.1:5/m", &ep, &err), 0,
                 "%s", err.msg);
    cr_assert_str_eq(ep.password, "p?w@x");
    cr_assert_str_eq(ep.sentinels, "127.0.0.1:5");
    cr_assert_null(ep.sentinel_password);
    tc__endpoint_deinit(&ep);
}
