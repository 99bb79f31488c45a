/* test-tar.c: the tar writer and the hostile-input extractor (lib/util/tar.h),
 * the directory walker, and the confined mkdir -p.  Trees are built in a
 * temporary directory; archives are written by tarw and by hand. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "tarbuild.h"
#include "util/fs.h"
#include "util/tar.h"
#include "util/walk.h"

static char base[] = "/tmp/capsa-tar-test-XXXXXX";

static char *p(const char *rel)
{
	return xasprintf("%s/%s", base, rel);
}

static void put(const char *rel, const char *content, mode_t mode)
{
	_cleanup_free_ char *path = p(rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd >= 0) {
		if (write_all(fd, content, strlen(content)) < 0) {
			/* checked by the reads */
		}
		fchmod(fd, mode);
		close(fd);
	}
}

static char *get(const char *rel)
{
	_cleanup_free_ char *path = p(rel);
	struct buf b = BUF_INIT;
	if (read_file_at(AT_FDCWD, path, 1 << 20, &b, NULL) < 0) {
		buf_release(&b);
		return NULL;
	}
	buf_cstr(&b);
	return buf_steal(&b);
}

static int mk(const char *rel)
{
	_cleanup_free_ char *path = p(rel);
	return mkdir(path, 0755);
}

/* The whole archive of dir/base under name. */
static int archive(const char *dir, const char *b, const char *name, struct buf *out)
{
	_cleanup_free_ char *d = p(dir);
	_cleanup_close_ int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct tarw t;
	struct capsa_error *err = NULL;
	if (tarw_init(&t, fd, b, name, &err) < 0)
		return -1;
	char chunk[1000]; /* odd sizes exercise the state machine */
	ssize_t n;
	while ((n = tarw_read(&t, chunk, sizeof(chunk), &err)) > 0)
		buf_append(out, chunk, (size_t)n);
	tarw_release(&t);
	if (n < 0) {
		diag("%s", err->msg);
		capsa_error_free(err);
	}
	return n < 0 ? -1 : 0;
}

/* Extracts data into dest (relative to base, as the root), feeding it in
 * pieces of step bytes.  Returns 0 or -1 with *msg. */
static uint64_t extract_max;

static int extract(const char *dest, const void *data, size_t n, size_t step, char **msg)
{
	_cleanup_free_ char *d = p(dest);
	mkdir(d, 0755);
	_cleanup_close_ int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct tarx x;
	struct tarx_opts o = { .root_fd = fd, .dir = "", .res = RES_IN_ROOT, .strip_setid = true,
			       .max_bytes = extract_max };
	tarx_init(&x, &o);
	struct capsa_error *err = NULL;
	int rc = 0;
	for (size_t off = 0; off < n && rc == 0; off += step)
		rc = tarx_feed(&x, (const char *)data + off, MIN(step, n - off), &err);
	if (rc == 0)
		rc = tarx_finish(&x, &err);
	tarx_release(&x);
	if (rc < 0) {
		*msg = xstrdup(err->msg);
		capsa_error_free(err);
	}
	return rc;
}

