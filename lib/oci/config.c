/* config.c: parsing and checking an OCI config.json.  See config.h for the
 * hostile-input rules.  Never touches the filesystem or the process: the
 * result is plain data for create.c. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "image/oci.h"
#include "linux/caps.h"
#include "linux/ns.h"
#include "oci/config.h"
#include "util/fs.h"
#include "util/str.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* --- small typed getters ---------------------------------------------- */

/* Every getter names the field as path ("process.user.uid") in its error. */

/* Optional string: NULL when absent or null. */
static int opt_str(json_t *o, const char *key, const char *what, const char **out, struct capsa_error **err)
{
	*out = NULL;
	json_t *v = o ? json_object_get(o, key) : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return error_set(err, EINVAL, "%s: not a string", what);
	const char *s = json_string_value(v);
	if (strlen(s) != json_string_length(v))
		return error_set(err, EINVAL, "%s: contains a NUL byte", what);
	*out = s;
	return 0;
}

static int opt_bool(json_t *o, const char *key, const char *what, bool *out, struct capsa_error **err)
{
	json_t *v = o ? json_object_get(o, key) : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return error_set(err, EINVAL, "%s: not a boolean", what);
	*out = json_is_true(v);
	return 0;
}

/* Optional integer in [min, max]; *present tells whether it was there. */
static int opt_int(json_t *o, const char *key, const char *what, int64_t min, int64_t max, int64_t *out,
		   bool *present, struct capsa_error **err)
{
	if (present)
		*present = false;
	json_t *v = o ? json_object_get(o, key) : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return error_set(err, EINVAL, "%s: not an integer", what);
	json_int_t n = json_integer_value(v);
	if (n < min || n > max)
		return error_set(err, ERANGE, "%s: %lld is out of range [%lld, %lld]", what, (long long)n,
				 (long long)min, (long long)max);
	*out = n;
	if (present)
		*present = true;
	return 0;
}

static int opt_obj(json_t *o, const char *key, const char *what, json_t **out, struct capsa_error **err)
{
	*out = NULL;
	json_t *v = o ? json_object_get(o, key) : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return error_set(err, EINVAL, "%s: not an object", what);
	*out = v;
	return 0;
}

static int opt_arr(json_t *o, const char *key, const char *what, json_t **out, struct capsa_error **err)
{
	*out = NULL;
	json_t *v = o ? json_object_get(o, key) : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return error_set(err, EINVAL, "%s: not an array", what);
	if (json_array_size(v) > OCI_MAX_ITEMS)
		return error_set(err, E2BIG, "%s: %zu entries, more than the %d allowed", what, json_array_size(v),
				 OCI_MAX_ITEMS);
	*out = v;
	return 0;
}

/* A NULL-terminated vector of the strings of an array (borrowed). */
static int str_vec(json_t *o, const char *key, const char *what, char ***out, struct capsa_error **err)
{
	*out = NULL;
	json_t *a;
	if (opt_arr(o, key, what, &a, err) < 0)
		return -1;
	if (!a)
		return 0;
	char **v = xcalloc(json_array_size(a) + 1, sizeof(char *));
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
			free(v);
			return error_set(err, EINVAL, "%s[%zu]: not a string", what, i);
		}
		v[i] = (char *)json_string_value(e);
	}
	*out = v;
	return 0;
}

static char *own(struct oci_config *c, char *s)
{
	c->owned = strv_push_take(c->owned, s);
	return s;
}

/* --- checks ---------------------------------------------------------------- */

static bool has_dotdot(const char *p)
{
	_cleanup_strv_ char **parts = strv_split(p, '/');
	for (size_t i = 0; parts[i]; i++)
		if (strcmp(parts[i], "..") == 0)
			return true;
	return false;
}

static int check_version(const char *v, struct capsa_error **err)
{
	if (!v)
		return error_set(err, EINVAL, "ociVersion: missing");
	unsigned maj, min;
	char dot;
	if (sscanf(v, "%u.%u%c", &maj, &min, &dot) != 3 || dot != '.' || maj != 1 || min > 2)
		return error_set(err, EINVAL, "ociVersion '%s': unsupported (capsa implements 1.0.0 to %s)", v,
				 OCI_SPEC_VERSION);
	return 0;
}

/* --- process ---------------------------------------------------------------- */

static int parse_caps(json_t *caps, const char *set, const char *what, uint64_t *out, struct capsa_error **err)
{
	*out = 0;
	_cleanup_free_ char *w = xasprintf("%s.%s", what, set);
	_cleanup_free_ char **names = NULL;
	if (str_vec(caps, set, w, &names, err) < 0)
		return -1;
	uint64_t known = linux_caps_all();
	for (size_t i = 0; names && names[i]; i++) {
		int c = linux_cap_from_name(names[i]);
		if (c < 0 || strncmp(names[i], "CAP_", 4) != 0)
			return error_set(err, EINVAL, "%s[%zu]: unknown capability '%s'", w, i, names[i]);
		/* Known to the spec but not to this kernel: nothing to grant. */
		*out |= (UINT64_C(1) << c) & known;
	}
	return 0;
}

