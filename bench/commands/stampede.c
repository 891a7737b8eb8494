/*
 * stampede.c - `stampede`: one hot key expiring under many readers, with the library's
 * protection and without.
 *
 * Every reader thread reads the same key in a tight loop; the key is loaded with a TTL and
 * expires every TTL. The same workload runs in four modes, one after the other:
 *
 *   naive          raw hiredis cache-aside: GET; on nil, load and SET PX ttl. Every
 *                  reader that finds the key gone loads it: the stampede itself.
 *   single-flight  tc_fetch with no freshness options: one load per key per process,
 *                  and, through the Redis lock (lock_ttl_ms, on by default), per cluster.
 *   swr            stale_ttl_ms = ttl: past the TTL, answers come stale at once and one
 *                  background refresh runs.
 *   xfetch         early_refresh_beta = 1.0: hits refresh the key in the background
 *                  shortly before it expires.
 *
 * and first a calibration row, cpu-only: the same threads, timing a few nanoseconds of
 * arithmetic instead of a read. When threads outnumber cores, a thread is descheduled for
 * tens of milliseconds at a time, and a read that spans that looks like a wait on a load;
 * this row counts how many such answers the machine alone produces, so the other rows'
 * waits can be read against it.
 *
 * Before a mode is measured, each process reads the key once (so the window starts in the
 * steady state, not with the cold first load). Loader calls are counted per process and
 * summed; with --procs P the bench re-executes itself P times (/proc/self/exe
 * stampede-worker) and the processes share the key through Redis. The parent hands each
 * child its parameters and a result slot in a shared memfd mapping, releases them all at
 * once (`go`) when every one has primed its key, and sums the slots when they exit.
 *
 * Per answer the threads record the latency (histogram), whether it waited on a load (it
 * took more than half a load: fresh.h) and whether it was stale (tc_ref_stale).
 */
#include "bench.h"

#include "checks.h"
#include "fmt.h"
#include "fresh.h"
#include "hist.h"
#include "json.h"
#include "source.h"
#include "tiercache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define URL_ENV   "TCBENCH_WORKER_URL"
#define HOT_KEY   "hot-key"
#define VALUE_LEN 100

typedef enum { ST_CPU, ST_NAIVE, ST_SINGLE, ST_SWR, ST_XFETCH, ST_MODES } st_mode_t;
static const char *const mode_names[ST_MODES] = {"cpu-only", "naive", "single-flight", "swr",
                                                 "xfetch"};

/* One process's results, written by that process into the shared mapping. */
typedef struct st_slot {
    tcb_hist_t lat;
    uint64_t ops, loads, waited, stale, errors, elapsed_ns;
    uint64_t sf_waits, lock_waits, lock_acquired, stale_serves, refreshes;
    int done;
    char err[160]; /* first error */
} st_slot_t;

typedef struct st_shared {
    int mode;
    unsigned threads, nprocs;
    uint64_t ttl_ms, load_ns, duration_ns;
    char tc_prefix[96], channel[96], raw_key[128];
    atomic_uint ready; /* processes that have primed the key */
    atomic_int go;     /* 1: start measuring; -1: give up */
    st_slot_t slots[];
} st_shared_t;

/* One process running one mode. */
typedef struct st_proc {
    st_shared_t *sh;
    st_slot_t *slot;
    tcb_endpoint_t ep;
    tc_cache_t *cache; /* NULL in naive mode */
    tcb_source_t src;
    atomic_uint_fast64_t loads;
    pthread_mutex_t mu; /* the start gate and the first error */
    pthread_cond_t cv;
    int gate; /* 0 closed, 1 open, -1 abandoned (a thread could not be started) */
} st_proc_t;

typedef struct st_thread {
    st_proc_t *p;
    redisContext *rc; /* naive mode */
    tcb_hist_t lat;
    uint64_t ops, waited, stale, errors;
    pthread_t th;
} st_thread_t;

