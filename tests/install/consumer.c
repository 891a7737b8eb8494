/*
 * consumer.c - a program outside the project that uses an installed tiercache, built by
 * scripts/check-install.sh three ways (CMake shared, CMake static, pkg-config). It fails
 * unless the installed header, library and link flags work together.
 */
#include <tiercache.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    tc_config_t cfg;
    tc_config_init(&cfg);
    tc_cache_t *cache;
    tc_error_t err;
    if (tc_open(&cfg, &cache, &err) != TC_OK) {
        fprintf(stderr, "tc_open: %s\n", err.msg);
        return 1;
    }
    tc_ref_t *ref = NULL;
    int ok = tc_set(cache, "k", 1, "v", 1, 0) == TC_OK &&
             tc_get(cache, "k", 1, &ref) == TC_OK && tc_ref_size(ref) == 1 &&
             memcmp(tc_ref_data(ref), "v", 1) == 0 &&
             strcmp(tc_version(), TC_VERSION_STRING) == 0;
    tc_ref_release(ref);
    tc_close(cache);
    printf("consumer: tiercache %s %s\n", tc_version(), ok ? "works" : "FAILED");
    return ok ? 0 : 1;
}
