/* watch.c: directory watches (FILE_OP watch): inotify inside the sandbox.
 *
 * A watched directory is opened with open_beneath(RES_IN_ROOT) and the
 * watch is added through /proc/self/fd/N, so the inode watched is the one
 * resolved inside the sandbox, whatever races the path.  inotify watches and
 * instances are a host-wide resource of the agent's user (root), so a
 * sandbox gets at most WATCH_MAX_DIRS watched directories and
 * WATCH_MAX_STREAMS watch streams.
 *
 * Events are sent as FILE_EVENT frames within the stream's credit; while a
 * client does not take them, the agent stops reading inotify, and when the
 * kernel's queue overflows the client gets one OVERFLOW event.
 *
 * A watch that names a user adds every watch (the first ones and those on
 * directories created later) with the user's credentials: inotify needs
 * read permission on a directory to watch it.  The agent's own /proc
 * entries cannot be watched.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "agent.h"
#include "util/fs.h"
#include "util/walk.h"

#define WATCH_MAX_DIRS 4096
#define WATCH_MAX_STREAMS 32
#define WATCH_QUEUE_MAX (256u * 1024u)
#define WATCH_FRAME (32u * 1024u)
#define WATCH_MASK                                                                                    \
	(IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | \
	 IN_MOVE_SELF | IN_ONLYDIR)

struct wdir {
	int wd;
	char *path;
};

struct awatch {
	struct awatch *next;
	uint32_t stream;
	int ifd;
	struct ev_io io;
	char *root;
	int root_wd;
	bool recursive;
	struct wdir *dirs;
	size_t n_dirs;
	uint32_t credit;
	struct buf q;	   /* encoded T_ENTRY items not yet sent */
	bool ending;	   /* the watched directory is gone: end once q is sent */
	struct acred cred; /* the user it runs as */
};

static struct awatch *watches;
static size_t total_dirs, n_streams;

static struct awatch *find(uint32_t stream)
{
	for (struct awatch *w = watches; w; w = w->next)
		if (w->stream == stream)
			return w;
	return NULL;
}

bool watch_stream_in_use(uint32_t stream)
{
	return find(stream) != NULL;
}

