/* user.c: "user[:group]" -> uid, gid, supplementary groups and home, read
 * from the sandbox root's /etc/passwd and /etc/group with docker's rules.
 *
 * The files belong to the image and are hostile: they are opened through
 * open_beneath(RES_IN_ROOT) (a symlink to the host's /etc/shadow resolves to
 * the image's own), must be regular files (a FIFO or /dev/zero cannot block
 * or exhaust us) and are read with a size cap.  Malformed lines are skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "user.h"
#include "util/fs.h"
#include "util/str.h"

#define DB_MAX (4u << 20)
#define ID_MAX INT64_C(2147483647) /* runc's range: 0 .. 2^31-1 */

/* Reads root/<path> into b.  Missing is not an error: *found = false. */
static int read_db(int rootfd, const char *path, struct buf *b, bool *found, struct capsa_error **err)
{
	*found = false;
	_cleanup_close_ int fd = open_beneath(rootfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, RES_IN_ROOT);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return error_sys(err, errno, "open %s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return error_sys(err, errno, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return error_set(err, EINVAL, "%s: not a regular file", path);
	if (st.st_size > (off_t)DB_MAX)
		return error_set(err, EFBIG, "%s: larger than %u bytes", path, DB_MAX);
	if (read_all(fd, b, DB_MAX) < 0) {
		if (errno == EFBIG)
			return error_set(err, EFBIG, "%s: larger than %u bytes", path, DB_MAX);
		return error_sys(err, errno, "read %s", path);
	}
	buf_cstr(b);
	*found = true;
	return 0;
}

/* Splits line (modified in place) into at most max ':'-separated fields. */
static size_t split_fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	f[n++] = line;
	for (char *p = line; *p && n < max; p++) {
		if (*p == ':') {
			*p = '\0';
			f[n++] = p + 1;
		}
	}
	return n;
}

static bool parse_id(const char *s, int64_t *out)
{
	return s && *s && parse_int64(s, 0, ID_MAX, out) == 0;
}

/* Calls fn for each line of the database, with the fields split.  fn
 * returns true to stop. */
typedef bool (*line_fn)(char **f, size_t n, void *ctx);
static void each_line(struct buf *b, size_t want, line_fn fn, void *ctx)
{
	char *p = b->data;
	char *end = b->data + b->len;
	while (p && p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl)
			*nl = '\0';
		char *next = nl ? nl + 1 : end;
		char *f[8];
		if (*p && *p != '#' && *p != '+' && *p != '-') {
			size_t n = split_fields(p, f, MIN(want, ARRAY_SIZE(f)));
			if (fn(f, n, ctx))
				return;
		}
		p = next;
	}
}

struct pw_query {
	const char *name; /* by name, or */
	int64_t uid;	  /* by uid when name == NULL */
	bool found;
	int64_t out_uid, out_gid;
	char *pw_name, *home;
};

static bool pw_match(char **f, size_t n, void *ctx)
{
	struct pw_query *q = ctx;
	int64_t uid, gid;
	if (n < 4 || !parse_id(f[2], &uid) || !parse_id(f[3], &gid))
		return false;
	if (q->name ? strcmp(f[0], q->name) != 0 : uid != q->uid)
		return false;
	q->found = true;
	q->out_uid = uid;
	q->out_gid = gid;
	q->pw_name = xstrdup(f[0]);
	q->home = xstrdup(n >= 6 && *f[5] ? f[5] : "/");
	return true;
}

struct gr_query {
	const char *name;    /* group by name, or */
	int64_t gid;	     /* by gid (>= 0), or */
	const char *member;  /* collect the groups listing this user */
	bool found;
	int64_t out_gid;
	gid_t *groups;
	size_t n_groups;
};

static bool gr_match(char **f, size_t n, void *ctx)
{
	struct gr_query *q = ctx;
	int64_t gid;
	if (n < 3 || !parse_id(f[2], &gid))
		return false;
	if (q->member) {
		if (n < 4)
			return false;
		for (char *m = f[3]; m && *m;) {
			char *comma = strchr(m, ',');
			size_t len = comma ? (size_t)(comma - m) : strlen(m);
			if (len == strlen(q->member) && memcmp(m, q->member, len) == 0) {
				if (q->n_groups >= 65536)
					return true;
				q->groups = xrealloc(q->groups, (q->n_groups + 1) * sizeof(gid_t));
				q->groups[q->n_groups++] = (gid_t)gid;
				break;
			}
			m = comma ? comma + 1 : NULL;
		}
		return false;
	}
	if (q->name ? strcmp(f[0], q->name) != 0 : gid != q->gid)
		return false;
	q->found = true;
	q->out_gid = gid;
	return true;
}

