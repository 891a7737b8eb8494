/*
 * proxy.h - a TCP forwarding proxy in front of a Redis port, for network faults that a
 * signal to redis-server cannot produce.
 *
 * The proxy listens on a free 127.0.0.1 port and forwards every connection to the upstream
 * port byte for byte, on one thread of the test process (poll, no external tools). Clients
 * (tiercache caches, through redis://127.0.0.1:<proxy port>) cannot tell it is there until
 * the test makes the network misbehave:
 *
 *   cut_subscribers  every connection whose client sent SUBSCRIBE so far goes silent in
 *                    both directions; neither socket is closed, so no FIN or RST reaches
 *                    anyone: a pub/sub link that died without a trace. Its bytes stay unread
 *                    in the kernel. Such connections stay cut for good; close_cut closes
 *                    them later (the peers then see the close, as after a long timeout).
 *   cut_all / heal   the whole network goes silent (nothing is read, written or accepted;
 *                    new connections wait in the listen backlog), then comes back: what was
 *                    queued meanwhile is delivered late, as TCP does after a partition, and
 *                    new connections are accepted and forwarded again.
 *   throttle         a slow link: bytes from Redis to its clients flow at most at a given
 *                    rate (all connections together), so a big reply takes long to arrive
 *                    while the link stays alive.
 *
 * Every call returns once the proxy thread has applied it, so a fault is in effect when the
 * call returns. Start, drive and stop one proxy from one thread.
 */
#ifndef TC_TEST_PROXY_H
#define TC_TEST_PROXY_H

typedef struct tc_test_proxy tc_test_proxy_t;

/* Listen on a free loopback port and forward to 127.0.0.1:upstream_port. NULL on failure
 * (errno-style detail on stderr). */
tc_test_proxy_t *tc_test_proxy_start(int upstream_port);
/* The port clients connect to. */
int tc_test_proxy_port(const tc_test_proxy_t *p);
/* Silence every live connection that has sent SUBSCRIBE (case-insensitive); returns how
 * many were cut. */
unsigned tc_test_proxy_cut_subscribers(tc_test_proxy_t *p);
/* Close the connections cut by cut_subscribers; returns how many. */
unsigned tc_test_proxy_close_cut(tc_test_proxy_t *p);
/* Silence everything / bring it back. */
void tc_test_proxy_cut_all(tc_test_proxy_t *p);
void tc_test_proxy_heal(tc_test_proxy_t *p);
/* Limit Redis-to-client bytes to bytes_per_sec in total; 0 lifts the limit. */
void tc_test_proxy_throttle(tc_test_proxy_t *p, unsigned long bytes_per_sec);
/* Connections accepted since start. */
unsigned long tc_test_proxy_accepted(tc_test_proxy_t *p);
/* Stop the thread, close every socket, free. NULL is a no-op. */
void tc_test_proxy_stop(tc_test_proxy_t *p);

#endif
