-- Ctrl-C means stop: one SIGINT to a script waiting on a stalled request or on a
-- Retry-After ends the request and the waits at once, sends nothing more, and the script
-- exits 130 with one line. Each script runs as a real child process, as a user runs it;
-- the sandbox's request log says what was sent. Time is only an upper bound against a hang
-- (the waits here are 30 s; the bound is 10 s).
local Sandbox = require "sandbox"
local run = require "run"
local socket = require "socket"

describe("Ctrl-C (SIGINT) during a request", function()
  local sb, uid, dir
  Sandbox.per_test_user("ctrl-c", function(s, u) sb, uid, dir = s, u, run.tmpdir() end)
  after_each(function() run.rmdir(dir) end)

  local function count(pattern) return sb:count(pattern) end

  -- Runs script with retries allowed and long timeouts; once `ready()` holds (the requests
  -- it must be stuck on have reached the sandbox), sends it one SIGINT. -> the run's
  -- { stdout, stderr, code }, whether it had exited within 10 s, its history record, and how
  -- many requests the sandbox had seen when the signal went.
  local function interrupt(script, args, ready)
    sb:clear_requests()
    local env = run.env(sb, uid, { ALLOY_TIMEOUT = "60", ALLOY_RETRIES = "3", ALLOY_BACKOFF = "30" })
    -- The script runs in the background of a shell that says its pid and waits for it, in a
    -- process group of its own: the interpreter may be a wrapper's child (make sanitize).
    local argv = { run.quote(run.lua), run.quote(run.root .. "/lua/" .. script .. ".lua") }
    for _, a in ipairs(args or {}) do argv[#argv + 1] = run.quote(a) end
    local h = run.spawn(script, args, { env = env, cwd = dir,
      shell = "setsid " .. table.concat(argv, " ") .. ' & echo "pid $!"; wait $!' })
    local pid = assert(h:line():match("^pid (%d+)$"))
    assert.is_truthy(run.wait_for(ready, 60), "the script never got stuck on its request")
    socket.sleep(0.3) -- let it settle into the wait it is stuck on
    local at_signal = #sb:requests()
    os.execute("kill -INT -" .. pid) -- as Ctrl-C does: to the process group
    local exited = run.wait_for(function() return not run.alive(pid) end, 10) ~= nil
    if not exited then os.execute("kill -KILL -" .. pid) end
    local r = h:wait()
    r.stdout = r.stdout:gsub("^pid %d+\n", "")
    return r, exited, run.history[#run.history], at_signal
  end

  local function assert_stopped(r, exited, record)
    assert.is_true(exited, "still running 10 s after Ctrl-C")
    assert.equals(130, r.code, r.stderr)
    assert.same({ "interrupted" }, run.lines(r.stderr))
    assert.equals("", r.stdout)
    assert.same({}, run.leaks({ record }))
  end

  it("ends a stalled request at once: one request sent", function()
    sb:fault { path = "/token$", delay = 30 }
    local r, exited, record = interrupt("get_jwt_token", {}, function() return count("/token$") == 1 end)
    assert_stopped(r, exited, record)
    assert.equals(1, count("/token$"))
  end)

  it("ends a request whose answer stalls halfway", function()
    sb:fault { path = "/token$", stall = 30, body = { token = string.rep("t", 200) } }
    local r, exited, record = interrupt("get_jwt_token", {}, function() return count("/token$") == 1 end)
    assert_stopped(r, exited, record)
    assert.equals(1, count("/token$"))
  end)

  it("ends a Retry-After wait at once: the retry is never sent", function()
    sb:fault { path = "/token$", status = 429, headers = { ["Retry-After"] = "30" }, times = 4 }
    local r, exited, record = interrupt("get_jwt_token", {}, function() return count("/token$") == 1 end)
    assert_stopped(r, exited, record)
    assert.equals(1, count("/token$"))
  end)

  it("ends a backoff wait after a 503 at once", function()
    sb:fault { path = "/token$", status = 503, times = 4 } -- ALLOY_BACKOFF=30: waits of up to 30 s
    local r, exited, record, at_signal = interrupt("get_jwt_token", {}, function() return count("/token$") == 1 end)
    assert_stopped(r, exited, record)
    -- full jitter may draw a wait shorter than the spec's settling pause, so a retry may come
    -- before the signal; none after it
    assert.is_true(count("/token$") >= 1)
    assert.equals(at_signal, #sb:requests())
  end)

  describe("in a batch (list_connectors: one credential_metadata request per connector, 8 at a time)", function()
    local connectors
    before_each(function()
      connectors = #sb:connectors()
      assert.is_true(connectors > 8, "the sandbox needs more than 8 connectors for a waiting queue")
    end)

    it("ends the stalled requests in flight; the queue is never sent", function()
      sb:fault { path = "^/metadata/credentials$", status = 404 } -- one by one, then
      sb:fault { path = "/credentials/metadata$", delay = 30, times = connectors }
      local r, exited, record = interrupt("list_connectors", {},
        function() return count("/credentials/metadata$") == 8 end)
      assert_stopped(r, exited, record)
      assert.equals(1, count("^/connectors$"))
      assert.equals(8, count("/credentials/metadata$"))
    end)

    it("ends the Retry-After waits; no retry and nothing of the queue is sent", function()
      sb:fault { path = "^/metadata/credentials$", status = 404 }
      sb:fault { path = "/credentials/metadata$", status = 429, headers = { ["Retry-After"] = "30" },
                 times = 4 * connectors }
      local r, exited, record = interrupt("list_connectors", {},
        function() return count("/credentials/metadata$") == 8 end)
      assert_stopped(r, exited, record)
      assert.equals(8, count("/credentials/metadata$"))
    end)
  end)

  -- A host process (LuaJIT, through its FFI) that sets SIGINT itself: what it set is what it
  -- has after every call, and SIG_IGN means no interruption.
  describe("in a host that sets SIGINT itself", function()
    local HOST = [=[
package.cpath = %q .. "/build/luajit/?.so;" .. package.cpath
local ffi = require "ffi"
ffi.cdef [[
  typedef struct { void *handler; unsigned long mask[16]; int flags; void *restorer; } sigaction_t;
  int sigaction(int sig, const sigaction_t *act, sigaction_t *old);
  int getpid(void);
  void srand(unsigned seed);
  int rand(void);
]]
local function disposition()
  local sa = ffi.new("sigaction_t")
  assert(ffi.C.sigaction(2, nil, sa) == 0)
  -- the kernel's mask is the first 64 bits of glibc's sigset_t
  return tostring(ffi.cast("uintptr_t", sa.handler)) .. " " .. sa.flags .. " " .. tostring(sa.mask[0])
end
local alloy = require "alloy"
local c = alloy.new { api_key = os.getenv("ALLOY_API_KEY"), base_url = os.getenv("ALLOY_BASE_URL"),
  embedded_url = os.getenv("ALLOY_EMBEDDED_URL"), retries = 1, retry_max_wait = 1 }
local uid = os.getenv("ALLOY_USER_ID")
%s
]=]
    local function host(body)
      local src = os.tmpname()
      run.write(src, HOST:format(run.root, body))
      local r = run.script("luajit-host", {}, { env = run.env(sb, uid),
        shell = "exec luajit " .. run.quote(src) .. " </dev/null" })
      os.remove(src)
      return r
    end

    it("finds its own SIGINT disposition unchanged after requests, retries and batches", function()
      sb:fault { path = "/token$", status = 429, headers = { ["Retry-After"] = "1" } }
      local r = host [[
        local before = disposition()
        assert(c:user_token(uid)) -- answered 429 first: a wait, then the retry
        assert(before == disposition(), before .. " / " .. disposition())
        local _, failures = c:batch({ { op = "user_token", args = { uid } }, { path = "/users" } })
        assert(failures == 0 and before == disposition())
        ffi.C.sigaction(2, ffi.new("sigaction_t", { handler = ffi.cast("void *", 1) }), nil) -- SIG_IGN
        local ignored = disposition()
        assert(c:user_token(uid))
        assert(ignored == disposition(), ignored .. " / " .. disposition())
        print("same")
      ]]
      assert.equals(0, r.code, r.stderr)
      assert.equals("same\n", r.stdout)
    end)

    -- lua5.3 as Debian builds it sets its handler with SA_RESETHAND: gone once it has run.
    it("passes a Ctrl-C on to a handler set with SA_RESETHAND, once the request has ended", function()
      sb:fault { path = "/token$", delay = 5 }
      local r = host [[
        ffi.C.srand(2); local after_two = ffi.C.rand()
        ffi.C.srand(12345)
        -- srand as the handler: it is called with the signal's number, 2, and leaves a trace
        ffi.C.sigaction(2, ffi.new("sigaction_t", { handler = ffi.cast("void *", ffi.C.srand),
          flags = 0x80000000 }), nil) -- SA_RESETHAND
        os.execute(("(sleep 0.5; kill -INT %d) &"):format(ffi.C.getpid()))
        local token, _, code = c:user_token(uid)
        print(token and "token" or code)
        print(ffi.C.rand() == after_two and "handler ran" or "handler did not run")
        print(disposition():match("^0ULL ") and "default now" or disposition())
      ]]
      assert.equals(0, r.code, r.stderr)
      assert.equals("INTERRUPTED\nhandler ran\ndefault now\n", r.stdout)
    end)

    it("is not interrupted when SIGINT is ignored", function()
      sb:fault { path = "/token$", delay = 2 }
      local r = host [[
        ffi.C.sigaction(2, ffi.new("sigaction_t", { handler = ffi.cast("void *", 1) }), nil) -- SIG_IGN
        os.execute(("(sleep 0.5; kill -INT %d) &"):format(ffi.C.getpid()))
        local token, msg = c:user_token(uid)
        print(token and "token" or msg)
      ]]
      assert.equals(0, r.code, r.stderr)
      assert.equals("token\n", r.stdout)
    end)
  end)
end)
