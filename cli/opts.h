/*
 * opts.h - the command line of tiercache-cli: parsing, usage errors and help texts.
 */
#ifndef TCLI_OPTS_H
#define TCLI_OPTS_H

#include "cli.h"

#include <stdio.h>

/* Parse argv into *o. Returns TCLI_EXIT_OK, or TCLI_EXIT_USAGE after saying why on
 * stderr. With --help or --version, o->help / o->version is set and operands are not
 * checked (so "set --help" works without a KEY). */
int tcli_opts_parse(int argc, char **argv, tcli_opts_t *o);

/* The help of cmd (TCLI_CMD_NONE or TCLI_CMD_HELP: the overview) on f. */
void tcli_help(FILE *f, enum tcli_cmd cmd);

/* "tiercache-cli: <message>" and a pointer to the help on stderr; returns TCLI_EXIT_USAGE. */
int tcli_usage_error(enum tcli_cmd cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
