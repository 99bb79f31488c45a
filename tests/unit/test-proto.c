/* test-proto.c: the frame codec: headers, TLV, the process/exit/sandbox
 * messages round trip, and hostile payloads are refused, never overread. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/conn.h"
#include "proto/msg.h"
#include "tap.h"

static int frames_seen;
static int on_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	(void)c;
	struct buf *log = ctx;
	buf_appendf(log, "%s/%u/%u/%u:", proto_type_name(h->type), h->flags, h->stream, h->len);
	buf_append(log, p, h->len);
	buf_putc(log, ';');
	frames_seen++;
	return 0;
}

static void test_header(void)
{
	uint8_t raw[PROTO_HDR_SIZE];
	struct proto_hdr h = { 1234, P_DATA, CH_STDERR, 0xdeadbeef }, back;
	proto_hdr_encode(&h, raw);
	ok(raw[0] == 0 && raw[3] == 0xd2, "length big-endian");
	ok(proto_hdr_decode(raw, &back, PROTO_MAX_PAYLOAD) == 0 && back.len == 1234 && back.type == P_DATA &&
		   back.flags == CH_STDERR && back.stream == 0xdeadbeef,
	   "header round trip");
	h.len = PROTO_MAX_PAYLOAD + 1;
	proto_hdr_encode(&h, raw);
	ok(proto_hdr_decode(raw, &back, PROTO_MAX_PAYLOAD) < 0, "oversized frame refused before reading it");
}

static void test_tlv(void)
{
	struct buf b = BUF_INIT;
	tlv_put_str(&b, T_NAME, "abc");
	tlv_put_u64(&b, T_PID, 42);
	size_t m = tlv_begin(&b, T_MOUNT);
	tlv_put_str(&b, T_M_TARGET, "/x");
	tlv_end(&b, m);
	struct tlv_iter it;
	tlv_iter_init(&it, b.data, b.len);
	uint16_t tag;
	const uint8_t *v;
	uint32_t len;
	uint64_t u;
	ok(tlv_next(&it, &tag, &v, &len) == 1 && tag == T_NAME && len == 3, "string item");
	ok(tlv_next(&it, &tag, &v, &len) == 1 && tlv_u64(v, len, &u) == 0 && u == 42, "u64 item");
	ok(tlv_next(&it, &tag, &v, &len) == 1 && tag == T_MOUNT && len == PROTO_TLV_HDR + 2, "nested item");
	ok(tlv_next(&it, &tag, &v, &len) == 0, "end");
	/* a length that runs past the end */
	uint8_t bad[] = { 0, 1, 0, 0, 0, 9, 'a' };
	tlv_iter_init(&it, bad, sizeof(bad));
	ok(tlv_next(&it, &tag, &v, &len) == -1, "overlong item refused");
	uint8_t nul[] = { 'a', 0, 'b' };
	ok(tlv_str(nul, 3) == NULL, "string with NUL refused");
	buf_release(&b);
}

static void test_proc(void)
{
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"echo hi", NULL };
	char *env[] = { (char *)"A=1", NULL };
	uint8_t prog[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	struct proto_proc p = { .argv = argv, .env = env, .cwd = (char *)"/tmp", .user = (char *)"1000:1000",
				.tty = true, .rows = 24, .cols = 80, .has_caps = true, .cap_bounding = 0xa80425fb,
				.cap_effective = 0xa80425fb, .no_new_privs = true, .seccomp = prog, .seccomp_len = 16,
				.timeout_ms = 5000, .umask = 077 };
	p.rlimits[0] = (struct proto_rlimit){ 7, 1024, 4096 };
	p.n_rlimits = 1;
	struct buf b = BUF_INIT;
	proto_proc_encode(&b, &p);
	struct proto_proc q;
	const char *why = NULL;
	ok(proto_proc_decode((uint8_t *)b.data, b.len, &q, &why) == 0, "decode process spec");
	ok(strv_len(q.argv) == 3 && strcmp(q.argv[2], "echo hi") == 0, "argv");
	ok(q.env && strcmp(q.env[0], "A=1") == 0 && strcmp(q.cwd, "/tmp") == 0 && strcmp(q.user, "1000:1000") == 0,
	   "env, cwd, user");
	ok(q.tty && q.rows == 24 && q.cols == 80 && q.has_caps && q.cap_bounding == 0xa80425fb && q.no_new_privs,
	   "tty and caps");
	ok(q.seccomp_len == 16 && memcmp(q.seccomp, prog, 16) == 0 && q.timeout_ms == 5000 && q.umask == 077,
	   "seccomp, timeout, umask");
	ok(q.n_rlimits == 1 && q.rlimits[0].resource == 7 && q.rlimits[0].hard == 4096, "rlimit");
	proto_proc_release(&q);
	/* every truncation of a valid payload is either refused or a prefix */
	int bad = 0;
	for (size_t n = 0; n < b.len; n++) {
		struct proto_proc t;
		if (proto_proc_decode((uint8_t *)b.data, n, &t, &why) == 0)
			proto_proc_release(&t);
		else if (!why)
			bad++;
	}
	ok(bad == 0, "truncations handled");
	/* a seccomp program of odd length */
	struct buf c = BUF_INIT;
	tlv_put(&c, T_SECCOMP, prog, 7);
	ok(proto_proc_decode((uint8_t *)c.data, c.len, &q, &why) < 0 && strstr(why, "seccomp"), "odd BPF refused");
	buf_release(&c);
	buf_release(&b);
}

