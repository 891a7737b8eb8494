/*
 * clock.h - the two clocks tiercache reads.
 *
 * Expiry is checked on every L1 hit, so it must not cost a system call: the coarse
 * monotonic clock is served from the vDSO at a few ns, with the kernel tick as resolution
 * (1-4 ms). TTLs are milliseconds and carry +-10% jitter by default, so a tick of slack is
 * invisible; we document it as the expiry resolution. Timeouts and latency measurements
 * use the precise monotonic clock.
 */
#ifndef TC_CLOCK_H
#define TC_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on the coarse monotonic clock (expiry). */
static inline uint64_t tc__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Nanoseconds on the precise monotonic clock (timeouts, backoff, measurements). */
static inline uint64_t tc__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
