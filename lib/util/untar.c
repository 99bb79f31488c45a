/* untar.c: the tar extractor (tar.h).  The stream is hostile: see the
 * rules in tar.h.  Each entry is checked completely (name, type, link
 * target) before anything of it is created. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "tar.h"

enum { S_HEADER = 0, S_PAYLOAD };
enum { P_SKIP = 0, P_META, P_FILE, P_MAP };

/* ---- a set of strings (names the archive created) ---------------------- */

struct tarx_set {
	char **slots;
	size_t cap, n;
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static bool set_has(const struct tarx_set *s, const char *k, size_t klen)
{
	if (!s || !s->n)
		return false;
	char tmp[PATH_MAX];
	if (klen >= sizeof(tmp))
		return false;
	memcpy(tmp, k, klen);
	tmp[klen] = '\0';
	for (size_t i = str_hash(tmp) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (!s->slots[i])
			return false;
		if (strcmp(s->slots[i], tmp) == 0)
			return true;
	}
}

static void set_add(struct tarx_set **sp, const char *k)
{
	if (!*sp)
		*sp = xcalloc(1, sizeof(**sp));
	struct tarx_set *s = *sp;
	if (set_has(s, k, strlen(k)))
		return;
	if (2 * (s->n + 1) > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		char **ns = xcalloc(ncap, sizeof(char *));
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slots[i])
				continue;
			size_t j = str_hash(s->slots[i]) & (ncap - 1);
			while (ns[j])
				j = (j + 1) & (ncap - 1);
			ns[j] = s->slots[i];
		}
		free(s->slots);
		s->slots = ns;
		s->cap = ncap;
	}
	size_t j = str_hash(k) & (s->cap - 1);
	while (s->slots[j])
		j = (j + 1) & (s->cap - 1);
	s->slots[j] = xstrdup(k);
	s->n++;
}

static void set_free(struct tarx_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->cap; i++)
		free(s->slots[i]);
	free(s->slots);
	free(s);
}

/* ---- header fields --------------------------------------------------------- */

static int parse_num(const uint8_t *f, size_t len, uint64_t *out)
{
	if (f[0] & 0x80) {
		/* base-256: big-endian, the top bit marks the form, the next the sign */
		if (f[0] & 0x40)
			return -1;
		uint64_t v = f[0] & 0x3f;
		for (size_t i = 1; i < len; i++) {
			if (v >> 55)
				return -1;
			v = v << 8 | f[i];
		}
		*out = v;
		return 0;
	}
	uint64_t v = 0;
	size_t i = 0;
	while (i < len && (f[i] == ' ' || f[i] == '\0'))
		i++;
	if (i == len) {
		*out = 0;
		return 0;
	}
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	*out = v;
	return 0;
}

static bool checksum_ok(const uint8_t *h)
{
	uint64_t want;
	if (parse_num(h + 148, 8, &want) < 0)
		return false;
	unsigned usum = 0;
	int ssum = 0;
	for (size_t i = 0; i < TAR_BLOCK; i++) {
		uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
		usum += c;
		ssum += (signed char)c;
	}
	return want == usum || (int64_t)want == ssum;
}

static char *field_str(const uint8_t *f, size_t len)
{
	size_t n = 0;
	while (n < len && f[n])
		n++;
	return xstrndup((const char *)f, n);
}

/* ---- names ---------------------------------------------------------------- */

/* Normalizes an archive name: no leading '/', no "." or empty components;
 * -1 for a ".." component. */
static int clean_name(const char *raw, struct buf *out)
{
	out->len = 0;
	const char *p = raw;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return -1;
		if (n && !(n == 1 && p[0] == '.')) {
			if (out->len)
				buf_putc(out, '/');
			buf_append(out, p, n);
		}
		p += n;
	}
	buf_cstr(out);
	return out->len >= PATH_MAX ? -1 : 0;
}

static char *dest_path(const struct tarx *x, const char *rel)
{
	const char *d = x->o.dir ? x->o.dir : "";
	while (*d == '/')
		d++;
	if (!*d)
		return xstrdup(rel);
	return xasprintf("%s/%s", d, rel);
}

