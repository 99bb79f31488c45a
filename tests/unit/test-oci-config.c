/* test-oci-config.c: config.json parsing and checking (lib/oci/config.c),
 * the container id rule, systemd cgroup paths, the state and log formats.
 * Every bad input of issue 6 that does not need a running container is
 * here; the rest (namespace paths, create twice, start twice) is in
 * tests/e2e/test_oci.py. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include "oci/config.h"
#include "oci/internal.h"
#include "oci/oci.h"
#include "tap.h"
#include "util/fs.h"
#include "util/str.h"

static const char base[] =
	"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
	"\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\",\"env\":[\"PATH=/bin\"]},"
	"\"linux\":{\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"pid\"}]}}";

/* base with one field replaced (path like "process.cwd"; value JSON text,
 * or NULL to delete the field) */
static char *with(const char *path, const char *value)
{
	json_t *root = json_loads(base, 0, NULL);
	_cleanup_strv_ char **parts = strv_split(path, '.');
	json_t *o = root;
	size_t n = strv_len(parts);
	for (size_t i = 0; i + 1 < n; i++) {
		json_t *next = json_object_get(o, parts[i]);
		if (!next) {
			next = json_object();
			json_object_set_new(o, parts[i], next);
		}
		o = next;
	}
	if (value)
		json_object_set_new(o, parts[n - 1], json_loads(value, JSON_DECODE_ANY, NULL));
	else
		json_object_del(o, parts[n - 1]);
	char *s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

/* Parsing text fails with an error containing want. */
static void bad(const char *text, const char *want, const char *what)
{
	struct oci_config c;
	struct capsa_error *err = NULL;
	int rc = oci_config_parse(text, strlen(text), &c, &err);
	ok(rc < 0 && err && strstr(err->msg, want), "%s: refused naming '%s'", what, want);
	if (rc == 0 || !err || !strstr(err->msg, want))
		diag("got: %s", err ? err->msg : "(accepted)");
	if (rc == 0)
		oci_config_release(&c);
	capsa_error_free(err);
}

static void bad_field(const char *path, const char *value, const char *want)
{
	_cleanup_free_ char *t = with(path, value);
	char what[160];
	snprintf(what, sizeof(what), "%s=%s", path, value ? value : "(deleted)");
	bad(t, want, what);
}

static void test_bad_inputs(void)
{
	bad("", "invalid JSON", "empty config");
	bad("{\"ociVersion\": ", "invalid JSON", "truncated config");
	bad("[1,2]", "not a JSON object", "an array");
	bad("{\"a\":1,\"a\":2}", "invalid JSON", "duplicate keys");
	bad_field("ociVersion", "\"0.5.0\"", "ociVersion '0.5.0': unsupported");
	bad_field("ociVersion", "\"2.0.0\"", "unsupported");
	bad_field("ociVersion", NULL, "ociVersion: missing");
	bad_field("ociVersion", "12", "ociVersion: not a string");
	bad_field("root", NULL, "root: missing");
	bad_field("root.path", "\"../../etc\"", "root.path '../../etc': a relative path that leaves the bundle");
	bad_field("root.path", "\"rootfs/../../x\"", "leaves the bundle");
	bad_field("mounts", "[{\"destination\":\"/a/../../etc\",\"type\":\"tmpfs\"}]",
		  "mounts[0].destination '/a/../../etc': contains '..'");
	bad_field("mounts", "[{\"type\":\"tmpfs\"}]", "mounts[0].destination: missing");
	bad_field("mounts", "[{\"destination\":\"/x\"}]", "mounts[0].type: missing");
	bad_field("mounts", "[{\"destination\":\"/x\",\"type\":\"bind\"}]", "a bind mount needs a source");
	bad_field("mounts", "[{\"destination\":\"/x\",\"type\":\"tmpfs\",\"options\":[\"a,b\"]}]", "contains a comma");
	bad_field("mounts", "[{\"destination\":\"/x\",\"type\":\"proc\",\"options\":[\"tmpcopyup\"]}]",
		  "tmpcopyup is only for tmpfs");
	bad_field("mounts", "{}", "mounts: not an array");
	bad_field("linux.namespaces", "[{\"type\":\"mount\"},{\"type\":\"bogus\"}]",
		  "linux.namespaces[1].type: unknown namespace type 'bogus'");
	bad_field("linux.namespaces", "[{\"type\":\"mnt\"}]", "unknown namespace type 'mnt'");
	bad_field("linux.namespaces", "[{\"type\":\"pid\"},{\"type\":\"pid\"}]", "listed twice");
	bad_field("linux.namespaces", "[{\"type\":\"net\",\"path\":\"relative/x\"}]", "unknown namespace type 'net'");
	bad_field("linux.namespaces", "[{\"type\":\"network\",\"path\":\"relative/x\"}]", "not an absolute path");
	bad_field("process.capabilities", "{\"bounding\":[\"CAP_CHOWN\",\"CAP_FLY\"]}",
		  "process.capabilities.bounding[1]: unknown capability 'CAP_FLY'");
	bad_field("process.capabilities", "{\"effective\":[\"chown\"]}", "unknown capability 'chown'");
	bad_field("process.args", "[]", "process.args: missing or empty");
	bad_field("process.args", "[\"\"]", "process.args[0]: empty");
	bad_field("process.args", "[1]", "process.args[0]: not a string");
	bad_field("process.cwd", "\"relative\"", "process.cwd 'relative': not an absolute path");
	bad_field("process.env", "[\"NOEQUALS\"]", "not KEY=VALUE");
	bad_field("process.user", "{\"uid\":-1}", "process.user.uid: -1 is out of range");
	bad_field("process.user", "{\"uid\":\"0\"}", "process.user.uid: not an integer");
	bad_field("process.rlimits", "[{\"type\":\"RLIMIT_BOGUS\",\"soft\":1,\"hard\":1}]", "unknown rlimit 'RLIMIT_BOGUS'");
	bad_field("process.rlimits", "[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":1}]", "above hard limit");
	bad_field("process.rlimits",
		  "[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1,\"hard\":1},{\"type\":\"RLIMIT_NOFILE\",\"soft\":1,\"hard\":1}]",
		  "given twice");
	bad_field("process.oomScoreAdj", "5000", "process.oomScoreAdj: 5000 is out of range");
	bad_field("hooks", "{\"prestart\":[{\"path\":\"relative\"}]}", "hooks.prestart[0].path 'relative': not an absolute path");
	bad_field("hooks", "{\"poststop\":[{\"path\":\"/bin/true\",\"timeout\":0}]}", "hooks.poststop[0].timeout");
	bad_field("linux.sysctl", "{\"kernel.core_pattern\":\"|/x\"}", "linux.sysctl 'kernel.core_pattern': not namespaced");
	bad_field("linux.sysctl", "{\"net.ipv4.ip_forward\":\"1\"}", "needs the container's own net namespace");
	bad_field("linux.sysctl", "{\"kernel.shmmax\":1}", "linux.sysctl.kernel.shmmax: not a string");
	bad_field("linux.devices", "[{\"path\":\"dev/x\",\"type\":\"c\",\"major\":1,\"minor\":3}]", "not an absolute path");
	bad_field("linux.devices", "[{\"path\":\"/dev/x\",\"type\":\"z\",\"major\":1,\"minor\":3}]", "not one of c, b, u, p");
	bad_field("linux.devices", "[{\"path\":\"/dev/x\",\"type\":\"c\"}]", "major and minor are required");
	bad_field("linux.resources", "{\"devices\":[{\"allow\":true,\"access\":\"rwx\"}]}", "not a subset of rwm");
	bad_field("linux.resources", "{\"devices\":[{\"access\":\"r\"}]}", "allow: missing");
	bad_field("linux.resources", "{\"memory\":{\"limit\":100,\"swap\":50}}", "below the memory limit");
	bad_field("linux.resources", "{\"cpu\":{\"period\":10}}", "below 1000");
	bad_field("linux.uidMappings", "[{\"containerID\":0,\"hostID\":1000,\"size\":1}]",
		  "mappings need a new user namespace");
	bad_field("linux.rootfsPropagation", "\"sideways\"", "not a propagation type");
	bad_field("linux.maskedPaths", "[\"/proc/../etc\"]", "not an absolute path without '..'");
	bad_field("linux.cgroupsPath", "\"/a/../../b\"", "linux.cgroupsPath");
	bad_field("linux.seccomp", "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/x\"}", "notify is not supported");
	bad_field("hostname", "\"h\"", "needs a new uts namespace");
	bad_field("process.terminal", "\"yes\"", "process.terminal: not a boolean");
	bad_field("annotations", "{\"a\":1}", "annotations.a: not a string");
	bad_field("windows", "{}", "not a Linux container configuration");

	/* size and nesting caps, checked before parsing */
	size_t big = OCI_CONFIG_MAX + 10;
	char *huge = malloc(big + 1);
	memset(huge, ' ', big);
	huge[0] = '{';
	huge[big - 1] = '}';
	huge[big] = '\0';
	bad(huge, "more than the", "a config over the size cap");
	free(huge);
	struct buf deep = BUF_INIT;
	for (int i = 0; i < 100; i++)
		buf_append(&deep, "[", 1);
	for (int i = 0; i < 100; i++)
		buf_append(&deep, "]", 1);
	_cleanup_free_ char *d = with("annotations", buf_cstr(&deep));
	buf_release(&deep);
	bad(d, "nested more than", "a config nested 100 deep");
	struct buf many = BUF_INIT;
	buf_append(&many, "[", 1);
	for (int i = 0; i < OCI_MAX_ITEMS + 1; i++)
		buf_appendf(&many, "%s\"A%d=1\"", i ? "," : "", i);
	buf_append(&many, "]", 1);
	_cleanup_free_ char *m = with("process.env", buf_cstr(&many));
	buf_release(&many);
	bad(m, "entries, more than the", "an env of more than OCI_MAX_ITEMS");
}

