/* cgroup-limits.c: writing limits, reading statistics, and the device
 * allowlist (v1 devices.allow/deny, v2 a BPF_CGROUP_DEVICE program), for
 * the cgroups cgroup.c creates.
 *
 * Swap is off unless asked for: v2 memory.swap.max = 0, v1
 * memory.memsw.limit_in_bytes = memory.limit_in_bytes (where the kernel
 * accounts swap).  The best-effort knobs (blkio weight) are skipped silently
 * where the host lacks them; everything else is an error naming the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "rootless.h"
#include "util/fs.h"

static bool cpuset_list_ok(const char *s)
{
	if (!*s || strlen(s) > 1024)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == ',' || *p == '-'))
			return false;
	return true;
}

/* v1 requires memsw >= limit at every moment: raise memsw first when the
 * new memsw is above the current limit, else lower the limit first. */
static int v1_memory(int fd, int64_t mem, int64_t memsw, struct capsa_error **err)
{
	uint64_t cur_limit = 0;
	bool have_memsw = faccessat(fd, "memory.memsw.limit_in_bytes", F_OK, 0) == 0;
	cg_read_u64(fd, "memory.limit_in_bytes", &cur_limit);
	if (!have_memsw)
		return cg_writef(fd, "memory.limit_in_bytes", err, "%lld", (long long)mem);
	if (memsw < 0 || (uint64_t)memsw >= cur_limit) {
		if (cg_writef(fd, "memory.memsw.limit_in_bytes", err, "%lld", (long long)memsw) < 0)
			return -1;
		return cg_writef(fd, "memory.limit_in_bytes", err, "%lld", (long long)mem);
	}
	if (cg_writef(fd, "memory.limit_in_bytes", err, "%lld", (long long)mem) < 0)
		return -1;
	return cg_writef(fd, "memory.memsw.limit_in_bytes", err, "%lld", (long long)memsw);
}

static int set_memory(struct linux_cgroup *cg, const struct linux_cgroup_limits *l, struct capsa_error **err)
{
	if (l->memory < 0 && l->memory_swap < 0)
		return 0;
	if (l->memory < 0)
		return error_set(err, EINVAL, "a memory+swap limit needs a memory limit");
	if (l->memory_swap >= 0 && l->memory_swap < l->memory)
		return error_set(err, EINVAL, "memory+swap limit %lld is below the memory limit %lld",
				 (long long)l->memory_swap, (long long)l->memory);
	int64_t total = l->memory_swap >= 0 ? l->memory_swap : l->memory;
	int fd = cg_dir(cg, "memory");
	if (fd < 0)
		return error_set(err, ENOTSUP, "memory limit: no memory controller is available");
	if (cg->mode == CGROUP_MODE_V1)
		return v1_memory(fd, l->memory, total, err);
	if (cg_writef(fd, "memory.max", err, "%lld", (long long)l->memory) < 0)
		return -1;
	/* memory.swap.max is missing without swap accounting: nothing to
	 * turn off then. */
	if (write_str_at(fd, "memory.swap.max", "0") < 0 && errno != ENOENT)
		return error_sys(err, errno, "write memory.swap.max");
	if (total > l->memory)
		return cg_writef(fd, "memory.swap.max", err, "%lld", (long long)(total - l->memory));
	return 0;
}

