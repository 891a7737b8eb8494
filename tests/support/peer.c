/*
 * peer.c - spawning and driving tc-peer, the second process of the end-to-end suites.
 *
 * The peer's stdin and stdout are one end of a socketpair rather than two pipes: the test
 * side can then send with MSG_NOSIGNAL, so a peer that crashed turns into a clear test
 * failure instead of a SIGPIPE that kills the test process. Its stderr is inherited, so
 * whatever the peer complains about lands in the test log.
 *
 * Everything the child needs (argv, envp) is built before fork(): the test process has
 * library threads running, so between fork and execve the child only makes
 * async-signal-safe calls.
 *
 * Invariants: `fd` is our end of the socketpair until stop; `buf[0..len)` holds bytes
 * read but not yet returned, and the line handed out last has been consumed from it.
 */
#include "peer.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TC_TEST_PEER_PATH
#define TC_TEST_PEER_PATH "tc-peer"
#endif

#define PEER_BUF                65536
#define PEER_DEFAULT_TIMEOUT_MS (5000 * TC_TEST_SLOW)
#define PEER_OPEN_TIMEOUT_MS    (10000 * TC_TEST_SLOW)

extern char **environ;

struct tc_test_peer {
    pid_t pid;
    int fd;
    int dead;       /* killed and reaped by tc_test_peer_kill: pid is no longer ours */
    size_t len;     /* bytes in buf */
    size_t consume; /* length of the line handed out last, newline included */
    char last[256]; /* the last command, for failure messages */
    char buf[PEER_BUF];
};

uint64_t tc_test_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tc_test_sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

int tc_test_wait_listener(tc_cache_t *c, int want, unsigned timeout_ms) {
    uint64_t deadline = tc_test_now_ms() + timeout_ms;
    for (;;) {
        tc_stats_t st;
        if (tc_stats(c, &st) == 0 && st.listener_connected == want)
            return 1;
        if (tc_test_now_ms() >= deadline)
            return 0;
        tc_test_sleep_ms(5);
    }
}

long tc_test_wait_get(tc_cache_t *c, const void *key, size_t klen, const void *val, size_t vlen,
                      unsigned timeout_ms) {
    uint64_t start = tc_test_now_ms();
    for (;;) {
        tc_ref_t *ref = NULL;
        int rc = tc_get(c, key, klen, &ref);
        int done = val ? rc == 0 && tc_ref_size(ref) == vlen &&
                             (vlen == 0 || memcmp(tc_ref_data(ref), val, vlen) == 0)
                       : rc == TC_ENOTFOUND;
        tc_ref_release(ref);
        uint64_t took = tc_test_now_ms() - start;
        if (done)
            return (long)took;
        if (took > timeout_ms)
            return -1;
        tc_test_sleep_ms(1);
    }
}

long tc_test_peer_wait_get(tc_test_peer_t *p, const void *key, size_t klen, const void *val,
                           size_t vlen, unsigned timeout_ms) {
    char *hk = malloc(2 * klen + 2), *want = val ? malloc(2 * vlen + 2) : NULL;
    cr_assert(hk && (want || !val), "out of memory");
    tc_test_hex(key, klen, hk);
    if (val)
        tc_test_hex(val, vlen, want);
    uint64_t start = tc_test_now_ms();
    long took;
    for (;;) {
        const char *r = tc_test_peer_cmd(p, "get %s", hk);
        int done = val ? strncmp(r, "val ", 4) == 0 && strcmp(r + 4, want) == 0
                       : strcmp(r, "miss") == 0;
        uint64_t ms = tc_test_now_ms() - start;
        if (done || ms > timeout_ms) {
            took = done ? (long)ms : -1;
            break;
        }
        tc_test_sleep_ms(2);
    }
    free(hk);
    free(want);
    return took;
}

int tc_test_hold_locally(tc_cache_t *c, const void *key, size_t klen, const void *val,
                         size_t vlen, unsigned timeout_ms) {
    uint64_t start = tc_test_now_ms();
    do {
        /* A read that serves val, then one more: an L1 hit proves it is held. A listener
         * that reconnects between them (its watchdog fires on a starved box) flushes and
         * keeps nothing until it is back, so try again rather than fail. */
        if (tc_test_wait_get(c, key, klen, val, vlen, timeout_ms) < 0)
            return 0;
        tc_stats_t before, after;
        cr_assert_eq(tc_stats(c, &before), 0);
        if (tc_test_wait_get(c, key, klen, val, vlen, 0) >= 0 && tc_stats(c, &after) == 0 &&
            after.l1_hits > before.l1_hits)
            return 1;
        tc_test_sleep_ms(5);
    } while (tc_test_now_ms() - start <= timeout_ms);
    return 0;
}

