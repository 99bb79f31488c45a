/* oci.h: the OCI runtime (runc's command set) over lib/linux.  What
 * cli/cmd-oci.c calls; every function takes the global options and fills
 * err on failure.
 *
 * The model is runc's: `create` clones the container's init (the configured
 * process itself, PID 1 of its namespace), which sets everything up and
 * blocks on <root>/<id>/exec.fifo; `create` then exits, and the engine's
 * monitor (conmon, containerd's shim) becomes the init's parent.  `start`
 * writes one byte to the fifo and the init execs.  No capsa process stays.
 */
#ifndef CAPSA_OCI_OCI_H
#define CAPSA_OCI_OCI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "linux/cgroup.h"
#include "util/error.h"

#define OCI_DEFAULT_ROOT "/run/capsa-oci"

struct oci_global {
	const char *root; /* state directory (--root) */
	bool systemd_cgroup; /* cgroupsPath is "slice:prefix:name" */
	/* non-fatal notes (an ignored AppArmor profile ...); may be NULL */
	void (*warn)(const char *msg);
};

struct oci_create_opts {
	const char *id;
	const char *bundle;	    /* NULL: the current directory */
	const char *console_socket; /* for process.terminal */
	const char *pid_file;
	bool no_pivot;
	int preserve_fds;	    /* fds 3 .. 3+n-1 are passed on */
	int log_fd;		    /* errors of the init after create go here too; -1: none */
	bool log_json;
};

int oci_create(const struct oci_global *g, const struct oci_create_opts *o, struct capsa_error **err);
/* create + start; without detach, waits for the container, deletes it and
 * returns its exit status (128+N for a signal) in *status. */
int oci_run(const struct oci_global *g, const struct oci_create_opts *o, bool detach, int *status,
	    struct capsa_error **err);
int oci_start(const struct oci_global *g, const char *id, struct capsa_error **err);
/* The runtime-spec state JSON (caller frees). */
int oci_state(const struct oci_global *g, const char *id, char **json, struct capsa_error **err);
int oci_kill(const struct oci_global *g, const char *id, int sig, bool all, struct capsa_error **err);
int oci_delete(const struct oci_global *g, const char *id, bool force, struct capsa_error **err);
int oci_pause(const struct oci_global *g, const char *id, bool pause, struct capsa_error **err);
int oci_update(const struct oci_global *g, const char *id, const struct linux_cgroup_limits *l,
	       struct capsa_error **err);
/* Host pids of every process of the container. */
int oci_pids(const struct oci_global *g, const char *id, pid_t **pids, size_t *n, struct capsa_error **err);
/* Every container under the root as a JSON array of state objects. */
int oci_list(const struct oci_global *g, char **json, struct capsa_error **err);

struct oci_exec_opts {
	const char *id;
	const char *process_file; /* runc exec --process (JSON), or: */
	char **args;		  /* the command, over the container's process */
	char **env;		  /* extra KEY=VALUE */
	const char *cwd;
	const char *user;	  /* "uid[:gid]" */
	char **cap_add;
	bool no_new_privs;
	bool tty;
	bool detach;
	const char *console_socket;
	const char *pid_file;
	int preserve_fds;
};

/* Without detach, waits and returns the process's exit status in *status. */
int oci_exec(const struct oci_global *g, const struct oci_exec_opts *o, int *status, struct capsa_error **err);

/* One log line as runc writes them: logrus text (time="..." level=error
 * msg="...") or JSON ({"level","msg","time"}), newline-terminated. */
char *oci_log_line(bool json, const char *level, const char *msg);

/* runtime-spec features.json for this build and host (caller frees). */
char *oci_features_json(void);
/* A default config.json like `runc spec` writes, with docker's seccomp
 * profile (caller frees). */
char *oci_spec_json(bool rootless);

#endif
