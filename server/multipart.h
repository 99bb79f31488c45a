/* multipart.h: multipart/form-data bodies (RFC 7578), as the E2B SDK
 * uploads files: parts named "file" whose filename is the target path.
 *
 * The body is read from a file (the spooled request body) with pread, in
 * bounded windows, so a part may be as large as the upload limit without
 * being held in memory; only part headers are buffered (at most
 * MULTIPART_MAX_HEADERS bytes each).
 */
#ifndef CAPSA_SERVER_MULTIPART_H
#define CAPSA_SERVER_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#define MULTIPART_MAX_PARTS 1000
#define MULTIPART_MAX_HEADERS 16384

struct mpart {
	char *name;	/* form field name, or NULL */
	char *filename; /* decoded (WHATWG escapes %0A %0D %22), or NULL */
	int64_t off;	/* where the part's content starts in the body */
	int64_t len;
};

/* The boundary of a multipart Content-Type, malloc'd; NULL when the type
 * is not multipart or has no usable boundary (1-70 characters). */
char *multipart_boundary(const char *content_type);

/* Parses the len bytes of fd into parts.  -1 with a sentence in err for a
 * body that is not well-formed multipart. */
int multipart_parse(int fd, int64_t len, const char *boundary, struct mpart **out, size_t *n, char *err,
		    size_t errlen);
void multipart_free(struct mpart *v, size_t n);

#endif
