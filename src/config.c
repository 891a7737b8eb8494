/*
 * config.c - defaults, the growing struct, environment overlay and validation.
 *
 * What it owns: everything between "a human wrote a setting" and "the cache may run with
 * it". Layers, each with one job:
 *
 *   text  --(units.c: strict, exact numbers and units; env readers here)-->  typed fields
 *   typed fields  --(tc__config_validate)-->  "safe to run", or a message naming the field
 *   redis_url  --(endpoint.c)-->  host/port/path/user/password/db for hiredis 0.14
 *
 * tc_config_from_env() is strict: a variable under the prefix that names no field is an
 * error (with the nearest known name: a typo must not leave a default in force
 * silently), syntax and the field's C type are checked while parsing, and the range
 * rules (power-of-two shards, jitter <= 0.5, ...), which live only in
 * tc__config_validate() so they are written once, run on the result: a field that breaks
 * one is reported under the variable that set it. It fills a copy and commits it only
 * when every variable passed, so a failed call leaves cfg untouched. EARLY_REFRESH_BETA
 * also refuses more than 100 while parsing: a double has no C-type bound to check.
 * ttl_rules and callbacks are not read from the environment: a rule is a binary prefix plus
 * two TTLs, and a list of them has no honest one-variable spelling; callers set them in
 * code.
 *
 * Invariants: every error goes through tc__fail(); quoted user text in messages is bounded
 * and escaped (tc__quote), so binary or huge input cannot garble or overflow err->msg; no
 * message ever quotes a URL's credentials.
 */
#include "config.h"

#include "errors.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

#define TC__MAX_VALUE_LIMIT (511 * MIB)
#define TC__MAX_SHARDS      65536u
#define TC__MAX_NAME_LEN    256u
#define TC__MAX_POOL        1024u
#define TC__MIN_PING_MS     10u
#define TC__MAX_BETA        100.0
#define TC__MAX_REFRESH_THR 64u
#define TC__MAX_REFRESH_Q   (1u << 20)

static const char *const level_names[] = {"off", "error", "warn", "info", "debug", NULL};
static const char *const tracking_names[] = {"off", "bcast", "default", NULL};
static const char *const policy_names[] = {"default", "s3fifo", NULL};

/* ---- Defaults ---- */

static void config_defaults(tc_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->l1_max_bytes = 64 * MIB;
    cfg->l1_max_value_bytes = 1 * MIB;
    cfg->default_ttl_ms = 60000;
    cfg->ttl_jitter = 0.10;
    cfg->max_value_bytes = 8 * MIB;
    cfg->key_prefix = "tc:";
    cfg->inval_channel = "tc:inval";
    cfg->pool_size = 8;
    cfg->connect_timeout_ms = 500;
    cfg->command_timeout_ms = 250;
    cfg->breaker_threshold = 5;
    cfg->breaker_cooldown_ms = 1000;
    cfg->listener_ping_ms = 1000;
    cfg->failsafe_backoff_ms = 1000;
    cfg->refresh_threads = 2;
    cfg->refresh_queue = 1024;
    cfg->lock_ttl_ms = 5000;
    cfg->lock_wait_ms = 5000;
    cfg->sliding_max_ms = 3600000;
    cfg->replay_log_len = 10000;
    cfg->ns_separator = ':';
    cfg->write_behind_batch = 100;
    cfg->write_behind_delay_ms = 100;
    cfg->write_behind_max_queue = 100000;
    cfg->write_behind_attempts = 5;
    cfg->write_behind_retry_ms = 100;
    cfg->write_behind_flusher = 1;
    cfg->write_behind_lease_ms = 5000;
}

/* Copy the first `size` bytes of a full struct to the caller's; a larger caller struct
 * (a newer header) gets zeros after ours. */
static void store_sized(void *dst, const void *full, size_t full_size, size_t size) {
    memcpy(dst, full, size < full_size ? size : full_size);
    if (size > full_size) {
        memset((char *)dst + full_size, 0, size - full_size);
    }
}

void tc_config_init_size(tc_config_t *cfg, size_t size) {
    if (!cfg || size < TC__CONFIG_V1_SIZE) {
        return;
    }
    tc_config_t d;
    config_defaults(&d);
    store_sized(cfg, &d, sizeof d, size);
}

void(tc_config_init)(tc_config_t *cfg) {
    tc_config_init_size(cfg, TC__CONFIG_V1_SIZE);
}

int tc__config_import(tc_config_t *full, const tc_config_t *cfg, size_t size, tc_error_t *err) {
    if (size < TC__CONFIG_V1_SIZE) {
        return tc__fail(err, TC_EINVAL, "tc_config_t: %zu bytes is smaller than any version's",
                        size);
    }
    config_defaults(full);
    memcpy(full, cfg, size < sizeof *full ? size : sizeof *full);
    for (size_t i = sizeof *full; i < size; i++) {
        if (((const unsigned char *)cfg)[i] != 0) {
            return tc__fail(err, TC_ECONFIG,
                            "tc_config_t: a field at byte %zu is set, but this library (%s) "
                            "knows only %zu bytes: it comes from a newer tiercache.h",
                            i, TC_VERSION_STRING, sizeof *full);
        }
    }
    return 0;
}

