/* server.c: starting and stopping capsa serve: the token, the listening
 * sockets (and removing the unix one at exit), the worker pool, the ticker
 * (keepalives, header deadlines, reconciliation), and the route matcher
 * shared by the API tables. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capsa/capsa.h"
#include "capsa/sandbox.h"
#include "linux/cgroup.h"
#include "hub.h"
#include "pool.h"
#include "preauth.h"
#include "server.h"
#include "stream.h"
#include "util/error.h"
#include "util/fs.h"

/* --- routing ----------------------------------------------------------- */

const struct route *route_match(const struct route *table, struct http_req *r, bool *path_known)
{
	for (const struct route *rt = table; rt->pattern; rt++) {
		const char *p = rt->pattern + 1;
		size_t i = 0, np = 0;
		bool ok = true, rest = false;
		char *params[4] = { 0 };
		while (ok && *p) {
			const char *slash = strchr(p, '/');
			size_t len = slash ? (size_t)(slash - p) : strlen(p);
			if (len == 3 && memcmp(p, "{*}", 3) == 0) {
				rest = true;
				ok = i < r->n_seg;
				break;
			}
			if (i >= r->n_seg) {
				ok = false;
				break;
			}
			if (len == 2 && memcmp(p, "{}", 2) == 0) {
				if (np < ARRAY_SIZE(params) && *r->seg[i])
					params[np++] = r->seg[i];
				else
					ok = false;
			} else if (strlen(r->seg[i]) != len || memcmp(r->seg[i], p, len) != 0) {
				ok = false;
			}
			i++;
			p = slash ? slash + 1 : p + len;
		}
		if (!ok || (!rest && i != r->n_seg))
			continue;
		*path_known = true;
		if (strcmp(rt->method, r->method) != 0 && !(strcmp(rt->method, "GET") == 0 && strcmp(r->method, "HEAD") == 0))
			continue;
		for (size_t k = 0; k < np; k++)
			r->param[k] = xstrdup(params[k]);
		if (rest) {
			struct buf b = BUF_INIT;
			for (size_t k = i; k < r->n_seg; k++)
				buf_appendf(&b, "%s%s", k > i ? "/" : "", r->seg[k]);
			r->rest = buf_steal(&b);
		}
		r->metric = rt->metric;
		return rt;
	}
	return NULL;
}

/* --- tokens ------------------------------------------------------------ */

char *server_sandbox_token(const struct server *srv, const char *sandbox_id)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	_cleanup_free_ char *msg = xasprintf("capsa-sandbox-token:%s", sandbox_id);
	if (!HMAC(EVP_sha256(), srv->token, (int)strlen(srv->token), (const unsigned char *)msg, strlen(msg), mac,
		  &len))
		return xstrdup("");
	char *hex = xmalloc(2 * len + 1);
	hex_encode(mac, len, hex);
	return hex;
}

/* 1 when the file was created with a new token, 0 when it was read. */
static int load_token(struct server *srv, const char *path, struct capsa_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		/* first start: a new random token, readable by root only */
		_cleanup_free_ char *tok = random_hex(32);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return error_sys(err, errno, "create token file %s", path);
		if (write_all(fd, tok, strlen(tok)) < 0 || write_all(fd, "\n", 1) < 0 || fsync(fd) < 0) {
			int e = errno;
			unlink(path);
			return error_sys(err, e, "write token file %s", path);
		}
		srv->token = steal_pointer(&tok);
		return 1;
	}
	if (fd < 0)
		return error_sys(err, errno, "open token file %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return error_sys(err, errno, "stat token file %s", path);
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077))
		return error_set(err, EACCES, "token file %s must be a regular file readable by its owner only (chmod 600)",
				 path);
	struct buf b = BUF_INIT;
	if (read_all(fd, &b, 4096) < 0) {
		buf_release(&b);
		return error_sys(err, errno, "read token file %s", path);
	}
	char *t = buf_steal(&b);
	t[strcspn(t, "\r\n")] = '\0';
	if (strlen(t) < 16) {
		free(t);
		return error_set(err, EINVAL, "token file %s: the token must have at least 16 characters", path);
	}
	srv->token = t;
	return 0;
}

