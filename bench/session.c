/*
 * session.c - setting up a session and measuring one mode in it (see session.h).
 *
 * Counters come from the strongest witness available: Redis's own INFO for what Redis
 * did, tc_stats for what the library's tiers did, and the runner's per-thread counters
 * for what the redis-only code did. Nothing is estimated.
 */
#include "session.h"

#include "trace.h"
#include "units.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int load_trace(tcb_session_t *s) {
    tcb_trace_stats_t st;
    char err[512];
    tcb_status(s->o, "reading trace %s", s->o->trace_path);
    if (tcb_trace_load(s->o->trace_path, &s->trace_ids, &s->trace_len, &st, err, sizeof err)) {
        fprintf(stderr, "tiercache-bench: %s\n", err);
        return -1;
    }
    if (st.bad || st.blank)
        tcb_status(s->o, "trace: skipped %llu bad and %llu blank lines",
                   (unsigned long long)st.bad, (unsigned long long)st.blank);
    uint64_t n = tcb_trace_distinct(s->trace_ids, s->trace_len, &s->distinct);
    if (n == 0 || tcb_workload_trace(&s->wl, s->trace_ids, s->trace_len, n) != 0) {
        fprintf(stderr, "tiercache-bench: out of memory reading the trace\n");
        return -1;
    }
    s->ks.ids = s->distinct;
    s->ks.n = n;
    return 0;
}

static int build_workload(tcb_session_t *s) {
    const tcb_opts_t *o = s->o;
    s->ks.ids = NULL;
    s->ks.n = o->keys;
    switch (o->wl_kind) {
    case TCB_WL_ZIPF:
        return tcb_workload_zipf(&s->wl, o->keys, o->zipf_s);
    case TCB_WL_UNIFORM:
        return tcb_workload_uniform(&s->wl, o->keys);
    case TCB_WL_HOTSET:
        return tcb_workload_hotset(&s->wl, o->keys, o->hot_frac, o->hot_share);
    case TCB_WL_TRACE:
        break;
    }
    return load_trace(s);
}

void tcb_l1_describe(const tcb_opts_t *o, double pct, uint64_t nkeys, char *buf, size_t cap) {
    uint64_t entries, bytes;
    tcb_l1_capacity(o, pct, nkeys, &entries, &bytes);
    char a[32];
    if (o->l1_in_bytes)
        snprintf(buf, cap, "%s byte budget", tcb_fmt_bytes((double)bytes, a, sizeof a));
    else if (entries == 0)
        snprintf(buf, cap, "off (every read goes to Redis)");
    else
        snprintf(buf, cap, "%.3g%% of the keys (%s entries)", pct,
                 tcb_fmt_count(entries, a, sizeof a));
}

static void build_ctx(tcb_session_t *s, const char *command) {
    const tcb_opts_t *o = s->o;
    tcb_report_ctx_t *c = &s->ctx;
    memset(c, 0, sizeof *c);
    c->command = command;
    char wl[80];
    tcb_workload_name(&s->wl, wl, sizeof wl);
    if (s->wl.kind == TCB_WL_TRACE)
        snprintf(c->workload, sizeof c->workload, "trace %s", o->trace_path);
    else
        snprintf(c->workload, sizeof c->workload, "%s", wl);
    c->nkeys = s->ks.n;
    tcb_vsize_name(&o->vsize, c->vsize, sizeof c->vsize);
    c->write_frac = o->write_frac;
    c->threads = o->threads;
    c->duration_ns = o->duration_ns;
    c->warmup_ns = o->warmup_ns;
    c->ops = o->ops;
    c->source_ns = o->source_ns;
    c->ttl_ms = o->ttl_ms;
    c->preload = o->preload;
    c->seed = o->seed;
    if (s->env.owned)
        snprintf(c->redis, sizeof c->redis, "throwaway redis-server %s (%s)", s->env.version,
                 s->env.url_shown);
    else
        snprintf(c->redis, sizeof c->redis, "%s (redis %s)", s->env.url_shown, s->env.version);
    tcb_l1_describe(o, o->l1_pct, s->ks.n, c->l1, sizeof c->l1);
}

