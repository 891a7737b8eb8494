/*
 * replay.c - `replay`: the L1 alone on a recorded access trace, at a capacity in entries.
 *
 * Each request is one tc_fetch on an L1-only cache (no Redis) whose loader returns a
 * one-byte value; a loader call is a miss. The same trace also runs through lru_sim.c, an
 * exact LRU, so the output shows the library's figure, the textbook figure, and the gap
 * between them (the cost of sharding and of any shortcut on the hit path). Requests are
 * replayed on one thread, in file order: LRU is defined by that order.
 *
 * The entries cap binds, never the bytes: the byte budget is set far above what the
 * entries can occupy. --shards defaults to 1 here, because sharding splits one LRU into
 * several smaller ones and the point is to compare with one exact LRU; try --shards 16
 * to see what sharding costs, and --shards default for what the library chooses at that
 * capacity (the shards column then says how many it chose).
 *
 * The reference column repeats the exact-LRU figures of ../shared/traces/README.md for
 * the traces listed there, so a run on those files checks itself.
 *
 * Keys may be any strings (trace.h hashes those that are not plain decimal ids), and the
 * lines the reader skipped are counted in the report's warnings, never silently dropped:
 * a miss ratio over a different request count is a different figure.
 */
#include "bench.h"

#include "checks.h"
#include "fmt.h"
#include "json.h"
#include "lru_sim.h"
#include "tiercache.h"
#include "trace.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    uint64_t entries;
    double lru, s3fifo;
} reference[] = {
    {"lirs-multi2", 568, 0.6308, 0.5070},    {"lirs-sprite", 707, 0.1352, 0.1386},
    {"lirs-2pools", 298, 0.5498, 0.4914},    {"cache2k-web07", 2048, 0.4434, 0.4188},
    {"cache2k-web12", 1375, 0.3152, 0.2775}, {"cloudphysics-w106", 27517, 0.0823, 0.0783},
};

typedef struct replay_row {
    char trace[64];
    uint64_t requests, distinct, entries, hashed;
    unsigned shards;
    double miss_tc, miss_lru, ref; /* ref < 0: no published figure */
    double secs;
    uint64_t l1_entries;
} replay_row_t;

static void trace_name(const char *path, char *out, size_t cap) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    const char *b = basename(tmp);
    snprintf(out, cap, "%s", b);
    char *dot = strstr(out, ".txt");
    if (dot)
        *dot = '\0';
    else if ((dot = strstr(out, ".gz")))
        *dot = '\0';
}

/* The README's figure for the policy being replayed (LRU for the default, whose target
 * is exact LRU's figure). */
static double reference_for(const char *name, uint64_t entries, int policy) {
    for (size_t i = 0; i < sizeof reference / sizeof reference[0]; i++)
        if (strcmp(reference[i].name, name) == 0 && reference[i].entries == entries)
            return policy == TC_L1_POLICY_S3FIFO ? reference[i].s3fifo : reference[i].lru;
    return -1.0;
}

static int one_byte_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)key;
    (void)klen;
    (*(uint64_t *)arg)++;
    static const unsigned char v = 'v';
    return tc_load_set_value(load, &v, 1);
}

static double exact_lru(const uint64_t *ids, size_t n, uint64_t entries) {
    tcb_lru_t *l = tcb_lru_new(entries);
    if (!l)
        return -1.0;
    uint64_t misses = 0;
    for (size_t i = 0; i < n; i++)
        misses += !tcb_lru_access(l, ids[i]);
    tcb_lru_free(l);
    return (double)misses / (double)n;
}