/* Opens the parent directory of rel, creating missing directories. */
static int open_parent(struct tarx *x, const char *rel, const char **base, char **full_out)
{
	char *full = dest_path(x, rel);
	int fd = open_parent_beneath(x->o.root_fd, full, x->o.res, base);
	if (fd < 0 && errno == ENOENT) {
		char *slash = strrchr(full, '/');
		if (slash) {
			*slash = '\0';
			int r = mkdir_p_beneath(x->o.root_fd, full, 0755, x->o.res);
			*slash = '/';
			if (r == 0)
				fd = open_parent_beneath(x->o.root_fd, full, x->o.res, base);
		}
	}
	*full_out = full;
	return fd;
}

static void clear_overrides(struct tarx *x)
{
	free(x->pax_path);
	free(x->pax_link);
	free(x->gnu_path);
	free(x->gnu_link);
	free(x->sparse_name);
	x->pax_path = x->pax_link = x->gnu_path = x->gnu_link = x->sparse_name = NULL;
	x->pax_size_set = x->pax_uid_set = x->pax_gid_set = x->pax_mtime_set = false;
	x->sparse_major = x->sparse_minor = -1;
	x->sparse_real_set = false;
}

static int parse_u64(const char *val, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(val, &end, 10);
	if (errno || *end || !*val || *val == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* GNU tar's sparse records (PAX 1.0: major 1, minor 0; the map is in the
 * data).  0: taken, 1: not one of them, -1: bad. */
static int parse_sparse_record(struct tarx *x, const char *k, size_t kl, char **val, struct capsa_error **err)
{
	uint64_t v;
	if (kl < 11 || memcmp(k, "GNU.sparse.", 11) != 0)
		return 1;
	k += 11;
	kl -= 11;
	if (kl == 4 && memcmp(k, "name", 4) == 0) {
		free(x->sparse_name);
		x->sparse_name = steal_pointer(val);
	} else if (kl == 8 && memcmp(k, "realsize", 8) == 0) {
		if (parse_u64(*val, 1ULL << 62, &x->sparse_real) < 0)
			return error_set(err, EINVAL, "tar stream: bad GNU.sparse.realsize '%.40s'", *val);
		x->sparse_real_set = true;
	} else if ((kl == 5 && memcmp(k, "major", 5) == 0) || (kl == 5 && memcmp(k, "minor", 5) == 0)) {
		if (parse_u64(*val, 1000, &v) < 0)
			return error_set(err, EINVAL, "tar stream: bad GNU.sparse.%.5s '%.40s'", k, *val);
		if (k[1] == 'a')
			x->sparse_major = (int)v;
		else
			x->sparse_minor = (int)v;
	} else {
		/* the 0.x formats (a map in the header: GNU.sparse.offset,
		 * numbytes, map, size) */
		return error_set(err, ENOTSUP, "tar stream: GNU sparse format 0.x is not supported (use 1.0)");
	}
	return 0;
}

static int parse_pax(struct tarx *x, struct capsa_error **err)
{
	const char *p = x->meta.data;
	size_t left = x->meta.len;
	while (left > 0) {
		size_t len = 0, i = 0;
		while (i < left && p[i] >= '0' && p[i] <= '9' && i < 10)
			len = len * 10 + (size_t)(p[i++] - '0');
		if (i == 0 || i >= left || p[i] != ' ' || len <= i + 1 || len > left || p[len - 1] != '\n')
			return error_set(err, EINVAL, "tar stream: malformed pax header at offset %llu",
					 (unsigned long long)x->offset);
		const char *kv = p + i + 1;
		size_t kvlen = len - i - 2;
		const char *eq = memchr(kv, '=', kvlen);
		if (!eq)
			return error_set(err, EINVAL, "tar stream: malformed pax record at offset %llu",
					 (unsigned long long)x->offset);
		size_t kl = (size_t)(eq - kv), vl = kvlen - kl - 1;
		const char *v = eq + 1;
		if (memchr(v, '\0', vl))
			return error_set(err, EINVAL, "tar stream: pax value with a NUL byte");
		_cleanup_free_ char *val = xstrndup(v, vl);
		char *end;
		int sr = parse_sparse_record(x, kv, kl, &val, err);
		if (sr < 0)
			return -1;
		if (sr == 0) {
		} else if (kl == 4 && memcmp(kv, "path", 4) == 0) {
			free(x->pax_path);
			x->pax_path = steal_pointer(&val);
		} else if (kl == 8 && memcmp(kv, "linkpath", 8) == 0) {
			free(x->pax_link);
			x->pax_link = steal_pointer(&val);
		} else if (kl == 4 && memcmp(kv, "size", 4) == 0) {
			errno = 0;
			x->pax_size = strtoull(val, &end, 10);
			if (errno || *end || !*val || x->pax_size > (1ULL << 62))
				return error_set(err, EINVAL, "tar stream: bad pax size '%s'", val);
			x->pax_size_set = true;
		} else if ((kl == 3 && memcmp(kv, "uid", 3) == 0) || (kl == 3 && memcmp(kv, "gid", 3) == 0)) {
			errno = 0;
			unsigned long long id = strtoull(val, &end, 10);
			if (errno || *end || !*val || id > UINT32_MAX)
				return error_set(err, EINVAL, "tar stream: bad pax id '%s'", val);
			if (kv[0] == 'u') {
				x->pax_uid = id;
				x->pax_uid_set = true;
			} else {
				x->pax_gid = id;
				x->pax_gid_set = true;
			}
		} else if (kl == 5 && memcmp(kv, "mtime", 5) == 0) {
			x->pax_mtime = strtoll(val, NULL, 10);
			x->pax_mtime_set = true;
		}
		p += len;
		left -= len;
	}
	return 0;
}

/* ---- entries ----------------------------------------------------------------- */

struct entry {
	const char *name; /* cleaned, relative */
	char type;
	uint32_t mode;
	uint64_t uid, gid, size;
	int64_t mtime;
	const char *link;
};

static void set_owner_mode(struct tarx *x, int fd, const char *base, const struct entry *e, bool symlink)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	if (x->o.owner == TARX_OWNER_ARCHIVE) {
		uid = (uid_t)e->uid;
		gid = (gid_t)e->gid;
	} else if (x->o.owner == TARX_OWNER_FIXED) {
		uid = x->o.uid;
		gid = x->o.gid;
	}
	if (symlink) {
		if (uid != (uid_t)-1 && fchownat(fd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			/* an id the file system cannot store: keep ours */
		}
		return;
	}
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0) {
		/* an id the file system cannot store: keep ours */
	}
	mode_t mode = e->mode & 07777;
	if (x->o.strip_setid)
		mode &= ~(mode_t)(S_ISUID | S_ISGID);
	fchmod(fd, mode);
}

