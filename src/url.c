#include "url.h"

/* ASCII only: isalnum() would follow the host's C locale and pass bytes >= 0x80. */
static int is_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_unreserved(unsigned char c) {
  return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Hand-written although curl_easy_escape keeps the same set: escape mallocs a string per
 * call; callgrind measured 2,235 instructions for a 24-byte id against 444 here, +1.8% per
 * token request. */
int url_encode(abuf *out, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  if (abuf_reserve(out, n * 3) != 0) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_unreserved(c)) {
      out->data[out->len++] = (char)c;
    } else {
      out->data[out->len++] = '%';
      out->data[out->len++] = hex[c >> 4];
      out->data[out->len++] = hex[c & 15];
    }
  }
  out->data[out->len] = '\0';
  return 0;
}

int url_param_ok(const char *s, size_t n) {
  if (n == 0) return 0;
  if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f || c == '/' || c == '?' || c == '#') return 0;
  }
  return 1;
}

static void copy_name(char *dst, size_t size, const char *name, size_t len) {
  if (size == 0) return;
  if (len >= size) len = size - 1;
  memcpy(dst, name, len);
  dst[len] = '\0';
}

int url_expand(abuf *out, const char *tmpl, size_t tmpl_len, url_param_fn get, void *ud,
               const char **err, char *err_name, size_t err_name_size) {
  size_t i = 0;
  if (err_name_size) err_name[0] = '\0';
  while (i < tmpl_len) {
    const char *open = memchr(tmpl + i, '{', tmpl_len - i);
    size_t lit = open ? (size_t)(open - (tmpl + i)) : tmpl_len - i;
    if (abuf_add(out, tmpl + i, lit) != 0) goto oom;
    i += lit;
    if (!open) break;
    const char *close = memchr(open, '}', tmpl_len - i);
    if (!close || close == open + 1) {
      *err = "malformed path template";
      return -1;
    }
    const char *name = open + 1;
    size_t name_len = (size_t)(close - name);
    size_t value_len = 0;
    const char *value = get(ud, name, name_len, &value_len);
    copy_name(err_name, err_name_size, name, name_len);
    if (value == NULL) {
      *err = "missing path parameter";
      return -1;
    }
    if (!url_param_ok(value, value_len)) {
      *err = "invalid path parameter";
      return -1;
    }
    if (url_encode(out, value, value_len) != 0) goto oom;
    i = (size_t)(close - tmpl) + 1;
  }
  return 0;
oom:
  *err = "out of memory";
  return -1;
}

int header_value_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
  return 1;
}

int header_name_ok(const char *s, size_t n) {
  static const char extra[] = "!#$%&'*+-.^_`|~";
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!is_alnum(c) && (c == '\0' || strchr(extra, c) == NULL)) return 0;
  }
  return 1;
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

int header_next(const char **cursor, const char *end, header_field *f) {
  const char *p = *cursor;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    const char *next = eol ? eol + 1 : end;
    if (line_end > p && line_end[-1] == '\r') line_end--;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    /* Status lines, blank lines and junk without a name are skipped. */
    if (colon && colon > p && !is_space(*p)) {
      const char *v = colon + 1;
      const char *ve = line_end;
      while (v < ve && is_space(*v)) v++;
      while (ve > v && is_space(ve[-1])) ve--;
      f->name = p;
      f->name_len = (size_t)(colon - p);
      f->value = v;
      f->value_len = (size_t)(ve - v);
      *cursor = next;
      return 1;
    }
    p = next;
  }
  *cursor = end;
  return 0;
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-' || c == '+') return 62;
  if (c == '_' || c == '/') return 63;
  return -1;
}

int b64url_decode(abuf *out, const char *s, size_t n) {
  while (n > 0 && s[n - 1] == '=') n--;
  if (n % 4 == 1) return -1;
  if (abuf_reserve(out, n / 4 * 3 + 3) != 0) return -1;
  unsigned long acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value((unsigned char)s[i]);
    if (v < 0) return -1;
    acc = (acc << 6) | (unsigned long)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->data[out->len++] = (char)((acc >> bits) & 0xff);
    }
  }
  out->data[out->len] = '\0';
  return 0;
}