static void test_missing_file(void)
{
	char dir[] = "/tmp/capsa-oci-test-XXXXXX";
	ok(mkdtemp(dir) != NULL, "temp bundle");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct oci_config c;
	struct capsa_error *err = NULL;
	ok(oci_config_load(fd, &c, &err) < 0 && err && strstr(err->msg, "config.json") && err->code == ENOENT,
	   "a bundle without config.json is refused naming the file (%s)", err ? err->msg : "");
	capsa_error_free(err);
	close(fd);
	rmdir(dir);
}

static void test_full_config(void)
{
	const char *t =
		"{\"ociVersion\":\"1.1.0\",\"root\":{\"path\":\"/r\",\"readonly\":true},\"hostname\":\"h1\","
		"\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
		"{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"vol\",\"options\":[\"rbind\",\"ro\",\"rslave\"]},"
		"{\"destination\":\"tmp\",\"type\":\"tmpfs\",\"options\":[\"nosuid\",\"mode=1777\",\"size=1m\",\"tmpcopyup\"]}],"
		"\"process\":{\"terminal\":true,\"consoleSize\":{\"height\":30,\"width\":100},"
		"\"user\":{\"uid\":1000,\"gid\":100,\"umask\":63,\"additionalGids\":[5,6]},"
		"\"args\":[\"/bin/sh\",\"-c\",\"x\"],\"env\":[\"PATH=/usr/bin\",\"A=b=c\"],\"cwd\":\"/w\","
		"\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_KILL\"],\"effective\":[\"CAP_KILL\"],"
		"\"permitted\":[\"CAP_KILL\"],\"ambient\":[\"CAP_KILL\"]},"
		"\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":100,\"hard\":200}],"
		"\"noNewPrivileges\":true,\"oomScoreAdj\":100,\"apparmorProfile\":\"p\"},"
		"\"hooks\":{\"createRuntime\":[{\"path\":\"/bin/true\",\"args\":[\"true\",\"x\"],\"timeout\":5}],"
		"\"poststop\":[{\"path\":\"/bin/false\"}]},"
		"\"linux\":{\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"uts\"},{\"type\":\"ipc\"},"
		"{\"type\":\"network\",\"path\":\"/proc/1/ns/net\"}],"
		"\"devices\":[{\"path\":\"/dev/fuse\",\"type\":\"c\",\"major\":10,\"minor\":229,\"fileMode\":438}],"
		"\"resources\":{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}],\"memory\":{\"limit\":1048576,"
		"\"swap\":2097152},\"cpu\":{\"quota\":50000,\"period\":100000,\"shares\":512,\"cpus\":\"0\"},"
		"\"pids\":{\"limit\":64},\"blockIO\":{\"weight\":300}},"
		"\"cgroupsPath\":\"/a/b\",\"sysctl\":{\"kernel.shmmax\":\"100\",\"net.ipv4.ip_forward\":\"1\"},"
		"\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\"},\"maskedPaths\":[\"/proc/kcore\"],"
		"\"readonlyPaths\":[\"/proc/sys\"],\"rootfsPropagation\":\"rshared\"},"
		"\"annotations\":{\"k\":\"v\"}}";
	struct oci_config c;
	struct capsa_error *err = NULL;
	int rc = oci_config_parse(t, strlen(t), &c, &err);
	ok(rc == 0, "a full config parses (%s)", err ? err->msg : "");
	capsa_error_free(err);
	if (rc < 0)
		return;
	is_str(c.root_path, "/r", "root.path");
	ok(c.root_readonly, "root.readonly");
	is_str(c.hostname, "h1", "hostname");
	is_int(c.n_mounts, 3, "three mounts");
	ok(c.mounts[1].bind && c.mounts[1].recursive && (c.mounts[1].flags & MS_RDONLY) &&
		   c.mounts[1].propagation == (MS_SLAVE | MS_REC),
	   "rbind,ro,rslave: a recursive read-only slave bind");
	is_str(c.mounts[2].target, "/tmp", "a relative destination is taken from the root");
	is_str(c.mounts[2].data, "mode=1777,size=1m", "filesystem options go to data");
	ok(c.mounts[2].copy_up && (c.mounts[2].flags & MS_NOSUID), "tmpcopyup and nosuid");
	const struct oci_process *p = &c.process;
	ok(p->terminal && p->console_rows == 30 && p->console_cols == 100, "terminal and console size");
	ok(p->uid == 1000 && p->gid == 100 && p->n_groups == 2 && p->groups[1] == 6, "user");
	ok(p->has_umask && p->umask == 077, "umask");
	is_str(p->args[2], "x", "args");
	is_str(oci_env_get(p->env, "A"), "b=c", "env values keep their '='");
	ok(p->has_caps && p->cap_bounding == ((1ULL << 0) | (1ULL << 5)) && p->cap_effective == (1ULL << 5) &&
		   p->cap_inheritable == 0 && p->cap_ambient == (1ULL << 5),
	   "capability sets");
	ok(p->n_rlimits == 1 && p->rlimits[0].resource == RLIMIT_NOFILE && p->rlimits[0].soft == 100 &&
		   p->rlimits[0].hard == 200,
	   "rlimits");
	ok(p->no_new_privs && p->has_oom_score_adj && p->oom_score_adj == 100, "noNewPrivileges, oomScoreAdj");
	is_str(p->apparmor, "p", "apparmor profile kept (ignored with a warning at create)");
	ok(c.n_hooks[OCI_HOOK_CREATE_RUNTIME] == 1 && c.hooks[OCI_HOOK_CREATE_RUNTIME][0].timeout == 5 &&
		   strcmp(c.hooks[OCI_HOOK_CREATE_RUNTIME][0].args[1], "x") == 0,
	   "createRuntime hook");
	is_int(c.n_hooks[OCI_HOOK_POSTSTOP], 1, "poststop hook");
	const struct oci_ns *net = oci_config_ns(&c, CLONE_NEWNET);
	ok(net && net->path && strcmp(net->path, "/proc/1/ns/net") == 0, "network namespace by path");
	ok(oci_config_ns(&c, CLONE_NEWNS) && !oci_config_ns(&c, CLONE_NEWPID), "namespace lookup");
	ok(c.n_devices == 1 && c.devices[0].major == 10 && c.devices[0].minor == 229 && c.devices[0].mode == 0666,
	   "devices");
	ok(c.n_dev_rules >= 2 && !c.dev_rules[0].allow && c.dev_rules[0].type == 'a' &&
		   c.dev_rules[c.n_dev_rules - 1].allow && c.dev_rules[c.n_dev_rules - 1].major == 10,
	   "device rules: the config's, then the defaults, then the configured devices");
	ok(c.limits.memory == 1048576 && c.limits.memory_swap == 2097152 && c.limits.cpu_quota_us == 50000 &&
		   c.limits.cpu_period_us == 100000 && c.limits.cpu_shares == 512 && c.limits.pids == 64 &&
		   c.limits.blkio_weight == 300 && str_eq(c.limits.cpuset_cpus, "0"),
	   "resources");
	is_str(c.cgroups_path, "/a/b", "cgroupsPath");
	ok(c.sysctl && strv_len(c.sysctl) == 4, "two sysctls");
	ok(c.seccomp && strstr(c.seccomp, "SCMP_ACT_ALLOW"), "seccomp kept as JSON");
	ok(c.rootfs_propagation == (MS_SHARED | MS_REC), "rootfsPropagation");
	oci_config_release(&c);
}

