#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "curl_api.h"

curl_api alloy_curl;

#define BIND(field, symbol) ALLOY_BIND(api, lib, "libcurl", field, symbol, err, err_size)

static void *open_libcurl(void) {
  static const char *const names[] = {"libcurl.so.4", "libcurl.so", "libcurl.4.dylib", NULL};
  void *lib = NULL;
  for (int i = 0; names[i] && lib == NULL; i++) lib = dlopen(names[i], RTLD_LAZY | RTLD_LOCAL);
  return lib;
}

static int bind_symbols(void *lib, char *err, size_t err_size) {
  curl_api api;
  BIND(global_init, "curl_global_init");
  BIND(version_info, "curl_version_info");
  const curl_version_info_data *v = api.version_info(CURLVERSION_NOW);
  if (v->version_num < ALLOY_CURL_MIN) {
    snprintf(err, err_size, "libcurl %s is too old: lua-alloy needs " ALLOY_CURL_MIN_TEXT " or later", v->version);
    return -1;
  }
  BIND(getdate, "curl_getdate");
  BIND(easy_init, "curl_easy_init");
  BIND(easy_setopt, "curl_easy_setopt");
  BIND(easy_getinfo, "curl_easy_getinfo");
  BIND(easy_header, "curl_easy_header");
  BIND(easy_perform, "curl_easy_perform");
  BIND(easy_cleanup, "curl_easy_cleanup");
  BIND(easy_strerror, "curl_easy_strerror");
  BIND(multi_init, "curl_multi_init");
  BIND(multi_add_handle, "curl_multi_add_handle");
  BIND(multi_remove_handle, "curl_multi_remove_handle");
  BIND(multi_perform, "curl_multi_perform");
  BIND(multi_info_read, "curl_multi_info_read");
  BIND(multi_poll, "curl_multi_poll");
  BIND(multi_cleanup, "curl_multi_cleanup");
  BIND(multi_setopt, "curl_multi_setopt");
  BIND(multi_socket_action, "curl_multi_socket_action");
  BIND(multi_strerror, "curl_multi_strerror");
  BIND(url, "curl_url");
  BIND(url_cleanup, "curl_url_cleanup");
  BIND(url_set, "curl_url_set");
  BIND(url_get, "curl_url_get");
  BIND(free, "curl_free");
  alloy_curl = api;
  return 0;
}

/* Several Lua states (threads of a host) may load it at once. There is no background
 * preload: bench/run.lua measured one-shot get_jwt_token.lua 2-15% slower with a loader
 * thread started at require time than without it. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

int alloy_curl_load(char *err, size_t err_size) {
  int rc = 0;
  pthread_mutex_lock(&load_lock);
  if (alloy_curl.easy_init == NULL) {
    void *lib = open_libcurl();
    if (lib == NULL) {
      snprintf(err, err_size, "cannot load libcurl: %s", dlerror());
      rc = -1;
    } else if ((rc = bind_symbols(lib, err, err_size)) == 0 &&
               alloy_curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      snprintf(err, err_size, "curl_global_init failed");
      alloy_curl.easy_init = NULL; /* not ready: the next call tries again */
      rc = -1;
    }
  }
  pthread_mutex_unlock(&load_lock);
  return rc;
}
