/* Pure-C helpers for untrusted text: URL building, header parsing, base64url.
 * No Lua types here, so each function can be fuzzed on its own. */
#ifndef ALLOY_URL_H
#define ALLOY_URL_H

#include <stddef.h>
#include "buf.h"

/* Appends s percent-encoded: everything but RFC 3986 unreserved characters. */
int url_encode(abuf *out, const char *s, size_t n);

/* A path parameter must be non-empty, not "." or "..", and free of control bytes and of
 * '/', '?' and '#': encoded they could not break the URL, but servers and proxies that
 * decode %2F before routing would see another path, and no Alloy id contains them. */
int url_param_ok(const char *s, size_t n);

/* Looks a template parameter up by name; returns its value (and length) or NULL. */
typedef const char *(*url_param_fn)(void *ud, const char *name, size_t name_len, size_t *value_len);

/* Expands "{name}" placeholders in tmpl with encoded values from get.
 * Returns 0, or -1 with *err naming the problem (the bad parameter name in err_name). */
int url_expand(abuf *out, const char *tmpl, size_t tmpl_len, url_param_fn get, void *ud,
               const char **err, char *err_name, size_t err_name_size);

/* 1 when a header value holds no CR, LF or NUL (the bytes that split headers). */
int header_value_ok(const char *s, size_t n);
/* 1 when a header name is a non-empty RFC 7230 token. */
int header_name_ok(const char *s, size_t n);

/* Iterates "Name: value\r\n" lines of a raw header block (status lines are skipped).
 * Returns 1 with name/value spans (value trimmed), 0 at the end. */
typedef struct header_field {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} header_field;
int header_next(const char **cursor, const char *end, header_field *f);

/* Decodes base64url (padding optional). Returns 0, or -1 on a bad character/length. */
int b64url_decode(abuf *out, const char *s, size_t n);

#endif