int tcb_session_open(tcb_session_t *s, const tcb_opts_t *o, const char *command) {
    memset(s, 0, sizeof *s);
    s->o = o;
    s->src.latency_ns = o->source_ns;
    s->src.vsize = o->vsize;
    if (build_workload(s) != 0) {
        tcb_session_close(s);
        return -1;
    }
    if (tcb_env_open(&s->env, o) != 0) {
        tcb_session_close(s);
        return -1;
    }
    build_ctx(s, command);
    return 0;
}

void tcb_session_close(tcb_session_t *s) {
    tcb_env_close(&s->env);
    free(s->trace_ids);
    free(s->distinct);
    s->trace_ids = s->distinct = NULL;
}

static void run_cfg(const tcb_session_t *s, const tcb_mode_ops_t *m, void *arg,
                    tcb_run_cfg_t *c, int warmup) {
    const tcb_opts_t *o = s->o;
    memset(c, 0, sizeof *c);
    c->mode = m;
    c->arg = arg;
    c->wl = &s->wl;
    c->src = &s->src;
    c->write_frac = o->write_frac;
    c->threads = o->threads;
    c->duration_ns = warmup ? o->warmup_ns : o->duration_ns;
    c->total_ops = warmup ? 0 : o->ops;
    c->hot_shift_ns = s->wl.kind == TCB_WL_HOTSET ? o->hot_shift_ns : 0;
    /* The warm-up draws a different stream than the measurement, like time passing. */
    c->seed = warmup ? o->seed * 0x9E3779B97F4A7C15ull + 7 : o->seed;
    c->quiet = o->quiet;
}

/* Warm-up (unless disabled) and the measured run between two INFO snapshots. */
static int warm_and_run(tcb_session_t *s, tcb_run_cfg_t *cfg, tcb_run_out_t *out,
                        tcb_info_t *redis, const char *name, void (*snap)(void *, int),
                        void *snap_arg) {
    char label[48];
    if (s->o->warmup_ns > 0) {
        run_cfg(s, cfg->mode, cfg->arg, cfg, 1);
        snprintf(label, sizeof label, "%s warm-up", name);
        cfg->label = label;
        tcb_status(s->o, "%s: warming up", name);
        if (tcb_run(cfg, out) != 0 || tcb_interrupted)
            return -1;
    }
    run_cfg(s, cfg->mode, cfg->arg, cfg, 0);
    cfg->label = name;
    tcb_status(s->o, "%s: measuring", name);
    tcb_info_t a, b;
    if (snap)
        snap(snap_arg, 0);
    int ia = tcb_info_fetch(s->env.ctl, &a);
    int rc = tcb_run(cfg, out);
    int ib = tcb_info_fetch(s->env.ctl, &b);
    if (snap)
        snap(snap_arg, 1);
    if (ia == 0 && ib == 0)
        tcb_info_delta(&a, &b, redis);
    else
        memset(redis, 0, sizeof *redis);
    return rc;
}

static void fill_common(tcb_result_t *r, const char *mode, const tcb_run_out_t *out) {
    memset(r, 0, offsetof(tcb_result_t, redis));
    snprintf(r->mode, sizeof r->mode, "%s", mode);
    r->ops = out->ops;
    r->reads = out->reads;
    r->writes = out->writes;
    r->errors = out->errors;
    r->secs = (double)out->wall_ns / 1e9;
    r->p50 = tcb_hist_quantile(&out->hist, 0.50);
    r->p90 = tcb_hist_quantile(&out->hist, 0.90);
    r->p99 = tcb_hist_quantile(&out->hist, 0.99);
    r->p999 = tcb_hist_quantile(&out->hist, 0.999);
    r->max = out->hist.max;
    r->mean = tcb_hist_mean(&out->hist);
    r->interrupted = out->interrupted;
}

int tcb_measure_redis_only(tcb_session_t *s, tcb_result_t *r) {
    tcb_ro_t ro = {.ep = &s->env.ep, .ttl_ms = s->o->ttl_ms, .src = &s->src};
    snprintf(ro.prefix, sizeof ro.prefix, "%sro:", s->env.prefix);
    if (s->o->preload) {
        char n[32];
        tcb_status(s->o, "redis-only: preloading %s keys", tcb_fmt_count(s->ks.n, n, sizeof n));
        if (tcb_preload_redis_only(s->o, s->env.ctl, &ro, &s->ks) != 0)
            return -1;
    }
    tcb_run_cfg_t cfg = {.mode = &tcb_mode_redis_only, .arg = &ro};
    tcb_run_out_t *out = malloc(sizeof *out);
    if (!out)
        return -1;
    tcb_info_t redis;
    int rc = warm_and_run(s, &cfg, out, &redis, "redis-only", NULL, NULL);
    if (rc == 0 || tcb_interrupted) {
        fill_common(r, "redis-only", out);
        r->redis = redis;
        r->l2_hits = out->hits;
        r->l2_misses = out->misses;
        r->loads = out->loads;
        snprintf(r->first_error, sizeof r->first_error, "%s",
                 out->errors ? "hiredis error" : "");
    }
    free(out);
    return rc;
}

