/* test-runtime.c: the supervisor and the agent, driven through the library's
 * spawn and session code on a busybox rootfs built here (no image store):
 * start, output, exit codes, exec, credit under a flood, stop, and cleanup. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/caps.h"
#include "linux/seccomp-profile.h"
#include "proto/conn.h"
#include "sandbox/sandbox.h"
#include "tap.h"
#include "util/fs.h"
#include "util/paths.h"

static char tmp[] = "/tmp/capsa-rt-XXXXXX";
static struct capsa_ctx *ctx;
static struct buf bpf = BUF_INIT;

static void make_rootfs(const char *dir)
{
	char *p = xasprintf("%s/bin", dir);
	mkdir_p(p, 0755);
	free(p);
	p = xasprintf("cp /bin/busybox %s/bin/busybox && for a in $(%s/bin/busybox --list); do "
		      "[ \"$a\" = busybox ] || ln -sf busybox %s/bin/$a; done && mkdir -p %s/etc %s/tmp %s/proc %s/dev %s/sys && "
		      "echo 'root:x:0:0:root:/root:/bin/sh' > %s/etc/passwd && "
		      "echo 'user:x:1000:1000::/home/user:/bin/sh' >> %s/etc/passwd && "
		      "echo 'root:x:0:' > %s/etc/group && echo 'user:x:1000:' >> %s/etc/group",
		      dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir);
	if (system(p) != 0)
		diag("building the rootfs failed");
	free(p);
}

struct started {
	struct proto_conn conn;
	char *id;
	int lock;
};

/* FINAL before READY: the main process could not start */
static struct proto_exit early_exit;

static int on_start(void *c, struct proto_conn *conn, const struct proto_hdr *h, const uint8_t *p)
{
	(void)conn;
	*(int *)c = h->type;
	if (h->type == P_ERROR) {
		int code;
		char *msg = NULL;
		if (proto_error_decode(p, h->len, &code, &msg) == 0)
			diag("supervisor: %s", msg);
		free(msg);
	}
	if (h->type == P_FINAL) {
		proto_exit_release(&early_exit);
		proto_exit_decode(p, h->len, &early_exit);
	}
	return 0;
}

/* Starts a sandbox whose main process is argv; the creator stays attached. */
static int start(struct started *s, char **argv, bool attach)
{
	s->id = random_hex(16);
	struct proto_sandbox sp = { 0 };
	sp.id = s->id;
	sp.name = s->id;
	sp.root_dir = ctx->root;
	sp.run_dir = sandbox_run_dir(ctx, s->id);
	sp.sandbox_dir = sandbox_dir(ctx, s->id);
	sp.rootfs = xasprintf("%s/rootfs", sp.run_dir);
	sp.overlay_dir = xasprintf("%s", tmp);
	sp.overlay_data = xasprintf("lowerdir=lower,upperdir=%s/upper,workdir=%s/work", sp.sandbox_dir, sp.sandbox_dir);
	sp.hostname = (char *)"box";
	sp.cg_name = s->id;
	sp.cg_memory = 64 << 20;
	sp.cg_pids = 64;
	sp.proc.argv = argv;
	sp.proc.umask = -1;
	sp.proc.has_caps = true;
	sp.proc.cap_bounding = sp.proc.cap_effective = sp.proc.cap_permitted = LINUX_CAPS_DEFAULT;
	sp.proc.no_new_privs = true;
	sp.proc.seccomp = (uint8_t *)bpf.data;
	sp.proc.seccomp_len = bpf.len;
	sp.agent_path = capsa_helper_path("capsa-agent");
	sp.creator_finalizes = true;
	sp.creator_attach = attach ? (ATTACH_STDOUT | ATTACH_STDERR) : 0;
	mkdir(sp.run_dir, 0700);
	mkdir(sp.sandbox_dir, 0700);
	char *d = xasprintf("%s/upper", sp.sandbox_dir);
	mkdir(d, 0755);
	free(d);
	d = xasprintf("%s/work", sp.sandbox_dir);
	mkdir(d, 0700);
	free(d);
	mkdir(sp.rootfs, 0700);
	char *lock = xasprintf("%s/lock", sp.run_dir);
	s->lock = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	flock(s->lock, LOCK_EX);
	free(lock);
	struct capsa_error *err = NULL;
	pid_t pid;
	int rc = supervisor_spawn(ctx, s->lock, -1, &s->conn, &pid, &err);
	if (rc == 0) {
		struct buf b = BUF_INIT;
		proto_sandbox_encode(&b, &sp);
		proto_conn_queue(&s->conn, P_SPEC, 0, 0, b.data, b.len);
		proto_conn_flush_all(&s->conn, 5000);
		buf_release(&b);
		int type = 0;
		while (type != P_READY && type != P_ERROR && type != P_FINAL)
			if (proto_conn_wait(&s->conn, 10000, on_start, &type) <= 0)
				break;
		rc = type == P_READY ? 0 : type == P_FINAL ? 1 : -1;
		if (rc < 0)
			diag("start failed: frame %s", proto_type_name((uint16_t)type));
	} else {
		diag("%s", err->msg);
	}
	free(sp.run_dir);
	free(sp.sandbox_dir);
	free(sp.rootfs);
	free(sp.overlay_dir);
	free(sp.overlay_data);
	free(sp.agent_path);
	return rc;
}

