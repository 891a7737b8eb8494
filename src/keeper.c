/*
 * keeper.c - the cache's chore thread: lock releases that failed.
 *
 * A load's cross-process lock is released by the loader when it is done (l2.c). If that
 * release is lost to a fault (breaker open, Redis paused, a timeout), the lock stays until
 * its PTTL, and every process that wants the key waits on it, up to lock_ttl_ms after
 * Redis is healthy again. The failed release is handed here instead: retried every
 * KEEPER_RETRY_MS while the breaker lets calls through, until it succeeds, the lock is no
 * longer ours (the compare-and-delete answers either way), or the lock's own TTL has run
 * out. The caller never waits for it (one call spends at most one timeout).
 *
 * Bounded: at most KEEPER_MAX_CHORES pending; beyond that a lock is left to expire, which
 * is what happened before this thread existed. Lock order: `mu` is a leaf, never held
 * across a Redis call.
 */
#include "keeper.h"

#include "clock.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KEEPER_RETRY_MS   50u
#define KEEPER_MAX_CHORES 4096u

typedef struct chore {
    struct chore *next;
    uint64_t expires_ns;
    size_t klen, tlen;
    char *token;          /* points into data, after the key */
    unsigned char data[]; /* key, then token */
} chore_t;

struct tc__keeper {
    tc__l2_t *l2;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chore_t *chores; /* guarded by mu */
    unsigned count;
    int stopping;
};

/* Try every chore once; returns the ones still pending. Runs without mu. */
static chore_t *work(tc__keeper_t *k, chore_t *list) {
    chore_t *keep = NULL;
    while (list) {
        chore_t *c = list;
        list = c->next;
        int done = tc__now_ns() >= c->expires_ns; /* Redis dropped it by itself */
        if (!done && tc__l2_available(k->l2))
            done = tc__l2_unlock(k->l2, c->data, c->klen, c->token, c->tlen) == 0;
        if (done) {
            free(c);
        } else {
            c->next = keep;
            keep = c;
        }
    }
    return keep;
}

static void *keeper_main(void *arg) {
    tc__keeper_t *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stopping) {
        if (!k->chores) {
            pthread_cond_wait(&k->cv, &k->mu);
            continue;
        }
        chore_t *list = k->chores;
        k->chores = NULL;
        k->count = 0;
        pthread_mutex_unlock(&k->mu);
        chore_t *left = work(k, list);
        pthread_mutex_lock(&k->mu);
        while (left) {
            chore_t *c = left;
            left = c->next;
            c->next = k->chores;
            k->chores = c;
            k->count++;
        }
        if (k->chores && !k->stopping) {
            uint64_t until = tc__now_ns() + (uint64_t)KEEPER_RETRY_MS * 1000000u;
            struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
            pthread_cond_timedwait(&k->cv, &k->mu, &ts);
        }
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int tc__keeper_start(tc__l2_t *l2, tc__keeper_t **out) {
    *out = NULL;
    tc__keeper_t *k = calloc(1, sizeof *k);
    if (!k)
        return TC_ENOMEM;
    k->l2 = l2;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* deadlines use tc__now_ns */
    pthread_cond_init(&k->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&k->mu, NULL);
    if (pthread_create(&k->thread, NULL, keeper_main, k) != 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return TC_EINTERNAL;
    }
    *out = k;
    return TC_OK;
}

void tc__keeper_stop(tc__keeper_t *k) {
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stopping = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    while (k->chores) {
        chore_t *c = k->chores;
        k->chores = c->next;
        free(c);
    }
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

int tc__keeper_unlock_later(tc__keeper_t *k, const void *key, size_t klen, const char *token,
                            size_t tlen, uint64_t expires_ns) {
    chore_t *c = malloc(sizeof *c + klen + tlen);
    if (!c)
        return TC_ENOMEM;
    c->expires_ns = expires_ns;
    c->klen = klen;
    c->tlen = tlen;
    memcpy(c->data, key, klen);
    c->token = (char *)c->data + klen;
    memcpy(c->token, token, tlen);
    pthread_mutex_lock(&k->mu);
    if (k->count >= KEEPER_MAX_CHORES) {
        pthread_mutex_unlock(&k->mu);
        free(c);
        return TC_ENOSPC;
    }
    c->next = k->chores;
    k->chores = c;
    k->count++;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return TC_OK;
}
