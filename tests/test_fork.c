/*
 * test_fork.c - a cache opened before fork(), as a prefork server does it.
 *
 * fork() copies a cache's memory but not its threads: in the child no listener applies
 * invalidations (while the copied gauges still say "subscribed"), and the pooled sockets
 * are the parent's, so both processes would write requests to, and read replies from,
 * the same Redis connections. The promise (tiercache.h, fork.h): every call on the
 * inherited handle answers TC_EFORKED in the child; tc_close there returns without
 * touching the parent's threads or sockets; the child can open a cache of its own and
 * use it normally; the parent is unaffected, before and after the child exits; and every
 * socket to Redis is close-on-exec, so a fork + exec leaks none into the new program.
 *
 * A child never asserts (Criterion's assertions belong to the test process): it reports
 * each step's result through a pipe as it goes, so a child that hangs or dies mid-way
 * still tells which step it reached, and the parent, after a bounded wait (then SIGKILL),
 * asserts on the report.
 */
/* tc-test-labels: integration */
#include "peer.h"
#include "redis_server.h"
#include "tiercache.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define RECOVER_MS (2000u * TC_TEST_SLOW)
#define CHILD_MS   (5000u * TC_TEST_SLOW)
#define S(str)     str, sizeof(str) - 1
#define PREFIX     "t:fork:"

static tc_test_redis_t *redis;

static void setup(void) {
    redis = tc_test_redis_start(NULL);
}

static void teardown(void) {
    tc_test_redis_stop(redis);
    redis = NULL;
}

TestSuite(fork, .init = setup, .fini = teardown, .timeout = 60);

static tc_cache_t *open_cache(void) {
    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, PREFIX);
    return tc_test_open(&cfg);
}

static tc_stats_t stats(tc_cache_t *c) {
    tc_stats_t s;
    cr_assert_eq(tc_stats(c, &s), 0);
    return s;
}

static void expect_val(tc_cache_t *c, const char *key, const char *val) {
    cr_assert_geq(tc_test_wait_get(c, key, strlen(key), val, strlen(val), 0), 0,
                  "%s is not '%s'", key, val);
}

/* ---- the child's report ---- */

enum step {
    STEP_GET,
    STEP_GET_COPY,
    STEP_SET,
    STEP_DEL,
    STEP_FETCH,
    STEP_LOADER_CALLS,
    STEP_STATS,
    STEP_CLOSE_INHERITED,
    STEP_OPEN_OWN,
    STEP_OWN_SUBSCRIBED,
    STEP_OWN_SET,
    STEP_OWN_GET,
    STEP_CLOSE_OWN,
    STEP_COUNT
};

static const char *const step_names[STEP_COUNT] = {
    [STEP_GET] = "tc_get on the inherited handle",
    [STEP_GET_COPY] = "tc_get_copy on the inherited handle",
    [STEP_SET] = "tc_set on the inherited handle",
    [STEP_DEL] = "tc_del on the inherited handle",
    [STEP_FETCH] = "tc_fetch on the inherited handle",
    [STEP_LOADER_CALLS] = "loader calls of that tc_fetch",
    [STEP_STATS] = "tc_stats on the inherited handle",
    [STEP_CLOSE_INHERITED] = "tc_close of the inherited handle",
    [STEP_OPEN_OWN] = "tc_open of the child's own cache",
    [STEP_OWN_SUBSCRIBED] = "the child's listener subscribed (1: yes)",
    [STEP_OWN_SET] = "tc_set on the child's cache",
    [STEP_OWN_GET] = "tc_get on the child's cache (0: its own write read back)",
    [STEP_CLOSE_OWN] = "tc_close of the child's cache",
};

typedef struct report {
    int step, result;
} report_t;

static void report(int fd, int step, int result) {
    report_t r = {step, result};
    ssize_t w = write(fd, &r, sizeof r);
    (void)w;
}

static atomic_int child_loads;

static int child_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    (void)arg;
    (void)key;
    (void)klen;
    atomic_fetch_add(&child_loads, 1);
    return tc_load_set_value(load, S("child-load"));
}

