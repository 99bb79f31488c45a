/* metrics.c: the shared-memory metrics registry (metrics.h, docs/metrics.md).
 *
 * Owns the file's creation, validation and mapping, slot claim and release
 * (OFD locks), and the seqlock protocol between the one writer of a slot
 * and any number of readers.  It must never trust the file: readers check
 * every header field against the file's size before mapping it, so a
 * corrupt or truncated registry is an error naming the file, never a crash.
 *
 * Two lock bytes per slot, both OFD write locks held by the writer:
 *   byte 0 of the slot (OWN): held for the slot's whole life;
 *   byte 1 of the slot (CLAIM): held only while claiming (lock CLAIM, lock
 *   OWN, write generation/id/state, unlock CLAIM).
 * A reader accepts a slot as live only if, between two identical reads of
 * its sequence, OWN was held and CLAIM was not: so the holder of OWN it saw
 * is the owner of the generation it copied, not a new claimer of a slot
 * whose old owner crashed.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/metrics.h"
#include "util/str.h"

#define LOCK_OWN 0
#define LOCK_CLAIM 1
#define READ_TRIES 64

static uint64_t *slot_ptr(const struct metrics_map *m, uint32_t i)
{
	return m->base + m->header_words + (size_t)i * m->slot_words;
}

static off_t slot_off(const struct metrics_map *m, uint32_t i)
{
	return (off_t)m->header_words * 8 + (off_t)i * m->slot_words * 8;
}

/* OFD lock on one byte: F_OFD_SETLK (type F_WRLCK/F_UNLCK), or a test
 * (F_OFD_GETLK): 1 when another open file holds it. */
static int ofd_set(int fd, off_t off, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = off, .l_len = 1 };
	return fcntl(fd, F_OFD_SETLK, &fl);
}

