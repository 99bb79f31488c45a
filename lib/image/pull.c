/* pull.c: `capsa pull` and `capsa login` over the registry client.
 *
 * A pull, in order:
 * 1. resolve the reference to a manifest (through an index for the asked
 *    platform); each manifest is stored as a blob through the ingest API,
 *    which verifies it against the digest we expect: the one in the
 *    reference, else the registry's Docker-Content-Digest, else (a plain
 *    tag without that header) the digest is whatever the content hashes to;
 * 2. download the config and the layers not yet in the store, at most
 *    max_parallel at once on one curl multi handle.  A blob is streamed into
 *    a blob writer opened with resume: bytes left by an interrupted pull
 *    are kept and the rest is asked for with Range; a registry that answers
 *    200 instead of 206 restarts the blob from zero.  A lost connection is
 *    retried from where it stopped (3 attempts);
 * 3. hand the manifest to image_ingest_manifest(), which validates it,
 *    unpacks the layers and records the image and the reference.
 * Nothing is recorded before every blob verified; a digest mismatch keeps
 * nothing of that blob.  Cancelling keeps partial blobs for the next pull.
 */
#include <errno.h>
#include <string.h>

#include "capsa/pull.h"
#include "image/ingest.h"
#include "image/oci.h"
#include "image/ref.h"
#include "registry.h"

#define BLOB_ATTEMPTS 3

static const char manifest_accept[] = MT_OCI_INDEX ", " MT_DOCKER_LIST ", " MT_OCI_MANIFEST ", " MT_DOCKER_MANIFEST;

CAPSA_EXPORT void capsa_pull_result_release(struct capsa_pull_result *r)
{
	free(r->ref);
	free(r->digest);
	free(r->manifest);
	free(r->image_id);
	free(r->platform);
	memset(r, 0, sizeof(*r));
}

struct pull {
	struct capsa_ctx *ctx;
	struct registry_client *client;
	const struct capsa_pull_opts *opts;
	struct image_ref ref;
	char *canonical; /* "domain/path:tag" or "@digest" */
	char *scope;
};

static void emit(struct pull *pl, const struct capsa_pull_progress *p)
{
	if (pl->opts && pl->opts->progress)
		pl->opts->progress(p, pl->opts->progress_arg);
}

/* --- manifests ------------------------------------------------------------ */

struct fetched {
	struct buf body;
	char *digest;
	enum oci_doc_kind kind;
};

static void fetched_release(struct fetched *f)
{
	buf_release(&f->body);
	free(f->digest);
	memset(f, 0, sizeof(*f));
}

/* Stores a manifest or index as a blob: the writer checks the digest. */
static int store_document(struct pull *pl, const char *expect, const char *media_type, struct fetched *f,
			  struct capsa_error **err)
{
	struct blob_writer *w;
	if (blob_writer_open(pl->ctx, expect, (int64_t)f->body.len, false, &w, err) < 0)
		return -1;
	if (blob_writer_write(w, f->body.data, f->body.len, err) < 0) {
		blob_writer_abort(w, false);
		return -1;
	}
	return blob_writer_commit(w, media_type, &f->digest, err);
}

static int fetch_manifest(struct pull *pl, const char *reference, const char *expect, struct fetched *out,
			  struct capsa_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/manifests/%s", pl->ref.path, reference);
	_cleanup_free_ char *what = xasprintf("manifest %s", reference);
	struct registry_resp resp = { 0 };
	int rc = -1;
	if (registry_get(pl->client, path, pl->scope, manifest_accept, IMAGE_MAX_JSON, &resp, err) < 0) {
		if (resp.body_too_large)
			error_wrap(err, "%s", what);
		goto out;
	}
	if (resp.status != 200) {
		registry_status_error(&resp, what, err);
		goto out;
	}
	if (!expect && resp.docker_digest && digest_valid(resp.docker_digest))
		expect = resp.docker_digest;
	if (registry_doc_kind(resp.content_type, resp.body.data, resp.body.len, &out->kind, err) < 0) {
		error_wrap(err, "%s", what);
		goto out;
	}
	out->body = resp.body;
	memset(&resp.body, 0, sizeof(resp.body));
	if (store_document(pl, expect, out->kind == OCI_DOC_INDEX ? MT_OCI_INDEX : MT_OCI_MANIFEST, out, err) < 0) {
		error_wrap(err, "%s", what);
		goto out;
	}
	rc = 0;
out:
	registry_resp_release(&resp);
	if (rc < 0)
		fetched_release(out);
	return rc;
}

