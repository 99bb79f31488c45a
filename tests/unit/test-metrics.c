/* test-metrics.c: lib/util/metrics.c, the shared-memory metrics registry:
 * claim, publish, release, generation reuse, a dead owner, a full registry,
 * torn reads under a concurrent writer, and corrupt or truncated files. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "util/metrics.h"
#include "util/str.h"

static char dir[] = "/tmp/capsa-metrics-XXXXXX";

static char *reg_path(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static void sample(uint64_t *v, uint64_t k)
{
	for (size_t i = 0; i < MV_COUNT; i++)
		v[i] = k;
}

static void test_claim_release(void)
{
	_cleanup_free_ char *p = reg_path("a");
	struct metrics_map w = METRICS_MAP_INIT, r = METRICS_MAP_INIT;
	struct capsa_error *err = NULL;
	ok(metrics_map_open_rw(p, 3, &w, &err) == 0, "create a registry of 3 slots");
	struct stat stt;
	ok(stat(p, &stt) == 0 && stt.st_size == METRICS_HEADER_SIZE + 3 * METRICS_SLOT_SIZE, "its size");
	ok(metrics_map_open_ro(p, &r, &err) == 0 && r.slot_count == 3, "open it read-only");
	struct metrics_writer mw;
	ok(metrics_slot_claim(&w, "sandbox-one", &mw, &err) == 0 && mw.slot == 0 && mw.generation == 1,
	   "first claim: slot 0, generation 1");
	struct metrics_snapshot s;
	ok(metrics_find(&r, "sandbox-one", &s) == 1 && s.v[MV_CPU_USAGE_NS] == 0, "claimed slot is found, zeroed");
	uint64_t v[MV_COUNT];
	sample(v, 0);
	v[MV_CPU_USAGE_NS] = 12345;
	v[MV_MEM_LIMIT] = UINT64_MAX;
	metrics_slot_publish(&mw, v, METRICS_F_DISK_OWN);
	ok(metrics_find(&r, "sandbox-one", &s) == 1 && s.v[MV_CPU_USAGE_NS] == 12345 &&
		   s.v[MV_MEM_LIMIT] == UINT64_MAX && s.flags == METRICS_F_DISK_OWN && s.generation == 1,
	   "published sample is read back");
	ok(metrics_find(&r, "sandbox-two", &s) == 0, "unknown id not found");
	ok(metrics_find(&r, "sandbox-on", &s) == 0, "a prefix of an id does not match");
	is_int(metrics_hwm(&r), 1, "high-water mark");
	metrics_slot_release(&mw);
	ok(metrics_find(&r, "sandbox-one", &s) == 0, "released slot is not found");
	ok(metrics_reread(&r, 0, 1, &s) == 0, "reread of the released generation fails");
	metrics_slot_release(&mw);
	ok(1, "release is idempotent");

	/* the slot is reused with a new generation: a reader that followed
	 * generation 1 does not take the new sandbox for the old one */
	struct metrics_map w2 = METRICS_MAP_INIT;
	ok(metrics_map_open_rw(p, 99, &w2, &err) == 0 && w2.slot_count == 3, "second writer opens the existing file");
	struct metrics_writer mw2;
	ok(metrics_slot_claim(&w2, "sandbox-two", &mw2, &err) == 0 && mw2.slot == 0 && mw2.generation == 2,
	   "slot 0 reused with generation 2");
	ok(metrics_reread(&r, 0, 1, &s) == 0, "old generation not misread");
	ok(metrics_reread(&r, 0, 2, &s) == 1 && strcmp(s.id, "sandbox-two") == 0, "new generation read");
	metrics_slot_release(&mw2);
	metrics_map_close(&w2);
	metrics_map_close(&w);
	metrics_map_close(&r);
	capsa_error_free(err);
}

