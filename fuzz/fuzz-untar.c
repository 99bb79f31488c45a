/* fuzz-untar.c: the tar extractor `capsa cp` and the API's tar upload use
 * (lib/util/untar.c), on hostile streams: it must never crash, and never
 * create anything outside the directory it extracts into. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[] = "/tmp/capsa-fuzz-untar-XXXXXX";

static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		if (!mkdtemp(base))
			abort();
		init = true;
	}
	char root[64], outside[64];
	snprintf(root, sizeof(root), "%s/root", base);
	snprintf(outside, sizeof(outside), "%s/outside", base);
	mkdir(root, 0755);
	mkdir(outside, 0755);
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		abort();
	struct tarx x;
	struct tarx_opts o = { .root_fd = fd, .dir = "sub", .res = RES_IN_ROOT, .strip_setid = true };
	mkdirat(fd, "sub", 0755);
	tarx_init(&x, &o);
	struct capsa_error *err = NULL;
	/* two pieces: the state machine must not care where a read ends */
	size_t cut = size / 3;
	if (tarx_feed(&x, data, cut, &err) == 0 && tarx_feed(&x, data + cut, size - cut, &err) == 0)
		tarx_finish(&x, &err);
	capsa_error_free(err);
	tarx_release(&x);
	close(fd);
	/* nothing beside root/sub may have appeared */
	if (entries(outside) != 0 || entries(base) != 2 || entries(root) != 1)
		abort();
	rm_rf_at(AT_FDCWD, root, NULL);
	return 0;
}
