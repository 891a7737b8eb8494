/*
 * metrics_server.c - a small HTTP server with a tiercache inside, serving the cache's
 * metrics to Prometheus and a key-value API to make them move.
 *
 *   GET    /metrics             every counter, gauge and latency histogram (text 0.0.4)
 *   GET    /get?key=K           the value (200), or 404
 *   PUT    /set?key=K&value=V   store V under K with the default TTL
 *   DELETE /del?key=K           delete K
 *
 * Keys and values are percent-decoded (%20 or + for a space), so any bytes can travel.
 * Run it, then point Prometheus (or curl) at it:
 *
 *   ./metrics_server [port [address]]                  default 9464 on 127.0.0.1
 *   TIERCACHE_REDIS_URL=redis://127.0.0.1:6379/0 METRICS_LABELS='service="demo"' \
 *       ./metrics_server 0                             0: any free port
 *   curl -X PUT 'localhost:9464/set?key=a&value=1'; curl localhost:9464/metrics
 *
 * The port may also come from METRICS_PORT, and METRICS_LABELS adds labels to every
 * sample. Cache settings come from the TIERCACHE_* variables (tc_config_from_env); without
 * TIERCACHE_REDIS_URL the cache is L1-only. Once listening it prints one line,
 * "listening on ADDRESS:PORT", so a script can find a port it let the kernel pick.
 *
 * How it works: WORKERS threads share the listening socket; each waits in poll() for a
 * connection or for the stop pipe, accepts, serves one request and closes (HTTP/1.0
 * style, Connection: close). No event loop, and nothing shared but the cache, which is
 * made for concurrent calls. Each worker keeps its own /metrics buffer and grows it on
 * TC_ENOSPC, so once it has the right size a scrape allocates nothing.
 *
 * Shutdown without signal handlers: main blocks SIGINT and SIGTERM before any thread
 * exists (tiercache's own included), so every thread inherits the mask and the signals
 * can only be taken by main's sigwait(). Main then closes the stop pipe's write end: the
 * pipe reads as end-of-file in every worker's poll() at once, they finish the request in
 * hand and return, and main joins them and closes the cache. Request bodies are not read.
 */
#include <tiercache.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define WORKERS       4
#define HEAD_MAX      8192   /* request line and headers */
#define VALUE_MAX     4096   /* decoded key or value */
#define CLIENT_IO_SEC 5      /* a silent client frees its worker after this long */
#define DEFAULT_PORT  "9464" /* the port the OpenTelemetry Prometheus exporter uses */

typedef struct server {
    tc_cache_t *cache;
    const char *labels; /* METRICS_LABELS, or NULL */
    int listen_fd;
    int stop_fd; /* read end of the stop pipe: readable (EOF) once shutdown begins */
} server_t;

typedef struct worker {
    server_t *srv;
    pthread_t thread;
    char *metrics; /* this worker's /metrics buffer, grown on TC_ENOSPC */
    size_t metrics_cap;
} worker_t;

typedef struct request {
    char method[8];
    char path[64];
    char query[HEAD_MAX]; /* after '?', still percent-encoded; "" when none */
} request_t;

/* ---- responses ---- */

static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL); /* a vanished client is not fatal */
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void reply(int fd, const char *status, const char *type, const void *body, size_t n) {
    char head[256];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, n);
    if (send_all(fd, head, (size_t)h) == 0 && n > 0)
        send_all(fd, body, n);
}

static void reply_text(int fd, const char *status, const char *text) {
    reply(fd, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* A tiercache error as an HTTP answer: the caller's mistakes are 4xx, Redis's are 503. */
static void reply_error(int fd, int rc) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s\n", tc_err_name(rc), tc_strerror(rc));
    switch (rc) {
    case TC_ENOTFOUND:
        reply_text(fd, "404 Not Found", msg);
        break;
    case TC_EINVAL:
    case TC_EKEYLEN:
    case TC_ETOOBIG:
        reply_text(fd, "400 Bad Request", msg);
        break;
    default:
        reply_text(fd, "503 Service Unavailable", msg);
    }
}

/* ---- requests ---- */

/* Read the request head, up to its blank line. 0, or -1 on EOF, timeout or overflow. */
static int read_head(int fd, char *buf, size_t cap) {
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
            return 0;
    }
    return -1;
}

