/*
 * writes.c - `writes`: what tiercache's write strategies gain and cost against a real
 * database, a SQLite file (writes_db.h: one transaction per writer call, version-guarded
 * upserts, WAL, synchronous=FULL unless --db-sync says otherwise).
 *
 * Write-behind. One caller thread calls tc_set_behind for a while, then tc_flush waits until
 * the library's flusher has written every queued write to SQLite (batches of
 * write_behind_batch, one transaction each). Its throughput counts the calls *and* the
 * drain, so a flusher that falls behind shows. Beside it the same thread writes SQLite
 * directly: one transaction per write (what a caller of a plain synchronous write pays),
 * and --batch writes per transaction (what batching alone gives, with no cache and no
 * queue: the most write-behind could approach). The three run in rounds, in an order that
 * rotates, so a slow spell of a shared machine lands on all of them; each throughput is the
 * median of the rounds, printed with its spread.
 *
 * Write-through. tc_set_through takes the key's lock in Redis, calls the writer (one
 * transaction), then stores the value while the lock holds. Against it, the floor: the
 * same transaction plus one raw SET, the least any write-through costs (the source is
 * written, then the cache is told). Calls alternate between the two, so both see the same
 * machine; the difference is what the caller pays for the lock, which is what keeps two
 * racing writers from leaving the cache and the source disagreeing.
 *
 * Keys never repeat unless -n is given (then ids cycle over n keys, and write-behind may
 * coalesce a key's older queued write into its newer one). Every write-behind value starts
 * with its write's sequence number, so after the rounds the bench checks that SQLite holds
 * every key's newest write: a throughput over lost writes would measure nothing.
 */
#include "multi.h"
#include "writes_db.h"

#include "checks.h"
#include "fmt.h"
#include "hist.h"
#include "json.h"
#include "redis_info.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS        3u
#define FLUSH_MS      60000u /* tc_flush's limit: a drain longer than this is an error */
#define WARM_BEHIND   200u   /* unmeasured writes: lease taken, scripts loaded */
#define WARM_DIRECT   5u
#define TOP_CMDS      12
#define KEY_CAP       32u
#define SEQ_HEX       16u /* a write-behind value starts with its sequence number */
#define BEHIND_PREFIX "wr:"

/* What is measured. The first three run in rotating rounds; the floor's two parts are
 * timed inside each floor call. */
typedef enum strat {
    S_ONE,    /* SQLite directly, one transaction per write */
    S_BATCH,  /* SQLite directly, --batch writes per transaction */
    S_BEHIND, /* tc_set_behind, then tc_flush */
    S_ROUNDS, /* the strategies above run in rounds */
    S_THROUGH = S_ROUNDS,
    S_FLOOR,         /* one transaction + one raw SET */
    S_FLOOR_DB,      /* its transaction */
    S_FLOOR_REDIS,   /* its SET */
    S_THROUGH_DB,    /* the writer's transaction inside tc_set_through */
    S_THROUGH_REDIS, /* the rest of tc_set_through: the lock, the store */
    S_COUNT
} strat_t;

/* Key tags: each strategy writes its own rows (and Redis keys). */
static const char *const tag[S_COUNT] = {"d1:", "dn:", "wb:", "wt:", "wf:", "", "", "", ""};
static const char *const strat_id[S_COUNT] = {"direct_one_per_transaction",
                                              "direct_batched",
                                              "write_behind",
                                              "write_through",
                                              "floor_sqlite_plus_set",
                                              "floor_sqlite",
                                              "floor_redis_set",
                                              "through_sqlite",
                                              "through_redis"};

/* The Redis CPU probe: one call of each costs Redis's main thread this much. */
typedef enum cpu_call { CPU_SET, CPU_TC_SET, CPU_BEHIND, CPU_THROUGH, CPU_COUNT } cpu_call_t;
static const char *const cpu_id[CPU_COUNT] = {"redis_set", "tc_set", "tc_set_behind",
                                              "tc_set_through"};

typedef struct res {
    tcb_hist_t lat;  /* one call: a write, a transaction (S_BATCH), tc_set_behind... */
    uint64_t writes; /* writes made in the measured rounds */
    uint64_t ns;     /* the time they took (S_BEHIND: the calls and the drain) */
    double rate[ROUNDS];
    unsigned nrates;
    double med, min, max; /* of the per-round writes/s */
    uint64_t errors;
    int first_error;
} res_t;

/* What write-behind did beyond its rate. */
typedef struct behind {
    uint64_t calls_ns, drain_ns; /* sums over the rounds */
    uint64_t backlog_max;        /* queued writes when the calls stopped (XLEN), worst round */
    uint64_t rejected;           /* TC_EFULL answers, each retried after 1 ms */
    tcb_db_counters_t writer;    /* the flusher's transactions */
    uint64_t written, coalesced, retries, dead;
    tcb_info_t redis; /* Redis's counters over the rounds, drains included */
    long long rows;   /* rows under "wb:" after the last drain */
    uint64_t rows_expected, rows_checked, rows_wrong;
    uint64_t wbv_keys; /* the flusher's version records left in Redis */
    long long wbv_bytes;
} behind_t;

