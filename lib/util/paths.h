/* paths.h: where capsa's own helper binaries live. */
#ifndef CAPSA_UTIL_PATHS_H
#define CAPSA_UTIL_PATHS_H

/* Full path of a helper (capsa-agent, capsa-supervisor, capsa-full): from
 * $CAPSA_LIBEXEC_DIR, else next to the running executable (a build tree),
 * else ../libexec/capsa relative to it, else the configured libexec
 * directory.  NULL when none exists. */
char *capsa_helper_path(const char *name);

#endif
