/* cmd-run.c: `capsa run`: create a sandbox from an image and run its main
 * process, attached (default) or detached (-d). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capsa/tunnel.h"
#include "cli.h"
#include "cmds.h"
#include "opts.h"
#include "util/str.h"

static const char run_usage[] =
	"Usage: capsa run [OPTIONS] IMAGE [--] [COMMAND [ARG...]]\n"
	"\n"
	"Create a sandbox from IMAGE and run COMMAND (default: the image's Entrypoint\n"
	"and Cmd) as its main process.  The sandbox ends when the main process exits.\n"
	"Without -d, capsa stays attached: output is streamed, signals (INT, TERM, HUP,\n"
	"QUIT, USR1, USR2) are forwarded to the main process, with or without -i and\n"
	"-t, and capsa exits with the process's code.  A second INT or TERM (ctrl-c\n"
	"twice without -t) leaves the sandbox running and capsa exits with 128+N.\n"
	"\n"
	"Options:\n"
	"  -d, --detach               run in the background and print the sandbox id\n"
	"      --rm                   remove the sandbox when it ends\n"
	"      --name NAME            name the sandbox ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128)\n"
	"  -e, --env KEY=VALUE        set an environment variable (KEY alone copies ours)\n"
	"      --env-file FILE        read KEY=VALUE lines from FILE (docker's format: #\n"
	"                             comments, KEY alone copies ours, values as written;\n"
	"                             any other line is an error)\n"
	"  -w, --workdir DIR          working directory (created if missing)\n"
	"  -u, --user USER[:GROUP]    user and group, by name (from the image's\n"
	"                             /etc/passwd and /etc/group) or number\n"
	"      --entrypoint CMD       replace the image's Entrypoint ('' clears it)\n"
	"  -l, --label KEY=VALUE      attach a label\n"
	"  -v, --volume HOST:PATH[:ro|rw][,idmap]\n"
	"                             bind-mount a host directory or file; with a user\n"
	"                             namespace, ro volumes and idmap ones show host\n"
	"                             ids as root's inside (idmap: writable as them)\n"
	"      --tmpfs PATH[:size=SIZE,mode=MODE,ro]\n"
	"                             mount a tmpfs\n"
	"  -m, --memory SIZE          memory limit (e.g. 64m, 1g); swap is disabled\n"
	"      --cpus N               cpu limit in cpus (e.g. 0.5)\n"
	"      --pids-limit N         maximum number of processes (default 4096, -1: none)\n"
	"      --shm-size SIZE        size of /dev/shm (default 64m, charged to --memory)\n"
	"      --disk SIZE            bound the writable layer: an ext4 image of SIZE\n"
	"                             (at least 16m); writes past it fail with ENOSPC\n"
	"      --hostname NAME        hostname inside the sandbox (RFC 1123: labels of\n"
	"                             letters, digits and '-' joined by dots; at most 64)\n"
	"      --read-only            mount the root filesystem read-only\n"
	"      --userns auto|host     auto (default): root inside is a block of 65536\n"
	"                             unprivileged host ids of the capsa user's\n"
	"                             /etc/subuid and /etc/subgid ranges; host: none.\n"
	"                             Rootless (capsa run by another user than root):\n"
	"                             the user's own namespace either way; limits need\n"
	"                             a delegated cgroup v2 subtree, --disk root\n"
	"      --cap-add CAP          add a capability (or ALL)\n"
	"      --cap-drop CAP         drop a capability (or ALL)\n"
	"      --security-opt OPT     seccomp=PROFILE.json, seccomp=unconfined,\n"
	"                             no-new-privileges (always on)\n"
	"      --ulimit NAME=SOFT[:HARD]\n"
	"                             set a resource limit (nofile, nproc, core, ...)\n"
	"      --stop-signal SIG      signal that `capsa stop` sends (default TERM)\n"
	"      --idle-timeout DUR     stop after DUR without activity (exec, stdin, file\n"
	"                             operations, tunnel traffic, attach, capsa touch;\n"
	"                             e.g. 10m); the reason is then idle_timeout\n"
	"      --timeout DUR          stop after DUR in any case (maximum lifetime, reason\n"
	"                             max_duration; change it with capsa update)\n"
	"      --network MODE        bridge (default): an address on capsa's bridge,\n"
	"                             NAT to the host's uplink, DNS, and the egress\n"
	"                             policy below; none: loopback only; host: the\n"
	"                             host's network, no isolation at all;\n"
	"                             container:SANDBOX: another sandbox's network; or\n"
	"                             a network made with capsa network create.\n"
	"                             Rootless: none (default) or host\n"
	"      --allow-out RULE       reach only what the rules allow (repeatable, or\n"
	"                             comma separated): a CIDR, an address, a hostname,\n"
	"                             *.domain (names below it), or host (the host's\n"
	"                             own addresses). Without it: the internet, but not\n"
	"                             the host, its LAN, private, link-local or CGNAT\n"
	"                             ranges, nor other networks\n"
	"      --deny-out RULE        never reach these (wins over --allow-out); names\n"
	"                             are refused by capsa's resolver\n"
	"      --dns ADDRESS          a nameserver for /etc/resolv.conf instead of the\n"
	"                             network's resolver (repeatable; not with rules\n"
	"                             that name hosts)\n"
	"      --add-host NAME:ADDRESS\n"
	"                             add a line to /etc/hosts\n"
	"  -p, --publish [HOSTIP:]HOSTPORT:PORT[/tcp]\n"
	"                             publish a port: connections to HOSTIP:HOSTPORT\n"
	"                             (default 127.0.0.1; HOSTPORT empty or 0: any free\n"
	"                             port) reach 127.0.0.1:PORT in the sandbox\n"
	"      --log-opt max-size=SIZE|max-file=N\n"
	"                             rotate the log at SIZE (default 16m), keep N files\n"
	"                             (default 4)\n"
	"  -i, --interactive          keep stdin open and stream it to the process\n"
	"  -t, --tty                  give the process a terminal (with -i: raw mode,\n"
	"                             restored on every way out; -it needs a terminal\n"
	"                             on stdin, unless with -d)\n"
	"      --sig-proxy=false      do not forward signals: the first one leaves the\n"
	"                             sandbox running and capsa exits with 128+N\n"
	"      --detach-keys KEYS     keys that leave a -it sandbox running (default\n"
	"                             ctrl-p,ctrl-q; '' for none); 'capsa attach' returns\n"
	"  -h, --help                 show this help\n"
	"\n"
	"Exit status: the process's own; 125 if capsa failed or for a usage error\n"
	"(-it without a terminal as well); 126 if the command cannot be invoked; 127\n"
	"if it was not found; 128+N if killed by signal N, or if capsa left after\n"
	"signal N; 0 after the detach keys.\n"
	"\n"
	"Examples:\n"
	"  capsa run --rm busybox -- echo hello\n"
	"  capsa run --name web -d busybox -- httpd -f -p 8080\n"
	"  capsa run --memory 64m --cpus 0.5 --pids-limit 64 --read-only busybox -- sh\n";

enum {
	O_RM = 256, O_NAME, O_ENV_FILE, O_ENTRYPOINT, O_TMPFS, O_CPUS, O_PIDS, O_SHM, O_HOSTNAME, O_READONLY,
	O_CAP_ADD, O_CAP_DROP, O_SECOPT, O_ULIMIT, O_STOPSIG, O_IDLE, O_TIMEOUT, O_LOGOPT, O_DETACH_KEYS,
	O_DISK, O_SIG_PROXY, O_NETWORK, O_ALLOW_OUT, O_DENY_OUT, O_DNS, O_ADD_HOST,
	O_USERNS = 400,
};

static const struct option run_options[] = {
	{ "detach", no_argument, NULL, 'd' },
	{ "rm", no_argument, NULL, O_RM },
	{ "name", required_argument, NULL, O_NAME },
	{ "env", required_argument, NULL, 'e' },
	{ "env-file", required_argument, NULL, O_ENV_FILE },
	{ "workdir", required_argument, NULL, 'w' },
	{ "user", required_argument, NULL, 'u' },
	{ "entrypoint", required_argument, NULL, O_ENTRYPOINT },
	{ "label", required_argument, NULL, 'l' },
	{ "volume", required_argument, NULL, 'v' },
	{ "tmpfs", required_argument, NULL, O_TMPFS },
	{ "memory", required_argument, NULL, 'm' },
	{ "cpus", required_argument, NULL, O_CPUS },
	{ "pids-limit", required_argument, NULL, O_PIDS },
	{ "shm-size", required_argument, NULL, O_SHM },
	{ "disk", required_argument, NULL, O_DISK },
	{ "hostname", required_argument, NULL, O_HOSTNAME },
	{ "read-only", no_argument, NULL, O_READONLY },
	{ "cap-add", required_argument, NULL, O_CAP_ADD },
	{ "cap-drop", required_argument, NULL, O_CAP_DROP },
	{ "security-opt", required_argument, NULL, O_SECOPT },
	{ "ulimit", required_argument, NULL, O_ULIMIT },
	{ "stop-signal", required_argument, NULL, O_STOPSIG },
	{ "idle-timeout", required_argument, NULL, O_IDLE },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "publish", required_argument, NULL, 'p' },
	{ "log-opt", required_argument, NULL, O_LOGOPT },
	{ "detach-keys", required_argument, NULL, O_DETACH_KEYS },
	{ "sig-proxy", optional_argument, NULL, O_SIG_PROXY },
	{ "userns", required_argument, NULL, O_USERNS },
	{ "network", required_argument, NULL, O_NETWORK },
	{ "net", required_argument, NULL, O_NETWORK },
	{ "allow-out", required_argument, NULL, O_ALLOW_OUT },
	{ "deny-out", required_argument, NULL, O_DENY_OUT },
	{ "dns", required_argument, NULL, O_DNS },
	{ "add-host", required_argument, NULL, O_ADD_HOST },
	{ "interactive", no_argument, NULL, 'i' },
	{ "tty", no_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct run_args {
	struct capsa_sandbox_opts o;
	bool detach;
	struct capsa_mount mounts[256];
	struct capsa_rlimit rlimits[32];
	size_t n_rlimits;
	char **entrypoint;
	struct capsa_port ports[64];
	char *port_ips[64];
	size_t n_ports;
	const char *detach_keys;
	bool no_sig_proxy;
};

/* --security-opt: 0, or the exit status of a usage error already printed */
static int opt_security(struct cli *cli, struct capsa_sandbox_opts *o, const char *arg)
{
	if (str_has_prefix(arg, "seccomp=") || str_has_prefix(arg, "seccomp:"))
		o->seccomp = arg + 8;
	else if (strcmp(arg, "no-new-privileges") != 0 && strcmp(arg, "no-new-privileges:true") != 0 &&
		 strcmp(arg, "no-new-privileges=true") != 0)
		return cli_usage_error(cli, "unsupported --security-opt '%s' (seccomp=FILE, seccomp=unconfined, no-new-privileges)",
				       arg);
	if (o->seccomp && !*o->seccomp)
		return cli_usage_error(cli, "--security-opt seccomp= needs a profile path or 'unconfined'");
	return 0;
}

