/* test-util.c: lib/util: value parsers, buffers, confined path resolution
 * (openat2 and the fallback walk), atomic writes, rm -rf, option parsing,
 * env files, hostnames. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "util/base64.h"
#include "util/envfile.h"
#include "util/flags.h"
#include "util/fs.h"
#include "util/str.h"

static void test_sizes(void)
{
	int64_t v;
	struct capsa_error *err = NULL;
	ok(parse_size("64m", &v, &err) == 0 && v == 64 << 20, "64m");
	ok(parse_size("1g", &v, &err) == 0 && v == 1LL << 30, "1g");
	ok(parse_size("4096", &v, &err) == 0 && v == 4096, "plain bytes");
	ok(parse_size("1.5k", &v, &err) == 0 && v == 1536, "fraction");
	ok(parse_size("2GiB", &v, &err) == 0 && v == 2LL << 30, "GiB");
	ok(parse_size("12q", &v, &err) < 0 && err && strstr(err->msg, "'12q'") && strstr(err->msg, "unit"),
	   "unknown unit named in error: %s", err ? err->msg : "");
	capsa_error_free(err);
	err = NULL;
	ok(parse_size("-1", &v, &err) < 0, "negative refused");
	capsa_error_free(err);
	err = NULL;
	ok(parse_size("99999999999t", &v, &err) < 0 && err->code == ERANGE, "overflow refused");
	capsa_error_free(err);
	err = NULL;
	ok(parse_size("", &v, &err) < 0, "empty refused");
	capsa_error_free(err);
	/* the edges: 63 bits, and what strtoull/strtod would have let through */
	err = NULL;
	ok(parse_size("8388607t", &v, &err) == 0 && v == 8388607LL << 40, "8388607t fits in 63 bits");
	ok(parse_size("9223372036854775807", &v, &err) == 0 && v == INT64_MAX, "INT64_MAX bytes");
	static const char *const bad[] = { "8388608t", "9223372036854775808", "8388608.5t", "1.5.5m", " 5m",
					   "5 m",      "0x10",		     "1e3",	  "-0",	    "+5m",
					   "5mm",      "10Q",		     ".",	  "m" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		int r = parse_size(bad[i], &v, &err);
		ok(r < 0 && err && strstr(err->msg, bad[i]), "'%s' refused, named: %s", bad[i], err ? err->msg : "");
		capsa_error_free(err);
	}
}

static void test_durations(void)
{
	int64_t v;
	struct capsa_error *err = NULL;
	ok(parse_duration_ms("10s", &v, &err) == 0 && v == 10000, "10s");
	ok(parse_duration_ms("500ms", &v, &err) == 0 && v == 500, "500ms");
	ok(parse_duration_ms("1h30m", &v, &err) == 0 && v == 5400000, "1h30m");
	ok(parse_duration_ms("2", &v, &err) == 0 && v == 2000, "bare seconds");
	ok(parse_duration_ms("5x", &v, &err) < 0 && strstr(err->msg, "'5x'"), "bad unit");
	capsa_error_free(err);
	err = NULL;
	ok(parse_duration_ms("-5s", &v, &err) < 0, "negative refused");
	capsa_error_free(err);
}

static void test_signals(void)
{
	int s;
	struct capsa_error *err = NULL;
	ok(parse_signal("TERM", &s, &err) == 0 && s == SIGTERM, "TERM");
	ok(parse_signal("SIGUSR1", &s, &err) == 0 && s == SIGUSR1, "SIGUSR1");
	ok(parse_signal("sigkill", &s, &err) == 0 && s == SIGKILL, "lower case");
	ok(parse_signal("15", &s, &err) == 0 && s == SIGTERM, "number");
	ok(parse_signal("RTMIN+2", &s, &err) == 0 && s == SIGRTMIN + 2, "realtime");
	ok(parse_signal("BOGUS", &s, &err) < 0 && strstr(err->msg, "BOGUS"), "unknown name");
	capsa_error_free(err);
	err = NULL;
	ok(parse_signal("99", &s, &err) < 0, "out of range number");
	capsa_error_free(err);
	is_str(signal_name(SIGTERM), "SIGTERM", "signal_name");
}

