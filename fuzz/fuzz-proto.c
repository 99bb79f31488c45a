/* fuzz-proto.c: the agent protocol codec on hostile bytes: frame headers
 * (length checked before use), and every structured payload decoder.  A
 * process spec that decodes must re-encode to something that decodes to
 * the same argv. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void payload(uint16_t type, const uint8_t *p, size_t n)
{
	const char *why;
	switch (type % 4) {
	case 0: {
		struct proto_proc a, b;
		if (proto_proc_decode(p, n, &a, &why) == 0) {
			struct buf enc = BUF_INIT;
			proto_proc_encode(&enc, &a);
			if (proto_proc_decode((uint8_t *)enc.data, enc.len, &b, &why) < 0)
				abort();
			if (strv_len(a.argv) != strv_len(b.argv))
				abort();
			for (size_t i = 0; a.argv && a.argv[i]; i++)
				if (strcmp(a.argv[i], b.argv[i]) != 0)
					abort();
			proto_proc_release(&b);
			buf_release(&enc);
			proto_proc_release(&a);
		}
		break;
	}
	case 1: {
		struct proto_sandbox s;
		if (proto_sandbox_decode(p, n, &s, &why) == 0)
			proto_sandbox_release(&s);
		break;
	}
	case 2: {
		struct proto_exit e;
		if (proto_exit_decode(p, n, &e) == 0)
			proto_exit_release(&e);
		break;
	}
	default: {
		int code;
		char *msg;
		if (proto_error_decode(p, n, &code, &msg) == 0)
			free(msg);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a stream of frames, as a reader would see it */
	while (size >= PROTO_HDR_SIZE) {
		struct proto_hdr h;
		if (proto_hdr_decode(data, &h, PROTO_MAX_PAYLOAD) < 0)
			break;
		if (size - PROTO_HDR_SIZE < h.len)
			break;
		payload(h.type, data + PROTO_HDR_SIZE, h.len);
		data += PROTO_HDR_SIZE + h.len;
		size -= PROTO_HDR_SIZE + h.len;
	}
	return 0;
}
