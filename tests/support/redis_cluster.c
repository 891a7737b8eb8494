/*
 * redis_cluster.c - start a real Redis Cluster for a test (redis_cluster.h).
 *
 * The nodes are ordinary test servers with cluster-enabled on; redis-cli does the joining
 * (CLUSTER MEET, slot assignment, CLUSTER REPLICATE), as an operator would, so the tests
 * see the cluster a deployment has and not one we assembled by hand. Joining is
 * eventually consistent: a node may report ok before another has learnt the whole map, so
 * "up" means every node says cluster_state:ok and cluster_slots_ok:16384.
 */
#include "redis_cluster.h"

#include "peer.h"
#include "slot.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NODES 16

struct tc_test_cluster {
    int n, replicas; /* nodes, and how many of them are replicas once joined */
    tc_test_redis_t *node[MAX_NODES];
    char seeds[MAX_NODES * 24];
};

/* redis-cli --cluster create ...: 0 when it exited 0. Its output goes to a file in the
 * first node's directory, printed when it fails. */
static int run_create(tc_test_cluster_t *cl, int replicas) {
    char addr[MAX_NODES][24], reps[8], log[256];
    const char *argv[MAX_NODES + 8];
    int n = 0;
    argv[n++] = "redis-cli";
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int i = 0; i < cl->n; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", tc_test_redis_port(cl->node[i]));
        argv[n++] = addr[i];
    }
    snprintf(reps, sizeof reps, "%d", replicas);
    argv[n++] = "--cluster-replicas";
    argv[n++] = reps;
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    snprintf(log, sizeof log, "%s/cluster-create.log", tc_test_redis_dir(cl->node[0]));
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], (char **)argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fprintf(stderr, "redis-cli: %s", line);
    if (f)
        fclose(f);
    return -1;
}

/* CLUSTER NODES as this node sees it: every node known, connected, none failing, and the
 * expected number of replicas (they show in CLUSTER SLOTS only then). */
static int nodes_settled(redisContext *c, const tc_test_cluster_t *cl) {
    redisReply *rep = redisCommand(c, "CLUSTER NODES");
    int ok = rep && rep->type == REDIS_REPLY_STRING;
    int lines = 0, replicas = 0;
    for (const char *l = ok ? rep->str : NULL; l && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        char line[1024];
        if (len >= sizeof line || len == 0)
            continue;
        memcpy(line, l, len);
        line[len] = '\0';
        lines++;
        replicas += strstr(line, "slave") != NULL;
        if (strstr(line, "fail") || strstr(line, "handshake") || strstr(line, "noaddr") ||
            strstr(line, "disconnected"))
            ok = 0;
    }
    if (rep)
        freeReplyObject(rep);
    return ok && lines == cl->n && replicas == cl->replicas;
}

/* Does this node say the cluster is up with every slot served? */
static int node_ok(const tc_test_cluster_t *cl, tc_test_redis_t *r) {
    if (tc_test_redis_pid(r) == 0)
        return 1; /* killed by the test: not asked */
    redisContext *c = tc_test_redis_connect(r);
    if (!c)
        return 0;
    redisReply *rep = redisCommand(c, "CLUSTER INFO");
    int ok = rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, "cluster_state:ok") &&
             strstr(rep->str, "cluster_slots_ok:16384");
    if (rep)
        freeReplyObject(rep);
    ok = ok && nodes_settled(c, cl);
    redisFree(c);
    return ok;
}

/* One CLUSTER NODES line's fields: id, whether it is a master, and whether it serves
 * slots (a master line with a 9th field). */
typedef struct node_line {
    char id[48];
    int master, has_slots;
} node_line_t;

static int read_nodes(redisContext *c, node_line_t *out, int cap) {
    redisReply *rep = redisCommand(c, "CLUSTER NODES");
    int n = 0;
    if (!rep || rep->type != REDIS_REPLY_STRING) {
        if (rep)
            freeReplyObject(rep);
        return 0;
    }
    char *save = NULL;
    for (char *l = strtok_r(rep->str, "\n", &save); l && n < cap;
         l = strtok_r(NULL, "\n", &save)) {
        char id[48], addr[64], flags[64], master[48];
        int fields = sscanf(l, "%47s %63s %63s %47s", id, addr, flags, master);
        if (fields < 4)
            continue;
        node_line_t *x = &out[n++];
        memset(x, 0, sizeof *x);
        strcpy(x->id, id);
        x->master = strstr(flags, "master") != NULL;
        int spaces = 0;
        for (const char *p = l; *p; p++)
            spaces += *p == ' ';
        x->has_slots = x->master && spaces >= 8;
    }
    freeReplyObject(rep);
    return n;
}

