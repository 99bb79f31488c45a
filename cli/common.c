/* common.c: what every capsa front-end binary shares: error and usage
 * printing (the glibc capsa-core/capsa-full and the musl front door). */
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

int cli_fail(struct cli *cli, struct capsa_error *err)
{
	(void)cli;
	fprintf(stderr, "capsa: %s\n", err && err->msg ? err->msg : "unknown error");
	capsa_error_free(err);
	return EXIT_CAPSA;
}

int cli_usage_error(struct cli *cli, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "capsa %s: ", cli->cmd ? cli->cmd : "");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nSee 'capsa %s --help'.\n", cli->cmd ? cli->cmd : "");
	va_end(ap);
	return EXIT_CAPSA;
}

int cli_help(const char *text)
{
	fputs(text, stdout);
	return 0;
}
