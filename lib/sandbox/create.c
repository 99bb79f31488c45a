/* create.c: from capsa_sandbox_opts to a running sandbox.
 *
 * Order matters for crash safety: the runtime directory and its lock exist
 * before the database row, so a row is never without a lock holder unless
 * its holder died (which reconciliation then sees); the row exists before
 * the supervisor, so a supervisor always has a row to report to.  Any
 * failure before READY undoes everything done so far.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsa/tunnel.h"
#include "image/image.h"
#include "linux/caps.h"
#include "linux/cgroup.h"
#include "linux/loopdisk.h"
#include "linux/proc.h"
#include "linux/rootless.h"
#include "linux/rootfs.h"
#include "linux/seccomp-profile.h"
#include "ledger.h"
#include "net/net.h"
#include "sandbox.h"
#include "userns.h"
#include "util/fs.h"
#include "util/paths.h"
#include "util/str.h"
#include "util/trace.h"

#define CPU_PERIOD_US 100000

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Compiling a profile costs milliseconds; the result depends only on the
 * profile text and the capability set, so it is cached in the store. */
static int seccomp_program(struct capsa_ctx *ctx, const char *profile, uint64_t caps, struct buf *bpf,
			   struct capsa_error **err)
{
	struct buf text = BUF_INIT;
	if (profile) {
		if (read_file_at(AT_FDCWD, profile, 1 << 20, &text, err) < 0)
			return error_wrap(err, "seccomp profile");
	}
	/* the version names the default profile: a change to it (v2: no uevent
	 * sockets) must not be served from an older cache entry */
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, "capsa-seccomp-v2", 16);
	h = fnv1a(h, &caps, sizeof(caps));
	h = fnv1a(h, text.data ? text.data : "default", text.data ? text.len : 7);
	char name[64];
	snprintf(name, sizeof(name), "seccomp/%016llx.bpf", (unsigned long long)h);
	if (read_file_at(ctx->root_fd, name, 1 << 20, bpf, NULL) == 0 && bpf->len > 0 && bpf->len % 8 == 0) {
		buf_release(&text);
		return 0;
	}
	bpf->len = 0;
	int rc = profile ? seccomp_profile_compile_json(text.data, text.len, caps, bpf, err)
			 : seccomp_profile_default(caps, bpf, err);
	buf_release(&text);
	if (rc < 0)
		return profile ? error_wrap(err, "seccomp profile %s", profile) : -1;
	mkdirat(ctx->root_fd, "seccomp", 0700);
	write_file_atomic_at(ctx->root_fd, name, bpf->data, bpf->len, 0600, false, NULL);
	return 0;
}

static bool path_clean(const char *p)
{
	if (p[0] != '/')
		return false;
	char **parts = strv_split(p, '/');
	bool ok = true;
	for (char **s = parts; *s; s++)
		if (strcmp(*s, "..") == 0)
			ok = false;
	strv_free(parts);
	return ok && !memchr(p, '\n', strlen(p));
}

static int build_mounts(const struct capsa_sandbox_opts *o, struct proto_sandbox *s, struct capsa_error **err)
{
	if (o->n_mounts > PROTO_MAX_MOUNTS - 16)
		return error_set(err, E2BIG, "too many mounts (%zu)", o->n_mounts);
	s->mounts = xcalloc(o->n_mounts + 1, sizeof(*s->mounts));
	for (size_t i = 0; i < o->n_mounts; i++) {
		const struct capsa_mount *m = &o->mounts[i];
		struct proto_mount *pm = &s->mounts[s->n_mounts];
		if (!m->target || !path_clean(m->target) || strcmp(m->target, "/") == 0)
			return error_set(err, EINVAL, "mount target '%s': must be an absolute path without '..' and not /",
					 m->target ? m->target : "");
		if (m->tmpfs) {
			int64_t size = m->tmpfs_size > 0 ? m->tmpfs_size
				       : o->memory > 0	 ? o->memory / 2
							 : 64LL << 20;
			pm->fstype = xstrdup("tmpfs");
			pm->source = xstrdup("tmpfs");
			pm->data = xasprintf("size=%lld,nr_inodes=%lld,mode=%o", (long long)size,
					     linux_tmpfs_nr_inodes(size), m->tmpfs_mode ? m->tmpfs_mode : 01777);
			pm->flags = MS_NOSUID | MS_NODEV | (m->readonly ? MS_RDONLY : 0);
		} else {
			if (!m->source || m->source[0] != '/')
				return error_set(err, EINVAL, "bind mount source '%s': must be an absolute host path",
						 m->source ? m->source : "");
			if (m->idmap && linux_rootless())
				return error_set(err, ENOTSUP,
						 "volume '%s': idmap is not available in rootless mode: the volume's files "
						 "show their owners through the user's own mapping",
						 m->source);
			if (m->idmap && o->userns == CAPSA_USERNS_HOST)
				return error_set(err, EINVAL, "volume '%s': idmap needs a user namespace (not --userns host)",
						 m->source);
			struct stat st;
			if (stat(m->source, &st) < 0)
				return error_sys(err, errno, "bind mount source '%s'", m->source);
			char *real = realpath(m->source, NULL);
			if (!real)
				return error_sys(err, errno, "bind mount source '%s'", m->source);
			pm->source = real;
			pm->bind = true;
			pm->recursive = true;
			pm->file = !S_ISDIR(st.st_mode);
			pm->flags = m->readonly ? MS_RDONLY : 0;
			pm->propagation = MS_PRIVATE | MS_REC;
			pm->idmap = m->idmap;
		}
		pm->target = xstrdup(m->target);
		s->n_mounts++;
	}
	return 0;
}

