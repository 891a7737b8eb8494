/*
 * inval.c - `inval`: how fast a write in one process evicts the key in another, and how
 * many invalidations per second one listener absorbs.
 *
 * Two processes, because the listener's whole job is crossing process boundaries: the
 * bench (the writer) re-executes itself (/proc/self/exe inval-reader) as the reader, and
 * each opens its own tc_cache_t on the same Redis, key prefix and channel.
 *
 * Timestamps cross the process boundary through a shared memfd mapping. The reader's
 * inval_hook (run on its listener thread right after the eviction) stores
 * CLOCK_MONOTONIC, which is one clock for the whole machine, in recv_ns[id]; the writer
 * takes its own CLOCK_MONOTONIC just before calling tc_set. Latency = recv - send, so it
 * includes the writer's round trip to Redis (the write and the PUBLISH are one script),
 * the delivery to the subscriber and the eviction: the delay a user of the second
 * process can actually observe. The writer's own tc_set time is printed beside it.
 *
 * Phase 1 (latency), closed loop: the reader first reads every test key, so each one is
 * resident in its L1; the writer then rewrites one key at a time and waits for its
 * eviction before the next, so every sample is an unloaded one.
 * Phase 2 (rate): the writer closes its cache and PUBLISHes well-formed delete messages
 * (src/msg.h format, keys the reader does not hold) on a raw pipelined connection, as
 * fast as Redis takes them, but never more than TCB_INVAL_WINDOW ahead of what the reader
 * has applied: an unbounded backlog would hit Redis's pub/sub output-buffer limit and get
 * the listener disconnected. When the window is full most of the time, the listener is
 * the bottleneck and the rate is its capacity; otherwise the output says the publisher
 * was.
 *
 * With --foreign the writer is not tiercache at all (inval_foreign.c): the reader then
 * caches plain keys with Redis client tracking on, and the same hook times Redis's own
 * notices. inval.h holds what the two writers share; this file owns the reader process.
 */
#include "inval.h"

#include "checks.h"
#include "fmt.h"
#include "json.h"
#include "msg.h"
#include "tiercache.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define URL_ENV "TCBENCH_READER_URL"

size_t tcb_inval_shm_size(uint64_t count) {
    return sizeof(tcb_inval_shm_t) + count * sizeof(atomic_uint_fast64_t);
}

void tcb_inval_sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---------------- reader process ---------------- */

/* The hook's view: the mapping, and how many bytes of every key are the plain keys'
 * prefix (0 for tiercache's keys, which the hook gets without their prefix). */
typedef struct reader_ctx {
    tcb_inval_shm_t *shm;
    size_t strip;
} reader_ctx_t;

static void reader_hook(void *arg, const void *key, size_t klen) {
    const reader_ctx_t *ctx = arg;
    tcb_inval_shm_t *shm = ctx->shm;
    const char *k = key;
    uint64_t now = tcb_now_ns(), id;
    if (klen > ctx->strip && tcb_key_parse(k + ctx->strip, klen - ctx->strip, &id) == 0 &&
        id < shm->count) {
        uint_fast64_t zero = 0;
        atomic_compare_exchange_strong(&shm->recv_ns[id], &zero, now);
    }
    atomic_store_explicit(&shm->last_ns, now, memory_order_relaxed);
    atomic_fetch_add_explicit(&shm->received, 1, memory_order_release);
}

static int reader_loop(tc_cache_t *c) {
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "stats", 5) != 0)
            break;
        tc_stats_t st;
        tc_stats(c, &st);
        printf("stats %llu %llu %llu %llu %llu %d\n", (unsigned long long)st.inval_received,
               (unsigned long long)st.inval_applied, (unsigned long long)st.inval_malformed,
               (unsigned long long)st.l1_entries, (unsigned long long)st.inval_tracking,
               st.listener_connected);
        fflush(stdout);
    }
    return 0;
}

/* --foreign: plain keys, which only Redis's tracking notices evict. */
static void reader_foreign_config(tc_config_t *cfg, const tcb_opts_t *o) {
    cfg->plain_keys = 1;
    cfg->tracking =
        o->tracking == TCB_TRACKING_DEFAULT ? TC_TRACKING_DEFAULT : TC_TRACKING_BCAST;
}

