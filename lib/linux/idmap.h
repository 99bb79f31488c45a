/* idmap.h: a sandbox's user namespace and idmapped image layers (idmap.c
 * says in which order).  libc only. */
#ifndef CAPSA_LINUX_IDMAP_H
#define CAPSA_LINUX_IDMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

/* A new user namespace mapping 0..count-1 to uid.. and gid.. on the host;
 * returns an fd to it (the creating child is gone). */
int linux_userns_open(uint32_t uid, uint32_t gid, uint32_t count, struct capsa_error **err);
/* Rootless: a new user namespace nested in the caller's, mapping every id
 * of the caller's 1:1 (its extents copied one by one). */
int linux_userns_open_nested(struct capsa_error **err);
/* In the caller's own mount namespace: mounts an idmapped view of every
 * lowerdir named in overlay_data (relative to layer_dir) over itself; all
 * or none (an error with code ENOTSUP: the layers cannot be idmapped). */
int linux_idmap_layers(int userns_fd, const char *layer_dir, const char *overlay_data, struct capsa_error **err);
/* In the caller's own mount namespace: mounts an idmapped view of the
 * mount at path (with its submounts when recursive) over it. */
int linux_idmap_path(int userns_fd, const char *path, bool recursive, struct capsa_error **err);
/* setns into the namespace and become its root. */
int linux_userns_enter(int userns_fd, struct capsa_error **err);
/* The lowerdir list of overlay options ("a:b:c"), or NULL. */
char *linux_overlay_lowers(const char *overlay_data);
/* Under the store root: the fallback's copies, <uid>-<gid>/<layer hex>
 * (`capsa image prune` removes those no sandbox uses, lib/image/gc.c). */
#define LINUX_IDMAP_COPY_DIR "layers-shifted"
/* The fallback (idmap-copy.c): copies of the layers named in overlay_data
 * with owners shifted into the block, cached under
 * <store_root>/layers-shifted/<uid>-<gid>; *dir_out gets that directory,
 * to be used as the overlay's layer directory. */
int linux_idmap_copy_layers(const char *store_root, const char *layer_dir, const char *overlay_data, uint32_t uid,
			    uint32_t gid, uint32_t count, char **dir_out, struct capsa_error **err);
/* CAPSA_TEST_NO_IDMAP set: behave as a kernel without idmapped mounts. */
bool linux_idmap_forced_off(void);

#endif
