/* stats.h: reading the metrics registry of a context (stats.c). */
#ifndef CAPSA_SANDBOX_STATS_H
#define CAPSA_SANDBOX_STATS_H

#include "capsa/capsa.h"
#include "util/metrics.h"

/* Maps <run-root>/metrics read-only.  A registry that does not exist yet
 * (no sandbox ever ran under this runtime root) is an empty map, not an
 * error; a corrupt one is an error naming the file. */
int sandbox_metrics_open(struct capsa_ctx *ctx, struct metrics_map *m, struct capsa_error **err);

#endif
