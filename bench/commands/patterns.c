/*
 * patterns.c - `patterns`: invalidating a whole group of keys at once, at scale: what it
 * costs the caller, what it costs everyone else on Redis meanwhile, and whether another
 * process's L1 really lets go of every key.
 *
 *   caller cache ----- tc_invalidate_tag / _prefix / _namespace / tc_clear ----> Redis
 *   other cache  (own L1 holding every key, own listener)  <---- invalidation channel
 *   probe thread (own raw connection): GET every ~100 us, each one timed
 *
 * The group is K keys (-n, default 100,000) "grp:k<16 hex>": written with tc_mset and the
 * tag "grp", so one group is at once a tag, a prefix ("grp:") and a namespace ("grp" with
 * the default ':' separator). Beside it, 1,000 bystanders "oth:k..." that only tc_clear
 * may remove. Four phases, each on a freshly written group:
 *
 *   1. the caller writes the group (tag, TC_OPT_NO_L1: it holds nothing itself) and the
 *      bystanders; the other cache waits until its listener has read every message of
 *      those writes, then reads everything with tc_mget, so its L1 holds it all;
 *   2. the probe starts recording; the caller makes the call, timed; the probe records
 *      until two more GETs have completed after the return;
 *   3. the other cache's L1 is watched (tc_stats' l1_entries) for up to 1 s after the
 *      return, until the group is gone from it;
 *   4. what the other cache still holds of the group (tc_hot_keys) and still serves
 *      (tc_mget: from L1, or from a Redis copy the call failed to hide) is counted: both
 *      must be 0; the bystanders must all still be served (none after tc_clear).
 *
 * The probe's latency includes this machine's scheduling: on a 2-core box the caller,
 * the other cache's listener, Redis and the probe share two CPUs, so the probe is first
 * timed while everything is idle, for comparison. Redis's own view comes from SLOWLOG:
 * the slowest command it executed during the call (a script counts as one command). On
 * the throwaway server the bench logs every command of 1 ms or more; on a --redis server
 * it only reads the log, at the server's own threshold.
 *
 * tc_invalidate_namespace and tc_clear are O(1) on the caller: after the checked call,
 * each is timed REPEATS more times (median and max).
 */
#include "multi.h"

#include "checks.h"
#include "fmt.h"
#include "hist.h"
#include "json.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_NS      "grp"
#define GROUP_PREFIX  "grp:"
#define BYSTANDER_PFX "oth:"
#define BYSTANDERS    1000u
#define PROBE_GAP_US  100
#define DRAIN_WAIT_NS 1000000000ull /* how long the other L1 may take to let go */
#define REPEATS       20u
#define SLOWLOG_US    1000 /* the throwaway server logs commands from 1 ms */
#define TARGET_CALLER 1000000000ull
#define TARGET_BLOCK  10000000ull

typedef enum { P_TAG, P_PREFIX, P_NS, P_CLEAR, P_COUNT } phase_t;
static const char *const phase_id[P_COUNT] = {"tag", "prefix", "namespace", "clear"};
static const char *const phase_call[P_COUNT] = {
    "tc_invalidate_tag(\"grp\")", "tc_invalidate_prefix(\"grp:\")",
    "tc_invalidate_namespace(\"grp\")", "tc_clear()"};

/* ---------------- the other client: a raw connection timing small commands ------------- */

typedef struct probe {
    redisContext *rc;
    char key[96];
    pthread_t th;
    int started;
    atomic_int stop, recording, failed;
    atomic_uint_fast64_t seq;
    pthread_mutex_t mu;
    tcb_hist_t hist; /* samples while recording, under mu */
} probe_t;

