/* A growable byte buffer, shared by the wire code and the URL helpers. */
#ifndef ALLOY_BUF_H
#define ALLOY_BUF_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct abuf {
  char *data;
  size_t len;
  size_t cap;
} abuf;

/* Returns 0 on success, -1 when out of memory. Keeps data NUL-terminated. */
static inline int abuf_reserve(abuf *b, size_t extra) {
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (p == NULL) return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

static inline int abuf_add(abuf *b, const void *s, size_t n) {
  if (abuf_reserve(b, n) != 0) return -1;
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static inline int abuf_adds(abuf *b, const char *s) { return abuf_add(b, s, strlen(s)); }

static inline void abuf_clear(abuf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

static inline void abuf_free(abuf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

#endif
