/* internal.h: what the files of lib/oci share: the container's record in
 * the state directory, hooks, and small process helpers.  Not an interface
 * for front-ends (oci.h is). */
#ifndef CAPSA_OCI_INTERNAL_H
#define CAPSA_OCI_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "oci/config.h"
#include "util/str.h"
#include "oci/oci.h"

enum oci_status { OCI_CREATING, OCI_CREATED, OCI_RUNNING, OCI_PAUSED, OCI_STOPPED };

/* <root>/<id>/state.json: written by create (twice: "creating" before the
 * init exists, so delete can undo a half-made container, then with the
 * init's pid), read by every other command. */
struct oci_state {
	char *id;
	char *bundle;
	char *rootfs;
	char *cgroup;	     /* what linux_cgroup_open() takes */
	pid_t pid;	     /* host pid of the init; 0 while creating */
	uint64_t start_time; /* of the init, /proc/PID/stat field 22: guards against pid reuse */
	int64_t created_ms;
	bool created;	     /* the init reported ready */
	bool has_hooks;	     /* poststart/poststop hooks in config.json */
	char *annotations;   /* JSON object text */
};

/* Checks a container id: 1 to 255 of [A-Za-z0-9_.+-], not "." or "..". */
int oci_id_check(const char *id, struct capsa_error **err);
enum oci_open {
	OCI_OPEN_READ,	 /* state, list, ps: no waiting for a lock */
	OCI_OPEN_LOCK,	 /* every command that changes the container */
	OCI_OPEN_CREATE, /* make the directory; EEXIST if the id is taken */
};
/* Opens (creating the root when missing) <root>/<id>, locked as how says. */
int oci_dir_open(const struct oci_global *g, const char *id, enum oci_open how, int *dirfd,
		 struct capsa_error **err);
const char *oci_root(const struct oci_global *g);
int oci_state_write(int dirfd, const struct oci_state *st, struct capsa_error **err);
int oci_state_read(int dirfd, const char *id, struct oci_state *st, struct capsa_error **err);
void oci_state_release(struct oci_state *st);
enum oci_status oci_status_of(int dirfd, const struct oci_state *st);
const char *oci_status_name(enum oci_status s);
/* The runtime-spec state object for hooks and `state`. */
char *oci_state_json(const struct oci_state *st, enum oci_status s);
/* Field 22 of /proc/PID/stat, and whether the process is a zombie or gone
 * (returns -1 then). */
/* The container's init, alive and the same process the record names. */
bool oci_init_alive(const struct oci_state *st);
/* Cgroup name from a config's cgroupsPath (systemd "slice:prefix:name"
 * expanded into a path), or "/capsa-oci/<id>" when empty ($CAPSA_OCI_CGROUP_PARENT
 * replaces capsa-oci).  Caller frees. */
char *oci_cgroup_name(const struct oci_global *g, const char *cgroups_path, const char *id, struct capsa_error **err);

/* Runs hooks in order with state on stdin, each bounded by its timeout:
 * the first failure is returned (kind names the list in errors). */
int oci_hooks_run(const struct oci_hook *h, size_t n, const char *kind, const char *state,
		  struct capsa_error **err);

/* Compiles a linux.seccomp object (seccomp_profile_compile_json_flags),
 * through the cache under root (seccomp-cache.c). */
int oci_seccomp_compile(const char *root, const char *json, uint64_t caps, struct buf *bpf, unsigned *flags,
			struct capsa_error **err);

/* Writes a pid file the way runc does (temporary file + rename). */
int oci_write_pid_file(const char *path, pid_t pid, struct capsa_error **err);
/* Connects to a console socket. */
int oci_console_connect(const char *path, struct capsa_error **err);

/* The state of the last process exit: 128+signal or the exit code. */
int oci_wait_status(int status);
/* Waits for our child pid, passing on the signals a user sends to the
 * foreground command (INT TERM HUP QUIT USR1 USR2 WINCH); its status. */
int oci_wait_forwarding(pid_t pid);

/* --- the last steps of a container process (the init and execs) --------- */

struct oci_launch {
	const struct oci_process *p;
	const void *bpf; /* seccomp program, or NULL */
	size_t bpf_len;
	unsigned bpf_flags;
	int console;	  /* connected console socket for p->terminal, or -1 */
	bool console_dev; /* bind the terminal on /dev/console (the init) */
	int preserve_fds;
	char exe[4096];	  /* filled by prepare */
	char **env;	  /* p->env plus HOME when it had none (prepare), or NULL */
	char home[4200];
};

/* In the child, inside the container's mount namespace: the terminal (sent
 * over the console socket), cwd, the executable looked up in the process's
 * PATH, and its identity, capabilities, rlimits, no_new_privs, umask (all
 * but seccomp).  Errors name the step. */
int oci_launch_prepare(struct oci_launch *l, struct capsa_error **err);
/* The seccomp filter, default signal dispositions, execve.  Returns only on
 * failure, with the exit status for it (126/127) in *code. */
int oci_launch_exec(struct oci_launch *l, int *code, struct capsa_error **err);

/* The sync channel between a runtime command and its child (SOCK_SEQPACKET):
 * one message = a type byte and a payload. */
enum { SYNC_GO = 'G', SYNC_HOOKS = 'H', SYNC_READY = 'R', SYNC_ERROR = 'E', SYNC_START = 'S' };
int oci_sync_send(int fd, char type, const void *p, size_t n);
/* Receives one message: its type (0 at EOF, -1 on error), payload NUL
 * terminated in buf. */
int oci_sync_recv(int fd, char *buf, size_t len, size_t *n);
/* In a child before it is ready: sends err as an error message, exits. */
__attribute__((noreturn)) void oci_child_fail(int sync, struct capsa_error *err);
/* A child after it is ready: the message to stderr and the log. */
__attribute__((noreturn)) void oci_child_die(int log_fd, bool log_json, int code, struct capsa_error *err);
/* Moves fd to the lowest free number >= min (close-on-exec). */
int oci_fd_above(int fd, int min);

#endif