static void *probe_main(void *arg) {
    probe_t *p = arg;
    while (!atomic_load(&p->stop)) {
        int rec = atomic_load(&p->recording);
        uint64_t t0 = tcb_now_ns();
        redisReply *r = redisCommand(p->rc, "GET %s", p->key);
        uint64_t dt = tcb_now_ns() - t0;
        if (!r) {
            atomic_store(&p->failed, 1);
            break;
        }
        freeReplyObject(r);
        /* A GET that overlaps the window at either end counts. */
        if (rec || atomic_load(&p->recording)) {
            pthread_mutex_lock(&p->mu);
            tcb_hist_record(&p->hist, dt);
            pthread_mutex_unlock(&p->mu);
        }
        atomic_fetch_add(&p->seq, 1);
        tcb_multi_sleep_us(PROBE_GAP_US);
    }
    return NULL;
}

static int probe_start(probe_t *p, const tcb_env_t *e) {
    char err[256];
    tcb_hist_reset(&p->hist);
    snprintf(p->key, sizeof p->key, "%sprobe", e->prefix);
    p->rc = tcb_rconn_open(&e->ep, 5000, err, sizeof err);
    if (!p->rc || tcb_rconn_ok(p->rc, err, sizeof err, "SET %s x", p->key) != 0) {
        fprintf(stderr, "tiercache-bench: patterns: probe: %s\n", err);
        return -1;
    }
    p->started = pthread_create(&p->th, NULL, probe_main, p) == 0;
    return p->started ? 0 : -1;
}

static void probe_stop(probe_t *p) {
    if (p->started) {
        atomic_store(&p->stop, 1);
        pthread_join(p->th, NULL);
        p->started = 0;
    }
    if (p->rc)
        redisFree(p->rc);
    p->rc = NULL;
}

static void probe_begin(probe_t *p) {
    pthread_mutex_lock(&p->mu);
    tcb_hist_reset(&p->hist);
    pthread_mutex_unlock(&p->mu);
    atomic_store(&p->recording, 1);
}

/* Stop recording once the GET in flight and one more have completed; copy the samples. */
static void probe_end(probe_t *p, tcb_hist_t *out) {
    uint64_t s = atomic_load(&p->seq), t0 = tcb_now_ns();
    while (atomic_load(&p->seq) < s + 2 && !atomic_load(&p->failed) &&
           tcb_now_ns() - t0 < 500000000ull)
        tcb_multi_sleep_us(100);
    atomic_store(&p->recording, 0);
    pthread_mutex_lock(&p->mu);
    memcpy(out, &p->hist, sizeof *out);
    pthread_mutex_unlock(&p->mu);
}

/* ---------------- Redis's own view: SLOWLOG ---------------- */

typedef struct slowlog {
    int usable;
    long long threshold_us;
} slowlog_t;

static int entry_ok(const redisReply *e) {
    return e->type == REDIS_REPLY_ARRAY && e->elements >= 4 &&
           e->element[0]->type == REDIS_REPLY_INTEGER &&
           e->element[2]->type == REDIS_REPLY_INTEGER;
}

static void slowlog_setup(slowlog_t *s, const tcb_env_t *e) {
    char err[256];
    if (e->owned) {
        s->usable =
            tcb_rconn_ok(e->ctl, err, sizeof err, "CONFIG SET slowlog-log-slower-than %d",
                         SLOWLOG_US) == 0 &&
            tcb_rconn_ok(e->ctl, err, sizeof err, "CONFIG SET slowlog-max-len 4096") == 0;
        s->threshold_us = SLOWLOG_US;
        return;
    }
    /* Someone else's server: read its log at its threshold, change nothing. */
    redisReply *r = redisCommand(e->ctl, "CONFIG GET slowlog-log-slower-than");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        s->threshold_us = atoll(r->element[1]->str);
        s->usable = s->threshold_us >= 0;
    }
    freeReplyObject(r);
}

/* Id of the newest entry (-1 when empty), or -2 when SLOWLOG is refused. */
static long long slowlog_last(redisContext *c) {
    redisReply *r = redisCommand(c, "SLOWLOG GET 1");
    long long id = -2;
    if (r && r->type == REDIS_REPLY_ARRAY)
        id = r->elements > 0 && entry_ok(r->element[0]) ? r->element[0]->element[0]->integer
                                                        : -1;
    freeReplyObject(r);
    return id;
}

