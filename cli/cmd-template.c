/* cmd-template.c: `capsa template ...`: templates name an image and the
 * resources of sandboxes made from it (capsa/template.h); API clients ask
 * for them by name (the E2B SDK's templateID). */
#include <jansson.h>
#include <string.h>

#include "capsa/template.h"
#include "cli.h"
#include "cmds.h"
#include "opts.h"
#include "util/str.h"

static const char template_usage[] =
	"Usage: capsa template COMMAND [ARGS...]\n"
	"\n"
	"Manage templates: names for an image and the limits of the sandboxes made\n"
	"from it.  'base' and 'code-interpreter-v1' exist without being created once\n"
	"the image " CAPSA_TEMPLATE_DEFAULT_IMAGE " is in the store; creating a template of the\n"
	"same name replaces one.\n"
	"\n"
	"Commands:\n";

static const char create_help[] =
	"Usage: capsa template create [OPTIONS] NAME --image REF\n"
	"\n"
	"Create or replace template NAME.\n"
	"\n"
	"Options:\n"
	"      --image REF      the image (must be in the store)\n"
	"      --cpus N         cpu limit of its sandboxes (default: none)\n"
	"  -m, --memory SIZE    memory limit (default 512m; 0: none)\n"
	"      --disk SIZE      disk reserved in the capacity ledger (default: none)\n"
	"  -h, --help           show this help\n";

static CLI_CMD(template_create)
{
	static const struct option opts[] = {
		{ "image", required_argument, NULL, 'i' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "disk", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct capsa_template t = { .memory = CAPSA_TEMPLATE_DEFAULT_MEMORY };
	struct capsa_error *err = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			t.image = optarg;
			break;
		case 'c':
			if (opt_cpus(optarg, &t.cpus_milli, &err) < 0)
				return cli_fail(cli, err);
			break;
		case 'm':
			if (parse_size(optarg, &t.memory, &err) < 0)
				return cli_fail(cli, err);
			break;
		case 'd':
			if (parse_size(optarg, &t.disk, &err) < 0)
				return cli_fail(cli, err);
			break;
		case 'h':
			return cli_help(create_help);
		default:
			return cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_error(cli, "expected one NAME");
	if (!t.image)
		return cli_usage_error(cli, "--image is required");
	t.name = argv[optind];
	if (capsa_template_create(cli_ctx(cli), &t, &err) < 0)
		return cli_fail(cli, err);
	return 0;
}

static const char ls_help[] =
	"Usage: capsa template ls [OPTIONS]\n"
	"\n"
	"List templates by name.\n"
	"\n"
	"Options:\n"
	"      --json     print a JSON array: name, image, cpus, memory, disk, builtin\n"
	"  -q, --quiet    print only the names\n"
	"  -h, --help     show this help\n";

static CLI_CMD(template_ls)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, quiet = false;
	int c;
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			return cli_help(ls_help);
		default:
			return cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	struct capsa_template *v;
	size_t n;
	struct capsa_error *err = NULL;
	if (capsa_template_list(cli_ctx(cli), &v, &n, &err) < 0)
		return cli_fail(cli, err);
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_pack("{s:s, s:s, s:f, s:I, s:I, s:b}", "name", v[i].name, "image",
							   v[i].image, "cpus", (double)v[i].cpus_milli / 1000,
							   "memory", (json_int_t)v[i].memory, "disk",
							   (json_int_t)v[i].disk, "builtin", v[i].builtin));
		char *s = json_dumps(a, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(a);
	} else if (quiet) {
		for (size_t i = 0; i < n; i++)
			puts(v[i].name);
	} else {
		printf("%-24s %-40s %-6s %-10s %s\n", "NAME", "IMAGE", "CPUS", "MEMORY", "DISK");
		for (size_t i = 0; i < n; i++) {
			char cpus[16], mem[32], disk[32];
			if (v[i].cpus_milli)
				snprintf(cpus, sizeof(cpus), "%g", (double)v[i].cpus_milli / 1000);
			else
				snprintf(cpus, sizeof(cpus), "-");
			if (v[i].memory)
				cli_human_size(v[i].memory, mem, sizeof(mem));
			else
				snprintf(mem, sizeof(mem), "-");
			if (v[i].disk)
				cli_human_size(v[i].disk, disk, sizeof(disk));
			else
				snprintf(disk, sizeof(disk), "-");
			printf("%-24s %-40s %-6s %-10s %s%s\n", v[i].name, v[i].image, cpus, mem, disk,
			       v[i].builtin ? "  (built in)" : "");
		}
	}
	capsa_template_list_free(v, n);
	return 0;
}

static const char rm_help[] =
	"Usage: capsa template rm NAME...\n"
	"\n"
	"Remove templates.  Removing one that replaced a built-in template brings\n"
	"the built-in one back.\n"
	"\n"
	"Options:\n"
	"  -h, --help     show this help\n";

static CLI_CMD(template_rm)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, rm_help, &rc);
	if (first < 0)
		return rc;
	if (first >= argc)
		return cli_usage_error(cli, "expected NAME...");
	for (int i = first; i < argc; i++) {
		struct capsa_error *err = NULL;
		if (capsa_template_remove(cli_ctx(cli), argv[i], &err) < 0)
			rc = cli_fail(cli, err);
		else
			puts(argv[i]);
	}
	return rc;
}

static const struct cli_cmd template_cmds[] = {
	{ "create", cmd_template_create, "create or replace a template" },
	{ "ls", cmd_template_ls, "list templates" },
	{ "rm", cmd_template_rm, "remove templates" },
	{ NULL, NULL, NULL },
};

CLI_CMD(template)
{
	return cli_dispatch(cli, template_cmds, "template", template_usage, argc - 1, argv + 1);
}
