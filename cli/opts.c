/* opts.c: shared option parsing for run and exec. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "opts.h"
#include "util/envfile.h"
#include "util/fs.h"
#include "util/str.h"

int opt_env(char ***env, const char *arg, struct capsa_error **err)
{
	if (!*arg || *arg == '=')
		return error_set(err, EINVAL, "invalid environment entry '%s': expected KEY=VALUE", arg);
	if (strchr(arg, '=')) {
		*env = strv_push(*env, arg);
		return 0;
	}
	const char *v = getenv(arg);
	if (v)
		*env = strv_push_take(*env, xasprintf("%s=%s", arg, v));
	return 0;
}

int opt_env_file(char ***env, const char *path, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	int rc = read_file_at(AT_FDCWD, path, 1 << 20, &b, err);
	if (rc < 0)
		error_wrap(err, "env file");
	else
		rc = envfile_parse(path, b.data ? b.data : "", b.len, getenv, env, err);
	buf_release(&b);
	return rc;
}

/* "ro", "rw", "idmap", comma-separated */
static int volume_options(struct capsa_mount *m, const char *opts)
{
	char **v = strv_split(opts, ',');
	int rc = 0;
	for (char **o = v; *o; o++) {
		if (strcmp(*o, "ro") == 0)
			m->readonly = true;
		else if (strcmp(*o, "idmap") == 0)
			m->idmap = true;
		else if (strcmp(*o, "rw") != 0)
			rc = -1;
	}
	strv_free(v);
	return rc;
}

int opt_volume(struct capsa_mount *m, const char *arg, struct capsa_error **err)
{
	memset(m, 0, sizeof(*m));
	char **parts = strv_split(arg, ':');
	size_t n = strv_len(parts);
	int rc = 0;
	if (n < 2 || n > 3 || !*parts[0] || !*parts[1]) {
		rc = error_set(err, EINVAL, "invalid volume '%s': expected HOSTDIR:PATH[:ro|rw][,idmap]", arg);
	} else if (n == 3 && volume_options(m, parts[2]) < 0) {
		rc = error_set(err, EINVAL, "invalid volume '%s': unknown option in '%s' (ro, rw, idmap)", arg, parts[2]);
	} else {
		m->source = parts[0];
		m->target = parts[1];
		parts[0] = parts[1] = NULL;
	}
	/* the strings now belong to m (the CLI frees them at exit) */
	for (size_t i = 2; i < n; i++)
		free(parts[i]);
	if (rc < 0) {
		free(parts[0]);
		free(parts[1]);
	}
	free(parts);
	return rc;
}

int opt_tmpfs(struct capsa_mount *m, const char *arg, struct capsa_error **err)
{
	memset(m, 0, sizeof(*m));
	m->tmpfs = true;
	const char *colon = strchr(arg, ':');
	m->target = colon ? xstrndup(arg, (size_t)(colon - arg)) : xstrdup(arg);
	if (!colon)
		return 0;
	char **opts = strv_split(colon + 1, ',');
	int rc = 0;
	for (char **o = opts; *o && rc == 0; o++) {
		if (str_has_prefix(*o, "size=")) {
			if (parse_size(*o + 5, &m->tmpfs_size, err) < 0)
				rc = error_wrap(err, "--tmpfs %s", arg);
		} else if (str_has_prefix(*o, "mode=")) {
			char *end;
			long mode = strtol(*o + 5, &end, 8);
			if (*end || mode < 0 || mode > 07777)
				rc = error_set(err, EINVAL, "--tmpfs %s: invalid mode '%s'", arg, *o + 5);
			m->tmpfs_mode = (int)mode;
		} else if (strcmp(*o, "ro") == 0) {
			m->readonly = true;
		} else if (strcmp(*o, "rw") != 0 && **o) {
			rc = error_set(err, EINVAL, "--tmpfs %s: unknown option '%s' (size, mode, ro, rw)", arg, *o);
		}
	}
	strv_free(opts);
	return rc;
}

static const struct {
	const char *name;
	int res;
} rlimits[] = {
	{ "core", RLIMIT_CORE },	 { "cpu", RLIMIT_CPU },		{ "data", RLIMIT_DATA },
	{ "fsize", RLIMIT_FSIZE },	 { "locks", RLIMIT_LOCKS },	{ "memlock", RLIMIT_MEMLOCK },
	{ "msgqueue", RLIMIT_MSGQUEUE }, { "nice", RLIMIT_NICE },	{ "nofile", RLIMIT_NOFILE },
	{ "nproc", RLIMIT_NPROC },	 { "rss", RLIMIT_RSS },		{ "rtprio", RLIMIT_RTPRIO },
	{ "rttime", RLIMIT_RTTIME },	 { "sigpending", RLIMIT_SIGPENDING }, { "stack", RLIMIT_STACK },
	{ "as", RLIMIT_AS },
};

