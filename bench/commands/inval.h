/*
 * inval.h - what the two writers of `inval` share: the reader process, the mapping that
 * carries its eviction timestamps back, and the results.
 *
 *   writer process                                   reader process (inval-reader)
 *   inval.c: tc_set of tiercache keys, or            its own tc_cache_t; its inval_hook
 *   inval_foreign.c: raw SET / DEL / PEXPIRE         stamps recv_ns[id] at each eviction
 *          |                                                   |
 *          +------------- memfd mapping (tcb_inval_shm_t) -----+
 *          +------------- stdin / stdout lines ("ready", "stats") -+
 *
 * Both writers time the same thing, from the moment the write is sent to the moment the
 * other process has evicted the key, and share the reader, its start and stop, the
 * backlog-bounded flood of the rate phase and the reader's counters. inval.c owns the
 * reader process and the tiercache writer; inval_foreign.c the raw-client writer.
 */
#ifndef TCB_INVAL_H
#define TCB_INVAL_H

#include "bench.h"
#include "hist.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Most messages published and not yet applied: an unbounded backlog would hit Redis's
 * pub/sub output-buffer limit and get the listener disconnected. */
#define TCB_INVAL_WINDOW 20000u
#define TCB_INVAL_BATCH  200u
/* A write whose eviction is not seen within this long counts as "not evicted". */
#define TCB_INVAL_WAIT_NS 200000000ull

typedef struct tcb_inval_shm {
    atomic_uint_fast64_t received;  /* hook calls */
    atomic_uint_fast64_t last_ns;   /* time of the latest hook call */
    uint64_t count;                 /* latency keys: ids 0..count-1 */
    atomic_uint_fast64_t recv_ns[]; /* first eviction time per latency key */
} tcb_inval_shm_t;

size_t tcb_inval_shm_size(uint64_t count);

/* The writer's side of a run: its Redis, the mapping, the reader process. */
typedef struct tcb_inval_writer {
    const tcb_opts_t *o;
    tcb_env_t env;
    tcb_inval_shm_t *shm;
    int shm_fd;
    char tc_prefix[96], channel[96]; /* --foreign: tc_prefix is the plain keys' prefix */
    pid_t reader;
    FILE *to_reader, *from_reader;
    uint64_t resident_before;
} tcb_inval_writer_t;

/* The reader's counters (tc_stats), read at the end. */
typedef struct tcb_inval_reader_stats {
    unsigned long long received, applied, malformed, entries, tracking;
    int connected;
} tcb_inval_reader_stats_t;

/* The rate phase: a flood of invalidations, never more than TCB_INVAL_WINDOW ahead. */
typedef struct tcb_inval_rate {
    uint64_t published, applied;
    double secs, pub_rate, recv_rate, full_share;
} tcb_inval_rate_t;

/* Sends one batch of TCB_INVAL_BATCH invalidating writes, the first numbered `first`, on
 * a raw connection, and reads the replies. 0 or -1. */
typedef int (*tcb_inval_batch_fn)(redisContext *rc, const tcb_inval_writer_t *w,
                                  uint64_t first);

void tcb_inval_sleep_us(long us);
/* Read n pipelined replies. 0 or -1. */
int tcb_inval_drain(redisContext *c, unsigned n);
/* Start the reader (re-executing self_exe) and wait for its "ready". 0 or -1. */
int tcb_inval_start_reader(tcb_inval_writer_t *w, const char *self_exe);
/* Tell the reader to quit and reap it (killed after 3 s). Safe to call twice. */
void tcb_inval_stop_reader(tcb_inval_writer_t *w);
/* Flood the reader with batches for --duration and measure what it applied. 0 or -1. */
int tcb_inval_rate_phase(tcb_inval_writer_t *w, tcb_inval_batch_fn batch, tcb_inval_rate_t *r);
/* Ask the reader for its counters. 0 or -1. */
int tcb_inval_reader_stats(tcb_inval_writer_t *w, tcb_inval_reader_stats_t *s);

/* inval_foreign.c: the whole --foreign run, reader started and its results printed (text
 * or JSON per --json). 0 or -1. */
int tcb_inval_foreign_run(tcb_inval_writer_t *w, const char *self_exe);

#endif
