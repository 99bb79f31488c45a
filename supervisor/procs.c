/* procs.c: the sandbox's processes as the supervisor sees them: who started
 * each, who is attached, where its output goes and who returns its credit.
 *
 * Output credit (docs/protocol.md, Flow control):
 *   - a process that is not kept and whose client is there (its owner)
 *     has end-to-end credit: the owner returns it as it writes the bytes out;
 *   - otherwise (the main process, kept processes, orphans) the supervisor
 *     returns it once the bytes are queued to the attached clients, holding
 *     it back while one of them is more than ATTACH_BACKLOG behind; with
 *     nobody attached, a kept process's output goes to a bounded ring
 *     (oldest dropped) and an orphan's is discarded.
 * stdin from any client allowed to write it is queued per process and fed
 * to the agent within the agent's window; each sender gets its credit back
 * when its bytes reach the agent.
 *
 * Clients can disappear in the middle of a loop over a process's sinks
 * (client_send drops a client whose queue overflows): a dead sink is only
 * marked, and swept from the lists later.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "supervisor.h"
#include "util/fs.h"

/* ---- the event journal ------------------------------------------------------
 * The supervisor cannot write the state database; exec events go to
 * <run>/events as "<ms> <type> <json attrs>" lines, which the library
 * imports into the events table (lib/sandbox/events.c). */

#define JOURNAL_MAX (64LL << 20)

static void journal(const char *type, const struct sproc *p)
{
	static int fd = -1;
	static int64_t size;
	if (fd < 0)
		fd = openat(sup.run_fd, "events", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || size > JOURNAL_MAX)
		return;
	struct buf b = BUF_INIT;
	buf_appendf(&b, "%lld %s {\"pid\":%d", (long long)now_ms(), type, (int)p->pid);
	if (p->tag) {
		buf_appendf(&b, ",\"tag\":");
		buf_append_json_str(&b, p->tag);
	}
	if (p->exited) {
		buf_appendf(&b, ",\"exitCode\":%lld,\"reason\":", (long long)p->exit_code);
		buf_append_json_str(&b, p->reason ? p->reason : "exited");
	} else {
		buf_appendf(&b, ",\"argv\":[");
		for (size_t i = 0; p->argv && p->argv[i] && b.len < 4096; i++) {
			if (i)
				buf_putc(&b, ',');
			buf_append_json_str(&b, p->argv[i]);
		}
		buf_putc(&b, ']');
	}
	buf_appendf(&b, "}\n");
	if (write_all(fd, b.data, b.len) == 0)
		size += (int64_t)b.len;
	buf_release(&b);
}

/* ---- the ring ------------------------------------------------------------- */

enum { REC_DATA = 0, REC_EOF = 1 };
#define REC_HDR 6

static void ring_put(struct ring *r, const void *p, size_t n)
{
	const uint8_t *s = p;
	size_t tail = (r->head + r->len) % r->cap;
	size_t first = MIN(n, r->cap - tail);
	memcpy(r->data + tail, s, first);
	memcpy(r->data, s + first, n - first);
	r->len += n;
}

static void ring_get(struct ring *r, void *p, size_t n)
{
	uint8_t *d = p;
	size_t first = MIN(n, r->cap - r->head);
	if (d) {
		memcpy(d, r->data + r->head, first);
		memcpy(d + first, r->data, n - first);
	}
	r->head = (r->head + n) % r->cap;
	r->len -= n;
}

/* Drops the oldest record; returns its payload size. */
static size_t ring_drop(struct ring *r)
{
	uint8_t h[REC_HDR];
	ring_get(r, h, REC_HDR);
	uint32_t n = get_be32(h + 2);
	ring_get(r, NULL, n);
	return n;
}

static void ring_push(struct sproc *p, int kind, uint16_t ch, const void *data, size_t n)
{
	struct ring *r = &p->ring;
	if (!r->data) {
		r->data = xmalloc(PROC_RING_CAP);
		r->cap = PROC_RING_CAP;
	}
	if (n + REC_HDR > r->cap)
		return;
	while (r->cap - r->len < n + REC_HDR)
		p->dropped += ring_drop(r);
	uint8_t h[REC_HDR] = { (uint8_t)kind, (uint8_t)ch };
	put_be32(h + 2, (uint32_t)n);
	ring_put(r, h, REC_HDR);
	ring_put(r, data, n);
}