static size_t shared_size(unsigned nprocs) {
    return sizeof(st_shared_t) + nprocs * sizeof(st_slot_t);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void note_error(st_proc_t *p, const char *what) {
    pthread_mutex_lock(&p->mu);
    if (!p->slot->err[0])
        snprintf(p->slot->err, sizeof p->slot->err, "%.*s", (int)sizeof p->slot->err - 1, what);
    pthread_mutex_unlock(&p->mu);
}

/* ---------------- the two kinds of reads ---------------- */

static int st_loader(void *arg, const void *key, size_t klen, tc_load_t *ld) {
    (void)key;
    (void)klen;
    st_proc_t *p = arg;
    unsigned char buf[VALUE_LEN];
    atomic_fetch_add_explicit(&p->loads, 1, memory_order_relaxed);
    tcb_source_wait(&p->src);
    return tc_load_set_value(ld, buf, tcb_source_fill(&p->src, 0, 0, buf));
}

static int tc_read(st_thread_t *t, int *stale) {
    tc_ref_t *ref = NULL;
    int rc = tc_fetch(t->p->cache, HOT_KEY, strlen(HOT_KEY), st_loader, t->p, &ref);
    if (rc == 0)
        *stale = tc_ref_stale(ref);
    else
        note_error(t->p, tc_strerror(rc));
    tc_ref_release(ref);
    return rc;
}

static redisReply *naive_cmd(st_thread_t *t, int argc, const char **argv, const size_t *lens) {
    char err[256];
    if (!t->rc && !(t->rc = tcb_rconn_open(&t->p->ep, 5000, err, sizeof err))) {
        note_error(t->p, err);
        return NULL;
    }
    redisReply *r = redisCommandArgv(t->rc, argc, argv, lens);
    if (!r) { /* broken connection: counted as an error, reopened on the next read */
        note_error(t->p, t->rc->errstr);
        redisFree(t->rc);
        t->rc = NULL;
    }
    return r;
}

/* The unprotected baseline: GET; on nil, load and SET PX ttl. */
static int naive_read(st_thread_t *t) {
    const st_shared_t *sh = t->p->sh;
    const char *get[] = {"GET", sh->raw_key};
    size_t glen[] = {3, strlen(sh->raw_key)};
    redisReply *r = naive_cmd(t, 2, get, glen);
    int type = r ? r->type : REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (type == REDIS_REPLY_STRING)
        return 0;
    if (type != REDIS_REPLY_NIL)
        return -1;
    unsigned char buf[VALUE_LEN];
    atomic_fetch_add_explicit(&t->p->loads, 1, memory_order_relaxed);
    tcb_source_wait(&t->p->src);
    size_t n = tcb_source_fill(&t->p->src, 0, 0, buf);
    char ttl[24];
    int tl = snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)sh->ttl_ms);
    const char *set[] = {"SET", sh->raw_key, (const char *)buf, "PX", ttl};
    size_t slen[] = {3, strlen(sh->raw_key), n, 2, (size_t)tl};
    r = naive_cmd(t, 5, set, slen);
    type = r ? r->type : REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return type == REDIS_REPLY_STATUS ? 0 : -1;
}

static int cpu_read(st_thread_t *t) {
    return tcb_cpu_work(t->ops);
}

static int read_once(st_thread_t *t, int *stale) {
    *stale = 0;
    if (t->p->sh->mode == ST_CPU)
        return cpu_read(t);
    return t->p->cache ? tc_read(t, stale) : naive_read(t);
}

/* ---------------- one process ---------------- */

