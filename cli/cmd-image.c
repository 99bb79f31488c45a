/* cmd-image.c: `capsa image ...`: the image store front-end.  Every
 * sub-command here parses, calls libcapsa and prints; `image import` lives
 * in cmd-image-import.c because it needs the heavy libraries. */
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "capsa/image.h"
#include "cli.h"
#include "cmds.h"
#include "util/str.h"

static const char image_usage[] =
	"Usage: capsa image COMMAND [ARGS...]\n"
	"\n"
	"Manage the images in the store: content-addressed blobs, layers unpacked\n"
	"once and shared, references like docker.io/library/busybox:latest.\n"
	"Run 'capsa image COMMAND --help' for the details of each command.\n"
	"\n"
	"Commands:\n";

static void human_ago(int64_t ms, char *out, size_t len)
{
	int64_t s = (now_ms() - ms) / 1000;
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(out, len, "%lld seconds ago", (long long)s);
	else if (s < 3600)
		snprintf(out, len, "%lld minutes ago", (long long)(s / 60));
	else if (s < 86400)
		snprintf(out, len, "%lld hours ago", (long long)(s / 3600));
	else
		snprintf(out, len, "%lld days ago", (long long)(s / 86400));
}

static const char ls_help[] =
	"Usage: capsa image ls [OPTIONS]\n"
	"       capsa images [OPTIONS]\n"
	"\n"
	"List the images in the store, most recently imported first.  An image with\n"
	"several names is listed once per name; one without a name shows <none>.\n"
	"\n"
	"Columns: NAME (the full reference), IMAGE ID (the first 12 hex digits of the\n"
	"config digest; any unique prefix of 4 or more digits names the image),\n"
	"PLATFORM, LAYERS, SIZE (the unpacked file content) and IMPORTED.\n"
	"\n"
	"Options:\n"
	"      --json       print a JSON array instead, one object per image: id, digest,\n"
	"                   names, platform, layers, size (blobs as stored),\n"
	"                   unpacked_size, created (from the config), imported_at,\n"
	"                   sandboxes (how many were created from it)\n"
	"  -q, --quiet      print only the image ids, one per image\n"
	"      --no-trunc   print full image ids\n"
	"  -h, --help       show this help\n";

static CLI_CMD(image_ls)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "no-trunc", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, quiet = false, full = false;
	int c;
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 't':
			full = true;
			break;
		case 'h':
			return cli_help(ls_help);
		default:
			return cli_usage_error(cli, "invalid option");
		}
	}
	if (optind != argc)
		return cli_usage_error(cli, "takes no arguments");
	struct capsa_image_info *v;
	size_t n;
	struct capsa_error *err = NULL;
	if (capsa_image_list(cli_ctx(cli), &v, &n, &err) < 0)
		return cli_fail(cli, err);
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++) {
			json_t *names = json_array();
			for (size_t k = 0; v[i].names[k]; k++)
				json_array_append_new(names, json_string(v[i].names[k]));
			char ts[64];
			format_rfc3339(v[i].imported_at, ts, sizeof(ts));
			json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:I, s:s?, s:s, s:I}", "id", v[i].id, "digest",
					      v[i].manifest_digest, "names", names, "platform", v[i].platform, "layers",
					      (json_int_t)v[i].n_layers, "size", (json_int_t)v[i].size, "unpacked_size",
					      (json_int_t)v[i].unpacked_size, "created", v[i].created, "imported_at", ts,
					      "sandboxes", (json_int_t)v[i].n_sandboxes);
			json_array_append_new(a, o);
		}
		char *s = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
		json_decref(a);
	} else if (quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%.*s\n", full ? 71 : 12, full ? v[i].id : v[i].id + 7);
	} else {
		printf("%-50s %-*s %-14s %6s %9s %s\n", "NAME", full ? 71 : 12, "IMAGE ID", "PLATFORM", "LAYERS", "SIZE",
		       "IMPORTED");
		for (size_t i = 0; i < n; i++) {
			char size[32], ago[64];
			cli_human_size(v[i].unpacked_size, size, sizeof(size));
			human_ago(v[i].imported_at, ago, sizeof(ago));
			for (size_t k = 0; k == 0 || v[i].names[k]; k++) {
				const char *name = v[i].names[k] ? v[i].names[k] : "<none>";
				printf("%-50s %-*.*s %-14s %6zu %9s %s\n", name, full ? 71 : 12, full ? 71 : 12,
				       full ? v[i].id : v[i].id + 7, v[i].platform, v[i].n_layers, size, ago);
				if (!v[i].names[k])
					break;
			}
		}
	}
	capsa_image_list_free(v, n);
	return 0;
}

