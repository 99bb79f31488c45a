/* capsa/pull.h: getting images from a registry (Docker Registry HTTP API v2)
 * and the credentials for it.  See docs/image-store.md, "Pulling". */
#ifndef CAPSA_PULL_H
#define CAPSA_PULL_H

#include <stdint.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

enum capsa_pull_event {
	CAPSA_PULL_RESOLVED,	   /* manifest chosen: digest, platform; count = blobs */
	CAPSA_PULL_BLOB_EXISTS,	   /* blob already in the store */
	CAPSA_PULL_BLOB_START,	   /* download starts (resumed > 0: from a partial) */
	CAPSA_PULL_BLOB_PROGRESS,  /* done bytes of total */
	CAPSA_PULL_BLOB_RETRY,	   /* connection lost, or resumed bytes failed verification:
				      starting again from done */
	CAPSA_PULL_BLOB_DONE,	   /* verified and stored */
	CAPSA_PULL_UNPACKING,	   /* all blobs present; layers being unpacked */
};

struct capsa_pull_progress {
	enum capsa_pull_event event;
	const char *digest;   /* the blob's (RESOLVED: the manifest's) */
	const char *kind;     /* "config" or "layer" */
	const char *platform; /* RESOLVED only */
	int index;	      /* blob number, 0 .. count-1 */
	int count;	      /* blobs of the image */
	int64_t done;	      /* bytes present, including resumed ones */
	int64_t total;	      /* the blob's size */
	int64_t resumed;      /* bytes reused from an interrupted pull */
};

struct capsa_pull_opts {
	const char *platform;		 /* "os/arch[/variant]"; NULL: linux/amd64 */
	const char *const *insecure;	 /* host[:port] list allowed over plain HTTP */
	int max_parallel;		 /* concurrent blob downloads; 0: 3 */
	void (*progress)(const struct capsa_pull_progress *p, void *arg);
	void *progress_arg;
	/* Set to non-zero (from a signal handler, say) to stop the pull;
	 * partial downloads are kept for the next pull to resume. */
	const volatile int *cancel;
};

struct capsa_pull_result {
	char *ref;	/* the reference recorded: "docker.io/library/busybox:latest" */
	char *digest;	/* what the reference resolved to (an index's digest for a multi-platform image) */
	char *manifest; /* the image manifest's digest */
	char *image_id; /* config digest */
	char *platform; /* "linux/amd64" */
};
void capsa_pull_result_release(struct capsa_pull_result *r);

/* Pulls ref (docker-style: "busybox", "host:5000/repo:tag", "repo@sha256:...")
 * into the store.  Errors name the reference, the registry and the reason. */
int capsa_image_pull(struct capsa_ctx *ctx, const char *ref, const struct capsa_pull_opts *opts,
		     struct capsa_pull_result *out, struct capsa_error **err);

/* Checks user/password against the registry (a /v2/ ping answering its
 * challenge) and stores them in <root>/auth.json (mode 0600). */
int capsa_registry_login(struct capsa_ctx *ctx, const char *registry, const char *user, const char *password,
			 const char *const *insecure, struct capsa_error **err);
/* Forgets the stored credentials; ENOENT when there were none. */
int capsa_registry_logout(struct capsa_ctx *ctx, const char *registry, struct capsa_error **err);

#ifdef __cplusplus
}
#endif
#endif
