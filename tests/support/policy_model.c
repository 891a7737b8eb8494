/*
 * policy_model.c - the array restatement of the default eviction policy (policy_model.h).
 */
#include "policy_model.h"

#include "l1_policy.h"

#include <string.h>

int tc_test_model_pos(const tc_test_model_t *m, int k) {
    for (int i = 0; i < m->n; i++)
        if (m->key[i] == k)
            return i;
    return -1;
}

void tc_test_model_cut(tc_test_model_t *m, int i) {
    size_t tail = (size_t)(m->n - i - 1);
    memmove(&m->key[i], &m->key[i + 1], tail * sizeof m->key[0]);
    memmove(&m->young[i], &m->young[i + 1], tail * sizeof m->young[0]);
    memmove(&m->ref[i], &m->ref[i + 1], tail * sizeof m->ref[0]);
    m->n--;
}

void tc_test_model_append(tc_test_model_t *m, int k) {
    m->key[m->n] = k;
    m->ref[m->n] = 0;
    m->young[m->n++] = 1;
    int young = 0;
    for (int i = 0; i < m->n; i++)
        young += m->young[i];
    for (int i = 0; young > m->n >> TC__L1_YOUNG_SHIFT; i++) /* demote the oldest young */
        if (m->young[i]) {
            m->young[i] = 0;
            young--;
        }
}

void tc_test_model_touch(tc_test_model_t *m, int k) {
    int i = tc_test_model_pos(m, k);
    if (!m->young[i])
        m->ref[i] = 1;
}

int tc_test_model_victim(tc_test_model_t *m) {
    while (m->ref[0]) {
        int k = m->key[0];
        tc_test_model_cut(m, 0);
        tc_test_model_append(m, k);
    }
    return m->key[0];
}