/* docker's rules for Entrypoint and Cmd */
static char **build_argv(const struct capsa_sandbox_opts *o, const struct image_config *ic)
{
	char **argv = NULL;
	char *const *entry = o->entrypoint_set ? o->entrypoint : ic->entrypoint;
	for (; entry && *entry; entry++)
		if (**entry || !o->entrypoint_set)
			argv = strv_push(argv, *entry);
	char *const *cmd = o->cmd ? o->cmd : (o->entrypoint_set ? NULL : ic->cmd);
	for (; cmd && *cmd; cmd++)
		argv = strv_push(argv, *cmd);
	return argv;
}

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static char *config_json(const struct capsa_sandbox_opts *o, const struct proto_sandbox *s)
{
	json_t *c = json_object();
	json_object_set_new(c, "image", json_string(o->image));
	json_object_set_new(c, "cmd", strv_json(s->proc.argv));
	json_object_set_new(c, "env", strv_json(s->proc.env));
	json_object_set_new(c, "workdir", json_string(s->proc.cwd ? s->proc.cwd : "/"));
	json_object_set_new(c, "user", json_string(s->proc.user ? s->proc.user : ""));
	json_object_set_new(c, "hostname", json_string(s->hostname));
	json_object_set_new(c, "memory", json_integer(o->memory));
	json_object_set_new(c, "cpus", json_real((double)o->cpus_milli / 1000.0));
	json_object_set_new(c, "pidsLimit", json_integer(s->cg_pids));
	json_object_set_new(c, "shmSize", json_integer(s->shm_size > 0 ? s->shm_size : 64LL << 20));
	json_object_set_new(c, "disk", json_integer(o->disk));
	json_object_set_new(c, "readOnly", json_boolean(o->readonly));
	json_object_set_new(c, "tty", json_boolean(o->tty));
	json_object_set_new(c, "interactive", json_boolean(o->interactive));
	char *caps = linux_caps_to_string(s->proc.cap_bounding);
	json_object_set_new(c, "capabilities", json_string(caps));
	free(caps);
	json_object_set_new(c, "seccomp", json_string(s->proc.no_seccomp ? "unconfined" : o->seccomp ? o->seccomp : "default"));
	json_t *mounts = json_array();
	for (size_t i = 0; i < s->n_mounts; i++)
		json_array_append_new(mounts, json_pack("{s:s, s:s, s:b}", "source", s->mounts[i].source, "target",
							 s->mounts[i].target, "readOnly",
							 (s->mounts[i].flags & MS_RDONLY) != 0));
	json_object_set_new(c, "mounts", mounts);
	json_t *ports = json_array();
	for (size_t i = 0; i < o->n_ports; i++)
		json_array_append_new(ports, json_pack("{s:s, s:i, s:i}", "hostIp",
						       o->ports[i].host_ip ? o->ports[i].host_ip : "127.0.0.1", "hostPort",
						       o->ports[i].host_port, "port", o->ports[i].port));
	json_object_set_new(c, "ports", ports);
	json_object_set_new(c, "idleTimeoutMs", json_integer(o->idle_timeout_ms));
	json_object_set_new(c, "userns", json_string(o->userns == CAPSA_USERNS_HOST ? "host" : "auto"));
	json_object_set_new(c, "timeoutMs", json_integer(o->timeout_ms));
	char *out = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	return out;
}

static char *labels_json(char **labels, struct capsa_error **err)
{
	json_t *l = json_object();
	for (char **p = labels; p && *p; p++) {
		const char *eq = strchr(*p, '=');
		_cleanup_free_ char *k = eq ? xstrndup(*p, (size_t)(eq - *p)) : xstrdup(*p);
		if (!*k) {
			json_decref(l);
			error_set(err, EINVAL, "label '%s': empty key", *p);
			return NULL;
		}
		json_object_set_new(l, k, json_string(eq ? eq + 1 : ""));
	}
	char *s = json_dumps(l, JSON_COMPACT);
	json_decref(l);
	return s;
}

/* docker's (25+) descriptor limit unless --ulimit nofile says otherwise:
 * 1024 soft, so select() users work and a runaway is bounded, 524288 hard
 * (or the host's, if lower: raising it needs CAP_SYS_RESOURCE). */
static void default_nofile(const struct capsa_sandbox_opts *o, struct proto_proc *p)
{
	for (size_t i = 0; i < o->n_rlimits; i++)
		if (o->rlimits[i].resource == RLIMIT_NOFILE)
			return;
	struct rlimit cur;
	uint64_t hard = 524288;
	if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max < hard)
		hard = cur.rlim_max;
	if (p->n_rlimits < PROTO_MAX_RLIMITS)
		p->rlimits[p->n_rlimits++] = (struct proto_rlimit){ RLIMIT_NOFILE, hard < 1024 ? hard : 1024, hard };
}

