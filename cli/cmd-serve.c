/* cmd-serve.c: `capsa serve`: the HTTP API (server/, docs/api.md).
 * Parses flags into struct server_opts and runs the server until SIGINT
 * or SIGTERM.  Heavy: lives in capsa-full only (libmicrohttpd). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmds.h"
#include "opts.h"
#include "server/server.h"
#include "util/str.h"

static const char serve_usage[] =
	"Usage: capsa serve [OPTIONS]\n"
	"\n"
	"Serve the capsa API over HTTP: the native /v1 API and the E2B API (control\n"
	"plane and in-sandbox envd and code interpreter), so that the E2B SDKs work\n"
	"against this machine.  See docs/api.md.  Sandboxes created through the API\n"
	"are ordinary sandboxes ('capsa ps' lists them) and outlive the server.\n"
	"\n"
	"Listening:\n"
	"      --socket PATH          unix socket, mode 0660 (default <run root>/capsa.sock;\n"
	"                             'none': no unix socket); no token is asked there\n"
	"      --listen HOST:PORT     also listen on TCP (repeatable; port 0: any free one);\n"
	"                             every request there needs the API token\n"
	"      --token-file FILE      the API token (default <root>/api-token, created with\n"
	"                             a random token and mode 0600 on first start; the\n"
	"                             server prints its path)\n"
	"\n"
	"Admission (defaults: the machine's cpus, memory and store filesystem size):\n"
	"      --capacity-cpus N      cpus the sandboxes' cpu limits may add up to\n"
	"      --capacity-memory SIZE memory their memory limits may add up to\n"
	"      --capacity-disk SIZE   disk their disk reservations may add up to\n"
	"      --min-free-disk SIZE   refuse creates (507) below this much free space on the\n"
	"                             store's filesystem (default 1g; 0: no guard)\n"
	"      --default-memory SIZE  memory limit of API sandboxes that ask for none (512m)\n"
	"      --default-disk SIZE    --disk of API sandboxes that ask for none (none)\n"
	"      --e2b-timeout DUR      lifetime of E2B sandboxes created without one (300s)\n"
	"      --allow-host-network   let API clients create sandboxes on the host's network\n"
	"                             (network.mode \"host\": no isolation, no egress rules);\n"
	"                             refused with 403 without it\n"
	"\n"
	"Limits:\n"
	"      --workers N            threads running requests (default 16)\n"
	"      --max-body SIZE        largest JSON request body (default 1m)\n"
	"      --max-upload SIZE      largest upload: files, image archives (default 4g)\n"
	"      --max-download SIZE    largest file or archive download from a sandbox (default 4g;\n"
	"                             a sparse file counts its full size, an archive its data)\n"
	"      --conn-timeout DUR     close connections idle this long (default 60s)\n"
	"      --max-connections N    per listening address, at least 2 (default 1024)\n"
	"      --max-streams N        concurrent streaming responses (default 512)\n"
	"\n"
	"TCP connections that have not shown the token yet (over a cap the oldest\n"
	"is closed, so that a client with the token always gets in):\n"
	"      --header-timeout DUR   the first request's headers must be complete this\n"
	"                             long after the connect, however slowly they come\n"
	"                             (default 10s)\n"
	"      --max-unauth N         at most this many at once over all TCP addresses,\n"
	"                             below --max-connections (default: half of it)\n"
	"      --max-unauth-per-peer N  from one IPv4 address or IPv6 /64 (default 64, or\n"
	"                             --max-unauth if lower)\n"
	"  -h, --help                 show this help\n"
	"\n"
	"<root> is the store root: $CAPSA_ROOT, by default /var/lib/capsa, or\n"
	"~/.local/share/capsa ($XDG_DATA_HOME/capsa) rootless.\n"
	"\n"
	"Examples:\n"
	"  capsa serve\n"
	"  capsa serve --listen 127.0.0.1:3000\n"
	"  E2B_API_URL=http://127.0.0.1:3000 E2B_SANDBOX_URL=http://127.0.0.1:3000 \\\n"
	"    E2B_API_KEY=$(cat <root>/api-token) node my-agent.js\n";

enum {
	O_SOCKET = 256, O_LISTEN, O_TOKEN, O_CAP_CPUS, O_CAP_MEM, O_CAP_DISK, O_MIN_FREE, O_DEF_MEM, O_DEF_DISK, O_E2B_TIMEOUT,
	O_WORKERS, O_MAX_BODY, O_MAX_UPLOAD, O_MAX_DOWNLOAD, O_CONN_TIMEOUT, O_MAX_CONN, O_MAX_STREAMS, O_HEADER_TIMEOUT,
	O_MAX_UNAUTH, O_MAX_UNAUTH_PEER, O_HOST_NET,
};

static int size_opt(struct cli *cli, const char *name, const char *arg, int64_t *out)
{
	struct capsa_error *err = NULL;
	if (parse_size(arg, out, &err) < 0) {
		int rc = cli_usage_error(cli, "--%s: %s", name, err->msg);
		capsa_error_free(err);
		return rc;
	}
	return 0;
}

static int int_opt(struct cli *cli, const char *name, const char *arg, int64_t min, int64_t max, int *out)
{
	int64_t v;
	if (parse_int64(arg, min, max, &v) < 0)
		return cli_usage_error(cli, "--%s: expected a number from %lld to %lld", name, (long long)min,
				       (long long)max);
	*out = (int)v;
	return 0;
}

static int dur_opt(struct cli *cli, const char *name, const char *arg, int64_t *out)
{
	struct capsa_error *err = NULL;
	if (parse_duration_ms(arg, out, &err) < 0 || *out <= 0) {
		int rc = cli_usage_error(cli, "--%s: %s", name, err ? err->msg : "must be positive");
		capsa_error_free(err);
		return rc;
	}
	return 0;
}

CLI_CMD(serve)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "token-file", required_argument, NULL, O_TOKEN },
		{ "capacity-cpus", required_argument, NULL, O_CAP_CPUS },
		{ "capacity-memory", required_argument, NULL, O_CAP_MEM },
		{ "capacity-disk", required_argument, NULL, O_CAP_DISK },
		{ "min-free-disk", required_argument, NULL, O_MIN_FREE },
		{ "default-memory", required_argument, NULL, O_DEF_MEM },
		{ "default-disk", required_argument, NULL, O_DEF_DISK },
		{ "e2b-timeout", required_argument, NULL, O_E2B_TIMEOUT },
		{ "allow-host-network", no_argument, NULL, O_HOST_NET },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "max-body", required_argument, NULL, O_MAX_BODY },
		{ "max-upload", required_argument, NULL, O_MAX_UPLOAD },
		{ "max-download", required_argument, NULL, O_MAX_DOWNLOAD },
		{ "conn-timeout", required_argument, NULL, O_CONN_TIMEOUT },
		{ "max-connections", required_argument, NULL, O_MAX_CONN },
		{ "max-streams", required_argument, NULL, O_MAX_STREAMS },
		{ "header-timeout", required_argument, NULL, O_HEADER_TIMEOUT },
		{ "max-unauth", required_argument, NULL, O_MAX_UNAUTH },
		{ "max-unauth-per-peer", required_argument, NULL, O_MAX_UNAUTH_PEER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct server_opts o = { .ctx = cli->opts, .stop_fd = -1 };
	_cleanup_strv_ char **listen = NULL;
	int c, rc = 0;
	int64_t v;
	while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_SOCKET:
			o.socket_path = optarg;
			break;
		case O_LISTEN:
			listen = strv_push(listen, optarg);
			break;
		case O_TOKEN:
			o.token_file = optarg;
			break;
		case O_CAP_CPUS:
			if ((rc = opt_cpus(optarg, &o.capacity.cpus_milli, NULL) < 0 ? cli_usage_error(cli,
				"--capacity-cpus: expected a positive number") : 0) == 0)
				o.capacity_set[0] = true;
			break;
		case O_CAP_MEM:
			rc = size_opt(cli, "capacity-memory", optarg, &o.capacity.memory);
			o.capacity_set[1] = true;
			break;
		case O_CAP_DISK:
			rc = size_opt(cli, "capacity-disk", optarg, &o.capacity.disk);
			o.capacity_set[2] = true;
			break;
		case O_MIN_FREE:
			rc = size_opt(cli, "min-free-disk", optarg, &o.capacity.min_free_disk);
			o.capacity_set[3] = true;
			break;
		case O_DEF_DISK:
			rc = size_opt(cli, "default-disk", optarg, &o.default_disk);
			if (rc == 0 && o.default_disk > 0 && o.default_disk < (16LL << 20))
				rc = cli_usage_error(cli, "--default-disk %s: the minimum is 16m", optarg);
			break;
		case O_DEF_MEM:
			rc = size_opt(cli, "default-memory", optarg, &o.default_memory);
			break;
		case O_HOST_NET:
			o.allow_host_network = true;
			break;
		case O_E2B_TIMEOUT:
			rc = dur_opt(cli, "e2b-timeout", optarg, &o.e2b_default_timeout_ms);
			break;
		case O_WORKERS:
			rc = int_opt(cli, "workers", optarg, 1, 1024, &o.workers);
			break;
		case O_MAX_BODY:
			rc = size_opt(cli, "max-body", optarg, &o.max_json);
			break;
		case O_MAX_DOWNLOAD:
			rc = size_opt(cli, "max-download", optarg, &o.max_download);
			break;
		case O_MAX_UPLOAD:
			rc = size_opt(cli, "max-upload", optarg, &o.max_upload);
			break;
		case O_CONN_TIMEOUT:
			rc = dur_opt(cli, "conn-timeout", optarg, &v);
			o.conn_timeout_s = (int)((v + 999) / 1000);
			break;
		case O_MAX_CONN:
			rc = int_opt(cli, "max-connections", optarg, 2, 1 << 20, &o.max_connections);
			break;
		case O_MAX_STREAMS:
			rc = int_opt(cli, "max-streams", optarg, 1, 1 << 20, &o.max_streams);
			break;
		case O_HEADER_TIMEOUT:
			rc = dur_opt(cli, "header-timeout", optarg, &o.header_timeout_ms);
			break;
		case O_MAX_UNAUTH:
			rc = int_opt(cli, "max-unauth", optarg, 1, 1 << 20, &o.max_unauth);
			break;
		case O_MAX_UNAUTH_PEER:
			rc = int_opt(cli, "max-unauth-per-peer", optarg, 1, 1 << 20, &o.max_unauth_per_peer);
			break;
		case 'h':
			return cli_help(serve_usage);
		default:
			return cli_usage_error(cli, "unknown option");
		}
	}
	if (rc)
		return rc;
	if (optind < argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	o.listen = listen;
	struct capsa_error *err = NULL;
	if (server_run(&o, &err) < 0)
		return cli_fail(cli, err);
	return 0;
}
