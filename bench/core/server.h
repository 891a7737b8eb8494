/*
 * server.h - the throwaway redis-server a bare `tiercache-bench` runs against.
 *
 * redis-server from PATH, started in a fresh mkdtemp() directory, listening only on a
 * unix socket there (port 0: no TCP at all), with persistence off, so it can neither
 * collide with nor be reached by anything else on the machine. It dies with the bench
 * (PR_SET_PDEATHSIG) even if the bench is killed, and stop() removes the directory.
 */
#ifndef TCB_SERVER_H
#define TCB_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct tcb_server {
    pid_t pid;
    char dir[64];
    char sock[128];
    char url[160]; /* unix:///.../redis.sock */
    int port;      /* a cluster node's loopback TCP port; 0: unix socket only */
} tcb_server_t;

/* Start and wait (up to 5 s) until it answers PING. 0, or -1 with a message in err (the
 * message says how to install redis-server when it is not on PATH). */
int tcb_server_start(tcb_server_t *s, char *err, size_t errlen);
/* The same, as a Redis Cluster node (cluster-enabled, no slots yet) that also listens on
 * 127.0.0.1:port (its cluster bus on port + 10000). */
int tcb_server_start_cluster_node(tcb_server_t *s, int port, char *err, size_t errlen);
/* A loopback port free now, with port + 10000 free too (a cluster node's bus), or 0. */
int tcb_server_free_port(void);
/* SIGTERM, wait (SIGKILL after 3 s), remove the directory. Safe to call twice. */
void tcb_server_stop(tcb_server_t *s);

#endif
