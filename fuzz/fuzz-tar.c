/* fuzz-tar.c: the layer reader and validator (decompression sniffing,
 * libarchive parsing, name cleaning, confined creation) on arbitrary bytes.
 * Each input is unpacked into a fresh directory under /dev/shm that is
 * removed afterwards; escaping it would show up as files outside. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/unpack.h"
#include "util/fs.h"

static char base[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!base[0]) {
		snprintf(base, sizeof(base), "/dev/shm/capsa-fuzz-tar-XXXXXX");
		if (!mkdtemp(base))
			abort();
	}
	int fd = memfd_create("layer", MFD_CLOEXEC);
	if (fd < 0 || write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		abort();
	char dir[96];
	snprintf(dir, sizeof(dir), "%s/layer", base);
	if (mkdir(dir, 0700) < 0)
		abort();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct unpack_opts o = { .max_entries = 4096, .max_bytes = 64 << 20 };
	struct unpack_result res;
	struct capsa_error *err = NULL;
	layer_unpack(fd, dfd, &o, &res, &err);
	capsa_error_free(err);
	close(dfd);
	close(fd);
	err = NULL;
	if (rm_rf_at(AT_FDCWD, dir, &err) < 0)
		abort();
	/* nothing may appear next to the layer directory */
	int bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fdopendir(bfd);
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			abort();
	closedir(d);
	return 0;
}
