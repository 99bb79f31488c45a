/* tar.c: the tar writer (tar.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tar.h"

/* ustar header field offsets and sizes */
enum {
	H_NAME = 0, H_MODE = 100, H_UID = 108, H_GID = 116, H_SIZE = 124, H_MTIME = 136, H_CHKSUM = 148,
	H_TYPE = 156, H_LINK = 157, H_MAGIC = 257, H_VERSION = 263, H_UNAME = 265, H_GNAME = 297, H_PREFIX = 345,
};

static bool fits_octal(uint64_t v, size_t len)
{
	/* len - 1 digits and a NUL */
	return (len - 1) * 3 >= 64 || v < (1ULL << ((len - 1) * 3));
}

static void put_octal(uint8_t *f, size_t len, uint64_t v)
{
	for (size_t i = len - 1; i-- > 0;) {
		f[i] = (uint8_t)('0' + (v & 7));
		v >>= 3;
	}
	f[len - 1] = '\0';
}

static void pax_record(struct buf *b, const char *key, const char *val)
{
	/* "LEN key=value\n", LEN counting itself */
	size_t body = 1 + strlen(key) + 1 + strlen(val) + 1;
	size_t len = body + 1;
	while (len != body + (size_t)snprintf(NULL, 0, "%zu", len))
		len = body + (size_t)snprintf(NULL, 0, "%zu", len);
	buf_appendf(b, "%zu %s=%s\n", len, key, val);
}

static void checksum(uint8_t *h)
{
	memset(h + H_CHKSUM, ' ', 8);
	unsigned sum = 0;
	for (size_t i = 0; i < TAR_BLOCK; i++)
		sum += h[i];
	put_octal(h + H_CHKSUM, 7, sum);
	h[H_CHKSUM + 7] = ' ';
}

static void raw_header(struct buf *out, const char *name, const char *prefix, char type, uint32_t mode, uint64_t uid,
		       uint64_t gid, uint64_t size, int64_t mtime, const char *link)
{
	uint8_t h[TAR_BLOCK];
	memset(h, 0, sizeof(h));
	memcpy(h + H_NAME, name, MIN(strlen(name), (size_t)100));
	if (prefix)
		memcpy(h + H_PREFIX, prefix, MIN(strlen(prefix), (size_t)155));
	put_octal(h + H_MODE, 8, mode & 07777);
	put_octal(h + H_UID, 8, fits_octal(uid, 8) ? uid : 0);
	put_octal(h + H_GID, 8, fits_octal(gid, 8) ? gid : 0);
	put_octal(h + H_SIZE, 12, fits_octal(size, 12) ? size : 0);
	put_octal(h + H_MTIME, 12, mtime > 0 && fits_octal((uint64_t)mtime, 12) ? (uint64_t)mtime : 0);
	h[H_TYPE] = (uint8_t)type;
	if (link)
		memcpy(h + H_LINK, link, MIN(strlen(link), (size_t)100));
	memcpy(h + H_MAGIC, "ustar", 6);
	memcpy(h + H_VERSION, "00", 2);
	checksum(h);
	buf_append(out, h, sizeof(h));
}

/* The ustar name and prefix fields for name; false when it fits neither
 * way (it then goes in a pax "path" record). */
static bool split_name(const char *name, const char **short_name, char prefix[156])
{
	size_t nl = strlen(name);
	*short_name = name;
	prefix[0] = '\0';
	if (nl <= 100)
		return true;
	/* ustar: split at a '/' into prefix (<= 155) and name (<= 100) */
	for (const char *p = name + nl - 1; p > name; p--) {
		if (*p == '/' && (size_t)(p - name) <= 155 && nl - (size_t)(p - name) - 1 <= 100 &&
		    nl - (size_t)(p - name) - 1 > 0) {
			memcpy(prefix, name, (size_t)(p - name));
			prefix[p - name] = '\0';
			*short_name = p + 1;
			return true;
		}
	}
	return false;
}

/* Appends the header(s) for one entry of size bytes: a pax header first
 * when the name, link target, size or ids do not fit ustar's fields, or
 * when extra holds records of its own (a sparse file's); ustar_name, when
 * not NULL, replaces name in the ustar header (whose real name is then in
 * extra). */
