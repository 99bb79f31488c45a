/* tty.h: pseudo-terminals and passing fds over unix sockets.  libc only. */
#ifndef CAPSA_LINUX_TTY_H
#define CAPSA_LINUX_TTY_H

#include <stddef.h>

#include "util/error.h"

/* Opens a new pty from /dev/ptmx (resolved in the caller's mount
 * namespace), unlocked, with the window size set when rows or cols is
 * non-zero.  Both fds are close-on-exec; *index is the N of /dev/pts/N. */
int linux_pty_open(int *master, int *slave, unsigned short rows, unsigned short cols, int *index,
		   struct capsa_error **err);
/* Sends fd with SCM_RIGHTS over a connected unix socket, with name as the
 * message (runc sends the terminal's name; receivers ignore it or keep it
 * as the file's name). */
int linux_send_fd(int sock, int fd, const char *name, struct capsa_error **err);
/* Receives one fd (close-on-exec) and the message into name. */
int linux_recv_fd(int sock, char *name, size_t name_len, struct capsa_error **err);

#endif
