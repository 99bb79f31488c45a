/* seccomp-profile.c: compiling seccomp profiles (docker's default, docker
 * JSON files, the OCI linux.seccomp object) into classic BPF with
 * libseccomp.  Runs in the library, never in the sandbox: the agent gets
 * the program and installs it (proc.c).
 *
 * Compilation:
 *  1. rules whose includes/excludes (capabilities, native arch, kernel
 *     version) do not hold are dropped, as docker does; so are rules whose
 *     action equals the default (libseccomp refuses them);
 *  2. each syscall name is resolved by libseccomp; names it does not know
 *     are skipped (a profile may name syscalls of newer kernels);
 *  3. arguments: one rule with every condition, unless an argument index
 *     repeats, then one rule per condition (docker's "any of" reading);
 *  4. the program is exported, and when the default action refuses, a prologue
 *     is put in front that answers ENOSYS for syscall numbers above the
 *     highest one the profile names on each architecture, so that libc
 *     falls back from syscalls newer than the profile (fchmodat2,
 *     futex_wait...) instead of failing with EPERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "caps.h"
#include "seccomp-internal.h"
#include "seccomp-profile.h"
#include "util/fs.h"

#define JSON_MAX (4u << 20)
#define BPF_BYTES_MAX (BPF_MAXINSNS * sizeof(struct sock_filter))
#define X32_SYSCALL_BIT 0x40000000u

#if defined(__x86_64__)
#define NATIVE_ARCH "amd64"
#elif defined(__aarch64__)
#define NATIVE_ARCH "arm64"
#elif defined(__i386__)
#define NATIVE_ARCH "386"
#else
#define NATIVE_ARCH "unknown"
#endif

/* --- names -------------------------------------------------------------- */

static int parse_action(const char *name, int64_t errno_ret, uint32_t *out, struct capsa_error **err)
{
	uint32_t e = errno_ret >= 0 ? (uint32_t)errno_ret : EPERM;
	if (!name)
		return error_set(err, EINVAL, "seccomp: missing action");
	if (strcmp(name, "SCMP_ACT_ALLOW") == 0)
		*out = SCMP_ACT_ALLOW;
	else if (strcmp(name, "SCMP_ACT_ERRNO") == 0)
		*out = SCMP_ACT_ERRNO(e);
	else if (strcmp(name, "SCMP_ACT_KILL") == 0 || strcmp(name, "SCMP_ACT_KILL_THREAD") == 0)
		*out = SCMP_ACT_KILL_THREAD;
	else if (strcmp(name, "SCMP_ACT_KILL_PROCESS") == 0)
		*out = SCMP_ACT_KILL_PROCESS;
	else if (strcmp(name, "SCMP_ACT_TRAP") == 0)
		*out = SCMP_ACT_TRAP;
	else if (strcmp(name, "SCMP_ACT_TRACE") == 0)
		*out = SCMP_ACT_TRACE(e);
	else if (strcmp(name, "SCMP_ACT_LOG") == 0)
		*out = SCMP_ACT_LOG;
	else if (strcmp(name, "SCMP_ACT_NOTIFY") == 0)
		return error_set(err, ENOTSUP, "seccomp: action SCMP_ACT_NOTIFY is not supported");
	else
		return error_set(err, EINVAL, "seccomp: unknown action '%s'", name);
	if (errno_ret > 0xffff)
		return error_set(err, EINVAL, "seccomp: errnoRet %lld out of range", (long long)errno_ret);
	return 0;
}

