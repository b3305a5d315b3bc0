#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "curl_api.h"

curl_api alloy_curl;

/* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
#define BIND(field, symbol)                                                   \
  do {                                                                        \
    void *fn = dlsym(lib, symbol);                                            \
    if (fn == NULL) {                                                         \
      snprintf(err, err_size, "libcurl has no %s", symbol);                   \
      return -1;                                                              \
    }                                                                         \
    memcpy(&api.field, &fn, sizeof fn);                                       \
  } while (0)

int alloy_curl_load(char *err, size_t err_size) {
  static const char *const names[] = {"libcurl.so.4", "libcurl.so", "libcurl.4.dylib", NULL};
  curl_api api;
  void *lib = NULL;
  if (alloy_curl.easy_init) return 0;
  for (int i = 0; names[i] && lib == NULL; i++) lib = dlopen(names[i], RTLD_LAZY | RTLD_LOCAL);
  if (lib == NULL) {
    snprintf(err, err_size, "cannot load libcurl: %s", dlerror());
    return -1;
  }
  BIND(global_init, "curl_global_init");
  BIND(version_info, "curl_version_info");
  BIND(getdate, "curl_getdate");
  BIND(easy_init, "curl_easy_init");
  BIND(easy_setopt, "curl_easy_setopt");
  BIND(easy_getinfo, "curl_easy_getinfo");
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
  alloy_curl = api;
  return 0;
}
