/*
 * bulk.c - `bulk`: what one tc_mget of N keys saves over N tc_get calls when every key is
 * an L1 miss, and one tc_mset of N items over N tc_set calls, with raw hiredis beside them
 * as the floor (pipelined GETs / SETs) and the ceiling (one command at a time).
 *
 * Fairness. Both reading sides have their L1 on and pay for filling it, as a real miss
 * does; neither ever finds a key there: tc_mget and tc_get read through two separate
 * caches, and every round reads N keys that no cache has read before (round r reads ids
 * r*N .. r*N+N-1, all written beforehand with TC_OPT_NO_L1, so no L1 holds them). The L1
 * hits of both caches over the measured rounds are printed (they must be 0). Clearing L1
 * between rounds would instead time the clear's invalidation traffic, and an L1-off cache
 * would skip the fill that a real miss pays for.
 *
 * Each round times every variant once, in an order that rotates with the round, so a
 * slow spell of a shared machine lands on all of them alike; the headline ratio is the
 * median of the per-round ratios (tc_get time / tc_mget time), which one noisy round
 * cannot move. The writes rewrite the round's keys (tiercache) or the N raw keys.
 *
 * Round trips are counted on the server: after the timed rounds, each variant runs a few
 * more calls (fresh keys again) between two INFO snapshots, and the deltas of
 * total_commands_processed (commands, a script's inner ones included) and
 * total_reads_processed (the server's read events on client sockets: one per round trip
 * when a pipeline arrives in one read) are divided by the calls, and so is the CPU time of
 * Redis's main thread: what is left of a call's time is the client's own work, the link
 * and waiting.
 */
#include "multi.h"

#include "checks.h"
#include "fmt.h"
#include "json.h"
#include "redis_info.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WARM_ROUNDS  3u  /* unmeasured: connections opened, scripts loaded */
#define RT_ROUNDS    20u /* calls per variant between the INFO snapshots */
#define TARGET_RATIO 10.0
#define TOP_CMDS     3 /* commands named per call */

typedef enum {
    V_MGET,
    V_GET,
    V_RPIPE,
    V_RMGET,
    V_RSEQ,
    V_READS, /* reads above, writes below */
    V_MSET = V_READS,
    V_SET,
    V_WPIPE,
    V_WSEQ,
    V_COUNT
} variant_t;

static const char *const variant_id[V_COUNT] = {
    "tc_mget", "tc_get", "redis_pipelined_get", "redis_mget", "redis_get",
    "tc_mset", "tc_set", "redis_pipelined_set", "redis_set"};

typedef struct variant_res {
    tcb_multi_summary_t s;
    double cmds, reads; /* Redis commands and read events per call */
    double server_ns;   /* CPU time of Redis's main thread, per call */
    char top[96];       /* the commands behind cmds, e.g. "100 evalsha" */
    uint64_t errors;
    int first_error;
} variant_res_t;

typedef struct bulk {
    const tcb_opts_t *o;
    tcb_env_t env;
    tc_cache_t *mget_c, *get_c;
    redisContext *raw;
    size_t n;
    uint64_t rounds;
    char ttl[24];
    char *text; /* n tiercache keys of the current round, TCB_MULTI_KEY_CAP each */
    tc_buf_t *bufs;
    tc_item_t *items;
    tc_ref_t **refs;
    int *codes;
    char *rawtext; /* n raw keys */
    size_t rawlen;
    const char **argv; /* n + 1 arguments for MGET */
    size_t *argl;
    unsigned char *value;
    uint64_t *t[V_COUNT]; /* per-round call times, ns */
    variant_res_t res[V_COUNT];
    uint64_t l1_hits, l1_misses; /* both reading caches, measured rounds */
    double read_ratio, write_ratio, read_ratio_of_medians, write_ratio_of_medians;
    /* The same gain for raw Redis (N calls / one pipeline): what batching is worth on this
     * link and machine, to read the library's ratios against. */
    double raw_read_ratio, raw_write_ratio;
} bulk_t;

/* ---------------- one call of each variant ---------------- */

static void set_round(bulk_t *b, uint64_t round) {
    uint64_t first = round * b->n;
    for (size_t i = 0; i < b->n; i++) {
        char *k = b->text + i * TCB_MULTI_KEY_CAP;
        b->bufs[i] = (tc_buf_t){k, tcb_multi_key("", first + i, k)};
        b->items[i] =
            (tc_item_t){k, b->bufs[i].len, b->value, tcb_vsize_for(&b->o->vsize, first + i)};
    }
}

