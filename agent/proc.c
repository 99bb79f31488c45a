/* proc.c: the processes the agent runs: starting them with their own
 * security context, relaying their stdio with credit, reaping them and
 * reporting how they ended.
 *
 * Output flow control: each output channel starts with a window of credit
 * (PROTO_WINDOW unless the request says otherwise).  The agent reads from a
 * child's pipe only while the channel has credit, so a process that floods
 * stdout blocks on its pipe instead of growing anybody's memory.  Input
 * (stdin) is bounded the same way in the other direction: the agent buffers
 * at most one window and returns credit as the child consumes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"
#include "linux/caps.h"
#include "linux/proc.h"
#include "linux/user.h"
#include "util/fs.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define EXIT_TIMEOUT 124

struct achan {
	int fd;
	struct ev_io io;
	uint32_t credit;
	bool eof;
	struct buf pending; /* stdin bytes not yet written to the child */
	bool close_when_drained;
};

struct aproc {
	struct aproc *next;
	uint32_t stream;
	pid_t pid;
	bool main, tty;
	struct achan out, err, in; /* tty: out.fd is the master, err unused, in writes to out.fd */
	bool exited;
	int status;
	bool timed_out;
	int64_t kill_grace_ms;
	struct ev_timer timeout;
};

/* What the child needs, prepared before fork so the child does no parsing. */
struct start {
	char **argv;
	char **env;
	const char *cwd;
	bool mkdir_cwd;
	struct linux_proc_sec sec;
	struct linux_rlimit rl[PROTO_MAX_RLIMITS];
	int stdio[3];
	int tty_slave;
	int errpipe;
};

struct start_error {
	int code;	/* errno */
	int exit_code;	/* 125, 126, 127 */
	char msg[480];
};

static struct aproc *find(uint32_t stream)
{
	for (struct aproc *p = agent.procs; p; p = p->next)
		if (p->stream == stream)
			return p;
	return NULL;
}

bool proc_stream_in_use(uint32_t stream)
{
	return find(stream) != NULL;
}

static void chan_close(struct achan *c)
{
	if (c->fd >= 0) {
		ev_io_stop(&agent.loop, &c->io);
		close(c->fd);
	}
	c->fd = -1;
	buf_release(&c->pending);
}

static void proc_free(void *arg)
{
	struct aproc *p = arg;
	buf_release(&p->in.pending);
	free(p);
}

static void io_update(struct aproc *p);

static void send_exit(struct aproc *p)
{
	struct proto_exit e = { 0 };
	if (WIFEXITED(p->status)) {
		e.exit_code = WEXITSTATUS(p->status);
		e.reason = (char *)"exited";
	} else if (WIFSIGNALED(p->status)) {
		e.signal = WTERMSIG(p->status);
		e.exit_code = 128 + e.signal;
		e.reason = (char *)"signaled";
	}
	char msg[128];
	if (p->timed_out) {
		e.exit_code = EXIT_TIMEOUT;
		e.reason = (char *)"timeout";
		snprintf(msg, sizeof(msg), "process exceeded its timeout and was killed");
		e.message = msg;
	}
	e.finished_at = now_ms();
	struct buf b = BUF_INIT;
	proto_exit_encode(&b, &e);
	agent_send(P_EXIT, 0, p->stream, b.data, b.len);
	buf_release(&b);
	if (p->main) {
		agent.exit_code = (int)e.exit_code;
		agent.ending = true;
		/* the main process is gone: so is the sandbox */
		kill(-1, SIGKILL);
	}
}

