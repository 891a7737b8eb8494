/*
 * session.c - setting up a session and measuring one mode in it (see session.h).
 *
 * Counters come from the strongest witness available: Redis's own INFO for what Redis
 * did, tc_stats for what the library's tiers did, and the runner's per-thread counters
 * for what the redis-only code did. Nothing is estimated.
 */
#include "session.h"

#include "checks.h"
#include "fmt.h"
#include "trace.h"

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
    char skipped[256];
    if (*tcb_trace_skipped(&st, skipped, sizeof skipped))
        tcb_warn("trace %s: %s", s->o->trace_path, skipped);
    if (st.hashed)
        tcb_status(s->o, "trace: %llu of %llu keys are strings, hashed into ids",
                   (unsigned long long)st.hashed, (unsigned long long)st.keys);
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
                    tcb_run_cfg_t *c, uint64_t duration_ns, uint64_t ops, uint64_t seed) {
    const tcb_opts_t *o = s->o;
    memset(c, 0, sizeof *c);
    c->mode = m;
    c->arg = arg;
    c->wl = &s->wl;
    c->src = &s->src;
    c->write_frac = o->write_frac;
    c->threads = o->threads;
    c->duration_ns = duration_ns;
    c->total_ops = ops;
    c->hot_shift_ns = s->wl.kind == TCB_WL_HOTSET ? o->hot_shift_ns : 0;
    c->seed = seed;
    c->quiet = o->quiet;
}

/* One mode being measured: its callbacks, its tiercache handle (for tc_stats), and the
 * sums over every measured window so far. */
typedef struct meas {
    tcb_session_t *s;
    const char *name;
    const tcb_mode_ops_t *mode;
    void *arg;
    tc_cache_t *cache; /* NULL for redis-only */
    tcb_run_out_t *acc;
    tcb_result_t *r;
    double *win; /* ops/s of each measured window, for the spread */
    unsigned nwin, capwin;
} meas_t;

/* capwin: the most windows this mode will be measured in. */
static int meas_init(meas_t *m, tcb_session_t *s, const char *name, const tcb_mode_ops_t *mode,
                     void *arg, tc_cache_t *cache, tcb_result_t *r, unsigned capwin) {
    *m = (meas_t){.s = s, .name = name, .mode = mode, .arg = arg, .cache = cache, .r = r};
    m->acc = malloc(sizeof *m->acc);
    m->win = malloc((capwin ? capwin : 1) * sizeof *m->win);
    m->capwin = capwin ? capwin : 1;
    if (!m->acc || !m->win) {
        free(m->acc);
        free(m->win);
        return -1;
    }
    memset(m->acc, 0, offsetof(tcb_run_out_t, hist));
    tcb_hist_reset(&m->acc->hist);
    memset(&r->redis, 0, sizeof r->redis);
    snprintf(r->mode, sizeof r->mode, "%s", mode->name);
    r->has_l1 = cache != NULL;
    return 0;
}

static int meas_warmup(meas_t *m) {
    const tcb_opts_t *o = m->s->o;
    if (o->warmup_ns == 0)
        return 0;
    tcb_run_cfg_t cfg;
    /* The warm-up draws another stream than the measurement, like time passing. */
    run_cfg(m->s, m->mode, m->arg, &cfg, o->warmup_ns, 0, o->seed * 0x9E3779B97F4A7C15ull + 7);
    char label[64];
    snprintf(label, sizeof label, "%s warm-up", m->name);
    cfg.label = label;
    tcb_status(o, "%s: warming up", m->name);
    tcb_run_out_t *out = malloc(sizeof *out);
    int rc = out ? tcb_run(&cfg, out) : -1;
    free(out);
    return rc == 0 && !tcb_interrupted ? 0 : -1;
}

