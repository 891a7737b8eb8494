/* tc-test-labels: unit */
/*
 * test_l1_index.c - one shard's index (src/l1_index.c) on its own: the open-addressing
 * table stays findable through adds, removals, growth and wrap-around; a probe run that
 * cannot be indexed fails cleanly; and the recency list evicts in exactly the order its
 * essay defines (a young segment of count / 8, second chances for entries hit after it),
 * checked against an array model of the same rules.
 */
#include "alloc.h"
#include "entry.h"
#include "hash.h"
#include "l1_index.h"
#include "policy_model.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define SEED 0x9e3779b97f4a7c15ULL

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static tc_ref_t *make(const char *key) {
    tc_ref_t *e = tc__entry_new(key, strlen(key), "v", 1);
    cr_assert_not_null(e);
    return e;
}

static uint64_t hash_of(const char *key) {
    return tc__hash64(key, strlen(key), SEED);
}

static tc__l1_index_add_result_t add(tc__l1_index_t *ix, tc_ref_t *e) {
    return tc__l1_index_add(ix, tc__hash64(tc__entry_key(e), tc__entry_klen(e), SEED), e,
                            TC__L1_NO_PRIOR);
}

static tc_ref_t *find(const tc__l1_index_t *ix, const char *key) {
    return tc__l1_index_find(ix, hash_of(key), key, strlen(key));
}

static void drop(tc__l1_index_t *ix, tc_ref_t *e) {
    tc__l1_index_remove(ix, e);
    tc_ref_release(e);
}

static void drop_all(tc__l1_index_t *ix) {
    for (tc_ref_t *e; (e = tc__l1_index_first(ix)) != NULL;)
        drop(ix, e);
    tc__l1_index_deinit(ix);
}

/* A second-chance index holding k0..k(n-1), added in that order (k0 the oldest). */
static void open_with_keys(tc__l1_index_t *ix, tc_ref_t **e, int n) {
    tc__l1_index_init(ix, SEED, TC__L1_SECOND_CHANCE);
    char b[16];
    for (int i = 0; i < n; i++) {
        snprintf(b, sizeof b, "k%d", i);
        e[i] = make(b);
        cr_assert_eq(add(ix, e[i]), TC__IX_ADDED);
    }
}

/* A new value of key, resident as old, as l1.c installs one: it takes old's place, and
 * old's reference is dropped. Returns the new entry. */
static tc_ref_t *replace_value(tc__l1_index_t *ix, tc_ref_t *old, const char *key) {
    tc_ref_t *n = make(key);
    cr_assert_eq(tc__l1_index_replace(ix, hash_of(key), old, n), TC__IX_ADDED);
    cr_assert(!old->older && !old->newer, "%s's old entry is still linked", key);
    tc_ref_release(old);
    return n;
}

/* ---- the table ---- */

Test(l1_index, random_adds_and_removals_keep_every_entry_findable) {
    enum { KEYS = 300 };
    static tc_ref_t *live[KEYS];
    tc__l1_index_t ix;
    tc__l1_index_init(&ix, SEED, TC__L1_SECOND_CHANCE);
    uint64_t s = 7;
    char b[16];
    for (int op = 0; op < 60000; op++) {
        int k = (int)(rng_next(&s) % KEYS);
        snprintf(b, sizeof b, "k%d", k);
        if (live[k]) {
            drop(&ix, live[k]);
            live[k] = NULL;
        } else {
            live[k] = make(b);
            cr_assert_eq(add(&ix, live[k]), TC__IX_ADDED, "op %d", op);
        }
        cr_assert_eq(tc__l1_index_check(&ix), 0, "op %d: table, list and counts disagree", op);
        if (op % 97 == 0) /* every key: present exactly when it is live */
            for (int j = 0; j < KEYS; j++) {
                snprintf(b, sizeof b, "k%d", j);
                cr_assert_eq(find(&ix, b), live[j], "op %d: %s", op, b);
            }
    }
    size_t slots = tc__l1_index_slots(&ix);
    cr_assert(slots == 0 || ix.count * 4 <= slots * 3, "load above 3/4: %zu in %zu", ix.count,
              slots);
    drop_all(&ix);
    cr_assert_eq(tc__l1_index_slots(&ix), 0, "an empty index keeps its table");
    cr_assert_eq(tc__l1_index_charge(&ix), 0);
}

