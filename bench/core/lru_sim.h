/*
 * lru_sim.h - an exact LRU over uint64 ids with a capacity in entries.
 *
 * The reference the replay mode prints beside the library's figure: same trace, same
 * capacity, textbook LRU (every hit moves the key to the front, every miss at capacity
 * evicts the least recently used). Any gap between the two columns is the price of the
 * library's sharding and of whatever approximation its hit path makes.
 */
#ifndef TCB_LRU_SIM_H
#define TCB_LRU_SIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct tcb_lru tcb_lru_t;

/* NULL on allocation failure or capacity 0. */
tcb_lru_t *tcb_lru_new(size_t capacity);
void tcb_lru_free(tcb_lru_t *l);
/* Access id: returns 1 on a hit, 0 on a miss (id is then inserted). */
int tcb_lru_access(tcb_lru_t *l, uint64_t id);
size_t tcb_lru_size(const tcb_lru_t *l);

#endif
