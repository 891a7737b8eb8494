/*
 * ring.h - several standalone Redis servers as one cache: which server holds a key, by
 * consistent hashing with virtual nodes (ring.c).
 *
 * Each server owns the points hash(name "#" i) for i < vnodes on a 64-bit circle; a key
 * belongs to the first point at or after hash(key). Adding a server takes over only the
 * arcs before its own points (about 1/N of the keys), removing one hands its arcs to the
 * next points: every other key stays where it was, so the L1s and Redis contents of the
 * other servers stay valid. Like Redis Cluster, a key with a {hash tag} is placed by the
 * tag, so a key, its lock and its tag sets can be kept on one server.
 *
 * The hash is byte-wise (FNV-1a, then a 64-bit finalizer) and unseeded: every process, on
 * any architecture, must place every key on the same server. A ring is built by one thread
 * and then read by many (lookups take no lock); changing it while others look up is the
 * caller's to serialise.
 */
#ifndef TC_RING_H
#define TC_RING_H

#include <stddef.h>
#include <stdint.h>

#define TC__RING_NONE     UINT32_MAX /* lookup on an empty ring */
#define TC__RING_VNODES   160u       /* points per server by default */
#define TC__RING_NAME_MAX 512u

typedef struct tc__ring tc__ring_t;

/* vnodes points per server (0: TC__RING_VNODES). NULL on out of memory. */
tc__ring_t *tc__ring_new(unsigned vnodes);
void tc__ring_free(tc__ring_t *r);
/* Add server id under name (its identity: the same name gives the same points in every
 * process, e.g. "host:port"). 0, TC_EINVAL (NULL, empty or long name, id taken or
 * TC__RING_NONE), TC_ENOMEM. */
int tc__ring_add(tc__ring_t *r, const char *name, uint32_t id);
/* Remove server id. 0, or TC_ENOTFOUND. */
int tc__ring_remove(tc__ring_t *r, uint32_t id);
/* The server holding key, or TC__RING_NONE when the ring is empty. */
uint32_t tc__ring_lookup(const tc__ring_t *r, const void *key, size_t klen);
/* Servers on the ring. */
size_t tc__ring_servers(const tc__ring_t *r);

#endif