typedef struct writes {
    const tcb_opts_t *o;
    tcb_env_t env;
    tcb_db_t db;
    int db_open;
    tc_cache_t *c;
    redisContext *raw; /* the floor's SETs */
    unsigned batch, delay_ms, max_queue;
    uint64_t nkeys; /* ids cycle over nkeys; 0: never repeat */
    unsigned char *value;
    char (*keys)[KEY_CAP]; /* batch keys for S_BATCH */
    tc_write_t *ws;
    uint64_t seq[S_COUNT]; /* writes made so far per strategy, warm-up included */
    char ttl[24];
    res_t res[S_COUNT];
    behind_t wb;
    char top[400];            /* the Redis commands behind one write-behind write */
    double cpu_ns[CPU_COUNT]; /* Redis main-thread CPU per call, NaN when unknown */
    unsigned cpu_calls;
    int failed; /* a call failed or the check did: exit 1 */
} writes_t;

/* ---------------- keys and values ---------------- */

static uint64_t key_id(const writes_t *w, uint64_t seq) {
    return w->nkeys ? seq % w->nkeys : seq;
}

/* tag + "k" + 16 hex digits into out; returns the length. */
static size_t make_key(strat_t s, uint64_t id, char out[KEY_CAP]) {
    size_t tl = strlen(tag[s]);
    memcpy(out, tag[s], tl);
    tcb_key_format(id, out + tl);
    return tl + TCB_KEY_LEN;
}

static void put_seq(unsigned char *v, uint64_t seq) {
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < SEQ_HEX; i++)
        v[i] = (unsigned char)hex[(seq >> (4 * (SEQ_HEX - 1 - i))) & 0xf];
}

static void note_error(res_t *r, int rc) {
    if (r->errors++ == 0)
        r->first_error = rc;
}

/* ---------------- one write of each kind ---------------- */

/* n writes of strategy s straight to SQLite in one transaction. */
static int direct(writes_t *w, strat_t s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = w->seq[s]++, id = key_id(w, seq);
        w->ws[i] = (tc_write_t){.kind = TC_WRITE_SET,
                                .key = w->keys[i],
                                .klen = make_key(s, id, w->keys[i]),
                                .value = w->value,
                                .vlen = tcb_vsize_for(&w->o->vsize, id),
                                .version = seq + 1};
    }
    return tcb_db_write(&w->db, w->ws, n);
}

static int behind_call(writes_t *w) {
    char key[KEY_CAP];
    uint64_t seq = w->seq[S_BEHIND]++, id = key_id(w, seq);
    size_t klen = make_key(S_BEHIND, id, key), vlen = tcb_vsize_for(&w->o->vsize, id);
    if (vlen >= SEQ_HEX)
        put_seq(w->value, seq);
    tc_opts_t opts = TC_OPTS_INIT;
    opts.ttl_ms = w->o->ttl_ms;
    int rc;
    while ((rc = tc_set_behind(w->c, key, klen, w->value, vlen, &opts)) == TC_EFULL &&
           !tcb_interrupted) {
        w->wb.rejected++; /* back-pressure: a real caller waits too */
        tcb_multi_sleep_us(1000);
    }
    return rc;
}

/* tc_set_through; *db_ns: the part spent in the writer (its transaction). */
static int through_call(writes_t *w, uint64_t *db_ns) {
    char key[KEY_CAP];
    uint64_t seq = w->seq[S_THROUGH]++, id = key_id(w, seq);
    size_t klen = make_key(S_THROUGH, id, key);
    tc_opts_t opts = TC_OPTS_INIT;
    opts.ttl_ms = w->o->ttl_ms;
    tcb_db_counters_t a, b;
    tcb_db_counters(&w->db, &a);
    int rc = tc_set_through(w->c, key, klen, w->value, tcb_vsize_for(&w->o->vsize, id), &opts);
    tcb_db_counters(&w->db, &b);
    *db_ns = b.ns - a.ns;
    return rc;
}

/* The floor: the transaction, then SET <run prefix>wf:<key>; each part timed. */
static int floor_call(writes_t *w, uint64_t *db_ns, uint64_t *redis_ns) {
    uint64_t t0 = tcb_now_ns();
    int rc = direct(w, S_FLOOR, 1);
    uint64_t t1 = tcb_now_ns();
    char rkey[160];
    int rlen =
        snprintf(rkey, sizeof rkey, "%s%.*s", w->env.prefix, (int)w->ws[0].klen, w->keys[0]);
    const char *argv[5] = {"SET", rkey, (const char *)w->value, "PX", w->ttl};
    size_t lens[5] = {3, (size_t)rlen, w->ws[0].vlen, 2, strlen(w->ttl)};
    redisReply *r = redisCommandArgv(w->raw, 5, argv, lens);
    int rrc = !r ? TC_EUNAVAILABLE : r->type == REDIS_REPLY_ERROR ? TC_EREDIS : 0;
    freeReplyObject(r);
    *db_ns = t1 - t0;
    *redis_ns = tcb_now_ns() - t1;
    return rc ? rc : rrc;
}

/* ---------------- the rounds ---------------- */

/* Writes for one round of strategy s: the whole budget split over the rounds. */
static uint64_t round_quota(const writes_t *w, unsigned round) {
    uint64_t ops = w->o->ops;
    if (!ops)
        return UINT64_MAX;
    uint64_t q = ops / ROUNDS + (round < ops % ROUNDS);
    return q ? q : 1;
}