static void test_round_trip(void)
{
	mk("src");
	mk("src/sub");
	mk("src/sub/deeper");
	put("src/a.txt", "alpha\n", 0751);
	put("src/sub/b", "", 0600);
	put("src/sub/deeper/c", "gamma", 04755);
	_cleanup_free_ char *lnk = p("src/link");
	ok(symlink("sub/b", lnk) == 0, "symlink");
	char longdir[200];
	snprintf(longdir, sizeof(longdir), "src/%.110s", "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	mk(longdir);
	char longfile[400];
	snprintf(longfile, sizeof(longfile), "%s/%.150s", longdir,
		 "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
	put(longfile, "long", 0644);
	_cleanup_free_ char *fifo = p("src/fifo");
	mkfifo(fifo, 0644);

	struct buf tar = BUF_INIT;
	ok(archive(".", "src", "copy", &tar) == 0, "archive a tree");
	ok(tar.len % 512 == 0 && tar.len >= 1024, "whole blocks, %zu bytes", tar.len);
	char *msg = NULL;
	ok(extract("out1", tar.data, tar.len, 7, &msg) == 0, "extract in 7-byte pieces%s%s", msg ? ": " : "",
	   msg ? msg : "");
	_cleanup_free_ char *a = get("out1/copy/a.txt");
	is_str(a, "alpha\n", "file content");
	_cleanup_free_ char *c = get("out1/copy/sub/deeper/c");
	is_str(c, "gamma", "nested file");
	struct stat st;
	_cleanup_free_ char *ap = p("out1/copy/a.txt");
	ok(stat(ap, &st) == 0 && (st.st_mode & 07777) == 0751, "mode kept");
	_cleanup_free_ char *cp = p("out1/copy/sub/deeper/c");
	ok(stat(cp, &st) == 0 && (st.st_mode & 07777) == 0755, "setuid stripped when asked");
	_cleanup_free_ char *lp = p("out1/copy/link");
	char target[64] = "";
	ssize_t tl = readlink(lp, target, sizeof(target) - 1);
	ok(tl > 0 && strncmp(target, "sub/b", (size_t)tl) == 0, "symlink kept as a symlink");
	char outlong[420];
	snprintf(outlong, sizeof(outlong), "out1/copy/%s", longfile + 4);
	_cleanup_free_ char *lf = get(outlong);
	is_str(lf, "long", "name over 255 bytes (pax)");
	_cleanup_free_ char *ff = p("out1/copy/fifo");
	ok(access(ff, F_OK) < 0, "fifo not archived");
	/* the same archive again over the first copy: files are replaced */
	ok(extract("out1", tar.data, tar.len, 4096, &msg) == 0, "extract over an existing copy");
	buf_release(&tar);

	/* a single file under another name, and the contents of "." */
	ok(archive("src", "a.txt", "renamed.txt", &tar) == 0 && extract("out2", tar.data, tar.len, 512, &msg) == 0,
	   "a single file");
	_cleanup_free_ char *r = get("out2/renamed.txt");
	is_str(r, "alpha\n", "renamed file");
	buf_release(&tar);
	ok(archive("src", NULL, ".", &tar) == 0 && extract("out3", tar.data, tar.len, 100000, &msg) == 0,
	   "a directory's contents");
	_cleanup_free_ char *r3 = get("out3/sub/deeper/c");
	is_str(r3, "gamma", "contents extracted in place");
	buf_release(&tar);
}

/* ---- hand-made hostile archives ------------------------------------------------ */

static void header(struct buf *b, const char *name, char type, const char *link, size_t size)
{
	uint8_t h[512];
	memset(h, 0, sizeof(h));
	memcpy(h, name, MIN(strlen(name), (size_t)100));
	snprintf((char *)h + 100, 8, "%07o", 0644);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011zo", size);
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = (uint8_t)type;
	if (link)
		memcpy(h + 157, link, MIN(strlen(link), (size_t)100));
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	buf_append(b, h, sizeof(h));
}

static void data(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	buf_append(b, s, n);
	while (b->len % 512)
		buf_putc(b, '\0');
}

static void end(struct buf *b)
{
	for (int i = 0; i < 1024; i++)
		buf_putc(b, '\0');
}

static void refused(struct buf *b, const char *needle, const char *what)
{
	char *msg = NULL;
	_cleanup_free_ char *dest = xasprintf("hostile-%d", tap_count);
	int rc = extract(dest, b->data, b->len, 512, &msg);
	ok(rc < 0 && msg && strstr(msg, needle), "%s refused: %s", what, msg ? msg : "(accepted)");
	free(msg);
	b->len = 0;
}

static void test_hostile(const char *tag)
{
	diag("hostile archives, %s", tag);
	struct buf b = BUF_INIT;
	_cleanup_free_ char *outside = p("outside");
	mkdir(outside, 0755);

	header(&b, "../outside/x", '0', NULL, 1);
	data(&b, "x");
	end(&b);
	refused(&b, "leaves the destination", "a .. entry");

	header(&b, "a/b/../../../outside/y", '0', NULL, 1);
	data(&b, "y");
	end(&b);
	refused(&b, "leaves the destination", "a deep .. entry");

	header(&b, "l", '2', "/", 0);
	header(&b, "l/tmp/z", '0', NULL, 1);
	data(&b, "z");
	end(&b);
	refused(&b, "goes through symlink 'l'", "a file through a symlink of the same archive");

	header(&b, "up", '2', "../..", 0);
	header(&b, "up/escape", '0', NULL, 1);
	data(&b, "e");
	end(&b);
	refused(&b, "goes through symlink 'up'", "a file through a relative symlink");

	header(&b, "h", '1', "/etc/passwd", 0);
	end(&b);
	refused(&b, "did not create", "a hard link to a file outside the archive");

	header(&b, "h2", '1', "../outside/x", 0);
	end(&b);
	refused(&b, "leaves the destination", "a hard link with ..");

	header(&b, "dev", '3', NULL, 0);
	end(&b);
	refused(&b, "not allowed", "a device");

	header(&b, "f", '0', NULL, 1000);
	buf_append(&b, "only nine", 9);
	refused(&b, "truncated", "a truncated stream");

	header(&b, "ok", '0', NULL, 0);
	b.data[150] ^= 1; /* checksum digit */
	end(&b);
	refused(&b, "checksum", "a bad checksum");

	/* a pax record longer than its header says */
	header(&b, "././@PaxHeader", 'x', NULL, 30);
	data(&b, "99 path=x\n");
	header(&b, "x", '0', NULL, 0);
	end(&b);
	refused(&b, "pax", "a malformed pax record");

	/* a pax size beyond the cap */
	header(&b, "././@PaxHeader", 'x', NULL, 2u << 20);
	refused(&b, "pax record", "a huge pax record");

	/* a symlink to / is created as a symlink and never followed */
	header(&b, "root", '2', "/", 0);
	end(&b);
	char *msg = NULL;
	_cleanup_free_ char *symok = xasprintf("symok-%s", tag);
	ok(extract(symok, b.data, b.len, 512, &msg) == 0, "a symlink pointing outside is only a symlink");
	b.len = 0;
	/* an existing symlink in the destination cannot lead a file out */
	_cleanup_free_ char *trapname = xasprintf("trapdest-%s", tag);
	_cleanup_free_ char *trap = p(trapname);
	mkdir(trap, 0755);
	_cleanup_free_ char *traplname = xasprintf("%s/d", trapname);
	_cleanup_free_ char *trapl = p(traplname);
	ok(symlink(outside, trapl) == 0, "a symlink in the destination to outside it");
	header(&b, "d/inside", '0', NULL, 2);
	data(&b, "in");
	end(&b);
	_cleanup_free_ char *o2 = p("outside/inside");
	int rc = extract(trapname, b.data, b.len, 512, &msg);
	ok(access(o2, F_OK) < 0, "nothing written outside the destination (rc %d%s%s)", rc, msg ? ": " : "",
	   msg ? msg : "");
	free(msg);
	buf_release(&b);
}

static void test_walk(void)
{
	mk("w");
	mk("w/b");
	mk("w/a");
	put("w/a/2", "", 0644);
	put("w/a/1", "", 0644);
	put("w/c", "", 0644);
	_cleanup_free_ char *d = p("w");
	int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct walker w;
	struct walk_entry e;
	struct buf seen = BUF_INIT;
	walk_open(&w, fd, 8, false, NULL);
	while (walk_next(&w, &e, NULL) > 0)
		buf_appendf(&seen, "%s:%zu ", e.rel, e.depth);
	walk_close(&w);
	is_str(buf_cstr(&seen), "a:1 a/1:2 a/2:2 b:1 c:1 ", "depth first, siblings sorted");
	seen.len = 0;
	fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	walk_open(&w, fd, 1, false, NULL);
	while (walk_next(&w, &e, NULL) > 0)
		buf_appendf(&seen, "%s ", e.rel);
	walk_close(&w);
	is_str(buf_cstr(&seen), "a b c ", "depth 1");
	buf_release(&seen);
}

static void test_mkdir_beneath(void)
{
	_cleanup_free_ char *root = p("mroot");
	mkdir(root, 0755);
	_cleanup_close_ int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ok(mkdir_p_beneath(rfd, "/x/y/z", 0750, RES_IN_ROOT) == 0, "mkdir -p");
	_cleanup_free_ char *z = p("mroot/x/y/z");
	struct stat st;
	ok(stat(z, &st) == 0 && S_ISDIR(st.st_mode), "created inside the root");
	ok(mkdir_p_beneath(rfd, "/x/y/z", 0750, RES_IN_ROOT) == 0, "existing is fine");
	_cleanup_free_ char *esc = p("mroot/esc");
	_cleanup_free_ char *outside = p("mout");
	mkdir(outside, 0755);
	if (symlink(outside, esc) < 0)
		diag("symlink: %s", strerror(errno));
	/* the symlink's host target does not exist inside the root: like
	 * mkdir -p through a dangling symlink, it fails */
	ok(mkdir_p_beneath(rfd, "/esc/new", 0755, RES_IN_ROOT) < 0, "through an absolute symlink: not found");
	_cleanup_free_ char *bad = p("mout/new");
	ok(access(bad, F_OK) < 0, "the symlink resolved inside the root, never to its host target");
	put("mroot/file", "", 0644);
	ok(mkdir_p_beneath(rfd, "/file/sub", 0755, RES_IN_ROOT) < 0 && errno == ENOTDIR, "a file in the way");
}

/* ---- sparse files (GNU PAX 1.0) and failed extractions ------------------------------- */

/* A file of size bytes with pieces of data at the offsets given. */
static void put_sparse(const char *rel, off_t size, const off_t *at, size_t n)
{
	_cleanup_free_ char *path = p(rel);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 || ftruncate(fd, size) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char piece[32];
		int len = snprintf(piece, sizeof(piece), "data@%lld", (long long)at[i]);
		if (pwrite(fd, piece, (size_t)len, at[i]) != len)
			return;
	}
}

/* The bytes of rel at off (NUL-terminated), and its stat. */
static bool piece_at(const char *rel, off_t off, char *out, size_t n, struct stat *st)
{
	_cleanup_free_ char *path = p(rel);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r = fd < 0 ? -1 : pread(fd, out, n - 1, off);
	out[r > 0 ? r : 0] = '\0';
	return fd >= 0 && fstat(fd, st) == 0 && r > 0;
}

static bool has_gnu_tar(void)
{
	return system("tar --version 2>/dev/null | grep -q 'GNU tar'") == 0;
}

static void test_sparse(void)
{
	mk("sp");
	const off_t at[] = { 0, 3 << 20, (5 << 20) + 17 };
	put_sparse("sp/holes", 64 << 20, at, 3); /* ends in a hole */
	put_sparse("sp/empty", 1 << 20, NULL, 0); /* a hole only */
	struct buf tar = BUF_INIT;
	ok(archive(".", "sp", "sp", &tar) == 0, "archive sparse files");
	/* data regions only: a few blocks each, never 65 MiB */
	ok(tar.len < 64 * 1024, "the archive holds the data, not the holes (%zu bytes)", tar.len);
	ok(memmem(tar.data, tar.len, "GNU.sparse.major=1", 18) && memmem(tar.data, tar.len, "GNU.sparse.minor=0", 18),
	   "written as GNU PAX 1.0 sparse");
	char *msg = NULL;
	ok(extract("spout", tar.data, tar.len, 333, &msg) == 0, "extract in 333-byte pieces%s%s", msg ? ": " : "",
	   msg ? msg : "");
	free(msg);
	msg = NULL;
	char got[64];
	struct stat st;
	for (size_t i = 0; i < 3; i++) {
		char want[32];
		snprintf(want, sizeof(want), "data@%lld", (long long)at[i]);
		ok(piece_at("spout/sp/holes", at[i], got, strlen(want) + 1, &st) && strcmp(got, want) == 0,
		   "data at %lld: %s", (long long)at[i], got);
	}
	ok(piece_at("spout/sp/holes", 1 << 20, got, 8, &st) && memcmp(got, "\0\0\0\0\0\0\0", 7) == 0,
	   "zeros between");
	ok(st.st_size == 64 << 20, "its size, the trailing hole included (%lld)", (long long)st.st_size);
	ok((int64_t)st.st_blocks * 512 < (1 << 20), "the holes stay holes (%lld bytes allocated)",
	   (long long)st.st_blocks * 512);
	_cleanup_free_ char *ep = p("spout/sp/empty");
	ok(stat(ep, &st) == 0 && st.st_size == 1 << 20 && st.st_blocks * 512 < 65536, "a file that is one hole");
	ok(stat(ep, &st) == 0 && (st.st_mode & 0777) == 0640, "mode kept");

	/* tar is essential on Debian: GNU tar is there to check against */
	ok(has_gnu_tar(), "GNU tar is installed");
	{
		/* GNU tar reads what the writer wrote ... */
		_cleanup_free_ char *arc = p("sp.tar");
		_cleanup_free_ char *gdir = p("gnu-out");
		mkdir(gdir, 0755);
		int afd = open(arc, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		ok(afd >= 0 && write_all(afd, tar.data, tar.len) == 0 && close(afd) == 0, "archive saved");
		_cleanup_free_ char *cmd = xasprintf("tar -xf %s -C %s", arc, gdir);
		ok(system(cmd) == 0 && piece_at("gnu-out/sp/holes", at[2], got, 16, &st) && strncmp(got, "data@", 5) == 0 &&
		   st.st_size == 64 << 20, "GNU tar extracts it: %s", got);
	}
	buf_release(&tar);
	{
		/* ... and the extractor reads what GNU tar writes */
		_cleanup_free_ char *arc = p("gnu.tar");
		_cleanup_free_ char *cmd = xasprintf("cd %s/sp && tar --format=pax --sparse --sparse-version=1.0 -cf %s holes",
						      base, arc);
		ok(system(cmd) == 0, "GNU tar archives it");
		struct buf b = BUF_INIT;
		ok(read_file_at(AT_FDCWD, arc, 1 << 20, &b, NULL) == 0, "read its archive");
		ok(extract("from-gnu", b.data, b.len, 4096, &msg) == 0 && piece_at("from-gnu/holes", at[1], got, 16, &st) &&
		   strncmp(got, "data@", 5) == 0 && st.st_size == 64 << 20 && (int64_t)st.st_blocks * 512 < (1 << 20),
		   "GNU tar's sparse archive extracted with its holes%s%s", msg ? ": " : "", msg ? msg : "");
		free(msg);
		msg = NULL;
		buf_release(&b);
	}
}

static void sparse_refused(const char *pax, const char *map, size_t data, const char *needle, const char *what)
{
	struct buf b = BUF_INIT;
	char body[4096];
	size_t ml = strlen(map);
	memcpy(body, map, ml);
	memset(body + ml, 0, 512 - ml % 512);
	size_t n = ml + (512 - ml % 512);
	memset(body + n, 'x', data);
	struct tar_ent e[] = { { .name = "GNUSparseFile.0/f", .type = '0', .data = body, .len = n + data, .pax = pax },
			       { 0 } };
	tb_build(&b, e);
	refused(&b, needle, what);
	buf_release(&b);
}

static void test_sparse_hostile(void)
{
	const char *v1 = "GNU.sparse.major=1\nGNU.sparse.minor=0\nGNU.sparse.name=f\nGNU.sparse.realsize=4096\n";
	sparse_refused(v1, "2\n0\n10\n5\n10\n", 20, "malformed sparse map", "overlapping regions");
	sparse_refused(v1, "1\n4090\n10\n", 10, "malformed sparse map", "a region past the real size");
	sparse_refused(v1, "1\n0\n10\n", 11, "malformed sparse map", "more data than the map says");
	sparse_refused(v1, "99999999\n0\n1\n", 1, "sparse map of more than", "a map of too many regions");
	sparse_refused(v1, "1\n0\nx\n", 1, "malformed sparse map", "a map that is not numbers");
	sparse_refused("GNU.sparse.major=0\nGNU.sparse.minor=1\nGNU.sparse.name=f\nGNU.sparse.realsize=10\n",
		       "1\n0\n1\n", 1, "only GNU sparse format 1.0", "sparse format 0.1");
	sparse_refused("GNU.sparse.offset=0\nGNU.sparse.numbytes=1\n", "1\n0\n1\n", 1, "0.x is not supported",
		       "sparse format 0.0");
	sparse_refused("GNU.sparse.major=1\nGNU.sparse.minor=0\nGNU.sparse.name=../../f\nGNU.sparse.realsize=1\n",
		       "1\n0\n1\n", 1, "leaves the destination", "a sparse name with ..");
}

/* Nothing but the names given in dir (relative to base). */
static bool only(const char *dir, const char *names)
{
	_cleanup_free_ char *d = p(dir);
	struct walker w;
	struct walk_entry e;
	struct buf seen = BUF_INIT;
	if (walk_open(&w, open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC), 1, false, NULL) < 0)
		return false;
	while (walk_next(&w, &e, NULL) > 0)
		buf_appendf(&seen, "%s%s", seen.len ? " " : "", e.name);
	walk_close(&w);
	bool same = strcmp(buf_cstr(&seen), names) == 0;
	if (!same)
		diag("%s holds '%s', expected '%s'", dir, buf_cstr(&seen), names);
	buf_release(&seen);
	return same;
}

/* A file whose extraction fails part way (a truncated stream, a bound on
 * the data) leaves nothing half-written: not the new file, not a
 * temporary, and an old file of the same name as it was. */
static void test_failed_file_leaves_nothing(void)
{
	static char big[100000];
	memset(big, 'n', sizeof(big));
	struct buf b = BUF_INIT;
	struct tar_ent cut[] = { { .name = "small", .type = '0', .data = "ok", .len = 2 },
				 { .name = "big", .type = '0', .data = big, .len = sizeof(big), .cut = 70000 },
				 { 0 } };
	tb_build(&b, cut);
	char *msg = NULL;
	ok(extract("cut", b.data, b.len, 4096, &msg) < 0 && msg && strstr(msg, "truncated"),
	   "a stream cut inside a file fails: %s", msg ? msg : "(accepted)");
	free(msg);
	msg = NULL;
	ok(only("cut", "small"), "no partial file and no temporary left");
	buf_release(&b);

	put("cut/big", "old content", 0644);
	struct tar_ent whole[] = { { .name = "big", .type = '0', .data = big, .len = sizeof(big) }, { 0 } };
	tb_build(&b, whole);
	extract_max = 50000;
	ok(extract("cut", b.data, b.len, 4096, &msg) < 0 && msg && strstr(msg, "more than 50000 bytes"),
	   "a bound on the data written: %s", msg ? msg : "(accepted)");
	extract_max = 0;
	free(msg);
	_cleanup_free_ char *old = get("cut/big");
	is_str(old, "old content", "the old file is intact");
	ok(only("cut", "big small"), "and no temporary is left");
	buf_release(&b);
}

int main(void)
{
	if (!mkdtemp(base))
		return 1;
	test_round_trip();
	test_hostile("openat2");
	/* the same with the component walk kernels without openat2 get */
	fs_force_openat2_fallback(true);
	test_hostile("fallback");
	fs_force_openat2_fallback(false);
	test_walk();
	test_mkdir_beneath();
	test_sparse();
	test_sparse_hostile();
	test_failed_file_leaves_nothing();
	rm_rf_at(AT_FDCWD, base, NULL);
	return done_testing();
}