static const char *raw_key(const bulk_t *b, size_t i) {
    return b->rawtext + i * TCB_MULTI_KEY_CAP;
}

static int raw_reply_ok(redisReply *r, int want_value) {
    if (!r)
        return TC_EUNAVAILABLE;
    int rc = r->type == REDIS_REPLY_ERROR ? TC_EREDIS
             : want_value && r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_ARRAY
                 ? TC_ENOTFOUND
                 : 0;
    freeReplyObject(r);
    return rc;
}

static int raw_drain(bulk_t *b, int want_value) {
    int first = 0;
    for (size_t i = 0; i < b->n; i++) {
        void *r = NULL;
        if (redisGetReply(b->raw, &r) != REDIS_OK)
            return TC_EUNAVAILABLE;
        int rc = raw_reply_ok(r, want_value);
        if (rc && !first)
            first = rc;
    }
    return first;
}

static int raw_set_argv(const bulk_t *b, size_t i, const char *argv[5], size_t lens[5]) {
    argv[0] = "SET";
    argv[1] = raw_key(b, i);
    argv[2] = (const char *)b->value;
    argv[3] = "PX";
    argv[4] = b->ttl;
    lens[0] = 3;
    lens[1] = b->rawlen;
    lens[2] = tcb_vsize_for(&b->o->vsize, i);
    lens[3] = 2;
    lens[4] = strlen(b->ttl);
    return 5;
}

static int raw_pipeline(bulk_t *b, int write) {
    for (size_t i = 0; i < b->n; i++) {
        const char *argv[5] = {"GET", raw_key(b, i)};
        size_t lens[5] = {3, b->rawlen};
        int argc = write ? raw_set_argv(b, i, argv, lens) : 2;
        if (redisAppendCommandArgv(b->raw, argc, argv, lens) != REDIS_OK)
            return TC_ENOMEM;
    }
    return raw_drain(b, !write);
}

static int raw_one_by_one(bulk_t *b, int write) {
    int first = 0;
    for (size_t i = 0; i < b->n; i++) {
        const char *argv[5] = {"GET", raw_key(b, i)};
        size_t lens[5] = {3, b->rawlen};
        int argc = write ? raw_set_argv(b, i, argv, lens) : 2;
        int rc = raw_reply_ok(redisCommandArgv(b->raw, argc, argv, lens), !write);
        if (rc && !first)
            first = rc;
    }
    return first;
}

static int raw_mget(bulk_t *b) {
    b->argv[0] = "MGET";
    b->argl[0] = 4;
    for (size_t i = 0; i < b->n; i++) {
        b->argv[i + 1] = raw_key(b, i);
        b->argl[i + 1] = b->rawlen;
    }
    return raw_reply_ok(redisCommandArgv(b->raw, (int)b->n + 1, b->argv, b->argl), 1);
}

static int tc_mget_call(bulk_t *b) {
    int rc = tc_mget(b->mget_c, b->bufs, b->n, b->refs, b->codes);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < b->n; i++) {
        if (b->codes[i] != 0 && rc == 0)
            rc = b->codes[i];
        tc_ref_release(b->refs[i]);
    }
    return rc;
}

static int tc_get_calls(bulk_t *b) {
    int first = 0;
    for (size_t i = 0; i < b->n; i++) {
        tc_ref_t *ref = NULL;
        int rc = tc_get(b->get_c, b->bufs[i].data, b->bufs[i].len, &ref);
        tc_ref_release(ref);
        if (rc && !first)
            first = rc;
    }
    return first;
}

static int tc_set_calls(bulk_t *b) {
    int first = 0;
    for (size_t i = 0; i < b->n; i++) {
        const tc_item_t *it = &b->items[i];
        int rc = tc_set(b->mget_c, it->key, it->klen, it->value, it->vlen, b->o->ttl_ms);
        if (rc && !first)
            first = rc;
    }
    return first;
}