static int parse_rlimits(json_t *p, struct oci_process *pr, struct capsa_error **err)
{
	json_t *a;
	if (opt_arr(p, "rlimits", "process.rlimits", &a, err) < 0 || !a)
		return a ? 0 : (err && *err ? -1 : 0);
	pr->rlimits = xcalloc(json_array_size(a) + 1, sizeof(*pr->rlimits));
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		char what[64];
		snprintf(what, sizeof(what), "process.rlimits[%zu]", i);
		if (!json_is_object(e))
			return error_set(err, EINVAL, "%s: not an object", what);
		const char *type;
		if (opt_str(e, "type", what, &type, err) < 0)
			return -1;
		int res = type && strncmp(type, "RLIMIT_", 7) == 0 ? linux_rlimit_from_name(type) : -1;
		if (res < 0)
			return error_set(err, EINVAL, "%s.type: unknown rlimit '%s'", what, type ? type : "");
		for (size_t k = 0; k < pr->n_rlimits; k++)
			if (pr->rlimits[k].resource == res)
				return error_set(err, EINVAL, "%s.type: %s given twice", what, type);
		json_t *soft = json_object_get(e, "soft"), *hard = json_object_get(e, "hard");
		if (!json_is_integer(soft) || !json_is_integer(hard))
			return error_set(err, EINVAL, "%s: soft and hard must be integers", what);
		/* The spec's uint64: jansson reads values above INT64_MAX as
		 * reals or fails; -1 and huge values mean unlimited. */
		json_int_t s = json_integer_value(soft), h = json_integer_value(hard);
		struct linux_rlimit *r = &pr->rlimits[pr->n_rlimits++];
		r->resource = res;
		r->soft = s < 0 ? UINT64_MAX : (uint64_t)s;
		r->hard = h < 0 ? UINT64_MAX : (uint64_t)h;
		if (r->soft > r->hard)
			return error_set(err, EINVAL, "%s: soft limit %llu above hard limit %llu", what,
					 (unsigned long long)r->soft, (unsigned long long)r->hard);
	}
	return 0;
}

static int parse_user(json_t *p, struct oci_process *pr, struct capsa_error **err)
{
	json_t *u;
	if (opt_obj(p, "user", "process.user", &u, err) < 0)
		return -1;
	int64_t v;
	bool have;
	if (opt_int(u, "uid", "process.user.uid", 0, UINT32_MAX - 1, &v, &have, err) < 0)
		return -1;
	pr->uid = have ? (uid_t)v : 0;
	if (opt_int(u, "gid", "process.user.gid", 0, UINT32_MAX - 1, &v, &have, err) < 0)
		return -1;
	pr->gid = have ? (gid_t)v : 0;
	if (opt_int(u, "umask", "process.user.umask", 0, 0777, &v, &pr->has_umask, err) < 0)
		return -1;
	pr->umask = (mode_t)v;
	json_t *g;
	if (opt_arr(u, "additionalGids", "process.user.additionalGids", &g, err) < 0)
		return -1;
	if (g) {
		if (json_array_size(g) > NGROUPS_MAX)
			return error_set(err, E2BIG, "process.user.additionalGids: more than %d groups", NGROUPS_MAX);
		pr->groups = xcalloc(json_array_size(g) + 1, sizeof(gid_t));
		size_t i;
		json_t *e;
		json_array_foreach(g, i, e) {
			if (!json_is_integer(e) || json_integer_value(e) < 0 ||
			    json_integer_value(e) >= (json_int_t)UINT32_MAX)
				return error_set(err, EINVAL, "process.user.additionalGids[%zu]: not a gid", i);
			pr->groups[pr->n_groups++] = (gid_t)json_integer_value(e);
		}
	}
	return 0;
}

static int parse_process_obj(json_t *p, struct oci_process *pr, bool need_args, struct capsa_error **err)
{
	memset(pr, 0, sizeof(*pr));
	if (!json_is_object(p))
		return error_set(err, EINVAL, "process: not an object");
	if (opt_bool(p, "terminal", "process.terminal", &pr->terminal, err) < 0)
		return -1;
	json_t *cs;
	if (opt_obj(p, "consoleSize", "process.consoleSize", &cs, err) < 0)
		return -1;
	int64_t v;
	if (opt_int(cs, "height", "process.consoleSize.height", 0, 65535, &v, NULL, err) < 0)
		return -1;
	pr->console_rows = cs && json_object_get(cs, "height") ? (unsigned short)v : 0;
	if (opt_int(cs, "width", "process.consoleSize.width", 0, 65535, &v, NULL, err) < 0)
		return -1;
	pr->console_cols = cs && json_object_get(cs, "width") ? (unsigned short)v : 0;
	if (parse_user(p, pr, err) < 0)
		return -1;
	if (str_vec(p, "args", "process.args", &pr->args, err) < 0)
		return -1;
	if (need_args && (!pr->args || !pr->args[0]))
		return error_set(err, EINVAL, "process.args: missing or empty");
	if (pr->args && pr->args[0] && !*pr->args[0])
		return error_set(err, EINVAL, "process.args[0]: empty");
	if (json_object_get(p, "commandLine"))
		return error_set(err, EINVAL, "process.commandLine: only for Windows");
	if (str_vec(p, "env", "process.env", &pr->env, err) < 0)
		return -1;
	for (size_t i = 0; pr->env && pr->env[i]; i++)
		if (!strchr(pr->env[i], '=') || pr->env[i][0] == '=')
			return error_set(err, EINVAL, "process.env[%zu] '%s': not KEY=VALUE", i, pr->env[i]);
	if (opt_str(p, "cwd", "process.cwd", &pr->cwd, err) < 0)
		return -1;
	if (need_args && !pr->cwd)
		return error_set(err, EINVAL, "process.cwd: missing");
	if (pr->cwd && pr->cwd[0] != '/')
		return error_set(err, EINVAL, "process.cwd '%s': not an absolute path", pr->cwd);
	json_t *caps;
	if (opt_obj(p, "capabilities", "process.capabilities", &caps, err) < 0)
		return -1;
	if (caps) {
		pr->has_caps = true;
		if (parse_caps(caps, "bounding", "process.capabilities", &pr->cap_bounding, err) < 0 ||
		    parse_caps(caps, "effective", "process.capabilities", &pr->cap_effective, err) < 0 ||
		    parse_caps(caps, "permitted", "process.capabilities", &pr->cap_permitted, err) < 0 ||
		    parse_caps(caps, "inheritable", "process.capabilities", &pr->cap_inheritable, err) < 0 ||
		    parse_caps(caps, "ambient", "process.capabilities", &pr->cap_ambient, err) < 0)
			return -1;
	}
	if (parse_rlimits(p, pr, err) < 0)
		return -1;
	if (opt_bool(p, "noNewPrivileges", "process.noNewPrivileges", &pr->no_new_privs, err) < 0)
		return -1;
	if (opt_int(p, "oomScoreAdj", "process.oomScoreAdj", -1000, 1000, &v, &pr->has_oom_score_adj, err) < 0)
		return -1;
	pr->oom_score_adj = (int)v;
	if (opt_str(p, "apparmorProfile", "process.apparmorProfile", &pr->apparmor, err) < 0 ||
	    opt_str(p, "selinuxLabel", "process.selinuxLabel", &pr->selinux, err) < 0)
		return -1;
	json_t *sched, *io;
	if (opt_obj(p, "scheduler", "process.scheduler", &sched, err) < 0 ||
	    opt_obj(p, "ioPriority", "process.ioPriority", &io, err) < 0)
		return -1;
	if (sched || io)
		return error_set(err, ENOTSUP, "process.%s: not supported by capsa", sched ? "scheduler" : "ioPriority");
	return 0;
}