static void entry_header(struct buf *out, const char *name, char type, const struct stat *st, const char *link,
			 uint64_t size, const struct buf *extra, const char *ustar_name)
{
	const char *short_name;
	char prefix[156];
	bool pax_path = !split_name(ustar_name ? ustar_name : name, &short_name, prefix);
	struct buf pax = BUF_INIT;
	if (extra)
		buf_append(&pax, extra->data, extra->len);
	if (pax_path)
		pax_record(&pax, "path", name);
	if (link && strlen(link) > 100)
		pax_record(&pax, "linkpath", link);
	char num[32];
	if (!fits_octal(size, 12)) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)size);
		pax_record(&pax, "size", num);
	}
	if (!fits_octal(st->st_uid, 8)) {
		snprintf(num, sizeof(num), "%u", (unsigned)st->st_uid);
		pax_record(&pax, "uid", num);
	}
	if (!fits_octal(st->st_gid, 8)) {
		snprintf(num, sizeof(num), "%u", (unsigned)st->st_gid);
		pax_record(&pax, "gid", num);
	}
	if (pax.len) {
		raw_header(out, "././@PaxHeader", NULL, 'x', 0644, 0, 0, pax.len, st->st_mtime, NULL);
		buf_append(out, pax.data, pax.len);
		size_t pad = (TAR_BLOCK - pax.len % TAR_BLOCK) % TAR_BLOCK;
		for (size_t i = 0; i < pad; i++)
			buf_putc(out, '\0');
	}
	buf_release(&pax);
	raw_header(out, pax_path ? "././@LongName" : short_name, prefix[0] ? prefix : NULL, type, st->st_mode,
		   st->st_uid, st->st_gid, size, st->st_mtime, link);
}

static void map_add(struct tar_region **map, size_t *n, uint64_t off, uint64_t len)
{
	*map = xrealloc(*map, (*n + 1) * sizeof(**map));
	(*map)[*n] = (struct tar_region){ off, len };
	(*n)++;
}

/* The data regions of fd: the whole file, unless it has holes (the
 * block count says it may; SEEK_DATA/SEEK_HOLE say where).  A sparse map
 * ends with an empty region at the size when the file ends in a hole, as
 * GNU tar writes it.  Returns true for a sparse map. */
static bool data_map(int fd, const struct stat *st, struct tar_region **map, size_t *n)
{
	uint64_t size = (uint64_t)st->st_size;
	*map = NULL;
	*n = 0;
	if (size > 0 && (uint64_t)st->st_blocks * 512 < size) {
		off_t pos = 0;
		bool ok = true;
		while ((uint64_t)pos < size) {
			off_t d = lseek(fd, pos, SEEK_DATA);
			if (d < 0 || (uint64_t)d >= size) {
				ok = d >= 0 || errno == ENXIO; /* ENXIO: only a hole is left */
				break;
			}
			off_t h = lseek(fd, d, SEEK_HOLE);
			if (h < 0) {
				ok = false;
				break;
			}
			/* the last region the map may hold takes the rest, zeros and all */
			if ((uint64_t)h > size || *n + 2 >= TAR_SPARSE_WRITE_MAX)
				h = (off_t)size;
			map_add(map, n, (uint64_t)d, (uint64_t)(h - d));
			pos = h;
		}
		bool dense = *n == 1 && (*map)[0].off == 0 && (*map)[0].len == size;
		if (ok && !dense) {
			if (*n == 0 || (*map)[*n - 1].off + (*map)[*n - 1].len < size)
				map_add(map, n, size, 0);
			return true;
		}
		free(*map);
		*map = NULL;
		*n = 0;
	}
	map_add(map, n, 0, size);
	return false;
}

/* A sparse file's headers (PAX 1.0: the GNU.sparse.* records, a dummy
 * ustar name) and its map, padded to a block, as the first part of its
 * data; returns the data bytes that follow. */
