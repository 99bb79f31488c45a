/* metrics.h: the shared-memory metrics registry (docs/metrics.md).
 *
 * One file, <run-root>/metrics, mmap'd by every supervisor (writers, one
 * slot each) and by `capsa stats`, `capsa serve` and the library (readers,
 * which never talk to a supervisor).  Everything in it is a native-endian
 * 64-bit word: a header, then slot_count fixed-size slots.
 *
 * Ownership of a slot is an OFD lock on the slot's first byte (the same
 * idea as the sandbox's lock file: a dead holder's lock is free, so a
 * crashed supervisor's slot is never taken for live); its content is
 * published under a seqlock, so a reader never sees a torn sample; a slot's
 * generation goes up at every claim, so a reader holding (slot, generation)
 * never reads a later sandbox's numbers as those of the one it followed.
 * libc only: the supervisor is a musl static binary.
 */
#ifndef CAPSA_UTIL_METRICS_H
#define CAPSA_UTIL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define METRICS_MAGIC "CAPSAMET" /* the file's first 8 bytes */
#define METRICS_VERSION 1
#define METRICS_HEADER_SIZE 512
#define METRICS_SLOT_SIZE 512
#define METRICS_DEFAULT_SLOTS 4096
#define METRICS_MAX_SLOTS (1u << 20)

/* Header words. */
enum {
	MH_MAGIC,
	MH_VERSION,
	MH_HEADER_SIZE,
	MH_SLOT_SIZE,
	MH_SLOT_COUNT,
	MH_HWM,	       /* slots [0, hwm) have been claimed at least once */
	MH_CREATED_MS, /* CLOCK_REALTIME, ms */
};

/* Slot words before the values. */
enum {
	MS_SEQ,	     /* seqlock: odd while the owner writes */
	MS_GEN,	     /* +1 at every claim */
	MS_STATE,    /* METRICS_FREE, METRICS_LIVE */
	MS_FLAGS,    /* METRICS_F_* */
	MS_NVALUES,  /* how many of the values below the writer fills */
	MS_ID,	     /* 9 words: the sandbox id, NUL-terminated (64 hex) */
	MS_VALUES = MS_ID + 9,
};
#define METRICS_ID_MAX 71

enum { METRICS_FREE = 0, METRICS_LIVE = 1 };

/* flags */
#define METRICS_F_DISK_OWN (1u << 0) /* disk figures are the sandbox's own filesystem (a --disk limit) */
#define METRICS_F_PAUSED (1u << 1)
#define METRICS_F_CGROUP_V2 (1u << 2)
#define METRICS_F_NO_CGROUP (1u << 3) /* no cgroup (rootless, none delegated): cpu, memory, pids, I/O unknown */

/* The values, in slot order (word MS_VALUES + index).  Only ever appended
 * to: a reader of an older build ignores the ones it does not know, and
 * one of a newer build sees how many were filled (MS_NVALUES).  "Unknown"
 * and "no limit" are UINT64_MAX. */
enum metrics_value {
	MV_SUPERVISOR_PID,
	MV_STARTED_MS,	   /* when the slot was claimed, CLOCK_REALTIME ms */
	MV_SAMPLE_MONO_NS, /* CLOCK_MONOTONIC of the last sample */
	MV_SAMPLE_MS,	   /* CLOCK_REALTIME ms of the last sample */
	MV_SAMPLES,	   /* samples taken so far */
	MV_CPU_USAGE_NS,   /* cumulative */
	MV_CPU_RATE,	   /* CPU ns per second over the last interval (1e9 = one CPU) */
	MV_MEM_USAGE,	   /* bytes charged (cgroup memory.current / usage_in_bytes) */
	MV_MEM_CACHE,	   /* inactive file pages in that (reclaimable) */
	MV_MEM_LIMIT,
	MV_MEM_PEAK,
	MV_PIDS,
	MV_PIDS_LIMIT,
	MV_IO_READ,	   /* block I/O bytes */
	MV_IO_WRITE,
	MV_NET_RX,	   /* tunnel and published-port bytes into the sandbox */
	MV_NET_TX,	   /* and out of it */
	MV_DISK_USED,	   /* bytes used on the writable layer's filesystem */
	MV_DISK_LIMIT,	   /* its size when it is the sandbox's own, else unknown */
	MV_INODES_USED,
	MV_INODES_LIMIT,
	MV_OOM_KILLS,
	MV_COUNT,
};
#define METRICS_VALUES_MAX ((METRICS_SLOT_SIZE / 8) - MS_VALUES)

/* A mapping of the registry (base NULL: none, which reads as empty). */
struct metrics_map {
	int fd;
	uint64_t *base;
	size_t len;
	uint32_t slot_count, slot_words, header_words;
	bool writable;
	char *path;
};
#define METRICS_MAP_INIT { .fd = -1 }

/* One consistent copy of a slot. */
struct metrics_snapshot {
	uint32_t slot;
	uint64_t generation;
	uint64_t flags;
	char id[METRICS_ID_MAX + 1];
	uint64_t v[MV_COUNT];
};

/* A supervisor's claimed slot. */
struct metrics_writer {
	struct metrics_map *map;
	uint32_t slot;
	uint64_t generation;
	bool claimed;
};

/* Opens the registry for writing, creating it with slot_count slots when it
 * does not exist (a fully initialized file appears atomically). */
int metrics_map_open_rw(const char *path, uint32_t slot_count, struct metrics_map *m, struct capsa_error **err);
/* Opens it for reading.  ENOENT (no error message worth showing: nothing
 * has been registered yet) when the file does not exist; EINVAL naming the
 * file and the reason when it is not a registry, truncated or corrupt. */
int metrics_map_open_ro(const char *path, struct metrics_map *m, struct capsa_error **err);
void metrics_map_close(struct metrics_map *m);
/* Bound on the slots ever claimed: readers scan [0, hwm). */
uint32_t metrics_hwm(const struct metrics_map *m);

/* Claims a free slot (or one whose owner died) for sandbox id.  ENOSPC when
 * every slot is held by a live owner. */
int metrics_slot_claim(struct metrics_map *m, const char *id, struct metrics_writer *w, struct capsa_error **err);
/* Publishes a sample (v[MV_COUNT]) and flags under the seqlock. */
void metrics_slot_publish(struct metrics_writer *w, const uint64_t *v, uint64_t flags);
/* Marks the slot free and drops its lock.  Idempotent. */
void metrics_slot_release(struct metrics_writer *w);

/* Copies slot i if it is live: 1; 0 when it is free, its owner is dead or
 * it is being written too often to copy (retried a bounded number of
 * times). */
int metrics_read(const struct metrics_map *m, uint32_t slot, struct metrics_snapshot *out);
/* Re-reads a slot followed before: 1 only while it still holds the same
 * generation (the same sandbox). */
int metrics_reread(const struct metrics_map *m, uint32_t slot, uint64_t generation, struct metrics_snapshot *out);
/* The live slot of sandbox id: 1 found, 0 not. */
int metrics_find(const struct metrics_map *m, const char *id, struct metrics_snapshot *out);

#endif
