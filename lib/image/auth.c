/* auth.c: WWW-Authenticate parsing and the credential file.
 *
 * Grammar (RFC 7235 section 2.1, RFC 7230 for tokens and quoted strings):
 *   WWW-Authenticate = 1#challenge
 *   challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param       = token BWS "=" BWS ( token / quoted-string )
 * A comma separates both parameters and challenges; an item "name=..."
 * continues the current challenge, a bare token starts the next one.
 * Everything else is refused: this header is registry-controlled and ends
 * up choosing where credentials are sent.
 *
 * The credential file never holds anything but base64("user:password") per
 * registry (the docker config.json "auths" shape), mode 0600.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "auth.h"
#include "image/ingest.h"
#include "util/base64.h"
#include "util/fs.h"
#include "util/str.h"

static bool is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token68_char(unsigned char c)
{
	return isalnum(c) || (c && strchr("-._~+/", c));
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

struct lexer {
	const char *s;
	size_t len, pos;
};

static void skip_ows(struct lexer *lx)
{
	while (lx->pos < lx->len && is_ows((unsigned char)lx->s[lx->pos]))
		lx->pos++;
}

static bool at_end(const struct lexer *lx)
{
	return lx->pos >= lx->len;
}

static char peek(const struct lexer *lx)
{
	return at_end(lx) ? '\0' : lx->s[lx->pos];
}

/* Length of the token at pos (0 if none). */
static size_t token_len(const struct lexer *lx, size_t pos)
{
	size_t n = 0;
	while (pos + n < lx->len && is_tchar((unsigned char)lx->s[pos + n]))
		n++;
	return n;
}

