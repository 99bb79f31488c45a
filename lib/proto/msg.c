/* msg.c: encoding and decoding of structured payloads.
 *
 * Decoders treat their input as hostile: every length is checked against
 * the remaining payload by tlv_next(), strings with NUL bytes are refused,
 * counts are capped, nesting is bounded, and unknown tags are skipped (so a
 * newer peer may add fields).
 */
#include <string.h>

#include "linux/rootless.h"
#include "msg.h"

/* Decoders release what they built on failure: callers never see a
 * half-filled struct. */
#define DECODE_FAIL(msg)        \
	do {                    \
		*why = (msg);   \
		goto fail;      \
	} while (0)

static void put_strv(struct buf *b, uint16_t tag, char *const *v)
{
	for (; v && *v; v++)
		tlv_put_str(b, tag, *v);
}

int proto_proc_encode(struct buf *b, const struct proto_proc *p)
{
	put_strv(b, T_ARG, p->argv);
	put_strv(b, T_ENV, p->env);
	tlv_put_str(b, T_CWD, p->cwd);
	tlv_put_str(b, T_USER, p->user);
	tlv_put_flag(b, T_TTY, p->tty);
	tlv_put_flag(b, T_STDIN, p->open_stdin);
	tlv_put_flag(b, T_MAIN, p->main);
	if (p->rows || p->cols) {
		tlv_put_u64(b, T_ROWS, p->rows);
		tlv_put_u64(b, T_COLS, p->cols);
	}
	if (p->has_caps) {
		tlv_put_u64(b, T_CAP_BOUNDING, p->cap_bounding);
		tlv_put_u64(b, T_CAP_EFFECTIVE, p->cap_effective);
		tlv_put_u64(b, T_CAP_PERMITTED, p->cap_permitted);
		tlv_put_u64(b, T_CAP_INHERITABLE, p->cap_inheritable);
		tlv_put_u64(b, T_CAP_AMBIENT, p->cap_ambient);
	}
	tlv_put_flag(b, T_NO_NEW_PRIVS, p->no_new_privs);
	for (size_t i = 0; i < p->n_rlimits; i++) {
		uint8_t r[20];
		put_be32(r, (uint32_t)p->rlimits[i].resource);
		put_be32(r + 4, (uint32_t)(p->rlimits[i].soft >> 32));
		put_be32(r + 8, (uint32_t)p->rlimits[i].soft);
		put_be32(r + 12, (uint32_t)(p->rlimits[i].hard >> 32));
		put_be32(r + 16, (uint32_t)p->rlimits[i].hard);
		tlv_put(b, T_RLIMIT, r, sizeof(r));
	}
	if (p->seccomp)
		tlv_put(b, T_SECCOMP, p->seccomp, p->seccomp_len);
	tlv_put_flag(b, T_NO_SECCOMP, p->no_seccomp);
	if (p->timeout_ms > 0)
		tlv_put_i64(b, T_TIMEOUT_MS, p->timeout_ms);
	if (p->kill_grace_ms > 0)
		tlv_put_i64(b, T_KILL_GRACE_MS, p->kill_grace_ms);
	if (p->window)
		tlv_put_u64(b, T_WINDOW, p->window);
	if (p->umask >= 0)
		tlv_put_i64(b, T_UMASK, p->umask);
	tlv_put_str(b, T_TAG, p->tag);
	tlv_put_flag(b, T_KEEP, p->keep);
	return 0;
}

static int push_str(char ***v, size_t *n, const uint8_t *val, uint32_t len)
{
	if (*n >= PROTO_MAX_ARGS)
		return -1;
	char *s = tlv_str(val, len);
	if (!s)
		return -1;
	*v = strv_push_take(*v, s);
	(*n)++;
	return 0;
}

