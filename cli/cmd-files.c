/* cmd-files.c: `capsa cp` and `capsa files ...`: files inside a running
 * sandbox. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "capsa/files.h"
#include "cli.h"
#include "cmds.h"
#include "opts.h"
#include "util/str.h"

/* ---- cp --------------------------------------------------------------------- */

static const char cp_usage[] =
	"Usage: capsa cp SANDBOX:PATH HOSTPATH|-\n"
	"       capsa cp HOSTPATH|- SANDBOX:PATH\n"
	"\n"
	"Copy files and directories between a running sandbox and the host, like\n"
	"docker cp: a directory is copied with everything below it; into an existing\n"
	"directory the copy keeps its name, else it takes the destination's; a\n"
	"source ending in /. copies a directory's contents.  Symlinks are copied as\n"
	"symlinks.  '-' reads a tar stream from stdin (extracted into the directory\n"
	"SANDBOX:PATH) or writes one to stdout.  Paths in the sandbox are resolved\n"
	"inside it: symlinks and '..' never lead out.  Files copied out lose their\n"
	"setuid/setgid bits and belong to the caller.  Sparse files keep their holes\n"
	"(tar's PAX 1.0 sparse format with '-', which GNU tar reads).\n"
	"\n"
	"Options:\n"
	"  -u, --user USER      read or write in the sandbox as USER (user[:group], as for\n"
	"                       exec): the kernel checks that user's permissions, and what\n"
	"                       is copied in is the user's; default: root\n"
	"      --max-size SIZE  copying out (or to '-'): fail once more than SIZE bytes of\n"
	"                       file data would be written on the host (default: no bound)\n"
	"  -h, --help           show this help\n";

/* "name:path" names a sandbox unless what precedes ':' holds a '/' (a host
 * path such as ./a:b). */
static bool split_remote(const char *arg, char **sandbox, const char **path)
{
	const char *colon = strchr(arg, ':');
	if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg)))
		return false;
	*sandbox = xstrndup(arg, (size_t)(colon - arg));
	*path = colon + 1;
	return true;
}

CLI_CMD(cp)
{
	enum { O_MAX_SIZE = 256 };
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' }, { "max-size", required_argument, NULL, O_MAX_SIZE },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *user = NULL;
	int64_t max = 0;
	struct capsa_error *err = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "u:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help(cp_usage);
		if (c == 'u') {
			user = optarg;
		} else if (c == O_MAX_SIZE) {
			if (parse_size(optarg, &max, &err) < 0 || max <= 0) {
				capsa_error_free(err);
				return cli_usage_error(cli, "invalid --max-size '%s': expected a size such as 512m",
						       optarg);
			}
		} else {
			return cli_usage_error(cli, "unknown option");
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "requires a SOURCE and a DESTINATION");
	const char *src = argv[optind], *dst = argv[optind + 1];
	_cleanup_free_ char *ssb = NULL, *dsb = NULL;
	const char *spath = NULL, *dpath = NULL;
	bool sr = split_remote(src, &ssb, &spath), dr = split_remote(dst, &dsb, &dpath);
	if (sr == dr)
		return cli_usage_error(cli, "exactly one of SOURCE and DESTINATION must be SANDBOX:PATH");
	const char *sandbox = sr ? ssb : dsb;
	const char *path = sr ? spath : dpath;
	if (!*path)
		return cli_usage_error(cli, "'%s': empty path in the sandbox", sr ? src : dst);
	struct capsa_files *f;
	signal(SIGPIPE, SIG_IGN);
	if (capsa_files_open(cli_ctx(cli), sandbox, &f, &err) < 0)
		return cli_fail(cli, err);
	capsa_files_set_user(f, user);
	capsa_files_set_max(f, max);
	int rc;
	if (sr && strcmp(dst, "-") == 0)
		rc = capsa_files_tar_get(f, path, NULL, 1, &err);
	else if (sr)
		rc = capsa_files_copy_out(f, path, dst, &err);
	else if (strcmp(src, "-") == 0)
		rc = capsa_files_tar_put(f, path, 0, NULL, &err);
	else
		rc = capsa_files_copy_in(f, src, path, &err);
	capsa_files_close(f);
	return rc < 0 ? cli_fail(cli, err) : 0;
}

