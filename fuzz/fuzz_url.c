/* libFuzzer target: path templating and percent-encoding (src/url.c).
 *   url_encode, url_param_ok, url_expand
 * Input: byte 0 = mode, byte 1 = length of value "a", byte 2 = length of value "b", then the
 * two values, then the template (the rest). "{a}" and "{b}" resolve to the values (unless mode
 * bit 0 hides "a"); any other name is a missing parameter.
 * Invariants: url_expand agrees with a reference expansion; a parameter contributes only
 * unreserved characters and %XX triples (never '/', '?', '#', '%' other than an escape) and
 * decodes back to itself; url_encode output is only unreserved chars and upper-case %XX;
 * url_param_ok rejects exactly "", ".", "..", control bytes, '/', '?' and '#'; err_name stays
 * terminated. */
#include "fuzz_common.h"
#include "url.h"

typedef struct params {
  const char *a, *b;
  size_t a_len, b_len;
  int hide_a;
  int calls;
} params;

static const char *get(void *ud, const char *name, size_t name_len, size_t *value_len) {
  params *p = ud;
  p->calls++;
  if (name_len == 1 && name[0] == 'a' && !p->hide_a) {
    *value_len = p->a_len;
    return p->a;
  }
  if (name_len == 1 && name[0] == 'b') {
    *value_len = p->b_len;
    return p->b;
  }
  return NULL;
}

static int ref_param_ok(const char *s, size_t n) {
  if (n == 0) return 0;
  if (n == 1 && s[0] == '.') return 0;
  if (n == 2 && s[0] == '.' && s[1] == '.') return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f || s[i] == '/' || s[i] == '?' || s[i] == '#') return 0;
  return 1;
}

/* Checks that enc[0..n) is exactly the percent-encoding of raw[0..rn). */
static void check_encoding(const char *enc, size_t n, const char *raw, size_t rn) {
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)enc[i];
    CHECK(j < rn, "encoding longer than its input (%zu raw bytes)", rn);
    if (c == '%') {
      CHECK(i + 2 < n, "truncated escape at %zu", i);
      int hi = fz_hexval((unsigned char)enc[i + 1]), lo = fz_hexval((unsigned char)enc[i + 2]);
      CHECK(hi >= 0 && lo >= 0, "bad escape %%%c%c", enc[i + 1], enc[i + 2]);
      unsigned char dec = (unsigned char)(hi * 16 + lo);
      CHECK(dec == (unsigned char)raw[j], "escape decodes to 0x%02x, expected 0x%02x", dec,
            (unsigned char)raw[j]);
      CHECK(!fz_is_unreserved(dec), "unreserved byte 0x%02x was escaped", dec);
      i += 2;
    } else {
      CHECK(fz_is_unreserved(c), "raw byte 0x%02x in encoded output", c);
      CHECK(c == (unsigned char)raw[j], "byte changed while encoding");
    }
    j++;
  }
  CHECK(j == rn, "encoding covers %zu of %zu bytes", j, rn);
}

static void fuzz_encode(const char *s, size_t n) {
  abuf out = {0};
  static const char prefix[] = "https://h/x/";
  CHECK(abuf_adds(&out, prefix) == 0, "oom");
  CHECK(url_encode(&out, s, n) == 0, "url_encode failed");
  CHECK(memcmp(out.data, prefix, sizeof prefix - 1) == 0, "prefix clobbered");
  CHECK(out.len <= sizeof prefix - 1 + 3 * n, "output too long");
  CHECK(out.data[out.len] == '\0', "not NUL-terminated");
  CHECK(out.len < out.cap, "len past capacity");
  check_encoding(out.data + sizeof prefix - 1, out.len - (sizeof prefix - 1), s, n);
  abuf_free(&out);
}

