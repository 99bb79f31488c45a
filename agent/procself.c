/* procself.c: the agent's own /proc entries are off limits to file
 * operations.
 *
 * A process of the sandbox cannot read the agent's /proc/1/maps or
 * environ, nor lower its oom_score_adj: the agent is not dumpable and
 * holds capabilities they lack.  The agent itself can, so the file API
 * (which the agent serves) must not reach them for a client, whatever the
 * user: /proc/<agent's pid> (and all below it, tasks included), and
 * /proc/self and /proc/thread-self, which resolve to the agent when the
 * agent looks them up.
 *
 * The check is made on what a path resolved to, never on the path's
 * spelling: after open_beneath, the descriptor's file system is asked
 * (fstatfs) and, on procfs only, its canonical path (the kernel's
 * /proc/self/fd/N link), so symlinks into /proc, "..", /proc/self/../1
 * and the like are all caught.  Walks (listings, tar streams) leave those
 * entries out of /proc.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "agent.h"

#define PROC_MAGIC 0x9fa0

/* name is the agent's own entry of the procfs root */
static bool own_name(const char *name, size_t n)
{
	char pid[24];
	int pl = snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return (n == (size_t)pl && memcmp(name, pid, n) == 0) || (n == 4 && memcmp(name, "self", 4) == 0) ||
	       (n == 11 && memcmp(name, "thread-self", 11) == 0);
}

static bool on_proc(int fd)
{
	struct statfs sf;
	return fstatfs(fd, &sf) == 0 && sf.f_type == PROC_MAGIC;
}

bool agent_proc_is_own(int fd, const char *base)
{
	if (fd < 0 || !on_proc(fd))
		return false;
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return true; /* a procfs object we cannot place: refuse it */
	path[n] = '\0';
	/* the sandbox's procfs is mounted on /proc; one anywhere else (a
	 * volume of a procfs) is refused whole */
	if (strncmp(path, "/proc", 5) != 0 || (path[5] != '/' && path[5] != '\0'))
		return true;
	const char *rest = path + 5;
	while (*rest == '/')
		rest++;
	if (!*rest) {
		/* the procfs root itself: only its entry base matters */
		return base && own_name(base, strlen(base));
	}
	const char *slash = strchr(rest, '/');
	return own_name(rest, slash ? (size_t)(slash - rest) : strlen(rest));
}

bool agent_walk_hide(void *ud, int dirfd, const char *name, const struct stat *st)
{
	(void)ud;
	if (!(S_ISDIR(st->st_mode) || S_ISLNK(st->st_mode)) || !own_name(name, strlen(name)))
		return false;
	return agent_proc_is_own(dirfd, name);
}
