/*
 * test_cli.c - tiercache-cli run as an operator runs it: a real process, configured by
 * its command line and TIERCACHE_* variables, against a private redis-server, judged by
 * its exit code, stdout and stderr.
 *
 * The tool and the library must agree, so most tests pair the two: a value the CLI sets is
 * read back with tc_get, a value the library writes is decoded by `inspect` and compared
 * with the version read raw from Redis, `invalidate` must evict from a cache this test
 * holds open, and `watch` must print the writes, deletes and evictions that cache makes,
 * with the version and origin they really carried. The "any writer" modes are checked the
 * same way: with tracking, watch shows what a foreign writer did; with plain keys, every
 * command works on the Redis key and its plain string.
 *
 * The binary's path comes from TC_TEST_CLI_PATH (tests/CMakeLists.txt); a build without
 * the tool skips. Every child gets the test's environment without TIERCACHE_* variables
 * (a developer's settings must not leak in), dies with the test process
 * (PR_SET_PDEATHSIG), and is bounded by a deadline, so a hung tool fails its test
 * instead of hanging the suite.
 */
/* tc-test-labels: integration */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"
#include "valfmt.h"

#include <criterion/criterion.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define S(str)       str, sizeof(str) - 1
#define RUN_MS       ((uint64_t)10000 * TC_TEST_SLOW)
#define MAX_ARGS     32
#define OUTPUT_LIMIT (1 << 20)

static tc_test_redis_t *redis;

static void setup(void) {
    signal(SIGPIPE, SIG_IGN); /* a child that exits before reading its stdin */
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

/* ---- running the tool ---- */

typedef struct run {
    int code; /* exit status; 128 + signal when killed by one */
    char *out, *err;
    size_t out_len, err_len;
} run_t;

typedef struct proc {
    pid_t pid;
    int out, err;
} proc_t;

/* The test's environment without TIERCACHE_*, plus extra (NULL-terminated, may be NULL). */
static char **child_env(const char *const *extra) {
    size_t n = 0, m = 0, k = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof *env);
    cr_assert_not_null(env);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "TIERCACHE_", 10) != 0)
            env[k++] = environ[i];
    for (size_t i = 0; i < m; i++)
        env[k++] = (char *)extra[i];
    return env;
}

static void child_exec(int in[2], int out[2], int err[2], char **argv, char **env) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    for (int i = 0; i < 2; i++) {
        close(in[i]);
        close(out[i]);
        close(err[i]);
    }
    execve(argv[0], argv, env);
    _exit(127);
}

/* Start the tool with argv[1..] (argv[0] is replaced by the binary), feed it `in` (NULL:
 * an empty stdin) and leave it running. */
static proc_t start(const char *const *env_extra, const void *in, size_t in_len,
                    const char *const *args) {
#ifndef TC_TEST_CLI_PATH
    (void)env_extra, (void)in, (void)in_len, (void)args;
    cr_skip_test("tiercache-cli is not built");
#else
    char *argv[MAX_ARGS + 2] = {(char *)TC_TEST_CLI_PATH};
    size_t n = 0;
    while (args[n]) {
        cr_assert_lt(n, (size_t)MAX_ARGS);
        argv[n + 1] = (char *)args[n];
        n++;
    }
    char **env = child_env(env_extra);
    int pin[2], pout[2], perr[2];
    cr_assert(pipe(pin) == 0 && pipe(pout) == 0 && pipe(perr) == 0);
    proc_t p = {.pid = fork()};
    cr_assert_geq(p.pid, 0);
    if (p.pid == 0)
        child_exec(pin, pout, perr, argv, env);
    free(env);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (in_len > 0) /* small inputs: they fit in the pipe, no deadlock with the reads */
        cr_assert_eq(write(pin[1], in, in_len), (ssize_t)in_len);
    close(pin[1]);
    p.out = pout[0];
    p.err = perr[0];
    return p;
#endif
}

/* Append what fd has to *buf; 0 at EOF. */
static int drain_fd(int fd, char **buf, size_t *len) {
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0)
        return 0;
    cr_assert_lt(*len + (size_t)n, (size_t)OUTPUT_LIMIT, "the tool writes without end");
    *buf = realloc(*buf, *len + (size_t)n + 1);
    cr_assert_not_null(*buf);
    memcpy(*buf + *len, chunk, (size_t)n);
    *len += (size_t)n;
    (*buf)[*len] = '\0';
    return 1;
}

