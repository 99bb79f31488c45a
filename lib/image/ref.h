/* ref.h: image references, normalized the way docker does it.
 *
 *   busybox                  -> docker.io/library/busybox:latest
 *   user/app:1.2             -> docker.io/user/app:1.2
 *   localhost:5000/app       -> localhost:5000/app:latest
 *   quay.io/a/b@sha256:<hex> -> quay.io/a/b@sha256:<hex>
 *
 * Core part (no libarchive/libcurl): the CLI, the runtime and the registry
 * client share it.  The grammar is the distribution/reference one (lower-case path
 * components separated by '/', separators [._-], tag [A-Za-z0-9_][\w.-]{0,127},
 * digest sha256:<64 hex>, at most 255 characters of name).
 */
#ifndef CAPSA_IMAGE_REF_H
#define CAPSA_IMAGE_REF_H

#include <stdbool.h>

#include "util/error.h"

#define IMAGE_DEFAULT_DOMAIN "docker.io"
#define IMAGE_DEFAULT_TAG "latest"

struct image_ref {
	char *domain; /* "docker.io", "localhost:5000" */
	char *path;   /* "library/busybox" */
	char *tag;    /* "latest", or NULL when only a digest was given */
	char *digest; /* "sha256:<hex>" or NULL */
};

/* Parses and normalizes s (adds the default domain, "library/" for
 * docker.io single names, and "latest" when neither tag nor digest is
 * given).  On error nothing is allocated. */
int image_ref_parse(const char *s, struct image_ref *out, struct capsa_error **err);
void image_ref_release(struct image_ref *r);
/* "domain/path[:tag][@digest]" (heap). */
char *image_ref_string(const struct image_ref *r);
/* "domain/path" (heap): the repository, as the registry API names it. */
char *image_ref_repository(const struct image_ref *r);
/* Parse + string in one: *out receives the normalized reference. */
int image_ref_normalize(const char *s, char **out, struct capsa_error **err);

#endif