static void test_sandbox(void)
{
	char *argv[] = { (char *)"true", NULL };
	struct proto_mount m = { .source = (char *)"/srv", .target = (char *)"/data", .bind = true, .flags = 1 };
	struct proto_sandbox s = { .id = (char *)"abc", .run_dir = (char *)"/run/capsa/abc", .rootfs = (char *)"/r",
				   .agent_path = (char *)"/a", .mounts = &m, .n_mounts = 1, .cg_memory = 1 << 26,
				   .creator_attach = 6, .deadline_ms = 99 };
	s.proc.argv = argv;
	s.proc.umask = -1;
	struct buf b = BUF_INIT;
	proto_sandbox_encode(&b, &s);
	struct proto_sandbox t;
	const char *why = NULL;
	ok(proto_sandbox_decode((uint8_t *)b.data, b.len, &t, &why) == 0, "decode sandbox spec");
	ok(t.n_mounts == 1 && strcmp(t.mounts[0].target, "/data") == 0 && t.mounts[0].bind, "mount");
	ok(t.cg_memory == 1 << 26 && t.creator_attach == 6 && t.deadline_ms == 99 && strcmp(t.proc.argv[0], "true") == 0,
	   "fields");
	proto_sandbox_release(&t);
	ok(proto_sandbox_decode((uint8_t *)b.data, 10, &t, &why) < 0, "truncated spec refused");
	buf_release(&b);
	/* a user namespace block, an idmapped volume */
	m.idmap = true;
	s.userns_uid = 131072;
	s.userns_gid = 196608;
	s.userns_count = 65536;
	proto_sandbox_encode(&b, &s);
	ok(proto_sandbox_decode((uint8_t *)b.data, b.len, &t, &why) == 0 && t.userns_uid == 131072 &&
		   t.userns_gid == 196608 && t.userns_count == 65536 && t.mounts[0].idmap,
	   "user namespace block and idmapped volume");
	proto_sandbox_release(&t);
	buf_release(&b);
	/* a block that would map host root, or wrap, is refused */
	static const uint64_t bad[][3] = { { 0, 1000, 65536 }, { 1000, 0, 65536 }, { 0xffff0000ULL, 1000, 65536 },
					   { 1000, 1000, 1ULL << 33 } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s.userns_uid = bad[i][0];
		s.userns_gid = bad[i][1];
		s.userns_count = bad[i][2];
		proto_sandbox_encode(&b, &s);
		why = NULL;
		ok(proto_sandbox_decode((uint8_t *)b.data, b.len, &t, &why) < 0 && why && strstr(why, "user namespace"),
		   "bad user namespace block %zu refused", i);
		buf_release(&b);
	}
}

