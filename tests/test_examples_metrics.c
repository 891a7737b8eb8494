/*
 * test_examples_metrics.c - examples/metrics_server run as an operator would run it: its
 * own process, configured from the environment, on a private redis-server, driven over
 * HTTP by plain sockets.
 *
 * The idea: the example is documentation that executes, so it is checked end to end. It
 * is started with port 0 and found through the "listening on ADDRESS:PORT" line it
 * prints; requests go over fresh connections (the server closes each after one answer);
 * /metrics must be valid Prometheus text (support/promtext.h) carrying the counters and the
 * latency histogram that the requests moved, with the labels from METRICS_LABELS; and the
 * server must answer many clients at once and exit 0 on SIGTERM and on SIGINT.
 *
 * The binary's path comes from TC_TEST_METRICS_SERVER_PATH (tests/CMakeLists.txt); a
 * build without the examples skips these tests. The server dies with the test process
 * (PR_SET_PDEATHSIG), so a failed assertion never leaves it running.
 */
/* tc-test-labels: integration */
#include "peer.h"
#include "promtext.h"
#include "redis_server.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define LABELS   "service=\"test\""
#define START_MS (10000 * TC_TEST_SLOW)
#define IO_SEC   (5 * TC_TEST_SLOW)
#define RESPONSE 65536

typedef struct server {
    pid_t pid;
    unsigned port;
    tc_test_redis_t *redis;
} server_t;

/* ---- the server process ---- */

/* The test's environment without TIERCACHE_* or METRICS_* (a developer's settings must
 * not leak in), plus the given entries. Built before fork: the child only calls execve. */
static char **child_env(const char *const *extra) {
    size_t n = 0, k = 0, m = 0;
    while (environ[n])
        n++;
    while (extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof *env);
    cr_assert_not_null(env);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "TIERCACHE_", 10) && strncmp(environ[i], "METRICS_", 8))
            env[k++] = environ[i];
    for (size_t i = 0; i < m; i++)
        env[k++] = (char *)extra[i];
    return env;
}

/* Read the server's first stdout line and take the port from it. */
static unsigned read_port(int fd) {
    char line[128];
    size_t len = 0;
    uint64_t deadline = tc_test_now_ms() + START_MS;
    while (len + 1 < sizeof line && !memchr(line, '\n', len)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - tc_test_now_ms());
        cr_assert(left > 0 && poll(&p, 1, left) == 1, "metrics_server did not start in time");
        ssize_t n = read(fd, line + len, sizeof line - 1 - len);
        cr_assert_gt(n, 0, "metrics_server exited before listening");
        len += (size_t)n;
    }
    line[len] = '\0';
    unsigned port = 0;
    cr_assert_eq(sscanf(line, "listening on 127.0.0.1:%u", &port), 1, "first line: %s", line);
    cr_assert(port > 0 && port < 65536);
    return port;
}

static void start(server_t *s) {
#ifndef TC_TEST_METRICS_SERVER_PATH
    cr_skip_test("examples/metrics_server is not built (TC_BUILD_EXAMPLES=OFF)");
#else
    s->redis = tc_test_redis_start(NULL);
    char url[512], *argv[] = {(char *)TC_TEST_METRICS_SERVER_PATH, (char *)"0", NULL};
    snprintf(url, sizeof url, "TIERCACHE_REDIS_URL=%s", tc_test_redis_url(s->redis));
    const char *extra[] = {url, "TIERCACHE_REQUIRE_REDIS=1", "METRICS_LABELS=" LABELS, NULL};
    char **env = child_env(extra);
    int out[2];
    cr_assert_eq(pipe(out), 0);
    s->pid = fork();
    cr_assert_geq(s->pid, 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execve(argv[0], argv, env);
        _exit(127);
    }
    free(env);
    close(out[1]);
    s->port = read_port(out[0]);
    close(out[0]); /* the server prints nothing more on stdout */
#endif
}

