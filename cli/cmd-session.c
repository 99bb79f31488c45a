/* cmd-session.c: working with a running sandbox: attach, proc (ls, kill),
 * port, touch, update, events. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capsa/events.h"
#include "capsa/sandbox.h"
#include "capsa/session.h"
#include "capsa/tunnel.h"
#include "capsa/network.h"
#include "cli.h"
#include "cmds.h"
#include "opts.h"
#include "util/str.h"

/* ---- attach ---------------------------------------------------------------- */

static const char attach_usage[] =
	"Usage: capsa attach [OPTIONS] SANDBOX\n"
	"\n"
	"Attach our terminal (or stdin/stdout/stderr) to the sandbox's main process,\n"
	"or with --proc to a process started with 'capsa exec' (a pid or a tag).\n"
	"Output is streamed from now on (with --proc -d processes, what they wrote\n"
	"while nobody was attached comes first); stdin is passed on if the process\n"
	"has it open (a process with a terminal needs one on our stdin, as in\n"
	"docker, unless --no-stdin).  The detach keys (default ctrl-p ctrl-q) leave it\n"
	"running.  INT, TERM, HUP, QUIT, USR1 and USR2 that capsa gets are forwarded\n"
	"to the process; a second INT or TERM leaves it running and capsa exits with\n"
	"128+N.\n"
	"\n"
	"Options:\n"
	"      --proc PID|TAG       a process other than the main one\n"
	"      --no-stdin           do not pass our stdin on\n"
	"      --detach-keys KEYS   keys that detach ('' for none)\n"
	"      --sig-proxy=false    do not forward signals: the first one detaches\n"
	"  -h, --help               show this help\n"
	"\n"
	"Exit status: the process's (the sandbox's for the main process); 0 after the\n"
	"detach keys; 128+N if capsa left after signal N; 125 if capsa failed.\n";

static int ref_from_arg(const char *arg, struct capsa_proc_ref *ref)
{
	int64_t pid;
	memset(ref, 0, sizeof(*ref));
	if (parse_int64(arg, 1, INT32_MAX, &pid) == 0)
		ref->pid = (pid_t)pid;
	else
		ref->tag = arg;
	return 0;
}

CLI_CMD(attach)
{
	enum { O_PROC = 256, O_NO_STDIN, O_KEYS, O_SIG_PROXY };
	static const struct option opts[] = {
		{ "proc", required_argument, NULL, O_PROC }, { "no-stdin", no_argument, NULL, O_NO_STDIN },
		{ "detach-keys", required_argument, NULL, O_KEYS }, { "sig-proxy", optional_argument, NULL, O_SIG_PROXY },
		{ "help", no_argument, NULL, 'h' },	     { NULL, 0, NULL, 0 },
	};
	struct capsa_proc_ref ref = { .main = true };
	bool no_stdin = false, no_sig_proxy = false;
	const char *keys = NULL;
	struct capsa_error *err = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_PROC: ref_from_arg(optarg, &ref); break;
		case O_NO_STDIN: no_stdin = true; break;
		case O_SIG_PROXY:
			if (opt_sig_proxy(optarg, &no_sig_proxy, &err) < 0)
				return cli_fail(cli, err);
			break;
		case O_KEYS: {
			char k[16];
			if (capsa_detach_keys_parse(optarg, k, &err) < 0)
				return cli_fail(cli, err);
			keys = optarg;
			break;
		}
		case 'h': return cli_help(attach_usage);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "requires exactly one SANDBOX");
	const char *sandbox = argv[optind];
	struct capsa_stdio io = { .in_fd = no_stdin ? -1 : 0, .out_fd = 1, .err_fd = 2, .detach_keys = keys,
				  .no_sig_proxy = no_sig_proxy };
	/* raw mode if the process has a terminal and we have one */
	bool tty = false;
	if (ref.main) {
		char *js = capsa_sandbox_inspect(cli_ctx(cli), sandbox, &err);
		if (!js)
			return cli_fail(cli, err);
		json_t *o = json_loads(js, 0, NULL);
		free(js);
		tty = json_is_true(json_object_get(json_object_get(o, "config"), "tty"));
		json_decref(o);
	} else {
		struct capsa_proc_info *v;
		size_t n;
		if (capsa_proc_list(cli_ctx(cli), sandbox, &v, &n, &err) < 0)
			return cli_fail(cli, err);
		for (size_t i = 0; i < n; i++)
			if ((ref.pid && v[i].pid == ref.pid) || (ref.tag && v[i].tag && strcmp(v[i].tag, ref.tag) == 0))
				tty = v[i].tty;
		capsa_proc_info_free(v, n);
	}
	if (tty && io.in_fd >= 0 && need_input_tty(cli, "the process has a terminal (use --no-stdin)") != 0)
		return EXIT_CAPSA;
	struct term_state term = { .fd = -1 };
	if (tty) {
		io.tty = true;
		term_size(1, &io.rows, &io.cols);
		if (io.in_fd >= 0)
			term_raw(&term, 0);
	}
	io.sig_fd = session_signals_open();
	struct capsa_exit e;
	int rc = ref.main ? capsa_sandbox_attach(cli_ctx(cli), sandbox, &io, &e, &err)
			  : capsa_proc_attach_stdio(cli_ctx(cli), sandbox, &ref, &io, true, &e, &err);
	term_restore(&term);
	session_signals_close(io.sig_fd);
	if (rc < 0)
		return cli_fail(cli, err);
	return report_exit(&e);
}