int tc_test_get_str(tc_cache_t *c, const void *key, size_t klen, char *buf, size_t cap) {
    size_t len = cap - 1;
    int rc = tc_get_copy(c, key, klen, buf, &len);
    cr_assert(rc == 0 || rc == TC_ENOTFOUND, "tc_get: %s", tc_err_name(rc));
    buf[rc == 0 ? len : 0] = '\0';
    return rc;
}

void tc_test_expect_value(tc_cache_t *c, const void *key, size_t klen, const char *val,
                          const char *who) {
    char got[256];
    int rc = tc_test_get_str(c, key, klen, got, sizeof got);
    if (val)
        cr_assert(rc == 0 && strcmp(got, val) == 0, "%s: '%.*s' reads %s '%s', want '%s'", who,
                  (int)klen, (const char *)key, tc_err_name(rc), got, val);
    else
        cr_assert_eq(rc, TC_ENOTFOUND, "%s: '%.*s' still reads '%s'", who, (int)klen,
                     (const char *)key, got);
}

void tc_test_wait_value(tc_cache_t *c, const void *key, size_t klen, const char *val,
                        const char *who, unsigned timeout_ms) {
    long took = tc_test_wait_get(c, key, klen, val, val ? strlen(val) : 0, timeout_ms);
    if (took < 0)
        tc_test_expect_value(c, key, klen, val, who); /* fails with what it reads */
    tc_test_expect_value(c, key, klen, val, who);
}

void tc_test_config(tc_config_t *cfg, const char *url, const char *prefix,
                    const char *channel) {
    tc_config_init(cfg);
    cfg->redis_url = url;
    cfg->key_prefix = prefix;
    cfg->inval_channel = channel;
    cfg->connect_timeout_ms = 200;
    cfg->command_timeout_ms = 100;
    cfg->breaker_cooldown_ms = 200;
    cfg->listener_ping_ms = 100;
}

tc_cache_t *tc_test_open(const tc_config_t *cfg) {
    tc_cache_t *c = NULL;
    tc_error_t err = {0};
    int rc = tc_open(cfg, &c, &err);
    cr_assert_eq(rc, 0, "tc_open: %s (%s)", tc_err_name(rc), err.msg);
    cr_assert_not_null(c, "tc_open returned 0 without a handle");
    if (cfg->redis_url)
        cr_assert(tc_test_wait_listener(c, 1, 2000u * TC_TEST_SLOW),
                  "the listener did not subscribe within %u ms", 2000u * TC_TEST_SLOW);
    return c;
}

