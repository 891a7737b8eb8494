/*
 * test_l2.c - the Redis tier against a real, private redis-server.
 *
 * Covers what the rest of tiercache relies on: binary-safe round trips, the stored value
 * and the published invalidation carrying the same Redis-assigned version, versions that
 * only go up, ADD that never overwrites, auth and SELECT, and the fault behaviour: a
 * stopped Redis costs one timeout per call until the breaker opens, then nothing until
 * a probe finds it back; a restarted Redis is picked up on the next call even though every
 * pooled socket died and the script cache is empty.
 */
/* tc-test-labels: integration fault */
#include "config.h"
#include "errors.h"
#include "l2.h"
#include "msg.h"
#include "redis_server.h"
#include "valfmt.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const unsigned char ORIGIN[16] = "0123456789abcdef";
#define PREFIX  "t:"
#define CHANNEL "t:inval"

typedef struct fx {
    tc_test_redis_t *r;
    tc__endpoint_t ep;
    tc__l2_t *l2;
} fx_t;

typedef struct l2_params {
    unsigned pool;
    uint32_t cmd_ms;
    unsigned threshold;
    uint32_t cooldown_ms;
} l2_params_t;

static const l2_params_t DEFAULTS = {4, 2000, 5, 1000};

static void fx_open_url(fx_t *f, const char *url, const l2_params_t *p) {
    tc_error_t err = {0};
    cr_assert_eq(tc__endpoint_parse(url, &f->ep, &err), 0, "%s: %s", url, err.msg);
    tc__l2_opts_t o = {.endpoint = &f->ep,
                       .key_prefix = PREFIX,
                       .channel = CHANNEL,
                       .pool_size = p->pool,
                       .connect_timeout_ms = 1000,
                       .command_timeout_ms = p->cmd_ms,
                       .breaker_threshold = p->threshold,
                       .breaker_cooldown_ms = p->cooldown_ms};
    memcpy(o.origin, ORIGIN, 16);
    cr_assert_eq(tc__l2_open(&o, &f->l2, &err), 0, "%s", err.msg);
}

static void fx_open(fx_t *f, const tc_test_redis_opts_t *ro, const l2_params_t *p) {
    f->r = tc_test_redis_start(ro);
    fx_open_url(f, tc_test_redis_url(f->r), p ? p : &DEFAULTS);
}

static void fx_close(fx_t *f) {
    tc__l2_close(f->l2);
    tc__endpoint_deinit(&f->ep);
    tc_test_redis_stop(f->r);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Raw string stored under the data key, straight from Redis. Caller frees the reply. */
static redisReply *raw_get(fx_t *f, redisContext *c, const void *key, size_t klen) {
    (void)f;
    char dkey[256];
    memcpy(dkey, PREFIX "k:", 4);
    memcpy(dkey + 4, key, klen);
    redisReply *r = redisCommand(c, "GET %b", dkey, 4 + klen);
    cr_assert_not_null(r);
    return r;
}

static void expect_value(fx_t *f, const void *key, size_t klen, const void *val, size_t vlen,
                         uint64_t version) {
    tc__l2_value_t v;
    int rc = tc__l2_get(f->l2, key, klen, &v);
    cr_assert_eq(rc, 0, "get: %s", tc_err_name(rc));
    cr_assert_eq(v.val.len, vlen);
    cr_assert(vlen == 0 || memcmp(v.val.data, val, vlen) == 0, "payload differs");
    cr_assert_eq(v.val.version, version);
    tc__l2_value_release(&v);
    cr_assert_null(v.reply_);
}

static void roundtrip(const tc_test_redis_opts_t *ro) {
    fx_t f;
    fx_open(&f, ro, NULL);
    static const struct {
        const char *k;
        size_t kl;
        const char *v;
        size_t vl;
    } cases[] = {
        {"plain", 5, "value", 5},
        {"nul\0key", 7, "v\0with\0nuls", 11},
        {"crlf\r\nkey", 9, "*1\r\n$4\r\nPING\r\n", 14},
        {" spaces in key ", 15, "  ", 2},
        {"\xff\xfe", 2, "", 0},
    };
    uint64_t last = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t ver = 0;
        int rc =
            tc__l2_set(f.l2, cases[i].k, cases[i].kl, cases[i].v, cases[i].vl, 60000, &ver);
        cr_assert_eq(rc, 0, "set %zu: %s", i, tc_err_name(rc));
        cr_assert_gt(ver, last, "versions must increase");
        last = ver;
        expect_value(&f, cases[i].k, cases[i].kl, cases[i].v, cases[i].vl, ver);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t ver = 0;
        cr_assert_eq(tc__l2_del(f.l2, cases[i].k, cases[i].kl, &ver), 0);
        cr_assert_gt(ver, last);
        last = ver;
        tc__l2_value_t v;
        cr_assert_eq(tc__l2_get(f.l2, cases[i].k, cases[i].kl, &v), TC_ENOTFOUND);
        cr_assert_null(v.reply_);
    }
    tc__l2_counters_t c;
    tc__l2_counters(f.l2, &c);
    cr_assert_eq(c.published, 10);
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.breaker_state, 0);
    fx_close(&f);
}