/* The name at base in pfd may be replaced by a regular file (renamed over
 * it once complete): anything but a directory. */
static int room_for_file(int pfd, const char *base, const char *name, struct capsa_error **err)
{
	struct stat st;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : error_sys(err, errno, "tar entry '%s'", name);
	if (S_ISDIR(st.st_mode))
		return error_set(err, EISDIR, "tar entry '%s': cannot replace a directory with a file", name);
	return 0;
}

/* The name at base in pfd is about to be replaced by a non-directory. */
static int make_room(int pfd, const char *base, const char *name, struct capsa_error **err)
{
	struct stat st;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : error_sys(err, errno, "tar entry '%s'", name);
	if (S_ISDIR(st.st_mode))
		return error_set(err, EISDIR, "tar entry '%s': cannot replace a directory with a file", name);
	if (unlinkat(pfd, base, 0) < 0)
		return error_sys(err, errno, "tar entry '%s': replace", name);
	return 0;
}

static int create_entry(struct tarx *x, const struct entry *e, struct capsa_error **err)
{
	const char *base;
	_cleanup_free_ char *full = NULL;
	_cleanup_close_ int pfd = open_parent(x, e->name, &base, &full);
	if (pfd < 0)
		return error_sys(err, errno, "tar entry '%s'", e->name);
	struct timespec ts[2] = { { e->mtime, 0 }, { e->mtime, 0 } };
	switch (e->type) {
	case '0': {
		if (room_for_file(pfd, base, e->name, err) < 0)
			return -1;
		/* a temporary name until complete: a failure (a full disk) leaves
		 * neither a truncated file nor a damaged old one */
		_cleanup_free_ char *rnd = random_hex(8);
		_cleanup_free_ char *tmp = xasprintf(".capsa-tar-%s", rnd);
		int fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd < 0)
			return error_sys(err, errno, "tar entry '%s': create", e->name);
		x->fd = fd;
		x->fd_dir = steal_fd(&pfd);
		x->fd_tmp = steal_pointer(&tmp);
		x->fd_base = xstrdup(base);
		free(x->fd_name);
		x->fd_name = xstrdup(e->name);
		return 0;
	}
	case '5': {
		if (mkdirat(pfd, base, 0700) < 0) {
			struct stat st;
			if (errno != EEXIST || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
				return error_sys(err, errno, "tar entry '%s': create directory", e->name);
			if (!S_ISDIR(st.st_mode))
				return error_set(err, ENOTDIR, "tar entry '%s': cannot replace a file with a directory",
						 e->name);
		}
		_cleanup_close_ int dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return error_sys(err, errno, "tar entry '%s'", e->name);
		set_owner_mode(x, dfd, NULL, e, false);
		if (x->n_dirs < 16384) {
			x->dirs = xrealloc(x->dirs, (x->n_dirs + 1) * sizeof(*x->dirs));
			x->dirs[x->n_dirs].rel = xstrdup(e->name);
			x->dirs[x->n_dirs].mtime = e->mtime;
			x->n_dirs++;
		}
		return 0;
	}
	case '2':
		if (make_room(pfd, base, e->name, err) < 0)
			return -1;
		if (symlinkat(e->link, pfd, base) < 0)
			return error_sys(err, errno, "tar entry '%s': create symlink", e->name);
		set_owner_mode(x, pfd, base, e, true);
		utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW);
		set_add(&x->symlinks, e->name);
		return 0;
	case '1': {
		const char *tbase;
		_cleanup_free_ char *tfull = NULL;
		_cleanup_close_ int tpfd = open_parent(x, e->link, &tbase, &tfull);
		if (tpfd < 0)
			return error_sys(err, errno, "tar entry '%s': hard link to '%s'", e->name, e->link);
		if (make_room(pfd, base, e->name, err) < 0)
			return -1;
		if (linkat(tpfd, tbase, pfd, base, 0) < 0)
			return error_sys(err, errno, "tar entry '%s': hard link to '%s'", e->name, e->link);
		set_add(&x->files, e->name);
		return 0;
	}
	}
	return error_set(err, EINVAL, "tar entry '%s': unsupported type", e->name);
}