/* Rootless with no pids controller: the default pids limit becomes
 * RLIMIT_NPROC unless --ulimit nproc says otherwise.  The kernel counts it
 * per uid of a user namespace, and each sandbox has a nested one of its
 * own (docs/rootless.md): a per-sandbox bound, also under capsa serve. */
static void default_nproc(const struct capsa_sandbox_opts *o, struct proto_proc *p)
{
	for (size_t i = 0; i < o->n_rlimits; i++)
		if (o->rlimits[i].resource == RLIMIT_NPROC)
			return;
	struct rlimit cur;
	uint64_t n = CAPSA_DEFAULT_PIDS;
	if (getrlimit(RLIMIT_NPROC, &cur) == 0 && cur.rlim_max < n)
		n = cur.rlim_max;
	if (p->n_rlimits < PROTO_MAX_RLIMITS)
		p->rlimits[p->n_rlimits++] = (struct proto_rlimit){ RLIMIT_NPROC, n, n };
}

/* Everything the supervisor needs, from the options and the image. */
static int build_spec(struct capsa_ctx *ctx, const struct capsa_sandbox_opts *o, const struct image *img,
		      const char *id, const char *name, struct proto_sandbox *s, struct capsa_error **err)
{
	const struct image_config *ic = &img->config;
	s->id = xstrdup(id);
	s->name = xstrdup(name);
	s->root_dir = xstrdup(ctx->root);
	s->run_dir = sandbox_run_dir(ctx, id);
	s->sandbox_dir = sandbox_dir(ctx, id);
	s->rootfs = xasprintf("%s/rootfs", s->run_dir);
	if (o->disk > 0) {
		/* upper and work live in the disk image (loopdisk.c) */
		s->disk_image = xasprintf("%s/" LOOPDISK_IMAGE, s->sandbox_dir);
		s->disk_mount = xasprintf("%s/" LOOPDISK_MOUNT, s->sandbox_dir);
		s->disk_size = o->disk;
	}
	const char *top = s->disk_mount ? s->disk_mount : s->sandbox_dir;
	_cleanup_free_ char *upper = xasprintf("%s/upper", top);
	_cleanup_free_ char *work = xasprintf("%s/work", top);
	if (image_overlay_options(ctx, img, upper, work, &s->overlay_data, &s->overlay_dir, err) < 0)
		return -1;
	s->readonly = o->readonly;
	s->hostname = xstrndup(o->hostname ? o->hostname : id, o->hostname ? 64 : 12);
	if (build_mounts(o, s, err) < 0)
		return -1;
	struct buf resolv = BUF_INIT;
	if (read_file_at(AT_FDCWD, "/etc/resolv.conf", 64 * 1024, &resolv, NULL) == 0)
		s->resolv = buf_steal(&resolv);
	buf_release(&resolv);
	s->shm_size = o->shm_size;
	s->cg_name = ctx_sandbox_cgroup(ctx, id);
	s->cg_memory = o->memory;
	s->cg_swap = o->memory; /* memory+swap == memory: no swap */
	if (o->cpus_milli > 0) {
		s->cg_cpu_period = CPU_PERIOD_US;
		s->cg_cpu_quota = o->cpus_milli * CPU_PERIOD_US / 1000;
	}
	s->cg_pids = o->pids > 0 ? o->pids : o->pids < 0 ? 0 : CAPSA_DEFAULT_PIDS;
	/* rootless without a delegated pids controller: no default limit in
	 * a cgroup, RLIMIT_NPROC below instead (an explicit one was refused
	 * by sandbox_limits_validate) */
	bool nproc_default = ctx->rootless && o->pids == 0 && !linux_cgroup_has_controller("pids");
	if (nproc_default)
		s->cg_pids = 0;

	struct proto_proc *p = &s->proc;
	p->umask = -1;
	p->argv = build_argv(o, ic);
	if (!p->argv)
		return error_set(err, EINVAL, "no command given and image %s has neither Cmd nor Entrypoint", o->image);
	p->env = strv_dup(ic->env);
	for (char **e = o->env; e && *e; e++) {
		if (!strchr(*e, '=') || **e == '=')
			return error_set(err, EINVAL, "environment entry '%s': expected KEY=VALUE", *e);
		const char *eq = strchr(*e, '=');
		size_t kl = (size_t)(eq - *e);
		bool replaced = false;
		for (char **x = p->env; x && *x; x++)
			if (strncmp(*x, *e, kl + 1) == 0) {
				free(*x);
				*x = xstrdup(*e);
				replaced = true;
			}
		if (!replaced)
			p->env = strv_push(p->env, *e);
	}
	const char *wd = o->workdir ? o->workdir : ic->working_dir;
	if (wd && *wd) {
		if (wd[0] != '/')
			return error_set(err, EINVAL, "working directory '%s': must be an absolute path", wd);
		p->cwd = xstrdup(wd);
	}
	const char *user = o->user ? o->user : ic->user;
	if (user && *user)
		p->user = xstrdup(user);
	uint64_t caps = LINUX_CAPS_DEFAULT;
	if (linux_caps_adjust(&caps, o->cap_add, o->cap_drop, err) < 0)
		return -1;
	p->has_caps = true;
	p->cap_bounding = p->cap_effective = p->cap_permitted = caps;
	p->no_new_privs = true;
	if (o->seccomp && strcmp(o->seccomp, "unconfined") == 0) {
		p->no_seccomp = true;
	} else {
		struct buf bpf = BUF_INIT;
		if (seccomp_program(ctx, o->seccomp, caps, &bpf, err) < 0) {
			buf_release(&bpf);
			return -1;
		}
		p->seccomp_len = bpf.len;
		p->seccomp = (uint8_t *)buf_steal(&bpf);
	}
	if (o->n_rlimits > PROTO_MAX_RLIMITS)
		return error_set(err, E2BIG, "too many ulimits (%zu)", o->n_rlimits);
	for (size_t i = 0; i < o->n_rlimits; i++) {
		struct rlimit cur;
		if (getrlimit(o->rlimits[i].resource, &cur) == 0 && o->rlimits[i].hard > cur.rlim_max && geteuid() != 0)
			return error_set(err, EPERM, "ulimit hard limit %llu is above the current %llu",
					 (unsigned long long)o->rlimits[i].hard, (unsigned long long)cur.rlim_max);
		p->rlimits[p->n_rlimits++] = (struct proto_rlimit){ o->rlimits[i].resource, o->rlimits[i].soft,
								    o->rlimits[i].hard };
	}
	default_nofile(o, p);
	if (nproc_default)
		default_nproc(o, p);
	p->tty = o->tty;
	p->open_stdin = o->interactive;
	int stop = o->stop_signal;
	if (!stop && ic->stop_signal && parse_signal(ic->stop_signal, &stop, NULL) < 0)
		stop = SIGTERM;
	s->stop_signal = stop ? stop : SIGTERM;
	s->agent_path = capsa_helper_path("capsa-agent");
	if (!s->agent_path)
		return error_set(err, ENOENT, "capsa-agent not found next to capsa or in the libexec directory");
	s->capsa_path = capsa_helper_path("capsa-core");
	s->idle_timeout_ms = o->idle_timeout_ms;
	s->deadline_ms = o->timeout_ms > 0 ? now_ms() + o->timeout_ms : 0;
	s->log_max_size = o->log_max_size;
	s->log_max_files = o->log_max_files;
	s->ports = xcalloc(o->n_ports + 1, sizeof(*s->ports));
	for (size_t i = 0; i < o->n_ports; i++) {
		s->ports[i].host_ip = xstrdup(o->ports[i].host_ip ? o->ports[i].host_ip : "127.0.0.1");
		s->ports[i].host_port = o->ports[i].host_port;
		s->ports[i].port = o->ports[i].port;
	}
	s->n_ports = o->n_ports;
	/* test hook: exercise the framed paths a VM agent would use */
	s->framed = getenv("CAPSA_TEST_FRAMED") != NULL;
	return 0;
}

