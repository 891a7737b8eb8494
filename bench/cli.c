/*
 * cli.c - tiercache-bench's command line: subcommand, options, defaults, --help.
 *
 * The first word that is not an option picks the subcommand (compare when there is none);
 * for replay, the remaining words are trace files. Options may come before or after the
 * subcommand. Defaults depend on the subcommand (micro measures 1 s per point, sweep runs
 * shorter points than compare), but only for options the user did not give: `given`
 * records which ones were explicit. Every rejected value names its option.
 */
#include "bench.h"

#include "units.h"

#include <getopt.h>
#include <string.h>
#include <unistd.h>

enum {
    OPT_HOT_KEYS = 256,
    OPT_HOT_SHARE,
    OPT_HOT_SHIFT,
    OPT_WARMUP,
    OPT_SHARDS,
    OPT_SOURCE,
    OPT_TTL,
    OPT_NO_PRELOAD,
    OPT_SEED,
    OPT_OUT,
    OPT_SIZES,
    OPT_ENTRIES,
    OPT_PCT,
    OPT_COUNT,
    OPT_SHM_FD,
    OPT_PREFIX,
    OPT_CHANNEL,
    OPT_PROCS,
    OPT_LOAD,
    OPT_FAIL_AFTER,
    OPT_MAX_STALE,
    OPT_BACKOFF,
    OPT_SLOT,
    OPT_FOREIGN,
    OPT_FOREIGN_OPS,
    OPT_TRACKING,
};

static const struct option long_opts[] = {
    {"redis", required_argument, NULL, 'r'},
    {"keys", required_argument, NULL, 'n'},
    {"workload", required_argument, NULL, 'w'},
    {"zipf", required_argument, NULL, 's'},
    {"hot-keys", required_argument, NULL, OPT_HOT_KEYS},
    {"hot-share", required_argument, NULL, OPT_HOT_SHARE},
    {"hot-shift", required_argument, NULL, OPT_HOT_SHIFT},
    {"writes", required_argument, NULL, 'W'},
    {"value-size", required_argument, NULL, 'v'},
    {"threads", required_argument, NULL, 't'},
    {"duration", required_argument, NULL, 'd'},
    {"ops", required_argument, NULL, 'o'},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"l1", required_argument, NULL, 'l'},
    {"shards", required_argument, NULL, OPT_SHARDS},
    {"source-latency", required_argument, NULL, OPT_SOURCE},
    {"ttl", required_argument, NULL, OPT_TTL},
    {"no-preload", no_argument, NULL, OPT_NO_PRELOAD},
    {"seed", required_argument, NULL, OPT_SEED},
    {"json", no_argument, NULL, 'j'},
    {"quiet", no_argument, NULL, 'q'},
    {"out", required_argument, NULL, OPT_OUT},
    {"sizes", required_argument, NULL, OPT_SIZES},
    {"entries", required_argument, NULL, OPT_ENTRIES},
    {"pct", required_argument, NULL, OPT_PCT},
    {"count", required_argument, NULL, OPT_COUNT},
    {"help", no_argument, NULL, 'h'},
    {"shm-fd", required_argument, NULL, OPT_SHM_FD},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"channel", required_argument, NULL, OPT_CHANNEL},
    {"procs", required_argument, NULL, OPT_PROCS},
    {"load-ms", required_argument, NULL, OPT_LOAD},
    {"fail-after", required_argument, NULL, OPT_FAIL_AFTER},
    {"max-stale", required_argument, NULL, OPT_MAX_STALE},
    {"backoff", required_argument, NULL, OPT_BACKOFF},
    {"slot", required_argument, NULL, OPT_SLOT},
    {"foreign", no_argument, NULL, OPT_FOREIGN},
    {"foreign-ops", required_argument, NULL, OPT_FOREIGN_OPS},
    {"tracking", required_argument, NULL, OPT_TRACKING},
    {NULL, 0, NULL, 0},
};

