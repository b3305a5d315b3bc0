-- The local Alloy sandbox for specs and `make demo`: nginx + its Lua module,
-- handlers in spec/sandbox/, state in memory, a fresh temp prefix and a free
-- loopback port per instance.
--
-- Usage in a spec (teardown runs even when tests in the block fail):
--
--   local Sandbox = require "sandbox"
--   describe("thing", function()
--     local sb
--     setup(function() sb = Sandbox.start() end)
--     teardown(function() sb:stop() end)
--     before_each(function() sb:reset() end)
--     ...
--   end)
--
-- Safety nets when stop() is never reached: each instance has a __gc finaliser
-- (busted exits through os.exit(code, true), which closes the state and runs
-- it), and a watcher shell stops nginx and removes its prefix as soon as the
-- Lua process that started it exits, however it exits (see _spawn).
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local Sandbox = {}
Sandbox.__index = Sandbox

Sandbox.NGINX = os.getenv("SANDBOX_NGINX") or "/usr/sbin/nginx"
local HANDLERS = { "app", "api", "control", "faults", "jwt", "state", "util" }

local function here()
  local src = debug.getinfo(1, "S").source
  return src:match("^@(.*)/[^/]*$") or "."
end
local SANDBOX_DIR = here() .. "/../sandbox"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd) -- true on exit status 0
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