static void ring_release(struct ring *r)
{
	free(r->data);
	memset(r, 0, sizeof(*r));
}

/* ---- lifecycle -------------------------------------------------------------- */

struct sproc *proc_new(uint32_t agent_stream)
{
	struct sproc *p = xcalloc(1, sizeof(*p));
	p->agent_stream = agent_stream;
	p->in_credit = PROTO_WINDOW;
	p->next = sup.procs;
	sup.procs = p;
	return p;
}

static void proc_free(struct sproc *p)
{
	for (struct sink *s = p->sinks, *n; s; s = n) {
		n = s->next;
		free(s);
	}
	free(p->tag);
	free(p->cwd);
	free(p->reason);
	strv_free(p->argv);
	buf_release(&p->exit_tlv);
	buf_release(&p->in_q);
	free(p->segs);
	ring_release(&p->ring);
	free(p);
}

static void proc_remove(struct sproc *dead)
{
	for (struct sproc **pp = &sup.procs; *pp; pp = &(*pp)->next) {
		if (*pp == dead) {
			*pp = dead->next;
			break;
		}
	}
	if (sup.main_proc == dead)
		sup.main_proc = NULL;
	proc_free(dead);
}

struct sproc *proc_by_agent(uint32_t stream)
{
	for (struct sproc *p = sup.procs; p; p = p->next)
		if (p->agent_stream == stream)
			return p;
	return NULL;
}

struct sproc *proc_by_client(struct client *c, uint32_t stream, struct sink **sink)
{
	*sink = NULL;
	for (struct sproc *p = sup.procs; p; p = p->next) {
		if (p->owner == c && p->owner_stream == stream)
			return p;
		for (struct sink *s = p->sinks; s; s = s->next) {
			if (s->c == c && s->stream == stream) {
				*sink = s;
				return p;
			}
		}
	}
	return NULL;
}

bool procs_stream_in_use(struct client *c, uint32_t stream)
{
	struct sink *s;
	if (proc_by_client(c, stream, &s))
		return true;
	for (struct sproc *p = sup.procs; p; p = p->next)
		if (p->starter == c && p->starter_stream == stream)
			return true;
	return false;
}

static void sweep(void *unused)
{
	(void)unused;
	sup.sweep_pending = false;
	for (struct sproc *p = sup.procs; p; p = p->next) {
		for (struct sink **sp = &p->sinks; *sp;) {
			if ((*sp)->c == NULL) {
				struct sink *dead = *sp;
				*sp = dead->next;
				free(dead);
			} else {
				sp = &(*sp)->next;
			}
		}
	}
}

static void schedule_sweep(void)
{
	if (!sup.sweep_pending) {
		sup.sweep_pending = true;
		ev_defer(&sup.loop, sweep, NULL);
	}
}

struct sink *proc_add_sink(struct sproc *p, struct client *c, uint32_t stream, unsigned flags)
{
	struct sink *s = xcalloc(1, sizeof(*s));
	s->c = c;
	s->stream = stream;
	s->flags = flags;
	s->next = p->sinks;
	p->sinks = s;
	return s;
}

static int live_sinks(const struct sproc *p, unsigned want)
{
	int n = 0;
	for (const struct sink *s = p->sinks; s; s = s->next)
		if (s->c && !s->c->closing && (s->flags & want))
			n++;
	return n;
}

/* Ended kept processes nobody saw end are remembered, the oldest dropped. */
static void retain_limit(void)
{
	int n = 0;
	struct sproc *oldest = NULL;
	for (struct sproc *p = sup.procs; p; p = p->next) {
		if (p->exited && !p->main) {
			n++;
			oldest = p;
		}
	}
	if (n > PROC_RETAINED && oldest)
		proc_remove(oldest);
}

/* ---- credit ------------------------------------------------------------------ */

static void proc_credit(struct sproc *p)
{
	if (p->owner || p->exited)
		return;
	for (struct sink *s = p->sinks; s; s = s->next)
		if (s->c && !s->c->closing && (s->flags & (ATTACH_STDOUT | ATTACH_STDERR)) &&
		    proto_conn_pending(&s->c->conn) > ATTACH_BACKLOG)
			return;
	for (uint16_t ch = CH_STDOUT; ch <= CH_STDERR; ch++) {
		if (p->owed[ch] < PROTO_CREDIT_BATCH)
			continue;
		uint8_t n[4];
		put_be32(n, p->owed[ch]);
		p->owed[ch] = 0;
		agent_send(P_CREDIT, ch, p->agent_stream, n, 4);
	}
}

