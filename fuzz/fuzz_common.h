/* Shared helpers for the libFuzzer targets in fuzz/: an invariant check that aborts with a
 * readable reason (libFuzzer then saves the input as crash-*), and input splitting. */
#ifndef ALLOY_FUZZ_COMMON_H
#define ALLOY_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "\nINVARIANT FAILED at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                             \
      fprintf(stderr, "\n");                                                    \
      abort();                                                                  \
    }                                                                           \
  } while (0)

/* Splits [data, data+size) at the first 0xFF byte: *part gets the span before it, the cursor
 * moves past it. The last part is whatever remains. */
typedef struct fz_cursor {
  const uint8_t *p;
  size_t n;
} fz_cursor;

static inline void fz_next(fz_cursor *c, const char **part, size_t *len) {
  const uint8_t *sep = memchr(c->p, 0xFF, c->n);
  size_t k = sep ? (size_t)(sep - c->p) : c->n;
  *part = (const char *)c->p;
  *len = k;
  c->p += sep ? k + 1 : k;
  c->n -= sep ? k + 1 : k;
}

/* A heap copy (so ASan sees reads past the end), not NUL-terminated unless asked. */
static inline char *fz_dup(const char *s, size_t n, int nul) {
  char *d = malloc(n + (nul ? 1 : 0) + (n == 0 && !nul ? 1 : 0));
  if (!d) abort();
  if (n) memcpy(d, s, n);
  if (nul) d[n] = '\0';
  return d;
}

static inline int fz_memmem(const char *h, size_t hn, const char *needle, size_t nn) {
  if (nn == 0) return 1;
  if (hn < nn) return 0;
  for (size_t i = 0; i + nn <= hn; i++)
    if (memcmp(h + i, needle, nn) == 0) return 1;
  return 0;
}

static inline int fz_is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

static inline int fz_hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1; /* lower-case hex is not what url_encode writes */
}

#endif
