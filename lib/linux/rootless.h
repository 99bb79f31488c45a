/* rootless.h: capsa run by a user other than root (docs/rootless.md).
 *
 * A non-root user's capsa process first enters a user namespace of its own
 * (linux_rootless_enter): its uid is root there, and root's 1..N are the
 * user's subordinate ids from /etc/subuid and /etc/subgid, written by the
 * setuid newuidmap/newgidmap of Debian's uidmap package.  Everything the
 * store does (unpacking layers with their owners, removing sandbox uppers)
 * and every sandbox then happens inside that mapping.  libc only.
 */
#ifndef CAPSA_LINUX_ROOTLESS_H
#define CAPSA_LINUX_ROOTLESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* True when this process is not root on the host: its euid is not 0, or it
 * is in a user namespace other than the host's (as after
 * linux_rootless_enter).  Decided once per process. */
bool linux_rootless(void);
/* The host uid this process acts as: the euid outside a namespace, else the
 * host uid that root of the current namespace maps to. */
uid_t linux_rootless_host_uid(void);
/* How many ids (0..n-1) the current user namespace maps, uids and gids
 * alike (the smaller): a sandbox's nested namespace maps them 1:1. */
uint32_t linux_rootless_id_count(void);
/* Enters the user's namespace (and a private mount namespace) unless the
 * process is already root, on the host or in a user namespace.  Must be
 * called while single-threaded.  Errors name what is missing: the user's
 * subordinate ranges, newuidmap, or unprivileged user namespaces. */
int linux_rootless_enter(struct capsa_error **err);
/* The default store and runtime roots of a rootless user:
 * $XDG_DATA_HOME/capsa (else $HOME/.local/share/capsa), and
 * $XDG_RUNTIME_DIR/capsa if that directory exists (else
 * /tmp/capsa-run-<uid>). */
char *linux_rootless_store_root(void);
char *linux_rootless_run_root(void);

/* /etc/subuid and /etc/subgid: NAME:START:COUNT lines (NAME may be a
 * numeric uid).  Parsing names the file and line of a bad one. */
struct linux_subid_range {
	char *owner;
	uint64_t start, count;
	int line;
};
struct linux_subid_file {
	const char *path;
	struct linux_subid_range *r;
	size_t n;
};
int linux_subid_parse(struct linux_subid_file *f, const char *text, struct capsa_error **err);
void linux_subid_file_release(struct linux_subid_file *f);

#endif