/* --- listeners --------------------------------------------------------- */

static int listen_unix(struct server *srv, const char *path, struct capsa_error **err)
{
	int probe = unix_connect(path, false);
	if (probe >= 0) {
		close(probe);
		return error_set(err, EADDRINUSE, "%s: another server is listening there", path);
	}
	unlink(path);
	int fd = unix_listen(path, 0660, 512);
	if (fd < 0)
		return error_sys(err, errno, "listen on %s", path);
	struct stat st;
	if (lstat(path, &st) < 0) {
		int e = errno;
		close(fd);
		unlink(path);
		return error_sys(err, e, "stat %s", path);
	}
	struct listener *l = &srv->lst[srv->n_lst++];
	l->srv = srv;
	l->fd = fd;
	l->tcp = false;
	l->desc = xasprintf("unix:%s", path);
	l->sock_path = xstrdup(path);
	l->sock_dev = st.st_dev;
	l->sock_ino = st.st_ino;
	return 0;
}

/* At exit: the socket path goes, unless it names another socket by now (a
 * second server started after someone removed ours). */
static void remove_socket(struct listener *l)
{
	struct stat st;
	if (!l->sock_path)
		return;
	if (lstat(l->sock_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == l->sock_dev &&
	    st.st_ino == l->sock_ino && unlink(l->sock_path) < 0 && errno != ENOENT)
		fprintf(stderr, "capsa serve: remove %s: %s\n", l->sock_path, strerror(errno));
	free(l->sock_path);
	l->sock_path = NULL;
}

static int listen_tcp(struct server *srv, const char *addr, struct capsa_error **err)
{
	if (srv->n_lst == ARRAY_SIZE(srv->lst))
		return error_set(err, E2BIG, "too many listening addresses");
	_cleanup_free_ char *host = NULL;
	const char *port;
	if (addr[0] == '[') {
		const char *close_b = strchr(addr, ']');
		if (!close_b || close_b[1] != ':')
			return error_set(err, EINVAL, "--listen %s: expected [IPV6]:PORT", addr);
		host = xstrndup(addr + 1, (size_t)(close_b - addr - 1));
		port = close_b + 2;
	} else {
		const char *colon = strrchr(addr, ':');
		if (!colon)
			return error_set(err, EINVAL, "--listen %s: expected HOST:PORT", addr);
		host = xstrndup(addr, (size_t)(colon - addr));
		port = colon + 1;
	}
	int64_t p;
	if (parse_int64(port, 0, 65535, &p) < 0)
		return error_set(err, EINVAL, "--listen %s: invalid port '%s'", addr, port);
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (!*host)
		host = xstrdup("0.0.0.0");
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		sl = sizeof(*s6);
	} else {
		return error_set(err, EINVAL, "--listen %s: '%s' is not an IP address", addr, host);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_sys(err, errno, "socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0) {
		int e = errno;
		close(fd);
		return error_sys(err, e, "listen on %s", addr);
	}
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	char ip[INET6_ADDRSTRLEN];
	unsigned real_port = ss.ss_family == AF_INET ? ntohs(s4->sin_port) : ntohs(s6->sin6_port);
	inet_ntop(ss.ss_family, ss.ss_family == AF_INET ? (void *)&s4->sin_addr : (void *)&s6->sin6_addr, ip,
		  sizeof(ip));
	struct listener *l = &srv->lst[srv->n_lst++];
	l->srv = srv;
	l->fd = fd;
	l->tcp = true;
	l->desc = ss.ss_family == AF_INET ? xasprintf("http://%s:%u", ip, real_port)
					  : xasprintf("http://[%s]:%u", ip, real_port);
	return 0;
}

/* --- background threads ------------------------------------------------ */

struct spawned {
	struct server *srv;
	void (*fn)(void *arg, struct capsa_ctx *ctx);
	void *arg;
	struct capsa_ctx *ctx;
};

static void *spawned_main(void *p)
{
	struct spawned *s = p;
	s->fn(s->arg, s->ctx);
	capsa_ctx_free(s->ctx);
	atomic_fetch_sub(&s->srv->n_streams, 1);
	free(s);
	return NULL;
}

int server_spawn(struct server *srv, void (*fn)(void *arg, struct capsa_ctx *ctx), void *arg,
		 struct capsa_error **err)
{
	if (atomic_fetch_add(&srv->n_streams, 1) >= srv->o.max_streams) {
		atomic_fetch_sub(&srv->n_streams, 1);
		return error_set(err, EAGAIN, "too many streaming requests at once (%d): try again later",
				 srv->o.max_streams);
	}
	struct spawned *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->fn = fn;
	s->arg = arg;
	if (capsa_ctx_open(&srv->ctx_opts, &s->ctx, err) < 0) {
		atomic_fetch_sub(&srv->n_streams, 1);
		free(s);
		return -1;
	}
	capsa_ctx_set_capacity(s->ctx, &srv->capacity);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	int e = pthread_create(&t, &attr, spawned_main, s);
	pthread_attr_destroy(&attr);
	if (e) {
		capsa_ctx_free(s->ctx);
		free(s);
		atomic_fetch_sub(&srv->n_streams, 1);
		return error_sys(err, e, "start a thread");
	}
	return 0;
}

/* The ticker, four times a second: keepalives on idle streams, the header
 * deadline of unauthenticated connections, and reconciliation, so that the
 * capacity of sandboxes that crashed returns to the ledger. */
static void *ticker_main(void *p)
{
	struct server *srv = p;
	struct capsa_ctx *ctx = NULL;
	capsa_ctx_open(&srv->ctx_opts, &ctx, NULL);
	int64_t next_reconcile = mono_ms() + 2000;
	pthread_mutex_lock(&srv->ticker_mu);
	while (!atomic_load(&srv->stopping)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&srv->ticker_cond, &srv->ticker_mu, &ts);
		if (atomic_load(&srv->stopping))
			break;
		pthread_mutex_unlock(&srv->ticker_mu);
		preauth_sweep(srv->preauth, mono_ms());
		streams_tick(srv);
		if (ctx && mono_ms() >= next_reconcile) {
			capsa_sandbox_reconcile(ctx, NULL);
			next_reconcile = mono_ms() + 2000;
		}
		pthread_mutex_lock(&srv->ticker_mu);
	}
	pthread_mutex_unlock(&srv->ticker_mu);
	capsa_ctx_free(ctx);
	return NULL;
}