/* redis-cli may give up on CLUSTER REPLICATE before a node has heard of its master (seen on
 * a slow machine: a replica left as an empty master). Make each slotless master a replica
 * of a master that has fewer than it should. */
static void repair_replicas(const tc_test_cluster_t *cl) {
    if (cl->replicas == 0)
        return;
    int per = cl->replicas / (cl->n - cl->replicas);
    for (int i = 0; i < cl->n; i++) {
        redisContext *c = tc_test_redis_connect(cl->node[i]);
        if (!c)
            continue;
        redisReply *me = redisCommand(c, "CLUSTER MYID");
        node_line_t lines[MAX_NODES];
        int n = read_nodes(c, lines, MAX_NODES);
        node_line_t *self = NULL;
        for (int j = 0; me && me->type == REDIS_REPLY_STRING && j < n; j++)
            if (strcmp(lines[j].id, me->str) == 0)
                self = &lines[j];
        if (self && self->master && !self->has_slots) {
            /* count replicas per master from the other nodes' "slave <master-id>" lines */
            redisReply *all = redisCommand(c, "CLUSTER NODES");
            for (int j = 0; all && all->type == REDIS_REPLY_STRING && j < n; j++) {
                if (!lines[j].has_slots)
                    continue;
                int count = 0;
                for (const char *p = all->str; (p = strstr(p, lines[j].id)); p++)
                    count++;
                if (count - 1 < per) { /* its own line, then one per replica */
                    redisReply *r = redisCommand(c, "CLUSTER REPLICATE %s", lines[j].id);
                    if (r)
                        freeReplyObject(r);
                    break;
                }
            }
            if (all)
                freeReplyObject(all);
        }
        if (me)
            freeReplyObject(me);
        redisFree(c);
    }
}

/* Every replica has synced with its master (ROLE: "connected"), which a failover needs.
 * (Other nodes list a replica in CLUSTER SLOTS only once gossip has carried its offset,
 * seconds later: tests find replicas with tc_test_cluster_master_of instead.) */
static int replicas_synced(const tc_test_cluster_t *cl) {
    int synced = 0;
    for (int i = 0; i < cl->n; i++) {
        redisContext *c = tc_test_redis_connect(cl->node[i]);
        redisReply *r = c ? redisCommand(c, "ROLE") : NULL;
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 4 &&
            strcmp(r->element[0]->str, "slave") == 0 &&
            strcmp(r->element[3]->str, "connected") == 0)
            synced++;
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
    }
    return synced == cl->replicas;
}

int tc_test_cluster_master_of(const tc_test_cluster_t *cl, int i) {
    redisContext *c = tc_test_redis_connect(cl->node[i]);
    redisReply *r = c ? redisCommand(c, "ROLE") : NULL;
    int port = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
        strcmp(r->element[0]->str, "slave") == 0 && r->element[2]->type == REDIS_REPLY_INTEGER)
        port = (int)r->element[2]->integer;
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return port;
}

int tc_test_cluster_wait_ok(const tc_test_cluster_t *cl, uint32_t timeout_ms) {
    uint64_t end = tc_test_now_ms() + timeout_ms;
    do {
        int all = 1;
        for (int i = 0; i < cl->n && all; i++)
            all = node_ok(cl, cl->node[i]);
        if (all)
            return 1;
        repair_replicas(cl);
        tc_test_sleep_ms(100);
    } while (tc_test_now_ms() < end);
    return 0;
}