/* run's resource options: true if c is one of them, with *rc 0, -1 (*err
 * set) or the exit status of a usage error already printed. */
static bool parse_limit(struct cli *cli, struct run_args *a, int c, struct capsa_error **err, int *rc)
{
	struct capsa_sandbox_opts *o = &a->o;
	int64_t v;
	*rc = 0;
	switch (c) {
	case 'm':
		if (parse_size(optarg, &o->memory, err) < 0)
			*rc = error_wrap(err, "--memory");
		return true;
	case O_CPUS: *rc = opt_cpus(optarg, &o->cpus_milli, err); return true;
	case O_PIDS:
		if (parse_int64(optarg, -1, 1 << 22, &v) < 0 || v == 0)
			*rc = cli_usage_error(cli, "invalid --pids-limit '%s': expected a positive number (-1: unlimited)",
					      optarg);
		else
			o->pids = v;
		return true;
	case O_DISK:
		if (parse_size(optarg, &o->disk, err) < 0)
			*rc = error_wrap(err, "--disk");
		else if (o->disk == 0)
			*rc = cli_usage_error(cli, "invalid --disk '%s': must be positive", optarg);
		return true;
	case O_SHM:
		if (parse_size(optarg, &o->shm_size, err) < 0)
			*rc = error_wrap(err, "--shm-size");
		return true;
	case O_ULIMIT:
		if (a->n_rlimits >= ARRAY_SIZE(a->rlimits))
			*rc = cli_usage_error(cli, "too many --ulimit options");
		else
			*rc = opt_ulimit(&a->rlimits[a->n_rlimits++], optarg, err);
		return true;
	case O_IDLE:
	case O_TIMEOUT: {
		int64_t *ms = c == O_IDLE ? &o->idle_timeout_ms : &o->timeout_ms;
		if (parse_duration_ms(optarg, ms, err) < 0)
			*rc = -1;
		else if (*ms == 0)
			*rc = cli_usage_error(cli, "%s must be positive", c == O_IDLE ? "--idle-timeout" : "--timeout");
		return true;
	}
	case O_LOGOPT:
		if (str_has_prefix(optarg, "max-size=")) {
			if (parse_size(optarg + 9, &o->log_max_size, err) < 0)
				*rc = error_wrap(err, "--log-opt %s", optarg);
		} else if (str_has_prefix(optarg, "max-file=")) {
			if (parse_int64(optarg + 9, 1, 64, &v) < 0)
				*rc = cli_usage_error(cli, "invalid --log-opt '%s': max-file is 1-64", optarg);
			else
				o->log_max_files = (int)v;
		} else {
			*rc = cli_usage_error(cli, "unknown --log-opt '%s' (max-size=SIZE, max-file=N)", optarg);
		}
		return true;
	default:
		return false;
	}
}

