/* tc-test-labels: unit */
/*
 * test_ring.c - consistent hashing with virtual nodes (src/ring.c): every server gets
 * about its share of the keys; adding a server moves about 1/N of them, all to it;
 * removing one moves only its own; the placement does not depend on the order servers
 * were added (every process must agree); hash tags keep related keys together; bad input
 * is refused. The shares and moved fractions are printed: they are the measurement the
 * scale-out issue asks for.
 */
#include "errors.h"
#include "ring.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define KEYS 100000

static uint32_t place(const tc__ring_t *r, int i) {
    char key[32];
    int n = snprintf(key, sizeof key, "user:%d:profile", i);
    return tc__ring_lookup(r, key, (size_t)n);
}

static tc__ring_t *ring_of(int servers) {
    tc__ring_t *r = tc__ring_new(0);
    cr_assert_not_null(r);
    for (int s = 0; s < servers; s++) {
        char name[32];
        snprintf(name, sizeof name, "10.0.0.%d:6379", s + 1);
        cr_assert_eq(tc__ring_add(r, name, (uint32_t)s), 0);
    }
    return r;
}

Test(ring, every_server_gets_about_its_share) {
    for (int servers = 2; servers <= 8; servers *= 2) {
        tc__ring_t *r = ring_of(servers);
        unsigned count[8] = {0};
        for (int i = 0; i < KEYS; i++) {
            uint32_t s = place(r, i);
            cr_assert_lt(s, (uint32_t)servers);
            count[s]++;
        }
        double fair = (double)KEYS / servers, worst = 0;
        for (int s = 0; s < servers; s++) {
            double dev = ((double)count[s] - fair) / fair;
            worst = dev < 0 ? (-dev > worst ? -dev : worst) : (dev > worst ? dev : worst);
        }
        fprintf(stderr, "ring: %d servers x %u points: the most uneven share is %.1f%% off\n",
                servers, TC__RING_VNODES, 100 * worst);
        cr_assert_lt(worst, 0.25, "%d servers: a share %.0f%% off its fair share", servers,
                     100 * worst);
        tc__ring_free(r);
    }
}

Test(ring, adding_a_server_moves_about_one_nth_all_to_it) {
    for (int servers = 3; servers <= 6; servers++) {
        tc__ring_t *r = ring_of(servers);
        static uint32_t before[KEYS];
        for (int i = 0; i < KEYS; i++)
            before[i] = place(r, i);
        cr_assert_eq(tc__ring_add(r, "10.0.0.99:6379", 99), 0);
        unsigned moved = 0;
        for (int i = 0; i < KEYS; i++) {
            uint32_t now = place(r, i);
            if (now != before[i]) {
                cr_assert_eq(now, 99, "key %d moved between two old servers", i);
                moved++;
            }
        }
        double share = (double)moved / KEYS, ideal = 1.0 / (servers + 1);
        fprintf(stderr, "ring: %d -> %d servers moved %.1f%% of the keys (ideal %.1f%%)\n",
                servers, servers + 1, 100 * share, 100 * ideal);
        cr_assert(share > ideal * 0.7 && share < ideal * 1.3, "moved %.1f%%, ideal %.1f%%",
                  100 * share, 100 * ideal);
        tc__ring_free(r);
    }
}

Test(ring, removing_a_server_moves_only_its_keys) {
    tc__ring_t *r = ring_of(4);
    static uint32_t before[KEYS];
    for (int i = 0; i < KEYS; i++)
        before[i] = place(r, i);
    cr_assert_eq(tc__ring_remove(r, 2), 0);
    cr_assert_eq(tc__ring_servers(r), 3u);
    unsigned moved = 0;
    for (int i = 0; i < KEYS; i++) {
        uint32_t now = place(r, i);
        cr_assert_neq(now, 2u);
        if (before[i] != 2)
            cr_assert_eq(now, before[i], "key %d moved though its server stayed", i);
        else
            moved++;
    }
    fprintf(stderr, "ring: 4 -> 3 servers moved %.1f%% of the keys (ideal 25.0%%)\n",
            100.0 * moved / KEYS);
    cr_assert_eq(tc__ring_remove(r, 2), TC_ENOTFOUND);
    tc__ring_free(r);
}

