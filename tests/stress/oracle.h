/*
 * oracle.h - the coherence stress test's record of every write, shared by every process,
 * and the staleness check every read goes through.
 *
 * "No error" proves nothing about a cache: a stale value looks like any other. So writers
 * record each write where every process can see it (a file mapped MAP_SHARED by the test
 * and by every tc-stress worker), and readers judge every value they get against it.
 *
 * Keys. Three kinds, all known to every process by index:
 *   own   single-writer: each belongs to exactly one writer thread (a writer is one thread
 *         of one process, numbered proc * threads + thread), which writes it with strictly
 *         increasing sequence numbers. The oracle also holds the key's *source of truth*
 *         (the seq of the newest write begun), which tc_fetch loaders read: the writer
 *         updates it before calling tc_set, in the cache-aside order, so a loaded value
 *         is the value of a write that had begun, and is judged like any other.
 *   hot   many-writer: every writer thread of every process sets and deletes it.
 *   cold  single-writer too, but written only during a fault or just after it, each
 *         fault kind its own (tc-stress uses three per kind and writer: one while it is on,
 *         two in stages of its recovery). Their last write was made under that fault and
 *         nobody overwrites it later, so whatever a process kept of it (a write answered
 *         TC_EUNAVAILABLE that Redis never saw, say) is still there for the final check.
 * A value names its key, writer and seq, padded to a length that depends on them, so a
 * reader knows exactly which write it got and notices a value torn or misdelivered.
 *
 * Records. One ring per (key, writer), written only by that writer: seq, start and end
 * (CLOCK_MONOTONIC, common to every process on the machine) and an outcome: pending, ok
 * ("completed": tc_set/tc_del returned 0 by `end`) or maybe (any error: Redis may apply
 * it later, e.g. a command sent before SIGSTOP runs after SIGCONT). Each record is a
 * seqlock (odd while written), so a reader in another process never trusts a torn one.
 *
 * The rule. A read that started at t_r and returned the value of write X is stale when
 * some completed write Y of the same key has end_Y < t_r - BOUND and start_Y > end_X: Y
 * began after X had completed, so Redis ordered it after X, and every process had BOUND
 * to notice. A maybe-write is never Y, and reading one is never stale. TC_ENOTFOUND is
 * never stale (deletes exist; a killed Redis loses data). One writer's writes are
 * sequential, so in a ring start and end grow with seq, and "the newest ok record with
 * end < cutoff that started after end_X" is found by walking down from the newest record.
 *
 * Invariants: head (per ring) only grows, and is stored after the record it names, so a
 * value seen anywhere has its record; a record slot holds seq s only while s > head - RING
 * (older records are gone: a read of such a value is "unjudged", never guessed stale).
 */
#ifndef TC_STRESS_ORACLE_H
#define TC_STRESS_ORACLE_H

#include "peer.h" /* TC_TEST_SLOW */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The staleness bound under test (docs/consistency.md, the table of bounds per situation):
 * a process whose invalidation link dies silently serves an old value for at most
 * 2 x listener_ping_ms (the watchdog). The suite's listener_ping_ms is 100 (tc_test_config),
 * so the library promises 200 ms; on top of it we allow 150 ms of scheduling slack (a
 * loaded two-core CI box runs 9 worker threads, Redis and the proxy), 5x under sanitizers. */
#define TC_STRESS_PING_MS      100u
#define TC_STRESS_LIB_BOUND_MS (2u * TC_STRESS_PING_MS)
#define TC_STRESS_SLACK_MS     (150u * TC_TEST_SLOW)
#define TC_STRESS_BOUND_MS     (TC_STRESS_LIB_BOUND_MS + TC_STRESS_SLACK_MS)

/* The bound for writes that bypass tiercache (test_foreign.c). With tracking on, the
 * library promises one message delay (tc_config_t.tracking: Redis's notice reaching the
 * listener), and a lost link flushes L1 at once (the replay log cannot hold another
 * client's writes), so not even a killed subscriber earns the watchdog's longer bound.
 * One message delay on loopback is well under a millisecond; the 250 ms are scheduling
 * slack only (four reader processes with their listeners, Redis and the writer share two
 * cores, and a woken thread may wait a few scheduler periods for one; at 50 ms a busy
 * machine failed the run with the listener merely descheduled, old code and new alike),
 * 5x under sanitizers. Without tracking a stale value stays for its whole TTL (seconds),
 * so the control run is still caught by a wide margin. */
