/* capsa/files.h: files inside a running sandbox.
 *
 * Every path is absolute inside the sandbox (a relative path is taken from
 * its "/") and is resolved by the sandbox's agent relative to the sandbox's
 * root: symlinks that point outside, ".." components and renames racing the
 * operation stay inside the sandbox (openat2 RESOLVE_IN_ROOT, or a checked
 * component walk on kernels without it).  An operation runs as root in the
 * sandbox unless a user is named (capsa_files_set_user, or a `user`
 * option below): it then runs with that user's uid, gids and capabilities,
 * resolved in the sandbox's /etc/passwd and /etc/group as for an exec, so
 * the kernel decides what it may read, write and create (EACCES, with a
 * message naming the path and the user), and what it creates is the
 * user's.  The sandbox agent's own /proc entries (/proc/1, /proc/self,
 * /proc/thread-self as the agent sees them) are refused (EACCES) to every
 * operation, whatever the user.
 *
 * A capsa_files handle is one connection to the sandbox; its calls block
 * until the operation is done and must not be used from two threads at once
 * (open one handle per thread).  A watch is a separate, pollable handle.
 * Errors carry the errno of the failing step (ENOENT, EISDIR, ENOTDIR,
 * ENOSPC, EEXIST, ENOTEMPTY, EFBIG, ...) and name the path.
 */
#ifndef CAPSA_FILES_H
#define CAPSA_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "capsa/capsa.h"