static int set_cpu(struct linux_cgroup *cg, const struct linux_cgroup_limits *l, struct capsa_error **err)
{
	int fd = cg_dir(cg, "cpu");
	if ((l->cpu_quota_us >= 0 || l->cpu_period_us >= 0 || l->cpu_shares >= 0) && fd < 0)
		return error_set(err, ENOTSUP, "cpu limit: no cpu controller is available");
	if (l->cpu_quota_us >= 0 || l->cpu_period_us >= 0) {
		int64_t period = l->cpu_period_us > 0 ? l->cpu_period_us : 100000;
		if (cg->mode == CGROUP_MODE_V2) {
			if (l->cpu_quota_us > 0) {
				if (cg_writef(fd, "cpu.max", err, "%lld %lld", (long long)l->cpu_quota_us,
					      (long long)period) < 0)
					return -1;
			} else if (cg_writef(fd, "cpu.max", err, "max %lld", (long long)period) < 0) {
				return -1;
			}
		} else {
			if (cg_writef(fd, "cpu.cfs_period_us", err, "%lld", (long long)period) < 0)
				return -1;
			if (cg_writef(fd, "cpu.cfs_quota_us", err, "%lld",
				      (long long)(l->cpu_quota_us > 0 ? l->cpu_quota_us : -1)) < 0)
				return -1;
		}
	}
	if (l->cpu_shares > 0) {
		if (cg->mode == CGROUP_MODE_V1)
			return cg_writef(fd, "cpu.shares", err, "%lld", (long long)l->cpu_shares);
		/* shares [2, 262144] -> weight [1, 10000], as runc and crun map it */
		int64_t s = MIN(MAX(l->cpu_shares, 2), 262144);
		int64_t w = 1 + ((s - 2) * 9999) / 262142;
		return cg_writef(fd, "cpu.weight", err, "%lld", (long long)w);
	}
	return 0;
}

static void set_blkio(struct linux_cgroup *cg, int64_t weight)
{
	int fd = cg_dir(cg, cg->mode == CGROUP_MODE_V2 ? "io" : "blkio");
	if (weight <= 0 || fd < 0)
		return;
	char v[32];
	const char *bfq = cg->mode == CGROUP_MODE_V2 ? "io.bfq.weight" : "blkio.bfq.weight";
	snprintf(v, sizeof(v), "%lld", (long long)weight);
	if (write_str_at(fd, bfq, v) == 0)
		return;
	if (cg->mode == CGROUP_MODE_V1) {
		write_str_at(fd, "blkio.weight", v);
		return;
	}
	int64_t w = 1 + ((MIN(MAX(weight, 10), 1000) - 10) * 9999) / 990;
	snprintf(v, sizeof(v), "default %lld", (long long)w);
	write_str_at(fd, "io.weight", v);
}

int linux_cgroup_set_limits(struct linux_cgroup *cg, const struct linux_cgroup_limits *l, struct capsa_error **err)
{
	if (set_memory(cg, l, err) < 0 || set_cpu(cg, l, err) < 0)
		return error_wrap(err, "cgroup %s", cg->path);
	if (l->pids > 0) {
		int fd = cg_dir(cg, "pids");
		if (fd < 0)
			return error_set(err, ENOTSUP, "cgroup %s: pids limit: no pids controller is available",
					 cg->path);
		/* INT64_MAX: no limit (an update that lifts one) */
		if (l->pids == INT64_MAX ? cg_write(fd, "pids.max", "max", err) < 0
					 : cg_writef(fd, "pids.max", err, "%lld", (long long)l->pids) < 0)
			return error_wrap(err, "cgroup %s", cg->path);
	}
	const char *sets[][2] = { { "cpuset.cpus", l->cpuset_cpus }, { "cpuset.mems", l->cpuset_mems } };
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
		if (!sets[i][1])
			continue;
		if (!cpuset_list_ok(sets[i][1]))
			return error_set(err, EINVAL, "%s '%s': not a list like 0-2,4", sets[i][0], sets[i][1]);
		int fd = cg_dir(cg, "cpuset");
		if (fd < 0)
			return error_set(err, ENOTSUP, "cgroup %s: %s: no cpuset controller is available", cg->path,
					 sets[i][0]);
		if (cg_write(fd, sets[i][0], sets[i][1], err) < 0)
			return error_wrap(err, "cgroup %s", cg->path);
	}
	set_blkio(cg, l->blkio_weight);
	return 0;
}

/* --- statistics --------------------------------------------------------- */

