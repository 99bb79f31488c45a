/* test-image-unpack.c: layer unpacking: every entry type, whiteouts,
 * compression, and every hostile case of docs/image-store.md (each refused
 * with an error naming the entry, nothing created outside the layer). */
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "image/unpack.h"
#include "tap.h"
#include "tarbuild.h"
#include "util/fs.h"

static char base[64];
static int n_case;

static int memfd_of(const void *p, size_t n)
{
	int fd = memfd_create("layer", MFD_CLOEXEC);
	write_all(fd, p, n);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void gzip_buf(const struct buf *in, struct buf *out)
{
	z_stream z = { 0 };
	deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	buf_reserve(out, deflateBound(&z, in->len) + 64);
	z.next_in = (unsigned char *)in->data;
	z.avail_in = (uInt)in->len;
	z.next_out = (unsigned char *)out->data;
	z.avail_out = (uInt)(out->alloc - 1);
	deflate(&z, Z_FINISH);
	out->len = z.total_out;
	deflateEnd(&z);
}

static void zstd_buf(const struct buf *in, struct buf *out)
{
	size_t cap = ZSTD_compressBound(in->len);
	buf_reserve(out, cap);
	out->len = ZSTD_compress(out->data, cap, in->data, in->len, 3);
}

static void sha256_hex(const void *p, size_t n, char out[72])
{
	unsigned char md[32];
	unsigned len;
	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	memcpy(out, "sha256:", 7);
	hex_encode(md, 32, out + 7);
}

/* A fresh case directory with "layer" (the target) and "victim" (must stay
 * empty: the outside world for the hostile cases). */
struct tcase {
	char *dir, *layer, *victim;
	int lfd;
};

static void case_new(struct tcase *c)
{
	c->dir = xasprintf("%s/c%d", base, ++n_case);
	c->layer = xasprintf("%s/layer", c->dir);
	c->victim = xasprintf("%s/victim", c->dir);
	mkdir(c->dir, 0700);
	mkdir(c->layer, 0755);
	mkdir(c->victim, 0755);
	c->lfd = open(c->layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void case_free(struct tcase *c)
{
	close(c->lfd);
	rm_rf_at(AT_FDCWD, c->dir, NULL);
	free(c->dir);
	free(c->layer);
	free(c->victim);
}

static int dir_entries(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

static int unpack_buf(struct tcase *c, const struct buf *b, bool devices, struct unpack_result *res,
		      struct capsa_error **err)
{
	int fd = memfd_of(b->data, b->len);
	struct unpack_opts o = { .allow_devices = devices };
	int r = layer_unpack(fd, c->lfd, &o, res, err);
	close(fd);
	return r;
}

static void test_all_types(void)
{
	struct tcase c;
	case_new(&c);
	struct tar_ent ents[] = {
		{ .name = "./", .type = '5', .mode = 0755, .mtime = 1600000000 },
		{ .name = "./etc/", .type = '5', .mode = 0750, .uid = 1000, .gid = 1001, .mtime = 1500000000 },
		{ .name = "./etc/passwd", .type = '0', .data = "root:x:0:0\n", .len = 11, .mode = 0644, .mtime = 1400000000 },
		{ .name = "./bin/su", .type = '0', .data = "ELF", .len = 3, .mode = 04755 },
		{ .name = "./bin/wall", .type = '0', .data = "x", .len = 1, .mode = 02755, .gid = 5 },
		{ .name = "./tmp/", .type = '5', .mode = 01777 },
		{ .name = "./bin/sh", .type = '2', .link = "/bin/busybox", .uid = 7, .gid = 8 },
		{ .name = "./etc/passwd-", .type = '1', .link = "./etc/passwd" },
		{ .name = "./run/fifo", .type = '6', .mode = 0620 },
		{ .name = "./dev/null", .type = '3', .mode = 0666, .devmajor = 1, .devminor = 3 },
		{ .name = "./bin/ping", .type = '0', .data = "p", .len = 1, .mode = 0755,
		  .pax = "SCHILY.xattr.user.note=hello\nSCHILY.xattr.trusted.overlay.redirect=/etc\n" },
		{ .name = "./unicode-\xc3\xa9t\xc3\xa9", .type = '0', .data = "u", .len = 1,
		  .pax = "path=./unicode-\xc3\xa9t\xc3\xa9\n" },
		{ .name = "./implicit/deep/file", .type = '0', .data = "d", .len = 1 },
		{ .name = "./replace", .type = '0', .data = "f", .len = 1 },
		{ .name = "./replace/", .type = '5' },
		{ .name = "./replace/inner", .type = '0', .data = "i", .len = 1 },
		{ .name = NULL },
	};
	struct buf b = BUF_INIT;
	tb_build(&b, ents);
	struct unpack_result res;
	struct capsa_error *err = NULL;
	ok(unpack_buf(&c, &b, true, &res, &err) == 0, "unpack every entry type: %s", err ? err->msg : "");
	char want[72];
	sha256_hex(b.data, b.len, want);
	is_str(res.diff_id, want, "diff_id is the sha256 of the tar");
	is_int(res.compression, LAYER_PLAIN, "plain tar detected");
	struct stat sb;
	int l = c.lfd;
	ok(fstatat(l, "etc", &sb, 0) == 0 && (sb.st_mode & 07777) == 0750 && sb.st_uid == 1000 && sb.st_gid == 1001,
	   "directory mode and owner");
	ok(sb.st_mtime == 1500000000, "directory mtime kept after its contents were created");
	ok(fstatat(l, "", &sb, AT_EMPTY_PATH) == 0 && sb.st_mtime == 1600000000 && (sb.st_mode & 0777) == 0755,
	   "layer root takes the ./ entry");
	ok(fstatat(l, "etc/passwd", &sb, 0) == 0 && sb.st_size == 11 && sb.st_mtime == 1400000000 && sb.st_nlink == 2,
	   "file size, mtime, and the hard link count");
	struct stat sb2;
	ok(fstatat(l, "etc/passwd-", &sb2, 0) == 0 && sb2.st_ino == sb.st_ino, "hard link shares the inode");
	ok(fstatat(l, "bin/su", &sb, 0) == 0 && (sb.st_mode & 07777) == 04755, "setuid bit kept");
	ok(fstatat(l, "bin/wall", &sb, 0) == 0 && (sb.st_mode & 07777) == 02755 && sb.st_gid == 5, "setgid bit kept with chown");
	ok(fstatat(l, "tmp", &sb, 0) == 0 && (sb.st_mode & 07777) == 01777, "sticky bit kept");
	char t[64] = { 0 };
	ok(readlinkat(l, "bin/sh", t, sizeof(t) - 1) > 0 && str_eq(t, "/bin/busybox"), "symlink target kept verbatim");
	ok(fstatat(l, "bin/sh", &sb, AT_SYMLINK_NOFOLLOW) == 0 && sb.st_uid == 7 && sb.st_gid == 8, "symlink owner");
	ok(fstatat(l, "run/fifo", &sb, 0) == 0 && S_ISFIFO(sb.st_mode) && (sb.st_mode & 0777) == 0620, "fifo");
	ok(fstatat(l, "dev/null", &sb, 0) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(1, 3),
	   "device node when allowed");
	char *ping = xasprintf("%s/bin/ping", c.layer);
	char xv[32] = { 0 };
	ok(getxattr(ping, "user.note", xv, sizeof(xv)) == 5 && str_eq(xv, "hello"), "user xattr kept");
	ok(getxattr(ping, "trusted.overlay.redirect", xv, sizeof(xv)) < 0, "trusted.overlay xattr from the layer dropped");
	free(ping);
	ok(fstatat(l, "unicode-\xc3\xa9t\xc3\xa9", &sb, 0) == 0, "UTF-8 pax name kept byte for byte");
	ok(fstatat(l, "implicit/deep/file", &sb, 0) == 0 && fstatat(l, "implicit", &sb2, 0) == 0 &&
		   (sb2.st_mode & 0777) == 0755,
	   "missing parents created 0755");
	ok(fstatat(l, "replace/inner", &sb, 0) == 0, "a directory entry replaces an earlier file");
	ok(dir_entries(c.victim) == 0, "nothing outside the layer");
	buf_release(&b);
	case_free(&c);
}

static void test_whiteouts(void)
{
	struct tcase c;
	case_new(&c);
	struct tar_ent ents[] = {
		{ .name = "etc/.wh.motd", .type = '0' },
		{ .name = "var/", .type = '5' },
		{ .name = "var/.wh..wh..opq", .type = '0' },
		{ .name = ".wh..wh..plnk", .type = '5' },
		{ .name = NULL },
	};
	struct buf b = BUF_INIT;
	tb_build(&b, ents);
	struct unpack_result res;
	struct capsa_error *err = NULL;
	ok(unpack_buf(&c, &b, false, &res, &err) == 0, "unpack whiteouts (devices not allowed): %s", err ? err->msg : "");
	struct stat sb;
	ok(fstatat(c.lfd, "etc/motd", &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == 0,
	   ".wh.motd became a 0/0 character device");
	ok(fstatat(c.lfd, "etc/.wh.motd", &sb, AT_SYMLINK_NOFOLLOW) < 0, "the .wh. name itself is not created");
	char *var = xasprintf("%s/var", c.layer);
	char v[4] = { 0 };
	ok(getxattr(var, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y', "opaque xattr on var");
	free(var);
	ok(fstatat(c.lfd, ".wh..wh..plnk", &sb, AT_SYMLINK_NOFOLLOW) < 0, "aufs bookkeeping skipped");
	buf_release(&b);
	case_free(&c);
}

static void test_compressed(void)
{
	struct tar_ent ents[] = {
		{ .name = "a/b", .type = '0', .data = "hello", .len = 5 },
		{ .name = NULL },
	};
	struct buf tar = BUF_INIT, gz = BUF_INIT, zs = BUF_INIT;
	tb_build(&tar, ents);
	gzip_buf(&tar, &gz);
	zstd_buf(&tar, &zs);
	char want[72];
	sha256_hex(tar.data, tar.len, want);
	struct { const char *what; struct buf *b; enum layer_compression c; } v[] = {
		{ "gzip", &gz, LAYER_GZIP },
		{ "zstd", &zs, LAYER_ZSTD },
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct tcase c;
		case_new(&c);
		struct unpack_result res;
		struct capsa_error *err = NULL;
		ok(unpack_buf(&c, v[i].b, false, &res, &err) == 0 && res.compression == v[i].c, "%s layer: %s", v[i].what,
		   err ? err->msg : "");
		is_str(res.diff_id, want, "%s layer: diff_id is the uncompressed digest", v[i].what);
		struct stat sb;
		ok(fstatat(c.lfd, "a/b", &sb, 0) == 0 && sb.st_size == 5, "%s layer: content", v[i].what);
		case_free(&c);

		/* truncated stream */
		case_new(&c);
		struct buf cut = BUF_INIT;
		buf_append(&cut, v[i].b->data, v[i].b->len - 8);
		ok(unpack_buf(&c, &cut, false, &res, &err) < 0 && err && strstr(err->msg, "truncated") &&
			   strstr(err->msg, v[i].what),
		   "truncated %s stream refused: %s", v[i].what, err ? err->msg : "");
		capsa_error_free(err);
		err = NULL;
		buf_release(&cut);
		/* trailing garbage after the compressed stream */
		buf_append(&cut, v[i].b->data, v[i].b->len);
		buf_append(&cut, "garbage!", 8);
		ok(unpack_buf(&c, &cut, false, &res, &err) < 0, "%s stream with trailing garbage refused: %s", v[i].what,
		   err ? err->msg : "");
		capsa_error_free(err);
		buf_release(&cut);
		case_free(&c);
	}
	buf_release(&tar);
	buf_release(&gz);
	buf_release(&zs);
}

/* One hostile archive: refused, the error names `entry`, nothing outside. */
static void hostile(const char *what, const struct tar_ent *ents, const char *entry, const char *victim_setup)
{
	struct tcase c;
	case_new(&c);
	if (victim_setup) {
		/* some archives refer to the victim by absolute path */
		(void)victim_setup;
	}
	struct buf b = BUF_INIT;
	tb_build(&b, ents);
	struct unpack_result res;
	struct capsa_error *err = NULL;
	int r = unpack_buf(&c, &b, false, &res, &err);
	ok(r < 0, "%s: refused", what);
	ok(err && entry && strstr(err->msg, entry), "%s: error names the entry: %s", what, err ? err->msg : "(none)");
	ok(dir_entries(c.victim) == 0, "%s: nothing written outside the layer", what);
	capsa_error_free(err);
	buf_release(&b);
	case_free(&c);
}

static void test_hostile(void)
{
	char *abs_victim, *abs_file;
	{
		struct tar_ent e[] = { { .name = "../victim/pwned", .type = '0', .data = "x", .len = 1 }, { 0 } };
		hostile("'../' entry name", e, "../victim/pwned", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "a/../../victim/pwned", .type = '0', .data = "x", .len = 1 }, { 0 } };
		hostile("'..' inside the name", e, "a/../../victim/pwned", NULL);
	}
	abs_file = xasprintf("%s/c%d/victim/pwned", base, n_case + 1);
	{
		struct tar_ent e[] = { { .name = abs_file, .type = '0', .data = "x", .len = 1 }, { 0 } };
		hostile("absolute entry name", e, "victim/pwned", NULL);
	}
	free(abs_file);
	abs_victim = xasprintf("%s/c%d/victim", base, n_case + 1);
	{
		struct tar_ent e[] = {
			{ .name = "a", .type = '2', .link = abs_victim },
			{ .name = "a/pwned", .type = '0', .data = "x", .len = 1 },
			{ 0 },
		};
		hostile("symlink parent pointing outside (absolute)", e, "a/pwned", NULL);
	}
	free(abs_victim);
	{
		struct tar_ent e[] = {
			{ .name = "a", .type = '2', .link = "../victim" },
			{ .name = "a/pwned", .type = '0', .data = "x", .len = 1 },
			{ 0 },
		};
		hostile("symlink parent pointing outside (relative)", e, "a/pwned", NULL);
	}
	{
		struct tar_ent e[] = {
			{ .name = "a", .type = '2', .link = "../victim" },
			{ .name = "a/sub/pwned", .type = '0', .data = "x", .len = 1 },
			{ 0 },
		};
		hostile("symlink grandparent pointing outside", e, "a/sub/pwned", NULL);
	}
	{
		struct tar_ent e[] = {
			{ .name = "a", .type = '2', .link = "../victim" },
			{ .name = "a/.wh.x", .type = '0' },
			{ 0 },
		};
		hostile("whiteout through a symlink parent", e, "a/.wh.x", NULL);
	}
	{
		struct tar_ent e[] = {
			{ .name = "a", .type = '2', .link = "../victim" },
			{ .name = "a/.wh..wh..opq", .type = '0' },
			{ 0 },
		};
		hostile("opaque marker through a symlink parent", e, "a/.wh..wh..opq", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "passwd", .type = '1', .link = "../victim/x" }, { 0 } };
		hostile("hard link to '../'", e, "passwd", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "passwd", .type = '1', .link = "/etc/passwd" }, { 0 } };
		hostile("hard link to an absolute path", e, "passwd", NULL);
	}
	{
		struct tar_ent e[] = {
			{ .name = "a", .type = '2', .link = "/etc" },
			{ .name = "passwd", .type = '1', .link = "a/passwd" },
			{ 0 },
		};
		hostile("hard link through a symlink", e, "passwd", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "x", .type = '1', .link = "missing" }, { 0 } };
		hostile("hard link to a missing entry", e, "'x'", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "dev/sda", .type = '4', .devmajor = 8, .devminor = 0 }, { 0 } };
		hostile("block device not allowed", e, "dev/sda", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "dev/mem", .type = '3', .devmajor = 1, .devminor = 1 }, { 0 } };
		hostile("char device not allowed", e, "dev/mem", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "neg", .type = '0', .raw_size = -1, .size_b256 = 1 }, { 0 } };
		hostile("negative size", e, "neg", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "huge", .type = '0', .raw_size = INT64_MAX, .size_b256 = 1 }, { 0 } };
		hostile("overflowing size", e, "huge", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "octal", .type = '0', .raw_size = 077777777777, .data = "abc", .len = 3 },
				       { 0 } };
		hostile("size larger than the data (truncated tar)", e, "octal", NULL);
	}
	{
		struct tar_ent e[] = { { .name = "cut", .type = '0', .data = "0123456789", .len = 10, .cut = 4 }, { 0 } };
		hostile("entry data cut short", e, "cut", NULL);
	}
	{
		struct tar_ent e[] = { { .name = ".", .type = '2', .link = "/" }, { 0 } };
		hostile("layer root as a symlink", e, "'.'", NULL);
	}
	{
		struct tar_ent e[] = { { .name = ".wh..", .type = '0' }, { 0 } };
		hostile("whiteout of '.'", e, ".wh..", NULL);
	}
}

