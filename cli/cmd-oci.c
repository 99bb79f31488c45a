/* cmd-oci.c: `capsa oci` and its second name `capsa-runc`: runc's command
 * line over lib/oci, for engines (podman, containerd, CRI-O) that call an
 * OCI runtime binary.  Parses runc's global flags and subcommands, calls
 * the library, prints; errors go to stderr and, with --log, to the log in
 * runc's text or JSON format.  Exit status 1 on failure, as runc. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "cmds.h"
#include "oci/config.h"
#include "oci/oci.h"
#include "util/fs.h"
#include "util/str.h"

static struct {
	const char *prog;
	int log_fd;
	bool json;
	bool debug;
	struct oci_global g;
} oc = { .log_fd = -1 };

static const char oci_usage[] =
	"Usage: capsa-runc [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
	"       capsa oci [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
	"\n"
	"An OCI runtime (runtime-spec " OCI_SPEC_VERSION ") with runc's command line, for podman,\n"
	"containerd and CRI-O.\n"
	"\n"
	"Global options:\n"
	"  --root DIR              state directory (default " OCI_DEFAULT_ROOT ")\n"
	"  --log FILE              also write errors and warnings to FILE\n"
	"  --log-format text|json  format of --log (default text)\n"
	"  --systemd-cgroup        cgroupsPath is slice:prefix:name\n"
	"  --debug                 log debugging detail\n"
	"  -v, --version           print the version and the spec version\n"
	"\n"
	"Commands:\n"
	"  create    create a container from a bundle; its process waits for start\n"
	"  start     start the process of a created container\n"
	"  run       create and start a container, wait for it, delete it\n"
	"  state     print the state of a container as JSON\n"
	"  kill      send a signal to a container's init (or all its processes)\n"
	"  delete    delete a stopped (with --force: any) container\n"
	"  exec      run a new process in a container\n"
	"  ps        list the processes of a container\n"
	"  list      list containers\n"
	"  pause     freeze every process of a container\n"
	"  resume    thaw a paused container\n"
	"  update    change a container's memory, cpu and pids limits\n"
	"  features  print what this runtime implements as JSON\n"
	"  spec      write a default config.json\n"
	"\n"
	"Environment:\n"
	"  CAPSA_OCI_CGROUP_PARENT  cgroup for containers whose config has no cgroupsPath\n"
	"                           (default capsa-oci: /capsa-oci/ID)\n";

static void log_line(const char *level, const char *msg)
{
	if (oc.log_fd < 0)
		return;
	char *l = oci_log_line(oc.json, level, msg);
	if (write(oc.log_fd, l, strlen(l)) < 0) {
		/* the log is gone: stderr still has it */
	}
	free(l);
}

static void warn_cb(const char *msg)
{
	fprintf(stderr, "%s: warning: %s\n", oc.prog, msg);
	log_line("warning", msg);
}

static int fail(struct capsa_error *err)
{
	const char *m = err && err->msg ? err->msg : "unknown error";
	fprintf(stderr, "%s: %s\n", oc.prog, m);
	log_line("error", m);
	capsa_error_free(err);
	return 1;
}

/* Right after the option parser returned '?', its message (naming the
 * option) stands for fmt. */
static int usage_fail(const char *cmd, const char *fmt, ...) PRINTF(2, 3);
static int usage_fail(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (*flags_error())
		snprintf(msg, sizeof(msg), "%s", flags_error());
	struct capsa_error *err = NULL;
	error_set(&err, EINVAL, "%s: %s", cmd, msg);
	return fail(err);
}

/* The one ID a command takes, and nothing after it. */
static const char *one_id(const char *cmd, int argc, char **argv)
{
	if (optind >= argc) {
		usage_fail(cmd, "requires a container id");
		return NULL;
	}
	if (optind + 1 != argc) {
		usage_fail(cmd, "unexpected argument '%s'", argv[optind + 1]);
		return NULL;
	}
	return argv[optind];
}

/* --preserve-fds N passes fds 3 .. 3+N-1 on.  Any of them the caller did
 * not open is filled with /dev/null (and the log moved above them), so no
 * fd of the runtime's own can take such a number and reach the container. */
