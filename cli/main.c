/*
 * main.c - tiercache-cli: parse the command line and hand it to its command.
 *
 *   opts.c     the command line, usage errors, --help
 *   conf.c     TIERCACHE_* + options -> tc_config_t; the cache or a raw connection;
 *              failures -> exit codes (masked URLs in every message)
 *   data.c     get, set, del, invalidate: the public API, as an application calls it
 *   watch.c    the invalidation channel, decoded live (src/msg.h)
 *   inspect.c  a stored value, decoded (src/valfmt.h)
 *   text.c     hex, quoted previews, stdin, times
 *
 * Exit codes (cli.h, documented in --help and docs/cli.md): 0 ok, 1 not found, 2 usage or
 * configuration, 3 Redis unreachable or timed out, 4 other errors, 5 inspect: a value
 * tiercache did not write.
 */
#include "cli.h"
#include "opts.h"
#include "tiercache.h"

#include <stdio.h>

static int print_version(void) {
    /* The header the tool was built with, and the library it runs with. */
    printf("tiercache-cli %s (library %s)\n", TC_VERSION_STRING, tc_version());
    return TCLI_EXIT_OK;
}

static int dispatch(const tcli_opts_t *o) {
    switch (o->cmd) {
    case TCLI_CMD_GET:
        return tcli_cmd_get(o);
    case TCLI_CMD_SET:
        return tcli_cmd_set(o);
    case TCLI_CMD_DEL:
        return tcli_cmd_del(o);
    case TCLI_CMD_INVALIDATE:
        return tcli_cmd_invalidate(o);
    case TCLI_CMD_WATCH:
        return tcli_cmd_watch(o);
    case TCLI_CMD_INSPECT:
        return tcli_cmd_inspect(o);
    case TCLI_CMD_HELP:
        tcli_help(stdout, o->help_cmd);
        return TCLI_EXIT_OK;
    case TCLI_CMD_NONE:
        break;
    }
    return tcli_usage_error(TCLI_CMD_NONE, "no command given");
}

int main(int argc, char **argv) {
    tcli_opts_t o;
    int rc = tcli_opts_parse(argc, argv, &o);
    if (rc != TCLI_EXIT_OK)
        return rc;
    if (o.version)
        return print_version();
    if (o.help) {
        tcli_help(stdout, o.cmd);
        return TCLI_EXIT_OK;
    }
    return dispatch(&o);
}
