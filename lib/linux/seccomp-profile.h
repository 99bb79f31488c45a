/* seccomp-profile.h: compiling seccomp profiles to classic BPF with
 * libseccomp.  Part of the core library (not libc-only): the agent receives
 * the compiled program and only installs it (proc.h).
 */
#ifndef CAPSA_LINUX_SECCOMP_PROFILE_H
#define CAPSA_LINUX_SECCOMP_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/str.h"

/* docker's default profile (an allowlist, EPERM otherwise; ENOSYS for
 * syscalls unknown to it), with the rules that depend on the granted
 * capability set applied for caps. */
int seccomp_profile_default(uint64_t caps, struct buf *bpf, struct capsa_error **err);
/* A profile in docker's JSON format or the OCI runtime-spec linux.seccomp
 * object.  Unknown syscall names are skipped (as docker does); unknown
 * actions, arches or operators are an error naming them. */
int seccomp_profile_compile_json(const char *json, size_t len, uint64_t caps, struct buf *bpf,
				 struct capsa_error **err);
/* The same, also returning the profile's "flags" (SECCOMP_FILTER_FLAG_TSYNC,
 * _LOG, _SPEC_ALLOW) for linux_seccomp_install(); flags may be NULL. */
int seccomp_profile_compile_json_flags(const char *json, size_t len, uint64_t caps, struct buf *bpf, unsigned *flags,
				       struct capsa_error **err);
/* docker's default profile in docker's JSON format (with its includes and
 * excludes), e.g. for `capsa oci spec` or a user to start from; compiling
 * it gives the same program as seccomp_profile_default().  Caller frees. */
char *seccomp_profile_default_json(void);
/* The same profile as a runtime-spec linux.seccomp object for a process
 * with the capabilities caps on this machine: the rules whose includes and
 * excludes hold, without those fields (for `capsa oci spec`). */
char *seccomp_profile_default_oci_json(uint64_t caps);

#endif
