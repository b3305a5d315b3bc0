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
-- it), and spec/support/nginx.lua's watcher shell stops nginx and removes its
-- prefix as soon as the Lua process that started it exits, however it exits.
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local Nginx = require "nginx"

local Sandbox = {}
Sandbox.__index = Sandbox

local HANDLERS = { "app", "routes", "api", "runs", "files", "actions", "control", "faults", "jwt", "state", "util" }
local SANDBOX_DIR = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/../sandbox"
local q, sh, read_file, write_file = Nginx.quote, Nginx.sh, Nginx.read, Nginx.write

-- Live instances, so the __gc safety net also covers ones nobody refers to.
local live = {}

-- opts: tls (bool), http2 (bool: the TLS listeners also offer HTTP/2), api_key (string),
-- start_timeout (seconds, default 10), settings (table: this sandbox's defaults for the
-- settings of sb:set, kept across reset; e.g. { metadata_markers = false }).
--
-- Three listeners, one per host the sandbox plays, each answering only its own routes:
-- sb.url (production.runalloy.com: the 2025-09 reference), sb.embedded_url
-- (embedded.runalloy.com: the token call with the header and the SDKs' path-versioned
-- forms) and sb.s3_url (the storage host of presigned uploads). sb.control_url serves
-- /__sandbox/ (the API listener itself, or a plain one beside TLS listeners).
function Sandbox.start(opts)
  opts = opts or {}
  local self = setmetatable({
    tls = opts.tls and true or false,
    api_key = opts.api_key or Nginx.random_key(32),
    jwt_secret = Nginx.random_key(32),
  }, Sandbox)
  local template, tls = assert(read_file(SANDBOX_DIR .. "/nginx.conf"), "sandbox: no nginx.conf"), nil
  self.nginx = Nginx.start {
    name = "alloy-sandbox", ports = self.tls and 4 or 3, timeout = opts.start_timeout or 10,
    setup = function(n)
      local dir = n.dir
      assert(sh("mkdir -p " .. q(dir .. "/lua/sandbox")))
      for _, name in ipairs(HANDLERS) do
        local src = assert(read_file(SANDBOX_DIR .. "/" .. name .. ".lua"),
                           "sandbox: missing handler " .. name .. ".lua")
        write_file(dir .. "/lua/sandbox/" .. name .. ".lua", src)
      end
      write_file(dir .. "/config.json", cjson.encode {
        api_key = self.api_key, jwt_secret = self.jwt_secret, defaults = opts.settings or {},
      }, "600")
      -- Workers run as nobody when we are root: they must read the handlers;
      -- config.json and keys are read by the master only.
      assert(sh("chmod 755 " .. q(dir .. "/lua") .. " " .. q(dir .. "/lua/sandbox")
        .. " && chmod 644 " .. q(dir) .. "/lua/sandbox/*.lua"))
      tls = self.tls and n:tls()
    end,
    conf = function(ports, n)
      local scheme = tls and "https" or "http"
      self.port = ports[1]
      self.url = scheme .. "://127.0.0.1:" .. ports[1]
      self.embedded_url = scheme .. "://127.0.0.1:" .. ports[2]
      self.s3_url = scheme .. "://127.0.0.1:" .. ports[3]
      self.control_url = "http://127.0.0.1:" .. (ports[4] or ports[1])
      return Nginx.render(template, {
        USER = n.user, PREFIX = n.dir, APIPORT = ports[1], EMBEDDEDPORT = ports[2], STOREPORT = ports[3],
        STOREURL = self.s3_url,
        SSL = tls and (opts.http2 and " ssl http2" or " ssl") or "",
        TLS = tls and ("    ssl_certificate " .. tls.cert .. ";\n    ssl_certificate_key " .. tls.key
          .. ";\n    ssl_protocols TLSv1.2 TLSv1.3;") or "",
        -- With TLS, a plain loopback listener for the control plane only.
        CONTROL = tls and ("  server {\n    listen 127.0.0.1:" .. ports[4] .. ";\n"
          .. "    set $sandbox_role control;\n"
          .. "    location / { content_by_lua_block { require(\"sandbox.app\").handle() } }\n  }") or "",
      })
    end,
    ready = function()
      local ok, pong = pcall(self._call, self, "GET", "ping", nil, 1)
      return ok and type(pong) == "table" and pong.ok
    end,
  }
  self.dir, self.pid = self.nginx.dir, self.nginx.pid
  if tls then self.ca_file = tls.ca end
  live[self] = true
  return self
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
    username = u.username or ("user" .. self._n .. "-" .. Nginx.random_key(6)), fullName = u.fullName,
  }).userId
end