static int parse_fds(const char *cmd, const char *s, int *out)
{
	int64_t v;
	if (parse_int64(s, 0, 1 << 16, &v) < 0)
		return usage_fail(cmd, "--preserve-fds '%s': not a count", s);
	*out = (int)v;
	int end = 3 + (int)v;
	if (oc.log_fd >= 3 && oc.log_fd < end) {
		int moved = fcntl(oc.log_fd, F_DUPFD_CLOEXEC, end);
		if (moved >= 0) {
			close(oc.log_fd);
			oc.log_fd = moved;
		}
	}
	for (int fd = 3; fd < end; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		int null = open("/dev/null", O_RDWR);
		if (null >= 0 && null != fd) {
			dup2(null, fd);
			close(null);
		}
	}
	return 0;
}

/* --- create, run --------------------------------------------------------- */

static int create_or_run(int argc, char **argv, bool run)
{
	const char *cmd = run ? "run" : "create";
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },   { "console-socket", required_argument, NULL, 'c' },
		{ "pid-file", required_argument, NULL, 'p' }, { "no-pivot", no_argument, NULL, 'P' },
		{ "no-new-keyring", no_argument, NULL, 'K' }, { "preserve-fds", required_argument, NULL, 'f' },
		{ "detach", no_argument, NULL, 'd' },	      { "keep", no_argument, NULL, 'k' },
		{ "no-subreaper", no_argument, NULL, 'S' },   { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct oci_create_opts o = { .log_fd = oc.log_fd, .log_json = oc.json };
	bool detach = false;
	int c;
	while ((c = getopt_long_only(argc, argv, "+b:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			o.bundle = optarg;
			break;
		case 'c':
			o.console_socket = optarg;
			break;
		case 'p':
			o.pid_file = optarg;
			break;
		case 'P':
			o.no_pivot = true;
			break;
		case 'f':
			if (parse_fds(cmd, optarg, &o.preserve_fds) < 0)
				return 1;
			break;
		case 'd':
			detach = true;
			break;
		case 'K':
		case 'k':
		case 'S':
			break;
		case 'h':
			printf("Usage: %s %s [--bundle DIR] [--console-socket SOCK] [--pid-file FILE] [--no-pivot]\n"
			       "       [--preserve-fds N]%s ID\n", oc.prog, cmd, run ? " [--detach]" : "");
			return 0;
		default:
			return usage_fail(cmd, "unknown option");
		}
	}
	o.id = one_id(cmd, argc, argv);
	if (!o.id)
		return 1;
	struct capsa_error *err = NULL;
	if (!run)
		return oci_create(&oc.g, &o, &err) < 0 ? fail(err) : 0;
	int status = 0;
	if (oci_run(&oc.g, &o, detach, &status, &err) < 0)
		return fail(err);
	return status;
}

/* --- simple ones ----------------------------------------------------------- */

static int no_opts(const char *cmd, int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	int c;
	while ((c = getopt_long_only(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("Usage: %s %s ID\n", oc.prog, cmd);
			return 2;
		}
		return usage_fail(cmd, "unknown option");
	}
	return 0;
}

static int cmd_simple(const char *cmd, int argc, char **argv)
{
	int r = no_opts(cmd, argc, argv);
	if (r)
		return r == 2 ? 0 : r;
	const char *id = one_id(cmd, argc, argv);
	if (!id)
		return 1;
	struct capsa_error *err = NULL;
	int rc;
	if (strcmp(cmd, "start") == 0) {
		rc = oci_start(&oc.g, id, &err);
	} else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0) {
		rc = oci_pause(&oc.g, id, cmd[0] == 'p', &err);
	} else {
		char *json = NULL;
		rc = oci_state(&oc.g, id, &json, &err);
		if (rc == 0) {
			json_t *j = json_loads(json, 0, NULL);
			char *pretty = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			printf("%s\n", pretty);
			free(pretty);
			json_decref(j);
		}
		free(json);
	}
	return rc < 0 ? fail(err) : 0;
}

static int cmd_kill_(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool all = false;
	int c;
	while ((c = getopt_long_only(argc, argv, "+ah", opts, NULL)) != -1) {
		if (c == 'a')
			all = true;
		else if (c == 'h') {
			printf("Usage: %s kill [--all] ID [SIGNAL]\n", oc.prog);
			return 0;
		} else
			return usage_fail("kill", "unknown option");
	}
	if (optind >= argc)
		return usage_fail("kill", "requires a container id");
	if (argc - optind > 2)
		return usage_fail("kill", "unexpected argument '%s'", argv[optind + 2]);
	int sig = SIGTERM;
	struct capsa_error *err = NULL;
	if (argc - optind == 2 && parse_signal(argv[optind + 1], &sig, &err) < 0)
		return fail(err);
	return oci_kill(&oc.g, argv[optind], sig, all, &err) < 0 ? fail(err) : 0;
}

static int cmd_delete_(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool force = false;
	int c;
	while ((c = getopt_long_only(argc, argv, "+fh", opts, NULL)) != -1) {
		if (c == 'f')
			force = true;
		else if (c == 'h') {
			printf("Usage: %s delete [--force] ID\n", oc.prog);
			return 0;
		} else
			return usage_fail("delete", "unknown option");
	}
	const char *id = one_id("delete", argc, argv);
	if (!id)
		return 1;
	struct capsa_error *err = NULL;
	if (oci_delete(&oc.g, id, force, &err) < 0) {
		/* runc: deleting what does not exist with --force is fine */
		if (force && err->code == ENOENT) {
			capsa_error_free(err);
			return 0;
		}
		return fail(err);
	}
	return 0;
}

/* --- exec ------------------------------------------------------------------- */

static int cmd_exec_(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "process", required_argument, NULL, 'p' },	 { "tty", no_argument, NULL, 't' },
		{ "console-socket", required_argument, NULL, 'C' }, { "detach", no_argument, NULL, 'd' },
		{ "pid-file", required_argument, NULL, 'P' },	 { "cwd", required_argument, NULL, 'w' },
		{ "env", required_argument, NULL, 'e' },	 { "user", required_argument, NULL, 'u' },
		{ "cap", required_argument, NULL, 'c' },	 { "no-new-privs", no_argument, NULL, 'N' },
		{ "preserve-fds", required_argument, NULL, 'f' }, { "process-label", required_argument, NULL, 'L' },
		{ "apparmor", required_argument, NULL, 'A' },	 { "additional-gids", required_argument, NULL, 'g' },
		{ "cgroup", required_argument, NULL, 'G' },	 { "ignore-paused", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },		 { NULL, 0, NULL, 0 },
	};
	struct oci_exec_opts o = { 0 };
	_cleanup_strv_ char **env = NULL, **caps = NULL;
	int c;
	while ((c = getopt_long_only(argc, argv, "+p:tdw:e:u:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.process_file = optarg;
			break;
		case 't':
			o.tty = true;
			break;
		case 'C':
			o.console_socket = optarg;
			break;
		case 'd':
			o.detach = true;
			break;
		case 'P':
			o.pid_file = optarg;
			break;
		case 'w':
			o.cwd = optarg;
			break;
		case 'e':
			if (!strchr(optarg, '='))
				return usage_fail("exec", "--env '%s': not KEY=VALUE", optarg);
			env = strv_push(env ? env : xcalloc(1, sizeof(char *)), optarg);
			break;
		case 'u':
			o.user = optarg;
			break;
		case 'c':
			caps = strv_push(caps ? caps : xcalloc(1, sizeof(char *)), optarg);
			break;
		case 'N':
			o.no_new_privs = true;
			break;
		case 'f':
			if (parse_fds("exec", optarg, &o.preserve_fds) < 0)
				return 1;
			break;
		case 'L':
		case 'A':
		case 'I':
			break;
		case 'g':
		case 'G':
			return usage_fail("exec", "--%s is not supported by capsa", c == 'g' ? "additional-gids" : "cgroup");
		case 'h':
			printf("Usage: %s exec [--process FILE | OPTIONS] ID [COMMAND ARGS...]\n", oc.prog);
			return 0;
		default:
			return usage_fail("exec", "unknown option");
		}
	}
	if (optind >= argc)
		return usage_fail("exec", "requires a container id");
	o.id = argv[optind];
	o.args = argv + optind + 1;
	o.env = env;
	o.cap_add = caps;
	if (o.process_file && o.args[0])
		return usage_fail("exec", "give either --process or a command, not both");
	struct capsa_error *err = NULL;
	int status = 0;
	if (oci_exec(&oc.g, &o, &status, &err) < 0)
		return fail(err);
	return status;
}

