/*
 * warm.c - `warm`: how soon a freshly started process's L1 earns its keep, with and
 * without tc_warm.
 *
 * The flow it shows is the one tc_warm is for: a running instance lists its hot keys with
 * tc_hot_keys (and saves the list, at shutdown or now and then); the next instance passes
 * the list to tc_warm right after tc_open, before it takes traffic.
 *
 *   1. a working set of W keys (-n, default 50,000) is written to Redis with tc_mset;
 *   2. the previous instance: a cache with the run's L1 (--l1, default 10% of W, as an
 *      entry cap) serves the workload for --warmup (2 s), then tc_hot_keys lists as many
 *      keys as its L1 holds, and it closes (the list stays in memory: what a service
 *      would write to a file);
 *   3. cold: a fresh cache serves the same workload for --duration (3 s);
 *   4. warm: a fresh cache, tc_warm(list) timed, then the same workload.
 *
 * The workload is -t threads (default 1) of tc_get + tc_ref_release on Zipf(-s) keys of
 * the working set, every thread seeded as in the other runs, so cold and warm read the
 * same key sequence. Every key is in Redis, so a miss in L1 is one Redis round trip and
 * a fill. The main thread samples tc_stats (l1_hits, l1_misses) at the end of each
 * interval: every 100 ms over the first second, then every 500 ms. The previous
 * instance's last interval is the steady state the table is read against.
 */
#include "multi.h"

#include "checks.h"
#include "fmt.h"
#include "json.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INTERVALS 512
#define MAX_THREADS   256
#define REACH_SHARE   0.9        /* "warm enough": this share of the steady hit rate */
#define FINE_NS       5000000ull /* counters read this often over the first seconds */
#define MAX_FINE      1024

/* The read counts the start is judged over: hit rate of the first N reads, whatever the
 * machine's speed (a time window's share would weigh a slow spell less). */
static const uint64_t first_reads[] = {2000, 10000, 50000, 200000};
#define NFIRST (sizeof first_reads / sizeof first_reads[0])

/* ---------------- the hot-key list ---------------- */

typedef struct hot_list {
    unsigned char *bytes;
    size_t used, cap;
    size_t *off, *len;
    size_t n, ncap;
    tc_buf_t *keys; /* built once the list is complete */
} hot_list_t;

static int hot_collect(void *arg, const void *key, size_t klen) {
    hot_list_t *h = arg;
    if (h->used + klen > h->cap) {
        size_t cap = (h->cap ? h->cap * 2 : 65536) + klen;
        unsigned char *b = realloc(h->bytes, cap);
        if (!b)
            return 1;
        h->bytes = b;
        h->cap = cap;
    }
    if (h->n == h->ncap) {
        size_t ncap = h->ncap ? h->ncap * 2 : 4096;
        size_t *off = realloc(h->off, ncap * sizeof *off);
        if (off)
            h->off = off;
        size_t *len = off ? realloc(h->len, ncap * sizeof *len) : NULL;
        if (!len)
            return 1;
        h->len = len;
        h->ncap = ncap;
    }
    memcpy(h->bytes + h->used, key, klen);
    h->off[h->n] = h->used;
    h->len[h->n++] = klen;
    h->used += klen;
    return 0;
}

static int hot_finish(hot_list_t *h) {
    h->keys = calloc(h->n ? h->n : 1, sizeof *h->keys);
    for (size_t i = 0; h->keys && i < h->n; i++)
        h->keys[i] = (tc_buf_t){h->bytes + h->off[i], h->len[i]};
    return h->keys ? 0 : -1;
}

static void hot_free(hot_list_t *h) {
    free(h->bytes);
    free(h->off);
    free(h->len);
    free(h->keys);
}

/* ---------------- one run of the workload ---------------- */

typedef struct interval {
    double end_s;
    uint64_t hits, misses;
} interval_t;

/* Cumulative counters since the start of a run, read every FINE_NS. */
typedef struct fine {
    uint64_t reads, hits;
} fine_t;

typedef struct run_res {
    size_t n, nfine;
    interval_t iv[MAX_INTERVALS];
    fine_t fine[MAX_FINE];
    uint64_t errors;
} run_res_t;

typedef struct run_ctx {
    const tcb_opts_t *o;
    const tcb_workload_t *wl;
    tc_cache_t *c;
    atomic_int stop;
    atomic_uint_fast64_t errors;
} run_ctx_t;

typedef struct worker {
    run_ctx_t *ctx;
    unsigned tid;
    pthread_t th;
} worker_t;