/* Every call on the inherited handle, then a cache of the child's own. */
static void child_main(tc_cache_t *inherited, int fd) {
    tc_ref_t *ref = NULL;
    report(fd, STEP_GET, tc_get(inherited, S("shared"), &ref));
    tc_ref_release(ref);
    char buf[32];
    size_t len = sizeof buf;
    report(fd, STEP_GET_COPY, tc_get_copy(inherited, S("shared"), buf, &len));
    report(fd, STEP_SET, tc_set(inherited, S("shared"), S("child-set"), 0));
    report(fd, STEP_DEL, tc_del(inherited, S("other")));
    ref = NULL;
    report(fd, STEP_FETCH, tc_fetch(inherited, S("absent"), child_loader, NULL, &ref));
    tc_ref_release(ref);
    report(fd, STEP_LOADER_CALLS, atomic_load(&child_loads));
    tc_stats_t st;
    report(fd, STEP_STATS, tc_stats(inherited, &st));
    tc_close(inherited);
    report(fd, STEP_CLOSE_INHERITED, 0);

    tc_config_t cfg;
    tc_test_config(&cfg, tc_test_redis_url(redis), PREFIX, PREFIX);
    tc_cache_t *own = NULL;
    int rc = tc_open(&cfg, &own, NULL);
    report(fd, STEP_OPEN_OWN, rc);
    if (rc != 0)
        return;
    report(fd, STEP_OWN_SUBSCRIBED, tc_test_wait_listener(own, 1, RECOVER_MS));
    report(fd, STEP_OWN_SET, tc_set(own, S("from-child"), S("child-value"), 0));
    ref = NULL;
    rc = tc_get(own, S("from-child"), &ref);
    if (rc == 0 && (tc_ref_size(ref) != 11 || memcmp(tc_ref_data(ref), "child-value", 11)))
        rc = TC_EINTERNAL; /* read back something else */
    tc_ref_release(ref);
    report(fd, STEP_OWN_GET, rc);
    tc_close(own);
    report(fd, STEP_CLOSE_OWN, 0);
}

/* Read the child's reports until it closes the pipe or CHILD_MS pass; then reap it
 * (SIGKILL first if it is still running). results[step] stays INT32_MIN when not reached. */
static void collect(pid_t pid, int fd, int *results) {
    for (int i = 0; i < STEP_COUNT; i++)
        results[i] = INT32_MIN;
    uint64_t deadline = tc_test_now_ms() + CHILD_MS;
    for (;;) {
        uint64_t now = tc_test_now_ms();
        if (now >= deadline)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        report_t r;
        ssize_t got = read(fd, &r, sizeof r);
        if (got != (ssize_t)sizeof r)
            break; /* EOF: the child is done (or died) */
        if (r.step >= 0 && r.step < STEP_COUNT)
            results[r.step] = r.result;
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    close(fd);
}

/* A step's result: a return code (named in the message), or a count. */
static void expect_step(const int *results, int step, int want) {
    int got = results[step];
    if (got == INT32_MIN)
        cr_expect_fail("%s: never reported (the child hung or died before it)",
                       step_names[step]);
    else if (step == STEP_LOADER_CALLS || step == STEP_OWN_SUBSCRIBED)
        cr_expect_eq(got, want, "%s: %d, expected %d", step_names[step], got, want);
    else
        cr_expect_eq(got, want, "%s: %d (%s), expected %d (%s)", step_names[step], got,
                     tc_err_name(got), want, tc_err_name(want));
}

Test(fork, child_gets_eforked_and_parent_is_unaffected) {
    tc_cache_t *parent = open_cache();
    cr_assert_eq(tc_set(parent, S("shared"), S("v1"), 0), 0);
    expect_val(parent, "shared", "v1"); /* in the parent's L1, hence in the child's copy */

    int pfd[2];
    cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        close(pfd[0]);
        alarm(CHILD_MS / 1000 + 5); /* a child stuck in a copied lock still goes away */
        child_main(parent, pfd[1]);
        _exit(0);
    }
    close(pfd[1]);
    int results[STEP_COUNT];
    collect(pid, pfd[0], results);

    expect_step(results, STEP_GET, TC_EFORKED);
    expect_step(results, STEP_GET_COPY, TC_EFORKED);
    expect_step(results, STEP_SET, TC_EFORKED);
    expect_step(results, STEP_DEL, TC_EFORKED);
    expect_step(results, STEP_FETCH, TC_EFORKED);
    expect_step(results, STEP_LOADER_CALLS, 0);
    expect_step(results, STEP_STATS, TC_EFORKED);
    expect_step(results, STEP_CLOSE_INHERITED, 0);
    expect_step(results, STEP_OPEN_OWN, 0);
    expect_step(results, STEP_OWN_SUBSCRIBED, 1);
    expect_step(results, STEP_OWN_SET, 0);
    expect_step(results, STEP_OWN_GET, 0);
    expect_step(results, STEP_CLOSE_OWN, 0);

    /* The parent: its data untouched by the child, the child's write heard, and its pool
     * and listener fine after the child used and closed its copies. */
    expect_val(parent, "shared", "v1");
    cr_assert_geq(tc_test_wait_get(parent, S("from-child"), S("child-value"), RECOVER_MS), 0,
                  "the parent does not read the child's write");
    tc_stats_t st = stats(parent);
    cr_assert_eq(st.listener_connected, 1, "the parent's listener is gone after the fork");
    tc_cache_t *peer = open_cache();
    for (int i = 0; i < 20; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "after%d", i);
        snprintf(v, sizeof v, "value-%d", i);
        cr_assert_eq(tc_set(parent, k, strlen(k), v, strlen(v), 0), 0, "parent tc_set %d", i);
        expect_val(parent, k, v);
        expect_val(peer, k, v);
    }
    cr_assert_eq(tc_set(peer, S("shared"), S("v2"), 0), 0);
    cr_assert_geq(tc_test_wait_get(parent, S("shared"), S("v2"), RECOVER_MS), 0,
                  "the parent no longer hears invalidations");
    st = stats(parent);
    cr_assert_eq(st.l2_errors, 0, "the parent's Redis calls failed after the fork");
    cr_assert_eq(st.breaker_opens, 0);
    tc_close(peer);
    tc_close(parent);
}

