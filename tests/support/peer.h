/*
 * peer.h - a second tiercache process for the end-to-end suites, plus the few helpers
 * (configuration, timing, polling) those suites share.
 *
 * A peer is the tc-peer program (tests/peer/tc_peer.c) started with fork + execve and
 * driven over a socketpair wired to its stdin and stdout: one command line in, one reply
 * line out. Keys and values travel hex-encoded, an empty byte string as "-", so binary
 * data (NUL, CRLF, spaces) survives the line protocol. The peer opens its own cache on
 * the given Redis URL, key prefix and channel, so it shares L2 and the invalidation
 * channel with the test process while keeping its own L1: a real second process.
 *
 * Invariants: a peer never outlives the test process (PR_SET_PDEATHSIG); every read of a
 * reply is bounded by a timeout, and a missing reply fails the calling test with the
 * command that went unanswered instead of hanging it. Start and stop peers from the
 * test's main thread (the death signal is tied to the thread that forked).
 */
#ifndef TC_TEST_PEER_H
#define TC_TEST_PEER_H

#include "tiercache.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sanitizer builds run several times slower: bounded-latency assertions scale by this. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TC_TEST_SLOW 5
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TC_TEST_SLOW 5
#endif
#endif
#ifndef TC_TEST_SLOW
#define TC_TEST_SLOW 1
#endif

typedef struct tc_test_peer tc_test_peer_t;

/*
 * Start tc-peer on url with key_prefix and channel, and wait for its cache to open.
 * env: NULL or a NULL-terminated list of "NAME=VALUE" added to the peer's environment
 * (tc-peer reads config overrides from TC_PEER_* variables, e.g. TC_PEER_COMMAND_TIMEOUT).
 * Fails the calling test when the peer cannot start or its tc_open fails.
 */
tc_test_peer_t *tc_test_peer_start(const char *url, const char *prefix, const char *channel,
                                   const char *const *env);
/*
 * The same for another program speaking tc-peer's line protocol (e.g. wb-peer): path is
 * run with the arguments args (NULL-terminated, may be NULL) and env as above; it must
 * print "ready 0" once open.
 */
tc_test_peer_t *tc_test_peer_start_prog(const char *path, const char *const *args,
                                        const char *const *env);
/* The peer's process id (to tell its work from ours in a shared record). */
pid_t tc_test_peer_pid(const tc_test_peer_t *p);
/* Send one command line (printf format, no newline). Fails the test if the peer is gone. */
void tc_test_peer_send(tc_test_peer_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The next reply line (without newline), valid until the next call on p. Fails the test
 * when no line arrives within timeout_ms. */
const char *tc_test_peer_recv(tc_test_peer_t *p, int timeout_ms);
/* send + recv with a default timeout. */
const char *tc_test_peer_cmd(tc_test_peer_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Ask the peer to quit, wait briefly, then SIGKILL; reap and free. NULL is a no-op. */
void tc_test_peer_stop(tc_test_peer_t *p);
/* SIGKILL the peer now, mid-command if need be, and reap it: a process dying with its
 * locks held. Afterwards only tc_test_peer_stop (which then just frees) may be called. */
void tc_test_peer_kill(tc_test_peer_t *p);

/* Poll the peer's get until it serves exactly val (val NULL: a miss). Returns the
 * milliseconds it took, or -1 when timeout_ms passed first. What another process learns
 * from the channel arrives within a message delay: wait for it with this, never assert it
 * at once. */
long tc_test_peer_wait_get(tc_test_peer_t *p, const void *key, size_t klen, const void *val,
                           size_t vlen, unsigned timeout_ms);

/* Hex helpers of the line protocol. tc_test_hex writes "-" for len 0; out needs
 * 2 * len + 2 bytes. tc_test_unhex returns 0 and *len, or -1 on bad input/overflow. */
void tc_test_hex(const void *buf, size_t len, char *out);
int tc_test_unhex(const char *hex, void *out, size_t cap, size_t *len);
/* Value of `name=` in a `stats ...` reply; UINT64_MAX when absent. */
uint64_t tc_test_stat(const char *line, const char *name);

/* Precise monotonic milliseconds, and a sleep that survives signals. */
uint64_t tc_test_now_ms(void);
void tc_test_sleep_ms(unsigned ms);
/* Poll tc_stats until listener_connected == want; returns 1 if reached within timeout_ms. */
int tc_test_wait_listener(tc_cache_t *c, int want, unsigned timeout_ms);
/* Poll tc_get until it returns exactly val (val NULL: until TC_ENOTFOUND). Returns the
 * milliseconds it took, or -1 when timeout_ms passed first. */
long tc_test_wait_get(tc_cache_t *c, const void *key, size_t klen, const void *val, size_t vlen,
                      unsigned timeout_ms);

/* Poll until c holds key = val in its L1, proven by an L1 hit right after a read that
 * served val; returns 1, or 0 when timeout_ms passed first. */
int tc_test_hold_locally(tc_cache_t *c, const void *key, size_t klen, const void *val,
                         size_t vlen, unsigned timeout_ms);

/* tc_get into buf (NUL-terminated, "" when absent); fails the test on any code but 0 and
 * TC_ENOTFOUND, which it returns. */
int tc_test_get_str(tc_cache_t *c, const void *key, size_t klen, char *buf, size_t cap);
/* Fail the test unless c reads val now (val NULL: absent); who names the reader. */
void tc_test_expect_value(tc_cache_t *c, const void *key, size_t klen, const char *val,
                          const char *who);
/* Poll until c reads val (NULL: absent) within timeout_ms, then once more (it stays);
 * fails the test with what c reads otherwise. */
void tc_test_wait_value(tc_cache_t *c, const void *key, size_t klen, const char *val,
                        const char *who, unsigned timeout_ms);

/* The suites' common configuration: url (NULL = L1-only), a private prefix and channel,
 * and small timeouts (connect 200 ms, command 100 ms, breaker cooldown 200 ms, listener
 * ping 100 ms) so that faults resolve fast. */
void tc_test_config(tc_config_t *cfg, const char *url, const char *prefix, const char *channel);
/* tc_open that fails the test on error and, with a URL, waits for the listener to
 * subscribe (so values read from L2 may be kept in L1). */
tc_cache_t *tc_test_open(const tc_config_t *cfg);

#endif
