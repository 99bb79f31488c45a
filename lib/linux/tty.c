/* tty.c: pseudo-terminals for a container's or an exec's process, and
 * handing a terminal's master to another process over a unix socket (the
 * OCI console socket).  libc only.
 *
 * linux_pty_open() must run where the pty belongs: inside the container's
 * mount namespace, so /dev/ptmx is the container's own devpts instance and
 * the slave's number means something there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "tty.h"
#include "util/str.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

int linux_pty_open(int *master, int *slave, unsigned short rows, unsigned short cols, int *index,
		   struct capsa_error **err)
{
	*master = *slave = -1;
	int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return error_sys(err, errno, "open /dev/ptmx");
	int unlock = 0, n = -1;
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &n) < 0) {
		int e = errno;
		close(m);
		return error_sys(err, e, "unlock pty");
	}
	/* TIOCGPTPEER (4.13) opens the slave relative to the master: no path
	 * lookup that a process in the container could redirect */
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0 && (errno == EINVAL || errno == ENOTTY)) {
		char path[32];
		snprintf(path, sizeof(path), "/dev/pts/%d", n);
		s = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	}
	if (s < 0) {
		int e = errno;
		close(m);
		return error_sys(err, e, "open the pty slave");
	}
	if (rows || cols) {
		struct winsize ws = { .ws_row = rows, .ws_col = cols };
		ioctl(m, TIOCSWINSZ, &ws);
	}
	*master = m;
	*slave = s;
	if (index)
		*index = n;
	return 0;
}

int linux_send_fd(int sock, int fd, const char *name, struct capsa_error **err)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	memset(ctl, 0, sizeof(ctl));
	const char *payload = name && *name ? name : "fd";
	struct iovec iov = { .iov_base = (void *)payload, .iov_len = strlen(payload) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t r;
	do
		r = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return error_sys(err, errno, "send the terminal over the console socket");
	return 0;
}

int linux_recv_fd(int sock, char *name, size_t name_len, struct capsa_error **err)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	char tmp[256];
	struct iovec iov = { .iov_base = name && name_len ? name : tmp, .iov_len = name && name_len ? name_len - 1 : sizeof(tmp) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	ssize_t r;
	do
		r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return error_sys(err, errno, "receive a file descriptor");
	if (name && name_len)
		name[r] = '\0';
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		return error_set(err, EPROTO, "receive a file descriptor: none in the message");
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}
