/*
 * conf.h - the configuration every command starts from, the two ways to reach Redis
 * (the library, or one raw hiredis connection), and the mapping of failures to exit codes.
 */
#ifndef TCLI_CONF_H
#define TCLI_CONF_H

#include "cli.h"
#include "tiercache.h"

#include <hiredis/hiredis.h>

typedef struct tcli_conf {
    tc_config_t cfg;     /* string fields borrow from the environment and argv */
    char url_shown[512]; /* cfg.redis_url with its password masked, for messages */
} tcli_conf_t;

/* tc_config_init, TIERCACHE_* variables (strict), then the options of o. Refuses what
 * tc_open would refuse, and a missing URL. Returns an enum tcli_exit (message printed). */
int tcli_conf_load(const tcli_opts_t *o, tcli_conf_t *c);

/* tc_open with Redis required. Returns an enum tcli_exit (message printed). */
int tcli_cache_open(const tcli_conf_t *c, tc_cache_t **out);

/* One hiredis connection to the configured Redis (AUTH and SELECT done, the command
 * timeout on its socket). Returns an enum tcli_exit (message printed). */
int tcli_raw_open(const tcli_conf_t *c, redisContext **out);

/* The exit code of a tiercache return code. */
int tcli_exit_code(int rc);

/* "tiercache-cli: <what>: TC_NAME: <detail>" on stderr, where detail is the library's
 * record of this thread's last failure when it is about rc, else tc_strerror(rc).
 * Returns tcli_exit_code(rc). */
int tcli_fail(int rc, const char *what);
/* The same with a detail the caller already holds (tc_error_t.msg, hiredis errstr). */
int tcli_fail_detail(int rc, const char *what, const char *detail);

/* url with credentials masked: the password of the userinfo (or a bare userinfo) and a
 * password= query value become "***". */
void tcli_url_mask(const char *url, char *out, size_t cap);

#endif
