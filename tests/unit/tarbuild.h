/* tarbuild.h: a minimal tar writer for the tests, byte by byte, so that
 * tests can build the hostile archives a real archiver refuses to write
 * (negative sizes, "../" names, truncated data). */
#ifndef CAPSA_TEST_TARBUILD_H
#define CAPSA_TEST_TARBUILD_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/str.h"

struct tar_ent {
	const char *name;
	char type;	   /* '0' file, '5' dir, '2' symlink, '1' hardlink, '3' chr, '4' blk, '6' fifo */
	unsigned mode;
	unsigned uid, gid;
	int64_t mtime;
	const char *data;  /* file content */
	size_t len;
	const char *link;  /* symlink/hardlink target */
	unsigned devmajor, devminor;
	const char *pax;   /* extra pax records "key=value\n..." (e.g. SCHILY.xattr.user.a=b) */
	int64_t raw_size;  /* when != 0: size field written as this (may lie) */
	int size_b256;	   /* write the size in base-256 (for negative/huge sizes) */
	size_t cut;	   /* when != 0: write only this many data bytes and stop the archive */
};

static inline void tb_octal(char *f, size_t w, uint64_t v)
{
	/* w-1 octal digits, zero-padded, then NUL */
	f[w - 1] = '\0';
	for (size_t i = w - 1; i-- > 0;) {
		f[i] = (char)('0' + (v & 7));
		v >>= 3;
	}
}

static inline void tb_header(struct buf *b, const char *name, char type, unsigned mode, unsigned uid, unsigned gid,
			     int64_t mtime, int64_t size, int b256, const char *link, unsigned maj, unsigned min)
{
	char h[512];
	memset(h, 0, sizeof(h));
	memcpy(h, name, strnlen(name, 100));
	tb_octal(h + 100, 8, mode);
	tb_octal(h + 108, 8, uid);
	tb_octal(h + 116, 8, gid);
	if (b256) {
		/* base-256: high bit set, big-endian two's complement */
		uint64_t v = (uint64_t)size;
		h[124] = (char)(size < 0 ? 0xff : 0x80);
		for (int i = 0; i < 8; i++)
			h[124 + 11 - i] = (char)((v >> (8 * i)) & 0xff);
		for (int i = 1; i < 4; i++)
			h[124 + i] = (char)(size < 0 ? 0xff : 0);
	} else {
		tb_octal(h + 124, 12, (uint64_t)size);
	}
	tb_octal(h + 136, 12, (uint64_t)mtime);
	memset(h + 148, ' ', 8);
	h[156] = type;
	if (link)
		memcpy(h + 157, link, strnlen(link, 100));
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	tb_octal(h + 329, 8, maj);
	tb_octal(h + 337, 8, min);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum);
	h[155] = ' ';
	buf_append(b, h, 512);
}

static inline void tb_pad(struct buf *b, size_t n)
{
	static const char zero[512];
	if (n % 512)
		buf_append(b, zero, 512 - n % 512);
}

static inline void tb_pax(struct buf *b, const char *recs)
{
	/* each "key=value\n" becomes "<len> key=value\n" */
	struct buf p = BUF_INIT;
	const char *s = recs;
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		size_t len = n + 3; /* ' ' + '\n' + at least one digit */
		for (;;) {
			char tmp[32];
			size_t d = (size_t)snprintf(tmp, sizeof(tmp), "%zu", len);
			if (d + n + 2 == len)
				break;
			len = d + n + 2;
		}
		buf_appendf(&p, "%zu %.*s\n", len, (int)n, s);
		s += n + (nl ? 1 : 0);
	}
	tb_header(b, "PaxHeader", 'x', 0644, 0, 0, 0, (int64_t)p.len, 0, NULL, 0, 0);
	buf_append(b, p.data, p.len);
	tb_pad(b, p.len);
	buf_release(&p);
}

/* Appends entries; returns 1 when an entry was cut (archive stops there). */
static inline int tb_add(struct buf *b, const struct tar_ent *e)
{
	if (e->pax)
		tb_pax(b, e->pax);
	int64_t size = e->raw_size ? e->raw_size : (int64_t)e->len;
	tb_header(b, e->name, e->type, e->mode ? e->mode : (e->type == '5' ? 0755 : 0644), e->uid, e->gid,
		  e->mtime ? e->mtime : 1700000000, size, e->size_b256, e->link, e->devmajor, e->devminor);
	if (e->cut) {
		buf_append(b, e->data, e->cut);
		return 1;
	}
	if (e->len) {
		buf_append(b, e->data, e->len);
		tb_pad(b, e->len);
	}
	return 0;
}

static inline void tb_end(struct buf *b)
{
	static const char zero[1024];
	buf_append(b, zero, sizeof(zero));
}

/* A whole archive from a NULL-name-terminated list. */
static inline void tb_build(struct buf *b, const struct tar_ent *ents)
{
	for (const struct tar_ent *e = ents; e->name; e++)
		if (tb_add(b, e))
			return;
	tb_end(b);
}

#endif
