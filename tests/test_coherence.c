/*
 * test_coherence.c - many processes, many threads, real faults, and an oracle that judges
 * every read: no read may be older than the last completed write by more than the
 * documented bound, and once things are quiet every process must agree with Redis.
 *
 * Cast: a TCP redis-server (fixture), the fault proxy (support/proxy.h) in front of it,
 * and PROCS tc-stress workers (stress/tc_stress.c) of THREADS threads each, every one with
 * its own cache on the proxy's URL, all sharing the oracle file (stress/oracle.h) that
 * records every write and against which every value read is checked.
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
 * Duration: one round by default (DEFAULT_FAULT_SECONDS, about 12 s in all);
 * TC_STRESS_SECONDS=120 runs rounds for two minutes. TC_STRESS_SEED changes the workers'
 * random choices.
 */
/* tc-test-labels: integration fault */
#include "oracle.h"
#include "peer.h"
#include "proxy.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TC_TEST_STRESS_PATH
#define TC_TEST_STRESS_PATH "tc-stress"
#endif

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
    PHASE_POLL_MS = 10,
};

#define READY_TIMEOUT_MS  (10000u * TC_TEST_SLOW)
#define QUIET_TIMEOUT_MS  (20000u * TC_TEST_SLOW) /* a thread may sit in a 5 s lock wait */
#define REPORT_TIMEOUT_MS (30000u * TC_TEST_SLOW)
#define WORKER_SLACK_S    (120u * TC_TEST_SLOW) /* workers' own deadline past the schedule */
#define MIN_READS         (10000u / TC_TEST_SLOW)
#define UNJUDGED_MAX_PER  100u /* at most 1 value in 100 may be too old for the rings */
#define REPORT_MAX        (64 * 1024)
#define DEFAULT_SEED      1

typedef struct worker_proc {
    pid_t pid;
    int out; /* read end of its stdout */
    int status;
    size_t len;
    char report[REPORT_MAX];
} worker_proc_t;

typedef struct run {
    tc_test_redis_t *redis;
    tc_test_proxy_t *proxy;
    tc_oracle_t *o;
    char dir[64], oracle_path[128], url[64];
    worker_proc_t w[PROCS];
    int enabled[TC_FAULT_COUNT];
    unsigned ran[TC_FAULT_COUNT];
    unsigned long evidence[TC_FAULT_COUNT]; /* clients killed, links cut... */
} run_t;

static run_t *R;

/* ---- setup and teardown ---- */

static void stop_workers(run_t *r) {
    for (int i = 0; i < PROCS; i++) {
        if (r->w[i].pid > 0) {
            kill(r->w[i].pid, SIGKILL);
            while (waitpid(r->w[i].pid, NULL, 0) < 0 && errno == EINTR) {
            }
            r->w[i].pid = 0;
        }
        if (r->w[i].out >= 0)
            close(r->w[i].out);
        r->w[i].out = -1;
    }
}

static void setup(void) {
    R = calloc(1, sizeof *R);
    cr_assert_not_null(R);
    for (int i = 0; i < PROCS; i++)
        R->w[i].out = -1;
    tc_test_redis_opts_t opts = {.tcp = 1};
    R->redis = tc_test_redis_start(&opts);
    R->proxy = tc_test_proxy_start(tc_test_redis_port(R->redis));
    cr_assert_not_null(R->proxy, "the proxy did not start");
    snprintf(R->url, sizeof R->url, "redis://127.0.0.1:%d", tc_test_proxy_port(R->proxy));
    strcpy(R->dir, "/tmp/tc-coherence-XXXXXX");
    cr_assert_not_null(mkdtemp(R->dir), "mkdtemp: %s", strerror(errno));
    snprintf(R->oracle_path, sizeof R->oracle_path, "%s/oracle", R->dir);
}

static void teardown(void) {
    if (!R)
        return;
    if (R->o)
        tc_oracle_set_phase(R->o, TC_PHASE_ABORT);
    stop_workers(R);
    tc_oracle_detach(R->o);
    tc_test_proxy_stop(R->proxy);
    tc_test_redis_stop(R->redis);
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

/* In the child: only async-signal-safe calls until execv. */
static void child_exec(int out, char **argv, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (dup2(out, STDOUT_FILENO) < 0)
        _exit(127);
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    }
    execv(argv[0], argv);
    _exit(127);
}

