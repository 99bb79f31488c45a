/* dns.c: the resolvers capsa starts: dnsmasq, from Debian's dnsmasq-base.
 *
 * Each network has one, answering on its gateway address: it forwards to
 * the servers of the host's /etc/resolv.conf and answers the names of the
 * network's sandboxes (an addn-hosts file it re-reads on SIGHUP).  A
 * sandbox whose egress rules name hosts gets one of its own on the gateway
 * at a port of its own (its DNS is redirected there by nftables): it
 * answers only the names the rules allow, forwards those to the network's
 * resolver, and puts the addresses they resolve to into the sandbox's set
 * sb_<id>_n (dnsmasq's nftset), which its policy accepts.
 *
 * dnsmasq forks itself and its first process exits once it is listening,
 * with its error on stderr if it cannot: so a start is synchronous and its
 * failure has a reason.  Pid files identify the processes later; a pid is
 * trusted only while its command line names our configuration file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"
#include "util/fs.h"
#include "util/str.h"

#define DNSMASQ "dnsmasq"

/* The pid in pidfile, if that process runs dnsmasq with conf. */
static pid_t running(const char *pidfile, const char *conf)
{
	struct buf b = BUF_INIT;
	pid_t pid = 0;
	if (read_file_at(AT_FDCWD, pidfile, 64, &b, NULL) == 0)
		pid = (pid_t)atoi(buf_cstr(&b));
	buf_release(&b);
	if (pid <= 0)
		return 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (read_file_at(AT_FDCWD, path, 8192, &b, NULL) < 0) {
		buf_release(&b);
		return 0;
	}
	/* arguments are NUL-separated: look through all of them */
	bool ours = false;
	for (size_t off = 0; off < b.len; off += strlen(b.data + off) + 1)
		if (strstr(b.data + off, conf))
			ours = true;
	buf_release(&b);
	return ours ? pid : 0;
}

static int start(const char *conf, struct capsa_error **err)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return error_sys(err, errno, "start dnsmasq: pipe");
	_cleanup_free_ char *arg = xasprintf("--conf-file=%s", conf);
	char *argv[] = { (char *)DNSMASQ, arg, NULL };
	char *envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	/* its own session: not the terminal's, not ours to take down */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	pid_t pid;
	int rc = posix_spawnp(&pid, DNSMASQ, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		return error_sys(err, rc, "start dnsmasq (Debian package dnsmasq-base)");
	}
	struct buf out = BUF_INIT;
	out.cap = 4096;
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	/* the daemon keeps no end of the pipe open past its start */
	fd_set_nonblock(pipefd[0], true);
	read_all(pipefd[0], &out, 4096);
	close(pipefd[0]);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *msg = (char *)buf_cstr(&out);
		msg[strcspn(msg, "\n")] = '\0';
		error_set(err, EIO, "dnsmasq %s: %s", conf, *msg ? msg : "exited at once");
		buf_release(&out);
		return -1;
	}
	buf_release(&out);
	return 0;
}

/* The servers of the host's resolv.conf, as dnsmasq server= lines. */
static void upstream_servers(struct buf *conf)
{
	struct buf b = BUF_INIT;
	read_file_at(AT_FDCWD, "/etc/resolv.conf", 64 * 1024, &b, NULL);
	_cleanup_strv_ char **lines = strv_split(buf_cstr(&b), '\n');
	buf_release(&b);
	for (char **l = lines; *l; l++) {
		char addr[64];
		if (sscanf(*l, " nameserver %63s", addr) == 1 && strspn(addr, "0123456789abcdefABCDEF.:%") == strlen(addr))
			buf_appendf(conf, "server=%s\n", addr);
	}
}

static int write_conf(const char *path, struct buf *conf, struct capsa_error **err)
{
	if (write_file_atomic_at(AT_FDCWD, path, conf->data, conf->len, 0644, false, err) < 0)
		return error_wrap(err, "dnsmasq configuration");
	return 0;
}