static int get_str(char **dst, const uint8_t *val, uint32_t len)
{
	char *s = tlv_str(val, len);
	if (!s)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

/* The items of a process spec that set its privileges and limits. */
static int proc_decode_security(struct proto_proc *out, uint16_t tag, const uint8_t *val, uint32_t len,
				const char **why)
{
	uint64_t u;
	switch (tag) {
	case T_RLIMIT:
		if (len != 20 || out->n_rlimits >= PROTO_MAX_RLIMITS)
			DECODE_FAIL("bad rlimit");
		out->rlimits[out->n_rlimits].resource = (int)get_be32(val);
		out->rlimits[out->n_rlimits].soft = (uint64_t)get_be32(val + 4) << 32 | get_be32(val + 8);
		out->rlimits[out->n_rlimits].hard = (uint64_t)get_be32(val + 12) << 32 | get_be32(val + 16);
		out->n_rlimits++;
		return 0;
	case T_SECCOMP:
		if (len == 0 || len % 8 != 0 || len > 4096 * 8)
			DECODE_FAIL("bad seccomp program");
		free(out->seccomp);
		out->seccomp = xmalloc(len);
		memcpy(out->seccomp, val, len);
		out->seccomp_len = len;
		return 0;
	default:
		if (tlv_u64(val, len, &u) < 0)
			DECODE_FAIL("bad capability set");
		out->has_caps = true;
		if (tag == T_CAP_BOUNDING) out->cap_bounding = u;
		else if (tag == T_CAP_EFFECTIVE) out->cap_effective = u;
		else if (tag == T_CAP_PERMITTED) out->cap_permitted = u;
		else if (tag == T_CAP_INHERITABLE) out->cap_inheritable = u;
		else out->cap_ambient = u;
		return 0;
	}
fail:
	return -1;
}

int proto_proc_decode(const uint8_t *p, size_t n, struct proto_proc *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	out->umask = -1;
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	size_t nargs = 0, nenv = 0;
	int r;
	uint64_t u;
	while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
		switch (tag) {
		case T_ARG:
			if (push_str(&out->argv, &nargs, val, len) < 0)
				DECODE_FAIL("bad or too many arguments");
			break;
		case T_ENV:
			if (push_str(&out->env, &nenv, val, len) < 0)
				DECODE_FAIL("bad or too many environment entries");
			break;
		case T_CWD:
			if (get_str(&out->cwd, val, len) < 0)
				DECODE_FAIL("bad working directory");
			break;
		case T_USER:
			if (get_str(&out->user, val, len) < 0)
				DECODE_FAIL("bad user");
			break;
		case T_TTY: out->tty = true; break;
		case T_STDIN: out->open_stdin = true; break;
		case T_MAIN: out->main = true; break;
		case T_NO_NEW_PRIVS: out->no_new_privs = true; break;
		case T_NO_SECCOMP: out->no_seccomp = true; break;
		case T_ROWS:
		case T_COLS:
			if (tlv_u64(val, len, &u) < 0 || u > 0xffff)
				DECODE_FAIL("bad terminal size");
			if (tag == T_ROWS)
				out->rows = (uint16_t)u;
			else
				out->cols = (uint16_t)u;
			break;
		case T_CAP_BOUNDING:
		case T_CAP_EFFECTIVE:
		case T_CAP_PERMITTED:
		case T_CAP_INHERITABLE:
		case T_CAP_AMBIENT:
		case T_RLIMIT:
		case T_SECCOMP:
			if (proc_decode_security(out, tag, val, len, why) < 0)
				goto fail;
			break;
		case T_TIMEOUT_MS:
			if (tlv_i64(val, len, &out->timeout_ms) < 0 || out->timeout_ms < 0)
				DECODE_FAIL("bad timeout");
			break;
		case T_KILL_GRACE_MS:
			if (tlv_i64(val, len, &out->kill_grace_ms) < 0 || out->kill_grace_ms < 0)
				DECODE_FAIL("bad kill grace");
			break;
		case T_WINDOW:
			if (tlv_u64(val, len, &u) < 0 || u == 0 || u > (64u << 20))
				DECODE_FAIL("bad window");
			out->window = (uint32_t)u;
			break;
		case T_UMASK:
			if (tlv_i64(val, len, &out->umask) < 0 || out->umask < 0 || out->umask > 0777)
				DECODE_FAIL("bad umask");
			break;
		case T_TAG:
			if (len == 0 || len > 128 || get_str(&out->tag, val, len) < 0)
				DECODE_FAIL("bad tag");
			break;
		case T_KEEP: out->keep = true; break;
		default:
			break;
		}
	}
	if (r < 0)
		DECODE_FAIL("truncated item");
	return 0;
fail:
	proto_proc_release(out);
	return -1;
}

void proto_proc_release(struct proto_proc *p)
{
	strv_free(p->argv);
	strv_free(p->env);
	free(p->cwd);
	free(p->user);
	free(p->seccomp);
	free(p->tag);
	memset(p, 0, sizeof(*p));
	p->umask = -1;
}

