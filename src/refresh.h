/*
 * refresh.h - a small pool of threads for background loads: early refresh, stale-while-
 * revalidate and loads that outlive a caller's timeout. See refresh.c.
 */
#ifndef TC_REFRESH_H
#define TC_REFRESH_H

typedef struct tc__refresh tc__refresh_t;
typedef void (*tc__task_fn)(void *arg);

/* Start `threads` workers with room for `queue` waiting tasks. 0, TC_ENOMEM, TC_EINTERNAL. */
int tc__refresh_open(unsigned threads, unsigned queue, tc__refresh_t **out);
/* Queue run(arg); cancel (not NULL) is called instead if the pool closes first. Returns 0,
 * or TC_ENOSPC when the queue is full or the pool is closing (then neither is called: the
 * caller still owns arg). Must not race tc__refresh_close (the cache submits only while
 * open). */
int tc__refresh_submit(tc__refresh_t *pool, tc__task_fn run, tc__task_fn cancel, void *arg);
/* Stop: queued tasks get cancel(arg) instead of run, running ones finish, threads join.
 * Never from inside a task (a worker would join itself). */
void tc__refresh_close(tc__refresh_t *pool);

#endif
