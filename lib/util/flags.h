/* flags.h: command-line option parsing with getopt_long's interface and
 * docker's rule for long options: a long option matches only its whole name.
 *
 * glibc's and musl's getopt_long take any unique prefix (`--pid host` was
 * read as `--pids-limit host`); here a name that is not spelled out is an
 * unknown option.  Everything else is getopt_long's: the optind, optarg and
 * optopt globals (optind = 0 restarts), short option clusters (-it),
 * attached and separate values (-eK=V, -e K=V, --env=K=V, --env K=V),
 * optional values of long options only with '=', `--` ends the options, a
 * leading '+' in optstring stops at the first operand, else operands are
 * moved after the options as getopt_long does.  Errors are not printed:
 * flags_error() gives the message of the last call that returned '?'.
 * libc only.
 */
#ifndef CAPSA_UTIL_FLAGS_H
#define CAPSA_UTIL_FLAGS_H

#include <getopt.h>

int flags_getopt_long(int argc, char *const argv[], const char *optstring, const struct option *longopts,
		      int *longindex);
/* runc's style: -name is a long option as well, when name is one exactly;
 * otherwise the element is short options. */
int flags_getopt_long_only(int argc, char *const argv[], const char *optstring, const struct option *longopts,
			   int *longindex);
/* "unknown option '--pid'", "option '--name' needs a value", ...; "" when
 * the last call did not fail. */
const char *flags_error(void);

#endif
