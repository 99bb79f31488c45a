/* fuzz-seccomp.c: seccomp profiles (docker's JSON and the OCI
 * linux.seccomp object) given with --security-opt seccomp=FILE or in an
 * OCI config.  A profile that compiles gives a whole number of classic
 * BPF instructions, within the kernel's limit. */
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>

#include "linux/seccomp-profile.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every filter we create is released: counted here (the build wraps the
 * two calls), because leaks inside libseccomp itself are suppressed. */
static long live_filters;
scmp_filter_ctx __real_seccomp_init(uint32_t def_action);
void __real_seccomp_release(scmp_filter_ctx ctx);
scmp_filter_ctx __wrap_seccomp_init(uint32_t def_action);
void __wrap_seccomp_release(scmp_filter_ctx ctx);

scmp_filter_ctx __wrap_seccomp_init(uint32_t def_action)
{
	scmp_filter_ctx ctx = __real_seccomp_init(def_action);
	if (ctx)
		live_filters++;
	return ctx;
}

void __wrap_seccomp_release(scmp_filter_ctx ctx)
{
	if (ctx)
		live_filters--;
	__real_seccomp_release(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 * 1024)
		return 0;
	struct buf bpf = BUF_INIT;
	struct capsa_error *err = NULL;
	unsigned flags = 0;
	/* docker's default capabilities, then all of them */
	uint64_t caps = size && data[0] & 1 ? ~0ULL : 0xa80425fbULL;
	if (seccomp_profile_compile_json_flags((const char *)data, size, caps, &bpf, &flags, &err) == 0) {
		if (bpf.len == 0 || bpf.len % 8 != 0 || bpf.len / 8 > 4096)
			abort();
	} else if (!err || !err->msg || !*err->msg) {
		abort();
	}
	capsa_error_free(err);
	buf_release(&bpf);
	if (live_filters != 0)
		abort(); /* a filter was not released */
	return 0;
}
