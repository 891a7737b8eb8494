/*
 * test_coherence.c - many processes, many threads, real faults, and an oracle that judges
 * every read: no read may be older than the last completed write by more than the
 * documented bound, and once things are quiet every process must agree with Redis.
 *
 * Cast: a TCP redis-server (fixture), the fault proxy (support/proxy.h) in front of it,
 * and PROCS tc-stress workers (stress/tc_stress.c) of THREADS threads each, every one with
 * its own cache on the proxy's URL, all sharing the oracle file (stress/oracle.h) that
 * records every write and against which every value read is checked. stress/harness.h
 * spawns the workers, reads their reports and holds the verdicts (shared with
 * test_foreign.c); this file holds the load's shape and the faults.
 *
 * Schedule, run by this test's main thread while the workers hammer away:
 *   RUN      rounds of faults, one every FAULT_PERIOD_MS, in this order (round_order;
 *            TC_STRESS_FAULTS picks a subset), until TC_STRESS_SECONDS have passed:
 *              pubsub_kill      CLIENT KILL TYPE pubsub, on a direct connection
 *              cut_subscribers  the proxy silences every pub/sub link without a FIN;
 *                               CUT_SUBSCRIBERS_MS later it closes them
 *              kill9_restart    SIGKILL, KILL9_DOWN_MS down, restarted on the same port
 *                               (no persistence: its data is gone)
 *              sigstop          redis-server frozen SIGSTOP_MS, then SIGCONT
 *              cut_all          the proxy silences everything for CUT_ALL_MS, then heals
 *              pause_write      CLIENT PAUSE PAUSE_MS WRITE (last: see round_order)
 *   HEALTHY  HEALTHY_MS of load without faults (cold keys are no longer written)
 *   QUIET    writers stop; we wait 2 x BOUND
 *   VERIFY   each worker reads every key through its cache and compares with Redis.
 * Every fault is logged in the oracle, so a stale read names the fault it followed.
 *
 * Asserted: every worker finished and reported; every fault kind ran (and really hit:
 * subscribers killed or cut); enough reads happened, and nearly all of them could be
 * judged, for the verdict to mean something; zero stale reads, zero values nobody wrote,
 * zero disagreements with Redis. Every worker's report is in the log, pass or fail: its
 * first stale examples and its worst, each with the fault it followed and what Redis held,
 * and the times its listener was down.
 *
 * The second test runs the same schedule over a ring: two servers, each behind its own
 * proxy, the workers' redis_url listing both (one cache per server behind each handle), each
 * fault aimed at one server in turn; the verdicts are the same, and both servers must end up
 * holding keys.
 *
 * Duration: one round by default (DEFAULT_FAULT_SECONDS, about 12 s in all);
 * TC_STRESS_SECONDS=120 runs rounds for two minutes. TC_STRESS_SEED changes the workers'
 * random choices.
 */
/* tc-test-labels: integration fault */
#include "harness.h"
#include "oracle.h"
#include "peer.h"
#include "proxy.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFIX  "coh:"
#define CHANNEL "coh:inval"

enum shape {
    PROCS = 3,
    THREADS = 3,
    OWN_KEYS = 4, /* single-writer keys per writer thread */
    HOT_KEYS = 8,
    COLD_KEYS_PER_FAULT = 3, /* per writer: one written during the fault, two after it */
    COLD_KEYS = COLD_KEYS_PER_FAULT * TC_FAULT_COUNT, /* per writer */
};

enum schedule_ms {
    DEFAULT_FAULT_SECONDS = 9, /* one round */
    WARMUP_MS = 500,
    FAULT_PERIOD_MS = 1500,
    SIGSTOP_MS = 600,
    KILL9_DOWN_MS = 800, /* past the listener's first back-off steps, as a real restart */
    PAUSE_MS = 700,
    CUT_SUBSCRIBERS_MS = 1000,
    CUT_ALL_MS = 500,
    HEALTHY_MS = 1000,
};

#define QUIET_TIMEOUT_MS (20000u * TC_TEST_SLOW) /* a thread may sit in a 5 s lock wait */
#define WORKER_SLACK_S   (120u * TC_TEST_SLOW)   /* workers' own deadline past the schedule */
#define MIN_READS        (10000u / TC_TEST_SLOW)
#define DEFAULT_SEED     1

/* Two servers, each behind its own proxy: the first test uses the first; the ring test
 * spreads the keys over both (a redis_url listing the two proxies) and aims each fault at
 * one of them in turn. */
#define SERVERS 2