static int run_variant(bulk_t *b, variant_t v) {
    tc_opts_t opts = TC_OPTS_INIT;
    opts.ttl_ms = b->o->ttl_ms;
    switch (v) {
    case V_MGET:
        return tc_mget_call(b);
    case V_GET:
        return tc_get_calls(b);
    case V_RPIPE:
        return raw_pipeline(b, 0);
    case V_RMGET:
        return raw_mget(b);
    case V_RSEQ:
        return raw_one_by_one(b, 0);
    case V_MSET:
        return tc_mset(b->mget_c, b->items, b->n, &opts, NULL);
    case V_SET:
        return tc_set_calls(b);
    case V_WPIPE:
        return raw_pipeline(b, 1);
    case V_WSEQ:
        return raw_one_by_one(b, 1);
    case V_COUNT:
        break;
    }
    return TC_EINVAL;
}

static uint64_t time_variant(bulk_t *b, variant_t v) {
    uint64_t t0 = tcb_now_ns();
    int rc = run_variant(b, v);
    uint64_t dt = tcb_now_ns() - t0;
    if (rc != 0 && b->res[v].errors++ == 0)
        b->res[v].first_error = rc;
    return dt;
}

/* ---------------- setup ---------------- */

static int alloc_arrays(bulk_t *b) {
    size_t n = b->n;
    b->text = malloc(n * TCB_MULTI_KEY_CAP);
    b->rawtext = malloc(n * TCB_MULTI_KEY_CAP);
    b->bufs = calloc(n, sizeof *b->bufs);
    b->items = calloc(n, sizeof *b->items);
    b->refs = calloc(n, sizeof *b->refs);
    b->codes = calloc(n, sizeof *b->codes);
    b->argv = calloc(n + 1, sizeof *b->argv);
    b->argl = calloc(n + 1, sizeof *b->argl);
    b->value = malloc(tcb_vsize_max(&b->o->vsize) + 1);
    int ok = b->text && b->rawtext && b->bufs && b->items && b->refs && b->codes && b->argv &&
             b->argl && b->value;
    for (int v = 0; v < V_COUNT; v++)
        ok = ok && (b->t[v] = calloc(b->rounds, sizeof *b->t[v])) != NULL;
    if (!ok)
        return -1;
    memset(b->value, 'v', tcb_vsize_max(&b->o->vsize) + 1);
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%sbkraw:", b->env.prefix);
    for (size_t i = 0; i < n; i++)
        b->rawlen = tcb_multi_key(prefix, i, b->rawtext + i * TCB_MULTI_KEY_CAP);
    snprintf(b->ttl, sizeof b->ttl, "%llu", (unsigned long long)b->o->ttl_ms);
    return 0;
}

static void free_arrays(bulk_t *b) {
    free(b->text);
    free(b->rawtext);
    free(b->bufs);
    free(b->items);
    free(b->refs);
    free(b->codes);
    free(b->argv);
    free(b->argl);
    free(b->value);
    for (int v = 0; v < V_COUNT; v++)
        free(b->t[v]);
}

/* Every round's keys in Redis (kept out of every L1), the raw keys, listeners quiet. */
static int populate(bulk_t *b) {
    uint64_t total = (WARM_ROUNDS + b->rounds + RT_ROUNDS) * b->n;
    tc_opts_t opts = TC_OPTS_INIT;
    opts.ttl_ms = b->o->ttl_ms;
    opts.flags = TC_OPT_NO_L1;
    tcb_status(b->o, "bulk: writing %llu keys (tc_mset) and %zu raw keys",
               (unsigned long long)total, b->n);
    if (tcb_multi_write(b->get_c, b->o, "", 0, total, &opts) != 0)
        return -1;
    if (raw_pipeline(b, 1) != 0) {
        fprintf(stderr, "tiercache-bench: bulk: raw SETs failed\n");
        return -1;
    }
    tc_stats_t st;
    tc_stats(b->get_c, &st);
    tcb_multi_settle(b->mget_c, st.inval_published);
    tcb_multi_settle(b->get_c, st.inval_published);
    return tcb_interrupted ? -1 : 0;
}

static tc_cache_t *open_reader(bulk_t *b, const char *who) {
    /* L1 large enough that no round's fill is ever evicted: misses are misses only. */
    uint64_t per = TCB_KEY_LEN + (uint64_t)tcb_vsize_max(&b->o->vsize) + 256;
    uint64_t bytes = (WARM_ROUNDS + b->rounds + RT_ROUNDS) * b->n * per;
    tcb_multi_cfg_t mc = {.sub = "bk:", .l1_bytes = bytes > (64u << 20) ? bytes : (64u << 20)};
    return tcb_multi_open(&b->env, &mc, who);
}

