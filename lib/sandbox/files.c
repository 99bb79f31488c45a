/* files.c: the client side of file operations (capsa/files.h).  One
 * connection per handle, one operation at a time, each on a fresh stream.
 * Output of the agent (content, listings, tar streams) is credited back
 * only after it was written out; input is sent only within the agent's
 * credit. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsa/files.h"
#include "sandbox.h"
#include "util/fs.h"
#include "util/tar.h"

#define OP_TIMEOUT_MS (-1)

struct capsa_files {
	struct proto_conn c;
	char *name;
	int64_t disk; /* --disk, to say so when it is full */
	uint32_t next_stream;
	char *user;   /* every operation runs as this user (NULL: the agent, root) */
	int64_t max;  /* bytes one read, download or copy out may write here (0: no bound) */
};

/* How one operation consumes what comes back. */
struct op {
	uint32_t stream;
	struct capsa_files *f;
	/* FILE_INFO entries */
	int (*entry)(struct op *o, const uint8_t *val, size_t len);
	/* DATA */
	int (*data)(struct op *o, const uint8_t *p, size_t n);
	/* input: fills up to n bytes; 0 at end, -1 on error */
	ssize_t (*input)(struct op *o, void *buf, size_t n);
	void *ctx;
	struct buf result;
	bool done, failed, cancelled;
	int code;
	char *msg;
	struct capsa_error *local; /* a failure of ours (writing out, reading input) */
	bool was_local;		   /* and op_run reported it */
	uint32_t credit;
	bool input_done;
};

CAPSA_EXPORT int capsa_files_open(struct capsa_ctx *ctx, const char *sandbox, struct capsa_files **out,
				  struct capsa_error **err)
{
	struct sb_row r;
	struct capsa_files *f = xcalloc(1, sizeof(*f));
	if (sandbox_open_running(ctx, sandbox, &r, &f->c, err) < 0) {
		free(f);
		return -1;
	}
	if (strcmp(r.state, "paused") == 0) {
		error_set(err, EBUSY, "sandbox %s is paused", r.name);
		proto_conn_release(&f->c, true);
		sb_row_release(&r);
		free(f);
		return -1;
	}
	f->name = xstrdup(r.name);
	f->next_stream = 1;
	json_t *cfg = json_loads(r.config ? r.config : "{}", 0, NULL);
	f->disk = cfg ? json_integer_value(json_object_get(cfg, "disk")) : 0;
	json_decref(cfg);
	sb_row_release(&r);
	*out = f;
	return 0;
}

CAPSA_EXPORT void capsa_files_close(struct capsa_files *f)
{
	if (!f)
		return;
	proto_conn_release(&f->c, true);
	free(f->name);
	free(f->user);
	free(f);
}

CAPSA_EXPORT void capsa_files_set_user(struct capsa_files *f, const char *user)
{
	free(f->user);
	f->user = user && *user ? xstrdup(user) : NULL;
}

CAPSA_EXPORT void capsa_files_set_max(struct capsa_files *f, int64_t max)
{
	f->max = max > 0 ? max : 0;
}

static void op_local_fail(struct op *o, struct capsa_error *e)
{
	if (!o->local)
		o->local = e;
	else
		capsa_error_free(e);
	if (!o->cancelled) {
		o->cancelled = true;
		proto_conn_queue(&o->f->c, P_CANCEL, 0, o->stream, NULL, 0);
	}
}

static int on_op_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct op *o = ctx;
	if (h->stream != o->stream || o->done)
		return 0;
	switch (h->type) {
	case P_FILE_INFO: {
		struct tlv_iter it;
		tlv_iter_init(&it, payload, h->len);
		uint16_t tag;
		const uint8_t *val;
		uint32_t len;
		while (tlv_next(&it, &tag, &val, &len) > 0) {
			if (tag == T_ENTRY && o->entry && !o->cancelled && o->entry(o, val, len) < 0)
				break;
		}
		uint8_t n[4];
		put_be32(n, h->len);
		proto_conn_queue(&o->f->c, P_CREDIT, CH_STDOUT, o->stream, n, 4);
		break;
	}
	case P_DATA:
		if (h->flags != CH_STDOUT)
			break;
		if (o->data && !o->cancelled)
			o->data(o, payload, h->len);
		if (!o->cancelled) {
			uint8_t n[4];
			put_be32(n, h->len);
			proto_conn_queue(&o->f->c, P_CREDIT, CH_STDOUT, o->stream, n, 4);
		}
		break;
	case P_CREDIT:
		if (h->flags == CH_STDIN && h->len == 4)
			o->credit += get_be32(payload);
		break;
	case P_FILE_RESULT:
		buf_append(&o->result, payload, h->len);
		o->done = true;
		break;
	case P_ERROR:
		free(o->msg);
		proto_error_decode(payload, h->len, &o->code, &o->msg);
		o->done = o->failed = true;
		break;
	default:
		break;
	}
	return 0;
}