static void test_process_and_resources(void)
{
	const char *t = "{\"args\":[\"ls\"],\"cwd\":\"/\",\"terminal\":true}";
	struct oci_process p;
	void *j = NULL;
	struct capsa_error *err = NULL;
	ok(oci_process_parse(t, strlen(t), &p, &j, &err) == 0 && p.terminal && strcmp(p.args[0], "ls") == 0,
	   "exec --process JSON");
	oci_process_release(&p);
	json_decref(j);
	const char *noargs = "{\"cwd\":\"/\"}";
	ok(oci_process_parse(noargs, strlen(noargs), &p, &j, &err) < 0 && err && strstr(err->msg, "process.args"),
	   "exec --process without args is refused");
	capsa_error_free(err);
	err = NULL;
	struct linux_cgroup_limits l;
	const char *r = "{\"memory\":{\"limit\":2000000},\"pids\":{\"limit\":10},\"cpu\":{\"cpus\":\"0-1\"}}";
	ok(oci_resources_parse(r, strlen(r), &l, &j, &err) == 0 && l.memory == 2000000 && l.pids == 10 &&
		   str_eq(l.cpuset_cpus, "0-1") && l.cpu_quota_us == -1,
	   "update --resources");
	json_decref(j);
	const char *badr = "{\"pids\":{\"limit\":\"x\"}}";
	ok(oci_resources_parse(badr, strlen(badr), &l, &j, &err) < 0 && err &&
		   strstr(err->msg, "linux.resources.pids.limit"),
	   "bad resources name the field");
	capsa_error_free(err);
}

