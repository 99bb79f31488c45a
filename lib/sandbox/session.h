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

/* How an attached session ended on the client's side. */
struct session_result {
	bool detached;	   /* the detach keys were typed (DETACH sent) */
	int client_signal; /* a signal to the client ended it (DETACH sent) */
	bool repeated;	   /* ... as a second INT or TERM */
};

enum pump_mode {
	PUMP_EXEC,   /* a process we started: until EXIT, output credit end to end */
	PUMP_MAIN,   /* the main process: until FINAL (the sandbox's end) */
	PUMP_ATTACH, /* a process we attached to: until EXIT */
};
/* Pumps an attached session until its end, or until the client leaves
 * (res).  Fills e when the session ended. */
int session_pump(struct proto_conn *c, uint32_t stream, enum pump_mode mode, const struct capsa_stdio *io,
		 struct proto_exit *e, struct session_result *res, struct capsa_error **err);
/* exit for a client that left: "detached", or "interrupted" (128+signal). */
void exit_for_client(struct capsa_exit *out, const struct session_result *res);
void exit_from_proto(struct capsa_exit *out, const struct proto_exit *e);

/* Runs o in the sandbox whose supervisor c is connected to (name is for
 * messages); with stdio attached, until the process ends. */
int sandbox_exec_conn(struct proto_conn *c, const char *name, const struct capsa_exec_opts *o,
		      const struct capsa_stdio *stdio, struct capsa_exit *exit, struct capsa_error **err);

#endif
