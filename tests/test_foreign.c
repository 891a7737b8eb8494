/*
 * test_foreign.c - writes that bypass tiercache, under load, judged read by read.
 *
 * A client that is not tiercache (a raw hiredis connection: what redis-cli, or a service
 * in another language, would be) writes plain keys at a steady rate while four processes
 * read them through their caches, and an oracle judges every value read: none may be
 * older than the last completed write by more than the bound the library documents for
 * writes that bypass it with tracking on (one message delay, plus scheduling slack:
 * TC_STRESS_FOREIGN_BOUND_MS in stress/oracle.h says why 250 ms), and once the writer
 * stops every process must agree with Redis.
 *
 * Cast: a private redis-server; PROCS tc-stress workers in the reader role
 * (stress/tc_stress.c) of THREADS threads each, every one with its own cache (plain_keys,
 * tracking bcast or default); and the foreign writer, a thread of this test on its own
 * connection. They share the oracle file (stress/oracle.h): the writer records each write
 * on the oracle's hot keys as writer 0 (start, completion, outcome), and every value a
 * reader gets names the write it came from and is checked against that record.
 *
 * The writer, every WRITE_PERIOD_US, picks a key and an operation: SET of a new value,
 * DEL, or PEXPIRE of EXPIRE_MS. An expiry is recorded as a delete that completes once the
 * key has expired: the writer waits out the TTL before recording it (and before its next
 * write), since until then Redis itself still serves the value.
 *
 * Schedule (stress/harness.h runs the workers):
 *   RUN     RUN_MS of writes and reads, with one fault halfway: CLIENT KILL TYPE pubsub.
 *           Every reader's listener loses its link, and with it the tracking registration
 *           its notices came through; with tracking on a lost link flushes L1 at once, so
 *           no staleness is allowed across it either.
 *   QUIET   the writer stops, the readers stop, then 2 x the bound passes;
 *   VERIFY  each reader compares every key, read through its cache, with Redis.
 *
 * Asserted, for bcast and for default tracking: the writer completed MIN_WRITES writes;
 * the fault reached every reader (each one's listener reconnected); enough reads, nearly
 * all of them judged; the readers served values from L1 and evicted keys on Redis's
 * notices, so the verdict covers cached values; zero stale reads, zero values nobody
 * wrote, zero disagreements with Redis.
 * The control runs the same writer against readers without tracking. Plain keys refuse
 * to open that way, so there the writer stores tiercache's own value format (a header with
 * a plausible version) under tiercache's key names, which such a cache reads: it must
 * report stale values, or the checks above could never fail.
 */
/* tc-test-labels: integration fault */
#include "harness.h"
#include "oracle.h"
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"
#include "valfmt.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHANNEL "frn:inval"
/* Plain keys are the oracle's key names ("hot:3"), and bcast tracking reports writes
 * under the cache's key_prefix: the prefix is the names' own. */
#define PLAIN_PREFIX "hot:"
#define TC_PREFIX    "frn:"

enum shape {
    PROCS = 4,
    THREADS = 2,
    HOT_KEYS = 4,
    WRITER = 0, /* the foreign writer's number in the oracle */
};

enum schedule_ms {
    RUN_MS = 4000,
    CONTROL_RUN_MS = 1500,
    EXPIRE_MS = 2,
    /* Redis keeps expiry times in whole milliseconds: one more and the key has surely
     * expired (a read then deletes it, and Redis reports that too). */
    EXPIRE_WAIT_MS = EXPIRE_MS + 1,
};

/* The writer's operation mix, in per cent (cumulative thresholds). */
enum op_mix {
    MIX_SET = 80,    /* 80% SET of a new value */
    MIX_DEL = 90,    /* 10% DEL */
    MIX_TOTAL = 100, /* 10% PEXPIRE */
};

#define WRITE_PERIOD_US  1000u
#define QUIET_TIMEOUT_MS (5000u * TC_TEST_SLOW)
#define WORKER_SLACK_S   (60u * TC_TEST_SLOW)
#define MIN_READS        (20000u / TC_TEST_SLOW)
#define MIN_WRITES       (1000u / TC_TEST_SLOW)
#define WRITER_SEED      7u
#define READER_SEED      "1" /* the readers' key choices (tc-stress's SEED) */
#define NS_PER_MS        1000000ull

/* How the writer stores a value, and how the readers' caches read it. */
typedef enum key_format {
    FMT_PLAIN, /* the key is the Redis key, the value raw (plain_keys) */
    FMT_TC,    /* tiercache's <prefix>"k:"<key> and value header (the control only) */
} key_format_t;

typedef enum foreign_op { FOP_SET, FOP_DEL, FOP_EXPIRE, FOP_COUNT } foreign_op_t;