static int library_lru(const tcb_opts_t *o, const uint64_t *ids, size_t n, replay_row_t *row) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = NULL;
    cfg.l1_max_entries = row->entries;
    cfg.l1_max_bytes = (size_t)row->entries * 1024 + (1u << 20);
    cfg.l1_max_value_bytes = 1024; /* the values are one byte: no shard is thinned for
                                      large values, so --shards default shows the rule
                                      on entries */
    cfg.l1_shards = o->shards;
    cfg.l1_policy = o->policy;
    cfg.default_ttl_ms = 7 * 24 * 3600 * 1000ull; /* nothing expires during a replay */
    cfg.ttl_jitter = 0;
    tc_cache_t *c = NULL;
    tc_error_t err;
    int rc = tc_open(&cfg, &c, &err);
    if (rc != 0) {
        fprintf(stderr, "tiercache-bench: replay: tc_open: %s\n", err.msg);
        return -1;
    }
    uint64_t loads = 0, t0 = tcb_now_ns();
    for (size_t i = 0; i < n && !tcb_interrupted; i++) {
        char key[TCB_KEY_LEN + 1];
        tcb_key_format(ids[i], key);
        tc_ref_t *ref = NULL;
        if ((rc = tc_fetch(c, key, TCB_KEY_LEN, one_byte_loader, &loads, &ref)) != 0)
            break;
        tc_ref_release(ref);
    }
    row->secs = (double)(tcb_now_ns() - t0) / 1e9;
    tc_stats_t st;
    tc_stats(c, &st);
    row->l1_entries = st.l1_entries;
    row->shards = (unsigned)st.l1_shards; /* as chosen, also for --shards default */
    tc_close(c);
    if (rc != 0) {
        fprintf(stderr, "tiercache-bench: replay: tc_fetch: %s\n", tc_strerror(rc));
        return -1;
    }
    row->miss_tc = (double)loads / (double)n;
    return 0;
}

static void print_header(int policy) {
    printf("\n%-20s %10s %9s %9s %6s %10s %10s %8s %10s %8s %8s\n", "trace", "requests",
           "distinct", "entries", "shards", "tiercache", "exact LRU", "diff",
           policy == TC_L1_POLICY_S3FIFO ? "README S3F" : "README LRU", "vs it", "Mreq/s");
}

static void print_row(const replay_row_t *r) {
    char a[32], b[32], c[32], ref[16] = "-", vs[16] = "-";
    if (r->ref >= 0) {
        snprintf(ref, sizeof ref, "%.4f", r->ref);
        snprintf(vs, sizeof vs, "%+.2fpt", 100.0 * (r->miss_tc - r->ref));
    }
    printf("%-20s %10s %9s %9s %6u %10.4f %10.4f %+7.2fpt %10s %8s %8.2f\n", r->trace,
           tcb_fmt_count(r->requests, a, sizeof a), tcb_fmt_count(r->distinct, b, sizeof b),
           tcb_fmt_count(r->entries, c, sizeof c), r->shards, r->miss_tc, r->miss_lru,
           100.0 * (r->miss_tc - r->miss_lru), ref, vs,
           r->secs > 0 ? (double)r->requests / r->secs / 1e6 : 0.0);
    fflush(stdout);
}

static void json_rows(const replay_row_t *rows, int n, int policy) {
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "replay");
    tcb_json_str(&j, "policy", policy == TC_L1_POLICY_S3FIFO ? "s3fifo" : "default");
    tcb_json_arr_begin(&j, "results");
    for (int i = 0; i < n; i++) {
        const replay_row_t *r = &rows[i];
        tcb_json_obj_begin(&j, NULL);
        tcb_json_str(&j, "trace", r->trace);
        tcb_json_u64(&j, "requests", r->requests);
        tcb_json_u64(&j, "distinct_keys", r->distinct);
        tcb_json_u64(&j, "string_keys_hashed", r->hashed);
        tcb_json_u64(&j, "entries", r->entries);
        tcb_json_u64(&j, "shards", r->shards);
        tcb_json_dbl(&j, "miss_ratio", r->miss_tc);
        tcb_json_dbl(&j, "exact_lru_miss_ratio", r->miss_lru);
        /* The README's figure for the policy replayed: its LRU column for the default. */
        const char *ref = policy == TC_L1_POLICY_S3FIFO ? "readme_s3fifo_miss_ratio"
                                                        : "readme_lru_miss_ratio";
        if (r->ref >= 0)
            tcb_json_dbl(&j, ref, r->ref);
        else
            tcb_json_null(&j, ref);
        tcb_json_u64(&j, "l1_entries_at_end", r->l1_entries);
        tcb_json_dbl(&j, "seconds", r->secs);
        tcb_json_obj_end(&j);
    }
    tcb_json_arr_end(&j);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

