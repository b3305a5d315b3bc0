/* libcurl, loaded at run time with lazy binding.
 *
 * Lua loads C modules with RTLD_NOW, which binds every symbol of libcurl and its ~30
 * dependencies up front: about 3 ms, a sixth of a one-shot script. alloy.so therefore
 * does not link libcurl; alloy_curl_load() dlopens it with RTLD_LAZY and the macros below
 * send the usual curl_* calls through the loaded table. Include after <curl/curl.h>. */
#ifndef ALLOY_CURL_API_H
#define ALLOY_CURL_API_H

#include <curl/curl.h>
#include <stddef.h>

/* The oldest libcurl lua-alloy works with: curl_easy_header (response headers) is 7.84.0,
 * CURLOPT_PROTOCOLS_STR (only http and https are ever fetched) 7.85.0. Checked here against
 * the headers and in alloy_curl_load against the library loaded. */
#define ALLOY_CURL_MIN 0x075500
#define ALLOY_CURL_MIN_TEXT "7.85.0"
#if LIBCURL_VERSION_NUM < ALLOY_CURL_MIN
#error "lua-alloy needs libcurl 7.85.0 or later (curl_easy_header, CURLOPT_PROTOCOLS_STR); these curl headers are older"
#endif

typedef struct curl_api {
  CURLcode (*global_init)(long);
  curl_version_info_data *(*version_info)(CURLversion);
  time_t (*getdate)(const char *, const time_t *);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  CURLHcode (*easy_header)(CURL *, const char *, size_t, unsigned int, int, struct curl_header **);
  CURLcode (*easy_perform)(CURL *);
  void (*easy_cleanup)(CURL *);
  const char *(*easy_strerror)(CURLcode);

  CURLM *(*multi_init)(void);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_perform)(CURLM *, int *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd[], unsigned int, int, int *);
  CURLMcode (*multi_cleanup)(CURLM *);
  CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  const char *(*multi_strerror)(CURLMcode);

  /* the URL parser (7.62): client:put_file checks an upload URL and sends what it parsed */
  CURLU *(*url)(void);
  void (*url_cleanup)(CURLU *);
  CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
  CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
  void (*free)(void *);
} curl_api;

extern curl_api alloy_curl;

/* In a function binding a library's symbols into a table: api.field = lib's symbol (dlsym gives
 * a void *; POSIX guarantees it converts to a function pointer), or "<name> has no <symbol>"
 * in err and -1 returned. curl_api.c binds libcurl with it, md5.c libcrypto. */
#define ALLOY_BIND(api, lib, name, field, symbol, err, err_size)             \
  do {                                                                        \
    void *fn_ = dlsym(lib, symbol);                                           \
    if (fn_ == NULL) {                                                        \
      snprintf(err, err_size, "%s has no %s", name, symbol);                  \
      return -1;                                                              \
    }                                                                         \
    memcpy(&(api).field, &fn_, sizeof fn_);                                   \
  } while (0)

/* Loads and initialises libcurl once; returns 0, or -1 with a reason in err. */
int alloy_curl_load(char *err, size_t err_size);

/* make typecheck builds with ALLOY_TYPECHECK: the calls then go to libcurl's own macros,
 * whose compile-time checks (curl/typecheck-gcc.h) the function pointers would bypass. */
#ifndef ALLOY_TYPECHECK
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_easy_setopt alloy_curl.easy_setopt
#define curl_easy_getinfo alloy_curl.easy_getinfo
#define curl_multi_setopt alloy_curl.multi_setopt
#endif
#define curl_global_init alloy_curl.global_init
#define curl_version_info alloy_curl.version_info
#define curl_getdate alloy_curl.getdate
#define curl_easy_init alloy_curl.easy_init
#define curl_easy_header alloy_curl.easy_header
#define curl_easy_perform alloy_curl.easy_perform
#define curl_easy_cleanup alloy_curl.easy_cleanup
#define curl_easy_strerror alloy_curl.easy_strerror
#define curl_multi_init alloy_curl.multi_init
#define curl_multi_add_handle alloy_curl.multi_add_handle
#define curl_multi_remove_handle alloy_curl.multi_remove_handle
#define curl_multi_perform alloy_curl.multi_perform
#define curl_multi_info_read alloy_curl.multi_info_read
#define curl_multi_poll alloy_curl.multi_poll
#define curl_multi_cleanup alloy_curl.multi_cleanup
#define curl_multi_socket_action alloy_curl.multi_socket_action
#define curl_multi_strerror alloy_curl.multi_strerror
#define curl_url alloy_curl.url
#define curl_url_cleanup alloy_curl.url_cleanup
#define curl_url_set alloy_curl.url_set
#define curl_url_get alloy_curl.url_get
#define curl_free alloy_curl.free

#endif