static void test_buf(void)
{
	struct buf b = BUF_INIT;
	b.cap = 8;
	ok(buf_append(&b, "12345678", 8) == 0, "append up to the cap");
	ok(buf_append(&b, "9", 1) < 0 && errno == EFBIG, "cap enforced");
	buf_consume(&b, 3);
	is_str(buf_cstr(&b), "45678", "consume");
	buf_release(&b);
	/* a buffer only reserved is still an empty string */
	b.cap = 0;
	ok(buf_reserve(&b, 100) == 0, "reserve");
	memset(b.data, 'x', b.alloc);
	is_str(buf_cstr(&b), "", "reserved buffer reads as empty");
	buf_release(&b);
	char **v = strv_split("a::b", ':');
	is_int(strv_len(v), 3, "split keeps empty fields");
	strv_free(v);
}

static void test_rfc3339(void)
{
	int64_t ms;
	ok(parse_rfc3339("2026-11-23T17:15:00.250Z", &ms) == 0 && ms == 1795454100250LL, "parse");
	char out[64];
	format_rfc3339(ms, out, sizeof(out));
	is_str(out, "2026-11-23T17:15:00.250Z", "format round trip");
	ok(parse_rfc3339("2026-11-23", &ms) < 0, "date only refused");
}

static void test_beneath(bool fallback)
{
	const char *mode = fallback ? "fallback" : "openat2";
	fs_force_openat2_fallback(fallback);
	char tmpl[] = "/tmp/capsa-test-XXXXXX";
	ok(mkdtemp(tmpl) != NULL, "mkdtemp");
	int root = open(tmpl, O_PATH | O_DIRECTORY | O_CLOEXEC);
	mkdirat(root, "d", 0755);
	mkdirat(root, "d/e", 0755);
	int fd = openat(root, "d/e/f", O_CREAT | O_WRONLY, 0644);
	close(fd);
	ok(symlinkat("/etc", root, "abs") == 0 && symlinkat("../../..", root, "d/up") == 0 &&
		   symlinkat("e", root, "d/rel") == 0,
	   "%s: symlinks", mode);

	fd = open_beneath(root, "d/e/f", O_RDONLY, 0, RES_NO_SYMLINKS);
	ok(fd >= 0, "%s: plain path resolves", mode);
	close(fd);
	fd = open_beneath(root, "abs/passwd", O_RDONLY, 0, RES_NO_SYMLINKS);
	ok(fd < 0 && (errno == ELOOP || errno == EXDEV), "%s: symlink parent refused (errno %d)", mode, errno);
	fd = open_beneath(root, "../etc/passwd", O_RDONLY, 0, RES_NO_SYMLINKS);
	ok(fd < 0 && errno == EXDEV, "%s: .. refused", mode);
	fd = open_beneath(root, "/etc/passwd", O_RDONLY, 0, RES_NO_SYMLINKS);
	ok(fd < 0, "%s: absolute refused", mode);

	/* in-root mode: escapes are clamped to the root */
	fd = open_beneath(root, "abs/passwd", O_RDONLY, 0, RES_IN_ROOT);
	ok(fd < 0 && errno == ENOENT, "%s: /etc symlink stays inside root (errno %d)", mode, errno);
	fd = open_beneath(root, "d/up/d/e/f", O_RDONLY, 0, RES_IN_ROOT);
	ok(fd >= 0, "%s: ../../.. clamps at root", mode);
	if (fd >= 0)
		close(fd);
	fd = open_beneath(root, "../../../../d/rel/f", O_RDONLY, 0, RES_IN_ROOT);
	ok(fd >= 0, "%s: leading .. clamps and relative link follows", mode);
	if (fd >= 0)
		close(fd);
	const char *base;
	int pfd = open_parent_beneath(root, "d/e/newfile", RES_NO_SYMLINKS, &base);
	ok(pfd >= 0 && str_eq(base, "newfile"), "%s: parent split", mode);
	if (pfd >= 0)
		close(pfd);

	struct capsa_error *err = NULL;
	ok(write_file_atomic_at(root, "atomic", "hello", 5, 0600, true, &err) == 0, "%s: atomic write", mode);
	struct buf b = BUF_INIT;
	ok(read_file_at(root, "atomic", 100, &b, &err) == 0 && str_eq(b.data, "hello"), "%s: read back", mode);
	buf_release(&b);
	ok(read_file_at(root, "atomic", 2, &b, &err) < 0 && err && err->code == EFBIG, "%s: read cap", mode);
	capsa_error_free(err);
	err = NULL;
	buf_release(&b);

	int parent = open("/tmp", O_PATH | O_DIRECTORY);
	ok(rm_rf_at(parent, tmpl + 5, &err) == 0, "%s: rm -rf", mode);
	ok(access(tmpl, F_OK) < 0, "%s: gone", mode);
	ok(access("/etc/passwd", F_OK) == 0, "%s: symlink targets untouched", mode);
	close(parent);
	close(root);
	fs_force_openat2_fallback(false);
}