#define TC_STRESS_FOREIGN_BOUND_MS (250u * TC_TEST_SLOW)

enum {
    TC_ORACLE_RING = 2048,       /* records kept per (key, writer): seconds of writes */
    TC_ORACLE_MAX_FAULTS = 4096, /* fault log entries */
    TC_ORACLE_VALUE_MAX = 256,   /* longest value (key name + ids + padding) */
    TC_ORACLE_NAME_MAX = 32,     /* longest key name */
};

/* Fault kinds, for the log and for attributing stale reads: X(id, name). */
#define TC_ORACLE_FAULTS(X)                                                                    \
    X(TC_FAULT_PUBSUB_KILL, "pubsub_kill")                                                     \
    X(TC_FAULT_SIGSTOP, "sigstop")                                                             \
    X(TC_FAULT_KILL9, "kill9_restart")                                                         \
    X(TC_FAULT_PAUSE_WRITE, "pause_write")                                                     \
    X(TC_FAULT_CUT_SUBSCRIBERS, "cut_subscribers")                                             \
    X(TC_FAULT_CUT_ALL, "cut_all")

typedef enum tc_fault_kind {
#define TC__FAULT_ENUM(id, name) id,
    TC_ORACLE_FAULTS(TC__FAULT_ENUM)
#undef TC__FAULT_ENUM
        TC_FAULT_COUNT
} tc_fault_kind_t;

const char *tc_fault_name(int kind); /* "none" for -1 */

typedef enum tc_oracle_key_kind { TC_KEY_OWN, TC_KEY_HOT, TC_KEY_COLD } tc_oracle_key_kind_t;

typedef enum tc_oracle_op { TC_OP_SET = 1, TC_OP_DEL = 2 } tc_oracle_op_t;

typedef enum tc_oracle_outcome {
    TC_OUT_PENDING = 1,
    TC_OUT_OK = 2,
    TC_OUT_MAYBE = 3,
} tc_oracle_outcome_t;

/* The test drives the workers through these; workers only ever read the phase. */
typedef enum tc_oracle_phase {
    TC_PHASE_INIT,    /* workers open their caches and report ready */
    TC_PHASE_RUN,     /* load + faults; cold keys are written only in this phase */
    TC_PHASE_HEALTHY, /* faults over, load goes on */
    TC_PHASE_QUIET,   /* writers stop; workers report quiet when their threads are done */
    TC_PHASE_VERIFY,  /* every worker compares its cache with Redis, reports, exits */
    TC_PHASE_ABORT,   /* the test gave up: exit now */
} tc_oracle_phase_t;

typedef struct tc_oracle_shape {
    unsigned procs, threads; /* writers = procs * threads */
    unsigned own_keys;       /* single-writer keys per writer */
    unsigned hot_keys;       /* many-writer keys */
    unsigned cold_keys;      /* cold (single-writer) keys per writer */
} tc_oracle_shape_t;

typedef enum tc_oracle_result {
    TC_READ_FRESH,      /* within the bound */
    TC_READ_STALE,      /* a completed newer write is older than the bound */
    TC_READ_UNJUDGED,   /* the value's record is gone from its ring */
    TC_READ_IMPOSSIBLE, /* a value nobody wrote: wrong key, wrong writer, future seq */
} tc_oracle_result_t;

/* A completed write that superseded the value read. */
typedef struct tc_oracle_write {
    unsigned writer;
    uint64_t seq, end_ns;
    tc_oracle_op_t op;
} tc_oracle_write_t;

typedef struct tc_oracle_verdict {
    tc_oracle_result_t result;
    uint64_t value_end_ns;    /* when the write of the value read completed */
    tc_oracle_write_t first;  /* STALE: the earliest-completed superseding write (the value
                                 was stale from first.end_ns + BOUND on) ... */
    tc_oracle_write_t newest; /* ... and the newest one completed before t_read - BOUND */
} tc_oracle_verdict_t;

typedef struct tc_oracle tc_oracle_t;

/* The test creates the file (fails if it exists); workers attach. NULL on failure, with
 * the reason on stderr. */
tc_oracle_t *tc_oracle_create(const char *path, const tc_oracle_shape_t *shape);
tc_oracle_t *tc_oracle_attach(const char *path);
void tc_oracle_detach(tc_oracle_t *o); /* NULL ok */

