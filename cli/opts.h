/* opts.h: parsing of the option values run and exec share (env, env files,
 * volumes, tmpfs, ulimits, sizes), and the terminal/signal plumbing of
 * attached sessions. */
#ifndef CAPSA_CLI_OPTS_H
#define CAPSA_CLI_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <termios.h>

#include "capsa/sandbox.h"
#include "util/error.h"

/* -e KEY=VALUE, or -e KEY to copy KEY from our environment. */
int opt_env(char ***env, const char *arg, struct capsa_error **err);
/* --env-file: docker's format (util/envfile.h). */
int opt_env_file(char ***env, const char *path, struct capsa_error **err);
/* -v HOST:PATH[:ro|rw] */
int opt_volume(struct capsa_mount *m, const char *arg, struct capsa_error **err);
/* --tmpfs PATH[:size=N,mode=OCTAL,ro] */
int opt_tmpfs(struct capsa_mount *m, const char *arg, struct capsa_error **err);
/* --ulimit NAME=SOFT[:HARD] */
int opt_ulimit(struct capsa_rlimit *r, const char *arg, struct capsa_error **err);
/* --cpus 0.5 -> 500 */
int opt_cpus(const char *arg, int64_t *milli, struct capsa_error **err);

/* --sig-proxy[=true|false] (as docker's boolean flags: no value is true). */
int opt_sig_proxy(const char *arg, bool *no_sig_proxy, struct capsa_error **err);

/* Attached sessions: signals we forward arrive on a signalfd. */
int session_signals_open(void);
void session_signals_close(int fd);

/* Raw mode for -t on a terminal, restored by term_restore (also from the
 * exit path). */
struct term_state {
	int fd;
	bool raw;
	struct termios saved;
};
int term_raw(struct term_state *t, int fd);
void term_restore(struct term_state *t);
/* The terminal size of fd, left alone if fd is not a terminal. */
void term_size(int fd, uint16_t *rows, uint16_t *cols);

/* Prints "capsa: <message>" for a process that failed to start and returns
 * its exit code. */
int report_exit(const struct capsa_exit *e);

#endif