void tcb_cli_usage(FILE *f) {
    fputs(
        "tiercache-bench: how much faster, and how much lighter on Redis, is a service\n"
        "with tiercache's in-process L1 in front of Redis?\n"
        "\n"
        "Usage: tiercache-bench [COMMAND] [OPTIONS]\n"
        "\n"
        "With no command it runs `compare` against a throwaway redis-server that it starts\n"
        "on a private unix socket (redis-server must be on PATH) and stops at the end.\n"
        "\n"
        "Commands:\n"
        "  compare        redis-only vs tiercache on the same workload, Redis and threads;\n"
        "                 prints a table of throughput, latency, hit rates, Redis cost\n"
        "                 (the default)\n"
        "  sweep          tiercache at L1 sizes from 0.1% to 20% of the keys: miss-ratio\n"
        "                 and throughput curves as CSV, JSON and a PNG (with gnuplot)\n"
        "  miss           the miss path: tiercache with L1 off vs a raw hiredis GET, 1 thread\n"
        "  replay TRACE.. the L1 alone on an access trace (one decimal key per line, gzip\n"
        "                 or text); miss ratio next to an exact LRU. Needs --entries or --pct\n"
        "  micro          the L1 alone: get-hit, set and 90/10 mix at 1..N threads (ns/op,\n"
        "                 scaling) and L1 memory per entry\n"
        "  inval          two processes: publish-to-eviction latency and the invalidation\n"
        "                 rate one listener sustains; with --foreign the writer is a raw\n"
        "                 client (SET, DEL, PEXPIRE), seen through Redis client tracking\n"
        "  stampede       one hot key expiring under many threads (and --procs processes):\n"
        "                 loads and latency for naive cache-aside, single-flight,\n"
        "                 stale-while-revalidate and XFetch early refresh\n"
        "  failing-source the source starts failing: a timeline of fresh, stale and error\n"
        "                 answers with fail-safe off and on, how long stale was served\n"
        "  bulk           tc_mget / tc_mset of N keys against N tc_get / tc_set calls and\n"
        "                 raw hiredis, every read an L1 miss; Redis round trips per call\n"
        "  patterns       tc_invalidate_tag / _prefix of 100k keys, namespace bump, clear:\n"
        "                 caller time, another client's Redis latency meanwhile, and whether\n"
        "                 another cache's L1 still serves any of the keys afterwards\n"
        "  warm           cold start: L1 hit rate over the first seconds of a Zipf workload,\n"
        "                 from empty and after tc_warm of a previous instance's tc_hot_keys\n"
        "\n"
        "Where to run:\n"
        "  -r, --redis URL        use an existing Redis: redis://[user:pass@]host:port[/db]\n"
        "                         or unix:///path/redis.sock[?db=N&password=P]. Only keys\n"
        "                         under the run's own prefix tcbench:<pid>: are written, and\n"
        "                         they are deleted at exit\n"
        "\n"
        "Workload (compare, sweep, miss):\n"
        "  -n, --keys N           distinct keys (default 1M; k, M suffixes)\n"
        "  -w, --workload W       zipf (default), uniform, hotset, or trace:FILE\n"
        "  -s, --zipf S           Zipf exponent (default 0.99)\n"
        "      --hot-keys PCT     hotset: hot set size, % of the keys (default 1)\n"
        "      --hot-share PCT    hotset: % of requests that go to the hot set (default 90)\n"
        "      --hot-shift DUR    hotset: the hot set moves this often (default 2s)\n"
        "  -W, --writes PCT       % of operations that are writes (default 0)\n"
        "  -v, --value-size SPEC  100 (fixed, default), 64-1024 (uniform) or exp:512\n"
        "                         (exponential with that mean); keys are 17 bytes\n"
        "  -t, --threads N        worker threads, one Redis connection each (default: CPUs)\n"
        "  -d, --duration DUR     measured time per mode (default 8s; bare number = s)\n"
        "  -o, --ops N            measure N operations instead of a duration\n"
        "      --warmup DUR       unmeasured run before each measurement (default 3s)\n"
        "  -l, --l1 SIZE          L1 size: a share of the keys (10%, the default) or a byte\n"
        "                         budget (64MiB, 1GB, 4096)\n"
        "      --shards N         L1 shards, a power of two (default: library default;\n"
        "                         replay: 1, so sharding does not blur the LRU figure)\n"
        "      --source-latency D time to load one value from the simulated source of\n"
        "                         truth on a Redis miss (default 1ms; 0 allowed; bare = ms)\n"
        "      --ttl DUR          TTL of cached values (default 10m; bare = s; stampede and\n"
        "                         failing-source: default 500ms, bare = ms)\n"
        "      --no-preload       start with Redis empty (default: every key is written to\n"
        "                         Redis before the run, so the comparison is steady state)\n"
        "      --seed N           random seed (default 1); same seed, same key sequence\n"
        "\n"
        "Sweep, replay, inval:\n"
        "      --sizes LIST       sweep: L1 sizes in % of the keys\n"
        "                         (default 0.1,0.2,0.5,1,2,5,10,20)\n"
        "      --out PREFIX       sweep: write PREFIX.csv, PREFIX.json, PREFIX.png\n"
        "                         (default tiercache-sweep)\n"
        "      --entries LIST     replay: L1 capacities in entries, e.g. 568 or 500,1000\n"
        "      --pct LIST         replay: capacities as % of the trace's distinct keys\n"
        "      --count N          inval: writes timed for the latency (default 2000)\n"
        "      --foreign          inval: the writer is a raw hiredis client, not tiercache; "
        "the\n"
        "                         reader caches plain keys with Redis client tracking on\n"
        "      --foreign-ops LIST inval --foreign: the raw commands, rotated: set, del, "
        "pexpire\n"
        "                         or a comma list of them (default set,del,pexpire)\n"
        "      --tracking MODE    inval --foreign: the reader's tracking, bcast (default: "
        "every\n"
        "                         write under the prefix) or default (the keys it has read)\n"
        "\n"
        "Freshness (stampede, failing-source; -t, -d and --ttl apply too):\n"
        "      --load-ms DUR      time one load from the source takes (default 50; bare = ms)\n"
        "      --procs P          stampede: processes sharing the hot key, each with -t\n"
        "                         threads (default 1; the bench re-executes itself)\n"
        "      --fail-after DUR   failing-source: every load fails from then on (default 2s;\n"
        "                         bare = s)\n"
        "      --max-stale DUR    failing-source: fail-safe's longest stale age (default 3s)\n"
        "      --backoff DUR      failing-source: fail-safe's back-off after a failed reload\n"
        "                         (default 500; bare = ms)\n"
        "\n"
        "Many keys (bulk, patterns, warm; -v applies too):\n"
        "  bulk                   -n keys per call (default 100), -o rounds (default 200k\n"
        "                         keys / N, 20 to 300)\n"
        "  patterns               -n keys in the invalidated group (default 100k)\n"
        "  warm                   -n working set (default 50k), --l1 (10%), -s, -t (default\n"
        "                         1), -d per run (3s), --warmup: how long the previous\n"
        "                         instance ran before tc_hot_keys (2s)\n"
        "\n"
        "Output:\n"
        "  -j, --json             print results as JSON on stdout (status stays on stderr)\n"
        "  -q, --quiet            no status lines or progress bar\n"
        "  -h, --help             this text\n"
        "\n"
        "Examples:\n"
        "  tiercache-bench                                  the default comparison\n"
        "  tiercache-bench --redis redis://127.0.0.1:6379 -t 8 -d 30s\n"
        "  tiercache-bench -w hotset -W 5 --l1 32MiB\n"
        "  tiercache-bench sweep --out /tmp/sweep\n"
        "  tiercache-bench replay ../shared/traces/lirs-sprite.txt.gz --entries 707\n"
        "  tiercache-bench micro -t 2\n"
        "  tiercache-bench inval\n"
        "  tiercache-bench inval --foreign --tracking default\n"
        "  tiercache-bench stampede --procs 2 -t 16\n"
        "  tiercache-bench failing-source --max-stale 5s\n"
        "  tiercache-bench bulk -n 100\n"
        "  tiercache-bench patterns -n 100k\n"
        "  tiercache-bench warm -n 50k -d 3s\n",
        f);
}

