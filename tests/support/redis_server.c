/*
 * redis_server.c - one private redis-server per test, started and torn down by the test.
 *
 * The server is a child of the test process (fork + execvp, never a shell), configured
 * entirely on its command line: no persistence, no daemonizing, everything (socket, log,
 * working dir) inside a fresh mkdtemp() directory, so two suites running side by side
 * never share state. TCP servers get a port found by binding 127.0.0.1:0; the tiny race
 * between releasing that port and Redis binding it is covered by retrying with a new port.
 *
 * Invariants:
 * - `pid` is the live (possibly stopped) child, or 0 after kill/stop; it is always reaped.
 * - The child carries PR_SET_PDEATHSIG(SIGKILL), so a crashed or aborted test never leaves
 *   a Redis behind. The signal fires when the *thread* that forked exits: start and
 *   restart servers from the test's main thread.
 * - A server is "up" only once it has answered PING (after AUTH when auth is configured);
 *   every failure to get there prints the Redis log and fails the calling test.
 * - A test that fails before calling stop still leaves nothing behind (see cleanup_live).
 */
#include "redis_server.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TC_TEST_READY_TIMEOUT_MS 5000
#define TC_TEST_READY_POLL_MS    10
#define TC_TEST_PORT_ATTEMPTS    10

struct tc_test_redis {
    pid_t pid;
    int tcp;
    int cluster;
    int replicaof_port;   /* a replica of 127.0.0.1:replicaof_port */
    int sentinel_of_port; /* a sentinel monitoring 127.0.0.1:sentinel_of_port */
    int port;
    char *password;
    char *acl_user;
    char dir[64];
    char sock[128];
    char log[128];
    char url[1024];
};

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

/* A free loopback port: bind :0, read what the kernel chose, release it. */
static int pick_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
static void url_escape(const char *s, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s && n + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
}

static void build_url(tc_test_redis_t *r) {
    char pw[256] = "", user[256] = "";
    if (r->password)
        url_escape(r->password, pw, sizeof pw);
    if (r->acl_user)
        url_escape(r->acl_user, user, sizeof user);
    if (r->tcp) {
        if (r->password)
            snprintf(r->url, sizeof r->url, "redis://%s:%s@127.0.0.1:%d", user, pw, r->port);
        else
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
    } else if (r->password && r->acl_user) {
        snprintf(r->url, sizeof r->url, "unix://%s?password=%s&user=%s", r->sock, pw, user);
    } else if (r->password) {
        snprintf(r->url, sizeof r->url, "unix://%s?password=%s", r->sock, pw);
    } else {
        snprintf(r->url, sizeof r->url, "unix://%s", r->sock);
    }
}

/* Runs in the forked child: only async-signal-safe calls until execvp. */
static void child_exec(char **argv, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127); /* the test died before we armed the death signal */
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
    }
    /* Do not keep the test's sockets (e.g. connections to an earlier server) alive. */
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    }
    execvp(argv[0], argv);
    _exit(127);
}

/* A sentinel's configuration file (Sentinel rewrites it, so it lives in the server's own
 * directory): monitor the master as TC_TEST_SENTINEL_MASTER with quorum 2, and notice a
 * dead master within a second. */