bool net_dns_network_running(const struct net_network *n)
{
	_cleanup_free_ char *dir = net_state_subdir(n->bridge, NULL);
	if (!dir)
		return false;
	_cleanup_free_ char *conf = xasprintf("%s/dnsmasq.conf", dir);
	_cleanup_free_ char *pidfile = xasprintf("%s/dnsmasq.pid", dir);
	return running(pidfile, conf) > 0;
}

int net_dns_network_ensure(const struct net_network *n, struct capsa_error **err)
{
	_cleanup_free_ char *dir = net_state_subdir(n->bridge, err);
	if (!dir)
		return -1;
	_cleanup_free_ char *conf = xasprintf("%s/dnsmasq.conf", dir);
	_cleanup_free_ char *pidfile = xasprintf("%s/dnsmasq.pid", dir);
	_cleanup_free_ char *hosts = xasprintf("%s/hosts", dir);
	if (running(pidfile, conf))
		return 0;
	int fd = open(hosts, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return error_sys(err, errno, "create %s", hosts);
	close(fd);
	char gw[16];
	linux_ip4_format(n->gateway, gw);
	struct buf b = BUF_INIT;
	buf_appendf(&b,
		    "# capsa: the resolver of network %s (written at each start)\n"
		    "listen-address=%s\nbind-interfaces\nport=53\nno-resolv\nno-hosts\nno-poll\n"
		    "domain-needed\nfilter-AAAA\n"
		    "addn-hosts=%s\npid-file=%s\ncache-size=1000\nlog-facility=%s/dnsmasq.log\n",
		    n->name, gw, hosts, pidfile, dir);
	upstream_servers(&b);
	int rc = write_conf(conf, &b, err);
	buf_release(&b);
	if (rc < 0 || start(conf, err) < 0)
		return -1;
	return 0;
}

void net_dns_network_stop(const struct net_network *n)
{
	_cleanup_free_ char *dir = net_state_subdir(n->bridge, NULL);
	if (!dir)
		return;
	_cleanup_free_ char *conf = xasprintf("%s/dnsmasq.conf", dir);
	_cleanup_free_ char *pidfile = xasprintf("%s/dnsmasq.pid", dir);
	pid_t pid = running(pidfile, conf);
	if (pid > 0)
		kill(pid, SIGKILL);
}

void net_dns_hosts_set(const struct net_network *n, const char *names, uint32_t ip)
{
	_cleanup_free_ char *dir = net_state_subdir(n->bridge, NULL);
	if (!dir)
		return;
	_cleanup_close_ int lock = net_state_lock(NULL);
	_cleanup_free_ char *hosts = xasprintf("%s/hosts", dir);
	char a[16];
	linux_ip4_format(ip, a);
	_cleanup_free_ char *prefix = xasprintf("%s\t", a);
	struct buf in = BUF_INIT, out = BUF_INIT;
	read_file_at(AT_FDCWD, hosts, 4 << 20, &in, NULL);
	_cleanup_strv_ char **lines = strv_split(buf_cstr(&in), '\n');
	buf_release(&in);
	for (char **l = lines; *l; l++)
		if (**l && !str_has_prefix(*l, prefix))
			buf_appendf(&out, "%s\n", *l);
	if (names)
		buf_appendf(&out, "%s%s\n", prefix, names);
	write_file_atomic_at(AT_FDCWD, hosts, out.data ? out.data : "", out.len, 0644, false, NULL);
	buf_release(&out);
	_cleanup_free_ char *conf = xasprintf("%s/dnsmasq.conf", dir);
	_cleanup_free_ char *pidfile = xasprintf("%s/dnsmasq.pid", dir);
	pid_t pid = running(pidfile, conf);
	if (pid > 0)
		kill(pid, SIGHUP);
}

/* The port a sandbox's own resolver listens on, at the gateway: one per
 * address of the network. */
static unsigned sandbox_port(const struct net_network *n, uint32_t ip)
{
	return 20000 + (unsigned)((ip - n->gateway) % 40000);
}

/* Allowed names are dropped where a deny rule covers them: deny wins. */
static bool denied_name(const struct net_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_deny; i++) {
		const struct net_rule *d = &p->deny[i];
		if (d->kind != RULE_NAME && d->kind != RULE_SUFFIX)
			continue;
		size_t nl = strlen(name), dl = strlen(d->name);
		if (strcmp(name, d->name) == 0 ||
		    (nl > dl && name[nl - dl - 1] == '.' && strcmp(name + nl - dl, d->name) == 0))
			return true;
	}
	return false;
}