/* Threads start together: each waits at the gate until every one exists. */
static int gate_wait(st_proc_t *p) {
    pthread_mutex_lock(&p->mu);
    while (p->gate == 0)
        pthread_cond_wait(&p->cv, &p->mu);
    int g = p->gate;
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void gate_set(st_proc_t *p, int g) {
    pthread_mutex_lock(&p->mu);
    p->gate = g;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *reader_main(void *arg) {
    st_thread_t *t = arg;
    uint64_t load_ns = t->p->sh->load_ns;
    if (gate_wait(t->p) < 0)
        return NULL;
    uint64_t now = tcb_now_ns(), end = now + t->p->sh->duration_ns;
    while (now < end && !tcb_interrupted) {
        int stale;
        int rc = read_once(t, &stale);
        uint64_t done = tcb_now_ns();
        tcb_hist_record(&t->lat, done - now);
        t->ops++;
        t->waited += (uint64_t)tcb_waited(done - now, load_ns);
        t->stale += (uint64_t)(rc == 0 && stale);
        t->errors += rc != 0;
        now = done;
    }
    return NULL;
}

static int open_cache(st_proc_t *p, const char *url) {
    const st_shared_t *sh = p->sh;
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = url;
    cfg.key_prefix = sh->tc_prefix;
    cfg.inval_channel = sh->channel;
    cfg.require_redis = 1;
    cfg.connect_timeout_ms = 5000;
    cfg.l1_max_bytes = 1u << 20;
    cfg.default_ttl_ms = sh->ttl_ms;
    cfg.ttl_jitter = 0; /* the key expires every TTL exactly: periods can be counted */
    if (sh->mode == ST_SWR)
        cfg.stale_ttl_ms = sh->ttl_ms;
    if (sh->mode == ST_XFETCH)
        cfg.early_refresh_beta = 1.0;
    tc_error_t err;
    if (tc_open(&cfg, &p->cache, &err) != 0) {
        fprintf(stderr, "tiercache-bench: stampede: tc_open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void library_counters(tc_cache_t *c, uint64_t out[5]) {
    tc_stats_t st;
    memset(out, 0, 5 * sizeof out[0]);
    if (!c || tc_stats(c, &st) != 0)
        return;
    out[0] = st.singleflight_waits;
    out[1] = st.lock_waits;
    out[2] = st.lock_acquired;
    out[3] = st.stale_serves;
    out[4] = st.stale_refreshes + st.early_refreshes;
}

/* Wait for the parent's go (it comes when every process has primed the key). */
static int wait_go(st_shared_t *sh) {
    pid_t parent = getppid();
    uint64_t t0 = tcb_now_ns();
    while (atomic_load(&sh->go) == 0) {
        if (tcb_interrupted || getppid() != parent || tcb_now_ns() - t0 > 120000000000ull)
            return -1;
        sleep_ms(1);
    }
    return atomic_load(&sh->go) > 0 ? 0 : -1;
}

/* Threads against the key for the duration; results into the slot. */
static int measure(st_proc_t *p, st_thread_t *ts) {
    unsigned n = p->sh->threads, started = 0;
    uint64_t before[5], after[5];
    for (; started < n; started++)
        if (pthread_create(&ts[started].th, NULL, reader_main, &ts[started]) != 0)
            break;
    if (started < n) {
        fprintf(stderr, "tiercache-bench: stampede: could not start %u threads\n", n);
        gate_set(p, -1);
        for (unsigned i = 0; i < started; i++)
            pthread_join(ts[i].th, NULL);
        return -1;
    }
    library_counters(p->cache, before);
    uint64_t loads0 = atomic_load(&p->loads);
    uint64_t t0 = tcb_now_ns();
    gate_set(p, 1);
    st_slot_t *s = p->slot;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(ts[i].th, NULL);
        tcb_hist_merge(&s->lat, &ts[i].lat);
        s->ops += ts[i].ops;
        s->waited += ts[i].waited;
        s->stale += ts[i].stale;
        s->errors += ts[i].errors;
    }
    s->elapsed_ns = tcb_now_ns() - t0;
    s->loads = atomic_load(&p->loads) - loads0;
    library_counters(p->cache, after);
    uint64_t *dst[5] = {&s->sf_waits, &s->lock_waits, &s->lock_acquired, &s->stale_serves,
                        &s->refreshes};
    for (int i = 0; i < 5; i++)
        *dst[i] = after[i] - before[i];
    return 0;
}

/* Prime the key, report ready, wait for go, measure. */
static int run_process(st_proc_t *p, st_thread_t *ts) {
    int stale;
    if (read_once(&ts[0], &stale) != 0) {
        fprintf(stderr, "tiercache-bench: stampede: priming the key failed: %s\n",
                p->slot->err);
        atomic_store(&p->sh->go, -1);
        return -1;
    }
    atomic_fetch_add(&p->sh->ready, 1);
    if (wait_go(p->sh) != 0)
        return -1;
    return measure(p, ts);
}

static int st_process(st_shared_t *sh, unsigned slot, const char *url) {
    st_proc_t p = {.sh = sh, .slot = &sh->slots[slot]};
    char err[512];
    if (tcb_endpoint_parse(url, &p.ep, err, sizeof err) != 0) {
        fprintf(stderr, "tiercache-bench: stampede: %s\n", err);
        return -1;
    }
    p.src.latency_ns = sh->load_ns;
    p.src.vsize = (tcb_vsize_t){.kind = TCB_VS_FIXED, .a = VALUE_LEN};
    atomic_init(&p.loads, 0);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    tcb_hist_reset(&p.slot->lat);
    st_thread_t *ts = calloc(sh->threads, sizeof *ts);
    int rc = ts ? 0 : -1;
    for (unsigned i = 0; ts && i < sh->threads; i++) {
        ts[i].p = &p;
        tcb_hist_reset(&ts[i].lat);
    }
    if (rc == 0 && sh->mode > ST_NAIVE)
        rc = open_cache(&p, url);
    if (rc == 0)
        rc = run_process(&p, ts);
    p.slot->done = rc == 0;
    tc_close(p.cache);
    for (unsigned i = 0; ts && i < sh->threads; i++)
        redisFree(ts[i].rc);
    free(ts);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    return rc;
}

int tcb_cmd_stampede_worker(const tcb_opts_t *o) {
    const char *url = getenv(URL_ENV);
    struct stat stt;
    if (!url || o->reader_shm_fd < 0 || fstat(o->reader_shm_fd, &stt) != 0 ||
        (size_t)stt.st_size < sizeof(st_shared_t)) {
        fprintf(stderr, "tiercache-bench: stampede-worker is started by `stampede`, not by "
                        "hand\n");
        return 2;
    }
    st_shared_t *sh = mmap(NULL, (size_t)stt.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                           o->reader_shm_fd, 0);
    if (sh == MAP_FAILED) {
        perror("tiercache-bench: stampede-worker: mmap");
        return 1;
    }
    int rc = 1;
    if (o->worker_slot < sh->nprocs && (size_t)stt.st_size >= shared_size(sh->nprocs))
        rc = st_process(sh, o->worker_slot, url) == 0 ? 0 : 1;
    munmap(sh, (size_t)stt.st_size);
    return rc;
}

/* ---------------- the parent ---------------- */

typedef struct st_result {
    tcb_hist_t lat;
    uint64_t ops, loads, waited, stale, errors, elapsed_ns;
    uint64_t sf_waits, lock_waits, lock_acquired, stale_serves, refreshes;
    char err[160];
    int ok;
} st_result_t;

typedef struct st_bench {
    const tcb_opts_t *o;
    tcb_env_t env;
    const char *self_exe;
    st_result_t res[ST_MODES];
} st_bench_t;

static void fill_shared(st_bench_t *b, st_shared_t *sh, int mode) {
    const tcb_opts_t *o = b->o;
    sh->mode = mode;
    sh->threads = o->threads;
    sh->nprocs = o->procs;
    sh->ttl_ms = o->ttl_ms;
    sh->load_ns = o->load_ns;
    sh->duration_ns = o->duration_ns;
    snprintf(sh->tc_prefix, sizeof sh->tc_prefix, "%sst:%s:", b->env.prefix, mode_names[mode]);
    snprintf(sh->channel, sizeof sh->channel, "%sst:%s:inval", b->env.prefix, mode_names[mode]);
    snprintf(sh->raw_key, sizeof sh->raw_key, "%sst:naive:%s", b->env.prefix, HOT_KEY);
    atomic_init(&sh->ready, 0);
    atomic_init(&sh->go, 0);
}

static pid_t spawn_worker(const char *self_exe, int fd, unsigned slot, char **env) {
    char fds[16], slots[16];
    snprintf(fds, sizeof fds, "%d", fd);
    snprintf(slots, sizeof slots, "%u", slot);
    const char *argv[] = {self_exe, "stampede-worker", "--shm-fd", fds, "--slot",
                          slots,    "--quiet",         NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execve(self_exe, (char *const *)argv, env);
        _exit(127);
    }
    return pid;
}

/* Every child has primed (0), or one died or gave up (-1). */
static int wait_ready(st_shared_t *sh, const pid_t *pids, unsigned n) {
    uint64_t t0 = tcb_now_ns();
    while (atomic_load(&sh->ready) < n) {
        if (atomic_load(&sh->go) < 0 || tcb_interrupted || tcb_now_ns() - t0 > 120000000000ull)
            return -1;
        for (unsigned i = 0; i < n; i++)
            if (waitpid(pids[i], NULL, WNOHANG) == pids[i])
                return -1; /* reaped here: reap_all skips it */
        sleep_ms(2);
    }
    return 0;
}

static int run_children(st_bench_t *b, st_shared_t *sh, int fd) {
    unsigned n = sh->nprocs;
    pid_t pids[64];
    char **env = tcb_child_env(URL_ENV, b->env.url);
    if (!env)
        return -1;
    unsigned started = 0;
    for (; started < n; started++)
        if ((pids[started] = spawn_worker(b->self_exe, fd, started, env)) < 0)
            break;
    tcb_child_env_free(env);
    int rc = started == n ? wait_ready(sh, pids, n) : -1;
    atomic_store(&sh->go, rc == 0 ? 1 : -1);
    for (unsigned i = 0; i < started; i++) {
        int st = 0;
        if (waitpid(pids[i], &st, 0) == pids[i] && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
            rc = -1;
    }
    return rc;
}

static void collect(const st_shared_t *sh, st_result_t *r) {
    tcb_hist_reset(&r->lat);
    r->ok = 1;
    for (unsigned i = 0; i < sh->nprocs; i++) {
        const st_slot_t *s = &sh->slots[i];
        r->ok &= s->done;
        tcb_hist_merge(&r->lat, &s->lat);
        r->ops += s->ops;
        r->loads += s->loads;
        r->waited += s->waited;
        r->stale += s->stale;
        r->errors += s->errors;
        r->sf_waits += s->sf_waits;
        r->lock_waits += s->lock_waits;
        r->lock_acquired += s->lock_acquired;
        r->stale_serves += s->stale_serves;
        r->refreshes += s->refreshes;
        if (s->elapsed_ns > r->elapsed_ns)
            r->elapsed_ns = s->elapsed_ns;
        if (!r->err[0] && s->err[0])
            snprintf(r->err, sizeof r->err, "%s", s->err);
    }
}

/* One mode: in this process (--procs 1) or in P children. */
static int run_mode(st_bench_t *b, int mode) {
    unsigned n = b->o->procs;
    size_t sz = shared_size(n);
    int fd = n > 1 ? memfd_create("tcbench-stampede", 0) : -1; /* inherited by children */
    if (n > 1 && (fd < 0 || ftruncate(fd, (off_t)sz) != 0)) {
        fprintf(stderr, "tiercache-bench: stampede: shared memory: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    st_shared_t *sh = mmap(NULL, sz, PROT_READ | PROT_WRITE,
                           n > 1 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, fd, 0);
    int rc = -1;
    if (sh != MAP_FAILED) {
        fill_shared(b, sh, mode);
        if (n == 1)
            atomic_store(&sh->go, 1);
        rc = n > 1 ? run_children(b, sh, fd) : st_process(sh, 0, b->env.url);
        if (rc == 0)
            collect(sh, &b->res[mode]);
        munmap(sh, sz);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---------------- report ---------------- */

static double share(uint64_t part, uint64_t whole) {
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static double ops_per_sec(const st_result_t *r) {
    return r->elapsed_ns ? (double)r->ops * 1e9 / (double)r->elapsed_ns : 0.0;
}

static void print_row(const st_bench_t *b, int mode) {
    const st_result_t *r = &b->res[mode];
    char a[32], l[32], p50[32], p99[32], mx[32], w[32], s[32];
    uint64_t d = b->o->duration_ns, ttl = b->o->ttl_ms;
    printf("  %-14s %11s %7s %9.1f %9s %9s %9s %9s %9.1f %9s\n", mode_names[mode],
           tcb_fmt_count((uint64_t)ops_per_sec(r), a, sizeof a),
           tcb_fmt_count(r->loads, l, sizeof l), tcb_per_period(r->loads, d, ttl),
           tcb_fmt_ns((double)tcb_hist_quantile(&r->lat, 0.5), p50, sizeof p50),
           tcb_fmt_ns((double)tcb_hist_quantile(&r->lat, 0.99), p99, sizeof p99),
           tcb_fmt_ns((double)r->lat.max, mx, sizeof mx),
           tcb_fmt_pct(share(r->waited, r->ops), w, sizeof w),
           tcb_per_period(r->waited, d, ttl),
           tcb_fmt_pct(share(r->stale, r->ops), s, sizeof s));
}

/* The library's own count of callers that waited on a load (its single-flight and the
 * cross-process lock), free of the scheduler's noise that the latency judgement picks up. */
static void print_library(const st_bench_t *b) {
    uint64_t d = b->o->duration_ns, ttl = b->o->ttl_ms;
    printf("  callers that waited on a load, per TTL, as tiercache counts them "
           "(singleflight_waits\n  + lock_waits):");
    for (int m = ST_SINGLE; m < ST_MODES; m++) {
        const st_result_t *r = &b->res[m];
        printf(" %s %.1f%s", mode_names[m], tcb_per_period(r->sf_waits + r->lock_waits, d, ttl),
               m + 1 < ST_MODES ? "," : "\n");
    }
}

static void print_text(const st_bench_t *b) {
    const tcb_opts_t *o = b->o;
    char load[32], half[32];
    tcb_fmt_ns((double)o->load_ns, load, sizeof load);
    tcb_fmt_ns((double)o->load_ns / 2, half, sizeof half);
    printf("\ntiercache-bench stampede: one hot key read in a tight loop by %u thread%s x %u "
           "process%s;\n  TTL %llu ms (no jitter), each load takes %s; %.1f s per mode = %.1f "
           "expiry periods;\n  %s\n\n",
           o->threads, o->threads == 1 ? "" : "s", o->procs, o->procs == 1 ? "" : "es",
           (unsigned long long)o->ttl_ms, load, (double)o->duration_ns / 1e9,
           (double)o->duration_ns / 1e6 / (double)o->ttl_ms,
           b->env.owned ? "throwaway redis-server" : b->env.url_shown);
    printf("  %-14s %11s %7s %9s %9s %9s %9s %9s %9s %9s\n", "mode", "ops/s", "loads",
           "loads/TTL", "p50", "p99", "max", "waited", "waits/TTL", "stale");
    for (int m = 0; m < ST_MODES; m++)
        print_row(b, m);
    printf("\n  loads: loader calls in the measured window, all processes (loads/TTL: per "
           "expiry\n  period); waited: answers slower than half a load (%s), i.e. that "
           "waited on one\n  (share of all answers; waits/TTL: per period); stale: answers "
           "tc_ref_stale() marked\n",
           half);
    print_library(b);
    for (int m = 0; m < ST_MODES; m++)
        if (b->res[m].errors)
            printf("  %s: %llu errors (first: %s)\n", mode_names[m],
                   (unsigned long long)b->res[m].errors, b->res[m].err);
    printf("\n");
    tcb_warnings_print(stdout);
}

static void json_latency(tcb_json_t *j, const tcb_hist_t *h) {
    tcb_json_obj_begin(j, "latency_ns");
    tcb_json_u64(j, "p50", tcb_hist_quantile(h, 0.5));
    tcb_json_u64(j, "p99", tcb_hist_quantile(h, 0.99));
    tcb_json_u64(j, "max", h->max);
    tcb_json_dbl(j, "mean", tcb_hist_mean(h));
    tcb_json_obj_end(j);
}

static void json_mode(tcb_json_t *j, const st_bench_t *b, int mode) {
    const st_result_t *r = &b->res[mode];
    tcb_json_obj_begin(j, NULL);
    tcb_json_str(j, "mode", mode_names[mode]);
    tcb_json_u64(j, "ops", r->ops);
    tcb_json_dbl(j, "ops_per_sec", ops_per_sec(r));
    tcb_json_u64(j, "loads", r->loads);
    tcb_json_dbl(j, "loads_per_period",
                 tcb_per_period(r->loads, b->o->duration_ns, b->o->ttl_ms));
    json_latency(j, &r->lat);
    tcb_json_u64(j, "waited", r->waited);
    tcb_json_dbl(j, "waited_per_period",
                 tcb_per_period(r->waited, b->o->duration_ns, b->o->ttl_ms));
    tcb_json_u64(j, "stale", r->stale);
    tcb_json_u64(j, "errors", r->errors);
    tcb_json_str(j, "first_error", r->err[0] ? r->err : NULL);
    tcb_json_obj_begin(j, "library");
    tcb_json_u64(j, "singleflight_waits", r->sf_waits);
    tcb_json_u64(j, "lock_waits", r->lock_waits);
    tcb_json_u64(j, "lock_acquired", r->lock_acquired);
    tcb_json_u64(j, "stale_serves", r->stale_serves);
    tcb_json_u64(j, "background_refreshes", r->refreshes);
    tcb_json_obj_end(j);
    tcb_json_obj_end(j);
}

static void print_json(const st_bench_t *b) {
    const tcb_opts_t *o = b->o;
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "stampede");
    tcb_json_str(&j, "redis", b->env.url_shown);
    tcb_json_u64(&j, "threads", o->threads);
    tcb_json_u64(&j, "procs", o->procs);
    tcb_json_u64(&j, "ttl_ms", o->ttl_ms);
    tcb_json_dbl(&j, "load_ms", (double)o->load_ns / 1e6);
    tcb_json_dbl(&j, "seconds", (double)o->duration_ns / 1e9);
    tcb_json_dbl(&j, "expiry_periods", (double)o->duration_ns / 1e6 / (double)o->ttl_ms);
    tcb_json_arr_begin(&j, "results");
    for (int m = 0; m < ST_MODES; m++)
        json_mode(&j, b, m);
    tcb_json_arr_end(&j);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

int tcb_cmd_stampede(const tcb_opts_t *o, const char *self_exe) {
    st_bench_t *b = calloc(1, sizeof *b);
    if (!b || tcb_env_open(&b->env, o) != 0) {
        free(b);
        return 1;
    }
    b->o = o;
    b->self_exe = self_exe;
    int rc = 0;
    for (int m = 0; m < ST_MODES && rc == 0 && !tcb_interrupted; m++) {
        tcb_status(o, "stampede: %s, %.1f s", mode_names[m], (double)o->duration_ns / 1e9);
        rc = run_mode(b, m);
        if (rc != 0)
            fprintf(stderr, "tiercache-bench: stampede: the %s run failed\n", mode_names[m]);
    }
    if (rc == 0 && !tcb_interrupted)
        o->json ? print_json(b) : print_text(b);
    tcb_env_close(&b->env);
    free(b);
    return rc == 0 && !tcb_interrupted ? 0 : 1;
}
