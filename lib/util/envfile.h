/* envfile.h: docker's --env-file format, for every front-end that reads
 * one.  libc only. */
#ifndef CAPSA_UTIL_ENVFILE_H
#define CAPSA_UTIL_ENVFILE_H

#include <stddef.h>

#include "error.h"

/* Parses the len bytes of an env file and appends its entries to *env:
 * one KEY=VALUE per line, taken as it stands after leading white space
 * (the value keeps its spaces and quotes; a CRLF line ending is one end);
 * blank lines and lines starting with '#' are skipped; a KEY alone takes
 * lookup(KEY) and is skipped when that is NULL.  Refuses, naming path and
 * the line: a NUL byte, invalid UTF-8, a KEY with white space in it
 * ("export A=1", "BAD LINE") and an empty KEY.  On error *env keeps what
 * was appended (the caller frees it). */
int envfile_parse(const char *path, const char *data, size_t len, char *(*lookup)(const char *name),
		  char ***env, struct capsa_error **err);

#endif
