/* client:put_file(url, path, {content_type =, md5 =, on_progress =}): a file's bytes PUT to a
 * presigned storage URL (the Connectivity API's uploads). That host is not Alloy: the request
 * carries Content-Type, Content-MD5 and Content-Length only (never the key, x-api-version or
 * any header the client adds for Alloy); the URL is checked and masked as presigned.h says.
 * The file is streamed, never held in memory, and its MD5 is computed as it is read: a file
 * that no longer has the MD5 it was requested with is stopped before its last byte. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloy_int.h"
#include "errors.h"
#include "md5.h"
#include "presigned.h"
#include "url.h"

#define PUT_MT "alloy.put_file"

/* Everything one put_file call holds, in a userdata: freed by put_release on every way out,
 * and by __gc when a Lua error (an on_progress that raised, memory) leaves early. */
typedef struct put {
  int fd;
  long long size, read;      /* the file's size when opened; bytes handed to libcurl */
  void *md5;                 /* the digest of what was read, until it is final */
  unsigned char want[MD5_LEN];
  int changed, read_failed;  /* why the read callback stopped the transfer */
  presigned url;
  CURLM *multi;
  http_transfer t;
  int has_transfer, on_multi;
  struct curl_slist headers[4];
  char content_type[200], content_md5[48];
} put;

static void put_release(put *p) {
  if (p->on_multi) curl_multi_remove_handle(p->multi, p->t.easy);
  p->on_multi = 0;
  if (p->multi) curl_multi_cleanup(p->multi);
  p->multi = NULL;
  if (p->has_transfer) http_transfer_free(&p->t);
  p->has_transfer = 0;
  presigned_free(&p->url); /* after the handle that used it */
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  md5_abandon(p->md5);
  p->md5 = NULL;
}

static int put_gc(lua_State *L) {
  put_release(luaL_checkudata(L, 1, PUT_MT));
  return 0;
}

/* The end of the file: nothing more to read, and what was read has the MD5 asked for. */
static int file_intact(put *p) {
  char extra;
  ssize_t k = files_read(p->fd, &extra, 1);
  unsigned char got[MD5_LEN];
  void *ctx = p->md5;
  p->md5 = NULL;
  if (k < 0) {
    md5_abandon(ctx);
    p->read_failed = 1;
    return 0;
  }
  if (md5_final(ctx, got) != 0 || k > 0 || memcmp(got, p->want, MD5_LEN) != 0) p->changed = 1;
  return !p->changed;
}

/* libcurl's read callback: the next block, hashed; the last one is handed over only once the
 * whole file is known to have the MD5 asked for (else the transfer stops short of its length,
 * and the storage host keeps nothing). */
static size_t on_read(char *buf, size_t size, size_t nitems, void *ud) {
  put *p = ud;
  size_t room = size * nitems;
  long long left = p->size - p->read;
  if (http_sigint_count() != p->t.sigint_mark) return CURL_READFUNC_ABORT;
  if (left <= 0) return 0;
  if ((long long)room > left) room = (size_t)left;
  ssize_t n = files_read(p->fd, buf, room);
  if (n < 0) {
    p->read_failed = 1;
    return CURL_READFUNC_ABORT;
  }
  if ((size_t)n < room) { /* shorter than when it was opened */
    p->changed = 1;
    return CURL_READFUNC_ABORT;
  }
  md5_update(p->md5, buf, (size_t)n);
  p->read += n;
  if (p->read == p->size && !file_intact(p)) return CURL_READFUNC_ABORT;
  return (size_t)n;
}

/* "<Code>: <Message>" of an S3-style XML error body, or nothing. */
static void xml_error(const char *body, size_t n, abuf *out) {
  static const char *const tags[][2] = {{"<Code>", "</Code>"}, {"<Message>", "</Message>"}};
  for (size_t i = 0; i < 2; i++) {
    const char *s = NULL, *e = NULL;
    for (size_t j = 0; !s && j + strlen(tags[i][0]) <= n; j++)
      if (memcmp(body + j, tags[i][0], strlen(tags[i][0])) == 0) s = body + j + strlen(tags[i][0]);
    for (const char *k = s; s && !e && k + strlen(tags[i][1]) <= body + n; k++)
      if (memcmp(k, tags[i][1], strlen(tags[i][1])) == 0) e = k;
    if (!e) return;
    if (i == 1) abuf_adds(out, ": ");
    abuf_add(out, s, (size_t)(e - s));
  }
}

