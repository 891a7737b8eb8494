/*
 * http_sqlite.c - a small HTTP API in front of a real SQLite database, with tiercache in
 * between: the cache-aside pattern end to end, as a service would run it.
 *
 *   GET /users/<id>   the user as JSON, {"id":42,"name":"Ada"} (200), or 404
 *   PUT /users/<id>   body: the user's new name (plain text, a trailing newline dropped);
 *                     UPDATE or INSERT the row, then tc_del its cached copy (200, the row)
 *   GET /metrics      the cache's counters and latency histograms (Prometheus text 0.0.4)
 *
 * Run it (the database file, and its table, are created when missing):
 *
 *   ./http_sqlite users.db [port [address]]          default 8080 on 127.0.0.1; 0: any
 *   TIERCACHE_REDIS_URL=redis://127.0.0.1:6379 ./http_sqlite users.db 8080
 *   curl -X PUT --data 'Ada' localhost:8080/users/42; curl localhost:8080/users/42
 *
 * Once listening it prints "listening on ADDRESS:PORT". Cache settings come from the
 * TIERCACHE_* variables (without TIERCACHE_REDIS_URL the cache is L1-only). Start several
 * servers on one Redis and one database file, as the replicas of a service: a PUT on any
 * of them evicts the user from every server's L1 before the next read there.
 *
 * The pattern:
 *   read   tc_fetch("user:<id>"): L1, else Redis, else the loader (one SELECT), whose row
 *          is then kept in both tiers. Concurrent misses of one user run one SELECT
 *          (single-flight in the process, and across processes through the Redis lock).
 *          "No such user" is cached too (negative_ttl_ms, 10 s unless the environment
 *          says otherwise), so a flood of lookups for a missing id costs one query.
 *   write  UPDATE/INSERT in SQLite first, then tc_del("user:<id>"). Deleting the cached
 *          copy instead of writing the new one into the cache keeps SQLite the only
 *          source of truth, and tc_del also voids a load that read the old row before the
 *          update (its lease: the stale row is returned to that one caller, never stored).
 *
 * SQLite connections, one per thread. A loader runs on the thread that calls tc_fetch,
 * but with stale-while-revalidate, early refresh or load timeouts configured
 * (TIERCACHE_STALE_TTL, TIERCACHE_EARLY_REFRESH_BETA, TIERCACHE_LOAD_SOFT_TIMEOUT...)
 * tiercache also calls it later from its own refresh threads, so the loader cannot borrow
 * the connection of the request that started the load. Two designs are correct: one
 * shared handle opened with SQLITE_OPEN_FULLMUTEX (SQLite serializes every call on it:
 * simple, but every query in the process queues behind one mutex), or one handle per
 * thread. This example takes the second: each thread, a worker or one of tiercache's,
 * opens its own connection on first use (a pthread key) with SQLITE_OPEN_NOMUTEX (no lock
 * needed: no other thread ever sees it) and closes it when the thread exits. The database
 * is in WAL mode, so readers never wait for a writer, and a busy timeout absorbs writers
 * meeting each other (or another process).
 *
 * Threads and shutdown are those of metrics_server.c: a fixed pool of workers shares the
 * listening socket, each serving one request per connection; SIGINT or SIGTERM, taken by
 * main's sigwait(), closes a stop pipe that every worker polls.
 */
#include <tiercache.h>

#include <sqlite3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define WORKERS       8
#define HEAD_MAX      8192 /* request line and headers */
#define NAME_MAX_LEN  1024 /* longest name a PUT may store */
#define JSON_MAX      (NAME_MAX_LEN * 6 + 64)
#define CLIENT_IO_SEC 5
#define DEFAULT_PORT  "8080"
#define BUSY_MS       5000 /* how long a connection waits for another writer */

/* ---- the database: one connection per thread ---- */

typedef struct app {
    const char *db_path;
    pthread_key_t conn_key; /* this thread's conn_t */
    tc_cache_t *cache;
} app_t;

typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *select; /* the loader's query */
    sqlite3_stmt *upsert; /* a PUT's write */
} conn_t;

static const char SCHEMA[] = "PRAGMA journal_mode=WAL;"
                             "CREATE TABLE IF NOT EXISTS users ("
                             "  id INTEGER PRIMARY KEY,"
                             "  name TEXT NOT NULL)";
static const char SELECT_SQL[] = "SELECT name FROM users WHERE id = ?1";
static const char UPSERT_SQL[] = "INSERT INTO users (id, name) VALUES (?1, ?2) "
                                 "ON CONFLICT (id) DO UPDATE SET name = excluded.name";

/* The pthread key's destructor: runs on each thread that opened a connection, as it ends
 * (workers when they return, tiercache's refresh threads inside tc_close). */
static void conn_close(void *p) {
    conn_t *c = p;
    sqlite3_finalize(c->select);
    sqlite3_finalize(c->upsert);
    sqlite3_close(c->db);
    free(c);
}

/* This thread's connection, opened on first use. NULL on failure (printed). */
static conn_t *conn_get(app_t *app) {
    conn_t *c = pthread_getspecific(app->conn_key);
    if (c)
        return c;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(app->db_path, &c->db, flags, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(c->db, BUSY_MS) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, SELECT_SQL, -1, &c->select, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, UPSERT_SQL, -1, &c->upsert, NULL) != SQLITE_OK ||
        pthread_setspecific(app->conn_key, c) != 0) {
        fprintf(stderr, "http_sqlite: open %s: %s\n", app->db_path,
                c->db ? sqlite3_errmsg(c->db) : "out of memory");
        conn_close(c);
        return NULL;
    }
    return c;
}

/* Create the file and its table when missing. 0, or -1 (printed). */
static int db_init(const char *path) {
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, BUSY_MS);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, SCHEMA, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "http_sqlite: %s: %s\n", path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* ---- users as JSON ---- */

/* {"id":<id>,"name":"<name, escaped>"} into out (JSON_MAX bytes). Its length. */
static size_t user_json(int64_t id, const unsigned char *name, size_t len, char *out) {
    size_t n = (size_t)snprintf(out, JSON_MAX, "{\"id\":%" PRId64 ",\"name\":\"", id);
    for (size_t i = 0; i < len && n + 8 < JSON_MAX; i++) {
        unsigned char c = name[i];
        if (c == '"' || c == '\\')
            n += (size_t)snprintf(out + n, JSON_MAX - n, "\\%c", c);
        else if (c < 0x20)
            n += (size_t)snprintf(out + n, JSON_MAX - n, "\\u%04x", c);
        else
            out[n++] = (char)c;
    }
    n += (size_t)snprintf(out + n, JSON_MAX - n, "\"}");
    return n;
}

/* The cache key of a user: "user:<id>". Its length. */
static size_t user_key(int64_t id, char *out, size_t cap) {
    return (size_t)snprintf(out, cap, "user:%" PRId64, id);
}

/* ---- the loader ---- */

/* tc_fetch's loader: SELECT the user, on whatever thread tiercache runs it. arg is the
 * app (it lives until after tc_close, as refreshes require). */
static int load_user(void *arg, const void *key, size_t klen, tc_load_t *load) {
    app_t *app = arg;
    char text[32];
    if (klen <= 5 || klen >= sizeof text)
        return TC_ENOTFOUND;
    memcpy(text, key, klen);
    text[klen] = '\0';
    int64_t id = strtoll(text + 5, NULL, 10);
    conn_t *c = conn_get(app);
    if (!c)
        return TC_ELOADER;
    sqlite3_bind_int64(c->select, 1, id);
    int rc = sqlite3_step(c->select), out;
    if (rc == SQLITE_ROW) {
        char json[JSON_MAX];
        size_t n = user_json(id, sqlite3_column_text(c->select, 0),
                             (size_t)sqlite3_column_bytes(c->select, 0), json);
        out = tc_load_set_value(load, json, n);
    } else if (rc == SQLITE_DONE) {
        out = TC_ENOTFOUND;
    } else {
        fprintf(stderr, "http_sqlite: SELECT user %" PRId64 ": %s\n", id,
                sqlite3_errmsg(c->db));
        out = TC_ELOADER;
    }
    sqlite3_reset(c->select); /* ends the read transaction: a writer's WAL can checkpoint */
    return out;
}

