/* fs.h: file and directory helpers.  Paths that come from an image, a sandbox
 * or a client go through open_beneath()/open_in_root(), which resolve them
 * relative to a directory fd and never leave it.  libc only.
 */
#ifndef CAPSA_UTIL_FS_H
#define CAPSA_UTIL_FS_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "str.h"

/* Read/write loops that retry on EINTR and short transfers. */
ssize_t read_full(int fd, void *p, size_t n); /* < n only at EOF */
int write_all(int fd, const void *p, size_t n);
/* Reads to EOF into b, failing with EFBIG past cap bytes. */
int read_all(int fd, struct buf *b, size_t cap);
int read_file_at(int dirfd, const char *path, size_t cap, struct buf *out, struct capsa_error **err);
/* Writes via a temp file in the same directory, optionally fsynced, then
 * renames over name: readers see the old or the new content, never a mix. */
int write_file_atomic_at(int dirfd, const char *name, const void *p, size_t n, mode_t mode,
			 bool sync, struct capsa_error **err);
/* Writes a small string to an existing file (cgroup and /proc knobs). */
int write_str_at(int dirfd, const char *name, const char *s);

int mkdir_p(const char *path, mode_t mode);
/* opendir() of path below dirfd, not following a symlink at its last
 * component; NULL with errno set. */
DIR *opendir_at(int dirfd, const char *path);
/* Removes path (file or tree) under dirfd without following symlinks and
 * without crossing into other mounts.  Missing is success. */
int rm_rf_at(int dirfd, const char *path, struct capsa_error **err);

/* Resolution modes for open_beneath(). */
enum {
	/* Stay below dirfd; any symlink or ".." is refused (image unpacking). */
	RES_NO_SYMLINKS = 1,
	/* Treat dirfd as "/": absolute symlinks and ".." are clamped to it
	 * (file operations inside a sandbox root). */
	RES_IN_ROOT = 2,
};
/* openat() of path relative to dirfd under the given resolution mode; uses
 * openat2(2) and falls back to a component walk on kernels without it. */
int open_beneath(int dirfd, const char *path, int flags, mode_t mode, int res);
/* Test hook: force the component-walk fallback. */
void fs_force_openat2_fallback(bool on);

/* Splits "a/b/c" into an opened parent directory (resolved with res) and the
 * final component.  Refuses empty names, "." and "..". */
int open_parent_beneath(int dirfd, const char *path, int res, const char **base);

/* mkdir -p of path below dirfd, every component resolved with
 * open_beneath(res); existing directories are fine, anything else at a
 * component fails (ENOTDIR). */
int mkdir_p_beneath(int dirfd, const char *path, mode_t mode, int res);

/* renameat2(2) through syscall (musl lacks the wrapper); flags: 0 or
 * RENAME_NOREPLACE_FLAG. */
#define RENAME_NOREPLACE_FLAG 1u
int rename_at(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags);

/* Unix sockets, with paths longer than sun_path reached through
 * /proc/self/fd.  Both return an O_CLOEXEC fd or -1 with errno set. */
int unix_connect(const char *path, bool nonblock);
int unix_listen(const char *path, mode_t mode, int backlog);

int fd_set_nonblock(int fd, bool on);
int fd_set_cloexec(int fd, bool on);

#endif