/* Read every latency key once, so each one is resident in L1. */
static void reader_fill(tc_cache_t *c, const reader_ctx_t *ctx, const char *prefix) {
    char key[160];
    if (ctx->strip + TCB_KEY_LEN >= sizeof key)
        return;
    memcpy(key, prefix, ctx->strip);
    for (uint64_t i = 0; i < ctx->shm->count; i++) {
        tcb_key_format(i, key + ctx->strip);
        tc_ref_t *ref = NULL;
        tc_get(c, key, ctx->strip + TCB_KEY_LEN, &ref);
        tc_ref_release(ref);
    }
}

static tc_cache_t *reader_open(const tcb_opts_t *o, const char *url, reader_ctx_t *ctx) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = url;
    cfg.key_prefix = o->reader_prefix;
    cfg.inval_channel = o->reader_channel;
    cfg.require_redis = 1;
    cfg.connect_timeout_ms = 5000;
    cfg.inval_hook = reader_hook;
    cfg.inval_hook_arg = ctx;
    if (o->foreign)
        reader_foreign_config(&cfg, o);
    tc_cache_t *c = NULL;
    tc_error_t err;
    if (tc_open(&cfg, &c, &err) != 0)
        fprintf(stderr, "tiercache-bench: inval-reader: tc_open: %s\n", err.msg);
    return c;
}

int tcb_cmd_inval_reader(const tcb_opts_t *o) {
    const char *url = getenv(URL_ENV);
    if (!url || o->reader_shm_fd < 0 || !o->reader_prefix || !o->reader_channel) {
        fprintf(stderr, "tiercache-bench: inval-reader is started by `inval`, not by hand\n");
        return 2;
    }
    tcb_inval_shm_t *shm = mmap(NULL, tcb_inval_shm_size(o->inval_count),
                                PROT_READ | PROT_WRITE, MAP_SHARED, o->reader_shm_fd, 0);
    if (shm == MAP_FAILED) {
        perror("tiercache-bench: inval-reader: mmap");
        return 1;
    }
    reader_ctx_t ctx = {.shm = shm, .strip = o->foreign ? strlen(o->reader_prefix) : 0};
    tc_cache_t *c = reader_open(o, url, &ctx);
    if (!c)
        return 1;
    reader_fill(c, &ctx, o->reader_prefix);
    tc_stats_t st;
    tc_stats(c, &st);
    printf("ready %llu\n", (unsigned long long)st.l1_entries);
    fflush(stdout);
    int rc = reader_loop(c);
    tc_close(c);
    return rc;
}

/* ---------------- the reader, seen from the writer ---------------- */

/* The reader's command line; fd and count are its buffers. */
static void reader_argv(const tcb_inval_writer_t *w, const char *self_exe, const char *fd,
                        const char *count, const char *argv[16]) {
    const char *fixed[] = {self_exe,   "inval-reader", "--shm-fd",  fd,
                           "--prefix", w->tc_prefix,   "--channel", w->channel,
                           "--count",  count,          "--quiet"};
    size_t n = sizeof fixed / sizeof fixed[0];
    memcpy(argv, fixed, sizeof fixed);
    if (w->o->foreign) {
        argv[n++] = "--foreign";
        argv[n++] = "--tracking";
        argv[n++] = w->o->tracking == TCB_TRACKING_DEFAULT ? "default" : "bcast";
    }
    argv[n] = NULL;
}

static int spawn_reader(tcb_inval_writer_t *w, const char *self_exe) {
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    char **env = tcb_child_env(URL_ENV, w->env.url);
    if (!env || pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        for (int i = 0; i < 2; i++) {
            if (in[i] >= 0)
                close(in[i]);
            if (out[i] >= 0)
                close(out[i]);
        }
        tcb_child_env_free(env);
        return -1;
    }
    char fd[16], count[32];
    const char *argv[16];
    snprintf(fd, sizeof fd, "%d", w->shm_fd);
    snprintf(count, sizeof count, "%llu", (unsigned long long)w->o->inval_count);
    reader_argv(w, self_exe, fd, count, argv);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        execve(self_exe, (char *const *)argv, env);
        _exit(127);
    }
    tcb_child_env_free(env);
    close(in[0]);
    close(out[1]);
    if (pid < 0)
        return -1;
    w->reader = pid;
    w->to_reader = fdopen(in[1], "w");
    w->from_reader = fdopen(out[0], "r");
    return w->to_reader && w->from_reader ? 0 : -1;
}