static void add_rate(res_t *r, uint64_t writes, uint64_t ns) {
    r->writes += writes;
    r->ns += ns;
    if (r->nrates < ROUNDS)
        r->rate[r->nrates++] = ns ? (double)writes * 1e9 / (double)ns : NAN;
}

static void direct_round(writes_t *w, strat_t s, unsigned round) {
    res_t *r = &w->res[s];
    uint64_t quota = round_quota(w, round), budget = w->o->duration_ns / ROUNDS, n = 0;
    size_t per = s == S_BATCH ? w->batch : 1;
    uint64_t t0 = tcb_now_ns(), now = t0;
    while (n < quota && (w->o->ops || now - t0 < budget) && !tcb_interrupted) {
        size_t k = quota - n < per ? (size_t)(quota - n) : per;
        int rc = direct(w, s, k);
        uint64_t t1 = tcb_now_ns();
        tcb_hist_record(&r->lat, t1 - now);
        if (rc != 0)
            note_error(r, rc);
        n += k;
        now = t1;
    }
    add_rate(r, n, now - t0);
}

static uint64_t queue_len(writes_t *w) {
    redisReply *r = redisCommand(w->env.ctl, "XLEN %s" BEHIND_PREFIX "wb", w->env.prefix);
    uint64_t n = r && r->type == REDIS_REPLY_INTEGER ? (uint64_t)r->integer : 0;
    freeReplyObject(r);
    return n;
}

/* Before and after one write-behind round: what the flusher and Redis did in it. */
typedef struct behind_snap {
    tcb_db_counters_t db;
    tc_stats_t st;
    tcb_info_t info;
    int info_ok;
} behind_snap_t;

static void behind_snap(writes_t *w, behind_snap_t *s) {
    tcb_db_counters(&w->db, &s->db);
    tc_stats(w->c, &s->st);
    s->info_ok = tcb_info_fetch(w->env.ctl, &s->info) == 0;
}

static void behind_account(writes_t *w, const behind_snap_t *a, const behind_snap_t *b) {
    behind_t *wb = &w->wb;
    wb->writer.calls += b->db.calls - a->db.calls;
    wb->writer.rows += b->db.rows - a->db.rows;
    wb->writer.ns += b->db.ns - a->db.ns;
    wb->writer.failures += b->db.failures - a->db.failures;
    wb->written += b->st.wb_written - a->st.wb_written;
    wb->coalesced += b->st.wb_coalesced - a->st.wb_coalesced;
    wb->retries += b->st.wb_retries - a->st.wb_retries;
    wb->dead += b->st.wb_dead - a->st.wb_dead;
    if (a->info_ok && b->info_ok) {
        tcb_info_t d;
        tcb_info_delta(&a->info, &b->info, &d);
        tcb_info_add(&wb->redis, &d);
    }
}

static void behind_round(writes_t *w, unsigned round) {
    res_t *r = &w->res[S_BEHIND];
    uint64_t quota = round_quota(w, round), budget = w->o->duration_ns / ROUNDS, n = 0;
    behind_snap_t before, after;
    behind_snap(w, &before);
    uint64_t t0 = tcb_now_ns(), now = t0;
    while (n < quota && (w->o->ops || now - t0 < budget) && !tcb_interrupted) {
        int rc = behind_call(w);
        uint64_t t1 = tcb_now_ns();
        tcb_hist_record(&r->lat, t1 - now);
        if (rc != 0)
            note_error(r, rc);
        n++;
        now = t1;
    }
    uint64_t backlog = queue_len(w);
    int rc = tc_flush(w->c, FLUSH_MS);
    uint64_t t2 = tcb_now_ns();
    if (rc != 0)
        note_error(r, rc);
    behind_snap(w, &after);
    behind_account(w, &before, &after);
    w->wb.calls_ns += now - t0;
    w->wb.drain_ns += t2 - now;
    if (backlog > w->wb.backlog_max)
        w->wb.backlog_max = backlog;
    add_rate(r, n, t2 - t0);
}

static void run_round(writes_t *w, strat_t s, unsigned round) {
    if (s == S_BEHIND)
        behind_round(w, round);
    else
        direct_round(w, s, round);
}

/* Write-through and its floor, alternating (which goes first alternates too). */
static void through_phase(writes_t *w) {
    uint64_t pairs = w->o->ops ? w->o->ops : UINT64_MAX, budget = w->o->duration_ns;
    uint64_t t0 = tcb_now_ns(), spent[2] = {0, 0};
    for (uint64_t i = 0; i < pairs && !tcb_interrupted; i++) {
        if (!w->o->ops && tcb_now_ns() - t0 >= 2 * budget)
            break;
        for (unsigned k = 0; k < 2; k++) {
            uint64_t a = tcb_now_ns(), db_ns = 0, redis_ns = 0;
            int through = (k ^ (unsigned)(i & 1)) == 0;
            int rc = through ? through_call(w, &db_ns) : floor_call(w, &db_ns, &redis_ns);
            uint64_t dt = tcb_now_ns() - a;
            res_t *r = &w->res[through ? S_THROUGH : S_FLOOR];
            tcb_hist_record(&r->lat, dt);
            spent[!through] += dt;
            r->writes++;
            if (rc != 0)
                note_error(r, rc);
            if (through) {
                tcb_hist_record(&w->res[S_THROUGH_DB].lat, db_ns);
                tcb_hist_record(&w->res[S_THROUGH_REDIS].lat, dt > db_ns ? dt - db_ns : 0);
            } else {
                tcb_hist_record(&w->res[S_FLOOR_DB].lat, db_ns);
                tcb_hist_record(&w->res[S_FLOOR_REDIS].lat, redis_ns);
            }
        }
    }
    w->res[S_THROUGH].ns = spent[0];
    w->res[S_FLOOR].ns = spent[1];
}