void tcb_opts_defaults(tcb_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->cmd = TCB_CMD_COMPARE;
    o->keys = 1000000;
    o->wl_kind = TCB_WL_ZIPF;
    o->zipf_s = 0.99;
    o->hot_frac = 0.01;
    o->hot_share = 0.90;
    o->hot_shift_ns = 2000000000ull;
    o->vsize.kind = TCB_VS_FIXED;
    o->vsize.a = 100;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = ncpu > 0 ? (unsigned)ncpu : 2;
    o->duration_ns = 8000000000ull;
    o->warmup_ns = 3000000000ull;
    o->l1_pct = 10.0;
    o->source_ns = 1000000;
    o->ttl_ms = 600000;
    o->preload = 1;
    o->seed = 1;
    o->out_prefix = "tiercache-sweep";
    static const double sizes[] = {0.1, 0.2, 0.5, 1, 2, 5, 10, 20};
    o->nsweep = (int)(sizeof sizes / sizeof sizes[0]);
    memcpy(o->sweep_pcts, sizes, sizeof sizes);
    o->inval_count = 2000;
    o->foreign_ops = TCB_FOREIGN_ALL;
    o->tracking = TCB_TRACKING_BCAST;
    o->reader_shm_fd = -1;
    o->procs = 1;
    o->load_ns = 50000000ull;
    o->fail_after_ns = 2000000000ull;
    o->max_stale_ns = 3000000000ull;
    o->backoff_ns = 500000000ull;
}