int linux_user_resolve(int rootfd, const char *spec, struct linux_user *out, struct capsa_error **err)
{
	memset(out, 0, sizeof(*out));
	if (!spec)
		spec = "";
	const char *colon = strchr(spec, ':');
	_cleanup_free_ char *user_arg = colon ? xstrndup(spec, (size_t)(colon - spec)) : xstrdup(spec);
	const char *group_arg = colon ? colon + 1 : "";
	if (colon && !*group_arg)
		return error_set(err, EINVAL, "user '%s': empty group", spec);

	int64_t uid_num = -1, gid_num = -1;
	bool uid_numeric = *user_arg && parse_int64(user_arg, INT64_MIN, INT64_MAX, &uid_num) == 0;
	bool gid_numeric = *group_arg && parse_int64(group_arg, INT64_MIN, INT64_MAX, &gid_num) == 0;
	if (uid_numeric && (uid_num < 0 || uid_num > ID_MAX))
		return error_set(err, EINVAL, "user '%s': uid out of range", user_arg);
	if (gid_numeric && (gid_num < 0 || gid_num > ID_MAX))
		return error_set(err, EINVAL, "group '%s': gid out of range", group_arg);

	struct buf pw = BUF_INIT, gr = BUF_INIT;
	bool have_pw, have_gr;
	struct pw_query q = { .name = (*user_arg && !uid_numeric) ? user_arg : NULL,
			      .uid = *user_arg ? uid_num : 0 };
	struct gr_query g = { .gid = -1 };
	int rc = -1;
	if (read_db(rootfd, "/etc/passwd", &pw, &have_pw, err) < 0)
		goto out;
	if (have_pw)
		each_line(&pw, 7, pw_match, &q);

	/* Defaults: root, gid 0, home "/". */
	out->uid = 0;
	out->gid = 0;
	if (q.found) {
		out->uid = (uid_t)q.out_uid;
		out->gid = (gid_t)q.out_gid;
	} else if (q.name) {
		error_set(err, ENOENT, "user '%s' not found in /etc/passwd", user_arg);
		goto out;
	} else if (uid_numeric) {
		out->uid = (uid_t)uid_num; /* a uid with no entry keeps gid 0 */
	}
	out->home = q.home ? steal_pointer(&q.home) : xstrdup("/");

	if (*group_arg || q.pw_name) {
		if (read_db(rootfd, "/etc/group", &gr, &have_gr, err) < 0)
			goto out;
		if (*group_arg) {
			g.name = gid_numeric ? NULL : group_arg;
			g.gid = gid_numeric ? gid_num : -1;
			if (have_gr)
				each_line(&gr, 4, gr_match, &g);
			if (g.found)
				out->gid = (gid_t)g.out_gid;
			else if (gid_numeric)
				out->gid = (gid_t)gid_num;
			else {
				error_set(err, ENOENT, "group '%s' not found in /etc/group", group_arg);
				goto out;
			}
		} else if (have_gr) {
			/* docker: with no explicit group, the supplementary
			 * groups are those listing the user as a member. */
			g.member = q.pw_name;
			each_line(&gr, 4, gr_match, &g);
			out->groups = steal_pointer(&g.groups);
			out->n_groups = g.n_groups;
		}
	}
	rc = 0;
out:
	if (rc < 0)
		linux_user_release(out);
	free(q.pw_name);
	free(q.home);
	free(g.groups);
	buf_release(&pw);
	buf_release(&gr);
	return rc;
}

void linux_user_release(struct linux_user *u)
{
	free(u->groups);
	free(u->home);
	u->groups = NULL;
	u->home = NULL;
	u->n_groups = 0;
}

struct idmap_fill {
	struct linux_idname **v;
	size_t *n;
	size_t id_field;
};

static bool idmap_line(char **f, size_t n, void *ctx)
{
	struct idmap_fill *fl = ctx;
	int64_t id;
	if (n <= fl->id_field || !*f[0] || !parse_id(f[fl->id_field], &id) || *fl->n >= 65536)
		return false;
	*fl->v = xrealloc(*fl->v, (*fl->n + 1) * sizeof(**fl->v));
	(*fl->v)[*fl->n].id = (uint32_t)id;
	(*fl->v)[*fl->n].name = xstrdup(f[0]);
	(*fl->n)++;
	return false;
}

void linux_idnames_load(int rootfd, struct linux_idnames *m)
{
	memset(m, 0, sizeof(*m));
	m->loaded = true;
	struct buf b = BUF_INIT;
	bool found;
	if (read_db(rootfd, "/etc/passwd", &b, &found, NULL) == 0 && found) {
		struct idmap_fill fl = { &m->users, &m->n_users, 2 };
		each_line(&b, 4, idmap_line, &fl);
	}
	buf_release(&b);
	if (read_db(rootfd, "/etc/group", &b, &found, NULL) == 0 && found) {
		struct idmap_fill fl = { &m->groups, &m->n_groups, 2 };
		each_line(&b, 4, idmap_line, &fl);
	}
	buf_release(&b);
}

static const char *idmap_find(const struct linux_idname *v, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == id)
			return v[i].name;
	return NULL;
}

const char *linux_idnames_user(const struct linux_idnames *m, uint32_t uid)
{
	return idmap_find(m->users, m->n_users, uid);
}

const char *linux_idnames_group(const struct linux_idnames *m, uint32_t gid)
{
	return idmap_find(m->groups, m->n_groups, gid);
}

void linux_idnames_release(struct linux_idnames *m)
{
	for (size_t i = 0; i < m->n_users; i++)
		free(m->users[i].name);
	for (size_t i = 0; i < m->n_groups; i++)
		free(m->groups[i].name);
	free(m->users);
	free(m->groups);
	memset(m, 0, sizeof(*m));
}
