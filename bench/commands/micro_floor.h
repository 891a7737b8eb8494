/*
 * micro_floor.h - micro's "floor" column: how well the same key draws can scale on this
 * machine when each operation does only the shared writes no cache can avoid
 * (micro_floor.c says which, and why that bounds the library's scaling).
 */
#ifndef TCB_MICRO_FLOOR_H
#define TCB_MICRO_FLOOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum tcb_floor_op {
    TCB_FLOOR_GET, /* pin a key's record, compare its key, unpin */
    TCB_FLOOR_SET, /* allocate and fill an entry, swap it into the key's record, free the old */
    TCB_FLOOR_MIX, /* nine gets then one set, as micro's mixed 90/10 */
} tcb_floor_op_t;

typedef struct tcb_floor tcb_floor_t;

/* n records, one per key of keys (n * klen bytes, kept by the caller), each holding an
 * entry of the key and a value of vlen bytes; rings[t] (ring_len draws, a power of two) are
 * thread t's key indexes, micro's own. NULL when memory runs out. */
tcb_floor_t *tcb_floor_open(uint64_t n, const char *keys, size_t klen, size_t vlen,
                            uint32_t *const *rings, size_t ring_len);
void tcb_floor_close(tcb_floor_t *f);

/* The private arithmetic per operation (iterations of tcb_mix64) after which one thread
 * takes about target_ns per operation of op. Measured: about half a second. */
unsigned tcb_floor_pad_for(tcb_floor_t *f, tcb_floor_op_t op, double target_ns);

/* Operations per second of op, padded with pad iterations each, at nthreads threads (at
 * most as many as there are rings) for duration_ns. */
double tcb_floor_run(tcb_floor_t *f, tcb_floor_op_t op, unsigned pad, unsigned nthreads,
                     uint64_t duration_ns);

#endif
