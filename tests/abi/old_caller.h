/*
 * old_caller.h - a program built against tiercache 0.1.0's header, as functions the ABI
 * test calls. This header includes neither header version, so test_abi.c can include the
 * current one while old_caller.c sees only the old one.
 */
#ifndef TC_TEST_OLD_CALLER_H
#define TC_TEST_OLD_CALLER_H

#include <stddef.h>

/* sizeof of the 0.1.0 structs, as the old program sees them. */
size_t tc_abi_old_config_size(void);
size_t tc_abi_old_stats_size(void);

/* Each returns 0 when the old program got what it expected, or a step number (> 0) that
 * failed; *why names it. url NULL: L1-only. */
int tc_abi_old_config_init(const char **why);
int tc_abi_old_open_use_close(const char *url, const char **why);
int tc_abi_old_config_from_env(const char *prefix, const char **why);

#endif
