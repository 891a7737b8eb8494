/*
 * cli.c - tiercache-bench's command line: subcommand, options, defaults.
 *
 * The first word that is not an option picks the subcommand (compare when there is none);
 * for replay, the remaining words are trace files. Options may come before or after the
 * subcommand. Defaults depend on the subcommand (micro measures 1 s per point, sweep runs
 * shorter points than compare), but only for options the user did not give: `given`
 * records which ones were explicit. Every rejected value names its option. help.c holds
 * the text of --help.
 *
 * One unit rule for every flag, the library's: every number is read by the library's own
 * parser (src/units.h, the code behind the TIERCACHE_* variables), so "64MiB" and "30s"
 * mean here what they mean there, and a bare duration is milliseconds whatever the flag.
 * What the bench adds is only around that parser, never a second one: 1000-based count
 * suffixes ("1M" keys: the number before the suffix is the library's), percentages
 * written with or without '%', comma lists, and "us" for --source-latency alone (the
 * library stops at milliseconds; the count before "us" is the library's).
 */
#include "bench.h"

#include "tiercache.h"
#include "units.h" /* src/units.h: the library's parser of sizes, durations, numbers */

#include <getopt.h>
#include <math.h>
#include <string.h>
#include <strings.h>
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
    OPT_VERSION,
    OPT_DB,
    OPT_BATCH,
    OPT_DB_SYNC,
    OPT_POLICY,
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
    {"version", no_argument, NULL, OPT_VERSION},
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
    {"db", required_argument, NULL, OPT_DB},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"db-sync", required_argument, NULL, OPT_DB_SYNC},
    {"policy", required_argument, NULL, OPT_POLICY},
    {NULL, 0, NULL, 0},
};

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

/* ---- numbers: the library's parser, with the bench's suffixes and lists around it ---- */

/* "1000000", "1M", "250k", "1.5k": a whole count. A bare count is the library's exact
 * integer; a suffixed one is the library's decimal times 1000, 10^6 or 10^9. 0 or -1. */
static int parse_count(const char *s, uint64_t *out) {
    static const struct {
        char suffix;
        double mult;
    } units[] = {{'k', 1e3}, {'K', 1e3}, {'M', 1e6}, {'G', 1e9}};
    size_t len = strlen(s);
    for (size_t i = 0; len > 1 && i < sizeof units / sizeof units[0]; i++) {
        if (s[len - 1] != units[i].suffix)
            continue;
        char num[32];
        double v;
        if (len - 1 >= sizeof num)
            return -1;
        memcpy(num, s, len - 1);
        num[len - 1] = '\0';
        if (tc__units_decimal(num, false, &v) != TC__NUM_OK)
            return -1;
        v *= units[i].mult;
        if (v != floor(v) || v >= 18446744073709551615.0)
            return -1;
        *out = (uint64_t)v;
        return 0;
    }
    return tc__units_count(s, out) == TC__NUM_OK ? 0 : -1;
}

