/*
 * test_examples_env_config.c - examples/env_config run with the environments an operator
 * might give it, on a private redis-server.
 *
 * What must hold: the effective configuration it prints has each value from the right
 * place (the environment over the application's defaults over the library's); another
 * prefix works and the TIERCACHE_* variables are then ignored; a bad value, an out-of-range
 * one and a misspelt variable are each refused before the cache opens (exit 2) with a
 * message naming the variable; tc_open's failure (Redis required but unreachable) comes
 * with its cause (exit 3); and a Redis password never appears in the output.
 *
 * The binary's path comes from TC_TEST_ENV_CONFIG_PATH (tests/CMakeLists.txt); a build
 * without the examples skips these tests.
 */
/* tc-test-labels: integration */
#include "exproc.h"
#include "peer.h"
#include "redis_server.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_MS (10000 * TC_TEST_SLOW)

#ifndef TC_TEST_ENV_CONFIG_PATH
#define SKIP_UNLESS_BUILT()     cr_skip_test("examples/env_config is not built")
#define TC_TEST_ENV_CONFIG_PATH "/nonexistent"
#else
#define SKIP_UNLESS_BUILT() (void)0
#endif

typedef struct result {
    int rc;
    char *out, *err;
} result_t;

static result_t run(const char *const *args, const char *const *env) {
    const char *argv[8] = {TC_TEST_ENV_CONFIG_PATH};
    for (int i = 0; args && args[i] && i < 6; i++)
        argv[1 + i] = args[i];
    result_t r;
    r.rc = tc_test_run(argv, env, &r.out, &r.err, RUN_MS);
    return r;
}

static void done(result_t *r) {
    free(r->out);
    free(r->err);
}

/* The printed row of `field` must show value and come from `from`. */
static void expect_row(const result_t *r, const char *field, const char *value,
                       const char *from) {
    char start[64];
    snprintf(start, sizeof start, "\n  %s ", field);
    const char *row = strstr(r->out, start);
    cr_assert_not_null(row, "no row for %s in:\n%s", field, r->out);
    row += 3;
    size_t len = strcspn(row, "\n");
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)len, row);
    cr_assert_not_null(strstr(line, value), "%s: want value %s: %s", field, value, line);
    cr_assert_not_null(strstr(line, from), "%s: want from %s: %s", field, from, line);
}

/* A refusal: exit 2, nothing opened or printed on stdout, stderr naming `name`. */
static void expect_refused(const char *assignment, const char *name) {
    const char *env[] = {assignment, NULL};
    result_t r = run(NULL, env);
    cr_assert_eq(r.rc, 2, "%s: exit %d\n%s%s", assignment, r.rc, r.out, r.err);
    cr_assert_str_empty(r.out, "%s: printed a configuration it refused", assignment);
    cr_assert_not_null(strstr(r.err, name), "%s: the message must name %s: %s", assignment,
                       name, r.err);
    done(&r);
}

Test(env_config, prints_each_value_with_where_it_came_from) {
    SKIP_UNLESS_BUILT();
    tc_test_redis_t *redis = tc_test_redis_start(NULL);
    char url[600];
    snprintf(url, sizeof url, "TIERCACHE_REDIS_URL=%s", tc_test_redis_url(redis));
    const char *env[] = {url, "TIERCACHE_L1_MAX_BYTES=32MiB", "TIERCACHE_DEFAULT_TTL=1.5m",
                         "TIERCACHE_TRACKING=bcast", NULL};
    result_t r = run(NULL, env);
    cr_assert_eq(r.rc, 0, "exit %d\n%s%s", r.rc, r.out, r.err);
    expect_row(&r, "l1_max_bytes", "33554432 (32 MiB)", "environment (TIERCACHE_L1_MAX_BYTES)");
    expect_row(&r, "default_ttl_ms", "90000 ms", "environment (TIERCACHE_DEFAULT_TTL)");
    expect_row(&r, "tracking", "bcast", "environment (TIERCACHE_TRACKING)");
    expect_row(&r, "redis_url", tc_test_redis_url(redis), "environment");
    expect_row(&r, "negative_ttl_ms", "5000 ms", "application");
    expect_row(&r, "key_prefix", "\"env_config:\"", "application");
    expect_row(&r, "pool_size", "8", "library default");
    expect_row(&r, "max_value_bytes", "8388608 (8 MiB)", "library default");
    cr_assert_not_null(strstr(r.out, "\nredis: connected, invalidation listener subscribed\n"),
                       "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\nL1: 33554432 bytes budget\n"), "%s", r.out);
    done(&r);
    tc_test_redis_stop(redis);
}

