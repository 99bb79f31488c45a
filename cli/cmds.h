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
CLI_CMD(run);
CLI_CMD(exec);
CLI_CMD(ps);
CLI_CMD(stats);
CLI_CMD(inspect);
CLI_CMD(logs);
CLI_CMD(stop);
CLI_CMD(kill);
CLI_CMD(rm);
CLI_CMD(wait);
CLI_CMD(pause);
CLI_CMD(unpause);
CLI_CMD(finalize);
CLI_CMD(oci);
CLI_CMD(image_import);
CLI_CMD(images);
CLI_CMD(pull);
CLI_CMD(login);
CLI_CMD(logout);
CLI_CMD(attach);
CLI_CMD(proc);
CLI_CMD(port);
CLI_CMD(touch);
CLI_CMD(update);
CLI_CMD(events);
CLI_CMD(cp);
CLI_CMD(files);
CLI_CMD(serve);
CLI_CMD(template);
CLI_CMD(network);

#define CAPSA_COMMANDS \
	CMD("run", cmd_run, "create a sandbox from an image and run a command in it") \
	CMD("exec", cmd_exec, "run a command in a running sandbox") \
	CMD("attach", cmd_attach, "attach to a sandbox's main process (or another)") \
	CMD("proc", cmd_proc, "list and signal a sandbox's processes") \
	CMD("cp", cmd_cp, "copy files between a sandbox and the host") \
	CMD("files", cmd_files, "read, write, list, watch files in a sandbox") \
	CMD("port", cmd_port, "list or add a sandbox's published ports") \
	CMD("touch", cmd_touch, "count as activity for a sandbox's idle timeout") \
	CMD("update", cmd_update, "change a running sandbox's timeouts") \
	CMD("events", cmd_events, "print sandbox events and follow new ones") \
	CMD("ps", cmd_ps, "list sandboxes") \
	CMD("inspect", cmd_inspect, "show a sandbox as JSON") \
	CMD("stats", cmd_stats, "show sandboxes' resource usage, refreshed every second") \
	CMD("logs", cmd_logs, "show the output of a sandbox's main process") \
	CMD("stop", cmd_stop, "stop sandboxes (TERM, grace period, KILL)") \
	CMD("kill", cmd_kill, "send a signal to sandboxes' main processes") \
	CMD("rm", cmd_rm, "remove sandboxes") \
	CMD("wait", cmd_wait, "wait for sandboxes to end and print their exit codes") \
	CMD("pause", cmd_pause, "freeze every process of sandboxes") \
	CMD("unpause", cmd_unpause, "thaw paused sandboxes") \
	CMD("image", cmd_image, "manage images: import, pull, ls, inspect, tag, rm, prune") \
	CMD("images", cmd_images, "list images (same as 'image ls')") \
	CMD("pull", HEAVY(cmd_pull), "download an image from a registry") \
	CMD("login", HEAVY(cmd_login), "store credentials for a registry") \
	CMD("logout", HEAVY(cmd_logout), "forget the credentials for a registry") \
	CMD("serve", HEAVY(cmd_serve), "serve the HTTP API (native and E2B-compatible)") \
	CMD("template", cmd_template, "manage templates: create, ls, rm") \
	CMD("network", cmd_network, "manage networks: create, ls, inspect, rm") \
	CMD("oci", cmd_oci, "the OCI runtime with runc's command line (also installed as capsa-runc)") \
	CMD("_finalize", cmd_finalize, "(internal) record the end of a sandbox")

#endif