/* --- blobs ---------------------------------------------------------------- */

enum xfer_state { XFER_PENDING, XFER_ACTIVE, XFER_DONE };

struct xfer {
	struct pull *pl;
	const struct oci_descriptor *d;
	const char *kind;
	int index, count;
	enum xfer_state state;
	struct blob_writer *w;
	CURL *easy;
	struct curl_slist *headers;
	struct registry_resp resp;
	int64_t start;	 /* offset asked for with Range */
	int64_t done;	 /* bytes in the writer */
	int64_t resumed; /* from an earlier pull */
	bool checked;	 /* first body bytes seen, status handled */
	int attempts;
	bool auth_retried;
	bool range_refused;
	bool fresh_retry; /* a resumed blob failed verification once */
	struct capsa_error *err; /* from the write callback */
	int64_t last_emit_ns;
};

static void xfer_emit(struct xfer *x, enum capsa_pull_event ev)
{
	struct capsa_pull_progress p = {
		.event = ev,
		.digest = x->d->digest,
		.kind = x->kind,
		.index = x->index,
		.count = x->count,
		.done = x->done,
		.total = x->d->size,
		.resumed = x->resumed,
	};
	emit(x->pl, &p);
}

/* "bytes START-END/TOTAL": START must be where we asked to start. */
static bool content_range_ok(const char *cr, int64_t start, int64_t size)
{
	long long a, b, t;
	char slash;
	if (!cr || sscanf(cr, "bytes %lld-%lld%c%lld", &a, &b, &slash, &t) != 4 || slash != '/')
		return false;
	return a == start && b >= a && b < size && t == size;
}

static size_t blob_cb(char *p, size_t sz, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	size_t n = sz * nitems;
	long st = x->resp.status;
	if (st != 200 && st != 206) {
		/* an error body: kept (capped) for the message */
		if (buf_append(&x->resp.body, p, n) < 0) {
			x->resp.body_too_large = true;
			return 0;
		}
		return n;
	}
	if (!x->checked) {
		x->checked = true;
		if (st == 200 && x->start > 0) {
			/* Range ignored: the whole blob follows */
			blob_writer_abort(x->w, false);
			x->w = NULL;
			x->start = x->done = x->resumed = 0;
			if (blob_writer_open(x->pl->ctx, x->d->digest, x->d->size, false, &x->w, &x->err) < 0)
				return 0;
		} else if (st == 206 && !content_range_ok(x->resp.content_range, x->start, x->d->size)) {
			error_set(&x->err, EPROTO, "blob %s: asked for bytes from %lld, got range '%.80s'",
				  x->d->digest, (long long)x->start,
				  x->resp.content_range ? x->resp.content_range : "");
			return 0;
		}
	}
	if (blob_writer_write(x->w, p, n, &x->err) < 0)
		return 0;
	x->done += (int64_t)n;
	int64_t now = mono_ns();
	if (now - x->last_emit_ns > 50 * 1000 * 1000) {
		x->last_emit_ns = now;
		xfer_emit(x, CAPSA_PULL_BLOB_PROGRESS);
	}
	return n;
}