/* ---- proc ------------------------------------------------------------------- */

static const char proc_usage[] =
	"Usage: capsa proc COMMAND\n"
	"\n"
	"The processes of a running sandbox: its main process and those started with\n"
	"'capsa exec' or the API (kept ones that ended are listed until attached).\n"
	"\n"
	"Commands:\n";

static const char proc_ls_usage[] =
	"Usage: capsa proc ls [--json] SANDBOX\n"
	"\n"
	"List the sandbox's processes: pid, tag, state, attached sessions, command.\n";

static const char proc_kill_usage[] =
	"Usage: capsa proc kill [-s SIGNAL] [--group] SANDBOX PID|TAG\n"
	"\n"
	"Send SIGNAL (default KILL) to one process of the sandbox (with --group, to\n"
	"its process group).\n";

static CLI_CMD(proc_ls)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool js = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help(proc_ls_usage);
		if (c != 'j')
			return cli_usage_error(cli, "unknown option");
		js = true;
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "requires exactly one SANDBOX");
	struct capsa_error *err = NULL;
	struct capsa_proc_info *v;
	size_t n;
	if (capsa_proc_list(cli_ctx(cli), argv[optind], &v, &n, &err) < 0)
		return cli_fail(cli, err);
	json_t *arr = json_array();
	if (!js)
		printf("%-8s  %-16s  %-14s  %-8s  %s\n", "PID", "TAG", "STATE", "ATTACHED", "COMMAND");
	for (size_t i = 0; i < n; i++) {
		struct capsa_proc_info *p = &v[i];
		char state[32];
		if (p->running)
			snprintf(state, sizeof(state), "%s", p->keep ? "running (kept)" : "running");
		else
			snprintf(state, sizeof(state), "exited (%d)", p->exit_code);
		_cleanup_free_ char *cmd = NULL;
		struct buf b = BUF_INIT;
		json_t *argv_js = json_array();
		for (char **a = p->argv; a && *a; a++) {
			buf_appendf(&b, "%s%s", b.len ? " " : "", *a);
			json_array_append_new(argv_js, json_string(*a));
		}
		cmd = buf_steal(&b);
		if (js) {
			json_t *o = json_pack("{s:i, s:o, s:b, s:b, s:b, s:b, s:i, s:I, s:I}", "pid", p->pid, "argv",
					      argv_js, "tty", p->tty, "keep", p->keep, "main", p->main, "running",
					      p->running, "attached", p->attached, "buffered", (json_int_t)p->buffered,
					      "startedAt", (json_int_t)p->started_at);
			if (p->tag)
				json_object_set_new(o, "tag", json_string(p->tag));
			if (!p->running) {
				json_object_set_new(o, "exitCode", json_integer(p->exit_code));
				json_object_set_new(o, "reason", json_string(p->reason ? p->reason : ""));
			}
			json_array_append_new(arr, o);
		} else {
			json_decref(argv_js);
			printf("%-8d  %-16.16s  %-14s  %-8d  %s%s\n", (int)p->pid, p->main ? "(main)" : p->tag ? p->tag : "",
			       state, p->attached, cmd ? cmd : "", "");
		}
	}
	if (js) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
	}
	json_decref(arr);
	capsa_proc_info_free(v, n);
	return 0;
}