/* --- run --------------------------------------------------------------- */

static void server_release(struct server *srv)
{
	for (size_t i = 0; i < srv->n_lst; i++) {
		http_listener_stop(&srv->lst[i]);
		if (srv->lst[i].fd >= 0)
			close(srv->lst[i].fd);
		free(srv->lst[i].desc);
		free(srv->lst[i].sock_path);
	}
	preauth_free(srv->preauth);
	free(srv->token);
	free(srv->root);
	free(srv->run_root);
	metrics_release(&srv->metrics);
	pthread_mutex_destroy(&srv->streams_mu);
	pthread_mutex_destroy(&srv->ticker_mu);
	pthread_cond_destroy(&srv->ticker_cond);
}

static int setup(struct server *srv, const struct server_opts *o, struct capsa_error **err)
{
	struct capsa_ctx *ctx = NULL;
	_cleanup_free_ char *tokpath = NULL, *def = NULL;
	if (capsa_ctx_open(&o->ctx, &ctx, err) < 0)
		return -1;
	srv->root = xstrdup(capsa_ctx_root(ctx));
	srv->run_root = xstrdup(capsa_ctx_run_root(ctx));
	srv->ctx_opts.root = srv->root;
	srv->ctx_opts.run_root = srv->run_root;
	int rc = -1;
	struct capsa_capacity host;
	const char *sock = o->socket_path;
	if (capsa_capacity_from_host(ctx, &host, err) < 0)
		goto out;
	srv->capacity = host;
	if (o->capacity_set[0])
		srv->capacity.cpus_milli = o->capacity.cpus_milli;
	if (o->capacity_set[1])
		srv->capacity.memory = o->capacity.memory;
	if (o->capacity_set[2])
		srv->capacity.disk = o->capacity.disk;
	if (o->capacity_set[3])
		srv->capacity.min_free_disk = o->capacity.min_free_disk;
	/* sandboxes that ended while no server ran give their capacity back */
	capsa_sandbox_reconcile(ctx, NULL);
	tokpath = o->token_file ? xstrdup(o->token_file) : xasprintf("%s/api-token", srv->root);
	if (o->listen && o->listen[0]) {
		int made = load_token(srv, tokpath, err);
		if (made < 0)
			goto out;
		fprintf(stderr, "capsa serve: API token in %s%s\n", tokpath, made ? " (new)" : "");
	}
	if (!srv->token)
		srv->token = random_hex(32); /* unix socket only: never checked, never shown */
	if (!sock || (strcmp(sock, "none") != 0 && *sock)) {
		def = xasprintf("%s/capsa.sock", srv->run_root);
		if (listen_unix(srv, sock ? sock : def, err) < 0)
			goto out;
	}
	for (char **a = o->listen; a && *a; a++)
		if (listen_tcp(srv, *a, err) < 0)
			goto out;
	if (srv->n_lst == 0) {
		error_set(err, EINVAL, "nothing to listen on: give --listen or a --socket");
		goto out;
	}
	rc = 0;
out:
	capsa_ctx_free(ctx);
	return rc;
}