/* Capacities for one trace: --entries as given, --pct of its distinct keys (floored, as
 * the README's table does). */
static int capacities(const tcb_opts_t *o, uint64_t distinct, uint64_t *caps) {
    int n = 0;
    for (int i = 0; i < o->nentries; i++)
        caps[n++] = o->entries[i];
    for (int i = 0; i < o->nreplay_pcts; i++) {
        uint64_t e = (uint64_t)(o->replay_pcts[i] / 100.0 * (double)distinct);
        caps[n++] = e ? e : 1;
    }
    return n;
}

/* Every distinct key was requested, so at the end the L1 holds its capacity or all of them. */
static void check_fill(const replay_row_t *r) {
    char what[128];
    snprintf(what, sizeof what, "the L1 replaying %s (%llu entries, %u shard%s)", r->trace,
             (unsigned long long)r->entries, r->shards, r->shards == 1 ? "" : "s");
    tcb_check_l1_fill(what, "at the end of the trace", r->l1_entries,
                      r->entries < r->distinct ? r->entries : r->distinct, "entries",
                      r->shards > 1 ? "each shard caps its share of the entries, and the keys "
                                      "do not split evenly"
                                    : NULL);
}

static int replay_trace(const tcb_opts_t *o, const char *path, replay_row_t *rows, int *nrows) {
    uint64_t *ids = NULL, *uniq = NULL;
    size_t n = 0;
    tcb_trace_stats_t st;
    char err[512];
    if (tcb_trace_load(path, &ids, &n, &st, err, sizeof err) != 0) {
        fprintf(stderr, "tiercache-bench: %s\n", err);
        return -1;
    }
    char skipped[256];
    if (*tcb_trace_skipped(&st, skipped, sizeof skipped))
        tcb_warn("trace %s: %s", path, skipped);
    if (st.hashed)
        tcb_status(o, "%s: %llu of %llu keys are strings, hashed into ids", path,
                   (unsigned long long)st.hashed, (unsigned long long)st.keys);
    uint64_t distinct = tcb_trace_distinct(ids, n, &uniq);
    free(uniq);
    uint64_t caps[2 * TCB_MAX_LIST];
    int nc = capacities(o, distinct, caps), rc = 0;
    for (int i = 0; i < nc && rc == 0 && !tcb_interrupted; i++) {
        replay_row_t *r = &rows[(*nrows)];
        memset(r, 0, sizeof *r);
        trace_name(path, r->trace, sizeof r->trace);
        r->requests = n;
        r->distinct = distinct;
        r->hashed = st.hashed;
        r->entries = caps[i];
        r->shards = o->shards;
        r->ref = reference_for(r->trace, r->entries, o->policy);
        r->miss_lru = exact_lru(ids, n, caps[i]);
        rc = library_lru(o, ids, n, r);
        if (rc == 0) {
            check_fill(r);
            if (!o->json)
                print_row(r);
            (*nrows)++;
        }
    }
    free(ids);
    return rc;
}

int tcb_cmd_replay(const tcb_opts_t *o) {
    replay_row_t *rows = calloc((size_t)o->ntraces * 2 * TCB_MAX_LIST, sizeof *rows);
    if (!rows)
        return 1;
    int n = 0, rc = 0;
    if (!o->json)
        print_header(o->policy);
    for (int i = 0; i < o->ntraces && rc == 0 && !tcb_interrupted; i++)
        rc = replay_trace(o, o->traces[i], rows, &n);
    if (o->json)
        json_rows(rows, n, o->policy);
    else {
        printf("\nmiss ratio = misses / requests; diff = tiercache - exact LRU, and vs it =\n"
               "tiercache - the README's figure, in percentage points.\n\n");
        tcb_warnings_print(stdout);
    }
    free(rows);
    return rc == 0 && !tcb_interrupted ? 0 : 1;
}