static void test_conn(void)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	struct proto_conn a, b;
	proto_conn_init(&a, sv[0]);
	proto_conn_init(&b, sv[1]);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	proto_conn_queue(&a, P_DATA, CH_STDOUT, 7, "hello", 5);
	proto_conn_queue(&a, P_EOF, CH_STDOUT, 7, NULL, 0);
	ok(proto_conn_flush(&a) == 0, "flush");
	struct buf log = BUF_INIT;
	int r = proto_conn_read(&b, on_frame, &log);
	ok(r == 0 && frames_seen == 2, "two frames in one read");
	is_str(buf_cstr(&log), "DATA/1/7/5:hello;EOF/1/7/0:;", "frame contents");
	/* a frame split across writes */
	uint8_t hdr[PROTO_HDR_SIZE];
	struct proto_hdr h = { 3, P_DATA, 2, 9 };
	proto_hdr_encode(&h, hdr);
	ok(write(sv[0], hdr, 5) == 5, "partial header");
	r = proto_conn_read(&b, on_frame, &log);
	ok(r == 0 && frames_seen == 2, "incomplete frame waits");
	ok(write(sv[0], hdr + 5, 7) == 7 && write(sv[0], "xyz", 3) == 3, "rest");
	r = proto_conn_read(&b, on_frame, &log);
	ok(frames_seen == 3, "completed frame delivered");
	/* a hostile length closes the connection without allocating it */
	h.len = 0x7fffffff;
	proto_hdr_encode(&h, hdr);
	ok(write(sv[0], hdr, sizeof(hdr)) == sizeof(hdr), "hostile header");
	r = proto_conn_read(&b, on_frame, &log);
	ok(r < 0 && errno == EMSGSIZE && b.in.alloc < (1u << 20), "oversized frame: error, nothing allocated");
	close(sv[0]);
	buf_release(&log);
	proto_conn_release(&a, false);
	proto_conn_release(&b, true);
}

static void test_fileop_finfo_procinfo_port(void)
{
	struct buf b = BUF_INIT;
	struct proto_fileop o = { .op = FOP_RENAME, .path = (char *)"/a", .path2 = (char *)"/b", .user = (char *)"u", .name = (char *)"n",
				  .mode = 0640, .flags = FOPF_EXCL | FOPF_PARENTS, .depth = 3, .max = 99 };
	proto_fileop_encode(&b, &o);
	struct proto_fileop back;
	const char *why = NULL;
	ok(proto_fileop_decode((const uint8_t *)b.data, b.len, &back, &why) == 0 && back.op == FOP_RENAME &&
		   strcmp(back.path, "/a") == 0 && strcmp(back.path2, "/b") == 0 && back.mode == 0640 &&
		   back.flags == (FOPF_EXCL | FOPF_PARENTS) && back.depth == 3 && back.max == 99 &&
		   strcmp(back.user, "u") == 0 && strcmp(back.name, "n") == 0,
	   "file operation round trip");
	proto_fileop_release(&back);
	b.len = 0;
	struct proto_fileop no_dest = { .op = FOP_RENAME, .path = (char *)"/a", .mode = -1 };
	proto_fileop_encode(&b, &no_dest);
	ok(proto_fileop_decode((const uint8_t *)b.data, b.len, &back, &why) < 0 && strstr(why, "destination"),
	   "rename without a destination refused");
	b.len = 0;
	struct proto_fileop bad = { .op = 99, .path = (char *)"/a", .mode = -1 };
	proto_fileop_encode(&b, &bad);
	ok(proto_fileop_decode((const uint8_t *)b.data, b.len, &back, &why) < 0, "unknown operation refused");
	b.len = 0;
	tlv_put_u64(&b, T_OP, FOP_STAT);
	tlv_put(&b, T_PATH, "a\0b", 3);
	ok(proto_fileop_decode((const uint8_t *)b.data, b.len, &back, &why) < 0, "path with NUL refused");
	b.len = 0;
	tlv_put_u64(&b, T_OP, FOP_STAT);
	char big[5000];
	memset(big, 'x', sizeof(big));
	tlv_put(&b, T_PATH, big, sizeof(big));
	ok(proto_fileop_decode((const uint8_t *)b.data, b.len, &back, &why) < 0, "path over 4095 bytes refused");

	b.len = 0;
	struct proto_finfo fi = { .name = (char *)"f", .path = (char *)"/d/f", .owner = (char *)"root", .group = (char *)"wheel", .link = (char *)"t",
				  .type = 2, .size = 12, .mtime_ms = 1234, .mode = 0120777, .uid = 5, .gid = 6,
				  .event = FEV_RENAME, .is_dir = true };
	proto_finfo_encode(&b, &fi);
	struct tlv_iter it;
	uint16_t tag;
	const uint8_t *val;
	uint32_t len;
	tlv_iter_init(&it, b.data, b.len);
	struct proto_finfo fb;
	ok(tlv_next(&it, &tag, &val, &len) == 1 && tag == T_ENTRY && proto_finfo_decode(val, len, &fb) == 0 &&
		   strcmp(fb.path, "/d/f") == 0 && strcmp(fb.link, "t") == 0 && strcmp(fb.group, "wheel") == 0 &&
		   fb.type == 2 && fb.size == 12 && fb.mode == 0120777 && fb.uid == 5 && fb.gid == 6 &&
		   fb.event == FEV_RENAME && fb.is_dir && fb.mtime_ms == 1234,
	   "file info round trip");
	proto_finfo_release(&fb);

	b.len = 0;
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"x", NULL };
	struct proto_procinfo pi = { .pid = 7, .tag = (char *)"t", .argv = argv, .cwd = (char *)"/w", .tty = true, .keep = true,
				     .running = false, .exit_code = 3, .reason = (char *)"exited", .attached = 2, .buffered = 9 };
	proto_procinfo_encode(&b, &pi);
	tlv_iter_init(&it, b.data, b.len);
	struct proto_procinfo pb;
	ok(tlv_next(&it, &tag, &val, &len) == 1 && proto_procinfo_decode(val, len, &pb) == 0 && pb.pid == 7 &&
		   strcmp(pb.tag, "t") == 0 && pb.argv && strcmp(pb.argv[2], "x") == 0 && !pb.argv[3] && pb.tty &&
		   pb.keep && !pb.running && pb.exit_code == 3 && strcmp(pb.reason, "exited") == 0 &&
		   pb.attached == 2 && pb.buffered == 9,
	   "process info round trip");
	proto_procinfo_release(&pb);

	b.len = 0;
	struct proto_port pp = { .host_ip = (char *)"::1", .host_port = 8080, .port = 80, .count = 3, .rx = 4, .tx = 5 };
	proto_port_encode(&b, T_ENTRY, &pp);
	tlv_iter_init(&it, b.data, b.len);
	struct proto_port pq;
	ok(tlv_next(&it, &tag, &val, &len) == 1 && proto_port_decode(val, len, &pq) == 0 &&
		   strcmp(pq.host_ip, "::1") == 0 && pq.host_port == 8080 && pq.port == 80 && pq.count == 3 &&
		   pq.rx == 4 && pq.tx == 5,
	   "port round trip");
	proto_port_release(&pq);
	b.len = 0;
	tlv_put_u64(&b, T_PORT, 70000);
	ok(proto_port_decode((const uint8_t *)b.data, b.len, &pq) < 0, "port above 65535 refused");
	b.len = 0;
	tlv_put_u64(&b, T_HOST_PORT, 80);
	ok(proto_port_decode((const uint8_t *)b.data, b.len, &pq) < 0, "port 0 refused");

	/* a process spec keeps its tag and keep flag */
	b.len = 0;
	struct proto_proc p = { .argv = argv, .tag = (char *)"job", .keep = true, .umask = -1 };
	proto_proc_encode(&b, &p);
	struct proto_proc pback;
	ok(proto_proc_decode((const uint8_t *)b.data, b.len, &pback, &why) == 0 && strcmp(pback.tag, "job") == 0 &&
		   pback.keep,
	   "process tag and keep round trip");
	proto_proc_release(&pback);
	buf_release(&b);
}

