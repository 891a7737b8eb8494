/*
 * fork.h - telling a forked child's calls from its parent's.
 *
 * A cache is a set of threads (listener, refresh pool, keeper) and sockets that belong to
 * the process that opened it. fork() copies the memory but not the threads: in the child
 * nobody applies invalidations any more, while every gauge still reads "subscribed", and
 * the pooled sockets are shared with the parent, so two processes would interleave bytes
 * on one Redis connection. Prefork servers (open, then fork workers) do exactly this.
 * Rather than serve silently stale data, every call on a handle opened before a fork
 * answers TC_EFORKED in the child.
 *
 * How, without a system call on the hit path: an atfork handler, registered once, bumps a
 * process-wide generation in the child. A cache remembers the generation it was opened in;
 * the check is one relaxed load of a line nobody writes outside fork(). (getpid() would be
 * a real system call since glibc 2.25.) A raw clone() that bypasses atfork handlers is not
 * seen; posix_spawn and fork+exec never run tiercache code in the child.
 */
#ifndef TC_FORK_H
#define TC_FORK_H

#include <stdatomic.h>

extern atomic_uint tc__fork_generation;

/* Register the atfork handler (once per process) and return the current generation. */
unsigned tc__fork_watch(void);

/* 1 if this process is a fork child of the one that saw generation `gen`. */
static inline int tc__forked_since(unsigned gen) {
    return atomic_load_explicit(&tc__fork_generation, memory_order_relaxed) != gen;
}

#endif
