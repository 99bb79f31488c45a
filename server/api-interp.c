/* api-interp.c: the E2B code interpreter (port 49999). */
#include "api.h"
#include "server.h"

const struct route interp_routes[] = {
	{ NULL, NULL, NULL, BODY_NONE, NULL },
};
