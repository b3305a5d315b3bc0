/* A presigned upload URL (the Connectivity API's files): parsed once by libcurl's URL API, so
 * that what is checked is what is sent (CURLOPT_CURLU); refused unless https (http only on
 * loopback, for a local stand-in) and without a user name; its query's values are a
 * credential, masked in whatever is shown of it. No Lua types. */
#ifndef ALLOY_PRESIGNED_H
#define ALLOY_PRESIGNED_H

#include <curl/curl.h>

#include "buf.h"

typedef struct presigned {
  CURLU *url;
  abuf query, shown_query, hidden; /* the query as sent, as shown, its hidden values (NUL-separated) */
  const char *secret;              /* also masked (the API key), should a server echo it */
} presigned;

/* Parses url (n bytes) into u: NULL, or the failure code (URL_MALFORMAT, UNSAFE_URL) with a
 * message in err. u is filled either way: presigned_free it. */
const char *presigned_parse(presigned *u, const char *url, size_t n, char *err, size_t err_size);
/* The URL's part (curl_free it), or NULL when it has none. */
char *presigned_part(const presigned *u, CURLUPart part);
/* Appends s with the URL's query and each hidden value masked, and the secret. */
void presigned_mask(const presigned *u, abuf *out, const char *s, size_t n);
/* libcurl's debug callback (CURLOPT_DEBUGDATA: the presigned): its lines on stderr, masked,
 * control bytes scrubbed. */
int presigned_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud);
void presigned_free(presigned *u);

#endif