/* A session is over when the child is reaped and its output is drained. */
static void maybe_finish(struct aproc *p)
{
	if (!p->exited || p->out.fd >= 0 || p->err.fd >= 0)
		return;
	chan_close(&p->in);
	ev_timer_stop(&agent.loop, &p->timeout);
	send_exit(p);
	for (struct aproc **pp = &agent.procs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (agent.main == p)
		agent.main = NULL;
	ev_defer(&agent.loop, proc_free, p);
	if (agent.ending && !agent.procs)
		ev_defer(&agent.loop, agent_leave, NULL);
}

static void out_eof(struct aproc *p, struct achan *c, uint16_t ch)
{
	if (p->tty && c == &p->out)
		p->in.fd = -1; /* same fd */
	chan_close(c);
	agent_send(P_EOF, ch, p->stream, NULL, 0);
}

static void pump_out(struct aproc *p, struct achan *c, uint16_t ch)
{
	while (c->fd >= 0 && c->credit > 0) {
		size_t want = MIN((size_t)c->credit, (size_t)PROTO_DATA_CHUNK);
		ssize_t r = proto_conn_queue_read(&agent.chan, P_DATA, ch, p->stream, c->fd, want);
		if (r > 0) {
			c->credit -= (uint32_t)r;
			if ((size_t)r < want)
				break;
			continue;
		}
		/* EIO: the pty's slave side is closed */
		if (r == 0 || errno == EIO || (errno == EAGAIN && p->exited) ||
		    (errno != EAGAIN && errno != EINTR)) {
			out_eof(p, c, ch);
		}
		break;
	}
	agent_chan_update();
}

static void pump_in(struct aproc *p)
{
	struct achan *c = &p->in;
	int fd = p->tty ? p->out.fd : c->fd;
	size_t written = 0;
	while (fd >= 0 && c->pending.len > 0) {
		ssize_t w = write(fd, c->pending.data, c->pending.len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			/* EPIPE: the child closed stdin; drop what is left */
			written += c->pending.len;
			c->pending.len = 0;
			break;
		}
		buf_consume(&c->pending, (size_t)w);
		written += (size_t)w;
	}
	if (written) {
		uint8_t n[4];
		put_be32(n, (uint32_t)written);
		agent_send(P_CREDIT, CH_STDIN, p->stream, n, 4);
	}
	if (c->pending.len == 0 && c->close_when_drained && !p->tty && c->fd >= 0)
		chan_close(c);
	if (c->pending.len == 0 && c->close_when_drained && p->tty && p->out.fd >= 0) {
		/* EOF on a terminal is the VEOF character at line start */
		char eof = 4;
		if (write(p->out.fd, &eof, 1) < 0) {
			/* the terminal is gone: nothing to signal */
		}
		c->close_when_drained = false;
	}
}

static void on_out(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	struct achan *c = container_of(io, struct achan, io);
	struct aproc *p;
	uint16_t ch;
	/* find the owner: the achan is embedded at a known offset */
	for (p = agent.procs; p; p = p->next)
		if (&p->out == c || &p->err == c || &p->in == c)
			break;
	if (!p)
		return;
	if (c == &p->in) {
		pump_in(p);
		io_update(p);
		return;
	}
	ch = c == &p->err ? CH_STDERR : CH_STDOUT;
	if (p->tty && (revents & EPOLLOUT))
		pump_in(p);
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
		pump_out(p, c, ch);
	io_update(p);
	maybe_finish(p);
}

static void chan_watch(struct achan *c, uint32_t events)
{
	if (c->fd < 0)
		return;
	if (!events) {
		ev_io_stop(&agent.loop, &c->io);
		return;
	}
	if (c->io.active)
		ev_io_set(&agent.loop, &c->io, events);
	else
		ev_io_start(&agent.loop, &c->io, c->fd, events, on_out);
}

static void io_update(struct aproc *p)
{
	uint32_t ev = p->out.credit > 0 ? EPOLLIN : 0;
	if (p->tty && p->in.pending.len)
		ev |= EPOLLOUT;
	chan_watch(&p->out, ev);
	chan_watch(&p->err, p->err.credit > 0 ? EPOLLIN : 0);
	if (!p->tty)
		chan_watch(&p->in, p->in.pending.len ? EPOLLOUT : 0);
}

static void on_timeout(struct ev_loop *l, struct ev_timer *t)
{
	struct aproc *p = container_of(t, struct aproc, timeout);
	if (p->exited)
		return;
	if (!p->timed_out) {
		p->timed_out = true;
		kill(-p->pid, SIGTERM);
		kill(p->pid, SIGTERM);
		ev_timer_start(l, t, p->kill_grace_ms > 0 ? p->kill_grace_ms : 10000, on_timeout);
	} else {
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
	}
}

static void merge_env(char ***env, char *const *add)
{
	for (; add && *add; add++) {
		const char *eq = strchr(*add, '=');
		size_t klen = eq ? (size_t)(eq - *add) : strlen(*add);
		bool replaced = false;
		for (char **e = *env; e && *e; e++) {
			if (strncmp(*e, *add, klen) == 0 && ((*e)[klen] == '=' || (*e)[klen] == '\0')) {
				free(*e);
				*e = xstrdup(*add);
				replaced = true;
				break;
			}
		}
		if (!replaced)
			*env = strv_push(*env, *add);
	}
}

static const char *env_get(char *const *env, const char *key)
{
	size_t n = strlen(key);
	for (; env && *env; env++)
		if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

/* The agent's bounding set, read once: the supervisor reduced it before
 * executing us and nothing widens it. */
static uint64_t agent_bounding(void)
{
	static uint64_t have;
	if (!have) {
		for (int c = 0; c <= linux_cap_last(); c++)
			if (prctl(PR_CAPBSET_READ, (unsigned long)c, 0, 0, 0) == 1)
				have |= UINT64_C(1) << c;
	}
	return have;
}

static void child_fail(int errpipe, int code, int exit_code, const char *fmt, const char *arg)
{
	struct start_error e = { .code = code, .exit_code = exit_code };
	snprintf(e.msg, sizeof(e.msg), fmt, arg, strerror(code));
	if (write(errpipe, &e, sizeof(e)) < 0) {
		/* the agent reads this; if it cannot, the exit code remains */
	}
	_exit(exit_code);
}

/* Searches PATH like execvp, but without the /bin/sh fallback for ENOEXEC
 * (docker reports "exec format error" instead), and remembering the most
 * meaningful failure. */
static void exec_search(struct start *s)
{
	const char *file = s->argv[0];
	if (strchr(file, '/')) {
		execve(file, s->argv, s->env);
		int e = errno;
		child_fail(s->errpipe, e, e == ENOENT ? 127 : 126, "exec \"%s\": %s", file);
	}
	const char *path = env_get(s->env, "PATH");
	if (!path)
		path = DEFAULT_PATH;
	int best = ENOENT;
	char full[4096];
	const char *p = path;
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t dl = colon ? (size_t)(colon - p) : strlen(p);
		int w = snprintf(full, sizeof(full), "%.*s%s%s", (int)dl, p, dl ? "/" : "", file);
		if (w > 0 && (size_t)w < sizeof(full)) {
			execve(full, s->argv, s->env);
			if (errno != ENOENT && errno != ENOTDIR)
				best = errno;
		}
		if (!colon)
			break;
		p = colon + 1;
	}
	if (best == ENOENT)
		child_fail(s->errpipe, ENOENT, 127, "exec \"%s\": executable file not found in $PATH%s", file);
	child_fail(s->errpipe, best, 126, "exec \"%s\": %s", file);
}

static void child_run(struct start *s)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	setsid();
	/* the agent raised its own descriptor limit; the process gets the
	 * original one (unless its spec sets another) */
	setrlimit(RLIMIT_NOFILE, &agent.nofile);
	if (s->tty_slave >= 0) {
		ioctl(s->tty_slave, TIOCSCTTY, 0);
		for (int i = 0; i < 3; i++)
			dup2(s->tty_slave, i);
	} else {
		for (int i = 0; i < 3; i++)
			dup2(s->stdio[i], i);
	}
	if (s->mkdir_cwd)
		mkdir_p(s->cwd, 0755);
	if (chdir(s->cwd) < 0)
		child_fail(s->errpipe, errno, 126, "chdir to working directory \"%s\": %s", s->cwd);
	struct capsa_error *err = NULL;
	if (linux_proc_apply(&s->sec, &err) < 0) {
		struct start_error e = { .code = err->code, .exit_code = 125 };
		snprintf(e.msg, sizeof(e.msg), "%s", err->msg);
		if (write(s->errpipe, &e, sizeof(e)) < 0) {
			/* nothing more to do */
		}
		_exit(125);
	}
	exec_search(s);
}

