/* decomp.c: gzip/zstd/plain layer streams with a running SHA-256 of the
 * uncompressed bytes (see decomp.h). */
#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "image/decomp.h"
#include "util/fs.h"
#include "util/str.h"

#define IN_CHUNK (1u << 20)
#define OUT_CHUNK (1u << 20)

struct layer_reader {
	int fd;
	enum layer_compression comp;
	bool sniffed, in_eof, done;
	unsigned char *in;   /* the current input buffer (one of inbuf[]) */
	size_t in_pos, in_len;
	unsigned char *inbuf[2];
	unsigned char *outbuf[2];
	int in_slot, out_slot;
	uint64_t in_total, out_total;
	/* The last two chunks handed out stay valid (buffers alternate), so
	 * that a failing tar header can still be read for its name. */
	struct {
		const unsigned char *p;
		uint64_t off;
		size_t len;
	} kept[2];
	z_stream z;
	bool z_init, z_member_done;
	ZSTD_DStream *zs;
	size_t zs_last; /* last ZSTD_decompressStream result: 0 at a frame boundary */
	EVP_MD_CTX *md;
};

const char *layer_compression_name(enum layer_compression c)
{
	switch (c) {
	case LAYER_GZIP:
		return "gzip";
	case LAYER_ZSTD:
		return "zstd";
	case LAYER_PLAIN:
		return "tar";
	default:
		return "unknown";
	}
}

struct layer_reader *layer_reader_new(int fd)
{
	struct layer_reader *r = xcalloc(1, sizeof(*r));
	r->fd = fd;
	r->inbuf[0] = xmalloc(IN_CHUNK);
	r->inbuf[1] = xmalloc(IN_CHUNK);
	r->outbuf[0] = xmalloc(OUT_CHUNK);
	r->outbuf[1] = xmalloc(OUT_CHUNK);
	r->in = r->inbuf[0];
	r->md = EVP_MD_CTX_new();
	if (!r->md || EVP_DigestInit_ex(r->md, EVP_sha256(), NULL) != 1)
		abort();
	return r;
}

void layer_reader_free(struct layer_reader *r)
{
	if (!r)
		return;
	if (r->z_init)
		inflateEnd(&r->z);
	ZSTD_freeDStream(r->zs);
	EVP_MD_CTX_free(r->md);
	for (int i = 0; i < 2; i++) {
		free(r->inbuf[i]);
		free(r->outbuf[i]);
	}
	free(r);
}

enum layer_compression layer_reader_compression(const struct layer_reader *r)
{
	return r->comp;
}

uint64_t layer_reader_in_bytes(const struct layer_reader *r)
{
	return r->in_total;
}

uint64_t layer_reader_out_bytes(const struct layer_reader *r)
{
	return r->out_total;
}

/* Refills the input buffer when it is empty; returns 0 at EOF. */
static ssize_t fill(struct layer_reader *r, struct capsa_error **err)
{
	if (r->in_pos < r->in_len)
		return (ssize_t)(r->in_len - r->in_pos);
	if (r->in_eof)
		return 0;
	/* plain streams hand out the input buffer itself: alternate */
	if (r->comp == LAYER_PLAIN && r->sniffed) {
		r->in_slot ^= 1;
		r->in = r->inbuf[r->in_slot];
	}
	ssize_t n = read_full(r->fd, r->in, IN_CHUNK);
	if (n < 0)
		return error_sys(err, errno, "read layer");
	if ((size_t)n < IN_CHUNK)
		r->in_eof = true;
	r->in_pos = 0;
	r->in_len = (size_t)n;
	r->in_total += (uint64_t)n;
	return n;
}

static int sniff(struct layer_reader *r, struct capsa_error **err)
{
	r->sniffed = true;
	if (fill(r, err) < 0)
		return -1;
	const unsigned char *p = r->in;
	size_t n = r->in_len;
	if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
		r->comp = LAYER_GZIP;
		if (inflateInit2(&r->z, 16 + MAX_WBITS) != Z_OK)
			return error_set(err, ENOMEM, "gzip: cannot initialize");
		r->z_init = true;
	} else if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) {
		r->comp = LAYER_ZSTD;
		r->zs = ZSTD_createDStream();
		if (!r->zs)
			return error_set(err, ENOMEM, "zstd: cannot initialize");
		/* cap the window (memory) a hostile frame can ask for: 128 MiB */
		ZSTD_DCtx_setParameter(r->zs, ZSTD_d_windowLogMax, 27);
		r->zs_last = 0;
	} else {
		r->comp = LAYER_PLAIN;
	}
	return 0;
}

