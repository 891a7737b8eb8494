/*
 * micro.c - `micro`: the L1 alone, so regressions in the hot path show up as numbers.
 *
 * N keys (default 1,000,000) of 17 bytes with fixed-size values (default 100 bytes) are
 * made resident in an L1-only cache sized to hold them all; then, at 1..T threads, each
 * operation kind runs for --duration:
 *
 *   get-hit  tc_get + tc_ref_release of a Zipf(0.99)-drawn key (every one is resident;
 *            --zipf changes the exponent, --workload uniform spreads the keys evenly)
 *   set      tc_set of such a key (replacing the entry: allocate, swap, free)
 *   mixed    nine get-hits then one set, repeated
 *   cpu-only a few ns of private arithmetic per "operation", no library at all: the
 *            calibration row. On a machine shared with other work, threads cannot scale
 *            better than this row does, so read the library's scaling against it.
 *
 * Key indexes are drawn before timing into a per-thread ring of 2^20 entries, and keys
 * are preformatted in one flat array, so the timed loop is the library call and an index
 * increment. ns/op is per thread (wall time x threads / operations); scaling is
 * throughput at T threads over throughput at 1.
 *
 * L1 memory per entry is measured with jemalloc's own counter ("stats.allocated" after an
 * "epoch" refresh): the difference across the fill, minus the key and value bytes,
 * divided by the entries. Everything else the bench allocates is allocated before the
 * first reading, so the difference is the L1 alone (entries, hash tables, shards).
 */
#include "bench.h"

#include "checks.h"
#include "fmt.h"
#include "json.h"
#include "micro_floor.h"
#include "micro_run.h"
#include "source.h"
#include "tiercache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef TCB_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#define RING (1u << 20)

typedef enum { OP_CPU, OP_GET, OP_SET, OP_MIX, OP_COUNT } micro_op_t;
static const char *const op_names[OP_COUNT] = {"cpu-only", "get-hit", "set", "mixed 90/10"};

typedef struct micro {
    const tcb_opts_t *o;
    tc_cache_t *cache;
    char *keys; /* n * TCB_KEY_LEN */
    uint64_t n;
    unsigned char *value;
    size_t vlen;
    uint32_t *rings[1024];
} micro_t;

typedef struct micro_thread {
    tcb_micro_worker_t w; /* first: the timed run's part (micro_run.h) */
    micro_t *m;
    micro_op_t op;
} micro_thread_t;

static size_t jemalloc_allocated(void) {
#ifdef TCB_HAVE_JEMALLOC
    uint64_t epoch = 1;
    size_t sz = sizeof epoch;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t allocated = 0;
    sz = sizeof allocated;
    if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) == 0)
        return allocated;
#endif
    return 0;
}

static int do_op(micro_t *m, micro_op_t op, uint64_t i, uint32_t k) {
    if (op == OP_CPU) /* the machine's own scaling: private arithmetic, no library */
        return tcb_cpu_work(i ^ k);
    const char *key = m->keys + (size_t)k * TCB_KEY_LEN;
    if (op == OP_SET || (op == OP_MIX && i % 10 == 9))
        return tc_set(m->cache, key, TCB_KEY_LEN, m->value, m->vlen, 0);
    tc_ref_t *ref = NULL;
    int rc = tc_get(m->cache, key, TCB_KEY_LEN, &ref);
    tc_ref_release(ref);
    return rc;
}

static void *micro_main(void *p) {
    micro_thread_t *t = p;
    micro_t *m = t->m;
    const uint32_t *ring = m->rings[t->w.tid];
    tcb_micro_start(&t->w);
    uint64_t i = 0, errors = 0;
    while (!tcb_micro_stopped(&t->w)) {
        for (int b = 0; b < 64; b++, i++)
            errors += do_op(m, t->op, i, ring[i & (RING - 1)]) != 0;
    }
    t->w.ops = i;
    t->w.errors = errors;
    return NULL;
}