static int open_pty(int *master, int *slave, uint16_t rows, uint16_t cols)
{
	*master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (*master < 0)
		return -1;
	int unlock = 0;
	if (ioctl(*master, TIOCSPTLCK, &unlock) < 0)
		goto fail;
	/* TIOCGPTPEER opens the slave relative to the master: no path lookup */
	*slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*slave < 0)
		goto fail;
	struct winsize ws = { .ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80 };
	ioctl(*master, TIOCSWINSZ, &ws);
	return 0;
fail:
	close(*master);
	return -1;
}

static void report_start_failure(uint32_t stream, bool is_main, const struct start_error *e)
{
	struct proto_exit x = { .exit_code = e->exit_code, .code = e->code, .message = (char *)e->msg,
				.reason = (char *)"start_failed", .finished_at = now_ms() };
	struct buf b = BUF_INIT;
	proto_exit_encode(&b, &x);
	agent_send(P_EXIT, 0, stream, b.data, b.len);
	buf_release(&b);
	if (is_main) {
		agent.exit_code = e->exit_code;
		agent.ending = true;
	}
}

/* Fills s from the request merged over the sandbox defaults.  Failures are
 * reported as a start failure (exit code 125). */
static int prepare(struct start *s, struct proto_proc *req, struct linux_user *user, struct start_error *fail)
{
	struct proto_proc *d = &agent.defaults;
	s->argv = req->argv;
	if (!s->argv || !s->argv[0] || !*s->argv[0]) {
		*fail = (struct start_error){ EINVAL, 125, "no command given" };
		return -1;
	}
	const char *spec = req->user ? req->user : d->user ? d->user : "";
	int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct capsa_error *err = NULL;
	int rc = linux_user_resolve(rootfd, spec, user, &err);
	close(rootfd);
	if (rc < 0) {
		*fail = (struct start_error){ err->code, 125, "" };
		snprintf(fail->msg, sizeof(fail->msg), "%s", err->msg);
		capsa_error_free(err);
		return -1;
	}
	s->env = strv_dup(d->env);
	merge_env(&s->env, req->env);
	if (!env_get(s->env, "PATH")) {
		char *kv = xasprintf("PATH=%s", DEFAULT_PATH);
		s->env = strv_push_take(s->env, kv);
	}
	if (!env_get(s->env, "HOSTNAME"))
		s->env = strv_push_take(s->env, xasprintf("HOSTNAME=%s", agent.hostname));
	if (!env_get(s->env, "HOME"))
		s->env = strv_push_take(s->env, xasprintf("HOME=%s", user->home ? user->home : "/"));
	if ((req->tty) && !env_get(s->env, "TERM"))
		s->env = strv_push(s->env, "TERM=xterm");
	s->cwd = req->cwd ? req->cwd : d->cwd ? d->cwd : "/";
	s->mkdir_cwd = req->main; /* docker creates the main process's working directory */

	struct linux_proc_sec *sec = &s->sec;
	sec->uid = user->uid;
	sec->gid = user->gid;
	sec->groups = user->groups;
	sec->n_groups = user->n_groups;
	sec->set_ids = true;
	const struct proto_proc *cs = req->has_caps ? req : d;
	if (cs->has_caps) {
		sec->set_caps = true;
		sec->cap_bounding_have = agent_bounding();
		sec->cap_bounding = cs->cap_bounding;
		sec->cap_effective = cs->cap_effective;
		sec->cap_permitted = cs->cap_permitted;
		sec->cap_inheritable = cs->cap_inheritable;
		sec->cap_ambient = cs->cap_ambient;
	}
	sec->no_new_privs = req->no_new_privs || d->no_new_privs;
	/* rlimits: defaults, overridden per resource by the request */
	size_t n = 0;
	for (size_t i = 0; i < d->n_rlimits && n < PROTO_MAX_RLIMITS; i++)
		s->rl[n++] = (struct linux_rlimit){ d->rlimits[i].resource, d->rlimits[i].soft, d->rlimits[i].hard };
	for (size_t i = 0; i < req->n_rlimits; i++) {
		size_t j;
		for (j = 0; j < n; j++)
			if (s->rl[j].resource == req->rlimits[i].resource)
				break;
		if (j == n && n == PROTO_MAX_RLIMITS)
			continue;
		s->rl[j] = (struct linux_rlimit){ req->rlimits[i].resource, req->rlimits[i].soft, req->rlimits[i].hard };
		if (j == n)
			n++;
	}
	sec->rlimits = s->rl;
	sec->n_rlimits = n;
	/* The sandbox's default filter was installed on the agent before it
	 * started, so every child already has it; only a filter of the
	 * process's own is added (filters stack: it can only restrict more). */
	if (req->seccomp && !req->no_seccomp &&
	    !(d->seccomp && d->seccomp_len == req->seccomp_len && memcmp(d->seccomp, req->seccomp, req->seccomp_len) == 0)) {
		sec->seccomp_bpf = req->seccomp;
		sec->seccomp_len = req->seccomp_len;
	}
	int64_t um = req->umask >= 0 ? req->umask : d->umask >= 0 ? d->umask : 022;
	sec->umask = (mode_t)um;
	sec->set_umask = true;
	return 0;
}

