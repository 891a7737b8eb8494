/*
 * rng.h - the bench's random numbers: splitmix64 to seed, xoshiro256** to draw.
 *
 * Every worker thread owns one generator seeded from (run seed, thread index), so a run
 * is reproducible for a given --seed and thread count, and threads never share state (no
 * atomics, no false sharing on the hot path). xoshiro256** is fast (about 1 ns), passes
 * BigCrush, and its 53 high bits make a uniform double in [0, 1).
 */
#ifndef TCB_RNG_H
#define TCB_RNG_H

#include <stdint.h>

typedef struct tcb_rng {
    uint64_t s[4];
} tcb_rng_t;

/* One splitmix64 step: also a good 64-bit mixer for hashing key ids. */
static inline uint64_t tcb_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Stateless mix of one value (splitmix64 finaliser). */
static inline uint64_t tcb_mix64(uint64_t v) {
    return tcb_splitmix64(&v);
}

static inline void tcb_rng_seed(tcb_rng_t *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = tcb_splitmix64(&x);
}

static inline uint64_t tcb_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t tcb_rng_next(tcb_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t out = tcb_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tcb_rotl(s[3], 45);
    return out;
}

/* Uniform double in [0, 1). */
static inline double tcb_rng_double(tcb_rng_t *r) {
    return (double)(tcb_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), n >= 1 (Lemire's multiply-shift; bias below 2^-64 * n). */
static inline uint64_t tcb_rng_below(tcb_rng_t *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)tcb_rng_next(r) * n) >> 64);
}

#endif