/* The slowest entry newer than `after`: its microseconds and command name. */
static long long slowlog_max(redisContext *c, long long after, char *name, size_t cap) {
    redisReply *r = redisCommand(c, "SLOWLOG GET 4096");
    long long best = -1;
    name[0] = '\0';
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (!entry_ok(e) || e->element[0]->integer <= after || e->element[2]->integer <= best)
            continue;
        best = e->element[2]->integer;
        const redisReply *args = e->element[3];
        if (args->type == REDIS_REPLY_ARRAY && args->elements > 0 &&
            args->element[0]->type == REDIS_REPLY_STRING)
            snprintf(name, cap, "%.*s", (int)args->element[0]->len, args->element[0]->str);
    }
    freeReplyObject(r);
    return best;
}

/* ---------------- one phase ---------------- */

typedef struct phase_res {
    int rc;
    uint64_t write_ns;        /* tc_mset of the group, with its tag */
    uint64_t call_ns;         /* the caller's call */
    size_t removed;           /* tag, prefix: keys removed from Redis */
    uint64_t resident_before; /* group keys in the other L1 before the call */
    uint64_t probe_n, probe_p50, probe_p99, probe_max, probe_failed;
    long long server_max_us; /* -1: none logged; -2: SLOWLOG unusable */
    char server_cmd[32];
    uint64_t returned_ns; /* when the call returned (tcb_now_ns) */
    uint64_t drain_ns; /* return -> the group gone from the other L1; UINT64_MAX: not in 1 s */
    int drain_first;   /* gone at the first look (the probe's last GETs delay it a little) */
    uint64_t messages; /* the other listener's messages, call start -> drained */
    uint64_t still_held, still_served, bystanders_served, bystanders_expected;
    uint64_t repeat_p50, repeat_max; /* namespace, clear: REPEATS more calls */
} phase_res_t;

typedef struct patterns {
    const tcb_opts_t *o;
    tcb_env_t env;
    tc_cache_t *caller, *other;
    probe_t probe;
    slowlog_t slow;
    uint64_t k;
    uint64_t idle_n, idle_p50, idle_p99, idle_max;
    int nphases; /* phases run (the last one may have failed) */
    phase_res_t res[P_COUNT];
} patterns_t;

typedef struct prefix_count {
    const char *prefix;
    size_t plen;
    uint64_t n;
} prefix_count_t;

static int count_prefix(void *arg, const void *key, size_t klen) {
    prefix_count_t *pc = arg;
    pc->n += klen >= pc->plen && memcmp(key, pc->prefix, pc->plen) == 0;
    return 0;
}

/* Keys of the group the other cache's L1 holds. */
static uint64_t group_held(const patterns_t *p) {
    prefix_count_t pc = {GROUP_PREFIX, strlen(GROUP_PREFIX), 0};
    tc_hot_keys(p->other, (size_t)(p->k + BYSTANDERS) * 2, count_prefix, &pc);
    return pc.n;
}

static tc_stats_t stats_of(tc_cache_t *c) {
    tc_stats_t st;
    memset(&st, 0, sizeof st);
    tc_stats(c, &st);
    return st;
}

