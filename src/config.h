/*
 * config.h - internal side of configuration: defaults, the growing struct, validation.
 *
 * tc_config_t is public and plain; this module owns what turns it into something safe to
 * run: tc__config_validate() refuses a bad field with a message naming it. The Redis URL is
 * endpoint.h's, the units units.h's (both included here for the callers of either).
 */
#ifndef TC_CONFIG_H
#define TC_CONFIG_H

#include "endpoint.h"
#include "tiercache.h"
#include "units.h"

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

/* Check every field of cfg (ranges, power-of-two shards, parseable URL, non-empty prefix
 * and channel...). Returns 0 or TC_ECONFIG with a message that starts with the field name. */
int tc__config_validate(const tc_config_t *cfg, tc_error_t *err);

/* Shard count for cfg->l1_shards == 0: a power of two from the online CPU count
 * (16 shards per CPU, at least 16, at most 1024). tc_open may lower it so that every shard
 * can hold a value of l1_max_value_bytes. */
unsigned tc__default_shards(void);

#endif
