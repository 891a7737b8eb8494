/*
 * source.h - the simulated source of truth (the database behind the cache).
 *
 * A load costs a configurable latency and returns a value whose size comes from the
 * workload's size distribution and whose bytes are a function of (key id, version), so
 * any copy can be checked. Sub-100 us latencies spin on the clock, because a sleep that
 * short overshoots by tens of microseconds; longer ones sleep (clock_nanosleep) so that
 * waiting loaders leave the CPU to the threads doing real work, as a blocked database
 * call would.
 */
#ifndef TCB_SOURCE_H
#define TCB_SOURCE_H

#include "workload.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tcb_source {
    uint64_t latency_ns;
    tcb_vsize_t vsize;
} tcb_source_t;

/* Wait the source latency. */
void tcb_source_wait(const tcb_source_t *s);
/* Write id's value (version 0 for loads, the writer's counter for writes) into buf (at
 * least tcb_vsize_max bytes). Returns its size. */
size_t tcb_source_fill(const tcb_source_t *s, uint64_t id, uint64_t version,
                       unsigned char *buf);

#endif