static int parse(struct cli *cli, struct run_args *a, int argc, char **argv)
{
	struct capsa_sandbox_opts *o = &a->o;
	struct capsa_error *err = NULL;
	int c;
	size_t nm = 0;
	while ((c = getopt_long(argc, argv, "+de:w:u:l:v:m:p:ith", run_options, NULL)) != -1) {
		int rc = 0;
		if (parse_limit(cli, a, c, &err, &rc)) {
			if (rc < 0)
				return cli_fail(cli, err);
			if (rc > 0)
				return rc;
			continue;
		}
		switch (c) {
		case 'd': a->detach = true; break;
		case O_RM: o->auto_remove = true; break;
		case O_NAME: o->name = optarg; break;
		case 'e': rc = opt_env(&o->env, optarg, &err); break;
		case O_ENV_FILE: rc = opt_env_file(&o->env, optarg, &err); break;
		case 'w': o->workdir = optarg; break;
		case 'u': o->user = optarg; break;
		case O_ENTRYPOINT:
			strv_free(a->entrypoint);
			a->entrypoint = strv_push(NULL, optarg);
			o->entrypoint = a->entrypoint;
			o->entrypoint_set = true;
			break;
		case 'l':
			if (!strchr(optarg, '=') || *optarg == '=')
				return cli_usage_error(cli, "invalid label '%s': expected KEY=VALUE", optarg);
			o->labels = strv_push(o->labels, optarg);
			break;
		case 'v':
		case O_TMPFS:
			if (nm >= ARRAY_SIZE(a->mounts))
				return cli_usage_error(cli, "too many mounts");
			rc = c == 'v' ? opt_volume(&a->mounts[nm], optarg, &err) : opt_tmpfs(&a->mounts[nm], optarg, &err);
			/* counted at once, so that an error below still frees it */
			o->mounts = a->mounts;
			o->n_mounts = ++nm;
			break;
		case O_HOSTNAME:
			o->hostname = optarg;
			rc = check_hostname(optarg, &err);
			break;
		case O_READONLY: o->readonly = true; break;
		case O_USERNS:
			if (strcmp(optarg, "auto") == 0)
				o->userns = CAPSA_USERNS_AUTO;
			else if (strcmp(optarg, "host") == 0)
				o->userns = CAPSA_USERNS_HOST;
			else
				return cli_usage_error(cli, "invalid --userns '%s': expected auto or host", optarg);
			break;
		case O_NETWORK: o->network = optarg; break;
		case O_ALLOW_OUT: o->allow_out = strv_push(o->allow_out, optarg); break;
		case O_DENY_OUT: o->deny_out = strv_push(o->deny_out, optarg); break;
		case O_DNS: o->dns = strv_push(o->dns, optarg); break;
		case O_ADD_HOST: o->add_hosts = strv_push(o->add_hosts, optarg); break;
		case O_CAP_ADD: o->cap_add = strv_push(o->cap_add, optarg); break;
		case O_CAP_DROP: o->cap_drop = strv_push(o->cap_drop, optarg); break;
		case O_SECOPT:
			if ((rc = opt_security(cli, o, optarg)) > 0)
				return rc;
			break;
		case O_STOPSIG: rc = parse_signal(optarg, &o->stop_signal, &err); break;
		case 'p':
			if (a->n_ports >= ARRAY_SIZE(a->ports))
				return cli_usage_error(cli, "too many published ports");
			rc = capsa_port_parse(optarg, &a->ports[a->n_ports], &a->port_ips[a->n_ports], &err);
			if (rc == 0)
				a->n_ports++;
			break;
		case O_DETACH_KEYS: {
			char k[16];
			a->detach_keys = optarg;
			rc = capsa_detach_keys_parse(optarg, k, &err);
			break;
		}
		case O_SIG_PROXY: rc = opt_sig_proxy(optarg, &a->no_sig_proxy, &err); break;
		case 'i': o->interactive = true; break;
		case 't': o->tty = true; break;
		case 'h': return cli_help(run_usage), -1;
		default: return cli_usage_error(cli, "unknown option");
		}
		if (rc < 0)
			return cli_fail(cli, err);
	}
	if (optind >= argc)
		return cli_usage_error(cli, "requires an IMAGE");
	if (o->tty && o->interactive && !a->detach && need_input_tty(cli, "-t with -i needs a terminal on stdin") != 0)
		return EXIT_CAPSA;
	o->image = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind < argc)
		o->cmd = argv + optind;
	o->mounts = a->mounts;
	o->n_mounts = nm;
	o->rlimits = a->rlimits;
	o->n_rlimits = a->n_rlimits;
	o->ports = a->ports;
	o->n_ports = a->n_ports;
	return 0;
}

