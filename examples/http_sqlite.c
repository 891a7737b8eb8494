/*
 * http_sqlite.c - a small HTTP API in front of a real SQLite database, with tiercache in
 * between: cache-aside, write-through and write-behind end to end, as a service would run
 * them (docs/write-strategies.md says when to choose which).
 *
 *   GET /users/<id>      the user as JSON, {"id":42,"name":"Ada"} (200), or 404
 *   PUT /users/<id>      body: the user's new name (plain text, a trailing newline
 *                        dropped); UPDATE or INSERT the row, then tc_del its cached copy
 *                        (cache-aside; 200, the row)
 *   PUT /users/<id>?via=through   the same write through tc_set_through: the writer
 *                        below writes the row, then the cache holds the new name
 *   PUT /users/<id>?via=behind    tc_set_behind: the cache holds the new name at once, the
 *                        row is written later by the flusher, in batches (202)
 *   DELETE /users/<id>[?via=through|behind]   delete the row: cache-aside (SQL, then
 *                        tc_del), or through the writer
 *   POST /flush          wait (up to 5 s) until every queued write-behind write reached
 *                        SQLite: tc_flush (200, or 504)
 *   GET /metrics         the cache's counters and latency histograms (Prometheus text)
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
 *   through / behind   the writer (write_users) is tiercache's tc_config_t.writer: one
 *          transaction per call, each row written only when the write's version is newer
 *          than the row's (write-behind delivers at least once, and a replayed or late
 *          write must not undo a newer one). What the cache holds for a user is its name;
 *          GET wraps it in JSON. Write-behind queues in Redis: without
 *          TIERCACHE_REDIS_URL, ?via=behind answers 503 (TC_EINVAL).
 *
 * SQLite connections, one per thread. A loader runs on the thread that calls tc_fetch,
 * but with stale-while-revalidate, early refresh or load timeouts configured
 * (TIERCACHE_STALE_TTL, TIERCACHE_EARLY_REFRESH_BETA, TIERCACHE_LOAD_SOFT_TIMEOUT...)
 * tiercache also calls it later from its own refresh threads, so the loader cannot borrow
 * the connection of the request that started the load; and the writer runs on the
 * calling thread for write-through but on tiercache's flusher thread for write-behind. Two
 * designs are correct: one shared handle opened with SQLITE_OPEN_FULLMUTEX (SQLite serializes
 * every call on it: simple, but every query in the process queues behind one mutex), or one
 * handle per thread. This example takes the second: each thread, a worker or one of
 * tiercache's, opens its own connection on first use (a pthread key) with SQLITE_OPEN_NOMUTEX
 * (no lock needed: no other thread ever sees it) and closes it when the thread exits. The
 * database is in WAL mode, so readers never wait for a writer, and a busy timeout absorbs
 * writers meeting each other (or another process).
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
    sqlite3_stmt *upsert; /* a cache-aside PUT's write */
    sqlite3_stmt *remove; /* a cache-aside DELETE's */
    sqlite3_stmt *write;  /* the writer's set: only a newer version */
    sqlite3_stmt *erase;  /* the writer's delete: only an older row */
} conn_t;

static const char SCHEMA[] = "PRAGMA journal_mode=WAL;"
                             "CREATE TABLE IF NOT EXISTS users ("
                             "  id INTEGER PRIMARY KEY,"
                             "  name TEXT NOT NULL,"
                             "  version INTEGER NOT NULL DEFAULT 0)";
static const char SELECT_SQL[] = "SELECT name FROM users WHERE id = ?1";
static const char UPSERT_SQL[] = "INSERT INTO users (id, name) VALUES (?1, ?2) "
                                 "ON CONFLICT (id) DO UPDATE SET name = excluded.name";
static const char REMOVE_SQL[] = "DELETE FROM users WHERE id = ?1";
/* The writer's: a write lands only over an older version, so a late or replayed one
 * never undoes a newer one (tc_write_t.version). */
