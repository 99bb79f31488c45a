/* nft.c: nftables through libnftables, loaded with dlopen on first use.
 *
 * Only the processes that change a sandbox's network pay for the library
 * (and libnftnl, libmnl, libgmp, libxtables behind it), not every `capsa
 * ps`.  Each script runs as one netlink batch: it applies whole or not at
 * all.
 */
#include <dlfcn.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>

#include "net.h"

static struct {
	struct nft_ctx *(*ctx_new)(uint32_t);
	void (*ctx_free)(struct nft_ctx *);
	int (*buffer_output)(struct nft_ctx *);
	int (*buffer_error)(struct nft_ctx *);
	const char *(*get_error)(struct nft_ctx *);
	int (*run)(struct nft_ctx *, const char *);
	const char *why;
} lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	void *h = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		lib.why = "libnftables.so.1 is not installed (Debian package libnftables1)";
		return;
	}
	lib.ctx_new = (struct nft_ctx * (*)(uint32_t)) dlsym(h, "nft_ctx_new");
	lib.ctx_free = (void (*)(struct nft_ctx *))dlsym(h, "nft_ctx_free");
	lib.buffer_output = (int (*)(struct nft_ctx *))dlsym(h, "nft_ctx_buffer_output");
	lib.buffer_error = (int (*)(struct nft_ctx *))dlsym(h, "nft_ctx_buffer_error");
	lib.get_error = (const char *(*)(struct nft_ctx *))dlsym(h, "nft_ctx_get_error_buffer");
	lib.run = (int (*)(struct nft_ctx *, const char *))dlsym(h, "nft_run_cmd_from_buffer");
	if (!lib.ctx_new || !lib.ctx_free || !lib.buffer_output || !lib.buffer_error || !lib.get_error || !lib.run) {
		lib.why = "libnftables.so.1 lacks the functions capsa calls";
		lib.run = NULL;
	}
}

/* The first line of nft's error output, for a one-line message. */
static void first_line(const char *in, char *out, size_t n)
{
	size_t i = 0;
	for (; in && in[i] && in[i] != '\n' && i + 1 < n; i++)
		out[i] = in[i];
	out[i] = '\0';
}

static struct nft_ctx *ctx_new(const char *what, struct capsa_error **err)
{
	pthread_once(&once, load);
	if (!lib.run)
		return error_set(err, ENOTSUP, "%s: %s", what, lib.why), NULL;
	struct nft_ctx *c = lib.ctx_new(NFT_CTX_DEFAULT);
	if (!c)
		return error_set(err, ENOMEM, "%s: nftables context", what), NULL;
	lib.buffer_output(c);
	lib.buffer_error(c);
	return c;
}

static int ctx_run(struct nft_ctx *c, const char *script, const char *what, struct capsa_error **err)
{
	if (lib.run(c, script) == 0)
		return 0;
	char line[512];
	first_line(lib.get_error(c), line, sizeof(line));
	return error_set(err, EIO, "%s: nftables: %s", what, *line ? line : "the change was refused");
}

int nft_run(const char *script, const char *what, struct capsa_error **err)
{
	struct nft_ctx *c = ctx_new(what, err);
	if (!c)
		return -1;
	int rc = ctx_run(c, script, what, err);
	lib.ctx_free(c);
	return rc;
}

void nft_run_quiet(const char *script)
{
	nft_run(script, "nft", NULL);
}

/* A grandchild that outlives the call must not hold its caller's output
 * open: whoever reads it until EOF would wait for the slow close too. */
static void detach_stdio(void)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
}

/* The kernel frees what a transaction removed after an RCU grace period,
 * and the close of the netlink socket that made it waits for that (10-20
 * ms on a VM): removals are made by a grandchild that reports through a
 * pipe and then closes its socket on its own time, detached.  It runs the
 * scripts in turn, each its own transaction; with stop, the first refused
 * one ends the run and its error is the answer, else errors are ignored. */
static int run_detached(char *const *scripts, size_t n, bool stop, const char *what, struct capsa_error **err)
{
	pthread_once(&once, load); /* before the fork: the grandchild inherits it */
	if (!lib.run)
		return error_set(err, ENOTSUP, "%s: %s", what, lib.why);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return error_sys(err, errno, "%s: pipe", what);
	pid_t child = fork();
	if (child == 0) {
		close(p[0]);
		if (fork() != 0)
			_exit(0);
		detach_stdio();
		struct capsa_error *e = NULL;
		struct nft_ctx *c = ctx_new(what, &e);
		int rc = c ? 0 : -1;
		for (size_t i = 0; c && i < n && rc == 0; i++)
			if (ctx_run(c, scripts[i], what, stop ? &e : NULL) < 0 && stop)
				rc = -1;
		char msg[600];
		int len = snprintf(msg, sizeof(msg), "%c%s", rc == 0 ? '0' : '1', e ? e->msg : "");
		if (write(p[1], msg, (size_t)len) < 0) {
			/* the parent is gone: nobody to tell */
		}
		close(p[1]);
		if (c)
			lib.ctx_free(c); /* the slow part, on nobody's time */
		_exit(0);
	}
	close(p[1]);
	if (child < 0) {
		close(p[0]);
		return error_sys(err, errno, "%s: fork", what);
	}
	while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
	}
	char msg[600];
	ssize_t len;
	do
		len = read(p[0], msg, sizeof(msg) - 1);
	while (len < 0 && errno == EINTR);
	close(p[0]);
	if (len <= 0)
		return error_set(err, EIO, "%s: the nftables helper ended without an answer", what);
	msg[len] = '\0';
	if (msg[0] != '0')
		return error_set(err, EIO, "%s", msg + 1);
	return 0;
}

void nft_run_each_detached(char *const *scripts, size_t n)
{
	run_detached(scripts, n, false, "nft", NULL);
}

int nft_run_detached(const char *script, const char *what, struct capsa_error **err)
{
	char *one[] = { (char *)script };
	return run_detached(one, 1, true, what, err);
}
