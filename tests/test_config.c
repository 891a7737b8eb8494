/*
 * test_config.c - defaults, unit parsing, the environment overlay, validation and the
 * Redis URL parser.
 *
 * Each error test asserts both the code and that the message names the variable or field,
 * because a message that says "invalid" without saying where is the bug these guard
 * against. Environment tests set variables under a private prefix where they can (so a
 * TIERCACHE_* variable in the runner's environment cannot leak in) and unset them again.
 */
/* tc-test-labels: unit */
#include "config.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define P "TCTEST_"

static void assert_msg_has(const tc_error_t *err, const char *needle) {
    cr_assert(strstr(err->msg, needle) != NULL, "message '%s' lacks '%s'", err->msg, needle);
}

/* ---- Defaults ---- */

Test(config, defaults) {
    tc_config_t c;
    memset(&c, 0xab, sizeof c);
    tc_config_init(&c);
    cr_assert_eq(c.l1_max_bytes, (size_t)64 << 20);
    cr_assert_eq(c.l1_max_entries, 0);
    cr_assert_eq(c.l1_shards, 0);
    cr_assert_eq(c.l1_max_value_bytes, (size_t)1 << 20);
    cr_assert_eq(c.default_ttl_ms, 60000);
    cr_assert_float_eq(c.ttl_jitter, 0.10, 1e-12);
    cr_assert_eq(c.max_value_bytes, (size_t)8 << 20);
    cr_assert_null(c.redis_url);
    cr_assert_str_eq(c.key_prefix, "tc:");
    cr_assert_str_eq(c.inval_channel, "tc:inval");
    cr_assert_eq(c.pool_size, 8);
    cr_assert_eq(c.connect_timeout_ms, 500);
    cr_assert_eq(c.command_timeout_ms, 250);
    cr_assert_eq(c.require_redis, 0);
    cr_assert_eq(c.breaker_threshold, 5);
    cr_assert_eq(c.breaker_cooldown_ms, 1000);
    cr_assert_eq(c.listener_ping_ms, 1000);
    cr_assert_null(c.inval_hook);
    cr_assert_null(c.inval_hook_arg);
    /* Freshness: off unless a default is documented. */
    cr_assert_eq(c.stale_ttl_ms, 0);
    cr_assert_eq(c.failsafe_max_stale_ms, 0);
    cr_assert_eq(c.failsafe_backoff_ms, 1000);
    cr_assert_eq(c.early_refresh_beta, 0.0);
    cr_assert_eq(c.negative_ttl_ms, 0);
    cr_assert_eq(c.load_soft_timeout_ms, 0);
    cr_assert_eq(c.load_hard_timeout_ms, 0);
    cr_assert_eq(c.refresh_threads, 2);
    cr_assert_eq(c.refresh_queue, 1024);
    cr_assert_eq(c.lock_ttl_ms, 5000);
    cr_assert_eq(c.lock_wait_ms, 5000);
    cr_assert_eq(c.sliding_ttl, 0);
    cr_assert_eq(c.sliding_max_ms, 3600000);
    cr_assert_null(c.ttl_rules);
    cr_assert_eq(c.ttl_rules_count, 0);
    tc_config_init(NULL); /* no-op, no crash */
}

Test(config, defaults_validate) {
    tc_config_t c;
    tc_error_t err = {.code = 99, .msg = "stale"};
    tc_config_init(&c);
    cr_assert_eq(tc__config_validate(&c, &err), 0);
    cr_assert_eq(err.code, 0);
    cr_assert_str_empty(err.msg);
    c.redis_url = "redis://127.0.0.1:6379/0";
    cr_assert_eq(tc__config_validate(&c, NULL), 0);
}

Test(config, default_shards) {
    unsigned n = tc__default_shards();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want = ncpu > 64 ? 1024u : 16u * (unsigned)(ncpu < 1 ? 1 : ncpu);
    cr_assert(n >= 16 && n <= 1024, "shards %u", n);
    cr_assert(n >= want || n == 1024, "shards %u for %ld CPUs", n, ncpu);
    cr_assert(n < 2 * want || n == 16, "shards %u is more than the next power of two", n);
    cr_assert_eq(n & (n - 1), 0, "shards %u not a power of two", n);
}

/* ---- Bytes and durations ---- */

typedef struct {
    const char *in;
    uint64_t want;
} num_case_t;

Test(config, parse_bytes_ok) {
    static const num_case_t ok[] = {
        {"0", 0},
        {"512", 512},
        {"512B", 512},
        {"512 b", 512},
        {"64K", 64 << 10},
        {"64k", 64 << 10},
        {"64KiB", 64 << 10},
        {"256MiB", 256ull << 20},
        {"256 mib", 256ull << 20},
        {"256M", 256ull << 20},
        {"1GiB", 1ull << 30},
        {"1g", 1ull << 30},
        {"1KB", 1000},
        {"1MB", 1000000},
        {"1GB", 1000000000},
        {"1gb", 1000000000},
        {"1.5GiB", 3ull << 29},
        {"0.5KiB", 512},
        {"1.25MB", 1250000},
        {"2.000B", 2},
        {"0.001KB", 1},
        {"007", 7},
        {"18446744073709551615", UINT64_MAX},
        {"17179869183GiB", 17179869183ull << 30},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 12345;
        cr_assert_eq(tc__parse_bytes(ok[i].in, &v), 0, "'%s' refused", ok[i].in);
        cr_assert_eq(v, ok[i].want, "'%s' -> %llu", ok[i].in, (unsigned long long)v);
    }
}

Test(config, parse_bytes_bad) {
    static const char *const bad[] = {
        "",
        " 1",
        "1 ",
        "-1",
        "+1",
        "1  MiB",
        "12XB",
        "1.5B",
        "0.1KiB",
        "1.",
        ".5GiB",
        "1.GiB",
        "1e3",
        "0x10",
        "1MiBx",
        "1 2",
        "MiB",
        "1TiB",
        "1.0000000001GB",
        "1,5GiB",
        "18446744073709551616",
        "17179869184GiB",
        "99999999999999999999999",
    };
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(tc__parse_bytes(bad[i], &v), TC_EINVAL, "'%s' accepted", bad[i]);
    }
    cr_assert_eq(tc__parse_bytes(NULL, &v), TC_EINVAL);
    cr_assert_eq(tc__parse_bytes("1", NULL), TC_EINVAL);
}

