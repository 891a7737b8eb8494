/*
 * cli.h - what the parts of tiercache-cli share: the exit codes, the parsed command line,
 * and one entry point per command.
 *
 * The tool is a thin shell over the library, so its shape follows the library's: a
 * command is parsed into a tcli_opts_t (opts.c), the configuration is built the way every
 * tiercache program builds it, TIERCACHE_* variables first and options on top (conf.c),
 * and each command then either goes through the public API like any application
 * (data.c: get, set, del, invalidate) or reads the wire formats raw, beside the library,
 * to show what is really on the channel and in Redis (watch.c, inspect.c).
 *
 * Exit codes are part of the interface (scripts branch on them), so they are one named
 * enum, documented in --help and in docs/cli.md, and every path returns one of them.
 */
#ifndef TCLI_CLI_H
#define TCLI_CLI_H

#include <stddef.h>
#include <stdint.h>

enum tcli_exit {
    TCLI_EXIT_OK = 0,
    TCLI_EXIT_NOTFOUND = 1,    /* the key does not exist (get, inspect) */
    TCLI_EXIT_USAGE = 2,       /* bad command line or configuration, no URL */
    TCLI_EXIT_UNAVAILABLE = 3, /* Redis unreachable or timed out */
    TCLI_EXIT_ERROR = 4,       /* any other failure */
    TCLI_EXIT_FOREIGN = 5,     /* inspect: the key holds something tiercache did not write */
};

enum tcli_cmd {
    TCLI_CMD_NONE = 0,
    TCLI_CMD_HELP,
    TCLI_CMD_GET,
    TCLI_CMD_SET,
    TCLI_CMD_DEL,
    TCLI_CMD_INVALIDATE,
    TCLI_CMD_WATCH,
    TCLI_CMD_INSPECT,
};

typedef struct tcli_opts {
    enum tcli_cmd cmd;
    /* Overrides of the configuration; NULL / 0 = keep what TIERCACHE_* or the defaults say. */
    const char *url;
    const char *prefix;
    const char *channel;
    int has_timeout;
    uint64_t timeout_ms;
    /* Per command */
    int has_ttl;
    uint64_t ttl_ms;        /* set */
    unsigned long count;    /* watch: stop after this many lines; 0 = until a signal */
    int hex;                /* keys and values are hex text */
    int help, version;      /* print and exit 0 */
    enum tcli_cmd help_cmd; /* help: the command asked about, or NONE */
    char **args;            /* the command's operands (KEY [VALUE]) */
    int nargs;
} tcli_opts_t;

/* The commands. Each returns an enum tcli_exit and has printed its own errors. */
int tcli_cmd_get(const tcli_opts_t *o);
int tcli_cmd_set(const tcli_opts_t *o);
int tcli_cmd_del(const tcli_opts_t *o);
int tcli_cmd_invalidate(const tcli_opts_t *o);
int tcli_cmd_watch(const tcli_opts_t *o);
int tcli_cmd_inspect(const tcli_opts_t *o);

#endif