/* A line from the reader, waiting at most timeout_ms. */
static int reader_line(tcb_inval_writer_t *w, char *buf, size_t cap, int timeout_ms) {
    struct pollfd p = {.fd = fileno(w->from_reader), .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    return fgets(buf, (int)cap, w->from_reader) ? 0 : -1;
}

int tcb_inval_start_reader(tcb_inval_writer_t *w, const char *self_exe) {
    char line[128];
    unsigned long long n = 0;
    if (spawn_reader(w, self_exe) != 0 || reader_line(w, line, sizeof line, 60000) != 0 ||
        sscanf(line, "ready %llu", &n) != 1) {
        fprintf(stderr, "tiercache-bench: inval: the reader process did not start\n");
        return -1;
    }
    w->resident_before = n;
    tcb_check_l1_fill("the reader process's L1", "before the first write", n, w->o->inval_count,
                      "entries", NULL);
    return 0;
}

void tcb_inval_stop_reader(tcb_inval_writer_t *w) {
    if (w->to_reader) {
        fputs("quit\n", w->to_reader);
        fclose(w->to_reader);
        w->to_reader = NULL;
    }
    if (w->from_reader) {
        fclose(w->from_reader);
        w->from_reader = NULL;
    }
    if (w->reader > 0) {
        int st;
        for (int i = 0; i < 300 && waitpid(w->reader, &st, WNOHANG) == 0; i++)
            tcb_inval_sleep_us(10000);
        if (waitpid(w->reader, &st, WNOHANG) == 0) {
            kill(w->reader, SIGKILL);
            waitpid(w->reader, &st, 0);
        }
        w->reader = 0;
    }
}

int tcb_inval_reader_stats(tcb_inval_writer_t *w, tcb_inval_reader_stats_t *s) {
    char line[256];
    fputs("stats\n", w->to_reader);
    fflush(w->to_reader);
    if (reader_line(w, line, sizeof line, 5000) != 0 ||
        sscanf(line, "stats %llu %llu %llu %llu %llu %d", &s->received, &s->applied,
               &s->malformed, &s->entries, &s->tracking, &s->connected) != 6)
        return -1;
    return 0;
}

int tcb_inval_drain(redisContext *c, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        void *reply;
        if (redisGetReply(c, &reply) != REDIS_OK)
            return -1;
        freeReplyObject(reply);
    }
    return 0;
}

/* Wait until the reader has applied everything published, or 2 s without progress. */
static void wait_applied(const tcb_inval_shm_t *shm, uint64_t r0, uint64_t published) {
    uint64_t last = 0, since = tcb_now_ns();
    for (;;) {
        uint64_t got = atomic_load(&shm->received) - r0;
        if (got >= published)
            return;
        if (got != last) {
            last = got;
            since = tcb_now_ns();
        } else if (tcb_now_ns() - since > 2000000000ull) {
            return;
        }
        tcb_inval_sleep_us(200);
    }
}