/* Reference expansion with the same documented rules; returns 0 or an error tag. */
static const char *ref_expand(abuf *out, const char *t, size_t n, params *p) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && t[j] != '{') j++;
    abuf_add(out, t + i, j - i);
    if (j == n) return NULL;
    size_t k = j + 1;
    while (k < n && t[k] != '}') k++;
    if (k == n || k == j + 1) return "malformed path template";
    size_t vl = 0;
    const char *v = get(p, t + j + 1, k - j - 1, &vl);
    if (v == NULL) return "missing path parameter";
    if (!ref_param_ok(v, vl)) return "invalid path parameter";
    url_encode(out, v, vl);
    i = k + 1;
  }
  return NULL;
}

static size_t count_of(const char *s, size_t n, char c) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += s[i] == c;
  return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  unsigned mode = data[0];
  size_t la = data[1], lb = data[2];
  data += 3, size -= 3;
  if (la > size) la = size;
  if (lb > size - la) lb = size - la;
  params p = {0};
  char *a = fz_dup((const char *)data, la, 0);
  char *b = fz_dup((const char *)data + la, lb, 0);
  size_t tn = size - la - lb;
  char *tmpl = fz_dup((const char *)data + la + lb, tn, 0);
  p.a = a, p.a_len = la, p.b = b, p.b_len = lb, p.hide_a = mode & 1;

  /* url_param_ok against the reference, and url_encode on each piece. */
  CHECK(url_param_ok(a, la) == ref_param_ok(a, la), "url_param_ok disagrees on a");
  CHECK(url_param_ok(b, lb) == ref_param_ok(b, lb), "url_param_ok disagrees on b");
  fuzz_encode(a, la);
  fuzz_encode(tmpl, tn);

  /* url_expand into a reused buffer that already holds a base URL, like client->scratch. */
  static abuf out;
  static const char base[] = "http://127.0.0.1:1";
  abuf_clear(&out);
  abuf_adds(&out, base);
  const char *err = NULL;
  static const size_t name_sizes[] = {0, 1, 8, 48};
  size_t name_size = name_sizes[(mode >> 1) & 3];
  char name_buf[49];
  memset(name_buf, 'Z', sizeof name_buf);
  int rc = url_expand(&out, tmpl, tn, get, &p, &err, name_buf, name_size);

  abuf ref = {0};
  abuf_adds(&ref, base);
  const char *ref_err = ref_expand(&ref, tmpl, tn, &p);
  CHECK((rc == 0) == (ref_err == NULL), "url_expand rc %d, reference says %s", rc,
        ref_err ? ref_err : "ok");
  if (rc == 0) {
    CHECK(out.len == ref.len && memcmp(out.data, ref.data, out.len) == 0,
          "expansion differs from the reference");
    CHECK(out.data[out.len] == '\0', "not NUL-terminated");
    /* Parameters add no path or query structure: every '/', '?', '#' comes from the template. */
    size_t lit_slash = 0, lit_q = 0, lit_hash = 0;
    for (size_t i = 0, depth = 0; i < tn; i++) {
      if (tmpl[i] == '{') depth = 1;
      else if (tmpl[i] == '}' && depth) { depth = 0; continue; }
      if (depth) continue;
      lit_slash += tmpl[i] == '/', lit_q += tmpl[i] == '?', lit_hash += tmpl[i] == '#';
    }
    CHECK(count_of(out.data, out.len, '/') == count_of(base, sizeof base - 1, '/') + lit_slash,
          "a parameter introduced a '/'");
    CHECK(count_of(out.data, out.len, '?') == lit_q, "a parameter introduced a '?'");
    CHECK(count_of(out.data, out.len, '#') == lit_hash, "a parameter introduced a '#'");
  } else {
    CHECK(err != NULL && strcmp(err, ref_err) == 0, "error '%s', reference '%s'", err ? err : "(null)",
          ref_err);
  }
  /* err_name: written only inside its size, and terminated there. */
  for (size_t i = name_size; i < sizeof name_buf; i++)
    CHECK(name_buf[i] == 'Z', "err_name written at %zu, past its size %zu", i, name_size);
  if (name_size) CHECK(memchr(name_buf, '\0', name_size) != NULL, "err_name not terminated");
  abuf_free(&ref);
  free(a), free(b), free(tmpl);
  return 0;
}