void procs_credit_all(void)
{
	for (struct sproc *p = sup.procs; p; p = p->next)
		proc_credit(p);
}

/* The owner is gone (or detached): the supervisor returns credit now. */
static void orphan(struct sproc *p)
{
	for (int ch = CH_STDOUT; ch <= CH_STDERR; ch++) {
		p->owed[ch] += p->owner_out[ch];
		p->owner_out[ch] = 0;
	}
	p->owner = NULL;
	proc_credit(p);
}

bool procs_busy(void)
{
	for (struct sproc *p = sup.procs; p; p = p->next)
		if (p->owner && !p->exited)
			return true;
	return false;
}

/* ---- stdin ---------------------------------------------------------------------- */

static void give_stdin_credit(struct client *c, uint32_t stream, uint32_t n)
{
	if (!c || c->closing || !n)
		return;
	uint8_t b[4];
	put_be32(b, n);
	client_send(c, P_CREDIT, CH_STDIN, stream, b, 4);
}

static void stdin_pump(struct sproc *p)
{
	while (p->in_credit > 0 && p->in_q.len > 0 && !p->exited) {
		size_t k = MIN((size_t)p->in_credit, MIN(p->in_q.len, (size_t)PROTO_DATA_CHUNK));
		agent_send(P_DATA, CH_STDIN, p->agent_stream, p->in_q.data, k);
		buf_consume(&p->in_q, k);
		p->in_credit -= (uint32_t)k;
		size_t left = k;
		while (left && p->n_segs) {
			struct in_seg *g = &p->segs[0];
			uint32_t take = (uint32_t)MIN((size_t)g->n, left);
			g->n -= take;
			left -= take;
			give_stdin_credit(g->c, g->stream, take);
			if (g->n == 0) {
				memmove(p->segs, p->segs + 1, (p->n_segs - 1) * sizeof(*p->segs));
				p->n_segs--;
			}
		}
	}
	if (p->in_q.len == 0 && p->in_eof && !p->in_eof_sent && !p->exited) {
		p->in_eof_sent = true;
		agent_send(P_EOF, CH_STDIN, p->agent_stream, NULL, 0);
	}
}

static void stdin_data(struct sproc *p, struct client *c, uint32_t stream, const uint8_t *data, size_t n)
{
	if (p->in_eof || p->exited) {
		give_stdin_credit(c, stream, (uint32_t)n);
		return;
	}
	if (p->in_q.len + n > STDIN_QUEUE_CAP) {
		client_send_error(c, stream, ENOBUFS, "stdin sent beyond its window");
		return;
	}
	buf_append(&p->in_q, data, n);
	if (p->n_segs && p->segs[p->n_segs - 1].c == c && p->segs[p->n_segs - 1].stream == stream) {
		p->segs[p->n_segs - 1].n += (uint32_t)n;
	} else {
		if (p->n_segs == p->cap_segs) {
			p->cap_segs = p->cap_segs ? p->cap_segs * 2 : 4;
			p->segs = xrealloc(p->segs, p->cap_segs * sizeof(*p->segs));
		}
		p->segs[p->n_segs++] = (struct in_seg){ c, stream, (uint32_t)n };
	}
	stdin_pump(p);
}

/* ---- from the agent --------------------------------------------------------------- */

/* A direct process's stdio pipes came with PROC_STARTED: they go on to the
 * client that started it.  They come from inside the sandbox, so they must
 * be what they claim: pipes. */