Test(l1_index, table_grows_at_three_quarters_and_is_charged) {
    tc__l1_index_t ix;
    tc__l1_index_init(&ix, SEED, TC__L1_SECOND_CHANCE);
    char b[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(b, sizeof b, "k%d", i);
        size_t predicted = tc__l1_index_charge_after_add(&ix);
        cr_assert_eq(add(&ix, make(b)), TC__IX_ADDED);
        size_t slots = tc__l1_index_slots(&ix);
        cr_assert_eq(tc__l1_index_charge(&ix),
                     tc__l1_index_charge_of(TC__L1_SECOND_CHANCE, slots));
        cr_assert_eq(tc__l1_index_charge(&ix), predicted, "add %d: charge not as foreseen", i);
        cr_assert_leq(ix.count * 4, slots * 3);
        cr_assert(slots == 8 || ix.count * 8 > slots * 3 / 2,
                  "add %d: %zu slots for %zu entries", i, slots,
                  ix.count); /* doubled only when needed */
    }
    drop_all(&ix);
}

/* Keys whose hashes share their low `bits` bits: one home slot in any table up to 2^bits
 * slots, so each added key lengthens one probe run. */
static int colliding_keys(char (*out)[16], int n, unsigned bits) {
    uint64_t want = hash_of("c0") & ((1u << bits) - 1);
    int found = 0;
    for (long i = 0; found < n && i < 40000000L; i++) {
        char b[16];
        snprintf(b, sizeof b, "c%ld", i);
        if ((hash_of(b) & ((1u << bits) - 1)) == want)
            memcpy(out[found++], b, sizeof b);
    }
    return found;
}

Test(l1_index, a_probe_run_past_its_limit_is_refused_cleanly) {
    static char keys[300][16];
    cr_assert_eq(colliding_keys(keys, 300, 12), 300, "setup: not enough colliding keys");
    tc__l1_index_t ix;
    tc__l1_index_init(&ix, SEED, TC__L1_SECOND_CHANCE);
    int added = 0, refused = 0;
    size_t slots_before_refusals = 0;
    static tc_ref_t *e[300];
    for (int i = 0; i < 300; i++) {
        e[i] = make(keys[i]);
        tc__l1_index_add_result_t r = add(&ix, e[i]);
        if (r == TC__IX_ADDED) {
            added++;
            slots_before_refusals = tc__l1_index_slots(&ix);
        } else {
            cr_assert_eq(r, TC__IX_UNINDEXABLE, "key %d: %d", i, r);
            tc_ref_release(e[i]);
            e[i] = NULL;
            refused++;
            /* A refusal leaves the table as it was: nothing more for the shard to pay. */
            cr_assert_eq(tc__l1_index_slots(&ix), slots_before_refusals, "key %d grew it", i);
        }
        cr_assert_eq(tc__l1_index_check(&ix), 0, "key %d", i);
    }
    cr_assert_eq(added, 256, "one run holds dist 0..255");
    cr_assert_eq(refused, 44);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(find(&ix, keys[i]), e[i], "%s", keys[i]);
    drop_all(&ix);
}

/* ---- the recency list ---- */

/* The same rules on arrays (support/policy_model.c). */
typedef tc_test_model_t model_t;

static void expect_order(const tc__l1_index_t *ix, const model_t *m, int op) {
    const tc_ref_t *e = ix->pol.q[0].oldest;
    for (int i = 0; i < m->n; i++, e = e->newer) {
        cr_assert_not_null(e, "op %d: the list ends at %d of %d", op, i, m->n);
        char b[16];
        snprintf(b, sizeof b, "k%d", m->key[i]);
        cr_assert(tc__entry_klen(e) == strlen(b) && memcmp(tc__entry_key(e), b, strlen(b)) == 0,
                  "op %d: position %d is not %s", op, i, b);
    }
    cr_assert_null(e, "op %d: the list is longer than %d", op, m->n);
}

