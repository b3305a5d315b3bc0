/* libFuzzer target: raw response header block parsing (src/url.c header_next), plus the
 * header_name_ok / header_value_ok validators used on outgoing headers.
 * Invariants: every field lies inside the block, inside one line; names are non-empty, hold no
 * ':' or LF and do not start with SP/HT; values hold no LF and are trimmed of SP/HT; the cursor
 * only moves forward and ends at the end; no more fields than lines; the iteration agrees with
 * a reference line scanner. header_value_ok is exactly "no CR, LF, NUL"; header_name_ok is
 * exactly an RFC 7230 token. */
#include "fuzz_common.h"
#include "url.h"

static int is_tchar(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *block = fz_dup((const char *)data, size, 0);
  const char *end = block + size;
  const char *cursor = block;
  header_field f;
  size_t fields = 0, lines = 0;
  for (size_t i = 0; i < size; i++) lines += block[i] == '\n';
  lines += 1;

  /* Reference: walk lines; a line yields a field when it has a ':' after a first byte that is
   * not SP/HT and is not ':' itself. */
  const char *r = block;
  while (header_next(&cursor, end, &f)) {
    fields++;
    CHECK(cursor > block && cursor <= end, "cursor outside the block");
    CHECK(f.name >= block && f.name + f.name_len <= end, "name outside the block");
    CHECK(f.value >= block && f.value + f.value_len <= end, "value outside the block");
    CHECK(f.name_len > 0, "empty name");
    CHECK(f.name[0] != ' ' && f.name[0] != '\t', "name starts with white space");
    CHECK(memchr(f.name, ':', f.name_len) == NULL, "':' in name");
    CHECK(memchr(f.name, '\n', f.name_len) == NULL, "LF in name");
    CHECK(memchr(f.value, '\n', f.value_len) == NULL, "LF in value");
    CHECK(f.name + f.name_len < f.value || f.value_len == 0, "value overlaps name");
    if (f.value_len) {
      CHECK(f.value[0] != ' ' && f.value[0] != '\t', "value not left-trimmed");
      CHECK(f.value[f.value_len - 1] != ' ' && f.value[f.value_len - 1] != '\t', "value not right-trimmed");
    }
    CHECK(fields <= lines, "more fields than lines");

    /* Reference line scanner: the next line with a valid name must start at f.name. */
    for (;;) {
      CHECK(r < end, "reference ran out of lines before the parser");
      const char *eol = memchr(r, '\n', (size_t)(end - r));
      const char *le = eol ? eol : end;
      const char *le2 = (le > r && le[-1] == '\r') ? le - 1 : le;
      const char *colon = memchr(r, ':', (size_t)(le2 - r));
      const char *next = eol ? eol + 1 : end;
      if (colon && colon > r && *r != ' ' && *r != '\t') {
        CHECK(f.name == r && f.name_len == (size_t)(colon - r), "parser and reference disagree on a name");
        CHECK(cursor == next, "cursor not at the next line");
        r = next;
        break;
      }
      r = next;
    }
  }
  CHECK(cursor == end, "cursor not at the end after the last field");
  /* No field left behind by the parser. */
  while (r < end) {
    const char *eol = memchr(r, '\n', (size_t)(end - r));
    const char *le = eol ? eol : end;
    const char *le2 = (le > r && le[-1] == '\r') ? le - 1 : le;
    const char *colon = memchr(r, ':', (size_t)(le2 - r));
    CHECK(!(colon && colon > r && *r != ' ' && *r != '\t'), "parser skipped a field line");
    r = eol ? eol + 1 : end;
  }
  /* An empty block, or one the cursor starts at the end of. */
  const char *c2 = end;
  CHECK(header_next(&c2, end, &f) == 0 && c2 == end, "a field past the end");

  /* Outgoing header validators. */
  int want_value = memchr(block, '\r', size) == NULL && memchr(block, '\n', size) == NULL &&
                   memchr(block, '\0', size) == NULL;
  CHECK(header_value_ok(block, size) == want_value, "header_value_ok wrong");
  int want_name = size > 0;
  for (size_t i = 0; i < size; i++)
    if (!is_tchar((unsigned char)block[i])) want_name = 0;
  CHECK(header_name_ok(block, size) == want_name, "header_name_ok wrong");
  free(block);
  return 0;
}