void oci_process_release(struct oci_process *p)
{
	free(p->groups);
	free(p->args);
	free(p->env);
	free(p->rlimits);
	memset(p, 0, sizeof(*p));
}

/* --- mounts ---------------------------------------------------------------- */

static const struct {
	const char *name;
	unsigned long set, clear;
} mount_flags[] = {
	{ "ro", MS_RDONLY, 0 },	     { "rw", 0, MS_RDONLY },	      { "nosuid", MS_NOSUID, 0 },
	{ "suid", 0, MS_NOSUID },    { "nodev", MS_NODEV, 0 },	      { "dev", 0, MS_NODEV },
	{ "noexec", MS_NOEXEC, 0 },  { "exec", 0, MS_NOEXEC },	      { "sync", MS_SYNCHRONOUS, 0 },
	{ "async", 0, MS_SYNCHRONOUS }, { "dirsync", MS_DIRSYNC, 0 }, { "mand", MS_MANDLOCK, 0 },
	{ "nomand", 0, MS_MANDLOCK }, { "noatime", MS_NOATIME, 0 },   { "atime", 0, MS_NOATIME },
	{ "nodiratime", MS_NODIRATIME, 0 }, { "diratime", 0, MS_NODIRATIME }, { "relatime", MS_RELATIME, 0 },
	{ "norelatime", 0, MS_RELATIME }, { "strictatime", MS_STRICTATIME, 0 }, { "nostrictatime", 0, MS_STRICTATIME },
	{ "defaults", 0, 0 },
};

static const struct {
	const char *name;
	unsigned long prop;
} mount_props[] = {
	{ "private", MS_PRIVATE },		{ "rprivate", MS_PRIVATE | MS_REC },
	{ "shared", MS_SHARED },		{ "rshared", MS_SHARED | MS_REC },
	{ "slave", MS_SLAVE },			{ "rslave", MS_SLAVE | MS_REC },
	{ "unbindable", MS_UNBINDABLE },	{ "runbindable", MS_UNBINDABLE | MS_REC },
};

static unsigned long prop_from_name(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(mount_props); i++)
		if (strcmp(s, mount_props[i].name) == 0)
			return mount_props[i].prop;
	return 0;
}

static int parse_mount_options(json_t *m, const char *what, struct linux_mount *lm, struct oci_config *c,
			       struct capsa_error **err)
{
	_cleanup_free_ char *w = xasprintf("%s.options", what);
	_cleanup_free_ char **opts = NULL;
	if (str_vec(m, "options", w, &opts, err) < 0)
		return -1;
	struct buf data = BUF_INIT;
	for (size_t i = 0; opts && opts[i]; i++) {
		const char *o = opts[i];
		bool done = false;
		for (size_t k = 0; k < ARRAY_SIZE(mount_flags) && !done; k++)
			if (strcmp(o, mount_flags[k].name) == 0) {
				lm->flags = (lm->flags | mount_flags[k].set) & ~mount_flags[k].clear;
				done = true;
			}
		if (done)
			continue;
		if (strcmp(o, "bind") == 0 || strcmp(o, "rbind") == 0) {
			lm->bind = true;
			lm->recursive = lm->recursive || o[0] == 'r';
		} else if (prop_from_name(o)) {
			lm->propagation = prop_from_name(o);
		} else if (strcmp(o, "tmpcopyup") == 0) {
			lm->copy_up = true;
		} else if (strcmp(o, "rro") == 0 || strcmp(o, "rrw") == 0 ||
			   strcmp(o, "idmap") == 0 || strcmp(o, "ridmap") == 0 || strcmp(o, "remount") == 0) {
			buf_release(&data);
			return error_set(err, ENOTSUP, "%s[%zu]: option '%s' is not supported by capsa", w, i, o);
		} else {
			if (strchr(o, ',')) {
				buf_release(&data);
				return error_set(err, EINVAL, "%s[%zu] '%s': contains a comma", w, i, o);
			}
			buf_appendf(&data, "%s%s", data.len ? "," : "", o);
		}
		if (data.len > 4000) {
			buf_release(&data);
			return error_set(err, E2BIG, "%s: filesystem options longer than a page", w);
		}
	}
	if (data.len)
		lm->data = own(c, buf_steal(&data));
	buf_release(&data);
	return 0;
}

