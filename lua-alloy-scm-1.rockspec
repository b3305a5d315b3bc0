-- LuaRocks package: the C module alloy.so, the Lua helpers (alloy.<name>) and the scripts as
-- commands.  Offline, from a checkout (Debian's lua-cjson/lua-argparse/lua-socket already
-- installed):
--   luarocks --lua-version=5.4 make --deps-mode=none                 (or --lua-version=5.1)
--   luarocks --lua-version=5.4 make --deps-mode=none --tree /tmp/t   (a private tree)
-- libcurl's header is in Debian's multiarch directory, which the compiler searches anyway;
-- elsewhere pass CURL_INCDIR=/path/to/include (the directory holding curl/curl.h).
rockspec_format = "3.0"
package = "lua-alloy"
version = "scm-1"

source = {
  url = "git+https://github.com/lua-alloy/lua-alloy.git",
  branch = "main",
}

description = {
  summary = "Alloy Automation API client for Lua: a libcurl C module and command-line tools",
  detailed = [[
alloy.so speaks the Alloy Automation HTTP API (user tokens for the embedded frontend, users,
credentials/connections, connectors, OAuth) over libcurl, with JSON through lua-cjson; the
alloy.* helpers and the commands alloy-get-jwt-token, alloy-initiate-oauth,
alloy-test-oauth and alloy-list-connections replace the Node tool's npm scripts.
Works on Lua 5.1 (and LuaJIT), 5.3 and 5.4.]],
  homepage = "https://github.com/lua-alloy/lua-alloy",
  license = "MIT",
  labels = { "http", "api", "curl", "alloy" },
}

dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson",   -- required by alloy.so at load time
  "argparse",    -- the commands' option parsing
  "luasocket",   -- the OAuth redirect listener (alloy-initiate-oauth, alloy-test-oauth)
}

external_dependencies = {
  -- Only the library: a `header = "curl/curl.h"` check fails on Debian, whose curl headers
  -- live in /usr/include/x86_64-linux-gnu (see SETUP.md).
  CURL = { library = "curl" },
}

build = {
  type = "builtin",
  modules = {
    alloy = {
      sources = { "src/alloy.c", "src/curl_api.c", "src/errors.c", "src/files.c", "src/http.c", "src/ops.c", "src/url.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "src", "$(CURL_INCDIR)" },
      -- libcurl itself is loaded at run time (src/curl_api.h says why); only dlopen is linked
      libraries = { "dl" },
    },
    ["alloy.cli"] = "lua/alloy/cli.lua",
    ["alloy.commands"] = "lua/alloy/commands.lua",
    ["alloy.config"] = "lua/alloy/config.lua",
    ["alloy.connect"] = "lua/alloy/connect.lua",
    ["alloy.connectors"] = "lua/alloy/connectors.lua",
    ["alloy.credentials"] = "lua/alloy/credentials.lua",
    ["alloy.dotenv"] = "lua/alloy/dotenv.lua",
    ["alloy.failure"] = "lua/alloy/failure.lua",
    ["alloy.hints"] = "lua/alloy/hints.lua",
    ["alloy.listener"] = "lua/alloy/listener.lua",
    ["alloy.oauth"] = "lua/alloy/oauth.lua",
    ["alloy.paths"] = "lua/alloy/paths.lua",
    ["alloy.prompt"] = "lua/alloy/prompt.lua",
  },
  install = {
    bin = {
      ["alloy-get-jwt-token"] = "lua/get_jwt_token.lua",
      ["alloy-initiate-oauth"] = "lua/initiate_oauth.lua",
      ["alloy-test-oauth"] = "lua/test_oauth.lua",
      ["alloy-list-connections"] = "lua/list_connections.lua",
      ["alloy-list-connectors"] = "lua/list_connectors.lua",
      ["alloy-delete-connection"] = "lua/delete_connection.lua",
      ["alloy-users"] = "lua/users.lua",
      ["alloy"] = "lua/alloy_main.lua",
    },
  },
}

test = {
  type = "command",
  command = "make test",
}
