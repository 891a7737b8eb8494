/*
 * writes_db.h - the source of truth `writes` measures against: a real SQLite database file,
 * written the way docs/write-strategies.md asks a writer to write.
 *
 * One table (k BLOB PRIMARY KEY, v BLOB, ver INTEGER). Every write, whoever makes it (the
 * library's writer callback for write-behind and write-through, or the bench writing
 * directly for comparison), goes through tcb_db_write: one transaction per call (BEGIN
 * IMMEDIATE ... COMMIT) holding one version-guarded upsert per write,
 *
 *     INSERT INTO t(k, v, ver) VALUES(?, ?, ?)
 *       ON CONFLICT(k) DO UPDATE SET v = excluded.v, ver = excluded.ver
 *       WHERE excluded.ver > t.ver
 *
 * so a write delivered twice, or late (write-behind delivers at least once), never takes a
 * row back in time. A delete is the same upsert with v NULL: a tombstone, because removing
 * the row would let a replayed older set bring it back.
 *
 * The file is in WAL mode; synchronous is FULL unless asked otherwise, so every COMMIT
 * waits for the WAL to reach the disk: the durability a database is used for, and the cost
 * a write-per-transaction caller pays. One connection, serialised by a mutex: the writer
 * runs on the flusher thread (write-behind) or the calling thread (write-through), the
 * direct writes on the bench's own thread, never two at once.
 */
#ifndef TCB_WRITES_DB_H
#define TCB_WRITES_DB_H

#include "bench.h"
#include "tiercache.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* What tcb_db_write did, summed since the database was opened. */
typedef struct tcb_db_counters {
    uint64_t calls;    /* transactions (one per call) */
    uint64_t rows;     /* writes in the committed ones */
    uint64_t ns;       /* time inside tcb_db_write, lock wait excluded */
    uint64_t failures; /* transactions rolled back */
} tcb_db_counters_t;

typedef struct tcb_db {
    sqlite3 *db;
    sqlite3_stmt *upsert, *begin, *commit, *rollback;
    pthread_mutex_t mu;
    tcb_db_counters_t n; /* under mu */
    char dir[64];        /* the private directory made for the file; "" with --db */
    char path[512];
    char table[48];
    char error[200]; /* the first failure, for the report */
} tcb_db_t;

/* Open the database: path NULL makes a fresh file in a private /tmp/tcbench-db-* directory;
 * a given path gets a table of this run's own (tcbench_<pid>), dropped at close. 0, or -1
 * with a message in err. */
int tcb_db_open(tcb_db_t *d, const char *path, tcb_db_sync_t sync, char *err, size_t errlen);
/* Close; drop the table (--db) or remove the file and its directory. Safe to call twice. */
void tcb_db_close(tcb_db_t *d);
/* "full", "normal", "off". */
const char *tcb_db_sync_name(tcb_db_sync_t sync);

/* The writer (a tc_writer_fn; arg is the tcb_db_t): the n writes in one transaction.
 * Returns 0, or TC_ELOADER when the transaction failed (rolled back: the whole batch). */
int tcb_db_write(void *arg, tc_write_t *writes, size_t n);

/* A snapshot of the counters. */
void tcb_db_counters(tcb_db_t *d, tcb_db_counters_t *out);

/* Call fn for each row whose key starts with prefix (v NULL for a tombstone). Returns the
 * number of rows, or -1 on an SQLite error. */
typedef void (*tcb_db_row_fn)(void *arg, const void *k, size_t klen, const void *v,
                              size_t vlen);
long long tcb_db_scan(tcb_db_t *d, const char *prefix, tcb_db_row_fn fn, void *arg);

#endif