void tc_test_hex(const void *buf, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = buf;
    if (len == 0) {
        strcpy(out, "-");
        return;
    }
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

static int nibble(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tc_test_unhex(const char *hex, void *out, size_t cap, size_t *len) {
    unsigned char *o = out;
    size_t n = strlen(hex);
    if (strcmp(hex, "-") == 0) {
        *len = 0;
        return 0;
    }
    if (n % 2 != 0 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        o[i] = (unsigned char)(hi << 4 | lo);
    }
    *len = n / 2;
    return 0;
}

uint64_t tc_test_stat(const char *line, const char *name) {
    size_t n = strlen(name);
    for (const char *p = strstr(line, name); p; p = strstr(p + 1, name)) {
        if ((p == line || p[-1] == ' ') && p[n] == '=')
            return strtoull(p + n + 1, NULL, 10);
    }
    return UINT64_MAX;
}

/* environ plus extra, in a fresh array (pointers borrowed). */
static char **build_env(const char *const *extra) {
    size_t n = 0, m = 0;
    while (environ && environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **envp = calloc(n + m + 1, sizeof *envp);
    cr_assert_not_null(envp, "peer: out of memory");
    for (size_t i = 0; i < m; i++)
        envp[i] = (char *)extra[i]; /* first, so they win over inherited ones */
    for (size_t i = 0; i < n; i++)
        envp[m + i] = environ[i];
    return envp;
}

/* In the child: only async-signal-safe calls until execve. */
static void child_exec(int fd, char **argv, char **envp, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0)
        _exit(127);
    for (int i = 3; i < 1024; i++)
        close(i);
    execve(argv[0], argv, envp);
    _exit(127);
}

tc_test_peer_t *tc_test_peer_start(const char *url, const char *prefix, const char *channel,
                                   const char *const *env) {
    const char *args[] = {url, prefix, channel, NULL};
    return tc_test_peer_start_prog(TC_TEST_PEER_PATH, args, env);
}

tc_test_peer_t *tc_test_peer_start_prog(const char *path, const char *const *args,
                                        const char *const *env) {
    tc_test_peer_t *p = calloc(1, sizeof *p);
    cr_assert_not_null(p, "peer: out of memory");
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0,
                 "peer: socketpair: %s", strerror(errno));
    char *argv[16] = {(char *)path};
    for (size_t i = 0; args && args[i]; i++) {
        cr_assert_lt(i + 2, sizeof argv / sizeof *argv, "peer: too many arguments");
        argv[i + 1] = (char *)args[i];
    }
    char **envp = build_env(env);
    pid_t parent = getpid();
    p->pid = fork();
    if (p->pid == 0)
        child_exec(sv[1], argv, envp, parent);
    free(envp);
    close(sv[1]);
    cr_assert_gt(p->pid, 0, "peer: fork: %s", strerror(errno));
    p->fd = sv[0];
    snprintf(p->last, sizeof p->last, "(startup of %s)", path);
    const char *ready = tc_test_peer_recv(p, PEER_OPEN_TIMEOUT_MS);
    cr_assert_str_eq(ready, "ready 0", "peer: tc_open failed: '%s'", ready);
    return p;
}

pid_t tc_test_peer_pid(const tc_test_peer_t *p) {
    return p->pid;
}

void tc_test_peer_send(tc_test_peer_t *p, const char *fmt, ...) {
    char line[PEER_BUF];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof line - 1, "peer: command too long");
    size_t keep = (size_t)n < sizeof p->last ? (size_t)n : sizeof p->last - 1;
    memcpy(p->last, line, keep);
    p->last[keep] = '\0';
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = send(p->fd, line + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        cr_assert_gt(w, 0, "peer: sending '%s': %s", p->last, strerror(errno));
        off += (int)w;
    }
}

const char *tc_test_peer_recv(tc_test_peer_t *p, int timeout_ms) {
    memmove(p->buf, p->buf + p->consume, p->len - p->consume);
    p->len -= p->consume;
    p->consume = 0;
    uint64_t deadline = tc_test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        char *nl = memchr(p->buf, '\n', p->len);
        if (nl) {
            *nl = '\0';
            p->consume = (size_t)(nl - p->buf) + 1;
            return p->buf;
        }
        uint64_t now = tc_test_now_ms();
        cr_assert(now < deadline && p->len < sizeof p->buf - 1,
                  "peer: no reply to '%s' within %d ms", p->last, timeout_ms);
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r <= 0)
            continue; /* timeout or EINTR: the deadline check above decides */
        ssize_t got = recv(p->fd, p->buf + p->len, sizeof p->buf - 1 - p->len, 0);
        cr_assert(got > 0 || (got < 0 && errno == EINTR),
                  "peer: connection closed waiting for the reply to '%s'", p->last);
        if (got > 0)
            p->len += (size_t)got;
    }
}

const char *tc_test_peer_cmd(tc_test_peer_t *p, const char *fmt, ...) {
    char line[PEER_BUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    tc_test_peer_send(p, "%s", line);
    return tc_test_peer_recv(p, PEER_DEFAULT_TIMEOUT_MS);
}

/* Reap pid, waiting at most ms; 1 if it exited. */
static int reap_within(pid_t pid, unsigned ms) {
    for (unsigned waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return 1;
        if (waited >= ms)
            return 0;
        tc_test_sleep_ms(10);
    }
}

void tc_test_peer_kill(tc_test_peer_t *p) {
    cr_assert(p && !p->dead, "peer: kill of a peer already gone");
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    p->dead = 1;
}

void tc_test_peer_stop(tc_test_peer_t *p) {
    if (!p)
        return;
    if (p->dead) { /* already reaped: its pid may belong to someone else by now */
        close(p->fd);
        free(p);
        return;
    }
    (void)!send(p->fd, "quit\n", 5, MSG_NOSIGNAL);
    if (!reap_within(p->pid, 3000u * TC_TEST_SLOW)) {
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    close(p->fd);
    free(p);
}
