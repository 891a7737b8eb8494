/*
 * env_config.c - configuration from the environment, as a deployment does it, and the
 * effective configuration printed with where each value came from.
 *
 *   TIERCACHE_REDIS_URL=redis://127.0.0.1:6379 TIERCACHE_DEFAULT_TTL=5m ./env_config
 *   MYAPP_CACHE_L1_MAX_BYTES=1GiB ./env_config --prefix MYAPP_CACHE_
 *
 * The pattern, in three steps:
 *   1. tc_config_init: the library's documented defaults;
 *   2. the application's own defaults, in code (here a bigger L1, negative caching);
 *   3. tc_config_from_env: the operator's TIERCACHE_* variables (or another prefix) on
 *      top, strictly: a bad value, or a variable that names no setting (a typo), is
 *      refused with a message naming the variable, and the program stops before it runs
 *      with a configuration nobody asked for;
 * then tc_open, whose error message names a bad field or says why Redis was refused
 * (wrong password, missing socket...). Both messages come in a caller-owned tc_error_t.
 *
 * tiercache's own log messages (why Redis is unreachable, for one) go to stderr through a
 * log callback, at TIERCACHE_LOG's level (warn when unset).
 *
 * Exit status: 0 when the cache opened; 2 when the environment was refused; 3 when
 * tc_open failed (for example TIERCACHE_REQUIRE_REDIS=1 and Redis unreachable). The
 * Redis URL is printed with its password masked, as tiercache's own messages do.
 */
#include <tiercache.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How to print a field: its C type and its unit. */
typedef enum kind {
    K_BYTES,    /* size_t, bytes */
    K_COUNT,    /* size_t, a count */
    K_UINT,     /* unsigned */
    K_MS64,     /* uint64_t, milliseconds */
    K_MS32,     /* uint32_t, milliseconds */
    K_DOUBLE,   /* double */
    K_BOOL,     /* int, 0 or not */
    K_STRING,   /* const char * */
    K_URL,      /* const char *, a password inside is masked */
    K_LEVEL,    /* int, a tc_log_level_t */
    K_TRACKING, /* int, a tc_tracking_t */
    K_POLICY,   /* int, a tc_l1_policy_t */
    K_BYTE,     /* int, one character or -1 */
} kind_t;

typedef struct field {
    const char *name; /* the tc_config_t field */
    const char *env;  /* its variable, after the prefix */
    kind_t kind;
    size_t offset;
} field_t;