static char *lower_dup(const char *s, size_t n)
{
	char *r = xstrndup(s, n);
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

/* quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE */
static char *parse_quoted(struct lexer *lx, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	b.cap = AUTH_HEADER_MAX;
	lx->pos++; /* opening quote */
	while (!at_end(lx)) {
		unsigned char c = (unsigned char)lx->s[lx->pos++];
		if (c == '"')
			return buf_steal(&b);
		if (c == '\\') {
			if (at_end(lx))
				break;
			c = (unsigned char)lx->s[lx->pos++];
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			buf_release(&b);
			error_set(err, EINVAL, "control character 0x%02x in quoted string at offset %zu", c,
				  lx->pos - 1);
			return NULL;
		}
		buf_putc(&b, (char)c);
	}
	buf_release(&b);
	error_set(err, EINVAL, "unterminated quoted string");
	return NULL;
}

/* token68 directly after the scheme: 1*token68char *"=" then OWS and the end
 * of the value or a comma.  Returns its length, 0 when the text there is not
 * a token68 (then it is parsed as auth-params). */
static size_t token68_len(const struct lexer *lx)
{
	size_t p = lx->pos, n = 0;
	while (p + n < lx->len && is_token68_char((unsigned char)lx->s[p + n]))
		n++;
	if (n == 0)
		return 0;
	while (p + n < lx->len && lx->s[p + n] == '=')
		n++;
	size_t q = p + n;
	while (q < lx->len && is_ows((unsigned char)lx->s[q]))
		q++;
	return q >= lx->len || lx->s[q] == ',' ? n : 0;
}

static void challenge_release(struct auth_challenge *c)
{
	free(c->scheme);
	free(c->token68);
	for (size_t i = 0; i < c->n_params; i++) {
		free(c->params[i].name);
		free(c->params[i].value);
	}
	free(c->params);
	memset(c, 0, sizeof(*c));
}

/* Parses the parameters of one challenge, up to the start of the next
 * challenge or the end. */
static int parse_params(struct lexer *lx, struct auth_challenge *ch, struct capsa_error **err)
{
	/* token68 only directly after the scheme and its spaces, never after
	 * a comma: in "Basic, Foo" Foo is the next scheme */
	skip_ows(lx);
	size_t t68 = token68_len(lx);
	if (t68) {
		ch->token68 = xstrndup(lx->s + lx->pos, t68);
		lx->pos += t68;
		skip_ows(lx);
		return 0;
	}
	for (;;) {
		skip_ows(lx);
		while (peek(lx) == ',') {
			lx->pos++;
			skip_ows(lx);
		}
		if (at_end(lx))
			return 0;
		size_t save = lx->pos;
		size_t n = token_len(lx, lx->pos);
		if (n == 0)
			return error_set(err, EINVAL, "unexpected character '%c' at offset %zu", peek(lx), lx->pos);
		lx->pos += n;
		skip_ows(lx);
		if (peek(lx) != '=') {
			/* a bare token: the next challenge's scheme */
			lx->pos = save;
			return 0;
		}
		lx->pos++;
		skip_ows(lx);
		char *value;
		if (peek(lx) == '"') {
			value = parse_quoted(lx, err);
			if (!value)
				return -1;
		} else {
			size_t vn = token_len(lx, lx->pos);
			if (vn == 0)
				return error_set(err, EINVAL, "missing value for parameter '%.*s'", (int)MIN(n, 64),
						 lx->s + save);
			value = xstrndup(lx->s + lx->pos, vn);
			lx->pos += vn;
		}
		_cleanup_free_ char *name = lower_dup(lx->s + save, n);
		if (auth_challenge_param(ch, name)) {
			free(value);
			return error_set(err, EINVAL, "parameter '%.64s' given twice", name);
		}
		if (ch->n_params >= AUTH_MAX_PARAMS) {
			free(value);
			return error_set(err, E2BIG, "more than %d parameters in one challenge", AUTH_MAX_PARAMS);
		}
		ch->params = xrealloc(ch->params, (ch->n_params + 1) * sizeof(*ch->params));
		ch->params[ch->n_params].name = steal_pointer(&name);
		ch->params[ch->n_params].value = value;
		ch->n_params++;
		skip_ows(lx);
		if (!at_end(lx) && peek(lx) != ',')
			return error_set(err, EINVAL, "unexpected character '%c' at offset %zu", peek(lx), lx->pos);
	}
}

int auth_parse_challenges(const char *s, size_t len, struct auth_challenges *out, struct capsa_error **err)
{
	if (len > AUTH_HEADER_MAX)
		return error_set(err, E2BIG, "www-authenticate header: longer than %d bytes", AUTH_HEADER_MAX);
	if (memchr(s, '\0', len))
		return error_set(err, EINVAL, "www-authenticate header: NUL byte");
	struct lexer lx = { s, len, 0 };
	struct auth_challenges got = { NULL, 0 };
	for (;;) {
		skip_ows(&lx);
		while (peek(&lx) == ',') {
			lx.pos++;
			skip_ows(&lx);
		}
		if (at_end(&lx))
			break;
		size_t n = token_len(&lx, lx.pos);
		if (n == 0) {
			error_set(err, EINVAL, "www-authenticate header: expected an auth scheme at offset %zu",
				  lx.pos);
			goto fail;
		}
		if (out->n + got.n >= AUTH_MAX_CHALLENGES) {
			error_set(err, E2BIG, "www-authenticate header: more than %d challenges",
				  AUTH_MAX_CHALLENGES);
			goto fail;
		}
		struct auth_challenge ch = { 0 };
		ch.scheme = lower_dup(lx.s + lx.pos, n);
		lx.pos += n;
		if (!at_end(&lx) && !is_ows((unsigned char)peek(&lx)) && peek(&lx) != ',') {
			error_set(err, EINVAL, "www-authenticate header: unexpected character '%c' at offset %zu",
				  peek(&lx), lx.pos);
			challenge_release(&ch);
			goto fail;
		}
		if (parse_params(&lx, &ch, err) < 0) {
			error_wrap(err, "www-authenticate header");
			challenge_release(&ch);
			goto fail;
		}
		got.v = xrealloc(got.v, (got.n + 1) * sizeof(*got.v));
		got.v[got.n++] = ch;
	}
	if (got.n == 0)
		return error_set(err, EINVAL, "www-authenticate header: no challenge");
	out->v = xrealloc(out->v, (out->n + got.n) * sizeof(*out->v));
	memcpy(out->v + out->n, got.v, got.n * sizeof(*got.v));
	out->n += got.n;
	free(got.v);
	return 0;
fail:
	auth_challenges_release(&got);
	return -1;
}

void auth_challenges_release(struct auth_challenges *c)
{
	for (size_t i = 0; i < c->n; i++)
		challenge_release(&c->v[i]);
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

const struct auth_challenge *auth_find_challenge(const struct auth_challenges *c, const char *scheme)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcasecmp(c->v[i].scheme, scheme) == 0)
			return &c->v[i];
	return NULL;
}

const char *auth_challenge_param(const struct auth_challenge *c, const char *name)
{
	for (size_t i = 0; i < c->n_params; i++)
		if (strcasecmp(c->params[i].name, name) == 0)
			return c->params[i].value;
	return NULL;
}

/* --- credential file ------------------------------------------------------ */

char *auth_registry_key(const char *registry, struct capsa_error **err)
{
	const char *s = registry;
	if (strncasecmp(s, "https://", 8) == 0)
		s += 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		s += 7;
	size_t n = strcspn(s, "/");
	if (n == 0 || n > 255) {
		error_set(err, EINVAL, "registry '%.300s': not a host[:port]", registry);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && !strchr(".-:[]_", c)) {
			error_set(err, EINVAL, "registry '%.300s': not a host[:port]", registry);
			return NULL;
		}
	}
	char *key = lower_dup(s, n);
	if (str_eq(key, "index.docker.io") || str_eq(key, "registry-1.docker.io")) {
		free(key);
		key = xstrdup("docker.io");
	}
	return key;
}

void auth_cred_release(struct auth_cred *c)
{
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->user);
	free(c->password);
	c->user = c->password = NULL;
}

static void json_decref_p(json_t **j)
{
	if (*j)
		json_decref(*j);
}
#define _cleanup_json_ __attribute__((cleanup(json_decref_p)))

