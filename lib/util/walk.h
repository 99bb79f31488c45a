/* walk.h: a resumable, depth-first walk of a directory tree through
 * directory fds, for listings and tar streams.  libc only.
 *
 * Every step is relative to an open directory: entries are stat'ed with
 * AT_SYMLINK_NOFOLLOW and directories entered with O_NOFOLLOW|O_DIRECTORY,
 * so a symlink is reported, never followed, and a directory swapped for a
 * symlink during the walk is skipped instead of entered.  Siblings come in
 * name order.  The caller pulls one entry at a time, so a producer that
 * waits for flow-control credit simply stops pulling.
 */
#ifndef CAPSA_UTIL_WALK_H
#define CAPSA_UTIL_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "error.h"
#include "str.h"

/* A directory with more entries than this is refused (E2BIG). */
#define WALK_MAX_DIR_ENTRIES (1u << 20)
#define WALK_MAX_DEPTH 1024

struct walk_level;

struct walker {
	struct walk_level *levels;
	size_t depth;	     /* levels in use */
	size_t max_depth;    /* deepest level entered; 0: none below the top */
	bool skip_pseudo;    /* do not enter proc, sysfs, devpts, cgroup ... */
	/* set after walk_open: */
	bool strict;	     /* a directory that cannot be entered for lack of
			      * permission is an error (EACCES), not skipped */
	/* entries left out entirely (not returned, not entered) */
	bool (*hide)(void *ud, int dirfd, const char *name, const struct stat *st);
	void *hide_ud;
	struct buf rel;	     /* path of the current entry relative to the top */
	bool push;	     /* the last entry is a directory to enter next */
	char *push_name;
};

struct walk_entry {
	const char *name;   /* last component */
	const char *rel;    /* relative to the top, "a/b" */
	int dirfd;	    /* the directory holding it */
	struct stat st;	    /* lstat */
	size_t depth;	    /* 1: an entry of the top */
};

/* top_fd: an open directory (O_RDONLY), taken over by the walker.  Entries
 * down to max_depth levels are returned (1: only the top's entries). */
int walk_open(struct walker *w, int top_fd, size_t max_depth, bool skip_pseudo, struct capsa_error **err);
/* 1: *e filled (valid until the next call), 0: done, -1: err. */
int walk_next(struct walker *w, struct walk_entry *e, struct capsa_error **err);
/* Do not enter the directory walk_next just returned. */
void walk_skip(struct walker *w);
void walk_close(struct walker *w);

/* true for file systems a copy must not descend into (proc, sysfs, ...). */
bool fs_is_pseudo(int fd);

#endif