/* ---------------- what one call costs Redis ---------------- */

/* CPU seconds of Redis's main thread (INFO cpu); NaN when not reported. Its own INFO is a
 * few microseconds, noise against the calls between two readings. */
static double redis_cpu_s(redisContext *c) {
    static const char *const fields[] = {
        "used_cpu_sys_main_thread:", "used_cpu_user_main_thread:", "used_cpu_sys:",
        "used_cpu_user:"};
    redisReply *r = redisCommand(c, "INFO cpu");
    double v[4] = {NAN, NAN, NAN, NAN};
    for (int i = 0; r && r->type == REDIS_REPLY_STRING && i < 4; i++) {
        const char *at = strstr(r->str, fields[i]);
        v[i] = at ? strtod(at + strlen(fields[i]), NULL) : NAN;
    }
    freeReplyObject(r);
    /* Before Redis 6.2 only the whole process is reported. */
    return !isnan(v[0] + v[1]) ? v[0] + v[1] : v[2] + v[3];
}

static int cpu_one(writes_t *w, cpu_call_t k, uint64_t i) {
    char key[KEY_CAP], rkey[160];
    uint64_t ignored;
    size_t klen = make_key(S_THROUGH, i, key), vlen = tcb_vsize_for(&w->o->vsize, i);
    key[0] = 'c'; /* "ct:": keys of their own */
    switch (k) {
    case CPU_SET: {
        int rlen = snprintf(rkey, sizeof rkey, "%s%.*s", w->env.prefix, (int)klen, key);
        const char *argv[5] = {"SET", rkey, (const char *)w->value, "PX", w->ttl};
        size_t lens[5] = {3, (size_t)rlen, vlen, 2, strlen(w->ttl)};
        redisReply *r = redisCommandArgv(w->raw, 5, argv, lens);
        int rc = !r ? TC_EUNAVAILABLE : r->type == REDIS_REPLY_ERROR ? TC_EREDIS : 0;
        freeReplyObject(r);
        return rc;
    }
    case CPU_TC_SET:
        return tc_set(w->c, key, klen, w->value, vlen, w->o->ttl_ms);
    case CPU_BEHIND:
        return behind_call(w);
    case CPU_THROUGH:
        return through_call(w, &ignored);
    case CPU_COUNT:
        break;
    }
    return TC_EINVAL;
}

/* Each kind of call cpu_calls times between two INFO cpu readings (tc_set_behind's with
 * the tc_flush that writes them: the flusher's share is part of its cost). */
static void cpu_probe(writes_t *w) {
    w->cpu_calls = w->o->ops && w->o->ops < 500 ? (unsigned)w->o->ops : 500;
    for (int k = 0; k < CPU_COUNT && !tcb_interrupted; k++) {
        double a = redis_cpu_s(w->env.ctl);
        int rc = 0;
        for (unsigned i = 0; i < w->cpu_calls && rc == 0; i++)
            rc = cpu_one(w, (cpu_call_t)k, i);
        if (rc == 0 && k == CPU_BEHIND)
            rc = tc_flush(w->c, FLUSH_MS);
        double b = redis_cpu_s(w->env.ctl);
        w->cpu_ns[k] = rc == 0 ? (b - a) * 1e9 / w->cpu_calls : NAN;
        if (rc != 0) {
            fprintf(stderr, "tiercache-bench: writes: Redis CPU probe: %s failed: %s\n",
                    cpu_id[k], tc_strerror(rc));
            w->failed = 1;
        }
    }
}

/* Unmeasured: SQLite's pages and statements warm, the flusher's lease and stream group
 * taken, the scripts loaded, every connection open. */
static int warm_up(writes_t *w) {
    int rc = 0;
    for (unsigned i = 0; i < WARM_DIRECT && rc == 0; i++)
        rc = direct(w, S_ONE, 1);
    if (rc == 0)
        rc = direct(w, S_BATCH, w->batch);
    for (unsigned i = 0; i < WARM_BEHIND && rc == 0; i++)
        rc = behind_call(w);
    if (rc == 0)
        rc = tc_flush(w->c, FLUSH_MS);
    uint64_t a, b;
    for (unsigned i = 0; i < WARM_DIRECT && rc == 0; i++) {
        rc = through_call(w, &a);
        if (rc == 0)
            rc = floor_call(w, &a, &b);
    }
    if (rc != 0)
        fprintf(stderr, "tiercache-bench: writes: warm-up failed: %s%s%s\n",
                rc < 0 ? tc_strerror(rc) : "error", w->db.error[0] ? "; SQLite: " : "",
                w->db.error);
    return rc;
}

/* ---------------- after the rounds ---------------- */