static void add_tc_delta(tcb_result_t *r, const tc_stats_t *a, const tc_stats_t *b) {
    r->l1_hits += b->l1_hits - a->l1_hits;
    r->l1_misses += b->l1_misses - a->l1_misses;
    r->l2_hits += b->l2_hits - a->l2_hits;
    r->l2_misses += b->l2_misses - a->l2_misses;
    r->loads += b->loads - a->loads;
    r->l1_evictions += b->l1_evictions - a->l1_evictions;
    r->inval_sent += b->inval_published - a->inval_published;
    r->inval_applied += b->inval_applied - a->inval_applied;
    r->l1_bytes = b->l1_bytes; /* gauges: the latest */
    r->l1_entries = b->l1_entries;
}

/* One measured window between two snapshots (INFO, and tc_stats for tiercache), added to
 * the sums. */
static int meas_window(meas_t *m, uint64_t duration_ns, uint64_t ops, uint64_t seed) {
    tcb_run_cfg_t cfg;
    run_cfg(m->s, m->mode, m->arg, &cfg, duration_ns, ops, seed);
    cfg.label = m->name;
    tcb_run_out_t *out = malloc(sizeof *out);
    if (!out)
        return -1;
    tcb_info_t a, b, d;
    tc_stats_t sa, sb;
    if (m->cache) {
        tc_stats(m->cache, &sa);
        if (m->nwin == 0) {
            m->r->l1_entries_start = sa.l1_entries;
            m->r->l1_bytes_start = sa.l1_bytes;
        }
    }
    int ia = tcb_info_fetch(m->s->env.ctl, &a);
    int rc = tcb_run(&cfg, out);
    int ib = tcb_info_fetch(m->s->env.ctl, &b);
    if (m->cache) {
        tc_stats(m->cache, &sb);
        add_tc_delta(m->r, &sa, &sb);
    }
    if (ia == 0 && ib == 0) {
        tcb_info_delta(&a, &b, &d);
        tcb_info_add(&m->r->redis, &d);
    }
    if (m->nwin < m->capwin && out->wall_ns > 0)
        m->win[m->nwin++] = (double)out->ops * 1e9 / (double)out->wall_ns;
    tcb_run_out_add(m->acc, out);
    free(out);
    return rc;
}

/* The latest window's ops/s (0 before any). */
static double meas_last(const meas_t *m) {
    return m->nwin ? m->win[m->nwin - 1] : 0.0;
}

/* Did the L1 hold what it could when measuring began? Warns through checks.h. */
static void check_fill(const meas_t *m) {
    const tcb_result_t *r = m->r;
    char end[64], advice[160];
    snprintf(advice, sizeof advice,
             "a longer --warmup (now %.3g s) lets it fill before measuring",
             (double)m->s->o->warmup_ns / 1e9);
    if (r->l1_cap_entries) {
        uint64_t could = r->l1_cap_entries < m->s->ks.n ? r->l1_cap_entries : m->s->ks.n;
        char e[32];
        snprintf(end, sizeof end, "when measuring began (%s at the end)",
                 tcb_fmt_count(r->l1_entries, e, sizeof e));
        tcb_check_l1_fill(m->name, end, r->l1_entries_start, could, "entries", advice);
    } else if (r->l1_cap_bytes &&
               (double)r->l1_entries_start < TCB_L1_FULL_SHARE * (double)m->s->ks.n) {
        char e[32];
        snprintf(end, sizeof end, "when measuring began (%s at the end)",
                 tcb_fmt_count(r->l1_bytes, e, sizeof e));
        tcb_check_l1_fill(m->name, end, r->l1_bytes_start, r->l1_cap_bytes, "bytes", advice);
    }
}