/* Read stdout and stderr to their end and reap the tool; fail if it takes over RUN_MS. */
static run_t finish(proc_t *p) {
    run_t r = {.out = calloc(1, 1), .err = calloc(1, 1)};
    struct pollfd fds[2] = {{.fd = p->out, .events = POLLIN}, {.fd = p->err, .events = POLLIN}};
    uint64_t deadline = tc_test_now_ms() + RUN_MS;
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
        int left = (int)(deadline - tc_test_now_ms());
        if (left <= 0 || poll(fds, 2, left) <= 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            cr_assert_fail("tiercache-cli did not finish in %llu ms; stdout: %s; stderr: %s",
                           (unsigned long long)RUN_MS, r.out, r.err);
        }
        if (fds[0].revents && !drain_fd(fds[0].fd, &r.out, &r.out_len))
            fds[0].fd = -1;
        if (fds[1].revents && !drain_fd(fds[1].fd, &r.err, &r.err_len))
            fds[1].fd = -1;
    }
    close(p->out);
    close(p->err);
    int status;
    cr_assert_eq(waitpid(p->pid, &status, 0), p->pid);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

static void run_free(run_t *r) {
    free(r->out);
    free(r->err);
}

static run_t run_argv(const char *const *env, const void *in, size_t in_len,
                      const char *const *args) {
    proc_t p = start(env, in, in_len, args);
    return finish(&p);
}

/* The tool on this test's Redis, with its own prefix and channel (both `ns`). */
#define CLI(ns, ...)                                                                           \
    run_argv(NULL, NULL, 0,                                                                    \
             (const char *const[]){"-u", tc_test_redis_url(redis), "-p", ns, "-c", ns,         \
                                   __VA_ARGS__, NULL})
#define CLI_IN(ns, in, in_len, ...)                                                            \
    run_argv(NULL, in, in_len,                                                                 \
             (const char *const[]){"-u", tc_test_redis_url(redis), "-p", ns, "-c", ns,         \
                                   __VA_ARGS__, NULL})

static void expect_ok(run_t *r, const char *what) {
    cr_assert_eq(r->code, 0, "%s: exit %d, stderr: %s", what, r->code, r->err);
}

/* ---- the library's side ---- */

static tc_cache_t *open_cache(const char *ns) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), ns, ns);
    cfg.command_timeout_ms = 2000;
    return tc_test_open(&cfg);
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t st;
    cr_assert_eq(tc_stats(c, &st), 0);
    return st;
}

static long long redis_int(const char *fmt, const char *arg) {
    redisReply *r = tc_test_redis_cmd(redis, fmt, arg);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s", fmt);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The version stored under the library's name for key: the header read raw. */
static uint64_t stored_version(const char *ns, const char *key) {
    redisReply *r = tc_test_redis_cmd(redis, "GET %sk:%s", ns, key);
    tc__val_t v;
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "%sk:%s is not stored", ns, key);
    cr_assert_eq(tc__val_decode(r->str, r->len, &v), 0, "%sk:%s is not tiercache's", ns, key);
    freeReplyObject(r);
    return v.version;
}

/* The text after "label" at the start of a line of out, up to the newline. */
static const char *field(const char *out, const char *label, char *buf, size_t cap) {
    size_t n = strlen(label);
    for (const char *line = out; line && *line; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (strncmp(line, label, n) == 0) {
            const char *v = line + n + strspn(line + n, " ");
            snprintf(buf, cap, "%.*s", (int)strcspn(v, "\n"), v);
            return buf;
        }
    }
    cr_assert_fail("no '%s' line in: %s", label, out);
    return NULL;
}

/* ---- get, set, del ---- */