static int parse_mounts(json_t *root, struct oci_config *c, struct capsa_error **err)
{
	json_t *a;
	if (opt_arr(root, "mounts", "mounts", &a, err) < 0)
		return -1;
	if (!a)
		return 0;
	c->mounts = xcalloc(json_array_size(a) + 1, sizeof(*c->mounts));
	size_t i;
	json_t *m;
	json_array_foreach(a, i, m) {
		char what[48];
		snprintf(what, sizeof(what), "mounts[%zu]", i);
		if (!json_is_object(m))
			return error_set(err, EINVAL, "%s: not an object", what);
		struct linux_mount *lm = &c->mounts[c->n_mounts++];
		const char *dest, *type, *src;
		char w2[80];
		snprintf(w2, sizeof(w2), "%s.destination", what);
		if (opt_str(m, "destination", w2, &dest, err) < 0)
			return -1;
		if (!dest || !*dest)
			return error_set(err, EINVAL, "%s: missing", w2);
		if (has_dotdot(dest))
			return error_set(err, EINVAL, "%s '%s': contains '..'", w2, dest);
		if (strlen(dest) > PATH_MAX)
			return error_set(err, ENAMETOOLONG, "%s: longer than %d bytes", w2, PATH_MAX);
		/* runc reads a relative destination as relative to the root */
		lm->target = dest[0] == '/' ? dest : own(c, xasprintf("/%s", dest));
		snprintf(w2, sizeof(w2), "%s.type", what);
		if (opt_str(m, "type", w2, &type, err) < 0)
			return -1;
		snprintf(w2, sizeof(w2), "%s.source", what);
		if (opt_str(m, "source", w2, &src, err) < 0)
			return -1;
		lm->source = src;
		if (json_object_get(m, "uidMappings") || json_object_get(m, "gidMappings"))
			return error_set(err, ENOTSUP, "%s: idmapped mounts are not supported by capsa", what);
		if (parse_mount_options(m, what, lm, c, err) < 0)
			return -1;
		if (type && strcmp(type, "bind") == 0)
			lm->bind = true;
		if (lm->bind) {
			if (!src || !*src)
				return error_set(err, EINVAL, "%s.source: a bind mount needs a source", what);
			lm->fstype = NULL;
		} else {
			if (!type || !*type)
				return error_set(err, EINVAL, "%s.type: missing (and not a bind mount)", what);
			if (strchr(type, '/') || strlen(type) > 64)
				return error_set(err, EINVAL, "%s.type '%s': not a filesystem type", what, type);
			lm->fstype = type;
			if (lm->copy_up && strcmp(type, "tmpfs") != 0)
				return error_set(err, EINVAL, "%s.options: tmpcopyup is only for tmpfs", what);
			if (strcmp(type, "cgroup") == 0 && linux_cgroup_mode() == CGROUP_MODE_V2)
				lm->fstype = "cgroup2";
			if (!lm->source)
				lm->source = type;
		}
	}
	return 0;
}

/* --- hooks ------------------------------------------------------------------- */

static const char *const hook_names[OCI_HOOK_KINDS] = {
	"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
};

static int parse_hooks(json_t *root, struct oci_config *c, struct capsa_error **err)
{
	json_t *h;
	if (opt_obj(root, "hooks", "hooks", &h, err) < 0 || !h)
		return err && *err ? -1 : 0;
	for (int k = 0; k < OCI_HOOK_KINDS; k++) {
		_cleanup_free_ char *what = xasprintf("hooks.%s", hook_names[k]);
		json_t *a;
		if (opt_arr(h, hook_names[k], what, &a, err) < 0)
			return -1;
		if (!a)
			continue;
		c->hooks[k] = xcalloc(json_array_size(a) + 1, sizeof(struct oci_hook));
		size_t i;
		json_t *e;
		json_array_foreach(a, i, e) {
			char w[80];
			snprintf(w, sizeof(w), "%s[%zu]", what, i);
			if (!json_is_object(e))
				return error_set(err, EINVAL, "%s: not an object", w);
			struct oci_hook *hk = &c->hooks[k][c->n_hooks[k]++];
			char w2[100];
			snprintf(w2, sizeof(w2), "%s.path", w);
			if (opt_str(e, "path", w2, &hk->path, err) < 0)
				return -1;
			if (!hk->path || hk->path[0] != '/')
				return error_set(err, EINVAL, "%s '%s': not an absolute path", w2, hk->path ? hk->path : "");
			snprintf(w2, sizeof(w2), "%s.args", w);
			if (str_vec(e, "args", w2, &hk->args, err) < 0)
				return -1;
			snprintf(w2, sizeof(w2), "%s.env", w);
			if (str_vec(e, "env", w2, &hk->env, err) < 0)
				return -1;
			snprintf(w2, sizeof(w2), "%s.timeout", w);
			int64_t t = 0;
			bool have;
			if (opt_int(e, "timeout", w2, 1, 86400, &t, &have, err) < 0)
				return -1;
			hk->timeout = have ? (int)t : 0;
		}
	}
	return 0;
}

/* --- linux ------------------------------------------------------------------- */

