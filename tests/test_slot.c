/* tc-test-labels: unit */
/*
 * test_slot.c - the cluster's key-to-slot rule, the CLUSTER SLOTS parser and redirections
 * (src/slot.c), without a server: known CRC16 vectors and hash-tag cases from the cluster
 * specification, replies written as RESP and read by hiredis's own reader (so the parser
 * sees exactly what a connection would hand it), and hostile replies, each refused whole
 * with its cause. test_cluster.c checks the same rules against a real cluster.
 */
#include "slot.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(x) x, (sizeof(x) - 1)

/* A reply from RESP text, as a connection would produce it. */
static redisReply *resp(const char *text) {
    redisReader *rd = redisReaderCreate();
    cr_assert_not_null(rd);
    cr_assert_eq(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
    void *r = NULL;
    cr_assert_eq(redisReaderGetReply(rd, &r), REDIS_OK);
    cr_assert_not_null(r, "incomplete RESP in the test: %s", text);
    redisReaderFree(rd);
    return r;
}

Test(slot, crc16_known_vectors) {
    cr_assert_eq(tc__crc16(S("123456789")), 0x31C3, "the XMODEM check value");
    cr_assert_eq(tc__crc16("", 0), 0);
    cr_assert_eq(tc__slot_of(S("123456789")), 0x31C3u & 16383u);
    /* Slots Redis answers to CLUSTER KEYSLOT (also asserted live in test_cluster.c). */
    cr_assert_eq(tc__slot_of(S("foo")), 12182u);
    cr_assert_eq(tc__slot_of(S("bar")), 5061u);
    cr_assert_eq(tc__slot_of(S("somekey")), 11058u);
}

Test(slot, hash_tags_follow_the_specification) {
    unsigned user = tc__slot_of(S("user1000"));
    cr_assert_eq(tc__slot_of(S("{user1000}.following")), user);
    cr_assert_eq(tc__slot_of(S("{user1000}.followers")), user);
    cr_assert_eq(tc__slot_of(S("foo{}{bar}")), tc__crc16(S("foo{}{bar}")) & 16383u,
                 "an empty tag: the whole key");
    cr_assert_neq(tc__slot_of(S("foo{}{bar}")), tc__slot_of(S("bar")),
                  "an empty first tag: the whole key is hashed, not the second tag");
    cr_assert_eq(tc__slot_of(S("foo{{bar}}zap")), tc__slot_of(S("{bar")));
    cr_assert_eq(tc__slot_of(S("foo{bar}{zap}")), tc__slot_of(S("bar")));
    cr_assert_eq(tc__slot_of(S("{")), tc__crc16(S("{")) & 16383u, "no closing brace");
    cr_assert_eq(tc__slot_of(S("{x")), tc__crc16(S("{x")) & 16383u, "no closing brace");
    cr_assert_eq(tc__slot_of(S("a{b")), tc__crc16(S("a{b")) & 16383u);
    /* Binary keys: a NUL inside the tag is part of it. */
    cr_assert_eq(tc__slot_of("x{a\0b}y", 7), tc__crc16("a\0b", 3) & 16383u);
}

static const char three_masters[] =
    "*3\r\n"
    "*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
    "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nid\r\n"
    "*3\r\n:5461\r\n:10922\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
    "*3\r\n:10923\r\n:16383\r\n*4\r\n$0\r\n\r\n:7002\r\n$2\r\nid\r\n*0\r\n";

Test(slot, map_from_a_cluster_slots_reply) {
    redisReply *r = resp(three_masters);
    tc__slot_map_t m;
    char why[128] = "";
    cr_assert_eq(tc__slot_map_parse(r, "10.0.0.9", &m, why, sizeof why), TC__SLOT_PARSED, "%s",
                 why);
    cr_assert_eq(m.served, 16384u);
    cr_assert_eq(m.nnodes, 4u, "three masters and one replica");
    const tc__slot_node_t *n = tc__slot_map_owner(&m, 0);
    cr_assert(n && n->port == 7000 && strcmp(n->host, "127.0.0.1") == 0);
    n = tc__slot_map_owner(&m, 10922);
    cr_assert(n && n->port == 7001);
    n = tc__slot_map_owner(&m, 16383);
    cr_assert(n && n->port == 7002 && strcmp(n->host, "10.0.0.9") == 0,
              "an empty host is the address we asked");
    int replicas = 0;
    for (size_t i = 0; i < m.nnodes; i++)
        if (m.nodes[i].master >= 0) {
            replicas++;
            cr_assert_eq(m.nodes[m.nodes[i].master].port, 7000);
            cr_assert_eq(m.nodes[i].port, 7003);
        }
    cr_assert_eq(replicas, 1);
    cr_assert_null(tc__slot_map_owner(&m, 16384));
    tc__slot_map_free(&m);
    freeReplyObject(r);
}

Test(slot, a_partial_map_says_what_it_serves) {
    redisReply *r = resp("*1\r\n*3\r\n:100\r\n:199\r\n*2\r\n$4\r\nhost\r\n:1\r\n");
    tc__slot_map_t m;
    cr_assert_eq(tc__slot_map_parse(r, NULL, &m, NULL, 0), TC__SLOT_PARSED);
    cr_assert_eq(m.served, 100u);
    cr_assert_null(tc__slot_map_owner(&m, 99));
    cr_assert_not_null(tc__slot_map_owner(&m, 150));
    cr_assert_null(tc__slot_map_owner(&m, 200));
    tc__slot_map_free(&m);
    freeReplyObject(r);
}

/* Each hostile reply is refused whole: no node, no slot served, and a cause. */
Test(slot, hostile_replies_are_refused_with_a_cause) {
    static const struct {
        const char *resp, *cause;
    } cases[] = {
        {"-ERR This instance has cluster support disabled\r\n", "not an array"},
        {":5\r\n", "not an array"},
        {"*1\r\n:1\r\n", "not [start, end, master"},
        {"*1\r\n*2\r\n:0\r\n:1\r\n", "not [start, end, master"},
        {"*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n", "not [start, end, master"},
        {"*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n", "outside 0..16383"},
        {"*1\r\n*3\r\n:-1\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n", "outside 0..16383"},
        {"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", "outside 0..16383"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n", "port is outside"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:65536\r\n", "port is outside"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n", "host is not a string"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n", "not [host, port"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n$1\r\nh\r\n", "not [host, port"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na\0b\r\n:1\r\n", "NUL byte"},
        {"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:1\r\n", "no seed address"},
        {"*2\r\n*3\r\n:0\r\n:9\r\n*2\r\n$1\r\na\r\n:1\r\n"
         "*3\r\n:9\r\n:20\r\n*2\r\n$1\r\nb\r\n:1\r\n",
         "claimed twice"},
        {"*2\r\n*4\r\n:0\r\n:9\r\n*2\r\n$1\r\na\r\n:1\r\n*2\r\n$1\r\nb\r\n:1\r\n"
         "*3\r\n:10\r\n:20\r\n*2\r\n$1\r\nb\r\n:1\r\n",
         "another's replica"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redisReader *rd = redisReaderCreate();
        const char *t = cases[i].resp;
        size_t len = strlen(t);
        if (strstr(t, "$3\r\na")) /* the NUL case: feed its real length */
            len = strlen(t) + 1 + strlen(t + strlen(t) + 1);
        cr_assert_eq(redisReaderFeed(rd, t, len), REDIS_OK);
        void *r = NULL;
        cr_assert_eq(redisReaderGetReply(rd, &r), REDIS_OK);
        cr_assert_not_null(r, "case %zu: incomplete RESP", i);
        redisReaderFree(rd);
        tc__slot_map_t m;
        char why[160] = "";
        cr_assert_eq(tc__slot_map_parse(r, NULL, &m, why, sizeof why), TC__SLOT_MALFORMED,
                     "case %zu accepted", i);
        cr_assert(strstr(why, cases[i].cause), "case %zu: cause \"%s\", want \"%s\"", i, why,
                  cases[i].cause);
        cr_assert_eq(m.served, 0u);
        cr_assert_eq(m.nnodes, 0u);
        cr_assert_null(tc__slot_map_owner(&m, 0));
        tc__slot_map_free(&m);
        freeReplyObject(r);
    }
    tc__slot_map_t m;
    cr_assert_eq(tc__slot_map_parse(NULL, NULL, &m, NULL, 0), TC__SLOT_MALFORMED);
    cr_assert_eq(tc__slot_map_parse(NULL, NULL, NULL, NULL, 0), TC__SLOT_MALFORMED);
}

Test(slot, a_long_host_is_refused) {
    char host[300];
    memset(host, 'h', sizeof host);
    char text[512];
    int n = snprintf(text, sizeof text, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$%zu\r\n%.*s\r\n:1\r\n",
                     sizeof host, (int)sizeof host, host);
    cr_assert_lt(n, (int)sizeof text);
    redisReply *r = resp(text);
    tc__slot_map_t m;
    char why[160] = "";
    cr_assert_eq(tc__slot_map_parse(r, NULL, &m, why, sizeof why), TC__SLOT_MALFORMED);
    cr_assert(strstr(why, "too long"), "%s", why);
    tc__slot_map_free(&m);
    freeReplyObject(r);
}

Test(slot, redirections) {
    tc__redirect_t d;
    cr_assert_eq(tc__redirect_parse(S("MOVED 3999 127.0.0.1:6381"), &d), TC__REDIRECT_MOVED);
    cr_assert(d.slot == 3999 && d.port == 6381 && strcmp(d.host, "127.0.0.1") == 0);
    cr_assert_eq(tc__redirect_parse(S("ASK 0 cache-2.internal:7000"), &d), TC__REDIRECT_ASK);
    cr_assert(d.slot == 0 && d.port == 7000 && strcmp(d.host, "cache-2.internal") == 0);
    cr_assert_eq(tc__redirect_parse(S("MOVED 16383 2001:db8::1:7000"), &d), TC__REDIRECT_MOVED);
    cr_assert(d.port == 7000 && strcmp(d.host, "2001:db8::1") == 0, "%s", d.host);
    static const char *const bad[] = {"ERR unknown command",
                                      "MOVED",
                                      "MOVED 16384 h:1",
                                      "MOVED x h:1",
                                      "MOVED 1 h",
                                      "MOVED 1 h:0",
                                      "MOVED 1 h:65536",
                                      "MOVED 1 :1",
                                      "MOVED 1 h:1x",
                                      "ASK 1h:1",
                                      "MOVED 1  h:1x",
                                      "CLUSTERDOWN The cluster is down",
                                      "TRYAGAIN Multiple keys"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(tc__redirect_parse(bad[i], strlen(bad[i]), &d), TC__REDIRECT_NONE, "%s",
                     bad[i]);
    cr_assert_eq(tc__redirect_parse("MOVED 1 h\0:1", 12, &d), TC__REDIRECT_NONE);
    char long_host[400];
    int n = snprintf(long_host, sizeof long_host, "MOVED 1 %0300d:1", 0);
    cr_assert_eq(tc__redirect_parse(long_host, (size_t)n, &d), TC__REDIRECT_NONE);
    cr_assert_eq(tc__redirect_parse(NULL, 0, &d), TC__REDIRECT_NONE);
}
