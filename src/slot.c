/*
 * slot.c - the cluster's key-to-slot rule, the slot map and redirections (slot.h).
 *
 * Why check a map this hard: a client routes every call by it, and a map that names one
 * slot twice, or a port of 0, would send writes of one key to two nodes or to nowhere.
 * CLUSTER SLOTS comes from a server we trust, but a proxy, a half-upgraded node or a bug
 * can say anything, and the rule everywhere else in tiercache is that a malformed answer
 * is refused with its cause, not half-applied. So a reply is taken whole or not at all.
 *
 * CRC16 is the bitwise XMODEM form (polynomial 0x1021, initial 0): keys are short, so a
 * 512-byte table would buy little next to the network round trip every routed call makes.
 */
#include "slot.h"

#include "endpoint.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint16_t tc__crc16(const void *buf, size_t len) {
    const unsigned char *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

const char *tc__slot_tag(const void *key, size_t klen, size_t *len) {
    const char *k = key;
    const char *open = klen ? memchr(k, '{', klen) : NULL;
    if (open) {
        size_t from = (size_t)(open - k) + 1;
        const char *close = memchr(k + from, '}', klen - from);
        if (close && close > k + from) { /* "{}" is no tag: the whole key counts */
            *len = (size_t)(close - (k + from));
            return k + from;
        }
    }
    *len = klen;
    return k;
}

unsigned tc__slot_of(const void *key, size_t klen) {
    size_t len;
    const char *tag = tc__slot_tag(key, klen, &len);
    return tc__crc16(tag, len) & (TC__SLOTS - 1);
}

/* ---- a name for every slot ---- */

/* The smallest decimal number whose CRC16 lands in each slot: 109,758 numbers cover all
 * 16384 slots, the longest six digits. Built once, on first use (about a millisecond). */
static char slot_names[TC__SLOTS][TC__SLOT_NAME_MAX + 1];
static pthread_once_t slot_names_once = PTHREAD_ONCE_INIT;

static void build_slot_names(void) {
    unsigned left = TC__SLOTS;
    for (unsigned long n = 0; left > 0; n++) {
        char buf[24];
        int len = snprintf(buf, sizeof buf, "%lu", n);
        unsigned slot = tc__crc16(buf, (size_t)len) & (TC__SLOTS - 1);
        if (slot_names[slot][0] == '\0' && len <= (int)TC__SLOT_NAME_MAX) {
            memcpy(slot_names[slot], buf, (size_t)len + 1);
            left--;
        }
    }
}

const char *tc__slot_name(unsigned slot, size_t *len) {
    pthread_once(&slot_names_once, build_slot_names);
    const char *name = slot_names[slot & (TC__SLOTS - 1)];
    *len = strlen(name);
    return name;
}

void tc__slot_map_free(tc__slot_map_t *m) {
    if (!m)
        return;
    free(m->nodes);
    m->nodes = NULL;
    m->nnodes = 0;
    m->served = 0;
    for (unsigned i = 0; i < TC__SLOTS; i++)
        m->owner[i] = TC__SLOT_NONE;
}

/* Refuse the whole reply: range i (or the reply itself, i < 0) is malformed as what says. */
static tc__slot_parse_t refuse(tc__slot_map_t *m, char *why, size_t cap, long long i,
                               const char *what) {
    if (why && cap && i < 0)
        snprintf(why, cap, "CLUSTER SLOTS: %s", what);
    else if (why && cap)
        snprintf(why, cap, "CLUSTER SLOTS: range %lld: %s", i, what);
    tc__slot_map_free(m);
    return TC__SLOT_MALFORMED;
}

static int is_int(const redisReply *r) {
    return r && r->type == REDIS_REPLY_INTEGER;
}

/* A node's [host, port, ...] into host/port. 0, or -1 (malformed: *what says why). */
static int read_node(const redisReply *n, const char *seed_host, char *host, int *port,
                     const char **what) {
    if (!n || n->type != REDIS_REPLY_ARRAY || n->elements < 2) {
        *what = "a node is not [host, port, ...]";
        return -1;
    }
    const redisReply *h = n->element[0], *p = n->element[1];
    if (h->type != REDIS_REPLY_STRING || !is_int(p)) {
        *what = "a node's host is not a string or its port not an integer";
        return -1;
    }
    if (p->integer < 1 || p->integer > 65535) {
        *what = "a node's port is outside 1..65535";
        return -1;
    }
    if (h->len > TC__SLOT_HOST_MAX || memchr(h->str, '\0', h->len)) {
        *what = "a node's host is too long or holds a NUL byte";
        return -1;
    }
    if (h->len == 0) { /* "the address you reached me at" */
        if (!seed_host || strlen(seed_host) > TC__SLOT_HOST_MAX) {
            *what = "a node has no host and there is no seed address to stand for it";
            return -1;
        }
        strcpy(host, seed_host);
    } else {
        memcpy(host, h->str, h->len);
        host[h->len] = '\0';
    }
    *port = (int)p->integer;
    return 0;
}