int linux_cgroup_oom_kills(struct linux_cgroup *cg, uint64_t *out)
{
	*out = 0;
	int fd = cg_dir(cg, "memory");
	if (fd < 0)
		return -1;
	if (cg->mode == CGROUP_MODE_V2)
		return cg_read_key(fd, "memory.events", "oom_kill", out);
	return cg_read_key(fd, "memory.oom_control", "oom_kill", out);
}

/* Sums "Read"/"Write" (v1 blkio) or rbytes=/wbytes= (v2 io.stat). */
static void io_bytes(struct linux_cgroup *cg, uint64_t *rd, uint64_t *wr)
{
	struct buf b = BUF_INIT;
	int fd = cg_dir(cg, cg->mode == CGROUP_MODE_V2 ? "io" : "blkio");
	const char *file = cg->mode == CGROUP_MODE_V2 ? "io.stat" : "blkio.throttle.io_service_bytes_recursive";
	if (fd < 0 || cg_read(fd, file, &b) < 0) {
		buf_release(&b);
		return;
	}
	for (char *line = b.data; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (cg->mode == CGROUP_MODE_V2) {
			char *p;
			if ((p = strstr(line, "rbytes=")))
				*rd += strtoull(p + 7, NULL, 10);
			if ((p = strstr(line, "wbytes=")))
				*wr += strtoull(p + 7, NULL, 10);
		} else {
			char dev[64], op[16];
			unsigned long long v;
			if (sscanf(line, "%63s %15s %llu", dev, op, &v) == 3) {
				if (strcmp(op, "Read") == 0)
					*rd += v;
				else if (strcmp(op, "Write") == 0)
					*wr += v;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	buf_release(&b);
}

int linux_cgroup_stats(struct linux_cgroup *cg, struct linux_cgroup_stats *out)
{
	memset(out, 0, sizeof(*out));
	bool v2 = cg->mode == CGROUP_MODE_V2;
	int fd;
	if (v2) {
		uint64_t us = 0;
		if (cg_read_key(cg->fd, "cpu.stat", "usage_usec", &us) == 0)
			out->cpu_usage_ns = us * 1000;
	} else if ((fd = cg_dir(cg, "cpuacct")) >= 0) {
		cg_read_u64(fd, "cpuacct.usage", &out->cpu_usage_ns);
	}
	if ((fd = cg_dir(cg, "memory")) >= 0) {
		cg_read_u64(fd, v2 ? "memory.current" : "memory.usage_in_bytes", &out->memory_current);
		cg_read_u64(fd, v2 ? "memory.max" : "memory.limit_in_bytes", &out->memory_limit);
		cg_read_u64(fd, v2 ? "memory.peak" : "memory.max_usage_in_bytes", &out->memory_max_usage);
		/* v1 says "no limit" with a page-rounded LONG_MAX */
		if (!v2 && out->memory_limit >= (UINT64_C(1) << 62))
			out->memory_limit = UINT64_MAX;
	}
	if ((fd = cg_dir(cg, "pids")) >= 0) {
		cg_read_u64(fd, "pids.current", &out->pids_current);
		cg_read_u64(fd, "pids.max", &out->pids_limit);
	}
	io_bytes(cg, &out->io_read_bytes, &out->io_write_bytes);
	linux_cgroup_oom_kills(cg, &out->oom_kills);
	return 0;
}

/* --- devices ------------------------------------------------------------ */

/* docker's default: mknod of anything, and the devices every sandbox has. */
static const struct linux_device_rule default_rules[] = {
	{ false, 'a', -1, -1, "rwm" },	{ true, 'c', -1, -1, "m" },	{ true, 'b', -1, -1, "m" },
	{ true, 'c', 1, 3, "rwm" },	{ true, 'c', 1, 5, "rwm" },	{ true, 'c', 1, 7, "rwm" },
	{ true, 'c', 1, 8, "rwm" },	{ true, 'c', 1, 9, "rwm" },	{ true, 'c', 5, 0, "rwm" },
	{ true, 'c', 5, 1, "rwm" },	{ true, 'c', 5, 2, "rwm" },	{ true, 'c', 136, -1, "rwm" },
	{ true, 'c', 10, 200, "rwm" },
};

static int rule_check(const struct linux_device_rule *r, struct capsa_error **err)
{
	if (r->type != 'a' && r->type != 'c' && r->type != 'b')
		return error_set(err, EINVAL, "device rule: unknown type '%c'", r->type);
	const char *a = r->access && *r->access ? r->access : "rwm";
	if (strspn(a, "rwm") != strlen(a) || strlen(a) > 3)
		return error_set(err, EINVAL, "device rule: access '%s' is not a subset of rwm", a);
	if (r->major < -1 || r->minor < -1 || r->major > 0xfffff || r->minor > 0xfffff)
		return error_set(err, EINVAL, "device rule: bad major or minor number");
	return 0;
}

static int v1_devices(struct linux_cgroup *cg, const struct linux_device_rule *rules, size_t n,
		      struct capsa_error **err)
{
	int fd = cg_dir(cg, "devices");
	if (fd < 0)
		return error_set(err, ENOTSUP, "device rules: no devices cgroup hierarchy is mounted");
	for (size_t i = 0; i < n; i++) {
		const struct linux_device_rule *r = &rules[i];
		char maj[24] = "*", min[24] = "*";
		if (r->major >= 0)
			snprintf(maj, sizeof(maj), "%lld", (long long)r->major);
		if (r->minor >= 0)
			snprintf(min, sizeof(min), "%lld", (long long)r->minor);
		const char *a = r->access && *r->access ? r->access : "rwm";
		char v[96];
		if (r->type == 'a')
			snprintf(v, sizeof(v), "a");
		else
			snprintf(v, sizeof(v), "%c %s:%s %s", r->type, maj, min, a);
		if (cg_write(fd, r->allow ? "devices.allow" : "devices.deny", v, err) < 0)
			return -1;
	}
	return 0;
}

/* v2: a BPF_PROG_TYPE_CGROUP_DEVICE program.  The rules are checked from
 * the last to the first; the first match returns its verdict, no match
 * denies.  Registers: r2 type, r3 access, r4 major, r5 minor. */
#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })

static size_t emit_rule(struct bpf_insn *p, const struct linux_device_rule *r)
{
	size_t k = 0;
	int acc = 0;
	const char *a = r->access && *r->access ? r->access : "rwm";
	if (strchr(a, 'm'))
		acc |= BPF_DEVCG_ACC_MKNOD;
	if (strchr(a, 'r'))
		acc |= BPF_DEVCG_ACC_READ;
	if (strchr(a, 'w'))
		acc |= BPF_DEVCG_ACC_WRITE;
	bool full = acc == (BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE);
	/* length of the block: each check jumps over the rest of it */
	size_t len = 2 + (r->type != 'a') + (full ? 0 : 3) + (r->type != 'a' && r->major >= 0) +
		     (r->type != 'a' && r->minor >= 0);
#define SKIP() ((short)(len - k - 1))
	if (r->type != 'a') {
		p[k] = INSN(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 0, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
		p[k].off = SKIP();
		k++;
	}
	if (!full) {
		p[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 1, 3, 0, 0);
		p[k++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, 1, 0, 0, ~acc);
		p[k] = INSN(BPF_JMP | BPF_JNE | BPF_K, 1, 0, 0, 0);
		p[k].off = SKIP();
		k++;
	}
	if (r->type != 'a' && r->major >= 0) {
		p[k] = INSN(BPF_JMP | BPF_JNE | BPF_K, 4, 0, 0, (int)r->major);
		p[k].off = SKIP();
		k++;
	}
	if (r->type != 'a' && r->minor >= 0) {
		p[k] = INSN(BPF_JMP | BPF_JNE | BPF_K, 5, 0, 0, (int)r->minor);
		p[k].off = SKIP();
		k++;
	}
#undef SKIP
	p[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, r->allow ? 1 : 0);
	p[k++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	return k;
}

static int v2_devices(struct linux_cgroup *cg, const struct linux_device_rule *rules, size_t n,
		      struct capsa_error **err)
{
	size_t max = 6 + n * 9;
	_cleanup_free_ struct bpf_insn *prog = xcalloc(max, sizeof(*prog));
	size_t k = 0;
	/* access_type: low 16 bits the device type, high 16 the access */
	prog[k++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);
	prog[k++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, 2, 0, 0, 0xffff);
	prog[k++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 0, 0);
	prog[k++] = INSN(BPF_ALU64 | BPF_RSH | BPF_K, 3, 0, 0, 16);
	prog[k++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0);
	prog[k++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0);
	/* An "a" rule for rwm matches everything: the rules before it can
	 * never be reached (the verifier refuses unreachable code). */
	bool total = false;
	for (size_t i = n; i-- > 0 && !total;) {
		k += emit_rule(prog + k, &rules[i]);
		const char *a = rules[i].access && *rules[i].access ? rules[i].access : "rwm";
		total = rules[i].type == 'a' && strchr(a, 'r') && strchr(a, 'w') && strchr(a, 'm');
	}
	if (!total) {
		prog[k++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
		prog[k++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	}

	static const char license[] = "Apache-2.0";
	union bpf_attr load;
	memset(&load, 0, sizeof(load));
	load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	load.insns = (uint64_t)(uintptr_t)prog;
	load.insn_cnt = (uint32_t)k;
	load.license = (uint64_t)(uintptr_t)license;
	_cleanup_close_ int pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load));
	if (pfd < 0) {
		/* again with the verifier's log, for the error message */
		int e = errno;
		char log[4096] = "";
		load.log_buf = (uint64_t)(uintptr_t)log;
		load.log_size = sizeof(log);
		load.log_level = 1;
		if (syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load)) >= 0)
			return error_set(err, EINVAL, "load the device filter program: refused, then accepted");
		log[strcspn(log, "\n")] = '\0'; /* the first line says why */
		return error_sys(err, e, "load the device filter program (%s)", log);
	}
	union bpf_attr at;
	memset(&at, 0, sizeof(at));
	at.target_fd = (uint32_t)cg->fd;
	at.attach_bpf_fd = (uint32_t)pfd;
	at.attach_type = BPF_CGROUP_DEVICE;
	at.attach_flags = BPF_F_ALLOW_MULTI;
	if (syscall(SYS_bpf, BPF_PROG_ATTACH, &at, sizeof(at)) < 0)
		return error_sys(err, errno, "attach the device filter program");
	return 0;
}

int cg_apply_devices(struct linux_cgroup *cg, const struct linux_cgroup_limits *l, struct capsa_error **err)
{
	if (l->devices_allow_all)
		return 0;
	/* Rootless: the kernel lets no one below host root load a device
	 * program; none is needed, as a user namespace can neither mknod a
	 * device nor open a host node the user could not open already. */
	if (linux_rootless() && !l->device_rules)
		return 0;
	if (linux_rootless())
		return error_set(err, ENOTSUP, "device rules are not available in rootless mode: loading the cgroup "
					       "device program needs host root");
	const struct linux_device_rule *rules = l->device_rules ? l->device_rules : default_rules;
	size_t n = l->device_rules ? l->n_device_rules : ARRAY_SIZE(default_rules);
	for (size_t i = 0; i < n; i++)
		if (rule_check(&rules[i], err) < 0)
			return -1;
	if (cg->mode == CGROUP_MODE_V2)
		return v2_devices(cg, rules, n, err);
	return v1_devices(cg, rules, n, err);
}
