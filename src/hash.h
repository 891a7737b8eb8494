/*
 * hash.h - the one 64-bit key hash, computed once per call.
 *
 * The L1 takes the shard from bits 32 and up, a key's home slot in the shard's table from
 * the low bits and the slot's tag from the top byte (l1_index.c), so the key is hashed once
 * and the choices use disjoint bits of a well-mixed word: a shard's keys still spread over
 * all its slots.
 * The hash is seeded per cache from the OS random source, so keys chosen by an attacker
 * cannot be aimed at one shard or one bucket chain.
 *
 * Construction: 8-byte little-endian words folded with a multiply-xorshift round, the tail
 * packed into a last word with the length, then a 64-bit avalanche finalizer (the widely
 * published fmix64 constants). Fast for short keys, full avalanche on every output bit.
 */
#ifndef TC_HASH_H
#define TC_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t tc__hash_fmix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t tc__hash_load64(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w; /* little-endian hosts only matter for distribution, not correctness */
}

static inline uint64_t tc__hash64(const void *key, size_t len, uint64_t seed) {
    const unsigned char *p = (const unsigned char *)key;
    const uint64_t m = 0x9e3779b97f4a7c15ULL;
    uint64_t h = seed ^ ((uint64_t)len * m);
    while (len >= 8) {
        uint64_t w = tc__hash_load64(p) * 0xbf58476d1ce4e5b9ULL;
        w ^= w >> 31;
        h = (h ^ w) * m;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < len; i++)
        tail |= (uint64_t)p[i] << (8 * i);
    h ^= tail * 0x94d049bb133111ebULL;
    return tc__hash_fmix64(h);
}

#endif
