/* agent.c: capsa-agent main loop: the channel to the supervisor, signals,
 * and the end of the sandbox.
 *
 * Start: fd 3 is the channel (a socketpair in the namespace backend, a
 * virtio-serial port in a VM).  The agent says HELLO, receives INIT (the
 * sandbox's defaults for every process) and PROC_START frames, and from then
 * on multiplexes sessions.  When the main process has exited and its output
 * is flushed, the agent kills what is left and exits: the sandbox ends with
 * its PID 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "util/fs.h"

struct agent agent;

static bool flush_scheduled;

/* Frames queued during one batch of events go out together, at its end. */
static void flush_chan(void *unused)
{
	(void)unused;
	flush_scheduled = false;
	if (!agent.chan_io.active)
		return;
	int r = proto_conn_flush(&agent.chan);
	if (r < 0) {
		/* the supervisor is gone: nobody to report to */
		proc_kill_all();
		_exit(1);
	}
	ev_io_set(&agent.loop, &agent.chan_io, EPOLLIN | (r > 0 ? EPOLLOUT : 0));
}

void agent_chan_update(void)
{
	if (!flush_scheduled) {
		flush_scheduled = true;
		ev_defer(&agent.loop, flush_chan, NULL);
	}
}

void agent_send(uint16_t type, uint16_t flags, uint32_t stream, const void *p, size_t n)
{
	if (proto_conn_queue(&agent.chan, type, flags, stream, p, n) < 0)
		return;
	agent_chan_update();
}

void agent_send_error(uint32_t stream, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct buf b = BUF_INIT;
	proto_error_encode(&b, code, msg);
	agent_send(P_ERROR, 0, stream, b.data, b.len);
	buf_release(&b);
}

static void handle_init(const uint8_t *payload, size_t len)
{
	const char *why = NULL;
	proto_proc_release(&agent.defaults);
	if (proto_proc_decode(payload, len, &agent.defaults, &why) < 0) {
		agent_send_error(0, EPROTO, "init: %s", why);
		return;
	}
	agent.have_init = true;
}

static bool stream_in_use(uint32_t stream)
{
	return proc_stream_in_use(stream) || files_stream_in_use(stream) || watch_stream_in_use(stream) ||
	       tunnel_stream_in_use(stream);
}

static int on_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)ctx;
	(void)c;
	switch (h->type) {
	case P_INIT:
		handle_init(payload, h->len);
		break;
	case P_PING:
		agent_send(P_PONG, 0, h->stream, payload, h->len);
		break;
	case P_PROC_START:
	case P_FILE_OP:
	case P_TUNNEL_OPEN:
		if (agent.ending) {
			agent_send_error(h->stream, ESRCH, "sandbox is shutting down");
		} else if (h->stream == 0 || stream_in_use(h->stream)) {
			agent_send_error(h->stream, EINVAL, "stream %u is in use", h->stream);
		} else if (h->type == P_PROC_START) {
			proc_start(h->stream, h->flags, payload, h->len);
		} else if (h->type == P_FILE_OP) {
			file_start(h->stream, payload, h->len);
		} else {
			tunnel_start(h->stream, h->flags, payload, h->len);
		}
		break;
	case P_DATA:
	case P_CREDIT:
	case P_EOF:
	case P_SIGNAL:
	case P_RESIZE:
	case P_CANCEL:
		/* a stream that ended while this was in flight is simply gone */
		if (proc_stream_in_use(h->stream))
			proc_frame(h, payload);
		else if (!file_frame(h, payload) && !watch_frame(h, payload))
			tunnel_frame(h, payload);
		break;
	case P_SHUTDOWN:
		proc_kill_all();
		break;
	case P_HELLO:
		break;
	default:
		agent_send_error(h->stream, EPROTONOSUPPORT, "unknown frame type %u", h->type);
		break;
	}
	return 0;
}

void agent_leave(void *unused)
{
	(void)unused;
	/* Everything must be reported before PID 1 disappears. */
	proc_kill_all();
	proto_conn_flush_all(&agent.chan, 5000);
	_exit(agent.exit_code);
}

static void on_chan(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)io;
	if (revents & EPOLLOUT)
		flush_chan(NULL);
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		int r = proto_conn_read(&agent.chan, on_frame, NULL);
		if (r != 0) {
			/* supervisor closed the channel or spoke nonsense:
			 * without it the sandbox has no reason to live */
			proc_kill_all();
			_exit(r > 0 ? 0 : 1);
		}
	}
}

static void on_signal(struct ev_loop *l, struct ev_io *io, uint32_t revents)
{
	(void)l;
	(void)io;
	(void)revents;
	struct signalfd_siginfo si;
	while (read(agent.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			proc_reap();
		else
			proc_forward_signal((int)si.ssi_signo);
	}
	if (agent.ending && proc_all_done())
		agent_leave(NULL);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* No ptrace, no core dumps, no /proc/1/mem for the processes we host. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	int chan = 3;
	const char *env_fd = getenv("CAPSA_AGENT_FD");
	if (env_fd)
		chan = atoi(env_fd);
	if (fcntl(chan, F_GETFD) < 0) {
		fprintf(stderr, "capsa-agent: no channel on fd %d; this program is started by capsa\n", chan);
		return 2;
	}
	fd_set_cloexec(chan, true);
	fd_set_nonblock(chan, true);
	gethostname(agent.hostname, sizeof(agent.hostname) - 1);
	/* file operations resolve every path relative to the sandbox's root */
	agent.root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	/* the agent creates files with exactly the modes asked for */
	umask(0);
	/* tunnels and sessions need descriptors; children get the original
	 * limit back before exec */
	getrlimit(RLIMIT_NOFILE, &agent.nofile);
	struct rlimit more = { agent.nofile.rlim_max, agent.nofile.rlim_max };
	setrlimit(RLIMIT_NOFILE, &more);

	/* All signals PID 1 can receive come through the signalfd; children
	 * reset their mask before exec. */
	sigset_t set;
	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGABRT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	agent.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);

	if (ev_init(&agent.loop) < 0 || agent.sigfd < 0)
		return 2;
	proto_conn_init(&agent.chan, chan);
	agent.defaults.umask = -1;
	ev_io_start(&agent.loop, &agent.chan_io, chan, EPOLLIN, on_chan);
	ev_io_start(&agent.loop, &agent.sig_io, agent.sigfd, EPOLLIN, on_signal);

	struct buf b = BUF_INIT;
	tlv_put_u64(&b, T_MAGIC, PROTO_MAGIC);
	tlv_put_u64(&b, T_VERSION, PROTO_VERSION);
	tlv_put_u64(&b, T_MAX_PAYLOAD, PROTO_MAX_PAYLOAD);
	tlv_put_str(&b, T_NAME, "capsa-agent " CAPSA_VERSION);
	agent_send(P_HELLO, 0, 0, b.data, b.len);
	buf_release(&b);

	ev_run(&agent.loop);
	agent_leave(NULL);
	return 0;
}
