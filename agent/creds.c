/* creds.c: the credentials a file operation runs with.
 *
 * A file operation that names a user runs with that user's file-system
 * identity, so the kernel decides what it may do, exactly as for a process
 * the user execs: the uid and gid and supplementary groups resolved from
 * the image's /etc/passwd and /etc/group (linux_user_resolve, the exec
 * path's resolver), and the capabilities such a process would keep after
 * execve (root: the sandbox's set; anybody else: the ambient set, empty by
 * default).  With no user the agent's own credentials serve (root with the
 * sandbox's capabilities and the agent's few extra ones), as before.
 *
 * How: the agent is one thread serving every stream from one event loop,
 * so it switches its own credentials around each step of an operation
 * (acred_enter ... acred_leave): supplementary groups, fsgid, fsuid and the
 * effective capability set.  fsuid/fsgid are the ids the kernel checks for
 * file access and gives to created files, and leave the real and
 * effective ids (signals, rlimits, inotify accounting) alone.  A streamed
 * operation (a read, a write, a tar stream, a listing, a watch) switches
 * again for every event that touches the file system, never only at its
 * start.  Forking a child with the user's full credentials per operation
 * would cost a fork per call and a relay per stream; the switch is eight
 * syscalls (docs/security.md has the cost).
 *
 * Order: setgroups, setfsgid and setfsuid need CAP_SETGID/CAP_SETUID, so
 * they come before the effective set is lowered; leaving raises the
 * effective set first (within the permitted set, which is never touched)
 * and then switches back.  setfsuid away from 0 clears the file-system
 * capabilities from the effective set and back to 0 raises them again;
 * the explicit capset on both sides makes the result independent of that.
 * A failure to enter leaves the agent's own credentials (the operation is
 * refused); a failure to leave cannot be recovered from safely, so the
 * agent ends the sandbox.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "linux/user.h"

static struct {
	bool saved, switched;
	uint64_t eff, prm, inh;
	uid_t fsuid;
	gid_t fsgid;
	gid_t groups[64];
	int n_groups;
	const struct acred *cur;
} me;

static int caps_get(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &hdr, d) < 0)
		return -1;
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	*inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	return 0;
}

static int caps_set(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2] = {
		{ .effective = (uint32_t)eff, .permitted = (uint32_t)prm, .inheritable = (uint32_t)inh },
		{ .effective = (uint32_t)(eff >> 32), .permitted = (uint32_t)(prm >> 32),
		  .inheritable = (uint32_t)(inh >> 32) },
	};
	return (int)syscall(SYS_capset, &hdr, d);
}

/* The agent's own credentials, read once: nothing but this file changes
 * them, and it always puts them back. */
static int save_own(void)
{
	if (me.saved)
		return 0;
	if (caps_get(&me.eff, &me.prm, &me.inh) < 0)
		return -1;
	me.n_groups = getgroups((int)ARRAY_SIZE(me.groups), me.groups);
	if (me.n_groups < 0)
		return -1;
	me.fsuid = geteuid();
	me.fsgid = getegid();
	me.saved = true;
	return 0;
}

int acred_init(struct acred *c, const char *user, struct capsa_error **err)
{
	memset(c, 0, sizeof(*c));
	if (!user || !*user)
		return 0;
	struct linux_user u;
	if (linux_user_resolve(agent.root_fd, user, &u, err) < 0)
		return -1;
	if (save_own() < 0) {
		linux_user_release(&u);
		return error_sys(err, errno, "user %s: read the agent's credentials", user);
	}
	c->on = true;
	c->user = xstrdup(user);
	c->uid = u.uid;
	c->gid = u.gid;
	c->groups = steal_pointer(&u.groups);
	c->n_groups = u.n_groups;
	linux_user_release(&u);
	/* what an exec'd process of this user keeps after execve */
	const struct proto_proc *d = &agent.defaults;
	if (c->uid == 0)
		c->caps = d->has_caps ? d->cap_effective & d->cap_bounding : me.eff;
	else
		c->caps = d->has_caps ? d->cap_ambient : 0;
	c->caps &= me.prm;
	return 0;
}

void acred_release(struct acred *c)
{
	free(c->user);
	free(c->groups);
	memset(c, 0, sizeof(*c));
}

void acred_move(struct acred *to, struct acred *from)
{
	*to = *from;
	memset(from, 0, sizeof(*from));
}

int acred_enter(const struct acred *c)
{
	if (!c || !c->on || me.switched)
		return 0;
	me.switched = true;
	me.cur = c;
	int e = 0;
	if (setgroups(c->n_groups, c->groups) < 0)
		e = errno;
	if (!e) {
		setfsgid(c->gid);
		if ((gid_t)setfsgid(c->gid) != c->gid)
			e = EPERM;
	}
	if (!e) {
		setfsuid(c->uid);
		if ((uid_t)setfsuid(c->uid) != c->uid)
			e = EPERM;
	}
	if (!e && caps_set(c->caps, me.prm, me.inh) < 0)
		e = errno;
	if (e) {
		acred_leave();
		errno = e;
		return -1;
	}
	return 0;
}

void acred_leave(void)
{
	if (!me.switched)
		return;
	bool ok = caps_set(me.eff, me.prm, me.inh) == 0;
	setfsuid(me.fsuid);
	ok = ok && (uid_t)setfsuid(me.fsuid) == me.fsuid;
	setfsgid(me.fsgid);
	ok = ok && (gid_t)setfsgid(me.fsgid) == me.fsgid;
	ok = ok && setgroups((size_t)me.n_groups, me.groups) == 0;
	me.switched = false;
	me.cur = NULL;
	if (!ok) {
		/* serving anything more with half a user's credentials is not
		 * an option */
		fprintf(stderr, "capsa-agent: cannot restore its own credentials: %s\n", strerror(errno));
		agent_leave(NULL);
	}
}

const char *acred_user(void)
{
	return me.switched && me.cur ? me.cur->user : NULL;
}
