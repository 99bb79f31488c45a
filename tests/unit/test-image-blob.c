/* test-image-blob.c: the blob writer (verification, nothing kept on a
 * mismatch, size cap, resume) and the blob read side. */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/ingest.h"
#include "tap.h"
#include "util/fs.h"

/* sha256("hello world\n") */
#define HELLO "hello world\n"
#define HELLO_DIGEST "sha256:a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
#define OTHER_DIGEST "sha256:0000000000000000000000000000000000000000000000000000000000000000"

static int count_dir(const char *root, const char *sub)
{
	char *p = xasprintf("%s/%s", root, sub);
	DIR *d = opendir(p);
	free(p);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

int main(void)
{
	char tmpl[] = "/tmp/capsa-blob-XXXXXX";
	ok(mkdtemp(tmpl) != NULL, "mkdtemp");
	char *root = xasprintf("%s/root", tmpl), *run = xasprintf("%s/run", tmpl);
	struct capsa_ctx_opts o = { .root = root, .run_root = run };
	struct capsa_ctx *ctx = NULL;
	struct capsa_error *err = NULL;
	ok(capsa_ctx_open(&o, &ctx, &err) == 0, "open context");

	ok(digest_valid(HELLO_DIGEST), "valid digest");
	ok(!digest_valid("sha256:A948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"), "upper-case hex refused");
	ok(!digest_valid("sha256:abc"), "short digest refused");
	ok(!digest_valid("sha512:a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"), "other algorithm refused");
	ok(!digest_valid(NULL), "NULL refused");

	/* known digest, written in two pieces */
	struct blob_writer *w = NULL;
	char *got = NULL;
	ok(blob_writer_open(ctx, HELLO_DIGEST, 12, false, &w, &err) == 0, "open writer");
	ok(blob_writer_write(w, "hello ", 6, &err) == 0 && blob_writer_write(w, "world\n", 6, &err) == 0, "write");
	ok(blob_writer_commit(w, "text/plain", &got, &err) == 0, "commit: %s", err ? err->msg : "");
	is_str(got, HELLO_DIGEST, "digest out");
	free(got);
	got = NULL;
	int64_t size = 0;
	ok(blob_exists(ctx, HELLO_DIGEST, &size) && size == 12, "blob exists with its size");
	struct buf b = BUF_INIT;
	ok(blob_read(ctx, HELLO_DIGEST, 100, &b, &err) == 0 && str_eq(buf_cstr(&b), HELLO), "read back");
	buf_release(&b);
	ok(blob_read(ctx, HELLO_DIGEST, 5, &b, &err) < 0 && err && strstr(err->msg, "larger than 5"), "read cap");
	buf_release(&b);
	capsa_error_free(err);
	err = NULL;

	/* mismatch: error names both, nothing kept */
	ok(blob_writer_open(ctx, OTHER_DIGEST, -1, false, &w, &err) == 0, "open writer (wrong digest)");
	blob_writer_write(w, HELLO, 12, &err);
	ok(blob_writer_commit(w, NULL, NULL, &err) < 0, "mismatch refused");
	ok(err && strstr(err->msg, OTHER_DIGEST) && strstr(err->msg, HELLO_DIGEST), "error names both digests: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	ok(!blob_exists(ctx, OTHER_DIGEST, NULL), "nothing stored under the expected digest");
	is_int(count_dir(root, "tmp"), 0, "no temporary file kept");
	is_int(count_dir(root, "blobs/sha256"), 1, "only the good blob in blobs/");

	/* more than the declared size */
	ok(blob_writer_open(ctx, HELLO_DIGEST, 5, false, &w, &err) == 0, "open writer (size 5)");
	ok(blob_writer_write(w, HELLO, 12, &err) < 0 && err && strstr(err->msg, "declared size"), "overlong stream refused");
	capsa_error_free(err);
	err = NULL;
	blob_writer_abort(w, false);
	is_int(count_dir(root, "tmp"), 0, "abort removes the temporary file");

	/* short stream */
	ok(blob_writer_open(ctx, NULL, 20, false, &w, &err) == 0, "open writer (size 20)");
	blob_writer_write(w, HELLO, 12, &err);
	ok(blob_writer_commit(w, NULL, NULL, &err) < 0 && err && strstr(err->msg, "declared size is 20"), "short stream refused");
	capsa_error_free(err);
	err = NULL;

	/* resume: a partial download is kept, re-hashed and continued */
	rm_rf_at(ctx->root_fd, "blobs/sha256/a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447", NULL);
	ok(!blob_exists(ctx, HELLO_DIGEST, NULL), "blob_exists checks the file");
	ok(blob_writer_open(ctx, HELLO_DIGEST, 12, true, &w, &err) == 0, "open resumable");
	is_int(blob_writer_offset(w), 0, "fresh download starts at 0");
	blob_writer_write(w, "hello", 5, &err);
	blob_writer_abort(w, true);
	is_int(count_dir(root, "tmp"), 1, "partial kept for resume");
	ok(blob_writer_open(ctx, HELLO_DIGEST, 12, true, &w, &err) == 0, "reopen resumable");
	is_int(blob_writer_offset(w), 5, "resumes after the 5 bytes present");
	blob_writer_write(w, " world\n", 7, &err);
	ok(blob_writer_commit(w, NULL, NULL, &err) == 0, "resumed blob verifies: %s", err ? err->msg : "");
	ok(blob_exists(ctx, HELLO_DIGEST, NULL), "resumed blob stored");
	is_int(count_dir(root, "tmp"), 0, "partial renamed away");

	/* a corrupt partial fails verification and is not kept */
	ok(blob_writer_open(ctx, OTHER_DIGEST, 12, true, &w, &err) == 0, "open resumable (bad)");
	blob_writer_write(w, HELLO, 12, &err);
	ok(blob_writer_commit(w, NULL, NULL, &err) < 0, "corrupt resumed blob refused");
	capsa_error_free(err);
	err = NULL;
	is_int(count_dir(root, "tmp"), 0, "corrupt partial removed");

	ok(blob_open(ctx, "sha256:../../etc", &err) < 0, "blob_open validates the digest");
	capsa_error_free(err);
	err = NULL;
	capsa_ctx_free(ctx);
	rm_rf_at(AT_FDCWD, tmpl, NULL);
	free(root);
	free(run);
	return done_testing();
}