static void drop_file(struct tarx *x)
{
	if (x->fd >= 0) {
		close(x->fd);
		unlinkat(x->fd_dir, x->fd_tmp, 0);
	}
	if (x->fd_dir >= 0)
		close(x->fd_dir);
	free(x->fd_tmp);
	free(x->fd_base);
	free(x->map);
	x->fd = x->fd_dir = -1;
	x->fd_tmp = x->fd_base = NULL;
	x->map = NULL;
	x->n_map = x->ri = 0;
	x->roff = x->map_lines = 0;
	x->sparse = false;
}

/* The file is complete: its size (a sparse file's holes at the end), owner,
 * mode and times, then its name. */
static int finish_file(struct tarx *x, struct capsa_error **err)
{
	if (x->fd < 0)
		return 0;
	if (x->sparse && ftruncate(x->fd, (off_t)x->real_size) < 0) {
		error_sys(err, errno, "tar entry '%s': size %llu", x->fd_name, (unsigned long long)x->real_size);
		drop_file(x);
		return -1;
	}
	struct entry e = { .name = x->fd_name, .mode = x->fd_mode, .uid = x->fd_uid, .gid = x->fd_gid,
			   .mtime = x->fd_mtime };
	set_owner_mode(x, x->fd, NULL, &e, false);
	struct timespec ts[2] = { { e.mtime, 0 }, { e.mtime, 0 } };
	futimens(x->fd, ts);
	int rc = close(x->fd) < 0 ? -1 : renameat(x->fd_dir, x->fd_tmp, x->fd_dir, x->fd_base);
	x->fd = -1;
	if (rc < 0) {
		error_sys(err, errno, "tar entry '%s'", x->fd_name);
		unlinkat(x->fd_dir, x->fd_tmp, 0);
		drop_file(x);
		return -1;
	}
	set_add(&x->files, x->fd_name);
	drop_file(x);
	return 0;
}

