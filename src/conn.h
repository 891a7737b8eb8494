/*
 * conn.h - opening one ready-to-use hiredis connection from a parsed endpoint.
 *
 * Shared by the pool (data calls) and the listener (its own subscriber connection):
 * connect with the connect timeout (TCP or unix socket), set the command timeout as the
 * socket's send/receive timeout, enable TCP keepalive, AUTH (password, or ACL user and
 * password) and SELECT the db. hiredis 0.14 reports a timeout as REDIS_ERR_IO with errno
 * EAGAIN; tc__conn_error_code() maps a failed context to TC_ETIMEDOUT or TC_EUNAVAILABLE.
 * Commands go out through send(MSG_NOSIGNAL) (tc__conn_get_reply), never hiredis's write().
 */
#ifndef TC_CONN_H
#define TC_CONN_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <stdint.h>

/* Returns 0 and a connected context in *out, or TC_EUNAVAILABLE / TC_ETIMEDOUT (connect
 * failed), TC_EREDIS (AUTH or SELECT refused) with err->msg saying which. */
int tc__conn_open(const tc__endpoint_t *ep, uint32_t connect_timeout_ms,
                  uint32_t command_timeout_ms, redisContext **out, tc_error_t *err);

/* After a hiredis call failed on c (c->err set): TC_ETIMEDOUT for a socket timeout,
 * TC_EPROTO for a protocol error, TC_ENOMEM when hiredis ran out of memory,
 * TC_EUNAVAILABLE otherwise (EOF, reset, refused). */
int tc__conn_error_code(const redisContext *c, int saved_errno);

/* 1 when an error reply's text is an authentication or ACL refusal (NOPERM, NOAUTH,
 * WRONGPASS): Redis is fine, the configuration is not. */
int tc__conn_is_permission_text(const char *s, size_t len);

/* hiredis 0.14 writes with write(), which raises SIGPIPE on a socket whose peer died and
 * kills a program that did not ignore it. These send what hiredis buffered with
 * send(MSG_NOSIGNAL) instead, so hiredis itself never writes: the replacements for
 * redisGetReply and redisCommandArgv on blocking contexts. On failure c->err/errstr are
 * set as hiredis would (REDIS_ERR_IO, strerror(errno), errno kept) and they return
 * REDIS_ERR / NULL. */
int tc__conn_get_reply(redisContext *c, void **reply);
redisReply *tc__conn_command_argv(redisContext *c, int argc, const char **argv,
                                  const size_t *lens);

#endif