/* Sends input within credit; returns -1 when the connection failed. */
static int send_input(struct op *o)
{
	char buf[PROTO_DATA_CHUNK];
	while (!o->input_done && !o->done && !o->cancelled && o->credit > 0) {
		ssize_t n = o->input(o, buf, MIN(sizeof(buf), (size_t)o->credit));
		if (n < 0) {
			/* o->local was set by input() */
			o->cancelled = true;
			proto_conn_queue(&o->f->c, P_CANCEL, 0, o->stream, NULL, 0);
			break;
		}
		if (n == 0) {
			o->input_done = true;
			proto_conn_queue(&o->f->c, P_EOF, CH_STDIN, o->stream, NULL, 0);
			break;
		}
		proto_conn_queue(&o->f->c, P_DATA, CH_STDIN, o->stream, buf, (size_t)n);
		o->credit -= (uint32_t)n;
		if (proto_conn_flush_all(&o->f->c, 60000) < 0)
			return -1;
	}
	return proto_conn_flush_all(&o->f->c, 60000);
}

static int op_run(struct capsa_files *f, struct op *o, const struct proto_fileop *req, struct capsa_error **err)
{
	o->f = f;
	o->stream = f->next_stream++;
	if (f->next_stream == 0)
		f->next_stream = 1;
	o->credit = PROTO_WINDOW;
	struct proto_fileop as = *req;
	if (!as.user)
		as.user = f->user;
	struct buf b = BUF_INIT;
	proto_fileop_encode(&b, &as);
	int qr = proto_conn_queue(&f->c, P_FILE_OP, 0, o->stream, b.data, b.len);
	buf_release(&b);
	if (qr < 0)
		return error_set(err, E2BIG, "file operation on %s does not fit in one frame", req->path);
	while (!o->done) {
		if (o->input && send_input(o) < 0)
			return error_sys(err, errno, "sandbox %s: send to the supervisor", f->name);
		if (proto_conn_flush_all(&f->c, 60000) < 0)
			return error_sys(err, errno, "sandbox %s: send to the supervisor", f->name);
		if (o->done)
			break;
		int r = proto_conn_wait(&f->c, OP_TIMEOUT_MS, on_op_frame, o);
		if (r == 0)
			return error_set(err, ESRCH, "sandbox %s: the supervisor closed the connection", f->name);
		if (r < 0)
			return error_sys(err, errno, "sandbox %s: wait for the supervisor", f->name);
	}
	proto_conn_flush_all(&f->c, 10000);
	if (o->local) {
		o->was_local = true;
		error_move(err, &o->local);
		return -1;
	}
	if (o->failed) {
		if (o->code == ENOSPC && f->disk > 0)
			error_set(err, ENOSPC, "no space left on device in sandbox %s (--disk %lldM): %s", f->name,
				  (long long)(f->disk >> 20), o->msg ? o->msg : "failed");
		else
			error_set(err, o->code ? o->code : EIO, "sandbox %s: %s", f->name, o->msg ? o->msg : "failed");
		return -1;
	}
	return 0;
}

static void op_release(struct op *o)
{
	buf_release(&o->result);
	free(o->msg);
	capsa_error_free(o->local);
}

static struct proto_fileop fop(int opcode, const char *path)
{
	struct proto_fileop o = { .op = opcode, .path = (char *)path, .mode = -1 };
	return o;
}

static int check_path(const char *path, struct capsa_error **err)
{
	if (!path || !*path)
		return error_set(err, EINVAL, "no path given");
	if (strlen(path) >= 4096)
		return error_set(err, ENAMETOOLONG, "path '%.64s...' is too long", path);
	return 0;
}

/* ---- file information ---------------------------------------------------------- */

CAPSA_EXPORT void capsa_file_info_release(struct capsa_file_info *i)
{
	free(i->name);
	free(i->path);
	free(i->owner);
	free(i->group);
	free(i->link_target);
	memset(i, 0, sizeof(*i));
}