/* A cache of `cap` entries under a random mix of hits, new values of resident keys and
 * inserts: the list's order and every victim match the model's after every operation. */
static void check_against_model(int cap, int keys, int ops) {
    static tc_ref_t *live[4096];
    memset(live, 0, sizeof live);
    static model_t m;
    memset(&m, 0, sizeof m);
    tc__l1_index_t ix;
    tc__l1_index_init(&ix, SEED, TC__L1_SECOND_CHANCE);
    uint64_t s = 88172645463325252ULL;
    char b[16];
    int second_chances = 0;
    for (int op = 0; op < ops; op++) {
        int k = (int)(rng_next(&s) % (uint64_t)keys);
        snprintf(b, sizeof b, "k%d", k);
        if (live[k] && rng_next(&s) % 4 == 0) { /* a new value: the old one's place, a hit */
            live[k] = replace_value(&ix, live[k], b);
            tc_test_model_touch(&m, k);
            cr_assert_eq(find(&ix, b), live[k], "op %d: %s does not find its new entry", op, b);
        } else if (live[k]) {
            tc__l1_index_touch(&ix, live[k]);
            tc_test_model_touch(&m, k);
        } else {
            live[k] = make(b);
            cr_assert_eq(add(&ix, live[k]), TC__IX_ADDED);
            tc_test_model_append(&m, k);
            if (m.n > cap) { /* evict, as l1.c does */
                second_chances += m.ref[0];
                int victim = tc_test_model_victim(&m);
                tc_test_model_cut(&m, 0);
                cr_assert_eq(tc__l1_index_victim(&ix, NULL), live[victim],
                             "op %d: the victim is not k%d", op, victim);
                drop(&ix, live[victim]);
                live[victim] = NULL;
            }
        }
        expect_order(&ix, &m, op);
        cr_assert_eq(tc__l1_index_check(&ix), 0, "op %d", op);
    }
    cr_assert_gt(second_chances, 0, "setup: no entry ever used its second chance");
    drop_all(&ix);
}

Test(l1_index, recency_of_a_small_cache_follows_its_rules) {
    check_against_model(7, 20, 20000);
}

Test(l1_index, recency_with_a_young_segment_follows_its_rules) {
    check_against_model(200, 500, 40000);
}

/* The shortcut itself: a hit moves nothing (a young entry is not even marked), and a
 * marked entry at the oldest end is passed over once, not evicted. */
Test(l1_index, hits_move_nothing_and_marked_entries_get_a_second_chance) {
    tc__l1_index_t ix;
    static tc_ref_t *e[64];
    open_with_keys(&ix, e, 64);
    cr_assert_eq(ix.pol.young, 64 >> TC__L1_YOUNG_SHIFT);
    tc__l1_index_touch(&ix, e[62]); /* young */
    tc__l1_index_touch(&ix, e[0]);  /* the oldest */
    cr_assert_eq(ix.pol.q[0].newest, e[63], "a hit moved an entry");
    cr_assert_eq(ix.pol.q[0].oldest, e[0], "a hit moved an entry");
    cr_assert_eq(tc__l1_index_victim(&ix, NULL), e[1], "the hit on k0 did not save it");
    cr_assert_eq(ix.pol.q[0].newest, e[0], "k0's second chance puts it at the young end");
    cr_assert_eq(tc__l1_index_victim(&ix, NULL), e[1], "asking again changes nothing");
    cr_assert_eq(tc__l1_index_check(&ix), 0);
    drop_all(&ix);
}

/* A new value of a resident key takes the old entry's slot and place, wherever it is: at
 * the oldest end, at the start of the young segment, at the newest end. */
