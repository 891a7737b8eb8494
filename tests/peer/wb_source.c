/*
 * wb_source.c - the SQLite source of the write-strategy tests (see wb_source.h).
 *
 * The writer takes the gate, then the fault knobs, then the connection: a batch is one
 * BEGIN IMMEDIATE ... COMMIT, so a writer killed mid-batch leaves nothing half-written
 * (SQLite rolls the open transaction back), and a writer whose BEGIN finds the database
 * locked by another connection fails the whole batch, as a real one would.
 */
#include "wb_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS users(key BLOB PRIMARY KEY, value BLOB NOT NULL,"
    " version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS history(id INTEGER PRIMARY KEY AUTOINCREMENT, key BLOB NOT "
    "NULL,"
    " version INTEGER NOT NULL, kind INTEGER NOT NULL, applied INTEGER NOT NULL,"
    " pid INTEGER NOT NULL);";

static const char sql_set[] =
    "INSERT INTO users(key, value, version) VALUES(?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET "
    "value=excluded.value, version=excluded.version WHERE excluded.version > users.version";
static const char sql_set_plain[] =
    "INSERT INTO users(key, value, version) VALUES(?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET "
    "value=excluded.value, version=excluded.version";
static const char sql_del[] = "DELETE FROM users WHERE key = ?1 AND version < ?2";
static const char sql_del_plain[] = "DELETE FROM users WHERE key = ?1";
static const char sql_hist[] =
    "INSERT INTO history(key, version, kind, applied, pid) VALUES(?1, ?2, ?3, ?4, ?5)";

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

wb_source_t *wb_source_open(const char *path, unsigned busy_ms, char *why, size_t cap) {
    wb_source_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    char *msg = NULL;
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(s->db, 5000); /* the schema step waits for any other process */
        rc = sqlite3_exec(s->db, schema, NULL, NULL, &msg);
        sqlite3_busy_timeout(s->db, (int)busy_ms);
    }
    if (rc != SQLITE_OK) {
        snprintf(why, cap, "%s: %s", path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        sqlite3_close(s->db);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->gate_mu, NULL);
    pthread_cond_init(&s->gate_cv, NULL);
    return s;
}

void wb_source_close(wb_source_t *s) {
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_cond_destroy(&s->gate_cv);
    pthread_mutex_destroy(&s->gate_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void wb_source_fail_keys(wb_source_t *s, const char *prefix, int result) {
    size_t n = strlen(prefix);
    if (n >= sizeof s->fail_prefix)
        n = sizeof s->fail_prefix - 1;
    memcpy(s->fail_prefix, prefix, n);
    s->fail_prefix[n] = '\0';
    atomic_store(&s->fail_result, result);
    atomic_store(&s->fail_prefix_on, 1);
}

void wb_source_gate(wb_source_t *s, int closed) {
    pthread_mutex_lock(&s->gate_mu);
    s->gate_closed = closed;
    pthread_cond_broadcast(&s->gate_cv);
    pthread_mutex_unlock(&s->gate_mu);
}

static void pass_gate(wb_source_t *s) {
    pthread_mutex_lock(&s->gate_mu);
    if (s->gate_closed) {
        atomic_fetch_add(&s->at_gate, 1);
        while (s->gate_closed)
            pthread_cond_wait(&s->gate_cv, &s->gate_mu);
        atomic_fetch_sub(&s->at_gate, 1);
    }
    pthread_mutex_unlock(&s->gate_mu);
}

static void set_state(wb_source_t *s, unsigned char st) {
    if (s->state)
        __atomic_store_n(s->state, st, __ATOMIC_RELEASE);
}

static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n) {
    if (n == 0)
        return sqlite3_bind_zeroblob(st, i, 0);
    return sqlite3_bind_blob(st, i, p, (int)n, SQLITE_TRANSIENT);
}

static int failing_key(const wb_source_t *s, const tc_write_t *w) {
    size_t n = strlen(s->fail_prefix);
    return atomic_load(&s->fail_prefix_on) && n > 0 && w->klen >= n &&
           memcmp(w->key, s->fail_prefix, n) == 0;
}

/* One write, and its history row. SQLITE_OK or an SQLite error. */
static int apply_one(wb_source_t *s, sqlite3_stmt *set, sqlite3_stmt *del, sqlite3_stmt *hist,
                     const tc_write_t *w) {
    sqlite3_stmt *st = w->kind == TC_WRITE_DEL ? del : set;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    bind_blob(st, 1, w->key, w->klen);
    if (w->kind == TC_WRITE_DEL) {
        sqlite3_bind_int64(st, 2, (sqlite3_int64)w->version);
    } else {
        bind_blob(st, 2, w->value, w->vlen);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)w->version);
    }
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return rc;
    int applied = sqlite3_changes(s->db) > 0;
    if (w->kind == TC_WRITE_DEL && atomic_load(&s->unguarded))
        applied = 1; /* a plain delete: the key is gone whatever was there */
    sqlite3_reset(hist);
    bind_blob(hist, 1, w->key, w->klen);
    sqlite3_bind_int64(hist, 2, (sqlite3_int64)w->version);
    sqlite3_bind_int(hist, 3, w->kind);
    sqlite3_bind_int(hist, 4, applied);
    sqlite3_bind_int64(hist, 5, (sqlite3_int64)getpid());
    rc = sqlite3_step(hist);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The batch as one transaction. 0, or a negative tiercache code (nothing written). */