/* One point: op at nthreads for the duration. Returns operations per second. */
static double run_point(micro_t *m, micro_op_t op, unsigned nthreads, uint64_t *errors) {
    static micro_thread_t ts[1024];
    for (unsigned i = 0; i < nthreads; i++)
        ts[i] = (micro_thread_t){.m = m, .op = op};
    *errors = 0;
    return tcb_micro_run(ts, sizeof ts[0], nthreads, micro_main, m->o->duration_ns, errors);
}

static int setup_keys(micro_t *m, unsigned maxt) {
    m->keys = malloc(m->n * TCB_KEY_LEN);
    m->value = malloc(m->vlen ? m->vlen : 1);
    if (!m->keys || !m->value)
        return -1;
    for (uint64_t i = 0; i < m->n; i++) {
        char k[TCB_KEY_LEN + 1];
        tcb_key_format(i, k);
        memcpy(m->keys + i * TCB_KEY_LEN, k, TCB_KEY_LEN);
    }
    memset(m->value, 'v', m->vlen);
    tcb_workload_t w;
    if (m->o->wl_kind == TCB_WL_UNIFORM)
        tcb_workload_uniform(&w, m->n);
    else
        tcb_workload_zipf(&w, m->n, m->o->zipf_s);
    for (unsigned t = 0; t < maxt; t++) {
        if (!(m->rings[t] = malloc(RING * sizeof(uint32_t))))
            return -1;
        tcb_cursor_t c;
        tcb_cursor_init(&c, &w, m->o->seed, t, maxt);
        for (uint32_t i = 0; i < RING; i++)
            m->rings[t][i] = (uint32_t)tcb_workload_next(&w, &c, 0);
    }
    return 0;
}

