/*
 * cache_aside.c - embedding tiercache in front of a slow source of truth.
 *
 * A pretend "user profile" database answers in ~20 ms. The program reads profiles with
 * tc_fetch (cache-aside in one call: L1, then Redis, then the loader), updates one with
 * tc_set (every process's L1 hears about it), and prints what each read cost and where
 * it was answered. A user that does not exist is cached as absent (negative caching).
 * Configuration comes from the environment, as operators would set it:
 *
 *   TIERCACHE_REDIS_URL=unix:///tmp/redis.sock ./cache_aside
 *   TIERCACHE_L1_MAX_BYTES=64MiB TIERCACHE_DEFAULT_TTL=30s ./cache_aside
 *
 * Without TIERCACHE_REDIS_URL it runs L1-only.
 */
#include <tiercache.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The slow source: 20 ms per query, and user 404 does not exist. */
static int load_profile(void *db_calls, const void *key, size_t klen, tc_load_t *load) {
    struct timespec delay = {0, 20 * 1000 * 1000};
    nanosleep(&delay, NULL);
    ++*(int *)db_calls;
    if (klen == 8 && memcmp(key, "user:404", 8) == 0)
        return TC_ENOTFOUND;
    char profile[96];
    int n = snprintf(profile, sizeof profile, "{\"id\":\"%.*s\",\"plan\":\"pro\"}", (int)klen,
                     (const char *)key);
    tc_load_set_ttl(load, 60000); /* profiles may live a minute */
    return tc_load_set_value(load, profile, (size_t)n);
}

static void read_profile(tc_cache_t *cache, const char *user, int *db_calls) {
    int before = *db_calls;
    double t0 = now_ms();
    tc_ref_t *ref;
    int rc = tc_fetch(cache, user, strlen(user), load_profile, db_calls, &ref);
    double took = now_ms() - t0;
    if (rc == TC_OK) {
        printf("  %-9s %8.3f ms  %-6s %.*s\n", user, took,
               *db_calls > before ? "source" : "cache", (int)tc_ref_size(ref),
               (const char *)tc_ref_data(ref));
        tc_ref_release(ref);
    } else {
        printf("  %-9s %8.3f ms  %-6s %s\n", user, took,
               *db_calls > before ? "source" : "cache", tc_strerror(rc));
    }
}

int main(void) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.key_prefix = "example:";
    cfg.inval_channel = "example:inval";
    cfg.negative_ttl_ms = 30000; /* remember "no such user" too: no query storm for it */
    tc_error_t err;
    if (tc_config_from_env(&cfg, NULL, &err) != TC_OK) {
        fprintf(stderr, "configuration: %s\n", err.msg);
        return 2;
    }
    tc_cache_t *cache;
    if (tc_open(&cfg, &cache, &err) != TC_OK) {
        fprintf(stderr, "tc_open: %s\n", err.msg);
        return 1;
    }
    printf("tiercache %s, L2: %s\n", tc_version(), cfg.redis_url ? cfg.redis_url : "none");
    int db_calls = 0;
    const char *users[] = {"user:1", "user:2", "user:404"};
    for (int round = 1; round <= 2; round++) {
        printf("round %d\n", round);
        for (size_t i = 0; i < sizeof users / sizeof *users; i++)
            read_profile(cache, users[i], &db_calls);
    }
    const char *updated = "{\"id\":\"user:1\",\"plan\":\"enterprise\"}";
    int rc = tc_set(cache, "user:1", 6, updated, strlen(updated), 0);
    printf("update user:1 -> %s\n",
           rc == TC_OK ? "ok (published to every process)" : tc_strerror(rc));
    read_profile(cache, "user:1", &db_calls);
    tc_del(cache, "user:2", 6);

    tc_stats_t st;
    tc_stats(cache, &st);
    printf("source queries: %d; L1 hits %llu, L2 hits %llu, loads %llu\n", db_calls,
           (unsigned long long)st.l1_hits, (unsigned long long)st.l2_hits,
           (unsigned long long)st.loads);
    tc_close(cache);
    return 0;
}
