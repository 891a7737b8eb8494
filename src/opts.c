/*
 * opts.c - per-call options: the growing tc_opts_t read safely, and copied for work that
 * outlives the call.
 *
 * tc_opts_t grows like tc_config_t, but it is the caller who sizes it (TC_OPTS_INIT records
 * sizeof): a field the caller's struct does not have reads as zero, and a struct smaller
 * than the first version is refused rather than read past its end.
 */
#include "opts.h"

#include "errors.h"

#include <stdlib.h>
#include <string.h>

void tc_opts_init_size(tc_opts_t *opts, size_t size) {
    if (!opts || size < TC__OPTS_V1_SIZE)
        return;
    tc_opts_t full = TC_OPTS_INIT;
    full.size = size;
    memcpy(opts, &full, size < sizeof full ? size : sizeof full);
    if (size > sizeof full)
        memset((char *)opts + sizeof full, 0, size - sizeof full);
}

static int check_tags(const tc__call_opts_t *o, int tags_ok) {
    if (o->ntags == 0)
        return 0;
    if (!tags_ok)
        return tc__note(TC_EINVAL, "opts.tags: tags live in Redis; this cache has no Redis, "
                                   "uses plain_keys, or a cluster (not available there yet)");
    if (o->ntags > TC_MAX_TAGS || !o->tags)
        return tc__note(TC_EINVAL, "opts.tags: %zu tags %s", o->ntags,
                        o->tags ? "is more than TC_MAX_TAGS" : "but tags is NULL");
    for (size_t i = 0; i < o->ntags; i++)
        if (!o->tags[i].data || o->tags[i].len == 0 || o->tags[i].len > TC_MAX_TAG_LEN)
            return tc__note(TC_EINVAL, "opts.tags[%zu]: %s", i,
                            o->tags[i].data ? "length not in 1..TC_MAX_TAG_LEN" : "NULL");
    return 0;
}

int tc__opts_import(const tc_opts_t *opts, int tags_ok, tc__call_opts_t *out) {
    memset(out, 0, sizeof *out);
    if (!opts)
        return 0;
    if (opts->size < TC__OPTS_V1_SIZE)
        return tc__note(TC_EINVAL,
                        "opts.size: %zu is smaller than any tc_opts_t (use TC_OPTS_INIT)",
                        opts->size);
    tc_opts_t full = {0};
    memcpy(&full, opts, opts->size < sizeof full ? opts->size : sizeof full);
    out->ttl_ms = full.ttl_ms;
    out->tags = full.tags;
    out->ntags = full.tags_count;
    out->flags = full.flags;
    if (out->flags & ~(unsigned)TC_OPT_NO_L1)
        return tc__note(TC_EINVAL, "opts.flags: unknown flags 0x%x", out->flags);
    return check_tags(out, tags_ok);
}

tc__call_opts_t *tc__opts_dup(const tc__call_opts_t *o) {
    size_t bytes = sizeof *o + o->ntags * sizeof(tc_buf_t);
    for (size_t i = 0; i < o->ntags; i++)
        bytes += o->tags[i].len;
    tc__call_opts_t *copy = malloc(bytes);
    if (!copy)
        return NULL;
    *copy = *o;
    tc_buf_t *tags = (tc_buf_t *)(copy + 1);
    unsigned char *p = (unsigned char *)(tags + o->ntags);
    for (size_t i = 0; i < o->ntags; i++) {
        memcpy(p, o->tags[i].data, o->tags[i].len);
        tags[i] = (tc_buf_t){p, o->tags[i].len};
        p += o->tags[i].len;
    }
    copy->tags = o->ntags ? tags : NULL;
    return copy;
}