/* Percentiles and counts from the merged windows; frees the sums. */
static void meas_finish(meas_t *m) {
    tcb_result_t *r = m->r;
    const tcb_run_out_t *out = m->acc;
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
    if (!m->cache) { /* redis-only counts its own hits, misses and loads */
        r->l2_hits = out->hits;
        r->l2_misses = out->misses;
        r->loads = out->loads;
    }
    const char *err = !out->errors ? ""
                      : m->cache   ? tc_err_name(out->first_error)
                                   : "hiredis error";
    snprintf(r->first_error, sizeof r->first_error, "%s", err);
    tcb_spread_of(m->win, m->nwin, &r->tput);
    if (m->cache && !tcb_interrupted)
        check_fill(m);
    free(m->acc);
    free(m->win);
    m->acc = NULL;
    m->win = NULL;
}

static int measure_all(meas_t *m) {
    const tcb_opts_t *o = m->s->o;
    if (meas_warmup(m) != 0)
        return -1;
    tcb_status(o, "%s: measuring", m->name);
    int rc = meas_window(m, o->duration_ns, o->ops, o->seed);
    meas_finish(m);
    return rc == 0 || tcb_interrupted ? rc : -1;
}

static int ro_prepare(tcb_session_t *s, tcb_ro_t *ro) {
    *ro = (tcb_ro_t){.ep = &s->env.ep, .ttl_ms = s->o->ttl_ms, .src = &s->src};
    snprintf(ro->prefix, sizeof ro->prefix, "%sro:", s->env.prefix);
    if (!s->o->preload)
        return 0;
    char n[32];
    tcb_status(s->o, "redis-only: preloading %s keys", tcb_fmt_count(s->ks.n, n, sizeof n));
    return tcb_preload_redis_only(s->o, s->env.ctl, ro, &s->ks);
}

int tcb_measure_redis_only(tcb_session_t *s, tcb_result_t *r) {
    memset(r, 0, sizeof *r);
    tcb_ro_t ro;
    meas_t m;
    if (ro_prepare(s, &ro) != 0 ||
        meas_init(&m, s, "redis-only", &tcb_mode_redis_only, &ro, NULL, r, 1) != 0)
        return -1;
    return measure_all(&m);
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
        *cache = NULL;
        return -1;
    }
    return 0;
}

int tcb_measure_tiercache(tcb_session_t *s, double pct, int preload, const char *label,
                          tcb_result_t *r) {
    memset(r, 0, sizeof *r);
    char tc_prefix[96];
    snprintf(tc_prefix, sizeof tc_prefix, "%stc:", s->env.prefix);
    tc_cache_t *cache = NULL;
    if (tc_prepare(s, pct, preload && s->o->preload, tc_prefix, &cache, r) != 0)
        return -1;
    tcb_tcm_t tcm = {.cache = cache, .src = &s->src, .ttl_ms = s->o->ttl_ms};
    meas_t m;
    int rc =
        meas_init(&m, s, label ? label : "tiercache", &tcb_mode_tiercache, &tcm, cache, r, 1);
    if (rc == 0)
        rc = measure_all(&m);
    tc_close(cache);
    return rc;
}

/* Both modes in alternating windows, redis-only first: slow drift of a shared machine hits
 * both alike. ratios[i] is round i's tiercache / redis-only throughput. */
static int pair_rounds(meas_t *mr, meas_t *mt, int rounds, double *ratios) {
    const tcb_opts_t *o = mr->s->o;
    int rc = 0;
    for (int i = 0; i < rounds && rc == 0 && !tcb_interrupted; i++) {
        tcb_status(o, "%s: round %d of %d: %s, then %s", mt->name, i + 1, rounds, mr->name,
                   mt->name);
        uint64_t ops = o->ops / (uint64_t)rounds, seed = o->seed + (uint64_t)i;
        uint64_t d = o->duration_ns / (uint64_t)rounds;
        rc = meas_window(mr, d, ops, seed);
        if (rc == 0)
            rc = meas_window(mt, d, ops, seed);
        double tr = meas_last(mr), tt = meas_last(mt);
        ratios[i] = tr > 0 ? tt / tr : 0;
    }
    return rc;
}

