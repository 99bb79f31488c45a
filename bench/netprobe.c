/* netprobe.c: the client side of bench/network, static so that the same
 * binary measures from the fake internet's host namespace and from inside
 * a busybox sandbox (the comparison is then the network path alone):
 *
 *   bench-netprobe recv ADDR PORT BYTES   read BYTES from ADDR:PORT (a sender
 *                                         such as bench-blast), then close
 *   bench-netprobe connect ADDR PORT N    N TCP connections in turn, each
 *                                         closed once established
 *   bench-netprobe dns SERVER NAME N      N A queries for NAME in turn (UDP);
 *                                         SERVER "resolv": the first
 *                                         nameserver of /etc/resolv.conf
 *
 * IPv4 addresses only.  Prints one line of JSON: the counts, the seconds
 * taken (CLOCK_MONOTONIC), and for dns the median and 90th percentile of the
 * latencies in microseconds.  Every wait is bounded (TIMEOUT_S per
 * connection, read or answer); a failure is counted (connect, dns) or ends
 * the run with exit 1 (recv). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_S 5
#define MAX_N 1000000L
#define BUF_SIZE (256 * 1024)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_addr(const char *addr, const char *port, struct sockaddr_in *sa)
{
	char *end;
	long p = strtol(port, &end, 10);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (*end || p < 1 || p > 65535 || inet_pton(AF_INET, addr, &sa->sin_addr) != 1) {
		fprintf(stderr, "bench-netprobe: bad address %s:%s\n", addr, port);
		return -1;
	}
	sa->sin_port = htons((uint16_t)p);
	return 0;
}

static long parse_count(const char *s)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (*end || n < 1 || n > MAX_N) {
		fprintf(stderr, "bench-netprobe: bad count %s (1 to %ld)\n", s, MAX_N);
		return -1;
	}
	return n;
}

/* A TCP socket to sa with every wait bounded by TIMEOUT_S, or -1. */
static int dial(const struct sockaddr_in *sa)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	struct timeval tv = { .tv_sec = TIMEOUT_S };
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(s, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

static int do_recv(const struct sockaddr_in *sa, long long bytes)
{
	static char buf[BUF_SIZE];
	double t0 = now();
	int s = dial(sa);
	if (s < 0) {
		perror("bench-netprobe: connect");
		return 1;
	}
	long long got = 0;
	while (got < bytes) {
		ssize_t n = read(s, buf, sizeof(buf));
		if (n <= 0) {
			fprintf(stderr, "bench-netprobe: read after %lld bytes: %s\n", got,
				n == 0 ? "end of stream" : strerror(errno));
			close(s);
			return 1;
		}
		got += n;
	}
	double dt = now() - t0;
	close(s);
	printf("{\"mode\": \"recv\", \"bytes\": %lld, \"seconds\": %.6f}\n", got, dt);
	return 0;
}

static int do_connect(const struct sockaddr_in *sa, long n)
{
	long failures = 0;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		int s = dial(sa);
		if (s < 0)
			failures++;
		else
			close(s);
	}
	printf("{\"mode\": \"connect\", \"n\": %ld, \"failures\": %ld, \"seconds\": %.6f}\n", n, failures,
	       now() - t0);
	return 0;
}

/* The first nameserver line of /etc/resolv.conf, into out. */
static int resolv_server(char *out, size_t size)
{
	FILE *f = fopen("/etc/resolv.conf", "re");
	if (!f) {
		perror("bench-netprobe: /etc/resolv.conf");
		return -1;
	}
	char line[256];
	int found = -1;
	while (found < 0 && fgets(line, sizeof(line), f)) {
		char addr[64];
		if (sscanf(line, " nameserver %63s", addr) == 1 && strlen(addr) < size) {
			memcpy(out, addr, strlen(addr) + 1);
			found = 0;
		}
	}
	fclose(f);
	if (found < 0)
		fprintf(stderr, "bench-netprobe: no nameserver in /etc/resolv.conf\n");
	return found;
}

