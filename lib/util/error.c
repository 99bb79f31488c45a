/* error.c: creation and wrapping of struct capsa_error. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

CAPSA_EXPORT void capsa_error_free(struct capsa_error *err)
{
	if (!err)
		return;
	free(err->msg);
	free(err);
}

int error_setv(struct capsa_error **err, int code, const char *fmt, va_list ap)
{
	if (!err || *err)
		return -1;
	struct capsa_error *e = xcalloc(1, sizeof(*e));
	e->code = code;
	if (vasprintf(&e->msg, fmt, ap) < 0)
		e->msg = xstrdup("out of memory formatting an error");
	*err = e;
	return -1;
}

int error_set(struct capsa_error **err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_setv(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

int error_sys(struct capsa_error **err, int code, const char *fmt, ...)
{
	if (!err || *err)
		return -1;
	va_list ap;
	char *head = NULL;
	va_start(ap, fmt);
	if (vasprintf(&head, fmt, ap) < 0)
		head = NULL;
	va_end(ap);
	error_set(err, code, "%s: %s", head ? head : "error", strerror(code));
	free(head);
	return -1;
}

int error_wrap(struct capsa_error **err, const char *fmt, ...)
{
	if (!err || !*err)
		return -1;
	va_list ap;
	char *head = NULL;
	va_start(ap, fmt);
	if (vasprintf(&head, fmt, ap) < 0)
		head = NULL;
	va_end(ap);
	if (head) {
		char *msg = xasprintf("%s: %s", head, (*err)->msg);
		free((*err)->msg);
		(*err)->msg = msg;
		free(head);
	}
	return -1;
}

void error_move(struct capsa_error **to, struct capsa_error **from)
{
	if (!to || !from)
		return;
	capsa_error_free(*to);
	*to = *from;
	*from = NULL;
}
