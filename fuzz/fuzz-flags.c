/* fuzz-flags.c: the command-line values run, exec, create and serve parse
 * from a user (and that the API passes through in the same syntax): -v,
 * --tmpfs, -p, --ulimit, --cpus, sizes (--memory, --disk, --shm-size),
 * durations (--idle-timeout, --timeout), signals and --detach-keys.  The
 * first byte picks the parser; the rest is the value.  A value that parses
 * must satisfy the parser's own promises (bounds, round trips). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "capsa/sandbox.h"
#include "capsa/tunnel.h"
#include "opts.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_mount(const struct capsa_mount *m)
{
	if (!m->target || (!m->tmpfs && !m->source))
		abort();
	if (m->tmpfs && (m->tmpfs_size < 0 || m->tmpfs_mode < 0 || m->tmpfs_mode > 07777))
		abort();
}

static void fuzz_one(int which, const char *s)
{
	struct capsa_error *err = NULL;
	struct capsa_mount m;
	switch (which % 9) {
	case 0:
		if (opt_volume(&m, s, &err) == 0) {
			check_mount(&m);
			free((char *)m.source);
			free((char *)m.target);
		}
		break;
	case 1:
		if (opt_tmpfs(&m, s, &err) == 0)
			check_mount(&m);
		free((char *)m.target); /* set even on failure */
		break;
	case 2: {
		struct capsa_port p;
		char *storage = NULL;
		if (capsa_port_parse(s, &p, &storage, &err) == 0 && p.port == 0)
			abort();
		free(storage);
		break;
	}
	case 3: {
		struct capsa_rlimit r;
		if (opt_ulimit(&r, s, &err) == 0 && (r.resource < 0 || r.resource >= RLIM_NLIMITS || r.soft > r.hard))
			abort();
		break;
	}
	case 4: {
		int64_t milli;
		if (opt_cpus(s, &milli, &err) == 0 && (milli < 10 || milli > 4096 * 1000))
			abort();
		break;
	}
	case 5: {
		int64_t v;
		if (parse_size(s, &v, &err) == 0 && v < 0)
			abort();
		break;
	}
	case 6: {
		int64_t v;
		if (parse_duration_ms(s, &v, &err) == 0 && v < 0)
			abort();
		break;
	}
	case 7: {
		int sig;
		if (parse_signal(s, &sig, &err) == 0 && (sig <= 0 || sig >= 65))
			abort();
		break;
	}
	case 8: {
		char keys[16];
		int n = capsa_detach_keys_parse(s, keys, &err);
		if (n > 16 || (n < 0 && !err))
			abort();
		break;
	}
	}
	/* a failure must say why */
	if (err && (!err->msg || !*err->msg))
		abort();
	capsa_error_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	char *s = xstrndup((const char *)data + 1, size - 1);
	fuzz_one(data[0], s);
	free(s);
	return 0;
}
