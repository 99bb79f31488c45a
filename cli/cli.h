/* cli.h: what every cmd-<name>.c shares.  A command parses its arguments,
 * calls libcapsa and prints; it never re-implements library logic. */
#ifndef CAPSA_CLI_H
#define CAPSA_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "capsa/capsa.h"
#include "proto/conn.h"
#include "util/flags.h"

/* Every command parses its options with flags_getopt_long: long options
 * match their whole name only (libc's getopt_long read `--pid host` as
 * `--pids-limit host`), and the error names the option.  The names are
 * redirected here so that no command can fall back to libc's. */
#define getopt_long flags_getopt_long
#define getopt_long_only flags_getopt_long_only

/* docker's exit code contract */
#define EXIT_CAPSA 125	    /* capsa itself failed */
#define EXIT_NOT_EXEC 126   /* command cannot be invoked */
#define EXIT_NOT_FOUND 127  /* command not found */

struct cli {
	struct capsa_ctx_opts opts;
	struct capsa_ctx *ctx;
	const char *cmd; /* "image import", for messages */
	bool debug;
};

struct cli_cmd {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	const char *summary;
};

/* Prints "capsa: <message>" and frees err; returns EXIT_CAPSA. */
int cli_fail(struct cli *cli, struct capsa_error *err);
/* Prints "capsa <cmd>: <fmt>" and "See 'capsa <cmd> --help'." and returns
 * EXIT_CAPSA.  Called right after the option parser returned '?', it prints
 * the parser's message ("unknown option '--pid'") instead of fmt. */
int cli_usage_error(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Attached sessions with -i and -t need a terminal on stdin, as in docker:
 * 0, or the exit status of the usage error ("the input device is not a
 * TTY: <why>") printed. */
int need_input_tty(struct cli *cli, const char *why);
/* The context, opened on first use; on failure prints and exits 125. */
struct capsa_ctx *cli_ctx(struct cli *cli);
/* Runs a sub-command table ("capsa image ls"). */
int cli_dispatch(struct cli *cli, const struct cli_cmd *table, const char *group, const char *usage,
		 int argc, char **argv);
/* 1.5kB, 23.4MB, ... (decimal units, as docker prints sizes). */
void cli_human_size(int64_t n, char *out, size_t len);
/* Connects to the supervisor of a running sandbox, for exec; *name gets its
 * name.  In the musl front door, falls back to capsa-core (does not return)
 * when the runtime index cannot resolve the sandbox. */
int cli_exec_open(struct cli *cli, const char *sandbox, struct proto_conn *c, char **name, struct capsa_error **err);
/* For a command whose only option is -h/--help: the index of its first
 * operand, or -1 with *rc set (help printed, or a usage error). */
int cli_operands(struct cli *cli, int argc, char **argv, const char *usage, int *rc);
/* Prints text to stdout and returns 0: for --help. */
int cli_help(const char *text);
/* Re-executes the full front-end (capsa-full) with the same arguments: the
 * light binary does not load libcurl/libarchive/libmicrohttpd. */
int cli_exec_full(char **orig_argv);
extern char **cli_orig_argv;

#define CLI_CMD(n) int cmd_##n(struct cli *cli, int argc, char **argv)

#endif
