/*
 * wb_peer.c - wb-peer, a second process for the write-strategy tests (tests/test_write.c):
 * a tiercache cache whose writer is the SQLite source of wb_source.c, driven over the same
 * line protocol as tc-peer (tests/support/peer.h starts it).
 *
 *   wb-peer REDIS_URL KEY_PREFIX CHANNEL DB_PATH
 *
 * It opens the database and the cache (small timeouts as tc-peer; WB_PEER_* environment
 * variables, read with tc_config_from_env, override any field, e.g.
 * WB_PEER_WRITE_BEHIND_LEASE=1000; WBP_SLOW_MS makes the writer sleep that long after each
 * commit, so a batch is written but not yet acknowledged for a while, WBP_PRECOMMIT_MS that
 * long inside its transaction, and WBP_STATE names a file whose first byte the writer keeps
 * at its state, see wb_source.h), prints "ready RC",
 * then answers one line per command:
 *
 *   st HEXKEY HEXVAL     -> ok RC       tc_set_through
 *   dt HEXKEY            -> ok RC       tc_del_through
 *   sb HEXKEY HEXVAL     -> ok RC       tc_set_behind
 *   db HEXKEY            -> ok RC       tc_del_behind
 *   get HEXKEY           -> val HEXVAL | miss | err RC
 *   flush MS             -> ok RC       tc_flush
 *   stats                -> stats name=value ... (the write-strategy fields of tc_stats_t)
 *   quit                 -> (tc_close, which drains this process's flusher, then exits)
 *   anything else        -> bad COMMAND
 *
 * Keys and values are hex ("-" for empty). Its writer records every write it applies in
 * the database's history table with this process's pid, so a test can tell which process
 * wrote what, also after this one was killed.
 */
#include "peer_line.h"
#include "tiercache.h"
#include "wb_source.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static tc_cache_t *cache;
static unsigned char keybuf[PEER_MAX_BYTES], valbuf[PEER_MAX_BYTES];

/* st / sb: a key and a value. */
static void cmd_write(const char *cmd, const char *hk, const char *hv) {
    long klen = peer_unhex(hk, keybuf), vlen = peer_unhex(hv, valbuf);
    if (klen < 0 || vlen < 0) {
        peer_reply("bad %s", cmd);
        return;
    }
    int rc = cmd[0] == 's' && cmd[1] == 't'
                 ? tc_set_through(cache, keybuf, (size_t)klen, valbuf, (size_t)vlen, NULL)
                 : tc_set_behind(cache, keybuf, (size_t)klen, valbuf, (size_t)vlen, NULL);
    peer_reply("ok %d", rc);
}

/* dt / db / get: a key. */
static void cmd_key(const char *cmd, const char *hk) {
    long klen = peer_unhex(hk, keybuf);
    if (klen < 0) {
        peer_reply("bad %s", cmd);
        return;
    }
    if (strcmp(cmd, "dt") == 0) {
        peer_reply("ok %d", tc_del_through(cache, keybuf, (size_t)klen));
    } else if (strcmp(cmd, "db") == 0) {
        peer_reply("ok %d", tc_del_behind(cache, keybuf, (size_t)klen));
    } else {
        tc_ref_t *ref = NULL;
        int rc = tc_get(cache, keybuf, (size_t)klen, &ref);
        if (rc == 0)
            peer_reply("val %s", peer_hex(tc_ref_data(ref), tc_ref_size(ref)));
        else if (rc == TC_ENOTFOUND)
            peer_reply("miss");
        else
            peer_reply("err %d", rc);
        tc_ref_release(ref);
    }
}