/* The entry's name as archived: pax path, GNU long name, or ustar's
 * prefix/name. */
static char *raw_name(const struct tarx *x, const uint8_t *h)
{
	if (x->sparse_name)
		return xstrdup(x->sparse_name);
	if (x->pax_path)
		return xstrdup(x->pax_path);
	if (x->gnu_path)
		return xstrdup(x->gnu_path);
	_cleanup_free_ char *name = field_str(h, 100);
	_cleanup_free_ char *prefix = memcmp(h + 257, "ustar\0", 6) == 0 ? field_str(h + 345, 155) : NULL;
	return prefix && *prefix ? xasprintf("%s/%s", prefix, name) : xstrdup(name);
}

/* The rules every entry passes before anything of it is created.  0: go
 * on (lclean holds a hard link's cleaned target), 1: nothing to create (the
 * destination itself), -1: refused. */
static int check_entry(struct tarx *x, char type, const char *name, const char *raw, const char *link,
		       struct buf *lclean, struct capsa_error **err)
{
	if (type == '3' || type == '4' || type == '6')
		return error_set(err, EPERM, "tar entry '%s': device and fifo entries are not allowed", name);
	if (type != '0' && type != '1' && type != '2' && type != '5')
		return error_set(err, EPERM, "tar entry '%s': unsupported entry type '%c'", name,
				 type >= 32 && type < 127 ? type : '?');
	if (!*name) {
		/* the destination itself ("./"): nothing to create */
		if (type == '5')
			return 1;
		return error_set(err, EINVAL, "tar entry '%s': empty name", raw);
	}
	/* nothing may go through a symlink this archive created */
	for (size_t i = 1; name[i]; i++)
		if (name[i] == '/' && set_has(x->symlinks, name, i))
			return error_set(err, EPERM, "tar entry '%s': goes through symlink '%.*s' of the same archive",
					 name, (int)i, name);
	if (type == '1') {
		if (clean_name(link, lclean) < 0 || !lclean->len)
			return error_set(err, EPERM, "tar entry '%s': hard link target '%.200s' leaves the destination",
					 name, link);
		if (!set_has(x->files, lclean->data, lclean->len))
			return error_set(err, EPERM, "tar entry '%s': hard link to '%s', which the archive did not create",
					 name, buf_cstr(lclean));
	}
	if (type == '2' && !*link)
		return error_set(err, EINVAL, "tar entry '%s': symlink without a target", name);
	return 0;
}