/* One run's plan: what the readers are, how long, whether the fault runs. */
typedef struct plan {
    key_format_t fmt;
    const char *tracking; /* the workers' word: off, bcast, default */
    unsigned run_ms;
    int fault;
} plan_t;

typedef struct writer_counts {
    uint64_t ok, maybe, by_op[FOP_COUNT];
} writer_counts_t;

typedef struct run {
    tc_test_redis_t *redis;
    tc_oracle_t *o;
    char dir[64], oracle_path[128];
    tc_workers_t ws;
    const plan_t *plan;
    pthread_t writer;
    int writer_started;
    atomic_int stop;
    writer_counts_t wc; /* the writer thread's, read after it is joined */
    unsigned long killed;
} run_t;

static run_t *R;

/* ---- setup and teardown ---- */

static void stop_writer(run_t *r) {
    atomic_store(&r->stop, 1);
    if (r->writer_started)
        pthread_join(r->writer, NULL);
    r->writer_started = 0;
}

static void setup(void) {
    R = calloc(1, sizeof *R);
    cr_assert_not_null(R);
    tc_workers_init(&R->ws, PROCS);
    R->redis = tc_test_redis_start(NULL);
    strcpy(R->dir, "/tmp/tc-foreign-XXXXXX");
    cr_assert_not_null(mkdtemp(R->dir), "mkdtemp: %s", strerror(errno));
    snprintf(R->oracle_path, sizeof R->oracle_path, "%s/oracle", R->dir);
}

static void teardown(void) {
    if (!R)
        return;
    stop_writer(R);
    if (R->o)
        tc_oracle_set_phase(R->o, TC_PHASE_ABORT);
    tc_workers_stop(&R->ws);
    tc_oracle_detach(R->o);
    tc_test_redis_stop(R->redis);
    unlink(R->oracle_path);
    rmdir(R->dir);
    free(R);
    R = NULL;
}

TestSuite(foreign, .init = setup, .fini = teardown, .timeout = 300);

/* ---- the foreign writer ---- */