/* Pushes nil, msg, code, res (res: a stack index, or 0): msg as every message is made, masked;
 * then releases what the call holds. */
static int put_failure(lua_State *L, put *p, const char *code, const char *detail, size_t n, int res) {
  abuf msg = {0}, masked = {0}, shown = {0};
  char *path = p->url.url ? presigned_part(&p->url, CURLUPART_PATH) : NULL;
  presigned_mask(&p->url, &shown, detail, n); /* before the message is cut, as the key is */
  alloy_format_message(&msg, code, shown.data ? shown.data : "", shown.len, "PUT", path ? path : "/",
                       path ? strlen(path) : 1, 1, p->url.secret);
  abuf_free(&shown);
  curl_free(path);
  presigned_mask(&p->url, &masked, msg.data, msg.len);
  lua_pushlstring(L, masked.data ? masked.data : "", masked.len);
  abuf_free(&msg);
  abuf_free(&masked);
  int n_out = alloy_push_failure(L, lua_tostring(L, -1), code, res);
  lua_remove(L, -n_out - 1);
  put_release(p);
  return n_out;
}

/* Reads the options table at idx into p; misuse raises. Returns the on_progress index or 0. */
static int read_options(lua_State *L, int idx, put *p, int *has_md5) {
  static const char *const fields[] = {"content_type", "md5", "on_progress"};
  size_t n = 0;
  const char *ct = "application/octet-stream";
  int progress = 0;
  *has_md5 = 0;
  if (lua_isnoneornil(L, idx)) {
    snprintf(p->content_type, sizeof p->content_type, "Content-Type: %s", ct);
    return 0;
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  CHECK_KEYS(L, idx, fields, "client:put_file", "option");
  lua_getfield(L, idx, "content_type");
  if (!lua_isnil(L, -1)) ct = luaL_checklstring(L, -1, &n);
  if (!lua_isnil(L, -1) && (n == 0 || n > 150 || !header_value_ok(ct, n)))
    luaL_error(L, "client:put_file: content_type must be 1 to 150 bytes without CR, LF or NUL");
  snprintf(p->content_type, sizeof p->content_type, "Content-Type: %s", ct);
  lua_pop(L, 1);
  lua_getfield(L, idx, "md5");
  if (!lua_isnil(L, -1)) {
    const char *m = luaL_checklstring(L, -1, &n);
    if (md5_parse(m, n, p->want) != 0) luaL_error(L, "client:put_file: md5 must be 32 hex digits or 24 base64 characters");
    *has_md5 = 1;
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "on_progress");
  if (!lua_isnil(L, -1)) {
    luaL_checktype(L, -1, LUA_TFUNCTION);
    progress = lua_gettop(L);
  } else {
    lua_pop(L, 1);
  }
  return progress;
}

/* Calls on_progress(sent, total) (at fn) in protected mode; 0, or the error on top. */
static int report(lua_State *L, int fn, put *p) {
  curl_off_t sent = 0;
  curl_easy_getinfo(p->t.easy, CURLINFO_SIZE_UPLOAD_T, &sent);
  lua_pushvalue(L, fn);
  lua_pushinteger(L, (lua_Integer)sent);
  lua_pushinteger(L, (lua_Integer)p->size);
  return lua_pcall(L, 2, 0, 0);
}

/* Runs the transfer on a multi handle of its own, so on_progress runs between libcurl's steps
 * (never inside a libcurl callback). Returns the transfer's code; a raise from on_progress is
 * left on top of the stack with -1 returned (unless a SIGINT came: then it is interrupted). */
static int transfer(lua_State *L, put *p, int progress) {
  p->multi = curl_multi_init();
  if (p->multi == NULL) return CURLE_OUT_OF_MEMORY;
  curl_multi_add_handle(p->multi, p->t.easy);
  p->on_multi = 1;
  double last = http_now();
  int running = 1, raised = progress && report(L, progress, p) != 0; /* at the start, then a few times a second */
  while (running && !raised) {
    if (curl_multi_perform(p->multi, &running) != CURLM_OK) return CURLE_OUT_OF_MEMORY;
    if (!running) break;
    curl_multi_poll(p->multi, NULL, 0, 100, NULL);
    if (progress && http_now() - last >= 0.2) {
      last = http_now();
      raised = report(L, progress, p) != 0;
    }
  }
  int queued = 0;
  CURLMsg *m = raised ? NULL : curl_multi_info_read(p->multi, &queued);
  int rc = m && m->msg == CURLMSG_DONE ? (int)m->data.result : CURLE_OUT_OF_MEMORY;
  if (!raised && rc == CURLE_OK && progress) raised = report(L, progress, p) != 0; /* and at the end */
  if (!raised) return rc;
  if (http_sigint_count() == p->t.sigint_mark) return -1;
  lua_pop(L, 1); /* lua.c's stop, raised in the callback: the transfer fails as interrupted */
  return CURLE_ABORTED_BY_CALLBACK;
}

/* Pushes the response table of a 2xx or a refusal: status, body, raw_headers (headers on
 * first read), url (its query masked), time, attempts. */
static void push_response(lua_State *L, put *p) {
  double total = 0;
  abuf url = {0}, masked = {0};
  char *full = presigned_part(&p->url, CURLUPART_URL);
  curl_easy_getinfo(p->t.easy, CURLINFO_TOTAL_TIME, &total);
  abuf_adds(&url, full ? full : "");
  curl_free(full);
  presigned_mask(&p->url, &masked, url.data ? url.data : "", url.len);
  lua_createtable(L, 0, 7);
  luaL_getmetatable(L, RESPONSE_MT);
  lua_setmetatable(L, -2);
  lua_pushinteger(L, (lua_Integer)p->t.res.status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, p->t.res.body.data ? p->t.res.body.data : "", p->t.res.body.len);
  lua_setfield(L, -2, "body");
  lua_pushlstring(L, p->t.res.headers.data ? p->t.res.headers.data : "", p->t.res.headers.len);
  lua_setfield(L, -2, "raw_headers");
  lua_pushlstring(L, masked.data ? masked.data : "", masked.len);
  lua_setfield(L, -2, "url");
  lua_pushnumber(L, total);
  lua_setfield(L, -2, "time");
  lua_pushinteger(L, 1);
  lua_setfield(L, -2, "attempts");
  abuf_free(&url);
  abuf_free(&masked);
}

/* client:put_file(url, path [, options]) -> res | nil, msg, code, res */
static int client_put_file(lua_State *L) {
  client *c = method_client(L);
  size_t url_len = 0, path_len = 0;
  const char *url = luaL_checklstring(L, 2, &url_len);
  const char *path = luaL_checklstring(L, 3, &path_len);
  if (strlen(path) != path_len) luaL_error(L, "client:put_file: path must not contain NUL");
  if (c->transport_ref != LUA_NOREF)
    luaL_error(L, "client:put_file: not with a transport (it streams the file with libcurl)");
  lua_settop(L, 4);
  put *p = lua_newuserdata(L, sizeof *p); /* 5 */
  memset(p, 0, sizeof *p);
  p->fd = -1;
  p->url.secret = c->api_key;
  luaL_getmetatable(L, PUT_MT);
  lua_setmetatable(L, -2);

  char err[400];
  if (md5_load(err, sizeof err) != 0)
    return put_failure(L, p, alloy_code_name(CODE_MD5_UNAVAILABLE), err, strlen(err), 0);
  int has_md5 = 0, progress = read_options(L, 4, p, &has_md5);
  const char *code = presigned_parse(&p->url, url, url_len, err, sizeof err);
  if (code) return put_failure(L, p, code, err, strlen(err), 0);
  p->fd = files_open_regular(path, &p->size, err, sizeof err);
  if (p->fd < 0) return put_failure(L, p, alloy_code_name(CODE_FILE_READ), err, strlen(err), 0);
  if (!has_md5) { /* the Lua API without md5: read it once first, then again as it is sent */
    p->md5 = md5_begin();
    char block[8192];
    ssize_t n = 0;
    while (p->md5 && (n = files_read(p->fd, block, sizeof block)) > 0) md5_update(p->md5, block, (size_t)n);
    void *ctx = p->md5;
    p->md5 = NULL;
    if (ctx == NULL || n < 0 || md5_final(ctx, p->want) != 0 || lseek(p->fd, 0, SEEK_SET) != 0) {
      snprintf(err, sizeof err, "%s: its MD5 cannot be computed", path);
      return put_failure(L, p, alloy_code_name(CODE_FILE_READ), err, strlen(err), 0);
    }
  }
  p->md5 = md5_begin();
  if (p->md5 == NULL) {
    snprintf(err, sizeof err, "libcrypto refuses MD5 (FIPS mode?)");
    return put_failure(L, p, alloy_code_name(CODE_MD5_UNAVAILABLE), err, strlen(err), 0);
  }
  if (p->size == 0 && !file_intact(p)) { /* no read callback for an empty body: checked here */
    snprintf(err, sizeof err, "%s changed: it is not the file whose MD5 was given", path);
    return put_failure(L, p, alloy_code_name(CODE_FILE_CHANGED), err, strlen(err), 0);
  }
  char b64[25];
  md5_base64(p->want, b64);
  snprintf(p->content_md5, sizeof p->content_md5, "Content-MD5: %s", b64);
  /* The only headers: libcurl adds Host and Content-Length; "Accept:" and "Expect:" take out
   * its defaults. No User-Agent, no Authorization, nothing of the client's chains. */
  const char *lines[] = {p->content_type, p->content_md5, "Accept:", "Expect:"};
  for (int i = 0; i < 4; i++) {
    p->headers[i].data = (char *)lines[i];
    p->headers[i].next = i < 3 ? &p->headers[i + 1] : NULL;
  }

  if (http_transfer_init(&p->t, &c->conf) != 0) luaL_error(L, "alloy: cannot create a curl handle");
  p->has_transfer = 1;
  CURL *e = p->t.easy;
  long stall = c->conf.timeout_ms / 1000 > 0 ? c->conf.timeout_ms / 1000 : 1;
  curl_easy_setopt(e, CURLOPT_CURLU, p->url.url);
  curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(e, CURLOPT_READDATA, p);
  curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)p->size);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->headers);
  /* a large file takes as long as it takes: the timeout bounds a stall, not the upload */
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 0L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, stall);
  if (c->conf.debug) {
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, presigned_debug);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, (void *)&p->url);
  }
  http_warn_insecure(&c->conf);

  http_sigint_hold(); /* released by client_guarded if anything below raises */
  c->sigint_holds++;
  http_begin(&p->t, http_sigint_count());
  int rc = transfer(L, p, progress);
  http_sigint_release();
  c->sigint_holds--;
  if (rc < 0) { /* on_progress raised: free what the call holds, then raise it again */
    put_release(p);
    return lua_error(L);
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &p->t.res.status);

  if (rc == CURLE_ABORTED_BY_CALLBACK && (p->changed || p->read_failed)) {
    snprintf(err, sizeof err, p->changed ? "%s changed while it was read: its bytes no longer have the MD5 the"
             " upload was requested with; stopped before the last byte, nothing was stored" : "%s: a read failed",
             path);
    return put_failure(L, p, alloy_code_name(p->changed ? CODE_FILE_CHANGED : CODE_FILE_READ), err, strlen(err), 0);
  }
  if (rc != CURLE_OK && p->t.res.too_large) { /* the storage host's answer, over max_body */
    const char *text = "response body is larger than max_body";
    return put_failure(L, p, alloy_code_name(CODE_BODY_TOO_LARGE), text, strlen(text), 0);
  }
  if (rc != CURLE_OK) {
    char other[24];
    const char *name = alloy_curl_code(rc, other, sizeof other);
    const char *text = rc == CURLE_ABORTED_BY_CALLBACK ? "interrupted"
                       : p->t.res.errbuf[0] ? p->t.res.errbuf : curl_easy_strerror((CURLcode)rc);
    return put_failure(L, p, name, text, strlen(text), 0);
  }
  push_response(L, p);
  int res = lua_gettop(L);
  if (p->t.res.status < 200 || p->t.res.status >= 300) {
    abuf detail = {0};
    char status_code[24];
    xml_error(p->t.res.body.data ? p->t.res.body.data : "", p->t.res.body.len, &detail);
    if (detail.len == 0) {
      lua_pushnil(L);
      alloy_server_detail(L, -1, p->t.res.body.data ? p->t.res.body.data : "", p->t.res.body.len, p->url.secret,
                          &detail);
      lua_pop(L, 1);
    }
    if (detail.len == 0) abuf_adds(&detail, "no explanation in the response");
    alloy_http_code(p->t.res.status, status_code, sizeof status_code);
    int n = put_failure(L, p, status_code, detail.data, detail.len, res);
    abuf_free(&detail);
    return n;
  }
  put_release(p);
  return 1;
}

void upload_open(lua_State *L, const alloy_open_ctx *o) {
  luaL_newmetatable(L, PUT_MT);
  lua_pushcfunction(L, put_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, client_put_file);
  lua_setfield(L, o->methods, "put_file");
}