CAPSA_EXPORT void capsa_file_infos_free(struct capsa_file_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		capsa_file_info_release(&v[i]);
	free(v);
}

static int info_from_tlv(const uint8_t *val, size_t len, struct capsa_file_info *out)
{
	struct proto_finfo fi;
	if (proto_finfo_decode(val, len, &fi) < 0)
		return -1;
	*out = (struct capsa_file_info){
		.name = steal_pointer(&fi.name), .path = steal_pointer(&fi.path), .type = (enum capsa_file_type)fi.type,
		.size = fi.size, .mode = fi.mode, .uid = fi.uid, .gid = fi.gid, .owner = steal_pointer(&fi.owner),
		.group = steal_pointer(&fi.group), .mtime_ms = fi.mtime_ms, .link_target = steal_pointer(&fi.link),
	};
	proto_finfo_release(&fi);
	return 0;
}

static int do_stat(struct capsa_files *f, const char *path, bool follow, struct capsa_file_info *out,
		   struct capsa_error **err)
{
	if (check_path(path, err) < 0)
		return -1;
	struct op o = { 0 };
	struct proto_fileop req = fop(FOP_STAT, path);
	req.flags = follow ? FOPF_FOLLOW : 0;
	int rc = op_run(f, &o, &req, err);
	if (rc == 0) {
		struct tlv_iter it;
		tlv_iter_init(&it, o.result.data, o.result.len);
		uint16_t tag;
		const uint8_t *val;
		uint32_t len;
		rc = error_set(err, EPROTO, "sandbox %s: stat %s: malformed answer", f->name, path);
		while (tlv_next(&it, &tag, &val, &len) > 0) {
			if (tag == T_ENTRY && info_from_tlv(val, len, out) == 0) {
				capsa_error_free(*err);
				*err = NULL;
				rc = 0;
				break;
			}
		}
	}
	op_release(&o);
	return rc;
}

CAPSA_EXPORT int capsa_files_stat(struct capsa_files *f, const char *path, struct capsa_file_info *out,
				  struct capsa_error **err)
{
	return do_stat(f, path, false, out, err);
}

CAPSA_EXPORT int capsa_files_stat_follow(struct capsa_files *f, const char *path, struct capsa_file_info *out,
					 struct capsa_error **err)
{
	return do_stat(f, path, true, out, err);
}

struct list_ctx {
	struct capsa_file_info *v;
	size_t n;
};

static int list_entry(struct op *o, const uint8_t *val, size_t len)
{
	struct list_ctx *l = o->ctx;
	if (l->n >= CAPSA_FILES_LIST_MAX) {
		op_local_fail(o, NULL);
		error_set(&o->local, E2BIG, "sandbox %s: more than %d entries", o->f->name, CAPSA_FILES_LIST_MAX);
		return -1;
	}
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	if (info_from_tlv(val, len, &l->v[l->n]) == 0)
		l->n++;
	return 0;
}

CAPSA_EXPORT int capsa_files_list(struct capsa_files *f, const char *path, int depth, struct capsa_file_info **out,
				  size_t *n, struct capsa_error **err)
{
	*out = NULL;
	*n = 0;
	if (check_path(path, err) < 0)
		return -1;
	if (depth < 1 || depth > 1024)
		return error_set(err, EINVAL, "invalid depth %d: 1-1024", depth);
	struct list_ctx l = { 0 };
	struct op o = { .entry = list_entry, .ctx = &l };
	struct proto_fileop req = fop(FOP_LIST, path);
	req.depth = depth;
	int rc = op_run(f, &o, &req, err);
	op_release(&o);
	if (rc < 0) {
		capsa_file_infos_free(l.v, l.n);
		return -1;
	}
	*out = l.v;
	*n = l.n;
	return 0;
}

/* ---- content ----------------------------------------------------------------------- */

struct read_ctx {
	struct buf *mem;
	size_t max;
	int fd;
	int64_t total;
	int64_t fd_max;	  /* bound on what goes to fd (0: none) */
	bool holes;	  /* fd is a regular file at its end: zeros may be skipped */
	bool skipped;	  /* and were: its size is set at the end */
	off_t start;
};

static bool all_zero(const uint8_t *p, size_t n)
{
	for (; n && ((uintptr_t)p & 7); p++, n--)
		if (*p)
			return false;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		if (w)
			return false;
	}
	for (; n; p++, n--)
		if (*p)
			return false;
	return true;
}

/* Zeros written to a regular file at its end become a hole instead (a
 * sparse file read out stays sparse on this side). */
