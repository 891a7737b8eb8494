/*
 * exproc.c - examples run as real processes (exproc.h).
 *
 * Children are made with fork + execve: the environment array is built before the fork,
 * so the child only rewires its descriptors and execs. Output is gathered with poll()
 * against a deadline, so a child that hangs, or fills a pipe nobody reads, cannot hang
 * the test: it is killed when the deadline passes.
 */
#include "exproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The test's environment less TIERCACHE_* and METRICS_*, plus extra. NULL on ENOMEM. */
static char **child_env(const char *const *extra) {
    size_t n = 0, m = 0, k = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof *env);
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "TIERCACHE_", 10) != 0 &&
            strncmp(environ[i], "METRICS_", 8) != 0)
            env[k++] = environ[i];
    for (size_t i = 0; i < m; i++)
        env[k++] = (char *)extra[i];
    return env;
}

/* fork + execve with stdout (and stderr, when err_fd >= 0) on the given pipes' write
 * ends; the read ends are closed in the child. The pid, or -1. */
static pid_t spawn(const char *const *argv, const char *const *extra, int out_pipe[2],
                   int err_pipe[2]) {
    char **env = child_env(extra);
    if (!env)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out_pipe[1], STDOUT_FILENO);
        if (err_pipe)
            dup2(err_pipe[1], STDERR_FILENO);
        close(out_pipe[0]);
        close(out_pipe[1]);
        if (err_pipe) {
            close(err_pipe[0]);
            close(err_pipe[1]);
        }
        int devnull = open("/dev/null", 0);
        if (devnull >= 0) /* no example reads the test's stdin */
            dup2(devnull, STDIN_FILENO);
        execve(argv[0], (char *const *)argv, env);
        _exit(127);
    }
    free(env);
    close(out_pipe[1]);
    if (err_pipe)
        close(err_pipe[1]);
    return pid;
}

typedef struct sink {
    int fd;
    char *buf;
    size_t len, cap;
} sink_t;

/* Read what is there into s; 0 on EOF (fd closed and set to -1), 1 otherwise. */
static int drain(sink_t *s) {
    if (s->len + 4096 + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8192;
        char *grown = realloc(s->buf, cap);
        if (!grown)
            return 0;
        s->buf = grown;
        s->cap = cap;
    }
    ssize_t n = read(s->fd, s->buf + s->len, s->cap - s->len - 1);
    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0) {
        close(s->fd);
        s->fd = -1;
        return 0;
    }
    s->len += (size_t)n;
    return 1;
}

static char *take(sink_t *s) {
    if (!s->buf)
        s->buf = calloc(1, 1);
    else
        s->buf[s->len] = '\0';
    return s->buf;
}

/* Reap pid by the deadline; the status as documented, or -1 (killed). */
static int reap(pid_t pid, uint64_t deadline) {
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int tc_test_run(const char *const *argv, const char *const *env, char **out, char **err,
                unsigned timeout_ms) {
    int op[2], ep[2];
    if (pipe(op) != 0)
        return -1;
    if (pipe(ep) != 0) {
        close(op[0]);
        close(op[1]);
        return -1;
    }
    pid_t pid = spawn(argv, env, op, ep);
    if (pid < 0)
        return -1;
    uint64_t deadline = now_ms() + timeout_ms;
    sink_t s[2] = {{.fd = op[0]}, {.fd = ep[0]}};
    int late = 0;
    while (s[0].fd >= 0 || s[1].fd >= 0) {
        struct pollfd p[2] = {{.fd = s[0].fd, .events = POLLIN},
                              {.fd = s[1].fd, .events = POLLIN}};
        int left = (int)(deadline - now_ms());
        if ((int64_t)(deadline - now_ms()) <= 0) {
            late = 1;
            break;
        }
        if (poll(p, 2, left) <= 0)
            continue;
        for (int i = 0; i < 2; i++)
            if (p[i].revents && s[i].fd >= 0)
                drain(&s[i]);
    }
    for (int i = 0; i < 2; i++)
        if (s[i].fd >= 0)
            close(s[i].fd);
    if (late)
        kill(pid, SIGKILL);
    int status = reap(pid, late ? now_ms() + 2000 : deadline + 2000);
    char *o = take(&s[0]), *e = take(&s[1]);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return late ? -1 : status;
}

pid_t tc_test_start_server(const char *const *argv, const char *const *env, unsigned timeout_ms,
                           unsigned *port, const char **why) {
    int op[2];
    *why = "cannot make a pipe or fork";
    if (pipe(op) != 0)
        return -1;
    pid_t pid = spawn(argv, env, op, NULL);
    if (pid < 0)
        return -1;
    char line[256];
    size_t len = 0;
    uint64_t deadline = now_ms() + timeout_ms;
    *why = NULL;
    while (!memchr(line, '\n', len)) {
        struct pollfd p = {.fd = op[0], .events = POLLIN};
        int left = (int)(deadline - now_ms());
        if (len + 1 >= sizeof line) {
            *why = "its first line is too long";
        } else if ((int64_t)(deadline - now_ms()) <= 0 || poll(&p, 1, left) != 1) {
            *why = "it did not print \"listening on\" in time";
        } else {
            ssize_t n = read(op[0], line + len, sizeof line - 1 - len);
            if (n <= 0)
                *why = "it exited before listening (see its stderr above)";
            else
                len += (size_t)n;
        }
        if (*why)
            break;
    }
    close(op[0]); /* the servers print nothing more on stdout */
    line[len] = '\0';
    if (!*why && sscanf(line, "listening on 127.0.0.1:%u", port) != 1)
        *why = "its first line is not \"listening on 127.0.0.1:PORT\"";
    if (*why) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

int tc_test_stop_server(pid_t pid, int sig, unsigned timeout_ms) {
    if (kill(pid, sig) != 0)
        return -1;
    return reap(pid, now_ms() + timeout_ms);
}

int tc_test_http(unsigned port, const char *method, const char *target, const char *body,
                 int io_sec, tc_test_http_t *r) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval io = {.tv_sec = io_sec};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &io, sizeof io);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &io, sizeof io);
    char req[8192];
    size_t blen = body ? strlen(body) : 0;
    int n = body
                ? snprintf(req, sizeof req,
                           "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n%s",
                           method, target, blen, body)
                : snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n", method,
                           target);
    if (n < 0 || (size_t)n >= sizeof req ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t len = 0;
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