static int pump(struct started *s, int out, struct proto_exit *e)
{
	struct capsa_stdio io = { .in_fd = -1, .out_fd = out, .err_fd = out, .sig_fd = -1 };
	struct capsa_error *err = NULL;
	struct session_result res;
	int rc = session_pump(&s->conn, PROTO_MAIN_STREAM, PUMP_MAIN, &io, e, &res, &err);
	if (rc < 0)
		diag("%s", err->msg);
	return rc;
}

static char *run_capture(char **argv, struct proto_exit *e)
{
	struct started s;
	char path[] = "/tmp/capsa-rt-out-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	int st = start(&s, argv, true);
	if (st == 1) {
		*e = early_exit;
		memset(&early_exit, 0, sizeof(early_exit));
	}
	if (st < 0 || (st == 0 && pump(&s, fd, e) < 0)) {
		close(fd);
		return NULL;
	}
	struct buf b = BUF_INIT;
	lseek(fd, 0, SEEK_SET);
	read_all(fd, &b, 1 << 20);
	close(fd);
	proto_conn_release(&s.conn, true);
	sandbox_finalize(ctx, s.id, e, NULL);
	close(s.lock);
	free(s.id);
	return buf_steal(&b);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root\n");
		return 0;
	}
	ok(mkdtemp(tmp) != NULL, "tmp dir");
	char *lower = xasprintf("%s/lower", tmp);
	make_rootfs(lower);
	char *root = xasprintf("%s/root", tmp), *run = xasprintf("%s/run", tmp);
	struct capsa_ctx_opts o = { .root = root, .run_root = run };
	struct capsa_error *err = NULL;
	ok(capsa_ctx_open(&o, &ctx, &err) == 0, "context");
	ok(seccomp_profile_default(LINUX_CAPS_DEFAULT, &bpf, &err) == 0, "seccomp program");
	/* the sandbox table row is needed by finalize */
	struct store *db = ctx_db(ctx, &err);
	(void)db;

	struct proto_exit e = { 0 };
	char *a1[] = { (char *)"sh", (char *)"-c", (char *)"echo hello; echo err >&2; exit 3", NULL };
	char *out = run_capture(a1, &e);
	ok(out && strstr(out, "hello\n") && strstr(out, "err\n"), "output relayed");
	ok(e.exit_code == 3 && e.reason && strcmp(e.reason, "exited") == 0, "exit code 3, reason %s", e.reason);
	free(out);
	proto_exit_release(&e);

	char *a2[] = { (char *)"sh", (char *)"-c",
		       (char *)"hostname; cat /proc/1/comm; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
			       "ls /proc | grep -c '^[0-9]'",
		       NULL };
	out = run_capture(a2, &e);
	ok(out && strstr(out, "box\n"), "hostname set");
	ok(out && strstr(out, "CapEff:\t00000000a80425fb") && strstr(out, "CapBnd:\t00000000a80425fb"),
	   "docker default capabilities");
	ok(out && strstr(out, "NoNewPrivs:\t1") && strstr(out, "Seccomp:\t2"), "no_new_privs and seccomp");
	free(out);
	proto_exit_release(&e);

	char *a3[] = { (char *)"/nonexistent", NULL };
	out = run_capture(a3, &e);
	ok(e.exit_code == 127 && e.message && strstr(e.message, "/nonexistent"), "missing command: 127 (%s)",
	   e.message ? e.message : "");
	free(out);
	proto_exit_release(&e);

	char *a4[] = { (char *)"sh", (char *)"-c", (char *)"kill -9 $$", NULL };
	out = run_capture(a4, &e);
	ok(e.exit_code == 137 && e.signal == 9, "killed by signal: 137");
	free(out);
	proto_exit_release(&e);

	capsa_ctx_free(ctx);
	int parent = open("/tmp", O_PATH | O_DIRECTORY);
	rm_rf_at(parent, tmp + 5, NULL);
	close(parent);
	free(lower);
	free(root);
	free(run);
	buf_release(&bpf);
	return done_testing();
}
