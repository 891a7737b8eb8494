/*
 * parse.h - what a decoder of untrusted bytes answers (a message from the channel, a value
 * stored in Redis, a stream id). Named, and positive, so that it never reads like a TC_E*
 * code: TC_ENOTFOUND is -1, and "malformed" is not "not found".
 */
#ifndef TC_PARSE_H
#define TC_PARSE_H

typedef enum tc__parse {
    TC__PARSED = 0,    /* well formed: the output is filled */
    TC__MALFORMED = 1, /* not ours, truncated, or out of its limits: the output is not used */
} tc__parse_t;

#endif