static int parse_namespaces(json_t *lx, struct oci_config *c, struct capsa_error **err)
{
	json_t *a;
	if (opt_arr(lx, "namespaces", "linux.namespaces", &a, err) < 0 || !a)
		return a ? 0 : (err && *err ? -1 : 0);
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		char what[64];
		snprintf(what, sizeof(what), "linux.namespaces[%zu]", i);
		if (!json_is_object(e))
			return error_set(err, EINVAL, "%s: not an object", what);
		const char *type, *path;
		if (opt_str(e, "type", what, &type, err) < 0 || opt_str(e, "path", what, &path, err) < 0)
			return -1;
		uint64_t f = linux_ns_flag(type);
		/* the spec's names only (not "mnt"/"net") */
		if (!f || strcmp(type, "mnt") == 0 || strcmp(type, "net") == 0)
			return error_set(err, EINVAL, "%s.type: unknown namespace type '%s'", what, type ? type : "");
		if (oci_config_ns(c, f))
			return error_set(err, EINVAL, "%s.type: namespace '%s' listed twice", what, type);
		if (path && (path[0] != '/' || has_dotdot(path)))
			return error_set(err, EINVAL, "%s.path '%s': not an absolute path", what, path);
		if (path && !*path)
			path = NULL;
		c->ns[c->n_ns++] = (struct oci_ns){ .flag = f, .path = path };
	}
	return 0;
}

static int parse_idmaps(json_t *lx, const char *key, struct linux_idmap **out, size_t *n, struct capsa_error **err)
{
	_cleanup_free_ char *what = xasprintf("linux.%s", key);
	json_t *a;
	if (opt_arr(lx, key, what, &a, err) < 0 || !a)
		return a ? 0 : (err && *err ? -1 : 0);
	if (json_array_size(a) > 340)
		return error_set(err, E2BIG, "%s: more than the kernel's 340 ranges", what);
	*out = xcalloc(json_array_size(a) + 1, sizeof(**out));
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		char w[80];
		snprintf(w, sizeof(w), "%s[%zu]", what, i);
		if (!json_is_object(e))
			return error_set(err, EINVAL, "%s: not an object", w);
		int64_t cid, hid, size;
		bool h1, h2, h3;
		if (opt_int(e, "containerID", w, 0, UINT32_MAX - 1, &cid, &h1, err) < 0 ||
		    opt_int(e, "hostID", w, 0, UINT32_MAX - 1, &hid, &h2, err) < 0 ||
		    opt_int(e, "size", w, 1, UINT32_MAX, &size, &h3, err) < 0)
			return -1;
		if (!h1 || !h2 || !h3)
			return error_set(err, EINVAL, "%s: containerID, hostID and size are required", w);
		if (cid + size > (int64_t)UINT32_MAX || hid + size > (int64_t)UINT32_MAX)
			return error_set(err, ERANGE, "%s: range past 2^32", w);
		(*out)[(*n)++] = (struct linux_idmap){ (uint32_t)cid, (uint32_t)hid, (uint32_t)size };
	}
	return 0;
}

static int parse_devices(json_t *lx, struct oci_config *c, struct capsa_error **err)
{
	json_t *a;
	if (opt_arr(lx, "devices", "linux.devices", &a, err) < 0 || !a)
		return a ? 0 : (err && *err ? -1 : 0);
	c->devices = xcalloc(json_array_size(a) + 1, sizeof(*c->devices));
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		char w[64];
		snprintf(w, sizeof(w), "linux.devices[%zu]", i);
		if (!json_is_object(e))
			return error_set(err, EINVAL, "%s: not an object", w);
		struct linux_device *d = &c->devices[c->n_devices++];
		const char *type;
		if (opt_str(e, "path", w, &d->path, err) < 0 || opt_str(e, "type", w, &type, err) < 0)
			return -1;
		if (!d->path || d->path[0] != '/' || has_dotdot(d->path))
			return error_set(err, EINVAL, "%s.path '%s': not an absolute path", w, d->path ? d->path : "");
		if (!type || strlen(type) != 1 || !strchr("cbup", type[0]))
			return error_set(err, EINVAL, "%s.type '%s': not one of c, b, u, p", w, type ? type : "");
		d->type = type[0];
		int64_t maj = 0, min = 0, mode = 0666, uid = 0, gid = 0;
		bool hm, hn;
		if (opt_int(e, "major", w, 0, 0xfff, &maj, &hm, err) < 0 ||
		    opt_int(e, "minor", w, 0, 0xfffff, &min, &hn, err) < 0 ||
		    opt_int(e, "fileMode", w, 0, 07777, &mode, NULL, err) < 0 ||
		    opt_int(e, "uid", w, 0, UINT32_MAX - 1, &uid, NULL, err) < 0 ||
		    opt_int(e, "gid", w, 0, UINT32_MAX - 1, &gid, NULL, err) < 0)
			return -1;
		if (d->type != 'p' && (!hm || !hn))
			return error_set(err, EINVAL, "%s: major and minor are required for type %c", w, d->type);
		d->major = (unsigned)maj;
		d->minor = (unsigned)min;
		d->mode = json_object_get(e, "fileMode") ? (mode_t)mode : 0666;
		d->uid = (uid_t)uid;
		d->gid = (gid_t)gid;
	}
	return 0;
}