static void started_direct(struct sproc *p, const struct proto_hdr *h, const uint8_t *payload, uint64_t n)
{
	int fds[3] = { -1, -1, -1 };
	bool ok = n >= 2 && n <= 3;
	for (uint64_t i = 0; i < n && i < 3; i++) {
		fds[i] = agent_frame_fd();
		struct stat st;
		if (fds[i] < 0 || fstat(fds[i], &st) < 0 || !S_ISFIFO(st.st_mode))
			ok = false;
	}
	if (!ok || !p->starter) {
		for (int i = 0; i < 3; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		if (!ok) {
			uint8_t s[4];
			put_be32(s, SIGKILL);
			agent_send(P_SIGNAL, 1, p->agent_stream, s, 4);
			if (p->starter)
				client_send_error(p->starter, p->starter_stream, EPROTO, "the agent sent no valid stdio pipes");
		}
		return;
	}
	client_send_fds(p->starter, h->type, h->flags, p->starter_stream, payload, h->len, fds, (int)n);
}

static void to_sinks(struct sproc *p, const struct proto_hdr *h, const uint8_t *payload, unsigned want)
{
	for (struct sink *s = p->sinks; s; s = s->next) {
		if (!s->c || s->c->closing || (want && !(s->flags & want)))
			continue;
		client_send(s->c, h->type, h->flags, s->stream, payload, h->len);
	}
}

static void on_exit_frame(struct sproc *p, const struct proto_hdr *h, const uint8_t *payload)
{
	struct proto_exit e;
	p->exited = true;
	buf_release(&p->exit_tlv);
	buf_append(&p->exit_tlv, payload, h->len);
	if (proto_exit_decode(payload, h->len, &e) == 0) {
		p->exit_code = e.exit_code;
		free(p->reason);
		p->reason = e.reason ? xstrdup(e.reason) : xstrdup("exited");
		proto_exit_release(&e);
	}
	if (!p->main && p->started)
		journal("exec_die", p);
	if (p->owner)
		client_send(p->owner, P_EXIT, 0, p->owner_stream, payload, h->len);
	/* its end counts as seen by a client that also saw its output */
	bool seen = p->owner != NULL || live_sinks(p, ATTACH_STDOUT | ATTACH_STDERR) > 0;
	to_sinks(p, h, payload, 0);
	sup_touch();
	if (p->main)
		return;
	if (p->keep && !seen) {
		retain_limit();
		return;
	}
	proc_remove(p);
}

void proc_from_agent(struct sproc *p, const struct proto_hdr *h, const uint8_t *payload)
{
	switch (h->type) {
	case P_PROC_STARTED: {
		p->started = true;
		p->started_at = now_ms();
		uint64_t pid = 0, nfds = 0;
		tlv_find_u64(payload, h->len, T_PID, &pid);
		p->pid = (pid_t)pid;
		if (p->direct)
			tlv_find_u64(payload, h->len, T_COUNT, &nfds);
		if (nfds) {
			started_direct(p, h, payload, nfds);
		} else if (p->starter) {
			client_send(p->starter, h->type, h->flags, p->starter_stream, payload, h->len);
		}
		p->starter = NULL;
		if (!p->main)
			journal("exec_start", p);
		break;
	}
	case P_DATA: {
		if (h->flags != CH_STDOUT && h->flags != CH_STDERR)
			break;
		unsigned want = h->flags == CH_STDERR ? ATTACH_STDERR : ATTACH_STDOUT;
		if (p->main)
			logw_write(&sup.log, h->flags, (const char *)payload, h->len);
		if (p->owner) {
			p->owner_out[h->flags] += h->len;
			client_send(p->owner, P_DATA, h->flags, p->owner_stream, payload, h->len);
		}
		bool sinks = live_sinks(p, ATTACH_STDOUT | ATTACH_STDERR) > 0;
		to_sinks(p, h, payload, want);
		if (!p->owner) {
			if (!sinks && p->keep && !p->main)
				ring_push(p, REC_DATA, h->flags, payload, h->len);
			p->owed[h->flags] += h->len;
			proc_credit(p);
		}
		break;
	}
	case P_EOF:
		if (p->owner)
			client_send(p->owner, P_EOF, h->flags, p->owner_stream, NULL, 0);
		if (!p->owner && p->keep && !p->main && !live_sinks(p, ATTACH_STDOUT | ATTACH_STDERR))
			ring_push(p, REC_EOF, h->flags, NULL, 0);
		to_sinks(p, h, payload, h->flags == CH_STDERR ? ATTACH_STDERR : ATTACH_STDOUT);
		break;
	case P_CREDIT:
		if (h->flags == CH_STDIN && h->len == 4) {
			uint64_t c = (uint64_t)p->in_credit + get_be32(payload);
			p->in_credit = c > (64u << 20) ? (64u << 20) : (uint32_t)c;
			stdin_pump(p);
		}
		break;
	case P_EXIT:
		on_exit_frame(p, h, payload);
		break;
	case P_ERROR:
		/* the agent refused to start it */
		if (p->starter)
			client_send(p->starter, P_ERROR, 0, p->starter_stream, payload, h->len);
		if (!p->main)
			proc_remove(p);
		break;
	default:
		break;
	}
}

/* ---- from clients ------------------------------------------------------------------ */

static bool tag_in_use(const char *tag)
{
	for (struct sproc *p = sup.procs; p; p = p->next)
		if (!p->exited && p->tag && strcmp(p->tag, tag) == 0)
			return true;
	return false;
}

void proc_start_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload)
{
	if (sup.state == SUP_PAUSED) {
		client_send_error(c, h->stream, EBUSY, "sandbox %s is paused", sup.spec.name);
		return;
	}
	if (sup.state != SUP_RUNNING || sup.main_exited) {
		client_send_error(c, h->stream, ESRCH, "sandbox %s is not running", sup.spec.name);
		return;
	}
	if (h->stream == 0 || procs_stream_in_use(c, h->stream)) {
		client_send_error(c, h->stream, EINVAL, "stream %u is in use", h->stream);
		return;
	}
	struct proto_proc spec;
	const char *why = NULL;
	if (proto_proc_decode(payload, h->len, &spec, &why) < 0) {
		client_send_error(c, h->stream, EPROTO, "process spec: %s", why);
		return;
	}
	if (spec.main) {
		client_send_error(c, h->stream, EEXIST, "the sandbox already has a main process");
		proto_proc_release(&spec);
		return;
	}
	if (spec.tag && tag_in_use(spec.tag)) {
		client_send_error(c, h->stream, EEXIST, "a process tagged '%s' is already running in sandbox %s",
				  spec.tag, sup.spec.name);
		proto_proc_release(&spec);
		return;
	}
	size_t n = 0;
	for (struct sproc *q = sup.procs; q; q = q->next)
		n++;
	if (n >= PROC_MAX) {
		client_send_error(c, h->stream, EAGAIN, "sandbox %s runs %zu processes: the most it tracks", sup.spec.name,
				  n);
		proto_proc_release(&spec);
		return;
	}
	struct sproc *p = proc_new(sup_new_stream());
	p->tag = steal_pointer(&spec.tag);
	p->cwd = steal_pointer(&spec.cwd);
	p->argv = steal_pointer(&spec.argv);
	p->tty = spec.tty;
	p->stdin_open = spec.open_stdin;
	p->keep = spec.keep || (h->flags & PROC_START_KEEP);
	p->direct = (h->flags & PROC_START_DIRECT) && !p->keep && !p->tty && !sup.spec.framed;
	p->starter = c;
	p->starter_stream = h->stream;
	if (p->keep && !(h->flags & PROC_START_NO_ATTACH))
		proc_add_sink(p, c, h->stream, ATTACH_STDIN | ATTACH_STDOUT | ATTACH_STDERR);
	else if (!p->keep) {
		p->owner = c;
		p->owner_stream = h->stream;
	}
	proto_proc_release(&spec);
	sup_touch();
	agent_send(P_PROC_START, p->direct ? PROC_START_DIRECT : 0, p->agent_stream, payload, h->len);
}

