/* decomp.h: a layer blob as the uncompressed tar stream, hashed on the way
 * (the hash is the layer's diff_id).  xfer part: zlib, libzstd, libcrypto.
 *
 * The compression is sniffed from the magic bytes (gzip, zstd, else plain
 * tar), so a media type that lies about it cannot make us misparse; the
 * diff_id check catches any other disagreement.  A stream that ends early
 * (truncated gzip member, unfinished zstd frame) or carries bytes after its
 * end is an error, never a silently shorter layer.
 */
#ifndef CAPSA_IMAGE_DECOMP_H
#define CAPSA_IMAGE_DECOMP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "image/oci.h"
#include "util/error.h"

struct layer_reader;

/* Reads from fd (not owned). */
struct layer_reader *layer_reader_new(int fd);
void layer_reader_free(struct layer_reader *r);
/* Next chunk of uncompressed bytes: returns its length (0 at the end of a
 * complete stream) and points *p at it (valid until the next call), or -1
 * with err. */
ssize_t layer_reader_read(struct layer_reader *r, const void **p, struct capsa_error **err);
/* Reads (and hashes) whatever is left, then gives "sha256:<hex>" of the
 * whole uncompressed stream. */
int layer_reader_finish(struct layer_reader *r, char digest[72], struct capsa_error **err);
enum layer_compression layer_reader_compression(const struct layer_reader *r);
const char *layer_compression_name(enum layer_compression c);
/* Copies uncompressed bytes [off, off+n) if they are still in the last two
 * chunks handed out; returns how many were copied. */
size_t layer_reader_peek(const struct layer_reader *r, uint64_t off, void *dst, size_t n);
/* Bytes consumed from fd / produced so far. */
uint64_t layer_reader_in_bytes(const struct layer_reader *r);
uint64_t layer_reader_out_bytes(const struct layer_reader *r);

#endif