Test(cli, set_then_get_round_trips_binary_data) {
    run_t r = CLI("t:cli:rt:", "--hex", "set", "00ff0d0a20", "000102ff0a");
    expect_ok(&r, "set --hex");
    cr_assert_eq(r.out_len, 0u, "set printed: %s", r.out);
    run_free(&r);
    r = CLI("t:cli:rt:", "get", "--hex", "00ff0d0a20");
    expect_ok(&r, "get --hex");
    cr_assert_str_eq(r.out, "000102ff0a\n");
    run_free(&r);

    /* Raw bytes from stdin, and back byte-exact: stdout is a pipe, so no newline. */
    r = CLI_IN("t:cli:rt:", "a\0b\r\n", 5, "set", "raw", "-");
    expect_ok(&r, "set from stdin");
    run_free(&r);
    r = CLI("t:cli:rt:", "get", "raw");
    expect_ok(&r, "get");
    cr_assert_eq(r.out_len, 5u);
    cr_assert_eq(memcmp(r.out, "a\0b\r\n", 5), 0);
    run_free(&r);

    /* The library reads what the tool wrote: same format, same names. */
    tc_cache_t *c = open_cache("t:cli:rt:");
    char buf[16];
    size_t n = sizeof buf;
    cr_assert_eq(tc_get_copy(c, "\x00\xff\r\n ", 5, buf, &n), 0);
    cr_assert(n == 5 && memcmp(buf, "\x00\x01\x02\xff\n", 5) == 0);
    tc_close(c);

    /* Hex on stdin, whitespace ignored. */
    r = CLI_IN("t:cli:rt:", "00 01\nff\n", 9, "-x", "set", "6b", "-");
    expect_ok(&r, "set --hex from stdin");
    run_free(&r);
    r = CLI("t:cli:rt:", "get", "k");
    cr_assert(r.code == 0 && r.out_len == 3 && memcmp(r.out, "\x00\x01\xff", 3) == 0);
    run_free(&r);
}

Test(cli, get_of_a_missing_key_exits_1) {
    run_t r = CLI("t:cli:miss:", "get", "nobody");
    cr_assert_eq(r.code, 1, "exit %d, stderr: %s", r.code, r.err);
    cr_assert_eq(r.out_len, 0u);
    run_free(&r);
    /* A string tiercache did not write is not served either; stderr says where to look. */
    tc_test_redis_do(redis, "SET t:cli:miss:k:plain text");
    r = CLI("t:cli:miss:", "get", "plain");
    cr_assert_eq(r.code, 1, "exit %d, stderr: %s", r.code, r.err);
    cr_assert(strstr(r.err, "inspect"), "stderr: %s", r.err);
    run_free(&r);
}

Test(cli, del_removes_the_key_from_redis) {
    run_t r = CLI("t:cli:del:", "set", "k", "v");
    expect_ok(&r, "set");
    run_free(&r);
    cr_assert_eq(redis_int("EXISTS %s", "t:cli:del:k:k"), 1);
    r = CLI("t:cli:del:", "del", "k");
    expect_ok(&r, "del");
    run_free(&r);
    cr_assert_eq(redis_int("EXISTS %s", "t:cli:del:k:k"), 0, "del left the key in Redis");
    r = CLI("t:cli:del:", "get", "k");
    cr_assert_eq(r.code, 1);
    run_free(&r);
    r = CLI("t:cli:del:", "del", "k"); /* deleting nothing is not an error */
    expect_ok(&r, "del of a missing key");
    run_free(&r);
}

/* ---- failures and exit codes ---- */

