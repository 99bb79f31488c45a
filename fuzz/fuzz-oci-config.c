/* fuzz-oci-config.c: the OCI runtime's config.json parser (and the exec
 * --process and update --resources parsers) on arbitrary bytes. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "oci/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct capsa_error *err = NULL;
	struct oci_config c;
	if (oci_config_parse(p, size, &c, &err) == 0)
		oci_config_release(&c);
	capsa_error_free(err);
	err = NULL;
	struct oci_process pr;
	void *j = NULL;
	if (oci_process_parse(p, size, &pr, &j, &err) == 0) {
		oci_process_release(&pr);
		json_decref(j);
	}
	capsa_error_free(err);
	err = NULL;
	struct linux_cgroup_limits l;
	if (oci_resources_parse(p, size, &l, &j, &err) == 0)
		json_decref(j);
	capsa_error_free(err);
	return 0;
}
