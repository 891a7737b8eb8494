/*
 * redis_info.h - what a benchmark cost Redis, from two INFO snapshots.
 *
 * "Redis commands per operation" and "network bytes per operation" are deltas of the
 * server's own counters (INFO stats: total_commands_processed, total_net_input_bytes,
 * total_net_output_bytes; INFO commandstats: calls per command) taken right before and
 * right after a measured phase. They count every client of that server, so on a shared
 * --redis they include other traffic; the throwaway server has none.
 * The first snapshot's own INFO is inside the window; tcb_info_delta() takes it out.
 */
#ifndef TCB_REDIS_INFO_H
#define TCB_REDIS_INFO_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define TCB_INFO_MAX_CMDS 48

typedef struct tcb_cmdstat {
    char name[40];
    uint64_t calls;
} tcb_cmdstat_t;

typedef struct tcb_info {
    uint64_t commands; /* total_commands_processed */
    uint64_t net_in;   /* total_net_input_bytes */
    uint64_t net_out;  /* total_net_output_bytes (pub/sub deliveries included) */
    size_t ncmds;
    tcb_cmdstat_t cmds[TCB_INFO_MAX_CMDS];
    char version[32];   /* redis_version, when the server section was present */
    uint64_t req_bytes; /* size of the INFO request and reply that produced this */
} tcb_info_t;

/* Parse INFO text (any sections). Returns 0, or -1 when no stats counters were found. */
int tcb_info_parse(const char *text, size_t len, tcb_info_t *out);
/* INFO server stats commandstats on c. 0 or -1. */
int tcb_info_fetch(redisContext *c, tcb_info_t *out);
/* out = after - before, minus the before snapshot's own INFO command and bytes. */
void tcb_info_delta(const tcb_info_t *before, const tcb_info_t *after, tcb_info_t *out);

/* dst += src (counters and per-command calls, matched by name): sums of several windows. */
void tcb_info_add(tcb_info_t *dst, const tcb_info_t *src);

#endif