static int bad(const char *opt, const char *val, const char *want) {
    if (val && *val)
        fprintf(stderr, "tiercache-bench: %s %s: %s (see --help)\n", opt, val, want);
    else
        fprintf(stderr, "tiercache-bench: %s: %s (see --help)\n", opt, want);
    return -1;
}

static int parse_workload(tcb_opts_t *o, const char *v) {
    if (strcmp(v, "zipf") == 0)
        o->wl_kind = TCB_WL_ZIPF;
    else if (strcmp(v, "uniform") == 0)
        o->wl_kind = TCB_WL_UNIFORM;
    else if (strcmp(v, "hotset") == 0)
        o->wl_kind = TCB_WL_HOTSET;
    else if (strncmp(v, "trace:", 6) == 0 && v[6]) {
        o->wl_kind = TCB_WL_TRACE;
        o->trace_path = v + 6;
    } else
        return bad("--workload", v, "expected zipf, uniform, hotset or trace:FILE");
    return 0;
}

static int parse_l1(tcb_opts_t *o, const char *v) {
    size_t n = strlen(v);
    if (n > 1 && v[n - 1] == '%') {
        char buf[64];
        if (n >= sizeof buf)
            return bad("--l1", v, "too long");
        memcpy(buf, v, n - 1);
        buf[n - 1] = '\0';
        if (tcb_parse_double(buf, 0.0, 100.0, &o->l1_pct) != 0)
            return bad("--l1", v, "a percentage must be between 0% and 100%");
        o->l1_in_bytes = 0;
    } else {
        if (tcb_parse_bytes(v, &o->l1_bytes) != 0)
            return bad("--l1", v, "expected a share of the keys (10%) or bytes (64MiB)");
        o->l1_in_bytes = 1;
    }
    o->given |= TCB_GIVEN_L1;
    return 0;
}

static int parse_pct(const char *opt, const char *v, double *frac) {
    double p;
    if (tcb_parse_double(v, 0.0, 100.0, &p) != 0)
        return bad(opt, v, "expected a percentage between 0 and 100");
    *frac = p / 100.0;
    return 0;
}

static int parse_uint(const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
    if (tcb_parse_count(v, out) != 0 || *out < lo || *out > hi) {
        char want[96];
        snprintf(want, sizeof want, "expected a whole number from %llu to %llu",
                 (unsigned long long)lo, (unsigned long long)hi);
        return bad(opt, v, want);
    }
    return 0;
}

static int parse_dur(const char *opt, const char *v, uint64_t bare, uint64_t *out) {
    if (tcb_parse_duration(v, bare, out) != 0)
        return bad(opt, v, "expected a duration such as 500ms, 10s or 2m");
    return 0;
}

static int parse_entries(tcb_opts_t *o, const char *v) {
    double tmp[TCB_MAX_LIST];
    int n = tcb_parse_double_list(v, 1, 1e12, tmp, TCB_MAX_LIST);
    if (n < 0)
        return bad("--entries", v, "expected entry counts such as 568 or 500,1000");
    for (int i = 0; i < n; i++) {
        if (tmp[i] != (double)(uint64_t)tmp[i])
            return bad("--entries", v, "entry counts are whole numbers");
        o->entries[i] = (uint64_t)tmp[i];
    }
    o->nentries = n;
    return 0;
}