#define F(field, env, kind)                                                                    \
    { #field, env, kind, offsetof(tc_config_t, field) }

/* Every field an environment variable can set (docs/configuration.md), in header order. */
static const field_t FIELDS[] = {
    F(l1_max_bytes, "L1_MAX_BYTES", K_BYTES),
    F(l1_max_entries, "L1_MAX_ENTRIES", K_COUNT),
    F(l1_shards, "L1_SHARDS", K_UINT),
    F(l1_max_value_bytes, "L1_MAX_VALUE_BYTES", K_BYTES),
    F(default_ttl_ms, "DEFAULT_TTL", K_MS64),
    F(ttl_jitter, "TTL_JITTER", K_DOUBLE),
    F(max_value_bytes, "MAX_VALUE_BYTES", K_BYTES),
    F(redis_url, "REDIS_URL", K_URL),
    F(key_prefix, "KEY_PREFIX", K_STRING),
    F(inval_channel, "INVAL_CHANNEL", K_STRING),
    F(pool_size, "POOL_SIZE", K_UINT),
    F(connect_timeout_ms, "CONNECT_TIMEOUT", K_MS32),
    F(command_timeout_ms, "COMMAND_TIMEOUT", K_MS32),
    F(require_redis, "REQUIRE_REDIS", K_BOOL),
    F(breaker_threshold, "BREAKER_THRESHOLD", K_UINT),
    F(breaker_cooldown_ms, "BREAKER_COOLDOWN", K_MS32),
    F(listener_ping_ms, "LISTENER_PING", K_MS32),
    F(stale_ttl_ms, "STALE_TTL", K_MS64),
    F(failsafe_max_stale_ms, "FAILSAFE_MAX_STALE", K_MS64),
    F(failsafe_backoff_ms, "FAILSAFE_BACKOFF", K_MS32),
    F(early_refresh_beta, "EARLY_REFRESH_BETA", K_DOUBLE),
    F(negative_ttl_ms, "NEGATIVE_TTL", K_MS64),
    F(load_soft_timeout_ms, "LOAD_SOFT_TIMEOUT", K_MS32),
    F(load_hard_timeout_ms, "LOAD_HARD_TIMEOUT", K_MS32),
    F(refresh_threads, "REFRESH_THREADS", K_UINT),
    F(refresh_queue, "REFRESH_QUEUE", K_UINT),
    F(lock_ttl_ms, "LOCK_TTL", K_MS32),
    F(lock_wait_ms, "LOCK_WAIT", K_MS32),
    F(sliding_ttl, "SLIDING_TTL", K_BOOL),
    F(sliding_max_ms, "SLIDING_MAX", K_MS64),
    F(degraded_ttl_ms, "DEGRADED_TTL", K_MS64),
    F(log_level, "LOG", K_LEVEL),
    F(replay_log_len, "REPLAY_LOG_LEN", K_UINT),
    F(tracking, "TRACKING", K_TRACKING),
    F(plain_keys, "PLAIN_KEYS", K_BOOL),
    F(ns_separator, "NS_SEPARATOR", K_BYTE),
    F(write_behind_batch, "WRITE_BEHIND_BATCH", K_UINT),
    F(write_behind_delay_ms, "WRITE_BEHIND_DELAY", K_MS32),
    F(write_behind_max_queue, "WRITE_BEHIND_MAX_QUEUE", K_UINT),
    F(write_behind_attempts, "WRITE_BEHIND_ATTEMPTS", K_UINT),
    F(write_behind_retry_ms, "WRITE_BEHIND_RETRY", K_MS32),
    F(write_behind_flusher, "WRITE_BEHIND_FLUSHER", K_BOOL),
    F(write_behind_lease_ms, "WRITE_BEHIND_LEASE", K_MS32),
    F(l1_policy, "L1_POLICY", K_POLICY),
};

/* tiercache's log: degraded opens, breaker, listener... (level from TIERCACHE_LOG, warn
 * when unset). A service would hand these to its own logger. */
static void print_log(void *arg, int level, const char *msg, const void *key, size_t klen) {
    static const char *const names[] = {"off", "error", "warn", "info", "debug"};
    (void)arg, (void)key, (void)klen;
    fprintf(stderr, "tiercache %s: %s\n", level >= 0 && level <= 4 ? names[level] : "?", msg);
}

/* The application's own defaults (step 2): what this service wants unless told otherwise. */
static void app_defaults(tc_config_t *cfg) {
    cfg->log_fn = print_log;
    cfg->l1_max_bytes = (size_t)128 << 20; /* 128 MiB: the service has memory to spare */
    cfg->negative_ttl_ms = 5000;           /* a missing row costs one query per 5 s */
    cfg->key_prefix = "env_config:";
    cfg->inval_channel = "env_config:inval";
}

/* ---- printing ---- */

/* url with its password (user:PASSWORD@, or ?password=...) replaced by ***. */
static void mask_url(const char *url, char *out, size_t cap) {
    char tmp[512];
    const char *scheme = strstr(url, "://"), *at = strrchr(url, '@'), *colon = NULL;
    if (scheme && at && at > scheme) /* the last '@': a password may hold '/' or '@' */
        colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
    if (colon)
        snprintf(tmp, sizeof tmp, "%.*s***%s", (int)(colon + 1 - url), url, at);
    else
        snprintf(tmp, sizeof tmp, "%s", url);
    const char *pw = strstr(tmp, "password=");
    if (pw)
        snprintf(out, cap, "%.*s***%s", (int)(pw + 9 - tmp), tmp,
                 pw + 9 + strcspn(pw + 9, "&#"));
    else
        snprintf(out, cap, "%s", tmp);
}

static void human_bytes(double b, char *out, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4)
        b /= 1024, u++;
    snprintf(out, cap, "%.4g %s", b, units[u]);
}

