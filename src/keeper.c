/*
 * keeper.c - the cache's lock thread: it keeps long loads' leases alive and releases
 * locks whose release failed.
 *
 * A load's cross-process lock is also its lease (scripts.c): the load may store what it
 * read only while the lock still holds its token. Two things can go wrong with a lock,
 * and this thread handles both, so that no caller ever waits for them:
 *
 * - A load longer than lock_ttl_ms. Its lock would expire under it and the store would be
 *   refused, so a slow source would never be cached. While the load runs, the lock is
 *   extended every ttl / 3 (compare-and-PEXPIRE: only while it is still ours), like
 *   Redisson's lock watchdog. A write still voids the lease; a process that dies stops
 *   extending and its lock expires as before.
 * - A release lost to a fault (breaker open, Redis paused, a timeout). The lock would stay
 *   until its PTTL, and every process that wants the key would wait on it, up to
 *   lock_ttl_ms after Redis is healthy again. The release is retried every
 *   KEEPER_RETRY_MS while the breaker lets calls through, until it succeeds, the lock is
 *   no longer ours (the compare-and-delete answers either way), or its own TTL has run out.
 *
 * - A write-through whose source write worked but whose cache step Redis missed: the key
 *   is deleted (and so announced to every L1) as soon as Redis answers, retried the same
 *   way, with no deadline.
 *
 * Bounded: at most KEEPER_MAX_CHORES pending chores; beyond that a lock is left to expire
 * (and a deletion refused: its caller says so). Lock order: `mu` is a leaf, never held across a
 * Redis call; a lease being extended is marked busy, and letting it go meanwhile only marks it
 * dropped (the thread frees it when the call returns).
 */
#include "keeper.h"

#include "clock.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KEEPER_RETRY_MS   50u
#define KEEPER_MAX_CHORES 4096u
#define NS_PER_MS         1000000u

/* A lock this keeper works on: its key and token, copied after the struct that owns
 * them (a release to retry, or a lease to extend). */
typedef struct lockref {
    uint64_t due_ns; /* lease: next extension; release: when Redis drops it anyway */
    size_t klen, tlen;
    const unsigned char *key;
    const char *token;
} lockref_t;

/* Point r at key and token, copied into buf. */
static void lockref_fill(lockref_t *r, unsigned char *buf, const void *key, size_t klen,
                         const char *token, size_t tlen) {
    memcpy(buf, key, klen);
    memcpy(buf + klen, token, tlen);
    r->key = buf;
    r->token = (const char *)buf + klen;
    r->klen = klen;
    r->tlen = tlen;
}

typedef struct chore {
    struct chore *next;
    int del; /* a key to delete everywhere (a write-through Redis missed), not a lock */
    lockref_t ref;
    unsigned char data[]; /* key, then token */
} chore_t;

struct tc__lease {
    tc__lease_t *prev, *next;
    uint32_t ttl_ms;
    int busy, dropped;
    lockref_t ref;
    unsigned char data[]; /* key, then token */
};

struct tc__keeper {
    tc__l2_t *l2;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chore_t *chores; /* guarded by mu */
    unsigned nchores;
    tc__lease_t *leases; /* guarded by mu */
    int stopping;
};

/* ---- releases ---- */

/* Try every chore once; returns the ones still pending. Runs without mu. */
static chore_t *retry_releases(tc__keeper_t *k, chore_t *list) {
    chore_t *keep = NULL;
    while (list) {
        chore_t *c = list;
        list = c->next;
        lockref_t *r = &c->ref;
        int done = tc__now_ns() >= r->due_ns; /* Redis dropped it by itself */
        if (!done && tc__l2_available(k->l2))
            done = c->del ? tc__l2_del(k->l2, r->key, r->klen, NULL) == 0
                          : tc__l2_unlock(k->l2, r->key, r->klen, r->token, r->tlen) == 0;
        if (done) {
            free(c);
        } else {
            c->next = keep;
            keep = c;
        }
    }
    return keep;
}

/* ---- leases ---- */