static void xfer_detach(struct xfer *x, bool keep_partial)
{
	if (x->easy) {
		curl_multi_remove_handle(registry_client_multi(x->pl->client), x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	if (x->headers) {
		curl_slist_free_all(x->headers);
		x->headers = NULL;
	}
	if (x->w) {
		blob_writer_abort(x->w, keep_partial);
		x->w = NULL;
	}
	registry_resp_release(&x->resp);
	capsa_error_free(x->err);
	x->err = NULL;
}

/* Opens the writer (resuming), commits a partial that is already whole, or
 * starts the HTTP transfer.  1: started, 0: finished without network. */
static int xfer_start(struct xfer *x, struct capsa_error **err)
{
	struct pull *pl = x->pl;
	if (blob_writer_open(pl->ctx, x->d->digest, x->d->size, true, &x->w, err) < 0)
		return -1;
	x->start = x->done = blob_writer_offset(x->w);
	if (x->attempts == 0)
		x->resumed = x->start;
	x->checked = false;
	if (x->start >= x->d->size) {
		/* an earlier pull got every byte but did not commit */
		struct blob_writer *w = steal_pointer(&x->w);
		struct capsa_error *cerr = NULL;
		if (blob_writer_commit(w, x->d->media_type, NULL, &cerr) < 0) {
			if (x->fresh_retry) {
				error_move(err, &cerr);
				return error_wrap(err, "blob %s", x->d->digest);
			}
			/* those bytes were wrong and are gone: download anew */
			capsa_error_free(cerr);
			x->fresh_retry = true;
			return 0;
		}
		x->state = XFER_DONE;
		xfer_emit(x, CAPSA_PULL_BLOB_DONE);
		return 0;
	}
	_cleanup_free_ char *path = xasprintf("%s/blobs/%s", pl->ref.path, x->d->digest);
	x->resp.body.cap = REGISTRY_ERROR_BODY_MAX;
	x->resp.blob_max = x->d->size;
	x->easy = registry_easy(pl->client, path, pl->scope, NULL, &x->resp, &x->headers, err);
	if (!x->easy) {
		blob_writer_abort(x->w, true);
		x->w = NULL;
		return -1;
	}
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, blob_cb);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (x->start > 0) {
		char range[48];
		snprintf(range, sizeof(range), "%lld-", (long long)x->start);
		curl_easy_setopt(x->easy, CURLOPT_RANGE, range);
	}
	if (curl_multi_add_handle(registry_client_multi(pl->client), x->easy) != CURLM_OK) {
		xfer_detach(x, true);
		return error_set(err, ENOMEM, "blob %s: start transfer", x->d->digest);
	}
	x->state = XFER_ACTIVE;
	xfer_emit(x, CAPSA_PULL_BLOB_START);
	return 1;
}

static bool transient(CURLcode cc)
{
	return cc == CURLE_PARTIAL_FILE || cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR ||
	       cc == CURLE_GOT_NOTHING || cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_HTTP2_STREAM ||
	       cc == CURLE_HTTP2;
}

/* A finished transfer: commit, retry or fail.  Returns 0 when it is done or
 * queued again, -1 with err on a failure that ends the pull. */
static int xfer_finish(struct xfer *x, CURLcode cc, struct capsa_error **err)
{
	struct pull *pl = x->pl;
	_cleanup_free_ char *what = xasprintf("blob %s", x->d->digest);
	long st = x->resp.status;
	x->resp.curl_code = cc;
	if (x->err) {
		/* the writer refused the data (too long, disk full) or the
		 * range answer was wrong: what was written cannot be trusted */
		error_move(err, &x->err);
		xfer_detach(x, false);
		return -1;
	}
	if (cc != CURLE_OK) {
		if (registry_client_cancelled(pl->client)) {
			xfer_detach(x, true);
			return error_set(err, EINTR, "interrupted");
		}
		if (transient(cc) && ++x->attempts < BLOB_ATTEMPTS) {
			xfer_detach(x, true);
			x->state = XFER_PENDING;
			xfer_emit(x, CAPSA_PULL_BLOB_RETRY);
			return 0;
		}
		registry_transport_error(pl->client, &x->resp, err);
		xfer_detach(x, true);
		return error_wrap(err, "%s", what);
	}
	if (st == 200 || st == 206) {
		if (!x->checked && x->done < x->d->size && x->d->size > 0 && st == 200 && x->start > 0) {
			/* an empty 200 to a Range request: nothing to keep */
			xfer_detach(x, false);
			return error_set(err, EPROTO, "%s: empty response", what);
		}
		curl_multi_remove_handle(registry_client_multi(pl->client), x->easy);
		struct blob_writer *w = steal_pointer(&x->w);
		struct capsa_error *cerr = NULL;
		int rc = blob_writer_commit(w, x->d->media_type, NULL, &cerr);
		xfer_detach(x, false);
		if (rc < 0 && x->start > 0 && !x->fresh_retry) {
			/* the bytes of an earlier pull may be what is wrong: the
			 * writer dropped them; fetch the whole blob once more */
			x->fresh_retry = true;
			capsa_error_free(cerr);
			x->state = XFER_PENDING;
			xfer_emit(x, CAPSA_PULL_BLOB_RETRY);
			return 0;
		}
		if (rc < 0) {
			error_move(err, &cerr);
			return error_wrap(err, "%s", what);
		}
		x->state = XFER_DONE;
		xfer_emit(x, CAPSA_PULL_BLOB_DONE);
		return 0;
	}
	if (st == 401 && !x->auth_retried) {
		x->auth_retried = true;
		int rc = registry_authenticate(pl->client, &x->resp, pl->scope, err);
		xfer_detach(x, true);
		if (rc < 0)
			return error_wrap(err, "%s", what);
		x->state = XFER_PENDING;
		return 0;
	}
	if (st == 416 && !x->range_refused) {
		/* our partial does not fit what the registry has: start over */
		x->range_refused = true;
		xfer_detach(x, false);
		x->state = XFER_PENDING;
		return 0;
	}
	registry_status_error(&x->resp, what, err);
	xfer_detach(x, true);
	return -1;
}

static int run_transfers(struct pull *pl, struct xfer *xs, size_t n, struct capsa_error **err)
{
	CURLM *multi = registry_client_multi(pl->client);
	int max = pl->opts && pl->opts->max_parallel > 0 ? pl->opts->max_parallel : REGISTRY_DEFAULT_PARALLEL;
	int rc = 0;
	for (;;) {
		size_t active = 0, pending = 0;
		for (size_t i = 0; i < n; i++) {
			if (xs[i].state == XFER_ACTIVE)
				active++;
		}
		for (size_t i = 0; i < n && rc == 0 && active < (size_t)max; i++) {
			if (xs[i].state != XFER_PENDING)
				continue;
			int r = xfer_start(&xs[i], err);
			if (r < 0)
				rc = -1;
			else if (r > 0)
				active++;
		}
		for (size_t i = 0; i < n; i++)
			if (xs[i].state == XFER_PENDING)
				pending++;
		if (rc < 0 || (active == 0 && pending == 0))
			break;
		int running;
		if (curl_multi_perform(multi, &running) != CURLM_OK) {
			rc = error_set(err, EIO, "transfer failed");
			break;
		}
		CURLMsg *m;
		int left;
		while (rc == 0 && (m = curl_multi_info_read(multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct xfer *x = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			if (x && xfer_finish(x, m->data.result, err) < 0)
				rc = -1;
		}
		if (rc < 0)
			break;
		if (registry_client_cancelled(pl->client)) {
			rc = error_set(err, EINTR, "interrupted");
			break;
		}
		if (curl_multi_poll(multi, NULL, 0, 200, NULL) != CURLM_OK) {
			rc = error_set(err, EIO, "transfer failed");
			break;
		}
	}
	/* on failure, stop the others; their partial blobs stay for a resume */
	for (size_t i = 0; i < n; i++)
		if (xs[i].state == XFER_ACTIVE)
			xfer_detach(&xs[i], true);
	return rc;
}

static int download_blobs(struct pull *pl, const struct oci_manifest *mb, struct capsa_error **err)
{
	size_t total = mb->n_layers + 1;
	struct xfer *xs = xcalloc(total, sizeof(*xs));
	size_t n = 0;
	for (size_t i = 0; i < total; i++) {
		const struct oci_descriptor *d = i == 0 ? &mb->config : &mb->layers[i - 1];
		bool dup = false;
		for (size_t j = 0; j < n; j++)
			dup |= str_eq(xs[j].d->digest, d->digest);
		if (dup)
			continue;
		struct xfer *x = &xs[n++];
		x->pl = pl;
		x->d = d;
		x->kind = i == 0 ? "config" : "layer";
		x->index = (int)i;
		x->count = (int)total;
		x->resp.content_length = -1;
		int64_t have;
		if (blob_exists(pl->ctx, d->digest, &have) && have == d->size) {
			x->state = XFER_DONE;
			x->done = d->size;
			xfer_emit(x, CAPSA_PULL_BLOB_EXISTS);
		}
	}
	int rc = run_transfers(pl, xs, n, err);
	free(xs);
	return rc;
}

/* --- the pull ------------------------------------------------------------- */

static char *platform_string(const struct oci_descriptor *d)
{
	if (d->variant && *d->variant)
		return xasprintf("%s/%s/%s", d->os, d->arch, d->variant);
	return xasprintf("%s/%s", d->os, d->arch);
}

#define MAX_INDEX_DEPTH 2 /* as import: an index of indexes, no deeper */

/* Picks the entry for platform from the index in doc and fetches it into
 * doc (replacing the index). */
static int descend(struct pull *pl, const char *platform, struct fetched *doc, char **platform_out,
		   struct capsa_error **err)
{
	struct oci_index idx;
	if (oci_index_parse(doc->body.data, doc->body.len, &idx, err) < 0)
		return error_wrap(err, "index %s", doc->digest);
	int i = oci_index_select(&idx, platform, err);
	if (i < 0) {
		oci_index_release(&idx);
		return error_wrap(err, "index %s", doc->digest);
	}
	const struct oci_descriptor *d = &idx.manifests[i];
	if (d->os && d->arch) {
		free(*platform_out);
		*platform_out = platform_string(d);
	}
	_cleanup_free_ char *digest = xstrdup(d->digest);
	oci_index_release(&idx);
	fetched_release(doc);
	return fetch_manifest(pl, digest, digest, doc, err);
}

static int resolve(struct pull *pl, const char *platform, struct fetched *image, char **top_digest,
		   char **platform_out, struct capsa_error **err)
{
	const char *reference = pl->ref.digest ? pl->ref.digest : pl->ref.tag;
	if (fetch_manifest(pl, reference, pl->ref.digest, image, err) < 0)
		return -1;
	*top_digest = xstrdup(image->digest);
	int rc = 0;
	for (int depth = 0; rc == 0 && image->kind == OCI_DOC_INDEX; depth++) {
		if (depth == MAX_INDEX_DEPTH)
			rc = error_set(err, ENOTSUP, "index %s: indexes nested more than %d levels", image->digest,
				       MAX_INDEX_DEPTH);
		else
			rc = descend(pl, platform, image, platform_out, err);
	}
	if (rc < 0) {
		fetched_release(image);
		free(*top_digest);
		*top_digest = NULL;
		free(*platform_out);
		*platform_out = NULL;
	}
	return rc;
}

CAPSA_EXPORT int capsa_image_pull(struct capsa_ctx *ctx, const char *ref, const struct capsa_pull_opts *opts,
				  struct capsa_pull_result *out, struct capsa_error **err)
{
	struct pull pl = { .ctx = ctx, .opts = opts };
	struct fetched image = { 0 };
	struct oci_manifest mb = { 0 };
	struct capsa_pull_result res = { 0 };
	const char *platform = opts && opts->platform ? opts->platform : "linux/amd64";
	int rc = -1;
	bool net_error = true;
	_cleanup_free_ char *pos = NULL, *parch = NULL, *pvariant = NULL;
	if (image_ref_parse(ref, &pl.ref, err) < 0 || platform_parse(platform, &pos, &parch, &pvariant, err) < 0) {
		error_wrap(err, "pull %s", ref);
		goto out_noreg;
	}
	pl.canonical = image_ref_string(&pl.ref);
	struct registry_client_opts copts = {
		.insecure = opts ? opts->insecure : NULL,
		.cancel = opts ? opts->cancel : NULL,
	};
	if (registry_client_new(ctx, pl.ref.domain, &copts, &pl.client, err) < 0)
		goto out;
	pl.scope = xasprintf("repository:%s:pull", pl.ref.path);
	if (resolve(&pl, platform, &image, &res.digest, &res.platform, err) < 0)
		goto out;
	if (oci_manifest_parse(image.body.data, image.body.len, &mb, err) < 0) {
		error_wrap(err, "manifest %s", image.digest);
		goto out;
	}
	struct capsa_pull_progress p = {
		.event = CAPSA_PULL_RESOLVED,
		.digest = image.digest,
		.platform = res.platform,
		.count = (int)mb.n_layers + 1,
	};
	emit(&pl, &p);
	if (download_blobs(&pl, &mb, err) < 0)
		goto out;
	net_error = false;
	struct capsa_pull_progress u = { .event = CAPSA_PULL_UNPACKING, .digest = image.digest,
					 .count = (int)mb.n_layers + 1 };
	emit(&pl, &u);
	if (image_ingest_manifest(ctx, image.body.data, image.body.len, image.digest, pl.canonical, res.platform,
				  &res.image_id, err) < 0)
		goto out;
	res.ref = xstrdup(pl.canonical);
	res.manifest = xstrdup(image.digest);
	if (out)
		*out = res;
	else
		capsa_pull_result_release(&res);
	memset(&res, 0, sizeof(res));
	rc = 0;
out:
	if (rc < 0) {
		if (net_error)
			error_wrap(err, "pull %s: registry %s", ref, pl.ref.domain);
		else
			error_wrap(err, "pull %s", ref);
	}
out_noreg:
	/* the image rows are committed (or nothing will be): garbage
	 * collection may run again */
	image_ingest_done(ctx);
	capsa_pull_result_release(&res);
	oci_manifest_release(&mb);
	fetched_release(&image);
	registry_client_free(pl.client);
	image_ref_release(&pl.ref);
	free(pl.canonical);
	free(pl.scope);
	return rc;
}

/* --- login ---------------------------------------------------------------- */

CAPSA_EXPORT int capsa_registry_login(struct capsa_ctx *ctx, const char *registry, const char *user,
				      const char *password, const char *const *insecure, struct capsa_error **err)
{
	struct registry_client *c = NULL;
	struct registry_client_opts copts = { .insecure = insecure, .user = user, .password = password };
	if (!user || !*user || strchr(user, ':'))
		return error_set(err, EINVAL, "login %s: username must be non-empty and contain no ':'", registry);
	if (registry_client_new(ctx, registry, &copts, &c, err) < 0)
		return error_wrap(err, "login %s", registry);
	struct registry_resp resp = { 0 };
	int rc = registry_get(c, "", NULL, NULL, REGISTRY_ERROR_BODY_MAX, &resp, err);
	if (rc == 0 && resp.status == 401)
		rc = error_set(err, EACCES, "invalid username or password");
	else if (rc == 0 && resp.status != 200)
		rc = registry_status_error(&resp, "/v2/", err);
	if (rc == 0)
		rc = auth_cred_store(ctx, registry, user, password, err);
	if (rc < 0)
		error_wrap(err, "login %s", registry);
	registry_resp_release(&resp);
	registry_client_free(c);
	return rc;
}

CAPSA_EXPORT int capsa_registry_logout(struct capsa_ctx *ctx, const char *registry, struct capsa_error **err)
{
	int r = auth_cred_remove(ctx, registry, err);
	if (r < 0)
		return error_wrap(err, "logout %s", registry);
	if (r == 0)
		return error_set(err, ENOENT, "logout %s: not logged in", registry);
	return 0;
}
