/* config.h: an OCI runtime-spec config.json (v1.0 to v1.2), parsed and
 * checked into the structures lib/linux works with.
 *
 * The document is hostile until proven otherwise: its size and nesting are
 * capped before it is parsed, every array has a maximum length, and every
 * field that would reach the kernel (paths, names, numbers) is checked here,
 * with an error that names the field ("mounts[2].destination: contains
 * '..'").  Parsing touches no file: the bundle's paths are resolved by the
 * caller at create time.
 */
#ifndef CAPSA_OCI_CONFIG_H
#define CAPSA_OCI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "linux/cgroup.h"
#include "linux/ns.h"
#include "linux/proc.h"
#include "linux/rootfs.h"
#include "util/error.h"

#define OCI_SPEC_VERSION "1.2.0"
#define OCI_CONFIG_MAX (4u << 20)  /* bytes of config.json */
#define OCI_CONFIG_MAX_DEPTH 32	   /* nesting */
#define OCI_MAX_ITEMS 4096	   /* entries of any one array (mounts, env, args ...) */
#define OCI_MAX_NS 8

enum oci_hook_kind {
	OCI_HOOK_PRESTART,
	OCI_HOOK_CREATE_RUNTIME,
	OCI_HOOK_CREATE_CONTAINER,
	OCI_HOOK_START_CONTAINER,
	OCI_HOOK_POSTSTART,
	OCI_HOOK_POSTSTOP,
	OCI_HOOK_KINDS,
};

struct oci_hook {
	const char *path;
	char **args; /* NULL-terminated; borrowed strings */
	char **env;
	int timeout; /* seconds, 0: none */
};

struct oci_ns {
	uint64_t flag; /* CLONE_NEW* */
	const char *path; /* NULL: a new namespace */
};

struct oci_process {
	bool terminal;
	unsigned short console_rows, console_cols;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	bool has_umask;
	mode_t umask;
	char **args; /* NULL-terminated */
	char **env;  /* NULL-terminated */
	const char *cwd;
	bool has_caps;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	struct linux_rlimit *rlimits;
	size_t n_rlimits;
	bool no_new_privs;
	bool has_oom_score_adj;
	int oom_score_adj;
	const char *apparmor, *selinux;
};

struct oci_config {
	void *json; /* json_t *: the strings below point into it */
	const char *version;
	const char *root_path; /* as written; relative to the bundle when not absolute */
	bool root_readonly;
	const char *hostname, *domainname;
	struct linux_mount *mounts;
	size_t n_mounts;
	bool has_process;
	struct oci_process process;
	struct oci_hook *hooks[OCI_HOOK_KINDS];
	size_t n_hooks[OCI_HOOK_KINDS];
	/* linux */
	struct oci_ns ns[OCI_MAX_NS];
	size_t n_ns;
	struct linux_idmap *uid_maps, *gid_maps;
	size_t n_uid_maps, n_gid_maps;
	struct linux_device *devices;
	size_t n_devices;
	const char *cgroups_path;
	struct linux_cgroup_limits limits; /* device_rules point into dev_rules */
	struct linux_device_rule *dev_rules;
	size_t n_dev_rules;
	char **sysctl; /* "key", "value", "key", "value", ..., NULL */
	char *seccomp; /* linux.seccomp re-serialized, or NULL */
	char **masked_paths, **readonly_paths; /* NULL-terminated, or NULL */
	unsigned long rootfs_propagation; /* MS_* | MS_REC, 0: default */
	char **owned; /* strings allocated while parsing */
};

/* Parses and checks text (len bytes).  On failure *c is released. */
int oci_config_parse(const char *text, size_t len, struct oci_config *c, struct capsa_error **err);
/* Reads <bundle_fd>/config.json (capped at OCI_CONFIG_MAX) and parses it. */
int oci_config_load(int bundle_fd, struct oci_config *c, struct capsa_error **err);
void oci_config_release(struct oci_config *c);

/* Only the "process" object (runc exec --process FILE). */
int oci_process_parse(const char *text, size_t len, struct oci_process *p, void **json_out, struct capsa_error **err);
void oci_process_release(struct oci_process *p);

/* linux.resources (runc update --resources FILE), into l; its strings
 * point into *json_out (json_decref it after use).  Device rules are not
 * part of an update. */
int oci_resources_parse(const char *text, size_t len, struct linux_cgroup_limits *l, void **json_out,
			struct capsa_error **err);

/* The namespace of type flag in c (NULL: not listed). */
const struct oci_ns *oci_config_ns(const struct oci_config *c, uint64_t flag);

/* "name"/"value" lookup in a NULL-terminated "KEY=VALUE" vector. */
const char *oci_env_get(char *const *env, const char *name);

#endif
