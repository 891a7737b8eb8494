/*
 * test_abi.c - a program built against an older tiercache.h keeps working with this
 * library (tiercache.h "Growing structs").
 *
 * tests/abi/old_caller.c is compiled against tiercache 0.1.0's header, kept verbatim in
 * tests/abi/include, and linked with today's library: its tc_config_t and tc_stats_t are
 * smaller, and it calls the entry points without _size. Each call runs with guard bytes
 * after the old struct; the library must neither write past it nor read today's fields
 * from it. The other direction (a newer header than the library) is checked here with
 * today's header and a struct padded past today's size.
 */
/* tc-test-labels: integration */
#include "config.h"
#include "old_caller.h"
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    unsetenv("TCABI_DEGRADED_TTL");
    unsetenv("TCABI_DEFAULT_TTL");
}

TestSuite(abi, .init = setup, .fini = teardown, .timeout = 60);

Test(abi, old_struct_sizes_are_the_v1_sizes) {
    cr_assert_eq(tc_abi_old_config_size(), TC__CONFIG_V1_SIZE);
    cr_assert_eq(tc_abi_old_stats_size(), TC__STATS_V1_SIZE);
    cr_assert_gt(sizeof(tc_config_t), tc_abi_old_config_size(), "nothing appended to test");
    cr_assert_gt(sizeof(tc_stats_t), tc_abi_old_stats_size(), "nothing appended to test");
}

Test(abi, old_caller_config_init_stays_in_its_struct) {
    const char *why = "";
    cr_assert_eq(tc_abi_old_config_init(&why), 0, "%s", why);
}

Test(abi, old_caller_opens_uses_and_reads_stats) {
    const char *why = "";
    cr_assert_eq(tc_abi_old_open_use_close(NULL, &why), 0, "L1-only: %s", why);
    cr_assert_eq(tc_abi_old_open_use_close(tc_test_redis_url(redis), &why), 0, "Redis: %s",
                 why);
}

Test(abi, old_caller_from_env_refuses_fields_it_does_not_have) {
    const char *why = "";
    setenv("TCABI_DEFAULT_TTL", "5s", 1);
    cr_assert_eq(tc_abi_old_config_from_env("TCABI_", &why), 0, "%s", why);
    setenv("TCABI_DEGRADED_TTL", "5s", 1); /* appended after 0.1.0 */
    cr_assert_eq(tc_abi_old_config_from_env("TCABI_", &why), 100 - TC_ECONFIG,
                 "an old struct cannot take DEGRADED_TTL: it must be refused (%s)", why);
}

/* A caller built against a newer header than this library: unknown trailing fields are
 * zero from tc_config_init and must stay unset for tc_open to accept the struct. */
Test(abi, newer_caller_struct) {
    typedef struct {
        tc_config_t cfg;
        unsigned char newer[64];
    } newer_t;
    newer_t n;
    memset(&n, 0xAB, sizeof n);
    tc_config_init_size(&n.cfg, sizeof n);
    for (size_t i = 0; i < sizeof n.newer; i++)
        cr_assert_eq(n.newer[i], 0, "byte %zu of the newer fields is not zeroed", i);
    tc_cache_t *c = NULL;
    tc_error_t err;
    cr_assert_eq(tc_open_size(&n.cfg, sizeof n, &c, &err), 0, "%s", err.msg);
    tc_stats_t st[2];
    memset(st, 0xAB, sizeof st);
    cr_assert_eq(tc_stats_size(c, &st[0], sizeof st), 0);
    const unsigned char *tail = (const unsigned char *)&st[1];
    for (size_t i = 0; i < sizeof st[1]; i++)
        cr_assert_eq(tail[i], 0, "stats byte %zu past ours is not zeroed", i);
    tc_close(c);
    n.newer[5] = 1; /* a setting this library does not know */
    cr_assert_eq(tc_open_size(&n.cfg, sizeof n, &c, &err), TC_ECONFIG);
    cr_assert_null(c);
    cr_assert(strstr(err.msg, "newer tiercache.h"), "%s", err.msg);
}
