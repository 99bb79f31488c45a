/* mountinfo.c: a reader for /proc/self/mountinfo.  The file is the
 * kernel's, but mount points are chosen by whoever mounted them (a sandbox
 * can mount inside its own namespace, not ours): fields are decoded, never
 * trusted to be well formed. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"
#include "util/fs.h"
#include "util/str.h"

#define MOUNTINFO_MAX (16u << 20)

/* Decodes the "\040"-style octal escapes of a mountinfo field. */
static char *unescape(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *o = out;
	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
}

int linux_mountinfo_read(struct linux_mnt **out, size_t *n, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	*out = NULL;
	*n = 0;
	if (read_file_at(AT_FDCWD, "/proc/self/mountinfo", MOUNTINFO_MAX, &b, err) < 0)
		return -1;
	size_t cap = 0;
	char *save = NULL;
	for (char *line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* id parent major:minor root point opts [optional...] - fstype source superopts */
		char *f[6];
		size_t nf = 0;
		char *p = line, *tok;
		while (nf < 6 && (tok = strsep(&p, " ")))
			f[nf++] = tok;
		if (nf < 6 || !p)
			continue;
		char *sep = strstr(p, "- ");
		if (sep != p && !(sep = strstr(p, " - ")))
			continue;
		if (sep != p)
			sep++;
		char *rest = sep + 2;
		char *fstype = strsep(&rest, " ");
		char *source = rest ? strsep(&rest, " ") : NULL;
		const char *super = rest ? rest : "";
		if (!fstype || !source)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		struct linux_mnt *m = &(*out)[(*n)++];
		m->root = unescape(f[3]);
		m->point = unescape(f[4]);
		m->fstype = unescape(fstype);
		m->source = unescape(source);
		m->super_opts = unescape(super);
	}
	buf_release(&b);
	return 0;
}

void linux_mountinfo_free(struct linux_mnt *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].root);
		free(m[i].point);
		free(m[i].fstype);
		free(m[i].source);
		free(m[i].super_opts);
	}
	free(m);
}