static void spawn_worker(run_t *r, int i, unsigned seed, unsigned max_seconds) {
    char proc[16], seedbuf[16], maxbuf[16];
    snprintf(proc, sizeof proc, "%d", i);
    snprintf(seedbuf, sizeof seedbuf, "%u", seed);
    snprintf(maxbuf, sizeof maxbuf, "%u", max_seconds);
    char *argv[] = {(char *)TC_TEST_STRESS_PATH,
                    r->oracle_path,
                    r->url,
                    (char *)PREFIX,
                    (char *)CHANNEL,
                    (char *)tc_test_redis_socket_path(r->redis),
                    proc,
                    seedbuf,
                    maxbuf,
                    NULL};
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(fds[1], argv, parent);
    close(fds[1]);
    cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
    r->w[i].pid = pid;
    r->w[i].out = fds[0];
}

/* A worker that has already exited (it failed to start): fail with its status. */
static void assert_alive(run_t *r) {
    for (int i = 0; i < PROCS; i++) {
        int st;
        pid_t got = waitpid(r->w[i].pid, &st, WNOHANG);
        if (got == r->w[i].pid) {
            r->w[i].pid = 0;
            cr_assert_fail("worker %d exited early (status %d): see its stderr above", i, st);
        }
    }
}

static void wait_count(run_t *r, unsigned (*count)(const tc_oracle_t *), const char *what,
                       unsigned timeout_ms) {
    uint64_t deadline = tc_test_now_ms() + timeout_ms;
    while (count(r->o) < PROCS) {
        assert_alive(r);
        cr_assert(tc_test_now_ms() < deadline, "only %u of %d workers %s within %u ms",
                  count(r->o), PROCS, what, timeout_ms);
        tc_test_sleep_ms(PHASE_POLL_MS);
    }
}

/* Read every worker's report to EOF, then reap it. */
static void collect_reports(run_t *r) {
    uint64_t deadline = tc_test_now_ms() + REPORT_TIMEOUT_MS;
    for (int i = 0; i < PROCS; i++) {
        worker_proc_t *w = &r->w[i];
        for (;;) {
            uint64_t now = tc_test_now_ms();
            cr_assert(now < deadline, "worker %d did not finish its report within %u ms", i,
                      REPORT_TIMEOUT_MS);
            struct pollfd pfd = {.fd = w->out, .events = POLLIN};
            if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
                continue;
            ssize_t got = read(w->out, w->report + w->len, sizeof w->report - 1 - w->len);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break;
            w->len += (size_t)got;
        }
        w->report[w->len] = '\0';
        while (waitpid(w->pid, &w->status, 0) < 0 && errno == EINTR) {
        }
        w->pid = 0;
        close(w->out);
        w->out = -1;
    }
}

/* ---- faults ---- */

static redisContext *direct(run_t *r) {
    redisContext *c = tc_test_redis_connect(r->redis);
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
    tc_test_redis_pause(r->redis);
    tc_test_sleep_ms(SIGSTOP_MS);
    tc_test_redis_resume(r->redis);
    return 1;
}

static unsigned long fault_kill9(run_t *r) {
    tc_test_redis_kill(r->redis);
    tc_test_sleep_ms(KILL9_DOWN_MS);
    tc_test_redis_restart(r->redis);
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
    unsigned cut = tc_test_proxy_cut_subscribers(r->proxy);
    tc_test_sleep_ms(CUT_SUBSCRIBERS_MS);
    tc_test_proxy_close_cut(r->proxy);
    return cut;
}