unsigned tc__default_shards(void) {
    /* 16 stripes per CPU: with skewed keys the hottest shard takes far more than its
     * share, and two threads meeting on one shard lock serialize (bench micro: 8 shards
     * scaled 0.86x on 2 threads, 64 shards 1.37x). */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want, n = 16;
    if (ncpu < 1) {
        ncpu = 1;
    }
    want = ncpu > 64 ? 1024u : 16u * (unsigned)ncpu;
    while (n < want && n < 1024) {
        n <<= 1;
    }
    return n;
}

/* ---- Environment ---- */

typedef enum env_kind {
    ENV_BYTES,    /* size_t, byte size */
    ENV_COUNT_SZ, /* size_t, plain count */
    ENV_COUNT_U,  /* unsigned, plain count */
    ENV_DUR64,    /* uint64_t, duration in ms */
    ENV_DUR32,    /* uint32_t, duration in ms */
    ENV_FRACTION, /* double, decimal or percent */
    ENV_BETA,     /* double, decimal in 0..TC__MAX_BETA, no percent */
    ENV_BOOL,     /* int */
    ENV_STRING,   /* const char *, non-empty */
    ENV_URL,      /* const char *, empty means NULL */
    ENV_LEVEL,    /* int, a tc_log_level_t by name (off, error, warn, info, debug) */
    ENV_TRACKING, /* int, a tc_tracking_t by name (off, bcast, default) */
    ENV_POLICY,   /* int, a tc_l1_policy_t by name (default, s3fifo) */
    ENV_BYTE,     /* int, one character, or "none" (-1) */
} env_kind_t;

typedef struct env_field {
    const char *name; /* the variable, after the prefix */
    env_kind_t kind;
    size_t off;
    const char *field; /* the tc_config_t field, as tc__config_validate names it */
} env_field_t;

