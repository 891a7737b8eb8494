/*
 * failing.c - `failing-source`: the source of truth goes down; how long does the cache
 * keep answering, and how hard does it knock on the source meanwhile?
 *
 * A few reader threads read one hot key through tc_fetch in a tight loop; the key expires
 * every TTL and is reloaded. From --fail-after on, every load fails (after taking the
 * usual load time, as a database call that times out or errors would). The run is made
 * twice on the same workload: fail-safe off, then on (failsafe_max_stale_ms = --max-stale,
 * failsafe_backoff_ms = --backoff). With it off, every answer after the first failed
 * reload is an error. With it on, the last value is answered, marked stale, until it is
 * max-stale past its TTL, and a failed reload makes the key back off: the reload rate
 * falls to about one per back-off, however many threads ask.
 *
 * Each thread keeps a timeline (fresh.h) of its answers, by the instant they returned;
 * the loader records its calls, under a mutex, in one more. The run merges them, prints
 * one row per 500 ms and a summary, all of it counted from the first failed load (the
 * moment the cache learns of the failure; until the key expires it had no reason to ask):
 * the stale span (first failed load to last stale answer), failed loader calls per second
 * (while stale values were served, and after), and the share of answers that were errors.
 * The readers move their timelines' split to the first failed load as soon as the loader
 * has published it, so those shares count exactly the answers from then on.
 *
 * Readers run in a closed loop, so a share of answers weighs a stale hit (under a
 * microsecond) like an error that waited for a failing load (a whole load time): the
 * timeline, and the instant the first error was answered, say when errors began.
 */
#include "bench.h"

#include "checks.h"
#include "fmt.h"
#include "fresh.h"
#include "json.h"
#include "source.h"
#include "tiercache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HOT_KEY   "hot-key"
#define VALUE_LEN 100
#define BUCKET_NS 500000000ull

typedef struct fs_run {
    const tcb_opts_t *o;
    const tcb_env_t *env;
    int failsafe;
    tc_cache_t *cache;
    tcb_source_t src;
    atomic_uint_fast64_t t0; /* 0 until the measured run starts: loads before are not timed */
    atomic_uint_fast64_t first_fail; /* ns since t0 of the first failed load, or NONE */
    pthread_mutex_t mu;              /* loads, and the start gate */
    pthread_cond_t cv;
    int gate; /* 0 closed, 1 open, -1 abandoned */
    tcb_timeline_t loads;
    tcb_timeline_t all; /* merged result */
    uint64_t end_ns;
    char err[160]; /* first error other than the loader's own */
} fs_run_t;

typedef struct fs_thread {
    fs_run_t *r;
    tcb_timeline_t tl;
    pthread_t th;
} fs_thread_t;

static int fs_loader(void *arg, const void *key, size_t klen, tc_load_t *ld) {
    (void)key;
    (void)klen;
    fs_run_t *r = arg;
    uint64_t t0 = atomic_load(&r->t0), now = tcb_now_ns();
    int failing = t0 && now - t0 >= r->o->fail_after_ns;
    if (t0) {
        pthread_mutex_lock(&r->mu);
        tcb_tl_load(&r->loads, now - t0, failing);
        pthread_mutex_unlock(&r->mu);
        uint_fast64_t none = TCB_TL_NONE;
        if (failing)
            atomic_compare_exchange_strong(&r->first_fail, &none, now - t0);
    }
    tcb_source_wait(&r->src);
    if (failing)
        return TC_ELOADER;
    unsigned char buf[VALUE_LEN];
    return tc_load_set_value(ld, buf, tcb_source_fill(&r->src, 0, 0, buf));
}

static tcb_answer_t read_once(fs_run_t *r) {
    tc_ref_t *ref = NULL;
    int rc = tc_fetch(r->cache, HOT_KEY, strlen(HOT_KEY), fs_loader, r, &ref);
    if (rc != 0) {
        if (rc != TC_ELOADER) {
            pthread_mutex_lock(&r->mu);
            if (!r->err[0])
                snprintf(r->err, sizeof r->err, "%s", tc_strerror(rc));
            pthread_mutex_unlock(&r->mu);
        }
        return TCB_ANS_ERROR;
    }
    tcb_answer_t kind = tc_ref_stale(ref) ? TCB_ANS_STALE : TCB_ANS_FRESH;
    tc_ref_release(ref);
    return kind;
}

static int gate_wait(fs_run_t *r) {
    pthread_mutex_lock(&r->mu);
    while (r->gate == 0)
        pthread_cond_wait(&r->cv, &r->mu);
    int g = r->gate;
    pthread_mutex_unlock(&r->mu);
    return g;
}

