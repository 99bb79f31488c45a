/* frontdoor.c: `capsa`, the command users type: a musl static binary.
 *
 * It runs `capsa exec` itself when the runtime index (lib/sandbox/runindex.c)
 * names a running sandbox: no dynamic linker, no SQLite, no database read,
 * just a connect to the supervisor and the session.  On this class of
 * machine that is ~0.1 ms of start-up instead of ~1.5 ms.  Every other
 * command, and every exec the index cannot resolve, is handed to capsa-core
 * (the glibc build of cli/main.c) with the same arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmds.h"
#include "linux/rootless.h"
#include "sandbox/runindex.h"
#include "util/fs.h"
#include "util/paths.h"
#include "util/str.h"

char **cli_orig_argv;

static __attribute__((noreturn)) void exec_core(void)
{
	char *core = capsa_helper_path("capsa-core");
	if (core)
		execv(core, cli_orig_argv);
	fprintf(stderr, "capsa: cannot run capsa-core (next to capsa or in the libexec directory): %s\n",
		core ? strerror(errno) : "not found");
	exit(EXIT_CAPSA);
}

int cli_exec_open(struct cli *cli, const char *sandbox, struct proto_conn *c, char **name, struct capsa_error **err)
{
	(void)err;
	const char *run = cli->opts.run_root;
	if (!run || !*run)
		run = getenv("CAPSA_RUN_ROOT");
	_cleanup_free_ char *own = NULL;
	if (!run || !*run)
		run = linux_rootless() ? (own = linux_rootless_run_root()) : CAPSA_DEFAULT_RUN_ROOT;
	char id[65];
	if (runindex_lookup(run, sandbox, id) < 0)
		exec_core(); /* not running, unknown or ambiguous: the database decides */
	char *sock = xasprintf("%s/%s/ctl.sock", run, id);
	int fd = unix_connect(sock, false);
	free(sock);
	if (fd < 0)
		exec_core(); /* the supervisor is gone: capsa-core reconciles */
	proto_conn_init(c, fd);
	*name = xstrdup(sandbox);
	return 0;
}

int main(int argc, char **argv)
{
	cli_orig_argv = argv;
	struct cli cli = { 0 };
	/* the global options of cli/main.c, only to find the command */
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--root") == 0 || strcmp(a, "--run-root") == 0) {
			if (i + 1 >= argc)
				exec_core();
			if (strcmp(a, "--run-root") == 0)
				cli.opts.run_root = argv[i + 1];
			i++;
		} else if (str_has_prefix(a, "--root=")) {
		} else if (str_has_prefix(a, "--run-root=")) {
			cli.opts.run_root = a + strlen("--run-root=");
		} else if (strcmp(a, "--debug") == 0) {
		} else {
			break;
		}
	}
	if (i >= argc || strcmp(argv[i], "exec") != 0)
		exec_core();
	cli.cmd = "exec";
	optind = 0;
	return cmd_exec(&cli, argc - i, argv + i);
}
