/* tar.h: a small POSIX tar (ustar + pax) writer and extractor for file
 * copies between the host and a sandbox (`capsa cp`, the API's tar
 * upload/download).  libc only: the agent speaks it inside the sandbox.
 *
 * The writer produces a stream from a tree it walks through directory fds
 * (walk.h): regular files, directories and symlinks; devices, fifos and
 * sockets are skipped; names too long for ustar, large sizes and ids go in
 * pax extended headers.  A file that changes size while it is read is
 * padded or cut to the size in its header.  A file with holes (SEEK_DATA/
 * SEEK_HOLE) is written in GNU tar's PAX 1.0 sparse format (the
 * GNU.sparse.* records and a map of data regions before the data), so only
 * its data travels; GNU tar reads it (`tar -x`), and so does the extractor
 * here, which recreates the holes.  A file or directory that cannot be
 * read for lack of permission is an error naming it, never skipped.
 *
 * The extractor treats the stream as hostile.  Every entry is created
 * relative to a root directory fd with open_beneath() (so nothing can be
 * reached outside it, whatever symlinks the tree holds), names with a ".."
 * component are refused, as are names that go through a symlink the same
 * archive created, hard links to anything the archive did not create, and
 * device nodes.  Header checksums, numeric fields and the sizes of pax and
 * GNU long-name records are checked before use; buffered metadata is
 * capped.
 */
#ifndef CAPSA_UTIL_TAR_H
#define CAPSA_UTIL_TAR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "str.h"
#include "walk.h"

#define TAR_BLOCK 512
#define TAR_MAX_PAX (1u << 20)
#define TAR_MAX_ENTRIES (1u << 20)
/* data regions of one sparse file: the writer merges what is past
 * TAR_SPARSE_WRITE_MAX into one region (zeros and all), the extractor
 * refuses maps of more than TAR_SPARSE_MAX */
#define TAR_SPARSE_WRITE_MAX 4096u
#define TAR_SPARSE_MAX 65536u

struct tar_region {
	uint64_t off, len;
};

/* ---- writer ------------------------------------------------------------ */

struct tarw {
	struct walker w;
	bool walking;
	char *top;	  /* archive name of the top ("" allowed only internally) */
	int top_dirfd;	  /* with top_base: the top entry, not yet emitted */
	char *top_base;
	bool top_done;
	struct buf hdr;	  /* header bytes (and pax record) not yet returned */
	size_t hdr_off;
	int file_fd;	  /* content being copied */
	uint64_t left;	  /* content bytes still due */
	struct tar_region *map; /* where they are in the file: one region, or a sparse file's data */
	size_t n_map, ri; /* regions, the one being copied */
	uint64_t roff;	  /* offset in it */
	size_t pad;	  /* zero bytes after the content */
	bool ended;	  /* the end-of-archive blocks are queued */
	bool finished;
	uint64_t files, bytes;
	/* entries the walk leaves out (walk.h), set before the first read */
	bool (*hide)(void *ud, int dirfd, const char *name, const struct stat *st);
	void *hide_ud;
};

/* The top entry is base in dirfd (base NULL: dirfd itself, a directory);
 * it is archived as name, and a directory with everything below it.  dirfd
 * is duplicated. */
int tarw_init(struct tarw *t, int dirfd, const char *base, const char *name, struct capsa_error **err);
/* Fills buf with up to n bytes of the stream; 0 at its end, -1 with err. */
ssize_t tarw_read(struct tarw *t, void *buf, size_t n, struct capsa_error **err);
void tarw_release(struct tarw *t);

/* ---- extractor ------------------------------------------------------------ */

enum tarx_owner {
	TARX_OWNER_NONE = 0, /* leave what is created to the extracting user */
	TARX_OWNER_ARCHIVE,  /* the archive's numeric uid/gid */
	TARX_OWNER_FIXED,    /* uid/gid below */
};

struct tarx_opts {
	int root_fd;	     /* nothing outside it can be touched */
	const char *dir;     /* destination, relative to root_fd ("" or "/": the root) */
	int res;	     /* open_beneath mode: RES_IN_ROOT */
	enum tarx_owner owner;
	uid_t uid;
	gid_t gid;
	bool strip_setid;    /* drop setuid/setgid bits (extracting on the host) */
	uint64_t max_bytes;  /* file data written, at most (0: no bound): EFBIG past it */
};

struct tarx_set;

struct tarx {
	struct tarx_opts o;
	int state;
	uint8_t block[TAR_BLOCK];
	size_t have;	     /* bytes of block filled */
	uint64_t offset;     /* stream offset of the current block */
	/* the entry being read */
	struct buf meta;     /* pax or GNU long-name record being collected */
	int meta_kind;	     /* what the current payload is (untar.c) */
	char meta_type;	     /* 'x', 'g', 'L', 'K' */
	uint64_t meta_left;
	char *pax_path, *pax_link, *gnu_path, *gnu_link;
	bool pax_size_set, pax_uid_set, pax_gid_set, pax_mtime_set;
	uint64_t pax_size, pax_uid, pax_gid;
	int64_t pax_mtime;
	char *sparse_name;   /* GNU.sparse.name of a PAX 1.0 sparse entry */
	int sparse_major, sparse_minor; /* -1: not given */
	uint64_t sparse_real;
	bool sparse_real_set;
	/* the sparse file being written: its map (read from the data area
	 * first), the region being filled and the file's full size */
	bool sparse;
	struct tar_region *map;
	size_t n_map, ri;
	uint64_t roff, real_size;
	uint64_t map_lines;  /* lines of the map seen so far */
	int fd;		     /* regular file being written, under a temporary name */
	int fd_dir;	     /* the directory holding it */
	char *fd_tmp, *fd_base; /* its temporary and final names there */
	char *fd_name;	     /* its name, for messages */
	uint32_t fd_mode;    /* and what to set when it is complete */
	uint64_t fd_uid, fd_gid;
	int64_t fd_mtime;
	uint64_t data_left;
	size_t pad_left;
	struct tarx_set *symlinks, *files;
	struct { char *rel; int64_t mtime; } *dirs;
	size_t n_dirs;
	uint64_t entries;
	uint64_t written;    /* file data bytes written */
	bool ended;
};

void tarx_init(struct tarx *x, const struct tarx_opts *o);
/* Feeds stream bytes; -1 with err on the first bad entry or failing write
 * (what was extracted before stays; a regular file is written under a
 * temporary name in its directory and renamed into place once complete,
 * so a failed one leaves nothing behind, and tarx_release removes it). */
int tarx_feed(struct tarx *x, const void *data, size_t n, struct capsa_error **err);
/* The stream ended: refuses a truncated archive, sets directory mtimes. */
int tarx_finish(struct tarx *x, struct capsa_error **err);
void tarx_release(struct tarx *x);

#endif