static int validate(const struct capsa_sandbox_opts *o, struct capsa_error **err)
{
	if (!o->image || !*o->image)
		return error_set(err, EINVAL, "no image given");
	if (o->userns != CAPSA_USERNS_AUTO && o->userns != CAPSA_USERNS_HOST)
		return error_set(err, EINVAL, "invalid user namespace mode %d", o->userns);
	if (o->name && !sandbox_name_valid(o->name))
		return error_set(err, EINVAL,
				 "invalid sandbox name '%.200s': use 1-128 of [a-zA-Z0-9_.-], starting with a letter or digit",
				 o->name);
	if (o->name && sandbox_name_like_id(o->name))
		return error_set(err, EINVAL,
				 "invalid sandbox name '%.200s': 12 to 64 hexadecimal digits read as a sandbox id", o->name);
	if (o->hostname && check_hostname(o->hostname, err) < 0)
		return -1;
	if (o->pids < -1 || o->pids > CAPSA_MAX_PIDS)
		return error_set(err, EINVAL, "invalid pids limit %lld: expected 1-%d, or -1 for none", (long long)o->pids,
				 CAPSA_MAX_PIDS);
	if (o->timeout_ms < 0 || o->idle_timeout_ms < 0)
		return error_set(err, EINVAL, "invalid timeout: must be positive");
	if (o->n_ports > PROTO_MAX_PORTS)
		return error_set(err, E2BIG, "too many published ports (%zu)", o->n_ports);
	for (size_t i = 0; i < o->n_ports; i++)
		if (o->ports[i].port == 0)
			return error_set(err, EINVAL, "invalid published port 0: expected 1-65535");
	if (o->log_max_size < 0 || (o->log_max_size > 0 && o->log_max_size < 4096) || o->log_max_files < 0 ||
	    o->log_max_files > 64)
		return error_set(err, EINVAL, "invalid log rotation: max size at least 4k, 1-64 files");
	return 0;
}

struct start_state {
	bool ready, failed, final;
	pid_t supervisor, init;
	int64_t started_at;
	int code;
	char *msg;
	struct proto_exit *e;
};

