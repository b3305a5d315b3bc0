/* alloy.file_info and alloy.replace_file: what the scripts need of the file system, without
 * a shell or lua-posix (Debian 12 has no lua-posix for 5.4); and the reading side of uploads:
 * a regular file opened without blocking on a FIFO, read in full blocks. */
#include "alloy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

static const char *errno_name(int e) {
  static const struct { int e; const char *name; } names[] = {
    {ENOENT, "ENOENT"}, {EACCES, "EACCES"}, {EPERM, "EPERM"}, {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"}, {ELOOP, "ELOOP"}, {ENAMETOOLONG, "ENAMETOOLONG"}, {EROFS, "EROFS"},
    {ENOSPC, "ENOSPC"}, {EDQUOT, "EDQUOT"}, {EIO, "EIO"}, {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"}, {EBUSY, "EBUSY"}, {EINVAL, "EINVAL"}, {EMFILE, "EMFILE"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].e == e) return names[i].name;
  return "EOTHER";
}

static const char *type_name(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "directory";
  if (S_ISLNK(m)) return "link";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "socket";
  if (S_ISCHR(m) || S_ISBLK(m)) return "device";
  return "other";
}

/* nil, "<path>: <what>[: strerror]", errno name */
static int push_errno(lua_State *L, const char *path, const char *what, int e) {
  lua_pushnil(L);
  if (what)
    lua_pushfstring(L, "%s: %s: %s", path, what, strerror(e));
  else
    lua_pushfstring(L, "%s: %s", path, strerror(e));
  lua_pushstring(L, errno_name(e));
  return 3;
}

/* The path argument. The system calls stop at a NUL: "creds\0.bak" would be "creds". */
static const char *check_path(lua_State *L, const char *who) {
  size_t n = 0;
  const char *path = luaL_checklstring(L, 1, &n);
  if (strlen(path) != n) luaL_error(L, "%s: path must not contain NUL", who);
  return path;
}

/* alloy.file_info(path [, follow]) -> {type, mode = "600", size} | nil, msg, errno_name
 * (lstat: a symlink is "link", never what it points at; with follow, stat: what the link
 * leads to, so a reader can refuse a FIFO before an open blocks on it) */
static int file_info(lua_State *L) {
  const char *path = check_path(L, "alloy.file_info");
  int follow = lua_toboolean(L, 2);
  struct stat st;
  if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) return push_errno(L, path, NULL, errno);
  char mode[8];
  snprintf(mode, sizeof mode, "%03o", (unsigned)(st.st_mode & 07777));
  lua_createtable(L, 0, 3);
  lua_pushstring(L, type_name(st.st_mode));
  lua_setfield(L, -2, "type");
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "mode");
#if LUA_VERSION_NUM >= 503
  lua_pushinteger(L, (lua_Integer)st.st_size);
#else
  lua_pushnumber(L, (lua_Number)st.st_size);
#endif
  lua_setfield(L, -2, "size");
  return 1;
}

/* The mode argument: an octal string ("644") or the mode as a number (tonumber("644", 8)). */
static mode_t check_mode(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0600;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number v = lua_tonumber(L, idx);
    if (v >= 0 && v <= 07777 && v == (lua_Number)(int)v) return (mode_t)(int)v;
  } else if (lua_type(L, idx) == LUA_TSTRING) {
    size_t n = 0;
    const char *s = lua_tolstring(L, idx, &n);
    char *end = NULL;
    long v = strtol(s, &end, 8);
    if ((n == 3 || n == 4) && strspn(s, "01234567") == n && end == s + n) return (mode_t)v;
  }
  luaL_error(L, "alloy.replace_file: mode must be an octal string like \"644\" or a number from 0 to 4095");
  return 0;
}

static int write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, s, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    s += k;
    n -= (size_t)k;
  }
  return 0;
}

/* alloy.replace_file(path, text [, mode]) -> true | nil, msg, errno_name. A temp file in the
 * same directory (mkstemp: O_EXCL, 0600) gets all of text, fsync and the mode, then is
 * renamed over path: readers see the old file or the new one, never a part. rename replaces
 * a symlink itself, not its target, but path must be a regular file or absent anyway. */
static int replace_file(lua_State *L) {
  const char *path = check_path(L, "alloy.replace_file");
  size_t len = 0;
  const char *text = luaL_checklstring(L, 2, &len);
  mode_t mode = check_mode(L, 3);
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s: not replaced: it is a %s, not a regular file", path, type_name(st.st_mode));
      lua_pushliteral(L, "EEXIST");
      return 3;
    }
  } else if (errno != ENOENT) {
    return push_errno(L, path, NULL, errno);
  }
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t base_len = strlen(base);
  abuf tmp = {0};
  if (slash) abuf_add(&tmp, path, (size_t)(slash - path) + 1);
  abuf_adds(&tmp, ".");
  /* ".<name>.XXXXXX" must fit NAME_MAX where <name> just does: a prefix of it names it well */
  abuf_add(&tmp, base, base_len < 64 ? base_len : 64);
  if (abuf_adds(&tmp, ".XXXXXX") != 0) {
    abuf_free(&tmp);
    return luaL_error(L, "alloy: out of memory");
  }
  int fd = mkstemp(tmp.data);
  int e = 0;
  const char *step = NULL;
  if (fd < 0) e = errno, step = "cannot create a temporary file";
  else if (write_all(fd, text, len) != 0) e = errno, step = "cannot write";
  else if (fsync(fd) != 0) e = errno, step = "cannot sync";
  else if (fchmod(fd, mode) != 0) e = errno, step = "cannot set the mode";
  if (fd >= 0 && close(fd) != 0 && step == NULL) e = errno, step = "cannot write";
  if (step == NULL && rename(tmp.data, path) != 0) e = errno, step = "cannot replace";
  if (step != NULL) {
    if (fd >= 0) unlink(tmp.data);
    abuf_free(&tmp);
    return push_errno(L, path, step, e);
  }
  abuf_free(&tmp);
  lua_pushboolean(L, 1);
  return 1;
}

int files_open_regular(const char *path, long long *size, char *err, size_t err_size) {
  /* O_NONBLOCK: opening a FIFO to read would wait for a writer; fstat then says what it is */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  struct stat st;
  if (fd < 0) {
    snprintf(err, err_size, "%s: %s", path, strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) != 0) {
    snprintf(err, err_size, "%s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, err_size, "%s: not a regular file (a %s)", path, type_name(st.st_mode));
    close(fd);
    return -1;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  *size = (long long)st.st_size;
  return fd;
}

ssize_t files_read(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, (char *)buf + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) break;
    got += (size_t)k;
  }
  return (ssize_t)got;
}

void files_open(lua_State *L, const alloy_open_ctx *o) {
  lua_pushcfunction(L, file_info);
  lua_setfield(L, o->module, "file_info");
  lua_pushcfunction(L, replace_file);
  lua_setfield(L, o->module, "replace_file");
}
