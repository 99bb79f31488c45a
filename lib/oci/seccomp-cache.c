/* seccomp-cache.c: compiled seccomp programs kept under the runtime root,
 * keyed by the profile, so that an engine starting many containers with
 * the same profile (podman's default: ~430 syscalls on three
 * architectures, ~40 ms in libseccomp here) compiles it once.
 *
 * <root>/@seccomp-cache/<fnv64 hex>: "capsa-seccomp-cache 1\n", the key
 * length and the key (the profile JSON, the capability set, the kernel
 * release and the libseccomp version), then the filter flags and the
 * program.  A hit needs the stored key to equal ours byte for byte, so the
 * short hash only names the file: a collision is a miss, never another
 * profile's program.  The root directory is the runtime's own (0700);
 * entries are written to a temporary name and renamed.  At most
 * CACHE_MAX entries: past that the cache is emptied and starts again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "linux/seccomp-profile.h"
#include "oci/internal.h"
#include "util/fs.h"
#include "util/str.h"

#define CACHE_DIR "@seccomp-cache" /* "@": never a container id */
#define CACHE_MAX 64
#define MAGIC "capsa-seccomp-cache 1\n"

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void make_key(struct buf *k, const char *json, uint64_t caps)
{
	struct utsname u;
	const struct scmp_version *v = seccomp_version();
	if (uname(&u) < 0)
		memset(&u, 0, sizeof(u));
	buf_appendf(k, "caps=%llx kernel=%s libseccomp=%u.%u.%u\n", (unsigned long long)caps, u.release, v->major,
		    v->minor, v->micro);
	buf_append(k, json, strlen(json));
}

static bool lookup(int dir, const char *name, const struct buf *key, struct buf *bpf, unsigned *flags)
{
	struct buf f = BUF_INIT;
	bool hit = false;
	size_t ml = strlen(MAGIC);
	if (read_file_at(dir, name, 8u << 20, &f, NULL) == 0 && f.len > ml + sizeof(uint64_t) &&
	    memcmp(f.data, MAGIC, ml) == 0) {
		uint64_t kl;
		memcpy(&kl, f.data + ml, sizeof(kl));
		size_t off = ml + sizeof(kl);
		if (kl == key->len && f.len >= off + kl + sizeof(unsigned) && memcmp(f.data + off, key->data, kl) == 0) {
			off += kl;
			memcpy(flags, f.data + off, sizeof(unsigned));
			off += sizeof(unsigned);
			bpf->len = 0;
			hit = f.len > off && buf_append(bpf, f.data + off, f.len - off) == 0;
		}
	}
	buf_release(&f);
	return hit;
}

static void prune(int dir)
{
	_cleanup_close_ int d2 = fcntl(dir, F_DUPFD_CLOEXEC, 3);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	if (!d)
		return;
	d2 = -1;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	if (n >= CACHE_MAX) {
		rewinddir(d);
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

int oci_seccomp_compile(const char *root, const char *json, uint64_t caps, struct buf *bpf, unsigned *flags,
			struct capsa_error **err)
{
	struct buf key = BUF_INIT;
	make_key(&key, json, caps);
	char name[32];
	snprintf(name, sizeof(name), "%016llx", (unsigned long long)fnv1a(key.data, key.len));
	_cleanup_free_ char *path = xasprintf("%s/%s", root, CACHE_DIR);
	_cleanup_close_ int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0 && errno == ENOENT && mkdir(path, 0700) == 0)
		dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir >= 0 && lookup(dir, name, &key, bpf, flags)) {
		buf_release(&key);
		return 0;
	}
	*flags = 0;
	if (seccomp_profile_compile_json_flags(json, strlen(json), caps, bpf, flags, err) < 0) {
		buf_release(&key);
		return -1;
	}
	if (dir >= 0) {
		/* a cache that cannot be written is only slower */
		prune(dir);
		struct buf f = BUF_INIT;
		uint64_t kl = key.len;
		buf_append(&f, MAGIC, strlen(MAGIC));
		buf_append(&f, &kl, sizeof(kl));
		buf_append(&f, key.data, key.len);
		buf_append(&f, flags, sizeof(*flags));
		buf_append(&f, bpf->data, bpf->len);
		write_file_atomic_at(dir, name, f.data, f.len, 0600, false, NULL);
		buf_release(&f);
	}
	buf_release(&key);
	return 0;
}