int tcb_inval_rate_phase(tcb_inval_writer_t *w, tcb_inval_batch_fn batch, tcb_inval_rate_t *r) {
    char err[256];
    redisContext *rc = tcb_rconn_open(&w->env.ep, 5000, err, sizeof err);
    if (!rc) {
        fprintf(stderr, "tiercache-bench: inval: %s\n", err);
        return -1;
    }
    uint64_t r0 = atomic_load(&w->shm->received), pub = 0, full = 0, loops = 0;
    uint64_t t0 = tcb_now_ns();
    int ok = 0;
    while (tcb_now_ns() - t0 < w->o->duration_ns && !tcb_interrupted && ok == 0) {
        uint64_t applied = atomic_load(&w->shm->received) - r0;
        loops++;
        if (pub - applied + TCB_INVAL_BATCH > TCB_INVAL_WINDOW) {
            full++;
            tcb_inval_sleep_us(50);
            continue;
        }
        ok = batch(rc, w, pub);
        pub += TCB_INVAL_BATCH;
    }
    uint64_t t1 = tcb_now_ns();
    wait_applied(w->shm, r0, pub);
    uint64_t got = atomic_load(&w->shm->received) - r0;
    uint64_t last = atomic_load(&w->shm->last_ns);
    redisFree(rc);
    r->published = pub;
    r->applied = got;
    r->secs = (double)((last > t0 ? last : t1) - t0) / 1e9;
    r->pub_rate = (double)pub / ((double)(t1 - t0) / 1e9);
    r->recv_rate = r->secs > 0 ? (double)got / r->secs : 0;
    r->full_share = loops ? (double)full / (double)loops : 0;
    return ok;
}

/* ---------------- the tiercache writer ---------------- */

typedef struct inval_res {
    tcb_hist_t lat, set;
    uint64_t missing;
    tcb_inval_rate_t rate;
    tcb_inval_reader_stats_t rs;
} inval_res_t;

static tc_cache_t *writer_cache(tcb_inval_writer_t *w) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.redis_url = w->env.url;
    cfg.key_prefix = w->tc_prefix;
    cfg.inval_channel = w->channel;
    cfg.require_redis = 1;
    cfg.connect_timeout_ms = 5000;
    cfg.l1_max_bytes = 1u << 20;
    tc_cache_t *c = NULL;
    tc_error_t err;
    if (tc_open(&cfg, &c, &err) != 0)
        fprintf(stderr, "tiercache-bench: inval: tc_open: %s\n", err.msg);
    return c;
}

static int write_key(tc_cache_t *c, uint64_t id, uint64_t version) {
    char key[TCB_KEY_LEN + 1];
    unsigned char val[100];
    tcb_key_format(id, key);
    memset(val, (int)(version & 0xff), sizeof val);
    return tc_set(c, key, TCB_KEY_LEN, val, sizeof val, 0);
}

static int latency_phase(tcb_inval_writer_t *w, tc_cache_t *c, inval_res_t *r) {
    uint64_t n = w->o->inval_count;
    for (uint64_t i = 0; i < n && !tcb_interrupted; i++) {
        uint64_t t0 = tcb_now_ns();
        if (write_key(c, i, 2) != 0)
            return -1;
        uint64_t t1 = tcb_now_ns();
        tcb_hist_record(&r->set, t1 - t0);
        uint64_t got = 0;
        /* Poll gently: a spinning writer would steal the CPU the reader and Redis need on
         * a small machine. The poll delay is not in the figure (the reader stamps it). */
        while (!(got = atomic_load(&w->shm->recv_ns[i])) &&
               tcb_now_ns() - t0 < TCB_INVAL_WAIT_NS)
            tcb_inval_sleep_us(20);
        if (got)
            tcb_hist_record(&r->lat, got > t0 ? got - t0 : 0);
        else
            r->missing++;
    }
    return 0;
}

static int publish_batch(redisContext *rc, const tcb_inval_writer_t *w, uint64_t first) {
    static const unsigned char origin[TC__MSG_ORIGIN_LEN] = "tcbench-inval-w";
    uint64_t base = w->o->inval_count;
    for (unsigned b = 0; b < TCB_INVAL_BATCH; b++) {
        uint64_t j = first + b;
        char key[TCB_KEY_LEN + 1];
        unsigned char msg[TC__MSG_FIXED_LEN + TCB_KEY_LEN];
        tcb_key_format(base + j % 100000, key);
        /* Versions stay below 2^53, as every writer's do: the listener counts a message
         * with a version no counter produces as malformed and takes another path. */
        size_t len =
            tc__msg_encode(TC__MSG_OP_DELETE, (1ull << 52) + j, origin, key, TCB_KEY_LEN, msg);
        const char *argv[] = {"PUBLISH", w->channel, (const char *)msg};
        size_t lens[] = {7, strlen(w->channel), len};
        if (redisAppendCommandArgv(rc, 3, argv, lens) != REDIS_OK)
            return -1;
    }
    return tcb_inval_drain(rc, TCB_INVAL_BATCH);
}