/* ---- HTTP ---- */

typedef struct request {
    char method[8];
    char path[64];
    const char *body; /* into the head buffer: what arrived with the head */
    size_t body_have;
    long content_length; /* -1 when absent */
} request_t;

static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void reply_with(int fd, const char *status, const char *type, const char *extra_header,
                       const void *body, size_t n) {
    char head[512];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, type, n, extra_header ? extra_header : "");
    if (send_all(fd, head, (size_t)h) == 0 && n > 0)
        send_all(fd, body, n);
}

static void reply(int fd, const char *status, const char *type, const void *body, size_t n) {
    reply_with(fd, status, type, NULL, body, n);
}

static void reply_text(int fd, const char *status, const char *text) {
    reply(fd, status, "text/plain; charset=utf-8", text, strlen(text));
}

static void reply_tc_error(int fd, int rc) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s\n", tc_err_name(rc), tc_strerror(rc));
    reply_text(fd, "503 Service Unavailable", msg);
}

/* Read the head (up to its blank line) into buf; *used: the bytes read, which may include
 * the start of the body. The head's length, or -1 on EOF, timeout or overflow. */
static long read_head(int fd, char *buf, size_t cap, size_t *used) {
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            *used = len;
            return end + 4 - buf;
        }
    }
    return -1;
}

/* The request line, Content-Length and what came of the body. 0, or -1 if malformed. */
static int parse_request(char *buf, size_t head_len, size_t used, request_t *req) {
    size_t m = strcspn(buf, " ");
    if (m == 0 || m >= sizeof req->method || buf[m] != ' ' || buf[m + 1] != '/')
        return -1;
    memcpy(req->method, buf, m);
    req->method[m] = '\0';
    const char *target = buf + m + 1;
    size_t t = strcspn(target, " \r\n");
    if (t >= sizeof req->path || strncmp(target + t, " HTTP/1.", 8) != 0)
        return -1;
    memcpy(req->path, target, t);
    req->path[t] = '\0';
    req->content_length = -1;
    for (const char *line = strstr(buf, "\r\n"); line && line < buf + head_len;
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0) {
            char *end;
            long v = strtol(line + 17, &end, 10);
            if (v < 0 || (*end != '\r' && *end != ' '))
                return -1;
            req->content_length = v;
        }
    }
    req->body = buf + head_len;
    req->body_have = used - head_len;
    return 0;
}

/* The user id of "/users/<id>": decimal, 1..18 digits. 0, or -1 when it is not that. */
static int parse_user_path(const char *path, int64_t *id) {
    if (strncmp(path, "/users/", 7) != 0)
        return -1;
    const char *digits = path + 7;
    size_t n = strspn(digits, "0123456789");
    if (n == 0 || n > 18 || digits[n] != '\0')
        return -1;
    *id = strtoll(digits, NULL, 10);
    return 0;
}

/* ---- the endpoints ---- */

typedef struct worker {
    app_t *app;
    pthread_t thread;
    int listen_fd, stop_fd;
    char *metrics; /* this worker's /metrics buffer, grown on TC_ENOSPC */
    size_t metrics_cap;
} worker_t;

static void get_user(worker_t *w, int fd, int64_t id) {
    char key[32];
    size_t klen = user_key(id, key, sizeof key);
    tc_ref_t *ref;
    int rc = tc_fetch(w->app->cache, key, klen, load_user, w->app, &ref);
    if (rc == TC_OK) {
        reply(fd, "200 OK", "application/json", tc_ref_data(ref), tc_ref_size(ref));
        tc_ref_release(ref);
    } else if (rc == TC_ENOTFOUND) {
        reply_text(fd, "404 Not Found", "no such user\n");
    } else {
        reply_tc_error(fd, rc);
    }
}