/* The index of host:port in m, added when new (-1: out of memory). */
static int node_index(tc__slot_map_t *m, size_t *cap, const char *host, int port, int master) {
    for (size_t i = 0; i < m->nnodes; i++)
        if (m->nodes[i].port == port && strcmp(m->nodes[i].host, host) == 0)
            return (int)i;
    if (m->nnodes == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        tc__slot_node_t *nn = realloc(m->nodes, ncap * sizeof *nn);
        if (!nn)
            return -1;
        m->nodes = nn;
        *cap = ncap;
    }
    tc__slot_node_t *n = &m->nodes[m->nnodes];
    strcpy(n->host, host);
    n->port = port;
    n->master = master;
    return (int)m->nnodes++;
}

tc__slot_parse_t tc__slot_map_parse(const redisReply *r, const char *seed_host,
                                    tc__slot_map_t *out, char *why, size_t why_cap) {
    if (!out)
        return TC__SLOT_MALFORMED;
    out->nodes = NULL;
    tc__slot_map_free(out);
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return refuse(out, why, why_cap, -1, "the reply is not an array");
    size_t cap = 0;
    char host[TC__SLOT_HOST_MAX + 1];
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            !is_int(range->element[0]) || !is_int(range->element[1]))
            return refuse(out, why, why_cap, (long long)i, "not [start, end, master, ...]");
        long long from = range->element[0]->integer, to = range->element[1]->integer;
        if (from < 0 || to < from || to >= (long long)TC__SLOTS)
            return refuse(out, why, why_cap, (long long)i, "slots outside 0..16383");
        const char *what = NULL;
        int port, master = -1;
        for (size_t j = 2; j < range->elements; j++) {
            if (read_node(range->element[j], seed_host, host, &port, &what) != 0)
                return refuse(out, why, why_cap, (long long)i, what);
            int idx = node_index(out, &cap, host, port, j == 2 ? -1 : master);
            if (idx < 0) {
                tc__slot_map_free(out);
                return TC__SLOT_NOMEM;
            }
            if (j == 2)
                master = idx;
        }
        if (out->nodes[master].master != -1)
            return refuse(out, why, why_cap, (long long)i, "its master is another's replica");
        for (long long s = from; s <= to; s++) {
            if (out->owner[s] != TC__SLOT_NONE)
                return refuse(out, why, why_cap, (long long)i, "a slot is claimed twice");
            out->owner[s] = (uint16_t)master;
            out->served++;
        }
    }
    return TC__SLOT_PARSED;
}

const tc__slot_node_t *tc__slot_map_owner(const tc__slot_map_t *m, unsigned slot) {
    if (!m || slot >= TC__SLOTS || m->owner[slot] == TC__SLOT_NONE)
        return NULL;
    return &m->nodes[m->owner[slot]];
}

tc__redirect_kind_t tc__redirect_parse(const char *err, size_t len, tc__redirect_t *out) {
    tc__redirect_kind_t kind = TC__REDIRECT_NONE;
    size_t skip = 0;
    if (!err || !out)
        return TC__REDIRECT_NONE;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        kind = TC__REDIRECT_MOVED;
        skip = 6;
    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        kind = TC__REDIRECT_ASK;
        skip = 4;
    } else {
        return TC__REDIRECT_NONE;
    }
    char buf[TC__SLOT_HOST_MAX + 32];
    if (len - skip >= sizeof buf || memchr(err, '\0', len))
        return TC__REDIRECT_NONE;
    memcpy(buf, err + skip, len - skip);
    buf[len - skip] = '\0';
    char *end;
    unsigned long slot = strtoul(buf, &end, 10);
    if (end == buf || *end != ' ' || slot >= TC__SLOTS)
        return TC__REDIRECT_NONE;
    if (tc__endpoint_split_hostport(end + 1, out->host, sizeof out->host, &out->port) != 0)
        return TC__REDIRECT_NONE;
    out->kind = kind;
    out->slot = (unsigned)slot;
    return kind;
}