/* ---- files -------------------------------------------------------------------- */

static const char files_usage[] =
	"Usage: capsa files COMMAND SANDBOX PATH [ARGS]\n"
	"\n"
	"Files inside a running sandbox, every path resolved inside it.\n"
	"\n"
	"Commands:\n";

/* A handle running as user (NULL: root). */
static struct capsa_files *open_files(struct cli *cli, const char *sandbox, const char *user)
{
	struct capsa_error *err = NULL;
	struct capsa_files *f;
	if (capsa_files_open(cli_ctx(cli), sandbox, &f, &err) < 0) {
		cli_fail(cli, err);
		return NULL;
	}
	capsa_files_set_user(f, user);
	return f;
}

#define USER_HELP "  -u, --user USER    as USER (user[:group], as for exec; default: root)\n"

/* err is passed by address: an argument list does not order its evaluation. */
static int finish(struct cli *cli, struct capsa_files *f, int rc, struct capsa_error **err)
{
	capsa_files_close(f);
	return rc < 0 ? cli_fail(cli, *err) : 0;
}

/* Octal permission bits. */
static int parse_mode(const char *s, int *mode)
{
	char *end;
	long m = strtol(s, &end, 8);
	if (!*s || *end || m < 0 || m > 07777)
		return -1;
	*mode = (int)m;
	return 0;
}

static CLI_CMD(files_read)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *user = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "u:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help("Usage: capsa files read [-u USER] SANDBOX PATH\n\n"
					"Write the content of a regular file to stdout.\n\nOptions:\n" USER_HELP);
		if (c != 'u')
			return cli_usage_error(cli, "unknown option");
		user = optarg;
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "requires a SANDBOX and a PATH");
	signal(SIGPIPE, SIG_IGN);
	struct capsa_files *f = open_files(cli, argv[optind], user);
	if (!f)
		return EXIT_CAPSA;
	struct capsa_error *err = NULL;
	return finish(cli, f, capsa_files_read_fd(f, argv[optind + 1], 1, NULL, &err), &err);
}

static const char write_usage[] =
	"Usage: capsa files write [OPTIONS] SANDBOX PATH\n"
	"\n"
	"Write stdin to a file.  By default the file is created or replaced\n"
	"atomically (a temporary file renamed over it when complete: a failed write\n"
	"leaves the old file intact).\n"
	"\n"
	"Options:\n"
	"  -a, --append       append instead (not atomic)\n"
	"      --create       fail if the file exists\n"
	"  -m, --mode MODE    permission bits in octal (default: the replaced file's, or 644)\n"
	"  -p, --parents      create missing parent directories\n"
	"  -u, --user USER    write as USER (user[:group], as for exec), who owns what\n"
	"                     is created; default: root\n";