static bool allows_any(const struct net_policy *p)
{
	for (size_t i = 0; i < p->n_allow; i++)
		if (p->allow[i].kind != RULE_HOST)
			return true;
	return false;
}

int net_dns_sandbox_start(const struct net_network *n, const char *id, const char *run_dir, uint32_t ip,
			  const struct net_policy *p, struct capsa_error **err)
{
	char gw[16];
	linux_ip4_format(n->gateway, gw);
	_cleanup_free_ char *conf = xasprintf("%s/dnsmasq.conf", run_dir);
	struct buf b = BUF_INIT;
	buf_appendf(&b,
		    "# capsa: the resolver of sandbox %s (its egress rules name hosts)\n"
		    "listen-address=%s\nbind-interfaces\nport=%u\nno-resolv\nno-hosts\nno-poll\nfilter-AAAA\n"
		    "pid-file=%s/dns.pid\ncache-size=0\nlog-facility=%s/dns.log\n",
		    id, gw, sandbox_port(n, ip), run_dir, run_dir);
	/* the network's resolver answers what is allowed: peers' names and
	 * the host's upstream servers */
	bool restrict_names = allows_any(p);
	buf_appendf(&b, "server=//%s\n", gw);
	if (!restrict_names)
		buf_appendf(&b, "server=%s\n", gw);
	char id12[13];
	snprintf(id12, sizeof(id12), "%.12s", id);
	for (size_t i = 0; i < p->n_allow; i++) {
		const struct net_rule *r = &p->allow[i];
		if ((r->kind != RULE_NAME && r->kind != RULE_SUFFIX) || denied_name(p, r->name))
			continue;
		/* "*.b.c" resolves below b.c only; nftset takes no wildcard,
		 * and b.c itself never resolves, so b.c covers the same */
		const char *pat = r->kind == RULE_SUFFIX ? "*." : "";
		buf_appendf(&b, "server=/%s%s/%s\nnftset=/%s/4#inet#capsa#sb_%s_n\n", pat, r->name, gw, r->name, id12);
	}
	for (size_t i = 0; i < p->n_deny; i++) {
		const struct net_rule *r = &p->deny[i];
		if (r->kind == RULE_NAME || r->kind == RULE_SUFFIX)
			buf_appendf(&b, "address=/%s%s/\n", r->kind == RULE_SUFFIX ? "*." : "", r->name);
	}
	if (restrict_names)
		buf_appendf(&b, "address=/#/\n");
	int rc = write_conf(conf, &b, err);
	buf_release(&b);
	if (rc < 0 || start(conf, err) < 0)
		return error_wrap(err, "the resolver of sandbox %.12s", id);
	return 0;
}

void net_dns_sandbox_stop(const char *run_dir)
{
	_cleanup_free_ char *conf = xasprintf("%s/dnsmasq.conf", run_dir);
	_cleanup_free_ char *pidfile = xasprintf("%s/dns.pid", run_dir);
	pid_t pid = running(pidfile, conf);
	if (pid > 0)
		kill(pid, SIGKILL);
}

unsigned net_dns_sandbox_port(const struct net_network *n, uint32_t ip)
{
	return sandbox_port(n, ip);
}
