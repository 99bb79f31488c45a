/* capsa/tunnel.h: reaching TCP ports inside a sandbox from the host.
 *
 * A sandbox has its own network namespace with only loopback.  Its
 * supervisor publishes ports by listening on the host (loopback unless told
 * otherwise) and tunnelling each connection through the agent, which
 * connects to 127.0.0.1:PORT inside the sandbox.  Each connection has its own
 * flow-control window, so a connection whose reader is slow never stalls the
 * others; half-close (shutdown of one direction) is passed through.
 */
#ifndef CAPSA_TUNNEL_H
#define CAPSA_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A published port: connections to host_ip:host_port reach port in the
 * sandbox.  Also used in capsa_sandbox_opts (`capsa run -p`). */
struct capsa_port {
	const char *host_ip; /* IPv4 or IPv6 literal; NULL: 127.0.0.1 */
	uint16_t host_port;  /* 0: any free port (see capsa_port_list) */
	uint16_t port;	     /* 1-65535, in the sandbox */
};

/* Parses docker's -p syntax: [HOSTIP:]HOSTPORT:PORT[/tcp], [HOSTIP:]:PORT
 * (any free host port) or PORT (the same port on the host); an IPv6
 * HOSTIP is written in brackets.  host_ip points into a malloc'd copy
 * returned in *storage (free it when done with the port). */
int capsa_port_parse(const char *spec, struct capsa_port *out, char **storage, struct capsa_error **err);

struct capsa_port_info {
	char host_ip[64];
	uint16_t host_port; /* the port actually bound */
	uint16_t port;
	uint64_t connections; /* accepted so far */
	uint64_t rx_bytes;    /* host -> sandbox */
	uint64_t tx_bytes;    /* sandbox -> host */
};

/* The ports a running sandbox publishes (malloc'd array). */
int capsa_port_list(struct capsa_ctx *ctx, const char *sandbox, struct capsa_port_info **out, size_t *n,
		    struct capsa_error **err);
/* Publishes one more port on a running sandbox; *info (optional) receives
 * the port actually bound.  EADDRINUSE when the host port is taken. */
int capsa_port_publish(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_port *port,
		       struct capsa_port_info *info, struct capsa_error **err);

/* Opens one connection to 127.0.0.1:port inside the sandbox and returns a
 * host-side stream socket (O_CLOEXEC, blocking) that carries it: write to
 * it, read from it, shutdown(SHUT_WR) to half-close, close to end it; the
 * caller may splice(2) it.  ECONNREFUSED when nothing listens on port in
 * the sandbox.  The connection lives on its own in the supervisor: the
 * call does not keep anything open in the caller but the returned fd. */
int capsa_tunnel_open(struct capsa_ctx *ctx, const char *sandbox, uint16_t port, struct capsa_error **err);

#ifdef __cplusplus
}
#endif
#endif
