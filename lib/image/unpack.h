/* unpack.h: one layer tar (plain, gzip or zstd) into an empty directory.
 * xfer part: libarchive is used only as the tar parser; every entry is
 * created by this code with *at() calls relative to the layer directory,
 * parents resolved with open_beneath(RES_NO_SYMLINKS), so nothing in the
 * archive can name, follow or create anything outside that directory.
 *
 * The result is in the form overlayfs reads: `.wh.NAME` becomes a 0/0
 * character device NAME, `.wh..wh..opq` the trusted.overlay.opaque=y xattr
 * on its directory.  Modes (setuid/setgid/sticky included), owners, mtimes
 * (directories after their contents), hard links (to entries of the same
 * layer), symlinks, FIFOs, device nodes (only with allow_devices) and the
 * user.*, security.capability and POSIX ACL xattrs are preserved; other
 * xattrs (trusted.*, security.selinux, ...) are dropped, because a layer
 * must not be able to set overlay or LSM metadata.
 *
 * Failure leaves the directory half-filled: the caller unpacks into a
 * temporary directory and removes it on error (layer.c).
 */
#ifndef CAPSA_IMAGE_UNPACK_H
#define CAPSA_IMAGE_UNPACK_H

#include <stdbool.h>
#include <stdint.h>

#include "image/oci.h"
#include "util/error.h"

#define UNPACK_MAX_ENTRIES 4000000ull
#define UNPACK_MAX_BYTES (256ull << 30)
#define UNPACK_MAX_XATTR 65536 /* bytes of one xattr value */
#define UNPACK_MAX_XATTRS 128  /* per entry */

struct unpack_opts {
	bool allow_devices;	 /* create block/char device nodes from the tar */
	uint64_t max_entries;	 /* 0: UNPACK_MAX_ENTRIES */
	uint64_t max_bytes;	 /* 0: UNPACK_MAX_BYTES (file content) */
};

struct unpack_result {
	char diff_id[72];	 /* sha256 of the uncompressed stream */
	uint64_t entries;
	uint64_t bytes;		 /* file content written */
	enum layer_compression compression;
};

/* Unpacks the layer read from blob_fd into dirfd (an empty directory opened
 * O_RDONLY|O_DIRECTORY).  Errors name the offending entry. */
int layer_unpack(int blob_fd, int dirfd, const struct unpack_opts *o, struct unpack_result *res,
		 struct capsa_error **err);

#endif