static void sleep_until_ns(uint64_t t_ns) {
    struct timespec ts = {(time_t)(t_ns / 1000000000ull), (long)(t_ns % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* The Redis key of an oracle key. */
static void redis_key(const run_t *r, unsigned key, char *out, size_t cap) {
    char name[TC_ORACLE_NAME_MAX];
    tc_oracle_key_name(r->o, key, name);
    if (r->plan->fmt == FMT_PLAIN)
        snprintf(out, cap, "%s", name);
    else
        snprintf(out, cap, "%sk:%s", TC_PREFIX, name);
}

/* The stored string of write (key, seq): the oracle's value, raw or behind tiercache's
 * header with a version a writer could have produced (Redis's clock in microseconds is
 * what tiercache's own script starts from). Returns its length. */
static size_t stored_value(const run_t *r, unsigned key, uint64_t seq, unsigned char *out) {
    char val[TC_ORACLE_VALUE_MAX];
    size_t len = tc_oracle_value(r->o, key, WRITER, seq, val);
    if (r->plan->fmt == FMT_PLAIN) {
        memcpy(out, val, len);
        return len;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t version = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    return tc__val_encode(0, version, 0, val, len, out);
}

static redisReply *send_op(run_t *r, redisContext *c, unsigned key, foreign_op_t op,
                           uint64_t seq) {
    char rkey[TC_ORACLE_NAME_MAX + 16];
    redis_key(r, key, rkey, sizeof rkey);
    if (op == FOP_DEL)
        return redisCommand(c, "DEL %s", rkey);
    if (op == FOP_EXPIRE)
        return redisCommand(c, "PEXPIRE %s %d", rkey, EXPIRE_MS);
    unsigned char val[TC_ORACLE_VALUE_MAX + TC__VAL_HDR_LEN];
    size_t len = stored_value(r, key, seq, val);
    return redisCommand(c, "SET %s %b", rkey, val, len);
}

/* One write, recorded in the oracle. A failed command is a "maybe": Redis may have run it. */
static void foreign_write(run_t *r, redisContext *c, unsigned key, foreign_op_t op) {
    uint64_t seq =
        tc_oracle_write_begin(r->o, key, WRITER, op == FOP_SET ? TC_OP_SET : TC_OP_DEL);
    redisReply *rep = c ? send_op(r, c, key, op, seq) : NULL;
    int ok = rep && rep->type != REDIS_REPLY_ERROR;
    if (rep)
        freeReplyObject(rep);
    if (ok && op == FOP_EXPIRE)
        tc_test_sleep_ms(EXPIRE_WAIT_MS); /* the delete completes when the key expires */
    tc_oracle_write_end(r->o, key, WRITER, seq, ok ? TC_OUT_OK : TC_OUT_MAYBE,
                        ok ? TC_OK : TC_EREDIS);
    r->wc.by_op[op]++;
    if (ok)
        r->wc.ok++;
    else
        r->wc.maybe++;
}

static foreign_op_t pick_op(unsigned *seed) {
    unsigned dice = (unsigned)rand_r(seed) % MIX_TOTAL;
    return dice < MIX_SET ? FOP_SET : dice < MIX_DEL ? FOP_DEL : FOP_EXPIRE;
}

/* Steady rate: one write per period on a fixed schedule (a slow write is caught up, not
 * followed by a burst: the schedule restarts from now). */
static void *writer_main(void *arg) {
    run_t *r = arg;
    redisContext *c = tc_test_redis_connect(r->redis);
    unsigned seed = WRITER_SEED;
    uint64_t next = tc_oracle_now_ns();
    while (!atomic_load(&r->stop)) {
        if (!c || c->err) {
            redisFree(c);
            c = tc_test_redis_connect(r->redis);
        }
        unsigned key = tc_oracle_hot_key(r->o, (unsigned)rand_r(&seed) % HOT_KEYS);
        foreign_write(r, c, key, pick_op(&seed));
        next += WRITE_PERIOD_US * 1000ull;
        uint64_t now = tc_oracle_now_ns();
        if (next < now)
            next = now;
        sleep_until_ns(next);
    }
    redisFree(c);
    return NULL;
}

/* ---- the run ---- */

static void spawn_reader(run_t *r, unsigned i) {
    char proc[16], maxbuf[16];
    snprintf(proc, sizeof proc, "%u", i);
    snprintf(maxbuf, sizeof maxbuf, "%u", r->plan->run_ms / 1000u * 2u + WORKER_SLACK_S);
    int plain = r->plan->fmt == FMT_PLAIN;
    const char *argv[] = {TC_TEST_STRESS_PATH,
                          r->oracle_path,
                          tc_test_redis_url(r->redis),
                          plain ? PLAIN_PREFIX : TC_PREFIX,
                          CHANNEL,
                          tc_test_redis_socket_path(r->redis),
                          proc,
                          READER_SEED,
                          maxbuf,
                          "reader",
                          plain ? "plain" : "tc",
                          r->plan->tracking,
                          NULL};
    tc_workers_spawn(&r->ws, i, argv);
}

/* CLIENT KILL TYPE pubsub, logged in the oracle so a stale read would name it. */
static void kill_subscribers(run_t *r) {
    int idx = tc_oracle_fault_begin(r->o, TC_FAULT_PUBSUB_KILL);
    redisContext *c = tc_test_redis_connect(r->redis);
    cr_assert_not_null(c, "no connection for the fault");
    redisReply *rep = redisCommand(c, "CLIENT KILL TYPE pubsub");
    cr_assert(rep && rep->type == REDIS_REPLY_INTEGER, "CLIENT KILL TYPE pubsub failed");
    r->killed = (unsigned long)rep->integer;
    freeReplyObject(rep);
    redisFree(c);
    tc_oracle_fault_end(r->o, idx);
    fprintf(stderr, "foreign: CLIENT KILL TYPE pubsub at %+.0f ms: %lu killed\n",
            tc_oracle_run_ms(r->o, tc_oracle_now_ns()), r->killed);
}

static void run_writes(run_t *r) {
    tc_oracle_set_phase(r->o, TC_PHASE_RUN);
    cr_assert_eq(pthread_create(&r->writer, NULL, writer_main, r), 0);
    r->writer_started = 1;
    if (r->plan->fault) {
        tc_test_sleep_ms(r->plan->run_ms / 2u);
        kill_subscribers(r);
        tc_test_sleep_ms(r->plan->run_ms - r->plan->run_ms / 2u);
    } else {
        tc_test_sleep_ms(r->plan->run_ms);
    }
    tc_oracle_set_phase(r->o, TC_PHASE_QUIET);
    stop_writer(r);
}

/* The whole schedule; the workers' reports are then in r->ws. */
static void run_plan(run_t *r, const plan_t *plan) {
    r->plan = plan;
    tc_oracle_shape_t shape = {.procs = PROCS, .threads = THREADS, .hot_keys = HOT_KEYS};
    r->o = tc_oracle_create(r->oracle_path, &shape);
    cr_assert_not_null(r->o, "could not create the oracle file");
    for (unsigned i = 0; i < PROCS; i++)
        spawn_reader(r, i);
    tc_workers_wait(&r->ws, r->o, tc_oracle_ready, "opened their cache",
                    TC_HARNESS_READY_TIMEOUT_MS);
    run_writes(r);
    tc_workers_wait(&r->ws, r->o, tc_oracle_quiet, "stopped reading", QUIET_TIMEOUT_MS);
    tc_test_sleep_ms(2u * TC_STRESS_FOREIGN_BOUND_MS);
    tc_oracle_set_phase(r->o, TC_PHASE_VERIFY);
    tc_workers_collect(&r->ws);
    tc_workers_print(&r->ws, "foreign");
    fprintf(stderr,
            "foreign: writer (%s keys, readers' tracking %s): %" PRIu64 " ok, %" PRIu64
            " failed; %" PRIu64 " SET, %" PRIu64 " DEL, %" PRIu64 " PEXPIRE\n",
            plan->fmt == FMT_PLAIN ? "plain" : "tiercache", plan->tracking, r->wc.ok,
            r->wc.maybe, r->wc.by_op[FOP_SET], r->wc.by_op[FOP_DEL], r->wc.by_op[FOP_EXPIRE]);
}

/* ---- verdicts ---- */

/* A counter from worker i's `stats` line (tc_stats at the end of its run). */
static uint64_t worker_stat(const run_t *r, unsigned i, const char *name) {
    const char *line = tc_workers_line(&r->ws, i, "stats ");
    uint64_t v = line ? tc_test_stat(line, name) : UINT64_MAX;
    cr_assert_neq(v, UINT64_MAX, "worker %u reported no %s", i, name);
    return v;
}

/* The run tested something: writes happened, the fault reached every reader, and each
 * reader served values from L1 and evicted keys on Redis's notices. */
static void assert_meaningful(const run_t *r) {
    cr_assert_geq(r->wc.ok, MIN_WRITES, "the foreign writer completed only %" PRIu64 " writes",
                  r->wc.ok);
    cr_assert_geq(r->killed, PROCS, "CLIENT KILL TYPE pubsub killed %lu of %d listeners",
                  r->killed, PROCS);
    for (unsigned i = 0; i < PROCS; i++) {
        cr_assert_geq(worker_stat(r, i, "listener_reconnects"), 1,
                      "worker %u's listener never lost its link to the fault", i);
        cr_assert_gt(worker_stat(r, i, "l1_hits"), 0, "worker %u never served from L1", i);
        cr_assert_gt(worker_stat(r, i, "inval_tracking"), 0,
                     "worker %u never evicted a key on Redis's notice", i);
    }
}

static void readers_never_serve_stale_values(const char *tracking) {
    plan_t plan = {.fmt = FMT_PLAIN, .tracking = tracking, .run_ms = RUN_MS, .fault = 1};
    run_plan(R, &plan);
    tc_stress_totals_t t;
    tc_stress_totals(&R->ws, &t);
    fprintf(stderr,
            "foreign: tracking %s: reads %" PRIu64 " (values %" PRIu64 ", unjudged %" PRIu64
            "), stale %" PRIu64 " (bound %u ms), impossible %" PRIu64 ", disagreements %" PRIu64
            "\n",
            tracking, t.reads, t.values, t.unjudged, t.stale, TC_STRESS_FOREIGN_BOUND_MS,
            t.impossible, t.disagree);
    assert_meaningful(R);
    tc_stress_expect_coherent(&t, MIN_READS, TC_STRESS_FOREIGN_BOUND_MS);
}

Test(foreign, bcast_readers_never_serve_stale_values) {
    readers_never_serve_stale_values("bcast");
}

Test(foreign, default_readers_never_serve_stale_values) {
    readers_never_serve_stale_values("default");
}

/* The control: the same writer, readers without tracking. Nothing tells them of the
 * writes, so the oracle must see stale values (and disagreements at the end). */
Test(foreign, without_tracking_readers_serve_stale_values) {
    plan_t plan = {.fmt = FMT_TC, .tracking = "off", .run_ms = CONTROL_RUN_MS};
    run_plan(R, &plan);
    tc_stress_totals_t t;
    tc_stress_totals(&R->ws, &t);
    fprintf(stderr,
            "foreign: control: reads %" PRIu64 ", stale %" PRIu64 ", disagreements %" PRIu64
            "\n",
            t.reads, t.stale, t.disagree);
    cr_assert_geq(R->wc.ok, MIN_WRITES / 4u, "the writer completed only %" PRIu64 " writes",
                  R->wc.ok);
    cr_assert_eq(t.impossible, 0, "the readers misread the writer's values: %s",
                 t.first_impossible);
    cr_assert_gt(t.stale, 0,
                 "%" PRIu64 " values read, none stale: the oracle cannot see "
                 "a cache that is never told of a write",
                 t.values);
}