Test(env_config, another_prefix_replaces_tiercache_s) {
    SKIP_UNLESS_BUILT();
    const char *args[] = {"--prefix", "MYAPP_CACHE_", NULL};
    const char *env[] = {"MYAPP_CACHE_DEFAULT_TTL=2m", "TIERCACHE_DEFAULT_TTL=1s", NULL};
    result_t r = run(args, env);
    cr_assert_eq(r.rc, 0, "exit %d\n%s%s", r.rc, r.out, r.err);
    expect_row(&r, "default_ttl_ms", "120000 ms", "environment (MYAPP_CACHE_DEFAULT_TTL)");
    expect_row(&r, "redis_url", "(none: L1-only)", "library default");
    cr_assert_not_null(strstr(r.out, "\nredis: none (L1-only)\n"), "%s", r.out);
    done(&r);
}

Test(env_config, refuses_a_bad_value_naming_the_variable) {
    SKIP_UNLESS_BUILT();
    expect_refused("TIERCACHE_DEFAULT_TTL=3x", "TIERCACHE_DEFAULT_TTL");
    expect_refused("TIERCACHE_TTL_JITTER=0.9", "TIERCACHE_TTL_JITTER");
    expect_refused("TIERCACHE_L1_MAX_BYTES=lots", "TIERCACHE_L1_MAX_BYTES");
    expect_refused("TIERCACHE_TRACKING=sometimes", "TIERCACHE_TRACKING");
}

Test(env_config, refuses_a_misspelt_variable_naming_it_and_the_nearest) {
    SKIP_UNLESS_BUILT();
    expect_refused("TIERCACHE_DEFUALT_TTL=5s", "TIERCACHE_DEFUALT_TTL");
    expect_refused("TIERCACHE_DEFUALT_TTL=5s", "TIERCACHE_DEFAULT_TTL");
}

Test(env_config, says_why_tc_open_failed) {
    SKIP_UNLESS_BUILT();
    const char *env[] = {"TIERCACHE_REDIS_URL=unix:///nonexistent-dir/redis.sock",
                         "TIERCACHE_REQUIRE_REDIS=1", NULL};
    result_t r = run(NULL, env);
    cr_assert_eq(r.rc, 3, "exit %d\n%s%s", r.rc, r.out, r.err);
    cr_assert_not_null(strstr(r.err, "env_config: tc_open: TC_EUNAVAILABLE"), "%s", r.err);
    cr_assert_not_null(strstr(r.err, "/nonexistent-dir/redis.sock"), "%s", r.err);
    done(&r);
}

/* A password, in either URL form, is masked in the output and never printed whole. */
static void check_masked(const tc_test_redis_opts_t *opts, const char *password) {
    tc_test_redis_t *redis = tc_test_redis_start(opts);
    char url[600];
    snprintf(url, sizeof url, "TIERCACHE_REDIS_URL=%s", tc_test_redis_url(redis));
    cr_assert_not_null(strstr(url, password), "the test's URL carries the password: %s", url);
    const char *env[] = {url, "TIERCACHE_LOG=debug", NULL};
    result_t r = run(NULL, env);
    cr_assert_eq(r.rc, 0, "exit %d\n%s%s", r.rc, r.out, r.err);
    cr_assert_not_null(strstr(r.out, "\nredis: connected"), "the password was not used:\n%s%s",
                       r.out, r.err);
    cr_assert_null(strstr(r.out, password), "stdout shows the password:\n%s", r.out);
    cr_assert_null(strstr(r.err, password), "stderr shows the password:\n%s", r.err);
    expect_row(&r, "redis_url", "***", "environment");
    done(&r);
    tc_test_redis_stop(redis);
}

Test(env_config, never_prints_the_redis_password) {
    SKIP_UNLESS_BUILT();
    tc_test_redis_opts_t unix_pw = {.password = "s3cret-unix-pw"};
    check_masked(&unix_pw, "s3cret-unix-pw");
    tc_test_redis_opts_t tcp_user = {.tcp = 1, .password = "s3cret-tcp-pw", .acl_user = "app"};
    check_masked(&tcp_user, "s3cret-tcp-pw");
}