Test(config, parse_duration_ok) {
    static const num_case_t ok[] = {
        {"100", 100},      {"0", 0},
        {"250ms", 250},    {"250 ms", 250},
        {"250MS", 250},    {"30s", 30000},
        {"30S", 30000},    {"5m", 300000},
        {"1h", 3600000},   {"1.5s", 1500},
        {"0.5h", 1800000}, {"2.5m", 150000},
        {"1.0ms", 1},      {"18446744073709551615", UINT64_MAX},
        {"1d", 86400000},  {"0.5d", 43200000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 12345;
        cr_assert_eq(tc__parse_duration_ms(ok[i].in, &v), 0, "'%s' refused", ok[i].in);
        cr_assert_eq(v, ok[i].want, "'%s' -> %llu", ok[i].in, (unsigned long long)v);
    }
}

Test(config, parse_duration_bad) {
    static const char *const bad[] = {
        "",
        "-1s",
        "1x",
        "1 ",
        "s",
        "1.5ms",
        "0.0001s",
        "1sec",
        "1w",
        "1us",
        "1e3",
        "10ss",
        " 10s",
        "1.s",
        "18446744073709551616",
        "5124095576030432h",
    };
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(tc__parse_duration_ms(bad[i], &v), TC_EINVAL, "'%s' accepted", bad[i]);
    }
    cr_assert_eq(tc__parse_duration_ms(NULL, &v), TC_EINVAL);
    cr_assert_eq(tc__parse_duration_ms("1s", NULL), TC_EINVAL);
}

/* ---- Environment ---- */

static const char *const all_vars[] = {
    "L1_MAX_BYTES",       "L1_MAX_ENTRIES", "L1_SHARDS",          "L1_MAX_VALUE_BYTES",
    "DEFAULT_TTL",        "TTL_JITTER",     "MAX_VALUE_BYTES",    "REDIS_URL",
    "KEY_PREFIX",         "INVAL_CHANNEL",  "POOL_SIZE",          "CONNECT_TIMEOUT",
    "COMMAND_TIMEOUT",    "REQUIRE_REDIS",  "BREAKER_THRESHOLD",  "BREAKER_COOLDOWN",
    "LISTENER_PING",      "STALE_TTL",      "FAILSAFE_MAX_STALE", "FAILSAFE_BACKOFF",
    "EARLY_REFRESH_BETA", "NEGATIVE_TTL",   "LOAD_SOFT_TIMEOUT",  "LOAD_HARD_TIMEOUT",
    "REFRESH_THREADS",    "REFRESH_QUEUE",  "LOCK_TTL",           "LOCK_WAIT",
    "SLIDING_TTL",        "SLIDING_MAX",    "DEGRADED_TTL",       "LOG",
    "REPLAY_LOG_LEN",     "TRACKING",       "PLAIN_KEYS",         "L1_POLICY",
};

static void set_var(const char *prefix, const char *name, const char *val) {
    char var[128];
    snprintf(var, sizeof var, "%s%s", prefix, name);
    cr_assert_eq(setenv(var, val, 1), 0);
}

static void clear_vars(const char *prefix) {
    char var[128];
    for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++) {
        snprintf(var, sizeof var, "%s%s", prefix, all_vars[i]);
        unsetenv(var);
    }
}

static void clear_both(void) {
    clear_vars(P);
    clear_vars("TIERCACHE_");
}

TestSuite(config_env, .init = clear_both, .fini = clear_both);

Test(config_env, every_variable) {
    tc_config_t c;
    tc_error_t err;
    tc_config_init(&c);
    set_var(P, "L1_MAX_BYTES", "256MiB");
    set_var(P, "L1_MAX_ENTRIES", "100000");
    set_var(P, "L1_SHARDS", "32");
    set_var(P, "L1_MAX_VALUE_BYTES", "2 MB");
    set_var(P, "DEFAULT_TTL", "30s");
    set_var(P, "TTL_JITTER", "0.25");
    set_var(P, "MAX_VALUE_BYTES", "128MiB");
    set_var(P, "REDIS_URL", "redis://127.0.0.1:6380/2");
    set_var(P, "KEY_PREFIX", "app:");
    set_var(P, "INVAL_CHANNEL", "app:inval");
    set_var(P, "POOL_SIZE", "16");
    set_var(P, "CONNECT_TIMEOUT", "2s");
    set_var(P, "COMMAND_TIMEOUT", "100ms");
    set_var(P, "REQUIRE_REDIS", "yes");
    set_var(P, "BREAKER_THRESHOLD", "3");
    set_var(P, "BREAKER_COOLDOWN", "1m");
    set_var(P, "LISTENER_PING", "500");
    set_var(P, "STALE_TTL", "10m");
    set_var(P, "FAILSAFE_MAX_STALE", "2h");
    set_var(P, "FAILSAFE_BACKOFF", "3s");
    set_var(P, "EARLY_REFRESH_BETA", "1.5");
    set_var(P, "NEGATIVE_TTL", "15s");
    set_var(P, "LOAD_SOFT_TIMEOUT", "200ms");
    set_var(P, "LOAD_HARD_TIMEOUT", "2s");
    set_var(P, "REFRESH_THREADS", "8");
    set_var(P, "REFRESH_QUEUE", "4096");
    set_var(P, "LOCK_TTL", "0");
    set_var(P, "LOCK_WAIT", "750");
    set_var(P, "SLIDING_TTL", "on");
    set_var(P, "SLIDING_MAX", "0.5h");
    cr_assert_eq(tc_config_from_env(&c, P, &err), 0, "%s", err.msg);
    cr_assert_eq(c.l1_max_bytes, 256u << 20);
    cr_assert_eq(c.l1_max_entries, 100000);
    cr_assert_eq(c.l1_shards, 32);
    cr_assert_eq(c.l1_max_value_bytes, 2000000);
    cr_assert_eq(c.default_ttl_ms, 30000);
    cr_assert_float_eq(c.ttl_jitter, 0.25, 1e-12);
    cr_assert_eq(c.max_value_bytes, 128u << 20);
    cr_assert_str_eq(c.redis_url, "redis://127.0.0.1:6380/2");
    cr_assert_str_eq(c.key_prefix, "app:");
    cr_assert_str_eq(c.inval_channel, "app:inval");
    cr_assert_eq(c.pool_size, 16);
    cr_assert_eq(c.connect_timeout_ms, 2000);
    cr_assert_eq(c.command_timeout_ms, 100);
    cr_assert_eq(c.require_redis, 1);
    cr_assert_eq(c.breaker_threshold, 3);
    cr_assert_eq(c.breaker_cooldown_ms, 60000);
    cr_assert_eq(c.listener_ping_ms, 500);
    cr_assert_eq(c.stale_ttl_ms, 600000);
    cr_assert_eq(c.failsafe_max_stale_ms, 7200000);
    cr_assert_eq(c.failsafe_backoff_ms, 3000);
    cr_assert_eq(c.early_refresh_beta, 1.5);
    cr_assert_eq(c.negative_ttl_ms, 15000);
    cr_assert_eq(c.load_soft_timeout_ms, 200);
    cr_assert_eq(c.load_hard_timeout_ms, 2000);
    cr_assert_eq(c.refresh_threads, 8);
    cr_assert_eq(c.refresh_queue, 4096);
    cr_assert_eq(c.lock_ttl_ms, 0);
    cr_assert_eq(c.lock_wait_ms, 750);
    cr_assert_eq(c.sliding_ttl, 1);
    cr_assert_eq(c.sliding_max_ms, 1800000);
    cr_assert_null(c.ttl_rules); /* not configurable from the environment */
    cr_assert_eq(tc__config_validate(&c, &err), 0, "%s", err.msg);
}

