/*
 * slot.h - which Redis Cluster slot a key lives in, and who serves each slot.
 *
 * Redis Cluster splits the key space into 16384 slots: CRC16 (XMODEM) of the key, or of
 * its hash tag, modulo 16384. A hash tag is the part between the first '{' and the next
 * '}', when that part is not empty: "{user:42}:name" and "{user:42}:cart" share a slot,
 * which is how a script that touches a key, its lock and its tags stays on one node.
 *
 * The slot map is what CLUSTER SLOTS answers, checked: every range within 0..16383, no
 * slot claimed twice, every node a host and a port in range. A map from a node that is
 * itself confused (a resharding in progress, a failover) may leave slots unserved; a
 * redirection (MOVED, ASK) names the node that does serve one. Nothing here opens a
 * connection: routing (which pool, when to refresh) belongs to the caller.
 */
#ifndef TC_SLOT_H
#define TC_SLOT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define TC__SLOTS         16384u
#define TC__SLOT_NONE     UINT16_MAX /* slot_map.owner: nobody serves it */
#define TC__SLOT_HOST_MAX 255u       /* a DNS name's limit */

/* The bytes of key that place it: its hash tag (the first {...} that is not empty) when it
 * has one, else the whole key. Shared by the cluster's slots and the ring (ring.c). */
const char *tc__slot_tag(const void *key, size_t klen, size_t *len);
/* The slot of key (its hash tag's when it has one). */
unsigned tc__slot_of(const void *key, size_t klen);
/* A short name whose slot is slot (up to TC__SLOT_NAME_MAX digits): a Redis key that
 * carries it as its hash tag, "{name}", lives in that slot. tiercache puts the name of a
 * user key's slot in the keys it derives from it (the data, its lock, the slot's version
 * counter), so one script may touch them all on a cluster. */
#define TC__SLOT_NAME_MAX 6u
const char *tc__slot_name(unsigned slot, size_t *len);
/* CRC16-XMODEM, the cluster's key hash. */
uint16_t tc__crc16(const void *buf, size_t len);

typedef struct tc__slot_node {
    char host[TC__SLOT_HOST_MAX + 1];
    int port;
    int master; /* index of its master in nodes, or -1: a master */
} tc__slot_node_t;

typedef struct tc__slot_map {
    size_t nnodes;
    tc__slot_node_t *nodes;    /* each host:port once */
    uint16_t owner[TC__SLOTS]; /* index into nodes of the slot's master, or TC__SLOT_NONE */
    unsigned served;           /* slots with an owner */
} tc__slot_map_t;

typedef enum tc__slot_parse {
    TC__SLOT_PARSED = 0,
    TC__SLOT_MALFORMED = -1, /* not a CLUSTER SLOTS reply: why says what */
    TC__SLOT_NOMEM = -2,
} tc__slot_parse_t;

/* Parse a CLUSTER SLOTS reply into out (release with tc__slot_map_free, also after a
 * failure). seed_host stands for a node that reports its address as "" (the node we
 * asked). A reply this refuses leaves out empty, with the cause in why. */
tc__slot_parse_t tc__slot_map_parse(const redisReply *r, const char *seed_host,
                                    tc__slot_map_t *out, char *why, size_t why_cap);
void tc__slot_map_free(tc__slot_map_t *m);
/* The master serving slot, or NULL. */
const tc__slot_node_t *tc__slot_map_owner(const tc__slot_map_t *m, unsigned slot);

typedef enum tc__redirect_kind {
    TC__REDIRECT_NONE = 0, /* not a redirection */
    TC__REDIRECT_MOVED,    /* the slot lives there now: update the map */
    TC__REDIRECT_ASK,      /* this one key, once, there, after ASKING: keep the map */
} tc__redirect_kind_t;

typedef struct tc__redirect {
    tc__redirect_kind_t kind;
    unsigned slot;
    char host[TC__SLOT_HOST_MAX + 1];
    int port;
} tc__redirect_t;

/* Read an error reply's text ("MOVED 3999 10.0.0.2:6381", "ASK ..."). Returns the kind
 * (TC__REDIRECT_NONE for any other error, or a redirection that does not parse). */
tc__redirect_kind_t tc__redirect_parse(const char *err, size_t len, tc__redirect_t *out);

#endif
