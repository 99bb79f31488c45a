/* walk.c: the directory walker (walk.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "walk.h"

struct walk_level {
	int fd;
	char **names;
	size_t n, idx;
	size_t rel_len; /* length of w->rel for this level's entries' parent */
};

bool fs_is_pseudo(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case 0x9fa0:	  /* proc */
	case 0x62656572:  /* sysfs */
	case 0x1cd1:	  /* devpts */
	case 0x27e0eb:	  /* cgroup */
	case 0x63677270:  /* cgroup2 */
	case 0x64626720:  /* debugfs */
	case 0x74726163:  /* tracefs */
	case 0x73636673:  /* securityfs */
	case 0x19800202:  /* mqueue */
	case 0xcafe4a11:  /* bpf */
	case 0x6e736673:  /* nsfs */
		return true;
	}
	return false;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void level_release(struct walk_level *l)
{
	for (size_t i = l->idx; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	if (l->fd >= 0)
		close(l->fd);
	memset(l, 0, sizeof(*l));
	l->fd = -1;
}

/* Reads and sorts the names of fd (taken over). */
static int level_fill(struct walk_level *l, int fd, const char *what, struct capsa_error **err)
{
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	if (!d) {
		int e = errno;
		if (dup >= 0)
			close(dup);
		return error_sys(err, e, "read directory %s", what);
	}
	size_t cap = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (l->n >= WALK_MAX_DIR_ENTRIES) {
			closedir(d);
			return error_set(err, E2BIG, "directory %s has more than %u entries", what, WALK_MAX_DIR_ENTRIES);
		}
		if (l->n == cap) {
			cap = cap ? cap * 2 : 32;
			l->names = xrealloc(l->names, cap * sizeof(char *));
		}
		l->names[l->n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (l->n)
		qsort(l->names, l->n, sizeof(char *), cmp_names);
	return 0;
}

int walk_open(struct walker *w, int top_fd, size_t max_depth, bool skip_pseudo, struct capsa_error **err)
{
	memset(w, 0, sizeof(*w));
	w->max_depth = MIN(max_depth, (size_t)WALK_MAX_DEPTH);
	w->skip_pseudo = skip_pseudo;
	w->levels = xcalloc(w->max_depth + 1, sizeof(*w->levels));
	if (w->max_depth == 0) {
		close(top_fd);
		return 0;
	}
	if (level_fill(&w->levels[0], top_fd, ".", err) < 0) {
		walk_close(w);
		return -1;
	}
	w->depth = 1;
	return 0;
}

void walk_skip(struct walker *w)
{
	w->push = false;
}

/* Enters the directory returned last, if it is still one. */
static int enter(struct walker *w, struct capsa_error **err)
{
	struct walk_level *parent = &w->levels[w->depth - 1];
	int fd = openat(parent->fd, w->push_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	w->push = false;
	if (fd < 0 && w->strict && (errno == EACCES || errno == EPERM))
		return error_sys(err, errno, "open directory %s", buf_cstr(&w->rel));
	if (fd < 0)
		return 0; /* swapped for something else, removed, or unreadable: skip it */
	if (w->skip_pseudo && fs_is_pseudo(fd)) {
		close(fd);
		return 0;
	}
	struct walk_level *l = &w->levels[w->depth];
	if (level_fill(l, fd, buf_cstr(&w->rel), err) < 0) {
		level_release(l);
		return -1;
	}
	l->rel_len = w->rel.len;
	w->depth++;
	return 0;
}

int walk_next(struct walker *w, struct walk_entry *e, struct capsa_error **err)
{
	if (w->push && enter(w, err) < 0)
		return -1;
	while (w->depth > 0) {
		struct walk_level *l = &w->levels[w->depth - 1];
		if (l->idx >= l->n) {
			level_release(l);
			w->depth--;
			continue;
		}
		char *name = l->names[l->idx];
		l->names[l->idx++] = NULL;
		struct stat st;
		bool gone = fstatat(l->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0;
		if (gone || (w->hide && w->hide(w->hide_ud, l->fd, name, &st))) {
			free(name);
			continue; /* removed meanwhile, or not to be shown */
		}
		w->rel.len = l->rel_len;
		if (w->rel.len)
			buf_putc(&w->rel, '/');
		buf_append(&w->rel, name, strlen(name));
		e->name = name;
		e->rel = buf_cstr(&w->rel);
		e->dirfd = l->fd;
		e->st = st;
		e->depth = w->depth;
		free(w->push_name);
		w->push_name = name; /* kept alive for e->name */
		w->push = S_ISDIR(st.st_mode) && w->depth < w->max_depth;
		return 1;
	}
	return 0;
}

void walk_close(struct walker *w)
{
	for (size_t i = 0; i < w->depth; i++)
		level_release(&w->levels[i]);
	free(w->levels);
	free(w->push_name);
	buf_release(&w->rel);
	memset(w, 0, sizeof(*w));
}