/* DETACH: the process is kept from now on; flags 1: the client stays
 * attached to it, else it leaves it. */
static void detach(struct sproc *p, struct sink *s, struct client *c, uint32_t stream, uint16_t flags)
{
	if (p->owner == c && p->owner_stream == stream) {
		p->keep = true;
		orphan(p);
		if (flags & 1)
			proc_add_sink(p, c, stream, ATTACH_STDIN | ATTACH_STDOUT | ATTACH_STDERR);
	} else if (s && (flags & 1)) {
		if (!p->main)
			p->keep = true;
	} else if (s) {
		s->c = NULL;
		schedule_sweep();
		proc_credit(p);
	}
	client_reply_ok(c, stream);
}

void proc_from_client(struct sproc *p, struct sink *s, struct client *c, const struct proto_hdr *h,
		      const uint8_t *payload)
{
	bool input = !s || (s->flags & ATTACH_STDIN);
	switch (h->type) {
	case P_DATA:
		if (h->flags == CH_STDIN && input)
			stdin_data(p, c, h->stream, payload, h->len);
		break;
	case P_EOF:
		if (h->flags == CH_STDIN && input) {
			p->in_eof = true;
			stdin_pump(p);
		}
		break;
	case P_CREDIT:
		/* only an owner returns credit; the supervisor does it for sinks */
		if (!s && h->len == 4 && (h->flags == CH_STDOUT || h->flags == CH_STDERR) && !p->exited) {
			uint32_t n = get_be32(payload);
			p->owner_out[h->flags] -= MIN(n, p->owner_out[h->flags]);
			agent_send(P_CREDIT, h->flags, p->agent_stream, payload, 4);
		}
		break;
	case P_SIGNAL:
		/* every attached client forwards the signals it gets (capsa run
		 * without -i as well): any client may send PROC_SIGNAL anyway */
		if (!p->exited)
			agent_send(h->type, h->flags, p->agent_stream, payload, h->len);
		break;
	case P_RESIZE:
		if (input && !p->exited)
			agent_send(h->type, h->flags, p->agent_stream, payload, h->len);
		break;
	case P_DETACH:
		detach(p, s, c, h->stream, h->flags);
		break;
	default:
		client_send_error(c, h->stream, EPROTONOSUPPORT, "frame %s is not valid on a process stream",
				  proto_type_name(h->type));
		break;
	}
}