static uint64_t sparse_header(struct buf *out, const char *name, const struct stat *st, const struct tar_region *map,
			      size_t n)
{
	struct buf text = BUF_INIT, pax = BUF_INIT;
	uint64_t data = 0;
	buf_appendf(&text, "%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		buf_appendf(&text, "%llu\n%llu\n", (unsigned long long)map[i].off, (unsigned long long)map[i].len);
		data += map[i].len;
	}
	while (text.len % TAR_BLOCK)
		buf_putc(&text, '\0');
	char num[32];
	pax_record(&pax, "GNU.sparse.major", "1");
	pax_record(&pax, "GNU.sparse.minor", "0");
	pax_record(&pax, "GNU.sparse.name", name);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)st->st_size);
	pax_record(&pax, "GNU.sparse.realsize", num);
	/* what a reader without sparse support extracts: out of the way */
	const char *slash = strrchr(name, '/');
	char dummy[100];
	snprintf(dummy, sizeof(dummy), "GNUSparseFile.0/%.80s", slash ? slash + 1 : name);
	entry_header(out, name, '0', st, NULL, text.len + data, &pax, dummy);
	buf_append(out, text.data, text.len);
	buf_release(&text);
	buf_release(&pax);
	return data;
}

int tarw_init(struct tarw *t, int dirfd, const char *base, const char *name, struct capsa_error **err)
{
	memset(t, 0, sizeof(*t));
	t->file_fd = -1;
	t->top_dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (t->top_dirfd < 0)
		return error_sys(err, errno, "archive %s", name);
	t->top_base = base ? xstrdup(base) : NULL;
	/* archive names never start with '/' */
	while (*name == '/')
		name++;
	t->top = xstrdup(*name ? name : ".");
	size_t n = strlen(t->top);
	while (n > 1 && t->top[n - 1] == '/')
		t->top[--n] = '\0';
	return 0;
}

static int read_link(int dirfd, const char *name, char *out, size_t n)
{
	ssize_t l = readlinkat(dirfd, name ? name : "", out, n - 1);
	if (l < 0)
		return -1;
	out[l] = '\0';
	return 0;
}

/* Queues the header of one entry (and opens a regular file's content).
 * Returns 0 when something was queued, 1 when the entry was skipped, -1
 * when it cannot be read (permission). */
static int emit(struct tarw *t, int dirfd, const char *base, const char *arcname, const struct stat *lst,
		struct capsa_error **err)
{
	char link[PATH_MAX];
	struct stat st = *lst;
	if (S_ISREG(st.st_mode)) {
		int fd = base ? openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
			      : fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
		/* (a pseudo file system's files, /proc/kmsg, are not refused data) */
		if (fd < 0 && (errno == EACCES || errno == EPERM) && !fs_is_pseudo(dirfd))
			return error_sys(err, errno, "archive %s", arcname);
		if (fd < 0)
			return 1; /* gone meanwhile, or a kernel interface not for us */
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != lst->st_ino) {
			close(fd);
			return 1; /* swapped meanwhile */
		}
		free(t->map);
		if (data_map(fd, &st, &t->map, &t->n_map)) {
			t->left = sparse_header(&t->hdr, arcname, &st, t->map, t->n_map);
		} else {
			entry_header(&t->hdr, arcname, '0', &st, NULL, (uint64_t)st.st_size, NULL, NULL);
			t->left = (uint64_t)st.st_size;
		}
		t->ri = 0;
		t->roff = 0;
		t->file_fd = fd;
		t->pad = (TAR_BLOCK - (size_t)(t->left % TAR_BLOCK)) % TAR_BLOCK;
		t->files++;
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		_cleanup_free_ char *dname = xasprintf("%s/", arcname);
		entry_header(&t->hdr, dname, '5', &st, NULL, 0, NULL, NULL);
		return 0;
	}
	if (S_ISLNK(st.st_mode)) {
		if (read_link(dirfd, base, link, sizeof(link)) < 0)
			return 1;
		entry_header(&t->hdr, arcname, '2', &st, link, 0, NULL, NULL);
		return 0;
	}
	return 1; /* devices, fifos, sockets are not copied */
}

