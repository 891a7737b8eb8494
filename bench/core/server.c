/*
 * server.c - start, wait for and stop a private redis-server.
 *
 * The child reports an exec failure through a close-on-exec pipe: if exec succeeds the
 * pipe just closes, otherwise the child writes its errno, so "redis-server is not
 * installed" is told apart from "it started and then died" without guessing from timing.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void child_exec(const tcb_server_t *s, int report_fd) {
    char logf[128];
    snprintf(logf, sizeof logf, "%s/redis.log", s->dir);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
    }
    setpgid(0, 0); /* a Ctrl-C at the terminal stops the bench, which stops the server */
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    const char *argv[] = {
        "redis-server", "--port", port, "--unixsocket", s->sock, "--unixsocketperm", "700",
        "--save", "", "--appendonly", "no", "--dir", s->dir, "--logfile", logf, "--daemonize",
        "no", "--protected-mode", "no",
        /* a cluster node: */
        "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file",
        "nodes.conf", "--cluster-node-timeout", "5000", NULL};
    if (!s->port)
        argv[19] = NULL; /* a plain server: no TCP, no cluster */
    execvp(argv[0], (char *const *)argv);
    int e = errno;
    if (write(report_fd, &e, sizeof e) < 0)
        _exit(127);
    _exit(127);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int ping(const char *sock) {
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

static void remove_dir(tcb_server_t *s) {
    char p[160];
    snprintf(p, sizeof p, "%s/redis.log", s->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/nodes.conf", s->dir);
    unlink(p);
    unlink(s->sock);
    rmdir(s->dir);
}

static int start_fail(tcb_server_t *s, char *err, size_t errlen, int exec_errno) {
    if (exec_errno == ENOENT)
        snprintf(err, errlen,
                 "redis-server was not found on PATH. Install Redis (Debian/Ubuntu: "
                 "apt-get install redis-server; macOS: brew install redis) or point the "
                 "bench at a running server with --redis redis://host:port");
    else if (exec_errno)
        snprintf(err, errlen, "cannot run redis-server: %s", strerror(exec_errno));
    else
        snprintf(err, errlen, "redis-server did not answer PING within 5 s (log: %s/redis.log)",
                 s->dir);
    tcb_server_stop(s);
    return -1;
}

/* Wait for the exec report, then for PING. Returns the exec errno, 0 when up, -1 timeout. */
static int await_ready(tcb_server_t *s, int rfd) {
    int e = 0;
    ssize_t n = read(rfd, &e, sizeof e);
    close(rfd);
    if (n == (ssize_t)sizeof e)
        return e ? e : -1;
    for (int i = 0; i < 500; i++) {
        if (ping(s->sock))
            return 0;
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

static int start(tcb_server_t *s, int port, char *err, size_t errlen);

int tcb_server_start(tcb_server_t *s, char *err, size_t errlen) {
    return start(s, 0, err, errlen);
}

int tcb_server_start_cluster_node(tcb_server_t *s, int port, char *err, size_t errlen) {
    return start(s, port, err, errlen);
}

static int port_free(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

int tcb_server_free_port(void) {
    static unsigned next;
    if (!next)
        next = 20000u + (unsigned)getpid() % 20000u;
    for (int tries = 0; tries < 2000; tries++) {
        int port = (int)(20000u + next++ % 25000u);
        if (port_free(port) && port_free(port + 10000))
            return port;
    }
    return 0;
}

static int start(tcb_server_t *s, int port, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->port = port;
    snprintf(s->dir, sizeof s->dir, "/tmp/tcbench-XXXXXX");
    if (!mkdtemp(s->dir)) {
        snprintf(err, errlen, "mkdtemp(/tmp/tcbench-XXXXXX): %s", strerror(errno));
        return -1;
    }
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    snprintf(s->url, sizeof s->url, "unix://%s", s->sock);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        rmdir(s->dir);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        child_exec(s, p[1]);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        snprintf(err, errlen, "fork: %s", strerror(errno));
        rmdir(s->dir);
        return -1;
    }
    s->pid = pid;
    int r = await_ready(s, p[0]);
    return r == 0 ? 0 : start_fail(s, err, errlen, r > 0 ? r : 0);
}

void tcb_server_stop(tcb_server_t *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int st;
        for (int i = 0; i < 300; i++) {
            if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
                s->pid = 0;
                break;
            }
            sleep_ms(10);
        }
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            s->pid = 0;
        }
    }
    if (s->dir[0]) {
        remove_dir(s);
        s->dir[0] = '\0';
    }
}
