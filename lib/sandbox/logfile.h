/* logfile.h: the main process's log: timestamped, stream-tagged lines in
 * the Kubernetes CRI format, rotated by size.  libc only (the supervisor
 * writes it, the library reads it).
 *
 *   2026-11-23T17:15:00.123456789Z stdout F a complete line
 *   2026-11-23T17:15:00.123460000Z stderr P a line without its newline yet
 *
 * Files: NAME (current), NAME.1 (previous) ... NAME.<max_files-1>.
 */
#ifndef CAPSA_SANDBOX_LOGFILE_H
#define CAPSA_SANDBOX_LOGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOG_DEFAULT_MAX_SIZE (16LL << 20)
#define LOG_DEFAULT_MAX_FILES 4

struct logw {
	int dirfd;
	char *name;
	int fd;
	int64_t size;
	int64_t max_size;
	int max_files;
};

int logw_open(struct logw *w, int dirfd, const char *name, int64_t max_size, int max_files);
/* ch: 1 stdout, 2 stderr.  Splits data into lines; a trailing piece without
 * a newline is written as a partial (P) line.  Returns -1 on write errors
 * (the caller keeps running: logs are best effort, the sandbox is not). */
int logw_write(struct logw *w, int ch, const char *data, size_t n);
void logw_close(struct logw *w);

/* One parsed line. */
struct log_line {
	int64_t ts_ns;	 /* since the epoch */
	int ch;		 /* 1 stdout, 2 stderr */
	bool partial;
	const char *msg; /* not NUL-terminated */
	size_t len;
};
/* Parses one line (without its newline).  -1 if malformed. */
int log_parse_line(const char *s, size_t n, struct log_line *out);
/* RFC 3339 with nanoseconds, UTC. */
void log_format_ts(int64_t ts_ns, char *out, size_t n);

#endif
