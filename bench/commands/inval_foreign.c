/*
 * inval_foreign.c - `inval --foreign`: how fast a write by a client that is not tiercache
 * (redis-cli, a service in another language) evicts the key from a tiercache process's L1.
 *
 * The writer is a raw hiredis connection sending SET, DEL or PEXPIRE of plain keys
 * ("tcbench:<pid>:plain:k..."), and it publishes nothing. The reader process (inval.c)
 * caches those keys with plain_keys and Redis client tracking (bcast, or default with
 * --tracking default), so the only thing that can evict them is Redis's own notice on
 * __redis__:invalidate. The reader's inval_hook runs for those notices as it does for
 * tiercache's messages, and stamps each eviction in the shared mapping (inval.h).
 *
 * Phase 1 (latency), closed loop as in inval.c: every test key is resident in the reader's
 * L1; the writer sends one raw command per key, rotating through the chosen ones
 * (--foreign-ops), and waits for its eviction before the next. Latency = eviction - the
 * moment the command was sent, so it includes the write's round trip. A PEXPIRE (of a
 * minute: the key stays) counts because it changes what a reader must see, and Redis
 * reports it like any write. A key whose eviction is not seen in 200 ms is "not evicted",
 * the figure that must be 0.
 * Phase 2 (rate), bcast only: pipelined raw SETs of keys the reader does not hold, within
 * inval.c's backlog window. Redis reports every write under the prefix (one event loop's
 * keys in one message), so this is how many foreign writes per second one listener turns
 * into evictions. Default mode reports only keys this process has read, each once: there
 * is no flood to absorb, and the phase is skipped.
 */
#include "inval.h"

#include "checks.h"
#include "fmt.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

#define VALUE_LEN      100
#define PEXPIRE_MS     "60000"
#define KEY_CAP        160
#define PRELOAD_BATCH  500u
#define RATE_KEY_SPACE 100000u

/* The raw commands, in the order --foreign-ops rotates through them. */
enum foreign_kind { FK_SET, FK_DEL, FK_PEXPIRE, FK_COUNT };

static const char *const kind_names[FK_COUNT] = {"SET", "DEL", "PEXPIRE"};
static const char *const kind_json[FK_COUNT] = {"set", "del", "pexpire"};
static const unsigned kind_bits[FK_COUNT] = {TCB_FOREIGN_SET, TCB_FOREIGN_DEL,
                                             TCB_FOREIGN_PEXPIRE};

typedef struct foreign_res {
    tcb_hist_t lat, cmd; /* every write: write-to-eviction, and the command's round trip */
    tcb_hist_t lat_by[FK_COUNT];
    uint64_t missing, missing_by[FK_COUNT];
    enum foreign_kind kinds[FK_COUNT]; /* the rotation */
    unsigned nkinds;
    int has_rate;
    tcb_inval_rate_t rate;
    tcb_inval_reader_stats_t rs;
} foreign_res_t;

/* The plain key of id: the reader's prefix + the bench's key text. Returns its length. */
static size_t plain_key(const tcb_inval_writer_t *w, uint64_t id, char out[KEY_CAP]) {
    size_t plen = strlen(w->tc_prefix);
    memcpy(out, w->tc_prefix, plen);
    tcb_key_format(id, out + plen);
    return plen + TCB_KEY_LEN;
}

static int append_set(redisContext *rc, const char *key, size_t klen, const char *val,
                      size_t vlen) {
    const char *argv[] = {"SET", key, val};
    size_t lens[] = {3, klen, vlen};
    return redisAppendCommandArgv(rc, 3, argv, lens) == REDIS_OK ? 0 : -1;
}

