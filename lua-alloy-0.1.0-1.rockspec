-- LuaRocks package: the C module alloy.so, the Lua helpers (alloy.<name>) and the scripts as
-- commands, built and installed by the project's Makefile (`make`, then `make install` into
-- the rock's directories), so the build stays in build/<lua>/ and nothing lands in the
-- checkout's root where another Lua's `./?.so` would find it.
-- Offline, from a checkout (Debian's lua-cjson/lua-argparse/lua-socket already installed):
--   luarocks --lua-version=5.4 make --deps-mode=none                 (or --lua-version=5.1)
--   luarocks --lua-version=5.4 make --deps-mode=none --tree /tmp/t   (a private tree)
-- libcurl's header is in Debian's multiarch directory, which the compiler searches anyway;
-- elsewhere pass CURL_INCDIR=/path/to/include (the directory holding curl/curl.h).
-- lua-alloy-scm-1.rockspec is the same file for the main branch (spec/luarocks_spec.lua
-- checks that they differ only in version and source).
rockspec_format = "3.0"
package = "lua-alloy"
version = "0.1.0-1"

source = {
  url = "git+https://github.com/lua-alloy/lua-alloy.git",
  tag = "v0.1.0",
}

description = {
  summary = "Alloy Automation API client for Lua: a libcurl C module and command-line tools",
  detailed = [[
alloy.so speaks the Alloy Automation HTTP API (user tokens for the embedded frontend, users,
credentials/connections, connectors, OAuth, connector actions) over libcurl, with JSON
through lua-cjson. The alloy command covers a connection's whole life: find a connector,
connect it, run its actions with the connection, disconnect; it triggers custom events and
workflows for a user, follows their executions' logs and uploads files for actions. The
Node-era subcommands are also commands of their own (alloy-get-jwt-token,
alloy-initiate-oauth, alloy-run-action, ...).
Works on Lua 5.1 (and LuaJIT), 5.3 and 5.4.

Optional, used when installed: lua-term (the commands prompt only when stdin is a
terminal, and read answers line by line otherwise) and luasystem (a monotonic clock for
the timings of alloy-get-jwt-token --probe; without it, os.clock).]],
  homepage = "https://github.com/lua-alloy/lua-alloy",
  license = "MIT",
  labels = { "http", "api", "curl", "alloy" },
}

dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson",   -- required by alloy.so at load time
  "argparse",    -- the commands' option parsing
  "luasocket",   -- the OAuth redirect listener (alloy-initiate-oauth, alloy-test-oauth)
  -- optional, not listed so that LuaRocks does not insist: lua-term (terminal detection for
  -- prompts), luasystem (monotonic clock for --probe timings)
}

external_dependencies = {
  -- Only the library: a `header = "curl/curl.h"` check fails on Debian, whose curl headers
  -- live in the multiarch directory /usr/include/x86_64-linux-gnu.
  CURL = { library = "curl" },
}

build = {
  type = "make",
  -- LUA is the interpreter's path; the Makefile builds into build/<its name>/.
  build_variables = {
    CFLAGS = "$(CFLAGS)", LUA = "$(LUA)", LUA_INCDIR = "$(LUA_INCDIR)", CURL_INCDIR = "$(CURL_INCDIR)",
  },
  install_variables = {
    LUA = "$(LUA)", LUA_INCDIR = "$(LUA_INCDIR)", PREFIX = "$(PREFIX)", LIBDIR = "$(LIBDIR)",
    LUADIR = "$(LUADIR)", BINDIR = "$(BINDIR)",
  },
}

test_dependencies = { "busted" }

-- `luarocks test` fetches busted from a rocks server, then runs it; busted reads .busted (Lua 5.4,
-- this checkout's build/lua5.4/alloy.so, specs against the local sandbox). Offline: `make test`.
test = {
  type = "busted",
}