static void test_ids_and_paths(void)
{
	struct capsa_error *err = NULL;
	ok(oci_id_check("abc-1.2_x+y", NULL) == 0, "a valid id");
	ok(oci_id_check("a/b", &err) < 0 && strstr(err->msg, "a/b"), "an id with '/' is refused");
	capsa_error_free(err);
	err = NULL;
	char longid[2001];
	memset(longid, 'a', 2000);
	longid[2000] = '\0';
	ok(oci_id_check(longid, &err) < 0 && strstr(err->msg, "2000 characters"), "a 2000-character id is refused");
	capsa_error_free(err);
	ok(oci_id_check("..", NULL) < 0 && oci_id_check("", NULL) < 0, "'..' and '' are refused");
	struct oci_global g = { 0 };
	_cleanup_free_ char *d = oci_cgroup_name(&g, NULL, "x", NULL);
	is_str(d, "/capsa-oci/x", "default cgroup path");
	_cleanup_free_ char *rel = oci_cgroup_name(&g, "a/b", "x", NULL);
	is_str(rel, "/a/b", "a relative cgroupsPath goes below the root");
	g.systemd_cgroup = true;
	_cleanup_free_ char *sd = oci_cgroup_name(&g, "machine-x.slice:libpod:abc", "x", NULL);
	is_str(sd, "/machine.slice/machine-x.slice/libpod-abc.scope", "systemd slice:prefix:name");
	err = NULL;
	_cleanup_free_ char *bad = oci_cgroup_name(&g, "nocolons", "x", &err);
	ok(!bad && err && strstr(err->msg, "slice:prefix:name"), "a systemd path without colons is refused");
	capsa_error_free(err);
}

