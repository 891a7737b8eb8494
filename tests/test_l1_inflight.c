/* tc-test-labels: unit */
/*
 * test_l1_inflight.c - a shard's table of pending records (src/l1_inflight.c) on its own:
 * a record is found by its key until released, records of every bucket are walked once,
 * long keys work, and a reused record starts with every count at zero and no result.
 */
#include "entry.h"
#include "hash.h"
#include "l1_inflight.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static uint64_t h_of(const char *k) {
    return tc__hash64(k, strlen(k), 42);
}

static tc__pending_t *get(tc__l1_inflight_t *t, const char *k) {
    tc__pending_t *p = tc__l1_inflight_get(t, h_of(k), k, strlen(k));
    cr_assert_not_null(p);
    return p;
}

static tc__pending_t *find(const tc__l1_inflight_t *t, const char *k) {
    return tc__l1_inflight_find(t, h_of(k), k, strlen(k));
}

Test(l1_inflight, records_are_found_until_released_and_walked_once) {
    tc__l1_inflight_t t;
    memset(&t, 0, sizeof t);
    static tc__pending_t *rec[200];
    char k[32];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "key%d", i);
        rec[i] = get(&t, k);
        cr_assert_eq(get(&t, k), rec[i], "a second get made a second record");
    }
    int seen = 0;
    for (tc__pending_t *p = tc__l1_inflight_first(&t); p; p = tc__l1_inflight_next(&t, p))
        seen++;
    cr_assert_eq(seen, 200);
    for (int i = 0; i < 200; i += 2)
        tc__l1_inflight_release(&t, rec[i]);
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "key%d", i);
        cr_assert_eq(find(&t, k), i % 2 ? rec[i] : NULL, "%s", k);
    }
    for (tc__pending_t *p = tc__l1_inflight_first(&t), *next; p; p = next) {
        next = tc__l1_inflight_next(&t, p);
        tc__l1_inflight_release(&t, p);
    }
    cr_assert_null(tc__l1_inflight_first(&t));
    cr_assert_leq(t.spares, TC__L1_INFLIGHT_SPARES);
    tc__l1_inflight_deinit(&t);
    cr_assert_eq(t.spares, 0);
}

Test(l1_inflight, a_reused_record_starts_clean) {
    tc__l1_inflight_t t;
    memset(&t, 0, sizeof t);
    tc__pending_t *p = get(&t, "a");
    p->inval_seq = 7;
    p->max_inval = 9;
    p->results = 3;
    p->result_status = -1;
    p->result = tc__entry_new("a", 1, "v", 1); /* owned by the record */
    tc__l1_inflight_release(&t, p);            /* releases the result */
    cr_assert_eq(t.spares, 1);
    tc__pending_t *q = get(&t, "b");
    cr_assert_eq(q, p, "the spare was not reused");
    cr_assert_eq(q->inval_seq + q->max_inval + q->results + q->users + q->waiters, 0);
    cr_assert_eq(q->result_status, 0);
    cr_assert_null(q->result);
    cr_assert_eq(q->klen, 1);
    cr_assert_eq(memcmp(q->key, "b", 1), 0);
    cr_assert_null(find(&t, "a"));
    tc__l1_inflight_release(&t, q);
    tc__l1_inflight_deinit(&t);
}

Test(l1_inflight, long_keys_get_their_own_records) {
    tc__l1_inflight_t t;
    memset(&t, 0, sizeof t);
    static char k[70000];
    memset(k, 'x', sizeof k - 1);
    tc__pending_t *p = tc__l1_inflight_get(&t, h_of(k), k, strlen(k));
    cr_assert_not_null(p);
    cr_assert_eq(p->klen, sizeof k - 1);
    cr_assert_eq(tc__l1_inflight_find(&t, h_of(k), k, strlen(k)), p);
    tc__l1_inflight_release(&t, p); /* freed, not kept as a spare */
    cr_assert_eq(t.spares, 0);
    tc__l1_inflight_deinit(&t);
}