static int handle_header(struct tarx *x, struct capsa_error **err)
{
	const uint8_t *h = x->block;
	bool zero = true;
	for (size_t i = 0; i < TAR_BLOCK && zero; i++)
		zero = h[i] == 0;
	if (zero) {
		x->ended = true;
		return 0;
	}
	if (!checksum_ok(h))
		return error_set(err, EINVAL, "tar stream: bad header checksum at offset %llu",
				 (unsigned long long)x->offset);
	if (++x->entries > TAR_MAX_ENTRIES)
		return error_set(err, E2BIG, "tar stream: more than %u entries", TAR_MAX_ENTRIES);
	char type = (char)h[156];
	uint64_t size, mode, uid, gid, mtime;
	if (parse_num(h + 124, 12, &size) < 0 || parse_num(h + 100, 8, &mode) < 0 || parse_num(h + 108, 8, &uid) < 0 ||
	    parse_num(h + 116, 8, &gid) < 0 || parse_num(h + 136, 12, &mtime) < 0)
		return error_set(err, EINVAL, "tar stream: bad numeric field at offset %llu", (unsigned long long)x->offset);
	if (x->pax_size_set && type != 'x' && type != 'g')
		size = x->pax_size;
	if (size > (1ULL << 62))
		return error_set(err, EINVAL, "tar stream: entry size too large at offset %llu",
				 (unsigned long long)x->offset);
	x->data_left = size;
	x->pad_left = (TAR_BLOCK - (size_t)(size % TAR_BLOCK)) % TAR_BLOCK;
	x->state = S_PAYLOAD;
	x->meta_kind = P_SKIP;
	if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
		uint64_t cap = type == 'L' || type == 'K' ? PATH_MAX : TAR_MAX_PAX;
		if (size > cap)
			return error_set(err, E2BIG, "tar stream: %s record of %llu bytes at offset %llu",
					 type == 'x' || type == 'g' ? "pax" : "long-name", (unsigned long long)size,
					 (unsigned long long)x->offset);
		x->meta.len = 0;
		x->meta_kind = P_META;
		x->meta_type = type;
		if (size == 0)
			x->state = S_HEADER;
		return 0;
	}
	_cleanup_free_ char *raw = raw_name(x, h);
	_cleanup_free_ char *link = x->pax_link ? xstrdup(x->pax_link)
				    : x->gnu_link ? xstrdup(x->gnu_link)
						  : field_str(h + 157, 100);
	struct buf clean = BUF_INIT;
	if (clean_name(raw, &clean) < 0) {
		buf_release(&clean);
		return error_set(err, EPERM, "tar entry '%.200s': path leaves the destination", raw);
	}
	_cleanup_free_ char *name = buf_steal(&clean);
	if (x->pax_uid_set)
		uid = x->pax_uid;
	if (x->pax_gid_set)
		gid = x->pax_gid;
	if (x->pax_mtime_set)
		mtime = (uint64_t)x->pax_mtime;
	if (type == '\0' || type == '7')
		type = '0';
	bool sparse = x->sparse_major >= 0 || x->sparse_name;
	if (sparse && (x->sparse_major != 1 || x->sparse_minor != 0 || !x->sparse_real_set || type != '0'))
		return error_set(err, ENOTSUP, "tar entry '%.200s': only GNU sparse format 1.0 of a regular file, with "
				 "its realsize, is supported", name);
	uint64_t real = x->sparse_real;
	clear_overrides(x);
	struct buf lclean = BUF_INIT;
	int ck = check_entry(x, type, name, raw, link, &lclean, err);
	if (ck != 0) {
		buf_release(&lclean);
		return ck < 0 ? -1 : 0;
	}
	struct entry e = { .name = name, .type = type, .mode = (uint32_t)mode, .uid = uid, .gid = gid,
			   .size = size, .mtime = (int64_t)mtime, .link = type == '1' ? buf_cstr(&lclean) : link };
	if (type != '0') {
		x->data_left = size; /* a link or directory's data is skipped */
	}
	int rc = create_entry(x, &e, err);
	buf_release(&lclean);
	if (rc < 0)
		return -1;
	if (type == '0') {
		x->meta_kind = sparse ? P_MAP : P_FILE;
		x->fd_mode = e.mode;
		x->fd_uid = e.uid;
		x->fd_gid = e.gid;
		x->fd_mtime = e.mtime;
		x->sparse = sparse;
		x->real_size = real;
		x->meta.len = 0;
		if (sparse && size == 0)
			return error_set(err, EINVAL, "tar entry '%s': sparse file without a map", name);
		if (size == 0) {
			x->state = S_HEADER;
			return finish_file(x, err);
		}
	}
	if (x->data_left == 0 && x->pad_left == 0)
		x->state = S_HEADER;
	return 0;
}

static int end_meta(struct tarx *x, struct capsa_error **err)
{
	char kind = x->meta_type;
	if (kind == 'x')
		return parse_pax(x, err);
	if (kind == 'L' || kind == 'K') {
		size_t n = strnlen(x->meta.data ? x->meta.data : "", x->meta.len);
		char *s = xstrndup(x->meta.data ? x->meta.data : "", n);
		if (kind == 'L') {
			free(x->gnu_path);
			x->gnu_path = s;
		} else {
			free(x->gnu_link);
			x->gnu_link = s;
		}
	}
	return 0;
}

