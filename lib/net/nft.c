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
#include <string.h>

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

int nft_run(const char *script, const char *what, struct capsa_error **err)
{
	pthread_once(&once, load);
	if (!lib.run)
		return error_set(err, ENOTSUP, "%s: %s", what, lib.why);
	struct nft_ctx *c = lib.ctx_new(NFT_CTX_DEFAULT);
	if (!c)
		return error_set(err, ENOMEM, "%s: nftables context", what);
	lib.buffer_output(c);
	lib.buffer_error(c);
	int rc = lib.run(c, script);
	if (rc != 0) {
		char line[512];
		first_line(lib.get_error(c), line, sizeof(line));
		error_set(err, EIO, "%s: nftables: %s", what, *line ? line : "the change was refused");
	}
	lib.ctx_free(c);
	return rc == 0 ? 0 : -1;
}

void nft_run_quiet(const char *script)
{
	nft_run(script, "nft", NULL);
}
