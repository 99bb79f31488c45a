/* proto.c: frame headers and TLV encoding. */
#include <string.h>

#include "proto.h"

void proto_hdr_encode(const struct proto_hdr *h, uint8_t out[PROTO_HDR_SIZE])
{
	put_be32(out, h->len);
	put_be16(out + 4, h->type);
	put_be16(out + 6, h->flags);
	put_be32(out + 8, h->stream);
}

int proto_hdr_decode(const uint8_t in[PROTO_HDR_SIZE], struct proto_hdr *h, uint32_t max_payload)
{
	h->len = get_be32(in);
	h->type = get_be16(in + 4);
	h->flags = get_be16(in + 6);
	h->stream = get_be32(in + 8);
	return h->len > max_payload ? -1 : 0;
}

size_t proto_frame_begin(struct buf *b, uint16_t type, uint16_t flags, uint32_t stream)
{
	size_t start = b->len;
	uint8_t hdr[PROTO_HDR_SIZE];
	struct proto_hdr h = { 0, type, flags, stream };
	proto_hdr_encode(&h, hdr);
	if (buf_append(b, hdr, sizeof(hdr)) < 0)
		abort();
	return start;
}

int proto_frame_end(struct buf *b, size_t start)
{
	size_t n = b->len - start - PROTO_HDR_SIZE;
	if (n > PROTO_MAX_PAYLOAD) {
		b->len = start;
		return -1;
	}
	put_be32((uint8_t *)b->data + start, (uint32_t)n);
	return 0;
}

int proto_frame_raw(struct buf *b, uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n)
{
	if (n > PROTO_MAX_PAYLOAD)
		return -1;
	size_t s = proto_frame_begin(b, type, flags, stream);
	if (n && buf_append(b, p, n) < 0)
		abort();
	return proto_frame_end(b, s);
}

void tlv_put(struct buf *b, uint16_t tag, const void *p, size_t n)
{
	uint8_t h[PROTO_TLV_HDR];
	put_be16(h, tag);
	put_be32(h + 2, (uint32_t)n);
	if (buf_append(b, h, sizeof(h)) < 0 || (n && buf_append(b, p, n) < 0))
		abort();
}

void tlv_put_str(struct buf *b, uint16_t tag, const char *s)
{
	if (s)
		tlv_put(b, tag, s, strlen(s));
}

void tlv_put_u64(struct buf *b, uint16_t tag, uint64_t v)
{
	uint8_t p[8];
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
	tlv_put(b, tag, p, 8);
}

void tlv_put_i64(struct buf *b, uint16_t tag, int64_t v)
{
	tlv_put_u64(b, tag, (uint64_t)v);
}

void tlv_put_flag(struct buf *b, uint16_t tag, bool on)
{
	if (on)
		tlv_put(b, tag, NULL, 0);
}

size_t tlv_begin(struct buf *b, uint16_t tag)
{
	size_t mark = b->len;
	tlv_put(b, tag, NULL, 0);
	return mark;
}

void tlv_end(struct buf *b, size_t mark)
{
	put_be32((uint8_t *)b->data + mark + 2, (uint32_t)(b->len - mark - PROTO_TLV_HDR));
}

int tlv_next(struct tlv_iter *it, uint16_t *tag, const uint8_t **val, uint32_t *len)
{
	if (it->left == 0)
		return 0;
	if (it->left < PROTO_TLV_HDR)
		return -1;
	uint32_t n = get_be32(it->p + 2);
	if (n > it->left - PROTO_TLV_HDR)
		return -1;
	*tag = get_be16(it->p);
	*len = n;
	*val = it->p + PROTO_TLV_HDR;
	it->p += PROTO_TLV_HDR + n;
	it->left -= PROTO_TLV_HDR + n;
	return 1;
}

int tlv_u64(const uint8_t *val, uint32_t len, uint64_t *out)
{
	if (len != 8)
		return -1;
	*out = (uint64_t)get_be32(val) << 32 | get_be32(val + 4);
	return 0;
}

int tlv_i64(const uint8_t *val, uint32_t len, int64_t *out)
{
	uint64_t u;
	if (tlv_u64(val, len, &u) < 0)
		return -1;
	*out = (int64_t)u;
	return 0;
}

char *tlv_str(const uint8_t *val, uint32_t len)
{
	if (memchr(val, '\0', len))
		return NULL;
	return xstrndup((const char *)val, len);
}

int tlv_find_u64(const void *p, size_t n, uint16_t want, uint64_t *out)
{
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	while (tlv_next(&it, &tag, &val, &len) > 0)
		if (tag == want)
			return tlv_u64(val, len, out);
	return -1;
}

bool tlv_has(const void *p, size_t n, uint16_t want)
{
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	while (tlv_next(&it, &tag, &val, &len) > 0)
		if (tag == want)
			return true;
	return false;
}

const char *proto_type_name(uint16_t type)
{
	switch (type) {
	case P_HELLO: return "HELLO";
	case P_ERROR: return "ERROR";
	case P_PING: return "PING";
	case P_PONG: return "PONG";
	case P_SHUTDOWN: return "SHUTDOWN";
	case P_PROC_START: return "PROC_START";
	case P_PROC_STARTED: return "PROC_STARTED";
	case P_DATA: return "DATA";
	case P_CREDIT: return "CREDIT";
	case P_EOF: return "EOF";
	case P_SIGNAL: return "SIGNAL";
	case P_RESIZE: return "RESIZE";
	case P_EXIT: return "EXIT";
	case P_INIT: return "INIT";
	case P_CANCEL: return "CANCEL";
	case P_DETACH: return "DETACH";
	case P_FILE_OP: return "FILE_OP";
	case P_FILE_RESULT: return "FILE_RESULT";
	case P_FILE_INFO: return "FILE_INFO";
	case P_FILE_EVENT: return "FILE_EVENT";
	case P_TUNNEL_OPEN: return "TUNNEL_OPEN";
	case P_TUNNEL_CLOSED: return "TUNNEL_CLOSED";
	case P_SPEC: return "SPEC";
	case P_READY: return "READY";
	case P_ATTACH: return "ATTACH";
	case P_STATUS: return "STATUS";
	case P_STOP: return "STOP";
	case P_KILL: return "KILL";
	case P_PAUSE: return "PAUSE";
	case P_RESUME: return "RESUME";
	case P_FINAL: return "FINAL";
	case P_OK: return "OK";
	case P_UPDATE: return "UPDATE";
	case P_TOUCH: return "TOUCH";
	case P_PROCS: return "PROCS";
	case P_PROC_SIGNAL: return "PROC_SIGNAL";
	case P_PORTS: return "PORTS";
	case P_PUBLISH: return "PUBLISH";
	}
	return "UNKNOWN";
}