static CLI_CMD(files_write)
{
	enum { O_CREATE = 256 };
	static const struct option opts[] = {
		{ "append", no_argument, NULL, 'a' }, { "create", no_argument, NULL, O_CREATE },
		{ "mode", required_argument, NULL, 'm' }, { "parents", no_argument, NULL, 'p' },
		{ "user", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct capsa_write_opts w = { .mode = -1 };
	int c;
	while ((c = getopt_long(argc, argv, "am:pu:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': w.how = CAPSA_WRITE_APPEND; break;
		case O_CREATE: w.how = CAPSA_WRITE_CREATE; break;
		case 'm':
			if (parse_mode(optarg, &w.mode) < 0)
				return cli_usage_error(cli, "invalid --mode '%s': expected octal permission bits", optarg);
			break;
		case 'p': w.make_parents = true; break;
		case 'u': w.user = optarg; break;
		case 'h': return cli_help(write_usage);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "requires a SANDBOX and a PATH");
	struct capsa_files *f = open_files(cli, argv[optind], NULL);
	if (!f)
		return EXIT_CAPSA;
	struct capsa_error *err = NULL;
	return finish(cli, f, capsa_files_write_fd(f, argv[optind + 1], 0, &w, &err), &err);
}

static const char *type_name(enum capsa_file_type t)
{
	switch (t) {
	case CAPSA_FILE_REGULAR: return "file";
	case CAPSA_FILE_DIR: return "dir";
	case CAPSA_FILE_SYMLINK: return "symlink";
	default: return "other";
	}
}

static json_t *info_json(const struct capsa_file_info *i)
{
	char mt[48];
	format_rfc3339(i->mtime_ms, mt, sizeof(mt));
	char mode[8];
	snprintf(mode, sizeof(mode), "%04o", i->mode & 07777);
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:i, s:i, s:s}", "name", i->name ? i->name : "", "path",
			      i->path ? i->path : "", "type", type_name(i->type), "size", (json_int_t)i->size, "mode", mode,
			      "uid", (int)i->uid, "gid", (int)i->gid, "modified", mt);
	if (i->owner)
		json_object_set_new(o, "owner", json_string(i->owner));
	if (i->group)
		json_object_set_new(o, "group", json_string(i->group));
	if (i->link_target)
		json_object_set_new(o, "linkTarget", json_string(i->link_target));
	return o;
}

static void print_long(const struct capsa_file_info *i)
{
	char perms[11] = "----------";
	perms[0] = i->type == CAPSA_FILE_DIR ? 'd' : i->type == CAPSA_FILE_SYMLINK ? 'l' : i->type == CAPSA_FILE_OTHER ? '?' : '-';
	const char *rwx = "rwxrwxrwx";
	for (int b = 0; b < 9; b++)
		if (i->mode & (1u << (8 - b)))
			perms[1 + b] = rwx[b];
	char mt[48];
	format_rfc3339(i->mtime_ms, mt, sizeof(mt));
	mt[19] = '\0';
	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%u", i->uid);
	snprintf(gid, sizeof(gid), "%u", i->gid);
	printf("%s %-8s %-8s %10lld %s %s", perms, i->owner ? i->owner : uid, i->group ? i->group : gid,
	       (long long)i->size, mt, i->path);
	if (i->link_target)
		printf(" -> %s", i->link_target);
	printf("\n");
}

static CLI_CMD(files_stat)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "follow", no_argument, NULL, 'L' },
		{ "user", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool js = false, follow = false;
	const char *user = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "Lu:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help("Usage: capsa files stat [--json] [-L] [-u USER] SANDBOX PATH\n\n"
					"Show a file's type, size, mode, owner and time (-L: follow a final symlink).\n"
					"\nOptions:\n" USER_HELP);
		if (c == 'j')
			js = true;
		else if (c == 'L')
			follow = true;
		else if (c == 'u')
			user = optarg;
		else
			return cli_usage_error(cli, "unknown option");
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "requires a SANDBOX and a PATH");
	struct capsa_files *f = open_files(cli, argv[optind], user);
	if (!f)
		return EXIT_CAPSA;
	struct capsa_error *err = NULL;
	struct capsa_file_info i;
	int rc = follow ? capsa_files_stat_follow(f, argv[optind + 1], &i, &err)
			: capsa_files_stat(f, argv[optind + 1], &i, &err);
	if (rc == 0) {
		if (js) {
			json_t *o = info_json(&i);
			char *s = json_dumps(o, JSON_INDENT(2));
			printf("%s\n", s);
			free(s);
			json_decref(o);
		} else {
			print_long(&i);
		}
		capsa_file_info_release(&i);
	}
	return finish(cli, f, rc, &err);
}

