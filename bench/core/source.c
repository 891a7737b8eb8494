/*
 * source.c - latency and value bytes of the simulated source of truth (see source.h).
 */
#include "source.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define SPIN_BELOW_NS 100000u

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tcb_source_wait(const tcb_source_t *s) {
    if (s->latency_ns == 0)
        return;
    if (s->latency_ns < SPIN_BELOW_NS) {
        uint64_t end = now_ns() + s->latency_ns;
        while (now_ns() < end)
            ;
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_nsec + s->latency_ns;
    ts.tv_sec += (time_t)(t / 1000000000ull);
    ts.tv_nsec = (long)(t % 1000000000ull);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ; /* EINTR: keep the absolute deadline */
}

size_t tcb_source_fill(const tcb_source_t *s, uint64_t id, uint64_t version,
                       unsigned char *buf) {
    size_t n = tcb_vsize_for(&s->vsize, id);
    uint64_t x = tcb_mix64(id * 31 + version);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(buf + i, &x, 8);
        x = tcb_mix64(x);
    }
    for (; i < n; i++)
        buf[i] = (unsigned char)(x >> (8 * (i & 7)));
    return n;
}
