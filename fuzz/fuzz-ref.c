/* fuzz-ref.c: image reference parsing and normalization; a normalized
 * reference must parse again to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/ref.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xstrndup((const char *)data, size);
	char *a = NULL, *b = NULL;
	struct capsa_error *err = NULL;
	if (image_ref_normalize(s, &a, &err) == 0) {
		if (image_ref_normalize(a, &b, NULL) < 0 || strcmp(a, b) != 0)
			abort();
	}
	capsa_error_free(err);
	free(a);
	free(b);
	free(s);
	return 0;
}