/* The bit of one --foreign-ops word (len bytes at w), or 0. */
static unsigned foreign_op_bit(const char *w, size_t len) {
    static const struct {
        const char *name;
        tcb_foreign_op_t op;
    } ops[] = {
        {"set", TCB_FOREIGN_SET}, {"del", TCB_FOREIGN_DEL}, {"pexpire", TCB_FOREIGN_PEXPIRE}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strlen(ops[i].name) == len && memcmp(w, ops[i].name, len) == 0)
            return ops[i].op;
    return 0;
}

/* --foreign-ops: a comma list of set, del and pexpire, each once, no empty item. */
static int parse_foreign_ops(tcb_opts_t *o, const char *v) {
    unsigned bits = 0;
    for (const char *p = v;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        unsigned bit = foreign_op_bit(p, len);
        if (!bit || (bits & bit))
            return bad("--foreign-ops", v,
                       "expected set, del, pexpire or a comma list of them");
        bits |= bit;
        if (!end)
            break;
        p = end;
    }
    o->foreign_ops = bits;
    o->given |= TCB_GIVEN_FOR_OPS;
    return 0;
}

static int parse_tracking(tcb_opts_t *o, const char *v) {
    if (strcmp(v, "bcast") == 0)
        o->tracking = TCB_TRACKING_BCAST;
    else if (strcmp(v, "default") == 0)
        o->tracking = TCB_TRACKING_DEFAULT;
    else
        return bad("--tracking", v, "expected bcast or default");
    o->given |= TCB_GIVEN_TRACKING;
    return 0;
}

/* inval's foreign-writer options. Returns 0, -1 on a bad value. */
static int apply_foreign_opt(tcb_opts_t *o, int c, const char *v) {
    switch (c) {
    case OPT_FOREIGN:
        o->foreign = 1;
        return 0;
    case OPT_FOREIGN_OPS:
        return parse_foreign_ops(o, v);
    case OPT_TRACKING:
        return parse_tracking(o, v);
    }
    return -1;
}

/* The freshness scenarios' options. Returns 0, -1 on a bad value. */
static int apply_fresh_opt(tcb_opts_t *o, int c, const char *v) {
    uint64_t u;
    switch (c) {
    case OPT_PROCS:
        if (parse_uint("--procs", v, 1, 64, &u) != 0)
            return -1;
        o->procs = (unsigned)u;
        return 0;
    case OPT_LOAD:
        if (parse_dur("--load-ms", v, 1000000ull, &o->load_ns) != 0)
            return -1;
        return o->load_ns <= 60000000000ull ? 0 : bad("--load-ms", v, "at most 60 s");
    case OPT_FAIL_AFTER:
        return parse_dur("--fail-after", v, 1000000000ull, &o->fail_after_ns);
    case OPT_MAX_STALE:
        if (parse_dur("--max-stale", v, 1000000000ull, &o->max_stale_ns) != 0)
            return -1;
        return o->max_stale_ns >= 1000000ull ? 0 : bad("--max-stale", v, "at least 1ms");
    case OPT_BACKOFF:
        if (parse_dur("--backoff", v, 1000000ull, &o->backoff_ns) != 0)
            return -1;
        if (o->backoff_ns < 1000000ull || o->backoff_ns > 3600000000000ull)
            return bad("--backoff", v, "expected 1ms to 1h");
        return 0;
    case OPT_SLOT:
        if (parse_uint("--slot", v, 0, 63, &u) != 0)
            return -1;
        o->worker_slot = (unsigned)u;
        return 0;
    }
    return apply_foreign_opt(o, c, v);
}