Test(l2, binary_roundtrip_unix) {
    roundtrip(NULL);
}

Test(l2, binary_roundtrip_tcp) {
    tc_test_redis_opts_t o = {.tcp = 1};
    roundtrip(&o);
}

Test(l2, one_mib_value) {
    fx_t f;
    fx_open(&f, NULL, NULL);
    size_t n = 1u << 20;
    unsigned char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i * 2654435761u >> 13);
    uint64_t ver;
    cr_assert_eq(tc__l2_set(f.l2, "big", 3, big, n, 60000, &ver), 0);
    expect_value(&f, "big", 3, big, n, ver);
    free(big);
    fx_close(&f);
}

Test(l2, pttl_within_ttl_and_zero_means_no_expiry) {
    fx_t f;
    fx_open(&f, NULL, NULL);
    tc__l2_value_t v;
    cr_assert_eq(tc__l2_set(f.l2, "ttl", 3, "x", 1, 5000, NULL), 0);
    cr_assert_eq(tc__l2_get(f.l2, "ttl", 3, &v), 0);
    cr_assert(v.pttl_ms > 0 && v.pttl_ms <= 5000, "pttl %lld", (long long)v.pttl_ms);
    tc__l2_value_release(&v);
    cr_assert_eq(tc__l2_set(f.l2, "forever", 7, "x", 1, 0, NULL), 0);
    cr_assert_eq(tc__l2_get(f.l2, "forever", 7, &v), 0);
    cr_assert_eq(v.pttl_ms, -1);
    tc__l2_value_release(&v);
    cr_assert_eq(tc__l2_set(f.l2, "short", 5, "x", 1, 30, NULL), 0);
    sleep_ms(80);
    cr_assert_eq(tc__l2_get(f.l2, "short", 5, &v), TC_ENOTFOUND, "Redis TTL not applied");
    fx_close(&f);
}

Test(l2, stored_string_is_valfmt_with_the_returned_version) {
    fx_t f;
    fx_open(&f, NULL, NULL);
    uint64_t ver;
    cr_assert_eq(tc__l2_set(f.l2, "k\0x", 3, "pay\0load", 8, 60000, &ver), 0);
    redisContext *c = tc_test_redis_connect(f.r);
    redisReply *r = raw_get(&f, c, "k\0x", 3);
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    cr_assert_eq(r->len, TC__VAL_HDR_LEN + 8);
    tc__val_t v;
    cr_assert_eq(tc__val_decode(r->str, r->len, &v), 0);
    cr_assert_eq(v.version, ver);
    /* The script stores the key's own expiry (Redis's clock: this host's here) and says so. */
    cr_assert_eq(v.flags, TC__VAL_FLAG_BOUNDED | TC__VAL_FLAG_KEY_EXPIRY, "flags 0x%02x",
                 v.flags);
    cr_assert_eq(v.logical_expiry_ms, 0, "no fresh end was given");
    uint64_t now = (uint64_t)time(NULL) * 1000u;
    cr_assert(v.expires_by_ms > now + 55000 && v.expires_by_ms < now + 62000,
              "expires by %llu, now %llu, ttl 60 s", (unsigned long long)v.expires_by_ms,
              (unsigned long long)now);
    cr_assert_eq(memcmp(v.data, "pay\0load", 8), 0);
    freeReplyObject(r);
    r = redisCommand(c, "GET %s", PREFIX "v");
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    cr_assert_eq(strtoull(r->str, NULL, 10), ver, "version counter key");
    freeReplyObject(r);
    redisFree(c);
    fx_close(&f);
}

