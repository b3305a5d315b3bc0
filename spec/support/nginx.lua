-- spec/support/nginx.lua: a throwaway nginx on 127.0.0.1, for the sandbox, the OpenResty
-- example's spec and the bench. Runs on Lua 5.1 to 5.4 and LuaJIT.
--
--   local Nginx = require "nginx"
--   local n = Nginx.start {
--     name = "alloy-sandbox",  -- the prefix is a fresh temp dir <name>.XXXXXXXX (n.dir, 0755,
--                              -- with tmp/ for nginx's temp paths); <name> starts error messages
--     setup = function(n) end, -- optional, once: put files into n.dir; n:tls() makes a throwaway
--                              -- CA and a certificate for 127.0.0.1/localhost -> {ca, cert, key}
--     conf = function(ports, n) return "..." end,  -- nginx.conf for these free loopback ports
--                              -- (n.user: the `user` line to use, "" unless we are root)
--     ports = 1,               -- how many ports (default 1)
--     listen = { host = "127.0.0.1", port = 8080 },  -- instead: the one port the caller chose
--                              -- (host: where readiness is probed); busy -> an error, no retry
--     env = { NAME = v },      -- nginx's environment, through a 0600 file (never argv)
--     ready = function(n) return true end,  -- optional, once every port accepts connections
--     timeout = 10,            -- seconds to come up
--   }                          -- raises, leaving nothing behind, when nginx does not come up
--   n.ports, n.pid, n:error_log(), n:stop()   -- stop: idempotent; keeps n.dir if n.keep
--   n:foreground()             -- blocks until Ctrl-C or nginx's exit (`make sandbox`, serve.lua)
--
-- Nginx.start renders the config again with other ports (5 tries) when one was taken between our
-- probe and nginx's bind. nginx runs in the foreground as our child (`-g "daemon off;"`, and a
-- pid file in the prefix, unless the config says so itself), and a watcher shell holds a pipe
-- from us: if we die without stop(), even by SIGKILL, it sees EOF, stops nginx and removes
-- the prefix. stop() halts nginx itself (TERM; KILL after 5 s), reaps it and kills the
-- watcher (KILL: it ignores INT, TERM and HUP), since a child started by os.execute may have
-- inherited (and so kept open) our end of that pipe. Instances also stop in __gc (busted exits
-- through os.exit(code, true), which runs it).
local socket = require "socket"

local Nginx = {}
Nginx.__index = Nginx

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
Nginx.quote = q

local function sh(cmd) -- true on exit status 0
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end
Nginx.sh = sh

function Nginx.read(path) -- nil when missing
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function Nginx.write(path, data, mode) -- mode (e.g. "600") is set before the data goes in
  local f = assert(io.open(path, "wb"))
  if mode then assert(sh("chmod " .. mode .. " " .. q(path))) end
  assert(f:write(data))
  assert(f:close())
end

local read, write = Nginx.read, Nginx.write

