/* MD5 from libcrypto (OpenSSL: the library this libcurl is built on, so it is on the machine
 * and usually already in the process), loaded with dlopen as curl_api.c loads libcurl: no link
 * flag, nothing bound until an upload needs it. And alloy.file_md5: a file's MD5, read in
 * blocks (a 1 GB file is never in memory). */
#include "md5.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloy_int.h"
#include "errors.h"

/* The EVP calls used, declared here by their documented signatures (EVP_MD_CTX_new(3),
 * EVP_EncodeBlock(3)): OpenSSL's headers are not needed to build. */
typedef struct crypto_api {
  void *(*ctx_new)(void);
  void (*ctx_free)(void *ctx);
  const void *(*md5)(void);
  int (*init)(void *ctx, const void *type, void *engine);
  int (*update)(void *ctx, const void *data, size_t n);
  int (*final)(void *ctx, unsigned char *digest, unsigned int *n);
  int (*encode)(unsigned char *out, const unsigned char *in, int n);
  int (*decode)(unsigned char *out, const unsigned char *in, int n);
} crypto_api;

static crypto_api crypto;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

#define BIND(field, symbol) ALLOY_BIND(api, lib, "libcrypto", field, symbol, err, err_size)

static int bind_symbols(void *lib, char *err, size_t err_size) {
  crypto_api api;
  BIND(ctx_new, "EVP_MD_CTX_new");
  BIND(ctx_free, "EVP_MD_CTX_free");
  BIND(md5, "EVP_md5");
  BIND(init, "EVP_DigestInit_ex");
  BIND(update, "EVP_DigestUpdate");
  BIND(final, "EVP_DigestFinal_ex");
  BIND(encode, "EVP_EncodeBlock");
  BIND(decode, "EVP_DecodeBlock");
  crypto = api;
  return 0;
}

int md5_load(char *err, size_t err_size) {
  /* OpenSSL 3 (Debian 12), then 1.1: the EVP calls above exist in both. */
  static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so", "libcrypto.3.dylib", NULL};
  int rc = 0;
  pthread_mutex_lock(&load_lock);
  if (crypto.ctx_new == NULL) {
    void *lib = NULL;
    for (int i = 0; names[i] && lib == NULL; i++) lib = dlopen(names[i], RTLD_LAZY | RTLD_LOCAL);
    if (lib == NULL)
      snprintf(err, err_size, "cannot load libcrypto (OpenSSL) for MD5: %s", dlerror()), rc = -1;
    else
      rc = bind_symbols(lib, err, err_size);
  }
  pthread_mutex_unlock(&load_lock);
  return rc;
}

void *md5_begin(void) {
  void *ctx = crypto.ctx_new();
  if (ctx && crypto.init(ctx, crypto.md5(), NULL) != 1) {
    crypto.ctx_free(ctx);
    ctx = NULL;
  }
  return ctx;
}

void md5_update(void *ctx, const void *data, size_t n) {
  if (n) crypto.update(ctx, data, n);
}

int md5_final(void *ctx, unsigned char digest[MD5_LEN]) {
  unsigned int n = 0;
  int ok = crypto.final(ctx, digest, &n) == 1 && n == MD5_LEN;
  crypto.ctx_free(ctx);
  return ok ? 0 : -1;
}

void md5_abandon(void *ctx) {
  if (ctx) crypto.ctx_free(ctx);
}

void md5_hex(const unsigned char digest[MD5_LEN], char out[2 * MD5_LEN + 1]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < MD5_LEN; i++) {
    out[2 * i] = digits[digest[i] >> 4];
    out[2 * i + 1] = digits[digest[i] & 15];
  }
  out[2 * MD5_LEN] = '\0';
}

