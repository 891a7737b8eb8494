/*
 * writes_db.c - the SQLite source of truth of `writes` (see writes_db.h).
 *
 * Statements are prepared once (the upsert, BEGIN IMMEDIATE, COMMIT, ROLLBACK), so a
 * transaction costs what SQLite's own work and the disk cost, not SQL parsing. BEGIN
 * IMMEDIATE takes the write lock at the start: a transaction either gets it or fails
 * before writing anything. A failed statement rolls the whole transaction back and the
 * writer reports the batch failed, which is what the library retries.
 */
#include "writes_db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const sync_names[] = {"full", "normal", "off"};

const char *tcb_db_sync_name(tcb_db_sync_t sync) {
    return (unsigned)sync < sizeof sync_names / sizeof sync_names[0] ? sync_names[sync] : "?";
}

static int fail(tcb_db_t *d, const char *what, char *err, size_t errlen) {
    snprintf(err, errlen, "SQLite %.200s: %s: %.120s", d->path, what,
             d->db ? sqlite3_errmsg(d->db) : "out of memory");
    return -1;
}

static int exec(tcb_db_t *d, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(d->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    snprintf(err, errlen, "SQLite %.200s: %.60s: %.120s", d->path, sql, msg ? msg : "failed");
    sqlite3_free(msg);
    return -1;
}

static int prepare(tcb_db_t *d, const char *sql, sqlite3_stmt **st, char *err, size_t errlen) {
    return sqlite3_prepare_v2(d->db, sql, -1, st, NULL) == SQLITE_OK
               ? 0
               : fail(d, "prepare", err, errlen);
}

/* Where the file goes: the given path, or a fresh private directory. 0 or -1. */
static int place(tcb_db_t *d, const char *path, char *err, size_t errlen) {
    if (path) {
        snprintf(d->path, sizeof d->path, "%s", path);
        snprintf(d->table, sizeof d->table, "tcbench_%ld", (long)getpid());
        return 0;
    }
    snprintf(d->dir, sizeof d->dir, "/tmp/tcbench-db-XXXXXX");
    if (!mkdtemp(d->dir)) {
        snprintf(err, errlen, "mkdtemp(/tmp/tcbench-db-XXXXXX): %s", strerror(errno));
        d->dir[0] = '\0';
        return -1;
    }
    snprintf(d->path, sizeof d->path, "%s/writes.db", d->dir);
    snprintf(d->table, sizeof d->table, "kv");
    return 0;
}

static int schema(tcb_db_t *d, tcb_db_sync_t sync, char *err, size_t errlen) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; "
             "CREATE TABLE %s (k BLOB PRIMARY KEY, v BLOB, ver INTEGER NOT NULL)",
             tcb_db_sync_name(sync), d->table);
    if (exec(d, sql, err, errlen) != 0)
        return -1;
    snprintf(sql, sizeof sql,
             "INSERT INTO %s(k, v, ver) VALUES(?1, ?2, ?3) ON CONFLICT(k) DO UPDATE SET "
             "v = excluded.v, ver = excluded.ver WHERE excluded.ver > %s.ver",
             d->table, d->table);
    if (prepare(d, sql, &d->upsert, err, errlen) != 0 ||
        prepare(d, "BEGIN IMMEDIATE", &d->begin, err, errlen) != 0 ||
        prepare(d, "COMMIT", &d->commit, err, errlen) != 0 ||
        prepare(d, "ROLLBACK", &d->rollback, err, errlen) != 0)
        return -1;
    return 0;
}

int tcb_db_open(tcb_db_t *d, const char *path, tcb_db_sync_t sync, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    if (place(d, path, err, errlen) != 0)
        return -1;
    /* NOMUTEX: d->mu already serialises every use of the connection. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(d->path, &d->db, flags, NULL) != SQLITE_OK) {
        fail(d, "open", err, errlen);
        tcb_db_close(d);
        return -1;
    }
    sqlite3_busy_timeout(d->db, 5000);
    if (schema(d, sync, err, errlen) != 0) {
        tcb_db_close(d);
        return -1;
    }
    return 0;
}

static void remove_files(tcb_db_t *d) {
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[600];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s%s", d->path, suffix[i]);
        unlink(p);
    }
    rmdir(d->dir);
    d->dir[0] = '\0';
}

void tcb_db_close(tcb_db_t *d) {
    sqlite3_stmt **st[] = {&d->upsert, &d->begin, &d->commit, &d->rollback};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        sqlite3_finalize(*st[i]);
        *st[i] = NULL;
    }
    if (d->db && !d->dir[0] && d->table[0]) { /* --db: leave the file as it was */
        char sql[96], err[512];
        snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", d->table);
        if (exec(d, sql, err, sizeof err) != 0)
            fprintf(stderr, "tiercache-bench: writes: %s\n", err);
    }
    if (d->db)
        sqlite3_close(d->db);
    d->db = NULL;
    if (d->dir[0])
        remove_files(d);
}

/* Run a statement that returns no row; 0 or the SQLite code. */
static int step(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : rc;
}

static int upsert(tcb_db_t *d, const tc_write_t *w) {
    sqlite3_stmt *st = d->upsert;
    sqlite3_bind_blob(st, 1, w->key, (int)w->klen, SQLITE_STATIC);
    if (w->kind == TC_WRITE_DEL)
        sqlite3_bind_null(st, 2); /* a tombstone: see writes_db.h */
    else
        sqlite3_bind_blob(st, 2, w->vlen ? w->value : "", (int)w->vlen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)w->version);
    int rc = step(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int tcb_db_write(void *arg, tc_write_t *w, size_t n) {
    tcb_db_t *d = arg;
    pthread_mutex_lock(&d->mu);
    uint64_t t0 = tcb_now_ns();
    int rc = step(d->begin);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = upsert(d, &w[i]);
    if (rc == 0)
        rc = step(d->commit);
    if (rc != 0) {
        if (!d->error[0])
            snprintf(d->error, sizeof d->error, "%s", sqlite3_errmsg(d->db));
        if (!sqlite3_get_autocommit(d->db))
            step(d->rollback);
        d->n.failures++;
    } else {
        d->n.rows += n;
    }
    d->n.calls++;
    d->n.ns += tcb_now_ns() - t0;
    pthread_mutex_unlock(&d->mu);
    return rc == 0 ? 0 : TC_ELOADER;
}

void tcb_db_counters(tcb_db_t *d, tcb_db_counters_t *out) {
    pthread_mutex_lock(&d->mu);
    *out = d->n;
    pthread_mutex_unlock(&d->mu);
}

long long tcb_db_scan(tcb_db_t *d, const char *prefix, tcb_db_row_fn fn, void *arg) {
    char sql[160], hi[64];
    size_t plen = strlen(prefix);
    if (plen == 0 || plen >= sizeof hi)
        return -1;
    memcpy(hi, prefix, plen);
    hi[plen - 1]++; /* keys in [prefix, prefix with its last byte + 1) */
    snprintf(sql, sizeof sql, "SELECT k, v FROM %s WHERE k >= ?1 AND k < ?2", d->table);
    pthread_mutex_lock(&d->mu);
    sqlite3_stmt *st = NULL;
    long long rows = -1;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, prefix, (int)plen, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, hi, (int)plen, SQLITE_STATIC);
        int rc;
        rows = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const void *v = sqlite3_column_blob(st, 1);
            size_t vlen = (size_t)sqlite3_column_bytes(st, 1);
            fn(arg, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), v, vlen);
            rows++;
        }
        if (rc != SQLITE_DONE)
            rows = -1;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&d->mu);
    return rows;
}
