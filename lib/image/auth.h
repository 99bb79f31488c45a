/* auth.h: registry authentication that needs no network: the parser of
 * WWW-Authenticate challenges (RFC 7235) and the credential file
 * <root>/auth.json written by `capsa login`.
 *
 * The header comes from a registry we do not trust: the parser has caps on
 * the header length, the number of challenges and parameters, and refuses
 * anything outside the grammar instead of guessing.
 */
#ifndef CAPSA_IMAGE_AUTH_H
#define CAPSA_IMAGE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "store/context.h"
#include "util/error.h"

#define AUTH_HEADER_MAX 8192	/* bytes of one WWW-Authenticate value */
#define AUTH_MAX_CHALLENGES 16
#define AUTH_MAX_PARAMS 32	/* per challenge */
#define AUTH_FILE_MAX (1 << 20) /* auth.json */

struct auth_param {
	char *name; /* lower case */
	char *value;
};

struct auth_challenge {
	char *scheme;  /* lower case: "bearer", "basic", ... */
	char *token68; /* the token68 form ("Negotiate abc=="), else NULL */
	struct auth_param *params;
	size_t n_params;
};

struct auth_challenges {
	struct auth_challenge *v;
	size_t n;
};

/* Parses one WWW-Authenticate field value of len bytes (no NUL needed) and
 * appends its challenges to out (a registry may send several header lines;
 * call once per line).  On failure out keeps what it had. */
int auth_parse_challenges(const char *s, size_t len, struct auth_challenges *out, struct capsa_error **err);
void auth_challenges_release(struct auth_challenges *c);
/* The first challenge with this scheme (case-insensitive), or NULL. */
const struct auth_challenge *auth_find_challenge(const struct auth_challenges *c, const char *scheme);
/* The value of a parameter (name case-insensitive), or NULL. */
const char *auth_challenge_param(const struct auth_challenge *c, const char *name);

/* The key credentials are stored under: the registry's host[:port] in lower
 * case, with a URL scheme and path removed and Docker Hub's aliases
 * (index.docker.io, registry-1.docker.io) folded into "docker.io".  NULL
 * with err when nothing usable is left. */
char *auth_registry_key(const char *registry, struct capsa_error **err);

struct auth_cred {
	char *user;
	char *password;
};
void auth_cred_release(struct auth_cred *c);

/* 1 and *out filled when credentials for registry are stored, 0 when none,
 * -1 on a damaged file. */
int auth_cred_load(struct capsa_ctx *ctx, const char *registry, struct auth_cred *out, struct capsa_error **err);
/* Adds or replaces the entry (file mode 0600, replaced atomically, under a
 * lock so that concurrent logins do not lose each other's entries). */
int auth_cred_store(struct capsa_ctx *ctx, const char *registry, const char *user, const char *password,
		    struct capsa_error **err);
/* 1 when an entry was removed, 0 when there was none. */
int auth_cred_remove(struct capsa_ctx *ctx, const char *registry, struct capsa_error **err);

#endif
