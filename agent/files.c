/* files.c: file operations inside the sandbox (FILE_OP streams).
 *
 * Every path a client names is resolved relative to the agent's root fd
 * (the sandbox's "/") with open_beneath(RES_IN_ROOT): symlinks pointing
 * outside, ".." and renames racing the operation all stay inside the
 * sandbox.  Below a directory, work goes through directory fds with
 * O_NOFOLLOW (walk.h, rm_rf_at), never through path strings.
 *
 * Replacing writes go to a temporary file in the target's directory that is
 * renamed over the target only once complete: a failed write (no space, a
 * broken stream, a cancel) leaves the old file as it was.
 *
 * Output (file content, listings, tar streams) is sent only within the
 * stream's credit, like process output; input (write, tar put) is written
 * out before its credit is returned.
 *
 * An operation that names a user runs every file system step with that
 * user's credentials (creds.c): at its start and again at each event of a
 * stream (credit, input, end).  Files it creates are the user's because
 * the kernel makes them so.  Without a user the agent's own serve.  The
 * agent's own /proc entries are refused to every operation (procself.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "linux/user.h"
#include "util/fs.h"
#include "util/tar.h"
#include "util/walk.h"

#define LIST_MAX 100000
#define INFO_FRAME (60u * 1024u)

struct afile {
	struct afile *next;
	uint32_t stream;
	struct proto_fileop op;
	uint32_t credit;
	int fd;			/* read: the file; write: the temporary (or appended) file */
	int dirfd;		/* write: the target's directory */
	char *base, *tmp;	/* write: target and temporary names in dirfd */
	bool existed;
	struct stat old;	/* write: the replaced file */
	struct acred cred;	/* the user it runs as (cred.on), or the agent */
	bool in_place;		/* write: into the file itself (the user may not write its directory) */
	int64_t total;
	struct walker w;	/* list */
	bool walking;
	struct linux_idnames ids;
	int64_t count;
	struct tarw tw;		/* tar get */
	bool tw_on;
	struct tarx tx;		/* tar put */
	bool tx_on;
};

static struct afile *files;

static struct afile *find(uint32_t stream)
{
	for (struct afile *f = files; f; f = f->next)
		if (f->stream == stream)
			return f;
	return NULL;
}

bool files_stream_in_use(uint32_t stream)
{
	return find(stream) != NULL;
}

static void file_free(struct afile *f)
{
	for (struct afile **pp = &files; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp && f->dirfd >= 0)
		unlinkat(f->dirfd, f->tmp, 0);
	if (f->dirfd >= 0)
		close(f->dirfd);
	free(f->base);
	free(f->tmp);
	if (f->walking)
		walk_close(&f->w);
	linux_idnames_release(&f->ids);
	if (f->tw_on)
		tarw_release(&f->tw);
	if (f->tx_on)
		tarx_release(&f->tx);
	acred_release(&f->cred);
	proto_fileop_release(&f->op);
	free(f);
}

/* The last guarded open refused one of the agent's own /proc entries. */
static bool own_proc;

/* The kernel's answer, naming the path (and the user it was refused to). */
static void fail_errno(uint32_t stream, int e, const char *what, const char *path)
{
	const char *user = acred_user();
	if ((e == EACCES || e == EPERM) && own_proc)
		agent_send_error(stream, EACCES, "%s %s: the sandbox agent's own /proc entries are off limits", what,
				 path);
	else if (user && (e == EACCES || e == EPERM))
		agent_send_error(stream, e, "%s %s: %s (as user %s)", what, path,
				 e == EACCES ? "permission denied" : "operation not permitted", user);
	else
		agent_send_error(stream, e, "%s %s: %s", what, path, strerror(e));
}

/* An error of ours or of a helper, with the user named the same way. */
static void fail_err(uint32_t stream, struct capsa_error *err, const char *what, const char *path)
{
	const char *user = acred_user();
	if (user && (err->code == EACCES || err->code == EPERM))
		agent_send_error(stream, err->code, "%s %s: %s (as user %s)", what, path, err->msg, user);
	else
		agent_send_error(stream, err->code, "%s %s: %s", what, path, err->msg);
	capsa_error_free(err);
}