static const char WRITE_SQL[] = "INSERT INTO users (id, name, version) VALUES (?1, ?2, ?3) "
                                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                                "version = excluded.version "
                                "WHERE excluded.version > users.version";
static const char ERASE_SQL[] = "DELETE FROM users WHERE id = ?1 AND version < ?2";

/* The pthread key's destructor: runs on each thread that opened a connection, as it ends
 * (workers when they return, tiercache's refresh threads inside tc_close). */
static void conn_close(void *p) {
    conn_t *c = p;
    sqlite3_finalize(c->select);
    sqlite3_finalize(c->upsert);
    sqlite3_finalize(c->remove);
    sqlite3_finalize(c->write);
    sqlite3_finalize(c->erase);
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
        sqlite3_prepare_v2(c->db, REMOVE_SQL, -1, &c->remove, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, WRITE_SQL, -1, &c->write, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, ERASE_SQL, -1, &c->erase, NULL) != SQLITE_OK ||
        pthread_setspecific(app->conn_key, c) != 0) {
        fprintf(stderr, "http_sqlite: open %s: %s\n", app->db_path,
                c->db ? sqlite3_errmsg(c->db) : "out of memory");
        conn_close(c);
        return NULL;
    }
    return c;
}

/* Whether the users table has a version column (tables made before the writer had none). */
static int has_version(sqlite3 *db) {
    sqlite3_stmt *st;
    int found = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA table_info(users)", -1, &st, NULL) != SQLITE_OK)
        return 0;
    while (sqlite3_step(st) == SQLITE_ROW)
        found |= strcmp((const char *)sqlite3_column_text(st, 1), "version") == 0;
    sqlite3_finalize(st);
    return found;
}

/* Create the file and its table when missing; give an older table its version column.
 * 0, or -1 (printed). */
static int db_init(const char *path) {
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, BUSY_MS);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, SCHEMA, NULL, NULL, &msg);
    if (rc == SQLITE_OK && !has_version(db))
        rc = sqlite3_exec(db, "ALTER TABLE users ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
                          NULL, NULL, &msg);
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

/* The id in a cache key "user:<id>". 0, or -1 when the key is not one. */
static int key_user(const void *key, size_t klen, int64_t *id) {
    char text[32];
    if (klen <= 5 || klen >= sizeof text || memcmp(key, "user:", 5) != 0)
        return -1;
    memcpy(text, key, klen);
    text[klen] = '\0';
    char *end;
    *id = strtoll(text + 5, &end, 10);
    return *end == '\0' ? 0 : -1;
}

/* ---- the loader ---- */

/* tc_fetch's loader: SELECT the user, on whatever thread tiercache runs it. arg is the
 * app (it lives until after tc_close, as refreshes require). */