/* Options shared by every command. Returns 0, -1 on a bad value. */
static int apply_opt(tcb_opts_t *o, int c, const char *v) {
    uint64_t u;
    switch (c) {
    case 'r':
        o->redis_url = v;
        return 0;
    case 'n':
        o->given |= TCB_GIVEN_KEYS;
        return parse_uint("--keys", v, 1, 1ull << 32, &o->keys);
    case 'w':
        return parse_workload(o, v);
    case 's':
        return tcb_parse_double(v, 0.0, 20.0, &o->zipf_s) ? bad("--zipf", v, "expected 0..20")
                                                          : 0;
    case OPT_HOT_KEYS:
        if (parse_pct("--hot-keys", v, &o->hot_frac) != 0 || o->hot_frac <= 0)
            return bad("--hot-keys", v, "must be above 0%");
        return 0;
    case OPT_HOT_SHARE:
        return parse_pct("--hot-share", v, &o->hot_share);
    case OPT_HOT_SHIFT:
        if (parse_dur("--hot-shift", v, 1000000000ull, &o->hot_shift_ns) != 0)
            return -1;
        return o->hot_shift_ns ? 0 : bad("--hot-shift", v, "must be above 0");
    case 'W':
        return parse_pct("--writes", v, &o->write_frac);
    case 'v':
        o->given |= TCB_GIVEN_VSIZE;
        return tcb_vsize_parse(v, &o->vsize)
                   ? bad("--value-size", v, "expected 100, 64-1024 or exp:512 (max 16MiB)")
                   : 0;
    case 't':
        o->given |= TCB_GIVEN_THREADS;
        if (parse_uint("--threads", v, 1, 1024, &u) != 0)
            return -1;
        o->threads = (unsigned)u;
        return 0;
    case 'd':
        o->given |= TCB_GIVEN_DURATION;
        if (parse_dur("--duration", v, 1000000000ull, &o->duration_ns) != 0)
            return -1;
        return o->duration_ns ? 0 : bad("--duration", v, "must be above 0");
    case 'o':
        return parse_uint("--ops", v, 1, UINT64_MAX / 2, &o->ops);
    case OPT_WARMUP:
        o->given |= TCB_GIVEN_WARMUP;
        return parse_dur("--warmup", v, 1000000000ull, &o->warmup_ns);
    case 'l':
        return parse_l1(o, v);
    case OPT_SHARDS:
        o->given |= TCB_GIVEN_SHARDS;
        if (parse_uint("--shards", v, 1, 65536, &u) != 0 || (u & (u - 1)))
            return bad("--shards", v, "expected a power of two (1, 2, 4, ...)");
        o->shards = (unsigned)u;
        return 0;
    case OPT_SOURCE:
        return parse_dur("--source-latency", v, 1000000ull, &o->source_ns);
    case OPT_TTL: /* parsed once the command is known: its bare unit depends on it */
        o->given |= TCB_GIVEN_TTL;
        o->ttl_arg = v;
        return 0;
    case OPT_NO_PRELOAD:
        o->preload = 0;
        return 0;
    case OPT_SEED:
        return parse_uint("--seed", v, 0, UINT64_MAX - 1, &o->seed);
    case 'j':
        o->json = 1;
        return 0;
    case 'q':
        o->quiet = 1;
        return 0;
    case OPT_OUT:
        o->out_prefix = v;
        return *v ? 0 : bad("--out", v, "must not be empty");
    case OPT_SIZES:
        o->nsweep = tcb_parse_double_list(v, 0.0001, 100.0, o->sweep_pcts, TCB_MAX_LIST);
        return o->nsweep > 0 ? 0 : bad("--sizes", v, "expected percentages such as 1,5,10");
    case OPT_ENTRIES:
        return parse_entries(o, v);
    case OPT_PCT:
        o->nreplay_pcts = tcb_parse_double_list(v, 0.0001, 100.0, o->replay_pcts, TCB_MAX_LIST);
        return o->nreplay_pcts > 0 ? 0 : bad("--pct", v, "expected percentages such as 1,10");
    case OPT_COUNT:
        return parse_uint("--count", v, 1, 10000000, &o->inval_count);
    case OPT_SHM_FD:
        if (parse_uint("--shm-fd", v, 0, 65535, &u) != 0)
            return -1;
        o->reader_shm_fd = (int)u;
        return 0;
    case OPT_PREFIX:
        o->reader_prefix = v;
        return 0;
    case OPT_CHANNEL:
        o->reader_channel = v;
        return 0;
    }
    return apply_fresh_opt(o, c, v);
}