static int write_tx(wb_source_t *s, tc_write_t *w, size_t n) {
    int plain = atomic_load(&s->unguarded);
    int batch_rc = atomic_load(&s->fail_rc);
    sqlite3_stmt *set = NULL, *del = NULL, *hist = NULL;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return TC_EUNAVAILABLE; /* locked by another connection past the busy timeout */
    int rc = sqlite3_prepare_v2(s->db, plain ? sql_set_plain : sql_set, -1, &set, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db, plain ? sql_del_plain : sql_del, -1, &del, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db, sql_hist, -1, &hist, NULL);
    int out = 0;
    for (size_t i = 0; rc == SQLITE_OK && out == 0 && i < n; i++) {
        if (failing_key(s, &w[i])) {
            w[i].result = atomic_load(&s->fail_result);
            out = batch_rc; /* a whole-batch failure, when the test asked for one */
            continue;
        }
        rc = apply_one(s, set, del, hist, &w[i]);
    }
    sqlite3_finalize(set);
    sqlite3_finalize(del);
    sqlite3_finalize(hist);
    if (rc == SQLITE_OK && out == 0) {
        set_state(s, 'B');
        unsigned pre = atomic_load(&s->precommit_ms);
        if (pre)
            sleep_ms(pre);
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK || out != 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return out != 0 ? out : TC_EUNAVAILABLE;
    }
    return 0;
}

int wb_source_writer(void *arg, tc_write_t *w, size_t n) {
    wb_source_t *s = arg;
    pass_gate(s);
    atomic_fetch_add(&s->calls, 1);
    atomic_fetch_add(&s->entries, n);
    int left = atomic_load(&s->fail_calls);
    while (left > 0 && !atomic_compare_exchange_weak(&s->fail_calls, &left, left - 1)) {
    }
    if (left > 0) { /* an injected failure: nothing reaches the database */
        int rc = atomic_load(&s->fail_rc);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            w[i].result = atomic_load(&s->fail_result);
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    int rc = write_tx(s, w, n);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0)
        return rc;
    set_state(s, 'A');
    if (s->hook)
        s->hook(s->hook_arg, w, n);
    unsigned slow = atomic_load(&s->slow_ms);
    if (slow)
        sleep_ms(slow);
    set_state(s, 'I');
    return 0;
}

int wb_source_loader(void *arg, const void *key, size_t klen, tc_load_t *load) {
    wb_source_t *s = arg;
    atomic_fetch_add(&s->loads, 1);
    unsigned ms = atomic_load(&s->load_ms);
    if (ms)
        sleep_ms(ms);
    static _Thread_local unsigned char buf[65536];
    size_t vlen = 0;
    uint64_t version = 0;
    int found = wb_source_get(s, key, klen, buf, sizeof buf, &vlen, &version);
    if (found < 0)
        return TC_EUNAVAILABLE;
    if (found == 0)
        return TC_ENOTFOUND;
    return tc_load_set_value(load, buf, vlen);
}