/* The latency keys, written raw (pipelined) before the reader starts. */
static int preload(redisContext *rc, const tcb_inval_writer_t *w) {
    char val[VALUE_LEN];
    memset(val, 'a', sizeof val);
    uint64_t n = w->o->inval_count;
    for (uint64_t i = 0; i < n;) {
        unsigned batch = 0;
        for (; batch < PRELOAD_BATCH && i < n; batch++, i++) {
            char key[KEY_CAP];
            if (append_set(rc, key, plain_key(w, i, key), val, sizeof val) != 0)
                return -1;
        }
        if (tcb_inval_drain(rc, batch) != 0)
            return -1;
    }
    return 0;
}

/* One raw write of key; 0, or -1 on a transport failure or an error reply. */
static int raw_write(redisContext *rc, const char *key, size_t klen, enum foreign_kind k) {
    static const char val[VALUE_LEN] = "written by a foreign client";
    redisReply *r = NULL;
    switch (k) {
    case FK_SET:
        r = redisCommand(rc, "SET %b %b", key, klen, val, sizeof val);
        break;
    case FK_DEL:
        r = redisCommand(rc, "DEL %b", key, klen);
        break;
    default:
        r = redisCommand(rc, "PEXPIRE %b %s", key, klen, PEXPIRE_MS);
        break;
    }
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Write key i and wait for the reader to evict it (at most TCB_INVAL_WAIT_NS). */
static int time_one(tcb_inval_writer_t *w, redisContext *rc, uint64_t i, foreign_res_t *r) {
    enum foreign_kind k = r->kinds[i % r->nkinds];
    char key[KEY_CAP];
    size_t klen = plain_key(w, i, key);
    uint64_t t0 = tcb_now_ns();
    if (raw_write(rc, key, klen, k) != 0)
        return -1;
    tcb_hist_record(&r->cmd, tcb_now_ns() - t0);
    uint64_t got = 0;
    /* Poll gently, as inval.c does: the reader stamps the time, not this loop. */
    while (!(got = atomic_load(&w->shm->recv_ns[i])) && tcb_now_ns() - t0 < TCB_INVAL_WAIT_NS)
        tcb_inval_sleep_us(20);
    if (!got) {
        r->missing++;
        r->missing_by[k]++;
        return 0;
    }
    uint64_t lat = got > t0 ? got - t0 : 0;
    tcb_hist_record(&r->lat, lat);
    tcb_hist_record(&r->lat_by[k], lat);
    return 0;
}

static int latency_phase(tcb_inval_writer_t *w, redisContext *rc, foreign_res_t *r) {
    for (uint64_t i = 0; i < w->o->inval_count && !tcb_interrupted; i++)
        if (time_one(w, rc, i, r) != 0) {
            fprintf(stderr, "tiercache-bench: inval: a raw write failed: %s\n",
                    rc->err ? rc->errstr : "error reply");
            return -1;
        }
    return 0;
}

/* A batch of raw SETs of keys the reader does not hold: one tracking notice each. */
static int set_batch(redisContext *rc, const tcb_inval_writer_t *w, uint64_t first) {
    uint64_t base = w->o->inval_count;
    for (unsigned b = 0; b < TCB_INVAL_BATCH; b++) {
        char key[KEY_CAP];
        size_t klen = plain_key(w, base + (first + b) % RATE_KEY_SPACE, key);
        if (append_set(rc, key, klen, "x", 1) != 0)
            return -1;
    }
    return tcb_inval_drain(rc, TCB_INVAL_BATCH);
}

static int run_phases(tcb_inval_writer_t *w, const char *self_exe, foreign_res_t *r) {
    char err[256];
    redisContext *conn = tcb_rconn_open(&w->env.ep, 5000, err, sizeof err);
    if (!conn) {
        fprintf(stderr, "tiercache-bench: inval: %s\n", err);
        return -1;
    }
    tcb_status(w->o, "inval --foreign: writing %llu plain keys raw",
               (unsigned long long)w->o->inval_count);
    int rc = preload(conn, w);
    if (rc == 0)
        rc = tcb_inval_start_reader(w, self_exe);
    if (rc == 0) {
        tcb_status(w->o, "inval --foreign: timing write-to-eviction, one raw write at a time");
        rc = latency_phase(w, conn, r);
    }
    redisFree(conn);
    r->has_rate = w->o->tracking == TCB_TRACKING_BCAST;
    if (rc == 0 && r->has_rate) {
        tcb_status(w->o, "inval --foreign: raw writes flooding one listener for %.1f s",
                   (double)w->o->duration_ns / 1e9);
        rc = tcb_inval_rate_phase(w, set_batch, &r->rate);
    }
    if (rc == 0)
        rc = tcb_inval_reader_stats(w, &r->rs);
    return rc;
}

/* ---- output ---- */

static const char *tracking_name(const tcb_opts_t *o) {
    return o->tracking == TCB_TRACKING_DEFAULT ? "default" : "bcast";
}

static void ops_text(const foreign_res_t *r, char *out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < r->nkinds && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", kind_names[r->kinds[i]]);
}

static void print_lat_row(const char *label, const tcb_hist_t *h, uint64_t missing) {
    char a[32], b[32], c[32], d[32];
    printf("    %-9s %-9s %-10s %-10s %-10s %llu\n", label,
           tcb_fmt_count(h->total + missing, d, sizeof d),
           tcb_fmt_ns((double)tcb_hist_quantile(h, 0.5), a, sizeof a),
           tcb_fmt_ns((double)tcb_hist_quantile(h, 0.99), b, sizeof b),
           tcb_fmt_ns((double)h->max, c, sizeof c), (unsigned long long)missing);
}

static void print_rate_text(const foreign_res_t *r) {
    char a[32], b[32], c[32];
    if (!r->has_rate) {
        printf("\n  rate: not measured with --tracking default (Redis reports only the keys "
               "the reader\n  has read, each once: there is no flood of notices to absorb)\n");
        return;
    }
    printf("\n  foreign writes one listener turns into evictions: %s keys/s\n",
           tcb_fmt_count((uint64_t)r->rate.recv_rate, a, sizeof a));
    printf("    %s of %s raw SETs seen in %.1f s; the writer offered %s SET/s;\n",
           tcb_fmt_count(r->rate.applied, a, sizeof a),
           tcb_fmt_count(r->rate.published, b, sizeof b), r->rate.secs,
           tcb_fmt_count((uint64_t)r->rate.pub_rate, c, sizeof c));
    printf(
        "    the backlog window was full %.0f%% of the time: %s\n", 100.0 * r->rate.full_share,
        r->rate.full_share > 0.5 ? "the listener was the bottleneck"
                                 : "Redis or the writer was the limit, the listener kept up");
}

static void print_text(const tcb_inval_writer_t *w, const foreign_res_t *r) {
    char a[32], b[32], ops[64];
    ops_text(r, ops, sizeof ops);
    printf("\ntiercache-bench inval --foreign: a raw client writes (%s), one reader process\n"
           "caches plain keys with tracking %s, %s\n",
           ops, tracking_name(w->o),
           w->env.owned ? "throwaway redis-server" : w->env.url_shown);
    printf(
        "\n  write-to-eviction (the raw command is sent -> the reader's listener has evicted "
        "the key\n  on Redis's notice), one write at a time:\n");
    printf("    %-9s %-9s %-10s %-10s %-10s %s\n", "", "writes", "p50", "p99", "max",
           "not evicted in 200 ms");
    print_lat_row("all", &r->lat, r->missing);
    for (unsigned i = 0; r->nkinds > 1 && i < r->nkinds; i++)
        print_lat_row(kind_names[r->kinds[i]], &r->lat_by[r->kinds[i]],
                      r->missing_by[r->kinds[i]]);
    printf("    the raw command itself (one round trip): p50 %s, p99 %s\n",
           tcb_fmt_ns((double)tcb_hist_quantile(&r->cmd, 0.5), a, sizeof a),
           tcb_fmt_ns((double)tcb_hist_quantile(&r->cmd, 0.99), b, sizeof b));
    printf("    reader L1: %s test keys resident before, %s entries after\n",
           tcb_fmt_count(w->resident_before, a, sizeof a),
           tcb_fmt_count(r->rs.entries, b, sizeof b));
    print_rate_text(r);
    printf("    reader totals: %s keys evicted on tracking notices (%s messages); listener "
           "%s\n\n",
           tcb_fmt_count(r->rs.tracking, a, sizeof a),
           tcb_fmt_count(r->rs.received, b, sizeof b),
           r->rs.connected ? "connected" : "DISCONNECTED");
    tcb_warnings_print(stdout);
}

static void json_lat(tcb_json_t *j, const char *key, const tcb_hist_t *h, uint64_t missing) {
    tcb_json_obj_begin(j, key);
    tcb_json_u64(j, "samples", h->total);
    tcb_json_u64(j, "missing", missing);
    tcb_json_u64(j, "p50", tcb_hist_quantile(h, 0.5));
    tcb_json_u64(j, "p99", tcb_hist_quantile(h, 0.99));
    tcb_json_u64(j, "max", h->max);
    tcb_json_obj_end(j);
}

static void json_rate(tcb_json_t *j, const foreign_res_t *r) {
    if (!r->has_rate) {
        tcb_json_null(j, "rate");
        return;
    }
    tcb_json_obj_begin(j, "rate");
    tcb_json_u64(j, "written", r->rate.published);
    tcb_json_u64(j, "evicted", r->rate.applied);
    tcb_json_dbl(j, "seconds", r->rate.secs);
    tcb_json_dbl(j, "evicted_per_sec", r->rate.recv_rate);
    tcb_json_dbl(j, "written_per_sec", r->rate.pub_rate);
    tcb_json_dbl(j, "window_full_share", r->rate.full_share);
    tcb_json_obj_end(j);
}

static void print_json(const tcb_inval_writer_t *w, const foreign_res_t *r) {
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "inval");
    tcb_json_str(&j, "writer", "foreign");
    tcb_json_str(&j, "tracking", tracking_name(w->o));
    tcb_json_str(&j, "redis", w->env.url_shown);
    json_lat(&j, "write_to_eviction_ns", &r->lat, r->missing);
    tcb_json_obj_begin(&j, "by_op");
    for (unsigned i = 0; i < r->nkinds; i++)
        json_lat(&j, kind_json[r->kinds[i]], &r->lat_by[r->kinds[i]],
                 r->missing_by[r->kinds[i]]);
    tcb_json_obj_end(&j);
    tcb_json_obj_begin(&j, "command_ns");
    tcb_json_u64(&j, "p50", tcb_hist_quantile(&r->cmd, 0.5));
    tcb_json_u64(&j, "p99", tcb_hist_quantile(&r->cmd, 0.99));
    tcb_json_obj_end(&j);
    json_rate(&j, r);
    tcb_json_u64(&j, "reader_inval_tracking", r->rs.tracking);
    tcb_json_bool(&j, "reader_listener_connected", r->rs.connected);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

/* ---- the run ---- */

static void res_init(foreign_res_t *r, unsigned ops) {
    tcb_hist_reset(&r->lat);
    tcb_hist_reset(&r->cmd);
    for (int k = 0; k < FK_COUNT; k++) {
        tcb_hist_reset(&r->lat_by[k]);
        if (ops & kind_bits[k])
            r->kinds[r->nkinds++] = (enum foreign_kind)k;
    }
}

int tcb_inval_foreign_run(tcb_inval_writer_t *w, const char *self_exe) {
    foreign_res_t *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    res_init(r, w->o->foreign_ops);
    int rc = r->nkinds ? run_phases(w, self_exe, r) : -1;
    tcb_inval_stop_reader(w);
    if (rc == 0 && !tcb_interrupted)
        w->o->json ? print_json(w, r) : print_text(w, r);
    free(r);
    return rc;
}
