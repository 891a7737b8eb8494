/*
 * tc_stress.c - tc-stress, one worker process of the stress suites (tests/test_coherence.c,
 * and in the reader role below tests/test_foreign.c).
 *
 *   tc-stress ORACLE REDIS_URL KEY_PREFIX CHANNEL REDIS_SOCKET PROC SEED MAX_SECONDS
 *             [reader plain|tc off|bcast|default]
 *
 * It maps the oracle file (stress/oracle.h: the shared record of every write), opens its
 * own cache on REDIS_URL (the test's proxy; or a list of URLs, one cache over several
 * servers, with REDIS_SOCKET listing their sockets in the same order, space-separated) with
 * the suite's small timeouts, reports ready,
 * and waits for the test to set the phase to RUN. Then `threads` threads (from the oracle's
 * shape) each mix, until the phase reaches QUIET:
 *
 *   tc_set   of one of its own single-writer keys (source of truth updated first);
 *   tc_set / tc_del of a many-writer (hot) key, or during and just after a fault, of
 *            its own cold key for that fault;
 *   tc_fetch of any single-writer key, the loader reading that key's source of truth;
 *   tc_get   of any key (cold ones less often).
 *
 * Every write is recorded in the oracle (start, end, outcome: ok, or maybe on any error)
 * and every value read is judged against it (oracle.h has the rule): a stale read, or a
 * value nobody wrote, is counted and its first examples kept. After QUIET the worker
 * reports quiet, waits for VERIFY and then compares its cache's tc_get of every key with
 * Redis itself (raw GET over REDIS_SOCKET, decoded with tc__val_decode): they must be equal,
 * both absent counting as equal. It prints its report on stdout, line by line:
 *
 *   summary proc=P reads=.. stale=.. impossible=.. disagree=.. ...   (always first)
 *   errors op=set TC_ETIMEDOUT=.. ...                              (codes seen per op)
 *   stale_by_fault none=.. pubsub_kill=.. ...
 *   stale key=.. op=get at=+4808 got=w4#120(done +3410) first=w4#121(set, done +4507)
 *         late_ms=301 newest=.. bound_ms=300 fault=kill9_restart@+3500(over)
 *                                                                  (the first few)
 *   worst stale ...                                                (the latest-served one)
 *   listener_down +3501..+5051 ...       (when this process's listener was not subscribed)
 *   disagree key=.. cache=w2#9 redis=w5#12
 *   stats listener_connected=.. listener_reconnects=.. ...          (tc_stats)
 *
 * and exits 0, or 3 when MAX_SECONDS passed before the test said VERIFY. Times (at=, done,
 * @, listener_down) are milliseconds since the test started the RUN phase: the timeline
 * of the test's fault log. A stale example also says what Redis held right then
 * (redis_now=), which tells a stale L1 from a stale Redis. The parent death signal (set by
 * the test before exec) ends a worker whose test died.
 *
 * The reader role (the three trailing words; test_foreign.c) is the same process with no
 * writes: a client that is not tiercache writes the oracle's hot keys, and the threads
 * only tc_get them, through a cache opened with that key format (plain: the key is the
 * Redis key, the value raw; tc: tiercache's own) and that tracking mode, pausing
 * READ_PAUSE_US between reads. Every value is judged against the tighter bound of writes
 * that bypass tiercache (TC_STRESS_FOREIGN_BOUND_MS), and VERIFY, the report and the exit
 * codes are as above.
 *
 * This file drives the load; judge.c judges reads, verifies and reports; worker.h holds
 * what they share.
 */
#include "worker.h"

#include "endpoint.h"
#include "ring.h"
#include "ring_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keys never expire during a run: an expiry would make a fetch's add-if-absent race a
 * real one (the cache-aside race docs/consistency.md leaves uncovered), not a library bug. */
#define VALUE_TTL_MS     (3600u * 1000u)
#define PHASE_POLL_MS    5u
#define LISTENER_POLL_MS 2
/* A reader thread's pause between reads: four processes of spinning L1 hits would starve
 * the writer, Redis and the listeners on a two-core machine, and the point is how fresh
 * the values are, not how many. */
