/* connect.c: Connect RPC framing and errors (connect.h). */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "connect.h"
#include "util/base64.h"
#include "util/error.h"

json_t *connect_decode_request(const char *body, size_t len, bool streaming, char *msg_err, size_t errlen)
{
	const char *p = body;
	size_t n = len;
	if (streaming) {
		if (len < 5) {
			snprintf(msg_err, errlen, "the request is not an enveloped message (%zu bytes)", len);
			return NULL;
		}
		uint8_t flags = (uint8_t)p[0];
		uint32_t l = (uint32_t)(uint8_t)p[1] << 24 | (uint32_t)(uint8_t)p[2] << 16 |
			     (uint32_t)(uint8_t)p[3] << 8 | (uint32_t)(uint8_t)p[4];
		if (flags & CONNECT_COMPRESSED) {
			snprintf(msg_err, errlen, "compressed messages are not supported");
			return NULL;
		}
		if (flags != 0 || l != len - 5 || l > CONNECT_MAX_MESSAGE) {
			snprintf(msg_err, errlen, "the request envelope is malformed (flags %u, length %u of %zu)",
				 flags, l, len - 5);
			return NULL;
		}
		p += 5;
		n = l;
	}
	if (n == 0)
		return json_object(); /* an empty message: every field at its default */
	json_error_t je;
	json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(msg_err, errlen, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(msg_err, errlen, "the request message must be a JSON object");
		return NULL;
	}
	return j;
}

void connect_envelope(struct buf *out, uint8_t flags, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	size_t n = s ? strlen(s) : 0;
	uint8_t h[5] = { flags, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
	buf_append(out, h, 5);
	buf_append(out, s ? s : "", n);
	free(s);
}

void connect_end(struct buf *out, const char *code, const char *message)
{
	json_t *m = code ? json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message ? message : "")
			 : json_object();
	if (!m)
		m = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", "(the message was not valid UTF-8)");
	connect_envelope(out, CONNECT_END_STREAM, m);
	json_decref(m);
}

const char *connect_code_for_errno(int e)
{
	switch (e) {
	case ENOENT:
	case ESRCH:
		return "not_found";
	case EINVAL:
	case ENOTDIR:
	case EISDIR:
	case ELOOP:
	case ENAMETOOLONG:
	case E2BIG:
		return "invalid_argument";
	case EEXIST:
	case ENOTEMPTY:
		return "already_exists";
	case EPERM:
	case EACCES:
		return "permission_denied";
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return "resource_exhausted";
	case EBUSY:
		return "failed_precondition";
	case EAGAIN:
		return "unavailable";
	case ETIMEDOUT:
		return "deadline_exceeded";
	case ENOTSUP:
	case ENOSYS:
		return "unimplemented";
	default:
		return "internal";
	}
}

unsigned connect_http_status(const char *code)
{
	static const struct {
		const char *code;
		unsigned status;
	} map[] = {
		{ "canceled", 499 },	      { "unknown", 500 },	 { "invalid_argument", 400 },
		{ "deadline_exceeded", 504 }, { "not_found", 404 },	 { "already_exists", 409 },
		{ "permission_denied", 403 }, { "resource_exhausted", 429 }, { "failed_precondition", 400 },
		{ "aborted", 409 },	      { "out_of_range", 400 },	 { "unimplemented", 501 },
		{ "internal", 500 },	      { "unavailable", 503 },	 { "data_loss", 500 },
		{ "unauthenticated", 401 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (strcmp(map[i].code, code) == 0)
			return map[i].status;
	return 500;
}

static void reply_error_v(struct http_req *r, const char *code, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	json_t *j = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (!j)
		j = json_pack("{s:s, s:s}", "code", code, "message", "(the message was not valid UTF-8)");
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	http_reply_raw(r, connect_http_status(code), "application/json", s, strlen(s));
	free(s);
}

void connect_reply_error(struct http_req *r, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply_error_v(r, code, fmt, ap);
	va_end(ap);
}

void connect_reply_capsa_error(struct http_req *r, struct capsa_error *err)
{
	connect_reply_error(r, connect_code_for_errno(err ? err->code : 0), "%s", err && err->msg ? err->msg : "error");
	capsa_error_free(err);
}

void connect_reply(struct http_req *r, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!s) {
		connect_reply_error(r, "internal", "the response is not encodable as JSON");
		return;
	}
	http_reply_raw(r, 200, "application/json", s, strlen(s));
	free(s);
}

void connect_reply_stream_error(struct http_req *r, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct buf b = BUF_INIT;
	connect_end(&b, code, msg);
	http_reply_raw(r, 200, "application/connect+json", b.data, b.len);
	buf_release(&b);
}

json_t *connect_get(json_t *o, const char *camel, const char *snake)
{
	json_t *v = json_object_get(o, camel);
	if (!v && snake)
		v = json_object_get(o, snake);
	return json_is_null(v) ? NULL : v;
}

char *connect_b64(const void *p, size_t n)
{
	return base64_encode(p, n);
}