Test(cli, unreachable_redis_exits_3_with_the_cause_and_no_password) {
    char url[600];
    snprintf(url, sizeof url, "unix://%s/missing.sock?password=s3cret",
             tc_test_redis_dir(redis));
    const char *cmds[][3] = {{"get", "k", NULL}, {"inspect", "k", NULL}, {"watch", NULL}};
    for (size_t i = 0; i < 3; i++) {
        run_t r = run_argv(NULL, NULL, 0,
                           (const char *const[]){"-u", url, cmds[i][0], cmds[i][1], NULL});
        cr_assert_eq(r.code, 3, "%s: exit %d, stderr: %s", cmds[i][0], r.code, r.err);
        cr_assert(strstr(r.err, "TC_EUNAVAILABLE"), "%s: %s", cmds[i][0], r.err);
        cr_assert(strstr(r.err, "No such file or directory"), "%s: %s", cmds[i][0], r.err);
        cr_assert_null(strstr(r.err, "s3cret"), "%s printed the password: %s", cmds[i][0],
                       r.err);
        run_free(&r);
    }
    /* TCP, refused: a port nothing listens on (the test server's own, once it is gone). */
    tc_test_redis_opts_t o = {.tcp = 1};
    tc_test_redis_t *gone = tc_test_redis_start(&o);
    int port = tc_test_redis_port(gone);
    tc_test_redis_stop(gone);
    snprintf(url, sizeof url, "redis://bob:s3cret@127.0.0.1:%d", port);
    run_t r = run_argv(NULL, NULL, 0, (const char *const[]){"-u", url, "set", "k", "v", NULL});
    cr_assert_eq(r.code, 3, "exit %d, stderr: %s", r.code, r.err);
    cr_assert(strstr(r.err, "refused") && strstr(r.err, "bob:***@"), "stderr: %s", r.err);
    cr_assert_null(strstr(r.err, "s3cret"), "the password was printed: %s", r.err);
    run_free(&r);
    /* Several servers: each URL is masked; a Sentinel URL's userinfo and its sentinels'
     * password too. */
    snprintf(url, sizeof url,
             "redis://bob:s3cret@127.0.0.1:%d redis+sentinel://amy:s3cret@127.0.0.1:%d/m"
             "?sentinel_password=t0pS3cret",
             port, port);
    r = run_argv(NULL, NULL, 0, (const char *const[]){"-u", url, "set", "k", "v", NULL});
    cr_assert_neq(r.code, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.err, "bob:***@") && strstr(r.err, "amy:***@"), "stderr: %s", r.err);
    cr_assert_null(strstr(r.err, "s3cret"), "a password was printed: %s", r.err);
    cr_assert_null(strstr(r.err, "t0pS3cret"), "the sentinels' password was printed: %s",
                   r.err);
    run_free(&r);
    /* A cluster's seed list, no node up. */
    snprintf(url, sizeof url, "redis+cluster://cat:s3cret@127.0.0.1:%d,127.0.0.1:%d", port,
             port + 1);
    r = run_argv(NULL, NULL, 0, (const char *const[]){"-u", url, "set", "k", "v", NULL});
    cr_assert_eq(r.code, 3, "exit %d, stderr: %s", r.code, r.err);
    cr_assert(strstr(r.err, "cat:***@"), "stderr: %s", r.err);
    cr_assert_null(strstr(r.err, "s3cret"), "the password was printed: %s", r.err);
    run_free(&r);
}

Test(cli, usage_errors_exit_2_and_say_why) {
    static const struct {
        const char *args[6];
        const char *says;
    } cases[] = {
        {{NULL}, "no command"},
        {{"frob", NULL}, "unknown command 'frob'"},
        {{"get", NULL}, "missing KEY"},
        {{"set", "k", NULL}, "missing VALUE"},
        {{"get", "k", "extra", NULL}, "unexpected operand 'extra'"},
        {{"get", "k", "--ttl", "5s", NULL}, "--ttl applies to set"},
        {{"set", "k", "v", "--ttl", "soon", NULL}, "'soon' is not a duration"},
        {{"watch", "--count", "x", NULL}, "not a positive integer"},
        {{"--hex", "get", "xy", NULL}, "not hex"},
        {{"--hex", "get", "abc", NULL}, "not hex"}, /* odd: half a byte */
        {{"--bogus", "get", "k", NULL}, "--bogus is not an option"},
        {{"get", "", NULL}, "KEY must be 1..65535 bytes"},
        {{"get", "k", NULL}, "no Redis URL"}, /* neither -u nor TIERCACHE_REDIS_URL */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_t r = run_argv(NULL, NULL, 0, cases[i].args);
        cr_assert_eq(r.code, 2, "case %zu: exit %d, stderr: %s", i, r.code, r.err);
        cr_assert(strstr(r.err, cases[i].says), "case %zu: stderr: %s", i, r.err);
        cr_assert(strstr(r.err, "usage:"), "case %zu: no usage line: %s", i, r.err);
        cr_assert_eq(r.out_len, 0u, "case %zu printed: %s", i, r.out);
        run_free(&r);
    }
}

