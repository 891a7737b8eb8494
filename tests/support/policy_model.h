/*
 * policy_model.h - the default L1 eviction policy (src/l1_policy.c, second chance in
 * recency order) restated on arrays, for tests that check the real one against it:
 * key[0] is the oldest; young[] marks the young segment (the newest count / 8), ref[] the
 * entries hit since they left it. Obvious rather than fast.
 */
#ifndef TC_TEST_POLICY_MODEL_H
#define TC_TEST_POLICY_MODEL_H

#define TC_TEST_MODEL_MAX 512

typedef struct tc_test_model {
    int key[TC_TEST_MODEL_MAX], young[TC_TEST_MODEL_MAX], ref[TC_TEST_MODEL_MAX];
    int n;
} tc_test_model_t;

/* Position of key k, or -1. */
int tc_test_model_pos(const tc_test_model_t *m, int k);
/* Remove the entry at position i. */
void tc_test_model_cut(tc_test_model_t *m, int i);
/* Add k as the newest, young; the oldest young entries drop out past the share. */
void tc_test_model_append(tc_test_model_t *m, int k);
/* A hit on k (present): marked unless young. */
void tc_test_model_touch(tc_test_model_t *m, int k);
/* The next victim's key after the marked oldest entries got their second chance (it
 * stays in the model: cut position 0 to evict it). */
int tc_test_model_victim(tc_test_model_t *m);

#endif
