/*
 * test_lru_sim.c - the exact-LRU reference against a brute-force list LRU, and on the
 * access patterns whose LRU miss ratios are known in closed form.
 */
/* tc-test-labels: unit */
#include "lru_sim.h"
#include "rng.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* O(capacity) per access: obviously correct. Returns 1 on a hit. */
static int brute(uint64_t *list, size_t *n, size_t cap, uint64_t id) {
    for (size_t i = 0; i < *n; i++) {
        if (list[i] == id) {
            memmove(list + 1, list, i * sizeof *list);
            list[0] = id;
            return 1;
        }
    }
    if (*n < cap)
        (*n)++;
    memmove(list + 1, list, (*n - 1) * sizeof *list);
    list[0] = id;
    return 0;
}

Test(lru_sim, agrees_with_brute_force) {
    const size_t caps[] = {1, 2, 7, 64, 500};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        tcb_lru_t *l = tcb_lru_new(caps[c]);
        cr_assert_not_null(l);
        uint64_t *list = malloc(caps[c] * sizeof *list);
        size_t n = 0;
        tcb_rng_t r;
        tcb_rng_seed(&r, 1, c);
        for (int i = 0; i < 100000; i++) {
            /* skewed ids over a range a bit larger than the capacity */
            uint64_t id = tcb_rng_below(&r, 3 * caps[c] + 5) * tcb_rng_below(&r, 3);
            id = id * 0x9E3779B97F4A7C15ull; /* spread over the table */
            int a = tcb_lru_access(l, id), b = brute(list, &n, caps[c], id);
            cr_assert_eq(a, b, "cap %zu, access %d", caps[c], i);
        }
        cr_expect_eq(tcb_lru_size(l), n);
        free(list);
        tcb_lru_free(l);
    }
}

/* A loop over k distinct ids, repeated: LRU with capacity >= k misses only the first
 * pass; with capacity < k it misses every access. */
Test(lru_sim, loop_patterns) {
    for (int k = 10; k <= 1000; k *= 10) {
        tcb_lru_t *fits = tcb_lru_new((size_t)k), *short1 = tcb_lru_new((size_t)k - 1);
        uint64_t mf = 0, ms = 0;
        for (int rep = 0; rep < 5; rep++)
            for (int i = 0; i < k; i++) {
                mf += !tcb_lru_access(fits, (uint64_t)i);
                ms += !tcb_lru_access(short1, (uint64_t)i);
            }
        cr_expect_eq(mf, (uint64_t)k);
        cr_expect_eq(ms, (uint64_t)(5 * k));
        tcb_lru_free(fits);
        tcb_lru_free(short1);
    }
}

Test(lru_sim, refuses_zero_capacity) {
    cr_expect_null(tcb_lru_new(0));
    tcb_lru_free(NULL);
}
