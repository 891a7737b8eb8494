/* tc-test-labels: unit concurrency */
/*
 * test_local_races.c - L1-only mode's writes racing its loads, the interleaving a review
 * found: tc_fetch checks that no write reached its key during the load, then commits; a
 * tc_set landing between the two used to take the lower version, so the older loaded value
 * replaced it and stayed until its TTL. A writer thread sets the key while the loader is
 * inside its load, every round; after both return, the cache must hold the set's value.
 * (Without the fix, 2 to 9 rounds in 200,000 went wrong on 2 cores.)
 */
#include "peer.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <tiercache.h>

#define ROUNDS (1000000 / TC_TEST_SLOW / TC_TEST_SLOW)

static atomic_int source, go, phase;
static tc_cache_t *cache;

static int loader(void *arg, const void *key, size_t klen, tc_load_t *l) {
    (void)arg;
    (void)key;
    (void)klen;
    int v = atomic_load(&source);
    atomic_store(&phase, 1); /* the writer may go: our value is read */
    return tc_load_set_value(l, &v, sizeof v);
}

static void *writer(void *arg) {
    (void)arg;
    unsigned seed = 7;
    for (int it = 1; it <= ROUNDS; it++) {
        while (atomic_load(&go) != it) {
        }
        while (!atomic_load(&phase)) {
        }
        for (volatile int i = 0, n = (int)(rand_r(&seed) % 300); i < n; i++) {
        }
        int v = 2 * it + 1;
        atomic_store(&source, v);
        tc_set(cache, "k", 1, &v, sizeof v, 0);
        atomic_store(&go, -it);
    }
    return NULL;
}

Test(local_races, a_set_during_a_load_is_never_undone_by_it) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    tc_error_t err;
    cr_assert_eq(tc_open(&cfg, &cache, &err), 0, "%s", err.msg);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, writer, NULL), 0);
    int stale = 0, first = 0;
    for (int it = 1; it <= ROUNDS; it++) {
        atomic_store(&source, 2 * it);
        tc_del(cache, "k", 1);
        atomic_store(&phase, 0);
        atomic_store(&go, it);
        tc_ref_t *r = NULL;
        if (tc_fetch(cache, "k", 1, loader, NULL, &r) == 0)
            tc_ref_release(r);
        while (atomic_load(&go) != -it) {
        }
        int got = 0;
        size_t n = sizeof got;
        if (tc_get_copy(cache, "k", 1, &got, &n) == 0 && got != 2 * it + 1 && stale++ == 0)
            first = it;
    }
    pthread_join(t, NULL);
    tc_close(cache);
    cr_assert_eq(stale, 0,
                 "%d of %d rounds kept the loaded value over a completed tc_set (first: round "
                 "%d)",
                 stale, ROUNDS, first);
}
