/*
 * behind.h - write-behind's flusher thread (behind.c): one per cache that has a writer and
 * may flush; at most one in the cluster holds the lease and writes.
 */
#ifndef TC_BEHIND_H
#define TC_BEHIND_H

#include "tiercache.h"

typedef struct tc__behind tc__behind_t;

/* Start the flusher of c (c->l2 and c->cfg.writer set). 0, TC_ENOMEM or TC_EINTERNAL. */
int tc__behind_start(tc_cache_t *c, tc__behind_t **out);
/* Drain what is queued (up to write_behind_lease_ms) if holding the lease, release it,
 * stop and join. NULL is a no-op. */
void tc__behind_stop(tc__behind_t *b);
/* Write now rather than after write_behind_delay_ms (tc_flush). NULL is a no-op. */
void tc__behind_kick(tc__behind_t *b);
/* Its counters into the stats. NULL is a no-op. */
void tc__behind_counters(tc__behind_t *b, tc_stats_t *out);

#endif