static void test_base64(void)
{
	/* RFC 4648 section 10 vectors */
	static const char *const v[][2] = {
		{ "", "" },	      { "f", "Zg==" },	       { "fo", "Zm8=" },	 { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		char *e = base64_encode(v[i][0], strlen(v[i][0]));
		is_str(e, v[i][1], "encode '%s'", v[i][0]);
		free(e);
		struct buf b = BUF_INIT;
		ok(base64_decode(v[i][1], strlen(v[i][1]), &b) == 0 && b.len == strlen(v[i][0]) &&
			   memcmp(buf_cstr(&b), v[i][0], b.len) == 0,
		   "decode '%s'", v[i][1]);
		buf_release(&b);
	}
	struct buf b = BUF_INIT;
	ok(base64_decode("Zm9vYmE", 7, &b) == 0 && b.len == 5, "padding optional");
	buf_release(&b);
	uint8_t all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	char *e = base64_encode(all, sizeof(all));
	ok(base64_decode(e, strlen(e), &b) == 0 && b.len == 256 && memcmp(b.data, all, 256) == 0,
	   "every byte value round-trips");
	free(e);
	buf_release(&b);
	static const char *const bad[] = { "Zg=", "Z", "Zm9v\n", "Zm 9v", "Zh==", "Zm9=v", "====", "Zm9v*" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		ok(base64_decode(bad[i], strlen(bad[i]), &b) < 0 && errno == EINVAL, "refused: '%s'", bad[i]);
		buf_release(&b);
	}
	b.cap = 2;
	ok(base64_decode("Zm9v", 4, &b) < 0 && errno == EFBIG, "output cap");
	buf_release(&b);
}

static void test_utf8_seq(void)
{
	static const struct {
		const char *s;
		size_t n, want;
	} v[] = {
		{ "a", 1, 1 },
		{ "\xc3\xa9", 2, 2 },		  /* é */
		{ "\xe2\x82\xac", 3, 3 },	  /* € */
		{ "\xf0\x9f\x98\x80", 4, 4 }, /* U+1F600 */
		{ "\xf4\x8f\xbf\xbf", 4, 4 }, /* U+10FFFF */
		{ "\xc0\xaf", 2, 0 },		  /* overlong '/' */
		{ "\xe0\x80\xaf", 3, 0 },	  /* overlong, 3 bytes */
		{ "\xed\xa0\x80", 3, 0 },	  /* surrogate D800 */
		{ "\xf4\x90\x80\x80", 4, 0 }, /* above U+10FFFF */
		{ "\xe2\x82", 2, 0 },		  /* truncated */
		{ "\xe2\x28\xa1", 3, 0 },	  /* bad continuation */
		{ "\x80", 1, 0 },		  /* lone continuation */
		{ "\xff", 1, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		ok(utf8_seq((const unsigned char *)v[i].s, v[i].n) == v[i].want, "utf8_seq case %zu", i);
}

static void test_json_str(void)
{
	struct buf b = BUF_INIT;
	buf_append_json_str(&b, "a\"b\\c\n\x01\xc3\xa9\xff!");
	is_str(buf_cstr(&b), "\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\\ufffd!\"",
	       "JSON string: escapes, UTF-8 kept, invalid bytes replaced");
	buf_release(&b);
}

/* Runs the option parser over the words of line (argv[0] is "prog") and
 * returns what it saw: "c" or "c=ARG" per option, "?MESSAGE" per error,
 * then "|" and the operands left from optind. */
static char *flags_trace(const char *optstring, bool long_only, const char *line)
{
	static const struct option opts[] = {
		{ "detach", no_argument, NULL, 'd' },	     { "env", required_argument, NULL, 'e' },
		{ "pids-limit", required_argument, NULL, 'p' }, { "publish", required_argument, NULL, 'P' },
		{ "sig-proxy", optional_argument, NULL, 'S' },   { "tty", no_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_strv_ char **words = strv_split(line, ' ');
	char **argv = strv_push(NULL, "prog");
	for (char **w = words; *line && *w; w++)
		argv = strv_push(argv, *w);
	int argc = (int)strv_len(argv);
	struct buf b = BUF_INIT;
	int c;
	optind = 0;
	while ((c = long_only ? flags_getopt_long_only(argc, argv, optstring, opts, NULL)
			      : flags_getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
		if (c == '?')
			buf_appendf(&b, "?%s,", flags_error());
		else
			buf_appendf(&b, "%c%s%s,", c, optarg ? "=" : "", optarg ? optarg : "");
	}
	buf_appendf(&b, "|");
	for (int i = optind; i < argc; i++)
		buf_appendf(&b, "%s%s", i > optind ? " " : "", argv[i]);
	strv_free(argv);
	return buf_steal(&b);
}

static void test_flags(void)
{
	static const struct {
		const char *optstring, *line, *want;
		bool long_only;
	} v[] = {
		/* a long option is its whole name, never a prefix of one */
		{ "de:tp:", "--pid host img", "?unknown option '--pid',|host img" },
		{ "de:tp:", "--pids 5", "?unknown option '--pids',|5" },
		{ "de:tp:", "--p=1", "?unknown option '--p',|" },
		{ "de:tp:", "--pids-limit 5 --publish=80 x", "p=5,P=80,|x" },
		{ "+de:t", "-dt -e A=1 -eB=2 --env C=3 --env=D=4 x -d", "d,t,e=A=1,e=B=2,e=C=3,e=D=4,|x -d" },
		/* operands move after the options, as getopt_long moves them */
		{ "de:t", "x -d y -e K=V -- -t", "d,e=K=V,|x y -t" },
		{ "de:t", "x -td y", "t,d,|x y" },
		{ "+de:t", "- -d", "|- -d" },
		{ "de:t", "--detach=1", "?option '--detach' takes no value,|" },
		{ "de:t", "x --env", "?option '--env' needs a value,|x" },
		{ "de:t", "-e", "?option '-e' needs a value,|" },
		{ "de:t", "-x -d", "?unknown option '-x',d,|" },
		{ "de:t", "-dx", "d,?unknown option '-x',|" },
		{ "+d", "--sig-proxy --sig-proxy=false --sig-proxy false", "S,S=false,S,|false" },
		{ "+d", "", "|" },
		/* runc's style: -name is a long option when it is one exactly */
		{ "+de:", "-detach -e V -env=W -d", "d,e=V,e=W,d,|", true },
		{ "+de:", "-det", "d,e=t,|", true },
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		_cleanup_free_ char *got = flags_trace(v[i].optstring, v[i].long_only, v[i].line);
		is_str(got, v[i].want, "flags: '%s'", v[i].line);
	}
	/* a later call that succeeds forgets the error */
	char *argv[] = { (char *)"prog", (char *)"--nope", (char *)"-d", NULL };
	static const struct option none[] = { { NULL, 0, NULL, 0 } };
	optind = 0;
	ok(flags_getopt_long(3, argv, "d", none, NULL) == '?' && *flags_error(), "error kept");
	ok(flags_getopt_long(3, argv, "d", none, NULL) == 'd' && !*flags_error(), "error cleared");
}

static char *test_lookup(const char *name)
{
	return strcmp(name, "FROM_HOST") == 0 ? (char *)"host value" : NULL;
}

static void test_envfile(void)
{
	static const char good[] = "# comment\n\n  A=1\nB= spaced \"q\" \r\n\tFROM_HOST\nUNSET\nC=x=y\n#D=4\nE=";
	char **env = NULL;
	struct capsa_error *err = NULL;
	ok(envfile_parse("f", good, sizeof(good) - 1, test_lookup, &env, &err) == 0, "good env file");
	_cleanup_free_ char *joined = NULL;
	struct buf b = BUF_INIT;
	for (char **e = env; e && *e; e++)
		buf_appendf(&b, "[%s]", *e);
	joined = buf_steal(&b);
	is_str(joined, "[A=1][B= spaced \"q\" ][FROM_HOST=host value][C=x=y][E=]",
	       "entries as written; KEY alone from the host or skipped");
	strv_free(env);
	static const struct {
		const char *data;
		size_t len;
		const char *want;
	} bad[] = {
		{ "A=1\nBAD LINE\nC=3\n", 0, "env file f line 2: variable name 'BAD LINE' contains white space" },
		{ "export C=3\n", 0, "env file f line 1: variable name 'export C' contains white space" },
		{ "A=1\nB=2\0C=3\n", 11, "env file f line 2: contains a NUL byte" },
		{ "=v\n", 0, "env file f line 1: no variable name before '='" },
		{ "A=\xff\n", 0, "env file f line 1: not valid UTF-8" },
		{ "KEY =v\n", 0, "env file f line 1: variable name 'KEY ' contains white space" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		env = NULL;
		err = NULL;
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].data);
		int r = envfile_parse("f", bad[i].data, len, test_lookup, &env, &err);
		ok(r < 0 && err && str_has_prefix(err->msg, bad[i].want), "env file refused: %s",
		   err ? err->msg : "(accepted)");
		capsa_error_free(err);
		strv_free(env);
	}
}

static void test_hostname(void)
{
	char label63[64], long64[65], dotted64[65];
	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(long64, 'a', 64);
	long64[64] = '\0';
	memset(dotted64, 'a', 62); /* 62 a's, '.', 'b': 64 characters */
	dotted64[62] = '.';
	dotted64[63] = 'b';
	dotted64[64] = '\0';
	const char *good[] = { "a", "web-1", "a.b.c", "0abc", "A-Z.example", label63, dotted64 };
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct capsa_error *err = NULL;
		ok(check_hostname(good[i], &err) == 0, "hostname '%s' accepted", good[i]);
		capsa_error_free(err);
	}
	const struct {
		const char *s, *want;
	} bad[] = {
		{ "", "empty" },	{ "a\nb", "byte 0x0a at position 2" },
		{ "a_b", "'_' at position 2" },	{ "a b", "' ' at position 2" },
		{ "-a", "starts or ends with '-'" },	{ "a.b-", "label 'b-' starts or ends with '-'" },
		{ "a.", "empty label" },	{ ".a", "empty label" },
		{ "a..b", "empty label" },	{ "\xc3\xa9", "byte 0xc3" },
		{ long64, "a label of 64 characters" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct capsa_error *err = NULL;
		int r = check_hostname(bad[i].s, &err);
		ok(r < 0 && err && strstr(err->msg, bad[i].want) && !strchr(err->msg, '\n'), "hostname refused: %s",
		   err ? err->msg : "(accepted)");
		capsa_error_free(err);
	}
	char too_long[80];
	memset(too_long, 'a', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	too_long[10] = '.';
	struct capsa_error *err = NULL;
	int r = check_hostname(too_long, &err);
	ok(r < 0 && strstr(err->msg, "79 characters, at most 64"), "over 64 refused: %s", err ? err->msg : "");
	capsa_error_free(err);
}

int main(void)
{
	test_flags();
	test_envfile();
	test_hostname();
	test_utf8_seq();
	test_json_str();
	test_base64();
	test_sizes();
	test_durations();
	test_signals();
	test_buf();
	test_rfc3339();
	test_beneath(false);
	test_beneath(true);
	return done_testing();
}