/* Step 1: the group and the bystanders written, every key in the other L1. */
static int prepare(patterns_t *p, phase_res_t *r) {
    tc_buf_t tag = {GROUP_NS, strlen(GROUP_NS)};
    tc_opts_t opts = TC_OPTS_INIT;
    opts.ttl_ms = p->o->ttl_ms;
    opts.tags = &tag;
    opts.tags_count = 1;
    opts.flags = TC_OPT_NO_L1;
    uint64_t recv0 = stats_of(p->other).inval_received;
    uint64_t pub0 = stats_of(p->caller).inval_published;
    uint64_t t0 = tcb_now_ns();
    if (tcb_multi_write(p->caller, p->o, GROUP_PREFIX, 0, p->k, &opts) != 0)
        return -1;
    r->write_ns = tcb_now_ns() - t0;
    opts.tags = NULL;
    opts.tags_count = 0;
    if (tcb_multi_write(p->caller, p->o, BYSTANDER_PFX, 0, BYSTANDERS, &opts) != 0)
        return -1;
    uint64_t pub1 = stats_of(p->caller).inval_published;
    /* Late write messages would evict what the other cache is about to read. */
    tcb_multi_settle(p->other, recv0 + (pub1 - pub0));
    if (tcb_multi_read(p->other, GROUP_PREFIX, 0, p->k, NULL) != 0 ||
        tcb_multi_read(p->other, BYSTANDER_PFX, 0, BYSTANDERS, NULL) != 0)
        return -1;
    r->resident_before = group_held(p);
    char what[64];
    snprintf(what, sizeof what, "the other cache (before %s)", phase_id[r - p->res]);
    tcb_check_l1_fill(what, "before the call", r->resident_before, p->k, "group keys",
                      "every group key must be in its L1 for the leftovers check to mean "
                      "anything");
    return tcb_interrupted ? -1 : 0;
}

static int call(patterns_t *p, phase_t ph, size_t *removed) {
    switch (ph) {
    case P_TAG:
        return tc_invalidate_tag(p->caller, GROUP_NS, strlen(GROUP_NS), removed);
    case P_PREFIX:
        return tc_invalidate_prefix(p->caller, GROUP_PREFIX, strlen(GROUP_PREFIX), removed);
    case P_NS:
        return tc_invalidate_namespace(p->caller, GROUP_NS, strlen(GROUP_NS));
    case P_CLEAR:
        return tc_clear(p->caller);
    case P_COUNT:
        break;
    }
    return TC_EINVAL;
}

/* Step 2: the call, timed, with the probe and SLOWLOG watching. */
static void timed_call(patterns_t *p, phase_t ph, phase_res_t *r, tcb_hist_t *h) {
    long long last = p->slow.usable ? slowlog_last(p->env.ctl) : -2;
    probe_begin(&p->probe);
    uint64_t t0 = tcb_now_ns();
    r->rc = call(p, ph, &r->removed);
    r->returned_ns = tcb_now_ns();
    r->call_ns = r->returned_ns - t0;
    probe_end(&p->probe, h);
    r->probe_n = h->total;
    r->probe_p50 = tcb_hist_quantile(h, 0.5);
    r->probe_p99 = tcb_hist_quantile(h, 0.99);
    r->probe_max = h->total ? h->max : 0;
    r->probe_failed = (uint64_t)atomic_load(&p->probe.failed);
    r->server_max_us =
        last >= -1 ? slowlog_max(p->env.ctl, last, r->server_cmd, sizeof r->server_cmd) : -2;
}

/* Step 3: wait until the other L1 has let the group go (its entries fall by that much). */
static void wait_drained(patterns_t *p, phase_t ph, phase_res_t *r, uint64_t entries_before,
                         uint64_t returned_ns) {
    uint64_t drop = ph == P_CLEAR ? entries_before : r->resident_before;
    uint64_t target = entries_before > drop ? entries_before - drop : 0;
    r->drain_ns = UINT64_MAX;
    for (int first = 1;; first = 0) {
        uint64_t now = tcb_now_ns();
        if (stats_of(p->other).l1_entries <= target) {
            r->drain_ns = now - returned_ns;
            r->drain_first = first;
            return;
        }
        if (now - returned_ns > DRAIN_WAIT_NS)
            return;
        tcb_multi_sleep_us(200);
    }
}

/* Step 4: what the other cache still holds and serves. */
static void check_after(patterns_t *p, phase_t ph, phase_res_t *r) {
    r->still_held = group_held(p);
    tcb_multi_read(p->other, GROUP_PREFIX, 0, p->k, &r->still_served);
    tcb_multi_read(p->other, BYSTANDER_PFX, 0, BYSTANDERS, &r->bystanders_served);
    r->bystanders_expected = ph == P_CLEAR ? 0 : BYSTANDERS;
}