/* ---------------- measuring ---------------- */

/* L1 hits and misses of both reading caches together. */
static void l1_counts(const bulk_t *b, uint64_t *hits, uint64_t *misses) {
    tc_stats_t a, c;
    tc_stats(b->mget_c, &a);
    tc_stats(b->get_c, &c);
    *hits = a.l1_hits + c.l1_hits;
    *misses = a.l1_misses + c.l1_misses;
}

/* One round: every read variant, then every write variant, each in a rotating order. */
static void timed_round(bulk_t *b, uint64_t r) {
    uint64_t h0, m0, h1, m1;
    set_round(b, WARM_ROUNDS + r);
    l1_counts(b, &h0, &m0);
    for (unsigned j = 0; j < V_READS; j++) {
        variant_t v = (variant_t)((r + j) % V_READS);
        b->t[v][r] = time_variant(b, v);
    }
    l1_counts(b, &h1, &m1); /* before the writes, which fill L1 */
    b->l1_hits += h1 - h0;
    b->l1_misses += m1 - m0;
    for (unsigned j = 0; j < V_COUNT - V_READS; j++) {
        variant_t v = (variant_t)(V_READS + (r + j) % (V_COUNT - V_READS));
        b->t[v][r] = time_variant(b, v);
    }
}

static void timed_rounds(bulk_t *b) {
    for (uint64_t r = 0; r < WARM_ROUNDS; r++) {
        set_round(b, r);
        for (int v = 0; v < V_COUNT; v++)
            run_variant(b, (variant_t)v);
    }
    for (uint64_t r = 0; r < b->rounds && !tcb_interrupted; r++)
        timed_round(b, r);
}

/* One INFO snapshot: the counters, the read events, and the CPU time of Redis's main
 * thread (what executing, reading and answering cost the server; a script's commands are
 * inside it once, where commandstats would count them twice). */
typedef struct snap {
    tcb_info_t info;
    uint64_t reads;
    double cpu_s;
} snap_t;

static double info_double(const char *text, const char *field) {
    const char *p = strstr(text, field);
    return p ? strtod(p + strlen(field), NULL) : NAN;
}

static int info_snap(redisContext *c, snap_t *s) {
    redisReply *r = redisCommand(c, "INFO stats commandstats cpu");
    int rc = -1;
    if (r && r->type == REDIS_REPLY_STRING && tcb_info_parse(r->str, r->len, &s->info) == 0) {
        const char *p = strstr(r->str, "total_reads_processed:");
        s->reads = p ? strtoull(p + 22, NULL, 10) : 0;
        s->cpu_s = info_double(r->str, "used_cpu_sys_main_thread:") +
                   info_double(r->str, "used_cpu_user_main_thread:");
        if (isnan(s->cpu_s)) /* before Redis 6: the whole process */
            s->cpu_s =
                info_double(r->str, "used_cpu_sys:") + info_double(r->str, "used_cpu_user:");
        rc = 0;
    }
    freeReplyObject(r);
    return rc;
}

/* Does command a come before b: more calls first, then by name (a stable listing). */
static int cmd_before(const tcb_cmdstat_t *a, const tcb_cmdstat_t *b) {
    return a->calls != b->calls ? a->calls > b->calls : strcmp(a->name, b->name) < 0;
}

/* "100 evalsha" or "200 set + 100 evalsha + 100 get + 4 more": the commands behind a
 * call, most frequent first (TOP_CMDS of them named). */
static void describe_cmds(const tcb_info_t *d, char *out, size_t cap) {
    size_t idx[TCB_INFO_MAX_CMDS], n = 0;
    for (size_t i = 0; i < d->ncmds; i++) {
        if (strcmp(d->cmds[i].name, "info") == 0 || d->cmds[i].calls == 0)
            continue;
        size_t at = n++;
        for (; at > 0 && cmd_before(&d->cmds[i], &d->cmds[idx[at - 1]]); at--)
            idx[at] = idx[at - 1];
        idx[at] = i;
    }
    out[0] = '\0';
    for (size_t k = 0; k < n && k < TOP_CMDS; k++) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%.4g %s", k ? " + " : "",
                 (double)d->cmds[idx[k]].calls / RT_ROUNDS, d->cmds[idx[k]].name);
    }
    if (n > TOP_CMDS) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, " + %zu more", n - TOP_CMDS);
    }
}