static redisContext *subscribe(fx_t *f) {
    redisContext *s = tc_test_redis_connect(f->r);
    cr_assert_not_null(s);
    struct timeval tv = {2, 0};
    redisSetTimeout(s, tv);
    redisReply *r = redisCommand(s, "SUBSCRIBE %s", CHANNEL);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    return s;
}

static void expect_message(redisContext *s, unsigned op, uint64_t ver, const void *key,
                           size_t klen) {
    redisReply *r = NULL;
    cr_assert_eq(redisGetReply(s, (void **)&r), REDIS_OK, "no message: %s", s->errstr);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    cr_assert_str_eq(r->element[0]->str, "message");
    tc__msg_t m;
    cr_assert_eq(tc__msg_decode(r->element[2]->str, r->element[2]->len, &m), 0);
    cr_assert_eq(m.op, op);
    cr_assert_eq(m.version, ver);
    cr_assert_eq(memcmp(m.origin, ORIGIN, 16), 0);
    cr_assert_eq(m.klen, klen);
    cr_assert_eq(memcmp(m.key, key, klen), 0);
    freeReplyObject(r);
}

Test(l2, set_and_del_publish_the_same_version) {
    fx_t f;
    fx_open(&f, NULL, NULL);
    redisContext *s = subscribe(&f);
    uint64_t v1, v2, v3;
    cr_assert_eq(tc__l2_set(f.l2, "a\r\nb", 4, "1", 1, 60000, &v1), 0);
    cr_assert_eq(tc__l2_set(f.l2, "a\r\nb", 4, "2", 1, 60000, &v2), 0);
    cr_assert_eq(tc__l2_del(f.l2, "a\r\nb", 4, &v3), 0);
    cr_assert(v1 < v2 && v2 < v3);
    expect_message(s, TC__MSG_OP_WRITE, v1, "a\r\nb", 4);
    expect_message(s, TC__MSG_OP_WRITE, v2, "a\r\nb", 4);
    expect_message(s, TC__MSG_OP_DELETE, v3, "a\r\nb", 4);
    redisFree(s);
    fx_close(&f);
}

Test(l2, add_stores_only_when_absent_and_does_not_publish) {
    fx_t f;
    fx_open(&f, NULL, NULL);
    uint64_t ver = 0, ver2 = 0;
    tc__l2_value_t ex;
    cr_assert_eq(tc__l2_add(f.l2, "ak", 2, "first", 5, 60000, &ver, &ex), 0);
    cr_assert_gt(ver, 0);
    cr_assert_null(ex.reply_);
    expect_value(&f, "ak", 2, "first", 5, ver);

    cr_assert_eq(tc__l2_add(f.l2, "ak", 2, "second", 6, 60000, &ver2, &ex), 1);
    cr_assert_eq(ex.val.len, 5);
    cr_assert_eq(memcmp(ex.val.data, "first", 5), 0);
    cr_assert_eq(ex.val.version, ver);
    cr_assert(ex.pttl_ms > 0 && ex.pttl_ms <= 60000);
    tc__l2_value_release(&ex);
    cr_assert_eq(tc__l2_add(f.l2, "ak", 2, "third", 5, 60000, NULL, NULL), 1);
    expect_value(&f, "ak", 2, "first", 5, ver);

    tc__l2_counters_t c;
    tc__l2_counters(f.l2, &c);
    cr_assert_eq(c.published, 0, "ADD must not publish");
    fx_close(&f);
}

