/* connect.h: the Connect RPC protocol with JSON messages, as envd (E2B's
 * in-sandbox daemon) speaks it and @connectrpc/connect-web calls it.
 *
 * Unary: POST /<package.Service>/<Method>, Content-Type application/json,
 * the body is the request message; the reply is 200 with the response
 * message, or an error status with {"code": "<connect code>", "message"}.
 * Server streaming: Content-Type application/connect+json; the request and
 * every response message are envelopes (flags u8, length u32 big-endian,
 * JSON); the stream ends with an envelope of flags 0x02 holding {} or
 * {"error": {...}}.  Errors of this protocol use Connect's string codes, not
 * the {"code": <status>} shape of the rest of the API: the client library
 * decides by them.
 */
#ifndef CAPSA_SERVER_CONNECT_H
#define CAPSA_SERVER_CONNECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "util/str.h"

#define CONNECT_END_STREAM 0x02
#define CONNECT_COMPRESSED 0x01
#define CONNECT_MAX_MESSAGE (4 << 20)

/* Decodes a request message: the body of a unary call, or the single
 * envelope of a server-streaming call.  NULL with *msg_err set (a
 * sentence) when malformed. */
json_t *connect_decode_request(const char *body, size_t len, bool streaming, char *msg_err, size_t errlen);

/* Appends an envelope holding msg (not stolen). */
void connect_envelope(struct buf *out, uint8_t flags, json_t *msg);
/* The end-of-stream envelope: {} or {"error": {"code", "message"}}. */
void connect_end(struct buf *out, const char *code, const char *message);

/* The Connect code for an errno, and the HTTP status of a Connect code. */
const char *connect_code_for_errno(int e);
unsigned connect_http_status(const char *code);

/* Replies to a unary call with an error. */
void connect_reply_error(struct http_req *r, const char *code, const char *fmt, ...) PRINTF(3, 4);
void connect_reply_capsa_error(struct http_req *r, struct capsa_error *err);
/* Replies to a unary call with msg (stolen). */
void connect_reply(struct http_req *r, json_t *msg);
/* A streaming call that fails before its stream starts: 200 with only the
 * end-of-stream envelope carrying the error. */
void connect_reply_stream_error(struct http_req *r, const char *code, const char *fmt, ...) PRINTF(3, 4);

/* Field access accepting lowerCamelCase and snake_case names. */
json_t *connect_get(json_t *o, const char *camel, const char *snake);

/* Standard base64 of bytes, a heap string. */
char *connect_b64(const void *p, size_t n);

#endif
