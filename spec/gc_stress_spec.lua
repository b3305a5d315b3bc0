-- The module under an eager garbage collector: collection steps between (and, through
-- finalisers, inside) calls, clients dropped without close, results outliving their client,
-- and a client closed by Lua code that runs in the middle of one of its own calls.
-- `make sanitize` and `make valgrind` run this file too; that is where it bites hardest.
local Sandbox = require "sandbox"
local alloy = require "alloy"


local run_lua = require("run").lua_code

-- Collector tuning by version: 5.4 names its modes; 5.1-5.3 have only pause and step size.
local function incremental(pause, stepmul)
  if _VERSION == "Lua 5.4" then return collectgarbage("incremental", pause, stepmul) end
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
end
local GC_SETUP = [[
local function incremental(pause, stepmul)
  if _VERSION == "Lua 5.4" then return collectgarbage("incremental", pause, stepmul) end
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
end
-- A chain of finalisers, one per collection cycle, the last running fn: under an eager
-- collector, at a later allocation inside the next call as n grows.
local function finalise_after(n, fn)
  setmetatable({}, { __gc = function()
    if n > 0 then return finalise_after(n - 1, fn) end
    fn()
  end })
end
]]

-- Open descriptors of this process: /proc/<our pid>/fd (the `ls` runs in a child).
local function our_fds()
  local f = assert(io.open("/proc/self/stat", "rb"))
  local pid = f:read("*a"):match("^(%d+)")
  f:close()
  local p = io.popen("ls /proc/" .. pid .. "/fd | wc -l")
  local n = tonumber(p:read("*a"))
  p:close()
  return n
end

local function full_gc()
  collectgarbage("collect")
  collectgarbage("collect")
end