void proto_exit_encode(struct buf *b, const struct proto_exit *e)
{
	tlv_put_i64(b, T_EXIT_CODE, e->exit_code);
	if (e->signal)
		tlv_put_i64(b, T_SIGNAL, e->signal);
	if (e->code)
		tlv_put_i64(b, T_CODE, e->code);
	tlv_put_str(b, T_MESSAGE, e->message);
	tlv_put_str(b, T_REASON, e->reason);
	if (e->started_at)
		tlv_put_i64(b, T_STARTED_AT, e->started_at);
	if (e->finished_at)
		tlv_put_i64(b, T_FINISHED_AT, e->finished_at);
	tlv_put_flag(b, T_OOM, e->oom);
}

int proto_exit_decode(const uint8_t *p, size_t n, struct proto_exit *out)
{
	memset(out, 0, sizeof(*out));
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	int r;
	while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
		int bad = 0;
		switch (tag) {
		case T_EXIT_CODE: bad = tlv_i64(val, len, &out->exit_code); break;
		case T_SIGNAL: bad = tlv_i64(val, len, &out->signal); break;
		case T_CODE: bad = tlv_i64(val, len, &out->code); break;
		case T_STARTED_AT: bad = tlv_i64(val, len, &out->started_at); break;
		case T_FINISHED_AT: bad = tlv_i64(val, len, &out->finished_at); break;
		case T_MESSAGE: bad = get_str(&out->message, val, len); break;
		case T_REASON: bad = get_str(&out->reason, val, len); break;
		case T_OOM: out->oom = true; break;
		default: break;
		}
		if (bad) {
			proto_exit_release(out);
			return -1;
		}
	}
	if (r < 0) {
		proto_exit_release(out);
		return -1;
	}
	return 0;
}

void proto_exit_release(struct proto_exit *e)
{
	free(e->message);
	free(e->reason);
	memset(e, 0, sizeof(*e));
}

static void put_mount(struct buf *b, const struct proto_mount *m)
{
	size_t mark = tlv_begin(b, T_MOUNT);
	tlv_put_str(b, T_M_SOURCE, m->source);
	tlv_put_str(b, T_M_TARGET, m->target);
	tlv_put_str(b, T_M_FSTYPE, m->fstype);
	tlv_put_str(b, T_M_DATA, m->data);
	tlv_put_u64(b, T_M_FLAGS, m->flags);
	tlv_put_u64(b, T_M_PROPAGATION, m->propagation);
	tlv_put_flag(b, T_M_BIND, m->bind);
	tlv_put_flag(b, T_M_RECURSIVE, m->recursive);
	tlv_put_flag(b, T_M_FILE, m->file);
	tlv_put_flag(b, T_M_IDMAP, m->idmap);
	tlv_end(b, mark);
}

static int get_mount(const uint8_t *p, size_t n, struct proto_mount *m)
{
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	int r;
	while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
		int bad = 0;
		switch (tag) {
		case T_M_SOURCE: bad = get_str(&m->source, val, len); break;
		case T_M_TARGET: bad = get_str(&m->target, val, len); break;
		case T_M_FSTYPE: bad = get_str(&m->fstype, val, len); break;
		case T_M_DATA: bad = get_str(&m->data, val, len); break;
		case T_M_FLAGS: bad = tlv_u64(val, len, &m->flags); break;
		case T_M_PROPAGATION: bad = tlv_u64(val, len, &m->propagation); break;
		case T_M_BIND: m->bind = true; break;
		case T_M_RECURSIVE: m->recursive = true; break;
		case T_M_FILE: m->file = true; break;
		case T_M_IDMAP: m->idmap = true; break;
		default: break;
		}
		if (bad)
			return -1;
	}
	return r < 0 || !m->target ? -1 : 0;
}