local function tail(s, n)
  if not s or s == "" then return "(empty)" end
  local lines = {}
  for line in s:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return table.concat(lines, "\n", math.max(1, #lines - n + 1))
end

-- 64 symbols, so byte % 64 is unbiased; the key matches [A-Za-z0-9_-]{32}.
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
local function random_key(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(n)
  f:close()
  return (bytes:gsub(".", function(c)
    local i = c:byte() % 64 + 1
    return ALPHABET:sub(i, i)
  end))
end

local function is_root()
  return (read_file("/proc/self/status") or ""):match("\nUid:%s+0%s") ~= nil
end

-- Alive unless gone or a zombie (a daemonised master may wait for a lazy reaper).
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

local function children(pid)
  local out = {}
  local p = io.popen("pgrep -P " .. math.floor(pid) .. " 2>/dev/null")
  if p then
    for line in p:lines() do out[#out + 1] = tonumber(line) end
    p:close()
  end
  return out
end

-- Ask the kernel for a free loopback port; nginx binds it a moment later
-- (start() retries if something grabbed it in between).
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

local function make_tls(dir)
  local log = q(dir .. "/openssl.log")
  local function run(cmd)
    if not sh(cmd .. " >>" .. log .. " 2>&1") then
      error("sandbox: openssl failed:\n" .. tail(read_file(dir .. "/openssl.log"), 10), 0)
    end
  end
  local ca_key, ca, key, csr, crt, ext = dir .. "/ca.key", dir .. "/ca.pem",
    dir .. "/server.key", dir .. "/server.csr", dir .. "/server.pem", dir .. "/server.ext"
  local ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
  run("openssl req -x509" .. ec .. "-keyout " .. q(ca_key) .. " -out " .. q(ca)
    .. " -days 2 -subj '/CN=lua-alloy sandbox CA'"
    .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
  run("openssl req" .. ec .. "-keyout " .. q(key) .. " -out " .. q(csr) .. " -subj /CN=localhost")
  write_file(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
    .. "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
  run("openssl x509 -req -in " .. q(csr) .. " -CA " .. q(ca) .. " -CAkey " .. q(ca_key)
    .. " -set_serial 0x" .. random_key(8):gsub("[^%x]", "a") .. " -days 2 -extfile "
    .. q(ext) .. " -out " .. q(crt))
  return { ca = ca, cert = crt, key = key }
end

local function render(template, vars)
  return (template:gsub("{{(%u+)}}", function(k)
    return assert(vars[k], "sandbox: no value for {{" .. k .. "}}")
  end))
end

-- Live instances, so the __gc safety net also covers ones nobody refers to.
local live = {}

-- opts: tls (bool), api_key (string), start_timeout (seconds, default 10).
function Sandbox.start(opts)
  opts = opts or {}
  local p = assert(io.popen("mktemp -d -t alloy-sandbox.XXXXXXXX"))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir:match("alloy%-sandbox%."), "sandbox: mktemp -d failed")

  local self = setmetatable({
    dir = dir, tls = opts.tls and true or false,
    api_key = opts.api_key or random_key(32),
    jwt_secret = random_key(32),
  }, Sandbox)
  live[self] = true

  local ok, err = pcall(function()
    assert(sh("mkdir -p " .. q(dir .. "/lua/sandbox") .. " " .. q(dir .. "/tmp")))
    for _, name in ipairs(HANDLERS) do
      local src = assert(read_file(SANDBOX_DIR .. "/" .. name .. ".lua"),
                         "sandbox: missing handler " .. name .. ".lua")
      write_file(dir .. "/lua/sandbox/" .. name .. ".lua", src)
    end
    write_file(dir .. "/config.json", cjson.encode {
      api_key = self.api_key, jwt_secret = self.jwt_secret,
    })
    -- Workers run as nobody when we are root: they must read the handlers;
    -- config.json and keys are read by the master only.
    assert(sh("chmod 755 " .. q(dir) .. " " .. q(dir .. "/lua") .. " " .. q(dir .. "/lua/sandbox")
      .. " && chmod 644 " .. q(dir) .. "/lua/sandbox/*.lua && chmod 600 " .. q(dir .. "/config.json")))
    if self.tls then
      self.tls_files = make_tls(dir)
      self.ca_file = self.tls_files.ca
      assert(sh("chmod 644 " .. q(self.ca_file)))
    end
    self:_launch(opts)
  end)
  if not ok then
    self:stop()
    error(err, 0)
  end
  return self
end

function Sandbox:_launch(opts)
  local template = assert(read_file(SANDBOX_DIR .. "/nginx.conf"), "sandbox: no nginx.conf")
  local user = ""
  if is_root() then
    local group = (read_file("/etc/group") or ""):match("\nnogroup:") and "nogroup" or "nobody"
    user = "user nobody " .. group .. ";"
  end
  local last
  for _ = 1, 5 do
    local ports = free_ports(self.tls and 2 or 1)
    local tls_lines, control = "", ""
    if self.tls then
      tls_lines = "    ssl_certificate " .. self.tls_files.cert .. ";\n"
        .. "    ssl_certificate_key " .. self.tls_files.key .. ";\n"
        .. "    ssl_protocols TLSv1.2 TLSv1.3;"
      -- A plain loopback listener for the control plane only.
      control = "  server {\n    listen 127.0.0.1:" .. ports[2] .. ";\n"
        .. "    set $sandbox_role control;\n"
        .. "    location / { content_by_lua_block { require(\"sandbox.app\").handle() } }\n  }"
    end
    write_file(self.dir .. "/nginx.conf", render(template, {
      USER = user, PREFIX = self.dir, PORT = tostring(ports[1]),
      SSL = self.tls and " ssl" or "", TLS = tls_lines, CONTROL = control,
    }))
    self:_spawn()
    self.port = ports[1]
    self.url = (self.tls and "https" or "http") .. "://127.0.0.1:" .. ports[1]
    self.control_url = "http://127.0.0.1:" .. (ports[2] or ports[1])
    local ready, why = self:_wait_ready(opts.start_timeout or 10)
    if ready then return end
    last = (read_file(self.dir .. "/start.log") or "") .. (read_file(self.dir .. "/error.log") or "")
    self:_halt()
    if why ~= "busy" and not (why == "exited" and last:find("Address already in use", 1, true)) then
      if why == "timeout" then
        error("sandbox: nginx did not come up within " .. (opts.start_timeout or 10)
          .. "s; error.log:\n" .. tail(last, 15), 0)
      end
      break
    end
    os.remove(self.dir .. "/error.log")
  end
  error("sandbox: nginx failed to start:\n" .. tail(last, 15), 0)
end

-- nginx runs in the foreground as our child (io.popen), so stop() can reap it
-- and nothing is left behind. A watcher shell holds the read end of a pipe from
-- us: if we die without stop(), even by SIGKILL, it sees EOF, stops nginx and
-- removes the prefix. stop() kills the watcher instead, since a child started
-- by os.execute may have inherited (and so kept open) our end of that pipe.
function Sandbox:_spawn()
  local d = self.dir
  local nginx = assert(io.popen("echo $$; exec " .. q(Sandbox.NGINX) .. " -p " .. q(d .. "/")
    .. " -c " .. q(d .. "/nginx.conf") .. " -e " .. q(d .. "/error.log")
    .. " >" .. q(d .. "/start.log") .. " 2>&1 </dev/null", "r"))
  self.nginx_pipe = nginx
  self.pid = tonumber(nginx:read("*l"))
  assert(self.pid, "sandbox: could not start nginx")
  local wfile = d .. "/watcher.pid"
  os.remove(wfile)
  self.watcher = assert(io.popen("exec >/dev/null 2>&1; trap '' INT; echo $$ >" .. q(wfile)
    .. "; while read -r _; do :; done; kill -TERM " .. self.pid .. "; rm -rf " .. q(d), "w"))
  local deadline = socket.gettime() + 5
  repeat
    self.watcher_pid = tonumber(read_file(wfile) or "")
    if self.watcher_pid then return end
    socket.sleep(0.002)
  until socket.gettime() > deadline
  error("sandbox: watcher did not start", 0)
end

-- true once the control plane answers; false, "exited"|"busy"|"timeout" otherwise.
function Sandbox:_wait_ready(timeout)
  local deadline = socket.gettime() + timeout
  local port = tonumber(self.control_url:match(":(%d+)$"))
  while socket.gettime() < deadline do
    if not alive(self.pid) then return false, "exited" end
    -- nginx itself retries a busy port for 2.5 s; we would rather pick another.
    local log = (read_file(self.dir .. "/start.log") or "") .. (read_file(self.dir .. "/error.log") or "")
    if log:find("Address already in use", 1, true) then return false, "busy" end
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then
      local pok, pong = pcall(self._call, self, "GET", "ping", nil, 1)
      if pok and type(pong) == "table" and pong.ok then return true end
    end
    socket.sleep(0.01)
  end
  return false, "timeout"
end

-- Control plane call over plain HTTP; raises with the server's message on failure.
function Sandbox:_call(method, name, body, timeout)
  assert(not self.stopped, "sandbox: already stopped")
  local payload = body and cjson.encode(body) or ""
  local out = {}
  local saved = http.TIMEOUT -- socket.http's only per-call knob is this global
  http.TIMEOUT = timeout or 10
  local _, code = http.request {
    url = self.control_url .. "/__sandbox/" .. name, method = method,
    headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#payload) },
    source = ltn12.source.string(payload), sink = ltn12.sink.table(out),
  }
  http.TIMEOUT = saved
  local text = table.concat(out)
  local ok, doc = pcall(cjson.decode, text)
  if code ~= 200 then
    error("sandbox: " .. method .. " /__sandbox/" .. name .. " -> " .. tostring(code) .. ": "
      .. (ok and type(doc) == "table" and doc.message or text), 2)
  end
  return ok and doc or text
end

-- A user straight into the sandbox state (no API key, not logged). Returns userId.
function Sandbox:create_user(u)
  u = u or {}
  self._n = (self._n or 0) + 1
  return self:_call("POST", "users", {
    username = u.username or ("user" .. self._n .. "-" .. random_key(6)), fullName = u.fullName,
  }).userId
end

-- A credential without the OAuth dance: {userId=, connector="notion", name=?, type=?}.
function Sandbox:create_credential(c)
  return self:_call("POST", "credentials", c)
end

-- Queue one fault (fields in the contract, plus huge=<bytes>, finish=true after
-- stall to complete the body, chunked=true to omit Content-Length). Returns the
-- number of pending faults.
function Sandbox:fault(f)
  return self:_call("POST", "fault", f).pending
end

function Sandbox:faults() return self:_call("GET", "faults").faults end
function Sandbox:clear_faults() self:_call("DELETE", "faults") end

-- Requests seen by the API listener, oldest first (control calls excluded):
-- { method, path (raw), query, headers (lower-case), body, time }.
function Sandbox:requests() return self:_call("GET", "requests").requests end
function Sandbox:clear_requests() self:_call("DELETE", "requests") end

function Sandbox:reset() self:_call("POST", "reset", {}) end

-- oauth_redirect = none|success|error, credentials_shape = data|credentials|array|"natural",
-- token_ttl = seconds. Returns all current settings.
function Sandbox:set(s) return self:_call("POST", "set", s) end

-- Users, credentials (with userId/connector), settings and counters.
function Sandbox:state() return self:_call("GET", "state") end

function Sandbox:error_log() return read_file(self.dir .. "/error.log") or "" end

-- TERM nginx (fast shutdown) and wait; KILL as a last resort; reap it; then
-- retire the watcher.
function Sandbox:_halt()
  local pid = self.pid
  if pid and alive(pid) then
    local workers = children(pid)
    sh("kill -TERM " .. pid .. " 2>/dev/null")
    local deadline = socket.gettime() + 5
    while alive(pid) and socket.gettime() < deadline do socket.sleep(0.005) end
    for _, w in ipairs(workers) do
      if alive(w) then sh("kill -KILL " .. w .. " 2>/dev/null") end
    end
    if alive(pid) then sh("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  if self.nginx_pipe then
    pcall(self.nginx_pipe.close, self.nginx_pipe) -- waitpid; may be closed by its own __gc
    self.nginx_pipe = nil
  end
  if self.watcher_pid and alive(self.watcher_pid) then
    sh("kill -TERM " .. self.watcher_pid .. " 2>/dev/null")
  end
  if self.watcher then
    pcall(self.watcher.close, self.watcher)
    self.watcher = nil
  end
  self.pid, self.watcher_pid = nil, nil
end

-- Stops nginx and removes the temp prefix. Idempotent.
function Sandbox:stop()
  if self.stopped then return end
  self.stopped = true
  live[self] = nil
  self:_halt()
  if self.dir and self.dir:match("alloy%-sandbox%.[%w]+$") then
    sh("rm -rf " .. q(self.dir))
  end
end

Sandbox.__gc = function(self) pcall(Sandbox.stop, self) end
Sandbox.__close = Sandbox.__gc

function Sandbox.stop_all()
  for sb in pairs(live) do sb:stop() end
end

return Sandbox
