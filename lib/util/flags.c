/* flags.c: getopt_long without prefix matching (flags.h).  It keeps its
 * own position inside a short option cluster and otherwise only the libc
 * globals the callers read (optind, optarg, optopt). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "flags.h"

static int pos;		/* next char of the cluster at argv[optind]; 0: none */
static char err_msg[160];

const char *flags_error(void)
{
	return err_msg;
}

/* "unknown option '--pid'", "option '-e' needs a value" */
static int fail(const char *what, const char *dashes, const char *name, int len, const char *why)
{
	snprintf(err_msg, sizeof(err_msg), "%s '%s%.*s'%s", what, dashes, len > 64 ? 64 : len, name, why);
	return '?';
}

static bool is_option(const char *a)
{
	return a && a[0] == '-' && a[1];
}

/* argv[optind] starts with "--" (or "-" in long_only mode): the long option
 * whose name is exactly what stands before '=' (-1: none). */
static int long_match(const char *name, size_t len, const struct option *longopts)
{
	for (int i = 0; longopts && longopts[i].name; i++)
		if (strncmp(longopts[i].name, name, len) == 0 && longopts[i].name[len] == '\0')
			return i;
	return -1;
}

static int long_option(int argc, char *const argv[], const struct option *o, int idx, const char *dashes,
		       const char *name, int *longindex)
{
	const char *eq = strchr(name, '=');
	int len = eq ? (int)(eq - name) : (int)strlen(name);
	optind++;
	optarg = NULL;
	if (eq && o->has_arg == no_argument)
		return fail("option", dashes, name, len, " takes no value");
	if (eq) {
		optarg = (char *)eq + 1;
	} else if (o->has_arg == required_argument) {
		if (optind >= argc || !argv[optind])
			return fail("option", dashes, name, len, " needs a value");
		optarg = argv[optind++];
	}
	if (longindex)
		*longindex = idx;
	if (o->flag) {
		*o->flag = o->val;
		return 0;
	}
	return o->val;
}

static int short_option(int argc, char *const argv[], const char *optstring)
{
	const char *elem = argv[optind];
	char c = elem[pos++];
	const char *spec = c == ':' ? NULL : strchr(optstring, c);
	bool last = elem[pos] == '\0';
	optarg = NULL;
	optopt = (unsigned char)c;
	if (!spec) {
		if (last) {
			optind++;
			pos = 0;
		}
		return fail("unknown option", "-", &c, 1, "");
	}
	if (spec[1] != ':') {
		if (last) {
			optind++;
			pos = 0;
		}
		return c;
	}
	/* takes a value: the rest of the cluster, or (if not optional) the next
	 * element */
	optind++;
	if (!last)
		optarg = (char *)elem + pos;
	else if (spec[2] != ':' && optind < argc && argv[optind])
		optarg = argv[optind++];
	pos = 0;
	if (!optarg && spec[2] != ':')
		return fail("option", "-", &c, 1, " needs a value");
	return c;
}

/* The option element at argv[optind] (or the cluster being read). */
static int one_option(int argc, char *const argv[], const char *optstring, const struct option *longopts,
		      int *longindex, bool long_only)
{
	const char *elem = argv[optind];
	if (pos == 0) {
		if (strcmp(elem, "--") == 0) {
			optind++;
			return -1;
		}
		bool dd = elem[1] == '-';
		if (dd || long_only) {
			const char *name = elem + (dd ? 2 : 1);
			int idx = long_match(name, strcspn(name, "="), longopts);
			if (idx >= 0)
				return long_option(argc, argv, &longopts[idx], idx, dd ? "--" : "-", name, longindex);
			if (dd) {
				optind++;
				return fail("unknown option", "--", name, (int)strcspn(name, "="), "");
			}
		}
		pos = 1;
	}
	return short_option(argc, argv, optstring);
}

/* Moves argv[src] to argv[dest], shifting what lies between up by one. */
static void rotate(char *const argv[], int dest, int src)
{
	char **av = (char **)argv;
	char *tmp = av[src];
	for (int i = src; i > dest; i--)
		av[i] = av[i - 1];
	av[dest] = tmp;
}

static int getopt_common(int argc, char *const argv[], const char *optstring, const struct option *longopts,
			 int *longindex, bool long_only)
{
	err_msg[0] = '\0';
	if (optind == 0) {
		optind = 1;
		pos = 0;
	}
	bool permute = optstring[0] != '+';
	if (!permute)
		optstring++;
	if (optind >= argc || !argv[optind])
		return -1;
	int skipped = optind;
	if (permute) {
		/* operands are stepped over; the option found is moved before them */
		int i = optind;
		while (i < argc && argv[i] && !is_option(argv[i]))
			i++;
		if (i >= argc || !argv[i])
			return -1;
		optind = i;
	} else if (!is_option(argv[optind])) {
		return -1;
	}
	int resumed = optind;
	int rc = one_option(argc, argv, optstring, longopts, longindex, long_only);
	if (resumed > skipped) {
		int n = optind - resumed;
		for (int i = 0; i < n; i++)
			rotate(argv, skipped, optind - 1);
		optind = skipped + n;
	}
	return rc;
}

int flags_getopt_long(int argc, char *const argv[], const char *optstring, const struct option *longopts,
		      int *longindex)
{
	return getopt_common(argc, argv, optstring, longopts, longindex, false);
}

int flags_getopt_long_only(int argc, char *const argv[], const char *optstring, const struct option *longopts,
			   int *longindex)
{
	return getopt_common(argc, argv, optstring, longopts, longindex, true);
}
