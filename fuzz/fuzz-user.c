/* fuzz-user.c: "user[:group]" specs resolved against an image's own
 * /etc/passwd and /etc/group (lib/linux/user.c), both hostile.  The input
 * is SPEC \0 PASSWD \0 GROUP; the files are written into a scratch root
 * read through a root fd, as for a sandbox.  Also the id -> name maps. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/user.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[] = "/tmp/capsa-fuzz-user-XXXXXX";
static int rootfd = -1;

static void put(const char *name, const uint8_t *p, size_t n)
{
	int fd = openat(rootfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

static const uint8_t *next(const uint8_t **p, const uint8_t *end, size_t *n)
{
	const uint8_t *s = *p;
	const uint8_t *z = memchr(s, 0, (size_t)(end - s));
	*n = (size_t)((z ? z : end) - s);
	*p = z ? z + 1 : end;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (rootfd < 0) {
		char etc[64];
		if (!mkdtemp(base))
			abort();
		snprintf(etc, sizeof(etc), "%s/etc", base);
		if (mkdir(etc, 0755) < 0 || (rootfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			abort();
	}
	const uint8_t *p = data, *end = data + size;
	size_t ns, np, ng;
	const uint8_t *spec = next(&p, end, &ns), *pw = next(&p, end, &np), *gr = next(&p, end, &ng);
	put("etc/passwd", pw, np);
	put("etc/group", gr, ng);
	char *s = xstrndup((const char *)spec, ns);
	struct linux_user u = { 0 };
	struct capsa_error *err = NULL;
	if (linux_user_resolve(rootfd, s, &u, &err) == 0) {
		if (!u.home || (u.n_groups && !u.groups))
			abort();
		linux_user_release(&u);
	} else if (!err || !err->msg || !*err->msg) {
		abort();
	}
	capsa_error_free(err);
	free(s);
	struct linux_idnames m = { 0 };
	linux_idnames_load(rootfd, &m);
	for (size_t i = 0; i < m.n_users; i++)
		if (!m.users[i].name || linux_idnames_user(&m, m.users[i].id) == NULL)
			abort();
	linux_idnames_release(&m);
	return 0;
}
