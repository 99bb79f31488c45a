/* cgroup-stats.c: statistics beyond linux_cgroup_stats() that the metrics
 * sampler (supervisor/metrics.c) reads every second.  Read-only: never
 * writes a cgroup file. */
#include <stdint.h>
#include <string.h>

#include "cgroup-internal.h"

int linux_cgroup_inactive_file(struct linux_cgroup *cg, uint64_t *out)
{
	*out = 0;
	int fd = cg_dir(cg, "memory");
	if (fd < 0)
		return -1;
	/* v1's own inactive_file leaves out descendants; total_ has them */
	return cg_read_key(fd, "memory.stat", cg->mode == CGROUP_MODE_V2 ? "inactive_file" : "total_inactive_file",
			   out);
}