describe("GC stress", function()
  local sb, uid

  local function client(opts) return sb:client(opts) end

  setup(function()
    sb = Sandbox.start()
  end)
  teardown(function()
    incremental(200, 100)
    if sb then sb:stop() end
  end)
  before_each(function()
    sb:reset()
    uid = sb:create_user { username = "gc" }
  end)
  after_each(function()
    incremental(200, 100) -- Lua 5.4's defaults
    collectgarbage("restart")
  end)

  it("survives a collection step between every call, with an eager collector", function()
    incremental(10, 400) -- pause 10%: collect almost all the time
    local c = client()
    for i = 1, 60 do
      collectgarbage("step", 0)
      local token, res = c:user_token(uid)
      assert.is_string(token, res)
      collectgarbage("step", 0)
      local _, msg, code = c:user_token("5f0000000000000000000000")
      assert.equals("HTTP_404", code, msg)
      if i % 10 == 0 then full_gc() end
    end
    c:close()
  end)

  it("survives the generational collector (Lua 5.4; an eager incremental one elsewhere)", function()
    if _VERSION == "Lua 5.4" then collectgarbage("generational") else incremental(10, 400) end
    local c = client()
    for _ = 1, 40 do
      assert.is_string((c:user_token(uid)))
      for k = 1, 200 do local _ = { k } end -- young garbage for the minor collections
    end
    local results = c:batch({ { op = "user_token", args = { uid } }, { path = "/users" } })
    collectgarbage("step", 0)
    assert.is_string(results[1].value)
    assert.equals(200, results[2].status)
  end)

  it("collects many clients dropped without close, and their connections", function()
    full_gc()
    local fds0 = our_fds()
    for _ = 1, 100 do
      local c = client()
      assert.is_string((c:user_token(uid)))
      -- a batch grows the pool: its handles must go with the client too
      c:batch({ { path = "/users" }, { path = "/users" }, { path = "/users" } }, { concurrency = 3 })
      collectgarbage("step", 0)
    end
    full_gc()
    -- every client's sockets are closed once it is collected (a few may linger in libcurl's
    -- shared DNS/TLS caches: allow a handful, not one per client)
    assert.is_true(our_fds() <= fds0 + 4, ("fds: %d before, %d after"):format(fds0, our_fds()))
  end)

  it("returns to its memory baseline (collectgarbage('count'))", function()
    local c = client()
    local function round()
      for _ = 1, 50 do
        assert.is_string((c:user_token(uid)))
        local _, _, code = c:user_token("5f0000000000000000000000")
        assert.equals("HTTP_404", code)
      end
      c:batch({ { path = "/users" }, { op = "user_token", args = { uid } } })
    end
    round()
    full_gc()
    local base = collectgarbage("count")
    for _ = 1, 6 do round() end
    full_gc()
    local grown = collectgarbage("count") - base
    assert.is_true(grown < 64, ("grew by %.1f KiB"):format(grown))
    c:close()
  end)

  it("keeps batch results intact after the client is gone", function()
    local c = client()
    local reqs = {}
    for i = 1, 40 do
      reqs[i] = (i % 4 == 0) and { op = "user_token", args = { "5f0000000000000000000000" } }
        or { op = "user_token", args = { uid } }
    end
    local results, failures = c:batch(reqs, { concurrency = 8 })
    c = nil -- luacheck: ignore 311
    full_gc()
    for _ = 1, 5000 do local _ = { string.rep("x", 64) } end -- churn over freed memory
    full_gc()
    assert.equals(10, failures)
    for i, r in ipairs(results) do
      if i % 4 == 0 then
        assert.is_false(r.ok)
        assert.equals("HTTP_404", r.code)
        assert.matches("^HTTP_404: User not found %(GET /users/5f0+/token%)$", r.error)
        assert.equals(404, r.res.status)
      else
        assert.is_true(r.ok)
        assert.equals(uid, alloy.jwt_claims(r.value).userId)
        assert.matches("json", r.headers["content-type"])
        assert.equals(r.value, r.json.token)
      end
    end
  end)

  -- Runs a batch of two whose second request is answered 429 first (the fault), so its retry
  -- comes a second later: after request 1's on_result has dropped the second's spec table,
  -- collected and run churn. Returns the second's result.
  local function batch_dropping_second(reqs, churn)
    local c = client { retries = 1, retry_max_wait = 1 }
    local results = {}
    assert(c:batch(reqs, { concurrency = 2, on_result = function(i, r)
      results[i] = r
      if i == 1 then
        reqs[2] = nil
        full_gc()
        churn()
      end
    end }))
    assert.is_true(results[1].ok, results[1].error)
    return results[2]
  end

  it("keeps a batch request's raw body alive while it is in flight, whatever on_result does", function()
    sb:fault { path = "^/users$", method = "POST", status = 429, headers = { ["Retry-After"] = "1" } }
    local pad = string.rep("p", 300000) -- above malloc's mmap threshold: freed means unmapped
    local reqs = {
      { path = "/users/" .. uid },
      { method = "POST", path = "/users", body = '{"username":"raw-body","fullName":"' .. pad .. '"}' },
    }
    pad = nil -- luacheck: ignore 311
    local r = batch_dropping_second(reqs, function()
      for _ = 1, 2000 do local _ = { string.rep("y", 200) } end
    end)
    assert.is_true(r.ok, r.error)
    assert.equals(2, r.attempts)
    local user = assert(client():get_user(r.json.userId))
    assert.equals("raw-body", user.username)
  end)

  it("keeps a batch request's method alive while it is in flight", function()
    sb:fault { path = "^/users$", status = 429, headers = { ["Retry-After"] = "1" } }
    sb:clear_requests()
    -- made at run time: no constant anywhere keeps this string alive
    local method = string.rep("PROP", 2) .. string.rep("Q", 40):sub(1, 2)
    local reqs = { { path = "/users/" .. uid }, { method = method, path = "/users" } }
    method = nil -- luacheck: ignore 311
    local r = batch_dropping_second(reqs, function()
      local keep = {} -- strings of its size, to take over its memory
      for k = 1, 2000 do keep[k] = string.format("%010d", k) end
      return keep
    end)
    assert.matches("%(PROPPROPQQ /users%) after 2 attempts$", r.error)
    local seen = {}
    for _, logged in ipairs(sb:requests()) do
      if logged.path == "/users" then seen[#seen + 1] = logged.method end
    end
    local want = string.rep("PROP", 2) .. "QQ"
    assert.same({ want, want }, seen)
  end)

  it("keeps earlier messages intact while the client reuses its buffers", function()
    local c = client { retries = 0 }
    local seen = {}
    for i = 1, 30 do
      local id = ("5f%022d"):format(i)
      local _, msg = c:user_token(id)
      seen[#seen + 1] = { id, msg }
      collectgarbage("step", 0)
    end
    for _, s in ipairs(seen) do
      assert.equals("HTTP_404: User not found (GET /users/" .. s[1] .. "/token)", s[2])
    end
  end)

  it("is usable from coroutines, and a transport that yields fails cleanly", function()
    local c = client()
    local co = coroutine.wrap(function()
      local token = c:user_token(uid)
      coroutine.yield(token)
      return (c:user_token(uid))
    end)
    assert.is_string(co())
    collectgarbage("collect")
    assert.is_string(co())

    local t = alloy.new { api_key = sb.api_key, base_url = sb.url, transport = function()
      coroutine.yield("nope")
    end }
    local co2 = coroutine.wrap(function() return t:request { path = "/users" } end)
    local res, _, code = co2()
    assert.is_nil(res)
    assert.equals("TRANSPORT_ERROR", code)
  end)

  -- Runs body in a child interpreter: a use-after-free there may crash it.
  local function check(body)
    local out, err, rc = run_lua(GC_SETUP .. ([[
      local alloy = require "alloy"
      local KEY, URL = %q, %q
      %s
      io.stdout:write("survived\n")
    ]]):format(sb.api_key, sb.url, body))
    assert.equals(0, rc, "exit " .. rc .. "; stderr:\n" .. err)
    assert.equals("survived\n", out, err)
  end

  it("sends the headers as read when a finaliser changes them during the call", function()
    check [[
      local sent
      local c = alloy.new{ api_key = KEY, base_url = URL, retries = 0, transport = function(req)
        sent = req.headers
        return { status = 200, headers = {}, body = "{}" }
      end }
      incremental(1, 1000)
      local long = string.rep("L", 4000)
      for i = 1, 300 do
        local headers = {}
        for k = 1, 20 do headers["X-H" .. k] = k * 1000 + i end -- numbers: converting allocates
        finalise_after(i % 40, function() -- lengthens every value
          for k in pairs(headers) do headers[k] = long end
        end)
        assert(c:request { path = "/users", headers = headers })
        for _, h in ipairs(sent) do
          local k = tonumber(h[1]:match("^X%-H(%d+)$"))
          if k then assert(h[2] == long or h[2] == tostring(k * 1000 + i), h[1] .. ": " .. #h[2]) end
        end
      end
      collectgarbage() collectgarbage()
    ]]
  end)

  it("sends the query as read when a finaliser empties it during the call", function()
    check [[
      local c = alloy.new{ api_key = KEY, base_url = URL, retries = 0, transport = function()
        return { status = 200, headers = {}, body = "{}" }
      end }
      incremental(1, 1000)
      for i = 1, 300 do
        local query = {}
        for k = 1, 30 do query[string.rep("q", 3) .. k .. "_" .. i] = k end -- numbers: converting allocates
        finalise_after(i % 40, function() -- drops every key
          for k in pairs(query) do query[k] = nil end
        end)
        local res = assert(c:request { path = "/users", query = query })
        local q = res.url:match("^[^?]*%?(.*)$") or ""
        for pair in q:gmatch("[^&]+") do -- the keys read before the finaliser, intact
          local k, round, v = pair:match("^qqq(%d+)_(%d+)=(%d+)$")
          assert(k == v and tonumber(round) == i, res.url)
        end
      end
      collectgarbage() collectgarbage()
    ]]
  end)

  it("frees what it read of a transport's answer when reading the rest raises", function()
    check [[
      local function rss_mb()
        local f = assert(io.open("/proc/self/statm", "rb"))
        local pages = tonumber(f:read("*a"):match("^%d+%s+(%d+)"))
        f:close()
        return pages * 4096 / 1e6
      end
      local body = string.rep("b", 1000000)
      local answer = setmetatable({ status = 200, body = body }, { __index = function(_, k)
        error("no " .. k)
      end })
      local c = alloy.new{ api_key = KEY, base_url = URL, transport = function() return answer end }
      local before = rss_mb()
      for _ = 1, 200 do
        local ok, err = pcall(c.request, c, { path = "/users" })
        assert(not ok and err:find("no headers", 1, true), tostring(err))
      end
      collectgarbage() collectgarbage()
      local grown = rss_mb() - before
      assert(grown < 50, ("%.0f MB more after 200 failed reads of a 1 MB body"):format(grown))
    ]]
  end)

  describe("a client closed by Lua code running inside one of its calls", function()

    it("from a request table's metamethod: the call raises 'client is closed'", function()
      check [[
        local c = alloy.new{ api_key = KEY, base_url = URL, retries = 0 }
        local spec = setmetatable({ path = "/users" }, { __index = function(_, k)
          if k == "json" then c:close() end
        end })
        local ok, err = pcall(c.request, c, spec)
        assert(not ok and err:find("client is closed", 1, true), tostring(err))
        assert(not pcall(c.request, c, { path = "/users" }))
        local c2 = alloy.new{ api_key = KEY, base_url = URL, retries = 0 }
        local ok2, err2 = pcall(c2.batch, c2, { { path = "/users" },
          setmetatable({ path = "/users" }, { __index = function() c2:close() end }) })
        assert(not ok2 and err2:find("client is closed", 1, true), tostring(err2))
        collectgarbage() collectgarbage()
      ]]
    end)

    it("from a transport: the rest of a batch is not sent", function()
      check [[
        local c, calls = nil, 0
        c = alloy.new{ api_key = KEY, base_url = URL, transport = function(req)
          calls = calls + 1
          c:close()
          return { status = 200, headers = {}, body = "{}" }
        end }
        local ok, err = pcall(c.batch, c, { { path = "/a" }, { path = "/b" }, { path = "/c" } })
        assert(not ok and err:find("client is closed", 1, true), tostring(err))
        assert(calls == 1, calls)
        collectgarbage() collectgarbage()
      ]]
    end)

    it("from on_result: the rest of a batch is not sent", function()
      sb:clear_requests()
      check [[
        local c = alloy.new{ api_key = KEY, base_url = URL, retries = 0 }
        local reqs, seen = {}, 0
        for i = 1, 40 do reqs[i] = { path = "/users" } end
        local ok, err = pcall(c.batch, c, reqs, { concurrency = 2, on_result = function()
          seen = seen + 1
          c:close()
        end })
        assert(not ok and err:find("client is closed", 1, true), tostring(err))
        assert(seen == 1, seen)
        assert(not pcall(c.request, c, { path = "/users" }))
        collectgarbage() collectgarbage()
      ]]
      assert.is_true(#sb:requests() <= 2, #sb:requests() .. " requests reached the sandbox")
    end)

    it("from a finaliser that runs during the call", function()
      check [[
        local c = alloy.new{ api_key = KEY, base_url = URL, embedded_url = URL, retries = 0 }
        incremental(1, 1000)
        local closed = false
        for i = 1, 200 do
          if closed then break end
          -- garbage whose finaliser closes the client, collected at some allocation inside
          -- the next call
          setmetatable({}, { __gc = function() closed = true; c:close() end })
          local ok, err = pcall(c.request, c, { path = "/users/{id}", params = { id = "u" .. i },
                                                 query = { a = string.rep("q", i) } })
          assert(ok or err:find("client is closed", 1, true), tostring(err))
        end
        collectgarbage() collectgarbage()
      ]]
    end)
  end)
end)