static int parse_device_rules(json_t *res, struct oci_config *c, struct capsa_error **err)
{
	json_t *a;
	if (opt_arr(res, "devices", "linux.resources.devices", &a, err) < 0)
		return -1;
	size_t n = a ? json_array_size(a) : 0;
	/* the spec's rules, then what every container needs (as runc adds):
	 * the default devices and the ptys, then the configured devices */
	c->dev_rules = xcalloc(n + 12 + c->n_devices, sizeof(*c->dev_rules));
	size_t i;
	json_t *e;
	if (a)
		json_array_foreach(a, i, e) {
			char w[72];
			snprintf(w, sizeof(w), "linux.resources.devices[%zu]", i);
			if (!json_is_object(e))
				return error_set(err, EINVAL, "%s: not an object", w);
			struct linux_device_rule *r = &c->dev_rules[c->n_dev_rules++];
			bool allow = false;
			const char *type, *access;
			int64_t maj = -1, min = -1;
			if (opt_bool(e, "allow", w, &allow, err) < 0 || opt_str(e, "type", w, &type, err) < 0 ||
			    opt_str(e, "access", w, &access, err) < 0 ||
			    opt_int(e, "major", w, -1, 0xfffff, &maj, NULL, err) < 0 ||
			    opt_int(e, "minor", w, -1, 0xfffff, &min, NULL, err) < 0)
				return -1;
			if (!json_object_get(e, "allow"))
				return error_set(err, EINVAL, "%s.allow: missing", w);
			if (type && (strlen(type) != 1 || !strchr("acb", type[0])))
				return error_set(err, EINVAL, "%s.type '%s': not one of a, c, b", w, type);
			if (access && (strspn(access, "rwm") != strlen(access) || strlen(access) > 3))
				return error_set(err, EINVAL, "%s.access '%s': not a subset of rwm", w, access);
			*r = (struct linux_device_rule){ .allow = allow, .type = type ? type[0] : 'a', .major = maj,
							 .minor = min, .access = access && *access ? access : "rwm" };
		}
	static const struct linux_device_rule always[] = {
		{ true, 'c', 1, 3, "rwm" },  { true, 'c', 1, 5, "rwm" },   { true, 'c', 1, 7, "rwm" },
		{ true, 'c', 1, 8, "rwm" },  { true, 'c', 1, 9, "rwm" },   { true, 'c', 5, 0, "rwm" },
		{ true, 'c', 5, 1, "rwm" },  { true, 'c', 5, 2, "rwm" },   { true, 'c', 136, -1, "rwm" },
		{ true, 'c', 10, 200, "rwm" },
	};
	for (i = 0; i < ARRAY_SIZE(always); i++)
		c->dev_rules[c->n_dev_rules++] = always[i];
	for (i = 0; i < c->n_devices; i++) {
		const struct linux_device *d = &c->devices[i];
		if (d->type == 'p')
			continue;
		c->dev_rules[c->n_dev_rules++] = (struct linux_device_rule){
			.allow = true, .type = d->type == 'b' ? 'b' : 'c', .major = d->major, .minor = d->minor,
			.access = "rwm" };
	}
	c->limits.device_rules = c->dev_rules;
	c->limits.n_device_rules = c->n_dev_rules;
	return 0;
}

/* linux.resources minus devices, into l (shared with `update`). */
static int parse_limits(json_t *res, struct linux_cgroup_limits *l, struct capsa_error **err)
{
	json_t *mem, *cpu, *pids, *blk;
	if (opt_obj(res, "memory", "linux.resources.memory", &mem, err) < 0 ||
	    opt_obj(res, "cpu", "linux.resources.cpu", &cpu, err) < 0 ||
	    opt_obj(res, "pids", "linux.resources.pids", &pids, err) < 0 ||
	    opt_obj(res, "blockIO", "linux.resources.blockIO", &blk, err) < 0)
		return -1;
	int64_t v;
	bool have;
	if (opt_int(mem, "limit", "linux.resources.memory.limit", -1, INT64_MAX, &v, &have, err) < 0)
		return -1;
	if (have && v > 0)
		l->memory = v;
	if (opt_int(mem, "swap", "linux.resources.memory.swap", -1, INT64_MAX, &v, &have, err) < 0)
		return -1;
	if (have)
		l->memory_swap = v > 0 ? v : -1;
	if (l->memory_swap > 0 && l->memory > 0 && l->memory_swap < l->memory)
		return error_set(err, EINVAL, "linux.resources.memory.swap %lld: below the memory limit %lld",
				 (long long)l->memory_swap, (long long)l->memory);
	if (opt_int(cpu, "shares", "linux.resources.cpu.shares", 0, 262144, &v, &have, err) < 0)
		return -1;
	if (have && v > 0)
		l->cpu_shares = v;
	if (opt_int(cpu, "quota", "linux.resources.cpu.quota", -1, INT64_MAX / 2, &v, &have, err) < 0)
		return -1;
	if (have)
		l->cpu_quota_us = v > 0 ? v : 0;
	if (opt_int(cpu, "period", "linux.resources.cpu.period", 0, 1000000, &v, &have, err) < 0)
		return -1;
	if (have && v > 0) {
		if (v < 1000)
			return error_set(err, ERANGE, "linux.resources.cpu.period %lld: below 1000 µs", (long long)v);
		l->cpu_period_us = v;
	}
	if (opt_str(cpu, "cpus", "linux.resources.cpu.cpus", &l->cpuset_cpus, err) < 0 ||
	    opt_str(cpu, "mems", "linux.resources.cpu.mems", &l->cpuset_mems, err) < 0)
		return -1;
	if (l->cpuset_cpus && !*l->cpuset_cpus)
		l->cpuset_cpus = NULL;
	if (l->cpuset_mems && !*l->cpuset_mems)
		l->cpuset_mems = NULL;
	if (opt_int(pids, "limit", "linux.resources.pids.limit", INT64_MIN, INT64_MAX, &v, &have, err) < 0)
		return -1;
	if (have && v > 0)
		l->pids = v;
	if (opt_int(blk, "weight", "linux.resources.blockIO.weight", 0, 1000, &v, &have, err) < 0)
		return -1;
	if (have && v > 0)
		l->blkio_weight = v;
	return 0;
}