/* ---- file data and sparse maps ------------------------------------------------- */

/* The next "NUMBER\n" of a sparse map: 1 read, 0 not complete yet, -1 bad. */
static int map_number(const char **p, const char *end, uint64_t *v)
{
	const char *q = *p;
	uint64_t n = 0;
	size_t digits = 0;
	for (; q < end && *q >= '0' && *q <= '9'; q++, digits++) {
		if (digits >= 19)
			return -1;
		n = n * 10 + (uint64_t)(*q - '0');
	}
	if (q == end)
		return 0;
	if (*q != '\n' || digits == 0)
		return -1;
	*p = q + 1;
	*v = n;
	return 1;
}

/* Parses the map of a PAX 1.0 sparse file (its count, then an offset and a
 * size per region) from x->meta: 1 complete, 0 more blocks needed, -1 bad. */
static int parse_map(struct tarx *x, struct capsa_error **err)
{
	const char *p = x->meta.data, *end = p + x->meta.len;
	uint64_t count, prev_end = 0, total = 0;
	int r = map_number(&p, end, &count);
	if (r > 0 && count > TAR_SPARSE_MAX)
		return error_set(err, E2BIG, "tar entry '%s': sparse map of more than %u regions", x->fd_name,
				 TAR_SPARSE_MAX);
	struct tar_region *map = r > 0 ? xcalloc(count ? count : 1, sizeof(*map)) : NULL;
	for (uint64_t i = 0; r > 0 && i < count; i++) {
		r = map_number(&p, end, &map[i].off);
		if (r > 0)
			r = map_number(&p, end, &map[i].len);
		/* in order, not overlapping, inside the file */
		if (r > 0 && (map[i].off < prev_end || map[i].len > x->real_size ||
			      map[i].off > x->real_size - map[i].len))
			r = -1;
		if (r > 0) {
			prev_end = map[i].off + map[i].len;
			total += map[i].len;
		}
	}
	if (r < 0 || (r > 0 && total != x->data_left)) {
		free(map);
		return error_set(err, EINVAL, "tar entry '%s': malformed sparse map", x->fd_name);
	}
	if (r == 0) {
		free(map);
		return 0;
	}
	x->map = map;
	x->n_map = (size_t)count;
	return 1;
}

/* One more block of a sparse map arrived: parsed once it holds as many
 * lines as the count on its first line says (never once per block). */
static int map_block(struct tarx *x, struct capsa_error **err)
{
	size_t from = (x->meta.len - 1) / TAR_BLOCK * TAR_BLOCK;
	for (size_t i = from; i < x->meta.len; i++)
		x->map_lines += x->meta.data[i] == '\n';
	const char *p = x->meta.data;
	uint64_t count = 0;
	int r = x->map_lines ? map_number(&p, x->meta.data + x->meta.len, &count) : 0;
	if (r > 0 && count > TAR_SPARSE_MAX)
		return error_set(err, E2BIG, "tar entry '%s': sparse map of more than %u regions", x->fd_name,
				 TAR_SPARSE_MAX);
	if (r < 0 || (r > 0 && x->map_lines < 2 * count + 1))
		r = r < 0 ? -1 : 0;
	else
		r = parse_map(x, err);
	if (r == 0 && x->data_left > 0 && x->meta.len < (size_t)(2 * TAR_SPARSE_MAX + 1) * 21 + TAR_BLOCK)
		return 0;
	if (r <= 0)
		return error_set(err, EINVAL, "tar entry '%s': malformed sparse map", x->fd_name);
	x->meta.len = 0;
	x->map_lines = 0;
	x->meta_kind = P_FILE;
	return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* File data: in order, or into the regions of a sparse file's map (the
 * holes between them stay holes). */
