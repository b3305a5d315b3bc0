/* The types the Lua-facing units share (client.c, request.c, response.c, transport.c,
 * batch.c, jwt.c, files.c, md5.c, upload.c) and each unit's entry points. luaopen_alloy
 * (alloy.c) calls one *_open per unit; no unit calls one that calls it back:
 *   client.c -> options.c, transport.c, request.c, response.c, loop.c
 *   batch.c -> options.c, transport.c, request.c, response.c
 *   loop.c -> request.c, response.c, http_loop.c
 *   transport.c -> request.c, response.c;  options.c -> request.c
 *   md5.c -> files.c;  upload.c -> files.c, md5.c, presigned.c, request.c
 * and all of them -> http.c, url.c, ops.c, errors.c. */
#ifndef ALLOY_INT_H
#define ALLOY_INT_H

#include <sys/types.h>

#include "compat.h"
#include "http.h"
#include "ops.h"

#define ALLOY_VERSION "0.1.0"
#define CLIENT_MT "alloy.client"
#define RESPONSE_MT "alloy.response"
/* Every module function and client method has the module's private cjson as upvalue 1. */
#define CJSON_UPVALUE lua_upvalueindex(1)

/* Where each *_open puts what it adds: stack indices of the module table, the client
 * methods table (client_open wraps them all in its guard last) and the cjson instance. */
typedef struct alloy_open_ctx {
  int module, methods, cjson;
} alloy_open_ctx;

/* A named operation's last URL built straight from its arguments (request_from_op): the
 * same arguments again reuse that Lua string instead of expanding, checking and encoding
 * the path and making a new string, for every request of a loop or a batch. */
typedef struct op_url {
  int ref;   /* the URL string in the registry, or LUA_NOREF */
  abuf args; /* the path arguments it was made from: each one's length (size_t), then its bytes */
  size_t path_off; /* where its path starts */
} op_url;

typedef struct client {
  http_conf conf;
  http_transfer single; /* one reused easy handle: keep-alive and TLS session reuse */
  CURLM *multi;         /* batches: created on first use, kept for its connections */
  http_transfer *pool;
  size_t pool_size;
  char *api_key;
  char *auth_header; /* "Authorization: Bearer <key>", the shared tail of every header list */
  struct curl_slist auth_node;
  char *ua_header;      /* "User-Agent: ...", or NULL when user_agent is false or "" */
  struct curl_slist ua_node;
  struct curl_slist *tail; /* ua_node -> auth_node, or auth_node */
  char *version_header; /* "x-api-version: <api_version>" */
  /* The fixed header lists of requests without headers of their own, built once:
   * [body kind (none, json, raw) * 2 + sends x-api-version][node]. */
  struct curl_slist chains[6][4];
  char *base_url;
  char *embedded_url;
  char *api_version;
  char *ca_file;
  char *proxy;
  abuf scratch; /* URL and message building, reused across calls */
  op_url *op_urls; /* one per row of alloy_ops */
  int transport_ref; /* a Lua function that sends instead of libcurl, or LUA_NOREF */
  int closed;   /* close() was called: any later use raises */
  int busy;     /* method calls in progress (see client_guarded) */
  int released; /* handles and buffers freed */
  /* What a call in progress holds; client_guarded restores them when a call ends, however
   * it ends. A call nested in it (from on_result, a transport, a metamethod, a finaliser)
   * gets its own scratch and `single` (see client_guarded); a nested batch is refused. */
  int batch_running;  /* a batch: the multi handle and the pool */
  int single_running; /* a request on `single`, from sending until its answer is read */
  int sigint_holds;   /* http_sigint_hold calls not yet released */
  struct http_loop *loop; /* requests the host's event loop drives (loop.c), or NULL */
} client;

/* The client of a method call: client_guarded checked argument 1 before the call. */
static inline client *method_client(lua_State *L) { return (client *)lua_touserdata(L, 1); }

/* A request ready for the wire; the strings it points at are anchored in a Lua table. */
typedef struct prepared {
  http_request req;
  const alloy_op *op;
  const char *path; /* for messages: the URL's path, up to any query */
  size_t path_len;
  int raw;          /* do not decode the body */
  int url_table, url_index; /* where the URL's Lua string is: table[index], or the stack at index */
  int anchor_hi;    /* a batch request's strings: anchor table[1 .. anchor_hi] */
  int in_batch;     /* its response table gets ok and value too: sized for them up front */
  const char *fail_code; /* a bad value: the request is not sent and fails with this */
  const char *fail_msg;
} prepared;

/* Where the strings a prepared request points at stay alive while it runs: a table (batch),
 * or, with table 0, the stack of the call itself (what is pushed stays there). */
typedef struct anchors {
  lua_State *L;
  int table;
  int n;
} anchors;

