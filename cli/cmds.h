/* cmds.h: the command table.  HEAVY() marks commands that need libcurl,
 * libarchive or libmicrohttpd: the light `capsa` binary re-executes
 * capsa-full for them. */
#ifndef CAPSA_CMDS_H
#define CAPSA_CMDS_H

#include "cli.h"

#ifdef CAPSA_CLI_LIGHT
#define HEAVY(fn) NULL
#else
#define HEAVY(fn) fn
#endif

CLI_CMD(image);
CLI_CMD(image_import);
CLI_CMD(images);

#define CAPSA_COMMANDS \
	CMD("image", cmd_image, "manage images: import, pull, ls, inspect, tag, rm, prune") \
	CMD("images", cmd_images, "list images (same as 'image ls')")

#endif