static int write_data(struct tarx *x, const uint8_t *p, size_t n, struct capsa_error **err)
{
	x->written += n;
	if (x->o.max_bytes && x->written > x->o.max_bytes)
		return error_set(err, EFBIG, "tar entry '%s': more than %llu bytes of files in all", x->fd_name,
				 (unsigned long long)x->o.max_bytes);
	while (n > 0) {
		int r;
		size_t k = n;
		if (!x->sparse) {
			r = write_all(x->fd, p, n);
		} else {
			while (x->ri < x->n_map && x->roff == x->map[x->ri].len) {
				x->ri++;
				x->roff = 0;
			}
			if (x->ri == x->n_map)
				return error_set(err, EINVAL, "tar entry '%s': more data than its sparse map",
						 x->fd_name);
			k = (size_t)MIN((uint64_t)n, x->map[x->ri].len - x->roff);
			r = pwrite_all(x->fd, p, k, (off_t)(x->map[x->ri].off + x->roff));
			x->roff += k;
		}
		if (r < 0)
			return error_sys(err, errno, "tar entry '%s': write", x->fd_name);
		p += k;
		n -= k;
	}
	return 0;
}

void tarx_init(struct tarx *x, const struct tarx_opts *o)
{
	memset(x, 0, sizeof(*x));
	x->o = *o;
	x->fd = x->fd_dir = -1;
	x->sparse_major = x->sparse_minor = -1;
}

int tarx_feed(struct tarx *x, const void *data, size_t n, struct capsa_error **err)
{
	const uint8_t *p = data;
	while (n > 0 && !x->ended) {
		if (x->state == S_HEADER) {
			size_t k = MIN(n, (size_t)TAR_BLOCK - x->have);
			memcpy(x->block + x->have, p, k);
			x->have += k;
			p += k;
			n -= k;
			if (x->have < TAR_BLOCK)
				continue;
			x->have = 0;
			if (handle_header(x, err) < 0)
				return -1;
			x->offset += TAR_BLOCK;
			continue;
		}
		if (x->data_left > 0) {
			size_t k = (size_t)MIN((uint64_t)n, x->data_left);
			if (x->meta_kind == P_MAP) {
				/* a block at a time: the map ends at a block boundary */
				k = MIN(k, (size_t)TAR_BLOCK - x->meta.len % TAR_BLOCK);
				buf_append(&x->meta, p, k);
			} else if (x->meta_kind == P_META) {
				buf_append(&x->meta, p, k);
			} else if (x->meta_kind == P_FILE && x->fd >= 0 && write_data(x, p, k, err) < 0) {
				return -1;
			}
			p += k;
			n -= k;
			x->data_left -= k;
			x->offset += k;
			if (x->meta_kind == P_MAP && (x->meta.len % TAR_BLOCK == 0 || x->data_left == 0) &&
			    map_block(x, err) < 0)
				return -1;
			if (x->data_left == 0) {
				if (x->meta_kind == P_META && end_meta(x, err) < 0)
					return -1;
				if (x->meta_kind == P_FILE && finish_file(x, err) < 0)
					return -1;
			}
		} else if (x->pad_left > 0) {
			size_t k = MIN(n, x->pad_left);
			p += k;
			n -= k;
			x->pad_left -= k;
			x->offset += k;
		}
		if (x->data_left == 0 && x->pad_left == 0)
			x->state = S_HEADER;
	}
	return 0;
}

int tarx_finish(struct tarx *x, struct capsa_error **err)
{
	if (!x->ended && (x->state != S_HEADER || x->have != 0))
		return error_set(err, EPIPE, "tar stream: truncated at offset %llu", (unsigned long long)x->offset);
	for (size_t i = x->n_dirs; i-- > 0;) {
		_cleanup_free_ char *full = dest_path(x, x->dirs[i].rel);
		_cleanup_close_ int fd = open_beneath(x->o.root_fd, full, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, x->o.res);
		if (fd >= 0) {
			struct timespec ts[2] = { { x->dirs[i].mtime, 0 }, { x->dirs[i].mtime, 0 } };
			futimens(fd, ts);
		}
	}
	return 0;
}

void tarx_release(struct tarx *x)
{
	drop_file(x);
	clear_overrides(x);
	buf_release(&x->meta);
	free(x->fd_name);
	set_free(x->symlinks);
	set_free(x->files);
	for (size_t i = 0; i < x->n_dirs; i++)
		free(x->dirs[i].rel);
	free(x->dirs);
	memset(x, 0, sizeof(*x));
	x->fd = x->fd_dir = -1;
}
