/* paths.c: locating helper binaries without trusting $PATH. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "paths.h"
#include "str.h"

static char *try(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	if (access(p, X_OK) == 0)
		return p;
	free(p);
	return NULL;
}

char *capsa_helper_path(const char *name)
{
	const char *env = getenv("CAPSA_LIBEXEC_DIR");
	if (env && *env)
		return try(env, name);
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			char *p = try(self, name);
			if (p)
				return p;
			_cleanup_free_ char *rel = xasprintf("%s/../libexec/capsa", self);
			if ((p = try(rel, name)))
				return p;
		}
	}
	return try(CAPSA_LIBEXECDIR, name);
}
