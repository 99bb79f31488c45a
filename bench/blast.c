/* blast.c: a TCP server for the tunnel benchmark (bench/sessions.py),
 * static so that it runs inside a busybox sandbox as well as on the host:
 * bench-blast PORT BYTES [CONNECTIONS] listens on 0.0.0.0:PORT and sends
 * BYTES zero bytes (1 MiB writes) to each of CONNECTIONS clients in turn,
 * then exits.  The same binary on both sides keeps the comparison fair. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench-blast PORT BYTES [CONNECTIONS]\n");
		return 2;
	}
	long long bytes = atoll(argv[2]);
	int conns = argc > 3 ? atoi(argv[3]) : 1;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 16) < 0) {
		perror("bench-blast");
		return 1;
	}
	static char buf[1 << 20];
	memset(buf, 0, sizeof(buf));
	for (int c = 0; c < conns; c++) {
		int fd = accept(s, NULL, NULL);
		if (fd < 0)
			continue;
		long long left = bytes;
		while (left > 0) {
			ssize_t w = write(fd, buf, left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf));
			if (w <= 0)
				break;
			left -= w;
		}
		close(fd);
	}
	return 0;
}