/* runc's rule: only namespaced sysctls, and only with the namespace. */
static int check_sysctl(const struct oci_config *c, const char *key, struct capsa_error **err)
{
	static const char *const ipc[] = { "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
					   "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced" };
	uint64_t need = 0;
	for (size_t i = 0; i < ARRAY_SIZE(ipc); i++)
		if (strcmp(key, ipc[i]) == 0)
			need = CLONE_NEWIPC;
	if (str_has_prefix(key, "fs.mqueue."))
		need = CLONE_NEWIPC;
	else if (str_has_prefix(key, "net."))
		need = CLONE_NEWNET;
	else if (strcmp(key, "kernel.hostname") == 0 || strcmp(key, "kernel.domainname") == 0)
		need = CLONE_NEWUTS;
	if (!need)
		return error_set(err, EPERM, "linux.sysctl '%s': not namespaced, so not allowed in a container", key);
	if (!oci_config_ns(c, need))
		return error_set(err, EPERM, "linux.sysctl '%s': needs the container's own %s namespace", key,
				 linux_ns_name(need));
	if (has_dotdot(key) || strstr(key, "..") || key[0] == '/' || key[0] == '.')
		return error_set(err, EINVAL, "linux.sysctl '%s': not a sysctl name", key);
	return 0;
}

static int parse_sysctl(json_t *lx, struct oci_config *c, struct capsa_error **err)
{
	json_t *o;
	if (opt_obj(lx, "sysctl", "linux.sysctl", &o, err) < 0 || !o)
		return o ? 0 : (err && *err ? -1 : 0);
	if (json_object_size(o) > OCI_MAX_ITEMS)
		return error_set(err, E2BIG, "linux.sysctl: more than %d entries", OCI_MAX_ITEMS);
	c->sysctl = xcalloc(2 * json_object_size(o) + 1, sizeof(char *));
	size_t k = 0;
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v) {
		if (!json_is_string(v))
			return error_set(err, EINVAL, "linux.sysctl.%s: not a string", key);
		if (check_sysctl(c, key, err) < 0)
			return -1;
		c->sysctl[k++] = (char *)key;
		c->sysctl[k++] = (char *)json_string_value(v);
	}
	return 0;
}

static int parse_linux(json_t *root, struct oci_config *c, struct capsa_error **err)
{
	json_t *lx;
	if (opt_obj(root, "linux", "linux", &lx, err) < 0)
		return -1;
	if (parse_namespaces(lx, c, err) < 0 || parse_idmaps(lx, "uidMappings", &c->uid_maps, &c->n_uid_maps, err) < 0 ||
	    parse_idmaps(lx, "gidMappings", &c->gid_maps, &c->n_gid_maps, err) < 0 || parse_devices(lx, c, err) < 0)
		return -1;
	const struct oci_ns *user = oci_config_ns(c, CLONE_NEWUSER);
	if ((c->n_uid_maps || c->n_gid_maps) && (!user || user->path))
		return error_set(err, EINVAL, "linux.uidMappings: mappings need a new user namespace");
	if (user && !user->path && (!c->n_uid_maps || !c->n_gid_maps))
		return error_set(err, EINVAL, "linux.namespaces: a new user namespace needs uidMappings and gidMappings");
	if (opt_str(lx, "cgroupsPath", "linux.cgroupsPath", &c->cgroups_path, err) < 0)
		return -1;
	if (c->cgroups_path && (has_dotdot(c->cgroups_path) || strlen(c->cgroups_path) > 1024))
		return error_set(err, EINVAL, "linux.cgroupsPath '%s': contains '..' or is too long", c->cgroups_path);
	json_t *res;
	if (opt_obj(lx, "resources", "linux.resources", &res, err) < 0 || parse_limits(res, &c->limits, err) < 0 ||
	    parse_device_rules(res, c, err) < 0 || parse_sysctl(lx, c, err) < 0)
		return -1;
	json_t *sc;
	if (opt_obj(lx, "seccomp", "linux.seccomp", &sc, err) < 0)
		return -1;
	if (sc) {
		if (json_object_get(sc, "listenerPath"))
			return error_set(err, ENOTSUP, "linux.seccomp.listenerPath: seccomp notify is not supported by capsa");
		c->seccomp = json_dumps(sc, JSON_COMPACT);
	}
	if (str_vec(lx, "maskedPaths", "linux.maskedPaths", &c->masked_paths, err) < 0 ||
	    str_vec(lx, "readonlyPaths", "linux.readonlyPaths", &c->readonly_paths, err) < 0)
		return -1;
	char **lists[2] = { c->masked_paths, c->readonly_paths };
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; lists[k] && lists[k][i]; i++)
			if (lists[k][i][0] != '/' || has_dotdot(lists[k][i]))
				return error_set(err, EINVAL, "linux.%s[%zu] '%s': not an absolute path without '..'",
						 k ? "readonlyPaths" : "maskedPaths", i, lists[k][i]);
	const char *prop;
	if (opt_str(lx, "rootfsPropagation", "linux.rootfsPropagation", &prop, err) < 0)
		return -1;
	if (prop && *prop) {
		c->rootfs_propagation = prop_from_name(prop);
		if (!c->rootfs_propagation)
			return error_set(err, EINVAL, "linux.rootfsPropagation '%s': not a propagation type", prop);
		c->rootfs_propagation |= MS_REC;
	}
	json_t *x;
	if (opt_obj(lx, "intelRdt", "linux.intelRdt", &x, err) < 0 || x)
		return x ? error_set(err, ENOTSUP, "linux.intelRdt: not supported by capsa") : -1;
	if (opt_obj(lx, "personality", "linux.personality", &x, err) < 0 || x)
		return x ? error_set(err, ENOTSUP, "linux.personality: not supported by capsa") : -1;
	return 0;
}

/* --- entry points ---------------------------------------------------------- */