typedef struct tc_snap {
    tc_cache_t *cache;
    tc_stats_t st[2];
} tc_snap_t;

static void tc_snap(void *arg, int which) {
    tc_snap_t *t = arg;
    tc_stats(t->cache, &t->st[which]);
}

static void fill_tc(tcb_result_t *r, const tc_snap_t *t) {
    const tc_stats_t *a = &t->st[0], *b = &t->st[1];
    r->has_l1 = 1;
    r->l1_hits = b->l1_hits - a->l1_hits;
    r->l1_misses = b->l1_misses - a->l1_misses;
    r->l2_hits = b->l2_hits - a->l2_hits;
    r->l2_misses = b->l2_misses - a->l2_misses;
    r->loads = b->loads - a->loads;
    r->l1_bytes = b->l1_bytes;
    r->l1_entries = b->l1_entries;
    r->l1_evictions = b->l1_evictions - a->l1_evictions;
    r->inval_sent = b->inval_published - a->inval_published;
    r->inval_applied = b->inval_applied - a->inval_applied;
}

static int tc_prepare(tcb_session_t *s, double pct, int preload, const char *tc_prefix,
                      tc_cache_t **cache, tcb_result_t *r) {
    uint64_t entries, bytes;
    tcb_l1_capacity(s->o, pct, s->ks.n, &entries, &bytes);
    r->l1_pct = s->o->l1_in_bytes ? -1.0 : pct;
    r->l1_cap_entries = entries;
    r->l1_cap_bytes = bytes;
    if (preload) {
        char n[32];
        tcb_status(s->o, "tiercache: preloading %s keys", tcb_fmt_count(s->ks.n, n, sizeof n));
        if (tcb_preload_tiercache(s->o, s->env.ctl, tc_prefix, &s->src, &s->ks) != 0)
            return -1;
    }
    if (tcb_tc_open(&s->env, s->o, tc_prefix, entries, bytes, cache) != 0)
        return -1;
    if (preload && tcb_tc_check_preload(*cache, &s->src, &s->ks) != 0) {
        tc_close(*cache);
        return -1;
    }
    return 0;
}

int tcb_measure_tiercache(tcb_session_t *s, double pct, int preload, const char *label,
                          tcb_result_t *r) {
    char tc_prefix[96];
    const char *name = label ? label : "tiercache";
    snprintf(tc_prefix, sizeof tc_prefix, "%stc:", s->env.prefix);
    tcb_result_t caps;
    tc_cache_t *cache = NULL;
    if (tc_prepare(s, pct, preload && s->o->preload, tc_prefix, &cache, &caps) != 0)
        return -1;
    tcb_tcm_t m = {.cache = cache, .src = &s->src, .ttl_ms = s->o->ttl_ms};
    tcb_run_cfg_t cfg = {.mode = &tcb_mode_tiercache, .arg = &m};
    tcb_run_out_t *out = malloc(sizeof *out);
    tc_snap_t snap = {.cache = cache};
    tcb_info_t redis;
    int rc = out ? warm_and_run(s, &cfg, out, &redis, name, tc_snap, &snap) : -1;
    if (out && (rc == 0 || tcb_interrupted)) {
        fill_common(r, "tiercache", out);
        r->redis = redis;
        r->l1_pct = caps.l1_pct;
        r->l1_cap_entries = caps.l1_cap_entries;
        r->l1_cap_bytes = caps.l1_cap_bytes;
        fill_tc(r, &snap);
        snprintf(r->first_error, sizeof r->first_error, "%s",
                 out->errors ? tc_err_name(out->first_error) : "");
    }
    free(out);
    tc_close(cache);
    return rc;
}