tc_test_cluster_t *tc_test_cluster_start(int masters, int replicas_per_master) {
    int n = masters * (1 + replicas_per_master);
    cr_assert(masters >= 3 && replicas_per_master >= 0 && n <= MAX_NODES,
              "tc_test_cluster_start: %d masters x %d replicas", masters, replicas_per_master);
    tc_test_cluster_t *cl = calloc(1, sizeof *cl);
    cr_assert_not_null(cl);
    cl->replicas = masters * replicas_per_master;
    tc_test_redis_opts_t o = {.cluster = 1};
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        cl->node[i] = tc_test_redis_start(&o);
        cl->n = i + 1;
        used += (size_t)snprintf(cl->seeds + used, sizeof cl->seeds - used, "%s127.0.0.1:%d",
                                 i ? "," : "", tc_test_redis_port(cl->node[i]));
    }
    if (run_create(cl, replicas_per_master) != 0) {
        tc_test_cluster_stop(cl);
        cr_assert_fail("tc_test_cluster_start: redis-cli --cluster create failed");
    }
    int synced = tc_test_cluster_wait_ok(cl, 20000);
    for (uint64_t end = tc_test_now_ms() + 20000; synced && !replicas_synced(cl);) {
        synced = tc_test_now_ms() < end;
        tc_test_sleep_ms(100);
    }
    if (!synced) {
        tc_test_cluster_stop(cl);
        cr_assert_fail("tc_test_cluster_start: the cluster did not come up");
    }
    return cl;
}

int tc_test_cluster_nodes(const tc_test_cluster_t *cl) {
    return cl->n;
}

tc_test_redis_t *tc_test_cluster_node(const tc_test_cluster_t *cl, int i) {
    return i >= 0 && i < cl->n ? cl->node[i] : NULL;
}

const char *tc_test_cluster_seeds(const tc_test_cluster_t *cl) {
    return cl->seeds;
}

void tc_test_cluster_stop(tc_test_cluster_t *cl) {
    if (!cl)
        return;
    for (int i = 0; i < cl->n; i++)
        tc_test_redis_stop(cl->node[i]);
    free(cl);
}

int tc_test_cluster_master_of_slot(const tc_test_cluster_t *cl, unsigned slot) {
    redisContext *c = NULL;
    for (int i = 0; i < cl->n && !c; i++) /* a live node's view */
        if (tc_test_redis_pid(cl->node[i]))
            c = tc_test_redis_connect(cl->node[i]);
    cr_assert_not_null(c, "no cluster node is running");
    redisReply *rep = redisCommand(c, "CLUSTER SLOTS");
    tc__slot_map_t m;
    char why[128];
    cr_assert_eq(tc__slot_map_parse(rep, "127.0.0.1", &m, why, sizeof why), 0, "%s", why);
    const tc__slot_node_t *o = tc__slot_map_owner(&m, slot);
    cr_assert_not_null(o, "slot %u has no master", slot);
    int found = -1;
    for (int i = 0; i < cl->n; i++)
        if (tc_test_redis_port(cl->node[i]) == o->port)
            found = i;
    tc__slot_map_free(&m);
    freeReplyObject(rep);
    redisFree(c);
    cr_assert_geq(found, 0);
    return found;
}

void tc_test_cluster_node_id(const tc_test_cluster_t *cl, int i, char id[64]) {
    redisContext *c = tc_test_redis_connect(cl->node[i]);
    redisReply *r = redisCommand(c, "CLUSTER MYID");
    cr_assert(r && r->type == REDIS_REPLY_STRING && r->len < 64);
    memcpy(id, r->str, r->len + 1);
    freeReplyObject(r);
    redisFree(c);
}

int tc_test_cluster_reshard(const tc_test_cluster_t *cl, int from, int to, int slots) {
    char from_id[64], to_id[64], seed[32], n[16];
    tc_test_cluster_node_id(cl, from, from_id);
    tc_test_cluster_node_id(cl, to, to_id);
    snprintf(seed, sizeof seed, "127.0.0.1:%d", tc_test_redis_port(cl->node[to]));
    snprintf(n, sizeof n, "%d", slots);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *devnull = freopen("/dev/null", "w", stdout);
        (void)devnull;
        execlp("redis-cli", "redis-cli", "--cluster", "reshard", seed, "--cluster-from",
               from_id, "--cluster-to", to_id, "--cluster-slots", n, "--cluster-yes",
               "--cluster-pipeline", "10", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