/* PROC_SIGNAL, ATTACH: which process (T_PID, T_TAG, T_MAIN; nothing: main). */
static struct sproc *select_proc(struct client *c, uint32_t stream, const uint8_t *payload, size_t len)
{
	struct tlv_iter it;
	tlv_iter_init(&it, payload, len);
	uint16_t tag;
	const uint8_t *val;
	uint32_t l;
	int64_t pid = 0;
	char *want_tag = NULL;
	while (tlv_next(&it, &tag, &val, &l) > 0) {
		if (tag == T_PID)
			tlv_i64(val, l, &pid);
		else if (tag == T_TAG && !want_tag)
			want_tag = tlv_str(val, l);
	}
	struct sproc *found = NULL;
	for (struct sproc *p = sup.procs; p; p = p->next) {
		if (pid > 0 ? p->pid == pid && p->started : want_tag ? p->tag && strcmp(p->tag, want_tag) == 0 : p->main) {
			/* a running process wins over a retained one of the same tag */
			if (!found || (found->exited && !p->exited))
				found = p;
		}
	}
	if (!found) {
		if (pid > 0)
			client_send_error(c, stream, ESRCH, "no process with pid %lld in sandbox %s", (long long)pid,
					  sup.spec.name);
		else if (want_tag)
			client_send_error(c, stream, ESRCH, "no process tagged '%s' in sandbox %s", want_tag,
					  sup.spec.name);
		else
			client_send_error(c, stream, ESRCH, "sandbox %s is not running", sup.spec.name);
	}
	free(want_tag);
	return found;
}

void proc_signal_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload)
{
	struct sproc *p = select_proc(c, h->stream, payload, h->len);
	if (!p)
		return;
	uint64_t usig = 0;
	tlv_find_u64(payload, h->len, T_SIGNAL, &usig);
	int64_t sig = (int64_t)usig;
	bool group = tlv_has(payload, h->len, T_GROUP);
	if (sig < 1 || sig > 64) {
		client_send_error(c, h->stream, EINVAL, "invalid signal %lld", (long long)sig);
		return;
	}
	if (p->exited || (p->main && sup.main_exited)) {
		client_send_error(c, h->stream, ESRCH, "process %d in sandbox %s has ended", (int)p->pid, sup.spec.name);
		return;
	}
	uint8_t s[4];
	put_be32(s, (uint32_t)sig);
	if (p->main)
		sup.kill_requested = true;
	agent_send(P_SIGNAL, group ? 1 : 0, p->agent_stream, s, 4);
	client_reply_ok(c, h->stream);
}

static void replay(struct sproc *p, struct client *c, uint32_t stream)
{
	struct ring *r = &p->ring;
	uint8_t *tmp = NULL;
	while (r->len >= REC_HDR && !c->closing) {
		uint8_t hd[REC_HDR];
		ring_get(r, hd, REC_HDR);
		uint32_t n = get_be32(hd + 2);
		tmp = xrealloc(tmp, n ? n : 1);
		ring_get(r, tmp, n);
		/* the ring's credit was returned when the bytes went in */
		client_send(c, hd[0] == REC_EOF ? P_EOF : P_DATA, hd[1], stream, tmp, hd[0] == REC_EOF ? 0 : n);
	}
	free(tmp);
	ring_release(r);
}