typedef struct run {
    tc_test_redis_t *redis[SERVERS];
    tc_test_proxy_t *proxy[SERVERS];
    int target; /* the server the next fault hits */
    tc_oracle_t *o;
    char dir[64], oracle_path[128], url[160], sockets[512];
    tc_workers_t ws;
    int enabled[TC_FAULT_COUNT];
    unsigned ran[TC_FAULT_COUNT];
    unsigned long evidence[TC_FAULT_COUNT]; /* clients killed, links cut... */
} run_t;

static run_t *R;

/* ---- setup and teardown ---- */

static void setup(void) {
    R = calloc(1, sizeof *R);
    cr_assert_not_null(R);
    tc_workers_init(&R->ws, PROCS);
    tc_test_redis_opts_t opts = {.tcp = 1};
    for (int i = 0; i < SERVERS; i++) {
        R->redis[i] = tc_test_redis_start(&opts);
        R->proxy[i] = tc_test_proxy_start(tc_test_redis_port(R->redis[i]));
        cr_assert_not_null(R->proxy[i], "the proxy did not start");
    }
    snprintf(R->url, sizeof R->url, "redis://127.0.0.1:%d", tc_test_proxy_port(R->proxy[0]));
    snprintf(R->sockets, sizeof R->sockets, "%s", tc_test_redis_socket_path(R->redis[0]));
    strcpy(R->dir, "/tmp/tc-coherence-XXXXXX");
    cr_assert_not_null(mkdtemp(R->dir), "mkdtemp: %s", strerror(errno));
    snprintf(R->oracle_path, sizeof R->oracle_path, "%s/oracle", R->dir);
}

static void teardown(void) {
    if (!R)
        return;
    if (R->o)
        tc_oracle_set_phase(R->o, TC_PHASE_ABORT);
    tc_workers_stop(&R->ws);
    tc_oracle_detach(R->o);
    for (int i = 0; i < SERVERS; i++) {
        tc_test_proxy_stop(R->proxy[i]);
        tc_test_redis_stop(R->redis[i]);
    }
    unlink(R->oracle_path);
    rmdir(R->dir);
    free(R);
    R = NULL;
}

TestSuite(coherence, .init = setup, .fini = teardown, .timeout = 1800);

/* ---- knobs ---- */

static unsigned env_unsigned(const char *name, unsigned dflt) {
    const char *s = getenv(name);
    char *end = NULL;
    unsigned long v = s && *s ? strtoul(s, &end, 10) : 0;
    if (!s || !*s)
        return dflt;
    cr_assert(end && *end == '\0' && v > 0 && v < 100000, "%s='%s' is not a positive number",
              name, s);
    return (unsigned)v;
}

/* TC_STRESS_FAULTS: comma-separated fault names; unset = all. */
static void choose_faults(run_t *r) {
    const char *s = getenv("TC_STRESS_FAULTS");
    for (int k = 0; k < TC_FAULT_COUNT; k++)
        r->enabled[k] = !s || !*s;
    if (!s || !*s)
        return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int k = 0; k < TC_FAULT_COUNT; k++)
            if (strcmp(t, tc_fault_name(k)) == 0)
                r->enabled[k] = found = 1;
        cr_assert(found || strcmp(t, "none") == 0, "TC_STRESS_FAULTS: unknown fault '%s'", t);
    }
}

/* ---- workers ---- */

static void spawn_worker(run_t *r, int i, unsigned seed, unsigned max_seconds) {
    char proc[16], seedbuf[16], maxbuf[16];
    snprintf(proc, sizeof proc, "%d", i);
    snprintf(seedbuf, sizeof seedbuf, "%u", seed);
    snprintf(maxbuf, sizeof maxbuf, "%u", max_seconds);
    const char *argv[] = {TC_TEST_STRESS_PATH, r->oracle_path, r->url,  PREFIX, CHANNEL,
                          r->sockets,          proc,           seedbuf, maxbuf, NULL};
    tc_workers_spawn(&r->ws, (unsigned)i, argv);
}

/* ---- faults ---- */

static redisContext *direct(run_t *r) {
    redisContext *c = tc_test_redis_connect(r->redis[r->target]);
    cr_assert_not_null(c, "no direct connection to redis-server for a fault");
    return c;
}

static unsigned long fault_pubsub_kill(run_t *r) {
    redisContext *c = direct(r);
    redisReply *rep = redisCommand(c, "CLIENT KILL TYPE pubsub");
    cr_assert(rep && rep->type == REDIS_REPLY_INTEGER, "CLIENT KILL TYPE pubsub failed");
    unsigned long killed = (unsigned long)rep->integer;
    freeReplyObject(rep);
    redisFree(c);
    return killed;
}

