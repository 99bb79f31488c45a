/* cmd-image-import.c: `capsa image import` (capsa-full only: it links
 * libarchive and libcrypto through the xfer part of the library). */
#include <ctype.h>
#include <jansson.h>
#include <string.h>

#include "capsa/image.h"
#include "cli.h"
#include "cmds.h"
#include "util/str.h"

static const char import_help[] =
	"Usage: capsa image import [OPTIONS] PATH\n"
	"\n"
	"Import an image from a file or directory into the store.\n"
	"\n"
	"The format is detected from the content, not the file name:\n"
	"  OCI image layout   a directory holding oci-layout and index.json\n"
	"  oci-archive        a tar of an OCI image layout (skopeo, buildah, podman save\n"
	"                     --format oci-archive)\n"
	"  docker-archive     a tar with manifest.json, as written by docker save or\n"
	"                     podman save\n"
	"  rootfs tarball     any other tar, plain, gzip or zstd: the whole file becomes\n"
	"                     the image's single layer, and the options below fill in its\n"
	"                     config\n"
	"An archive may itself be gzip-, zstd- or xz-compressed.\n"
	"\n"
	"An index with several platforms yields the linux/amd64 image unless\n"
	"--platform picks another.  Everything read is verified: documents and blobs\n"
	"against their digests and sizes, layers against the diff_ids of the image\n"
	"config.  Layers are unpacked once into the store and shared by every image\n"
	"that uses them.  Hostile content (paths leaving the layer, links pointing\n"
	"outside it, device nodes, oversized or truncated entries, absurd layer counts\n"
	"or JSON nesting) is refused with an error naming the entry, and nothing of a\n"
	"refused import is kept.\n"
	"\n"
	"Options:\n"
	"  -n, --name NAME[:TAG]   name the image (normalized: busybox means\n"
	"                          docker.io/library/busybox:latest); without it, the\n"
	"                          names the archive carries (docker RepoTags, an OCI\n"
	"                          org.opencontainers.image.ref.name that is a full\n"
	"                          reference) are used\n"
	"      --platform OS/ARCH[/VARIANT]\n"
	"                          the platform to take from a multi-platform index, and\n"
	"                          the one recorded for a rootfs tarball (default\n"
	"                          linux/amd64, or the host's architecture for a rootfs)\n"
	"      --allow-devices     accept block and character device nodes in layers\n"
	"                          (refused by default)\n"
	"  -q, --quiet             print only the image id\n"
	"  -h, --help              show this help\n"
	"\n"
	"Config of a rootfs tarball (refused for the other formats):\n"
	"      --cmd CMD           default command: a JSON array ('[\"sh\",\"-c\",\"x\"]') or\n"
	"                          words split on white space ('sh -l')\n"
	"      --entrypoint CMD    entrypoint, in the same two forms\n"
	"  -e, --env KEY=VALUE     environment variable (repeatable); PATH defaults to\n"
	"                          /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
	"  -w, --workdir DIR       working directory\n"
	"  -u, --user USER[:GROUP] user the processes run as\n"
	"\n"
	"Output: one line per image imported, \"<id> <name>...\".\n"
	"\n"
	"Exit status: 0 on success, 125 when the import failed (one line on stderr\n"
	"says why).\n"
	"\n"
	"Examples:\n"
	"  capsa image import busybox-oci.tar --name busybox\n"
	"  podman save -o app.tar app && capsa image import app.tar\n"
	"  capsa image import ./layout-dir --platform linux/arm64\n"
	"  capsa image import rootfs.tar.zst --name tools:1 --cmd '[\"/bin/sh\"]' -e LANG=C.UTF-8\n";

/* '["a","b"]' or "a b": a NULL-terminated vector, or NULL with a message. */
static char **parse_command(const char *s, const char *opt, char **msg)
{
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '[') {
		json_error_t je;
		json_t *j = json_loads(s, 0, &je);
		if (!json_is_array(j)) {
			json_decref(j);
			*msg = xasprintf("%s: invalid JSON array: %s", opt, je.text);
			return NULL;
		}
		char **v = xcalloc(json_array_size(j) + 1, sizeof(char *));
		size_t i;
		json_t *e;
		json_array_foreach(j, i, e)
		{
			if (!json_is_string(e)) {
				strv_free(v);
				json_decref(j);
				*msg = xasprintf("%s: element %zu is not a string", opt, i);
				return NULL;
			}
			v[i] = xstrdup(json_string_value(e));
		}
		json_decref(j);
		return v;
	}
	char **v = xcalloc(1, sizeof(char *));
	const char *p = s;
	while (*p) {
		while (isspace((unsigned char)*p))
			p++;
		const char *q = p;
		while (*q && !isspace((unsigned char)*q))
			q++;
		if (q > p)
			v = strv_push_take(v, xstrndup(p, (size_t)(q - p)));
		p = q;
	}
	if (!v[0]) {
		strv_free(v);
		*msg = xasprintf("%s: empty command", opt);
		return NULL;
	}
	return v;
}

CLI_CMD(image_import)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "platform", required_argument, NULL, 'P' },
		{ "allow-devices", no_argument, NULL, 'D' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "cmd", required_argument, NULL, 'C' },
		{ "entrypoint", required_argument, NULL, 'E' },
		{ "env", required_argument, NULL, 'e' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct capsa_image_import_opts o = { 0 };
	_cleanup_strv_ char **cmd = NULL, **entrypoint = NULL, **env = NULL;
	bool quiet = false;
	int c;
	char *msg = NULL;
	while ((c = getopt_long(argc, argv, "n:qe:w:u:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.name = optarg;
			break;
		case 'P':
			o.platform = optarg;
			break;
		case 'D':
			o.allow_devices = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'C':
			strv_free(cmd);
			if (!(cmd = parse_command(optarg, "--cmd", &msg)))
				goto bad;
			break;
		case 'E':
			strv_free(entrypoint);
			if (!(entrypoint = parse_command(optarg, "--entrypoint", &msg)))
				goto bad;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				msg = xasprintf("--env %s: want KEY=VALUE", optarg);
				goto bad;
			}
			env = strv_push(env ? env : xcalloc(1, sizeof(char *)), optarg);
			break;
		case 'w':
			o.workdir = optarg;
			break;
		case 'u':
			o.user = optarg;
			break;
		case 'h':
			return cli_help(import_help);
		default:
			return cli_usage_error(cli, "invalid option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(cli, "expected exactly one PATH");
	o.cmd = cmd;
	o.entrypoint = entrypoint;
	o.env = env;
	struct capsa_image_import_result res;
	struct capsa_error *err = NULL;
	if (capsa_image_import(cli_ctx(cli), argv[optind], &o, &res, &err) < 0)
		return cli_fail(cli, err);
	for (size_t i = 0; res.ids[i]; i++) {
		if (quiet) {
			printf("%s\n", res.ids[i]);
			continue;
		}
		printf("%s", res.ids[i]);
		/* names belong to the image they were set for: with one image
		 * all of them, with several the import order matches */
		for (size_t k = 0; res.ids[1] == NULL && res.names && res.names[k]; k++)
			printf(" %s", res.names[k]);
		printf("\n");
	}
	capsa_image_import_result_release(&res);
	return 0;
bad: {
	int rc = cli_usage_error(cli, "%s", msg);
	free(msg);
	return rc;
}
}
