/* mountinfo.h: parsing /proc/self/mountinfo (internal to lib/linux).  libc
 * only. */
#ifndef CAPSA_LINUX_MOUNTINFO_H
#define CAPSA_LINUX_MOUNTINFO_H

#include <stddef.h>

#include "util/error.h"

struct linux_mnt {
	char *root;	  /* root of the mount within its filesystem */
	char *point;	  /* mount point (octal escapes decoded) */
	char *fstype;
	char *source;
	char *super_opts; /* per-superblock options: "rw,memory" */
};

/* Reads the mount table of the calling process (capped at 16 MiB). */
int linux_mountinfo_read(struct linux_mnt **out, size_t *n, struct capsa_error **err);
void linux_mountinfo_free(struct linux_mnt *m, size_t n);

#endif
