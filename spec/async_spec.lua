-- Requests driven by a host's event loop: client:start on a libuv loop through alloy.uv (luv
-- here, vim.loop in Neovim), against the sandbox over real HTTP. Nothing is asserted inside a
-- loop callback: luv ends the process on an error there, so callbacks record and the spec
-- asserts once the loop has stopped.
local Sandbox = require "sandbox"
local alloy = require "alloy"
local run = require "run"
local cjson = require "cjson"

local has_uv, uv = pcall(require, "luv")
local describe_uv = has_uv and describe or pending
local unpack = table.unpack or unpack

-- Runs the loop until nothing is left on it; false when a safety stop was needed.
local function run_loop(seconds)
  local stuck = false
  local guard = uv.new_timer()
  guard:start((seconds or 20) * 1000, 0, function()
    stuck = true
    uv.stop()
  end)
  guard:unref() -- does not keep the loop running by itself
  uv.run()
  guard:close()
  uv.run("nowait") -- let the close finish
  return not stuck
end

-- A timer ticking every ms milliseconds, counting; fn(n) runs at each tick.
local function ticker(ms, fn)
  local t = { n = 0, handle = uv.new_timer() }
  t.handle:start(ms, ms, function()
    t.n = t.n + 1
    if fn then fn(t.n) end
  end)
  function t.stop()
    if not t.handle:is_closing() then t.handle:close() end
  end
  return t
end

-- The callback's arguments, packed.
local function pack(...) return { n = select("#", ...), ... } end