Test(l2, foreign_and_wrongtype_data) {
    fx_t f;
    l2_params_t p = {2, 2000, 1, 60000}; /* one transport failure would open it */
    fx_open(&f, NULL, &p);
    redisContext *c = tc_test_redis_connect(f.r);
    freeReplyObject(redisCommand(c, "SET %s %s", PREFIX "k:foreign", "hello"));
    freeReplyObject(redisCommand(c, "LPUSH %s %s", PREFIX "k:list", "x"));
    redisFree(c);
    tc__l2_value_t v;
    cr_assert_eq(tc__l2_get(f.l2, "foreign", 7, &v), TC_EPROTO);
    cr_assert_null(v.reply_);
    cr_assert_eq(tc__l2_get(f.l2, "list", 4, &v), TC_EREDIS);
    /* A fill treats what is not a tiercache value as absent and replaces it. */
    uint64_t ver = 0;
    cr_assert_eq(tc__l2_add(f.l2, "foreign", 7, "x", 1, 1000, &ver, &v), TC__L2_DONE);
    expect_value(&f, "foreign", 7, "x", 1, ver);
    cr_assert_eq(tc__l2_add(f.l2, "list", 4, "y", 1, 1000, &ver, &v), TC__L2_DONE);
    expect_value(&f, "list", 4, "y", 1, ver);
    cr_assert_eq(tc__l2_set(f.l2, "list", 4, "x", 1, 1000, NULL), 0, "SET replaces any type");
    tc__l2_counters_t k;
    tc__l2_counters(f.l2, &k);
    cr_assert_eq(k.opens, 0, "Redis error replies must not trip the breaker");
    cr_assert_eq(k.errors, 2);
    cr_assert(tc__l2_available(f.l2));
    fx_close(&f);
}

Test(l2, bad_arguments_are_refused_without_io) {
    fx_t f;
    fx_open(&f, NULL, NULL);
    tc__l2_value_t v;
    uint64_t ver;
    char *huge = calloc(1, TC_MAX_KEY_LEN + 1);
    cr_assert_eq(tc__l2_get(NULL, "k", 1, &v), TC_EINVAL);
    cr_assert_eq(tc__l2_get(f.l2, "k", 0, &v), TC_EKEYLEN);
    cr_assert_eq(tc__l2_get(f.l2, NULL, 1, &v), TC_EINVAL);
    cr_assert_eq(tc__l2_get(f.l2, "k", 1, NULL), TC_EINVAL);
    cr_assert_eq(tc__l2_set(f.l2, huge, TC_MAX_KEY_LEN + 1, "v", 1, 0, &ver), TC_EKEYLEN);
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, NULL, 5, 0, &ver), TC_EINVAL);
    cr_assert_eq(tc__l2_del(f.l2, NULL, 0, &ver), TC_EKEYLEN);
    cr_assert_eq(tc__l2_add(f.l2, "k", 1, NULL, 1, 0, &ver, &v), TC_EINVAL);
    cr_assert_eq(tc__l2_ping(NULL, NULL), TC_EINVAL);
    tc__l2_value_release(NULL);
    tc__l2_close(NULL);
    /* The longest legal key works (it does not fit the stack scratch buffer). */
    memset(huge, 'K', TC_MAX_KEY_LEN);
    cr_assert_eq(tc__l2_set(f.l2, huge, TC_MAX_KEY_LEN, "v", 1, 60000, &ver), 0);
    expect_value(&f, huge, TC_MAX_KEY_LEN, "v", 1, ver);
    cr_assert_eq(tc__l2_del(f.l2, huge, TC_MAX_KEY_LEN, &ver), 0);
    free(huge);
    fx_close(&f);
}

Test(l2, password_auth) {
    fx_t f;
    tc_test_redis_opts_t o = {.password = "p@ss word"};
    fx_open(&f, &o, NULL);
    tc_error_t err = {0};
    cr_assert_eq(tc__l2_ping(f.l2, &err), 0, "%s", err.msg);
    uint64_t ver;
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "v", 1, 60000, &ver), 0);
    expect_value(&f, "k", 1, "v", 1, ver);
    fx_close(&f);
}