const tc_oracle_shape_t *tc_oracle_shape(const tc_oracle_t *o);
unsigned tc_oracle_nkeys(const tc_oracle_t *o);
unsigned tc_oracle_writers(const tc_oracle_t *o);
tc_oracle_key_kind_t tc_oracle_key_kind(const tc_oracle_t *o, unsigned key);
/* The writer an own or cold key belongs to. */
unsigned tc_oracle_key_owner(const tc_oracle_t *o, unsigned key);
/* Key index of writer w's own key i (< own_keys), of hot key j, of writer w's cold key i
 * (< cold_keys). */
unsigned tc_oracle_own_key(const tc_oracle_t *o, unsigned writer, unsigned i);
unsigned tc_oracle_hot_key(const tc_oracle_t *o, unsigned j);
unsigned tc_oracle_cold_key(const tc_oracle_t *o, unsigned writer, unsigned i);
/* The user key's bytes (NUL-terminated too); returns its length. */
size_t tc_oracle_key_name(const tc_oracle_t *o, unsigned key, char out[TC_ORACLE_NAME_MAX]);
/* Index of a key name, or -1. */
int tc_oracle_key_index(const tc_oracle_t *o, const void *name, size_t len);

/* Writers. begin records the start (pending), publishes the record, and for own keys
 * moves the source of truth to it; returns the write's seq. end records the outcome and
 * the call's return code (kept for reports). */
uint64_t tc_oracle_write_begin(tc_oracle_t *o, unsigned key, unsigned writer,
                               tc_oracle_op_t op);
void tc_oracle_write_end(tc_oracle_t *o, unsigned key, unsigned writer, uint64_t seq,
                         tc_oracle_outcome_t outcome, int rc);
/* Own keys: the source's seq (0: never written). */
uint64_t tc_oracle_source(const tc_oracle_t *o, unsigned key);

/* The value of (key, writer, seq); returns its length (< TC_ORACLE_VALUE_MAX). */
size_t tc_oracle_value(const tc_oracle_t *o, unsigned key, unsigned writer, uint64_t seq,
                       char out[TC_ORACLE_VALUE_MAX]);
/* Parse a value read for key: 0 and *writer, *seq; -1 when it is not a value of key. */
int tc_oracle_parse(const tc_oracle_t *o, unsigned key, const void *data, size_t len,
                    unsigned *writer, uint64_t *seq);

/* The recorded outcome of (key, writer, seq) and its return code in *rc; 0 when its record
 * is gone or never was. */
int tc_oracle_outcome(const tc_oracle_t *o, unsigned key, unsigned writer, uint64_t seq,
                      int *rc);

/* Judge a read of key that started at t_read_ns and returned (writer, seq). */
tc_oracle_result_t tc_oracle_check(const tc_oracle_t *o, unsigned key, unsigned writer,
                                   uint64_t seq, uint64_t t_read_ns, uint64_t bound_ns,
                                   tc_oracle_verdict_t *v);

/* Phases and the workers' reports. */
tc_oracle_phase_t tc_oracle_phase(const tc_oracle_t *o);
void tc_oracle_set_phase(tc_oracle_t *o, tc_oracle_phase_t ph);
void tc_oracle_report_ready(tc_oracle_t *o);
void tc_oracle_report_quiet(tc_oracle_t *o);
unsigned tc_oracle_ready(const tc_oracle_t *o);
unsigned tc_oracle_quiet(const tc_oracle_t *o);
/* Milliseconds from the start of RUN to t_ns: the timeline every report uses. */
double tc_oracle_run_ms(const tc_oracle_t *o, uint64_t t_ns);

/* The fault log (the test writes, workers read). begin returns the entry's index, or -1
 * when the log is full. fault_at: the latest fault begun at or before t_ns; 1 if any. */
int tc_oracle_fault_begin(tc_oracle_t *o, tc_fault_kind_t kind);
void tc_oracle_fault_end(tc_oracle_t *o, int idx);
int tc_oracle_fault_at(const tc_oracle_t *o, uint64_t t_ns, int *kind, uint64_t *start_ns,
                       uint64_t *end_ns);
/* The kind of the newest fault if it is still on (*since_end_ns = 0) or ended less than
 * tail_ns ago (*since_end_ns: how long ago, at least 1); else -1. */
int tc_oracle_fault_recent(const tc_oracle_t *o, uint64_t tail_ns, uint64_t *since_end_ns);

/* CLOCK_MONOTONIC in nanoseconds: the clock of every record. */
uint64_t tc_oracle_now_ns(void);

#endif
