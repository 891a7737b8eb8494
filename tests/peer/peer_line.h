/*
 * peer_line.h - the line protocol both test peers speak (tc-peer in tc_peer.c, wb-peer in
 * wb_peer.c; tests/support/peer.h drives them): one command line in, one reply line out,
 * keys and values in hex ("-" for empty), so any binary key travels through a text pipe.
 * Written once here so the two peers cannot drift apart in how they frame or decode.
 */
#ifndef TC_TEST_PEER_LINE_H
#define TC_TEST_PEER_LINE_H

#include <stddef.h>

/* The largest key or value a command may carry, decoded. */
#define PEER_MAX_BYTES (1u << 20)

/* Print one reply line (printf format, no newline) and flush it. */
void peer_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Decode hex (or "-" for empty) into out, which holds PEER_MAX_BYTES; the length, or -1
 * when hex is NULL, malformed or too long. */
long peer_unhex(const char *hex, unsigned char *out);
/* buf as hex ("-" when empty), in a static buffer valid until the next call; only the first
 * PEER_MAX_BYTES bytes are encoded. */
const char *peer_hex(const void *buf, size_t len);

#endif