static int parse_op(const char *name, enum scmp_compare *out, struct capsa_error **err)
{
	static const struct {
		const char *name;
		enum scmp_compare op;
	} ops[] = {
		{ "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
		{ "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
		{ "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
	};
	for (size_t i = 0; name && i < ARRAY_SIZE(ops); i++)
		if (strcmp(name, ops[i].name) == 0) {
			*out = ops[i].op;
			return 0;
		}
	return error_set(err, EINVAL, "seccomp: unknown operator '%s'", name ? name : "");
}

/* "SCMP_ARCH_X86_64" -> libseccomp's token (an AUDIT_ARCH_* value). */
static int parse_arch(const char *name, uint32_t *out, struct capsa_error **err)
{
	if (!name || strncmp(name, "SCMP_ARCH_", 10) != 0 || strlen(name) > 40)
		return error_set(err, EINVAL, "seccomp: unknown architecture '%s'", name ? name : "");
	char low[48];
	size_t i = 0;
	for (const char *p = name + 10; *p; p++)
		low[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	low[i] = '\0';
	uint32_t a = seccomp_arch_resolve_name(low);
	if (a == 0)
		return error_set(err, EINVAL, "seccomp: unknown architecture '%s'", name);
	*out = a;
	return 0;
}

static const struct {
	const char *name;
	unsigned flag;
} filter_flags[] = {
	{ "SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC },
	{ "SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG },
	{ "SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW },
};

/* --- applicability -------------------------------------------------------- */

static bool in_list(const char *const *l, const char *s)
{
	for (size_t i = 0; l && l[i]; i++)
		if (strcmp(l[i], s) == 0)
			return true;
	return false;
}

static int kernel_at_least(const char *want)
{
	struct utsname u;
	unsigned km = 0, kn = 0, wm = 0, wn = 0;
	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &km, &kn) < 1)
		return 1;
	if (sscanf(want, "%u.%u", &wm, &wn) < 1)
		return -1;
	return km > wm || (km == wm && kn >= wn);
}

/* 1 when the rule applies to caps on this machine, 0 when not. */
static int rule_applies(const struct sc_rule *r, uint64_t caps, struct capsa_error **err)
{
	for (size_t i = 0; r->caps_in && r->caps_in[i]; i++) {
		int c = linux_cap_from_name(r->caps_in[i]);
		if (c < 0)
			return error_set(err, EINVAL, "seccomp: unknown capability '%s'", r->caps_in[i]);
		if (!(caps & (UINT64_C(1) << c)))
			return 0;
	}
	for (size_t i = 0; r->caps_out && r->caps_out[i]; i++) {
		int c = linux_cap_from_name(r->caps_out[i]);
		if (c < 0)
			return error_set(err, EINVAL, "seccomp: unknown capability '%s'", r->caps_out[i]);
		if (caps & (UINT64_C(1) << c))
			return 0;
	}
	if (r->arches_in && r->arches_in[0] && !in_list(r->arches_in, NATIVE_ARCH))
		return 0;
	if (in_list(r->arches_out, NATIVE_ARCH))
		return 0;
	if (r->min_kernel) {
		int k = kernel_at_least(r->min_kernel);
		if (k < 0)
			return error_set(err, EINVAL, "seccomp: bad minKernel '%s'", r->min_kernel);
		if (!k)
			return 0;
	}
	return 1;
}

/* --- compiling ---------------------------------------------------------- */

static int add_rule(scmp_filter_ctx ctx, const struct sc_rule *r, uint32_t action, struct capsa_error **err)
{
	struct scmp_arg_cmp conds[SC_MAX_ARGS];
	bool repeat = false;
	for (size_t i = 0; i < r->n_args; i++) {
		const struct sc_arg *a = &r->args[i];
		if (a->index > 5)
			return error_set(err, EINVAL, "seccomp: argument index %u out of range", a->index);
		enum scmp_compare op;
		if (parse_op(a->op, &op, err) < 0)
			return -1;
		conds[i] = (struct scmp_arg_cmp){ .arg = a->index, .op = op, .datum_a = a->value, .datum_b = a->value_two };
		for (size_t j = 0; j < i; j++)
			if (r->args[j].index == a->index)
				repeat = true;
	}
	if (!repeat && r->n_args > 6)
		return error_set(err, EINVAL, "seccomp: more than 6 argument conditions");
	for (size_t i = 0; r->names && r->names[i]; i++) {
		int nr = seccomp_syscall_resolve_name(r->names[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		int rc;
		if (!repeat) {
			rc = seccomp_rule_add_array(ctx, action, nr, (unsigned)r->n_args, conds);
		} else {
			rc = 0;
			for (size_t k = 0; k < r->n_args && rc == 0; k++)
				rc = seccomp_rule_add_array(ctx, action, nr, 1, &conds[k]);
		}
		if (rc < 0)
			return error_sys(err, -rc, "seccomp: add rule for %s", r->names[i]);
	}
	return 0;
}

/* Highest syscall number any rule names on arch (in that arch's own
 * numbering), or -1. */
static int64_t max_syscall(const struct sc_profile *p, uint32_t arch)
{
	int64_t max = -1;
	for (size_t i = 0; i < p->n_rules; i++)
		for (size_t k = 0; p->rules[i].names && p->rules[i].names[k]; k++) {
			int nr = seccomp_syscall_resolve_name_arch(arch, p->rules[i].names[k]);
			if (nr >= 0 && nr > max)
				max = nr;
		}
	return max;
}

#define STMT(c, k) ((struct sock_filter){ (unsigned short)(c), 0, 0, (unsigned)(k) })
#define JUMP(c, k, t, f) ((struct sock_filter){ (unsigned short)(c), (unsigned char)(t), (unsigned char)(f), (unsigned)(k) })

/* One ENOSYS check: arch == audit_arch && lo <= nr < hi && nr > max. */
static size_t emit_enosys(struct sock_filter *s, uint32_t audit_arch, uint32_t lo, uint32_t hi, uint32_t max)
{
	s[0] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	s[1] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, audit_arch, 0, 6);
	s[2] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	s[3] = JUMP(BPF_JMP | BPF_JGE | BPF_K, lo, 0, 4);
	s[4] = JUMP(BPF_JMP | BPF_JGE | BPF_K, hi, 3, 0);
	s[5] = JUMP(BPF_JMP | BPF_JGT | BPF_K, max, 0, 1);
	s[6] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
	s[7] = STMT(BPF_JMP | BPF_JA, 0); /* k patched: to the end of the prologue */
	return 8;
}

static size_t build_prologue(const struct sc_profile *p, const uint32_t *arches, size_t n, struct sock_filter *s)
{
	size_t k = 0;
	bool have_x32 = false;
	for (size_t i = 0; i < n; i++)
		if (arches[i] == SCMP_ARCH_X32)
			have_x32 = true;
	for (size_t i = 0; i < n; i++) {
		int64_t max = max_syscall(p, arches[i]);
		if (max < 0)
			continue;
		if (arches[i] == SCMP_ARCH_X32) /* x32 calls arrive as x86_64 with the x32 bit */
			k += emit_enosys(s + k, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, 0xffffffffu, (uint32_t)max);
		else if (arches[i] == SCMP_ARCH_X86_64 && have_x32)
			k += emit_enosys(s + k, AUDIT_ARCH_X86_64, 0, X32_SYSCALL_BIT, (uint32_t)max);
		else
			k += emit_enosys(s + k, arches[i], 0, 0xffffffffu, (uint32_t)max);
	}
	for (size_t i = 7; i < k; i += 8)
		s[i].k = (unsigned)(k - i - 1);
	return k;
}

static int export_bpf(scmp_filter_ctx ctx, struct buf *out, struct capsa_error **err)
{
	_cleanup_close_ int fd = memfd_create("capsa-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return error_sys(err, errno, "seccomp: memfd");
	int rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		return error_sys(err, -rc, "seccomp: export the filter");
	if (lseek(fd, 0, SEEK_SET) < 0)
		return error_sys(err, errno, "seccomp: rewind");
	if (read_all(fd, out, BPF_BYTES_MAX + 1) < 0)
		return error_sys(err, errno, "seccomp: read the filter");
	return 0;
}

static int compile_profile(const struct sc_profile *p, uint64_t caps, struct buf *bpf, struct capsa_error **err)
{
	uint32_t def;
	if (parse_action(p->default_action, p->default_errno, &def, err) < 0)
		return -1;
	uint32_t arches[32];
	size_t n_arches = 0;
	arches[n_arches++] = seccomp_arch_native();
	for (size_t i = 0; p->arches && p->arches[i]; i++) {
		uint32_t a;
		if (parse_arch(p->arches[i], &a, err) < 0)
			return -1;
		bool dup = false;
		for (size_t k = 0; k < n_arches; k++)
			dup |= arches[k] == a;
		if (!dup && n_arches < ARRAY_SIZE(arches))
			arches[n_arches++] = a;
	}
	scmp_filter_ctx ctx = seccomp_init(def);
	if (!ctx)
		return error_set(err, EINVAL, "seccomp: cannot create a filter");
	int rc = -1;
	struct buf prog = BUF_INIT;
	for (size_t i = 1; i < n_arches; i++) {
		int r = seccomp_arch_add(ctx, arches[i]);
		if (r < 0 && r != -EEXIST) {
			error_sys(err, -r, "seccomp: add architecture 0x%x", arches[i]);
			goto out;
		}
	}
	/* A binary tree of syscall numbers instead of a linear scan. */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct sc_rule *r = &p->rules[i];
		uint32_t act;
		int applies = rule_applies(r, caps, err);
		if (applies < 0 || parse_action(r->action, r->errno_ret, &act, err) < 0)
			goto out;
		if (!applies || act == def)
			continue;
		if (add_rule(ctx, r, act, err) < 0)
			goto out;
	}
	if (export_bpf(ctx, &prog, err) < 0)
		goto out;
	struct sock_filter prologue[8 * ARRAY_SIZE(arches)];
	size_t ns = (def == SCMP_ACT_ALLOW || def == SCMP_ACT_LOG) ? 0 : build_prologue(p, arches, n_arches, prologue);
	if (prog.len + ns * sizeof(struct sock_filter) > BPF_BYTES_MAX) {
		error_set(err, E2BIG, "seccomp: the filter has more than %d instructions", BPF_MAXINSNS);
		goto out;
	}
	bpf->len = 0;
	if (buf_append(bpf, prologue, ns * sizeof(struct sock_filter)) < 0 || buf_append(bpf, prog.data, prog.len) < 0) {
		error_sys(err, errno, "seccomp: filter buffer");
		goto out;
	}
	rc = 0;
out:
	buf_release(&prog);
	seccomp_release(ctx);
	return rc;
}

int seccomp_profile_default(uint64_t caps, struct buf *bpf, struct capsa_error **err)
{
	return compile_profile(&seccomp_default_profile, caps, bpf, err);
}

/* --- JSON --------------------------------------------------------------- */

/* Everything a parsed profile points into: the JSON document (names are
 * its strings) and the arrays built from it. */
struct parsed {
	json_t *root;
	struct sc_rule *rules;
	size_t n_rules;
	const char **strs[1024]; /* NULL-terminated string arrays to free */
	size_t n_strs;
	const char **arches;
};

static void parsed_release(struct parsed *p)
{
	for (size_t i = 0; i < p->n_strs; i++)
		free(p->strs[i]);
	free(p->rules);
	free(p->arches);
	json_decref(p->root);
}

/* A JSON array of strings as a NULL-terminated vector (pointing into the
 * document); NULL for null or absent. */
static int str_array(struct parsed *ps, json_t *a, const char *what, const char *const **out, struct capsa_error **err)
{
	*out = NULL;
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return error_set(err, EINVAL, "seccomp: %s: not an array", what);
	if (ps->n_strs >= ARRAY_SIZE(ps->strs))
		return error_set(err, E2BIG, "seccomp: too many lists");
	size_t n = json_array_size(a);
	if (n > 4096)
		return error_set(err, E2BIG, "seccomp: %s: more than 4096 entries", what);
	const char **v = xcalloc(n + 1, sizeof(char *));
	ps->strs[ps->n_strs++] = v;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(a, i));
		if (!s)
			return error_set(err, EINVAL, "seccomp: %s[%zu]: not a string", what, i);
		v[i] = s;
	}
	*out = v;
	return 0;
}

static int int_field(json_t *o, const char *key, int64_t min, int64_t max, int64_t *out, struct capsa_error **err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return error_set(err, EINVAL, "seccomp: %s: not an integer in [%lld, %lld]", key, (long long)min,
				 (long long)max);
	*out = json_integer_value(v);
	return 0;
}

static int parse_args(json_t *args, struct sc_rule *r, size_t idx, struct capsa_error **err)
{
	if (!args || json_is_null(args))
		return 0;
	if (!json_is_array(args))
		return error_set(err, EINVAL, "seccomp: syscalls[%zu].args: not an array", idx);
	if (json_array_size(args) > SC_MAX_ARGS)
		return error_set(err, E2BIG, "seccomp: syscalls[%zu].args: more than %d conditions", idx, SC_MAX_ARGS);
	for (size_t i = 0; i < json_array_size(args); i++) {
		json_t *a = json_array_get(args, i);
		int64_t index = -1, value = 0, two = 0;
		if (!json_is_object(a))
			return error_set(err, EINVAL, "seccomp: syscalls[%zu].args[%zu]: not an object", idx, i);
		if (int_field(a, "index", 0, 5, &index, err) < 0 || int_field(a, "value", 0, INT64_MAX, &value, err) < 0 ||
		    int_field(a, "valueTwo", 0, INT64_MAX, &two, err) < 0)
			return error_wrap(err, "syscalls[%zu].args[%zu]", idx, i);
		if (index < 0)
			return error_set(err, EINVAL, "seccomp: syscalls[%zu].args[%zu]: missing index", idx, i);
		const char *op = json_string_value(json_object_get(a, "op"));
		enum scmp_compare cmp;
		if (parse_op(op, &cmp, err) < 0)
			return error_wrap(err, "syscalls[%zu].args[%zu]", idx, i);
		r->args[r->n_args++] = (struct sc_arg){ (unsigned)index, (uint64_t)value, (uint64_t)two, op };
	}
	return 0;
}

static int parse_filter(json_t *o, const char *what, struct parsed *ps, struct sc_rule *r, bool include,
			struct capsa_error **err)
{
	if (!o || json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return error_set(err, EINVAL, "seccomp: %s: not an object", what);
	const char *const *caps, *const *arches;
	if (str_array(ps, json_object_get(o, "caps"), what, &caps, err) < 0 ||
	    str_array(ps, json_object_get(o, "arches"), what, &arches, err) < 0)
		return -1;
	for (size_t i = 0; caps && caps[i]; i++)
		if (linux_cap_from_name(caps[i]) < 0)
			return error_set(err, EINVAL, "seccomp: %s: unknown capability '%s'", what, caps[i]);
	if (include) {
		r->caps_in = caps;
		r->arches_in = arches;
		r->min_kernel = json_string_value(json_object_get(o, "minKernel"));
	} else {
		r->caps_out = caps;
		r->arches_out = arches;
	}
	return 0;
}

static int parse_syscall(json_t *s, size_t i, struct parsed *ps, struct sc_rule *r, struct capsa_error **err)
{
	if (!json_is_object(s))
		return error_set(err, EINVAL, "seccomp: syscalls[%zu]: not an object", i);
	*r = (struct sc_rule){ .errno_ret = -1 };
	json_t *names = json_object_get(s, "names");
	const char *one = json_string_value(json_object_get(s, "name"));
	if (names && !json_is_null(names)) {
		if (str_array(ps, names, "names", &r->names, err) < 0)
			return error_wrap(err, "syscalls[%zu]", i);
	} else if (one) {
		const char **v = xcalloc(2, sizeof(char *));
		if (ps->n_strs >= ARRAY_SIZE(ps->strs)) {
			free(v);
			return error_set(err, E2BIG, "seccomp: too many lists");
		}
		ps->strs[ps->n_strs++] = v;
		v[0] = one;
		r->names = v;
	} else {
		return error_set(err, EINVAL, "seccomp: syscalls[%zu]: no names", i);
	}
	r->action = json_string_value(json_object_get(s, "action"));
	if (!r->action)
		return error_set(err, EINVAL, "seccomp: syscalls[%zu]: missing action", i);
	if (int_field(s, "errnoRet", 0, 4095, &r->errno_ret, err) < 0)
		return error_wrap(err, "syscalls[%zu]", i);
	uint32_t act;
	if (parse_action(r->action, r->errno_ret, &act, err) < 0 || parse_args(json_object_get(s, "args"), r, i, err) < 0 ||
	    parse_filter(json_object_get(s, "includes"), "includes", ps, r, true, err) < 0 ||
	    parse_filter(json_object_get(s, "excludes"), "excludes", ps, r, false, err) < 0)
		return error_wrap(err, "syscalls[%zu]", i);
	return 0;
}

/* architectures[], or from archMap the entry of the native arch. */
static int parse_arches(json_t *root, struct parsed *ps, struct capsa_error **err)
{
	const char *const *list = NULL;
	if (str_array(ps, json_object_get(root, "architectures"), "architectures", &list, err) < 0)
		return -1;
	json_t *map = json_object_get(root, "archMap");
	if (!list && json_is_array(map)) {
		uint32_t native = seccomp_arch_native();
		for (size_t i = 0; i < json_array_size(map); i++) {
			json_t *e = json_array_get(map, i);
			uint32_t a;
			const char *name = json_string_value(json_object_get(e, "architecture"));
			if (!name || parse_arch(name, &a, err) < 0)
				return error_set(err, EINVAL, "seccomp: archMap[%zu]: bad architecture", i);
			if (a != native)
				continue;
			const char *const *subs;
			if (str_array(ps, json_object_get(e, "subArchitectures"), "subArchitectures", &subs, err) < 0)
				return -1;
			size_t n = 1 + strv_len((char *const *)subs);
			ps->arches = xcalloc(n + 1, sizeof(char *));
			ps->arches[0] = name;
			for (size_t k = 1; k < n; k++)
				ps->arches[k] = subs[k - 1];
			list = ps->arches;
		}
	}
	for (size_t i = 0; list && list[i]; i++) {
		uint32_t a;
		if (parse_arch(list[i], &a, err) < 0)
			return -1;
	}
	if (list && list != ps->arches) {
		size_t n = strv_len((char *const *)list);
		ps->arches = xcalloc(n + 1, sizeof(char *));
		memcpy(ps->arches, list, n * sizeof(char *));
	}
	return 0;
}

static int parse_flags(json_t *flags, unsigned *out, struct capsa_error **err)
{
	*out = 0;
	if (!flags || json_is_null(flags))
		return 0;
	if (!json_is_array(flags))
		return error_set(err, EINVAL, "seccomp: flags: not an array");
	for (size_t i = 0; i < json_array_size(flags); i++) {
		const char *f = json_string_value(json_array_get(flags, i));
		size_t k = 0;
		while (k < ARRAY_SIZE(filter_flags) && !str_eq(f, filter_flags[k].name))
			k++;
		if (k == ARRAY_SIZE(filter_flags))
			return error_set(err, EINVAL, "seccomp: unknown flag '%s'", f ? f : "");
		*out |= filter_flags[k].flag;
	}
	return 0;
}

int seccomp_profile_compile_json_flags(const char *json, size_t len, uint64_t caps, struct buf *bpf, unsigned *flags,
				       struct capsa_error **err)
{
	if (len > JSON_MAX)
		return error_set(err, EFBIG, "seccomp profile: larger than %u bytes", JSON_MAX);
	struct parsed ps = { 0 };
	json_error_t je;
	ps.root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!ps.root)
		return error_set(err, EINVAL, "seccomp profile: invalid JSON at line %d: %s", je.line, je.text);
	int rc = -1;
	unsigned fl = 0;
	struct sc_profile p = { .default_errno = -1 };
	if (!json_is_object(ps.root)) {
		error_set(err, EINVAL, "seccomp profile: not a JSON object");
		goto out;
	}
	p.default_action = json_string_value(json_object_get(ps.root, "defaultAction"));
	if (!p.default_action) {
		error_set(err, EINVAL, "seccomp profile: missing defaultAction");
		goto out;
	}
	if (json_object_get(ps.root, "listenerPath") && !json_is_null(json_object_get(ps.root, "listenerPath")) &&
	    *json_string_value(json_object_get(ps.root, "listenerPath"))) {
		error_set(err, ENOTSUP, "seccomp profile: listenerPath (seccomp notify) is not supported");
		goto out;
	}
	if (int_field(ps.root, "defaultErrnoRet", 0, 4095, &p.default_errno, err) < 0 ||
	    parse_arches(ps.root, &ps, err) < 0 || parse_flags(json_object_get(ps.root, "flags"), &fl, err) < 0)
		goto out;
	p.arches = ps.arches;
	json_t *sys = json_object_get(ps.root, "syscalls");
	if (sys && !json_is_null(sys)) {
		if (!json_is_array(sys) || json_array_size(sys) > 4096) {
			error_set(err, EINVAL, "seccomp profile: syscalls: not an array of at most 4096 rules");
			goto out;
		}
		ps.rules = xcalloc(json_array_size(sys) + 1, sizeof(*ps.rules));
		for (size_t i = 0; i < json_array_size(sys); i++)
			if (parse_syscall(json_array_get(sys, i), i, &ps, &ps.rules[ps.n_rules++], err) < 0)
				goto out;
	}
	p.rules = ps.rules;
	p.n_rules = ps.n_rules;
	if (compile_profile(&p, caps, bpf, err) < 0)
		goto out;
	if (flags)
		*flags = fl;
	rc = 0;
out:
	parsed_release(&ps);
	return rc < 0 ? error_wrap(err, "compile seccomp profile") : 0;
}

int seccomp_profile_compile_json(const char *json, size_t len, uint64_t caps, struct buf *bpf,
				 struct capsa_error **err)
{
	return seccomp_profile_compile_json_flags(json, len, caps, bpf, NULL, err);
}

/* --- the default profile as docker JSON ---------------------------------- */

static json_t *strs_json(const char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *filter_json(const char *const *caps, const char *const *arches, const char *min_kernel)
{
	if (!caps && !arches && !min_kernel)
		return NULL;
	json_t *o = json_object();
	if (caps)
		json_object_set_new(o, "caps", strs_json(caps));
	if (arches)
		json_object_set_new(o, "arches", strs_json(arches));
	if (min_kernel)
		json_object_set_new(o, "minKernel", json_string(min_kernel));
	return o;
}

/* oci: only the rules that apply to caps on this machine, without
 * includes/excludes (the runtime-spec's linux.seccomp object). */
static char *default_json(bool oci, uint64_t caps)
{
	const struct sc_profile *p = &seccomp_default_profile;
	json_t *root = json_object();
	json_object_set_new(root, "defaultAction", json_string(p->default_action));
	json_object_set_new(root, "defaultErrnoRet", json_integer(p->default_errno));
	json_object_set_new(root, "architectures", strs_json(p->arches));
	json_t *sys = json_array();
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct sc_rule *r = &p->rules[i];
		if (oci && rule_applies(r, caps, NULL) != 1)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "names", strs_json(r->names));
		json_object_set_new(o, "action", json_string(r->action));
		if (r->errno_ret >= 0)
			json_object_set_new(o, "errnoRet", json_integer(r->errno_ret));
		if (r->n_args) {
			json_t *args = json_array();
			for (size_t k = 0; k < r->n_args; k++) {
				json_t *a = json_object();
				json_object_set_new(a, "index", json_integer(r->args[k].index));
				json_object_set_new(a, "value", json_integer((json_int_t)r->args[k].value));
				json_object_set_new(a, "valueTwo", json_integer((json_int_t)r->args[k].value_two));
				json_object_set_new(a, "op", json_string(r->args[k].op));
				json_array_append_new(args, a);
			}
			json_object_set_new(o, "args", args);
		}
		json_t *inc = oci ? NULL : filter_json(r->caps_in, r->arches_in, r->min_kernel);
		json_t *exc = oci ? NULL : filter_json(r->caps_out, r->arches_out, NULL);
		if (inc)
			json_object_set_new(o, "includes", inc);
		if (exc)
			json_object_set_new(o, "excludes", exc);
		json_array_append_new(sys, o);
	}
	json_object_set_new(root, "syscalls", sys);
	char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return s;
}

char *seccomp_profile_default_json(void)
{
	return default_json(false, 0);
}

char *seccomp_profile_default_oci_json(uint64_t caps)
{
	return default_json(true, caps);
}
