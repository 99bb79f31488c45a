/* cmd-pull.c: `capsa pull`: fetch an image from a registry, with a progress
 * display.  On a terminal one line per blob is redrawn in place (bytes and
 * rate); otherwise plain lines as blobs start and finish; --quiet prints
 * the digest only.  SIGINT/SIGTERM stop the pull cleanly so that partial
 * blobs stay for the next pull to resume. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "capsa/pull.h"
#include "cli.h"
#include "cmds.h"
#include "util/str.h"

static const char pull_usage[] =
	"Usage: capsa pull [OPTIONS] REFERENCE\n"
	"\n"
	"Download an image from a registry into the store.\n"
	"\n"
	"Options:\n"
	"  --platform OS/ARCH[/VARIANT]  platform to pick from a multi-platform image\n"
	"                                (default linux/amd64)\n"
	"  --insecure-registry HOST[:PORT]\n"
	"                                allow plain HTTP for this registry (repeatable);\n"
	"                                loopback registries always are\n"
	"  -q, --quiet                   print only the digest\n"
	"  -h, --help                    show this help\n";

static volatile int pull_cancel;

static void on_signal(int sig)
{
	(void)sig;
	pull_cancel = 1;
}

struct blob_line {
	char short_digest[20];
	const char *kind;
	int64_t done, total, resumed;
	int64_t t0_ms, bytes0;
	enum { LINE_WAIT, LINE_RUN, LINE_DONE, LINE_EXISTS } state;
};

struct display {
	bool tty, quiet;
	struct blob_line *lines;
	int n;
	int drawn; /* lines on screen from the last redraw */
	int64_t last_ms;
};

static void short_digest(const char *d, char *out, size_t n)
{
	const char *hex = strchr(d, ':');
	snprintf(out, n, "%.12s", hex ? hex + 1 : d);
}

static void redraw(struct display *ds, bool force)
{
	int64_t now = mono_ms();
	if (!force && now - ds->last_ms < 100)
		return;
	ds->last_ms = now;
	if (ds->drawn)
		printf("\033[%dA", ds->drawn);
	for (int i = 0; i < ds->n; i++) {
		struct blob_line *l = &ds->lines[i];
		char a[32], b[32], r[32] = "";
		cli_human_size(l->done, a, sizeof(a));
		cli_human_size(l->total, b, sizeof(b));
		printf("\r\033[K%-7s %s  ", l->kind ? l->kind : "", l->short_digest);
		switch (l->state) {
		case LINE_WAIT:
			printf("waiting\n");
			break;
		case LINE_EXISTS:
			printf("already present\n");
			break;
		case LINE_DONE:
			printf("done %s\n", b);
			break;
		case LINE_RUN: {
			int64_t dt = now - l->t0_ms;
			if (dt > 0)
				cli_human_size((l->done - l->bytes0) * 1000 / dt, r, sizeof(r));
			printf("%s / %s  %s%s%s\n", a, b, r, *r ? "/s" : "",
			       l->resumed ? "  (resumed)" : "");
			break;
		}
		}
	}
	ds->drawn = ds->n;
	fflush(stdout);
}

static void on_progress(const struct capsa_pull_progress *p, void *arg)
{
	struct display *ds = arg;
	if (ds->quiet)
		return;
	if (p->event == CAPSA_PULL_RESOLVED) {
		free(ds->lines);
		ds->n = p->count;
		ds->lines = xcalloc((size_t)(p->count > 0 ? p->count : 1), sizeof(*ds->lines));
		if (!ds->tty)
			printf("manifest %s%s%s\n", p->digest, p->platform ? " for " : "",
			       p->platform ? p->platform : "");
		return;
	}
	if (p->event == CAPSA_PULL_UNPACKING) {
		if (ds->tty)
			redraw(ds, true);
		printf("unpacking %d layer%s\n", p->count - 1, p->count == 2 ? "" : "s");
		fflush(stdout);
		return;
	}
	if (p->index < 0 || p->index >= ds->n)
		return;
	struct blob_line *l = &ds->lines[p->index];
	short_digest(p->digest, l->short_digest, sizeof(l->short_digest));
	l->kind = p->kind;
	l->done = p->done;
	l->total = p->total;
	char a[32], b[32];
	switch (p->event) {
	case CAPSA_PULL_BLOB_EXISTS:
		l->state = LINE_EXISTS;
		if (!ds->tty)
			printf("%s %s: already present\n", p->kind, p->digest);
		break;
	case CAPSA_PULL_BLOB_START:
		l->state = LINE_RUN;
		l->resumed = p->resumed;
		l->t0_ms = mono_ms();
		l->bytes0 = p->done;
		if (!ds->tty) {
			cli_human_size(p->total, b, sizeof(b));
			cli_human_size(p->done, a, sizeof(a));
			if (p->done > 0)
				printf("%s %s: downloading %s, resuming at %s\n", p->kind, p->digest, b, a);
			else
				printf("%s %s: downloading %s\n", p->kind, p->digest, b);
		}
		break;
	case CAPSA_PULL_BLOB_RETRY:
		if (!ds->tty) {
			cli_human_size(p->done, a, sizeof(a));
			printf("%s %s: retrying from %s\n", p->kind, p->digest, a);
		}
		break;
	case CAPSA_PULL_BLOB_DONE:
		l->state = LINE_DONE;
		if (!ds->tty) {
			cli_human_size(p->total, b, sizeof(b));
			printf("%s %s: done (%s)\n", p->kind, p->digest, b);
		}
		break;
	default:
		break;
	}
	if (ds->tty)
		redraw(ds, p->event != CAPSA_PULL_BLOB_PROGRESS);
	else
		fflush(stdout);
}

CLI_CMD(pull)
{
	static const struct option opts[] = {
		{ "platform", required_argument, NULL, 'p' },
		{ "insecure-registry", required_argument, NULL, 'i' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct capsa_pull_opts po = { 0 };
	struct display ds = { 0 };
	_cleanup_strv_ char **insecure = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			po.platform = optarg;
			break;
		case 'i':
			insecure = strv_push(insecure, optarg);
			break;
		case 'q':
			ds.quiet = true;
			break;
		case 'h':
			return cli_help(pull_usage);
		default:
			return cli_usage_error(cli, "invalid option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one image reference");
	const char *ref = argv[optind];
	ds.tty = isatty(STDOUT_FILENO);
	po.insecure = (const char *const *)insecure;
	po.progress = on_progress;
	po.progress_arg = &ds;
	po.cancel = &pull_cancel;
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	struct capsa_error *err = NULL;
	struct capsa_pull_result res = { 0 };
	if (!ds.quiet && !ds.tty)
		printf("pulling %s\n", ref);
	int rc = capsa_image_pull(cli_ctx(cli), ref, &po, &res, &err);
	free(ds.lines);
	if (rc < 0) {
		fflush(stdout);
		bool interrupted = err && err->code == EINTR && pull_cancel;
		cli_fail(cli, err);
		return interrupted ? 130 : EXIT_CAPSA;
	}
	if (ds.quiet) {
		printf("%s\n", res.digest);
	} else {
		printf("pulled %s%s%s\n", res.ref, res.platform ? " for " : "", res.platform ? res.platform : "");
		printf("Digest: %s\n", res.digest);
	}
	capsa_pull_result_release(&res);
	return 0;
}
