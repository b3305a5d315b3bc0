-- The benchmark's own nginx: a static token response on 127.0.0.1, plain HTTP and TLS.
--
--   local server = require "nginx.server"      -- with bench/?.lua on package.path
--   local srv = server.start()                 -- temp prefix, free ports, throwaway CA
--   srv.url, srv.tls_url   -- "http://127.0.0.1:P", "https://127.0.0.1:Q"
--   srv.ca_file            -- PEM of the throwaway CA that signed the TLS certificate
--   srv.api_key            -- the fake bench key (only ever in files and environments)
--   srv.user_id, srv.token -- the id the bench asks for and the JWT nginx answers with
--   srv.connector, srv.action, srv.credential -- what `alloy run` executes, with which
--                          connection: GET /connectors/<c>/actions/<a>, POST .../execute
--   srv.executed           -- the body every execute answers
--   srv:stop()             -- idempotent
--
-- Run directly (lua5.4 bench/nginx/server.lua) it starts, prints where it listens and waits
-- for Enter before stopping: handy to try a peer by hand.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/../../spec/support/?.lua;" .. package.path
local Nginx = require "nginx" -- spec/support/nginx.lua: prefix, ports, certificate, watcher

local M = {}

local q = Nginx.quote
M.quote = q
M.nginx_bin = function() return Nginx.BIN end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

local function b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    for k = 1, (c and 4) or (b and 3) or 2 do
      local idx = math.floor(n / 2 ^ (24 - 6 * k)) % 64
      out[#out + 1] = B64:sub(idx + 1, idx + 1)
    end
  end
  return table.concat(out)
end

-- A valid-looking HS256 JWT (random signature) for user_id, expiring in 2100.
local function make_jwt(user_id)
  local header = '{"alg":"HS256","typ":"JWT"}'
  local payload = string.format('{"userId":"%s","iat":%d,"exp":%d}', user_id, os.time(), 4102444800)
  return b64url(header) .. "." .. b64url(payload) .. "." .. b64url(Nginx.random_key(32))
end

local Server = {}
Server.__index = Server

-- opts: api_key, user_id, cpu (pin the one worker to this CPU number; default: 2 workers,
-- unpinned).
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({
    nginx = Nginx.BIN,
    api_key = opts.api_key or Nginx.random_key(32),
    user_id = opts.user_id or "65f1c2a9b3e4d5f6a7b8c9d0",
    connector = "bench", action = "post_message", credential = "65f1c2a9b3e4d5f6a7b8c9d1",
  }, Server)
  self.token = make_jwt(self.user_id)
  -- An action in the documented schema shape: no required parameter, one body field.
  local schema = '{"action":{"id":"' .. self.action .. '","displayName":"Post a message","httpMethod":"POST",'
    .. '"path":"/messages","parameters":[],"requestBody":{"type":"object","properties":'
    .. '{"text":{"type":"string","description":"The message text"}}}}}'
  self.executed = '{"success":true,"result":{"id":"6b0bce1d93a754c30fc8c03b","ok":true,"channel":"C0123"}}'
  local template = assert(Nginx.read(here .. "/nginx.conf.in"), "bench nginx: nginx.conf.in missing")
  self.proc = Nginx.start {
    name = "lua-alloy-bench", ports = 2, timeout = 5,
    setup = function(n) self.ca_file = n:tls().ca end,
    conf = function(ports, n) -- the key is in it: nginx.conf is 0600
      return Nginx.render(template, {
        PREFIX = n.dir, PORT = ports[1], TLS_PORT = ports[2], KEY = self.api_key,
        WORKERS = opts.cpu and "1" or "2",
        AFFINITY = opts.cpu and ("worker_cpu_affinity 1" .. ("0"):rep(opts.cpu) .. ";") or "",
        BODY = '{"token":"' .. self.token .. '"}', SCHEMA = schema, EXECUTED = self.executed,
      }, "@([A-Z_]+)@")
    end,
  }
  self.prefix, self.port, self.tls_port = self.proc.dir, self.proc.ports[1], self.proc.ports[2]
  self.url = "http://127.0.0.1:" .. self.port
  self.tls_url = "https://127.0.0.1:" .. self.tls_port
  return self
end

function Server:pid() return self.proc.pid end

-- Idempotent; keeps the prefix when self.keep.
function Server:stop()
  self.proc.keep = self.keep
  self.proc:stop()
end

-- Writes NAME=VALUE lines (mode 0600) for bench/rusage -E; returns the path.
function Server:env_file(name, vars)
  local lines = {}
  for k, v in pairs(vars) do lines[#lines + 1] = k .. "=" .. v end
  table.sort(lines)
  local path = self.prefix .. "/" .. name
  Nginx.write(path, table.concat(lines, "\n") .. "\n", "0600")
  return path
end

if arg and arg[0] and arg[0]:match("nginx/server%.lua$") and (...) ~= "nginx.server" then
  local srv = M.start()
  srv.keep = os.getenv("KEEP") == "1"
  local keyfile = srv:env_file("bench.env", { BENCH_API_KEY = srv.api_key, ALLOY_API_KEY = srv.api_key })
  io.write("plain: ", srv.url, "/users/", srv.user_id, "/token\n",
    "tls:   ", srv.tls_url, "/users/", srv.user_id, "/token\n",
    "run:   ", srv.connector, " ", srv.action, " --credential ", srv.credential, "\n",
    "ca:    ", srv.ca_file, "\n",
    "key:   BENCH_API_KEY and ALLOY_API_KEY in ", keyfile, "\n",
    "prefix:", srv.prefix, "\nPress Enter to stop.\n")
  io.stdout:flush()
  io.read("*l")
  srv:stop()
end

return M