typedef struct check {
    const writes_t *w;
    uint64_t total; /* write-behind writes made, warm-up included */
    uint64_t checked, wrong;
} check_t;

/* Does this row hold its key's newest write? */
static void check_row(void *arg, const void *k, size_t klen, const void *v, size_t vlen) {
    check_t *c = arg;
    size_t tl = strlen(tag[S_BEHIND]);
    uint64_t id;
    if (klen != tl + TCB_KEY_LEN || tcb_key_parse((const char *)k + tl, TCB_KEY_LEN, &id)) {
        c->wrong++;
        return;
    }
    if (!v || vlen < SEQ_HEX)
        return; /* too short to carry its sequence number: counted, not checked */
    char hex[SEQ_HEX + 1];
    memcpy(hex, v, SEQ_HEX);
    hex[SEQ_HEX] = '\0';
    uint64_t seq = strtoull(hex, NULL, 16), n = c->w->nkeys;
    uint64_t newest = n ? id + n * ((c->total - 1 - id) / n) : id;
    c->checked++;
    c->wrong += id >= c->total || seq != newest;
}

static void check_source(writes_t *w) {
    check_t c = {.w = w, .total = w->seq[S_BEHIND]};
    w->wb.rows = tcb_db_scan(&w->db, tag[S_BEHIND], check_row, &c);
    w->wb.rows_expected = w->nkeys && w->nkeys < c.total ? w->nkeys : c.total;
    w->wb.rows_checked = c.checked;
    w->wb.rows_wrong = c.wrong;
    if (w->wb.rows < 0 || (uint64_t)w->wb.rows != w->wb.rows_expected || c.wrong)
        w->failed = 1;
}