/* A query for name (type A, class IN, recursion desired) into q; its length or -1. */
static int dns_query(unsigned char *q, size_t size, const char *name, uint16_t id)
{
	size_t len = strlen(name);
	if (len == 0 || len > 253 || 12 + len + 2 + 4 > size)
		return -1;
	unsigned char hdr[12] = { (unsigned char)(id >> 8), (unsigned char)id, 0x01, 0, 0, 1 };
	memcpy(q, hdr, sizeof(hdr));
	size_t o = 12;
	const char *p = name;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (l == 0 || l > 63)
			return -1;
		q[o++] = (unsigned char)l;
		memcpy(q + o, p, l);
		o += l;
		p += l + (dot ? 1 : 0);
	}
	q[o++] = 0;
	unsigned char tail[4] = { 0, 1, 0, 1 };
	memcpy(q + o, tail, sizeof(tail));
	return (int)(o + 4);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One query and its answer: the latency in seconds, or -1. */
static double dns_once(int s, const unsigned char *q, int qlen, uint16_t id)
{
	unsigned char r[1500];
	double t0 = now();
	if (send(s, q, (size_t)qlen, 0) != qlen)
		return -1;
	for (;;) {
		int left = (int)((t0 + TIMEOUT_S - now()) * 1000);
		struct pollfd pfd = { .fd = s, .events = POLLIN };
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return -1;
		ssize_t n = recv(s, r, sizeof(r), 0);
		if (n < 0)
			return -1;
		/* the reply to this query (stale ones are skipped), and NOERROR */
		if (n >= 12 && r[0] == (id >> 8) && r[1] == (id & 0xff) && (r[2] & 0x80))
			return (r[3] & 0x0f) == 0 ? now() - t0 : -1;
	}
}

static int do_dns(const char *server, const char *name, long n)
{
	char addr[64];
	if (strcmp(server, "resolv") == 0) {
		if (resolv_server(addr, sizeof(addr)) < 0)
			return 1;
		server = addr;
	}
	struct sockaddr_in sa;
	if (parse_addr(server, "53", &sa) < 0)
		return 1;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("bench-netprobe: dns socket");
		return 1;
	}
	double *lat = calloc((size_t)n, sizeof(double));
	if (!lat) {
		perror("bench-netprobe");
		return 1;
	}
	long ok = 0, failures = 0;
	unsigned char q[300];
	double t0 = now();
	for (long i = 0; i < n; i++) {
		uint16_t id = (uint16_t)(i * 7919 + 1);
		int qlen = dns_query(q, sizeof(q), name, id);
		if (qlen < 0) {
			fprintf(stderr, "bench-netprobe: bad name %s\n", name);
			free(lat);
			return 1;
		}
		double d = dns_once(s, q, qlen, id);
		if (d < 0)
			failures++;
		else
			lat[ok++] = d;
	}
	double total = now() - t0;
	qsort(lat, (size_t)ok, sizeof(double), cmp_double);
	double med = ok ? lat[ok / 2] * 1e6 : -1, p90 = ok ? lat[ok * 9 / 10] * 1e6 : -1;
	printf("{\"mode\": \"dns\", \"server\": \"%s\", \"n\": %ld, \"failures\": %ld, \"seconds\": %.6f, "
	       "\"median_us\": %.1f, \"p90_us\": %.1f}\n", server, n, failures, total, med, p90);
	free(lat);
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: bench-netprobe recv ADDR PORT BYTES | connect ADDR PORT N | "
				"dns SERVER NAME N\n");
		return 2;
	}
	if (strcmp(argv[1], "dns") == 0) {
		long n = parse_count(argv[4]);
		return n < 0 ? 2 : do_dns(argv[2], argv[3], n);
	}
	struct sockaddr_in sa;
	if (parse_addr(argv[2], argv[3], &sa) < 0)
		return 2;
	if (strcmp(argv[1], "recv") == 0) {
		char *end;
		long long bytes = strtoll(argv[4], &end, 10);
		if (*end || bytes < 1) {
			fprintf(stderr, "bench-netprobe: bad byte count %s\n", argv[4]);
			return 2;
		}
		return do_recv(&sa, bytes);
	}
	if (strcmp(argv[1], "connect") == 0) {
		long n = parse_count(argv[4]);
		return n < 0 ? 2 : do_connect(&sa, n);
	}
	fprintf(stderr, "bench-netprobe: unknown mode %s\n", argv[1]);
	return 2;
}