Test(l1_index, a_new_value_takes_the_old_entrys_place) {
    tc__l1_index_t ix;
    static tc_ref_t *e[64];
    open_with_keys(&ix, e, 64);
    cr_assert_eq(ix.pol.young_oldest, e[56], "setup: the young segment starts at k56");
    const int at[] = {0, 56, 63, 30};
    char b[16];
    for (int i = 0; i < 4; i++) {
        int k = at[i];
        snprintf(b, sizeof b, "k%d", k);
        e[k] = replace_value(&ix, e[k], b);
        cr_assert_eq(find(&ix, b), e[k]);
        cr_assert_eq(tc__l1_index_check(&ix), 0, "after k%d", k);
    }
    cr_assert_eq(ix.count, 64, "a replacement added or removed an entry");
    cr_assert_eq(ix.pol.q[0].oldest, e[0], "the new k0 is not where k0 was");
    cr_assert_eq(ix.pol.young_oldest, e[56], "the young segment lost its start");
    cr_assert_eq(ix.pol.q[0].newest, e[63], "the new k63 is not the newest");
    cr_assert_eq(ix.pol.young, 64 >> TC__L1_YOUNG_SHIFT, "the young segment changed size");
    cr_assert_eq(tc__l1_index_victim(&ix, NULL), e[1], "the new k0 did not count as a hit");
    cr_assert_eq(ix.pol.q[0].newest, e[0], "k0's second chance puts it at the young end");
    drop_all(&ix);
}

/* ---- the entry it indexes ---- */

Test(l1_index, entry_head_is_43_bytes) {
    cr_assert_eq(TC__ENTRY_HEAD, 43);
    /* A 17-byte key and a 100-byte value fill a 160-byte allocation exactly. */
    cr_assert_eq(tc__entry_alloc_size(17, 100), 160);
    tc_ref_t *e = tc__entry_new_ext("key", 3, "value", 5, 1);
    cr_assert_eq((uintptr_t)tc__entry_ext(e) % 8, 0, "the freshness block is misaligned");
    cr_assert_eq(memcmp(tc_ref_data(e), "value", 5), 0);
    tc_ref_release(e);
}

/* ---- S3-FIFO ---- */

/* A cache of `cap` entries driven through the index as l1.c drives it: add, then evict
 * the policy's victims past the cap. Returns the entry for key (added when absent). */
typedef struct sim {
    tc__l1_index_t ix;
    size_t cap;
    uint64_t evictions;
} sim_t;

static void sim_open(sim_t *s, tc__l1_policy_kind_t policy, size_t cap) {
    memset(s, 0, sizeof *s);
    tc__l1_index_init(&s->ix, SEED, policy);
    s->cap = cap;
}

/* A request: a hit touches, a miss adds and evicts. Returns 1 on a hit. */
static int sim_request(sim_t *s, const char *key) {
    tc_ref_t *e = find(&s->ix, key);
    if (e) {
        tc__l1_index_touch(&s->ix, e);
        return 1;
    }
    e = make(key);
    cr_assert_eq(add(&s->ix, e), TC__IX_ADDED);
    while (s->ix.count > s->cap) {
        tc_ref_t *v = tc__l1_index_victim(&s->ix, e);
        cr_assert_not_null(v);
        cr_assert_neq(v, e, "the entry just added was chosen");
        drop(&s->ix, v);
        s->evictions++;
    }
    return 0;
}

/* Requests and new values of resident keys (which keep their queue and place, one hit
 * more) leave the queues, the ghost and the counts consistent. */
Test(l1_index, s3fifo_random_requests_keep_queues_consistent) {
    sim_t s;
    sim_open(&s, TC__L1_S3FIFO, 150);
    uint64_t r = 12345;
    int replaced = 0;
    char b[16];
    for (int op = 0; op < 50000; op++) {
        /* a skewed mix: a hot tenth of 600 keys gets half the requests */
        uint64_t x = rng_next(&r);
        int k = (int)((x & 1) ? (x >> 1) % 60 : (x >> 1) % 600);
        snprintf(b, sizeof b, "k%d", k);
        tc_ref_t *old = (x & 6) == 0 ? find(&s.ix, b) : NULL;
        if (old) { /* a new value of a resident key: its place, one more hit */
            replace_value(&s.ix, old, b);
            replaced++;
        } else {
            sim_request(&s, b);
        }
        cr_assert_leq(s.ix.count, s.cap);
        cr_assert_eq(tc__l1_index_check(&s.ix), 0, "op %d", op);
    }
    cr_assert_gt(replaced, 0, "setup: no value was replaced");
    cr_assert_gt(s.ix.pol.q[1].count, 0, "nothing ever reached the main queue");
    cr_assert_gt(s.ix.pol.q[0].count, 0, "the small queue is empty");
    drop_all(&s.ix);
}

