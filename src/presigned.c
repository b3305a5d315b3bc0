/* A presigned upload URL: parsed by libcurl, checked, its query masked (presigned.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "presigned.h"
#include "curl_api.h"
#include "errors.h"
#include "http.h"

/* Query parameters whose values are not credentials (AWS SigV4's): shown as they are. */
static int shown_param(const char *name, size_t n) {
  static const char *const plain[] = {"X-Amz-Algorithm", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders"};
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
    if (strlen(plain[i]) == n && strncasecmp(plain[i], name, n) == 0) return 1;
  return 0;
}

/* u->shown_query and u->hidden from u->query: every value but shown_param's is hidden, and so
 * is a parameter without a name (no "="): it may be a token on its own. */
static void split_query(presigned *u) {
  const char *q = u->query.data ? u->query.data : "", *end = q + u->query.len;
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp ? amp : end;
    const char *eq = memchr(q, '=', (size_t)(stop - q)), *value = eq ? eq + 1 : q;
    size_t name_len = eq ? (size_t)(eq - q) : 0;
    if (u->shown_query.len) abuf_add(&u->shown_query, "&", 1);
    abuf_add(&u->shown_query, q, name_len);
    if (eq && shown_param(q, name_len)) {
      abuf_add(&u->shown_query, eq, (size_t)(stop - eq));
    } else {
      abuf_adds(&u->shown_query, eq ? "=[REDACTED]" : "[REDACTED]");
      abuf_add(&u->hidden, value, (size_t)(stop - value));
      abuf_add(&u->hidden, "", 1);
    }
    q = stop + (amp ? 1 : 0);
  }
}

void presigned_mask(const presigned *u, abuf *out, const char *s, size_t n) {
  abuf a = {0}, b = {0};
  const char *q = u->query.data;
  size_t k = u->query.len, from = 0;
  for (size_t i = 0; k > 0 && i + k <= n;) {
    if (memcmp(s + i, q, k) == 0) {
      abuf_add(&a, s + from, i - from);
      abuf_add(&a, u->shown_query.data, u->shown_query.len);
      i += k;
      from = i;
    } else {
      i++;
    }
  }
  abuf_add(&a, s + from, n - from);
  for (const char *v = u->hidden.data; v && v < u->hidden.data + u->hidden.len; v += strlen(v) + 1) {
    abuf_clear(&b);
    alloy_redact(&b, a.data ? a.data : "", a.len, v);
    abuf_clear(&a);
    abuf_add(&a, b.data ? b.data : "", b.len);
  }
  alloy_redact(out, a.data ? a.data : "", a.len, u->secret);
  abuf_free(&a);
  abuf_free(&b);
}

static void mask_line(const void *ctx, abuf *out, const char *s, size_t n) { presigned_mask(ctx, out, s, n); }

int presigned_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud) {
  const char *prefix = http_debug_prefix(type);
  (void)h;
  if (prefix) http_debug_lines(prefix, data, size, mask_line, ud);
  return 0;
}

char *presigned_part(const presigned *u, CURLUPart part) {
  char *s = NULL;
  return curl_url_get(u->url, part, &s, 0) == CURLUE_OK && s ? s : NULL;
}

const char *presigned_parse(presigned *u, const char *url, size_t url_len, char *err, size_t err_size) {
  u->url = curl_url();
  if (u->url == NULL || strlen(url) != url_len || curl_url_set(u->url, CURLUPART_URL, url, 0) != CURLUE_OK) {
    snprintf(err, err_size, "the upload URL cannot be parsed");
    return "URL_MALFORMAT"; /* libcurl's code for it (errors.c) */
  }
  char *scheme = presigned_part(u, CURLUPART_SCHEME), *host = presigned_part(u, CURLUPART_HOST);
  char *user = presigned_part(u, CURLUPART_USER), *query = presigned_part(u, CURLUPART_QUERY);
  int https = scheme && strcmp(scheme, "https") == 0, http = scheme && strcmp(scheme, "http") == 0;
  int loopback = host && (strcmp(host, "127.0.0.1") == 0 || strcasecmp(host, "localhost") == 0 ||
                          strcmp(host, "[::1]") == 0);
  const char *code = alloy_code_name(CODE_UNSAFE_URL);
  if (!https && !http)
    snprintf(err, err_size, "the upload URL is not https (%.20s:)", scheme ? scheme : "?");
  else if (http && !loopback)
    snprintf(err, err_size, "the upload URL is http, not https, on a host that is not loopback");
  else if (user)
    snprintf(err, err_size, "the upload URL carries a user name");
  else
    code = NULL;
  if (query) abuf_adds(&u->query, query);
  split_query(u);
  curl_free(scheme);
  curl_free(host);
  curl_free(user);
  curl_free(query);
  return code;
}


void presigned_free(presigned *u) {
  if (u->url) curl_url_cleanup(u->url);
  u->url = NULL;
  abuf_free(&u->query);
  abuf_free(&u->shown_query);
  abuf_free(&u->hidden);
}
