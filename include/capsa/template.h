/* capsa/template.h: templates name an image and the resources a sandbox
 * made from it gets, so that API clients (the E2B SDK's templateID) can
 * ask for "base" instead of an image reference.
 *
 * Two templates exist without being created, "base" and
 * "code-interpreter-v1", both on CAPSA_TEMPLATE_DEFAULT_IMAGE (a Debian
 * image with bash and python3; the test suite builds it): they are listed
 * and usable once that image is in the store.  Creating a template of the
 * same name replaces the built-in one; removing it restores it.
 */
#ifndef CAPSA_TEMPLATE_H
#define CAPSA_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAPSA_TEMPLATE_DEFAULT_IMAGE "debian:test"
#define CAPSA_TEMPLATE_DEFAULT_MEMORY (512LL << 20)

struct capsa_template {
	char *name;
	char *image;	    /* reference as given */
	int64_t cpus_milli; /* 0: no cpu limit */
	int64_t memory;	    /* bytes, 0: no limit */
	int64_t disk;	    /* bytes reserved in the ledger, 0: none */
	int64_t created_at; /* ms since the epoch; 0 for a built-in one */
	bool builtin;
};

/* Creates or replaces template t->name; the image must be in the store. */
int capsa_template_create(struct capsa_ctx *ctx, const struct capsa_template *t, struct capsa_error **err);
/* ENOENT when there is no such template, or when it is built in and its
 * image is missing (the message says so). */
int capsa_template_get(struct capsa_ctx *ctx, const char *name, struct capsa_template *out, struct capsa_error **err);
/* Every template, by name; built-in ones only when their image exists. */
int capsa_template_list(struct capsa_ctx *ctx, struct capsa_template **out, size_t *n, struct capsa_error **err);
/* ENOENT when none was created under that name (built-in ones cannot be
 * removed, only replaced). */
int capsa_template_remove(struct capsa_ctx *ctx, const char *name, struct capsa_error **err);
void capsa_template_release(struct capsa_template *t);
void capsa_template_list_free(struct capsa_template *v, size_t n);

#ifdef __cplusplus
}
#endif
#endif
