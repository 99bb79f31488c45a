/* image-mount.c: how long mounting a sandbox rootfs from a cached image
 * takes, through the library calls the runtime uses:
 *   resolve   image_resolve (SQLite lookup + config parse)
 *   mount     image_overlay_options + overlay mount with a fresh upper/work
 *   api       capsa_image_mount_rootfs (resolve, record, mount)
 * Usage: bench-image-mount ROOT REF [ITERATIONS]; prints medians in ms. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "util/fs.h"
#include "util/str.h"

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double median_ms(int64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return (double)v[n / 2] / 1e6;
}

static void die(struct capsa_error *err)
{
	fprintf(stderr, "bench-image-mount: %s\n", err ? err->msg : "failed");
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench-image-mount ROOT REF [ITERATIONS]\n");
		return 2;
	}
	int n = argc > 3 ? atoi(argv[3]) : 200;
	if (n < 1)
		n = 1;
	struct capsa_ctx_opts o = { .root = argv[1], .run_root = "/run/capsa-bench" };
	struct capsa_ctx *ctx;
	struct capsa_error *err = NULL;
	if (capsa_ctx_open(&o, &ctx, &err) < 0)
		die(err);
	char base[] = "/tmp/capsa-mount-bench-XXXXXX";
	if (!mkdtemp(base))
		return 1;
	int64_t *t_resolve = xcalloc((size_t)n, sizeof(int64_t));
	int64_t *t_mount = xcalloc((size_t)n, sizeof(int64_t));
	int64_t *t_api = xcalloc((size_t)n, sizeof(int64_t));
	char *target = xasprintf("%s/rootfs", base);
	mkdir(target, 0755);
	for (int i = 0; i < n; i++) {
		char *upper = xasprintf("%s/u%d", base, i), *work = xasprintf("%s/w%d", base, i);
		mkdir(upper, 0755);
		mkdir(work, 0755);
		int64_t t0 = mono_ns();
		struct image *img;
		if (image_resolve(ctx, argv[2], &img, &err) < 0)
			die(err);
		int64_t t1 = mono_ns();
		if (image_overlay_mount(ctx, img, upper, work, target, &err) < 0)
			die(err);
		int64_t t2 = mono_ns();
		t_resolve[i] = t1 - t0;
		t_mount[i] = t2 - t0;
		umount2(target, MNT_DETACH);
		image_free(img);
		rm_rf_at(AT_FDCWD, upper, NULL);
		rm_rf_at(AT_FDCWD, work, NULL);
		int64_t t3 = mono_ns();
		if (capsa_image_mount_rootfs(ctx, argv[2], NULL, NULL, target, &err) < 0)
			die(err);
		t_api[i] = mono_ns() - t3;
		if (capsa_image_umount_rootfs(target, &err) < 0)
			die(err);
		free(upper);
		free(work);
	}
	printf("resolve (image_resolve)                 median %.3f ms\n", median_ms(t_resolve, n));
	printf("sandbox rootfs (resolve + overlay rw)   median %.3f ms\n", median_ms(t_mount, n));
	printf("capsa_image_mount_rootfs (ro, recorded) median %.3f ms\n", median_ms(t_api, n));
	rm_rf_at(AT_FDCWD, base, NULL);
	capsa_ctx_free(ctx);
	return 0;
}