/* ---- close-on-exec ---- */

/* "socket:[inode]" of every fd this process has connected to the test's Redis socket,
 * and whether each is close-on-exec. Returns how many. */
static int redis_sockets(unsigned long *inodes, int *cloexec, int cap) {
    const char *path = tc_test_redis_socket_path(redis);
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d, "no /proc/self/fd");
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] == '.' || fd == dirfd(d))
            continue;
        struct sockaddr_un sa;
        socklen_t slen = sizeof sa;
        memset(&sa, 0, sizeof sa);
        if (getpeername(fd, (struct sockaddr *)&sa, &slen) != 0 || sa.sun_family != AF_UNIX ||
            strncmp(sa.sun_path, path, sizeof sa.sun_path) != 0)
            continue;
        struct stat sb;
        cr_assert_eq(fstat(fd, &sb), 0);
        cr_assert_lt(n, cap);
        inodes[n] = (unsigned long)sb.st_ino;
        cloexec[n] = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
        n++;
    }
    closedir(d);
    return n;
}

/* fork + exec a shell that prints the target of each of its own descriptors. */
static size_t exec_fd_listing(char *out, size_t cap) {
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0); /* not close-on-exec: it becomes the shell's stdout */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl("/bin/sh", "sh", "-c",
              "for f in /proc/$$/fd/*; do readlink \"$f\"; done; echo end", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    uint64_t deadline = tc_test_now_ms() + CHILD_MS;
    while (len + 1 < cap && tc_test_now_ms() < deadline) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t got = read(pfd[0], out + len, cap - 1 - len);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    out[len] = '\0';
    close(pfd[0]);
    int status;
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    return len;
}

Test(fork, redis_sockets_are_close_on_exec) {
    tc_cache_t *a = open_cache();
    /* A few calls, so that at least one pooled connection exists besides the listener's. */
    cr_assert_eq(tc_set(a, S("k"), S("v"), 0), 0);
    expect_val(a, "k", "v");
    cr_assert_eq(tc_del(a, S("k")), 0);
    tc_ref_t *ref = NULL;
    cr_assert_eq(tc_get(a, S("missing"), &ref), TC_ENOTFOUND);

    unsigned long inodes[64];
    int cloexec[64];
    int n = redis_sockets(inodes, cloexec, 64);
    cr_assert_geq(n, 2, "found %d sockets to Redis (listener + pool expected)", n);
    for (int i = 0; i < n; i++)
        cr_expect(cloexec[i], "socket:[%lu] to Redis is not close-on-exec", inodes[i]);

    char listing[8192];
    exec_fd_listing(listing, sizeof listing);
    cr_assert_not_null(strstr(listing, "end"), "the exec'd shell did not run: '%s'", listing);
    for (int i = 0; i < n; i++) {
        char name[48];
        snprintf(name, sizeof name, "socket:[%lu]", inodes[i]);
        cr_expect_null(strstr(listing, name), "%s leaked into an exec'd program", name);
    }
    tc_close(a);
}