static void watch_free(struct awatch *w)
{
	for (struct awatch **pp = &watches; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	if (w->ifd >= 0) {
		ev_io_stop(&agent.loop, &w->io);
		close(w->ifd);
	}
	for (size_t i = 0; i < w->n_dirs; i++)
		free(w->dirs[i].path);
	total_dirs -= w->n_dirs;
	n_streams--;
	free(w->dirs);
	free(w->root);
	buf_release(&w->q);
	acred_release(&w->cred);
	ev_defer(&agent.loop, free, w);
}

static char *join(const char *dir, const char *name)
{
	return strcmp(dir, "/") == 0 ? xasprintf("/%s", name) : xasprintf("%s/%s", dir, name);
}

/* Adds a watch on the directory fd (O_PATH), known as path. */
static int add_dir(struct awatch *w, int fd, const char *path)
{
	if (total_dirs >= WATCH_MAX_DIRS) {
		errno = ENOSPC;
		return -1;
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int wd = inotify_add_watch(w->ifd, proc, WATCH_MASK);
	if (wd < 0)
		return -1;
	for (size_t i = 0; i < w->n_dirs; i++) {
		if (w->dirs[i].wd == wd) {
			/* the same directory under another name (a rename): keep the newest */
			free(w->dirs[i].path);
			w->dirs[i].path = xstrdup(path);
			return wd;
		}
	}
	w->dirs = xrealloc(w->dirs, (w->n_dirs + 1) * sizeof(*w->dirs));
	w->dirs[w->n_dirs].wd = wd;
	w->dirs[w->n_dirs].path = xstrdup(path);
	w->n_dirs++;
	total_dirs++;
	return wd;
}

static void queue_event(struct awatch *w, int kind, const char *path, bool is_dir);

/* Adds watches on every directory below fd (O_RDONLY|O_DIRECTORY, taken).
 * With report, what is already there is reported as created: in a
 * directory that just appeared, entries may have been made before its
 * watch was, and a client must not miss them (it may see one twice). */
static int add_tree(struct awatch *w, int fd, const char *path, bool report)
{
	struct walker wk;
	struct capsa_error *err = NULL;
	if (walk_open(&wk, fd, WALK_MAX_DEPTH, true, &err) < 0) {
		capsa_error_free(err);
		return 0;
	}
	wk.hide = agent_walk_hide;
	int rc = 0;
	struct walk_entry e;
	while (walk_next(&wk, &e, NULL) > 0) {
		_cleanup_free_ char *p = join(path, e.rel);
		if (report)
			queue_event(w, FEV_CREATE, p, S_ISDIR(e.st.st_mode));
		if (!S_ISDIR(e.st.st_mode))
			continue;
		int d = openat(e.dirfd, e.name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (d < 0)
			continue;
		int r = add_dir(w, d, p);
		close(d);
		if (r < 0 && (errno == EACCES || errno == EPERM))
			continue; /* the user may not read it: left unwatched */
		if (r < 0) {
			rc = -1;
			break;
		}
	}
	walk_close(&wk);
	return rc;
}

static void queue_event(struct awatch *w, int kind, const char *path, bool is_dir)
{
	if (w->q.len > WATCH_QUEUE_MAX) {
		/* the client is not keeping up: what is queued is replaced by one overflow */
		w->q.len = 0;
		kind = FEV_OVERFLOW;
		path = w->root;
		is_dir = true;
	}
	struct proto_finfo fi = { .path = (char *)path, .event = kind, .is_dir = is_dir, .mtime_ms = now_ms(),
				  .type = is_dir ? 1 : 0 };
	proto_finfo_encode(&w->q, &fi);
}

static void flush(struct awatch *w)
{
	size_t off = 0;
	while (off < w->q.len && w->credit > 0) {
		/* cut at item boundaries */
		size_t end = off;
		while (end < w->q.len && end - off < MIN((size_t)w->credit, (size_t)WATCH_FRAME)) {
			size_t item = PROTO_TLV_HDR + get_be32((const uint8_t *)w->q.data + end + 2);
			if (end > off && end + item - off > MIN((size_t)w->credit, (size_t)WATCH_FRAME))
				break;
			end += item;
		}
		agent_send(P_FILE_EVENT, 0, w->stream, w->q.data + off, end - off);
		w->credit -= (uint32_t)MIN((size_t)w->credit, end - off);
		off = end;
	}
	buf_consume(&w->q, off);
	if (w->ending && w->q.len == 0) {
		agent_send(P_FILE_RESULT, 0, w->stream, NULL, 0);
		watch_free(w);
		return;
	}
	ev_io_set(&agent.loop, &w->io, w->credit > 0 && !w->ending ? EPOLLIN : 0);
}

static const char *dir_of(struct awatch *w, int wd)
{
	for (size_t i = 0; i < w->n_dirs; i++)
		if (w->dirs[i].wd == wd)
			return w->dirs[i].path;
	return NULL;
}

static void forget(struct awatch *w, int wd)
{
	for (size_t i = 0; i < w->n_dirs; i++) {
		if (w->dirs[i].wd != wd)
			continue;
		free(w->dirs[i].path);
		w->dirs[i] = w->dirs[--w->n_dirs];
		total_dirs--;
		return;
	}
}

static void handle(struct awatch *w, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		queue_event(w, FEV_OVERFLOW, w->root, true);
		return;
	}
	if (ev->mask & IN_IGNORED) {
		forget(w, ev->wd);
		if (ev->wd == w->root_wd)
			w->ending = true;
		return;
	}
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
		if (ev->wd == w->root_wd)
			w->ending = true;
		return;
	}
	const char *dir = dir_of(w, ev->wd);
	if (!dir)
		return;
	_cleanup_free_ char *path = ev->len && ev->name[0] ? join(dir, ev->name) : xstrdup(dir);
	bool is_dir = (ev->mask & IN_ISDIR) != 0;
	int kind = (ev->mask & (IN_CREATE | IN_MOVED_TO)) ? FEV_CREATE
		   : (ev->mask & IN_MOVED_FROM)		  ? FEV_RENAME
		   : (ev->mask & IN_DELETE)		  ? FEV_REMOVE
		   : (ev->mask & IN_MODIFY)		  ? FEV_WRITE
							  : FEV_CHMOD;
	queue_event(w, kind, path, is_dir);
	if (w->recursive && is_dir && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
		/* a new directory: watch it and what it already holds */
		int d = open_beneath(agent.root_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RES_IN_ROOT);
		if (d >= 0 && add_dir(w, d, path) < 0) {
			close(d);
			queue_event(w, FEV_OVERFLOW, path, true);
		} else if (d >= 0 && add_tree(w, d, path, true) < 0) {
			queue_event(w, FEV_OVERFLOW, path, true);
		}
	}
}

static void on_inotify(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)revents;
	struct awatch *w = container_of(io, struct awatch, io);
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	/* new directories are watched as the user (a failure to switch only
	 * leaves them unwatched: events come in the user's name or not at all) */
	bool as_user = acred_enter(&w->cred) == 0;
	for (int rounds = 0; as_user && rounds < 4 && w->q.len < WATCH_QUEUE_MAX; rounds++) {
		ssize_t n = read(w->ifd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			handle(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	acred_leave();
	flush(w);
	agent_chan_update();
}

/* Whether the directory at path, which the user may not open, is one
 * nobody may (to say so). */
static bool own_proc_dir(const char *path)
{
	int look = open_beneath(agent.root_fd, path, O_PATH | O_DIRECTORY, 0, RES_IN_ROOT);
	bool own = look >= 0 && agent_proc_is_own(look, NULL);
	if (look >= 0)
		close(look);
	return own;
}

/* Opens the directory and adds the first watches, as the user. */
static int watch_begin(struct awatch *w, const char *path)
{
	if (acred_enter(&w->cred) < 0) {
		int e = errno;
		agent_send_error(w->stream, e, "watch %s: cannot take the credentials of user %s: %s", path,
				 w->cred.user, strerror(e));
		return -1;
	}
	int e = 0;
	bool own = false;
	int fd = open_beneath(agent.root_fd, path, O_RDONLY | O_DIRECTORY, 0, RES_IN_ROOT);
	if (fd < 0) {
		e = errno;
		own = (e == EACCES || e == EPERM) && own_proc_dir(path);
	} else if (agent_proc_is_own(fd, NULL)) {
		own = true;
		close(fd);
	} else if ((w->root_wd = add_dir(w, fd, path)) < 0) {
		e = errno;
		close(fd);
	} else if (!w->recursive) {
		close(fd);
	} else if (add_tree(w, fd, path, false) < 0) { /* it took fd */
		e = errno;
	}
	const char *user = acred_user();
	acred_leave();
	if (own)
		agent_send_error(w->stream, EACCES, "watch %s: the sandbox agent's own /proc entries are off limits",
				 path);
	else if (user && (e == EACCES || e == EPERM))
		agent_send_error(w->stream, e, "watch %s: permission denied (as user %s)", path, user);
	else if (e)
		agent_send_error(w->stream, e, "watch %s: %s%s", path, strerror(e),
				 e == ENOSPC ? " (at most 4096 directories are watched per sandbox)" : "");
	return own || e ? -1 : 0;
}

void watch_start(uint32_t stream, struct proto_fileop *op, struct acred *cred)
{
	if (n_streams >= WATCH_MAX_STREAMS)
		return agent_send_error(stream, EMFILE, "watch %s: this sandbox already has %d watches", op->path,
					WATCH_MAX_STREAMS);
	struct awatch *w = xcalloc(1, sizeof(*w));
	w->stream = stream;
	w->root = xstrdup(op->path);
	w->recursive = op->flags & FOPF_RECURSIVE;
	w->credit = PROTO_WINDOW;
	acred_move(&w->cred, cred);
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	w->next = watches;
	watches = w;
	n_streams++;
	if (w->ifd < 0) {
		int e = errno;
		agent_send_error(stream, e, "watch %s: %s", op->path, strerror(e));
		watch_free(w);
		return;
	}
	if (watch_begin(w, op->path) < 0) {
		watch_free(w);
		return;
	}
	ev_io_start(&agent.loop, &w->io, w->ifd, EPOLLIN, on_inotify);
	agent_send(P_OK, 0, stream, NULL, 0);
}

bool watch_frame(const struct proto_hdr *h, const uint8_t *payload)
{
	struct awatch *w = find(h->stream);
	if (!w)
		return false;
	if (h->type == P_CREDIT && h->len == 4 && h->flags == CH_STDOUT) {
		uint64_t c = (uint64_t)w->credit + get_be32(payload);
		w->credit = c > (64u << 20) ? (64u << 20) : (uint32_t)c;
		flush(w);
	} else if (h->type == P_CANCEL || h->type == P_EOF) {
		w->q.len = 0;
		w->ending = true;
		flush(w);
	}
	return true;
}
