/* cmd-login.c: `capsa login` and `capsa logout`: credentials for a registry,
 * checked against it before they are stored (<root>/auth.json, mode 0600).
 * A password on the command line is visible to every user of the machine
 * (ps), so --password-stdin or the terminal prompt are the ways to prefer. */
#include <fcntl.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "capsa/pull.h"
#include "cli.h"
#include "cmds.h"
#include "util/fs.h"
#include "util/str.h"

#define PASSWORD_MAX 4096

static const char login_usage[] =
	"Usage: capsa login [OPTIONS] REGISTRY\n"
	"\n"
	"Check credentials against a registry and store them for pulls.\n"
	"\n"
	"Options:\n"
	"  -u, --username USER          user name (asked for on a terminal when omitted)\n"
	"  --password-stdin             read the password from standard input\n"
	"  -p, --password PASSWORD      the password (visible to other users: prefer\n"
	"                               --password-stdin)\n"
	"  --insecure-registry HOST[:PORT]\n"
	"                               allow plain HTTP for this registry\n"
	"  -h, --help                   show this help\n";

static const char logout_usage[] =
	"Usage: capsa logout REGISTRY\n"
	"\n"
	"Forget the stored credentials for a registry.\n";

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* Reads one line from the terminal, without echo when secret. */
static char *prompt_tty(const char *label, bool secret)
{
	_cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	struct termios old, quiet;
	bool restore = false;
	if (secret && tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	if (write_all(fd, label, strlen(label)) < 0)
		return NULL;
	char line[PASSWORD_MAX + 2];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		ssize_t r = read(fd, line + n, 1);
		if (r <= 0 || line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	if (restore) {
		tcsetattr(fd, TCSAFLUSH, &old);
		write_all(fd, "\n", 1);
	}
	char *r = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	chomp(r);
	return r;
}

CLI_CMD(login)
{
	static const struct option opts[] = {
		{ "username", required_argument, NULL, 'u' },
		{ "password", required_argument, NULL, 'p' },
		{ "password-stdin", no_argument, NULL, 's' },
		{ "insecure-registry", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_free_ char *user = NULL;
	_cleanup_free_ char *password = NULL;
	_cleanup_strv_ char **insecure = NULL;
	bool from_stdin = false;
	int c;
	while ((c = getopt_long(argc, argv, "+u:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			free(user);
			user = xstrdup(optarg);
			break;
		case 'p':
			free(password);
			password = xstrdup(optarg);
			break;
		case 's':
			from_stdin = true;
			break;
		case 'i':
			insecure = strv_push(insecure, optarg);
			break;
		case 'h':
			return cli_help(login_usage);
		default:
			return cli_usage_error(cli, "invalid option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one registry");
	const char *registry = argv[optind];
	if (password && from_stdin)
		return cli_usage_error(cli, "--password and --password-stdin exclude each other");
	if (password)
		fprintf(stderr, "capsa login: warning: --password is visible to other users; use --password-stdin\n");
	if (!user) {
		if (from_stdin || !isatty(STDIN_FILENO) || !(user = prompt_tty("Username: ", false)))
			return cli_usage_error(cli, "--username is required when not on a terminal");
	}
	if (from_stdin) {
		struct buf b = BUF_INIT;
		if (read_all(STDIN_FILENO, &b, PASSWORD_MAX) < 0) {
			buf_release(&b);
			return cli_usage_error(cli, "read the password from standard input: %s",
					       errno == EFBIG ? "longer than 4096 bytes" : strerror(errno));
		}
		password = buf_steal(&b);
		chomp(password);
	} else if (!password) {
		if (!isatty(STDIN_FILENO) || !(password = prompt_tty("Password: ", true)))
			return cli_usage_error(cli, "no password: use --password-stdin when not on a terminal");
	}
	if (!*password)
		return cli_usage_error(cli, "empty password");
	struct capsa_error *err = NULL;
	int rc = capsa_registry_login(cli_ctx(cli), registry, user, password, (const char *const *)insecure, &err);
	explicit_bzero(password, strlen(password));
	if (rc < 0)
		return cli_fail(cli, err);
	printf("Login Succeeded\n");
	return 0;
}

CLI_CMD(logout)
{
	int rc = 0;
	int first = cli_operands(cli, argc, argv, logout_usage, &rc);
	if (first < 0)
		return rc;
	if (argc - first != 1)
		return cli_usage_error(cli, "expected one registry");
	struct capsa_error *err = NULL;
	if (capsa_registry_logout(cli_ctx(cli), argv[first], &err) < 0)
		return cli_fail(cli, err);
	printf("Removed login credentials for %s\n", argv[first]);
	return 0;
}