static void test_full(void)
{
	_cleanup_free_ char *p = reg_path("full");
	struct metrics_map w[3];
	struct metrics_writer mw[3];
	struct capsa_error *err = NULL;
	for (int i = 0; i < 2; i++) {
		char id[16];
		snprintf(id, sizeof(id), "sb-%d", i);
		ok(metrics_map_open_rw(p, 2, &w[i], &err) == 0 && metrics_slot_claim(&w[i], id, &mw[i], &err) == 0 &&
			   mw[i].slot == (uint32_t)i,
		   "claim %d of 2", i);
	}
	ok(metrics_map_open_rw(p, 2, &w[2], &err) == 0, "third writer opens");
	int rc = metrics_slot_claim(&w[2], "sb-2", &mw[2], &err);
	ok(rc < 0 && err && err->code == ENOSPC && strstr(err->msg, p) && strstr(err->msg, "full"), "full registry: %s",
	   err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	metrics_slot_release(&mw[1]);
	ok(metrics_slot_claim(&w[2], "sb-2", &mw[2], &err) == 0 && mw[2].slot == 1, "a released slot is claimed again");
	ok(metrics_slot_claim(&w[0], "", &mw[0], &err) < 0 && err && err->code == EINVAL, "empty id refused");
	capsa_error_free(err);
	for (int i = 0; i < 3; i++)
		metrics_map_close(&w[i]);
}

/* A writer that dies without releasing: its slot still says live, but its
 * lock died with it. */
static void test_dead_owner(void)
{
	_cleanup_free_ char *p = reg_path("dead");
	struct metrics_map r = METRICS_MAP_INIT;
	struct capsa_error *err = NULL;
	int sync[2];
	ok(pipe(sync) == 0, "pipe");
	pid_t pid = fork();
	if (pid == 0) {
		struct metrics_map w;
		struct metrics_writer mw;
		uint64_t v[MV_COUNT];
		sample(v, 7);
		if (metrics_map_open_rw(p, 4, &w, NULL) < 0 || metrics_slot_claim(&w, "doomed", &mw, NULL) < 0)
			_exit(1);
		metrics_slot_publish(&mw, v, 0);
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		pause(); /* killed with its slot held */
		_exit(0);
	}
	close(sync[1]);
	char c;
	ok(read(sync[0], &c, 1) == 1, "child claimed");
	close(sync[0]);
	struct metrics_snapshot s;
	ok(metrics_map_open_ro(p, &r, &err) == 0 && metrics_find(&r, "doomed", &s) == 1 && s.v[MV_PIDS] == 7,
	   "live owner's slot is read");
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	ok(metrics_find(&r, "doomed", &s) == 0, "a killed owner's slot is not live");
	ok(metrics_read(&r, 0, &s) == 0, "nor when read by index");
	struct metrics_map w = METRICS_MAP_INIT;
	struct metrics_writer mw;
	ok(metrics_map_open_rw(p, 4, &w, &err) == 0 && metrics_slot_claim(&w, "heir", &mw, &err) == 0 && mw.slot == 0 &&
		   mw.generation == 2,
	   "the dead owner's slot is recovered with a new generation");
	ok(metrics_find(&r, "heir", &s) == 1 && s.v[MV_PIDS] == 0, "and starts from zero");
	metrics_map_close(&w);
	metrics_map_close(&r);
}

/* A child publishes samples whose values are all the same number as fast as
 * it can; every copy the parent gets must be uniform. */
static void test_torn(void)
{
	_cleanup_free_ char *p = reg_path("torn");
	struct metrics_map w, r;
	struct metrics_writer mw;
	struct capsa_error *err = NULL;
	ok(metrics_map_open_rw(p, 2, &w, &err) == 0 && metrics_slot_claim(&w, "busy", &mw, &err) == 0, "claim");
	pid_t pid = fork();
	if (pid == 0) {
		uint64_t v[MV_COUNT];
		for (uint64_t k = 1;; k++) {
			sample(v, k);
			metrics_slot_publish(&mw, v, k);
		}
	}
	ok(metrics_map_open_ro(p, &r, &err) == 0, "reader");
	size_t reads = 0, torn = 0, distinct = 0;
	uint64_t last = 0;
	int64_t end = mono_ms() + 1500;
	while (mono_ms() < end && reads < 200000) {
		struct metrics_snapshot s;
		if (metrics_read(&r, mw.slot, &s) != 1)
			continue;
		reads++;
		for (size_t i = 1; i < MV_COUNT; i++)
			if (s.v[i] != s.v[0])
				torn++;
		if (s.flags != s.v[0])
			torn++;
		if (s.v[0] != last)
			distinct++;
		last = s.v[0];
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	diag("%zu reads, %zu distinct samples", reads, distinct);
	ok(reads > 100, "reads succeeded under a concurrent writer");
	ok(distinct > 1, "the writer made progress while read");
	is_int(torn, 0, "no torn sample");
	metrics_slot_release(&mw);
	metrics_map_close(&w);
	metrics_map_close(&r);
}

static void write_bytes(const char *p, const void *b, size_t n)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		if (write(fd, b, n) != (ssize_t)n)
			diag("short write");
		close(fd);
	}
}