Test(l2, acl_user_auth_tcp) {
    fx_t f;
    tc_test_redis_opts_t o = {.tcp = 1, .password = "pw", .acl_user = "cacheuser"};
    fx_open(&f, &o, NULL);
    tc_error_t err = {0};
    cr_assert_eq(tc__l2_ping(f.l2, &err), 0, "%s", err.msg);
    uint64_t ver;
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "v", 1, 60000, &ver), 0);
    expect_value(&f, "k", 1, "v", 1, ver);
    fx_close(&f);
}

Test(l2, wrong_password_is_a_redis_error) {
    tc_test_redis_opts_t o = {.password = "right"};
    tc_test_redis_t *r = tc_test_redis_start(&o);
    char url[512];
    snprintf(url, sizeof url, "unix://%s?password=wrong", tc_test_redis_socket_path(r));
    fx_t f = {.r = r};
    fx_open_url(&f, url, &DEFAULTS);
    tc_error_t err = {0};
    cr_assert_eq(tc__l2_ping(f.l2, &err), TC_EREDIS);
    cr_assert_not_null(strstr(err.msg, "AUTH"), "message: %s", err.msg);
    fx_close(&f);
}

Test(l2, select_db) {
    tc_test_redis_opts_t o = {.tcp = 1};
    tc_test_redis_t *r = tc_test_redis_start(&o);
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", tc_test_redis_port(r));
    fx_t f = {.r = r};
    fx_open_url(&f, url, &DEFAULTS);
    cr_assert_eq(tc__l2_set(f.l2, "in3", 3, "v", 1, 60000, NULL), 0);
    redisContext *c = tc_test_redis_connect(r);
    redisReply *rep = redisCommand(c, "EXISTS %s", PREFIX "k:in3");
    cr_assert_eq(rep->integer, 0, "key landed in db 0");
    freeReplyObject(rep);
    freeReplyObject(redisCommand(c, "SELECT 3"));
    rep = redisCommand(c, "EXISTS %s", PREFIX "k:in3");
    cr_assert_eq(rep->integer, 1, "key missing from db 3");
    freeReplyObject(rep);
    redisFree(c);
    fx_close(&f);
}

Test(l2, noscript_falls_back_to_eval) {
    fx_t f;
    fx_open(&f, NULL, NULL);
    uint64_t v1, v2;
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "a", 1, 60000, &v1), 0);
    redisContext *c = tc_test_redis_connect(f.r);
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    redisFree(c);
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "b", 1, 60000, &v2), 0);
    cr_assert_gt(v2, v1);
    expect_value(&f, "k", 1, "b", 1, v2);
    cr_assert_eq(tc__l2_del(f.l2, "k", 1, NULL), 0);
    fx_close(&f);
}

Test(l2, open_succeeds_with_redis_down_and_connect_failures_open_the_breaker) {
    fx_t f = {0};
    l2_params_t p = {2, 200, 2, 60000};
    fx_open_url(&f, "unix:///tmp/tc-no-such-dir/redis.sock", &p);
    cr_assert(tc__l2_available(f.l2));
    tc_error_t err = {0};
    cr_assert_eq(tc__l2_ping(f.l2, &err), TC_EUNAVAILABLE);
    cr_assert_not_null(strstr(err.msg, "tc-no-such-dir"), "message: %s", err.msg);
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "v", 1, 1000, NULL), TC_EUNAVAILABLE);
    tc__l2_counters_t c;
    tc__l2_counters(f.l2, &c);
    cr_assert_eq(c.opens, 1);
    cr_assert_eq(c.breaker_state, 1);
    cr_assert_not(tc__l2_available(f.l2));
    cr_assert_eq(tc__l2_get(f.l2, "k", 1, &(tc__l2_value_t){0}), TC_EUNAVAILABLE);
    tc__l2_close(f.l2);
    tc__endpoint_deinit(&f.ep);
}

/* A call against a stopped Redis: TC_ETIMEDOUT after about the command timeout. */
static void expect_timeout(fx_t *f) {
    double t0 = now_ms();
    uint64_t ver;
    int rc = tc__l2_set(f->l2, "k", 1, "v", 1, 60000, &ver);
    double took = now_ms() - t0;
    cr_assert_eq(rc, TC_ETIMEDOUT, "got %s", tc_err_name(rc));
    cr_assert(took >= 80 && took < 1000, "timeout took %.1f ms", took);
}