static const char *sentinel_conf(const tc_test_redis_t *r, char *path, size_t cap) {
    snprintf(path, cap, "%s/sentinel.conf", r->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fprintf(f,
            "sentinel monitor %s 127.0.0.1 %d 2\n"
            "sentinel down-after-milliseconds %s 1000\n"
            "sentinel failover-timeout %s 10000\n"
            "sentinel parallel-syncs %s 1\n",
            TC_TEST_SENTINEL_MASTER, r->sentinel_of_port, TC_TEST_SENTINEL_MASTER,
            TC_TEST_SENTINEL_MASTER, TC_TEST_SENTINEL_MASTER);
    if (r->password) /* the sentinel's own password, which the others use to reach it too */
        fprintf(f, "requirepass \"%s\"\nsentinel sentinel-pass \"%s\"\n", r->password,
                r->password);
    fclose(f);
    return path;
}

static pid_t spawn(const tc_test_redis_t *r) {
    char port[16], acl[512], conf[256], primary[16];
    snprintf(port, sizeof port, "%d", r->tcp ? r->port : 0);
    const char *argv[48];
    int n = 0;
    argv[n++] = "redis-server";
    if (r->sentinel_of_port) {
        argv[n++] = sentinel_conf(r, conf, sizeof conf);
        if (!argv[n - 1])
            return -1;
        argv[n++] = "--sentinel";
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--dir";
        argv[n++] = r->dir;
        argv[n++] = "--logfile";
        argv[n++] = r->log;
        argv[n] = NULL;
        pid_t parent = getpid(), pid = fork();
        if (pid == 0)
            child_exec((char **)argv, parent);
        return pid;
    }
    argv[n++] = "--port";
    argv[n++] = port;
    if (r->tcp) {
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
    }
    argv[n++] = "--unixsocket";
    argv[n++] = r->sock;
    argv[n++] = "--unixsocketperm";
    argv[n++] = "700";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = r->dir;
    argv[n++] = "--logfile";
    argv[n++] = r->log;
    if (r->replicaof_port) {
        snprintf(primary, sizeof primary, "%d", r->replicaof_port);
        argv[n++] = "--replicaof";
        argv[n++] = "127.0.0.1";
        argv[n++] = primary;
    }
    if (r->cluster) { /* the bus is port + 10000: a port too high to have one is retried */
        argv[n++] = "--cluster-enabled";
        argv[n++] = "yes";
        argv[n++] = "--cluster-config-file";
        argv[n++] = "nodes.conf"; /* in --dir: a restart rejoins with the same identity */
        argv[n++] = "--cluster-node-timeout";
        argv[n++] = "2000";
        argv[n++] = "--repl-diskless-sync-delay"; /* replicas sync at once, not after 5 s */
        argv[n++] = "0";
    }
    if (r->password && r->acl_user) {
        /* The default user is switched off so only the ACL user can get in: a client that
         * ignored the user name would fail instead of silently authenticating as default. */
        snprintf(acl, sizeof acl, ">%s", r->password);
        argv[n++] = "--user";
        argv[n++] = r->acl_user;
        argv[n++] = "on";
        argv[n++] = acl;
        argv[n++] = "~*";
        argv[n++] = "&*";
        argv[n++] = "+@all";
        argv[n++] = "--user";
        argv[n++] = "default";
        argv[n++] = "off";
    } else if (r->password) {
        argv[n++] = "--requirepass";
        argv[n++] = r->password;
    }
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec((char **)argv, parent);
    return pid;
}

static redisContext *connect_once(const tc_test_redis_t *r, unsigned timeout_ms) {
    struct timeval tv = {timeout_ms / 1000u, (long)(timeout_ms % 1000u) * 1000L};
    redisContext *c = r->tcp ? redisConnectWithTimeout("127.0.0.1", r->port, tv)
                             : redisConnectUnixWithTimeout(r->sock, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (!r->password)
        return c;
    redisReply *rep = r->acl_user ? redisCommand(c, "AUTH %s %s", r->acl_user, r->password)
                                  : redisCommand(c, "AUTH %s", r->password);
    int ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep)
        freeReplyObject(rep);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static int answers_ping(const tc_test_redis_t *r) {
    redisContext *c = connect_once(r, 200);
    if (!c)
        return 0;
    redisReply *rep = redisCommand(c, "PING");
    int ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return ok;
}

static void print_log(const tc_test_redis_t *r) {
    FILE *f = fopen(r->log, "r");
    fprintf(stderr, "---- %s ----\n", r->log);
    if (!f) {
        fprintf(stderr, "(no log)\n");
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
    fprintf(stderr, "---- end of redis log ----\n");
}

static void reap_kill(tc_test_redis_t *r) {
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGKILL);
    while (waitpid(r->pid, NULL, 0) == -1 && errno == EINTR) {
    }
    r->pid = 0;
}

/* Start the child and wait for PONG. 0 when up; -1 (child reaped) when not. */
static int launch(tc_test_redis_t *r) {
    unlink(r->sock); /* a stale socket from a killed server */
    r->pid = spawn(r);
    if (r->pid < 0) {
        r->pid = 0;
        return -1;
    }
    for (int waited = 0; waited <= TC_TEST_READY_TIMEOUT_MS; waited += TC_TEST_READY_POLL_MS) {
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
            r->pid = 0; /* exited: port taken, bad option... */
            return -1;
        }
        if (answers_ping(r))
            return 0;
        sleep_ms(TC_TEST_READY_POLL_MS);
    }
    reap_kill(r);
    return -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_dir(const tc_test_redis_t *r) {
    if (r->dir[0])
        nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Servers not yet stopped. A failed assertion ends the test without reaching its
 * tc_test_redis_stop(); the worker process still exits normally, and this atexit hook
 * then kills what is left and removes its directory. */
#define TC_TEST_MAX_LIVE 64
static tc_test_redis_t *live[TC_TEST_MAX_LIVE];
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t live_once = PTHREAD_ONCE_INIT;

static void cleanup_live(void) {
    pthread_mutex_lock(&live_mu);
    for (int i = 0; i < TC_TEST_MAX_LIVE; i++) {
        if (live[i]) {
            reap_kill(live[i]);
            remove_dir(live[i]);
            live[i] = NULL;
        }
    }
    pthread_mutex_unlock(&live_mu);
}

static void register_atexit(void) {
    atexit(cleanup_live);
}

static void track(tc_test_redis_t *r, int add) {
    pthread_once(&live_once, register_atexit);
    pthread_mutex_lock(&live_mu);
    for (int i = 0; i < TC_TEST_MAX_LIVE; i++) {
        if (add ? live[i] == NULL : live[i] == r) {
            live[i] = add ? r : NULL;
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);
}

static void destroy(tc_test_redis_t *r) {
    remove_dir(r);
    free(r->password);
    free(r->acl_user);
    free(r);
}

tc_test_redis_t *tc_test_redis_start(const tc_test_redis_opts_t *opts) {
    tc_test_redis_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r, "tc_test_redis_start: out of memory");
    r->cluster = opts ? opts->cluster : 0;
    r->replicaof_port = opts ? opts->replicaof_port : 0;
    r->sentinel_of_port = opts ? opts->sentinel_of_port : 0;
    r->tcp = (opts ? opts->tcp : 0) || r->cluster || r->replicaof_port || r->sentinel_of_port;
    r->password = dup_or_null(opts ? opts->password : NULL);
    r->acl_user = r->password ? dup_or_null(opts->acl_user) : NULL;
    strcpy(r->dir, "/tmp/tc-redis-XXXXXX");
    if (!mkdtemp(r->dir)) {
        int e = errno;
        r->dir[0] = '\0';
        destroy(r);
        cr_assert_fail("tc_test_redis_start: mkdtemp: %s", strerror(e));
    }
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    snprintf(r->log, sizeof r->log, "%s/redis.log", r->dir);

    int up = -1;
    for (int attempt = 0; attempt < (r->tcp ? TC_TEST_PORT_ATTEMPTS : 1) && up != 0;
         attempt++) {
        if (r->tcp && (r->port = pick_free_port()) < 0)
            continue;
        up = launch(r);
    }
    if (up != 0) {
        print_log(r);
        destroy(r);
        cr_assert_fail("tc_test_redis_start: redis-server did not answer PING");
    }
    build_url(r);
    track(r, 1);
    return r;
}

const char *tc_test_redis_url(const tc_test_redis_t *r) {
    return r->url;
}

redisContext *tc_test_redis_connect(const tc_test_redis_t *r) {
    return connect_once(r, 2000);
}

static redisReply *vcmd(const tc_test_redis_t *r, const char *fmt, va_list ap) {
    redisContext *c = tc_test_redis_connect(r);
    cr_assert_not_null(c, "tc_test_redis_cmd: no connection to %s for '%s'", r->url, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    char why[160];
    snprintf(why, sizeof why, "%s", rep ? (rep->str ? rep->str : "") : c->errstr);
    redisFree(c);
    cr_assert(rep && rep->type != REDIS_REPLY_ERROR, "'%s' failed: %s", fmt,
              rep ? why : (why[0] ? why : "no reply"));
    return rep;
}

redisReply *tc_test_redis_cmd(const tc_test_redis_t *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = vcmd(r, fmt, ap);
    va_end(ap);
    return rep;
}

void tc_test_redis_do(const tc_test_redis_t *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = vcmd(r, fmt, ap);
    va_end(ap);
    freeReplyObject(rep);
}

pid_t tc_test_redis_pid(const tc_test_redis_t *r) {
    return r->pid;
}

int tc_test_redis_port(const tc_test_redis_t *r) {
    return r->tcp ? r->port : 0;
}

const char *tc_test_redis_socket_path(const tc_test_redis_t *r) {
    return r->sock;
}

const char *tc_test_redis_dir(const tc_test_redis_t *r) {
    return r->dir;
}

void tc_test_redis_kill(tc_test_redis_t *r) {
    reap_kill(r);
}

void tc_test_redis_restart(tc_test_redis_t *r) {
    reap_kill(r);
    if (launch(r) != 0) {
        print_log(r);
        cr_assert_fail("tc_test_redis_restart: redis-server did not come back on %s",
                       r->tcp ? "its port" : r->sock);
    }
}

void tc_test_redis_pause(tc_test_redis_t *r) {
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGSTOP);
    /* Wait until it really is stopped, so the caller's next command cannot sneak in. */
    int st;
    while (waitpid(r->pid, &st, WUNTRACED) == -1 && errno == EINTR) {
    }
}

void tc_test_redis_resume(tc_test_redis_t *r) {
    if (r->pid > 0)
        kill(r->pid, SIGCONT);
}

void tc_test_redis_stop(tc_test_redis_t *r) {
    if (!r)
        return;
    track(r, 0);
    if (r->pid > 0) {
        kill(r->pid, SIGCONT);
        kill(r->pid, SIGTERM);
        for (int waited = 0; waited < 2000; waited += TC_TEST_READY_POLL_MS) {
            if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
                r->pid = 0;
                break;
            }
            sleep_ms(TC_TEST_READY_POLL_MS);
        }
        reap_kill(r);
    }
    destroy(r);
}
