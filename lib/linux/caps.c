/* caps.c: capability names, the kernel's highest capability, and docker's
 * --cap-add/--cap-drop arithmetic.  Pure data and string work: nothing here
 * changes the process's capabilities (proc.c does). */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>

#include "caps.h"
#include "util/str.h"

/* Index = capability number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE. */
static const char *const cap_names[] = {
	"CHOWN",	   "DAC_OVERRIDE",    "DAC_READ_SEARCH", "FOWNER",	"FSETID",	 "KILL",
	"SETGID",	   "SETUID",	      "SETPCAP",	 "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
	"NET_ADMIN",	   "NET_RAW",	      "IPC_LOCK",	 "IPC_OWNER",	"SYS_MODULE",	 "SYS_RAWIO",
	"SYS_CHROOT",	   "SYS_PTRACE",      "SYS_PACCT",	 "SYS_ADMIN",	"SYS_BOOT",	 "SYS_NICE",
	"SYS_RESOURCE",	   "SYS_TIME",	      "SYS_TTY_CONFIG",	 "MKNOD",	"LEASE",	 "AUDIT_WRITE",
	"AUDIT_CONTROL",   "SETFCAP",	      "MAC_OVERRIDE",	 "MAC_ADMIN",	"SYSLOG",	 "WAKE_ALARM",
	"BLOCK_SUSPEND",   "AUDIT_READ",      "PERFMON",	 "BPF",		"CHECKPOINT_RESTORE",
};
/* The same names with the prefix, so linux_cap_name() can return constants. */
static const char *const cap_full_names[] = {
	"CAP_CHOWN",	      "CAP_DAC_OVERRIDE",   "CAP_DAC_READ_SEARCH", "CAP_FOWNER",	 "CAP_FSETID",
	"CAP_KILL",	      "CAP_SETGID",	    "CAP_SETUID",	   "CAP_SETPCAP",	 "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",	   "CAP_NET_RAW",	 "CAP_IPC_LOCK",
	"CAP_IPC_OWNER",      "CAP_SYS_MODULE",	    "CAP_SYS_RAWIO",	   "CAP_SYS_CHROOT",	 "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",      "CAP_SYS_ADMIN",	    "CAP_SYS_BOOT",	   "CAP_SYS_NICE",	 "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",	      "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",	   "CAP_LEASE",		 "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",  "CAP_SETFCAP",	    "CAP_MAC_OVERRIDE",	   "CAP_MAC_ADMIN",	 "CAP_SYSLOG",
	"CAP_WAKE_ALARM",     "CAP_BLOCK_SUSPEND",  "CAP_AUDIT_READ",	   "CAP_PERFMON",	 "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};
_Static_assert(ARRAY_SIZE(cap_names) == 41, "capabilities up to CAP_CHECKPOINT_RESTORE");
_Static_assert(ARRAY_SIZE(cap_full_names) == ARRAY_SIZE(cap_names), "name tables agree");

int linux_cap_from_name(const char *name)
{
	if (!name)
		return -1;
	if (strncasecmp(name, "CAP_", 4) == 0)
		name += 4;
	for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
		if (strcasecmp(name, cap_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *linux_cap_name(int cap)
{
	if (cap < 0 || (size_t)cap >= ARRAY_SIZE(cap_full_names))
		return NULL;
	return cap_full_names[cap];
}

/* Probes the bounding set with PR_CAPBSET_READ (EINVAL past the last
 * capability): works before /proc is mounted and costs one or two syscalls
 * on a kernel that knows exactly the capabilities we do. */
int linux_cap_last(void)
{
	static int cached = -1;
	if (cached >= 0)
		return cached;
	int c = (int)ARRAY_SIZE(cap_names) - 1;
	if (prctl(PR_CAPBSET_READ, (unsigned long)c, 0, 0, 0) >= 0) {
		while (c < 63 && prctl(PR_CAPBSET_READ, (unsigned long)(c + 1), 0, 0, 0) >= 0)
			c++;
	} else {
		while (c > 0 && prctl(PR_CAPBSET_READ, (unsigned long)c, 0, 0, 0) < 0)
			c--;
	}
	cached = c;
	return c;
}

uint64_t linux_caps_all(void)
{
	int last = linux_cap_last();
	return last >= 63 ? UINT64_MAX : (UINT64_C(1) << (last + 1)) - 1;
}

/* Mask of the names in list; *all set when "ALL" is among them. */
static int caps_mask(char *const *list, uint64_t *mask, bool *all, struct capsa_error **err)
{
	*mask = 0;
	*all = false;
	for (size_t i = 0; list && list[i]; i++) {
		if (strcasecmp(list[i], "ALL") == 0) {
			*all = true;
			continue;
		}
		int c = linux_cap_from_name(list[i]);
		if (c < 0)
			return error_set(err, EINVAL, "unknown capability '%s'", list[i]);
		*mask |= UINT64_C(1) << c;
	}
	return 0;
}

/* docker's rules: "ALL" in add means every capability but the dropped ones;
 * "ALL" in drop means only the added ones; otherwise drop, then add. */
int linux_caps_adjust(uint64_t *mask, char *const *add, char *const *drop, struct capsa_error **err)
{
	uint64_t a, d;
	bool add_all, drop_all;
	if (caps_mask(add, &a, &add_all, err) < 0 || caps_mask(drop, &d, &drop_all, err) < 0)
		return -1;
	if (add_all)
		*mask = linux_caps_all() & ~d;
	else if (drop_all)
		*mask = a;
	else
		*mask = (*mask & ~d) | a;
	return 0;
}

char *linux_caps_to_string(uint64_t mask)
{
	struct buf b = BUF_INIT;
	buf_cstr(&b);
	for (int c = 0; c < 64; c++) {
		if (!(mask & (UINT64_C(1) << c)))
			continue;
		const char *n = linux_cap_name(c);
		if (b.len)
			buf_putc(&b, ',');
		if (n)
			buf_appendf(&b, "%s", n);
		else
			buf_appendf(&b, "%d", c);
	}
	return buf_steal(&b);
}