void proc_attach_request(struct client *c, const struct proto_hdr *h, const uint8_t *payload)
{
	if (h->stream == 0 || procs_stream_in_use(c, h->stream)) {
		client_send_error(c, h->stream, EINVAL, "stream %u is in use", h->stream);
		return;
	}
	struct sproc *p = select_proc(c, h->stream, payload, h->len);
	if (!p)
		return;
	if (p->main && (sup.state == SUP_ENDING || sup.main_exited)) {
		client_send_error(c, h->stream, ESRCH, "sandbox %s is not running", sup.spec.name);
		return;
	}
	unsigned flags = h->flags & (ATTACH_STDIN | ATTACH_STDOUT | ATTACH_STDERR);
	struct buf b = BUF_INIT;
	tlv_put_i64(&b, T_PID, p->pid);
	tlv_put_flag(&b, T_TTY, p->tty);
	tlv_put_flag(&b, T_STDIN, p->stdin_open);
	bool want_replay = (h->flags & ATTACH_REPLAY) && (flags & (ATTACH_STDOUT | ATTACH_STDERR));
	if (want_replay && p->dropped)
		tlv_put_u64(&b, T_DROPPED, p->dropped);
	client_send(c, P_OK, 0, h->stream, b.data, b.len);
	buf_release(&b);
	if (want_replay) {
		replay(p, c, h->stream);
		p->dropped = 0;
	}
	sup_touch();
	if (p->main)
		c->wants_final = true;
	if (p->exited) {
		/* a retained kept process: its end, then it is forgotten */
		client_send(c, P_EXIT, 0, h->stream, p->exit_tlv.data, p->exit_tlv.len);
		if (!p->main)
			proc_remove(p);
		return;
	}
	proc_add_sink(p, c, h->stream, flags);
}

void proc_list_request(struct client *c, const struct proto_hdr *h)
{
	struct buf b = BUF_INIT;
	for (struct sproc *p = sup.procs; p; p = p->next) {
		if (!p->started && !p->exited)
			continue;
		if (b.len > PROTO_MAX_PAYLOAD - 8192)
			break;
		struct proto_procinfo pi = {
			.pid = p->pid, .tag = p->tag, .cwd = p->cwd, .argv = p->argv, .tty = p->tty,
			.stdin_open = p->stdin_open, .keep = p->keep, .main = p->main,
			.running = !p->exited && !(p->main && sup.main_exited), .exit_code = p->exit_code,
			.reason = p->reason, .started_at = p->started_at,
			.attached = live_sinks(p, ~0u) + (p->owner ? 1 : 0), .buffered = p->ring.len,
		};
		/* a huge argv is listed by its first arguments only */
		size_t mark = b.len;
		proto_procinfo_encode(&b, &pi);
		if (b.len - mark > 16384) {
			b.len = mark;
			char *short_argv[] = { p->argv && p->argv[0] ? p->argv[0] : (char *)"", NULL };
			pi.argv = short_argv;
			proto_procinfo_encode(&b, &pi);
		}
	}
	client_send(c, P_PROCS, 0, h->stream, b.data, b.len);
	buf_release(&b);
}

void procs_client_left(struct client *c, bool detach_all)
{
	for (struct sproc *p = sup.procs; p; p = p->next) {
		if (p->starter == c)
			p->starter = NULL;
		for (size_t i = 0; i < p->n_segs; i++)
			if (p->segs[i].c == c)
				p->segs[i].c = NULL;
		bool had_sink = false, had_stdin = false;
		for (struct sink *s = p->sinks; s; s = s->next) {
			if (s->c != c)
				continue;
			had_sink = true;
			had_stdin |= (s->flags & ATTACH_STDIN) != 0;
			s->c = NULL;
		}
		if (had_sink)
			schedule_sweep();
		/* a client that vanished from the main process's stdin closes it,
		 * as a closed pipe would (not on a terminal: that is a hangup) */
		if (had_stdin && p->main && !p->tty && !detach_all && sup.main_started && !sup.main_exited) {
			p->in_eof = true;
			stdin_pump(p);
		}
		if (p->owner == c) {
			/* its terminal hung up */
			if (!p->exited && !detach_all) {
				uint8_t s[4];
				put_be32(s, SIGHUP);
				agent_send(P_SIGNAL, 1, p->agent_stream, s, 4);
			}
			if (detach_all)
				p->keep = true;
			orphan(p);
		} else if (had_sink) {
			proc_credit(p);
		}
	}
}