static int fd_frames;
static int on_fd_frame(void *ctx, struct proto_conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	(void)p;
	int *got = ctx;
	if (h->type == P_OK)
		got[fd_frames++] = proto_conn_take_fd(c);
	return 0;
}

/* Frames with descriptors keep their order, however many are queued
 * between two flushes, and frames without stay in between. */
static void test_fd_passing(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	struct proto_conn a, b;
	proto_conn_init(&a, sv[0]);
	proto_conn_init(&b, sv[1]);
	b.accept_fds = true;
	enum { N = 20 };
	ino_t inodes[N];
	for (int i = 0; i < N; i++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0)
			return;
		struct stat st;
		fstat(p[0], &st);
		inodes[i] = st.st_ino;
		close(p[1]);
		proto_conn_queue(&a, P_PING, 0, 1, "x", 1);
		proto_conn_queue_fds(&a, P_OK, 0, 1, NULL, 0, &p[0], 1);
	}
	ok(proto_conn_flush_all(&a, 5000) == 0 && a.n_fd_out == 0, "all frames with descriptors sent");
	int got[N];
	fd_frames = 0;
	while (fd_frames < N && proto_conn_wait(&b, 5000, on_fd_frame, got) == 1) {
	}
	int in_order = 0;
	for (int i = 0; i < fd_frames; i++) {
		struct stat st;
		if (got[i] >= 0 && fstat(got[i], &st) == 0 && st.st_ino == inodes[i])
			in_order++;
		if (got[i] >= 0)
			close(got[i]);
	}
	is_int(in_order, N, "each frame got its own descriptor, in order");
	proto_conn_release(&a, true);
	proto_conn_release(&b, true);
}

int main(void)
{
	test_header();
	test_tlv();
	test_proc();
	test_sandbox();
	test_conn();
	test_fileop_finfo_procinfo_port();
	test_fd_passing();
	return done_testing();
}
