/*
 * config.h - internal side of configuration: validation, the Redis URL, unit parsing.
 *
 * tc_config_t is public and plain; this module owns what turns it into something safe to
 * run: tc__config_validate() refuses a bad field with a message naming it, and
 * tc__endpoint_parse() turns redis_url into the pieces hiredis 0.14 needs (it has no URL
 * parser of its own and no redisOptions).
 */
#ifndef TC_CONFIG_H
#define TC_CONFIG_H

#include "tiercache.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The sizes of tc_config_t and tc_stats_t in tiercache 0.1.0, assumed by the entry points
 * without _size (programs built against that header call them). Every later field is
 * appended after these offsets. */
#define TC__CONFIG_V1_SIZE offsetof(tc_config_t, degraded_ttl_ms)
#define TC__STATS_V1_SIZE  offsetof(tc_stats_t, l1_local_entries)

/* A full tc_config_t from a caller's struct of `size` bytes: defaults, then the caller's
 * fields. 0; TC_EINVAL (size below 0.1.0's); TC_ECONFIG (size beyond ours and a field we
 * do not know is set). */
int tc__config_import(tc_config_t *full, const tc_config_t *cfg, size_t size, tc_error_t *err);

/* 100 years: the longest TTL or duration accepted (a per-call TTL beyond it is capped),
 * far beyond any real TTL, far below overflow when added to a clock. */
#define TC__MAX_TTL_MS ((uint64_t)100 * 365 * 24 * 3600 * 1000)

/* A parsed redis_url. Strings are owned (heap) and freed by tc__endpoint_deinit. */
typedef struct tc__endpoint {
    int is_unix;    /* 1: unix socket at `path`; 0: TCP host:port */
    char *host;     /* TCP host (IPv6 literal without brackets); NULL for unix */
    int port;       /* TCP port, default 6379 */
    char *path;     /* unix socket path; NULL for TCP */
    char *user;     /* ACL user or NULL (then AUTH password only) */
    char *password; /* NULL: no AUTH */
    int db;         /* SELECT db when > 0; default 0 */
} tc__endpoint_t;

/*
 * Parse redis://[user[:password]@]host[:port][/db] (also [:password@], IPv6 as [::1],
 * percent-escapes in user and password) and unix:///abs/path.sock[?db=N&password=P&user=U].
 * Returns 0 or TC_ECONFIG with a message that starts "redis_url: ".
 */
int tc__endpoint_parse(const char *url, tc__endpoint_t *ep, tc_error_t *err);
void tc__endpoint_deinit(tc__endpoint_t *ep);

/* Check every field of cfg (ranges, power-of-two shards, parseable URL, non-empty prefix
 * and channel...). Returns 0 or TC_ECONFIG with a message that starts with the field name. */
int tc__config_validate(const tc_config_t *cfg, tc_error_t *err);

/* Shard count for cfg->l1_shards == 0: a power of two from the online CPU count
 * (16 shards per CPU, at least 16, at most 1024). tc_open may lower it so that every shard
 * can hold a value of l1_max_value_bytes. */
unsigned tc__default_shards(void);

/* "256MiB" -> bytes (see tc_config_from_env for the units). Returns 0 or TC_EINVAL. */
int tc__parse_bytes(const char *s, uint64_t *out);
/* "30s" -> milliseconds (ms, s, m, h; bare number = ms). Returns 0 or TC_EINVAL. */
int tc__parse_duration_ms(const char *s, uint64_t *out);

#endif
