/*
 * wb_source.h - the source of truth of the write-strategy tests (tests/test_write.c and the
 * wb-peer process): a real SQLite database file, its writer (tc_writer_fn) and its loader
 * (tc_loader_fn), with the knobs the tests turn to make the writer slow, gated or failing.
 *
 * Schema:
 *   users(key BLOB PRIMARY KEY, value BLOB, version INTEGER)
 *   history(id INTEGER PRIMARY KEY AUTOINCREMENT, key BLOB, version INTEGER, kind INTEGER,
 *           applied INTEGER, pid INTEGER)
 *
 * The writer is the one the header recommends: idempotent and version-guarded. A set is
 *   INSERT ... ON CONFLICT(key) DO UPDATE SET value=excluded.value, version=excluded.version
 *   WHERE excluded.version > users.version
 * and a delete is DELETE ... WHERE key = ? AND version < ?. Each batch is one transaction,
 * and in the same transaction every write the writer was handed is appended to `history`
 * with applied = 1 when it changed the row. So `history` is the exact, durable record of
 * what reached the writer and what it did, in order, whichever process wrote: per key the
 * versions delivered must never go down (an older write never reaches the writer after a
 * newer one) and the versions applied must strictly rise (nothing went backwards, not even
 * a set resurrecting a key deleted at a newer version). wb_source_check_history says so.
 *
 * One connection per wb_source_t, used under its mutex, so the writer may be called from
 * any thread; several processes share the file (WAL, busy timeout).
 */
#ifndef TC_TEST_WB_SOURCE_H
#define TC_TEST_WB_SOURCE_H

#include "tiercache.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Called by the writer after its transaction committed, with no lock held. */
typedef void (*wb_hook_fn)(void *arg, const tc_write_t *w, size_t n);

typedef struct wb_source {
    sqlite3 *db;
    pthread_mutex_t mu; /* the connection */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    int gate_closed;        /* the writer waits at the gate while it is closed */
    atomic_uint at_gate;    /* writer calls waiting there now */
    atomic_int fail_calls;  /* the next N writer calls fail: return fail_rc, or (fail_rc 0)
                               mark every write's result fail_result */
    atomic_int fail_rc;     /* see fail_calls */
    atomic_int fail_result; /* see fail_calls and fail_prefix */
    char fail_prefix[32];   /* set before the writer runs: while fail_prefix_on, writes of
                               keys starting with it fail with fail_result (and their batch
                               returns fail_rc when that is set) */
    atomic_int fail_prefix_on;
    atomic_uint slow_ms;      /* the writer sleeps this long after each commit */
    atomic_uint precommit_ms; /* ... and this long inside its transaction, before COMMIT */
    unsigned char *state;     /* NULL, or a byte (shared memory) the writer keeps current:
                                 'B' in its transaction, 'A' committed and sleeping slow_ms,
                                 'I' returned: a test kills the process in the state it wants */
    atomic_uint load_ms;      /* the loader sleeps this long before it reads */
    atomic_int unguarded;     /* 1: plain upsert and delete, no version check */
    wb_hook_fn hook;
    void *hook_arg;
    atomic_ulong calls, entries, loads; /* writer calls, writes handed to it, loader calls */
} wb_source_t;

/* Open (creating the tables if needed) the database at path; busy_ms is the connection's
 * busy timeout. NULL on failure, with why. */
wb_source_t *wb_source_open(const char *path, unsigned busy_ms, char *why, size_t cap);
void wb_source_close(wb_source_t *s);

/* The tc_writer_fn (arg: the wb_source_t). */
int wb_source_writer(void *arg, tc_write_t *w, size_t n);
/* The tc_loader_fn (arg: the wb_source_t): the row's value, or TC_ENOTFOUND. */
int wb_source_loader(void *arg, const void *key, size_t klen, tc_load_t *load);

/* From now on writes of keys starting with prefix fail with result (prefix set once per
 * source; storing 0 in fail_prefix_on stops it). */
void wb_source_fail_keys(wb_source_t *s, const char *prefix, int result);
/* Close or open the writer's gate. */
void wb_source_gate(wb_source_t *s, int closed);

/* The row of key: 1 (value into buf, its length and version), 0 absent, -1 error. */
int wb_source_get(wb_source_t *s, const void *key, size_t klen, void *buf, size_t cap,
                  size_t *vlen, uint64_t *version);
/* Write a row directly (outside tiercache): the application's own update. 0 or -1. */
int wb_source_put(wb_source_t *s, const void *key, size_t klen, const void *val, size_t vlen,
                  uint64_t version);
/* Rows in users; -1 on error. */
long wb_source_count(wb_source_t *s);
/* History rows written by process pid (0: by anyone); applied only when applied_only. */
long wb_source_history_count(wb_source_t *s, long pid, int applied_only);
/* (key, version) pairs handed to the writer both by process a and by process b. */
long wb_source_redelivered(wb_source_t *s, long a, long b);
/* 0 when, per key, delivered versions never went down and applied versions strictly rose;
 * -1 with the first offending key and versions in why. */
int wb_source_check_history(wb_source_t *s, char *why, size_t cap);

#endif