/* --- ps, list ----------------------------------------------------------------- */

static bool has_pid(const pid_t *pids, size_t n, long p)
{
	for (size_t i = 0; i < n; i++)
		if (pids[i] == p)
			return true;
	return false;
}

/* runc's table: `ps -ef` (or the given ps options) filtered to the
 * container's processes. */
static int ps_table(const pid_t *pids, size_t n, char **ps_args)
{
	_cleanup_free_ char **argv = xcalloc(strv_len(ps_args) + 3, sizeof(char *));
	size_t k = 0;
	argv[k++] = (char *)"ps";
	if (!ps_args || !ps_args[0])
		argv[k++] = (char *)"-ef";
	for (size_t i = 0; ps_args && ps_args[i]; i++)
		argv[k++] = ps_args[i];
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t child = fork();
	if (child == 0) {
		dup2(p[1], 1);
		execvp("ps", argv);
		_exit(127);
	}
	close(p[1]);
	struct buf out = BUF_INIT;
	int rc = read_all(p[0], &out, 64u << 20);
	close(p[0]);
	int st = 0;
	waitpid(child, &st, 0);
	if (rc < 0 || child < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		buf_release(&out);
		return -1;
	}
	char *data = (char *)buf_cstr(&out);
	int pid_col = -1;
	bool first = true;
	char *lsave = NULL;
	for (char *line = strtok_r(data, "\n", &lsave); line; line = strtok_r(NULL, "\n", &lsave)) {
		/* the PID column from the header, then each line's value in it */
		char *save = NULL, *dup = xstrdup(line);
		bool show = false;
		int col = 0;
		for (char *tok = strtok_r(dup, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save), col++) {
			if (first && strcmp(tok, "PID") == 0)
				pid_col = col;
			else if (!first && col == pid_col)
				show = has_pid(pids, n, strtol(tok, NULL, 10));
		}
		free(dup);
		if (first || show)
			printf("%s\n", line);
		first = false;
	}
	buf_release(&out);
	return pid_col < 0 ? -1 : 0;
}