static void *worker_main(void *arg) {
    worker_t *w = arg;
    run_ctx_t *ctx = w->ctx;
    tcb_cursor_t cur;
    tcb_cursor_init(&cur, ctx->wl, ctx->o->seed, w->tid, ctx->o->threads);
    char key[TCB_KEY_LEN + 1];
    uint64_t errors = 0;
    while (!atomic_load_explicit(&ctx->stop, memory_order_relaxed)) {
        for (int i = 0; i < 16; i++) {
            tcb_key_format(tcb_workload_next(ctx->wl, &cur, 0), key);
            tc_ref_t *ref = NULL;
            errors += tc_get(ctx->c, key, TCB_KEY_LEN, &ref) != 0;
            tc_ref_release(ref);
        }
    }
    atomic_fetch_add(&ctx->errors, errors);
    return NULL;
}

/* 100 ms steps over the first second, 500 ms after, the last one cut at the end. */
static double next_boundary(double prev, double end) {
    double next = prev < 0.999 ? prev + 0.1 : prev + 0.5;
    return next > end - 1e-9 ? end : next;
}

/* One reading of c's counters at t (seconds): a fine sample while there is room, and the
 * end of an interval when t has reached the boundary. Returns 1 at the end of the run. */
static int sample(tc_cache_t *c, const uint64_t base[2], double t, double *boundary, double end,
                  run_res_t *r) {
    tc_stats_t st;
    tc_stats(c, &st);
    uint64_t hits = st.l1_hits - base[0], reads = hits + st.l1_misses - base[1];
    if (r->nfine < MAX_FINE)
        r->fine[r->nfine++] = (fine_t){reads, hits};
    if (t < *boundary - 1e-6)
        return 0;
    uint64_t h0 = 0, n0 = 0;
    for (size_t i = 0; i < r->n; i++) {
        h0 += r->iv[i].hits;
        n0 += r->iv[i].hits + r->iv[i].misses;
    }
    r->iv[r->n++] = (interval_t){t, hits - h0, (reads - n0) - (hits - h0)};
    *boundary = next_boundary(*boundary, end);
    return t >= end - 1e-6 || r->n == MAX_INTERVALS || tcb_interrupted;
}

/* Run the workload on c for duration_ns, reading its L1 counters every FINE_NS. */
static int run_workload(const tcb_opts_t *o, const tcb_workload_t *wl, tc_cache_t *c,
                        uint64_t duration_ns, run_res_t *r) {
    run_ctx_t ctx = {.o = o, .wl = wl, .c = c};
    worker_t *ws = calloc(o->threads, sizeof *ws);
    if (!ws)
        return -1;
    memset(r, 0, sizeof *r);
    double end = (double)duration_ns / 1e9, boundary = next_boundary(0, end);
    tc_stats_t st;
    tc_stats(c, &st);
    uint64_t base[2] = {st.l1_hits, st.l1_misses}, t0 = tcb_now_ns();
    unsigned started = 0;
    for (; started < o->threads; started++) {
        ws[started] = (worker_t){.ctx = &ctx, .tid = started};
        if (pthread_create(&ws[started].th, NULL, worker_main, &ws[started]) != 0)
            break;
    }
    while (started == o->threads) {
        uint64_t now = tcb_now_ns(), b = t0 + (uint64_t)(boundary * 1e9);
        uint64_t at = t0 + ((now - t0) / FINE_NS + 1) * FINE_NS;
        if (r->nfine == MAX_FINE || b < at)
            at = b; /* past the fine window: sleep to the interval's end */
        if (at > now)
            tcb_multi_sleep_us((long)((at - now) / 1000));
        if (sample(c, base, (double)(tcb_now_ns() - t0) / 1e9, &boundary, end, r))
            break;
    }
    atomic_store(&ctx.stop, 1);
    for (unsigned i = 0; i < started; i++)
        pthread_join(ws[i].th, NULL);
    free(ws);
    r->errors = atomic_load(&ctx.errors);
    return started == o->threads ? 0 : -1;
}

static double hit_rate(uint64_t hits, uint64_t misses) {
    return hits + misses ? (double)hits / (double)(hits + misses) : NAN;
}

static double iv_rate(const interval_t *iv) {
    return hit_rate(iv->hits, iv->misses);
}

static double iv_secs(const run_res_t *r, size_t i) {
    return r->iv[i].end_s - (i ? r->iv[i - 1].end_s : 0);
}