/* The field's value in cfg, as text. */
static void format_value(const tc_config_t *cfg, const field_t *f, char *out, size_t cap) {
    const char *p = (const char *)cfg + f->offset;
    static const char *const levels[] = {"off", "error", "warn", "info", "debug"};
    static const char *const tracking[] = {"off", "bcast", "default"};
    char human[32];
    size_t sz;
    uint64_t u64;
    uint32_t u32;
    unsigned u;
    double d;
    int i;
    const char *s;
    switch (f->kind) {
    case K_BYTES:
        memcpy(&sz, p, sizeof sz);
        human_bytes((double)sz, human, sizeof human);
        snprintf(out, cap, "%zu (%s)", sz, human);
        break;
    case K_COUNT:
        memcpy(&sz, p, sizeof sz);
        snprintf(out, cap, "%zu", sz);
        break;
    case K_UINT:
        memcpy(&u, p, sizeof u);
        snprintf(out, cap, "%u", u);
        break;
    case K_MS64:
        memcpy(&u64, p, sizeof u64);
        snprintf(out, cap, "%llu ms", (unsigned long long)u64);
        break;
    case K_MS32:
        memcpy(&u32, p, sizeof u32);
        snprintf(out, cap, "%lu ms", (unsigned long)u32);
        break;
    case K_DOUBLE:
        memcpy(&d, p, sizeof d);
        snprintf(out, cap, "%g", d);
        break;
    case K_BOOL:
        memcpy(&i, p, sizeof i);
        snprintf(out, cap, "%s", i ? "yes" : "no");
        break;
    case K_STRING:
    case K_URL:
        memcpy(&s, p, sizeof s);
        if (!s || !*s)
            snprintf(out, cap, "%s", f->kind == K_URL ? "(none: L1-only)" : "(none)");
        else if (f->kind == K_URL)
            mask_url(s, out, cap);
        else
            snprintf(out, cap, "\"%s\"", s);
        break;
    case K_LEVEL:
        memcpy(&i, p, sizeof i);
        snprintf(out, cap, "%s", i >= 0 && i <= 4 ? levels[i] : "?");
        break;
    case K_TRACKING:
        memcpy(&i, p, sizeof i);
        snprintf(out, cap, "%s", i >= 0 && i <= 2 ? tracking[i] : "?");
        break;
    case K_POLICY:
        memcpy(&i, p, sizeof i);
        snprintf(out, cap, "%s", i == TC_L1_POLICY_S3FIFO ? "s3fifo" : "default");
        break;
    case K_BYTE:
        memcpy(&i, p, sizeof i);
        if (i < 0)
            snprintf(out, cap, "none");
        else
            snprintf(out, cap, "'%c'", i);
        break;
    }
}

/* Where the field's value came from: the environment, the application, the library. */
static const char *source(const field_t *f, const char *prefix, const tc_config_t *lib,
                          const tc_config_t *app) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", prefix, f->env);
    if (getenv(name))
        return "environment";
    char a[256], b[256];
    format_value(lib, f, a, sizeof a);
    format_value(app, f, b, sizeof b);
    return strcmp(a, b) != 0 ? "application" : "library default";
}

static void print_config(const tc_config_t *cfg, const char *prefix, const tc_config_t *lib,
                         const tc_config_t *app) {
    printf("effective configuration (%s* variables over the application's defaults):\n",
           prefix);
    printf("  %-22s %-36s %s\n", "field", "value", "from");
    for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++) {
        char value[512], var[128];
        format_value(cfg, &FIELDS[i], value, sizeof value);
        const char *from = source(&FIELDS[i], prefix, lib, app);
        snprintf(var, sizeof var, "%s%s", prefix, FIELDS[i].env);
        if (strcmp(from, "environment") == 0)
            printf("  %-22s %-36s environment (%s)\n", FIELDS[i].name, value, var);
        else
            printf("  %-22s %-36s %s\n", FIELDS[i].name, value, from);
    }
}

int main(int argc, char **argv) {
    const char *prefix = "TIERCACHE_";
    if (argc == 3 && strcmp(argv[1], "--prefix") == 0) {
        prefix = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--prefix PREFIX]   (default TIERCACHE_)\n", argv[0]);
        return 2;
    }

    tc_config_t lib, app, cfg;
    tc_config_init(&lib); /* 1. the library's defaults */
    app = lib;
    app_defaults(&app); /* 2. this application's */
    cfg = app;
    tc_error_t err;
    if (tc_config_from_env(&cfg, prefix, &err) != TC_OK) { /* 3. the operator's */
        fprintf(stderr, "env_config: configuration refused: %s\n", err.msg);
        return 2;
    }
    print_config(&cfg, prefix, &lib, &app);

    tc_cache_t *cache;
    int rc = tc_open(&cfg, &cache, &err);
    if (rc != TC_OK) {
        fprintf(stderr, "env_config: tc_open: %s: %s\n", tc_err_name(rc), err.msg);
        return 3;
    }
    tc_stats_t st;
    tc_stats(cache, &st);
    if (!cfg.redis_url || !*cfg.redis_url)
        printf("redis: none (L1-only)\n");
    else if (st.listener_connected)
        printf("redis: connected, invalidation listener subscribed\n");
    else
        printf("redis: not reachable now: running degraded (L1 and loaders), retrying in "
               "the background\n");
    printf("L1: %llu bytes budget\n", (unsigned long long)st.l1_max_bytes);
    tc_close(cache);
    return 0;
}