static int cmd_ps_(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool json = false;
	int c;
	while ((c = getopt_long_only(argc, argv, "+f:h", opts, NULL)) != -1) {
		if (c == 'f' && (strcmp(optarg, "json") == 0 || strcmp(optarg, "table") == 0))
			json = optarg[0] == 'j';
		else if (c == 'h') {
			printf("Usage: %s ps [--format table|json] ID [PS OPTIONS]\n", oc.prog);
			return 0;
		} else
			return usage_fail("ps", "unknown option or format");
	}
	if (optind >= argc)
		return usage_fail("ps", "requires a container id");
	pid_t *pids;
	size_t n;
	struct capsa_error *err = NULL;
	if (oci_pids(&oc.g, argv[optind], &pids, &n, &err) < 0)
		return fail(err);
	int rc = 0;
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_integer(pids[i]));
		char *s = json_dumps(a, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(a);
	} else if (ps_table(pids, n, argv + optind + 1) < 0) {
		error_set(&err, EIO, "ps: running ps failed");
		rc = fail(err);
	}
	free(pids);
	return rc;
}

static int cmd_list_(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' }, { "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },	    { NULL, 0, NULL, 0 },
	};
	bool json = false, quiet = false;
	int c;
	while ((c = getopt_long_only(argc, argv, "+f:qh", opts, NULL)) != -1) {
		if (c == 'f' && (strcmp(optarg, "json") == 0 || strcmp(optarg, "table") == 0))
			json = optarg[0] == 'j';
		else if (c == 'q')
			quiet = true;
		else if (c == 'h') {
			printf("Usage: %s list [--format table|json] [--quiet]\n", oc.prog);
			return 0;
		} else
			return usage_fail("list", "unknown option or format");
	}
	char *s = NULL;
	struct capsa_error *err = NULL;
	if (oci_list(&oc.g, &s, &err) < 0)
		return fail(err);
	json_t *a = json_loads(s, 0, NULL);
	free(s);
	if (json) {
		char *out = json_dumps(a, JSON_COMPACT);
		printf("%s\n", out);
		free(out);
	} else {
		if (!quiet)
			printf("%-24s %-8s %-10s %-40s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
		size_t i;
		json_t *e;
		json_array_foreach(a, i, e) {
			const char *id = json_string_value(json_object_get(e, "id"));
			if (quiet)
				printf("%s\n", id);
			else
				printf("%-24s %-8lld %-10s %-40s %s\n", id,
				       (long long)json_integer_value(json_object_get(e, "pid")),
				       json_string_value(json_object_get(e, "status")),
				       json_string_value(json_object_get(e, "bundle")),
				       json_string_value(json_object_get(e, "created")));
		}
	}
	json_decref(a);
	return 0;
}

