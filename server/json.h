/* json.h: strict decoding of request bodies.
 *
 * A struct jdec walks one JSON object; each accessor checks the type of
 * the field it reads and records the first mistake as a sentence naming
 * the field ("field 'memory': expected an integer or a size string").
 * Handlers read every field they know, then ask jdec_finish() whether
 * anything was wrong, optionally refusing fields they did not read.
 */
#ifndef CAPSA_SERVER_JSON_H
#define CAPSA_SERVER_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JDEC_MAX_KEYS 48

struct jdec {
	json_t *obj;
	const char *prefix; /* "" or "limits." */
	char err[320];
	bool failed;
	const char *seen[JDEC_MAX_KEYS];
	size_t n_seen;
};

/* Parses a request body: an object, no duplicate keys, no NUL, valid
 * UTF-8.  NULL with a message in err otherwise. */
json_t *json_parse_body(const char *p, size_t n, char *err, size_t errlen);

void jdec_init(struct jdec *d, json_t *obj, const char *prefix);
bool jdec_has(struct jdec *d, const char *key);
/* A string (NULL when absent or null). */
const char *jdec_str(struct jdec *d, const char *key, bool required);
int64_t jdec_int(struct jdec *d, const char *key, int64_t def, int64_t min, int64_t max);
bool jdec_bool(struct jdec *d, const char *key, bool def);
/* An object (borrowed), NULL when absent or null. */
json_t *jdec_obj(struct jdec *d, const char *key);
/* An array of strings, NULL-terminated and malloc'd; NULL when absent. */
char **jdec_strv(struct jdec *d, const char *key, size_t max);
/* Environment: {"K": "V"} or ["K=V"]; KEY=VALUE strings. */
char **jdec_env(struct jdec *d, const char *key, size_t max);
/* Labels/metadata: {"k": "v"}; KEY=VALUE strings. */
char **jdec_labels(struct jdec *d, const char *key, size_t max);
/* Bytes: an integer, or a string with a unit ("512m", "1g"). */
int64_t jdec_size(struct jdec *d, const char *key, int64_t def);
/* Milliseconds: an integer, or a duration string ("10s", "500ms"). */
int64_t jdec_duration_ms(struct jdec *d, const char *key, int64_t def);
/* A number of cpus (0.5) as thousandths. */
int64_t jdec_cpus(struct jdec *d, const char *key, int64_t def);
void jdec_fail(struct jdec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* true when every read succeeded (and, with strict, no field was left
 * unread). */
bool jdec_finish(struct jdec *d, bool strict);

/* A JSON array of the strings of v (NULL: empty). */
json_t *json_strv(char *const *v);

/* p[0..n) with every invalid UTF-8 sequence (and NUL) replaced by U+FFFD,
 * NUL-terminated; *out_len is its length. */
char *utf8_sanitize(const char *p, size_t n, size_t *out_len);

#endif