/* What S3-FIFO is for: keys requested again and again survive a long scan of keys seen
 * once, which passes through the small queue. The default policy loses them (each scan
 * key is new and pushes the oldest out). */
static int hot_survivors(tc__l1_policy_kind_t policy) {
    sim_t s;
    sim_open(&s, policy, 100);
    char b[16];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 50; i++) {
            snprintf(b, sizeof b, "hot%d", i);
            sim_request(&s, b);
        }
    for (int i = 0; i < 1000; i++) { /* a scan ten times the cache */
        snprintf(b, sizeof b, "scan%d", i);
        sim_request(&s, b);
    }
    int alive = 0;
    for (int i = 0; i < 50; i++) {
        snprintf(b, sizeof b, "hot%d", i);
        alive += find(&s.ix, b) != NULL;
    }
    cr_assert_eq(tc__l1_index_check(&s.ix), 0);
    drop_all(&s.ix);
    return alive;
}

Test(l1_index, s3fifo_keeps_frequent_keys_through_a_scan) {
    int s3 = hot_survivors(TC__L1_S3FIFO), plain = hot_survivors(TC__L1_SECOND_CHANCE);
    cr_assert_eq(s3, 50, "S3-FIFO kept %d of 50 hot keys through the scan", s3);
    cr_assert_eq(plain, 0, "setup: the default policy should lose them (kept %d)", plain);
}

/* A key evicted from the small queue and requested again while the ghost remembers it
 * goes straight to main; one the ghost never saw goes to small. */
Test(l1_index, s3fifo_ghost_sends_a_returning_key_to_main) {
    sim_t s;
    sim_open(&s, TC__L1_S3FIFO, 20);
    char b[16];
    sim_request(&s, "returning");
    for (int i = 0; i < 40 && find(&s.ix, "returning"); i++) {
        snprintf(b, sizeof b, "once%d", i);
        sim_request(&s, b);
    }
    cr_assert_null(find(&s.ix, "returning"), "setup: it was never evicted");
    cr_assert_eq(sim_request(&s, "returning"), 0);
    tc_ref_t *e = find(&s.ix, "returning");
    cr_assert_not_null(e);
    int in_main = 0;
    for (const tc_ref_t *m = s.ix.pol.q[1].oldest; m; m = m->newer)
        in_main |= m == e;
    cr_assert(in_main, "the ghost did not send it to main");
    sim_request(&s, "stranger");
    e = find(&s.ix, "stranger");
    int in_small = 0;
    for (const tc_ref_t *m = s.ix.pol.q[0].oldest; m; m = m->newer)
        in_small |= m == e;
    cr_assert(in_small, "a key never seen went to main");
    cr_assert_eq(tc__l1_index_check(&s.ix), 0);
    drop_all(&s.ix);
}

Test(l1_index, s3fifo_charges_its_ghost_beside_the_table) {
    tc__l1_index_t ix;
    tc__l1_index_init(&ix, SEED, TC__L1_S3FIFO);
    char b[16];
    for (int i = 0; i < 100; i++) {
        snprintf(b, sizeof b, "k%d", i);
        size_t predicted = tc__l1_index_charge_after_add(&ix);
        cr_assert_eq(add(&ix, make(b)), TC__IX_ADDED);
        cr_assert_eq(tc__l1_index_charge(&ix), predicted);
    }
    size_t slots = tc__l1_index_slots(&ix);
    cr_assert_eq(tc__l1_index_charge(&ix), 2 * tc__alloc_charge(slots * sizeof(uint64_t)),
                 "the ghost is not charged");
    drop_all(&ix);
    cr_assert_eq(tc__l1_index_charge(&ix), 0);
}
