/* logfile.c: writing and parsing the CRI-format main log. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "logfile.h"
#include "util/fs.h"
#include "util/str.h"

void log_format_ts(int64_t ts_ns, char *out, size_t n)
{
	time_t t = (time_t)(ts_ns / 1000000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts_ns % 1000000000));
}

int logw_open(struct logw *w, int dirfd, const char *name, int64_t max_size, int max_files)
{
	memset(w, 0, sizeof(*w));
	w->dirfd = dirfd;
	w->name = xstrdup(name);
	w->max_size = max_size > 0 ? max_size : LOG_DEFAULT_MAX_SIZE;
	w->max_files = max_files > 0 ? max_files : LOG_DEFAULT_MAX_FILES;
	w->fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (w->fd < 0)
		return -1;
	struct stat st;
	if (fstat(w->fd, &st) == 0)
		w->size = st.st_size;
	return 0;
}

static void rotate(struct logw *w)
{
	char from[512], to[512];
	for (int i = w->max_files - 1; i >= 1; i--) {
		if (i == 1)
			snprintf(from, sizeof(from), "%s", w->name);
		else
			snprintf(from, sizeof(from), "%s.%d", w->name, i - 1);
		snprintf(to, sizeof(to), "%s.%d", w->name, i);
		renameat(w->dirfd, from, w->dirfd, to);
	}
	if (w->max_files == 1 && ftruncate(w->fd, 0) < 0) {
		/* reopening below appends; the cap still holds per file */
	}
	close(w->fd);
	w->fd = openat(w->dirfd, w->name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	w->size = 0;
}

int logw_write(struct logw *w, int ch, const char *data, size_t n)
{
	if (w->fd < 0)
		return -1;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char stamp[48];
	log_format_ts((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, stamp, sizeof(stamp));
	const char *tag = ch == 2 ? "stderr" : "stdout";
	struct buf b = BUF_INIT;
	size_t off = 0;
	int rc = 0;
	while (off < n) {
		const char *nl = memchr(data + off, '\n', n - off);
		size_t len = nl ? (size_t)(nl - (data + off)) : n - off;
		buf_appendf(&b, "%s %s %c ", stamp, tag, nl ? 'F' : 'P');
		buf_append(&b, data + off, len);
		buf_putc(&b, '\n');
		off += len + (nl ? 1 : 0);
		/* rotate on line boundaries so no file starts mid-line */
		if ((int64_t)(w->size + (int64_t)b.len) >= w->max_size || off >= n) {
			if (write_all(w->fd, b.data, b.len) < 0)
				rc = -1;
			w->size += (int64_t)b.len;
			b.len = 0;
			if (w->size >= w->max_size)
				rotate(w);
		}
	}
	buf_release(&b);
	return rc;
}

void logw_close(struct logw *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->name);
	w->name = NULL;
}

int log_parse_line(const char *s, size_t n, struct log_line *out)
{
	/* "<ts> <stream> <F|P> <msg>" */
	const char *sp1 = memchr(s, ' ', n);
	if (!sp1)
		return -1;
	char ts[64];
	size_t tl = (size_t)(sp1 - s);
	if (tl >= sizeof(ts) || tl < 20)
		return -1;
	memcpy(ts, s, tl);
	ts[tl] = '\0';
	int Y, M, D, h, m, sec, frac_digits = 0;
	long long frac = 0;
	if (sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d", &Y, &M, &D, &h, &m, &sec) != 6)
		return -1;
	const char *p = ts + 19;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			if (frac_digits < 9) {
				frac = frac * 10 + (*p - '0');
				frac_digits++;
			}
			p++;
		}
	}
	for (; frac_digits < 9; frac_digits++)
		frac *= 10;
	struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec };
	time_t t = timegm(&tm);
	out->ts_ns = (int64_t)t * 1000000000 + frac;
	const char *rest = sp1 + 1;
	size_t rl = n - (size_t)(rest - s);
	if (rl >= 9 && memcmp(rest, "stdout ", 7) == 0)
		out->ch = 1;
	else if (rl >= 9 && memcmp(rest, "stderr ", 7) == 0)
		out->ch = 2;
	else
		return -1;
	rest += 7;
	rl -= 7;
	if (rl < 2 || (rest[0] != 'F' && rest[0] != 'P') || rest[1] != ' ')
		return -1;
	out->partial = rest[0] == 'P';
	out->msg = rest + 2;
	out->len = rl - 2;
	return 0;
}
