/* cmd-inspect.c: `capsa inspect`: a sandbox as JSON. */
#include <stdlib.h>
#include <string.h>

#include "capsa/sandbox.h"
#include "cli.h"
#include "cmds.h"

static const char inspect_usage[] =
	"Usage: capsa inspect SANDBOX...\n"
	"\n"
	"Print each sandbox as a JSON object: id, name, image, state, exit code and\n"
	"termination reason, timestamps, labels, configuration and log path.\n";

CLI_CMD(inspect)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, inspect_usage, &rc);
	if (first < 0)
		return rc;
	if (first >= argc)
		return cli_usage_error(cli, "requires at least one SANDBOX");
	for (int i = first; i < argc; i++) {
		struct capsa_error *err = NULL;
		char *s = capsa_sandbox_inspect(cli_ctx(cli), argv[i], &err);
		if (!s) {
			rc = cli_fail(cli, err);
			continue;
		}
		printf("%s\n", s);
		free(s);
	}
	return rc;
}
