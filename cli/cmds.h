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
CLI_CMD(pull);
CLI_CMD(login);
CLI_CMD(logout);

#define CAPSA_COMMANDS \
	CMD("image", cmd_image, "manage images: import, pull, ls, inspect, tag, rm, prune") \
	CMD("images", cmd_images, "list images (same as 'image ls')") \
	CMD("pull", HEAVY(cmd_pull), "download an image from a registry") \
	CMD("login", HEAVY(cmd_login), "store credentials for a registry") \
	CMD("logout", HEAVY(cmd_logout), "forget the credentials for a registry")

#endif
