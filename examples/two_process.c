/*
 * two_process.c - two processes, one Redis: a write in one reaches the other, and the
 * other's L1 copy is invalidated, not left to go stale.
 *
 *   TIERCACHE_REDIS_URL=redis://127.0.0.1:6379 ./two_process
 *
 * The program is the writer; it starts a second copy of itself (fork + exec, so the
 * reader is a separate process with its own cache, L1 and listener, exactly like another
 * service replica) and the two take turns, the writer printing both sides' lines:
 *
 *   writer  tc_set greeting = "hello v1"
 *   reader  reads greeting twice: from Redis, then from its own L1
 *   writer  tc_set greeting = "hello v2"  (one Lua script: store + PUBLISH the invalidation)
 *   reader  its listener receives the invalidation and evicts its L1 copy (inval_hook);
 *           the next read goes to Redis and sees "hello v2"
 *   writer  tc_del greeting
 *   reader  evicted again; the read finds nothing
 *
 * Which tier answered each read is taken from tc_stats (l1_hits, l2_hits) around it.
 * Exit status: 0 when the reader saw everything it should, 1 when not, 2 on a usage or
 * configuration problem (it needs TIERCACHE_REDIS_URL: two processes share nothing
 * without Redis).
 *
 * The turns: the writer talks to the reader over the reader's stdin (one word per turn)
 * and reads the reader's stdout line by line, echoing it, until the reader says it is
 * done with the turn. Every wait is bounded, so a broken invalidation path shows as a
 * failure, never as a hang.
 */
#include <tiercache.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY     "greeting"
#define KEY_LEN 8
#define WAIT_MS 5000 /* longest wait for a turn or for an invalidation */

/* Open this process's cache from the environment; hook: the reader's inval_hook. */
static tc_cache_t *open_cache(tc_inval_hook_fn hook) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.key_prefix = "two_process:";
    cfg.inval_channel = "two_process:inval";
    cfg.inval_hook = hook;
    tc_error_t err;
    tc_cache_t *cache;
    if (tc_config_from_env(&cfg, NULL, &err) != TC_OK) {
        fprintf(stderr, "configuration: %s\n", err.msg);
        return NULL;
    }
    if (!cfg.redis_url || !*cfg.redis_url) {
        fprintf(stderr, "two_process needs TIERCACHE_REDIS_URL: the two processes meet in "
                        "Redis\n");
        return NULL;
    }
    cfg.require_redis = 1; /* a demo of sharing needs the shared part */
    if (tc_open(&cfg, &cache, &err) != TC_OK) {
        fprintf(stderr, "tc_open: %s\n", err.msg);
        return NULL;
    }
    return cache;
}

/* ---- the reader ---- */

/* Invalidations of KEY seen by the reader's listener thread (its inval_hook). */
static pthread_mutex_t inval_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inval_cv = PTHREAD_COND_INITIALIZER;
static unsigned invalidations;

static void on_invalidation(void *arg, const void *key, size_t klen) {
    (void)arg;
    if (klen != KEY_LEN || memcmp(key, KEY, KEY_LEN) != 0)
        return;
    pthread_mutex_lock(&inval_mu);
    invalidations++;
    pthread_cond_broadcast(&inval_cv);
    pthread_mutex_unlock(&inval_mu);
}

/* Wait until more than `seen` invalidations arrived. 1 if they did within WAIT_MS. */
static int wait_invalidation(unsigned seen) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&inval_mu);
    int rc = 0;
    while (invalidations <= seen && rc == 0)
        rc = pthread_cond_timedwait(&inval_cv, &inval_mu, &until);
    int arrived = invalidations > seen;
    pthread_mutex_unlock(&inval_mu);
    return arrived;
}