#define READ_PAUSE_US 20u
#define EXIT_USAGE    2
#define EXIT_TIMEOUT  3
#define EXIT_SETUP    4

/* The suite's configuration (tc_test_config in tests/support/peer.c, which a worker cannot
 * link: it asserts with Criterion). */
#define CFG_CONNECT_TIMEOUT_MS  200u
#define CFG_COMMAND_TIMEOUT_MS  100u
#define CFG_BREAKER_COOLDOWN_MS 200u

/* The operation mix, in per cent of one thread's operations (cumulative thresholds). */
enum op_mix {
    MIX_SET_OWN = 15,    /* 15% tc_set of an own key */
    MIX_SET_SHARED = 23, /*  8% tc_set of a many-writer key */
    MIX_DEL_SHARED = 26, /*  3% tc_del of a many-writer key */
    MIX_FETCH_OWN = 51,  /* 25% tc_fetch of any own key; the rest: tc_get of any key */
    MIX_TOTAL = 100,
    COLD_ONE_IN = 2,     /* during a fault, 1 in 2 of those go to a cold key instead */
    GET_COLD_ONE_IN = 8, /* 1 in 8 tc_get reads a cold key */
};

/* Cold keys are written while a fault is on and for this long after it ends: the recovery
 * (breaker cooldown, listener back-off) is where a write's local copy can outlive it. */
#define COLD_TAIL_MS  500u
#define COLD_EARLY_MS 150u
/* After a failed write a thread pauses, as a real client would. Without it a thread spins
 * through tens of thousands of instant TC_EUNAVAILABLE writes per second, and each key's
 * ring of records would forget, within milliseconds, the writes that readers still see. */
#define FAILED_WRITE_PAUSE_US 1000u

