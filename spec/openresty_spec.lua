-- examples/openresty/ run for real: its nginx.conf (nginx + the Lua module, LuaJIT, with
-- build/luajit/alloy.so) in front of the local sandbox, asked over plain HTTP.
local Sandbox = require "sandbox"
local Nginx = require "nginx"
local run = require "run"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local alloy = require "alloy"

local ROOT = run.root

-- The example config rendered into a throwaway prefix (spec/support/nginx.lua); the API key
-- reaches nginx through its environment, never argv.
local function start_example(alloy_addr, api_key)
  local template = run.read(ROOT .. "/examples/openresty/nginx.conf")
  local n = Nginx.start {
    name = "alloy-openresty",
    conf = function(ports, n)
      return Nginx.render(template, {
        ROOT = ROOT, PREFIX = n.dir, LISTEN = "127.0.0.1:" .. ports[1], ALLOY = alloy_addr, USER = n.user,
      })
    end,
    env = { ALLOY_API_KEY = api_key },
  }
  n.url = "http://127.0.0.1:" .. n.ports[1]
  return n
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
    assert(io.open(so, "rb"), "examples/openresty needs " .. so .. ": run `make LUA=luajit`"):close()
    sb = Sandbox.start()
    ngx_ = start_example("127.0.0.1:" .. sb.port, sb.api_key)
  end)
  teardown(function()
    if ngx_ then ngx_:stop() end
    if sb then sb:stop() end
  end)
  before_each(function() sb:reset() end)

  local function token(user, headers)
    return get(ngx_.url .. "/alloy/token?user=" .. user, headers)
  end

  it("returns the user's token and its expiry, without passing the browser's headers on", function()
    local uid = sb:create_user { username = "frontend-user" }
    local status, h, body, doc = token(uid, { cookie = "session=browser-secret", ["x-forwarded-for"] = "1.2.3.4" })
    assert.are.equal(200, status, body .. ngx_:error_log())
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
    local n = start_example("127.0.0.1:" .. dead, "k-not-used-0123456789abcdef")
    local ok, err = pcall(function()
      local status, _, body, doc = get(n.url .. "/alloy/token?user=someone")
      assert.are.equal(502, status, body)
      assert.are.equal("alloy_unavailable", doc.error)
      assert.are.equal("TRANSPORT_ERROR", doc.code)
      assert.matches("no response from Alloy", doc.message, 1, true)
    end)
    n:stop()
    assert(ok, err)
  end)
end)