static CLI_CMD(proc_kill)
{
	static const struct option opts[] = {
		{ "signal", required_argument, NULL, 's' }, { "group", no_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int sig = SIGKILL;
	bool group = false;
	struct capsa_error *err = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help(proc_kill_usage);
		if (c == 'g')
			group = true;
		else if (c != 's')
			return cli_usage_error(cli, "unknown option");
		else if (parse_signal(optarg, &sig, &err) < 0)
			return cli_fail(cli, err);
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "requires a SANDBOX and a PID or TAG");
	struct capsa_proc_ref ref;
	ref_from_arg(argv[optind + 1], &ref);
	if (capsa_proc_kill(cli_ctx(cli), argv[optind], &ref, sig, group, &err) < 0)
		return cli_fail(cli, err);
	return 0;
}

CLI_CMD(proc)
{
	static const struct cli_cmd sub[] = {
		{ "ls", cmd_proc_ls, "list the sandbox's processes" },
		{ "kill", cmd_proc_kill, "send a signal to one process" },
		{ NULL, NULL, NULL },
	};
	return cli_dispatch(cli, sub, "proc", proc_usage, argc - 1, argv + 1);
}

/* ---- port ---------------------------------------------------------------------- */

static const char port_usage[] =
	"Usage: capsa port SANDBOX [PORT]\n"
	"       capsa port --publish [HOSTIP:]HOSTPORT:PORT SANDBOX\n"
	"\n"
	"List the ports a running sandbox publishes on the host (as PORT/tcp ->\n"
	"HOSTIP:HOSTPORT), or only PORT's; with --publish, publish one more.\n";

CLI_CMD(port)
{
	static const struct option opts[] = {
		{ "publish", required_argument, NULL, 'p' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *publish = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help(port_usage);
		if (c != 'p')
			return cli_usage_error(cli, "unknown option");
		publish = optarg;
	}
	if (argc - optind < 1 || argc - optind > 2 || (publish && argc - optind != 1))
		return cli_usage_error(cli, "requires a SANDBOX (and optionally a PORT)");
	struct capsa_error *err = NULL;
	const char *sandbox = argv[optind];
	if (publish) {
		struct capsa_port p;
		_cleanup_free_ char *ip = NULL;
		struct capsa_port_info info;
		if (capsa_port_parse(publish, &p, &ip, &err) < 0 ||
		    capsa_port_publish(cli_ctx(cli), sandbox, &p, &info, &err) < 0)
			return cli_fail(cli, err);
		printf("%u/tcp -> %s:%u\n", info.port, info.host_ip, info.host_port);
		return 0;
	}
	int64_t only = 0;
	if (argc - optind == 2) {
		const char *ps = argv[optind + 1];
		_cleanup_free_ char *num = xstrdup(ps);
		char *slash = strchr(num, '/');
		if (slash)
			*slash = '\0';
		if (parse_int64(num, 1, 65535, &only) < 0 || (slash && strcmp(slash + 1, "tcp") != 0))
			return cli_usage_error(cli, "invalid port '%s': expected 1-65535[/tcp]", ps);
	}
	struct capsa_port_info *v;
	size_t n;
	if (capsa_port_list(cli_ctx(cli), sandbox, &v, &n, &err) < 0)
		return cli_fail(cli, err);
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		if (only && v[i].port != only)
			continue;
		found++;
		if (only)
			printf("%s:%u\n", v[i].host_ip, v[i].host_port);
		else
			printf("%u/tcp -> %s:%u\n", v[i].port, v[i].host_ip, v[i].host_port);
	}
	free(v);
	if (only && !found) {
		fprintf(stderr, "capsa: sandbox %s does not publish port %lld\n", sandbox, (long long)only);
		return EXIT_CAPSA;
	}
	return 0;
}

/* ---- touch, update ------------------------------------------------------------------ */

static const char touch_usage[] =
	"Usage: capsa touch SANDBOX...\n"
	"\n"
	"Count as activity for each sandbox's idle timeout.\n";

CLI_CMD(touch)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, touch_usage, &rc);
	if (first < 0)
		return rc;
	if (first >= argc)
		return cli_usage_error(cli, "requires at least one SANDBOX");
	for (int i = first; i < argc; i++) {
		struct capsa_error *err = NULL;
		if (capsa_sandbox_touch(cli_ctx(cli), argv[i], &err) < 0)
			rc = cli_fail(cli, err);
	}
	return rc;
}