static void test_limits(void)
{
	struct tcase c;
	case_new(&c);
	struct tar_ent ents[] = {
		{ .name = "a", .type = '0', .data = "1", .len = 1 },
		{ .name = "b", .type = '0', .data = "2", .len = 1 },
		{ .name = "c", .type = '0', .data = "3", .len = 1 },
		{ 0 },
	};
	struct buf b = BUF_INIT;
	tb_build(&b, ents);
	int fd = memfd_of(b.data, b.len);
	struct unpack_opts o = { .max_entries = 2 };
	struct unpack_result res;
	struct capsa_error *err = NULL;
	ok(layer_unpack(fd, c.lfd, &o, &res, &err) < 0 && err && strstr(err->msg, "'c'"), "entry count cap: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	close(fd);
	case_free(&c);
	case_new(&c);
	fd = memfd_of(b.data, b.len);
	o = (struct unpack_opts){ .max_bytes = 2 };
	ok(layer_unpack(fd, c.lfd, &o, &res, &err) < 0 && err && strstr(err->msg, "'c'"), "content size cap: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	close(fd);
	case_free(&c);
	buf_release(&b);

	case_new(&c);
	ok(unpack_buf(&c, &(struct buf){ .data = (char *)"not a tar archive at all, just text that goes on and on", .len = 56 },
		      false, &res, &err) < 0,
	   "garbage refused: %s", err ? err->msg : "");
	capsa_error_free(err);
	case_free(&c);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/capsa-unpack-XXXXXX");
	if (!mkdtemp(base))
		return 1;
	test_all_types();
	test_whiteouts();
	test_compressed();
	test_hostile();
	test_limits();
	rm_rf_at(AT_FDCWD, base, NULL);
	return done_testing();
}
