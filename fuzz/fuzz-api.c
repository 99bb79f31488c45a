/* fuzz-api.c: the parsers of capsa serve that see client bytes before any
 * handler: the request target (path segments and query), JSON request
 * bodies through the strict decoder as the create handler drives it, the
 * UTF-8 sanitizer that makes process output JSON-safe, multipart upload
 * bodies, and Connect request envelopes.  The first input byte picks the
 * parser; the rest is its input. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "server/connect.h"
#include "server/http.h"
#include "server/multipart.h"
#include "server/json.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void target(const char *p, size_t n)
{
	char *uri = xstrndup(p, n);
	struct http_req *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->spool_fd = -1;
	http_parse_target(r, uri);
	if (r->n_seg > HTTP_MAX_SEGMENTS || r->n_query > HTTP_MAX_QUERY)
		abort();
	for (size_t i = 0; i < r->n_seg; i++)
		if (strlen(r->seg[i]) > n)
			abort();
	for (size_t i = 0; i < r->n_query; i++)
		if (!r->query[i].key || !r->query[i].value)
			abort();
	r->raw_uri = uri;
	http_req_free(r);
}

static void body(const char *p, size_t n)
{
	char err[256];
	json_t *j = json_parse_body(p, n, err, sizeof(err));
	if (!j) {
		if (!err[0])
			abort();
		return;
	}
	struct jdec d, lim;
	jdec_init(&d, j, "");
	jdec_str(&d, "image", false);
	jdec_str(&d, "name", false);
	strv_free(jdec_strv(&d, "command", 64));
	strv_free(jdec_env(&d, "env", 64));
	strv_free(jdec_labels(&d, "labels", 64));
	jdec_duration_ms(&d, "timeout", 0);
	jdec_bool(&d, "autoRemove", false);
	jdec_int(&d, "depth", 1, 1, 1000);
	jdec_init(&lim, jdec_obj(&d, "limits"), "limits.");
	jdec_size(&lim, "memory", -1);
	jdec_cpus(&lim, "cpus", -1);
	bool ok = jdec_finish(&d, true) && jdec_finish(&lim, true);
	if (!ok && !d.err[0] && !lim.err[0])
		abort();
	json_decref(j);
}

static void utf8(const char *p, size_t n)
{
	size_t len;
	char *s = utf8_sanitize(p, n, &len);
	/* what comes out must be encodable as a JSON string */
	json_t *j = json_stringn(s, len);
	if (!j || strlen(s) != len)
		abort();
	json_decref(j);
	free(s);
}

static void multipart(const char *p, size_t n)
{
	int fd = memfd_create("body", MFD_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, p, n) != (ssize_t)n) {
		close(fd);
		return;
	}
	struct mpart *v;
	size_t k;
	char err[200];
	if (multipart_parse(fd, (int64_t)n, "B", &v, &k, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < k; i++)
			if (v[i].off < 0 || v[i].len < 0 || v[i].off + v[i].len > (int64_t)n)
				abort();
		multipart_free(v, k);
	} else if (!err[0]) {
		abort();
	}
	close(fd);
}

static void envelope(const char *p, size_t n)
{
	char err[200];
	for (int streaming = 0; streaming < 2; streaming++) {
		json_t *j = connect_decode_request(p, n, streaming, err, sizeof(err));
		if (j && !json_is_object(j))
			abort();
		json_decref(j);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0] % 5) {
	case 0:
		target(p, n);
		break;
	case 1:
		body(p, n);
		break;
	case 2:
		utf8(p, n);
		break;
	case 3:
		multipart(p, n);
		break;
	default:
		envelope(p, n);
		break;
	}
	return 0;
}
