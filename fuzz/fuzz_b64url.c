/* libFuzzer target: base64url decoding of the JWT payload (src/url.c b64url_decode).
 * Invariants: on success the output has exactly floor(6n/8) bytes for n significant
 * characters, is NUL-terminated inside its capacity, and re-encoding it gives back the input
 * (modulo the alphabet variant, trailing '=' and unused low bits of the last character); on
 * failure the input has a non-alphabet character, a '=' before the end, or n % 4 == 1. */
#include "fuzz_common.h"
#include "url.h"

static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int val(unsigned char c) {
  const char *p = c ? strchr(alpha, c) : NULL;
  if (p) return (int)(p - alpha);
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fz_dup((const char *)data, size, 0);
  size_t n = size;
  while (n > 0 && s[n - 1] == '=') n--;
  int want_ok = n % 4 != 1;
  for (size_t i = 0; i < n && want_ok; i++)
    if (val((unsigned char)s[i]) < 0) want_ok = 0;

  abuf out = {0};
  if (size && (data[0] & 1)) abuf_adds(&out, "prefix"); /* decode appends */
  size_t before = out.len;
  int rc = b64url_decode(&out, s, size);
  CHECK((rc == 0) == want_ok, "rc %d for an input the reference calls %s", rc, want_ok ? "valid" : "invalid");
  if (rc == 0) {
    size_t got = out.len - before;
    CHECK(got == n * 6 / 8, "decoded %zu bytes from %zu characters", got, n);
    CHECK(out.len < out.cap && out.data[out.len] == '\0', "not NUL-terminated in capacity");
    if (before) CHECK(memcmp(out.data, "prefix", 6) == 0, "existing content clobbered");
    /* Re-encode and compare character by character (last one: only its significant bits). */
    const unsigned char *b = (const unsigned char *)out.data + before;
    unsigned long acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < got; i++) {
      acc = (acc << 8) | b[i];
      bits += 8;
      while (bits >= 6) {
        bits -= 6;
        int v = (int)((acc >> bits) & 63);
        CHECK(k < n && v == val((unsigned char)s[k]), "re-encoding differs at %zu", k);
        k++;
      }
    }
    if (bits > 0) {
      int v = (int)((acc << (6 - bits)) & 63);
      CHECK(k < n, "missing last character");
      int mask = (0x3f << (6 - bits)) & 63;
      CHECK((v & mask) == (val((unsigned char)s[k]) & mask), "last character's bits differ");
      k++;
    }
    CHECK(k == n, "re-encoded %zu of %zu characters", k, n);
  }
  abuf_free(&out);
  free(s);
  return 0;
}