static int on_start_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *payload)
{
	(void)c;
	struct start_state *s = ctx;
	if (h->type == P_READY) {
		struct tlv_iter it;
		tlv_iter_init(&it, payload, h->len);
		uint16_t tag;
		const uint8_t *val;
		uint32_t len;
		while (tlv_next(&it, &tag, &val, &len) > 0) {
			uint64_t u;
			if (tag == T_SUPERVISOR_PID && tlv_u64(val, len, &u) == 0)
				s->supervisor = (pid_t)u;
			else if (tag == T_PID && tlv_u64(val, len, &u) == 0)
				s->init = (pid_t)u;
			else if (tag == T_STARTED_AT && tlv_u64(val, len, &u) == 0)
				s->started_at = (int64_t)u;
		}
		s->ready = true;
	} else if (h->type == P_ERROR && h->stream == 0) {
		proto_error_decode(payload, h->len, &s->code, &s->msg);
		s->failed = true;
	} else if (h->type == P_FINAL) {
		/* the main process could not start (or ended at once) */
		proto_exit_release(s->e);
		proto_exit_decode(payload, h->len, s->e);
		s->final = true;
	}
	return 0;
}

static int insert_row(struct capsa_ctx *ctx, const char *id, const char *name, const struct image *img,
		      const struct capsa_sandbox_opts *o, const char *config, const char *labels, const char *cgroup,
		      const struct net_plan *plan, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db || store_begin(db, err) < 0)
		return -1;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* admission: the ledger is read and the reservation inserted in this
	 * one write transaction (ledger.c) */
	if (ledger_admit(ctx, db, o, err) < 0)
		goto fail;
	if (store_prepare(db,
			  "INSERT INTO sandboxes(id, name, image_id, image_ref, state, config, labels, created_at, "
			  "auto_remove, deadline_at, idle_timeout_ms, reserved_cpus_milli, reserved_memory, "
			  "reserved_disk, reserved, boot_id, creator_pid, creator_start, cgroup) "
			  "VALUES(?,?,?,?,'creating',?,?,?,?,?,?,?,?,?,1,?,?,?,?)",
			  &st, err) < 0)
		goto fail;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, name);
	store_bind_text(st, 3, img->id);
	store_bind_text(st, 4, o->image);
	store_bind_text(st, 5, config);
	store_bind_text(st, 6, labels);
	sqlite3_bind_int64(st, 7, now_ms());
	sqlite3_bind_int(st, 8, o->auto_remove);
	if (o->timeout_ms > 0)
		sqlite3_bind_int64(st, 9, now_ms() + o->timeout_ms);
	sqlite3_bind_int64(st, 10, o->idle_timeout_ms);
	sqlite3_bind_int64(st, 11, o->cpus_milli);
	sqlite3_bind_int64(st, 12, o->memory);
	sqlite3_bind_int64(st, 13, o->disk);
	pid_t me;
	uint64_t me_start;
	sandbox_self(&me, &me_start);
	store_bind_text(st, 14, linux_boot_id());
	sqlite3_bind_int64(st, 15, me);
	sqlite3_bind_int64(st, 16, (sqlite3_int64)me_start);
	store_bind_text(st, 17, cgroup);
	if (sqlite3_step(st) != SQLITE_DONE) {
		if (sqlite3_errcode(db->db) == SQLITE_CONSTRAINT) {
			store_rollback(db);
			return error_set(err, EEXIST, "the name '%s' is already in use by another sandbox", name);
		}
		store_error(db, "record sandbox", err);
		goto fail;
	}
	/* the image must still be what we resolved, now under the write
	 * lock: a concurrent `image rm` + gc either ran before (and we fail
	 * here) or sees our pinned layers */
	char *now_id = image_resolve_id(db, o->image, NULL, err);
	if (!now_id)
		goto fail;
	bool same = strcmp(now_id, img->id) == 0;
	free(now_id);
	if (!same) {
		error_set(err, EAGAIN, "image %s changed while the sandbox was being created", o->image);
		goto fail;
	}
	if (image_record_sandbox_layers(ctx, id, img, err) < 0 || net_plan_record(ctx, id, plan, err) < 0)
		goto fail;
	if (store_add_event(db, id, "create", NULL, err) < 0)
		goto fail;
	if (store_commit(db, err) < 0)
		return -1;
	return 0;
fail:
	store_rollback(db);
	return -1;
}

/* 0 when recorded running (or already finalized), 1 when a removal was
 * asked for meanwhile (the caller then ends it), -1 on error.  The
 * supervisor is recorded either way: it is what runs now. */