#ifdef __cplusplus
extern "C" {
#endif

struct capsa_files;

/* Connects to a running sandbox (ESRCH if it is not running, EBUSY if it
 * is paused). */
int capsa_files_open(struct capsa_ctx *ctx, const char *sandbox, struct capsa_files **out, struct capsa_error **err);
void capsa_files_close(struct capsa_files *f);
/* Every later operation on f runs as user (user[:group], as for exec;
 * NULL or "": root, the default).  A `user` option of one call wins. */
void capsa_files_set_user(struct capsa_files *f, const char *user);
/* At most max bytes (0: no bound, the default) written on this side by one
 * read_fd, tar_get or copy_out: EFBIG beyond.  A read of a larger file is
 * refused before anything is sent; copy_out counts file data only (holes of
 * a sparse file cost nothing). */
void capsa_files_set_max(struct capsa_files *f, int64_t max);

enum capsa_file_type {
	CAPSA_FILE_REGULAR = 0,
	CAPSA_FILE_DIR,
	CAPSA_FILE_SYMLINK,
	CAPSA_FILE_OTHER, /* device, fifo, socket */
};

struct capsa_file_info {
	char *name;	   /* last component ("/" for the root) */
	char *path;	   /* absolute path inside the sandbox */
	enum capsa_file_type type;
	int64_t size;
	uint32_t mode;	   /* st_mode: type and permission bits */
	uint32_t uid, gid;
	char *owner;	   /* from the sandbox's /etc/passwd; NULL if not found */
	char *group;	   /* from the sandbox's /etc/group; NULL if not found */
	int64_t mtime_ms;  /* ms since the epoch */
	char *link_target; /* symlinks: the target as stored */
};
void capsa_file_info_release(struct capsa_file_info *i);
void capsa_file_infos_free(struct capsa_file_info *v, size_t n);

/* Information about path itself (a final symlink is not followed). */
int capsa_files_stat(struct capsa_files *f, const char *path, struct capsa_file_info *out, struct capsa_error **err);
/* The same, following a final symlink (inside the sandbox). */
int capsa_files_stat_follow(struct capsa_files *f, const char *path, struct capsa_file_info *out,
			    struct capsa_error **err);

/* Entries below a directory (a final symlink to one is followed), depth
 * first, siblings sorted by name: depth 1 lists its entries, depth N also
 * what is up to N levels down (symlinks below are listed, never followed).  At most CAPSA_FILES_LIST_MAX entries (E2BIG beyond). */
#define CAPSA_FILES_LIST_MAX 100000
int capsa_files_list(struct capsa_files *f, const char *path, int depth, struct capsa_file_info **out, size_t *n,
		     struct capsa_error **err);

/* A whole regular file into memory (malloc'd, NUL-terminated for
 * convenience, len without the NUL); EFBIG when it is larger than max. */
int capsa_files_read(struct capsa_files *f, const char *path, size_t max, char **data, size_t *len,
		     struct capsa_error **err);
/* A regular file streamed to out_fd (blocking writes); *size receives the
 * bytes written when not NULL.  When out_fd is a regular file positioned at
 * its end (not O_APPEND), runs of zeros (a sparse file's holes) are
 * skipped with lseek and the size set at the end: the copy stays sparse. */
int capsa_files_read_fd(struct capsa_files *f, const char *path, int out_fd, int64_t *size, struct capsa_error **err);

enum capsa_write_mode {
	CAPSA_WRITE_REPLACE = 0, /* create or replace, atomically: the data goes to a
				  * temporary file in the same directory that is renamed
				  * over path once complete, so a failed write (no space,
				  * a broken stream) leaves the old file as it was */
	CAPSA_WRITE_CREATE,	 /* like REPLACE, but EEXIST if path exists */
	CAPSA_WRITE_APPEND,	 /* append to path (created if missing); not atomic: a
				  * failure may leave part of the data appended */
};

struct capsa_write_opts {
	enum capsa_write_mode how;
	int mode;	    /* permission bits; -1: the replaced file's, else 0644 */
	bool make_parents;  /* create missing parent directories (mode 0755) */
	const char *user;   /* write as this user (user[:group]), who then owns what
			     * is created; NULL: the handle's user, else root (the
			     * replaced file's owner is kept) */
};

/* Writes n bytes of data (a final symlink is followed, inside the sandbox;
 * EISDIR if path is a directory).  A user who may write the file but not
 * its directory (no temporary file there) gets it written in place. */
int capsa_files_write(struct capsa_files *f, const char *path, const void *data, size_t n,
		      const struct capsa_write_opts *opts, struct capsa_error **err);
/* The same, with the content read from in_fd until end of file. */
int capsa_files_write_fd(struct capsa_files *f, const char *path, int in_fd, const struct capsa_write_opts *opts,
			 struct capsa_error **err);

/* mkdir -p with parents; mode -1: 0755; user as in capsa_write_opts.
 * Returns 1 if it created path, 0 if a directory was already there
 * (ENOTDIR if something else is). */
int capsa_files_mkdir(struct capsa_files *f, const char *path, int mode, bool parents, const char *user,
		      struct capsa_error **err);
/* Removes a file, symlink or empty directory; with recursive, a whole tree
 * (never following symlinks or crossing into other mounts). */
int capsa_files_remove(struct capsa_files *f, const char *path, bool recursive, struct capsa_error **err);
/* Renames from to to (both inside the sandbox); no_replace: EEXIST if to
 * exists. */
int capsa_files_rename(struct capsa_files *f, const char *from, const char *to, bool no_replace,
		       struct capsa_error **err);

/* Tar streams (POSIX ustar with pax extended headers), as `capsa cp` and
 * the API's upload/download use them.
 *
 * tar_get writes path (a file, or a directory with everything below it) to
 * out_fd; archive names start with name (NULL: the last component of path),
 * so that extracting the stream recreates it under that name.  Symlinks are
 * archived as symlinks; devices, fifos and sockets are skipped.  A file
 * with holes is archived in GNU tar's PAX 1.0 sparse format (only its data;
 * GNU tar and capsa_files_tar_put recreate the holes).  An entry the user
 * may not read is an error naming it. */
int capsa_files_tar_get(struct capsa_files *f, const char *path, const char *name, int out_fd,
			struct capsa_error **err);

struct capsa_tar_put_opts {
	const char *user;   /* extract as this user, who then owns every entry;
			     * NULL: the handle's user, else root (entries are
			     * root's) */
	bool make_parents;  /* create dir (and its parents) if missing */
};
/* Extracts the tar stream read from in_fd under the directory dir.  Entries
 * with an absolute name are taken relative to dir; a name with a ".."
 * component, or one that goes through a symlink the same archive created, is
 * refused (EPERM, naming the entry) before anything of it is written.
 * Regular files, directories, symlinks and hard links (to entries of the
 * same archive) are created; modes and mtimes are set; devices are refused.
 * A regular file is written under a temporary name in its directory and
 * renamed into place once complete, so a failure (ENOSPC) leaves no
 * truncated file behind; entries extracted before it stay. */
int capsa_files_tar_put(struct capsa_files *f, const char *dir, int in_fd, const struct capsa_tar_put_opts *opts,
			struct capsa_error **err);

/* `capsa cp`, with docker cp's rules.  copy_in copies host_path (a file, a
 * symlink, or a directory with everything below it; "DIR/." copies DIR's
 * contents) to path in the sandbox: into it when it is a directory, else as
 * it (its parent must exist).  copy_out is the reverse; what comes out of
 * the sandbox is extracted on the host with the same confinement as
 * capsa_files_tar_put (relative to the destination directory), without
 * setuid/setgid bits and owned by the caller; sparse files keep their
 * holes on both sides.  Errors are one line: "cp SRC DST: reason"
 * (SANDBOX:PATH for the sandbox's side), e.g. "cp ./big sb:/data/big: no
 * space left on device in sandbox sb (--disk 16M)". */
int capsa_files_copy_in(struct capsa_files *f, const char *host_path, const char *path, struct capsa_error **err);
int capsa_files_copy_out(struct capsa_files *f, const char *path, const char *host_path, struct capsa_error **err);

/* Directory watches (inotify in the sandbox). */
enum capsa_watch_type {
	CAPSA_WATCH_CREATE = 0, /* created, or moved in (the new name of a rename) */
	CAPSA_WATCH_WRITE,	/* content modified */
	CAPSA_WATCH_REMOVE,	/* deleted */
	CAPSA_WATCH_RENAME,	/* moved away (the old name of a rename) */
	CAPSA_WATCH_CHMOD,	/* attributes changed */
	CAPSA_WATCH_OVERFLOW,	/* events were lost (the kernel's queue overflowed) */
};

struct capsa_watch_event {
	enum capsa_watch_type type;
	const char *path; /* absolute path inside the sandbox */
	bool is_dir;
	int64_t time_ms;
};

struct capsa_watch;

/* Watches the directory path (and, with recursive, every directory below
 * it, including ones created later: what a new directory already holds
 * when its watch is added is reported as created, so an entry made right
 * after its directory may be reported twice).  At most CAPSA_WATCH_MAX_DIRS
 * directories per sandbox are watched (ENOSPC beyond): inotify watches are a
 * host-wide resource.  With a user (NULL: root) every directory is watched
 * with that user's credentials: one it may not read is EACCES (below the
 * top, it is left unwatched). */
#define CAPSA_WATCH_MAX_DIRS 4096
int capsa_watch_open(struct capsa_ctx *ctx, const char *sandbox, const char *path, bool recursive,
		     const char *user, struct capsa_watch **out, struct capsa_error **err);
/* The watch's connection, to poll for POLLIN. */
int capsa_watch_fd(const struct capsa_watch *w);
/* Delivers the events that arrived, without blocking.  Returns 0 while
 * watching, 1 when the watch ended (the directory was removed, or the
 * sandbox ended), -1 with err on failure. */
int capsa_watch_process(struct capsa_watch *w, void (*cb)(void *ud, const struct capsa_watch_event *ev), void *ud,
			struct capsa_error **err);
void capsa_watch_free(struct capsa_watch *w);

#ifdef __cplusplus
}
#endif
#endif
