/*
 * redis_server.h - a real, private redis-server per test.
 *
 * Starts `redis-server` from PATH with persistence off, on a unix socket inside a fresh
 * mkdtemp() directory (or on a free 127.0.0.1 port), waits until it answers PING, and
 * gives the test the means to kill, restart, pause (SIGSTOP) and resume it, and to run
 * raw commands on it behind a cache's back. Nothing depends on a system Redis; every path
 * and port is private to the test.
 * Failures to start abort the calling test with a Criterion assertion message.
 */
#ifndef TC_TEST_REDIS_SERVER_H
#define TC_TEST_REDIS_SERVER_H

#include <hiredis/hiredis.h>
#include <sys/types.h>

typedef struct tc_test_redis tc_test_redis_t;

typedef struct tc_test_redis_opts {
    int tcp;              /* 0: unix socket (default); 1: free loopback TCP port */
    const char *password; /* requirepass, or NULL */
    const char *acl_user; /* with password: an ACL user with that password (all perms) */
    int cluster;          /* cluster-enabled (implies tcp), not yet in a cluster: see
                             redis_cluster.h */
    int replicaof_port;   /* a replica of 127.0.0.1:replicaof_port (implies tcp) */
    int sentinel_of_port; /* a Sentinel (implies tcp) monitoring 127.0.0.1:sentinel_of_port
                             as TC_TEST_SENTINEL_MASTER: see redis_sentinel.h; password
                             is then the sentinel's own requirepass */
} tc_test_redis_opts_t;

#define TC_TEST_SENTINEL_MASTER "tcmaster"

/* Start a server; opts may be NULL (unix socket, no auth). Never returns NULL. */
tc_test_redis_t *tc_test_redis_start(const tc_test_redis_opts_t *opts);
/* A URL tc_config_t.redis_url accepts, including credentials when set. */
const char *tc_test_redis_url(const tc_test_redis_t *r);
/* Direct hiredis connection (authenticated) for assertions; caller redisFree()s it.
 * NULL when the server cannot be reached or refuses the credentials. */
redisContext *tc_test_redis_connect(const tc_test_redis_t *r);
/* One command on a fresh connection (as tc_test_redis_connect), formatted like
 * redisCommand (%s, %b with a length, ...). Fails the calling test when the server cannot
 * be reached, gives no reply or replies with an error; otherwise returns the reply, which
 * the caller freeReplyObject()s. For the suites' raw reads and writes behind a cache's back;
 * a test that needs one connection for several commands uses tc_test_redis_connect. */
redisReply *tc_test_redis_cmd(const tc_test_redis_t *r, const char *fmt, ...);
/* tc_test_redis_cmd for a command whose reply does not matter (it is freed). */
void tc_test_redis_do(const tc_test_redis_t *r, const char *fmt, ...);
pid_t tc_test_redis_pid(const tc_test_redis_t *r); /* 0 after kill, until restart */
int tc_test_redis_port(const tc_test_redis_t *r);  /* TCP port; 0 for a unix server */
/* The unix socket every server also listens on (TCP ones too), and its private dir. */
const char *tc_test_redis_socket_path(const tc_test_redis_t *r);
const char *tc_test_redis_dir(const tc_test_redis_t *r);

void tc_test_redis_kill(tc_test_redis_t *r);    /* SIGKILL and reap */
void tc_test_redis_restart(tc_test_redis_t *r); /* start again on the same socket/port */
void tc_test_redis_pause(tc_test_redis_t *r);   /* SIGSTOP */
void tc_test_redis_resume(tc_test_redis_t *r);  /* SIGCONT */
/* Stop (SIGTERM, then SIGKILL after 2 s), reap, remove the directory, free. NULL ok. */
void tc_test_redis_stop(tc_test_redis_t *r);

#endif
