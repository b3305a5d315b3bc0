/* alloy.lines: the lines of a file, a pipe or a terminal, for --each, read as they are needed
 * and without blocking when asked not to: a batch's requests function must not stop the
 * transfers in flight while a pipe has no whole line yet (Lua's io waits for one), and a
 * Ctrl-C must end a read that waits (EINTR). A line over the cap is dropped as it is read, so
 * memory stays within the cap and a block, whatever the input. */
#include "alloy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

#define LINES_MT "alloy.lines"
enum { LINES_BLOCK = 64 * 1024 };

typedef struct line_reader {
  int fd;        /* -1 once closed */
  int own;       /* opened here (not stdin): closed here */
  int eof;
  int dropping;  /* inside a line over the cap: bytes are dropped up to its newline */
  size_t max;
  size_t start;  /* the unread part of buf starts here */
  size_t scanned; /* no newline in buf before this */
  abuf buf;
} line_reader;

static const char *kind_of(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISCHR(m) || S_ISBLK(m)) return "device";
  if (S_ISDIR(m)) return "directory";
  if (S_ISSOCK(m)) return "socket";
  return "other";
}

static int lines_fail(lua_State *L, const char *path, const char *why) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, why);
  return 2;
}

/* alloy.lines(path [, max]) -> reader, kind | nil, message. path "-" is stdin (not closed
 * here). A directory or a socket is refused, and a device that is not a terminal (/dev/zero
 * has no lines: it never ends). */
static int lines_new(lua_State *L) {
  size_t n = 0;
  const char *path = luaL_checklstring(L, 1, &n);
  if (strlen(path) != n) luaL_error(L, "alloy.lines: path must not contain NUL");
  lua_Integer max = luaL_optinteger(L, 2, 64 * 1024 * 1024);
  luaL_argcheck(L, max >= 1, 2, "max must be a positive number of bytes");
  int stdin_ = strcmp(path, "-") == 0;
  /* A FIFO is opened waiting for its writer, as Lua's io would (opened without waiting, read()
   * would see the end before the writer came; opened twice, a writer that came and went
   * between would be lost); anything else without waiting, in case it became a FIFO since. */
  struct stat st;
  int fifo = !stdin_ && stat(path, &st) == 0 && S_ISFIFO(st.st_mode);
  int fd = stdin_ ? 0 : open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC | (fifo ? 0 : O_NONBLOCK));
  if (fd < 0) return lines_fail(L, path, strerror(errno));
  if (fstat(fd, &st) != 0) {
    int e = errno;
    if (!stdin_) close(fd);
    return lines_fail(L, path, strerror(e));
  }
  const char *kind = kind_of(st.st_mode);
  int refused = S_ISDIR(st.st_mode) || S_ISSOCK(st.st_mode) || ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && !isatty(fd));
  if (refused) {
    if (!stdin_) close(fd);
    lua_pushnil(L);
    lua_pushfstring(L, "%s is a %s, not a file", path, kind);
    return 2;
  }
  if (!stdin_ && !fifo) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  line_reader *r = lua_newuserdata(L, sizeof *r);
  memset(r, 0, sizeof *r);
  r->fd = fd;
  r->own = !stdin_;
  r->max = (size_t)max;
  luaL_getmetatable(L, LINES_MT);
  lua_setmetatable(L, -2);
  lua_pushstring(L, kind);
  return 2;
}

static line_reader *check_reader(lua_State *L) {
  line_reader *r = luaL_checkudata(L, 1, LINES_MT);
  if (r->fd < 0) luaL_error(L, "alloy.lines: reader is closed");
  return r;
}

static int push_line(lua_State *L, const char *s, size_t n) {
  if (n > 0 && s[n - 1] == '\r') n--;
  lua_pushlstring(L, s, n);
  return 1;
}

static int push_too_long(lua_State *L, const line_reader *r) {
  lua_pushboolean(L, 0);
  if (r->max >= 1024 * 1024)
    lua_pushfstring(L, "longer than %d MiB (not sent)", (int)(r->max / (1024 * 1024)));
  else
    lua_pushfstring(L, "longer than %d bytes (not sent)", (int)r->max);
  return 2;
}

/* reader:read([wait]) -> line | false, why (a line over the cap: dropped) | nil (the end) |
 * nil, "wait" (no whole line yet and wait is false) | nil, message (a read error;
 * "interrupted" when a signal ended the read). */
static int lines_read(lua_State *L) {
  line_reader *r = check_reader(L);
  int wait = lua_isnoneornil(L, 2) || lua_toboolean(L, 2);
  char block[LINES_BLOCK];
  for (;;) {
    const char *data = r->buf.data;
    const char *nl = r->buf.len > r->scanned ? memchr(data + r->scanned, '\n', r->buf.len - r->scanned) : NULL;
    if (nl) {
      size_t from = r->start, len = (size_t)(nl - (data + from));
      r->start = r->scanned = (size_t)(nl - data) + 1;
      if (r->dropping || len > r->max) {
        r->dropping = 0;
        return push_too_long(L, r);
      }
      return push_line(L, data + from, len);
    }
    r->scanned = r->buf.len;
    if (r->buf.len - r->start > r->max) { /* no newline within the cap: drop what is held */
      r->dropping = 1;
      r->buf.len = r->start = r->scanned = 0;
    }
    if (r->eof) {
      if (r->dropping) {
        r->dropping = 0;
        return push_too_long(L, r);
      }
      if (r->start < r->buf.len) { /* the last line, without its newline */
        size_t from = r->start;
        r->start = r->scanned = r->buf.len;
        return push_line(L, r->buf.data + from, r->buf.len - from);
      }
      lua_pushnil(L);
      return 1;
    }
    if (r->start > 0 && r->start == r->buf.len) r->buf.len = r->start = r->scanned = 0;
    if (r->start > LINES_BLOCK) { /* keep the unread part at the front */
      memmove(r->buf.data, r->buf.data + r->start, r->buf.len - r->start);
      r->buf.len -= r->start;
      r->scanned -= r->start;
      r->start = 0;
    }
    if (!wait) {
      struct pollfd p = {r->fd, POLLIN, 0};
      int ready = poll(&p, 1, 0);
      if (ready == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "wait");
        return 2;
      }
      if (ready < 0) {
        lua_pushnil(L);
        lua_pushstring(L, errno == EINTR ? "interrupted" : strerror(errno));
        return 2;
      }
    }
    ssize_t k = read(r->fd, block, sizeof block);
    if (k < 0) {
      lua_pushnil(L);
      lua_pushstring(L, errno == EINTR ? "interrupted" : strerror(errno));
      return 2;
    }
    if (k == 0) {
      r->eof = 1;
    } else if (abuf_add(&r->buf, block, (size_t)k) != 0) {
      return luaL_error(L, "alloy: out of memory");
    }
  }
}

static int lines_close(lua_State *L) {
  line_reader *r = luaL_checkudata(L, 1, LINES_MT);
  if (r->fd >= 0 && r->own) close(r->fd);
  r->fd = -1;
  abuf_free(&r->buf);
  return 0;
}

void lines_open(lua_State *L, const alloy_open_ctx *o) {
  static const luaL_Reg methods[] = {{"read", lines_read}, {"close", lines_close}, {NULL, NULL}};
  luaL_newmetatable(L, LINES_MT);
  lua_newtable(L);
  ac_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, lines_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, lines_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  lua_pushcfunction(L, lines_new);
  lua_setfield(L, o->module, "lines");
}