/* The flusher's version records (<prefix>wbv:<key>, 7 days) left in Redis. */
static void count_versions(writes_t *w) {
    char pattern[160], cursor[32] = "0", sample[200] = "";
    snprintf(pattern, sizeof pattern, "%s" BEHIND_PREFIX "wbv:*", w->env.prefix);
    do {
        redisReply *r =
            redisCommand(w->env.ctl, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        w->wb.wbv_keys += r->element[1]->elements;
        if (!sample[0] && r->element[1]->elements)
            snprintf(sample, sizeof sample, "%s", r->element[1]->element[0]->str);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisReply *r = sample[0] ? redisCommand(w->env.ctl, "MEMORY USAGE %s", sample) : NULL;
    w->wb.wbv_bytes = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
}

/* "1.0 evalsha + 0.93 xreadgroup + ...": Redis commands per write-behind write. */
static void describe_cmds(writes_t *w) {
    const tcb_info_t *d = &w->wb.redis;
    double n = (double)w->res[S_BEHIND].writes;
    int used[TCB_INFO_MAX_CMDS] = {0};
    w->top[0] = '\0';
    for (int k = 0; k < TOP_CMDS && n > 0; k++) {
        size_t best = d->ncmds;
        for (size_t i = 0; i < d->ncmds; i++)
            if (!used[i] && d->cmds[i].calls && strcmp(d->cmds[i].name, "info") != 0 &&
                (best == d->ncmds || d->cmds[i].calls > d->cmds[best].calls))
                best = i;
        if (best == d->ncmds)
            break;
        used[best] = 1;
        size_t len = strlen(w->top);
        snprintf(w->top + len, sizeof w->top - len, "%s%.2g %s", k ? " + " : "",
                 (double)d->cmds[best].calls / n, d->cmds[best].name);
    }
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summarize(writes_t *w) {
    for (int s = 0; s < S_ROUNDS; s++) {
        res_t *r = &w->res[s];
        double v[ROUNDS];
        memcpy(v, r->rate, sizeof v);
        qsort(v, r->nrates, sizeof v[0], cmp_dbl);
        r->min = r->nrates ? v[0] : NAN;
        r->max = r->nrates ? v[r->nrates - 1] : NAN;
        r->med = tcb_multi_median(v, r->nrates);
    }
    for (int s = S_THROUGH; s <= S_FLOOR; s++)
        w->res[s].med =
            w->res[s].ns ? (double)w->res[s].writes * 1e9 / (double)w->res[s].ns : NAN;
    for (int s = 0; s < S_COUNT; s++)
        if (w->res[s].errors)
            w->failed = 1;
    describe_cmds(w);
    const behind_t *wb = &w->wb;
    if (wb->rejected)
        tcb_warn("write-behind: the queue was full (write_behind_max_queue %u) %llu times; "
                 "each of those calls waited 1 ms and tried again, inside its latency",
                 w->max_queue, (unsigned long long)wb->rejected);
    if (wb->retries || wb->dead || wb->writer.failures)
        tcb_warn("write-behind: the writer failed %llu times (%llu retried, %llu "
                 "dead-lettered)%s%s: the rates include that",
                 (unsigned long long)wb->writer.failures, (unsigned long long)wb->retries,
                 (unsigned long long)wb->dead, w->db.error[0] ? "; SQLite: " : "", w->db.error);
}

/* ---------------- output ---------------- */

static double p(const res_t *r, double q) {
    return (double)tcb_hist_quantile(&r->lat, q);
}

static void print_rate_row(const writes_t *w, strat_t s, const char *name, const char *per) {
    const res_t *r = &w->res[s];
    char a[32], b[32], c[32], d[16], e[16];
    snprintf(b, sizeof b, "%s-%s", tcb_fmt_count((uint64_t)(r->min + 0.5), a, sizeof a),
             tcb_fmt_count((uint64_t)(r->max + 0.5), c, sizeof c));
    printf("  %-38s %10s %18s %10s %10s  %s\n", name,
           tcb_fmt_count((uint64_t)(r->med + 0.5), a, sizeof a), b,
           tcb_fmt_ns(p(r, 0.5), d, sizeof d), tcb_fmt_ns(p(r, 0.99), e, sizeof e), per);
}

static void print_lat_row(const writes_t *w, strat_t s, const char *name) {
    const res_t *r = &w->res[s];
    char a[16], b[16], c[16];
    printf("  %-44s %10s %10s %10s\n", name, tcb_fmt_ns(p(r, 0.5), a, sizeof a),
           tcb_fmt_ns(p(r, 0.99), b, sizeof b), tcb_fmt_ns((double)r->lat.max, c, sizeof c));
}

static void print_behind(const writes_t *w) {
    const res_t *one = &w->res[S_ONE], *bat = &w->res[S_BATCH], *wb = &w->res[S_BEHIND];
    const behind_t *x = &w->wb;
    char a[32], b[32], c[32], batch[48];
    printf("\n  %-38s %10s %18s %10s %10s\n", "write-behind vs SQLite directly", "writes/s",
           "rounds min-max", "p50", "p99");
    print_rate_row(w, S_ONE, "SQLite, 1 write per transaction", "per write");
    snprintf(batch, sizeof batch, "SQLite, %u writes per transaction", w->batch);
    print_rate_row(w, S_BATCH, batch, "per transaction");
    print_rate_row(w, S_BEHIND, "tc_set_behind, then tc_flush", "per call");
    printf("\n  >> write-behind: %.1fx the writes/s of one transaction per write, %.2fx of %u "
           "writes per\n     transaction; the caller waits %.3gx as long at p50 (%.3gx at "
           "p99) as one transaction\n",
           wb->med / one->med, wb->med / bat->med, w->batch, p(wb, 0.5) / p(one, 0.5),
           p(wb, 0.99) / p(one, 0.99));
    double total = (double)(x->calls_ns + x->drain_ns);
    printf("  writes/s of write-behind count the drain: %s writes in %.2f s of calls + %.2f s "
           "of tc_flush;\n  the queue held at most %s writes when the calls stopped\n",
           tcb_fmt_count(wb->writes, a, sizeof a), (double)x->calls_ns / 1e9,
           (double)x->drain_ns / 1e9, tcb_fmt_count(x->backlog_max, b, sizeof b));
    printf("  flusher: %s transactions of %.1f writes on average (write_behind_batch %u, "
           "delay %u ms),\n  %.0f%% of the run inside the writer (SQLite); %s coalesced, "
           "%llu retried, %llu dead\n",
           tcb_fmt_count(x->writer.calls, a, sizeof a),
           x->writer.calls ? (double)x->writer.rows / (double)x->writer.calls : 0.0, w->batch,
           w->delay_ms, total > 0 ? 100.0 * (double)x->writer.ns / total : 0.0,
           tcb_fmt_count(x->coalesced, c, sizeof c), (unsigned long long)x->retries,
           (unsigned long long)x->dead);
    printf("  Redis per write-behind write: %.2f commands (%s)\n",
           wb->writes ? (double)x->redis.commands / (double)wb->writes : 0.0, w->top);
    printf("  left in Redis: %s version records (<prefix>wbv:<key>, 7-day TTL), %lld B each\n",
           tcb_fmt_count(x->wbv_keys, a, sizeof a), x->wbv_bytes);
    printf("  SQLite after the last tc_flush: %lld rows of %llu keys written, %llu checked, "
           "%llu not\n  holding their newest write%s\n",
           x->rows, (unsigned long long)x->rows_expected, (unsigned long long)x->rows_checked,
           (unsigned long long)x->rows_wrong,
           x->rows >= 0 && (uint64_t)x->rows == x->rows_expected && !x->rows_wrong
               ? " (OK)"
               : " (FAILED)");
}

static void print_through(const writes_t *w) {
    const res_t *t = &w->res[S_THROUGH], *f = &w->res[S_FLOOR];
    char a[16], b[16];
    printf("\n  %-44s %10s %10s %10s\n", "write-through, time per call", "p50", "p99", "max");
    print_lat_row(w, S_FLOOR_DB, "  SQLite transaction (part of the floor)");
    print_lat_row(w, S_FLOOR_REDIS, "  one raw SET (part of the floor)");
    print_lat_row(w, S_FLOOR, "floor: the transaction + one SET");
    print_lat_row(w, S_THROUGH, "tc_set_through");
    print_lat_row(w, S_THROUGH_DB, "  the writer's transaction (inside it)");
    print_lat_row(w, S_THROUGH_REDIS, "  the rest: Redis lock, store, unlock");
    double d50 = p(t, 0.5) - p(f, 0.5), d99 = p(t, 0.99) - p(f, 0.99);
    printf("\n  >> tc_set_through costs the caller %s%s at p50 (%.2fx the floor) and %s%s at "
           "p99\n     beyond the transaction and one round trip (%llu calls each, "
           "alternating)\n",
           d50 < 0 ? "-" : "+", tcb_fmt_ns(fabs(d50), a, sizeof a), p(t, 0.5) / p(f, 0.5),
           d99 < 0 ? "-" : "+", tcb_fmt_ns(fabs(d99), b, sizeof b),
           (unsigned long long)t->writes);
}

static void print_cpu(const writes_t *w) {
    static const char *const name[CPU_COUNT] = {
        "raw SET", "tc_set", "tc_set_behind (its flushing included)", "tc_set_through"};
    char a[16], b[32];
    printf("\n  %-44s %10s %14s\n", "Redis main-thread CPU per call", "CPU", "most calls/s");
    for (int k = 0; k < CPU_COUNT; k++) {
        double ns = w->cpu_ns[k];
        printf("  %-44s %10s %14s\n", name[k], tcb_fmt_ns(ns, a, sizeof a),
               ns > 0 ? tcb_fmt_count((uint64_t)(1e9 / ns), b, sizeof b) : "-");
    }
    printf("  (INFO used_cpu_*_main_thread over %u calls of each: one Redis serves at most "
           "that many\n  calls per second, from every process together)\n",
           w->cpu_calls);
}

static void print_errors(const writes_t *w) {
    for (int s = 0; s < S_COUNT; s++)
        if (w->res[s].errors)
            printf("  errors: %s failed %llu times, first %s%s%s\n", strat_id[s],
                   (unsigned long long)w->res[s].errors, tc_err_name(w->res[s].first_error),
                   w->db.error[0] ? "; SQLite: " : "", w->db.error);
}

static void print_text(const writes_t *w) {
    char vs[48];
    printf("\ntiercache-bench writes: SQLite %s, %s (WAL, synchronous=%s), %s values, %s\n",
           sqlite3_libversion(), w->db.path, tcb_db_sync_name(w->o->db_sync),
           tcb_vsize_name(&w->o->vsize, vs, sizeof vs),
           w->env.owned ? "throwaway redis-server" : w->env.url_shown);
    printf("  one caller thread; every write is a version-guarded upsert%s; %u rounds per "
           "strategy,\n  rotating order\n",
           w->nkeys ? ", keys cycling" : " of a new key", ROUNDS);
    print_behind(w);
    print_through(w);
    print_cpu(w);
    print_errors(w);
    printf("\n");
    tcb_warnings_print(stdout);
}

static void json_res(tcb_json_t *j, const writes_t *w, strat_t s) {
    const res_t *r = &w->res[s];
    tcb_json_obj_begin(j, strat_id[s]);
    if (s < S_ROUNDS || s == S_THROUGH || s == S_FLOOR) {
        tcb_json_u64(j, "writes", r->writes);
        tcb_json_dbl(j, "writes_per_s", r->med);
    }
    if (s < S_ROUNDS) {
        tcb_json_dbl(j, "writes_per_s_min", r->min);
        tcb_json_dbl(j, "writes_per_s_max", r->max);
    }
    tcb_json_str(j, "latency_of", s == S_BATCH ? "transaction" : "call");
    tcb_json_u64(j, "p50_ns", (uint64_t)p(r, 0.5));
    tcb_json_u64(j, "p99_ns", (uint64_t)p(r, 0.99));
    tcb_json_u64(j, "max_ns", r->lat.max);
    tcb_json_u64(j, "errors", r->errors);
    tcb_json_obj_end(j);
}

static void json_behind(tcb_json_t *j, const writes_t *w) {
    const behind_t *x = &w->wb;
    tcb_json_obj_begin(j, "write_behind_detail");
    tcb_json_u64(j, "calls_ns", x->calls_ns);
    tcb_json_u64(j, "drain_ns", x->drain_ns);
    tcb_json_u64(j, "queue_max_when_calls_stopped", x->backlog_max);
    tcb_json_u64(j, "rejected_full", x->rejected);
    tcb_json_u64(j, "writer_transactions", x->writer.calls);
    tcb_json_u64(j, "writer_rows", x->writer.rows);
    tcb_json_u64(j, "writer_ns", x->writer.ns);
    tcb_json_u64(j, "written", x->written);
    tcb_json_u64(j, "coalesced", x->coalesced);
    tcb_json_u64(j, "retries", x->retries);
    tcb_json_u64(j, "dead", x->dead);
    tcb_json_dbl(j, "redis_commands_per_write",
                 w->res[S_BEHIND].writes
                     ? (double)x->redis.commands / (double)w->res[S_BEHIND].writes
                     : NAN);
    tcb_json_str(j, "redis_commands", w->top);
    tcb_json_u64(j, "version_records_left", x->wbv_keys);
    tcb_json_dbl(j, "version_record_bytes", (double)x->wbv_bytes);
    tcb_json_dbl(j, "rows", (double)x->rows);
    tcb_json_u64(j, "rows_expected", x->rows_expected);
    tcb_json_u64(j, "rows_checked", x->rows_checked);
    tcb_json_u64(j, "rows_wrong", x->rows_wrong);
    tcb_json_obj_end(j);
}

static void print_json(const writes_t *w) {
    const res_t *r = w->res;
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "writes");
    tcb_json_str(&j, "redis", w->env.url_shown);
    tcb_json_str(&j, "sqlite_version", sqlite3_libversion());
    tcb_json_str(&j, "sqlite_path", w->db.path);
    tcb_json_str(&j, "sqlite_synchronous", tcb_db_sync_name(w->o->db_sync));
    tcb_json_u64(&j, "batch", w->batch);
    tcb_json_u64(&j, "rounds", ROUNDS);
    for (int s = 0; s < S_COUNT; s++)
        json_res(&j, w, (strat_t)s);
    json_behind(&j, w);
    tcb_json_obj_begin(&j, "redis_cpu_ns_per_call");
    for (int k = 0; k < CPU_COUNT; k++)
        tcb_json_dbl(&j, cpu_id[k], w->cpu_ns[k]);
    tcb_json_u64(&j, "calls", w->cpu_calls);
    tcb_json_obj_end(&j);
    tcb_json_obj_begin(&j, "ratios");
    tcb_json_dbl(&j, "behind_vs_one_per_transaction", r[S_BEHIND].med / r[S_ONE].med);
    tcb_json_dbl(&j, "behind_vs_batched", r[S_BEHIND].med / r[S_BATCH].med);
    tcb_json_dbl(&j, "behind_p50_vs_one_per_transaction_p50",
                 p(&r[S_BEHIND], 0.5) / p(&r[S_ONE], 0.5));
    tcb_json_dbl(&j, "through_p50_over_floor_ns", p(&r[S_THROUGH], 0.5) - p(&r[S_FLOOR], 0.5));
    tcb_json_dbl(&j, "through_p99_over_floor_ns",
                 p(&r[S_THROUGH], 0.99) - p(&r[S_FLOOR], 0.99));
    tcb_json_dbl(&j, "through_p50_vs_floor_p50", p(&r[S_THROUGH], 0.5) / p(&r[S_FLOOR], 0.5));
    tcb_json_obj_end(&j);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

/* ---------------- the command ---------------- */

static int setup(writes_t *w) {
    char err[512];
    tc_config_t lib;
    tc_config_init(&lib);
    w->batch = w->o->wb_batch ? w->o->wb_batch : lib.write_behind_batch;
    w->delay_ms = lib.write_behind_delay_ms;
    w->max_queue = lib.write_behind_max_queue;
    w->nkeys = (w->o->given & TCB_GIVEN_KEYS) ? w->o->keys : 0;
    snprintf(w->ttl, sizeof w->ttl, "%llu", (unsigned long long)w->o->ttl_ms);
    size_t vmax = tcb_vsize_max(&w->o->vsize);
    w->value = malloc(vmax + SEQ_HEX + 1);
    w->keys = calloc(w->batch, sizeof *w->keys);
    w->ws = calloc(w->batch, sizeof *w->ws);
    if (!w->value || !w->keys || !w->ws) {
        fprintf(stderr, "tiercache-bench: writes: out of memory\n");
        return -1;
    }
    memset(w->value, 'v', vmax + SEQ_HEX + 1);
    if (tcb_db_open(&w->db, w->o->db_path, w->o->db_sync, err, sizeof err) != 0) {
        fprintf(stderr, "tiercache-bench: writes: %s\n", err);
        return -1;
    }
    w->db_open = 1;
    if (tcb_env_open(&w->env, w->o) != 0)
        return -1;
    w->raw = tcb_rconn_open(&w->env.ep, 5000, err, sizeof err);
    if (!w->raw) {
        fprintf(stderr, "tiercache-bench: writes: %s\n", err);
        return -1;
    }
    tcb_multi_cfg_t mc = {.sub = BEHIND_PREFIX,
                          .l1_bytes = 16u << 20,
                          .writer = tcb_db_write,
                          .writer_arg = &w->db,
                          .wb_batch = w->batch};
    w->c = tcb_multi_open(&w->env, &mc, "writes");
    return w->c ? 0 : -1;
}

static int run(writes_t *w) {
    if (setup(w) != 0 || warm_up(w) != 0)
        return -1;
    tcb_status(w->o,
               "writes: %u rounds of SQLite directly (1 and %u per transaction) and "
               "write-behind, then write-through",
               ROUNDS, w->batch);
    for (unsigned r = 0; r < ROUNDS && !tcb_interrupted; r++)
        for (unsigned k = 0; k < S_ROUNDS; k++)
            run_round(w, (strat_t)((r + k) % S_ROUNDS), r);
    through_phase(w);
    cpu_probe(w);
    if (tcb_interrupted)
        return -1;
    check_source(w);
    count_versions(w);
    summarize(w);
    w->o->json ? print_json(w) : print_text(w);
    return w->failed ? -1 : 0;
}

int tcb_cmd_writes(const tcb_opts_t *o) {
    writes_t *w = calloc(1, sizeof *w);
    if (!w)
        return 1;
    w->o = o;
    for (int s = 0; s < S_COUNT; s++)
        tcb_hist_reset(&w->res[s].lat);
    int rc = run(w);
    tc_close(w->c);
    if (w->raw)
        redisFree(w->raw);
    tcb_env_close(&w->env);
    if (w->db_open)
        tcb_db_close(&w->db);
    free(w->value);
    free(w->keys);
    free(w->ws);
    free(w);
    return rc == 0 ? 0 : 1;
}
