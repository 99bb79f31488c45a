/* features.c: `features` (what this runtime implements, runtime-spec
 * features.md) and `spec` (a default config.json).  Pure data: both say
 * only what create.c and config.c really do. */
#include <jansson.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "linux/caps.h"
#include "linux/cgroup.h"
#include "linux/rootfs.h"
#include "linux/seccomp-profile.h"
#include "oci/internal.h"
#include "util/str.h"

static json_t *strs(const char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

char *oci_features_json(void)
{
	static const char *const hooks[] = { "prestart", "createRuntime", "createContainer", "startContainer",
					     "poststart", "poststop", NULL };
	static const char *const mount_opts[] = {
		"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime",
		"nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private",
		"rbind", "relatime", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave",
		"strictatime", "suid", "sync", "tmpcopyup", "unbindable", NULL,
	};
	static const char *const ns[] = { "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts", NULL };
	static const char *const actions[] = { "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
					       "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
					       "SCMP_ACT_TRACE", "SCMP_ACT_TRAP", NULL };
	static const char *const ops[] = { "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
					   "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE", NULL };
	static const char *const archs[] = { "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32",
					     "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", NULL };
	static const char *const flags[] = { "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
					     "SECCOMP_FILTER_FLAG_TSYNC", NULL };
	json_t *o = json_object();
	json_object_set_new(o, "ociVersionMin", json_string("1.0.0"));
	json_object_set_new(o, "ociVersionMax", json_string(OCI_SPEC_VERSION));
	json_object_set_new(o, "hooks", strs(hooks));
	json_object_set_new(o, "mountOptions", strs(mount_opts));
	json_t *lx = json_object();
	json_object_set_new(lx, "namespaces", strs(ns));
	json_t *caps = json_array();
	for (int c = 0; c <= linux_cap_last(); c++)
		if (linux_cap_name(c))
			json_array_append_new(caps, json_string(linux_cap_name(c)));
	json_object_set_new(lx, "capabilities", caps);
	json_t *cg = json_object();
	json_object_set_new(cg, "v1", json_true());
	json_object_set_new(cg, "v2", json_true());
	/* systemd's "slice:prefix:name" is turned into a path; no unit is made */
	json_object_set_new(cg, "systemd", json_false());
	json_object_set_new(cg, "systemdUser", json_false());
	json_object_set_new(cg, "rdma", json_false());
	json_object_set_new(lx, "cgroup", cg);
	json_t *sc = json_object();
	json_object_set_new(sc, "enabled", json_true());
	json_object_set_new(sc, "actions", strs(actions));
	json_object_set_new(sc, "operators", strs(ops));
	json_object_set_new(sc, "archs", strs(archs));
	json_object_set_new(sc, "knownFlags", strs(flags));
	json_object_set_new(sc, "supportedFlags", strs(flags));
	json_object_set_new(lx, "seccomp", sc);
	json_t *off = json_object();
	json_object_set_new(off, "enabled", json_false());
	json_object_set_new(lx, "apparmor", json_deep_copy(off));
	json_object_set_new(lx, "selinux", json_deep_copy(off));
	json_object_set_new(lx, "intelRdt", json_deep_copy(off));
	json_t *idmap = json_object();
	json_object_set_new(idmap, "idmap", off);
	json_object_set_new(lx, "mountExtensions", idmap);
	json_object_set_new(o, "linux", lx);
	json_t *an = json_object();
	const struct scmp_version *v = seccomp_version();
	char ver[48];
	snprintf(ver, sizeof(ver), "%u.%u.%u", v->major, v->minor, v->micro);
	json_object_set_new(an, "io.github.seccomp.libseccomp.version", json_string(ver));
	json_object_set_new(o, "annotations", an);
	char *s = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

static json_t *mount_json(const char *dest, const char *type, const char *src, const char *const *opts)
{
	json_t *m = json_object();
	json_object_set_new(m, "destination", json_string(dest));
	json_object_set_new(m, "type", json_string(type));
	json_object_set_new(m, "source", json_string(src));
	json_object_set_new(m, "options", strs(opts));
	return m;
}

static json_t *ns_json(const char *type)
{
	json_t *n = json_object();
	json_object_set_new(n, "type", json_string(type));
	return n;
}

static json_t *idmap_json(unsigned id)
{
	json_t *a = json_array(), *m = json_object();
	json_object_set_new(m, "containerID", json_integer(0));
	json_object_set_new(m, "hostID", json_integer(id));
	json_object_set_new(m, "size", json_integer(1));
	json_array_append_new(a, m);
	return a;
}

static json_t *spec_mounts(bool rootless)
{
	static const char *const proc[] = { "nosuid", "noexec", "nodev", NULL };
	static const char *const dev[] = { "nosuid", "strictatime", "mode=755", "size=65536k", NULL };
	static const char *const pts[] = { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5",
					   NULL };
	static const char *const pts_rootless[] = { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
						    NULL };
	static const char *const shm[] = { "nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL };
	static const char *const mq[] = { "nosuid", "noexec", "nodev", NULL };
	static const char *const sys[] = { "nosuid", "noexec", "nodev", "ro", NULL };
	static const char *const sys_rootless[] = { "rbind", "nosuid", "noexec", "nodev", "ro", NULL };
	static const char *const cg[] = { "nosuid", "noexec", "nodev", "relatime", "ro", NULL };
	json_t *a = json_array();
	json_array_append_new(a, mount_json("/proc", "proc", "proc", proc));
	json_array_append_new(a, mount_json("/dev", "tmpfs", "tmpfs", dev));
	json_array_append_new(a, mount_json("/dev/pts", "devpts", "devpts", rootless ? pts_rootless : pts));
	json_array_append_new(a, mount_json("/dev/shm", "tmpfs", "shm", shm));
	json_array_append_new(a, mount_json("/dev/mqueue", "mqueue", "mqueue", mq));
	if (rootless)
		json_array_append_new(a, mount_json("/sys", "none", "/sys", sys_rootless));
	else
		json_array_append_new(a, mount_json("/sys", "sysfs", "sysfs", sys));
	json_array_append_new(a, mount_json("/sys/fs/cgroup", "cgroup", "cgroup", cg));
	return a;
}

char *oci_spec_json(bool rootless)
{
	static const char *const env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
					   "TERM=xterm", NULL };
	static const char *const capl[] = { "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", NULL };
	uint64_t capmask = 0;
	for (size_t i = 0; capl[i]; i++)
		capmask |= UINT64_C(1) << linux_cap_from_name(capl[i]);
	json_t *o = json_object();
	json_object_set_new(o, "ociVersion", json_string(OCI_SPEC_VERSION));
	json_t *p = json_object();
	json_object_set_new(p, "terminal", json_true());
	json_t *user = json_object();
	json_object_set_new(user, "uid", json_integer(0));
	json_object_set_new(user, "gid", json_integer(0));
	json_object_set_new(p, "user", user);
	json_t *args = json_array();
	json_array_append_new(args, json_string("sh"));
	json_object_set_new(p, "args", args);
	json_object_set_new(p, "env", strs(env));
	json_object_set_new(p, "cwd", json_string("/"));
	json_t *caps = json_object();
	static const char *const sets[] = { "bounding", "effective", "permitted", "ambient" };
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++)
		json_object_set_new(caps, sets[i], strs(capl));
	json_object_set_new(p, "capabilities", caps);
	json_t *rl = json_object();
	json_object_set_new(rl, "type", json_string("RLIMIT_NOFILE"));
	json_object_set_new(rl, "hard", json_integer(1024));
	json_object_set_new(rl, "soft", json_integer(1024));
	json_t *rls = json_array();
	json_array_append_new(rls, rl);
	json_object_set_new(p, "rlimits", rls);
	json_object_set_new(p, "noNewPrivileges", json_true());
	json_object_set_new(o, "process", p);
	json_t *root = json_object();
	json_object_set_new(root, "path", json_string("rootfs"));
	json_object_set_new(root, "readonly", json_true());
	json_object_set_new(o, "root", root);
	json_object_set_new(o, "hostname", json_string("capsa"));
	json_object_set_new(o, "mounts", spec_mounts(rootless));
	json_t *lx = json_object();
	if (!rootless) {
		json_t *res = json_object(), *devs = json_array(), *deny = json_object();
		json_object_set_new(deny, "allow", json_false());
		json_object_set_new(deny, "access", json_string("rwm"));
		json_array_append_new(devs, deny);
		json_object_set_new(res, "devices", devs);
		json_object_set_new(lx, "resources", res);
	} else {
		json_object_set_new(lx, "uidMappings", idmap_json((unsigned)getuid()));
		json_object_set_new(lx, "gidMappings", idmap_json((unsigned)getgid()));
	}
	json_t *nss = json_array();
	static const char *const ns_list[] = { "pid", "network", "ipc", "uts", "mount", "cgroup" };
	for (size_t i = 0; i < ARRAY_SIZE(ns_list); i++)
		if (!rootless || strcmp(ns_list[i], "network") != 0)
			json_array_append_new(nss, ns_json(ns_list[i]));
	if (rootless)
		json_array_append_new(nss, ns_json("user"));
	json_object_set_new(lx, "namespaces", nss);
	_cleanup_free_ char *sc = seccomp_profile_default_oci_json(capmask);
	json_t *scj = sc ? json_loads(sc, 0, NULL) : NULL;
	if (scj)
		json_object_set_new(lx, "seccomp", scj);
	json_object_set_new(lx, "maskedPaths", strs((const char *const *)linux_default_masked_paths));
	json_object_set_new(lx, "readonlyPaths", strs((const char *const *)linux_default_readonly_paths));
	json_object_set_new(o, "linux", lx);
	char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}