int proto_sandbox_encode(struct buf *b, const struct proto_sandbox *s)
{
	tlv_put_str(b, T_ID, s->id);
	tlv_put_str(b, T_NAME, s->name);
	tlv_put_str(b, T_ROOT_DIR, s->root_dir);
	tlv_put_str(b, T_RUN_DIR, s->run_dir);
	tlv_put_str(b, T_SANDBOX_DIR, s->sandbox_dir);
	tlv_put_str(b, T_ROOTFS, s->rootfs);
	tlv_put_str(b, T_OVERLAY_DATA, s->overlay_data);
	tlv_put_str(b, T_OVERLAY_DIR, s->overlay_dir);
	tlv_put_flag(b, T_READONLY, s->readonly);
	tlv_put_str(b, T_HOSTNAME, s->hostname);
	for (size_t i = 0; i < s->n_mounts; i++)
		put_mount(b, &s->mounts[i]);
	tlv_put_str(b, T_HOSTS, s->hosts);
	tlv_put_str(b, T_RESOLV, s->resolv);
	tlv_put_i64(b, T_SHM_SIZE, s->shm_size);
	tlv_put_str(b, T_CG_NAME, s->cg_name);
	tlv_put_i64(b, T_CG_MEMORY, s->cg_memory);
	tlv_put_i64(b, T_CG_SWAP, s->cg_swap);
	tlv_put_i64(b, T_CG_CPU_QUOTA, s->cg_cpu_quota);
	tlv_put_i64(b, T_CG_CPU_PERIOD, s->cg_cpu_period);
	tlv_put_i64(b, T_CG_CPU_SHARES, s->cg_cpu_shares);
	tlv_put_i64(b, T_CG_PIDS, s->cg_pids);
	size_t mark = tlv_begin(b, T_PROC);
	proto_proc_encode(b, &s->proc);
	tlv_end(b, mark);
	tlv_put_i64(b, T_STOP_SIGNAL, s->stop_signal);
	tlv_put_i64(b, T_LOG_MAX_SIZE, s->log_max_size);
	tlv_put_i64(b, T_LOG_MAX_FILES, s->log_max_files);
	tlv_put_str(b, T_AGENT_PATH, s->agent_path);
	tlv_put_str(b, T_CAPSA_PATH, s->capsa_path);
	tlv_put_flag(b, T_CREATOR_FINALIZES, s->creator_finalizes);
	tlv_put_u64(b, T_CREATOR_ATTACH, s->creator_attach);
	tlv_put_i64(b, T_IDLE_TIMEOUT_MS, s->idle_timeout_ms);
	tlv_put_i64(b, T_DEADLINE_MS, s->deadline_ms);
	for (size_t i = 0; i < s->n_ports; i++)
		proto_port_encode(b, T_PUBLISH, &s->ports[i]);
	tlv_put_flag(b, T_FRAMED, s->framed);
	tlv_put_str(b, T_DISK_IMAGE, s->disk_image);
	tlv_put_str(b, T_DISK_MOUNT, s->disk_mount);
	tlv_put_i64(b, T_DISK_SIZE, s->disk_size);
	tlv_put_i64(b, T_PTY_MAX, s->pty_max);
	if (s->net_mode)
		tlv_put_i64(b, T_NETWORK, s->net_mode);
	if (s->userns_count) {
		tlv_put_u64(b, T_USERNS_UID, s->userns_uid);
		tlv_put_u64(b, T_USERNS_GID, s->userns_gid);
		tlv_put_u64(b, T_USERNS_COUNT, s->userns_count);
	}
	return 0;
}

