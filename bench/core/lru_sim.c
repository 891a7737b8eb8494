/*
 * lru_sim.c - exact LRU: an index-linked recency list plus an open-addressing id table.
 *
 *   nodes[0..cap)   { id, prev, next }   list head = most recent, tail = next victim
 *   slots[0..2^k)   node index + 1, 0 = empty; linear probing, k so that load <= 1/2
 *
 * Deletion uses backward-shift (no tombstones), so lookups stay short however long the
 * trace. Everything is allocated once at capacity; an access never allocates.
 */
#include "lru_sim.h"

#include "rng.h"

#include <stdlib.h>

#define NIL UINT32_MAX

typedef struct node {
    uint64_t id;
    uint32_t prev, next;
} node_t;

struct tcb_lru {
    size_t cap, size;
    node_t *nodes;
    uint32_t *slots; /* node index + 1; 0 = empty */
    size_t mask;
    uint32_t head, tail;
};

tcb_lru_t *tcb_lru_new(size_t capacity) {
    if (capacity == 0 || capacity >= NIL / 4)
        return NULL;
    tcb_lru_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    size_t nslots = 16;
    while (nslots < 2 * capacity)
        nslots *= 2;
    l->cap = capacity;
    l->mask = nslots - 1;
    l->nodes = malloc(capacity * sizeof *l->nodes);
    l->slots = calloc(nslots, sizeof *l->slots);
    l->head = l->tail = NIL;
    if (!l->nodes || !l->slots) {
        tcb_lru_free(l);
        return NULL;
    }
    return l;
}

void tcb_lru_free(tcb_lru_t *l) {
    if (!l)
        return;
    free(l->nodes);
    free(l->slots);
    free(l);
}

size_t tcb_lru_size(const tcb_lru_t *l) {
    return l->size;
}

static size_t home(const tcb_lru_t *l, uint64_t id) {
    return (size_t)tcb_mix64(id) & l->mask;
}

/* Slot holding id, or the empty slot where it would go. */
static size_t find_slot(const tcb_lru_t *l, uint64_t id) {
    size_t i = home(l, id);
    while (l->slots[i] && l->nodes[l->slots[i] - 1].id != id)
        i = (i + 1) & l->mask;
    return i;
}

/* Remove slots[i] and shift later members of its probe run back into the hole. */
static void slot_delete(tcb_lru_t *l, size_t i) {
    size_t j = i;
    for (;;) {
        l->slots[i] = 0;
        for (;;) {
            j = (j + 1) & l->mask;
            if (!l->slots[j])
                return;
            size_t h = home(l, l->nodes[l->slots[j] - 1].id);
            /* Move j back to i unless its home lies cyclically in (i, j]. */
            int stays = (i <= j) ? (i < h && h <= j) : (i < h || h <= j);
            if (!stays)
                break;
        }
        l->slots[i] = l->slots[j];
        i = j;
    }
}

static void list_unlink(tcb_lru_t *l, uint32_t n) {
    node_t *x = &l->nodes[n];
    if (x->prev != NIL)
        l->nodes[x->prev].next = x->next;
    else
        l->head = x->next;
    if (x->next != NIL)
        l->nodes[x->next].prev = x->prev;
    else
        l->tail = x->prev;
}

static void list_push_front(tcb_lru_t *l, uint32_t n) {
    node_t *x = &l->nodes[n];
    x->prev = NIL;
    x->next = l->head;
    if (l->head != NIL)
        l->nodes[l->head].prev = n;
    l->head = n;
    if (l->tail == NIL)
        l->tail = n;
}

int tcb_lru_access(tcb_lru_t *l, uint64_t id) {
    size_t s = find_slot(l, id);
    if (l->slots[s]) {
        uint32_t n = l->slots[s] - 1;
        if (n != l->head) {
            list_unlink(l, n);
            list_push_front(l, n);
        }
        return 1;
    }
    uint32_t n;
    if (l->size < l->cap) {
        n = (uint32_t)l->size++;
    } else {
        n = l->tail;
        list_unlink(l, n);
        slot_delete(l, find_slot(l, l->nodes[n].id));
        s = find_slot(l, id); /* the shift may have moved the free slot */
    }
    l->nodes[n].id = id;
    l->slots[s] = n + 1;
    list_push_front(l, n);
    return 0;
}