static void count_round_trips(bulk_t *b) {
    for (int v = 0; v < V_COUNT && !tcb_interrupted; v++) {
        snap_t before, after;
        tcb_info_t d;
        if (info_snap(b->env.ctl, &before) != 0)
            return;
        for (unsigned i = 0; i < RT_ROUNDS; i++) {
            set_round(b, WARM_ROUNDS + b->rounds + i);
            run_variant(b, (variant_t)v);
        }
        if (info_snap(b->env.ctl, &after) != 0)
            return;
        tcb_info_delta(&before.info, &after.info, &d);
        b->res[v].cmds = (double)d.commands / RT_ROUNDS;
        b->res[v].reads = after.reads > before.reads
                              ? (double)(after.reads - before.reads - 1) / RT_ROUNDS
                              : NAN;
        b->res[v].server_ns = (after.cpu_s - before.cpu_s) * 1e9 / RT_ROUNDS;
        describe_cmds(&d, b->res[v].top, sizeof b->res[v].top);
    }
}

/* Median of the per-round ratios num / den, and the ratio of the medians. */
static double round_ratio(const bulk_t *b, variant_t num, variant_t den) {
    double *ratios = malloc(b->rounds * sizeof *ratios);
    size_t k = 0;
    for (uint64_t r = 0; ratios && r < b->rounds; r++)
        if (b->t[den][r] > 0)
            ratios[k++] = (double)b->t[num][r] / (double)b->t[den][r];
    double m = ratios ? tcb_multi_median(ratios, k) : NAN;
    free(ratios);
    return m;
}

static void summarize(bulk_t *b) {
    b->read_ratio = round_ratio(b, V_GET, V_MGET);
    b->write_ratio = round_ratio(b, V_SET, V_MSET);
    b->raw_read_ratio = round_ratio(b, V_RSEQ, V_RPIPE);
    b->raw_write_ratio = round_ratio(b, V_WSEQ, V_WPIPE);
    for (int v = 0; v < V_COUNT; v++)
        tcb_multi_summarize(b->t[v], b->rounds, &b->res[v].s);
    b->read_ratio_of_medians = (double)b->res[V_GET].s.p50 / (double)b->res[V_MGET].s.p50;
    b->write_ratio_of_medians = (double)b->res[V_SET].s.p50 / (double)b->res[V_MSET].s.p50;
}

/* ---------------- output ---------------- */

/* "tc_mget, 100 keys", "100 x tc_get", "redis: 100 pipelined GETs"... */
static const char *variant_name(variant_t v, size_t n, char *buf, size_t cap) {
    static const char *const what[V_COUNT] = {"keys",   "tc_get",         "pipelined GETs",
                                              "keys",   "GETs",           "items",
                                              "tc_set", "pipelined SETs", "SETs"};
    if (v == V_MGET || v == V_MSET)
        snprintf(buf, cap, "%s, %zu %s", v == V_MGET ? "tc_mget" : "tc_mset", n, what[v]);
    else if (v == V_GET || v == V_SET)
        snprintf(buf, cap, "%zu x %s", n, what[v]);
    else if (v == V_RMGET)
        snprintf(buf, cap, "redis: MGET of %zu %s", n, what[v]);
    else
        snprintf(buf, cap, "redis: %zu %s", n, what[v]);
    return buf;
}

static void print_row(const bulk_t *b, variant_t v) {
    const variant_res_t *r = &b->res[v];
    char name[48], a[16], c[16], d[16], e[16], f[16], rt[16];
    variant_name(v, b->n, name, sizeof name);
    if (isnan(r->reads))
        snprintf(rt, sizeof rt, "-");
    else
        snprintf(rt, sizeof rt, "%.3g", r->reads);
    printf("  %-28s %10s %10s %10s %10s %8s %10.4g %10s\n", name,
           tcb_fmt_ns((double)r->s.min, a, sizeof a), tcb_fmt_ns((double)r->s.p50, c, sizeof c),
           tcb_fmt_ns((double)r->s.p99, d, sizeof d),
           tcb_fmt_ns((double)r->s.p50 / (double)b->n, e, sizeof e), rt, r->cmds,
           tcb_fmt_ns(r->server_ns, f, sizeof f));
}

