/* import.c: `capsa image import`: images from files (xfer part).
 *
 * Formats, told apart by content, not by file name:
 *   oci-layout      a directory with oci-layout and index.json
 *   oci-archive     a tar of such a directory
 *   docker-archive  a tar with manifest.json (docker save, podman save)
 *   rootfs-tar      any other tar (plain, gzip or zstd): one layer, with an
 *                   image config built from the options
 * An archive is read twice: once for its table of contents and its small
 * JSON documents (kept in memory up to a cap), once to stream the layer
 * blobs it needs into the store.  Everything from the file is verified as
 * if it came from a registry: JSON documents against their digests, blobs
 * by the blob writer, layers by their diff_ids when unpacked.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "capsa/image.h"
#include "image/decomp.h"
#include "image/image.h"
#include "image/ingest.h"
#include "image/oci.h"
#include "image/ref.h"
#include "image/unpack.h"
#include "util/fs.h"
#include "util/str.h"

#define ARC_MAX_ENTRIES 100000
#define ARC_MAX_MEMORY (64u << 20) /* small documents kept from pass 1 */
#define DOCKER_MAX_IMAGES 256
#define MAX_INDEX_NESTING 2

struct arc_entry {
	char *name;
	char type; /* 'f' file, 'l' symlink, 'h' hard link, 'o' other */
	int64_t size;
	char *link; /* normalized target for 'l'/'h' */
	char *data; /* content when kept from pass 1 */
	size_t len;
};

struct need {
	char *name;	    /* path in the source */
	const char *digest; /* expected, or NULL */
	int64_t size;	    /* expected, or -1 */
	char *got;	    /* stored digest */
	int64_t got_size;
	enum layer_compression comp; /* sniffed while storing */
};

struct plan_item {
	char *manifest;
	size_t len;
	char *digest;
	char **names;
	struct need *layers; /* docker/rootfs: manifest built after storing */
	size_t n_layers;
	char *config;	     /* docker/rootfs: config text */
	size_t config_len;
};

struct source {
	const char *path;
	bool is_dir;
	int fd; /* directory (O_PATH) or archive file */
	struct arc_entry *ents;
	size_t n_ents, alloc_ents;
	size_t mem;
	struct plan_item *items;
	size_t n_items;
	struct need *needs;
	size_t n_needs, alloc_needs;
	const struct capsa_image_import_opts *o;
};

/* Archive member names: no leading "./" or "/", no empty components. */
static char *norm_name(const char *s)
{
	struct buf b = BUF_INIT;
	const char *p = s;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n && !(n == 1 && p[0] == '.')) {
			if (b.len)
				buf_putc(&b, '/');
			buf_append(&b, p, n);
		}
		p += n;
	}
	return buf_steal(&b);
}

/* A symlink target relative to the member's directory, normalized;
 * ".." may not climb above the archive root. */
static char *resolve_link(const char *member, const char *target, bool hard)
{
	struct buf b = BUF_INIT;
	if (!hard && target[0] != '/') {
		const char *slash = strrchr(member, '/');
		if (slash)
			buf_append(&b, member, (size_t)(slash - member) + 1);
	}
	buf_appendf(&b, "%s", target);
	_cleanup_strv_ char **parts = strv_split(buf_cstr(&b), '/');
	buf_release(&b);
	char **out = xcalloc(strv_len(parts) + 1, sizeof(char *));
	size_t n = 0;
	for (size_t i = 0; parts[i]; i++) {
		if (!*parts[i] || str_eq(parts[i], "."))
			continue;
		if (str_eq(parts[i], "..")) {
			if (n == 0) {
				strv_free(out);
				return NULL;
			}
			free(out[--n]);
			out[n] = NULL;
			continue;
		}
		out[n++] = xstrdup(parts[i]);
	}
	for (size_t i = 0; i < n; i++)
		buf_appendf(&b, "%s%s", i ? "/" : "", out[i]);
	strv_free(out);
	return buf_steal(&b);
}

static struct arc_entry *find_entry(struct source *s, const char *name)
{
	for (size_t depth = 0; depth < 8; depth++) {
		struct arc_entry *hit = NULL;
		/* the last member of a name wins, as when extracting */
		for (size_t i = s->n_ents; i-- > 0;)
			if (str_eq(s->ents[i].name, name)) {
				hit = &s->ents[i];
				break;
			}
		if (!hit || hit->type == 'f')
			return hit;
		if ((hit->type != 'l' && hit->type != 'h') || !hit->link)
			return NULL;
		name = hit->link;
	}
	return NULL;
}