static unsigned invalidations_now(void) {
    pthread_mutex_lock(&inval_mu);
    unsigned n = invalidations;
    pthread_mutex_unlock(&inval_mu);
    return n;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("reader (pid %ld): ", (long)getpid());
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

/* Read KEY, say what came back and from which tier. The value into out ("" when none). */
static void read_key(tc_cache_t *cache, char *out, size_t cap) {
    tc_stats_t before, after;
    tc_stats(cache, &before);
    tc_ref_t *ref;
    int rc = tc_get(cache, KEY, KEY_LEN, &ref);
    tc_stats(cache, &after);
    const char *tier = after.l1_hits > before.l1_hits       ? "its own L1"
                       : after.l2_hits > before.l2_hits     ? "Redis"
                       : after.l2_misses > before.l2_misses ? "neither L1 nor Redis"
                                                            : "no tier: an error";
    out[0] = '\0';
    if (rc == TC_OK) {
        snprintf(out, cap, "%.*s", (int)tc_ref_size(ref), (const char *)tc_ref_data(ref));
        tc_ref_release(ref);
        say("read %s = \"%s\" (from %s)", KEY, out, tier);
    } else {
        say("read %s: %s (%s)", KEY, tc_err_name(rc), tier);
    }
}

/* Wait for the writer's next word on stdin. 1 when it came. */
static int next_turn(void) {
    char word[32];
    return fgets(word, sizeof word, stdin) != NULL;
}

static int reader_main(void) {
    tc_cache_t *cache = open_cache(on_invalidation);
    if (!cache)
        return 2;
    char value[128];
    int ok = 1;

    /* turn 1: the first write is in Redis; read it twice */
    read_key(cache, value, sizeof value);
    ok &= strcmp(value, "hello v1") == 0;
    read_key(cache, value, sizeof value);
    /* counted before the turn ends: the writer writes as soon as it reads "turn done" */
    unsigned seen = invalidations_now();
    say("turn done");

    /* turn 2: the writer wrote v2; our L1 still held v1 */
    ok &= next_turn();
    if (wait_invalidation(seen)) {
        say("invalidation received: its L1 copy of %s was evicted", KEY);
    } else {
        say("NO invalidation within %d ms", WAIT_MS);
        ok = 0;
    }
    read_key(cache, value, sizeof value);
    if (strcmp(value, "hello v2") == 0) {
        say("saw the write: \"%s\"", value);
    } else {
        say("did NOT see the write (still \"%s\")", value);
        ok = 0;
    }
    seen = invalidations_now();
    say("turn done");

    /* turn 3: the writer deleted the key */
    ok &= next_turn();
    if (wait_invalidation(seen)) {
        say("invalidation received: %s deleted everywhere", KEY);
    } else {
        say("NO invalidation within %d ms", WAIT_MS);
        ok = 0;
    }
    read_key(cache, value, sizeof value);
    ok &= value[0] == '\0';
    say("%s", ok ? "all as expected" : "something was wrong");
    say("turn done");
    tc_close(cache);
    return ok ? 0 : 1;
}

/* ---- the writer ---- */

typedef struct reader_proc {
    pid_t pid;
    FILE *to;      /* the reader's stdin */
    int from;      /* the reader's stdout */
    char buf[512]; /* what came from it and is not echoed yet */
    size_t len;
} reader_proc_t;

static int start_reader(const char *self, reader_proc_t *r) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    fflush(stdout);
    r->pid = fork();
    if (r->pid < 0)
        return -1;
    if (r->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        /* this very program (argv[0] may name it only through PATH) */
        execl("/proc/self/exe", self, "--reader", (char *)NULL);
        execlp(self, self, "--reader", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    r->to = fdopen(in[1], "w");
    r->from = out[0];
    return r->to ? 0 : -1;
}

/* Echo the reader's lines until it ends its turn. 1 when it did, each line within
 * 2 * WAIT_MS; 0 when it went quiet or exited. */
static int echo_turn(reader_proc_t *r) {
    for (;;) {
        char *nl;
        while ((nl = memchr(r->buf, '\n', r->len)) != NULL) {
            size_t n = (size_t)(nl - r->buf) + 1;
            fwrite(r->buf, 1, n, stdout);
            fflush(stdout);
            int done = n > 11 && memcmp(nl - 11, ": turn done", 11) == 0;
            memmove(r->buf, r->buf + n, r->len - n);
            r->len -= n;
            if (done)
                return 1;
        }
        struct pollfd p = {.fd = r->from, .events = POLLIN};
        if (r->len == sizeof r->buf || poll(&p, 1, WAIT_MS * 2) != 1)
            return 0;
        ssize_t got = read(r->from, r->buf + r->len, sizeof r->buf - r->len);
        if (got <= 0)
            return 0;
        r->len += (size_t)got;
    }
}

static void tell(reader_proc_t *r, const char *word) {
    fprintf(r->to, "%s\n", word);
    fflush(r->to);
}

static void wsay(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void wsay(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("writer (pid %ld): ", (long)getpid());
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static int write_value(tc_cache_t *cache, const char *value) {
    int rc = tc_set(cache, KEY, KEY_LEN, value, strlen(value), 0);
    wsay("tc_set %s = \"%s\": %s", KEY, value, tc_err_name(rc));
    return rc;
}

static int writer_main(const char *self) {
    tc_cache_t *cache = open_cache(NULL);
    if (!cache)
        return 2;
    reader_proc_t r = {0};
    int ok = write_value(cache, "hello v1") == TC_OK;
    if (!ok || start_reader(self, &r) != 0) {
        tc_close(cache);
        return 1;
    }
    wsay("started the reader, pid %ld", (long)r.pid);
    ok &= echo_turn(&r);
    ok &= write_value(cache, "hello v2") == TC_OK;
    tell(&r, "written");
    ok &= echo_turn(&r);
    int rc = tc_del(cache, KEY, KEY_LEN);
    wsay("tc_del %s: %s", KEY, tc_err_name(rc));
    ok &= rc == TC_OK;
    tell(&r, "deleted");
    ok &= echo_turn(&r);
    fclose(r.to);
    int status = 0;
    if (!ok)
        kill(r.pid, SIGTERM);
    waitpid(r.pid, &status, 0);
    close(r.from);
    tc_close(cache);
    int reader_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    wsay("the reader exited %s", reader_ok ? "0: it saw every change" : "with a failure");
    return ok && reader_ok ? 0 : 1;
}

int main(int argc, char **argv) {
    /* Sockets and pipes closing under us must be errors, not SIGPIPE deaths. */
    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && strcmp(argv[1], "--reader") == 0)
        return reader_main();
    if (argc != 1) {
        fprintf(stderr, "usage: TIERCACHE_REDIS_URL=... %s\n", argv[0]);
        return 2;
    }
    return writer_main(argv[0]);
}