/* open_beneath in the sandbox's root, refusing the agent's own /proc
 * entries whatever the path went through. */
static int sb_open(const char *path, int flags, mode_t mode)
{
	own_proc = false;
	int fd = open_beneath(agent.root_fd, path, flags, mode, RES_IN_ROOT);
	if (fd < 0 && (errno == EACCES || errno == EPERM)) {
		/* the user may not open it: say so, or that nobody may */
		int e = errno;
		fd = open_beneath(agent.root_fd, path, O_PATH | (flags & O_NOFOLLOW), 0, RES_IN_ROOT);
		own_proc = fd >= 0 && agent_proc_is_own(fd, NULL);
		if (fd >= 0)
			close(fd);
		errno = e;
		return -1;
	}
	if (fd >= 0 && agent_proc_is_own(fd, NULL)) {
		close(fd);
		own_proc = true;
		errno = EACCES;
		return -1;
	}
	return fd;
}

static void fail_file(struct afile *f, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_file(struct afile *f, int e, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	agent_send_error(f->stream, e, "%s", msg);
	file_free(f);
}

static void result(uint32_t stream, struct buf *b)
{
	agent_send(P_FILE_RESULT, 0, stream, b ? b->data : NULL, b ? b->len : 0);
}

/* "/a/b/" -> "/a/b"; "a" -> "/a". */
static char *norm_path(const char *p)
{
	char *s = *p == '/' ? xstrdup(p) : xasprintf("/%s", p);
	size_t n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s && s[1] ? s + 1 : path;
}

static char *join(const char *dir, const char *rel)
{
	return strcmp(dir, "/") == 0 ? xasprintf("/%s", rel) : xasprintf("%s/%s", dir, rel);
}

static int file_type(mode_t m)
{
	return S_ISREG(m) ? 0 : S_ISDIR(m) ? 1 : S_ISLNK(m) ? 2 : 3;
}

/* ids were loaded before the operation took its user's credentials. */
static void put_info(struct buf *b, const char *path, const char *name, const struct stat *st, const char *link,
		     const struct linux_idnames *ids)
{
	struct proto_finfo fi = {
		.name = (char *)name, .path = (char *)path, .link = (char *)link, .type = file_type(st->st_mode),
		.size = st->st_size, .mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000,
		.mode = st->st_mode, .uid = st->st_uid, .gid = st->st_gid, .event = -1,
		.owner = (char *)linux_idnames_user(ids, st->st_uid), .group = (char *)linux_idnames_group(ids, st->st_gid),
	};
	proto_finfo_encode(b, &fi);
}

/* Opens the parent of path (creating it with parents); *base points into
 * path. */
static int parent_of(const char *path, bool parents, const char **base)
{
	own_proc = false;
	int fd = open_parent_beneath(agent.root_fd, path, RES_IN_ROOT, base);
	if (fd < 0 && errno == ENOENT && parents) {
		_cleanup_free_ char *dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
		if (mkdir_p_beneath(agent.root_fd, *dir ? dir : "/", 0755, RES_IN_ROOT) < 0)
			return -1;
		fd = open_parent_beneath(agent.root_fd, path, RES_IN_ROOT, base);
	}
	if (fd < 0 && errno == EINVAL)
		errno = EPERM; /* "/" itself has no parent to work in */
	if (fd >= 0 && agent_proc_is_own(fd, *base)) {
		close(fd);
		own_proc = true;
		errno = EACCES;
		return -1;
	}
	return fd;
}

/* ---- one-shot operations ------------------------------------------------------ */

static void do_stat(uint32_t stream, struct proto_fileop *op, struct linux_idnames *ids)
{
	int nofollow = (op->flags & FOPF_FOLLOW) ? 0 : O_NOFOLLOW;
	_cleanup_close_ int fd = sb_open(op->path, O_PATH | nofollow, 0);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return fail_errno(stream, errno, "stat", op->path);
	char link[PATH_MAX] = "";
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlinkat(fd, "", link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
	}
	struct buf b = BUF_INIT;
	put_info(&b, op->path, strcmp(op->path, "/") == 0 ? "/" : base_name(op->path), &st,
		 S_ISLNK(st.st_mode) ? link : NULL, ids);
	result(stream, &b);
	buf_release(&b);
}

/* Without a user, what is created belongs to root (the agent); with one,
 * to the user, by the kernel's doing. */
static void do_mkdir(uint32_t stream, struct proto_fileop *op)
{
	mode_t mode = op->mode >= 0 ? (mode_t)op->mode : 0755;
	const char *base;
	_cleanup_close_ int pfd = parent_of(op->path, op->flags & FOPF_PARENTS, &base);
	if (pfd < 0)
		return fail_errno(stream, errno, "mkdir", op->path);
	bool created = true;
	if (mkdirat(pfd, base, mode) < 0) {
		int e = errno;
		_cleanup_close_ int d = sb_open(op->path, O_PATH | O_DIRECTORY, 0);
		if (e != EEXIST || d < 0) {
			if (e == EEXIST)
				agent_send_error(stream, EEXIST, "mkdir %s: exists and is not a directory", op->path);
			else
				fail_errno(stream, e, "mkdir", op->path);
			return;
		}
		created = false;
	} else {
		fchmodat(pfd, base, mode, 0);
	}
	struct buf b = BUF_INIT;
	tlv_put_flag(&b, T_CREATED, created);
	result(stream, &b);
	buf_release(&b);
}

static void do_remove(uint32_t stream, struct proto_fileop *op)
{
	const char *base;
	_cleanup_close_ int pfd = parent_of(op->path, false, &base);
	if (pfd < 0)
		return fail_errno(stream, errno, "remove", op->path);
	struct stat st;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail_errno(stream, errno, "remove", op->path);
	if (S_ISDIR(st.st_mode)) {
		if (op->flags & FOPF_RECURSIVE) {
			struct capsa_error *err = NULL;
			if (rm_rf_at(pfd, base, &err) < 0)
				return fail_err(stream, err, "remove", op->path);
		} else if (unlinkat(pfd, base, AT_REMOVEDIR) < 0) {
			return fail_errno(stream, errno, "remove", op->path);
		}
	} else if (unlinkat(pfd, base, 0) < 0) {
		return fail_errno(stream, errno, "remove", op->path);
	}
	result(stream, NULL);
}

static void do_rename(uint32_t stream, struct proto_fileop *op)
{
	_cleanup_free_ char *to = norm_path(op->path2);
	const char *fb, *tb;
	_cleanup_close_ int fpfd = parent_of(op->path, false, &fb);
	if (fpfd < 0)
		return fail_errno(stream, errno, "rename", op->path);
	_cleanup_close_ int tpfd = parent_of(to, op->flags & FOPF_PARENTS, &tb);
	if (tpfd < 0)
		return fail_errno(stream, errno, "rename to", to);
	if (rename_at(fpfd, fb, tpfd, tb, (op->flags & FOPF_EXCL) ? RENAME_NOREPLACE_FLAG : 0) < 0) {
		_cleanup_free_ char *what = xasprintf("%s to %s", op->path, to);
		return fail_errno(stream, errno, "rename", what);
	}
	result(stream, NULL);
}

/* ---- streams out: read, list, tar get ----------------------------------------------- */

static void pump_read(struct afile *f)
{
	while (f->credit > 0) {
		size_t want = MIN((size_t)f->credit, (size_t)PROTO_DATA_CHUNK);
		ssize_t r = proto_conn_queue_read(&agent.chan, P_DATA, CH_STDOUT, f->stream, f->fd, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_file(f, errno, "read %s: %s", f->op.path, strerror(errno));
		if (r == 0) {
			struct buf b = BUF_INIT;
			tlv_put_i64(&b, T_SIZE, f->total);
			result(f->stream, &b);
			buf_release(&b);
			file_free(f);
			return;
		}
		f->credit -= (uint32_t)r;
		f->total += r;
		if (f->op.max && f->total > f->op.max)
			return fail_file(f, EFBIG, "read %s: larger than %lld bytes", f->op.path, (long long)f->op.max);
	}
}

static void pump_list(struct afile *f)
{
	while (f->credit > 0) {
		struct buf b = BUF_INIT;
		struct capsa_error *err = NULL;
		int r = 1;
		while (b.len < MIN((size_t)f->credit, (size_t)INFO_FRAME)) {
			struct walk_entry e;
			r = walk_next(&f->w, &e, &err);
			if (r <= 0)
				break;
			if (++f->count > LIST_MAX) {
				buf_release(&b);
				return fail_file(f, E2BIG, "list %s: more than %d entries", f->op.path, LIST_MAX);
			}
			char link[PATH_MAX];
			if (S_ISLNK(e.st.st_mode)) {
				ssize_t n = readlinkat(e.dirfd, e.name, link, sizeof(link) - 1);
				link[n > 0 ? n : 0] = '\0';
			}
			_cleanup_free_ char *path = join(f->op.path, e.rel);
			put_info(&b, path, e.name, &e.st, S_ISLNK(e.st.st_mode) ? link : NULL, &f->ids);
		}
		if (r < 0) {
			buf_release(&b);
			fail_err(f->stream, err, "list", f->op.path);
			return file_free(f);
		}
		if (b.len) {
			agent_send(P_FILE_INFO, 0, f->stream, b.data, b.len);
			f->credit -= (uint32_t)MIN((size_t)f->credit, b.len);
		}
		buf_release(&b);
		if (r == 0) {
			struct buf res = BUF_INIT;
			tlv_put_i64(&res, T_COUNT, f->count);
			result(f->stream, &res);
			buf_release(&res);
			file_free(f);
			return;
		}
	}
}

struct tar_fill {
	struct afile *f;
	struct capsa_error *err;
};

static ssize_t fill_tar(void *ctx, void *buf, size_t max)
{
	struct tar_fill *tf = ctx;
	return tarw_read(&tf->f->tw, buf, max, &tf->err);
}

static void pump_tar_get(struct afile *f)
{
	while (f->credit > 0) {
		struct tar_fill tf = { f, NULL };
		size_t want = MIN((size_t)f->credit, (size_t)PROTO_DATA_CHUNK);
		ssize_t r = proto_conn_queue_fill(&agent.chan, P_DATA, CH_STDOUT, f->stream, want, fill_tar, &tf);
		if (r < 0) {
			if (!tf.err)
				error_sys(&tf.err, errno, "send");
			fail_err(f->stream, tf.err, "copy", f->op.path);
			return file_free(f);
		}
		if (r == 0) {
			struct buf b = BUF_INIT;
			tlv_put_i64(&b, T_SIZE, (int64_t)f->tw.bytes);
			tlv_put_i64(&b, T_COUNT, (int64_t)f->tw.files);
			result(f->stream, &b);
			buf_release(&b);
			file_free(f);
			return;
		}
		f->credit -= (uint32_t)r;
	}
}

static void pump(struct afile *f)
{
	switch (f->op.op) {
	case FOP_READ: pump_read(f); break;
	case FOP_LIST: pump_list(f); break;
	case FOP_TAR_GET: pump_tar_get(f); break;
	default: break;
	}
	agent_chan_update();
}

static int start_read(struct afile *f)
{
	f->fd = sb_open(f->op.path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
	struct stat st;
	if (f->fd < 0 || fstat(f->fd, &st) < 0)
		return fail_errno(f->stream, errno, "read", f->op.path), -1;
	if (S_ISDIR(st.st_mode))
		return agent_send_error(f->stream, EISDIR, "read %s: is a directory", f->op.path), -1;
	if (!S_ISREG(st.st_mode))
		return agent_send_error(f->stream, EINVAL, "read %s: not a regular file", f->op.path), -1;
	if (f->op.max && st.st_size > f->op.max)
		return agent_send_error(f->stream, EFBIG, "read %s: %lld bytes, more than the limit of %lld",
					f->op.path, (long long)st.st_size, (long long)f->op.max),
		       -1;
	struct buf b = BUF_INIT;
	put_info(&b, f->op.path, base_name(f->op.path), &st, NULL, &f->ids);
	agent_send(P_FILE_INFO, 0, f->stream, b.data, b.len);
	buf_release(&b);
	return 0;
}

static int start_list(struct afile *f)
{
	int fd = sb_open(f->op.path, O_RDONLY | O_DIRECTORY | O_NOCTTY, 0);
	if (fd < 0)
		return fail_errno(f->stream, errno, "list", f->op.path), -1;
	struct capsa_error *err = NULL;
	if (walk_open(&f->w, fd, f->op.depth > 0 ? (size_t)f->op.depth : 1, false, &err) < 0)
		return fail_err(f->stream, err, "list", f->op.path), -1;
	f->w.hide = agent_walk_hide;
	f->walking = true;
	return 0;
}

static int start_tar_get(struct afile *f)
{
	struct capsa_error *err = NULL;
	int rc;
	if (strcmp(f->op.path, "/") == 0) {
		rc = tarw_init(&f->tw, agent.root_fd, NULL, f->op.name ? f->op.name : ".", &err);
	} else {
		const char *base;
		_cleanup_close_ int pfd = parent_of(f->op.path, false, &base);
		struct stat st;
		if (pfd < 0 || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return fail_errno(f->stream, errno, "copy", f->op.path), -1;
		rc = tarw_init(&f->tw, pfd, base, f->op.name ? f->op.name : base, &err);
	}
	if (rc < 0)
		return fail_err(f->stream, err, "copy", f->op.path), -1;
	f->tw.hide = agent_walk_hide;
	f->tw_on = true;
	return 0;
}

/* ---- streams in: write, tar put ---------------------------------------------------- */

/* Follows a final symlink (inside the sandbox) to the file a write
 * replaces.  Fills f->dirfd, f->base and f->old/existed. */
static int write_target(struct afile *f)
{
	_cleanup_free_ char *p = xstrdup(f->op.path);
	for (int links = 0;; links++) {
		if (links > 40)
			return agent_send_error(f->stream, ELOOP, "write %s: too many symlinks", f->op.path), -1;
		const char *base;
		int pfd = parent_of(p, f->op.flags & FOPF_PARENTS, &base);
		if (pfd < 0)
			return fail_errno(f->stream, errno, "write", f->op.path), -1;
		struct stat st;
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) {
				int e = errno;
				close(pfd);
				return fail_errno(f->stream, e, "write", f->op.path), -1;
			}
			f->existed = false;
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlinkat(pfd, base, target, sizeof(target) - 1);
			close(pfd);
			if (n <= 0)
				return fail_errno(f->stream, n < 0 ? errno : ENOENT, "write", f->op.path), -1;
			target[n] = '\0';
			char *next;
			if (target[0] == '/') {
				next = xstrdup(target);
			} else {
				size_t dl = (size_t)(strrchr(p, '/') - p);
				next = xasprintf("%.*s/%s", (int)dl, p, target);
			}
			free(p);
			p = next;
			continue;
		} else if (S_ISDIR(st.st_mode)) {
			close(pfd);
			return agent_send_error(f->stream, EISDIR, "write %s: is a directory", f->op.path), -1;
		} else if (!S_ISREG(st.st_mode)) {
			close(pfd);
			return agent_send_error(f->stream, EINVAL, "write %s: not a regular file", f->op.path), -1;
		} else {
			f->existed = true;
			f->old = st;
		}
		f->dirfd = pfd;
		f->base = xstrdup(base);
		return 0;
	}
}

static int start_append(struct afile *f)
{
	mode_t mode = f->op.mode >= 0 ? (mode_t)f->op.mode : 0644;
	if (f->op.flags & FOPF_PARENTS) {
		const char *b;
		int pfd = parent_of(f->op.path, true, &b);
		if (pfd >= 0)
			close(pfd);
	}
	f->fd = sb_open(f->op.path, O_WRONLY | O_APPEND | O_NOCTTY | O_NONBLOCK, 0);
	if (f->fd < 0 && errno == ENOENT && !own_proc)
		f->fd = sb_open(f->op.path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOCTTY | O_NONBLOCK, mode);
	else
		f->existed = true;
	struct stat st;
	if (f->fd < 0 || fstat(f->fd, &st) < 0)
		return fail_errno(f->stream, errno == ELOOP ? EISDIR : errno, "write", f->op.path), -1;
	if (!S_ISREG(st.st_mode))
		return agent_send_error(f->stream, S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "write %s: %s", f->op.path,
					S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file"),
		       -1;
	return 0;
}

/* A user who may write the file but not its directory writes it in place
 * (truncated first), as a shell's `>` would: not atomic. */
static int open_in_place(struct afile *f, int e)
{
	if (!f->cred.on || !f->existed || (e != EACCES && e != EPERM))
		return -1;
	f->fd = openat(f->dirfd, f->base, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (f->fd < 0)
		return -1;
	struct stat st;
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(f->fd);
		f->fd = -1;
		return -1;
	}
	f->in_place = true;
	return 0;
}

static int start_write(struct afile *f)
{
	if (f->op.flags & FOPF_APPEND)
		return start_append(f);
	if (write_target(f) < 0)
		return -1;
	if (f->existed && (f->op.flags & FOPF_EXCL))
		return agent_send_error(f->stream, EEXIST, "write %s: file exists", f->op.path), -1;
	_cleanup_free_ char *rnd = random_hex(8);
	f->tmp = xasprintf(".capsa-write-%s", rnd);
	f->fd = openat(f->dirfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (f->fd < 0) {
		int e = errno;
		free(f->tmp);
		f->tmp = NULL;
		if (open_in_place(f, e) == 0)
			return 0;
		return fail_errno(f->stream, e, "write", f->op.path), -1;
	}
	return 0;
}

/* The replacing file gets its mode (asked for, else the replaced file's)
 * and, without a user, the replaced file's owner (else root's); a user's
 * file is already the user's. */
static int finish_replace(struct afile *f)
{
	mode_t mode = f->op.mode >= 0 ? (mode_t)f->op.mode : f->existed ? f->old.st_mode & 07777 : 0644;
	uid_t uid = f->existed ? f->old.st_uid : 0;
	gid_t gid = f->existed ? f->old.st_gid : 0;
	if ((!f->cred.on && fchown(f->fd, uid, gid) < 0) || fchmod(f->fd, mode) < 0)
		return fail_file(f, errno, "write %s: set owner and mode: %s", f->op.path, strerror(errno)), -1;
	if (close(f->fd) < 0) {
		f->fd = -1;
		return fail_file(f, errno, "write %s: %s", f->op.path, strerror(errno)), -1;
	}
	f->fd = -1;
	int r;
	if (f->op.flags & FOPF_EXCL) {
		r = rename_at(f->dirfd, f->tmp, f->dirfd, f->base, RENAME_NOREPLACE_FLAG);
		if (r < 0 && errno == EINVAL) {
			r = linkat(f->dirfd, f->tmp, f->dirfd, f->base, 0);
			if (r == 0)
				unlinkat(f->dirfd, f->tmp, 0);
		}
	} else {
		r = renameat(f->dirfd, f->tmp, f->dirfd, f->base);
	}
	if (r < 0) {
		int e = errno;
		fail_errno(f->stream, e, "write", f->op.path);
		return file_free(f), -1;
	}
	free(f->tmp);
	f->tmp = NULL;
	return 0;
}

static void finish_write(struct afile *f)
{
	if (!(f->op.flags & FOPF_APPEND) && !f->in_place && finish_replace(f) < 0)
		return;
	if (f->in_place && f->op.mode >= 0 && fchmod(f->fd, (mode_t)f->op.mode) < 0) {
		int e = errno;
		fail_errno(f->stream, e, "write", f->op.path);
		return file_free(f);
	}
	struct buf b = BUF_INIT;
	tlv_put_i64(&b, T_SIZE, f->total);
	tlv_put_flag(&b, T_CREATED, !f->existed);
	result(f->stream, &b);
	buf_release(&b);
	file_free(f);
}

/* Extracted entries are root's (without a user), the archive's owners
 * (CHOWN: as far as the credentials allow) or the user's (the kernel's
 * doing). */
static int start_tar_put(struct afile *f)
{
	if ((f->op.flags & FOPF_PARENTS) && mkdir_p_beneath(agent.root_fd, f->op.path, 0755, RES_IN_ROOT) < 0)
		return fail_errno(f->stream, errno, "copy to", f->op.path), -1;
	_cleanup_close_ int d = sb_open(f->op.path, O_PATH | O_DIRECTORY, 0);
	if (d < 0)
		return fail_errno(f->stream, errno, "copy to", f->op.path), -1;
	struct tarx_opts o = { .root_fd = agent.root_fd, .dir = f->op.path, .res = RES_IN_ROOT };
	if (f->op.flags & FOPF_CHOWN)
		o.owner = TARX_OWNER_ARCHIVE;
	tarx_init(&f->tx, &o);
	f->tx_on = true;
	return 0;
}

static void input(struct afile *f, const uint8_t *data, size_t n)
{
	if (f->op.op == FOP_WRITE) {
		if (write_all(f->fd, data, n) < 0) {
			fail_errno(f->stream, errno, "write", f->op.path);
			return file_free(f);
		}
	} else {
		struct capsa_error *err = NULL;
		if (tarx_feed(&f->tx, data, n, &err) < 0) {
			fail_err(f->stream, err, "copy to", f->op.path);
			return file_free(f);
		}
	}
	f->total += (int64_t)n;
	uint8_t c[4];
	put_be32(c, (uint32_t)n);
	agent_send(P_CREDIT, CH_STDIN, f->stream, c, 4);
}

static void input_end(struct afile *f)
{
	if (f->op.op == FOP_WRITE)
		return finish_write(f);
	struct capsa_error *err = NULL;
	if (tarx_finish(&f->tx, &err) < 0) {
		fail_err(f->stream, err, "copy to", f->op.path);
		return file_free(f);
	}
	struct buf b = BUF_INIT;
	tlv_put_i64(&b, T_COUNT, (int64_t)f->tx.entries);
	tlv_put_i64(&b, T_SIZE, f->total);
	result(f->stream, &b);
	buf_release(&b);
	file_free(f);
}

/* ---- entry points -------------------------------------------------------------- */

static const char *op_verb(int op)
{
	switch (op) {
	case FOP_STAT: return "stat";
	case FOP_LIST: return "list";
	case FOP_READ: return "read";
	case FOP_WRITE: return "write";
	case FOP_MKDIR: return "mkdir";
	case FOP_REMOVE: return "remove";
	case FOP_RENAME: return "rename";
	case FOP_TAR_GET: return "copy";
	case FOP_TAR_PUT: return "copy to";
	case FOP_WATCH: return "watch";
	default: return "file operation on";
	}
}

/* A one-shot operation, under its user's credentials. */
static void one_shot(uint32_t stream, struct proto_fileop *op, const struct acred *cred)
{
	struct linux_idnames ids = { 0 };
	if (op->op == FOP_STAT)
		linux_idnames_load(agent.root_fd, &ids); /* names, as the agent */
	if (acred_enter(cred) < 0) {
		agent_send_error(stream, errno, "%s %s: cannot take the credentials of user %s: %s", op_verb(op->op),
				 op->path, cred->user, strerror(errno));
	} else {
		switch (op->op) {
		case FOP_STAT: do_stat(stream, op, &ids); break;
		case FOP_MKDIR: do_mkdir(stream, op); break;
		case FOP_REMOVE: do_remove(stream, op); break;
		default: do_rename(stream, op); break;
		}
		acred_leave();
	}
	linux_idnames_release(&ids);
}

static void stream_start(uint32_t stream, struct proto_fileop *op, struct acred *cred)
{
	struct afile *f = xcalloc(1, sizeof(*f));
	f->stream = stream;
	f->op = *op;
	memset(op, 0, sizeof(*op));
	acred_move(&f->cred, cred);
	f->fd = f->dirfd = -1;
	f->credit = PROTO_WINDOW;
	f->next = files;
	files = f;
	if (f->op.op == FOP_READ || f->op.op == FOP_LIST)
		linux_idnames_load(agent.root_fd, &f->ids); /* names, as the agent */
	if (acred_enter(&f->cred) < 0) {
		agent_send_error(stream, errno, "%s %s: cannot take the credentials of user %s: %s",
				 op_verb(f->op.op), f->op.path, f->cred.user, strerror(errno));
		return file_free(f);
	}
	int rc;
	switch (f->op.op) {
	case FOP_READ: rc = start_read(f); break;
	case FOP_LIST: rc = start_list(f); break;
	case FOP_TAR_GET: rc = start_tar_get(f); break;
	case FOP_WRITE: rc = start_write(f); break;
	default: rc = start_tar_put(f); break;
	}
	if (rc < 0)
		file_free(f);
	else
		pump(f);
	acred_leave();
}

void file_start(uint32_t stream, const uint8_t *payload, size_t len)
{
	struct proto_fileop op;
	const char *why = NULL;
	if (proto_fileop_decode(payload, len, &op, &why) < 0)
		return agent_send_error(stream, EPROTO, "file operation: %s", why);
	char *p = norm_path(op.path);
	free(op.path);
	op.path = p;
	struct acred cred;
	struct capsa_error *err = NULL;
	if (acred_init(&cred, op.user, &err) < 0) {
		agent_send_error(stream, err->code, "%s %s: %s", op_verb(op.op), op.path, err->msg);
		capsa_error_free(err);
	} else if (op.op == FOP_WATCH) {
		watch_start(stream, &op, &cred);
	} else if (op.op == FOP_STAT || op.op == FOP_MKDIR || op.op == FOP_REMOVE || op.op == FOP_RENAME) {
		one_shot(stream, &op, &cred);
	} else {
		stream_start(stream, &op, &cred);
	}
	acred_release(&cred);
	proto_fileop_release(&op);
}

bool file_frame(const struct proto_hdr *h, const uint8_t *payload)
{
	struct afile *f = find(h->stream);
	if (!f)
		return false;
	bool in = f->op.op == FOP_WRITE || f->op.op == FOP_TAR_PUT;
	/* every step of a stream runs as its user (f may be freed below) */
	if (acred_enter(&f->cred) < 0) {
		agent_send_error(f->stream, errno, "%s %s: cannot take the credentials of user %s: %s",
				 op_verb(f->op.op), f->op.path, f->cred.user, strerror(errno));
		file_free(f);
		return true;
	}
	switch (h->type) {
	case P_CREDIT:
		if (h->len == 4 && h->flags == CH_STDOUT && !in) {
			uint64_t c = (uint64_t)f->credit + get_be32(payload);
			f->credit = c > (64u << 20) ? (64u << 20) : (uint32_t)c;
			pump(f);
		}
		break;
	case P_DATA:
		if (h->flags == CH_STDIN && in)
			input(f, payload, h->len);
		break;
	case P_EOF:
		if (h->flags == CH_STDIN && in)
			input_end(f);
		break;
	case P_CANCEL:
		fail_file(f, ECANCELED, "%s: cancelled", f->op.path);
		break;
	default:
		break;
	}
	acred_leave();
	return true;
}

void files_cancel_all(void)
{
	while (files)
		file_free(files);
}