static void expect_rejected_fast(fx_t *f) {
    double t0 = now_ms();
    tc__l2_value_t v;
    cr_assert_eq(tc__l2_get(f->l2, "k", 1, &v), TC_EUNAVAILABLE);
    cr_assert_lt(now_ms() - t0, 50.0, "an open breaker must not touch the network");
}

Test(l2, breaker_opens_on_timeouts_and_a_probe_closes_it) {
    fx_t f;
    l2_params_t p = {2, 100, 3, 300};
    fx_open(&f, NULL, &p);
    cr_assert_eq(tc__l2_ping(f.l2, NULL), 0); /* a warm pooled connection */
    tc_test_redis_pause(f.r);
    for (int i = 0; i < 3; i++)
        expect_timeout(&f);
    tc__l2_counters_t c;
    tc__l2_counters(f.l2, &c);
    cr_assert_eq(c.opens, 1);
    cr_assert_eq(c.breaker_state, 1);
    cr_assert_geq(c.timeouts, 3);
    cr_assert_not(tc__l2_available(f.l2));
    for (int i = 0; i < 20; i++)
        expect_rejected_fast(&f);

    tc_test_redis_resume(f.r);
    sleep_ms(350);
    cr_assert(tc__l2_available(f.l2), "cooldown over: a probe is due");
    uint64_t ver;
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "v", 1, 60000, &ver), 0, "the probe");
    tc__l2_counters(f.l2, &c);
    cr_assert_eq(c.breaker_state, 0);
    cr_assert_eq(c.opens, 1);
    expect_value(&f, "k", 1, "v", 1, ver);
    fx_close(&f);
}

Test(l2, failed_probe_reopens_for_a_fresh_cooldown) {
    fx_t f;
    l2_params_t p = {1, 100, 2, 300};
    fx_open(&f, NULL, &p);
    tc_test_redis_pause(f.r);
    expect_timeout(&f);
    expect_timeout(&f);
    expect_rejected_fast(&f);
    sleep_ms(350);
    expect_timeout(&f); /* the probe, still paused */
    tc__l2_counters_t c;
    tc__l2_counters(f.l2, &c);
    cr_assert_eq(c.opens, 2);
    cr_assert_eq(c.breaker_state, 1);
    expect_rejected_fast(&f);
    sleep_ms(150);
    expect_rejected_fast(&f); /* still inside the fresh cooldown */
    tc_test_redis_resume(f.r);
    sleep_ms(250);
    cr_assert_eq(tc__l2_ping(f.l2, NULL), 0);
    tc__l2_counters(f.l2, &c);
    cr_assert_eq(c.breaker_state, 0);
    fx_close(&f);
}

static void kill_and_restart(const tc_test_redis_opts_t *ro) {
    fx_t f;
    l2_params_t p = {2, 500, 100, 1000}; /* breaker out of the way */
    fx_open(&f, ro, &p);
    uint64_t v1, v2;
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "a", 1, 60000, &v1), 0);

    tc_test_redis_kill(f.r);
    tc__l2_value_t v;
    int rc = tc__l2_get(f.l2, "k", 1, &v);
    cr_assert_eq(rc, TC_EUNAVAILABLE, "got %s", tc_err_name(rc));
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "b", 1, 60000, NULL), TC_EUNAVAILABLE);

    tc_test_redis_restart(f.r);
    cr_assert_eq(tc__l2_get(f.l2, "k", 1, &v), TC_ENOTFOUND, "data is gone after restart");
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "c", 1, 60000, &v2), 0);
    expect_value(&f, "k", 1, "c", 1, v2);
    fx_close(&f);
}

Test(l2, kill_and_restart_unix) {
    kill_and_restart(NULL);
}

Test(l2, kill_and_restart_tcp) {
    tc_test_redis_opts_t o = {.tcp = 1};
    kill_and_restart(&o);
}

/* Every pooled socket dies while idle; the first call after the restart must still work:
 * the dead reused connection is retried once on a fresh one. No SIGPIPE may escape. */