static void cmd_stats(void) {
    tc_stats_t s;
    if (tc_stats(cache, &s) != 0) {
        peer_reply("err stats");
        return;
    }
#define U(f) (unsigned long long)s.f
    peer_reply("stats writes_through=%llu writes_partial=%llu wb_queued=%llu wb_rejected=%llu "
               "wb_written=%llu wb_coalesced=%llu wb_retries=%llu wb_dead=%llu wb_flusher=%llu",
               U(writes_through), U(writes_partial), U(wb_queued), U(wb_rejected),
               U(wb_written), U(wb_coalesced), U(wb_retries), U(wb_dead), U(wb_flusher));
#undef U
}

/* One command line; 0 on quit. */
static int dispatch(char *line) {
    char *save = NULL;
    char *cmd = strtok_r(line, " \r\n", &save);
    char *a = cmd ? strtok_r(NULL, " \r\n", &save) : NULL;
    char *b = a ? strtok_r(NULL, " \r\n", &save) : NULL;
    if (!cmd)
        peer_reply("bad empty");
    else if (strcmp(cmd, "quit") == 0)
        return 0;
    else if (strcmp(cmd, "st") == 0 || strcmp(cmd, "sb") == 0)
        cmd_write(cmd, a, b);
    else if (strcmp(cmd, "dt") == 0 || strcmp(cmd, "db") == 0 || strcmp(cmd, "get") == 0)
        cmd_key(cmd, a);
    else if (strcmp(cmd, "flush") == 0)
        peer_reply("ok %d", tc_flush(cache, a ? (uint32_t)strtoul(a, NULL, 10) : 0));
    else if (strcmp(cmd, "stats") == 0)
        cmd_stats();
    else
        peer_reply("bad %s", cmd);
    return 1;
}

/* The first byte of an existing file, shared with the test (WBP_STATE). */
static unsigned char *map_state(const char *path) {
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return NULL;
    void *p = mmap(NULL, 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: wb-peer REDIS_URL KEY_PREFIX CHANNEL DB_PATH\n");
        return 2;
    }
    char why[512];
    const char *busy = getenv("WBP_BUSY_MS"), *slow = getenv("WBP_SLOW_MS");
    wb_source_t *src =
        wb_source_open(argv[4], busy ? (unsigned)atoi(busy) : 5000, why, sizeof why);
    if (!src) {
        fprintf(stderr, "wb-peer: %s\n", why);
        peer_reply("ready %d", TC_EUNAVAILABLE);
        return 1;
    }
    if (slow)
        atomic_store(&src->slow_ms, (unsigned)atoi(slow));
    const char *pre = getenv("WBP_PRECOMMIT_MS"), *state = getenv("WBP_STATE");
    if (pre)
        atomic_store(&src->precommit_ms, (unsigned)atoi(pre));
    if (state && (src->state = map_state(state)) == NULL) {
        fprintf(stderr, "wb-peer: cannot map %s\n", state);
        peer_reply("ready %d", TC_EINVAL);
        return 1;
    }
    tc_config_t cfg;
    tc_error_t err = {0};
    tc_config_init(&cfg);
    cfg.redis_url = argv[1];
    cfg.key_prefix = argv[2];
    cfg.inval_channel = argv[3];
    cfg.connect_timeout_ms = 200;
    cfg.command_timeout_ms = 2000;
    cfg.breaker_cooldown_ms = 200;
    cfg.listener_ping_ms = 100;
    cfg.writer = wb_source_writer;
    cfg.writer_arg = src;
    int rc = tc_config_from_env(&cfg, "WB_PEER_", &err);
    if (rc == 0)
        rc = tc_open(&cfg, &cache, &err);
    if (rc != 0)
        fprintf(stderr, "wb-peer: open: %s (%s)\n", tc_err_name(rc), err.msg);
    peer_reply("ready %d", rc);
    if (rc != 0) {
        wb_source_close(src);
        return 1;
    }
    size_t cap = 0;
    char *line = NULL;
    while (getline(&line, &cap, stdin) > 0 && dispatch(line)) {
    }
    free(line);
    tc_close(cache);
    wb_source_close(src);
    return 0;
}