static void gate_set(fs_run_t *r, int g) {
    pthread_mutex_lock(&r->mu);
    r->gate = g;
    if (g > 0)
        atomic_store(&r->t0, tcb_now_ns());
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void *reader_main(void *arg) {
    fs_thread_t *t = arg;
    fs_run_t *r = t->r;
    if (gate_wait(r) < 0)
        return NULL;
    uint64_t t0 = atomic_load(&r->t0), d = r->o->duration_ns, now = 0;
    while (now < d && !tcb_interrupted) {
        tcb_answer_t kind = read_once(r);
        now = tcb_now_ns() - t0;
        t->tl.split_ns = atomic_load_explicit(&r->first_fail, memory_order_relaxed);
        tcb_tl_answer(&t->tl, now, kind);
    }
    return NULL;
}

static int open_cache(fs_run_t *r) {
    char prefix[128], channel[160];
    snprintf(prefix, sizeof prefix, "%sfs:%s:", r->env->prefix, r->failsafe ? "on" : "off");
    snprintf(channel, sizeof channel, "%sinval", prefix);
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = r->env->url;
    cfg.key_prefix = prefix;
    cfg.inval_channel = channel;
    cfg.require_redis = 1;
    cfg.connect_timeout_ms = 5000;
    cfg.l1_max_bytes = 1u << 20;
    cfg.default_ttl_ms = r->o->ttl_ms;
    cfg.ttl_jitter = 0;
    cfg.failsafe_max_stale_ms = r->failsafe ? r->o->max_stale_ns / 1000000u : 0;
    cfg.failsafe_backoff_ms = (uint32_t)(r->o->backoff_ns / 1000000u);
    tc_error_t err;
    if (tc_open(&cfg, &r->cache, &err) != 0) {
        fprintf(stderr, "tiercache-bench: failing-source: tc_open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* The threads for the duration; their timelines merged into r->all. */
static int measure(fs_run_t *r, fs_thread_t *ts) {
    unsigned n = r->o->threads, started = 0;
    for (; started < n; started++)
        if (pthread_create(&ts[started].th, NULL, reader_main, &ts[started]) != 0)
            break;
    gate_set(r, started == n ? 1 : -1);
    int rc = started == n ? 0 : -1;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(ts[i].th, NULL);
        tcb_tl_merge(&r->all, &ts[i].tl);
    }
    r->end_ns = tcb_now_ns() - atomic_load(&r->t0);
    pthread_mutex_lock(&r->mu); /* a background load could still be recording */
    tcb_tl_merge(&r->all, &r->loads);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int init_timelines(fs_run_t *r, fs_thread_t *ts) {
    uint64_t d = r->o->duration_ns, split = TCB_TL_NONE; /* moved at the first failure */
    int rc =
        tcb_tl_init(&r->loads, d, BUCKET_NS, split) | tcb_tl_init(&r->all, d, BUCKET_NS, split);
    for (unsigned i = 0; i < r->o->threads; i++) {
        ts[i].r = r;
        rc |= tcb_tl_init(&ts[i].tl, d, BUCKET_NS, split);
    }
    return rc;
}

/* One run: prime the key (the source works), then measure. */
static int run_one(fs_run_t *r) {
    fs_thread_t *ts = calloc(r->o->threads, sizeof *ts);
    int rc = ts ? init_timelines(r, ts) : -1;
    if (rc == 0)
        rc = open_cache(r);
    if (rc == 0 && read_once(r) != TCB_ANS_FRESH) {
        fprintf(stderr, "tiercache-bench: failing-source: priming the key failed: %s\n",
                r->err[0] ? r->err : "the loader failed");
        rc = -1;
    }
    if (rc == 0)
        rc = measure(r, ts);
    tc_close(r->cache);
    r->cache = NULL;
    for (unsigned i = 0; ts && i < r->o->threads; i++)
        tcb_tl_free(&ts[i].tl);
    free(ts);
    tcb_tl_free(&r->loads);
    return rc;
}

/* ---------------- report ---------------- */

static void print_cell(const tcb_tl_bucket_t *b) {
    uint64_t n = 0;
    for (int k = 0; k < TCB_ANS_KINDS; k++)
        n += b->answers[k];
    if (!n) {
        printf("  %7s %7s %7s %6llu", "-", "-", "-", (unsigned long long)b->loads);
        return;
    }
    char f[16], s[16], e[16];
    printf("  %7s %7s %7s %6llu",
           tcb_fmt_pct(100.0 * (double)b->answers[TCB_ANS_FRESH] / (double)n, f, sizeof f),
           tcb_fmt_pct(100.0 * (double)b->answers[TCB_ANS_STALE] / (double)n, s, sizeof s),
           tcb_fmt_pct(100.0 * (double)b->answers[TCB_ANS_ERROR] / (double)n, e, sizeof e),
           (unsigned long long)b->loads);
}

static void print_timeline(const fs_run_t *runs) {
    printf("  %-6s  %-30s  %s\n", "", "fail-safe off", "fail-safe on");
    printf("  %-6s", "time");
    for (int i = 0; i < 2; i++)
        printf("  %7s %7s %7s %6s", "fresh", "stale", "error", "loads");
    printf("\n");
    for (size_t b = 0; b < runs[0].all.nbuckets; b++) {
        printf("  %5.1fs", (double)b * (double)BUCKET_NS / 1e9);
        for (int i = 0; i < 2; i++)
            print_cell(&runs[i].all.b[b]);
        printf("\n");
    }
}

static void summary_row(const char *label, const char *off, const char *on) {
    printf("  %-46s %14s %14s\n", label, off, on);
}

/* An instant or a duration in seconds; "-" when there is none. */
static char *secs(uint64_t ns, char *buf) {
    if (ns == TCB_TL_NONE)
        snprintf(buf, 32, "-");
    else
        snprintf(buf, 32, "%.2f s", (double)ns / 1e9);
    return buf;
}

static char *rate(double per_sec, char *buf) {
    if (per_sec < 0)
        snprintf(buf, 32, "-");
    else
        snprintf(buf, 32, "%.1f", per_sec);
    return buf;
}

static void print_summary(const fs_run_t *runs) {
    tcb_fail_summary_t s[2];
    char a[32], b[32];
    for (int i = 0; i < 2; i++)
        tcb_tl_summarize(&runs[i].all, runs[i].end_ns, &s[i]);
    printf("\n");
    summary_row("", "fail-safe off", "fail-safe on");
    summary_row("first failed load at", secs(runs[0].all.first_fail_ns, a),
                secs(runs[1].all.first_fail_ns, b));
    summary_row("stale answers served after it for", secs((uint64_t)(s[0].stale_secs * 1e9), a),
                secs((uint64_t)(s[1].stale_secs * 1e9), b));
    summary_row("first error answered at", secs(runs[0].all.first_error_ns, a),
                secs(runs[1].all.first_error_ns, b));
    summary_row("loader calls / s from the first failure", rate(s[0].loads_per_sec, a),
                rate(s[1].loads_per_sec, b));
    summary_row("  ... while stale answers were served", rate(s[0].stale_loads_per_sec, a),
                rate(s[1].stale_loads_per_sec, b));
    summary_row("  ... after the last stale answer", rate(s[0].after_loads_per_sec, a),
                rate(s[1].after_loads_per_sec, b));
    summary_row("answers from the first failure", tcb_fmt_count(s[0].tail_answers, a, 32),
                tcb_fmt_count(s[1].tail_answers, b, 32));
    summary_row("  ... errors (error rate)", tcb_fmt_pct(100.0 * s[0].error_share, a, 32),
                tcb_fmt_pct(100.0 * s[1].error_share, b, 32));
    summary_row("  ... stale", tcb_fmt_pct(100.0 * s[0].stale_share, a, 32),
                tcb_fmt_pct(100.0 * s[1].stale_share, b, 32));
}

static void print_text(const tcb_opts_t *o, const tcb_env_t *env, const fs_run_t *runs) {
    char load[32], backoff[32];
    printf("\ntiercache-bench failing-source: one hot key read in a tight loop by %u "
           "thread%s;\n  TTL %llu ms (no jitter), loads take %s and every one fails from "
           "%.2f s on;\n  fail-safe on = max stale %.2f s, back-off %s; %.1f s per run; %s\n\n",
           o->threads, o->threads == 1 ? "" : "s", (unsigned long long)o->ttl_ms,
           tcb_fmt_ns((double)o->load_ns, load, sizeof load), (double)o->fail_after_ns / 1e9,
           (double)o->max_stale_ns / 1e9,
           tcb_fmt_ns((double)o->backoff_ns, backoff, sizeof backoff),
           (double)o->duration_ns / 1e9,
           env->owned ? "throwaway redis-server" : env->url_shown);
    print_timeline(runs);
    print_summary(runs);
    printf("\n  rows: shares of the answers returned in each 500 ms, and loader calls started "
           "in it;\n  the summary counts from the first failed load to the end of the run\n");
    for (int i = 0; i < 2; i++)
        if (runs[i].err[0])
            printf("  fail-safe %s: errors other than the failing loader's (first: %s)\n",
                   runs[i].failsafe ? "on" : "off", runs[i].err);
    printf("\n");
    tcb_warnings_print(stdout);
}

static void json_rate(tcb_json_t *j, const char *key, double per_sec) {
    if (per_sec < 0)
        tcb_json_null(j, key);
    else
        tcb_json_dbl(j, key, per_sec);
}

static void json_run(tcb_json_t *j, const fs_run_t *r) {
    tcb_fail_summary_t s;
    tcb_tl_summarize(&r->all, r->end_ns, &s);
    tcb_json_obj_begin(j, NULL);
    tcb_json_bool(j, "failsafe", r->failsafe);
    tcb_json_arr_begin(j, "timeline");
    for (size_t b = 0; b < r->all.nbuckets; b++) {
        const tcb_tl_bucket_t *k = &r->all.b[b];
        tcb_json_obj_begin(j, NULL);
        tcb_json_dbl(j, "t_s", (double)b * (double)BUCKET_NS / 1e9);
        tcb_json_u64(j, "fresh", k->answers[TCB_ANS_FRESH]);
        tcb_json_u64(j, "stale", k->answers[TCB_ANS_STALE]);
        tcb_json_u64(j, "error", k->answers[TCB_ANS_ERROR]);
        tcb_json_u64(j, "loads", k->loads);
        tcb_json_obj_end(j);
    }
    tcb_json_arr_end(j);
    tcb_json_obj_begin(j, "summary");
    if (s.failed)
        tcb_json_dbl(j, "first_failed_load_s", (double)r->all.first_fail_ns / 1e9);
    else
        tcb_json_null(j, "first_failed_load_s");
    tcb_json_dbl(j, "stale_served_s", s.stale_secs);
    if (r->all.first_error_ns != TCB_TL_NONE)
        tcb_json_dbl(j, "first_error_s", (double)r->all.first_error_ns / 1e9);
    else
        tcb_json_null(j, "first_error_s");
    tcb_json_dbl(j, "failing_loads_per_sec", s.loads_per_sec);
    json_rate(j, "failing_loads_per_sec_while_stale", s.stale_loads_per_sec);
    json_rate(j, "failing_loads_per_sec_after_stale", s.after_loads_per_sec);
    tcb_json_u64(j, "answers_while_failing", s.tail_answers);
    tcb_json_dbl(j, "error_share_while_failing", s.error_share);
    tcb_json_dbl(j, "stale_share_while_failing", s.stale_share);
    tcb_json_u64(j, "loads", r->all.loads);
    tcb_json_u64(j, "failed_loads", r->all.failed_loads);
    tcb_json_str(j, "first_other_error", r->err[0] ? r->err : NULL);
    tcb_json_obj_end(j);
    tcb_json_obj_end(j);
}

static void print_json(const tcb_opts_t *o, const tcb_env_t *env, const fs_run_t *runs) {
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "failing-source");
    tcb_json_str(&j, "redis", env->url_shown);
    tcb_json_u64(&j, "threads", o->threads);
    tcb_json_u64(&j, "ttl_ms", o->ttl_ms);
    tcb_json_dbl(&j, "load_ms", (double)o->load_ns / 1e6);
    tcb_json_dbl(&j, "fail_after_s", (double)o->fail_after_ns / 1e9);
    tcb_json_dbl(&j, "max_stale_s", (double)o->max_stale_ns / 1e9);
    tcb_json_dbl(&j, "backoff_ms", (double)o->backoff_ns / 1e6);
    tcb_json_dbl(&j, "seconds", (double)o->duration_ns / 1e9);
    tcb_json_arr_begin(&j, "runs");
    for (int i = 0; i < 2; i++)
        json_run(&j, &runs[i]);
    tcb_json_arr_end(&j);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

int tcb_cmd_failing(const tcb_opts_t *o) {
    tcb_env_t env;
    if (tcb_env_open(&env, o) != 0)
        return 1;
    fs_run_t runs[2];
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        runs[i] = (fs_run_t){.o = o, .env = &env, .failsafe = i};
        runs[i].src.latency_ns = o->load_ns;
        runs[i].src.vsize = (tcb_vsize_t){.kind = TCB_VS_FIXED, .a = VALUE_LEN};
        atomic_init(&runs[i].t0, 0);
        atomic_init(&runs[i].first_fail, TCB_TL_NONE);
        pthread_mutex_init(&runs[i].mu, NULL);
        pthread_cond_init(&runs[i].cv, NULL);
    }
    for (int i = 0; i < 2 && rc == 0 && !tcb_interrupted; i++) {
        tcb_status(o, "failing-source: fail-safe %s, %.1f s", i ? "on" : "off",
                   (double)o->duration_ns / 1e9);
        rc = run_one(&runs[i]);
    }
    if (rc == 0 && !tcb_interrupted)
        o->json ? print_json(o, &env, runs) : print_text(o, &env, runs);
    for (int i = 0; i < 2; i++) {
        tcb_tl_free(&runs[i].all);
        pthread_cond_destroy(&runs[i].cv);
        pthread_mutex_destroy(&runs[i].mu);
    }
    tcb_env_close(&env);
    return rc == 0 && !tcb_interrupted ? 0 : 1;
}