static ssize_t read_gzip(struct layer_reader *r, struct capsa_error **err)
{
	for (;;) {
		ssize_t avail = fill(r, err);
		if (avail < 0)
			return -1;
		if (r->z_member_done) {
			/* another member may follow (concatenated gzip files) */
			if (avail == 0)
				return 0;
			if (r->in[r->in_pos] != 0x1f)
				return error_set(err, EINVAL, "gzip: trailing garbage after the compressed stream");
			inflateReset(&r->z);
			r->z_member_done = false;
		}
		if (avail == 0)
			return error_set(err, EINVAL, "truncated gzip stream (unexpected end of data)");
		r->z.next_in = r->in + r->in_pos;
		r->z.avail_in = (uInt)avail;
		r->z.next_out = r->outbuf[r->out_slot];
		r->z.avail_out = OUT_CHUNK;
		int zr = inflate(&r->z, Z_NO_FLUSH);
		r->in_pos = r->in_len - r->z.avail_in;
		size_t produced = OUT_CHUNK - r->z.avail_out;
		if (zr == Z_STREAM_END)
			r->z_member_done = true;
		else if (zr != Z_OK && zr != Z_BUF_ERROR)
			return error_set(err, EINVAL, "corrupt gzip stream: %s", r->z.msg ? r->z.msg : "inflate error");
		if (produced)
			return (ssize_t)produced;
	}
}

static ssize_t read_zstd(struct layer_reader *r, struct capsa_error **err)
{
	for (;;) {
		ssize_t avail = fill(r, err);
		if (avail < 0)
			return -1;
		if (avail == 0 && r->zs_last == 0)
			return 0;
		ZSTD_inBuffer in = { r->in + r->in_pos, (size_t)avail, 0 };
		ZSTD_outBuffer out = { r->outbuf[r->out_slot], OUT_CHUNK, 0 };
		size_t zr = ZSTD_decompressStream(r->zs, &out, &in);
		r->in_pos += in.pos;
		if (ZSTD_isError(zr))
			return error_set(err, EINVAL, "corrupt zstd stream: %s", ZSTD_getErrorName(zr));
		r->zs_last = zr;
		if (out.pos)
			return (ssize_t)out.pos;
		if (avail == 0)
			return error_set(err, EINVAL, "truncated zstd stream (unexpected end of data)");
	}
}

ssize_t layer_reader_read(struct layer_reader *r, const void **p, struct capsa_error **err)
{
	if (!r->sniffed && sniff(r, err) < 0)
		return -1;
	if (r->done)
		return 0;
	ssize_t n;
	if (r->comp == LAYER_PLAIN) {
		n = fill(r, err);
		if (n > 0) {
			*p = r->in + r->in_pos;
			r->in_pos = r->in_len;
		}
	} else {
		r->out_slot ^= 1;
		n = r->comp == LAYER_GZIP ? read_gzip(r, err) : read_zstd(r, err);
		if (n > 0)
			*p = r->outbuf[r->out_slot];
	}
	if (n < 0)
		return -1;
	if (n == 0) {
		r->done = true;
		return 0;
	}
	EVP_DigestUpdate(r->md, *p, (size_t)n);
	r->kept[0] = r->kept[1];
	r->kept[1].p = *p;
	r->kept[1].off = r->out_total;
	r->kept[1].len = (size_t)n;
	r->out_total += (uint64_t)n;
	return n;
}

size_t layer_reader_peek(const struct layer_reader *r, uint64_t off, void *dst, size_t n)
{
	size_t got = 0;
	for (int i = 0; i < 2 && got < n; i++) {
		uint64_t want = off + got;
		if (!r->kept[i].p || want < r->kept[i].off || want >= r->kept[i].off + r->kept[i].len)
			continue;
		size_t from = (size_t)(want - r->kept[i].off);
		size_t k = MIN(n - got, r->kept[i].len - from);
		memcpy((char *)dst + got, r->kept[i].p + from, k);
		got += k;
	}
	return got;
}

int layer_reader_finish(struct layer_reader *r, char digest[72], struct capsa_error **err)
{
	const void *p;
	ssize_t n;
	while ((n = layer_reader_read(r, &p, err)) > 0)
		;
	if (n < 0)
		return -1;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_DigestFinal_ex(r->md, md, &len);
	memcpy(digest, "sha256:", 7);
	hex_encode(md, 32, digest + 7);
	return 0;
}
