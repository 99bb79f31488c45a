/* layer.h: making sure layers are unpacked under <root>/layers/<hex>/
 * (xfer part).  A layer directory is named by the layer's diff_id (the
 * digest of its uncompressed tar): its content is a function of that digest
 * alone, so one directory serves every image that carries the same layer,
 * whatever compression the layer came with.
 *
 * Per layer: an exclusive flock on tmp/layer-<hex>.lock serializes
 * processes that want the same layer; under it, a layer whose directory
 * exists is done; otherwise it is unpacked into tmp/unpack-<hex>-<random>/,
 * its diff_id checked, the filesystem synced (syncfs, once per layer, not
 * per file), and the directory renamed into layers/.  The layers row goes
 * from `unpacking` to `ready` around that.  Several layers are unpacked
 * concurrently, one thread each, bounded by the CPU count.
 */
#ifndef CAPSA_IMAGE_LAYER_H
#define CAPSA_IMAGE_LAYER_H

#include "image/unpack.h"
#include "store/context.h"

struct layer_job {
	const char *blob_digest; /* the stored layer blob */
	const char *diff_id;	 /* expected (from the image config) */
	/* results */
	uint64_t entries, bytes;
	bool unpacked;		 /* false when it was already there */
	struct capsa_error *err;
};

/* Unpacks the layers not yet present.  On failure *err names the first
 * failing layer; no partial layer directory is left. */
int layers_ensure(struct capsa_ctx *ctx, struct layer_job *jobs, size_t n, const struct unpack_opts *o,
		  struct capsa_error **err);

#endif