int proto_sandbox_decode(const uint8_t *p, size_t n, struct proto_sandbox *s, const char **why)
{
	memset(s, 0, sizeof(*s));
	s->proc.umask = -1;
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	int r;
	while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
		int bad = 0;
		switch (tag) {
		case T_ID: bad = get_str(&s->id, val, len); break;
		case T_NAME: bad = get_str(&s->name, val, len); break;
		case T_ROOT_DIR: bad = get_str(&s->root_dir, val, len); break;
		case T_RUN_DIR: bad = get_str(&s->run_dir, val, len); break;
		case T_SANDBOX_DIR: bad = get_str(&s->sandbox_dir, val, len); break;
		case T_ROOTFS: bad = get_str(&s->rootfs, val, len); break;
		case T_OVERLAY_DATA: bad = get_str(&s->overlay_data, val, len); break;
		case T_OVERLAY_DIR: bad = get_str(&s->overlay_dir, val, len); break;
		case T_READONLY: s->readonly = true; break;
		case T_HOSTNAME: bad = get_str(&s->hostname, val, len); break;
		case T_MOUNT:
			if (s->n_mounts >= PROTO_MAX_MOUNTS)
				DECODE_FAIL("too many mounts");
			s->mounts = xrealloc(s->mounts, (s->n_mounts + 1) * sizeof(*s->mounts));
			memset(&s->mounts[s->n_mounts], 0, sizeof(*s->mounts));
			bad = get_mount(val, len, &s->mounts[s->n_mounts++]);
			break;
		case T_HOSTS: bad = get_str(&s->hosts, val, len); break;
		case T_RESOLV: bad = get_str(&s->resolv, val, len); break;
		case T_SHM_SIZE: bad = tlv_i64(val, len, &s->shm_size); break;
		case T_CG_NAME: bad = get_str(&s->cg_name, val, len); break;
		case T_CG_MEMORY: bad = tlv_i64(val, len, &s->cg_memory); break;
		case T_CG_SWAP: bad = tlv_i64(val, len, &s->cg_swap); break;
		case T_CG_CPU_QUOTA: bad = tlv_i64(val, len, &s->cg_cpu_quota); break;
		case T_CG_CPU_PERIOD: bad = tlv_i64(val, len, &s->cg_cpu_period); break;
		case T_CG_CPU_SHARES: bad = tlv_i64(val, len, &s->cg_cpu_shares); break;
		case T_CG_PIDS: bad = tlv_i64(val, len, &s->cg_pids); break;
		case T_PROC:
			proto_proc_release(&s->proc);
			if (proto_proc_decode(val, len, &s->proc, why) < 0)
				goto fail;
			break;
		case T_STOP_SIGNAL: bad = tlv_i64(val, len, &s->stop_signal); break;
		case T_LOG_MAX_SIZE: bad = tlv_i64(val, len, &s->log_max_size); break;
		case T_LOG_MAX_FILES: bad = tlv_i64(val, len, &s->log_max_files); break;
		case T_AGENT_PATH: bad = get_str(&s->agent_path, val, len); break;
		case T_CAPSA_PATH: bad = get_str(&s->capsa_path, val, len); break;
		case T_CREATOR_FINALIZES: s->creator_finalizes = true; break;
		case T_CREATOR_ATTACH: bad = tlv_u64(val, len, &s->creator_attach); break;
		case T_IDLE_TIMEOUT_MS: bad = tlv_i64(val, len, &s->idle_timeout_ms); break;
		case T_DEADLINE_MS: bad = tlv_i64(val, len, &s->deadline_ms); break;
		case T_FRAMED: s->framed = true; break;
		case T_DISK_IMAGE: bad = get_str(&s->disk_image, val, len); break;
		case T_DISK_MOUNT: bad = get_str(&s->disk_mount, val, len); break;
		case T_DISK_SIZE: bad = tlv_i64(val, len, &s->disk_size); break;
		case T_PTY_MAX: bad = tlv_i64(val, len, &s->pty_max); break;
		case T_NETWORK:
			bad = tlv_i64(val, len, &s->net_mode);
			if (!bad && (s->net_mode < PROTO_NET_OWN || s->net_mode > PROTO_NET_HOST))
				DECODE_FAIL("unknown network mode");
			break;
		case T_USERNS_UID: bad = tlv_u64(val, len, &s->userns_uid); break;
		case T_USERNS_GID: bad = tlv_u64(val, len, &s->userns_gid); break;
		case T_USERNS_COUNT: bad = tlv_u64(val, len, &s->userns_count); break;
		case T_PUBLISH:
			if (s->n_ports >= PROTO_MAX_PORTS)
				DECODE_FAIL("too many published ports");
			s->ports = xrealloc(s->ports, (s->n_ports + 1) * sizeof(*s->ports));
			bad = proto_port_decode(val, len, &s->ports[s->n_ports]);
			if (!bad)
				s->n_ports++;
			break;
		default: break;
		}
		if (bad)
			DECODE_FAIL("malformed sandbox spec item");
	}
	if (r < 0)
		DECODE_FAIL("truncated sandbox spec");
	if (!s->id || !s->run_dir || !s->rootfs || !s->proc.argv || !s->agent_path)
		DECODE_FAIL("sandbox spec lacks id, run dir, rootfs, command or agent");
	/* a map must not reach host root nor wrap around; in rootless mode
	 * (the decoder is in the user's namespace) id 0 is the user, and the
	 * sandbox's namespace maps the user's ids 1:1 from 0 */
	bool zero_ok = linux_rootless();
	if (s->userns_count && (s->userns_count > UINT32_MAX || (!zero_ok && (s->userns_uid == 0 || s->userns_gid == 0)) ||
				s->userns_uid + s->userns_count > UINT32_MAX ||
				s->userns_gid + s->userns_count > UINT32_MAX))
		DECODE_FAIL("bad user namespace range");
	return 0;