static void print_text(const tcb_inval_writer_t *w, const inval_res_t *r) {
    char a[32], b[32], c[32], d[32];
    printf("\ntiercache-bench inval: one writer process, one reader process, %s\n",
           w->env.owned ? "throwaway redis-server" : w->env.url_shown);
    printf("\n  publish-to-eviction over %s writes (writer calls tc_set -> the reader's "
           "listener has\n  evicted the key), one write at a time:\n",
           tcb_fmt_count(r->lat.total + r->missing, a, sizeof a));
    printf("    p50 %s   p99 %s   max %s   (not evicted within 200 ms: %llu)\n",
           tcb_fmt_ns((double)tcb_hist_quantile(&r->lat, 0.5), a, sizeof a),
           tcb_fmt_ns((double)tcb_hist_quantile(&r->lat, 0.99), b, sizeof b),
           tcb_fmt_ns((double)r->lat.max, c, sizeof c), (unsigned long long)r->missing);
    printf("    the writer's tc_set itself (write + publish, one round trip): p50 %s, "
           "p99 %s\n",
           tcb_fmt_ns((double)tcb_hist_quantile(&r->set, 0.5), a, sizeof a),
           tcb_fmt_ns((double)tcb_hist_quantile(&r->set, 0.99), b, sizeof b));
    printf("    reader L1: %s test keys resident before, %s entries after\n",
           tcb_fmt_count(w->resident_before, a, sizeof a),
           tcb_fmt_count(r->rs.entries, b, sizeof b));
    printf("\n  invalidation rate of one listener: %s messages/s applied\n",
           tcb_fmt_count((uint64_t)r->rate.recv_rate, a, sizeof a));
    printf("    %s of %s published in %.1f s; the publisher offered %s msg/s;\n",
           tcb_fmt_count(r->rate.applied, b, sizeof b),
           tcb_fmt_count(r->rate.published, c, sizeof c), r->rate.secs,
           tcb_fmt_count((uint64_t)r->rate.pub_rate, d, sizeof d));
    printf("    the backlog window was full %.0f%% of the time: %s\n",
           100.0 * r->rate.full_share,
           r->rate.full_share > 0.5
               ? "the listener was the bottleneck"
               : "Redis or the publisher was the limit, the listener kept up");
    printf("    reader totals: %s received, %s applied, %llu malformed; listener %s\n\n",
           tcb_fmt_count(r->rs.received, a, sizeof a),
           tcb_fmt_count(r->rs.applied, b, sizeof b), r->rs.malformed,
           r->rs.connected ? "connected" : "DISCONNECTED");
    tcb_warnings_print(stdout);
}

static void print_json(const tcb_inval_writer_t *w, const inval_res_t *r) {
    tcb_json_t j;
    tcb_json_init(&j, stdout);
    tcb_json_obj_begin(&j, NULL);
    tcb_json_str(&j, "tool", "tiercache-bench");
    tcb_json_str(&j, "command", "inval");
    tcb_json_str(&j, "redis", w->env.url_shown);
    tcb_json_obj_begin(&j, "publish_to_eviction_ns");
    tcb_json_u64(&j, "samples", r->lat.total);
    tcb_json_u64(&j, "missing", r->missing);
    tcb_json_u64(&j, "p50", tcb_hist_quantile(&r->lat, 0.5));
    tcb_json_u64(&j, "p99", tcb_hist_quantile(&r->lat, 0.99));
    tcb_json_u64(&j, "max", r->lat.max);
    tcb_json_obj_end(&j);
    tcb_json_obj_begin(&j, "tc_set_ns");
    tcb_json_u64(&j, "p50", tcb_hist_quantile(&r->set, 0.5));
    tcb_json_u64(&j, "p99", tcb_hist_quantile(&r->set, 0.99));
    tcb_json_obj_end(&j);
    tcb_json_obj_begin(&j, "rate");
    tcb_json_u64(&j, "published", r->rate.published);
    tcb_json_u64(&j, "applied", r->rate.applied);
    tcb_json_dbl(&j, "seconds", r->rate.secs);
    tcb_json_dbl(&j, "applied_per_sec", r->rate.recv_rate);
    tcb_json_dbl(&j, "published_per_sec", r->rate.pub_rate);
    tcb_json_dbl(&j, "window_full_share", r->rate.full_share);
    tcb_json_obj_end(&j);
    tcb_json_u64(&j, "reader_malformed", r->rs.malformed);
    tcb_json_bool(&j, "reader_listener_connected", r->rs.connected);
    tcb_warnings_json(&j);
    tcb_json_obj_end(&j);
}

