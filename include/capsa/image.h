/* capsa/image.h: the image store of libcapsa: importing images, listing,
 * inspecting, tagging, removing, garbage collection and read-only rootfs
 * mounts.  See docs/image-store.md for the on-disk layout and guarantees.
 *
 * References are normalized the way docker does (busybox ->
 * docker.io/library/busybox:latest).  Where a call takes REF it accepts a
 * name[:tag], name@sha256:<hex>, a full image id (sha256:<hex>) or a unique
 * prefix of at least 4 hex digits of one.
 */
#ifndef CAPSA_IMAGE_H
#define CAPSA_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

struct capsa_image_import_opts {
	const char *name;     /* NAME[:TAG] for the image; NULL: names the archive carries */
	const char *platform; /* OS/ARCH[/VARIANT] to pick from an index; NULL: linux/amd64 */
	/* Image config for a plain rootfs tarball (refused for other formats) */
	char *const *cmd;	 /* NULL-terminated, or NULL */
	char *const *entrypoint; /* NULL-terminated, or NULL */
	char *const *env;	 /* "KEY=value", NULL-terminated, or NULL */
	const char *workdir;
	const char *user;
	bool allow_devices; /* accept device nodes in layers */
};

struct capsa_image_import_result {
	char *format; /* "oci-layout", "oci-archive", "docker-archive", "rootfs-tar" */
	char **ids;   /* image ids imported (sha256:<hex>), NULL-terminated */
	char **names; /* references set, NULL-terminated */
};

/* Imports an OCI image layout directory, an oci-archive or docker-archive
 * tarball, or a plain rootfs tarball (tar, tar.gz, tar.zst), detected from
 * the content. */
int capsa_image_import(struct capsa_ctx *ctx, const char *path, const struct capsa_image_import_opts *opts,
		       struct capsa_image_import_result *out, struct capsa_error **err);
void capsa_image_import_result_release(struct capsa_image_import_result *r);

struct capsa_image_info {
	char *id;	    /* sha256:<hex> of the config */
	char *manifest_digest;
	char **names;	    /* references, NULL-terminated (may be empty) */
	char *platform;	    /* linux/amd64 */
	char *created;	    /* from the config (RFC 3339), or NULL */
	int64_t imported_at; /* ms since the epoch */
	int64_t size;	    /* manifest + config + layer blobs, as stored */
	int64_t unpacked_size; /* file content of the unpacked layers */
	size_t n_layers;
	size_t n_sandboxes;  /* sandboxes created from it */
};

/* Every image, newest import first. */
int capsa_image_list(struct capsa_ctx *ctx, struct capsa_image_info **out, size_t *n, struct capsa_error **err);
void capsa_image_list_free(struct capsa_image_info *v, size_t n);

/* JSON document: id, digest, names, platform, size, config (the image
 * config as stored), layers (diff_id, blob digest, media type, sizes). */
char *capsa_image_inspect(struct capsa_ctx *ctx, const char *ref, struct capsa_error **err);

/* Points dst (a name[:tag]) at the image src resolves to. */
int capsa_image_tag(struct capsa_ctx *ctx, const char *src, const char *dst, struct capsa_error **err);

struct capsa_image_rm_result {
	char **untagged; /* references removed */
	char **deleted;	 /* image ids removed */
};

/* Removes a reference, or an image.  Naming a reference removes that name,
 * and the image with it when it was the last name.  Naming an image by id
 * removes it with all its names, but (without force) not when it has more
 * than one name.  An image that a sandbox (any state) was created from is
 * refused unless force: then its names and record go, while the layers the
 * sandboxes use stay on disk until the last of them is removed.  Runs a
 * garbage collection afterwards unless another process holds the store. */
int capsa_image_rm(struct capsa_ctx *ctx, const char *ref, bool force, struct capsa_image_rm_result *out,
		   struct capsa_error **err);
void capsa_image_rm_result_release(struct capsa_image_rm_result *r);

struct capsa_gc_stats {
	size_t images, blobs, layers; /* removed */
	int64_t bytes;		      /* freed (blob bytes + unpacked file bytes + caches) */
	/* caches removed by prune: layer copies of the user namespace
	 * fallback that no sandbox uses, --disk templates */
	size_t layer_copies, disk_templates;
};

/* Removes images without a name that no sandbox or mount uses (all unused
 * images with all), then collects garbage, then empties the caches: the
 * user namespace fallback's layer copies no sandbox uses
 * (<root>/layers-shifted) and the --disk templates (<root>/disk-templates).
 * deleted: ids removed. */
int capsa_image_prune(struct capsa_ctx *ctx, bool all, char ***deleted, struct capsa_gc_stats *st,
		      struct capsa_error **err);

/* Garbage collection: removes blobs, layer directories and temporary files
 * that no image, sandbox or mount references.  Waits for imports and pulls
 * in progress when wait, else fails with EBUSY. */
int capsa_image_gc(struct capsa_ctx *ctx, bool wait, struct capsa_gc_stats *st, struct capsa_error **err);

/* Mounts the rootfs of image ref on target: an overlay of its layers, with
 * upper and work (absolute paths, same filesystem) for a writable rootfs,
 * or read-only when both are NULL.  The mount is recorded so that the
 * image's layers are not collected while it exists. */
int capsa_image_mount_rootfs(struct capsa_ctx *ctx, const char *ref, const char *upper, const char *work,
			     const char *target, struct capsa_error **err);
/* Unmounts target (lazily if busy).  The mount record goes with it: a
 * record whose target is no longer a mount point is stale and ignored. */
int capsa_image_umount_rootfs(const char *target, struct capsa_error **err);

#ifdef __cplusplus
}
#endif
#endif