fail:
	proto_sandbox_release(s);
	return -1;
}

void proto_sandbox_release(struct proto_sandbox *s)
{
	free(s->id);
	free(s->name);
	free(s->root_dir);
	free(s->run_dir);
	free(s->sandbox_dir);
	free(s->rootfs);
	free(s->overlay_data);
	free(s->overlay_dir);
	free(s->hostname);
	for (size_t i = 0; i < s->n_mounts; i++) {
		free(s->mounts[i].source);
		free(s->mounts[i].target);
		free(s->mounts[i].fstype);
		free(s->mounts[i].data);
	}
	free(s->mounts);
	free(s->hosts);
	free(s->resolv);
	free(s->cg_name);
	proto_proc_release(&s->proc);
	free(s->agent_path);
	free(s->capsa_path);
	free(s->disk_image);
	free(s->disk_mount);
	for (size_t i = 0; i < s->n_ports; i++)
		proto_port_release(&s->ports[i]);
	free(s->ports);
	memset(s, 0, sizeof(*s));
}

void proto_error_encode(struct buf *b, int code, const char *msg)
{
	tlv_put_i64(b, T_CODE, code);
	tlv_put_str(b, T_MESSAGE, msg);
}

int proto_error_decode(const uint8_t *p, size_t n, int *code, char **msg)
{
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	int r;
	*code = 0;
	*msg = NULL;
	while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
		int64_t v;
		if (tag == T_CODE && tlv_i64(val, len, &v) == 0)
			*code = (int)v;
		else if (tag == T_MESSAGE && !*msg)
			*msg = tlv_str(val, len);
	}
	if (r < 0) {
		free(*msg);
		*msg = NULL;
		return -1;
	}
	if (!*msg)
		*msg = xstrdup("unspecified error");
	return 0;
}

void proto_port_encode(struct buf *b, uint16_t tag, const struct proto_port *p)
{
	size_t mark = tlv_begin(b, tag);
	tlv_put_str(b, T_HOST_IP, p->host_ip);
	tlv_put_u64(b, T_HOST_PORT, p->host_port);
	tlv_put_u64(b, T_PORT, p->port);
	if (p->count)
		tlv_put_u64(b, T_COUNT, p->count);
	if (p->rx)
		tlv_put_u64(b, T_RX, p->rx);
	if (p->tx)
		tlv_put_u64(b, T_TX, p->tx);
	tlv_end(b, mark);
}

int proto_port_decode(const uint8_t *p, size_t n, struct proto_port *out)
{
	memset(out, 0, sizeof(*out));
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	int r;
	uint64_t u;
	while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
		int bad = 0;
		switch (tag) {
		case T_HOST_IP: bad = len > 63 || get_str(&out->host_ip, val, len); break;
		case T_HOST_PORT:
		case T_PORT:
			bad = tlv_u64(val, len, &u) < 0 || u > 65535;
			if (!bad && tag == T_PORT)
				out->port = (uint16_t)u;
			else if (!bad)
				out->host_port = (uint16_t)u;
			break;
		case T_COUNT: bad = tlv_u64(val, len, &out->count); break;
		case T_RX: bad = tlv_u64(val, len, &out->rx); break;
		case T_TX: bad = tlv_u64(val, len, &out->tx); break;
		default: break;
		}
		if (bad) {
			proto_port_release(out);
			return -1;
		}
	}
	if (r < 0 || out->port == 0) {
		proto_port_release(out);
		return -1;
	}
	return 0;
}

void proto_port_release(struct proto_port *p)
{
	free(p->host_ip);
	memset(p, 0, sizeof(*p));
}

void proto_fileop_encode(struct buf *b, const struct proto_fileop *o)
{
	tlv_put_u64(b, T_OP, (uint64_t)o->op);
	tlv_put_str(b, T_PATH, o->path);
	tlv_put_str(b, T_PATH2, o->path2);
	tlv_put_str(b, T_USER, o->user);
	tlv_put_str(b, T_NAME, o->name);
	if (o->mode >= 0)
		tlv_put_i64(b, T_MODE, o->mode);
	if (o->flags)
		tlv_put_u64(b, T_FLAGS, o->flags);
	if (o->depth)
		tlv_put_i64(b, T_DEPTH, o->depth);
	if (o->max)
		tlv_put_i64(b, T_MAX, o->max);
}

