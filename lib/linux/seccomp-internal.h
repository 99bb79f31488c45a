/* seccomp-internal.h: the profile model shared by the default profile's
 * data (seccomp-default.c) and the compiler (seccomp-profile.c).  Field
 * meanings follow docker's seccomp JSON. */
#ifndef CAPSA_LINUX_SECCOMP_INTERNAL_H
#define CAPSA_LINUX_SECCOMP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SC_MAX_ARGS 16

struct sc_arg {
	unsigned index;
	uint64_t value, value_two;
	const char *op; /* "SCMP_CMP_EQ" ... */
};

struct sc_rule {
	const char *const *names; /* NULL-terminated */
	const char *action;	  /* "SCMP_ACT_ALLOW" ... */
	int64_t errno_ret;	  /* -1: not given */
	struct sc_arg args[SC_MAX_ARGS];
	size_t n_args;
	/* docker's includes/excludes: the rule applies when every cap in
	 * caps_in is granted, no cap in caps_out is, the native arch is in
	 * arches_in (when given) and not in arches_out, and the kernel is at
	 * least min_kernel. */
	const char *const *caps_in;
	const char *const *caps_out;
	const char *const *arches_in;
	const char *const *arches_out;
	const char *min_kernel;
};

struct sc_profile {
	const char *default_action;
	int64_t default_errno; /* -1: not given (EPERM) */
	const char *const *arches; /* "SCMP_ARCH_X86_64" ...; NULL: native only */
	const struct sc_rule *rules;
	size_t n_rules;
};

/* docker's default profile (moby profiles/seccomp/default.json), with the
 * architectures this build's native arch maps to. */
extern const struct sc_profile seccomp_default_profile;

#endif
