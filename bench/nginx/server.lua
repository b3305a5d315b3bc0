-- The benchmark's own nginx: a static token response on 127.0.0.1, plain HTTP and TLS.
--
--   local server = require "nginx.server"      -- with bench/?.lua on package.path
--   local srv = server.start()                 -- temp prefix, free ports, throwaway CA
--   srv.url, srv.tls_url   -- "http://127.0.0.1:P", "https://127.0.0.1:Q"
--   srv.ca_file            -- PEM of the throwaway CA that signed the TLS certificate
--   srv.api_key            -- the fake bench key (only ever in files and environments)
--   srv.user_id, srv.token -- the id the bench asks for and the JWT nginx answers with
--   srv:stop()             -- idempotent
--
-- Run directly (lua5.4 bench/nginx/server.lua) it starts, prints where it listens and waits
-- for Enter before stopping: handy to try a peer by hand.
local socket = require "socket"

local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = q

local function run(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function write_file(path, data, mode)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
  if mode then assert(run("chmod " .. mode .. " " .. q(path))) end
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function random_bytes(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local s = f:read(n)
  f:close()
  return s
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

local function b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local chars = 4
    if not b then chars = 2 elseif not c then chars = 3 end
    for k = 1, chars do
      local idx = (n >> (18 - 6 * (k - 1))) & 63
      out[#out + 1] = B64:sub(idx + 1, idx + 1)
    end
  end
  return table.concat(out)
end

local function random_key(n)
  local bytes = random_bytes(n)
  local out = {}
  for i = 1, n do
    local idx = bytes:byte(i) % 64
    out[i] = B64:sub(idx + 1, idx + 1)
  end
  return table.concat(out)
end

-- A valid-looking HS256 JWT (random signature) for user_id, expiring in 2100.
local function make_jwt(user_id)
  local header = '{"alg":"HS256","typ":"JWT"}'
  local iat = os.time()
  local payload = string.format('{"userId":"%s","iat":%d,"exp":%d}', user_id, iat, 4102444800)
  return b64url(header) .. "." .. b64url(payload) .. "." .. b64url(random_bytes(32))
end

local function free_ports(n)
  local socks, ports = {}, {}
  for i = 1, n do
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    socks[i], ports[i] = s, tonumber(port)
  end
  for _, s in ipairs(socks) do s:close() end
  return ports
end

local function nginx_bin()
  for _, p in ipairs { "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/openresty/nginx/sbin/nginx" } do
    if run("test -x " .. q(p)) then return p end
  end
  return "nginx"
end
M.nginx_bin = nginx_bin

-- Throwaway CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI.
local function make_certs(dir)
  local ext = dir .. "/server.ext"
  write_file(ext, table.concat({
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "",
  }, "\n"))
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local cmds = {
    "openssl req -x509 " .. ec .. " -keyout " .. q(dir .. "/ca.key") .. " -out " .. q(dir .. "/ca.pem")
      .. " -days 2 -subj /CN=lua-alloy-bench-CA"
      .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
    "openssl req " .. ec .. " -keyout " .. q(dir .. "/server.key") .. " -out " .. q(dir .. "/server.csr")
      .. " -subj /CN=127.0.0.1",
    "openssl x509 -req -in " .. q(dir .. "/server.csr") .. " -CA " .. q(dir .. "/ca.pem")
      .. " -CAkey " .. q(dir .. "/ca.key") .. " -CAcreateserial -days 2 -extfile " .. q(ext)
      .. " -out " .. q(dir .. "/server.pem"),
  }
  for _, cmd in ipairs(cmds) do
    if not run(cmd .. " >/dev/null 2>" .. q(dir .. "/openssl.log")) then
      error("bench nginx: openssl failed: " .. (read_file(dir .. "/openssl.log") or cmd))
    end
  end
  -- The CA bundle is read by clients running as any user.
  assert(run("chmod 0644 " .. q(dir .. "/ca.pem") .. " " .. q(dir .. "/server.pem")))
end

local function wait_listening(port, seconds)
  local deadline = socket.gettime() + seconds
  repeat
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then return true end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return false
end

local Server = {}
Server.__index = Server

function M.start(opts)
  opts = opts or {}
  local prefix = opts.prefix or capture("mktemp -d /tmp/lua-alloy-bench.XXXXXX"):gsub("%s+$", "")
  assert(prefix ~= "" and run("test -d " .. q(prefix)), "bench nginx: cannot create a temp dir")
  assert(run("chmod 0755 " .. q(prefix)))
  local ports = free_ports(2)
  local self = setmetatable({
    prefix = prefix,
    port = ports[1],
    tls_port = ports[2],
    api_key = opts.api_key or random_key(32),
    user_id = opts.user_id or "65f1c2a9b3e4d5f6a7b8c9d0",
    nginx = nginx_bin(),
  }, Server)
  self.url = "http://127.0.0.1:" .. self.port
  self.tls_url = "https://127.0.0.1:" .. self.tls_port
  self.ca_file = prefix .. "/ca.pem"
  self.token = make_jwt(self.user_id)

  make_certs(prefix)
  local template = assert(read_file(here .. "/nginx.conf.in"), "bench nginx: nginx.conf.in missing")
  local vars = {
    PREFIX = prefix, PORT = self.port, TLS_PORT = self.tls_port, KEY = self.api_key,
    BODY = '{"token":"' .. self.token .. '"}',
  }
  local conf = template:gsub("@([A-Z_]+)@", function(name)
    return assert(vars[name], "nginx.conf.in: unknown placeholder " .. name)
  end)
  write_file(prefix .. "/nginx.conf", conf, "0600")

  local cmd = q(self.nginx) .. " -p " .. q(prefix) .. " -c " .. q(prefix .. "/nginx.conf")
    .. " -e " .. q(prefix .. "/error.log")
  if not run(cmd .. " 2>" .. q(prefix .. "/start.log")) then
    local log = (read_file(prefix .. "/start.log") or "") .. (read_file(prefix .. "/error.log") or "")
    run("rm -rf " .. q(prefix))
    error("bench nginx: failed to start: " .. log)
  end
  self.started = true
  if not (wait_listening(self.port, 5) and wait_listening(self.tls_port, 5)) then
    self:stop()
    error("bench nginx: not listening on " .. self.port .. "/" .. self.tls_port)
  end
  return self
end

function Server:pid()
  local s = read_file(self.prefix .. "/nginx.pid")
  return s and tonumber(s:match("%d+"))
end

-- A zombie (exited, not yet reaped by init) counts as gone.
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat then return stat:match("^%d+ %b() (%a)") ~= "Z" end
  if run("test -d /proc/self") then return false end
  return run("kill -0 " .. pid .. " 2>/dev/null")
end

function Server:stop()
  if not self.started then return end
  self.started = false
  local pid = self:pid()
  if pid then
    run("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 250 do
      if not alive(pid) then break end
      socket.sleep(0.02)
    end
  end
  if not self.keep then run("rm -rf " .. q(self.prefix)) end
end

-- Writes NAME=VALUE lines (mode 0600) for bench/rusage -E; returns the path.
function Server:env_file(name, vars)
  local lines = {}
  for k, v in pairs(vars) do lines[#lines + 1] = k .. "=" .. v end
  table.sort(lines)
  local path = self.prefix .. "/" .. name
  write_file(path, table.concat(lines, "\n") .. "\n", "0600")
  return path
end

if arg and arg[0] and arg[0]:match("nginx/server%.lua$") and (...) ~= "nginx.server" then
  local srv = M.start()
  srv.keep = os.getenv("KEEP") == "1"
  local keyfile = srv:env_file("bench.env", { BENCH_API_KEY = srv.api_key })
  io.write("plain: ", srv.url, "/users/", srv.user_id, "/token\n",
    "tls:   ", srv.tls_url, "/users/", srv.user_id, "/token\n",
    "ca:    ", srv.ca_file, "\n",
    "key:   BENCH_API_KEY in ", keyfile, "\n",
    "prefix:", srv.prefix, "\nPress Enter to stop.\n")
  io.stdout:flush()
  io.read("*l")
  srv:stop()
end

return M