CLI_CMD(images)
{
	return cmd_image_ls(cli, argc, argv);
}

static const char inspect_help[] =
	"Usage: capsa image inspect REF\n"
	"\n"
	"Print what the store knows about an image as a JSON object:\n"
	"  id              the config digest (sha256:...)\n"
	"  digest          the manifest digest\n"
	"  names           references pointing at it\n"
	"  platform        OS/ARCH[/VARIANT]\n"
	"  size            manifest, config and layer blobs as stored (compressed)\n"
	"  unpacked_size   file content of the unpacked layers\n"
	"  imported_at     when it entered the store\n"
	"  layers          bottom first: diff_id, digest (blob), media_type, size,\n"
	"                  unpacked_size, entries\n"
	"  config          the OCI image config exactly as stored (Entrypoint, Cmd,\n"
	"                  Env, WorkingDir, User, ... under config.config)\n"
	"\n"
	"REF is a name[:tag], name@sha256:..., an image id or manifest digest\n"
	"(sha256:...), or a unique id prefix of at least 4 hex digits.\n"
	"\n"
	"Options:\n"
	"  -h, --help    show this help\n"
	"\n"
	"Example:\n"
	"  capsa image inspect busybox | jq .config.config.Cmd\n";

static CLI_CMD(image_inspect)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, inspect_help, &rc);
	if (first < 0)
		return rc;
	if (argc - first != 1)
		return cli_usage_error(cli, "expected exactly one REF");
	struct capsa_error *err = NULL;
	char *s = capsa_image_inspect(cli_ctx(cli), argv[first], &err);
	if (!s)
		return cli_fail(cli, err);
	printf("%s\n", s);
	free(s);
	return 0;
}

static const char tag_help[] =
	"Usage: capsa image tag SOURCE TARGET\n"
	"\n"
	"Give the image SOURCE refers to the name TARGET (NAME[:TAG], normalized like\n"
	"docker: app means docker.io/library/app:latest).  A name that pointed at\n"
	"another image moves to this one.  Digest references cannot be created.\n"
	"SOURCE is a name[:tag], name@sha256:..., an image id or a unique id prefix.\n"
	"\n"
	"Options:\n"
	"  -h, --help    show this help\n"
	"\n"
	"Example:\n"
	"  capsa image tag busybox registry.example.com/tools/busybox:1.35\n";

static CLI_CMD(image_tag)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, tag_help, &rc);
	if (first < 0)
		return rc;
	if (argc - first != 2)
		return cli_usage_error(cli, "expected SOURCE and TARGET");
	struct capsa_error *err = NULL;
	if (capsa_image_tag(cli_ctx(cli), argv[first], argv[first + 1], &err) < 0)
		return cli_fail(cli, err);
	return 0;
}

