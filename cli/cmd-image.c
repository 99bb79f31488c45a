/* cmd-image.c: `capsa image ...`: the image store front-end. */
#include "cli.h"
#include "cmds.h"

static const char image_usage[] =
	"Usage: capsa image COMMAND [ARGS...]\n"
	"\n"
	"Manage the images in the store.\n"
	"\n"
	"Commands:\n";

static const struct cli_cmd image_cmds[] = {
	{ NULL, NULL, NULL },
};

CLI_CMD(image)
{
	return cli_dispatch(cli, image_cmds, "image", image_usage, argc - 1, argv + 1);
}
