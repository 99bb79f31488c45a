/* fuzz-oci-json.c: the index, manifest and image config parsers, the
 * document-kind sniffer and the depth pre-check, on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "image/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct capsa_error *err = NULL;
	(void)oci_doc_kind(p, size);
	(void)json_depth_ok(p, size, 64);
	struct oci_index x;
	if (oci_index_parse(p, size, &x, &err) == 0) {
		capsa_error_free(err);
		err = NULL;
		(void)oci_index_select(&x, NULL, &err);
		oci_index_release(&x);
	}
	capsa_error_free(err);
	err = NULL;
	struct oci_manifest m;
	if (oci_manifest_parse(p, size, &m, &err) == 0)
		oci_manifest_release(&m);
	capsa_error_free(err);
	err = NULL;
	struct image_config c;
	if (image_config_parse(p, size, &c, &err) == 0)
		image_config_release(&c);
	capsa_error_free(err);
	return 0;
}