#define F(name, kind, field)                                                                   \
    { name, kind, offsetof(tc_config_t, field), #field }
static const env_field_t env_fields[] = {
    F("L1_MAX_BYTES", ENV_BYTES, l1_max_bytes),
    F("L1_MAX_ENTRIES", ENV_COUNT_SZ, l1_max_entries),
    F("L1_SHARDS", ENV_COUNT_U, l1_shards),
    F("L1_MAX_VALUE_BYTES", ENV_BYTES, l1_max_value_bytes),
    F("DEFAULT_TTL", ENV_DUR64, default_ttl_ms),
    F("TTL_JITTER", ENV_FRACTION, ttl_jitter),
    F("MAX_VALUE_BYTES", ENV_BYTES, max_value_bytes),
    F("REDIS_URL", ENV_URL, redis_url),
    F("KEY_PREFIX", ENV_STRING, key_prefix),
    F("INVAL_CHANNEL", ENV_STRING, inval_channel),
    F("POOL_SIZE", ENV_COUNT_U, pool_size),
    F("CONNECT_TIMEOUT", ENV_DUR32, connect_timeout_ms),
    F("COMMAND_TIMEOUT", ENV_DUR32, command_timeout_ms),
    F("REQUIRE_REDIS", ENV_BOOL, require_redis),
    F("BREAKER_THRESHOLD", ENV_COUNT_U, breaker_threshold),
    F("BREAKER_COOLDOWN", ENV_DUR32, breaker_cooldown_ms),
    F("LISTENER_PING", ENV_DUR32, listener_ping_ms),
    F("STALE_TTL", ENV_DUR64, stale_ttl_ms),
    F("FAILSAFE_MAX_STALE", ENV_DUR64, failsafe_max_stale_ms),
    F("FAILSAFE_BACKOFF", ENV_DUR32, failsafe_backoff_ms),
    F("EARLY_REFRESH_BETA", ENV_BETA, early_refresh_beta),
    F("NEGATIVE_TTL", ENV_DUR64, negative_ttl_ms),
    F("LOAD_SOFT_TIMEOUT", ENV_DUR32, load_soft_timeout_ms),
    F("LOAD_HARD_TIMEOUT", ENV_DUR32, load_hard_timeout_ms),
    F("REFRESH_THREADS", ENV_COUNT_U, refresh_threads),
    F("REFRESH_QUEUE", ENV_COUNT_U, refresh_queue),
    F("LOCK_TTL", ENV_DUR32, lock_ttl_ms),
    F("LOCK_WAIT", ENV_DUR32, lock_wait_ms),
    F("SLIDING_TTL", ENV_BOOL, sliding_ttl),
    F("SLIDING_MAX", ENV_DUR64, sliding_max_ms),
    F("DEGRADED_TTL", ENV_DUR64, degraded_ttl_ms),
    F("LOG", ENV_LEVEL, log_level),
    F("REPLAY_LOG_LEN", ENV_COUNT_U, replay_log_len),
    F("TRACKING", ENV_TRACKING, tracking),
    F("PLAIN_KEYS", ENV_BOOL, plain_keys),
    F("NS_SEPARATOR", ENV_BYTE, ns_separator),
    F("WRITE_BEHIND_BATCH", ENV_COUNT_U, write_behind_batch),
    F("WRITE_BEHIND_DELAY", ENV_DUR32, write_behind_delay_ms),
    F("WRITE_BEHIND_MAX_QUEUE", ENV_COUNT_U, write_behind_max_queue),
    F("WRITE_BEHIND_ATTEMPTS", ENV_COUNT_U, write_behind_attempts),
    F("WRITE_BEHIND_RETRY", ENV_DUR32, write_behind_retry_ms),
    F("WRITE_BEHIND_FLUSHER", ENV_BOOL, write_behind_flusher),
    F("WRITE_BEHIND_LEASE", ENV_DUR32, write_behind_lease_ms),
    F("L1_POLICY", ENV_POLICY, l1_policy),
    /* ttl_rules / ttl_rules_count: code only (see the essay at the top). */
};
#undef F

static const char *kind_hint(env_kind_t kind) {
    switch (kind) {
    case ENV_BYTES:
        return "is not a byte size (use B, KiB, MiB, GiB, KB, MB, GB)";
    case ENV_DUR64:
    case ENV_DUR32:
        return "is not a duration (use ms, s, m, h, d; a bare number is milliseconds)";
    case ENV_FRACTION:
        return "is not a decimal fraction (e.g. 0.1 or 10%)";
    case ENV_BETA:
        return "is not a non-negative decimal (e.g. 1 or 0.5)";
    case ENV_BOOL:
        return "is not a boolean (use 1/0, true/false, yes/no, on/off)";
    case ENV_LEVEL:
        return "is not a log level (use off, error, warn, info, debug)";
    case ENV_TRACKING:
        return "is not a tracking mode (use off, bcast, default)";
    case ENV_POLICY:
        return "is not an L1 policy (use default, s3fifo)";
    case ENV_BYTE:
        return "is not one character or none";
    default:
        return "is not a non-negative whole number";
    }
}

static int env_fail(tc_error_t *err, const char *var, env_kind_t kind, const char *val,
                    tc__num_why_t why, uint64_t max) {
    char q[64];
    tc__quote(q, sizeof q, val);
    switch (why) {
    case TC__NUM_EMPTY:
        return tc__fail(err, TC_ECONFIG, "%s: is empty", var);
    case TC__NUM_NEGATIVE:
        return tc__fail(err, TC_ECONFIG, "%s: '%s' is negative", var, q);
    case TC__NUM_RANGE:
        if (max == 0) {
            return tc__fail(err, TC_ECONFIG, "%s: '%s' is too large", var, q);
        }
        return tc__fail(err, TC_ECONFIG, "%s: '%s' is too large (at most %llu)", var, q,
                        (unsigned long long)max);
    case TC__NUM_INEXACT:
        return tc__fail(err, TC_ECONFIG, "%s: '%s' is not a whole number of %s", var, q,
                        kind == ENV_BYTES ? "bytes" : "milliseconds");
    default:
        return tc__fail(err, TC_ECONFIG, "%s: '%s' %s", var, q, kind_hint(kind));
    }
}

static uint64_t kind_max(env_kind_t kind) {
    switch (kind) {
    case ENV_BYTES:
    case ENV_COUNT_SZ:
        return SIZE_MAX;
    case ENV_COUNT_U:
        return UINT_MAX;
    case ENV_DUR32:
        return UINT32_MAX;
    default:
        return UINT64_MAX;
    }
}

/* Numeric kinds: parse, check the C type's range, store. */
static int env_number(const env_field_t *f, const char *var, const char *val, tc_config_t *cfg,
                      tc_error_t *err) {
    char *dst = (char *)cfg + f->off;
    uint64_t v = 0, max = kind_max(f->kind);
    tc__num_why_t why;
    if (f->kind == ENV_BYTES) {
        why = tc__units_scaled(val, TC__UNITS_BYTES, &v);
    } else if (f->kind == ENV_DUR64 || f->kind == ENV_DUR32) {
        why = tc__units_scaled(val, TC__UNITS_DURATION, &v);
    } else {
        why = tc__units_count(val, &v);
    }
    if (why == TC__NUM_OK && v > max) {
        why = TC__NUM_RANGE;
    }
    if (why != TC__NUM_OK) {
        return env_fail(err, var, f->kind, val, why, max);
    }
    if (f->kind == ENV_BYTES || f->kind == ENV_COUNT_SZ) {
        *(size_t *)(void *)dst = (size_t)v;
    } else if (f->kind == ENV_COUNT_U) {
        *(unsigned *)(void *)dst = (unsigned)v;
    } else if (f->kind == ENV_DUR32) {
        *(uint32_t *)(void *)dst = (uint32_t)v;
    } else {
        *(uint64_t *)(void *)dst = v;
    }
    return 0;
}

/* Parsed into a local first: a refused value must not reach the field. */
static int env_beta(const char *var, const char *val, double *dst, tc_error_t *err) {
    double v = 0.0;
    tc__num_why_t why = tc__units_decimal(val, false, &v);
    if (why == TC__NUM_OK && v > TC__MAX_BETA) {
        why = TC__NUM_RANGE;
    }
    if (why != TC__NUM_OK) {
        return env_fail(err, var, ENV_BETA, val, why, (uint64_t)TC__MAX_BETA);
    }
    *dst = v;
    return 0;
}

static int env_apply(const env_field_t *f, const char *var, const char *val, tc_config_t *cfg,
                     tc_error_t *err) {
    char *dst = (char *)cfg + f->off;
    switch (f->kind) {
    case ENV_URL:
        *(const char **)(void *)dst = *val ? val : NULL;
        return 0;
    case ENV_STRING:
        if (!*val) {
            return env_fail(err, var, f->kind, val, TC__NUM_EMPTY, 0);
        }
        *(const char **)(void *)dst = val;
        return 0;
    case ENV_BOOL:
        if (tc__units_bool(val, (int *)(void *)dst) != 0) {
            return env_fail(err, var, f->kind, val, *val ? TC__NUM_SYNTAX : TC__NUM_EMPTY, 0);
        }
        return 0;
    case ENV_FRACTION: {
        tc__num_why_t why = tc__units_decimal(val, true, (double *)(void *)dst);
        return why == TC__NUM_OK ? 0 : env_fail(err, var, f->kind, val, why, 0);
    }
    case ENV_BETA:
        return env_beta(var, val, (double *)(void *)dst, err);
    case ENV_BYTE:
        if (strcmp(val, "none") == 0) {
            *(int *)(void *)dst = -1;
        } else if (strlen(val) == 1) {
            *(int *)(void *)dst = (unsigned char)val[0];
        } else {
            return env_fail(err, var, f->kind, val, *val ? TC__NUM_SYNTAX : TC__NUM_EMPTY, 0);
        }
        return 0;
    case ENV_LEVEL:
    case ENV_TRACKING:
    case ENV_POLICY:
        if (tc__units_name(val,
                           f->kind == ENV_LEVEL      ? level_names
                           : f->kind == ENV_TRACKING ? tracking_names
                                                     : policy_names,
                           (int *)(void *)dst) != 0) {
            return env_fail(err, var, f->kind, val, *val ? TC__NUM_SYNTAX : TC__NUM_EMPTY, 0);
        }
        return 0;
    default:
        return env_number(f, var, val, cfg, err);
    }
}

#define N_ENV_FIELDS (sizeof env_fields / sizeof env_fields[0])

/* Edit distance (insert, delete, substitute; case-insensitive) between two short names,
 * capped at TC__MAX_NAME_LEN. */
static size_t edit_distance(const char *a, const char *b) {
    size_t n = strlen(b), row[TC__MAX_NAME_LEN + 1];
    if (n > TC__MAX_NAME_LEN) {
        n = TC__MAX_NAME_LEN;
    }
    for (size_t j = 0; j <= n; j++) {
        row[j] = j;
    }
    for (size_t i = 1; *a && i <= TC__MAX_NAME_LEN; i++, a++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= n; j++) {
            size_t up = row[j];
            size_t sub =
                diag + (toupper((unsigned char)*a) != toupper((unsigned char)b[j - 1]));
            size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[n];
}

static const env_field_t *field_named(const char *name, size_t len) {
    for (size_t i = 0; i < N_ENV_FIELDS; i++) {
        if (strlen(env_fields[i].name) == len && strncmp(env_fields[i].name, name, len) == 0) {
            return &env_fields[i];
        }
    }
    return NULL;
}

/* A variable under the prefix that names no field: refuse it, naming the nearest one. */
static int env_unknown(const char *prefix, const char *entry, size_t name_len,
                       tc_error_t *err) {
    char name[TC__MAX_NAME_LEN], q[64];
    size_t plen = strlen(prefix);
    size_t n = name_len < sizeof name - 1 ? name_len : sizeof name - 1;
    memcpy(name, entry, n);
    name[n] = '\0';
    tc__quote(q, sizeof q, name);
    const env_field_t *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < N_ENV_FIELDS; i++) {
        size_t d = edit_distance(name + plen, env_fields[i].name);
        if (d < best_d) {
            best_d = d;
            best = &env_fields[i];
        }
    }
    if (best && best_d <= 3) {
        return tc__fail(err, TC_ECONFIG, "%s: unknown variable; did you mean %s%s?", q, prefix,
                        best->name);
    }
    return tc__fail(err, TC_ECONFIG, "%s: unknown variable (see tc_config_t for the names)", q);
}

extern char **environ;

/* Every variable in the environment that starts with prefix must name a field. */
static int env_check_names(const char *prefix, tc_error_t *err) {
    size_t plen = strlen(prefix);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strncmp(*e, prefix, plen) != 0) {
            continue;
        }
        size_t len = (size_t)(eq - *e);
        if (!field_named(*e + plen, len - plen)) {
            return env_unknown(prefix, *e, len, err);
        }
    }
    return 0;
}