Test(cli, configuration_comes_from_tiercache_variables_and_is_strict) {
    char url[600];
    snprintf(url, sizeof url, "TIERCACHE_REDIS_URL=%s", tc_test_redis_url(redis));
    const char *typo[] = {url, "TIERCACHE_L1_MAX_BYTEZ=1MiB", NULL};
    run_t r = run_argv(typo, NULL, 0, (const char *const[]){"get", "k", NULL});
    cr_assert_eq(r.code, 2, "exit %d, stderr: %s", r.code, r.err);
    cr_assert(strstr(r.err, "TIERCACHE_L1_MAX_BYTEZ"), "stderr: %s", r.err);
    run_free(&r);

    /* The environment alone configures the tool; an option overrides it. */
    const char *env[] = {url, "TIERCACHE_KEY_PREFIX=t:cli:env:", NULL};
    r = run_argv(env, NULL, 0, (const char *const[]){"set", "k", "v", NULL});
    expect_ok(&r, "set configured by the environment");
    run_free(&r);
    cr_assert_eq(redis_int("EXISTS %s", "t:cli:env:k:k"), 1, "TIERCACHE_KEY_PREFIX ignored");
    r = run_argv(env, NULL, 0,
                 (const char *const[]){"set", "-p", "t:cli:opt:", "k", "v", NULL});
    expect_ok(&r, "set with -p");
    run_free(&r);
    cr_assert_eq(redis_int("EXISTS %s", "t:cli:opt:k:k"), 1, "-p did not override");
}

/* ---- inspect ---- */

Test(cli, inspect_decodes_a_value_the_library_wrote) {
    tc_cache_t *c = open_cache("t:cli:insp:");
    cr_assert_eq(tc_set(c, S("user:42"), S("hello"), 30000), 0);
    uint64_t version = stored_version("t:cli:insp:", "user:42");
    run_t r = CLI("t:cli:insp:", "inspect", "user:42");
    expect_ok(&r, "inspect");
    char buf[256];
    cr_assert_eq(strtoull(field(r.out, "version:", buf, sizeof buf), NULL, 10), version,
                 "inspect: %s", r.out);
    long long pttl = strtoll(field(r.out, "pttl:", buf, sizeof buf), NULL, 10);
    cr_assert(pttl > 20000 && pttl <= 33000, "pttl %lld for a 30 s TTL (+-10%%)", pttl);
    cr_assert_str_eq(field(r.out, "value:", buf, sizeof buf), "5 bytes");
    cr_assert_str_eq(field(r.out, "preview:", buf, sizeof buf), "\"hello\"");
    cr_assert(strncmp(field(r.out, "flags:", buf, sizeof buf), "0x06", 4) == 0, "flags: %s",
              buf);
    cr_assert(strstr(r.out, "expires by:") && !strstr(r.out, "not in the header"), "%s", r.out);
    run_free(&r);
    tc_close(c);

    r = CLI("t:cli:insp:", "inspect", "nobody");
    cr_assert_eq(r.code, 1, "missing key: exit %d", r.code);
    run_free(&r);
    tc_test_redis_do(redis, "SET t:cli:insp:k:plain %s", "not ours");
    r = CLI("t:cli:insp:", "inspect", "plain");
    cr_assert_eq(r.code, 5, "foreign string: exit %d, stdout: %s", r.code, r.out);
    cr_assert(strstr(r.out, "not a tiercache value"), "stdout: %s", r.out);
    run_free(&r);
    tc_test_redis_do(redis, "HSET t:cli:insp:k:h f v");
    r = CLI("t:cli:insp:", "inspect", "h");
    cr_assert_eq(r.code, 5, "a hash: exit %d, stdout: %s", r.code, r.out);
    cr_assert(strstr(r.out, "not a string"), "stdout: %s", r.out);
    run_free(&r);
}

/* ---- invalidate ---- */

Test(cli, invalidate_evicts_from_every_l1_and_keeps_redis) {
    tc_cache_t *c = open_cache("t:cli:inv:");
    cr_assert_eq(tc_set(c, S("k"), S("v"), 0), 0);
    uint64_t hits = stats(c).l1_hits;
    cr_assert_geq(tc_test_wait_get(c, S("k"), S("v"), 0), 0);
    cr_assert_gt(stats(c).l1_hits, hits, "k is not in L1: nothing to evict");
    uint64_t misses = stats(c).l1_misses;
    run_t r = CLI("t:cli:inv:", "invalidate", "k");
    expect_ok(&r, "invalidate");
    run_free(&r);
    uint64_t deadline = tc_test_now_ms() + (uint64_t)2000 * TC_TEST_SLOW;
    for (;;) { /* until a read misses L1: the eviction arrived */
        cr_assert_geq(tc_test_wait_get(c, S("k"), S("v"), 0), 0, "the value in Redis is gone");
        if (stats(c).l1_misses > misses)
            break;
        cr_assert_lt(tc_test_now_ms(), deadline, "k is still in this process's L1");
        tc_test_sleep_ms(5);
        misses = stats(c).l1_misses;
    }
    cr_assert_eq(redis_int("EXISTS %s", "t:cli:inv:k:k"), 1, "invalidate deleted the value");
    tc_close(c);
}