void md5_base64(const unsigned char digest[MD5_LEN], char out[25]) {
  crypto.encode((unsigned char *)out, digest, MD5_LEN); /* 24 characters and a NUL */
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int md5_parse(const char *s, size_t n, unsigned char digest[MD5_LEN]) {
  if (n == 2 * MD5_LEN) {
    for (int i = 0; i < MD5_LEN; i++) {
      int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
      if (hi < 0 || lo < 0) return -1;
      digest[i] = (unsigned char)(hi * 16 + lo);
    }
    return 0;
  }
  if (n != 24 || s[22] != '=' || s[23] != '=' || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") != 22)
    return -1;
  unsigned char raw[18]; /* 24 characters decode to 18 bytes, the last two the padding's */
  char again[25];
  if (crypto.decode(raw, (const unsigned char *)s, 24) != 18) return -1;
  memcpy(digest, raw, MD5_LEN);
  md5_base64(digest, again);
  return memcmp(again, s, 24) == 0 ? 0 : -1; /* one spelling per digest: no stray low bits */
}

#define MD5_BLOCK (1 << 16)

/* nil, "<CODE>: <detail>", code */
static int md5_failure(lua_State *L, alloy_code code, const char *detail) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", alloy_code_name(code), detail);
  lua_pushstring(L, alloy_code_name(code));
  return 3;
}

/* Calls on_progress(done, total) (at idx) in protected mode; 0, or the error on top. */
static int report(lua_State *L, int fn, long long done, long long total) {
  lua_pushvalue(L, fn);
  lua_pushinteger(L, (lua_Integer)done);
  lua_pushinteger(L, (lua_Integer)total);
  return lua_pcall(L, 2, 0, 0);
}

/* alloy.file_md5(path [, {on_progress = function(done, total)}]) -> {hex, base64, size}
 * | nil, msg, code. A regular file only (a FIFO or a directory is refused before any read). */
static int file_md5(lua_State *L) {
  static const char *const fields[] = {"on_progress"};
  size_t path_len = 0;
  const char *path = luaL_checklstring(L, 1, &path_len);
  if (strlen(path) != path_len) luaL_error(L, "alloy.file_md5: path must not contain NUL");
  int progress = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    CHECK_KEYS(L, 2, fields, "alloy.file_md5", "option");
    lua_getfield(L, 2, "on_progress");
    if (!lua_isnil(L, -1)) {
      luaL_checktype(L, -1, LUA_TFUNCTION);
      progress = lua_gettop(L);
    }
  }
  char err[300];
  if (md5_load(err, sizeof err) != 0) return md5_failure(L, CODE_MD5_UNAVAILABLE, err);
  char *block = lua_newuserdata(L, MD5_BLOCK); /* before the open: nothing raises while it is open */
  long long size = 0;
  int fd = files_open_regular(path, &size, err, sizeof err);
  if (fd < 0) return md5_failure(L, CODE_FILE_READ, err);
  void *ctx = md5_begin();
  if (ctx == NULL) {
    close(fd);
    return md5_failure(L, CODE_MD5_UNAVAILABLE, "libcrypto refuses MD5 (FIPS mode?)");
  }
  long long done = 0;
  double last = http_now();
  ssize_t n = 0;
  /* on_progress: at the start, a few times a second, and at the end */
  int raised = progress && report(L, progress, 0, size) != 0;
  while (!raised && (n = files_read(fd, block, MD5_BLOCK)) > 0) {
    md5_update(ctx, block, (size_t)n);
    done += n;
    if (progress && http_now() - last >= 0.2) {
      last = http_now();
      raised = report(L, progress, done, size) != 0;
    }
  }
  if (!raised && n == 0 && progress) raised = report(L, progress, done, size) != 0;
  if (raised) {
    md5_abandon(ctx);
    close(fd);
    return lua_error(L);
  }
  int read_failed = n < 0;
  close(fd);
  unsigned char digest[MD5_LEN];
  if (md5_final(ctx, digest) != 0 || read_failed) {
    lua_pushfstring(L, "%s: %s", path, read_failed ? "a read failed" : "the MD5 failed");
    return md5_failure(L, CODE_FILE_READ, lua_tostring(L, -1));
  }
  char hex[2 * MD5_LEN + 1], b64[25];
  md5_hex(digest, hex);
  md5_base64(digest, b64);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "hex");
  lua_pushstring(L, b64);
  lua_setfield(L, -2, "base64");
  lua_pushinteger(L, (lua_Integer)done); /* what was read: the size now, which may have changed */
  lua_setfield(L, -2, "size");
  return 1;
}

void md5_open(lua_State *L, const alloy_open_ctx *o) {
  lua_pushcfunction(L, file_md5);
  lua_setfield(L, o->module, "file_md5");
}