static void print_header(const char *what) {
    printf("\n  %-28s %10s %10s %10s %10s %8s %10s %10s\n", what, "min", "p50", "p99",
           "p50/key", "rt/call", "cmds/call", "Redis CPU");
}

/* The commands behind the tiercache rows, which the table only counts. */
static void print_commands(const bulk_t *b, variant_t first, variant_t second) {
    char name[48];
    printf("  commands per call:");
    for (variant_t v = first;; v = second) {
        printf(" %s: %s%s", variant_name(v, b->n, name, sizeof name), b->res[v].top,
               v == second ? "\n" : ";");
        if (v == second)
            break;
    }
}

static void print_errors(const bulk_t *b) {
    for (int v = 0; v < V_COUNT; v++) {
        if (!b->res[v].errors)
            continue;
        char name[48];
        variant_name((variant_t)v, b->n, name, sizeof name);
        printf("  errors: %s failed %llu times, first %s\n", name,
               (unsigned long long)b->res[v].errors, tc_err_name(b->res[v].first_error));
    }
}

static void print_text(const bulk_t *b) {
    char a[32], vs[48];
    printf("\ntiercache-bench bulk: %zu keys per call, %s rounds, 17 B keys, %s values, %s\n",
           b->n, tcb_fmt_count(b->rounds, a, sizeof a),
           tcb_vsize_name(&b->o->vsize, vs, sizeof vs),
           b->env.owned ? "throwaway redis-server" : b->env.url_shown);
    printf("  every tiercache read is an L1 miss answered by Redis: each round reads keys no "
           "cache has read\n  before (tc_mget and tc_get on two caches, L1 on); L1 hits in "
           "the measured rounds: %llu of %llu\n",
           (unsigned long long)b->l1_hits, (unsigned long long)(b->l1_hits + b->l1_misses));
    print_header("reads, time per call");
    for (int v = V_MGET; v < V_READS; v++)
        print_row(b, (variant_t)v);
    print_commands(b, V_MGET, V_GET);
    printf("\n  >> tc_mget of %zu L1 misses is %.1fx faster than %zu tc_get calls (median of "
           "per-round ratios;\n     ratio of medians %.1fx): target >= %.0fx %s\n",
           b->n, b->read_ratio, b->n, b->read_ratio_of_medians, TARGET_RATIO,
           b->read_ratio >= TARGET_RATIO ? "MET" : "NOT MET");
    printf("     tc_mget takes %.2fx the time of %zu pipelined raw GETs (the floor); for "
           "reference, raw\n     Redis gains %.1fx from the same batching on this link "
           "(%zu GETs / %zu pipelined GETs)\n",
           (double)b->res[V_MGET].s.p50 / (double)b->res[V_RPIPE].s.p50, b->n,
           b->raw_read_ratio, b->n, b->n);
    print_header("writes, time per call");
    for (int v = V_MSET; v < V_COUNT; v++)
        print_row(b, (variant_t)v);
    print_commands(b, V_MSET, V_SET);
    printf("\n  >> tc_mset of %zu items is %.1fx faster than %zu tc_set calls (median of "
           "per-round ratios;\n     ratio of medians %.1fx); %.2fx the time of %zu pipelined "
           "raw SETs; raw Redis\n     gains %.1fx from the same batching\n",
           b->n, b->write_ratio, b->n, b->write_ratio_of_medians,
           (double)b->res[V_MSET].s.p50 / (double)b->res[V_WPIPE].s.p50, b->n,
           b->raw_write_ratio);
    printf("\n  rt/call: the server's read events per call (INFO total_reads_processed), one "
           "per round\n  trip when a pipeline arrives in one read. cmds/call: commands Redis "
           "ran per call (a\n  script's own commands count too). Redis CPU: its main thread's "
           "CPU time per call (INFO\n"
           "  used_cpu_*_main_thread): the rest of a call's time is the client, the link and "
           "waiting.\n");
    print_errors(b);
    printf("\n");
    tcb_warnings_print(stdout);
}

