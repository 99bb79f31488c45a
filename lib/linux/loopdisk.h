/* loopdisk.h: a sandbox's bounded writable layer (`--disk SIZE`): a sparse
 * ext4 image on a loop device that holds the overlay's upper and work dirs. */
#ifndef CAPSA_LINUX_LOOPDISK_H
#define CAPSA_LINUX_LOOPDISK_H

#include <stdint.h>

#include "util/error.h"

/* ext4 without a journal needs a few MiB of metadata; below this a sandbox
 * could not even write its first files. */
#define LOOPDISK_MIN_SIZE (16LL << 20)

/* The image and the mount point, inside a sandbox's directory. */
#define LOOPDISK_IMAGE "disk.img"
#define LOOPDISK_MOUNT "disk"

/* The template cache under the store root (lib/sandbox/create.c passes
 * <root>/disk-templates). */
#define LOOPDISK_TEMPLATES "disk-templates"

/* Creates image (which must not exist) as a sparse file of size bytes
 * formatted ext4 (no journal, lazy inode tables; ~0.6 MiB of metadata per
 * GiB written).  With template_dir, the formatted image is made once per
 * size there and copied (extents only), which is ~10x faster than mkfs.
 * On failure the image is removed. */
int loopdisk_create(const char *image, int64_t size, const char *template_dir, struct capsa_error **err);
/* Removes every template (and any half-made one of a crashed create) from
 * template_dir, under the directory's exclusive flock: a create holds it
 * shared until its template is open.  Adds to *count and *bytes (the disk
 * space they held).  A missing directory is nothing to do. */
int loopdisk_prune_templates(const char *template_dir, size_t *count, int64_t *bytes, struct capsa_error **err);

/* Attaches image to a free loop device with autoclear and mounts it on
 * target (nosuid, nodev); then makes target/upper and target/work.  The loop
 * device detaches itself when the last mount of it goes away, so a mount
 * made in a private mount namespace leaks nothing when that namespace
 * dies. */
int loopdisk_mount(const char *image, const char *target, struct capsa_error **err);

/* Bytes used and total of the filesystem mounted at path (statfs). */
int loopdisk_usage(const char *path, uint64_t *used, uint64_t *total, struct capsa_error **err);

#endif