static void read_to_file(struct read_ctx *rc, int fd)
{
	struct stat st;
	rc->fd = fd;
	rc->start = lseek(fd, 0, SEEK_CUR);
	int fl = fcntl(fd, F_GETFL);
	rc->holes = rc->start >= 0 && fl >= 0 && !(fl & O_APPEND) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_size <= rc->start;
}

static int read_done(struct read_ctx *rc, struct capsa_error **err)
{
	if (rc->skipped && ftruncate(rc->fd, rc->start + rc->total) < 0)
		return error_sys(err, errno, "write out");
	return 0;
}

static int read_data(struct op *o, const uint8_t *p, size_t n)
{
	struct read_ctx *rc = o->ctx;
	rc->total += (int64_t)n;
	if (rc->mem) {
		if (rc->mem->len + n > rc->max) {
			struct capsa_error *e = NULL;
			error_set(&e, EFBIG, "sandbox %s: larger than %zu bytes", o->f->name, rc->max);
			op_local_fail(o, e);
			return -1;
		}
		buf_append(rc->mem, p, n);
		return 0;
	}
	if (rc->fd_max && rc->total > rc->fd_max) {
		struct capsa_error *e = NULL;
		error_set(&e, EFBIG, "sandbox %s: more than the limit of %lld bytes", o->f->name,
			  (long long)rc->fd_max);
		op_local_fail(o, e);
		return -1;
	}
	if (rc->holes && all_zero(p, n) && lseek(rc->fd, (off_t)n, SEEK_CUR) >= 0) {
		rc->skipped = true;
		return 0;
	}
	if (write_all(rc->fd, p, n) < 0) {
		struct capsa_error *e = NULL;
		error_sys(&e, errno, "write out");
		op_local_fail(o, e);
		return -1;
	}
	return 0;
}

CAPSA_EXPORT int capsa_files_read(struct capsa_files *f, const char *path, size_t max, char **data, size_t *len,
				  struct capsa_error **err)
{
	if (check_path(path, err) < 0)
		return -1;
	struct buf mem = BUF_INIT;
	struct read_ctx rc = { .mem = &mem, .max = max, .fd = -1 };
	struct op o = { .data = read_data, .ctx = &rc };
	struct proto_fileop req = fop(FOP_READ, path);
	req.max = (int64_t)max;
	int r = op_run(f, &o, &req, err);
	op_release(&o);
	if (r < 0) {
		buf_release(&mem);
		return -1;
	}
	*len = mem.len;
	buf_cstr(&mem);
	*data = buf_steal(&mem);
	return 0;
}

CAPSA_EXPORT int capsa_files_read_fd(struct capsa_files *f, const char *path, int out_fd, int64_t *size,
				     struct capsa_error **err)
{
	if (check_path(path, err) < 0)
		return -1;
	struct read_ctx rc = { .fd_max = f->max };
	read_to_file(&rc, out_fd);
	struct op o = { .data = read_data, .ctx = &rc };
	struct proto_fileop req = fop(FOP_READ, path);
	req.max = f->max;
	int r = op_run(f, &o, &req, err);
	op_release(&o);
	if (r == 0)
		r = read_done(&rc, err);
	if (r == 0 && size)
		*size = rc.total;
	return r;
}

struct write_src {
	const uint8_t *mem;
	size_t len, off;
	int fd;
};

static ssize_t write_input(struct op *o, void *buf, size_t n)
{
	struct write_src *s = o->ctx;
	if (s->mem) {
		size_t k = MIN(n, s->len - s->off);
		memcpy(buf, s->mem + s->off, k);
		s->off += k;
		return (ssize_t)k;
	}
	for (;;) {
		ssize_t r = read(s->fd, buf, n);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		struct capsa_error *e = NULL;
		error_sys(&e, errno, "read input");
		if (!o->local)
			o->local = e;
		else
			capsa_error_free(e);
		return -1;
	}
}

static int do_write(struct capsa_files *f, const char *path, struct write_src *src, const struct capsa_write_opts *w,
		    struct capsa_error **err)
{
	if (check_path(path, err) < 0)
		return -1;
	struct capsa_write_opts def = { .mode = -1 };
	if (!w)
		w = &def;
	if (w->mode > 07777)
		return error_set(err, EINVAL, "invalid mode %o", w->mode);
	struct op o = { .input = write_input, .ctx = src };
	struct proto_fileop req = fop(FOP_WRITE, path);
	req.mode = w->mode;
	req.user = (char *)w->user;
	req.flags = (w->make_parents ? FOPF_PARENTS : 0) | (w->how == CAPSA_WRITE_CREATE ? FOPF_EXCL : 0) |
		    (w->how == CAPSA_WRITE_APPEND ? FOPF_APPEND : 0);
	int r = op_run(f, &o, &req, err);
	op_release(&o);
	return r;
}

