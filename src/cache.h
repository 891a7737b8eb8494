/*
 * cache.h - the tc_cache_t behind the opaque handle: one L1, optionally one L2 pool and
 * one listener, the copied configuration and the call counters.
 */
#ifndef TC_CACHE_H
#define TC_CACHE_H

#include "config.h"
#include "l1.h"
#include "l2.h"
#include "listener.h"

#include <stdatomic.h>
#include <stdint.h>

struct tc_cache {
    tc_config_t cfg; /* validated copy; strings point at the owned copies below */
    char *key_prefix, *channel;
    tc__endpoint_t endpoint;            /* parsed redis_url (zeroed in L1-only mode) */
    unsigned char origin[16];           /* random instance id carried by our messages */
    tc__l1_t *l1;                       /* always present (a 0-byte budget keeps nothing) */
    tc__l2_t *l2;                       /* NULL in L1-only mode */
    tc__listener_t *listener;           /* NULL in L1-only mode */
    atomic_uint_fast64_t local_version; /* L1-only mode's write versions */
    atomic_uint_fast64_t l2_hits, l2_misses, loads, load_errors;
};

/* ttl_ms (0 = default) with the configured jitter applied; at least 1 ms. */
uint64_t tc__effective_ttl_ms(const tc_cache_t *c, uint64_t ttl_ms);

#endif