local function tail(s, n)
  if not s or s == "" then return "(empty)" end
  local lines = {}
  for line in s:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return table.concat(lines, "\n", math.max(1, #lines - n + 1))
end

-- 64 symbols, so byte % 64 is unbiased: n characters of [A-Za-z0-9_-].
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
function Nginx.random_key(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(n)
  f:close()
  return (bytes:gsub(".", function(c)
    local i = c:byte() % 64 + 1
    return ALPHABET:sub(i, i)
  end))
end

-- {{NAME}} (or pattern's capture) -> vars.NAME; a missing value raises.
function Nginx.render(template, vars, pattern)
  return (template:gsub(pattern or "{{(%u+)}}", function(k)
    return tostring(assert(vars[k], "nginx: no value for placeholder " .. k))
  end))
end

-- Free loopback ports from the kernel; nginx binds them a moment later (start() retries if
-- something grabbed one in between).
function Nginx.free_ports(n)
  local socks, ports = {}, {}
  for i = 1, n do
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    socks[i], ports[i] = s, tonumber(port)
  end
  for _, s in ipairs(socks) do s:close() end
  return ports
end

Nginx.BIN = os.getenv("SANDBOX_NGINX")
for _, p in ipairs { "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/openresty/nginx/sbin/nginx" } do
  Nginx.BIN = Nginx.BIN or (sh("test -x " .. q(p)) and p or nil)
end
Nginx.BIN = Nginx.BIN or "nginx"

-- Alive unless gone or a zombie (exited, waiting for its parent to reap it).
local function alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
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

function Nginx.start(opts)
  local p = assert(io.popen("mktemp -d -t " .. q(opts.name .. ".XXXXXXXX")))
  local dir = p:read("*l")
  p:close()
  local pattern = "/" .. opts.name:gsub("%p", "%%%0") .. "%.%w+$"
  assert(dir and dir:match(pattern), opts.name .. ": mktemp -d failed")
  local self = setmetatable({ name = opts.name, dir = dir, pattern = pattern, user = "",
                              probe_host = opts.listen and opts.listen.host or "127.0.0.1" }, Nginx)
  local ok, err = pcall(self._start, self, opts)
  if not ok then
    self:stop()
    error(err, 0)
  end
  return self
end

function Nginx:tls()
  local d = self.dir
  local function run(cmd)
    if not sh(cmd .. " >>" .. q(d .. "/openssl.log") .. " 2>&1") then
      error(self.name .. ": openssl failed:\n" .. tail(read(d .. "/openssl.log"), 10), 0)
    end
  end
  local f = { ca = d .. "/ca.pem", cert = d .. "/server.pem", key = d .. "/server.key" }
  local ca_key, csr, ext = d .. "/ca.key", d .. "/server.csr", d .. "/server.ext"
  local ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
  run("openssl req -x509" .. ec .. "-keyout " .. q(ca_key) .. " -out " .. q(f.ca)
    .. " -days 2 -subj '/CN=lua-alloy test CA'"
    .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
  run("openssl req" .. ec .. "-keyout " .. q(f.key) .. " -out " .. q(csr) .. " -subj /CN=localhost")
  write(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
    .. "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
  run("openssl x509 -req -in " .. q(csr) .. " -CA " .. q(f.ca) .. " -CAkey " .. q(ca_key)
    .. " -CAcreateserial -days 2 -extfile " .. q(ext) .. " -out " .. q(f.cert))
  -- Clients running as any user read the CA.
  assert(sh("chmod 644 " .. q(f.ca) .. " " .. q(f.cert)))
  return f
end

function Nginx:error_log() return read(self.dir .. "/error.log") or "" end

local function logs(self)
  return (read(self.dir .. "/start.log") or "") .. self:error_log()
end

function Nginx:_start(opts)
  -- Started as root, workers run as nobody: they must reach the prefix.
  if (read("/proc/self/status") or ""):match("\nUid:%s+0%s") then
    self.user = "user nobody " .. ((read("/etc/group") or ""):match("\nnogroup:") and "nogroup" or "nobody") .. ";"
  end
  assert(sh("chmod 755 " .. q(self.dir) .. " && mkdir " .. q(self.dir .. "/tmp")))
  if opts.setup then opts.setup(self) end
  local timeout, last = opts.timeout or 10, nil
  for _ = 1, 5 do
    self.ports = opts.listen and { opts.listen.port } or Nginx.free_ports(opts.ports or 1)
    local conf = opts.conf(self.ports, self)
    write(self.dir .. "/nginx.conf", conf, "600")
    os.remove(self.dir .. "/error.log")
    self:_spawn(conf, opts.env)
    local ok, why = self:_wait_ready(opts.ready, timeout)
    if ok then return end
    last = logs(self)
    self:halt()
    if why == "timeout" then
      error(self.name .. ": nginx did not come up within " .. timeout .. "s; error.log:\n" .. tail(last, 15), 0)
    end
    if opts.listen or (why ~= "busy" and not last:find("Address already in use", 1, true)) then break end
  end
  error(self.name .. ": nginx failed to start:\n" .. tail(last, 15), 0)
end

function Nginx:_spawn(conf, env)
  local d = self.dir
  local g, source = {}, ""
  if not ("\n" .. conf):find("\n%s*daemon%s") then g[#g + 1] = "daemon off;" end
  if not ("\n" .. conf):find("\n%s*pid%s") then g[#g + 1] = "pid " .. d .. "/nginx.pid;" end
  if env then
    local lines = {}
    for k, v in pairs(env) do lines[#lines + 1] = k .. "=" .. q(v) .. "\n" end
    write(d .. "/env", table.concat(lines), "600")
    source = "set -a; . " .. q(d .. "/env") .. "; set +a; rm -f " .. q(d .. "/env") .. "; "
  end
  self.nginx_pipe = assert(io.popen("echo $$; " .. source .. "exec " .. q(Nginx.BIN) .. " -p " .. q(d .. "/")
    .. " -c " .. q(d .. "/nginx.conf") .. " -e " .. q(d .. "/error.log")
    .. (#g > 0 and " -g " .. q(table.concat(g, " ")) or "") .. " >" .. q(d .. "/start.log") .. " 2>&1 </dev/null"))
  self.pid = assert(tonumber(self.nginx_pipe:read("*l")), self.name .. ": could not start nginx")
  local wfile = d .. "/watcher.pid"
  os.remove(wfile)
  -- The watcher ignores the signals a terminal or `kill -TERM -PGID` sends the whole group.
  self.watcher = assert(io.popen("exec >/dev/null 2>&1; trap '' INT TERM HUP; echo $$ >" .. q(wfile)
    .. "; while read -r _; do :; done; kill -TERM " .. self.pid .. "; rm -rf " .. q(d), "w"))
  local deadline = socket.gettime() + 5
  repeat
    self.watcher_pid = tonumber((read(wfile) or ""):match("^%d+\n"))
    if self.watcher_pid then return end
    socket.sleep(0.002)
  until socket.gettime() > deadline
  error(self.name .. ": watcher did not start", 0)
end

-- true once every port answers and ready(self) agrees; false, "exited"|"busy"|"timeout".
function Nginx:_wait_ready(ready, timeout)
  local deadline = socket.gettime() + timeout
  while socket.gettime() < deadline do
    if not alive(self.pid) then return false, "exited" end
    -- nginx itself retries a busy port for 2.5 s; we would rather pick another.
    if logs(self):find("Address already in use", 1, true) then return false, "busy" end
    local up = true
    for _, port in ipairs(self.ports) do
      local c = socket.tcp()
      c:settimeout(0.2)
      up = up and c:connect(self.probe_host, port) == 1
      c:close()
    end
    if up and (not ready or ready(self)) then return true end
    socket.sleep(0.01)
  end
  return false, "timeout"
end

-- TERM nginx (fast shutdown) and wait; KILL as a last resort; then retire the watcher.
function Nginx:halt()
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
  -- close = waitpid (pcall: a pipe may already be closed by its own __gc)
  if self.nginx_pipe then pcall(self.nginx_pipe.close, self.nginx_pipe) end
  if self.watcher_pid and alive(self.watcher_pid) then sh("kill -KILL " .. self.watcher_pid .. " 2>/dev/null") end
  if self.watcher then pcall(self.watcher.close, self.watcher) end
  self.nginx_pipe, self.watcher, self.watcher_pid, self.pid = nil, nil, nil, nil
end

-- Blocks until Ctrl-C or until nginx exits by itself -> "interrupted" | "exited". The standalone
-- interpreters turn SIGINT into an "interrupted!" error at the next Lua instruction, so the
-- wait is short sleeps. SIGTERM kills the interpreter outright: the watcher then stops nginx
-- and removes the prefix.
function Nginx:foreground()
  local ok, err = pcall(function()
    while alive(self.pid) do socket.sleep(0.2) end
  end)
  if ok then return "exited" end
  if tostring(err):find("interrupted!", 1, true) then return "interrupted" end
  error(err, 0)
end

-- Stops nginx and removes the prefix (unless self.keep). Idempotent.
function Nginx:stop()
  if self.stopped then return end
  self.stopped = true
  self:halt()
  if not self.keep and self.dir:match(self.pattern) then sh("rm -rf " .. q(self.dir)) end
end

Nginx.__gc = function(self) pcall(Nginx.stop, self) end

return Nginx
