/*
 * sentinel.h - finding the master of a Redis managed by Sentinel, and reading Sentinel's
 * announcement that it changed (sentinel.c).
 *
 * The client side of Sentinel, as its documentation describes it: ask each sentinel in
 * turn for the master's address (SENTINEL get-master-addr-by-name), then ask that server
 * itself (ROLE) whether it is a master, since a sentinel that has not yet heard of a
 * failover names the old one. After a failover Sentinel publishes +switch-master on its
 * own pub/sub; the listener that follows it parses the message here.
 *
 * Threading: discovery has no state and may be called from any thread; a watch is started
 * and stopped by one owner.
 */
#ifndef TC_SENTINEL_H
#define TC_SENTINEL_H

#include "config.h"
#include "endpoint.h"
#include "log.h"

#include <stddef.h>
#include <stdint.h>

#define TC__SENTINEL_HOST_MAX 255u

typedef struct tc__sentinel_opts {
    const char *sentinels;       /* "host:port[,host:port...]" */
    const char *master_name;     /* as in "sentinel monitor <name> ..." */
    const char *user, *password; /* the master's credentials (ROLE), or NULL */
    const char *sentinel_user, *sentinel_password; /* the sentinels' own AUTH, or NULL */
    uint32_t connect_timeout_ms, command_timeout_ms;
    tc__log_t *log; /* the watch says when no sentinel takes its subscription; may be NULL */
} tc__sentinel_opts_t;

typedef struct tc__sentinel_addr {
    char host[TC__SENTINEL_HOST_MAX + 1];
    int port;
} tc__sentinel_addr_t;

/* The options for a redis+sentinel:// endpoint (its strings borrowed; no log). */
tc__sentinel_opts_t tc__sentinel_opts_of(const tc__endpoint_t *ep, uint32_t connect_timeout_ms,
                                         uint32_t command_timeout_ms);

/* The current master. 0; TC_ECONFIG (the list or the name); TC_ENOTFOUND (the sentinels
 * that answered know no master of that name); TC_EUNAVAILABLE (no sentinel answered, or
 * the master each named did not say it is one: err lists what each said). */
int tc__sentinel_find_master(const tc__sentinel_opts_t *o, tc__sentinel_addr_t *out,
                             tc_error_t *err);

/* A +switch-master message ("<name> <old-ip> <old-port> <new-ip> <new-port>") about
 * master_name: 0 and the new address, or -1 (another master's, or malformed). */
int tc__sentinel_parse_switch(const char *msg, size_t len, const char *master_name,
                              tc__sentinel_addr_t *now);

/* Following failovers as Sentinel announces them: a thread subscribed to +switch-master on
 * one sentinel at a time (the next one when it fails or falls silent), calling fn with the
 * new address of master_name from that thread. fn must be quick and must not stop the
 * watch. 0, TC_EINVAL, TC_ENOMEM, TC_EINTERNAL (no thread). */
typedef void (*tc__sentinel_switch_fn)(void *arg, const tc__sentinel_addr_t *now);
typedef struct tc__sentinel_watch tc__sentinel_watch_t;
int tc__sentinel_watch_start(const tc__sentinel_opts_t *o, tc__sentinel_switch_fn fn, void *arg,
                             tc__sentinel_watch_t **out);
/* Stop and join the thread (it wakes at once). NULL ok. */
void tc__sentinel_watch_stop(tc__sentinel_watch_t *w);
/* Switches announced so far (tests, stats). */
uint64_t tc__sentinel_watch_switches(tc__sentinel_watch_t *w);

#endif