CAPSA_EXPORT int capsa_files_write(struct capsa_files *f, const char *path, const void *data, size_t n,
				   const struct capsa_write_opts *opts, struct capsa_error **err)
{
	struct write_src s = { .mem = data ? data : (const uint8_t *)"", .len = n, .fd = -1 };
	return do_write(f, path, &s, opts, err);
}

CAPSA_EXPORT int capsa_files_write_fd(struct capsa_files *f, const char *path, int in_fd,
				      const struct capsa_write_opts *opts, struct capsa_error **err)
{
	struct write_src s = { .fd = in_fd };
	return do_write(f, path, &s, opts, err);
}

/* ---- tree operations --------------------------------------------------------------- */

static bool result_flag(const struct buf *b, uint16_t want)
{
	struct tlv_iter it;
	tlv_iter_init(&it, b->data, b->len);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	while (tlv_next(&it, &tag, &val, &len) > 0)
		if (tag == want)
			return true;
	return false;
}

CAPSA_EXPORT int capsa_files_mkdir(struct capsa_files *f, const char *path, int mode, bool parents, const char *user,
				   struct capsa_error **err)
{
	if (check_path(path, err) < 0)
		return -1;
	if (mode > 07777)
		return error_set(err, EINVAL, "invalid mode %o", mode);
	struct op o = { 0 };
	struct proto_fileop req = fop(FOP_MKDIR, path);
	req.mode = mode;
	req.user = (char *)user;
	req.flags = parents ? FOPF_PARENTS : 0;
	int r = op_run(f, &o, &req, err);
	if (r == 0)
		r = result_flag(&o.result, T_CREATED) ? 1 : 0;
	op_release(&o);
	return r;
}

CAPSA_EXPORT int capsa_files_remove(struct capsa_files *f, const char *path, bool recursive, struct capsa_error **err)
{
	if (check_path(path, err) < 0)
		return -1;
	struct op o = { 0 };
	struct proto_fileop req = fop(FOP_REMOVE, path);
	req.flags = recursive ? FOPF_RECURSIVE : 0;
	int r = op_run(f, &o, &req, err);
	op_release(&o);
	return r;
}

CAPSA_EXPORT int capsa_files_rename(struct capsa_files *f, const char *from, const char *to, bool no_replace,
				    struct capsa_error **err)
{
	if (check_path(from, err) < 0 || check_path(to, err) < 0)
		return -1;
	struct op o = { 0 };
	struct proto_fileop req = fop(FOP_RENAME, from);
	req.path2 = (char *)to;
	req.flags = no_replace ? FOPF_EXCL : 0;
	int r = op_run(f, &o, &req, err);
	op_release(&o);
	return r;
}

/* ---- tar streams ---------------------------------------------------------------- */

CAPSA_EXPORT int capsa_files_tar_get(struct capsa_files *f, const char *path, const char *name, int out_fd,
				     struct capsa_error **err)
{
	if (check_path(path, err) < 0)
		return -1;
	struct read_ctx rc = { .fd_max = f->max };
	read_to_file(&rc, out_fd);
	struct op o = { .data = read_data, .ctx = &rc };
	struct proto_fileop req = fop(FOP_TAR_GET, path);
	req.name = (char *)name;
	int r = op_run(f, &o, &req, err);
	op_release(&o);
	if (r == 0)
		r = read_done(&rc, err);
	return r;
}

static int tar_put(struct capsa_files *f, const char *dir, struct op *o, const struct capsa_tar_put_opts *opts,
		   struct capsa_error **err)
{
	if (check_path(dir, err) < 0)
		return -1;
	struct proto_fileop req = fop(FOP_TAR_PUT, dir);
	if (opts) {
		req.user = (char *)opts->user;
		req.flags = opts->make_parents ? FOPF_PARENTS : 0;
	}
	return op_run(f, o, &req, err);
}

CAPSA_EXPORT int capsa_files_tar_put(struct capsa_files *f, const char *dir, int in_fd,
				     const struct capsa_tar_put_opts *opts, struct capsa_error **err)
{
	struct write_src s = { .fd = in_fd };
	struct op o = { .input = write_input, .ctx = &s };
	int r = tar_put(f, dir, &o, opts, err);
	op_release(&o);
	return r;
}