static int wait_for_stop(const struct server_opts *o, const sigset_t *mask)
{
	if (o->stop_fd >= 0) {
		struct pollfd p = { .fd = o->stop_fd, .events = POLLIN };
		while (poll(&p, 1, -1) < 0 && errno == EINTR) {
		}
		return 0;
	}
	int sig = 0;
	sigwait(mask, &sig);
	return sig;
}

/* What a zero or negative option means.  Without a memory controller
 * (rootless, none delegated) API sandboxes get no default memory limit. */
static void apply_defaults(struct server_opts *o, bool memcg)
{
	if (o->workers <= 0)
		o->workers = 16;
	if (o->max_json <= 0)
		o->max_json = 1 << 20;
	if (o->max_upload <= 0)
		o->max_upload = 4LL << 30;
	if (o->max_download <= 0)
		o->max_download = 4LL << 30;
	if (o->conn_timeout_s <= 0)
		o->conn_timeout_s = 60;
	if (o->max_connections <= 0)
		o->max_connections = 1024;
	if (o->header_timeout_ms <= 0)
		o->header_timeout_ms = 10000;
	if (o->max_unauth <= 0)
		o->max_unauth = o->max_connections / 2 > 0 ? o->max_connections / 2 : 1;
	if (o->max_unauth_per_peer <= 0)
		o->max_unauth_per_peer = o->max_unauth < 64 ? o->max_unauth : 64;
	if (o->max_streams <= 0)
		o->max_streams = 512;
	if (o->e2b_default_timeout_ms <= 0)
		o->e2b_default_timeout_ms = 300000;
	if (o->default_memory <= 0 && !memcg) {
		o->default_memory = 0; /* API sandboxes get no memory limit: say so once */
		fprintf(stderr, "capsa serve: rootless, without a delegated memory controller: API sandboxes get no "
				"default memory limit\n");
	} else if (o->default_memory <= 0) {
		o->default_memory = 512LL << 20;
	}
}

/* Connections that have not shown the token must leave every listener a
 * slot for one that has (preauth.h). */
static int check_limits(const struct server_opts *o, struct capsa_error **err)
{
	if (o->max_unauth >= o->max_connections)
		return error_set(err, EINVAL,
				 "--max-unauth %d: must be below --max-connections (%d), so that clients with the "
				 "token always find a free connection",
				 o->max_unauth, o->max_connections);
	if (o->max_unauth_per_peer > o->max_unauth)
		return error_set(err, EINVAL, "--max-unauth-per-peer %d: must be at most --max-unauth (%d)",
				 o->max_unauth_per_peer, o->max_unauth);
	return 0;
}