static CLI_CMD(files_ls)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "depth", required_argument, NULL, 'd' },
		{ "long", no_argument, NULL, 'l' }, { "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool js = false, lng = false;
	const char *user = NULL;
	int64_t depth = 1;
	int c;
	while ((c = getopt_long(argc, argv, "d:lu:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': js = true; break;
		case 'l': lng = true; break;
		case 'u': user = optarg; break;
		case 'd':
			if (parse_int64(optarg, 1, 1024, &depth) < 0)
				return cli_usage_error(cli, "invalid --depth '%s': 1-1024", optarg);
			break;
		case 'h':
			return cli_help("Usage: capsa files ls [-l] [-d DEPTH] [--json] [-u USER] SANDBOX PATH\n\n"
					"List a directory (DEPTH levels down, default 1), depth first, sorted by\n"
					"name.  Directories below that USER may not read are listed, not entered.\n"
					"\nOptions:\n" USER_HELP);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "requires a SANDBOX and a PATH");
	struct capsa_files *f = open_files(cli, argv[optind], user);
	if (!f)
		return EXIT_CAPSA;
	struct capsa_error *err = NULL;
	struct capsa_file_info *v;
	size_t n;
	int rc = capsa_files_list(f, argv[optind + 1], (int)depth, &v, &n, &err);
	if (rc == 0) {
		json_t *arr = js ? json_array() : NULL;
		for (size_t i = 0; i < n; i++) {
			if (js)
				json_array_append_new(arr, info_json(&v[i]));
			else if (lng)
				print_long(&v[i]);
			else
				printf("%s\n", depth > 1 ? v[i].path : v[i].name);
		}
		if (js) {
			char *s = json_dumps(arr, JSON_INDENT(2));
			printf("%s\n", s);
			free(s);
			json_decref(arr);
		}
		capsa_file_infos_free(v, n);
	}
	return finish(cli, f, rc, &err);
}

static CLI_CMD(files_mkdir)
{
	static const struct option opts[] = {
		{ "parents", no_argument, NULL, 'p' }, { "mode", required_argument, NULL, 'm' },
		{ "user", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool parents = false;
	int mode = -1;
	const char *user = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "pm:u:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': parents = true; break;
		case 'm':
			if (parse_mode(optarg, &mode) < 0)
				return cli_usage_error(cli, "invalid --mode '%s': expected octal permission bits", optarg);
			break;
		case 'u': user = optarg; break;
		case 'h':
			return cli_help("Usage: capsa files mkdir [-p] [-m MODE] [-u USER] SANDBOX PATH\n\n"
					"Create a directory (-p: with its parents; an existing one is then fine).\n"
					"\nOptions:\n" USER_HELP);
		default: return cli_usage_error(cli, "unknown option");
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "requires a SANDBOX and a PATH");
	struct capsa_files *f = open_files(cli, argv[optind], user);
	if (!f)
		return EXIT_CAPSA;
	struct capsa_error *err = NULL;
	int rc = capsa_files_mkdir(f, argv[optind + 1], mode, parents, user, &err);
	if (rc == 0 && !parents) {
		capsa_files_close(f);
		fprintf(stderr, "capsa: mkdir %s: file exists\n", argv[optind + 1]);
		return EXIT_CAPSA;
	}
	return finish(cli, f, rc < 0 ? -1 : 0, &err);
}

static CLI_CMD(files_rm)
{
	static const struct option opts[] = {
		{ "recursive", no_argument, NULL, 'r' }, { "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool rec = false;
	const char *user = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "rRu:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help("Usage: capsa files rm [-r] [-u USER] SANDBOX PATH\n\n"
					"Remove a file, symlink or empty directory (-r: a whole tree).\n"
					"\nOptions:\n" USER_HELP);
		if (c == 'u')
			user = optarg;
		else if (c == 'r' || c == 'R')
			rec = true;
		else
			return cli_usage_error(cli, "unknown option");
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "requires a SANDBOX and a PATH");
	struct capsa_files *f = open_files(cli, argv[optind], user);
	if (!f)
		return EXIT_CAPSA;
	struct capsa_error *err = NULL;
	return finish(cli, f, capsa_files_remove(f, argv[optind + 1], rec, &err), &err);
}

static CLI_CMD(files_mv)
{
	static const struct option opts[] = {
		{ "no-clobber", no_argument, NULL, 'n' }, { "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool noclobber = false;
	const char *user = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "nu:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help("Usage: capsa files mv [-n] [-u USER] SANDBOX FROM TO\n\n"
					"Rename FROM to TO (-n: fail if TO exists).\n\nOptions:\n" USER_HELP);
		if (c == 'u')
			user = optarg;
		else if (c == 'n')
			noclobber = true;
		else
			return cli_usage_error(cli, "unknown option");
	}
	if (argc - optind != 3)
		return cli_usage_error(cli, "requires a SANDBOX, FROM and TO");
	struct capsa_files *f = open_files(cli, argv[optind], user);
	if (!f)
		return EXIT_CAPSA;
	struct capsa_error *err = NULL;
	return finish(cli, f, capsa_files_rename(f, argv[optind + 1], argv[optind + 2], noclobber, &err), &err);
}

static const char *const event_names[] = { "create", "write", "remove", "rename", "chmod", "overflow" };

static void print_watch_event(void *ud, const struct capsa_watch_event *ev)
{
	bool js = *(bool *)ud;
	const char *type = (unsigned)ev->type < ARRAY_SIZE(event_names) ? event_names[ev->type] : "unknown";
	if (js) {
		json_t *o = json_pack("{s:s, s:s, s:b}", "type", type, "path", ev->path, "dir", ev->is_dir);
		char *s = json_dumps(o, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("%s %s%s\n", type, ev->path, ev->is_dir ? "/" : "");
	}
	fflush(stdout);
}

static CLI_CMD(files_watch)
{
	static const struct option opts[] = {
		{ "recursive", no_argument, NULL, 'r' }, { "json", no_argument, NULL, 'j' },
		{ "user", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool rec = false, js = false;
	const char *user = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "ru:h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help("Usage: capsa files watch [-r] [--json] [-u USER] SANDBOX DIR\n\n"
					"Print create, write, remove, rename and chmod events under DIR (-r: in\n"
					"every directory below it too) until interrupted or DIR is removed.\n"
					"\nOptions:\n" USER_HELP);
		if (c == 'r')
			rec = true;
		else if (c == 'j')
			js = true;
		else if (c == 'u')
			user = optarg;
		else
			return cli_usage_error(cli, "unknown option");
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "requires a SANDBOX and a DIR");
	struct capsa_error *err = NULL;
	struct capsa_watch *w;
	int sfd = session_signals_open();
	if (capsa_watch_open(cli_ctx(cli), argv[optind], argv[optind + 1], rec, user, &w, &err) < 0) {
		session_signals_close(sfd);
		return cli_fail(cli, err);
	}
	int rc = 0;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = capsa_watch_fd(w), .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo != SIGWINCH)
				break;
		}
		if (pfd[0].revents) {
			int r = capsa_watch_process(w, print_watch_event, &js, &err);
			if (r < 0)
				rc = cli_fail(cli, err);
			if (r != 0)
				break;
		}
	}
	capsa_watch_free(w);
	session_signals_close(sfd);
	return rc;
}

CLI_CMD(files)
{
	static const struct cli_cmd sub[] = {
		{ "read", cmd_files_read, "write a file's content to stdout" },
		{ "write", cmd_files_write, "write stdin to a file (atomically replaced)" },
		{ "stat", cmd_files_stat, "show a file's information" },
		{ "ls", cmd_files_ls, "list a directory" },
		{ "mkdir", cmd_files_mkdir, "create a directory" },
		{ "rm", cmd_files_rm, "remove a file or a tree" },
		{ "mv", cmd_files_mv, "rename a file or directory" },
		{ "watch", cmd_files_watch, "print changes under a directory" },
		{ NULL, NULL, NULL },
	};
	return cli_dispatch(cli, sub, "files", files_usage, argc - 1, argv + 1);
}