/* ---- watch ---- */

static long long subscribers(const char *channel) {
    redisReply *r = tc_test_redis_cmd(redis, "PUBSUB NUMSUB %s", channel);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    long long n = r->element[1]->integer;
    freeReplyObject(r);
    return n;
}

/* Start `watch` and return once it is subscribed (one more subscriber than before). */
static proc_t start_watch(const char *const *env, const char *ns, const char *count) {
    long long before = subscribers(ns);
    const char *const args[] = {"-u",    tc_test_redis_url(redis), "-p",  ns,  "-c", ns,
                                "watch", count ? "--count" : NULL, count, NULL};
    proc_t p = start(env, NULL, 0, args);
    uint64_t deadline = tc_test_now_ms() + RUN_MS;
    while (subscribers(ns) <= before) {
        cr_assert_lt(tc_test_now_ms(), deadline, "watch did not subscribe");
        tc_test_sleep_ms(5);
    }
    return p;
}

/* Line i of out (0-based) into buf. */
static const char *line_of(const char *out, int i, char *buf, size_t cap) {
    const char *l = out;
    for (int k = 0; k < i && l; k++)
        if ((l = strchr(l, '\n')))
            l++;
    cr_assert(l && *l, "no line %d in: %s", i, out);
    snprintf(buf, cap, "%.*s", (int)strcspn(l, "\n"), l);
    return buf;
}

static size_t count_lines(const char *out) {
    size_t n = 0;
    for (const char *l = out; (l = strchr(l, '\n')); l++)
        n++;
    return n;
}

/* "origin=<32 hex>" of a line. */
static void origin_of(const char *line, char out[33]) {
    const char *o = strstr(line, " origin=");
    cr_assert(o && strspn(o + 8, "0123456789abcdef") == 32, "origin in: %s", line);
    memcpy(out, o + 8, 32);
    out[32] = '\0';
}

Test(cli, watch_prints_the_decoded_messages) {
    const char *ns = "t:cli:watch:";
    tc_cache_t *c = open_cache(ns);
    proc_t p = start_watch(NULL, ns, "4");
    tc_test_redis_do(redis, "PUBLISH %s %s", ns, "not a message");
    cr_assert_eq(tc_set(c, S("w:1"), S("v"), 0), 0);
    uint64_t version = stored_version(ns, "w:1");
    cr_assert_eq(tc_del(c, S("w:1")), 0);
    cr_assert_eq(tc_invalidate(c, S("w \"2\"")), 0);
    run_t r = finish(&p);
    expect_ok(&r, "watch --count 4");
    char line[4][512], expect[128], origin[3][33];
    for (int i = 0; i < 4; i++)
        line_of(r.out, i, line[i], sizeof line[i]);
    cr_assert_str_eq(line[0], "malformed len=13 data=\"not a message\"");
    snprintf(expect, sizeof expect, "write v=%llu log=", (unsigned long long)version);
    cr_assert(strncmp(line[1], expect, strlen(expect)) == 0, "%s", line[1]);
    cr_assert(strncmp(line[2], "delete v=", 9) == 0, "%s", line[2]);
    cr_assert_gt(strtoull(line[2] + 9, NULL, 10), version, "%s", line[2]);
    cr_assert(strncmp(line[3], "evict v=0 ", 10) == 0, "%s", line[3]);
    cr_assert(strstr(line[1], " key=\"w:1\"") && strstr(line[2], " key=\"w:1\""));
    cr_assert(strstr(line[3], " key=\"w \\\"2\\\"\""), "%s", line[3]);
    for (int i = 0; i < 3; i++)
        origin_of(line[i + 1], origin[i]);
    cr_assert(strcmp(origin[0], origin[1]) == 0 && strcmp(origin[1], origin[2]) == 0,
              "one cache published all three: %s %s %s", origin[0], origin[1], origin[2]);
    cr_assert_eq(count_lines(r.out), 4u, "one line per message: %s", r.out);
    run_free(&r);
    tc_close(c);
}