static int set_running(struct capsa_ctx *ctx, const char *id, const struct start_state *ss, struct capsa_error **err)
{
	struct store *db = ctx_db(ctx, err);
	if (!db)
		return -1;
	uint64_t sup_start = 0;
	linux_proc_start_time(ss->supervisor, &sup_start);
	_cleanup_stmt_ sqlite3_stmt *who = NULL, *st = NULL, *ask = NULL;
	if (store_begin(db, err) < 0)
		return -1;
	if (store_prepare(db,
			  "UPDATE sandboxes SET supervisor_pid=?2, supervisor_start=?3, init_pid=?4 "
			  "WHERE id=?1 AND state='creating'",
			  &who, err) < 0)
		goto fail;
	store_bind_text(who, 1, id);
	sqlite3_bind_int64(who, 2, ss->supervisor);
	sqlite3_bind_int64(who, 3, (sqlite3_int64)sup_start);
	sqlite3_bind_int64(who, 4, ss->init);
	if (sqlite3_step(who) != SQLITE_DONE) {
		store_error(db, "record sandbox supervisor", err);
		goto fail;
	}
	/* a short-lived sandbox may be finalized (exited, with its start
	 * event) by its supervisor's _finalize before we get here: leave it */
	if (store_prepare(db,
			  "UPDATE sandboxes SET state='running', started_at=?2 "
			  "WHERE id=?1 AND state='creating' AND remove_requested=0",
			  &st, err) < 0)
		goto fail;
	store_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, ss->started_at ? ss->started_at : now_ms());
	if (sqlite3_step(st) != SQLITE_DONE) {
		store_error(db, "record sandbox start", err);
		goto fail;
	}
	if (sqlite3_changes(db->db) > 0) {
		if (store_add_event(db, id, "start", NULL, err) < 0)
			goto fail;
		return store_commit(db, err);
	}
	if (store_prepare(db, "SELECT 1 FROM sandboxes WHERE id=? AND state='creating' AND remove_requested!=0", &ask,
			  err) < 0)
		goto fail;
	store_bind_text(ask, 1, id);
	bool removal = sqlite3_step(ask) == SQLITE_ROW;
	if (store_commit(db, err) < 0)
		return -1;
	return removal ? 1 : 0;
fail:
	store_rollback(db);
	return -1;
}

/* Takes back a sandbox that did not come to be (or whose removal was asked
 * for while it was created), once its supervisor is shown gone; a sandbox
 * that cannot be shown gone stays, visible, for `capsa rm -f`. */
static void undo(struct capsa_ctx *ctx, const char *id, const char *name, bool row, int *lock_fd,
		 struct capsa_error **err)
{
	/* our hold on the lock would hide the supervisor's */
	if (*lock_fd >= 0) {
		close(*lock_fd);
		*lock_fd = -1;
	}
	struct sb_row r;
	if (!row || sandbox_lookup(ctx, id, &r, NULL) < 0) {
		/* no row (never made, or removed by the sandbox's own
		 * _finalize): only directories of ours can be left */
		if (row)
			runindex_remove(ctx->run_fd, name, id);
		_cleanup_free_ char *rdir = sandbox_run_dir(ctx, id);
		rm_rf_at(AT_FDCWD, rdir, NULL);
		return;
	}
	struct capsa_error *e = NULL;
	if (sandbox_prove_dead(ctx, &r, 5000, &e) == 0) {
		sandbox_forget(ctx, id, name, NULL);
	} else if (err && *err) {
		char *msg = xasprintf("%s; sandbox %s is kept for `capsa rm -f`: %s", (*err)->msg, name, e->msg);
		free((*err)->msg);
		(*err)->msg = msg;
	}
	capsa_error_free(e);
	sb_row_release(&r);
}

/* A supervisor that refused to start still writes its exit file and tears
 * down its cgroup (and its --disk mount) after telling us: wait until it is
 * gone (its end of the socket closes) before undoing, or its late files
 * would outlive the undo. */
static void wait_supervisor_gone(int fd)
{
	int64_t deadline = now_ms() + 5000;
	char sink[4096];
	while (fd >= 0 && now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)(deadline - now_ms()));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		ssize_t n = read(fd, sink, sizeof(sink));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return;
	}
}

/* A removal asked for while we created the sandbox: end it through the
 * supervisor we are connected to, before undo() takes it back. */
static void end_for_removal(struct proto_conn *conn)
{
	struct buf b = BUF_INIT;
	tlv_put_i64(&b, T_TIMEOUT_MS, 0);
	if (sandbox_request(conn, P_STOP, 0, &b, NULL, NULL) == 0)
		wait_supervisor_gone(conn->fd);
	buf_release(&b);
}

/* The sandbox's network (lib/net): what the supervisor joins, and the
 * resolver and hosts files its /etc gets. */
/* --dns and --add-host (checked by net_plan_make) over what the network
 * gave: docker's rules. */
static int resolver_files(const struct capsa_sandbox_opts *o, struct proto_sandbox *spec)
{
	if (o->dns) {
		struct buf b = BUF_INIT;
		for (char **d = o->dns; *d; d++)
			buf_appendf(&b, "nameserver %s\n", *d);
		free(spec->resolv);
		spec->resolv = buf_steal(&b);
	}
	if (o->add_hosts) {
		const char *host = spec->hostname ? spec->hostname : spec->id;
		struct buf b = BUF_INIT;
		if (spec->hosts)
			buf_appendf(&b, "%s", spec->hosts);
		else
			buf_appendf(&b, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n",
				    host);
		for (char **h = o->add_hosts; *h; h++) {
			const char *colon = strchr(*h, ':');
			buf_appendf(&b, "%s\t%.*s\n", colon + 1, (int)(colon - *h), *h);
		}
		free(spec->hosts);
		spec->hosts = buf_steal(&b);
	}
	return 0;
}

