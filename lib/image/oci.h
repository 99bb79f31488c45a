/* oci.h: parsing the JSON documents of an image (index, manifest, config)
 * into plain structs.  Core part, pure functions: no store access, no I/O,
 * so that the fuzz targets can drive them directly.
 *
 * Every parser treats its input as hostile: size and nesting depth are
 * checked before jansson sees the text, counts are capped before anything
 * is allocated for them, and every field is type-checked.  Errors name the
 * document and the field ("manifest: layers[3].digest: invalid digest").
 */
#ifndef CAPSA_IMAGE_OCI_H
#define CAPSA_IMAGE_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* Upper bounds on what a document may declare. */
#define OCI_MAX_INDEX_ENTRIES 1024
#define OCI_MAX_STRINGS 65536 /* strings in one config (env, cmd, labels, ...) */

enum layer_compression { LAYER_PLAIN, LAYER_GZIP, LAYER_ZSTD, LAYER_UNKNOWN };

struct oci_descriptor {
	char *media_type;
	char *digest;
	int64_t size;
	/* index entries only */
	char *os, *arch, *variant;
	char *ref_name; /* annotation org.opencontainers.image.ref.name */
};

struct oci_manifest {
	char *media_type;	      /* as declared, or MT_OCI_MANIFEST when omitted */
	struct oci_descriptor config;
	struct oci_descriptor *layers;
	size_t n_layers;
};

struct oci_index {
	char *media_type;
	struct oci_descriptor *manifests;
	size_t n;
};

/* The parts of an image config the runtime and the CLI use. */
struct image_config {
	char **entrypoint; /* NULL when unset */
	char **cmd;
	char **env;	   /* "KEY=value" */
	char *working_dir;
	char *user;
	char *stop_signal;
	char **exposed_ports; /* "80/tcp" */
	char **labels;	      /* "key=value" */
	char *os, *architecture, *variant;
	char *created;	      /* RFC 3339, as written by the builder */
	char **diff_ids;      /* rootfs.diff_ids, bottom layer first */
	size_t n_diff_ids;
};

/* false when brackets nest deeper than max (strings are skipped properly):
 * refuses "[[[[..." before a recursive parser sees it. */
bool json_depth_ok(const char *p, size_t n, int max);
/* Parses text as one JSON object after checking its size and nesting
 * (duplicate keys refused); errors start with what.  Caller decrefs. */
struct json_t *json_load_object(const char *what, const char *text, size_t len, size_t max_len, int max_depth,
				struct capsa_error **err);

/* What a top-level document is: by mediaType, else by shape. */
enum oci_doc_kind { OCI_DOC_INDEX, OCI_DOC_MANIFEST, OCI_DOC_OTHER };
enum oci_doc_kind oci_doc_kind(const char *json, size_t len);

int oci_index_parse(const char *json, size_t len, struct oci_index *out, struct capsa_error **err);
void oci_index_release(struct oci_index *x);
/* Picks the entry for platform ("os/arch[/variant]", NULL: linux/amd64).
 * An index with one entry and no platform is taken as is.  Returns the
 * entry's index, or -1 with an error listing what the index offers. */
int oci_index_select(const struct oci_index *x, const char *platform, struct capsa_error **err);

int oci_manifest_parse(const char *json, size_t len, struct oci_manifest *out, struct capsa_error **err);
void oci_manifest_release(struct oci_manifest *m);

int image_config_parse(const char *json, size_t len, struct image_config *out, struct capsa_error **err);
void image_config_release(struct image_config *c);

/* Compression of a layer media type; LAYER_UNKNOWN for non-layer types. */
enum layer_compression layer_media_compression(const char *media_type);
/* Validates "os/arch[/variant]" and fills the parts (heap strings). */
int platform_parse(const char *s, char **os, char **arch, char **variant, struct capsa_error **err);

void oci_descriptor_release(struct oci_descriptor *d);

#endif
