/* metrics.c: the supervisor's slot in the metrics registry
 * (lib/util/metrics.c, docs/metrics.md).
 *
 * Claimed once the sandbox's cgroup exists, sampled every second from the
 * cgroup (cpu, memory, pids, block I/O), the tunnel counters and the
 * filesystem of the writable layer, released when the sandbox ends (a
 * crash releases it too: the slot's lock dies with us).  A registry that
 * cannot be opened or is full costs the sandbox its statistics, never its
 * start: that is logged and the sandbox runs on.  Nothing here may block
 * for long: it runs in the supervisor's event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "supervisor.h"
#include "util/metrics.h"

#define SAMPLE_MS 1000

uint64_t sup_net_rx, sup_net_tx;

static struct metrics_map map = METRICS_MAP_INIT;
static struct metrics_writer writer;
static struct ev_timer timer;
static int upper_fd = -1;
static bool disk_own;
static uint64_t samples, last_cpu, last_mono;

static void mlog(const char *what, struct capsa_error *err)
{
	fprintf(stderr, "metrics: %s: %s\n", what, err ? err->msg : strerror(errno));
	capsa_error_free(err);
}

/* The overlay's upper directory (the writable layer) from the options the
 * library built: "...,upperdir=/abs/path,workdir=...". */
static char *upper_dir(void)
{
	const char *d = sup.spec.overlay_data;
	const char *p = d ? strstr(d, "upperdir=") : NULL;
	if (!p)
		return NULL;
	p += strlen("upperdir=");
	return xstrndup(p, strcspn(p, ","));
}

/* The writable layer is on a filesystem of its own (a --disk image) when it
 * is not on the filesystem of the sandbox's directory. */
static void open_upper(void)
{
	_cleanup_free_ char *up = upper_dir();
	if (!up)
		return;
	upper_fd = open(up, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat a, b;
	disk_own = upper_fd >= 0 && sup.spec.sandbox_dir && fstat(upper_fd, &a) == 0 &&
		   stat(sup.spec.sandbox_dir, &b) == 0 && a.st_dev != b.st_dev;
}

static void sample_disk(uint64_t *v)
{
	v[MV_DISK_USED] = v[MV_DISK_LIMIT] = v[MV_INODES_USED] = v[MV_INODES_LIMIT] = UINT64_MAX;
	struct statfs sf;
	if (upper_fd < 0 || fstatfs(upper_fd, &sf) < 0)
		return;
	uint64_t bs = sf.f_frsize ? (uint64_t)sf.f_frsize : (uint64_t)sf.f_bsize;
	v[MV_DISK_USED] = ((uint64_t)sf.f_blocks - (uint64_t)sf.f_bfree) * bs;
	if (sf.f_files > 0)
		v[MV_INODES_USED] = (uint64_t)sf.f_files - (uint64_t)sf.f_ffree;
	if (disk_own) {
		v[MV_DISK_LIMIT] = (uint64_t)sf.f_blocks * bs;
		if (sf.f_files > 0)
			v[MV_INODES_LIMIT] = (uint64_t)sf.f_files;
	}
}

static void sample(void)
{
	uint64_t v[MV_COUNT] = { 0 };
	struct linux_cgroup_stats cs = { 0 };
	uint64_t flags = disk_own ? METRICS_F_DISK_OWN : 0;
	if (linux_cgroup_mode() == CGROUP_MODE_V2)
		flags |= METRICS_F_CGROUP_V2;
	if (sup.state == SUP_PAUSED)
		flags |= METRICS_F_PAUSED;
	if (!sup.cg)
		flags |= METRICS_F_NO_CGROUP;
	if (sup.cg)
		linux_cgroup_stats(sup.cg, &cs);
	uint64_t mono = (uint64_t)mono_ns();
	v[MV_SUPERVISOR_PID] = (uint64_t)getpid();
	v[MV_STARTED_MS] = (uint64_t)sup.started_at;
	v[MV_SAMPLE_MONO_NS] = mono;
	v[MV_SAMPLE_MS] = (uint64_t)now_ms();
	v[MV_SAMPLES] = ++samples;
	v[MV_CPU_USAGE_NS] = cs.cpu_usage_ns;
	if (last_mono && mono > last_mono && cs.cpu_usage_ns >= last_cpu)
		v[MV_CPU_RATE] = (uint64_t)((double)(cs.cpu_usage_ns - last_cpu) * 1e9 / (double)(mono - last_mono));
	last_cpu = cs.cpu_usage_ns;
	last_mono = mono;
	v[MV_MEM_USAGE] = cs.memory_current;
	if (sup.cg)
		linux_cgroup_inactive_file(sup.cg, &v[MV_MEM_CACHE]);
	v[MV_MEM_LIMIT] = cs.memory_limit ? cs.memory_limit : UINT64_MAX;
	v[MV_MEM_PEAK] = cs.memory_max_usage;
	v[MV_PIDS] = cs.pids_current;
	v[MV_PIDS_LIMIT] = cs.pids_limit ? cs.pids_limit : UINT64_MAX;
	v[MV_IO_READ] = cs.io_read_bytes;
	v[MV_IO_WRITE] = cs.io_write_bytes;
	v[MV_NET_RX] = sup_net_rx;
	v[MV_NET_TX] = sup_net_tx;
	v[MV_OOM_KILLS] = cs.oom_kills;
	if (!sup.cg) {
		/* no cgroup counts these: unknown, not zero, to every reader */
		static const enum metrics_value cgroup_only[] = {
			MV_CPU_USAGE_NS, MV_CPU_RATE, MV_MEM_USAGE, MV_MEM_CACHE, MV_MEM_PEAK,
			MV_PIDS, MV_PIDS_LIMIT, MV_IO_READ, MV_IO_WRITE, MV_OOM_KILLS,
		};
		for (size_t i = 0; i < ARRAY_SIZE(cgroup_only); i++)
			v[cgroup_only[i]] = UINT64_MAX;
	}
	sample_disk(v);
	metrics_slot_publish(&writer, v, flags);
}

static void on_tick(struct ev_loop *l, struct ev_timer *t)
{
	sample();
	ev_timer_start(l, t, SAMPLE_MS, on_tick);
}

/* <run-root>/metrics: the sandbox's runtime directory is <run-root>/<id>. */
static char *registry_path(void)
{
	_cleanup_free_ char *root = xstrdup(sup.spec.run_dir);
	char *slash = strrchr(root, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return xasprintf("%s/metrics", *root ? root : "/");
}

void sup_metrics_start(void)
{
	struct capsa_error *err = NULL;
	_cleanup_free_ char *path = registry_path();
	if (!path)
		return;
	uint32_t slots = METRICS_DEFAULT_SLOTS;
	const char *env = getenv("CAPSA_METRICS_SLOTS");
	if (env && atol(env) > 0)
		slots = (uint32_t)atol(env);
	if (metrics_map_open_rw(path, slots, &map, &err) < 0) {
		mlog("no statistics for this sandbox", err);
		return;
	}
	if (metrics_slot_claim(&map, sup.spec.id, &writer, &err) < 0) {
		mlog("no statistics for this sandbox", err);
		metrics_map_close(&map);
		return;
	}
	open_upper();
	sample();
	ev_timer_start(&sup.loop, &timer, SAMPLE_MS, on_tick);
}

void sup_metrics_stop(void)
{
	if (timer.active)
		ev_timer_stop(&sup.loop, &timer);
	metrics_slot_release(&writer);
	metrics_map_close(&map);
	if (upper_fd >= 0)
		close(upper_fd);
	upper_fd = -1;
}