/* A decimal in [lo, hi] ("0.99"; no sign, no exponent). 0 or -1. */
static int parse_double(const char *s, double lo, double hi, double *out) {
    double v;
    if (tc__units_decimal(s, false, &v) != TC__NUM_OK || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* A percentage, "10" or "10%", in [lo, hi] percent. 0 or -1. */
static int parse_percent(const char *s, double lo, double hi, double *out) {
    double v;
    size_t len = strlen(s);
    int pct = len > 1 && s[len - 1] == '%';
    if (tc__units_decimal(s, pct, &v) != TC__NUM_OK)
        return -1;
    v = pct ? v * 100.0 : v;
    if (!(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* Splits a comma list into buf (512 bytes) and up to cap items; returns the count, or -1
 * for an empty item (",,", a leading or trailing comma) or too many. */
static int split_list(const char *s, char *buf, char **items, int cap) {
    size_t len = strlen(s);
    if (!len || len >= 512 || strstr(s, ",,") || s[0] == ',' || s[len - 1] == ',')
        return -1;
    memcpy(buf, s, len + 1);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == cap)
            return -1;
        items[n++] = tok;
    }
    return n;
}

/* "0.1,1,10": up to cap percentages in [lo, hi]; returns the count, or -1. */
static int parse_percent_list(const char *s, double lo, double hi, double *out, int cap) {
    char buf[512], *items[TCB_MAX_LIST];
    int n = split_list(s, buf, items, cap < TCB_MAX_LIST ? cap : TCB_MAX_LIST);
    for (int i = 0; i < n; i++)
        if (parse_percent(items[i], lo, hi, &out[i]) != 0)
            return -1;
    return n;
}

/* The library's duration (bare = ms) in nanoseconds; with us_ok, also "<count>us". */
static int parse_duration_ns(const char *s, int us_ok, uint64_t *out_ns) {
    uint64_t v;
    size_t len = strlen(s);
    if (us_ok && len > 2 && strcasecmp(s + len - 2, "us") == 0) {
        char num[32];
        size_t n = len - 2;
        if (s[n - 1] == ' ') /* "50 us", as the library allows "50 ms" */
            n--;
        if (n == 0 || n >= sizeof num)
            return -1;
        memcpy(num, s, n);
        num[n] = '\0';
        if (tc__units_count(num, &v) != TC__NUM_OK || v > UINT64_MAX / 1000ull)
            return -1;
        *out_ns = v * 1000ull;
        return 0;
    }
    if (tc__parse_duration_ms(s, &v) != 0 || v > UINT64_MAX / 1000000ull)
        return -1;
    *out_ns = v * 1000000ull;
    return 0;
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
        if (parse_percent(v, 0.0, 100.0, &o->l1_pct) != 0)
            return bad("--l1", v, "a percentage must be between 0% and 100%");
        o->l1_in_bytes = 0;
    } else {
        if (tc__parse_bytes(v, &o->l1_bytes) != 0)
            return bad("--l1", v, "expected a share of the keys (10%) or bytes (64MiB, 1GB)");
        o->l1_in_bytes = 1;
    }
    o->given |= TCB_GIVEN_L1;
    return 0;
}

static int parse_pct(const char *opt, const char *v, double *frac) {
    double p;
    if (parse_percent(v, 0.0, 100.0, &p) != 0)
        return bad(opt, v, "expected a percentage between 0 and 100");
    *frac = p / 100.0;
    return 0;
}

static int parse_uint(const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
    if (parse_count(v, out) != 0 || *out < lo || *out > hi) {
        char want[96];
        snprintf(want, sizeof want, "expected a whole number from %llu to %llu",
                 (unsigned long long)lo, (unsigned long long)hi);
        return bad(opt, v, want);
    }
    return 0;
}

static int parse_dur(const char *opt, const char *v, uint64_t *out) {
    if (parse_duration_ns(v, 0, out) != 0)
        return bad(opt, v,
                   "expected a duration such as 500ms, 10s or 2m (a bare number is "
                   "milliseconds; fractions must come to whole ms)");
    return 0;
}

static int parse_entries(tcb_opts_t *o, const char *v) {
    char buf[512], *items[TCB_MAX_LIST];
    int n = split_list(v, buf, items, TCB_MAX_LIST);
    for (int i = 0; i < n; i++)
        if (parse_count(items[i], &o->entries[i]) != 0 || o->entries[i] == 0)
            n = -1;
    if (n < 0)
        return bad("--entries", v, "expected entry counts such as 568, 500,1000 or 2k");
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

/* writes' database options. Returns 0, -1 on a bad value. */
static int apply_db_opt(tcb_opts_t *o, int c, const char *v) {
    uint64_t u;
    o->given |= TCB_GIVEN_DB;
    switch (c) {
    case OPT_DB:
        o->db_path = v;
        return *v ? 0 : bad("--db", v, "must not be empty");
    case OPT_BATCH:
        if (parse_uint("--batch", v, 1, 100000, &u) != 0)
            return -1;
        o->wb_batch = (unsigned)u;
        return 0;
    case OPT_DB_SYNC:
        if (strcmp(v, "full") == 0)
            o->db_sync = TCB_DB_SYNC_FULL;
        else if (strcmp(v, "normal") == 0)
            o->db_sync = TCB_DB_SYNC_NORMAL;
        else if (strcmp(v, "off") == 0)
            o->db_sync = TCB_DB_SYNC_OFF;
        else
            return bad("--db-sync", v, "expected full, normal or off");
        return 0;
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
        if (parse_dur("--load-ms", v, &o->load_ns) != 0)
            return -1;
        return o->load_ns <= 60000000000ull ? 0 : bad("--load-ms", v, "at most 60 s");
    case OPT_FAIL_AFTER:
        return parse_dur("--fail-after", v, &o->fail_after_ns);
    case OPT_MAX_STALE:
        if (parse_dur("--max-stale", v, &o->max_stale_ns) != 0)
            return -1;
        return o->max_stale_ns >= 1000000ull ? 0 : bad("--max-stale", v, "at least 1ms");
    case OPT_BACKOFF:
        if (parse_dur("--backoff", v, &o->backoff_ns) != 0)
            return -1;
        if (o->backoff_ns < 1000000ull || o->backoff_ns > 3600000000000ull)
            return bad("--backoff", v, "expected 1ms to 1h");
        return 0;
    case OPT_SLOT:
        if (parse_uint("--slot", v, 0, 63, &u) != 0)
            return -1;
        o->worker_slot = (unsigned)u;
        return 0;
    case OPT_DB:
    case OPT_BATCH:
    case OPT_DB_SYNC:
        return apply_db_opt(o, c, v);
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
        return parse_double(v, 0.0, 20.0, &o->zipf_s) ? bad("--zipf", v, "expected 0..20") : 0;
    case OPT_HOT_KEYS:
        if (parse_pct("--hot-keys", v, &o->hot_frac) != 0 || o->hot_frac <= 0)
            return bad("--hot-keys", v, "must be above 0%");
        return 0;
    case OPT_HOT_SHARE:
        return parse_pct("--hot-share", v, &o->hot_share);
    case OPT_HOT_SHIFT:
        if (parse_dur("--hot-shift", v, &o->hot_shift_ns) != 0)
            return -1;
        return o->hot_shift_ns ? 0 : bad("--hot-shift", v, "must be above 0");
    case 'W':
        return parse_pct("--writes", v, &o->write_frac);
    case 'v':
        o->given |= TCB_GIVEN_VSIZE;
        return tcb_vsize_parse(v, &o->vsize)
                   ? bad("--value-size", v,
                         "expected 100, 64-1KiB or exp:512 (bytes, max 16MiB)")
                   : 0;
    case 't':
        o->given |= TCB_GIVEN_THREADS;
        if (parse_uint("--threads", v, 1, 1024, &u) != 0)
            return -1;
        o->threads = (unsigned)u;
        return 0;
    case 'd':
        o->given |= TCB_GIVEN_DURATION;
        if (parse_dur("--duration", v, &o->duration_ns) != 0)
            return -1;
        return o->duration_ns ? 0 : bad("--duration", v, "must be above 0");
    case 'o':
        return parse_uint("--ops", v, 1, UINT64_MAX / 2, &o->ops);
    case OPT_WARMUP:
        o->given |= TCB_GIVEN_WARMUP;
        return parse_dur("--warmup", v, &o->warmup_ns);
    case 'l':
        return parse_l1(o, v);
    case OPT_SHARDS:
        o->given |= TCB_GIVEN_SHARDS;
        if (strcmp(v, "default") == 0) { /* the library's choice (tc_stats: l1_shards) */
            o->shards = 0;
            return 0;
        }
        if (parse_uint("--shards", v, 1, 65536, &u) != 0 || (u & (u - 1)))
            return bad("--shards", v, "expected a power of two (1, 2, 4, ...)");
        o->shards = (unsigned)u;
        return 0;
    case OPT_POLICY:
        if (strcmp(v, "default") == 0)
            o->policy = TC_L1_POLICY_DEFAULT;
        else if (strcmp(v, "s3fifo") == 0)
            o->policy = TC_L1_POLICY_S3FIFO;
        else
            return bad("--policy", v, "expected default or s3fifo");
        return 0;
    case OPT_SOURCE:
        if (parse_duration_ns(v, 1, &o->source_ns) != 0)
            return bad("--source-latency", v,
                       "expected a duration such as 1ms or 50us (a bare number is "
                       "milliseconds)");
        return 0;
    case OPT_TTL:
        o->given |= TCB_GIVEN_TTL;
        if (parse_dur("--ttl", v, &u) != 0)
            return -1;
        if (u < 1000000ull)
            return bad("--ttl", v, "must be at least 1ms");
        o->ttl_ms = u / 1000000ull;
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
        o->nsweep = parse_percent_list(v, 0.0001, 100.0, o->sweep_pcts, TCB_MAX_LIST);
        return o->nsweep > 0 ? 0 : bad("--sizes", v, "expected percentages such as 1,5,10");
    case OPT_ENTRIES:
        return parse_entries(o, v);
    case OPT_PCT:
        o->nreplay_pcts = parse_percent_list(v, 0.0001, 100.0, o->replay_pcts, TCB_MAX_LIST);
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
                {"writes", TCB_CMD_WRITES},
                {"ring", TCB_CMD_RING},
                {"cluster", TCB_CMD_CLUSTER},
                {"help", TCB_CMD_HELP}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(w, cmds[i].name) == 0) {
            o->cmd = cmds[i].cmd;
            return 0;
        }
    }
    fprintf(stderr,
            "tiercache-bench: unknown command '%s' (compare, sweep, miss, replay, micro, "
            "inval, stampede, failing-source, bulk, patterns, warm, writes, ring, cluster; see "
            "--help)\n",
            w);
    return -1;
}

static int is_fresh_cmd(tcb_cmd_t c) {
    return c == TCB_CMD_STAMPEDE || c == TCB_CMD_STAMPEDE_WORKER || c == TCB_CMD_FAILING;
}

/* The freshness scenarios expire one key every TTL, so their default is short. */
static void ttl_default(tcb_opts_t *o) {
    if (!(o->given & TCB_GIVEN_TTL) && is_fresh_cmd(o->cmd))
        o->ttl_ms = 500;
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
    if (o->cmd == TCB_CMD_WRITES && !(o->given & TCB_GIVEN_DURATION))
        o->duration_ns = 2000000000ull;
    if (o->cmd == TCB_CMD_RING || o->cmd == TCB_CMD_CLUSTER) {
        if (!(o->given & TCB_GIVEN_KEYS))
            o->keys = 100000;
        if (!(o->given & TCB_GIVEN_DURATION))
            o->duration_ns = 3000000000ull;
        if (!(o->given & TCB_GIVEN_WARMUP))
            o->warmup_ns = 1000000000ull;
    }
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

/* --help, `COMMAND --help` and `help [COMMAND]`: the page of the command named, if any. */
static int print_help(tcb_opts_t *o, int argc, char **argv, int first) {
    o->cmd = TCB_CMD_HELP; /* no command named: the overview */
    if (first < argc && parse_command(o, argv[first++]) != 0)
        return -1;
    if (o->cmd == TCB_CMD_HELP && first < argc && parse_command(o, argv[first]) != 0)
        return -1;
    if (o->cmd == TCB_CMD_HELP || tcb_cli_command_usage(stdout, o->cmd) != 0)
        tcb_cli_usage(stdout);
    return 1;
}

/* Checks that need the command and every option. 0 or -1. */
static int check_combination(const tcb_opts_t *o) {
    if (o->cmd == TCB_CMD_FAILING && o->fail_after_ns >= o->duration_ns)
        return bad("--fail-after", "", "must be shorter than --duration");
    if (o->cmd == TCB_CMD_MICRO && (o->wl_kind == TCB_WL_TRACE || o->wl_kind == TCB_WL_HOTSET))
        return bad("--workload", "", "micro draws resident keys from zipf or uniform");
    if (check_foreign(o) != 0)
        return -1;
    if (o->cmd == TCB_CMD_WARM && (o->wl_kind == TCB_WL_TRACE || o->wl_kind == TCB_WL_HOTSET))
        return bad("--workload", "", "warm draws keys from zipf or uniform");
    int several = o->cmd == TCB_CMD_RING || o->cmd == TCB_CMD_CLUSTER;
    if (several && (o->wl_kind == TCB_WL_TRACE || o->wl_kind == TCB_WL_HOTSET))
        return bad("--workload", "", "ring and cluster draw keys from zipf or uniform");
    if (several && o->redis_url)
        return bad("--redis", "", "ring and cluster start their own servers");
    if (o->cmd == TCB_CMD_BULK && o->keys > 100000)
        return bad("--keys", "", "bulk: keys per call, at most 100k");
    if ((o->given & TCB_GIVEN_DB) && o->cmd != TCB_CMD_WRITES)
        return bad("--db, --batch, --db-sync", "", "only with writes");
    return 0;
}

int tcb_cli_parse(int argc, char **argv, tcb_opts_t *o) {
    tcb_opts_defaults(o);
    optind = 0; /* glibc: full re-initialisation, so tests can parse repeatedly */
    opterr = 0;
    int c, help = 0;
    while ((c = getopt_long(argc, argv, "r:n:w:s:W:v:t:d:o:l:jqh", long_opts, NULL)) != -1) {
        if (c == OPT_VERSION) {
            tcb_cli_version(stdout);
            return 1;
        }
        if (c == 'h')
            help = 1;
        if (help) /* read on only to find the command: its page, not the values */
            continue;
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
    if (help)
        return print_help(o, argc, argv, first);
    if (first < argc && parse_command(o, argv[first++]) != 0)
        return -1;
    if (o->cmd == TCB_CMD_HELP)
        return print_help(o, argc, argv, first - 1);
    command_defaults(o);
    ttl_default(o);
    if (check_combination(o) != 0)
        return -1;
    return check_positionals(o, argc, argv, first);
}