static bool keep_in_memory(const char *name, int64_t size)
{
	if (size < 0 || size > (int64_t)IMAGE_MAX_JSON)
		return false;
	return str_eq(name, "index.json") || str_eq(name, "oci-layout") || str_eq(name, "manifest.json") ||
	       str_has_suffix(name, ".json") || str_has_prefix(name, "blobs/");
}

static struct archive *arc_open(struct source *s, struct capsa_error **err)
{
	if (lseek(s->fd, 0, SEEK_SET) < 0) {
		error_sys(err, errno, "%s: seek", s->path);
		return NULL;
	}
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_xz(a);
	if (archive_read_open_fd(a, s->fd, 1 << 20) != ARCHIVE_OK) {
		error_set(err, EINVAL, "%s: not a tar archive: %s", s->path, archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* Pass 1: the table of contents, and the small documents. */
static int arc_scan(struct source *s, struct capsa_error **err)
{
	struct archive *a = arc_open(s, err);
	if (!a)
		return -1;
	int rc = -1;
	for (;;) {
		struct archive_entry *e;
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			error_set(err, EINVAL, "%s: %s", s->path, archive_error_string(a));
			goto out;
		}
		if (s->n_ents >= ARC_MAX_ENTRIES) {
			error_set(err, E2BIG, "%s: more than %d members", s->path, ARC_MAX_ENTRIES);
			goto out;
		}
		if (s->n_ents == s->alloc_ents) {
			s->alloc_ents = s->alloc_ents ? s->alloc_ents * 2 : 64;
			s->ents = xrealloc(s->ents, s->alloc_ents * sizeof(*s->ents));
		}
		struct arc_entry *x = &s->ents[s->n_ents++];
		memset(x, 0, sizeof(*x));
		x->name = norm_name(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
		x->size = archive_entry_size(e);
		const char *hl = archive_entry_hardlink(e);
		if (hl) {
			x->type = 'h';
			_cleanup_free_ char *n = norm_name(hl);
			x->link = xstrdup(n);
		} else if (archive_entry_filetype(e) == AE_IFLNK) {
			x->type = 'l';
			x->link = resolve_link(x->name, archive_entry_symlink(e) ? archive_entry_symlink(e) : "", false);
		} else if (archive_entry_filetype(e) == AE_IFREG) {
			x->type = 'f';
		} else {
			x->type = 'o';
		}
		if (x->type == 'f' && keep_in_memory(x->name, x->size) && s->mem + (size_t)x->size <= ARC_MAX_MEMORY) {
			x->data = xmalloc((size_t)x->size + 1);
			la_ssize_t got = archive_read_data(a, x->data, (size_t)x->size);
			if (got != x->size) {
				error_set(err, EINVAL, "%s: member %s: %s", s->path, x->name,
					  got < 0 ? archive_error_string(a) : "short read");
				goto out;
			}
			x->data[x->size] = '\0';
			x->len = (size_t)x->size;
			s->mem += x->len;
		}
	}
	rc = 0;
out:
	archive_read_free(a);
	return rc;
}

/* A small document by name, from the directory or from pass 1. */
static int src_read(struct source *s, const char *name, struct buf *out, struct capsa_error **err)
{
	if (s->is_dir) {
		_cleanup_close_ int fd = open_beneath(s->fd, name, O_RDONLY | O_NOCTTY, 0, RES_NO_SYMLINKS);
		if (fd < 0)
			return error_sys(err, errno, "%s: %s", s->path, name);
		if (read_all(fd, out, IMAGE_MAX_JSON) < 0)
			return error_sys(err, errno, "%s: read %s", s->path, name);
		buf_cstr(out);
		return 0;
	}
	struct arc_entry *x = find_entry(s, name);
	if (!x)
		return error_set(err, ENOENT, "%s: %s is not in the archive", s->path, name);
	if (!x->data)
		return error_set(err, EFBIG, "%s: %s is larger than %u bytes", s->path, name, IMAGE_MAX_JSON);
	buf_append(out, x->data, x->len);
	return 0;
}

static bool src_has(struct source *s, const char *name)
{
	if (s->is_dir) {
		struct stat sb;
		return fstatat(s->fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
	}
	return find_entry(s, name) != NULL;
}

/* A JSON document named by descriptor, verified against its digest. */
static int src_read_blob(struct source *s, const struct oci_descriptor *d, struct buf *out, struct capsa_error **err)
{
	if (d->size > (int64_t)IMAGE_MAX_JSON)
		return error_set(err, EFBIG, "%s: %s: %lld bytes, more than the %u allowed for a document", s->path,
				 d->digest, (long long)d->size, IMAGE_MAX_JSON);
	_cleanup_free_ char *name = xasprintf("blobs/sha256/%s", d->digest + 7);
	if (src_read(s, name, out, err) < 0)
		return -1;
	_cleanup_free_ char *got = sha256_digest(out->data, out->len);
	if (!str_eq(got, d->digest))
		return error_set(err, EPROTO, "%s: blob digest mismatch: expected %s, got %s", s->path, d->digest, got);
	if ((int64_t)out->len != d->size)
		return error_set(err, EPROTO, "%s: blob %s: %zu bytes, the descriptor says %lld", s->path, d->digest,
				 out->len, (long long)d->size);
	return 0;
}

static struct need *add_need(struct source *s, const char *name, const char *digest, int64_t size)
{
	for (size_t i = 0; i < s->n_needs; i++)
		if (str_eq(s->needs[i].name, name))
			return &s->needs[i];
	if (s->n_needs == s->alloc_needs) {
		s->alloc_needs = s->alloc_needs ? s->alloc_needs * 2 : 16;
		s->needs = xrealloc(s->needs, s->alloc_needs * sizeof(*s->needs));
	}
	struct need *n = &s->needs[s->n_needs++];
	memset(n, 0, sizeof(*n));
	n->name = xstrdup(name);
	n->digest = digest;
	n->size = size;
	return n;
}

static struct plan_item *add_item(struct source *s)
{
	s->items = xrealloc(s->items, (s->n_items + 1) * sizeof(*s->items));
	struct plan_item *it = &s->items[s->n_items++];
	memset(it, 0, sizeof(*it));
	return it;
}

/* ---- OCI layout (directory or archive) ---- */

static char **names_from_ref_annotation(const char *ref_name)
{
	/* a full reference ("docker.io/library/busybox:latest") names the
	 * image; a bare tag ("latest") does not say which repository */
	if (!ref_name || (!strchr(ref_name, '/') && !strchr(ref_name, ':')))
		return NULL;
	char *norm = NULL;
	if (image_ref_normalize(ref_name, &norm, NULL) < 0)
		return NULL;
	return strv_push_take(NULL, norm);
}

static int oci_add_manifest(struct source *s, const struct oci_descriptor *d, const char *ref_name, int depth,
			    struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	if (src_read_blob(s, d, &b, err) < 0) {
		buf_release(&b);
		return -1;
	}
	enum oci_doc_kind k = oci_doc_kind(b.data, b.len);
	if (k == OCI_DOC_INDEX) {
		if (depth >= MAX_INDEX_NESTING) {
			buf_release(&b);
			return error_set(err, ELOOP, "%s: indexes nested more than %d deep", s->path, MAX_INDEX_NESTING);
		}
		struct oci_index x;
		int rc = oci_index_parse(b.data, b.len, &x, err);
		buf_release(&b);
		if (rc < 0)
			return error_wrap(err, "%s: %s", s->path, d->digest);
		int i = oci_index_select(&x, s->o->platform, err);
		if (i >= 0)
			rc = oci_add_manifest(s, &x.manifests[i], ref_name, depth + 1, err);
		else
			rc = -1;
		oci_index_release(&x);
		return rc;
	}
	struct oci_manifest m;
	if (oci_manifest_parse(b.data, b.len, &m, err) < 0) {
		buf_release(&b);
		return error_wrap(err, "%s: %s", s->path, d->digest);
	}
	int rc = 0;
	struct buf cfg = BUF_INIT;
	if (src_read_blob(s, &m.config, &cfg, err) < 0) {
		rc = -1;
	} else {
		struct plan_item *it = add_item(s);
		it->manifest = b.data;
		it->len = b.len;
		it->digest = xstrdup(d->digest);
		it->names = names_from_ref_annotation(ref_name);
		it->config = buf_steal(&cfg);
		it->config_len = (size_t)m.config.size;
		b.data = NULL;
		it->layers = xcalloc(m.n_layers, sizeof(*it->layers));
		it->n_layers = m.n_layers;
		for (size_t i = 0; i < m.n_layers; i++) {
			/* the descriptor strings live in m: keep copies */
			_cleanup_free_ char *name = xasprintf("blobs/sha256/%s", m.layers[i].digest + 7);
			it->layers[i].name = xstrdup(name);
			it->layers[i].got = xstrdup(m.layers[i].digest);
			it->layers[i].size = m.layers[i].size;
			struct need *n = add_need(s, name, NULL, m.layers[i].size);
			if (!n->got)
				n->got = xstrdup(m.layers[i].digest);
		}
	}
	buf_release(&cfg);
	buf_release(&b);
	oci_manifest_release(&m);
	return rc;
}

static int oci_plan(struct source *s, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	if (src_read(s, "oci-layout", &b, err) < 0)
		return -1;
	json_t *lay = json_loadb(b.data, b.len, 0, NULL);
	const char *ver = json_string_value(json_object_get(lay, "imageLayoutVersion"));
	bool good = ver && str_has_prefix(ver, "1.");
	json_decref(lay);
	buf_release(&b);
	if (!good)
		return error_set(err, ENOTSUP, "%s: oci-layout: missing or unsupported imageLayoutVersion", s->path);
	if (src_read(s, "index.json", &b, err) < 0)
		return -1;
	struct oci_index x;
	int rc = oci_index_parse(b.data, b.len, &x, err);
	buf_release(&b);
	if (rc < 0)
		return error_wrap(err, "%s: index.json", s->path);
	if (x.n == 0) {
		oci_index_release(&x);
		return error_set(err, EINVAL, "%s: index.json lists no image", s->path);
	}
	bool platforms = false;
	for (size_t i = 0; i < x.n; i++)
		platforms = platforms || x.manifests[i].os || x.manifests[i].arch;
	if (platforms) {
		int i = oci_index_select(&x, s->o->platform, err);
		rc = i < 0 ? -1 : oci_add_manifest(s, &x.manifests[i], x.manifests[i].ref_name, 0, err);
	} else {
		for (size_t i = 0; i < x.n && rc == 0; i++)
			rc = oci_add_manifest(s, &x.manifests[i], x.manifests[i].ref_name, 0, err);
	}
	oci_index_release(&x);
	return rc;
}

/* ---- docker-archive ---- */

static int docker_plan(struct source *s, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	if (src_read(s, "manifest.json", &b, err) < 0)
		return -1;
	if (!json_depth_ok(b.data, b.len, IMAGE_MAX_JSON_DEPTH)) {
		buf_release(&b);
		return error_set(err, EINVAL, "%s: manifest.json: nested more than %d levels deep", s->path,
				 IMAGE_MAX_JSON_DEPTH);
	}
	json_error_t je;
	json_t *j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je);
	buf_release(&b);
	if (!json_is_array(j) || json_array_size(j) == 0) {
		json_decref(j);
		return error_set(err, EINVAL, "%s: manifest.json: not a non-empty JSON array", s->path);
	}
	if (json_array_size(j) > DOCKER_MAX_IMAGES) {
		json_decref(j);
		return error_set(err, E2BIG, "%s: manifest.json lists more than %d images", s->path, DOCKER_MAX_IMAGES);
	}
	int rc = 0;
	size_t i;
	json_t *img;
	json_array_foreach(j, i, img)
	{
		const char *config = json_string_value(json_object_get(img, "Config"));
		json_t *layers = json_object_get(img, "Layers");
		if (!config || !json_is_array(layers)) {
			rc = error_set(err, EINVAL, "%s: manifest.json[%zu]: Config or Layers missing", s->path, i);
			break;
		}
		size_t nl = json_array_size(layers);
		if (nl > IMAGE_MAX_LAYERS) {
			rc = error_set(err, E2BIG, "%s: manifest.json[%zu] names %zu layers, more than the %d allowed",
				       s->path, i, nl, IMAGE_MAX_LAYERS);
			break;
		}
		_cleanup_free_ char *cname = norm_name(config);
		struct buf cfg = BUF_INIT;
		if (src_read(s, cname, &cfg, err) < 0) {
			rc = -1;
			break;
		}
		struct plan_item *it = add_item(s);
		it->config_len = cfg.len;
		it->config = buf_steal(&cfg);
		it->layers = xcalloc(nl ? nl : 1, sizeof(*it->layers));
		it->n_layers = nl;
		for (size_t k = 0; k < nl; k++) {
			const char *ln = json_string_value(json_array_get(layers, k));
			if (!ln) {
				rc = error_set(err, EINVAL, "%s: manifest.json[%zu].Layers[%zu]: not a string", s->path, i, k);
				break;
			}
			it->layers[k].name = norm_name(ln);
			add_need(s, it->layers[k].name, NULL, -1);
		}
		json_t *tags = json_object_get(img, "RepoTags");
		size_t t;
		json_t *tag;
		json_array_foreach(tags, t, tag)
		{
			char *norm = NULL;
			if (json_is_string(tag) && image_ref_normalize(json_string_value(tag), &norm, NULL) == 0)
				it->names = strv_push_take(it->names, norm);
		}
		if (rc < 0)
			break;
	}
	json_decref(j);
	return rc;
}

/* ---- storing the needed blobs ---- */

static int copy_to_blob(struct capsa_ctx *ctx, struct archive *a, int fd, struct need *n, struct capsa_error **err)
{
	struct blob_writer *w;
	if (blob_writer_open(ctx, n->got, n->size, false, &w, err) < 0)
		return -1;
	enum { CHUNK = 1 << 20 };
	_cleanup_free_ char *p = xmalloc(CHUNK);
	bool first = true;
	int64_t total = 0;
	for (;;) {
		ssize_t r = a ? archive_read_data(a, p, CHUNK) : read(fd, p, CHUNK);
		if (r < 0) {
			if (!a && errno == EINTR)
				continue;
			if (a)
				error_set(err, EINVAL, "read %s: %s", n->name, archive_error_string(a));
			else
				error_sys(err, errno, "read %s", n->name);
			blob_writer_abort(w, false);
			return -1;
		}
		if (r == 0)
			break;
		if (first) {
			const unsigned char *u = (const unsigned char *)p;
			n->comp = r >= 2 && u[0] == 0x1f && u[1] == 0x8b				  ? LAYER_GZIP
				  : r >= 4 && u[0] == 0x28 && u[1] == 0xb5 && u[2] == 0x2f && u[3] == 0xfd ? LAYER_ZSTD
													    : LAYER_PLAIN;
			first = false;
		}
		if (blob_writer_write(w, p, (size_t)r, err) < 0) {
			blob_writer_abort(w, false);
			return error_wrap(err, "%s", n->name);
		}
		total += r;
	}
	char *digest = NULL;
	if (blob_writer_commit(w, NULL, &digest, err) < 0)
		return error_wrap(err, "%s", n->name);
	free(n->got);
	n->got = digest;
	n->got_size = total;
	return 0;
}

/* Sniffs the compression of a blob already in the store. */
static enum layer_compression sniff_blob(struct capsa_ctx *ctx, const char *digest)
{
	_cleanup_close_ int fd = blob_open(ctx, digest, NULL);
	unsigned char u[4] = { 0 };
	ssize_t r = fd < 0 ? -1 : read_full(fd, u, 4);
	if (r >= 2 && u[0] == 0x1f && u[1] == 0x8b)
		return LAYER_GZIP;
	if (r >= 4 && u[0] == 0x28 && u[1] == 0xb5 && u[2] == 0x2f && u[3] == 0xfd)
		return LAYER_ZSTD;
	return LAYER_PLAIN;
}

static int store_needs(struct capsa_ctx *ctx, struct source *s, struct capsa_error **err)
{
	/* known digests already in the store are not copied again */
	size_t pending = 0;
	for (size_t i = 0; i < s->n_needs; i++) {
		struct need *n = &s->needs[i];
		int64_t size;
		if (n->got && blob_exists(ctx, n->got, &size) && (n->size < 0 || size == n->size)) {
			n->got_size = size;
			n->comp = sniff_blob(ctx, n->got);
			n->size = -2; /* done */
		} else {
			pending++;
		}
	}
	if (!pending)
		return 0;
	if (s->is_dir) {
		for (size_t i = 0; i < s->n_needs; i++) {
			struct need *n = &s->needs[i];
			if (n->size == -2)
				continue;
			_cleanup_close_ int fd = open_beneath(s->fd, n->name, O_RDONLY | O_NOCTTY, 0, RES_NO_SYMLINKS);
			if (fd < 0)
				return error_sys(err, errno, "%s: %s", s->path, n->name);
			if (copy_to_blob(ctx, NULL, fd, n, err) < 0)
				return error_wrap(err, "%s", s->path);
			n->size = -2;
		}
		return 0;
	}
	/* archive: resolve links to the member that holds the bytes */
	_cleanup_free_ struct arc_entry **holder = xcalloc(s->n_needs, sizeof(*holder));
	for (size_t i = 0; i < s->n_needs; i++) {
		if (s->needs[i].size == -2)
			continue;
		holder[i] = find_entry(s, s->needs[i].name);
		if (!holder[i])
			return error_set(err, ENOENT, "%s: %s is not in the archive", s->path, s->needs[i].name);
	}
	struct archive *a = arc_open(s, err);
	if (!a)
		return -1;
	int rc = 0;
	for (size_t idx = 0; rc == 0; idx++) {
		struct archive_entry *e;
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			rc = error_set(err, EINVAL, "%s: %s", s->path, archive_error_string(a));
			break;
		}
		if (idx >= s->n_ents)
			break;
		struct arc_entry *x = &s->ents[idx];
		for (size_t i = 0; i < s->n_needs && rc == 0; i++) {
			if (holder[i] != x || s->needs[i].size == -2)
				continue;
			rc = copy_to_blob(ctx, a, -1, &s->needs[i], err);
			if (rc < 0)
				error_wrap(err, "%s", s->path);
			s->needs[i].size = -2;
			/* other needs with the same holder share the digest */
			for (size_t k = i + 1; k < s->n_needs && rc == 0; k++) {
				if (holder[k] == x && s->needs[k].size != -2) {
					free(s->needs[k].got);
					s->needs[k].got = xstrdup(s->needs[i].got);
					s->needs[k].got_size = s->needs[i].got_size;
					s->needs[k].comp = s->needs[i].comp;
					s->needs[k].size = -2;
				}
			}
			break;
		}
	}
	archive_read_free(a);
	for (size_t i = 0; i < s->n_needs && rc == 0; i++)
		if (s->needs[i].size != -2)
			rc = error_set(err, ENOENT, "%s: %s could not be read from the archive", s->path, s->needs[i].name);
	return rc;
}

static struct need *need_by_name(struct source *s, const char *name)
{
	for (size_t i = 0; i < s->n_needs; i++)
		if (str_eq(s->needs[i].name, name))
			return &s->needs[i];
	return NULL;
}

static const char *layer_type(enum layer_compression c)
{
	return c == LAYER_GZIP ? MT_OCI_LAYER_GZIP : c == LAYER_ZSTD ? MT_OCI_LAYER_ZSTD : MT_OCI_LAYER;
}

static int store_text_blob(struct capsa_ctx *ctx, const char *text, size_t len, const char *mt, char **digest_out,
			   struct capsa_error **err)
{
	struct blob_writer *w;
	if (blob_writer_open(ctx, NULL, (int64_t)len, false, &w, err) < 0)
		return -1;
	if (blob_writer_write(w, text, len, err) < 0) {
		blob_writer_abort(w, false);
		return -1;
	}
	return blob_writer_commit(w, mt, digest_out, err);
}

/* docker-archive and rootfs: the layers are stored, build the manifest. */
static int build_manifest(struct capsa_ctx *ctx, struct source *s, struct plan_item *it, struct capsa_error **err)
{
	_cleanup_free_ char *cdigest = NULL;
	if (store_text_blob(ctx, it->config, it->config_len, MT_OCI_CONFIG, &cdigest, err) < 0)
		return -1;
	json_t *layers = json_array();
	for (size_t i = 0; i < it->n_layers; i++) {
		struct need *n = need_by_name(s, it->layers[i].name);
		json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType", layer_type(n->comp), "digest",
							n->got, "size", (json_int_t)n->got_size));
	}
	json_t *m = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType", MT_OCI_MANIFEST,
			      "config", "mediaType", MT_OCI_CONFIG, "digest", cdigest, "size", (json_int_t)it->config_len,
			      "layers", layers);
	it->manifest = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(m);
	it->len = strlen(it->manifest);
	it->digest = sha256_digest(it->manifest, it->len);
	return 0;
}