static int parse_command(tcb_opts_t *o, const char *w) {
    static const struct {
        const char *name;
        tcb_cmd_t cmd;
    } cmds[] = {{"compare", TCB_CMD_COMPARE},
                {"sweep", TCB_CMD_SWEEP},
                {"miss", TCB_CMD_MISS},
                {"replay", TCB_CMD_REPLAY},
                {"micro", TCB_CMD_MICRO},
                {"inval", TCB_CMD_INVAL},
                {"inval-reader", TCB_CMD_INVAL_READER},
                {"stampede", TCB_CMD_STAMPEDE},
                {"stampede-worker", TCB_CMD_STAMPEDE_WORKER},
                {"failing-source", TCB_CMD_FAILING},
                {"bulk", TCB_CMD_BULK},
                {"patterns", TCB_CMD_PATTERNS},
                {"warm", TCB_CMD_WARM},
                {"help", TCB_CMD_HELP}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(w, cmds[i].name) == 0) {
            o->cmd = cmds[i].cmd;
            return 0;
        }
    }
    fprintf(stderr,
            "tiercache-bench: unknown command '%s' (compare, sweep, miss, replay, micro, "
            "inval, stampede, failing-source, bulk, patterns, warm; see --help)\n",
            w);
    return -1;
}

static int is_fresh_cmd(tcb_cmd_t c) {
    return c == TCB_CMD_STAMPEDE || c == TCB_CMD_STAMPEDE_WORKER || c == TCB_CMD_FAILING;
}

/* --ttl: a bare number is seconds for the long-lived caches of compare and sweep, and
 * milliseconds for the freshness scenarios, whose TTLs are a fraction of a second. */
static int parse_ttl(tcb_opts_t *o) {
    uint64_t u;
    if (!(o->given & TCB_GIVEN_TTL)) {
        if (is_fresh_cmd(o->cmd))
            o->ttl_ms = 500;
        return 0;
    }
    uint64_t bare = is_fresh_cmd(o->cmd) ? 1000000ull : 1000000000ull;
    if (parse_dur("--ttl", o->ttl_arg, bare, &u) != 0 || u < 1000000ull)
        return bad("--ttl", o->ttl_arg, "must be at least 1ms");
    o->ttl_ms = u / 1000000ull;
    return 0;
}

static void fresh_defaults(tcb_opts_t *o) {
    int stampede = o->cmd == TCB_CMD_STAMPEDE;
    if (!(o->given & TCB_GIVEN_THREADS))
        o->threads = stampede ? 32 : 4;
    if (!(o->given & TCB_GIVEN_DURATION))
        o->duration_ns = stampede ? 5000000000ull : 8000000000ull;
}

/* bulk, patterns, warm: -n counts keys per call, keys in the group, the working set. */
static void multi_defaults(tcb_opts_t *o) {
    if (!(o->given & TCB_GIVEN_KEYS))
        o->keys = o->cmd == TCB_CMD_BULK ? 100 : o->cmd == TCB_CMD_PATTERNS ? 100000 : 50000;
    if (o->cmd != TCB_CMD_WARM)
        return;
    if (!(o->given & TCB_GIVEN_THREADS))
        o->threads = 1;
    if (!(o->given & TCB_GIVEN_DURATION))
        o->duration_ns = 3000000000ull;
    if (!(o->given & TCB_GIVEN_WARMUP))
        o->warmup_ns = 2000000000ull;
}