/* Send sig and wait for the exit; the exit status, or -1 if it had to be killed. */
static int stop_with(server_t *s, int sig) {
    cr_assert_eq(kill(s->pid, sig), 0);
    int status = 0;
    uint64_t deadline = tc_test_now_ms() + IO_SEC * 1000 + 2000;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (tc_test_now_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            tc_test_redis_stop(s->redis);
            return -1;
        }
        tc_test_sleep_ms(10);
    }
    tc_test_redis_stop(s->redis);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- a minimal HTTP client ---- */

typedef struct response {
    int status;
    char head[1024]; /* status line and headers */
    char *body;      /* into raw, NUL-terminated */
    size_t body_len;
    char raw[RESPONSE];
} response_t;

/* One request on a fresh connection; 0 and *r filled, or -1 (no test assertion, so that
 * client threads can use it). */
static int http(unsigned port, const char *method, const char *target, response_t *r) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval io = {.tv_sec = IO_SEC};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &io, sizeof io);
    char req[512];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n", method, target);
    size_t len = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (ssize_t got; len + 1 < sizeof r->raw &&
                      (got = recv(fd, r->raw + len, sizeof r->raw - 1 - len, 0)) > 0;)
        len += (size_t)got;
    close(fd);
    r->raw[len] = '\0';
    char *end = strstr(r->raw, "\r\n\r\n");
    if (!end || sscanf(r->raw, "HTTP/1.1 %d", &r->status) != 1 ||
        (size_t)(end - r->raw) >= sizeof r->head)
        return -1;
    memcpy(r->head, r->raw, (size_t)(end - r->raw));
    r->head[end - r->raw] = '\0';
    r->body = end + 4;
    r->body_len = len - (size_t)(r->body - r->raw);
    size_t declared;
    const char *cl = strstr(r->head, "Content-Length: ");
    if (!cl || sscanf(cl, "Content-Length: %zu", &declared) != 1 || declared != r->body_len)
        return -1; /* a cut-off answer */
    return 0;
}

static response_t *call(const server_t *s, const char *method, const char *target) {
    static response_t r; /* main thread only */
    cr_assert_eq(http(s->port, method, target, &r), 0, "%s %s: no complete answer", method,
                 target);
    return &r;
}

static void expect(const server_t *s, const char *method, const char *target, int status,
                   const char *body) {
    response_t *r = call(s, method, target);
    cr_assert_eq(r->status, status, "%s %s: %d %s", method, target, r->status, r->body);
    if (body)
        cr_assert_str_eq(r->body, body, "%s %s", method, target);
}

/* The value of the one sample line that starts with `series ` in a /metrics body. */
static double metric(const char *text, const char *series) {
    char prefix[256];
    snprintf(prefix, sizeof prefix, "\n%s ", series);
    const char *at = strstr(text, prefix);
    cr_assert_not_null(at, "no sample %s in:\n%.2000s", series, text);
    cr_assert_null(strstr(at + 1, prefix), "two samples %s", series);
    return strtod(at + strlen(prefix), NULL);
}

/* The whole body is valid Prometheus text, with METRICS_LABELS first on every sample. */
static void expect_valid_exposition(const response_t *r) {
    tc_test_prom_t *e = malloc(sizeof *e);
    cr_assert_not_null(e);
    cr_assert(tc_test_prom_parse(e, r->body, r->body_len), "%s", e->error);
    cr_assert_eq(e->series, TC_LAT_COUNT, "one histogram series per kind of call");
    for (int i = 0; i < e->nsamples; i++)
        cr_assert_str_eq(e->samples[i].labels[0].value, "test", "line %d", e->samples[i].line);
    free(e);
}

/* ---- tests ---- */

