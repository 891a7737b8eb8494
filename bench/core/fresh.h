/*
 * fresh.h - what the freshness scenarios (stampede, failing-source) measure, kept free of
 * Redis and threads so the unit tests can check it.
 *
 * Every answer a reader gets is one of three kinds: fresh, stale (tc_ref_stale() said so)
 * or an error. The stampede table asks one more thing of an answer: did it wait on a load?
 * The bench cannot see inside tc_fetch, so it judges by the clock: an answer slower than
 * half a load cannot have been a cache hit on any machine that can run the bench, and an
 * answer that never met a load (a hit, a stale answer) is orders of magnitude faster.
 *
 * The failing-source run needs time, not just totals: a timeline of fixed buckets counts
 * the answers of each kind and the loader calls, plus what the summary is made of, kept
 * exactly so it does not depend on where bucket edges fall: the first failed load, the
 * first error and last stale answers, the instant of every failed load, and totals of
 * the answers from a split instant on. The split may move while a run goes on (the
 * failing-source readers set it to the first failed load once there is one): an answer
 * counts in the tail when it is at or after the split its timeline held when it was
 * recorded. Each reader thread keeps its own timeline and the run merges them; nothing
 * here is thread-safe by itself.
 */
#ifndef TCB_FRESH_H
#define TCB_FRESH_H

#include <stddef.h>
#include <stdint.h>

typedef enum tcb_answer {
    TCB_ANS_FRESH,
    TCB_ANS_STALE,
    TCB_ANS_ERROR,
    TCB_ANS_KINDS,
} tcb_answer_t;

/* 1 when an answer that took lat_ns must have waited on a load of load_ns (more than half
 * of it); 0 otherwise, and always 0 when load_ns is 0 (there is nothing to wait on). */
int tcb_waited(uint64_t lat_ns, uint64_t load_ns);

/* Loads per expiry period: loads over duration / ttl periods (0 when either is 0). */
double tcb_per_period(uint64_t loads, uint64_t duration_ns, uint64_t ttl_ms);

#define TCB_TL_NONE UINT64_MAX /* "no such instant" for first_fail_ns / last_stale_ns */

typedef struct tcb_tl_bucket {
    uint64_t answers[TCB_ANS_KINDS];
    uint64_t loads;
} tcb_tl_bucket_t;

typedef struct tcb_timeline {
    uint64_t bucket_ns;
    size_t nbuckets;
    tcb_tl_bucket_t *b;
    uint64_t split_ns;            /* tail[] counts answers at or after this instant */
    uint64_t tail[TCB_ANS_KINDS]; /* exact, not bucketed */
    uint64_t loads, failed_loads; /* every loader call, and the failed ones */
    uint64_t first_fail_ns;       /* earliest failed load, or TCB_TL_NONE */
    uint64_t first_error_ns;      /* earliest error answer, or TCB_TL_NONE */
    uint64_t last_stale_ns;       /* latest stale answer, or TCB_TL_NONE */
    uint64_t *fail_at;            /* instants of the failed loads (nfail_at of them) */
    size_t nfail_at, cap_fail_at;
} tcb_timeline_t;

/* Buckets of bucket_ns covering [0, duration_ns); instants are ns since the run began and
 * later ones land in the last bucket. 0, or -1 (bad sizes, out of memory). */
int tcb_tl_init(tcb_timeline_t *tl, uint64_t duration_ns, uint64_t bucket_ns,
                uint64_t split_ns);
void tcb_tl_free(tcb_timeline_t *tl);
/* Bucket index of an instant. */
size_t tcb_tl_index(const tcb_timeline_t *tl, uint64_t t_ns);
void tcb_tl_answer(tcb_timeline_t *tl, uint64_t t_ns, tcb_answer_t kind);
/* A loader call starting at t_ns. 0, or -1 when the instant of a failed one could not be
 * kept (out of memory; it is still counted). */
int tcb_tl_load(tcb_timeline_t *tl, uint64_t t_ns, int failed);
/* dst += src (the split is dst's). 0, or -1 when the buckets differ or out of memory. */
int tcb_tl_merge(tcb_timeline_t *dst, const tcb_timeline_t *src);
/* Failed loads in [from_ns, to_ns]. */
uint64_t tcb_tl_failed_between(const tcb_timeline_t *tl, uint64_t from_ns, uint64_t to_ns);

typedef struct tcb_fail_summary {
    int failed;                 /* the source failed at least once */
    double stale_secs;          /* first failed load -> last stale answer; 0 when none after */
    double loads_per_sec;       /* failed loader calls per second, first failure to end_ns */
    double stale_loads_per_sec; /* ... while stale was served (first failure to last stale
                                   answer); -1 when no stale answer came after it */
    double after_loads_per_sec; /* ... after the last stale answer; -1 likewise */
    double error_share;         /* errors among the tail answers (0..1) */
    double stale_share;         /* stale answers among them */
    uint64_t tail_answers;
} tcb_fail_summary_t;

/* Summarize a merged timeline of a run that ended at end_ns (ns since the run began). */
void tcb_tl_summarize(const tcb_timeline_t *tl, uint64_t end_ns, tcb_fail_summary_t *s);

#endif
