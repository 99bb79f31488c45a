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
	if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		return cli_help(inspect_usage);
	if (argc < 2)
		return cli_usage_error(cli, "requires at least one SANDBOX");
	int rc = 0;
	for (int i = 1; i < argc; i++) {
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
