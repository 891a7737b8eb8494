/*
 * multi.h - what the subcommands of the many-keys API share (bulk.c, patterns.c, warm.c,
 * and writes.c for its cache): a cache on the run's Redis, keys with a user prefix, batched
 * writes through tc_mset, and the order statistics of a list of timings.
 *
 * Keys are the bench's usual 17-byte "k" + 16 hex digits, after an optional user prefix
 * ("grp:" in patterns, so a whole group shares a prefix and a namespace). Values are
 * tcb_vsize_for(--value-size, id) bytes; their content does not matter to these runs.
 * Every cache a subcommand opens shares the run's channel, so they see each other's
 * invalidations as two processes would (each cache has its own random origin id).
 */
#ifndef TCB_MULTI_H
#define TCB_MULTI_H

#include "bench.h"
#include "tiercache.h"

#include <stddef.h>
#include <stdint.h>

/* tc_mset / tc_mget batch: the library's own pipelining unit (one round trip each). */
#define TCB_MULTI_BATCH 1000u
/* Longest key built here: user prefix + TCB_KEY_LEN. */
#define TCB_MULTI_KEY_CAP 64u

/* The cache a subcommand opens. */
typedef struct tcb_multi_cfg {
    const char *sub;     /* key prefix under the run's: env prefix + sub */
    uint64_t l1_bytes;   /* 0: L1 off */
    uint64_t l1_entries; /* 0: no entry cap */
    tc_writer_fn writer; /* NULL: none (tc_set_through / tc_set_behind refused) */
    void *writer_arg;
    unsigned wb_batch; /* write_behind_batch; 0: the library's default */
} tcb_multi_cfg_t;

/* Open a cache on the run's Redis (required: a bench on a degraded cache measures nothing),
 * channel env prefix + "inval". NULL with the reason on stderr. */
tc_cache_t *tcb_multi_open(const tcb_env_t *e, const tcb_multi_cfg_t *mc, const char *who);

/* uprefix + key of id into out (TCB_MULTI_KEY_CAP bytes); returns its length. */
size_t tcb_multi_key(const char *uprefix, uint64_t id, char out[TCB_MULTI_KEY_CAP]);

/* A batch of keys, with their storage. */
typedef struct tcb_multi_keys {
    size_t n;
    char text[TCB_MULTI_BATCH][TCB_MULTI_KEY_CAP];
    tc_buf_t bufs[TCB_MULTI_BATCH];
} tcb_multi_keys_t;

/* Fill k with the keys of ids first .. first + n - 1 (n <= TCB_MULTI_BATCH). */
void tcb_multi_keys_fill(tcb_multi_keys_t *k, const char *uprefix, uint64_t first, size_t n);

/* Write ids first .. first + n - 1 with tc_mset in batches of TCB_MULTI_BATCH (opts as
 * given: ttl, tags, flags). 0, or the first failing code with a message on stderr. */
int tcb_multi_write(tc_cache_t *c, const tcb_opts_t *o, const char *uprefix, uint64_t first,
                    uint64_t n, const tc_opts_t *opts);

/* Read ids first .. first + n - 1 with tc_mget in batches (filling L1), releasing every
 * ref. *found (may be NULL) receives how many were answered 0. 0 or the call's code. */
int tcb_multi_read(tc_cache_t *c, const char *uprefix, uint64_t first, uint64_t n,
                   uint64_t *found);

/* Order statistics of n timings (sorted in place). */
typedef struct tcb_multi_summary {
    uint64_t min, p50, p99, max;
} tcb_multi_summary_t;

void tcb_multi_summarize(uint64_t *v, size_t n, tcb_multi_summary_t *s);
/* Median of n doubles (sorted in place); NaN when n is 0. */
double tcb_multi_median(double *v, size_t n);

/* Wait until c's listener has read at least `received` messages in all (tc_stats
 * inval_received) and then nothing more for 100 ms, so a measurement does not share the
 * CPU with a backlog of invalidations; gives up after 1 s without progress. */
void tcb_multi_settle(tc_cache_t *c, uint64_t received);

/* Sleep for us microseconds. */
void tcb_multi_sleep_us(long us);

/* ---- readers (ring.c, cluster.c) ---- */

/* One reader's step on one key (TCB_KEY_LEN bytes): 0, or an error to count. */
typedef int (*tcb_read_fn)(void *arg, const char *key);
/* tcb_read_fn for a tc_get through arg, a tc_cache_t. */
int tcb_multi_tc_get(void *cache, const char *key);
/* threads readers calling fn on wl's keys (each its own cursor, seeded by --seed) for ns;
 * *ops and *errors as counted. 0, or -1 when a thread could not start. */
int tcb_multi_read_for(const tcb_opts_t *o, const tcb_workload_t *wl, unsigned threads,
                       uint64_t ns, tcb_read_fn fn, void *arg, uint64_t *ops, uint64_t *errors);

#endif