static unsigned long fault_sigstop(run_t *r) {
    tc_test_redis_pause(r->redis[r->target]);
    tc_test_sleep_ms(SIGSTOP_MS);
    tc_test_redis_resume(r->redis[r->target]);
    return 1;
}

static unsigned long fault_kill9(run_t *r) {
    tc_test_redis_kill(r->redis[r->target]);
    tc_test_sleep_ms(KILL9_DOWN_MS);
    tc_test_redis_restart(r->redis[r->target]);
    return 1;
}

static unsigned long fault_pause_write(run_t *r) {
    redisContext *c = direct(r);
    redisReply *rep = redisCommand(c, "CLIENT PAUSE %d WRITE", PAUSE_MS);
    cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "CLIENT PAUSE ... WRITE failed: %s",
              rep && rep->str ? rep->str : "no reply");
    freeReplyObject(rep);
    redisFree(c);
    tc_test_sleep_ms(PAUSE_MS); /* so the fault log's end is the pause's end */
    return 1;
}

static unsigned long fault_cut_subscribers(run_t *r) {
    unsigned cut = tc_test_proxy_cut_subscribers(r->proxy[r->target]);
    tc_test_sleep_ms(CUT_SUBSCRIBERS_MS);
    tc_test_proxy_close_cut(r->proxy[r->target]);
    return cut;
}

static unsigned long fault_cut_all(run_t *r) {
    tc_test_proxy_cut_all(r->proxy[r->target]);
    tc_test_sleep_ms(CUT_ALL_MS);
    tc_test_proxy_heal(r->proxy[r->target]);
    return 1;
}

typedef unsigned long (*fault_fn)(run_t *);

static const fault_fn fault_fns[TC_FAULT_COUNT] = {
    [TC_FAULT_PUBSUB_KILL] = fault_pubsub_kill,
    [TC_FAULT_SIGSTOP] = fault_sigstop,
    [TC_FAULT_KILL9] = fault_kill9,
    [TC_FAULT_PAUSE_WRITE] = fault_pause_write,
    [TC_FAULT_CUT_SUBSCRIBERS] = fault_cut_subscribers,
    [TC_FAULT_CUT_ALL] = fault_cut_all,
};

/* Run one fault, logged in the oracle and on stderr (times on the workers' timeline). */
static void run_fault(run_t *r, int kind) {
    int idx = tc_oracle_fault_begin(r->o, (tc_fault_kind_t)kind);
    uint64_t began = tc_oracle_now_ns();
    unsigned long evidence = fault_fns[kind](r);
    tc_oracle_fault_end(r->o, idx);
    r->ran[kind]++;
    r->evidence[kind] += evidence;
    fprintf(stderr, "coherence: fault %-15s on server %d at %+6.0f ms for %4.0f ms, hit %lu\n",
            tc_fault_name(kind), r->target, tc_oracle_run_ms(r->o, began),
            (double)(tc_oracle_now_ns() - began) / 1e6, evidence);
}

/* The order of a round. pause_write goes last: every other fault makes every listener lose
 * its link, and a listener that comes back flushes its L1, which would wipe out whatever an
 * earlier fault left behind; pause_write leaves the listeners alone, so the final agreement
 * check sees its aftermath untouched. cut_subscribers must not follow kill9_restart: the
 * listeners are still in their reconnect back-off then, and there would be nothing to cut. */
static const tc_fault_kind_t round_order[TC_FAULT_COUNT] = {
    TC_FAULT_PUBSUB_KILL, TC_FAULT_CUT_SUBSCRIBERS, TC_FAULT_KILL9,
    TC_FAULT_SIGSTOP,     TC_FAULT_CUT_ALL,         TC_FAULT_PAUSE_WRITE,
};

/* Whole rounds of one fault per period, until `seconds` have passed; with servers > 1,
 * each fault hits the next server in turn. */
static void run_faults(run_t *r, unsigned seconds, int servers) {
    uint64_t end = tc_test_now_ms() + seconds * 1000u;
    tc_test_sleep_ms(WARMUP_MS);
    do {
        for (int i = 0; i < TC_FAULT_COUNT; i++) {
            if (!r->enabled[round_order[i]])
                continue;
            uint64_t next = tc_test_now_ms() + FAULT_PERIOD_MS;
            run_fault(r, (int)round_order[i]);
            r->target = (r->target + 1) % servers;
            uint64_t now = tc_test_now_ms();
            if (now < next)
                tc_test_sleep_ms((unsigned)(next - now));
        }
        /* Rounds start on the next server: each kind of fault hits each server in turn. */
        if (servers > 1)
            r->target = (r->target + 1) % servers;
    } while (tc_test_now_ms() < end);
}

/* ---- verdicts ---- */