int server_run(const struct server_opts *opts, struct capsa_error **err)
{
	/* rootless: before any thread, and before the workers' contexts */
	if (capsa_rootless_enter(err) < 0)
		return -1;
	bool memcg = !capsa_rootless() || linux_cgroup_has_controller("memory");
	if (!memcg && opts->default_memory > 0) {
		_cleanup_free_ char *why = linux_cgroup_rootless_why("memory");
		return error_set(err, ENOTSUP, "--default-memory needs the memory cgroup controller, and in rootless mode %s",
				 why);
	}
	struct server *srv = xcalloc(1, sizeof(*srv));
	srv->o = *opts;
	struct server_opts *o = &srv->o;
	apply_defaults(o, memcg);
	if (check_limits(o, err) < 0) {
		free(srv);
		return -1;
	}
	srv->max_json = o->max_json;
	srv->max_upload = o->max_upload;
	srv->max_download = o->max_download;
	pthread_mutex_init(&srv->streams_mu, NULL);
	pthread_mutex_init(&srv->ticker_mu, NULL);
	pthread_cond_init(&srv->ticker_cond, NULL);
	metrics_init(&srv->metrics);
	srv->preauth = preauth_new(o->max_unauth, o->max_unauth_per_peer, o->header_timeout_ms, &srv->metrics);
	for (size_t i = 0; i < ARRAY_SIZE(srv->lst); i++)
		srv->lst[i].fd = -1;

	/* every thread starts with these blocked: the main thread takes them */
	sigset_t mask, old;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	signal(SIGPIPE, SIG_IGN);

	int rc = -1, sig = 0, e;
	if (setup(srv, o, err) < 0)
		goto out;
	if (pool_start(&srv->pool, (size_t)o->workers, &srv->ctx_opts, &srv->capacity, err) < 0)
		goto out;
	if (hub_start(srv, err) < 0)
		goto out;
	for (size_t i = 0; i < srv->n_lst; i++)
		if (http_listener_start(&srv->lst[i], o->conn_timeout_s, o->max_connections, err) < 0)
			goto out;
	/* the ticker enforces the header deadline: no server without it */
	e = pthread_create(&srv->ticker, NULL, ticker_main, srv);
	if (e) {
		error_sys(err, e, "start the ticker thread");
		goto out;
	}
	srv->ticker_started = true;
	for (size_t i = 0; i < srv->n_lst; i++)
		printf("capsa serve: listening on %s\n", srv->lst[i].desc);
	fflush(stdout);

	sig = wait_for_stop(o, &mask);
	if (sig)
		fprintf(stderr, "capsa serve: %s: stopping (sandboxes keep running)\n", strsignal(sig));
	rc = 0;
out:
	pthread_mutex_lock(&srv->ticker_mu);
	atomic_store(&srv->stopping, true);
	pthread_cond_broadcast(&srv->ticker_cond);
	pthread_mutex_unlock(&srv->ticker_mu);
	for (size_t i = 0; i < srv->n_lst; i++) {
		http_listener_quiesce(&srv->lst[i]);
		remove_socket(&srv->lst[i]);
	}
	streams_close_all(srv);
	/* requests in workers finish and resume their connections */
	pool_stop(srv->pool);
	/* then what the hub carries ends: requests waiting on it are answered */
	hub_stop(srv);
	streams_close_all(srv);
	if (srv->ticker_started)
		pthread_join(srv->ticker, NULL);
	/* long-lived stream producers see their streams closed and leave */
	for (int i = 0; i < 500 && atomic_load(&srv->n_streams) > 0; i++)
		poll(NULL, 0, 10);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (atomic_load(&srv->n_streams) > 0) {
		/* a follower thread still holds srv: leave it to the exit */
		for (size_t i = 0; i < srv->n_lst; i++)
			http_listener_stop(&srv->lst[i]);
		return rc;
	}
	for (size_t i = 0; i < srv->n_lst; i++)
		http_listener_stop(&srv->lst[i]);
	/* no response can call into the hub any more */
	hub_free(srv);
	server_release(srv);
	free(srv);
	return rc;
}