Test(ring, placement_does_not_depend_on_the_order_of_adds) {
    tc__ring_t *a = tc__ring_new(0), *b = tc__ring_new(0);
    const char *names[] = {"cache-a:6379", "cache-b:6379", "cache-c:6379", "cache-d:6380"};
    for (int s = 0; s < 4; s++) {
        cr_assert_eq(tc__ring_add(a, names[s], (uint32_t)s), 0);
        cr_assert_eq(tc__ring_add(b, names[3 - s], (uint32_t)(3 - s)), 0);
    }
    for (int i = 0; i < KEYS; i += 7)
        cr_assert_eq(place(a, i), place(b, i), "key %d", i);
    /* Pinned placements: every process, on any architecture and in any later release,
     * must place these keys here (a change of hash would strand every deployed key). */
    static const uint32_t pinned[16] = {0, 3, 3, 2, 2, 0, 3, 2, 3, 2, 0, 1, 0, 3, 2, 1};
    for (int i = 0; i < 16; i++)
        cr_assert_eq(place(a, i), pinned[i], "user:%d:profile moved to server %u", i,
                     place(a, i));
    tc__ring_free(a);
    tc__ring_free(b);
}

Test(ring, hash_tags_keep_related_keys_together) {
    tc__ring_t *r = ring_of(5);
    for (int i = 0; i < 1000; i++) {
        char a[48], b[48], c[48];
        int na = snprintf(a, sizeof a, "{user:%d}:profile", i);
        int nb = snprintf(b, sizeof b, "{user:%d}:cart", i);
        int nc = snprintf(c, sizeof c, "user:%d", i);
        uint32_t s = tc__ring_lookup(r, a, (size_t)na);
        cr_assert_eq(tc__ring_lookup(r, b, (size_t)nb), s);
        cr_assert_eq(tc__ring_lookup(r, c, (size_t)nc), s, "the tag alone is the key");
    }
    /* "{}" is no tag: two such keys are placed by their whole bytes. */
    unsigned same = 0;
    for (int i = 0; i < 1000; i++) {
        char a[32], b[32];
        int na = snprintf(a, sizeof a, "{}a%d", i), nb = snprintf(b, sizeof b, "{}b%d", i);
        same += tc__ring_lookup(r, a, (size_t)na) == tc__ring_lookup(r, b, (size_t)nb);
    }
    cr_assert_lt(same, 500u, "empty tags grouped keys together");
    tc__ring_free(r);
}

Test(ring, bad_input_is_refused) {
    tc__ring_t *r = tc__ring_new(8);
    cr_assert_eq(tc__ring_lookup(r, "k", 1), TC__RING_NONE, "an empty ring places nothing");
    cr_assert_eq(tc__ring_add(r, "a:1", 1), 0);
    cr_assert_eq(tc__ring_add(r, "b:1", 1), TC_EINVAL, "an id taken twice");
    cr_assert_eq(tc__ring_add(r, "", 2), TC_EINVAL);
    cr_assert_eq(tc__ring_add(r, NULL, 2), TC_EINVAL);
    cr_assert_eq(tc__ring_add(r, "c:1", TC__RING_NONE), TC_EINVAL);
    char longname[TC__RING_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_eq(tc__ring_add(r, longname, 3), TC_EINVAL);
    cr_assert_eq(tc__ring_add(NULL, "d:1", 4), TC_EINVAL);
    cr_assert_eq(tc__ring_lookup(r, "", 0), 1u, "the empty key is a key");
    cr_assert_eq(tc__ring_lookup(r, NULL, 3), TC__RING_NONE);
    cr_assert_eq(tc__ring_lookup(NULL, "k", 1), TC__RING_NONE);
    cr_assert_eq(tc__ring_remove(r, 7), TC_ENOTFOUND);
    cr_assert_eq(tc__ring_remove(NULL, 1), TC_ENOTFOUND);
    cr_assert_eq(tc__ring_remove(r, 1), 0);
    cr_assert_eq(tc__ring_lookup(r, "k", 1), TC__RING_NONE);
    tc__ring_free(r);
    tc__ring_free(NULL);
}