/* Hit rate over the intervals that end by t seconds (t < 0: all). */
static double rate_until(const run_res_t *r, double t) {
    uint64_t h = 0, m = 0;
    for (size_t i = 0; i < r->n && (t < 0 || r->iv[i].end_s <= t + 0.05); i++) {
        h += r->iv[i].hits;
        m += r->iv[i].misses;
    }
    return hit_rate(h, m);
}

/* Cumulative hit rate and reads at the first reading that covers `reads` reads; NaN
 * when the fine window saw fewer. */
static double rate_first(const run_res_t *r, uint64_t reads, uint64_t *seen) {
    for (size_t i = 0; i < r->nfine; i++) {
        if (r->fine[i].reads >= reads) {
            *seen = r->fine[i].reads;
            return hit_rate(r->fine[i].hits, r->fine[i].reads - r->fine[i].hits);
        }
    }
    *seen = 0;
    return NAN;
}

/* End of the first interval at REACH_SHARE of steady, or NaN. */
static double reached_at(const run_res_t *r, double steady) {
    for (size_t i = 0; i < r->n; i++)
        if (iv_rate(&r->iv[i]) >= REACH_SHARE * steady)
            return r->iv[i].end_s;
    return NAN;
}

/* ---------------- the command ---------------- */

typedef struct warm {
    const tcb_opts_t *o;
    tcb_env_t env;
    tcb_workload_t wl;
    tcb_multi_cfg_t cfg; /* the instances' L1 */
    hot_list_t hot;
    run_res_t prev, cold, warm;
    double steady;
    uint64_t warm_ns;
    size_t warmed;
    int warm_rc;
} warm_t;

static int populate(warm_t *w) {
    tcb_multi_cfg_t wc = {.sub = "wm:", .l1_bytes = 1u << 20};
    tc_cache_t *c = tcb_multi_open(&w->env, &wc, "warm");
    if (!c)
        return -1;
    tc_opts_t opts = TC_OPTS_INIT;
    opts.ttl_ms = w->o->ttl_ms;
    opts.flags = TC_OPT_NO_L1;
    tcb_status(w->o, "warm: writing %llu keys", (unsigned long long)w->o->keys);
    int rc = tcb_multi_write(c, w->o, "", 0, w->o->keys, &opts);
    tc_close(c);
    return rc == 0 && !tcb_interrupted ? 0 : -1;
}

/* The previous instance: serve, list the hot keys, close. */
static int previous_instance(warm_t *w) {
    tc_cache_t *c = tcb_multi_open(&w->env, &w->cfg, "warm");
    if (!c)
        return -1;
    tcb_status(w->o, "warm: the previous instance serves for %.1f s",
               (double)w->o->warmup_ns / 1e9);
    int rc = run_workload(w->o, &w->wl, c, w->o->warmup_ns, &w->prev);
    size_t max = w->cfg.l1_entries ? (size_t)w->cfg.l1_entries : (size_t)w->o->keys;
    long listed = rc == 0 ? tc_hot_keys(c, max, hot_collect, &w->hot) : -1;
    tc_stats_t st;
    if (rc == 0 && w->cfg.l1_entries && tc_stats(c, &st) == 0)
        tcb_check_l1_fill("the previous instance", "when it listed its hot keys", st.l1_entries,
                          max < w->o->keys ? max : w->o->keys, "entries",
                          "its steady hit rate is not steady and the warm start gets a short "
                          "list; a longer --warmup lets it fill");
    tc_close(c);
    if (listed < 0 || hot_finish(&w->hot) != 0) {
        fprintf(stderr, "tiercache-bench: warm: tc_hot_keys: %s\n",
                listed < 0 ? tc_strerror((int)listed) : "out of memory");
        return -1;
    }
    /* Steady state: the hit rate over the previous instance's last half second or so. */
    const run_res_t *p = &w->prev;
    uint64_t h = 0, m = 0;
    for (size_t i = p->n; i > 0 && p->iv[p->n - 1].end_s - p->iv[i - 1].end_s < 0.45; i--) {
        h += p->iv[i - 1].hits;
        m += p->iv[i - 1].misses;
    }
    w->steady = hit_rate(h, m);
    return 0;
}

static int fresh_run(warm_t *w, int with_warm, run_res_t *r) {
    tc_cache_t *c = tcb_multi_open(&w->env, &w->cfg, "warm");
    if (!c)
        return -1;
    if (with_warm) {
        uint64_t t0 = tcb_now_ns();
        w->warm_rc = tc_warm(c, w->hot.keys, w->hot.n, NULL, NULL, NULL, &w->warmed);
        w->warm_ns = tcb_now_ns() - t0;
    }
    tcb_status(w->o, "warm: %s start, %.1f s", with_warm ? "warmed" : "cold",
               (double)w->o->duration_ns / 1e9);
    int rc = run_workload(w->o, &w->wl, c, w->o->duration_ns, r);
    tc_close(c);
    return rc;
}

