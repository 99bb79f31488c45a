/* main.c: the capsa command line: global options, then one command from the
 * table below.  Built twice: as `capsa` (CAPSA_CLI_LIGHT: only commands whose
 * libraries start fast) and as `capsa-full` (everything).  The light binary
 * re-executes capsa-full for the commands it does not carry, the way git
 * hands http transports to git-remote-https, so that `capsa exec` does not
 * pay for loading libcurl and OpenSSL. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmds.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/paths.h"
#include "util/str.h"
#include "util/trace.h"

char **cli_orig_argv;

static const char main_usage[] =
	"Usage: capsa [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
	"\n"
	"Run untrusted code in isolated sandboxes made from OCI images.\n"
	"\n"
	"Global options:\n"
	"  --root DIR        store root (default $CAPSA_ROOT or /var/lib/capsa)\n"
	"  --run-root DIR    runtime directory (default $CAPSA_RUN_ROOT or /run/capsa)\n"
	"  --debug           print debugging detail on errors\n"
	"  -h, --help        show this help\n"
	"  -v, --version     print the version\n"
	"\n"
	"Environment:\n"
	"  CAPSA_ROOT, CAPSA_RUN_ROOT   defaults for --root and --run-root\n"
	"  CAPSA_CGROUP_PARENT          cgroup under which sandboxes are created\n"
	"                               (default capsa: <hierarchy>/capsa/<id>)\n"
	"  CAPSA_SUBUID_FILE, CAPSA_SUBGID_FILE\n"
	"                               where the capsa user's subordinate ids are\n"
	"                               (default /etc/subuid, /etc/subgid)\n"
	"\n"
	"Rootless mode: run by a user other than root, capsa enters the user's own\n"
	"user namespace (its /etc/subuid and /etc/subgid ranges, mapped with\n"
	"newuidmap/newgidmap) and keeps its store in $XDG_DATA_HOME/capsa\n"
	"(~/.local/share/capsa) and $XDG_RUNTIME_DIR/capsa (/tmp/capsa-run-UID).\n"
	"Limits need a delegated cgroup v2 subtree; --disk needs root.  See\n"
	"docs/rootless.md.\n"
	"\n"
	"Commands:\n";



int cli_exec_open(struct cli *cli, const char *sandbox, struct proto_conn *c, char **name, struct capsa_error **err)
{
	struct sb_row r;
	if (sandbox_open_running(cli_ctx(cli), sandbox, &r, c, err) < 0)
		return -1;
	*name = steal_pointer(&r.name);
	sb_row_release(&r);
	return 0;
}

struct capsa_ctx *cli_ctx(struct cli *cli)
{
	if (cli->ctx)
		return cli->ctx;
	struct capsa_error *err = NULL;
	/* rootless: the store's files belong to the user's subordinate ids */
	if (capsa_rootless_enter(&err) < 0 || capsa_ctx_open(&cli->opts, &cli->ctx, &err) < 0)
		exit(cli_fail(cli, err));
	return cli->ctx;
}

/* 1.5kB, 23.4MB, ... (decimal units, as docker prints sizes) */
void cli_human_size(int64_t n, char *out, size_t len)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
	double v = (double)n;
	size_t u = 0;
	while (v >= 1000 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%lldB", (long long)n);
	else
		snprintf(out, len, "%.*f%s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
}


int cli_exec_full(char **orig_argv)
{
	_cleanup_free_ char *full = capsa_helper_path("capsa-full");
	if (!full) {
		fprintf(stderr, "capsa: cannot find capsa-full next to capsa or in the libexec directory\n");
		return EXIT_CAPSA;
	}
	execv(full, orig_argv);
	fprintf(stderr, "capsa: exec %s: %s\n", full, strerror(errno));
	return EXIT_CAPSA;
}

static void print_table(FILE *f, const struct cli_cmd *table)
{
	for (const struct cli_cmd *c = table; c->name; c++)
		fprintf(f, "  %-12s %s\n", c->name, c->summary);
}

int cli_dispatch(struct cli *cli, const struct cli_cmd *table, const char *group, const char *usage,
		 int argc, char **argv)
{
	if (argc < 1 || str_eq(argv[0], "--help") || str_eq(argv[0], "-h") || str_eq(argv[0], "help")) {
		FILE *f = argc < 1 ? stderr : stdout;
		fputs(usage, f);
		print_table(f, table);
		return argc < 1 ? EXIT_CAPSA : 0;
	}
	for (const struct cli_cmd *c = table; c->name; c++) {
		if (!str_eq(c->name, argv[0]))
			continue;
		_cleanup_free_ char *full = group ? xasprintf("%s %s", group, c->name) : xstrdup(c->name);
		cli->cmd = full;
		/* getopt state is global: reset it for the sub-command */
		optind = 0;
		if (!c->fn)
			return cli_exec_full(cli_orig_argv);
		int rc = c->fn(cli, argc, argv);
		cli->cmd = NULL;
		return rc;
	}
	if (group)
		fprintf(stderr, "capsa %s: unknown command '%s'\nSee 'capsa %s --help'.\n", group, argv[0], group);
	else
		fprintf(stderr, "capsa: unknown command '%s'\nSee 'capsa --help'.\n", argv[0]);
	return EXIT_CAPSA;
}

static CLI_CMD(version)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, "Usage: capsa version\n\nPrint the version.\n", &rc);
	if (first < 0)
		return rc;
	if (first < argc)
		return cli_usage_error(cli, "takes no arguments");
	printf("capsa version %s\n", capsa_version());
	return 0;
}

static const struct cli_cmd commands[] = {
#define CMD(name, fn, summary) { name, fn, summary },
	CAPSA_COMMANDS
#undef CMD
	{ "version", cmd_version, "print the version" },
	{ NULL, NULL, NULL },
};

int main(int argc, char **argv)
{
	trace_mark("main");
	struct cli cli = { 0 };
	cli_orig_argv = argv;
	/* capsa-runc: engines configured with a runtime path call us by that
	 * name, with runc's command line */
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (strcmp(base, "capsa-runc") == 0) {
		int rc = cmd_oci(&cli, argc, argv);
		fflush(stdout);
		return ferror(stdout) && rc == 0 ? 1 : rc;
	}
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "run-root", required_argument, NULL, 'R' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	/* '+': stop at the command name; its options are its own */
	while ((c = getopt_long(argc, argv, "+hv", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			cli.opts.root = optarg;
			break;
		case 'R':
			cli.opts.run_root = optarg;
			break;
		case 'd':
			cli.debug = true;
			break;
		case 'h':
			fputs(main_usage, stdout);
			print_table(stdout, commands);
			return 0;
		case 'v':
			printf("capsa version %s\n", capsa_version());
			return 0;
		default:
			fprintf(stderr, "capsa: %s\nSee 'capsa --help'.\n", flags_error());
			return EXIT_CAPSA;
		}
	}
	int rc = cli_dispatch(&cli, commands, NULL, main_usage, argc - optind, argv + optind);
	capsa_ctx_free(cli.ctx);
	fflush(stdout);
	if (ferror(stdout) && rc == 0)
		rc = EXIT_CAPSA;
	return rc;
}