const struct oci_ns *oci_config_ns(const struct oci_config *c, uint64_t flag)
{
	for (size_t i = 0; i < c->n_ns; i++)
		if (c->ns[i].flag == flag)
			return &c->ns[i];
	return NULL;
}

const char *oci_env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

static json_t *load_json(const char *what, const char *text, size_t len, struct capsa_error **err)
{
	return json_load_object(what, text, len, OCI_CONFIG_MAX, OCI_CONFIG_MAX_DEPTH, err);
}

static int parse_root(json_t *root, struct oci_config *c, struct capsa_error **err)
{
	json_t *r;
	if (opt_obj(root, "root", "root", &r, err) < 0)
		return -1;
	if (!r)
		return error_set(err, EINVAL, "root: missing");
	if (opt_str(r, "path", "root.path", &c->root_path, err) < 0 ||
	    opt_bool(r, "readonly", "root.readonly", &c->root_readonly, err) < 0)
		return -1;
	if (!c->root_path || !*c->root_path)
		return error_set(err, EINVAL, "root.path: missing");
	if (c->root_path[0] != '/' && has_dotdot(c->root_path))
		return error_set(err, EINVAL, "root.path '%s': a relative path that leaves the bundle", c->root_path);
	return 0;
}

static int parse_all(json_t *root, struct oci_config *c, struct capsa_error **err)
{
	if (opt_str(root, "ociVersion", "ociVersion", &c->version, err) < 0 || check_version(c->version, err) < 0)
		return -1;
	if (parse_root(root, c, err) < 0)
		return -1;
	if (opt_str(root, "hostname", "hostname", &c->hostname, err) < 0 ||
	    opt_str(root, "domainname", "domainname", &c->domainname, err) < 0)
		return -1;
	if ((c->hostname && strlen(c->hostname) > 64) || (c->domainname && strlen(c->domainname) > 64))
		return error_set(err, EINVAL, "%s: longer than 64 bytes", c->hostname && strlen(c->hostname) > 64 ?
				 "hostname" : "domainname");
	if (parse_mounts(root, c, err) < 0)
		return -1;
	json_t *p = json_object_get(root, "process");
	if (p && !json_is_null(p)) {
		if (parse_process_obj(p, &c->process, true, err) < 0)
			return -1;
		c->has_process = true;
	}
	if (parse_hooks(root, c, err) < 0 || parse_linux(root, c, err) < 0)
		return -1;
	if ((c->hostname || c->domainname) && !oci_config_ns(c, CLONE_NEWUTS))
		return error_set(err, EINVAL, "hostname: setting it needs a new uts namespace");
	json_t *an;
	if (opt_obj(root, "annotations", "annotations", &an, err) < 0)
		return -1;
	const char *key;
	json_t *v;
	if (an)
		json_object_foreach(an, key, v) if (!json_is_string(v)) return error_set(
			err, EINVAL, "annotations.%s: not a string", key);
	if (json_object_get(root, "windows") || json_object_get(root, "solaris") || json_object_get(root, "vm"))
		return error_set(err, ENOTSUP, "config.json: not a Linux container configuration");
	return 0;
}

int oci_config_parse(const char *text, size_t len, struct oci_config *c, struct capsa_error **err)
{
	memset(c, 0, sizeof(*c));
	struct linux_cgroup_limits none = LINUX_CGROUP_LIMITS_INIT;
	c->limits = none;
	json_t *root = load_json("config.json", text, len, err);
	if (!root)
		return -1;
	c->json = root;
	if (parse_all(root, c, err) < 0) {
		oci_config_release(c);
		return error_wrap(err, "config.json");
	}
	return 0;
}

int oci_config_load(int bundle_fd, struct oci_config *c, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	memset(c, 0, sizeof(*c));
	if (read_file_at(bundle_fd, "config.json", OCI_CONFIG_MAX, &b, err) < 0) {
		buf_release(&b);
		return -1;
	}
	int rc = oci_config_parse(b.data ? b.data : "", b.len, c, err);
	buf_release(&b);
	return rc;
}

void oci_config_release(struct oci_config *c)
{
	if (!c)
		return;
	free(c->mounts);
	oci_process_release(&c->process);
	for (int k = 0; k < OCI_HOOK_KINDS; k++) {
		for (size_t i = 0; i < c->n_hooks[k]; i++) {
			free(c->hooks[k][i].args);
			free(c->hooks[k][i].env);
		}
		free(c->hooks[k]);
	}
	free(c->uid_maps);
	free(c->gid_maps);
	free(c->devices);
	free(c->dev_rules);
	free(c->sysctl);
	free(c->seccomp);
	free(c->masked_paths);
	free(c->readonly_paths);
	strv_free(c->owned);
	json_decref(c->json);
	memset(c, 0, sizeof(*c));
}

int oci_process_parse(const char *text, size_t len, struct oci_process *p, void **json_out, struct capsa_error **err)
{
	*json_out = NULL;
	memset(p, 0, sizeof(*p));
	json_t *root = load_json("process.json", text, len, err);
	if (!root)
		return -1;
	if (parse_process_obj(root, p, true, err) < 0) {
		oci_process_release(p);
		json_decref(root);
		return error_wrap(err, "process.json");
	}
	*json_out = root;
	return 0;
}

int oci_resources_parse(const char *text, size_t len, struct linux_cgroup_limits *l, void **json_out,
			struct capsa_error **err)
{
	struct linux_cgroup_limits none = LINUX_CGROUP_LIMITS_INIT;
	*l = none;
	*json_out = NULL;
	json_t *root = load_json("resources", text, len, err);
	if (!root)
		return -1;
	if (parse_limits(root, l, err) < 0) {
		json_decref(root);
		return error_wrap(err, "resources");
	}
	*json_out = root;
	return 0;
}
