/* capsa/error.h: the error contract of libcapsa.
 *
 * A fallible call returns an int (< 0 on failure) or a pointer (NULL on
 * failure) and, on failure, fills *err with the errno-style code and a
 * message that names the input and the reason, lower case, no trailing
 * punctuation.  On success *err is left alone.  The caller owns the error
 * and releases it with capsa_error_free().
 */
#ifndef CAPSA_ERROR_H
#define CAPSA_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

struct capsa_error {
	int code;	/* errno value (positive), or 0 when no errno applies */
	char *msg;	/* "import busybox.tar: layer sha256:...: digest mismatch" */
};

void capsa_error_free(struct capsa_error *err);

#ifdef __cplusplus
}
#endif
#endif