static unsigned long fault_cut_all(run_t *r) {
    tc_test_proxy_cut_all(r->proxy);
    tc_test_sleep_ms(CUT_ALL_MS);
    tc_test_proxy_heal(r->proxy);
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
    fprintf(stderr, "coherence: fault %-15s at %+6.0f ms for %4.0f ms, hit %lu\n",
            tc_fault_name(kind), tc_oracle_run_ms(r->o, began),
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

/* Whole rounds of one fault per period, until `seconds` have passed. */
static void run_faults(run_t *r, unsigned seconds) {
    uint64_t end = tc_test_now_ms() + seconds * 1000u;
    tc_test_sleep_ms(WARMUP_MS);
    do {
        for (int i = 0; i < TC_FAULT_COUNT; i++) {
            if (!r->enabled[round_order[i]])
                continue;
            uint64_t next = tc_test_now_ms() + FAULT_PERIOD_MS;
            run_fault(r, (int)round_order[i]);
            uint64_t now = tc_test_now_ms();
            if (now < next)
                tc_test_sleep_ms((unsigned)(next - now));
        }
    } while (tc_test_now_ms() < end);
}

/* ---- reports ---- */

typedef struct totals {
    uint64_t reads, values, stale, impossible, unjudged, disagree, sets_ok, sets_maybe;
    uint64_t dels_ok, dels_maybe;
    uint64_t stale_by_fault[TC_FAULT_COUNT + 1];
    char first_stale[512], first_impossible[512], first_disagree[320];
    char worst_stale[512];
    uint64_t worst_late_ms;
} totals_t;

static const char *line_starting(const char *report, const char *prefix) {
    size_t n = strlen(prefix);
    for (const char *p = report; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, n) == 0)
            return p;
    return NULL;
}

static void copy_line(char *dst, size_t cap, const char *line) {
    if (!line || dst[0])
        return;
    size_t n = strcspn(line, "\n");
    snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), line);
}

static uint64_t stat_of(const char *line, const char *name, int i) {
    uint64_t v = tc_test_stat(line, name);
    cr_assert_neq(v, UINT64_MAX, "worker %d: no %s= in '%.80s'", i, name, line);
    return v;
}

static void add_report(totals_t *t, int i, const worker_proc_t *w) {
    const char *sum = line_starting(w->report, "summary ");
    cr_assert_not_null(sum, "worker %d printed no summary (exit status %d)", i, w->status);
    t->reads += stat_of(sum, "reads", i);
    t->values += stat_of(sum, "values", i);
    t->stale += stat_of(sum, "stale", i);
    t->impossible += stat_of(sum, "impossible", i);
    t->unjudged += stat_of(sum, "unjudged", i);
    t->disagree += stat_of(sum, "disagree", i);
    t->sets_ok += stat_of(sum, "sets_ok", i);
    t->sets_maybe += stat_of(sum, "sets_maybe", i);
    t->dels_ok += stat_of(sum, "dels_ok", i);
    t->dels_maybe += stat_of(sum, "dels_maybe", i);
    const char *byf = line_starting(w->report, "stale_by_fault ");
    for (int k = 0; byf && k <= TC_FAULT_COUNT; k++)
        t->stale_by_fault[k] += stat_of(byf, tc_fault_name(k < TC_FAULT_COUNT ? k : -1), i);
    copy_line(t->first_stale, sizeof t->first_stale, line_starting(w->report, "stale "));
    copy_line(t->first_impossible, sizeof t->first_impossible,
              line_starting(w->report, "impossible "));
    copy_line(t->first_disagree, sizeof t->first_disagree,
              line_starting(w->report, "disagree "));
    const char *worst = line_starting(w->report, "worst stale ");
    uint64_t late = worst ? tc_test_stat(worst, "late_ms") : 0;
    if (worst && late != UINT64_MAX && late >= t->worst_late_ms) {
        t->worst_late_ms = late;
        t->worst_stale[0] = '\0';
        copy_line(t->worst_stale, sizeof t->worst_stale, worst + strlen("worst "));
    }
}

static void print_reports(const run_t *r) {
    for (int i = 0; i < PROCS; i++) {
        const char *p = r->w[i].report;
        while (*p) {
            size_t n = strcspn(p, "\n");
            fprintf(stderr, "coherence: worker %d: %.*s\n", i, (int)n, p);
            p += n + (p[n] == '\n');
        }
    }
}

static void stale_by_fault_text(const totals_t *t, char *out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    for (int k = 0; k <= TC_FAULT_COUNT && n < cap; k++)
        if (t->stale_by_fault[k])
            n += (size_t)snprintf(out + n, cap - n, " %s=%" PRIu64,
                                  tc_fault_name(k < TC_FAULT_COUNT ? k : -1),
                                  t->stale_by_fault[k]);
}