static void json_variant(tcb_json_t *j, const bulk_t *b, variant_t v) {
    const variant_res_t *r = &b->res[v];
    tcb_json_obj_begin(j, NULL);
    tcb_json_str(j, "name", variant_id[v]);
    tcb_json_u64(j, "min_ns", r->s.min);
    tcb_json_u64(j, "p50_ns", r->s.p50);
    tcb_json_u64(j, "p99_ns", r->s.p99);
    tcb_json_u64(j, "max_ns", r->s.max);
    tcb_json_dbl(j, "p50_ns_per_key", (double)r->s.p50 / (double)b->n);
    tcb_json_dbl(j, "redis_commands_per_call", r->cmds);
    tcb_json_dbl(j, "redis_reads_per_call", r->reads);
    tcb_json_dbl(j, "redis_cpu_ns_per_call", r->server_ns);
    tcb_json_str(j, "commands", r->top);
    tcb_json_u64(j, "errors", r->errors);
    tcb_json_obj_end(j);
}

static void print_json(const bulk_t *b) {
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "bulk");
    tcb_json_str(&j, "redis", b->env.url_shown);
    tcb_json_u64(&j, "keys_per_call", b->n);
    tcb_json_u64(&j, "rounds", b->rounds);
    tcb_json_u64(&j, "l1_hits_in_rounds", b->l1_hits);
    tcb_json_u64(&j, "l1_misses_in_rounds", b->l1_misses);
    tcb_json_arr_begin(&j, "reads");
    for (int v = V_MGET; v < V_READS; v++)
        json_variant(&j, b, (variant_t)v);
    tcb_json_arr_end(&j);
    tcb_json_arr_begin(&j, "writes");
    for (int v = V_MSET; v < V_COUNT; v++)
        json_variant(&j, b, (variant_t)v);
    tcb_json_arr_end(&j);
    tcb_json_obj_begin(&j, "mget_vs_get");
    tcb_json_dbl(&j, "median_round_ratio", b->read_ratio);
    tcb_json_dbl(&j, "ratio_of_medians", b->read_ratio_of_medians);
    tcb_json_dbl(&j, "target", TARGET_RATIO);
    tcb_json_bool(&j, "met", b->read_ratio >= TARGET_RATIO);
    tcb_json_dbl(&j, "raw_get_vs_pipelined", b->raw_read_ratio);
    tcb_json_obj_end(&j);
    tcb_json_obj_begin(&j, "mset_vs_set");
    tcb_json_dbl(&j, "median_round_ratio", b->write_ratio);
    tcb_json_dbl(&j, "ratio_of_medians", b->write_ratio_of_medians);
    tcb_json_dbl(&j, "raw_set_vs_pipelined", b->raw_write_ratio);
    tcb_json_obj_end(&j);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

/* ---------------- the command ---------------- */

static int run(bulk_t *b) {
    char err[256];
    if (alloc_arrays(b) != 0) {
        fprintf(stderr, "tiercache-bench: bulk: out of memory\n");
        return -1;
    }
    b->raw = tcb_rconn_open(&b->env.ep, 5000, err, sizeof err);
    if (!b->raw) {
        fprintf(stderr, "tiercache-bench: bulk: %s\n", err);
        return -1;
    }
    b->mget_c = open_reader(b, "bulk");
    b->get_c = b->mget_c ? open_reader(b, "bulk") : NULL;
    if (!b->get_c || populate(b) != 0)
        return -1;
    tcb_status(b->o, "bulk: %llu rounds of %zu keys per variant", (unsigned long long)b->rounds,
               b->n);
    timed_rounds(b);
    count_round_trips(b);
    if (tcb_interrupted)
        return -1;
    summarize(b);
    b->o->json ? print_json(b) : print_text(b);
    for (int v = 0; v < V_COUNT; v++)
        if (b->res[v].errors)
            return -1; /* a figure over failed calls measures nothing */
    return 0;
}

int tcb_cmd_bulk(const tcb_opts_t *o) {
    bulk_t *b = calloc(1, sizeof *b);
    if (!b)
        return 1;
    b->o = o;
    b->n = (size_t)o->keys;
    /* About 200,000 keys read in all: enough rounds for a p99, few enough to write fast. */
    uint64_t rounds = 200000 / o->keys;
    b->rounds = o->ops ? o->ops : rounds < 20 ? 20 : rounds > 300 ? 300 : rounds;
    int rc = tcb_env_open(&b->env, o) == 0 ? run(b) : -1;
    tc_close(b->mget_c);
    tc_close(b->get_c);
    if (b->raw)
        redisFree(b->raw);
    tcb_env_close(&b->env);
    free_arrays(b);
    free(b);
    return rc == 0 ? 0 : 1;
}
