/* test-linux-loopdisk.c: lib/linux/loopdisk.c on real loop devices (needs
 * root and /dev/loop-control): the image is sparse, the template is made
 * once, the mount bounds writes with ENOSPC, a mount made in a private
 * mount namespace leaves no loop device once that namespace is gone, and
 * pruning templates waits for a create that holds one. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "linux/loopdisk.h"
#include "tap.h"
#include "util/fs.h"
#include "util/str.h"

static char dir[] = "/tmp/capsa-loopdisk-XXXXXX";

static char *path(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

/* Loop devices whose backing file is p. */
static int loops_of(const char *p)
{
	glob_t g;
	int n = 0;
	if (glob("/sys/block/loop*/loop/backing_file", 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct buf b = BUF_INIT;
		if (read_file_at(AT_FDCWD, g.gl_pathv[i], 4096, &b, NULL) == 0 && b.len &&
		    strncmp(buf_cstr(&b), p, strlen(p)) == 0)
			n++;
		buf_release(&b);
	}
	globfree(&g);
	return n;
}

static void test_create(void)
{
	struct capsa_error *err = NULL;
	_cleanup_free_ char *img = path("small.img"), *tpl = path("tpl");
	int r = loopdisk_create(img, 1 << 20, tpl, &err);
	ok(r < 0 && err->code == EINVAL && strstr(err->msg, "16 MiB"), "below the minimum refused: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	ok(access(img, F_OK) < 0, "nothing left of a refused image");

	_cleanup_free_ char *a = path("a.img"), *b = path("b.img");
	ok(loopdisk_create(a, (64 << 20) + 100, tpl, &err) == 0, "create 64 MiB (+100 bytes) from a template");
	struct stat st;
	r = stat(a, &st);
	ok(r == 0 && st.st_size == 64 << 20, "size rounded down to 4 KiB: %lld", (long long)st.st_size);
	ok(st.st_blocks * 512 < (4 << 20), "sparse: %lld bytes allocated", (long long)st.st_blocks * 512);
	_cleanup_free_ char *t = xasprintf("%s/ext4-%lld.img", tpl, 64LL << 20);
	struct stat t1, t2;
	ok(stat(t, &t1) == 0, "template made");
	ok(loopdisk_create(b, 64 << 20, tpl, &err) == 0 && stat(t, &t2) == 0 && t1.st_ino == t2.st_ino,
	   "second image from the same template");
	ok(loopdisk_create(b, 64 << 20, tpl, &err) < 0 && err->code == EEXIST, "an existing image is not replaced");
	capsa_error_free(err);
	err = NULL;
	_cleanup_free_ char *c = path("c.img");
	ok(loopdisk_create(c, 16 << 20, NULL, &err) == 0, "create without a template (mkfs directly)");
	capsa_error_free(err);
}

/* Whether pid waits for an flock of inode ino: a "->" line of /proc/locks. */
static bool waits_for_flock(pid_t pid, ino_t ino)
{
	struct buf b = BUF_INIT;
	bool found = false;
	if (read_file_at(AT_FDCWD, "/proc/locks", 4 << 20, &b, NULL) < 0 || buf_append(&b, "", 1) < 0) {
		buf_release(&b);
		return false;
	}
	char *save = NULL;
	for (char *line = strtok_r(b.data, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save)) {
		char *w = strstr(line, "-> FLOCK");
		int p = 0;
		unsigned long i = 0;
		found = w && sscanf(w, "-> FLOCK %*s %*s %d %*x:%*x:%lu", &p, &i) == 2 && p == pid && i == ino;
	}
	buf_release(&b);
	return found;
}

/* A prune racing a create: the create holds the template directory's
 * flock shared from finding its template until it has it open, and prune
 * removes templates only under the exclusive one. */
static void test_prune_templates(void)
{
	struct capsa_error *err = NULL;
	_cleanup_free_ char *tpl = path("ptpl"), *img = path("p.img");
	_cleanup_free_ char *t = xasprintf("%s/ext4-%lld.img", tpl, 16LL << 20);
	ok(loopdisk_create(img, 16 << 20, tpl, &err) == 0 && access(t, F_OK) == 0, "a template to prune");
	int fd = open(tpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	fstat(fd, &st);
	flock(fd, LOCK_SH); /* what a create holds */
	pid_t pid = fork();
	if (pid == 0) {
		size_t n = 0;
		int64_t bytes = 0;
		_exit(loopdisk_prune_templates(tpl, &n, &bytes, NULL) == 0 && n == 1 && bytes > 0 ? 0 : 1);
	}
	bool waiting = false;
	for (int i = 0; i < 3000 && !waiting; i++) {
		waiting = waits_for_flock(pid, st.st_ino);
		if (!waiting)
			usleep(10000);
	}
	ok(waiting, "prune waits for the lock a create holds");
	ok(access(t, F_OK) == 0, "...having removed nothing");
	flock(fd, LOCK_UN);
	close(fd);
	int status = -1;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && access(t, F_OK) < 0,
	   "then it removes the template, counting it and its bytes");
	ok(unlink(img) == 0 && loopdisk_create(img, 16 << 20, tpl, &err) == 0 && access(t, F_OK) == 0,
	   "the next create makes it again");
	size_t n = 0;
	int64_t bytes = 0;
	_cleanup_free_ char *none = path("none");
	ok(loopdisk_prune_templates(none, &n, &bytes, &err) == 0 && n == 0, "no template directory: nothing to do");
	capsa_error_free(err);
}

/* In a child with its own mount namespace: mount a.img, fill it. */
static int fill_child(const char *img, const char *mnt)
{
	struct capsa_error *err = NULL;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return 10;
	if (loopdisk_mount(img, mnt, &err) < 0) {
		printf("# %s\n", err->msg);
		return 11;
	}
	_cleanup_free_ char *upper = xasprintf("%s/upper", mnt), *f = xasprintf("%s/upper/fill", mnt);
	struct stat st;
	if (stat(upper, &st) < 0 || (st.st_mode & 07777) != 0755)
		return 12;
	int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return 13;
	static char chunk[1 << 16];
	int e = 0;
	for (int i = 0; i < 4096; i++)
		if (write(fd, chunk, sizeof(chunk)) < 0) {
			e = errno;
			break;
		}
	close(fd);
	if (e != ENOSPC)
		return 14;
	uint64_t used, total;
	/* ext4 keeps up to 2% back (s_resv_clusters) even without -m */
	if (loopdisk_usage(mnt, &used, &total, NULL) < 0 || total > (64 << 20) || used < total / 100 * 95)
		return 15;
	return 0;
}

static void test_mount_fill_and_vanish(void)
{
	_cleanup_free_ char *img = path("a.img"), *mnt = path("mnt");
	mkdir(mnt, 0700);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fill_child(img, mnt));
	int status = -1;
	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0,
	       "mounted in a private namespace: upper 0755, ENOSPC when full, statfs says full");
	struct stat st;
	ok(stat(img, &st) == 0 && st.st_blocks * 512 <= (64 << 20), "the host lost at most the image");
	/* autoclear: the device goes with the namespace's last mount */
	for (int i = 0; i < 400 && loops_of(img); i++)
		nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
	ok(loops_of(img) == 0, "no loop device left once the namespace is gone");
	struct buf b = BUF_INIT;
	read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 20, &b, NULL);
	ok(!strstr(buf_cstr(&b), mnt), "the host's mount table never had it");
	buf_release(&b);
}

static void test_mount_bad_image(void)
{
	struct capsa_error *err = NULL;
	_cleanup_free_ char *img = path("zero.img"), *mnt = path("mnt2");
	mkdir(mnt, 0700);
	int fd = open(img, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ok(fd >= 0 && ftruncate(fd, 32 << 20) == 0, "an unformatted image");
	close(fd);
	pid_t pid = fork();
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
			_exit(10);
		int r = loopdisk_mount(img, mnt, &err);
		_exit(r < 0 && strstr(err->msg, img) && strstr(err->msg, "mount disk image") ? 0 : 1);
	}
	int status = -1;
	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0, "mounting garbage fails naming the image");
	for (int i = 0; i < 400 && loops_of(img); i++)
		nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
	ok(loops_of(img) == 0, "and leaves no loop device");
}

int main(void)
{
	if (geteuid() != 0 || access("/dev/loop-control", W_OK) < 0) {
		printf("1..0 # SKIP needs root and /dev/loop-control\n");
		return 0;
	}
	if (!mkdtemp(dir))
		return 1;
	test_create();
	test_mount_fill_and_vanish();
	test_mount_bad_image();
	test_prune_templates();
	rm_rf_at(AT_FDCWD, dir, NULL);
	return done_testing();
}