Test(cli, watch_stops_cleanly_on_sigint_and_sigterm) {
    const int sigs[] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        proc_t p = start_watch(NULL, "t:cli:sig:", NULL);
        cr_assert_eq(kill(p.pid, sigs[i]), 0);
        run_t r = finish(&p);
        cr_assert_eq(r.code, 0, "signal %d: exit %d, stderr: %s", sigs[i], r.code, r.err);
        run_free(&r);
    }
}

/* Any writer: with tracking configured, watch also shows Redis's own notices, for the
 * keys the caches track only, mapped back to the cache's key. */
Test(cli, watch_shows_the_tracking_notices_of_any_writer) {
    const char *env[] = {"TIERCACHE_TRACKING=bcast", NULL};
    proc_t p = start_watch(env, "t:cli:trk:", "2");
    tc_test_redis_do(redis, "SET other:y v");            /* not under the prefix */
    tc_test_redis_do(redis, "SET t:cli:trk:v v");        /* the version counter's place */
    tc_test_redis_do(redis, "SET t:cli:trk:k:user:7 v"); /* a cached key, by redis-cli */
    tc_test_redis_do(redis, "FLUSHALL");
    run_t r = finish(&p);
    expect_ok(&r, "watch with tracking");
    cr_assert_str_eq(r.out, "tracking key=\"user:7\"\ntracking flush\n");
    run_free(&r);
}

/* plain_keys: the key is the Redis key, the value a plain string, for every command. */
Test(cli, plain_keys_are_read_written_and_inspected_as_they_are) {
    char url[600];
    snprintf(url, sizeof url, "TIERCACHE_REDIS_URL=%s", tc_test_redis_url(redis));
    const char *env[] = {url, "TIERCACHE_PLAIN_KEYS=1", "TIERCACHE_TRACKING=bcast",
                         "TIERCACHE_KEY_PREFIX=t:plain:", NULL};
    run_t r = run_argv(env, NULL, 0, (const char *const[]){"set", "t:plain:u", "hi", NULL});
    expect_ok(&r, "set of a plain key");
    run_free(&r);
    redisReply *raw = tc_test_redis_cmd(redis, "GET t:plain:u");
    cr_assert(raw->type == REDIS_REPLY_STRING && raw->len == 2 &&
                  memcmp(raw->str, "hi", 2) == 0,
              "a plain key is stored as it is");
    freeReplyObject(raw);
    tc_test_redis_do(redis, "SET t:plain:w %s PX 30000", "from elsewhere");
    r = run_argv(env, NULL, 0, (const char *const[]){"get", "t:plain:w", NULL});
    cr_assert(r.code == 0 && strcmp(r.out, "from elsewhere") == 0, "exit %d: %s%s", r.code,
              r.out, r.err);
    run_free(&r);
    r = run_argv(env, NULL, 0, (const char *const[]){"inspect", "t:plain:w", NULL});
    expect_ok(&r, "inspect of a plain key");
    char buf[256];
    cr_assert(strstr(field(r.out, "format:", buf, sizeof buf), "plain string"), "%s", r.out);
    cr_assert_str_eq(field(r.out, "preview:", buf, sizeof buf), "\"from elsewhere\"");
    long long pttl = strtoll(field(r.out, "pttl:", buf, sizeof buf), NULL, 10);
    cr_assert(pttl > 0 && pttl <= 30000, "pttl %lld", pttl);
    run_free(&r);
}

/* ---- help and version ---- */

Test(cli, help_and_version) {
    run_t r = run_argv(NULL, NULL, 0, (const char *const[]){"--help", NULL});
    expect_ok(&r, "--help");
    cr_assert(strstr(r.out, "Exit codes") && strstr(r.out, "inspect KEY"), "%s", r.out);
    run_free(&r);
    r = run_argv(NULL, NULL, 0, (const char *const[]){"set", "--help", NULL});
    expect_ok(&r, "set --help");
    cr_assert(strstr(r.out, "--ttl DUR"), "%s", r.out);
    run_free(&r);
    r = run_argv(NULL, NULL, 0, (const char *const[]){"--version", NULL});
    expect_ok(&r, "--version");
    cr_assert(strstr(r.out, tc_version()), "%s", r.out);
    run_free(&r);
}