static void assert_faults_hit(const run_t *r) {
    for (int k = 0; k < TC_FAULT_COUNT; k++)
        cr_assert(!r->enabled[k] || r->ran[k] > 0, "fault %s never ran", tc_fault_name(k));
    cr_assert(!r->enabled[TC_FAULT_PUBSUB_KILL] || r->evidence[TC_FAULT_PUBSUB_KILL] > 0,
              "CLIENT KILL TYPE pubsub never killed a subscriber");
    cr_assert(!r->enabled[TC_FAULT_CUT_SUBSCRIBERS] ||
                  r->evidence[TC_FAULT_CUT_SUBSCRIBERS] > 0,
              "the proxy never found a subscriber link to cut");
}

static void assert_coherent(const run_t *r, const totals_t *t) {
    char byf[256];
    stale_by_fault_text(t, byf, sizeof byf);
    assert_faults_hit(r);
    cr_assert_geq(t->reads, MIN_READS, "only %" PRIu64 " reads: too few to mean anything",
                  t->reads);
    cr_assert_gt(t->sets_ok, 0, "no write ever completed");
    /* Verdicts: expected, not asserted, so that a failure reports every one of them. */
    cr_expect_eq(t->impossible, 0, "%" PRIu64 " reads returned a value nobody wrote; first: %s",
                 t->impossible, t->first_impossible);
    cr_expect_eq(t->stale, 0,
                 "%" PRIu64 " of %" PRIu64 " values read were stale beyond %u ms (by fault:%s);"
                 "\n  first: %s\n  worst: %s",
                 t->stale, t->values, TC_STRESS_BOUND_MS, byf, t->first_stale, t->worst_stale);
    cr_expect_eq(t->disagree, 0,
                 "%" PRIu64 " keys differ between a cache and Redis after quiesce; first: %s",
                 t->disagree, t->first_disagree);
    cr_expect_leq(t->unjudged * UNJUDGED_MAX_PER, t->values,
                  "%" PRIu64 " of %" PRIu64 " values could not be judged: the oracle's rings "
                  "(TC_ORACLE_RING) forget writes too soon for this load",
                  t->unjudged, t->values);
}

/* ---- the test ---- */

Test(coherence, faults_never_serve_stale_values) {
    run_t *r = R;
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
    wait_count(r, tc_oracle_ready, "opened their cache", READY_TIMEOUT_MS);

    uint64_t t0 = tc_test_now_ms();
    tc_oracle_set_phase(r->o, TC_PHASE_RUN);
    run_faults(r, seconds);
    tc_oracle_set_phase(r->o, TC_PHASE_HEALTHY);
    tc_test_sleep_ms(HEALTHY_MS);
    tc_oracle_set_phase(r->o, TC_PHASE_QUIET);
    wait_count(r, tc_oracle_quiet, "stopped writing", QUIET_TIMEOUT_MS);
    tc_test_sleep_ms(2u * TC_STRESS_BOUND_MS);
    tc_oracle_set_phase(r->o, TC_PHASE_VERIFY);
    collect_reports(r);
    print_reports(r);

    totals_t t = {0};
    for (int i = 0; i < PROCS; i++) {
        add_report(&t, i, &r->w[i]);
        cr_assert(WIFEXITED(r->w[i].status) && WEXITSTATUS(r->w[i].status) == 0,
                  "worker %d ended with status %d", i, r->w[i].status);
    }
    fprintf(stderr,
            "coherence: %u s of faults, %" PRIu64 " ms in all; reads %" PRIu64
            " (values %" PRIu64 ", unjudged %" PRIu64 "), sets ok %" PRIu64 " maybe %" PRIu64
            ", dels ok %" PRIu64 " maybe %" PRIu64 ", stale %" PRIu64 ", disagreements %" PRIu64
            "\n",
            seconds, tc_test_now_ms() - t0, t.reads, t.values, t.unjudged, t.sets_ok,
            t.sets_maybe, t.dels_ok, t.dels_maybe, t.stale, t.disagree);
    assert_coherent(r, &t);
}