/* Opens the process's stdio: a pty, or pipes (stdin from /dev/null unless
 * it is open).  Our ends go to p, the child's to s. */
static int open_stdio(struct aproc *p, struct start *s, const struct proto_proc *req, struct start_error *fail)
{
	if (req->tty) {
		if (open_pty(&p->out.fd, &s->tty_slave, req->rows, req->cols) < 0) {
			*fail = (struct start_error){ errno, 125, "" };
			snprintf(fail->msg, sizeof(fail->msg), "open pseudo-terminal: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	if ((req->open_stdin ? pipe2(pin, O_CLOEXEC) : (pin[0] = open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0 ||
	    pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
		*fail = (struct start_error){ errno, 125, "" };
		snprintf(fail->msg, sizeof(fail->msg), "create pipes: %s", strerror(errno));
		for (int i = 0; i < 2; i++) {
			if (pin[i] >= 0) close(pin[i]);
			if (pout[i] >= 0) close(pout[i]);
			if (perr[i] >= 0) close(perr[i]);
		}
		return -1;
	}
	/* bigger pipes: the child writes more per wakeup of ours, and
	 * we read and send it in bigger frames */
	fcntl(pout[0], F_SETPIPE_SZ, 1 << 20);
	fcntl(perr[0], F_SETPIPE_SZ, 1 << 20);
	s->stdio[0] = pin[0];
	s->stdio[1] = pout[1];
	s->stdio[2] = perr[1];
	p->in.fd = req->open_stdin ? pin[1] : -1;
	p->out.fd = pout[0];
	p->err.fd = perr[0];
	return 0;
}

static void close_child_ends(struct start *s)
{
	for (int i = 0; i < 3; i++) {
		if (s->stdio[i] >= 0)
			close(s->stdio[i]);
		s->stdio[i] = -1;
	}
	if (s->tty_slave >= 0)
		close(s->tty_slave);
	s->tty_slave = -1;
}

/* Forks the child, closes its ends of the stdio here and waits until it has
 * exec'd or reported why it could not.  Returns its pid, or -1 with *fail
 * filled (the child's ends closed either way). */
static pid_t spawn(struct start *s, struct start_error *fail)
{
	int errp[2];
	if (pipe2(errp, O_CLOEXEC) < 0) {
		*fail = (struct start_error){ errno, 125, "create pipe" };
		close_child_ends(s);
		return -1;
	}
	s->errpipe = errp[1];
	pid_t pid = fork();
	if (pid < 0) {
		*fail = (struct start_error){ errno, 125, "" };
		snprintf(fail->msg, sizeof(fail->msg), "fork: %s", strerror(errno));
		close(errp[0]);
		close(errp[1]);
		close_child_ends(s);
		return -1;
	}
	if (pid == 0)
		child_run(s);
	close(errp[1]);
	s->errpipe = -1;
	close_child_ends(s);
	ssize_t r = read_full(errp[0], fail, sizeof(*fail));
	close(errp[0]);
	if (r == (ssize_t)sizeof(*fail)) {
		/* the child reported a failure and exited: reap it now */
		int st;
		waitpid(pid, &st, 0);
		fail->msg[sizeof(fail->msg) - 1] = '\0';
		return -1;
	}
	return pid;
}

/* PROC_STARTED; with PROC_START_DIRECT (not for a pty or the main process)
 * our ends of the pipes go with it: the client reads and writes them itself
 * and the bytes never pass through us or the supervisor. */
static void reply_started(struct aproc *p, uint32_t stream, uint16_t flags)
{
	struct buf b = BUF_INIT;
	tlv_put_u64(&b, T_PID, (uint64_t)p->pid);
	if ((flags & PROC_START_DIRECT) && !p->tty && !p->main) {
		int fds[3] = { p->out.fd, p->err.fd, p->in.fd };
		int n = p->in.fd >= 0 ? 3 : 2;
		tlv_put_u64(&b, T_COUNT, (uint64_t)n);
		for (int i = 0; i < n; i++)
			fd_set_nonblock(fds[i], false);
		if (proto_conn_queue_fds(&agent.chan, P_PROC_STARTED, 0, stream, b.data, b.len, fds, n) == 0) {
			p->out.fd = p->err.fd = p->in.fd = -1; /* the queue closes them once sent */
		} else {
			chan_close(&p->out);
			chan_close(&p->err);
			chan_close(&p->in);
		}
		agent_chan_update();
	} else {
		agent_send(P_PROC_STARTED, 0, stream, b.data, b.len);
	}
	buf_release(&b);
}

void proc_start(uint32_t stream, uint16_t flags, const uint8_t *payload, size_t len)
{
	struct proto_proc req;
	const char *why = NULL;
	if (proto_proc_decode(payload, len, &req, &why) < 0) {
		agent_send_error(stream, EPROTO, "process spec: %s", why);
		return;
	}
	if (req.main && agent.main) {
		agent_send_error(stream, EEXIST, "the sandbox already has a main process");
		proto_proc_release(&req);
		return;
	}
	struct start s = { .tty_slave = -1, .stdio = { -1, -1, -1 }, .errpipe = -1 };
	struct linux_user user = { 0 };
	struct start_error fail = { 0 };
	struct aproc *p = xcalloc(1, sizeof(*p));
	p->stream = stream;
	p->main = req.main;
	p->tty = req.tty;
	p->out.fd = p->err.fd = p->in.fd = -1;
	p->out.credit = p->err.credit = req.window ? req.window : PROTO_WINDOW;
	p->in.pending.cap = PROTO_WINDOW;
	p->kill_grace_ms = req.kill_grace_ms;

	if (prepare(&s, &req, &user, &fail) < 0 || open_stdio(p, &s, &req, &fail) < 0)
		goto failed;
	p->pid = spawn(&s, &fail);
	if (p->pid < 0) {
		chan_close(&p->out);
		chan_close(&p->err);
		chan_close(&p->in);
		goto failed;
	}
	fd_set_nonblock(p->out.fd, true);
	if (p->err.fd >= 0)
		fd_set_nonblock(p->err.fd, true);
	if (p->in.fd >= 0)
		fd_set_nonblock(p->in.fd, true);
	p->next = agent.procs;
	agent.procs = p;
	if (p->main)
		agent.main = p;
	if (req.timeout_ms > 0)
		ev_timer_start(&agent.loop, &p->timeout, req.timeout_ms, on_timeout);
	reply_started(p, stream, flags);
	io_update(p);
	strv_free(s.env);
	linux_user_release(&user);
	proto_proc_release(&req);
	return;

failed:
	report_start_failure(stream, req.main, &fail);
	strv_free(s.env);
	linux_user_release(&user);
	proto_proc_release(&req);
	free(p);
	if (agent.ending && proc_all_done()) {
		proto_conn_flush_all(&agent.chan, 5000);
		_exit(agent.exit_code);
	}
}

void proc_frame(const struct proto_hdr *h, const uint8_t *payload)
{
	struct aproc *p = find(h->stream);
	if (!p)
		return; /* the session ended while this was in flight */
	switch (h->type) {
	case P_DATA:
		if (h->flags != CH_STDIN || p->in.close_when_drained)
			return;
		if ((!p->tty && p->in.fd < 0)) {
			/* stdin closed: give the credit back so the sender does not stall */
			uint8_t n[4];
			put_be32(n, h->len);
			agent_send(P_CREDIT, CH_STDIN, p->stream, n, 4);
			return;
		}
		if (buf_append(&p->in.pending, payload, h->len) < 0) {
			agent_send_error(p->stream, ENOBUFS, "stdin sent beyond its window");
			return;
		}
		pump_in(p);
		break;
	case P_EOF:
		if (h->flags == CH_STDIN) {
			p->in.close_when_drained = true;
			pump_in(p);
		}
		break;
	case P_CREDIT:
		if (h->len == 4 && (h->flags == CH_STDOUT || h->flags == CH_STDERR)) {
			struct achan *c = h->flags == CH_STDOUT ? &p->out : &p->err;
			uint64_t nc = (uint64_t)c->credit + get_be32(payload);
			c->credit = nc > (64u << 20) ? (64u << 20) : (uint32_t)nc;
			if (p->exited)
				pump_out(p, c, h->flags);
		}
		break;
	case P_SIGNAL:
		if (h->len == 4 && !p->exited) {
			int sig = (int)get_be32(payload);
			if (sig > 0 && sig < 65) {
				/* flags bit 0: the whole process group, as a terminal would */
				if (h->flags & 1)
					kill(-p->pid, sig);
				kill(p->pid, sig);
			}
		}
		break;
	case P_RESIZE:
		if (h->len == 4 && p->tty && p->out.fd >= 0) {
			struct winsize ws = { .ws_row = get_be16(payload), .ws_col = get_be16(payload + 2) };
			ioctl(p->out.fd, TIOCSWINSZ, &ws);
		}
		break;
	}
	io_update(p);
	maybe_finish(p);
}

void proc_reap(void)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			break;
		for (struct aproc *p = agent.procs; p; p = p->next) {
			if (p->pid != pid)
				continue;
			p->exited = true;
			p->status = st;
			/* drain what the child wrote before it died */
			if (p->out.fd >= 0)
				pump_out(p, &p->out, CH_STDOUT);
			if (p->err.fd >= 0)
				pump_out(p, &p->err, CH_STDERR);
			io_update(p);
			maybe_finish(p);
			break;
		}
	}
	if (agent.ending) {
		/* the main process is gone: so is the sandbox */
		kill(-1, SIGKILL);
	}
}

void proc_forward_signal(int sig)
{
	if (sig == SIGPIPE || sig == SIGTTIN || sig == SIGTTOU)
		return;
	if (agent.main && !agent.main->exited)
		kill(agent.main->pid, sig);
}

void proc_kill_all(void)
{
	kill(-1, SIGKILL);
	for (;;) {
		int st;
		if (waitpid(-1, &st, 0) < 0 && errno == ECHILD)
			break;
	}
}

bool proc_all_done(void)
{
	return agent.procs == NULL;
}