/* Defaults that depend on the command, for options the user left alone. */
static void command_defaults(tcb_opts_t *o) {
    if (o->cmd == TCB_CMD_BULK || o->cmd == TCB_CMD_PATTERNS || o->cmd == TCB_CMD_WARM)
        multi_defaults(o);
    if (o->cmd == TCB_CMD_STAMPEDE || o->cmd == TCB_CMD_FAILING)
        fresh_defaults(o);
    if (o->cmd == TCB_CMD_SWEEP) {
        if (!(o->given & TCB_GIVEN_DURATION))
            o->duration_ns = 3000000000ull;
        if (!(o->given & TCB_GIVEN_WARMUP))
            o->warmup_ns = 2000000000ull;
    }
    if (o->cmd == TCB_CMD_MICRO && !(o->given & TCB_GIVEN_DURATION))
        o->duration_ns = 1000000000ull;
    if (o->cmd == TCB_CMD_INVAL && !(o->given & TCB_GIVEN_DURATION))
        o->duration_ns = 3000000000ull;
    if (o->cmd == TCB_CMD_MISS) {
        if (!(o->given & TCB_GIVEN_THREADS))
            o->threads = 1;
        if (!(o->given & TCB_GIVEN_DURATION))
            o->duration_ns = 10000000000ull;
        if (!(o->given & TCB_GIVEN_WARMUP))
            o->warmup_ns = 1000000000ull;
        o->l1_in_bytes = 0;
        o->l1_pct = 0.0;
        o->write_frac = 0.0;
    }
    if (o->cmd == TCB_CMD_REPLAY && !(o->given & TCB_GIVEN_SHARDS))
        o->shards = 1;
}

/* --foreign belongs to inval, and its options to --foreign: a stray one is a mistake. */
static int check_foreign(const tcb_opts_t *o) {
    int inval = o->cmd == TCB_CMD_INVAL || o->cmd == TCB_CMD_INVAL_READER;
    if (o->foreign && !inval)
        return bad("--foreign", "", "only with inval");
    if ((o->given & TCB_GIVEN_TRACKING) && !o->foreign)
        return bad("--tracking", "", "only with inval --foreign");
    if ((o->given & TCB_GIVEN_FOR_OPS) && !o->foreign)
        return bad("--foreign-ops", "", "only with inval --foreign");
    return 0;
}

static int check_positionals(tcb_opts_t *o, int argc, char **argv, int first) {
    if (o->cmd == TCB_CMD_REPLAY) {
        for (int i = first; i < argc; i++) {
            if (o->ntraces == TCB_MAX_TRACES)
                return bad("replay", argv[i], "at most 16 traces per run");
            o->traces[o->ntraces++] = argv[i];
        }
        if (o->ntraces == 0)
            return bad("replay", "", "give at least one trace file");
        if (o->nentries == 0 && o->nreplay_pcts == 0)
            return bad("replay", "", "give the L1 capacity with --entries N or --pct P");
        return 0;
    }
    if (first < argc)
        return bad(argv[first], "", "unexpected argument");
    return 0;
}

int tcb_cli_parse(int argc, char **argv, tcb_opts_t *o) {
    tcb_opts_defaults(o);
    optind = 0; /* glibc: full re-initialisation, so tests can parse repeatedly */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "r:n:w:s:W:v:t:d:o:l:jqh", long_opts, NULL)) != -1) {
        if (c == 'h') {
            tcb_cli_usage(stdout);
            return 1;
        }
        if (c == '?' || c == ':') {
            const char *arg = argv[optind - 1];
            fprintf(stderr,
                    "tiercache-bench: %s: unknown option or missing value (see --help)\n",
                    arg ? arg : "?");
            return -1;
        }
        if (apply_opt(o, c, optarg) != 0)
            return -1;
    }
    int first = optind;
    if (first < argc && parse_command(o, argv[first++]) != 0)
        return -1;
    if (o->cmd == TCB_CMD_HELP) {
        tcb_cli_usage(stdout);
        return 1;
    }
    command_defaults(o);
    if (parse_ttl(o) != 0)
        return -1;
    if (o->cmd == TCB_CMD_FAILING && o->fail_after_ns >= o->duration_ns)
        return bad("--fail-after", "", "must be shorter than --duration");
    if (o->cmd == TCB_CMD_MICRO && (o->wl_kind == TCB_WL_TRACE || o->wl_kind == TCB_WL_HOTSET))
        return bad("--workload", "", "micro draws resident keys from zipf or uniform");
    if (check_foreign(o) != 0)
        return -1;
    if (o->cmd == TCB_CMD_WARM && (o->wl_kind == TCB_WL_TRACE || o->wl_kind == TCB_WL_HOTSET))
        return bad("--workload", "", "warm draws keys from zipf or uniform");
    if (o->cmd == TCB_CMD_BULK && o->keys > 100000)
        return bad("--keys", "", "bulk: keys per call, at most 100k");
    return check_positionals(o, argc, argv, first);
}
