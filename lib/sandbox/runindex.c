/* runindex.c: see runindex.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runindex.h"
#include "util/str.h"

static bool is_hex(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s);
	return n >= min && n <= max && strspn(s, "0123456789abcdef") == n;
}

int runindex_lookup(const char *run_root, const char *ref, char id[65])
{
	if (!ref || !*ref || strchr(ref, '/') || strcmp(ref, ".") == 0 || strcmp(ref, "..") == 0 ||
	    strlen(ref) > 128) {
		errno = EINVAL;
		return -1;
	}
	int rfd = open(run_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0)
		return -1;
	int rc = -1;
	struct stat st;
	if (is_hex(ref, 64, 64)) {
		if (fstatat(rfd, ref, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
			memcpy(id, ref, 65);
			rc = 0;
		}
		goto out;
	}
	char link[PATH_MAX];
	char *path = xasprintf("names/%s", ref);
	ssize_t n = readlinkat(rfd, path, link, sizeof(link) - 1);
	free(path);
	if (n == 64) {
		link[64] = '\0';
		if (is_hex(link, 64, 64) && fstatat(rfd, link, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
			memcpy(id, link, 65);
			rc = 0;
			goto out;
		}
	}
	if (is_hex(ref, 4, 63)) {
		int dfd = openat(rfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		struct dirent *de;
		int found = 0;
		size_t pl = strlen(ref);
		while (d && (de = readdir(d))) {
			if (strlen(de->d_name) == 64 && strncmp(de->d_name, ref, pl) == 0 && is_hex(de->d_name, 64, 64)) {
				if (found++ == 0)
					memcpy(id, de->d_name, 65);
			}
		}
		if (d)
			closedir(d);
		else if (dfd >= 0)
			close(dfd);
		if (found == 1)
			rc = 0;
		else if (found > 1)
			errno = EINVAL;
		else
			errno = ENOENT;
		goto out;
	}
	errno = ENOENT;
out:
	close(rfd);
	return rc;
}

void runindex_add(int run_fd, const char *name, const char *id)
{
	mkdirat(run_fd, "names", 0700);
	char *path = xasprintf("names/%s", name);
	char *tmp = xasprintf("names/.%s.%s", name, id);
	/* symlink + rename: the entry is replaced atomically, never missing */
	unlinkat(run_fd, tmp, 0);
	if (symlinkat(id, run_fd, tmp) == 0 && renameat(run_fd, tmp, run_fd, path) < 0)
		unlinkat(run_fd, tmp, 0);
	free(tmp);
	free(path);
}

void runindex_remove(int run_fd, const char *name, const char *id)
{
	char *path = xasprintf("names/%s", name);
	char link[80];
	ssize_t n = readlinkat(run_fd, path, link, sizeof(link) - 1);
	if (n == 64 && memcmp(link, id, 64) == 0)
		unlinkat(run_fd, path, 0);
	free(path);
}
