/* image.h: what the sandbox runtime needs from the image store (placeholder
 * declarations until the image store lands; replaced by the real header). */
#ifndef CAPSA_IMAGE_H
#define CAPSA_IMAGE_H

#include "image/oci.h"
#include "store/context.h"

struct image {
	char *id;
	struct image_config config;
};

int image_resolve(struct capsa_ctx *ctx, const char *ref, struct image *out, struct capsa_error **err);
void image_release(struct image *img);
int image_overlay_options(struct capsa_ctx *ctx, const struct image *img, const char *upper, const char *work,
			  char **data, char **dir, struct capsa_error **err);
int image_pin_sandbox(struct store *db, const char *sandbox_id, const struct image *img, struct capsa_error **err);

#endif
