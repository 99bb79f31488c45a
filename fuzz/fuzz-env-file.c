/* fuzz-env-file.c: --env-file contents (KEY=VALUE lines, comments, blank
 * lines, CRLF), read from a memfd by path the way the CLI reads a file.
 * Every accepted entry must be KEY=VALUE with a non-empty key. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "opts.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	if (fd < 0 && (fd = memfd_create("env-file", MFD_CLOEXEC)) < 0)
		abort();
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	char **env = NULL;
	struct capsa_error *err = NULL;
	if (opt_env_file(&env, path, &err) == 0) {
		for (char **e = env; e && *e; e++)
			if (**e == '=' || !strchr(*e, '='))
				abort();
	} else if (!err || !err->msg || !strstr(err->msg, "env file")) {
		abort();
	}
	capsa_error_free(err);
	strv_free(env);
	return 0;
}