static void expect_bad(const char *p, const char *what, const char *needle)
{
	struct metrics_map r;
	struct capsa_error *err = NULL;
	int rc = metrics_map_open_ro(p, &r, &err);
	ok(rc < 0 && err && err->code == EINVAL && strstr(err->msg, p) && strstr(err->msg, needle), "%s: %s", what,
	   err ? err->msg : "(opened)");
	if (rc == 0)
		metrics_map_close(&r);
	capsa_error_free(err);
}

static void test_corrupt(void)
{
	_cleanup_free_ char *p = reg_path("bad");
	struct metrics_map r;
	struct capsa_error *err = NULL;
	ok(metrics_map_open_ro(p, &r, &err) < 0 && err && err->code == ENOENT, "missing registry: ENOENT");
	capsa_error_free(err);
	err = NULL;
	write_bytes(p, "", 0);
	expect_bad(p, "empty file", "truncated");
	char junk[4096];
	memset(junk, 'x', sizeof(junk));
	write_bytes(p, junk, sizeof(junk));
	expect_bad(p, "garbage", "bad magic");

	uint64_t h[METRICS_HEADER_SIZE / 8] = { 0 };
	memcpy(h, METRICS_MAGIC, 8);
	h[MH_VERSION] = 99;
	h[MH_HEADER_SIZE] = METRICS_HEADER_SIZE;
	h[MH_SLOT_SIZE] = METRICS_SLOT_SIZE;
	h[MH_SLOT_COUNT] = 4;
	write_bytes(p, h, sizeof(h));
	expect_bad(p, "future version", "version 99");
	h[MH_VERSION] = METRICS_VERSION;
	write_bytes(p, h, sizeof(h));
	expect_bad(p, "truncated after the header", "truncated");
	h[MH_SLOT_COUNT] = UINT64_MAX / 2;
	write_bytes(p, h, sizeof(h));
	expect_bad(p, "absurd slot count", "corrupt header");
	h[MH_SLOT_COUNT] = 4;
	h[MH_SLOT_SIZE] = 7;
	write_bytes(p, h, sizeof(h));
	expect_bad(p, "bad slot size", "corrupt header");

	/* a valid file cut short by a crash of whoever copied it */
	_cleanup_free_ char *q = reg_path("cut");
	struct metrics_map w;
	ok(metrics_map_open_rw(q, 8, &w, &err) == 0, "create");
	metrics_map_close(&w);
	ok(truncate(q, METRICS_HEADER_SIZE + 3 * METRICS_SLOT_SIZE) == 0, "truncate");
	expect_bad(q, "truncated registry", "truncated");
	int rc = metrics_map_open_rw(q, 8, &w, &err);
	ok(rc < 0 && err && strstr(err->msg, "truncated"), "a writer refuses it too: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	ok(metrics_map_open_rw(p, 0, &w, &err) < 0, "a writer refuses a corrupt file");
	capsa_error_free(err);
	err = NULL;
	_cleanup_free_ char *z = reg_path("zero");
	rc = metrics_map_open_rw(z, 0, &w, &err);
	ok(rc < 0 && err && err->code == EINVAL, "zero slots refused: %s", err ? err->msg : "");
	capsa_error_free(err);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_claim_release();
	test_full();
	test_dead_owner();
	test_torn();
	test_corrupt();
	_cleanup_free_ char *cmd = xasprintf("rm -rf %s", dir);
	if (system(cmd) != 0)
		diag("cleanup failed");
	return done_testing();
}