static int ofd_held(int fd, off_t off)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1 };
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -1;
	return fl.l_type != F_UNLCK;
}

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void st(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* --- the file --------------------------------------------------------- */

static void header_init(uint64_t *h, uint32_t slot_count)
{
	memcpy(&h[MH_MAGIC], METRICS_MAGIC, 8);
	h[MH_VERSION] = METRICS_VERSION;
	h[MH_HEADER_SIZE] = METRICS_HEADER_SIZE;
	h[MH_SLOT_SIZE] = METRICS_SLOT_SIZE;
	h[MH_SLOT_COUNT] = slot_count;
	h[MH_HWM] = 0;
	h[MH_CREATED_MS] = (uint64_t)now_ms();
}

/* Creates the file under a temporary name, initialized, then links it into
 * place: whoever opens path sees a whole registry or none.  Losing the race
 * to another creator is success. */
static int registry_create(const char *path, uint32_t slot_count, struct capsa_error **err)
{
	if (slot_count == 0 || slot_count > METRICS_MAX_SLOTS)
		return error_set(err, EINVAL, "metrics registry %s: %u slots: must be 1 to %u", path, slot_count,
				 METRICS_MAX_SLOTS);
	_cleanup_free_ char *tmp = xasprintf("%s.%d.tmp", path, (int)getpid());
	unlink(tmp);
	_cleanup_close_ int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_sys(err, errno, "create metrics registry %s", tmp);
	uint64_t h[METRICS_HEADER_SIZE / 8] = { 0 };
	header_init(h, slot_count);
	off_t size = METRICS_HEADER_SIZE + (off_t)slot_count * METRICS_SLOT_SIZE;
	int rc = 0;
	if (ftruncate(fd, size) < 0 || pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		rc = error_sys(err, errno, "initialize metrics registry %s", tmp);
	else if (link(tmp, path) < 0 && errno != EEXIST)
		rc = error_sys(err, errno, "create metrics registry %s", path);
	unlink(tmp);
	return rc;
}

/* Checks the header against the file before anything is mapped. */
static int registry_check(struct metrics_map *m, off_t size, struct capsa_error **err)
{
	uint64_t h[MH_CREATED_MS + 1];
	if (size < (off_t)sizeof(h) || pread(m->fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return error_set(err, EINVAL, "metrics registry %s: truncated (%lld bytes, no header)", m->path,
				 (long long)size);
	if (memcmp(&h[MH_MAGIC], METRICS_MAGIC, 8) != 0)
		return error_set(err, EINVAL, "metrics registry %s: not a registry (bad magic)", m->path);
	if (h[MH_VERSION] != METRICS_VERSION)
		return error_set(err, EINVAL, "metrics registry %s: version %llu, this build reads version %d",
				 m->path, (unsigned long long)h[MH_VERSION], METRICS_VERSION);
	uint64_t hs = h[MH_HEADER_SIZE], ss = h[MH_SLOT_SIZE], n = h[MH_SLOT_COUNT];
	if (hs < METRICS_HEADER_SIZE || hs > (1u << 20) || hs % 8 || ss < METRICS_SLOT_SIZE || ss > (1u << 16) ||
	    ss % 8)
		return error_set(err, EINVAL, "metrics registry %s: corrupt header (header size %llu, slot size %llu)",
				 m->path, (unsigned long long)hs, (unsigned long long)ss);
	if (n == 0 || n > METRICS_MAX_SLOTS)
		return error_set(err, EINVAL, "metrics registry %s: corrupt header (%llu slots)", m->path,
				 (unsigned long long)n);
	uint64_t need = hs + n * ss;
	if ((uint64_t)size < need)
		return error_set(err, EINVAL, "metrics registry %s: truncated (%lld bytes, the header says %llu)",
				 m->path, (long long)size, (unsigned long long)need);
	m->header_words = (uint32_t)(hs / 8);
	m->slot_words = (uint32_t)(ss / 8);
	m->slot_count = (uint32_t)n;
	m->len = (size_t)need;
	return 0;
}

static int map_open(const char *path, bool rw, struct metrics_map *m, struct capsa_error **err)
{
	*m = (struct metrics_map)METRICS_MAP_INIT;
	m->path = xstrdup(path);
	m->writable = rw;
	m->fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
	if (m->fd < 0) {
		int e = errno;
		metrics_map_close(m);
		return error_sys(err, e, "open metrics registry %s", path);
	}
	struct stat stt;
	if (fstat(m->fd, &stt) < 0 || !S_ISREG(stt.st_mode)) {
		metrics_map_close(m);
		return error_set(err, EINVAL, "metrics registry %s: not a regular file", path);
	}
	if (registry_check(m, stt.st_size, err) < 0) {
		metrics_map_close(m);
		return -1;
	}
	void *p = mmap(NULL, m->len, PROT_READ | (rw ? PROT_WRITE : 0), MAP_SHARED, m->fd, 0);
	if (p == MAP_FAILED) {
		int e = errno;
		metrics_map_close(m);
		return error_sys(err, e, "map metrics registry %s", path);
	}
	m->base = p;
	return 0;
}

int metrics_map_open_rw(const char *path, uint32_t slot_count, struct metrics_map *m, struct capsa_error **err)
{
	if (access(path, F_OK) < 0 && errno == ENOENT && registry_create(path, slot_count, err) < 0)
		return -1;
	return map_open(path, true, m, err);
}

int metrics_map_open_ro(const char *path, struct metrics_map *m, struct capsa_error **err)
{
	return map_open(path, false, m, err);
}

void metrics_map_close(struct metrics_map *m)
{
	if (m->base)
		munmap(m->base, m->len);
	if (m->fd >= 0)
		close(m->fd);
	free(m->path);
	*m = (struct metrics_map)METRICS_MAP_INIT;
}

uint32_t metrics_hwm(const struct metrics_map *m)
{
	if (!m->base)
		return 0;
	uint64_t h = __atomic_load_n(&m->base[MH_HWM], __ATOMIC_ACQUIRE);
	return h > m->slot_count ? m->slot_count : (uint32_t)h;
}

/* --- writer ------------------------------------------------------------ */

static uint64_t write_begin(uint64_t *s)
{
	uint64_t seq = ld(&s[MS_SEQ]);
	/* odd: a writer died in the middle; skip to the next odd value */
	seq += (seq & 1) ? 2 : 1;
	st(&s[MS_SEQ], seq);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	return seq;
}

static void write_end(uint64_t *s, uint64_t seq)
{
	__atomic_store_n(&s[MS_SEQ], seq + 1, __ATOMIC_RELEASE);
}

static void hwm_raise(struct metrics_map *m, uint32_t to)
{
	uint64_t cur = __atomic_load_n(&m->base[MH_HWM], __ATOMIC_RELAXED);
	while (cur < to && !__atomic_compare_exchange_n(&m->base[MH_HWM], &cur, to, false, __ATOMIC_RELEASE,
							 __ATOMIC_RELAXED)) {
	}
}

/* Takes slot i if nobody live owns it: CLAIM, then OWN; the caller writes
 * and drops CLAIM. */
static bool try_take(struct metrics_map *m, uint32_t i)
{
	off_t off = slot_off(m, i);
	if (ofd_set(m->fd, off + LOCK_CLAIM, F_WRLCK) < 0)
		return false;
	if (ofd_set(m->fd, off + LOCK_OWN, F_WRLCK) < 0) {
		ofd_set(m->fd, off + LOCK_CLAIM, F_UNLCK);
		return false;
	}
	return true;
}

int metrics_slot_claim(struct metrics_map *m, const char *id, struct metrics_writer *w, struct capsa_error **err)
{
	*w = (struct metrics_writer){ .map = m };
	if (!m->writable)
		return error_set(err, EBADF, "metrics registry %s: opened read-only", m->path);
	if (!id || !*id || strlen(id) > METRICS_ID_MAX)
		return error_set(err, EINVAL, "metrics registry %s: sandbox id '%s': empty or too long", m->path,
				 id ? id : "");
	for (uint32_t i = 0; i < m->slot_count; i++) {
		uint64_t *s = slot_ptr(m, i);
		/* a live-looking slot is tested first: most are really live */
		if (ld(&s[MS_STATE]) == METRICS_LIVE && ofd_held(m->fd, slot_off(m, i) + LOCK_OWN) == 1)
			continue;
		if (!try_take(m, i))
			continue;
		uint64_t seq = write_begin(s);
		uint64_t gen = ld(&s[MS_GEN]) + 1;
		st(&s[MS_GEN], gen);
		st(&s[MS_FLAGS], 0);
		st(&s[MS_NVALUES], MV_COUNT);
		uint64_t idw[9] = { 0 };
		memcpy(idw, id, strlen(id));
		for (size_t k = 0; k < 9; k++)
			st(&s[MS_ID + k], idw[k]);
		for (uint32_t k = MS_VALUES; k < m->slot_words; k++)
			st(&s[k], 0);
		st(&s[MS_STATE], METRICS_LIVE);
		write_end(s, seq);
		ofd_set(m->fd, slot_off(m, i) + LOCK_CLAIM, F_UNLCK);
		hwm_raise(m, i + 1);
		w->slot = i;
		w->generation = gen;
		w->claimed = true;
		return 0;
	}
	return error_set(err, ENOSPC, "metrics registry %s: full (%u slots held by live sandboxes)", m->path,
			 m->slot_count);
}

void metrics_slot_publish(struct metrics_writer *w, const uint64_t *v, uint64_t flags)
{
	if (!w->claimed)
		return;
	uint64_t *s = slot_ptr(w->map, w->slot);
	uint64_t seq = write_begin(s);
	st(&s[MS_FLAGS], flags);
	for (size_t k = 0; k < MV_COUNT; k++)
		st(&s[MS_VALUES + k], v[k]);
	write_end(s, seq);
}

void metrics_slot_release(struct metrics_writer *w)
{
	if (!w->claimed)
		return;
	struct metrics_map *m = w->map;
	uint64_t *s = slot_ptr(m, w->slot);
	uint64_t seq = write_begin(s);
	st(&s[MS_STATE], METRICS_FREE);
	for (size_t k = 0; k < 9; k++)
		st(&s[MS_ID + k], 0);
	write_end(s, seq);
	/* the state is written before the lock goes: a reader that saw the
	 * lock held copied a sample of this sandbox */
	ofd_set(m->fd, slot_off(m, w->slot) + LOCK_OWN, F_UNLCK);
	w->claimed = false;
}

/* --- readers ------------------------------------------------------------ */

/* One consistent copy (even sequence, unchanged across the copy): the
 * sequence, or 0 when none could be had. */
static uint64_t copy_once(const struct metrics_map *m, uint32_t i, struct metrics_snapshot *out, uint64_t *state)
{
	const uint64_t *s = slot_ptr(m, i);
	for (int tries = 0; tries < READ_TRIES; tries++) {
		uint64_t s1 = __atomic_load_n(&s[MS_SEQ], __ATOMIC_ACQUIRE);
		if (s1 & 1) {
			sched_yield();
			continue;
		}
		*state = ld(&s[MS_STATE]);
		out->generation = ld(&s[MS_GEN]);
		out->flags = ld(&s[MS_FLAGS]);
		uint64_t nv = ld(&s[MS_NVALUES]);
		uint64_t idw[9];
		for (size_t k = 0; k < 9; k++)
			idw[k] = ld(&s[MS_ID + k]);
		memset(out->v, 0, sizeof(out->v));
		for (size_t k = 0; k < MV_COUNT && k < nv && MS_VALUES + k < m->slot_words; k++)
			out->v[k] = ld(&s[MS_VALUES + k]);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (ld(&s[MS_SEQ]) != s1)
			continue;
		memcpy(out->id, idw, METRICS_ID_MAX);
		out->id[METRICS_ID_MAX] = '\0';
		out->slot = i;
		return s1 ? s1 : 2; /* a never-written slot (0) is free anyway */
	}
	return 0;
}

int metrics_read(const struct metrics_map *m, uint32_t i, struct metrics_snapshot *out)
{
	if (!m->base || i >= m->slot_count)
		return 0;
	off_t off = slot_off(m, i);
	for (int tries = 0; tries < READ_TRIES; tries++) {
		uint64_t state = METRICS_FREE;
		uint64_t seq = copy_once(m, i, out, &state);
		if (seq == 0 || state != METRICS_LIVE)
			return 0;
		/* OWN held and no claim under way, with the slot unchanged
		 * around both tests: the holder owns what we copied */
		if (ofd_held(m->fd, off + LOCK_OWN) != 1)
			return 0;
		if (ofd_held(m->fd, off + LOCK_CLAIM) != 0)
			return 0;
		if (__atomic_load_n(&slot_ptr(m, i)[MS_SEQ], __ATOMIC_ACQUIRE) == seq)
			return 1;
	}
	return 0;
}

int metrics_reread(const struct metrics_map *m, uint32_t slot, uint64_t generation, struct metrics_snapshot *out)
{
	return metrics_read(m, slot, out) == 1 && out->generation == generation;
}

int metrics_find(const struct metrics_map *m, const char *id, struct metrics_snapshot *out)
{
	uint32_t n = metrics_hwm(m);
	size_t idlen = strlen(id);
	if (idlen == 0 || idlen > METRICS_ID_MAX)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint64_t *s = slot_ptr(m, i);
		/* cheap prefilter on the first id word before the full read */
		uint64_t w0 = 0;
		memcpy(&w0, id, MIN(idlen, (size_t)8));
		if (ld(&s[MS_STATE]) != METRICS_LIVE || ld(&s[MS_ID]) != w0)
			continue;
		if (metrics_read(m, i, out) == 1 && strcmp(out->id, id) == 0)
			return 1;
	}
	return 0;
}
