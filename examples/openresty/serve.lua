-- examples/openresty/serve.lua: GET /alloy/token (alloy_token.lua) on nginx with its Lua module,
-- in the foreground until Ctrl-C. From the checkout, after `make` and `make LUA=luajit`:
--
--   lua5.4 examples/openresty/serve.lua [--env-file PATH]
--
-- Settings come from the environment, else from .env in the current directory (or --env-file),
-- as for the scripts: ALLOY_API_KEY (required), ALLOY_EMBEDDED_URL and ALLOY_BASE_URL (default
-- the real https hosts), ALLOY_API_VERSION, ALLOY_CA_FILE (the CA bundle nginx verifies an https
-- Alloy with; default the system bundle) and ALLOY_TOKEN_LISTEN (default 127.0.0.1:8080).
--
-- It renders nginx.conf.in (beside this file) into a fresh temp prefix and runs nginx there,
-- with the process handling the test sandbox uses (spec/support/nginx.lua). The key reaches
-- nginx through its environment (`env ALLOY_API_KEY;`) via a 0600 file that is removed before
-- nginx starts: never argv, never the config. Ctrl-C (or SIGTERM) stops nginx and removes the
-- prefix.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

local function say(...) io.stderr:write("serve.lua: ", ...) io.stderr:write("\n") end
local function usage_error(msg, hint)
  say(msg)
  if hint then io.stderr:write("hint: ", hint, "\n") end
  os.exit(2)
end

-- The checkout, absolute: nginx's workers resolve lua_package_path from their own cwd.
local ROOT do
  local p = assert(io.popen("cd '" .. (here .. "/../.."):gsub("'", "'\\''") .. "' && pwd"))
  ROOT = p:read("*l")
  p:close()
end
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/spec/support/?.lua;" .. package.path
-- alloy.config reads its defaults from alloy.so: the build for this interpreter (`make`)
package.cpath = ROOT .. "/build/" .. (rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:sub(5)) .. "/?.so;"
  .. package.cpath

local config = require "alloy.config"
local Nginx = require "nginx"

local DEFAULT_LISTEN = "127.0.0.1:8080"
local SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"

local env_file
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--env-file" and arg[i + 1] then env_file, i = arg[i + 1], i + 2
    elseif a == "-h" or a == "--help" then
      io.stdout:write("Usage: ", arg[-1] or "lua5.4", " ", arg[0], " [--env-file PATH]\n",
        "Serves GET /alloy/token?user=<id> on ALLOY_TOKEN_LISTEN (default ", DEFAULT_LISTEN, ") until Ctrl-C.\n",
        "Settings: ALLOY_API_KEY, ALLOY_EMBEDDED_URL, ALLOY_BASE_URL, ALLOY_API_VERSION, ALLOY_CA_FILE,\n",
        "ALLOY_TOKEN_LISTEN, from the environment or .env (or --env-file).\n")
      os.exit(0)
    else usage_error("unexpected argument " .. a, "the only option is --env-file PATH") end
  end
end

local cfg, err = config.load { flags = { env_file = env_file } }
if not cfg then usage_error(tostring(err), err.hint) end
for _, w in ipairs(cfg.warnings) do say("warning: ", w) end
if not cfg.api_key then usage_error("ALLOY_API_KEY is not set", config.where_to_set(cfg, "ALLOY_API_KEY")) end
if not io.open(ROOT .. "/build/luajit/alloy.so") then
  usage_error("no " .. ROOT .. "/build/luajit/alloy.so (nginx runs LuaJIT)", "run `make LUA=luajit` in the checkout")
end

-- ALLOY_TOKEN_LISTEN: environment, then the env file, then the default.
local listen = os.getenv("ALLOY_TOKEN_LISTEN")
if (not listen or listen == "") and cfg.env_file then
  listen = (require("alloy.dotenv").load(cfg.env_file) or {}).ALLOY_TOKEN_LISTEN
end
if not listen or listen == "" then listen = DEFAULT_LISTEN end
local listen_host, listen_port = listen:match("^(.-):?(%d+)$")
listen_port = tonumber(listen_port)
if not listen_port or listen_port < 1 or listen_port > 65535 or listen_host:find("[%s;]") then
  usage_error(("ALLOY_TOKEN_LISTEN must be host:port or a port, got %q"):format(listen), "e.g. 127.0.0.1:8080")
end
-- where to check that nginx is up: a wildcard address answers on loopback
local probe = (listen_host == "" or listen_host == "*" or listen_host == "0.0.0.0") and "127.0.0.1" or listen_host

-- One Alloy service (ALLOY_EMBEDDED_URL or ALLOY_BASE_URL) -> its template values.
local function upstream(var, url)
  local scheme, host, port, path = url:match("^(https?)://([%w%.%-]+):?(%d*)(.*)$")
  if not scheme or (path ~= "" and path ~= "/") then
    usage_error(("%s must be scheme://host[:port] with no path, got %q"):format(var, url))
  end
  local default = scheme == "https" and "443" or "80"
  port = port ~= "" and port or default
  local v = { SERVER = host .. ":" .. port, SCHEME = scheme, HOST = host .. (port == default and "" or ":" .. port),
              TLS = "" }
  if scheme == "https" then
    v.TLS = table.concat({
      "proxy_ssl_server_name on;", "proxy_ssl_name " .. host .. ";", "proxy_ssl_verify on;",
      "proxy_ssl_verify_depth 3;", "proxy_ssl_trusted_certificate " .. (cfg.ca_file or SYSTEM_CA) .. ";",
      "proxy_ssl_session_reuse on;" }, "\n      ")
    v.TLS = "      " .. v.TLS
  end
  return v
end

local services = { EMBEDDED = upstream("ALLOY_EMBEDDED_URL", cfg.embedded_url),
                   BASE = upstream("ALLOY_BASE_URL", cfg.base_url) }
local template = assert(Nginx.read(ROOT .. "/examples/openresty/nginx.conf.in"), "nginx.conf.in is missing")

local ok, n = pcall(Nginx.start, {
  name = "alloy-openresty",
  listen = { host = probe, port = listen_port },
  conf = function(_, self)
    local vars = { ROOT = ROOT, PREFIX = self.dir, USER = self.user, LISTEN = listen }
    for service, v in pairs(services) do
      for k, value in pairs(v) do vars[service .. "_" .. k] = value end
    end
    return Nginx.render(template, vars, "{{([%u_]+)}}")
  end,
  env = { ALLOY_API_KEY = cfg.api_key, ALLOY_API_VERSION = cfg.api_version },
})
if not ok then
  say(tostring(n))
  if tostring(n):find("host not found in upstream", 1, true) then
    io.stderr:write("hint: nginx resolves the hosts of ALLOY_EMBEDDED_URL and ALLOY_BASE_URL when it starts:",
      " check DNS and network access\n")
  end
  os.exit(1)
end

local url = "http://" .. (probe:find(":", 1, true) and "[" .. probe .. "]" or probe) .. ":" .. listen_port
say("GET ", url, "/alloy/token?user=<id> -> {\"token\", \"expiresAt\"} (tokens from ", cfg.embedded_url, ")")
say("nginx pid ", n.pid, ", prefix ", n.dir, " (error.log there); try: curl -s '", url,
  "/alloy/token?user=<your user id>'")
say("Ctrl-C stops it.")
local why = n:foreground()
local log = n:error_log()
n:stop()
if why == "exited" then
  say("nginx exited on its own; the end of its error.log:\n", log:sub(-2000))
  os.exit(1)
end
say("stopped (nginx gone, ", n.dir, " removed)")
os.exit(0)
