/* image.h: the image store as the runtime and the front-ends query it.
 * Core part (sqlite3 + jansson only): the light `capsa` binary and the
 * sandbox runtime link it without libarchive, libcurl or libcrypto.
 *
 * For the runtime, creating a sandbox from an image is:
 *   store_begin(db)                          -- BEGIN IMMEDIATE
 *   image_resolve(ctx, "busybox", &img)      -- id, config, layers
 *   INSERT INTO sandboxes(...)               -- the runtime's row
 *   image_record_sandbox_layers(ctx, id, img)-- pins the layers against gc
 *   store_commit(db)
 *   image_overlay_options(ctx, img, upper, work, &data, &dir)
 *   -> linux_rootfs.overlay_data = data, .overlay_dir = dir
 * Resolving and pinning in one write transaction is what makes it safe
 * against a concurrent `image rm` + gc: gc deletes in its own write
 * transaction, so it sees either no sandbox row (and the image is still
 * there for us) or the pinned layers.
 */
#ifndef CAPSA_IMAGE_IMAGE_H
#define CAPSA_IMAGE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa/image.h"
#include "image/oci.h"
#include "store/context.h"

struct image {
	char *id;		/* "sha256:<hex>" of the config */
	char *manifest_digest;
	char *name;		/* the reference that matched, or the first name, or NULL */
	char **names;		/* every reference to it, NULL-terminated */
	char *platform;		/* "linux/amd64" */
	struct image_config config;
	char **layers;		/* diff_ids, bottom layer first, NULL-terminated */
	size_t n_layers;
	int64_t size;
	int64_t created_at;	/* import time, ms */
};

/* ref: name[:tag], name@sha256:<hex>, sha256:<hex> (an image id or a
 * manifest digest), or a unique id prefix of >= 4 hex digits.  ENOENT when
 * nothing matches, EINVAL for an ambiguous prefix or a bad reference. */
int image_resolve(struct capsa_ctx *ctx, const char *ref, struct image **out, struct capsa_error **err);
void image_free(struct image *img);
/* The id alone (no config parsing), inside the caller's transaction; the
 * normalized name goes to *name_out when ref matched a name. */
char *image_resolve_id(struct store *db, const char *ref, char **name_out, struct capsa_error **err);

/* Overlay mount data for a sandbox rootfs: "lowerdir=<top>:...:<bottom>"
 * with layer paths relative to *dir_out (<root>/layers), plus
 * ",upperdir=<upper>,workdir=<work>" when upper is given (absolute paths
 * without ',' ':' or '\').  Fails with E2BIG when the string would not fit
 * in a page (very many layers): mount with image_overlay_mount() then. */
int image_overlay_options(struct capsa_ctx *ctx, const struct image *img, const char *upper, const char *work,
			  char **data_out, char **dir_out, struct capsa_error **err);

/* Mounts the overlay on target in the calling process's mount namespace:
 * mount(2) with the relative option string when it fits in a page, else
 * the new mount API (fsopen("overlay") + one "lowerdir+" per layer, Linux
 * 6.8 and later), else a clear error.  A single-layer read-only view is a
 * read-only bind mount (overlay needs two lower layers without an upper). */
int image_overlay_mount(struct capsa_ctx *ctx, const struct image *img, const char *upper, const char *work,
			const char *target, struct capsa_error **err);

/* Pins img's layers for sandbox_id (sandbox_layers rows) inside the
 * caller's transaction; the sandboxes row must exist (foreign key).  The
 * rows go with the sandbox row (ON DELETE CASCADE). */
int image_record_sandbox_layers(struct capsa_ctx *ctx, const char *sandbox_id, const struct image *img,
				struct capsa_error **err);

/* Drops image_mounts rows whose target is no longer a mount point. */
void image_mounts_reconcile(struct store *db);

/* Garbage collection with the store lock already held exclusively. */
int image_gc_locked(struct capsa_ctx *ctx, struct capsa_gc_stats *st, struct capsa_error **err);

#endif