static int network_setup(struct capsa_ctx *ctx, const char *id, const char *name, const struct net_plan *plan,
			 const struct capsa_sandbox_opts *o, struct proto_sandbox *spec, struct net_attach *net,
			 struct capsa_error **err)
{
	if (net_sandbox_setup(ctx, id, name, spec->hostname, plan, net, err) < 0)
		return -1;
	spec->net_mode = plan->mode == NET_HOST	    ? PROTO_NET_HOST
			 : net->netns_fd >= 0 ? PROTO_NET_JOIN
					      : PROTO_NET_OWN;
	if (net->resolv) {
		free(spec->resolv);
		spec->resolv = xstrdup(net->resolv);
	}
	if (net->hosts) {
		free(spec->hosts);
		spec->hosts = xstrdup(net->hosts);
	}
	return resolver_files(o, spec);
}

/* Test hooks: sleep for $name milliseconds (below 10 s) at a point of
 * creation whose races the tests force. */
static void test_delay(const char *name)
{
	const char *v = getenv(name);
	int ms = v ? atoi(v) : 0;
	if (ms > 0 && ms < 10000)
		usleep((useconds_t)ms * 1000);
}

static int make_dirs(const struct proto_sandbox *s, struct capsa_error **err)
{
	if (s->disk_image) {
		/* the upper and work dirs are made in the image once mounted */
		if (mkdir(s->sandbox_dir, 0700) < 0)
			return error_sys(err, errno, "create %s", s->sandbox_dir);
		_cleanup_free_ char *logs = xasprintf("%s/logs", s->sandbox_dir);
		if (mkdir(s->disk_mount, 0700) < 0 || mkdir(logs, 0700) < 0 || mkdir(s->rootfs, 0700) < 0)
			return error_sys(err, errno, "create the directories of %s", s->sandbox_dir);
		trace_mark("run: mkfs");
		_cleanup_free_ char *templates = xasprintf("%s/" LOOPDISK_TEMPLATES, s->root_dir);
		if (loopdisk_create(s->disk_image, s->disk_size, templates, err) < 0)
			return error_wrap(err, "--disk");
		return 0;
	}
	const char *dirs[] = { s->sandbox_dir, NULL, NULL, NULL };
	_cleanup_free_ char *upper = xasprintf("%s/upper", s->sandbox_dir);
	_cleanup_free_ char *work = xasprintf("%s/work", s->sandbox_dir);
	_cleanup_free_ char *logs = xasprintf("%s/logs", s->sandbox_dir);
	dirs[1] = upper;
	dirs[2] = work;
	dirs[3] = logs;
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (mkdir(dirs[i], 0700) < 0)
			return error_sys(err, errno, "create %s", dirs[i]);
	if (mkdir(s->rootfs, 0700) < 0)
		return error_sys(err, errno, "create %s", s->rootfs);
	/* the upper dir is the sandbox's /: it must look like one */
	chmod(upper, 0755);
	return 0;
}

CAPSA_EXPORT int capsa_sandbox_run(struct capsa_ctx *ctx, const struct capsa_sandbox_opts *o,
				   const struct capsa_stdio *stdio, char **id_out, struct capsa_exit *exit_out,
				   struct capsa_error **err)
{
	trace_mark("run: start");
	if (validate(o, err) < 0 || sandbox_limits_validate(ctx, o, err) < 0 || ledger_check_disk(ctx, err) < 0)
		return -1;
	struct image *img = NULL;
	if (!ctx_db(ctx, err))
		return -1;
	trace_mark("run: database open");
	if (image_resolve(ctx, o->image, &img, err) < 0)
		return -1;
	trace_mark("run: image resolved");
	int rc = -1;
	bool row = false, created_dirs = false;
	_cleanup_close_ int lock_fd = -1, creating_fd = -1;
	_cleanup_free_ char *id = random_hex(32);
	_cleanup_free_ char *name = xstrdup(o->name ? o->name : id);
	if (!o->name)
		name[12] = '\0';
	_cleanup_free_ char *config = NULL, *labels = NULL, *lock = NULL;
	struct proto_sandbox spec = { 0 };
	struct proto_conn conn = { .fd = -1 };
	struct proto_exit e = { 0 };
	struct start_state ss = { .e = &e };
	struct net_plan plan = { 0 };
	struct net_attach net = { .netns_fd = -1 };

	if (build_spec(ctx, o, img, id, name, &spec, err) < 0 || net_plan_make(ctx, o, &plan, err) < 0)
		goto out;
	labels = labels_json(o->labels, err);
	if (!labels)
		goto out;
	config = config_json(o, &spec);
	trace_mark("run: spec built");