static const char *fmt_reached(double s, char *buf, size_t cap) {
    if (isnan(s))
        return "never";
    snprintf(buf, cap, "%.1f s", s);
    return buf;
}

/* Hit rate and L1 misses (Redis reads) of the first N reads, cold and warm. */
static void print_first_reads(const warm_t *w) {
    printf("\n  %-22s %14s %14s %14s %14s\n", "from the start", "cold L1 hit", "Redis reads",
           "warm L1 hit", "Redis reads");
    for (size_t i = 0; i < NFIRST; i++) {
        char a[32], b[32], c[32];
        uint64_t seen[2];
        double rate[2] = {rate_first(&w->cold, first_reads[i], &seen[0]),
                          rate_first(&w->warm, first_reads[i], &seen[1])};
        snprintf(a, sizeof a, "first ~");
        tcb_fmt_count(first_reads[i], a + 7, sizeof a - 7);
        printf("  %-22s", strcat(a, " reads"));
        for (int k = 0; k < 2; k++) {
            if (isnan(rate[k]))
                printf(" %14s %14s", "-", "-");
            else
                printf(" %13.1f%% %14s", 100.0 * rate[k],
                       tcb_fmt_count((uint64_t)((1.0 - rate[k]) * (double)seen[k] + 0.5),
                                     k ? c : b, 32));
        }
        printf("\n");
    }
}

static void print_text(const warm_t *w) {
    char a[32], b[32], c[32], d[32], wl[48];
    printf(
        "\ntiercache-bench warm: %s over %s keys, L1 %s%s, %u thread%s, %.1f s per run, %s\n",
        tcb_workload_name(&w->wl, wl, sizeof wl), tcb_fmt_count(w->o->keys, a, sizeof a),
        w->cfg.l1_entries ? tcb_fmt_count(w->cfg.l1_entries, b, sizeof b)
                          : tcb_fmt_bytes((double)w->cfg.l1_bytes, b, sizeof b),
        w->cfg.l1_entries ? " entries" : "", w->o->threads, w->o->threads == 1 ? "" : "s",
        (double)w->o->duration_ns / 1e9,
        w->env.owned ? "throwaway redis-server" : w->env.url_shown);
    if (w->cfg.l1_entries)
        printf("  (L1 capped at %s entries: %.3g%% of the keys)\n",
               tcb_fmt_count(w->cfg.l1_entries, a, sizeof a), w->o->l1_pct);
    printf("  the previous instance served %.1f s (L1 hit rate at the end: %.1f%%); "
           "tc_hot_keys listed %s keys\n",
           (double)w->o->warmup_ns / 1e9, 100.0 * w->steady,
           tcb_fmt_count(w->hot.n, a, sizeof a));
    printf("  tc_warm of the list in a fresh cache: %s, %s keys now in L1%s\n",
           tcb_fmt_ns((double)w->warm_ns, a, sizeof a), tcb_fmt_count(w->warmed, b, sizeof b),
           w->warm_rc ? " (FAILED)" : "");
    printf("\n  %8s %14s %12s %14s %12s\n", "time", "cold L1 hit", "ops/s", "warm L1 hit",
           "ops/s");
    size_t n = w->cold.n > w->warm.n ? w->cold.n : w->warm.n;
    for (size_t i = 0; i < n; i++) {
        const run_res_t *rs[2] = {&w->cold, &w->warm};
        printf("  %6.1f s", i < w->cold.n ? w->cold.iv[i].end_s : w->warm.iv[i].end_s);
        for (int k = 0; k < 2; k++) {
            if (i >= rs[k]->n) {
                printf(" %14s %12s", "-", "-");
                continue;
            }
            const interval_t *iv = &rs[k]->iv[i];
            printf(
                " %13.1f%% %12s", 100.0 * iv_rate(iv),
                tcb_fmt_count((uint64_t)((double)(iv->hits + iv->misses) / iv_secs(rs[k], i)),
                              k ? d : c, 32));
        }
        printf("\n");
    }
    print_first_reads(w);
    printf("  whole run: cold %.1f%%, warm %.1f%%\n", 100.0 * rate_until(&w->cold, -1),
           100.0 * rate_until(&w->warm, -1));
    printf("  %.0f%% of the steady hit rate reached at: cold %s, warm %s (end of the first "
           "interval that did)\n",
           100.0 * REACH_SHARE, fmt_reached(reached_at(&w->cold, w->steady), a, sizeof a),
           fmt_reached(reached_at(&w->warm, w->steady), b, sizeof b));
    if (w->cold.errors || w->warm.errors)
        printf("  errors: %llu cold, %llu warm (tc_get other than 0)\n",
               (unsigned long long)w->cold.errors, (unsigned long long)w->warm.errors);
    printf("\n");
    tcb_warnings_print(stdout);
}