static int load_user(void *arg, const void *key, size_t klen, tc_load_t *load) {
    app_t *app = arg;
    int64_t id;
    if (key_user(key, klen, &id) != 0)
        return TC_ENOTFOUND;
    conn_t *c = conn_get(app);
    if (!c)
        return TC_ELOADER;
    sqlite3_bind_int64(c->select, 1, id);
    int rc = sqlite3_step(c->select), out;
    if (rc == SQLITE_ROW) { /* the name is what the cache holds: GET wraps it in JSON */
        out = tc_load_set_value(load, sqlite3_column_text(c->select, 0),
                                (size_t)sqlite3_column_bytes(c->select, 0));
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

/* ---- the writer ---- */

/* One write of the batch, with the statement it needs. SQLITE_DONE when it ran (written,
 * or refused as older: both are done). */
static int write_one(conn_t *c, const tc_write_t *w) {
    int64_t id;
    if (key_user(w->key, w->klen, &id) != 0)
        return SQLITE_DONE; /* not a user: nothing to write */
    sqlite3_stmt *st = w->kind == TC_WRITE_SET ? c->write : c->erase;
    sqlite3_bind_int64(st, 1, id);
    if (w->kind == TC_WRITE_SET) {
        sqlite3_bind_text(st, 2, w->value, (int)w->vlen, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)w->version);
    } else {
        sqlite3_bind_int64(st, 2, (sqlite3_int64)w->version);
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

/* tc_config_t.writer: write-through calls it with one write on the request's thread,
 * write-behind with a batch on tiercache's flusher thread; one transaction either way.
 * On failure the whole batch is retried (write-behind) or the PUT fails (write-through). */
static int write_users(void *arg, tc_write_t *writes, size_t n) {
    conn_t *c = conn_get(arg);
    if (!c)
        return TC_ELOADER;
    int rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
        rc = write_one(c, &writes[i]) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
    fprintf(stderr, "http_sqlite: writer, %zu write(s): %s\n", n, sqlite3_errmsg(c->db));
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return TC_ELOADER;
}

/* ---- HTTP ---- */

typedef struct request {
    char method[8];
    char path[64];
    char via[16];     /* the ?via= of the target: "", "through" or "behind" */
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
    req->via[0] = '\0';
    char *query = strchr(req->path, '?');
    if (query) { /* only ?via=... is known */
        *query++ = '\0';
        if (strncmp(query, "via=", 4) != 0 || strlen(query + 4) >= sizeof req->via)
            return -1;
        strcpy(req->via, query + 4);
    }
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
        char json[JSON_MAX];
        size_t n = user_json(id, tc_ref_data(ref), tc_ref_size(ref), json);
        tc_ref_release(ref);
        reply(fd, "200 OK", "application/json", json, n);
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

/* A write-through or write-behind PUT or DELETE: the writer (write_users) writes the row. */
static void write_via(worker_t *w, int fd, const request_t *req, int64_t id, const char *name,
                      long len) {
    char key[32], json[JSON_MAX], header[128] = "";
    size_t klen = user_key(id, key, sizeof key), n = 0;
    int through = strcmp(req->via, "through") == 0, rc;
    if (name)
        rc = through ? tc_set_through(w->app->cache, key, klen, name, (size_t)len, NULL)
                     : tc_set_behind(w->app->cache, key, klen, name, (size_t)len, NULL);
    else
        rc = through ? tc_del_through(w->app->cache, key, klen)
                     : tc_del_behind(w->app->cache, key, klen);
    if (rc == TC_EPARTIAL) { /* the row is written; the cache learns it when Redis answers */
        snprintf(header, sizeof header, "Cache-Invalidation: %s\r\n", tc_err_name(rc));
        rc = TC_OK;
    }
    if (rc == TC_ELOADER) {
        reply_text(fd, "500 Internal Server Error", "database write failed\n");
        return;
    }
    if (rc != TC_OK) {
        reply_tc_error(fd, rc);
        return;
    }
    const char *status = through ? "200 OK" : "202 Accepted"; /* behind: the row comes later */
    if (!name) {
        reply_with(fd, status, "text/plain; charset=utf-8", header, "deleted\n", 8);
        return;
    }
    n = user_json(id, (const unsigned char *)name, (size_t)len, json);
    reply_with(fd, status, "application/json", header, json, n);
}

/* Cache-aside's second step: out of Redis and every process's L1. Should this fail (Redis
 * down), this process's copy is gone anyway and the others' expire within degraded_ttl_ms
 * or their TTL; the write itself is committed, so the client gets its answer, and the
 * header says what happened to the cache. */
static void drop_cached(worker_t *w, int64_t id, char *header, size_t cap) {
    char key[32];
    size_t klen = user_key(id, key, sizeof key);
    int del = tc_del(w->app->cache, key, klen);
    if (del != TC_OK) {
        fprintf(stderr, "http_sqlite: tc_del %s: %s\n", key, tc_strerror(del));
        snprintf(header, cap, "Cache-Invalidation: %s\r\n", tc_err_name(del));
    }
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
    if (len < 0) {
        reply_text(fd, "400 Bad Request", "body shorter than Content-Length\n");
        return;
    }
    if (req->via[0]) {
        write_via(w, fd, req, id, name, len);
        return;
    }
    conn_t *c = conn_get(w->app);
    if (!c) {
        reply_text(fd, "500 Internal Server Error", "no database\n");
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
    /* 2. then the cache */
    char header[128] = "", json[JSON_MAX];
    drop_cached(w, id, header, sizeof header);
    size_t n = user_json(id, (const unsigned char *)name, (size_t)len, json);
    reply_with(fd, "200 OK", "application/json", header, json, n);
}

static void delete_user(worker_t *w, int fd, const request_t *req, int64_t id) {
    if (req->via[0]) {
        write_via(w, fd, req, id, NULL, 0);
        return;
    }
    conn_t *c = conn_get(w->app);
    if (!c) {
        reply_text(fd, "500 Internal Server Error", "no database\n");
        return;
    }
    sqlite3_bind_int64(c->remove, 1, id);
    int rc = sqlite3_step(c->remove);
    sqlite3_reset(c->remove);
    if (rc != SQLITE_DONE) {
        reply_text(fd, "500 Internal Server Error", "database write failed\n");
        return;
    }
    char header[128] = "";
    drop_cached(w, id, header, sizeof header);
    reply_with(fd, "200 OK", "text/plain; charset=utf-8", header, "deleted\n", 8);
}

/* POST /flush: every write-behind write queued, by any process, is in SQLite. */
static void post_flush(worker_t *w, int fd) {
    int rc = tc_flush(w->app->cache, 5000);
    if (rc == TC_OK)
        reply_text(fd, "200 OK", "flushed\n");
    else if (rc == TC_ETIMEDOUT)
        reply_text(fd, "504 Gateway Timeout", "writes still queued after 5 s\n");
    else
        reply_tc_error(fd, rc);
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
    int is_del = strcmp(req.method, "DELETE") == 0, is_post = strcmp(req.method, "POST") == 0;
    int via_ok =
        req.via[0] == '\0' || strcmp(req.via, "through") == 0 || strcmp(req.via, "behind") == 0;
    if (!via_ok || (req.via[0] && !is_put && !is_del)) {
        reply_text(fd, "400 Bad Request", "?via= is through or behind, on PUT and DELETE\n");
    } else if (strcmp(req.path, "/metrics") == 0) {
        if (is_get)
            get_metrics(w, fd);
        else
            reply_text(fd, "405 Method Not Allowed", "GET /metrics\n");
    } else if (strcmp(req.path, "/flush") == 0) {
        if (is_post)
            post_flush(w, fd);
        else
            reply_text(fd, "405 Method Not Allowed", "POST /flush\n");
    } else if (parse_user_path(req.path, &id) == 0) {
        if (is_get)
            get_user(w, fd, id);
        else if (is_put)
            put_user(w, fd, &req, id);
        else if (is_del)
            delete_user(w, fd, &req, id);
        else
            reply_text(fd, "405 Method Not Allowed", "GET, PUT or DELETE /users/<id>\n");
    } else {
        reply_text(fd, "404 Not Found",
                   "try GET, PUT or DELETE /users/<id>, POST /flush, GET /metrics\n");
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

static tc_cache_t *open_cache(app_t *app) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    cfg.negative_ttl_ms = 10000; /* a missing user costs one query per 10 s, not one per GET */
    tc_error_t err;
    tc_cache_t *cache;
    if (tc_config_from_env(&cfg, NULL, &err) != TC_OK) {
        fprintf(stderr, "configuration: %s\n", err.msg);
        return NULL;
    }
    if (!cfg.plain_keys) { /* the write strategies need tiercache's own values */
        cfg.writer = write_users;
        cfg.writer_arg = app; /* lives until after tc_close, as the flusher requires */
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
    app.cache = open_cache(&app);
    if (!app.cache)
        return 1;
    printf("listening on %s:%u\n", address, bound);
    fflush(stdout);

    int rc = run(&app, listen_fd, &stop_signals);
    close(listen_fd);
    tc_close(app.cache); /* drains the write-behind queue, joins tiercache's threads (their
                            connections close too) */
    pthread_key_delete(app.conn_key);
    return rc;
}