static void repeat_calls(patterns_t *p, phase_t ph, phase_res_t *r) {
    uint64_t t[REPEATS];
    for (unsigned i = 0; i < REPEATS; i++) {
        uint64_t t0 = tcb_now_ns();
        call(p, ph, NULL);
        t[i] = tcb_now_ns() - t0;
    }
    tcb_multi_summary_t s;
    tcb_multi_summarize(t, REPEATS, &s);
    r->repeat_p50 = s.p50;
    r->repeat_max = s.max;
}

static int run_phase(patterns_t *p, phase_t ph, tcb_hist_t *h) {
    phase_res_t *r = &p->res[ph];
    tcb_status(p->o, "patterns: %s: writing %llu keys, filling the other cache", phase_id[ph],
               (unsigned long long)p->k);
    if (prepare(p, r) != 0)
        return -1;
    p->nphases = (int)ph + 1;
    tc_stats_t before = stats_of(p->other);
    tcb_status(p->o, "patterns: %s", phase_call[ph]);
    timed_call(p, ph, r, h);
    wait_drained(p, ph, r, before.l1_entries, r->returned_ns);
    r->messages = stats_of(p->other).inval_received - before.inval_received;
    check_after(p, ph, r);
    if (ph == P_NS || ph == P_CLEAR)
        repeat_calls(p, ph, r);
    return r->rc == 0 ? 0 : -1;
}

/* ---------------- output ---------------- */

static const char *verdict(int met) {
    return met ? "MET" : "NOT MET";
}

static void print_server(const patterns_t *p, const phase_res_t *r) {
    char a[32];
    if (r->server_max_us == -2)
        printf("    Redis:        SLOWLOG not readable here\n");
    else if (r->server_max_us < 0)
        printf("    Redis:        no command of %lld us or more during the call (SLOWLOG)\n",
               p->slow.threshold_us);
    else
        printf("    Redis:        slowest command during the call %s (%s; SLOWLOG)\n",
               tcb_fmt_ns((double)r->server_max_us * 1000.0, a, sizeof a), r->server_cmd);
}

static void print_phase(const patterns_t *p, phase_t ph) {
    const phase_res_t *r = &p->res[ph];
    char a[32], b[32], c[32], d[32];
    printf("\n  %s  (the group written with its tag in %s)\n", phase_call[ph],
           tcb_fmt_ns((double)r->write_ns, a, sizeof a));
    printf("    caller:       %s", tcb_fmt_ns((double)r->call_ns, a, sizeof a));
    if (ph == P_TAG || ph == P_PREFIX)
        printf(", %s keys removed (target < 1 s: %s)", tcb_fmt_count(r->removed, b, sizeof b),
               verdict(r->call_ns < TARGET_CALLER));
    if (ph == P_NS || ph == P_CLEAR)
        printf("; %u more calls: p50 %s, max %s", REPEATS,
               tcb_fmt_ns((double)r->repeat_p50, b, sizeof b),
               tcb_fmt_ns((double)r->repeat_max, c, sizeof c));
    if (r->rc != 0)
        printf("  FAILED: %s", tc_err_name(r->rc));
    printf(
        "\n    other client: %s GETs during the call: p50 %s, p99 %s, max %s (target < 10 ms: "
        "%s)%s\n",
        tcb_fmt_count(r->probe_n, a, sizeof a), tcb_fmt_ns((double)r->probe_p50, b, sizeof b),
        tcb_fmt_ns((double)r->probe_p99, c, sizeof c),
        tcb_fmt_ns((double)r->probe_max, d, sizeof d), verdict(r->probe_max < TARGET_BLOCK),
        r->probe_failed ? " [its connection FAILED]" : "");
    print_server(p, r);
    printf("    other cache:  %s group keys in its L1 before; ",
           tcb_fmt_count(r->resident_before, a, sizeof a));
    if (r->drain_ns == UINT64_MAX)
        printf("NOT all gone 1 s after the return");
    else
        printf("all gone %s after the return", tcb_fmt_ns((double)r->drain_ns, b, sizeof b));
    printf(" (%s%s message%s)\n", r->drain_first ? "the first look; " : "",
           tcb_fmt_count(r->messages, c, sizeof c), r->messages == 1 ? "" : "s");
    printf("                  afterwards still held %s, still served %s (target 0: %s); "
           "bystanders served %s (expected %s)\n",
           tcb_fmt_count(r->still_held, a, sizeof a),
           tcb_fmt_count(r->still_served, b, sizeof b),
           verdict(r->still_held == 0 && r->still_served == 0),
           tcb_fmt_count(r->bystanders_served, c, sizeof c),
           tcb_fmt_count(r->bystanders_expected, d, sizeof d));
}