static void json_run(tcb_json_t *j, const char *key, const run_res_t *r) {
    tcb_json_obj_begin(j, key);
    tcb_json_dbl(j, "hit_rate_all", rate_until(r, -1));
    tcb_json_arr_begin(j, "first_reads");
    for (size_t i = 0; i < NFIRST; i++) {
        uint64_t seen;
        double rate = rate_first(r, first_reads[i], &seen);
        tcb_json_obj_begin(j, NULL);
        tcb_json_u64(j, "reads", seen);
        tcb_json_dbl(j, "l1_hit_rate", rate);
        tcb_json_obj_end(j);
    }
    tcb_json_arr_end(j);
    tcb_json_u64(j, "errors", r->errors);
    tcb_json_arr_begin(j, "intervals");
    for (size_t i = 0; i < r->n; i++) {
        tcb_json_obj_begin(j, NULL);
        tcb_json_dbl(j, "end_s", r->iv[i].end_s);
        tcb_json_dbl(j, "l1_hit_rate", iv_rate(&r->iv[i]));
        tcb_json_u64(j, "l1_hits", r->iv[i].hits);
        tcb_json_u64(j, "l1_misses", r->iv[i].misses);
        tcb_json_obj_end(j);
    }
    tcb_json_arr_end(j);
    tcb_json_obj_end(j);
}

static void print_json(const warm_t *w) {
    tcb_json_t j;
    char wl[48];
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "warm");
    tcb_json_str(&j, "redis", w->env.url_shown);
    tcb_json_str(&j, "workload", tcb_workload_name(&w->wl, wl, sizeof wl));
    tcb_json_u64(&j, "keys", w->o->keys);
    tcb_json_u64(&j, "l1_max_entries", w->cfg.l1_entries);
    tcb_json_u64(&j, "l1_max_bytes", w->cfg.l1_bytes);
    tcb_json_u64(&j, "threads", w->o->threads);
    tcb_json_dbl(&j, "steady_hit_rate", w->steady);
    tcb_json_u64(&j, "hot_keys", w->hot.n);
    tcb_json_u64(&j, "tc_warm_ns", w->warm_ns);
    tcb_json_u64(&j, "warmed", w->warmed);
    tcb_json_str(&j, "tc_warm_result", tc_err_name(w->warm_rc));
    json_run(&j, "cold", &w->cold);
    json_run(&j, "warm", &w->warm);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

static int run(warm_t *w) {
    const tcb_opts_t *o = w->o;
    if (o->threads > MAX_THREADS) {
        fprintf(stderr, "tiercache-bench: warm: at most %d threads\n", MAX_THREADS);
        return -1;
    }
    int rc = o->wl_kind == TCB_WL_UNIFORM ? tcb_workload_uniform(&w->wl, o->keys)
                                          : tcb_workload_zipf(&w->wl, o->keys, o->zipf_s);
    uint64_t entries, bytes;
    tcb_l1_capacity(o, o->l1_pct, o->keys, &entries, &bytes);
    w->cfg = (tcb_multi_cfg_t){.sub = "wm:", .l1_bytes = bytes, .l1_entries = entries};
    if (rc != 0 || populate(w) != 0 || previous_instance(w) != 0 ||
        fresh_run(w, 0, &w->cold) != 0 || fresh_run(w, 1, &w->warm) != 0 || tcb_interrupted)
        return -1;
    o->json ? print_json(w) : print_text(w);
    return w->warm_rc == 0 && w->cold.errors == 0 && w->warm.errors == 0 ? 0 : -1;
}

int tcb_cmd_warm(const tcb_opts_t *o) {
    warm_t *w = calloc(1, sizeof *w);
    if (!w)
        return 1;
    w->o = o;
    int rc = tcb_env_open(&w->env, o) == 0 ? run(w) : -1;
    tcb_env_close(&w->env);
    hot_free(&w->hot);
    free(w);
    return rc == 0 ? 0 : 1;
}
