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
	if (*flags_error())
		fputs(flags_error(), stderr);
	else
		vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nSee 'capsa %s --help'.\n", cli->cmd ? cli->cmd : "");
	va_end(ap);
	return EXIT_CAPSA;
}

int cli_operands(struct cli *cli, int argc, char **argv, const char *usage, int *rc)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	int c = getopt_long(argc, argv, "h", opts, NULL);
	if (c == -1)
		return optind;
	*rc = c == 'h' ? cli_help(usage) : cli_usage_error(cli, "unknown option");
	return -1;
}

int cli_help(const char *text)
{
	fputs(text, stdout);
	return 0;
}

/* opts.c is linked alone into the fuzz targets: this one needs the
 * command-line context, so it lives here */
int need_input_tty(struct cli *cli, const char *why)
{
	if (isatty(0))
		return 0;
	return cli_usage_error(cli, "the input device is not a TTY: %s", why);
}
