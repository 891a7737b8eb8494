/*
 * test_cache_tcp.c - the core round trip over TCP, and authentication from the URL.
 *
 * test_cache.c covers the API on a unix socket; this file proves the other transports
 * and the credentials parts of redis_url reach Redis: a TCP loopback server, a
 * requirepass server (password in the URL, TCP and unix forms), and an ACL user with the
 * default user switched off (so a client that dropped the user name could not get in by
 * accident). A wrong password must make a require_redis open fail, not hang.
 */
/* tc-test-labels: integration */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <string.h>

static tc_test_redis_t *redis;

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

TestSuite(tcp, .fini = teardown, .timeout = 60);

#define S(str) str, sizeof(str) - 1

static tc_cache_t *open_url(const char *url, const char *prefix) {
    tc_config_t cfg;
    tc_test_config(&cfg, url, prefix, prefix);
    cfg.require_redis = 1;
    return tc_test_open(&cfg);
}

static void expect_val(tc_cache_t *c, const char *key, const char *val) {
    char buf[64];
    size_t len = sizeof buf;
    int rc = tc_get_copy(c, key, strlen(key), buf, &len);
    cr_assert_eq(rc, 0, "tc_get_copy(%s): %s", key, tc_err_name(rc));
    cr_assert_eq(len, strlen(val));
    cr_assert_eq(memcmp(buf, val, len), 0);
}

/* A writes, B reads through L2 then L1, A deletes, B sees the delete. */
static void round_trip(const char *url, const char *prefix) {
    tc_cache_t *a = open_url(url, prefix), *b = open_url(url, prefix);
    cr_assert_eq(tc_set(a, S("k"), S("over-the-wire"), 0), 0);
    expect_val(b, "k", "over-the-wire");
    expect_val(b, "k", "over-the-wire");
    tc_stats_t st;
    cr_assert_eq(tc_stats(b, &st), 0);
    cr_assert_eq(st.l2_hits, 1);
    cr_assert_eq(st.l1_hits, 1);
    cr_assert_eq(tc_del(a, S("k")), 0);
    cr_assert_geq(tc_test_wait_get(b, S("k"), NULL, 0, 1000u * TC_TEST_SLOW), 0,
                  "B still serves the deleted key");
    redisContext *rc = tc_test_redis_connect(redis);
    cr_assert_not_null(rc);
    redisReply *r = redisCommand(rc, "EXISTS %sk:k", prefix);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);
    redisFree(rc);
    tc_close(a);
    tc_close(b);
}

/* url with its password replaced by "wrong-password". */
static void wrong_url(const char *url, const char *password, char *out, size_t cap) {
    const char *p = strstr(url, password);
    cr_assert_not_null(p, "the URL '%s' does not carry the password", url);
    snprintf(out, cap, "%.*swrong-password%s", (int)(p - url), url, p + strlen(password));
}

static void refused(const char *url) {
    tc_config_t cfg;
    tc_cache_t *c = NULL;
    tc_error_t err = {0};
    tc_test_config(&cfg, url, "t:bad:", "t:bad:");
    cfg.require_redis = 1;
    uint64_t t0 = tc_test_now_ms();
    int rc = tc_open(&cfg, &c, &err);
    uint64_t took = tc_test_now_ms() - t0;
    cr_assert(rc < 0, "tc_open with a wrong password must fail, got %d", rc);
    cr_assert_null(c);
    cr_assert_lt(took, 1500u * TC_TEST_SLOW, "a refused AUTH took %llu ms",
                 (unsigned long long)took);
}

Test(tcp, round_trip) {
    tc_test_redis_opts_t o = {.tcp = 1};
    redis = tc_test_redis_start(&o);
    cr_assert_not_null(strstr(tc_test_redis_url(redis), "redis://"));
    round_trip(tc_test_redis_url(redis), "t:tcp:");
}

Test(tcp, auth_password_in_url) {
    tc_test_redis_opts_t o = {.tcp = 1, .password = "s3cret-pw"};
    redis = tc_test_redis_start(&o);
    round_trip(tc_test_redis_url(redis), "t:auth:");
    char bad[1100];
    wrong_url(tc_test_redis_url(redis), "s3cret-pw", bad, sizeof bad);
    refused(bad);
}

Test(tcp, auth_acl_user_in_url) {
    tc_test_redis_opts_t o = {.tcp = 1, .password = "acl-pw", .acl_user = "app"};
    redis = tc_test_redis_start(&o);
    round_trip(tc_test_redis_url(redis), "t:acl:");
    char bad[1100];
    wrong_url(tc_test_redis_url(redis), "acl-pw", bad, sizeof bad);
    refused(bad);
}

Test(tcp, auth_password_on_unix_socket) {
    tc_test_redis_opts_t o = {.password = "unix-pw"};
    redis = tc_test_redis_start(&o);
    round_trip(tc_test_redis_url(redis), "t:uauth:");
    char bad[1100];
    wrong_url(tc_test_redis_url(redis), "unix-pw", bad, sizeof bad);
    refused(bad);
}
