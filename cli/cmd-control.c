/* cmd-control.c: the small lifecycle commands: stop, kill, rm, wait, pause,
 * unpause, and the internal _finalize. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "capsa/sandbox.h"
#include "cli.h"
#include "cmds.h"
#include "util/str.h"

static const char stop_usage[] =
	"Usage: capsa stop [-t SECONDS] SANDBOX...\n"
	"\n"
	"Send the stop signal (TERM, or the image's StopSignal) to each sandbox's\n"
	"main process, wait up to -t seconds (default 10), then kill the whole\n"
	"sandbox.  Stopping a sandbox that has ended is not an error.\n";

static const char kill_usage[] =
	"Usage: capsa kill [-s SIGNAL] SANDBOX...\n"
	"\n"
	"Send SIGNAL (default KILL) to each sandbox's main process.  SIGNAL is a name\n"
	"with or without SIG (TERM, SIGUSR1) or a number (15).\n";

static const char rm_usage[] =
	"Usage: capsa rm [-f] SANDBOX...\n"
	"       capsa rm -f --all\n"
	"\n"
	"Remove sandboxes that have ended: their upper layer, logs and record.  With\n"
	"-f, running sandboxes are killed first; removing one that does not exist is\n"
	"then not an error.\n";

static const char wait_usage[] =
	"Usage: capsa wait SANDBOX...\n"
	"\n"
	"Wait until each sandbox ends and print its exit code.\n";

static const char pause_usage[] =
	"Usage: capsa pause SANDBOX...\n"
	"       capsa unpause SANDBOX...\n"
	"\n"
	"Freeze (or thaw) every process of a sandbox with the cgroup freezer.\n";

static int for_each(struct cli *cli, int argc, char **argv, int first,
		    int (*fn)(struct cli *, const char *, void *), void *arg)
{
	if (first >= argc)
		return cli_usage_error(cli, "requires at least one SANDBOX");
	int rc = 0;
	for (int i = first; i < argc; i++)
		if (fn(cli, argv[i], arg) != 0)
			rc = EXIT_CAPSA;
	return rc;
}

static int do_stop(struct cli *cli, const char *sb, void *arg)
{
	struct capsa_error *err = NULL;
	if (capsa_sandbox_stop(cli_ctx(cli), sb, *(int64_t *)arg, &err) < 0)
		return cli_fail(cli, err);
	printf("%s\n", sb);
	return 0;
}

CLI_CMD(stop)
{
	static const struct option opts[] = {
		{ "time", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int64_t secs = 10;
	int c;
	while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help(stop_usage);
		if (c != 't')
			return cli_usage_error(cli, "unknown option");
		if (parse_int64(optarg, 0, 86400 * 365, &secs) < 0)
			return cli_usage_error(cli, "invalid -t '%s': expected seconds", optarg);
	}
	int64_t ms = secs * 1000;
	return for_each(cli, argc, argv, optind, do_stop, &ms);
}

static int do_kill(struct cli *cli, const char *sb, void *arg)
{
	struct capsa_error *err = NULL;
	if (capsa_sandbox_kill(cli_ctx(cli), sb, *(int *)arg, &err) < 0)
		return cli_fail(cli, err);
	printf("%s\n", sb);
	return 0;
}

CLI_CMD(kill)
{
	static const struct option opts[] = {
		{ "signal", required_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int sig = 9;
	int c;
	struct capsa_error *err = NULL;
	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help(kill_usage);
		if (c != 's')
			return cli_usage_error(cli, "unknown option");
		if (parse_signal(optarg, &sig, &err) < 0)
			return cli_fail(cli, err);
	}
	return for_each(cli, argc, argv, optind, do_kill, &sig);
}

static int do_rm(struct cli *cli, const char *sb, void *arg)
{
	bool force = *(bool *)arg;
	struct capsa_error *err = NULL;
	if (capsa_sandbox_remove(cli_ctx(cli), sb, force, &err) < 0) {
		if (force && err && err->code == ENOENT) {
			capsa_error_free(err);
			return 0;
		}
		return cli_fail(cli, err);
	}
	printf("%s\n", sb);
	return 0;
}

CLI_CMD(rm)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' }, { "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool force = false, all = false;
	int c;
	while ((c = getopt_long(argc, argv, "fah", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help(rm_usage);
		if (c == 'f')
			force = true;
		else if (c == 'a')
			all = true;
		else
			return cli_usage_error(cli, "unknown option");
	}
	if (!all)
		return for_each(cli, argc, argv, optind, do_rm, &force);
	if (optind < argc)
		return cli_usage_error(cli, "--all takes no SANDBOX arguments");
	struct capsa_error *err = NULL;
	char *s = capsa_sandbox_list(cli_ctx(cli), true, &err);
	if (!s)
		return cli_fail(cli, err);
	json_t *arr = json_loads(s, 0, NULL);
	free(s);
	size_t i;
	json_t *o;
	int rc = 0;
	json_array_foreach(arr, i, o) {
		const char *id = json_string_value(json_object_get(o, "id"));
		const char *state = json_string_value(json_object_get(o, "state"));
		if (!force && strcmp(state, "exited") != 0)
			continue;
		if (do_rm(cli, id, &force) != 0)
			rc = EXIT_CAPSA;
	}
	json_decref(arr);
	return rc;
}

static int do_wait(struct cli *cli, const char *sb, void *arg)
{
	(void)arg;
	struct capsa_error *err = NULL;
	struct capsa_exit e;
	if (capsa_sandbox_wait(cli_ctx(cli), sb, &e, &err) < 0)
		return cli_fail(cli, err);
	printf("%d\n", e.exit_code);
	return 0;
}

CLI_CMD(wait)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, wait_usage, &rc);
	return first < 0 ? rc : for_each(cli, argc, argv, first, do_wait, NULL);
}

static int do_pause(struct cli *cli, const char *sb, void *arg)
{
	struct capsa_error *err = NULL;
	if (capsa_sandbox_pause(cli_ctx(cli), sb, *(bool *)arg, &err) < 0)
		return cli_fail(cli, err);
	printf("%s\n", sb);
	return 0;
}

CLI_CMD(pause)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, pause_usage, &rc);
	bool p = true;
	return first < 0 ? rc : for_each(cli, argc, argv, first, do_pause, &p);
}

CLI_CMD(unpause)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, pause_usage, &rc);
	bool p = false;
	return first < 0 ? rc : for_each(cli, argc, argv, first, do_pause, &p);
}

/* Internal: run by a supervisor as its last act (see docs/architecture.md). */
CLI_CMD(finalize)
{
	if (argc != 2)
		return cli_usage_error(cli, "usage: capsa _finalize ID");
	struct capsa_error *err = NULL;
	if (capsa_sandbox_finalize(cli_ctx(cli), argv[1], &err) < 0)
		return cli_fail(cli, err);
	return 0;
}
