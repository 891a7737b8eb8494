/*
 * opts.c - parsing tiercache-cli's command line, and the help that documents it.
 *
 * One table (commands[]) names every command with its operands, the options only it
 * accepts, and its help text, so the parser, the arity checks and --help cannot drift
 * apart. Options may come anywhere (getopt_long permutes), before or after the command;
 * "--" ends them, so a key or value that starts with '-' can still be given. A lone "-"
 * is an operand (set's "read the value from stdin").
 *
 * Every problem with the command line is a usage error (exit 2) with one line saying
 * what is wrong and a pointer to the right help; getopt's own messages are turned off so
 * that all of them read the same way.
 */
#include "opts.h"

#include "config.h" /* tc__parse_duration_ms: the library's duration syntax */

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Options that only some commands accept. */
enum tcli_cmd_opt {
    TCLI_COPT_TTL = 1u << 0,
    TCLI_COPT_COUNT = 1u << 1,
};

typedef struct cmd_spec {
    const char *name;
    enum tcli_cmd cmd;
    int min_args, max_args;
    unsigned opts; /* enum tcli_cmd_opt bits */
    const char *synopsis;
    const char *help;
} cmd_spec_t;

static const cmd_spec_t commands[] = {
    {"get", TCLI_CMD_GET, 1, 1, 0, "get KEY",
     "Print KEY's value, read through the library (tc_get) as an application would.\n"
     "The value's bytes go to stdout unchanged; a newline is added only when stdout is a\n"
     "terminal, so `get KEY > file` is byte-exact. With --hex the value is printed as hex\n"
     "followed by a newline.\n"
     "Exit 1 when the key is not found (also when Redis holds a string tiercache does not\n"
     "serve: `inspect` says why).\n"},
    {"set", TCLI_CMD_SET, 2, 2, TCLI_COPT_TTL, "set KEY VALUE|- [--ttl DUR]",
     "Store VALUE under KEY (tc_set): written to Redis with a new version, and published\n"
     "so that every process drops its older copy. VALUE \"-\" reads the value from stdin\n"
     "(all of it, binary; with --hex, hex text where whitespace is ignored).\n"
     "  --ttl DUR   time to live, e.g. 30s, 5m, 1h (default: TIERCACHE_DEFAULT_TTL, 60s)\n"},
    {"del", TCLI_CMD_DEL, 1, 1, 0, "del KEY",
     "Delete KEY from Redis and from every process's L1 (tc_del). A key that did not\n"
     "exist is not an error.\n"},
    {"invalidate", TCLI_CMD_INVALIDATE, 1, 1, 0, "invalidate KEY",
     "Evict KEY from every process's L1, leaving the value in Redis (tc_invalidate): for\n"
     "when the source changed behind the cache. The next read in each process goes to\n"
     "Redis.\n"},
    {"watch", TCLI_CMD_WATCH, 0, 0, TCLI_COPT_COUNT, "watch [--count N]",
     "Subscribe to the invalidation channel and print one line per message, decoded:\n"
     "  OP v=VERSION [log=MS-SEQ] origin=HEX32 key=\"KEY\"\n"
     "OP is write, delete, fill or evict; log is the replay log entry (format 2 messages);\n"
     "origin is the publishing cache's instance id; the key is quoted with C escapes (hex\n"
     "with --hex). A message that is not a tiercache message is printed as\n"
     "  malformed len=N data=\"...\"\n"
     "With TIERCACHE_TRACKING set (bcast or default), Redis's own notices for the keys\n"
     "the caches track are shown too, whoever wrote them: one line per key,\n"
     "  tracking key=\"KEY\"\n"
     "and \"tracking flush\" for a FLUSHALL or FLUSHDB.\n"
     "Runs until SIGINT or SIGTERM (exit 0), or until N lines were printed.\n"
     "  --count N   stop after N lines\n"},
    {"inspect", TCLI_CMD_INSPECT, 1, 1, 0, "inspect KEY",
     "Read KEY's stored string from Redis directly (<prefix>k:KEY, without the library)\n"
     "and decode tiercache's header: format, version, flags, load class, the end of its\n"
     "fresh period, Redis's TTL, the value's length and a preview.\n"
     "With TIERCACHE_PLAIN_KEYS, KEY is the Redis key itself and its string is shown as\n"
     "the plain value it is.\n"
     "Exit 1 when the key does not exist, 5 when it holds something tiercache did not\n"
     "write (another format, or not a string).\n"},
    {"help", TCLI_CMD_HELP, 0, 1, 0, "help [COMMAND]", "Print the help, or a command's.\n"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const cmd_spec_t *find_by_name(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static const cmd_spec_t *find_by_cmd(enum tcli_cmd cmd) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (commands[i].cmd == cmd)
            return &commands[i];
    return NULL;
}

/* ---- help ---- */

static const char overview[] =
    "Usage: tiercache-cli [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Read, write and watch a tiercache deployment from a shell, with the same Redis URL\n"
    "and TIERCACHE_* configuration as the applications that use the library.\n"
    "\n"
    "Commands:\n"
    "  get KEY                print the value (raw bytes; a newline only on a terminal)\n"
    "  set KEY VALUE|-        store a value (- reads it from stdin)  [--ttl DUR]\n"
    "  del KEY                delete from Redis and from every process's L1\n"
    "  invalidate KEY         evict from every process's L1, keep the value in Redis\n"
    "  watch                  print invalidation messages as they arrive  [--count N]\n"
    "  inspect KEY            decode the stored value: version, freshness, flags, TTL\n"
    "  help [COMMAND]         this text, or a command's\n";

static const char global_options[] =
    "Options:\n"
    "  -u, --url URL          redis://[user:password@]host[:port][/db] or\n"
    "                         unix:///path.sock[?db=N&password=P&user=U]\n"
    "                         (default: TIERCACHE_REDIS_URL; one of them is required)\n"
    "  -p, --prefix PREFIX    key namespace in Redis (TIERCACHE_KEY_PREFIX, default tc:)\n"
    "  -c, --channel NAME     invalidation channel (TIERCACHE_INVAL_CHANNEL, default\n"
    "                         tc:inval)\n"
    "      --timeout DUR      Redis command timeout, e.g. 250ms, 2s\n"
    "                         (TIERCACHE_COMMAND_TIMEOUT, default 250ms)\n"
    "  -x, --hex              keys and values are hex text (binary data), on input and\n"
    "                         output\n"
    "  -h, --help             this help; after a command, that command's\n"
    "  -V, --version          print the version\n"
    "Options may come before or after the command; \"--\" ends them.\n";

static const char config_and_exits[] =
    "Configuration: every TIERCACHE_* variable of the library applies\n"
    "(docs/configuration.md); the options above override them. A TIERCACHE_ variable\n"
    "the library does not know is refused. Passwords are never printed.\n"
    "\n"
    "Exit codes:\n"
    "  0  success\n"
    "  1  not found (get, inspect)\n"
    "  2  usage or configuration error (also: no Redis URL)\n"
    "  3  Redis unreachable or timed out\n"
    "  4  any other error (the library's error name and detail on stderr)\n"
    "  5  inspect: the key holds a value tiercache did not write\n";

void tcli_help(FILE *f, enum tcli_cmd cmd) {
    const cmd_spec_t *s = find_by_cmd(cmd);
    if (!s || cmd == TCLI_CMD_HELP) {
        fprintf(f, "%s\n%s\n%s", overview, global_options, config_and_exits);
        return;
    }
    fprintf(f, "Usage: tiercache-cli [OPTIONS] %s\n\n%s\n%s\n%s", s->synopsis, s->help,
            global_options, config_and_exits);
}

int tcli_usage_error(enum tcli_cmd cmd, const char *fmt, ...) {
    const cmd_spec_t *s = find_by_cmd(cmd);
    va_list ap;
    fputs("tiercache-cli: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (s && cmd != TCLI_CMD_HELP)
        fprintf(stderr, "\nusage: tiercache-cli [OPTIONS] %s (see 'tiercache-cli %s --help')\n",
                s->synopsis, s->name);
    else
        fputs("\nusage: tiercache-cli [OPTIONS] COMMAND [ARGS] (see 'tiercache-cli --help')\n",
              stderr);
    return TCLI_EXIT_USAGE;
}

/* ---- option values ---- */

enum tcli_long_only {
    OPT_TIMEOUT = 256,
    OPT_TTL,
    OPT_COUNT,
};

static const struct option long_options[] = {
    {"url", required_argument, NULL, 'u'},
    {"prefix", required_argument, NULL, 'p'},
    {"channel", required_argument, NULL, 'c'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"hex", no_argument, NULL, 'x'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"ttl", required_argument, NULL, OPT_TTL},
    {"count", required_argument, NULL, OPT_COUNT},
    {NULL, 0, NULL, 0},
};

static int parse_duration(const char *opt, const char *s, uint64_t *out) {
    if (tc__parse_duration_ms(s, out) != 0)
        return tcli_usage_error(TCLI_CMD_NONE,
                                "%s: '%s' is not a duration (e.g. 500ms, 30s, 5m, 1h)", opt, s);
    return TCLI_EXIT_OK;
}

static int parse_count(const char *s, unsigned long *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || s[0] == '-')
        return tcli_usage_error(TCLI_CMD_WATCH, "--count: '%s' is not a positive integer", s);
    *out = v;
    return TCLI_EXIT_OK;
}

/* getopt reports a bad option as '?' (unknown) or ':' (missing value); name the option
 * as the user typed it: a long option has no optopt, only its place in argv. */
static int bad_option(int c, char **argv) {
    const char *what = c == ':' ? "needs a value" : "is not an option";
    if (optopt && optopt < 256)
        return tcli_usage_error(TCLI_CMD_NONE, "-%c %s", optopt, what);
    return tcli_usage_error(TCLI_CMD_NONE, "%s %s", argv[optind - 1], what);
}

static int take_option(int c, char **argv, tcli_opts_t *o) {
    switch (c) {
    case 'u':
        o->url = optarg;
        return TCLI_EXIT_OK;
    case 'p':
        o->prefix = optarg;
        return TCLI_EXIT_OK;
    case 'c':
        o->channel = optarg;
        return TCLI_EXIT_OK;
    case 'x':
        o->hex = 1;
        return TCLI_EXIT_OK;
    case 'h':
        o->help = 1;
        return TCLI_EXIT_OK;
    case 'V':
        o->version = 1;
        return TCLI_EXIT_OK;
    case OPT_TIMEOUT:
        o->has_timeout = 1;
        return parse_duration("--timeout", optarg, &o->timeout_ms);
    case OPT_TTL:
        o->has_ttl = 1;
        return parse_duration("--ttl", optarg, &o->ttl_ms);
    case OPT_COUNT:
        return parse_count(optarg, &o->count);
    default:
        return bad_option(c, argv);
    }
}

/* ---- operands ---- */

static int check_arity(const cmd_spec_t *s, const tcli_opts_t *o) {
    if (o->nargs < s->min_args)
        return tcli_usage_error(s->cmd, "%s: missing %s", s->name,
                                o->nargs == 0 ? "KEY" : "VALUE");
    if (o->nargs > s->max_args)
        return tcli_usage_error(s->cmd, "%s: unexpected operand '%s'", s->name,
                                o->args[s->max_args]);
    return TCLI_EXIT_OK;
}

static int check_command_options(const cmd_spec_t *s, const tcli_opts_t *o) {
    if (o->has_ttl && !(s->opts & TCLI_COPT_TTL))
        return tcli_usage_error(s->cmd, "--ttl applies to set, not %s", s->name);
    if (o->count && !(s->opts & TCLI_COPT_COUNT))
        return tcli_usage_error(s->cmd, "--count applies to watch, not %s", s->name);
    return TCLI_EXIT_OK;
}

/* "help CMD" names the command it is about. */
static int take_help_topic(tcli_opts_t *o) {
    if (o->nargs == 0)
        return TCLI_EXIT_OK;
    const cmd_spec_t *t = find_by_name(o->args[0]);
    if (!t)
        return tcli_usage_error(TCLI_CMD_NONE, "help: unknown command '%s'", o->args[0]);
    o->help_cmd = t->cmd;
    return TCLI_EXIT_OK;
}

static int take_operands(int argc, char **argv, tcli_opts_t *o) {
    if (optind >= argc) {
        if (o->help || o->version)
            return TCLI_EXIT_OK;
        return tcli_usage_error(TCLI_CMD_NONE, "no command given");
    }
    const cmd_spec_t *s = find_by_name(argv[optind]);
    if (!s)
        return tcli_usage_error(TCLI_CMD_NONE, "unknown command '%s'", argv[optind]);
    o->cmd = s->cmd;
    o->args = argv + optind + 1;
    o->nargs = argc - optind - 1;
    if (o->help || o->version)
        return TCLI_EXIT_OK;
    int rc = check_arity(s, o);
    if (rc == TCLI_EXIT_OK)
        rc = check_command_options(s, o);
    if (rc == TCLI_EXIT_OK && s->cmd == TCLI_CMD_HELP)
        rc = take_help_topic(o);
    return rc;
}

int tcli_opts_parse(int argc, char **argv, tcli_opts_t *o) {
    memset(o, 0, sizeof *o);
    opterr = 0; /* every message comes from tcli_usage_error */
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":u:p:c:xhV", long_options, NULL)) != -1) {
        int rc = take_option(c, argv, o);
        if (rc != TCLI_EXIT_OK)
            return rc;
    }
    return take_operands(argc, argv, o);
}
