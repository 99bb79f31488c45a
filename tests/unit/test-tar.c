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
static int extract(const char *dest, const void *data, size_t n, size_t step, char **msg)
{
	_cleanup_free_ char *d = p(dest);
	mkdir(d, 0755);
	_cleanup_close_ int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct tarx x;
	struct tarx_opts o = { .root_fd = fd, .dir = "", .res = RES_IN_ROOT, .strip_setid = true };
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
	rm_rf_at(AT_FDCWD, base, NULL);
	return done_testing();
}