static int open_cache(micro_t *m) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = NULL;
    cfg.l1_max_bytes = (size_t)m->n * (TCB_KEY_LEN + m->vlen + 512) + (64u << 20);
    cfg.l1_shards = m->o->shards;
    cfg.l1_policy = m->o->policy;
    cfg.default_ttl_ms = 24 * 3600 * 1000ull;
    cfg.ttl_jitter = 0;
    tc_error_t err;
    if (tc_open(&cfg, &m->cache, &err) != 0) {
        fprintf(stderr, "tiercache-bench: micro: tc_open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

typedef struct micro_res {
    double per_entry;     /* jemalloc bytes per entry beyond key and value; < 0 unknown */
    double lib_per_entry; /* tc_stats l1_bytes / l1_entries */
    uint64_t resident;
    unsigned nthreads[64];
    int npoints;
    double rate[OP_COUNT][64];
    uint64_t errors[OP_COUNT][64];
    /* The floor (micro_floor.c) of each library row, padded to its one-thread ns/op; 0
     * where none was measured (cpu-only, or no memory for it). */
    double floor_rate[OP_COUNT][64];
    unsigned floor_pad[OP_COUNT];
} micro_res_t;

static int fill(micro_t *m, micro_res_t *res) {
    size_t before = jemalloc_allocated();
    if (open_cache(m) != 0)
        return -1;
    for (uint64_t i = 0; i < m->n && !tcb_interrupted; i++) {
        int rc = tc_set(m->cache, m->keys + i * TCB_KEY_LEN, TCB_KEY_LEN, m->value, m->vlen, 0);
        if (rc != 0) {
            fprintf(stderr, "tiercache-bench: micro: tc_set: %s\n", tc_strerror(rc));
            return -1;
        }
    }
    size_t after = jemalloc_allocated();
    tc_stats_t st;
    tc_stats(m->cache, &st);
    res->resident = st.l1_entries;
    res->lib_per_entry = st.l1_entries ? (double)st.l1_bytes / (double)st.l1_entries : 0;
    double payload = (double)st.l1_entries * (double)(TCB_KEY_LEN + m->vlen);
    res->per_entry = before && after > before && st.l1_entries
                         ? ((double)(after - before) - payload) / (double)st.l1_entries
                         : -1.0;
    return 0;
}

/* 1..max threads; above 8, powers of two and max. */
static int thread_points(unsigned max, unsigned *out) {
    int n = 0;
    for (unsigned t = 1; t <= max && n < 63; t = t < 8 ? t + 1 : t * 2)
        out[n++] = t;
    if (out[n - 1] != max)
        out[n++] = max;
    return n;
}

static void print_text(const micro_t *m, const micro_res_t *r) {
    char a[32];
    char wl[64] = "uniform";
    if (m->o->wl_kind != TCB_WL_UNIFORM)
        snprintf(wl, sizeof wl, "Zipf %.3g", m->o->zipf_s);
    printf("\ntiercache-bench micro: L1 only, %s resident keys (17 B keys, %zu B values), "
           "%s,\n  %s per point, shards: %s\n",
           tcb_fmt_count(r->resident, a, sizeof a), m->vlen, wl,
           tcb_fmt_ns((double)m->o->duration_ns, (char[32]){0}, 32),
           m->o->shards ? "--shards" : "library default");
    if (r->per_entry >= 0)
        printf("  L1 memory: %.1f bytes per entry beyond key and value (jemalloc "
               "stats.allocated);\n  the library's own accounting charges %.1f bytes per "
               "entry in total\n",
               r->per_entry, r->lib_per_entry);
    else
        printf("  L1 memory: jemalloc statistics unavailable; the library charges %.1f bytes "
               "per entry\n",
               r->lib_per_entry);
    for (int op = 0; op < OP_COUNT; op++) {
        printf("\n  %-12s %8s %14s %12s %9s %9s\n", op_names[op], "threads", "ops/s",
               "ns/op/thread", "scaling", op == OP_CPU ? "" : "floor");
        for (int i = 0; i < r->npoints; i++) {
            double rate = r->rate[op][i];
            char floor[32] = "";
            if (r->floor_rate[op][0] > 0)
                snprintf(floor, sizeof floor, " %8.2fx",
                         r->floor_rate[op][i] / r->floor_rate[op][0]);
            printf("  %-12s %8u %14s %12.1f %8.2fx%s%s\n", "", r->nthreads[i],
                   tcb_fmt_count((uint64_t)rate, a, sizeof a),
                   rate > 0 ? 1e9 * r->nthreads[i] / rate : 0.0,
                   r->rate[op][0] > 0 ? rate / r->rate[op][0] : 0.0, floor,
                   r->errors[op][i] ? "  (errors!)" : "");
        }
    }
    if (r->floor_rate[OP_GET][0] > 0)
        printf(
            "\n  floor: the same key draws doing only the shared writes no cache avoids (get:\n"
            "  pin and unpin a record of the key's own; set: allocate and fill an entry, swap\n"
            "  it in, free the old), padded with private work to the library's one-thread\n"
            "  ns/op: the scaling the key skew allows on this machine (bench/README.md)\n");
    printf("\n");
    tcb_warnings_print(stdout);
}

static void print_json(const micro_t *m, const micro_res_t *r) {
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "micro");
    tcb_json_u64(&j, "keys", m->n);
    tcb_json_u64(&j, "resident", r->resident);
    tcb_json_u64(&j, "value_bytes", m->vlen);
    tcb_json_dbl(&j, "seconds_per_point", (double)m->o->duration_ns / 1e9);
    if (r->per_entry >= 0)
        tcb_json_dbl(&j, "l1_overhead_bytes_per_entry", r->per_entry);
    else
        tcb_json_null(&j, "l1_overhead_bytes_per_entry");
    tcb_json_dbl(&j, "l1_charged_bytes_per_entry", r->lib_per_entry);
    tcb_json_arr_begin(&j, "results");
    for (int op = 0; op < OP_COUNT; op++)
        for (int i = 0; i < r->npoints; i++) {
            tcb_json_obj_begin(&j, NULL);
            tcb_json_str(&j, "op", op_names[op]);
            tcb_json_u64(&j, "threads", r->nthreads[i]);
            tcb_json_dbl(&j, "ops_per_sec", r->rate[op][i]);
            tcb_json_dbl(&j, "ns_per_op_per_thread", 1e9 * r->nthreads[i] / r->rate[op][i]);
            tcb_json_dbl(&j, "scaling", r->rate[op][i] / r->rate[op][0]);
            if (r->floor_rate[op][0] > 0) {
                tcb_json_dbl(&j, "floor_scaling", r->floor_rate[op][i] / r->floor_rate[op][0]);
                tcb_json_dbl(&j, "floor_ns_per_op_per_thread",
                             1e9 * r->nthreads[i] / r->floor_rate[op][i]);
                tcb_json_u64(&j, "floor_pad", r->floor_pad[op]);
            } else {
                tcb_json_null(&j, "floor_scaling");
            }
            tcb_json_u64(&j, "errors", r->errors[op][i]);
            tcb_json_obj_end(&j);
        }
    tcb_json_arr_end(&j);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

static int measure(micro_t *m, micro_res_t *r) {
    for (int op = 0; op < OP_COUNT; op++)
        for (int i = 0; i < r->npoints && !tcb_interrupted; i++) {
            tcb_status(m->o, "micro: %s at %u thread(s)", op_names[op], r->nthreads[i]);
            r->rate[op][i] = run_point(m, (micro_op_t)op, r->nthreads[i], &r->errors[op][i]);
        }
    return tcb_interrupted ? -1 : 0;
}

/* The floor of every library row (micro_floor.c), once the library's cache is closed. Out
 * of memory leaves the column out, with a warning; nothing else fails. */
static int measure_floor(micro_t *m, micro_res_t *r) {
    static const tcb_floor_op_t floor_of[OP_COUNT] = {
        [OP_GET] = TCB_FLOOR_GET, [OP_SET] = TCB_FLOOR_SET, [OP_MIX] = TCB_FLOOR_MIX};
    tcb_status(m->o, "micro: floor: %s records", tcb_fmt_count(m->n, (char[32]){0}, 32));
    tcb_floor_t *f = tcb_floor_open(m->n, m->keys, TCB_KEY_LEN, m->vlen, m->rings, RING);
    if (!f) {
        fprintf(stderr, "tiercache-bench: micro: no memory for the floor column; left out\n");
        return 0;
    }
    for (int op = OP_GET; op < OP_COUNT && !tcb_interrupted; op++) {
        tcb_status(m->o, "micro: floor of %s: padding to %.0f ns/op", op_names[op],
                   1e9 / r->rate[op][0]);
        r->floor_pad[op] = tcb_floor_pad_for(f, floor_of[op], 1e9 / r->rate[op][0]);
        for (int i = 0; i < r->npoints && !tcb_interrupted; i++) {
            tcb_status(m->o, "micro: floor of %s at %u thread(s)", op_names[op],
                       r->nthreads[i]);
            r->floor_rate[op][i] = tcb_floor_run(f, floor_of[op], r->floor_pad[op],
                                                 r->nthreads[i], m->o->duration_ns);
        }
    }
    tcb_floor_close(f);
    return tcb_interrupted ? -1 : 0;
}

int tcb_cmd_micro(const tcb_opts_t *o) {
    if (o->vsize.kind != TCB_VS_FIXED) {
        fprintf(stderr, "tiercache-bench: micro takes a fixed --value-size\n");
        return 2;
    }
    micro_t m = {.o = o, .n = o->keys, .vlen = o->vsize.a};
    micro_res_t *r = calloc(1, sizeof *r);
    unsigned maxt = o->threads > 1024 ? 1024 : o->threads;
    int rc = -1;
    if (r && m.n <= UINT32_MAX) {
        r->npoints = thread_points(maxt, r->nthreads);
        char a[32];
        tcb_status(o, "micro: making %s keys resident", tcb_fmt_count(m.n, a, sizeof a));
        rc = setup_keys(&m, maxt);
        if (rc == 0)
            rc = fill(&m, r);
        if (rc == 0)
            tcb_check_l1_fill("micro's L1", "after the fill", r->resident, m.n, "entries",
                              "its byte budget is sized for every key: this is a bug to "
                              "report");
        if (rc == 0)
            rc = measure(&m, r);
        tc_close(m.cache); /* the floor needs the memory, and the machine to itself */
        m.cache = NULL;
        if (rc == 0)
            rc = measure_floor(&m, r);
        if (rc == 0)
            o->json ? print_json(&m, r) : print_text(&m, r);
    }
    tc_close(m.cache);
    for (unsigned t = 0; t < maxt; t++)
        free(m.rings[t]);
    free(m.keys);
    free(m.value);
    free(r);
    return rc == 0 ? 0 : 1;
}