describe_uv("client:start on a libuv loop (alloy.uv)", function()
  local sb, uid
  Sandbox.per_test_user("async-user", function(s, u) sb, uid = s, u end)

  local function client(opts)
    return require("alloy.uv").attach(sb:client(opts), uv)
  end

  it("lets the loop run while the server stalls, and completes with what the blocking call returns", function()
    local c = client()
    sb:fault { path = "/token$", delay = 0.5 }
    local got, ticks_then
    local tick = ticker(10)
    local h = c:start("user_token", uid, function(...)
      got, ticks_then = pack(...), tick.n
      tick.stop()
    end)
    assert.are.equal("alloy.request (pending)", tostring(h))
    assert.is_nil(got) -- never called back from inside start
    assert.is_true(run_loop())
    assert.are.equal(2, got.n)
    assert.are.equal(uid, alloy.jwt_claims(got[1]).userId)
    assert.are.equal(200, got[2].status)
    assert.is_true(ticks_then > 0, "the timer never ticked while the request waited")
    assert.are.equal("alloy.request (finished)", tostring(h))
    assert.is_false(h:cancel())
    c:close()
  end)

  it("hands each callback exactly the values and codes of the blocking call", function()
    local c = client { max_body = 4096 }
    local blocking = sb:client { max_body = 4096 }
    local cases = { -- the arguments of a call; fault: what the server does to it
      { "user_token", uid },
      { "user_token", "5f0000000000000000000000" },
      { "user_token", "bad\nid" },
      { "get_user", "echo", fault = { path = "/users/echo", status = 404, echo = true,
                                      body = { message = "no user {key} here ({key_pct})" } } },
      { { path = "/users/{userId}", params = { userId = uid } } },
      { { path = "/connectors" }, fault = { path = "/connectors", huge = 10000 } },
      { { path = "/connectors" }, fault = { path = "/connectors", body = "{not json" } },
    }
    local function shape(t) -- a response table as the fields that must agree
      local out = { n = t.n }
      for i = 1, t.n do
        local v = t[i]
        out[i] = type(v) == "table" and { status = v.status, body = v.body, json = v.json, attempts = v.attempts } or v
      end
      return out
    end
    for i, case in ipairs(cases) do
      local args = { unpack(case) }
      if case.fault then sb:fault(case.fault) end
      local want = type(args[1]) == "string" and pack(blocking[args[1]](blocking, unpack(args, 2)))
        or pack(blocking:request(args[1]))
      if case.fault then sb:fault(case.fault) end
      local got
      args[#args + 1] = function(...) got = pack(...) end
      c:start(unpack(args))
      assert.is_true(run_loop())
      assert.are.same(shape(want), shape(got), "case " .. i)
    end
    assert.are.equal(2 * (#cases - 1), #sb:requests()) -- an INVALID_ARGUMENT sends nothing, either way
    blocking:close()
    c:close()
  end)

  it("runs 100 requests started at once on one loop, each callback exactly once", function()
    local c = client()
    local calls, ok = {}, 0
    for i = 1, 100 do
      c:start("user_token", uid, function(token)
        calls[i] = (calls[i] or 0) + 1
        if token and alloy.jwt_claims(token).userId == uid then ok = ok + 1 end
      end)
    end
    assert.is_true(run_loop())
    for i = 1, 100 do assert.are.equal(1, calls[i], "request " .. i) end
    assert.are.equal(100, ok)
    assert.are.equal(100, #sb:requests())
    c:close()
  end)

  it("cancels one request: its callback runs once, with CANCELLED; the others go on", function()
    local c = client()
    sb:fault { path = "/token$", delay = 30 }
    local slow_calls, slow, fast, cancelled = 0, nil, nil, nil
    local h = c:start("user_token", uid, function(...)
      slow_calls = slow_calls + 1
      slow = pack(...)
    end)
    c:start({ path = "/connectors" }, function(res) fast = res.status end)
    local tick
    tick = ticker(10, function(n)
      if n == 3 then -- the loop ran while the slow one waited: it is still pending
        cancelled = h:cancel()
        tick.stop()
      end
    end)
    assert.is_true(run_loop())
    assert.is_true(cancelled)
    assert.are.equal(1, slow_calls)
    assert.are.same({ n = 4, nil, "CANCELLED: the request was cancelled (GET /users/" .. uid .. "/token)",
                      "CANCELLED", nil }, slow)
    assert.is_string(alloy.codes.CANCELLED)
    assert.are.equal(200, fast)
    assert.is_false(h:cancel())
    c:close()
  end)

  it("close() with many in flight runs each callback once with CANCELLED and leaves nothing on the loop", function()
    local c = client()
    sb:fault { path = "/token$", delay = 30, times = 20 }
    local calls, codes = {}, {}
    for i = 1, 20 do
      c:start("user_token", uid, function(_, _, code)
        calls[i] = (calls[i] or 0) + 1
        codes[i] = code
      end)
    end
    local closer = uv.new_timer()
    closer:start(50, 0, function()
      closer:close()
      c:close()
    end)
    assert.is_true(run_loop())
    for i = 1, 20 do
      assert.are.equal(1, calls[i], "request " .. i)
      assert.are.equal("CANCELLED", codes[i])
    end
    assert.is_false(uv.loop_alive())
    assert.has_error(function() c:start({ path = "/x" }, function() end) end, "alloy: client is closed")
  end)

  it("retries a 429 after its Retry-After on a timer: the loop runs during the wait", function()
    local c = client { retries = 1 }
    sb:fault { path = "/token$", status = 429, headers = { ["Retry-After"] = "1" } }
    local got, seen_mid_wait
    local tick = ticker(20, function()
      if not got and not seen_mid_wait and #sb:requests() == 1 then seen_mid_wait = true end
    end)
    c:start("user_token", uid, function(...)
      got = pack(...)
      tick.stop()
    end)
    assert.is_true(run_loop())
    assert.is_true(seen_mid_wait, "the loop did not run between the 429 and the retry")
    assert.are.equal(uid, alloy.jwt_claims(got[1]).userId)
    assert.are.equal(2, got[2].attempts)
    assert.are.equal(2, #sb:requests())
    c:close()
  end)

  it("lets a callback start requests, cancel others and close the client", function()
    local c = client()
    sb:fault { path = "/token$", delay = 30, times = 3 }
    local log, pending = {}, {}
    for i = 1, 3 do
      pending[i] = c:start("user_token", uid, function(_, _, code) log[#log + 1] = "slow" .. i .. ":" .. code end)
    end
    c:start({ path = "/connectors" }, function()
      log[#log + 1] = "first"
      local cancelled = pending[1]:cancel() -- runs its callback
      log[#log + 1] = "cancel:" .. tostring(cancelled)
      c:start({ path = "/connectors" }, function()
        log[#log + 1] = "second"
        c:close()
        log[#log + 1] = "closed"
      end)
    end)
    assert.is_true(run_loop())
    assert.are.same({ "first", "slow1:CANCELLED", "cancel:true", "second", "slow2:CANCELLED",
                      "slow3:CANCELLED", "closed" }, log)
    assert.is_false(uv.loop_alive())
  end)

  it("survives an eager collector whose finalisers cancel requests and close the client mid-call", function()
    -- in a child interpreter (the one `make sanitize` and `make valgrind` check): a crash
    -- there fails this spec, not busted
    local out, err, code = run.lua_code(([[
      package.path = %q .. package.path
      local alloy, uv = require "alloy", require "luv"
      if _VERSION == "Lua 5.4" then collectgarbage("incremental", 1, 1000)
      else collectgarbage("setpause", 1); collectgarbage("setstepmul", 1000) end
      local function on_collect(fn) -- Lua 5.1 and LuaJIT finalise only userdata
        if newproxy then getmetatable(newproxy(true)).__gc = fn else setmetatable({}, { __gc = fn }) end
      end
      local c = alloy.new { api_key = %q, base_url = %q, embedded_url = %q, retries = 0 }
      require("alloy.uv").attach(c, uv)
      local calls, handles, started = {}, {}, 0
      for i = 1, 60 do
        local victim = handles[i - 2]
        on_collect(function() if victim then victim:cancel() end end) -- at an allocation inside a later call
        local ok, h = pcall(c.start, c, "user_token", %q, function()
          calls[i] = (calls[i] or 0) + 1
          if i == 30 then on_collect(function() c:close() end) end
        end)
        assert(ok or h:find("alloy: client is closed", 1, true), h) -- once a finaliser has closed it
        handles[i], started = ok and h or nil, started + (ok and 1 or 0)
      end
      uv.run()
      collectgarbage()
      collectgarbage()
      uv.run("nowait")
      for i = 1, 60 do assert((calls[i] or 0) == (handles[i] and 1 or 0), "request " .. i) end
      assert(started >= 30 and tostring(c) == "alloy.client (closed)", started)
      print("ok")
    ]]):format(run.root .. "/lua/?.lua;", sb.api_key, sb.url, sb.url, uid))
    assert.are.equal(0, code, err)
    assert.are.equal("ok\n", out)
  end)

  it("keeps a client with requests in flight alive; an idle one is collected", function()
    local weak = setmetatable({}, { __mode = "k" })
    local status
    do
      local c = client()
      weak[c] = "in flight"
      c:start({ path = "/connectors" }, function(res) status = res.status end)
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal("in flight", select(2, next(weak)))
    assert.is_true(run_loop())
    assert.are.equal(200, status)
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak)) -- its hooks refer to it, the loop no longer does
  end)
end)

describe_uv("client:loop's hooks, from a host's own driver", function()
  local sb, uid
  Sandbox.per_test_user("hooks-user", function(s, u) sb, uid = s, u end)

  -- What alloy.uv does, with the client's calls made in protected mode: their errors are
  -- collected, and every timer value the hooks were given is kept.
  local function driver(c)
    local d = { polls = {}, errors = {}, timers = {} }
    local function call(method, ...)
      local ok, err = pcall(method, c, ...)
      if not ok then d.errors[#d.errors + 1] = err end
    end
    c:loop {
      socket = function(fd, events)
        if events == "remove" then
          d.polls[fd]:close()
          d.polls[fd] = nil
          return
        end
        d.polls[fd] = d.polls[fd] or uv.new_socket_poll(fd)
        d.polls[fd]:start(events, function(err, seen) call(c.socket_action, fd, err and "e" or seen) end)
      end,
      timer = function(ms)
        d.timers[#d.timers + 1] = ms
        if ms < 0 then
          if d.timer then d.timer:close() end
          d.timer = nil
          return
        end
        d.timer = d.timer or uv.new_timer()
        d.timer:start(ms, 0, function() call(c.on_timeout) end)
      end,
    }
    return d
  end

  it("raises a callback's error from the call that ran it, after the other callbacks ran", function()
    local c = sb:client()
    local d = driver(c)
    local log = {}
    c:start({ path = "/connectors" }, function()
      log[#log + 1] = "a"
      error("boom from a")
    end)
    c:start("user_token", uid, function() log[#log + 1] = "b" end)
    assert.is_true(run_loop())
    table.sort(log)
    assert.are.same({ "a", "b" }, log)
    assert.are.equal(1, #d.errors)
    assert.matches("boom from a", d.errors[1], 1, true)
    local again
    c:start({ path = "/connectors" }, function(res) again = res.status end) -- still usable
    assert.is_true(run_loop())
    assert.are.equal(200, again)
    assert.are.equal(-1, d.timers[#d.timers]) -- nothing in flight: no timer, no socket
    assert.is_nil(next(d.polls))
    c:start({ path = "/connectors" }, function() error("boom from close") end)
    assert.has_error(function() c:close() end, "boom from close")
    assert.are.equal("alloy.client (closed)", tostring(c))
    assert.is_true(run_loop()) -- the handles close() closed finish closing (luv 1.44 crashes at exit otherwise)
    assert.is_nil(next(d.polls))
  end)

  it("refuses misuse loudly", function()
    local c = sb:client()
    assert.has_error(function() c:start({ path = "/x" }, function() end) end,
      "client:start: no event loop: call client:loop{socket = fn, timer = fn} first")
    assert.has_error(function() c:loop { socket = print } end, "client:loop: timer must be a function")
    assert.has_error(function() c:loop { socket = print, timer = print, timeout = print } end,
      "client:loop: unknown hook 'timeout'")
    c:loop { socket = function() end, timer = function() end }
    assert.has_error(function() c:start({ path = "/x" }) end,
      "client:start: the last argument must be the function that takes the result")
    assert.has_error(function() c:start("no_such_op", function() end) end,
      "client:start: unknown operation 'no_such_op'")
    assert.has_error(function() c:start("user_token", function() end) end,
      "client:start: missing argument 'userId'")
    assert.has_error(function() c:start({ op = "user_token" }, function() end) end,
      "client:start: give the operation's name as the first argument")
    assert.has_error(function() c:socket_action(3, "x") end,
      "bad argument #2 to 'client:socket_action' (events are letters of \"rwe\" (readable, writable, error))")
    c:start({ path = "/x" }, function() end)
    assert.has_error(function() c:loop { socket = print, timer = print } end, "client:loop: requests are in flight")
    c:close()
    local t = alloy.new { api_key = sb.api_key, base_url = sb.url, transport = function() end }
    assert.has_error(function() t:loop { socket = print, timer = print } end,
      "client:loop: this client sends through its transport")
    assert.are.equal(0, #sb:requests())
  end)
end)

-- Runs body (Lua; it fills the table R) in headless Neovim with this checkout's lua/ and
-- LuaJIT build of alloy.so on its paths; env through a 0600 file sh sources, never argv.
-- -> R (or nil), Neovim's stderr
local NVIM = os.getenv("ALLOY_TEST_NVIM") or "nvim"
local function nvim(body, env)
  local dir = run.tmpdir()
  run.write(dir .. "/driver.lua", ([[
package.path = %q .. package.path
package.cpath = %q .. package.cpath
local R = {}
local ok, err = xpcall(function() %s end, debug.traceback)
R.ok, R.err = ok, (not ok) and tostring(err) or nil
local f = assert(io.open("result.json", "w"))
f:write(vim.fn.json_encode(R))
f:close()
]]):format(run.root .. "/lua/?.lua;", run.root .. "/build/luajit/?.so;", body))
  local lines = {}
  for k, v in pairs(env) do lines[#lines + 1] = k .. "=" .. run.quote(v) end
  run.write(dir .. "/env.sh", "", "600")
  run.write(dir .. "/env.sh", table.concat(lines, "\n") .. "\n", "600")
  local inner = "set -a; . ./env.sh; set +a; rm -f ./env.sh; exec timeout 60 " .. run.quote(NVIM)
    .. " --headless -u NONE -i NONE -c 'luafile driver.lua' -c 'qa!'"
  os.execute("cd " .. run.quote(dir) .. " && env -i PATH=" .. run.quote(os.getenv("PATH"))
    .. " HOME=" .. run.quote(dir) .. " sh -c " .. run.quote(inner) .. " </dev/null >out.txt 2>err.txt")
  local ok, result = pcall(cjson.decode, run.read(dir .. "/result.json"))
  local stderr = run.read(dir .. "/err.txt")
  run.rmdir(dir)
  return ok and result or nil, stderr
end

-- The same from Neovim (its LuaJIT, vim.loop): the editor keeps answering while a request
-- waits on a stalled server. The key reaches Neovim in a 0600 file sh sources, never argv.
describe("client:start in headless Neovim (vim.loop)", function()
  local sb, uid
  Sandbox.per_test_user("nvim-async-user", function(s, u) sb, uid = s, u end)

  it("keeps firing a vim timer while a request waits; the callback reaches the editor via vim.schedule_wrap", function()
    assert(io.open(run.root .. "/build/luajit/alloy.so", "rb"), "needs build/luajit/alloy.so"):close()
    sb:fault { path = "/token$", delay = 30 }
    local r, stderr = nvim([[
      local url = os.getenv("URL")
      local c = require("alloy").new { api_key = os.getenv("KEY"), base_url = url, embedded_url = url }
      require("alloy.uv").attach(c) -- vim.loop by default
      local ticks, stalled, fast = 0, nil, nil
      local h = c:start("user_token", os.getenv("USER_ID"), vim.schedule_wrap(function(_, msg, code)
        stalled = { code = code, ticks = ticks }
        vim.api.nvim_buf_set_lines(0, 0, -1, false, { msg })
      end))
      c:start("user_token", os.getenv("USER_ID"), function(token) fast = token end)
      local timer = vim.fn.timer_start(10, function()
        ticks = ticks + 1
        if ticks == 5 then R.cancelled = h:cancel() end
      end, { ["repeat"] = -1 })
      R.waited = vim.wait(20000, function() return stalled ~= nil and fast ~= nil end, 10)
      vim.fn.timer_stop(timer)
      R.stalled, R.fast, R.line = stalled, fast, vim.api.nvim_buf_get_lines(0, 0, 1, false)[1]
      c:close()
    ]], { KEY = sb.api_key, URL = sb.url, USER_ID = uid })
    assert.is_table(r, stderr)
    assert.is_true(r.ok, r.err)
    assert.is_true(r.waited)
    assert.is_true(r.cancelled)
    assert.are.same({ code = "CANCELLED", ticks = 5 }, r.stalled) -- the timer ticked while it waited
    assert.are.equal(uid, alloy.jwt_claims(r.fast).userId) -- the other one came back meanwhile
    assert.matches("^CANCELLED: the request was cancelled", r.line)
    assert.is_nil(stderr:find(sb.api_key, 1, true))
  end)
end)

-- docs/hosts-event-loop.md's Lua examples, as printed: the script and luv ones in the
-- interpreter the suite runs on, the Neovim one in Neovim; the OpenResty one is an excerpt of
-- examples/openresty, which spec/openresty_spec.lua runs.
describe("docs/hosts-event-loop.md's examples", function()
  local sb, uid
  Sandbox.per_test_user("docs-user", function(s, u) sb, uid = s, u end)

  local blocks = {}
  for code in run.read(run.root .. "/docs/hosts-event-loop.md"):gmatch("\n```lua\n(.-)\n```") do
    blocks[#blocks + 1] = code
  end

  it("shows four: a script, OpenResty, luv and Neovim", function()
    assert.are.equal(4, #blocks)
    assert.matches("client:user_token", blocks[1], 1, true)
    assert.matches('require("alloy_ngx")', blocks[2], 1, true)
    assert.truthy(run.read(run.root .. "/examples/openresty/alloy_ngx.lua"):find("function M.new", 1, true))
    assert.matches('require "luv"', blocks[3], 1, true)
    assert.matches("vim.loop", blocks[4], 1, true)
  end)

  for _, i in ipairs { 1, 3 } do
    local describe_it = (i == 1 or has_uv) and it or pending
    describe_it("runs example " .. i .. " as printed: the token on stdout", function()
      local path = os.tmpname()
      run.write(path, ("package.path = %q .. package.path\npackage.cpath = %q .. package.cpath\n"):format(
        run.root .. "/lua/?.lua;", run.root .. "/build/" .. (run.lua:match("(lua5%.%d)$")
          or run.lua:match("(luajit)$") or "lua5.4") .. "/?.so;") .. blocks[i])
      local r = run.script(path, {}, { env = run.env(sb, uid) })
      os.remove(path)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(uid, alloy.jwt_claims((r.stdout:gsub("\n$", ""))).userId)
    end)
  end

  it("runs the Neovim example as printed: the token lands in register \"", function()
    local env = run.env(sb, uid)
    local r, stderr = nvim(blocks[4] .. [[

      R.waited = vim.wait(10000, function() return vim.fn.getreg('"') ~= "" end, 10)
      R.register = vim.fn.getreg('"')
      R.command = vim.fn.exists(":AlloyCancel")
      R.cancelled = request:cancel()
      client:close()
    ]], env)
    assert.is_table(r, stderr)
    assert.is_true(r.ok, r.err)
    assert.is_true(r.waited)
    assert.are.equal(uid, alloy.jwt_claims(r.register).userId)
    assert.are.equal(2, r.command)
    assert.is_false(r.cancelled)
  end)
end)
