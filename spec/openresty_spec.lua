-- examples/openresty/ run for real, by the README's commands as printed (`make && make
-- LUA=luajit`, then `lua5.4 examples/openresty/serve.lua` from the checkout): nginx + the Lua
-- module, LuaJIT, with build/luajit/alloy.so, in front of the local sandbox, asked over plain
-- HTTP, then stopped with Ctrl-C (SIGINT).
local Sandbox = require "sandbox"
local Nginx = require "nginx"
local run = require "run"
local readme = require "readme"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local alloy = require "alloy"

local ROOT = run.root

-- The README's serve.lua command in the background, its settings in its environment (the key
-- through the 0600 file run.lua sources, never argv), in a directory of links to the checkout
-- (no .env). hosts: the Alloy hosts, a URL for both or { base = url, embedded = url } (a
-- sandbox's listeners); extra: more variables. -> handle: url, stop(), error_log()
local function start_example(hosts, api_key, extra)
  local h = {}
  local base, embedded = hosts, hosts
  if type(hosts) == "table" then base, embedded = hosts.base, hosts.embedded end
  for _ = 1, 3 do -- another process may take the free port before nginx binds it
    local port = Nginx.free_ports(1)[1]
    local env = { ALLOY_API_KEY = api_key, ALLOY_EMBEDDED_URL = embedded, ALLOY_BASE_URL = base,
                  ALLOY_TOKEN_LISTEN = "127.0.0.1:" .. port }
    for k, v in pairs(extra or {}) do env[k] = v end
    h.proc = readme.background("lua5.4 examples/openresty/serve.lua", { env = env })
    h.url = "http://127.0.0.1:" .. port
    run.wait_for(function()
      return h.proc:stderr():find("Ctrl-C stops it.", 1, true) or not run.alive(h.proc.pid)
    end, 20)
    if run.alive(h.proc.pid) or not h.proc:stderr():find("Address already in use", 1, true) then break end
    h.proc:stop()
  end
  local err = h.proc:stderr()
  h.prefix = err:match("prefix (/%S+) ")
  h.nginx = tonumber(err:match("nginx pid (%d+)"))
  function h.error_log() return run.read(h.prefix .. "/error.log") end
  function h.stop() return h.proc:stop() end
  assert(run.alive(h.proc.pid), "serve.lua did not start:\n" .. err)
  return h
end

-- ---------------------------------------------------------------- HTTP helpers

-- GET through socket.http -> status, headers, body, json, seconds
local function get(url, headers)
  local out = {}
  local t0 = socket.gettime()
  local saved = http.TIMEOUT
  http.TIMEOUT = 15
  local ok, status, h = http.request { url = url, headers = headers, sink = ltn12.sink.table(out) }
  http.TIMEOUT = saved
  assert(ok, status)
  local body = table.concat(out)
  local jok, doc = pcall(cjson.decode, body)
  return status, h, body, jok and doc or nil, socket.gettime() - t0
end

-- A request sent now and read later: raw HTTP/1.0 on its own connection.
local function send_later(base, path)
  local port = tonumber(base:match(":(%d+)$"))
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(15)
  assert(c:send("GET " .. path .. " HTTP/1.0\r\nHost: localhost\r\n\r\n"))
  local t0 = socket.gettime()
  return {
    finish = function()
      local data = c:receive("*a")
      c:close()
      local status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)"))
      local body = data:match("\r\n\r\n(.*)$") or ""
      local jok, doc = pcall(cjson.decode, body)
      return status, jok and doc or nil, socket.gettime() - t0, data
    end,
  }
end

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

local function token_requests(sb, user)
  local n = 0
  for _, r in ipairs(sb:requests()) do
    if r.path == "/users/" .. user .. "/token" then n = n + 1 end
  end
  return n
end

-- ---------------------------------------------------------------- the spec

describe("examples/openresty", function()
  local sb, ngx_
  local so = ROOT .. "/build/luajit/alloy.so"

  setup(function()
    local _, err, code = readme.run("make && make LUA=luajit")
    assert(code == 0, err)
    assert(io.open(so, "rb"), "examples/openresty needs " .. so .. ": run `make LUA=luajit`"):close()
    sb = Sandbox.start()
    ngx_ = start_example({ base = sb.url, embedded = sb.embedded_url }, sb.api_key)
  end)
  teardown(function()
    if ngx_ then ngx_.stop() end
    if sb then sb:stop() end
  end)
  before_each(function() sb:reset() end)

  local function token(user, headers)
    return get(ngx_.url .. "/alloy/token?user=" .. user, headers)
  end

  it("returns the user's token and its expiry, without passing the browser's headers on", function()
    local uid = sb:create_user { username = "frontend-user" }
    local status, h, body, doc = token(uid, { cookie = "session=browser-secret", ["x-forwarded-for"] = "1.2.3.4" })
    assert.are.equal(200, status, body .. ngx_.error_log())
    assert.are.equal("MISS", h["x-alloy-token-cache"])
    assert.are.equal("no-store", h["cache-control"])
    assert.matches("^application/json", h["content-type"])
    local claims = assert(alloy.jwt_claims(doc.token))
    assert.are.equal(uid, claims.userId)
    assert.are.equal(iso(claims.exp), doc.expiresAt)

    local seen = sb:requests()
    assert.are.equal(1, #seen)
    local r = seen[1]
    assert.are.equal("GET", r.method)
    assert.are.equal("/users/" .. uid .. "/token", r.path)
    assert.are.equal("Bearer " .. sb.api_key, r.headers.authorization)
    assert.are.equal("2025-09", r.headers["x-api-version"])
    assert.is_nil(r.headers.cookie)
    assert.is_nil(r.headers["x-forwarded-for"])
    -- the key is nowhere in what the browser gets
    assert.is_nil(body:find(sb.api_key, 1, true))
  end)

  it("answers the second call from the shared dict (the sandbox sees no new request)", function()
    local uid = sb:create_user {}
    local s1, h1, _, d1 = token(uid)
    assert.are.equal(200, s1)
    local n = #sb:requests()
    local s2, h2, _, d2 = token(uid)
    assert.are.equal(200, s2)
    assert.are.equal("MISS", h1["x-alloy-token-cache"])
    assert.are.equal("HIT", h2["x-alloy-token-cache"])
    assert.are.equal(d1.token, d2.token)
    assert.are.equal(n, #sb:requests())
    -- another user is another cache entry
    local other = sb:create_user {}
    local _, h3, _, d3 = token(other)
    assert.are.equal("MISS", h3["x-alloy-token-cache"])
    assert.are.equal(other, alloy.jwt_claims(d3.token).userId)
    -- both Alloy calls went over one kept-alive upstream connection
    local seen = sb:requests()
    assert.are.equal(2, #seen)
    assert.are.equal(seen[1].connection, seen[2].connection)
  end)

  it("fetches a fresh token once the cached one is within 60 s of its exp", function()
    sb:set { token_ttl = 62 } -- cacheable for ~2 s with the 60 s margin
    local uid = sb:create_user {}
    local _, _, _, d1 = token(uid)
    local exp = alloy.jwt_claims(d1.token).exp
    local _, h2 = token(uid)
    assert.are.equal("HIT", h2["x-alloy-token-cache"])
    assert.are.equal(1, token_requests(sb, uid))
    -- wait until exp - 60 has passed
    while os.time() < exp - 60 + 1 do socket.sleep(0.1) end
    local s3, h3, _, d3 = token(uid)
    assert.are.equal(200, s3)
    assert.are.equal("MISS", h3["x-alloy-token-cache"])
    assert.are.equal(2, token_requests(sb, uid))
    assert.are_not.equal(d1.token, d3.token)
    assert.is_true(alloy.jwt_claims(d3.token).exp > exp)
  end)

  it("does not cache tokens that live shorter than the margin", function()
    sb:set { token_ttl = 30 }
    local uid = sb:create_user {}
    local _, h1 = token(uid)
    local _, h2 = token(uid)
    assert.are.equal("MISS", h1["x-alloy-token-cache"])
    assert.are.equal("MISS", h2["x-alloy-token-cache"])
    assert.are.equal(2, token_requests(sb, uid))
  end)

  it("answers 502 with a JSON error when Alloy fails, and caches nothing", function()
    local uid = sb:create_user {}
    sb:fault { path = "/token$", status = 500, body = { message = "database on fire" } }
    local status, h, body, doc = token(uid)
    assert.are.equal(502, status, body)
    assert.matches("^application/json", h["content-type"])
    assert.are.equal("alloy_unavailable", doc.error)
    assert.are.equal("HTTP_500", doc.code)
    assert.matches("database on fire", doc.message, 1, true)
    assert.is_nil(body:find(sb.api_key, 1, true))
    local s2, h2 = token(uid) -- the failure was not cached
    assert.are.equal(200, s2)
    assert.are.equal("MISS", h2["x-alloy-token-cache"])
  end)

  it("answers 502 when Alloy drops the connection", function()
    local uid = sb:create_user {}
    sb:fault { path = "/token$", drop = true, times = 3 }
    local status, _, body, doc = token(uid)
    assert.are.equal(502, status, body)
    assert.are.equal("alloy_unavailable", doc.error)
    assert.are.equal("TRANSPORT_ERROR", doc.code)
  end)

  it("answers 404 for a user Alloy does not know, 400 without a user", function()
    local status, _, _, doc = token("5f0000000000000000000000")
    assert.are.equal(404, status)
    assert.are.equal("unknown_user", doc.error)
    local s2, _, _, d2 = get(ngx_.url .. "/alloy/token")
    assert.are.equal(400, s2)
    assert.are.equal("missing_user", d2.error)
  end)

  it("keeps serving other requests while an Alloy call is slow (one worker)", function()
    local slow_user, cached_user = sb:create_user {}, sb:create_user {}
    assert.are.equal(200, (token(cached_user)))
    sb:fault { path = "^/users/" .. slow_user .. "/token$", delay = 1.5 }
    local pending = send_later(ngx_.url, "/alloy/token?user=" .. slow_user)
    socket.sleep(0.2) -- the slow call is now in flight
    local s1, _, _, _, t1 = get(ngx_.url .. "/healthz")
    local s2, h2, _, _, t2 = token(cached_user)
    assert.are.equal(200, s1)
    assert.are.equal(200, s2)
    assert.are.equal("HIT", h2["x-alloy-token-cache"])
    assert.is_true(t1 < 0.5 and t2 < 0.5, ("blocked: %.2fs, %.2fs"):format(t1, t2))
    local status, doc, elapsed, raw = pending.finish()
    assert.are.equal(200, status, raw)
    assert.are.equal(slow_user, alloy.jwt_claims(doc.token).userId)
    assert.is_true(elapsed >= 1.2, ("the slow call took only %.2fs"):format(elapsed))
  end)

  it("makes one Alloy call for concurrent misses of the same user", function()
    local uid = sb:create_user {}
    sb:fault { path = "/token$", delay = 0.5 }
    local pending = {}
    for i = 1, 4 do pending[i] = send_later(ngx_.url, "/alloy/token?user=" .. uid) end
    local tokens = {}
    for i = 1, 4 do
      local status, doc, _, raw = pending[i].finish()
      assert.are.equal(200, status, raw)
      tokens[doc.token] = true
    end
    assert.are.equal(1, token_requests(sb, uid))
    assert.are.equal(1, #(function() local t = {} for k in pairs(tokens) do t[#t + 1] = k end return t end)())
  end)
end)

describe("examples/openresty without a reachable Alloy", function()
  it("answers 502 TRANSPORT_ERROR", function()
    local dead = Nginx.free_ports(1)[1] -- nothing listens there
    local n = start_example("http://127.0.0.1:" .. dead, "k-not-used-0123456789abcdef")
    local ok, err = pcall(function()
      local status, _, body, doc = get(n.url .. "/alloy/token?user=someone")
      assert.are.equal(502, status, body)
      assert.are.equal("alloy_unavailable", doc.error)
      assert.are.equal("TRANSPORT_ERROR", doc.code)
      assert.matches("no response from Alloy", doc.message, 1, true)
    end)
    n.stop()
    assert(ok, err)
  end)
end)

describe("examples/openresty/serve.lua", function()
  local function files_under(dir) -- path -> mode, content
    local out = {}
    local p = io.popen("find " .. run.quote(dir) .. " -type f -printf '%m %p\\n' 2>/dev/null")
    for line in p:lines() do
      local mode, path = line:match("^(%d+) (.*)$")
      out[path] = { mode = mode, text = run.read(path) }
    end
    p:close()
    return out
  end

  it("keeps the key out of argv and files others can read; Ctrl-C stops nginx and removes its prefix", function()
    local sb = Sandbox.start()
    local ok, err = pcall(function()
      local n = start_example({ base = sb.url, embedded = sb.embedded_url }, sb.api_key)
      local uid = sb:create_user {}
      assert.are.equal(200, (get(n.url .. "/alloy/token?user=" .. uid)))
      local pids = {}
      local p = io.popen("pgrep -g " .. n.proc.pid)
      for line in p:lines() do pids[#pids + 1] = line end
      p:close()
      assert.is_true(#pids >= 3, "serve.lua, nginx's master and worker") -- and the watcher
      for _, pid in ipairs(pids) do
        assert.is_nil(run.read("/proc/" .. pid .. "/cmdline"):find(sb.api_key, 1, true), "key in argv of " .. pid)
      end
      local files = files_under(n.prefix)
      assert.truthy(files[n.prefix .. "/nginx.conf"], "no rendered nginx.conf")
      for path, f in pairs(files) do
        local readable = tonumber(f.mode:sub(-1)) >= 4
        assert.is_false(readable and f.text:find(sb.api_key, 1, true) ~= nil, "key readable by others in " .. path)
      end
      assert.matches("env ALLOY_API_KEY;", files[n.prefix .. "/nginx.conf"].text, 1, true)

      local r = n.stop()
      assert.matches("serve.lua: stopped (nginx gone, " .. n.prefix .. " removed)", r.stderr, 1, true)
      assert.is_false(run.alive(n.nginx))
      assert.are.equal("", (run.read(n.prefix .. "/nginx.conf")))
      assert.is_nil(r.stderr:find(sb.api_key, 1, true))
    end)
    sb:stop()
    assert(ok, err)
  end)

  it("reads ALLOY_API_KEY and ALLOY_TOKEN_LISTEN from .env in the current directory", function()
    local sb = Sandbox.start()
    local dir = readme.checkout()
    local proc
    local ok, err = pcall(function()
      local port = Nginx.free_ports(1)[1]
      run.write(dir .. "/.env", "ALLOY_API_KEY=" .. sb.api_key .. "\nALLOY_EMBEDDED_URL=" .. sb.embedded_url
        .. "\nALLOY_BASE_URL=" .. sb.url .. "\nALLOY_TOKEN_LISTEN=127.0.0.1:" .. port .. "\n", "600")
      proc = readme.background("lua5.4 examples/openresty/serve.lua", { cwd = dir })
      assert.truthy(run.wait_for(function() return proc:stderr():find("Ctrl-C stops it.", 1, true) end, 20),
        proc:stderr())
      local uid = sb:create_user {}
      local status, _, body, doc = get("http://127.0.0.1:" .. port .. "/alloy/token?user=" .. uid)
      assert.are.equal(200, status, body)
      assert.are.equal(uid, alloy.jwt_claims(doc.token).userId)
    end)
    if proc then proc:stop() end
    run.rmdir(dir)
    sb:stop()
    assert(ok, err)
  end)

  it("exits 2 with a hint when ALLOY_API_KEY is not set", function()
    local _, err, code = readme.run("lua5.4 examples/openresty/serve.lua", { env = {} })
    assert.are.equal(2, code)
    assert.matches("ALLOY_API_KEY is not set\nhint: ", err)
  end)

  describe("in front of an https Alloy", function()
    local sb, url
    setup(function()
      sb = Sandbox.start { tls = true }
      url = { base = sb.url:gsub("127%.0%.0%.1", "localhost"), -- the certificate's name
              embedded = sb.embedded_url:gsub("127%.0%.0%.1", "localhost") }
    end)
    teardown(function() if sb then sb:stop() end end)

    it("verifies Alloy's certificate against ALLOY_CA_FILE (proxy_ssl_verify)", function()
      local n = start_example(url, sb.api_key, { ALLOY_CA_FILE = sb.ca_file })
      local ok, err = pcall(function()
        local uid = sb:create_user {}
        local status, _, body, doc = get(n.url .. "/alloy/token?user=" .. uid)
        assert.are.equal(200, status, body .. n.error_log())
        assert.are.equal(uid, alloy.jwt_claims(doc.token).userId)
        assert.are.equal("Bearer " .. sb.api_key, sb:requests()[1].headers.authorization)
      end)
      n.stop()
      assert(ok, err)
    end)

    it("answers 502 when the certificate is not trusted (the system CAs do not know the sandbox)", function()
      local n = start_example(url, sb.api_key)
      local ok, err = pcall(function()
        local status, _, body, doc = get(n.url .. "/alloy/token?user=someone")
        assert.are.equal(502, status, body)
        assert.are.equal("TRANSPORT_ERROR", doc.code)
        assert.matches("certificate", n.error_log(), 1, true)
      end)
      n.stop()
      assert(ok, err)
    end)
  end)
end)
