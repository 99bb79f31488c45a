/* state.c: the host state of capsa's networks that is not kernel state:
 * /run/capsa-net/<netns inode>/ (emptied at boot, when nothing it names
 * can live), its lock, and the leases.
 *
 * A lease is a file <bridge>/leases/<ip> naming its sandbox and the
 * sandbox's runtime directory.  It is held exactly while that directory's
 * lock is: the creator takes the lock before the lease, the supervisor
 * holds it for the sandbox's life.  So a lease whose lock is free belongs
 * to a sandbox that ended without its release (a crash); before it is
 * given again, what the dead sandbox left in nftables under that address
 * is removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net.h"
#include "util/fs.h"
#include "util/str.h"

#define STATE_ROOT "/run/capsa-net"

char *net_state_dir(struct capsa_error **err)
{
	struct stat st;
	if (stat("/proc/thread-self/ns/net", &st) < 0)
		return error_sys(err, errno, "network namespace of this thread"), NULL;
	char *dir = xasprintf(STATE_ROOT "/%llu", (unsigned long long)st.st_ino);
	if ((mkdir(STATE_ROOT, 0755) < 0 && errno != EEXIST) || (mkdir(dir, 0755) < 0 && errno != EEXIST)) {
		error_sys(err, errno, "create %s", dir);
		free(dir);
		return NULL;
	}
	return dir;
}

char *net_state_subdir(const char *sub, struct capsa_error **err)
{
	_cleanup_free_ char *dir = net_state_dir(err);
	if (!dir)
		return NULL;
	char *path = xasprintf("%s/%s", dir, sub);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		error_sys(err, errno, "create %s", path);
		free(path);
		return NULL;
	}
	return path;
}

int net_state_lock(struct capsa_error **err)
{
	_cleanup_free_ char *dir = net_state_dir(err);
	if (!dir)
		return -1;
	_cleanup_free_ char *path = xasprintf("%s/lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return error_sys(err, errno, "open %s", path);
	if (flock(fd, LOCK_EX) < 0) {
		error_sys(err, errno, "lock %s", path);
		close(fd);
		return -1;
	}
	return fd;
}

struct lease {
	char *id, *run_dir;
};

static void lease_release(struct lease *l)
{
	free(l->id);
	free(l->run_dir);
}

static int lease_read(int dfd, const char *name, struct lease *l)
{
	memset(l, 0, sizeof(*l));
	struct buf b = BUF_INIT;
	if (read_file_at(dfd, name, 4096, &b, NULL) < 0) {
		buf_release(&b);
		return -1;
	}
	_cleanup_strv_ char **lines = strv_split(buf_cstr(&b), '\n');
	buf_release(&b);
	for (char **p = lines; *p; p++) {
		if (str_has_prefix(*p, "id=") && !l->id)
			l->id = xstrdup(*p + 3);
		else if (str_has_prefix(*p, "run=") && !l->run_dir)
			l->run_dir = xstrdup(*p + 4);
	}
	return 0;
}

/* Whether the sandbox holding a lease may still use it: its lock held. */
static bool lease_live(const struct lease *l)
{
	if (!l->run_dir)
		return false;
	_cleanup_free_ char *lock = xasprintf("%s/lock", l->run_dir);
	_cleanup_close_ int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	return fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0;
}

/* What a dead owner of ip left in nftables: its map and set elements, and
 * its own chains and sets (each removal on its own: any may be gone). */
static void scrub_ip(uint32_t ip, const char *owner)
{
	if (owner && strlen(owner) >= 12)
		net_nft_sandbox_scrub(owner, ip);
}

static char *leases_dir(const char *bridge, struct capsa_error **err)
{
	_cleanup_free_ char *sub = xasprintf("%s", bridge);
	_cleanup_free_ char *net = net_state_subdir(sub, err);
	if (!net)
		return NULL;
	char *dir = xasprintf("%s/leases", net);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		error_sys(err, errno, "create %s", dir);
		free(dir);
		return NULL;
	}
	return dir;
}

/* The lowest address of n that no live lease holds; a stale lease's
 * address is scrubbed and given again. */
static int pick(int dfd, const struct net_network *n, uint32_t *out, struct capsa_error **err)
{
	uint32_t first = n->gateway + 1;
	uint32_t last = (n->subnet.addr | ~linux_ip4_mask(n->subnet.prefix)) - 1; /* below broadcast */
	char name[16];
	for (uint32_t ip = first; ip <= last && ip >= first; ip++) {
		linux_ip4_format(ip, name);
		struct stat st;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			*out = ip;
			return 0;
		}
		struct lease l;
		if (lease_read(dfd, name, &l) == 0 && lease_live(&l)) {
			lease_release(&l);
			continue;
		}
		scrub_ip(ip, l.id);
		lease_release(&l);
		unlinkat(dfd, name, 0);
		*out = ip;
		return 0;
	}
	char net[16];
	linux_ip4_format(n->subnet.addr, net);
	return error_set(err, ENOSPC, "network %s: every address of %s/%d is leased to a running sandbox", n->name, net,
			 n->subnet.prefix);
}

int net_lease_take(const struct net_network *n, const char *id, const char *run_dir, uint32_t *ip,
		   struct capsa_error **err)
{
	_cleanup_free_ char *dir = leases_dir(n->bridge, err);
	if (!dir)
		return -1;
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return error_sys(err, errno, "open %s", dir);
	if (pick(dfd, n, ip, err) < 0)
		return -1;
	char name[16];
	linux_ip4_format(*ip, name);
	_cleanup_free_ char *text = xasprintf("id=%s\nrun=%s\n", id, run_dir);
	if (write_file_atomic_at(dfd, name, text, strlen(text), 0600, false, err) < 0)
		return error_wrap(err, "lease %s on network %s", name, n->name);
	return 0;
}

void net_lease_drop(const char *bridge, uint32_t ip, const char *id)
{
	/* under the lock: a creator taking the address over must not read it
	 * between our read and our unlink */
	_cleanup_close_ int lock = net_state_lock(NULL);
	_cleanup_free_ char *dir = leases_dir(bridge, NULL);
	if (!dir || lock < 0)
		return;
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char name[16];
	linux_ip4_format(ip, name);
	struct lease l;
	if (dfd < 0 || lease_read(dfd, name, &l) < 0)
		return;
	if (l.id && strcmp(l.id, id) == 0)
		unlinkat(dfd, name, 0);
	lease_release(&l);
}