/* --- update, features, spec ---------------------------------------------- */

static int size_opt(const char *s, int64_t *out, struct capsa_error **err)
{
	if (strcmp(s, "-1") == 0) {
		*out = -1;
		return 0;
	}
	return parse_size(s, out, err);
}

static int cmd_update_(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "resources", required_argument, NULL, 'r' },	 { "memory", required_argument, NULL, 'm' },
		{ "memory-swap", required_argument, NULL, 's' }, { "cpu-quota", required_argument, NULL, 'q' },
		{ "cpu-period", required_argument, NULL, 'P' },	 { "cpu-share", required_argument, NULL, 'S' },
		{ "pids-limit", required_argument, NULL, 'l' },	 { "blkio-weight", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },		 { NULL, 0, NULL, 0 },
	};
	struct linux_cgroup_limits l = LINUX_CGROUP_LIMITS_INIT;
	struct capsa_error *err = NULL;
	void *json = NULL;
	const char *resources = NULL;
	int c;
	while ((c = getopt_long_only(argc, argv, "+r:h", opts, NULL)) != -1) {
		int64_t v = 0;
		int r = 0;
		switch (c) {
		case 'r':
			resources = optarg;
			continue;
		case 'm':
			r = size_opt(optarg, &l.memory, &err);
			continue_if_ok:
			if (r < 0)
				return fail(err);
			continue;
		case 's':
			r = size_opt(optarg, &l.memory_swap, &err);
			goto continue_if_ok;
		case 'q':
		case 'P':
		case 'S':
		case 'l':
		case 'w':
			if (parse_int64(optarg, -1, INT64_MAX, &v) < 0)
				return usage_fail("update", "'%s': not a number", optarg);
			if (c == 'q')
				l.cpu_quota_us = v > 0 ? v : 0;
			else if (c == 'P')
				l.cpu_period_us = v;
			else if (c == 'S')
				l.cpu_shares = v;
			else if (c == 'l')
				l.pids = v;
			else
				l.blkio_weight = v;
			continue;
		case 'h':
			printf("Usage: %s update [--resources FILE|-] [--memory N] [--cpu-quota N] [--pids-limit N] ID\n",
			       oc.prog);
			return 0;
		default:
			return usage_fail("update", "unknown option");
		}
	}
	const char *id = one_id("update", argc, argv);
	if (!id)
		return 1;
	if (resources) {
		struct buf b = BUF_INIT;
		int rc = strcmp(resources, "-") == 0
				 ? (read_all(0, &b, OCI_CONFIG_MAX) < 0 ? error_sys(&err, errno, "read resources") : 0)
				 : read_file_at(AT_FDCWD, resources, OCI_CONFIG_MAX, &b, &err);
		if (rc == 0)
			rc = oci_resources_parse(b.data ? b.data : "", b.len, &l, &json, &err);
		buf_release(&b);
		if (rc < 0)
			return fail(err);
	}
	int rc = oci_update(&oc.g, id, &l, &err);
	json_decref(json);
	return rc < 0 ? fail(err) : 0;
}

