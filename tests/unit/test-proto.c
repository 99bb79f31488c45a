/* test-proto.c: the frame codec: headers, TLV, the process/exit/sandbox
 * messages round trip, and hostile payloads are refused, never overread. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
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

int main(void)
{
	test_header();
	test_tlv();
	test_proc();
	test_sandbox();
	test_conn();
	return done_testing();
}