/* Paths are bounded (PATH_MAX) and never empty. */
static int get_path(char **dst, const uint8_t *val, uint32_t len)
{
	if (len == 0 || len >= 4096)
		return -1;
	return get_str(dst, val, len);
}

int proto_fileop_decode(const uint8_t *p, size_t n, struct proto_fileop *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	out->mode = -1;
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	int r;
	uint64_t u;
	while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
		switch (tag) {
		case T_OP:
			if (tlv_u64(val, len, &u) < 0 || u < FOP_STAT || u > FOP_WATCH)
				DECODE_FAIL("bad operation");
			out->op = (int)u;
			break;
		case T_PATH:
			if (get_path(&out->path, val, len) < 0)
				DECODE_FAIL("bad path");
			break;
		case T_PATH2:
			if (get_path(&out->path2, val, len) < 0)
				DECODE_FAIL("bad second path");
			break;
		case T_USER:
			if (len > 256 || get_str(&out->user, val, len) < 0)
				DECODE_FAIL("bad user");
			break;
		case T_NAME:
			if (get_path(&out->name, val, len) < 0)
				DECODE_FAIL("bad name");
			break;
		case T_MODE:
			if (tlv_i64(val, len, &out->mode) < 0 || out->mode < 0 || out->mode > 07777)
				DECODE_FAIL("bad mode");
			break;
		case T_FLAGS:
			if (tlv_u64(val, len, &out->flags) < 0)
				DECODE_FAIL("bad flags");
			break;
		case T_DEPTH:
			if (tlv_i64(val, len, &out->depth) < 0 || out->depth < 0 || out->depth > 4096)
				DECODE_FAIL("bad depth");
			break;
		case T_MAX:
			if (tlv_i64(val, len, &out->max) < 0 || out->max < 0)
				DECODE_FAIL("bad size cap");
			break;
		default:
			break;
		}
	}
	if (r < 0)
		DECODE_FAIL("truncated item");
	if (!out->op || !out->path)
		DECODE_FAIL("file operation lacks an operation or a path");
	if (out->op == FOP_RENAME && !out->path2)
		DECODE_FAIL("rename lacks a destination");
	return 0;
fail:
	proto_fileop_release(out);
	return -1;
}

void proto_fileop_release(struct proto_fileop *o)
{
	free(o->path);
	free(o->path2);
	free(o->user);
	free(o->name);
	memset(o, 0, sizeof(*o));
	o->mode = -1;
}

void proto_finfo_encode(struct buf *b, const struct proto_finfo *f)
{
	size_t mark = tlv_begin(b, T_ENTRY);
	tlv_put_str(b, T_NAME, f->name);
	tlv_put_str(b, T_PATH, f->path);
	tlv_put_u64(b, T_TYPE, (uint64_t)f->type);
	tlv_put_i64(b, T_SIZE, f->size);
	tlv_put_u64(b, T_MODE, f->mode);
	tlv_put_u64(b, T_UID, f->uid);
	tlv_put_u64(b, T_GID, f->gid);
	tlv_put_str(b, T_OWNER, f->owner);
	tlv_put_str(b, T_GROUPNAME, f->group);
	tlv_put_i64(b, T_MTIME, f->mtime_ms);
	tlv_put_str(b, T_LINK, f->link);
	if (f->event >= 0)
		tlv_put_u64(b, T_EVENT, (uint64_t)f->event);
	tlv_put_flag(b, T_IS_DIR, f->is_dir);
	tlv_end(b, mark);
}

