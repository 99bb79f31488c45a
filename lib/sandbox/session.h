/* session.h: the client end of process sessions over a supervisor
 * connection.  libc only (no database): shared by the library and the
 * musl-static `capsa` front door. */
#ifndef CAPSA_SANDBOX_SESSION_H
#define CAPSA_SANDBOX_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "capsa/sandbox.h"
#include "proto/conn.h"
#include "proto/msg.h"

/* Pumps an attached session until its end: exec (stream s, until EXIT) or
 * the main process (until FINAL).  Fills e. */
int session_pump(struct proto_conn *c, uint32_t stream, bool until_final, const struct capsa_stdio *io,
		 struct proto_exit *e, struct capsa_error **err);
void exit_from_proto(struct capsa_exit *out, const struct proto_exit *e);
/* Runs o in the sandbox whose supervisor c is connected to (name is for
 * messages); with stdio attached, until the process ends. */
int sandbox_exec_conn(struct proto_conn *c, const char *name, const struct capsa_exec_opts *o,
		      const struct capsa_stdio *stdio, struct capsa_exit *exit, struct capsa_error **err);

#endif