static int run_phases(tcb_inval_writer_t *w, const char *self_exe, inval_res_t *r) {
    tc_cache_t *c = writer_cache(w);
    if (!c)
        return -1;
    tcb_status(w->o, "inval: writing %llu test keys", (unsigned long long)w->o->inval_count);
    int rc = 0;
    for (uint64_t i = 0; i < w->o->inval_count && rc == 0; i++)
        rc = write_key(c, i, 1);
    if (rc == 0)
        rc = tcb_inval_start_reader(w, self_exe);
    if (rc == 0) {
        tcb_status(w->o, "inval: timing publish-to-eviction, one write at a time");
        rc = latency_phase(w, c, r);
    }
    tc_close(c); /* its listener would double the fan-out of the rate phase */
    if (rc == 0) {
        tcb_status(w->o, "inval: flooding one listener for %.1f s",
                   (double)w->o->duration_ns / 1e9);
        rc = tcb_inval_rate_phase(w, publish_batch, &r->rate);
    }
    if (rc == 0)
        rc = tcb_inval_reader_stats(w, &r->rs);
    return rc;
}

/* The tiercache writer's whole run: phases, reader stopped, results printed. */
static int tiercache_run(tcb_inval_writer_t *w, const char *self_exe) {
    inval_res_t *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    tcb_hist_reset(&r->lat);
    tcb_hist_reset(&r->set);
    int rc = run_phases(w, self_exe, r);
    tcb_inval_stop_reader(w);
    if (rc == 0 && !tcb_interrupted)
        w->o->json ? print_json(w, r) : print_text(w, r);
    free(r);
    return rc;
}

static int setup_shm(tcb_inval_writer_t *w) {
    w->shm_fd = memfd_create("tcbench-inval", 0); /* inherited by the reader */
    size_t sz = tcb_inval_shm_size(w->o->inval_count);
    if (w->shm_fd < 0 || ftruncate(w->shm_fd, (off_t)sz) != 0)
        return -1;
    w->shm = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, w->shm_fd, 0);
    if (w->shm == MAP_FAILED) {
        w->shm = NULL;
        return -1;
    }
    w->shm->count = w->o->inval_count;
    return 0;
}

int tcb_cmd_inval(const tcb_opts_t *o, const char *self_exe) {
    tcb_inval_writer_t w = {.o = o, .shm_fd = -1};
    if (tcb_env_open(&w.env, o) != 0)
        return 1;
    /* After the throwaway server started, so it does not inherit the mapping's fd. */
    int rc = setup_shm(&w);
    if (rc != 0)
        fprintf(stderr, "tiercache-bench: inval: shared memory: %s\n", strerror(errno));
    if (rc == 0) {
        /* Plain keys are Redis keys: they carry the run's prefix themselves. */
        snprintf(w.tc_prefix, sizeof w.tc_prefix, "%s%s", w.env.prefix,
                 o->foreign ? "plain:" : "iv:");
        snprintf(w.channel, sizeof w.channel, "%sinval", w.env.prefix);
        rc = o->foreign ? tcb_inval_foreign_run(&w, self_exe) : tiercache_run(&w, self_exe);
        tcb_inval_stop_reader(&w);
    }
    tcb_env_close(&w.env);
    if (w.shm)
        munmap(w.shm, tcb_inval_shm_size(o->inval_count));
    if (w.shm_fd >= 0)
        close(w.shm_fd);
    return rc == 0 && !tcb_interrupted ? 0 : 1;
}
