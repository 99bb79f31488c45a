/* cmd-exec.c: `capsa exec`: run a process in a running sandbox. */
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmds.h"
#include "opts.h"
#include "sandbox/session.h"
#include "util/str.h"

static const char exec_usage[] =
	"Usage: capsa exec [OPTIONS] SANDBOX [--] COMMAND [ARG...]\n"
	"\n"
	"Run COMMAND in the running sandbox SANDBOX (an id, an id prefix or a name).\n"
	"The process gets the sandbox's environment, user, working directory,\n"
	"capabilities and seccomp filter unless overridden.  Output is streamed; the\n"
	"exit status is the process's.  INT, TERM, HUP, QUIT, USR1 and USR2 that\n"
	"capsa gets are forwarded to its process group, with or without -i and -t; a\n"
	"second INT or TERM (ctrl-c twice without -t) leaves the process running (a\n"
	"kept process, see 'capsa proc ls') and capsa exits with 128+N.\n"
	"\n"
	"Options:\n"
	"  -e, --env KEY=VALUE        set an environment variable (KEY alone copies ours)\n"
	"      --env-file FILE        read KEY=VALUE lines from FILE (docker's format: #\n"
	"                             comments, KEY alone copies ours, values as written;\n"
	"                             any other line is an error)\n"
	"  -w, --workdir DIR          working directory (must exist)\n"
	"  -u, --user USER[:GROUP]    user and group, by name or number\n"
	"  -i, --interactive          stream stdin to the process (EOF is passed on)\n"
	"  -t, --tty                  give the process a terminal (-it needs a terminal\n"
	"                             on stdin, unless with -d)\n"
	"  -d, --detach               start the process and return at once; it keeps\n"
	"                             running and its output is kept for 'capsa attach\n"
	"                             --proc' (see 'capsa proc ls')\n"
	"      --tag NAME             name the process (for 'capsa attach --proc NAME')\n"
	"      --timeout DUR          end the process after DUR (TERM, then KILL after\n"
	"                             10 s); it then exits with status 124\n"
	"      --detach-keys KEYS     keys that leave a -it process running (default\n"
	"                             ctrl-p,ctrl-q; '' for none)\n"
	"      --sig-proxy=false      do not forward signals: the first one leaves the\n"
	"                             process running and capsa exits with 128+N\n"
	"  -h, --help                 show this help\n"
	"\n"
	"With -t and -i the terminal is put in raw mode (restored on every way out)\n"
	"and resized with ours; ctrl-c is then a key for the process, not a signal.\n"
	"A process that capsa left (a second signal) keeps running; without -t its\n"
	"output went straight to capsa, so once capsa is gone its next write gets\n"
	"SIGPIPE (or EPIPE).\n"
	"\n"
	"Exit status: the process's own; 124 after --timeout; 125 if capsa failed or\n"
	"for a usage error (-it without a terminal as well); 126 if the command\n"
	"cannot be invoked; 127 if it was not found; 128+N if capsa left after\n"
	"signal N; 0 after the detach keys.\n";

enum { O_ENV_FILE = 256, O_TIMEOUT, O_TAG, O_DETACH_KEYS, O_SIG_PROXY };

static const struct option exec_options[] = {
	{ "env", required_argument, NULL, 'e' },
	{ "env-file", required_argument, NULL, O_ENV_FILE },
	{ "workdir", required_argument, NULL, 'w' },
	{ "user", required_argument, NULL, 'u' },
	{ "interactive", no_argument, NULL, 'i' },
	{ "tty", no_argument, NULL, 't' },
	{ "detach", no_argument, NULL, 'd' },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "tag", required_argument, NULL, O_TAG },
	{ "detach-keys", required_argument, NULL, O_DETACH_KEYS },
	{ "sig-proxy", optional_argument, NULL, O_SIG_PROXY },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

CLI_CMD(exec)
{
	struct capsa_exec_opts o = { 0 };
	const char *detach_keys = NULL;
	bool no_sig_proxy = false;
	struct capsa_error *err = NULL;
	int c, rc = 0;
	while ((c = getopt_long(argc, argv, "+e:w:u:itdh", exec_options, NULL)) != -1) {
		switch (c) {
		case 'e': rc = opt_env(&o.env, optarg, &err); break;
		case O_ENV_FILE: rc = opt_env_file(&o.env, optarg, &err); break;
		case 'w': o.workdir = optarg; break;
		case 'u': o.user = optarg; break;
		case 'i': o.interactive = true; break;
		case 't': o.tty = true; break;
		case 'd': o.detach = true; break;
		case O_TIMEOUT:
			if (parse_duration_ms(optarg, &o.timeout_ms, &err) < 0)
				rc = -1;
			else if (o.timeout_ms == 0)
				rc = error_set(&err, EINVAL, "invalid --timeout '%s': must be positive", optarg);
			break;
		case O_TAG: o.tag = optarg; break;
		case O_SIG_PROXY: rc = opt_sig_proxy(optarg, &no_sig_proxy, &err); break;
		case O_DETACH_KEYS: {
			char k[16];
			detach_keys = optarg;
			rc = capsa_detach_keys_parse(optarg, k, &err);
			break;
		}
		case 'h':
			strv_free(o.env);
			return cli_help(exec_usage);
		default:
			strv_free(o.env);
			return cli_usage_error(cli, "unknown option");
		}
		if (rc < 0) {
			strv_free(o.env);
			return cli_fail(cli, err);
		}
	}
	if (argc - optind < 1) {
		strv_free(o.env);
		return cli_usage_error(cli, "requires a SANDBOX and a COMMAND");
	}
	const char *sandbox = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind >= argc) {
		strv_free(o.env);
		return cli_usage_error(cli, "requires a COMMAND");
	}
	o.argv = argv + optind;
	if (o.tty && o.interactive && !o.detach && need_input_tty(cli, "-t with -i needs a terminal on stdin") != 0) {
		strv_free(o.env);
		return EXIT_CAPSA;
	}
	struct capsa_exit e;
	/* connect before touching the terminal or the signal mask */
	struct proto_conn conn;
	char *name = NULL;
	if (cli_exec_open(cli, sandbox, &conn, &name, &err) < 0) {
		strv_free(o.env);
		return cli_fail(cli, err);
	}
	if (o.detach) {
		rc = sandbox_exec_conn(&conn, name, &o, NULL, &e, &err);
		proto_conn_release(&conn, true);
		free(name);
		strv_free(o.env);
		if (rc < 0)
			return cli_fail(cli, err);
		if (e.reason[0])
			return report_exit(&e);
		return 0;
	}
	struct term_state term = { .fd = -1 };
	struct capsa_stdio io = { .in_fd = o.interactive ? 0 : -1, .out_fd = 1, .err_fd = 2, .tty = o.tty,
				  .detach_keys = detach_keys, .no_sig_proxy = no_sig_proxy };
	if (o.tty) {
		term_size(1, &io.rows, &io.cols);
		if (o.interactive)
			term_raw(&term, 0);
	}
	io.sig_fd = session_signals_open();
	rc = sandbox_exec_conn(&conn, name, &o, &io, &e, &err);
	term_restore(&term);
	session_signals_close(io.sig_fd);
	proto_conn_release(&conn, true);
	free(name);
	strv_free(o.env);
	if (rc < 0)
		return cli_fail(cli, err);
	return report_exit(&e);
}