static void lease_unlink_locked(tc__keeper_t *k, tc__lease_t *l) {
    if (l->prev)
        l->prev->next = l->next;
    else
        k->leases = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

/* Extend every lease that is due. Called with mu held; drops it around each call (the
 * lease is marked busy meanwhile, so nobody frees it). */
static void extend_due_locked(tc__keeper_t *k) {
    uint64_t now = tc__now_ns();
    tc__lease_t *l = k->leases;
    while (l) {
        if (l->busy || l->ref.due_ns > now) {
            l = l->next;
            continue;
        }
        l->busy = 1;
        pthread_mutex_unlock(&k->mu);
        int rc =
            tc__l2_extend(k->l2, l->ref.key, l->ref.klen, l->ref.token, l->ref.tlen, l->ttl_ms);
        pthread_mutex_lock(&k->mu);
        l->busy = 0;
        /* Not ours any more: the store will be refused anyway, stop. An error: try again
         * at the next period, while the lock still has a third of its TTL. */
        l->ref.due_ns =
            rc == 0 ? UINT64_MAX : tc__now_ns() + (uint64_t)l->ttl_ms / 3 * NS_PER_MS;
        tc__lease_t *next = l->next;
        if (l->dropped) {
            lease_unlink_locked(k, l);
            free(l);
        }
        l = next;
    }
}

/* When the thread must wake next: the earliest lease due, or a release retry. */
static uint64_t next_wake_locked(const tc__keeper_t *k) {
    uint64_t wake =
        k->chores ? tc__now_ns() + (uint64_t)KEEPER_RETRY_MS * NS_PER_MS : UINT64_MAX;
    for (const tc__lease_t *l = k->leases; l; l = l->next)
        if (!l->busy && l->ref.due_ns < wake)
            wake = l->ref.due_ns;
    return wake;
}

static void *keeper_main(void *arg) {
    tc__keeper_t *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stopping) {
        extend_due_locked(k);
        if (k->chores) {
            chore_t *list = k->chores;
            k->chores = NULL;
            k->nchores = 0;
            pthread_mutex_unlock(&k->mu);
            chore_t *left = retry_releases(k, list);
            pthread_mutex_lock(&k->mu);
            while (left) {
                chore_t *c = left;
                left = c->next;
                c->next = k->chores;
                k->chores = c;
                k->nchores++;
            }
        }
        if (k->stopping)
            break;
        uint64_t wake = next_wake_locked(k);
        if (wake == UINT64_MAX) {
            pthread_cond_wait(&k->cv, &k->mu);
        } else {
            struct timespec ts = tc__timespec_ns(wake);
            pthread_cond_timedwait(&k->cv, &k->mu, &ts);
        }
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

/* ---- API ---- */

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
    while (k->leases) { /* none when every load has finished; free what is left */
        tc__lease_t *l = k->leases;
        k->leases = l->next;
        free(l);
    }
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

tc__lease_t *tc__keeper_hold(tc__keeper_t *k, const void *key, size_t klen, const char *token,
                             size_t tlen, uint32_t ttl_ms) {
    tc__lease_t *l = malloc(sizeof *l + klen + tlen);
    if (!l)
        return NULL;
    memset(l, 0, sizeof *l);
    l->ttl_ms = ttl_ms;
    lockref_fill(&l->ref, l->data, key, klen, token, tlen);
    l->ref.due_ns = tc__now_ns() + (uint64_t)ttl_ms / 3 * NS_PER_MS;
    pthread_mutex_lock(&k->mu);
    l->next = k->leases;
    if (k->leases)
        k->leases->prev = l;
    k->leases = l;
    pthread_cond_signal(&k->cv); /* the earliest wake may have moved */
    pthread_mutex_unlock(&k->mu);
    return l;
}

void tc__keeper_let_go(tc__keeper_t *k, tc__lease_t *l) {
    if (!l)
        return;
    pthread_mutex_lock(&k->mu);
    if (l->busy) {
        l->dropped = 1; /* the thread frees it when its extension returns */
    } else {
        lease_unlink_locked(k, l);
        free(l);
    }
    pthread_mutex_unlock(&k->mu);
}

static int add_chore(tc__keeper_t *k, int del, const void *key, size_t klen, const char *token,
                     size_t tlen, uint64_t expires_ns) {
    chore_t *c = malloc(sizeof *c + klen + tlen);
    if (!c)
        return TC_ENOMEM;
    c->del = del;
    lockref_fill(&c->ref, c->data, key, klen, token, tlen);
    c->ref.due_ns = expires_ns;
    pthread_mutex_lock(&k->mu);
    if (k->nchores >= KEEPER_MAX_CHORES) {
        pthread_mutex_unlock(&k->mu);
        free(c);
        return TC_ENOSPC;
    }
    c->next = k->chores;
    k->chores = c;
    k->nchores++;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return TC_OK;
}

int tc__keeper_unlock_later(tc__keeper_t *k, const void *key, size_t klen, const char *token,
                            size_t tlen, uint64_t expires_ns) {
    return add_chore(k, 0, key, klen, token, tlen, expires_ns);
}

int tc__keeper_delete_later(tc__keeper_t *k, const void *key, size_t klen) {
    return add_chore(k, 1, key, klen, "", 0, UINT64_MAX);
}