/* "METHOD /path?query HTTP/1.x" into req. 0, or -1 when it is not that. */
static int parse_request_line(const char *head, request_t *req) {
    size_t m = strcspn(head, " ");
    if (m == 0 || m >= sizeof req->method || head[m] != ' ' || head[m + 1] != '/')
        return -1;
    memcpy(req->method, head, m);
    req->method[m] = '\0';
    const char *target = head + m + 1;
    size_t t = strcspn(target, " \r\n");  /* the target's length */
    size_t p = strcspn(target, "? \r\n"); /* its path's */
    if (strncmp(target + t, " HTTP/1.", 8) != 0 || p >= sizeof req->path)
        return -1;
    memcpy(req->path, target, p);
    req->path[p] = '\0';
    size_t q = p < t ? t - p - 1 : 0; /* after the '?' (head is shorter than query) */
    memcpy(req->query, target + t - q, q);
    req->query[q] = '\0';
    return 0;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode src[0..n) into out (cap bytes). Its length, or -1 if bad or too long. */
static long url_decode(const char *src, size_t n, char *out, size_t cap) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < n ? hex_value(src[i + 1]) : -1;
            int lo = i + 2 < n ? hex_value(src[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (len == cap)
            return -1;
        out[len++] = (char)c;
    }
    return (long)len;
}

/* The decoded value of `name` in a query (a=1&b=2). Its length, or -1 when absent. */
static long query_param(const char *query, const char *name, char *out, size_t cap) {
    size_t nlen = strlen(name);
    for (const char *p = query; *p;) {
        size_t plen = strcspn(p, "&");
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=')
            return url_decode(p + nlen + 1, plen - nlen - 1, out, cap);
        p += plen + (p[plen] == '&');
    }
    return -1;
}

/* ---- the endpoints ---- */

static void serve_metrics(worker_t *w, int fd) {
    size_t len = 0;
    int rc = TC_ENOSPC;
    for (int tries = 0; rc == TC_ENOSPC && tries < 4; tries++) {
        rc = tc_stats_prometheus(w->srv->cache, w->srv->labels, w->metrics, w->metrics_cap,
                                 &len);
        if (rc != TC_ENOSPC)
            break;
        /* len is the size needed now; a counter may gain a digit before the retry */
        size_t cap = len + len / 8;
        char *grown = realloc(w->metrics, cap);
        if (!grown) {
            rc = TC_ENOMEM;
            break;
        }
        w->metrics = grown;
        w->metrics_cap = cap;
    }
    if (rc != TC_OK) {
        reply_error(fd, rc);
        return;
    }
    reply(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", w->metrics, len);
}

static void serve_get(server_t *srv, int fd, const char *key, size_t klen) {
    tc_ref_t *ref;
    int rc = tc_get(srv->cache, key, klen, &ref);
    if (rc != TC_OK) {
        reply_error(fd, rc);
        return;
    }
    reply(fd, "200 OK", "application/octet-stream", tc_ref_data(ref), tc_ref_size(ref));
    tc_ref_release(ref);
}

static void serve_set(server_t *srv, int fd, const request_t *req, const char *key,
                      size_t klen) {
    char value[VALUE_MAX];
    long vlen = query_param(req->query, "value", value, sizeof value);
    if (vlen < 0) {
        reply_text(fd, "400 Bad Request", "missing or malformed value=\n");
        return;
    }
    int rc = tc_set(srv->cache, key, klen, value, (size_t)vlen, 0);
    if (rc == TC_OK)
        reply_text(fd, "200 OK", "stored\n");
    else
        reply_error(fd, rc);
}

static void serve_del(server_t *srv, int fd, const char *key, size_t klen) {
    int rc = tc_del(srv->cache, key, klen);
    if (rc == TC_OK)
        reply_text(fd, "200 OK", "deleted\n");
    else
        reply_error(fd, rc);
}

/* The key-value endpoints: one method each, and every one needs key=. */
static void serve_kv(worker_t *w, int fd, const request_t *req) {
    static const struct {
        const char *path, *method;
    } routes[] = {{"/get", "GET"}, {"/set", "PUT"}, {"/del", "DELETE"}};
    size_t r = 0;
    while (r < 3 && strcmp(req->path, routes[r].path) != 0)
        r++;
    if (r == 3) {
        reply_text(fd, "404 Not Found", "try /metrics, /get, /set or /del\n");
        return;
    }
    if (strcmp(req->method, routes[r].method) != 0) {
        reply_text(fd, "405 Method Not Allowed", "wrong method for this path\n");
        return;
    }
    char key[VALUE_MAX];
    long klen = query_param(req->query, "key", key, sizeof key);
    if (klen < 0) {
        reply_text(fd, "400 Bad Request", "missing or malformed key=\n");
        return;
    }
    if (r == 0)
        serve_get(w->srv, fd, key, (size_t)klen);
    else if (r == 1)
        serve_set(w->srv, fd, req, key, (size_t)klen);
    else
        serve_del(w->srv, fd, key, (size_t)klen);
}

static void serve(worker_t *w, int fd) {
    char head[HEAD_MAX];
    request_t req;
    if (read_head(fd, head, sizeof head) != 0 || parse_request_line(head, &req) != 0) {
        reply_text(fd, "400 Bad Request", "not an HTTP/1.x request\n");
        return;
    }
    if (strcmp(req.path, "/metrics") == 0 && strcmp(req.method, "GET") == 0)
        serve_metrics(w, fd);
    else
        serve_kv(w, fd, &req);
}

/* ---- threads ---- */

/* Wait for a connection or for shutdown. The accepted socket, or -1 to stop. */
static int next_client(server_t *srv) {
    for (;;) {
        struct pollfd pfd[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                                {.fd = srv->stop_fd, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            return -1;
        if (pfd[1].revents)
            return -1;
        if (!(pfd[0].revents & POLLIN))
            continue;
        /* Every waiting worker wakes for one connection; the listening socket is
         * non-blocking, so the ones that lose the race get EAGAIN and wait again. */
        int fd = accept(srv->listen_fd, NULL, NULL);
        if (fd >= 0 && fcntl(fd, F_SETFL, 0) == 0) /* BSDs pass O_NONBLOCK on */
            return fd;
        if (fd >= 0)
            close(fd);
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    struct timeval io = {.tv_sec = CLIENT_IO_SEC};
    for (int fd; (fd = next_client(w->srv)) >= 0;) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &io, sizeof io);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &io, sizeof io);
        serve(w, fd);
        close(fd);
    }
    return NULL;
}

/* ---- setup ---- */

/* A non-blocking listening socket on address:port; its real port in *bound. -1 on error
 * (printed). */
static int listen_on(const char *address, const char *port_text, unsigned *bound) {
    char *end;
    unsigned long port = strtoul(port_text, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*port_text == '\0' || *end != '\0' || port > 65535 ||
        inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad address or port: %s:%s\n", address, port_text);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    socklen_t len = sizeof sa;
    if (fd < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        fprintf(stderr, "listen on %s:%s: %s\n", address, port_text, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

static tc_cache_t *open_cache(void) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.key_prefix = "metrics_server:";
    cfg.inval_channel = "metrics_server:inval";
    tc_error_t err;
    tc_cache_t *cache;
    if (tc_config_from_env(&cfg, NULL, &err) != TC_OK) {
        fprintf(stderr, "configuration: %s\n", err.msg);
        return NULL;
    }
    if (tc_open(&cfg, &cache, &err) != TC_OK) {
        fprintf(stderr, "tc_open: %s\n", err.msg);
        return NULL;
    }
    return cache;
}

/* A bad METRICS_LABELS would fail every scrape: refuse it at startup instead. */
static int labels_ok(const server_t *srv) {
    size_t need;
    if (tc_stats_prometheus(srv->cache, srv->labels, NULL, 0, &need) != TC_EINVAL)
        return 1;
    fprintf(stderr, "METRICS_LABELS is not name=\"value\",...: %s\n", srv->labels);
    return 0;
}

/* Start the workers, wait for SIGINT or SIGTERM, stop them. */
static int run(server_t *srv, const sigset_t *stop_signals, int stop_write_fd) {
    worker_t workers[WORKERS] = {0};
    int started = 0;
    for (; started < WORKERS; started++) {
        workers[started].srv = srv;
        if (pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]))
            break;
    }
    int sig = 0;
    if (started == WORKERS)
        sigwait(stop_signals, &sig);
    fprintf(stderr, "metrics_server: %s, stopping\n",
            sig ? strsignal(sig) : "cannot start threads");
    close(stop_write_fd); /* every worker's poll() sees the pipe's end */
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        free(workers[i].metrics);
    }
    return started == WORKERS ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *port = argc > 1 ? argv[1] : getenv("METRICS_PORT");
    const char *address = argc > 2 ? argv[2] : "127.0.0.1";
    server_t srv = {.labels = getenv("METRICS_LABELS")};

    /* Before any thread exists, so all of them (tiercache's too) inherit the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    int stop_pipe[2];
    unsigned bound;
    if (pipe(stop_pipe) != 0)
        return 1;
    srv.stop_fd = stop_pipe[0];
    srv.listen_fd = listen_on(address, port ? port : DEFAULT_PORT, &bound);
    if (srv.listen_fd < 0)
        return 1;
    srv.cache = open_cache();
    if (!srv.cache || !labels_ok(&srv))
        return 1;
    printf("listening on %s:%u\n", address, bound);
    fflush(stdout);

    int rc = run(&srv, &stop_signals, stop_pipe[1]);
    close(srv.listen_fd);
    close(stop_pipe[0]);
    tc_close(srv.cache);
    return rc;
}
