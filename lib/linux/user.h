/* user.h: resolving "user[:group]" inside a sandbox root the way docker
 * does, from the image's /etc/passwd and /etc/group (never the host's).
 * libc only. */
#ifndef CAPSA_LINUX_USER_H
#define CAPSA_LINUX_USER_H

#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

struct linux_user {
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary groups from /etc/group membership */
	size_t n_groups;
	char *home;    /* from passwd, "/" if none */
};

/* spec: "", "name", "uid", "name:group", "uid:gid", "name:gid" ...  Files are
 * opened relative to rootfd with open_beneath(RES_IN_ROOT) and read with a
 * size cap.  A numeric uid/gid absent from the files is accepted (gid then
 * defaults to 0 for a uid with no entry); a name that is not found is an
 * error naming it: "user 'bob' not found in /etc/passwd". */
int linux_user_resolve(int rootfd, const char *spec, struct linux_user *out, struct capsa_error **err);
void linux_user_release(struct linux_user *u);

/* Id -> name maps of a sandbox root's /etc/passwd and /etc/group (best
 * effort: unreadable files give empty maps), for listings. */
struct linux_idname {
	uint32_t id;
	char *name;
};
struct linux_idnames {
	struct linux_idname *users, *groups;
	size_t n_users, n_groups;
	bool loaded;
};
void linux_idnames_load(int rootfd, struct linux_idnames *m);
/* NULL when the id has no name. */
const char *linux_idnames_user(const struct linux_idnames *m, uint32_t uid);
const char *linux_idnames_group(const struct linux_idnames *m, uint32_t gid);
void linux_idnames_release(struct linux_idnames *m);

#endif
