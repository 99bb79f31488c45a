/* cmd-ps.c: `capsa ps`: list sandboxes. */
#include <jansson.h>
#include <string.h>

#include "capsa/sandbox.h"
#include "cli.h"
#include "cmds.h"
#include "util/str.h"

static const char ps_usage[] =
	"Usage: capsa ps [OPTIONS]\n"
	"\n"
	"List sandboxes: running ones, or all with -a.  Sandboxes whose supervisor\n"
	"died are reconciled first and shown as exited with reason 'lost'.\n"
	"\n"
	"Options:\n"
	"  -a, --all      include sandboxes that have ended\n"
	"  -q, --quiet    print ids only\n"
	"      --json     print a JSON array\n"
	"  -h, --help     show this help\n";

static void human_age(int64_t ms, char *out, size_t n)
{
	int64_t s = ms / 1000;
	if (s < 60)
		snprintf(out, n, "%lld seconds", (long long)s);
	else if (s < 3600)
		snprintf(out, n, "%lld minutes", (long long)(s / 60));
	else if (s < 86400)
		snprintf(out, n, "%lld hours", (long long)(s / 3600));
	else
		snprintf(out, n, "%lld days", (long long)(s / 86400));
}

static int64_t ts_of(json_t *o, const char *key)
{
	int64_t ms = 0;
	const char *s = json_string_value(json_object_get(o, key));
	if (s)
		parse_rfc3339(s, &ms);
	return ms;
}

CLI_CMD(ps)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' }, { "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool all = false, quiet = false, js = false;
	int c;
	while ((c = getopt_long(argc, argv, "aqh", opts, NULL)) != -1) {
		switch (c) {
		case 'a': all = true; break;
		case 'q': quiet = true; break;
		case 'j': js = true; break;
		case 'h': return cli_help(ps_usage);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error(cli, "takes no arguments");
	struct capsa_error *err = NULL;
	char *s = capsa_sandbox_list(cli_ctx(cli), all, &err);
	if (!s)
		return cli_fail(cli, err);
	if (js) {
		printf("%s\n", s);
		free(s);
		return 0;
	}
	json_t *arr = json_loads(s, 0, NULL);
	free(s);
	if (!quiet)
		printf("%-12s  %-20s  %-24s  %-36s  %s\n", "SANDBOX ID", "NAME", "IMAGE", "STATUS", "CREATED");
	size_t i;
	json_t *o;
	int64_t now = now_ms();
	json_array_foreach(arr, i, o) {
		const char *id = json_string_value(json_object_get(o, "id"));
		if (quiet) {
			printf("%.12s\n", id);
			continue;
		}
		const char *state = json_string_value(json_object_get(o, "state"));
		char status[96], age[32], created[48];
		if (strcmp(state, "exited") == 0) {
			human_age(now - ts_of(o, "finished"), age, sizeof(age));
			snprintf(status, sizeof(status), "Exited (%lld) %s ago (%s)",
				 (long long)json_integer_value(json_object_get(o, "exitCode")), age,
				 json_string_value(json_object_get(o, "reason")) ?: "exited");
		} else if (strcmp(state, "running") == 0 || strcmp(state, "paused") == 0) {
			human_age(now - ts_of(o, "started"), age, sizeof(age));
			snprintf(status, sizeof(status), "Up %s%s", age, strcmp(state, "paused") == 0 ? " (Paused)" : "");
		} else {
			snprintf(status, sizeof(status), "%s", state);
		}
		human_age(now - ts_of(o, "created"), age, sizeof(age));
		snprintf(created, sizeof(created), "%s ago", age);
		printf("%-12.12s  %-20s  %-24.24s  %-36s  %s\n", id, json_string_value(json_object_get(o, "name")),
		       json_string_value(json_object_get(o, "image")), status, created);
	}
	json_decref(arr);
	return 0;
}
