/*
 * clock.h - the two clocks tiercache reads.
 *
 * Expiry is checked on every L1 hit, so it must not cost a system call: the coarse
 * monotonic clock is served from the vDSO at a few ns, with the kernel tick as resolution
 * (1-4 ms). TTLs are milliseconds and carry +-10% jitter by default, so a tick of slack is
 * invisible; we document it as the expiry resolution. Timeouts and latency measurements
 * use the precise monotonic clock. What crosses processes (versions, a value's fresh end)
 * is wall-clock time.
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

/* Wall-clock (CLOCK_REALTIME) time since the epoch. */
static inline uint64_t tc__wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static inline uint64_t tc__wall_us(void) {
    return tc__wall_ns() / 1000u;
}
static inline uint64_t tc__wall_ms(void) {
    return tc__wall_ns() / 1000000u;
}

/* A deadline in nanoseconds (on whichever clock it was taken) as a timespec, for
 * pthread_cond_timedwait on a condition variable set to that clock. */
static inline struct timespec tc__timespec_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    return ts;
}

static inline void tc__sleep_ms(uint32_t ms) {
    struct timespec ts = tc__timespec_ns((uint64_t)ms * 1000000u);
    nanosleep(&ts, NULL);
}

#endif