Test(config_env, default_prefix_and_unset_vars) {
    tc_config_t c, before;
    tc_config_init(&c);
    before = c;
    cr_assert_eq(tc_config_from_env(&c, NULL, NULL), 0);
    cr_assert_eq(memcmp(&c, &before, sizeof c), 0, "unset variables changed cfg");
    set_var("TIERCACHE_", "DEFAULT_TTL", "5m");
    set_var(P, "DEFAULT_TTL", "1h"); /* other prefix: ignored */
    cr_assert_eq(tc_config_from_env(&c, NULL, NULL), 0);
    cr_assert_eq(c.default_ttl_ms, 300000);
    cr_assert_eq(tc_config_from_env(&c, P, NULL), 0);
    cr_assert_eq(c.default_ttl_ms, 3600000);
}

Test(config_env, null_cfg) {
    tc_error_t err;
    cr_assert_eq(tc_config_from_env(NULL, P, &err), TC_EINVAL);
    cr_assert_eq(err.code, TC_EINVAL);
}

Test(config_env, overlong_prefix) {
    char prefix[400];
    tc_config_t c;
    tc_error_t err;
    memset(prefix, 'A', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    tc_config_init(&c);
    cr_assert_eq(tc_config_from_env(&c, prefix, &err), TC_ECONFIG);
    assert_msg_has(&err, "prefix");
}

Test(config_env, empty_redis_url_means_l1_only) {
    tc_config_t c;
    tc_config_init(&c);
    c.redis_url = "redis://x";
    set_var(P, "REDIS_URL", "");
    cr_assert_eq(tc_config_from_env(&c, P, NULL), 0);
    cr_assert_null(c.redis_url);
}

Test(config_env, booleans) {
    static const char *const yes[] = {"1", "true", "TRUE", "yes", "Yes", "on", "ON"};
    static const char *const no[] = {"0", "false", "False", "no", "NO", "off", "Off"};
    tc_config_t c;
    tc_config_init(&c);
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        c.require_redis = 0;
        c.sliding_ttl = 0;
        set_var(P, "REQUIRE_REDIS", yes[i]);
        set_var(P, "SLIDING_TTL", yes[i]);
        cr_assert_eq(tc_config_from_env(&c, P, NULL), 0, "%s", yes[i]);
        cr_assert_eq(c.require_redis, 1, "%s", yes[i]);
        cr_assert_eq(c.sliding_ttl, 1, "%s", yes[i]);
        c.require_redis = 1;
        c.sliding_ttl = 1;
        set_var(P, "REQUIRE_REDIS", no[i]);
        set_var(P, "SLIDING_TTL", no[i]);
        cr_assert_eq(tc_config_from_env(&c, P, NULL), 0, "%s", no[i]);
        cr_assert_eq(c.require_redis, 0, "%s", no[i]);
        cr_assert_eq(c.sliding_ttl, 0, "%s", no[i]);
    }
}

Test(config_env, jitter_forms) {
    static const struct {
        const char *in;
        double want;
    } ok[] = {{"0", 0.0},
              {"0.1", 0.1},
              {"10%", 0.10},
              {"0.5", 0.5},
              {"50%", 0.5},
              {"2.5%", 0.025},
              {"0.10000000000000000001", 0.1}};
    tc_config_t c;
    tc_config_init(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        set_var(P, "TTL_JITTER", ok[i].in);
        cr_assert_eq(tc_config_from_env(&c, P, NULL), 0, "%s", ok[i].in);
        cr_assert_eq(c.ttl_jitter, ok[i].want, "%s -> %.17g", ok[i].in, c.ttl_jitter);
    }
    /* 0.9 parses, and the range check names the variable, not the field. */
    tc_error_t err;
    set_var(P, "TTL_JITTER", "0.9");
    cr_assert_eq(tc_config_from_env(&c, P, &err), TC_ECONFIG);
    assert_msg_has(&err, P "TTL_JITTER: 0.9 is not in 0..0.5");
    cr_assert_eq(c.ttl_jitter, 0.1, "a refused call must leave cfg alone");
}

Test(config_env, beta_forms) {
    static const struct {
        const char *in;
        double want;
    } ok[] = {{"0", 0.0},         {"1", 1.0},     {"1.0", 1.0},
              {"0.5", 0.5},       {"2.25", 2.25}, {"100", 100.0},
              {"100.000", 100.0}, {"007.5", 7.5}, {"0.10000000000000000001", 0.1}};
    tc_config_t c;
    tc_error_t err;
    tc_config_init(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        c.early_refresh_beta = -1.0;
        set_var(P, "EARLY_REFRESH_BETA", ok[i].in);
        cr_assert_eq(tc_config_from_env(&c, P, &err), 0, "%s: %s", ok[i].in, err.msg);
        cr_assert_eq(c.early_refresh_beta, ok[i].want, "%s -> %.17g", ok[i].in,
                     c.early_refresh_beta);
        cr_assert_eq(tc__config_validate(&c, &err), 0, "%s: %s", ok[i].in, err.msg);
    }
}

typedef struct {
    const char *var;
    const char *val;
    const char *says; /* a word the message must contain */
} env_bad_t;

Test(config_env, l1_policy_by_name) {
    tc_config_t c;
    tc_error_t err;
    tc_config_init(&c);
    cr_assert_eq(c.l1_policy, TC_L1_POLICY_DEFAULT);
    set_var(P, "L1_POLICY", "s3fifo");
    cr_assert_eq(tc_config_from_env(&c, P, &err), 0, "%s", err.msg);
    cr_assert_eq(c.l1_policy, TC_L1_POLICY_S3FIFO);
    set_var(P, "L1_POLICY", "default");
    cr_assert_eq(tc_config_from_env(&c, P, &err), 0, "%s", err.msg);
    cr_assert_eq(c.l1_policy, TC_L1_POLICY_DEFAULT);
    set_var(P, "L1_POLICY", "lfu");
    cr_assert_eq(tc_config_from_env(&c, P, &err), TC_ECONFIG);
    cr_assert(strstr(err.msg, "L1_POLICY") && strstr(err.msg, "is not an L1 policy"), "%s",
              err.msg);
    c.l1_policy = 2;
    cr_assert_eq(tc__config_validate(&c, &err), TC_ECONFIG);
    cr_assert(strstr(err.msg, "l1_policy"), "%s", err.msg);
}