/* Range rules on the result; a failing field is reported under the variable that set it
 * (one the environment did not set is the caller's, for tc_open to report). */
static int env_check_ranges(const tc_config_t *work, const char *prefix, const bool *set,
                            tc_error_t *err) {
    tc_error_t verr;
    if (tc__config_validate(work, &verr) == 0) {
        return 0;
    }
    size_t flen = strcspn(verr.msg, ":");
    for (size_t i = 0; i < N_ENV_FIELDS; i++) {
        if (set[i] && strlen(env_fields[i].field) == flen &&
            strncmp(env_fields[i].field, verr.msg, flen) == 0) {
            return tc__fail(err, verr.code, "%s%s%s", prefix, env_fields[i].name,
                            verr.msg + flen);
        }
    }
    return 0;
}

static size_t kind_size(env_kind_t kind) {
    switch (kind) {
    case ENV_BYTES:
    case ENV_COUNT_SZ:
        return sizeof(size_t);
    case ENV_COUNT_U:
        return sizeof(unsigned);
    case ENV_DUR32:
        return sizeof(uint32_t);
    case ENV_DUR64:
        return sizeof(uint64_t);
    case ENV_BOOL:
    case ENV_LEVEL:
    case ENV_TRACKING:
    case ENV_POLICY:
    case ENV_BYTE:
        return sizeof(int);
    case ENV_FRACTION:
    case ENV_BETA:
        return sizeof(double);
    default:
        return sizeof(const char *);
    }
}