int proto_finfo_decode(const uint8_t *p, size_t n, struct proto_finfo *out)
{
	memset(out, 0, sizeof(*out));
	out->event = -1;
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	int r;
	uint64_t u;
	while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
		int bad = 0;
		switch (tag) {
		case T_NAME: bad = get_str(&out->name, val, len); break;
		case T_PATH: bad = get_str(&out->path, val, len); break;
		case T_OWNER: bad = get_str(&out->owner, val, len); break;
		case T_GROUPNAME: bad = get_str(&out->group, val, len); break;
		case T_LINK: bad = get_str(&out->link, val, len); break;
		case T_TYPE:
			bad = tlv_u64(val, len, &u) < 0 || u > 3;
			out->type = (int)u;
			break;
		case T_SIZE: bad = tlv_i64(val, len, &out->size); break;
		case T_MTIME: bad = tlv_i64(val, len, &out->mtime_ms); break;
		case T_MODE:
		case T_UID:
		case T_GID:
			bad = tlv_u64(val, len, &u) < 0 || u > UINT32_MAX;
			if (tag == T_MODE)
				out->mode = (uint32_t)u;
			else if (tag == T_UID)
				out->uid = (uint32_t)u;
			else
				out->gid = (uint32_t)u;
			break;
		case T_EVENT:
			bad = tlv_u64(val, len, &u) < 0 || u > FEV_OVERFLOW;
			out->event = (int)u;
			break;
		case T_IS_DIR: out->is_dir = true; break;
		default: break;
		}
		if (bad) {
			proto_finfo_release(out);
			return -1;
		}
	}
	if (r < 0) {
		proto_finfo_release(out);
		return -1;
	}
	return 0;
}

void proto_finfo_release(struct proto_finfo *f)
{
	free(f->name);
	free(f->path);
	free(f->owner);
	free(f->group);
	free(f->link);
	memset(f, 0, sizeof(*f));
	f->event = -1;
}

void proto_procinfo_encode(struct buf *b, const struct proto_procinfo *p)
{
	size_t mark = tlv_begin(b, T_ENTRY);
	tlv_put_i64(b, T_PID, p->pid);
	tlv_put_str(b, T_TAG, p->tag);
	put_strv(b, T_ARG, p->argv);
	tlv_put_str(b, T_CWD, p->cwd);
	tlv_put_flag(b, T_TTY, p->tty);
	tlv_put_flag(b, T_STDIN, p->stdin_open);
	tlv_put_flag(b, T_KEEP, p->keep);
	tlv_put_flag(b, T_MAIN, p->main);
	tlv_put_flag(b, T_RUNNING, p->running);
	if (!p->running) {
		tlv_put_i64(b, T_EXIT_CODE, p->exit_code);
		tlv_put_str(b, T_REASON, p->reason);
	}
	tlv_put_i64(b, T_STARTED_AT, p->started_at);
	tlv_put_i64(b, T_ATTACHED, p->attached);
	tlv_put_i64(b, T_BUFFERED, p->buffered);
	tlv_end(b, mark);
}

int proto_procinfo_decode(const uint8_t *p, size_t n, struct proto_procinfo *out)
{
	memset(out, 0, sizeof(*out));
	struct tlv_iter it;
	tlv_iter_init(&it, p, n);
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	int r;
	size_t nargs = 0;
	while ((r = tlv_next(&it, &tag, &val, &len)) > 0) {
		int bad = 0;
		switch (tag) {
		case T_PID: bad = tlv_i64(val, len, &out->pid); break;
		case T_TAG: bad = get_str(&out->tag, val, len); break;
		case T_ARG: bad = push_str(&out->argv, &nargs, val, len); break;
		case T_CWD: bad = get_str(&out->cwd, val, len); break;
		case T_REASON: bad = get_str(&out->reason, val, len); break;
		case T_TTY: out->tty = true; break;
		case T_STDIN: out->stdin_open = true; break;
		case T_KEEP: out->keep = true; break;
		case T_MAIN: out->main = true; break;
		case T_RUNNING: out->running = true; break;
		case T_EXIT_CODE: bad = tlv_i64(val, len, &out->exit_code); break;
		case T_STARTED_AT: bad = tlv_i64(val, len, &out->started_at); break;
		case T_ATTACHED: bad = tlv_i64(val, len, &out->attached); break;
		case T_BUFFERED: bad = tlv_i64(val, len, &out->buffered); break;
		default: break;
		}
		if (bad) {
			proto_procinfo_release(out);
			return -1;
		}
	}
	if (r < 0) {
		proto_procinfo_release(out);
		return -1;
	}
	return 0;
}

void proto_procinfo_release(struct proto_procinfo *p)
{
	free(p->tag);
	free(p->cwd);
	free(p->reason);
	strv_free(p->argv);
	memset(p, 0, sizeof(*p));
}