/* Queues the next entry's header, or the end of the archive. */
static int next_entry(struct tarw *t, struct capsa_error **err)
{
	if (!t->top_done) {
		t->top_done = true;
		struct stat st;
		int r = t->top_base ? fstatat(t->top_dirfd, t->top_base, &st, AT_SYMLINK_NOFOLLOW)
				    : fstat(t->top_dirfd, &st);
		if (r < 0)
			return error_sys(err, errno, "archive %s", t->top);
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
			return error_set(err, EINVAL, "archive %s: not a regular file, directory or symlink", t->top);
		r = emit(t, t->top_dirfd, t->top_base, t->top, &st, err);
		if (r < 0)
			return -1;
		if (r == 1)
			return error_set(err, ENOENT, "archive %s: it changed while being read", t->top);
		if (S_ISDIR(st.st_mode)) {
			int fd = t->top_base ? openat(t->top_dirfd, t->top_base,
						      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)
					     : openat(t->top_dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0)
				return error_sys(err, errno, "archive %s", t->top);
			if (walk_open(&t->w, fd, WALK_MAX_DEPTH, true, err) < 0)
				return -1;
			t->w.strict = true;
			t->w.hide = t->hide;
			t->w.hide_ud = t->hide_ud;
			t->walking = true;
		}
		return 0;
	}
	while (t->walking) {
		struct walk_entry e;
		int r = walk_next(&t->w, &e, err);
		if (r < 0)
			return error_wrap(err, "archive %s", t->top);
		if (r == 0) {
			walk_close(&t->w);
			t->walking = false;
			break;
		}
		_cleanup_free_ char *arc = strcmp(t->top, ".") == 0 ? xasprintf("./%s", e.rel)
								    : xasprintf("%s/%s", t->top, e.rel);
		int k = emit(t, e.dirfd, e.name, arc, &e.st, err);
		if (k <= 0)
			return k;
		walk_skip(&t->w);
	}
	/* two zero blocks end the archive */
	uint8_t zero[2 * TAR_BLOCK];
	memset(zero, 0, sizeof(zero));
	buf_append(&t->hdr, zero, sizeof(zero));
	t->ended = true;
	return 0;
}

ssize_t tarw_read(struct tarw *t, void *buf, size_t n, struct capsa_error **err)
{
	uint8_t *out = buf;
	size_t got = 0;
	while (got < n) {
		if (t->hdr_off < t->hdr.len) {
			size_t k = MIN(n - got, t->hdr.len - t->hdr_off);
			memcpy(out + got, t->hdr.data + t->hdr_off, k);
			t->hdr_off += k;
			got += k;
			continue;
		}
		t->hdr.len = t->hdr_off = 0;
		if (t->left > 0) {
			const struct tar_region *rg = &t->map[t->ri];
			if (t->roff == rg->len) {
				t->ri++;
				t->roff = 0;
				continue;
			}
			size_t want = (size_t)MIN((uint64_t)(n - got), MIN(t->left, rg->len - t->roff));
			ssize_t r = pread(t->file_fd, out + got, want, (off_t)(rg->off + t->roff));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return error_sys(err, errno, "archive %s: read", t->top);
			if (r == 0) {
				/* the file shrank: the header promised more */
				memset(out + got, 0, want);
				r = (ssize_t)want;
			}
			got += (size_t)r;
			t->roff += (uint64_t)r;
			t->left -= (uint64_t)r;
			t->bytes += (uint64_t)r;
			continue;
		}
		if (t->file_fd >= 0) {
			close(t->file_fd);
			t->file_fd = -1;
		}
		if (t->pad > 0) {
			size_t k = MIN(n - got, t->pad);
			memset(out + got, 0, k);
			t->pad -= k;
			got += k;
			continue;
		}
		if (t->ended) {
			t->finished = true;
			break;
		}
		if (next_entry(t, err) < 0)
			return -1;
	}
	return (ssize_t)got;
}

void tarw_release(struct tarw *t)
{
	if (t->walking)
		walk_close(&t->w);
	if (t->file_fd >= 0)
		close(t->file_fd);
	if (t->top_dirfd >= 0)
		close(t->top_dirfd);
	free(t->top);
	free(t->top_base);
	free(t->map);
	buf_release(&t->hdr);
	memset(t, 0, sizeof(*t));
	t->file_fd = t->top_dirfd = -1;
}