/* ---- rootfs tarball ---- */

static const char *host_arch(void)
{
	struct utsname u;
	if (uname(&u) == 0) {
		if (str_eq(u.machine, "aarch64"))
			return "arm64";
		if (str_eq(u.machine, "x86_64"))
			return "amd64";
	}
	return "amd64";
}

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static int rootfs_plan(struct capsa_ctx *ctx, struct source *s, struct capsa_error **err)
{
	const struct capsa_image_import_opts *o = s->o;
	struct need *n = add_need(s, "", NULL, -1);
	if (lseek(s->fd, 0, SEEK_SET) < 0 || copy_to_blob(ctx, NULL, s->fd, n, err) < 0)
		return error_wrap(err, "%s", s->path);
	n->size = -2;
	/* the diff_id: the blob itself when plain, else its uncompressed digest */
	char diff_id[72];
	if (n->comp == LAYER_PLAIN) {
		snprintf(diff_id, sizeof(diff_id), "%s", n->got);
	} else {
		_cleanup_close_ int fd = blob_open(ctx, n->got, err);
		if (fd < 0)
			return -1;
		struct layer_reader *r = layer_reader_new(fd);
		int rc = layer_reader_finish(r, diff_id, err);
		layer_reader_free(r);
		if (rc < 0)
			return error_wrap(err, "%s", s->path);
	}
	_cleanup_free_ char *os = NULL, *arch = NULL, *variant = NULL;
	if (platform_parse(o->platform ? o->platform : "linux/amd64", &os, &arch, &variant, err) < 0)
		return -1;
	if (!o->platform) {
		free(arch);
		arch = xstrdup(host_arch());
	}
	json_t *cfg = json_object();
	bool has_path = false;
	for (size_t i = 0; o->env && o->env[i]; i++)
		has_path = has_path || str_has_prefix(o->env[i], "PATH=");
	json_t *env = strv_json(o->env);
	if (!has_path)
		json_array_insert_new(env, 0, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
	json_object_set_new(cfg, "Env", env);
	if (o->cmd)
		json_object_set_new(cfg, "Cmd", strv_json(o->cmd));
	if (o->entrypoint)
		json_object_set_new(cfg, "Entrypoint", strv_json(o->entrypoint));
	if (o->workdir)
		json_object_set_new(cfg, "WorkingDir", json_string(o->workdir));
	if (o->user)
		json_object_set_new(cfg, "User", json_string(o->user));
	json_t *doc = json_pack("{s:s, s:s, s:o, s:{s:s, s:[s]}, s:[{s:s}]}", "architecture", arch, "os", os, "config", cfg,
				"rootfs", "type", "layers", "diff_ids", diff_id, "history", "created_by",
				"capsa image import");
	if (variant)
		json_object_set_new(doc, "variant", json_string(variant));
	struct plan_item *it = add_item(s);
	it->config = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	it->config_len = strlen(it->config);
	json_decref(doc);
	it->layers = xcalloc(1, sizeof(*it->layers));
	it->layers[0].name = xstrdup("");
	it->n_layers = 1;
	return 0;
}

static void source_release(struct source *s)
{
	for (size_t i = 0; i < s->n_ents; i++) {
		free(s->ents[i].name);
		free(s->ents[i].link);
		free(s->ents[i].data);
	}
	free(s->ents);
	for (size_t i = 0; i < s->n_needs; i++) {
		free(s->needs[i].name);
		free(s->needs[i].got);
	}
	free(s->needs);
	for (size_t i = 0; i < s->n_items; i++) {
		struct plan_item *it = &s->items[i];
		free(it->manifest);
		free(it->digest);
		free(it->config);
		strv_free(it->names);
		for (size_t k = 0; k < it->n_layers; k++) {
			free(it->layers[k].name);
			free(it->layers[k].got);
		}
		free(it->layers);
	}
	free(s->items);
	if (s->fd >= 0)
		close(s->fd);
}

static bool config_opts_given(const struct capsa_image_import_opts *o)
{
	return o->cmd || o->entrypoint || o->env || o->workdir || o->user;
}

/* The platform the config names must be the one asked for. */
static int check_platform(const struct plan_item *it, const char *platform, struct capsa_error **err)
{
	if (!platform)
		return 0;
	struct image_config c;
	if (image_config_parse(it->config, it->config_len, &c, err) < 0)
		return -1;
	_cleanup_free_ char *os = NULL, *arch = NULL, *variant = NULL;
	int rc = platform_parse(platform, &os, &arch, &variant, err);
	if (rc == 0 && (!str_eq(c.os, os) || !str_eq(c.architecture, arch)))
		rc = error_set(err, ENOENT, "the image is for %s/%s, not %s", c.os ? c.os : "?",
			       c.architecture ? c.architecture : "?", platform);
	image_config_release(&c);
	return rc;
}

static int run_import(struct capsa_ctx *ctx, struct source *s, struct capsa_image_import_result *out,
		      struct capsa_error **err)
{
	const struct capsa_image_import_opts *o = s->o;
	struct stat sb;
	if (fstat(s->fd, &sb) < 0)
		return error_sys(err, errno, "%s", s->path);
	s->is_dir = S_ISDIR(sb.st_mode);
	if (!s->is_dir && !S_ISREG(sb.st_mode))
		return error_set(err, EINVAL, "%s: not a directory or a regular file", s->path);
	if (!s->is_dir && arc_scan(s, err) < 0)
		return -1;
	if (src_has(s, "oci-layout") && src_has(s, "index.json")) {
		out->format = xstrdup(s->is_dir ? "oci-layout" : "oci-archive");
	} else if (s->is_dir) {
		return error_set(err, EINVAL, "%s: a directory without oci-layout and index.json is not an OCI image layout",
				 s->path);
	} else if (src_has(s, "manifest.json")) {
		out->format = xstrdup("docker-archive");
	} else {
		out->format = xstrdup("rootfs-tar");
	}
	bool rootfs = str_eq(out->format, "rootfs-tar");
	if (!rootfs && config_opts_given(o))
		return error_set(err, EINVAL, "%s: --cmd, --entrypoint, --env, --workdir and --user apply only to a plain "
				 "rootfs tarball, not to an %s", s->path, out->format);
	_cleanup_free_ char *name = NULL;
	if (o->name && image_ref_normalize(o->name, &name, err) < 0)
		return -1;
	int rc = rootfs ? rootfs_plan(ctx, s, err)
		 : str_eq(out->format, "docker-archive") ? docker_plan(s, err)
							   : oci_plan(s, err);
	if (rc < 0)
		return -1;
	if (name && s->n_items > 1)
		return error_set(err, EINVAL, "%s holds %zu images: --name needs exactly one", s->path, s->n_items);
	if (!rootfs && store_needs(ctx, s, err) < 0)
		return -1;
	if (o->allow_devices && ctx->rootless)
		return error_set(err, ENOTSUP,
				 "--allow-devices is not available in rootless mode: creating device nodes needs host root");
	struct unpack_opts uo = { .allow_devices = o->allow_devices };
	for (size_t i = 0; i < s->n_items; i++) {
		struct plan_item *it = &s->items[i];
		if (!it->manifest && build_manifest(ctx, s, it, err) < 0)
			return -1;
		if (str_has_prefix(out->format, "oci-") &&
		    store_text_blob(ctx, it->config, it->config_len, MT_OCI_CONFIG, NULL, err) < 0)
			return -1;
		if (!rootfs && check_platform(it, o->platform, err) < 0)
			return error_wrap(err, "%s", s->path);
		char **names = name ? (char *[]){ name, NULL } : it->names;
		char *id = NULL;
		if (image_ingest_manifest_opts(ctx, it->manifest, it->len, it->digest, names ? names[0] : NULL, &uo, &id,
					       err) < 0)
			return error_wrap(err, "import %s", s->path);
		for (size_t k = 1; names && names[k]; k++) {
			struct store *db = ctx_db(ctx, err);
			if (!db || image_ref_set(db, names[k], id, err) < 0) {
				free(id);
				return -1;
			}
		}
		out->ids = strv_push_take(out->ids, id);
		for (size_t k = 0; names && names[k]; k++)
			out->names = strv_push(out->names, names[k]);
	}
	return 0;
}

CAPSA_EXPORT int capsa_image_import(struct capsa_ctx *ctx, const char *path, const struct capsa_image_import_opts *opts,
				    struct capsa_image_import_result *out, struct capsa_error **err)
{
	static const struct capsa_image_import_opts none = { 0 };
	memset(out, 0, sizeof(*out));
	struct source s = { .path = path, .o = opts ? opts : &none, .fd = -1 };
	s.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (s.fd < 0)
		return error_sys(err, errno, "import %s", path);
	int rc = run_import(ctx, &s, out, err);
	source_release(&s);
	/* a failed import's blobs and layers are garbage now, and a good one
	 * leaves lock files in tmp/: collect unless another import or pull
	 * is running (it holds the store lock shared) */
	image_ingest_done(ctx);
	capsa_image_gc(ctx, false, NULL, NULL);
	if (rc < 0)
		capsa_image_import_result_release(out);
	return rc;
}

CAPSA_EXPORT void capsa_image_import_result_release(struct capsa_image_import_result *r)
{
	free(r->format);
	strv_free(r->ids);
	strv_free(r->names);
	memset(r, 0, sizeof(*r));
}