static int cmd_spec_(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' }, { "rootless", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },	    { NULL, 0, NULL, 0 },
	};
	const char *bundle = ".";
	bool rootless = false;
	int c;
	while ((c = getopt_long_only(argc, argv, "+b:h", opts, NULL)) != -1) {
		if (c == 'b')
			bundle = optarg;
		else if (c == 'r')
			rootless = true;
		else if (c == 'h') {
			printf("Usage: %s spec [--bundle DIR] [--rootless]\n", oc.prog);
			return 0;
		} else
			return usage_fail("spec", "unknown option");
	}
	struct capsa_error *err = NULL;
	_cleanup_close_ int dfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return error_sys(&err, errno, "spec: bundle %s", bundle), fail(err);
	if (faccessat(dfd, "config.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return error_set(&err, EEXIST, "spec: %s/config.json exists: remove it first", bundle), fail(err);
	_cleanup_free_ char *s = oci_spec_json(rootless);
	_cleanup_free_ char *text = xasprintf("%s\n", s);
	if (write_file_atomic_at(dfd, "config.json", text, strlen(text), 0644, false, &err) < 0)
		return fail(err);
	return 0;
}

/* --- entry ----------------------------------------------------------------- */

static int global_opts(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },	{ "log", required_argument, NULL, 'l' },
		{ "log-format", required_argument, NULL, 'F' }, { "systemd-cgroup", no_argument, NULL, 's' },
		{ "debug", no_argument, NULL, 'd' },		{ "rootless", required_argument, NULL, 'R' },
		{ "criu", required_argument, NULL, 'C' },	{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },		{ NULL, 0, NULL, 0 },
	};
	int c;
	const char *log = NULL;
	while ((c = getopt_long_only(argc, argv, "+hv", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			oc.g.root = optarg;
			break;
		case 'l':
			log = optarg;
			break;
		case 'F':
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0)
				return usage_fail("--log-format", "'%s': expected text or json", optarg);
			oc.json = optarg[0] == 'j';
			break;
		case 's':
			oc.g.systemd_cgroup = true;
			break;
		case 'd':
			oc.debug = true;
			break;
		case 'R':
		case 'C':
			break;
		case 'h':
			fputs(oci_usage, stdout);
			return -1;
		case 'v':
			printf("%s version %s\nspec: %s\n", oc.prog, capsa_version(), OCI_SPEC_VERSION);
			return -1;
		default:
			fprintf(stderr, "%s: %s\nSee '%s --help'.\n", oc.prog, flags_error(), oc.prog);
			return 1;
		}
	}
	if (log) {
		oc.log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (oc.log_fd < 0) {
			struct capsa_error *err = NULL;
			error_sys(&err, errno, "--log %s", log);
			return fail(err);
		}
	}
	return 0;
}

CLI_CMD(oci)
{
	(void)cli;
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	oc.prog = strcmp(base, "oci") == 0 ? "capsa oci" : base;
	oc.g.warn = warn_cb;
	signal(SIGPIPE, SIG_IGN);
	optind = 0;
	int r = global_opts(argc, argv);
	if (r)
		return r < 0 ? 0 : r;
	if (optind >= argc) {
		fputs(oci_usage, stderr);
		return 1;
	}
	const char *cmd = argv[optind];
	if (oc.debug) {
		struct buf line = BUF_INIT;
		for (int i = 0; i < argc; i++)
			buf_appendf(&line, "%s%s", i ? " " : "", argv[i]);
		log_line("debug", buf_cstr(&line));
		buf_release(&line);
	}
	int sargc = argc - optind;
	char **sargv = argv + optind;
	optind = 0;
	if ((strcmp(cmd, "create") == 0 || strcmp(cmd, "run") == 0) && geteuid() != 0) {
		/* said before anything is read or written */
		fprintf(stderr, "capsa oci %s: rootless containers are not supported yet (uid %u is not root); "
				"capsa run has a rootless mode (docs/rootless.md)\n",
			cmd, (unsigned)geteuid());
		return 1;
	}
	if (strcmp(cmd, "create") == 0 || strcmp(cmd, "run") == 0)
		return create_or_run(sargc, sargv, cmd[0] == 'r');
	if (strcmp(cmd, "start") == 0 || strcmp(cmd, "state") == 0 || strcmp(cmd, "pause") == 0 ||
	    strcmp(cmd, "resume") == 0)
		return cmd_simple(cmd, sargc, sargv);
	if (strcmp(cmd, "kill") == 0)
		return cmd_kill_(sargc, sargv);
	if (strcmp(cmd, "delete") == 0)
		return cmd_delete_(sargc, sargv);
	if (strcmp(cmd, "exec") == 0)
		return cmd_exec_(sargc, sargv);
	if (strcmp(cmd, "ps") == 0)
		return cmd_ps_(sargc, sargv);
	if (strcmp(cmd, "list") == 0)
		return cmd_list_(sargc, sargv);
	if (strcmp(cmd, "update") == 0)
		return cmd_update_(sargc, sargv);
	if (strcmp(cmd, "spec") == 0)
		return cmd_spec_(sargc, sargv);
	if (strcmp(cmd, "features") == 0) {
		char *s = oci_features_json();
		printf("%s\n", s);
		free(s);
		return 0;
	}
	if (strcmp(cmd, "version") == 0) {
		printf("%s version %s\nspec: %s\n", oc.prog, capsa_version(), OCI_SPEC_VERSION);
		return 0;
	}
	return usage_fail(cmd, "unknown command (see '%s --help')", oc.prog);
}