/* client.c: alloy.new and the Client userdata (its methods: client:request and the named
 * operations here, the rest from the other units, all run through one guard). */
void client_open(lua_State *L, const alloy_open_ctx *o);

/* options.c: the options, in the order of their rules. */
enum option_id { OPT_API_KEY, OPT_API_VERSION, OPT_BASE_URL, OPT_EMBEDDED_URL, OPT_TIMEOUT,
       OPT_CONNECT_TIMEOUT, OPT_RETRIES, OPT_BACKOFF, OPT_RETRY_MAX_WAIT, OPT_MAX_BODY,
       OPT_CA_FILE, OPT_PROXY, OPT_USER_AGENT, OPT_INSECURE, OPT_DEBUG, OPT_TRANSPORT, OPT_REGION,
       OPT_NEW_COUNT, /* the options above are alloy.new's */
       OPT_CONCURRENCY = OPT_NEW_COUNT, OPT_COUNT };
/* Pushes the OPT_NEW_COUNT options of alloy.new's table at t, normalised, in that order
 * (defaults for nil: base_url and embedded_url those of the region); raises "alloy.new:
 * <rule>" on an unknown option or a bad value. */
void options_read(lua_State *L, int t);
/* client:batch's concurrency (the value at idx; nil for the default), by its rule. */
lua_Integer options_concurrency(lua_State *L, int idx);
void options_open(lua_State *L, const alloy_open_ctx *o); /* check_option, defaults */

/* request.c: a request spec table, or a named operation's arguments -> p. Misuse raises;
 * bad values (ids, header values) set p->fail_*. */
void request_from_spec(lua_State *L, client *c, int spec, anchors *a, const alloy_op *op,
                       prepared *p, const char *who);
void request_from_op(lua_State *L, client *c, const alloy_op *op, int first, int nargs,
                     anchors *a, prepared *p, const char *who);
/* Raises "<who>: unknown <what> 'k'" for a key of table t that is none of the count names
 * found every stride bytes from *names (a string array, or the name field of an array of
 * rows): typos fail loudly. */
void check_keys(lua_State *L, int t, const char *const *names, size_t stride, size_t count,
                const char *who, const char *what);
#define CHECK_KEYS(L, t, list, who, what) \
  check_keys(L, t, list, sizeof list[0], sizeof list / sizeof list[0], who, what)
/* The string form of a string, number or boolean at idx; NULL for any other type. */
const char *scalar_string(lua_State *L, int idx, size_t *len);

/* response.c: what a finished request returns to Lua: res (or value, res), or the failure
 * tuple nil, msg, code, res. */
int response_result(lua_State *L, client *c, const http_response *r, const prepared *p);
void response_open(lua_State *L, const alloy_open_ctx *o);

/* transport.c: sends p through the client's Lua transport when it has one, else on its
 * reused libcurl handle; returns the response (own, or *r, to be freed with
 * http_response_free when it is r). */
const http_response *transport_send(lua_State *L, client *c, const prepared *p, http_response *r);
/* Sends p through the Lua transport only, filling r as libcurl would. */
void transport_run(lua_State *L, client *c, const prepared *p, http_response *r);
void transport_open(lua_State *L, const alloy_open_ctx *o);

void batch_open(lua_State *L, const alloy_open_ctx *o); /* batch.c */

/* loop.c: client:loop, client:start, client:socket_action, client:on_timeout, and the
 * handles client:start returns. */
void loop_open(lua_State *L, const alloy_open_ctx *o);
/* For close() and __gc, once: every started request whose callback has not run is cancelled
 * and its callback runs now, with CANCELLED (at_gc: without the loop's hooks, errors
 * dropped). Returns 1 with the first error a callback raised on top of the stack, else 0. */
int loop_close(lua_State *L, client *c, int client_idx, int at_gc);
void loop_free(lua_State *L, client *c); /* for client_release */
void jwt_open(lua_State *L, const alloy_open_ctx *o);   /* jwt.c */
void files_open(lua_State *L, const alloy_open_ctx *o); /* files.c */
void lines_open(lua_State *L, const alloy_open_ctx *o); /* lines.c: alloy.lines */
/* files.c: path opened to read if it is a regular file (a FIFO is refused without waiting for
 * a writer): the descriptor and its size, or -1 and "<path>: <why>" in err. */
int files_open_regular(const char *path, long long *size, char *err, size_t err_size);
/* files.c: reads until n bytes or the end (EINTR resumed): the count, or -1 (errno set). */
ssize_t files_read(int fd, void *buf, size_t n);
void md5_open(lua_State *L, const alloy_open_ctx *o);    /* md5.c: alloy.file_md5 */
void upload_open(lua_State *L, const alloy_open_ctx *o); /* upload.c: client:put_file */

#endif