static void assert_faults_hit(const run_t *r) {
    for (int k = 0; k < TC_FAULT_COUNT; k++)
        cr_assert(!r->enabled[k] || r->ran[k] > 0, "fault %s never ran", tc_fault_name(k));
    cr_assert(!r->enabled[TC_FAULT_PUBSUB_KILL] || r->evidence[TC_FAULT_PUBSUB_KILL] > 0,
              "CLIENT KILL TYPE pubsub never killed a subscriber");
    cr_assert(!r->enabled[TC_FAULT_CUT_SUBSCRIBERS] ||
                  r->evidence[TC_FAULT_CUT_SUBSCRIBERS] > 0,
              "the proxy never found a subscriber link to cut");
}

static void assert_coherent(const run_t *r, const tc_stress_totals_t *t) {
    assert_faults_hit(r);
    cr_assert_gt(t->sets_ok, 0, "no write ever completed");
    tc_stress_expect_coherent(t, MIN_READS, TC_STRESS_BOUND_MS);
}

/* ---- the test ---- */

/* One run: PROCS workers on r->url, faults over `servers` servers. */
static void run_coherence(run_t *r, int servers, const char *who) {
    unsigned seconds = env_unsigned("TC_STRESS_SECONDS", DEFAULT_FAULT_SECONDS);
    unsigned seed = env_unsigned("TC_STRESS_SEED", DEFAULT_SEED);
    choose_faults(r);
    tc_oracle_shape_t shape = {.procs = PROCS,
                               .threads = THREADS,
                               .own_keys = OWN_KEYS,
                               .hot_keys = HOT_KEYS,
                               .cold_keys = COLD_KEYS};
    r->o = tc_oracle_create(r->oracle_path, &shape);
    cr_assert_not_null(r->o, "could not create the oracle file");
    unsigned max_seconds = seconds * 2 + WORKER_SLACK_S;
    for (int i = 0; i < PROCS; i++)
        spawn_worker(r, i, seed, max_seconds);
    tc_workers_wait(&r->ws, r->o, tc_oracle_ready, "opened their cache",
                    TC_HARNESS_READY_TIMEOUT_MS);

    uint64_t t0 = tc_test_now_ms();
    tc_oracle_set_phase(r->o, TC_PHASE_RUN);
    run_faults(r, seconds, servers);
    tc_oracle_set_phase(r->o, TC_PHASE_HEALTHY);
    tc_test_sleep_ms(HEALTHY_MS);
    tc_oracle_set_phase(r->o, TC_PHASE_QUIET);
    tc_workers_wait(&r->ws, r->o, tc_oracle_quiet, "stopped writing", QUIET_TIMEOUT_MS);
    tc_test_sleep_ms(2u * TC_STRESS_BOUND_MS);
    tc_oracle_set_phase(r->o, TC_PHASE_VERIFY);
    tc_workers_collect(&r->ws);
    tc_workers_print(&r->ws, who);

    tc_stress_totals_t t;
    tc_stress_totals(&r->ws, &t);
    fprintf(stderr,
            "%s: %u s of faults, %" PRIu64 " ms in all; reads %" PRIu64 " (values %" PRIu64
            ", unjudged %" PRIu64 "), sets ok %" PRIu64 " maybe %" PRIu64 ", dels ok %" PRIu64
            " maybe %" PRIu64 ", stale %" PRIu64 ", disagreements %" PRIu64 "\n",
            who, seconds, tc_test_now_ms() - t0, t.reads, t.values, t.unjudged, t.sets_ok,
            t.sets_maybe, t.dels_ok, t.dels_maybe, t.stale, t.disagree);
    assert_coherent(r, &t);
}

Test(coherence, faults_never_serve_stale_values) {
    run_coherence(R, 1, "coherence");
}

/* The same over a ring of two servers (a redis_url listing both proxies): each fault hits
 * one server, and every read, whichever server holds its key, is judged as above; after the
 * run both servers must hold keys, or the ring was not used. */
Test(coherence, a_ring_of_two_servers_never_serves_stale_values) {
    run_t *r = R;
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d redis://127.0.0.1:%d",
             tc_test_proxy_port(r->proxy[0]), tc_test_proxy_port(r->proxy[1]));
    snprintf(r->sockets, sizeof r->sockets, "%s %s", tc_test_redis_socket_path(r->redis[0]),
             tc_test_redis_socket_path(r->redis[1]));
    run_coherence(r, SERVERS, "coherence (ring)");
    for (int i = 0; i < SERVERS; i++) {
        redisReply *n = tc_test_redis_cmd(r->redis[i], "DBSIZE");
        cr_assert_gt(n->integer, 0, "server %d holds no key: the ring was not used", i);
        freeReplyObject(n);
    }
}