	/* 1. runtime dir and lock, 2. row, 3. sandbox dirs, 4. supervisor */
	if (mkdir(spec.run_dir, 0700) < 0) {
		error_sys(err, errno, "create %s", spec.run_dir);
		goto out;
	}
	created_dirs = true;
	/* held until the sandbox is recorded running or undone: a removal
	 * of a sandbox being created waits on it (liveness.c) */
	creating_fd = sandbox_creation_lock(spec.run_dir, err);
	if (creating_fd < 0)
		goto out;
	lock = xasprintf("%s/lock", spec.run_dir);
	lock_fd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0) {
		error_sys(err, errno, "lock %s", lock);
		goto out;
	}
	if (insert_row(ctx, id, name, img, o, config, labels, spec.cg_name, &plan, err) < 0)
		goto out;
	row = true;
	runindex_add(ctx->run_fd, name, id);
	trace_mark("run: row inserted");
	/* test hook: hold the window between the row and a supervisor that
	 * listens, where a removal must wait for us (liveness.c) */
	test_delay("CAPSA_TEST_CREATE_DELAY_MS");
	/* rootless: a namespace nested in the user's, mapping its ids 1:1, so
	 * that root inside owns none of the sandbox's other namespaces and
	 * the kernel counts RLIMIT_NPROC per sandbox (docs/rootless.md) */
	if (o->userns == CAPSA_USERNS_AUTO && ctx->rootless) {
		spec.userns_uid = spec.userns_gid = 0;
		spec.userns_count = linux_rootless_id_count();
	} else if (o->userns == CAPSA_USERNS_AUTO && sandbox_userns_alloc(ctx, id, &spec, err) < 0) {
		goto out;
	}
	if (make_dirs(&spec, err) < 0 || sandbox_userns_own_dirs(&spec, err) < 0)
		goto out;
	trace_mark("run: dirs made");
	if (network_setup(ctx, id, name, &plan, o, &spec, &net, err) < 0)
		goto out;
	trace_mark("run: network");
	spec.creator_finalizes = stdio != NULL;
	if (stdio)
		spec.creator_attach = ATTACH_STDOUT | ATTACH_STDERR | (o->interactive ? ATTACH_STDIN : 0);
	pid_t sup_pid;
	if (supervisor_spawn(ctx, lock_fd, net.netns_fd, &conn, &sup_pid, err) < 0)
		goto out;
	/* the supervisor holds the namespace now */
	close(net.netns_fd);
	net.netns_fd = -1;
	struct buf b = BUF_INIT;
	proto_sandbox_encode(&b, &spec);
	int qr = proto_conn_queue(&conn, P_SPEC, 0, 0, b.data, b.len);
	buf_release(&b);
	if (qr < 0 || proto_conn_flush_all(&conn, 10000) < 0) {
		error_set(err, E2BIG, "sandbox spec does not fit in one frame");
		goto out;
	}
	trace_mark("run: supervisor spawned");
	while (!ss.ready && !ss.failed && !ss.final) {
		int r = proto_conn_wait(&conn, 60000, on_start_frame, &ss);
		if (r <= 0) {
			error_set(err, EIO, "sandbox %s: the supervisor ended before the sandbox started", name);
			goto out;
		}
	}
	if (ss.failed) {
		error_set(err, ss.code ? ss.code : EIO, "%s", ss.msg ? ss.msg : "sandbox failed to start");
		goto out;
	}
	trace_mark("run: ready");
	/* test hook: lose the race against a short-lived sandbox's _finalize */
	test_delay("CAPSA_TEST_START_RECORD_DELAY_MS");
	int recorded = ss.ready ? set_running(ctx, id, &ss, err) : 0;
	if (recorded < 0)
		goto out;
	if (recorded > 0) {
		error_set(err, ECANCELED, "sandbox %s was removed while it was being created", name);
		end_for_removal(&conn);
		goto out;
	}
	close(creating_fd);
	creating_fd = -1;
	trace_mark("run: marked running");
	row = false; /* from here on the sandbox exists: errors do not undo it */
	created_dirs = false;
	if (id_out)
		*id_out = xstrdup(id);
	if (!stdio) {
		rc = 0;
		if (ss.final)
			goto finished;
		goto out;
	}
	struct session_result res = { 0 };
	if (!ss.final && session_pump(&conn, PROTO_MAIN_STREAM, PUMP_MAIN, stdio, &e, &res, err) < 0)
		goto out;
	if (res.detached || res.client_signal) {
		/* the sandbox runs on; its supervisor records the end */
		if (exit_out)
			exit_for_client(exit_out, &res);
		rc = 0;
		goto out;
	}
finished:
	trace_mark("run: final");
	/* our hold on the lock would hide the supervisor's from the proof
	 * that it is gone (liveness.c) */
	close(lock_fd);
	lock_fd = -1;
	/* We are the finalizer (creator_finalizes): record the end now. */
	if (sandbox_finalize(ctx, id, &e, err) < 0)
		goto out;
	trace_mark("run: finalized");
	if (exit_out)
		exit_from_proto(exit_out, &e);
	rc = 0;
out:
	if (rc < 0 && (row || created_dirs)) {
		wait_supervisor_gone(conn.fd);
		undo(ctx, id, name, row, &lock_fd, err);
	}
	free(ss.msg);
	proto_exit_release(&e);
	proto_conn_release(&conn, true);
	proto_sandbox_release(&spec);
	net_plan_release(&plan);
	net_attach_release(&net);
	image_free(img);
	return rc;
}
