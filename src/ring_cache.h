/*
 * ring_cache.h - a cache over several standalone Redis servers (ring_cache.c): one full
 * cache per server, a consistent-hash ring to pick a key's, and the calls that span them.
 */
#ifndef TC_RING_CACHE_H
#define TC_RING_CACHE_H

#include "cache.h"

/* cfg validated, its redis_url a list (tc__endpoint_is_list). 0 and *out, or a code with
 * err saying which server failed. */
int tc__ring_cache_open(const tc_config_t *cfg, tc_cache_t **out, tc_error_t *err);
void tc__ring_cache_close(tc_cache_t *c);
/* The ring of urls[0..n-1] (parsed URLs, as tc__endpoint_list gives them): server i is
 * id i, named by its address (tc__endpoint_name). What every process builds from one list,
 * so tests can tell where a ring cache put a key. 0, TC_ECONFIG (a URL that does not parse,
 * a server twice), TC_ENOMEM. */
int tc__ring_of_urls(char *const *urls, size_t n, struct tc__ring **out, tc_error_t *err);

/* The public calls of the same name, on a ring cache (arguments as the caller gave them). */
int tc__ring_mget(tc_cache_t *c, const tc_buf_t *keys, size_t n, tc_ref_t **refs, int *codes);
int tc__ring_mfetch(tc_cache_t *c, const tc_buf_t *keys, size_t n, tc_batch_loader_fn loader,
                    void *arg, const tc_opts_t *opts, tc_ref_t **refs, int *codes);
int tc__ring_mset(tc_cache_t *c, const tc_item_t *items, size_t n, const tc_opts_t *opts,
                  int *codes);
int tc__ring_mdel(tc_cache_t *c, const tc_buf_t *keys, size_t n, int *codes);
int tc__ring_invalidate_tag(tc_cache_t *c, const void *tag, size_t tlen, size_t *removed);
int tc__ring_invalidate_prefix(tc_cache_t *c, const void *prefix, size_t plen, size_t *removed);
int tc__ring_invalidate_namespace(tc_cache_t *c, const void *ns, size_t nslen);
int tc__ring_clear(tc_cache_t *c);
int tc__ring_flush(tc_cache_t *c, uint32_t timeout_ms);
long tc__ring_hot_keys(tc_cache_t *c, size_t max, tc_key_fn fn, void *arg);
long tc__ring_dead_letters(tc_cache_t *c, size_t max, tc_dead_fn fn, void *arg);
long tc__ring_dead_letters_replay(tc_cache_t *c);
/* tc_stats (the full struct) and tc_latency: every node added up. */
int tc__ring_stats(tc_cache_t *c, tc_stats_t *out);
int tc__ring_latency(tc_cache_t *c, int kind, tc_latency_t *out);

#endif
