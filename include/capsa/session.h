/* capsa/session.h: asynchronous process sessions, for event-driven callers
 * (capsa serve), and the processes a sandbox runs.
 *
 * A session is one connection to the sandbox's supervisor carrying one
 * process: its output arrives through callbacks when the caller, having seen
 * the session's fd readable, calls capsa_proc_process().  Nothing here
 * blocks except capsa_proc_start() and capsa_proc_attach(), which wait for
 * the supervisor's answer (the process running, typically well under a
 * millisecond).  A session is not thread-safe; different sessions may be
 * used from different threads (each with its own capsa_ctx for the start).
 *
 * Flow control: for a process a session started and does not keep, output
 * credit is returned when the output callback returns, unless manual_credit
 * is set, in which case the caller returns it with capsa_proc_consumed()
 * once it has really written the bytes out (to a slow HTTP client, say): a
 * process whose reader is slow then blocks in write(2) instead of growing
 * anybody's memory.  For kept processes and attached sessions the
 * supervisor returns credit itself and holds it back while an attached
 * session is more than 1 MiB behind: to slow such a process down, stop
 * calling capsa_proc_process() (its output then waits in the socket).
 *
 * Kept processes (keep = true: E2B background commands) survive the session
 * that started them: when it is freed, or its connection breaks (the API
 * server restarts), the process runs on and its output is kept in a bounded
 * buffer (CAPSA_PROC_BUFFER bytes, the oldest dropped first) until somebody
 * attaches again; its exit status is kept for the last CAPSA_PROC_RETAINED
 * ended processes nobody saw end.  Other processes get SIGHUP, as from a
 * terminal hangup, when their session goes away.
 */
#ifndef CAPSA_SESSION_H
#define CAPSA_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "capsa/capsa.h"
#include "capsa/sandbox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output a kept process may produce while nobody is attached, and the
 * number of ended kept processes whose exit (and buffered output) the
 * supervisor remembers for a later attach. */
#define CAPSA_PROC_BUFFER (512 * 1024)
#define CAPSA_PROC_RETAINED 16
/* Longest tag. */
#define CAPSA_PROC_TAG_MAX 128

enum capsa_channel { CAPSA_STDIN = 0, CAPSA_STDOUT = 1, CAPSA_STDERR = 2 };

struct capsa_proc;

struct capsa_proc_opts {
	char **argv;		/* required; argv[0] is searched in PATH */
	char **env;		/* KEY=VALUE, over the sandbox's environment */
	const char *workdir;	/* NULL: the sandbox's; must exist */
	const char *user;	/* user[:group], name or number; NULL: the sandbox's */
	bool tty;		/* a pseudo-terminal; output arrives on CAPSA_STDOUT only */
	uint16_t rows, cols;	/* terminal size; 0: 24x80 */
	bool stdin_open;	/* stdin is fed by capsa_proc_write(); else /dev/null */
	int64_t timeout_ms;	/* > 0: TERM to its process group after this, KILL after
				 * kill_grace_ms (0: 10 s); it then ends with exit code
				 * 124 and reason "timeout" */
	int64_t kill_grace_ms;
	const char *tag;	/* caller's name for the process, unique among the
				 * sandbox's live processes (EEXIST); NULL: none */
	bool keep;		/* survives the session (see above) */
	bool manual_credit;	/* return output credit with capsa_proc_consumed() */
};

struct capsa_proc_callbacks {
	/* Output bytes of one channel (CAPSA_STDOUT or CAPSA_STDERR); len 0
	 * means that channel reached end of file. */
	void (*output)(void *ud, struct capsa_proc *p, int channel, const void *data, size_t len);
	/* The process ended; the last callback of the session.  For an
	 * attach to a sandbox's main process: the sandbox ended. */
	void (*exit)(void *ud, struct capsa_proc *p, const struct capsa_exit *e);
	/* Optional: output bytes the supervisor dropped from a kept process's
	 * buffer while nobody was attached (reported once, on attach). */
	void (*dropped)(void *ud, struct capsa_proc *p, uint64_t bytes);
};

/* Starts a process in a running sandbox and returns once it runs: *out is
 * the session, capsa_proc_pid() its pid.  A process that cannot start (not
 * found, not executable, bad user or working directory) fails here with the
 * reason (err->code ENOENT, EACCES, ...); a sandbox that is paused fails with
 * EBUSY, one that is not running with ESRCH, a tag in use with EEXIST.
 * Records an exec_start event. */
int capsa_proc_start(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_proc_opts *opts,
		     const struct capsa_proc_callbacks *cb, void *ud, struct capsa_proc **out,
		     struct capsa_error **err);

