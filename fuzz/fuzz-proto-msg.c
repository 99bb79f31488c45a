/* fuzz-proto-msg.c: the decoders of the agent protocol's structured
 * payloads (lib/proto/msg.c): the first byte picks the decoder.  A payload
 * that decodes must encode and decode again to the same thing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	const char *why = NULL;
	struct buf b = BUF_INIT;
	switch (data[0] % 7) {
	case 0: {
		struct proto_proc x, y;
		if (proto_proc_decode(p, n, &x, &why) == 0) {
			proto_proc_encode(&b, &x);
			if (proto_proc_decode((const uint8_t *)b.data, b.len, &y, &why) < 0 || y.keep != x.keep)
				abort();
			proto_proc_release(&y);
			proto_proc_release(&x);
		}
		break;
	}
	case 1: {
		struct proto_sandbox x;
		if (proto_sandbox_decode(p, n, &x, &why) == 0)
			proto_sandbox_release(&x);
		break;
	}
	case 2: {
		struct proto_exit x;
		if (proto_exit_decode(p, n, &x) == 0)
			proto_exit_release(&x);
		break;
	}
	case 3: {
		struct proto_fileop x, y;
		if (proto_fileop_decode(p, n, &x, &why) == 0) {
			proto_fileop_encode(&b, &x);
			if (proto_fileop_decode((const uint8_t *)b.data, b.len, &y, &why) < 0 || y.op != x.op ||
			    strcmp(y.path, x.path) != 0 || y.flags != x.flags)
				abort();
			proto_fileop_release(&y);
			proto_fileop_release(&x);
		}
		break;
	}
	case 4: {
		struct proto_finfo x;
		if (proto_finfo_decode(p, n, &x) == 0)
			proto_finfo_release(&x);
		break;
	}
	case 5: {
		struct proto_procinfo x;
		if (proto_procinfo_decode(p, n, &x) == 0)
			proto_procinfo_release(&x);
		break;
	}
	default: {
		struct proto_port x;
		if (proto_port_decode(p, n, &x) == 0) {
			if (x.port == 0)
				abort();
			proto_port_release(&x);
		}
		break;
	}
	}
	buf_release(&b);
	return 0;
}