/* The name from the body: what came with the head, then the rest. Its length, or -1. */
static long read_name(int fd, const request_t *req, char *name) {
    size_t want = (size_t)req->content_length;
    size_t have = req->body_have < want ? req->body_have : want;
    memcpy(name, req->body, have);
    while (have < want) {
        ssize_t n = recv(fd, name + have, want - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    while (have > 0 && (name[have - 1] == '\n' || name[have - 1] == '\r'))
        have--;
    return (long)have;
}

static void put_user(worker_t *w, int fd, const request_t *req, int64_t id) {
    if (req->content_length < 0) {
        reply_text(fd, "411 Length Required", "a PUT needs Content-Length\n");
        return;
    }
    if (req->content_length > NAME_MAX_LEN) {
        reply_text(fd, "413 Content Too Large", "names are at most 1024 bytes\n");
        return;
    }
    char name[NAME_MAX_LEN];
    long len = read_name(fd, req, name);
    conn_t *c = conn_get(w->app);
    if (len < 0 || !c) {
        reply_text(fd, len < 0 ? "400 Bad Request" : "500 Internal Server Error",
                   len < 0 ? "body shorter than Content-Length\n" : "no database\n");
        return;
    }
    /* 1. the source of truth */
    sqlite3_bind_int64(c->upsert, 1, id);
    sqlite3_bind_text(c->upsert, 2, name, (int)len, SQLITE_TRANSIENT);
    int rc = sqlite3_step(c->upsert);
    sqlite3_reset(c->upsert);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "http_sqlite: write user %" PRId64 ": %s\n", id, sqlite3_errmsg(c->db));
        reply_text(fd, "500 Internal Server Error", "database write failed\n");
        return;
    }
    /* 2. then the cache: out of Redis and every process's L1. Should this fail (Redis
     * down), this process's copy is gone anyway and the others' expire within
     * degraded_ttl_ms or their TTL; the write itself is committed, so the client gets its
     * 200, and the header says what happened to the cache. */
    char key[32], header[128] = "";
    size_t klen = user_key(id, key, sizeof key);
    int del = tc_del(w->app->cache, key, klen);
    if (del != TC_OK) {
        fprintf(stderr, "http_sqlite: tc_del %s: %s\n", key, tc_strerror(del));
        snprintf(header, sizeof header, "Cache-Invalidation: %s\r\n", tc_err_name(del));
    }
    char json[JSON_MAX];
    size_t n = user_json(id, (const unsigned char *)name, (size_t)len, json);
    reply_with(fd, "200 OK", "application/json", header, json, n);
}