Test(config_env, errors_name_the_variable) {
    static const env_bad_t bad[] = {
        /* byte sizes */
        {"L1_MAX_BYTES", "12XB", "is not a byte size (use B, KiB, MiB, GiB, KB, MB, GB)"},
        {"L1_MAX_BYTES", "", "empty"},
        {"L1_MAX_BYTES", "-5MiB", "negative"},
        {"L1_MAX_BYTES", "99999999999999999999", "too large"},
        {"L1_MAX_BYTES", "17179869184GiB", "too large"},
        {"L1_MAX_BYTES", "1.5B", "whole number of bytes"},
        {"L1_MAX_BYTES", "64MiB ", "byte size"},
        {"L1_MAX_VALUE_BYTES", "1 M B", "byte size"},
        {"MAX_VALUE_BYTES", "lots", "byte size"},
        /* durations */
        {"DEFAULT_TTL", "30x", "is not a duration"},
        {"DEFAULT_TTL", "", "empty"},
        {"DEFAULT_TTL", "-30s", "negative"},
        {"DEFAULT_TTL", "99999999999999999999", "too large"},
        {"DEFAULT_TTL", "0.5ms", "whole number of milliseconds"},
        {"CONNECT_TIMEOUT", "4294967296", "too large (at most 4294967295)"},
        {"CONNECT_TIMEOUT", "50w", "duration"},
        {"CONNECT_TIMEOUT", "50d", "too large (at most 4294967295)"},
        {"COMMAND_TIMEOUT", "1194h", "too large"},
        {"COMMAND_TIMEOUT", "fast", "duration"},
        {"BREAKER_COOLDOWN", "-1", "negative"},
        {"LISTENER_PING", "1s2", "duration"},
        /* booleans */
        {"REQUIRE_REDIS", "maybe", "is not a boolean"},
        {"REQUIRE_REDIS", "", "empty"},
        {"REQUIRE_REDIS", "2", "boolean"},
        {"REQUIRE_REDIS", " yes", "boolean"},
        /* counts */
        {"L1_MAX_ENTRIES", "10k", "not a non-negative whole number"},
        {"L1_MAX_ENTRIES", "-1", "negative"},
        {"L1_MAX_ENTRIES", "", "empty"},
        {"L1_MAX_ENTRIES", "18446744073709551616", "too large"},
        {"L1_SHARDS", "4294967296", "too large (at most 4294967295)"},
        {"L1_SHARDS", "16 ", "whole number"},
        {"L1_SHARDS", "0x10", "whole number"},
        {"POOL_SIZE", "+8", "whole number"},
        {"POOL_SIZE", "8.0", "whole number"},
        {"BREAKER_THRESHOLD", "five", "whole number"},
        /* jitter */
        {"TTL_JITTER", "abc", "is not a decimal fraction"},
        {"TTL_JITTER", "", "empty"},
        {"TTL_JITTER", "-0.1", "negative"},
        {"TTL_JITTER", "0.1x", "fraction"},
        {"TTL_JITTER", "10%%", "fraction"},
        {"TTL_JITTER", ".1", "fraction"},
        {"TTL_JITTER", "1.", "fraction"},
        {"TTL_JITTER", "1e-1", "fraction"},
        {"TTL_JITTER", "nan", "fraction"},
        {"TTL_JITTER", "0.1.2", "fraction"},
        {"TTL_JITTER", "9999999999999999999", "too large"},
        /* freshness durations */
        {"STALE_TTL", "10 minutes", "is not a duration"},
        {"STALE_TTL", "-1s", "negative"},
        {"STALE_TTL", "", "empty"},
        {"STALE_TTL", "0.1ms", "whole number of milliseconds"},
        {"STALE_TTL", "18446744073709551616", "too large"},
        {"FAILSAFE_MAX_STALE", "1w", "duration"},
        {"FAILSAFE_MAX_STALE", "5124095576030432h", "too large"},
        {"NEGATIVE_TTL", "soon", "duration"},
        {"NEGATIVE_TTL", "-5", "negative"},
        {"SLIDING_MAX", "1w", "duration"},
        {"SLIDING_MAX", "", "empty"},
        {"FAILSAFE_BACKOFF", "4294967296", "too large (at most 4294967295)"},
        {"FAILSAFE_BACKOFF", "1s ", "duration"},
        {"LOAD_SOFT_TIMEOUT", "1194h", "too large (at most 4294967295)"},
        {"LOAD_SOFT_TIMEOUT", "fast", "duration"},
        {"LOAD_HARD_TIMEOUT", "4294967296ms", "too large"},
        {"LOAD_HARD_TIMEOUT", "-2s", "negative"},
        {"LOCK_TTL", "71583m", "too large"},
        {"LOCK_TTL", "5 sec", "duration"},
        {"LOCK_WAIT", "4294967.296s", "too large"},
        {"LOCK_WAIT", "", "empty"},
        /* freshness counts and switches */
        {"REFRESH_THREADS", "two", "not a non-negative whole number"},
        {"REFRESH_THREADS", "-1", "negative"},
        {"REFRESH_THREADS", "4294967296", "too large (at most 4294967295)"},
        {"REFRESH_QUEUE", "1k", "whole number"},
        {"REFRESH_QUEUE", "", "empty"},
        {"SLIDING_TTL", "sometimes", "is not a boolean"},
        {"SLIDING_TTL", "", "empty"},
        /* beta: exact decimal, no percent, at most 100 */
        {"EARLY_REFRESH_BETA", "abc", "is not a non-negative decimal"},
        {"EARLY_REFRESH_BETA", "", "empty"},
        {"EARLY_REFRESH_BETA", "-1", "negative"},
        {"EARLY_REFRESH_BETA", "50%", "decimal"},
        {"EARLY_REFRESH_BETA", "1e2", "decimal"},
        {"EARLY_REFRESH_BETA", ".5", "decimal"},
        {"EARLY_REFRESH_BETA", "1.", "decimal"},
        {"EARLY_REFRESH_BETA", "nan", "decimal"},
        {"EARLY_REFRESH_BETA", "inf", "decimal"},
        {"EARLY_REFRESH_BETA", "1,5", "decimal"},
        {"EARLY_REFRESH_BETA", "100.5", "too large (at most 100)"},
        {"EARLY_REFRESH_BETA", "101", "too large (at most 100)"},
        {"EARLY_REFRESH_BETA", "9999999999999999999", "too large (at most 100)"},
        /* strings */
        {"KEY_PREFIX", "", "empty"},
        {"INVAL_CHANNEL", "", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char var[64];
        tc_config_t c, before;
        tc_error_t err = {0};
        snprintf(var, sizeof var, P "%s", bad[i].var);
        tc_config_init(&c);
        before = c;
        set_var(P, "POOL_SIZE", "3"); /* a good variable, to prove nothing is committed */
        set_var(P, bad[i].var, bad[i].val);
        int rc = tc_config_from_env(&c, P, &err);
        cr_assert_eq(rc, TC_ECONFIG, "%s='%s' -> %d", var, bad[i].val, rc);
        cr_assert_eq(err.code, TC_ECONFIG);
        cr_assert_eq(strncmp(err.msg, var, strlen(var)), 0, "'%s' does not start with %s",
                     err.msg, var);
        assert_msg_has(&err, bad[i].says);
        cr_assert_eq(memcmp(&c, &before, sizeof c), 0, "%s: cfg changed on error", var);
        clear_vars(P);
    }
}

Test(config_env, message_quotes_binary_safely) {
    char val[300];
    tc_config_t c;
    tc_error_t err;
    memset(val, 'Z', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    val[0] = '\x01';
    tc_config_init(&c);
    set_var(P, "L1_MAX_BYTES", val);
    cr_assert_eq(tc_config_from_env(&c, P, &err), TC_ECONFIG);
    assert_msg_has(&err, "\\x01ZZZ");
    assert_msg_has(&err, "...");
    assert_msg_has(&err, "is not a byte size");
}

/* ---- Validation ---- */

typedef void (*mutate_fn)(tc_config_t *c);

/* Three valid rules; a case breaks the last one so the message must carry index 2. */
static tc_ttl_rule_t good_rules[3] = {
    {"user:", 5, 1000, 0},
    {"\0bin", 4, 0, 5000},
    {"s", 1, 0, 0},
};
static tc_ttl_rule_t bad_rules[3];

static void use_bad_rules(tc_config_t *c, tc_ttl_rule_t last) {
    memcpy(bad_rules, good_rules, sizeof bad_rules);
    bad_rules[2] = last;
    c->ttl_rules = bad_rules;
    c->ttl_rules_count = 3;
}

#define MUT(name, body)                                                                        \
    static void name(tc_config_t *c) {                                                         \
        body;                                                                                  \
    }
MUT(m_shards_npot, c->l1_shards = 12)
MUT(m_shards_big, c->l1_shards = 131072)
MUT(m_jitter_neg, c->ttl_jitter = -0.01)
MUT(m_jitter_big, c->ttl_jitter = 0.51)
MUT(m_jitter_nan, c->ttl_jitter = NAN)
MUT(m_jitter_inf, c->ttl_jitter = INFINITY)
MUT(m_ttl_zero, c->default_ttl_ms = 0)
MUT(m_ttl_huge, c->default_ttl_ms = UINT64_MAX)
MUT(m_maxval_zero, c->max_value_bytes = 0)
MUT(m_maxval_big, c->max_value_bytes = ((size_t)511 << 20) + 1)
MUT(m_prefix_null, c->key_prefix = NULL)
MUT(m_prefix_empty, c->key_prefix = "")
MUT(m_chan_null, c->inval_channel = NULL)
MUT(m_chan_empty, c->inval_channel = "")
MUT(m_url_bad, c->redis_url = "http://x")
MUT(m_url_empty, c->redis_url = "")
MUT(m_pool_zero, c->redis_url = "redis://h"; c->pool_size = 0)
MUT(m_pool_big, c->redis_url = "redis://h"; c->pool_size = 1025)
MUT(m_connect_zero, c->redis_url = "redis://h"; c->connect_timeout_ms = 0)
MUT(m_command_zero, c->redis_url = "redis://h"; c->command_timeout_ms = 0)
MUT(m_breaker_zero, c->redis_url = "redis://h"; c->breaker_threshold = 0)
MUT(m_cooldown_zero, c->redis_url = "redis://h"; c->breaker_cooldown_ms = 0)
MUT(m_ping_small, c->redis_url = "unix:///tmp/r.sock"; c->listener_ping_ms = 9)
/* Freshness: checked with or without a URL. */
#define YEARS100 ((uint64_t)100 * 365 * 24 * 3600 * 1000)
MUT(m_beta_neg, c->early_refresh_beta = -0.5)
MUT(m_beta_big, c->early_refresh_beta = 100.001)
MUT(m_beta_nan, c->early_refresh_beta = NAN)
MUT(m_beta_inf, c->early_refresh_beta = INFINITY)
MUT(m_threads_zero, c->refresh_threads = 0)
MUT(m_threads_big, c->refresh_threads = 65)
MUT(m_queue_zero, c->refresh_queue = 0)
MUT(m_queue_big, c->refresh_queue = (1u << 20) + 1)
MUT(m_soft_over_hard, c->load_soft_timeout_ms = 501; c->load_hard_timeout_ms = 500)
MUT(m_backoff_zero, c->failsafe_backoff_ms = 0)
MUT(m_lock_wait_zero, c->lock_ttl_ms = 1; c->lock_wait_ms = 0)
MUT(m_sliding_max_zero, c->sliding_ttl = 1; c->sliding_max_ms = 0)
MUT(m_stale_huge, c->stale_ttl_ms = YEARS100 + 1)
MUT(m_failsafe_huge, c->failsafe_max_stale_ms = UINT64_MAX)
MUT(m_negative_huge, c->negative_ttl_ms = YEARS100 + 1)
MUT(m_sliding_max_huge, c->sliding_max_ms = YEARS100 + 1)
MUT(m_rules_null, c->ttl_rules = NULL; c->ttl_rules_count = 1)
MUT(m_rules_count_huge, c->ttl_rules = &good_rules[0]; c->ttl_rules_count = SIZE_MAX)

static void m_rule_prefix_null(tc_config_t *c) {
    use_bad_rules(c, (tc_ttl_rule_t){NULL, 3, 0, 0});
}
static void m_rule_len_zero(tc_config_t *c) {
    use_bad_rules(c, (tc_ttl_rule_t){"abc", 0, 0, 0});
}
static void m_rule_len_big(tc_config_t *c) {
    use_bad_rules(c, (tc_ttl_rule_t){"abc", (size_t)TC_MAX_KEY_LEN + 1, 0, 0});
}
static void m_rule_ttl_huge(tc_config_t *c) {
    use_bad_rules(c, (tc_ttl_rule_t){"abc", 3, YEARS100 + 1, 0});
}
static void m_rule_stale_huge(tc_config_t *c) {
    use_bad_rules(c, (tc_ttl_rule_t){"abc", 3, 0, UINT64_MAX});
}

static char long_name[300];
static void m_prefix_long(tc_config_t *c) {
    memset(long_name, 'p', 257);
    long_name[257] = '\0';
    c->key_prefix = long_name;
}
static void m_chan_long(tc_config_t *c) {
    memset(long_name, 'c', 257);
    long_name[257] = '\0';
    c->inval_channel = long_name;
}

Test(config, validate_errors_name_the_field) {
    static const struct {
        mutate_fn fn;
        const char *field;
    } bad[] = {
        {m_shards_npot, "l1_shards: 12 is not a power of two"},
        {m_shards_big, "l1_shards"},
        {m_jitter_neg, "ttl_jitter"},
        {m_jitter_big, "ttl_jitter"},
        {m_jitter_nan, "ttl_jitter"},
        {m_jitter_inf, "ttl_jitter"},
        {m_ttl_zero, "default_ttl_ms"},
        {m_ttl_huge, "default_ttl_ms"},
        {m_maxval_zero, "max_value_bytes"},
        {m_maxval_big, "max_value_bytes"},
        {m_prefix_null, "key_prefix"},
        {m_prefix_empty, "key_prefix"},
        {m_prefix_long, "key_prefix"},
        {m_chan_null, "inval_channel"},
        {m_chan_empty, "inval_channel"},
        {m_chan_long, "inval_channel"},
        {m_url_bad, "redis_url"},
        {m_url_empty, "redis_url"},
        {m_pool_zero, "pool_size"},
        {m_pool_big, "pool_size"},
        {m_connect_zero, "connect_timeout_ms"},
        {m_command_zero, "command_timeout_ms"},
        {m_breaker_zero, "breaker_threshold"},
        {m_cooldown_zero, "breaker_cooldown_ms"},
        {m_ping_small, "listener_ping_ms"},
        {m_beta_neg, "early_refresh_beta"},
        {m_beta_big, "early_refresh_beta: 100.001 is not in 0..100"},
        {m_beta_nan, "early_refresh_beta"},
        {m_beta_inf, "early_refresh_beta"},
        {m_threads_zero, "refresh_threads: 0 is not in 1..64"},
        {m_threads_big, "refresh_threads: 65"},
        {m_queue_zero, "refresh_queue: 0"},
        {m_queue_big, "refresh_queue: 1048577 is not in 1..1048576"},
        {m_soft_over_hard, "load_soft_timeout_ms: 501 is more than load_hard_timeout_ms"},
        {m_backoff_zero, "failsafe_backoff_ms"},
        {m_lock_wait_zero, "lock_wait_ms"},
        {m_sliding_max_zero, "sliding_max_ms"},
        {m_stale_huge, "stale_ttl_ms: 3153600000001 is more than"},
        {m_failsafe_huge, "failsafe_max_stale_ms"},
        {m_negative_huge, "negative_ttl_ms"},
        {m_sliding_max_huge, "sliding_max_ms"},
        {m_rules_null, "ttl_rules: is NULL"},
        {m_rules_count_huge, "ttl_rules_count"},
        {m_rule_prefix_null, "ttl_rules[2].prefix: is NULL"},
        {m_rule_len_zero, "ttl_rules[2].prefix_len: 0 is not in 1..65535"},
        {m_rule_len_big, "ttl_rules[2].prefix_len: 65536"},
        {m_rule_ttl_huge, "ttl_rules[2].ttl_ms"},
        {m_rule_stale_huge, "ttl_rules[2].stale_ttl_ms"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tc_config_t c;
        tc_error_t err = {0};
        tc_config_init(&c);
        bad[i].fn(&c);
        cr_assert_eq(tc__config_validate(&c, &err), TC_ECONFIG, "case %s", bad[i].field);
        cr_assert_eq(err.code, TC_ECONFIG);
        cr_assert_eq(strncmp(err.msg, bad[i].field, strlen(bad[i].field)), 0,
                     "'%s' does not start with '%s'", err.msg, bad[i].field);
    }
}

Test(config, validate_edges_accepted) {
    tc_config_t c;
    tc_error_t err;
    tc_config_init(&c);
    c.l1_shards = 65536;
    c.ttl_jitter = 0.5;
    c.default_ttl_ms = 1;
    c.max_value_bytes = (size_t)511 << 20;
    c.l1_max_value_bytes = c.max_value_bytes * 2; /* allowed: the smaller one wins */
    c.l1_max_bytes = 0;                           /* L1 disabled */
    memset(long_name, 'k', 256);
    long_name[256] = '\0';
    c.key_prefix = long_name;
    c.inval_channel = "x";
    /* Without a URL the Redis-only fields are not checked. */
    c.pool_size = 0;
    c.listener_ping_ms = 0;
    cr_assert_eq(tc__config_validate(&c, &err), 0, "%s", err.msg);
    c.l1_shards = 1;
    c.ttl_jitter = 0.0;
    c.max_value_bytes = 1;
    c.redis_url = "redis://h";
    c.pool_size = 1024;
    c.listener_ping_ms = 10;
    c.connect_timeout_ms = c.command_timeout_ms = c.breaker_cooldown_ms = 1;
    c.breaker_threshold = 1;
    cr_assert_eq(tc__config_validate(&c, &err), 0, "%s", err.msg);
}

Test(config, validate_freshness_edges_accepted) {
    static char max_prefix[TC_MAX_KEY_LEN];
    tc_ttl_rule_t rules[2] = {
        {max_prefix, TC_MAX_KEY_LEN, YEARS100, YEARS100},
        {"\xff", 1, 0, 0},
    };
    tc_config_t c;
    tc_error_t err;
    tc_config_init(&c);
    c.early_refresh_beta = 100.0;
    c.refresh_threads = 64;
    c.refresh_queue = 1u << 20;
    c.load_soft_timeout_ms = c.load_hard_timeout_ms = 500; /* equal is fine */
    c.failsafe_backoff_ms = 1;
    c.lock_wait_ms = 1;
    c.sliding_ttl = 1;
    c.sliding_max_ms = 1;
    c.stale_ttl_ms = c.failsafe_max_stale_ms = c.negative_ttl_ms = YEARS100;
    c.ttl_rules = rules;
    c.ttl_rules_count = 2;
    cr_assert_eq(tc__config_validate(&c, &err), 0, "%s", err.msg);
    /* Lower edges: 0 turns a feature off, and a zero in either timeout skips the order. */
    c.early_refresh_beta = 0.0;
    c.refresh_threads = c.refresh_queue = 1;
    c.load_soft_timeout_ms = 9000;
    c.load_hard_timeout_ms = 0;
    c.lock_ttl_ms = 0;
    c.lock_wait_ms = 0; /* unused without the lock */
    c.sliding_ttl = 0;
    c.sliding_max_ms = 0; /* unused without sliding */
    c.stale_ttl_ms = c.failsafe_max_stale_ms = c.negative_ttl_ms = 0;
    c.ttl_rules = NULL;
    c.ttl_rules_count = 0;
    cr_assert_eq(tc__config_validate(&c, &err), 0, "%s", err.msg);
    c.ttl_rules = rules; /* rules given but count 0: nothing to read */
    rules[0].prefix = NULL;
    cr_assert_eq(tc__config_validate(&c, &err), 0, "%s", err.msg);
    c.load_soft_timeout_ms = 0;
    c.load_hard_timeout_ms = 1;
    cr_assert_eq(tc__config_validate(&c, &err), 0, "%s", err.msg);
}

Test(config, validate_null) {
    tc_error_t err;
    cr_assert_eq(tc__config_validate(NULL, &err), TC_EINVAL);
    cr_assert_eq(err.code, TC_EINVAL);
    cr_assert_eq(tc__config_validate(NULL, NULL), TC_EINVAL);
}

/* ---- Redis URL ---- */

typedef struct {
    const char *url;
    int is_unix;
    const char *host;
    int port;
    const char *path;
    const char *user;
    const char *password;
    int db;
} url_ok_t;

static void assert_str_or_null(const char *got, const char *want, const char *what,
                               const char *url) {
    if (!want) {
        cr_assert_null(got, "%s: %s is '%s', want NULL", url, what, got);
    } else {
        cr_assert_not_null(got, "%s: %s is NULL, want '%s'", url, what, want);
        cr_assert_str_eq(got, want, "%s: %s", url, what);
    }
}

Test(config_url, accepted_forms) {
    static const url_ok_t ok[] = {
        {"redis://localhost", 0, "localhost", 6379, NULL, NULL, NULL, 0},
        {"redis://127.0.0.1:6380", 0, "127.0.0.1", 6380, NULL, NULL, NULL, 0},
        {"redis://127.0.0.1:6380/3", 0, "127.0.0.1", 6380, NULL, NULL, NULL, 3},
        {"redis://h/15", 0, "h", 6379, NULL, NULL, NULL, 15},
        {"redis://h/", 0, "h", 6379, NULL, NULL, NULL, 0},
        {"redis://h:1/65535", 0, "h", 1, NULL, NULL, NULL, 65535},
        {"redis://h:65535", 0, "h", 65535, NULL, NULL, NULL, 0},
        {"REDIS://Cache-1.example_net", 0, "Cache-1.example_net", 6379, NULL, NULL, NULL, 0},
        {"redis://:secret@h", 0, "h", 6379, NULL, NULL, "secret", 0},
        {"redis://alice:secret@h:7000/2", 0, "h", 7000, NULL, "alice", "secret", 2},
        {"redis://@h", 0, "h", 6379, NULL, NULL, NULL, 0},
        {"redis://a%40b:p%3Aw%2F%25d@h", 0, "h", 6379, NULL, "a@b", "p:w/%d", 0},
        {"redis://u:p@ss@h", 0, "h", 6379, NULL, "u", "p@ss", 0},
        {"redis://[::1]", 0, "::1", 6379, NULL, NULL, NULL, 0},
        {"redis://[::1]:6390/1", 0, "::1", 6390, NULL, NULL, NULL, 1},
        {"redis://u:p@[fe80::1:2]:7", 0, "fe80::1:2", 7, NULL, "u", "p", 0},
        {"unix:///tmp/redis.sock", 1, NULL, 0, "/tmp/redis.sock", NULL, NULL, 0},
        {"unix:///r.sock?db=4", 1, NULL, 0, "/r.sock", NULL, NULL, 4},
        {"unix:///r.sock?password=p%26w", 1, NULL, 0, "/r.sock", NULL, "p&w", 0},
        {"unix:///r.sock?db=2&password=pw&user=bob", 1, NULL, 0, "/r.sock", "bob", "pw", 2},
        {"UNIX:///r.sock?user=a%20b&password=x", 1, NULL, 0, "/r.sock", "a b", "x", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        tc__endpoint_t ep;
        tc_error_t err = {0};
        const char *u = ok[i].url;
        cr_assert_eq(tc__endpoint_parse(u, &ep, &err), 0, "%s: %s", u, err.msg);
        cr_assert_eq(ep.is_unix, ok[i].is_unix, "%s", u);
        assert_str_or_null(ep.host, ok[i].host, "host", u);
        if (!ok[i].is_unix) {
            cr_assert_eq(ep.port, ok[i].port, "%s: port %d", u, ep.port);
        }
        assert_str_or_null(ep.path, ok[i].path, "path", u);
        assert_str_or_null(ep.user, ok[i].user, "user", u);
        assert_str_or_null(ep.password, ok[i].password, "password", u);
        cr_assert_eq(ep.db, ok[i].db, "%s: db %d", u, ep.db);
        tc__endpoint_deinit(&ep);
        cr_assert_null(ep.host);
        cr_assert_null(ep.password);
        tc__endpoint_deinit(&ep); /* twice is safe */
    }
}

Test(config_url, longest_unix_path) {
    char url[200], path[120];
    tc__endpoint_t ep;
    memset(path, 'a', sizeof path);
    path[0] = '/';
    path[107] = '\0'; /* 107 bytes + NUL fills sun_path exactly */
    snprintf(url, sizeof url, "unix://%s", path);
    cr_assert_eq(tc__endpoint_parse(url, &ep, NULL), 0);
    cr_assert_str_eq(ep.path, path);
    tc__endpoint_deinit(&ep);
    path[107] = 'a';
    path[108] = '\0';
    snprintf(url, sizeof url, "unix://%s", path);
    tc_error_t err;
    cr_assert_eq(tc__endpoint_parse(url, &ep, &err), TC_ECONFIG);
    assert_msg_has(&err, "redis_url: unix socket path");
    cr_assert_null(ep.path);
}

Test(config_url, rejected_forms) {
    static const struct {
        const char *url;
        const char *says;
    } bad[] = {
        {"", "empty"},
        {"redis://", "host is empty"},
        {"redis://:6379", "host is empty"},
        {"redis://u:p@", "host is empty"},
        {"redis://u:p@/1", "host is empty"},
        {"redis://h:0", "port '0'"},
        {"redis://h:65536", "port '65536'"},
        {"redis://h:abc", "port 'abc'"},
        {"redis://h:", "port ''"},
        {"redis://h:-1", "port"},
        {"redis://h:99999999999999999999999", "port"},
        {"redis://h/abc", "db 'abc'"},
        {"redis://h/1x", "db '1x'"},
        {"redis://h/65536", "db '65536'"},
        {"redis://h/-1", "db"},
        {"redis://h/1/2", "db '1/2'"},
        {"redis://h:6379x", "port '6379x'"},
        {"redis://h?timeout=1", "query"},
        {"redis://h/0?x=1", "query"},
        {"redis://h#frag", "query"},
        {"redis://h x", "invalid character"},
        {"redis://::1", "brackets"},
        {"redis://[::1", "']'"},
        {"redis://[nothex]:1", "IPv6"},
        {"redis://[]", "IPv6"},
        {"redis://[::1]x", "after ']'"},
        {"redis://[::1]:0", "port"},
        {"redis://u%zz:p@h", "percent-escape in user"},
        {"redis://u:p%2@h", "percent-escape in password"},
        {"redis://u:p%00@h", "percent-escape"},
        {"redis://bob@h", "without a password"},
        {"rediss://h:6380", "TLS"},
        {"unix://relative.sock", "absolute"},
        {"unix://tmp/r.sock", "absolute"},
        {"unix:///r.sock?db=x", "db 'x'"},
        {"unix:///r.sock?db=", "empty"},
        {"unix:///r.sock?password=", "empty"},
        {"unix:///r.sock?timeout=5", "unknown query parameter"},
        {"unix:///r.sock?db", "key=value"},
        {"unix:///r.sock?", "key=value"},
        {"unix:///r.sock?db=1&", "key=value"},
        {"unix:///r.sock?password=a&password=b", "twice"},
        {"unix:///r.sock?user=bob", "without a password"},
        {"unix:///r.sock?password=%4", "percent-escape"},
        {"redis+sentinel://h:26379", "master-name"},
        {"redis+sentinel://h:26379/", "master name"},
        {"redis+sentinel://h,,i/m", "empty sentinel"},
        {"redis+sentinel://h:0/m", "port"},
        {"redis+sentinel://h x/m", "invalid character"},
        {"redis+sentinel://h/m?x=1", "query"},
        {"redis+sentinel://h/m/1x", "db '1x'"},
        {"redis+sentinel://bob@h/m", "without a password"},
        {"http://h", "unknown scheme"},
        {"tcp://h:6379", "unknown scheme"},
        {"localhost:6379", "unknown scheme"},
        {"redis:/h", "unknown scheme"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tc__endpoint_t ep;
        tc_error_t err = {0};
        const char *u = bad[i].url;
        memset(&ep, 0x5a, sizeof ep); /* garbage in: must come back zeroed */
        cr_assert_eq(tc__endpoint_parse(u, &ep, &err), TC_ECONFIG, "'%s' accepted", u);
        cr_assert_eq(strncmp(err.msg, "redis_url: ", 11), 0, "%s: '%s'", u, err.msg);
        cr_assert(strstr(err.msg, bad[i].says), "%s: '%s' lacks '%s'", u, err.msg, bad[i].says);
        cr_assert_null(ep.host, "%s", u);
        cr_assert_null(ep.path, "%s", u);
        cr_assert_null(ep.user, "%s", u);
        cr_assert_null(ep.password, "%s", u);
        cr_assert_null(ep.sentinels, "%s", u);
        cr_assert_null(ep.master_name, "%s", u);
        tc__endpoint_deinit(&ep);
    }
}

/* Sentinels: each address checked as a host, kept as host:port (26379 when none is given,
 * IPv6 without brackets); the name, the db and the master's credentials kept. */
Test(config_url, sentinel_urls) {
    tc__endpoint_t ep;
    tc_error_t err;
    cr_assert_eq(tc__endpoint_parse("redis+sentinel://a:p%40ss@s1:26380,s2,[::1]:5/mymaster/3",
                                    &ep, &err),
                 0, "%s", err.msg);
    cr_assert_str_eq(ep.sentinels, "s1:26380,s2:26379,::1:5");
    cr_assert_str_eq(ep.master_name, "mymaster");
    cr_assert_eq(ep.db, 3);
    cr_assert_str_eq(ep.user, "a");
    cr_assert_str_eq(ep.password, "p@ss");
    cr_assert_null(ep.host, "the master's address is found on connect");
    tc__endpoint_deinit(&ep);
    cr_assert_null(ep.sentinels);
    cr_assert_eq(tc__endpoint_parse("REDIS+SENTINEL://only/m", &ep, &err), 0, "%s", err.msg);
    cr_assert_str_eq(ep.sentinels, "only:26379");
    cr_assert_eq(ep.db, 0);
    tc__endpoint_deinit(&ep);
}

Test(config_url, unknown_scheme_lists_forms) {
    tc_error_t err;
    tc__endpoint_t ep;
    cr_assert_eq(tc__endpoint_parse("memcached://h", &ep, &err), TC_ECONFIG);
    assert_msg_has(&err, "redis://");
    assert_msg_has(&err, "unix://");
    cr_assert_eq(tc__endpoint_parse("rediss://h", &ep, &err), TC_ECONFIG);
    assert_msg_has(&err, "hiredis 0.14");
}

Test(config_url, null_arguments) {
    tc__endpoint_t ep;
    tc_error_t err;
    cr_assert_eq(tc__endpoint_parse(NULL, &ep, &err), TC_ECONFIG);
    assert_msg_has(&err, "redis_url");
    cr_assert_eq(tc__endpoint_parse("redis://h", NULL, &err), TC_EINVAL);
    tc__endpoint_deinit(NULL);
    memset(&ep, 0, sizeof ep);
    tc__endpoint_deinit(&ep);
}

Test(config_url, env_url_validates) {
    tc_config_t c;
    tc_error_t err;
    clear_vars(P);
    tc_config_init(&c);
    set_var(P, "REDIS_URL", "rediss://secure:6380");
    cr_assert_eq(tc_config_from_env(&c, P, &err), TC_ECONFIG);
    assert_msg_has(&err, P "REDIS_URL: rediss://");
    clear_vars(P);
}

/* A password's unescaped '/', '?', '#' or '@' is still the password: it parses, and no
 * error message ever quotes it. */
Test(config_url, password_with_reserved_characters_is_never_echoed) {
    static const char *const ok[] = {"redis://u:SEC/RET@h:6379/2", "redis://u:SEC?RET@h:6379",
                                     "redis://u:SEC#RET@h", "redis://:SEC@RET@h:1/0"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        tc__endpoint_t ep;
        tc_error_t err;
        cr_assert_eq(tc__endpoint_parse(ok[i], &ep, &err), 0, "%s: %s", ok[i], err.msg);
        cr_assert_str_eq(ep.host, "h");
        cr_assert(strstr(ep.password, "SEC") && strstr(ep.password, "RET"));
        tc__endpoint_deinit(&ep);
    }
    static const char *const bad[] = {"redis://u:SEC/RET@h:port", "redis://u:SECRET@",
                                      "redis://u:SEC%zzRET@h", "redis://u:SECRET@h:1/notadb",
                                      "redis://u:SECRET@h:1?x=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tc__endpoint_t ep;
        tc_error_t err;
        cr_assert_eq(tc__endpoint_parse(bad[i], &ep, &err), TC_ECONFIG, "%s", bad[i]);
        cr_assert_null(strstr(err.msg, "SEC"), "'%s' echoes the password: %s", bad[i], err.msg);
    }
}

/* A typo in a variable name is an error naming the nearest variable, not a default left
 * silently in force. */
Test(config_env, unknown_variable_names_the_nearest) {
    tc_config_t c;
    tc_error_t err;
    tc_config_init(&c);
    set_var(P, "L1_MAX_BTYES", "1MiB");
    cr_assert_eq(tc_config_from_env(&c, P, &err), TC_ECONFIG);
    assert_msg_has(&err, P "L1_MAX_BTYES: unknown variable; did you mean " P "L1_MAX_BYTES?");
    cr_assert_eq(c.l1_max_bytes, (size_t)64 << 20, "cfg changed by a refused call");
    unsetenv(P "L1_MAX_BTYES");
    set_var(P, "COMPLETELY_DIFFERENT", "1");
    cr_assert_eq(tc_config_from_env(&c, P, &err), TC_ECONFIG);
    assert_msg_has(&err, "unknown variable (see tc_config_t");
    unsetenv(P "COMPLETELY_DIFFERENT");
    cr_assert_eq(tc_config_from_env(&c, P, &err), 0);
}
