/* logs.c: reading a sandbox's main log (rotated set, oldest first), with
 * filters, tail and follow.  Reads the files directly: following a log
 * never talks to the supervisor, so any number of followers cost it
 * nothing. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsa/logs.h"
#include "sandbox.h"
#include "sandbox/logfile.h"
#include "util/fs.h"

#define MAX_LOG_FILES 64

struct reader {
	const struct capsa_logs_opts *o;
	int out_fd, err_fd;
	bool line_start[3];
	/* tail: a ring of the last n logical lines */
	char **ring;
	int *ring_ch;
	size_t ring_n, ring_head, ring_count;
	struct buf pending[3]; /* partial line being assembled, for tail */
	bool collecting;
	int rc;
};

static void emit(struct reader *r, int ch, const char *s, size_t n)
{
	int fd = ch == 2 ? r->err_fd : r->out_fd;
	if (fd >= 0 && write_all(fd, s, n) < 0)
		r->rc = -1;
}

static void out_piece(struct reader *r, const struct log_line *l)
{
	if (r->o->timestamps && r->line_start[l->ch]) {
		char ts[48];
		log_format_ts(l->ts_ns, ts, sizeof(ts));
		size_t tl = strlen(ts);
		ts[tl] = ' ';
		emit(r, l->ch, ts, tl + 1);
	}
	emit(r, l->ch, l->msg, l->len);
	if (!l->partial)
		emit(r, l->ch, "\n", 1);
	r->line_start[l->ch] = !l->partial;
}

static void ring_push(struct reader *r, int ch, char *line)
{
	size_t slot = (r->ring_head + r->ring_count) % r->ring_n;
	if (r->ring_count == r->ring_n) {
		free(r->ring[r->ring_head]);
		r->ring_head = (r->ring_head + 1) % r->ring_n;
		slot = (r->ring_head + r->ring_count - 1) % r->ring_n;
	} else {
		r->ring_count++;
	}
	r->ring[slot] = line;
	r->ring_ch[slot] = ch;
}

static void handle_line(struct reader *r, const char *s, size_t n)
{
	struct log_line l;
	if (log_parse_line(s, n, &l) < 0)
		return;
	if ((l.ch == 1 && !r->o->stdout_) || (l.ch == 2 && !r->o->stderr_))
		return;
	if (r->o->since_ms && l.ts_ns / 1000000 < r->o->since_ms)
		return;
	if (r->o->until_ms && l.ts_ns / 1000000 > r->o->until_ms)
		return;
	if (!r->collecting) {
		out_piece(r, &l);
		return;
	}
	/* tail: keep logical lines (with their timestamp prefix) */
	struct buf *p = &r->pending[l.ch];
	if (p->len == 0 && r->o->timestamps) {
		char ts[48];
		log_format_ts(l.ts_ns, ts, sizeof(ts));
		buf_appendf(p, "%s ", ts);
	}
	buf_append(p, l.msg, l.len);
	if (!l.partial) {
		buf_putc(p, '\n');
		ring_push(r, l.ch, buf_steal(p));
	}
}

/* Reads complete lines from fd starting at *off; returns bytes consumed. */
static void read_lines(struct reader *r, int fd, off_t *off, struct buf *carry)
{
	char chunk[65536];
	for (;;) {
		ssize_t n = pread(fd, chunk, sizeof(chunk), *off);
		if (n <= 0)
			break;
		*off += n;
		size_t start = 0;
		for (size_t i = 0; i < (size_t)n; i++) {
			if (chunk[i] != '\n')
				continue;
			if (carry->len) {
				buf_append(carry, chunk + start, i - start);
				handle_line(r, carry->data, carry->len);
				carry->len = 0;
			} else {
				handle_line(r, chunk + start, i - start);
			}
			start = i + 1;
		}
		if (start < (size_t)n) {
			/* a line longer than the cap is cut rather than buffered without end */
			if (carry->len + ((size_t)n - start) > (1u << 20))
				carry->len = 0;
			buf_append(carry, chunk + start, (size_t)n - start);
		}
	}
}

CAPSA_EXPORT int capsa_sandbox_logs(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_logs_opts *o,
				    int out_fd, int err_fd, struct capsa_error **err)
{
	struct sb_row row;
	if (sandbox_lookup(ctx, sandbox, &row, err) < 0)
		return -1;
	_cleanup_free_ char *dir = xasprintf("%s/sandboxes/%s/logs", ctx->root, row.id);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		error_sys(err, errno, "logs of sandbox %s", row.name);
		sb_row_release(&row);
		return -1;
	}
	struct reader r = { .o = o, .out_fd = out_fd, .err_fd = err_fd, .line_start = { true, true, true } };
	if (o->tail >= 0) {
		r.collecting = true;
		r.ring_n = (size_t)o->tail + 1;
		r.ring = xcalloc(r.ring_n, sizeof(char *));
		r.ring_ch = xcalloc(r.ring_n, sizeof(int));
	}
	struct buf carry = BUF_INIT;
	/* rotated files, oldest first */
	for (int i = MAX_LOG_FILES; i >= 1; i--) {
		char name[64];
		snprintf(name, sizeof(name), "main.log.%d", i);
		_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		off_t off = 0;
		read_lines(&r, fd, &off, &carry);
		carry.len = 0;
	}
	int cur = openat(dfd, "main.log", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	off_t off = 0;
	if (cur >= 0)
		read_lines(&r, cur, &off, &carry);
	if (r.collecting) {
		size_t skip = r.ring_count > (size_t)o->tail ? r.ring_count - (size_t)o->tail : 0;
		for (size_t i = 0; i < r.ring_count; i++) {
			size_t slot = (r.ring_head + i) % r.ring_n;
			if (i >= skip)
				emit(&r, r.ring_ch[slot], r.ring[slot], strlen(r.ring[slot]));
			free(r.ring[slot]);
		}
		r.collecting = false;
	}
	if (o->follow) {
		int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (in >= 0)
			inotify_add_watch(in, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE);
		for (;;) {
			if (cur >= 0)
				read_lines(&r, cur, &off, &carry);
			/* rotation: main.log is now a different file */
			struct stat a, b;
			if (cur >= 0 && fstat(cur, &a) == 0 &&
			    (fstatat(dfd, "main.log", &b, AT_SYMLINK_NOFOLLOW) < 0 || a.st_ino != b.st_ino)) {
				read_lines(&r, cur, &off, &carry);
				close(cur);
				cur = openat(dfd, "main.log", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
				off = 0;
				carry.len = 0;
				continue;
			}
			if (cur < 0)
				cur = openat(dfd, "main.log", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (!sandbox_alive(ctx, &row)) {
				if (cur >= 0)
					read_lines(&r, cur, &off, &carry);
				break;
			}
			if (r.rc < 0)
				break;
			struct pollfd pfd = { .fd = in, .events = POLLIN };
			poll(&pfd, in >= 0 ? 1 : 0, 250);
			char evbuf[4096];
			while (in >= 0 && read(in, evbuf, sizeof(evbuf)) > 0) {
			}
		}
		if (in >= 0)
			close(in);
	}
	if (cur >= 0)
		close(cur);
	for (int i = 0; i < 3; i++)
		buf_release(&r.pending[i]);
	buf_release(&carry);
	free(r.ring);
	free(r.ring_ch);
	sb_row_release(&row);
	if (r.rc < 0 && errno != EPIPE)
		return error_sys(err, errno, "write logs");
	return 0;
}