int tc_config_from_env_size(tc_config_t *cfg, size_t size, const char *prefix,
                            tc_error_t *err) {
    char var[TC__MAX_NAME_LEN];
    bool set[N_ENV_FIELDS] = {false};
    tc_config_t work;
    int rc;
    if (!cfg) {
        return tc__fail(err, TC_EINVAL, "cfg: is NULL");
    }
    if ((rc = tc__config_import(&work, cfg, size, err)) != 0) {
        return rc;
    }
    if (!prefix) {
        prefix = "TIERCACHE_";
    }
    if (strlen(prefix) > sizeof var - 32) {
        return tc__fail(err, TC_ECONFIG, "prefix: longer than %zu bytes", sizeof var - 32);
    }
    if (*prefix && (rc = env_check_names(prefix, err)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < N_ENV_FIELDS; i++) {
        snprintf(var, sizeof var, "%s%s", prefix, env_fields[i].name);
        const char *val = getenv(var);
        if (val && env_fields[i].off + kind_size(env_fields[i].kind) > size) {
            return tc__fail(err, TC_ECONFIG,
                            "%s: the caller's tc_config_t (%zu bytes, an older tiercache.h) "
                            "has no field for it",
                            var, size);
        }
        if (val) {
            if ((rc = env_apply(&env_fields[i], var, val, &work, err)) != 0) {
                return rc;
            }
            set[i] = true;
        }
    }
    if ((rc = env_check_ranges(&work, prefix, set, err)) != 0) {
        return rc;
    }
    store_sized(cfg, &work, sizeof work, size < sizeof work ? size : sizeof work);
    tc__error_clear(err);
    return 0;
}

int(tc_config_from_env)(tc_config_t *cfg, const char *prefix, tc_error_t *err) {
    return tc_config_from_env_size(cfg, TC__CONFIG_V1_SIZE, prefix, err);
}

/* ---- Validation ---- */

static int check_name(const char *field, const char *s, tc_error_t *err) {
    if (!s) {
        return tc__fail(err, TC_ECONFIG, "%s: is NULL", field);
    }
    size_t n = strlen(s);
    if (n == 0 || n > TC__MAX_NAME_LEN) {
        return tc__fail(err, TC_ECONFIG, "%s: length %zu is not in 1..%u", field, n,
                        TC__MAX_NAME_LEN);
    }
    return 0;
}

static int validate_l1(const tc_config_t *cfg, tc_error_t *err) {
    if (cfg->l1_policy != TC_L1_POLICY_DEFAULT && cfg->l1_policy != TC_L1_POLICY_S3FIFO) {
        return tc__fail(err, TC_ECONFIG, "l1_policy: %d is not a tc_l1_policy_t (0..1)",
                        cfg->l1_policy);
    }
    unsigned s = cfg->l1_shards;
    if (s != 0 && (s & (s - 1)) != 0) {
        return tc__fail(err, TC_ECONFIG, "l1_shards: %u is not a power of two", s);
    }
    if (s > TC__MAX_SHARDS) {
        return tc__fail(err, TC_ECONFIG, "l1_shards: %u is more than %u", s, TC__MAX_SHARDS);
    }
    /* l1_max_value_bytes may exceed max_value_bytes: the smaller one simply wins. */
    return 0;
}

/* Plain keys have no header: no versions, no freshness metadata, no lock script. */
static int validate_tracking(const tc_config_t *cfg, tc_error_t *err) {
    if (cfg->tracking < TC_TRACKING_OFF || cfg->tracking > TC_TRACKING_DEFAULT) {
        return tc__fail(err, TC_ECONFIG, "tracking: %d is not a tc_tracking_t (0..2)",
                        cfg->tracking);
    }
    if (cfg->ns_separator < -1 || cfg->ns_separator > 255) {
        return tc__fail(err, TC_ECONFIG,
                        "ns_separator: %d is not a byte (0..255) or -1 (no namespaces)",
                        cfg->ns_separator);
    }
    if (!cfg->plain_keys) {
        return 0;
    }
    if (cfg->tracking == TC_TRACKING_OFF) {
        return tc__fail(err, TC_ECONFIG,
                        "plain_keys: needs tracking (bcast or default): nothing else tells "
                        "this process that another client wrote a plain key");
    }
    if (cfg->stale_ttl_ms || cfg->failsafe_max_stale_ms || cfg->early_refresh_beta > 0 ||
        cfg->negative_ttl_ms || cfg->ttl_rules_count) {
        return tc__fail(err, TC_ECONFIG,
                        "plain_keys: the freshness features (stale_ttl_ms, "
                        "failsafe_max_stale_ms, early_refresh_beta, negative_ttl_ms, "
                        "ttl_rules) need tiercache's value header");
    }
    return 0;
}

static int validate_values(const tc_config_t *cfg, tc_error_t *err) {
    double j = cfg->ttl_jitter;
    if (!(j >= 0.0 && j <= 0.5)) { /* also refuses NaN */
        return tc__fail(err, TC_ECONFIG, "ttl_jitter: %g is not in 0..0.5", j);
    }
    if (cfg->default_ttl_ms < 1 || cfg->default_ttl_ms > TC__MAX_TTL_MS) {
        return tc__fail(err, TC_ECONFIG, "default_ttl_ms: %llu is not in 1..%llu (100 years)",
                        (unsigned long long)cfg->default_ttl_ms,
                        (unsigned long long)TC__MAX_TTL_MS);
    }
    if (cfg->max_value_bytes < 1 || cfg->max_value_bytes > TC__MAX_VALUE_LIMIT) {
        return tc__fail(err, TC_ECONFIG, "max_value_bytes: %zu is not in 1..%llu (511 MiB)",
                        cfg->max_value_bytes, (unsigned long long)TC__MAX_VALUE_LIMIT);
    }
    if (cfg->log_level < TC_LOG_OFF || cfg->log_level > TC_LOG_DEBUG) {
        return tc__fail(err, TC_ECONFIG, "log_level: %d is not a tc_log_level_t (0..4)",
                        cfg->log_level);
    }
    return validate_tracking(cfg, err);
}

static int check_min_u32(const char *field, uint32_t v, uint32_t min, tc_error_t *err) {
    if (v < min) {
        return tc__fail(err, TC_ECONFIG, "%s: %u is less than %u", field, (unsigned)v,
                        (unsigned)min);
    }
    return 0;
}

/* Redis Cluster (l2.c, cluster.c): every script must touch one slot, so what lives in one
 * key for the whole cache (the clear and namespace marks, tag sets, the write-behind
 * queue) is not available there yet: those calls refuse it by name. Refused here, at open:
 * a prefix holding a hash tag of its own (tiercache puts the slot's in every key), tracking,
 * whose notices come from each shard to a listener on that shard, and plain_keys, which
 * needs tracking. */
static int validate_cluster(const tc_config_t *cfg, tc_error_t *err) {
    const char *p = cfg->key_prefix ? cfg->key_prefix : "";
    if (strpbrk(p, "{}")) {
        return tc__fail(err, TC_ECONFIG,
                        "key_prefix: '%s' holds '{' or '}': with redis+cluster:// the prefix "
                        "may not carry a hash tag (tiercache adds one per key to keep a key, "
                        "its lock and its version counter in one slot)",
                        p);
    }
    if (cfg->plain_keys) {
        return tc__fail(err, TC_ECONFIG,
                        "plain_keys: not available with redis+cluster:// (it needs tracking)");
    }
    if (cfg->tracking != TC_TRACKING_OFF) {
        return tc__fail(err, TC_ECONFIG,
                        "tracking: not available with redis+cluster:// yet (Redis sends a "
                        "shard's notices only to a listener on that shard)");
    }
    return 0;
}

static int validate_redis(const tc_config_t *cfg, tc_error_t *err) {
    int rc;
    if (tc__endpoint_is_list(cfg->redis_url)) { /* several servers: a ring */
        char **urls;
        size_t n;
        if ((rc = tc__endpoint_list(cfg->redis_url, &urls, &n, err)) != 0) {
            return rc;
        }
        tc__endpoint_list_free(urls, n);
    } else {
        tc__endpoint_t ep;
        if ((rc = tc__endpoint_parse(cfg->redis_url, &ep, err)) != 0) {
            return rc;
        }
        int cluster = ep.cluster_seeds != NULL;
        tc__endpoint_deinit(&ep);
        if (cluster && (rc = validate_cluster(cfg, err)) != 0) {
            return rc;
        }
    }
    if (cfg->pool_size < 1 || cfg->pool_size > TC__MAX_POOL) {
        return tc__fail(err, TC_ECONFIG, "pool_size: %u is not in 1..%u", cfg->pool_size,
                        TC__MAX_POOL);
    }
    if ((rc = check_min_u32("connect_timeout_ms", cfg->connect_timeout_ms, 1, err)) ||
        (rc = check_min_u32("command_timeout_ms", cfg->command_timeout_ms, 1, err)) ||
        (rc = check_min_u32("breaker_threshold", cfg->breaker_threshold, 1, err)) ||
        (rc = check_min_u32("breaker_cooldown_ms", cfg->breaker_cooldown_ms, 1, err)) ||
        (rc = check_min_u32("listener_ping_ms", cfg->listener_ping_ms, TC__MIN_PING_MS, err))) {
        return rc;
    }
    return 0;
}

/* The 100-year ceiling of default_ttl_ms, for every other stored duration: each is added
 * to a clock or to a TTL and must stay far from overflow. */
static int check_max_ttl(const char *field, uint64_t v, tc_error_t *err) {
    if (v > TC__MAX_TTL_MS) {
        return tc__fail(err, TC_ECONFIG, "%s: %llu is more than %llu (100 years)", field,
                        (unsigned long long)v, (unsigned long long)TC__MAX_TTL_MS);
    }
    return 0;
}

static int check_range_u(const char *field, unsigned v, unsigned lo, unsigned hi,
                         tc_error_t *err) {
    if (v < lo || v > hi) {
        return tc__fail(err, TC_ECONFIG, "%s: %u is not in %u..%u", field, v, lo, hi);
    }
    return 0;
}

/* Background loading: the pool and queue are built at open whether or not a feature uses
 * them, so they are checked even when every freshness feature is off. */
static int validate_refresh(const tc_config_t *cfg, tc_error_t *err) {
    double b = cfg->early_refresh_beta;
    int rc;
    if (!(b >= 0.0 && b <= TC__MAX_BETA)) { /* also refuses NaN */
        return tc__fail(err, TC_ECONFIG, "early_refresh_beta: %g is not in 0..%g", b,
                        TC__MAX_BETA);
    }
    if ((rc = check_range_u("refresh_threads", cfg->refresh_threads, 1, TC__MAX_REFRESH_THR,
                            err)) ||
        (rc = check_range_u("refresh_queue", cfg->refresh_queue, 1, TC__MAX_REFRESH_Q, err))) {
        return rc;
    }
    uint32_t soft = cfg->load_soft_timeout_ms, hard = cfg->load_hard_timeout_ms;
    if (soft && hard && soft > hard) {
        return tc__fail(err, TC_ECONFIG,
                        "load_soft_timeout_ms: %u is more than load_hard_timeout_ms (%u)",
                        (unsigned)soft, (unsigned)hard);
    }
    return 0;
}

static int validate_freshness(const tc_config_t *cfg, tc_error_t *err) {
    int rc;
    if ((rc = validate_refresh(cfg, err)) ||
        (rc = check_min_u32("failsafe_backoff_ms", cfg->failsafe_backoff_ms, 1, err)) ||
        (rc = check_max_ttl("stale_ttl_ms", cfg->stale_ttl_ms, err)) ||
        (rc = check_max_ttl("failsafe_max_stale_ms", cfg->failsafe_max_stale_ms, err)) ||
        (rc = check_max_ttl("negative_ttl_ms", cfg->negative_ttl_ms, err)) ||
        (rc = check_max_ttl("sliding_max_ms", cfg->sliding_max_ms, err)) ||
        (rc = check_max_ttl("degraded_ttl_ms", cfg->degraded_ttl_ms, err))) {
        return rc;
    }
    if (cfg->lock_ttl_ms > 0 && cfg->lock_wait_ms < 1) {
        return tc__fail(err, TC_ECONFIG,
                        "lock_wait_ms: is 0 while lock_ttl_ms is %u (use >= 1)",
                        (unsigned)cfg->lock_ttl_ms);
    }
    if (cfg->sliding_ttl && cfg->sliding_max_ms < 1) {
        return tc__fail(err, TC_ECONFIG, "sliding_max_ms: is 0 while sliding_ttl is on");
    }
    return 0;
}

static int validate_rule(const tc_ttl_rule_t *r, size_t i, tc_error_t *err) {
    char field[64];
    if (!r->prefix) {
        return tc__fail(err, TC_ECONFIG, "ttl_rules[%zu].prefix: is NULL", i);
    }
    if (r->prefix_len < 1 || r->prefix_len > TC_MAX_KEY_LEN) {
        return tc__fail(err, TC_ECONFIG, "ttl_rules[%zu].prefix_len: %zu is not in 1..%u", i,
                        r->prefix_len, TC_MAX_KEY_LEN);
    }
    int rc;
    snprintf(field, sizeof field, "ttl_rules[%zu].ttl_ms", i);
    if ((rc = check_max_ttl(field, r->ttl_ms, err)) != 0) {
        return rc;
    }
    snprintf(field, sizeof field, "ttl_rules[%zu].stale_ttl_ms", i);
    return check_max_ttl(field, r->stale_ttl_ms, err);
}

/* A count without rules would make tc_open read through NULL; a count whose copy size
 * overflows could only come from garbage, and is refused before anything is read. */
static int validate_rules(const tc_config_t *cfg, tc_error_t *err) {
    size_t n = cfg->ttl_rules_count;
    int rc;
    if (n > 0 && !cfg->ttl_rules) {
        return tc__fail(err, TC_ECONFIG, "ttl_rules: is NULL but ttl_rules_count is %zu", n);
    }
    if (n > SIZE_MAX / sizeof(tc_ttl_rule_t)) {
        return tc__fail(err, TC_ECONFIG, "ttl_rules_count: %zu is too large", n);
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = validate_rule(&cfg->ttl_rules[i], i, err)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* Write-behind's bounds: every one of them must let the queue drain. */
static int validate_write_behind(const tc_config_t *cfg, tc_error_t *err) {
    if (cfg->write_behind_batch < 1 || cfg->write_behind_batch > 10000) {
        return tc__fail(err, TC_ECONFIG, "write_behind_batch: %u is not in 1..10000",
                        cfg->write_behind_batch);
    }
    if (cfg->write_behind_max_queue < 1) {
        return tc__fail(err, TC_ECONFIG, "write_behind_max_queue: must be at least 1");
    }
    if (cfg->write_behind_attempts < 1) {
        return tc__fail(err, TC_ECONFIG, "write_behind_attempts: must be at least 1");
    }
    if (cfg->write_behind_delay_ms < 1 || cfg->write_behind_delay_ms > 60000) {
        return tc__fail(err, TC_ECONFIG, "write_behind_delay_ms: %u is not in 1..60000",
                        (unsigned)cfg->write_behind_delay_ms);
    }
    if (cfg->write_behind_retry_ms < 1 || cfg->write_behind_retry_ms > 60000) {
        return tc__fail(err, TC_ECONFIG, "write_behind_retry_ms: %u is not in 1..60000",
                        (unsigned)cfg->write_behind_retry_ms);
    }
    if (cfg->write_behind_lease_ms < 100) {
        return tc__fail(err, TC_ECONFIG, "write_behind_lease_ms: %u is below 100",
                        (unsigned)cfg->write_behind_lease_ms);
    }
    if (cfg->writer && cfg->plain_keys) {
        return tc__fail(err, TC_ECONFIG,
                        "writer: write strategies need tiercache's versioned values, not "
                        "plain_keys");
    }
    return 0;
}

int tc__config_validate(const tc_config_t *cfg, tc_error_t *err) {
    int rc;
    if (!cfg) {
        return tc__fail(err, TC_EINVAL, "cfg: is NULL");
    }
    if ((rc = validate_l1(cfg, err)) || (rc = validate_values(cfg, err)) ||
        (rc = validate_write_behind(cfg, err)) || (rc = validate_freshness(cfg, err)) ||
        (rc = validate_rules(cfg, err)) ||
        (rc = check_name("key_prefix", cfg->key_prefix, err)) ||
        (rc = check_name("inval_channel", cfg->inval_channel, err))) {
        return rc;
    }
    if (cfg->redis_url && (rc = validate_redis(cfg, err)) != 0) {
        return rc;
    }
    tc__error_clear(err);
    return 0;
}