typedef struct thread_ctx {
    worker_t *wk;
    pthread_t tid;
    unsigned writer;
    unsigned seed;
    counts_t c;
} thread_ctx_t;

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void sleep_us(unsigned us) {
    struct timespec ts = {us / 1000000u, (long)(us % 1000000u) * 1000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- operations ---- */

/* tc_fetch's loader: the source of truth of an own key is its newest write begun. */
static int source_loader(void *arg, const void *key, size_t klen, tc_load_t *ld) {
    worker_t *wk = arg;
    int k = tc_oracle_key_index(wk->o, key, klen);
    if (k < 0 || tc_oracle_key_kind(wk->o, (unsigned)k) != TC_KEY_OWN)
        return TC_EINTERNAL;
    uint64_t seq = tc_oracle_source(wk->o, (unsigned)k);
    if (seq == 0)
        return TC_ENOTFOUND;
    char val[TC_ORACLE_VALUE_MAX];
    size_t n =
        tc_oracle_value(wk->o, (unsigned)k, tc_oracle_key_owner(wk->o, (unsigned)k), seq, val);
    tc_load_set_ttl(ld, VALUE_TTL_MS);
    return tc_load_set_value(ld, val, n);
}

static void do_write(thread_ctx_t *t, unsigned key, tc_oracle_op_t op) {
    worker_t *wk = t->wk;
    char name[TC_ORACLE_NAME_MAX], val[TC_ORACLE_VALUE_MAX];
    size_t nlen = tc_oracle_key_name(wk->o, key, name);
    uint64_t seq = tc_oracle_write_begin(wk->o, key, t->writer, op);
    op_kind_t opk = op == TC_OP_SET ? OPK_SET : OPK_DEL;
    int rc;
    if (op == TC_OP_SET) {
        size_t vlen = tc_oracle_value(wk->o, key, t->writer, seq, val);
        rc = tc_set(wk->cache, name, nlen, val, vlen, VALUE_TTL_MS);
    } else {
        rc = tc_del(wk->cache, name, nlen);
    }
    tc_oracle_write_end(wk->o, key, t->writer, seq, rc == TC_OK ? TC_OUT_OK : TC_OUT_MAYBE, rc);
    t->c.calls[opk]++;
    if (rc == TC_OK) {
        t->c.ok[opk]++;
    } else {
        t->c.maybe[opk]++;
        stress_count_error(&t->c, opk, rc);
        sleep_us(FAILED_WRITE_PAUSE_US);
    }
}

static unsigned pick(thread_ctx_t *t, unsigned n) {
    return (unsigned)rand_r(&t->seed) % n;
}

/* A hot key, or now and then this writer's cold key for the newest fault and the stage
 * it is in (enum cold_slot). */
static unsigned shared_key(thread_ctx_t *t, int faults_on) {
    const tc_oracle_t *o = t->wk->o;
    const tc_oracle_shape_t *s = tc_oracle_shape(o);
    if (faults_on && s->cold_keys == COLD_PER_FAULT * TC_FAULT_COUNT &&
        pick(t, COLD_ONE_IN) == 0) {
        uint64_t since = 0;
        int kind = tc_oracle_fault_recent(o, (uint64_t)COLD_TAIL_MS * NS_PER_MS, &since);
        enum cold_slot slot = since == 0                                    ? COLD_DURING
                              : since < (uint64_t)COLD_EARLY_MS * NS_PER_MS ? COLD_EARLY
                                                                            : COLD_LATE;
        if (kind >= 0)
            return tc_oracle_cold_key(o, t->writer,
                                      (unsigned)kind * COLD_PER_FAULT + (unsigned)slot);
    }
    return tc_oracle_hot_key(o, pick(t, s->hot_keys));
}

/* Any own or hot key, or now and then any writer's cold key. */
static unsigned any_key(thread_ctx_t *t) {
    const tc_oracle_t *o = t->wk->o;
    const tc_oracle_shape_t *s = tc_oracle_shape(o);
    unsigned writers = tc_oracle_writers(o);
    if (s->cold_keys && pick(t, GET_COLD_ONE_IN) == 0)
        return tc_oracle_cold_key(o, pick(t, writers), pick(t, s->cold_keys));
    unsigned k = pick(t, writers * s->own_keys + s->hot_keys);
    return k < writers * s->own_keys ? k : tc_oracle_hot_key(o, k - writers * s->own_keys);
}

static void do_read(thread_ctx_t *t, unsigned key, op_kind_t op) {
    worker_t *wk = t->wk;
    char name[TC_ORACLE_NAME_MAX];
    size_t nlen = tc_oracle_key_name(wk->o, key, name);
    tc_ref_t *ref = NULL;
    uint64_t t_read = tc_oracle_now_ns();
    int rc = op == OPK_FETCH ? tc_fetch(wk->cache, name, nlen, source_loader, wk, &ref)
                             : tc_get(wk->cache, name, nlen, &ref);
    stress_after_read(wk, &t->c, key, op, t_read, rc, ref);
}

static void one_op(thread_ctx_t *t, int faults_on) {
    const tc_oracle_t *o = t->wk->o;
    const tc_oracle_shape_t *s = tc_oracle_shape(o);
    unsigned dice = pick(t, MIX_TOTAL);
    unsigned writers = tc_oracle_writers(o);
    if (dice < MIX_SET_OWN)
        do_write(t, tc_oracle_own_key(o, t->writer, pick(t, s->own_keys)), TC_OP_SET);
    else if (dice < MIX_SET_SHARED)
        do_write(t, shared_key(t, faults_on), TC_OP_SET);
    else if (dice < MIX_DEL_SHARED)
        do_write(t, shared_key(t, faults_on), TC_OP_DEL);
    else if (dice < MIX_FETCH_OWN)
        do_read(t, tc_oracle_own_key(o, pick(t, writers), pick(t, s->own_keys)), OPK_FETCH);
    else
        do_read(t, any_key(t), OPK_GET);
}

/* The reader role: one tc_get of a hot key (a foreign client writes them all). */
static void read_op(thread_ctx_t *t) {
    unsigned hot = tc_oracle_shape(t->wk->o)->hot_keys;
    do_read(t, tc_oracle_hot_key(t->wk->o, pick(t, hot)), OPK_GET);
    sleep_us(READ_PAUSE_US);
}

/* The monitor thread: notes when this process's listener is not subscribed, so a report
 * can show which outages a stale read fell into. */
static void *monitor_main(void *arg) {
    worker_t *wk = arg;
    int was = 1;
    while (tc_oracle_phase(wk->o) < TC_PHASE_QUIET && tc_oracle_now_ns() < wk->deadline_ns) {
        tc_stats_t st;
        if (tc_stats(wk->cache, &st) == TC_OK && st.listener_connected != was) {
            double now = tc_oracle_run_ms(wk->o, tc_oracle_now_ns());
            was = st.listener_connected;
            if (!was && wk->ngaps < MAX_GAPS)
                wk->gap_from[wk->ngaps] = wk->gap_to[wk->ngaps] = now;
            else if (was && wk->ngaps < MAX_GAPS)
                wk->gap_to[wk->ngaps++] = now;
        }
        sleep_ms(LISTENER_POLL_MS);
    }
    if (!was && wk->ngaps < MAX_GAPS)
        wk->gap_to[wk->ngaps++] = -1; /* still down */
    return NULL;
}

static void *thread_main(void *arg) {
    thread_ctx_t *t = arg;
    for (;;) {
        tc_oracle_phase_t ph = tc_oracle_phase(t->wk->o);
        if (ph >= TC_PHASE_QUIET || tc_oracle_now_ns() > t->wk->deadline_ns)
            break;
        if (t->wk->role == ROLE_READER)
            read_op(t);
        else
            one_op(t, ph == TC_PHASE_RUN);
    }
    stress_peek_close();
    return NULL;
}

/* ---- main ---- */

static int open_cache(worker_t *wk, const char *url, const char *channel) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = url;
    cfg.key_prefix = wk->prefix;
    cfg.inval_channel = channel;
    cfg.connect_timeout_ms = CFG_CONNECT_TIMEOUT_MS;
    cfg.command_timeout_ms = CFG_COMMAND_TIMEOUT_MS;
    cfg.breaker_cooldown_ms = CFG_BREAKER_COOLDOWN_MS;
    cfg.listener_ping_ms = TC_STRESS_PING_MS;
    cfg.plain_keys = wk->plain;
    cfg.tracking = wk->tracking;
    tc_error_t err = {0};
    int rc = tc_open(&cfg, &wk->cache, &err);
    if (rc != TC_OK)
        fprintf(stderr, "tc-stress %u: tc_open: %s (%s)\n", wk->proc, tc_err_name(rc), err.msg);
    return rc;
}

/* Wait until the phase reaches at least `want`; 0 when it did, -1 on ABORT or deadline. */
static int wait_phase(const worker_t *wk, tc_oracle_phase_t want) {
    for (;;) {
        tc_oracle_phase_t ph = tc_oracle_phase(wk->o);
        if (ph == TC_PHASE_ABORT || tc_oracle_now_ns() > wk->deadline_ns)
            return -1;
        if (ph >= want)
            return 0;
        sleep_ms(PHASE_POLL_MS);
    }
}

static void run_threads(worker_t *wk, unsigned seed, counts_t *total) {
    thread_ctx_t *t = calloc(wk->threads, sizeof *t);
    pthread_t monitor;
    if (!t || pthread_create(&monitor, NULL, monitor_main, wk) != 0)
        abort();
    for (unsigned i = 0; i < wk->threads; i++) {
        t[i] = (thread_ctx_t){.wk = wk, .writer = wk->proc * wk->threads + i};
        t[i].seed = seed * 7919u + i * 104729u + wk->proc;
        if (pthread_create(&t[i].tid, NULL, thread_main, &t[i]) != 0)
            abort();
    }
    for (unsigned i = 0; i < wk->threads; i++) {
        pthread_join(t[i].tid, NULL);
        stress_add_counts(total, &t[i].c);
    }
    pthread_join(monitor, NULL);
    free(t);
}

/* The reader role's words: "reader", the key format, the tracking mode. 0 or -1. */
static int parse_role(char **words, worker_t *wk) {
    static const char *const tracking[] = {"off", "bcast", "default"}; /* by tc_tracking_t */
    if (strcmp(words[0], "reader") != 0)
        return -1;
    wk->role = ROLE_READER;
    if (strcmp(words[1], "plain") == 0)
        wk->plain = 1;
    else if (strcmp(words[1], "tc") != 0)
        return -1;
    for (int i = 0; i < (int)(sizeof tracking / sizeof tracking[0]); i++)
        if (strcmp(words[2], tracking[i]) == 0) {
            wk->tracking = i;
            return 0;
        }
    return -1;
}

/* REDIS_SOCKET: one socket, or (a ring) one per URL of REDIS_URL's list, in its order;
 * then the ring the cache builds from that list says which socket holds a key. 0 or -1. */
static int parse_servers(worker_t *wk, const char *urls, const char *sockets) {
    char *copy = strdup(sockets), *save = NULL;
    for (char *t = copy ? strtok_r(copy, " ", &save) : NULL; t; t = strtok_r(NULL, " ", &save))
        if (wk->nsockets == STRESS_MAX_SERVERS || !(wk->sockets[wk->nsockets++] = strdup(t))) {
            free(copy);
            return -1;
        }
    free(copy);
    if (wk->nsockets < 2)
        return wk->nsockets == 1 ? 0 : -1;
    char **list = NULL;
    size_t n = 0;
    tc_error_t err = {0};
    if (tc__endpoint_list(urls, &list, &n, &err) != TC_OK || n != wk->nsockets ||
        tc__ring_of_urls(list, n, &wk->ring, &err) != TC_OK) {
        fprintf(stderr, "tc-stress: %zu URLs for %u sockets: %s\n", n, wk->nsockets, err.msg);
        tc__endpoint_list_free(list, n);
        return -1;
    }
    tc__endpoint_list_free(list, n);
    return 0;
}

int main(int argc, char **argv) {
    static worker_t wk;
    if ((argc != 9 && argc != 12) || (argc == 12 && parse_role(argv + 9, &wk) != 0)) {
        fprintf(stderr, "usage: tc-stress ORACLE REDIS_URL KEY_PREFIX CHANNEL REDIS_SOCKET "
                        "PROC SEED MAX_SECONDS [reader plain|tc off|bcast|default]\n");
        return EXIT_USAGE;
    }
    wk.prefix = argv[3];
    if (parse_servers(&wk, argv[2], argv[5]) != 0)
        return EXIT_SETUP;
    wk.proc = (unsigned)strtoul(argv[6], NULL, 10);
    unsigned seed = (unsigned)strtoul(argv[7], NULL, 10);
    wk.bound_ns =
        (uint64_t)(wk.role == ROLE_READER ? TC_STRESS_FOREIGN_BOUND_MS : TC_STRESS_BOUND_MS) *
        NS_PER_MS;
    wk.deadline_ns = tc_oracle_now_ns() + strtoull(argv[8], NULL, 10) * 1000u * NS_PER_MS;
    pthread_mutex_init(&wk.mu, NULL);
    wk.o = tc_oracle_attach(argv[1]);
    if (!wk.o || wk.proc >= tc_oracle_shape(wk.o)->procs)
        return EXIT_SETUP;
    wk.threads = tc_oracle_shape(wk.o)->threads;
    if (open_cache(&wk, argv[2], argv[4]) != TC_OK)
        return EXIT_SETUP;
    tc_oracle_report_ready(wk.o);

    counts_t total = {0};
    int timed_out = wait_phase(&wk, TC_PHASE_RUN) != 0;
    if (!timed_out)
        run_threads(&wk, seed, &total);
    tc_oracle_report_quiet(wk.o);
    timed_out = timed_out || wait_phase(&wk, TC_PHASE_VERIFY) != 0;
    if (!timed_out)
        stress_verify(&wk);
    stress_add_counts(&total, &wk.verify);
    stress_print_report(&wk, &total, timed_out);
    tc_close(wk.cache);
    tc_oracle_detach(wk.o);
    tc__ring_free(wk.ring);
    for (unsigned i = 0; i < wk.nsockets; i++)
        free(wk.sockets[i]);
    pthread_mutex_destroy(&wk.mu);
    return timed_out ? EXIT_TIMEOUT : 0;
}