static void test_state_and_log(void)
{
	struct oci_state st = { .id = (char *)"c1", .bundle = (char *)"/b", .pid = 42, .created_ms = 1700000000000,
				.annotations = (char *)"{\"k\":\"v\"}" };
	_cleanup_free_ char *s = oci_state_json(&st, OCI_CREATED);
	json_t *j = json_loads(s, 0, NULL);
	ok(j && str_eq(json_string_value(json_object_get(j, "status")), "created") &&
		   json_integer_value(json_object_get(j, "pid")) == 42 &&
		   str_eq(json_string_value(json_object_get(j, "ociVersion")), OCI_SPEC_VERSION) &&
		   str_eq(json_string_value(json_object_get(json_object_get(j, "annotations"), "k")), "v"),
	   "state JSON has the spec's fields");
	json_decref(j);
	_cleanup_free_ char *stopped = oci_state_json(&st, OCI_STOPPED);
	ok(strstr(stopped, "\"pid\":0"), "a stopped container reports pid 0");
	_cleanup_free_ char *lj = oci_log_line(true, "error", "bad \"thing\"");
	json_t *lo = json_loads(lj, 0, NULL);
	ok(lo && str_eq(json_string_value(json_object_get(lo, "msg")), "bad \"thing\"") &&
		   str_eq(json_string_value(json_object_get(lo, "level")), "error") && json_object_get(lo, "time"),
	   "JSON log line: level, msg, time");
	json_decref(lo);
	_cleanup_free_ char *lt = oci_log_line(false, "error", "bad \"thing\"");
	ok(strstr(lt, "level=error msg=\"bad \\\"thing\\\"\"") && str_has_prefix(lt, "time=\""),
	   "text log line in logrus's format");
}

static void test_spec_roundtrip(void)
{
	_cleanup_free_ char *s = oci_spec_json(false);
	struct oci_config c;
	struct capsa_error *err = NULL;
	int rc = oci_config_parse(s, strlen(s), &c, &err);
	ok(rc == 0, "`spec` output parses (%s)", err ? err->msg : "");
	capsa_error_free(err);
	if (rc == 0) {
		ok(c.seccomp && strstr(c.seccomp, "SCMP_ACT_ERRNO") && !strstr(c.seccomp, "includes"),
		   "`spec` carries docker's seccomp profile in the spec's format");
		oci_config_release(&c);
	}
	_cleanup_free_ char *f = oci_features_json();
	json_t *j = json_loads(f, 0, NULL);
	ok(j && str_eq(json_string_value(json_object_get(j, "ociVersionMax")), OCI_SPEC_VERSION) &&
		   json_is_array(json_object_get(json_object_get(j, "linux"), "namespaces")),
	   "features JSON");
	json_decref(j);
}

int main(void)
{
	test_bad_inputs();
	test_missing_file();
	test_full_config();
	test_process_and_resources();
	test_ids_and_paths();
	test_state_and_log();
	test_spec_roundtrip();
	return done_testing();
}