-- A credential without the OAuth dance or validation: {userId=, connector="notion", name=?,
-- type=?, authenticationType=? (default the connector's first), data=?, authConfigId=?}.
-- Secret data fields are kept only as flags. Returns the public credential.
function Sandbox:create_credential(c)
  return self:_call("POST", "credentials", c)
end

-- The sandbox's connector catalogue: {id, name, auth = {{type, authConfigRequired?,
-- data = {{name, title, description, example, secret?, optional?}}}}}.
function Sandbox:connectors() return self:_call("GET", "connectors").connectors end

-- Queue one fault (fields in spec/sandbox/README.md: status, body, delay, drop, stall, ...;
-- host = "api"|"embedded"|"s3" limits it to one listener; success = false answers 200
-- {"success":false,"message":...} on a route whose documented answer carries success).
-- Returns the number of pending faults.
function Sandbox:fault(f)
  return self:_call("POST", "fault", f).pending
end

function Sandbox:faults() return self:_call("GET", "faults").faults end
-- A fault with hold = name keeps its request waiting (before its delay and answer) until this.
function Sandbox:release(name) self:_call("POST", "release", { name = name }) end
function Sandbox:clear_faults() self:_call("DELETE", "faults") end

-- Requests seen by the three listeners, oldest first (control calls excluded):
-- { host ("api"|"embedded"|"s3"), method, path (raw), query, headers (lower-case), body, time,
-- connection, protocol }.
function Sandbox:requests() return self:_call("GET", "requests").requests end
function Sandbox:clear_requests() self:_call("DELETE", "requests") end

-- An alloy client pointed at this sandbox (each host at its listener), with short timeouts and
-- backoff so failure cases stay fast; opts add or override options.
function Sandbox:client(opts)
  local o = { api_key = self.api_key, base_url = self.url, embedded_url = self.embedded_url, timeout = 5,
              backoff = 0.01 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return require("alloy").new(o)
end

function Sandbox:reset() self:_call("POST", "reset", {}) end

-- Inside a describe block: one sandbox for the block (stopped after it), reset before each
-- test with one user of that username; each(sb, uid) receives them before every test.
function Sandbox.per_test_user(username, each)
  local busted = require "busted" -- its hooks: a spec file's own are not globals here
  local sb
  busted.setup(function() sb = Sandbox.start() end)
  busted.teardown(function() if sb then sb:stop() end end)
  busted.before_each(function()
    sb:reset()
    each(sb, sb:create_user { username = username })
  end)
end

-- As per_test_user, with a connection of `connector` for the user and a temp directory (removed
-- after the test): each(sb, uid, credential_id, dir).
function Sandbox.per_test_connection(username, connector, each)
  local busted, run = require "busted", require "run"
  local dir
  Sandbox.per_test_user(username, function(s, u)
    dir = run.tmpdir()
    each(s, u, s:create_credential { userId = u, connector = connector }.credentialId, dir)
  end)
  busted.after_each(function() run.rmdir(dir) end)
end

-- How many requests of the log have a path that pattern finds.
function Sandbox:count(pattern)
  local n = 0
  for _, r in ipairs(self:requests()) do
    if r.path:find(pattern) then n = n + 1 end
  end
  return n
end

-- Settings (spec/sandbox/README.md lists them all), e.g. oauth_redirect = none|success|error,
-- metadata_markers = true|false, credential_types = compound|documented, logs_shape =
-- notifications|data|array. Reset restores the sandbox's defaults. Returns all current settings.
function Sandbox:set(s) return self:_call("POST", "set", s) end

-- 429 "Rate limit exceeded" once more than per_second requests arrive within a second on a
-- host (each of api and embedded counted on its own; host = "api"|"embedded" for one only),
-- with Retry-After: retry_after (seconds, default 1; false sends none). window widens the second
-- (a spec's count then does not depend on its speed). false lifts it.
function Sandbox:rate_limit(r) return self:_call("POST", "set", { rate_limit = r or false }).rate_limit end

-- Users, credentials (with userId/connector), settings and counters.
function Sandbox:state() return self:_call("GET", "state") end

function Sandbox:error_log() return self.nginx:error_log() end

-- Stops nginx and removes the temp prefix. Idempotent.
function Sandbox:stop()
  if self.stopped then return end
  self.stopped = true
  live[self] = nil
  self.nginx:stop()
end

Sandbox.__gc = function(self) pcall(Sandbox.stop, self) end
Sandbox.__close = Sandbox.__gc

-- The command that runs this Lua (`make demo`/`make sandbox` pass $(LUA)), so the scripts a
-- driver runs or prints load the alloy.so built for the same ABI.
function Sandbox.interpreter()
  local lua, i = "lua5.4", -1
  while arg and arg[i] do lua, i = arg[i], i - 1 end
  return lua
end

function Sandbox.stop_all()
  for sb in pairs(live) do sb:stop() end
end

return Sandbox