static void run_args_release(struct run_args *a)
{
	strv_free(a->o.env);
	strv_free(a->o.labels);
	strv_free(a->o.cap_add);
	strv_free(a->o.cap_drop);
	strv_free(a->o.allow_out);
	strv_free(a->o.deny_out);
	strv_free(a->o.dns);
	strv_free(a->o.add_hosts);
	strv_free(a->entrypoint);
	for (size_t i = 0; i < a->o.n_mounts; i++) {
		free((char *)a->mounts[i].source);
		free((char *)a->mounts[i].target);
	}
	for (size_t i = 0; i < a->n_ports; i++)
		free(a->port_ips[i]);
}

CLI_CMD(run)
{
	struct run_args a;
	memset(&a, 0, sizeof(a));
	int prc = parse(cli, &a, argc, argv);
	if (prc != 0) {
		run_args_release(&a);
		return prc < 0 ? 0 : prc;
	}
	struct capsa_sandbox_opts *o = &a.o;
	struct capsa_error *err = NULL;
	char *id = NULL;
	int rc;
	if (a.detach) {
		rc = capsa_sandbox_run(cli_ctx(cli), o, NULL, &id, NULL, &err);
		run_args_release(&a);
		if (rc < 0)
			return cli_fail(cli, err);
		printf("%s\n", id);
		free(id);
		return 0;
	}
	struct term_state term = { .fd = -1 };
	struct capsa_stdio io = { .in_fd = o->interactive ? 0 : -1, .out_fd = 1, .err_fd = 2, .tty = o->tty,
				  .detach_keys = a.detach_keys, .no_sig_proxy = a.no_sig_proxy };
	if (o->tty) {
		term_size(1, &io.rows, &io.cols);
		if (o->interactive)
			term_raw(&term, 0);
	}
	io.sig_fd = session_signals_open();
	struct capsa_exit e;
	rc = capsa_sandbox_run(cli_ctx(cli), o, &io, &id, &e, &err);
	term_restore(&term);
	session_signals_close(io.sig_fd);
	run_args_release(&a);
	free(id);
	if (rc < 0)
		return cli_fail(cli, err);
	return report_exit(&e);
}