static void get_metrics(worker_t *w, int fd) {
    size_t len = 0;
    int rc = TC_ENOSPC;
    for (int tries = 0; rc == TC_ENOSPC && tries < 4; tries++) {
        rc = tc_stats_prometheus(w->app->cache, NULL, w->metrics, w->metrics_cap, &len);
        if (rc != TC_ENOSPC)
            break;
        size_t cap = len + len / 8; /* a counter may gain a digit before the retry */
        char *grown = realloc(w->metrics, cap);
        if (!grown) {
            rc = TC_ENOMEM;
            break;
        }
        w->metrics = grown;
        w->metrics_cap = cap;
    }
    if (rc != TC_OK)
        reply_tc_error(fd, rc);
    else
        reply(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", w->metrics, len);
}

static void serve(worker_t *w, int fd) {
    char buf[HEAD_MAX];
    size_t used = 0;
    long head_len = read_head(fd, buf, sizeof buf, &used);
    request_t req;
    if (head_len < 0 || parse_request(buf, (size_t)head_len, used, &req) != 0) {
        reply_text(fd, "400 Bad Request", "not an HTTP/1.x request\n");
        return;
    }
    int64_t id;
    int is_get = strcmp(req.method, "GET") == 0, is_put = strcmp(req.method, "PUT") == 0;
    if (strcmp(req.path, "/metrics") == 0) {
        if (is_get)
            get_metrics(w, fd);
        else
            reply_text(fd, "405 Method Not Allowed", "GET /metrics\n");
    } else if (parse_user_path(req.path, &id) == 0) {
        if (is_get)
            get_user(w, fd, id);
        else if (is_put)
            put_user(w, fd, &req, id);
        else
            reply_text(fd, "405 Method Not Allowed", "GET or PUT /users/<id>\n");
    } else {
        reply_text(fd, "404 Not Found", "try GET /users/<id>, PUT /users/<id>, GET /metrics\n");
    }
}

/* ---- threads ---- */

/* Wait for a connection or for shutdown. The accepted socket, or -1 to stop. */
static int next_client(const worker_t *w) {
    for (;;) {
        struct pollfd pfd[2] = {{.fd = w->listen_fd, .events = POLLIN},
                                {.fd = w->stop_fd, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            return -1;
        if (pfd[1].revents)
            return -1;
        if (!(pfd[0].revents & POLLIN))
            continue;
        /* the listening socket is non-blocking: workers that lose the race wait again */
        int fd = accept(w->listen_fd, NULL, NULL);
        if (fd >= 0 && fcntl(fd, F_SETFL, 0) == 0)
            return fd;
        if (fd >= 0)
            close(fd);
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    struct timeval io = {.tv_sec = CLIENT_IO_SEC};
    for (int fd; (fd = next_client(w)) >= 0;) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &io, sizeof io);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &io, sizeof io);
        serve(w, fd);
        close(fd);
    }
    return NULL; /* the key's destructor closes this thread's connection */
}

/* ---- setup ---- */

static int listen_on(const char *address, const char *port_text, unsigned *bound) {
    char *end;
    unsigned long port = strtoul(port_text, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*port_text == '\0' || *end != '\0' || port > 65535 ||
        inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad address or port: %s:%s\n", address, port_text);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
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
    cfg.negative_ttl_ms = 10000; /* a missing user costs one query per 10 s, not one per GET */
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

/* Start the workers, wait for SIGINT or SIGTERM, stop them. 0, or 1 if they did not start. */
static int run(app_t *app, int listen_fd, const sigset_t *stop_signals) {
    int stop_pipe[2];
    if (pipe(stop_pipe) != 0)
        return 1;
    worker_t workers[WORKERS] = {0};
    int started = 0;
    for (; started < WORKERS; started++) {
        workers[started] =
            (worker_t){.app = app, .listen_fd = listen_fd, .stop_fd = stop_pipe[0]};
        if (pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]))
            break;
    }
    int sig = 0;
    if (started == WORKERS)
        sigwait(stop_signals, &sig);
    fprintf(stderr, "http_sqlite: %s, stopping\n",
            sig ? strsignal(sig) : "cannot start threads");
    close(stop_pipe[1]); /* every worker's poll() sees the pipe's end */
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        free(workers[i].metrics);
    }
    close(stop_pipe[0]);
    return started == WORKERS ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s DATABASE_FILE [PORT [ADDRESS]]\n", argv[0]);
        return 2;
    }
    app_t app = {.db_path = argv[1]};
    const char *port = argc > 2 ? argv[2] : DEFAULT_PORT;
    const char *address = argc > 3 ? argv[3] : "127.0.0.1";

    /* Before any thread exists, so all of them (tiercache's too) inherit the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    unsigned bound;
    if (db_init(app.db_path) != 0 || pthread_key_create(&app.conn_key, conn_close) != 0)
        return 1;
    int listen_fd = listen_on(address, port, &bound);
    if (listen_fd < 0)
        return 1;
    app.cache = open_cache();
    if (!app.cache)
        return 1;
    printf("listening on %s:%u\n", address, bound);
    fflush(stdout);

    int rc = run(&app, listen_fd, &stop_signals);
    close(listen_fd);
    tc_close(app.cache); /* joins the refresh threads: their connections close too */
    pthread_key_delete(app.conn_key);
    return rc;
}