int wb_source_get(wb_source_t *s, const void *key, size_t klen, void *buf, size_t cap,
                  size_t *vlen, uint64_t *version) {
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_prepare_v2(s->db, "SELECT value, version FROM users WHERE key = ?1", -1,
                                &st, NULL);
    int out = -1;
    if (rc == SQLITE_OK) {
        bind_blob(st, 1, key, klen);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            out = 0;
        } else if (rc == SQLITE_ROW) {
            size_t n = (size_t)sqlite3_column_bytes(st, 0);
            const void *p = sqlite3_column_blob(st, 0);
            if (n <= cap) {
                if (n)
                    memcpy(buf, p, n);
                *vlen = n;
                if (version)
                    *version = (uint64_t)sqlite3_column_int64(st, 1);
                out = 1;
            }
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return out;
}

int wb_source_put(wb_source_t *s, const void *key, size_t klen, const void *val, size_t vlen,
                  uint64_t version) {
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_prepare_v2(s->db, sql_set_plain, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        bind_blob(st, 1, key, klen);
        bind_blob(st, 2, val, vlen);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)version);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc == SQLITE_DONE ? 0 : -1;
}

static long count_sql(wb_source_t *s, const char *sql, long pid, int bind_pid) {
    sqlite3_stmt *st = NULL;
    long n = -1;
    pthread_mutex_lock(&s->mu);
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (bind_pid)
            sqlite3_bind_int64(st, 1, pid);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return n;
}

long wb_source_count(wb_source_t *s) {
    return count_sql(s, "SELECT count(*) FROM users", 0, 0);
}

long wb_source_history_count(wb_source_t *s, long pid, int applied_only) {
    static const char *const q[2][2] = {
        {"SELECT count(*) FROM history", "SELECT count(*) FROM history WHERE applied = 1"},
        {"SELECT count(*) FROM history WHERE pid = ?1",
         "SELECT count(*) FROM history WHERE pid = ?1 AND applied = 1"}};
    return count_sql(s, q[pid != 0][applied_only != 0], pid, pid != 0);
}

long wb_source_redelivered(wb_source_t *s, long a, long b) {
    sqlite3_stmt *st = NULL;
    long n = -1;
    pthread_mutex_lock(&s->mu);
    if (sqlite3_prepare_v2(s->db,
                           "SELECT count(*) FROM history x JOIN history y ON x.key = y.key AND "
                           "x.version = y.version WHERE x.pid = ?1 AND y.pid = ?2",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, a);
        sqlite3_bind_int64(st, 2, b);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void key_text(const void *key, size_t klen, char *out, size_t cap) {
    const unsigned char *p = key;
    size_t o = 0;
    for (size_t i = 0; i < klen && o + 5 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, p[i] >= 32 && p[i] < 127 ? "%c" : "\\x%02x",
                              p[i]);
    out[o] = '\0';
}

int wb_source_check_history(wb_source_t *s, char *why, size_t cap) {
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT key, version, applied, pid, id FROM history "
                                "ORDER BY key, id",
                                -1, &st, NULL);
    int out = rc == SQLITE_OK ? 0 : -1;
    if (rc != SQLITE_OK)
        snprintf(why, cap, "history: %s", sqlite3_errmsg(s->db));
    unsigned char last_key[1024];
    size_t last_len = SIZE_MAX;
    sqlite3_int64 delivered = 0, applied = 0;
    while (out == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t klen = (size_t)sqlite3_column_bytes(st, 0);
        const void *key = sqlite3_column_blob(st, 0);
        sqlite3_int64 v = sqlite3_column_int64(st, 1);
        int was_applied = sqlite3_column_int(st, 2);
        if (klen > sizeof last_key)
            klen = sizeof last_key;
        if (klen != last_len || (klen && memcmp(key, last_key, klen) != 0)) {
            memcpy(last_key, key, klen);
            last_len = klen;
            delivered = applied = 0;
        }
        char k[256];
        if (v < delivered) {
            key_text(key, klen, k, sizeof k);
            snprintf(why, cap,
                     "key '%s': version %lld reached the writer (pid %lld, row %lld) after "
                     "version %lld",
                     k, (long long)v, (long long)sqlite3_column_int64(st, 3),
                     (long long)sqlite3_column_int64(st, 4), (long long)delivered);
            out = -1;
        } else if (was_applied && v <= applied) {
            key_text(key, klen, k, sizeof k);
            snprintf(why, cap,
                     "key '%s': version %lld was applied (pid %lld, row %lld) after version "
                     "%lld: the source went backwards",
                     k, (long long)v, (long long)sqlite3_column_int64(st, 3),
                     (long long)sqlite3_column_int64(st, 4), (long long)applied);
            out = -1;
        }
        delivered = v;
        if (was_applied)
            applied = v;
    }
    if (out == 0 && rc != SQLITE_DONE) {
        snprintf(why, cap, "history: %s", sqlite3_errmsg(s->db));
        out = -1;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return out;
}
