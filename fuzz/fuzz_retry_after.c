/* libFuzzer target: the retry policy's parsers (src/http.c).
 *   http_retry_after (Retry-After as delta-seconds or HTTP-date, found in a raw header block)
 *   http_backoff_delay (the wait actually slept: capped by retry_max_wait)
 *   http_is_retryable (POST/PATCH only when the server surely did nothing)
 * Input: byte 0..3 = policy knobs (backoff, cap, attempt, status pick), the rest = header block.
 * Invariants: Retry-After is -1 or a finite value >= 0; all-digit values parse exactly; the
 * delay is finite and within [0, retry_max_wait] for any header; a non-idempotent method is
 * never retried after a failure the server may have acted on. */
#include <math.h>
#include <strings.h>
#include <time.h>

#include "fuzz_common.h"
#include "http.h"
#include "curl_api.h" /* alloy.so loads libcurl at run time: so must we */
#include "url.h"

static const long statuses[] = {200, 400, 408, 425, 429, 500, 502, 503, 504, 0};
static const CURLcode codes[] = {CURLE_OK, CURLE_COULDNT_CONNECT, CURLE_GOT_NOTHING,
                                 CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_OPERATION_TIMEDOUT,
                                 CURLE_PARTIAL_FILE, CURLE_SSL_CONNECT_ERROR};
static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char err[256];
  (void)argc, (void)argv;
  if (alloy_curl_load(err, sizeof err) != 0) {
    fprintf(stderr, "fuzz_retry_after: %s\n", err);
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  http_conf conf;
  memset(&conf, 0, sizeof conf);
  conf.backoff = (double)data[0] / 4.0;            /* 0 .. 63.75 s, alloy.new allows 0..60 */
  conf.retry_max_wait = (double)data[1] * 15.0;    /* 0 .. 3825 s, alloy.new allows 0..3600 */
  if (data[1] & 1) conf.retry_max_wait = (double)data[1] / 1000.0;
  int attempt = 1 + data[2] % 12;
  unsigned pick = data[3];
  data += 4, size -= 4;

  char *block = fz_dup((const char *)data, size, 0);
  double ra = http_retry_after(block, size, 0);
  CHECK(ra == -1 || (isfinite(ra) && ra >= 0), "Retry-After parsed to %g", ra);

  /* The first retry-after field, found independently, when it is plain digits. */
  const char *cur = block, *end = block + size;
  header_field f;
  while (header_next(&cur, end, &f)) {
    if (f.name_len == 11 && strncasecmp(f.name, "retry-after", 11) == 0) {
      int digits = f.value_len > 0 && f.value_len < 64;
      for (size_t i = 0; digits && i < f.value_len; i++)
        digits = f.value[i] >= '0' && f.value[i] <= '9';
      if (digits) {
        char tmp[64];
        memcpy(tmp, f.value, f.value_len);
        tmp[f.value_len] = '\0';
        CHECK(ra == strtod(tmp, NULL), "delta-seconds '%s' parsed to %g", tmp, ra);
      }
      break;
    }
  }

  double d = http_backoff_delay(&conf, attempt, ra);
  CHECK(isfinite(d) && d >= 0 && d <= conf.retry_max_wait, "delay %g outside [0, %g]", d,
        conf.retry_max_wait);
  if (ra >= 0) CHECK(d == (ra < conf.retry_max_wait ? ra : conf.retry_max_wait), "Retry-After not honoured");

  const char *method = methods[pick % 6];
  CURLcode code = codes[(pick / 6) % 8];
  long status = code == CURLE_OK ? statuses[(pick / 48) % 10] : 0;
  int retry = http_is_retryable(method, code, status, ra >= 0);
  int post = strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0;
  if (post && code != CURLE_OK) CHECK(!retry || code == CURLE_COULDNT_CONNECT, "%s retried after %d", method, code);
  if (post && (status == 502 || status == 504)) CHECK(!retry, "%s retried after %ld", method, status);
  if (post && status == 503) CHECK(retry == (ra >= 0), "%s 503 retry=%d with Retry-After %g", method, retry, ra);
  if (status == 429) CHECK(retry, "429 not retried");
  if (code == CURLE_OK && (status < 429 || status == 500)) CHECK(!retry, "status %ld retried", status);
  free(block);
  return 0;
}