static int parse_limit(const char *s, uint64_t *out)
{
	if (strcmp(s, "unlimited") == 0 || strcmp(s, "-1") == 0) {
		*out = RLIM_INFINITY;
		return 0;
	}
	int64_t v;
	if (parse_int64(s, 0, INT64_MAX, &v) < 0)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

int opt_ulimit(struct capsa_rlimit *r, const char *arg, struct capsa_error **err)
{
	const char *eq = strchr(arg, '=');
	if (!eq)
		return error_set(err, EINVAL, "invalid ulimit '%s': expected NAME=SOFT[:HARD]", arg);
	_cleanup_free_ char *name = xstrndup(arg, (size_t)(eq - arg));
	r->resource = -1;
	for (size_t i = 0; i < ARRAY_SIZE(rlimits); i++)
		if (strcmp(rlimits[i].name, name) == 0)
			r->resource = rlimits[i].res;
	if (r->resource < 0)
		return error_set(err, EINVAL, "invalid ulimit '%s': unknown resource '%s'", arg, name);
	const char *v = eq + 1;
	const char *colon = strchr(v, ':');
	_cleanup_free_ char *soft = colon ? xstrndup(v, (size_t)(colon - v)) : xstrdup(v);
	if (parse_limit(soft, &r->soft) < 0 || parse_limit(colon ? colon + 1 : soft, &r->hard) < 0)
		return error_set(err, EINVAL, "invalid ulimit '%s': limits must be numbers or 'unlimited'", arg);
	if (r->soft > r->hard)
		return error_set(err, EINVAL, "invalid ulimit '%s': soft limit above hard limit", arg);
	return 0;
}

int opt_cpus(const char *arg, int64_t *milli, struct capsa_error **err)
{
	char *end;
	errno = 0;
	double d = strtod(arg, &end);
	if (errno || *end || end == arg || !(d > 0) || d > 4096)
		return error_set(err, EINVAL, "invalid --cpus '%s': expected a positive number such as 0.5 or 2", arg);
	*milli = (int64_t)(d * 1000 + 0.5);
	if (*milli < 10)
		return error_set(err, EINVAL, "invalid --cpus '%s': the minimum is 0.01", arg);
	return 0;
}

int opt_sig_proxy(const char *arg, bool *no_sig_proxy, struct capsa_error **err)
{
	if (!arg || strcmp(arg, "true") == 0 || strcmp(arg, "1") == 0)
		*no_sig_proxy = false;
	else if (strcmp(arg, "false") == 0 || strcmp(arg, "0") == 0)
		*no_sig_proxy = true;
	else
		return error_set(err, EINVAL, "invalid --sig-proxy '%s': expected true or false", arg);
	return 0;
}

int session_signals_open(void)
{
	/* a reader that went away is an EPIPE from write, not a death with
	 * the terminal left raw */
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

void session_signals_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* The terminal to restore if we leave through exit() rather than
 * term_restore (a failure path): raw mode never outlives capsa. */
static struct term_state *raw_term;

static void restore_at_exit(void)
{
	if (raw_term)
		term_restore(raw_term);
}

int term_raw(struct term_state *t, int fd)
{
	static bool registered;
	t->fd = fd;
	t->raw = false;
	if (!isatty(fd) || tcgetattr(fd, &t->saved) < 0)
		return -1;
	struct termios raw = t->saved;
	cfmakeraw(&raw);
	/* keep output post-processing so our own messages stay readable */
	raw.c_oflag |= OPOST;
	if (tcsetattr(fd, TCSADRAIN, &raw) < 0)
		return -1;
	t->raw = true;
	raw_term = t;
	if (!registered) {
		atexit(restore_at_exit);
		registered = true;
	}
	return 0;
}

void term_restore(struct term_state *t)
{
	if (t->raw)
		tcsetattr(t->fd, TCSADRAIN, &t->saved);
	t->raw = false;
	if (raw_term == t)
		raw_term = NULL;
}

void term_size(int fd, uint16_t *rows, uint16_t *cols)
{
	struct winsize ws;
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

int report_exit(const struct capsa_exit *e)
{
	if (e->message[0] && (strcmp(e->reason, "start_failed") == 0 || strcmp(e->reason, "timeout") == 0 ||
			      strcmp(e->reason, "interrupted") == 0))
		fprintf(stderr, "capsa: %s\n", e->message);
	return e->exit_code;
}
