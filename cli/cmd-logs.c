/* cmd-logs.c: `capsa logs`: the main process's output. */
#include <string.h>

#include "capsa/logs.h"
#include "cli.h"
#include "cmds.h"
#include "util/str.h"

static const char logs_usage[] =
	"Usage: capsa logs [OPTIONS] SANDBOX\n"
	"\n"
	"Print what the sandbox's main process wrote to stdout (on our stdout) and\n"
	"stderr (on our stderr), across rotated log files, oldest first.\n"
	"\n"
	"Options:\n"
	"  -f, --follow         keep printing new output until the sandbox ends\n"
	"  -n, --tail N         only the last N lines (per the filters below)\n"
	"      --since TIME     only lines from TIME on: RFC 3339 (2026-01-02T15:04:05Z)\n"
	"                       or a duration ago (10m, 1h)\n"
	"      --until TIME     only lines up to TIME (same forms)\n"
	"  -t, --timestamps     prefix each line with its time (RFC 3339, nanoseconds)\n"
	"      --stdout         only stdout\n"
	"      --stderr         only stderr\n"
	"  -h, --help           show this help\n";

static int parse_time(const char *s, int64_t *out, struct capsa_error **err)
{
	if (parse_rfc3339(s, out) == 0)
		return 0;
	int64_t ago;
	if (parse_duration_ms(s, &ago, err) < 0)
		return error_wrap(err, "expected RFC 3339 time or a duration");
	*out = now_ms() - ago;
	return 0;
}

CLI_CMD(logs)
{
	enum { O_SINCE = 256, O_UNTIL, O_STDOUT, O_STDERR };
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },	 { "tail", required_argument, NULL, 'n' },
		{ "since", required_argument, NULL, O_SINCE }, { "until", required_argument, NULL, O_UNTIL },
		{ "timestamps", no_argument, NULL, 't' },	 { "stdout", no_argument, NULL, O_STDOUT },
		{ "stderr", no_argument, NULL, O_STDERR },	 { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct capsa_logs_opts o = { .tail = -1 };
	bool only_out = false, only_err = false;
	struct capsa_error *err = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "fn:th", opts, NULL)) != -1) {
		switch (c) {
		case 'f': o.follow = true; break;
		case 'n':
			if (strcmp(optarg, "all") != 0 && parse_int64(optarg, 0, INT32_MAX, &o.tail) < 0)
				return cli_usage_error(cli, "invalid --tail '%s': expected a number of lines or 'all'", optarg);
			break;
		case O_SINCE:
			if (parse_time(optarg, &o.since_ms, &err) < 0)
				return cli_fail(cli, err);
			break;
		case O_UNTIL:
			if (parse_time(optarg, &o.until_ms, &err) < 0)
				return cli_fail(cli, err);
			break;
		case 't': o.timestamps = true; break;
		case O_STDOUT: only_out = true; break;
		case O_STDERR: only_err = true; break;
		case 'h': return cli_help(logs_usage);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "requires exactly one SANDBOX");
	o.stdout_ = !only_err || only_out;
	o.stderr_ = !only_out || only_err;
	if (capsa_sandbox_logs(cli_ctx(cli), argv[optind], &o, 1, 2, &err) < 0)
		return cli_fail(cli, err);
	return 0;
}