static void print_text(const patterns_t *p) {
    char a[32], b[32], c[32], d[32];
    printf(
        "\ntiercache-bench patterns: a group of %s keys (one tag, prefix \"grp:\", namespace "
        "\"grp\"),\n  %s bystanders, %s\n",
        tcb_fmt_count(p->k, a, sizeof a), tcb_fmt_count(BYSTANDERS, b, sizeof b),
        p->env.owned ? "throwaway redis-server" : p->env.url_shown);
    printf("  caller: the cache that invalidates. other cache: its own L1 (holding every key) "
           "and listener.\n  other client: a raw connection sending a GET every ~%d us, each "
           "one timed. Idle, for\n  comparison: %s GETs in 1 s, p50 %s, p99 %s, max %s\n",
           PROBE_GAP_US, tcb_fmt_count(p->idle_n, a, sizeof a),
           tcb_fmt_ns((double)p->idle_p50, b, sizeof b),
           tcb_fmt_ns((double)p->idle_p99, c, sizeof c),
           tcb_fmt_ns((double)p->idle_max, d, sizeof d));
    for (int ph = 0; ph < p->nphases; ph++)
        print_phase(p, (phase_t)ph);
    printf("\n  %-34s %10s %14s %14s %13s\n", "summary", "caller", "other max", "other p99",
           "still served");
    for (int ph = 0; ph < p->nphases; ph++) {
        const phase_res_t *r = &p->res[ph];
        printf("  %-34s %10s %14s %14s %13s\n", phase_call[ph],
               tcb_fmt_ns((double)r->call_ns, a, sizeof a),
               tcb_fmt_ns((double)r->probe_max, b, sizeof b),
               tcb_fmt_ns((double)r->probe_p99, c, sizeof c),
               tcb_fmt_count(r->still_served, d, sizeof d));
    }
    printf("\n");
    tcb_warnings_print(stdout);
}

