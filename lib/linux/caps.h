/* caps.h: capability names and sets.  libc only. */
#ifndef CAPSA_LINUX_CAPS_H
#define CAPSA_LINUX_CAPS_H

#include <stdint.h>

#include "util/error.h"

/* docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
 * SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP */
#define LINUX_CAPS_DEFAULT UINT64_C(0xa80425fb)

/* "CAP_CHOWN", "chown", "CHOWN" -> 0; -1 if unknown. */
int linux_cap_from_name(const char *name);
/* 0 -> "CAP_CHOWN"; NULL if unknown. */
const char *linux_cap_name(int cap);
/* Highest capability the running kernel knows (/proc/sys/kernel/cap_last_cap). */
int linux_cap_last(void);
/* Every capability the kernel knows, as a mask. */
uint64_t linux_caps_all(void);
/* Applies docker-style --cap-add/--cap-drop lists (names or "ALL") to *mask.
 * Unknown names are an error naming the capability. */
int linux_caps_adjust(uint64_t *mask, char *const *add, char *const *drop, struct capsa_error **err);
/* "CAP_CHOWN,CAP_KILL" (caller frees). */
char *linux_caps_to_string(uint64_t mask);

#endif