static void restart_while_idle(const tc_test_redis_opts_t *ro) {
    fx_t f;
    l2_params_t p = {2, 500, 1, 1000}; /* any surfaced failure would open the breaker */
    fx_open(&f, ro, &p);
    uint64_t before = 0;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tc__l2_set(f.l2, "k", 1, "a", 1, 60000, &before), 0);
    tc_test_redis_kill(f.r);
    tc_test_redis_restart(f.r);
    uint64_t ver;
    int rc = tc__l2_set(f.l2, "k", 1, "b", 1, 60000, &ver);
    cr_assert_eq(rc, 0, "first call after restart: %s", tc_err_name(rc));
    /* The new Redis lost the counter; versions must still move forward (clock floor), or
     * L1s holding pre-restart versions would ignore the new writes' invalidations. */
    cr_assert_gt(ver, before, "version went backwards across a restart: %llu <= %llu",
                 (unsigned long long)ver, (unsigned long long)before);
    expect_value(&f, "k", 1, "b", 1, ver);
    cr_assert_eq(tc__l2_ping(f.l2, NULL), 0);
    tc__l2_counters_t c;
    tc__l2_counters(f.l2, &c);
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.opens, 0);
    fx_close(&f);
}

Test(l2, restart_while_idle_is_invisible_unix) {
    restart_while_idle(NULL);
}

Test(l2, restart_while_idle_is_invisible_tcp) {
    tc_test_redis_opts_t o = {.tcp = 1};
    restart_while_idle(&o);
}

/* The cross-process lock: checking for a stored value and locking are one atomic step, and
 * only the holder's token releases it. */
Test(l2, lock_returns_a_stored_value_or_locks_atomically) {
    fx_t f;
    fx_open(&f, NULL, NULL);
    tc__l2_value_t theirs;
    int64_t pttl = 0;
    cr_assert_eq(tc__l2_lock(f.l2, "k", 1, "tokA", 4, 2000, NULL, &pttl, NULL, &theirs), 0,
                 "absent key: the lock is ours");
    cr_assert_eq(tc__l2_lock(f.l2, "k", 1, "tokB", 4, 2000, NULL, &pttl, NULL, &theirs),
                 TC__L2_LOCK_HELD, "held: the second caller must wait");
    cr_assert(pttl > 0 && pttl <= 2000, "pttl %lld", (long long)pttl);
    cr_assert_eq(tc__l2_unlock(f.l2, "k", 1, "tokB", 4), 0);
    cr_assert_eq(tc__l2_lock(f.l2, "k", 1, "tokC", 4, 2000, NULL, &pttl, NULL, &theirs),
                 TC__L2_LOCK_HELD, "a foreign token must not release the lock");

    uint64_t ver;
    cr_assert_eq(tc__l2_set(f.l2, "k", 1, "v1", 2, 60000, &ver), 0);
    cr_assert_eq(tc__l2_unlock(f.l2, "k", 1, "tokA", 4), 0);
    cr_assert_eq(tc__l2_lock(f.l2, "k", 1, "tokD", 4, 2000, NULL, &pttl, NULL, &theirs),
                 TC__L2_EXISTS, "a stored value is returned instead of a lock");
    cr_assert_eq(theirs.val.version, ver);
    cr_assert_eq(theirs.val.len, 2u);
    cr_assert_eq(memcmp(theirs.val.data, "v1", 2), 0);
    tc__l2_value_release(&theirs);
    cr_assert_eq(tc__l2_lock(f.l2, "k", 1, "tokE", 4, 2000, &ver, &pttl, NULL, &theirs), 0,
                 "skipping the stored version (a refresh of it): the lock is taken");
    uint64_t older = ver - 1;
    cr_assert_eq(tc__l2_unlock(f.l2, "k", 1, "tokE", 4), 0);
    cr_assert_eq(tc__l2_lock(f.l2, "k", 1, "tokF", 4, 2000, &older, &pttl, NULL, &theirs),
                 TC__L2_EXISTS, "a version other than the skipped one is returned");
    tc__l2_value_release(&theirs);
    fx_close(&f);
}