static const char update_usage[] =
	"Usage: capsa update [--timeout DUR] [--idle-timeout DUR] [--memory SIZE] [--cpus N]\n"
	"                    [--pids-limit N] SANDBOX...\n"
	"\n"
	"Change a running sandbox's timeouts and limits: --timeout sets its maximum\n"
	"lifetime to DUR from now (0: none), --idle-timeout its idle timeout (0: none);\n"
	"--memory, --cpus and --pids-limit (-1: none) its cgroup limits, all or none:\n"
	"if one cannot be applied, the old ones stay.  `inspect` shows the new ones.\n"
	"--allow-out and --deny-out (as on capsa run) replace its egress rules, both\n"
	"lists at once (a list not given becomes empty); --egress-reset goes back to\n"
	"the default policy.  The change applies atomically to new connections.\n";

CLI_CMD(update)
{
	enum { O_TIMEOUT = 256, O_IDLE, O_MEMORY, O_CPUS, O_PIDS, O_ALLOW, O_DENY, O_RESET };
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, O_TIMEOUT }, { "idle-timeout", required_argument, NULL, O_IDLE },
		{ "memory", required_argument, NULL, O_MEMORY }, { "cpus", required_argument, NULL, O_CPUS },
		{ "pids-limit", required_argument, NULL, O_PIDS }, { "allow-out", required_argument, NULL, O_ALLOW },
		{ "deny-out", required_argument, NULL, O_DENY }, { "egress-reset", no_argument, NULL, O_RESET },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct capsa_sandbox_update u = { -1, -1 };
	struct capsa_limits_update lim = { 0 };
	struct capsa_error *err = NULL;
	_cleanup_strv_ char **allow = NULL, **deny = NULL;
	bool egress = false;
	int c;
	while ((c = getopt_long(argc, argv, "hm:", opts, NULL)) != -1) {
		switch (c) {
		case O_ALLOW: allow = strv_push(allow, optarg); egress = true; break;
		case O_DENY: deny = strv_push(deny, optarg); egress = true; break;
		case O_RESET: egress = true; break;
		case 'm':
		case O_MEMORY:
			if (parse_size(optarg, &lim.memory, &err) < 0 || lim.memory == 0) {
				if (!err)
					error_set(&err, EINVAL, "invalid size '%s': must be positive", optarg);
				error_wrap(&err, "--memory");
				return cli_fail(cli, err);
			}
			break;
		case O_CPUS:
			if (opt_cpus(optarg, &lim.cpus_milli, &err) < 0)
				return cli_fail(cli, err);
			break;
		case O_PIDS:
			if (parse_int64(optarg, -1, 1 << 22, &lim.pids) < 0 || lim.pids == 0)
				return cli_usage_error(cli, "invalid --pids-limit '%s': expected a positive number (-1: none)",
						       optarg);
			break;
		case O_TIMEOUT:
			if (parse_duration_ms(optarg, &u.timeout_ms, &err) < 0) {
				error_wrap(&err, "--timeout");
				return cli_fail(cli, err);
			}
			break;
		case O_IDLE:
			if (parse_duration_ms(optarg, &u.idle_timeout_ms, &err) < 0) {
				error_wrap(&err, "--idle-timeout");
				return cli_fail(cli, err);
			}
			break;
		case 'h': return cli_help(update_usage);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	bool limits = lim.memory || lim.cpus_milli || lim.pids;
	if (u.timeout_ms < 0 && u.idle_timeout_ms < 0 && !limits && !egress)
		return cli_usage_error(cli, "nothing to update: give --timeout, --idle-timeout, --memory, --cpus, "
					    "--pids-limit, --allow-out, --deny-out or --egress-reset");
	if (optind >= argc)
		return cli_usage_error(cli, "requires at least one SANDBOX");
	int rc = 0;
	for (int i = optind; i < argc; i++) {
		if (limits && capsa_sandbox_set_limits(cli_ctx(cli), argv[i], &lim, &err) < 0)
			rc = cli_fail(cli, err);
		else if (egress && capsa_sandbox_set_egress(cli_ctx(cli), argv[i], allow, deny, &err) < 0)
			rc = cli_fail(cli, err);
		else if ((u.timeout_ms >= 0 || u.idle_timeout_ms >= 0) &&
			 capsa_sandbox_update(cli_ctx(cli), argv[i], &u, &err) < 0)
			rc = cli_fail(cli, err);
		else
			printf("%s\n", argv[i]);
	}
	return rc;
}

/* ---- events ------------------------------------------------------------------------- */

static const char events_usage[] =
	"Usage: capsa events [OPTIONS]\n"
	"\n"
	"Print sandbox events (create, start, exec_start, exec_die, pause, unpause,\n"
	"stop, oom, die, remove, update, publish) as they happen, until interrupted.\n"
	"With --since, past events from that time come first; with --until, capsa\n"
	"stops at that time (past events only, from the beginning without --since).\n"
	"\n"
	"Options:\n"
	"      --since TIME         from TIME: RFC 3339 or a duration ago (10m)\n"
	"      --until TIME         up to TIME, then exit (same forms; 0s: now)\n"
	"  -f, --filter KEY=VALUE   sandbox=ID|NAME or type=TYPE (repeatable; values\n"
	"                           of one key are alternatives)\n"
	"      --json               one JSON object per line\n"
	"  -h, --help               show this help\n";

static int parse_when(const char *s, int64_t *out, struct capsa_error **err)
{
	if (parse_rfc3339(s, out) == 0)
		return 0;
	int64_t ago;
	if (parse_duration_ms(s, &ago, err) < 0)
		return error_wrap(err, "expected an RFC 3339 time or a duration");
	*out = now_ms() - ago;
	return 0;
}

static int print_event(void *ud, const struct capsa_event *e)
{
	bool js = *(bool *)ud;
	char ts[48];
	format_rfc3339(e->time_ms, ts, sizeof(ts));
	if (js) {
		json_t *attrs = json_loads(e->attrs, 0, NULL);
		json_t *o = json_pack("{s:I, s:s, s:s, s:o}", "seq", (json_int_t)e->seq, "time", ts, "type", e->type,
				      "attrs", attrs ? attrs : json_object());
		if (e->sandbox_id)
			json_object_set_new(o, "sandbox", json_string(e->sandbox_id));
		if (e->sandbox_name)
			json_object_set_new(o, "name", json_string(e->sandbox_name));
		char *s = json_dumps(o, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("%s sandbox %s %.12s", ts, e->type, e->sandbox_id ? e->sandbox_id : "-");
		if (e->sandbox_name)
			printf(" (name=%s)", e->sandbox_name);
		if (e->attrs && strcmp(e->attrs, "{}") != 0)
			printf(" %s", e->attrs);
		printf("\n");
	}
	fflush(stdout);
	return ferror(stdout) ? 1 : 0;
}

CLI_CMD(events)
{
	enum { O_SINCE = 256, O_UNTIL, O_JSON };
	static const struct option opts[] = {
		{ "since", required_argument, NULL, O_SINCE }, { "until", required_argument, NULL, O_UNTIL },
		{ "filter", required_argument, NULL, 'f' },	{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },		{ NULL, 0, NULL, 0 },
	};
	struct capsa_events_filter f = { 0 };
	bool js = false;
	struct capsa_error *err = NULL;
	int c, rc = 0;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1 && rc == 0) {
		switch (c) {
		case O_SINCE:
			if (parse_when(optarg, &f.since_ms, &err) < 0)
				rc = cli_fail(cli, err);
			break;
		case O_UNTIL:
			if (parse_when(optarg, &f.until_ms, &err) < 0)
				rc = cli_fail(cli, err);
			break;
		case O_JSON: js = true; break;
		case 'f':
			if (str_has_prefix(optarg, "type=") && optarg[5]) {
				f.types = strv_push(f.types, optarg + 5);
			} else if (str_has_prefix(optarg, "sandbox=") && optarg[8]) {
				char *id = capsa_sandbox_resolve(cli_ctx(cli), optarg + 8, NULL);
				/* a removed sandbox is still named by its full id */
				f.sandboxes = strv_push_take(f.sandboxes, id ? id : xstrdup(optarg + 8));
			} else {
				rc = cli_usage_error(cli, "invalid --filter '%s': expected sandbox=ID or type=TYPE", optarg);
			}
			break;
		case 'h':
			rc = cli_help(events_usage);
			strv_free(f.types);
			strv_free(f.sandboxes);
			return rc;
		default: rc = cli_usage_error(cli, "unknown option"); break;
		}
	}
	if (rc == 0 && optind < argc)
		rc = cli_usage_error(cli, "takes no arguments");
	if (!f.since_ms && !f.until_ms)
		f.since_ms = now_ms(); /* new events only, as docker does */
	if (rc == 0) {
		int sfd = session_signals_open();
		if (capsa_events_follow(cli_ctx(cli), &f, 100, sfd, print_event, &js, &err) < 0)
			rc = cli_fail(cli, err);
		session_signals_close(sfd);
	}
	strv_free(f.types);
	strv_free(f.sandboxes);
	return rc;
}
