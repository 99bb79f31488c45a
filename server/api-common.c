/* api-common.c: helpers the API modules share (api.h). */
#include <string.h>

#include "api.h"
#include "stream.h"
#include "util/util.h"

int api_emit_json(struct stream *s, json_t *o, bool block)
{
	char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!js)
		return -1;
	size_t l = strlen(js);
	js = xrealloc(js, l + 2);
	js[l] = '\n';
	int rc = stream_write(s, js, l + 1, block);
	free(js);
	return rc;
}

int api_emit_line(struct stream *s, const char *stream_name, const char *p, size_t n)
{
	size_t len;
	_cleanup_free_ char *text = utf8_sanitize(p, n, &len);
	return api_emit_json(s, json_pack("{s:s, s:s%}", "stream", stream_name, "line", text, len), true);
}
