/*
 * old_caller.c - a caller compiled against tiercache 0.1.0's header (tests/abi/include),
 * linked against today's library: the situation of a program that was built once and
 * meets a newer libtiercache. Its structs are 0.1.0's, smaller than today's, and it calls
 * the 0.1.0 entry points (tc_config_init, tc_config_from_env, tc_open, tc_stats). Every
 * struct sits in front of guard bytes: the library must never write past the size the
 * program was built with, nor read fields that size does not have.
 */
#include "old_caller.h"

#include "tiercache.h" /* tests/abi/include/tiercache.h: 0.1.0 */

#include <stdlib.h>
#include <string.h>

#define GUARD_BYTES 512
#define GUARD       0xAB

typedef struct {
    tc_config_t cfg;
    unsigned char guard[GUARD_BYTES];
} guarded_config_t;

typedef struct {
    tc_stats_t st;
    unsigned char guard[GUARD_BYTES];
} guarded_stats_t;

static int guard_intact(const unsigned char *g) {
    for (size_t i = 0; i < GUARD_BYTES; i++)
        if (g[i] != GUARD)
            return 0;
    return 1;
}

size_t tc_abi_old_config_size(void) {
    return sizeof(tc_config_t);
}

size_t tc_abi_old_stats_size(void) {
    return sizeof(tc_stats_t);
}

#define STEP(n, cond, msg)                                                                     \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            *why = msg;                                                                        \
            return n;                                                                          \
        }                                                                                      \
    } while (0)

int tc_abi_old_config_init(const char **why) {
    guarded_config_t g;
    memset(&g, GUARD, sizeof g);
    tc_config_init(&g.cfg);
    STEP(1, guard_intact(g.guard), "tc_config_init wrote past the 0.1.0 tc_config_t");
    STEP(2, g.cfg.default_ttl_ms == 60000 && g.cfg.pool_size == 8,
         "tc_config_init did not fill the 0.1.0 fields with their defaults");
    return 0;
}

int tc_abi_old_open_use_close(const char *url, const char **why) {
    guarded_config_t g;
    memset(&g, GUARD, sizeof g);
    tc_config_init(&g.cfg);
    g.cfg.redis_url = url;
    g.cfg.key_prefix = "t:abi:";
    g.cfg.inval_channel = "t:abi:inval";
    tc_cache_t *c = NULL;
    tc_error_t err;
    /* The guard bytes after the struct are 0xAB: a library reading today's fields there
     * would see garbage (and refuse or misbehave). */
    STEP(3, tc_open(&g.cfg, &c, &err) == 0, "tc_open refused a 0.1.0 tc_config_t");
    STEP(4, tc_set(c, "k", 1, "v", 1, 0) == 0, "tc_set failed");
    char buf[4];
    size_t len = sizeof buf;
    STEP(5, tc_get_copy(c, "k", 1, buf, &len) == 0 && len == 1 && buf[0] == 'v',
         "tc_get_copy did not read back the value");
    guarded_stats_t s;
    memset(&s, GUARD, sizeof s);
    STEP(6, tc_stats(c, &s.st) == 0, "tc_stats failed");
    STEP(7, guard_intact(s.guard), "tc_stats wrote past the 0.1.0 tc_stats_t");
    STEP(8, s.st.l1_entries <= 1 && s.st.l1_max_bytes == g.cfg.l1_max_bytes,
         "tc_stats filled the 0.1.0 fields wrongly");
    tc_close(c);
    return 0;
}

int tc_abi_old_config_from_env(const char *prefix, const char **why) {
    guarded_config_t g;
    memset(&g, GUARD, sizeof g);
    tc_config_init(&g.cfg);
    tc_error_t err;
    int rc = tc_config_from_env(&g.cfg, prefix, &err);
    STEP(9, guard_intact(g.guard), "tc_config_from_env wrote past the 0.1.0 tc_config_t");
    return rc == 0 ? 0 : 100 - rc; /* the caller learns the code */
}