/* ---- cp ------------------------------------------------------------------------------- */

/* One line for a failed copy: "cp SRC DST: what went wrong", with the
 * sandbox's side as SANDBOX:PATH.  A full disk says whose (with --disk,
 * the sandbox's size); anything else keeps the innermost cause, the
 * agent's own sentence naming the entry. */
static int cp_fail(struct capsa_files *f, struct op *o, const char *src, const char *dst, struct capsa_error **err)
{
	bool agent = o->failed && !o->was_local && !o->local; /* the agent's own sentence */
	const char *why = o->local ? o->local->msg : agent && o->msg ? o->msg : *err ? (*err)->msg : "failed";
	int code = o->local ? o->local->code : agent ? o->code : *err ? (*err)->code : EIO;
	char disk[96] = "";
	if (code == ENOSPC && agent && f->disk > 0)
		snprintf(disk, sizeof(disk), " in sandbox %s (--disk %lldM)", f->name, (long long)(f->disk >> 20));
	struct capsa_error *e = NULL;
	if (code == ENOSPC)
		error_set(&e, code, "cp %s %s: no space left on device%s", src, dst, disk);
	else
		error_set(&e, code ? code : EIO, "cp %s %s: %s", src, dst, why);
	capsa_error_free(*err);
	*err = e;
	return -1;
}

static ssize_t tarw_input(struct op *o, void *buf, size_t n)
{
	struct tarw *t = o->ctx;
	struct capsa_error *e = NULL;
	ssize_t r = tarw_read(t, buf, n, &e);
	if (r < 0) {
		if (!o->local)
			o->local = e;
		else
			capsa_error_free(e);
	}
	return r;
}

static bool ends_with_dot(const char *p)
{
	size_t n = strlen(p);
	return n >= 2 && p[n - 1] == '.' && p[n - 2] == '/';
}

static char *dir_name(const char *p)
{
	const char *s = strrchr(p, '/');
	if (!s)
		return xstrdup(".");
	if (s == p)
		return xstrdup("/");
	return xstrndup(p, (size_t)(s - p));
}

static char *last_name(const char *p)
{
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	const char *s = p + n;
	while (s > p && s[-1] != '/')
		s--;
	return xstrndup(s, (size_t)(p + n - s));
}