Test(metrics_server, serves_prometheus_text_that_the_requests_moved) {
    server_t s;
    start(&s);
    expect(&s, "PUT", "/set?key=user%3A1&value=hello+world", 200, "stored\n");
    for (int i = 0; i < 3; i++)
        expect(&s, "GET", "/get?key=user:1", 200, "hello world");
    expect(&s, "GET", "/get?key=absent", 404, NULL); /* L1 miss, then Redis */
    expect(&s, "DELETE", "/del?key=user:1", 200, "deleted\n");
    expect(&s, "GET", "/get?key=user:1", 404, NULL);
    expect(&s, "POST", "/get?key=x", 405, NULL);
    expect(&s, "GET", "/nowhere", 404, NULL);
    expect(&s, "GET", "/get?key=bad%zz", 400, NULL);

    response_t *r = call(&s, "GET", "/metrics");
    cr_assert_eq(r->status, 200);
    cr_assert_not_null(strstr(r->head, "\r\nContent-Type: text/plain; version=0.0.4"), "%s",
                       r->head);
    expect_valid_exposition(r);
    const char *m = r->body;
    cr_assert_not_null(strstr(m, "# TYPE tiercache_l1_hits_total counter\n"));
    cr_assert_not_null(strstr(m, "# TYPE tiercache_call_duration_seconds histogram\n"));
    cr_assert_eq(metric(m, "tiercache_l1_hits_total{" LABELS "}"), 3);
    cr_assert_eq(metric(m, "tiercache_l2_misses_total{" LABELS "}"), 2);
    cr_assert_eq(metric(m, "tiercache_breaker_state{" LABELS "}"), 0);
#define HIST(part, kind) "tiercache_call_duration_seconds_" part "{" LABELS ",kind=\"" kind "\""
    cr_assert_eq(metric(m, HIST("count", "set") "}"), 1);
    cr_assert_eq(metric(m, HIST("bucket", "set") ",le=\"+Inf\"}"), 1);
    cr_assert_eq(metric(m, HIST("count", "get_miss") "}"), 2);
    cr_assert_eq(metric(m, HIST("count", "del") "}"), 1);
    cr_assert_gt(metric(m, HIST("sum", "set") "}"), 0);
    cr_assert_eq(stop_with(&s, SIGTERM), 0, "metrics_server did not exit 0 on SIGTERM");
}

typedef struct client {
    unsigned port;
    int id;
    int failures;
} client_t;

enum { CLIENTS = 8, ROUNDS = 25 };

/* Each client writes its own keys and reads them back; failures are counted, not
 * asserted (Criterion asserts only on the test's thread). */
static void *client_main(void *arg) {
    client_t *c = arg;
    response_t *r = malloc(sizeof *r);
    for (int i = 0; r && i < ROUNDS; i++) {
        char target[128], want[32];
        snprintf(want, sizeof want, "v%d.%d", c->id, i);
        snprintf(target, sizeof target, "/set?key=k%d.%d&value=%s", c->id, i, want);
        if (http(c->port, "PUT", target, r) != 0 || r->status != 200)
            c->failures++;
        snprintf(target, sizeof target, "/get?key=k%d.%d", c->id, i);
        if (http(c->port, "GET", target, r) != 0 || r->status != 200 ||
            strcmp(r->body, want) != 0)
            c->failures++;
    }
    c->failures += !r;
    free(r);
    return NULL;
}

Test(metrics_server, serves_many_clients_at_once) {
    server_t s;
    start(&s);
    pthread_t threads[CLIENTS];
    client_t clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = (client_t){.port = s.port, .id = i};
        cr_assert_eq(pthread_create(&threads[i], NULL, client_main, &clients[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        cr_assert_eq(clients[i].failures, 0, "client %d failed %d requests", i,
                     clients[i].failures);
    }
    response_t *r = call(&s, "GET", "/metrics");
    expect_valid_exposition(r);
    const char *m = r->body;
    cr_assert_eq(metric(m, HIST("count", "set") "}"), CLIENTS * ROUNDS);
    cr_assert_eq(metric(m, "tiercache_l1_hits_total{" LABELS "}"), CLIENTS * ROUNDS);
    cr_assert_eq(metric(m, "tiercache_l1_entries{" LABELS "}"), CLIENTS * ROUNDS);
    cr_assert_eq(stop_with(&s, SIGTERM), 0);
}

Test(metrics_server, sigint_stops_it_cleanly_while_idle) {
    server_t s;
    start(&s);
    expect(&s, "GET", "/metrics", 200, NULL);
    uint64_t t0 = tc_test_now_ms();
    cr_assert_eq(stop_with(&s, SIGINT), 0, "metrics_server did not exit 0 on SIGINT");
    cr_assert_lt(tc_test_now_ms() - t0, 2000 * TC_TEST_SLOW, "an idle server stops at once");
}
