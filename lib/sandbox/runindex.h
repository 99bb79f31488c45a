/* runindex.h: running sandboxes by name, in the runtime directory.
 *
 * <run-root>/names/<name> is a symlink to the sandbox id, made when the
 * sandbox is created and removed when it is finalized.  It lets the exec
 * fast path find a running sandbox without opening the database; anything
 * it cannot resolve falls back to the database, which stays the truth.
 * libc only. */
#ifndef CAPSA_SANDBOX_RUNINDEX_H
#define CAPSA_SANDBOX_RUNINDEX_H

/* Full id (64 hex), name, or unique id prefix (>= 4 hex) of a sandbox that
 * has a runtime directory -> its id.  -1 (errno ENOENT, EINVAL ambiguous)
 * when the index cannot tell. */
int runindex_lookup(const char *run_root, const char *ref, char id[65]);
void runindex_add(int run_fd, const char *name, const char *id);
/* Removes the entry only if it still points at id. */
void runindex_remove(int run_fd, const char *name, const char *id);

#endif