CAPSA_EXPORT int capsa_files_copy_in(struct capsa_files *f, const char *host_path, const char *path,
				     struct capsa_error **err)
{
	if (check_path(path, err) < 0 || check_path(host_path, err) < 0)
		return -1;
	bool contents = ends_with_dot(host_path);
	struct stat hst;
	if (lstat(host_path, &hst) < 0)
		return error_sys(err, errno, "copy %s", host_path);
	if (contents && !S_ISDIR(hst.st_mode))
		return error_set(err, ENOTDIR, "copy %s: not a directory", host_path);
	/* where in the sandbox, under which name */
	_cleanup_free_ char *dir = NULL, *name = NULL;
	struct capsa_file_info di;
	struct capsa_error *e2 = NULL;
	size_t pl = strlen(path);
	if (capsa_files_stat_follow(f, path, &di, &e2) == 0) {
		bool isdir = di.type == CAPSA_FILE_DIR;
		capsa_file_info_release(&di);
		if (isdir) {
			dir = xstrdup(path);
			name = contents ? xstrdup(".") : last_name(host_path);
		} else if (S_ISDIR(hst.st_mode)) {
			return error_set(err, ENOTDIR, "copy %s to %s: cannot copy a directory to a file", host_path, path);
		} else {
			dir = dir_name(path);
			name = last_name(path);
		}
	} else {
		if (e2->code != ENOENT) {
			error_move(err, &e2);
			return -1;
		}
		capsa_error_free(e2);
		if (pl && path[pl - 1] == '/')
			return error_set(err, ENOENT, "copy to %s: no such directory in sandbox %s", path, f->name);
		dir = dir_name(path);
		name = last_name(path);
		if (contents) {
			/* DIR/. to a new name: that name becomes the directory */
			if (capsa_files_mkdir(f, path, 0755, false, NULL, err) < 0)
				return -1;
			free(dir);
			free(name);
			dir = xstrdup(path);
			name = xstrdup(".");
		}
	}
	/* the host side, read through directory fds without following links */
	_cleanup_free_ char *hdir = contents ? xstrndup(host_path, strlen(host_path) - 2) : dir_name(host_path);
	_cleanup_free_ char *hbase = contents ? NULL : last_name(host_path);
	_cleanup_close_ int hfd = open(*hdir ? hdir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (hfd < 0)
		return error_sys(err, errno, "copy %s", host_path);
	struct tarw t;
	if (tarw_init(&t, hfd, hbase, name, err) < 0)
		return -1;
	struct op o = { .input = tarw_input, .ctx = &t };
	int r = tar_put(f, dir, &o, NULL, err);
	if (r < 0) {
		_cleanup_free_ char *dst = xasprintf("%s:%s", f->name, path);
		cp_fail(f, &o, host_path, dst, err);
	}
	op_release(&o);
	tarw_release(&t);
	return r;
}

struct untar_ctx {
	struct tarx x;
};

static int untar_data(struct op *o, const uint8_t *p, size_t n)
{
	struct untar_ctx *u = o->ctx;
	struct capsa_error *e = NULL;
	if (tarx_feed(&u->x, p, n, &e) < 0) {
		op_local_fail(o, e);
		return -1;
	}
	return 0;
}

CAPSA_EXPORT int capsa_files_copy_out(struct capsa_files *f, const char *path, const char *host_path,
				      struct capsa_error **err)
{
	if (check_path(path, err) < 0 || check_path(host_path, err) < 0)
		return -1;
	bool contents = ends_with_dot(path);
	_cleanup_free_ char *src = contents ? xstrndup(path, strlen(path) - 2) : xstrdup(path);
	struct capsa_file_info si;
	if (capsa_files_stat(f, *src ? src : "/", &si, err) < 0)
		return -1;
	bool src_dir = si.type == CAPSA_FILE_DIR;
	capsa_file_info_release(&si);
	if (contents && !src_dir)
		return error_set(err, ENOTDIR, "copy %s: not a directory", path);
	_cleanup_free_ char *hdir = NULL, *name = NULL;
	struct stat hst;
	size_t hl = strlen(host_path);
	if (stat(host_path, &hst) == 0) {
		if (S_ISDIR(hst.st_mode)) {
			hdir = xstrdup(host_path);
			name = contents ? xstrdup(".") : last_name(*src ? src : "/");
		} else if (src_dir) {
			return error_set(err, ENOTDIR, "copy %s to %s: cannot copy a directory to a file", path, host_path);
		} else {
			hdir = dir_name(host_path);
			name = last_name(host_path);
		}
	} else {
		if (errno != ENOENT)
			return error_sys(err, errno, "copy to %s", host_path);
		if (hl && host_path[hl - 1] == '/')
			return error_set(err, ENOENT, "copy to %s: no such directory", host_path);
		hdir = dir_name(host_path);
		name = last_name(host_path);
		if (contents) {
			if (mkdir(host_path, 0755) < 0)
				return error_sys(err, errno, "copy to %s", host_path);
			free(hdir);
			free(name);
			hdir = xstrdup(host_path);
			name = xstrdup(".");
		}
	}
	_cleanup_close_ int dfd = open(hdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return error_sys(err, errno, "copy to %s", hdir);
	struct untar_ctx u;
	struct tarx_opts xo = { .root_fd = dfd, .dir = "", .res = RES_IN_ROOT, .owner = TARX_OWNER_NONE,
				.strip_setid = true, .max_bytes = (uint64_t)f->max };
	tarx_init(&u.x, &xo);
	struct op o = { .data = untar_data, .ctx = &u };
	struct proto_fileop req = fop(FOP_TAR_GET, *src ? src : "/");
	req.name = name;
	int r = op_run(f, &o, &req, err);
	if (r == 0 && tarx_finish(&u.x, &o.local) < 0)
		r = -1;
	if (r < 0) {
		_cleanup_free_ char *from = xasprintf("%s:%s", f->name, path);
		cp_fail(f, &o, from, host_path, err);
	}
	tarx_release(&u.x);
	op_release(&o);
	return r;
}

/* ---- watches ----------------------------------------------------------------------------- */

struct capsa_watch {
	struct proto_conn c;
	bool ended;
};

static int on_watch_ok(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct op *o = ctx;
	if (h->type == P_OK) {
		o->done = true;
	} else if (h->type == P_ERROR || h->type == P_FILE_RESULT) {
		proto_error_decode(payload, h->len, &o->code, &o->msg);
		o->done = o->failed = true;
	}
	return 0;
}

CAPSA_EXPORT int capsa_watch_open(struct capsa_ctx *ctx, const char *sandbox, const char *path, bool recursive,
				  const char *user, struct capsa_watch **out, struct capsa_error **err)
{
	if (check_path(path, err) < 0)
		return -1;
	struct sb_row r;
	struct capsa_watch *w = xcalloc(1, sizeof(*w));
	if (sandbox_open_running(ctx, sandbox, &r, &w->c, err) < 0) {
		free(w);
		return -1;
	}
	fd_set_nonblock(w->c.fd, true);
	struct proto_fileop req = fop(FOP_WATCH, path);
	req.flags = recursive ? FOPF_RECURSIVE : 0;
	req.user = user && *user ? (char *)user : NULL;
	struct buf b = BUF_INIT;
	proto_fileop_encode(&b, &req);
	proto_conn_queue(&w->c, P_FILE_OP, 0, 1, b.data, b.len);
	buf_release(&b);
	struct op o = { 0 };
	int rc = 0;
	if (proto_conn_flush_all(&w->c, 30000) < 0) {
		rc = error_sys(err, errno, "sandbox %s: watch %s", r.name, path);
	} else {
		while (!o.done && rc == 0) {
			int k = proto_conn_wait_exact(&w->c, 30000, on_watch_ok, &o);
			if (k <= 0)
				rc = error_set(err, k == 0 ? ESRCH : errno, "sandbox %s: watch %s: no answer", r.name, path);
		}
		if (rc == 0 && o.failed)
			rc = error_set(err, o.code ? o.code : EIO, "sandbox %s: %s", r.name, o.msg ? o.msg : "watch failed");
	}
	free(o.msg);
	sb_row_release(&r);
	if (rc < 0) {
		capsa_watch_free(w);
		return -1;
	}
	*out = w;
	return 0;
}

CAPSA_EXPORT int capsa_watch_fd(const struct capsa_watch *w)
{
	return w->c.fd;
}

struct watch_cb {
	struct capsa_watch *w;
	void (*cb)(void *ud, const struct capsa_watch_event *ev);
	void *ud;
	bool failed;
	int code;
	char *msg;
};

static int on_watch_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	struct watch_cb *wc = ctx;
	if (h->type == P_FILE_EVENT) {
		struct tlv_iter it;
		tlv_iter_init(&it, payload, h->len);
		uint16_t tag;
		const uint8_t *val;
		uint32_t len;
		while (tlv_next(&it, &tag, &val, &len) > 0) {
			struct proto_finfo fi;
			if (tag != T_ENTRY || proto_finfo_decode(val, len, &fi) < 0)
				continue;
			struct capsa_watch_event ev = { .type = (enum capsa_watch_type)(fi.event < 0 ? 0 : fi.event),
							.path = fi.path ? fi.path : "", .is_dir = fi.is_dir,
							.time_ms = fi.mtime_ms };
			if (wc->cb)
				wc->cb(wc->ud, &ev);
			proto_finfo_release(&fi);
		}
		uint8_t n[4];
		put_be32(n, h->len);
		proto_conn_queue(c, P_CREDIT, CH_STDOUT, h->stream, n, 4);
	} else if (h->type == P_FILE_RESULT) {
		wc->w->ended = true;
	} else if (h->type == P_ERROR) {
		free(wc->msg);
		proto_error_decode(payload, h->len, &wc->code, &wc->msg);
		wc->failed = true;
		wc->w->ended = true;
	}
	return 0;
}

CAPSA_EXPORT int capsa_watch_process(struct capsa_watch *w, void (*cb)(void *ud, const struct capsa_watch_event *ev),
				     void *ud, struct capsa_error **err)
{
	if (w->ended)
		return 1;
	struct watch_cb wc = { .w = w, .cb = cb, .ud = ud };
	int r = proto_conn_read(&w->c, on_watch_frame, &wc);
	proto_conn_flush(&w->c);
	if (wc.failed) {
		error_set(err, wc.code ? wc.code : EIO, "%s", wc.msg ? wc.msg : "watch failed");
		free(wc.msg);
		return -1;
	}
	if (r < 0)
		return error_sys(err, errno, "watch");
	if (w->ended || r > 0) {
		w->ended = true;
		return 1;
	}
	return 0;
}

CAPSA_EXPORT void capsa_watch_free(struct capsa_watch *w)
{
	if (!w)
		return;
	proto_conn_release(&w->c, true);
	free(w);
}
