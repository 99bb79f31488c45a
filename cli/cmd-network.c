/* cmd-network.c: `capsa network ...`: named networks (capsa/network.h,
 * docs/network.md). */
#include <jansson.h>
#include <string.h>

#include "capsa/network.h"
#include "cli.h"
#include "cmds.h"
#include "util/str.h"

static const char network_usage[] =
	"Usage: capsa network COMMAND [ARGS...]\n"
	"\n"
	"Manage networks.  'bridge' is the host's default network (capsa0,\n"
	"10.88.0.0/16); a network made here is a bridge and a subnet of its own:\n"
	"its sandboxes reach each other by name through its resolver, and nothing\n"
	"of another network.  A sandbox joins one with capsa run --network NAME.\n"
	"\n"
	"Commands:\n";

static const char create_help[] =
	"Usage: capsa network create [--subnet CIDR] [--label KEY=VALUE] NAME\n"
	"\n"
	"Create network NAME and its bridge.\n"
	"\n"
	"Options:\n"
	"      --subnet CIDR   an IPv4 subnet of /16 to /29 (default: the first free /24\n"
	"                      of 10.89.0.0/16); one that overlaps another network's or a\n"
	"                      route of the host's is refused\n"
	"  -l, --label KEY=VALUE\n"
	"                      attach a label\n"
	"  -h, --help          show this help\n";

static CLI_CMD(network_create)
{
	static const struct option opts[] = {
		{ "subnet", required_argument, NULL, 's' },
		{ "label", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct capsa_network_opts o = { 0 };
	_cleanup_strv_ char **labels = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': o.subnet = optarg; break;
		case 'l':
			if (!strchr(optarg, '=') || *optarg == '=')
				return cli_usage_error(cli, "invalid label '%s': expected KEY=VALUE", optarg);
			labels = strv_push(labels, optarg);
			break;
		case 'h': return cli_help(create_help);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_error(cli, "expected one NAME");
	o.name = argv[optind];
	o.labels = labels;
	struct capsa_error *err = NULL;
	if (capsa_network_create(cli_ctx(cli), &o, &err) < 0)
		return cli_fail(cli, err);
	puts(o.name);
	return 0;
}

static const char ls_help[] =
	"Usage: capsa network ls [--json] [-q]\n"
	"\n"
	"List networks, the default one first.\n"
	"\n"
	"Options:\n"
	"      --json     print a JSON array: name, id, subnet, gateway, bridge, running,\n"
	"                 builtin, labels\n"
	"  -q, --quiet    print only the names\n"
	"  -h, --help     show this help\n";

static CLI_CMD(network_ls)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool as_json = false, quiet = false;
	int c;
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': as_json = true; break;
		case 'q': quiet = true; break;
		case 'h': return cli_help(ls_help);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	struct capsa_error *err = NULL;
	_cleanup_free_ char *text = capsa_network_list(cli_ctx(cli), &err);
	if (!text)
		return cli_fail(cli, err);
	if (as_json) {
		puts(text);
		return 0;
	}
	json_t *a = json_loads(text, 0, NULL);
	size_t i;
	json_t *v;
	if (!quiet)
		printf("%-24s %-18s %-15s %-14s %s\n", "NAME", "SUBNET", "GATEWAY", "BRIDGE", "RUNNING");
	json_array_foreach(a, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		if (quiet)
			puts(name);
		else
			printf("%-24s %-18s %-15s %-14s %lld\n", name, json_string_value(json_object_get(v, "subnet")),
			       json_string_value(json_object_get(v, "gateway")),
			       json_string_value(json_object_get(v, "bridge")),
			       (long long)json_integer_value(json_object_get(v, "running")));
	}
	json_decref(a);
	return 0;
}

static const char inspect_help[] =
	"Usage: capsa network inspect NAME...\n"
	"\n"
	"Show networks as JSON, with the sandboxes running on them.\n";

static CLI_CMD(network_inspect)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, inspect_help, &rc);
	if (first < 0)
		return rc;
	if (first >= argc)
		return cli_usage_error(cli, "expected NAME...");
	for (int i = first; i < argc; i++) {
		struct capsa_error *err = NULL;
		char *s = capsa_network_inspect(cli_ctx(cli), argv[i], &err);
		if (!s) {
			rc = cli_fail(cli, err);
			continue;
		}
		puts(s);
		free(s);
	}
	return rc;
}

static const char rm_help[] =
	"Usage: capsa network rm NAME...\n"
	"\n"
	"Remove networks that no running sandbox is on, with their bridges, rules\n"
	"and resolvers.  'bridge' is the host's and stays.\n";

static CLI_CMD(network_rm)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, rm_help, &rc);
	if (first < 0)
		return rc;
	if (first >= argc)
		return cli_usage_error(cli, "expected NAME...");
	for (int i = first; i < argc; i++) {
		struct capsa_error *err = NULL;
		if (capsa_network_remove(cli_ctx(cli), argv[i], &err) < 0)
			rc = cli_fail(cli, err);
		else
			puts(argv[i]);
	}
	return rc;
}

static const char connect_help[] =
	"Usage: capsa network connect|disconnect NETWORK SANDBOX\n"
	"\n"
	"Not available yet: a sandbox is on the one network it was created with\n"
	"(capsa run --network NAME).\n";

static CLI_CMD(network_connect)
{
	int rc = 0;
	if (cli_operands(cli, argc, argv, connect_help, &rc) < 0)
		return rc;
	return cli_usage_error(cli, "capsa network %s is not available yet: a sandbox is on the one network it was "
				    "created with (capsa run --network NAME)",
			       argv[0]);
}

static const struct cli_cmd network_cmds[] = {
	{ "create", cmd_network_create, "create a network" },
	{ "ls", cmd_network_ls, "list networks" },
	{ "inspect", cmd_network_inspect, "show networks as JSON" },
	{ "rm", cmd_network_rm, "remove networks" },
	{ "connect", cmd_network_connect, "(not available yet) put a running sandbox on a network" },
	{ "disconnect", cmd_network_connect, "(not available yet) take a sandbox off a network" },
	{ NULL, NULL, NULL },
};

CLI_CMD(network)
{
	return cli_dispatch(cli, network_cmds, "network", network_usage, argc - 1, argv + 1);
}
