/* test-image.c: reference normalization, the manifest/config/index parsers,
 * and the core queries the runtime uses (resolve, overlay options, sandbox
 * layer pins) against a store filled through image_ingest_manifest(). */
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "image/ingest.h"
#include "image/oci.h"
#include "image/ref.h"
#include "tap.h"
#include "tarbuild.h"
#include "util/fs.h"

static void test_refs(void)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{ "busybox", "docker.io/library/busybox:latest" },
		{ "busybox:1.36", "docker.io/library/busybox:1.36" },
		{ "library/busybox", "docker.io/library/busybox:latest" },
		{ "docker.io/busybox", "docker.io/library/busybox:latest" },
		{ "index.docker.io/library/busybox", "docker.io/library/busybox:latest" },
		{ "user/app:v1.2-rc_3", "docker.io/user/app:v1.2-rc_3" },
		{ "quay.io/org/sub/app", "quay.io/org/sub/app:latest" },
		{ "localhost/app", "localhost/app:latest" },
		{ "localhost:5000/app:x", "localhost:5000/app:x" },
		{ "127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest" },
		{ "[::1]:5000/app", "[::1]:5000/app:latest" },
		{ "my-registry.example.com/a__b/c.d/e-f", "my-registry.example.com/a__b/c.d/e-f:latest" },
		{ "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		  "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" },
		{ "busybox:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		  "docker.io/library/busybox:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char *out = NULL;
		struct capsa_error *err = NULL;
		ok(image_ref_normalize(good[i].in, &out, &err) == 0, "normalize %s", good[i].in);
		is_str(out, good[i].out, "  -> %s", good[i].out);
		free(out);
		capsa_error_free(err);
	}
	static const char *const bad[] = {
		"", "Busybox", "busybox:", ":tag", "busybox:-bad", "a//b", "a/-b", "a/b-", "a..b", "bad host!/x",
		"busybox@sha256:123", "busybox@md5:0123456789abcdef0123456789abcdef", "host:port/x", "x:" /* empty tag */,
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *out = NULL;
		struct capsa_error *err = NULL;
		ok(image_ref_normalize(bad[i], &out, &err) < 0 && err && strstr(err->msg, "invalid reference"),
		   "refuse '%s': %s", bad[i], err ? err->msg : "(accepted)");
		free(out);
		capsa_error_free(err);
	}
	char *long_name = xmalloc(300);
	memset(long_name, 'a', 299);
	long_name[299] = '\0';
	struct capsa_error *err = NULL;
	char *out = NULL;
	ok(image_ref_normalize(long_name, &out, &err) < 0, "name over 255 characters refused");
	capsa_error_free(err);
	free(long_name);
	struct image_ref r;
	err = NULL;
	ok(image_ref_parse("localhost:5000/team/app:v2", &r, &err) == 0, "parse");
	is_str(r.domain, "localhost:5000", "domain");
	is_str(r.path, "team/app", "path");
	is_str(r.tag, "v2", "tag");
	char *repo = image_ref_repository(&r);
	is_str(repo, "localhost:5000/team/app", "repository");
	free(repo);
	image_ref_release(&r);
}

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static void test_parsers(void)
{
	struct capsa_error *err = NULL;
	const char *m = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\",\"config\":{\"mediaType\":\"" MT_OCI_CONFIG
			"\",\"digest\":\"" D1 "\",\"size\":10},\"layers\":[{\"mediaType\":\"" MT_DOCKER_LAYER_GZIP
			"\",\"digest\":\"" D2 "\",\"size\":20}]}";
	struct oci_manifest man;
	ok(oci_manifest_parse(m, strlen(m), &man, &err) == 0, "manifest parses: %s", err ? err->msg : "");
	ok(man.n_layers == 1 && man.layers[0].size == 20 && str_eq(man.config.digest, D1), "manifest fields");
	ok(layer_media_compression(man.layers[0].media_type) == LAYER_GZIP, "docker gzip layer type");
	oci_manifest_release(&man);
	is_int(oci_doc_kind(m, strlen(m)), OCI_DOC_MANIFEST, "kind: manifest");

	static const struct {
		const char *json, *want;
	} badm[] = {
		{ "{\"schemaVersion\":1}", "schema 1" },
		{ "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:00\",\"size\":1},\"layers\":[]}", "invalid digest" },
		{ "{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\",\"size\":-1},\"layers\":[]}", "size" },
		{ "{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}", "no layers" },
		{ "{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\",\"size\":1},\"layers\":[{\"mediaType\":\"text/plain\","
		  "\"digest\":\"" D2 "\",\"size\":1}]}",
		  "not a supported layer type" },
		{ "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.in-toto+json\",\"digest\":\"" D1
		  "\",\"size\":1},\"layers\":[]}",
		  "not an image config" },
		{ "[1,2]", "not a JSON object" },
		{ "{\"schemaVersion\":2,\"schemaVersion\":2}", "duplicate" },
		{ "{\"schemaVersion\":2, \"config\": ", "invalid JSON" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(badm); i++) {
		err = NULL;
		ok(oci_manifest_parse(badm[i].json, strlen(badm[i].json), &man, &err) < 0 && err &&
			   strstr(err->msg, badm[i].want),
		   "manifest refused (%s): %s", badm[i].want, err ? err->msg : "(accepted)");
		capsa_error_free(err);
	}
	/* 10,000 layers and 10,000 levels */
	struct buf b = BUF_INIT;
	buf_appendf(&b, "{\"schemaVersion\":2,\"config\":{\"digest\":\"%s\",\"size\":1},\"layers\":[", D1);
	for (int i = 0; i < 10000; i++)
		buf_appendf(&b, "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1}", i ? "," : "", MT_OCI_LAYER, D2);
	buf_appendf(&b, "]}");
	err = NULL;
	ok(oci_manifest_parse(b.data, b.len, &man, &err) < 0 && err && strstr(err->msg, "10000 layers"),
	   "10,000 layers refused: %s", err ? err->msg : "");
	capsa_error_free(err);
	buf_release(&b);
	for (int i = 0; i < 10000; i++)
		buf_putc(&b, '[');
	for (int i = 0; i < 10000; i++)
		buf_putc(&b, ']');
	ok(!json_depth_ok(b.data, b.len, IMAGE_MAX_JSON_DEPTH), "depth check refuses 10,000 levels");
	err = NULL;
	struct image_config cfg;
	ok(image_config_parse(b.data, b.len, &cfg, &err) < 0 && err && strstr(err->msg, "nested"), "config: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	buf_release(&b);
	const char *tricky = "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"}";
	ok(json_depth_ok(tricky, strlen(tricky), 2), "brackets inside strings do not count");

	const char *c = "{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\",\"created\":\"2024-01-01T00:00:00Z\","
			"\"config\":{\"Entrypoint\":[\"/init\"],\"Cmd\":[\"a\",\"b\"],\"Env\":[\"A=1\",\"B=x=y\"],"
			"\"WorkingDir\":\"/w\",\"User\":\"1:2\",\"StopSignal\":\"SIGINT\",\"ExposedPorts\":{\"80/tcp\":{}},"
			"\"Labels\":{\"k\":\"v\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2 "\"]}}";
	err = NULL;
	ok(image_config_parse(c, strlen(c), &cfg, &err) == 0, "config parses: %s", err ? err->msg : "");
	is_str(cfg.entrypoint[0], "/init", "Entrypoint");
	ok(strv_len(cfg.cmd) == 2 && str_eq(cfg.env[1], "B=x=y"), "Cmd, Env");
	is_str(cfg.working_dir, "/w", "WorkingDir");
	is_str(cfg.user, "1:2", "User");
	is_str(cfg.stop_signal, "SIGINT", "StopSignal");
	is_str(cfg.exposed_ports[0], "80/tcp", "ExposedPorts");
	is_str(cfg.labels[0], "k=v", "Labels");
	ok(cfg.n_diff_ids == 2 && str_eq(cfg.diff_ids[1], D2), "diff_ids");
	is_str(cfg.variant, "v8", "variant");
	image_config_release(&cfg);
	static const struct {
		const char *json, *want;
	} badc[] = {
		{ "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},\"config\":{\"Cmd\":\"sh\"}}", "Cmd" },
		{ "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},\"config\":{\"Env\":[\"NOEQUALS\"]}}", "Env" },
		{ "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:zz\"]}}", "diff_ids" },
		{ "{\"rootfs\":{\"type\":\"other\",\"diff_ids\":[]}}", "rootfs.type" },
		{ "{\"config\":{}}", "rootfs missing" },
		{ "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},\"config\":{\"Labels\":{\"a\":1}}}", "Labels" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(badc); i++) {
		err = NULL;
		ok(image_config_parse(badc[i].json, strlen(badc[i].json), &cfg, &err) < 0 && err &&
			   strstr(err->msg, badc[i].want),
		   "config refused (%s): %s", badc[i].want, err ? err->msg : "(accepted)");
		capsa_error_free(err);
	}

	const char *idx = "{\"schemaVersion\":2,\"manifests\":["
			  "{\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"
			  "{\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
			  "{\"digest\":\"" D2 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"},"
			  "\"annotations\":{\"org.opencontainers.image.ref.name\":\"x:1\"}},"
			  "{\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}]}";
	struct oci_index x;
	err = NULL;
	ok(oci_index_parse(idx, strlen(idx), &x, &err) == 0 && x.n == 4, "index parses");
	is_int(oci_doc_kind(idx, strlen(idx)), OCI_DOC_INDEX, "kind: index");
	is_int(oci_index_select(&x, NULL, &err), 2, "default platform linux/amd64");
	is_str(x.manifests[2].ref_name, "x:1", "ref.name annotation");
	is_int(oci_index_select(&x, "linux/arm/v7", &err), 0, "variant match");
	is_int(oci_index_select(&x, "linux/arm64", &err), 1, "arm64");
	ok(oci_index_select(&x, "windows/amd64", &err) < 0 && err && strstr(err->msg, "linux/arm/v7"),
	   "unknown platform lists what there is: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	ok(oci_index_select(&x, "linux", &err) < 0 && err && strstr(err->msg, "OS/ARCH"), "bad platform syntax");
	capsa_error_free(err);
	oci_index_release(&x);
}

/* ---- a store with images ---- */

static char *sha256_hex(const void *p, size_t n)
{
	unsigned char md[32];
	unsigned len;
	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	char hex[65];
	hex_encode(md, 32, hex);
	return xasprintf("sha256:%s", hex);
}

static char *put_blob(struct capsa_ctx *ctx, const void *p, size_t n)
{
	struct blob_writer *w;
	char *d = NULL;
	struct capsa_error *err = NULL;
	if (blob_writer_open(ctx, NULL, (int64_t)n, false, &w, &err) < 0 || blob_writer_write(w, p, n, &err) < 0 ||
	    blob_writer_commit(w, NULL, &d, &err) < 0)
		diag("put_blob: %s", err ? err->msg : "");
	capsa_error_free(err);
	return d;
}

/* An image of n one-file layers; returns its id. */
static char *make_image(struct capsa_ctx *ctx, int n, const char *ref, int salt)
{
	json_t *layers = json_array(), *diffs = json_array();
	for (int i = 0; i < n; i++) {
		char name[32], data[32];
		snprintf(name, sizeof(name), "f%03d", i);
		snprintf(data, sizeof(data), "%d-%d", salt, i);
		struct tar_ent e[] = { { .name = name, .type = '0', .data = data, .len = strlen(data) }, { 0 } };
		struct buf t = BUF_INIT;
		tb_build(&t, e);
		char *d = put_blob(ctx, t.data, t.len);
		json_array_append_new(layers, json_pack("{s:s,s:s,s:I}", "mediaType", MT_OCI_LAYER, "digest", d, "size",
							(json_int_t)t.len));
		json_array_append_new(diffs, json_string(d));
		free(d);
		buf_release(&t);
	}
	json_t *cfg = json_pack("{s:s,s:s,s:{s:[s]},s:{s:s,s:o}}", "architecture", "amd64", "os", "linux", "config", "Cmd",
				"sh", "rootfs", "type", "layers", "diff_ids", diffs);
	char *ctext = json_dumps(cfg, JSON_COMPACT);
	char *cd = put_blob(ctx, ctext, strlen(ctext));
	json_t *m = json_pack("{s:i,s:s,s:{s:s,s:s,s:I},s:o}", "schemaVersion", 2, "mediaType", MT_OCI_MANIFEST, "config",
			      "mediaType", MT_OCI_CONFIG, "digest", cd, "size", (json_int_t)strlen(ctext), "layers", layers);
	char *mtext = json_dumps(m, JSON_COMPACT);
	char *id = NULL;
	struct capsa_error *err = NULL;
	if (image_ingest_manifest(ctx, mtext, strlen(mtext), NULL, ref, NULL, &id, &err) < 0)
		diag("ingest: %s", err ? err->msg : "");
	capsa_error_free(err);
	free(mtext);
	free(ctext);
	free(cd);
	json_decref(m);
	json_decref(cfg);
	return id;
}

static void test_store(void)
{
	char tmpl[] = "/tmp/capsa-image-XXXXXX";
	ok(mkdtemp(tmpl) != NULL, "mkdtemp");
	char *root = xasprintf("%s/root", tmpl), *run = xasprintf("%s/run", tmpl);
	struct capsa_ctx_opts o = { .root = root, .run_root = run };
	struct capsa_ctx *ctx = NULL;
	struct capsa_error *err = NULL;
	ok(capsa_ctx_open(&o, &ctx, &err) == 0, "open context");
	char *id = make_image(ctx, 3, "app:1", 0);
	ok(id != NULL, "image ingested");
	struct image *img = NULL;
	ok(image_resolve(ctx, "app:1", &img, &err) == 0, "resolve by name");
	ok(img && str_eq(img->id, id) && img->n_layers == 3 && str_eq(img->config.cmd[0], "sh"), "image struct");
	is_str(img->name, "docker.io/library/app:1", "matched name");
	char *data = NULL, *dir = NULL;
	ok(image_overlay_options(ctx, img, "/s/upper", "/s/work", &data, &dir, &err) == 0, "overlay options");
	char *want = xasprintf("lowerdir=%s:%s:%s,upperdir=/s/upper,workdir=/s/work", img->layers[2] + 7,
			       img->layers[1] + 7, img->layers[0] + 7);
	is_str(data, want, "lowerdir top first, relative to layers/");
	char *wdir = xasprintf("%s/layers", root);
	is_str(dir, wdir, "overlay dir");
	free(data);
	free(dir);
	free(want);
	free(wdir);
	ok(image_overlay_options(ctx, img, "/a,b", "/w", &data, &dir, &err) < 0, "comma in upper refused");
	capsa_error_free(err);
	err = NULL;
	struct image *tmp = NULL;
	char *pfx = xstrndup(id + 7, 6);
	ok(image_resolve(ctx, pfx, &tmp, &err) == 0 && str_eq(tmp->id, id), "resolve by id prefix");
	image_free(tmp);
	tmp = NULL;
	free(pfx);
	ok(image_resolve(ctx, id, &tmp, &err) == 0, "resolve by id");
	image_free(tmp);
	tmp = NULL;
	ok(image_resolve(ctx, "nosuch", &tmp, &err) < 0 && err && err->code == ENOENT, "missing image: ENOENT");
	capsa_error_free(err);
	err = NULL;

	/* a sandbox pins the layers: rm --force keeps them, gc after the
	 * sandbox row goes frees them */
	struct store *db = ctx_db(ctx, &err);
	ok(store_begin(db, &err) == 0, "begin");
	ok(store_exec(db, "INSERT INTO sandboxes(id,name,image_id,state,created_at) VALUES('s1','s1','x','running',1)",
		      &err) == 0,
	   "sandbox row");
	ok(image_record_sandbox_layers(ctx, "s1", img, &err) == 0, "record sandbox layers in the caller's tx");
	ok(store_commit(db, &err) == 0, "commit");
	struct capsa_image_rm_result rr;
	ok(capsa_image_rm(ctx, "app:1", false, &rr, &err) == 0, "rm (sandbox row names another image id)");
	capsa_image_rm_result_release(&rr);
	struct capsa_gc_stats st = { 0 };
	ok(capsa_image_gc(ctx, true, &st, &err) == 0, "gc");
	for (size_t i = 0; i < img->n_layers; i++) {
		char *rel = xasprintf("layers/%s", img->layers[i] + 7);
		struct stat sb;
		ok(fstatat(ctx->root_fd, rel, &sb, 0) == 0, "pinned layer %zu kept", i);
		free(rel);
	}
	ok(store_exec(db, "DELETE FROM sandboxes WHERE id='s1'", &err) == 0, "sandbox row removed");
	st = (struct capsa_gc_stats){ 0 };
	ok(capsa_image_gc(ctx, true, &st, &err) == 0 && st.layers == 3 && st.blobs == 0, "gc frees the layers (%zu)",
	   st.layers);
	image_free(img);
	free(id);

	/* 70 layers: the option string does not fit a page */
	id = make_image(ctx, 70, "many", 1);
	ok(id != NULL, "70-layer image");
	ok(image_resolve(ctx, "many", &img, &err) == 0, "resolve");
	ok(image_overlay_options(ctx, img, NULL, NULL, &data, &dir, &err) < 0 && err && err->code == E2BIG,
	   "E2BIG beyond a page: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	image_free(img);
	free(id);

	/* ingest refuses a config whose diff_ids disagree with the layers */
	char *bad = NULL;
	const char *cfgtext = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\"]}}";
	char *cd = put_blob(ctx, cfgtext, strlen(cfgtext));
	struct tar_ent e[] = { { .name = "x", .type = '0', .data = "x", .len = 1 }, { 0 } };
	struct buf t = BUF_INIT;
	tb_build(&t, e);
	char *ld = put_blob(ctx, t.data, t.len);
	char *m = xasprintf("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu},"
			    "\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}]}",
			    MT_OCI_CONFIG, cd, strlen(cfgtext), MT_OCI_LAYER, ld, t.len);
	ok(image_ingest_manifest(ctx, m, strlen(m), NULL, "bad", NULL, &bad, &err) < 0 && err &&
		   strstr(err->msg, "image config says"),
	   "diff_id mismatch refused: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	char *wrong = sha256_hex("other", 5);
	ok(image_ingest_manifest(ctx, m, strlen(m), wrong, "bad", NULL, &bad, &err) < 0 && err &&
		   strstr(err->msg, wrong),
	   "manifest digest mismatch names it");
	capsa_error_free(err);
	free(wrong);
	free(m);
	free(cd);
	free(ld);
	buf_release(&t);
	capsa_ctx_free(ctx);
	rm_rf_at(AT_FDCWD, tmpl, NULL);
	free(root);
	free(run);
}

int main(void)
{
	test_refs();
	test_parsers();
	test_store();
	return done_testing();
}