static void print_json(const patterns_t *p) {
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "patterns");
    tcb_json_str(&j, "redis", p->env.url_shown);
    tcb_json_u64(&j, "keys", p->k);
    tcb_json_u64(&j, "bystanders", BYSTANDERS);
    tcb_json_obj_begin(&j, "probe_idle_ns");
    tcb_json_u64(&j, "samples", p->idle_n);
    tcb_json_u64(&j, "p50", p->idle_p50);
    tcb_json_u64(&j, "p99", p->idle_p99);
    tcb_json_u64(&j, "max", p->idle_max);
    tcb_json_obj_end(&j);
    tcb_json_arr_begin(&j, "phases");
    for (int ph = 0; ph < p->nphases; ph++) {
        const phase_res_t *r = &p->res[ph];
        tcb_json_obj_begin(&j, NULL);
        tcb_json_str(&j, "call", phase_id[ph]);
        tcb_json_str(&j, "result", tc_err_name(r->rc));
        tcb_json_u64(&j, "write_ns", r->write_ns);
        tcb_json_u64(&j, "caller_ns", r->call_ns);
        if (ph == P_TAG || ph == P_PREFIX)
            tcb_json_u64(&j, "removed", r->removed);
        if (ph == P_NS || ph == P_CLEAR) {
            tcb_json_u64(&j, "repeat_p50_ns", r->repeat_p50);
            tcb_json_u64(&j, "repeat_max_ns", r->repeat_max);
        }
        tcb_json_u64(&j, "probe_samples", r->probe_n);
        tcb_json_u64(&j, "probe_p50_ns", r->probe_p50);
        tcb_json_u64(&j, "probe_p99_ns", r->probe_p99);
        tcb_json_u64(&j, "probe_max_ns", r->probe_max);
        if (r->server_max_us >= 0)
            tcb_json_u64(&j, "server_slowest_us", (uint64_t)r->server_max_us);
        else
            tcb_json_null(&j, "server_slowest_us");
        tcb_json_u64(&j, "resident_before", r->resident_before);
        if (r->drain_ns == UINT64_MAX)
            tcb_json_null(&j, "other_l1_drained_ns");
        else
            tcb_json_u64(&j, "other_l1_drained_ns", r->drain_ns);
        tcb_json_bool(&j, "other_l1_drained_at_first_look", r->drain_first);
        tcb_json_u64(&j, "other_messages", r->messages);
        tcb_json_u64(&j, "still_held", r->still_held);
        tcb_json_u64(&j, "still_served", r->still_served);
        tcb_json_u64(&j, "bystanders_served", r->bystanders_served);
        tcb_json_u64(&j, "bystanders_expected", r->bystanders_expected);
        tcb_json_obj_end(&j);
    }
    tcb_json_arr_end(&j);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

/* ---------------- the command ---------------- */

static void idle_probe(patterns_t *p, tcb_hist_t *h) {
    probe_begin(&p->probe);
    tcb_multi_sleep_us(1000000);
    probe_end(&p->probe, h);
    p->idle_n = h->total;
    p->idle_p50 = tcb_hist_quantile(h, 0.5);
    p->idle_p99 = tcb_hist_quantile(h, 0.99);
    p->idle_max = h->total ? h->max : 0;
}

static int run(patterns_t *p, tcb_hist_t *h) {
    uint64_t per = TCB_MULTI_KEY_CAP + (uint64_t)tcb_vsize_max(&p->o->vsize) + 256;
    uint64_t bytes = (p->k + BYSTANDERS) * per;
    tcb_multi_cfg_t small = {.sub = "pt:", .l1_bytes = 1u << 20};
    tcb_multi_cfg_t big = {.sub = "pt:", .l1_bytes = bytes > (64u << 20) ? bytes : (64u << 20)};
    p->caller = tcb_multi_open(&p->env, &small, "patterns");
    p->other = p->caller ? tcb_multi_open(&p->env, &big, "patterns") : NULL;
    if (!p->other || probe_start(&p->probe, &p->env) != 0)
        return -1;
    slowlog_setup(&p->slow, &p->env);
    idle_probe(p, h);
    int rc = 0;
    for (int ph = 0; ph < P_COUNT && rc == 0 && !tcb_interrupted; ph++)
        rc = run_phase(p, (phase_t)ph, h);
    if (rc != 0 || tcb_interrupted)
        fprintf(stderr, "tiercache-bench: patterns: stopped early\n");
    if (!tcb_interrupted)
        p->o->json ? print_json(p) : print_text(p);
    return rc;
}

int tcb_cmd_patterns(const tcb_opts_t *o) {
    patterns_t *p = calloc(1, sizeof *p);
    tcb_hist_t *h = malloc(sizeof *h);
    if (!p || !h) {
        free(p);
        free(h);
        return 1;
    }
    p->o = o;
    p->k = o->keys;
    pthread_mutex_init(&p->probe.mu, NULL);
    int rc = tcb_env_open(&p->env, o) == 0 ? run(p, h) : -1;
    probe_stop(&p->probe);
    tc_close(p->caller);
    tc_close(p->other);
    tcb_env_close(&p->env);
    pthread_mutex_destroy(&p->probe.mu);
    free(p);
    free(h);
    return rc == 0 && !tcb_interrupted ? 0 : 1;
}