/* Which process of a sandbox: by pid (inside the sandbox), by tag, or the
 * sandbox's main process. */
struct capsa_proc_ref {
	pid_t pid;	 /* > 0 */
	const char *tag; /* or a tag */
	bool main;	 /* or the main process */
};

struct capsa_attach_opts {
	bool input;	    /* may write stdin, resize and signal (the process must
			     * have been started with stdin_open to take stdin) */
	bool output;	    /* receives stdout and stderr from now on */
	bool replay;	    /* first receive what a kept process buffered while
			     * nobody was attached (with output) */
	bool manual_credit;
};

/* Attaches a new session to a running process, or to a kept process that
 * ended while nobody was attached (its buffered output, then its exit, are
 * delivered).  ESRCH when there is no such process.  Any number of sessions
 * may be attached to one process; each gets all output from the moment it
 * attached. */
int capsa_proc_attach(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_proc_ref *ref,
		      const struct capsa_attach_opts *opts, const struct capsa_proc_callbacks *cb, void *ud,
		      struct capsa_proc **out, struct capsa_error **err);

/* The blocking form for a terminal (`capsa attach --proc`): attaches stdio
 * until the process ends or the detach keys are typed (see
 * capsa_sandbox_attach, which is this for the main process). */
int capsa_proc_attach_stdio(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_proc_ref *ref,
			    const struct capsa_stdio *stdio, bool replay, struct capsa_exit *exit,
			    struct capsa_error **err);

/* The session's connection, to poll for POLLIN (always) and POLLOUT (when
 * capsa_proc_want_write()). */
int capsa_proc_fd(const struct capsa_proc *p);
bool capsa_proc_want_write(const struct capsa_proc *p);
/* Reads what is available without blocking, calls the callbacks, and writes
 * what is queued.  Returns 0 while the process runs, 1 once the exit
 * callback ran (the session is over: free it), -1 with err when the
 * connection broke or the supervisor refused a request.  Never call it from
 * inside a callback. */
int capsa_proc_process(struct capsa_proc *p, struct capsa_error **err);
pid_t capsa_proc_pid(const struct capsa_proc *p);

/* stdin.  write queues at most capsa_proc_write_room() bytes and returns
 * how many it took (0: the process has not read what it was given yet; try
 * again after capsa_proc_process()).  close_stdin delivers end of file after
 * the bytes already written (on a terminal: the EOF character). */
ssize_t capsa_proc_write(struct capsa_proc *p, const void *data, size_t n, struct capsa_error **err);
size_t capsa_proc_write_room(const struct capsa_proc *p);
int capsa_proc_close_stdin(struct capsa_proc *p, struct capsa_error **err);
/* Sends sig to the process's group. */
int capsa_proc_signal(struct capsa_proc *p, int sig, struct capsa_error **err);
int capsa_proc_resize(struct capsa_proc *p, uint16_t rows, uint16_t cols, struct capsa_error **err);
/* With manual_credit: n bytes of channel's output have been consumed. */
void capsa_proc_consumed(struct capsa_proc *p, int channel, size_t n);
/* Makes the process a kept one from now on: freeing the session (or losing
 * it) then leaves it running and attachable. */
int capsa_proc_keep(struct capsa_proc *p, struct capsa_error **err);
/* Ends the session (see the top of this file for what happens to the
 * process).  NULL is accepted. */
void capsa_proc_free(struct capsa_proc *p);

/* One process of a sandbox: its main process and every process started
 * through the supervisor (exec, capsa_proc_start), including kept ones that
 * ended and are still retained. */
struct capsa_proc_info {
	pid_t pid;
	char *tag;	   /* NULL: none */
	char **argv;
	char *workdir;	   /* NULL: the sandbox's */
	bool tty, stdin_open, keep, main;
	bool running;	   /* false: ended, exit_code and reason valid */
	int exit_code;
	char *reason;
	int64_t started_at; /* ms since the epoch */
	int attached;	   /* sessions attached now */
	uint64_t buffered; /* output bytes waiting for an attach */
};

int capsa_proc_list(struct capsa_ctx *ctx, const char *sandbox, struct capsa_proc_info **out, size_t *n,
		    struct capsa_error **err);
void capsa_proc_info_free(struct capsa_proc_info *v, size_t n);
/* Sends sig to a process of the sandbox (its process group with group). */
int capsa_proc_kill(struct capsa_ctx *ctx, const char *sandbox, const struct capsa_proc_ref *ref, int sig,
		    bool group, struct capsa_error **err);

#ifdef __cplusplus
}
#endif
#endif
