/*
 * fork.c - the atfork handler behind tc__forked_since (see fork.h for why).
 */
#include "fork.h"

#include <pthread.h>

atomic_uint tc__fork_generation;

static pthread_once_t watch_once = PTHREAD_ONCE_INIT;

static void in_child(void) {
    atomic_fetch_add_explicit(&tc__fork_generation, 1, memory_order_relaxed);
}

static void register_handler(void) {
    pthread_atfork(NULL, NULL, in_child);
}

unsigned tc__fork_watch(void) {
    pthread_once(&watch_once, register_handler);
    return atomic_load_explicit(&tc__fork_generation, memory_order_relaxed);
}