static const char rm_help[] =
	"Usage: capsa image rm [OPTIONS] REF...\n"
	"\n"
	"Remove names and images.\n"
	"\n"
	"A name (busybox, app:1) removes that name; the image goes with its last\n"
	"name.  An image id, digest or id prefix removes the image and all its names,\n"
	"but not when the image has more than one name (remove them by name, or use\n"
	"--force).  An image that a sandbox was created from (in any state) is\n"
	"refused; a mounted image (capsa image mount) is refused even with --force.\n"
	"Blobs and layer directories nothing references any more are then collected\n"
	"(unless another capsa process is importing or pulling: 'capsa image gc'\n"
	"collects them later).\n"
	"\n"
	"Options:\n"
	"  -f, --force   also remove an image that has several names or that sandboxes\n"
	"                were created from: its names and record go at once; the layers\n"
	"                such sandboxes run on stay on disk until the last of them is\n"
	"                removed, and are collected then\n"
	"  -h, --help    show this help\n"
	"\n"
	"Output: \"Untagged: NAME\" and \"Deleted: ID\" lines.  Exit status 125 when any\n"
	"REF could not be removed (the others still are).\n";

static CLI_CMD(image_rm)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool force = false;
	int c;
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'h':
			return cli_help(rm_help);
		default:
			return cli_usage_error(cli, "invalid option");
		}
	}
	if (optind >= argc)
		return cli_usage_error(cli, "expected at least one REF");
	int rc = 0;
	for (int i = optind; i < argc; i++) {
		struct capsa_image_rm_result res;
		struct capsa_error *err = NULL;
		if (capsa_image_rm(cli_ctx(cli), argv[i], force, &res, &err) < 0) {
			rc = cli_fail(cli, err);
			continue;
		}
		for (size_t k = 0; res.untagged && res.untagged[k]; k++)
			printf("Untagged: %s\n", res.untagged[k]);
		for (size_t k = 0; res.deleted && res.deleted[k]; k++)
			printf("Deleted: %s\n", res.deleted[k]);
		capsa_image_rm_result_release(&res);
	}
	return rc;
}

static const char prune_help[] =
	"Usage: capsa image prune [OPTIONS]\n"
	"\n"
	"Remove images that have no name and that no sandbox was created from and no\n"
	"mount uses (with --all: every image no sandbox or mount uses), then collect\n"
	"the blobs, layers and temporary files nothing references.  Waits for imports\n"
	"and pulls in progress.  Then empty two caches: the copies of layers made for\n"
	"user namespaces where layers cannot be idmapped (layers-shifted/) that no\n"
	"sandbox uses, and every --disk template (disk-templates/; the next --disk of\n"
	"a size formats one again).\n"
	"\n"
	"Options:\n"
	"  -a, --all     remove unused images that have names too\n"
	"  -h, --help    show this help\n";

static void print_stats(const struct capsa_gc_stats *st, bool caches)
{
	char size[32];
	cli_human_size(st->bytes, size, sizeof(size));
	printf("Removed %zu images, %zu blobs, %zu layers", st->images, st->blobs, st->layers);
	if (caches)
		printf(", %zu layer copies, %zu disk templates", st->layer_copies, st->disk_templates);
	printf("; reclaimed %s\n", size);
}

static CLI_CMD(image_prune)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool all = false;
	int c;
	while ((c = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'h':
			return cli_help(prune_help);
		default:
			return cli_usage_error(cli, "invalid option");
		}
	}
	if (optind != argc)
		return cli_usage_error(cli, "takes no arguments");
	char **deleted = NULL;
	struct capsa_gc_stats st;
	struct capsa_error *err = NULL;
	if (capsa_image_prune(cli_ctx(cli), all, &deleted, &st, &err) < 0) {
		strv_free(deleted);
		return cli_fail(cli, err);
	}
	for (size_t i = 0; deleted && deleted[i]; i++)
		printf("Deleted: %s\n", deleted[i]);
	strv_free(deleted);
	print_stats(&st, true);
	return 0;
}

static const char gc_help[] =
	"Usage: capsa image gc [OPTIONS]\n"
	"\n"
	"Collect garbage: blobs no image references, layer directories no image or\n"
	"sandbox uses, leftovers of interrupted imports, and partial downloads older\n"
	"than a day.  Images themselves are never removed (see 'capsa image prune').\n"
	"Waits for imports and pulls in progress unless --no-wait.\n"
	"\n"
	"Options:\n"
	"      --no-wait   fail instead of waiting when the store is busy\n"
	"  -h, --help      show this help\n";