/* Reads auth.json; a missing file is an empty object. */
static json_t *auth_file_read(struct capsa_ctx *ctx, struct capsa_error **err)
{
	struct buf b = BUF_INIT;
	struct capsa_error *e = NULL;
	if (read_file_at(ctx->root_fd, "auth.json", AUTH_FILE_MAX, &b, &e) < 0) {
		buf_release(&b);
		if (e->code == ENOENT) {
			capsa_error_free(e);
			return json_pack("{s:{}}", "auths");
		}
		error_move(err, &e);
		return NULL;
	}
	json_error_t je;
	json_t *root = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je);
	explicit_bzero(b.data, b.len);
	buf_release(&b);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		error_set(err, EINVAL, "%s/auth.json: not a JSON object", ctx->root);
		return NULL;
	}
	json_t *auths = json_object_get(root, "auths");
	if (!auths) {
		json_object_set_new(root, "auths", json_object());
	} else if (!json_is_object(auths)) {
		json_decref(root);
		error_set(err, EINVAL, "%s/auth.json: \"auths\" is not an object", ctx->root);
		return NULL;
	}
	return root;
}

int auth_cred_load(struct capsa_ctx *ctx, const char *registry, struct auth_cred *out, struct capsa_error **err)
{
	_cleanup_free_ char *key = auth_registry_key(registry, err);
	if (!key)
		return -1;
	_cleanup_json_ json_t *root = auth_file_read(ctx, err);
	if (!root)
		return -1;
	json_t *entry = json_object_get(json_object_get(root, "auths"), key);
	if (!entry)
		return 0;
	const char *enc = json_string_value(json_object_get(entry, "auth"));
	if (!enc)
		return error_set(err, EINVAL, "%s/auth.json: entry %s has no \"auth\" string", ctx->root, key);
	struct buf b = BUF_INIT;
	b.cap = AUTH_FILE_MAX;
	if (base64_decode(enc, strlen(enc), &b) < 0 || memchr(buf_cstr(&b), '\0', b.len)) {
		buf_release(&b);
		return error_set(err, EINVAL, "%s/auth.json: entry %s: \"auth\" is not base64 of user:password",
				 ctx->root, key);
	}
	const char *colon = memchr(b.data, ':', b.len);
	if (!colon || colon == b.data) {
		explicit_bzero(b.data, b.len);
		buf_release(&b);
		return error_set(err, EINVAL, "%s/auth.json: entry %s: \"auth\" is not base64 of user:password",
				 ctx->root, key);
	}
	out->user = xstrndup(b.data, (size_t)(colon - b.data));
	out->password = xstrdup(colon + 1);
	explicit_bzero(b.data, b.len);
	buf_release(&b);
	return 1;
}

static int auth_file_write(struct capsa_ctx *ctx, json_t *root, struct capsa_error **err)
{
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return error_set(err, ENOMEM, "encode %s/auth.json", ctx->root);
	size_t n = strlen(text);
	char *withnl = xasprintf("%s\n", text);
	explicit_bzero(text, n);
	free(text);
	int r = write_file_atomic_at(ctx->root_fd, "auth.json", withnl, n + 1, 0600, true, err);
	explicit_bzero(withnl, n + 1);
	free(withnl);
	if (r < 0)
		return error_wrap(err, "store credentials in %s", ctx->root);
	return 0;
}

/* The entry key for registry and auth.json read under the lock (for a
 * read-modify-write); NULL with err on failure. */
static json_t *auth_file_begin(struct capsa_ctx *ctx, const char *registry, char **key, int *lock,
			       struct capsa_error **err)
{
	*key = auth_registry_key(registry, err);
	if (!*key)
		return NULL;
	*lock = image_lock_file(ctx, "auth.json.lock", LOCK_EX, err);
	if (*lock < 0)
		return NULL;
	return auth_file_read(ctx, err);
}

int auth_cred_store(struct capsa_ctx *ctx, const char *registry, const char *user, const char *password,
		    struct capsa_error **err)
{
	if (!*user || strchr(user, ':'))
		return error_set(err, EINVAL, "username '%.100s': must be non-empty and contain no ':'", user);
	_cleanup_free_ char *key = NULL;
	_cleanup_close_ int lock = -1;
	_cleanup_json_ json_t *root = auth_file_begin(ctx, registry, &key, &lock, err);
	if (!root)
		return -1;
	_cleanup_free_ char *pair = xasprintf("%s:%s", user, password);
	_cleanup_free_ char *enc = base64_encode(pair, strlen(pair));
	explicit_bzero(pair, strlen(pair));
	json_object_set_new(json_object_get(root, "auths"), key, json_pack("{s:s}", "auth", enc));
	explicit_bzero(enc, strlen(enc));
	return auth_file_write(ctx, root, err);
}

int auth_cred_remove(struct capsa_ctx *ctx, const char *registry, struct capsa_error **err)
{
	_cleanup_free_ char *key = NULL;
	_cleanup_close_ int lock = -1;
	_cleanup_json_ json_t *root = auth_file_begin(ctx, registry, &key, &lock, err);
	if (!root)
		return -1;
	json_t *auths = json_object_get(root, "auths");
	if (!json_object_get(auths, key))
		return 0;
	json_object_del(auths, key);
	if (auth_file_write(ctx, root, err) < 0)
		return -1;
	return 1;
}
