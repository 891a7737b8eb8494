/*
 * l2_clock.h - Redis's clock as seen from this process, so that a value read from Redis
 * can say how long its key lives without a second command.
 *
 * The write script puts the key's expiry, on Redis's clock, in the value's header
 * (valfmt.h: expires_by_ms). To turn that into "this many ms from now" a reader needs
 * Redis's time now, and only an upper bound of it is safe: underestimating Redis's clock
 * would keep an L1 copy past its key. A TIME sent at local monotonic time s and answered R
 * was executed after s, so at any later local time t Redis's clock reads at most
 * R + (t - s), up to the drift of the two clocks. One read about every second carries a
 * TIME along with its GETRANGE (no extra round trip); every other read uses the newest
 * such bound, plus a drift allowance that grows with its age (1 ms per second: 1000 ppm,
 * far beyond what NTP lets a clock slew) and the coarse clock's tick, on which L1 expiries
 * are checked.
 *
 * A Redis that refuses TIME (an ACL without +time) turns the header route off for good:
 * reads ask PTTL again, as before, and nothing is kept on a guess. A value whose header
 * does not say (written before the expiry flags, or by a foreign writer of the format)
 * gets its PTTL asked in a round trip of its own by a single read, and is not kept by a
 * bulk one. A failover (tc__l2_reset) forgets the bound: the new master's clock is
 * another, and a TIME sent before the reset is not absorbed after it.
 */
#ifndef TC_L2_CLOCK_H
#define TC_L2_CLOCK_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "l2.h"
#include "log.h"

typedef struct tc__l2_clock {
    atomic_int on; /* reads take the key's life from the header (else: PTTL) */
    pthread_mutex_t mu;
    int64_t offset_us;       /* Redis's clock <= local monotonic us + offset_us (under mu) */
    uint64_t taken_ns;       /* local monotonic ns of the TIME behind it; 0 = none (mu) */
    _Atomic uint64_t due_ns; /* the next TIME is due then (claimed by one read) */
    uint64_t margin_us;      /* the coarse clock's tick + 1 ms */
    atomic_uint gen;         /* bumped by a reset: TIME replies sent before it are ignored */
    tc__log_t *log;
} tc__l2_clock_t;

/* on: whether reads may use the header at all (tiercache keys, a cache without freshness
 * features). 0, or TC_ENOMEM. */
int tc__l2_clock_init(tc__l2_clock_t *k, int on, tc__log_t *log);
void tc__l2_clock_destroy(tc__l2_clock_t *k);
/* Is the header route on now? */
int tc__l2_clock_on(tc__l2_clock_t *k);
/* Should this read carry a TIME? (no bound yet, or the newest is due for renewal: then
 * one read claims it). */
int tc__l2_clock_due(tc__l2_clock_t *k);
/* The generation to stamp on a TIME as it is sent. */
unsigned tc__l2_clock_gen(tc__l2_clock_t *k);
/* The TIME reply of a read whose commands were written at local monotonic sent_ns under
 * generation gen. A permission refusal turns the route off; anything else unreadable, or
 * sent before the last reset, is ignored. */
void tc__l2_clock_absorb(tc__l2_clock_t *k, const redisReply *time, uint64_t sent_ns,
                         unsigned gen);
/* Forget the bound: the server changed (a failover), and its clock with it. */
void tc__l2_clock_reset(tc__l2_clock_t *k);
/* How many ms a copy of a value whose header says expires_by_ms may live here:
 * TC__L2_LIFE_NEVER, a count > 0, TC__L2_LIFE_ASK (the header does not say, or there is no
 * bound on Redis's clock: ask PTTL), or TC__L2_LIFE_NOTHING (already at its end). */
int64_t tc__l2_clock_life_ms(tc__l2_clock_t *k, uint64_t expires_by_ms);

#endif
