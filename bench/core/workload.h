/*
 * workload.h - what keys a benchmark asks for, and how big their values are.
 *
 * A workload maps (per-thread cursor, time epoch) to a key id. Ids are 64-bit numbers;
 * tcb_key_format() turns one into the 17-byte key the benchmark sends ("k" + 16 hex
 * digits), the size the targets are quoted for. Generators:
 *
 *   zipf     rank k in 1..N with P(k) ~ 1/k^s (rejection-inversion, O(1), no table);
 *            id = k - 1, so id 0 is the hottest key.
 *   uniform  every id in [0, N) equally likely.
 *   hotset   a window of hot_frac*N consecutive ids takes hot_share of the requests,
 *            the rest are uniform over all N; the window moves to the next disjoint block
 *            every epoch (the runner turns elapsed time into epochs).
 *   trace    ids replayed in file order; each thread starts at its own offset and wraps.
 *
 * A workload is immutable after init and shared by all threads; all mutable state lives
 * in the caller's tcb_cursor_t, so generation needs no locks.
 *
 * Value sizes are a pure function of the key id (fixed, uniform range or exponential),
 * so the simulated source of truth always returns the same size for the same key.
 */
#ifndef TCB_WORKLOAD_H
#define TCB_WORKLOAD_H

#include "rng.h"

#include <stddef.h>
#include <stdint.h>

#define TCB_KEY_LEN 17

typedef enum tcb_wl_kind {
    TCB_WL_ZIPF,
    TCB_WL_UNIFORM,
    TCB_WL_HOTSET,
    TCB_WL_TRACE,
} tcb_wl_kind_t;

typedef struct tcb_zipf {
    uint64_t n;
    double s;
    double h_x1;    /* H(1.5) - 1 */
    double h_n;     /* H(n + 0.5) */
    double squeeze; /* accept without evaluating H when k - x <= squeeze */
} tcb_zipf_t;

typedef struct tcb_workload {
    tcb_wl_kind_t kind;
    uint64_t nkeys; /* key universe; for traces the number of distinct ids */
    tcb_zipf_t zipf;
    double hot_share;
    uint64_t hot_n;
    const uint64_t *trace; /* borrowed */
    size_t trace_len;
} tcb_workload_t;

typedef struct tcb_cursor {
    tcb_rng_t rng;
    size_t trace_pos;
} tcb_cursor_t;

/* Zipf over ranks 1..n with exponent s in [0, 20]. 0 or -1 on bad arguments. */
int tcb_zipf_init(tcb_zipf_t *z, uint64_t n, double s);
/* A rank in [1, n]. */
uint64_t tcb_zipf_next(const tcb_zipf_t *z, tcb_rng_t *r);

int tcb_workload_zipf(tcb_workload_t *w, uint64_t nkeys, double s);
int tcb_workload_uniform(tcb_workload_t *w, uint64_t nkeys);
/* hot_frac in (0, 1], hot_share in [0, 1]. */
int tcb_workload_hotset(tcb_workload_t *w, uint64_t nkeys, double hot_frac, double hot_share);
/* ids[0..len) stays owned by the caller and must outlive w; distinct = number of
 * distinct ids (the key universe used for L1 percentages and preloading). */
int tcb_workload_trace(tcb_workload_t *w, const uint64_t *ids, size_t len, uint64_t distinct);

/* Cursor for thread tid of nthreads (seeded from seed; trace offset tid*len/nthreads). */
void tcb_cursor_init(tcb_cursor_t *c, const tcb_workload_t *w, uint64_t seed, unsigned tid,
                     unsigned nthreads);
/* Next key id. epoch only matters to hotset (which window is hot). */
uint64_t tcb_workload_next(const tcb_workload_t *w, tcb_cursor_t *c, uint64_t epoch);
/* "zipf(0.99)", "uniform", "hotset(1%/90%)", "trace". */
const char *tcb_workload_name(const tcb_workload_t *w, char *buf, size_t cap);

/* Key text for id: 'k' + 16 lowercase hex digits, NUL-terminated (TCB_KEY_LEN + 1 bytes). */
void tcb_key_format(uint64_t id, char out[TCB_KEY_LEN + 1]);
/* Inverse of tcb_key_format. 0 or -1 when key is not one of ours. */
int tcb_key_parse(const void *key, size_t klen, uint64_t *id);

/* ---- value sizes ---- */

typedef enum tcb_vsize_kind { TCB_VS_FIXED, TCB_VS_UNIFORM, TCB_VS_EXP } tcb_vsize_kind_t;

typedef struct tcb_vsize {
    tcb_vsize_kind_t kind;
    uint32_t a; /* fixed size, uniform min, or exponential mean */
    uint32_t b; /* uniform max, or exponential cap (16 x mean) */
} tcb_vsize_t;

#define TCB_VSIZE_MAX (16u << 20)

/* "100" (fixed), "64-1024" (uniform, inclusive), "exp:512" (exponential with that mean,
 * capped at 16x). Each size is in the library's byte syntax ("512", "4KiB", "1MB"; bare =
 * bytes), at most 16 MiB. 0 or -1. */
int tcb_vsize_parse(const char *s, tcb_vsize_t *out);
/* Size of id's value; deterministic in (v, id). */
uint32_t tcb_vsize_for(const tcb_vsize_t *v, uint64_t id);
uint32_t tcb_vsize_max(const tcb_vsize_t *v);
/* Expected size (for the working-set estimate). */
double tcb_vsize_mean(const tcb_vsize_t *v);
const char *tcb_vsize_name(const tcb_vsize_t *v, char *buf, size_t cap);

#endif
