#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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
  alloy_curl = api;
  return 0;
}

/* Loading libcurl's ~30 libraries is most of a one-shot script's time; a thread started
 * at require time does it while the script reads its configuration. Only dlopen runs
 * there (the loader lock orders it against exit), never libcurl or OpenSSL code. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t loader;
static int loader_running; /* under load_lock */
static void *preloaded;    /* the loader's dlopen result, read after the join */

static void *load_in_background(void *unused) {
  (void)unused;
  preloaded = open_libcurl();
  return NULL;
}

static void join_loader_locked(void) {
  if (loader_running) pthread_join(loader, NULL);
  loader_running = 0;
}

void alloy_curl_wait(void) {
  pthread_mutex_lock(&load_lock);
  join_loader_locked();
  pthread_mutex_unlock(&load_lock);
}

void alloy_curl_preload(void) {
  static int atfork_set; /* a child must not inherit a half-done load */
  const char *off = getenv("ALLOY_NO_PRELOAD"); /* bench/run.lua measures what the thread saves */
  if (off && off[0] == '1') return;
  pthread_mutex_lock(&load_lock);
  if (alloy_curl.easy_init == NULL && !loader_running && preloaded == NULL) {
    if (!atfork_set) atfork_set = pthread_atfork(alloy_curl_wait, NULL, NULL) == 0;
    if (atfork_set) loader_running = pthread_create(&loader, NULL, load_in_background, NULL) == 0;
  }
  pthread_mutex_unlock(&load_lock);
}

int alloy_curl_load(char *err, size_t err_size) {
  int rc = 0;
  pthread_mutex_lock(&load_lock);
  join_loader_locked();
  if (alloy_curl.easy_init == NULL) {
    void *lib = preloaded ? preloaded : open_libcurl(); /* again here for dlerror's reason */
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