int tcb_measure_interleaved(tcb_session_t *s, int rounds, tcb_result_t *ro_r,
                            tcb_result_t *tc_r, double *ratios) {
    memset(ro_r, 0, sizeof *ro_r);
    memset(tc_r, 0, sizeof *tc_r);
    char tc_prefix[96];
    snprintf(tc_prefix, sizeof tc_prefix, "%stc:", s->env.prefix);
    tcb_ro_t ro;
    tc_cache_t *cache = NULL;
    if (ro_prepare(s, &ro) != 0 ||
        tc_prepare(s, s->o->l1_pct, s->o->preload, tc_prefix, &cache, tc_r) != 0)
        return -1;
    tcb_tcm_t tcm = {.cache = cache, .src = &s->src, .ttl_ms = s->o->ttl_ms};
    meas_t mr, mt;
    unsigned cap = (unsigned)rounds;
    int rc = meas_init(&mr, s, "redis-only", &tcb_mode_redis_only, &ro, NULL, ro_r, cap);
    if (rc == 0 && (rc = meas_init(&mt, s, "tiercache", &tcb_mode_tiercache, &tcm, cache, tc_r,
                                   cap)) != 0) {
        free(mr.acc);
        free(mr.win);
    }
    if (rc == 0) {
        if (meas_warmup(&mr) != 0 || meas_warmup(&mt) != 0)
            rc = -1;
        if (rc == 0)
            rc = pair_rounds(&mr, &mt, rounds, ratios);
        meas_finish(&mr);
        meas_finish(&mt);
    }
    tc_close(cache);
    return rc;
}

/* One sweep point: tiercache at pct, its own warm-up, then rounds paired with the
 * baseline's windows (mr, whose sums run across every point). */
static int sweep_point(tcb_session_t *s, meas_t *mr, double pct, int preload, int rounds,
                       tcb_result_t *r) {
    memset(r, 0, sizeof *r);
    char tc_prefix[96], label[48];
    snprintf(tc_prefix, sizeof tc_prefix, "%stc:", s->env.prefix);
    snprintf(label, sizeof label, "tiercache L1 %.3g%%", pct);
    tc_cache_t *cache = NULL;
    if (tc_prepare(s, pct, preload, tc_prefix, &cache, r) != 0)
        return -1;
    tcb_tcm_t tcm = {.cache = cache, .src = &s->src, .ttl_ms = s->o->ttl_ms};
    double *ratios = malloc((size_t)rounds * sizeof *ratios);
    meas_t mt;
    int rc =
        ratios ? meas_init(&mt, s, label, &tcb_mode_tiercache, &tcm, cache, r, (unsigned)rounds)
               : -1;
    if (rc == 0) {
        rc = meas_warmup(&mt);
        if (rc == 0)
            rc = pair_rounds(mr, &mt, rounds, ratios);
        meas_finish(&mt);
        /* the ratios of the rounds that ran: mt's windows */
        tcb_spread_of(ratios, r->tput.n, &r->speedup);
    }
    free(ratios);
    tc_close(cache);
    return rc;
}

int tcb_measure_sweep(tcb_session_t *s, int rounds, tcb_result_t *base, tcb_result_t *pts,
                      int *n) {
    const tcb_opts_t *o = s->o;
    memset(base, 0, sizeof *base);
    *n = 0;
    tcb_ro_t ro;
    meas_t mr;
    unsigned cap = (unsigned)(rounds * o->nsweep);
    if (ro_prepare(s, &ro) != 0 ||
        meas_init(&mr, s, "redis-only", &tcb_mode_redis_only, &ro, NULL, base, cap) != 0)
        return -1;
    int rc = meas_warmup(&mr);
    for (int i = 0; i < o->nsweep && rc == 0 && !tcb_interrupted; i++) {
        rc = sweep_point(s, &mr, o->sweep_pcts[i], i == 0 && o->preload, rounds, &pts[i]);
        if (rc == 0)
            *n = i + 1;
    }
    meas_finish(&mr);
    return rc;
}