static CLI_CMD(image_gc)
{
	static const struct option opts[] = {
		{ "no-wait", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool wait = true;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			wait = false;
			break;
		case 'h':
			return cli_help(gc_help);
		default:
			return cli_usage_error(cli, "invalid option");
		}
	}
	if (optind != argc)
		return cli_usage_error(cli, "takes no arguments");
	struct capsa_gc_stats st = { 0 };
	struct capsa_error *err = NULL;
	if (capsa_image_gc(cli_ctx(cli), wait, &st, &err) < 0)
		return cli_fail(cli, err);
	print_stats(&st, false);
	return 0;
}

static const char mount_help[] =
	"Usage: capsa image mount REF DIR\n"
	"\n"
	"Mount the root filesystem of an image, read-only, on the existing directory\n"
	"DIR: an overlay of its layers (a read-only bind mount for a one-layer image),\n"
	"with nosuid and nodev because the content is untrusted.  The mount keeps the\n"
	"image from being removed; undo it with 'capsa image umount DIR'.  Prints DIR.\n"
	"\n"
	"REF is a name[:tag], name@sha256:..., an image id or a unique id prefix.\n"
	"\n"
	"Options:\n"
	"  -h, --help    show this help\n"
	"\n"
	"Example:\n"
	"  mkdir /tmp/bb && capsa image mount busybox /tmp/bb && ls /tmp/bb/bin\n";

static CLI_CMD(image_mount)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, mount_help, &rc);
	if (first < 0)
		return rc;
	if (argc - first != 2)
		return cli_usage_error(cli, "expected REF and DIR");
	struct capsa_error *err = NULL;
	if (capsa_rootless()) {
		/* it would be made in capsa's own mount namespace and go with it */
		error_set(&err, ENOTSUP, "image mount is not available in rootless mode: the mount would live only in "
					 "capsa's private mount namespace and vanish when it exits");
		return cli_fail(cli, err);
	}
	if (capsa_image_mount_rootfs(cli_ctx(cli), argv[first], NULL, NULL, argv[first + 1], &err) < 0)
		return cli_fail(cli, err);
	printf("%s\n", argv[first + 1]);
	return 0;
}

static const char umount_help[] =
	"Usage: capsa image umount DIR\n"
	"\n"
	"Unmount an image mounted with 'capsa image mount'.  A busy mount (a process\n"
	"has its cwd or a file open in it) is detached lazily and goes away when the\n"
	"last user lets go.  Once unmounted, the image may be removed again.\n"
	"\n"
	"Options:\n"
	"  -h, --help    show this help\n";

static CLI_CMD(image_umount)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, umount_help, &rc);
	if (first < 0)
		return rc;
	if (argc - first != 1)
		return cli_usage_error(cli, "expected DIR");
	struct capsa_error *err = NULL;
	if (capsa_image_umount_rootfs(argv[first], &err) < 0)
		return cli_fail(cli, err);
	return 0;
}

static const struct cli_cmd image_cmds[] = {
	{ "import", HEAVY(cmd_image_import), "import an OCI layout, oci-archive, docker-archive or rootfs tarball" },
	{ "pull", HEAVY(cmd_pull), "download an image from a registry (same as 'capsa pull')" },
	{ "ls", cmd_image_ls, "list images" },
	{ "inspect", cmd_image_inspect, "show an image's details as JSON" },
	{ "tag", cmd_image_tag, "give an image another name" },
	{ "rm", cmd_image_rm, "remove names and images" },
	{ "prune", cmd_image_prune, "remove unnamed, unused images and collect garbage" },
	{ "gc", cmd_image_gc, "collect blobs and layers nothing references" },
	{ "mount", cmd_image_mount, "mount an image's rootfs read-only" },
	{ "umount", cmd_image_umount, "unmount an image mounted with 'image mount'" },
	{ NULL, NULL, NULL },
};

CLI_CMD(image)
{
	return cli_dispatch(cli, image_cmds, "image", image_usage, argc - 1, argv + 1);
}
