/*
 * fresh.c - answer classification, timelines and the failing-source summary (fresh.h).
 *
 * Invariants: every answer recorded is in exactly one bucket and, when at or after the
 * split, in tail[] too; first_fail_ns and first_error_ns only move earlier and
 * last_stale_ns only later; fail_at holds one instant per failed load (unordered). So
 * merging per-thread timelines in any order gives the same result.
 */
#include "fresh.h"

#include <stdlib.h>
#include <string.h>

int tcb_waited(uint64_t lat_ns, uint64_t load_ns) {
    return load_ns > 0 && lat_ns > load_ns / 2;
}

double tcb_per_period(uint64_t loads, uint64_t duration_ns, uint64_t ttl_ms) {
    if (duration_ns == 0 || ttl_ms == 0)
        return 0.0;
    double periods = (double)duration_ns / ((double)ttl_ms * 1e6);
    return (double)loads / periods;
}

int tcb_tl_init(tcb_timeline_t *tl, uint64_t duration_ns, uint64_t bucket_ns,
                uint64_t split_ns) {
    memset(tl, 0, sizeof *tl);
    if (bucket_ns == 0 || duration_ns == 0)
        return -1;
    uint64_t n = duration_ns / bucket_ns + (duration_ns % bucket_ns != 0);
    if (n > 1000000)
        return -1;
    tl->b = calloc((size_t)n, sizeof *tl->b);
    if (!tl->b)
        return -1;
    tl->nbuckets = (size_t)n;
    tl->bucket_ns = bucket_ns;
    tl->split_ns = split_ns;
    tl->first_fail_ns = TCB_TL_NONE;
    tl->first_error_ns = TCB_TL_NONE;
    tl->last_stale_ns = TCB_TL_NONE;
    return 0;
}

void tcb_tl_free(tcb_timeline_t *tl) {
    free(tl->b);
    free(tl->fail_at);
    tl->b = NULL;
    tl->fail_at = NULL;
    tl->nbuckets = tl->nfail_at = tl->cap_fail_at = 0;
}

size_t tcb_tl_index(const tcb_timeline_t *tl, uint64_t t_ns) {
    uint64_t i = t_ns / tl->bucket_ns;
    return i < tl->nbuckets ? (size_t)i : tl->nbuckets - 1;
}

void tcb_tl_answer(tcb_timeline_t *tl, uint64_t t_ns, tcb_answer_t kind) {
    tl->b[tcb_tl_index(tl, t_ns)].answers[kind]++;
    if (t_ns >= tl->split_ns)
        tl->tail[kind]++;
    if (kind == TCB_ANS_STALE && (tl->last_stale_ns == TCB_TL_NONE || t_ns > tl->last_stale_ns))
        tl->last_stale_ns = t_ns;
    if (kind == TCB_ANS_ERROR && t_ns < tl->first_error_ns)
        tl->first_error_ns = t_ns;
}

static int keep_fail(tcb_timeline_t *tl, uint64_t t_ns) {
    if (tl->nfail_at == tl->cap_fail_at) {
        size_t cap = tl->cap_fail_at ? 2 * tl->cap_fail_at : 64;
        uint64_t *p = realloc(tl->fail_at, cap * sizeof *p);
        if (!p)
            return -1;
        tl->fail_at = p;
        tl->cap_fail_at = cap;
    }
    tl->fail_at[tl->nfail_at++] = t_ns;
    return 0;
}

int tcb_tl_load(tcb_timeline_t *tl, uint64_t t_ns, int failed) {
    tl->b[tcb_tl_index(tl, t_ns)].loads++;
    tl->loads++;
    if (!failed)
        return 0;
    tl->failed_loads++;
    if (t_ns < tl->first_fail_ns)
        tl->first_fail_ns = t_ns;
    return keep_fail(tl, t_ns);
}

uint64_t tcb_tl_failed_between(const tcb_timeline_t *tl, uint64_t from_ns, uint64_t to_ns) {
    uint64_t n = 0;
    for (size_t i = 0; i < tl->nfail_at; i++)
        n += tl->fail_at[i] >= from_ns && tl->fail_at[i] <= to_ns;
    return n;
}

static uint64_t later(uint64_t a, uint64_t b) {
    if (a == TCB_TL_NONE)
        return b;
    if (b == TCB_TL_NONE)
        return a;
    return a > b ? a : b;
}

static uint64_t earlier(uint64_t a, uint64_t b) {
    return a < b ? a : b; /* TCB_TL_NONE is the largest value */
}

int tcb_tl_merge(tcb_timeline_t *dst, const tcb_timeline_t *src) {
    if (dst->nbuckets != src->nbuckets || dst->bucket_ns != src->bucket_ns)
        return -1;
    for (size_t i = 0; i < dst->nbuckets; i++) {
        for (int k = 0; k < TCB_ANS_KINDS; k++)
            dst->b[i].answers[k] += src->b[i].answers[k];
        dst->b[i].loads += src->b[i].loads;
    }
    for (int k = 0; k < TCB_ANS_KINDS; k++)
        dst->tail[k] += src->tail[k];
    dst->loads += src->loads;
    dst->failed_loads += src->failed_loads;
    dst->first_fail_ns = earlier(dst->first_fail_ns, src->first_fail_ns);
    dst->first_error_ns = earlier(dst->first_error_ns, src->first_error_ns);
    dst->last_stale_ns = later(dst->last_stale_ns, src->last_stale_ns);
    for (size_t i = 0; i < src->nfail_at; i++)
        if (keep_fail(dst, src->fail_at[i]) != 0)
            return -1;
    return 0;
}

static double per_sec(uint64_t n, uint64_t from_ns, uint64_t to_ns) {
    return to_ns > from_ns ? (double)n / ((double)(to_ns - from_ns) / 1e9) : 0.0;
}

void tcb_tl_summarize(const tcb_timeline_t *tl, uint64_t end_ns, tcb_fail_summary_t *s) {
    memset(s, 0, sizeof *s);
    for (int k = 0; k < TCB_ANS_KINDS; k++)
        s->tail_answers += tl->tail[k];
    if (s->tail_answers) {
        s->error_share = (double)tl->tail[TCB_ANS_ERROR] / (double)s->tail_answers;
        s->stale_share = (double)tl->tail[TCB_ANS_STALE] / (double)s->tail_answers;
    }
    uint64_t ff = tl->first_fail_ns;
    if (ff == TCB_TL_NONE)
        return;
    s->failed = 1;
    s->loads_per_sec = per_sec(tl->failed_loads, ff, end_ns);
    s->stale_loads_per_sec = s->after_loads_per_sec = -1.0;
    uint64_t ls = tl->last_stale_ns;
    if (ls == TCB_TL_NONE || ls <= ff)
        return;
    s->stale_secs = (double)(ls - ff) / 1e9;
    s->stale_loads_per_sec = per_sec(tcb_tl_failed_between(tl, ff, ls), ff, ls);
    if (end_ns > ls)
        s->after_loads_per_sec =
            per_sec(tcb_tl_failed_between(tl, ls + 1, UINT64_MAX), ls, end_ns);
}
